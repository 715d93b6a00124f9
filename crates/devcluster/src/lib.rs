//! An embedded, Kubernetes-compatible API server for development and tests.
#![allow(clippy::result_large_err)] // ApiError mirrors a full Status body; errors are not on any hot path.
//!
//! It speaks the Kubernetes REST API over plain HTTP on loopback, closely enough that the real
//! `kubectl` and `kube::Client` cannot tell it from a real API server for the verbs, watches and
//! semantics an operator uses. It knows nothing of any particular custom resource.

pub mod admission;
pub mod auth;
pub mod body;
pub mod builtin;
mod cluster;
pub mod discovery;
pub mod durable;
pub mod error;
pub mod faults;
pub mod kubeconfig;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod request;
pub mod runner;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;

pub use cluster::{Config, DevCluster};
pub use error::{ApiError, DevClusterError};
pub use server::{ApiServer, ServerSettings};
