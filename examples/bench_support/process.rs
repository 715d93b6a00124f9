//! The benchmarks run the operator's components as they are deployed: each
//! the release `review-operator` binary in a process of its own, talking to
//! the dev cluster through its kubeconfig, so that each is scheduled, and its
//! memory measured, as its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;

/// The `review-operator` binary: `flag`, or the release build beside the
/// running example (`target/release/examples/NAME` → `target/release/review-operator`).
pub fn operator_binary(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match flag {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .context("locating target/release")?
            .join("review-operator"),
    };
    anyhow::ensure!(
        path.exists(),
        "{} does not exist: build it with `cargo build --release --bin review-operator` or name it with a flag",
        path.display()
    );
    Ok(path)
}

/// A local address nothing listens on, for a component's HTTP server.
pub fn free_local_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}

/// Starts `binary` with `args` against the dev cluster of `kubeconfig`; its
/// output goes to `log`, and it is killed when the handle is dropped.
pub fn spawn_component(
    binary: &Path,
    args: &[&str],
    kubeconfig: &Path,
    log: &Path,
) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    tokio::process::Command::new(binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} {}", binary.display(), args.first().unwrap_or(&"")))
}

/// The text a component serves on `/metrics`.
pub async fn metrics_text(address: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.context("connecting to the metrics endpoint")?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

/// Every sample of the metric `name` in `text`: its labels and value.
pub fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let labels = labels
                .split("\",")
                .filter_map(|pair| {
                    let (key, value) = pair.split_once("=\"")?;
                    Some((key.trim_start_matches(',').to_owned(), value.trim_end_matches('"').to_owned()))
                })
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// `VmHWM` and `VmRSS` of a process, in MiB.
pub fn memory_mb(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading a process's status")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .with_context(|| format!("{name} missing from /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// User and system CPU time a process has used, in seconds (`/proc/PID/stat`, in clock ticks of
/// 1/100 s, the tick Linux reports on every architecture it runs on).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading a process's stat")?;
    // The command name may hold spaces and parentheses: fields are counted after its closing one.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("no command name in stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).context("no CPU time in stat");
    // utime and stime are fields 14 and 15 of stat(5); the state (field 3) is index 0 here.
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// A kubeconfig at `path` for the ServiceAccount `account` of `namespace`, with a token from the
/// TokenRequest API: the identity the component is deployed with, so that it gets the RBAC of
/// `deploy/` and its own flow in the API server's fair queuing.
pub async fn deployed_identity(
    cluster: &devcluster::DevCluster,
    client: &kube::Client,
    namespace: &str,
    account: &str,
    path: &Path,
) -> anyhow::Result<()> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(24 * 3600), ..TokenRequestSpec::default() }),
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(account, &Default::default(), &request)
        .await
        .with_context(|| format!("a token of {namespace}/{account}"))?;
    let token = issued.status.and_then(|status| status.token).context("the TokenRequest answered no token")?;
    cluster.kubeconfig_for_token(&token, namespace, path)?;
    Ok(())
}
