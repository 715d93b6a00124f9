//! The dev demo's live timeline: readable lines for what changed between two observations of a
//! ReviewRun or a Reviewer. Pure, so each line is tested without a cluster.

use crate::api::{ReviewRun, Reviewer, RunPhase, RunReason, Verdict};

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Lines describing how a run changed from `before` (None: just created) to `after`.
pub fn run_changes(before: Option<&ReviewRun>, after: &ReviewRun) -> Vec<String> {
    let name = after.metadata.name.as_deref().unwrap_or("?");
    let pr = &after.spec.pull_request;
    let mut lines = Vec::new();
    if before.is_none() {
        lines.push(format!("run {name} created: {} at {}", pr.url, short(&pr.head_sha)));
    }
    let old = before.and_then(|r| r.status.as_ref());
    let Some(new) = after.status.as_ref() else { return lines };
    let old_assignment = old.and_then(|s| s.assignment.as_ref());
    if let Some(assignment) = &new.assignment
        && old_assignment != Some(assignment)
        && new.phase == Some(RunPhase::Running)
    {
        lines.push(format!("run {name} assigned to pod {} (incarnation {})", assignment.pod, assignment.incarnation));
    }
    let old_phase = old.and_then(|s| s.phase);
    if new.phase != old_phase {
        match (new.phase, new.reason) {
            (Some(RunPhase::Failed), Some(RunReason::Superseded)) => {
                let by = new.superseded_by.as_deref().unwrap_or("a newer run");
                lines.push(format!("run {name} superseded by {by}"));
            }
            (Some(RunPhase::Failed), Some(reason)) => {
                let message = new.message.as_deref().unwrap_or("");
                lines.push(format!("run {name} failed: {} {message}", reason.as_str()).trim_end().to_string());
            }
            (Some(RunPhase::Succeeded), _) => {
                let verdict = match new.result.as_ref().map(|r| &r.verdict) {
                    Some(Verdict::Approved) => "approved",
                    Some(Verdict::ChangesRequested) => "changes requested",
                    None => "no verdict",
                };
                lines.push(format!("run {name} submitted: {verdict}"));
            }
            _ => {}
        }
    }
    lines
}

/// Lines describing how a Reviewer's pod changed.
pub fn reviewer_changes(before: Option<&Reviewer>, after: &Reviewer) -> Vec<String> {
    let name = after.metadata.name.as_deref().unwrap_or("?");
    let old = before.and_then(|r| r.status.as_ref());
    let Some(new) = after.status.as_ref() else { return Vec::new() };
    let old_pod = old.and_then(|s| s.pod.as_ref());
    let Some(pod) = &new.pod else { return Vec::new() };
    if old_pod.map(|p| &p.uid) == Some(&pod.uid) {
        return Vec::new();
    }
    let restarted = new.restarts > old.map(|s| s.restarts).unwrap_or(0);
    match (old_pod, restarted, &new.last_restart) {
        (Some(previous), true, Some(restart)) => vec![format!(
            "reviewer {name}: pod {} replaced by {} ({:?}: {})",
            previous.name,
            pod.name,
            restart.reason,
            restart.runs.join(", ")
        )],
        (Some(previous), _, _) => vec![format!("reviewer {name}: pod {} replaced by {}", previous.name, pod.name)],
        (None, true, Some(restart)) => vec![format!(
            "reviewer {name}: pod {} started (incarnation {}), replacing the stale pod ({:?}: {})",
            pod.name,
            pod.incarnation,
            restart.reason,
            restart.runs.join(", ")
        )],
        (None, _, _) => vec![format!("reviewer {name}: pod {} started (incarnation {})", pod.name, pod.incarnation)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        Assignment, LastRestart, PodReference, PullRequest, RestartReason, ReviewResult, ReviewRunSpec,
        ReviewRunStatus, ReviewerStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn run(status: Option<ReviewRunStatus>) -> ReviewRun {
        let mut run = ReviewRun::new(
            "rr-1",
            ReviewRunSpec {
                reviewer: "review-demo".into(),
                pull_request: PullRequest {
                    url: "https://example.com/pr/1".into(),
                    number: Some(1),
                    head_sha: "0123456789abcdef".into(),
                    previous_head_sha: None,
                    repository: None,
                    clone_url: None,
                },
                cancel_requested: false,
                timeout: "1h".into(),
                ttl_seconds_after_finished: None,
            },
        );
        run.status = status;
        run
    }

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn creation_and_assignment() {
        let created = run(None);
        assert_eq!(run_changes(None, &created), ["run rr-1 created: https://example.com/pr/1 at 0123456"]);
        let running = run(Some(ReviewRunStatus {
            phase: Some(RunPhase::Running),
            assignment: Some(Assignment { pod: "review-demo-1".into(), pod_uid: "u".into(), incarnation: 1 }),
            ..ReviewRunStatus::default()
        }));
        assert_eq!(run_changes(Some(&created), &running), ["run rr-1 assigned to pod review-demo-1 (incarnation 1)"]);
        assert!(run_changes(Some(&running), &running).is_empty());
    }

    #[test]
    fn supersede_failure_and_verdict() {
        let running = run(Some(ReviewRunStatus { phase: Some(RunPhase::Running), ..ReviewRunStatus::default() }));
        let superseded = run(Some(ReviewRunStatus {
            phase: Some(RunPhase::Failed),
            reason: Some(RunReason::Superseded),
            superseded_by: Some("rr-2".into()),
            ..ReviewRunStatus::default()
        }));
        assert_eq!(run_changes(Some(&running), &superseded), ["run rr-1 superseded by rr-2"]);
        let cancelled = run(Some(ReviewRunStatus {
            phase: Some(RunPhase::Failed),
            reason: Some(RunReason::Cancelled),
            ..ReviewRunStatus::default()
        }));
        assert_eq!(run_changes(Some(&running), &cancelled), ["run rr-1 failed: Cancelled"]);
        let done = run(Some(ReviewRunStatus {
            phase: Some(RunPhase::Succeeded),
            reason: Some(RunReason::Submitted),
            result: Some(ReviewResult {
                verdict: Verdict::ChangesRequested,
                body: "fix".into(),
                review_id: None,
                submitted_at: now(),
            }),
            ..ReviewRunStatus::default()
        }));
        assert_eq!(run_changes(Some(&running), &done), ["run rr-1 submitted: changes requested"]);
    }

    fn reviewer(status: ReviewerStatus) -> Reviewer {
        let mut r: Reviewer = serde_json::from_value(serde_json::json!({
            "apiVersion": "review.ao.dev/v1alpha1", "kind": "Reviewer",
            "metadata": {"name": "review-demo"},
            "spec": {"workerId": "demo", "agent": {"image": "demo"}}
        }))
        .unwrap();
        r.status = Some(status);
        r
    }

    #[test]
    fn pod_start_and_replacement() {
        let pod = |n: i64| PodReference { name: format!("review-demo-{n}"), uid: format!("u{n}"), incarnation: n };
        let first = reviewer(ReviewerStatus { pod: Some(pod(1)), incarnation: 1, ..ReviewerStatus::default() });
        assert_eq!(reviewer_changes(None, &first), ["reviewer review-demo: pod review-demo-1 started (incarnation 1)"]);
        let second = reviewer(ReviewerStatus {
            pod: Some(pod(2)),
            incarnation: 2,
            restarts: 1,
            last_restart: Some(LastRestart {
                time: now(),
                reason: RestartReason::Superseded,
                runs: vec!["rr-1".into()],
            }),
            ..ReviewerStatus::default()
        });
        assert_eq!(
            reviewer_changes(Some(&first), &second),
            ["reviewer review-demo: pod review-demo-1 replaced by review-demo-2 (Superseded: rr-1)"]
        );
        assert!(reviewer_changes(Some(&second), &second).is_empty());
    }
}
