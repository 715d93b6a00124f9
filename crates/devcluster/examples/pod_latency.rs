//! Measures how fast the local pod runner starts and removes pods: time from create until every pod
//! is `Running`, and from delete until every pod object is gone (processes that exit on SIGTERM).
//!
//! Run with `cargo run -p devcluster --release --example pod_latency [PODS]`.

use devcluster::{Config, DevCluster};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(20);
    let cluster = DevCluster::start(Config::default()).await?;
    let pods: Api<Pod> = Api::default_namespaced(cluster.client()?);
    let started = Instant::now();
    for i in 0..count {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}")},
            "spec": {"containers": [{"name": "main", "image": "none", "command": ["sleep", "600"]}]}
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let running = wait(&pods, |list| {
        list.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count() == count
    })
    .await?;
    println!("{count} pods created and Running in {:.1} ms", running.duration_since(started).as_secs_f64() * 1e3);
    let deleting = Instant::now();
    for i in 0..count {
        pods.delete(&format!("p{i}"), &DeleteParams::default()).await?;
    }
    let gone = wait(&pods, |list| list.is_empty()).await?;
    println!(
        "{count} pods deleted (SIGTERM, then removed) in {:.1} ms",
        gone.duration_since(deleting).as_secs_f64() * 1e3
    );
    cluster.shutdown().await?;
    Ok(())
}

async fn wait(pods: &Api<Pod>, done: impl Fn(&[Pod]) -> bool) -> Result<Instant, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = pods.list(&ListParams::default()).await?;
        if done(&list.items) {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            return Err("timed out".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
