//! Structure-aware walks over objects, driven by `MergeRules`: the fields an object sets, what changed
//! between two versions, the server-side apply merge, and removing one field.
//!
//! Rule paths are the dotted field names `MergeRules` is keyed by (list items add no segment).

use super::fieldset::{FieldPath, FieldSet, PathElement};
use super::rules::{ListType, MergeRules};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

fn child_rule_path(rule_path: &str, field: &str) -> String {
    if rule_path.is_empty() { field.to_string() } else { format!("{rule_path}.{field}") }
}

/// Key fields the built-in schemas default, so configurations may omit them (`protocol` of container and
/// service ports); the default still identifies the item.
const KEY_DEFAULTS: [(&str, &str); 1] = [("protocol", "TCP")];

fn key_default(key: &str) -> Option<Value> {
    KEY_DEFAULTS.iter().find(|(name, _)| *name == key).map(|(_, value)| Value::String((*value).to_string()))
}

/// The element naming `item` (at `index`) of a list of this type. A map-list item must carry all key
/// fields without a default, as structured-merge-diff requires of applied configurations.
pub fn list_item_element(list_type: &ListType, index: usize, item: &Value) -> Result<PathElement, String> {
    match list_type {
        ListType::Atomic => Ok(PathElement::Index(index)),
        ListType::Set => Ok(PathElement::value(item)),
        ListType::Map(keys) => {
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                match item.get(key).cloned().or_else(|| key_default(key)) {
                    Some(value) => fields.push((key.clone(), value)),
                    None => {
                        return Err(format!(
                            "element {index}: associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                            key
                        ));
                    }
                }
            }
            Ok(PathElement::key(fields))
        }
    }
}

/// Like `list_item_element`, but items without their keys fall back to their position: stored objects are
/// never rejected for it.
fn lenient_item_element(list_type: &ListType, index: usize, item: &Value) -> PathElement {
    list_item_element(list_type, index, item).unwrap_or(PathElement::Index(index))
}

fn is_granular_list(list_type: &ListType) -> bool {
    !matches!(list_type, ListType::Atomic)
}

/// The set of fields `value` sets: scalars, atomic lists and maps, and list items themselves
/// (structured-merge-diff's `ToFieldSet`). Errors name the list path and the offending item.
pub fn fields_of(value: &Value, rules: &MergeRules) -> Result<FieldSet, Vec<String>> {
    let mut set = FieldSet::new();
    let mut errors = Vec::new();
    collect_fields(value, &FieldPath::default(), "", rules, &mut set, &mut errors);
    if errors.is_empty() { Ok(set) } else { Err(errors) }
}

fn collect_fields(
    value: &Value,
    path: &FieldPath,
    rule_path: &str,
    rules: &MergeRules,
    set: &mut FieldSet,
    errors: &mut Vec<String>,
) {
    match value {
        Value::Object(map) if path.is_empty() || !rules.is_atomic_map(rule_path) => {
            for (name, child) in map {
                let child_path = path.child(PathElement::Field(name.clone()));
                collect_fields(child, &child_path, &child_rule_path(rule_path, name), rules, set, errors);
            }
        }
        Value::Array(items) if is_granular_list(&rules.list_type(rule_path)) => {
            let list_type = rules.list_type(rule_path);
            let mut seen = BTreeSet::new();
            for (index, item) in items.iter().enumerate() {
                let element = match list_item_element(&list_type, index, item) {
                    Ok(element) => element,
                    Err(e) => {
                        errors.push(format!("{path}: {e}"));
                        continue;
                    }
                };
                if !seen.insert(element.clone()) {
                    let what = if matches!(list_type, ListType::Set) { "value" } else { "key" };
                    errors.push(format!("{path}: duplicate entries for {what} {element}"));
                    continue;
                }
                let item_path = path.child(element);
                if matches!(list_type, ListType::Map(_)) {
                    collect_fields(item, &item_path, rule_path, rules, set, errors);
                }
                set.insert(item_path);
            }
        }
        _ => {
            if !path.is_empty() {
                set.insert(path.clone());
            }
        }
    }
}

/// What changed from one version of an object to the next, as structured-merge-diff's `Compare`:
/// fields (and maps, lists and items) that appeared, scalar or atomic values that changed, and fields
/// that disappeared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// The fields a write set: added or modified.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// Compares `old` (absent for a create) with `new`.
pub fn compare(old: Option<&Value>, new: &Value, rules: &MergeRules) -> Comparison {
    let mut comparison = Comparison::default();
    compare_node(old, Some(new), &FieldPath::default(), "", rules, &mut comparison);
    comparison
}

fn compare_node(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &FieldPath,
    rule_path: &str,
    rules: &MergeRules,
    out: &mut Comparison,
) {
    let granular_map =
        |v: Option<&Value>| v.is_none_or(Value::is_object) && (path.is_empty() || !rules.is_atomic_map(rule_path));
    let granular_list =
        |v: Option<&Value>| v.is_none_or(Value::is_array) && is_granular_list(&rules.list_type(rule_path));
    let any_map = old.is_some_and(Value::is_object) || new.is_some_and(Value::is_object);
    let any_list = old.is_some_and(Value::is_array) || new.is_some_and(Value::is_array);

    if any_map && granular_map(old) && granular_map(new) {
        let empty = Map::new();
        let old_map = old.and_then(Value::as_object).unwrap_or(&empty);
        let new_map = new.and_then(Value::as_object).unwrap_or(&empty);
        let names: BTreeSet<&String> = old_map.keys().chain(new_map.keys()).collect();
        for name in names {
            let child_path = path.child(PathElement::Field(name.clone()));
            let child_rule = child_rule_path(rule_path, name);
            compare_node(old_map.get(name), new_map.get(name), &child_path, &child_rule, rules, out);
        }
    } else if any_list && granular_list(old) && granular_list(new) {
        compare_lists(old, new, path, rule_path, rules, out);
    } else if let (Some(o), Some(n)) = (old, new)
        && o != n
    {
        out.modified.insert(path.clone());
    }

    if !path.is_empty() {
        match (old, new) {
            (None, Some(_)) => out.added.insert(path.clone()),
            (Some(_), None) => out.removed.insert(path.clone()),
            _ => {}
        }
    }
}

fn compare_lists(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &FieldPath,
    rule_path: &str,
    rules: &MergeRules,
    out: &mut Comparison,
) {
    let list_type = rules.list_type(rule_path);
    let index = |list: Option<&Value>| -> Vec<(PathElement, Value)> {
        list.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (lenient_item_element(&list_type, i, item), item.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old_items = index(old);
    let new_items = index(new);
    let find = |items: &[(PathElement, Value)], element: &PathElement| {
        items.iter().find(|(e, _)| e == element).map(|(_, v)| v.clone())
    };
    let elements: BTreeSet<PathElement> = old_items.iter().chain(&new_items).map(|(e, _)| e.clone()).collect();
    for element in elements {
        let before = find(&old_items, &element);
        let after = find(&new_items, &element);
        let item_path = path.child(element);
        if matches!(list_type, ListType::Map(_)) {
            compare_node(before.as_ref(), after.as_ref(), &item_path, rule_path, rules, out);
        } else {
            match (before, after) {
                (None, Some(_)) => out.added.insert(item_path),
                (Some(_), None) => out.removed.insert(item_path),
                _ => {}
            }
        }
    }
}

/// Merges an applied configuration into the live object: maps field by field, map lists by key and
/// set lists by value (live items keep their place, applied items follow the configuration's order),
/// everything else replaced.
pub fn merge(live: &Value, config: &Value, rules: &MergeRules) -> Value {
    merge_node(live, config, "", true, rules)
}

fn merge_node(live: &Value, config: &Value, rule_path: &str, is_root: bool, rules: &MergeRules) -> Value {
    match (live, config) {
        (Value::Object(live_map), Value::Object(config_map)) if is_root || !rules.is_atomic_map(rule_path) => {
            let mut merged = live_map.clone();
            for (name, config_value) in config_map {
                let child_rule = child_rule_path(rule_path, name);
                let value = match live_map.get(name) {
                    Some(live_value) => merge_node(live_value, config_value, &child_rule, false, rules),
                    None => config_value.clone(),
                };
                merged.insert(name.clone(), value);
            }
            Value::Object(merged)
        }
        (Value::Array(live_items), Value::Array(config_items)) if is_granular_list(&rules.list_type(rule_path)) => {
            Value::Array(merge_lists(live_items, config_items, rule_path, rules))
        }
        _ => config.clone(),
    }
}

fn merge_lists(live: &[Value], config: &[Value], rule_path: &str, rules: &MergeRules) -> Vec<Value> {
    let list_type = rules.list_type(rule_path);
    let elements = |items: &[Value]| -> Vec<PathElement> {
        items.iter().enumerate().map(|(i, item)| lenient_item_element(&list_type, i, item)).collect()
    };
    let live_elements = elements(live);
    let config_elements = elements(config);
    let mut merged_elements = BTreeSet::new();
    let mut out = Vec::with_capacity(live.len() + config.len());
    let (mut l, mut c) = (0, 0);
    while l < live.len() || c < config.len() {
        if let Some(element) = live_elements.get(l) {
            if !config_elements.contains(element) {
                out.push(live[l].clone());
                l += 1;
                continue;
            }
            if merged_elements.contains(element) {
                l += 1;
                continue;
            }
        }
        let Some(element) = config_elements.get(c) else {
            l += 1;
            continue;
        };
        let item = match live_elements.iter().position(|e| e == element) {
            Some(at) if matches!(list_type, ListType::Map(_)) => {
                merge_node(&live[at], &config[c], rule_path, false, rules)
            }
            _ => config[c].clone(),
        };
        out.push(item);
        merged_elements.insert(element.clone());
        c += 1;
    }
    out
}

/// The value at `path` in `value`, if any.
pub fn get_path<'v>(value: &'v Value, path: &FieldPath) -> Option<&'v Value> {
    path.0.iter().try_fold(value, |node, element| match (element, node) {
        (PathElement::Field(name), Value::Object(map)) => map.get(name),
        (element, Value::Array(items)) => {
            items.iter().enumerate().find(|(i, item)| element.matches_item(*i, item)).map(|(_, item)| item)
        }
        _ => None,
    })
}

/// Removes the field or list item at `path` from `value`; returns whether it was there.
pub fn remove_path(value: &mut Value, path: &FieldPath) -> bool {
    let Some((last, parents)) = path.0.split_last() else {
        return false;
    };
    let mut node = value;
    for element in parents {
        let next = match (element, node) {
            (PathElement::Field(name), Value::Object(map)) => map.get_mut(name),
            (element, Value::Array(items)) => {
                items.iter_mut().enumerate().find(|(i, item)| element.matches_item(*i, item)).map(|(_, item)| item)
            }
            _ => None,
        };
        match next {
            Some(found) => node = found,
            None => return false,
        }
    }
    match (last, node) {
        (PathElement::Field(name), Value::Object(map)) => map.remove(name).is_some(),
        (element, Value::Array(items)) => {
            match items.iter().enumerate().position(|(i, item)| element.matches_item(i, item)) {
                Some(at) => {
                    items.remove(at);
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn rules() -> MergeRules {
        let mut lists = BTreeMap::new();
        lists.insert("spec.containers".to_string(), ListType::Map(vec!["name".to_string()]));
        lists.insert("spec.containers.ports".to_string(), ListType::Map(vec!["port".into(), "protocol".into()]));
        lists.insert("spec.tags".to_string(), ListType::Set);
        MergeRules { lists, atomic_maps: vec!["spec.selector".to_string()] }
    }

    fn encoded(set: &FieldSet) -> Value {
        set.to_fields_v1()
    }

    #[test]
    fn fields_of_honours_list_and_map_types() {
        let object = json!({
            "spec": {
                "containers": [{"name": "c", "image": "i", "ports": [{"port": 80, "protocol": "TCP"}]}],
                "tags": ["a", "b"],
                "args": ["x", "y"],
                "selector": {"app": "web"},
                "empty": {}
            }
        });
        let set = fields_of(&object, &rules()).unwrap();
        assert_eq!(
            encoded(&set),
            json!({"f:spec": {
                "f:args": {},
                "f:containers": {"k:{\"name\":\"c\"}": {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}}}
                }},
                "f:selector": {},
                "f:tags": {"v:\"a\"": {}, "v:\"b\"": {}}
            }})
        );
    }

    #[test]
    fn fields_of_rejects_items_without_keys_and_duplicates() {
        let object = json!({"spec": {
            "containers": [{"image": "i"}, {"name": "c"}, {"name": "c"}],
            "tags": ["a", "a"]
        }});
        assert_eq!(
            fields_of(&object, &rules()).unwrap_err(),
            vec![
                ".spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)".to_string(),
                ".spec.containers: duplicate entries for key [name=\"c\"]".to_string(),
                ".spec.tags: duplicate entries for value [=\"a\"]".to_string(),
            ]
        );
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let old = json!({"spec": {"a": 1, "b": 2, "containers": [{"name": "c", "image": "x"}], "tags": ["a"]}});
        let new = json!({"spec": {"a": 1, "b": 3, "labels": {"k": "v"}, "containers": [{"name": "c", "image": "y"}, {"name": "d"}], "tags": ["b"]}});
        let cmp = compare(Some(&old), &new, &rules());
        assert_eq!(
            encoded(&cmp.added),
            json!({"f:spec": {
                "f:containers": {"k:{\"name\":\"d\"}": {".": {}, "f:name": {}}},
                "f:labels": {".": {}, "f:k": {}},
                "f:tags": {"v:\"b\"": {}}
            }})
        );
        assert_eq!(
            encoded(&cmp.modified),
            json!({"f:spec": {"f:b": {}, "f:containers": {"k:{\"name\":\"c\"}": {"f:image": {}}}}})
        );
        assert_eq!(encoded(&cmp.removed), json!({"f:spec": {"f:tags": {"v:\"a\"": {}}}}));
    }

    #[test]
    fn compare_treats_atomic_values_as_one_field() {
        let old = json!({"spec": {"selector": {"a": "1"}, "args": ["x"]}});
        let new = json!({"spec": {"selector": {"a": "2", "b": "3"}, "args": ["x", "y"]}});
        let cmp = compare(Some(&old), &new, &rules());
        assert_eq!(encoded(&cmp.modified), json!({"f:spec": {"f:args": {}, "f:selector": {}}}));
        assert!(cmp.added.is_empty());
        let created = compare(None, &json!({"spec": {"x": 1}}), &rules());
        assert_eq!(encoded(&created.added), json!({"f:spec": {".": {}, "f:x": {}}}));
    }

    #[test]
    fn compare_type_change_is_a_modification() {
        let cmp = compare(Some(&json!({"spec": {"x": {"a": 1}}})), &json!({"spec": {"x": 5}}), &rules());
        assert!(cmp.modified.contains(&FieldPath::fields(&["spec", "x"])));
    }

    #[test]
    fn merge_by_key_value_and_atomically() {
        let live = json!({"spec": {
            "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2", "env": "keep"}],
            "tags": ["x", "y"],
            "args": ["p"],
            "selector": {"old": "1"},
            "other": 1
        }});
        let config = json!({"spec": {
            "containers": [{"name": "b", "image": "3"}, {"name": "c", "image": "4"}],
            "tags": ["z", "x"],
            "args": ["q"],
            "selector": {"new": "2"}
        }});
        assert_eq!(
            merge(&live, &config, &rules()),
            json!({"spec": {
                "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "3", "env": "keep"}, {"name": "c", "image": "4"}],
                "tags": ["z", "x", "y"],
                "args": ["q"],
                "selector": {"new": "2"},
                "other": 1
            }})
        );
    }

    #[test]
    fn key_fields_with_defaults_may_be_omitted() {
        let mut with_ports = rules();
        with_ports.lists.insert("spec.ports".into(), ListType::Map(vec!["port".into(), "protocol".into()]));
        let set = fields_of(&json!({"spec": {"ports": [{"port": 80}]}}), &with_ports).unwrap();
        assert_eq!(
            encoded(&set),
            json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}}})
        );
        let live = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "http"}]}});
        let merged = merge(&live, &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}), &with_ports);
        assert_eq!(
            merged,
            json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "http", "targetPort": 8080}]}})
        );
    }

    #[test]
    fn get_path_finds_fields_and_items() {
        let object = json!({"spec": {"containers": [{"name": "a", "image": "1"}], "tags": ["x"]}});
        let a = PathElement::key([("name".to_string(), json!("a"))]);
        let image = FieldPath::fields(&["spec", "containers"]).child(a).child(PathElement::Field("image".into()));
        assert_eq!(get_path(&object, &image), Some(&json!("1")));
        assert_eq!(get_path(&object, &FieldPath::default()), Some(&object));
        assert_eq!(get_path(&object, &FieldPath::fields(&["spec", "tags", "x"])), None);
    }

    #[test]
    fn remove_path_removes_fields_and_items() {
        let mut object =
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}], "tags": ["x", "y"]}});
        let a = PathElement::key([("name".to_string(), json!("a"))]);
        let image =
            FieldPath::fields(&["spec", "containers"]).child(a.clone()).child(PathElement::Field("image".into()));
        assert!(remove_path(&mut object, &image));
        assert!(!remove_path(&mut object, &image));
        assert!(remove_path(&mut object, &FieldPath::fields(&["spec", "containers"]).child(a)));
        assert!(remove_path(&mut object, &FieldPath::fields(&["spec", "tags"]).child(PathElement::value(&json!("y")))));
        assert!(!remove_path(&mut object, &FieldPath::default()));
        assert!(!remove_path(&mut object, &FieldPath::fields(&["spec", "tags", "x"])));
        assert_eq!(object, json!({"spec": {"containers": [{"name": "b"}], "tags": ["x"]}}));
    }
}
