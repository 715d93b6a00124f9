//! ResourceQuota pod counts: admission refuses the pod over the limit as kube-apiserver's quota
//! plugin does, counting pods as the real quota counts them, and the quota's status follows.

mod support;

use devcluster::DevCluster;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use support::pods;

fn quotas(cluster: &DevCluster) -> Api<ResourceQuota> {
    Api::default_namespaced(cluster.client().unwrap())
}

async fn create_quota(cluster: &DevCluster, name: &str, hard: Value) {
    let quota = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"hard": hard}})).unwrap();
    quotas(cluster).create(&PostParams::default(), &quota).await.unwrap();
}

fn pod(name: &str, script: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 3,
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
        }
    }))
    .unwrap()
}

/// A pod that ignores SIGTERM, so that its deletion lasts the whole grace period.
const STUBBORN: &str = "trap '' TERM; while true; do sleep 1; done";

#[track_caller]
fn refused(result: Result<Pod, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected the pod to be refused, got {other:?}"),
    }
}

/// The quota's `status.used` once it reads `used`.
async fn used_becomes(cluster: &DevCluster, quota: &str, used: Value) -> Value {
    let api = quotas(cluster);
    support::eventually(&format!("{quota} uses {used}"), || {
        let api = api.clone();
        let used = used.clone();
        async move {
            let status = serde_json::to_value(api.get(quota).await.ok()?.status?).ok()?;
            (status["used"] == used).then_some(status)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_quota_refuses_the_pod_over_the_limit_until_a_terminating_pod_is_gone() {
    let cluster = support::cluster().await;
    create_quota(&cluster, "pod-limit", json!({"pods": "1", "requests.cpu": "2"})).await;
    let api = pods(&cluster);
    api.create(&PostParams::default(), &pod("first", STUBBORN)).await.unwrap();
    let status = used_becomes(&cluster, "pod-limit", json!({"pods": "1"})).await;
    assert_eq!(status["hard"], json!({"pods": "1", "requests.cpu": "2"}));

    let status = refused(api.create(&PostParams::default(), &pod("second", "sleep 3600")).await);
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "pods \"second\" is forbidden: exceeded quota: pod-limit, requested: pods=1, used: pods=1, limited: pods=1"
    );
    assert_eq!(status.details.as_ref().map(|d| (d.name.as_str(), d.kind.as_str())), Some(("second", "pods")));

    // Wait until it runs, so that the deletion has a process to wait for.
    support::eventually("the first pod runs", || {
        let api = api.clone();
        async move {
            let pod = api.get("first").await.ok()?;
            (pod.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    })
    .await;
    let deleting = api.delete("first", &DeleteParams::default()).await.unwrap();
    assert!(deleting.is_left(), "the running pod is deleted gracefully");
    let terminating = api.get("first").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let status = refused(api.create(&PostParams::default(), &pod("second", "sleep 3600")).await);
    assert_eq!(status.code, 403, "a terminating pod still counts: {}", status.message);

    support::eventually("the first pod is removed", || {
        let api = api.clone();
        async move { api.get_opt("first").await.ok()?.is_none().then_some(()) }
    })
    .await;
    used_becomes(&cluster, "pod-limit", json!({"pods": "0"})).await;
    api.create(&PostParams::default(), &pod("second", "sleep 3600")).await.unwrap();
    used_becomes(&cluster, "pod-limit", json!({"pods": "1"})).await;
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_pods_do_not_count_against_a_pod_quota() {
    let cluster = support::cluster().await;
    create_quota(&cluster, "objects", json!({"count/pods": "1"})).await;
    let api = pods(&cluster);
    api.create(&PostParams::default(), &pod("done", "exit 0")).await.unwrap();
    support::eventually("the pod succeeds", || {
        let api = api.clone();
        async move {
            let pod = api.get("done").await.ok()?;
            (pod.status?.phase.as_deref() == Some("Succeeded")).then_some(())
        }
    })
    .await;
    used_becomes(&cluster, "objects", json!({"count/pods": "0"})).await;
    api.create(&PostParams::default(), &pod("next", "sleep 3600")).await.unwrap();

    let status = refused(api.create(&PostParams::default(), &pod("third", "sleep 3600")).await);
    assert_eq!(
        status.message,
        "pods \"third\" is forbidden: exceeded quota: objects, requested: count/pods=1, used: count/pods=1, limited: count/pods=1"
    );
    // Other namespaces are not limited by it.
    support::namespace(&cluster, "elsewhere").await;
    let elsewhere: Api<Pod> = Api::namespaced(cluster.client().unwrap(), "elsewhere");
    elsewhere.create(&PostParams::default(), &pod("third", "sleep 3600")).await.unwrap();
    cluster.shutdown().await.unwrap();
}
