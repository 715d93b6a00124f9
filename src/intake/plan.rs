//! What a `pull_request` delivery asks for: a pure function from the event
//! and the Reviewers to the runs to create or cancel.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::ObjectMeta;

use super::payload::{InvalidPayload, PullRequestEvent};
use crate::api::{PullRequest, PullRequestMatch, ReviewRun, ReviewRunSpec, Reviewer, labels};

/// A Reviewer, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReviewerKey {
    pub namespace: String,
    pub name: String,
}

/// The writes a delivery asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum IntakePlan {
    /// Nothing to write; says why.
    Ignore(String),
    /// Runs to create, each in its Reviewer's namespace.
    Create(Vec<ReviewRun>),
    /// Cancel the unfinished runs of the pull request `url` of these Reviewers.
    Cancel { url: String, reason: String, reviewers: Vec<ReviewerKey> },
}

/// Plans a `pull_request` delivery.
pub fn plan_pull_request<'a>(
    event: &PullRequestEvent,
    reviewers: impl IntoIterator<Item = &'a Reviewer>,
) -> Result<IntakePlan, InvalidPayload> {
    let pr = &event.pull_request;
    let repository = &event.repository.full_name;
    let interested: Vec<(&Reviewer, &PullRequestMatch)> = reviewers
        .into_iter()
        .filter_map(|reviewer| Some((reviewer, reviewer.spec.r#match.as_ref()?)))
        .filter(|(_, rules)| rules.repositories.iter().any(|r| r.eq_ignore_ascii_case(repository)))
        .collect();
    let push = match event.action.as_str() {
        "opened" | "ready_for_review" => {
            Push { sha: checked_sha("pull_request.head.sha", &pr.head.sha)?, previous: None, suffix: None }
        }
        "reopened" => Push {
            sha: checked_sha("pull_request.head.sha", &pr.head.sha)?,
            previous: None,
            // Each reopening is a new review of the same commit; a redelivery repeats `updated_at`.
            suffix: Some(format!("o{}", &labels::pr_label_value(pr.updated_at.as_deref().unwrap_or_default())[..6])),
        },
        "synchronize" => {
            let after = event.after.as_deref().ok_or_else(|| missing("after", "synchronize"))?;
            let before = event.before.as_deref().ok_or_else(|| missing("before", "synchronize"))?;
            let before = checked_sha("before", before)?;
            Push {
                sha: checked_sha("after", after)?,
                suffix: Some(format!("p{}", &before[..7])),
                previous: Some(before),
            }
        }
        "closed" => {
            let reason = if pr.merged { "the pull request was merged" } else { "the pull request was closed" };
            let reviewers = interested
                .iter()
                .map(|(reviewer, _)| ReviewerKey {
                    namespace: reviewer.namespace().unwrap_or_default(),
                    name: reviewer.name_any(),
                })
                .collect();
            return Ok(IntakePlan::Cancel { url: pr.html_url.clone(), reason: reason.to_owned(), reviewers });
        }
        other => return Ok(IntakePlan::Ignore(format!("pull_request action {other:?} is ignored"))),
    };
    let mut runs = Vec::new();
    let mut skipped = BTreeMap::new();
    for (reviewer, rules) in &interested {
        match refusal(event, rules) {
            Some(why) => {
                skipped.insert(reviewer.name_any(), why);
            }
            None => runs.push(push.run(event, reviewer)),
        }
    }
    if !runs.is_empty() {
        return Ok(IntakePlan::Create(runs));
    }
    if skipped.is_empty() {
        return Ok(IntakePlan::Ignore(format!("no Reviewer matches repository {repository}")));
    }
    let why: Vec<String> = skipped.into_iter().map(|(name, why)| format!("{name}: {why}")).collect();
    Ok(IntakePlan::Ignore(format!("no run created ({})", why.join("; "))))
}

/// The commit a delivery asks to review.
struct Push {
    sha: String,
    previous: Option<String>,
    /// Appended to the run's conventional name, so that a redelivery gives
    /// the same name and a different push (a force-push back, a reopening)
    /// another.
    suffix: Option<String>,
}

impl Push {
    fn run(&self, event: &PullRequestEvent, reviewer: &Reviewer) -> ReviewRun {
        let pr = &event.pull_request;
        let name = ReviewRun::conventional_name(&reviewer.name_any(), &pr.html_url, &self.sha);
        let name = match &self.suffix {
            Some(suffix) => format!("{name}-{suffix}"),
            None => name,
        };
        ReviewRun {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: reviewer.namespace(),
                labels: Some(labels::run_labels(&reviewer.name_any(), &pr.html_url)),
                ..ObjectMeta::default()
            },
            spec: ReviewRunSpec {
                reviewer: reviewer.name_any(),
                pull_request: PullRequest {
                    url: pr.html_url.clone(),
                    number: Some(pr.number),
                    head_sha: self.sha.clone(),
                    previous_head_sha: self.previous.clone(),
                    repository: Some(event.repository.full_name.clone()),
                    clone_url: Some(event.repository.clone_url.clone()),
                },
                cancel_requested: false,
                timeout: "1h".to_owned(),
                ttl_seconds_after_finished: None,
            },
            status: None,
        }
    }
}

/// Why `rules` do not let the pull request of `event` get a run.
fn refusal(event: &PullRequestEvent, rules: &PullRequestMatch) -> Option<String> {
    let pr = &event.pull_request;
    if let Some(prefix) = &rules.head_branch_prefix
        && !pr.head.branch.starts_with(prefix.as_str())
    {
        return Some(format!("head branch {:?} does not start with {prefix:?}", pr.head.branch));
    }
    if !rules.authors.is_empty() && !rules.authors.iter().any(|a| a.eq_ignore_ascii_case(&pr.user.login)) {
        return Some(format!("author {} is not one of match.authors", pr.user.login));
    }
    if pr.draft && !rules.drafts {
        return Some("the pull request is a draft".to_owned());
    }
    pr.labels
        .iter()
        .find(|label| rules.skip_labels.contains(&label.name))
        .map(|label| format!("label {:?} skips reviews", label.name))
}

fn missing(field: &str, action: &str) -> InvalidPayload {
    InvalidPayload(format!("{field}: missing, required for action {action}"))
}

fn checked_sha(field: &str, sha: &str) -> Result<String, InvalidPayload> {
    let hex = sha.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if (7..=64).contains(&sha.len()) && hex {
        Ok(sha.to_owned())
    } else {
        Err(InvalidPayload(format!(
            "{field}: expected a commit SHA of 7 to 64 lowercase hexadecimal characters, got {sha:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::api::{AgentSpec, ReviewerSpec};
    use crate::intake::payload::examples::{self, REPOSITORY};

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn reviewer(name: &str, namespace: &str, rules: Option<Value>) -> Reviewer {
        let mut reviewer = Reviewer::new(
            name,
            ReviewerSpec {
                r#match: rules.map(|rules| serde_json::from_value(rules).unwrap()),
                ..ReviewerSpec::new("w1", AgentSpec::new("img"))
            },
        );
        reviewer.metadata.namespace = Some(namespace.into());
        reviewer
    }

    fn matching(name: &str) -> Reviewer {
        reviewer(name, "team", Some(json!({"repositories": ["Acme/Widgets"]})))
    }

    fn plan(payload: &Value, reviewers: &[Reviewer]) -> Result<IntakePlan, InvalidPayload> {
        let event = PullRequestEvent::parse(payload.to_string().as_bytes())?;
        plan_pull_request(&event, reviewers)
    }

    fn created(plan: IntakePlan) -> Vec<ReviewRun> {
        match plan {
            IntakePlan::Create(runs) => runs,
            other => panic!("expected runs, got {other:?}"),
        }
    }

    fn ignored(plan: IntakePlan) -> String {
        match plan {
            IntakePlan::Ignore(why) => why,
            other => panic!("expected nothing, got {other:?}"),
        }
    }

    #[test]
    fn opened_creates_a_run_per_matching_reviewer_in_its_namespace() {
        let others = reviewer("review-w3", "team", Some(json!({"repositories": ["acme/other"]})));
        let without_match = reviewer("review-w4", "team", None);
        let mut second = matching("review-w2");
        second.metadata.namespace = Some("ops".into());
        let runs = created(
            plan(&examples::pull_request("opened", 7, A), &[matching("review-w1"), second, others, without_match])
                .unwrap(),
        );
        assert_eq!(runs.len(), 2);
        let run = &runs[0];
        let url = format!("https://github.com/{REPOSITORY}/pull/7");
        assert_eq!(run.name_any(), ReviewRun::conventional_name("review-w1", &url, A));
        assert_eq!(run.namespace().as_deref(), Some("team"));
        assert_eq!(runs[1].namespace().as_deref(), Some("ops"));
        let pr = &run.spec.pull_request;
        assert_eq!((pr.url.as_str(), pr.number, pr.head_sha.as_str()), (url.as_str(), Some(7), A));
        assert_eq!(pr.previous_head_sha, None);
        assert_eq!(pr.repository.as_deref(), Some(REPOSITORY));
        assert_eq!(pr.clone_url.as_deref(), Some("https://github.com/acme/widgets.git"));
        assert_eq!(run.labels(), &labels::run_labels("review-w1", &url));
    }

    #[test]
    fn synchronize_carries_the_lineage_and_a_name_of_its_own() {
        let runs = created(plan(&examples::synchronize(7, A, B), &[matching("review-w1")]).unwrap());
        let pr = &runs[0].spec.pull_request;
        assert_eq!((pr.head_sha.as_str(), pr.previous_head_sha.as_deref()), (B, Some(A)));
        assert!(runs[0].name_any().ends_with("-bbbbbbb-paaaaaaa"), "{}", runs[0].name_any());
        // A redelivery plans the same run; a force-push back (another before) another.
        let again = created(plan(&examples::synchronize(7, A, B), &[matching("review-w1")]).unwrap());
        assert_eq!(again[0].name_any(), runs[0].name_any());
        let back = created(plan(&examples::synchronize(7, B, A), &[matching("review-w1")]).unwrap());
        assert_ne!(back[0].name_any(), ReviewRun::conventional_name("review-w1", &pr.url, A));
    }

    #[test]
    fn drafts_wait_for_ready_for_review_unless_the_reviewer_takes_them() {
        let mut draft = examples::pull_request("opened", 7, A);
        draft["pull_request"]["draft"] = json!(true);
        assert!(
            ignored(plan(&draft, &[matching("review-w1")]).unwrap()).contains("review-w1: the pull request is a draft")
        );
        let eager = reviewer("review-w1", "team", Some(json!({"repositories": [REPOSITORY], "drafts": true})));
        assert_eq!(created(plan(&draft, &[eager]).unwrap()).len(), 1);
        let ready = examples::pull_request("ready_for_review", 7, A);
        let runs = created(plan(&ready, &[matching("review-w1")]).unwrap());
        assert_eq!(runs[0].name_any(), ReviewRun::conventional_name("review-w1", &runs[0].spec.pull_request.url, A));
    }

    #[test]
    fn skip_labels_branches_and_authors_filter() {
        let mut labelled = examples::pull_request("opened", 7, A);
        labelled["pull_request"]["labels"] = json!([{"name": "review:skip", "color": "ededed"}]);
        assert!(ignored(plan(&labelled, &[matching("review-w1")]).unwrap()).contains("label \"review:skip\""));
        let custom = reviewer("review-w1", "team", Some(json!({"repositories": [REPOSITORY], "skipLabels": ["wip"]})));
        assert_eq!(created(plan(&labelled, &[custom]).unwrap()).len(), 1, "only the Reviewer's own skip labels");

        let opened = examples::pull_request("opened", 7, A);
        let branch =
            reviewer("review-w1", "team", Some(json!({"repositories": [REPOSITORY], "headBranchPrefix": "agent/w2/"})));
        assert!(ignored(plan(&opened, &[branch]).unwrap()).contains("does not start with \"agent/w2/\""));
        let prefixed =
            reviewer("review-w1", "team", Some(json!({"repositories": [REPOSITORY], "headBranchPrefix": "agent/w1/"})));
        assert_eq!(created(plan(&opened, &[prefixed]).unwrap()).len(), 1);
        let authors =
            reviewer("review-w1", "team", Some(json!({"repositories": [REPOSITORY], "authors": ["someone"]})));
        assert!(ignored(plan(&opened, &[authors]).unwrap()).contains("author agent-w1"));
        let author =
            reviewer("review-w1", "team", Some(json!({"repositories": [REPOSITORY], "authors": ["Agent-W1"]})));
        assert_eq!(created(plan(&opened, &[author]).unwrap()).len(), 1);
        assert!(ignored(plan(&opened, &[]).unwrap()).contains("no Reviewer matches repository acme/widgets"));
    }

    #[test]
    fn closed_cancels_and_says_whether_it_was_merged() {
        let mut closed = examples::pull_request("closed", 7, A);
        let url = format!("https://github.com/{REPOSITORY}/pull/7");
        let reviewers = [matching("review-w1"), reviewer("review-w9", "team", None)];
        let expected = |reason: &str| IntakePlan::Cancel {
            url: url.clone(),
            reason: reason.into(),
            reviewers: vec![ReviewerKey { namespace: "team".into(), name: "review-w1".into() }],
        };
        assert_eq!(plan(&closed, &reviewers).unwrap(), expected("the pull request was closed"));
        closed["pull_request"]["merged"] = json!(true);
        assert_eq!(plan(&closed, &reviewers).unwrap(), expected("the pull request was merged"));
    }

    #[test]
    fn reopening_reviews_again_but_a_redelivery_does_not() {
        let reopened = examples::pull_request("reopened", 7, A);
        let first = created(plan(&reopened, &[matching("review-w1")]).unwrap());
        let again = created(plan(&reopened, &[matching("review-w1")]).unwrap());
        assert_eq!(first[0].name_any(), again[0].name_any());
        let mut later = reopened.clone();
        later["pull_request"]["updated_at"] = json!("2026-12-02T09:00:00Z");
        let later = created(plan(&later, &[matching("review-w1")]).unwrap());
        assert_ne!(later[0].name_any(), first[0].name_any());
        let opened = created(plan(&examples::pull_request("opened", 7, A), &[matching("review-w1")]).unwrap());
        assert_ne!(opened[0].name_any(), first[0].name_any());
    }

    #[test]
    fn other_actions_are_ignored() {
        let why = ignored(plan(&examples::pull_request("labeled", 7, A), &[matching("review-w1")]).unwrap());
        assert_eq!(why, "pull_request action \"labeled\" is ignored");
    }

    #[test]
    fn invalid_payloads_name_the_field() {
        let mut no_head = examples::pull_request("opened", 7, A);
        no_head["pull_request"]["head"].as_object_mut().unwrap().remove("sha");
        let err = plan(&no_head, &[]).unwrap_err();
        assert!(err.0.starts_with("pull_request.head: missing field `sha`"), "{err}");
        let mut wrong_type = examples::pull_request("opened", 7, A);
        wrong_type["pull_request"]["number"] = json!("seven");
        assert!(plan(&wrong_type, &[]).unwrap_err().0.starts_with("pull_request.number: invalid type"));
        let mut no_before = examples::synchronize(7, A, B);
        no_before.as_object_mut().unwrap().remove("before");
        assert_eq!(
            plan(&no_before, &[matching("review-w1")]).unwrap_err().0,
            "before: missing, required for action synchronize"
        );
        let bad_sha = examples::pull_request("opened", 7, "not-a-sha");
        assert!(
            plan(&bad_sha, &[matching("review-w1")])
                .unwrap_err()
                .0
                .starts_with("pull_request.head.sha: expected a commit SHA")
        );
        let err = PullRequestEvent::parse(b"{not json").unwrap_err();
        assert!(err.0.contains("key must be a string"), "{err}");
    }
}
