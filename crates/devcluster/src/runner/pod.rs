//! One pod's life on the node: binding, init containers in order, containers with restarts and
//! back-off, graceful termination, and the final removal of the object.

use super::backoff::RestartPolicy;
use super::env::{self, RefSource};
use super::identity::NODE_NAME;
use super::images;
use super::process::{Exit, Launch, signal_group};
use super::status::{ContainerRecord, ContainerState, PodObservation, Terminated, pod_status};
use super::{RunnerShared, node_context};
use crate::meta;
use crate::server::{ApiServer, DeleteOptions};
use crate::store::ObjectKey;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// What a pod's containers are given besides their own spec.
#[derive(Debug, Clone)]
pub(super) struct PodEnvironment {
    /// Variables every container gets first (KUBECONFIG, KUBERNETES_SERVICE_*, PATH, HOSTNAME, HOME).
    pub base: Vec<(String, String)>,
    /// The pod's private folder.
    pub dir: PathBuf,
}

/// Secrets and config maps read straight from the store.
struct StoreRefs<'a>(&'a ApiServer);

impl RefSource for StoreRefs<'_> {
    fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        self.0.store.get(&ObjectKey::new("", "secrets", namespace, name)).map(|o| (*o).clone())
    }
    fn config_map(&self, namespace: &str, name: &str) -> Option<Value> {
        self.0.store.get(&ObjectKey::new("", "configmaps", namespace, name)).map(|o| (*o).clone())
    }
}

fn now() -> String {
    meta::now_rfc3339()
}

fn containers(pod: &Value, list: &str) -> Vec<Value> {
    pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array).cloned().unwrap_or_default()
}

/// Which list a container belongs to, and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Init(usize),
    Main(usize),
}

/// The pod's grace period once deletion began (`None` while it lives).
pub(super) type Deleting = watch::Receiver<Option<i64>>;

/// Runs the pod until it is deleted and its processes are gone, then removes the object.
pub(super) async fn run_pod(shared: Arc<RunnerShared>, pod: Value, environment: PodEnvironment, deleting: Deleting) {
    let namespace = meta::str_at(&pod, "/metadata/namespace").to_string();
    let name = meta::str_at(&pod, "/metadata/name").to_string();
    let uid = meta::str_at(&pod, "/metadata/uid").to_string();
    let span = tracing::info_span!("pod", %namespace, %name);
    async {
        let mut life = PodLife::new(shared, pod, environment, deleting);
        life.run().await;
        life.remove_object(&uid).await;
    }
    .instrument(span)
    .await;
}

/// A container keeper's task, aborted when the pod task that started it is: at shutdown the runner
/// aborts pod tasks and stops the containers itself, and no keeper may restart one meanwhile.
struct KeeperTask(tokio::task::JoinHandle<()>);

impl Drop for KeeperTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct PodLife {
    shared: Arc<RunnerShared>,
    pod: Value,
    environment: PodEnvironment,
    deleting: Deleting,
    obs: PodObservation,
}

impl PodLife {
    fn new(shared: Arc<RunnerShared>, pod: Value, environment: PodEnvironment, deleting: Deleting) -> Self {
        let init: Vec<ContainerRecord> = containers(&pod, "initContainers")
            .iter()
            .map(|c| ContainerRecord::new(meta::str_at(c, "/name"), meta::str_at(c, "/image"), "PodInitializing"))
            .collect();
        let first_reason = if init.is_empty() { "ContainerCreating" } else { "PodInitializing" };
        let main = containers(&pod, "containers")
            .iter()
            .map(|c| ContainerRecord::new(meta::str_at(c, "/name"), meta::str_at(c, "/image"), first_reason))
            .collect();
        let now = now();
        let obs = PodObservation {
            restart_policy: RestartPolicy::parse(pod.pointer("/spec/restartPolicy").and_then(Value::as_str)),
            host_ip: super::HOST_IP.into(),
            start_time: now.clone(),
            scheduled_at: now,
            init_containers: init,
            containers: main,
            stopped: false,
        };
        Self { shared, pod, environment, deleting, obs }
    }

    fn is_deleting(&self) -> bool {
        self.deleting.borrow().is_some()
    }

    async fn run(&mut self) {
        if !self.bind() {
            return;
        }
        self.write_status();
        let init_policy = if self.obs.restart_policy == RestartPolicy::Never {
            RestartPolicy::Never
        } else {
            RestartPolicy::OnFailure
        };
        for index in 0..self.obs.init_containers.len() {
            if self.is_deleting() {
                return self.finish_stopped().await;
            }
            self.supervise(vec![Slot::Init(index)], init_policy).await;
            let succeeded =
                matches!(&self.obs.init_containers[index].state, ContainerState::Terminated(t) if t.exit_code == 0);
            if !succeeded {
                return self.finish_stopped().await;
            }
        }
        if self.is_deleting() {
            return self.finish_stopped().await;
        }
        let slots = (0..self.obs.containers.len()).map(Slot::Main).collect();
        self.supervise(slots, self.obs.restart_policy).await;
        self.finish_stopped().await;
    }

    /// Marks the pod stopped, writes its final status and waits for its deletion.
    async fn finish_stopped(&mut self) {
        self.obs.stopped = true;
        self.write_status();
        let _ = self.deleting.wait_for(Option::is_some).await;
    }

    /// Sets `spec.nodeName`, as the scheduler's binding does. False when the pod is gone.
    fn bind(&self) -> bool {
        let server = &self.shared.server;
        let Ok(info) = server.resolve("", "v1", "pods") else { return false };
        let patch = json!({"spec": {"nodeName": NODE_NAME}});
        let ns = meta::str_at(&self.pod, "/metadata/namespace");
        let name = meta::str_at(&self.pod, "/metadata/name");
        match server.patch_object(
            &info,
            Some(ns),
            name,
            None,
            crate::patch::PatchType::Merge,
            &patch,
            false,
            &node_context(),
        ) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "cannot bind the pod");
                false
            }
        }
    }

    /// Writes the status computed from the observations through the status subresource.
    fn write_status(&self) {
        let server = &self.shared.server;
        let Ok(info) = server.resolve("", "v1", "pods") else { return };
        let ns = meta::str_at(&self.pod, "/metadata/namespace");
        let name = meta::str_at(&self.pod, "/metadata/name");
        for _ in 0..5 {
            let Ok(current) = server.get_object(&info, Some(ns), name) else { return };
            if meta::str_at(&current, "/metadata/uid") != meta::str_at(&self.pod, "/metadata/uid") {
                return;
            }
            let status = pod_status(&self.obs, current.get("status").unwrap_or(&Value::Null));
            let body = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": meta::str_at(&current, "/metadata/resourceVersion")},
                "status": status,
            });
            match server.update_object(&info, Some(ns), name, Some("status"), body, &node_context()) {
                Ok(_) => return,
                Err(e) if e.code == 409 => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot write pod status");
                    return;
                }
            }
        }
    }

    fn record(&mut self, slot: Slot) -> &mut ContainerRecord {
        match slot {
            Slot::Init(i) => &mut self.obs.init_containers[i],
            Slot::Main(i) => &mut self.obs.containers[i],
        }
    }

    fn spec(&self, slot: Slot) -> Value {
        match slot {
            Slot::Init(i) => containers(&self.pod, "initContainers").get(i).cloned().unwrap_or_default(),
            Slot::Main(i) => containers(&self.pod, "containers").get(i).cloned().unwrap_or_default(),
        }
    }

    fn field_path(slot: Slot) -> String {
        match slot {
            Slot::Init(i) => format!("spec.initContainers[{i}]"),
            Slot::Main(i) => format!("spec.containers[{i}]"),
        }
    }

    /// Runs the containers in `slots` side by side until none will run again, writing status on every change.
    async fn supervise(&mut self, slots: Vec<Slot>, policy: RestartPolicy) {
        let (updates, mut incoming) = mpsc::unbounded_channel::<(Slot, ContainerRecord)>();
        let mut tasks = Vec::new();
        for slot in slots {
            let keeper = ContainerKeeper {
                shared: self.shared.clone(),
                pod: self.pod.clone(),
                spec: self.spec(slot),
                field_path: Self::field_path(slot),
                environment: self.environment.clone(),
                deleting: self.deleting.clone(),
                record: self.record(slot).clone(),
                policy,
                slot,
                updates: updates.clone(),
            };
            tasks.push(KeeperTask(tokio::spawn(keeper.run())));
        }
        drop(updates);
        while let Some((slot, record)) = incoming.recv().await {
            *self.record(slot) = record;
            while let Ok((slot, record)) = incoming.try_recv() {
                *self.record(slot) = record;
            }
            self.write_status();
        }
        for mut task in tasks {
            let _ = (&mut task.0).await;
        }
    }

    /// Deletes the object for good (grace 0, only this pod's uid), as the kubelet does once its processes are gone.
    async fn remove_object(&self, uid: &str) {
        let server = &self.shared.server;
        let Ok(info) = server.resolve("", "v1", "pods") else { return };
        let options = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: Some(uid.to_string()),
            user: super::node_user(),
            ..DeleteOptions::default()
        };
        let ns = meta::str_at(&self.pod, "/metadata/namespace");
        let name = meta::str_at(&self.pod, "/metadata/name");
        if let Err(e) = server.delete_object(&info, Some(ns), name, &options)
            && e.code != 404
        {
            tracing::debug!(error = %e, "cannot remove the deleted pod");
        }
    }
}

/// Keeps one container running per its restart policy until it stops for good or the pod is deleted.
struct ContainerKeeper {
    shared: Arc<RunnerShared>,
    pod: Value,
    spec: Value,
    field_path: String,
    environment: PodEnvironment,
    deleting: Deleting,
    record: ContainerRecord,
    policy: RestartPolicy,
    slot: Slot,
    updates: mpsc::UnboundedSender<(Slot, ContainerRecord)>,
}

/// Why a wait ended.
enum Woke {
    Elapsed,
    Deleting,
}

impl ContainerKeeper {
    fn publish(&self) {
        let _ = self.updates.send((self.slot, self.record.clone()));
    }

    fn deleting(&self) -> bool {
        self.deleting.borrow().is_some()
    }

    async fn sleep_unless_deleted(&mut self, delay: Duration) -> Woke {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Woke::Elapsed,
            _ = self.deleting.wait_for(Option::is_some) => Woke::Deleting,
        }
    }

    /// The argv and environment of the next instance, or the waiting reason and message why not.
    fn launch(&self) -> Result<Launch, (String, String)> {
        if let Some(message) =
            super::security::run_as_non_root_violation(&self.pod, &self.spec, &self.shared.settings.images)
        {
            return Err(("CreateContainerConfigError".into(), message));
        }
        let command: Vec<String> = string_list(&self.spec, "command");
        if command.is_empty() {
            return Err((
                "CreateContainerConfigError".into(),
                format!(
                    "{}.command: Required value: the dev cluster runs containers as local processes and needs a command (image {:?} is never pulled)",
                    self.field_path,
                    meta::str_at(&self.spec, "/image")
                ),
            ));
        }
        let own = env::resolve(&self.pod_now(), &self.spec, &StoreRefs(&self.shared.server))
            .map_err(|e| ("CreateContainerConfigError".to_string(), e.0))?;
        let mut vars = self.environment.base.clone();
        for (k, v) in own {
            vars.retain(|(name, _)| *name != k);
            vars.push((k, v));
        }
        let argv = command.into_iter().chain(string_list(&self.spec, "args")).map(|a| env::expand(&a, &vars)).collect();
        let working_dir = match meta::str_at(&self.spec, "/workingDir") {
            "" => Some(self.environment.dir.clone()),
            dir => Some(PathBuf::from(dir)),
        };
        let tty = self.spec.get("tty").and_then(Value::as_bool).unwrap_or(false)
            && self.spec.get("stdin").and_then(Value::as_bool).unwrap_or(false);
        Ok(Launch { argv, env: vars, working_dir, tty })
    }

    /// The pod as stored now (its status has the pod IP once bound), for downward-API values.
    fn pod_now(&self) -> Value {
        let key = ObjectKey::new(
            "",
            "pods",
            meta::str_at(&self.pod, "/metadata/namespace"),
            meta::str_at(&self.pod, "/metadata/name"),
        );
        let mut pod = self.shared.server.store.get(&key).map_or_else(|| self.pod.clone(), |p| (*p).clone());
        pod["status"]["podIP"] = json!(super::HOST_IP);
        pod["status"]["hostIP"] = json!(super::HOST_IP);
        pod["status"]["podIPs"] = json!([{"ip": super::HOST_IP}]);
        pod
    }

    async fn run(mut self) {
        let backoff = self.shared.settings.backoff;
        // Back-off steps taken (reset after a long run); restartCount itself only grows.
        let mut crashes = 0u32;
        let mut restart_pending = false;
        loop {
            if self.deleting() {
                return;
            }
            let image = meta::str_at(&self.spec, "/image").to_string();
            if let Some(host) = images::unpullable_host(&image) {
                return self.fail_to_pull(&image, host).await;
            }
            let launch = match self.launch() {
                Ok(launch) => launch,
                Err((reason, message)) => {
                    self.record.state = ContainerState::Waiting { reason, message: Some(message) };
                    self.publish();
                    match self.sleep_unless_deleted(backoff.base.max(Duration::from_millis(200))).await {
                        Woke::Elapsed => continue,
                        Woke::Deleting => return,
                    }
                }
            };
            let container_id = format!("devcluster://{}", uuid::Uuid::new_v4().simple());
            let pod_uid = meta::str_at(&self.pod, "/metadata/uid");
            let buffer = self.shared.server.pod_logs.start_instance(
                pod_uid,
                &self.record.name,
                &container_id,
                self.shared.settings.log_limit,
            );
            if std::mem::take(&mut restart_pending) {
                self.record.restart_count += 1;
            }
            let started_at = now();
            let started = Instant::now();
            let target = super::exec::ExecTarget { env: launch.env.clone(), working_dir: launch.working_dir.clone() };
            let exit = match self.shared.spawner.spawn(launch, buffer.clone()).await {
                Ok(process) => {
                    self.shared.server.pod_exec.started(&container_id, target);
                    self.record.state =
                        ContainerState::Running { started_at: started_at.clone(), container_id: container_id.clone() };
                    self.publish();
                    tracing::info!(container = %self.record.name, pgid = process.pgid, "container started");
                    let exit = self.wait_or_terminate(process).await;
                    self.shared.server.pod_exec.ended(&container_id);
                    Ok(exit)
                }
                Err(e) => {
                    buffer.finish();
                    Err(format!("failed to start container {:?}: {e}", self.record.name))
                }
            };
            let terminated = match exit {
                Ok(exit) => Terminated {
                    exit_code: exit.code,
                    signal: exit.signal,
                    started_at,
                    finished_at: now(),
                    container_id,
                    start_error: None,
                },
                Err(message) => Terminated {
                    exit_code: 128,
                    signal: None,
                    started_at: started_at.clone(),
                    finished_at: started_at,
                    container_id,
                    start_error: Some(message),
                },
            };
            tracing::info!(container = %self.record.name, exit_code = terminated.exit_code, "container ended");
            let code = terminated.exit_code;
            if self.deleting() || !self.policy.restarts(code) {
                self.record.state = ContainerState::Terminated(terminated);
                self.publish();
                return;
            }
            if backoff.resets_after(started.elapsed()) {
                crashes = 0;
            }
            let delay = backoff.delay(crashes);
            crashes += 1;
            restart_pending = true;
            self.record.last_terminated = Some(terminated);
            if delay.is_zero() {
                self.record.state = ContainerState::waiting("ContainerCreating", None);
            } else {
                let message = format!(
                    "back-off {} restarting failed container={} pod={}_{}({})",
                    humanize(delay),
                    self.record.name,
                    meta::str_at(&self.pod, "/metadata/name"),
                    meta::str_at(&self.pod, "/metadata/namespace"),
                    meta::str_at(&self.pod, "/metadata/uid"),
                );
                self.record.state = ContainerState::waiting("CrashLoopBackOff", Some(message));
                self.publish();
            }
            if let Woke::Deleting = self.sleep_unless_deleted(delay).await {
                if let Some(last) = self.record.last_terminated.clone() {
                    self.record.state = ContainerState::Terminated(last);
                    self.publish();
                }
                return;
            }
        }
    }

    /// An image that can never be pulled: the container alternates between `ErrImagePull` and a
    /// growing `ImagePullBackOff`, as a kubelet retrying the pull does, until the pod is deleted.
    async fn fail_to_pull(&mut self, image: &str, host: &str) {
        let backoff = self.shared.settings.backoff;
        let pull_error = format!("failed to pull and unpack image \"{image}\": dial tcp: lookup {host}: no such host");
        let back_off = format!("Back-off pulling image \"{image}\": ErrImagePull: {pull_error}");
        let mut failures = 0u32;
        loop {
            self.record.state = ContainerState::waiting("ErrImagePull", Some(pull_error.clone()));
            self.publish();
            if let Woke::Deleting = self.sleep_unless_deleted(backoff.base).await {
                return;
            }
            failures = failures.saturating_add(1);
            self.record.state = ContainerState::waiting("ImagePullBackOff", Some(back_off.clone()));
            self.publish();
            if let Woke::Deleting = self.sleep_unless_deleted(backoff.delay(failures)).await {
                return;
            }
        }
    }

    /// Waits for the process to end; once the pod is deleting, SIGTERM then SIGKILL after the grace period.
    async fn wait_or_terminate(&mut self, mut process: super::process::Started) -> Exit {
        let stopped = tokio::select! {
            exit = &mut process.exit => return exit.unwrap_or(Exit { code: 1, signal: None }),
            grace = self.deleting.wait_for(Option::is_some) => grace.ok().and_then(|g| *g).unwrap_or(0),
        };
        signal_group(process.pgid, libc::SIGTERM);
        let mut deadline = tokio::time::Instant::now() + Duration::from_secs(stopped.max(0) as u64);
        loop {
            tokio::select! {
                exit = &mut process.exit => return exit.unwrap_or(Exit { code: 1, signal: None }),
                _ = tokio::time::sleep_until(deadline) => break,
                changed = self.deleting.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let grace = (*self.deleting.borrow()).unwrap_or(0).max(0) as u64;
                    deadline = deadline.min(tokio::time::Instant::now() + Duration::from_secs(grace));
                }
            }
        }
        signal_group(process.pgid, libc::SIGKILL);
        process.exit.await.unwrap_or(Exit { code: 137, signal: Some(libc::SIGKILL) })
    }
}

fn string_list(spec: &Value, field: &str) -> Vec<String> {
    spec.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

/// A duration as Go prints it in back-off messages (`10s`, `2m40s`, `5m0s`, `100ms`).
fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    if secs < 60 { format!("{secs}s") } else { format!("{}m{}s", secs / 60, secs % 60) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(humanize(Duration::from_secs(10)), "10s");
        assert_eq!(humanize(Duration::from_secs(160)), "2m40s");
        assert_eq!(humanize(Duration::from_secs(300)), "5m0s");
        assert_eq!(humanize(Duration::from_millis(100)), "100ms");
    }
}
