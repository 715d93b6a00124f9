//! The protobuf message table (`src/protobuf/messages.rs`) is generated from the `k8s-pb` messages
//! (field numbers and types) and the `k8s-openapi` types (JSON field names) that `Cargo.lock`
//! pins, for every kind the server serves and the messages they reach. This test regenerates it
//! and fails when the checked-in table differs; `UPDATE_PROTOBUF_TABLE=1 cargo test -p devcluster
//! --test protobuf_table` writes it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The kinds sent to subresources, with their messages (`k8s-pb` gives them no `Resource`).
const SUBRESOURCE_KINDS: &[(&str, &str, &str)] = &[
    ("policy/v1", "Eviction", "api.policy.v1.Eviction"),
    ("authentication.k8s.io/v1", "TokenRequest", "api.authentication.v1.TokenRequest"),
    ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
];

/// Kinds left out: their schemas hold JSON in messages of their own (`JSON`,
/// `JSONSchemaPropsOrBool`, ...), which the decoder does not convert, so their protobuf bodies are
/// refused rather than read wrongly.
const UNDECODED_KINDS: &[&str] = &["CustomResourceDefinition"];

/// Messages the decoder converts itself (their JSON is not an object of their fields).
const SPECIAL: &[&str] = &[
    "apimachinery.pkg.util.intstr.IntOrString",
    "apimachinery.pkg.api.resource.Quantity",
    "apimachinery.pkg.apis.meta.v1.Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1",
    "apimachinery.pkg.runtime.RawExtension",
];

/// The value fields with `omitempty`, by message and field number, with their JSON names.
fn value_fields() -> BTreeMap<(String, u32), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protobuf_value_fields.txt");
    let text = std::fs::read_to_string(path).expect("tests/protobuf_value_fields.txt");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let (message, tag, json) = (parts.next(), parts.next(), parts.next());
            let (Some(message), Some(tag), Some(json)) = (message, tag, json) else { panic!("a bad line: {line}") };
            ((message.to_string(), tag.parse().expect("a field number")), json.to_string())
        })
        .collect()
}

/// Whether every field of `message` has a name in `names`, directly or through a message of its
/// own that flattens too.
fn flattens(messages: &BTreeMap<String, Vec<Field>>, message: &str, names: &BTreeMap<String, String>) -> bool {
    messages[message].iter().all(|field| {
        names.contains_key(&normalize(&field.rust))
            || field.message.as_ref().is_some_and(|child| !is_special(child) && flattens(messages, child, names))
    })
}

/// Whether the decoder converts the message itself; an `ExtraValue` is a list of strings in JSON.
fn is_special(message: &str) -> bool {
    SPECIAL.contains(&message) || message.ends_with(".ExtraValue")
}

#[derive(Debug, Clone)]
struct Field {
    tag: u32,
    rust: String,
    /// The table's `Kind`, as Rust: `Str`, `Bytes`, `Bool`, `I32`, `I64`, `Msg("name")`, or
    /// `Map(&...)` of string keys to one of them.
    kind: String,
    /// The message it holds, if any.
    message: Option<String>,
    list: bool,
}

fn crate_dir(name: &str) -> PathBuf {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let package = packages.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no package {name}"));
    let manifest = PathBuf::from(package["manifest_path"].as_str().expect("a manifest path"));
    manifest.parent().expect("the crate's directory").to_path_buf()
}

/// `api.core.v1` for `src/api/core/v1/mod.rs`.
fn module_of(root: &Path, file: &Path) -> String {
    let relative = file.parent().expect("a module directory").strip_prefix(root).expect("inside src");
    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join(".")
}

/// The messages of one `k8s-pb` module file, by full name.
fn parse_module(module: &str, text: &str, messages: &mut BTreeMap<String, Vec<Field>>) {
    let mut current: Option<(String, Vec<Field>)> = None;
    let mut pending: Option<(u32, String, bool)> = None;
    let mut declaration = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("pub struct ").and_then(|rest| rest.strip_suffix(" {}")) {
            messages.insert(format!("{module}.{name}"), Vec::new());
            continue;
        }
        if let Some(name) = line.strip_prefix("pub struct ").and_then(|rest| rest.strip_suffix(" {")) {
            current = Some((format!("{module}.{name}"), Vec::new()));
            continue;
        }
        let Some((name, fields)) = current.as_mut() else { continue };
        if line == "}" {
            messages.insert(name.clone(), std::mem::take(fields));
            current = None;
            continue;
        }
        if let Some(attribute) = line.strip_prefix("#[prost(").and_then(|rest| rest.strip_suffix(")]")) {
            let tag = attribute.split("tag = \"").nth(1).and_then(|t| t.split('"').next()).expect("a tag");
            let kind = match attribute.strip_prefix("btree_map = \"") {
                Some(map) => format!("btree_map = \"{}\"", map.split('"').next().expect("a map type")),
                None => attribute.split(',').next().expect("a type").trim().to_string(),
            };
            let list = attribute.contains("repeated");
            pending = Some((tag.parse().expect("a numeric tag"), kind, list));
            declaration.clear();
            continue;
        }
        if pending.is_some() && !line.starts_with("//") {
            declaration.push_str(line);
            let open = declaration.matches('<').count() != declaration.matches('>').count();
            if open || !declaration.ends_with(',') {
                continue;
            }
            let (tag, prost_kind, list) = pending.take().expect("a pending field");
            let (rust, ty) = declaration.trim_start_matches("pub ").split_once(':').expect("name: type");
            let (kind, message) = field_kind(module, &prost_kind, ty);
            fields.push(Field { tag, rust: rust.trim().to_string(), kind, message, list });
        }
    }
}

fn field_kind(module: &str, prost_kind: &str, ty: &str) -> (String, Option<String>) {
    let scalar = |kind: &str| match kind {
        "string" => "Str",
        "bytes" | "bytes = \"vec\"" => "Bytes",
        "bool" => "Bool",
        "int32" => "I32",
        "int64" => "I64",
        // No served kind has one; the decoder has no double.
        "double" => "F64",
        other => panic!("unknown scalar {other}"),
    };
    if prost_kind == "message" {
        let message = message_path(module, ty);
        return (format!("Msg({message:?})"), Some(message));
    }
    if let Some(map) = prost_kind.strip_prefix("btree_map = \"").and_then(|m| m.strip_suffix('"')) {
        let (key, value) = map.split_once(", ").expect("key, value");
        assert_eq!(key, "string", "map keys are strings");
        if value == "message" {
            let message = message_path(module, ty);
            return (format!("Map(&Msg({message:?}))"), Some(message));
        }
        return (format!("Map(&{})", scalar(value)), None);
    }
    (scalar(prost_kind).to_string(), None)
}

/// The full name of the message type a Rust field type names (the last type argument).
fn message_path(module: &str, ty: &str) -> String {
    let inner = ty.trim_end_matches(',').trim_end_matches('>').trim_end_matches(',');
    let inner = inner.rsplit(['<', ' ', ',']).next().expect("a type path");
    let mut parts: Vec<&str> = module.split('.').collect();
    let mut path = inner;
    while let Some(rest) = path.strip_prefix("super::") {
        parts.pop();
        path = rest;
    }
    let segments: Vec<&str> = path.split("::").collect();
    parts.extend(segments);
    parts.join(".")
}

/// `pod_dns_config` for `PodDnsConfig` (and for `k8s-openapi`'s `PodDNSConfig`).
fn snake(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let after_lower = i > 0 && chars[i - 1].is_lowercase();
            let before_lower =
                i > 0 && chars.get(i + 1).is_some_and(|n| n.is_lowercase()) && chars[i - 1].is_uppercase();
            if after_lower || before_lower {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

fn normalize(rust: &str) -> String {
    rust.trim_start_matches("r#").trim_end_matches('_').replace('_', "")
}

/// The JSON names of a type's fields, keyed by the normalized Rust field name.
fn json_names(openapi: &Path, message: &str) -> Option<BTreeMap<String, String>> {
    let (module, name) = message.rsplit_once('.').expect("module.Name");
    let file = openapi.join(module.replace('.', "/")).join(format!("{}.rs", snake(name)));
    let text = std::fs::read_to_string(&file).ok()?;
    let mut names = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        let Some((json, rest)) = line.split_once("\" => Field::Key_") else { continue };
        let json = json.trim_start_matches('"');
        let rust = rest.trim_end_matches(',');
        names.insert(normalize(rust), json.to_string());
    }
    Some(names)
}

fn lower_camel(rust: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in rust.trim_start_matches("r#").chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn generate() -> String {
    let pb = crate_dir("k8s-pb").join("src");
    let openapi = crate_dir("k8s-openapi").join("src").join("v1_37");
    let mut messages = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    let mut files = vec![pb.clone()];
    while let Some(dir) = files.pop() {
        for entry in std::fs::read_dir(&dir).expect("a k8s-pb directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                files.push(path);
            } else if path.file_name().is_some_and(|n| n == "mod.rs") {
                let module = module_of(&pb, &path);
                let text = std::fs::read_to_string(&path).expect("a k8s-pb module");
                parse_module(&module, &text, &mut messages);
                let mut current = None;
                for line in text.lines().map(str::trim) {
                    if let Some(name) =
                        line.strip_prefix("impl crate::Resource for ").and_then(|r| r.strip_suffix(" {"))
                    {
                        current = Some(name.to_string());
                    } else if let Some(version) = line.strip_prefix("const API_VERSION: &'static str = \"") {
                        let version = version.trim_end_matches("\";");
                        if let Some(name) = current.take() {
                            kinds.insert((version.to_string(), name.clone()), format!("{module}.{name}"));
                        }
                    }
                }
            }
        }
    }
    let mut served: BTreeSet<(String, String)> =
        devcluster::builtin::builtin_resources().into_iter().map(|info| (info.api_version(), info.kind)).collect();
    for (version, kind, message) in SUBRESOURCE_KINDS {
        kinds.insert((version.to_string(), kind.to_string()), message.to_string());
        served.insert((version.to_string(), kind.to_string()));
    }
    let mut roots = Vec::new();
    for key in served.iter().filter(|(_, kind)| !UNDECODED_KINDS.contains(&kind.as_str())) {
        let message = kinds.get(key).unwrap_or_else(|| panic!("k8s-pb has no message for {key:?}"));
        roots.push((key.0.clone(), key.1.clone(), message.clone()));
    }
    let mut reached = BTreeSet::new();
    let mut queue: VecDeque<String> = roots.iter().map(|(_, _, m)| m.clone()).collect();
    while let Some(name) = queue.pop_front() {
        if !reached.insert(name.clone()) || is_special(&name) {
            continue;
        }
        let fields = messages.get(&name).unwrap_or_else(|| panic!("no message {name}"));
        for field in fields {
            assert!(!field.kind.contains("F64"), "{name}.{} is a double, which the decoder lacks", field.rust);
            queue.extend(field.message.clone());
        }
    }
    let mut out = String::from(
        "//! Generated by `UPDATE_PROTOBUF_TABLE=1 cargo test -p devcluster --test protobuf_table` from the\n\
         //! `k8s-pb` messages and the `k8s-openapi` JSON field names; do not edit.\n\n\
         use super::table::{Field, Kind::*, Message};\n\n\
         /// The message of each kind the server reads as protobuf, by apiVersion and kind.\n\
         pub(super) const KINDS: &[(&str, &str, &str)] = &[\n",
    );
    for (version, kind, message) in &roots {
        out.push_str(&format!("    ({version:?}, {kind:?}, {message:?}),\n"));
    }
    out.push_str(
        "];\n\n/// Every message those kinds reach, sorted by name, each with its fields in the Go struct's order.\npub(super) const MESSAGES: &[Message] = &[\n",
    );
    // Go structs embedded inline (`json:",inline"`, as `VolumeSource` in `Volume`) are fields of
    // their own in protobuf and flattened in JSON: a message field without a JSON name of its own
    // whose fields all have names in the holder is inline, and takes its names from the holder.
    let own_names: BTreeMap<&String, Option<BTreeMap<String, String>>> =
        reached.iter().map(|name| (name, json_names(&openapi, name))).collect();
    let mut inline = BTreeSet::new();
    let mut borrowed: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for name in reached.iter().filter(|n| !is_special(n)) {
        let Some(names) = own_names[name].clone().or_else(|| borrowed.get(name).cloned()) else { continue };
        for field in &messages[name] {
            let Some(child) = &field.message else { continue };
            if names.contains_key(&normalize(&field.rust)) || is_special(child) {
                continue;
            }
            if flattens(&messages, child, &names) {
                inline.insert((name.clone(), field.rust.clone()));
                borrowed.entry(child.clone()).or_insert_with(|| names.clone());
            }
        }
    }
    let mut value_fields = value_fields();
    let mut guessed = Vec::new();
    for name in &reached {
        if is_special(name) {
            continue;
        }
        let names = own_names[name].clone().or_else(|| borrowed.get(name).cloned());
        out.push_str(&format!("    Message {{\n        name: {name:?},\n        fields: &[\n"));
        // k8s-pb declares fields in the Go struct's order (not by number), which JSON answers follow.
        for field in messages[name].clone() {
            let json = if inline.contains(&(name.clone(), field.rust.clone())) {
                String::new()
            } else {
                match names.as_ref().and_then(|n| n.get(&normalize(&field.rust))) {
                    Some(json) => json.clone(),
                    None => {
                        guessed.push(format!("{name}.{}", field.rust));
                        lower_camel(&field.rust)
                    }
                }
            };
            let omit_zero = value_fields.remove(&(name.clone(), field.tag)).is_some();
            out.push_str(&format!(
                "            Field {{ tag: {}, json: {json:?}, kind: {}, list: {}, omit_zero: {omit_zero} }},\n",
                field.tag, field.kind, field.list
            ));
        }
        out.push_str("        ],\n    },\n");
    }
    out.push_str("];\n");
    // Listed fields of messages the served kinds do not reach are of no use, but harmless; a listed
    // field that a reached message does not have is a mistake in the list.
    let wrong: Vec<_> = value_fields.iter().filter(|((message, _), _)| reached.contains(message)).collect();
    assert!(wrong.is_empty(), "protobuf_value_fields.txt names fields the messages lack: {wrong:?}");
    // Fields newer than the pinned k8s-openapi (alpha features) keep their lower-camel names.
    assert!(guessed.len() < 8, "JSON names not found in k8s-openapi: {guessed:?}");
    out
}

#[test]
fn the_protobuf_table_matches_the_pinned_crates() {
    let generated = generate();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protobuf/messages.rs");
    if std::env::var_os("UPDATE_PROTOBUF_TABLE").is_some() {
        std::fs::write(&path, &generated).expect("the table is written");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is out of date: run UPDATE_PROTOBUF_TABLE=1 cargo test -p devcluster --test protobuf_table",
        path.display()
    );
}
