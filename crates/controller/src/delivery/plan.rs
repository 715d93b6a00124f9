//! What to write to GitHub for a run, decided from the run alone: a pure
//! function of its status, so that every step can be retried and a replayed
//! step finds its own earlier write instead of writing twice.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{CONDITION_CURRENT, ReviewRun, RunPhase, RunReason, Verdict, conditions};

/// The next delivery step of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryStep {
    /// Nothing to write now: the run waits, runs elsewhere, or was delivered.
    Wait,
    /// The run started: mark its commit in progress (check run or pending status).
    Start,
    /// The run succeeded on its pull request's head: post the review (when
    /// GitHub's live head is still the run's commit), then conclude.
    Review { verdict: Verdict, body: String },
    /// No review: conclude what `Start` opened, if anything, and record why.
    Conclude(Outcome),
}

/// How a run that gets no review ends on GitHub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The recorded `delivery.reason`.
    pub reason: String,
    /// The check run's conclusion, or the commit status's state.
    pub conclusion: Conclusion,
    /// One line for the check run's summary or the status's description.
    pub summary: String,
}

/// How a check run or commit status ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conclusion {
    Success,
    Failure,
    /// Superseded, outdated, duplicate: nothing to say about this commit.
    Skipped,
    Cancelled,
    TimedOut,
}

impl Conclusion {
    /// The check run `conclusion`.
    pub fn check_run(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }

    /// The commit status `state`: statuses have no neutral outcome, so a
    /// commit that was never reviewed is an `error`, not a `failure`.
    pub fn commit_status(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Skipped | Self::Cancelled | Self::TimedOut => "error",
        }
    }
}

/// Runs that finished longer ago than this, and that delivery never saw,
/// are left alone: turning delivery on for a cluster with a history posts
/// nothing for old verdicts, while a controller that was down for less than
/// this still delivers what finished meanwhile.
pub const DELIVERY_HORIZON: Duration = Duration::from_secs(24 * 3600);

/// The next step for `run` at `now`. `newer_sha` is the head SHA of the run
/// named in `status.supersededBy`, when the caller knows it.
pub fn plan_delivery(run: &ReviewRun, newer_sha: Option<&str>, now: Timestamp) -> DeliveryStep {
    let Some(status) = run.status.as_ref() else { return DeliveryStep::Wait };
    if status.delivery.as_ref().is_some_and(|d| d.state.is_final()) {
        return DeliveryStep::Wait;
    }
    let started = status.delivery.is_some();
    let horizon = i64::try_from(DELIVERY_HORIZON.as_millis()).unwrap_or(i64::MAX);
    let finished_long_ago = status
        .completion_time
        .as_ref()
        .is_some_and(|t| now.as_millisecond().saturating_sub(t.0.as_millisecond()) > horizon);
    if !started && finished_long_ago {
        return DeliveryStep::Wait;
    }
    let newer = || match (newer_sha, status.superseded_by.as_deref()) {
        (Some(sha), _) => format!("commit {}", short(sha)),
        (None, Some(run)) => format!("run {run}"),
        (None, None) => "a newer commit".to_owned(),
    };
    match status.phase.unwrap_or(RunPhase::Pending) {
        RunPhase::Pending => DeliveryStep::Wait,
        RunPhase::Running if started => DeliveryStep::Wait,
        RunPhase::Running => DeliveryStep::Start,
        RunPhase::Succeeded => {
            let current = !conditions::is(&status.conditions, CONDITION_CURRENT, conditions::FALSE);
            match status.result.as_ref() {
                Some(result) if current => DeliveryStep::Review { verdict: result.verdict, body: result.body.clone() },
                _ => DeliveryStep::Conclude(Outcome {
                    reason: "Outdated".into(),
                    conclusion: Conclusion::Skipped,
                    summary: format!("Not posted: the pull request moved on to {}", newer()),
                }),
            }
        }
        RunPhase::Failed => {
            let reason = status.reason.unwrap_or(RunReason::LaunchFailed);
            let (conclusion, summary) = match reason {
                RunReason::Superseded => (Conclusion::Skipped, format!("Superseded by {}", newer())),
                RunReason::Duplicate => (Conclusion::Skipped, "Another run covers this commit".to_owned()),
                RunReason::Cancelled => (Conclusion::Cancelled, "The review was cancelled".to_owned()),
                RunReason::TimedOut => (Conclusion::TimedOut, "The review timed out".to_owned()),
                _ => (
                    Conclusion::Failure,
                    format!("The review failed: {}", status.message.as_deref().unwrap_or(reason.as_str())),
                ),
            };
            DeliveryStep::Conclude(Outcome { reason: reason.as_str().to_owned(), conclusion, summary })
        }
    }
}

/// The hidden marker a review carries, naming the run, by which a replayed
/// delivery finds the review it already posted.
pub fn review_marker(run_uid: &str) -> String {
    format!("<!-- review-operator run={run_uid} -->")
}

/// A review's body: the verdict's body and the marker.
pub fn review_body(body: &str, run_uid: &str) -> String {
    let marker = review_marker(run_uid);
    if body.trim().is_empty() { marker } else { format!("{}\n\n{marker}", body.trim_end()) }
}

/// The first seven characters of a SHA, as people read it.
pub(super) fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::DesiredCondition;
    use crate::api::{Delivery, DeliveryState, PullRequest, ReviewResult, ReviewRunSpec, ReviewRunStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn run(status: Option<ReviewRunStatus>) -> ReviewRun {
        let mut run = ReviewRun::new(
            "r1",
            ReviewRunSpec {
                reviewer: "review-w1".into(),
                pull_request: PullRequest::new("https://github.com/acme/widgets/pull/1", "aaaaaaa1111"),
                cancel_requested: false,
                timeout: "1h".into(),
                ttl_seconds_after_finished: None,
            },
        );
        run.status = status;
        run
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn phase(phase: RunPhase) -> ReviewRunStatus {
        ReviewRunStatus { phase: Some(phase), ..ReviewRunStatus::default() }
    }

    fn pending_delivery() -> Option<Delivery> {
        Some(Delivery { check_run_id: Some(9), ..Delivery::new(DeliveryState::Pending) })
    }

    fn succeeded(verdict: Verdict, current: bool) -> ReviewRunStatus {
        let mut status = phase(RunPhase::Succeeded);
        status.reason = Some(RunReason::Submitted);
        status.result = Some(ReviewResult {
            verdict,
            body: "Needs a test".into(),
            review_id: None,
            submitted_at: Time(Timestamp::UNIX_EPOCH),
        });
        let (value, reason) =
            if current { (conditions::TRUE, "HeadCommit") } else { (conditions::FALSE, "Superseded") };
        let condition = DesiredCondition { type_: CONDITION_CURRENT, status: value, reason, message: String::new() };
        conditions::set(&mut status.conditions, condition, None, Timestamp::UNIX_EPOCH);
        status
    }

    #[test]
    fn a_run_is_started_once_when_it_runs() {
        assert_eq!(plan_delivery(&run(None), None, now()), DeliveryStep::Wait);
        assert_eq!(plan_delivery(&run(Some(phase(RunPhase::Pending))), None, now()), DeliveryStep::Wait);
        assert_eq!(plan_delivery(&run(Some(phase(RunPhase::Running))), None, now()), DeliveryStep::Start);
        let started = ReviewRunStatus { delivery: pending_delivery(), ..phase(RunPhase::Running) };
        assert_eq!(plan_delivery(&run(Some(started)), None, now()), DeliveryStep::Wait);
    }

    #[test]
    fn a_current_verdict_is_reviewed_and_an_outdated_one_is_not() {
        for verdict in [Verdict::Approved, Verdict::ChangesRequested] {
            let step = plan_delivery(&run(Some(succeeded(verdict, true))), None, now());
            assert_eq!(step, DeliveryStep::Review { verdict, body: "Needs a test".into() });
        }
        let mut outdated = succeeded(Verdict::Approved, false);
        outdated.superseded_by = Some("r2".into());
        let DeliveryStep::Conclude(outcome) = plan_delivery(&run(Some(outdated.clone())), None, now()) else {
            panic!("no review for an outdated verdict")
        };
        assert_eq!((outcome.reason.as_str(), outcome.conclusion), ("Outdated", Conclusion::Skipped));
        assert_eq!(outcome.summary, "Not posted: the pull request moved on to run r2");
        let DeliveryStep::Conclude(named) = plan_delivery(&run(Some(outdated)), Some("bbbbbbb2222"), now()) else {
            panic!("no review")
        };
        assert_eq!(named.summary, "Not posted: the pull request moved on to commit bbbbbbb");
    }

    #[test]
    fn failed_runs_conclude_with_their_reason() {
        let cases = [
            (RunReason::Superseded, Conclusion::Skipped, "Superseded by commit bbbbbbb"),
            (RunReason::Duplicate, Conclusion::Skipped, "Another run covers this commit"),
            (RunReason::Cancelled, Conclusion::Cancelled, "The review was cancelled"),
            (RunReason::TimedOut, Conclusion::TimedOut, "The review timed out"),
            (RunReason::LaunchFailed, Conclusion::Failure, "The review failed: no pod"),
            (RunReason::ReviewerDeleted, Conclusion::Failure, "The review failed: no pod"),
        ];
        for (reason, conclusion, summary) in cases {
            let status = ReviewRunStatus {
                reason: Some(reason),
                message: Some("no pod".into()),
                delivery: pending_delivery(),
                ..phase(RunPhase::Failed)
            };
            let step = plan_delivery(&run(Some(status)), Some("bbbbbbb2222"), now());
            let expected = Outcome { reason: reason.as_str().into(), conclusion, summary: summary.into() };
            assert_eq!(step, DeliveryStep::Conclude(expected), "{reason:?}");
        }
    }

    #[test]
    fn a_final_delivery_is_never_planned_again() {
        for state in [DeliveryState::Delivered, DeliveryState::Skipped, DeliveryState::Failed] {
            let mut status = succeeded(Verdict::Approved, true);
            status.delivery = pending_delivery().map(|d| Delivery { state, ..d });
            assert_eq!(plan_delivery(&run(Some(status)), None, now()), DeliveryStep::Wait, "{state:?}");
        }
    }

    #[test]
    fn old_verdicts_delivery_never_saw_are_left_alone() {
        let finished = |hours_ago: i64, delivery: Option<Delivery>| {
            let mut status = succeeded(Verdict::Approved, true);
            status.completion_time = Some(Time(Timestamp::from_second(1_800_000_000 - hours_ago * 3600).unwrap()));
            status.delivery = delivery;
            plan_delivery(&run(Some(status)), None, now())
        };
        assert_eq!(finished(25, None), DeliveryStep::Wait);
        assert!(matches!(finished(23, None), DeliveryStep::Review { .. }));
        assert!(matches!(finished(25, pending_delivery()), DeliveryStep::Review { .. }), "started: finished");
    }

    #[test]
    fn conclusions_map_to_check_runs_and_statuses() {
        assert_eq!((Conclusion::Success.check_run(), Conclusion::Success.commit_status()), ("success", "success"));
        assert_eq!((Conclusion::Failure.check_run(), Conclusion::Failure.commit_status()), ("failure", "failure"));
        assert_eq!((Conclusion::Skipped.check_run(), Conclusion::Skipped.commit_status()), ("skipped", "error"));
        assert_eq!(Conclusion::TimedOut.check_run(), "timed_out");
    }

    #[test]
    fn reviews_carry_the_marker_of_their_run() {
        assert_eq!(review_body("Looks good\n", "uid-1"), "Looks good\n\n<!-- review-operator run=uid-1 -->");
        assert_eq!(review_body("", "uid-1"), "<!-- review-operator run=uid-1 -->");
        assert!(review_body("x", "uid-1").contains(&review_marker("uid-1")));
    }
}
