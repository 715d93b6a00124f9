//! `submit`: what to do with a verdict for a run as it was read, and the one
//! JSON patch that lands it.
//!
//! The patch `test`s everything the decision relied on (the run is Running
//! and, inside a reviewer pod, assigned to this pod and incarnation), so a
//! run that changed between the read and the write is never overwritten:
//! the API server rejects the whole patch and the run is read again to say
//! why.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::api::{ReviewRun, RunPhase, RunReason, Verdict};

/// The review being submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    pub verdict: Verdict,
    pub body: String,
    pub review_id: Option<String>,
}

/// The reviewer pod `submit` runs in (env `POD_UID`, `REVIEW_INCARNATION`);
/// absent outside a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmittingPod {
    pub uid: String,
    pub incarnation: Option<i64>,
}

/// What to do with a submission, given the run as read.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Send this JSON patch to the status subresource.
    Patch(Value),
    /// The identical result is already there: nothing to do.
    AlreadySubmitted,
    /// The submission cannot land; the message says why.
    Reject(String),
}

/// Decides what to do with `submission` for `run` (a pure function of what was read).
pub fn decide(run: &ReviewRun, submission: &Submission, pod: Option<&SubmittingPod>, now: Timestamp) -> Decision {
    let name = run.metadata.name.as_deref().unwrap_or_default();
    let status = run.status.clone().unwrap_or_default();
    match run.phase() {
        RunPhase::Running => {
            if let Some(pod) = pod {
                let Some(assignment) = &status.assignment else {
                    return Decision::Reject(format!("run {name} is not assigned to any reviewer pod"));
                };
                let wrong_incarnation = pod.incarnation.is_some_and(|i| i != assignment.incarnation);
                if assignment.pod_uid != pod.uid || wrong_incarnation {
                    return Decision::Reject(format!(
                        "run {name} is assigned to pod {} (incarnation {}), not to this pod",
                        assignment.pod, assignment.incarnation
                    ));
                }
            }
            Decision::Patch(submit_patch(submission, pod, now))
        }
        RunPhase::Succeeded => match &status.result {
            Some(result)
                if result.verdict == submission.verdict
                    && result.body == submission.body
                    && result.review_id == submission.review_id =>
            {
                Decision::AlreadySubmitted
            }
            Some(result) => Decision::Reject(format!(
                "run {name} was already submitted with a different result ({}); a submitted review is final",
                verdict_name(result.verdict)
            )),
            None => Decision::Reject(format!("run {name} already succeeded")),
        },
        RunPhase::Failed => Decision::Reject(no_longer_running(name, &status)),
        RunPhase::Pending => Decision::Reject(format!(
            "run {name} is not running yet: it is Pending until the controller assigns it to a reviewer pod"
        )),
    }
}

/// `run X is no longer running: Superseded by Y` (or the reason and message).
fn no_longer_running(name: &str, status: &crate::api::ReviewRunStatus) -> String {
    match (status.reason, &status.superseded_by, &status.message) {
        (Some(RunReason::Superseded), Some(newer), _) => {
            format!("run {name} is no longer running: Superseded by {newer}")
        }
        (Some(reason), _, Some(message)) if !message.is_empty() => {
            format!("run {name} is no longer running: {} ({message})", reason.as_str())
        }
        (Some(reason), _, _) => format!("run {name} is no longer running: {}", reason.as_str()),
        (None, _, _) => format!("run {name} is no longer running: Failed"),
    }
}

/// The verdict as the API writes it.
pub fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Approved => "Approved",
        Verdict::ChangesRequested => "ChangesRequested",
    }
}

/// The JSON patch (RFC 6902) for the status subresource: `test`s, then the
/// move to Succeeded with the result.
pub fn submit_patch(submission: &Submission, pod: Option<&SubmittingPod>, now: Timestamp) -> Value {
    let mut operations = vec![json!({"op": "test", "path": "/status/phase", "value": "Running"})];
    if let Some(pod) = pod {
        operations.push(json!({"op": "test", "path": "/status/assignment/podUID", "value": pod.uid}));
        if let Some(incarnation) = pod.incarnation {
            operations.push(json!({"op": "test", "path": "/status/assignment/incarnation", "value": incarnation}));
        }
    }
    let mut result = json!({
        "verdict": verdict_name(submission.verdict),
        "body": submission.body,
        "submittedAt": now.to_string(),
    });
    if let Some(id) = &submission.review_id {
        result["reviewId"] = json!(id);
    }
    let verdict = verdict_name(submission.verdict);
    operations.extend([
        json!({"op": "replace", "path": "/status/phase", "value": "Succeeded"}),
        json!({"op": "add", "path": "/status/reason", "value": "Submitted"}),
        json!({"op": "add", "path": "/status/message", "value": format!("The review was submitted: {verdict}")}),
        json!({"op": "add", "path": "/status/result", "value": result}),
        json!({"op": "add", "path": "/status/completionTime", "value": now.to_string()}),
    ]);
    Value::Array(operations)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::ReviewRunStatus;

    fn now() -> Timestamp {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn run(status: Value) -> ReviewRun {
        serde_json::from_value(json!({
            "apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun",
            "metadata": {"name": "r1", "namespace": "team"},
            "spec": {"reviewer": "review-w1", "pullRequest": {"url": "https://github.com/a/b/pull/1", "headSha": "abcdef1"}},
            "status": status,
        }))
        .unwrap()
    }

    fn running() -> ReviewRun {
        run(json!({"phase": "Running", "assignment": {"pod": "review-w1-2", "podUID": "uid-2", "incarnation": 2}}))
    }

    fn approved() -> Submission {
        Submission { verdict: Verdict::Approved, body: "Looks right.".into(), review_id: None }
    }

    fn pod(uid: &str, incarnation: i64) -> SubmittingPod {
        SubmittingPod { uid: uid.into(), incarnation: Some(incarnation) }
    }

    #[test]
    fn a_running_run_gets_one_guarded_patch() {
        let submission = Submission { review_id: Some("987".into()), ..approved() };
        let Decision::Patch(patch) = decide(&running(), &submission, Some(&pod("uid-2", 2)), now()) else {
            panic!("expected a patch")
        };
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/status/phase", "value": "Running"},
                {"op": "test", "path": "/status/assignment/podUID", "value": "uid-2"},
                {"op": "test", "path": "/status/assignment/incarnation", "value": 2},
                {"op": "replace", "path": "/status/phase", "value": "Succeeded"},
                {"op": "add", "path": "/status/reason", "value": "Submitted"},
                {"op": "add", "path": "/status/message", "value": "The review was submitted: Approved"},
                {"op": "add", "path": "/status/result", "value": {"verdict": "Approved", "body": "Looks right.",
                    "reviewId": "987", "submittedAt": "2026-03-01T12:00:00Z"}},
                {"op": "add", "path": "/status/completionTime", "value": "2026-03-01T12:00:00Z"},
            ])
        );
        // Applied to the run, the patch yields a status the types accept.
        let mut object = serde_json::to_value(running()).unwrap();
        json_patch::patch(&mut object, &serde_json::from_value::<json_patch::Patch>(patch).unwrap()).unwrap();
        let status: ReviewRunStatus = serde_json::from_value(object["status"].clone()).unwrap();
        assert_eq!(status.phase, Some(RunPhase::Succeeded));
        assert_eq!(status.result.unwrap().review_id.as_deref(), Some("987"));
    }

    #[test]
    fn outside_a_pod_only_the_phase_is_tested() {
        let patch = submit_patch(&approved(), None, now());
        let tests: Vec<_> = patch.as_array().unwrap().iter().filter(|op| op["op"] == "test").collect();
        assert_eq!(tests, [&json!({"op": "test", "path": "/status/phase", "value": "Running"})]);
    }

    #[test]
    fn another_pod_or_incarnation_is_rejected() {
        let Decision::Reject(message) = decide(&running(), &approved(), Some(&pod("uid-9", 2)), now()) else {
            panic!("expected a rejection")
        };
        assert_eq!(message, "run r1 is assigned to pod review-w1-2 (incarnation 2), not to this pod");
        assert!(matches!(decide(&running(), &approved(), Some(&pod("uid-2", 3)), now()), Decision::Reject(_)));
        let unassigned = run(json!({"phase": "Running"}));
        assert_eq!(
            decide(&unassigned, &approved(), Some(&pod("uid-2", 2)), now()),
            Decision::Reject("run r1 is not assigned to any reviewer pod".into())
        );
    }

    #[test]
    fn a_superseded_run_says_by_which_run() {
        let failed = run(json!({"phase": "Failed", "reason": "Superseded", "supersededBy": "r2"}));
        assert_eq!(
            decide(&failed, &approved(), None, now()),
            Decision::Reject("run r1 is no longer running: Superseded by r2".into())
        );
        let cancelled = run(json!({"phase": "Failed", "reason": "Cancelled", "message": "cancel requested"}));
        assert_eq!(
            decide(&cancelled, &approved(), None, now()),
            Decision::Reject("run r1 is no longer running: Cancelled (cancel requested)".into())
        );
        let pending = run(json!({"phase": "Pending"}));
        let Decision::Reject(message) = decide(&pending, &approved(), None, now()) else { panic!("expected reject") };
        assert!(message.starts_with("run r1 is not running yet"), "{message}");
    }

    #[test]
    fn resubmitting_is_idempotent_only_for_the_identical_result() {
        let done = run(json!({"phase": "Succeeded", "reason": "Submitted", "result":
            {"verdict": "Approved", "body": "Looks right.", "submittedAt": "2026-01-01T00:00:00Z"}}));
        assert_eq!(decide(&done, &approved(), None, now()), Decision::AlreadySubmitted);
        let different = Submission { verdict: Verdict::ChangesRequested, body: "Fix it.".into(), review_id: None };
        assert_eq!(
            decide(&done, &different, None, now()),
            Decision::Reject(
                "run r1 was already submitted with a different result (Approved); a submitted review is final".into()
            )
        );
    }
}
