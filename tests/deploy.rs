//! `deploy/` as a real cluster takes it: `kubectl apply -k deploy/ --server-side --validate=strict`
//! against a fresh dev cluster accepts every object.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

/// Every object in `deploy/` (and `crds/`, which it includes), as kubectl names them.
const OBJECTS: [&str; 19] = [
    "namespace/review-system",
    "customresourcedefinition.apiextensions.k8s.io/reviewers.review.ao.dev",
    "customresourcedefinition.apiextensions.k8s.io/reviewruns.review.ao.dev",
    "serviceaccount/review-operator",
    "serviceaccount/review-operator-webhook",
    "clusterrole.rbac.authorization.k8s.io/review-operator-webhook",
    "clusterrolebinding.rbac.authorization.k8s.io/review-operator-webhook",
    "service/review-operator-webhook",
    "deployment.apps/review-operator-webhook",
    "role.rbac.authorization.k8s.io/review-operator-leader-election",
    "clusterrole.rbac.authorization.k8s.io/review-operator",
    "clusterrole.rbac.authorization.k8s.io/review-operator-reviewer",
    "rolebinding.rbac.authorization.k8s.io/review-operator-leader-election",
    "clusterrolebinding.rbac.authorization.k8s.io/review-operator",
    "service/review-operator-metrics",
    "deployment.apps/review-operator",
    "poddisruptionbudget.policy/review-operator",
    "validatingadmissionpolicy.admissionregistration.k8s.io/review-operator-submissions",
    "validatingadmissionpolicybinding.admissionregistration.k8s.io/review-operator-submissions",
];

#[tokio::test]
async fn deploy_kustomization_is_accepted_with_server_side_apply_and_strict_validation() {
    let cluster = support::cluster().await;
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let out = support::kubectl(&cluster, &["apply", "-k", deploy, "--server-side", "--validate=strict"]).await;
    assert_eq!(out.stderr, "", "no warnings or errors");
    let stdout = out.ok();
    let mut applied: Vec<&str> = stdout
        .lines()
        .map(|line| line.strip_suffix(" serverside-applied").unwrap_or_else(|| panic!("not applied: {line}")))
        .collect();
    applied.sort_unstable();
    let mut expected = OBJECTS.to_vec();
    expected.sort_unstable();
    assert_eq!(applied, expected, "every object of deploy/ applied");

    // Applying again changes nothing and conflicts with nothing.
    let again = support::kubectl(&cluster, &["apply", "-k", deploy, "--server-side", "--validate=strict"]).await.ok();
    assert_eq!(again.lines().count(), OBJECTS.len(), "{again}");

    let found = support::kubectl(
        &cluster,
        &[
            "get",
            "-n",
            "review-system",
            "deployment/review-operator",
            "poddisruptionbudget/review-operator",
            "service/review-operator-metrics",
            "serviceaccount/review-operator",
            "serviceaccount/review-operator-webhook",
            "clusterrole.rbac.authorization.k8s.io/review-operator-webhook",
            "clusterrolebinding.rbac.authorization.k8s.io/review-operator-webhook",
            "service/review-operator-webhook",
            "deployment.apps/review-operator-webhook",
            "role/review-operator-leader-election",
            "rolebinding/review-operator-leader-election",
            "-o",
            "name",
        ],
    )
    .await
    .ok();
    assert_eq!(
        found.lines().collect::<Vec<_>>(),
        [
            "deployment.apps/review-operator",
            "poddisruptionbudget.policy/review-operator",
            "service/review-operator-metrics",
            "serviceaccount/review-operator",
            "serviceaccount/review-operator-webhook",
            "clusterrole.rbac.authorization.k8s.io/review-operator-webhook",
            "clusterrolebinding.rbac.authorization.k8s.io/review-operator-webhook",
            "service/review-operator-webhook",
            "deployment.apps/review-operator-webhook",
            "role.rbac.authorization.k8s.io/review-operator-leader-election",
            "rolebinding.rbac.authorization.k8s.io/review-operator-leader-election",
        ]
    );
    let cluster_scoped = support::kubectl(
        &cluster,
        &[
            "get",
            "crd/reviewers.review.ao.dev",
            "crd/reviewruns.review.ao.dev",
            "clusterrole/review-operator",
            "clusterrole/review-operator-reviewer",
            "clusterrolebinding/review-operator",
            "validatingadmissionpolicy/review-operator-submissions",
            "validatingadmissionpolicybinding/review-operator-submissions",
            "-o",
            "name",
        ],
    )
    .await
    .ok();
    assert_eq!(cluster_scoped.lines().count(), 7, "{cluster_scoped}");

    // The Deployment as applied: two replicas, probes, limits, a restricted security context.
    let deployment = support::kubectl(
        &cluster,
        &[
            "get",
            "deployment/review-operator",
            "-n",
            "review-system",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.securityContext.runAsNonRoot} \
             {.spec.template.spec.containers[0].livenessProbe.httpGet.path} \
             {.spec.template.spec.containers[0].readinessProbe.httpGet.path}",
        ],
    )
    .await
    .ok();
    assert_eq!(deployment, "2 true /healthz /readyz");
}
