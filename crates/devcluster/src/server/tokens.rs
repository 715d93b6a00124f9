//! Service-account tokens: `TokenRequest` (`serviceaccounts/token`, what kubelets and `kubectl
//! create token` use to mint expiring, optionally pod-bound tokens) and `TokenReview`
//! (`authentication.k8s.io/v1`: whether a token authenticates, and as whom).

use super::{ApiServer, json_response};
use crate::auth::{BoundPod, UserInfo, generate_token};
use crate::error::ApiError;
use crate::meta;
use crate::rbac::RequestAttributes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

/// Reviews `body`'s `spec.token` for `user`, who needs `create` on `tokenreviews`.
pub(super) fn token_review(server: &ApiServer, user: &UserInfo, body: &Value) -> Result<Response, ApiError> {
    server.authorizer.authorize(&RequestAttributes {
        user: user.clone(),
        verb: "create".into(),
        group: "authentication.k8s.io".into(),
        resource: "tokenreviews".into(),
        subresource: None,
        namespace: None,
        name: None,
    })?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let token = meta::str_at(&spec, "/token");
    if token.is_empty() {
        // kube-apiserver's words.
        return Err(ApiError::bad_request("token is required for TokenReview in authentication"));
    }
    let status = match server.authenticate(Some(&format!("Bearer {token}"))) {
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

/// The audience tokens are for when a request names none (kube-apiserver's default issuer).
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// Token lifetime when a request names none, and the shortest one allowed, in seconds.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MIN_EXPIRATION_SECONDS: i64 = 600;

/// `POST .../serviceaccounts/NAME/token`: a new token for the service account `account` (already
/// read, so it exists), bound to a pod when `spec.boundObjectRef` names one.
pub(super) fn token_request(server: &ApiServer, account: &Value, body: &Value) -> Result<Response, ApiError> {
    let namespace = meta::str_at(account, "/metadata/namespace").to_string();
    let name = meta::str_at(account, "/metadata/name").to_string();
    let mut spec = body.get("spec").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    let invalid = |field: &str, message: String| {
        ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            &name,
            vec![crate::error::Cause::new("FieldValueInvalid", field, message)],
        )
    };
    let seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(value) => value.as_i64().ok_or_else(|| {
            invalid("spec.expirationSeconds", format!("Invalid value: {value}: must be an integer number of seconds"))
        })?,
    };
    if seconds < MIN_EXPIRATION_SECONDS {
        let message = format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes");
        return Err(invalid("spec.expirationSeconds", message));
    }
    spec["expirationSeconds"] = json!(seconds);
    if spec.get("audiences").and_then(Value::as_array).is_none_or(|a| a.is_empty()) {
        spec["audiences"] = json!([DEFAULT_AUDIENCE]);
    }
    let account_uid = Some(meta::str_at(account, "/metadata/uid")).filter(|uid| !uid.is_empty());
    let (user, bound) = match spec.get("boundObjectRef").filter(|r| !r.is_null()).cloned() {
        None => (crate::runner::identity::service_account_user(&namespace, &name, account_uid), None),
        Some(reference) => {
            let reference = &reference;
            let kind = meta::str_at(reference, "/kind");
            if kind != "Pod" {
                let message = format!("Unsupported value: {kind:?}: supported values: \"Pod\"");
                return Err(invalid("spec.boundObjectRef.kind", message));
            }
            let pod_name = meta::str_at(reference, "/name");
            let key = crate::store::ObjectKey::new("", "pods", &namespace, pod_name);
            let pod = server.store.get(&key).ok_or_else(|| ApiError::not_found("", "pods", pod_name))?;
            let uid = meta::str_at(&pod, "/metadata/uid").to_string();
            let asked = meta::str_at(reference, "/uid");
            if !asked.is_empty() && asked != uid {
                let message =
                    format!("the UID in the bound object reference ({asked}) does not match the UID in record ({uid})");
                return Err(ApiError::conflict("", "pods", pod_name, &message));
            }
            let user = crate::runner::identity::pod_user(&pod, &name, account_uid);
            spec["boundObjectRef"]["uid"] = json!(uid);
            spec["boundObjectRef"]["apiVersion"] = json!("v1");
            (user, Some(BoundPod { namespace: namespace.clone(), name: pod_name.to_string(), uid }))
        }
    };
    let token = generate_token();
    let lifetime = std::time::Duration::from_secs(seconds.unsigned_abs());
    server.auth.add_requested(&token, user, std::time::SystemTime::now() + lifetime, bound);
    let expiration = (chrono::Utc::now() + lifetime).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let request = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": meta::now_rfc3339()},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expiration},
    });
    Ok(json_response(StatusCode::CREATED, &request, &HeaderMap::new()))
}
