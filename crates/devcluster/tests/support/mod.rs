//! Helpers shared by the dev cluster's integration tests.
#![allow(dead_code)]

use devcluster::{Config, DevCluster};
use std::path::PathBuf;
use std::time::Duration;

/// Starts a fresh in-process cluster on an ephemeral port.
pub async fn cluster() -> DevCluster {
    DevCluster::start(Config::default()).await.expect("dev cluster starts")
}

/// A fresh cluster whose pods are never run: tests play the kubelet by writing pod status themselves.
pub async fn cluster_without_pods() -> DevCluster {
    let runner = devcluster::runner::RunnerSettings { enabled: false, ..Default::default() };
    DevCluster::start(Config { runner, ..Config::default() }).await.expect("dev cluster starts")
}

/// The pinned kubectl the test command installs. Missing kubectl fails the test loudly.
pub fn kubectl_path() -> PathBuf {
    if let Ok(path) = std::env::var("KUBECTL") {
        return PathBuf::from(path);
    }
    // This file is also compiled into the root package's tests: find the workspace root (the
    // folder with Cargo.lock) from whichever package includes it.
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.ancestors().find(|dir| dir.join("Cargo.lock").exists()).unwrap_or(manifest_dir);
    let default = root.join(".tools/kubectl/bin/kubectl");
    assert!(
        default.exists(),
        "kubectl 1.37.1 is missing at {}: run the project's test command (bash tests/run), which installs it",
        default.display()
    );
    default
}

/// The result of one kubectl run.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "kubectl failed: stdout={} stderr={}", self.stdout, self.stderr);
        self.stdout
    }

    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn failed(self) -> String {
        assert_ne!(self.code, 0, "kubectl unexpectedly succeeded: stdout={}", self.stdout);
        self.stderr
    }
}

/// Runs kubectl against the cluster, with optional stdin and extra environment.
pub async fn kubectl_with(cluster: &DevCluster, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(kubectl_path());
    cmd.arg("--kubeconfig").arg(cluster.kubeconfig_path()).args(args);
    cmd.env("HOME", std::env::temp_dir()).env("KUBECACHEDIR", cache_dir(cluster));
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(cmd, stdin).await
}

/// Runs a prepared command to completion with optional stdin, within a two-minute deadline.
pub async fn run_command(mut cmd: tokio::process::Command, stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt;
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().expect("program starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("finishes within two minutes")
        .expect("output");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn kubectl(cluster: &DevCluster, args: &[&str]) -> Output {
    kubectl_with(cluster, args, None, &[]).await
}

/// A discovery cache per cluster, so kubectl never reuses another cluster's discovery.
fn cache_dir(cluster: &DevCluster) -> PathBuf {
    std::env::temp_dir().join(format!("devcluster-kubectl-cache-{}", cluster.address().port()))
}

/// Polls `check` until it returns `Some`, failing after a generous deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Registers a bearer token for a service-account identity in `namespace`, as a pod-bound token
/// authenticates (`system:serviceaccount:NS:SA`, its groups, and the pod extras when `pod` is given
/// as `(name, uid)`). Returns the token.
pub fn service_account_token(
    cluster: &DevCluster,
    namespace: &str,
    account: &str,
    pod: Option<(&str, &str)>,
) -> String {
    use devcluster::auth::{UserInfo, generate_token};
    let mut extra = std::collections::BTreeMap::new();
    if let Some((name, uid)) = pod {
        extra.insert("authentication.kubernetes.io/pod-name".to_string(), vec![name.to_string()]);
        extra.insert("authentication.kubernetes.io/pod-uid".to_string(), vec![uid.to_string()]);
    }
    let token = generate_token();
    cluster.server().auth.add(
        &token,
        UserInfo {
            username: format!("system:serviceaccount:{namespace}:{account}"),
            uid: uuid::Uuid::new_v4().to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            extra,
        },
    );
    token
}

/// Installs a CRD file from the repository root (e.g. `crds/reviewrun.yaml`) and waits until it is served.
pub async fn install_crd(cluster: &DevCluster, relative_path: &str, plural_group: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative_path);
    kubectl(cluster, &["apply", "-f", path.to_str().expect("utf-8 path")]).await.ok();
    let (plural, group) = plural_group.split_once('.').expect("plural.group");
    eventually("the CRD to be served", || async {
        cluster.server().registry.all().iter().any(|r| r.resource == plural && r.group == group).then_some(())
    })
    .await;
}

/// Creates a namespace as the admin.
pub async fn namespace(cluster: &DevCluster, name: &str) {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(cluster.client().expect("client"));
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("namespace");
    api.create(&kube::api::PostParams::default(), &ns).await.expect("namespace created");
}

/// A raw HTTP answer: status, headers and body bytes.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Raw {
    /// The body as JSON; panics with the body text when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the answer is a failure `Status` with this code and reason; returns its message.
    #[track_caller]
    pub fn status(&self, code: u16, reason: &str) -> String {
        let body = self.json();
        assert_eq!(self.status, code, "{body}");
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["apiVersion"], "v1", "{body}");
        assert_eq!(body["status"], "Failure", "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["reason"], reason, "{body}");
        body["message"].as_str().expect("a message").to_string()
    }
}

/// Sends one raw request through `client` (which adds its credentials, if any) and returns the
/// answer; a transport error (e.g. a dropped connection) is returned as an error.
pub async fn send_raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Raw, kube::Error> {
    let mut request = axum::http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(kube::client::Body::from(body)).expect("a well-formed request");
    let response = client.send(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect_bytes().await?;
    Ok(Raw { status: parts.status.as_u16(), headers: parts.headers, body: body.to_vec() })
}

/// A client for the cluster that sends `token` (or no credentials at all).
pub fn client_with_token(cluster: &DevCluster, token: Option<&str>) -> kube::Client {
    use base64::Engine;
    let pem: String = cluster.ca_pem().lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(pem).expect("the CA is PEM");
    let mut config = kube::Config::new(cluster.url().parse().expect("a URL"));
    config.root_cert = Some(vec![der]);
    config.auth_info.token = token.map(|t| t.to_string().into());
    kube::Client::try_from(config).expect("a client")
}

/// The default namespace's pods, as the admin.
pub fn pods(cluster: &DevCluster) -> kube::Api<k8s_openapi::api::core::v1::Pod> {
    kube::Api::default_namespaced(cluster.client().unwrap())
}

/// The pod as JSON once `check` holds for it.
pub async fn pod_when(
    cluster: &DevCluster,
    name: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let api = pods(cluster);
    eventually(what, || {
        let api = api.clone();
        let check = &check;
        async move {
            let pod = serde_json::to_value(api.get_opt(name).await.ok()??).ok()?;
            check(&pod).then_some(pod)
        }
    })
    .await
}

/// A pod's `status.phase`, empty when unset.
pub fn phase(pod: &serde_json::Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}
