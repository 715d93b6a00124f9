//! review-operator: runs one long-lived AI reviewer pod per coding worker and
//! feeds it the pull requests it must review.
//!
//! [`api`] holds the custom resources, [`controller`] the reconciler's pure
//! planning logic, [`operations`] what runs it as a service (leader election,
//! probes, metrics, logging, shutdown) and [`cli`] the subcommands.
//!
//! `dev` (the embedded dev cluster and its demo) is built with the default
//! feature `dev-cluster` only: the image's binary, built without it, carries
//! no API server.

pub mod agent;
pub mod api;
pub mod cli;
pub mod controller;
pub mod deadline;
pub mod delivery;
#[cfg(feature = "dev-cluster")]
pub mod dev;
pub mod intake;
pub mod metrics;
pub mod operations;
pub mod plugin;
