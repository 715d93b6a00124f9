//! RBAC through `kube::Client` and `kubectl auth can-i`: a service account that may only patch the
//! status of ReviewRuns.

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::json;

const NS: &str = "reviews";

fn review_runs(client: kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("review.ao.dev", "v1alpha1", "ReviewRun"),
        "reviewruns",
    );
    Api::namespaced_with(client, NS, &resource)
}

fn review_run(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "review.ao.dev/v1alpha1",
        "kind": "ReviewRun",
        "metadata": {"name": name},
        "spec": {"reviewer": "review-w1", "pullRequest": {"url": "https://example.com/pr/1", "headSha": "abcdef1"}},
    }))
    .unwrap()
}

/// A Role allowing only `patch` on `reviewruns/status`, bound to service account `submitter`.
async fn status_only_service_account(cluster: &devcluster::DevCluster) -> String {
    support::install_crd(cluster, "crds/reviewrun.yaml", "reviewruns.review.ao.dev").await;
    support::namespace(cluster, NS).await;
    let manifest = format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: status-submitter, namespace: {NS}}}
rules:
- apiGroups: [review.ao.dev]
  resources: [reviewruns/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: submitter, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: status-submitter}}
subjects:
- {{kind: ServiceAccount, name: submitter, namespace: {NS}}}
"#
    );
    support::kubectl_with(cluster, &["apply", "-f", "-"], Some(&manifest), &[]).await.ok();
    support::service_account_token(cluster, NS, "submitter", None)
}

fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_patcher_may_patch_status_and_nothing_else() {
    let cluster = support::cluster().await;
    let token = status_only_service_account(&cluster).await;
    review_runs(cluster.client().unwrap()).create(&PostParams::default(), &review_run("x")).await.unwrap();

    let runs = review_runs(cluster.client_for_token(&token).unwrap());
    let patched = runs
        .patch_status("x", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Running"}})))
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["phase"], "Running");

    let status = api_error(
        runs.patch("x", &PatchParams::default(), &Patch::Merge(json!({"spec": {"cancelRequested": true}})))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "reviewruns.review.ao.dev \"x\" is forbidden: User \"system:serviceaccount:reviews:submitter\" cannot patch resource \"reviewruns\" in API group \"review.ao.dev\" in the namespace \"reviews\""
    );
    let details = status.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.group.as_str(), details.kind.as_str()),
        ("x", "review.ao.dev", "reviewruns")
    );

    let status = api_error(runs.get("x").await.unwrap_err());
    assert_eq!(status.code, 403);
    let status = api_error(runs.replace_status("x", &PostParams::default(), &review_run("x")).await.unwrap_err());
    assert!(status.message.contains("cannot update resource \"reviewruns/status\""), "{}", status.message);

    let pods: Api<Pod> = Api::namespaced(cluster.client_for_token(&token).unwrap(), NS);
    let status = api_error(pods.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        status.message,
        "pods is forbidden: User \"system:serviceaccount:reviews:submitter\" cannot list resource \"pods\" in API group \"\" in the namespace \"reviews\""
    );
    let all_pods: Api<Pod> = Api::all(cluster.client_for_token(&token).unwrap());
    let status = api_error(all_pods.list(&ListParams::default()).await.unwrap_err());
    assert!(
        status.message.ends_with("cannot list resource \"pods\" in API group \"\" at the cluster scope"),
        "{}",
        status.message
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_agrees() {
    let cluster = support::cluster().await;
    let token = status_only_service_account(&cluster).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("submitter.kubeconfig");
    cluster.kubeconfig_for_token(&token, NS, &kubeconfig).unwrap();
    let as_submitter = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let cluster = &cluster;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            support::kubectl(cluster, &refs).await
        }
    };

    let out = run(as_submitter(&["auth", "can-i", "patch", "reviewruns", "--subresource=status"])).await;
    assert_eq!((out.code, out.stdout.trim()), (0, "yes"), "{out:?}");
    let out =
        run(as_submitter(&["auth", "can-i", "patch", "reviewruns.review.ao.dev/x", "--subresource=status"])).await;
    assert_eq!((out.code, out.stdout.trim()), (0, "yes"), "{out:?}");
    let out = run(as_submitter(&["auth", "can-i", "patch", "reviewruns"])).await;
    assert_eq!((out.code, out.stdout.trim()), (1, "no"), "{out:?}");
    let out = run(as_submitter(&["auth", "can-i", "get", "pods"])).await;
    assert_eq!((out.code, out.stdout.trim()), (1, "no"), "{out:?}");
    let out =
        run(as_submitter(&["auth", "can-i", "patch", "reviewruns", "--subresource=status", "-n", "default"])).await;
    assert_eq!((out.code, out.stdout.trim()), (1, "no"), "{out:?}");

    let list = run(as_submitter(&["auth", "can-i", "--list"])).await.ok();
    let line =
        list.lines().find(|l| l.starts_with("reviewruns.review.ao.dev/status")).unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains("[patch]"), "{line}");
    assert!(!list.lines().any(|l| l.starts_with("pods")), "{list}");

    // The admin may do anything.
    let out = support::kubectl(&cluster, &["auth", "can-i", "delete", "pods", "-n", NS]).await;
    assert_eq!((out.code, out.stdout.trim()), (0, "yes"), "{out:?}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_reviews_need_exactly_one_kind_of_attributes() {
    let cluster = support::cluster().await;
    let token = support::service_account_token(&cluster, NS, "nobody", None);
    let client = cluster.client_for_token(&token).unwrap();
    let request = |body: serde_json::Value| {
        axum::http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    };
    let review: serde_json::Value = client
        .request(request(json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"nonResourceAttributes": {"path": "/apis/apps/v1", "verb": "get"}}})))
        .await
        .unwrap();
    assert_eq!(review["status"]["allowed"], true);
    let err = client
        .request::<serde_json::Value>(request(
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}}),
        ))
        .await
        .unwrap_err();
    let status = api_error(err);
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("exactly one of nonResourceAttributes or resourceAttributes"),
        "{}",
        status.message
    );
    cluster.shutdown().await.unwrap();
}

/// A TokenReview of `token` by `client`.
async fn review_token(client: kube::Client, token: &str) -> Result<serde_json::Value, kube::Error> {
    use k8s_openapi::api::authentication::v1::TokenReview;
    let review: TokenReview = serde_json::from_value(json!({"spec": {"token": token, "audiences": ["api"]}})).unwrap();
    let reviewed = Api::<TokenReview>::all(client).create(&PostParams::default(), &review).await?;
    Ok(serde_json::to_value(reviewed.status).unwrap())
}

#[tokio::test]
async fn token_reviews_say_who_a_token_is_to_whoever_may_ask() {
    let cluster = support::cluster_without_pods().await;
    let admin = cluster.client().expect("client");
    let pod_token = support::service_account_token(&cluster, NS, "review-agent", Some(("review-w1-1", "uid-1")));

    let status = review_token(admin.clone(), &pod_token).await.expect("reviewed");
    assert_eq!(status["authenticated"], true);
    assert_eq!(status["user"]["username"], "system:serviceaccount:reviews:review-agent");
    assert_eq!(status["user"]["extra"]["authentication.kubernetes.io/pod-name"], json!(["review-w1-1"]));
    assert_eq!(status["audiences"], json!(["api"]));
    let status = review_token(admin.clone(), "not-a-token").await.expect("reviewed");
    assert_eq!(
        (status["authenticated"].clone(), status["error"].clone()),
        (json!(false), json!("invalid bearer token"))
    );
    // A token that is gone (its pod deleted) no longer authenticates.
    cluster.server().auth.remove(&pod_token);
    assert_eq!(review_token(admin.clone(), &pod_token).await.expect("reviewed")["authenticated"], false);

    let error = api_error(review_token(admin.clone(), "").await.unwrap_err());
    assert_eq!((error.code, error.message.as_str()), (400, "token is required for TokenReview in authentication"));
    // Asking needs `create tokenreviews` (system:auth-delegator has it); a plain service account may not.
    let asker = support::service_account_token(&cluster, NS, "asker", None);
    let as_asker = support::client_with_token(&cluster, Some(&asker));
    let error = api_error(review_token(as_asker.clone(), &asker).await.unwrap_err());
    assert_eq!(error.code, 403, "{error:?}");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "asker-delegator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": "asker", "namespace": NS}],
    });
    support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(&binding.to_string()), &[]).await.ok();
    let status = review_token(as_asker, &asker).await.expect("the delegator may ask");
    assert_eq!(status["user"]["username"], "system:serviceaccount:reviews:asker");
}

#[tokio::test]
async fn kubectl_create_token_mints_expiring_tokens_bound_to_a_pod_while_it_exists() {
    let cluster = support::cluster_without_pods().await;
    let admin = cluster.client().expect("client");
    support::namespace(&cluster, "team").await;
    let objects = [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "team"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", "namespace": "team"},
         "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]}}),
    ];
    for object in objects {
        support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(&object.to_string()), &[]).await.ok();
    }

    let token = support::kubectl(&cluster, &["create", "token", "robot", "-n", "team"]).await.ok();
    let status = review_token(admin.clone(), token.trim()).await.expect("reviewed");
    assert_eq!(status["user"]["username"], "system:serviceaccount:team:robot");
    assert_eq!(status["user"]["extra"], serde_json::Value::Null, "bound to nothing, no pod extras");

    let args =
        ["create", "token", "robot", "-n", "team", "--bound-object-kind", "Pod", "--bound-object-name", "worker"];
    let bound = support::kubectl(&cluster, &args).await.ok();
    let status = review_token(admin.clone(), bound.trim()).await.expect("reviewed");
    assert_eq!(status["user"]["extra"]["authentication.kubernetes.io/pod-name"], json!(["worker"]));
    // The token works for requests too, and stops with its pod.
    let as_bound = support::client_with_token(&cluster, Some(bound.trim()));
    let pods: Api<Pod> = Api::namespaced(as_bound.clone(), "team");
    assert_eq!(
        api_error(pods.list(&ListParams::default()).await.unwrap_err()).code,
        403,
        "authenticated, not authorized"
    );
    let admin_pods: Api<Pod> = Api::namespaced(admin.clone(), "team");
    admin_pods
        .delete("worker", &kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .expect("deleted");
    support::eventually("the pod to be gone", || {
        let admin_pods = admin_pods.clone();
        async move { matches!(admin_pods.get_opt("worker").await, Ok(None)).then_some(()) }
    })
    .await;
    assert_eq!(review_token(admin.clone(), bound.trim()).await.expect("reviewed")["authenticated"], false);
    assert_eq!(api_error(pods.list(&ListParams::default()).await.unwrap_err()).code, 401);

    // What kubectl says when the request is wrong.
    let short =
        support::kubectl(&cluster, &["create", "token", "robot", "-n", "team", "--duration", "5m"]).await.failed();
    assert!(short.contains("may not specify a duration less than 10 minutes"), "{short}");
    let missing = support::kubectl(&cluster, &["create", "token", "nobody", "-n", "team"]).await.failed();
    assert!(missing.contains("serviceaccounts \"nobody\" not found"), "{missing}");
    let args = ["create", "token", "robot", "-n", "team", "--bound-object-kind", "Pod", "--bound-object-name", "gone"];
    let unbound = support::kubectl(&cluster, &args).await.failed();
    assert!(unbound.contains("pods \"gone\" not found"), "{unbound}");
}
