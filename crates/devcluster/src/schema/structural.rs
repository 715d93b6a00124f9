//! OpenAPI value validation of a custom resource against its structural schema, in the order and
//! with the wording of kube-openapi's validator as converted by the apiextensions server.

use super::fields::{self, child, go_number, index, json_type};
use super::formats;
use crate::error::Cause;
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Compiled `pattern`s by their source, so values are not re-compiling regexes.
pub type Patterns = HashMap<String, Regex>;

/// Compiles every `pattern` in the schema; an invalid one is reported with its JSON pointer.
/// Each error is `(field, pattern, reason)`.
pub fn compile_patterns(schema: &Value, pointer: &str, out: &mut Patterns, errors: &mut Vec<(String, String, String)>) {
    let Some(node) = schema.as_object() else { return };
    if let Some(p) = node.get("pattern").and_then(Value::as_str)
        && !out.contains_key(p)
    {
        match Regex::new(p) {
            Ok(re) => {
                out.insert(p.to_string(), re);
            }
            Err(e) => errors.push((format!("{pointer}.pattern"), p.to_string(), e.to_string())),
        }
    }
    for (key, sub) in node {
        match (key.as_str(), sub) {
            ("properties", Value::Object(props)) => {
                for (name, s) in props {
                    compile_patterns(s, &format!("{pointer}.properties[{name}]"), out, errors);
                }
            }
            ("items" | "additionalProperties" | "not", s) => {
                compile_patterns(s, &format!("{pointer}.{key}"), out, errors)
            }
            ("allOf" | "anyOf" | "oneOf", Value::Array(list)) => {
                for (i, s) in list.iter().enumerate() {
                    compile_patterns(s, &format!("{pointer}.{key}[{i}]"), out, errors);
                }
            }
            _ => {}
        }
    }
}

/// Validates `value` at `path` against `schema`, appending one cause per failure.
///
/// On update, `old` is the previous value at the same place: an unchanged value is not checked
/// (validation ratcheting, so objects stored before a schema tightened can still be updated).
pub fn check(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    patterns: &Patterns,
    causes: &mut Vec<Cause>,
) {
    let Some(node) = schema.as_object() else { return };
    if old == Some(value) {
        return;
    }
    if !check_type(node, value, path, causes) {
        return;
    }
    if value.is_null() {
        return;
    }
    check_junctors(node, value, old, path, patterns, causes);
    match value {
        Value::String(s) => {
            check_string(node, s, value, path, patterns, causes);
        }
        Value::Number(n) => check_number(node, n.as_f64().unwrap_or(0.0), value, path, causes),
        _ => {}
    }
    check_enum(node, value, path, causes);
    match value {
        Value::Array(items) => check_array(node, items, old, path, patterns, causes),
        Value::Object(map) => check_object(node, map, old, path, patterns, causes),
        _ => {}
    }
}

fn name(path: &str) -> String {
    if path.is_empty() { ".".to_string() } else { path.to_string() }
}

/// `type`, `nullable` and `x-kubernetes-int-or-string`; false when the value is of the wrong type,
/// which stops further checks of this node as kube-openapi does.
fn check_type(node: &Map<String, Value>, value: &Value, path: &str, causes: &mut Vec<Cause>) -> bool {
    let nullable = node.get("nullable").and_then(Value::as_bool) == Some(true);
    let allowed: Vec<&str> = if node.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        vec!["integer", "string"]
    } else {
        match node.get("type").and_then(Value::as_str) {
            Some(t) => vec![t],
            None => return true,
        }
    };
    if value.is_null() {
        if nullable {
            return true;
        }
        let detail = format!("{} in body must be of type {}", name(path), allowed.join(","));
        causes.push(fields::type_invalid(path, &Value::String(String::new()), &detail));
        return false;
    }
    let actual = json_type(value);
    let integral_float = actual == "number" && value.as_f64().is_some_and(|f| f.fract() == 0.0);
    let ok = allowed.contains(&actual)
        || (actual == "integer" && allowed.contains(&"number"))
        || (integral_float && allowed.contains(&"integer"));
    if !ok {
        let detail = format!("{} in body must be of type {}: {}", name(path), allowed.join(","), fields::quote(actual));
        causes.push(fields::type_invalid(path, &Value::String(actual.to_string()), &detail));
    }
    ok
}

fn check_junctors(
    node: &Map<String, Value>,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    patterns: &Patterns,
    causes: &mut Vec<Cause>,
) {
    let passes = |s: &Value| {
        let mut sub = Vec::new();
        check(s, value, None, path, patterns, &mut sub);
        sub.is_empty()
    };
    if let Some(all) = node.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(s, value, old, path, patterns, causes);
        }
    }
    if let Some(any) = node.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(passes)
    {
        let detail = format!("{} in body must validate at least one schema (anyOf)", name(path));
        causes.push(fields::invalid(path, &Value::String(String::new()), &detail));
    }
    if let Some(one) = node.get("oneOf").and_then(Value::as_array)
        && one.iter().filter(|s| passes(s)).count() != 1
    {
        let detail = format!("{} in body must validate one and only one schema (oneOf)", name(path));
        causes.push(fields::invalid(path, &Value::String(String::new()), &detail));
    }
    if let Some(not) = node.get("not")
        && passes(not)
    {
        let detail = format!("{} in body must not validate the schema (not)", name(path));
        causes.push(fields::invalid(path, &Value::String(String::new()), &detail));
    }
}

fn check_string(
    node: &Map<String, Value>,
    s: &str,
    value: &Value,
    path: &str,
    patterns: &Patterns,
    causes: &mut Vec<Cause>,
) {
    let len = s.chars().count() as u64;
    if let Some(max) = node.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        causes.push(fields::too_long(path, max));
    }
    if let Some(min) = node.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        causes.push(fields::invalid(
            path,
            value,
            &format!("{} in body should be at least {min} chars long", name(path)),
        ));
    }
    if let Some(p) = node.get("pattern").and_then(Value::as_str)
        && let Some(re) = patterns.get(p)
        && !re.is_match(s)
    {
        causes.push(fields::invalid(path, value, &format!("{} in body should match '{p}'", name(path))));
    }
    if let Some(format) = node.get("format").and_then(Value::as_str)
        && formats::check(format, s) == Some(false)
    {
        let detail = format!("{} in body must be of type {format}: {}", name(path), fields::quote(s));
        causes.push(fields::type_invalid(path, value, &detail));
    }
}

fn check_number(node: &Map<String, Value>, n: f64, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(factor) = node.get("multipleOf").and_then(Value::as_f64)
        && factor > 0.0
        && !is_integral(n / factor)
    {
        let detail = format!("{} in body should be a multiple of {}", name(path), go_number(factor));
        causes.push(fields::invalid(path, value, &detail));
    }
    if let Some(max) = node.get("maximum").and_then(Value::as_f64) {
        let exclusive = node.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        if n > max || (exclusive && n == max) {
            let relation = if exclusive { "less than" } else { "less than or equal to" };
            let detail = format!("{} in body should be {relation} {}", name(path), go_number(max));
            causes.push(fields::invalid(path, value, &detail));
        }
    }
    if let Some(min) = node.get("minimum").and_then(Value::as_f64) {
        let exclusive = node.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        if n < min || (exclusive && n == min) {
            let relation = if exclusive { "greater than" } else { "greater than or equal to" };
            let detail = format!("{} in body should be {relation} {}", name(path), go_number(min));
            causes.push(fields::invalid(path, value, &detail));
        }
    }
}

/// Whether a quotient is a whole number, allowing for floating-point error (`0.3 / 0.1`).
fn is_integral(x: f64) -> bool {
    (x - x.round()).abs() <= 1e-9 * x.abs().max(1.0)
}

fn check_enum(node: &Map<String, Value>, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(allowed) = node.get("enum").and_then(Value::as_array) else { return };
    let same = |a: &Value| a == value || (a.is_number() && value.is_number() && a.as_f64() == value.as_f64());
    if !allowed.iter().any(same) {
        let names: Vec<String> =
            allowed.iter().map(|a| a.as_str().map(str::to_string).unwrap_or_else(|| a.to_string())).collect();
        causes.push(fields::not_supported(path, value, &names));
    }
}

fn check_array(
    node: &Map<String, Value>,
    items: &[Value],
    old: Option<&Value>,
    path: &str,
    patterns: &Patterns,
    causes: &mut Vec<Cause>,
) {
    let len = items.len();
    if let Some(min) = node.get("minItems").and_then(Value::as_u64)
        && (len as u64) < min
    {
        let detail = format!("{} in body should have at least {min} items", name(path));
        causes.push(fields::invalid(path, &Value::from(len), &detail));
    }
    if let Some(max) = node.get("maxItems").and_then(Value::as_u64)
        && len as u64 > max
    {
        causes.push(fields::too_many(path, len, max));
    }
    if node.get("uniqueItems").and_then(Value::as_bool) == Some(true)
        && items.iter().enumerate().any(|(i, a)| items[..i].contains(a))
    {
        let detail = format!("{} in body shouldn't contain duplicates", name(path));
        causes.push(fields::invalid(path, &Value::String(String::new()), &detail));
    }
    if let Some(item_schema) = node.get("items") {
        for (i, item) in items.iter().enumerate() {
            let old_item = old.and_then(|o| correlate_item(node, item, o));
            check(item_schema, item, old_item, &index(path, i), patterns, causes);
        }
    }
}

fn check_object(
    node: &Map<String, Value>,
    map: &Map<String, Value>,
    old: Option<&Value>,
    path: &str,
    patterns: &Patterns,
    causes: &mut Vec<Cause>,
) {
    let len = map.len();
    if let Some(max) = node.get("maxProperties").and_then(Value::as_u64)
        && len as u64 > max
    {
        causes.push(fields::too_many(path, len, max));
    }
    if let Some(min) = node.get("minProperties").and_then(Value::as_u64)
        && (len as u64) < min
    {
        let detail = format!("{} in body should have at least {min} properties", name(path));
        causes.push(fields::invalid(path, &Value::from(min), &detail));
    }
    if let Some(required) = node.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                causes.push(fields::required(&child(path, key), ""));
            }
        }
    }
    let properties = node.get("properties").and_then(Value::as_object);
    let additional = node.get("additionalProperties").filter(|a| a.is_object());
    for (key, child_value) in map {
        let child_path = child(path, key);
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(s), _) | (None, Some(s)) => {
                check(s, child_value, old.and_then(|o| o.get(key)), &child_path, patterns, causes)
            }
            (None, None) => {}
        }
    }
}

/// The old item a list item corresponds to: only items of `x-kubernetes-list-type: map` lists
/// correlate (by their keys), as in the real server's ratcheting.
fn correlate_item<'a>(node: &Map<String, Value>, item: &Value, old: &'a Value) -> Option<&'a Value> {
    if node.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys: Vec<&str> =
        node.get("x-kubernetes-list-map-keys")?.as_array()?.iter().filter_map(Value::as_str).collect();
    old.as_array()?.iter().find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
}

/// `x-kubernetes-list-type` `set` and `map` uniqueness, checked after the OpenAPI validation as the
/// real server does: the second occurrence of a value (or map key) is a `Duplicate value` error.
pub fn check_list_types(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    match value {
        Value::Array(items) => {
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for i in second_occurrences(items) {
                        causes.push(fields::duplicate(&index(path, i), &items[i]));
                    }
                }
                Some("map") => check_list_map(schema, items, path, causes),
                _ => {}
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_list_types(item_schema, item, &index(path, i), causes);
                }
            }
        }
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child_value) in map {
                if let Some(s) = properties.and_then(|p| p.get(key)).or(additional) {
                    check_list_types(s, child_value, &child(path, key), causes);
                }
            }
        }
        _ => {}
    }
}

fn check_list_map(schema: &Value, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    if let Some((i, item)) = items.iter().enumerate().find(|(_, x)| !x.is_null() && !x.is_object()) {
        causes.push(fields::invalid(&index(path, i), item, "must be an object for an array of list-type map"));
        return;
    }
    let key_fields: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let keys: Vec<Map<String, Value>> = items
        .iter()
        .map(|item| key_fields.iter().filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone()))).collect())
        .collect();
    let key_values: Vec<Value> = keys.iter().cloned().map(Value::Object).collect();
    for i in second_occurrences(&key_values) {
        let detail = go_map_literal(&keys[i]);
        causes.push(Cause::new(
            "FieldValueDuplicate",
            fields::field_name(&index(path, i)),
            format!("Duplicate value: {detail}"),
        ));
    }
}

/// Indices of the second occurrence of each repeated value.
fn second_occurrences(items: &[Value]) -> Vec<usize> {
    let mut seen: Vec<(&Value, usize)> = Vec::new();
    let mut result = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match seen.iter_mut().find(|(v, _)| *v == item) {
            Some((_, times)) => {
                *times += 1;
                if *times == 2 {
                    result.push(i);
                }
            }
            None => seen.push((item, 1)),
        }
    }
    result
}

/// Go's `%#v` of a `map[string]interface {}` of scalars, e.g. `map[string]interface {}{"name":"a"}`.
fn go_map_literal(map: &Map<String, Value>) -> String {
    let entries: Vec<String> = map.iter().map(|(k, v)| format!("{}:{}", fields::quote(k), v)).collect();
    format!("map[string]interface {{}}{{{}}}", entries.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: Value, value: Value) -> Vec<Cause> {
        let mut patterns = Patterns::new();
        let mut errors = Vec::new();
        compile_patterns(&schema, "openAPIV3Schema", &mut patterns, &mut errors);
        assert!(errors.is_empty());
        let mut causes = Vec::new();
        check(
            &json!({"type": "object", "properties": {"spec": schema}}),
            &json!({"spec": value}),
            None,
            "",
            &patterns,
            &mut causes,
        );
        causes
    }

    fn one(schema: Value, value: Value) -> Cause {
        let causes = run(schema, value);
        assert_eq!(causes.len(), 1, "{causes:?}");
        causes.into_iter().next().unwrap()
    }

    #[test]
    fn type_mismatch_names_expected_and_actual_types() {
        let c = one(json!({"type": "integer"}), json!("string"));
        assert_eq!(c.reason, "FieldValueTypeInvalid");
        assert_eq!(c.field, "spec");
        assert_eq!(c.message, "Invalid value: \"string\": spec in body must be of type integer: \"string\"");
        let c = one(json!({"type": "integer"}), json!(1.5));
        assert_eq!(c.message, "Invalid value: \"number\": spec in body must be of type integer: \"number\"");
        assert!(run(json!({"type": "integer"}), json!(2.0)).is_empty());
        assert!(run(json!({"type": "number"}), json!(2)).is_empty());
        let c = one(json!({"type": "object"}), json!([1]));
        assert_eq!(c.message, "Invalid value: \"array\": spec in body must be of type object: \"array\"");
    }

    #[test]
    fn int_or_string_and_nullable() {
        let s = json!({"x-kubernetes-int-or-string": true});
        assert!(run(s.clone(), json!(3)).is_empty());
        assert!(run(s.clone(), json!("50%")).is_empty());
        let c = one(s, json!(true));
        assert_eq!(c.message, "Invalid value: \"boolean\": spec in body must be of type integer,string: \"boolean\"");
        assert!(run(json!({"type": "string", "nullable": true}), Value::Null).is_empty());
        let c = one(json!({"type": "string"}), Value::Null);
        assert_eq!(c.message, "Invalid value: \"\": spec in body must be of type string");
    }

    #[test]
    fn string_bounds_pattern_and_format() {
        let c = one(json!({"type": "string", "maxLength": 3}), json!("abcd"));
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            ("FieldValueTooLong", "Too long: may not be more than 3 bytes")
        );
        let c = one(json!({"type": "string", "minLength": 3}), json!("ab"));
        assert_eq!(c.message, "Invalid value: \"ab\": spec in body should be at least 3 chars long");
        let c = one(json!({"type": "string", "pattern": "^[0-9a-f]{7,64}$"}), json!("xyz"));
        assert_eq!(c.reason, "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"xyz\": spec in body should match '^[0-9a-f]{7,64}$'");
        let c = one(json!({"type": "string", "format": "date-time"}), json!("soon"));
        assert_eq!(c.reason, "FieldValueTypeInvalid");
        assert_eq!(c.message, "Invalid value: \"soon\": spec in body must be of type date-time: \"soon\"");
        assert!(run(json!({"type": "string", "format": "date-time"}), json!("2024-01-01T00:00:00Z")).is_empty());
    }

    #[test]
    fn numeric_bounds() {
        let c = one(json!({"type": "integer", "minimum": 1}), json!(0));
        assert_eq!(c.message, "Invalid value: 0: spec in body should be greater than or equal to 1");
        let c = one(json!({"type": "integer", "minimum": 1, "exclusiveMinimum": true}), json!(1));
        assert_eq!(c.message, "Invalid value: 1: spec in body should be greater than 1");
        let c = one(json!({"type": "number", "maximum": 2.5}), json!(3));
        assert_eq!(c.message, "Invalid value: 3: spec in body should be less than or equal to 2.5");
        let c = one(json!({"type": "integer", "maximum": 3, "exclusiveMaximum": true}), json!(3));
        assert_eq!(c.message, "Invalid value: 3: spec in body should be less than 3");
        let c = one(json!({"type": "integer", "multipleOf": 2}), json!(3));
        assert_eq!(c.message, "Invalid value: 3: spec in body should be a multiple of 2");
        assert!(run(json!({"type": "number", "multipleOf": 0.1}), json!(0.3)).is_empty());
        let c = one(json!({"type": "number", "multipleOf": 0.5}), json!(0.7));
        assert_eq!(c.message, "Invalid value: 0.7: spec in body should be a multiple of 0.5");
    }

    #[test]
    fn enum_lists_supported_values() {
        let c = one(json!({"type": "string", "enum": ["a", "b"]}), json!("x"));
        assert_eq!(c.reason, "FieldValueNotSupported");
        assert_eq!(c.message, "Unsupported value: \"x\": supported values: \"a\", \"b\"");
        let c = one(json!({"type": "integer", "enum": [1, 2]}), json!(3));
        assert_eq!(c.message, "Unsupported value: 3: supported values: \"1\", \"2\"");
        assert!(run(json!({"type": "integer", "enum": [1, 2]}), json!(2)).is_empty());
    }

    #[test]
    fn array_checks_and_item_paths() {
        let c = one(json!({"type": "array", "minItems": 2}), json!([1]));
        assert_eq!(c.message, "Invalid value: 1: spec in body should have at least 2 items");
        let c = one(json!({"type": "array", "maxItems": 1}), json!([1, 2]));
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            ("FieldValueTooMany", "Too many: 2: must have at most 1 item")
        );
        let c = one(json!({"type": "array", "uniqueItems": true}), json!([1, 1]));
        assert_eq!(c.message, "Invalid value: \"\": spec in body shouldn't contain duplicates");
        let c = one(json!({"type": "array", "items": {"type": "string"}}), json!(["a", 2]));
        assert_eq!(c.field, "spec[1]");
    }

    #[test]
    fn object_checks() {
        let c = one(json!({"type": "object", "required": ["name"]}), json!({}));
        assert_eq!(
            (c.field.as_str(), c.reason.as_str(), c.message.as_str()),
            ("spec.name", "FieldValueRequired", "Required value")
        );
        let c = one(json!({"type": "object", "maxProperties": 1}), json!({"a": 1, "b": 2}));
        assert_eq!(c.message, "Too many: 2: must have at most 1 item");
        let c = one(json!({"type": "object", "minProperties": 2}), json!({"a": 1}));
        assert_eq!(c.message, "Invalid value: 2: spec in body should have at least 2 properties");
        let c = one(json!({"type": "object", "additionalProperties": {"type": "string"}}), json!({"k": 1}));
        assert_eq!(c.field, "spec.k");
    }

    #[test]
    fn junctors() {
        let any = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        assert!(run(any.clone(), json!(1)).is_empty());
        let c = one(any, json!(true));
        assert_eq!(c.message, "Invalid value: \"\": spec in body must validate at least one schema (anyOf)");
        let c = one(json!({"oneOf": [{"minimum": 1}, {"minimum": 2}]}), json!(5));
        assert_eq!(c.message, "Invalid value: \"\": spec in body must validate one and only one schema (oneOf)");
        let c = one(json!({"not": {"minimum": 1}}), json!(5));
        assert_eq!(c.message, "Invalid value: \"\": spec in body must not validate the schema (not)");
        let causes = run(json!({"allOf": [{"minimum": 1}, {"maximum": 0}]}), json!(5));
        assert_eq!(causes.len(), 1);
    }

    fn list_types(schema: Value, value: Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        check_list_types(&json!({"properties": {"spec": schema}}), &json!({"spec": value}), "", &mut causes);
        causes
    }

    #[test]
    fn list_type_set_rejects_duplicates() {
        let causes = list_types(json!({"type": "array", "x-kubernetes-list-type": "set"}), json!(["a", "b", "a", "a"]));
        assert_eq!(causes, vec![Cause::new("FieldValueDuplicate", "spec[2]", "Duplicate value: \"a\"")]);
        assert!(list_types(json!({"type": "array", "x-kubernetes-list-type": "atomic"}), json!([1, 1])).is_empty());
    }

    #[test]
    fn list_type_map_rejects_duplicate_keys() {
        let schema = json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"ports": {"type": "array", "x-kubernetes-list-type": "set"}}}});
        let causes =
            list_types(schema.clone(), json!([{"name": "a"}, {"name": "b", "ports": [1, 1]}, {"name": "a", "v": 1}]));
        assert_eq!(
            causes,
            vec![
                Cause::new(
                    "FieldValueDuplicate",
                    "spec[2]",
                    "Duplicate value: map[string]interface {}{\"name\":\"a\"}"
                ),
                Cause::new("FieldValueDuplicate", "spec[1].ports[1]", "Duplicate value: 1"),
            ]
        );
        let causes = list_types(schema, json!([{"name": "a"}, "x"]));
        assert_eq!(
            causes,
            vec![Cause::new(
                "FieldValueInvalid",
                "spec[1]",
                "Invalid value: \"x\": must be an object for an array of list-type map"
            )]
        );
    }

    #[test]
    fn unchanged_values_are_ratcheted_on_update() {
        let schema = json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 2},
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
                "items": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"type": "integer", "maximum": 1}}}},
            "list": {"type": "array", "items": {"type": "integer", "maximum": 1}}
        }});
        let patterns = Patterns::new();
        let old = json!({"name": "long", "items": [{"k": "a", "v": 5}], "list": [5]});
        let new = json!({"name": "long", "items": [{"k": "b", "v": 0}, {"k": "a", "v": 5}], "list": [5, 0]});
        let mut causes = Vec::new();
        check(&schema, &new, Some(&old), "", &patterns, &mut causes);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["list[0]"]);
        let mut causes = Vec::new();
        check(&schema, &new, None, "", &patterns, &mut causes);
        assert_eq!(causes.len(), 3);
    }

    #[test]
    fn invalid_patterns_are_reported() {
        let mut patterns = Patterns::new();
        let mut errors = Vec::new();
        let schema = json!({"properties": {"a": {"type": "string", "pattern": "(unclosed"}}});
        compile_patterns(&schema, "openAPIV3Schema", &mut patterns, &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "openAPIV3Schema.properties[a].pattern");
    }
}
