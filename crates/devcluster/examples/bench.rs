//! Measures the dev cluster through its real HTTPS API and prints one JSON line:
//! `cargo run --release -p devcluster --example bench`.
//!
//! - Write throughput: `WRITES` creates and merge-patch updates of ConfigMaps from `WRITERS`
//!   concurrent client tasks, while `WATCHERS` watches consume every event.
//! - Watch delivery latency: every write carries its send time (microseconds since the benchmark
//!   started) in an annotation; each watcher records how long after that time it received the event.
//!   Reported for a paced phase (one write every `PACE`, the steady state an operator sees) and for
//!   the saturated throughput phase.

use devcluster::{Config, DevCluster};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 4;
const WRITES: usize = 20_000;
const OBJECTS_PER_WRITER: usize = 250;
const WATCHERS: usize = 10;
const PACED_WRITES: usize = 500;
const PACE: Duration = Duration::from_millis(2);
const NAMESPACE: &str = "bench";
const SENT_AT: &str = "bench.devcluster/sent-at-us";

type Samples = Arc<Mutex<Vec<f64>>>;

fn micros_since(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

fn config_map(name: &str, sent_at: u64) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(BTreeMap::from([(SENT_AT.to_string(), sent_at.to_string())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("v".to_string(), "0".to_string())])),
        ..ConfigMap::default()
    }
}

/// Records the delivery latency of every event into `samples` until the stream ends.
async fn watch(api: Api<ConfigMap>, start: Instant, samples: Samples, ready: tokio::sync::mpsc::Sender<()>) {
    let params = WatchParams::default().timeout(290);
    let mut stream = match api.watch(&params, "0").await {
        Ok(stream) => stream.boxed(),
        Err(e) => panic!("watch failed to start: {e}"),
    };
    let _ = ready.send(()).await;
    while let Ok(Some(event)) = stream.try_next().await {
        let received = micros_since(start);
        let object = match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => o,
            _ => continue,
        };
        let sent =
            object.metadata.annotations.as_ref().and_then(|a| a.get(SENT_AT)).and_then(|s| s.parse::<u64>().ok());
        if let Some(sent) = sent {
            samples.lock().unwrap().push(received.saturating_sub(sent) as f64 / 1000.0);
        }
    }
}

/// One writer: creates its objects, then updates them round-robin until it has written `writes` times.
async fn write(api: Api<ConfigMap>, start: Instant, writer: usize, writes: usize, objects: usize) {
    for i in 0..writes {
        let name = format!("w{writer}-{}", i % objects);
        if i < objects {
            api.create(&PostParams::default(), &config_map(&name, micros_since(start))).await.expect("create");
        } else {
            let patch = json!({
                "metadata": {"annotations": {SENT_AT: micros_since(start).to_string()}},
                "data": {"v": i.to_string()},
            });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("update");
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(samples: &Samples) -> (usize, f64, f64) {
    let mut values = std::mem::take(&mut *samples.lock().unwrap());
    values.sort_by(f64::total_cmp);
    (values.len(), percentile(&values, 50.0), percentile(&values, 99.0))
}

/// Waits until every watcher has delivered `expected` events or a generous deadline passes.
async fn drain(samples: &Samples, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while samples.lock().unwrap().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = DevCluster::start(Config::default()).await?;
    let client = cluster.client()?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(NAMESPACE.into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    namespaces.create(&PostParams::default(), &ns).await?;

    let start = Instant::now();
    let samples: Samples = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(WATCHERS);
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        // Each watcher has its own client, as separate processes would.
        let api: Api<ConfigMap> = Api::namespaced(cluster.client()?, NAMESPACE);
        watchers.push(tokio::spawn(watch(api, start, samples.clone(), ready_tx.clone())));
    }
    for _ in 0..WATCHERS {
        ready_rx.recv().await;
    }

    // Paced phase: latency in the steady state.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let mut ticker = tokio::time::interval(PACE);
    for i in 0..PACED_WRITES {
        ticker.tick().await;
        let name = format!("paced-{}", i % 50);
        if i < 50 {
            api.create(&PostParams::default(), &config_map(&name, micros_since(start))).await?;
        } else {
            let patch = json!({"metadata": {"annotations": {SENT_AT: micros_since(start).to_string()}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
    }
    drain(&samples, PACED_WRITES * WATCHERS).await;
    let (paced_events, paced_p50, paced_p99) = summary(&samples);

    // Throughput phase: concurrent writers as fast as the server takes them.
    let began = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
            tokio::spawn(write(api, start, w, WRITES / WRITERS, OBJECTS_PER_WRITER))
        })
        .collect();
    for writer in writers {
        writer.await?;
    }
    let elapsed = began.elapsed().as_secs_f64();
    drain(&samples, WRITES * WATCHERS).await;
    let (loaded_events, loaded_p50, loaded_p99) = summary(&samples);

    let report = json!({
        "writes": WRITES,
        "writers": WRITERS,
        "watchers": WATCHERS,
        "writes_per_s": round(WRITES as f64 / elapsed),
        "watch_latency_p50_ms": round(paced_p50),
        "watch_latency_p99_ms": round(paced_p99),
        "watch_events": paced_events,
        "paced_write_interval_ms": PACE.as_millis() as u64,
        "saturated_watch_latency_p50_ms": round(loaded_p50),
        "saturated_watch_latency_p99_ms": round(loaded_p99),
        "saturated_watch_events": loaded_events,
    });
    println!("{report}");
    for watcher in watchers {
        watcher.abort();
    }
    cluster.shutdown().await?;
    Ok(())
}
