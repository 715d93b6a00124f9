//! The dev cluster's own admin endpoints, for tests that break the server on purpose:
//!
//! - `POST /devcluster/faults` with a JSON [`FaultSpec`](crate::faults::FaultSpec), e.g.
//!   `{"verb":"delete","resource":"pods","name":"p","count":2,"status":500}` or
//!   `{"verb":"get","resource":"pods","count":1,"delayMs":200}`: arms a fault (201 with the rule).
//! - `GET /devcluster/faults`: the armed rules with their remaining counts.
//! - `DELETE /devcluster/faults`: disarms every rule.
//! - `POST /devcluster/drop-watches`: ends every open watch.
//!
//! Only members of `system:masters` may use them; others get the real server's 403 for a path.

use super::{ApiServer, json_response};
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::faults::{FaultAction, FaultRule, FaultSpec};
use crate::rbac::MASTERS_GROUP;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

/// The prefix of every admin path.
pub(super) const PREFIX: &str = "/devcluster/";

fn rule_json(rule: &FaultRule) -> Value {
    let mut out = json!({
        "verb": rule.target.verb,
        "resource": rule.target.resource,
        "subresource": rule.target.subresource,
        "name": rule.target.name,
        "count": rule.remaining,
    });
    match &rule.action {
        FaultAction::Fail(e) => {
            out["status"] = json!(e.code);
            out["reason"] = json!(e.reason);
            out["message"] = json!(e.message);
        }
        FaultAction::Delay(d) => out["delayMs"] = json!(d.as_millis() as u64),
    }
    out
}

/// Serves one admin request.
pub(super) fn handle(
    server: &ApiServer,
    user: &UserInfo,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    if !user.groups.iter().any(|g| g == MASTERS_GROUP) {
        let verb = match *method {
            Method::GET => "get",
            Method::POST => "post",
            Method::DELETE => "delete",
            _ => "unknown",
        };
        return Err(ApiError::forbidden(format!(
            "forbidden: User \"{}\" cannot {verb} path \"{path}\"",
            user.username
        )));
    }
    let none = HeaderMap::new();
    match (method.clone(), path) {
        (Method::POST, "/devcluster/faults") => {
            let spec: FaultSpec =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid fault rule: {e}")))?;
            let rule = spec.into_rule().map_err(|e| ApiError::bad_request(format!("invalid fault rule: {e}")))?;
            let shown = rule_json(&rule);
            server.faults.add(rule);
            Ok(json_response(StatusCode::CREATED, &shown, &none))
        }
        (Method::GET, "/devcluster/faults") => {
            let rules: Vec<Value> = server.faults.armed().iter().map(rule_json).collect();
            Ok(json_response(StatusCode::OK, &json!({"items": rules}), &none))
        }
        (Method::DELETE, "/devcluster/faults") => {
            server.faults.clear();
            tracing::warn!("every injected fault cleared");
            Ok(json_response(StatusCode::OK, &json!({"items": []}), &none))
        }
        (Method::POST, "/devcluster/drop-watches") => {
            tracing::warn!("injected fault: dropping every open watch");
            server.drop_watches();
            Ok(json_response(StatusCode::OK, &json!({"dropped": true}), &none))
        }
        (_, "/devcluster/faults" | "/devcluster/drop-watches") => {
            Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource"))
        }
        _ => Err(ApiError::new(404, "NotFound", "the server could not find the requested resource")),
    }
}
