//! One Event resource seen through two APIs, as kube-apiserver serves it: `events.k8s.io/v1`
//! Events cohabit with `core/v1` Events (`AddCohabitatingResources`), so both read and write the
//! same objects, stored in the `core/v1` form. This module holds the field-by-field conversion of
//! `pkg/apis/events/v1/conversion.go`: what the two kinds name differently is renamed, everything
//! else (`metadata`, `eventTime`, `series`, `related`, `reportingInstance`, `action`, `reason`,
//! `type`) is carried over as it is.

use crate::registry::ResourceInfo;
use serde_json::{Map, Value};

/// The group of the second API.
pub const GROUP: &str = "events.k8s.io";
/// `apiVersion` of the second API's kind.
pub const EVENTS_API_VERSION: &str = "events.k8s.io/v1";
/// `apiVersion` of the stored (core) kind.
const CORE_API_VERSION: &str = "v1";

/// `(core/v1 name, events.k8s.io/v1 name)` of every top-level field the two kinds name differently.
const RENAMED: &[(&str, &str)] = &[
    ("message", "note"),
    ("involvedObject", "regarding"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Which way a conversion goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    CoreToEvents,
    EventsToCore,
}

impl Direction {
    fn rename(self, key: &str) -> Option<&'static str> {
        RENAMED.iter().find_map(|&(core, events)| match self {
            Self::CoreToEvents if key == core => Some(events),
            Self::EventsToCore if key == events => Some(core),
            _ => None,
        })
    }

    fn target_api_version(self) -> &'static str {
        match self {
            Self::CoreToEvents => EVENTS_API_VERSION,
            Self::EventsToCore => CORE_API_VERSION,
        }
    }
}

/// Whether `info` is the events.k8s.io view of the stored core Events.
pub fn is_events_view(info: &ResourceInfo) -> bool {
    info.group == GROUP && info.resource == "events"
}

/// Whether `info` is the core Event resource.
fn is_core_events(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.resource == "events"
}

/// Renames the top-level keys of `object` and sets the target's `apiVersion` and `kind`.
fn convert(object: &Value, direction: Direction) -> Value {
    let Some(map) = object.as_object() else { return object.clone() };
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        let key = direction.rename(key).unwrap_or(key);
        out.insert(key.to_string(), value.clone());
    }
    out.insert("apiVersion".into(), Value::String(direction.target_api_version().into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// A stored core Event as events.k8s.io/v1 serves it.
pub fn core_to_events(core: &Value) -> Value {
    convert(core, Direction::CoreToEvents)
}

/// An events.k8s.io/v1 Event in the stored core form. `involvedObject` is a Go struct without
/// `omitempty`: an event regarding nothing has it empty, as typed clients require it.
pub fn events_to_core(events: &Value) -> Value {
    let mut core = convert(events, Direction::EventsToCore);
    if let Some(map) = core.as_object_mut() {
        map.entry("involvedObject").or_insert_with(|| Value::Object(Map::new()));
    }
    core
}

/// Renames the top-level fields in the field sets of the managedFields entries recorded through
/// `api_version`. Managers record fields in their API's terms; a write through the other API must
/// see every manager's ownership in its own terms, as the real server converts managers' field
/// sets between versions.
fn translate_managed_fields(object: &mut Value, api_version: &str, direction: Direction) {
    let Some(entries) = object.pointer_mut("/metadata/managedFields").and_then(Value::as_array_mut) else {
        return;
    };
    for entry in entries {
        if entry.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
            continue;
        }
        let Some(fields) = entry.get_mut("fieldsV1").and_then(Value::as_object_mut) else { continue };
        *fields = std::mem::take(fields)
            .into_iter()
            .map(|(key, value)| {
                let renamed = key.strip_prefix("f:").and_then(|name| direction.rename(name));
                (renamed.map_or(key, |name| format!("f:{name}")), value)
            })
            .collect();
    }
}

/// A stored object as a write through `info` computes on it: in `info`'s form, with the other
/// API's managers' field sets in the same terms. `None` when it needs no converting.
pub fn write_view(info: &ResourceInfo, stored: &Value) -> Option<Value> {
    if is_events_view(info) {
        let mut view = core_to_events(stored);
        translate_managed_fields(&mut view, CORE_API_VERSION, Direction::CoreToEvents);
        Some(view)
    } else if is_core_events(info) && has_entries_of(stored, EVENTS_API_VERSION) {
        let mut view = stored.clone();
        translate_managed_fields(&mut view, EVENTS_API_VERSION, Direction::EventsToCore);
        Some(view)
    } else {
        None
    }
}

/// The managedFields entries a write view translated, and how to translate them back.
fn translated_entries(info: &ResourceInfo) -> Option<(&'static str, Direction)> {
    if is_events_view(info) {
        Some((CORE_API_VERSION, Direction::EventsToCore))
    } else if is_core_events(info) {
        Some((EVENTS_API_VERSION, Direction::CoreToEvents))
    } else {
        None
    }
}

/// An object written through `info` in its stored form: the inverse of [`write_view`].
pub fn to_storage(info: &ResourceInfo, mut object: Value) -> Value {
    if let Some((api_version, direction)) = translated_entries(info) {
        translate_managed_fields(&mut object, api_version, direction);
    }
    if is_events_view(info) { events_to_core(&object) } else { object }
}

/// A write view as answers show it (a no-op or dry-run write answers without storing): with
/// every managedFields entry as stored, in its own API's terms. `None` when nothing was translated.
pub fn answer_form(info: &ResourceInfo, view: &Value) -> Option<Value> {
    let (api_version, direction) = translated_entries(info)?;
    if !has_entries_of(view, api_version) {
        return None;
    }
    let mut answer = view.clone();
    translate_managed_fields(&mut answer, api_version, direction);
    Some(answer)
}

fn has_entries_of(object: &Value, api_version: &str) -> bool {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|entries| entries.iter().any(|e| e.get("apiVersion").and_then(Value::as_str) == Some(api_version)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn core() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns", "uid": "u", "resourceVersion": "7"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns"},
            "related": {"kind": "Node", "name": "n"},
            "reason": "Started", "message": "started", "type": "Normal", "action": "Start",
            "source": {"component": "kubelet", "host": "n"},
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z", "count": 3,
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
            "reportingComponent": "kubelet", "reportingInstance": "n"
        })
    }

    #[test]
    fn every_field_converts_as_kube_apiserver_converts_it() {
        let events = core_to_events(&core());
        assert_eq!(
            events,
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "ns", "uid": "u", "resourceVersion": "7"},
                "regarding": {"kind": "Pod", "name": "p", "namespace": "ns"},
                "related": {"kind": "Node", "name": "n"},
                "reason": "Started", "note": "started", "type": "Normal", "action": "Start",
                "deprecatedSource": {"component": "kubelet", "host": "n"},
                "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
                "deprecatedLastTimestamp": "2026-01-01T00:01:00Z", "deprecatedCount": 3,
                "eventTime": "2026-01-01T00:00:00.000000Z",
                "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
                "reportingController": "kubelet", "reportingInstance": "n"
            })
        );
        assert_eq!(events_to_core(&events), core());
    }

    fn info(group: &str) -> ResourceInfo {
        crate::builtin::builtin_resources()
            .into_iter()
            .find(|i| i.group == group && i.resource == "events")
            .expect("events are served")
    }

    #[test]
    fn other_api_managers_are_read_in_the_writers_terms_and_stored_back_unchanged() {
        let mut stored = core();
        stored["metadata"]["managedFields"] = json!([
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "fieldsV1": {"f:message": {}, "f:reason": {}}},
            {"manager": "b", "operation": "Apply", "apiVersion": "events.k8s.io/v1", "fieldsV1": {"f:note": {}}}
        ]);
        let through_events = write_view(&info(GROUP), &stored).unwrap();
        let entries = &through_events["metadata"]["managedFields"];
        assert_eq!(entries[0]["fieldsV1"], json!({"f:note": {}, "f:reason": {}}));
        assert_eq!(entries[1]["fieldsV1"], json!({"f:note": {}}));
        let answered = answer_form(&info(GROUP), &through_events).unwrap();
        assert_eq!(answered["metadata"]["managedFields"], stored["metadata"]["managedFields"]);
        assert_eq!(to_storage(&info(GROUP), through_events), stored);

        let through_core = write_view(&info(""), &stored).unwrap();
        let entries = &through_core["metadata"]["managedFields"];
        assert_eq!(entries[0]["fieldsV1"], json!({"f:message": {}, "f:reason": {}}));
        assert_eq!(entries[1]["fieldsV1"], json!({"f:message": {}}));
        assert_eq!(to_storage(&info(""), through_core), stored);
        // A core event no other API wrote needs no view of its own.
        assert!(write_view(&info(""), &core()).is_none());
    }
}
