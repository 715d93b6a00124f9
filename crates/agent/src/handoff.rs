//! What a reviewer is told about the earlier review of a pull request: which
//! commit was reviewed before, what became of that review, and which range is
//! left to review. Pure functions of the runs the supervisor observed.

use crate::api::history::creation_ordered;
use crate::api::{ReviewRun, RunPhase, RunReason, Verdict};

/// The earlier run of a pull request that a new run takes over from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Earlier {
    pub run: String,
    pub head_sha: String,
    pub outcome: EarlierOutcome,
    /// The pod that reviewed it.
    pub pod: Option<String>,
}

/// What became of the earlier run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EarlierOutcome {
    /// Its verdict was submitted.
    Reviewed { verdict: Verdict, body: String },
    /// The pull request moved on while it was being reviewed.
    Superseded { by: Option<String> },
}

/// How the earlier commit relates to the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ancestry {
    /// The earlier commit is an ancestor: only the range between them is new.
    Ancestor,
    /// It is not (a force-push rewrote the branch), or it is gone.
    Rewritten,
    /// Unknown: no checkout to ask, or git could not tell.
    Unknown,
}

/// What the prompt says about one run's earlier run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub earlier: Earlier,
    pub ancestry: Ancestry,
    /// Where the earlier verdict's body was written, when there was one.
    pub review_file: Option<String>,
    /// The earlier reviewer pod whose transcript is kept, when it was another pod.
    pub transcript_pod: Option<String>,
}

/// The latest run of `run`'s pull request created before it, for another
/// commit, that was reviewed or was superseded while being reviewed; `None`
/// when the pull request has no such run. "Before" is the API server's
/// creation order (the order the controller decides freshness by).
pub fn earlier_run<'a>(runs: impl IntoIterator<Item = &'a ReviewRun>, run: &ReviewRun) -> Option<Earlier> {
    let url = &run.spec.pull_request.url;
    let name = run.metadata.name.as_deref()?;
    let ordered = creation_ordered(runs.into_iter().filter(|r| &r.spec.pull_request.url == url));
    let position = ordered.iter().position(|r| r.metadata.name.as_deref() == Some(name))?;
    ordered[..position].iter().rev().find_map(|candidate| {
        let status = candidate.status.as_ref()?;
        if candidate.spec.pull_request.head_sha == run.spec.pull_request.head_sha {
            return None;
        }
        let outcome = match (status.phase, status.reason, &status.result) {
            (Some(RunPhase::Succeeded), _, Some(result)) => {
                EarlierOutcome::Reviewed { verdict: result.verdict, body: result.body.clone() }
            }
            (Some(RunPhase::Failed), Some(RunReason::Superseded), _) if status.assignment.is_some() => {
                EarlierOutcome::Superseded { by: status.superseded_by.clone() }
            }
            _ => return None,
        };
        Some(Earlier {
            run: candidate.metadata.name.clone()?,
            head_sha: candidate.spec.pull_request.head_sha.clone(),
            outcome,
            pod: status.assignment.as_ref().map(|assignment| assignment.pod.clone()),
        })
    })
}

/// The prompt lines for a run at `head_sha` taking over from `handoff`, each
/// indented as the queue's lines are.
pub fn handoff_lines(handoff: &Handoff, head_sha: &str) -> Vec<String> {
    let earlier = &handoff.earlier;
    let old = &earlier.head_sha;
    let what = match &earlier.outcome {
        EarlierOutcome::Reviewed { verdict: Verdict::Approved, .. } => "was reviewed: approved".to_owned(),
        EarlierOutcome::Reviewed { verdict: Verdict::ChangesRequested, .. } => {
            "was reviewed: changes requested".to_owned()
        }
        EarlierOutcome::Superseded { by: Some(by) } => {
            format!("was superseded by run {by} before its review was submitted")
        }
        EarlierOutcome::Superseded { by: None } => "was superseded before its review was submitted".to_owned(),
    };
    let mut lines = vec![format!("earlier review: run {} at {old} {what}", earlier.run)];
    if let Some(file) = &handoff.review_file {
        lines.push(format!("earlier review text: {file}"));
    }
    if let Some(pod) = &handoff.transcript_pod {
        lines.push(format!("earlier transcript: kubectl review transcript {pod} (ReviewTranscript {pod})"));
    }
    lines.push(match handoff.ancestry {
        Ancestry::Ancestor => {
            format!(
                "review range: {old}..{head_sha} (what changed since the earlier review: git diff {old} {head_sha})"
            )
        }
        Ancestry::Rewritten => {
            format!("review range: the whole pull request ({old} is not an ancestor of {head_sha}: a force-push)")
        }
        Ancestry::Unknown => {
            format!("review range: the whole pull request (whether {old} is an ancestor of {head_sha} is unknown)")
        }
    });
    lines
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const PR: &str = "https://github.com/acme/w/pull/1";

    /// A run created `created`-th, as the API server's resourceVersion and the controller's
    /// record of it say; the names sort against that order on purpose.
    fn run(name: &str, sha: &str, created: u64, status: Value) -> ReviewRun {
        serde_json::from_value(json!({
            "apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun",
            "metadata": {"name": name, "namespace": "team", "creationTimestamp": "2026-01-01T00:00:00Z",
                "resourceVersion": (1000 + created).to_string()},
            "spec": {"reviewer": "review-w1", "pullRequest": {"url": PR, "headSha": sha}},
            "status": status,
        }))
        .unwrap()
    }

    fn with_creation(mut status: Value, created: u64) -> Value {
        status["creationRevision"] = json!((1000 + created).to_string());
        status
    }

    fn reviewed(verdict: &str, body: &str, created: u64) -> Value {
        with_creation(
            json!({"phase": "Succeeded", "reason": "Submitted",
                "result": {"verdict": verdict, "body": body, "submittedAt": "2026-01-01T00:00:00Z"}}),
            created,
        )
    }

    fn superseded(by: &str, assigned: bool, created: u64) -> Value {
        let mut status = json!({"phase": "Failed", "reason": "Superseded", "supersededBy": by});
        if assigned {
            status["assignment"] = json!({"pod": "review-w1-1", "podUID": "uid-1", "incarnation": 1});
        }
        with_creation(status, created)
    }

    fn running(created: u64) -> Value {
        with_creation(json!({"phase": "Running"}), created)
    }

    #[test]
    fn the_latest_earlier_reviewed_or_superseded_run_is_taken_in_creation_order() {
        let runs = vec![
            run("z-first", "aaaaaaa", 1, reviewed("Approved", "", 1)),
            run("y-second", "bbbbbbb", 2, superseded("a-third", true, 2)),
            run("a-third", "ccccccc", 3, running(3)),
        ];
        let earlier = earlier_run(&runs, &runs[2]).expect("an earlier run");
        assert_eq!(
            earlier,
            Earlier {
                run: "y-second".into(),
                head_sha: "bbbbbbb".into(),
                outcome: EarlierOutcome::Superseded { by: Some("a-third".into()) },
                pod: Some("review-w1-1".into()),
            }
        );
        let earlier = earlier_run(&runs, &runs[1]).expect("an earlier run");
        assert_eq!(earlier.run, "z-first");
        assert_eq!(earlier.outcome, EarlierOutcome::Reviewed { verdict: Verdict::Approved, body: String::new() });
        assert_eq!(earlier_run(&runs, &runs[0]), None);
    }

    #[test]
    fn runs_never_reviewed_the_same_commit_and_other_pull_requests_are_skipped() {
        let mut other = run("other-pr", "ddddddd", 4, reviewed("Approved", "", 4));
        other.spec.pull_request.url = "https://github.com/acme/w/pull/2".into();
        let runs = vec![
            run("reviewed", "aaaaaaa", 1, reviewed("ChangesRequested", "fix it", 1)),
            // Superseded before a pod took it: nothing was reviewed.
            run("never-started", "bbbbbbb", 2, superseded("same-sha", false, 2)),
            run("cancelled", "ccccccc", 3, with_creation(json!({"phase": "Failed", "reason": "Cancelled"}), 3)),
            other,
            run("same-sha-before", "eeeeeee", 5, reviewed("Approved", "", 5)),
            run("same-sha", "eeeeeee", 6, running(6)),
        ];
        let earlier = earlier_run(&runs, &runs[5]).expect("an earlier run");
        assert_eq!(earlier.run, "reviewed");
        assert_eq!(
            earlier.outcome,
            EarlierOutcome::Reviewed { verdict: Verdict::ChangesRequested, body: "fix it".into() }
        );
    }

    fn handoff(outcome: EarlierOutcome, ancestry: Ancestry, review_file: Option<&str>) -> Handoff {
        Handoff {
            earlier: Earlier { run: "r-old".into(), head_sha: "aaaaaaa1".into(), outcome, pod: None },
            ancestry,
            review_file: review_file.map(str::to_owned),
            transcript_pod: None,
        }
    }

    #[test]
    fn the_text_says_what_became_of_the_earlier_review_and_what_to_review() {
        let reviewed = EarlierOutcome::Reviewed { verdict: Verdict::ChangesRequested, body: "x".into() };
        let lines =
            handoff_lines(&handoff(reviewed, Ancestry::Ancestor, Some("/workspace/.handoff/r/review.md")), "bbbbbbb2");
        assert_eq!(
            lines,
            [
                "earlier review: run r-old at aaaaaaa1 was reviewed: changes requested",
                "earlier review text: /workspace/.handoff/r/review.md",
                "review range: aaaaaaa1..bbbbbbb2 (what changed since the earlier review: git diff aaaaaaa1 bbbbbbb2)",
            ]
        );
        let superseded = EarlierOutcome::Superseded { by: Some("r-new".into()) };
        let mut from_another_pod = handoff(superseded, Ancestry::Rewritten, None);
        from_another_pod.transcript_pod = Some("review-w1-1".into());
        let lines = handoff_lines(&from_another_pod, "bbbbbbb2");
        assert_eq!(
            lines,
            [
                "earlier review: run r-old at aaaaaaa1 was superseded by run r-new before its review was submitted",
                "earlier transcript: kubectl review transcript review-w1-1 (ReviewTranscript review-w1-1)",
                "review range: the whole pull request (aaaaaaa1 is not an ancestor of bbbbbbb2: a force-push)",
            ]
        );
        let approved = EarlierOutcome::Reviewed { verdict: Verdict::Approved, body: String::new() };
        let lines = handoff_lines(&handoff(approved, Ancestry::Unknown, None), "bbbbbbb2");
        assert_eq!(lines[0], "earlier review: run r-old at aaaaaaa1 was reviewed: approved");
        assert_eq!(
            lines[1],
            "review range: the whole pull request (whether aaaaaaa1 is an ancestor of bbbbbbb2 is unknown)"
        );
        let lines = handoff_lines(&handoff(EarlierOutcome::Superseded { by: None }, Ancestry::Unknown, None), "b");
        assert_eq!(lines[0], "earlier review: run r-old at aaaaaaa1 was superseded before its review was submitted");
    }
}
