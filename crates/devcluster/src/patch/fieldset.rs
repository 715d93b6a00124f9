//! Sets of field paths, the unit of ownership in server-side apply, and their `FieldsV1` encoding
//! (`{"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{}}}}}`) as stored in
//! `metadata.managedFields`.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One step of a field path. The variant order (fields, keys, values, indexes) is the order
/// structured-merge-diff sorts paths in, which decides the order of conflicts in messages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of a map or struct: `f:name`.
    Field(String),
    /// An item of a map list, by its key fields sorted by name, each value as compact JSON:
    /// `k:{"name":"c"}`.
    Key(Vec<(String, String)>),
    /// An item of a set list, as compact JSON: `v:"a"`.
    Value(String),
    /// An item of a list by position: `i:0`.
    Index(usize),
}

impl PathElement {
    /// The element selecting a map-list item by these key fields.
    pub fn key(fields: impl IntoIterator<Item = (String, Value)>) -> Self {
        let mut pairs: Vec<(String, String)> = fields.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        pairs.sort();
        Self::Key(pairs)
    }

    /// The element selecting a set-list item equal to `value`.
    pub fn value(value: &Value) -> Self {
        Self::Value(value.to_string())
    }

    /// The `FieldsV1` key for this element (`f:`, `k:`, `v:`, `i:`).
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(pairs) => format!("k:{}", key_json(pairs)),
            Self::Value(json) => format!("v:{json}"),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses one `FieldsV1` key; the JSON of `k:`/`v:` is re-encoded canonically so equal keys compare equal.
    pub fn from_fields_v1_key(key: &str) -> Result<Self, String> {
        let (prefix, rest) = key.split_at_checked(2).ok_or_else(|| format!("invalid fieldsV1 key {key:?}"))?;
        match prefix {
            "f:" => Ok(Self::Field(rest.to_string())),
            "v:" => serde_json::from_str::<Value>(rest)
                .map(|v| Self::value(&v))
                .map_err(|e| format!("invalid value in fieldsV1 key {key:?}: {e}")),
            "k:" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(fields)) => Ok(Self::key(fields)),
                Ok(_) => Err(format!("invalid fieldsV1 key {key:?}: expected a JSON object after \"k:\"")),
                Err(e) => Err(format!("invalid fieldsV1 key {key:?}: {e}")),
            },
            "i:" => rest.parse().map(Self::Index).map_err(|_| format!("invalid index in fieldsV1 key {key:?}")),
            _ => Err(format!("invalid fieldsV1 key {key:?}: expected a prefix f:, k:, v: or i:")),
        }
    }

    /// Whether this element selects `item`, an item of a list.
    pub fn matches_item(&self, index: usize, item: &Value) -> bool {
        match self {
            Self::Field(_) => false,
            Self::Index(i) => *i == index,
            Self::Value(_) => Self::value(item) == *self,
            Self::Key(pairs) => pairs.iter().all(|(k, v)| item.get(k).is_some_and(|found| same_json(found, v))),
        }
    }
}

fn same_json(value: &Value, json: &str) -> bool {
    let encoded = value.to_string();
    encoded == json
}

fn key_json(pairs: &[(String, String)]) -> String {
    let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{v}", Value::String(k.clone()))).collect();
    format!("{{{}}}", fields.join(","))
}

/// How structured-merge-diff prints path elements in conflict messages: `.spec`, `[name="c"]`, `[=a]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(name) => write!(f, ".{name}"),
            Self::Key(pairs) => {
                let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", fields.join(","))
            }
            Self::Value(json) => write!(f, "[={json}]"),
            Self::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the object root to one field or list item.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(pub Vec<PathElement>);

impl FieldPath {
    /// A path of plain field names, e.g. `FieldPath::fields(&["spec", "replicas"])`.
    pub fn fields(names: &[&str]) -> Self {
        Self(names.iter().map(|n| PathElement::Field((*n).to_string())).collect())
    }

    pub fn child(&self, element: PathElement) -> Self {
        let mut elements = self.0.clone();
        elements.push(element);
        Self(elements)
    }

    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The order structured-merge-diff iterates a set in: at each level, paths ending there come before
    /// deeper ones, then elements compare in `PathElement` order.
    pub fn iteration_order(&self, other: &Self) -> Ordering {
        for (depth, (a, b)) in self.0.iter().zip(&other.0).enumerate() {
            let a_ends = self.0.len() == depth + 1;
            let b_ends = other.0.len() == depth + 1;
            if a_ends != b_ends {
                return if a_ends { Ordering::Less } else { Ordering::Greater };
            }
            match a.cmp(b) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

/// `.spec.containers[name="c"].image`, as in conflict messages and `StatusCause.field`.
impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|e| write!(f, "{e}"))
    }
}

/// A set of field paths. A path is in the set when the field (a leaf, an atomic value or a list item
/// itself) is; containing maps are implied by their children and only listed when they were created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<FieldPath>);

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, path: FieldPath) {
        self.0.insert(path);
    }

    pub fn remove(&mut self, path: &FieldPath) -> bool {
        self.0.remove(path)
    }

    pub fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
    }

    /// Whether `prefix` or any path below it is in the set.
    pub fn has_prefix(&self, prefix: &FieldPath) -> bool {
        self.0.range(prefix.clone()..).next().is_some_and(|p| p.starts_with(prefix))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldPath> {
        self.0.iter()
    }

    pub fn union(&self, other: &Self) -> Self {
        Self(self.0.union(&other.0).cloned().collect())
    }

    pub fn difference(&self, other: &Self) -> Self {
        Self(self.0.difference(&other.0).cloned().collect())
    }

    pub fn intersection(&self, other: &Self) -> Self {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    /// The set without any path at or below one of `prefixes`.
    pub fn without_prefixes(&self, prefixes: &Self) -> Self {
        Self(self.0.iter().filter(|p| !prefixes.iter().any(|prefix| p.starts_with(prefix))).cloned().collect())
    }

    /// Encodes the set as a `FieldsV1` object.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for element in &path.0 {
                node = node.children.entry(element.clone()).or_default();
            }
            node.member = true;
        }
        root.to_json()
    }

    /// Decodes a `FieldsV1` object; the error names the offending key.
    pub fn from_fields_v1(fields: &Value) -> Result<Self, String> {
        let mut set = Self::new();
        decode_node(fields, &FieldPath::default(), &mut set)?;
        Ok(set)
    }
}

impl FromIterator<FieldPath> for FieldSet {
    fn from_iter<I: IntoIterator<Item = FieldPath>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<PathElement, Node>,
}

impl Node {
    fn to_json(&self) -> Value {
        let mut object = Map::new();
        if self.member && !self.children.is_empty() {
            object.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            object.insert(element.to_fields_v1_key(), child.to_json());
        }
        Value::Object(object)
    }
}

fn decode_node(fields: &Value, path: &FieldPath, set: &mut FieldSet) -> Result<(), String> {
    let Value::Object(object) = fields else {
        return Err(format!("invalid fieldsV1 at {:?}: expected an object, got {fields}", display_or_root(path)));
    };
    for (key, child) in object {
        if key == "." {
            if path.is_empty() {
                return Err("invalid fieldsV1: \".\" at the root".to_string());
            }
            set.insert(path.clone());
            continue;
        }
        let child_path = path.child(PathElement::from_fields_v1_key(key)?);
        match child {
            Value::Object(grandchildren) if grandchildren.is_empty() => set.insert(child_path),
            _ => decode_node(child, &child_path, set)?,
        }
    }
    Ok(())
}

fn display_or_root(path: &FieldPath) -> String {
    if path.is_empty() { "the root".to_string() } else { path.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(elements: &[PathElement]) -> FieldPath {
        FieldPath(elements.to_vec())
    }

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    fn container(name: &str) -> PathElement {
        PathElement::key([("name".to_string(), json!(name))])
    }

    #[test]
    fn encodes_fields_keys_values_and_item_markers() {
        let set: FieldSet = [
            FieldPath::fields(&["metadata", "labels", "app"]),
            path(&[field("spec"), field("containers"), container("c")]),
            path(&[field("spec"), field("containers"), container("c"), field("image")]),
            path(&[field("metadata"), field("finalizers"), PathElement::value(&json!("x"))]),
            path(&[field("spec"), field("items"), PathElement::Index(2)]),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}},
                    "f:items": {"i:2": {}}
                }
            })
        );
    }

    #[test]
    fn round_trips_through_fields_v1() {
        let fields = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}}}}
        });
        let set = FieldSet::from_fields_v1(&fields).unwrap();
        assert_eq!(set.len(), 4);
        assert!(set.contains(&FieldPath::fields(&["metadata", "labels"])));
        assert_eq!(set.to_fields_v1(), fields);
    }

    #[test]
    fn key_json_is_canonical_whatever_the_input_order() {
        let element = PathElement::from_fields_v1_key("k:{\"protocol\":\"TCP\", \"port\":80}").unwrap();
        assert_eq!(element.to_fields_v1_key(), "k:{\"port\":80,\"protocol\":\"TCP\"}");
        assert_eq!(element.to_string(), "[port=80,protocol=\"TCP\"]");
    }

    #[test]
    fn rejects_malformed_fields_v1() {
        assert_eq!(
            FieldSet::from_fields_v1(&json!({"x:spec": {}})).unwrap_err(),
            "invalid fieldsV1 key \"x:spec\": expected a prefix f:, k:, v: or i:"
        );
        assert_eq!(
            FieldSet::from_fields_v1(&json!({"f:spec": 1})).unwrap_err(),
            "invalid fieldsV1 at \".spec\": expected an object, got 1"
        );
        assert_eq!(
            FieldSet::from_fields_v1(&json!([])).unwrap_err(),
            "invalid fieldsV1 at \"the root\": expected an object, got []"
        );
        assert_eq!(FieldSet::from_fields_v1(&json!({".": {}})).unwrap_err(), "invalid fieldsV1: \".\" at the root");
        assert!(FieldSet::from_fields_v1(&json!({"k:[1]": {}})).unwrap_err().contains("expected a JSON object"));
        assert!(FieldSet::from_fields_v1(&json!({"k:{": {}})).unwrap_err().starts_with("invalid fieldsV1 key"));
        assert!(FieldSet::from_fields_v1(&json!({"v:{": {}})).unwrap_err().starts_with("invalid value"));
        assert_eq!(FieldSet::from_fields_v1(&json!({"i:x": {}})).unwrap_err(), "invalid index in fieldsV1 key \"i:x\"");
        assert!(FieldSet::from_fields_v1(&json!({"f": {}})).is_err());
    }

    #[test]
    fn set_algebra() {
        let a: FieldSet = [FieldPath::fields(&["a"]), FieldPath::fields(&["b"])].into_iter().collect();
        let b: FieldSet = [FieldPath::fields(&["b"]), FieldPath::fields(&["c"])].into_iter().collect();
        assert_eq!(a.union(&b).len(), 3);
        assert_eq!(a.intersection(&b), [FieldPath::fields(&["b"])].into_iter().collect());
        assert_eq!(a.difference(&b), [FieldPath::fields(&["a"])].into_iter().collect());
    }

    #[test]
    fn prefixes() {
        let set: FieldSet =
            [FieldPath::fields(&["spec", "a", "x"]), FieldPath::fields(&["spec", "b"])].into_iter().collect();
        assert!(set.has_prefix(&FieldPath::fields(&["spec", "a"])));
        assert!(set.has_prefix(&FieldPath::fields(&["spec", "b"])));
        assert!(!set.has_prefix(&FieldPath::fields(&["spec", "c"])));
        let pruned = set.without_prefixes(&[FieldPath::fields(&["spec", "a"])].into_iter().collect());
        assert_eq!(pruned, [FieldPath::fields(&["spec", "b"])].into_iter().collect());
    }

    #[test]
    fn displays_paths_like_structured_merge_diff() {
        let p = path(&[field("spec"), field("containers"), container("c"), field("args"), PathElement::Index(0)]);
        assert_eq!(p.to_string(), ".spec.containers[name=\"c\"].args[0]");
        assert_eq!(path(&[field("f"), PathElement::value(&json!("a"))]).to_string(), ".f[=\"a\"]");
    }

    #[test]
    fn iteration_order_puts_shallow_members_first() {
        let deep = FieldPath::fields(&["spec", "a", "b"]);
        let shallow = FieldPath::fields(&["spec", "z"]);
        assert_eq!(shallow.iteration_order(&deep), Ordering::Less);
        assert_eq!(deep.iteration_order(&shallow), Ordering::Greater);
        assert_eq!(deep.iteration_order(&deep), Ordering::Equal);
    }
}
