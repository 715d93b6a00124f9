//! Request body decoding: JSON or YAML, with the duplicate-field detection that strict field validation needs.
//!
//! Bodies are decoded through a `DeserializeSeed` that builds a `serde_json::Value` itself, so that a
//! key seen twice in one object is recorded (by its dotted path) instead of silently overwritten.
//! As with Go's decoder, the last occurrence wins. Malformed input is a 400 worded like the real
//! server's: Go `encoding/json` messages for JSON, `sigs.k8s.io/yaml` ones for YAML.

use crate::error::ApiError;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A decoded request body and the dotted paths of any duplicated fields in it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBody {
    pub value: Value,
    /// Paths of keys that appeared more than once in one object, e.g. `spec.replicas`. Inside lists
    /// the path names only the fields (`spec.containers.name`), as the real server's strict decoder does.
    pub duplicate_fields: Vec<String>,
}

/// Whether a content type is YAML (`application/yaml`, `application/apply-patch+yaml`).
fn is_yaml(content_type: &str) -> bool {
    content_type.to_ascii_lowercase().contains("yaml")
}

/// Decodes a body as JSON, or as YAML when the content type says so. Malformed input is a 400
/// whose message says where decoding failed.
pub fn decode_body(bytes: &[u8], content_type: &str) -> Result<DecodedBody, ApiError> {
    let mut duplicates = Vec::new();
    if is_yaml(content_type) && bytes.trim_ascii_start().starts_with(b"{") {
        // JSON is YAML, and clients send most YAML bodies (server-side apply patches) as JSON,
        // which the JSON parser reads many times faster. Anything it rejects is read as YAML,
        // whose errors are the ones to report.
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let seed = TrackedValue { path: String::new(), duplicates: &mut duplicates };
        if let Ok(value) = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v)) {
            return Ok(DecodedBody { value, duplicate_fields: duplicates });
        }
        duplicates.clear();
    }
    let value = if is_yaml(content_type) {
        // Like `sigs.k8s.io/yaml`, only the first document counts; an empty body is null.
        let seed = TrackedValue { path: String::new(), duplicates: &mut duplicates };
        match serde_yaml::Deserializer::from_slice(bytes).next() {
            Some(document) => seed
                .deserialize(document)
                .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {}", yaml_message(&e))))?,
            None => Value::Null,
        }
    } else {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let seed = TrackedValue { path: String::new(), duplicates: &mut duplicates };
        seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v)).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {}", json_message(&e, bytes)))
        })?
    };
    Ok(DecodedBody { value, duplicate_fields: duplicates })
}

/// Like [`decode_body`], for bodies that must be an object (create, update, apply): any other
/// top-level value is a 400, worded as the real server words it.
/// Protobuf bodies (see [`crate::protobuf`]) are converted to JSON first.
pub fn decode_object(bytes: &[u8], content_type: &str) -> Result<DecodedBody, ApiError> {
    if crate::protobuf::is_protobuf(content_type) {
        let value = crate::protobuf::decode_object(bytes)?;
        return Ok(DecodedBody { value, duplicate_fields: Vec::new() });
    }
    let body = decode_body(bytes, content_type)?;
    let go_kind = match &body.value {
        Value::Object(_) => return Ok(body),
        Value::Null => {
            let raw = String::from_utf8_lossy(bytes);
            return Err(ApiError::bad_request(format!("Object 'Kind' is missing in '{}'", raw.trim())));
        }
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
    };
    let message = if is_yaml(content_type) {
        format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {go_kind} into Go value of type map[string]interface {{}}"
        )
    } else {
        format!(
            "couldn't get version/kind; json parse error: json: cannot unmarshal {go_kind} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}"
        )
    };
    Err(ApiError::bad_request(message))
}

/// Builds a `Value` while recording duplicated keys under `path`.
struct TrackedValue<'a> {
    path: String,
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for TrackedValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TrackedValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom(format!("unsupported value: {v}")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = TrackedValue { path: self.path.clone(), duplicates: &mut *self.duplicates };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(KeyString(key)) = access.next_key()? {
            let path = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
            let seed = TrackedValue { path: path.clone(), duplicates: &mut *self.duplicates };
            let value = access.next_value_seed(seed)?;
            if map.insert(key, value).is_some() && !self.duplicates.contains(&path) {
                self.duplicates.push(path);
            }
        }
        Ok(Value::Object(map))
    }
}

/// An object key; YAML keys may be scalars of any type and become their string form, as in
/// `sigs.k8s.io/yaml`.
struct KeyString(String);

impl<'de> de::Deserialize<'de> for KeyString {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyString, E> {
                Ok(KeyString("null".to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// Go `encoding/json`'s wording for a syntax error, from serde_json's error and the input.
fn json_message(error: &serde_json::Error, bytes: &[u8]) -> String {
    if error.is_eof() {
        return "unexpected end of JSON input".to_string();
    }
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    let offending = byte_at(bytes, error.line(), error.column());
    let Some(c) = offending else { return message.to_string() };
    let context = match message {
        "expected value" | "expected ident" => "looking for beginning of value",
        "expected `:`" => "after object key",
        "expected `,` or `}`" => "after object key:value pair",
        "expected `,` or `]`" => "after array element",
        "key must be a string" => "looking for beginning of object key string",
        "trailing characters" => "after top-level value",
        "trailing comma" if c == b'}' => "looking for beginning of object key string",
        "trailing comma" => "looking for beginning of value",
        "invalid number" => "in numeric literal",
        "invalid escape" => "in string escape code",
        m if m.starts_with("control character") => "in string literal",
        _ => return message.to_string(),
    };
    format!("invalid character {} {context}", quote_byte(c))
}

/// The byte serde_json's 1-based line/column points at.
fn byte_at(bytes: &[u8], line: usize, column: usize) -> Option<u8> {
    let start = if line <= 1 {
        0
    } else {
        bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(line - 2).map(|(i, _)| i + 1)?
    };
    bytes.get(start + column.checked_sub(1)?).copied()
}

/// Go's `quoteChar`: `'x'`, with escapes for quotes and non-printable bytes.
fn quote_byte(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\n' => "'\\n'".to_string(),
        b'\r' => "'\\r'".to_string(),
        b'\t' => "'\\t'".to_string(),
        c if c.is_ascii_graphic() || c == b' ' => format!("'{}'", c as char),
        c => format!("'\\x{c:02x}'"),
    }
}

/// `sigs.k8s.io/yaml`'s wording: `yaml: line N: <problem>`.
fn yaml_message(error: &serde_yaml::Error) -> String {
    let full = error.to_string();
    match error.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let problem = full.strip_suffix(&suffix).unwrap_or(&full);
            let problem =
                problem.split_once(": ").map(|(_, p)| p).filter(|_| problem.starts_with("line ")).unwrap_or(problem);
            format!("yaml: line {}: {problem}", loc.line())
        }
        None => format!("yaml: {full}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bad_json(body: &str) -> String {
        match decode_body(body.as_bytes(), "application/json") {
            Err(e) => {
                assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
                e.message
            }
            Ok(v) => panic!("expected an error, got {v:?}"),
        }
    }

    #[test]
    fn json_bodies_decode() {
        let body = decode_body(br#"{"a": {"b": [1, -2, 1.5, true, null, "s"]}}"#, "application/json").unwrap();
        assert_eq!(body.value, json!({"a": {"b": [1, -2, 1.5, true, null, "s"]}}));
        assert!(body.duplicate_fields.is_empty());
    }

    #[test]
    fn duplicate_json_keys_are_reported_and_last_wins() {
        let body = decode_body(
            br#"{"spec": {"replicas": 1, "replicas": 2, "containers": [{"name": "a", "name": "b"}, {"name": "c", "name": "d"}]}, "kind": "A", "kind": "B"}"#,
            "application/json",
        )
        .unwrap();
        assert_eq!(body.value["spec"]["replicas"], json!(2));
        assert_eq!(body.value["kind"], json!("B"));
        assert_eq!(body.duplicate_fields, vec!["spec.replicas", "spec.containers.name", "kind"]);
    }

    #[test]
    fn json_syntax_errors_read_like_go() {
        let prefix = "couldn't get version/kind; json parse error: ";
        assert_eq!(bad_json("{\"a\": 1"), format!("{prefix}unexpected end of JSON input"));
        assert_eq!(bad_json(""), format!("{prefix}unexpected end of JSON input"));
        assert_eq!(bad_json("xyz"), format!("{prefix}invalid character 'x' looking for beginning of value"));
        assert_eq!(bad_json("{\"a\" 1}"), format!("{prefix}invalid character '1' after object key"));
        assert_eq!(
            bad_json("{\"a\": 1 \"b\": 2}"),
            format!("{prefix}invalid character '\"' after object key:value pair")
        );
        assert_eq!(bad_json("[1 2]"), format!("{prefix}invalid character '2' after array element"));
        assert_eq!(
            bad_json("{1: 2}"),
            format!("{prefix}invalid character '1' looking for beginning of object key string")
        );
        assert_eq!(bad_json("{} x"), format!("{prefix}invalid character 'x' after top-level value"));
        assert_eq!(
            bad_json("{\"a\": 1,}"),
            format!("{prefix}invalid character '}}' looking for beginning of object key string")
        );
        assert_eq!(bad_json("[1,]"), format!("{prefix}invalid character ']' looking for beginning of value"));
        assert_eq!(
            bad_json("{\n  \"a\": \n  'q'\n}"),
            format!("{prefix}invalid character '\\'' looking for beginning of value")
        );
    }

    #[test]
    fn quoting_and_positions() {
        assert_eq!(quote_byte(b'\t'), "'\\t'");
        assert_eq!(quote_byte(0x01), "'\\x01'");
        assert_eq!(quote_byte(b'\r'), "'\\r'");
        assert_eq!(quote_byte(b'\n'), "'\\n'");
        assert_eq!(byte_at(b"ab\ncd", 2, 2), Some(b'd'));
        assert_eq!(byte_at(b"ab", 3, 1), None);
        assert_eq!(byte_at(b"ab", 1, 0), None);
    }

    #[test]
    fn yaml_bodies_decode_with_duplicates() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\ndata:\n  1: one\n  true: yes\n";
        let body = decode_body(yaml.as_bytes(), "application/apply-patch+yaml").unwrap();
        assert_eq!(
            body.value,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"1": "one", "true": "yes"}})
        );
        assert_eq!(body.duplicate_fields, vec!["metadata.name"]);
    }

    #[test]
    fn json_in_a_yaml_body_reads_as_yaml_would() {
        let json_body = br#" {"metadata": {"name": "a", "name": "b"}, "data": {"n": 1}}"#;
        let body = decode_body(json_body, "application/apply-patch+yaml").unwrap();
        assert_eq!(body.value, json!({"metadata": {"name": "b"}, "data": {"n": 1}}));
        assert_eq!(body.duplicate_fields, vec!["metadata.name"]);
        // Flow mappings that are YAML but not JSON still decode, through the YAML reader.
        let flow = decode_body(b"{a: 1, b: [x, y]}", "application/yaml").unwrap();
        assert_eq!(flow.value, json!({"a": 1, "b": ["x", "y"]}));
        assert!(flow.duplicate_fields.is_empty());
        // Broken JSON gets the YAML reader's error.
        let err = decode_body(b"{\"a\": [1, }", "application/yaml").unwrap_err();
        assert!(err.message.starts_with("error converting YAML to JSON: yaml: "), "{}", err.message);
    }

    #[test]
    fn only_the_first_yaml_document_counts() {
        let body = decode_body(b"a: 1\n---\nb: 2\n", "application/yaml").unwrap();
        assert_eq!(body.value, json!({"a": 1}));
        assert_eq!(decode_body(b"", "application/yaml").unwrap().value, Value::Null);
        assert_eq!(decode_object(b"", "application/yaml").unwrap_err().message, "Object 'Kind' is missing in ''");
    }

    #[test]
    fn malformed_yaml_is_a_bad_request() {
        let err = decode_body(b"a: b: c\n", "application/yaml").unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
        assert_eq!(
            err.message,
            "error converting YAML to JSON: yaml: line 1: mapping values are not allowed in this context"
        );
    }

    #[test]
    fn decode_object_rejects_other_top_level_values() {
        assert!(decode_object(b"{}", "application/json").is_ok());
        let err = decode_object(b"[1]", "application/json").unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }"
        );
        let err = decode_object(b"- 1\n", "application/apply-patch+yaml").unwrap_err();
        assert_eq!(
            err.message,
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        assert!(decode_object(b"\"s\"", "application/json").unwrap_err().message.contains("cannot unmarshal string"));
        assert!(decode_object(b"3", "application/json").unwrap_err().message.contains("cannot unmarshal number"));
        assert!(decode_object(b"true", "application/json").unwrap_err().message.contains("cannot unmarshal bool"));
        assert_eq!(
            decode_object(b"null", "application/json").unwrap_err().message,
            "Object 'Kind' is missing in 'null'"
        );
    }
}
