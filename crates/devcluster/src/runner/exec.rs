//! Where `kubectl exec` runs a command: the environment and folder each running container
//! instance was started with, by container ID, so that a command runs as the container's own
//! processes do (`exec` into a local-process container is one more local process).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// How a running container's processes run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
}

/// The running container instances, by container ID.
#[derive(Debug, Clone, Default)]
pub struct ExecTargets {
    running: Arc<Mutex<HashMap<String, ExecTarget>>>,
}

impl ExecTargets {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, ExecTarget>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A container instance started.
    pub fn started(&self, container_id: &str, target: ExecTarget) {
        self.lock().insert(container_id.to_string(), target);
    }

    /// A container instance ended: nothing more runs in it.
    pub fn ended(&self, container_id: &str) {
        self.lock().remove(container_id);
    }

    pub fn get(&self, container_id: &str) -> Option<ExecTarget> {
        self.lock().get(container_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_instances_are_targets() {
        let targets = ExecTargets::default();
        let target = ExecTarget { env: vec![("A".into(), "1".into())], working_dir: None };
        targets.started("devcluster://1", target.clone());
        assert_eq!(targets.get("devcluster://1"), Some(target));
        targets.ended("devcluster://1");
        assert_eq!(targets.get("devcluster://1"), None);
    }
}
