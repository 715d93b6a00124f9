//! The local pod runner: a small kubelet for the one node `devcluster`. It binds every pod, runs its
//! containers as local processes (see [`process`]), reports status through the server's own object
//! operations as `system:node:devcluster`, gives each pod a token bound to it, and removes pods once
//! their processes are gone.
//!
//! Images are never pulled. Before a container starts, the runner makes the image checks a real
//! node makes, from what it knows without a registry ([`images`]):
//!
//! - an image whose registry host is in the reserved `.invalid` domain cannot be pulled: the
//!   container waits in `ErrImagePull`, then `ImagePullBackOff`, for as long as the pod exists
//!   (for an init container, later containers never start);
//! - `runAsNonRoot` is verified against the effective `runAsUser` and the image's user from
//!   [`RunnerSettings::images`] ([`security`]); a refusal is a `CreateContainerConfigError` that
//!   is retried. Images the catalog does not know have an unknown user and are allowed.

pub mod backoff;
pub mod env;
pub mod exec;
pub mod identity;
pub mod images;
pub mod log_request;
pub mod logs;
mod pod;
pub mod process;
pub mod security;
pub mod status;

use crate::auth::{UserInfo, generate_token};
use crate::meta;
use crate::server::{ApiServer, WriteContext};
use crate::store::{Change, EventType, ObjectKey};
use backoff::Backoff;
use chrono::SecondsFormat;
use identity::NODE_NAME;
use pod::PodEnvironment;
use process::{ProcessTable, Spawner};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long shutdown gives pod processes after SIGTERM (more than a reviewer supervisor needs to
/// stop its agent), and again after SIGKILL, to be reaped.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// The address pods and the node report: everything runs on loopback.
pub const HOST_IP: &str = "127.0.0.1";

/// How the runner runs pods.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Whether pods are run at all; when off, pods stay `Pending` and unbound, as with no node.
    pub enabled: bool,
    /// Where pod folders (kubeconfig, token files, working directories) live; `None` uses a private
    /// temporary folder removed on shutdown.
    pub pod_dir: Option<PathBuf>,
    /// Crash back-off; tests shorten it.
    pub backoff: Backoff,
    /// Output kept per container instance, in bytes.
    pub log_limit: usize,
    /// The users images run as, for `runAsNonRoot` checks (images are never pulled to find out).
    pub images: images::ImageCatalog,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            pod_dir: None,
            backoff: Backoff::default(),
            log_limit: logs::DEFAULT_LOG_LIMIT,
            images: images::ImageCatalog::default(),
        }
    }
}

/// The node's identity for its writes, as a kubelet authenticates.
pub fn node_user() -> UserInfo {
    UserInfo {
        username: format!("system:node:{NODE_NAME}"),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
        ..UserInfo::default()
    }
}

fn node_context() -> WriteContext {
    WriteContext { user: node_user(), manager: "kubelet".into(), ..WriteContext::system("kubelet") }
}

/// How long a pod deletion waits for the pod's processes, or `None` when the object goes at once:
/// grace 0, a pod never bound to a node, or one already finished (as the real pod strategy decides).
/// A repeated delete may shorten, never lengthen, the grace period.
pub fn graceful_deletion(pod: &Value, requested: Option<i64>) -> Option<i64> {
    let default = pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
    let grace = requested.unwrap_or(default).max(0);
    let phase = meta::str_at(pod, "/status/phase");
    if grace == 0 || meta::str_at(pod, "/spec/nodeName").is_empty() || matches!(phase, "Succeeded" | "Failed") {
        return None;
    }
    match pod.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64) {
        Some(current) if pod.pointer("/metadata/deletionTimestamp").is_some() => Some(current.min(grace)),
        _ => Some(grace),
    }
}

/// The `deletionTimestamp` of a graceful deletion: when the grace period ends.
pub fn deletion_timestamp(grace: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(grace)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// State every pod task shares.
#[derive(Debug)]
pub(crate) struct RunnerShared {
    server: Arc<ApiServer>,
    spawner: Spawner,
    settings: RunnerSettings,
    cluster_url: String,
    ca_pem: String,
    root: PathBuf,
}

/// A running pod runner; its processes can be killed synchronously (on drop of the cluster).
#[derive(Debug)]
pub struct PodRunner {
    processes: ProcessTable,
    task: Option<JoinHandle<()>>,
    root: PathBuf,
    remove_root: bool,
}

impl PodRunner {
    /// Creates the node and starts running pods until `shutdown` changes.
    pub(crate) fn start(
        server: Arc<ApiServer>,
        settings: RunnerSettings,
        cluster_url: String,
        ca_pem: String,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let (root, remove_root) = match &settings.pod_dir {
            Some(dir) => (dir.clone(), false),
            None => (std::env::temp_dir().join(format!("devcluster-pods-{}", uuid::Uuid::new_v4().simple())), true),
        };
        std::fs::create_dir_all(&root)?;
        let processes = ProcessTable::default();
        let spawner = Spawner::start(tokio::runtime::Handle::current(), processes.clone())?;
        create_node(&server);
        let shared = Arc::new(RunnerShared { server, spawner, settings, cluster_url, ca_pem, root: root.clone() });
        let task = tokio::spawn(Runner { shared, pods: HashMap::new() }.run(shutdown));
        Ok(Self { processes, task: Some(task), root, remove_root })
    }

    /// Kills every pod process group and removes the private pod folder.
    pub fn kill_all(&self) {
        self.processes.kill_all();
        if self.remove_root {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    /// Waits for the runner task after shutdown was signalled, then until every pod process is
    /// reaped, so that none is left behind, not even as a zombie.
    pub async fn stopped(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.kill_all();
        if !self.processes.reaped(SHUTDOWN_GRACE).await {
            tracing::warn!("pod processes were not reaped within {SHUTDOWN_GRACE:?} of shutdown");
        }
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The node object: Ready, with loopback addresses.
fn create_node(server: &ApiServer) {
    let ctx = node_context();
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE_NAME, "labels": {
            "kubernetes.io/hostname": NODE_NAME,
            "kubernetes.io/os": std::env::consts::OS,
            "kubernetes.io/arch": if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH },
        }},
        "spec": {},
    });
    let Ok(info) = server.resolve("", "v1", "nodes") else { return };
    if let Err(e) = server.create_object("", "v1", "nodes", None, node, &ctx)
        && e.code != 409
    {
        tracing::error!(error = %e, "cannot create the node");
        return;
    }
    let now = meta::now_rfc3339();
    let status = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE_NAME},
        "status": {
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
            "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": NODE_NAME}],
            "nodeInfo": {
                "kubeletVersion": "v1.37.1-devcluster", "operatingSystem": std::env::consts::OS,
                "architecture": std::env::consts::ARCH, "containerRuntimeVersion": "devcluster://local-processes",
                "kernelVersion": "", "osImage": "", "machineID": "", "systemUUID": "", "bootID": "",
                "kubeProxyVersion": "",
            },
        },
    });
    if let Err(e) = server.update_object(&info, None, NODE_NAME, Some("status"), status, &ctx) {
        tracing::error!(error = %e, "cannot write the node status");
    }
}

/// A pod the runner runs.
struct PodEntry {
    namespace: String,
    name: String,
    deleting: watch::Sender<Option<i64>>,
    token: String,
    dir: PathBuf,
    task: JoinHandle<()>,
}

struct Runner {
    shared: Arc<RunnerShared>,
    pods: HashMap<String, PodEntry>,
}

fn is_pod(key: &ObjectKey) -> bool {
    key.group.is_empty() && key.resource == "pods"
}

impl Runner {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut feed = match self.shared.server.store.watch_from(None) {
            Ok(start) => start.live,
            Err(_) => return,
        };
        self.sweep();
        let mut sweep = tokio::time::interval(self.shared.server.settings.gc_sweep_interval);
        loop {
            tokio::select! {
                change = feed.recv() => match change {
                    Ok(change) if is_pod(&change.key) => self.react(&change),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => self.sweep(),
                    Err(RecvError::Closed) => break,
                },
                _ = sweep.tick() => self.sweep(),
                _ = shutdown.changed() => break,
            }
        }
        self.stop_all().await;
    }

    fn react(&mut self, change: &Change) {
        let uid = meta::str_at(&change.object, "/metadata/uid").to_string();
        match change.kind {
            EventType::Deleted => self.forget(&uid),
            EventType::Added | EventType::Modified => self.observe(&change.object),
        }
    }

    /// Starts a new pod, or passes a deletion's grace period to a running one.
    fn observe(&mut self, pod: &Value) {
        let uid = meta::str_at(pod, "/metadata/uid").to_string();
        let grace = pod
            .pointer("/metadata/deletionTimestamp")
            .map(|_| pod.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0));
        if let Some(entry) = self.pods.get(&uid) {
            if let Some(grace) = grace {
                entry.deleting.send_if_modified(|current| match *current {
                    Some(old) if old <= grace => false,
                    _ => {
                        *current = Some(grace);
                        true
                    }
                });
            }
            return;
        }
        let node = meta::str_at(pod, "/spec/nodeName");
        let phase = meta::str_at(pod, "/status/phase");
        if !node.is_empty() && node != NODE_NAME {
            return;
        }
        if grace.is_some() {
            // Bound here but not running (a pod from before a restart): nothing to stop, remove it.
            if node == NODE_NAME {
                self.remove_stale(pod);
            }
            return;
        }
        if matches!(phase, "Succeeded" | "Failed") {
            return;
        }
        match self.start_pod(pod) {
            Ok(entry) => {
                self.pods.insert(uid, entry);
            }
            Err(e) => tracing::error!(pod = meta::str_at(pod, "/metadata/name"), error = %e, "cannot prepare the pod"),
        }
    }

    fn start_pod(&self, pod: &Value) -> std::io::Result<PodEntry> {
        let shared = &self.shared;
        let namespace = meta::str_at(pod, "/metadata/namespace").to_string();
        let name = meta::str_at(pod, "/metadata/name").to_string();
        let uid = meta::str_at(pod, "/metadata/uid");
        let dir = shared.root.join(format!("{namespace}_{name}_{uid}"));
        std::fs::create_dir_all(&dir)?;
        let service_account = env::service_account_name(pod).to_string();
        let sa = shared.server.store.get(&ObjectKey::new("", "serviceaccounts", &namespace, &service_account));
        let sa_uid = sa.as_deref().map(|sa| meta::str_at(sa, "/metadata/uid").to_string());
        let token = generate_token();
        shared.server.auth.add(&token, identity::pod_user(pod, &service_account, sa_uid.as_deref()));
        let secrets = dir.join("secrets/kubernetes.io/serviceaccount");
        identity::write_projected_files(&secrets, &token, &shared.ca_pem, &namespace)?;
        let kubeconfig_path = dir.join("kubeconfig");
        crate::kubeconfig::write(
            &kubeconfig_path,
            &crate::kubeconfig::render(&shared.cluster_url, &shared.ca_pem, &token, &namespace),
        )?;
        let port = shared.cluster_url.rsplit(':').next().unwrap_or("443").to_string();
        let base = vec![
            ("PATH".to_string(), std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())),
            ("HOSTNAME".to_string(), name.clone()),
            ("HOME".to_string(), dir.display().to_string()),
            ("KUBECONFIG".to_string(), kubeconfig_path.display().to_string()),
            ("KUBERNETES_SERVICE_HOST".to_string(), HOST_IP.to_string()),
            ("KUBERNETES_SERVICE_PORT".to_string(), port.clone()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".to_string(), port.clone()),
            ("KUBERNETES_PORT".to_string(), format!("tcp://{HOST_IP}:{port}")),
        ];
        let environment = PodEnvironment { base, dir: dir.clone() };
        let (deleting, watching) = watch::channel(None);
        let task = tokio::spawn(pod::run_pod(shared.clone(), pod.clone(), environment, watching));
        tracing::info!(%namespace, %name, "pod accepted");
        Ok(PodEntry { namespace, name, deleting, token, dir, task })
    }

    fn remove_stale(&self, pod: &Value) {
        let server = &self.shared.server;
        let Ok(info) = server.resolve("", "v1", "pods") else { return };
        let options = crate::server::DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: Some(meta::str_at(pod, "/metadata/uid").to_string()),
            user: node_user(),
            ..Default::default()
        };
        let ns = meta::str_at(pod, "/metadata/namespace");
        if let Err(e) = server.delete_object(&info, Some(ns), meta::str_at(pod, "/metadata/name"), &options)
            && e.code != 404
        {
            tracing::debug!(error = %e, "cannot remove a stale pod");
        }
    }

    /// The pod object is gone: its token stops working, its processes die, its output and folder go.
    fn forget(&mut self, uid: &str) {
        let Some(entry) = self.pods.remove(uid) else { return };
        self.shared.server.auth.remove(&entry.token);
        entry.deleting.send_replace(Some(0));
        let logs = self.shared.server.pod_logs.clone();
        let uid = uid.to_string();
        tokio::spawn(async move {
            let _ = entry.task.await;
            logs.remove_pod(&uid);
            let _ = std::fs::remove_dir_all(&entry.dir);
        });
    }

    /// Re-checks every pod, for changes the feed may have dropped.
    fn sweep(&mut self) {
        let listing = self.shared.server.store.list("", "pods", None);
        let mut alive = std::collections::HashSet::new();
        for pod in &listing.objects {
            alive.insert(meta::str_at(pod, "/metadata/uid").to_string());
            self.observe(pod);
        }
        let gone: Vec<String> = self.pods.keys().filter(|uid| !alive.contains(*uid)).cloned().collect();
        for uid in gone {
            self.forget(&uid);
        }
    }

    /// Shutdown: every pod token is revoked and every container stopped, SIGTERM first (a
    /// supervisor then stops and reaps its agent), SIGKILL after the grace period.
    async fn stop_all(&mut self) {
        let mut entries: Vec<PodEntry> = self.pods.drain().map(|(_, entry)| entry).collect();
        for entry in &entries {
            self.shared.server.auth.remove(&entry.token);
            tracing::debug!(namespace = %entry.namespace, name = %entry.name, "stopping pod");
            entry.task.abort();
        }
        // Aborted pod tasks abort their container keepers. A keeper reads a dropped `deleting` as
        // "delete now" (SIGKILL, no grace), so the senders stay until the containers have stopped.
        for entry in &mut entries {
            let _ = (&mut entry.task).await;
        }
        if !self.shared.spawner.table().stop_all(SHUTDOWN_GRACE).await {
            tracing::warn!("pod processes were not reaped within {SHUTDOWN_GRACE:?} of SIGKILL");
        }
        drop(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graceful_deletion_follows_the_pod_strategy() {
        let bound = json!({"spec": {"nodeName": "devcluster"}, "status": {"phase": "Running"}});
        assert_eq!(graceful_deletion(&bound, None), Some(30));
        assert_eq!(graceful_deletion(&bound, Some(5)), Some(5));
        assert_eq!(graceful_deletion(&bound, Some(0)), None);
        let custom = json!({"spec": {"nodeName": "devcluster", "terminationGracePeriodSeconds": 3}});
        assert_eq!(graceful_deletion(&custom, None), Some(3));
        assert_eq!(graceful_deletion(&json!({"spec": {}}), None), None);
        let done = json!({"spec": {"nodeName": "devcluster"}, "status": {"phase": "Succeeded"}});
        assert_eq!(graceful_deletion(&done, None), None);
        let deleting = json!({"metadata": {"deletionTimestamp": "t", "deletionGracePeriodSeconds": 10}, "spec": {"nodeName": "devcluster"}});
        assert_eq!(graceful_deletion(&deleting, Some(60)), Some(10));
        assert_eq!(graceful_deletion(&deleting, Some(2)), Some(2));
    }
}
