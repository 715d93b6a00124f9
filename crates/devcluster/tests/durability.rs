//! Durability with `--data-dir`: a server process killed with SIGKILL in the middle of a write storm
//! comes back with every acknowledged write, at the same resourceVersion, and watches resume after it.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WRITERS: usize = 16;
const PER_WRITER: usize = 250;

/// Starts `devcluster-serve` on `data_dir` and waits until it serves.
async fn serve(data_dir: &Path, kubeconfig: &Path) -> (Child, kube::Client) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devcluster-serve"))
        .arg("127.0.0.1:0")
        .arg(kubeconfig)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("devcluster-serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("the server reports it serves within a minute")
        .expect("stdout readable")
        .expect("a line");
    assert!(line.starts_with("export KUBECONFIG="), "{line}");
    let config =
        kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(kubeconfig).unwrap(), &KubeConfigOptions::default())
            .await
            .unwrap();
    (child, kube::Client::try_from(config).unwrap())
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"payload": name.repeat(8)}}))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill() {
    let seed: u64 = std::env::var("DURABILITY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_260_101);
    let kill_after = rand::rngs::StdRng::seed_from_u64(seed).random_range(300..(WRITERS * PER_WRITER * 3 / 4));
    println!("seed {seed}: SIGKILL after {kill_after} acknowledged writes");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let kubeconfig = dir.path().join("kubeconfig");
    let (mut child, client) = serve(&data_dir, &kubeconfig).await;

    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let (reached, mut reached_rx) = tokio::sync::watch::channel(false);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let acked = acked.clone();
        let reached = reached.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let name = format!("cm-{writer}-{i}");
                match api.create(&PostParams::default(), &config_map(&name)).await {
                    Ok(created) => {
                        let mut acked = acked.lock().unwrap();
                        acked.insert(name, created.metadata.resource_version.expect("resourceVersion"));
                        if acked.len() >= kill_after {
                            reached.send_replace(true);
                        }
                    }
                    // The server is gone: this write was never acknowledged.
                    Err(_) => return,
                }
            }
        }));
    }
    drop(reached);
    let _ = reached_rx.wait_for(|r| *r).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() >= kill_after, "{} writes acknowledged", acked.len());

    let (_child, client) = serve(&data_dir, &kubeconfig).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let listing = api.list(&ListParams::default()).await.unwrap();
    let stored: HashMap<String, String> = listing
        .items
        .iter()
        .map(|cm| (cm.metadata.name.clone().unwrap(), cm.metadata.resource_version.clone().unwrap()))
        .collect();
    let mut lost = Vec::new();
    for (name, rv) in &acked {
        if stored.get(name) != Some(rv) {
            lost.push((name.clone(), rv.clone(), stored.get(name).cloned()));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost or changed, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    println!("{} acknowledged, {} stored after restart", acked.len(), stored.len());

    // Watches resume from the restarted server's resourceVersions; older ones are gone (410).
    let list_rv = listing.metadata.resource_version.clone().unwrap();
    let highest_acked = acked.values().map(|rv| rv.parse::<u64>().unwrap()).max().unwrap();
    assert!(list_rv.parse::<u64>().unwrap() >= highest_acked);
    let mut resumed = api.watch(&WatchParams::default(), &list_rv).await.unwrap().boxed();
    let created = api.create(&PostParams::default(), &config_map("after-restart")).await.unwrap();
    assert!(
        created.metadata.resource_version.clone().unwrap().parse::<u64>().unwrap() > list_rv.parse::<u64>().unwrap()
    );
    match resumed.try_next().await.unwrap() {
        Some(WatchEvent::Added(cm)) => {
            assert_eq!(cm.metadata.name.as_deref(), Some("after-restart"));
            assert_eq!(cm.metadata.resource_version, created.metadata.resource_version);
        }
        other => panic!("expected the new object, got {other:?}"),
    }
    let stale = (highest_acked - 1).to_string();
    match api.watch(&WatchParams::default(), &stale).await {
        Ok(stream) => match stream.boxed().next().await {
            Some(Ok(WatchEvent::Error(e))) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
            other => panic!("expected 410 Expired, got {other:?}"),
        },
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 410),
        Err(other) => panic!("expected 410 Expired, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_crds_and_objects_come_back_after_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || devcluster::Config { data_dir: Some(dir.path().to_path_buf()), ..devcluster::Config::default() };
    let cluster = devcluster::DevCluster::start(config()).await.unwrap();
    support::install_crd(&cluster, "crds/reviewrun.yaml", "reviewruns.review.ao.dev").await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let kept = api.create(&PostParams::default(), &config_map("kept")).await.unwrap();
    cluster.shutdown().await.unwrap();

    let cluster = devcluster::DevCluster::start(config()).await.unwrap();
    assert!(
        cluster.server().registry.get("review.ao.dev", "v1alpha1", "reviewruns").is_some(),
        "the stored CRD is served again"
    );
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    assert_eq!(api.get("kept").await.unwrap().metadata.resource_version, kept.metadata.resource_version);
    let namespaces = support::kubectl(&cluster, &["get", "namespaces", "-o", "name"]).await.ok();
    assert_eq!(namespaces.lines().filter(|l| *l == "namespace/default").count(), 1, "{namespaces}");
    cluster.shutdown().await.unwrap();
}

/// A restart on the same data directory and address keeps the CA and the admin token: clients
/// and kubeconfigs made before it keep working, as with a real API server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_from_before_a_restart_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = devcluster::DevCluster::start(devcluster::Config {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .unwrap();
    let address = cluster.address();
    let before = cluster.client().unwrap();
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig_path()).unwrap();
    Api::<ConfigMap>::default_namespaced(before.clone())
        .create(&PostParams::default(), &config_map("kept"))
        .await
        .unwrap();
    cluster.shutdown().await.unwrap();

    let config = devcluster::Config { listen: address, data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    let cluster = devcluster::DevCluster::start(config).await.unwrap();
    let kept = Api::<ConfigMap>::default_namespaced(before).get("kept").await.expect("the old client still works");
    assert_eq!(kept.metadata.name.as_deref(), Some("kept"));
    assert_eq!(std::fs::read_to_string(cluster.kubeconfig_path()).unwrap(), kubeconfig, "the same kubeconfig");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = devcluster::DevCluster::start(devcluster::Config {
        data_dir: Some(file.clone()),
        ..devcluster::Config::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().starts_with(&format!("cannot create data directory {}", file.display())), "{err}");
}
