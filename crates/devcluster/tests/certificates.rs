//! CertificateSigningRequests through kubectl: created with a PKCS#10 request, listed with the
//! columns of a real server, approved or denied with `kubectl certificate`, issued by the client
//! signer, and the issued certificate authenticates its subject.

mod support;

use base64::Engine;
use devcluster::DevCluster;
use support::{eventually, kubectl, kubectl_with};

struct Request {
    key_pem: String,
    manifest: String,
}

/// A CSR for `user` in `groups` to `signer`, with the key that made it.
fn request(name: &str, user: &str, group: &str, signer: &str) -> Request {
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("parameters");
    params.distinguished_name.push(rcgen::DnType::CommonName, user);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, group);
    let pem = params.serialize_request(&key).expect("a request").pem().expect("PEM");
    let encoded = base64::engine::general_purpose::STANDARD.encode(pem);
    let manifest = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": encoded, "signerName": signer, "expirationSeconds": 86400,
            "usages": ["digital signature", "key encipherment", "client auth"],
            "username": "someone-else", "groups": ["system:masters"]},
    })
    .to_string();
    Request { key_pem: key.serialize_pem(), manifest }
}

async fn create(cluster: &DevCluster, request: &Request) {
    kubectl_with(cluster, &["create", "-f", "-"], Some(&request.manifest), &[]).await.ok();
}

async fn jsonpath(cluster: &DevCluster, name: &str, path: &str) -> String {
    kubectl(cluster, &["get", "csr", name, "-o", &format!("jsonpath={path}")]).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_request_is_issued_and_its_certificate_authenticates_the_subject() {
    let cluster = support::cluster().await;
    let jane = request("jane", "jane", "dev", "kubernetes.io/kube-apiserver-client");
    create(&cluster, &jane).await;
    assert_eq!(
        jsonpath(&cluster, "jane", "{.spec.username}").await,
        "kubernetes-admin",
        "the creator is the requester"
    );
    let listed = kubectl(&cluster, &["get", "csr"]).await.ok();
    let header: Vec<&str> = listed.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]);
    let row: Vec<&str> = listed.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[2..], ["kubernetes.io/kube-apiserver-client", "kubernetes-admin", "24h", "Pending"], "{listed}");

    let approved = kubectl(&cluster, &["certificate", "approve", "jane"]).await.ok();
    assert_eq!(approved.trim(), "certificatesigningrequest.certificates.k8s.io/jane approved");
    let certificate = eventually("the certificate is issued", || async {
        let issued = jsonpath(&cluster, "jane", "{.status.certificate}").await;
        (!issued.is_empty()).then_some(issued)
    })
    .await;
    let condition = kubectl(&cluster, &["get", "csr", "jane", "--no-headers"]).await.ok();
    assert!(condition.trim_end().ends_with("Approved,Issued"), "{condition}");
    let reason = jsonpath(&cluster, "jane", "{.status.conditions[0].reason}").await;
    assert_eq!(reason, "KubectlApprove");

    let cert_pem = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(certificate).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let credential = devcluster::tls::ClientCertificate { cert_pem, key_pem: jane.key_pem.clone() };
    cluster.kubeconfig_for_certificate(&credential, "default", &kubeconfig).unwrap();
    let mut cmd = tokio::process::Command::new(support::kubectl_path());
    cmd.arg("--kubeconfig").arg(&kubeconfig).args([
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    cmd.env("HOME", std::env::temp_dir()).env("KUBECACHEDIR", dir.path().join("cache"));
    let whoami = support::run_command(cmd, None).await.ok();
    assert_eq!(whoami, r#"jane ["dev","system:authenticated"]"#);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_requests_and_requests_for_other_signers_get_no_certificate() {
    let cluster = support::cluster().await;
    create(&cluster, &request("mallory", "mallory", "system:masters", "kubernetes.io/kube-apiserver-client")).await;
    let denied = kubectl(&cluster, &["certificate", "deny", "mallory"]).await.ok();
    assert_eq!(denied.trim(), "certificatesigningrequest.certificates.k8s.io/mallory denied");
    create(&cluster, &request("serving", "system:node:n1", "system:nodes", "kubernetes.io/kubelet-serving")).await;
    kubectl(&cluster, &["certificate", "approve", "serving"]).await.ok();
    // Each approval is one write; a signer would answer it at once, so the rows are final here.
    let rows = kubectl(
        &cluster,
        &[
            "get",
            "csr",
            "--no-headers",
            "-o",
            "custom-columns=N:.metadata.name,C:.status.certificate,T:.status.conditions[*].type",
        ],
    )
    .await
    .ok();
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        ["mallory   <none>   Denied", "serving   <none>   Approved"],
        "{rows}"
    );
    let approve_denied = kubectl(&cluster, &["certificate", "approve", "mallory"]).await.failed();
    assert!(
        approve_denied.to_lowercase().contains("denied") || approve_denied.contains("mutually exclusive"),
        "{approve_denied}"
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_naming_the_field_and_the_spec_never_changes() {
    let cluster = support::cluster().await;
    let mut broken: serde_json::Value =
        serde_json::from_str(&request("broken", "x", "y", "kubernetes.io/kube-apiserver-client").manifest).unwrap();
    broken["spec"]["request"] = serde_json::json!(base64::engine::general_purpose::STANDARD.encode("not a request"));
    broken["spec"].as_object_mut().unwrap().remove("usages");
    let refused = kubectl_with(&cluster, &["create", "-f", "-"], Some(&broken.to_string()), &[]).await.failed();
    assert!(refused.contains("spec.request: Invalid value"), "{refused}");
    assert!(refused.contains("spec.usages: Required value"), "{refused}");
    assert!(kubectl(&cluster, &["get", "csr", "broken"]).await.failed().contains("NotFound"));

    create(&cluster, &request("fixed", "x", "y", "kubernetes.io/kube-apiserver-client")).await;
    let patch = r#"{"spec": {"signerName": "example.com/mine"}, "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Sneaky"}]}}"#;
    kubectl(&cluster, &["patch", "csr", "fixed", "--type=merge", "-p", patch]).await.ok();
    assert_eq!(jsonpath(&cluster, "fixed", "{.spec.signerName}").await, "kubernetes.io/kube-apiserver-client");
    assert_eq!(jsonpath(&cluster, "fixed", "{.status.conditions}").await, "", "only approval approves");
    let via_status = r#"{"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Sneaky"}]}}"#;
    kubectl(&cluster, &["patch", "csr", "fixed", "--subresource=status", "--type=merge", "-p", via_status]).await.ok();
    assert_eq!(jsonpath(&cluster, "fixed", "{.status.conditions}").await, "", "status does not approve either");
    cluster.shutdown().await.unwrap();
}
