//! Type meta of `x-kubernetes-embedded-resource` values: `apiVersion` and `kind` are required and
//! must look like a group/version and a kind, as the apiextensions server checks them.

use super::fields::{self, child, index};
use crate::error::Cause;
use serde_json::Value;

const DNS1035_LABEL_ERROR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// Checks every embedded resource in `value` (the root itself is not one: its type meta is the
/// request's business).
pub fn check(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    match value {
        Value::Object(map) => {
            if schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true) {
                check_type_meta(map, path, causes);
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child_value) in map {
                if let Some(s) = properties.and_then(|p| p.get(key)) {
                    check(s, child_value, &child(path, key), causes);
                } else if let Some(s) = additional {
                    check(s, child_value, &format!("{path}[{key}]"), causes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &index(path, i), causes);
                }
            }
        }
        _ => {}
    }
}

fn check_type_meta(map: &serde_json::Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    for key in ["apiVersion", "kind"] {
        let at = child(path, key);
        match map.get(key) {
            None => causes.push(fields::required(&at, "")),
            Some(Value::String(s)) if s.is_empty() => {
                causes.push(fields::invalid(&at, &Value::from(""), "must not be empty"))
            }
            Some(Value::String(s)) => {
                let problem = if key == "apiVersion" { group_version_error(s) } else { kind_error(s) };
                if let Some(detail) = problem {
                    causes.push(fields::invalid(&at, &Value::String(s.clone()), &detail));
                }
            }
            Some(other) => causes.push(fields::invalid(&at, other, "must be a string")),
        }
    }
}

/// `schema.ParseGroupVersion`: `version` or `group/version`.
fn group_version_error(api_version: &str) -> Option<String> {
    (api_version.matches('/').count() > 1).then(|| format!("unexpected GroupVersion string: {api_version}"))
}

fn kind_error(kind: &str) -> Option<String> {
    let lower = kind.to_ascii_lowercase();
    let valid = lower.len() <= 63
        && lower.starts_with(|c: char| c.is_ascii_lowercase())
        && lower.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && lower.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (!valid).then(|| format!("may have mixed case, but should otherwise match: {DNS1035_LABEL_ERROR}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(value: Value) -> Vec<Cause> {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
            "list": {"type": "array", "items": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}},
            "byName": {"type": "object", "additionalProperties": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}
        }}}});
        let mut causes = Vec::new();
        check(&schema, &value, "", &mut causes);
        causes
    }

    #[test]
    fn well_formed_embedded_resources_pass() {
        let ok = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert!(run(json!({"spec": {"template": ok.clone(), "list": [ok.clone()], "byName": {"a": ok}}})).is_empty());
    }

    #[test]
    fn type_meta_is_required_and_checked() {
        let causes = run(json!({"spec": {
            "template": {},
            "list": [{"apiVersion": "a/b/c", "kind": 3}],
            "byName": {"x": {"apiVersion": "", "kind": "Bad_Kind"}}
        }}));
        let got: Vec<(&str, &str)> = causes.iter().map(|c| (c.field.as_str(), c.message.as_str())).collect();
        let kind_detail = format!(
            "Invalid value: \"Bad_Kind\": may have mixed case, but should otherwise match: {DNS1035_LABEL_ERROR}"
        );
        assert_eq!(
            got,
            vec![
                ("spec.byName[x].apiVersion", "Invalid value: \"\": must not be empty"),
                ("spec.byName[x].kind", kind_detail.as_str()),
                ("spec.list[0].apiVersion", "Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c"),
                ("spec.list[0].kind", "Invalid value: 3: must be a string"),
                ("spec.template.apiVersion", "Required value"),
                ("spec.template.kind", "Required value"),
            ]
        );
    }
}
