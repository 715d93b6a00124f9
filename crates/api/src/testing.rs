//! Fixtures for tests of the layers above the API: one Reviewer, two pull
//! requests, SHAs and a test clock. Built only for tests (`testing`
//! feature).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use crate::{AgentSpec, PullRequest, ReviewRun, ReviewRunSpec, Reviewer, ReviewerSpec};

pub const NAME: &str = "review-w1";
pub const PR1: &str = "https://github.com/acme/widgets/pull/1";
pub const PR2: &str = "https://github.com/acme/widgets/pull/2";
pub const SHA_A: &str = "aaaaaaa1111111";
pub const SHA_B: &str = "bbbbbbb2222222";
pub const SHA_C: &str = "ccccccc3333333";
pub const SHA_X: &str = "eeeeeee4444444";
pub const SHA_Y: &str = "fffffff5555555";

/// The test clock: seconds after a fixed instant.
pub fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("a test instant")
}

pub fn reviewer() -> Reviewer {
    let mut reviewer = Reviewer::new(
        NAME,
        ReviewerSpec::new(
            "w1",
            AgentSpec { harness: Some("claude-code".into()), ..AgentSpec::new("ghcr.io/acme/reviewer:1") },
        ),
    );
    reviewer.metadata.namespace = Some("default".into());
    reviewer.metadata.generation = Some(1);
    reviewer
}

pub fn new_run(name: &str, pr: &str, sha: &str, created: i64) -> ReviewRun {
    let mut run = ReviewRun::new(
        name,
        ReviewRunSpec {
            reviewer: NAME.into(),
            pull_request: PullRequest::new(pr, sha),
            cancel_requested: false,
            timeout: "1h".into(),
            ttl_seconds_after_finished: None,
        },
    );
    run.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        uid: Some(format!("uid-{name}")),
        generation: Some(1),
        creation_timestamp: Some(Time(at(created))),
        ..ObjectMeta::default()
    };
    run
}
