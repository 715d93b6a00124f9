//! Delivery of verdicts to GitHub, against a fake GitHub that records every request and answers
//! failures on demand: one review per verdict, pinned to the reviewed commit; none for a commit
//! the pull request moved past; nothing posted twice across retries and restarts.
//!
//! The Reviewer controller runs in-process on a dev cluster whose pods a stand-in kubelet reports
//! running (see the harness); tests submit verdicts as the reviewer pod does.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

mod github;
mod harness;

use github::FakeGitHub;
use harness::*;
use kube::ResourceExt;
use review_operator::api::{Delivery, DeliveryState, ReviewRun, RunReason};
use review_operator::delivery::DeliverySettings;
use review_operator::delivery::github::GitHubAuth;

const REPO: &str = "acme/widgets";
const TOKEN: &str = "ghp_delivery";
const APP_ID: u64 = 4242;
const INSTALLATION: u64 = 77;

/// How the operator authenticates in a test.
#[derive(Clone, Copy)]
enum As {
    Token,
    App,
}

struct Setup {
    h: Harness,
    controller: RunningController,
    github: FakeGitHub,
}

impl Setup {
    /// A fake GitHub with PR 1 at `SHA_A`, a controller delivering to it, and the Reviewer.
    async fn start(who: As) -> Self {
        let github = FakeGitHub::start().await;
        let auth = match who {
            As::Token => {
                github.allow_token(TOKEN);
                GitHubAuth::Token(TOKEN.into())
            }
            As::App => {
                github.enable_app(APP_ID, INSTALLATION, REPO);
                GitHubAuth::App { app_id: APP_ID, private_key_pem: github::APP_KEY_PEM.into() }
            }
        };
        github.set_head(REPO, 1, SHA_A);
        let h = Harness::new().await;
        let settings = DeliverySettings { api_url: github.url(), auth };
        let controller = RunningController::start_with(h.client.clone(), Some(settings));
        h.create_reviewer(REVIEWER).await;
        Self { h, controller, github }
    }

    fn pr(&self) -> String {
        format!("{}/{REPO}/pull/1", self.github.url())
    }

    async fn trigger(&self, name: &str, sha: &str) -> ReviewRun {
        self.h.create_run_with(name, REVIEWER, &self.pr(), sha, "1h").await
    }

    async fn wait_delivery(&self, run: &str, state: DeliveryState) -> Delivery {
        let reached = self
            .h
            .wait_run(run, &format!("delivery {state:?}"), |run| delivery(run).is_some_and(|d| d.state == state))
            .await;
        delivery(&reached).expect("a delivery")
    }

    fn review_posts(&self) -> usize {
        let path = format!("/repos/{REPO}/pulls/1/reviews");
        self.github.requests().iter().filter(|r| r.method == "POST" && r.path == path && r.status < 300).count()
    }
}

fn delivery(run: &ReviewRun) -> Option<Delivery> {
    run.status.as_ref()?.delivery.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_run_becomes_one_review_on_its_commit_and_one_successful_status() {
    let s = Setup::start(As::Token).await;
    let run = s.trigger("pr1-a", SHA_A).await;
    s.h.wait_running("pr1-a", 1).await;
    s.wait_delivery("pr1-a", DeliveryState::Pending).await;
    let context = format!("review-operator/{REVIEWER}");
    let pending = s.github.statuses(REPO, SHA_A);
    assert_eq!(
        pending.iter().map(|s| (s.state.as_str(), s.context.as_str())).collect::<Vec<_>>(),
        [("pending", context.as_str())]
    );

    s.h.submit("pr1-a", "Approved").await.expect("verdict accepted");
    let delivered = s.wait_delivery("pr1-a", DeliveryState::Delivered).await;
    let reviews = s.github.reviews(REPO, 1);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    let review = &reviews[0];
    assert_eq!((review.commit_id.as_str(), review.state.as_str()), (SHA_A, "APPROVED"));
    assert!(review.body.starts_with("Looks good"), "{}", review.body);
    assert!(review.body.contains(&format!("<!-- review-operator run={} -->", run.uid().unwrap())), "{}", review.body);
    assert_eq!(delivered.review_id, Some(review.id as i64));
    let states: Vec<String> = s.github.statuses(REPO, SHA_A).into_iter().map(|s| s.state).collect();
    assert_eq!(states, ["pending", "success"], "statuses in creation order");
    assert_eq!(s.review_posts(), 1);
    let metrics = s.controller.metrics.encode();
    assert!(metrics.contains("review_operator_deliveries_total{result=\"delivered\"} 1"), "{metrics}");
    assert!(metrics.contains("review_operator_github_rate_limit_remaining"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_requested_becomes_one_request_changes_review_and_a_failed_check_run() {
    let s = Setup::start(As::App).await;
    let run = s.trigger("pr1-a", SHA_A).await;
    s.h.wait_running("pr1-a", 1).await;
    let started = s.wait_delivery("pr1-a", DeliveryState::Pending).await;
    let checks = s.github.check_runs(REPO);
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!((checks[0].status.as_str(), checks[0].head_sha.as_str()), ("in_progress", SHA_A));
    assert_eq!(checks[0].external_id.as_deref(), run.uid().as_deref());
    assert_eq!(started.check_run_id, Some(checks[0].id as i64));

    s.h.submit("pr1-a", "ChangesRequested").await.expect("verdict accepted");
    s.wait_delivery("pr1-a", DeliveryState::Delivered).await;
    let reviews = s.github.reviews(REPO, 1);
    assert_eq!(reviews.len(), 1);
    assert_eq!((reviews[0].state.as_str(), reviews[0].commit_id.as_str()), ("CHANGES_REQUESTED", SHA_A));
    assert_eq!(reviews[0].user, github::APP_BOT_USER, "posted as the App");
    let check = &s.github.check_runs(REPO)[0];
    assert_eq!((check.status.as_str(), check.conclusion.as_deref()), ("completed", Some("failure")));
    // App authentication: a JWT for the installation lookup and the token, then the token.
    assert!(s.github.installation_tokens_issued() >= 1);
    let requests = s.github.requests();
    let token_request = requests.iter().find(|r| r.path == format!("/app/installations/{INSTALLATION}/access_tokens"));
    let jwt = token_request.and_then(|r| r.authorization.clone()).expect("the token was requested");
    assert_eq!(jwt.matches('.').count(), 2, "a JWT: {jwt}");
    let review_post = requests.iter().find(|r| r.method == "POST" && r.path.ends_with("/reviews")).expect("posted");
    assert!(review_post.authorization.as_deref().is_some_and(|a| a.starts_with("Bearer ghs_")), "{review_post:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_run_gets_no_review_and_its_check_run_names_the_newer_commit() {
    let s = Setup::start(As::App).await;
    s.trigger("pr1-a", SHA_A).await;
    s.h.wait_running("pr1-a", 1).await;
    s.wait_delivery("pr1-a", DeliveryState::Pending).await;

    s.github.set_head(REPO, 1, SHA_B);
    s.trigger("pr1-b", SHA_B).await;
    s.h.wait_failed("pr1-a", RunReason::Superseded).await;
    let skipped = s.wait_delivery("pr1-a", DeliveryState::Skipped).await;
    assert_eq!(skipped.reason.as_deref(), Some("Superseded"));
    // A late verdict for the superseded run is refused by the API server, so nothing is posted.
    s.h.submit("pr1-a", "Approved").await.expect_err("the stale verdict is refused");
    let old = s.github.check_runs(REPO).into_iter().find(|c| c.head_sha == SHA_A).expect("the old check run");
    assert_eq!(old.conclusion.as_deref(), Some("skipped"));
    assert!(old.summary.as_deref().unwrap_or_default().contains("bbbbbbb"), "{old:?}");

    s.h.wait_running("pr1-b", 2).await;
    s.h.submit("pr1-b", "Approved").await.expect("verdict accepted");
    s.wait_delivery("pr1-b", DeliveryState::Delivered).await;
    let reviews = s.github.reviews(REPO, 1);
    assert_eq!(
        reviews.iter().map(|r| r.commit_id.as_str()).collect::<Vec<_>>(),
        [SHA_B],
        "one review, for the newer commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_moved_on_github_after_the_verdict_gets_no_review() {
    let s = Setup::start(As::Token).await;
    s.trigger("pr1-a", SHA_A).await;
    s.h.wait_running("pr1-a", 1).await;
    s.wait_delivery("pr1-a", DeliveryState::Pending).await;
    // A push GitHub knows of and the cluster not yet.
    s.github.set_head(REPO, 1, SHA_B);
    s.h.submit("pr1-a", "Approved").await.expect("verdict accepted");
    let skipped = s.wait_delivery("pr1-a", DeliveryState::Skipped).await;
    assert_eq!(skipped.reason.as_deref(), Some("HeadMoved"));
    assert!(skipped.message.as_deref().unwrap_or_default().contains("bbbbbbb"), "{skipped:?}");
    assert!(s.github.reviews(REPO, 1).is_empty());
    let last = s.github.statuses(REPO, SHA_A).pop().expect("statuses");
    assert_eq!(last.state, "error");
}

/// The App's installation client, as an earlier controller process used it.
async fn installation_client(github: &FakeGitHub) -> octocrab::Octocrab {
    let key = octocrab::EncodingKey::from_rsa_pem(github::APP_KEY_PEM.as_bytes()).expect("test key");
    let app = octocrab::Octocrab::builder()
        .base_uri(github.url())
        .expect("base uri")
        .app(octocrab::models::AppId(APP_ID), key)
        .build()
        .expect("App client");
    app.installation(octocrab::models::InstallationId(INSTALLATION)).expect("installation client")
}

async fn post(client: &octocrab::Octocrab, path: &str, body: serde_json::Value) -> serde_json::Value {
    let response = client._post(path, Some(&body)).await.expect("posted");
    assert!(response.status().is_success(), "{}", response.status());
    serde_json::from_str(&client.body_to_string(response).await.expect("body")).expect("json")
}

/// A controller that died after GitHub accepted its writes, before it recorded them: the check
/// run, then the review, are on GitHub and the run says nothing of them. The next controller
/// finds each (the check run by `external_id`, the review by its marker) and posts nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_before_a_crash_are_found_and_not_repeated() {
    let github = FakeGitHub::start().await;
    github.enable_app(APP_ID, INSTALLATION, REPO);
    github.set_head(REPO, 1, SHA_A);
    let settings = DeliverySettings {
        api_url: github.url(),
        auth: GitHubAuth::App { app_id: APP_ID, private_key_pem: github::APP_KEY_PEM.into() },
    };
    let h = Harness::new().await;
    let pr = format!("{}/{REPO}/pull/1", github.url());
    let without_delivery = RunningController::start(h.client.clone());
    h.create_reviewer(REVIEWER).await;
    let run = h.create_run_with("pr1-a", REVIEWER, &pr, SHA_A, "1h").await;
    let uid = run.uid().expect("uid");
    h.wait_running("pr1-a", 1).await;
    without_delivery.stop().await;

    // The check run the dead process created.
    let earlier = installation_client(&github).await;
    let check = post(
        &earlier,
        &format!("/repos/{REPO}/check-runs"),
        serde_json::json!({"name": format!("review-operator/{REVIEWER}"), "head_sha": SHA_A,
            "status": "in_progress", "external_id": uid}),
    )
    .await;
    let check_id = check["id"].as_i64().expect("check run id");
    let controller = RunningController::start_with(h.client.clone(), Some(settings.clone()));
    let started = h
        .wait_run("pr1-a", "delivery started", |run| delivery(run).is_some_and(|d| d.state == DeliveryState::Pending))
        .await;
    assert_eq!(delivery(&started).and_then(|d| d.check_run_id), Some(check_id), "the earlier check run, found");
    assert_eq!(github.check_runs(REPO).len(), 1);
    controller.stop().await;

    // The verdict, and the review the dead process posted for it.
    h.submit("pr1-a", "Approved").await.expect("verdict accepted");
    let marker = format!("<!-- review-operator run={uid} -->");
    let review = post(
        &earlier,
        &format!("/repos/{REPO}/pulls/1/reviews"),
        serde_json::json!({"commit_id": SHA_A, "body": format!("Looks good\n\n{marker}"), "event": "APPROVE"}),
    )
    .await;
    let posts_before = github.requests().iter().filter(|r| r.method == "POST" && r.path.ends_with("/reviews")).count();
    let _controller = RunningController::start_with(h.client.clone(), Some(settings));
    let delivered = h
        .wait_run("pr1-a", "delivered", |run| delivery(run).is_some_and(|d| d.state == DeliveryState::Delivered))
        .await;
    let delivered = delivery(&delivered).expect("delivery");
    assert_eq!(delivered.review_id, review["id"].as_i64(), "the earlier review, found");
    assert_eq!(github.reviews(REPO, 1).len(), 1);
    let posts_after = github.requests().iter().filter(|r| r.method == "POST" && r.path.ends_with("/reviews")).count();
    assert_eq!(posts_after, posts_before, "no second review posted");
    let checks = github.check_runs(REPO);
    assert_eq!(checks.len(), 1);
    assert_eq!((checks[0].id as i64, checks[0].conclusion.as_deref()), (check_id, Some("success")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_rate_limits_are_retried_and_post_once() {
    let s = Setup::start(As::Token).await;
    let reviews = format!("/repos/{REPO}/pulls/1/reviews");
    s.github.fail("POST", &reviews, 1, 502, &[], "Server Error");
    s.github.fail("POST", &reviews, 1, 429, &[("retry-after", "1")], "API rate limit exceeded");
    s.trigger("pr1-a", SHA_A).await;
    s.h.wait_running("pr1-a", 1).await;
    s.wait_delivery("pr1-a", DeliveryState::Pending).await;
    s.h.submit("pr1-a", "Approved").await.expect("verdict accepted");
    let delivered = s.wait_delivery("pr1-a", DeliveryState::Delivered).await;
    assert_eq!(s.github.reviews(REPO, 1).len(), 1);
    assert_eq!(delivered.attempts, 2, "{delivered:?}");
    let answers: Vec<u16> =
        s.github.requests().iter().filter(|r| r.method == "POST" && r.path == reviews).map(|r| r.status).collect();
    assert_eq!(answers, [502, 429, 200]);
    let metrics = s.controller.metrics.encode();
    assert!(metrics.contains("review_operator_deliveries_total{result=\"retried\"} 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_fails_the_delivery_with_githubs_message_and_a_warning() {
    let s = Setup::start(As::Token).await;
    let reviews = format!("/repos/{REPO}/pulls/1/reviews");
    s.github.fail("POST", &reviews, usize::MAX, 422, &[], "Review cannot be posted");
    s.trigger("pr1-a", SHA_A).await;
    s.h.wait_running("pr1-a", 1).await;
    s.wait_delivery("pr1-a", DeliveryState::Pending).await;
    s.h.submit("pr1-a", "Approved").await.expect("verdict accepted");
    let failed = s.wait_delivery("pr1-a", DeliveryState::Failed).await;
    assert_eq!(failed.reason.as_deref(), Some("Unprocessable"));
    assert_eq!(failed.message.as_deref(), Some("GitHub answered 422: Review cannot be posted"));
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::default_namespaced(s.h.client.clone());
    let event = support::eventually("a DeliveryFailed event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("DeliveryFailed"))
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(event.note.unwrap_or_default().contains("Review cannot be posted"));
    assert_eq!(event.regarding.and_then(|r| r.name).as_deref(), Some("pr1-a"));
}

/// Installation tokens that live 30s are renewed before every request (octocrab renews a token
/// with less than 30s left): no request is ever made with an expired token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installation_tokens_are_renewed_before_they_expire() {
    let s = Setup::start(As::App).await;
    s.github.set_token_lifetime(30);
    s.trigger("pr1-a", SHA_A).await;
    s.h.wait_running("pr1-a", 1).await;
    s.wait_delivery("pr1-a", DeliveryState::Pending).await;
    s.h.submit("pr1-a", "Approved").await.expect("verdict accepted");
    s.wait_delivery("pr1-a", DeliveryState::Delivered).await;
    assert!(s.github.installation_tokens_issued() >= 2, "renewed: {}", s.github.installation_tokens_issued());
    let refused: Vec<_> = s.github.requests().into_iter().filter(|r| r.status == 401).collect();
    assert!(refused.is_empty(), "no request with an expired token: {refused:?}");
}
