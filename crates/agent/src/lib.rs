//! The in-pod supervisor, `review-operator agent -- <agent command>`: the
//! entrypoint of every reviewer pod.
//!
//! It holds the agent's terminal ([`terminal`]), watches the ReviewRuns
//! assigned to its pod, and types the prompts ([`prompt`]) into the
//! terminal: the full prompt once the first runs are assigned, a follow-up
//! with just the new runs afterwards. On SIGTERM it ends the agent's whole
//! process group. [`demo`] is a deterministic stand-in agent.

pub mod demo;
pub mod handoff;
pub mod prompt;
pub mod reaper;
pub mod terminal;
pub mod transcript;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::signal::unix::{SignalKind, signal};

use review_api as api;

use crate::api::{ReviewRun, Reviewer, RunReason, labels};
use handoff::{Ancestry, EarlierOutcome, Handoff};
use prompt::{PromptContext, Prompted, QueueEntry};
use terminal::{Terminal, TerminalError};
use transcript::TranscriptWriter;
use workspace::Workspace;

/// How long the agent's process group gets between SIGTERM and SIGKILL.
/// Kubernetes' default grace period is 30s; this leaves the supervisor time to exit well within it.
pub const TERMINATION_GRACE: Duration = Duration::from_secs(5);

/// How long the supervisor waits after a newly assigned run for further
/// ones, so that runs assigned by one reconcile arrive in one prompt.
pub const BATCH_WINDOW: Duration = Duration::from_millis(500);

/// Why the supervisor stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("environment variable {name} is {problem}; the reviewer pod sets it (downward API)")]
    Environment { name: &'static str, problem: String },
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    #[error("cannot reach the cluster: {0}")]
    Client(#[from] kube::Error),
    #[error("the watch of ReviewRuns ended")]
    WatchEnded,
    #[error("cannot handle SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
    #[error("installing the binary at {path}: {source}")]
    Install {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Who the supervisor is, from the pod's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub pod_name: String,
    pub pod_uid: String,
    pub namespace: String,
    pub reviewer: String,
    pub incarnation: i64,
}

impl Identity {
    /// Reads `POD_NAME`, `POD_UID`, `REVIEW_NAMESPACE` (or `POD_NAMESPACE`),
    /// `REVIEW_REVIEWER` and `REVIEW_INCARNATION` through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AgentError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|value| !value.is_empty())
                .ok_or(AgentError::Environment { name, problem: "not set".into() })
        };
        let incarnation = required("REVIEW_INCARNATION")?;
        Ok(Self {
            pod_name: required("POD_NAME")?,
            pod_uid: required("POD_UID")?,
            namespace: required("REVIEW_NAMESPACE").or_else(|_| required("POD_NAMESPACE"))?,
            reviewer: required("REVIEW_REVIEWER")?,
            incarnation: incarnation.parse().map_err(|_| AgentError::Environment {
                name: "REVIEW_INCARNATION",
                problem: format!("{incarnation:?}, not an integer"),
            })?,
        })
    }

    /// [`Identity::from_lookup`] on the process environment.
    pub fn from_env() -> Result<Self, AgentError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Copies the running binary to `destination` (mode 0755): what the init
/// container of an injected reviewer pod runs (`/review-operator install
/// /opt/review-operator/review-operator`), so that the operator image needs no shell or `cp`.
pub fn install(destination: &Path) -> Result<(), AgentError> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |source| AgentError::Install { path: destination.display().to_string(), source };
    let source = std::env::current_exe().map_err(failed)?;
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::copy(&source, destination).map_err(failed)?;
    std::fs::set_permissions(destination, std::fs::Permissions::from_mode(0o755)).map_err(failed)?;
    Ok(())
}

/// Runs the supervisor until the agent exits (its exit code) or SIGTERM
/// arrives (then the agent's process group is ended, and 143 is returned).
pub async fn run(command: Vec<String>) -> Result<i32, AgentError> {
    // First of all: from here on a SIGTERM is kept until the loop below reads it, so one that
    // arrives while the agent starts still ends the agent's group and is never lost.
    let mut terminate = signal(SignalKind::terminate()).map_err(AgentError::Signal)?;
    let identity = Identity::from_env()?;
    let client = Client::try_default().await?;
    let reviewer = match Api::<Reviewer>::namespaced(client.clone(), &identity.namespace).get(&identity.reviewer).await
    {
        Ok(reviewer) => Some(reviewer),
        Err(error) => {
            tracing::warn!(reviewer = %identity.reviewer, %error, "cannot read the Reviewer; using the default prompt");
            None
        }
    };
    let context = PromptContext {
        reviewer: identity.reviewer.clone(),
        worker: reviewer.as_ref().map(|r| r.spec.worker_id.clone()).unwrap_or_default(),
        namespace: identity.namespace.clone(),
        pod: identity.pod_name.clone(),
        incarnation: identity.incarnation,
        binary: std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "review-operator".into()),
    };
    let mut transcript_writer = TranscriptWriter::new(client.clone(), &identity, reviewer.as_ref());
    let settings = reviewer.as_ref().and_then(|r| r.spec.workspace.clone()).unwrap_or_default();
    let template = reviewer.and_then(|r| r.spec.agent.prompt);
    let workspace = Workspace::from_lookup(|name| std::env::var(name).ok()).map(|w| w.with_settings(settings));
    reaper::become_subreaper();
    let mut terminal = Terminal::spawn_withholding(&command, &workspace::WITHHELD_ENV)?;
    let transcript = terminal.transcript();
    let mut transcript_tick = tokio::time::interval(transcript::FLUSH_INTERVAL);
    transcript_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let runs: Api<ReviewRun> = Api::namespaced(client, &identity.namespace);
    let selector = format!("{}={}", labels::REVIEWER, identity.reviewer);
    let mut events = watcher(runs.clone(), watcher::Config::default().labels(&selector)).default_backoff().boxed();
    let mut known: BTreeMap<String, ReviewRun> = BTreeMap::new();
    let mut relist: BTreeMap<String, ReviewRun> = BTreeMap::new();
    let mut prompted = Prompted::default();
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let flush = crate::api::deadline::sleep_until(flush_at);
        tokio::select! {
            _ = terminate.recv() => return Ok(stop(&identity, &mut terminal, &mut transcript_writer, &transcript).await),
            code = terminal.wait() => {
                tracing::info!(code, "agent exited");
                terminal.signal_group(libc::SIGKILL);
                reaper::reap_children(TERMINATION_GRACE).await;
                final_flush(&mut transcript_writer, &transcript).await;
                return Ok(i32::try_from(code).unwrap_or(1));
            }
            _ = transcript_tick.tick() => transcript_writer.flush(&transcript, false).await,
            () = flush => {
                flush_at = None;
                let entries = prompted.take_new(known.values(), &identity.pod_uid);
                if entries.is_empty() {
                    continue;
                }
                // A checkout can take a while; a SIGTERM meanwhile still ends the agent in time.
                let entries = tokio::select! {
                    entries = prepare(workspace.as_ref(), &runs, &known, entries, &identity.pod_name) => entries,
                    _ = terminate.recv() => {
                        return Ok(stop(&identity, &mut terminal, &mut transcript_writer, &transcript).await);
                    }
                };
                if entries.is_empty() {
                    continue;
                }
                let first_number = prompted.len() + 1;
                let first = prompted.is_empty();
                prompted.listed(entries.len());
                let text = if first {
                    prompt::initial_prompt(template.as_deref(), &context, &entries)
                } else {
                    prompt::follow_up_prompt(&context, &entries, first_number)
                };
                let names: Vec<&str> = entries.iter().map(|e| e.run.as_str()).collect();
                tracing::info!(runs = ?names, first, "prompting the agent");
                terminal.type_text(&text)?;
            }
            event = events.next() => {
                match event {
                    Some(Ok(watcher::Event::Init)) => relist.clear(),
                    Some(Ok(watcher::Event::InitApply(run))) => {
                        if let Some(name) = run.metadata.name.clone() {
                            relist.insert(name, run);
                        }
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        known = std::mem::take(&mut relist);
                        flush_at.get_or_insert_with(|| tokio::time::Instant::now() + BATCH_WINDOW);
                    }
                    Some(Ok(watcher::Event::Apply(run))) => {
                        if let Some(name) = run.metadata.name.clone() {
                            known.insert(name, run);
                            flush_at.get_or_insert_with(|| tokio::time::Instant::now() + BATCH_WINDOW);
                        }
                    }
                    Some(Ok(watcher::Event::Delete(run))) => {
                        if let Some(name) = &run.metadata.name {
                            known.remove(name);
                        }
                    }
                    Some(Err(error)) => tracing::warn!(%error, "watching ReviewRuns"),
                    None => return Err(AgentError::WatchEnded),
                }
            }
        }
    }
}

/// Ends the agent's process group on SIGTERM, writes the complete transcript and returns the
/// supervisor's exit code.
async fn stop(
    identity: &Identity,
    terminal: &mut Terminal,
    writer: &mut TranscriptWriter,
    transcript: &std::sync::Mutex<transcript::Transcript>,
) -> i32 {
    tracing::info!(pod = %identity.pod_name, "SIGTERM: ending the agent's process group");
    terminal.terminate(TERMINATION_GRACE).await;
    reaper::reap_children(TERMINATION_GRACE).await;
    final_flush(writer, transcript).await;
    128 + libc::SIGTERM
}

/// How long the last transcript write may take once the agent is gone: with
/// [`TERMINATION_GRACE`], well within the pod's termination grace period.
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes the complete transcript once the agent has ended.
async fn final_flush(writer: &mut TranscriptWriter, transcript: &std::sync::Mutex<transcript::Transcript>) {
    if tokio::time::timeout(FINAL_FLUSH_TIMEOUT, writer.flush(transcript, true)).await.is_err() {
        tracing::warn!("the last transcript write did not finish in time");
    }
}

/// The name of the file, in a run's handoff folder, that holds the earlier review's text.
pub const EARLIER_REVIEW_FILE: &str = "earlier-review.md";

/// Fills in each entry's checkout and handoff. A run whose checkout fails is
/// failed (reason CheckoutFailed) and left out, and the others go on.
async fn prepare(
    workspace: Option<&Workspace>,
    api: &Api<ReviewRun>,
    known: &BTreeMap<String, ReviewRun>,
    entries: Vec<QueueEntry>,
    pod: &str,
) -> Vec<QueueEntry> {
    let mut prepared = Vec::with_capacity(entries.len());
    for mut entry in entries {
        let Some(run) = known.get(&entry.run) else { continue };
        let source = workspace.and_then(|workspace| workspace.clone_source(&run.spec.pull_request));
        let clone = workspace.zip(source.as_deref());
        if let Some((workspace, url)) = clone {
            match workspace.checkout(url, &entry.head_sha, &entry.run).await {
                Ok(path) => entry.checkout = Some(path.display().to_string()),
                Err(error) => {
                    let message = format!(
                        "Checking out {} from {} failed after {} attempts: {error}",
                        entry.head_sha,
                        without_credentials(url),
                        workspace::CHECKOUT_ATTEMPTS
                    );
                    tracing::warn!(run = %entry.run, sha = %entry.head_sha, %message, "checkout failed");
                    fail_checkout(api, &entry.run, &message).await;
                    continue;
                }
            }
        }
        if let Some(earlier) = handoff::earlier_run(known.values(), run) {
            let ancestry = match clone {
                Some((workspace, url)) => match workspace.is_ancestor(url, &earlier.head_sha, &entry.head_sha).await {
                    Some(true) => Ancestry::Ancestor,
                    Some(false) => Ancestry::Rewritten,
                    None => Ancestry::Unknown,
                },
                None => Ancestry::Unknown,
            };
            let review_file = match (&earlier.outcome, workspace) {
                (EarlierOutcome::Reviewed { body, .. }, Some(workspace)) if !body.is_empty() => {
                    match workspace.write_handoff(&entry.run, EARLIER_REVIEW_FILE, body) {
                        Ok(path) => Some(path.display().to_string()),
                        Err(error) => {
                            tracing::warn!(run = %entry.run, %error, "cannot write the earlier review");
                            None
                        }
                    }
                }
                _ => None,
            };
            let transcript_pod = earlier.pod.clone().filter(|earlier| earlier != pod);
            entry.handoff = Some(Handoff { earlier, ancestry, review_file, transcript_pod });
        }
        prepared.push(entry);
    }
    prepared
}

/// How often the supervisor tries to record a failed checkout before it leaves the run to
/// its timeout.
const FAIL_ATTEMPTS: u32 = 5;

/// Moves `run` from Running to Failed with reason CheckoutFailed. The API server admits the
/// write only from the pod the run is assigned to, and only while it is Running.
async fn fail_checkout(api: &Api<ReviewRun>, run: &str, message: &str) {
    let patch = serde_json::json!({"status": {
        "phase": "Failed",
        "reason": RunReason::CheckoutFailed.as_str(),
        "message": message,
        "completionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    }});
    let params = kube::api::PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..Default::default() };
    let mut wait = std::time::Duration::from_millis(500);
    for attempt in 1..=FAIL_ATTEMPTS {
        match api.patch_status(run, &params, &kube::api::Patch::Merge(&patch)).await {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code < 500 && status.code != 429 => {
                tracing::warn!(run, code = status.code, message = %status.message, "the API server refused the failed checkout");
                return;
            }
            Err(error) => {
                tracing::warn!(run, attempt, %error, "recording the failed checkout");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// The field manager of the supervisor's own writes.
pub const FIELD_MANAGER: &str = "review-operator-agent";

/// `url` without a user or password in it, for messages.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains('/') => format!("{scheme}://{host}"),
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_a_clone_url_without_its_credentials() {
        assert_eq!(without_credentials("https://x:secret@github.com/a/b.git"), "https://github.com/a/b.git");
        assert_eq!(without_credentials("https://github.com/a/b.git"), "https://github.com/a/b.git");
        assert_eq!(without_credentials("file:///srv/a@b/c.git"), "file:///srv/a@b/c.git");
        assert_eq!(without_credentials("git@github.com:a/b.git"), "git@github.com:a/b.git");
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |name| map.get(name).cloned()
    }

    const FULL: [(&str, &str); 5] = [
        ("POD_NAME", "review-w1-2"),
        ("POD_UID", "uid-2"),
        ("REVIEW_NAMESPACE", "team"),
        ("REVIEW_REVIEWER", "review-w1"),
        ("REVIEW_INCARNATION", "2"),
    ];

    #[test]
    fn identity_comes_from_the_downward_api() {
        let identity = Identity::from_lookup(env(&FULL)).unwrap();
        assert_eq!(
            identity,
            Identity {
                pod_name: "review-w1-2".into(),
                pod_uid: "uid-2".into(),
                namespace: "team".into(),
                reviewer: "review-w1".into(),
                incarnation: 2
            }
        );
        let pod_namespace = [FULL[0], FULL[1], ("POD_NAMESPACE", "other"), FULL[3], FULL[4]];
        assert_eq!(Identity::from_lookup(env(&pod_namespace)).unwrap().namespace, "other");
    }

    #[test]
    fn missing_or_malformed_identity_names_the_variable() {
        let err = Identity::from_lookup(env(&FULL[..4])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable REVIEW_INCARNATION is not set; the reviewer pod sets it (downward API)"
        );
        let bad = [FULL[0], FULL[1], FULL[2], FULL[3], ("REVIEW_INCARNATION", "two")];
        let err = Identity::from_lookup(env(&bad)).unwrap_err();
        assert!(
            err.to_string().starts_with("environment variable REVIEW_INCARNATION is \"two\", not an integer"),
            "{err}"
        );
        let err = Identity::from_lookup(env(&FULL[1..])).unwrap_err();
        assert!(err.to_string().contains("POD_NAME is not set"), "{err}");
    }

    #[test]
    fn install_copies_an_executable() {
        let dir = std::env::temp_dir().join(format!("review-operator-install-{}", std::process::id()));
        let destination = dir.join("bin/review-operator");
        install(&destination).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&destination).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
