//! Helpers shared by the dev cluster's integration tests.
#![allow(dead_code)]

use devcluster::{Config, DevCluster};
use std::path::PathBuf;
use std::time::Duration;

/// Starts a fresh in-process cluster on an ephemeral port.
pub async fn cluster() -> DevCluster {
    DevCluster::start(Config::default()).await.expect("dev cluster starts")
}

/// The pinned kubectl the test command installs. Missing kubectl fails the test loudly.
pub fn kubectl_path() -> PathBuf {
    if let Ok(path) = std::env::var("KUBECTL") {
        return PathBuf::from(path);
    }
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/kubectl/bin/kubectl");
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
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(kubectl_path());
    cmd.arg("--kubeconfig").arg(cluster.kubeconfig_path()).args(args);
    cmd.env("HOME", std::env::temp_dir()).env("KUBECACHEDIR", cache_dir(cluster));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().expect("kubectl starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("kubectl finishes within two minutes")
        .expect("kubectl output");
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
