//! The GitHub webhook receiver against a dev cluster with the controller:
//! signed deliveries shaped like GitHub's `pull_request` payloads.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

mod harness;

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use review_operator::api::{RunPhase, RunReason};
use review_operator::intake::payload::examples;
use review_operator::intake::server::{Receiver, router};
use review_operator::intake::signature::{WebhookSecrets, sign};
use serde_json::{Value, json};
use tower::ServiceExt;

use harness::*;

const SECRET: &[u8] = b"webhook-secret";
const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

struct Intake {
    h: Harness,
    receiver: Arc<Receiver>,
    _controller: RunningController,
}

impl Intake {
    /// A cluster, the controller, the Reviewer `review-w1` matching
    /// `acme/widgets`, and a ready receiver.
    async fn new() -> Self {
        let (h, controller) = Self::cluster().await;
        let client = h.client.clone();
        Self::start(h, controller, client).await
    }

    /// The cluster, the controller and the Reviewer, before the receiver.
    async fn cluster() -> (Harness, RunningController) {
        let (h, controller) = Harness::with_controller().await;
        let rules = json!({"spec": {"match": {"repositories": [examples::REPOSITORY]}}});
        h.reviewers().patch(REVIEWER, &PatchParams::default(), &Patch::Merge(&rules)).await.expect("match set");
        (h, controller)
    }

    /// A receiver talking to the API server through `client`, once ready.
    async fn start(h: Harness, controller: RunningController, client: kube::Client) -> Self {
        let receiver = Receiver::start(client, WebhookSecrets::new(vec![SECRET.to_vec()]), "webhook".into());
        let intake = Self { h, receiver, _controller: controller };
        support::eventually("the receiver is ready", || async {
            let (status, _) = intake.get("/readyz").await;
            (status == 200).then_some(())
        })
        .await;
        // The store shows the match.
        support::eventually("the receiver sees the Reviewer's match", || async {
            let (status, body) = intake.deliver("pull_request", &examples::pull_request("labeled", 999, A)).await;
            (status == 202 && body["message"].as_str().is_some_and(|m| m.contains("ignored"))).then_some(())
        })
        .await;
        intake
    }

    async fn send(&self, request: Request<Body>) -> (u16, Value) {
        let response = router(self.receiver.clone(), "/github").oneshot(request).await.expect("answer");
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Request::get(path).body(Body::empty()).unwrap()).await
    }

    /// A signed delivery of `event`.
    async fn deliver(&self, event: &str, payload: &Value) -> (u16, Value) {
        let body = payload.to_string();
        let request = Request::post("/github")
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .header("x-hub-signature-256", sign(SECRET, body.as_bytes()))
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    async fn run_names(&self) -> Vec<String> {
        let runs = self.h.runs().list(&ListParams::default()).await.expect("runs");
        runs.items.iter().map(|run| run.name_any()).collect()
    }
}

fn created(body: &Value) -> String {
    let name = body["created"][0].as_str().unwrap_or_else(|| panic!("a run was created: {body}"));
    name.split_once('/').map(|(_, name)| name.to_owned()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_lifecycle_through_signed_deliveries() {
    let intake = Intake::new().await;
    let h = &intake.h;

    // opened: a run for the head, Running on the reviewer pod.
    let (status, body) = intake.deliver("pull_request", &examples::pull_request("opened", 1, A)).await;
    assert_eq!(status, 201, "{body}");
    let first = created(&body);
    let uid = h.wait_running(&first, 1).await;
    let run = h.runs().get(&first).await.unwrap();
    assert_eq!(run.spec.pull_request.repository.as_deref(), Some(examples::REPOSITORY));
    assert_eq!(run.spec.pull_request.clone_url.as_deref(), Some("https://github.com/acme/widgets.git"));
    assert_eq!(run.spec.pull_request.number, Some(1));

    // The same delivery again: nothing new.
    let (status, body) = intake.deliver("pull_request", &examples::pull_request("opened", 1, A)).await;
    assert_eq!((status, body["unchanged"][0].as_str().map(|n| n.ends_with(&first))), (200, Some(true)), "{body}");

    // synchronize: the old run is superseded, the new one runs on a fresh pod, with its lineage.
    let (status, body) = intake.deliver("pull_request", &examples::synchronize(1, A, B)).await;
    assert_eq!(status, 201, "{body}");
    let second = created(&body);
    h.wait_failed(&first, RunReason::Superseded).await;
    h.wait_running(&second, 2).await;
    let run = h.runs().get(&second).await.unwrap();
    assert_eq!(run.spec.pull_request.previous_head_sha.as_deref(), Some(A));

    // Push of C onto B, then the older push of B onto A delivered again, and late.
    let (_, body) = intake.deliver("pull_request", &examples::synchronize(1, B, C)).await;
    let third = created(&body);
    let pod = h.wait_running(&third, 3).await;
    let (status, _) = intake.deliver("pull_request", &examples::synchronize(1, A, B)).await;
    assert_eq!(status, 200, "a redelivery creates nothing");
    // A push GitHub never delivered before, older than C by lineage: late, nothing disturbed.
    let stale = "dddddddddddddddddddddddddddddddddddddddd";
    let (_, body) = intake.deliver("pull_request", &examples::synchronize(1, stale, B)).await;
    let late = created(&body);
    h.wait_failed(&late, RunReason::Superseded).await;
    let current = h.runs().get(&third).await.unwrap();
    assert_eq!(current.phase(), RunPhase::Running, "the current run goes on");
    assert_eq!(h.wait_running(&third, 3).await, pod, "on the same pod");

    // A second pull request of the same worker joins the live pod.
    let (_, body) = intake.deliver("pull_request", &examples::pull_request("opened", 2, A)).await;
    let other = created(&body);
    assert_eq!(h.wait_running(&other, 3).await, pod);
    assert_ne!(pod, uid);

    // closed (merged): the pull request's unfinished runs are cancelled, and say why.
    let mut merged = examples::pull_request("closed", 1, C);
    merged["pull_request"]["merged"] = json!(true);
    let (status, body) = intake.deliver("pull_request", &merged).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancelled"].as_array().map(Vec::len), Some(1), "{body}");
    let cancelled = h.wait_failed(&third, RunReason::Cancelled).await;
    let message = cancelled.status.and_then(|s| s.message).unwrap_or_default();
    assert_eq!(message, "The run was cancelled: the pull request was merged");
    assert_eq!(h.runs().get(&other).await.unwrap().phase(), RunPhase::Running, "the other pull request goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_and_skip_labels_get_no_run() {
    let intake = Intake::new().await;
    let mut draft = examples::pull_request("opened", 3, A);
    draft["pull_request"]["draft"] = json!(true);
    let (status, body) = intake.deliver("pull_request", &draft).await;
    assert_eq!(status, 202, "{body}");
    assert!(body["message"].as_str().unwrap().contains("the pull request is a draft"), "{body}");
    let (status, body) = intake.deliver("pull_request", &examples::pull_request("ready_for_review", 3, A)).await;
    assert_eq!(status, 201, "{body}");
    intake.h.wait_running(&created(&body), 1).await;

    let mut skipped = examples::pull_request("opened", 4, B);
    skipped["pull_request"]["labels"] = json!([{"name": "review:skip"}]);
    let (status, body) = intake.deliver("pull_request", &skipped).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(intake.run_names().await.len(), 1, "only the ready pull request has a run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deliveries_write_nothing_and_say_why() {
    let intake = Intake::new().await;
    let payload = examples::pull_request("opened", 5, A).to_string();
    let post = |content_type: &str, signature: Option<String>, event: Option<&str>, body: Vec<u8>| {
        let mut request = Request::post("/github").header("content-type", content_type);
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        if let Some(event) = event {
            request = request.header("x-github-event", event);
        }
        request.body(Body::from(body)).unwrap()
    };
    let signed = |body: &[u8]| Some(sign(SECRET, body));
    let cases = [
        (
            post("application/json", None, Some("pull_request"), payload.clone().into()),
            401,
            "missing X-Hub-Signature-256",
        ),
        (
            post(
                "application/json",
                Some(sign(b"wrong", payload.as_bytes())),
                Some("pull_request"),
                payload.clone().into(),
            ),
            401,
            "does not match",
        ),
        (
            post(
                "application/x-www-form-urlencoded",
                signed(payload.as_bytes()),
                Some("pull_request"),
                payload.clone().into(),
            ),
            415,
            "Content-Type must be application/json",
        ),
        (
            post("application/json", signed(payload.as_bytes()), None, payload.clone().into()),
            400,
            "missing X-GitHub-Event",
        ),
        (post("application/json", signed(b"{nope"), Some("pull_request"), b"{nope".to_vec()), 400, "not valid"),
        (
            post(
                "application/json",
                signed(b"{\"action\":\"opened\"}"),
                Some("pull_request"),
                b"{\"action\":\"opened\"}".to_vec(),
            ),
            400,
            "missing field `pull_request`",
        ),
    ];
    for (request, expected, message) in cases {
        let (status, body) = intake.send(request).await;
        assert_eq!(status, expected, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains(message)), "{message}: {body}");
    }
    let huge = vec![b' '; review_operator::intake::server::MAX_BODY + 1];
    let (status, body) = intake.send(post("application/json", signed(&huge), Some("pull_request"), huge.clone())).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("larger than GitHub's limit"), "{body}");

    let (status, body) = intake.deliver("ping", &json!({"zen": "Keep it logically awesome.", "hook_id": 1})).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("pong")));
    let (status, body) = intake.deliver("issues", &json!({"action": "opened"})).await;
    assert_eq!((status, body["message"].as_str()), (202, Some("event \"issues\" is ignored")));

    assert!(intake.run_names().await.is_empty(), "nothing was written");
    let (_, metrics) = intake.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    for reason in ["signature", "content_type", "missing_event", "invalid_payload", "too_large"] {
        assert!(
            metrics.contains(&format!("review_operator_webhook_rejected_total{{reason=\"{reason}\"}}")),
            "{reason}: {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_failure_answers_5xx_so_that_github_redelivers() {
    let intake = Intake::new().await;
    let faults = &intake.h.cluster.server().faults;
    faults.fail_next(
        devcluster::faults::FaultTarget::new("create", "reviewruns"),
        1,
        devcluster::error::ApiError::internal("etcdserver: request timed out"),
    );
    let opened = examples::pull_request("opened", 6, A);
    let (status, body) = intake.deliver("pull_request", &opened).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("etcdserver: request timed out"), "{body}");
    assert!(intake.run_names().await.is_empty(), "nothing was written");
    // GitHub's redelivery of the same payload then creates the run.
    let (status, body) = intake.deliver("pull_request", &opened).await;
    assert_eq!(status, 201, "{body}");
    intake.h.wait_running(&created(&body), 1).await;
}

/// The ServiceAccount, ClusterRole and ClusterRoleBinding of `deploy/webhook.yaml`, applied to the
/// cluster, and a token of that ServiceAccount.
async fn webhook_identity(h: &Harness) -> String {
    use kube::api::{DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(h.client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": "review-system"}})).unwrap();
    namespaces.create(&PostParams::default(), &namespace).await.expect("namespace created");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(include_str!("../deploy/webhook.yaml"))
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    for kind in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"] {
        let doc =
            docs.iter().find(|doc| doc["kind"] == kind).unwrap_or_else(|| panic!("{kind} in deploy/webhook.yaml"));
        let object: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let gvk = kube::api::GroupVersionKind::try_from(object.types.as_ref().unwrap()).unwrap();
        let resource = ApiResource::from_gvk(&gvk);
        let api: kube::Api<DynamicObject> = match object.metadata.namespace.as_deref() {
            Some(namespace) => kube::Api::namespaced_with(h.client.clone(), namespace, &resource),
            None => kube::Api::all_with(h.client.clone(), &resource),
        };
        api.create(&PostParams::default(), &object).await.unwrap_or_else(|e| panic!("{kind} created: {e}"));
    }
    support::service_account_token(&h.cluster, "review-system", "review-operator-webhook", None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_does_its_work_with_the_rbac_it_is_deployed_with() {
    let (h, controller) = Intake::cluster().await;
    let token = webhook_identity(&h).await;
    let client = h.cluster.client_for_token(&token).expect("client");
    let intake = Intake::start(h, controller, client).await;
    let h = &intake.h;
    // Opened, redelivered, pushed to, closed: the create, get, list and patch it was granted.
    let (status, body) = intake.deliver("pull_request", &examples::pull_request("opened", 7, A)).await;
    assert_eq!(status, 201, "{body}");
    let first = created(&body);
    h.wait_running(&first, 1).await;
    let (status, body) = intake.deliver("pull_request", &examples::pull_request("opened", 7, A)).await;
    assert_eq!(status, 200, "a redelivery reads the existing run: {body}");
    let (status, body) = intake.deliver("pull_request", &examples::synchronize(7, A, B)).await;
    assert_eq!(status, 201, "{body}");
    let second = created(&body);
    h.wait_running(&second, 2).await;
    let (status, body) = intake.deliver("pull_request", &examples::pull_request("closed", 7, B)).await;
    assert_eq!((status, body["cancelled"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
    h.wait_failed(&second, RunReason::Cancelled).await;

    // And nothing more: no deleting runs, no writing their status, no writing Reviewers or pods.
    let webhook = h.cluster.client_for_token(&token).expect("client");
    let runs: kube::Api<review_operator::api::ReviewRun> = kube::Api::namespaced(webhook.clone(), "default");
    let forbidden = |result: Result<(), kube::Error>, what: &str| match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403, got {other:?}"),
    };
    forbidden(runs.delete(&first, &Default::default()).await.map(|_| ()), "delete a run");
    let status = json!({"status": {"phase": "Succeeded"}});
    forbidden(
        runs.patch_status(&first, &PatchParams::default(), &Patch::Merge(&status)).await.map(|_| ()),
        "patch status",
    );
    let reviewers: kube::Api<review_operator::api::Reviewer> = kube::Api::namespaced(webhook.clone(), "default");
    let spec = json!({"spec": {"match": null}});
    forbidden(
        reviewers.patch(REVIEWER, &PatchParams::default(), &Patch::Merge(&spec)).await.map(|_| ()),
        "patch a Reviewer",
    );
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(webhook, "default");
    forbidden(pods.list(&ListParams::default()).await.map(|_| ()), "list pods");
}
