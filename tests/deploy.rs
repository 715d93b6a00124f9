//! `deploy/` as a real cluster takes it: `kubectl apply -k deploy/ --server-side --validate=strict`
//! against a fresh dev cluster accepts every object.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

/// Every object in `deploy/` (and `crds/`, which it includes), as kubectl names them.
const OBJECTS: [&str; 20] = [
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
    "flowschema.flowcontrol.apiserver.k8s.io/review-operator-leader-election",
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

    // A server-side dry run of the installed kustomization is accepted, and changes nothing.
    let dry_run = support::kubectl(&cluster, &["apply", "-k", deploy, "--server-side", "--dry-run=server"]).await;
    assert_eq!(dry_run.stderr, "", "no warnings or errors");
    assert_eq!(dry_run.ok().lines().count(), OBJECTS.len());
    let schema = support::kubectl(
        &cluster,
        &[
            "get",
            "flowschema/review-operator-leader-election",
            "-o",
            "jsonpath={.spec.priorityLevelConfiguration.name}",
        ],
    )
    .await
    .ok();
    assert_eq!(schema, "leader-election");

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

/// An overlay that moves `deploy/` to another namespace and prefixes its names: the admission
/// policy still exempts the controller's own ServiceAccount, now `team-ops/acme-review-operator`,
/// and still denies a reviewer's write for a run that is not its own.
#[tokio::test]
async fn the_admission_policy_follows_the_controller_through_a_renaming_overlay() {
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use serde_json::json;

    let cluster = support::cluster().await;
    let overlay = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/overlays/renamed");
    support::kubectl(&cluster, &["apply", "-k", overlay, "--server-side"]).await.ok();
    let subject = support::kubectl(
        &cluster,
        &[
            "get",
            "flowschema/acme-review-operator-leader-election",
            "-o",
            "jsonpath={.spec.rules[0].subjects[0].serviceAccount.namespace}/{.spec.rules[0].subjects[0].serviceAccount.name}",
        ],
    )
    .await
    .ok();
    assert_eq!(subject, "team-ops/acme-review-operator", "the FlowSchema follows the ServiceAccount");
    support::namespace(&cluster, "team").await;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "review-agent", "namespace": "team"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "acme-review-operator-reviewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "review-agent", "namespace": "team"}],
    });
    support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(&binding.to_string()), &[]).await.ok();

    let resource = kube::api::ApiResource {
        group: "review.ao.dev".into(),
        version: "v1alpha1".into(),
        api_version: "review.ao.dev/v1alpha1".into(),
        kind: "ReviewRun".into(),
        plural: "reviewruns".into(),
    };
    let runs_as =
        |client: kube::Client| -> Api<kube::api::DynamicObject> { Api::namespaced_with(client, "team", &resource) };
    let runs = runs_as(cluster.client().expect("client"));
    let run = json!({
        "apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun", "metadata": {"name": "r1"},
        "spec": {"reviewer": "review-w1", "pullRequest": {"url": "https://github.com/a/b/pull/1", "headSha": "abcdef1"}},
    });
    let run: kube::api::DynamicObject = serde_json::from_value(run).expect("a run");
    support::eventually("the ReviewRun API is served", || {
        let (runs, run) = (runs.clone(), &run);
        async move { runs.create(&PostParams::default(), run).await.ok() }
    })
    .await;
    let running = json!({"status": {"phase": "Running",
        "assignment": {"pod": "review-w1-1", "podUID": "uid-1", "incarnation": 1}}});
    runs.patch_status("r1", &PatchParams::default(), &Patch::Merge(&running)).await.expect("admin writes status");

    // A reviewer pod that is not the assigned one is denied by the policy.
    let reviewer = support::service_account_token(&cluster, "team", "review-agent", Some(("review-w1-9", "uid-9")));
    let verdict = json!({"status": {"phase": "Succeeded", "reason": "Submitted",
        "result": {"verdict": "Approved", "body": "", "submittedAt": "2026-01-01T00:00:00Z"}}});
    let denied = runs_as(support::client_with_token(&cluster, Some(&reviewer)))
        .patch_status("r1", &PatchParams::default(), &Patch::Merge(&verdict))
        .await
        .expect_err("another pod's verdict is denied");
    assert!(denied.to_string().contains("only that pod may submit its verdict"), "{denied}");

    // The renamed controller moves the run through any phase.
    let controller = support::service_account_token(
        &cluster,
        "team-ops",
        "acme-review-operator",
        Some(("acme-review-operator-0", "c")),
    );
    let failed = json!({"status": {"phase": "Failed", "reason": "Superseded", "supersededBy": "r2"}});
    runs_as(support::client_with_token(&cluster, Some(&controller)))
        .patch_status("r1", &PatchParams::default(), &Patch::Merge(&failed))
        .await
        .expect("the controller's write is accepted");
}
