//! Bad requests get the status code, reason and message the real API server answers with.

mod support;

use devcluster::DevCluster;
use support::{Raw, send_raw};

const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";

async fn request(cluster: &DevCluster, method: &str, path: &str, content_type: &str, body: &[u8]) -> Raw {
    let client = cluster.client().unwrap();
    send_raw(&client, method, path, &[("content-type", content_type)], body.to_vec()).await.expect("an answer")
}

async fn install_review_run_crd(cluster: &DevCluster) {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds/reviewrun.yaml");
    let crd = std::fs::read(path).unwrap();
    let answer =
        request(cluster, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/yaml", &crd)
            .await;
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    let client = cluster.client().unwrap();
    support::eventually("the ReviewRun resource is served", || {
        let client = client.clone();
        async move {
            let raw =
                send_raw(&client, "GET", "/apis/review.ao.dev/v1alpha1/namespaces/default/reviewruns", &[], vec![])
                    .await
                    .ok()?;
            (raw.status == 200).then_some(())
        }
    })
    .await;
}

const REVIEW_RUN: &str = r#"{"apiVersion":"review.ao.dev/v1alpha1","kind":"ReviewRun","metadata":{"name":"run-1"},
  "spec":{"reviewer":"r","pullRequest":{"url":"https://example.com/p/1","headSha":"abcdef1"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_yaml_are_bad_requests() {
    let cluster = support::cluster().await;
    let message = request(&cluster, "POST", CONFIG_MAPS, "application/json", b"{\"kind\": \"ConfigMap\", ").await;
    let message = message.status(400, "BadRequest");
    assert!(message.contains("JSON"), "{message}");

    let message = request(&cluster, "POST", CONFIG_MAPS, "application/yaml", b"kind: [ConfigMap\n  - : :").await;
    let message = message.status(400, "BadRequest");
    assert!(message.contains("YAML"), "{message}");

    // A JSON value that is not an object cannot be an object.
    let answer = request(&cluster, "POST", CONFIG_MAPS, "application/json", b"[1, 2]").await;
    assert_eq!(answer.status, 400, "{}", answer.json());

    // Malformed patch documents as well.
    let create = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"}}"#;
    assert_eq!(request(&cluster, "POST", CONFIG_MAPS, "application/json", create).await.status, 201);
    let path = format!("{CONFIG_MAPS}/cm");
    let answer = request(&cluster, "PATCH", &path, "application/merge-patch+json", b"{\"data\":").await;
    answer.status(400, "BadRequest");
    let answer = request(&cluster, "PATCH", &path, "application/apply-patch+yaml", b"data: [\n").await;
    answer.status(400, "BadRequest");
    let answer = request(&cluster, "PATCH", &path, "application/json-patch+json", br#"{"op":"add"}"#).await;
    answer.status(400, "BadRequest");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_resources_are_not_found() {
    let cluster = support::cluster().await;
    for path in [
        "/api/v1/namespaces/default/widgets",
        "/apis/nope.example.com/v1/things",
        "/apis/apps/v1/namespaces/default/configmaps",
        "/apis/review.ao.dev/v1alpha1/namespaces/default/reviewruns",
        "/api/v2/pods",
        "/definitely/not/an/api",
    ] {
        let answer = request(&cluster, "GET", path, "application/json", b"").await;
        let message = answer.status(404, "NotFound");
        assert_eq!(message, "the server could not find the requested resource", "{path}");
    }
    let missing = request(&cluster, "GET", &format!("{CONFIG_MAPS}/nope"), "application/json", b"").await;
    assert_eq!(missing.status(404, "NotFound"), "configmaps \"nope\" not found");
    assert_eq!(missing.json()["details"], serde_json::json!({"name": "nope", "kind": "configmaps"}));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_match_the_url_is_a_bad_request() {
    let cluster = support::cluster().await;
    let wrong_kind = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#;
    let message =
        request(&cluster, "POST", CONFIG_MAPS, "application/json", wrong_kind).await.status(400, "BadRequest");
    assert_eq!(message, "the kind in the data (Secret) does not match the expected kind (ConfigMap)");

    let wrong_version = br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#;
    let message =
        request(&cluster, "POST", CONFIG_MAPS, "application/json", wrong_version).await.status(400, "BadRequest");
    assert_eq!(message, "the API version in the data (apps/v1) does not match the expected API version (v1)");

    let wrong_namespace =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"kube-system"}}"#;
    let message =
        request(&cluster, "POST", CONFIG_MAPS, "application/json", wrong_namespace).await.status(400, "BadRequest");
    assert_eq!(message, "the namespace of the provided object does not match the namespace sent on the request");

    install_review_run_crd(&cluster).await;
    let runs = "/apis/review.ao.dev/v1alpha1/namespaces/default/reviewruns";
    let other_group = REVIEW_RUN.replace("review.ao.dev/v1alpha1", "other.example.com/v1alpha1");
    let message =
        request(&cluster, "POST", runs, "application/json", other_group.as_bytes()).await.status(400, "BadRequest");
    assert_eq!(
        message,
        "the API version in the data (other.example.com/v1alpha1) does not match the expected API version (review.ao.dev/v1alpha1)"
    );

    let create = request(&cluster, "POST", runs, "application/json", REVIEW_RUN.as_bytes()).await;
    assert_eq!(create.status, 201, "{}", create.json());
    let renamed = REVIEW_RUN.replace("run-1", "run-2");
    let message = request(&cluster, "PUT", &format!("{runs}/run-1"), "application/json", renamed.as_bytes())
        .await
        .status(400, "BadRequest");
    assert_eq!(message, "the name of the object (run-2) does not match the name on the URL (run-1)");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_name_is_unprocessable() {
    let cluster = support::cluster().await;
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#;
    let answer = request(&cluster, "POST", CONFIG_MAPS, "application/json", body).await;
    let message = answer.status(422, "Invalid");
    assert!(
        message.starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"
        ),
        "{message}"
    );
    let details = &answer.json()["details"];
    assert_eq!(details["name"], "Bad_Name");
    assert_eq!(details["kind"], "ConfigMap");
    assert_eq!(details["causes"][0]["reason"], "FieldValueInvalid");
    assert_eq!(details["causes"][0]["field"], "metadata.name");

    let missing = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#;
    let answer = request(&cluster, "POST", CONFIG_MAPS, "application/json", missing).await;
    let message = answer.status(422, "Invalid");
    assert_eq!(message, "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_three_mebibytes_is_too_large() {
    let cluster = support::cluster().await;
    let filler = "x".repeat(3 * 1024 * 1024);
    let body =
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{filler}"}}}}"#);
    let answer = request(&cluster, "POST", CONFIG_MAPS, "application/json", body.as_bytes()).await;
    assert_eq!(answer.status(413, "RequestEntityTooLarge"), "Request entity too large: limit is 3145728");
    let answer = request(&cluster, "GET", &format!("{CONFIG_MAPS}/big"), "application/json", b"").await;
    answer.status(404, "NotFound");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_invalid_tokens_are_unauthorized() {
    let cluster = support::cluster().await;
    for token in [None, Some("not-the-token")] {
        let client = support::client_with_token(&cluster, token);
        let answer = send_raw(&client, "GET", CONFIG_MAPS, &[], vec![]).await.unwrap();
        assert_eq!(answer.status(401, "Unauthorized"), "Unauthorized");
        assert_eq!(answer.json()["metadata"], serde_json::json!({}));
    }
    // Health and version stay public, as on a real cluster.
    let client = support::client_with_token(&cluster, None);
    let health = send_raw(&client, "GET", "/readyz", &[], vec![]).await.unwrap();
    assert_eq!((health.status, health.body.as_slice()), (200, b"ok".as_slice()));
    let version = send_raw(&client, "GET", "/version", &[], vec![]).await.unwrap();
    assert_eq!(version.json()["minor"], "37");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_patch_types_are_unsupported_media() {
    let cluster = support::cluster().await;
    let create = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"}}"#;
    assert_eq!(request(&cluster, "POST", CONFIG_MAPS, "application/json", create).await.status, 201);
    let answer = request(&cluster, "PATCH", &format!("{CONFIG_MAPS}/cm"), "text/plain", b"{}").await;
    assert_eq!(
        answer.status(415, "UnsupportedMediaType"),
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, \
         application/apply-patch+yaml"
    );

    install_review_run_crd(&cluster).await;
    let runs = "/apis/review.ao.dev/v1alpha1/namespaces/default/reviewruns";
    assert_eq!(request(&cluster, "POST", runs, "application/json", REVIEW_RUN.as_bytes()).await.status, 201);
    let answer = request(
        &cluster,
        "PATCH",
        &format!("{runs}/run-1"),
        "application/strategic-merge-patch+json",
        br#"{"metadata":{"labels":{"a":"b"}}}"#,
    )
    .await;
    assert_eq!(
        answer.status(415, "UnsupportedMediaType"),
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    cluster.shutdown().await.unwrap();
}

/// Answers are JSON: a client that accepts only protobuf is told so with a 406.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_only_accept_headers_are_not_acceptable() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let request = |accept: &str| {
        axum::http::Request::get("/api/v1/namespaces/default/configmaps")
            .header("Accept", accept)
            .body(Vec::new())
            .unwrap()
    };
    match client.request_text(request("application/vnd.kubernetes.protobuf")).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (406, "NotAcceptable"));
            assert!(status.message.contains("application/json"), "{}", status.message);
        }
        other => panic!("expected a 406, got {other:?}"),
    }
    let listed = client.request_text(request("application/vnd.kubernetes.protobuf, application/json")).await.unwrap();
    assert!(listed.contains("\"kind\":\"ConfigMapList\""), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_are_bad_requests_and_write_nothing() {
    let cluster = support::cluster().await;
    let deep = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep"}},"x":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut invalid_utf8 = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"utf"},"data":{"k":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b'}', b'}']);
    let out_of_range =
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":1e400}}"#;
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (CONFIG_MAPS, "application/json", deep.clone().into_bytes()),
        (CONFIG_MAPS, "application/json", invalid_utf8),
        ("/apis/apps/v1/namespaces/default/deployments", "application/json", out_of_range.as_bytes().to_vec()),
    ];
    for (path, content_type, body) in cases {
        let answer = request(&cluster, "POST", path, content_type, &body).await;
        let message = answer.status(400, "BadRequest");
        assert!(!message.is_empty());
    }
    // A patch as deep, to an object that exists.
    let seed = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"seed"}}"#;
    let created = request(&cluster, "POST", CONFIG_MAPS, "application/json", seed).await;
    assert_eq!(created.status, 201);
    let deep_patch = format!(r#"{{"data":{}{}}}"#, "{\"a\":".repeat(10_000), "}".repeat(10_000));
    for content_type in ["application/merge-patch+json", "application/strategic-merge-patch+json"] {
        let answer =
            request(&cluster, "PATCH", &format!("{CONFIG_MAPS}/seed"), content_type, deep_patch.as_bytes()).await;
        answer.status(400, "BadRequest");
    }
    // 100 MB: refused before it is read whole. The server answers and closes the connection
    // while the client may still be sending, so the client sees the 413 or, having lost the
    // race, a failed body write (as with kube-apiserver).
    let huge = vec![b' '; 100 * 1024 * 1024];
    let client = cluster.client().unwrap();
    match send_raw(&client, "POST", CONFIG_MAPS, &[("content-type", "application/json")], huge).await {
        Ok(answer) => {
            answer.status(413, "RequestEntityTooLarge");
        }
        Err(error) => {
            let error = format!("{error:?}");
            assert!(error.contains("BodyWrite"), "the server closed the connection mid-body: {error}");
        }
    }
    // Nothing was written: the refused objects do not exist and the patched one is unchanged.
    for path in [
        format!("{CONFIG_MAPS}/deep"),
        format!("{CONFIG_MAPS}/utf"),
        "/apis/apps/v1/namespaces/default/deployments/web".into(),
    ] {
        request(&cluster, "GET", &path, "application/json", b"").await.status(404, "NotFound");
    }
    let seed_now = request(&cluster, "GET", &format!("{CONFIG_MAPS}/seed"), "application/json", b"").await;
    assert_eq!(seed_now.json()["metadata"]["resourceVersion"], created.json()["metadata"]["resourceVersion"]);
    cluster.shutdown().await.unwrap();
}
