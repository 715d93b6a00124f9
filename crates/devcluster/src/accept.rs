//! Content negotiation of answers: which representation an `Accept` header asks for.
//!
//! Answers are JSON, in one of three shapes: the object itself, a `meta.k8s.io` Table
//! ([`crate::table`]), or metadata only (`as=PartialObjectMetadata` for objects and watch events,
//! `as=PartialObjectMetadataList` for lists), which clients such as kube-rs' `metadata_watcher` use
//! to follow many objects cheaply. Entries are tried in order; one the server cannot produce
//! (protobuf, an unknown `as`) is skipped, and a header with none left is a 406, as on the real server.

use crate::error::ApiError;
use serde_json::{Value, json};

/// The shape of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Representation {
    #[default]
    Object,
    Table,
    /// `PartialObjectMetadata` (or its list).
    Metadata,
}

/// The representation the first servable entry of `accept` names; an empty header accepts anything.
pub fn negotiate(accept: &str) -> Result<Representation, ApiError> {
    if accept.trim().is_empty() {
        return Ok(Representation::Object);
    }
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let params: Vec<(&str, &str)> =
            parts.filter_map(|p| p.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect();
        let param = |key: &str| params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let meta_group = param("g") == Some("meta.k8s.io") && matches!(param("v"), Some("v1" | "v1beta1"));
        match param("as") {
            None => return Ok(Representation::Object),
            Some("Table") if meta_group => return Ok(Representation::Table),
            Some("PartialObjectMetadata" | "PartialObjectMetadataList") if meta_group => {
                return Ok(Representation::Metadata);
            }
            Some(_) => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/json;as=Table;g=meta.k8s.io;v=v1, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1 (not {accept})"
    )))
}

/// An object's `PartialObjectMetadata`.
pub fn partial(object: &Value) -> Value {
    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
}

/// A list's `PartialObjectMetadataList`, with the list's own metadata.
pub fn partial_list(list_metadata: Value, items: &[Value]) -> Value {
    let items: Vec<Value> = items.iter().map(partial).collect();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_metadata, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_tried_in_order() {
        use Representation::*;
        for (accept, want) in [
            ("", Object),
            ("*/*", Object),
            ("application/vnd.kubernetes.protobuf, application/json", Object),
            ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", Table),
            ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", Metadata),
            ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", Metadata),
            ("application/json;as=Unknown;g=meta.k8s.io;v=v1, application/json", Object),
        ] {
            assert_eq!(negotiate(accept).unwrap(), want, "{accept}");
        }
    }

    #[test]
    fn nothing_servable_is_not_acceptable() {
        for accept in [
            "application/vnd.kubernetes.protobuf",
            "application/vnd.kubernetes.protobuf;stream=watch",
            "application/json;as=Unknown;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadata;g=other.io;v=v1",
            "text/html",
        ] {
            let err = negotiate(accept).unwrap_err();
            assert_eq!((err.code, err.reason.as_str()), (406, "NotAcceptable"), "{accept}");
            assert!(err.message.contains(accept), "{}", err.message);
        }
    }

    #[test]
    fn partial_metadata_keeps_only_metadata() {
        let object = json!({"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        assert_eq!(
            partial(&object),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a", "labels": {"x": "1"}}})
        );
        let list = partial_list(json!({"resourceVersion": "5"}), &[object]);
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert_eq!(list["items"][0]["metadata"]["name"], "a");
        assert!(list["items"][0].get("data").is_none());
    }
}
