//! An embedded, Kubernetes-compatible API server for development and tests.
#![allow(clippy::result_large_err)] // ApiError mirrors a full Status body; errors are not on any hot path.
//!
//! It speaks the Kubernetes REST API over plain HTTP on loopback, closely enough that the real
//! `kubectl` and `kube::Client` cannot tell it from a real API server for the verbs, watches and
//! semantics an operator uses. It knows nothing of any particular custom resource.
//!
//! # Behaviour clients rely on
//!
//! - **Bootstrap objects.** At start the server creates, where missing, the system namespaces,
//!   the `default/kubernetes` Service (ClusterIP `10.96.0.1`, port 443 `https`) and the bootstrap
//!   RBAC policy (`cluster-admin`, `admin`, `edit`, `view`, `system:discovery`,
//!   `system:basic-user`, `system:public-info-viewer` and their bindings). Every namespace gets a
//!   `default` ServiceAccount and a `kube-root-ca.crt` ConfigMap holding the cluster CA, kept up to
//!   date as the CA changes (each start without a data directory makes a new CA; with `--data-dir` the CA
//!   and the admin token are kept there, so kubeconfigs from before a restart keep working). With
//!   `--data-dir` nothing is created twice.
//! - **Defaulting.** Built-in kinds are defaulted per resource ([`builtin::strategy`]): Secret
//!   `stringData` becomes base64 `data` and `type` defaults to `Opaque`; pods (and Deployment pod
//!   templates) get `restartPolicy`, `dnsPolicy`, `imagePullPolicy` and the other scheme defaults;
//!   Services get `type: ClusterIP`, a ClusterIP from `10.96.0.0/12` and port defaults; Deployments
//!   get a 25%/25% RollingUpdate strategy, `replicas: 1`, `revisionHistoryLimit` and
//!   `progressDeadlineSeconds`.
//! - **DELETE answers.** An object removed at once is answered with a `v1` `Status` (`Success`,
//!   `details` with name, group, resource and uid), except for pods, services, service accounts and
//!   namespaces, which return the object as kube-apiserver's registry does; an object held by
//!   finalizers or a grace period comes back marked for deletion (200; 202 only with
//!   `orphanDependents: false`).
//! - **Protobuf.** Request bodies in `application/vnd.kubernetes.protobuf` are accepted for `v1`
//!   Namespace, ConfigMap, Secret and ServiceAccount (what `kubectl create namespace|secret|configmap`
//!   send); other kinds get a 415 asking for JSON. Answers are always JSON: an `Accept` header that
//!   allows only protobuf gets a 406.
//! - **Metadata-only answers.** `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`
//!   (`as=PartialObjectMetadataList` for lists) on GET, LIST, WATCH and PATCH answers with the
//!   objects' metadata only ([`accept`]); an `as` the server cannot produce, with no fallback entry,
//!   is a 406.
//! - **ResourceQuota, for pod counts only.** A pod whose creation would take a namespace's quota
//!   over its `pods` (or `count/pods`) limit is refused with the quota plugin's 403 (`exceeded
//!   quota: ...`), counting pods as the real quota does (finished pods and pods terminating past
//!   their grace period are free); `status.hard` and `status.used` follow. Compute resources and
//!   other counts in `spec.hard` are stored, not enforced.
//! - **Built-in validation** beyond decoding is limited to what clients here can trip: an event
//!   note over 1024 bytes is `Invalid` ([`builtin::validate_builtin`]).
//! - **The pod runner** ([`runner`]) is a small kubelet running containers as local processes.
//!   Images are never pulled: an image from a registry in the reserved `.invalid` domain fails
//!   with `ErrImagePull`/`ImagePullBackOff` forever, and `runAsNonRoot` is verified against the
//!   image users of [`runner::RunnerSettings::images`]; an image the catalog does not know has an
//!   unknown user and is allowed.
//! - **Admission webhooks** ([`webhooks`]): mutating webhooks, then validating ones, are called
//!   on every create, update, delete and connect they match, over HTTPS, after built-in defaulting
//!   and before validation, as kube-apiserver calls them.
//! - **JSON patch and field selectors** follow the real server where clients depend on it: a
//!   `test` of a key its parent object lacks compares with `null`, and unset boolean field labels
//!   (`spec.unschedulable`, `spec.hostNetwork`) select as `false`.

pub mod accept;
pub mod admission;
pub mod auth;
pub mod body;
pub mod builtin;
mod cluster;
pub mod discovery;
pub mod durable;
pub mod error;
pub mod events;
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
pub mod webhooks;
pub mod wire;

pub use cluster::{Config, DevCluster};
pub use error::{ApiError, DevClusterError};
pub use server::{ApiServer, ServerSettings};
