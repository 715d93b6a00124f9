//! The controller and a dev cluster for tests that drive them together:
//! an in-process controller, a cluster with the CRDs, and waits on runs,
//! Reviewers and pods.
//!
//! The cluster runs no pods; a stand-in kubelet reports every new pod
//! Running and Ready, as a pod whose agent started. Tests play the reviewer
//! pod by patching run statuses, and the outside world by deleting pods.
#![allow(dead_code, unused_imports)]

use crate::support;
use std::sync::Arc;
use std::time::Duration;

use devcluster::DevCluster;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use review_operator::api::{
    AgentSpec, CONDITION_CURRENT, CONDITION_SUCCEEDED, GROUP, PullRequest, RestartReason, ReviewRun, ReviewRunSpec,
    Reviewer, ReviewerSpec, RunPhase, RunReason, VERSION, conditions,
};
use review_operator::controller::plan::{ObservedPod, ObservedReviewer, plan_reviewer};
use review_operator::controller::{AgentLaunch, ControllerSettings};
use review_operator::metrics::Metrics;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const REVIEWER: &str = "review-w1";
pub const FIELD_MANAGER: &str = "review-operator";
pub const PR1: &str = "https://github.com/acme/widgets/pull/1";
pub const PR2: &str = "https://github.com/acme/widgets/pull/2";
pub const PR3: &str = "https://github.com/acme/widgets/pull/3";
pub const SHA_A: &str = "aaaaaaa1111111";
pub const SHA_B: &str = "bbbbbbb2222222";
pub const SHA_X: &str = "eeeeeee4444444";
pub const SHA_Y: &str = "fffffff5555555";
pub const SHA_Z: &str = "ddddddd6666666";

/// A controller running in-process against a cluster.
pub struct RunningController {
    pub stop: oneshot::Sender<()>,
    pub task: JoinHandle<Result<(), review_operator::controller::ControllerError>>,
    pub metrics: Arc<Metrics>,
}

impl RunningController {
    pub fn start(client: Client) -> Self {
        Self::start_with(client, None)
    }

    /// A controller that also delivers verdicts to GitHub as `delivery` says.
    pub fn start_with(client: Client, delivery: Option<review_operator::delivery::DeliverySettings>) -> Self {
        let settings = ControllerSettings {
            field_manager: FIELD_MANAGER.into(),
            debounce: Duration::from_millis(300),
            concurrency: review_operator::controller::RECOMMENDED_CONCURRENCY,
            agent: AgentLaunch::LocalBinary { path: "/bin/true".into() },
            delivery,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let metrics = Arc::new(Metrics::default());
        let task = tokio::spawn(review_operator::controller::run(client, settings, metrics.clone(), shutdown));
        Self { stop, task, metrics }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("controller task").expect("controller ends cleanly");
    }
}

pub struct Harness {
    pub cluster: DevCluster,
    pub client: Client,
    kubelet: Option<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(kubelet) = &self.kubelet {
            kubelet.abort();
        }
    }
}

/// Reports every pod that is not being deleted Running and Ready, with its
/// agent container running, as the kubelet does once a pod has started.
fn stand_in_kubelet(client: Client) -> JoinHandle<()> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(client.clone());
        let mut events = watcher(pods, watcher::Config::default()).default_backoff().applied_objects().boxed();
        while let Some(event) = events.next().await {
            let Ok(pod) = event else { continue };
            let _ = report_running(&client, &pod).await;
        }
    })
}

/// Reports `pod` Running and Ready, with its agent container running, as
/// the kubelet does once a pod has started; nothing for a pod already
/// Running or being deleted.
pub async fn report_running(client: &Client, pod: &Pod) -> Result<(), kube::Error> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase == Some("Running") || pod.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let now = Timestamp::now().to_string();
    let status = json!({ "status": {
        "phase": "Running",
        "startTime": now,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        "containerStatuses": [{
            "name": "agent", "image": "agent", "imageID": "", "ready": true, "started": true,
            "restartCount": 0, "state": {"running": {"startedAt": now}},
        }],
    }});
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await.map(drop)
}

impl Harness {
    /// A fresh cluster with the CRDs installed, and no controller.
    pub async fn new() -> Self {
        let mut harness = Self::without_kubelet().await;
        harness.kubelet = Some(stand_in_kubelet(harness.client.clone()));
        harness
    }

    /// [`Self::new`] without the stand-in kubelet: pods stay Pending until
    /// the test reports them running ([`report_running`]).
    pub async fn without_kubelet() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let cluster = support::cluster_without_pods().await;
        let client = cluster.client().expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for file in ["reviewer.yaml", "reviewrun.yaml"] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/").to_owned() + file;
            let text = std::fs::read_to_string(&path).expect("CRD file");
            let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("CRD parses");
            crds.create(&PostParams::default(), &crd).await.expect("CRD created");
        }
        let reviewers = Api::<Reviewer>::default_namespaced(client.clone());
        support::eventually("the Reviewer API is served", || {
            let reviewers = reviewers.clone();
            async move { reviewers.list(&ListParams::default()).await.ok() }
        })
        .await;
        Self { cluster, client, kubelet: None }
    }

    /// A fresh cluster, a running controller and the Reviewer `review-w1`.
    pub async fn with_controller() -> (Self, RunningController) {
        let harness = Self::new().await;
        let controller = RunningController::start(harness.client.clone());
        harness.create_reviewer(REVIEWER).await;
        (harness, controller)
    }

    pub fn runs(&self) -> Api<ReviewRun> {
        Api::default_namespaced(self.client.clone())
    }

    pub fn reviewers(&self) -> Api<Reviewer> {
        Api::default_namespaced(self.client.clone())
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::default_namespaced(self.client.clone())
    }

    pub async fn create_reviewer(&self, name: &str) -> Reviewer {
        let reviewer = Reviewer::new(
            name,
            ReviewerSpec::new(
                "w1",
                AgentSpec { harness: Some("claude-code".into()), ..AgentSpec::new("ghcr.io/acme/reviewer:1") },
            ),
        );
        self.reviewers().create(&PostParams::default(), &reviewer).await.expect("Reviewer created")
    }

    pub async fn create_run_with(&self, name: &str, reviewer: &str, pr: &str, sha: &str, timeout: &str) -> ReviewRun {
        let run = ReviewRun::new(
            name,
            ReviewRunSpec {
                reviewer: reviewer.into(),
                pull_request: PullRequest::new(pr, sha),
                cancel_requested: false,
                timeout: timeout.into(),
                ttl_seconds_after_finished: None,
            },
        );
        self.runs().create(&PostParams::default(), &run).await.expect("ReviewRun created")
    }

    pub async fn create_run(&self, name: &str, pr: &str, sha: &str) -> ReviewRun {
        self.create_run_with(name, REVIEWER, pr, sha, "1h").await
    }

    /// Waits until `check` holds for the run, and returns it.
    pub async fn wait_run(&self, name: &str, what: &str, check: impl Fn(&ReviewRun) -> bool) -> ReviewRun {
        let api = self.runs();
        let check = &check;
        support::eventually(&format!("run {name}: {what}"), || {
            let api = api.clone();
            async move { api.get(name).await.ok().filter(|run| check(run)) }
        })
        .await
    }

    /// Waits until the run is Running, and returns its pod UID.
    pub async fn wait_running(&self, name: &str, incarnation: i64) -> String {
        let run = self
            .wait_run(name, &format!("Running on incarnation {incarnation}"), |run| {
                run.phase() == RunPhase::Running && assignment(run).is_some_and(|(_, inc)| inc == incarnation)
            })
            .await;
        assignment(&run).map(|(uid, _)| uid).unwrap_or_default()
    }

    pub async fn wait_failed(&self, name: &str, reason: RunReason) -> ReviewRun {
        self.wait_run(name, &format!("Failed as {reason:?}"), |run| {
            run.phase() == RunPhase::Failed && run.status.as_ref().and_then(|s| s.reason) == Some(reason)
        })
        .await
    }

    pub async fn wait_reviewer(&self, what: &str, check: impl Fn(&Reviewer) -> bool) -> Reviewer {
        let api = self.reviewers();
        let check = &check;
        support::eventually(&format!("Reviewer: {what}"), || {
            let api = api.clone();
            async move { api.get(REVIEWER).await.ok().filter(|r| check(r)) }
        })
        .await
    }

    pub async fn pod_uids(&self) -> Vec<(String, String)> {
        let pods = self.pods().list(&ListParams::default()).await.expect("pods listed");
        pods.items.iter().map(|pod| (pod.name_any(), pod.uid().unwrap_or_default())).collect()
    }

    /// Waits until the only pod is `<reviewer>-<incarnation>`, and returns its UID.
    pub async fn wait_only_pod(&self, incarnation: i64) -> String {
        let name = Reviewer::pod_name(REVIEWER, incarnation);
        support::eventually(&format!("{name} is the only pod"), || async {
            match self.pod_uids().await.as_slice() {
                [(only, uid)] if *only == name => Some(uid.clone()),
                _ => None,
            }
        })
        .await
    }

    /// Submits a verdict as the reviewer pod does.
    pub async fn submit(&self, run: &str, verdict: &str) -> Result<ReviewRun, kube::Error> {
        let patch = json!({ "status": {
            "phase": "Succeeded",
            "reason": "Submitted",
            "result": { "verdict": verdict, "body": "Looks good", "submittedAt": Timestamp::now().to_string() },
        }});
        let params = PatchParams { field_manager: Some("reviewer-agent".into()), ..PatchParams::default() };
        self.runs().patch_status(run, &params, &Patch::Merge(&patch)).await
    }
}

pub fn assignment(run: &ReviewRun) -> Option<(String, i64)> {
    let assignment = run.status.as_ref()?.assignment.as_ref()?;
    Some((assignment.pod_uid.clone(), assignment.incarnation))
}

pub fn status_of(reviewer: &Reviewer) -> review_operator::api::ReviewerStatus {
    reviewer.status.clone().unwrap_or_default()
}

pub fn superseded_by(run: &ReviewRun) -> Option<&str> {
    run.status.as_ref()?.superseded_by.as_deref()
}
