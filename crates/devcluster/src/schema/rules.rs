//! `x-kubernetes-validations` CEL rules: compiled and evaluated with `kube-cel`, with failures turned
//! into causes worded like the apiextensions server's CEL validator.

use super::fields::{self, ROOT_FIELD};
use super::sites::RuleSites;
use crate::error::Cause;
use kube_cel::{CompiledSchema, ErrorKind, RootContext, ValidationError, Validator};
use serde_json::{Value, json};
use std::collections::HashMap;

thread_local! {
    /// `Validator` holds a CEL context with every Kubernetes library registered: built once per thread.
    static VALIDATOR: Validator = Validator::new();
}

/// What the error of a rule needs besides what `kube-cel` reports: the type of the schema node the
/// rule is declared on (the "bad value" the real server prints) and its static message.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    pub node_type: String,
    pub message: Option<String>,
    /// The rule's `fieldPath`, which `kube-cel` appends to the node's path.
    pub field_path: Option<String>,
    /// Whether the rule uses `oldSelf`; such rules are never ratcheted.
    pub transition: bool,
    /// The rule as written, when the one evaluated was rewritten ([`optional_old_self`]).
    pub written: Option<String>,
}

/// Rules by their expression text.
pub type RuleIndex = HashMap<String, RuleInfo>;

/// Checks that every rule (and `messageExpression`) compiles, indexing them for error reporting.
/// A failure is a cause whose field points at the rule inside `openAPIV3Schema`.
pub fn index_rules(schema: &Value, pointer: &str, index: &mut RuleIndex, causes: &mut Vec<Cause>) {
    let Some(node) = schema.as_object() else { return };
    if let Some(rules) = node.get("x-kubernetes-validations").and_then(Value::as_array) {
        let node_type = node.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        for (i, rule) in rules.iter().enumerate() {
            let rule_pointer = format!("{pointer}.x-kubernetes-validations[{i}]");
            check_rule(rule, &rule_pointer, causes);
            if let Some(text) = rule.get("rule").and_then(Value::as_str) {
                let evaluated = evaluated_rule(rule, text);
                let info = RuleInfo {
                    node_type: node_type.clone(),
                    message: rule.get("message").and_then(Value::as_str).map(str::to_string),
                    field_path: rule.get("fieldPath").and_then(Value::as_str).map(str::to_string),
                    transition: text.contains("oldSelf"),
                    written: (evaluated != text).then(|| text.to_string()),
                };
                index.entry(evaluated).or_insert(info);
            }
        }
    }
    for (key, sub) in node {
        match (key.as_str(), sub) {
            ("properties", Value::Object(props)) => {
                for (name, s) in props {
                    index_rules(s, &format!("{pointer}.properties[{name}]"), index, causes);
                }
            }
            ("items" | "additionalProperties", s) => index_rules(s, &format!("{pointer}.{key}"), index, causes),
            ("allOf" | "anyOf" | "oneOf", Value::Array(list)) => {
                for (i, s) in list.iter().enumerate() {
                    index_rules(s, &format!("{pointer}.{key}[{i}]"), index, causes);
                }
            }
            _ => {}
        }
    }
}

/// What `oldSelf` stands for in a rule with `optionalOldSelf: true`: an optional, empty on create
/// and where the old object lacks the value. (`kube-cel` binds such an `oldSelf` to `null`, so the
/// rule is rewritten to wrap it.)
const OPTIONAL_OLD_SELF: &str = "(oldSelf == null ? optional.none() : optional.of(oldSelf))";

/// The text evaluated for a rule: as written, or with `oldSelf` made an optional.
fn evaluated_rule(rule: &Value, text: &str) -> String {
    if rule.get("optionalOldSelf").and_then(Value::as_bool) != Some(true) {
        return text.to_string();
    }
    static OLD_SELF: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\boldSelf\b").expect("a valid pattern"));
    OLD_SELF.replace_all(text, OPTIONAL_OLD_SELF).into_owned()
}

/// The schema as evaluated: every rule with `optionalOldSelf: true` rewritten by [`evaluated_rule`].
pub fn optional_old_self(schema: &Value) -> Value {
    match schema {
        Value::Object(node) => {
            let mut out = serde_json::Map::new();
            for (key, value) in node {
                let value = match (key.as_str(), value) {
                    ("x-kubernetes-validations", Value::Array(rules)) => Value::Array(
                        rules
                            .iter()
                            .map(|rule| {
                                let mut rule = rule.clone();
                                if let Some(text) = rule.get("rule").and_then(Value::as_str).map(str::to_string) {
                                    rule["rule"] = Value::String(evaluated_rule(&rule, &text));
                                }
                                rule
                            })
                            .collect(),
                    ),
                    (_, value) => optional_old_self(value),
                };
                out.insert(key.clone(), value);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(optional_old_self).collect()),
        other => other.clone(),
    }
}

/// The compiled rules as evaluated: without the subtrees that hold no rule and whose values
/// convert to CEL as they would without a schema. `kube-cel` converts the value of every node it
/// walks into CEL (and binds it as `self`) whether or not the node has rules, so walking such a
/// subtree only costs time; its values still reach the rules above it, converted alike. The
/// errors are the same, since no rule is dropped.
pub fn walked_schema(mut compiled: CompiledSchema) -> CompiledSchema {
    drop_rule_free_subtrees(&mut compiled);
    compiled
}

/// Drops the rule-free children of `node`; whether `node` itself is rule-free and converts as
/// plain JSON does (no rule, format, default, map keys or embedded resource).
fn drop_rule_free_subtrees(node: &mut CompiledSchema) -> bool {
    // With both `properties` and `additionalProperties` (not structural), a dropped property would
    // be converted and walked with the other schema: leave such a node whole.
    if node.additional_properties.is_none() {
        node.properties.retain(|_, child| !drop_rule_free_subtrees(child));
    } else {
        for child in node.properties.values_mut() {
            drop_rule_free_subtrees(child);
        }
    }
    if node.items.as_deref_mut().is_some_and(drop_rule_free_subtrees) {
        node.items = None;
    }
    if node.additional_properties.as_deref_mut().is_some_and(drop_rule_free_subtrees) {
        node.additional_properties = None;
    }
    // Branches only add rules to walk; they do not change how the node converts.
    for branches in [&mut node.all_of, &mut node.one_of, &mut node.any_of] {
        branches.retain_mut(|branch| !drop_rule_free_subtrees(branch));
    }
    node.validations.is_empty()
        && node.properties.is_empty()
        && node.items.is_none()
        && node.additional_properties.is_none()
        && node.all_of.is_empty()
        && node.one_of.is_empty()
        && node.any_of.is_empty()
        && matches!(node.format, kube_cel::SchemaFormat::None | kube_cel::SchemaFormat::IntOrString)
        && node.default.is_none()
        && !node.is_map
        && !node.embedded_resource
}

fn check_rule(rule: &Value, pointer: &str, causes: &mut Vec<Cause>) {
    let Some(text) = rule.get("rule").and_then(Value::as_str) else {
        causes.push(fields::required(&format!("{pointer}.rule"), ""));
        return;
    };
    let compiled = kube_cel::compile_schema(&json!({ "x-kubernetes-validations": [rule] }));
    for error in compiled.compilation_errors() {
        let (field, bad) = match error {
            kube_cel::CompilationError::MessageExpressionParse { message_expression, .. } => {
                (format!("{pointer}.messageExpression"), message_expression.clone())
            }
            _ => (format!("{pointer}.rule"), text.to_string()),
        };
        let detail = format!("compilation failed: {}", compilation_detail(error));
        causes.push(fields::invalid(&field, &Value::String(bad), &detail));
    }
    // Macros the CEL library parses but cannot evaluate would fail every object of the CRD: they
    // are refused when the CRD is stored instead.
    if let Some(unsupported) = unsupported_macro(text) {
        let detail = format!("compilation failed: the dev cluster's CEL library does not support {unsupported}");
        causes.push(fields::invalid(&format!("{pointer}.rule"), &Value::String(text.to_string()), &detail));
    }
}

/// The optional-type macro `rule` calls that the CEL library does not evaluate, if any.
fn unsupported_macro(rule: &str) -> Option<&'static str> {
    static CALL: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\.(optMap|optFlatMap)\s*\(").expect("a valid pattern"));
    CALL.captures(rule).and_then(|call| match call.get(1)?.as_str() {
        "optMap" => Some("optMap"),
        _ => Some("optFlatMap"),
    })
}

fn compilation_detail(error: &kube_cel::CompilationError) -> String {
    match error {
        kube_cel::CompilationError::Parse { source, .. }
        | kube_cel::CompilationError::MessageExpressionParse { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// Evaluates every rule of `sites` against `object` (with `oldSelf` from `old` where it exists).
/// `schema` is the source of `sites`, used to spell map entries as the server does.
pub fn evaluate(
    schema: &Value,
    sites: &RuleSites,
    index: &RuleIndex,
    context: &RootContext,
    object: &Value,
    old: Option<&Value>,
) -> Vec<Cause> {
    if sites.is_empty() {
        return Vec::new();
    }
    let errors = VALIDATOR.with(|validator| sites.evaluate(validator, context, object, old));
    causes(&errors, schema, index, object, old)
}

/// The causes of failed rules, without those ratcheted on an update, in the server's spelling.
fn causes(
    errors: &[ValidationError],
    schema: &Value,
    index: &RuleIndex,
    object: &Value,
    old: Option<&Value>,
) -> Vec<Cause> {
    errors
        .iter()
        .filter(|e| !old.is_some_and(|old| is_ratcheted(e, index, object, old)))
        .map(|e| {
            let mut cause = to_cause(e, index);
            if cause.field != ROOT_FIELD {
                cause.field = server_path(schema, &cause.field);
            }
            cause
        })
        .collect()
}

/// Whether a failed rule is ignored on update because the value it is declared on did not change
/// (validation ratcheting); transition rules are always enforced.
fn is_ratcheted(error: &ValidationError, index: &RuleIndex, object: &Value, old: &Value) -> bool {
    let Some(info) = index.get(&error.rule) else { return false };
    if info.transition || error.kind != ErrorKind::ValidationFailure {
        return false;
    }
    let node_path = match info.field_path.as_deref() {
        Some(fp) => {
            let suffix = if fp.starts_with('.') { fp.to_string() } else { format!(".{fp}") };
            match error.field_path.strip_suffix(&suffix) {
                Some(base) => base.to_string(),
                None if error.field_path == fp => String::new(),
                None => return false,
            }
        }
        None => error.field_path.clone(),
    };
    match (lookup(object, &node_path), lookup(old, &node_path)) {
        (Some(new), Some(old)) => new == old,
        _ => false,
    }
}

/// Rewrites a `kube-cel` path (`spec.labels.app`) in the server's `field.Path` spelling, where map
/// entries are keys (`spec.labels[app]`). A key of a map of scalars takes the rest of the path, so
/// keys containing dots survive.
fn server_path(schema: &Value, path: &str) -> String {
    let mut node = Some(schema);
    let mut out = String::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let (i, tail) = after.split_once(']').unwrap_or((after, ""));
            out.push_str(&format!("[{i}]"));
            node = node.and_then(|n| n.get("items"));
            rest = tail.strip_prefix('.').unwrap_or(tail);
            continue;
        }
        let additional = node.and_then(|n| n.get("additionalProperties")).filter(|a| a.is_object());
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let name = &rest[..end];
        let property = node.and_then(|n| n.get("properties")).and_then(|p| p.get(name));
        match (property, additional) {
            (None, Some(values)) => {
                let scalar_values = values.get("properties").is_none() && values.get("items").is_none();
                let key_end = if scalar_values { rest.len() } else { end };
                out.push_str(&format!("[{}]", &rest[..key_end]));
                node = Some(values);
                rest = &rest[key_end..];
            }
            _ => {
                out = fields::child(&out, name);
                node = property;
                rest = &rest[end..];
            }
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    out
}

/// The value at a `kube-cel` error path such as `spec.items[0].name`.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indices) = part.split_once('[').map_or((part, ""), |(n, rest)| (n, rest));
        if !name.is_empty() {
            current = current.get(name)?;
        }
        for i in indices.split('[').filter(|i| !i.is_empty()) {
            current = current.get(i.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(current)
}

/// The real server's `ruleErrorString`: the rule's message if it has one, else the expression.
fn rule_error_string(error: &ValidationError, info: Option<&RuleInfo>) -> String {
    match info.and_then(|i| i.message.as_deref()).map(str::trim) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => written_rule(error, info),
    }
}

/// The rule as the CRD wrote it.
fn written_rule(error: &ValidationError, info: Option<&RuleInfo>) -> String {
    info.and_then(|i| i.written.clone()).unwrap_or_else(|| error.rule.clone()).trim().to_string()
}

fn to_cause(error: &ValidationError, index: &RuleIndex) -> Cause {
    let info = index.get(&error.rule);
    let path = error.field_path.trim_start_matches('.');
    let node_type = Value::String(info.map(|i| i.node_type.clone()).unwrap_or_default());
    match error.kind {
        ErrorKind::ValidationFailure => {
            let message = if error.message.trim().is_empty() {
                format!("failed rule: {}", written_rule(error, info))
            } else {
                // `kube-cel` quotes the rule it evaluated; the user wrote the other one.
                let written = info.and_then(|i| i.written.as_deref());
                written.map_or_else(|| error.message.clone(), |w| error.message.replace(error.rule.trim(), w.trim()))
            };
            match error.reason.as_deref() {
                Some("FieldValueForbidden") => fields::forbidden(path, &message),
                Some("FieldValueRequired") => fields::required(path, &message),
                Some("FieldValueDuplicate") => fields::duplicate(path, &node_type),
                _ => fields::invalid(path, &node_type, &message),
            }
        }
        ErrorKind::EvaluationError => {
            let cause = error.message.strip_prefix("rule evaluation error: ").unwrap_or(&error.message);
            let detail = format!("{} evaluating rule: {}", lower_first(cause), rule_error_string(error, info));
            fields::invalid(path, &node_type, &detail)
        }
        _ => fields::invalid(path, &node_type, &error.message),
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The error the real server adds instead of running CEL rules on an object with blocking errors.
pub fn blocking_error() -> Cause {
    fields::invalid(
        "",
        &Value::Null,
        "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
    )
}

/// Type, required and enum errors make CEL results meaningless, so the real server skips the rules.
pub fn is_blocking(cause: &Cause) -> bool {
    matches!(cause.reason.as_str(), "FieldValueNotSupported" | "FieldValueRequired" | "FieldValueTypeInvalid")
}

/// The root context for a CRD version: CEL's `apiVersion`, `apiGroup` and `kind` at the root.
pub fn root_context(group: &str, version: &str, kind: &str) -> RootContext {
    RootContext { api_version: format!("{group}/{version}"), api_group: group.to_string(), kind: kind.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_field_constant_matches_nil_path() {
        assert_eq!(blocking_error().field, ROOT_FIELD);
        assert_eq!(
            blocking_error().message,
            "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
        );
    }

    #[test]
    fn compile_errors_name_the_rule() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.a <="}, {"rule": "true", "messageExpression": "'x' +"}, {"message": "no rule"}]}}});
        let mut index = RuleIndex::new();
        let mut causes = Vec::new();
        index_rules(&schema, "openAPIV3Schema", &mut index, &mut causes);
        assert_eq!(causes.len(), 3, "{causes:?}");
        assert_eq!(causes[0].field, "openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule");
        assert!(
            causes[0].message.starts_with("Invalid value: \"self.a <=\": compilation failed: "),
            "{}",
            causes[0].message
        );
        assert_eq!(causes[1].field, "openAPIV3Schema.properties[spec].x-kubernetes-validations[1].messageExpression");
        assert_eq!(causes[2].field, "openAPIV3Schema.properties[spec].x-kubernetes-validations[2].rule");
        assert_eq!(causes[2].reason, "FieldValueRequired");
        assert_eq!(index.get("true").map(|i| i.node_type.as_str()), Some("object"));
    }

    #[test]
    fn optional_macros_the_library_cannot_evaluate_are_named() {
        assert_eq!(unsupported_macro("oldSelf.optMap(o, o.level).orValue(0) >= 0"), Some("optMap"));
        assert_eq!(unsupported_macro("x.optFlatMap (v, optional.of(v))"), Some("optFlatMap"));
        assert_eq!(unsupported_macro("oldSelf.orValue(self).level >= 0"), None);
        assert_eq!(unsupported_macro("self.optMapping == 1"), None);
    }

    #[test]
    fn lower_first_handles_empty_and_unicode() {
        assert_eq!(lower_first(""), "");
        assert_eq!(lower_first("No such key: a"), "no such key: a");
    }

    #[test]
    fn map_entries_are_spelled_as_keys() {
        let schema = json!({"properties": {"spec": {"properties": {
            "labels": {"additionalProperties": {"type": "string"}},
            "groups": {"additionalProperties": {"properties": {"n": {"type": "integer"}}}},
            "items": {"items": {"properties": {"a": {}}}}
        }}}});
        assert_eq!(server_path(&schema, "spec.labels.app.kubernetes.io/name"), "spec.labels[app.kubernetes.io/name]");
        assert_eq!(server_path(&schema, "spec.groups.g1.n"), "spec.groups[g1].n");
        assert_eq!(server_path(&schema, "spec.items[2].a"), "spec.items[2].a");
        assert_eq!(server_path(&schema, "spec.unknown.x"), "spec.unknown.x");
        assert_eq!(server_path(&schema, "spec"), "spec");
    }

    #[test]
    fn lookup_follows_fields_and_indices() {
        let v = json!({"spec": {"items": [{"n": 1}, {"n": [7, 8]}]}});
        assert_eq!(lookup(&v, ""), Some(&v));
        assert_eq!(lookup(&v, "spec.items[0].n"), Some(&json!(1)));
        assert_eq!(lookup(&v, "spec.items[1].n[1]"), Some(&json!(8)));
        assert_eq!(lookup(&v, "spec.items[2]"), None);
        assert_eq!(lookup(&v, "spec.items[x]"), None);
    }

    #[test]
    fn blocking_reasons() {
        assert!(is_blocking(&fields::required("a", "")));
        assert!(!is_blocking(&fields::too_long("a", 1)));
    }

    /// A schema whose rules at the root read values below subtrees that hold no rule: a format, a
    /// map with keys CEL would escape as field names, an escaped field name, a default, an embedded
    /// resource, and rules on list items.
    fn mixed_schema() -> Value {
        json!({"type": "object", "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "plain": {"type": "object", "properties": {
                    "x-y": {"type": "string"},
                    "n": {"type": "integer"},
                    "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}}
                }},
                "when": {"type": "string", "format": "date-time"},
                "every": {"type": "string", "format": "duration"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "mode": {"type": "string", "default": "fast"},
                "embedded": {"type": "object", "x-kubernetes-embedded-resource": true,
                    "x-kubernetes-preserve-unknown-fields": true},
                "items": {"type": "array", "items": {"type": "object",
                    "properties": {"name": {"type": "string"}, "note": {"type": "string"}},
                    "x-kubernetes-validations": [{"rule": "self.name != 'bad'", "message": "no bad items"}]}}
            }}
        },
        "x-kubernetes-validations": [
            {"rule": "!has(self.spec.plain) || self.spec.plain.x__dash__y != 'no'", "message": "plain"},
            {"rule": "!has(self.spec.plain) || !has(self.spec.plain.list) || size(self.spec.plain.list) < 3", "message": "list"},
            {"rule": "!has(self.spec.when) || self.spec.when < timestamp('2030-01-01T00:00:00Z')", "message": "when"},
            {"rule": "!has(self.spec.every) || self.spec.every < duration('1h')", "message": "every"},
            {"rule": "!has(self.spec.labels) || !('a.b' in self.spec.labels) || self.spec.labels['a.b'] == 'ok'", "message": "labels"},
            {"rule": "self.spec.mode == 'fast'", "message": "mode"},
            {"rule": "!has(self.spec.embedded) || self.spec.embedded.kind == ''", "message": "embedded"},
            {"rule": "!has(oldSelf.spec.plain) || !has(self.spec.plain) || self.spec.plain.n >= oldSelf.spec.plain.n", "message": "grows"}
        ]})
    }

    fn messages(compiled: &CompiledSchema, object: &Value, old: Option<&Value>) -> Vec<String> {
        let result = VALIDATOR.with(|v| v.validate_compiled(compiled, object, old));
        let mut messages: Vec<String> = result
            .err()
            .map(|e| e.into_vec())
            .unwrap_or_default()
            .into_iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect();
        messages.sort();
        messages
    }

    #[test]
    fn the_walked_schema_keeps_only_subtrees_with_rules_or_conversions() {
        let walked = walked_schema(kube_cel::compile_schema(&mixed_schema()));
        assert!(!walked.properties.contains_key("metadata"));
        let spec = &walked.properties["spec"];
        let kept: std::collections::BTreeSet<&str> = spec.properties.keys().map(String::as_str).collect();
        assert_eq!(kept, ["embedded", "every", "items", "labels", "mode", "when"].into());
        assert!(spec.properties["labels"].additional_properties.is_none(), "a map's plain values convert alike");
        let item = spec.properties["items"].items.as_deref().expect("items with rules are walked");
        assert!(item.properties.is_empty(), "rule-free fields of an item are not walked");
    }

    #[test]
    fn the_walked_schema_reports_what_the_whole_schema_reports() {
        let whole = kube_cel::compile_schema(&mixed_schema());
        let walked = walked_schema(kube_cel::compile_schema(&mixed_schema()));
        let good = json!({"metadata": {"name": "a"}, "spec": {
            "plain": {"x-y": "yes", "n": 2, "list": [{"a": "1"}]},
            "when": "2029-05-01T00:00:00Z", "every": "30m", "labels": {"a.b": "ok", "c": "d"},
            "mode": "fast", "embedded": {"spec": {}}, "items": [{"name": "good", "note": "x"}]
        }});
        let bad = json!({"metadata": {"name": "a"}, "spec": {
            "plain": {"x-y": "no", "n": 1, "list": [{"a": "1"}, {"a": "2"}, {"a": "3"}]},
            "when": "2031-05-01T00:00:00Z", "every": "2h", "labels": {"a.b": "nope"},
            "embedded": {"kind": "Pod"}, "items": [{"name": "good"}, {"name": "bad"}]
        }});
        let cases = [(&good, None), (&bad, None), (&bad, Some(&good)), (&good, Some(&bad))];
        for (object, old) in cases {
            assert_eq!(messages(&walked, object, old), messages(&whole, object, old), "object {object} old {old:?}");
        }
        assert!(messages(&whole, &good, None).is_empty());
        // Every rule fails on `bad` but the one on `mode`, which its default satisfies.
        let failed = [
            ": embedded",
            ": every",
            ": grows",
            ": labels",
            ": list",
            ": plain",
            ": when",
            "spec.items[1]: no bad items",
        ];
        assert_eq!(messages(&whole, &bad, Some(&good)), failed);
    }

    /// A schema shaped like a custom resource with a status: rules on the root that read only the
    /// status, an immutable spec, a nested rule, status rules with field paths, rules on list
    /// items and map values, formats and defaults below rules.
    fn resource_schema() -> Value {
        json!({"type": "object", "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object",
                "x-kubernetes-validations": [{"rule": "self.owner == oldSelf.owner && self.source == oldSelf.source",
                    "message": "spec is immutable"}],
                "properties": {
                    "owner": {"type": "string"},
                    "timeout": {"type": "string", "default": "10m"},
                    "source": {"type": "object",
                        "x-kubernetes-validations": [{"rule": "!has(self.previous) || self.previous != self.head",
                            "fieldPath": ".previous", "message": "previous must differ from head"}],
                        "properties": {"head": {"type": "string"}, "previous": {"type": "string"}}},
                    "steps": {"type": "array", "items": {"type": "object",
                        "x-kubernetes-validations": [{"rule": "self.name.size() > 0", "message": "a step has a name"}],
                        "properties": {"name": {"type": "string"}, "at": {"type": "string", "format": "date-time"}}}},
                    "limits": {"type": "object", "additionalProperties": {"type": "integer",
                        "x-kubernetes-validations": [{"rule": "self >= 0", "message": "a limit is not negative"}]}}
                }},
            "status": {"type": "object",
                "x-kubernetes-validations": [
                    {"rule": "!has(self.phase) || self.phase != 'Done' || has(self.result)", "message": "Done has a result"},
                    {"rule": "!has(oldSelf.phase) || oldSelf.phase != 'Done' || (has(self.phase) && self.phase == 'Done')",
                        "message": "Done is final"},
                    {"rule": "!has(oldSelf.revision) || (has(self.revision) && self.revision == oldSelf.revision)",
                        "fieldPath": ".revision", "message": "revision is final once set"},
                    {"rule": "!has(self.startTime) || self.startTime > timestamp('2020-01-01T00:00:00Z')",
                        "messageExpression": "'started too early: ' + string(self.startTime)"}
                ],
                "properties": {
                    "phase": {"type": "string"},
                    "revision": {"type": "string"},
                    "message": {"type": "string"},
                    "startTime": {"type": "string", "format": "date-time"},
                    "result": {"type": "object",
                        "x-kubernetes-validations": [{"rule": "self.verdict != 'Reject' || size(self.body) > 0",
                            "message": "a rejection has a body"}],
                        "properties": {"verdict": {"type": "string"}, "body": {"type": "string", "default": ""},
                            "at": {"type": "string", "format": "date-time"}}}
                }}
        },
        "x-kubernetes-validations": [
            {"rule": "has(self.status) || !has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase != 'Done'",
                "fieldPath": ".status", "message": "Done is final"},
            {"rule": "has(self.status) || !has(oldSelf.status) || !has(oldSelf.status.revision)",
                "fieldPath": ".status.revision", "message": "revision is final once set"}
        ]})
    }

    fn resource(spec: Value, status: Option<Value>) -> Value {
        let mut object = json!({"metadata": {"name": "r"}, "spec": spec});
        if let Some(status) = status {
            object["status"] = status;
        }
        object
    }

    /// Objects that pass and fail each rule, alone and as updates of one another.
    fn resources() -> Vec<Value> {
        let spec = json!({"owner": "a", "timeout": "10m", "source": {"head": "h2", "previous": "h1"},
            "steps": [{"name": "one", "at": "2026-01-01T00:00:00Z"}], "limits": {"cpu": 2}});
        let mut other_owner = spec.clone();
        other_owner["owner"] = json!("b");
        let mut bad_spec = spec.clone();
        bad_spec["source"]["previous"] = json!("h2");
        bad_spec["steps"] = json!([{"name": "one"}, {"name": ""}]);
        bad_spec["limits"] = json!({"cpu": -1, "memory": 4});
        vec![
            resource(spec.clone(), None),
            resource(
                spec.clone(),
                Some(json!({"phase": "Running", "revision": "7", "startTime": "2026-01-01T00:00:00Z"})),
            ),
            resource(
                spec.clone(),
                Some(json!({"phase": "Done", "revision": "7",
                "result": {"verdict": "Accept", "body": "", "at": "2026-01-02T00:00:00Z"}})),
            ),
            resource(spec.clone(), Some(json!({"phase": "Done", "revision": "8"}))),
            resource(
                spec.clone(),
                Some(json!({"phase": "Running", "startTime": "2019-01-01T00:00:00Z",
                "result": {"verdict": "Reject", "body": ""}})),
            ),
            resource(other_owner, Some(json!({"phase": "Running", "revision": "7"}))),
            resource(bad_spec.clone(), None),
            resource(bad_spec, Some(json!({"phase": "Running", "revision": "7", "message": "m"}))),
        ]
    }

    fn spelled(causes: Vec<Cause>) -> Vec<String> {
        let mut spelled: Vec<String> = causes.into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        spelled.sort();
        spelled
    }

    /// What one `kube-cel` walk of the whole schema from the root reports, ratcheted as `evaluate`
    /// ratchets: the oracle of the rule sites.
    fn walked_from_the_root(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<String> {
        let evaluated = optional_old_self(schema);
        let (mut index, mut compile_errors) = (RuleIndex::new(), Vec::new());
        index_rules(schema, "openAPIV3Schema", &mut index, &mut compile_errors);
        let whole = kube_cel::compile_schema(&evaluated);
        let context = root_context("example.dev", "v1", "Example");
        let result = VALIDATOR.with(|v| v.validate_compiled_with_context(&whole, object, old, Some(&context)));
        let errors = result.err().map(|e| e.into_vec()).unwrap_or_default();
        spelled(causes(&errors, schema, &index, object, old))
    }

    fn by_sites(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<String> {
        let (mut index, mut causes) = (RuleIndex::new(), Vec::new());
        index_rules(schema, "openAPIV3Schema", &mut index, &mut causes);
        let sites = RuleSites::compile(&optional_old_self(schema));
        let context = root_context("example.dev", "v1", "Example");
        spelled(evaluate(schema, &sites, &index, &context, object, old))
    }

    #[test]
    fn rule_sites_report_what_a_walk_from_the_root_reports() {
        let objects = resources();
        let mut failures = 0;
        for object in &objects {
            assert_eq!(
                by_sites(&resource_schema(), object, None),
                walked_from_the_root(&resource_schema(), object, None),
                "created: {object}"
            );
            failures += walked_from_the_root(&resource_schema(), object, None).len();
            for old in &objects {
                assert_eq!(
                    by_sites(&resource_schema(), object, Some(old)),
                    walked_from_the_root(&resource_schema(), object, Some(old)),
                    "updated: {old} to {object}"
                );
                failures += walked_from_the_root(&resource_schema(), object, Some(old)).len();
            }
        }
        assert!(failures > 20, "the objects fail rules: {failures}");
        // Every rule fails somewhere.
        let all: std::collections::BTreeSet<String> = objects
            .iter()
            .flat_map(|object| objects.iter().flat_map(move |old| by_sites(&resource_schema(), object, Some(old))))
            .chain(objects.iter().flat_map(|object| by_sites(&resource_schema(), object, None)))
            .collect();
        for message in [
            "spec is immutable",
            "previous must differ from head",
            "a step has a name",
            "a limit is not negative",
            "Done has a result",
            "Done is final",
            "revision is final once set",
            "started too early",
            "a rejection has a body",
        ] {
            assert!(all.iter().any(|found| found.contains(message)), "no object fails {message:?}: {all:#?}");
        }
        for (object, old) in [(&objects[1], None), (&objects[3], Some(&objects[2]))] {
            assert_eq!(by_sites(&mixed_schema(), object, old), walked_from_the_root(&mixed_schema(), object, old));
        }
    }

    #[test]
    fn only_root_rules_see_the_kind() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "kind == 'Example'", "message": "spec"}]}},
            "x-kubernetes-validations": [{"rule": "kind == 'Example' && apiVersion == 'example.dev/v1'", "message": "root"}]});
        let object = json!({"metadata": {"name": "r"}, "spec": {"a": 1}});
        let causes = by_sites(&schema, &object, None);
        assert_eq!(causes, walked_from_the_root(&schema, &object, None));
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert!(causes[0].starts_with("spec: "), "{causes:?}");
    }

    #[test]
    fn removing_a_final_status_is_caught_at_the_root() {
        let done = &resources()[2];
        let mut removed = done.clone();
        removed.as_object_mut().map(|fields| fields.remove("status"));
        assert_eq!(
            by_sites(&resource_schema(), &removed, Some(done)),
            [
                "status.revision: Invalid value: \"object\": revision is final once set",
                "status: Invalid value: \"object\": Done is final",
            ]
        );
    }

    #[test]
    fn a_rule_erring_on_an_unchanged_value_is_ratcheted_unless_it_reads_old_self() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {
            "plain": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.a / self.b > 0", "message": "ratio"}]},
            "moving": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.a == oldSelf.a || self.a / self.b > 0", "message": "ratio"}]},
            "capped": {"type": "object", "properties": {"a": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "oldSelf.a < 3", "message": "capped"}]}
        }}}});
        let zero = json!({"metadata": {"name": "r"}, "spec": {"plain": {"a": 1, "b": 0}, "moving": {"a": 1, "b": 0}}});
        let capped = json!({"metadata": {"name": "r"}, "spec": {"capped": {"a": 5}}});
        // A rule reading oldSelf runs on an unchanged value too.
        assert_eq!(by_sites(&schema, &capped, Some(&capped)), ["spec.capped: Invalid value: \"object\": capped"]);
        let mut changed = zero.clone();
        changed["spec"]["plain"]["a"] = json!(2);
        // Division by zero is an evaluation error, reported on create and on a changed value.
        assert_eq!(by_sites(&schema, &zero, None).len(), 1, "{:?}", by_sites(&schema, &zero, None));
        assert!(by_sites(&schema, &changed, Some(&zero))[0].starts_with("spec.plain: Invalid value"));
        assert_eq!(by_sites(&schema, &changed, Some(&zero)).len(), 1);
        // Unchanged, the plain rule is ratcheted; the one reading oldSelf still runs (and passes).
        assert_eq!(by_sites(&schema, &zero, Some(&zero)), Vec::<String>::new());
        let mut moved = zero.clone();
        moved["spec"]["moving"]["a"] = json!(3);
        assert!(by_sites(&schema, &moved, Some(&zero))[0].starts_with("spec.moving: Invalid value"));
    }
}
