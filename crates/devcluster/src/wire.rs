//! JSON answers with their keys in the order kube-apiserver writes them. Built-in kinds are Go
//! structs there, so their fields come in declaration order: `kind`, `apiVersion`, `metadata`,
//! then the type's own fields, nested structs likewise. Custom resources are unstructured maps,
//! which Go's `encoding/json` writes with sorted keys, and so do their lists.
//!
//! Objects stay `serde_json::Value`s (sorted maps); only writing them follows the order, taken
//! from the protobuf message table (generated from `k8s-pb`, whose messages keep the Go field
//! order) and, for the apimachinery types it lacks (`Status`, lists, `Table`, discovery), from the
//! small tables here. Keys a type does not declare follow its declared ones, sorted. Writing walks
//! the value once and allocates nothing but the output.

use crate::protobuf::{Field, Kind, Message, kind_message, message};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

const fn field(json: &'static str, kind: Kind, list: bool) -> Field {
    Field { tag: 0, json, kind, list, omit_zero: false }
}

/// A field holding an object that names its own type (an embedded object, a list item).
const TYPED: Kind = Kind::Msg(SELF_TYPED);
const SELF_TYPED: &str = "wire.SelfTyped";
const OBJECT_META: &str = "apimachinery.pkg.apis.meta.v1.ObjectMeta";

const LIST_META: Message = Message {
    name: "wire.ListMeta",
    fields: &[
        field("selfLink", Kind::Str, false),
        field("resourceVersion", Kind::Str, false),
        field("continue", Kind::Str, false),
        field("remainingItemCount", Kind::I64, false),
    ],
};

/// Any list: `metadata` then `items`, each item by its own `kind`.
const LIST: Message = Message {
    name: "wire.List",
    fields: &[field("metadata", Kind::Msg("wire.ListMeta"), false), field("items", TYPED, true)],
};

const STATUS: Message = Message {
    name: "wire.Status",
    fields: &[
        field("metadata", Kind::Msg("wire.ListMeta"), false),
        field("status", Kind::Str, false),
        field("message", Kind::Str, false),
        field("reason", Kind::Str, false),
        field("details", Kind::Msg("wire.StatusDetails"), false),
        field("code", Kind::I32, false),
    ],
};

/// A built-in kind the table lacks (CustomResourceDefinition, the reviews): Go's order of what
/// every such struct has; the rest follows sorted.
const BUILTIN_OBJECT: Message = Message {
    name: "wire.BuiltinObject",
    fields: &[
        field("metadata", Kind::Msg(OBJECT_META), false),
        field("spec", Kind::Str, false),
        field("status", Kind::Str, false),
    ],
};

const PARTIAL_OBJECT_METADATA: Message =
    Message { name: "wire.PartialObjectMetadata", fields: &[field("metadata", Kind::Msg(OBJECT_META), false)] };

const TABLE: Message = Message {
    name: "wire.Table",
    fields: &[
        field("metadata", Kind::Msg("wire.ListMeta"), false),
        field("columnDefinitions", Kind::Msg("wire.TableColumnDefinition"), true),
        field("rows", Kind::Msg("wire.TableRow"), true),
    ],
};

const API_RESOURCE_LIST: Message = Message {
    name: "wire.APIResourceList",
    fields: &[field("groupVersion", Kind::Str, false), field("resources", Kind::Msg("wire.APIResource"), true)],
};

const API_GROUP_LIST: Message =
    Message { name: "wire.APIGroupList", fields: &[field("groups", Kind::Msg("wire.APIGroup"), true)] };

const API_VERSIONS: Message = Message {
    name: "wire.APIVersions",
    fields: &[field("versions", Kind::Str, true), field("serverAddressByClientCIDRs", Kind::Str, true)],
};

/// Aggregated discovery (`apidiscovery.k8s.io/v2`).
const API_GROUP_DISCOVERY_LIST: Message = Message {
    name: "wire.APIGroupDiscoveryList",
    fields: &[
        field("metadata", Kind::Msg("wire.ListMeta"), false),
        field("items", Kind::Msg("wire.APIGroupDiscovery"), true),
    ],
};

/// Messages only reached through the ones above.
const NESTED: &[Message] = &[
    LIST_META,
    Message {
        name: "wire.StatusDetails",
        fields: &[
            field("name", Kind::Str, false),
            field("group", Kind::Str, false),
            field("kind", Kind::Str, false),
            field("uid", Kind::Str, false),
            field("causes", Kind::Msg("wire.StatusCause"), true),
            field("retryAfterSeconds", Kind::I32, false),
        ],
    },
    Message {
        name: "wire.StatusCause",
        fields: &[
            field("reason", Kind::Str, false),
            field("message", Kind::Str, false),
            field("field", Kind::Str, false),
        ],
    },
    Message {
        name: "wire.TableColumnDefinition",
        fields: &[
            field("name", Kind::Str, false),
            field("type", Kind::Str, false),
            field("format", Kind::Str, false),
            field("description", Kind::Str, false),
            field("priority", Kind::I32, false),
        ],
    },
    Message {
        name: "wire.TableRow",
        fields: &[field("cells", Kind::Str, true), field("conditions", Kind::Str, true), field("object", TYPED, false)],
    },
    Message {
        name: "wire.APIResource",
        fields: &[
            field("name", Kind::Str, false),
            field("singularName", Kind::Str, false),
            field("namespaced", Kind::Bool, false),
            field("group", Kind::Str, false),
            field("version", Kind::Str, false),
            field("kind", Kind::Str, false),
            field("verbs", Kind::Str, true),
            field("shortNames", Kind::Str, true),
            field("categories", Kind::Str, true),
            field("storageVersionHash", Kind::Str, false),
        ],
    },
    Message {
        name: "wire.APIGroup",
        fields: &[
            field("name", Kind::Str, false),
            field("versions", Kind::Msg("wire.GroupVersionForDiscovery"), true),
            field("preferredVersion", Kind::Msg("wire.GroupVersionForDiscovery"), false),
            field("serverAddressByClientCIDRs", Kind::Str, true),
        ],
    },
    Message {
        name: "wire.GroupVersionForDiscovery",
        fields: &[field("groupVersion", Kind::Str, false), field("version", Kind::Str, false)],
    },
    Message {
        name: "wire.APIGroupDiscovery",
        fields: &[
            field("metadata", Kind::Msg(OBJECT_META), false),
            field("versions", Kind::Msg("wire.APIVersionDiscovery"), true),
        ],
    },
    Message {
        name: "wire.APIVersionDiscovery",
        fields: &[
            field("version", Kind::Str, false),
            field("resources", Kind::Msg("wire.APIResourceDiscovery"), true),
            field("freshness", Kind::Str, false),
        ],
    },
    Message {
        name: "wire.APIResourceDiscovery",
        fields: &[
            field("resource", Kind::Str, false),
            field("responseKind", Kind::Msg("wire.GroupVersionKind"), false),
            field("scope", Kind::Str, false),
            field("singularResource", Kind::Str, false),
            field("verbs", Kind::Str, true),
            field("shortNames", Kind::Str, true),
            field("categories", Kind::Str, true),
            field("subresources", Kind::Msg("wire.APISubresourceDiscovery"), true),
        ],
    },
    Message {
        name: "wire.APISubresourceDiscovery",
        fields: &[
            field("subresource", Kind::Str, false),
            field("responseKind", Kind::Msg("wire.GroupVersionKind"), false),
            field("acceptedTypes", Kind::Msg("wire.GroupVersionKind"), true),
            field("verbs", Kind::Str, true),
        ],
    },
    Message {
        name: "wire.GroupVersionKind",
        fields: &[
            field("group", Kind::Str, false),
            field("version", Kind::Str, false),
            field("kind", Kind::Str, false),
        ],
    },
];

/// How the keys of one JSON object are ordered.
#[derive(Clone, Copy)]
enum Shape {
    /// Sorted, as Go writes maps and unstructured objects.
    Sorted,
    /// A Go struct; `type_meta` puts `kind` and `apiVersion` first.
    Struct { message: &'static Message, type_meta: bool },
    /// Whatever type the object's own `kind` and `apiVersion` name.
    SelfTyped,
}

/// The shape of an object that names its type: a built-in kind, a list, a `Status`, a `Table`;
/// custom resources and their lists are sorted.
fn typed_shape(object: &Map<String, Value>) -> Shape {
    let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("");
    let (kind, api_version) = (text("kind"), text("apiVersion"));
    if kind.is_empty() {
        return Shape::Sorted;
    }
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let message = match kind {
        _ if !crate::builtin::is_builtin_group(group) => return Shape::Sorted,
        "Status" => &STATUS,
        "Table" => &TABLE,
        "PartialObjectMetadata" => &PARTIAL_OBJECT_METADATA,
        "APIResourceList" => &API_RESOURCE_LIST,
        "APIGroupList" => &API_GROUP_LIST,
        "APIVersions" => &API_VERSIONS,
        "APIGroupDiscoveryList" => &API_GROUP_DISCOVERY_LIST,
        _ => match kind_message(api_version, kind) {
            Some(message) => message,
            None if kind.ends_with("List") && object.contains_key("items") => &LIST,
            None => &BUILTIN_OBJECT,
        },
    };
    Shape::Struct { message, type_meta: true }
}

/// The shape of a field's object value.
fn field_shape(kind: &Kind) -> Shape {
    match kind {
        Kind::Msg(SELF_TYPED) => Shape::SelfTyped,
        Kind::Msg(name) => {
            match message_of(name) {
                Some(message) => Shape::Struct { message, type_meta: false },
                // The apimachinery types with a JSON form of their own; a RawExtension's object
                // names its type.
                None => Shape::SelfTyped,
            }
        }
        _ => Shape::Sorted,
    }
}

/// Whether `message` (with its inline structs) declares `key`.
fn declares(message: &Message, key: &str) -> bool {
    message.fields.iter().any(|f| match (f.json, &f.kind) {
        ("", Kind::Msg(inline)) => message_of(inline).is_some_and(|m| declares(m, key)),
        (json, _) => json == key,
    })
}

/// A message of this module's tables (named `wire.*`) or of the protobuf table.
fn message_of(name: &str) -> Option<&'static Message> {
    if name.starts_with("wire.") { NESTED.iter().find(|m| m.name == name) } else { message(name) }
}

/// A value written in the order its shape gives.
struct Ordered<'a> {
    value: &'a Value,
    /// For an object: its shape; for a list: its items'; for a map field: its values'.
    shape: Shape,
    /// A map field (`labels`, `data`, `nodeSelector`): sorted keys, values of `shape`.
    map_of: bool,
}

impl<'a> Ordered<'a> {
    fn new(value: &'a Value, shape: Shape) -> Self {
        Self { value, shape, map_of: false }
    }

    fn of_field(value: &'a Value, field: &Field) -> Self {
        match &field.kind {
            Kind::Map(inner) => Self { value, shape: field_shape(inner), map_of: true },
            kind => Self::new(value, field_shape(kind)),
        }
    }
}

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Array(items) => serializer.collect_seq(items.iter().map(|item| Ordered { value: item, ..*self })),
            Value::Object(map) if self.map_of => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map {
                    out.serialize_entry(key, &Ordered::new(value, self.shape))?;
                }
                out.end()
            }
            Value::Object(map) => {
                let shape = match self.shape {
                    Shape::SelfTyped => typed_shape(map),
                    shape => shape,
                };
                write_object(serializer, map, shape)
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

fn write_object<S: Serializer>(serializer: S, map: &Map<String, Value>, shape: Shape) -> Result<S::Ok, S::Error> {
    let mut out = serializer.serialize_map(Some(map.len()))?;
    let Shape::Struct { message, type_meta } = shape else {
        for (key, value) in map {
            out.serialize_entry(key, &Ordered::new(value, Shape::Sorted))?;
        }
        return out.end();
    };
    let mut written = 0;
    if type_meta {
        for key in ["kind", "apiVersion"] {
            if let Some(value) = map.get(key) {
                out.serialize_entry(key, value)?;
                written += 1;
            }
        }
    }
    write_fields(&mut out, map, message, &mut written)?;
    if written < map.len() {
        let is_type_meta = |key: &str| type_meta && (key == "kind" || key == "apiVersion");
        for (key, value) in map.iter().filter(|(key, _)| !is_type_meta(key) && !declares(message, key)) {
            out.serialize_entry(key, &Ordered::new(value, Shape::Sorted))?;
        }
    }
    out.end()
}

/// Writes the fields `message` declares, in its order, counting them in `written`; stops once
/// every key of the object is written.
fn write_fields<M: SerializeMap>(
    out: &mut M,
    map: &Map<String, Value>,
    message: &Message,
    written: &mut usize,
) -> Result<(), M::Error> {
    for field in message.fields {
        if *written == map.len() {
            break;
        }
        if let ("", Kind::Msg(inline)) = (field.json, &field.kind) {
            if let Some(inline) = message_of(inline) {
                write_fields(out, map, inline, written)?;
            }
            continue;
        }
        if let Some(value) = map.get(field.json) {
            out.serialize_entry(field.json, &Ordered::of_field(value, field))?;
            *written += 1;
        }
    }
    Ok(())
}

/// An answer's JSON body, in kube-apiserver's key order.
pub fn to_vec(value: &Value) -> Vec<u8> {
    // Writing a `Value` into memory cannot fail: its numbers are finite and its keys strings.
    serde_json::to_vec(&Ordered::new(value, Shape::SelfTyped)).unwrap_or_else(|_| value.to_string().into_bytes())
}

/// A list as [`to_vec`] writes it, without first copying every item into one value (a page of a
/// large list is hundreds of objects).
///
/// The envelope is written with empty `items`, and the items are written into it: its
/// `"items":[]` is the key itself, as a string value holding those characters is written with its
/// quotes escaped. Each item is written as in a list: by its own kind, or sorted like the whole
/// list when the list is a custom resource's.
pub fn list_to_vec(kind: &str, api_version: &str, metadata: &Value, items: &[&Value]) -> Vec<u8> {
    const EMPTY_ITEMS: &[u8] = br#""items":[]"#;
    let envelope = |items: Vec<Value>| serde_json::json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items});
    let head = to_vec(&envelope(Vec::new()));
    let Some(at) = head.windows(EMPTY_ITEMS.len()).position(|window| window == EMPTY_ITEMS) else {
        // Not reached: the envelope has its `items`. Written whole, the list is still right.
        return to_vec(&envelope(items.iter().map(|item| (*item).clone()).collect()));
    };
    let split = at + EMPTY_ITEMS.len() - 1;
    let mut out = Vec::with_capacity(head.len() * 2);
    out.extend_from_slice(&head[..split]);
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        if serde_json::to_writer(&mut out, &Ordered::new(item, Shape::SelfTyped)).is_err() {
            out.extend_from_slice(item.to_string().as_bytes());
        }
    }
    out.extend_from_slice(&head[split..]);
    out
}

/// One watch event line: `{"type":...,"object":...}` and a newline, the object in order.
pub fn watch_event_line(event_type: &str, object: &Value) -> Vec<u8> {
    watch_event_line_encoded(event_type, &to_vec(object))
}

/// A watch event line around an object already written by [`to_vec`] (shared by watchers).
pub fn watch_event_line_encoded(event_type: &str, object: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(object.len() + event_type.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(event_type.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(value: &Value) -> String {
        String::from_utf8(to_vec(value)).unwrap()
    }

    #[test]
    fn a_list_written_around_its_items_is_the_list_written_whole() {
        let pod = |name: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"b": "1", "a": "2"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Running"}})
        };
        let run = |name: &str| {
            json!({"apiVersion": "example.com/v1", "kind": "Run", "metadata": {"name": name},
                "spec": {"z": 1, "a": {"y": 2, "b": 3}}, "status": {"phase": "Running"}})
        };
        let cases = [
            ("PodList", "v1", vec![pod("a"), pod("b")]),
            ("RunList", "example.com/v1", vec![run("a"), run("b"), run("c")]),
            ("PodList", "v1", vec![]),
            ("RunList", "example.com/v1", vec![]),
        ];
        // A continue token is a string: characters like `"items":[]` inside it are escaped.
        let metadata = json!({"resourceVersion": "7", "continue": r#""items":[]"#, "remainingItemCount": 3});
        for (kind, api_version, items) in cases {
            let whole = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items});
            let items: Vec<&Value> = items.iter().collect();
            let written = String::from_utf8(list_to_vec(kind, api_version, &metadata, &items)).unwrap();
            assert_eq!(written, text(&whole), "{kind} of {}", items.len());
        }
    }

    #[test]
    fn a_pod_is_written_in_go_field_order() {
        let pod = json!({
            "status": {"phase": "Running"},
            "spec": {"volumes": [{"name": "v", "emptyDir": {}}], "restartPolicy": "Always",
                "initContainers": [{"name": "i", "image": "x"}],
                "containers": [{"image": "busybox", "name": "c", "env": [{"value": "1", "name": "A"}]}],
                "nodeSelector": {"b": "2", "a": "1"}, "zzUnknown": 1, "aaUnknown": 2},
            "metadata": {"uid": "u", "namespace": "ns", "name": "p", "resourceVersion": "5",
                "labels": {"z": "1", "a": "2"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "kind": "Pod", "apiVersion": "v1",
        });
        assert_eq!(
            text(&pod),
            concat!(
                r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"ns","uid":"u","#,
                r#""resourceVersion":"5","creationTimestamp":"2026-01-01T00:00:00Z","labels":{"a":"2","z":"1"}},"#,
                r#""spec":{"volumes":[{"name":"v","emptyDir":{}}],"initContainers":[{"name":"i","image":"x"}],"#,
                r#""containers":[{"name":"c","image":"busybox","env":[{"name":"A","value":"1"}]}],"#,
                r#""restartPolicy":"Always","nodeSelector":{"a":"1","b":"2"},"aaUnknown":2,"zzUnknown":1},"#,
                r#""status":{"phase":"Running"}}"#
            )
        );
        // The same object as serde_json writes it, key for key.
        let reparsed: Value = serde_json::from_slice(&to_vec(&pod)).unwrap();
        assert_eq!(reparsed, pod);
    }

    #[test]
    fn custom_resources_and_their_lists_stay_sorted() {
        let widget = json!({"kind": "Widget", "apiVersion": "example.com/v1",
            "metadata": {"uid": "u", "name": "w"}, "spec": {"b": 1, "a": 2}});
        assert_eq!(text(&widget), widget.to_string());
        let list = json!({"kind": "WidgetList", "apiVersion": "example.com/v1", "metadata": {}, "items": [widget]});
        assert_eq!(text(&list), list.to_string());
    }

    #[test]
    fn lists_statuses_and_tables_follow_their_types() {
        let list = json!({"items": [{"data": {"k": "v"}, "metadata": {"namespace": "d", "name": "c"},
                "apiVersion": "v1", "kind": "ConfigMap"}],
            "metadata": {"resourceVersion": "9", "continue": "x"}, "apiVersion": "v1", "kind": "ConfigMapList"});
        assert_eq!(
            text(&list),
            concat!(
                r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"x"},"#,
                r#""items":[{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c","namespace":"d"},"data":{"k":"v"}}]}"#
            )
        );
        let status = json!({"code": 404, "details": {"kind": "pods", "name": "p"}, "message": "m", "metadata": {},
            "reason": "NotFound", "status": "Failure", "apiVersion": "v1", "kind": "Status"});
        assert_eq!(
            text(&status),
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"m","#,
                r#""reason":"NotFound","details":{"name":"p","kind":"pods"},"code":404}"#
            )
        );
        let table = json!({"rows": [{"object": {"metadata": {"uid": "u", "name": "n"},
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata"}, "cells": ["n"]}],
            "columnDefinitions": [{"type": "string", "name": "Name", "priority": 0, "format": "name", "description": "d"}],
            "metadata": {"resourceVersion": "1"}, "apiVersion": "meta.k8s.io/v1", "kind": "Table"});
        assert_eq!(
            text(&table),
            concat!(
                r#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"1"},"#,
                r#""columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"d","priority":0}],"#,
                r#""rows":[{"cells":["n"],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","#,
                r#""metadata":{"name":"n","uid":"u"}}}]}"#
            )
        );
    }

    #[test]
    fn discovery_documents_follow_their_types() {
        let aggregated = json!({"items": [{"versions": [{"resources": [{"verbs": ["get"], "singularResource": "pod",
                "scope": "Namespaced", "responseKind": {"version": "v1", "kind": "Pod", "group": ""}, "resource": "pods"}],
                "freshness": "Current", "version": "v1"}], "metadata": {"name": ""}}],
            "metadata": {}, "apiVersion": "apidiscovery.k8s.io/v2", "kind": "APIGroupDiscoveryList"});
        assert_eq!(
            text(&aggregated),
            concat!(
                r#"{"kind":"APIGroupDiscoveryList","apiVersion":"apidiscovery.k8s.io/v2","metadata":{},"#,
                r#""items":[{"metadata":{"name":""},"versions":[{"version":"v1","resources":[{"resource":"pods","#,
                r#""responseKind":{"group":"","version":"v1","kind":"Pod"},"scope":"Namespaced","singularResource":"pod","#,
                r#""verbs":["get"]}],"freshness":"Current"}]}]}"#
            )
        );
        let resources = json!({"resources": [{"verbs": ["get"], "kind": "Pod", "namespaced": true, "singularName": "pod",
            "name": "pods"}], "groupVersion": "v1", "apiVersion": "v1", "kind": "APIResourceList"});
        assert_eq!(
            text(&resources),
            concat!(
                r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[{"name":"pods","#,
                r#""singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get"]}]}"#
            )
        );
    }

    #[test]
    fn watch_events_put_the_type_first() {
        let object = json!({"metadata": {"name": "c"}, "kind": "ConfigMap", "apiVersion": "v1"});
        assert_eq!(
            String::from_utf8(watch_event_line("ADDED", &object)).unwrap(),
            "{\"type\":\"ADDED\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"c\"}}}\n"
        );
    }
}
