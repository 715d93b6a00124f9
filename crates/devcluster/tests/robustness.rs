//! Randomized bad input: thousands of malformed paths, queries, headers and bodies against every verb.
//! The server must answer each with a well-formed `Status` (never a dropped connection or a 5xx),
//! and afterwards every stored object must still be readable and an open watch must still flow.
//!
//! The seed is fixed (override with `DEVCLUSTER_FUZZ_SEED`) and printed with every failure.

mod support;

use devcluster::DevCluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, WatchEvent, WatchParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use support::send_raw;

const REQUESTS: usize = 3000;
const IN_FLIGHT: usize = 8;
const DEFAULT_SEED: u64 = 0x5eed_0002;

const RUNS: &str = "/apis/review.ao.dev/v1alpha1/namespaces/default/reviewruns";
const BASE_PATHS: &[&str] = &[
    "/api/v1/namespaces/default/configmaps",
    "/api/v1/namespaces/default/configmaps/seed-0",
    "/api/v1/namespaces/default/configmaps/seed-1",
    "/api/v1/namespaces/default/secrets",
    "/api/v1/namespaces/default/pods",
    "/api/v1/namespaces/default/pods/p/status",
    "/api/v1/namespaces/fuzz",
    "/api/v1/namespaces",
    "/api/v1/configmaps",
    "/apis/apps/v1/namespaces/default/deployments",
    "/apis/apps/v1/namespaces/default/deployments/web",
    "/apis/coordination.k8s.io/v1/namespaces/default/leases",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/reviewruns.review.ao.dev",
    "/apis/review.ao.dev/v1alpha1/namespaces/default/reviewruns",
    "/apis/review.ao.dev/v1alpha1/namespaces/default/reviewruns/run-0",
    "/apis/review.ao.dev/v1alpha1/namespaces/default/reviewruns/run-0/status",
    "/apis/review.ao.dev/v1alpha1/reviewruns",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "/api",
    "/api/v1",
    "/apis",
    "/apis/review.ao.dev/v1alpha1",
    "/openapi/v2",
    "/openapi/v3/apis/review.ao.dev/v1alpha1",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "application/json; charset=utf-8",
    ";;;",
    "",
];
const ACCEPTS: &[&str] = &[
    "application/json",
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
    "application/json;as=Table;v=v9;g=meta.k8s.io",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "*/*",
    "garbage/;;=",
];
const QUERY_KEYS: &[&str] = &[
    "limit",
    "continue",
    "labelSelector",
    "fieldSelector",
    "resourceVersion",
    "resourceVersionMatch",
    "dryRun",
    "fieldManager",
    "fieldValidation",
    "force",
    "propagationPolicy",
    "gracePeriodSeconds",
    "orphanDependents",
    "includeObject",
    "allowWatchBookmarks",
    "sendInitialEvents",
    "timeoutSeconds",
    "pretty",
];
const QUERY_VALUES: &[&str] = &[
    "",
    "1",
    "-1",
    "0",
    "true",
    "All",
    "Strict",
    "Foreground",
    "Sideways",
    "NotOlderThan",
    "Exact",
    "a%3Db",
    "a+in+(b,c)",
    "!a",
    "a%3D%3D",
    "metadata.name%3Dx",
    "spec.x%3D1",
    "99999999999999999999999",
    "%00%FF",
    "e30",
    "((((",
    "%E2%98%83",
];

/// Valid objects to mutate, so that many requests get past decoding and exercise the handlers.
fn templates() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fz"}, "data": {"a": "b"}}),
        serde_json::json!({"apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun", "metadata": {"name": "run-0"},
            "spec": {"reviewer": "r", "pullRequest": {"url": "https://example.com/p/1", "headSha": "abcdef1"}}}),
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        serde_json::json!([{"op": "add", "path": "/metadata/labels/x", "value": "y"}]),
        serde_json::json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground",
            "preconditions": {"uid": "nope"}}),
    ]
}

/// Values of the wrong type or absurd size to splice into objects.
fn weird_value(rng: &mut StdRng) -> serde_json::Value {
    use serde_json::json;
    match rng.random_range(0..14) {
        0 => json!(null),
        1 => json!(5),
        2 => json!(-1e300),
        3 => serde_json::from_str("123456789012345678901234567890").unwrap_or(json!(0)),
        4 => json!("Bad_Name!"),
        5 => json!([1, "two", null]),
        6 => json!({"a": {"b": [{"c": 1}]}}),
        7 => json!(true),
        8 => json!("x".repeat(rng.random_range(0..5000))),
        9 => json!([{"op": "remove", "path": "/metadata"}]),
        10 => json!({"$patch": "delete"}),
        11 => json!({"$retainKeys": 5}),
        12 => json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "seed-0", "uid": 7}]),
        _ => json!(u64::MAX),
    }
}

fn mutate(rng: &mut StdRng, value: &mut serde_json::Value, depth: usize) {
    const FIELDS: &[&str] = &[
        "metadata",
        "name",
        "namespace",
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
        "managedFields",
        "resourceVersion",
        "generateName",
        "deletionTimestamp",
        "uid",
        "spec",
        "status",
        "data",
        "kind",
        "apiVersion",
        "op",
        "path",
        "value",
        "from",
        "items",
    ];
    match value {
        serde_json::Value::Object(map) if depth < 4 => {
            let key = FIELDS[rng.random_range(0..FIELDS.len())].to_string();
            match map.get_mut(&key) {
                Some(inner) if rng.random_bool(0.6) => mutate(rng, inner, depth + 1),
                _ => {
                    map.insert(key, weird_value(rng));
                }
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() && depth < 4 => {
            let at = rng.random_range(0..items.len());
            mutate(rng, &mut items[at], depth + 1);
        }
        other => *other = weird_value(rng),
    }
}

fn body(rng: &mut StdRng, templates: &[serde_json::Value]) -> Vec<u8> {
    match rng.random_range(0..10) {
        0 => Vec::new(),
        1 => (0..rng.random_range(1..512)).map(|_| rng.random()).collect(),
        2 => {
            let text = templates[rng.random_range(0..templates.len())].to_string();
            text.as_bytes()[..rng.random_range(0..text.len())].to_vec()
        }
        3 => {
            let depth = rng.random_range(100..5000);
            let open = if rng.random_bool(0.5) { "[" } else { "{\"a\":" };
            format!("{}1{}", open.repeat(depth), if open == "[" { "]" } else { "}" }.repeat(depth)).into_bytes()
        }
        4 => {
            let depth = rng.random_range(100..2000);
            let mut yaml = String::new();
            for level in 0..depth {
                yaml.push_str(&" ".repeat(level));
                yaml.push_str("a:\n");
            }
            yaml.into_bytes()
        }
        5 => b"metadata: {name: x}\nkind: *anchor\n&a [*a]\n!!binary zzz".to_vec(),
        _ => {
            let mut object = templates[rng.random_range(0..templates.len())].clone();
            for _ in 0..rng.random_range(0..4) {
                mutate(rng, &mut object, 0);
            }
            object.to_string().into_bytes()
        }
    }
}

fn path(rng: &mut StdRng) -> String {
    let mut path = BASE_PATHS[rng.random_range(0..BASE_PATHS.len())].to_string();
    match rng.random_range(0..8) {
        0 => path.push_str(&format!(
            "/{}",
            ["x", "status", "scale", "..", "%2F", "a%00b", "%E2%98%83", ""][rng.random_range(0..8)]
        )),
        1 => {
            let cut = rng.random_range(1..=path.len());
            path.truncate(cut);
        }
        2 => path = path.replace("/namespaces/default", "/namespaces/Bad_NS"),
        3 => path.push_str(&format!("/{}", "n".repeat(rng.random_range(250..300)))),
        4 => path = path.replacen('/', "//", 1),
        _ => {}
    }
    if rng.random_bool(0.7) {
        let pairs: Vec<String> = (0..rng.random_range(1..4))
            .map(|_| {
                format!(
                    "{}={}",
                    QUERY_KEYS[rng.random_range(0..QUERY_KEYS.len())],
                    QUERY_VALUES[rng.random_range(0..QUERY_VALUES.len())]
                )
            })
            .collect();
        path.push('?');
        path.push_str(&pairs.join("&"));
        if rng.random_bool(0.03) {
            path.push_str("&watch=true&timeoutSeconds=1");
        }
    }
    path
}

async fn post(cluster: &DevCluster, path: &str, content_type: &str, body: &str) {
    let answer = send_raw(&cluster.client().unwrap(), "POST", path, &[("content-type", content_type)], body.into())
        .await
        .unwrap();
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
}

async fn seed(cluster: &DevCluster) {
    let crd =
        std::fs::read_to_string(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds/reviewrun.yaml"))
            .unwrap();
    post(cluster, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/yaml", &crd).await;
    let client = cluster.client().unwrap();
    support::eventually("reviewruns are served", || {
        let client = client.clone();
        async move { (send_raw(&client, "GET", RUNS, &[], vec![]).await.ok()?.status == 200).then_some(()) }
    })
    .await;
    post(
        cluster,
        "/api/v1/namespaces",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fuzz"}}"#,
    )
    .await;
    for i in 0..3 {
        let cm = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"seed-{i}","labels":{{"a":"b"}}}}}}"#
        );
        post(cluster, "/api/v1/namespaces/default/configmaps", "application/json", &cm).await;
        let run = templates()[1].to_string().replace("run-0", &format!("run-{i}"));
        post(cluster, RUNS, "application/json", &run).await;
    }
    post(cluster, "/apis/apps/v1/namespaces/default/deployments", "application/json", &templates()[2].to_string())
        .await;
}

/// The path that reads one stored object back.
fn object_path(cluster: &DevCluster, key: &devcluster::store::ObjectKey) -> String {
    let info = cluster.server().registry.any_version(&key.group, &key.resource).expect("a served resource");
    let prefix =
        if key.group.is_empty() { "/api/v1".to_string() } else { format!("/apis/{}/{}", key.group, info.version) };
    if key.namespace.is_empty() {
        format!("{prefix}/{}/{}", key.resource, key.name)
    } else {
        format!("{prefix}/namespaces/{}/{}/{}", key.namespace, key.resource, key.name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_break_the_server() {
    let seed_value = std::env::var("DEVCLUSTER_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
    let cluster = support::cluster().await;
    seed(&cluster).await;
    let client = cluster.client().unwrap();
    let all_config_maps: Api<ConfigMap> = Api::all(client.clone());
    let mut watch = all_config_maps.watch(&WatchParams::default().timeout(290), "0").await.unwrap().boxed();

    let mut rng = StdRng::seed_from_u64(seed_value);
    let templates = templates();
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "GET", "PATCH", "OPTIONS", "HEAD"];
    let requests: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let method = methods[rng.random_range(0..methods.len())];
            let mut headers = vec![("content-type", CONTENT_TYPES[rng.random_range(0..CONTENT_TYPES.len())])];
            if rng.random_bool(0.5) {
                headers.push(("accept", ACCEPTS[rng.random_range(0..ACCEPTS.len())]));
            }
            if rng.random_bool(0.05) {
                headers.push(("user-agent", ""));
            }
            (i, method, path(&mut rng), headers, body(&mut rng, &templates))
        })
        .collect();

    let failures: Vec<String> = futures::stream::iter(requests)
        .map(|(i, method, path, headers, body)| {
            let client = client.clone();
            async move {
                let summary =
                    format!("request {i} (seed {seed_value}): {method} {path} {headers:?} body {} bytes", body.len());
                let answer = match send_raw(&client, method, &path, &headers, body).await {
                    Ok(answer) => answer,
                    Err(e) => return Some(format!("{summary}: transport error {e}")),
                };
                if answer.status >= 500 {
                    return Some(format!("{summary}: {} {}", answer.status, String::from_utf8_lossy(&answer.body)));
                }
                let is_api = path.starts_with("/api") && !path.contains("watch=true");
                if answer.status >= 400 && is_api && method != "HEAD" {
                    let status: serde_json::Value = match serde_json::from_slice(&answer.body) {
                        Ok(status) => status,
                        Err(_) => return Some(format!("{summary}: {} without a Status body", answer.status)),
                    };
                    if status["kind"] != "Status" || status["code"] != answer.status {
                        return Some(format!("{summary}: {} with body {status}", answer.status));
                    }
                }
                None
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(failures.is_empty(), "{} failures (seed {seed_value}):\n{}", failures.len(), failures.join("\n"));

    // Every stored object is still readable, alone and in its list.
    let stored = cluster.server().stored_objects();
    assert!(!stored.is_empty(), "objects survive the storm (seed {seed_value})");
    for (key, object) in &stored {
        let path = object_path(&cluster, key);
        let answer = send_raw(&client, "GET", &path, &[], vec![]).await.unwrap();
        assert_eq!(answer.status, 200, "GET {path} (seed {seed_value}): {}", String::from_utf8_lossy(&answer.body));
        let got = answer.json();
        assert_eq!(got["metadata"]["resourceVersion"], object["metadata"]["resourceVersion"], "seed {seed_value}");
        let list_path = path.rsplit_once('/').unwrap().0;
        let list = send_raw(&client, "GET", list_path, &[], vec![]).await.unwrap();
        assert_eq!(list.status, 200, "GET {list_path} (seed {seed_value})");
        let items = list.json()["items"].as_array().unwrap().clone();
        assert!(items.iter().any(|i| i["metadata"]["name"] == key.name.as_str()), "{list_path} lists {}", key.name);
    }

    // The watch opened before the storm still delivers a change made after it.
    post(
        &cluster,
        "/api/v1/namespaces",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"after-fuzz"}}"#,
    )
    .await;
    post(
        &cluster,
        "/api/v1/namespaces/after-fuzz/configmaps",
        "application/json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"marker"}}"#,
    )
    .await;
    let delivered = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = watch.try_next().await.unwrap() {
            if let WatchEvent::Added(cm) = event
                && cm.metadata.name.as_deref() == Some("marker")
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(delivered, "the open watch delivered the marker (seed {seed_value})");
    cluster.shutdown().await.unwrap();
}
