//! `review-operator dev`: the whole system on an embedded dev cluster, with an optional live demo.

mod demo;
pub mod manifests;
pub mod repository;
pub mod timeline;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use devcluster::{Config, DevCluster};
use tokio::sync::watch;

use crate::controller::{AgentLaunch, ControllerSettings, RECOMMENDED_CONCURRENCY, RECOMMENDED_DEBOUNCE};
use crate::metrics::Metrics;

/// Flags of `review-operator dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Where the API server listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value = ".review-operator/kubeconfig")]
    pub kubeconfig: PathBuf,
    /// Keep the cluster's objects in this folder across restarts (default: in memory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Do not run the demo in namespace `demo`.
    #[arg(long)]
    pub no_demo: bool,
    /// Run only the dev cluster, to run the controller separately.
    #[arg(long)]
    pub no_controller: bool,
    /// Where the GitHub webhook receiver listens (deliveries at /github).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub webhook_listen: SocketAddr,
    /// The webhook secret; created with a random secret when missing.
    #[arg(long, default_value = ".review-operator/webhook-secret")]
    pub webhook_secret_file: PathBuf,
    #[command(flatten)]
    pub github: crate::cli::github::GitHubArgs,
}

/// Runs the dev cluster (and the controller and demo) until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let delivery = args.github.delivery()?;
    let config = Config {
        listen: args.listen,
        kubeconfig_path: Some(args.kubeconfig.clone()),
        data_dir: args.data_dir.clone(),
        settings: devcluster::ServerSettings { ready_at_start: false, ..Default::default() },
        ..Config::default()
    };
    // The start errors' messages already name the address or path and the cause; keeping only the
    // message (not the source chain, which repeats the cause) makes a one-line error.
    let cluster = DevCluster::start(config).await.map_err(|error| anyhow::anyhow!("{error}"))?;
    let client = cluster.client()?;
    manifests::install(&client).await.context("installing CRDs and policies")?;
    // Ready means usable: the CRDs are served and the policies enforced.
    cluster.server().set_ready(true);
    let kubeconfig = std::fs::canonicalize(cluster.kubeconfig_path()).unwrap_or_else(|_| args.kubeconfig.clone());
    println!("dev cluster ready at {}", cluster.url());
    println!("export KUBECONFIG={}", kubeconfig.display());
    if let Some(delivery) = &delivery {
        println!("delivering verdicts to GitHub at {}", delivery.api_url);
    }

    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    if !args.no_controller {
        let binary = std::env::current_exe().context("locating this binary for reviewer pods")?;
        let settings = ControllerSettings {
            field_manager: "review-operator".into(),
            debounce: RECOMMENDED_DEBOUNCE,
            concurrency: RECOMMENDED_CONCURRENCY,
            agent: AgentLaunch::LocalBinary { path: binary },
            delivery,
        };
        let client = client.clone();
        let shutdown = wait_for(stopped.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(error) = crate::controller::run(client, settings, Arc::new(Metrics::default()), shutdown).await {
                eprintln!("controller stopped: {error}");
            }
        }));
    }
    let secrets = webhook_secret(&args.webhook_secret_file)?;
    let listener = tokio::net::TcpListener::bind(args.webhook_listen)
        .await
        .with_context(|| format!("listening on --webhook-listen {}", args.webhook_listen))?;
    let address = listener.local_addr().unwrap_or(args.webhook_listen);
    let secret_path =
        std::fs::canonicalize(&args.webhook_secret_file).unwrap_or_else(|_| args.webhook_secret_file.clone());
    println!("GitHub webhook receiver at http://{address}/github (secret in {})", secret_path.display());
    let receiver = crate::intake::server::Receiver::start(client.clone(), secrets, "review-operator-webhook".into());
    let router = crate::intake::server::router(receiver, "/github");
    tasks.push(tokio::spawn({
        let shutdown = wait_for(stopped.clone());
        async move {
            if let Err(error) = crate::operations::http::serve(listener, router, shutdown).await {
                eprintln!("webhook receiver stopped: {error}");
            }
        }
    }));
    if !args.no_demo {
        let binary = std::env::current_exe().context("locating this binary for the demo agent")?;
        // The demo's repository lives beside the kubeconfig, in the dev command's own folder.
        let state_dir = args.kubeconfig.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
        tasks.push(tokio::spawn(demo::run(client.clone(), binary, state_dir.to_path_buf(), wait_for(stopped.clone()))));
    }

    crate::operations::shutdown::termination_signal().await.context("waiting for Ctrl-C")?;
    println!("stopping");
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    cluster.shutdown().await?;
    Ok(())
}

/// Reads the webhook secret file, first writing a random secret to it when it does not exist.
fn webhook_secret(path: &std::path::Path) -> anyhow::Result<crate::intake::signature::WebhookSecrets> {
    if !path.exists() {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let secret: [u8; 32] = rand::random();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| writeln!(file, "{}", hex::encode(secret)))
            .with_context(|| format!("writing --webhook-secret-file {}", path.display()))?;
    }
    crate::intake::signature::WebhookSecrets::read(&[path]).context("--webhook-secret-file")
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}
