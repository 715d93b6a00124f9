//! Protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`), as kubectl's typed
//! clients send them (`kubectl create namespace`, `create secret`, `create configmap`).
//!
//! The wire format is the 4-byte magic `k8s\0` and a `runtime.Unknown` whose `typeMeta` names the
//! apiVersion and kind and whose `raw` holds the object's own protobuf encoding. The object is read
//! through a table of every message the served kinds reach (generated from `k8s-pb`'s field
//! numbers and `k8s-openapi`'s JSON names) into the JSON the rest of the server works on. Answers
//! stay JSON: a client that accepts only protobuf gets a 406 ([`crate::accept`]). The table keeps
//! each message's fields in the Go struct's order, which JSON answers follow ([`crate::wire`]).

#[rustfmt::skip]
mod messages;
mod table;

use crate::error::ApiError;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message as _;
use serde_json::{Value, json};

pub(crate) use table::{Field, Kind, Message, find as message};

/// The message of a built-in kind the table holds, by apiVersion and kind.
pub(crate) fn kind_message(api_version: &str, kind: &str) -> Option<&'static Message> {
    let (_, _, name) = messages::KINDS.iter().find(|(v, k, _)| *v == api_version && *k == kind)?;
    table::find(name)
}

/// The Kubernetes protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The magic bytes that open every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Whether a `Content-Type` is the Kubernetes protobuf media type.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|mime| mime.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// The parts of a protobuf envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub api_version: String,
    pub kind: String,
    pub raw: Vec<u8>,
}

/// Reads the `k8s\0` + `runtime.Unknown` envelope.
pub fn unwrap(bytes: &[u8]) -> Result<Envelope, ApiError> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| ApiError::bad_request("error decoding protobuf: the body does not start with \"k8s\\x00\""))?;
    let unknown = Unknown::decode(body).map_err(|e| ApiError::bad_request(format!("error decoding protobuf: {e}")))?;
    if unknown.content_encoding.as_deref().is_some_and(|e| !e.is_empty()) {
        return Err(ApiError::bad_request("error decoding protobuf: contentEncoding is not supported"));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    Ok(Envelope {
        api_version: type_meta.api_version.unwrap_or_default(),
        kind: type_meta.kind.unwrap_or_default(),
        raw: unknown.raw.unwrap_or_default(),
    })
}

/// Decodes a protobuf body into the JSON object it stands for. A kind this server does not read as
/// protobuf is a 415 naming it, so that the client can send JSON instead; a body that does not
/// decode is a 400 naming the field.
pub fn decode_object(bytes: &[u8]) -> Result<Value, ApiError> {
    let envelope = unwrap(bytes)?;
    let (api_version, kind) = (envelope.api_version.as_str(), envelope.kind.as_str());
    let Some((_, _, message)) = messages::KINDS.iter().find(|(v, k, _)| *v == api_version && *k == kind) else {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the dev cluster does not read {api_version} {kind} as protobuf (it reads the built-in kinds it serves): send it as application/json"
            ),
        ));
    };
    let decoded = table::decode(message, &envelope.raw).map_err(|failure| {
        ApiError::bad_request(format!("error decoding protobuf {api_version} {kind}: {}", failure.0))
    })?;
    let Value::Object(mut object) = decoded else {
        return Err(ApiError::bad_request(format!("error decoding protobuf {api_version} {kind}: not an object")));
    };
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
    use std::collections::BTreeMap;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(MEDIA_TYPE.into()),
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    fn metadata(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            labels: BTreeMap::from([("a".to_string(), "1".to_string())]),
            ..Default::default()
        })
    }

    #[test]
    fn certificate_signing_requests_decode_with_their_conditions() {
        use k8s_pb::api::certificates::v1 as certificates;
        let csr = certificates::CertificateSigningRequest {
            metadata: metadata("jane"),
            spec: Some(certificates::CertificateSigningRequestSpec {
                request: Some(b"PEM".to_vec()),
                signer_name: Some("kubernetes.io/kube-apiserver-client".into()),
                expiration_seconds: Some(3600),
                usages: vec!["client auth".into()],
                username: Some("bob".into()),
                groups: vec!["dev".into()],
                ..Default::default()
            }),
            status: Some(certificates::CertificateSigningRequestStatus {
                conditions: vec![certificates::CertificateSigningRequestCondition {
                    r#type: Some("Approved".into()),
                    status: Some("True".into()),
                    reason: Some("KubectlApprove".into()),
                    message: Some("This CSR was approved by kubectl certificate approve.".into()),
                    last_update_time: Some(meta::Time { seconds: Some(1_700_000_000), nanos: Some(0) }),
                    last_transition_time: None,
                }],
                certificate: None,
            }),
        };
        let decoded =
            decode_object(&envelope("certificates.k8s.io/v1", "CertificateSigningRequest", csr.encode_to_vec()))
                .unwrap();
        assert_eq!(
            decoded,
            json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"name": "jane", "labels": {"a": "1"}},
                "spec": {"request": "UEVN", "signerName": "kubernetes.io/kube-apiserver-client", "expirationSeconds": 3600,
                    "usages": ["client auth"], "username": "bob", "groups": ["dev"]},
                "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove",
                    "message": "This CSR was approved by kubectl certificate approve.", "lastUpdateTime": "2023-11-14T22:13:20Z"}]}})
        );
    }

    #[test]
    fn webhook_configurations_decode_with_their_rules_and_ca_bundle() {
        use k8s_pb::api::admissionregistration::v1 as admission;
        let configuration = admission::ValidatingWebhookConfiguration {
            metadata: metadata("deny"),
            webhooks: vec![admission::ValidatingWebhook {
                name: Some("deny.example.com".into()),
                client_config: Some(admission::WebhookClientConfig {
                    url: Some("https://127.0.0.1:8443/deny".into()),
                    ca_bundle: Some(b"PEM".to_vec()),
                    service: None,
                }),
                rules: vec![admission::RuleWithOperations {
                    operations: vec!["CREATE".into()],
                    rule: Some(admission::Rule {
                        api_groups: vec!["".into()],
                        api_versions: vec!["v1".into()],
                        resources: vec!["configmaps".into()],
                        scope: Some("Namespaced".into()),
                    }),
                }],
                side_effects: Some("None".into()),
                timeout_seconds: Some(5),
                admission_review_versions: vec!["v1".into()],
                ..Default::default()
            }],
        };
        let body = envelope(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            configuration.encode_to_vec(),
        );
        assert_eq!(
            decode_object(&body).unwrap(),
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "deny", "labels": {"a": "1"}},
                "webhooks": [{"name": "deny.example.com",
                    "clientConfig": {"url": "https://127.0.0.1:8443/deny", "caBundle": "UEVN"},
                    "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["configmaps"], "scope": "Namespaced"}],
                    "sideEffects": "None", "timeoutSeconds": 5, "admissionReviewVersions": ["v1"]}]})
        );
    }

    #[test]
    fn secrets_and_config_maps_decode_to_json() {
        let secret = core::Secret {
            metadata: metadata("s"),
            data: BTreeMap::from([("k".to_string(), b"v".to_vec())]),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let decoded = decode_object(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(
            decoded,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a": "1"}},
                "data": {"k": "dg=="}, "type": "Opaque"})
        );
        let map = core::ConfigMap {
            metadata: metadata("c"),
            data: BTreeMap::from([("k".to_string(), "v".to_string())]),
            ..Default::default()
        };
        let decoded = decode_object(&envelope("v1", "ConfigMap", map.encode_to_vec())).unwrap();
        assert_eq!(decoded["data"], json!({"k": "v"}));
        let ns = core::Namespace { metadata: metadata("review"), ..Default::default() };
        let decoded = decode_object(&envelope("v1", "Namespace", ns.encode_to_vec())).unwrap();
        assert_eq!(
            decoded,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "review", "labels": {"a": "1"}}})
        );
    }

    #[test]
    fn bad_bodies_and_other_kinds_are_clear_errors() {
        assert_eq!(decode_object(b"{}").unwrap_err().code, 400);
        assert_eq!(decode_object(b"k8s\0\xff\xff").unwrap_err().code, 400);
        let err = decode_object(&envelope("example.com/v1", "Widget", Vec::new())).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (415, "UnsupportedMediaType"));
        assert!(err.message.contains("does not read example.com/v1 Widget as protobuf"), "{}", err.message);
        let err =
            decode_object(&envelope("apiextensions.k8s.io/v1", "CustomResourceDefinition", Vec::new())).unwrap_err();
        assert_eq!(err.code, 415);
        let err = decode_object(&envelope("v1", "Secret", vec![0x0a, 0x05])).unwrap_err();
        assert!(err.message.starts_with("error decoding protobuf v1 Secret: "), "{}", err.message);
    }

    #[test]
    fn protobuf_content_types_are_recognised() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf; charset=x"));
        assert!(!is_protobuf("application/json"));
    }
}
