//! `review-operator webhook`: the GitHub webhook receiver as a service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::intake::server::{Receiver, router};
use crate::intake::signature::WebhookSecrets;
use crate::operations::logging::{self, LogFormat};
use crate::operations::{http, shutdown};

/// Flags of `review-operator webhook`; each also reads an environment variable.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookArgs {
    /// Address to serve deliveries, /healthz, /readyz and /metrics on.
    #[arg(long, env = "REVIEW_OPERATOR_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// File holding the webhook secret. Each non-empty line is a secret, and the flag may be
    /// given twice: during a rotation, a delivery signed with any of them is accepted.
    #[arg(long, env = "REVIEW_OPERATOR_WEBHOOK_SECRET_FILE", required = true, value_delimiter = ',')]
    pub secret_file: Vec<PathBuf>,
    /// Path deliveries are posted to.
    #[arg(long, env = "REVIEW_OPERATOR_WEBHOOK_PATH", default_value = "/github", value_parser = parse_path)]
    pub path: String,
    /// Field manager of the receiver's writes.
    #[arg(long, env = "REVIEW_OPERATOR_WEBHOOK_FIELD_MANAGER", default_value = "review-operator-webhook")]
    pub field_manager: String,
    /// Log line format.
    #[arg(long, env = "REVIEW_OPERATOR_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter in RUST_LOG syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
}

fn parse_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') && !["/healthz", "/readyz", "/metrics"].contains(&path) {
        Ok(path.to_owned())
    } else {
        Err(format!("--path must start with / and not be /healthz, /readyz or /metrics, got {path:?}"))
    }
}

pub fn run(args: WebhookArgs) -> anyhow::Result<()> {
    logging::init(args.log_format, &args.log_level)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: WebhookArgs) -> anyhow::Result<()> {
    let secrets = WebhookSecrets::read(&args.secret_file).context("--secret-file")?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster config or the current kubeconfig context)")?;
    let receiver = Receiver::start(client, secrets, args.field_manager.clone());
    let listener =
        TcpListener::bind(args.listen).await.with_context(|| format!("listening on --listen {}", args.listen))?;
    info!(listen = %args.listen, path = %args.path, "serving GitHub webhook deliveries");
    let (trigger, stop) = shutdown::channel();
    tokio::spawn(async move {
        match shutdown::termination_signal().await {
            Ok(signal) => info!(signal, "shutting down"),
            Err(error) => error!(error = %error, "cannot listen for termination signals; shutting down"),
        }
        trigger.trigger();
    });
    http::serve(listener, router(receiver, &args.path), stop.wait()).await.context("serving HTTP")?;
    info!("stopped");
    Ok(())
}
