//! Pruning of fields a structural schema does not specify, and schema defaulting, as the
//! apiextensions server does when decoding a custom resource.

use super::fields::{child, index};
use serde_json::{Map, Value};

/// The `ObjectMeta` fields a resource's `metadata` may carry; anything else is pruned.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// Removes fields unknown to `schema` from `value`, recording their dotted paths. `resource` says
/// whether `value` is a resource (the root or an embedded resource), whose `apiVersion`, `kind` and
/// `metadata` are implicitly known.
pub fn prune(schema: &Value, value: &mut Value, path: &str, resource: bool, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => prune_object(schema, map, path, resource, pruned),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                let embedded = flag(item_schema, "x-kubernetes-embedded-resource");
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &index(path, i), embedded, pruned);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(schema: &Value, map: &mut Map<String, Value>, path: &str, resource: bool, pruned: &mut Vec<String>) {
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let mut unknown = Vec::new();
    for (key, child_value) in map.iter_mut() {
        let child_path = child(path, key);
        if resource && key == "metadata" {
            prune_object_meta(child_value, &child_path, pruned);
            continue;
        }
        let child_schema = properties.and_then(|p| p.get(key)).or(additional.filter(|a| a.is_object()));
        match child_schema {
            Some(s) => {
                let embedded = flag(s, "x-kubernetes-embedded-resource");
                prune(s, child_value, &child_path, embedded, pruned);
            }
            None => {
                let known = preserve
                    || additional.and_then(Value::as_bool) == Some(true)
                    || (resource && (key == "apiVersion" || key == "kind"));
                if !known {
                    unknown.push(key.clone());
                }
            }
        }
    }
    for key in unknown {
        map.remove(&key);
        pruned.push(child(path, &key));
    }
}

fn prune_object_meta(meta: &mut Value, path: &str, pruned: &mut Vec<String>) {
    let Some(map) = meta.as_object_mut() else { return };
    let unknown: Vec<String> = map.keys().filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str())).cloned().collect();
    for key in unknown {
        map.remove(&key);
        pruned.push(child(path, &key));
    }
}

/// Applies `default`s to missing (or null, non-nullable) properties, recursing into defaulted values
/// too; other nulls in non-nullable fields are dropped, as the real server does before validating.
pub fn apply_defaults(schema: &Value, value: &mut Value, resource: bool) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(props) = properties {
                for (key, prop) in props {
                    if resource && key == "metadata" {
                        continue;
                    }
                    let missing = map.get(key).is_none_or(|v| v.is_null() && !flag(prop, "nullable"));
                    if missing && let Some(default) = prop.get("default") {
                        map.insert(key.clone(), default.clone());
                    }
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let mut nulls = Vec::new();
            for (key, child_value) in map.iter_mut() {
                if resource && key == "metadata" {
                    continue;
                }
                let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) else { continue };
                if child_value.is_null() && !flag(child_schema, "nullable") {
                    nulls.push(key.clone());
                    continue;
                }
                apply_defaults(child_schema, child_value, flag(child_schema, "x-kubernetes-embedded-resource"));
            }
            for key in nulls {
                map.remove(&key);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items.iter_mut() {
                    apply_defaults(item_schema, item, flag(item_schema, "x-kubernetes-embedded-resource"));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pruned(schema: Value, mut value: Value) -> (Value, Vec<String>) {
        let mut paths = Vec::new();
        prune(&schema, &mut value, "", true, &mut paths);
        paths.sort();
        (value, paths)
    }

    #[test]
    fn unknown_fields_are_removed_and_reported() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}});
        let (value, paths) = pruned(
            schema,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "bogus": 1}, "spec": {"a": "1", "foo": 2}, "extra": true}),
        );
        assert_eq!(value, json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"a": "1"}}));
        assert_eq!(paths, vec!["extra", "metadata.bogus", "spec.foo"]);
    }

    #[test]
    fn preserve_unknown_fields_keeps_unknown_but_prunes_known_children() {
        let schema = json!({"properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"known": {"type": "object", "properties": {}}}}}});
        let (value, paths) = pruned(schema, json!({"spec": {"free": {"x": 1}, "known": {"drop": 1}}}));
        assert_eq!(value, json!({"spec": {"free": {"x": 1}, "known": {}}}));
        assert_eq!(paths, vec!["spec.known.drop"]);
    }

    #[test]
    fn additional_properties_and_lists() {
        let schema = json!({"properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
            "any": {"type": "object", "additionalProperties": true},
            "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}}
        }});
        let (value, paths) = pruned(
            schema,
            json!({"labels": {"k": {"v": "1", "w": 2}}, "any": {"z": 1}, "items": [{"n": "a"}, {"n": "b", "x": 1}]}),
        );
        assert_eq!(value, json!({"labels": {"k": {"v": "1"}}, "any": {"z": 1}, "items": [{"n": "a"}, {"n": "b"}]}));
        assert_eq!(paths, vec!["items[1].x", "labels.k.w"]);
    }

    #[test]
    fn embedded_resources_keep_type_meta_and_prune_metadata() {
        let schema = json!({"properties": {"template": {"type": "object", "x-kubernetes-embedded-resource": true,
            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}});
        let (value, paths) = pruned(
            schema,
            json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {}, "x": 1}, "spec": {"a": 1}, "y": 2}}),
        );
        assert_eq!(
            value,
            json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {}}, "spec": {"a": 1}}})
        );
        assert_eq!(paths, vec!["template.metadata.x", "template.y"]);
    }

    #[test]
    fn defaults_fill_missing_and_null_fields_recursively() {
        let schema = json!({"properties": {"spec": {"type": "object", "properties": {
            "mode": {"type": "string", "default": "fast"},
            "limits": {"type": "object", "default": {}, "properties": {"cpu": {"type": "integer", "default": 2}}},
            "note": {"type": "string"},
            "maybe": {"type": "string", "nullable": true},
            "list": {"type": "array", "items": {"type": "object", "properties": {"w": {"type": "integer", "default": 1}}}}
        }}}});
        let mut value = json!({"metadata": {"name": "a"}, "spec": {"mode": null, "note": null, "maybe": null, "list": [{}, {"w": 5}]}});
        apply_defaults(&schema, &mut value, true);
        assert_eq!(
            value,
            json!({"metadata": {"name": "a"}, "spec": {"mode": "fast", "limits": {"cpu": 2}, "maybe": null, "list": [{"w": 1}, {"w": 5}]}})
        );
    }

    #[test]
    fn defaults_do_not_create_missing_parents() {
        let schema = json!({"properties": {"spec": {"type": "object", "properties": {"mode": {"type": "string", "default": "x"}}}}});
        let mut value = json!({"kind": "K"});
        apply_defaults(&schema, &mut value, true);
        assert_eq!(value, json!({"kind": "K"}));
    }
}
