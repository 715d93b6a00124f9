//! `deploy/reviewer-rbac.yaml` grants reviewer pods exactly what they need.

use serde_json::json;

#[test]
fn reviewer_role_reads_runs_and_reviewers_patches_run_status_and_writes_transcripts_only() {
    let role: serde_json::Value = serde_yaml::from_str(include_str!("../deploy/reviewer-rbac.yaml")).unwrap();
    assert_eq!(role["kind"], "ClusterRole");
    assert_eq!(role["metadata"]["name"], "review-operator-reviewer");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["review.ao.dev"], "resources": ["reviewruns", "reviewers"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["review.ao.dev"], "resources": ["reviewruns/status"], "verbs": ["patch"]},
            // Which transcript, its own pod's only, the admission policy decides.
            {"apiGroups": ["review.ao.dev"], "resources": ["reviewtranscripts"], "verbs": ["get", "create", "patch"]},
        ])
    );
    let binding: Vec<serde_json::Value> =
        serde_yaml::Deserializer::from_str(include_str!("../examples/reviewer-rolebinding-demo.yaml"))
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect();
    assert_eq!(binding[1]["roleRef"]["name"], "review-operator-reviewer");
    assert_eq!(
        binding[1]["subjects"][0],
        json!({"kind": "ServiceAccount", "name": "review-agent", "namespace": "demo"})
    );
}

#[test]
fn webhook_role_creates_reads_and_cancels_runs_and_reads_reviewers_only() {
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(include_str!("../deploy/webhook.yaml"))
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    let role = docs.iter().find(|doc| doc["kind"] == "ClusterRole").unwrap();
    assert_eq!(role["metadata"]["name"], "review-operator-webhook");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["review.ao.dev"], "resources": ["reviewruns"], "verbs": ["create", "get", "list", "patch"]},
            {"apiGroups": ["review.ao.dev"], "resources": ["reviewers"], "verbs": ["get", "list", "watch"]},
        ])
    );
    let binding = docs.iter().find(|doc| doc["kind"] == "ClusterRoleBinding").unwrap();
    assert_eq!(
        binding["subjects"][0],
        json!({"kind": "ServiceAccount", "name": "review-operator-webhook", "namespace": "review-system"})
    );
    let deployment = docs.iter().find(|doc| doc["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], "review-operator-webhook");
}
