//! Webhook receiver benchmark: signed `pull_request` deliveries over HTTP to
//! the receiver, against a dev cluster with the controller running (two
//! thirds of the deliveries are pushes that supersede a running review and
//! restart its pod). Prints one JSON line: deliveries per second, the
//! receiver's answer latency, the time from a delivery to its run being
//! Running, and the API writes each delivery caused. CPU seconds are each
//! process's whole run: the receiver, the controller, and this process (the
//! dev cluster, the kubelet and the sender).
//!
//! The receiver and the controller run as they are deployed: the release
//! `review-operator webhook` and `review-operator controller` binaries, each
//! in a process of its own (build them with `cargo build --release --bin
//! review-operator`). The dev cluster, the kubelet the bench plays and the
//! sender of deliveries share this process.
//!
//! `cargo run --release --example webhook_bench -- --deliveries 3000 --concurrency 32`
//! `cargo run --release --example webhook_bench -- --rate 300` (open loop: the latencies at 300 deliveries/s)
//! `cargo run --release --example webhook_bench -- --without-controller` (the receiver and API server alone)

#[path = "bench_support/allocator.rs"]
mod allocator;
#[path = "bench_support/feed.rs"]
mod feed;
#[path = "bench_support/kubelet.rs"]
mod kubelet;
#[path = "bench_support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use devcluster::{Config, DevCluster};
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use kube::api::{Api, PostParams};
use review_operator::api::{AgentSpec, GROUP, PullRequestMatch, Reviewer, ReviewerSpec};
use review_operator::controller::{RECOMMENDED_CONCURRENCY, RECOMMENDED_DEBOUNCE};
use review_operator::intake::payload::examples;
use review_operator::intake::signature::sign;
use tokio::sync::Mutex;

#[derive(Parser)]
struct Args {
    /// Deliveries to send.
    #[arg(long, default_value_t = 3000)]
    deliveries: usize,
    /// Deliveries in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Reviewers (one worker each); pull requests are spread over them.
    #[arg(long, default_value_t = 20)]
    reviewers: usize,
    /// Leave the controller out, to measure the receiver and the API server alone.
    #[arg(long)]
    without_controller: bool,
    /// The review-operator binary [default: target/release/review-operator next to this example].
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Send at this many deliveries per second (open loop) instead of as fast as the answers
    /// come; latencies then count from when each delivery was due, so a backlog shows.
    #[arg(long)]
    rate: Option<f64>,
}

const SECRET: &[u8] = b"bench-secret";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A distinct commit SHA per delivery, distinct in its first 7 characters too (run names use them).
fn sha(n: usize) -> String {
    format!("{n:07x}{n:033x}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runner = devcluster::runner::RunnerSettings { enabled: false, ..Default::default() };
    let cluster =
        DevCluster::start(Config { runner, ..Config::default() }).await.context("starting the dev cluster")?;
    let client = cluster.client()?;
    review_operator::dev::manifests::install(&client).await?;
    let reviewers: Api<Reviewer> = Api::namespaced(client.clone(), "default");
    for index in 0..args.reviewers {
        let mut reviewer = Reviewer::new(
            &format!("review-w{index}"),
            ReviewerSpec {
                r#match: Some(PullRequestMatch {
                    repositories: vec![examples::REPOSITORY.into()],
                    head_branch_prefix: Some(format!("agent/w{index}/")),
                    authors: vec![],
                    drafts: false,
                    skip_labels: vec![],
                }),
                ..ReviewerSpec::new(format!("w{index}"), AgentSpec::new("img"))
            },
        );
        reviewer.metadata.namespace = Some("default".into());
        reviewers.create(&PostParams::default(), &reviewer).await?;
    }
    // The dev cluster runs no pods here: the bench plays the kubelet, so runs reach Running.
    let kubelet_writes = kubelet::spawn_kubelet(&cluster, &client);
    let binary = process::operator_binary(args.binary.clone())?;
    let logs = std::env::temp_dir().join(format!("webhook-bench-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    // Each component runs as the ServiceAccount it is deployed with.
    apply_kinds(
        &client,
        "deploy/webhook.yaml",
        include_str!("../deploy/webhook.yaml"),
        &["ServiceAccount", "ClusterRole", "ClusterRoleBinding"],
    )
    .await?;
    let controller_kubeconfig = logs.join("controller.kubeconfig");
    process::deployed_identity(&cluster, &client, "review-system", "review-operator", &controller_kubeconfig).await?;
    let webhook_kubeconfig = logs.join("webhook.kubeconfig");
    process::deployed_identity(&cluster, &client, "review-system", "review-operator-webhook", &webhook_kubeconfig)
        .await?;
    let controller_metrics = process::free_local_address()?;
    let controller = if args.without_controller {
        None
    } else {
        let debounce = format!("{}ms", RECOMMENDED_DEBOUNCE.as_millis());
        let concurrency = RECOMMENDED_CONCURRENCY.to_string();
        let flags = [
            "controller",
            "--agent-binary",
            "/bin/true",
            "--listen",
            &controller_metrics,
            "--log-level",
            "warn",
            "--debounce",
            &debounce,
            "--concurrency",
            &concurrency,
        ];
        Some(process::spawn_component(&binary, &flags, &controller_kubeconfig, &logs.join("controller.log"))?)
    };
    let secret_file = logs.join("webhook-secret");
    std::fs::write(&secret_file, SECRET)?;
    let address = process::free_local_address()?;
    let secret_path = secret_file.display().to_string();
    let flags = ["webhook", "--listen", &address, "--secret-file", &secret_path, "--log-level", "warn"];
    let receiver = process::spawn_component(&binary, &flags, &webhook_kubeconfig, &logs.join("webhook.log"))?;
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let url: hyper::Uri = format!("http://{address}/github").parse()?;
    // Ready: the receiver has listed the Reviewers.
    let ready: hyper::Uri = format!("http://{address}/readyz").parse()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(ready.clone()).await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        anyhow::ensure!(Instant::now() < deadline, "the receiver did not become ready; see {}", logs.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // When each run was asked for, and when it was seen Running.
    let asked: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let running: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let seen = running.clone();
    let missed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (_, start) = cluster.server().store.list_and_watch(GROUP, "reviewruns", None);
    tokio::spawn(feed::follow(start.live, GROUP, "reviewruns", missed.clone(), move |followed| {
        if let feed::Followed::Change(change) = followed
            && change.object.pointer("/status/phase").and_then(|phase| phase.as_str()) == Some("Running")
        {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(change.key.name.clone())
                .or_insert_with(Instant::now);
        }
    }));

    let revision_before = cluster.server().store.revision();
    let kubelet_before = kubelet_writes.load(std::sync::atomic::Ordering::Relaxed);
    let (started, mut latencies) = send_deliveries(&args, url, asked.clone()).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let writes = cluster.server().store.revision() - revision_before;
    let writes = writes.saturating_sub(kubelet_writes.load(std::sync::atomic::Ordering::Relaxed) - kubelet_before);

    // The newest run of each pull request ends Running; the older ones are superseded.
    let expected = if args.without_controller { 0 } else { args.deliveries.div_ceil(3) };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let current = {
            let asked = asked.lock().await;
            let running = running.lock().unwrap_or_else(PoisonError::into_inner);
            asked.keys().filter(|name| running.contains_key(*name)).count()
        };
        if current >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missed = missed.load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(missed == 0, "the bench's view of runs fell behind the change feed by {missed} changes");
    let mut to_running: Vec<f64> = {
        let asked = asked.lock().await;
        let running = running.lock().unwrap_or_else(PoisonError::into_inner);
        asked
            .iter()
            .filter_map(|(name, at)| running.get(name).map(|seen| seen.duration_since(*at).as_secs_f64() * 1000.0))
            .collect()
    };
    // How often a push found its pull request's run Running and replaced the reviewer pod.
    let restarts: i64 = reviewers
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter_map(|r| r.status.as_ref())
        .map(|s| s.restarts)
        .sum();
    let reconciles: f64 = if args.without_controller {
        0.0
    } else {
        let text = process::metrics_text(&controller_metrics).await?;
        process::samples(&text, "review_operator_reconciles_total").iter().map(|(_, value)| value).sum()
    };
    let receiver_pid = receiver.id().context("the receiver's pid")?;
    let (receiver_rss_peak, _) = process::memory_mb(receiver_pid)?;
    let receiver_cpu = process::cpu_seconds(receiver_pid)?;
    let controller_cpu = match controller.as_ref().and_then(|c| c.id()) {
        Some(pid) => Some(process::cpu_seconds(pid)?),
        None => None,
    };
    let bench_cpu = process::cpu_seconds(std::process::id())?;
    latencies.sort_by(f64::total_cmp);
    to_running.sort_by(f64::total_cmp);
    let report = serde_json::json!({
        "deliveries": args.deliveries,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "reviewers": args.reviewers,
        "controller": !args.without_controller,
        "deliveries_per_second": (args.deliveries as f64 / elapsed).round(),
        "answer_p50_ms": (percentile(&latencies, 0.5) * 100.0).round() / 100.0,
        "answer_p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
        "runs_seen_running": to_running.len(),
        "controller_reconciles": reconciles,
        "receiver_rss_peak_mb": receiver_rss_peak.round(),
        "receiver_cpu_s": receiver_cpu,
        "controller_cpu_s": controller_cpu,
        "bench_process_cpu_s": bench_cpu,
        "reviewer_restarts": restarts,
        "api_writes_per_delivery": (writes as f64 / args.deliveries as f64 * 100.0).round() / 100.0,
        "delivery_to_running_p50_ms": percentile(&to_running, 0.5).round(),
        "delivery_to_running_p99_ms": percentile(&to_running, 0.99).round(),
    });
    println!("{report}");
    Ok(())
}

/// Sends the deliveries from a thread and runtime of their own, as GitHub sends from its own
/// machines: the dev cluster's work in this process then never delays a sent delivery or the
/// reading of its answer, and the latencies are the receiver's.
///
/// Each pull request is opened, then pushed to twice, in rounds over all pull requests: a push
/// comes a round after the one it replaces, when that run is being reviewed, so it supersedes a
/// Running run and restarts its reviewer.
async fn send_deliveries(
    args: &Args,
    url: hyper::Uri,
    asked: Arc<Mutex<BTreeMap<String, Instant>>>,
) -> anyhow::Result<(Instant, Vec<f64>)> {
    let (deliveries, reviewers, rate, concurrency) = (args.deliveries, args.reviewers, args.rate, args.concurrency);
    let sender = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            let http = HttpClient::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
            let started = Instant::now();
            let pull_requests = deliveries.div_ceil(3);
            let latencies = futures::stream::iter(0..deliveries)
                .map(|n| {
                    let (http, url, asked) = (http.clone(), url.clone(), asked.clone());
                    let due = rate.map(|rate| started + Duration::from_secs_f64(n as f64 / rate));
                    async move {
                        let pr = n % pull_requests + 1;
                        let mut payload = match n / pull_requests {
                            0 => examples::pull_request("opened", pr as i64, &sha(n)),
                            _ => examples::synchronize(pr as i64, &sha(n - pull_requests), &sha(n)),
                        };
                        payload["pull_request"]["head"]["ref"] =
                            format!("agent/w{}/change-{pr}", pr % reviewers).into();
                        let body = payload.to_string();
                        let request = hyper::Request::post(url)
                            .header("content-type", "application/json")
                            .header("x-github-event", "pull_request")
                            .header("x-hub-signature-256", sign(SECRET, body.as_bytes()))
                            .body(Full::new(bytes::Bytes::from(body)))?;
                        let sent = match due {
                            Some(due) => {
                                tokio::time::sleep_until(due.into()).await;
                                due
                            }
                            None => Instant::now(),
                        };
                        let response = http.request(request).await?;
                        let status = response.status();
                        let bytes = response.into_body().collect().await?.to_bytes();
                        let latency = sent.elapsed().as_secs_f64() * 1000.0;
                        anyhow::ensure!(
                            status.is_success(),
                            "delivery {n}: {status} {}",
                            String::from_utf8_lossy(&bytes)
                        );
                        let answer: serde_json::Value = serde_json::from_slice(&bytes)?;
                        for name in answer["created"].as_array().into_iter().flatten().filter_map(|n| n.as_str()) {
                            let name = name.split_once('/').map_or(name, |(_, name)| name);
                            asked.lock().await.insert(name.to_owned(), sent);
                        }
                        Ok::<f64, anyhow::Error>(latency)
                    }
                })
                .buffer_unordered(concurrency)
                .try_collect()
                .await?;
            Ok::<_, anyhow::Error>((started, latencies))
        })
    });
    tokio::task::spawn_blocking(move || sender.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the sender of deliveries panicked"))?
}

/// Applies the objects of kinds `kinds` from the manifest `text` (a file of `deploy/`).
async fn apply_kinds(client: &kube::Client, file: &str, text: &str, kinds: &[&str]) -> anyhow::Result<()> {
    for object in review_operator::dev::manifests::documents(file, text)? {
        if object.types.as_ref().is_some_and(|types| kinds.contains(&types.kind.as_str())) {
            review_operator::dev::manifests::apply(client, file, &serde_yaml::to_string(&object)?).await?;
        }
    }
    Ok(())
}
