//! Strategic merge patch for built-in types (`application/strategic-merge-patch+json`).
//!
//! Follows the API server's `strategicpatch.StrategicMergeMapPatch`: maps merge recursively and `null`
//! deletes; lists merge according to their [`ListType`]; the directives kubectl sends (`$patch`,
//! `$retainKeys`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`) are honoured.

mod order;

use self::order::{Identity, normalize};
use super::json::rejected;
use super::rules::{ListType, MergeRules};
use crate::error::ApiError;
use serde_json::{Map, Value};

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies a strategic merge patch using the list strategies in `rules`.
///
/// Lists of type `Map(keys)` merge by their first key (the `patchMergeKey`), `Set` lists by value, and
/// `Atomic` lists are replaced. Directive misuse is a `400 BadRequest` naming the problem.
pub fn strategic_merge_patch(target: &Value, patch: &Value, rules: &MergeRules) -> Result<Value, ApiError> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_type(patch)
        )));
    };
    let original = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    Merger { rules }.merge_map(original, patch.clone(), "").map(Value::Object)
}

struct Merger<'a> {
    rules: &'a MergeRules,
}

impl Merger<'_> {
    fn merge_map(&self, mut original: Map<String, Value>, mut patch: Map<String, Value>, path: &str) -> MapResult {
        if let Some(directive) = patch.remove(PATCH_DIRECTIVE) {
            match directive.as_str() {
                Some("replace") => return self.merge_map(Map::new(), patch, path),
                Some("delete") => return Ok(Map::new()),
                Some("merge") => {}
                _ => {
                    patch.insert(PATCH_DIRECTIVE.into(), directive.clone());
                    return Err(unknown_patch_type(&directive, &patch));
                }
            }
        }
        retain_keys(&mut original, &mut patch)?;
        self.set_element_orders(&mut original, &mut patch, path)?;

        let mut deletions = Vec::new();
        for (key, value) in patch {
            if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                deletions.push((list_name(&key, DELETE_FROM_PRIMITIVE_LIST, PRIMITIVE_LIST_FORMAT)?, value));
                continue;
            }
            let child = join(path, &key);
            if value.is_null() {
                original.remove(&key);
                continue;
            }
            let merged = match original.remove(&key) {
                Some(Value::Object(o)) if value.is_object() => {
                    Value::Object(self.merge_map(o, into_object(value), &child)?)
                }
                Some(Value::Array(o)) if value.is_array() => {
                    Value::Array(self.merge_list(o, into_array(value), &child)?)
                }
                _ => self.fresh(value, &child)?,
            };
            original.insert(key, merged);
        }
        for (key, values) in deletions {
            delete_from_primitive_list(&mut original, &key, values)?;
        }
        Ok(original)
    }

    /// A patch value with nothing to merge into: directives are resolved against an empty value.
    fn fresh(&self, value: Value, path: &str) -> Result<Value, ApiError> {
        Ok(match value {
            Value::Object(map) => Value::Object(self.merge_map(Map::new(), map, path)?),
            Value::Array(list) => Value::Array(self.merge_list(Vec::new(), list, path)?),
            scalar => scalar,
        })
    }

    fn merge_list(&self, original: Vec<Value>, patch: Vec<Value>, path: &str) -> ListResult {
        match self.rules.list_type(path) {
            ListType::Atomic => Ok(patch),
            ListType::Set => self.merge_by_identity(original, patch, None, path),
            ListType::Map(keys) => self.merge_by_identity(original, patch, keys.first().map(String::as_str), path),
        }
    }

    fn merge_by_identity(&self, original: Vec<Value>, patch: Vec<Value>, key: Option<&str>, path: &str) -> ListResult {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        match element_kind(&original, &patch, path)? {
            Element::Scalar => Ok(merge_scalars(original, patch)),
            Element::Object => {
                let key = key
                    .ok_or_else(|| ApiError::bad_request(format!("cannot merge lists without merge key for {path}")))?;
                self.merge_objects(original, patch, key, path)
            }
        }
    }

    /// Go `mergeSlice` for lists of objects: `$patch` items first, then merge by key, then order.
    fn merge_objects(&self, mut original: Vec<Value>, patch: Vec<Value>, key: &str, path: &str) -> ListResult {
        let mut items = Vec::with_capacity(patch.len());
        let mut replace = false;
        for item in patch {
            let mut map = into_object(item);
            match map.get(PATCH_DIRECTIVE).cloned() {
                None => items.push(map),
                Some(Value::String(d)) if d == "delete" => {
                    let value = map.get(key).ok_or_else(|| no_merge_key(&map, key))?;
                    original.retain(|o| o.get(key) != Some(value));
                }
                Some(Value::String(d)) if d == "replace" => replace = true,
                Some(Value::String(d)) if d == "merge" => {
                    map.remove(PATCH_DIRECTIVE);
                    items.push(map);
                }
                Some(other) => return Err(unknown_patch_type(&other, &map)),
            }
        }
        if replace {
            return items.into_iter().map(|m| self.merge_map(Map::new(), m, path).map(Value::Object)).collect();
        }
        let server_order = original.clone();
        let mut named = Vec::with_capacity(items.len());
        let mut merged = original;
        for item in items {
            let value = item.get(key).cloned().ok_or_else(|| no_merge_key(&item, key))?;
            named.push(Value::Object(Map::from_iter([(key.to_string(), value.clone())])));
            match merged.iter().position(|o| o.get(key) == Some(&value)) {
                Some(i) => {
                    let existing = into_object(std::mem::take(&mut merged[i]));
                    merged[i] = Value::Object(self.merge_map(existing, item, path)?);
                }
                None => merged.push(Value::Object(self.merge_map(Map::new(), item, path)?)),
            }
        }
        Ok(normalize(merged, &named, &named, &server_order, Identity::Key(key)))
    }

    /// Applies every `$setElementOrder/<list>` directive of `patch`, merging the named list with its patch
    /// (which is then removed from `patch`) and reordering it as the directive says.
    fn set_element_orders(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        path: &str,
    ) -> Unit {
        let directives: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
        for directive in directives {
            let order = match patch.remove(&directive) {
                Some(Value::Array(order)) => order,
                _ => return Err(ApiError::bad_request(SET_ELEMENT_ORDER_FORMAT)),
            };
            let name = list_name(&directive, SET_ELEMENT_ORDER, SET_ELEMENT_ORDER_FORMAT)?;
            let child = join(path, &name);
            let key = match self.rules.list_type(&child) {
                ListType::Map(keys) => keys.first().cloned(),
                _ => None,
            };
            let identity = key.as_deref().map_or(Identity::Value, Identity::Key);
            let patch_list = match patch.remove(&name) {
                Some(Value::Array(list)) => Some(list),
                Some(other) => {
                    patch.insert(name, other);
                    continue;
                }
                None => None,
            };
            let original_list = match original.get(&name) {
                Some(Value::Array(list)) => Some(list.clone()),
                _ => None,
            };
            check_order(patch_list.as_deref().unwrap_or_default(), &order, key.as_deref())?;
            let merged = match (original_list.clone(), patch_list) {
                (Some(o), None) => o,
                (None, Some(p)) => self.merge_list(Vec::new(), p, &child)?,
                (Some(o), Some(p)) => self.merge_list(o, p, &child)?,
                (None, None) => continue,
            };
            let server_order = original_list.unwrap_or_default();
            original.insert(name, Value::Array(normalize(merged, &order, &order, &server_order, identity)));
        }
        Ok(())
    }
}

type MapResult = Result<Map<String, Value>, ApiError>;
type ListResult = Result<Vec<Value>, ApiError>;
type Unit = Result<(), ApiError>;

const PRIMITIVE_LIST_FORMAT: &str = "invalid patch format of primitive list";
const RETAIN_KEYS_FORMAT: &str = "invalid patch format of retainKeys";
const SET_ELEMENT_ORDER_FORMAT: &str = "invalid patch format of setElementOrder list";

/// `$retainKeys`: drops every original key the list does not name; every patched key must be named.
fn retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Unit {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(ApiError::bad_request(RETAIN_KEYS_FORMAT));
    };
    let retained = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    let unlisted = patch.iter().any(|(k, v)| {
        !v.is_null() && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST) && !k.starts_with(SET_ELEMENT_ORDER) && !retained(k)
    });
    if unlisted {
        return Err(ApiError::bad_request(RETAIN_KEYS_FORMAT));
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// `$deleteFromPrimitiveList/<list>`: removes every listed value from the original list.
fn delete_from_primitive_list(original: &mut Map<String, Value>, name: &str, values: Value) -> Unit {
    let Value::Array(values) = values else {
        return Err(ApiError::bad_request(PRIMITIVE_LIST_FORMAT));
    };
    if let Some(Value::Array(list)) = original.get_mut(name) {
        list.retain(|item| !values.contains(item));
    }
    Ok(())
}

/// The patch's items (deletions aside) must appear in the `$setElementOrder` list, in the same order.
fn check_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Unit {
    let identity = key.map_or(Identity::Value, Identity::Key);
    if let Some(key) = key {
        for item in order.iter().chain(patch) {
            match item {
                Value::Object(map) if !map.contains_key(key) && !map.contains_key(PATCH_DIRECTIVE) => {
                    return Err(no_merge_key(map, key));
                }
                Value::Object(_) => {}
                _ => return Err(ApiError::bad_request(SET_ELEMENT_ORDER_FORMAT)),
            }
        }
    }
    let mut positions =
        patch.iter().filter(|item| item.get(PATCH_DIRECTIVE).is_none()).map(|item| identity.position(order, item));
    let mut last = None;
    let in_order = positions.all(|p| match p {
        Some(p) if last.is_none_or(|l| p > l) => {
            last = Some(p);
            true
        }
        _ => false,
    });
    if in_order {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
        go_format(&Value::Array(patch.to_vec())),
        go_format(&Value::Array(order.to_vec()))
    )))
}

/// Union of two scalar lists without duplicates, ordered like the API server orders it.
fn merge_scalars(original: Vec<Value>, patch: Vec<Value>) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for item in original.iter().chain(&patch) {
        if !merged.contains(item) {
            merged.push(item.clone());
        }
    }
    normalize(merged, &patch, &patch, &original, Identity::Value)
}

enum Element {
    Scalar,
    Object,
}

/// What a merging list holds; lists of lists and mixed lists cannot be merged.
fn element_kind(original: &[Value], patch: &[Value], path: &str) -> Result<Element, ApiError> {
    let items = || original.iter().chain(patch);
    if items().any(Value::is_array) {
        return Err(rejected("lists of lists are not supported"));
    }
    match (items().any(Value::is_object), items().all(Value::is_object)) {
        (true, true) => Ok(Element::Object),
        (false, _) => Ok(Element::Scalar),
        (true, false) => {
            Err(ApiError::bad_request(format!("list {path} mixes objects and scalars; cannot merge them")))
        }
    }
}

/// The list a `$directive/<list>` key refers to.
fn list_name(key: &str, prefix: &str, format_error: &str) -> Result<String, ApiError> {
    match key.split_once('/') {
        Some((head, name)) if head == prefix => Ok(name.to_string()),
        _ => Err(ApiError::bad_request(format_error)),
    }
}

fn unknown_patch_type(directive: &Value, map: &Map<String, Value>) -> ApiError {
    ApiError::bad_request(format!(
        "unknown patch type: {} in map: {}",
        go_format(directive),
        go_format(&Value::Object(map.clone()))
    ))
}

fn no_merge_key(map: &Map<String, Value>, key: &str) -> ApiError {
    ApiError::bad_request(format!(
        "map: {} does not contain declared merge key: {key}",
        go_format(&Value::Object(map.clone()))
    ))
}

/// Formats a value like Go's `%v` of decoded JSON, as the API server's messages show it.
fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_format).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let mut entries: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{}", go_format(v))).collect();
            entries.sort();
            format!("map[{}]", entries.join(" "))
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn into_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn into_array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> MergeRules {
        let mut rules = MergeRules::metadata_only();
        for (path, list) in [
            ("spec.containers", ListType::Map(vec!["name".into()])),
            ("spec.containers.env", ListType::Map(vec!["name".into()])),
            ("spec.containers.ports", ListType::Map(vec!["containerPort".into(), "protocol".into()])),
            ("spec.tolerations", ListType::Atomic),
            ("spec.tags", ListType::Set),
            ("spec.nested", ListType::Set),
        ] {
            rules.lists.insert(path.into(), list);
        }
        rules
    }

    fn smp(target: Value, patch: Value) -> Result<Value, ApiError> {
        strategic_merge_patch(&target, &patch, &rules())
    }

    fn bad_request(err: ApiError) -> String {
        assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"), "{}", err.message);
        err.message
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x", "y"]},
            "spec": {
                "containers": [
                    {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "side", "image": "side:1"}
                ],
                "tolerations": [{"key": "k1"}],
                "tags": ["t1", "t2"]
            }
        })
    }

    fn container_names(pod: &Value) -> Vec<&str> {
        pod["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let out =
            smp(pod(), json!({"metadata": {"labels": {"a": null, "b": "2"}, "annotations": {"n": "v"}}})).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["annotations"], json!({"n": "v"}));
        assert_eq!(out["metadata"]["name"], "p");
    }

    #[test]
    fn null_for_a_missing_key_is_ignored() {
        let out = smp(pod(), json!({"spec": {"nodeName": null}})).unwrap();
        assert!(out["spec"].get("nodeName").is_none());
    }

    #[test]
    fn merge_key_lists_merge_matching_items() {
        let patch =
            json!({"spec": {"containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]}});
        let out = smp(pod(), patch).unwrap();
        let app = &out["spec"]["containers"][0];
        assert_eq!(app["image"], "app:2");
        // The new item precedes the server's, as on a real API server without `$setElementOrder`.
        assert_eq!(app["env"], json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]));
        assert_eq!(out["spec"]["containers"][1], json!({"name": "side", "image": "side:1"}));
    }

    #[test]
    fn new_merge_key_items_are_added_in_patch_order() {
        // Like the API server, items only in the patch are placed before unrelated server items.
        let out = smp(pod(), json!({"spec": {"containers": [{"name": "new", "image": "n"}]}})).unwrap();
        assert_eq!(container_names(&out), ["new", "app", "side"]);
    }

    #[test]
    fn multi_key_lists_merge_by_their_first_key() {
        let target =
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]}});
        let out = smp(target, patch).unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
        );
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let out = smp(pod(), json!({"spec": {"tolerations": [{"key": "k2"}]}})).unwrap();
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "k2"}]));
    }

    #[test]
    fn unlisted_lists_are_replaced() {
        let out = smp(json!({"spec": {"args": ["a", "b"]}}), json!({"spec": {"args": ["c"]}})).unwrap();
        assert_eq!(out["spec"]["args"], json!(["c"]));
    }

    #[test]
    fn set_lists_take_the_union() {
        let out = smp(pod(), json!({"metadata": {"finalizers": ["y", "z"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y", "z"]));
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let target = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}});
        let out = smp(target, json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}]}})).unwrap();
        assert_eq!(out["metadata"]["ownerReferences"], json!([{"uid": "1", "name": "a", "controller": true}]));
    }

    #[test]
    fn type_changes_replace_the_value() {
        let out = smp(json!({"spec": {"x": {"a": 1}}}), json!({"spec": {"x": [1]}})).unwrap();
        assert_eq!(out["spec"]["x"], json!([1]));
    }

    #[test]
    fn patch_replace_in_a_map_replaces_it() {
        let out = smp(pod(), json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}})).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
    }

    #[test]
    fn patch_delete_in_a_map_empties_it() {
        let out = smp(pod(), json!({"metadata": {"labels": {"$patch": "delete"}}})).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({}));
    }

    #[test]
    fn patch_merge_in_a_map_merges() {
        let out = smp(pod(), json!({"metadata": {"labels": {"$patch": "merge", "c": "3"}}})).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "c": "3"}));
    }

    #[test]
    fn patch_delete_in_a_list_removes_the_item() {
        let out = smp(pod(), json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}})).unwrap();
        assert_eq!(container_names(&out), ["app"]);
    }

    #[test]
    fn patch_replace_in_a_list_replaces_it() {
        let patch = json!({"spec": {"containers": [{"name": "only", "image": "o"}, {"$patch": "replace"}]}});
        let out = smp(pod(), patch).unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "only", "image": "o"}]));
    }

    #[test]
    fn patch_merge_in_a_list_item_merges_it() {
        let out =
            smp(pod(), json!({"spec": {"containers": [{"name": "side", "$patch": "merge", "image": "s:2"}]}})).unwrap();
        assert_eq!(out["spec"]["containers"][1], json!({"name": "side", "image": "s:2"}));
    }

    #[test]
    fn unknown_patch_directive_is_a_bad_request() {
        let msg = bad_request(smp(pod(), json!({"metadata": {"$patch": "explode"}})).unwrap_err());
        assert_eq!(msg, "unknown patch type: explode in map: map[$patch:explode]");
        let msg = bad_request(smp(pod(), json!({"spec": {"containers": [{"name": "a", "$patch": 1}]}})).unwrap_err());
        assert_eq!(msg, "unknown patch type: 1 in map: map[$patch:1 name:a]");
    }

    #[test]
    fn list_item_without_merge_key_is_a_bad_request() {
        let msg = bad_request(smp(pod(), json!({"spec": {"containers": [{"image": "x"}]}})).unwrap_err());
        assert_eq!(msg, "map: map[image:x] does not contain declared merge key: name");
        let msg = bad_request(smp(pod(), json!({"spec": {"containers": [{"$patch": "delete"}]}})).unwrap_err());
        assert_eq!(msg, "map: map[$patch:delete] does not contain declared merge key: name");
    }

    #[test]
    fn set_list_of_objects_is_a_bad_request() {
        let msg = bad_request(smp(json!({}), json!({"spec": {"tags": [{"a": 1}]}})).unwrap_err());
        assert_eq!(msg, "cannot merge lists without merge key for spec.tags");
    }

    #[test]
    fn mixed_list_is_a_bad_request() {
        let msg = bad_request(smp(pod(), json!({"spec": {"tags": [{"a": 1}]}})).unwrap_err());
        assert_eq!(msg, "list spec.tags mixes objects and scalars; cannot merge them");
    }

    #[test]
    fn list_of_lists_is_rejected() {
        let err = smp(json!({"spec": {"nested": [[1]]}}), json!({"spec": {"nested": [[2]]}})).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert!(err.message.ends_with("lists of lists are not supported"), "{}", err.message);
    }

    #[test]
    fn delete_from_primitive_list_removes_values() {
        let patch =
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "$setElementOrder/finalizers": ["y"]}});
        let out = smp(pod(), patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
    }

    #[test]
    fn delete_from_a_missing_primitive_list_changes_nothing() {
        let out =
            smp(json!({"metadata": {}}), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})).unwrap();
        assert_eq!(out, json!({"metadata": {}}));
    }

    #[test]
    fn malformed_delete_from_primitive_list_is_a_bad_request() {
        let msg =
            bad_request(smp(pod(), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}})).unwrap_err());
        assert_eq!(msg, "invalid patch format of primitive list");
        let msg = bad_request(smp(pod(), json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}})).unwrap_err());
        assert_eq!(msg, "invalid patch format of primitive list");
    }

    #[test]
    fn set_element_order_reorders_merged_items() {
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "new"}, {"name": "app"}],
            "containers": [{"name": "new", "image": "n"}]
        }});
        let out = smp(pod(), patch).unwrap();
        assert_eq!(container_names(&out), ["side", "new", "app"]);
        assert_eq!(out["spec"]["containers"][1], json!({"name": "new", "image": "n"}));
    }

    #[test]
    fn set_element_order_alone_reorders_existing_items() {
        let out =
            smp(pod(), json!({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}]}})).unwrap();
        assert_eq!(container_names(&out), ["side", "app"]);
    }

    #[test]
    fn set_element_order_for_primitive_lists() {
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["z", "y", "x"], "finalizers": ["z"]}});
        let out = smp(pod(), patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["z", "y", "x"]));
    }

    #[test]
    fn set_element_order_for_a_new_list() {
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"], "finalizers": ["b", "a"]}});
        let out = smp(json!({"metadata": {}}), patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
    }

    #[test]
    fn set_element_order_that_disagrees_with_the_patch_is_a_bad_request() {
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
            "containers": [{"name": "side"}, {"name": "app"}]
        }});
        let msg = bad_request(smp(pod(), patch).unwrap_err());
        assert_eq!(
            msg,
            "The order in patch list:\n[map[name:side] map[name:app]]\n doesn't match $setElementOrder list:\n[map[name:app] map[name:side]]\n"
        );
    }

    #[test]
    fn malformed_set_element_order_is_a_bad_request() {
        let msg = bad_request(smp(pod(), json!({"spec": {"$setElementOrder/containers": "app"}})).unwrap_err());
        assert_eq!(msg, "invalid patch format of setElementOrder list");
        let msg = bad_request(smp(pod(), json!({"spec": {"$setElementOrder": []}})).unwrap_err());
        assert_eq!(msg, "invalid patch format of setElementOrder list");
        let msg =
            bad_request(smp(pod(), json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}})).unwrap_err());
        assert_eq!(msg, "map: map[image:x] does not contain declared merge key: name");
        let msg = bad_request(smp(pod(), json!({"spec": {"$setElementOrder/containers": ["app"]}})).unwrap_err());
        assert_eq!(msg, "invalid patch format of setElementOrder list");
    }

    #[test]
    fn retain_keys_drops_unlisted_fields() {
        let target = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
        let out = smp(target, patch).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn retain_keys_must_name_every_patched_field() {
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}});
        assert_eq!(bad_request(smp(json!({}), patch).unwrap_err()), "invalid patch format of retainKeys");
        let patch = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        assert_eq!(bad_request(smp(json!({}), patch).unwrap_err()), "invalid patch format of retainKeys");
    }

    #[test]
    fn new_fields_have_their_directives_resolved() {
        let patch = json!({"spec": {"volumes": {"a": {"$patch": "delete"}, "b": {"x": null, "y": 1}}}});
        let out = smp(json!({}), patch).unwrap();
        assert_eq!(out["spec"]["volumes"], json!({"a": {}, "b": {"y": 1}}));
    }

    #[test]
    fn kubectl_style_patch_on_a_deployment_with_builtin_rules() {
        let rules = MergeRules::builtin("apps", "Deployment");
        let target = json!({"spec": {"replicas": 1, "template": {"spec": {
            "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}],
            "tolerations": [{"key": "a"}]
        }}}});
        let patch = json!({"spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{
                "name": "app",
                "image": "app:2",
                "$setElementOrder/env": [{"name": "B"}, {"name": "C"}],
                "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]
            }]
        }}}});
        let out = strategic_merge_patch(&target, &patch, &rules).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"replicas": 3, "template": {"spec": {
                "containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}, {"name": "C", "value": "3"}]}],
                "tolerations": [{"key": "a"}]
            }}}})
        );
    }

    #[test]
    fn patch_that_is_not_an_object_is_a_bad_request() {
        let msg = bad_request(smp(pod(), json!([1])).unwrap_err());
        assert_eq!(msg, "json: cannot unmarshal array into Go value of type map[string]interface {}");
    }

    #[test]
    fn target_is_not_modified() {
        let target = pod();
        let _ = strategic_merge_patch(&target, &json!({"metadata": {"labels": null}}), &rules()).unwrap();
        assert_eq!(target, pod());
    }
}
