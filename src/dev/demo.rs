//! The dev demo: one Reviewer in namespace `demo`, one pull request of a local repository pushed
//! twice, the second push while the demo agent is still reviewing the first, and a live timeline
//! of what happens. The reviewer checks each head out, and the fresh one is told the range left.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::timeline;
use crate::api::{AgentSpec, PullRequest, ReviewRun, ReviewRunSpec, Reviewer, ReviewerSpec, RunPhase, WorkspaceSpec};

pub const NAMESPACE: &str = "demo";
pub const REVIEWER: &str = "review-demo";
const PR: &str = "https://github.com/example/widgets/pull/1";
/// The pushes without git on the machine: no repository, so no checkout.
const FIRST_SHA: &str = "1111111aaaaaaa";
const SECOND_SHA: &str = "2222222bbbbbbb";
/// How long the demo agent "reviews" each run: long enough to be superseded mid-review.
const REVIEW_SECONDS: &str = "6";

/// Plays the demo and prints the timeline until `shutdown`.
pub async fn run(
    client: Client,
    binary: PathBuf,
    state_dir: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let timeline = tokio::spawn(print_timeline(client.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        result = play(&client, &binary, &state_dir) => {
            if let Err(error) = result {
                eprintln!("demo: {error:#}");
            }
            shutdown.await;
        }
        _ = &mut shutdown => {}
    }
    timeline.abort();
}

async fn play(client: &Client, binary: &std::path::Path, state_dir: &std::path::Path) -> anyhow::Result<()> {
    let repository = match super::repository::create(state_dir) {
        Ok(repository) => {
            println!("demo: the pull request's repository is {}", repository.url);
            Some(repository)
        }
        Err(error) => {
            println!("demo: no local repository ({error}); the reviewer gets no checkout");
            None
        }
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(NAMESPACE.into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    namespaces.patch(NAMESPACE, &PatchParams::apply("review-operator-dev"), &Patch::Apply(&ns)).await?;
    super::manifests::apply(
        client,
        "examples/reviewer-rolebinding-demo.yaml",
        include_str!("../../examples/reviewer-rolebinding-demo.yaml"),
    )
    .await?;

    let mut reviewer = Reviewer::new(
        REVIEWER,
        ReviewerSpec {
            // Runs that name their repository get a checkout; others (such as a
            // `kubectl review trigger` for a made-up pull request) are reviewed without one.
            workspace: Some(WorkspaceSpec { derive_clone_url: Some(false), ..WorkspaceSpec::default() }),
            ..ReviewerSpec::new(
                "demo",
                AgentSpec {
                    command: vec![binary.display().to_string(), "demo-agent".into()],
                    args: vec!["--review-seconds".into(), REVIEW_SECONDS.into()],
                    env: Vec::new(),
                    harness: Some("demo-agent".into()),
                    ..AgentSpec::new("review-operator/demo-agent:local")
                },
            )
        },
    );
    reviewer.metadata.namespace = Some(NAMESPACE.into());
    let reviewers: Api<Reviewer> = Api::namespaced(client.clone(), NAMESPACE);
    reviewers.patch(REVIEWER, &PatchParams::apply("review-operator-dev").force(), &Patch::Apply(&reviewer)).await?;

    let runs: Api<ReviewRun> = Api::namespaced(client.clone(), NAMESPACE);
    let clone_url = repository.as_ref().map(|r| r.url.as_str());
    let (first_sha, second_sha) = match &repository {
        Some(repository) => (repository.first.as_str(), repository.second.as_str()),
        None => (FIRST_SHA, SECOND_SHA),
    };
    let first = push(&runs, first_sha, None, clone_url).await?;
    println!("demo: pushed {first_sha:.7}; waiting for the reviewer to start on it");
    wait_for_phase(&runs, &first, RunPhase::Running).await?;
    // Push again while the agent is in the middle of its review.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = push(&runs, second_sha, Some(first_sha), clone_url).await?;
    println!("demo: pushed {second_sha:.7} while {first} is still under review");
    wait_for_phase(&runs, &second, RunPhase::Succeeded).await?;
    println!("demo: done. Explore with kubectl get rr,rvr,pods -n {NAMESPACE}; Ctrl-C stops everything.");
    Ok(())
}

/// Creates the run a CI bot would create for a push of `sha` onto `previous`.
async fn push(
    runs: &Api<ReviewRun>,
    sha: &str,
    previous: Option<&str>,
    clone_url: Option<&str>,
) -> anyhow::Result<String> {
    let name = format!("{REVIEWER}-pr1-{}", &sha[..7]);
    let run = ReviewRun::new(
        &name,
        ReviewRunSpec {
            reviewer: REVIEWER.into(),
            pull_request: PullRequest {
                url: PR.into(),
                number: Some(1),
                head_sha: sha.into(),
                previous_head_sha: previous.map(str::to_owned),
                repository: Some("example/widgets".into()),
                clone_url: clone_url.map(str::to_owned),
            },
            cancel_requested: false,
            timeout: "10m".into(),
            ttl_seconds_after_finished: None,
        },
    );
    match runs.create(&PostParams::default(), &run).await {
        Ok(_) => Ok(name),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(name),
        Err(error) => Err(error.into()),
    }
}

async fn wait_for_phase(runs: &Api<ReviewRun>, name: &str, phase: RunPhase) -> anyhow::Result<()> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(runs.clone(), config).default_backoff().applied_objects().boxed();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| anyhow::anyhow!("run {name} did not reach {phase:?} within two minutes"))?;
        match next {
            Some(Ok(run)) if run.phase() == phase => return Ok(()),
            Some(Ok(run)) if run.phase().is_terminal() => {
                anyhow::bail!("run {name} ended {:?} instead of {phase:?}", run.phase())
            }
            Some(_) => {}
            None => anyhow::bail!("the watch of run {name} ended"),
        }
    }
}

/// Prints a line for every visible change of the demo's runs and Reviewer.
async fn print_timeline(client: Client) {
    let runs: Api<ReviewRun> = Api::namespaced(client.clone(), NAMESPACE);
    let reviewers: Api<Reviewer> = Api::namespaced(client, NAMESPACE);
    let run_lines = watcher(runs, watcher::Config::default()).default_backoff().applied_objects().scan(
        BTreeMap::<String, ReviewRun>::new(),
        |seen, run| {
            let lines = match run {
                Ok(run) => {
                    let lines = timeline::run_changes(seen.get(&run.name_any()), &run);
                    seen.insert(run.name_any(), run);
                    lines
                }
                Err(_) => Vec::new(),
            };
            futures::future::ready(Some(lines))
        },
    );
    let reviewer_lines = watcher(reviewers, watcher::Config::default()).default_backoff().applied_objects().scan(
        BTreeMap::<String, Reviewer>::new(),
        |seen, reviewer| {
            let lines = match reviewer {
                Ok(reviewer) => {
                    let lines = timeline::reviewer_changes(seen.get(&reviewer.name_any()), &reviewer);
                    seen.insert(reviewer.name_any(), reviewer);
                    lines
                }
                Err(_) => Vec::new(),
            };
            futures::future::ready(Some(lines))
        },
    );
    let mut lines = futures::stream::select(run_lines.boxed(), reviewer_lines.boxed());
    while let Some(batch) = lines.next().await {
        for line in batch {
            println!("{} {line}", chrono::Local::now().format("%H:%M:%S%.3f"));
        }
    }
}
