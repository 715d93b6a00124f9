//! The AdmissionReview a webhook is sent, and the reading of its answer, as
//! `k8s.io/apiserver/pkg/admission/plugin/webhook/request` builds and verifies them.

use super::call::Answer;
use crate::admission::{AdmissionRequest, Operation};
use crate::error::{ApiError, Details};
use crate::meta;
use base64::Engine;
use serde_json::{Value, json};

/// The `AdmissionReview` sent for the request as the webhook sees it (`seen`), naming the
/// version asked for (`requested`) in `requestKind` and `requestResource`.
pub(super) fn review(
    version: &str,
    uid: &str,
    request: &AdmissionRequest<'_>,
    requested: &AdmissionRequest<'_>,
    options: &Value,
) -> Value {
    let resource_of =
        |r: &AdmissionRequest<'_>| json!({"group": r.group, "version": r.version, "resource": r.resource});
    let mut body = json!({
        "uid": uid,
        "kind": request.kind_json(),
        "resource": resource_of(request),
        "requestKind": requested.kind_json(),
        "requestResource": resource_of(requested),
        "operation": request.operation.as_str(),
        "userInfo": serde_json::to_value(request.user).unwrap_or(Value::Null),
        "object": request.object.cloned().unwrap_or(Value::Null),
        "oldObject": request.old_object.cloned().unwrap_or(Value::Null),
        "dryRun": request.dry_run,
        "options": options,
    });
    if let Some(subresource) = request.subresource {
        body["subResource"] = json!(subresource);
        body["requestSubResource"] = json!(subresource);
    }
    if !request.name.is_empty() {
        body["name"] = json!(request.name);
    }
    if let Some(namespace) = request.namespace {
        body["namespace"] = json!(namespace);
    }
    json!({"apiVersion": format!("admission.k8s.io/{version}"), "kind": "AdmissionReview", "request": body})
}

/// A webhook's answer, once read.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Allowed, with the JSON patch to apply (mutating webhooks only) and the warnings.
    Allowed {
        patch: Option<Value>,
        warnings: Vec<String>,
    },
    Denied {
        error: ApiError,
        warnings: Vec<String>,
    },
}

/// Reads a webhook's HTTP answer; `Err` is why the call failed (worded as the real server's).
pub(super) fn verdict(
    name: &str,
    mutating: bool,
    version: &str,
    uid: &str,
    answer: Result<Answer, String>,
) -> Result<Verdict, String> {
    let answer = answer.map_err(|e| format!("failed to call webhook: {e}"))?;
    if answer.status != 200 {
        let body = String::from_utf8_lossy(&answer.body);
        return Err(format!(
            "failed to call webhook: the server responded with status code {} (\"{}\")",
            answer.status,
            body.trim()
        ));
    }
    let invalid = |why: String| format!("received invalid webhook response: {why}");
    let review: Value = serde_json::from_slice(&answer.body).map_err(|e| invalid(e.to_string()))?;
    let expected = format!("admission.k8s.io/{version}");
    if meta::str_at(&review, "/apiVersion") != expected || meta::str_at(&review, "/kind") != "AdmissionReview" {
        return Err(invalid(format!(
            "expected webhook response of {expected}, Kind=AdmissionReview, got {}, Kind={}",
            meta::str_at(&review, "/apiVersion"),
            meta::str_at(&review, "/kind")
        )));
    }
    let Some(response) = review.get("response").filter(|r| r.is_object()) else {
        return Err(invalid("webhook response was absent".into()));
    };
    let answered_uid = meta::str_at(response, "/uid");
    if answered_uid != uid {
        return Err(invalid(format!("expected response.uid={uid:?}, got {answered_uid:?}")));
    }
    let warnings: Vec<String> = response
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let allowed = response.get("allowed").and_then(Value::as_bool).unwrap_or(false);
    if !allowed {
        return Ok(Verdict::Denied { error: denial(name, response.get("status")), warnings });
    }
    let patch = meta::str_at(response, "/patch");
    let patch_type = meta::str_at(response, "/patchType");
    if patch.is_empty() {
        return Ok(Verdict::Allowed { patch: None, warnings });
    }
    if !mutating {
        return Err(invalid("validating webhook may not return response.patch".into()));
    }
    match patch_type {
        "" if version == "v1" => {
            return Err(invalid("webhook returned response.patch but not response.patchType".into()));
        }
        "" | "JSONPatch" => {}
        other => return Err(invalid(format!("webhook returned invalid response.patchType of {other:?}"))),
    }
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(patch).map_err(|e| invalid(format!("response.patch: {e}")))?;
    let operations: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("response.patch: {e}")))?;
    Ok(Verdict::Allowed { patch: Some(operations), warnings })
}

/// `admission webhook "NAME" denied the request: MESSAGE`, with the webhook's code (400 when it
/// gives none below 400) and reason, as `webhookerrors.ToStatusErr` words it.
fn denial(name: &str, status: Option<&Value>) -> ApiError {
    let status = status.cloned().unwrap_or(Value::Null);
    let code = status.get("code").and_then(Value::as_u64).filter(|c| (400..600).contains(c)).unwrap_or(400);
    let reason = meta::str_at(&status, "/reason");
    let denied = format!("admission webhook \"{name}\" denied the request");
    let message = match (meta::str_at(&status, "/message"), reason) {
        ("", "") => format!("{denied} without explanation"),
        ("", reason) => format!("{denied}: {reason}"),
        (message, _) => format!("{denied}: {message}"),
    };
    let mut error = ApiError::new(code as u16, reason, message);
    if let Some(details) = status.get("details").filter(|d| d.is_object()) {
        error = error.with_details(Details {
            name: meta::str_at(details, "/name").into(),
            group: meta::str_at(details, "/group").into(),
            kind: meta::str_at(details, "/kind").into(),
            ..Details::default()
        });
    }
    error
}

/// The `options` of a review: `CreateOptions`, `UpdateOptions` or `DeleteOptions`; none for a
/// connection, whose options are its object.
pub(crate) fn options(operation: Operation, dry_run: bool, field_manager: &str, delete: Option<Value>) -> Value {
    let kind = match operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
        Operation::Connect => return Value::Null,
    };
    let mut options = delete.unwrap_or_else(|| json!({}));
    options["kind"] = json!(kind);
    options["apiVersion"] = json!("meta.k8s.io/v1");
    if dry_run {
        options["dryRun"] = json!(["All"]);
    }
    if !field_manager.is_empty() && operation != Operation::Delete {
        options["fieldManager"] = json!(field_manager);
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::webhooks::tests::request;

    fn answer(body: Value) -> Result<Answer, String> {
        Ok(Answer { status: 200, body: serde_json::to_vec(&body).unwrap() })
    }

    #[test]
    fn denials_carry_the_webhooks_message_and_code() {
        let error = denial("deny.example.com", Some(&json!({"code": 403, "message": "no", "reason": "Forbidden"})));
        assert_eq!((error.code, error.reason.as_str()), (403, "Forbidden"));
        assert_eq!(error.message, "admission webhook \"deny.example.com\" denied the request: no");
        let error = denial("deny.example.com", None);
        assert_eq!(error.code, 400);
        assert_eq!(error.message, "admission webhook \"deny.example.com\" denied the request without explanation");
        assert_eq!(denial("d.e.f", Some(&json!({"code": 200}))).code, 400);
    }

    #[test]
    fn answers_must_echo_the_uid_and_speak_the_version_sent() {
        let ok = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "u", "allowed": true, "warnings": ["w"]}});
        assert_eq!(
            verdict("v.example.com", false, "v1", "u", answer(ok.clone())),
            Ok(Verdict::Allowed { patch: None, warnings: vec!["w".into()] })
        );
        assert_eq!(
            verdict("v.example.com", false, "v1", "other", answer(ok)).unwrap_err(),
            "received invalid webhook response: expected response.uid=\"other\", got \"u\""
        );
        let wrong = json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u", "allowed": true}});
        assert!(
            verdict("v.example.com", false, "v1", "u", answer(wrong))
                .unwrap_err()
                .contains("expected webhook response of admission.k8s.io/v1")
        );
        let failed = Ok(Answer { status: 500, body: b"boom".to_vec() });
        assert_eq!(
            verdict("v.example.com", false, "v1", "u", failed).unwrap_err(),
            "failed to call webhook: the server responded with status code 500 (\"boom\")"
        );
        let patch = base64::engine::general_purpose::STANDARD.encode(b"[]");
        let patched = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "u", "allowed": true, "patch": patch, "patchType": "JSONPatch"}});
        assert_eq!(
            verdict("v.example.com", false, "v1", "u", answer(patched)).unwrap_err(),
            "received invalid webhook response: validating webhook may not return response.patch"
        );
    }

    #[test]
    fn reviews_carry_the_request() {
        let user = UserInfo { username: "alice".into(), groups: vec!["devs".into()], ..UserInfo::default() };
        let object = json!({"metadata": {"name": "c"}});
        let mut req = request(&user, Some(&object));
        req.subresource = Some("status");
        req.dry_run = true;
        let review = review("v1", "u-1", &req, &req, &options(Operation::Create, true, "kubectl", None));
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        let body = &review["request"];
        assert_eq!(body["uid"], "u-1");
        assert_eq!(body["kind"], json!({"group": "", "version": "v1", "kind": "ConfigMap"}));
        assert_eq!(body["subResource"], "status");
        assert_eq!(body["namespace"], "team-a");
        assert_eq!(body["userInfo"], json!({"username": "alice", "groups": ["devs"]}));
        assert_eq!(body["oldObject"], Value::Null);
        assert_eq!(body["dryRun"], true);
        assert_eq!(
            body["options"],
            json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"], "fieldManager": "kubectl"})
        );
    }
}
