//! Protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`), as kubectl's typed
//! clients send them (`kubectl create namespace`, `create secret`, `create configmap`).
//!
//! The wire format is the 4-byte magic `k8s\0` and a `runtime.Unknown` whose `typeMeta` names the
//! apiVersion and kind and whose `raw` holds the object's own protobuf encoding. The object is
//! decoded with its `k8s-pb` type and converted to the JSON the rest of the server works on; only
//! the kinds kubectl's generators create are converted. Answers stay JSON: a client that accepts
//! only protobuf gets a 406 ([`crate::accept`]).

use crate::error::ApiError;
use base64::Engine;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

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

/// Decodes a protobuf body into the JSON object it stands for. A kind this server cannot convert
/// is a 415 naming it, so that the client can send JSON instead.
pub fn decode_object(bytes: &[u8]) -> Result<Value, ApiError> {
    let envelope = unwrap(bytes)?;
    let raw = envelope.raw.as_slice();
    let invalid = |e: prost::DecodeError| {
        ApiError::bad_request(format!("error decoding protobuf {} {}: {e}", envelope.api_version, envelope.kind))
    };
    let mut object = match (envelope.api_version.as_str(), envelope.kind.as_str()) {
        ("v1", "Namespace") => namespace(core::Namespace::decode(raw).map_err(invalid)?),
        ("v1", "ConfigMap") => config_map(core::ConfigMap::decode(raw).map_err(invalid)?),
        ("v1", "Secret") => secret(core::Secret::decode(raw).map_err(invalid)?),
        ("v1", "ServiceAccount") => service_account(core::ServiceAccount::decode(raw).map_err(invalid)?),
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => certificate_signing_request(
            k8s_pb::api::certificates::v1::CertificateSigningRequest::decode(raw).map_err(invalid)?,
        ),
        ("authentication.k8s.io/v1", "TokenRequest") => {
            token_request(k8s_pb::api::authentication::v1::TokenRequest::decode(raw).map_err(invalid)?)
        }
        (api_version, kind) => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the dev cluster decodes protobuf bodies of v1 Namespace, ConfigMap, Secret and ServiceAccount, of CertificateSigningRequest and of TokenRequest only, not {api_version} {kind}: send it as application/json"
                ),
            ));
        }
    };
    object.insert("apiVersion".into(), json!(envelope.api_version));
    object.insert("kind".into(), json!(envelope.kind));
    Ok(Value::Object(object))
}

/// Inserts `value` under `key` unless it is empty (Go's `omitempty`).
fn put(map: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if !empty {
        map.insert(key.to_string(), value);
    }
}

fn strings(map: BTreeMap<String, String>) -> Value {
    Value::Object(map.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn bytes(map: BTreeMap<String, Vec<u8>>) -> Value {
    let encode = |v: Vec<u8>| Value::String(base64::engine::general_purpose::STANDARD.encode(v));
    Value::Object(map.into_iter().map(|(k, v)| (k, encode(v))).collect())
}

/// The client-settable parts of `ObjectMeta` (the server sets the rest).
fn object_meta(metadata: Option<meta::ObjectMeta>) -> Value {
    let metadata = metadata.unwrap_or_default();
    let mut out = Map::new();
    put(&mut out, "name", json!(metadata.name));
    put(&mut out, "generateName", json!(metadata.generate_name));
    put(&mut out, "namespace", json!(metadata.namespace));
    put(&mut out, "uid", json!(metadata.uid));
    put(&mut out, "resourceVersion", json!(metadata.resource_version));
    put(&mut out, "labels", strings(metadata.labels));
    put(&mut out, "annotations", strings(metadata.annotations));
    put(&mut out, "finalizers", json!(metadata.finalizers));
    let owners: Vec<Value> = metadata
        .owner_references
        .into_iter()
        .map(|owner| {
            let mut o = Map::new();
            put(&mut o, "apiVersion", json!(owner.api_version));
            put(&mut o, "kind", json!(owner.kind));
            put(&mut o, "name", json!(owner.name));
            put(&mut o, "uid", json!(owner.uid));
            put(&mut o, "controller", json!(owner.controller));
            put(&mut o, "blockOwnerDeletion", json!(owner.block_owner_deletion));
            Value::Object(o)
        })
        .collect();
    put(&mut out, "ownerReferences", json!(owners));
    Value::Object(out)
}

fn namespace(namespace: core::Namespace) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(namespace.metadata));
    if let Some(spec) = namespace.spec {
        let mut s = Map::new();
        put(&mut s, "finalizers", json!(spec.finalizers));
        put(&mut out, "spec", Value::Object(s));
    }
    out
}

fn config_map(config_map: core::ConfigMap) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(config_map.metadata));
    put(&mut out, "immutable", json!(config_map.immutable));
    put(&mut out, "data", strings(config_map.data));
    put(&mut out, "binaryData", bytes(config_map.binary_data));
    out
}

fn secret(secret: core::Secret) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(secret.metadata));
    put(&mut out, "immutable", json!(secret.immutable));
    put(&mut out, "data", bytes(secret.data));
    put(&mut out, "stringData", strings(secret.string_data));
    put(&mut out, "type", json!(secret.r#type));
    out
}

/// What `kubectl create token` sends: the spec (audiences, lifetime, bound object).
fn token_request(request: k8s_pb::api::authentication::v1::TokenRequest) -> Map<String, Value> {
    let mut out = Map::new();
    put(&mut out, "metadata", object_meta(request.metadata));
    let spec = request.spec.unwrap_or_default();
    let mut spec_json = Map::new();
    put(&mut spec_json, "audiences", json!(spec.audiences));
    if let Some(seconds) = spec.expiration_seconds {
        spec_json.insert("expirationSeconds".into(), json!(seconds));
    }
    if let Some(reference) = spec.bound_object_ref {
        let mut bound = Map::new();
        for (key, value) in [
            ("kind", reference.kind),
            ("apiVersion", reference.api_version),
            ("name", reference.name),
            ("uid", reference.u_id),
        ] {
            put(&mut bound, key, json!(value.unwrap_or_default()));
        }
        spec_json.insert("boundObjectRef".into(), Value::Object(bound));
    }
    out.insert("spec".into(), Value::Object(spec_json));
    out
}

/// A `metav1.Time` as RFC 3339 in seconds, as the API writes it.
fn time(time: Option<meta::Time>) -> Value {
    time.and_then(|t| chrono::DateTime::from_timestamp(t.seconds.unwrap_or_default(), 0))
        .map_or(Value::Null, |t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

/// What `kubectl certificate approve` and `deny` send back: the whole request with its conditions.
fn certificate_signing_request(csr: k8s_pb::api::certificates::v1::CertificateSigningRequest) -> Map<String, Value> {
    let encode = |bytes: Vec<u8>| json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(csr.metadata));
    if let Some(spec) = csr.spec {
        let mut s = Map::new();
        put(&mut s, "request", spec.request.map_or(Value::Null, encode));
        put(&mut s, "signerName", json!(spec.signer_name));
        if let Some(seconds) = spec.expiration_seconds {
            s.insert("expirationSeconds".into(), json!(seconds));
        }
        put(&mut s, "usages", json!(spec.usages));
        put(&mut s, "username", json!(spec.username));
        put(&mut s, "uid", json!(spec.uid));
        put(&mut s, "groups", json!(spec.groups));
        let extra: Map<String, Value> = spec.extra.into_iter().map(|(k, v)| (k, json!(v.items))).collect();
        put(&mut s, "extra", Value::Object(extra));
        out.insert("spec".into(), Value::Object(s));
    }
    if let Some(status) = csr.status {
        let mut s = Map::new();
        let conditions: Vec<Value> = status
            .conditions
            .into_iter()
            .map(|c| {
                let mut o = Map::new();
                put(&mut o, "type", json!(c.r#type));
                put(&mut o, "status", json!(c.status));
                put(&mut o, "reason", json!(c.reason));
                put(&mut o, "message", json!(c.message));
                put(&mut o, "lastUpdateTime", time(c.last_update_time));
                put(&mut o, "lastTransitionTime", time(c.last_transition_time));
                Value::Object(o)
            })
            .collect();
        put(&mut s, "conditions", json!(conditions));
        put(&mut s, "certificate", status.certificate.map_or(Value::Null, encode));
        put(&mut out, "status", Value::Object(s));
    }
    out
}

fn service_account(account: core::ServiceAccount) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(account.metadata));
    put(&mut out, "automountServiceAccountToken", json!(account.automount_service_account_token));
    let pull: Vec<Value> = account.image_pull_secrets.into_iter().map(|s| json!({"name": s.name})).collect();
    put(&mut out, "imagePullSecrets", json!(pull));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

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
        let err = decode_object(&envelope("v1", "Pod", Vec::new())).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (415, "UnsupportedMediaType"));
        assert!(err.message.contains("not v1 Pod"), "{}", err.message);
        let err = decode_object(&envelope("v1", "Secret", vec![0x0a, 0x05])).unwrap_err();
        assert!(err.message.starts_with("error decoding protobuf v1 Secret: "), "{}", err.message);
    }

    #[test]
    fn protobuf_content_types_are_recognised() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf; charset=x"));
        assert!(!is_protobuf("application/json"));
    }
}
