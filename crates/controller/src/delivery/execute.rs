//! Carrying out one delivery step on GitHub. Every write is preceded by a
//! read that finds it if an earlier attempt already made it (the review by
//! the marker in its body, the check run by its `external_id`), so a step
//! replayed after a crash between GitHub's answer and the status write
//! writes nothing twice.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::github::{GitHub, GitHubError, Method};
use super::plan::{Conclusion, DeliveryStep, Outcome, review_body, review_marker, short};
use super::target::PullRequestTarget;
use crate::api::{Delivery, DeliveryState, ReviewRun, Verdict};

/// Reviews read per page when looking for the marker (GitHub's maximum).
const PAGE: usize = 100;
/// Pages of reviews read at most: 10,000 reviews on one pull request.
const MAX_PAGES: usize = 100;
/// GitHub's limit on a commit status description.
const DESCRIPTION_LIMIT: usize = 140;

/// What one step needs to know about the run.
pub struct StepContext<'a> {
    pub github: &'a GitHub,
    pub run: &'a ReviewRun,
    pub target: &'a PullRequestTarget,
    /// The check run name and commit status context.
    pub context: String,
}

impl StepContext<'_> {
    fn uid(&self) -> &str {
        self.run.metadata.uid.as_deref().unwrap_or_default()
    }

    fn sha(&self) -> &str {
        &self.run.spec.pull_request.head_sha
    }

    fn repository(&self) -> String {
        self.target.repository()
    }

    fn previous(&self) -> Option<&Delivery> {
        self.run.status.as_ref()?.delivery.as_ref()
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, GitHubError> {
        self.github.request(&self.repository(), method, path, body).await
    }
}

/// Carries out `step` (not [`DeliveryStep::Wait`]) and returns the delivery
/// record to write.
pub async fn execute(step: &DeliveryStep, context: &StepContext<'_>) -> Result<Delivery, GitHubError> {
    let previous = context.previous().cloned();
    let mut delivery = previous.clone().unwrap_or_else(|| Delivery::new(DeliveryState::Pending));
    delivery.time = Some(Time(Timestamp::now()));
    match step {
        DeliveryStep::Wait => {}
        DeliveryStep::Start => {
            delivery.check_run_id = start(context).await?;
            delivery.state = DeliveryState::Pending;
            delivery.message = Some(format!("Marked in progress on commit {}", context.sha()));
        }
        DeliveryStep::Review { verdict, body } => {
            let (review_id, outcome) = review(context, *verdict, body).await?;
            match review_id {
                Some(id) => {
                    delivery.state = DeliveryState::Delivered;
                    delivery.review_id = Some(id);
                    delivery.reason = None;
                }
                None => {
                    delivery.state = DeliveryState::Skipped;
                    delivery.reason = Some(outcome.reason.clone());
                }
            }
            // Concluded even if the start was never seen (a review quicker
            // than the delivery loop): the verdict's status is still wanted.
            delivery.check_run_id = conclude(context, delivery.check_run_id, &outcome).await?;
            delivery.message = Some(outcome.summary);
        }
        DeliveryStep::Conclude(outcome) => {
            if previous.is_some() {
                delivery.check_run_id = conclude(context, delivery.check_run_id, outcome).await?;
            }
            delivery.state = DeliveryState::Skipped;
            delivery.reason = Some(outcome.reason.clone());
            delivery.message = Some(outcome.summary.clone());
        }
    }
    Ok(delivery)
}

/// Opens the run on its commit: an `in_progress` check run for an App (the
/// one an earlier attempt created, if any), a `pending` status otherwise.
async fn start(context: &StepContext<'_>) -> Result<Option<i64>, GitHubError> {
    let summary = format!("{} is reviewing commit {}", context.run.spec.reviewer, context.sha());
    if !context.github.is_app() {
        post_status(context, "pending", &summary).await?;
        return Ok(None);
    }
    if let Some(id) = find_check_run(context).await? {
        return Ok(Some(id));
    }
    let body = json!({
        "name": context.context,
        "head_sha": context.sha(),
        "status": "in_progress",
        "external_id": context.uid(),
        "started_at": Timestamp::now().to_string(),
        "output": {"title": "Reviewing", "summary": summary},
    });
    let created =
        context.call(Method::Post, &format!("/repos/{}/check-runs", context.repository()), Some(&body)).await?;
    Ok(created.get("id").and_then(Value::as_i64))
}

/// Posts the review unless it was posted already or the pull request's head
/// moved past the run's commit; returns the review and the conclusion.
async fn review(
    context: &StepContext<'_>,
    verdict: Verdict,
    body: &str,
) -> Result<(Option<i64>, Outcome), GitHubError> {
    let (conclusion, posted) = match verdict {
        Verdict::Approved => (Conclusion::Success, "Approved"),
        Verdict::ChangesRequested => (Conclusion::Failure, "Changes requested"),
    };
    let delivered = |id: i64| {
        let summary = format!("{posted}: review {id} on commit {}", context.sha());
        (Some(id), Outcome { reason: "Delivered".into(), conclusion, summary })
    };
    if let Some(id) = find_review(context).await? {
        return Ok(delivered(id));
    }
    let pull = format!("/repos/{}/pulls/{}", context.repository(), context.target.number);
    let live = context.call(Method::Get, &pull, None).await?;
    let head = live.pointer("/head/sha").and_then(Value::as_str).unwrap_or_default();
    if head != context.sha() {
        let summary = format!("Not posted: the pull request's head moved to {} after the review", short(head));
        return Ok((None, Outcome { reason: "HeadMoved".into(), conclusion: Conclusion::Skipped, summary }));
    }
    let event = match verdict {
        Verdict::Approved => "APPROVE",
        Verdict::ChangesRequested => "REQUEST_CHANGES",
    };
    let request = json!({"commit_id": context.sha(), "body": review_body(body, context.uid()), "event": event});
    let created = context.call(Method::Post, &format!("{pull}/reviews"), Some(&request)).await?;
    let id = created.get("id").and_then(Value::as_i64).ok_or_else(|| GitHubError::Transient {
        message: "GitHub's answer to the review has no id".into(),
        retry_after: None,
    })?;
    Ok(delivered(id))
}

/// Completes the check run (found by `external_id` when its id was not
/// recorded) or posts the final commit status.
async fn conclude(
    context: &StepContext<'_>,
    check_run_id: Option<i64>,
    outcome: &Outcome,
) -> Result<Option<i64>, GitHubError> {
    if !context.github.is_app() {
        post_status(context, outcome.conclusion.commit_status(), &outcome.summary).await?;
        return Ok(check_run_id);
    }
    let id = match check_run_id {
        Some(id) => Some(id),
        None => find_check_run(context).await?,
    };
    let Some(id) = id else { return Ok(None) };
    let title = match outcome.conclusion {
        Conclusion::Success => "Approved",
        Conclusion::Failure if outcome.reason == "Delivered" => "Changes requested",
        Conclusion::Failure => "Review failed",
        Conclusion::Skipped => "Not reviewed",
        Conclusion::Cancelled => "Cancelled",
        Conclusion::TimedOut => "Timed out",
    };
    let body = json!({
        "status": "completed",
        "conclusion": outcome.conclusion.check_run(),
        "completed_at": Timestamp::now().to_string(),
        "output": {"title": title, "summary": outcome.summary},
    });
    let path = format!("/repos/{}/check-runs/{id}", context.repository());
    context.call(Method::Patch, &path, Some(&body)).await?;
    Ok(Some(id))
}

async fn post_status(context: &StepContext<'_>, state: &str, description: &str) -> Result<(), GitHubError> {
    let body = json!({
        "state": state,
        "context": context.context,
        "description": truncate(description, DESCRIPTION_LIMIT),
    });
    let path = format!("/repos/{}/statuses/{}", context.repository(), context.sha());
    context.call(Method::Post, &path, Some(&body)).await.map(|_| ())
}

/// The run's check run on its commit, by `external_id`.
async fn find_check_run(context: &StepContext<'_>) -> Result<Option<i64>, GitHubError> {
    let path = format!(
        "/repos/{}/commits/{}/check-runs?check_name={}&per_page={PAGE}",
        context.repository(),
        context.sha(),
        percent_encode(&context.context)
    );
    let found = context.call(Method::Get, &path, None).await?;
    let runs = found.get("check_runs").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok(runs
        .iter()
        .find(|run| run.get("external_id").and_then(Value::as_str) == Some(context.uid()))
        .and_then(|run| run.get("id").and_then(Value::as_i64)))
}

/// The review an earlier attempt posted for the run, by its marker.
async fn find_review(context: &StepContext<'_>) -> Result<Option<i64>, GitHubError> {
    let marker = review_marker(context.uid());
    for page in 1..=MAX_PAGES {
        let path = format!(
            "/repos/{}/pulls/{}/reviews?per_page={PAGE}&page={page}",
            context.repository(),
            context.target.number
        );
        let reviews = context.call(Method::Get, &path, None).await?;
        let reviews = reviews.as_array().cloned().unwrap_or_default();
        let found = reviews
            .iter()
            .find(|review| review.get("body").and_then(Value::as_str).is_some_and(|body| body.contains(&marker)));
        if let Some(review) = found {
            return Ok(review.get("id").and_then(Value::as_i64));
        }
        if reviews.len() < PAGE {
            break;
        }
    }
    Ok(None)
}

/// `text` cut to `limit` characters, with an ellipsis when cut.
fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit - 1).collect();
    cut.push('…');
    cut
}

/// Percent-encodes a query value (check names may hold `/` and spaces).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_fit_githubs_limit() {
        assert_eq!(truncate("short", 140), "short");
        let long = "x".repeat(200);
        let cut = truncate(&long, 140);
        assert_eq!(cut.chars().count(), 140);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(percent_encode("review-operator/review-w1"), "review-operator%2Freview-w1");
        assert_eq!(percent_encode("a b"), "a%20b");
    }
}
