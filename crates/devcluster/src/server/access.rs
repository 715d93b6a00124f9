//! `SelfSubjectAccessReview` and `SelfSubjectRulesReview`: what `kubectl auth can-i` asks.

use super::{ApiServer, json_response};
use crate::auth::UserInfo;
use crate::error::{ApiError, Cause};
use crate::meta;
use crate::rbac::{self, RequestAttributes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

const GROUP: &str = "authorization.k8s.io";

/// Paths every authenticated user may read, as `system:discovery` and `system:public-info-viewer` allow.
pub(super) const DISCOVERY_PATHS: [&str; 11] = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
];

fn path_allowed(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid(GROUP, kind, "", vec![Cause::new("FieldValueInvalid", field, message)])
}

/// Answers a `SelfSubjectAccessReview` body for `user`.
pub(super) fn access_review(server: &ApiServer, user: &UserInfo, body: &Value) -> Result<Response, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let status = match (resource, non_resource) {
        (Some(attributes), None) => {
            let text = |field: &str| meta::str_at(attributes, &format!("/{field}")).to_string();
            let optional = |field: &str| Some(text(field)).filter(|v| !v.is_empty());
            let verb = text("verb");
            if verb.is_empty() {
                return Err(invalid("SelfSubjectAccessReview", "spec.resourceAttributes.verb", "Required value"));
            }
            let decision = server.authorizer.decide(&RequestAttributes {
                user: user.clone(),
                verb,
                group: text("group"),
                resource: text("resource"),
                subresource: optional("subresource"),
                namespace: optional("namespace"),
                name: optional("name"),
            });
            json!({"allowed": decision.allowed, "reason": decision.reason})
        }
        (None, Some(attributes)) => {
            let path = meta::str_at(attributes, "/path");
            let verb = meta::str_at(attributes, "/verb");
            let admin = user.groups.iter().any(|g| g == rbac::MASTERS_GROUP);
            let allowed = admin || (verb == "get" && DISCOVERY_PATHS.iter().any(|p| path_allowed(p, path)));
            json!({"allowed": allowed})
        }
        _ => {
            return Err(invalid(
                "SelfSubjectAccessReview",
                "spec.resourceAttributes",
                "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let review = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    });
    Ok(json_response(StatusCode::CREATED, &review, &HeaderMap::new()))
}

/// Answers a `SelfSubjectRulesReview` body: the user's resource rules in `spec.namespace`.
pub(super) fn rules_review(server: &ApiServer, user: &UserInfo, body: &Value) -> Result<Response, ApiError> {
    let namespace = meta::str_at(body, "/spec/namespace");
    let rules = server.authorizer.rules_for(user, namespace);
    let review = json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"namespace": namespace},
        "status": {
            "resourceRules": rules,
            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": DISCOVERY_PATHS}],
            "incomplete": false,
        },
    });
    Ok(json_response(StatusCode::CREATED, &review, &HeaderMap::new()))
}

/// The protobuf wire format's fields of one message: (field number, bytes) for length-delimited fields.
/// Varint and fixed-width fields are skipped: the review specs are strings and nested messages only.
fn proto_fields(mut bytes: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let tag = varint(&mut bytes)?;
        match tag & 7 {
            0 => {
                varint(&mut bytes)?;
            }
            1 => bytes = bytes.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                let (field, rest) = (bytes.get(..len)?, bytes.get(len..)?);
                out.push((tag >> 3, field));
                bytes = rest;
            }
            5 => bytes = bytes.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

/// A message's string fields, named by field number.
fn proto_strings(bytes: &[u8], names: &[(u64, &str)]) -> Option<Value> {
    let mut out = serde_json::Map::new();
    for (number, value) in proto_fields(bytes)? {
        if let Some((_, name)) = names.iter().find(|(n, _)| *n == number) {
            out.insert(name.to_string(), Value::String(String::from_utf8_lossy(value).into_owned()));
        }
    }
    Some(Value::Object(out))
}

/// Decodes a review body: JSON, or the Kubernetes protobuf envelope ([`crate::protobuf::unwrap`]) that
/// kubectl's typed clients send. Only the `spec` fields reviews use are read from protobuf.
pub(super) fn decode_review(bytes: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if !content_type.contains("protobuf") {
        return crate::body::decode_body(bytes, content_type).map(|d| d.value);
    }
    let malformed = || ApiError::bad_request("error decoding protobuf: malformed review");
    let envelope = crate::protobuf::unwrap(bytes)?;
    let mut spec = serde_json::Map::new();
    for (_, field) in proto_fields(&envelope.raw).ok_or_else(malformed)?.into_iter().filter(|(n, _)| *n == 2) {
        if envelope.kind == "SelfSubjectRulesReview" {
            spec.extend(
                proto_strings(field, &[(1, "namespace")]).and_then(|v| v.as_object().cloned()).ok_or_else(malformed)?,
            );
            continue;
        }
        for (attribute, value) in proto_fields(field).ok_or_else(malformed)? {
            let (name, parsed) = match attribute {
                1 => (
                    "resourceAttributes",
                    proto_strings(
                        value,
                        &[
                            (1, "namespace"),
                            (2, "verb"),
                            (3, "group"),
                            (4, "version"),
                            (5, "resource"),
                            (6, "subresource"),
                            (7, "name"),
                        ],
                    ),
                ),
                2 => ("nonResourceAttributes", proto_strings(value, &[(1, "path"), (2, "verb")])),
                _ => continue,
            };
            spec.insert(name.to_string(), parsed.ok_or_else(malformed)?);
        }
    }
    Ok(json!({"spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_reviews_decode_to_their_spec() {
        fn field(number: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![(number << 3) | 2, body.len() as u8];
            out.extend_from_slice(body);
            out
        }
        let attributes = [field(1, b"ns"), field(2, b"patch"), field(5, b"reviewruns"), field(6, b"status")].concat();
        let review = [field(2, &field(1, &attributes))].concat();
        let type_meta = field(1, &field(2, b"SelfSubjectAccessReview"));
        let envelope = [b"k8s\0".to_vec(), type_meta, field(2, &review)].concat();
        let decoded = decode_review(&envelope, "application/vnd.kubernetes.protobuf").unwrap();
        assert_eq!(
            decoded["spec"]["resourceAttributes"],
            json!({"namespace": "ns", "verb": "patch", "resource": "reviewruns", "subresource": "status"})
        );
        let rules = [field(1, &field(2, b"SelfSubjectRulesReview")), field(2, &field(2, &field(1, b"ns")))].concat();
        let decoded =
            decode_review(&[b"k8s\0".to_vec(), rules].concat(), "application/vnd.kubernetes.protobuf").unwrap();
        assert_eq!(decoded, json!({"spec": {"namespace": "ns"}}));
        assert_eq!(decode_review(b"k8s\0\x12\x05ab", "application/vnd.kubernetes.protobuf").unwrap_err().code, 400);
        assert_eq!(decode_review(br#"{"spec":{}}"#, "application/json").unwrap(), json!({"spec": {}}));
    }

    #[test]
    fn discovery_path_patterns() {
        assert!(path_allowed("/apis/*", "/apis/apps/v1"));
        assert!(path_allowed("/version", "/version"));
        assert!(!path_allowed("/version", "/versions"));
        assert!(!path_allowed("/api/*", "/metrics"));
    }
}
