//! An embedded, Kubernetes-compatible API server for development and tests.
//!
//! It speaks the Kubernetes REST API over plain HTTP on loopback, closely enough that the real
//! `kubectl` and `kube::Client` cannot tell it from a real API server for the verbs, watches and
//! semantics an operator uses. It knows nothing of any particular custom resource.

pub mod body;
pub mod builtin;
pub mod discovery;
pub mod error;
pub mod openapi;
pub mod patch;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod table;
