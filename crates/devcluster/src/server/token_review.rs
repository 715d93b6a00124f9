//! `TokenReview` (`authentication.k8s.io/v1`): whether a bearer token authenticates, and as whom;
//! what webhook authenticators and aggregated API servers ask of the API server.

use super::{ApiServer, json_response};
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::meta;
use crate::rbac::{self, RequestAttributes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

/// Reviews `body`'s `spec.token` for `user`, who needs `create` on `tokenreviews`.
pub(super) fn token_review(server: &ApiServer, user: &UserInfo, body: &Value) -> Result<Response, ApiError> {
    rbac::authorize(
        &server.store,
        &RequestAttributes {
            user: user.clone(),
            verb: "create".into(),
            group: "authentication.k8s.io".into(),
            resource: "tokenreviews".into(),
            subresource: None,
            namespace: None,
            name: None,
        },
    )?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let token = meta::str_at(&spec, "/token");
    if token.is_empty() {
        // kube-apiserver's words.
        return Err(ApiError::bad_request("token is required for TokenReview in authentication"));
    }
    let status = match server.auth.authenticate(Some(&format!("Bearer {token}"))) {
        Some(reviewed) => {
            let mut status = json!({"authenticated": true, "user": reviewed});
            // The dev cluster's tokens carry no audience of their own: they are good for any asked.
            if let Some(audiences) = spec.get("audiences").filter(|a| a.as_array().is_some_and(|a| !a.is_empty())) {
                status["audiences"] = audiences.clone();
            }
            status
        }
        None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
    };
    let review = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": meta::now_rfc3339()},
        "spec": spec,
        "status": status,
    });
    Ok(json_response(StatusCode::CREATED, &review, &HeaderMap::new()))
}
