//! A randomized, seeded model test of the reconcile logic.
//!
//! Each scenario drives one Reviewer and 1 to 4 pull requests through a
//! random sequence of steps: new-SHA triggers, bursts of pushes in the same
//! second, force-pushes back to an earlier commit (with lineage), duplicate
//! triggers, replayed triggers for SHAs the pull request moved past (with
//! the lineage they had, or none), re-reviews after
//! ChangesRequested, cancels, verdict submissions (by the live pod, and stale
//! ones for runs that are no longer Running), pod deaths, timeouts, and idle
//! time. Between steps the controller reconciles 0 to 3 times. A reconcile
//! plans with [`plan_reviewer`] from the controller's cache and executes the
//! plan write by write, in the documented order, against the true state
//! ([`World`], which checks every ReviewRun status write with the CRD's CEL
//! rules), with these disturbances:
//! - injected API faults on a pod deletion or creation, transient (503) or
//!   permanent (403), handled with [`plan_launch_failure`];
//! - controller restarts: only a prefix of the writes is executed, then the
//!   controller starts over with a fresh cache (no in-memory state survives);
//! - stale caches: in some steps the cache is not refreshed, so reconciles
//!   see the cluster as it was before the step (lagging one step). The
//!   executor reads its own writes: a written object replaces the
//!   cached one with the API server's response.
//!
//! At the end the controller reconciles with a synced cache and no faults
//! until a plan is a no-op (at most [`CONVERGENCE_BOUND`] reconciles).
//!
//! # Checked at every write
//! - At most one live pod (not finished, not being deleted) exists.
//! - A pod the controller deleted, or recorded (in `Reviewer.status.pod` or
//!   a run's assignment), is never re-created under its name; UIDs are
//!   unique by construction. A name is reused only when its pod was deleted
//!   from outside before the controller recorded it: the planner then cannot
//!   tell it from a pod whose incarnation was written to the Reviewer status
//!   but whose creation never happened (a reconcile killed between steps 4
//!   and 6, or an ambiguous create failure), and creates the recorded
//!   incarnation again, which is what keeps pod creation idempotent.
//! - Every status write of the controller passes the CRD's CEL rules, unless
//!   it was planned from a cached copy of that run older than the API
//!   server's (an agent submitted meanwhile): that write is rejected, as it
//!   would be by the API server, and the reconcile ends with the error.
//! - Submissions for runs that are not Running are rejected by the CEL rules;
//!   submissions by the live pod for its Running runs are accepted (unless a
//!   ChangesRequested verdict has an empty body).
//! - A run that was ever Failed/Superseded is never Succeeded.
//! - Half of the scenarios give the Reviewer a TTL for finished runs (0 to
//!   60 s): a run is deleted only once finished for longer than its TTL,
//!   and never while it is the first run the scenario created for its pull
//!   request's current head; replays of deleted runs' pushes still fail.
//!
//! # Restarts: "the times Running work went stale"
//! Running work on pod U goes stale when a reconcile whose observation shows
//! U as the live pod (the pod of the newest incarnation, not finished, not
//! being deleted) writes a status that moves a run Running on U to Failed as
//! Superseded, Cancelled or TimedOut. However many runs of however many pull
//! requests go stale on U, in one reconcile or in several before U is
//! replaced, it is one time per pod: U is then pending. A pending U is
//! resolved by the first reconcile that either
//! - observes U no longer live (it died or was deleted from outside): no
//!   restart is due, the replacement is an ordinary launch; or
//! - observes U live: that reconcile must plan a restart replacing U (the
//!   model checks `plan.restart` is set exactly when the live pod is pending
//!   or the plan makes it pending), and U counts as restarted once the plan's
//!   Reviewer status write lands (a reconcile killed before that leaves U
//!   pending for the next one).
//!
//! The invariant: `Reviewer.status.restarts` equals the number of pods
//! resolved as restarted, and equals the number of those the controller
//! deleted while they were live plus those that died from outside after the
//! restart was recorded but before the controller deleted them.
//!
//! # Checked after convergence
//! - Per pull request at most one unfinished run, and it is the head's: for
//!   the SHA the scenario pushed last, created since that push; every
//!   replayed run failed as Superseded. Runs get random names, pushes carry
//!   the previous head at random, and runs of one step share their creation
//!   second, so the oracle is what the scenario did (the order it created
//!   runs and the history it pushed), never the runs' metadata. A replayed
//!   run that expired is checked as it was when deleted.
//! - Exactly one live pod; `Reviewer.status.pod` names it, and
//!   `Reviewer.status.queue` lists exactly the unfinished current runs, all
//!   Running and assigned to it.
//! - No Running run is past its timeout; no pod is pending a restart.
//!
//! `REVIEW_MODEL_SCENARIOS` sets the number of scenarios (default
//! [`DEFAULT_SCENARIOS`]), `REVIEW_MODEL_SEED` the seed of the first one
//! (scenario `i` uses seed + i). A failure prints the seed and the trace.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::world::{World, at, new_run};
use super::*;

const DEFAULT_SCENARIOS: u64 = 200;
const DEFAULT_SEED: u64 = 0x5eed_2026;
const CONVERGENCE_BOUND: usize = 20;
const TIMEOUTS: [(&str, i64); 2] = [("10m", 600), ("1h", 3600)];

#[test]
fn randomized_reconcile_model() {
    let scenarios = env_u64("REVIEW_MODEL_SCENARIOS").unwrap_or(DEFAULT_SCENARIOS);
    let first = env_u64("REVIEW_MODEL_SEED").unwrap_or(DEFAULT_SEED);
    for seed in first..first.saturating_add(scenarios) {
        let trace = Rc::new(RefCell::new(Vec::new()));
        let outcome = catch_unwind(AssertUnwindSafe(|| Scenario::new(seed, Rc::clone(&trace)).run()));
        if outcome.is_err() {
            let trace = trace.borrow();
            let tail = &trace[trace.len().saturating_sub(60)..];
            panic!(
                "model scenario failed; reproduce with REVIEW_MODEL_SEED={seed} REVIEW_MODEL_SCENARIOS=1\n\
                 last {} of {} trace lines:\n{}",
                tail.len(),
                trace.len(),
                tail.join("\n")
            );
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name} must be an unsigned integer, got {value:?}")))
}

/// A pull request as the code host knows it.
struct PullRequestModel {
    url: String,
    /// Every head it had, oldest first; the last is the head. A SHA appears
    /// again after a force-push back to it.
    shas: Vec<String>,
    /// The creation sequence number from which runs for the head SHA are
    /// the head's: the head's last move.
    head_since: usize,
}

/// How one reconcile ends.
enum Disturbance {
    None,
    /// The controller dies before write `n` of the plan (counting each
    /// object a step writes).
    KillBefore(usize),
    /// The pod step (the `n`th step) fails.
    Fault(usize, LaunchError),
}

struct Scenario {
    rng: StdRng,
    trace: Rc<RefCell<Vec<String>>>,
    truth: World,
    /// The controller's cache.
    cache: ObservedReviewer,
    now: i64,
    prs: Vec<PullRequestModel>,
    runs_created: usize,
    shas_created: u64,
    /// Runs created for a SHA their pull request had moved past.
    replayed: BTreeSet<String>,
    /// The order in which the scenario created the runs: run name to sequence number.
    created: BTreeMap<String, usize>,
    /// Runs ever seen Failed/Superseded.
    superseded: BTreeSet<String>,
    /// Pods whose Running work went stale, not yet resolved.
    pending_stale: BTreeSet<String>,
    /// Pods resolved as restarted, and whether they are gone since.
    restarted: BTreeMap<String, bool>,
    /// Names of pods the API server has on record in the Reviewer status
    /// (`status.pod`) or a run's assignment.
    recorded_pods: BTreeSet<String>,
    /// Names of pods the controller deleted.
    controller_deleted: BTreeSet<String>,
    /// Restarted pods deleted by the controller while live.
    replacements: i64,
    /// Restarted pods that died from outside before the controller deleted them.
    died_after_restart: i64,
}

impl Scenario {
    fn new(seed: u64, trace: Rc<RefCell<Vec<String>>>) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let prs = (1..=rng.random_range(1..=4))
            .map(|n| PullRequestModel {
                url: format!("https://github.com/acme/widgets/pull/{n}"),
                shas: Vec::new(),
                head_since: 0,
            })
            .collect();
        let mut truth = World::new();
        if let Some(reviewer) = truth.observed.reviewer.as_mut() {
            reviewer.spec.run_ttl_seconds_after_finished = rng.random_bool(0.5).then(|| rng.random_range(0..=60));
        }
        let cache = truth.observed.clone();
        Self {
            rng,
            trace,
            truth,
            cache,
            now: 0,
            prs,
            runs_created: 0,
            shas_created: 0,
            replayed: BTreeSet::new(),
            created: BTreeMap::new(),
            superseded: BTreeSet::new(),
            pending_stale: BTreeSet::new(),
            restarted: BTreeMap::new(),
            recorded_pods: BTreeSet::new(),
            controller_deleted: BTreeSet::new(),
            replacements: 0,
            died_after_restart: 0,
        }
    }

    fn log(&self, line: String) {
        self.trace.borrow_mut().push(format!("[t={}] {line}", self.now));
    }

    fn run(mut self) {
        let steps = self.rng.random_range(5..=30);
        for _ in 0..steps {
            self.now += self.rng.random_range(1..=20);
            self.external_step();
            self.check_truth();
            let lagging = self.rng.random_bool(0.3);
            for _ in 0..self.rng.random_range(0..=3) {
                if !lagging {
                    self.sync_cache();
                }
                self.reconcile(true);
            }
        }
        self.converge();
        self.check_converged();
    }

    fn sync_cache(&mut self) {
        self.cache = self.truth.observed.clone();
    }

    // ----- external steps -----

    fn external_step(&mut self) {
        match self.rng.random_range(0..100) {
            0..15 => self.trigger_new_sha(),
            15..22 => self.push_burst(),
            22..25 => self.force_push_back(),
            25..33 => self.trigger_duplicate(),
            33..41 => self.trigger_replay(),
            41..46 => self.trigger_re_review(),
            46..53 => self.cancel(),
            53..70 => self.submit_live(),
            70..76 => self.submit_stale(),
            76..84 => self.pod_death(),
            84..88 => self.finish_terminating(),
            88..94 => {
                self.now += 3601;
                self.log("clock advanced past every timeout".into());
            }
            _ => self.log("idle".into()),
        }
    }

    /// Creates a run named at random, so that names sort against creation
    /// order as often as with it; `previous` is the lineage it carries.
    fn create_run(&mut self, pr: usize, sha: String, previous: Option<String>, note: &str) {
        self.runs_created += 1;
        let name = loop {
            let name = format!("run-{:06x}", self.rng.random_range(0..0x100_0000));
            if !self.created.contains_key(&name) {
                break name;
            }
        };
        self.created.insert(name.clone(), self.runs_created);
        let mut run = new_run(&name, &self.prs[pr].url, &sha, self.now);
        run.spec.timeout = TIMEOUTS.choose(&mut self.rng).unwrap().0.into();
        run.spec.pull_request.previous_head_sha = previous.clone();
        if self.prs[pr].shas.last() != Some(&sha) {
            self.replayed.insert(name.clone());
        }
        let lineage = previous.map_or(String::new(), |previous| format!(" after {}", &previous[..10]));
        self.log(format!("{note}: {name} for PR {} at {}{lineage}", pr + 1, &sha[..10]));
        self.truth.add(run);
    }

    /// A push of `sha` onto the pull request's head, which it replaces;
    /// with or without lineage at random.
    fn push(&mut self, pr: usize, sha: String, note: &str) {
        let head = self.prs[pr].shas.last().cloned();
        let previous = head.filter(|_| self.rng.random_bool(0.5));
        self.prs[pr].shas.push(sha.clone());
        self.prs[pr].head_since = self.runs_created + 1;
        self.create_run(pr, sha, previous, note);
    }

    fn new_sha(&mut self) -> String {
        self.shas_created += 1;
        format!("{:08x}{:032x}", self.shas_created, self.rng.random::<u128>())
    }

    fn trigger_new_sha(&mut self) {
        let pr = self.rng.random_range(0..self.prs.len());
        let sha = self.new_sha();
        self.push(pr, sha, "new SHA");
    }

    /// Several pushes of one pull request in the same second.
    fn push_burst(&mut self) {
        let pr = self.rng.random_range(0..self.prs.len());
        for _ in 0..self.rng.random_range(2..=3) {
            let sha = self.new_sha();
            self.push(pr, sha, "same-second push");
        }
    }

    /// A force-push back to an earlier commit: only lineage can say that
    /// the earlier SHA is the newer head.
    fn force_push_back(&mut self) {
        let pr = self.rng.random_range(0..self.prs.len());
        let shas = &self.prs[pr].shas;
        let Some(head) = shas.last().cloned() else { return self.trigger_new_sha() };
        let earlier: Vec<String> = shas.iter().filter(|sha| **sha != head).cloned().collect();
        let Some(sha) = earlier.choose(&mut self.rng).cloned() else { return self.trigger_new_sha() };
        self.prs[pr].shas.push(sha.clone());
        self.prs[pr].head_since = self.runs_created + 1;
        self.create_run(pr, sha, Some(head), "force-push back");
    }

    fn trigger_duplicate(&mut self) {
        let pr = self.rng.random_range(0..self.prs.len());
        match self.prs[pr].shas.last().cloned() {
            Some(head) => self.create_run(pr, head, None, "duplicate trigger"),
            None => self.trigger_new_sha(),
        }
    }

    fn trigger_replay(&mut self) {
        let pr = self.rng.random_range(0..self.prs.len());
        let shas = &self.prs[pr].shas;
        if shas.len() < 2 {
            return self.trigger_new_sha();
        }
        // A push of the history again, with the lineage it had, unless that
        // lineage names the current head: such a replay reads as a new push.
        let index = self.rng.random_range(0..shas.len() - 1);
        let old = shas[index].clone();
        if Some(&old) == shas.last() {
            return self.create_run(pr, old, None, "replayed trigger of the head");
        }
        let previous = index
            .checked_sub(1)
            .map(|i| shas[i].clone())
            .filter(|previous| Some(previous) != shas.last() && self.rng.random_bool(0.5));
        self.create_run(pr, old, previous, "replayed trigger");
    }

    fn trigger_re_review(&mut self) {
        let candidates: Vec<(usize, String)> = self
            .truth
            .observed
            .runs
            .iter()
            .filter(|run| {
                let status = run.status.as_ref();
                status.and_then(|s| s.result.as_ref()).is_some_and(|r| r.verdict == Verdict::ChangesRequested)
            })
            .filter_map(|run| {
                let pr = self.prs.iter().position(|pr| pr.url == run.spec.pull_request.url)?;
                (self.prs[pr].shas.last() == Some(&run.spec.pull_request.head_sha))
                    .then(|| (pr, run.spec.pull_request.head_sha.clone()))
            })
            .collect();
        match candidates.choose(&mut self.rng).cloned() {
            Some((pr, sha)) => self.create_run(pr, sha, None, "re-review after ChangesRequested"),
            None => self.trigger_duplicate(),
        }
    }

    /// Cancels a run the controller has written a status for. A write to a
    /// run before the controller first sees it hides its creation's
    /// resourceVersion, so its place among the runs of its second is
    /// uncertain by design; the planner's unit tests cover that case.
    fn cancel(&mut self) {
        let names: Vec<String> = self
            .truth
            .observed
            .runs
            .iter()
            .filter(|run| run.status.is_some())
            .filter_map(|run| run.metadata.name.clone())
            .collect();
        let Some(name) = names.choose(&mut self.rng).cloned() else { return };
        let run = self.truth.run_mut(&name);
        if !run.spec.cancel_requested {
            run.spec.cancel_requested = true;
            run.metadata.generation = Some(run.metadata.generation.unwrap_or(1) + 1);
            self.truth.touch(&name);
        }
        self.log(format!("cancel requested for {name}"));
    }

    fn truth_live_pod(&self) -> Option<ObservedPod> {
        self.truth.observed.pods.iter().find(|pod| !pod.deleting && !pod.finished()).cloned()
    }

    fn submit_live(&mut self) {
        let Some(live) = self.truth_live_pod() else { return self.log("no live pod to submit".into()) };
        let running: Vec<String> = self
            .truth
            .observed
            .runs
            .iter()
            .filter(|run| {
                let status = run.status.clone().unwrap_or_default();
                status.phase == Some(RunPhase::Running)
                    && status.assignment.is_some_and(|assignment| assignment.pod_uid == live.uid)
            })
            .filter_map(|run| run.metadata.name.clone())
            .collect();
        let Some(name) = running.choose(&mut self.rng).cloned() else {
            return self.log("no Running run on the live pod".into());
        };
        let (verdict, body) = match self.rng.random_range(0..10) {
            0..5 => (Verdict::Approved, ""),
            5..9 => (Verdict::ChangesRequested, "Please add a test."),
            _ => (Verdict::ChangesRequested, ""),
        };
        let result = self.truth.try_submit(&name, verdict, body, self.now);
        self.log(format!("{} submits {verdict:?} {body:?} for {name}: {result:?}", live.name));
        if body.is_empty() && verdict == Verdict::ChangesRequested {
            assert!(result.is_err(), "a ChangesRequested verdict without a body was accepted for {name}");
        } else if let Err(error) = result {
            panic!("the submission of the live pod for its Running run {name} was rejected: {error}");
        }
    }

    fn submit_stale(&mut self) {
        let finished: Vec<String> = self
            .truth
            .observed
            .runs
            .iter()
            .filter(|run| run.status.as_ref().and_then(|s| s.phase) != Some(RunPhase::Running))
            .filter_map(|run| run.metadata.name.clone())
            .collect();
        let Some(name) = finished.choose(&mut self.rng).cloned() else { return };
        let verdict = if self.rng.random_bool(0.5) { Verdict::Approved } else { Verdict::ChangesRequested };
        let result = self.truth.try_submit(&name, verdict, "late review", self.now);
        self.log(format!("stale submission {verdict:?} for {name} ({:?}): {result:?}", self.truth.status(&name).phase));
        assert!(result.is_err(), "a submission for {name}, which is not Running, was accepted");
    }

    fn pod_death(&mut self) {
        let Some(live) = self.truth_live_pod() else { return self.log("no live pod to kill".into()) };
        let how = self.rng.random_range(0..3);
        let pods = &mut self.truth.observed.pods;
        let index = pods.iter().position(|pod| pod.uid == live.uid).unwrap();
        match how {
            0 => {
                pods[index].phase = PodPhase::Failed;
                pods[index].ready = false;
            }
            1 => pods[index].deleting = true,
            _ => {
                pods.remove(index);
            }
        }
        if let Some(gone) = self.restarted.get_mut(&live.uid)
            && !*gone
        {
            *gone = true;
            self.died_after_restart += 1;
        }
        let how = ["failed", "terminating", "deleted"][how];
        self.log(format!("pod {} ({}) {how} from outside", live.name, live.uid));
    }

    fn finish_terminating(&mut self) {
        self.truth.observed.pods.retain(|pod| !pod.deleting);
        self.log("terminating pods are gone".into());
    }

    // ----- the controller -----

    /// The live pod as the controller observes it: the pod of the newest
    /// incarnation, unless finished or being deleted.
    fn observed_live(observed: &ObservedReviewer) -> Option<&ObservedPod> {
        let recorded = observed.reviewer.as_ref().and_then(|r| r.status.as_ref()).map_or(0, |s| s.incarnation);
        let newest = observed.pods.iter().map(|pod| pod.incarnation).max().unwrap_or(0).max(recorded);
        observed.pods.iter().find(|pod| pod.incarnation == newest && !pod.deleting && !pod.finished())
    }

    fn is_stale_failure(before: &ReviewRunStatus, after: &ReviewRunStatus, pod_uid: &str) -> bool {
        before.phase == Some(RunPhase::Running)
            && before.assignment.as_ref().is_some_and(|a| a.pod_uid == pod_uid)
            && after.phase == Some(RunPhase::Failed)
            && matches!(after.reason, Some(RunReason::Superseded | RunReason::Cancelled | RunReason::TimedOut))
    }

    fn reconcile(&mut self, disturbed: bool) {
        let observed = self.cache.clone();
        let plan = plan_reviewer(&observed, at(self.now));
        let live = Self::observed_live(&observed).cloned();

        // Resolve pending pods the controller sees gone; expect a restart of a live pending one.
        let gone: Vec<String> = self
            .pending_stale
            .iter()
            .filter(|uid| live.as_ref().is_none_or(|live| &&live.uid != uid))
            .cloned()
            .collect();
        for uid in gone {
            self.log(format!("pod {uid} went stale but is gone: no restart due"));
            self.pending_stale.remove(&uid);
        }
        let expect_restart = live.as_ref().is_some_and(|live| {
            self.pending_stale.contains(&live.uid)
                || plan.run_updates().iter().any(|update| {
                    let before = observed
                        .runs
                        .iter()
                        .find(|run| run.metadata.name.as_deref() == Some(update.run.as_str()))
                        .and_then(|run| run.status.clone())
                        .unwrap_or_default();
                    Self::is_stale_failure(&before, &update.status, &live.uid)
                })
        });
        assert_eq!(
            plan.restart.is_some(),
            expect_restart,
            "restart planned iff the live pod's Running work went stale: live {live:?}, plan {plan:#?}"
        );
        if plan.restart.is_some() {
            let live = live.as_ref().unwrap();
            assert!(plan.pod_deletions().iter().any(|d| d.uid == live.uid), "a restart deletes the live pod");
        }
        if plan.is_noop() {
            return;
        }

        // The writes of the plan's steps, one per object: the executor
        // writes a step's runs concurrently, so a controller killed during
        // a step may have written any prefix of them.
        let writes: Vec<(usize, usize)> = plan
            .steps
            .iter()
            .enumerate()
            .flat_map(|(index, step)| {
                let objects = match step {
                    Step::WriteRunStatuses(updates) => updates.len(),
                    Step::LabelRuns(labels) => labels.len(),
                    Step::DeleteRuns(deletions) => deletions.len(),
                    Step::EmitEvents(_) => 0,
                    _ => 1,
                };
                (0..objects).map(move |object| (index, object))
            })
            .collect();
        let pod_steps: Vec<usize> = (0..plan.steps.len())
            .filter(|&index| matches!(plan.steps[index], Step::DeletePod(_) | Step::CreatePod(_)))
            .collect();
        let disturbance = match self.rng.random_range(0..100) {
            0..10 if disturbed => Disturbance::KillBefore(self.rng.random_range(0..writes.len())),
            10..25 if disturbed && !pod_steps.is_empty() => {
                let at_step = *pod_steps.choose(&mut self.rng).unwrap();
                let error = if self.rng.random_bool(0.5) {
                    LaunchError { class: ApiErrorClass::Transient, message: "etcdserver: request timed out".into() }
                } else {
                    LaunchError {
                        class: ApiErrorClass::Permanent,
                        message: "pods \"review-w1\" is forbidden: exceeded quota".into(),
                    }
                };
                Disturbance::Fault(at_step, error)
            }
            _ => Disturbance::None,
        };
        self.log(format!(
            "reconcile: {} run updates {:?}, restart {:?}, delete {:?}, create {:?}",
            plan.run_updates().len(),
            plan.run_updates().iter().map(|u| format!("{}:{:?}", u.run, u.change)).collect::<Vec<_>>(),
            plan.restart.as_ref().map(|r| r.reason),
            plan.pod_deletions().iter().map(|d| &d.name).collect::<Vec<_>>(),
            plan.pod_creation().map(|l| (&l.name, &l.queue)),
        ));

        for (position, &(index, object)) in writes.iter().enumerate() {
            let step = &plan.steps[index];
            match &disturbance {
                Disturbance::KillBefore(n) if *n == position => {
                    self.log(format!(
                        "controller killed before write {position} of {} ({} {object})",
                        writes.len(),
                        step.name()
                    ));
                    self.sync_cache();
                    return;
                }
                Disturbance::Fault(n, error) if *n == index => {
                    self.log(format!("pod step {step:?} fails: {error:?}"));
                    let failure = plan_launch_failure(&observed, &plan, error, at(self.now));
                    assert_eq!(failure.retry, error.class == ApiErrorClass::Transient);
                    self.execute_failure(&observed, &failure.plan);
                    return;
                }
                _ => {}
            }
            let completed = match step {
                Step::WriteRunStatuses(updates) => self.write_run_status(&observed, &updates[object], live.as_ref()),
                Step::WriteReviewerStatus(status) => {
                    self.write_reviewer_status(status, plan.restart.as_ref().and(live.as_ref()));
                    true
                }
                Step::DeletePod(deletion) => self.delete_pod(&observed, &plan, deletion),
                Step::CreatePod(launch) => {
                    self.create_pod(launch);
                    true
                }
                Step::LabelRuns(labels) => {
                    let exists = self.truth.find_run(&labels[object].run).is_some();
                    self.truth.label_run(&labels[object]);
                    self.refresh_cached_run(&labels[object].run);
                    exists
                }
                Step::AddFinalizer | Step::RemoveFinalizer => {
                    self.truth.apply_step(step);
                    self.cache.reviewer = self.truth.observed.reviewer.clone();
                    true
                }
                Step::DeleteRuns(deletions) => {
                    self.delete_run(&deletions[object]);
                    true
                }
                Step::EmitEvents(_) => true,
            };
            self.check_truth();
            if !completed {
                return;
            }
        }
    }

    /// Executes the steps of a launch failure plan: run statuses (which may
    /// be rejected when planned from a stale cache) and the Reviewer status.
    fn execute_failure(&mut self, observed: &ObservedReviewer, failure: &ReviewerPlan) {
        for step in &failure.steps {
            match step {
                Step::WriteRunStatuses(updates) => {
                    for update in updates {
                        if !self.write_run_status(observed, update, None) {
                            return;
                        }
                    }
                }
                Step::WriteReviewerStatus(status) => self.write_reviewer_status(status, None),
                Step::EmitEvents(_) => {}
                other => panic!("a launch failure plan writes statuses only: {other:?}"),
            }
        }
    }

    /// Deletes an expired run, checking from what the scenario did that it
    /// may go: finished for longer than its TTL, and not the run that made
    /// its pull request's head the head.
    fn delete_run(&mut self, deletion: &RunDeletion) {
        if let Some(run) =
            self.truth.find_run(&deletion.name).filter(|run| run.metadata.uid == Some(deletion.uid.clone()))
        {
            let status = run.status.clone().unwrap_or_default();
            assert!(status.phase.is_some_and(RunPhase::is_terminal), "unfinished run {} deleted", deletion.name);
            let reviewer_ttl =
                self.truth.observed.reviewer.as_ref().and_then(|r| r.spec.run_ttl_seconds_after_finished);
            let ttl = run.spec.ttl_seconds_after_finished.or(reviewer_ttl).expect("a TTL");
            let completed = status.completion_time.expect("a completion time").0.as_second() - at(0).as_second();
            assert!(completed + ttl <= self.now, "{} deleted before its TTL", deletion.name);
            assert_ne!(
                self.head_maker(&run.spec.pull_request.url),
                Some(deletion.name.clone()),
                "the run that made the head was deleted"
            );
            self.log(format!("expired run {} deleted", deletion.name));
        }
        self.truth.delete_run(deletion);
        self.cache.runs.retain(|run| run.metadata.uid.as_deref() != Some(deletion.uid.as_str()));
    }

    /// The first run the scenario created for the pull request's head SHA
    /// since the head last moved.
    fn head_maker(&self, url: &str) -> Option<String> {
        let pr = self.prs.iter().find(|pr| pr.url == url)?;
        let head = pr.shas.last()?;
        self.truth
            .observed
            .runs
            .iter()
            .chain(self.truth.deleted.values())
            .filter(|run| run.spec.pull_request.url == url && &run.spec.pull_request.head_sha == head)
            .filter_map(|run| {
                let name = run.metadata.name.clone()?;
                let sequence = *self.created.get(&name)?;
                (sequence >= pr.head_since).then_some((sequence, name))
            })
            .min()
            .map(|(_, name)| name)
    }

    fn refresh_cached_run(&mut self, name: &str) {
        let Some(fresh) = self.truth.find_run(name).cloned() else {
            self.cache.runs.retain(|r| r.metadata.name.as_deref() != Some(name));
            return;
        };
        if let Some(cached) = self.cache.runs.iter_mut().find(|r| r.metadata.name.as_deref() == Some(name)) {
            *cached = fresh;
        }
    }

    /// Writes a run status planned from `observed`; `false` when the API
    /// server rejected it, which is allowed only when the cached run was
    /// older than the API server's.
    fn write_run_status(
        &mut self,
        observed: &ObservedReviewer,
        update: &RunUpdate,
        live: Option<&ObservedPod>,
    ) -> bool {
        if self.truth.find_run(&update.run).is_none() {
            assert!(self.truth.deleted.contains_key(&update.run), "a status write for a run never created");
            self.log(format!("status write for {} rejected: deleted (stale cache)", update.run));
            return false;
        }
        let before = self.truth.status(&update.run);
        if let Err(error) = self.truth.try_write_run_status(&update.run, update.status.clone()) {
            let cached = observed.runs.iter().find(|run| run.metadata.name.as_deref() == Some(update.run.as_str()));
            assert_ne!(
                cached.and_then(|run| run.status.as_ref()),
                self.truth.run(&update.run).status.as_ref(),
                "a status write planned from an up-to-date run was rejected: {error}"
            );
            self.log(format!("status write for {} rejected (stale cache): {error}", update.run));
            return false;
        }
        if let Some(live) = live
            && Self::is_stale_failure(&before, &update.status, &live.uid)
            && !self.restarted.contains_key(&live.uid)
            && self.pending_stale.insert(live.uid.clone())
        {
            self.log(format!("Running work on {} went stale ({} {:?})", live.name, update.run, update.status.reason));
        }
        self.refresh_cached_run(&update.run);
        true
    }

    /// Writes the Reviewer status; `restarted` is the pod a restart plan replaces.
    fn write_reviewer_status(&mut self, status: &ReviewerStatus, restarted: Option<&ObservedPod>) {
        self.truth.set_reviewer_status(status);
        self.cache.reviewer = self.truth.observed.reviewer.clone();
        if let Some(pod) = restarted {
            assert!(self.pending_stale.remove(&pod.uid), "restarted {} whose work did not go stale", pod.name);
            let gone = !self.truth.observed.pods.iter().any(|p| p.uid == pod.uid && !p.deleting && !p.finished());
            if gone {
                // It died from outside after the controller saw it last.
                self.died_after_restart += 1;
            }
            self.restarted.insert(pod.uid.clone(), gone);
            self.log(format!("restart of {} recorded", pod.name));
        }
        let expected = i64::try_from(self.restarted.len()).unwrap();
        assert_eq!(self.truth.reviewer_status().restarts, expected, "status.restarts counts each stale pod once");
    }

    fn delete_pod(&mut self, observed: &ObservedReviewer, plan: &ReviewerPlan, deletion: &PodDeletion) -> bool {
        let was_live = self.truth.observed.pods.iter().any(|p| p.uid == deletion.uid && !p.deleting && !p.finished());
        match self.truth.delete_pod(deletion) {
            Ok(deleted) => {
                if deleted {
                    self.controller_deleted.insert(deletion.name.clone());
                }
                if deleted
                    && was_live
                    && let Some(gone) = self.restarted.get_mut(&deletion.uid)
                    && !*gone
                {
                    *gone = true;
                    self.replacements += 1;
                }
                self.cache.pods.retain(|pod| pod.uid != deletion.uid);
                self.log(format!("deleted pod {} ({}): {deleted}", deletion.name, deletion.uid));
                true
            }
            Err(class) => {
                // The UID precondition failed: the name belongs to a newer pod.
                let error = LaunchError { class, message: "Precondition failed: UID in precondition".into() };
                self.log(format!("deleting {} conflicts: {error:?}", deletion.name));
                let failure = plan_launch_failure(observed, plan, &error, at(self.now));
                self.execute_failure(observed, &failure.plan);
                self.cache.pods = self.truth.observed.pods.clone();
                false
            }
        }
    }

    fn create_pod(&mut self, launch: &PodLaunch) {
        let created = self.truth.create_pod(launch);
        self.log(format!("create pod {}: {}", launch.name, if created { "created" } else { "409 AlreadyExists" }));
        if created {
            if self.truth.pods_created[&launch.name] > 1 {
                assert!(
                    !self.recorded_pods.contains(&launch.name) && !self.controller_deleted.contains(&launch.name),
                    "pod {} was re-created after the controller recorded or deleted it",
                    launch.name
                );
                self.log(format!(
                    "name {} reused: its first pod vanished before the controller recorded it",
                    launch.name
                ));
            }
            let pod = self.truth.observed.pods.iter().find(|p| p.name == launch.name).cloned().unwrap();
            self.cache.pods.retain(|p| p.name != launch.name);
            self.cache.pods.push(pod);
        }
    }

    fn converge(&mut self) {
        self.log("converging".into());
        for _ in 0..CONVERGENCE_BOUND {
            self.now += 1;
            self.sync_cache();
            let plan = plan_reviewer(&self.cache, at(self.now));
            if plan.is_noop() {
                self.reconcile(false);
                return;
            }
            self.reconcile(false);
        }
        panic!("no convergence within {CONVERGENCE_BOUND} reconciles");
    }

    // ----- invariants -----

    fn check_truth(&mut self) {
        let status = self.truth.reviewer_status();
        self.recorded_pods.extend(status.pod.map(|pod| pod.name));
        let assigned = self.truth.observed.runs.iter().filter_map(|run| run.status.as_ref()?.assignment.clone());
        self.recorded_pods.extend(assigned.map(|assignment| assignment.pod));
        let live = self.truth.observed.pods.iter().filter(|pod| !pod.deleting && !pod.finished()).count();
        assert!(live <= 1, "{live} live pods: {:#?}", self.truth.observed.pods);
        for run in &self.truth.observed.runs {
            let name = run.metadata.name.clone().unwrap();
            let status = run.status.clone().unwrap_or_default();
            if status.reason == Some(RunReason::Superseded) {
                self.superseded.insert(name.clone());
            }
            if status.phase == Some(RunPhase::Succeeded) {
                assert!(!self.superseded.contains(&name), "superseded run {name} reached Succeeded");
            }
        }
    }

    fn check_converged(&mut self) {
        self.check_truth();
        let runs = &self.truth.observed.runs;
        // The head's runs, from what the scenario did: runs for the newest
        // pushed SHA created since that push.
        let head = |run: &ReviewRun| {
            let pr = self.prs.iter().find(|pr| pr.url == run.spec.pull_request.url).unwrap();
            let sequence = self.created[run.metadata.name.as_deref().unwrap()];
            pr.shas.last() == Some(&run.spec.pull_request.head_sha) && sequence >= pr.head_since
        };
        let unfinished =
            |run: &&ReviewRun| !run.status.as_ref().and_then(|s| s.phase).is_some_and(RunPhase::is_terminal);
        for pr in &self.prs {
            let open: Vec<&ReviewRun> =
                runs.iter().filter(|r| r.spec.pull_request.url == pr.url).filter(unfinished).collect();
            assert!(open.len() <= 1, "PR {} has {} unfinished runs", pr.url, open.len());
            if let Some(run) = open.first() {
                assert!(head(run), "the unfinished run {:?} of {} is not for the head SHA", run.metadata.name, pr.url);
            }
        }
        for name in &self.replayed {
            let status = match self.truth.deleted.get(name) {
                Some(deleted) => deleted.status.clone().unwrap_or_default(),
                None => self.truth.status(name),
            };
            assert_eq!(
                (status.phase, status.reason),
                (Some(RunPhase::Failed), Some(RunReason::Superseded)),
                "replayed run {name}"
            );
        }
        let live: Vec<&ObservedPod> =
            self.truth.observed.pods.iter().filter(|pod| !pod.deleting && !pod.finished()).collect();
        assert_eq!(live.len(), 1, "one live pod after convergence: {:#?}", self.truth.observed.pods);
        let live = live[0];
        let status = self.truth.reviewer_status();
        assert_eq!(status.pod.as_ref().map(|p| p.uid.as_str()), Some(live.uid.as_str()), "status.pod");
        let current: Vec<String> =
            runs.iter().filter(unfinished).filter(|run| head(run)).filter_map(|r| r.metadata.name.clone()).collect();
        assert_eq!(status.queue, current, "the live pod's queue is the unfinished current runs");
        for name in &current {
            let run = self.truth.status(name);
            assert_eq!(run.phase, Some(RunPhase::Running), "{name}");
            assert_eq!(run.assignment.map(|a| a.pod_uid), Some(live.uid.clone()), "{name} is assigned to the live pod");
        }
        for run in runs {
            let run_status = run.status.clone().unwrap_or_default();
            if run_status.phase == Some(RunPhase::Running) {
                let started = run_status.start_time.unwrap().0.as_second() - at(0).as_second();
                let timeout = TIMEOUTS.iter().find(|(text, _)| *text == run.spec.timeout).unwrap().1;
                assert!(started + timeout > self.now, "{:?} is Running past its timeout", run.metadata.name);
            }
        }
        assert!(self.pending_stale.is_empty(), "pods still pending a restart: {:?}", self.pending_stale);
        let restarts = i64::try_from(self.restarted.len()).unwrap();
        assert_eq!(status.restarts, restarts, "status.restarts");
        assert_eq!(
            self.replacements + self.died_after_restart,
            restarts,
            "every restarted pod was replaced by the controller or died from outside"
        );
        self.log(format!(
            "converged: {} runs, {} restarts ({} replacements), incarnation {}",
            runs.len(),
            restarts,
            self.replacements,
            status.incarnation
        ));
    }
}
