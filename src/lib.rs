//! review-operator: runs one long-lived AI reviewer pod per coding worker and
//! feeds it the pull requests it must review.
//!
//! The layers, each a crate depending only on those before it:
//! - [`api`] (`review-api`): the custom resources, their CRDs, and the rules
//!   every layer reads the same way, such as which commit is newer;
//! - [`controller`] (`review-controller`): the reconciler (observe, plan,
//!   execute), the pod it builds, events, metrics, and the delivery of
//!   verdicts to GitHub ([`delivery`]);
//! - [`agent`] (`review-agent`): the supervisor inside a reviewer pod;
//! - [`plugin`] (`review-plugin`): `kubectl review`;
//! - this crate: [`intake`] (the GitHub webhook receiver), [`operations`]
//!   (leader election, probes, logging, shutdown), [`cli`] (the
//!   subcommands) and `dev`.
//!
//! `dev` (the embedded dev cluster and its demo) is built with the default
//! feature `dev-cluster` only: the image's binary, built without it, carries
//! no API server.

pub use review_agent as agent;
pub use review_api as api;
pub use review_controller as controller;
pub use review_controller::{delivery, metrics};
pub use review_plugin as plugin;

pub mod cli;
#[cfg(feature = "dev-cluster")]
pub mod dev;
pub mod intake;
pub mod operations;
