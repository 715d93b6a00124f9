//! ValidatingAdmissionPolicies through `kube::Client` and kubectl: pod-bound submissions, deletes,
//! subresources, failurePolicy, matchConditions, params and warnings.

mod support;

use devcluster::DevCluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::json;

const NS: &str = "reviews";

async fn apply(cluster: &DevCluster, manifest: &str) {
    support::kubectl_with(cluster, &["apply", "-f", "-"], Some(manifest), &[]).await.ok();
}

fn review_runs(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("review.ao.dev", "v1alpha1", "ReviewRun");
    Api::namespaced_with(client, NS, &ApiResource::from_gvk_with_plural(&gvk, "reviewruns"))
}

fn status_of(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str, labels: serde_json::Value, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": data})).unwrap()
}

const SUBMISSION_POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: reviewer-pod-submits}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [review.ao.dev]
      apiVersions: ["*"]
      operations: [UPDATE]
      resources: [reviewruns/status]
  matchConditions:
  - name: service-accounts-only
    expression: request.userInfo.username.startsWith('system:serviceaccount:')
  variables:
  - name: podUID
    expression: "'authentication.kubernetes.io/pod-uid' in request.userInfo.extra ? request.userInfo.extra['authentication.kubernetes.io/pod-uid'][0] : ''"
  validations:
  - expression: variables.podUID != '' && variables.podUID == oldObject.status.assignment.podUID
    message: only the assigned reviewer pod may submit a verdict
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: reviewer-pod-submits-binding}
spec:
  policyName: reviewer-pod-submits
  validationActions: [Deny]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: submitter, namespace: reviews}
rules:
- {apiGroups: [review.ao.dev], resources: [reviewruns/status], verbs: [patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reviewers, namespace: reviews}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: submitter}
subjects:
- {kind: ServiceAccount, name: reviewer, namespace: reviews}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_assigned_pod_may_patch_a_runs_status() {
    let cluster = support::cluster().await;
    support::install_crd(&cluster, "crds/reviewrun.yaml", "reviewruns.review.ao.dev").await;
    support::namespace(&cluster, NS).await;
    apply(&cluster, SUBMISSION_POLICY).await;
    let admin_runs = review_runs(cluster.client().unwrap());
    let run: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun", "metadata": {"name": "x"},
        "spec": {"reviewer": "review-w1", "pullRequest": {"url": "https://example.com/pr/1", "headSha": "abcdef1"}},
    }))
    .unwrap();
    admin_runs.create(&PostParams::default(), &run).await.unwrap();
    // The admin is not a service account: the matchCondition leaves its writes alone.
    let assignment = json!({"status": {"phase": "Running", "assignment": {"incarnation": 1, "pod": "reviewer-a", "podUID": "uid-a"}}});
    admin_runs.patch_status("x", &PatchParams::default(), &Patch::Merge(assignment)).await.unwrap();

    let pod_a = support::service_account_token(&cluster, NS, "reviewer", Some(("reviewer-a", "uid-a")));
    let pod_b = support::service_account_token(&cluster, NS, "reviewer", Some(("reviewer-b", "uid-b")));
    let no_pod = support::service_account_token(&cluster, NS, "reviewer", None);
    let verdict = Patch::Merge(
        json!({"status": {"phase": "Succeeded", "reason": "Submitted", "result": {"verdict": "Approved", "body": "", "submittedAt": "2026-01-01T00:00:00Z"}}}),
    );

    let status = status_of(
        review_runs(cluster.client_for_token(&pod_b).unwrap())
            .patch_status("x", &PatchParams::default(), &verdict)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "reviewruns.review.ao.dev \"x\" is forbidden: ValidatingAdmissionPolicy 'reviewer-pod-submits' with binding 'reviewer-pod-submits-binding' denied request: only the assigned reviewer pod may submit a verdict"
    );
    let status = status_of(
        review_runs(cluster.client_for_token(&no_pod).unwrap())
            .patch_status("x", &PatchParams::default(), &verdict)
            .await,
    );
    assert_eq!(status.code, 403);

    let patched = review_runs(cluster.client_for_token(&pod_a).unwrap())
        .patch_status("x", &PatchParams::default(), &verdict)
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["phase"], "Succeeded");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_checked_against_the_old_object() {
    let cluster = support::cluster().await;
    apply(
        &cluster,
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: keep-protected}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [DELETE], resources: [configmaps]}
  validations:
  - expression: "object == null && !(has(oldObject.metadata.labels) && 'protected' in oldObject.metadata.labels)"
    messageExpression: "'configmap ' + oldObject.metadata.name + ' is protected'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: keep-protected}
spec: {policyName: keep-protected, validationActions: [Deny]}
"#,
    )
    .await;
    let maps: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    maps.create(&PostParams::default(), &config_map("guarded", json!({"protected": "yes"}), json!({}))).await.unwrap();
    maps.create(&PostParams::default(), &config_map("plain", json!({}), json!({}))).await.unwrap();
    let status = status_of(maps.delete("guarded", &DeleteParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "configmaps \"guarded\" is forbidden: ValidatingAdmissionPolicy 'keep-protected' with binding 'keep-protected' denied request: configmap guarded is protected"
    );
    assert!(maps.get("guarded").await.is_ok());
    maps.delete("plain", &DeleteParams::default()).await.unwrap();
    // Updates do not match a DELETE-only policy.
    maps.patch("guarded", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "v"}}))).await.unwrap();
    cluster.shutdown().await.unwrap();
}

fn failing_policy(failure_policy: &str) -> String {
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: broken}}
spec:
  failurePolicy: {failure_policy}
  matchConstraints:
    resourceRules:
    - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}
    objectSelector: {{matchLabels: {{checked: "true"}}}}
  validations:
  - expression: object.spec.missing == 1
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: broken}}
spec: {{policyName: broken, validationActions: [Deny]}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_errors_follow_the_failure_policy() {
    let cluster = support::cluster().await;
    apply(&cluster, &failing_policy("Fail")).await;
    let maps: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let status =
        status_of(maps.create(&PostParams::default(), &config_map("a", json!({"checked": "true"}), json!({}))).await);
    assert_eq!(status.code, 422);
    assert!(
        status.message.starts_with(
            "configmaps \"a\" is forbidden: ValidatingAdmissionPolicy 'broken' with binding 'broken' denied request: expression 'object.spec.missing == 1' resulted in error: "
        ),
        "{}",
        status.message
    );
    // The objectSelector keeps unlabelled objects out of the policy's reach.
    maps.create(&PostParams::default(), &config_map("unchecked", json!({}), json!({}))).await.unwrap();
    apply(&cluster, &failing_policy("Ignore")).await;
    maps.create(&PostParams::default(), &config_map("a", json!({"checked": "true"}), json!({}))).await.unwrap();
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_come_from_the_bindings_param_ref() {
    let cluster = support::cluster().await;
    let maps: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    maps.create(&PostParams::default(), &config_map("limits", json!({}), json!({"maxKeys": "1"}))).await.unwrap();
    apply(
        &cluster,
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: max-keys}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [configmaps]}
    objectSelector: {matchLabels: {limited: "true"}}
  validations:
  - expression: "!has(object.data) || size(object.data) <= int(params.data.maxKeys)"
    messageExpression: "'at most ' + params.data.maxKeys + ' keys'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: max-keys}
spec:
  policyName: max-keys
  validationActions: [Deny]
  paramRef: {name: limits, namespace: default, parameterNotFoundAction: Deny}
"#,
    )
    .await;
    let status = status_of(
        maps.create(
            &PostParams::default(),
            &config_map("big", json!({"limited": "true"}), json!({"a": "1", "b": "2"})),
        )
        .await,
    );
    assert!(status.message.ends_with("denied request: at most 1 keys"), "{}", status.message);
    maps.create(&PostParams::default(), &config_map("small", json!({"limited": "true"}), json!({"a": "1"})))
        .await
        .unwrap();

    maps.delete("limits", &DeleteParams::default()).await.unwrap();
    let status =
        status_of(maps.create(&PostParams::default(), &config_map("any", json!({"limited": "true"}), json!({}))).await);
    assert!(
        status
            .message
            .ends_with("denied request: no params found for policy binding with `Deny` parameterNotFoundAction"),
        "{}",
        status.message
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_bindings_admit_with_a_warning() {
    let cluster = support::cluster().await;
    apply(
        &cluster,
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: named-keys}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - {expression: "has(object.data) && 'owner' in object.data", message: every configmap needs an owner}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: named-keys}
spec: {policyName: named-keys, validationActions: [Warn]}
"#,
    )
    .await;
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ownerless}\ndata: {a: b}\n";
    let out = support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(manifest), &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(
            "Warning: Validation failed for ValidatingAdmissionPolicy 'named-keys' with binding 'named-keys': every configmap needs an owner"
        ),
        "{out:?}"
    );
    cluster.shutdown().await.unwrap();
}
