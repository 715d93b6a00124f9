//! The chaos soak: the whole system, as separate processes, for minutes while things break.
//!
//! ```text
//! cargo build --release --bins
//! cargo run --release --example soak -- --minutes 10 --seed 1
//! ```
//!
//! It starts the dev cluster as a child process with `--data-dir`, two `review-operator
//! controller` replicas with leader election, `review-operator webhook`, and Reviewers whose pods
//! run the demo agent. Then, at random but reproducibly from the seed, it pushes to pull requests
//! through the API, through `kubectl review trigger` and through signed webhook deliveries (new
//! commits, bursts in one second, with and without lineage, force-pushes back to an earlier
//! commit), re-triggers the same commit, replays old pushes and redelivers old deliveries, cancels
//! runs, tries late verdicts from the admin's, the replaced pods' and other pods' identities,
//! injects API faults (5xx, 429, slow answers, dropped watches) through the dev cluster's admin
//! endpoint, SIGKILLs a controller replica (the leader or the standby) and starts it again, deletes
//! reviewer pods, deletes and re-creates Reviewers, and SIGKILLs the dev cluster and restarts it on
//! the same data directory. Now and then it probes one Reviewer: it waits until the Reviewer is
//! quiet, pushes to (or re-triggers) a pull request whose run is Running, and checks that the
//! reviewer restarted exactly when that run went stale.
//!
//! The oracle is the scenario's own log (the order it pushed, the lineage it gave, which identity
//! submitted), never the metadata the controller reads. The checks are listed in the README's
//! "Chaos soak" section. The seed fixes every choice; how many steps fit in the time depends on
//! the machine. Prints one JSON line with the counts and the violations; exits 1 on any
//! violation. Progress goes to stderr; the processes' logs stay in the working folder with `--keep`.

mod probe;
mod processes;
mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use futures::TryStreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use review_operator::api::{
    AgentSpec, PullRequest, PullRequestMatch, ReviewRun, ReviewRunSpec, Reviewer, ReviewerSpec, RunPhase, RunReason,
};
use serde_json::json;
use tokio::process::Child;

use processes::Folder;
use webhook::WebhookSender;

const NAMESPACE: &str = "soak";
const PULL_REQUESTS_PER_REVIEWER: usize = 3;
/// Every fifth Reviewer reviews slowly, so that probes find its runs Running.
const SLOW_EVERY: usize = 5;
const SLOW_REVIEW_SECONDS: u64 = 12;

#[derive(Debug, clap::Parser)]
#[command(about = "Chaos soak of review-operator on a dev cluster")]
struct Args {
    /// How long to run the scenario before settling.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Seed of the scenario.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Reviewers to create.
    #[arg(long, default_value_t = 20)]
    reviewers: usize,
    /// The review-operator binary [default: beside this example's folder].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The kubectl-review plugin binary [default: beside this example's folder].
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// kubectl, for `kubectl review trigger` [default: $KUBECTL, else `kubectl` on PATH; without
    /// one, the plugin binary is run directly].
    #[arg(long, env = "KUBECTL")]
    kubectl: Option<PathBuf>,
    /// Keep the working folder (data, kubeconfig, logs) at the end.
    #[arg(long)]
    keep: bool,
    /// Internal: serve the dev cluster at LISTEN, writing KUBECONFIG, on DATA_DIR, pods in POD_DIR.
    #[arg(long, hide = true, num_args = 4, value_names = ["LISTEN", "KUBECONFIG", "DATA_DIR", "POD_DIR"])]
    serve_cluster: Option<Vec<String>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(serve) = &args.serve_cluster {
        return processes::serve_cluster(serve).await;
    }
    let report = Soak::run(&args).await?;
    println!("{}", serde_json::to_string(&report)?);
    if !report["violations"].as_array().is_none_or(Vec::is_empty) {
        std::process::exit(1);
    }
    Ok(())
}

/// A pull request as the scenario pushed it.
#[derive(Default)]
struct PullRequestLog {
    /// The Reviewer it belongs to.
    reviewer: String,
    /// Every head it had, in push order.
    heads: Vec<String>,
    /// Every push: the commit and the previous head it named, if any.
    pushes: Vec<(String, Option<String>)>,
    /// Commits replaced by a push that named them as its previous head.
    replaced_with_lineage: BTreeSet<String>,
    /// The scenario cancelled a run of the current head.
    cancelled_head: bool,
    /// The Reviewer was deleted since the current head was pushed.
    reviewer_deleted: bool,
}

/// A run the API server acknowledged.
struct CreatedRun {
    /// When the scenario got the acknowledgement.
    at: Instant,
}

/// A webhook delivery the receiver answered with 2xx, kept for redelivery.
struct Delivery {
    payload: serde_json::Value,
    /// The runs that delivery stands for.
    runs: Vec<String>,
}

/// What the soak did, for the report.
#[derive(Default)]
struct Counts {
    runs: u64,
    pushes: u64,
    bursts: u64,
    force_pushes: u64,
    retriggers: u64,
    replays: u64,
    webhook_deliveries: u64,
    webhook_redeliveries: u64,
    plugin_triggers: u64,
    cancels: u64,
    late_verdicts_tried: u64,
    late_verdicts_from_replaced_pods: u64,
    late_verdicts_from_other_pods: u64,
    late_verdicts_accepted: u64,
    controller_kills: u64,
    /// Replicas that exited by themselves and were started again.
    controller_exits: u64,
    webhook_exits: u64,
    pod_kills: u64,
    cluster_kills: u64,
    reviewer_recreations: u64,
    faults: BTreeMap<&'static str, u64>,
    probes: u64,
    probes_skipped: u64,
    probe_restarts_expected: i64,
    probe_restarts_seen: i64,
    /// Steps that can make Running work stale: pushes replacing a head, cancels.
    stale_steps: i64,
}

/// A pod identity the soak saw: its kubeconfig (with its token), read from the pod's folder.
struct PodIdentity {
    kubeconfig: String,
}

impl PodIdentity {
    async fn client(&self) -> anyhow::Result<Client> {
        processes::client_from(Kubeconfig::from_yaml(&self.kubeconfig)?).await
    }
}

struct Soak {
    rng: StdRng,
    folder: Folder,
    binary: PathBuf,
    plugin: PathBuf,
    kubectl: Option<PathBuf>,
    soak_id: String,
    listen: String,
    cluster: Child,
    controllers: Vec<(Child, u16)>,
    webhook: (Child, u16),
    sender: WebhookSender,
    client: Client,
    /// Pull requests by URL.
    log: BTreeMap<String, PullRequestLog>,
    /// The Reviewers as created, by name, and the ones deleted and not created again yet.
    reviewers: BTreeMap<String, Reviewer>,
    missing_reviewers: BTreeSet<String>,
    /// Restarts counted by Reviewers the scenario deleted.
    retired_restarts: i64,
    /// Every run the API server acknowledged.
    created: BTreeMap<String, CreatedRun>,
    /// Replays expected to fail.
    replays: BTreeSet<String>,
    deliveries: Vec<Delivery>,
    /// Pod identities by pod UID.
    identities: BTreeMap<String, PodIdentity>,
    counts: Counts,
    violations: Vec<String>,
    /// Violations found by the run watcher (a run that left a terminal phase).
    watched: Arc<Mutex<Vec<String>>>,
}

impl Soak {
    async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
        let binary = processes::built_binary(args.binary.clone(), "review-operator")?;
        let plugin = processes::built_binary(args.plugin.clone(), "kubectl-review")?;
        let kubectl = args.kubectl.clone().or_else(|| which("kubectl"));
        if kubectl.is_none() {
            eprintln!("soak: no kubectl found; running {} directly for `kubectl review`", plugin.display());
        }
        let soak_id = format!("{}-{}", args.seed, std::process::id());
        let folder = Folder { root: std::env::temp_dir().join(format!("review-soak-{soak_id}")) };
        std::fs::create_dir_all(folder.data())?;
        let secret = format!("soak-secret-{soak_id}");
        std::fs::write(folder.webhook_secret(), &secret)?;
        let listen = format!("127.0.0.1:{}", processes::free_port()?);
        let cluster = processes::start_cluster(&listen, &folder).await?;
        let client = processes::client(&folder.kubeconfig()).await?;
        review_operator::dev::manifests::install(&client).await.context("installing CRDs and policies")?;
        let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n");
        review_operator::dev::manifests::apply(&client, "namespace", &namespace).await?;
        let rolebinding = include_str!("../reviewer-rolebinding-demo.yaml").replace("demo", NAMESPACE);
        review_operator::dev::manifests::apply(&client, "reviewer-rolebinding", &rolebinding).await?;
        let webhook_port = processes::free_port()?;
        let webhook = (processes::start_webhook(&binary, &folder, webhook_port)?, webhook_port);
        let mut soak = Self {
            rng: StdRng::seed_from_u64(args.seed),
            folder,
            binary,
            plugin,
            kubectl,
            soak_id,
            listen,
            cluster,
            controllers: Vec::new(),
            webhook,
            sender: WebhookSender::new(webhook_port, secret.into_bytes()),
            client,
            log: BTreeMap::new(),
            reviewers: BTreeMap::new(),
            missing_reviewers: BTreeSet::new(),
            retired_restarts: 0,
            created: BTreeMap::new(),
            replays: BTreeSet::new(),
            deliveries: Vec::new(),
            identities: BTreeMap::new(),
            counts: Counts::default(),
            violations: Vec::new(),
            watched: Arc::default(),
        };
        for replica in 0..2 {
            let port = processes::free_port()?;
            let controller = processes::start_controller(&soak.binary, &soak.folder, NAMESPACE, replica, port)?;
            soak.controllers.push((controller, port));
        }
        let overlaps = Arc::new(AtomicU64::new(0));
        let ports = soak.controllers.iter().map(|(_, port)| *port).collect();
        let sampler = tokio::spawn(processes::sample_leaders(ports, overlaps.clone()));
        let run_watcher = tokio::spawn(watch_terminal_phases(soak.client.clone(), soak.watched.clone()));
        soak.create_reviewers(args.reviewers).await?;
        let ready_by = Instant::now() + Duration::from_secs(60);
        while !soak.sender.ready().await {
            anyhow::ensure!(Instant::now() < ready_by, "the webhook receiver did not become ready within a minute");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let started = Instant::now();
        let length = Duration::from_secs_f64(args.minutes * 60.0);
        let mut last_cluster_kill = Instant::now();
        let mut last_recreation = Instant::now();
        while started.elapsed() < length {
            // At least one cluster crash, halfway through at the latest.
            if soak.counts.cluster_kills == 0 && started.elapsed() > length / 2 {
                last_cluster_kill = Instant::now();
                if let Err(error) = soak.kill_cluster().await {
                    eprintln!("soak: kill the cluster failed: {error:#}");
                }
            }
            soak.restart_exited_processes()?;
            soak.recreate_missing_reviewers().await;
            soak.observe_pod_identities();
            let roll = soak.rng.random_range(0..100);
            let (what, outcome) = match roll {
                0..28 => ("push", soak.push(false).await),
                28..34 => ("webhook push", soak.webhook_push().await),
                34..38 => ("kubectl review trigger", soak.plugin_push().await),
                38..44 => ("burst", soak.burst().await),
                44..48 => ("force-push", soak.push(true).await),
                48..53 => ("re-trigger", soak.retrigger().await),
                53..57 => ("replay", soak.replay().await),
                57..59 => ("redelivery", soak.redeliver().await),
                59..63 => ("cancel", soak.cancel().await),
                63..69 => ("late verdict", soak.late_verdict().await),
                69..73 => ("kill a controller", soak.kill_controller().await),
                73..79 => ("kill a pod", soak.kill_pod().await),
                79..84 => ("fault", soak.inject_fault().await),
                84..88 => ("probe", soak.probe().await),
                88..90 if last_recreation.elapsed() > Duration::from_secs(25) => {
                    last_recreation = Instant::now();
                    ("re-create a Reviewer", soak.recreate_reviewer().await)
                }
                90..92 if last_cluster_kill.elapsed() > Duration::from_secs(30) => {
                    last_cluster_kill = Instant::now();
                    ("kill the cluster", soak.kill_cluster().await)
                }
                _ => ("pause", Ok(())),
            };
            if let Err(error) = outcome {
                // The cluster or a controller may be down at that moment: not a violation.
                eprintln!("soak: {what} failed: {error:#}");
            }
            let pause = soak.rng.random_range(20..300);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        eprintln!("soak: settling");
        soak.settle().await;
        soak.check().await?;
        sampler.abort();
        run_watcher.abort();
        let overlaps = overlaps.load(Ordering::SeqCst);
        if overlaps > 0 {
            soak.violations.push(format!("both replicas reported leading at once in {overlaps} samples"));
        }
        let watched = std::mem::take(&mut *soak.watched.lock().unwrap_or_else(|p| p.into_inner()));
        soak.violations.extend(watched);
        let (supersedes, restarts) = soak.totals().await?;
        let restarts = restarts + soak.retired_restarts;
        if restarts > soak.counts.stale_steps {
            soak.violations.push(format!(
                "{restarts} restarts, more than the {} steps that could make Running work stale",
                soak.counts.stale_steps
            ));
        }
        soak.stop().await;
        let leftovers = processes::leftover_pod_processes(&format!("REVIEW_SOAK={}", soak.soak_id));
        soak.violations.extend(leftovers);
        if args.keep {
            eprintln!("soak: kept {}", soak.folder.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&soak.folder.root);
        }
        let c = &soak.counts;
        Ok(json!({
            "seed": args.seed, "minutes": args.minutes, "reviewers": args.reviewers,
            "runs": c.runs, "pushes": c.pushes, "bursts": c.bursts, "force_pushes": c.force_pushes,
            "retriggers": c.retriggers, "replays": c.replays,
            "webhook_deliveries": c.webhook_deliveries, "webhook_redeliveries": c.webhook_redeliveries,
            "plugin_triggers": c.plugin_triggers, "cancels": c.cancels,
            "late_verdicts_tried": c.late_verdicts_tried,
            "late_verdicts_from_replaced_pods": c.late_verdicts_from_replaced_pods,
            "late_verdicts_from_other_pods": c.late_verdicts_from_other_pods,
            "late_verdicts_accepted": c.late_verdicts_accepted,
            "controller_kills": c.controller_kills, "controller_exits": c.controller_exits,
            "webhook_exits": c.webhook_exits, "pod_kills": c.pod_kills, "cluster_kills": c.cluster_kills,
            "reviewer_recreations": c.reviewer_recreations, "faults": c.faults,
            "probes": c.probes, "probes_skipped": c.probes_skipped,
            "probe_restarts_expected": c.probe_restarts_expected, "probe_restarts_seen": c.probe_restarts_seen,
            "stale_steps": c.stale_steps, "supersedes": supersedes, "restarts": restarts,
            "violations": soak.violations,
        }))
    }

    fn runs_api(&self) -> Api<ReviewRun> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    fn reviewers_api(&self) -> Api<Reviewer> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    async fn create_reviewers(&mut self, count: usize) -> anyhow::Result<()> {
        for index in 0..count {
            let name = format!("review-w{index}");
            let seconds =
                if index % SLOW_EVERY == 0 { SLOW_REVIEW_SECONDS } else { self.rng.random_range(1..=3) }.to_string();
            let mut reviewer = Reviewer::new(
                &name,
                ReviewerSpec {
                    r#match: Some(PullRequestMatch {
                        repositories: vec![format!("acme/w{index}")],
                        head_branch_prefix: None,
                        authors: Vec::new(),
                        drafts: false,
                        skip_labels: vec!["review:skip".into()],
                    }),
                    ..ReviewerSpec::new(
                        format!("w{index}"),
                        AgentSpec {
                            image: "review-operator/demo-agent:local".into(),
                            command: vec![self.binary.display().to_string()],
                            args: vec!["demo-agent".into(), "--review-seconds".into(), seconds],
                            env: vec![k8s_openapi::api::core::v1::EnvVar {
                                name: "REVIEW_SOAK".into(),
                                value: Some(self.soak_id.clone()),
                                value_from: None,
                            }],
                            resources: None,
                            harness: Some("demo-agent".into()),
                            prompt: None,
                            security_context: None,
                        },
                    )
                },
            );
            reviewer.metadata.namespace = Some(NAMESPACE.into());
            self.reviewers_api().create(&PostParams::default(), &reviewer).await.context("creating a Reviewer")?;
            self.reviewers.insert(name.clone(), reviewer);
            for number in 1..=PULL_REQUESTS_PER_REVIEWER {
                let url = format!("https://github.com/acme/w{index}/pull/{number}");
                self.log.insert(url, PullRequestLog { reviewer: name.clone(), ..PullRequestLog::default() });
            }
        }
        Ok(())
    }

    fn sha(&mut self) -> String {
        (0..40).map(|_| char::from_digit(self.rng.random_range(0..16), 16).unwrap_or('0')).collect()
    }

    fn run_name(&mut self) -> String {
        // Random names: their order says nothing of the order of creation.
        format!("soak-{}", &self.sha()[..12])
    }

    fn pick_pull_request(&mut self) -> String {
        let index = self.rng.random_range(0..self.log.len());
        self.log.keys().nth(index).cloned().unwrap_or_default()
    }

    fn acknowledged(&mut self, name: &str) {
        self.created.insert(name.to_owned(), CreatedRun { at: Instant::now() });
        self.counts.runs += 1;
    }

    async fn create_run(&mut self, url: &str, sha: &str, previous: Option<&str>) -> anyhow::Result<String> {
        let reviewer = self.log.get(url).map(|log| log.reviewer.clone()).unwrap_or_default();
        let name = self.run_name();
        let mut pull_request = PullRequest::new(url, sha);
        pull_request.previous_head_sha = previous.map(str::to_owned);
        let run = ReviewRun::new(
            &name,
            ReviewRunSpec {
                reviewer,
                pull_request,
                cancel_requested: false,
                timeout: "10m".into(),
                ttl_seconds_after_finished: None,
            },
        );
        self.runs_api().create(&PostParams::default(), &run).await.context("creating a run")?;
        self.acknowledged(&name);
        Ok(name)
    }

    /// The commit of a push to `url`: a new one, or (`back`) one the pull request had before.
    fn next_commit(&mut self, url: &str, back: bool) -> String {
        let heads = &self.log[url].heads;
        let earlier: Vec<String> = heads.iter().filter(|h| Some(*h) != heads.last()).cloned().collect();
        if back && !earlier.is_empty() {
            self.counts.force_pushes += 1;
            let index = self.rng.random_range(0..earlier.len());
            return earlier[index].clone();
        }
        self.sha()
    }

    /// A push to a random pull request through the API: a new commit, or (`back`) one it had before.
    async fn push(&mut self, back: bool) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        let sha = self.next_commit(&url, back);
        // A force-push back needs its lineage: without it the commit, seen before, is a replay.
        let with_lineage = back || self.rng.random_bool(0.7);
        let previous = self.log[&url].heads.last().cloned().filter(|_| with_lineage);
        self.create_run(&url, &sha, previous.as_deref()).await?;
        self.record_push(&url, sha, previous)
    }

    /// Records an acknowledged push in the pull request's log.
    fn record_push(&mut self, url: &str, sha: String, previous: Option<String>) -> anyhow::Result<()> {
        let log = self.log.get_mut(url).context("pull request")?;
        if let Some(previous) = &previous {
            log.replaced_with_lineage.insert(previous.clone());
        }
        if log.heads.last().is_some_and(|head| *head != sha) {
            self.counts.stale_steps += 1;
        }
        log.replaced_with_lineage.remove(&sha);
        log.pushes.push((sha.clone(), previous));
        log.heads.push(sha);
        log.cancelled_head = false;
        log.reviewer_deleted = false;
        self.counts.pushes += 1;
        Ok(())
    }

    /// A push as GitHub delivers it: `opened` for a pull request's first head, else
    /// `synchronize` from its current head (or, now and then, a force-push back).
    async fn webhook_push(&mut self) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        let back = self.rng.random_bool(0.2);
        let sha = self.next_commit(&url, back);
        let before = self.log[&url].heads.last().cloned();
        let (payload, answer) = self.deliver_push(&url, before.as_deref(), &sha).await?;
        if answer.created.len() + answer.unchanged.len() != 1 {
            self.violations.push(format!(
                "a delivery for {url} at {} matched one Reviewer but stands for runs {:?} and {:?}",
                &sha[..7],
                answer.created,
                answer.unchanged
            ));
        }
        let runs = answer.created.iter().chain(&answer.unchanged).cloned().collect();
        self.deliveries.push(Delivery { payload, runs });
        self.record_push(&url, sha, before)
    }

    /// Delivers the push of `sha` (`synchronize` from `before`, or `opened`) and records the runs
    /// it created as acknowledged; a non-2xx answer is an error (the push did not happen).
    async fn deliver_push(
        &mut self,
        url: &str,
        before: Option<&str>,
        sha: &str,
    ) -> anyhow::Result<(serde_json::Value, webhook::Answer)> {
        let payload = webhook::push_payload(url, before, sha).context("a soak pull request URL")?;
        let answer = self.sender.deliver(&payload).await?;
        anyhow::ensure!(answer.status < 300, "the receiver answered {}", answer.status);
        self.counts.webhook_deliveries += 1;
        for name in &answer.created {
            self.acknowledged(name);
        }
        Ok((payload, answer))
    }

    /// A delivery sent again (GitHub's redelivery): it must create nothing.
    async fn redeliver(&mut self) -> anyhow::Result<()> {
        if self.deliveries.is_empty() {
            return Ok(());
        }
        let index = self.rng.random_range(0..self.deliveries.len());
        let answer = self.sender.deliver(&self.deliveries[index].payload).await?;
        anyhow::ensure!(answer.status < 300, "the receiver answered {}", answer.status);
        self.counts.webhook_redeliveries += 1;
        let delivery = &self.deliveries[index];
        if !answer.created.is_empty() || answer.unchanged != delivery.runs {
            self.violations.push(format!(
                "a redelivery created {:?} (unchanged {:?}); the first delivery stood for {:?}",
                answer.created, answer.unchanged, delivery.runs
            ));
        }
        Ok(())
    }

    /// `kubectl review trigger` for a new commit of a random pull request.
    async fn plugin_push(&mut self) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        let sha = self.sha();
        let previous = self.log[&url].heads.last().cloned().filter(|_| self.rng.random_bool(0.5));
        let Some(name) = self.plugin_trigger(&url, &sha, previous.as_deref(), false).await? else {
            anyhow::bail!("kubectl review trigger found a run for a new commit {sha}");
        };
        self.acknowledged(&name);
        // Without --previous-sha the plugin names the head the cluster shows; the log keeps only
        // the lineage the scenario gave.
        self.record_push(&url, sha, previous)
    }

    /// Runs `kubectl review trigger`; the created run's name, or `None` when it said unchanged.
    async fn plugin_trigger(
        &mut self,
        url: &str,
        sha: &str,
        previous: Option<&str>,
        rerun: bool,
    ) -> anyhow::Result<Option<String>> {
        let reviewer = self.log[url].reviewer.clone();
        let mut command = match &self.kubectl {
            Some(kubectl) => {
                let mut command = tokio::process::Command::new(kubectl);
                command.arg("review");
                let plugin_dir = self.plugin.parent().context("the plugin's folder")?.to_path_buf();
                let path = std::env::var_os("PATH").unwrap_or_default();
                let paths = std::iter::once(plugin_dir).chain(std::env::split_paths(&path));
                command.env("PATH", std::env::join_paths(paths)?);
                command
            }
            None => tokio::process::Command::new(&self.plugin),
        };
        command.args(["--namespace", NAMESPACE, "trigger", "--reviewer", &reviewer, "--pr", url, "--sha", sha]);
        if let Some(previous) = previous {
            command.args(["--previous-sha", previous]);
        }
        if rerun {
            command.arg("--rerun");
        }
        let output = command.env("KUBECONFIG", self.folder.kubeconfig()).output().await?;
        self.counts.plugin_triggers += 1;
        let stdout = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(output.status.success(), "kubectl review trigger: {}", String::from_utf8_lossy(&output.stderr));
        let name = |suffix: &str| {
            stdout.lines().find_map(|line| line.strip_prefix("reviewrun.review.ao.dev/")?.strip_suffix(suffix))
        };
        match (name(" created"), stdout.contains(" unchanged ")) {
            (Some(created), _) => Ok(Some(created.to_owned())),
            (None, true) => Ok(None),
            (None, false) => anyhow::bail!("kubectl review trigger printed {stdout:?}"),
        }
    }

    /// Two or three pushes to one pull request within the same second, each naming the last, or
    /// none of them with lineage (the API server's order of creation then decides).
    async fn burst(&mut self) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        self.counts.bursts += 1;
        let with_lineage = self.rng.random_bool(0.5);
        for _ in 0..self.rng.random_range(2..=3) {
            let previous = self.log[&url].heads.last().cloned().filter(|_| with_lineage);
            let sha = self.sha();
            self.create_run(&url, &sha, previous.as_deref()).await?;
            self.record_push(&url, sha, previous)?;
        }
        Ok(())
    }

    /// The same head triggered again, through the API or `kubectl review trigger --rerun`:
    /// nothing restarts, and the pull request's head stays.
    async fn retrigger(&mut self) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        let Some(head) = self.log[&url].heads.last().cloned() else { return Ok(()) };
        self.retrigger_head(&url, &head).await
    }

    async fn retrigger_head(&mut self, url: &str, head: &str) -> anyhow::Result<()> {
        if self.rng.random_bool(0.3) {
            if let Some(name) = self.plugin_trigger(url, head, None, true).await? {
                self.acknowledged(&name);
            }
        } else {
            self.create_run(url, head, None).await?;
        }
        self.counts.retriggers += 1;
        Ok(())
    }

    /// A push the pull request moved past, delivered again with the lineage it had: it must fail.
    /// Only commits a later push named as its previous head are known to be past; a replay whose
    /// previous head is the current one would be a legitimate force-push back, so none is made.
    async fn replay(&mut self) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        let log = &self.log[&url];
        let head = log.heads.last().cloned();
        let candidates: Vec<(String, Option<String>)> = log
            .pushes
            .iter()
            .filter(|(sha, previous)| {
                log.replaced_with_lineage.contains(sha)
                    && Some(sha) != head.as_ref()
                    && previous.as_ref() != head.as_ref()
            })
            .cloned()
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let (sha, previous) = candidates[self.rng.random_range(0..candidates.len())].clone();
        let name = self.create_run(&url, &sha, previous.as_deref()).await?;
        self.replays.insert(name);
        self.counts.replays += 1;
        Ok(())
    }

    async fn runs(&self) -> anyhow::Result<Vec<ReviewRun>> {
        Ok(self.runs_api().list(&ListParams::default()).await?.items)
    }

    /// Cancels a random unfinished run.
    async fn cancel(&mut self) -> anyhow::Result<()> {
        let unfinished: Vec<ReviewRun> = self.runs().await?.into_iter().filter(|r| !r.phase().is_terminal()).collect();
        if unfinished.is_empty() {
            return Ok(());
        }
        let run = &unfinished[self.rng.random_range(0..unfinished.len())];
        let patch = json!({"spec": {"cancelRequested": true}});
        self.runs_api().patch(&run.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        let url = &run.spec.pull_request.url;
        if let Some(log) = self.log.get_mut(url)
            && log.heads.last() == Some(&run.spec.pull_request.head_sha)
        {
            log.cancelled_head = true;
        }
        self.counts.cancels += 1;
        self.counts.stale_steps += 1;
        Ok(())
    }

    /// Keeps the identity of every pod that ran (its folder goes when the pod does).
    fn observe_pod_identities(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.folder.pods()) else { return };
        for entry in entries.flatten() {
            let folder = entry.file_name().to_string_lossy().into_owned();
            // `<namespace>_<name>_<uid>`
            let Some(uid) = folder.rsplit('_').next().map(str::to_owned) else { continue };
            if self.identities.contains_key(&uid) {
                continue;
            }
            if let Ok(kubeconfig) = std::fs::read_to_string(entry.path().join("kubeconfig")) {
                self.identities.insert(uid, PodIdentity { kubeconfig });
            }
        }
    }

    /// A verdict for a run that already failed, from the pod it was assigned to (replaced since),
    /// from another pod, or from the admin: the API server must refuse every one.
    async fn late_verdict(&mut self) -> anyhow::Result<()> {
        let failed: Vec<ReviewRun> = self.runs().await?.into_iter().filter(|r| r.phase() == RunPhase::Failed).collect();
        if failed.is_empty() {
            return Ok(());
        }
        let run = failed[self.rng.random_range(0..failed.len())].clone();
        let assigned = run.status.as_ref().and_then(|s| s.assignment.as_ref()).map(|a| a.pod_uid.clone());
        let others: Vec<String> =
            self.identities.keys().filter(|uid| Some(*uid) != assigned.as_ref()).cloned().collect();
        let choice = self.rng.random_range(0..3);
        let (client, who) = match (choice, assigned.and_then(|uid| self.identities.get(&uid))) {
            (0, Some(identity)) => {
                self.counts.late_verdicts_from_replaced_pods += 1;
                (identity.client().await?, "its replaced pod")
            }
            (1, _) if !others.is_empty() => {
                self.counts.late_verdicts_from_other_pods += 1;
                let uid = &others[self.rng.random_range(0..others.len())];
                (self.identities[uid].client().await?, "another pod")
            }
            _ => (self.client.clone(), "the admin"),
        };
        let runs: Api<ReviewRun> = Api::namespaced(client, NAMESPACE);
        let verdict = json!({"status": {"phase": "Succeeded", "reason": "Submitted",
            "result": {"verdict": "Approved", "body": "", "submittedAt": "2026-01-01T00:00:00Z"}}});
        self.counts.late_verdicts_tried += 1;
        match runs.patch_status(&run.name_any(), &PatchParams::default(), &Patch::Merge(&verdict)).await {
            Ok(_) => {
                self.counts.late_verdicts_accepted += 1;
                self.violations
                    .push(format!("a late verdict for failed run {} from {who} was accepted", run.name_any()));
            }
            // Unauthenticated (a revoked pod token), forbidden, or refused by admission.
            Err(kube::Error::Api(status)) if matches!(status.code, 401 | 403 | 422) => {}
            Err(error) => return Err(error.into()),
        }
        Ok(())
    }

    /// Starts again, as a Deployment would, every replica and the receiver if they exited by
    /// themselves (a replica that cannot renew its Lease stops, by design).
    fn restart_exited_processes(&mut self) -> anyhow::Result<()> {
        for replica in 0..self.controllers.len() {
            if let Ok(Some(status)) = self.controllers[replica].0.try_wait() {
                eprintln!("soak: controller {replica} exited by itself ({status}); starting it again");
                self.counts.controller_exits += 1;
                let port = self.controllers[replica].1;
                self.controllers[replica].0 =
                    processes::start_controller(&self.binary, &self.folder, NAMESPACE, replica, port)?;
            }
        }
        if let Ok(Some(status)) = self.webhook.0.try_wait() {
            eprintln!("soak: the webhook receiver exited by itself ({status}); starting it again");
            self.counts.webhook_exits += 1;
            self.webhook.0 = processes::start_webhook(&self.binary, &self.folder, self.webhook.1)?;
        }
        Ok(())
    }

    /// SIGKILLs a controller replica (leader or standby) and starts it again.
    async fn kill_controller(&mut self) -> anyhow::Result<()> {
        let replica = self.rng.random_range(0..self.controllers.len());
        self.controllers[replica].0.kill().await?;
        self.counts.controller_kills += 1;
        tokio::time::sleep(Duration::from_millis(self.rng.random_range(100..1500))).await;
        let port = self.controllers[replica].1;
        self.controllers[replica].0 =
            processes::start_controller(&self.binary, &self.folder, NAMESPACE, replica, port)?;
        Ok(())
    }

    async fn kill_pod(&mut self) -> anyhow::Result<()> {
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let list = pods.list(&ListParams::default()).await?.items;
        if list.is_empty() {
            return Ok(());
        }
        let pod = &list[self.rng.random_range(0..list.len())];
        pods.delete(&pod.name_any(), &DeleteParams::default()).await?;
        self.counts.pod_kills += 1;
        Ok(())
    }

    /// Arms one fault on the dev cluster (it hits whoever sends the next matching requests: the
    /// controllers, the receiver, the pods or the soak), or drops every watch.
    async fn inject_fault(&mut self) -> anyhow::Result<()> {
        let count = self.rng.random_range(1..=3);
        let (kind, spec) = match self.rng.random_range(0..7) {
            0 => (
                "status_patch_503",
                json!({"verb": "patch", "resource": "reviewruns", "subresource": "status", "status": 503}),
            ),
            1 => ("pod_create_500", json!({"verb": "create", "resource": "pods", "status": 500})),
            2 => ("list_429", json!({"verb": "list", "resource": "*", "status": 429})),
            3 => ("run_create_500", json!({"verb": "create", "resource": "reviewruns", "status": 500})),
            4 => (
                "reviewer_status_500",
                json!({"verb": "patch", "resource": "reviewers", "subresource": "status", "status": 500}),
            ),
            5 => {
                let delay = self.rng.random_range(200..1500);
                ("slow_answers", json!({"verb": "*", "resource": "*", "delayMs": delay, "count": 3 * count}))
            }
            _ => {
                self.admin("POST", "/devcluster/drop-watches", None).await?;
                *self.counts.faults.entry("dropped_watches").or_default() += 1;
                return Ok(());
            }
        };
        let mut spec = spec;
        if spec.get("count").is_none() {
            spec["count"] = json!(count);
        }
        self.admin("POST", "/devcluster/faults", Some(spec)).await?;
        *self.counts.faults.entry(kind).or_default() += 1;
        Ok(())
    }

    /// A request to the dev cluster's admin endpoints.
    async fn admin(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> anyhow::Result<()> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let request =
            http::Request::builder().method(method).uri(path).header("content-type", "application/json").body(body)?;
        self.client.request_text(request).await.with_context(|| format!("{method} {path}"))?;
        Ok(())
    }

    /// Deletes a Reviewer, waits until it is gone (its unfinished runs fail, its pods go), and
    /// creates it again.
    async fn recreate_reviewer(&mut self) -> anyhow::Result<()> {
        let index = self.rng.random_range(0..self.reviewers.len());
        let Some(name) = self.reviewers.keys().nth(index).cloned() else { return Ok(()) };
        let api = self.reviewers_api();
        let restarts = api.get(&name).await?.status.map(|s| s.restarts).unwrap_or(0);
        api.delete(&name, &DeleteParams::default()).await?;
        self.retired_restarts += restarts;
        self.missing_reviewers.insert(name.clone());
        for log in self.log.values_mut().filter(|log| log.reviewer == name) {
            log.reviewer_deleted = true;
        }
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            match api.get_opt(&name).await {
                Ok(None) => break,
                _ if Instant::now() > until => {
                    self.violations.push(format!("{name} was still there 90 s after its deletion"));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        self.recreate_missing_reviewers().await;
        self.counts.reviewer_recreations += 1;
        Ok(())
    }

    /// Creates again every Reviewer the scenario deleted, once it is gone.
    async fn recreate_missing_reviewers(&mut self) {
        for name in self.missing_reviewers.clone() {
            match self.reviewers_api().create(&PostParams::default(), &self.reviewers[&name]).await {
                Ok(_) => {
                    self.missing_reviewers.remove(&name);
                }
                Err(error) => eprintln!("soak: re-creating {name} failed: {error}"),
            }
        }
    }

    /// SIGKILLs the dev cluster (its pods die with it) and restarts it on the same data directory.
    async fn kill_cluster(&mut self) -> anyhow::Result<()> {
        self.cluster.kill().await?;
        self.counts.cluster_kills += 1;
        eprintln!("soak: cluster killed");
        tokio::time::sleep(Duration::from_millis(self.rng.random_range(200..2000))).await;
        self.cluster = processes::start_cluster(&self.listen, &self.folder).await?;
        let runs = self.runs().await?;
        let stored: BTreeSet<String> = runs.iter().map(ResourceExt::name_any).collect();
        for name in self.created.keys() {
            if !stored.contains(name) {
                self.violations.push(format!("run {name} was acknowledged but is gone after a cluster restart"));
            }
        }
        Ok(())
    }

    /// Disarms the faults, then waits, up to three minutes, until no run is unfinished.
    async fn settle(&mut self) {
        let until = Instant::now() + Duration::from_secs(180);
        while Instant::now() < until {
            let _ = self.restart_exited_processes();
            self.recreate_missing_reviewers().await;
            if self.admin("DELETE", "/devcluster/faults", None).await.is_err() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            match self.runs().await {
                Ok(runs) if runs.iter().all(|r| r.phase().is_terminal()) => return,
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    async fn check(&mut self) -> anyhow::Result<()> {
        let runs = self.runs().await?;
        let by_name: BTreeMap<String, &ReviewRun> = runs.iter().map(|r| (r.name_any(), r)).collect();
        for name in self.created.keys() {
            if !by_name.contains_key(name) {
                self.violations.push(format!("run {name} was acknowledged but does not exist"));
            }
        }
        for (url, log) in &self.log {
            let Some(head) = log.heads.last() else { continue };
            let of_pr: Vec<&&ReviewRun> = by_name.values().filter(|r| &r.spec.pull_request.url == url).collect();
            for run in &of_pr {
                if !run.phase().is_terminal() {
                    self.violations.push(format!(
                        "run {} of {url} is still {:?} after settling",
                        run.name_any(),
                        run.phase()
                    ));
                }
            }
            let head_ended = |reason: RunReason| {
                of_pr.iter().any(|r| {
                    &r.spec.pull_request.head_sha == head && r.status.as_ref().and_then(|s| s.reason) == Some(reason)
                })
            };
            let head_ended_as_asked = head_ended(RunReason::Submitted)
                || (log.cancelled_head && head_ended(RunReason::Cancelled))
                || (log.reviewer_deleted && head_ended(RunReason::ReviewerDeleted));
            if !head_ended_as_asked {
                self.violations.push(format!("no run for {url}'s last pushed head {} succeeded", &head[..7]));
            }
        }
        for name in &self.replays {
            if let Some(run) = by_name.get(name)
                && run.phase() != RunPhase::Failed
            {
                self.violations.push(format!("replay {name} ended {:?}, not Failed", run.phase()));
            }
        }
        for reviewer in self.reviewers_api().list(&ListParams::default()).await?.items {
            let queue = reviewer.status.as_ref().map(|s| s.queue.clone()).unwrap_or_default();
            if !queue.is_empty() {
                self.violations.push(format!("{} still queues {queue:?} with every run finished", reviewer.name_any()));
            }
        }
        Ok(())
    }

    async fn totals(&self) -> anyhow::Result<(u64, i64)> {
        let supersedes = self
            .runs()
            .await?
            .iter()
            .filter(|r| r.status.as_ref().and_then(|s| s.reason) == Some(RunReason::Superseded))
            .count() as u64;
        let reviewers = self.reviewers_api().list(&ListParams::default()).await?.items;
        let restarts = reviewers.iter().filter_map(|r| r.status.as_ref()).map(|s| s.restarts).sum();
        Ok((supersedes, restarts))
    }

    /// Stops the controllers and the receiver, then the cluster (whose pods end with it), with SIGTERM.
    async fn stop(&mut self) {
        for (child, _) in &mut self.controllers {
            processes::terminate(child).await;
        }
        processes::terminate(&mut self.webhook.0).await;
        processes::terminate(&mut self.cluster).await;
    }
}

/// Watches every run (re-listing across the cluster's restarts) and records a run that, once
/// terminal, shows another phase or reason: a superseded run that later succeeded, say.
async fn watch_terminal_phases(client: Client, violations: Arc<Mutex<Vec<String>>>) {
    let runs: Api<ReviewRun> = Api::namespaced(client, NAMESPACE);
    let mut ended: BTreeMap<String, (RunPhase, Option<RunReason>)> = BTreeMap::new();
    let config = watcher::Config::default();
    let mut stream = std::pin::pin!(watcher(runs, config).default_backoff().applied_objects());
    loop {
        let run = match stream.try_next().await {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(_) => continue,
        };
        let phase = run.phase();
        if !phase.is_terminal() {
            if let Some((first, _)) = ended.get(&run.name_any()) {
                let mut found = violations.lock().unwrap_or_else(|p| p.into_inner());
                found.push(format!("run {} went from {first:?} back to {phase:?}", run.name_any()));
            }
            continue;
        }
        let reason = run.status.as_ref().and_then(|s| s.reason);
        match ended.get(&run.name_any()) {
            Some(first) if *first != (phase, reason) => {
                let mut found = violations.lock().unwrap_or_else(|p| p.into_inner());
                found.push(format!("run {} ended {first:?}, later {:?}", run.name_any(), (phase, reason)));
            }
            Some(_) => {}
            None => {
                ended.insert(run.name_any(), (phase, reason));
            }
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}
