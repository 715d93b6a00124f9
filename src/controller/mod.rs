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
