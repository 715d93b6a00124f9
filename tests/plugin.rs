//! The `kubectl-review` binary against a dev cluster with the CRDs applied.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

use std::path::Path;

use devcluster::faults::FaultTarget;
use devcluster::{ApiError, DevCluster};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use review_operator::api::{ReviewRun, Reviewer, RunPhase, Verdict};
use serde_json::{Value, json};
use support::Output;

const PR: &str = "https://github.com/acme/widgets/pull/7";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

async fn cluster() -> (DevCluster, Client) {
    let cluster = support::cluster().await;
    let client = cluster.client().expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [ReviewRun::crd(), Reviewer::crd()] {
        crds.create(&PostParams::default(), &crd).await.expect("CRD created");
    }
    let runs: Api<ReviewRun> = Api::default_namespaced(client.clone());
    support::eventually("the ReviewRun resource is served", || async { runs.list(&Default::default()).await.ok() })
        .await;
    (cluster, client)
}

/// Runs `program` with the cluster's kubeconfig and no pod identity.
async fn run_program(
    cluster: &DevCluster,
    program: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .env("HOME", std::env::temp_dir())
        .env_remove("POD_UID")
        .env_remove("REVIEW_INCARNATION")
        .env_remove("REVIEW_NAMESPACE");
    for (key, value) in env {
        cmd.env(key, value);
    }
    support::run_command(cmd, stdin).await
}

async fn plugin(cluster: &DevCluster, args: &[&str]) -> Output {
    plugin_with(cluster, args, None, &[]).await
}

async fn plugin_with(cluster: &DevCluster, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    run_program(cluster, Path::new(env!("CARGO_BIN_EXE_kubectl-review")), args, stdin, env).await
}

/// Triggers the run for PR/SHA and returns its name.
async fn trigger(cluster: &DevCluster) -> String {
    let out =
        plugin(cluster, &["trigger", "--reviewer", "review-w1", "--pr", PR, "--sha", SHA, "--number", "7"]).await.ok();
    out.trim()
        .strip_prefix("reviewrun.review.ao.dev/")
        .and_then(|rest| rest.strip_suffix(" created"))
        .expect(&out)
        .to_owned()
}

/// Sets the status as the controller would.
async fn set_status(client: &Client, name: &str, status: Value) -> ReviewRun {
    let runs: Api<ReviewRun> = Api::default_namespaced(client.clone());
    let params = PatchParams::apply("review-operator").force();
    let patch = json!({"apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun", "status": status});
    runs.patch_status(name, &params, &Patch::Apply(patch)).await.expect("status set")
}

fn running() -> Value {
    json!({"phase": "Running", "assignment": {"pod": "review-w1-2", "podUID": "uid-2", "incarnation": 2},
        "startTime": "2026-01-01T00:00:00Z"})
}

async fn get(client: &Client, name: &str) -> ReviewRun {
    Api::<ReviewRun>::default_namespaced(client.clone()).get(name).await.expect("run exists")
}

#[tokio::test]
async fn trigger_twice_is_idempotent_and_rerun_makes_a_new_run() {
    let (cluster, client) = cluster().await;
    let name = trigger(&cluster).await;
    assert!(name.starts_with("review-w1-") && name.ends_with("-0123456"), "{name}");
    let run = get(&client, &name).await;
    assert_eq!(run.spec.pull_request.url, PR);
    assert_eq!(run.spec.pull_request.head_sha, SHA);
    assert_eq!(run.spec.pull_request.number, Some(7));
    let again = plugin(&cluster, &["trigger", "--reviewer", "review-w1", "--pr", PR, "--sha", SHA]).await.ok();
    assert_eq!(again, format!("reviewrun.review.ao.dev/{name} unchanged (phase Pending, verdict -)\n"));
    assert_eq!(get(&client, &name).await.metadata.resource_version, run.metadata.resource_version);
    let rerun =
        plugin(&cluster, &["trigger", "--reviewer", "review-w1", "--pr", PR, "--sha", SHA, "--rerun"]).await.ok();
    assert!(
        rerun.starts_with(&format!("reviewrun.review.ao.dev/{name}-r")) && rerun.ends_with(" created\n"),
        "{rerun}"
    );
    let runs = Api::<ReviewRun>::default_namespaced(client.clone()).list(&Default::default()).await.unwrap();
    assert_eq!(runs.items.len(), 2);
}

#[tokio::test]
async fn trigger_input_errors_are_reported_before_any_write() {
    let (cluster, client) = cluster().await;
    let err = plugin(&cluster, &["trigger", "--reviewer", "review-w1", "--pr", PR, "--sha", "XYZ"]).await.failed();
    assert!(err.contains("error: --sha \"XYZ\" is not a commit SHA"), "{err}");
    let err =
        plugin(&cluster, &["trigger", "--reviewer", "review-w1", "--pr", "not-a-url", "--sha", SHA]).await.failed();
    assert!(err.contains("error: --pr \"not-a-url\" is not a pull request URL"), "{err}");
    let runs = Api::<ReviewRun>::default_namespaced(client).list(&Default::default()).await.unwrap();
    assert!(runs.items.is_empty());
}

#[tokio::test]
async fn submit_input_errors_name_the_problem_and_change_nothing() {
    let (cluster, client) = cluster().await;
    let name = trigger(&cluster).await;
    let before = set_status(&client, &name, running()).await.metadata.resource_version;
    let err = plugin(&cluster, &["submit", &name, "--verdict", "lgtm"]).await.failed();
    assert!(err.contains("error: unknown verdict \"lgtm\": expected one of approved, changes-requested"), "{err}");
    let err = plugin(&cluster, &["submit", &name, "--verdict", "changes-requested"]).await.failed();
    assert!(err.contains("error: --verdict changes-requested needs a review body"), "{err}");
    let err = plugin_with(
        &cluster,
        &["submit", &name, "--verdict", "changes-requested", "--body-file", "-"],
        Some("  \n"),
        &[],
    )
    .await
    .failed();
    assert!(err.contains("needs a review body"), "{err}");
    let err = plugin(&cluster, &["submit", "no-such-run", "--verdict", "approved"]).await.failed();
    assert!(err.contains("error: run no-such-run not found in namespace default"), "{err}");
    assert_eq!(get(&client, &name).await.metadata.resource_version, before);
}

#[tokio::test]
async fn submit_lands_once_and_identical_resubmits_are_idempotent() {
    let (cluster, client) = cluster().await;
    let name = trigger(&cluster).await;
    set_status(&client, &name, running()).await;
    let args = ["submit", name.as_str(), "--verdict", "changes-requested", "--body-file", "-", "--review-id", "42"];
    let out = plugin_with(&cluster, &args, Some("Add a test."), &[]).await.ok();
    assert_eq!(out, format!("run {name} submitted: ChangesRequested\n"));
    let run = get(&client, &name).await;
    let status = run.status.clone().unwrap();
    assert_eq!(status.phase, Some(RunPhase::Succeeded));
    assert_eq!(status.reason.map(|r| r.as_str()), Some("Submitted"));
    assert!(status.completion_time.is_some());
    let result = status.result.unwrap();
    assert_eq!(
        (result.verdict, result.body.as_str(), result.review_id.as_deref()),
        (Verdict::ChangesRequested, "Add a test.", Some("42"))
    );

    let again = plugin_with(&cluster, &args, Some("Add a test."), &[]).await.ok();
    assert_eq!(again, format!("run {name} already submitted: ChangesRequested\n"));
    let err = plugin(&cluster, &["submit", &name, "--verdict", "approved"]).await.failed();
    assert!(
        err.contains(&format!("error: run {name} was already submitted with a different result (ChangesRequested)")),
        "{err}"
    );
    assert_eq!(get(&client, &name).await.metadata.resource_version, run.metadata.resource_version);
}

#[tokio::test]
async fn submit_retries_transient_server_errors_and_not_refusals() {
    let (cluster, client) = cluster().await;
    let name = trigger(&cluster).await;
    set_status(&client, &name, running()).await;
    let status_patch = || FaultTarget::new("patch", "reviewruns").subresource("status");
    let faults = &cluster.server().faults;
    faults.fail_next(status_patch(), 1, ApiError::new(500, "InternalError", "injected: restarting"));
    faults.fail_next(status_patch(), 1, ApiError::new(502, "InternalError", "injected: no upstream"));
    let out = plugin(&cluster, &["submit", &name, "--verdict", "approved"]).await;
    assert_eq!(out.stderr.matches("trying again").count(), 2, "{} {}", out.stdout, out.stderr);
    assert!(out.stderr.contains("injected: restarting"), "{}", out.stderr);
    assert_eq!(out.ok(), format!("run {name} submitted: Approved\n"));
    assert_eq!(get(&client, &name).await.phase(), RunPhase::Succeeded);

    let other = plugin(&cluster, &["trigger", "--reviewer", "review-w1", "--pr", PR, "--sha", &SHA.replace('0', "f")])
        .await
        .ok();
    let other = other.trim().strip_prefix("reviewrun.review.ao.dev/").and_then(|r| r.strip_suffix(" created")).unwrap();
    set_status(&client, other, running()).await;
    faults.fail_next(status_patch(), 1, ApiError::new(403, "Forbidden", "injected: not yours"));
    let err = plugin(&cluster, &["submit", other, "--verdict", "approved"]).await.failed();
    assert!(err.contains("injected: not yours") && !err.contains("trying again"), "{err}");
    assert_eq!(get(&client, other).await.phase(), RunPhase::Running);
}

#[tokio::test]
async fn submit_for_a_superseded_run_says_why_and_changes_nothing() {
    let (cluster, client) = cluster().await;
    let name = trigger(&cluster).await;
    set_status(&client, &name, running()).await;
    let failed = json!({"phase": "Failed", "reason": "Superseded", "supersededBy": "review-w1-newer",
        "assignment": {"pod": "review-w1-2", "podUID": "uid-2", "incarnation": 2}});
    let before = set_status(&client, &name, failed).await.metadata.resource_version;
    let err = plugin(&cluster, &["submit", &name, "--verdict", "approved"]).await.failed();
    assert!(err.contains(&format!("error: run {name} is no longer running: Superseded by review-w1-newer")), "{err}");
    assert_eq!(get(&client, &name).await.metadata.resource_version, before);
}

#[tokio::test]
async fn submit_inside_a_pod_requires_the_assignment() {
    let (cluster, client) = cluster().await;
    let name = trigger(&cluster).await;
    let before = set_status(&client, &name, running()).await.metadata.resource_version;
    let other_pod = [("POD_UID", "uid-9"), ("REVIEW_INCARNATION", "3"), ("REVIEW_NAMESPACE", "default")];
    let err = plugin_with(&cluster, &["submit", &name, "--verdict", "approved"], None, &other_pod).await.failed();
    assert!(
        err.contains(&format!("error: run {name} is assigned to pod review-w1-2 (incarnation 2), not to this pod")),
        "{err}"
    );
    assert_eq!(get(&client, &name).await.metadata.resource_version, before);

    // The same code as `review-operator submit`, from the assigned pod.
    let assigned = [("POD_UID", "uid-2"), ("REVIEW_INCARNATION", "2"), ("REVIEW_NAMESPACE", "default")];
    let operator = Path::new(env!("CARGO_BIN_EXE_review-operator"));
    let out = run_program(&cluster, operator, &["submit", &name, "--verdict", "approved"], None, &assigned).await.ok();
    assert_eq!(out, format!("run {name} submitted: Approved\n"));
    assert_eq!(get(&client, &name).await.phase(), RunPhase::Succeeded);
}

#[tokio::test]
async fn cancel_requests_cancellation() {
    let (cluster, client) = cluster().await;
    let name = trigger(&cluster).await;
    let out = plugin(&cluster, &["cancel", &name]).await.ok();
    assert_eq!(out, format!("reviewrun.review.ao.dev/{name} cancel requested\n"));
    assert!(get(&client, &name).await.spec.cancel_requested);
    let err = plugin(&cluster, &["cancel", "no-such-run"]).await.failed();
    assert!(err.contains("error: run no-such-run not found in namespace default"), "{err}");
}

/// `kubectl review ...` finds the plugin on PATH, as kubectl plugins are found.
async fn kubectl_review(cluster: &DevCluster, args: &[&str]) -> Output {
    let plugin_dir = Path::new(env!("CARGO_BIN_EXE_kubectl-review")).parent().expect("binary folder");
    let path = format!("{}:{}", plugin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut all = vec!["review"];
    all.extend_from_slice(args);
    run_program(cluster, &support::kubectl_path(), &all, None, &[("PATH", &path)]).await
}

#[tokio::test]
async fn kubectl_review_get_and_status_work_through_kubectl() {
    let (cluster, client) = cluster().await;
    let empty = kubectl_review(&cluster, &["get"]).await.ok();
    assert_eq!(empty, "No resources found in default namespace.\n");
    let name = trigger(&cluster).await;
    set_status(&client, &name, running()).await;
    let table = kubectl_review(&cluster, &["get"]).await.ok();
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [
            vec!["NAME", "PR", "SHA", "PHASE", "VERDICT", "CURRENT"],
            vec![name.as_str(), "#7", "0123456", "Running", "-", "-"]
        ]
    );

    let reviewers: Api<Reviewer> = Api::default_namespaced(client.clone());
    let reviewer: Reviewer = serde_json::from_value(json!({
        "apiVersion": "review.ao.dev/v1alpha1", "kind": "Reviewer",
        "metadata": {"name": "review-w1"},
        "spec": {"workerId": "w1", "agent": {"image": "img", "command": ["agent"]}}
    }))
    .unwrap();
    reviewers.create(&PostParams::default(), &reviewer).await.unwrap();
    let status = json!({"apiVersion": "review.ao.dev/v1alpha1", "kind": "Reviewer", "status": {
        "pod": {"name": "review-w1-2", "uid": "uid-2", "incarnation": 2}, "incarnation": 2, "restarts": 1,
        "queue": [name.clone()], "queueLength": 1,
        "lastRestart": {"time": "2026-01-01T00:00:00Z", "reason": "Superseded", "runs": ["review-w1-old"]}}});
    reviewers
        .patch_status("review-w1", &PatchParams::apply("review-operator").force(), &Patch::Apply(status))
        .await
        .unwrap();
    let report = kubectl_review(&cluster, &["status", "review-w1"]).await.ok();
    assert!(report.contains("Pod:          review-w1-2 (uid uid-2)\n"), "{report}");
    assert!(report.contains("Last restart: 2026-01-01T00:00:00Z Superseded (runs: review-w1-old)\n"), "{report}");
    assert!(report.contains(&format!("  1.   {name}   #7   0123456   Running\n")), "{report}");
    assert!(report.contains(&format!("  {PR}   0123456   {name}   Running\n")), "{report}");
    let err = kubectl_review(&cluster, &["status", "review-w9"]).await.failed();
    assert!(err.contains("error: reviewer review-w9 not found in namespace default"), "{err}");
}

#[tokio::test]
async fn kubectl_explain_documents_lineage_and_the_creation_revision() {
    let (cluster, _client) = cluster().await;
    let out = support::kubectl(&cluster, &["explain", "reviewrun.spec.pullRequest.previousHeadSha"]).await.ok();
    assert!(out.contains("FIELD: previousHeadSha <string>"), "{out}");
    assert!(out.contains("The head the pull request had before the push this run reviews (a"), "{out}");
    assert!(out.contains("(a force-push back to"), "{out}");
    let out = support::kubectl(&cluster, &["explain", "reviewrun.status.creationRevision"]).await.ok();
    assert!(out.contains("same second"), "{out}");
}

#[tokio::test]
async fn trigger_fills_in_the_previous_head_and_keeps_replays_late() {
    let (cluster, _client) = cluster().await;
    let first = trigger(&cluster).await;
    let newer = "fedcba9876543210fedcba9876543210fedcba98";
    let args = ["trigger", "--reviewer", "review-w1", "--pr", PR, "--sha", newer];
    let out = plugin(&cluster, &args).await.ok();
    let second = out.trim().strip_prefix("reviewrun.review.ao.dev/").and_then(|r| r.strip_suffix(" created")).unwrap();
    let client = cluster.client().unwrap();
    let run = get(&client, second).await;
    assert_eq!(run.spec.pull_request.previous_head_sha.as_deref(), Some(SHA), "onto the head the cluster shows");
    // Triggering the first SHA again is a replay: no lineage, so it cannot move the head back.
    let again = plugin(&cluster, &["trigger", "--reviewer", "review-w1", "--pr", PR, "--sha", SHA]).await.ok();
    assert!(again.contains(&format!("{first} unchanged")), "{again}");
    let rerun =
        plugin(&cluster, &["trigger", "--reviewer", "review-w1", "--pr", PR, "--sha", SHA, "--rerun"]).await.ok();
    let rerun = rerun.trim().strip_prefix("reviewrun.review.ao.dev/").and_then(|r| r.strip_suffix(" created")).unwrap();
    assert_eq!(get(&client, rerun).await.spec.pull_request.previous_head_sha, None);
    // --previous-sha errors name the flag and create nothing.
    let err =
        plugin(&cluster, &["trigger", "--reviewer", "review-w1", "--pr", PR, "--sha", newer, "--previous-sha", newer])
            .await
            .failed();
    assert!(err.contains("--previous-sha") && err.contains("must differ from --sha"), "{err}");
}
