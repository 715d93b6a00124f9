//! Reads the protobuf encoding of any message in the generated table into the JSON the API
//! serves, as Go's `json` encoding of the decoded struct writes it: fields by their JSON names,
//! embedded structs flattened, and the apimachinery types that have a JSON form of their own
//! (`IntOrString`, `Quantity`, `Time`, `MicroTime`, `Duration`, `RawExtension`, `FieldsV1`,
//! `ExtraValue`) in that form.
//!
//! What the table does not know is refused, never dropped: an unknown field number or a value of
//! the wrong wire type is an error naming the message and the field.

use base64::Engine;
use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};
use serde_json::{Map, Value, json};

/// One field of a message.
pub(crate) struct Field {
    pub tag: u32,
    /// Its JSON name; empty for an embedded struct whose fields the holder takes as its own.
    pub json: &'static str,
    pub kind: Kind,
    /// A repeated field, a JSON list.
    pub list: bool,
    /// A Go value field with `omitempty`: always in protobuf, left out of JSON when zero.
    pub omit_zero: bool,
}

/// What a field holds.
pub(crate) enum Kind {
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    /// The message of that full name.
    Msg(&'static str),
    /// A map from strings to values of the kind.
    Map(&'static Kind),
}

/// A message: its full name (`api.core.v1.Pod`) and fields.
pub(crate) struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// Why a body could not be read.
#[derive(Debug, PartialEq)]
pub(super) struct DecodeFailure(pub String);

type Result<T> = std::result::Result<T, DecodeFailure>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(DecodeFailure(message.into()))
}

/// The message of `name` in the generated table.
fn message(name: &str) -> Result<&'static Message> {
    find(name).map_or_else(|| fail(format!("no protobuf message {name} is known")), Ok)
}

/// The message of `name` in the generated table, if it has one.
pub(crate) fn find(name: &str) -> Option<&'static Message> {
    let messages = super::messages::MESSAGES;
    messages.binary_search_by(|m| m.name.cmp(name)).ok().map(|index| &messages[index])
}

/// The message `name` encoded in `bytes`, as a JSON value.
pub(super) fn decode(name: &str, bytes: &[u8]) -> Result<Value> {
    match name {
        "apimachinery.pkg.util.intstr.IntOrString" => int_or_string(bytes),
        "apimachinery.pkg.api.resource.Quantity" => {
            Ok(scalar_fields(name, bytes)?.string(1).map_or(Value::Null, Value::from))
        }
        "apimachinery.pkg.apis.meta.v1.Time" => time(name, bytes, chrono::SecondsFormat::Secs),
        "apimachinery.pkg.apis.meta.v1.MicroTime" => time(name, bytes, chrono::SecondsFormat::Micros),
        "apimachinery.pkg.apis.meta.v1.Duration" => {
            Ok(Value::from(go_duration(scalar_fields(name, bytes)?.integer(1).unwrap_or(0))))
        }
        "apimachinery.pkg.runtime.RawExtension" | "apimachinery.pkg.apis.meta.v1.FieldsV1" => {
            let raw = scalar_fields(name, bytes)?.bytes(1).unwrap_or_default();
            if raw.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(&raw).or_else(|e| fail(format!("{name}: raw is not JSON: {e}")))
        }
        _ if name.ends_with(".ExtraValue") => {
            let fields = scalar_fields(name, bytes)?;
            Ok(Value::Array(fields.strings(1).into_iter().map(Value::from).collect()))
        }
        _ => decode_object(message(name)?, bytes).map(Value::Object),
    }
}

fn decode_object(message: &'static Message, mut bytes: &[u8]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    while bytes.has_remaining() {
        let (tag, wire_type) =
            decode_key(&mut bytes).or_else(|e| fail(format!("{}: a field key: {e}", message.name)))?;
        let Some(field) = message.fields.iter().find(|f| f.tag == tag) else {
            return fail(format!("{}: field number {tag} is not known to the dev cluster", message.name));
        };
        let name = if field.json.is_empty() { message.name } else { field.json };
        let context = |e: DecodeFailure| DecodeFailure(format!("{}.{name}: {}", message.name, e.0));
        if field.list && wire_type == WireType::LengthDelimited && is_varint(&field.kind) {
            // Packed repeated numbers or booleans.
            let mut packed = length_delimited(&mut bytes).map_err(context)?;
            while packed.has_remaining() {
                let value = varint_value(&field.kind, &mut packed).map_err(context)?;
                push(&mut out, field.json, value);
            }
            continue;
        }
        let value = read_value(&field.kind, wire_type, &mut bytes).map_err(context)?;
        if field.json.is_empty() {
            let Value::Object(inline) = value else {
                return fail(format!("{}: an embedded field is not an object", message.name));
            };
            out.extend(inline);
        } else if let Kind::Map(_) = field.kind {
            let Value::Object(entry) = value else { continue };
            let target = out.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = target {
                map.extend(entry);
            }
        } else if field.list {
            push(&mut out, field.json, value);
        } else if !value.is_null() && value != Value::String(String::new()) && !(field.omit_zero && is_zero(&value)) {
            out.insert(field.json.to_string(), value);
        } else {
            out.remove(field.json);
        }
    }
    Ok(out)
}

fn is_zero(value: &Value) -> bool {
    value == &Value::Bool(false) || value.as_i64() == Some(0)
}

fn push(out: &mut Map<String, Value>, key: &str, value: Value) {
    let list = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = list {
        items.push(value);
    }
}

fn is_varint(kind: &Kind) -> bool {
    matches!(kind, Kind::Bool | Kind::I32 | Kind::I64)
}

fn length_delimited<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8]> {
    let length = decode_varint(bytes).or_else(|e| fail(format!("a length: {e}")))?;
    let length = usize::try_from(length).ok().filter(|l| *l <= bytes.len());
    let Some(length) = length else { return fail("a length runs past the end of the body") };
    let (value, rest) = bytes.split_at(length);
    *bytes = rest;
    Ok(value)
}

fn varint_value(kind: &Kind, bytes: &mut &[u8]) -> Result<Value> {
    let raw = decode_varint(bytes).or_else(|e| fail(format!("a number: {e}")))?;
    Ok(match kind {
        Kind::Bool => Value::Bool(raw != 0),
        // int32 and int64 are sent as two's complement 64-bit varints.
        Kind::I32 => Value::from(raw as i64 as i32),
        _ => Value::from(raw as i64),
    })
}

fn read_value(kind: &Kind, wire_type: WireType, bytes: &mut &[u8]) -> Result<Value> {
    let expected = match kind {
        Kind::Bool | Kind::I32 | Kind::I64 => WireType::Varint,
        Kind::Str | Kind::Bytes | Kind::Msg(_) | Kind::Map(_) => WireType::LengthDelimited,
    };
    if wire_type != expected {
        return fail(format!("wire type {wire_type:?} where {expected:?} was expected"));
    }
    match kind {
        Kind::Bool | Kind::I32 | Kind::I64 => varint_value(kind, bytes),
        Kind::Str => {
            let raw = length_delimited(bytes)?;
            std::str::from_utf8(raw).map(Value::from).or_else(|e| fail(format!("a string is not UTF-8: {e}")))
        }
        Kind::Bytes => Ok(Value::from(base64::engine::general_purpose::STANDARD.encode(length_delimited(bytes)?))),
        Kind::Msg(name) => decode(name, length_delimited(bytes)?),
        Kind::Map(value_kind) => map_entry(value_kind, length_delimited(bytes)?),
    }
}

/// A map entry: the key in field 1, the value in field 2.
fn map_entry(value_kind: &Kind, mut bytes: &[u8]) -> Result<Value> {
    let mut key = String::new();
    let mut value = None;
    while bytes.has_remaining() {
        let (tag, wire_type) = decode_key(&mut bytes).or_else(|e| fail(format!("a map entry: {e}")))?;
        match tag {
            1 => key = read_value(&Kind::Str, wire_type, &mut bytes)?.as_str().unwrap_or_default().to_string(),
            2 => value = Some(read_value(value_kind, wire_type, &mut bytes)?),
            other => return fail(format!("a map entry has a field number {other}")),
        }
    }
    let value = value.unwrap_or_else(|| match value_kind {
        Kind::Str | Kind::Bytes => Value::from(""),
        Kind::Bool => Value::Bool(false),
        Kind::I32 | Kind::I64 => Value::from(0),
        Kind::Msg(_) | Kind::Map(_) => Value::Object(Map::new()),
    });
    Ok(json!({ key: value }))
}

/// The fields of a small message of scalars, by number.
struct ScalarFields(Vec<(u32, WireType, Vec<u8>, u64)>);

impl ScalarFields {
    fn integer(&self, tag: u32) -> Option<i64> {
        self.0.iter().rev().find(|(t, w, ..)| *t == tag && *w == WireType::Varint).map(|(.., v)| *v as i64)
    }

    fn bytes(&self, tag: u32) -> Option<Vec<u8>> {
        self.0
            .iter()
            .rev()
            .find(|(t, w, ..)| *t == tag && *w == WireType::LengthDelimited)
            .map(|(_, _, b, _)| b.clone())
    }

    fn string(&self, tag: u32) -> Option<String> {
        self.bytes(tag).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    fn strings(&self, tag: u32) -> Vec<String> {
        self.0
            .iter()
            .filter(|(t, w, ..)| *t == tag && *w == WireType::LengthDelimited)
            .map(|(_, _, b, _)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

fn scalar_fields(name: &str, mut bytes: &[u8]) -> Result<ScalarFields> {
    let mut fields = Vec::new();
    while bytes.has_remaining() {
        let (tag, wire_type) = decode_key(&mut bytes).or_else(|e| fail(format!("{name}: {e}")))?;
        match wire_type {
            WireType::Varint => {
                let value = decode_varint(&mut bytes).or_else(|e| fail(format!("{name}: {e}")))?;
                fields.push((tag, wire_type, Vec::new(), value));
            }
            WireType::LengthDelimited => {
                let value = length_delimited(&mut bytes).map_err(|e| DecodeFailure(format!("{name}: {}", e.0)))?;
                fields.push((tag, wire_type, value.to_vec(), 0));
            }
            other => return fail(format!("{name}: field number {tag} has wire type {other:?}")),
        }
    }
    Ok(ScalarFields(fields))
}

fn int_or_string(bytes: &[u8]) -> Result<Value> {
    let fields = scalar_fields("IntOrString", bytes)?;
    Ok(match fields.integer(1).unwrap_or(0) {
        1 => Value::from(fields.string(3).unwrap_or_default()),
        _ => Value::from(fields.integer(2).unwrap_or(0) as i32),
    })
}

/// A `metav1.Time` (whole seconds) or `MicroTime`; the zero time is JSON `null`, as Go writes it.
fn time(name: &str, bytes: &[u8], format: chrono::SecondsFormat) -> Result<Value> {
    let fields = scalar_fields(name, bytes)?;
    let (seconds, nanos) = (fields.integer(1).unwrap_or(0), fields.integer(2).unwrap_or(0));
    if seconds == 0 && nanos == 0 {
        return Ok(Value::Null);
    }
    let Some(at) = chrono::DateTime::from_timestamp(seconds, u32::try_from(nanos).unwrap_or(0)) else {
        return fail(format!("{name}: {seconds} seconds is out of range"));
    };
    Ok(Value::from(at.to_rfc3339_opts(format, true)))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let trim = |whole: u64, fraction: u64, digits: usize| {
        let fraction = format!("{fraction:0digits$}");
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() { whole.to_string() } else { format!("{whole}.{fraction}") }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", trim(n / 1_000, n % 1_000, 3));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", trim(n / 1_000_000, n % 1_000_000, 6));
    }
    let seconds = n / 1_000_000_000;
    let (hours, minutes, secs) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let secs = trim(secs, n % 1_000_000_000, 9);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(999), "999ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(90 * 1_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600 * 1_000_000_000), "1h0m0s");
        assert_eq!(go_duration(-2_500_000_000), "-2.5s");
    }

    #[test]
    fn the_table_is_sorted_and_every_message_it_names_is_in_it() {
        let messages = super::super::messages::MESSAGES;
        assert!(messages.windows(2).all(|pair| pair[0].name < pair[1].name));
        let special = |name: &str| decode(name, &[]).is_ok();
        for m in messages {
            for field in m.fields {
                let named = match field.kind {
                    Kind::Msg(name) => Some(name),
                    Kind::Map(Kind::Msg(name)) => Some(*name),
                    _ => None,
                };
                if let Some(name) = named {
                    assert!(message(name).is_ok() || special(name), "{}.{} names {name}", m.name, field.json);
                }
            }
        }
        for (_, _, name) in super::super::messages::KINDS {
            assert!(message(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn unknown_fields_and_wrong_wire_types_are_refused() {
        // Field 99 of a Namespace.
        let err = decode("api.core.v1.Namespace", &[0x98, 0x06, 0x01]).unwrap_err();
        assert_eq!(err.0, "api.core.v1.Namespace: field number 99 is not known to the dev cluster");
        // metadata (field 1) sent as a varint.
        let err = decode("api.core.v1.Namespace", &[0x08, 0x01]).unwrap_err();
        assert!(err.0.starts_with("api.core.v1.Namespace.metadata: wire type Varint"), "{}", err.0);
        // A length past the end.
        let err = decode("api.core.v1.Namespace", &[0x0a, 0x05, 0x01]).unwrap_err();
        assert!(err.0.contains("runs past the end"), "{}", err.0);
        assert!(decode("api.core.v1.Nothing", &[]).is_err());
        let err = decode("apimachinery.pkg.runtime.RawExtension", &[0x0a, 0x01, b'{']).unwrap_err();
        assert!(err.0.contains("raw is not JSON"), "{}", err.0);
    }
}
