//! The structural-schema rules the apiextensions server enforces when a CRD is stored, so that a
//! schema the real server would refuse is refused here too (with the same field paths and wording).

use super::fields::{self, child};
use crate::error::Cause;
use serde_json::{Map, Value};

/// The types an OpenAPI v3 schema may name, in the order the apiextensions server lists them.
const OPENAPI_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Where a schema node sits, which decides the wording of a missing `type`.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

fn flag(node: &Map<String, Value>, name: &str) -> bool {
    node.get(name).and_then(Value::as_bool) == Some(true)
}

/// Checks the structural invariants of `schema` (the `openAPIV3Schema` at `pointer`).
pub fn check(schema: &Value, pointer: &str, causes: &mut Vec<Cause>) {
    check_node(schema, Level::Root, pointer, causes);
}

fn check_node(schema: &Value, level: Level, pointer: &str, causes: &mut Vec<Cause>) {
    let Some(node) = schema.as_object() else { return };
    let ty = node.get("type").and_then(Value::as_str).unwrap_or_default();
    let embedded = flag(node, "x-kubernetes-embedded-resource");
    let type_field = child(pointer, "type");
    if !ty.is_empty() && !OPENAPI_TYPES.contains(&ty) {
        let supported: Vec<String> = OPENAPI_TYPES.iter().map(|t| t.to_string()).collect();
        causes.push(fields::not_supported(&type_field, &Value::String(ty.into()), &supported));
    }
    if embedded && ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        causes.push(if ty.is_empty() {
            fields::required(&type_field, detail)
        } else {
            fields::invalid(&type_field, &Value::String(ty.into()), detail)
        });
    } else if ty.is_empty()
        && !flag(node, "x-kubernetes-int-or-string")
        && !flag(node, "x-kubernetes-preserve-unknown-fields")
    {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        causes.push(fields::required(&type_field, detail));
    }
    if level == Level::Root && !ty.is_empty() && ty != "object" {
        causes.push(fields::invalid(&type_field, &Value::String(ty.into()), "must be object at the root"));
    }
    let properties = node.get("properties").and_then(Value::as_object);
    if let Some(additional) = node.get("additionalProperties") {
        let at = child(pointer, "additionalProperties");
        if level == Level::Root {
            causes.push(fields::forbidden(&at, "must not be used at the root"));
        }
        if embedded {
            causes.push(fields::forbidden(&at, "must not be used if x-kubernetes-embedded-resource is set"));
        }
        if properties.is_some_and(|p| !p.is_empty()) {
            causes.push(fields::forbidden(&at, "additionalProperties and properties are mutual exclusive"));
        }
        check_node(additional, Level::Field, &at, causes);
    }
    if flag(node, "uniqueItems") {
        let detail = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic";
        causes.push(fields::forbidden(&child(pointer, "uniqueItems"), detail));
    }
    if (level == Level::Root || embedded)
        && let Some(metadata) = properties.and_then(|p| p.get("metadata"))
        && !is_plain_metadata(metadata)
    {
        let detail = "must not specify anything other than name and generateName, but metadata is implicitly specified";
        causes.push(fields::forbidden(&format!("{pointer}.properties[metadata]"), detail));
    }
    if embedded && !flag(node, "x-kubernetes-preserve-unknown-fields") && properties.is_none_or(Map::is_empty) {
        let detail =
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields";
        causes.push(fields::required(&child(pointer, "properties"), detail));
    }
    for (name, sub) in properties.into_iter().flatten() {
        check_node(sub, Level::Field, &format!("{pointer}.properties[{name}]"), causes);
    }
    if let Some(items) = node.get("items") {
        check_node(items, Level::Item, &child(pointer, "items"), causes);
    }
    check_junctors(node, pointer, int_or_string_any_of(node), int_or_string_first_all_of(node), causes);
}

/// `x-kubernetes-int-or-string` schemas may spell their two types as this `anyOf` (kube-derive does).
fn is_int_or_string_pair(any_of: Option<&Value>) -> bool {
    any_of == Some(&serde_json::json!([{"type": "integer"}, {"type": "string"}]))
}

fn int_or_string_any_of(node: &Map<String, Value>) -> bool {
    is_int_or_string_pair(node.get("anyOf"))
}

fn int_or_string_first_all_of(node: &Map<String, Value>) -> bool {
    let first = node.get("allOf").and_then(Value::as_array).and_then(|a| a.first());
    is_int_or_string_pair(first.and_then(|f| f.get("anyOf")))
}

fn check_junctors(
    node: &Map<String, Value>,
    pointer: &str,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    causes: &mut Vec<Cause>,
) {
    if !skip_any_of {
        for (i, sub) in node.get("anyOf").and_then(Value::as_array).into_iter().flatten().enumerate() {
            check_nested(sub, &format!("{pointer}.anyOf[{i}]"), false, causes);
        }
    }
    for (i, sub) in node.get("allOf").and_then(Value::as_array).into_iter().flatten().enumerate() {
        check_nested(sub, &format!("{pointer}.allOf[{i}]"), skip_first_all_of_any_of && i == 0, causes);
    }
    for (i, sub) in node.get("oneOf").and_then(Value::as_array).into_iter().flatten().enumerate() {
        check_nested(sub, &format!("{pointer}.oneOf[{i}]"), false, causes);
    }
    if let Some(not) = node.get("not") {
        check_nested(not, &child(pointer, "not"), false, causes);
    }
}

/// `metadata` at a resource root may only restrict `name` and `generateName`.
fn is_plain_metadata(metadata: &Value) -> bool {
    let Some(node) = metadata.as_object() else { return false };
    node.iter().all(|(key, value)| match key.as_str() {
        "type" => value == "object",
        "description" => true,
        "properties" => value.as_object().is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName")),
        _ => false,
    })
}

/// Inside `allOf`/`anyOf`/`oneOf`/`not` only value validations may appear.
fn check_nested(schema: &Value, pointer: &str, skip_any_of: bool, causes: &mut Vec<Cause>) {
    let Some(node) = schema.as_object() else { return };
    let forbidden = [
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
        ("x-kubernetes-embedded-resource", "must be false to be structural"),
        ("x-kubernetes-int-or-string", "must be false to be structural"),
        ("x-kubernetes-list-map-keys", "must be empty to be structural"),
        ("x-kubernetes-list-type", "must be undefined to be structural"),
    ];
    for (key, detail) in forbidden {
        let set = match node.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            causes.push(fields::forbidden(&child(pointer, key), detail));
        }
    }
    let properties = node.get("properties").and_then(Value::as_object);
    if properties.is_some_and(|p| p.contains_key("metadata")) {
        causes.push(fields::forbidden(
            &format!("{pointer}.properties[metadata]"),
            "must not be specified in a nested context",
        ));
    }
    for (name, sub) in properties.into_iter().flatten() {
        check_nested(sub, &format!("{pointer}.properties[{name}]"), false, causes);
    }
    if let Some(items) = node.get("items") {
        check_nested(items, &child(pointer, "items"), false, causes);
    }
    check_junctors(node, pointer, skip_any_of, false, causes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: Value) -> Vec<(String, String)> {
        let mut causes = Vec::new();
        check(&schema, "openAPIV3Schema", &mut causes);
        causes.into_iter().map(|c| (c.field, c.message)).collect()
    }

    fn pair(field: &str, message: &str) -> (String, String) {
        (field.to_string(), message.to_string())
    }

    #[test]
    fn a_structural_schema_passes() {
        let schema = json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}},
            "spec": {"type": "object", "properties": {
                "n": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "free": {"x-kubernetes-preserve-unknown-fields": true},
                "list": {"type": "array", "items": {"type": "string"}},
                "map": {"type": "object", "additionalProperties": {"type": "string"}},
                "tpl": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
            }}
        }});
        // The int-or-string anyOf pattern is the one allowed use of `type` under a junctor.
        assert_eq!(run(schema), Vec::<(String, String)>::new());
        let wrapped = json!({"type": "object", "properties": {"n": {"x-kubernetes-int-or-string": true,
            "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"anyOf": [{"type": "integer"}]}]}}});
        assert_eq!(
            run(wrapped),
            vec![pair(
                "openAPIV3Schema.properties[n].allOf[1].anyOf[0].type",
                "Forbidden: must be empty to be structural"
            )]
        );
        let nested_int_or_string = json!({"type": "object", "properties": {"n": {"x-kubernetes-int-or-string": true,
            "oneOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}]}}});
        assert_eq!(run(nested_int_or_string).len(), 2);
        assert!(run(json!({"type": "object", "properties": {"spec": {"type": "object"}}})).is_empty());
    }

    #[test]
    fn missing_types_are_required_with_their_level() {
        let causes = run(json!({"properties": {"spec": {"properties": {}}, "l": {"type": "array", "items": {}}}}));
        assert_eq!(
            causes,
            vec![
                pair("openAPIV3Schema.type", "Required value: must not be empty at the root"),
                pair(
                    "openAPIV3Schema.properties[l].items.type",
                    "Required value: must not be empty for specified array items"
                ),
                pair(
                    "openAPIV3Schema.properties[spec].type",
                    "Required value: must not be empty for specified object fields"
                ),
            ]
        );
    }

    #[test]
    fn types_outside_openapi_are_not_supported() {
        let errors = run(serde_json::json!({"type": "object", "properties": {"count": {"type": "int"}}}));
        assert_eq!(
            errors,
            vec![pair(
                "openAPIV3Schema.properties[count].type",
                "Unsupported value: \"int\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""
            )]
        );
    }

    #[test]
    fn root_and_embedded_rules() {
        let causes = run(json!({"type": "string"}));
        assert_eq!(causes, vec![pair("openAPIV3Schema.type", "Invalid value: \"string\": must be object at the root")]);
        let causes = run(json!({"type": "object", "additionalProperties": {"type": "string"}}));
        assert_eq!(
            causes,
            vec![pair("openAPIV3Schema.additionalProperties", "Forbidden: must not be used at the root")]
        );
        let causes = run(json!({"type": "object", "properties": {"e": {"x-kubernetes-embedded-resource": true}}}));
        assert_eq!(
            causes,
            vec![
                pair(
                    "openAPIV3Schema.properties[e].type",
                    "Required value: must be object if x-kubernetes-embedded-resource is true"
                ),
                pair(
                    "openAPIV3Schema.properties[e].properties",
                    "Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
                ),
            ]
        );
        let causes = run(
            json!({"type": "object", "properties": {"e": {"type": "string", "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true, "additionalProperties": {"type": "string"}}}}),
        );
        assert_eq!(
            causes,
            vec![
                pair(
                    "openAPIV3Schema.properties[e].type",
                    "Invalid value: \"string\": must be object if x-kubernetes-embedded-resource is true"
                ),
                pair(
                    "openAPIV3Schema.properties[e].additionalProperties",
                    "Forbidden: must not be used if x-kubernetes-embedded-resource is set"
                ),
            ]
        );
    }

    #[test]
    fn forbidden_constructs() {
        let causes = run(json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "m": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "u": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
            "j": {"type": "object", "allOf": [{"properties": {"metadata": {}}, "nullable": true}], "not": {"default": 1}}
        }}));
        assert_eq!(
            causes,
            vec![
                pair(
                    "openAPIV3Schema.properties[metadata]",
                    "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
                ),
                pair("openAPIV3Schema.properties[j].allOf[0].nullable", "Forbidden: must be false to be structural"),
                pair(
                    "openAPIV3Schema.properties[j].allOf[0].properties[metadata]",
                    "Forbidden: must not be specified in a nested context"
                ),
                pair("openAPIV3Schema.properties[j].not.default", "Forbidden: must be undefined to be structural"),
                pair(
                    "openAPIV3Schema.properties[m].additionalProperties",
                    "Forbidden: additionalProperties and properties are mutual exclusive"
                ),
                pair(
                    "openAPIV3Schema.properties[u].uniqueItems",
                    "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
                ),
            ]
        );
        assert!(!is_plain_metadata(&json!("x")));
        assert!(is_plain_metadata(&json!({"type": "object", "description": "d", "properties": {"generateName": {}}})));
    }
}
