//! Plays the kubelet for the benchmarks, whose dev cluster runs no pods: every new reviewer pod
//! is marked Running and Ready through the API, once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use devcluster::DevCluster;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize as _;
use serde_json::json;

/// Pod status patches in flight at once.
const KUBELETS: usize = 16;

pub fn is_running_pod(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Plays the kubelet: marks every new reviewer pod Running and Ready, through the API.
///
/// The change feed is read apart from the patches, so that a burst of other
/// changes never makes it fall behind while a patch is in flight; when it
/// falls behind anyway, it relists the pods, as a kubelet relists after its
/// watch broke.
pub fn spawn_kubelet(cluster: &DevCluster, client: &kube::Client) -> Arc<AtomicU64> {
    let writes = Arc::new(AtomicU64::new(0));
    let counter = writes.clone();
    let client = client.clone();
    let store = cluster.server().store.clone();
    let (_, start) = store.list_and_watch("", "pods", None);
    let mut live = start.live;
    let (pending, mut to_mark) = tokio::sync::mpsc::unbounded_channel::<Pod>();
    tokio::spawn(async move {
        loop {
            match live.recv().await {
                Ok(change) => {
                    if change.key.resource == "pods"
                        && change.key.group.is_empty()
                        && change.kind != devcluster::store::EventType::Deleted
                        && let Ok(pod) = Pod::deserialize(change.object.as_ref())
                    {
                        let _ = pending.send(pod);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    eprintln!("kubelet: missed {missed} changes; relisting pods");
                    for object in store.list("", "pods", None).objects {
                        if let Ok(pod) = Pod::deserialize(object.as_ref()) {
                            let _ = pending.send(pod);
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    // A cluster's pods start on many nodes at once: marks go out concurrently, as the kubelets
    // of many nodes would send them, so that the pace at which pods start is not one client's round trips.
    let marks = Arc::new(tokio::sync::Semaphore::new(KUBELETS));
    tokio::spawn(async move {
        let mut marked = BTreeSet::new();
        while let Some(pod) = to_mark.recv().await {
            let (Some(uid), Some(namespace)) = (pod.uid(), pod.namespace()) else { continue };
            if pod.metadata.deletion_timestamp.is_some() || is_running_pod(&pod) || !marked.insert(uid) {
                continue;
            }
            let Ok(permit) = marks.clone().acquire_owned().await else { return };
            let (client, counter) = (client.clone(), counter.clone());
            tokio::spawn(async move {
                let api: Api<Pod> = Api::namespaced(client, &namespace);
                match api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&kubelet_status())).await
                {
                    Ok(_) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => eprintln!("kubelet: cannot mark {} Running: {error}", pod.name_any()),
                }
                drop(permit);
            });
        }
    });
    writes
}

fn kubelet_status() -> serde_json::Value {
    let now = Timestamp::now().to_string();
    json!({ "status": {
        "phase": "Running",
        "startTime": now,
        "conditions": [
            { "type": "Ready", "status": "True", "lastTransitionTime": now },
            { "type": "ContainersReady", "status": "True", "lastTransitionTime": now },
        ],
    }})
}
