//! Pod status as the kubelet reports it, computed from what the runner observed of each container.
//! Pure: no clocks, no processes; the runner records observations and writes the result.

use super::backoff::RestartPolicy;
use serde_json::{Map, Value, json};

/// How one container instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    /// The signal that ended it, if any (its exit code is then 128 + signal).
    pub signal: Option<i32>,
    pub started_at: String,
    pub finished_at: String,
    pub container_id: String,
    /// Why the process could not be started at all (reported as reason `StartError`).
    pub start_error: Option<String>,
}

impl Terminated {
    /// `Completed` for exit 0, `Error` otherwise, `StartError` when it never ran, as the kubelet reports.
    pub fn reason(&self) -> &'static str {
        match (&self.start_error, self.exit_code) {
            (Some(_), _) => "StartError",
            (None, 0) => "Completed",
            _ => "Error",
        }
    }

    fn to_json(&self) -> Value {
        let mut t = json!({
            "exitCode": self.exit_code,
            "reason": self.reason(),
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        });
        if let Some(signal) = self.signal {
            t["signal"] = json!(signal);
        }
        if let Some(message) = &self.start_error {
            t["message"] = json!(message);
        }
        t
    }
}

/// The current state of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: String, container_id: String },
    Terminated(Terminated),
}

impl ContainerState {
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        Self::Waiting { reason: reason.into(), message }
    }
}

/// Everything the runner knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub last_terminated: Option<Terminated>,
    pub restart_count: u32,
}

impl ContainerRecord {
    /// A container not started yet.
    pub fn new(name: &str, image: &str, reason: &str) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            state: ContainerState::waiting(reason, None),
            last_terminated: None,
            restart_count: 0,
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }

    fn succeeded(&self) -> bool {
        matches!(&self.state, ContainerState::Terminated(t) if t.exit_code == 0)
    }

    fn failed(&self) -> bool {
        matches!(&self.state, ContainerState::Terminated(t) if t.exit_code != 0)
    }

    fn to_json(&self, image_id: bool) -> Value {
        let state = match &self.state {
            ContainerState::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            ContainerState::Running { started_at, .. } => json!({"running": {"startedAt": started_at}}),
            ContainerState::Terminated(t) => json!({"terminated": t.to_json()}),
        };
        let last = self.last_terminated.as_ref().map_or(json!({}), |t| json!({"terminated": t.to_json()}));
        let mut status = json!({
            "name": self.name,
            "image": self.image,
            "imageID": if image_id { format!("devcluster://{}", self.image) } else { String::new() },
            "state": state,
            "lastState": last,
            "ready": self.running(),
            "started": self.running(),
            "restartCount": self.restart_count,
        });
        let id = match &self.state {
            ContainerState::Running { container_id, .. } => Some(container_id.as_str()),
            ContainerState::Terminated(t) => Some(t.container_id.as_str()),
            ContainerState::Waiting { .. } => None,
        };
        if let Some(id) = id {
            status["containerID"] = json!(id);
        }
        status
    }
}

/// What the runner observed of a whole pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodObservation {
    pub restart_policy: RestartPolicy,
    pub host_ip: String,
    pub start_time: String,
    /// When the pod was scheduled (bound to the node).
    pub scheduled_at: String,
    pub init_containers: Vec<ContainerRecord>,
    pub containers: Vec<ContainerRecord>,
    /// Whether the runner stopped the pod for good (deleted, or failed initialization with `Never`).
    pub stopped: bool,
}

/// The pod phase, by the kubelet's rules (`getPhase`).
pub fn phase(obs: &PodObservation) -> &'static str {
    if obs.restart_policy == RestartPolicy::Never && obs.init_containers.iter().any(ContainerRecord::failed) {
        return "Failed";
    }
    if !obs.init_containers.iter().all(ContainerRecord::succeeded) {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &obs.containers {
        match &c.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Waiting { .. } if c.last_terminated.is_some() => stopped += 1,
            ContainerState::Waiting { .. } => waiting += 1,
        }
    }
    match () {
        _ if waiting > 0 => "Pending",
        _ if running > 0 => "Running",
        _ if stopped > 0 => match obs.restart_policy {
            RestartPolicy::Always if !obs.stopped => "Running",
            RestartPolicy::OnFailure if stopped != succeeded && !obs.stopped => "Running",
            _ if stopped == succeeded => "Succeeded",
            _ => "Failed",
        },
        _ => "Pending",
    }
}

fn condition(kind: &str, ok: bool, at: &str, reason: Option<(&str, String)>) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": at});
    if let Some((reason, message)) = reason.filter(|_| !ok) {
        c["reason"] = json!(reason);
        if !message.is_empty() {
            c["message"] = json!(message);
        }
    }
    c
}

/// The full `status` of a pod: phase, conditions, IPs, start time and container statuses.
/// `previous` is the stored status, whose conditions keep their `lastTransitionTime` while they hold.
pub fn pod_status(obs: &PodObservation, previous: &Value) -> Value {
    let phase = phase(obs);
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let unfinished_init: Vec<&str> =
        obs.init_containers.iter().filter(|c| !c.succeeded()).map(|c| c.name.as_str()).collect();
    let initialized = unfinished_init.is_empty();
    let unready: Vec<&str> = obs.containers.iter().filter(|c| !c.running()).map(|c| c.name.as_str()).collect();
    let ready = unready.is_empty() && !terminal;
    let not_ready = if terminal {
        ("PodCompleted", String::new())
    } else {
        ("ContainersNotReady", format!("containers with unready status: [{}]", unready.join(" ")))
    };
    let init_reason = if terminal && !initialized {
        ("PodCompleted", String::new())
    } else {
        ("ContainersNotInitialized", format!("containers with incomplete status: [{}]", unfinished_init.join(" ")))
    };
    let since = |kind: &str, ok: bool| -> String {
        previous
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind && c["status"] == if ok { "True" } else { "False" })
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map_or_else(|| obs.start_time.clone(), str::to_string)
    };
    let conditions = vec![
        condition("PodReadyToStartContainers", !terminal, &since("PodReadyToStartContainers", !terminal), None),
        condition("Initialized", initialized, &since("Initialized", initialized), Some(init_reason)),
        condition("Ready", ready, &since("Ready", ready), Some(not_ready.clone())),
        condition("ContainersReady", ready, &since("ContainersReady", ready), Some(not_ready)),
        condition("PodScheduled", true, &obs.scheduled_at, None),
    ];
    let mut status = Map::new();
    status.insert("phase".into(), json!(phase));
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("hostIP".into(), json!(obs.host_ip));
    status.insert("hostIPs".into(), json!([{"ip": obs.host_ip}]));
    status.insert("podIP".into(), json!(obs.host_ip));
    status.insert("podIPs".into(), json!([{"ip": obs.host_ip}]));
    status.insert("startTime".into(), json!(obs.start_time));
    status.insert("qosClass".into(), previous.get("qosClass").cloned().unwrap_or(json!("BestEffort")));
    if !obs.init_containers.is_empty() {
        status.insert(
            "initContainerStatuses".into(),
            Value::Array(obs.init_containers.iter().map(|c| c.to_json(true)).collect()),
        );
    }
    status.insert("containerStatuses".into(), Value::Array(obs.containers.iter().map(|c| c.to_json(true)).collect()));
    Value::Object(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminated(code: i32) -> Terminated {
        Terminated {
            exit_code: code,
            signal: None,
            started_at: "t1".into(),
            finished_at: "t2".into(),
            container_id: "devcluster://1".into(),
            start_error: None,
        }
    }

    fn obs(policy: RestartPolicy, states: Vec<ContainerState>) -> PodObservation {
        PodObservation {
            restart_policy: policy,
            host_ip: "127.0.0.1".into(),
            start_time: "t0".into(),
            scheduled_at: "t0".into(),
            init_containers: Vec::new(),
            containers: states
                .into_iter()
                .enumerate()
                .map(|(i, state)| ContainerRecord { state, ..ContainerRecord::new(&format!("c{i}"), "img", "x") })
                .collect(),
            stopped: false,
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running { started_at: "t1".into(), container_id: "devcluster://1".into() }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        use RestartPolicy::*;
        assert_eq!(phase(&obs(Always, vec![ContainerState::waiting("ContainerCreating", None)])), "Pending");
        assert_eq!(phase(&obs(Always, vec![running(), running()])), "Running");
        assert_eq!(phase(&obs(Never, vec![ContainerState::Terminated(terminated(0))])), "Succeeded");
        assert_eq!(phase(&obs(Never, vec![ContainerState::Terminated(terminated(3))])), "Failed");
        assert_eq!(phase(&obs(Never, vec![running(), ContainerState::Terminated(terminated(3))])), "Running");
        assert_eq!(phase(&obs(OnFailure, vec![ContainerState::Terminated(terminated(0))])), "Succeeded");
        let mut crashing = obs(OnFailure, vec![ContainerState::waiting("CrashLoopBackOff", None)]);
        crashing.containers[0].last_terminated = Some(terminated(1));
        assert_eq!(phase(&crashing), "Running");
        crashing.stopped = true;
        crashing.containers[0].state = ContainerState::Terminated(terminated(137));
        assert_eq!(phase(&crashing), "Failed");
    }

    #[test]
    fn init_containers_gate_and_fail_the_pod() {
        let mut o = obs(RestartPolicy::Never, vec![ContainerState::waiting("PodInitializing", None)]);
        o.init_containers = vec![ContainerRecord::new("init", "img", "PodInitializing")];
        o.init_containers[0].state = running();
        assert_eq!(phase(&o), "Pending");
        let status = pod_status(&o, &Value::Null);
        let init = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Initialized").unwrap();
        assert_eq!(init["status"], "False");
        assert_eq!(init["message"], "containers with incomplete status: [init]");
        o.init_containers[0].state = ContainerState::Terminated(terminated(1));
        assert_eq!(phase(&o), "Failed");
        o.restart_policy = RestartPolicy::OnFailure;
        assert_eq!(phase(&o), "Pending");
    }

    #[test]
    fn running_status_has_ready_conditions_and_container_fields() {
        let status = pod_status(&obs(RestartPolicy::Always, vec![running()]), &Value::Null);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "127.0.0.1");
        assert_eq!(status["startTime"], "t0");
        let c = &status["containerStatuses"][0];
        assert_eq!(c["name"], "c0");
        assert_eq!(c["image"], "img");
        assert_eq!(c["started"], true);
        assert_eq!(c["ready"], true);
        assert_eq!(c["restartCount"], 0);
        assert_eq!(c["state"]["running"]["startedAt"], "t1");
        let types: Vec<(&str, &str)> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            types,
            [
                ("PodReadyToStartContainers", "True"),
                ("Initialized", "True"),
                ("Ready", "True"),
                ("ContainersReady", "True"),
                ("PodScheduled", "True")
            ]
        );
    }

    #[test]
    fn terminated_containers_report_exit_codes_and_reasons() {
        let mut o = obs(RestartPolicy::Never, vec![ContainerState::Terminated(terminated(3))]);
        o.containers[0].last_terminated = Some(terminated(0));
        let status = pod_status(&o, &Value::Null);
        let t = &status["containerStatuses"][0]["state"]["terminated"];
        assert_eq!((t["exitCode"].as_i64(), t["reason"].as_str()), (Some(3), Some("Error")));
        assert_eq!(t["finishedAt"], "t2");
        assert_eq!(status["containerStatuses"][0]["lastState"]["terminated"]["reason"], "Completed");
        let ready = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("False"), Some("PodCompleted")));
    }

    #[test]
    fn transition_times_are_kept_while_a_condition_holds() {
        let o = obs(RestartPolicy::Always, vec![running()]);
        let previous = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "early"}]});
        let status = pod_status(&o, &previous);
        let ready = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["lastTransitionTime"], "early");
    }
}
