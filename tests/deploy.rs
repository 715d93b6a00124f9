//! `deploy/` as a real cluster takes it: `kubectl apply -k deploy/ --server-side --validate=strict`
//! against a fresh dev cluster accepts every object.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

mod harness;

/// Every object in `deploy/` (and `crds/`, which it includes), as kubectl names them.
const OBJECTS: [&str; 23] = [
    "namespace/review-system",
    "customresourcedefinition.apiextensions.k8s.io/reviewers.review.ao.dev",
    "customresourcedefinition.apiextensions.k8s.io/reviewruns.review.ao.dev",
    "customresourcedefinition.apiextensions.k8s.io/reviewtranscripts.review.ao.dev",
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
    "validatingadmissionpolicy.admissionregistration.k8s.io/review-operator-transcripts",
    "validatingadmissionpolicybinding.admissionregistration.k8s.io/review-operator-transcripts",
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
            "crd/reviewtranscripts.review.ao.dev",
            "validatingadmissionpolicy/review-operator-transcripts",
            "validatingadmissionpolicybinding/review-operator-transcripts",
            "-o",
            "name",
        ],
    )
    .await
    .ok();
    assert_eq!(cluster_scoped.lines().count(), 10, "{cluster_scoped}");

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

/// The controller's Deployment as a real kubelet takes it. The dev kubelet checks `runAsNonRoot`
/// against the image's user, which it takes from its image catalog: here the operator image with
/// the Dockerfile's `USER`. A pod of the Deployment's template (the image's entrypoint being this
/// build's binary) runs and becomes the leader under its own ServiceAccount; the same pod
/// without the numeric `runAsUser` still runs on the image's numeric user, and is refused for
/// an image whose user is a name.
#[tokio::test]
async fn the_controller_deployment_runs_under_its_security_context_on_a_verifying_kubelet() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{EnvVar, Pod};
    use kube::api::{Api, ObjectMeta, PostParams};

    let user = include_str!("../Dockerfile")
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("the Dockerfile sets a user")
        .trim();
    let images = devcluster::runner::images::ImageCatalog::default()
        .with("review-operator:0.1.0", user)
        .with("review-operator-named-user", "nonroot:nonroot");
    let runner = devcluster::runner::RunnerSettings { images, ..Default::default() };
    let cluster = devcluster::DevCluster::start(devcluster::Config { runner, ..Default::default() })
        .await
        .expect("dev cluster starts");
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    support::kubectl(&cluster, &["apply", "-k", deploy, "--server-side"]).await.ok();

    let client = cluster.client().expect("client");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "review-system");
    let template = deployments.get("review-operator").await.expect("Deployment").spec.template;
    let pod_of_template = |name: &str, image: &str, numeric_user: bool| {
        let mut spec = template.spec.clone().expect("pod spec");
        let container = &mut spec.containers[0];
        container.image = Some(image.into());
        // The image's ENTRYPOINT is this binary; the dev kubelet runs processes on the host's
        // network, so the probes' port is taken from the environment.
        container.command = Some(vec![env!("CARGO_BIN_EXE_review-operator").into()]);
        let listen =
            EnvVar { name: "REVIEW_OPERATOR_LISTEN".into(), value: Some("127.0.0.1:0".into()), value_from: None };
        container.env.get_or_insert_with(Vec::new).push(listen);
        if !numeric_user {
            let security = spec.security_context.as_mut().expect("pod security context");
            (security.run_as_user, security.run_as_group) = (None, None);
        }
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "review-system");
    for pod in [
        pod_of_template("controller", "review-operator:0.1.0", true),
        pod_of_template("image-user", "review-operator:0.1.0", false),
        pod_of_template("named-user", "review-operator-named-user:0.1.0", false),
    ] {
        pods.create(&PostParams::default(), &pod).await.expect("pod created");
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), "review-system");
    let holder = support::eventually("a controller pod holds the Lease", || async {
        let lease = leases.get("review-operator").await.ok()?;
        lease.spec?.holder_identity
    })
    .await;
    assert!(["controller", "image-user"].contains(&holder.as_str()), "{holder}");
    for running in ["controller", "image-user"] {
        support::eventually(&format!("pod {running} running"), || async {
            let status = pods.get(running).await.ok()?.status?;
            (status.phase.as_deref() == Some("Running")).then_some(())
        })
        .await;
    }
    let refused = support::eventually("pod named-user refused", || async {
        let status = pods.get("named-user").await.ok()?.status?.container_statuses?.into_iter().next()?;
        status.state?.waiting.filter(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
    })
    .await;
    let message = refused.message.unwrap_or_default();
    assert!(
        message.contains(
            "container has runAsNonRoot and image has non-numeric user (nonroot), cannot verify user is non-root"
        ),
        "{message}"
    );
    cluster.shutdown().await.expect("cluster shuts down");
}

/// The README's uninstall order: Reviewers first, while the controller runs (their finalizer
/// lets it remove the reviewer pods and fail unfinished runs), then `kubectl delete -k deploy/`,
/// which completes because no finalizer is left for an absent controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_in_the_documented_order_completes() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    use review_operator::api::{ReviewRun, RunReason};

    let cluster = support::cluster_without_pods().await;
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    support::kubectl(&cluster, &["apply", "-k", deploy, "--server-side"]).await.ok();
    let controller = harness::RunningController::start(cluster.client().expect("client"));
    let objects = r#"
apiVersion: review.ao.dev/v1alpha1
kind: Reviewer
metadata: {name: review-w1, namespace: default}
spec: {workerId: w1, agent: {image: ghcr.io/acme/reviewer:1, command: [reviewer]}}
---
apiVersion: review.ao.dev/v1alpha1
kind: ReviewRun
metadata: {name: review-w1-pr1-aaaaaaa, namespace: default}
spec: {reviewer: review-w1, pullRequest: {url: "https://github.com/acme/widgets/pull/1", headSha: aaaaaaa1111111}}
"#;
    support::eventually("the review API is served", || async {
        let out = support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(objects), &[]).await;
        (out.code == 0).then_some(())
    })
    .await;
    let client = cluster.client().expect("client");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    support::eventually("the reviewer pod and the finalizer", || async {
        let finalizers = support::kubectl(
            &cluster,
            &["get", "reviewer", "review-w1", "-n", "default", "-o", "jsonpath={.metadata.finalizers}"],
        )
        .await;
        let pod = pods.list(&ListParams::default()).await.ok()?.items.into_iter().next();
        (finalizers.stdout.contains("review.ao.dev/reviewer") && pod.is_some()).then_some(())
    })
    .await;

    support::kubectl(&cluster, &["delete", "reviewers", "--all", "-A", "--wait", "--timeout=60s"]).await.ok();
    let runs: Api<ReviewRun> = Api::default_namespaced(client.clone());
    let run = runs.get("review-w1-pr1-aaaaaaa").await.expect("the run stays");
    assert_eq!(run.status.and_then(|s| s.reason), Some(RunReason::ReviewerDeleted));
    support::eventually("the reviewer pod removed", || async {
        pods.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await;
    controller.stop().await;

    support::kubectl(&cluster, &["delete", "-k", deploy, "--ignore-not-found", "--wait", "--timeout=60s"]).await.ok();
    let crds = support::kubectl(&cluster, &["get", "crd", "-o", "name"]).await.ok();
    assert!(!crds.contains("review.ao.dev"), "{crds}");
    let left = support::kubectl(&cluster, &["get", "namespace", "review-system", "--ignore-not-found"]).await.ok();
    assert_eq!(left, "", "the namespace is gone");
}

/// `examples/github-delivery` mounts the GitHub credential into the controller only; the
/// reviewer ServiceAccount cannot read it, nor any Secret.
#[tokio::test]
async fn the_github_secret_reaches_the_controller_only() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::Api;

    let cluster = support::cluster_without_pods().await;
    let overlay = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/github-delivery");
    support::kubectl(&cluster, &["apply", "-k", overlay, "--server-side"]).await.ok();
    support::kubectl(
        &cluster,
        &["create", "secret", "generic", "review-operator-github", "-n", "review-system", "--from-literal=token=ghp_x"],
    )
    .await
    .ok();
    support::namespace(&cluster, "demo").await;
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/reviewer-rolebinding-demo.yaml");
    support::kubectl(&cluster, &["apply", "-f", demo, "--server-side"]).await.ok();

    let client = cluster.client().expect("client");
    let deployment =
        Api::<Deployment>::namespaced(client, "review-system").get("review-operator").await.expect("Deployment");
    let spec = deployment.spec.template.spec.expect("pod spec");
    let volume = spec.volumes.iter().flatten().find(|v| v.name == "github").expect("the github volume");
    assert_eq!(volume.secret.as_ref().and_then(|s| s.secret_name.as_deref()), Some("review-operator-github"));
    let env = spec.containers[0].env.clone().unwrap_or_default();
    let token_file = env.iter().find(|e| e.name == "REVIEW_OPERATOR_GITHUB_TOKEN_FILE").and_then(|e| e.value.clone());
    assert_eq!(token_file.as_deref(), Some("/etc/review-operator/github/token"));

    let reviewer = support::service_account_token(&cluster, "demo", "review-agent", Some(("review-w1-1", "uid-1")));
    let as_reviewer = support::client_with_token(&cluster, Some(&reviewer));
    for namespace in ["review-system", "demo"] {
        let secrets: Api<Secret> = Api::namespaced(as_reviewer.clone(), namespace);
        let denied = secrets.get("review-operator-github").await.expect_err("the reviewer cannot read Secrets");
        assert!(matches!(&denied, kube::Error::Api(status) if status.code == 403), "{denied}");
        let listed = secrets.list(&Default::default()).await.expect_err("nor list them");
        assert!(matches!(&listed, kube::Error::Api(status) if status.code == 403), "{listed}");
    }
}
