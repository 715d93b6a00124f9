use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use review_operator::{agent, plugin};

/// Kubernetes controller that runs AI code reviewers for pull requests.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system on an embedded dev cluster, with a live demo.
    #[cfg(feature = "dev-cluster")]
    Dev(review_operator::dev::DevArgs),
    /// Not in this build: it was made without the embedded dev cluster.
    #[cfg(not(feature = "dev-cluster"))]
    #[command(hide = true)]
    Dev {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the CustomResourceDefinitions, or write them to a directory.
    Crds {
        /// Write one file per CRD into --dir instead of printing.
        #[arg(long)]
        write: bool,
        /// Directory for --write.
        #[arg(long, default_value = "crds")]
        dir: PathBuf,
    },
    /// Run the reconciler, with leader election, probes and metrics.
    Controller(Box<review_operator::cli::controller::ControllerArgs>),
    /// Receive GitHub webhooks and turn pull request events into ReviewRuns.
    Webhook(review_operator::cli::webhook::WebhookArgs),
    /// Supervise an agent in a pseudo-terminal: the entrypoint of reviewer pods.
    Agent {
        /// The agent's command and arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Submit the verdict of a running review (the same as `kubectl review submit`).
    Submit {
        #[command(flatten)]
        connection: plugin::Connection,
        #[command(flatten)]
        args: plugin::SubmitArgs,
    },
    /// A deterministic stand-in agent that reviews and submits its queue.
    DemoAgent(agent::demo::DemoOptions),
    /// Copy this binary to a path (the init container of injected reviewer pods).
    #[command(hide = true)]
    Install { destination: PathBuf },
}

/// jemalloc: the controller's caches churn through many small objects on every watch event, and
/// glibc's allocator spent a third of the controller's CPU time on them under a large fleet.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Crds { write, dir } => {
            let documents = review_operator::api::crd::documents()?;
            if write {
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                for (file, yaml) in documents {
                    let path = dir.join(file);
                    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
                }
            } else {
                let yaml: Vec<String> = documents.into_iter().map(|(_, yaml)| yaml).collect();
                print!("{}", yaml.join("---\n"));
            }
        }
        Command::Controller(args) => review_operator::cli::controller::run(*args)?,
        Command::Webhook(args) => review_operator::cli::webhook::run(args)?,
        #[cfg(not(feature = "dev-cluster"))]
        Command::Dev { .. } => {
            eprintln!(
                "error: this review-operator was built without the embedded dev cluster (the image's binary is); \
                 run `cargo run -- dev` from a checkout, or build with the default features"
            );
            return Ok(ExitCode::FAILURE);
        }
        #[cfg(feature = "dev-cluster")]
        Command::Dev(args) => {
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(dev_log_filter()).init();
            if let Err(error) = runtime()?.block_on(review_operator::dev::run(args)) {
                eprintln!("error: {error:#}");
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Agent { command } => {
            // The container log is the transcript: plain text, no colour codes.
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_env_filter(log_filter())
                .init();
            let code = runtime()?.block_on(agent::run(command))?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        Command::Submit { connection, args } => {
            if let Err(error) = runtime()?.block_on(plugin::submit(&connection, args)) {
                eprintln!("error: {error}");
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::DemoAgent(options) => agent::demo::run(&options).context("demo agent")?,
        Command::Install { destination } => agent::install(&destination)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
}

#[cfg(feature = "dev-cluster")]
/// The dev command keeps its terminal for the timeline: only warnings unless RUST_LOG says otherwise.
fn dev_log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into())
}
