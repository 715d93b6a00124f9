//! The chaos soak: the whole system, as separate processes, for minutes while things break.
//!
//! ```text
//! cargo build --release --bin review-operator
//! cargo run --release --example soak -- --minutes 10 --seed 1
//! ```
//!
//! It starts the dev cluster as a child process with `--data-dir`, two `review-operator
//! controller` replicas with leader election, and Reviewers whose pods run the demo agent. Then,
//! at random but reproducibly from the seed, it pushes to pull requests (new commits, bursts in one
//! second, with and without lineage, force-pushes back to an earlier commit), re-triggers the same
//! commit, replays old pushes, cancels runs, tries late verdicts for finished runs, SIGKILLs a
//! controller replica (the leader or the standby) and starts it again, deletes reviewer pods, and
//! SIGKILLs the dev cluster and restarts it on the same data directory.
//!
//! The oracle is the scenario's own log (the order it pushed, the lineage it gave), never the
//! metadata the controller reads. At the end it lets the system settle and checks:
//! - every run it created (acknowledged by the API server) still exists, across the restarts;
//! - per pull request, no run is left unfinished, and a run for the head it pushed last succeeded
//!   (unless it cancelled it); every replay of a commit the pull request moved past failed;
//! - no late verdict was accepted, and no run went from Failed to Succeeded;
//! - every Reviewer's queue is empty once everything finished;
//! - the two replicas never led at once (their `review_operator_leader` metric, sampled);
//! - no process of a reviewer pod is left, zombies included.
//!
//! The seed fixes every choice; how many steps fit in the time depends on the machine. Prints one
//! JSON line with the counts and the violations; exits 1 on any violation. Progress
//! goes to stderr. Not covered yet: injected API faults (the dev cluster's fault injection is
//! in-process only), signed webhook deliveries, deleting and re-creating Reviewers, and
//! comparing restarts with the times Running work went stale.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use review_operator::api::{
    AgentSpec, PullRequest, ReviewRun, ReviewRunSpec, Reviewer, ReviewerSpec, RunPhase, RunReason,
};
use serde_json::json;
use tokio::process::{Child, Command};

const NAMESPACE: &str = "soak";
const PULL_REQUESTS_PER_REVIEWER: usize = 3;

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
    /// The review-operator binary [default: review-operator next to this example's folder].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Keep the working folder (data, kubeconfig) at the end.
    #[arg(long)]
    keep: bool,
    /// Internal: serve the dev cluster at LISTEN, writing KUBECONFIG, on DATA_DIR.
    #[arg(long, hide = true, num_args = 3, value_names = ["LISTEN", "KUBECONFIG", "DATA_DIR"])]
    serve_cluster: Option<Vec<String>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(serve) = &args.serve_cluster {
        return serve_cluster(serve).await;
    }
    let report = Soak::run(&args).await?;
    println!("{}", serde_json::to_string(&report)?);
    if !report["violations"].as_array().is_none_or(Vec::is_empty) {
        std::process::exit(1);
    }
    Ok(())
}

/// The dev cluster process: serves until SIGTERM (or SIGKILL, which is the point).
async fn serve_cluster(serve: &[String]) -> anyhow::Result<()> {
    let [listen, kubeconfig, data_dir] = serve else { bail!("--serve-cluster LISTEN KUBECONFIG DATA_DIR") };
    let config = devcluster::Config {
        listen: listen.parse().context("LISTEN")?,
        kubeconfig_path: Some(kubeconfig.into()),
        data_dir: Some(data_dir.into()),
        ..devcluster::Config::default()
    };
    let cluster = devcluster::DevCluster::start(config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    terminate.recv().await;
    cluster.shutdown().await?;
    Ok(())
}

/// A pull request as the scenario pushed it.
#[derive(Default)]
struct PullRequestLog {
    /// Every head it had, in push order.
    heads: Vec<String>,
    /// Every push: the commit and the previous head it named, if any.
    pushes: Vec<(String, Option<String>)>,
    /// Commits replaced by a push that named them as its previous head.
    replaced_with_lineage: BTreeSet<String>,
    /// Runs the scenario cancelled, for the current head.
    cancelled_head: bool,
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
    cancels: u64,
    late_verdicts_tried: u64,
    late_verdicts_accepted: u64,
    controller_kills: u64,
    /// Replicas that exited by themselves and were started again.
    controller_exits: u64,
    pod_kills: u64,
    cluster_kills: u64,
}

struct Soak {
    rng: StdRng,
    dir: PathBuf,
    binary: PathBuf,
    soak_id: String,
    listen: String,
    kubeconfig: PathBuf,
    cluster: Child,
    controllers: Vec<(Child, u16)>,
    client: Client,
    /// Pull requests by URL.
    log: BTreeMap<String, (String, PullRequestLog)>,
    /// Every run the API server acknowledged, with the commit it reviews.
    created: BTreeMap<String, String>,
    /// Replays expected to fail.
    replays: BTreeSet<String>,
    counts: Counts,
    violations: Vec<String>,
}

impl Soak {
    async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
        let binary = review_operator_binary(args.binary.clone())?;
        let soak_id = format!("{}-{}", args.seed, std::process::id());
        let dir = std::env::temp_dir().join(format!("review-soak-{soak_id}"));
        std::fs::create_dir_all(dir.join("data"))?;
        let listen = free_address()?;
        let kubeconfig = dir.join("kubeconfig");
        let cluster = start_cluster(&listen, &kubeconfig, &dir.join("data")).await?;
        let client = client(&kubeconfig).await?;
        review_operator::dev::manifests::install(&client).await.context("installing CRDs and policies")?;
        let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n");
        review_operator::dev::manifests::apply(&client, "namespace", &namespace).await?;
        let rolebinding = include_str!("reviewer-rolebinding-demo.yaml").replace("demo", NAMESPACE);
        review_operator::dev::manifests::apply(&client, "reviewer-rolebinding", &rolebinding).await?;
        let mut soak = Self {
            rng: StdRng::seed_from_u64(args.seed),
            dir,
            binary,
            soak_id,
            listen,
            kubeconfig,
            cluster,
            controllers: Vec::new(),
            client,
            log: BTreeMap::new(),
            created: BTreeMap::new(),
            replays: BTreeSet::new(),
            counts: Counts::default(),
            violations: Vec::new(),
        };
        for replica in 0..2 {
            let port = free_address()?.rsplit(':').next().and_then(|p| p.parse().ok()).context("a free port")?;
            let controller = soak.start_controller(replica, port)?;
            soak.controllers.push(controller);
        }
        let overlaps = Arc::new(AtomicU64::new(0));
        let sampler =
            tokio::spawn(sample_leaders(soak.controllers.iter().map(|(_, port)| *port).collect(), overlaps.clone()));
        soak.create_reviewers(args.reviewers).await?;

        let started = Instant::now();
        let length = Duration::from_secs_f64(args.minutes * 60.0);
        let mut last_cluster_kill = Instant::now();
        while started.elapsed() < length {
            // At least one cluster crash, halfway through at the latest.
            if soak.counts.cluster_kills == 0 && started.elapsed() > length / 2 {
                last_cluster_kill = Instant::now();
                if let Err(error) = soak.kill_cluster().await {
                    eprintln!("soak: step failed: {error:#}");
                }
            }
            soak.restart_exited_controllers()?;
            let roll = soak.rng.random_range(0..100);
            let outcome = match roll {
                0..40 => soak.push(false).await,
                40..48 => soak.burst().await,
                48..54 => soak.push(true).await,
                54..62 => soak.retrigger().await,
                62..69 => soak.replay().await,
                69..74 => soak.cancel().await,
                74..80 => soak.late_verdict().await,
                80..85 => soak.kill_controller().await,
                85..92 => soak.kill_pod().await,
                92..94 if last_cluster_kill.elapsed() > Duration::from_secs(30) => {
                    last_cluster_kill = Instant::now();
                    soak.kill_cluster().await
                }
                _ => Ok(()),
            };
            if let Err(error) = outcome {
                // The cluster or a controller may be down at that moment: not a violation.
                eprintln!("soak: step failed: {error:#}");
            }
            let pause = soak.rng.random_range(20..300);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        eprintln!("soak: settling");
        soak.settle().await;
        soak.check().await?;
        sampler.abort();
        let overlaps = overlaps.load(Ordering::SeqCst);
        if overlaps > 0 {
            soak.violations.push(format!("both replicas reported leading at once in {overlaps} samples"));
        }
        let (supersedes, restarts) = soak.totals().await?;
        soak.stop().await;
        soak.check_processes();
        if !args.keep {
            let _ = std::fs::remove_dir_all(&soak.dir);
        }
        let c = &soak.counts;
        Ok(json!({
            "seed": args.seed, "minutes": args.minutes, "reviewers": args.reviewers,
            "runs": c.runs, "pushes": c.pushes, "bursts": c.bursts, "force_pushes": c.force_pushes,
            "retriggers": c.retriggers, "replays": c.replays, "cancels": c.cancels,
            "late_verdicts_tried": c.late_verdicts_tried, "late_verdicts_accepted": c.late_verdicts_accepted,
            "controller_kills": c.controller_kills, "controller_exits": c.controller_exits, "pod_kills": c.pod_kills, "cluster_kills": c.cluster_kills,
            "supersedes": supersedes, "restarts": restarts,
            "violations": soak.violations,
        }))
    }

    /// Starts replica `replica`, its HTTP endpoints on `port` (the same for each start of that
    /// replica, so that the leader sampler keeps reading it).
    fn start_controller(&self, replica: usize, port: u16) -> anyhow::Result<(Child, u16)> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("controller-{replica}.log")))
            .context("the controller's log")?;
        let child = Command::new(&self.binary)
            .args(["controller", "--agent-binary"])
            .arg(&self.binary)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--namespace", NAMESPACE, "--lease-duration", "4s"])
            .args(["--identity", &format!("soak-{replica}"), "--log-level", "warn"])
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting a controller")?;
        Ok((child, port))
    }

    async fn create_reviewers(&mut self, count: usize) -> anyhow::Result<()> {
        let reviewers: Api<Reviewer> = Api::namespaced(self.client.clone(), NAMESPACE);
        for index in 0..count {
            let name = format!("review-w{index}");
            let seconds = self.rng.random_range(1..=3).to_string();
            let mut reviewer = Reviewer::new(
                &name,
                ReviewerSpec {
                    worker_id: format!("w{index}"),
                    agent: AgentSpec {
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
                    service_account_name: "review-agent".into(),
                    launch_deadline: "5m".into(),
                    r#match: None,
                },
            );
            reviewer.metadata.namespace = Some(NAMESPACE.into());
            reviewers.create(&PostParams::default(), &reviewer).await.context("creating a Reviewer")?;
            for number in 1..=PULL_REQUESTS_PER_REVIEWER {
                let url = format!("https://github.com/acme/w{index}/pull/{number}");
                self.log.insert(url, (name.clone(), PullRequestLog::default()));
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

    async fn create_run(&mut self, url: &str, sha: &str, previous: Option<&str>) -> anyhow::Result<String> {
        let reviewer = self.log.get(url).map(|(r, _)| r.clone()).unwrap_or_default();
        let name = self.run_name();
        let mut pull_request = PullRequest::new(url, sha);
        pull_request.previous_head_sha = previous.map(str::to_owned);
        let run = ReviewRun::new(
            &name,
            ReviewRunSpec { reviewer, pull_request, cancel_requested: false, timeout: "10m".into() },
        );
        let runs: Api<ReviewRun> = Api::namespaced(self.client.clone(), NAMESPACE);
        runs.create(&PostParams::default(), &run).await.context("creating a run")?;
        self.created.insert(name.clone(), url.to_owned());
        self.counts.runs += 1;
        Ok(name)
    }

    /// A push to a random pull request: a new commit, or (`back`) one it had before.
    async fn push(&mut self, back: bool) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        let (current, earlier) = {
            let heads = &self.log[&url].1.heads;
            let current = heads.last().cloned();
            let earlier: Vec<String> = heads.iter().filter(|h| Some(*h) != current.as_ref()).cloned().collect();
            (current, earlier)
        };
        let sha = match (back, earlier.is_empty()) {
            (true, false) => {
                self.counts.force_pushes += 1;
                earlier[self.rng.random_range(0..earlier.len())].clone()
            }
            _ => self.sha(),
        };
        // A force-push back needs its lineage: without it the commit, seen before, is a replay.
        let with_lineage = back || self.rng.random_bool(0.7);
        let previous = current.filter(|_| with_lineage);
        self.push_commit(&url, sha, previous).await
    }

    /// Creates the run of a push and records the push in the pull request's log.
    async fn push_commit(&mut self, url: &str, sha: String, previous: Option<String>) -> anyhow::Result<()> {
        self.create_run(url, &sha, previous.as_deref()).await?;
        let log = &mut self.log.get_mut(url).context("pull request")?.1;
        if let Some(previous) = &previous {
            log.replaced_with_lineage.insert(previous.clone());
        }
        log.replaced_with_lineage.remove(&sha);
        log.pushes.push((sha.clone(), previous));
        log.heads.push(sha);
        log.cancelled_head = false;
        self.counts.pushes += 1;
        Ok(())
    }

    /// Two or three pushes to one pull request within the same second, each naming the last, or
    /// none of them with lineage (the API server's order of creation then decides).
    async fn burst(&mut self) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        self.counts.bursts += 1;
        let with_lineage = self.rng.random_bool(0.5);
        for _ in 0..self.rng.random_range(2..=3) {
            let previous = self.log[&url].1.heads.last().cloned().filter(|_| with_lineage);
            let sha = self.sha();
            self.push_commit(&url, sha, previous).await?;
        }
        Ok(())
    }

    /// The same head triggered again: nothing restarts, and the pull request's head stays.
    async fn retrigger(&mut self) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        let Some(head) = self.log[&url].1.heads.last().cloned() else { return Ok(()) };
        self.create_run(&url, &head, None).await?;
        self.counts.retriggers += 1;
        Ok(())
    }

    /// A push the pull request moved past, delivered again with the lineage it had: it must fail.
    /// Only commits a later push named as its previous head are known to be past; a replay whose
    /// previous head is the current one would be a legitimate force-push back, so none is made.
    async fn replay(&mut self) -> anyhow::Result<()> {
        let url = self.pick_pull_request();
        let log = &self.log[&url].1;
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
        let runs: Api<ReviewRun> = Api::namespaced(self.client.clone(), NAMESPACE);
        Ok(runs.list(&ListParams::default()).await?.items)
    }

    /// Cancels a random unfinished run.
    async fn cancel(&mut self) -> anyhow::Result<()> {
        let unfinished: Vec<ReviewRun> = self.runs().await?.into_iter().filter(|r| !r.phase().is_terminal()).collect();
        if unfinished.is_empty() {
            return Ok(());
        }
        let run = &unfinished[self.rng.random_range(0..unfinished.len())];
        let runs: Api<ReviewRun> = Api::namespaced(self.client.clone(), NAMESPACE);
        let patch = json!({"spec": {"cancelRequested": true}});
        runs.patch(&run.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        let url = &run.spec.pull_request.url;
        if let Some((_, log)) = self.log.get_mut(url)
            && log.heads.last() == Some(&run.spec.pull_request.head_sha)
        {
            log.cancelled_head = true;
        }
        self.counts.cancels += 1;
        Ok(())
    }

    /// A verdict for a run that already failed: the API server must refuse it.
    async fn late_verdict(&mut self) -> anyhow::Result<()> {
        let failed: Vec<ReviewRun> = self.runs().await?.into_iter().filter(|r| r.phase() == RunPhase::Failed).collect();
        if failed.is_empty() {
            return Ok(());
        }
        let run = &failed[self.rng.random_range(0..failed.len())];
        let runs: Api<ReviewRun> = Api::namespaced(self.client.clone(), NAMESPACE);
        let verdict = json!({"status": {"phase": "Succeeded", "reason": "Submitted",
            "result": {"verdict": "Approved", "body": "", "submittedAt": "2026-01-01T00:00:00Z"}}});
        self.counts.late_verdicts_tried += 1;
        match runs.patch_status(&run.name_any(), &PatchParams::default(), &Patch::Merge(&verdict)).await {
            Ok(_) => {
                self.counts.late_verdicts_accepted += 1;
                self.violations.push(format!("a late verdict for failed run {} was accepted", run.name_any()));
            }
            Err(kube::Error::Api(status)) if status.code == 422 => {}
            Err(error) => return Err(error.into()),
        }
        Ok(())
    }

    /// Starts again, as a Deployment would, every replica that exited by itself (a replica that
    /// cannot renew its Lease stops, by design).
    fn restart_exited_controllers(&mut self) -> anyhow::Result<()> {
        for replica in 0..self.controllers.len() {
            if let Ok(Some(status)) = self.controllers[replica].0.try_wait() {
                eprintln!("soak: controller {replica} exited by itself ({status}); starting it again");
                self.counts.controller_exits += 1;
                let port = self.controllers[replica].1;
                self.controllers[replica] = self.start_controller(replica, port)?;
            }
        }
        Ok(())
    }

    /// SIGKILLs a controller replica (leader or standby) and starts it again.
    async fn kill_controller(&mut self) -> anyhow::Result<()> {
        let replica = self.rng.random_range(0..self.controllers.len());
        let (mut child, port) = self.controllers.remove(replica);
        child.kill().await?;
        self.counts.controller_kills += 1;
        tokio::time::sleep(Duration::from_millis(self.rng.random_range(100..1500))).await;
        let restarted = self.start_controller(replica, port)?;
        self.controllers.insert(replica, restarted);
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

    /// SIGKILLs the dev cluster (its pods die with it) and restarts it on the same data directory.
    async fn kill_cluster(&mut self) -> anyhow::Result<()> {
        self.cluster.kill().await?;
        self.counts.cluster_kills += 1;
        eprintln!("soak: cluster killed");
        tokio::time::sleep(Duration::from_millis(self.rng.random_range(200..2000))).await;
        self.cluster = start_cluster(&self.listen, &self.kubeconfig, &self.dir.join("data")).await?;
        let runs = self.runs().await?;
        let stored: BTreeSet<String> = runs.iter().map(ResourceExt::name_any).collect();
        for name in self.created.keys() {
            if !stored.contains(name) {
                self.violations.push(format!("run {name} was acknowledged but is gone after a cluster restart"));
            }
        }
        Ok(())
    }

    /// Waits, up to three minutes, until no run is unfinished.
    async fn settle(&mut self) {
        let until = Instant::now() + Duration::from_secs(180);
        while Instant::now() < until {
            let _ = self.restart_exited_controllers();
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
        for (url, (_, log)) in &self.log {
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
            let head_succeeded =
                of_pr.iter().any(|r| &r.spec.pull_request.head_sha == head && r.phase() == RunPhase::Succeeded);
            let head_cancelled = of_pr.iter().any(|r| {
                &r.spec.pull_request.head_sha == head
                    && r.status.as_ref().and_then(|s| s.reason) == Some(RunReason::Cancelled)
            });
            let head_ended_as_asked = head_succeeded || (log.cancelled_head && head_cancelled);
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
        let reviewers: Api<Reviewer> = Api::namespaced(self.client.clone(), NAMESPACE);
        for reviewer in reviewers.list(&ListParams::default()).await?.items {
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
        let reviewers: Api<Reviewer> = Api::namespaced(self.client.clone(), NAMESPACE);
        let restarts = reviewers
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter_map(|r| r.status.as_ref())
            .map(|s| s.restarts)
            .sum();
        Ok((supersedes, restarts))
    }

    /// Stops the controllers, then the cluster (whose pods end with it), with SIGTERM.
    async fn stop(&mut self) {
        for (child, _) in &mut self.controllers {
            terminate(child).await;
        }
        terminate(&mut self.cluster).await;
    }

    /// No process of a reviewer pod is left (the pods' environment carries `REVIEW_SOAK`).
    fn check_processes(&mut self) {
        let marker = format!("REVIEW_SOAK={}", self.soak_id);
        let Ok(entries) = std::fs::read_dir("/proc") else { return };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let found = environ.split(|b| *b == 0).any(|var| var == marker.as_bytes());
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| stat.rsplit(')').next().map(|rest| rest.trim_start().starts_with('Z')))
                .unwrap_or(false);
            if found {
                self.violations.push(format!("pod process {pid} is left{}", if zombie { " (a zombie)" } else { "" }));
            }
        }
    }
}

/// Samples both replicas' `review_operator_leader` every 200 ms; counts samples where both lead.
async fn sample_leaders(ports: Vec<u16>, overlaps: Arc<AtomicU64>) {
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

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid this process started and has not reaped.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Starts the dev cluster process and waits until it serves.
async fn start_cluster(listen: &str, kubeconfig: &Path, data_dir: &Path) -> anyhow::Result<Child> {
    let child = Command::new(std::env::current_exe()?)
        .arg("--serve-cluster")
        .args([listen, &kubeconfig.display().to_string(), &data_dir.display().to_string()])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the dev cluster")?;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if kubeconfig.exists()
            && let Ok(client) = client(kubeconfig).await
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

async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let config =
        kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(kubeconfig)?, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A loopback address with a free port, kept for the whole soak so that restarts reuse it.
fn free_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

fn review_operator_binary(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match flag {
        Some(path) => path,
        // target/<profile>/examples/soak → target/<profile>/review-operator
        None => std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .context("locating the target folder")?
            .join("review-operator"),
    };
    anyhow::ensure!(
        path.exists(),
        "{} does not exist: build it with `cargo build --release --bin review-operator` or pass --binary",
        path.display()
    );
    Ok(path)
}
