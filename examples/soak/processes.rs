//! The processes of the soak: the dev cluster, the controller replicas and the webhook receiver,
//! started as a Deployment would start them, and the checks made from outside them (leader
//! metric, leftover pod processes).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::process::{Child, Command};

/// The dev cluster process: serves until SIGTERM (or SIGKILL, which is the point). Pods live in
/// `pods`, where the soak reads their identities.
pub async fn serve_cluster(serve: &[String]) -> anyhow::Result<()> {
    let [listen, kubeconfig, data_dir, pods] = serve else {
        bail!("--serve-cluster LISTEN KUBECONFIG DATA_DIR POD_DIR")
    };
    let runner = devcluster::runner::RunnerSettings { pod_dir: Some(pods.into()), ..Default::default() };
    let config = devcluster::Config {
        listen: listen.parse().context("LISTEN")?,
        kubeconfig_path: Some(kubeconfig.into()),
        data_dir: Some(data_dir.into()),
        runner,
        ..devcluster::Config::default()
    };
    let cluster = devcluster::DevCluster::start(config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    terminate.recv().await;
    cluster.shutdown().await?;
    Ok(())
}

/// Where the soak keeps one run's files.
pub struct Folder {
    pub root: PathBuf,
}

impl Folder {
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    pub fn pods(&self) -> PathBuf {
        self.root.join("pods")
    }
    pub fn webhook_secret(&self) -> PathBuf {
        self.root.join("webhook-secret")
    }
    fn log(&self, name: &str) -> anyhow::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("{name}.log")))
            .with_context(|| format!("the log of {name}"))
    }
}

/// Starts the dev cluster process and waits until it serves.
pub async fn start_cluster(listen: &str, folder: &Folder) -> anyhow::Result<Child> {
    let kubeconfig = folder.kubeconfig();
    let child = Command::new(std::env::current_exe()?)
        .arg("--serve-cluster")
        .args([listen, &kubeconfig.display().to_string()])
        .args([&folder.data().display().to_string(), &folder.pods().display().to_string()])
        .stdout(Stdio::null())
        .stderr(folder.log("cluster")?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the dev cluster")?;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if kubeconfig.exists()
            && let Ok(client) = client(&kubeconfig).await
            && client.apiserver_version().await.is_ok()
        {
            return Ok(child);
        }
        if Instant::now() > until {
            bail!("the dev cluster did not serve within a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts controller replica `replica`, its HTTP endpoints on `port` (the same for each start of
/// that replica, so that the leader sampler keeps reading it).
pub fn start_controller(
    binary: &Path,
    folder: &Folder,
    namespace: &str,
    replica: usize,
    port: u16,
) -> anyhow::Result<Child> {
    Command::new(binary)
        .args(["controller", "--agent-binary"])
        .arg(binary)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--namespace", namespace, "--lease-duration", "4s"])
        .args(["--identity", &format!("soak-{replica}"), "--log-level", "warn"])
        .env("KUBECONFIG", folder.kubeconfig())
        .stdout(Stdio::null())
        .stderr(folder.log(&format!("controller-{replica}"))?)
        .kill_on_drop(true)
        .spawn()
        .context("starting a controller")
}

/// Starts `review-operator webhook` on `port` with the soak's secret.
pub fn start_webhook(binary: &Path, folder: &Folder, port: u16) -> anyhow::Result<Child> {
    Command::new(binary)
        .args(["webhook", "--listen", &format!("127.0.0.1:{port}"), "--secret-file"])
        .arg(folder.webhook_secret())
        .args(["--log-level", "warn"])
        .env("KUBECONFIG", folder.kubeconfig())
        .stdout(Stdio::null())
        .stderr(folder.log("webhook")?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the webhook receiver")
}

pub async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    client_from(Kubeconfig::read_from(kubeconfig)?).await
}

pub async fn client_from(kubeconfig: Kubeconfig) -> anyhow::Result<Client> {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// SIGTERM, then SIGKILL after 20 s.
pub async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid this process started and has not reaped.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// A free loopback port, kept for the whole soak so that restarts reuse it.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `name` from the flag, else beside this example's target folder
/// (`target/<profile>/examples/soak` → `target/<profile>/NAME`).
pub fn built_binary(flag: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    let path = match flag {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .context("locating the target folder")?
            .join(name),
    };
    anyhow::ensure!(
        path.exists(),
        "{} does not exist: build it with `cargo build --release --bins` or pass its flag",
        path.display()
    );
    Ok(path)
}

/// Samples every replica's `review_operator_leader` every 200 ms; counts samples where two lead.
pub async fn sample_leaders(ports: Vec<u16>, overlaps: Arc<AtomicU64>) {
    loop {
        let mut leading = 0;
        for port in &ports {
            if leader_metric(*port).await == Some(1) {
                leading += 1;
            }
        }
        if leading > 1 {
            overlaps.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The replica's `review_operator_leader`, read over plain HTTP.
async fn leader_metric(port: u16) -> Option<i64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream =
        tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(("127.0.0.1", port)))
            .await
            .ok()?
            .ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_millis(500), stream.read_to_string(&mut answer)).await.ok()?.ok()?;
    answer.lines().find_map(|line| line.strip_prefix("review_operator_leader ")).and_then(|v| v.trim().parse().ok())
}

/// Every process left whose environment carries `marker` (the pods' `REVIEW_SOAK=<id>`), zombies included.
pub fn leftover_pod_processes(marker: &str) -> Vec<String> {
    let mut left = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return left };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let found = environ.split(|b| *b == 0).any(|var| var == marker.as_bytes());
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit(')').next().map(|rest| rest.trim_start().starts_with('Z')))
            .unwrap_or(false);
        if found {
            left.push(format!("pod process {pid} is left{}", if zombie { " (a zombie)" } else { "" }));
        }
    }
    left
}
