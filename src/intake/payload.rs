//! The parts of GitHub's `pull_request` webhook payload that intake reads.
//! Serde ignores the rest, so GitHub can add fields freely.

use serde::Deserialize;

/// A `pull_request` delivery.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub action: String,
    /// `synchronize`: the head before the push.
    #[serde(default)]
    pub before: Option<String>,
    /// `synchronize`: the head after the push.
    #[serde(default)]
    pub after: Option<String>,
    pub pull_request: PullRequestPayload,
    pub repository: RepositoryPayload,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PullRequestPayload {
    pub html_url: String,
    pub number: i64,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub merged: bool,
    /// When GitHub last changed the pull request: a redelivery repeats it, a
    /// reopening does not.
    #[serde(default)]
    pub updated_at: Option<String>,
    pub head: HeadPayload,
    pub user: UserPayload,
    #[serde(default)]
    pub labels: Vec<LabelPayload>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct HeadPayload {
    pub sha: String,
    #[serde(rename = "ref")]
    pub branch: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct UserPayload {
    pub login: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LabelPayload {
    pub name: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RepositoryPayload {
    /// `owner/name`.
    pub full_name: String,
    pub clone_url: String,
}

/// Why a body is not a `pull_request` payload: names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the pull_request payload is not valid: {0}")]
pub struct InvalidPayload(pub String);

impl PullRequestEvent {
    /// Parses a `pull_request` body; the error names the first field that is
    /// missing or of the wrong type.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidPayload> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let event = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if path == "." { InvalidPayload(inner.to_string()) } else { InvalidPayload(format!("{path}: {inner}")) }
        })?;
        // One JSON document and nothing after it.
        deserializer.end().map_err(|error| InvalidPayload(format!("after the payload: {error}")))?;
        Ok(event)
    }
}

/// GitHub-shaped `pull_request` payloads, with more of the fields GitHub
/// sends than intake reads: for tests and the benchmark.
pub mod examples {
    use serde_json::{Value, json};

    pub const REPOSITORY: &str = "acme/widgets";

    /// A delivery of `action` for pull request `number` at `head`.
    pub fn pull_request(action: &str, number: i64, head: &str) -> Value {
        json!({
            "action": action,
            "number": number,
            "pull_request": {
                "url": format!("https://api.github.com/repos/{REPOSITORY}/pulls/{number}"),
                "id": 1_000_000 + number,
                "node_id": "PR_kwDOAAAB",
                "html_url": format!("https://github.com/{REPOSITORY}/pull/{number}"),
                "number": number,
                "state": "open",
                "locked": false,
                "title": "Add the widget",
                "user": {"login": "agent-w1", "id": 7, "type": "Bot"},
                "body": "Implements the widget.",
                "labels": [],
                "draft": false,
                "merged": false,
                "created_at": "2026-12-01T10:00:00Z",
                "updated_at": "2026-12-01T10:05:00Z",
                "head": {"label": "acme:agent/w1/widget", "ref": "agent/w1/widget", "sha": head,
                    "user": {"login": "acme"}, "repo": {"full_name": REPOSITORY}},
                "base": {"label": "acme:main", "ref": "main", "sha": "0000000000000000000000000000000000000001"},
            },
            "repository": {
                "id": 42,
                "name": "widgets",
                "full_name": REPOSITORY,
                "private": false,
                "owner": {"login": "acme"},
                "html_url": format!("https://github.com/{REPOSITORY}"),
                "clone_url": format!("https://github.com/{REPOSITORY}.git"),
                "default_branch": "main",
            },
            "sender": {"login": "agent-w1", "id": 7},
        })
    }

    /// A `synchronize` delivery: the push of `after` onto `before`.
    pub fn synchronize(number: i64, before: &str, after: &str) -> Value {
        let mut payload = pull_request("synchronize", number, after);
        payload["before"] = json!(before);
        payload["after"] = json!(after);
        payload
    }
}
