//! The `review.ao.dev/v1alpha1` API: [`ReviewRun`], [`Reviewer`] and [`ReviewTranscript`].

pub mod conditions;
pub mod crd;
pub mod duration;
pub mod labels;
mod review_run;
mod reviewer;
mod transcript;

pub use review_run::*;
pub use reviewer::*;
pub use transcript::*;

/// API group of the custom resources.
pub const GROUP: &str = "review.ao.dev";
/// API version of the custom resources.
pub const VERSION: &str = "v1alpha1";
