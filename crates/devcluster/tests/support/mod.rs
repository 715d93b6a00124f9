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
