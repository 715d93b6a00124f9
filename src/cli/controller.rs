//! `review-operator controller`: the reconciler as a long-running service,
//! with leader election, probes, metrics and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{error, info};

use super::github::{GitHubArgs, GitHubArgsError};
use crate::api::duration;
use crate::controller::{AgentLaunch, ControllerSettings, RECOMMENDED_CONCURRENCY};
use crate::metrics::Metrics;
use crate::operations::leader::{self, ElectionStatus, LeaseConfig};
use crate::operations::logging::{self, LogFormat};
use crate::operations::{http, shutdown};

/// Flags of `review-operator controller`. Every flag also reads an
/// environment variable, so a Deployment can configure it either way.
#[derive(Clone, Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("agent").required(true).args(["operator_image", "agent_binary"])))]
pub struct ControllerArgs {
    /// Address of the HTTP endpoints (/metrics, /healthz, /readyz).
    #[arg(long, env = "REVIEW_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Log line format.
    #[arg(long, env = "REVIEW_OPERATOR_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter in RUST_LOG syntax, e.g. `info` or `review_operator=debug,kube=warn`.
    #[arg(long, env = "RUST_LOG", default_value = "info", value_parser = parse_log_filter)]
    pub log_level: String,
    /// Namespace of the leader Lease [default: the pod's namespace, else the kubeconfig's].
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, env = "REVIEW_OPERATOR_LEASE_NAME", default_value = "review-operator")]
    pub lease_name: String,
    /// How long a leader that stops renewing keeps the Lease (whole seconds, at least 2s).
    #[arg(long, env = "REVIEW_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = parse_lease_duration)]
    pub lease_duration: Duration,
    /// This replica's identity in the Lease [default: the pod name, else hostname-pid].
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Quiet time after a Reviewer's last event before it is reconciled; batches bursts of events.
    #[arg(long, env = "REVIEW_OPERATOR_DEBOUNCE", default_value = "2ms", value_parser = parse_duration)]
    pub debounce: Duration,
    /// Reviewers reconciled at once; bounds the controller's API requests in flight.
    #[arg(long, env = "REVIEW_OPERATOR_CONCURRENCY", default_value_t = RECOMMENDED_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Image of this operator, injected into reviewer pods to run the in-pod supervisor.
    #[arg(long, env = "REVIEW_OPERATOR_IMAGE", value_name = "IMAGE")]
    pub operator_image: Option<String>,
    /// Path of the review-operator binary run directly as the supervisor (dev clusters, whose pods are local processes).
    #[arg(long, env = "REVIEW_OPERATOR_AGENT_BINARY", value_name = "PATH")]
    pub agent_binary: Option<PathBuf>,
    /// Field manager of the controller's writes.
    #[arg(long, env = "REVIEW_OPERATOR_FIELD_MANAGER", default_value = "review-operator", value_parser = parse_non_empty)]
    pub field_manager: String,
    #[command(flatten)]
    pub github: GitHubArgs,
}

impl ControllerArgs {
    /// The reconciler's settings. Clap's `agent` group already requires
    /// exactly one of `--operator-image` and `--agent-binary`; this checks it
    /// again for arguments built by hand.
    pub fn settings(&self) -> Result<ControllerSettings, SettingsError> {
        let agent = match (&self.operator_image, &self.agent_binary) {
            (Some(image), None) => AgentLaunch::Inject { operator_image: image.clone() },
            (None, Some(path)) => AgentLaunch::LocalBinary { path: path.clone() },
            _ => return Err(AgentLaunchError.into()),
        };
        Ok(ControllerSettings {
            field_manager: self.field_manager.clone(),
            debounce: self.debounce,
            concurrency: self.concurrency,
            agent,
            delivery: self.github.delivery()?,
        })
    }

    /// The Lease settings; `default_namespace` is the client's (kubeconfig or in-cluster) namespace.
    pub fn lease(&self, default_namespace: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: self.namespace.clone().unwrap_or_else(|| default_namespace.to_owned()),
            name: self.lease_name.clone(),
            identity: self.identity.clone().unwrap_or_else(default_identity),
            duration: self.lease_duration,
        }
    }
}

/// Flags that cannot be used together or whose files cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(transparent)]
    Agent(#[from] AgentLaunchError),
    #[error(transparent)]
    GitHub(#[from] GitHubArgsError),
}

/// Neither or both of `--operator-image` and `--agent-binary` were given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("exactly one of --operator-image and --agent-binary is required")]
pub struct AgentLaunchError;

/// `hostname-pid`: unique among replicas on different hosts and among
/// processes on one host.
fn default_identity() -> String {
    let host = hostname::get().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".into());
    format!("{host}-{}", std::process::id())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text).ok_or_else(|| format!("expected a duration such as 2s, 500ms or 1m30s, got {text:?}"))
}

fn parse_lease_duration(text: &str) -> Result<Duration, String> {
    leader::validate_lease_duration(parse_duration(text)?).map_err(|error| error.to_string())
}

fn parse_log_filter(text: &str) -> Result<String, String> {
    logging::parse_filter(text).map(|_| text.to_owned()).map_err(|error| error.to_string())
}

fn parse_non_empty(text: &str) -> Result<String, String> {
    if text.is_empty() { Err("must not be empty".into()) } else { Ok(text.to_owned()) }
}

/// Runs the controller until SIGTERM or SIGINT; returns once the reconciler
/// stopped, the Lease was released and the HTTP server finished.
pub fn run(args: ControllerArgs) -> anyhow::Result<()> {
    logging::init(args.log_format, &args.log_level)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ControllerArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let config = kube::Config::infer()
        .await
        .context("finding Kubernetes (in-cluster config or the current kubeconfig context)")?;
    let client =
        crate::controller::api_requests::counted_client(config, metrics.clone()).context("connecting to Kubernetes")?;
    let lease = args.lease(client.default_namespace());
    let settings = args.settings()?;
    let election = Arc::new(ElectionStatus::new(metrics.leader.clone()));
    let (trigger, shutdown) = shutdown::channel();

    let listener =
        TcpListener::bind(args.listen).await.with_context(|| format!("listening on --listen {}", args.listen))?;
    info!(listen = %args.listen, lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "starting");
    let server = tokio::spawn(http::serve(listener, http::router(metrics.clone(), election.clone()), shutdown.wait()));

    let on_signal = trigger.clone();
    tokio::spawn(async move {
        match shutdown::termination_signal().await {
            Ok(signal) => info!(signal, "shutting down"),
            Err(error) => error!(error = %error, "cannot listen for termination signals; shutting down"),
        }
        on_signal.trigger();
    });

    let elected = leader::run_with_leadership(client.clone(), lease, election, shutdown, |stop| {
        crate::controller::run(client.clone(), settings.clone(), metrics.clone(), stop.wait())
    })
    .await;
    trigger.trigger();
    let served = server.await.context("HTTP server task")?;
    elected?;
    served.context("serving HTTP")?;
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::RECOMMENDED_DEBOUNCE;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn parse(args: &[&str]) -> Result<ControllerArgs, String> {
        Cli::try_parse_from(std::iter::once("controller").chain(args.iter().copied()))
            .map(|cli| cli.args)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn defaults() {
        let args = parse(&["--operator-image", "ghcr.io/ao/review-operator:1.0"]).expect("parses");
        assert_eq!(args.listen, "0.0.0.0:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.lease_name, "review-operator");
        assert_eq!(args.lease_duration, Duration::from_secs(15));
        assert_eq!(args.debounce, RECOMMENDED_DEBOUNCE);
        assert_eq!(args.concurrency, RECOMMENDED_CONCURRENCY);
        let settings = args.settings().expect("one agent launch");
        assert_eq!(settings.field_manager, "review-operator");
        assert_eq!(settings.agent, AgentLaunch::Inject { operator_image: "ghcr.io/ao/review-operator:1.0".into() });
    }

    #[test]
    fn every_flag() {
        let args = parse(&[
            "--listen=127.0.0.1:9090",
            "--log-format=json",
            "--log-level=review_operator=debug,kube=warn",
            "--namespace=ops",
            "--lease-name=reviews",
            "--lease-duration=30s",
            "--identity=replica-1",
            "--debounce=500ms",
            "--concurrency=4",
            "--agent-binary=/usr/local/bin/review-operator",
            "--field-manager=reviews-ctl",
        ])
        .expect("parses");
        assert_eq!(args.listen, "127.0.0.1:9090".parse::<SocketAddr>().unwrap());
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.log_level, "review_operator=debug,kube=warn");
        let lease = args.lease("default");
        assert_eq!(
            (lease.namespace.as_str(), lease.name.as_str(), lease.identity.as_str(), lease.duration),
            ("ops", "reviews", "replica-1", Duration::from_secs(30))
        );
        let settings = args.settings().expect("one agent launch");
        assert_eq!(settings.debounce, Duration::from_millis(500));
        assert_eq!(settings.concurrency, 4);
        assert_eq!(settings.field_manager, "reviews-ctl");
        assert_eq!(settings.agent, AgentLaunch::LocalBinary { path: "/usr/local/bin/review-operator".into() });
    }

    #[test]
    fn lease_falls_back_to_client_namespace_and_host_identity() {
        let args = parse(&["--agent-binary=/bin/review-operator"]).expect("parses");
        let lease = args.lease("team-a");
        assert_eq!(lease.namespace, "team-a");
        assert!(lease.identity.ends_with(&format!("-{}", std::process::id())), "{}", lease.identity);
    }

    #[test]
    fn agent_launch_is_required() {
        let error = parse(&[]).expect_err("no agent launch");
        assert!(error.contains("--operator-image <IMAGE>") && error.contains("--agent-binary <PATH>"), "{error}");
        assert!(error.contains("required"), "{error}");
    }

    #[test]
    fn agent_launch_flags_exclude_each_other() {
        let error = parse(&["--operator-image=img", "--agent-binary=/bin/x"]).expect_err("both");
        assert!(error.contains("'--operator-image <IMAGE>' cannot be used with '--agent-binary <PATH>'"), "{error}");
    }

    #[test]
    fn settings_reject_arguments_built_without_one_agent_launch() {
        let mut args = parse(&["--operator-image=img"]).expect("parses");
        args.agent_binary = Some("/bin/x".into());
        let error = args.settings().expect_err("both");
        assert_eq!(error.to_string(), "exactly one of --operator-image and --agent-binary is required");
        args.operator_image = None;
        args.agent_binary = None;
        assert_eq!(args.settings().expect_err("neither"), SettingsError::Agent(AgentLaunchError));
    }

    #[test]
    fn bad_values_name_their_flag() {
        let cases: [(&[&str], &str, &str); 9] = [
            (&["--concurrency=0"], "--concurrency", "0 is not in 1..=65535"),
            (&["--concurrency=many"], "--concurrency", "invalid digit found in string"),
            (&["--lease-duration=1s"], "--lease-duration", "must be at least 2s, got 1s"),
            (&["--lease-duration=2500ms"], "--lease-duration", "must be a whole number of seconds"),
            (&["--lease-duration=soon"], "--lease-duration", "expected a duration such as 2s"),
            (&["--debounce=2"], "--debounce", "expected a duration such as 2s"),
            (&["--listen=localhost"], "--listen", "invalid socket address"),
            (&["--log-format=xml"], "--log-format", "[possible values: text, json]"),
            (&["--log-level=review_operator=loud"], "--log-level", "invalid log filter"),
        ];
        for (flags, flag, expected) in cases {
            let args: Vec<&str> = flags.iter().copied().chain(["--operator-image=img"]).collect();
            let error = parse(&args).expect_err("invalid value");
            assert!(error.contains(flag) && error.contains(expected), "{flags:?}: {error}");
        }
        let error = parse(&["--operator-image=img", "--field-manager="]).expect_err("empty field manager");
        assert!(error.contains("--field-manager") && error.contains("must not be empty"), "{error}");
    }
}
