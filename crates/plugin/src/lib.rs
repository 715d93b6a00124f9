//! The `kubectl review` plugin (binary `kubectl-review`): trigger, submit,
//! cancel and inspect ReviewRuns. `submit` is also `review-operator submit`,
//! so that a reviewer pod holding only the injected operator binary can
//! submit its verdict.
//!
//! The pure parts live in [`input`] (names, validation), [`submit`] (the
//! decision and the guarded patch) and [`table`] (output); this module is
//! the I/O around them.

pub mod input;
pub mod submit;
pub mod table;

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use review_api as api;

use crate::api::{ReviewRun, ReviewTranscript, Reviewer};
use input::{InvalidInput, TriggerRequest};
use submit::{Decision, Submission, SubmittingPod};

/// Field manager of the plugin's writes.
pub const FIELD_MANAGER: &str = "kubectl-review";

/// Why a plugin command failed; printed as `error: <message>`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{0}")]
    NotFound(String),
    /// The API server state does not allow the request (e.g. a stale run).
    #[error("{0}")]
    Rejected(String),
    #[error("Error from server ({}): {}", .0.reason, .0.message)]
    Server(Box<kube::core::Status>),
    #[error("cannot reach the cluster: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot load the cluster configuration: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => Self::Server(status),
            other => Self::Client(other),
        }
    }
}

/// How to reach the cluster: kubectl's `-n`, `--kubeconfig` and `--context`.
#[derive(Args, Clone, Debug, Default)]
pub struct Connection {
    /// Namespace; defaults to the kubeconfig context's namespace (or the
    /// pod's, in a cluster).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Path to a kubeconfig; defaults to $KUBECONFIG, ~/.kube/config or the in-cluster config.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
}

/// `kubectl review`: trigger, submit, cancel and inspect reviews.
#[derive(Parser, Debug)]
#[command(name = "kubectl review", version)]
pub struct PluginCli {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// The plugin's subcommands.
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Create the ReviewRun for a pull request at a head SHA (idempotent).
    Trigger(TriggerArgs),
    /// Submit the verdict of a running review.
    Submit(SubmitArgs),
    /// Ask the controller to stop a run (sets spec.cancelRequested).
    Cancel {
        /// Name of the ReviewRun.
        run: String,
    },
    /// List ReviewRuns with their PR, SHA, phase, verdict and Current condition.
    Get {
        /// After listing, watch for changes and print each changed run.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Show a Reviewer's pod, incarnation, queue, heads per PR and last restart.
    Status {
        /// Name of the Reviewer.
        reviewer: String,
    },
    /// Print the kept terminal transcript of a reviewer pod, or of the pod a run was assigned
    /// to; it outlives the pod.
    Transcript {
        /// Name of the pod (its ReviewTranscript has the same name) or of a ReviewRun.
        name: String,
    },
}

/// Arguments of `trigger`.
#[derive(Args, Debug)]
pub struct TriggerArgs {
    /// The Reviewer that reviews the pull request.
    #[arg(long)]
    pub reviewer: String,
    /// URL of the pull request.
    #[arg(long)]
    pub pr: String,
    /// Head commit SHA to review (7 to 64 lowercase hex characters).
    #[arg(long)]
    pub sha: String,
    /// The pull request's number, for display.
    #[arg(long)]
    pub number: Option<i64>,
    /// Review the same SHA again: creates a new run named with a `-r<unix-seconds>` suffix.
    #[arg(long)]
    pub rerun: bool,
    /// The head the pull request had before this push (a GitHub `synchronize` event's `before`).
    /// Default: the pull request's current head as the cluster shows it, unless --sha was already
    /// seen for the pull request. Pass it to return the pull request to an earlier commit.
    #[arg(long)]
    pub previous_sha: Option<String>,
}

/// Arguments of `submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Name of the ReviewRun.
    pub run: String,
    /// approved or changes-requested.
    #[arg(long)]
    pub verdict: String,
    /// File holding the review text, or - for stdin. Required for changes-requested.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// Identifier of the review on the code host (e.g. the GitHub review id).
    #[arg(long)]
    pub review_id: Option<String>,
}

/// Runs one plugin command, writing its output to stdout.
pub async fn run(cli: PluginCli) -> Result<(), Error> {
    match cli.command {
        PluginCommand::Trigger(args) => trigger(&cli.connection, args).await,
        PluginCommand::Submit(args) => submit(&cli.connection, args).await,
        PluginCommand::Cancel { run } => cancel(&cli.connection, &run).await,
        PluginCommand::Get { watch } => get(&cli.connection, watch).await,
        PluginCommand::Status { reviewer } => status(&cli.connection, &reviewer).await,
        PluginCommand::Transcript { name } => transcript(&cli.connection, &name).await,
    }
}

/// A client and the namespace to work in, resolved as kubectl does:
/// `--kubeconfig`, else `$KUBECONFIG`/`~/.kube/config`, else the in-cluster config.
pub async fn connect(connection: &Connection) -> Result<(Client, String), Error> {
    let options = KubeConfigOptions { context: connection.context.clone(), ..KubeConfigOptions::default() };
    let config = match &connection.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| Error::Config(e.to_string()))?
        }
        None if connection.context.is_some() => {
            Config::from_kubeconfig(&options).await.map_err(|e| Error::Config(e.to_string()))?
        }
        None => Config::infer().await.map_err(|e| Error::Config(e.to_string()))?,
    };
    let namespace = connection.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(Error::Client)?;
    Ok((client, namespace))
}

fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) is not an error of the command.
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

async fn trigger(connection: &Connection, args: TriggerArgs) -> Result<(), Error> {
    let request = TriggerRequest {
        reviewer: args.reviewer,
        url: args.pr,
        head_sha: args.sha,
        number: args.number,
        rerun_at: args.rerun.then(|| Timestamp::now().as_second()),
        previous_sha: args.previous_sha,
    };
    input::validate_trigger(&request)?;
    let (client, namespace) = connect(connection).await?;
    let runs: Api<ReviewRun> = Api::namespaced(client, &namespace);
    let existing = runs.list(&ListParams::default()).await?.items;
    let plan = input::plan_trigger(&request, &existing);
    let run = input::trigger_run(&request, &plan, &namespace);
    let name = plan.name;
    match runs.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() }, &run).await {
        Ok(_) => {
            print(&format!("reviewrun.review.ao.dev/{name} created\n"));
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = runs.get(&name).await?;
            let existing_pr = &existing.spec.pull_request;
            let other_lineage = request.previous_sha.is_some() && existing_pr.previous_head_sha != request.previous_sha;
            if existing_pr.url != request.url
                || existing_pr.head_sha != request.head_sha
                || existing.spec.reviewer != request.reviewer
                || other_lineage
            {
                return Err(Error::Rejected(format!(
                    "run {name} already exists for a different pull request, SHA or previous SHA ({} at {}, previous {}); use --rerun",
                    existing_pr.url,
                    existing_pr.head_sha,
                    existing_pr.previous_head_sha.as_deref().unwrap_or("none")
                )));
            }
            let row = table::run_row(&existing);
            print(&format!("reviewrun.review.ao.dev/{name} unchanged (phase {}, verdict {})\n", row[3], row[4]));
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

/// The reviewer pod `submit` runs in, from the downward-API environment.
fn submitting_pod() -> Result<Option<SubmittingPod>, Error> {
    let Some(uid) = std::env::var("POD_UID").ok().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let incarnation = match std::env::var("REVIEW_INCARNATION") {
        Ok(text) => Some(text.parse::<i64>().map_err(|_| {
            InvalidInput(format!("environment variable REVIEW_INCARNATION={text:?} is not an integer"))
        })?),
        Err(_) => None,
    };
    Ok(Some(SubmittingPod { uid, incarnation }))
}

fn read_body(path: Option<&PathBuf>) -> Result<String, Error> {
    match path {
        None => Ok(String::new()),
        Some(path) if path.as_os_str() == "-" => {
            let mut body = String::new();
            std::io::stdin()
                .read_to_string(&mut body)
                .map_err(|source| Error::Io { what: "reading the review body from stdin".into(), source })?;
            Ok(body)
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| Error::Io { what: format!("reading --body-file {}", path.display()), source }),
    }
}

/// `submit`: validates, reads the run, patches its status once, and
/// explains a rejection by reading the run again.
///
/// Inside a reviewer pod the namespace defaults to `$REVIEW_NAMESPACE`.
pub async fn submit(connection: &Connection, args: SubmitArgs) -> Result<(), Error> {
    let verdict = input::parse_verdict(&args.verdict)?;
    let body = read_body(args.body_file.as_ref())?;
    input::validate_body(verdict, &body)?;
    input::validate_object_name("RUN", &args.run)?;
    let pod = submitting_pod()?;
    let submission = Submission { verdict, body, review_id: args.review_id };
    let mut connection = connection.clone();
    if connection.namespace.is_none() {
        connection.namespace = std::env::var("REVIEW_NAMESPACE").ok().filter(|n| !n.is_empty());
    }
    let (client, namespace) = connect(&connection).await?;
    let runs: Api<ReviewRun> = Api::namespaced(client, &namespace);
    let name = args.run.as_str();
    let mut backoff = SUBMIT_FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match submit_once(&runs, name, &namespace, &submission, pod.as_ref()).await {
            Err(error) if error.is_transient() && attempt < SUBMIT_ATTEMPTS => {
                eprintln!("submit {name}: {error}; trying again in {}s", backoff.as_secs_f32());
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Attempts of a submission that meets a transient error. The verdict is the review's only
/// output, so a 5xx or an unreachable server (the API server restarting) is worth about 15
/// seconds of retries, beyond the client's own retries of 429, 503 and 504. Each attempt reads
/// the run again, so a write that landed although its answer was lost is seen as already submitted.
const SUBMIT_ATTEMPTS: u32 = 6;
const SUBMIT_FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);

impl Error {
    /// Whether the same request may succeed later unchanged.
    fn is_transient(&self) -> bool {
        match self {
            Self::Server(status) => status.code >= 500 || status.code == 429,
            Self::Client(_) => true,
            _ => false,
        }
    }
}

async fn submit_once(
    runs: &Api<ReviewRun>,
    name: &str,
    namespace: &str,
    submission: &Submission,
    pod: Option<&SubmittingPod>,
) -> Result<(), Error> {
    let read = || async {
        runs.get_opt(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run {name} not found in namespace {namespace}")))
    };
    let patch = match decide(&read().await?, submission, pod)? {
        Some(patch) => patch,
        None => return Ok(()),
    };
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
    match runs.patch_status(name, &params, &Patch::Json::<()>(patch)).await {
        Ok(_) => {
            print(&format!("run {name} submitted: {}\n", submit::verdict_name(submission.verdict)));
            Ok(())
        }
        // A failed `test` (or a schema rule): read again to say why.
        Err(kube::Error::Api(status)) if status.code == 422 => match decide(&read().await?, submission, pod)? {
            Some(_) => Err(Error::Server(status)),
            None => Ok(()),
        },
        Err(other) => Err(other.into()),
    }
}

/// `Some(patch)` to send, `None` when already submitted (after saying so).
fn decide(
    run: &ReviewRun,
    submission: &Submission,
    pod: Option<&SubmittingPod>,
) -> Result<Option<json_patch::Patch>, Error> {
    let name = run.metadata.name.as_deref().unwrap_or_default();
    match submit::decide(run, submission, pod, Timestamp::now()) {
        Decision::Patch(patch) => serde_json::from_value(patch)
            .map(Some)
            .map_err(|e| Error::Rejected(format!("internal error building the patch: {e}"))),
        Decision::AlreadySubmitted => {
            print(&format!("run {name} already submitted: {}\n", submit::verdict_name(submission.verdict)));
            Ok(None)
        }
        Decision::Reject(message) => Err(Error::Rejected(message)),
    }
}

async fn cancel(connection: &Connection, name: &str) -> Result<(), Error> {
    input::validate_object_name("RUN", name)?;
    let (client, namespace) = connect(connection).await?;
    let runs: Api<ReviewRun> = Api::namespaced(client, &namespace);
    let run = runs
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("run {name} not found in namespace {namespace}")))?;
    if run.phase().is_terminal() {
        let row = table::run_row(&run);
        print(&format!("run {name} already finished ({}); nothing to cancel\n", row[3]));
        return Ok(());
    }
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
    runs.patch(name, &params, &Patch::Merge(json!({"spec": {"cancelRequested": true}}))).await?;
    print(&format!("reviewrun.review.ao.dev/{name} cancel requested\n"));
    Ok(())
}

async fn transcript(connection: &Connection, name: &str) -> Result<(), Error> {
    input::validate_object_name("POD|RUN", name)?;
    let (client, namespace) = connect(connection).await?;
    let transcripts: Api<ReviewTranscript> = Api::namespaced(client.clone(), &namespace);
    let pod = match transcripts.get_opt(name).await? {
        Some(transcript) => return print_transcript(&transcript),
        None => {
            let runs: Api<ReviewRun> = Api::namespaced(client, &namespace);
            let run = runs.get_opt(name).await?.ok_or_else(|| {
                Error::NotFound(format!("no transcript and no run named {name} in namespace {namespace}"))
            })?;
            run.status.and_then(|status| status.assignment).map(|assignment| assignment.pod).ok_or_else(|| {
                Error::NotFound(format!("run {name} was never assigned to a reviewer pod, so it has no transcript"))
            })?
        }
    };
    let transcript = transcripts.get_opt(&pod).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "run {name} was reviewed by pod {pod}, whose transcript is not kept (pruned, or never written)"
        ))
    })?;
    print_transcript(&transcript)
}

fn print_transcript(transcript: &ReviewTranscript) -> Result<(), Error> {
    let name = transcript.metadata.name.clone().unwrap_or_default();
    let text = crate::api::decompress(&transcript.spec.data.0)
        .map_err(|source| Error::Io { what: format!("transcript {name} is not valid gzip"), source })?;
    print(&text);
    Ok(())
}

async fn get(connection: &Connection, watch: bool) -> Result<(), Error> {
    let (client, namespace) = connect(connection).await?;
    let runs: Api<ReviewRun> = Api::namespaced(client, &namespace);
    let list = runs.list(&ListParams::default()).await?;
    if list.items.is_empty() && !watch {
        print(&format!("No resources found in {namespace} namespace.\n"));
        return Ok(());
    }
    print(&table::runs_table(&list.items));
    if !watch {
        return Ok(());
    }
    let mut version = list.metadata.resource_version.unwrap_or_default();
    loop {
        let mut events = runs.watch(&WatchParams::default(), &version).await?.boxed();
        while let Some(event) = events.try_next().await? {
            match event {
                WatchEvent::Added(run) | WatchEvent::Modified(run) | WatchEvent::Deleted(run) => {
                    version = run.metadata.resource_version.clone().unwrap_or(version);
                    print(&table::render(&[table::run_row(&run).to_vec()]));
                }
                WatchEvent::Bookmark(bookmark) => version = bookmark.metadata.resource_version,
                WatchEvent::Error(status) => return Err(Error::Server(status)),
            }
        }
    }
}

async fn status(connection: &Connection, name: &str) -> Result<(), Error> {
    input::validate_object_name("REVIEWER", name)?;
    let (client, namespace) = connect(connection).await?;
    let reviewers: Api<Reviewer> = Api::namespaced(client.clone(), &namespace);
    let reviewer = reviewers
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("reviewer {name} not found in namespace {namespace}")))?;
    let runs: Api<ReviewRun> = Api::namespaced(client, &namespace);
    let mut own = runs.list(&ListParams::default()).await?.items;
    own.retain(|run| run.spec.reviewer == name);
    print(&table::reviewer_report(&reviewer, &own));
    Ok(())
}
