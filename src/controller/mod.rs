//! The reconciler of Reviewers. Decisions live in [`plan`] as pure functions
//! of what was observed; executing a plan is I/O at the edge.

pub mod plan;
pub mod pod;

use std::time::Duration;

/// Debounce for the controller runtime (`kube::runtime::controller::Config::debounce`).
///
/// One trigger (a push, a CI re-run) often creates several ReviewRuns within
/// a second. Waiting this long after the last event before reconciling lets
/// them land in one reconcile, so a restart caused by them happens once.
pub const RECOMMENDED_DEBOUNCE: Duration = Duration::from_secs(2);

/// How the in-pod supervisor (`review-operator agent`) gets into reviewer pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentLaunch {
    /// Real clusters: an init container running the operator's image copies the binary into a shared
    /// `emptyDir`, and the agent container runs that copy (the agent image is the user's own).
    Inject { operator_image: String },
    /// Dev clusters, whose pods are local processes: run this binary directly.
    LocalBinary { path: std::path::PathBuf },
}

/// Settings of the Reviewer controller.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// The field manager of every write the controller makes.
    pub field_manager: String,
    /// How long the runtime waits after the last event before reconciling.
    pub debounce: Duration,
    pub agent: AgentLaunch,
}
