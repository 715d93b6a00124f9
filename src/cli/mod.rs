//! Subcommands of the `review-operator` binary that do more than print.
//! `main.rs` only parses and dispatches.

pub mod controller;
pub mod github;
pub mod webhook;
