//! review-operator: runs one long-lived AI reviewer pod per coding worker and
//! feeds it the pull requests it must review.
//!
//! [`api`] holds the custom resources, [`controller`] the reconciler's pure
//! planning logic.

pub mod agent;
pub mod api;
pub mod controller;
pub mod metrics;
pub mod plugin;
