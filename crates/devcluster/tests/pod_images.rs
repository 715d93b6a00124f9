//! The runner's image checks, made before a container starts as a real kubelet makes them:
//! `runAsNonRoot` against the image catalog's users, and images that can never be pulled.

mod support;

use devcluster::runner::RunnerSettings;
use devcluster::runner::backoff::Backoff;
use devcluster::runner::images::ImageCatalog;
use devcluster::{Config, DevCluster};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{phase, pod_when, pods};

const NAMED_USER_IMAGE: &str = "gcr.io/distroless/static:nonroot";

async fn cluster() -> DevCluster {
    let runner = RunnerSettings {
        backoff: Backoff { base: Duration::from_millis(100), cap: Duration::from_millis(400) },
        images: ImageCatalog::default().with("gcr.io/distroless/static", "nonroot:nonroot"),
        ..RunnerSettings::default()
    };
    DevCluster::start(Config { runner, ..Config::default() }).await.expect("dev cluster starts")
}

async fn create(cluster: &DevCluster, pod: Value) -> Pod {
    let pod: Pod = serde_json::from_value(pod).unwrap();
    pods(cluster).create(&PostParams::default(), &pod).await.unwrap()
}

/// A pod sleeping in one container, with the given pod and container security contexts.
fn sleeper(name: &str, image: &str, pod_security: Value, container_security: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "securityContext": pod_security,
            "containers": [{"name": "main", "image": image, "command": ["sh", "-c", "sleep 3600"],
                "securityContext": container_security}],
        }
    })
}

fn waiting(status: &Value) -> (&str, &str) {
    let w = &status["state"]["waiting"];
    (w["reason"].as_str().unwrap_or(""), w["message"].as_str().unwrap_or(""))
}

/// The pod once its first container waits with `reason`.
async fn waiting_with(cluster: &DevCluster, name: &str, reason: &str) -> Value {
    pod_when(cluster, name, reason, |p| waiting(&p["status"]["containerStatuses"][0]).0 == reason).await
}

fn uid(pod: &Value) -> &str {
    pod["metadata"]["uid"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_image_under_run_as_non_root_stays_pending_with_a_config_error() {
    let cluster = cluster().await;
    create(&cluster, sleeper("strict", "busybox:1.36", json!({"runAsNonRoot": true}), json!({}))).await;
    let pod = waiting_with(&cluster, "strict", "CreateContainerConfigError").await;
    assert_eq!(phase(&pod), "Pending");
    let expected = format!(
        "container has runAsNonRoot and image will run as root (pod: \"strict_default({})\", container: main)",
        uid(&pod)
    );
    assert_eq!(waiting(&pod["status"]["containerStatuses"][0]).1, expected);
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_level_run_as_user_lets_a_root_image_run() {
    let cluster = cluster().await;
    let security = json!({"runAsNonRoot": true, "runAsUser": 65532});
    create(&cluster, sleeper("with-user", "docker.io/library/busybox:1.36", security, json!({}))).await;
    let pod = pod_when(&cluster, "with-user", "Running", |p| phase(p) == "Running").await;
    assert!(pod["status"]["containerStatuses"][0]["state"]["running"].is_object(), "{pod}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_with_a_named_user_cannot_be_verified_as_non_root() {
    let cluster = cluster().await;
    create(&cluster, sleeper("named", NAMED_USER_IMAGE, json!({"runAsNonRoot": true}), json!({}))).await;
    let pod = waiting_with(&cluster, "named", "CreateContainerConfigError").await;
    assert_eq!(phase(&pod), "Pending");
    let expected = format!(
        "container has runAsNonRoot and image has non-numeric user (nonroot), cannot verify user is non-root (pod: \"named_default({})\", container: main)",
        uid(&pod)
    );
    assert_eq!(waiting(&pod["status"]["containerStatuses"][0]).1, expected);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_run_as_user_zero_breaks_the_non_root_policy() {
    let cluster = cluster().await;
    // The image itself would be fine: the container's own uid decides.
    let pod_security = json!({"runAsNonRoot": true, "runAsUser": 1000});
    create(&cluster, sleeper("as-root", "acme/unknown:1", pod_security, json!({"runAsUser": 0}))).await;
    let pod = waiting_with(&cluster, "as-root", "CreateContainerConfigError").await;
    assert_eq!(phase(&pod), "Pending");
    let expected = format!(
        "container's runAsUser breaks non-root policy (pod: \"as-root_default({})\", container: main)",
        uid(&pod)
    );
    assert_eq!(waiting(&pod["status"]["containerStatuses"][0]).1, expected);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_can_lift_the_pods_run_as_non_root() {
    let cluster = cluster().await;
    let pod = sleeper("relaxed", "alpine:3.20", json!({"runAsNonRoot": true}), json!({"runAsNonRoot": false}));
    create(&cluster, pod).await;
    pod_when(&cluster, "relaxed", "Running", |p| phase(p) == "Running").await;
    // An image the catalog does not know has an unknown user and is allowed too.
    create(&cluster, sleeper("unknown", "acme/agent:1", json!({"runAsNonRoot": true}), json!({}))).await;
    pod_when(&cluster, "unknown", "Running", |p| phase(p) == "Running").await;
    cluster.shutdown().await.unwrap();
}

/// The waiting reasons of the first of the pod's `list` statuses (`containerStatuses` or
/// `initContainerStatuses`) in the order a watch shows them, until `ImagePullBackOff` has been
/// seen `times` times.
async fn watch_reasons(cluster: &DevCluster, created: &Pod, list: &str, times: usize) -> Vec<String> {
    let api = pods(cluster);
    let name = created.metadata.name.clone().unwrap();
    let version = created.metadata.resource_version.clone().unwrap();
    let params = WatchParams::default().fields(&format!("metadata.name={name}")).timeout(60);
    let mut stream = api.watch(&params, &version).await.unwrap().boxed();
    let mut seen: Vec<String> = Vec::new();
    let watching = async {
        while let Some(event) = stream.next().await {
            let pod = match event.unwrap() {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => pod,
                _ => continue,
            };
            let pod = serde_json::to_value(pod).unwrap();
            let reason = waiting(&pod["status"][list][0]).0.to_string();
            if !reason.is_empty() && seen.last() != Some(&reason) {
                seen.push(reason);
            }
            if seen.iter().filter(|r| *r == "ImagePullBackOff").count() >= times {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), watching).await.unwrap_or_else(|_| panic!("watch saw {seen:?}"));
    seen
}

/// Deletes the pod with its default grace period and waits until the object is gone.
async fn delete_and_wait(cluster: &DevCluster, name: &str) -> Duration {
    let api = pods(cluster);
    let started = Instant::now();
    api.delete(name, &DeleteParams::default()).await.unwrap();
    support::eventually("the pod is removed", || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpullable_image_waits_in_err_image_pull_then_image_pull_back_off() {
    let cluster = cluster().await;
    let image = "registry.invalid/acme/agent:1";
    let created = create(&cluster, sleeper("unpullable", image, json!({}), json!({}))).await;
    let reasons = watch_reasons(&cluster, &created, "containerStatuses", 2).await;
    let pulls: Vec<&str> = reasons.iter().map(String::as_str).filter(|r| *r != "ContainerCreating").collect();
    assert_eq!(pulls, ["ErrImagePull", "ImagePullBackOff", "ErrImagePull", "ImagePullBackOff"], "{reasons:?}");

    let pod = waiting_with(&cluster, "unpullable", "ImagePullBackOff").await;
    assert_eq!(phase(&pod), "Pending");
    assert_eq!(pod["spec"]["nodeName"], "devcluster");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(
        waiting(status).1,
        "Back-off pulling image \"registry.invalid/acme/agent:1\": ErrImagePull: failed to pull and unpack image \"registry.invalid/acme/agent:1\": dial tcp: lookup registry.invalid: no such host"
    );
    assert_eq!((status["ready"].as_bool(), status["restartCount"].as_i64()), (Some(false), Some(0)));
    let pod = waiting_with(&cluster, "unpullable", "ErrImagePull").await;
    assert_eq!(
        waiting(&pod["status"]["containerStatuses"][0]).1,
        "failed to pull and unpack image \"registry.invalid/acme/agent:1\": dial tcp: lookup registry.invalid: no such host"
    );
    assert_eq!(phase(&pod), "Pending");

    // Nothing runs, so the default 30s grace period is not waited for.
    let took = delete_and_wait(&cluster, "unpullable").await;
    assert!(took < Duration::from_secs(15), "deletion took {took:?}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpullable_init_container_keeps_the_pod_initializing() {
    let cluster = cluster().await;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "init-unpullable"},
        "spec": {
            "initContainers": [{"name": "fetch", "image": "mirror.invalid:5000/tools/fetch@sha256:0123", "command": ["true"]}],
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo started; sleep 3600"]}],
        }
    });
    let created = create(&cluster, pod).await;
    let reasons = watch_reasons(&cluster, &created, "initContainerStatuses", 2).await;
    assert_eq!(reasons, ["PodInitializing", "ErrImagePull", "ImagePullBackOff", "ErrImagePull", "ImagePullBackOff"]);
    let pod = pod_when(&cluster, "init-unpullable", "init ImagePullBackOff", |p| {
        waiting(&p["status"]["initContainerStatuses"][0]).0 == "ImagePullBackOff"
    })
    .await;
    assert_eq!(phase(&pod), "Pending");
    let (_, message) = waiting(&pod["status"]["initContainerStatuses"][0]);
    assert!(message.ends_with("dial tcp: lookup mirror.invalid: no such host"), "{message}");
    assert_eq!(waiting(&pod["status"]["containerStatuses"][0]).0, "PodInitializing");
    let logs = support::kubectl(&cluster, &["logs", "init-unpullable", "-c", "main"]).await;
    assert!(!logs.stdout.contains("started"), "the main container never starts: {logs:?}");

    let took = delete_and_wait(&cluster, "init-unpullable").await;
    assert!(took < Duration::from_secs(15), "deletion took {took:?}");
    cluster.shutdown().await.unwrap();
}
