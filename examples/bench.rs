//! Benchmark of the Reviewer controller: cold convergence, idle writes,
//! supersede latency and writes, and the controller's memory.
//!
//! ```text
//! cargo build --release --bin review-operator
//! cargo run --release --example bench -- --reviewers 1000 --runs-per-reviewer 20
//! ```
//!
//! The dev cluster runs in this process with its pod runner disabled: the
//! bench plays the kubelet and marks every new reviewer pod Running and Ready
//! through the status subresource as soon as its watch shows the pod. The
//! controller is the release `review-operator controller` binary, run as a
//! child process so that its resident memory is its own.
//!
//! Writes are counted from the dev cluster's change stream (every committed
//! change, by resource). Lease renewals of the controller's leader election
//! are reported apart from the other writes, as they are the election's
//! heartbeat, not reconcile work.
//!
//! API requests are the controller's own count (`review_operator_api_requests_total`, read from
//! its `/metrics` once the cold start converged). `devcluster_rss_mb` is this process once the
//! Reviewers and runs exist and before the bench's own view of them starts: the dev cluster alone.
//!
//! `cold_controller_cpu_s` and `cold_bench_process_cpu_s` are the CPU seconds the controller and
//! this process (the dev cluster with the bench's kubelet and view) used during the cold start.
//!
//! Prints one JSON line; progress goes to stderr.

#[path = "bench_support/allocator.rs"]
mod allocator;
#[path = "bench_support/feed.rs"]
mod feed;
#[path = "bench_support/kubelet.rs"]
mod kubelet;
#[path = "bench_support/process.rs"]
mod process;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use devcluster::{Config, DevCluster};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use review_operator::api::{
    AgentSpec, Assignment, CONDITION_CURRENT, CONDITION_SUCCEEDED, GROUP, LastRestart, PodReference, PullRequest,
    RestartReason, ReviewRun, ReviewRunSpec, Reviewer, ReviewerSpec, RunPhase, RunReason, VERSION, conditions, labels,
};
use serde_json::json;
use tokio::sync::Notify;

const NAMESPACE: &str = "default";
const FLOOR_MANAGER: &str = "bench-floor";

#[derive(Debug, clap::Parser)]
#[command(about = "Benchmark of the review-operator controller on an in-process dev cluster")]
struct Args {
    /// Reviewers to create.
    #[arg(long, default_value_t = 1000)]
    reviewers: usize,
    /// ReviewRuns per Reviewer, created before the controller starts.
    #[arg(long, default_value_t = 20)]
    runs_per_reviewer: usize,
    /// Supersedes to measure, one after the other, on Reviewers spread over all of them.
    #[arg(long, default_value_t = 50)]
    supersedes: usize,
    /// Length of the idle window whose writes are counted.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// The controller's `--debounce` [default: the controller's default].
    #[arg(long)]
    debounce: Option<String>,
    /// The review-operator binary [default: target/release/review-operator next to this example].
    #[arg(long)]
    controller: Option<PathBuf>,
    /// The controller's `--log-level`.
    #[arg(long, default_value = "warn")]
    controller_log_level: String,
    /// Where the controller's log goes.
    #[arg(long, default_value = "/tmp/review-operator-bench-controller.log")]
    controller_log: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    anyhow::ensure!(
        args.reviewers > 0 && args.runs_per_reviewer > 0,
        "--reviewers and --runs-per-reviewer must be > 0"
    );
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(bench(args))
}

/// Committed changes of the dev cluster, counted by resource.
#[derive(Default)]
struct Tally {
    counts: Mutex<BTreeMap<String, u64>>,
    /// When the last change other than a Lease renewal was committed.
    last_work: Mutex<Option<Instant>>,
    lagged: AtomicU64,
}

impl Tally {
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|counts| counts.clone()).unwrap_or_default()
    }

    fn since_last_work(&self) -> Duration {
        self.last_work.lock().ok().and_then(|last| *last).map_or(Duration::MAX, |last| last.elapsed())
    }

    /// Waits until no change other than a Lease renewal happened for `quiet`, at most `limit`.
    async fn settle(&self, quiet: Duration, limit: Duration) -> Duration {
        let started = Instant::now();
        while self.since_last_work() < quiet && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started.elapsed()
    }
}

/// Changes between two snapshots, by resource.
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(resource, count)| (resource.clone(), count - before.get(resource).copied().unwrap_or(0)))
        .filter(|(_, count)| *count > 0)
        .collect()
}

fn total_without_leases(changes: &BTreeMap<String, u64>) -> u64 {
    changes.iter().filter(|(resource, _)| resource.as_str() != "leases").map(|(_, count)| count).sum()
}

fn spawn_tally(cluster: &DevCluster) -> anyhow::Result<Arc<Tally>> {
    let tally = Arc::new(Tally::default());
    let start = cluster.server().store.watch_from(None).map_err(|error| anyhow::anyhow!("{error:?}"))?;
    let mut live = start.live;
    let counter = tally.clone();
    tokio::spawn(async move {
        loop {
            match live.recv().await {
                Ok(change) => {
                    let resource = change.key.resource.clone();
                    if resource != "leases"
                        && let Ok(mut last) = counter.last_work.lock()
                    {
                        *last = Some(Instant::now());
                    }
                    if let Ok(mut counts) = counter.counts.lock() {
                        *counts.entry(resource).or_default() += 1;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    counter.lagged.fetch_add(missed, Ordering::Relaxed);
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(tally)
}

/// The bench's view of the cluster and a signal for every change it applies.
///
/// The view follows the dev cluster's own change feed in this process
/// rather than watching through the API: the harness then costs the
/// machine little next to the server and the controller it measures, and
/// sees each change the moment it is committed.
#[derive(Clone)]
struct View {
    runs: Store<ReviewRun>,
    reviewers: Store<Reviewer>,
    pods: Store<Pod>,
    changed: Arc<Notify>,
    /// Changes the view missed because it fell behind the feed; any makes its figures wrong.
    lagged: Arc<AtomicU64>,
}

impl View {
    async fn start(cluster: &DevCluster) -> anyhow::Result<Self> {
        let changed = Arc::new(Notify::new());
        let lagged = Arc::new(AtomicU64::new(0));
        let runs = reflect::<ReviewRun>(cluster, GROUP, "reviewruns", &changed, &lagged);
        let reviewers = reflect::<Reviewer>(cluster, GROUP, "reviewers", &changed, &lagged);
        let pods = reflect::<Pod>(cluster, "", "pods", &changed, &lagged);
        runs.wait_until_ready().await?;
        reviewers.wait_until_ready().await?;
        pods.wait_until_ready().await?;
        Ok(Self { runs, reviewers, pods, changed, lagged })
    }

    /// Waits on watch events until `check` returns a value, at most `limit`;
    /// checks at most once per `spacing` (checks of the whole view are not free).
    async fn until<T>(
        &self,
        what: &str,
        limit: Duration,
        spacing: Duration,
        check: impl Fn(&View) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            let lagged = self.lagged.load(Ordering::Relaxed);
            anyhow::ensure!(lagged == 0, "the view fell behind the change feed by {lagged} changes");
            if let Some(value) = check(self) {
                return Ok(value);
            }
            if !spacing.is_zero() {
                tokio::time::sleep(spacing).await;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!("timed out after {limit:?} waiting for {what}");
            }
        }
    }

    fn reviewer(&self, name: &str) -> Option<Arc<Reviewer>> {
        self.reviewers.get(&reflector::ObjectRef::new(name).within(NAMESPACE))
    }

    fn run(&self, name: &str) -> Option<Arc<ReviewRun>> {
        self.runs.get(&reflector::ObjectRef::new(name).within(NAMESPACE))
    }

    fn pod_of(&self, reviewer: &str, incarnation: i64) -> Option<Arc<Pod>> {
        self.pods.state().into_iter().find(|pod| {
            pod.labels().get(labels::REVIEWER).map(String::as_str) == Some(reviewer)
                && pod.labels().get(labels::INCARNATION).and_then(|i| i.parse().ok()) == Some(incarnation)
                && pod.metadata.deletion_timestamp.is_none()
        })
    }
}

/// A store of the objects of one resource, kept from the dev cluster's change feed.
fn reflect<K>(
    cluster: &DevCluster,
    group: &'static str,
    resource: &'static str,
    changed: &Arc<Notify>,
    lagged: &Arc<AtomicU64>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, mut writer) = reflector::store();
    let (listing, start) = cluster.server().store.list_and_watch(group, resource, None);
    let decode = |object: &serde_json::Value| {
        let mut object = K::deserialize(object).ok()?;
        object.meta_mut().managed_fields = None;
        Some(object)
    };
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in listing.objects.iter().filter_map(|object| decode(object)) {
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let changed = changed.clone();
    let follower = feed::follow(start.live, group, resource, lagged.clone(), move |followed| {
        if let feed::Followed::Change(change) = followed {
            let Some(object) = decode(&change.object) else { return };
            let event = match change.kind {
                devcluster::store::EventType::Deleted => watcher::Event::Delete(object),
                _ => watcher::Event::Apply(object),
            };
            writer.apply_watcher_event(&event);
        }
        changed.notify_one();
    });
    tokio::spawn(follower);
    store
}

fn assignment(run: &ReviewRun) -> Option<&Assignment> {
    run.status.as_ref()?.assignment.as_ref()
}

fn reason(run: &ReviewRun) -> Option<RunReason> {
    run.status.as_ref()?.reason
}

fn reviewer_name(index: usize) -> String {
    format!("review-w{index:05}")
}

fn sha(seed: u64) -> String {
    format!("{seed:016x}{:016x}", seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// A run as the CI bot creates it: labelled, as `kubectl review trigger`
/// labels it, and named so that names sort in creation order.
fn new_run(name: &str, reviewer: &str, pr: &str, head_sha: &str) -> ReviewRun {
    let mut run = ReviewRun::new(
        name,
        ReviewRunSpec {
            reviewer: reviewer.into(),
            pull_request: PullRequest::new(pr, head_sha),
            cancel_requested: false,
            timeout: "1h".into(),
            ttl_seconds_after_finished: None,
        },
    );
    run.metadata.labels = Some(labels::run_labels(reviewer, pr));
    run
}

fn pr_url(reviewer: usize, pr: usize) -> String {
    format!("https://github.com/acme/repo-{reviewer}/pull/{pr}")
}

/// Creates the Reviewers and their runs. A fifth of each Reviewer's runs
/// are a newer SHA for one of its earlier PRs (superseded at once, as no pod
/// runs yet); the rest are one run per PR, the Reviewer's queue.
async fn populate(client: &kube::Client, args: &Args) -> anyhow::Result<usize> {
    let prs = (args.runs_per_reviewer - args.runs_per_reviewer / 5).max(1);
    let reviewers: Api<Reviewer> = Api::namespaced(client.clone(), NAMESPACE);
    let runs: Api<ReviewRun> = Api::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..args.reviewers)
        .map(|index| {
            let (reviewers, runs) = (reviewers.clone(), runs.clone());
            async move {
                let name = reviewer_name(index);
                let reviewer = Reviewer::new(
                    &name,
                    ReviewerSpec::new(
                        format!("w{index}"),
                        AgentSpec { harness: Some("claude-code".into()), ..AgentSpec::new("ghcr.io/acme/reviewer:1") },
                    ),
                );
                reviewers.create(&PostParams::default(), &reviewer).await?;
                for number in 0..args.runs_per_reviewer {
                    let pr = number % prs;
                    let seed = (index * 1_000 + number) as u64;
                    let run = new_run(&format!("{name}-{number:03}"), &name, &pr_url(index, pr), &sha(seed));
                    runs.create(&PostParams::default(), &run).await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(args.reviewers * prs)
}

/// Every Reviewer has a live pod, and every unfinished run is Running on it.
fn converged(view: &View, reviewers: usize) -> Option<()> {
    let live_pods: BTreeSet<String> = view
        .pods
        .state()
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| pod.uid())
        .collect();
    let all = view.reviewers.state();
    if all.len() < reviewers {
        return None;
    }
    let mut pod_of: HashMap<String, String> = HashMap::with_capacity(all.len());
    for reviewer in &all {
        let pod = reviewer.status.as_ref()?.pod.as_ref()?;
        if !live_pods.contains(&pod.uid) {
            return None;
        }
        pod_of.insert(reviewer.name_any(), pod.uid.clone());
    }
    for run in view.runs.state() {
        match run.phase() {
            RunPhase::Pending => return None,
            RunPhase::Running => {
                if assignment(&run).map(|a| &a.pod_uid) != pod_of.get(&run.spec.reviewer) {
                    return None;
                }
            }
            RunPhase::Succeeded | RunPhase::Failed => {}
        }
    }
    Some(())
}

/// Prints how far the cold start got, every five seconds.
async fn report_progress(view: View, started: Instant) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let runs = view.runs.state();
        let pending = runs.iter().filter(|run| run.phase() == RunPhase::Pending).count();
        let running = runs.iter().filter(|run| run.phase() == RunPhase::Running).count();
        let with_pod =
            view.reviewers.state().iter().filter(|r| r.status.as_ref().is_some_and(|s| s.pod.is_some())).count();
        let pods = view.pods.state().len();
        eprintln!(
            "{:.0}s: {pending} runs Pending, {running} Running, {pods} pods, {with_pod} Reviewers with a pod",
            started.elapsed().as_secs_f64()
        );
    }
}

/// The end of a supersede: the stale run Failed as Superseded, the next pod
/// exists and runs, and the new run is Running on it.
fn superseded(view: &View, reviewer: &str, stale: &str, new: &str, incarnation: i64) -> Option<()> {
    let stale = view.run(stale)?;
    if stale.phase() != RunPhase::Failed || reason(&stale) != Some(RunReason::Superseded) {
        return None;
    }
    let pod = view.pod_of(reviewer, incarnation)?;
    if !kubelet::is_running_pod(&pod) {
        return None;
    }
    let new = view.run(new)?;
    (new.phase() == RunPhase::Running && assignment(&new).map(|a| &a.pod_uid) == pod.uid().as_ref()).then_some(())
}

/// A Reviewer's live pod and the Running run to supersede.
struct Target {
    reviewer: Arc<Reviewer>,
    pod: PodReference,
    stale: Arc<ReviewRun>,
}

fn target(view: &View, reviewer: &str) -> anyhow::Result<Target> {
    let found = view.reviewer(reviewer).with_context(|| format!("Reviewer {reviewer} not in the view"))?;
    let pod = found.status.as_ref().and_then(|s| s.pod.clone()).with_context(|| format!("{reviewer} has no pod"))?;
    let stale = view
        .runs
        .state()
        .into_iter()
        .filter(|run| run.spec.reviewer == reviewer && run.phase() == RunPhase::Running)
        .find(|run| assignment(run).is_some_and(|a| a.pod_uid == pod.uid))
        .with_context(|| format!("{reviewer} has no Running run on its pod"))?;
    Ok(Target { reviewer: found, pod, stale })
}

fn percentile(samples: &[f64], quantile: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

/// The controller's `review_operator_api_requests_total`, by verb and resource.
async fn api_requests(address: &str) -> anyhow::Result<BTreeMap<(String, String), u64>> {
    let text = process::metrics_text(address).await?;
    let counts: BTreeMap<(String, String), u64> = process::samples(&text, "review_operator_api_requests_total")
        .into_iter()
        .filter_map(|(labels, count)| {
            Some(((labels.get("verb")?.clone(), labels.get("resource")?.clone()), count as u64))
        })
        .collect();
    anyhow::ensure!(!counts.is_empty(), "the controller's metrics count no API requests:\n{text}");
    Ok(counts)
}

fn by_verb(requests: &BTreeMap<(String, String), u64>) -> BTreeMap<String, u64> {
    let mut verbs = BTreeMap::new();
    for ((verb, _), count) in requests {
        *verbs.entry(verb.clone()).or_default() += count;
    }
    verbs
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let binary = process::operator_binary(args.controller.clone())?;
    let runner = devcluster::runner::RunnerSettings { enabled: false, ..Default::default() };
    let cluster =
        DevCluster::start(Config { runner, ..Config::default() }).await.context("starting the dev cluster")?;
    let client = cluster.client()?;
    review_operator::dev::manifests::install(&client).await?;

    let started = Instant::now();
    let current_runs = populate(&client, &args).await?;
    let runs = args.reviewers * args.runs_per_reviewer;
    eprintln!("created {} Reviewers and {runs} runs in {:.1}s", args.reviewers, started.elapsed().as_secs_f64());
    // This process is the dev cluster alone until the bench's own view starts.
    let (_, devcluster_rss_populated) = process::memory_mb(std::process::id())?;

    let tally = spawn_tally(&cluster)?;
    let view = View::start(&cluster).await?;
    let kubelet = kubelet::spawn_kubelet(&cluster, &client);

    // Cold start: the controller process meets every Reviewer and run at once.
    let debounce = args
        .debounce
        .clone()
        .unwrap_or_else(|| format!("{}ms", review_operator::controller::RECOMMENDED_DEBOUNCE.as_millis()));
    let metrics_address = process::free_local_address()?;
    // The controller runs as the ServiceAccount it is deployed with, under the RBAC of `deploy/`.
    let kubeconfig = std::env::temp_dir().join(format!("bench-controller-{}.kubeconfig", std::process::id()));
    process::deployed_identity(&cluster, &client, "review-system", "review-operator", &kubeconfig).await?;
    let cold_started = Instant::now();
    let bench_cpu_before = process::cpu_seconds(std::process::id())?;
    let mut controller = process::spawn_component(
        &binary,
        &[
            "controller",
            "--agent-binary",
            "/bin/true",
            "--listen",
            &metrics_address,
            "--log-level",
            &args.controller_log_level,
            "--debounce",
            &debounce,
            "--namespace",
            "review-system",
        ],
        &kubeconfig,
        &args.controller_log,
    )?;
    let pid = controller.id().context("controller pid")?;
    let progress = tokio::spawn(report_progress(view.clone(), cold_started));
    // A check walks every run, so it is spaced by the fleet's size: it must not
    // take the CPU the controller and the server need.
    let spacing = Duration::from_micros((runs as u64 * 2).max(50_000));
    view.until("cold convergence", Duration::from_secs(600), spacing, |view| converged(view, args.reviewers)).await?;
    let cold_converge_s = cold_started.elapsed().as_secs_f64();
    let cold_controller_cpu_s = process::cpu_seconds(pid)?;
    let cold_bench_process_cpu_s = process::cpu_seconds(std::process::id())? - bench_cpu_before;
    progress.abort();
    eprintln!("converged in {cold_converge_s:.2}s");
    let cold_requests = api_requests(&metrics_address).await?;
    eprintln!("cold start requests: {cold_requests:?}");

    // Idle: nothing changes, so the controller must write nothing.
    let settle_s = tally.settle(Duration::from_secs(2), Duration::from_secs(30)).await.as_secs_f64();
    let (before, kubelet_before) = (tally.snapshot(), kubelet.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle = delta(&before, &tally.snapshot());
    let idle_writes = total_without_leases(&idle) - (kubelet.load(Ordering::Relaxed) - kubelet_before);
    let idle_lease_writes = idle.get("leases").copied().unwrap_or(0);
    eprintln!("idle {}s: {idle:?}", args.idle_seconds);

    // Supersedes, one at a time.
    let chosen: Vec<String> = (0..args.supersedes.min(args.reviewers))
        .map(|k| reviewer_name(k * args.reviewers / args.supersedes.min(args.reviewers)))
        .collect();
    let runs_api: Api<ReviewRun> = Api::namespaced(client.clone(), NAMESPACE);
    let mut latencies = Vec::new();
    let mut writes = Vec::new();
    let mut write_kinds: BTreeMap<String, u64> = BTreeMap::new();
    for (k, reviewer) in chosen.iter().enumerate() {
        let target = target(&view, reviewer)?;
        let stale = target.stale.name_any();
        let name = format!("{reviewer}-s{k:03}");
        let run = new_run(&name, reviewer, &target.stale.spec.pull_request.url, &sha(u64::MAX - k as u64));
        let (before, kubelet_before) = (tally.snapshot(), kubelet.load(Ordering::Relaxed));
        let t0 = Instant::now();
        runs_api.create(&PostParams::default(), &run).await?;
        let incarnation = target.pod.incarnation + 1;
        view.until(&format!("supersede of {stale} by {name}"), Duration::from_secs(60), Duration::ZERO, |view| {
            superseded(view, reviewer, &stale, &name, incarnation)
        })
        .await?;
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        tally.settle(Duration::from_secs(1), Duration::from_secs(30)).await;
        let changes = delta(&before, &tally.snapshot());
        // The bench's own writes: the run creation and the kubelet's status patch.
        let own = 1 + (kubelet.load(Ordering::Relaxed) - kubelet_before);
        writes.push(total_without_leases(&changes).saturating_sub(own));
        for (resource, count) in changes.into_iter().filter(|(r, _)| r != "leases") {
            *write_kinds.entry(resource).or_default() += count;
        }
    }
    let (rss_peak, rss_now) = process::memory_mb(pid)?;
    let (bench_rss_peak, _) = process::memory_mb(std::process::id())?;

    // The floor: the controller stops, and a plain client issues the same writes back to back.
    // SAFETY: kill(2) on the pid of a child this process owns and has not reaped.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    if tokio::time::timeout(Duration::from_secs(20), controller.wait()).await.is_err() {
        controller.kill().await?;
    }
    let (floor, floor_writes) = floor(&client, &view, &tally, &chosen).await?;

    let samples = latencies.len();
    let per_supersede = if writes.is_empty() { f64::NAN } else { writes.iter().sum::<u64>() as f64 / samples as f64 };
    let breakdown: BTreeMap<String, f64> =
        write_kinds.into_iter().map(|(r, c)| (r, round(c as f64 / samples.max(1) as f64, 2))).collect();
    let line = json!({
        "runs": runs,
        "reviewers": args.reviewers,
        "current_runs": current_runs,
        "supersede_p50_ms": round(percentile(&latencies, 0.5), 1),
        "supersede_p99_ms": round(percentile(&latencies, 0.99), 1),
        "supersede_samples": samples,
        "floor_p50_ms": round(percentile(&floor, 0.5), 1),
        "floor_p99_ms": round(percentile(&floor, 0.99), 1),
        "floor_writes_per_sample": round(floor_writes.iter().sum::<u64>() as f64 / floor_writes.len().max(1) as f64, 2),
        "writes_per_supersede": round(per_supersede, 2),
        "writes_per_supersede_min": writes.iter().min(),
        "writes_per_supersede_max": writes.iter().max(),
        "supersede_changes_by_resource": breakdown,
        "idle_writes": idle_writes,
        "idle_seconds": args.idle_seconds,
        "idle_lease_renewals": idle_lease_writes,
        "settle_before_idle_s": round(settle_s, 2),
        "controller_rss_mb": round(rss_peak, 1),
        "controller_rss_now_mb": round(rss_now, 1),
        "controller_rss_mb_per_1k_runs": round(rss_peak / (runs as f64 / 1000.0), 2),
        "devcluster_rss_mb": round(devcluster_rss_populated, 1),
        "bench_process_rss_peak_mb": round(bench_rss_peak, 1),
        "cold_start_requests_by_verb": by_verb(&cold_requests),
        "cold_start_requests": cold_requests.iter().map(|((verb, resource), count)| (format!("{verb} {resource}"), *count)).collect::<BTreeMap<_, _>>(),
        "cold_converge_s": round(cold_converge_s, 2),
        "cold_controller_cpu_s": round(cold_controller_cpu_s, 1),
        "cold_bench_process_cpu_s": round(cold_bench_process_cpu_s, 1),
        "debounce": debounce,
        "watch_events_missed": tally.lagged.load(Ordering::Relaxed) + view.lagged.load(Ordering::Relaxed),
    });
    println!("{line}");
    cluster.shutdown().await?;
    Ok(())
}

/// Latencies of the supersede's writes issued back to back by a plain
/// client, one sample per Reviewer in `chosen`, measured like the
/// controller's: from the run's creation until the view shows the end state.
async fn floor(
    client: &kube::Client,
    view: &View,
    tally: &Tally,
    chosen: &[String],
) -> anyhow::Result<(Vec<f64>, Vec<u64>)> {
    let runs: Api<ReviewRun> = Api::namespaced(client.clone(), NAMESPACE);
    let reviewers: Api<Reviewer> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let recorder = Recorder::new(client.clone(), Reporter::from(FLOOR_MANAGER));
    let apply = PatchParams::apply(FLOOR_MANAGER).force();
    let mut latencies = Vec::new();
    let mut writes = Vec::new();
    for (k, reviewer) in chosen.iter().enumerate() {
        let target = target(view, reviewer)?;
        let stale_name = target.stale.name_any();
        let name = format!("{reviewer}-f{k:03}");
        let run = new_run(&name, reviewer, &target.stale.spec.pull_request.url, &sha(u64::MAX / 2 - k as u64));
        let old_pod = view.pod_of(reviewer, target.pod.incarnation).context("the live pod is not in the view")?;
        let incarnation = target.pod.incarnation + 1;
        let now = Time(Timestamp::now());

        // The other runs of the queue, which the restart moves to the new pod.
        let queued: Vec<Arc<ReviewRun>> = view
            .runs
            .state()
            .into_iter()
            .filter(|run| run.spec.reviewer == *reviewer && run.phase() == RunPhase::Running)
            .filter(|run| run.name_any() != stale_name)
            .collect();

        let before = tally.snapshot();
        let t0 = Instant::now();
        let created = runs.create(&PostParams::default(), &run).await?;
        // The new run's first status comes with its assignment, below.
        let mut pending = created.status.clone().unwrap_or_default();
        let head = conditions::DesiredCondition {
            type_: CONDITION_CURRENT,
            status: conditions::TRUE,
            reason: "HeadCommit",
            message: "The run is for the pull request's head commit".into(),
        };
        conditions::set(&mut pending.conditions, head, None, now.0);
        // The stale run fails as Superseded.
        let mut status = target.stale.status.clone().unwrap_or_default();
        status.phase = Some(RunPhase::Failed);
        status.reason = Some(RunReason::Superseded);
        status.message = Some(format!("superseded by {name}"));
        status.superseded_by = Some(name.clone());
        status.completion_time = Some(now.clone());
        status.result = None;
        let failed = |type_, reason: &'static str| conditions::DesiredCondition {
            type_,
            status: conditions::FALSE,
            reason,
            message: format!("superseded by {name}"),
        };
        conditions::set(&mut status.conditions, failed(CONDITION_SUCCEEDED, "Superseded"), None, now.0);
        conditions::set(&mut status.conditions, failed(CONDITION_CURRENT, "Superseded"), None, now.0);
        apply_run_status(&runs, &apply, &stale_name, &status).await?;
        // The Reviewer records the restart, then the pod is replaced.
        let mut reviewer_status = target.reviewer.status.clone().unwrap_or_default();
        reviewer_status.incarnation = incarnation;
        reviewer_status.restarts += 1;
        reviewer_status.pod = None;
        reviewer_status.queue.clear();
        reviewer_status.last_restart =
            Some(LastRestart { time: now.clone(), reason: RestartReason::Superseded, runs: vec![stale_name.clone()] });
        apply_reviewer_status(&reviewers, &apply, reviewer, &reviewer_status).await?;
        let delete = DeleteParams {
            preconditions: Some(Preconditions { uid: old_pod.uid(), resource_version: None }),
            ..DeleteParams::default()
        };
        pods.delete(&old_pod.name_any(), &delete).await?;
        let next = next_pod(&old_pod, incarnation);
        let created_pod = pods.create(&PostParams::default(), &next).await?;
        publish(&recorder, "Superseded", format!("superseded by {name}"), target.stale.as_ref()).await?;
        publish(&recorder, "Restarted", format!("Replacing pod {}", old_pod.name_any()), target.reviewer.as_ref())
            .await?;
        // The bench's kubelet marks the new pod Running, as for the controller.
        // The queue moves to the new pod, and the Reviewer's status follows.
        let pod_ref = PodReference { name: next.name_any(), uid: created_pod.uid().unwrap_or_default(), incarnation };
        let assignment = Assignment { pod: pod_ref.name.clone(), pod_uid: pod_ref.uid.clone(), incarnation };
        let mut queue = Vec::new();
        for (queued_name, status) in queued
            .iter()
            .map(|run| (run.name_any(), run.status.clone().unwrap_or_default()))
            .chain(std::iter::once((name.clone(), pending.clone())))
        {
            let mut running = status;
            running.phase = Some(RunPhase::Running);
            running.assignment = Some(assignment.clone());
            running.message = Some(format!("Assigned to reviewer pod {}", pod_ref.name));
            running.start_time.get_or_insert_with(|| now.clone());
            apply_run_status(&runs, &apply, &queued_name, &running).await?;
            queue.push(queued_name);
        }
        // Only the new run is assigned for the first time; the others move.
        publish(&recorder, "Assigned", format!("Assigned to reviewer pod {}", pod_ref.name), &created).await?;
        reviewer_status.pod = Some(pod_ref);
        reviewer_status.queue_length = queue.len() as i64;
        reviewer_status.queue = queue;
        apply_reviewer_status(&reviewers, &apply, reviewer, &reviewer_status).await?;
        view.until(&format!("floor sample {name}"), Duration::from_secs(60), Duration::ZERO, |view| {
            superseded(view, reviewer, &stale_name, &name, incarnation)
        })
        .await?;
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        tally.settle(Duration::from_secs(1), Duration::from_secs(30)).await;
        // All but the run creation and the kubelet's status patch.
        writes.push(total_without_leases(&delta(&before, &tally.snapshot())).saturating_sub(2));
    }
    Ok((latencies, writes))
}

async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    reason: &str,
    note: String,
    object: &K,
) -> anyhow::Result<()> {
    let event = Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&event, &object.object_ref(&())).await?;
    Ok(())
}

async fn apply_run_status(
    runs: &Api<ReviewRun>,
    params: &PatchParams,
    name: &str,
    status: &review_operator::api::ReviewRunStatus,
) -> anyhow::Result<()> {
    let body = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "ReviewRun",
        "metadata": { "name": name },
        "status": status,
    });
    runs.patch_status(name, params, &Patch::Apply(&body)).await.with_context(|| format!("status of {name}"))?;
    Ok(())
}

async fn apply_reviewer_status(
    reviewers: &Api<Reviewer>,
    params: &PatchParams,
    name: &str,
    status: &review_operator::api::ReviewerStatus,
) -> anyhow::Result<()> {
    let body = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "Reviewer",
        "metadata": { "name": name },
        "status": status,
    });
    reviewers.patch_status(name, params, &Patch::Apply(&body)).await.with_context(|| format!("status of {name}"))?;
    Ok(())
}

/// The next incarnation of a reviewer pod: the same spec under a new name.
fn next_pod(old: &Pod, incarnation: i64) -> Pod {
    let reviewer = old.labels().get(labels::REVIEWER).cloned().unwrap_or_default();
    let mut labels_ = old.labels().clone();
    labels_.insert(labels::INCARNATION.into(), incarnation.to_string());
    let mut pod = Pod { spec: old.spec.clone(), ..Pod::default() };
    pod.metadata.name = Some(format!("{reviewer}-{incarnation}"));
    pod.metadata.namespace = old.metadata.namespace.clone();
    pod.metadata.labels = Some(labels_);
    pod.metadata.annotations = old.metadata.annotations.clone();
    pod.metadata.owner_references = old.metadata.owner_references.clone();
    pod
}
