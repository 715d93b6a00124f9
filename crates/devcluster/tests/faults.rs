//! Fault injection: the Rust API and the admin endpoint make chosen requests fail or wait.

mod support;

use devcluster::ApiError;
use devcluster::faults::FaultTarget;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]},
    }))
    .unwrap()
}

fn api_status(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_delete_fails_twice_with_500_then_succeeds() {
    let cluster = support::cluster().await;
    let pods: Api<Pod> = Api::default_namespaced(cluster.client().unwrap());
    pods.create(&PostParams::default(), &pod("victim")).await.unwrap();
    pods.create(&PostParams::default(), &pod("bystander")).await.unwrap();
    cluster.server().faults.fail_next(
        FaultTarget::new("delete", "pods").name("victim"),
        2,
        ApiError::internal("etcd is on fire"),
    );

    // Other requests are untouched.
    pods.get("victim").await.unwrap();
    for _ in 0..2 {
        let status = api_status(pods.delete("victim", &DeleteParams::default()).await);
        assert_eq!((status.code, status.reason.as_str()), (500, "InternalError"));
        assert_eq!(status.message, "Internal error occurred: etcd is on fire");
        assert!(pods.get("victim").await.is_ok(), "a failed delete must not delete");
    }
    pods.delete("victim", &DeleteParams::default()).await.unwrap();
    support::eventually("the pod to be gone", || async {
        pods.get_opt("victim").await.unwrap().is_none().then_some(())
    })
    .await;
    pods.delete("bystander", &DeleteParams::default()).await.unwrap();
    assert!(cluster.server().faults.armed().is_empty());
    cluster.shutdown().await.unwrap();
}

async fn admin_request(
    cluster: &devcluster::DevCluster,
    token: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let client = cluster.client_for_token(token).unwrap();
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    match client.request::<serde_json::Value>(request).await {
        Ok(value) => (200, value),
        Err(kube::Error::Api(status)) => (status.code, json!({"message": status.message, "reason": status.reason})),
        Err(other) => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_arms_lists_and_clears_faults() {
    let cluster = support::cluster().await;
    let admin = cluster.admin_token().to_string();
    // kube's client retries 429, 503 and 504 on its own, so a one-shot fault uses another status.
    let rule = json!({"verb": "create", "resource": "configmaps", "count": 1, "status": 502, "reason": "BadGateway", "message": "try later"});
    let (code, armed) = admin_request(&cluster, &admin, "POST", "/devcluster/faults", rule).await;
    assert_eq!(code, 200);
    assert_eq!(armed["status"], 502);
    assert_eq!(armed["reason"], "BadGateway");

    let maps: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    let status = api_status(maps.create(&PostParams::default(), &cm).await);
    assert_eq!((status.code, status.reason.as_str(), status.message.as_str()), (502, "BadGateway", "try later"));
    maps.create(&PostParams::default(), &cm).await.unwrap();

    let delay = json!({"verb": "get", "resource": "configmaps", "count": 5, "delayMs": 1});
    admin_request(&cluster, &admin, "POST", "/devcluster/faults", delay).await;
    let (_, listed) = admin_request(&cluster, &admin, "GET", "/devcluster/faults", json!({})).await;
    assert_eq!(listed["items"][0]["delayMs"], 1);
    assert_eq!(listed["items"][0]["count"], 5);
    maps.get("c").await.unwrap();
    let (_, listed) = admin_request(&cluster, &admin, "GET", "/devcluster/faults", json!({})).await;
    assert_eq!(listed["items"][0]["count"], 4);
    admin_request(&cluster, &admin, "DELETE", "/devcluster/faults", json!({})).await;
    assert!(cluster.server().faults.armed().is_empty());

    let (code, error) = admin_request(
        &cluster,
        &admin,
        "POST",
        "/devcluster/faults",
        json!({"verb": "get", "resource": "pods", "count": 1}),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(error["message"], "invalid fault rule: status or delayMs: one of them is required");
    let (code, error) = admin_request(&cluster, &admin, "POST", "/devcluster/faults", json!({"verb": "get"})).await;
    assert_eq!(code, 400);
    assert!(error["message"].as_str().unwrap().contains("missing field `resource`"), "{error}");

    let token = support::service_account_token(&cluster, "default", "intruder", None);
    let (code, error) = admin_request(&cluster, &token, "POST", "/devcluster/faults", json!({})).await;
    assert_eq!(code, 403);
    assert_eq!(
        error["message"],
        "forbidden: User \"system:serviceaccount:default:intruder\" cannot post path \"/devcluster/faults\""
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_watches_ends_open_streams() {
    let cluster = support::cluster().await;
    let maps: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let mut stream = maps.watch(&WatchParams::default().fields("metadata.name=w"), "0").await.unwrap().boxed();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "w"}})).unwrap();
    maps.create(&PostParams::default(), &cm).await.unwrap();
    match stream.next().await {
        Some(Ok(WatchEvent::Added(added))) => assert_eq!(added.metadata.name.as_deref(), Some("w")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    let (code, _) = admin_request(&cluster, cluster.admin_token(), "POST", "/devcluster/drop-watches", json!({})).await;
    assert_eq!(code, 200);
    let end = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match stream.next().await {
                None => return,
                Some(Ok(WatchEvent::Bookmark(_))) => continue,
                Some(other) => panic!("expected the stream to end, got {other:?}"),
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the watch stream did not end");
    cluster.shutdown().await.unwrap();
}
