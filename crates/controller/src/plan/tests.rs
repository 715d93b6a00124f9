//! Behaviour of the planner, scenario by scenario. Every scenario runs through
//! [`World`], an in-memory cluster that applies plans, checks every status
//! write against the CRD's CEL rules, and checks that planning converges: after
//! a plan is applied, the next plan only assigns runs to the pod it created,
//! and the one after that is empty.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

use kube::ResourceExt;

use super::world::*;
use super::*;
use crate::api::{Delivery, DeliveryState};

fn changes(plan: &ReviewerPlan) -> Vec<(&str, RunChange)> {
    changes_of(&plan.run_updates())
}

fn changes_of<'a>(updates: &[&'a RunUpdate]) -> Vec<(&'a str, RunChange)> {
    updates.iter().map(|&u| (u.run.as_str(), u.change)).collect()
}

fn assigned_uid(world: &World, run: &str) -> Option<String> {
    world.status(run).assignment.map(|a| a.pod_uid)
}

/// A Reviewer with a live pod reviewing `r1` (PR1 at SHA_A).
fn reviewing_r1() -> World {
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.converge(1);
    assert_eq!(world.status("r1").phase, Some(RunPhase::Running));
    world
}

#[test]
fn new_reviewer_gets_its_finalizer_and_first_pod() {
    let mut world = World::new();
    let plan = plan_reviewer(&world.observed, at(0));
    assert_eq!(plan.finalizer(), FinalizerChange::Add);
    let launch = plan.pod_creation().cloned().unwrap();
    assert_eq!((launch.name.as_str(), launch.incarnation), ("review-w1-1", 1));
    assert!(launch.queue.is_empty());
    world.converge(0);
    let status = world.reviewer_status();
    assert_eq!(status.pod.unwrap().name, "review-w1-1");
    assert_eq!((status.incarnation, status.restarts, status.queue_length), (1, 0, 0));
    assert!(conditions::is(&status.conditions, CONDITION_READY, conditions::TRUE));
    assert!(conditions::is(&status.conditions, CONDITION_DEGRADED, conditions::FALSE));
}

#[test]
fn first_run_is_assigned_to_the_live_pod_without_restart() {
    let mut world = World::new();
    world.converge(0);
    world.add(new_run("r1", PR1, SHA_A, 10));
    let plan = world.step(11);
    assert_eq!(changes(&plan), [("r1", RunChange::Assigned)]);
    assert!(plan.pod_creation().is_none() && plan.pod_deletions().is_empty() && plan.restart.is_none());
    let status = world.status("r1");
    assert_eq!(status.phase, Some(RunPhase::Running));
    assert_eq!(status.start_time, Some(Time(at(11))));
    assert_eq!(status.short_sha.as_deref(), Some("aaaaaaa"));
    assert_eq!(
        status.assignment,
        Some(Assignment { pod: "review-w1-1".into(), pod_uid: "uid-review-w1-1".into(), incarnation: 1 })
    );
    assert!(conditions::is(&status.conditions, CONDITION_SUCCEEDED, conditions::UNKNOWN));
    assert!(conditions::is(&status.conditions, CONDITION_CURRENT, conditions::TRUE));
    let reviewer = world.reviewer_status();
    assert_eq!((reviewer.queue, reviewer.queue_length), (vec!["r1".to_owned()], 1));
}

#[test]
fn runs_are_labelled_with_reviewer_and_pull_request_hash() {
    let mut world = reviewing_r1();
    let labels = world.run("r1").metadata.labels.clone().unwrap();
    assert_eq!(labels[labels::REVIEWER], NAME);
    assert_eq!(labels[labels::PULL_REQUEST], labels::pr_label_value(PR1));
    assert!(world.step(2).is_noop());
}

#[test]
fn running_run_on_head_sha_causes_no_restart() {
    let mut world = reviewing_r1();
    let plan = plan_reviewer(&world.observed, at(60));
    assert!(plan.is_noop(), "{plan:#?}");
    assert_eq!(world.converge(60).len(), 0);
}

#[test]
fn stale_running_run_on_old_sha_restarts_the_pod() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR1, SHA_B, 20));
    let plan = world.step(21);
    // r2 gets its first status with its assignment to the new pod.
    assert_eq!(changes(&plan), [("r1", RunChange::Superseded)]);
    assert_eq!(plan.deferred_updates.len(), 1);
    assert_eq!(plan.deferred_updates[0].status.phase, Some(RunPhase::Pending));
    assert_eq!(plan.pod_deletions(), [&PodDeletion { name: "review-w1-1".into(), uid: "uid-review-w1-1".into() }]);
    let launch = plan.pod_creation().cloned().unwrap();
    assert_eq!((launch.incarnation, launch.queue.clone()), (2, vec!["r2".to_owned()]));
    let restart = plan.restart.clone().unwrap();
    assert_eq!((restart.reason, restart.runs.clone()), (RestartReason::Superseded, vec!["r1".to_owned()]));
    assert!(plan.events().iter().any(|e| e.object == EventObject::Run("r1".into()) && e.reason == "Superseded"));
    assert!(plan.events().iter().any(|e| e.object == EventObject::Reviewer && e.reason == "Restarted"));

    let r1 = world.status("r1");
    assert_eq!((r1.phase, r1.reason), (Some(RunPhase::Failed), Some(RunReason::Superseded)));
    assert_eq!(r1.superseded_by.as_deref(), Some("r2"));
    assert_eq!(r1.completion_time, Some(Time(at(21))));
    assert!(conditions::is(&r1.conditions, CONDITION_CURRENT, conditions::FALSE));
    assert!(conditions::is(&r1.conditions, CONDITION_SUCCEEDED, conditions::FALSE));
    assert_eq!(assigned_uid(&world, "r2").as_deref(), Some("uid-review-w1-2"));
    let reviewer = world.reviewer_status();
    assert_eq!((reviewer.incarnation, reviewer.restarts), (2, 1));
    assert_eq!(reviewer.queue, ["r2"]);
    assert_eq!(reviewer.last_restart.unwrap().time, Time(at(21)));
}

#[test]
fn two_prs_superseded_at_once_restart_once() {
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.add(new_run("r2", PR2, SHA_X, 0));
    world.converge(1);
    assert_eq!(world.reviewer_status().queue, ["r1", "r2"]);
    world.add(new_run("r3", PR1, SHA_B, 20));
    world.add(new_run("r4", PR2, SHA_Y, 20));
    let plan = world.step(21);
    assert_eq!(plan.pod_deletions().len(), 1);
    assert_eq!(plan.pod_creation().unwrap().queue, ["r3", "r4"]);
    assert_eq!(plan.restart.as_ref().unwrap().runs, ["r1", "r2"]);
    let reviewer = world.reviewer_status();
    assert_eq!((reviewer.incarnation, reviewer.restarts), (2, 1));
    assert_eq!(reviewer.queue, ["r3", "r4"]);
}

#[test]
fn several_newer_shas_in_one_batch_supersede_to_the_newest() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR1, SHA_B, 20));
    world.add(new_run("r3", PR1, SHA_C, 21));
    let plan = world.step(22);
    assert_eq!(changes(&plan)[..2], [("r1", RunChange::Superseded), ("r2", RunChange::Superseded)]);
    assert_eq!(world.status("r1").superseded_by.as_deref(), Some("r3"));
    assert_eq!(world.status("r2").superseded_by.as_deref(), Some("r3"));
    assert_eq!(world.reviewer_status().restarts, 1);
    assert_eq!(world.reviewer_status().queue, ["r3"]);
}

#[test]
fn stale_pending_run_fails_without_restart() {
    // No pod yet: both runs arrive before the first pod exists.
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.add(new_run("r2", PR1, SHA_B, 1));
    let plan = world.step(2);
    assert_eq!(changes(&plan), [("r1", RunChange::Superseded)]);
    assert_eq!(changes_of(&plan.deferred_updates.iter().collect::<Vec<_>>()), [("r2", RunChange::Refreshed)]);
    assert!(plan.restart.is_none());
    assert_eq!(plan.pod_creation().unwrap().incarnation, 1);
    assert_eq!(world.reviewer_status().restarts, 0);
    assert_eq!(world.status("r2").phase, Some(RunPhase::Running));
}

#[test]
fn new_sha_on_another_pr_goes_to_the_same_pod() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR2, SHA_X, 20));
    let plan = world.step(21);
    assert_eq!(changes(&plan), [("r2", RunChange::Assigned)]);
    assert!(plan.restart.is_none() && plan.pod_creation().is_none());
    assert_eq!(world.reviewer_status().queue, ["r1", "r2"]);
}

#[test]
fn late_run_for_superseded_sha_fails_without_restart() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR1, SHA_B, 20));
    world.converge(21);
    world.add(new_run("r3", PR1, SHA_A, 30));
    let plan = world.step(31);
    assert_eq!(changes(&plan), [("r3", RunChange::Late)]);
    assert!(plan.restart.is_none() && plan.pod_creation().is_none() && plan.pod_deletions().is_empty());
    assert!(plan.events().iter().any(|e| e.reason == "LateRun"));
    let r3 = world.status("r3");
    assert_eq!((r3.phase, r3.reason), (Some(RunPhase::Failed), Some(RunReason::Superseded)));
    assert_eq!(r3.superseded_by.as_deref(), Some("r2"));
    assert_eq!(world.status("r2").phase, Some(RunPhase::Running));
    assert_eq!(world.reviewer_status().restarts, 1);
}

#[test]
fn late_run_in_the_same_batch_is_recognised_by_creation_order() {
    // A, then B, then a replayed webhook for A, all before any reconcile.
    let mut world = World::new();
    world.converge(0);
    world.add(new_run("r1", PR1, SHA_A, 10));
    world.add(new_run("r2", PR1, SHA_B, 11));
    world.add(new_run("r3", PR1, SHA_A, 12));
    let plan = world.step(13);
    assert_eq!(changes(&plan), [("r1", RunChange::Superseded), ("r2", RunChange::Assigned), ("r3", RunChange::Late)]);
}

#[test]
fn superseded_sha_stays_passed_after_the_newer_runs_are_deleted() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR1, SHA_B, 20));
    world.converge(21);
    world.observed.runs.retain(|run| run.metadata.name.as_deref() != Some("r2"));
    world.add(new_run("r3", PR1, SHA_A, 30));
    let plan = world.step(31);
    assert_eq!(changes(&plan), [("r3", RunChange::Late)]);
    assert_eq!(world.status("r3").superseded_by, None);
}

#[test]
fn completed_run_on_old_sha_gets_current_false_without_restart() {
    let mut world = reviewing_r1();
    world.submit("r1", Verdict::Approved, "LGTM", 10);
    world.converge(11);
    assert!(world.reviewer_status().queue.is_empty());
    world.add(new_run("r2", PR1, SHA_B, 20));
    let plan = world.step(21);
    assert_eq!(changes(&plan), [("r1", RunChange::Refreshed), ("r2", RunChange::Assigned)]);
    assert!(plan.restart.is_none());
    let r1 = world.status("r1");
    assert_eq!((r1.phase, r1.reason), (Some(RunPhase::Succeeded), Some(RunReason::Submitted)));
    assert!(conditions::is(&r1.conditions, CONDITION_CURRENT, conditions::FALSE));
}

#[test]
fn submitted_verdict_completes_the_run_and_leaves_the_queue() {
    let mut world = reviewing_r1();
    world.submit("r1", Verdict::ChangesRequested, "Please add a test.", 10);
    let plan = world.step(12);
    assert_eq!(changes(&plan), [("r1", RunChange::Refreshed)]);
    let r1 = world.status("r1");
    assert_eq!(r1.completion_time, Some(Time(at(12))));
    assert!(
        conditions::find(&r1.conditions, CONDITION_SUCCEEDED)
            .is_some_and(|c| c.status == conditions::TRUE && c.reason == "Submitted")
    );
    assert_eq!(world.reviewer_status().queue_length, 0);
    assert!(plan.restart.is_none());
}

#[test]
fn same_sha_retrigger_while_running_is_duplicate() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR1, SHA_A, 20));
    let plan = world.step(21);
    assert_eq!(changes(&plan), [("r2", RunChange::Duplicate)]);
    assert!(plan.restart.is_none() && plan.pod_creation().is_none());
    let r2 = world.status("r2");
    assert_eq!((r2.phase, r2.reason), (Some(RunPhase::Failed), Some(RunReason::Duplicate)));
    assert!(r2.message.unwrap().contains("r1"));
    assert_eq!(world.status("r1").phase, Some(RunPhase::Running));
}

#[test]
fn same_sha_retrigger_after_approval_is_duplicate() {
    let mut world = reviewing_r1();
    world.submit("r1", Verdict::Approved, "", 10);
    world.converge(11);
    world.add(new_run("r2", PR1, SHA_A, 20));
    assert_eq!(changes(&world.step(21)), [("r2", RunChange::Duplicate)]);
}

#[test]
fn re_review_after_changes_requested_is_allowed() {
    let mut world = reviewing_r1();
    world.submit("r1", Verdict::ChangesRequested, "Rename this.", 10);
    world.converge(11);
    world.add(new_run("r2", PR1, SHA_A, 20));
    let plan = world.step(21);
    assert_eq!(changes(&plan), [("r2", RunChange::Assigned)]);
    assert!(plan.restart.is_none());
}

#[test]
fn re_review_after_a_failed_run_is_allowed() {
    let mut world = reviewing_r1();
    world.run_mut("r1").spec.cancel_requested = true;
    world.converge(10);
    world.add(new_run("r2", PR1, SHA_A, 20));
    assert_eq!(changes(&world.step(21)), [("r2", RunChange::Assigned)]);
}

#[test]
fn two_runs_for_one_sha_in_one_batch_keep_the_first() {
    let mut world = World::new();
    world.converge(0);
    world.add(new_run("r1", PR1, SHA_A, 10));
    world.add(new_run("r2", PR1, SHA_A, 10));
    let plan = world.step(11);
    assert_eq!(changes(&plan), [("r1", RunChange::Assigned), ("r2", RunChange::Duplicate)]);
}

#[test]
fn runs_created_in_the_same_second_follow_the_api_servers_order_not_names() {
    let runs = [new_run("run-b", PR1, SHA_B, 5), new_run("run-a", PR1, SHA_A, 5)];
    for (first, second) in [(0, 1), (1, 0)] {
        let mut world = World::new();
        world.converge(0);
        world.add(runs[first].clone());
        world.add(runs[second].clone());
        let plan = world.step(6);
        let (old, new) = (runs[first].name_any(), runs[second].name_any());
        let expected = [(old.as_str(), RunChange::Superseded), (new.as_str(), RunChange::Assigned)];
        assert_eq!(changes(&plan), expected, "{new}, created last, is the head");
    }
}

#[test]
fn cancelling_a_pending_run_restarts_nothing() {
    let mut world = World::new();
    let mut run = new_run("r1", PR1, SHA_A, 0);
    run.spec.cancel_requested = true;
    world.add(run);
    let plan = world.step(1);
    assert_eq!(changes(&plan), [("r1", RunChange::Cancelled)]);
    assert!(plan.restart.is_none());
    assert_eq!(world.status("r1").reason, Some(RunReason::Cancelled));
}

#[test]
fn cancelling_a_running_run_restarts_the_pod() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR2, SHA_X, 5));
    world.converge(6);
    world.run_mut("r1").spec.cancel_requested = true;
    let plan = world.step(10);
    assert_eq!(changes(&plan), [("r1", RunChange::Cancelled)]);
    assert_eq!(plan.restart.as_ref().unwrap().reason, RestartReason::Cancelled);
    assert_eq!(plan.pod_creation().unwrap().queue, ["r2"]);
    assert_eq!(assigned_uid(&world, "r2").as_deref(), Some("uid-review-w1-2"));
    // The restart does not reset the clock of the run that moved pods.
    assert_eq!(world.status("r2").start_time, Some(Time(at(6))));
}

#[test]
fn timed_out_running_run_fails_and_restarts_the_pod() {
    let mut world = reviewing_r1();
    // r1 started at second 1.
    let plan = plan_reviewer(&world.observed, at(1801));
    assert!(plan.is_noop());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(1800)));
    let plan = world.step(3601);
    assert_eq!(changes(&plan), [("r1", RunChange::TimedOut)]);
    assert_eq!(plan.restart.as_ref().unwrap().reason, RestartReason::TimedOut);
    assert!(plan.events().iter().any(|e| e.reason == "TimedOut" && e.kind == EventKind::Warning));
}

#[test]
fn restart_reason_prefers_superseded_over_cancelled_and_timed_out() {
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.add(new_run("r2", PR2, SHA_X, 0));
    world.converge(1);
    world.run_mut("r2").spec.cancel_requested = true;
    world.add(new_run("r3", PR1, SHA_B, 10));
    let plan = world.step(11);
    let restart = plan.restart.unwrap();
    assert_eq!((restart.reason, restart.runs), (RestartReason::Superseded, vec!["r1".into(), "r2".into()]));
}

#[test]
fn missing_reviewer_keeps_runs_pending_with_reviewer_not_found() {
    let mut world = World::without_reviewer();
    world.add(new_run("r1", PR1, SHA_A, 0));
    let plan = world.step(1);
    assert_eq!(changes(&plan), [("r1", RunChange::ReviewerNotFound)]);
    assert!(plan.events().iter().any(|e| e.reason == REASON_REVIEWER_NOT_FOUND && e.kind == EventKind::Warning));
    assert!(plan.pod_creation().is_none() && plan.reviewer_status().cloned().is_none());
    let r1 = world.status("r1");
    assert_eq!(r1.phase, Some(RunPhase::Pending));
    let condition = conditions::find(&r1.conditions, CONDITION_SUCCEEDED).unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        (conditions::UNKNOWN, REASON_REVIEWER_NOT_FOUND)
    );
    // No repeated warning while nothing changes.
    assert!(world.step(100).is_noop());

    world = world.with_reviewer();
    world.converge(200);
    assert_eq!(world.status("r1").phase, Some(RunPhase::Running));
}

#[test]
fn missing_reviewer_still_supersedes_and_cancels() {
    let mut world = World::without_reviewer();
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.add(new_run("r2", PR1, SHA_B, 1));
    let plan = world.step(2);
    assert_eq!(changes(&plan), [("r1", RunChange::Superseded), ("r2", RunChange::ReviewerNotFound)]);
}

#[test]
fn deleting_a_reviewer_fails_unfinished_runs_and_removes_pod_and_finalizer() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR2, SHA_X, 5));
    world.converge(6);
    world.submit("r2", Verdict::Approved, "", 7);
    world.converge(8);
    world.add(new_run("r3", "https://github.com/acme/widgets/pull/3", SHA_C, 9));
    world.observed.reviewer.as_mut().unwrap().metadata.deletion_timestamp = Some(Time(at(10)));
    let plan = world.step(11);
    assert_eq!(changes(&plan), [("r1", RunChange::ReviewerDeleted), ("r3", RunChange::ReviewerDeleted)]);
    assert_eq!(plan.pod_deletions().len(), 1);
    assert_eq!(plan.finalizer(), FinalizerChange::Remove);
    assert!(plan.pod_creation().is_none() && plan.restart.is_none());
    assert!(world.observed.reviewer.is_none());
    assert_eq!(world.status("r2").phase, Some(RunPhase::Succeeded));
    assert_eq!(world.status("r3").reason, Some(RunReason::ReviewerDeleted));
}

#[test]
fn evicted_pod_is_replaced_and_its_running_runs_reassigned_without_restart() {
    let mut world = reviewing_r1();
    world.observed.pods[0].phase = PodPhase::Failed;
    let plan = world.step(30);
    assert_eq!(plan.pod_deletions(), [&PodDeletion { name: "review-w1-1".into(), uid: "uid-review-w1-1".into() }]);
    assert_eq!(plan.pod_creation().map(|l| l.incarnation), Some(2));
    assert!(plan.restart.is_none());
    assert_eq!(plan.pod_creation().unwrap().queue, ["r1"]);
    assert_eq!(assigned_uid(&world, "r1").as_deref(), Some("uid-review-w1-2"));
    assert_eq!(world.status("r1").start_time, Some(Time(at(1))));
    assert_eq!(world.reviewer_status().restarts, 0);
}

#[test]
fn pod_deleted_by_someone_is_recreated_as_the_next_incarnation() {
    let mut world = reviewing_r1();
    world.observed.pods.clear();
    let plan = world.step(30);
    assert_eq!(plan.pod_creation().map(|l| l.name.as_str()), Some("review-w1-2"));
    assert!(plan.pod_deletions().is_empty() && plan.restart.is_none());
}

#[test]
fn a_created_pod_not_yet_in_the_cache_is_requested_again_under_the_same_name() {
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.pods_become_visible = false;
    let first = plan_reviewer(&world.observed, at(1));
    world.apply(&first);
    let second = plan_reviewer(&world.observed, at(2));
    assert_eq!(first.pod_creation().unwrap().name, "review-w1-1");
    assert_eq!(second.pod_creation(), first.pod_creation());
    assert!(second.run_updates().is_empty());
}

#[test]
fn a_stale_pod_still_in_the_cache_after_a_restart_is_deleted_again_not_restarted() {
    let mut world = reviewing_r1();
    let old_pod = world.observed.pods[0].clone();
    world.add(new_run("r2", PR1, SHA_B, 20));
    world.converge(21);
    world.observed.pods.push(old_pod.clone());
    let plan = plan_reviewer(&world.observed, at(22));
    assert_eq!(plan.pod_deletions(), [&PodDeletion { name: old_pod.name, uid: old_pod.uid }]);
    assert!(plan.restart.is_none() && plan.pod_creation().is_none() && plan.run_updates().is_empty());
}

#[test]
fn a_reconcile_killed_after_failing_runs_still_restarts_once() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR1, SHA_B, 20));
    let plan = plan_reviewer(&world.observed, at(21));
    // Only the run statuses were written before the controller died.
    for update in plan.run_updates() {
        world.write_run_status(&update.run, update.status.clone());
    }
    let retry = world.step(22);
    assert!(retry.restart.is_some());
    assert_eq!(retry.pod_deletions().len(), 1);
    assert!(retry.run_updates().iter().all(|u| u.change == RunChange::Assigned));
    assert_eq!(world.reviewer_status().restarts, 1);
    assert!(world.step(23).is_noop());
}

#[test]
fn a_reconcile_killed_after_writing_the_reviewer_status_creates_the_recorded_incarnation() {
    let mut world = reviewing_r1();
    world.add(new_run("r2", PR1, SHA_B, 20));
    let plan = plan_reviewer(&world.observed, at(21));
    for update in plan.run_updates() {
        world.write_run_status(&update.run, update.status.clone());
    }
    world.observed.reviewer.as_mut().unwrap().status = plan.reviewer_status().cloned();
    let retry = plan_reviewer(&world.observed, at(22));
    assert!(retry.restart.is_none());
    assert_eq!(retry.pod_deletions(), plan.pod_deletions());
    assert_eq!(retry.pod_creation(), plan.pod_creation());
    world.apply(&retry);
    world.converge(23);
    assert_eq!(world.reviewer_status().restarts, 1);
}

#[test]
fn permanent_launch_error_fails_the_runs_to_be_launched() {
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    let plan = plan_reviewer(&world.observed, at(1));
    let error = LaunchError { class: ApiErrorClass::Permanent, message: "pods is forbidden".into() };
    let failure = plan_launch_failure(&world.observed, &plan, &error, at(1));
    assert!(!failure.retry);
    assert_eq!(failure.plan.run_updates().len(), 1);
    let status = &failure.plan.run_updates()[0].status;
    assert_eq!(status.reason, Some(RunReason::LaunchFailed));
    assert!(status.message.as_deref().unwrap().contains("pods is forbidden"));
    let degraded = failure.plan.reviewer_status().cloned().unwrap();
    assert!(conditions::is(&degraded.conditions, CONDITION_DEGRADED, conditions::TRUE));
    for update in failure.plan.run_updates() {
        world.write_run_status(&update.run, update.status.clone());
    }
}

#[test]
fn transient_launch_error_degrades_and_fails_runs_only_after_the_launch_deadline() {
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.pods_become_visible = false;
    let plan = plan_reviewer(&world.observed, at(1));
    world.apply(&plan);
    let error = LaunchError { class: ApiErrorClass::Transient, message: "etcd timeout".into() };
    let failure = plan_launch_failure(&world.observed, &plan, &error, at(1));
    assert!(failure.retry);
    // The run the launch would have been given now waits, Pending, for a launch that succeeds.
    assert_eq!(changes_of(&failure.plan.run_updates()), [("r1", RunChange::Refreshed)]);
    assert_eq!(failure.plan.run_updates()[0].status.phase, Some(RunPhase::Pending));
    assert!(failure.plan.events().iter().any(|e| e.kind == EventKind::Warning));
    for update in failure.plan.run_updates() {
        world.write_run_status(&update.run, update.status.clone());
    }
    world.observed.reviewer.as_mut().unwrap().status = failure.plan.reviewer_status().cloned();

    let retry = plan_reviewer(&world.observed, at(60));
    assert!(retry.run_updates().is_empty());
    assert_eq!(retry.requeue_after, Some(Duration::from_secs(241)));
    let late = plan_reviewer(&world.observed, at(301));
    assert_eq!(changes(&late), [("r1", RunChange::LaunchFailed)]);
    assert!(late.pod_creation().unwrap().queue.is_empty());
    world.apply(&late);

    // Once the pod starts, Degraded clears.
    world.pods_become_visible = true;
    world.apply(&late);
    world.converge(400);
    assert!(conditions::is(&world.reviewer_status().conditions, CONDITION_DEGRADED, conditions::FALSE));
}

#[test]
fn api_errors_are_classified() {
    use ApiErrorClass::*;
    use PodOperation::*;
    assert_eq!(ApiErrorClass::of(Delete, Some(404), ""), Done);
    assert_eq!(ApiErrorClass::of(Create, Some(409), ""), Done);
    assert_eq!(ApiErrorClass::of(Delete, Some(409), ""), Transient);
    assert_eq!(ApiErrorClass::of(Create, Some(429), ""), Transient);
    assert_eq!(ApiErrorClass::of(Create, Some(503), ""), Transient);
    assert_eq!(ApiErrorClass::of(Create, None, ""), Transient);
    assert_eq!(ApiErrorClass::of(Create, Some(403), ""), Permanent);
    assert_eq!(ApiErrorClass::of(Create, Some(422), ""), Permanent);
    assert_eq!(ApiErrorClass::of(Create, Some(404), ""), Permanent);
}

#[test]
fn forbidden_launches_that_clear_by_themselves_are_transient() {
    use ApiErrorClass::*;
    use PodOperation::*;
    let quota = "pods \"review-w1-2\" is forbidden: exceeded quota: compute, requested: limits.cpu=1, used: limits.cpu=1, limited: limits.cpu=1";
    let account = "pods \"review-w1-1\" is forbidden: error looking up service account team/review-agent: serviceaccount \"review-agent\" not found";
    assert_eq!(ApiErrorClass::of(Create, Some(403), quota), Transient);
    assert_eq!(ApiErrorClass::of(Create, Some(403), account), Transient);
    // RBAC denials and quotas the pod can never satisfy stay permanent.
    let rbac = "pods is forbidden: User \"system:serviceaccount:review-system:review-operator\" cannot create resource \"pods\"";
    assert_eq!(ApiErrorClass::of(Create, Some(403), rbac), Permanent);
    let limits = "pods \"review-w1-1\" is forbidden: failed quota: compute: must specify limits.cpu for: agent";
    assert_eq!(ApiErrorClass::of(Create, Some(403), limits), Permanent);
    // The message only matters for 403s.
    assert_eq!(ApiErrorClass::of(Create, Some(422), quota), Permanent);
}

#[test]
fn a_quota_403_keeps_the_runs_waiting_until_the_launch_deadline() {
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.pods_become_visible = false;
    let plan = plan_reviewer(&world.observed, at(1));
    world.apply(&plan);
    let message =
        "pods \"review-w1-1\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=1, limited: pods=1";
    let class = ApiErrorClass::of(PodOperation::Create, Some(403), message);
    let failure = plan_launch_failure(&world.observed, &plan, &LaunchError { class, message: message.into() }, at(1));
    assert!(failure.retry, "retried with back-off");
    assert_eq!(changes_of(&failure.plan.run_updates()), [("r1", RunChange::Refreshed)], "no run fails at once");
    for update in failure.plan.run_updates() {
        world.write_run_status(&update.run, update.status.clone());
    }
    world.observed.reviewer.as_mut().unwrap().status = failure.plan.reviewer_status().cloned();
    assert!(plan_reviewer(&world.observed, at(60)).run_updates().is_empty());
    let late = plan_reviewer(&world.observed, at(301));
    assert_eq!(changes(&late), [("r1", RunChange::LaunchFailed)]);
    let failed = late.run_updates()[0].status.message.clone().unwrap_or_default();
    assert!(failed.contains("exceeded quota"), "{failed}");
}

#[test]
fn runs_of_other_reviewers_are_ignored() {
    let mut world = World::new();
    world.converge(0);
    let mut other = new_run("x1", PR1, SHA_A, 1);
    other.spec.reviewer = "review-w2".into();
    world.add(other);
    assert!(plan_reviewer(&world.observed, at(2)).is_noop());
}

#[test]
fn observed_pod_is_read_from_a_pod() {
    use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("review-w1-3".into()),
            uid: Some("u3".into()),
            labels: Some(BTreeMap::from([(labels::INCARNATION.to_owned(), "3".to_owned())])),
            ..ObjectMeta::default()
        },
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    };
    let observed = ObservedPod::from_pod(&pod).unwrap();
    assert_eq!(
        observed,
        ObservedPod {
            name: "review-w1-3".into(),
            uid: "u3".into(),
            incarnation: 3,
            phase: PodPhase::Running,
            ready: true,
            deleting: false,
            ..ObservedPod::default()
        }
    );
    assert!(ObservedPod::from_pod(&Pod::default()).is_none());
}

#[test]
fn a_restart_moves_the_queue_without_an_assigned_event_per_run() {
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.add(new_run("r2", PR2, SHA_X, 0));
    world.converge(1);
    world.add(new_run("r3", PR1, SHA_B, 20));
    let plans = world.converge(21);
    let follow_up = plans.last().expect("the follow-up plan assigns the new pod's queue");
    assert_eq!(changes(follow_up), [("r2", RunChange::Reassigned), ("r3", RunChange::Assigned)]);
    // r2 keeps its start time; only r3 starts, and only r3 gets an event.
    assert_eq!(world.status("r2").start_time, Some(Time(at(1))));
    assert_eq!(world.status("r3").start_time, Some(Time(at(21))));
    let assigned: Vec<_> = follow_up.events().iter().map(|e| (&e.object, e.reason)).collect();
    assert_eq!(assigned, [(&EventObject::Run("r3".into()), "Assigned")]);
    assert_eq!(world.reviewer_status().queue, ["r2", "r3"]);
}

#[test]
fn the_first_status_records_the_creation_revision_before_labels_change_it() {
    let mut world = World::new();
    world.converge(0);
    world.add(new_run("r1", PR1, SHA_A, 10));
    let created = world.run("r1").metadata.resource_version.clone();
    let plan = plan_reviewer(&world.observed, at(11));
    assert_eq!(plan.run_updates()[0].status.creation_revision, created);
    let order: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|step| match step {
            Step::WriteRunStatuses(_) => Some("status"),
            Step::LabelRuns(_) => Some("labels"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["status", "labels"]);
    world.apply(&plan);
    assert_ne!(world.run("r1").metadata.resource_version, created, "the writes changed the resourceVersion");
    assert_eq!(world.status("r1").creation_revision, created, "recorded once, and kept");
    assert!(world.step(12).is_noop());
}

#[test]
fn runs_queued_to_a_pod_being_created_are_labelled_with_their_first_status() {
    let mut world = World::new();
    world.add(new_run("r1", PR1, SHA_A, 0));
    let plan = plan_reviewer(&world.observed, at(1));
    assert!(plan.pod_creation().is_some());
    assert!(plan.run_labels().is_empty(), "a label write before the deferred first status would hide the revision");
    world.converge(1);
    assert_eq!(world.status("r1").creation_revision.as_deref(), Some("1"));
    assert!(world.run("r1").metadata.labels.is_some());
}

#[test]
fn a_restarted_controller_orders_same_second_runs_as_before() {
    // Both runs exist before any reconcile; the later-created one sorts first by name.
    let mut world = reviewing_r1();
    world.add(new_run("z-old", PR1, SHA_B, 30));
    world.add(new_run("a-new", PR1, SHA_C, 30));
    world.step(31);
    assert_eq!(world.status("z-old").reason, Some(RunReason::Superseded));
    assert_eq!(world.status("a-new").phase, Some(RunPhase::Running));
    // Every write changed the resourceVersions; the recorded ones still decide.
    world.touch("z-old");
    assert!(world.step(40).is_noop());
}

#[test]
fn same_second_runs_without_comparable_revisions_are_ordered_by_progress_and_say_so() {
    let mut world = World::new();
    world.opaque_revisions = true;
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.converge(1);
    world.add(new_run("r2", PR1, SHA_A, 0));
    let plan = world.step(2);
    // r1 is Running, r2 Pending: r2 counts as older, whatever the UIDs say.
    assert_eq!(changes(&plan), [("r2", RunChange::Duplicate), ("r1", RunChange::Refreshed)]);
    for name in ["r1", "r2"] {
        let status = world.status(name);
        let ordered = conditions::find(&status.conditions, CONDITION_ORDERED).unwrap();
        assert_eq!((ordered.status.as_str(), ordered.reason.as_str()), ("False", "ResourceVersionNotComparable"));
    }
    // A run alone in its second needs no comparison.
    world.add(new_run("r3", PR2, SHA_X, 50));
    world.step(51);
    assert!(conditions::find(&world.status("r3").conditions, CONDITION_ORDERED).is_none());
}

#[test]
fn conflicting_lineage_is_warned_about_once() {
    let mut world = reviewing_r1();
    let mut child = new_run("r2", PR1, SHA_B, 10);
    child.spec.pull_request.previous_head_sha = Some(SHA_A.into());
    world.add(child);
    world.step(11);
    let mut sibling = new_run("r3", PR1, SHA_C, 20);
    sibling.spec.pull_request.previous_head_sha = Some(SHA_A.into());
    world.add(sibling);
    // r3 replaces a Running run: it gets its first status, and the warning,
    // with its assignment to the fresh pod in the follow-up plan.
    let plans = world.converge(21);
    let events: Vec<&PlannedEvent> = plans.iter().flat_map(ReviewerPlan::events).collect();
    let warnings: Vec<&PlannedEvent> = events.iter().copied().filter(|e| e.reason == "ConflictingLineage").collect();
    assert_eq!(warnings.len(), 1, "{events:#?}");
    assert_eq!((warnings[0].object.clone(), warnings[0].kind), (EventObject::Run("r3".into()), EventKind::Warning));
    assert_eq!(world.status("r2").reason, Some(RunReason::Superseded), "the later-created child wins");
    assert_eq!(world.status("r3").phase, Some(RunPhase::Running));
    world.touch("r3");
    let plan = plan_reviewer(&world.observed, at(22));
    assert!(plan.events().iter().all(|e| e.reason != "ConflictingLineage"), "said once");
}

/// The Degraded condition of the Reviewer.
fn degraded(world: &World) -> Condition {
    conditions::find(&world.reviewer_status().conditions, CONDITION_DEGRADED).cloned().unwrap()
}

#[test]
fn a_pod_that_has_not_started_is_given_nothing_until_it_runs() {
    let mut world = World::new();
    world.pods_start = false;
    world.add(new_run("r1", PR1, SHA_A, 0));
    let create = plan_reviewer(&world.observed, at(1));
    assert_eq!(create.pod_creation().map(|l| l.queue.clone()), Some(vec!["r1".to_owned()]));
    world.apply(&create);
    let wait = plan_reviewer(&world.observed, at(2));
    assert!(wait.pod_creation().is_none() && wait.pod_deletions().is_empty());
    assert_eq!(changes(&wait), [("r1", RunChange::Refreshed)], "its first status, Pending");
    assert!(wait.events().is_empty(), "a pod on its way is no warning: {:?}", wait.events());
    world.apply(&wait);
    let status = world.status("r1");
    assert_eq!((status.phase, status.assignment, status.start_time), (Some(RunPhase::Pending), None, None));
    let reviewer = world.reviewer_status();
    assert_eq!((reviewer.pod, reviewer.queue.len()), (None, 0));
    // Nothing more until the pod runs, or the launch deadline of the run.
    let idle = plan_reviewer(&world.observed, at(3));
    assert!(idle.is_noop(), "{idle:#?}");
    assert_eq!(idle.requeue_after, Some(Duration::from_secs(297)));

    let pod = &mut world.observed.pods[0];
    (pod.phase, pod.ready) = (PodPhase::Running, true);
    let assign = world.step(20);
    assert_eq!(changes(&assign), [("r1", RunChange::Assigned)]);
    assert_eq!(world.status("r1").start_time, Some(Time(at(20))), "the timeout starts when the pod runs");
    assert_eq!(world.reviewer_status().pod.map(|p| p.incarnation), Some(1));
}

#[test]
fn runs_without_a_status_wait_for_a_starting_pod_for_a_short_grace_only() {
    let mut world = World::new();
    world.pods_start = false;
    world.add(new_run("r1", PR1, SHA_A, 0));
    // Two pushes that both claim to replace SHA_A: the later-created wins,
    // and its lineage conflict is said once.
    for (name, sha) in [("r2", SHA_B), ("r3", SHA_C)] {
        let mut child = new_run(name, PR1, sha, 0);
        child.spec.pull_request.previous_head_sha = Some(SHA_A.into());
        world.add(child);
    }
    world.add(new_run("r4", PR2, SHA_X, 0));
    let create = plan_reviewer(&world.observed, at(1));
    assert_eq!(changes(&create), [("r1", RunChange::Superseded), ("r2", RunChange::Superseded)]);
    assert!(create.events().iter().all(|e| e.reason != "ConflictingLineage"), "said with the first status");
    world.apply(&create);
    world.observed.pods[0].created = Some(at(1));
    for second in [2, 5] {
        let wait = plan_reviewer(&world.observed, at(second));
        assert!(wait.run_updates().is_empty() && wait.run_labels().is_empty(), "no write while it starts: {wait:#?}");
        assert!(wait.events().iter().all(|e| e.reason != "ConflictingLineage"), "said with the first status");
        assert_eq!(wait.requeue_after, Some(Duration::from_secs(11 - second as u64)), "the grace's end");
        world.apply(&wait);
    }
    assert!(world.run("r3").status.is_none() && world.run("r4").status.is_none());

    // Started within the grace: each run's first status is its assignment.
    let mut started = World { observed: world.observed.clone(), ..World::new() };
    let pod = &mut started.observed.pods[0];
    (pod.phase, pod.ready) = (PodPhase::Running, true);
    let assign = started.step(6);
    let written: Vec<&str> = assign.run_updates().iter().map(|u| u.run.as_str()).collect();
    assert_eq!(written, ["r3", "r4"], "one write per waiting run: {assign:#?}");
    assert_eq!(
        assign.events().iter().filter(|e| e.reason == "ConflictingLineage").count(),
        1,
        "said once, with the first status: {:#?}",
        assign.events()
    );
    assert!(started.status("r4").creation_revision.is_some(), "the first status records the creation revision");
    assert_eq!(started.status("r4").phase, Some(RunPhase::Running));

    // Not started when the grace ends: the runs say they wait.
    let late = plan_reviewer(&world.observed, at(11));
    assert_eq!(changes(&late), [("r3", RunChange::Refreshed), ("r4", RunChange::Refreshed)], "{late:#?}");
    world.apply(&late);
    assert_eq!(world.status("r3").phase, Some(RunPhase::Pending));
    assert_eq!(late.events().iter().filter(|e| e.reason == "ConflictingLineage").count(), 1);

    // A pod reported as not starting ends the wait at once.
    let mut stuck = World::new();
    stuck.pods_start = false;
    stuck.add(new_run("r1", PR1, SHA_A, 0));
    stuck.apply(&plan_reviewer(&stuck.observed, at(1)));
    stuck.observed.pods[0].created = Some(at(1));
    stuck.observed.pods[0].not_starting = Some("container agent: ErrImagePull".into());
    let said = plan_reviewer(&stuck.observed, at(2));
    assert_eq!(changes(&said), [("r1", RunChange::Refreshed)], "its first status, Pending");
}

#[test]
fn a_pod_that_does_not_start_fails_its_runs_after_the_launch_deadline_and_says_why() {
    let mut world = World::new();
    world.pods_start = false;
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.apply(&plan_reviewer(&world.observed, at(1)));
    let why = "container agent: ImagePullBackOff: Back-off pulling image \"registry.invalid/agent:1\"";
    world.observed.pods[0].not_starting = Some(why.into());
    world.observed.pods[0].created = Some(at(1));
    let stuck = plan_reviewer(&world.observed, at(30));
    assert_eq!(stuck.events().len(), 1, "{:?}", stuck.events());
    let event = &stuck.events()[0];
    assert_eq!((event.kind, event.reason), (EventKind::Warning, "PodNotStarting"));
    assert_eq!(event.note, format!("Pod review-w1-1 is not starting: {why}"));
    world.apply(&stuck);
    let condition = degraded(&world);
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "PodNotStarting"));
    assert!(condition.message.contains("ImagePullBackOff"), "{}", condition.message);
    let again = plan_reviewer(&world.observed, at(60));
    assert!(again.is_noop() && again.events().is_empty(), "said once: {again:#?}");
    assert_eq!(again.requeue_after, Some(Duration::from_secs(241)), "deadline counted from the pod's creation");

    let failed = plan_reviewer(&world.observed, at(301));
    assert_eq!(changes(&failed), [("r1", RunChange::LaunchFailed)]);
    assert!(failed.pod_deletions().is_empty() && failed.pod_creation().is_none(), "the kubelet keeps trying");
    world.apply(&failed);
    let status = world.status("r1");
    assert_eq!(status.reason, Some(RunReason::LaunchFailed));
    let message = status.message.unwrap_or_default();
    assert!(message.contains("review-w1-1 did not start within the launch deadline 5m"), "{message}");
    assert!(message.contains("ImagePullBackOff"), "{message}");

    // A run created later waits its own deadline on the same pod.
    world.add(new_run("r2", PR2, SHA_X, 400));
    world.apply(&plan_reviewer(&world.observed, at(401)));
    assert_eq!(world.status("r2").phase, Some(RunPhase::Pending));
    assert_eq!(plan_reviewer(&world.observed, at(402)).requeue_after, Some(Duration::from_secs(298)));
}

/// Marks the live pod as ended by the kubelet, `ran` seconds after it started at `started`.
fn end_pod(world: &mut World, started: i64, ran: i64) {
    let pod = world.observed.pods.iter_mut().find(|pod| !pod.deleting).unwrap();
    pod.phase = PodPhase::Failed;
    pod.ready = false;
    pod.ended = Some(PodEnd {
        started: Some(at(started)),
        finished: Some(at(started + ran)),
        summary: "Error, exit code 1".into(),
    });
}

#[test]
fn pods_that_keep_ending_soon_after_they_start_back_off_exponentially() {
    let mut world = reviewing_r1();
    end_pod(&mut world, 1, 2);
    let first = plan_reviewer(&world.observed, at(3));
    assert!(first.pod_creation().is_none(), "no pod before the back-off");
    assert_eq!(first.pod_deletions().len(), 1, "the ended pod goes");
    assert_eq!(first.requeue_after, Some(Duration::from_secs(5)));
    let event = first.events().into_iter().find(|e| e.reason == "CrashLoopBackOff").expect("a back-off event");
    assert_eq!(event.kind, EventKind::Warning);
    assert!(event.note.contains("Pod review-w1-1 ended 2s after it started: Error, exit code 1"), "{}", event.note);
    world.apply(&first);
    let back_off = world.reviewer_status().crash_back_off.unwrap();
    assert_eq!((back_off.failures, back_off.incarnation, back_off.next_launch), (1, 1, Time(at(8))));
    let condition = degraded(&world);
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "CrashLoopBackOff"));
    assert!(
        conditions::find(&world.reviewer_status().conditions, CONDITION_READY).is_some_and(|c| c.reason == "BackOff")
    );
    let waiting = plan_reviewer(&world.observed, at(6));
    assert!(waiting.is_noop() && waiting.events().is_empty(), "{waiting:#?}");

    // Each further early end doubles the wait: 5s, 10s, 20s.
    let mut launched_at = 8;
    for (failures, wait) in [(2, 10), (3, 20)] {
        let plans = world.converge(launched_at);
        assert_eq!(plans[0].pod_creation().map(|l| l.incarnation), Some(failures));
        assert_eq!(world.status("r1").phase, Some(RunPhase::Running), "reassigned to the new pod");
        end_pod(&mut world, launched_at, 1);
        world.apply(&plan_reviewer(&world.observed, at(launched_at + 1)));
        let back_off = world.reviewer_status().crash_back_off.unwrap();
        assert_eq!((back_off.failures, back_off.incarnation), (failures, failures));
        assert_eq!(back_off.next_launch, Time(at(launched_at + 1 + wait)));
        assert!(plan_reviewer(&world.observed, at(launched_at + wait)).pod_creation().is_none());
        launched_at += 1 + wait;
    }
    assert_eq!(world.reviewer_status().restarts, 0, "ended pods are not restarts");

    // A pod that stays up ends the back-off once it has run for a minute.
    world.converge(launched_at);
    world.observed.pods.iter_mut().find(|pod| !pod.deleting).unwrap().started_at = Some(at(launched_at));
    let early = plan_reviewer(&world.observed, at(launched_at + 30));
    assert!(early.is_noop(), "{early:#?}");
    assert_eq!(early.requeue_after, Some(Duration::from_secs(30)));
    world.step(launched_at + 61);
    assert_eq!(world.reviewer_status().crash_back_off, None);
    let condition = degraded(&world);
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("False", "PodRunning"));
}

#[test]
fn a_pod_that_ends_after_a_long_life_is_replaced_at_once_and_resets_the_back_off() {
    let mut world = reviewing_r1();
    end_pod(&mut world, 1, 1);
    world.apply(&plan_reviewer(&world.observed, at(2)));
    assert_eq!(world.reviewer_status().crash_back_off.map(|b| b.failures), Some(1));
    world.converge(7);
    end_pod(&mut world, 7, 600);
    let plan = plan_reviewer(&world.observed, at(607));
    assert_eq!(plan.pod_creation().map(|l| l.incarnation), Some(3));
    world.apply(&plan);
    assert_eq!(world.reviewer_status().crash_back_off, None);
}

#[test]
fn a_pod_that_is_not_starting_says_why_from_its_status() {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodStatus,
    };
    let waiting = |name: &str, reason: &str, message: Option<&str>| ContainerStatus {
        name: name.into(),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.into()), message: message.map(Into::into) }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    };
    let pod = |status: PodStatus| Pod {
        metadata: ObjectMeta {
            name: Some("review-w1-1".into()),
            uid: Some("u1".into()),
            labels: Some(BTreeMap::from([(labels::INCARNATION.to_owned(), "1".to_owned())])),
            ..ObjectMeta::default()
        },
        status: Some(status),
        ..Pod::default()
    };
    let on_its_way = pod(PodStatus {
        phase: Some("Pending".into()),
        init_container_statuses: Some(vec![waiting("install", "PodInitializing", None)]),
        container_statuses: Some(vec![waiting("agent", "ContainerCreating", None)]),
        ..PodStatus::default()
    });
    assert_eq!(ObservedPod::from_pod(&on_its_way).unwrap().not_starting, None);
    let refused = pod(PodStatus {
        phase: Some("Pending".into()),
        container_statuses: Some(vec![waiting(
            "agent",
            "CreateContainerConfigError",
            Some("container has runAsNonRoot and image will run as root"),
        )]),
        ..PodStatus::default()
    });
    assert_eq!(
        ObservedPod::from_pod(&refused).unwrap().not_starting.as_deref(),
        Some("container agent: CreateContainerConfigError: container has runAsNonRoot and image will run as root")
    );
    let unschedulable = pod(PodStatus {
        phase: Some("Pending".into()),
        conditions: Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some("0/3 nodes are available: 3 Insufficient cpu.".into()),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    assert_eq!(
        ObservedPod::from_pod(&unschedulable).unwrap().not_starting.as_deref(),
        Some("Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.")
    );
    let ended = pod(PodStatus {
        phase: Some("Failed".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "agent".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("OOMKilled".into()),
                    started_at: Some(Time(at(10))),
                    finished_at: Some(Time(at(13))),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
    let observed = ObservedPod::from_pod(&ended).unwrap();
    assert_eq!(observed.not_starting, None);
    let end = observed.ended.unwrap();
    assert_eq!((end.summary.as_str(), end.ran()), ("OOMKilled, exit code 137", Some(Duration::from_secs(3))));
}

fn deleted(plan: &ReviewerPlan) -> Vec<&str> {
    plan.run_deletions().iter().map(|deletion| deletion.name.as_str()).collect()
}

/// `r1` (A) superseded by `r2` (B onto A), which is approved at 10 s; the
/// Reviewer keeps finished runs for `ttl` seconds.
fn superseded_and_approved(ttl: Option<i64>) -> World {
    let mut world = World::new();
    world.observed.reviewer.as_mut().unwrap().spec.run_ttl_seconds_after_finished = ttl;
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.converge(1);
    let mut r2 = new_run("r2", PR1, SHA_B, 5);
    r2.spec.pull_request.previous_head_sha = Some(SHA_A.into());
    world.add(r2);
    world.converge(6);
    world.submit("r2", Verdict::Approved, "LGTM", 10);
    world.converge(11);
    assert_eq!(world.status("r1").completion_time, Some(Time(at(6))));
    world
}

#[test]
fn finished_runs_are_kept_until_their_ttl_then_deleted_after_the_kept_run_records_their_commits() {
    let mut world = superseded_and_approved(Some(60));
    let plan = plan_reviewer(&world.observed, at(30));
    assert!(plan.is_noop(), "{plan:#?}");
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(36)), "at r1's expiry, 66 s");

    let plan = world.step(66);
    assert_eq!(deleted(&plan), ["r1"], "r2 made B the head: it stays, past its TTL too");
    let writes: Vec<&str> = plan.steps.iter().map(Step::name).collect();
    assert_eq!(writes, ["write run statuses", "delete expired runs"], "the record before the deletion");
    assert_eq!(changes(&plan), [("r2", RunChange::Refreshed)]);
    assert_eq!(world.status("r2").replaced_shas, [SHA_A]);
    assert!(world.find_run("r1").is_none());
    assert!(world.step(200).is_noop(), "nothing more to delete or record");

    // A late replay of the deleted run's push is still late.
    world.add(new_run("r3", PR1, SHA_A, 300));
    let plan = world.step(301);
    assert_eq!(changes(&plan), [("r3", RunChange::Late)]);
    assert!(plan.restart.is_none());
}

#[test]
fn a_runs_own_ttl_overrides_its_reviewers_and_without_either_runs_stay() {
    let mut world = superseded_and_approved(None);
    assert!(world.step(100_000).is_noop(), "no TTL: kept until deleted");
    world.run_mut("r1").spec.ttl_seconds_after_finished = Some(0);
    assert_eq!(deleted(&world.step(100_001)), ["r1"]);

    let mut world = superseded_and_approved(Some(3600));
    world.run_mut("r1").spec.ttl_seconds_after_finished = Some(10);
    assert_eq!(plan_reviewer(&world.observed, at(15)).requeue_after, Some(Duration::from_secs(1)));
    assert_eq!(deleted(&world.step(16)), ["r1"]);
}

#[test]
fn unfinished_runs_and_runs_whose_delivery_is_under_way_are_not_deleted() {
    let mut world = superseded_and_approved(None);
    world.observed.reviewer.as_mut().unwrap().spec.run_ttl_seconds_after_finished = Some(0);
    world.run_mut("r1").status.as_mut().unwrap().delivery = Some(Delivery::new(DeliveryState::Pending));
    assert!(deleted(&world.step(12)).is_empty(), "r1's check run is still open");
    world.run_mut("r1").status.as_mut().unwrap().delivery = Some(Delivery::new(DeliveryState::Skipped));
    assert_eq!(deleted(&world.step(13)), ["r1"]);

    let mut world = World::new();
    world.observed.reviewer.as_mut().unwrap().spec.run_ttl_seconds_after_finished = Some(0);
    world.add(new_run("r1", PR1, SHA_A, 0));
    world.add(new_run("r2", PR2, SHA_A, 0));
    world.converge(1);
    assert!(deleted(&world.step(100_000)).is_empty(), "Running: not finished");
}

#[test]
fn runs_wait_to_be_deleted_until_the_run_that_keeps_their_commits_has_a_status() {
    let mut world = superseded_and_approved(None);
    world.observed.pods.clear();
    world.add(new_run("r3", PR1, SHA_C, 100));
    world.observed.reviewer.as_mut().unwrap().spec.run_ttl_seconds_after_finished = Some(0);
    let plan = plan_reviewer(&world.observed, at(101));
    assert_eq!(plan.pod_creation().map(|launch| launch.queue.clone()), Some(vec!["r3".to_owned()]));
    assert_eq!(plan.deferred_updates.len(), 1, "r3's first status waits for its pod");
    assert!(deleted(&plan).is_empty(), "r1 and r2 wait for r3's status: {plan:#?}");

    world.apply(&plan);
    let plan = plan_reviewer(&world.observed, at(102));
    assert_eq!(changes(&plan), [("r3", RunChange::Assigned)]);
    assert!(deleted(&plan).is_empty(), "{plan:#?}");
    world.apply(&plan);
    let plan = plan_reviewer(&world.observed, at(103));
    assert_eq!(deleted(&plan), ["r1", "r2"]);
    world.apply(&plan);
    assert_eq!(world.status("r3").replaced_shas, [SHA_A, SHA_B]);
}

#[test]
fn a_pod_on_its_way_costs_no_reviewer_status_write_until_it_runs() {
    let mut world = World::new();
    world.pods_start = false;
    world.add(new_run("r1", PR1, SHA_A, 0));
    let created = plan_reviewer(&world.observed, at(0));
    assert!(created.pod_creation().is_some());
    world.apply(&created);
    let ready = conditions::find(&world.reviewer_status().conditions, CONDITION_READY).cloned().unwrap();
    assert_eq!(
        (ready.reason.as_str(), ready.message.as_str()),
        ("PodStarting", "Reviewer pod review-w1-1 is starting")
    );
    let plan = plan_reviewer(&world.observed, at(2));
    assert!(plan.reviewer_status().is_none(), "the pod is Pending, starting normally: {plan:#?}");
}
