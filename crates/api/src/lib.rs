//! The `review.ao.dev/v1alpha1` API: [`ReviewRun`], [`Reviewer`] and
//! [`ReviewTranscript`], their CRDs, and what every layer above reads the
//! same way: which commit is newer ([`history`]), the labels, conditions
//! and durations of the resources, a transcript's encoding and the reviewer
//! pod's environment ([`pod_env`]).
//!
//! The layers: this crate; `review-controller` (observe, plan, execute,
//! deliver); `review-agent` (the supervisor inside a reviewer pod);
//! `review-plugin` (`kubectl review`); `devcluster` (the embedded API
//! server, for development and tests only); and `review-operator`, the
//! binary that puts them together. Each depends only on the ones before it.

pub mod conditions;
pub mod crd;
pub mod deadline;
pub mod duration;
pub mod history;
pub mod labels;
pub mod pod_env;
mod review_run;
mod reviewer;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod transcript;

pub use review_run::*;
pub use reviewer::*;
pub use transcript::*;

/// API group of the custom resources.
pub const GROUP: &str = "review.ao.dev";
/// API version of the custom resources.
pub const VERSION: &str = "v1alpha1";
