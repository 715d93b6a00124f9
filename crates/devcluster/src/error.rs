//! API errors rendered as `meta/v1` `Status` bodies, worded like the real API server's,
//! because kubectl and kube-rs print and branch on `reason`, `details` and `causes`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One failing field of an `Invalid` error, as `StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// Machine-readable cause such as `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`.
    pub reason: String,
    /// The text after `field: ` in the combined message, e.g. `Invalid value: "x": must be ...`.
    pub message: String,
    /// Dotted field path, e.g. `spec.pullRequest.headSha`.
    pub field: String,
}

impl Cause {
    pub fn new(reason: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { reason: reason.into(), message: message.into(), field: field.into() }
    }
}

/// `StatusDetails`: which object the error is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub name: String,
    pub group: String,
    /// The resource (plural) for most errors; the Kind for `Invalid`, as the real server does.
    pub kind: String,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

/// An error the API server answers with. `code` is the HTTP status and `reason` the `StatusReason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Details>,
    /// Warnings the request earned before it failed (a denying webhook's), sent as `Warning`
    /// headers with the error.
    pub warnings: Vec<String>,
}

/// A `Warning` header value as kube-apiserver writes one: `299 - "text"`, quotes and backslashes
/// escaped; `None` for text a header cannot carry.
pub fn warning_header(warning: &str) -> Option<axum::http::HeaderValue> {
    let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
    axum::http::HeaderValue::from_str(&format!("299 - \"{escaped}\"")).ok()
}

/// `pods` for the core group, `reviewruns.review.ao.dev` otherwise: the "qualified resource" in messages.
pub fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

/// `Pod` for the core group, `ReviewRun.review.ao.dev` otherwise: the "qualified kind" in `Invalid` messages.
pub fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") }
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self { code, reason: reason.to_string(), message: message.into(), details: None, warnings: Vec::new() }
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    pub fn with_details(mut self, details: Details) -> Self {
        self.details = Some(details);
        self
    }

    fn object_details(group: &str, resource: &str, name: &str) -> Details {
        Details { name: name.into(), group: group.into(), kind: resource.into(), ..Details::default() }
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified_resource(group, resource)))
            .with_details(Self::object_details(group, resource, name))
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified_resource(group, resource)))
            .with_details(Self::object_details(group, resource, name))
    }

    /// 409 for a stale `resourceVersion` or a failed precondition.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified_resource(group, resource)),
        )
        .with_details(Self::object_details(group, resource, name))
    }

    /// The standard wording for an update against an outdated `resourceVersion`.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 `Invalid` with one cause per failing field or rule.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
            .collect();
        let joined = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        Self::new(422, "Invalid", format!("{} \"{name}\" is invalid: {joined}", qualified_kind(group, kind)))
            .with_details(Details {
                name: name.into(),
                group: group.into(),
                kind: kind.into(),
                causes,
                retry_after_seconds: None,
            })
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// A body in a media type the endpoint does not take, listing those it does.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    /// The `Status` object sent as the body, and inside watch `ERROR` events.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // A webhook's denial may give no reason; Go leaves the field out then.
        if self.reason.is_empty()
            && let Some(map) = status.as_object_mut()
        {
            map.remove("reason");
        }
        if let Some(d) = &self.details {
            let mut details = serde_json::Map::new();
            if !d.name.is_empty() {
                details.insert("name".into(), json!(d.name));
            }
            if !d.group.is_empty() {
                details.insert("group".into(), json!(d.group));
            }
            if !d.kind.is_empty() {
                details.insert("kind".into(), json!(d.kind));
            }
            if !d.causes.is_empty() {
                details.insert("causes".into(), json!(d.causes));
            }
            if let Some(s) = d.retry_after_seconds {
                details.insert("retryAfterSeconds".into(), json!(s));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = crate::wire::to_vec(&self.to_status());
        let mut response = (code, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        for warning in &self.warnings {
            if let Some(value) = warning_header(warning) {
                response.headers_mut().append("Warning", value);
            }
        }
        response
    }
}

/// Errors of this crate's library API (starting and stopping a cluster).
#[derive(Debug, thiserror::Error)]
pub enum DevClusterError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig { path: String, source: std::io::Error },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot keep the cluster's identity in {path}: {source}")]
    Identity { path: String, source: std::io::Error },
    #[error("cannot build a client for the dev cluster: {0}")]
    Client(String),
    #[error(transparent)]
    DataDir(#[from] crate::durable::DurableError),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}
