//! ObjectMeta rules shared by every resource: names, server-set fields, timestamps.

use crate::error::Cause;
use serde_json::Value;

/// The current time as the API server writes it (RFC 3339, seconds).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The current time with microseconds, as `MicroTime` fields (Lease renewals, events) carry it.
pub fn now_micro() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// Which naming rule a resource's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most resources).
    Subdomain,
    /// RFC 1123 label (namespaces, services).
    Label,
    /// Only "not empty, no '/' or '%', not '.' or '..'" (RBAC objects and a few others).
    Path,
}

impl NameRule {
    pub fn for_resource(group: &str, resource: &str) -> Self {
        match (group, resource) {
            ("", "namespaces" | "services") => Self::Label,
            ("rbac.authorization.k8s.io", _) | ("apiregistration.k8s.io", "apiservices") => Self::Path,
            _ => Self::Subdomain,
        }
    }
}

/// Checks `metadata.name` (or the name about to be generated, with `field` = `metadata.generateName`).
pub fn validate_name(rule: NameRule, name: &str, field: &str) -> Option<Cause> {
    let invalid = |why: &str| Some(Cause::new("FieldValueInvalid", field, format!("Invalid value: {name:?}: {why}")));
    match rule {
        NameRule::Subdomain if name.len() > 253 => invalid("must be no more than 253 characters"),
        NameRule::Subdomain if !is_subdomain(name) => invalid(DNS1123_SUBDOMAIN_MSG),
        NameRule::Label if name.len() > 63 => invalid("must be no more than 63 characters"),
        NameRule::Label if !is_label(name) => invalid(DNS1123_LABEL_MSG),
        NameRule::Path if name == "." || name == ".." => invalid(&format!("may not be '{name}'")),
        NameRule::Path if name.contains('/') => invalid("may not contain '/'"),
        NameRule::Path if name.contains('%') => invalid("may not contain '%'"),
        _ => None,
    }
}

/// Five random characters from the alphabet the real server uses for `generateName`.
pub fn generated_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Reads a string at a JSON pointer, or "".
pub fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The object's finalizers.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Replaces the finalizers, dropping the field when empty as the real server serializes it.
pub fn set_finalizers(object: &mut Value, finalizers: &[String]) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if finalizers.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), Value::from(finalizers.to_vec()));
        }
    }
}

/// Whether anything outside `metadata` and `status` differs: such a change bumps `generation`.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    !equal_except(old, new, |key| matches!(key, "metadata" | "status" | "apiVersion" | "kind"))
}

/// Equality that ignores `resourceVersion` and managers' timestamps, to recognise no-op writes.
pub fn same_content(old: &Value, new: &Value) -> bool {
    if !equal_except(old, new, |key| key == "metadata") {
        return false;
    }
    let (Some(old), Some(new)) = (old.get("metadata"), new.get("metadata")) else {
        return old.get("metadata") == new.get("metadata");
    };
    if !equal_except(old, new, |key| matches!(key, "resourceVersion" | "managedFields")) {
        return false;
    }
    // Ownership changes (a manager sharing a field by applying the same value) are changes;
    // a manager's new timestamp alone is not. No entries and an empty list are the same.
    let entries = |meta: &Value| meta.get("managedFields").cloned().unwrap_or_else(|| Value::Array(Vec::new()));
    match (old.get("managedFields"), new.get("managedFields")) {
        (Some(Value::Array(old)), Some(Value::Array(new))) => {
            old.len() == new.len() && old.iter().zip(new).all(|(old, new)| equal_except(old, new, |key| key == "time"))
        }
        _ => entries(old) == entries(new),
    }
}

/// Whether two values are equal but for the keys `skip` names, when both are objects; compared
/// in place, as these checks run on every write and objects can be large.
fn equal_except(a: &Value, b: &Value, skip: impl Fn(&str) -> bool) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a == b };
    let kept = |map: &serde_json::Map<String, Value>| map.keys().filter(|key| !skip(key)).count();
    kept(a) == kept(b) && a.iter().filter(|(key, _)| !skip(key)).all(|(key, value)| b.get(key) == Some(value))
}

/// Removes the field at a dotted path such as `spec.containers[1].foo` (the form unknown-field
/// reports use), so dropped fields are not stored, as the real server's decoder drops them.
pub fn remove_field_path(object: &mut Value, path: &str) {
    let mut segments: Vec<(String, Option<usize>)> = Vec::new();
    for part in path.split('.') {
        match part.split_once('[') {
            Some((name, rest)) => {
                segments.push((name.to_string(), None));
                for index in rest.trim_end_matches(']').split("][") {
                    match index.parse() {
                        Ok(i) => segments.push((String::new(), Some(i))),
                        Err(_) => return,
                    }
                }
            }
            None => segments.push((part.to_string(), None)),
        }
    }
    let Some((last, None)) = segments.pop() else { return };
    let mut current = object;
    for (name, index) in segments {
        let next = match index {
            Some(i) => current.get_mut(i),
            None if name.is_empty() => Some(current),
            None => current.get_mut(&name),
        };
        match next {
            Some(v) => current = v,
            None => return,
        }
    }
    if let Some(map) = current.as_object_mut() {
        map.remove(&last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subdomain_names() {
        assert_eq!(validate_name(NameRule::Subdomain, "review-a.b", "metadata.name"), None);
        let cause = validate_name(NameRule::Subdomain, "Bad_Name", "metadata.name").unwrap();
        assert_eq!(cause.field, "metadata.name");
        assert!(cause.message.starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
        assert!(validate_name(NameRule::Subdomain, &"a".repeat(254), "metadata.name").is_some());
        assert!(validate_name(NameRule::Subdomain, "-a", "metadata.name").is_some());
    }

    #[test]
    fn label_and_path_names() {
        assert_eq!(validate_name(NameRule::Label, "demo", "metadata.name"), None);
        assert!(validate_name(NameRule::Label, "a.b", "metadata.name").unwrap().message.contains("RFC 1123 label"));
        assert!(validate_name(NameRule::Label, &"a".repeat(64), "metadata.name").is_some());
        assert_eq!(validate_name(NameRule::Path, "system:admin", "metadata.name"), None);
        assert!(validate_name(NameRule::Path, "a/b", "metadata.name").is_some());
        assert!(validate_name(NameRule::Path, "..", "metadata.name").is_some());
        assert!(validate_name(NameRule::Path, "a%b", "metadata.name").is_some());
    }

    #[test]
    fn generated_suffixes_use_the_safe_alphabet() {
        let s = generated_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn spec_changes_and_no_ops() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"s": 1}});
        let mut b = a.clone();
        b["metadata"]["labels"]["a"] = json!("2");
        b["status"]["s"] = json!(2);
        assert!(!spec_changed(&a, &b));
        b["spec"]["x"] = json!(2);
        assert!(spec_changed(&a, &b));
        let mut c = a.clone();
        c["metadata"]["managedFields"] = json!([]);
        c["metadata"]["resourceVersion"] = json!("9");
        assert!(same_content(&a, &c));
        c["metadata"]["managedFields"] = json!([{"manager": "m", "time": "2026-01-01T00:00:00Z"}]);
        let mut d = c.clone();
        d["metadata"]["managedFields"][0]["time"] = json!("2026-01-02T00:00:00Z");
        assert!(same_content(&c, &d), "a new timestamp alone is no change");
        d["metadata"]["managedFields"][0]["manager"] = json!("n");
        assert!(!same_content(&c, &d), "new ownership is a change");
        let mut e = c.clone();
        e["metadata"]["managedFields"].as_array_mut().unwrap().push(json!({"manager": "n"}));
        assert!(!same_content(&c, &e), "a new manager is a change");
        assert!(!same_content(&c, &a), "entries where there were none are a change");
        let mut f = a.clone();
        f["metadata"]["labels"]["a"] = json!("2");
        assert!(!same_content(&a, &f), "metadata besides the version and managers counts");
        let bare = json!({"spec": {"x": 1}, "status": {"s": 1}});
        assert!(!same_content(&a, &bare) && !same_content(&bare, &a), "metadata where there was none");
        assert!(same_content(&bare, &bare.clone()));
    }

    #[test]
    fn removes_reported_unknown_fields() {
        let mut o = json!({"bogus": 1, "spec": {"containers": [{"name": "a"}, {"name": "b", "foo": 2}]}});
        remove_field_path(&mut o, "bogus");
        remove_field_path(&mut o, "spec.containers[1].foo");
        remove_field_path(&mut o, "spec.missing[3].x");
        remove_field_path(&mut o, "spec.containers[x].y");
        assert_eq!(o, json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}));
    }

    #[test]
    fn finalizer_helpers() {
        let mut o = json!({"metadata": {"finalizers": ["a", "b"]}});
        assert_eq!(finalizers(&o), vec!["a", "b"]);
        set_finalizers(&mut o, &[]);
        assert!(o["metadata"].get("finalizers").is_none());
        assert_eq!(str_at(&o, "/metadata/name"), "");
    }
}
