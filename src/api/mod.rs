//! The `review.ao.dev/v1alpha1` API: [`ReviewRun`] and [`Reviewer`].

pub mod conditions;
pub mod crd;
pub mod duration;
pub mod labels;
mod review_run;
mod reviewer;

pub use review_run::*;
pub use reviewer::*;

/// API group of both custom resources.
pub const GROUP: &str = "review.ao.dev";
/// API version of both custom resources.
pub const VERSION: &str = "v1alpha1";
