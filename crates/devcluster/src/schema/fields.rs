//! Field paths and `field.Error`-style causes, worded like apimachinery's `field` package so that
//! 422 bodies read exactly as the real server's.

use crate::error::Cause;
use serde_json::Value;

/// The field of an error about the object root: apimachinery prints a nil `*field.Path` as `<nil>`.
pub const ROOT_FIELD: &str = "<nil>";

/// Appends a property name to a dotted path (`spec` + `a` = `spec.a`).
pub fn child(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

/// Appends a list index (`spec.items` + 0 = `spec.items[0]`).
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The cause's `field`: the dotted path, or `<nil>` for the root.
pub fn field_name(path: &str) -> String {
    if path.is_empty() { ROOT_FIELD.to_string() } else { path.to_string() }
}

/// Formats a number as Go's `%v` does for `float64` (`1` rather than `1.0`).
pub fn go_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e21 { format!("{}", n as i64) } else { format!("{n}") }
}

/// Formats a bad value as `field.Error.ErrorBody` does: strings quoted, numbers and booleans bare,
/// null as `"null"`, anything else as JSON.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "\"null\"".to_string(),
        Value::String(s) => quote(s),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => n.as_f64().map(go_number).unwrap_or_else(|| n.to_string()),
        },
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Go's `%q` for the strings that appear in messages (JSON escaping is close enough).
pub fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The OpenAPI type name of a JSON value, as kube-openapi's type validator reports it.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `field.Invalid`: `Invalid value: <value>: <detail>`.
pub fn invalid(path: &str, value: &Value, detail: &str) -> Cause {
    Cause::new("FieldValueInvalid", field_name(path), format!("Invalid value: {}: {detail}", go_value(value)))
}

/// `field.TypeInvalid`: like `Invalid` but with the `FieldValueTypeInvalid` reason.
pub fn type_invalid(path: &str, value: &Value, detail: &str) -> Cause {
    Cause::new("FieldValueTypeInvalid", field_name(path), format!("Invalid value: {}: {detail}", go_value(value)))
}

/// `field.Required`: `Required value`, with an optional detail.
pub fn required(path: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
    Cause::new("FieldValueRequired", field_name(path), message)
}

/// `field.Forbidden`: `Forbidden: <detail>`.
pub fn forbidden(path: &str, detail: &str) -> Cause {
    Cause::new("FieldValueForbidden", field_name(path), format!("Forbidden: {detail}"))
}

/// `field.NotFound`: `Not found: <value>`.
pub fn not_found(path: &str, value: &Value) -> Cause {
    Cause::new("FieldValueNotFound", field_name(path), format!("Not found: {}", go_value(value)))
}

/// `field.Duplicate`: `Duplicate value: <value>`.
pub fn duplicate(path: &str, value: &Value) -> Cause {
    Cause::new("FieldValueDuplicate", field_name(path), format!("Duplicate value: {}", go_value(value)))
}

/// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
pub fn not_supported(path: &str, value: &Value, supported: &[String]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
    Cause::new(
        "FieldValueNotSupported",
        field_name(path),
        format!("Unsupported value: {}: supported values: {}", go_value(value), list.join(", ")),
    )
}

/// `field.TooLong`: `Too long: may not be more than N bytes`.
pub fn too_long(path: &str, max: u64) -> Cause {
    let unit = if max == 1 { "byte" } else { "bytes" };
    Cause::new("FieldValueTooLong", field_name(path), format!("Too long: may not be more than {max} {unit}"))
}

/// `field.TooMany`: `Too many: N: must have at most M items`.
pub fn too_many(path: &str, actual: usize, max: u64) -> Cause {
    let unit = if max == 1 { "item" } else { "items" };
    Cause::new("FieldValueTooMany", field_name(path), format!("Too many: {actual}: must have at most {max} {unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_join_like_field_path() {
        assert_eq!(child("", "spec"), "spec");
        assert_eq!(child("spec", "a"), "spec.a");
        assert_eq!(index("spec.items", 2), "spec.items[2]");
        assert_eq!(field_name(""), "<nil>");
    }

    #[test]
    fn values_print_like_go() {
        assert_eq!(go_value(&json!("x")), "\"x\"");
        assert_eq!(go_value(&json!(3)), "3");
        assert_eq!(go_value(&json!(1.5)), "1.5");
        assert_eq!(go_value(&json!(2.0)), "2");
        assert_eq!(go_value(&json!(true)), "true");
        assert_eq!(go_value(&Value::Null), "\"null\"");
        assert_eq!(go_value(&json!([1])), "[1]");
        assert_eq!(go_number(0.5), "0.5");
    }

    #[test]
    fn json_types_distinguish_integer_and_number() {
        assert_eq!(json_type(&json!(1)), "integer");
        assert_eq!(json_type(&json!(1.5)), "number");
        assert_eq!(json_type(&json!({})), "object");
        assert_eq!(json_type(&json!([])), "array");
        assert_eq!(json_type(&json!(null)), "null");
        assert_eq!(json_type(&json!(false)), "boolean");
    }

    #[test]
    fn causes_are_worded_like_apimachinery() {
        assert_eq!(required("spec.a", "").message, "Required value");
        assert_eq!(required("spec.a", "why").message, "Required value: why");
        assert_eq!(forbidden("spec.a", "no").message, "Forbidden: no");
        assert_eq!(duplicate("spec.a", &json!("x")).message, "Duplicate value: \"x\"");
        let c = not_supported("spec.mode", &json!("x"), &["a".into(), "b".into()]);
        assert_eq!(c.reason, "FieldValueNotSupported");
        assert_eq!(c.message, "Unsupported value: \"x\": supported values: \"a\", \"b\"");
        assert_eq!(too_long("spec.a", 5).message, "Too long: may not be more than 5 bytes");
        assert_eq!(too_long("spec.a", 1).message, "Too long: may not be more than 1 byte");
        assert_eq!(too_many("spec.a", 4, 3).message, "Too many: 4: must have at most 3 items");
        assert_eq!(too_many("spec.a", 2, 1).reason, "FieldValueTooMany");
        assert_eq!(too_many("spec.a", 2, 1).message, "Too many: 2: must have at most 1 item");
        assert_eq!(type_invalid("", &json!("s"), "d").field, "<nil>");
    }
}
