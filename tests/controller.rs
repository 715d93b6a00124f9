//! The Reviewer controller against a dev cluster, one test per behaviour.
//!
//! Pods are stored but not run; a stand-in kubelet reports them Running
//! (see the harness). Tests play the reviewer pod by patching run statuses,
//! and the outside world by deleting pods.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

mod harness;

use harness::*;

use std::sync::Arc;
use std::time::Duration;

use devcluster::DevCluster;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use review_operator::api::{
    CONDITION_CURRENT, CONDITION_SUCCEEDED, GROUP, PullRequest, RestartReason, ReviewRun, ReviewRunSpec, Reviewer,
    RunPhase, RunReason, VERSION, conditions,
};
use review_operator::controller::plan::{ObservedPod, ObservedReviewer, plan_reviewer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_running_run_replaces_the_pod() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    let first_uid = h.wait_running("pr1-01", 1).await;

    h.create_run("pr1-02", PR1, SHA_B).await;
    let stale = h.wait_failed("pr1-01", RunReason::Superseded).await;
    assert_eq!(superseded_by(&stale), Some("pr1-02"));
    assert!(conditions::is(&stale.status.as_ref().unwrap().conditions, CONDITION_CURRENT, conditions::FALSE));
    let second_uid = h.wait_running("pr1-02", 2).await;
    assert_ne!(second_uid, first_uid, "a new pod, not a notify of the old one");
    assert_eq!(h.wait_only_pod(2).await, second_uid, "the old pod is gone");

    let reviewer = h.wait_reviewer("queue holds pr1-02", |r| status_of(r).queue == ["pr1-02"]).await;
    let status = status_of(&reviewer);
    assert_eq!((status.incarnation, status.restarts), (2, 1));
    let restart = status.last_restart.expect("lastRestart");
    assert_eq!((restart.reason, restart.runs), (RestartReason::Superseded, vec!["pr1-01".to_owned()]));
    assert_eq!(status.pod.map(|pod| pod.uid), Some(second_uid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_run_on_the_head_sha_restarts_nothing() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    let uid = h.wait_running("pr1-01", 1).await;

    h.create_run("pr1-02", PR1, SHA_A).await;
    h.create_run("pr2-01", PR2, SHA_X).await;
    let duplicate = h.wait_failed("pr1-02", RunReason::Duplicate).await;
    let message = duplicate.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
    assert!(message.contains("pr1-01"), "the message names the covering run: {message}");
    assert_eq!(h.wait_running("pr2-01", 1).await, uid, "notified on the same pod");

    let reviewer = h.wait_reviewer("queue holds both PRs", |r| status_of(r).queue == ["pr1-01", "pr2-01"]).await;
    let status = status_of(&reviewer);
    assert_eq!((status.incarnation, status.restarts), (1, 0));
    assert_eq!(h.pod_uids().await, vec![(Reviewer::pod_name(REVIEWER, 1), uid.clone())]);
    let first = h.runs().get("pr1-01").await.unwrap();
    assert_eq!(first.phase(), RunPhase::Running);
    assert_eq!(assignment(&first).map(|(pod_uid, _)| pod_uid), Some(uid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_pr_trigger_restarts_once() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run("t1-pr1", PR1, SHA_A).await;
    h.create_run("t1-pr2", PR2, SHA_X).await;
    h.create_run("t1-pr3", PR3, SHA_Z).await;
    for run in ["t1-pr1", "t1-pr2", "t1-pr3"] {
        h.wait_running(run, 1).await;
    }

    // One trigger: new head SHAs for two pull requests at once.
    let (a, b) = tokio::join!(h.create_run("t2-pr1", PR1, SHA_B), h.create_run("t2-pr2", PR2, SHA_Y));
    assert!(a.uid().is_some() && b.uid().is_some());
    h.wait_failed("t1-pr1", RunReason::Superseded).await;
    h.wait_failed("t1-pr2", RunReason::Superseded).await;
    let uid = h.wait_running("t2-pr1", 2).await;
    assert_eq!(h.wait_running("t2-pr2", 2).await, uid);
    assert_eq!(h.wait_running("t1-pr3", 2).await, uid, "the unchanged PR moves to the fresh pod");

    // The two runs of one trigger were created concurrently: the API server decided their order.
    let reviewer = h
        .wait_reviewer("queue of the fresh pod", |r| {
            let queue = status_of(r).queue;
            queue.len() == 3
                && queue[0] == "t1-pr3"
                && queue[1..].contains(&"t2-pr1".into())
                && queue[1..].contains(&"t2-pr2".into())
        })
        .await;
    let status = status_of(&reviewer);
    assert_eq!((status.incarnation, status.restarts), (2, 1), "exactly one restart");
    let mut restarted = status.last_restart.expect("lastRestart").runs;
    restarted.sort();
    assert_eq!(restarted, ["t1-pr1", "t1-pr2"]);
    assert_eq!(h.wait_only_pod(2).await, uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_run_for_a_superseded_sha_fails_at_once() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    h.wait_running("pr1-01", 1).await;
    h.create_run("pr1-02", PR1, SHA_B).await;
    let uid = h.wait_running("pr1-02", 2).await;

    // A replayed webhook for the old commit.
    h.create_run("pr1-03", PR1, SHA_A).await;
    let late = h.wait_failed("pr1-03", RunReason::Superseded).await;
    assert_eq!(superseded_by(&late), Some("pr1-02"));
    assert!(conditions::is(&late.status.as_ref().unwrap().conditions, CONDITION_CURRENT, conditions::FALSE));
    let head = h.runs().get("pr1-02").await.unwrap();
    assert_eq!(head.phase(), RunPhase::Running, "the head's review goes on");
    assert_eq!(assignment(&head).map(|(pod_uid, _)| pod_uid), Some(uid.clone()));
    let status = status_of(&h.reviewers().get(REVIEWER).await.unwrap());
    assert_eq!((status.incarnation, status.restarts), (2, 1));
    assert_eq!(h.pod_uids().await, vec![(Reviewer::pod_name(REVIEWER, 2), uid)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_after_approval_is_a_duplicate() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    let uid = h.wait_running("pr1-01", 1).await;
    h.submit("pr1-01", "Approved").await.expect("verdict accepted");
    h.wait_reviewer("queue emptied", |r| status_of(r).queue.is_empty() && status_of(r).pod.is_some()).await;

    h.create_run("pr1-02", PR1, SHA_A).await;
    let duplicate = h.wait_failed("pr1-02", RunReason::Duplicate).await;
    let message = duplicate.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
    assert!(message.contains("pr1-01"), "{message}");
    let approved = h.runs().get("pr1-01").await.unwrap();
    assert_eq!(approved.phase(), RunPhase::Succeeded);
    let status = status_of(&h.reviewers().get(REVIEWER).await.unwrap());
    assert_eq!(status.restarts, 0);
    assert_eq!(h.pod_uids().await, vec![(Reviewer::pod_name(REVIEWER, 1), uid)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_fails_the_run_and_restarts_the_reviewer() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    h.create_run("pr2-01", PR2, SHA_X).await;
    let first_uid = h.wait_running("pr1-01", 1).await;
    h.wait_running("pr2-01", 1).await;

    let patch = json!({ "spec": { "cancelRequested": true } });
    h.runs().patch("pr1-01", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("cancel requested");
    h.wait_failed("pr1-01", RunReason::Cancelled).await;
    let uid = h.wait_running("pr2-01", 2).await;
    assert_ne!(uid, first_uid);
    assert_eq!(h.wait_only_pod(2).await, uid);
    let reviewer = h.wait_reviewer("queue holds pr2-01", |r| status_of(r).queue == ["pr2-01"]).await;
    let status = status_of(&reviewer);
    assert_eq!(status.restarts, 1);
    assert_eq!(status.last_restart.map(|r| r.reason), Some(RestartReason::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_run_times_out() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run_with("pr1-01", REVIEWER, PR1, SHA_A, "2s").await;
    let first_uid = h.wait_running("pr1-01", 1).await;

    let timed_out = h.wait_failed("pr1-01", RunReason::TimedOut).await;
    let message = timed_out.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
    assert!(message.contains("2s"), "{message}");
    let reviewer = h.wait_reviewer("restarted", |r| status_of(r).restarts == 1).await;
    assert_eq!(status_of(&reviewer).last_restart.map(|r| r.reason), Some(RestartReason::TimedOut));
    let uid = h.wait_only_pod(2).await;
    assert_ne!(uid, first_uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_deleted_from_outside_is_replaced() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    let first_uid = h.wait_running("pr1-01", 1).await;

    h.pods().delete(&Reviewer::pod_name(REVIEWER, 1), &DeleteParams::default()).await.expect("pod deleted");
    let uid = h.wait_running("pr1-01", 2).await;
    assert_ne!(uid, first_uid);
    assert_eq!(h.wait_only_pod(2).await, uid);
    let reviewer = h.wait_reviewer("queue on the new pod", |r| status_of(r).pod.is_some_and(|p| p.uid == uid)).await;
    let status = status_of(&reviewer);
    assert_eq!(status.queue, ["pr1-01"]);
    assert_eq!(status.restarts, 0, "a lost pod is not a restart for stale work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_reviewer_removes_its_pod_and_fails_its_runs() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    h.wait_running("pr1-01", 1).await;
    h.wait_reviewer("finalizer added", |r| r.finalizers().iter().any(|f| f == review_operator::api::FINALIZER)).await;

    h.reviewers().delete(REVIEWER, &DeleteParams::default()).await.expect("Reviewer deletion accepted");
    let failed = h.wait_failed("pr1-01", RunReason::ReviewerDeleted).await;
    assert!(conditions::is(&failed.status.as_ref().unwrap().conditions, CONDITION_SUCCEEDED, conditions::FALSE));
    support::eventually("Reviewer gone", || async {
        h.reviewers().get_opt(REVIEWER).await.ok().filter(Option::is_none)
    })
    .await;
    support::eventually("pods gone", || pods_empty(&h)).await;
}

async fn pods_empty(h: &Harness) -> Option<()> {
    h.pod_uids().await.is_empty().then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_for_a_superseded_run_is_rejected() {
    let (h, _controller) = Harness::with_controller().await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    h.wait_running("pr1-01", 1).await;
    h.create_run("pr1-02", PR1, SHA_B).await;
    h.wait_failed("pr1-01", RunReason::Superseded).await;

    let error = h.submit("pr1-01", "Approved").await.expect_err("a late verdict is rejected");
    let kube::Error::Api(status) = error else { panic!("expected an API error, got {error}") };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.contains("final"), "{}", status.message);
    let run = h.runs().get("pr1-01").await.unwrap();
    assert_eq!(run.phase(), RunPhase::Failed);
    assert!(run.status.as_ref().unwrap().result.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_stopped_between_failing_and_replacing_converges() {
    let h = Harness::new().await;
    let controller = RunningController::start(h.client.clone());
    h.create_reviewer(REVIEWER).await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    let first_uid = h.wait_running("pr1-01", 1).await;
    h.wait_reviewer("queue holds pr1-01", |r| status_of(r).queue == ["pr1-01"]).await;
    controller.stop().await;

    // The first half of the plan for the new SHA: run statuses written, pod untouched.
    h.create_run("pr1-02", PR1, SHA_B).await;
    let observed = ObservedReviewer {
        name: REVIEWER.into(),
        reviewer: Some(h.reviewers().get(REVIEWER).await.unwrap()),
        runs: h.runs().list(&ListParams::default()).await.unwrap().items,
        pods: h
            .pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(ObservedPod::from_pod)
            .collect(),
    };
    let plan = plan_reviewer(&observed, Timestamp::now());
    assert!(plan.restart.is_some(), "the plan replaces the pod");
    for update in plan.run_updates() {
        let body = json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "ReviewRun",
            "metadata": { "name": update.run },
            "status": update.status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        h.runs().patch_status(&update.run, &params, &Patch::Apply(&body)).await.expect("status written");
    }
    assert_eq!(h.runs().get("pr1-01").await.unwrap().phase(), RunPhase::Failed);
    assert_eq!(h.pod_uids().await, vec![(Reviewer::pod_name(REVIEWER, 1), first_uid.clone())]);

    let _controller = RunningController::start(h.client.clone());
    let uid = h.wait_running("pr1-02", 2).await;
    assert_ne!(uid, first_uid);
    assert_eq!(h.wait_only_pod(2).await, uid);
    let reviewer = h.wait_reviewer("queue holds pr1-02", |r| status_of(r).queue == ["pr1-02"]).await;
    let status = status_of(&reviewer);
    assert_eq!((status.incarnation, status.restarts), (2, 1), "exactly one restart");
    assert_eq!(status.last_restart.map(|r| r.runs), Some(vec!["pr1-01".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_for_a_missing_reviewer_waits_for_it() {
    let h = Harness::new().await;
    let _controller = RunningController::start(h.client.clone());
    h.create_run_with("pr1-01", "review-w2", PR1, SHA_A, "1h").await;
    let waiting = h
        .wait_run("pr1-01", "waiting for its Reviewer", |run| {
            run.status.as_ref().and_then(|s| conditions::find(&s.conditions, CONDITION_SUCCEEDED)).is_some_and(|c| {
                c.status == conditions::UNKNOWN && c.reason == review_operator::api::REASON_REVIEWER_NOT_FOUND
            })
        })
        .await;
    assert_eq!(waiting.phase(), RunPhase::Pending);
    let event = object_event(&h, "pr1-01", "ReviewerNotFound").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(event.note.unwrap_or_default().contains("review-w2"));

    h.create_reviewer("review-w2").await;
    let run = h.wait_run("pr1-01", "Running once the Reviewer exists", |run| run.phase() == RunPhase::Running).await;
    assert_eq!(run.status.and_then(|s| s.assignment).map(|a| a.pod), Some("review-w2-1".to_owned()));
}

/// Makes matching requests fail before they reach the API server, as a
/// failing server would answer them.
#[derive(Clone, Default)]
struct Faults {
    armed: Arc<std::sync::Mutex<Vec<Fault>>>,
    /// Requests other than GET that reached the server.
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

struct Fault {
    method: http::Method,
    path_suffix: String,
    code: u16,
    reason: &'static str,
    remaining: usize,
}

impl Faults {
    fn fail(&self, method: http::Method, path_suffix: &str, code: u16, reason: &'static str, times: usize) {
        let fault = Fault { method, path_suffix: path_suffix.into(), code, reason, remaining: times };
        self.armed.lock().unwrap().push(fault);
    }

    /// The status to answer `request` with, consuming one use of the fault.
    fn take<B>(&self, request: &http::Request<B>) -> Option<(u16, &'static str)> {
        let mut faults = self.armed.lock().unwrap();
        let fault = faults.iter_mut().find(|f| {
            f.remaining > 0 && f.method == request.method() && request.uri().path().ends_with(&f.path_suffix)
        })?;
        fault.remaining -= 1;
        Some((fault.code, fault.reason))
    }

    /// A client for `cluster` whose requests pass through these faults.
    fn client(&self, cluster: &DevCluster) -> Client {
        let mut config = kube::Config::new(cluster.url().parse().unwrap());
        config.default_namespace = "default".into();
        config.auth_info.token = Some(cluster.admin_token().to_owned().into());
        config.root_cert = Some(vec![pem_to_der(cluster.ca_pem())]);
        let builder = kube::client::ClientBuilder::try_from(config).expect("client stack");
        builder.with_layer(&FaultLayer(self.clone())).build()
    }
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("CA PEM")
}

struct FaultLayer(Faults);

impl<S> tower::Layer<S> for FaultLayer {
    type Service = FaultService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FaultService { inner, faults: self.0.clone() }
    }
}

#[derive(Clone)]
struct FaultService<S> {
    inner: S,
    faults: Faults,
}

type ResponseBody = Box<kube::client::DynBody>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S> tower::Service<http::Request<kube::client::Body>> for FaultService<S>
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<ResponseBody>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        use futures::FutureExt;
        use http_body_util::BodyExt;
        let Some((code, reason)) = self.faults.take(&request) else {
            if request.method() != http::Method::GET {
                self.faults.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            return self.inner.call(request).boxed();
        };
        let message = format!("injected fault: {reason}");
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code,
        });
        let body = http_body_util::Full::new(bytes::Bytes::from(status.to_string()))
            .map_err(|never| -> BoxError { match never {} });
        let response = http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Box::new(body) as ResponseBody)
            .map_err(BoxError::from);
        futures::future::ready(response).boxed()
    }
}

/// A Running run on pod 1, and a controller whose API calls pass through `faults`.
async fn supersede_with_faults(faults: &Faults) -> (Harness, RunningController) {
    let h = Harness::new().await;
    let controller = RunningController::start(faults.client(&h.cluster));
    h.create_reviewer(REVIEWER).await;
    h.create_run("pr1-01", PR1, SHA_A).await;
    h.wait_running("pr1-01", 1).await;
    (h, controller)
}

async fn reviewer_event(h: &Harness, reason: &str) -> Event {
    object_event(h, REVIEWER, reason).await
}

/// Waits for an event with `reason` about the object `regarding`.
async fn object_event(h: &Harness, regarding: &str, reason: &str) -> Event {
    let events: Api<Event> = Api::default_namespaced(h.client.clone());
    support::eventually(&format!("a {reason} event about {regarding}"), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|event| {
            event.reason.as_deref() == Some(reason)
                && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding)
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_pod_delete_failure_fails_the_launched_runs() {
    let faults = Faults::default();
    let (h, _controller) = supersede_with_faults(&faults).await;
    let pod = format!("/pods/{}", Reviewer::pod_name(REVIEWER, 1));
    faults.fail(http::Method::DELETE, &pod, 403, "Forbidden", usize::MAX);

    h.create_run("pr1-02", PR1, SHA_B).await;
    h.wait_failed("pr1-01", RunReason::Superseded).await;
    let failed = h.wait_failed("pr1-02", RunReason::LaunchFailed).await;
    let message = failed.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
    assert!(message.contains("injected fault: Forbidden"), "{message}");
    let reviewer = h
        .wait_reviewer("Degraded", |r| {
            conditions::is(&status_of(r).conditions, review_operator::api::CONDITION_DEGRADED, conditions::TRUE)
        })
        .await;
    let degraded =
        conditions::find(&status_of(&reviewer).conditions, review_operator::api::CONDITION_DEGRADED).cloned().unwrap();
    assert_eq!(degraded.reason, "LaunchFailed");
    assert!(degraded.message.contains("injected fault: Forbidden"), "{}", degraded.message);
    let event = reviewer_event(&h, "LaunchFailed").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_pod_delete_failure_is_retried() {
    let faults = Faults::default();
    let (h, controller) = supersede_with_faults(&faults).await;
    let pod = format!("/pods/{}", Reviewer::pod_name(REVIEWER, 1));
    faults.fail(http::Method::DELETE, &pod, 500, "InternalError", 2);

    h.create_run("pr1-02", PR1, SHA_B).await;
    h.wait_failed("pr1-01", RunReason::Superseded).await;
    let uid = h.wait_running("pr1-02", 2).await;
    assert_eq!(h.wait_only_pod(2).await, uid);
    let reviewer = h
        .wait_reviewer("healthy again", |r| {
            conditions::is(&status_of(r).conditions, review_operator::api::CONDITION_DEGRADED, conditions::FALSE)
                && status_of(r).queue == ["pr1-02"]
        })
        .await;
    assert_eq!(status_of(&reviewer).restarts, 1, "retries are not further restarts");
    let event = reviewer_event(&h, "LaunchFailed").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(event.note.unwrap_or_default().contains("injected fault: InternalError"));
    let metrics = controller.metrics.encode();
    assert!(metrics.contains("review_operator_reconcile_errors_total{kind=\"launch\"}"), "{metrics}");
}

/// A ResourceQuota 403 (the replaced pod still counts while it terminates)
/// clears by itself: the run waits for the launch instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_403_is_retried_until_the_pod_fits() {
    use devcluster::faults::FaultTarget;
    let h = Harness::new().await;
    let message =
        "pods \"review-w1-1\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=1, limited: pods=1";
    let error = devcluster::ApiError::new(403, "Forbidden", message);
    h.cluster.server().faults.fail_next(FaultTarget::new("create", "pods"), 2, error);
    let _controller = RunningController::start(h.client.clone());
    h.create_reviewer(REVIEWER).await;
    h.create_run("pr1-01", PR1, SHA_A).await;

    let event = reviewer_event(&h, "LaunchFailed").await;
    assert!(event.note.unwrap_or_default().contains("exceeded quota"));
    h.wait_running("pr1-01", 1).await;
    h.wait_reviewer("healthy again", |r| {
        conditions::is(&status_of(r).conditions, review_operator::api::CONDITION_DEGRADED, conditions::FALSE)
    })
    .await;
}

/// A missing service account is a 403 that clears once it is created; past
/// `launchDeadline` the runs fail as LaunchFailed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_service_account_fails_runs_only_after_the_launch_deadline() {
    use devcluster::faults::FaultTarget;
    let h = Harness::new().await;
    let message = "pods \"review-w1-1\" is forbidden: error looking up service account default/review-agent: serviceaccount \"review-agent\" not found";
    let error = devcluster::ApiError::new(403, "Forbidden", message);
    h.cluster.server().faults.fail_next(FaultTarget::new("create", "pods"), u32::MAX, error);
    let _controller = RunningController::start(h.client.clone());
    h.create_reviewer(REVIEWER).await;
    let patch = json!({ "spec": { "launchDeadline": "3s" } });
    h.reviewers().patch(REVIEWER, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("deadline set");
    h.create_run("pr1-01", PR1, SHA_A).await;

    reviewer_event(&h, "LaunchFailed").await;
    let pending = h.runs().get("pr1-01").await.expect("run");
    assert_ne!(pending.phase(), RunPhase::Failed, "not failed at the first 403");
    let failed = h.wait_failed("pr1-01", RunReason::LaunchFailed).await;
    let message = failed.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("launch deadline 3s") && message.contains("error looking up service account"),
        "{message}"
    );
}

/// The Reviewer's `spec.agent.securityContext` reaches the agent container;
/// the CRD refuses what PodSecurity "restricted" forbids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_security_context_reaches_the_pod() {
    let h = Harness::new().await;
    let _controller = RunningController::start(h.client.clone());
    let reviewer = |name: &str, security: serde_json::Value| {
        json!({
            "apiVersion": format!("{GROUP}/{VERSION}"), "kind": "Reviewer",
            "metadata": {"name": name},
            "spec": {"workerId": "w1", "agent": {"image": "ghcr.io/acme/reviewer:1", "securityContext": security}},
        })
    };
    for (security, field) in [(json!({"runAsNonRoot": false}), "runAsNonRoot"), (json!({"runAsUser": 0}), "runAsUser")]
    {
        let rejected: Reviewer = serde_json::from_value(reviewer("review-root", security)).unwrap();
        let error = h.reviewers().create(&PostParams::default(), &rejected).await.expect_err("rejected");
        assert!(error.to_string().contains(field), "{error}");
    }
    let allowed: Reviewer = serde_json::from_value(reviewer(
        REVIEWER,
        json!({"runAsUser": 1000, "runAsGroup": 1000, "readOnlyRootFilesystem": true}),
    ))
    .unwrap();
    h.reviewers().create(&PostParams::default(), &allowed).await.expect("Reviewer created");
    h.create_run("pr1-01", PR1, SHA_A).await;
    h.wait_running("pr1-01", 1).await;
    let pod = h.pods().get(&Reviewer::pod_name(REVIEWER, 1)).await.expect("pod");
    let spec = pod.spec.expect("pod spec");
    let pod_security = spec.security_context.expect("pod security context");
    assert_eq!((pod_security.run_as_user, pod_security.run_as_group), (Some(65532), Some(65532)));
    let agent = spec.containers[0].security_context.clone().expect("agent security context");
    assert_eq!((agent.run_as_user, agent.run_as_group), (Some(1000), Some(1000)));
    assert_eq!(agent.read_only_root_filesystem, Some(true));
    assert_eq!((agent.run_as_non_root, agent.allow_privilege_escalation), (Some(true), Some(false)));
}

/// The API server rejects events whose note is over 1024 bytes; a launch
/// failure quotes the API's message, which has no bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_api_error_is_published_as_a_bounded_event() {
    use devcluster::faults::FaultTarget;
    let h = Harness::new().await;
    let message = format!("pods \"review-w1-1\" is forbidden: {}", "a long explanation ".repeat(200));
    let error = devcluster::ApiError::new(500, "InternalError", message);
    h.cluster.server().faults.fail_next(FaultTarget::new("create", "pods"), 1, error);
    let _controller = RunningController::start(h.client.clone());
    h.create_reviewer(REVIEWER).await;
    h.create_run("pr1-01", PR1, SHA_A).await;

    let event = reviewer_event(&h, "LaunchFailed").await;
    let note = event.note.unwrap_or_default();
    assert!(note.len() <= 1024, "{} bytes", note.len());
    assert!(note.starts_with("cannot start the reviewer pod: pods \"review-w1-1\" is forbidden"), "{note}");
    assert!(note.ends_with('…'), "{note}");
    h.wait_running("pr1-01", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_reviewer_reconciles_without_writes() {
    let faults = Faults::default();
    let (h, controller) = supersede_with_faults(&faults).await;
    h.wait_reviewer("settled", |r| status_of(r).queue == ["pr1-01"] && status_of(r).pod.is_some()).await;
    // The event is the last write of the reconcile that assigned the run.
    object_event(&h, "pr1-01", "Assigned").await;
    let reconciles = controller.metrics.reconciles.get();
    let writes = faults.writes.load(std::sync::atomic::Ordering::SeqCst);

    // A change the plan does not depend on triggers a reconcile.
    let patch = json!({ "metadata": { "annotations": { "example.com/touched": "yes" } } });
    h.reviewers().patch(REVIEWER, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    support::eventually("a reconcile after the change", || async {
        (controller.metrics.reconciles.get() > reconciles).then_some(())
    })
    .await;
    assert_eq!(faults.writes.load(std::sync::atomic::Ordering::SeqCst), writes, "no API write when nothing changed");
}

/// The runtime starts reconciling once the Reviewer store has listed; the
/// run store may still be listing, and its first page's events arrive
/// before the store shows any of it. A reconcile planned then would see a
/// Reviewer without runs, and nothing would trigger it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_listed_after_their_reviewer_are_all_assigned() {
    use devcluster::faults::FaultTarget;
    use futures::StreamExt;

    let h = Harness::new().await;
    h.create_reviewer("review-a").await;
    h.create_reviewer("review-b").await;
    // The watcher lists 500 runs a page: review-a's runs fill the first page.
    let names: Vec<(String, &str)> =
        (0..500).map(|i| (format!("a-{i:03}"), "review-a")).chain([("b-000".to_owned(), "review-b")]).collect();
    let h = &h;
    futures::stream::iter(&names)
        .map(|(name, reviewer)| async move {
            let pr = format!("https://github.com/acme/widgets/pull/{name}");
            h.create_run_with(name, reviewer, &pr, SHA_A, "1h").await
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    // The controller's check that the API is served, then both pages, are
    // slow: the second page arrives long after the debounce that follows the
    // first. (The test itself lists nothing until the end, not to take a delay.)
    let slow = Duration::from_millis(1500);
    h.cluster.server().faults.delay_next(FaultTarget::new("list", "reviewruns"), 3, slow);
    let _controller = RunningController::start(h.client.clone());

    let reviewers = h.reviewers();
    support::eventually("every run in a queue", || {
        let reviewers = reviewers.clone();
        async move {
            let a = reviewers.get("review-a").await.ok()?;
            let b = reviewers.get("review-b").await.ok()?;
            (status_of(&a).queue.len() == 500 && status_of(&b).queue == ["b-000"]).then_some(())
        }
    })
    .await;
    let runs = h.runs().list(&ListParams::default()).await.expect("runs listed");
    assert_eq!(runs.items.len(), names.len());
    assert!(runs.items.iter().all(|run| run.phase() == RunPhase::Running));
}

// ----- which commit is newer -----

/// A random 40-character SHA whose first hex digit is `first`.
fn random_sha(first: char) -> String {
    use rand::Rng;
    let rest: u128 = rand::rng().random();
    format!("{first}{rest:032x}{:07x}", rand::rng().random_range(0..0x1000_0000u32))
}

/// Two SHAs where the second, the newer push, sorts first.
fn shas_newer_sorting_first() -> (String, String) {
    (random_sha('e'), random_sha('1'))
}

fn created_second(run: &ReviewRun) -> i64 {
    run.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or_default()
}

impl Harness {
    /// Creates a run pushed onto `previous`.
    async fn push(&self, name: &str, pr: &str, sha: &str, previous: Option<&str>) -> ReviewRun {
        let run = ReviewRun::new(
            name,
            ReviewRunSpec {
                reviewer: REVIEWER.into(),
                pull_request: PullRequest {
                    url: pr.into(),
                    number: None,
                    head_sha: sha.into(),
                    previous_head_sha: previous.map(str::to_owned),
                    repository: None,
                    clone_url: None,
                },
                cancel_requested: false,
                timeout: "1h".into(),
                ttl_seconds_after_finished: None,
            },
        );
        self.runs().create(&PostParams::default(), &run).await.expect("ReviewRun created")
    }

    /// Runs `kubectl-review` with the cluster's kubeconfig.
    async fn plugin(&self, args: &[&str]) -> String {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-review"));
        command.args(args).env("KUBECONFIG", self.cluster.kubeconfig_path()).env_remove("POD_UID");
        support::run_command(command, None).await.ok()
    }

    /// `kubectl review trigger`; returns the created run's name.
    async fn trigger(&self, pr: &str, sha: &str, extra: &[&str]) -> String {
        let mut args = vec!["trigger", "--reviewer", REVIEWER, "--pr", pr, "--sha", sha];
        args.extend_from_slice(extra);
        let out = self.plugin(&args).await;
        out.trim()
            .strip_prefix("reviewrun.review.ao.dev/")
            .and_then(|rest| rest.strip_suffix(" created"))
            .unwrap_or_else(|| panic!("trigger output: {out}"))
            .to_owned()
    }

    /// Waits until `newer` is Running and `older` failed as Superseded by it.
    async fn wait_newer_wins(&self, older: &str, newer: &str) {
        self.wait_run(newer, "Running", |run| run.phase() == RunPhase::Running).await;
        let older = self.wait_failed(older, RunReason::Superseded).await;
        assert_eq!(superseded_by(&older), Some(newer));
    }
}

/// Same-second pushes through the API, the newer SHA and the newer run's
/// name sorting first: the run created later wins every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_second_creations_through_the_api_are_ordered_by_the_api_server() {
    let (h, _controller) = Harness::with_controller().await;
    let mut same_second = 0;
    for attempt in 0..60 {
        let pr = format!("https://github.com/acme/widgets/pull/{}", 100 + attempt);
        let (old_sha, new_sha) = shas_newer_sorting_first();
        let (old_name, new_name) = (format!("z-old-{attempt}"), format!("a-new-{attempt}"));
        let old = h.create_run(&old_name, &pr, &old_sha).await;
        let new = h.create_run(&new_name, &pr, &new_sha).await;
        h.wait_newer_wins(&old_name, &new_name).await;
        if created_second(&old) == created_second(&new) {
            same_second += 1;
            if same_second == 20 {
                return;
            }
        }
    }
    panic!("only {same_second} of 60 attempts created both runs in one second");
}

/// The same through `kubectl review trigger`, which also fills in the lineage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_second_triggers_through_the_plugin_are_ordered_by_push() {
    let (h, _controller) = Harness::with_controller().await;
    let mut same_second = 0;
    for attempt in 0..60 {
        let pr = format!("https://github.com/acme/widgets/pull/{}", 100 + attempt);
        let (old_sha, new_sha) = shas_newer_sorting_first();
        let old_name = h.trigger(&pr, &old_sha, &[]).await;
        let new_name = h.trigger(&pr, &new_sha, &[]).await;
        assert!(new_name < old_name, "the newer run's name sorts first");
        let new = h.runs().get(&new_name).await.unwrap();
        assert_eq!(new.spec.pull_request.previous_head_sha.as_deref(), Some(old_sha.as_str()), "lineage filled in");
        h.wait_newer_wins(&old_name, &new_name).await;
        let old = h.runs().get(&old_name).await.unwrap();
        if created_second(&old) == created_second(&new) {
            same_second += 1;
            if same_second == 20 {
                let report = h.plugin(&["status", REVIEWER]).await;
                assert!(report.contains(&format!("  {pr}   {}   {new_name}", &new_sha[..7])), "{report}");
                return;
            }
        }
    }
    panic!("only {same_second} of 60 attempts created both runs in one second");
}

/// A controller started after both runs exist, and one restarted between
/// them, decide as one that saw them come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_controller_decides_the_same() {
    let h = Harness::new().await;
    h.create_reviewer(REVIEWER).await;
    // Pairs until one shares its second (most do at once), all before any controller runs.
    let mut pairs = Vec::new();
    for attempt in 0..10 {
        let pr = format!("https://github.com/acme/widgets/pull/{}", 100 + attempt);
        let (old_sha, new_sha) = shas_newer_sorting_first();
        let old = h.create_run(&format!("z-old-{attempt}"), &pr, &old_sha).await;
        let new = h.create_run(&format!("a-new-{attempt}"), &pr, &new_sha).await;
        let same_second = created_second(&old) == created_second(&new);
        pairs.push((old, new));
        if same_second {
            break;
        }
    }
    let (_, last) = pairs.last().unwrap();
    assert_eq!(created_second(&pairs.last().unwrap().0), created_second(last), "a same-second pair");
    let controller = RunningController::start(h.client.clone());
    for (old, new) in &pairs {
        h.wait_newer_wins(&old.name_any(), &new.name_any()).await;
        let recorded = h.runs().get(&new.name_any()).await.unwrap().status.and_then(|s| s.creation_revision);
        assert_eq!(recorded, new.resource_version(), "the creation's resourceVersion is recorded");
    }
    controller.stop().await;

    // Restarted between two pushes of another pull request.
    let (old_sha, new_sha) = shas_newer_sorting_first();
    let controller = RunningController::start(h.client.clone());
    h.create_run("z-old-2", PR2, &old_sha).await;
    h.wait_running("z-old-2", 1).await;
    controller.stop().await;
    h.create_run("a-new-2", PR2, &new_sha).await;
    let controller = RunningController::start(h.client.clone());
    h.wait_newer_wins("z-old-2", "a-new-2").await;
    controller.stop().await;

    // A third controller changes nothing.
    let _controller = RunningController::start(h.client.clone());
    let before = h.runs().list(&ListParams::default()).await.unwrap();
    h.create_run("marker", PR3, SHA_Z).await;
    h.wait_run("marker", "Running", |run| run.phase() == RunPhase::Running).await;
    for run in before.items {
        let now = h.runs().get(&run.name_any()).await.unwrap();
        assert_eq!((now.phase(), now.status.and_then(|s| s.reason)), (run.phase(), run.status.and_then(|s| s.reason)));
    }
}

/// Lineage decides over creation order: a replayed push, and a push whose
/// webhook arrived after the next one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_overrides_creation_order() {
    let (h, _controller) = Harness::with_controller().await;
    let (a, b, c) = (random_sha('a'), random_sha('b'), random_sha('c'));
    h.push("pr1-a", PR1, &a, None).await;
    h.push("pr1-b", PR1, &b, Some(&a)).await;
    h.push("pr1-c", PR1, &c, Some(&b)).await;
    h.wait_run("pr1-c", "Running", |run| run.phase() == RunPhase::Running).await;
    // A bot replays the push of B onto A after C was pushed.
    h.push("pr1-b-replay", PR1, &b, Some(&a)).await;
    let replay = h.wait_failed("pr1-b-replay", RunReason::Superseded).await;
    assert_eq!(superseded_by(&replay), Some("pr1-c"));

    // The push of Y onto X is created after the push of Z onto Y.
    let (x, y, z) = (random_sha('d'), random_sha('e'), random_sha('f'));
    h.push("pr2-x", PR2, &x, None).await;
    h.wait_run("pr2-x", "Running", |run| run.phase() == RunPhase::Running).await;
    h.push("pr2-z", PR2, &z, Some(&y)).await;
    h.push("pr2-y", PR2, &y, Some(&x)).await;
    h.wait_failed("pr2-y", RunReason::Superseded).await;
    h.wait_failed("pr2-x", RunReason::Superseded).await;
    let head = h.wait_run("pr2-z", "Running", |run| run.phase() == RunPhase::Running).await;
    assert!(conditions::is(&head.status.unwrap().conditions, CONDITION_CURRENT, conditions::TRUE));
}

/// A, then B onto A, then A onto B: A is reviewed again by a run of its
/// own, B is superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_push_back_reviews_the_earlier_commit_again() {
    let (h, _controller) = Harness::with_controller().await;
    let (a, b) = (random_sha('a'), random_sha('b'));
    let first = h.trigger(PR1, &a, &[]).await;
    h.wait_running(&first, 1).await;
    let second = h.trigger(PR1, &b, &[]).await;
    h.wait_newer_wins(&first, &second).await;
    // Without lineage, A is a replay and stays late.
    let replay = h.push("replay-a", PR1, &a, None).await;
    h.wait_failed(&replay.name_any(), RunReason::Superseded).await;
    // With lineage, it is a force-push back.
    let back = h.trigger(PR1, &a, &["--previous-sha", &b]).await;
    assert_eq!(back, format!("{first}-p{}", &b[..7]), "a run of its own");
    h.wait_newer_wins(&second, &back).await;
    let earlier = h.runs().get(&first).await.unwrap();
    assert_eq!(earlier.status.and_then(|s| s.reason), Some(RunReason::Superseded), "the earlier review stays outdated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_and_the_recorded_revision_are_checked_by_the_api_server() {
    let h = Harness::new().await;
    let run = ReviewRun::new(
        "self",
        ReviewRunSpec {
            reviewer: REVIEWER.into(),
            pull_request: PullRequest {
                url: PR1.into(),
                number: None,
                head_sha: SHA_A.into(),
                previous_head_sha: Some(SHA_A.into()),
                repository: None,
                clone_url: None,
            },
            cancel_requested: false,
            timeout: "1h".into(),
            ttl_seconds_after_finished: None,
        },
    );
    let err = h.runs().create(&PostParams::default(), &run).await.unwrap_err();
    assert!(err.to_string().contains("spec.pullRequest.previousHeadSha: Invalid value"), "{err}");
    assert!(err.to_string().contains("must differ from spec.pullRequest.headSha"), "{err}");

    h.create_run("r1", PR1, SHA_A).await;
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
    let record = json!({"status": {"phase": "Pending", "creationRevision": "7"}});
    h.runs().patch_status("r1", &params, &Patch::Merge(&record)).await.expect("first record accepted");
    let rewrite = json!({"status": {"creationRevision": "8"}});
    let err = h.runs().patch_status("r1", &params, &Patch::Merge(&rewrite)).await.unwrap_err();
    assert!(err.to_string().contains("status.creationRevision is final once set"), "{err}");
    let remove = json!({"status": {"creationRevision": null}});
    let err = h.runs().patch_status("r1", &params, &Patch::Merge(&remove)).await.unwrap_err();
    assert!(err.to_string().contains("status.creationRevision is final once set"), "{err}");
}

/// A Reviewer whose finished runs go one second after they finish: the superseded run is
/// deleted, the run that made the head stays with the superseded commit recorded, and a replay
/// of the deleted run's push is still late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_past_their_ttl_are_deleted_and_their_pushes_still_count() {
    let h = Harness::new().await;
    let controller = RunningController::start(h.client.clone());
    let mut reviewer = Reviewer::new(
        REVIEWER,
        review_operator::api::ReviewerSpec::new("w1", review_operator::api::AgentSpec::new("ghcr.io/acme/reviewer:1")),
    );
    reviewer.spec.run_ttl_seconds_after_finished = Some(1);
    h.reviewers().create(&PostParams::default(), &reviewer).await.expect("Reviewer created");

    h.create_run("pr1-01", PR1, SHA_A).await;
    h.wait_running("pr1-01", 1).await;
    let mut push = PullRequest::new(PR1, SHA_B);
    push.previous_head_sha = Some(SHA_A.into());
    let spec = ReviewRunSpec {
        reviewer: REVIEWER.into(),
        pull_request: push,
        cancel_requested: false,
        timeout: "1h".into(),
        ttl_seconds_after_finished: None,
    };
    h.runs().create(&PostParams::default(), &ReviewRun::new("pr1-02", spec)).await.expect("run created");
    h.wait_failed("pr1-01", RunReason::Superseded).await;
    h.wait_running("pr1-02", 2).await;
    h.submit("pr1-02", "Approved").await.expect("verdict accepted");

    let gone = |name: &'static str| {
        let runs = h.runs();
        async move { matches!(runs.get_opt(name).await, Ok(None)).then_some(()) }
    };
    support::eventually("the superseded run to be deleted after its TTL", || gone("pr1-01")).await;
    let head = h.runs().get("pr1-02").await.expect("the run that made the head stays");
    assert_eq!(head.phase(), RunPhase::Succeeded);
    assert_eq!(head.status.as_ref().unwrap().replaced_shas, [SHA_A]);

    // A replayed webhook for the deleted run's commit.
    h.create_run("pr1-03", PR1, SHA_A).await;
    let late = h.wait_failed("pr1-03", RunReason::Superseded).await;
    assert_eq!(superseded_by(&late), Some("pr1-02"));
    support::eventually("the late run to be deleted after its TTL", || gone("pr1-03")).await;
    let head = h.runs().get("pr1-02").await.expect("still kept");
    assert_eq!(head.status.as_ref().unwrap().replaced_shas, [SHA_A]);
    let status = status_of(&h.reviewers().get(REVIEWER).await.unwrap());
    assert_eq!(status.restarts, 1, "deleting finished runs restarts nothing");
    assert_eq!(controller.metrics.runs_expired.get(), 2);
}

/// An event repeated within the series window is one Event whose `series` counts the repeats, as
/// client-go and kube publish them; the API server takes the merge patch that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_event_is_one_event_with_a_series() {
    use kube::runtime::events::{Event as Said, EventType, Reporter};
    use review_operator::controller::events::Publisher;

    let h = Harness::new().await;
    let reviewer = h.create_reviewer(REVIEWER).await;
    let publisher = Publisher::new(h.client.clone(), Reporter::from("review-operator"));
    let said = Said {
        type_: EventType::Warning,
        reason: "PodNotStarting".into(),
        note: Some("image cannot be pulled".into()),
        action: "Launch".into(),
        secondary: None,
    };
    let reference = kube::Resource::object_ref(&reviewer, &());
    publisher.publish(&said, &reference).await.expect("first event created");
    publisher.publish(&said, &reference).await.expect("repeat patched");
    publisher.publish(&said, &reference).await.expect("repeat patched");
    let events: Api<Event> = Api::default_namespaced(h.client.clone());
    let listed = events.list(&ListParams::default()).await.expect("events listed");
    let ours: Vec<&Event> = listed.items.iter().filter(|e| e.reason.as_deref() == Some("PodNotStarting")).collect();
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert_eq!(ours[0].series.as_ref().map(|series| series.count), Some(3));
    assert_eq!(ours[0].regarding.as_ref().and_then(|r| r.name.as_deref()), Some(REVIEWER));
}
