//! X.509 client authentication: certificates signed by the cluster's CA authenticate as their
//! subject (common name as the user, organizations as groups) for kubectl and kube-rs, RBAC
//! applies to them, and a certificate from another authority is refused.

mod support;

use std::path::PathBuf;

use devcluster::DevCluster;
use support::{Output, kubectl_with, run_command};

fn kubeconfig_for(cluster: &DevCluster, user: &str, groups: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("kubeconfig");
    let certificate = cluster.client_certificate(user, groups).expect("a client certificate");
    cluster.kubeconfig_for_certificate(&certificate, "default", &path).expect("a kubeconfig");
    (dir, path)
}

async fn kubectl_as(kubeconfig: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(support::kubectl_path());
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd.env("HOME", std::env::temp_dir()).env("KUBECACHEDIR", kubeconfig.with_file_name("cache"));
    run_command(cmd, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_whoami_names_the_certificates_subject() {
    let cluster = support::cluster().await;
    let (_dir, kubeconfig) = kubeconfig_for(&cluster, "jane", &["dev", "ops"]);
    let out = kubectl_as(&kubeconfig, &["auth", "whoami", "-o", "json"]).await.ok();
    let review: serde_json::Value = serde_json::from_str(&out).expect("a SelfSubjectReview");
    assert_eq!(review["status"]["userInfo"]["username"], "jane");
    assert_eq!(review["status"]["userInfo"]["groups"], serde_json::json!(["dev", "ops", "system:authenticated"]));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_applies_to_certificate_users_by_name_and_group() {
    let cluster = support::cluster().await;
    let (_dir, kubeconfig) = kubeconfig_for(&cluster, "jane", &["dev"]);
    let denied = kubectl_as(&kubeconfig, &["get", "configmaps"]).await.failed();
    assert!(denied.contains(r#"User "jane" cannot list resource "configmaps""#), "{denied}");
    let binding = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "dev-view", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "dev"}]}"#;
    kubectl_with(&cluster, &["apply", "-f", "-"], Some(binding), &[]).await.ok();
    let allowed = kubectl_as(&kubeconfig, &["get", "configmaps", "-o", "name"]).await.ok();
    assert!(allowed.contains("configmap/kube-root-ca.crt"), "{allowed}");
    let can = kubectl_as(&kubeconfig, &["auth", "can-i", "delete", "configmaps"]).await;
    assert_eq!(can.stdout.trim(), "no", "{can:?}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_clients_authenticate_with_a_client_certificate() {
    let cluster = support::cluster().await;
    let (_dir, kubeconfig) = kubeconfig_for(&cluster, "system:node:dev", &["system:nodes"]);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).expect("a kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("a client configuration");
    let client = kube::Client::try_from(config).expect("a client");
    let request = axum::http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header("content-type", "application/json")
        .body(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec())
        .expect("a request");
    let review: serde_json::Value = client.request(request).await.expect("a SelfSubjectReview");
    assert_eq!(review["status"]["userInfo"]["username"], "system:node:dev");
    assert_eq!(review["status"]["userInfo"]["groups"], serde_json::json!(["system:nodes", "system:authenticated"]));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_authority_is_refused() {
    let cluster = support::cluster().await;
    let (_, stranger) = devcluster::tls::generate_with([127, 0, 0, 1].into(), None).expect("another authority");
    let certificate = stranger
        .sign_client("mallory", &["system:masters"], std::time::Duration::from_secs(60))
        .expect("a certificate");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.kubeconfig_for_certificate(&certificate, "default", &kubeconfig).expect("a kubeconfig");
    let refused = kubectl_as(&kubeconfig, &["get", "configmaps"]).await.failed();
    assert!(!refused.contains("kube-root-ca.crt"), "{refused}");
    assert!(refused.contains("certificate") || refused.contains("tls"), "{refused}");
    // The server kept serving everyone else.
    support::kubectl(&cluster, &["get", "namespaces"]).await.ok();
    cluster.shutdown().await.unwrap();
}
