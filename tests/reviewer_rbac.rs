//! `deploy/reviewer-rbac.yaml` grants reviewer pods exactly what they need.

use serde_json::json;

#[test]
fn reviewer_role_reads_runs_and_reviewers_and_patches_run_status_only() {
    let role: serde_json::Value = serde_yaml::from_str(include_str!("../deploy/reviewer-rbac.yaml")).unwrap();
    assert_eq!(role["kind"], "ClusterRole");
    assert_eq!(role["metadata"]["name"], "review-operator-reviewer");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["review.ao.dev"], "resources": ["reviewruns", "reviewers"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["review.ao.dev"], "resources": ["reviewruns/status"], "verbs": ["patch"]},
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
