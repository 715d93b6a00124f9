//! Where a schema's CEL rules are evaluated, and how much of the object each evaluation binds.
//!
//! `kube-cel` walks a compiled schema from the root and, at every node it walks, converts the
//! node's whole value into CEL twice (into a `cel::Value`, then into the context's own form) for
//! `self`, and again for `oldSelf`, whether or not the node has rules. A rule on the root thus
//! converts the whole object, and each node below it converts its part again. The real server
//! converts lazily, as a rule reads a field.
//!
//! The dev cluster comes close to that: each schema node that declares rules is a [`RuleSite`],
//! evaluated on its own with `kube-cel`, with the schema below it kept only as converting values
//! needs (formats, defaults, maps, embedded resources), and with `self` holding only the fields
//! its rules read (`self.status.phase` binds a `status` with only its `phase`). Errors carry the same paths as a walk
//! from the root would give them.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use kube_cel::{CompiledSchema, RootContext, ValidationError, Validator};
use regex::Regex;
use serde_json::Value;

use super::rules::walked_schema;

/// The rules of one schema, by the node that declares them.
#[derive(Debug)]
pub struct RuleSites {
    sites: Vec<RuleSite>,
}

/// One schema node's rules.
#[derive(Debug)]
struct RuleSite {
    /// How the node's values are reached from the root.
    route: Vec<Step>,
    /// The node's own rules, over the node's schema without the rules below it.
    compiled: CompiledSchema,
    /// What the rules and messages read of `self` and `oldSelf`.
    reads: Read,
    /// Whether a rule reads `oldSelf`: such a rule runs even on a value that did not change.
    transition: bool,
}

/// One step from a node to its children, as `kube-cel` walks them.
#[derive(Debug, Clone)]
enum Step {
    /// A declared property.
    Field(String),
    /// Every item of a list.
    Items,
    /// Every value of a map, except the keys its declared properties name.
    Values { declared: BTreeSet<String> },
}

impl RuleSites {
    /// The sites of `schema` (with rules as evaluated, see `optional_old_self`).
    pub fn compile(schema: &Value) -> Self {
        let mut sites = Vec::new();
        collect(schema, &mut Vec::new(), &mut sites);
        Self { sites }
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// Evaluates every site on `object` (and `old`, on updates), returning the rules' failures
    /// with paths from the root, as one `kube-cel` walk from the root reports them.
    ///
    /// A site whose value equals its old value and whose rules do not read `oldSelf` is not
    /// evaluated: whatever it reported would be ratcheted, as the real server ratchets every
    /// error of such a rule on an unchanged value.
    pub fn evaluate(
        &self,
        validator: &Validator,
        context: &RootContext,
        object: &Value,
        old: Option<&Value>,
    ) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        for site in &self.sites {
            let mut each = |path: &str, value: &Value, old: Option<&Value>| {
                if !site.transition && old.is_some_and(|old| old == value) {
                    return;
                }
                let root = site.route.is_empty();
                let value = site.view(value, root);
                let old = old.map(|old| site.view(old, root));
                let context = root.then_some(context);
                let result = validator.validate_compiled_with_context(&site.compiled, &value, old.as_deref(), context);
                if let Err(found) = result {
                    errors.extend(found.into_vec().into_iter().map(|mut error| {
                        error.field_path = below(path, &error.field_path);
                        error
                    }));
                }
            };
            visit(&site.route, String::new(), object, old, &mut each);
        }
        errors
    }
}

/// What rules read of a value: all of it, or some of its fields.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    Whole,
    Fields(BTreeMap<String, Read>),
}

impl Read {
    /// Adds the read of the value at `chain` below this one.
    fn add(&mut self, chain: &[&str]) {
        let Read::Fields(fields) = self else { return };
        match chain.split_first() {
            None => *self = Read::Whole,
            Some((first, rest)) => {
                fields.entry((*first).to_owned()).or_insert_with(|| Read::Fields(BTreeMap::new())).add(rest)
            }
        }
    }

    /// `value` as far as this read reaches into it.
    fn view(&self, value: &Value) -> Value {
        match (self, value) {
            (Read::Fields(reads), Value::Object(fields)) => Value::Object(
                reads.iter().filter_map(|(name, read)| Some((name.clone(), read.view(fields.get(name)?)))).collect(),
            ),
            _ => value.clone(),
        }
    }
}

impl RuleSite {
    /// What the rules see of `value`: what they read of it, and at the root only the metadata the
    /// real server declares to CEL (`name` and `generateName`).
    fn view<'a>(&self, value: &'a Value, root: bool) -> Cow<'a, Value> {
        if self.reads == Read::Whole && !root {
            return Cow::Borrowed(value);
        }
        let mut view = self.reads.view(value);
        if root && let Some(Value::Object(meta)) = view.get_mut("metadata") {
            meta.retain(|name, _| matches!(name.as_str(), "name" | "generateName"));
        }
        Cow::Owned(view)
    }
}

/// Adds a site for every node of `schema` with rules, in the order `kube-cel` walks them.
fn collect(schema: &Value, route: &mut Vec<Step>, sites: &mut Vec<RuleSite>) {
    let Some(node) = schema.as_object() else { return };
    let rules = node.get("x-kubernetes-validations").and_then(Value::as_array).filter(|rules| !rules.is_empty());
    if let Some(rules) = rules {
        let texts = rules.iter().flat_map(|rule| {
            ["rule", "messageExpression"].into_iter().filter_map(|key| rule.get(key).and_then(Value::as_str))
        });
        let compiled = walked_schema(kube_cel::compile_schema(&own_rules_only(schema)));
        // A rule that did not compile is reported wherever it is: never skipped.
        let transition = compiled
            .validations
            .iter()
            .any(|rule| rule.as_ref().is_ok_and(|rule| rule.is_transition_rule) || rule.is_err());
        let reads = fields_read(texts);
        sites.push(RuleSite { route: route.clone(), compiled, reads, transition });
    }
    let properties = node.get("properties").and_then(Value::as_object);
    for (name, child) in properties.into_iter().flatten() {
        route.push(Step::Field(name.clone()));
        collect(child, route, sites);
        route.pop();
    }
    if let Some(items) = node.get("items") {
        route.push(Step::Items);
        collect(items, route, sites);
        route.pop();
    }
    let preserves = node.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
    if let Some(values) = node.get("additionalProperties").filter(|values| values.is_object())
        && !preserves
    {
        let declared = properties.map(|p| p.keys().cloned().collect()).unwrap_or_default();
        route.push(Step::Values { declared });
        collect(values, route, sites);
        route.pop();
    }
    // Branches see the node's own value, as `kube-cel` walks them.
    for key in ["allOf", "oneOf", "anyOf"] {
        for branch in node.get(key).and_then(Value::as_array).into_iter().flatten() {
            collect(branch, route, sites);
        }
    }
}

/// `schema` without the rules of the nodes below it (and of its branches), which are sites of
/// their own.
fn own_rules_only(schema: &Value) -> Value {
    fn strip(value: &Value) -> Value {
        match value {
            Value::Object(node) => Value::Object(
                node.iter()
                    .filter(|(key, _)| key.as_str() != "x-kubernetes-validations")
                    .map(|(key, child)| (key.clone(), strip_below(key, child)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    /// A keyword's value, stripped where it holds schemas.
    fn strip_below(key: &str, value: &Value) -> Value {
        match (key, value) {
            ("properties", Value::Object(properties)) => {
                Value::Object(properties.iter().map(|(name, child)| (name.clone(), strip(child))).collect())
            }
            ("items" | "additionalProperties" | "not", child) => strip(child),
            ("allOf" | "oneOf" | "anyOf", Value::Array(branches)) => Value::Array(branches.iter().map(strip).collect()),
            (_, other) => other.clone(),
        }
    }
    let mut own = strip(schema);
    if let (Value::Object(node), Some(rules)) = (&mut own, schema.get("x-kubernetes-validations")) {
        node.insert("x-kubernetes-validations".to_owned(), rules.clone());
    }
    own
}

/// `self` or `oldSelf` as a variable (not a field named so: `x.self` is preceded by a dot).
static VARIABLE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(?:self|oldSelf)\b").expect("a valid pattern"));
/// A field selection, `.name` or `.?name`; a method call when an opening parenthesis follows.
static SELECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*\.\s*\??\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\()?").expect("a valid pattern"));

/// What `texts` read of `self` and `oldSelf`: each mention followed by field selections
/// (`self.status.phase`) reads the value at the end of them whole; any other mention reads the
/// variable whole, and so does a field name CEL escapes (`x__dash__y`), which names another key.
fn fields_read<'a>(texts: impl Iterator<Item = &'a str>) -> Read {
    let mut read = Read::Fields(BTreeMap::new());
    for text in texts {
        for found in VARIABLE.find_iter(text) {
            if text[..found.start()].trim_end().ends_with('.') {
                return Read::Whole;
            }
            let mut chain = Vec::new();
            let mut rest = &text[found.end()..];
            while let Some(selection) = SELECTION.captures(rest) {
                let (Some(all), Some(name)) = (selection.get(0), selection.get(1)) else { break };
                if selection.get(2).is_some() {
                    break;
                }
                if name.as_str().contains("__") {
                    return Read::Whole;
                }
                chain.push(name.as_str());
                rest = &rest[all.end()..];
            }
            if chain.is_empty() {
                return Read::Whole;
            }
            read.add(&chain);
        }
    }
    read
}

/// Calls `each` with every value `route` reaches in `value`, its path and its old value.
fn visit(
    route: &[Step],
    path: String,
    value: &Value,
    old: Option<&Value>,
    each: &mut impl FnMut(&str, &Value, Option<&Value>),
) {
    let Some((step, rest)) = route.split_first() else {
        each(&path, value, old);
        return;
    };
    match step {
        Step::Field(name) => {
            if let Some(child) = value.as_object().and_then(|fields| fields.get(name)) {
                let old = old.and_then(|old| old.get(name));
                visit(rest, join(&path, name), child, old, each);
            }
        }
        Step::Items => {
            for (index, item) in value.as_array().into_iter().flatten().enumerate() {
                let old = old.and_then(Value::as_array).and_then(|items| items.get(index));
                let path = if path.is_empty() { format!("[{index}]") } else { format!("{path}[{index}]") };
                visit(rest, path, item, old, each);
            }
        }
        Step::Values { declared } => {
            for (key, child) in value.as_object().into_iter().flatten() {
                if !declared.contains(key) {
                    let old = old.and_then(|old| old.get(key));
                    visit(rest, join(&path, key), child, old, each);
                }
            }
        }
    }
}

/// `kube-cel`'s spelling of a field below `base`.
fn join(base: &str, name: &str) -> String {
    if base.is_empty() { name.to_owned() } else { format!("{base}.{name}") }
}

/// A path reported by a site at `base`, as a walk from the root reports it.
fn below(base: &str, path: &str) -> String {
    if base.is_empty() {
        path.to_owned()
    } else if path.is_empty() {
        base.to_owned()
    } else if path.starts_with(['.', '[']) {
        format!("{base}{path}")
    } else {
        format!("{base}.{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(texts: &[&str]) -> Read {
        fields_read(texts.iter().copied())
    }

    fn fields(entries: &[(&str, Read)]) -> Read {
        Read::Fields(entries.iter().map(|(name, read)| ((*name).to_owned(), read.clone())).collect())
    }

    #[test]
    fn rules_read_the_ends_of_their_field_selections() {
        assert_eq!(
            read(&["has(self.status) && self.status.phase == oldSelf.status.phase", "self.spec.size() > 0"]),
            fields(&[("spec", Read::Whole), ("status", Read::Whole)])
        );
        assert_eq!(
            read(&["!has(self.phase) || self.phase != 'Done'", "self.result.?body.orValue('') != ''"]),
            fields(&[("phase", Read::Whole), ("result", fields(&[("body", Read::Whole)]))])
        );
        assert_eq!(
            read(&["self.a.b.c == 1 && self.a.d == 2"]).view(&serde_json::json!({
                "a": {"b": {"c": 1, "x": 0}, "d": 2, "e": 3}, "f": 4
            })),
            serde_json::json!({"a": {"b": {"c": 1}, "d": 2}})
        );
        assert_eq!(read(&["'static' != ''"]), fields(&[]));
    }

    #[test]
    fn other_uses_of_self_read_it_whole() {
        for text in [
            "self == oldSelf",
            "self.all(x, x > 0)",
            "self['a'] == 1",
            "size(self) < 3",
            "self.x__dash__y == 1",
            "self.a == 1 && has(self)",
            "x.self == 1 || self.a == 1",
        ] {
            assert_eq!(read(&[text]), Read::Whole, "{text}");
        }
        assert_eq!(read(&["self.a == 1", "'a: ' + string(self)"]), Read::Whole, "a message reads it whole");
        assert_eq!(read(&["myself.a == 1 && self_b == 2"]), fields(&[]), "other names are not self");
    }

    #[test]
    fn paths_below_a_site_join_as_a_walk_from_the_root_spells_them() {
        assert_eq!(below("", ".status"), ".status");
        assert_eq!(below("status", ""), "status");
        assert_eq!(below("status", ".result"), "status.result");
        assert_eq!(below("status", "result"), "status.result");
        assert_eq!(below("spec.steps", "[1]"), "spec.steps[1]");
        assert_eq!(join("", "spec"), "spec");
        assert_eq!(join("spec", "limits"), "spec.limits");
    }
}
