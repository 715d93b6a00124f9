//! Server-side apply (`application/apply-patch+yaml`): field ownership, merging and conflicts.
//!
//! Follows structured-merge-diff's `Apply`: the applied configuration is merged into the live object,
//! fields the manager applied before but no longer applies are removed unless someone else owns them,
//! and changing a field another manager owns is a conflict unless forced.

use super::fieldset::{FieldPath, FieldSet, PathElement};
use super::managed_fields::{self, ManagedFieldsEntry, Operation};
use super::rules::MergeRules;
use super::structured;
use crate::error::{ApiError, Cause, Details};
use serde_json::{Map, Value};

/// One server-side apply request.
#[derive(Debug, Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// The stored object, or `None` when apply creates it.
    pub live: Option<&'a Value>,
    /// The applied configuration, already parsed from YAML or JSON.
    pub config: &'a Value,
    /// `fieldManager` (required for apply).
    pub manager: &'a str,
    pub force: bool,
    pub rules: &'a MergeRules,
    /// `apiVersion` recorded in the managedFields entry.
    pub api_version: &'a str,
    /// `Some("status")` when applied to the status subresource.
    pub subresource: Option<&'a str>,
    /// Whether the resource has a status subresource: then `status` in a configuration applied to the
    /// main resource is ignored, as the API server resets it.
    pub has_status_subresource: bool,
    /// RFC 3339 time recorded in the managedFields entry.
    pub now: &'a str,
}

/// Merges the applied configuration into the live object and updates `metadata.managedFields`.
/// Fields owned by another manager with a different value are a 409 `Conflict` naming the managers,
/// unless `force` takes them over.
#[allow(clippy::result_large_err, reason = "ApiError is the crate-wide error type the HTTP layer renders")]
pub fn server_side_apply(req: ApplyRequest<'_>) -> Result<Value, ApiError> {
    check_config(req.config)?;
    let applied = applied_fields_only(req.config, req.subresource, req.has_status_subresource);
    let applied_set = structured::fields_of(&applied, req.rules)
        .map(managed_fields::without_metadata_root)
        .map_err(|errors| typed_patch_error(req.config, req.live, &errors))?;

    let mut entries = req.live.map(managed_fields::read_entries_lenient).unwrap_or_default();
    let mut applier = ManagedFieldsEntry {
        manager: req.manager.to_string(),
        operation: Operation::Apply,
        api_version: req.api_version.to_string(),
        time: Some(req.now.to_string()),
        subresource: req.subresource.map(str::to_string),
        fields: applied_set,
    };
    let previous = entries.iter().position(|e| e.same_manager(&applier)).map(|at| entries.remove(at));

    let created;
    let base = match req.live {
        Some(live) => live,
        None => {
            created = identity_of(req.config);
            &created
        }
    };
    let mut merged = structured::merge(base, &applied, req.rules);
    if let Some(previous) = &previous {
        prune_abandoned(&mut merged, &previous.fields, &applier.fields, &entries);
    }

    let live_view = req.live.map(managed_fields::owned_view);
    let merged_view = managed_fields::owned_view(&merged);
    if live_view.as_ref() == Some(&merged_view) {
        // A no-op apply records ownership but, like the API server, not a new time.
        applier.time = previous.as_ref().and_then(|p| p.time.clone());
    }
    let changed = managed_fields::without_metadata_root(
        structured::compare(live_view.as_ref(), &merged_view, req.rules).changed(),
    );
    let conflicts = find_conflicts(&entries, &changed);
    if !conflicts.is_empty() && !req.force {
        return Err(conflict_error(&conflicts));
    }
    for entry in &mut entries {
        entry.fields = entry.fields.difference(&changed);
    }

    entries.push(applier);
    managed_fields::write_entries(&mut merged, entries);
    Ok(merged)
}

/// Rejects configurations the API server refuses to apply: not an object, `metadata` not an object,
/// or `metadata.managedFields` set (ownership is the server's to record).
#[allow(clippy::result_large_err, reason = "ApiError is the crate-wide error type the HTTP layer renders")]
fn check_config(config: &Value) -> Result<(), ApiError> {
    let Value::Object(config) = config else {
        return Err(ApiError::bad_request("the applied configuration must be an object"));
    };
    match config.get("metadata") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(metadata)) if metadata.get("managedFields").is_some_and(|f| !f.is_null()) => {
            Err(ApiError::bad_request("metadata.managedFields must be nil"))
        }
        Some(Value::Object(_)) => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!("metadata: expected an object, got {other}"))),
    }
}

/// The part of the configuration server-side apply merges and owns: without identity and bookkeeping
/// fields, and limited to `status` on the status subresource or without it on the main resource when
/// the resource has one.
fn applied_fields_only(config: &Value, subresource: Option<&str>, has_status_subresource: bool) -> Value {
    let mut applied = managed_fields::owned_view(config);
    if let Value::Object(map) = &mut applied {
        if subresource == Some("status") {
            map.retain(|name, _| name == "status");
        } else if has_status_subresource {
            map.remove("status");
        }
        if map.get("metadata").is_some_and(|m| m.is_null() || m.as_object().is_some_and(Map::is_empty)) {
            map.remove("metadata");
        }
    }
    applied
}

/// What an object created by apply starts from: its `apiVersion`, `kind`, name and namespace.
fn identity_of(config: &Value) -> Value {
    let mut object = Map::new();
    for name in ["apiVersion", "kind"] {
        if let Some(value) = config.get(name) {
            object.insert(name.to_string(), value.clone());
        }
    }
    let mut metadata = Map::new();
    for name in ["name", "namespace"] {
        if let Some(value) = config.get("metadata").and_then(|m| m.get(name)) {
            metadata.insert(name.to_string(), value.clone());
        }
    }
    object.insert("metadata".to_string(), Value::Object(metadata));
    Value::Object(object)
}

/// Removes the fields the manager applied last time but not this time, unless another manager (or this
/// apply) owns them or something below them. Key fields stay while their item does, and maps and lists
/// the removal leaves empty go too unless someone owns them.
fn prune_abandoned(merged: &mut Value, previous: &FieldSet, applied: &FieldSet, others: &[ManagedFieldsEntry]) {
    let owned = others.iter().fold(applied.clone(), |owned, entry| owned.union(&entry.fields));
    for path in previous.difference(applied).iter() {
        if owned.has_prefix(path) || is_key_of_kept_item(path, &owned) {
            continue;
        }
        if structured::remove_path(merged, path) {
            remove_emptied_parents(merged, path, &owned);
        }
    }
}

/// Whether `path` is a key field (`name` of `[name="c"]`) of an item someone still owns something in.
fn is_key_of_kept_item(path: &FieldPath, owned: &FieldSet) -> bool {
    let [.., PathElement::Key(keys), PathElement::Field(name)] = path.0.as_slice() else {
        return false;
    };
    let item = FieldPath(path.0[..path.0.len() - 1].to_vec());
    keys.iter().any(|(key, _)| key == name) && owned.has_prefix(&item)
}

fn remove_emptied_parents(merged: &mut Value, path: &FieldPath, owned: &FieldSet) {
    let mut parent = FieldPath(path.0[..path.0.len().saturating_sub(1)].to_vec());
    while !parent.is_empty() && parent != FieldPath::fields(&["metadata"]) && !owned.contains(&parent) {
        let emptied = match structured::get_path(merged, &parent) {
            Some(Value::Object(map)) => map.is_empty(),
            Some(Value::Array(items)) => items.is_empty(),
            _ => false,
        };
        if !emptied {
            return;
        }
        structured::remove_path(merged, &parent);
        parent.0.pop();
    }
}

/// One field another manager owns and this apply changes.
#[derive(Debug, Clone, PartialEq)]
struct Conflict<'a> {
    owner: &'a ManagedFieldsEntry,
    path: FieldPath,
}

/// The conflicts, ordered by manager then by path as the API server lists them.
fn find_conflicts<'a>(others: &'a [ManagedFieldsEntry], changed: &FieldSet) -> Vec<Conflict<'a>> {
    let mut conflicts: Vec<Conflict<'a>> = others
        .iter()
        .flat_map(|owner| {
            owner
                .fields
                .intersection(changed)
                .iter()
                .cloned()
                .map(move |path| Conflict { owner, path })
                .collect::<Vec<_>>()
        })
        .collect();
    conflicts.sort_by(|a, b| a.owner.identity().cmp(&b.owner.identity()).then_with(|| a.path.iteration_order(&b.path)));
    conflicts
}

/// 409 `Conflict` worded like the API server: one cause per field, `FieldManagerConflict`.
fn conflict_error(conflicts: &[Conflict<'_>]) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|c| {
            Cause::new("FieldManagerConflict", c.path.to_string(), format!("conflict with {}", c.owner.describe()))
        })
        .collect();
    let message = match conflicts {
        [only] => format!("Apply failed with 1 conflict: conflict with {}: {}", only.owner.describe(), only.path),
        _ => {
            let mut lines = Vec::new();
            let mut current: Option<&ManagedFieldsEntry> = None;
            for conflict in conflicts {
                if current.is_none_or(|owner| owner.identity() != conflict.owner.identity()) {
                    lines.push(format!("conflicts with {}:", conflict.owner.describe()));
                    current = Some(conflict.owner);
                }
                lines.push(format!("- {}", conflict.path));
            }
            format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
        }
    };
    ApiError::new(409, "Conflict", message).with_details(Details { causes, ..Details::default() })
}

/// The error for a configuration that is not a valid typed object (an item without its keys, duplicate
/// items): the API server answers it as an unclassified 500 naming the object.
fn typed_patch_error(config: &Value, live: Option<&Value>, errors: &[String]) -> ApiError {
    let text = |object: Option<&Value>, pointer: &str| {
        object.and_then(|o| o.pointer(pointer)).and_then(Value::as_str).unwrap_or_default().to_string()
    };
    let from_either = |pointer: &str| {
        let configured = text(Some(config), pointer);
        if configured.is_empty() { text(live, pointer) } else { configured }
    };
    let api_version = from_either("/apiVersion");
    let group_version = if api_version.contains('/') { api_version } else { format!("/{api_version}") };
    let object = format!(
        "{}/{}; {group_version}, Kind={}",
        from_either("/metadata/namespace"),
        from_either("/metadata/name"),
        from_either("/kind")
    );
    let detail = match errors {
        [only] => only.clone(),
        _ => format!("errors:\n  {}", errors.join("\n  ")),
    };
    ApiError::new(500, "", format!("failed to create typed patch object ({object}): {detail}"))
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::patch::managed_fields::{UpdateRecord, read_entries, record_update};
    use crate::patch::rules::ListType;
    use serde_json::json;

    const T1: &str = "2026-01-01T00:00:00Z";
    const T2: &str = "2026-01-02T00:00:00Z";

    fn rules() -> MergeRules {
        let mut rules = MergeRules::metadata_only();
        rules.lists.insert("spec.containers".into(), ListType::Map(vec!["name".into()]));
        rules.lists.insert("spec.tags".into(), ListType::Set);
        rules.atomic_maps.push("spec.selector".into());
        rules
    }

    fn request<'a>(
        live: Option<&'a Value>,
        config: &'a Value,
        manager: &'a str,
        rules: &'a MergeRules,
    ) -> ApplyRequest<'a> {
        ApplyRequest {
            live,
            config,
            manager,
            force: false,
            rules,
            api_version: "apps/v1",
            subresource: None,
            has_status_subresource: false,
            now: T1,
        }
    }

    fn apply(live: Option<&Value>, config: Value, manager: &str) -> Result<Value, ApiError> {
        let rules = rules();
        server_side_apply(request(live, &config, manager, &rules))
    }

    fn config(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}, "spec": spec})
    }

    fn fields_of(object: &Value, manager: &str) -> Value {
        let entries = read_entries(object).unwrap();
        let entry = entries.iter().find(|e| e.manager == manager).unwrap_or_else(|| panic!("no entry for {manager}"));
        entry.fields.to_fields_v1()
    }

    fn managers(object: &Value) -> Vec<String> {
        read_entries(object).unwrap().into_iter().map(|e| e.manager).collect()
    }

    #[test]
    fn apply_creates_the_object_with_an_apply_entry() {
        let mut applied = config(json!({"replicas": 1}));
        applied["metadata"]["labels"] = json!({"app": "web"});
        applied["metadata"]["uid"] = json!("ignored");
        applied["metadata"]["resourceVersion"] = json!("7");
        let object = apply(None, applied, "ctl").unwrap();
        assert_eq!(
            object,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "namespace": "ns",
                    "labels": {"app": "web"},
                    "managedFields": [{
                        "manager": "ctl",
                        "operation": "Apply",
                        "apiVersion": "apps/v1",
                        "time": T1,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}}}
                    }]
                },
                "spec": {"replicas": 1}
            })
        );
    }

    #[test]
    fn managers_applying_disjoint_fields_both_keep_them() {
        let live = apply(None, config(json!({"replicas": 1})), "a").unwrap();
        let live = apply(Some(&live), config(json!({"paused": true})), "b").unwrap();
        assert_eq!(live["spec"], json!({"replicas": 1, "paused": true}));
        assert_eq!(fields_of(&live, "a"), json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(fields_of(&live, "b"), json!({"f:spec": {"f:paused": {}}}));
    }

    #[test]
    fn a_different_value_for_an_owned_field_is_a_conflict() {
        let live = apply(None, config(json!({"replicas": 1})), "a").unwrap();
        let err = apply(Some(&live), config(json!({"replicas": 2})), "b").unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(err.reason, "Conflict");
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas");
        let details = err.details.unwrap();
        assert_eq!(details.causes, vec![Cause::new("FieldManagerConflict", ".spec.replicas", "conflict with \"a\"")]);
        assert!(details.name.is_empty() && details.kind.is_empty());
        let status = ApiError::new(409, "Conflict", "m")
            .with_details(Details { causes: details.causes, ..Details::default() })
            .to_status();
        assert_eq!(status["details"]["causes"][0]["reason"], "FieldManagerConflict");
    }

    #[test]
    fn conflicts_with_several_managers_are_grouped_by_manager() {
        let rules = rules();
        let live = apply(None, config(json!({"replicas": 1, "paused": false})), "z-applier").unwrap();
        let mut edited = live.clone();
        edited["spec"]["minReadySeconds"] = json!(5);
        edited["spec"]["containers"] = json!([{"name": "c", "image": "old"}]);
        let record =
            UpdateRecord { manager: "kubectl-edit", api_version: "apps/v1", subresource: None, now: T2, rules: &rules };
        record_update(Some(&live), &mut edited, record);

        let applied = config(json!({
            "replicas": 2, "paused": true, "minReadySeconds": 9, "containers": [{"name": "c", "image": "new"}]
        }));
        let err = server_side_apply(request(Some(&edited), &applied, "b", &rules)).unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 4 conflicts: conflicts with \"kubectl-edit\" using apps/v1:\n\
             - .spec.minReadySeconds\n\
             - .spec.containers[name=\"c\"].image\n\
             conflicts with \"z-applier\":\n\
             - .spec.paused\n\
             - .spec.replicas"
        );
        let causes = err.details.unwrap().causes;
        assert_eq!(causes.len(), 4);
        assert_eq!(
            causes[1],
            Cause::new(
                "FieldManagerConflict",
                ".spec.containers[name=\"c\"].image",
                "conflict with \"kubectl-edit\" using apps/v1"
            )
        );
        assert_eq!(causes[3], Cause::new("FieldManagerConflict", ".spec.replicas", "conflict with \"z-applier\""));
    }

    #[test]
    fn force_takes_ownership() {
        let rules = rules();
        let live = apply(None, config(json!({"replicas": 1, "paused": true})), "a").unwrap();
        let applied = config(json!({"replicas": 2}));
        let forced =
            server_side_apply(ApplyRequest { force: true, now: T2, ..request(Some(&live), &applied, "b", &rules) })
                .unwrap();
        assert_eq!(forced["spec"], json!({"replicas": 2, "paused": true}));
        assert_eq!(fields_of(&forced, "a"), json!({"f:spec": {"f:paused": {}}}));
        assert_eq!(fields_of(&forced, "b"), json!({"f:spec": {"f:replicas": {}}}));
    }

    #[test]
    fn forcing_every_field_away_drops_the_entry() {
        let rules = rules();
        let live = apply(None, config(json!({"replicas": 1})), "a").unwrap();
        let applied = config(json!({"replicas": 2}));
        let forced =
            server_side_apply(ApplyRequest { force: true, ..request(Some(&live), &applied, "b", &rules) }).unwrap();
        assert_eq!(managers(&forced), ["b"]);
    }

    #[test]
    fn the_same_value_from_two_appliers_is_shared() {
        let live = apply(None, config(json!({"replicas": 1})), "a").unwrap();
        let live = apply(Some(&live), config(json!({"replicas": 1})), "b").unwrap();
        assert_eq!(fields_of(&live, "a"), json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(fields_of(&live, "b"), json!({"f:spec": {"f:replicas": {}}}));
        let err = apply(Some(&live), config(json!({"replicas": 3})), "c").unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\nconflicts with \"b\":\n- .spec.replicas"
        );
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_co_owned() {
        let live = apply(None, config(json!({"replicas": 1, "paused": true})), "a").unwrap();
        let live = apply(Some(&live), config(json!({"replicas": 1})), "b").unwrap();
        let live = apply(Some(&live), config(json!({})), "a").unwrap();
        assert_eq!(live["spec"], json!({"replicas": 1}), "paused was only a's; replicas is b's too");
        assert_eq!(managers(&live), ["b"]);
    }

    #[test]
    fn pruning_removes_maps_and_lists_it_empties() {
        let mut labelled = config(json!({"template": {"tags": ["a"], "x": 1}, "containers": [{"name": "c"}]}));
        labelled["metadata"]["labels"] = json!({"app": "web"});
        let live = apply(None, labelled, "a").unwrap();
        let live = apply(Some(&live), config(json!({"replicas": 1})), "a").unwrap();
        assert_eq!(live["spec"], json!({"replicas": 1}));
        assert_eq!(live["metadata"].get("labels"), None);
        assert_eq!(live["metadata"]["name"], "web");
    }

    #[test]
    fn pruning_keeps_items_and_their_keys_while_others_own_fields_in_them() {
        let rules = rules();
        let live =
            apply(None, config(json!({"containers": [{"name": "c", "image": "one", "tty": true}]})), "a").unwrap();
        let mut edited = live.clone();
        edited["spec"]["containers"][0]["image"] = json!("two");
        let record =
            UpdateRecord { manager: "kubectl-edit", api_version: "apps/v1", subresource: None, now: T2, rules: &rules };
        record_update(Some(&live), &mut edited, record);
        let live = apply(Some(&edited), config(json!({"containers": []})), "a").unwrap();
        assert_eq!(live["spec"]["containers"], json!([{"name": "c", "image": "two"}]));
        assert_eq!(managers(&live), ["kubectl-edit"]);
    }

    #[test]
    fn a_no_op_apply_keeps_the_time_but_records_shared_ownership() {
        let rules = rules();
        let live = apply(None, config(json!({"replicas": 1})), "a").unwrap();
        let same = config(json!({"replicas": 1}));
        let again = server_side_apply(ApplyRequest { now: T2, ..request(Some(&live), &same, "a", &rules) }).unwrap();
        assert_eq!(again, live);
        let shared = server_side_apply(ApplyRequest { now: T2, ..request(Some(&live), &same, "b", &rules) }).unwrap();
        let entries = read_entries(&shared).unwrap();
        assert_eq!(entries[0].manager, "b", "entries without a time sort first");
        assert_eq!(entries[0].time, None);
        assert!(shared["metadata"]["managedFields"][0].get("time").is_none());
        assert_eq!((entries[1].manager.as_str(), entries[1].time.as_deref()), ("a", Some(T1)));
    }

    #[test]
    fn an_applier_may_change_its_own_fields() {
        let live = apply(None, config(json!({"replicas": 1})), "a").unwrap();
        let rules = rules();
        let applied = config(json!({"replicas": 5}));
        let live = server_side_apply(ApplyRequest { now: T2, ..request(Some(&live), &applied, "a", &rules) }).unwrap();
        assert_eq!(live["spec"]["replicas"], 5);
        let entries = read_entries(&live).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].time.as_deref(), Some(T2));
    }

    #[test]
    fn map_lists_merge_by_key_and_prune_per_item() {
        let live = apply(None, config(json!({"containers": [{"name": "app", "image": "app:1"}]})), "a").unwrap();
        let live =
            apply(Some(&live), config(json!({"containers": [{"name": "sidecar", "image": "proxy"}]})), "b").unwrap();
        assert_eq!(
            live["spec"]["containers"],
            json!([{"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "proxy"}])
        );
        assert_eq!(
            fields_of(&live, "a"),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        let live = apply(Some(&live), config(json!({"containers": [{"name": "app", "image": "app:2"}]})), "a").unwrap();
        assert_eq!(live["spec"]["containers"][0], json!({"name": "app", "image": "app:2"}));
        let live = apply(Some(&live), config(json!({"containers": []})), "a").unwrap();
        assert_eq!(live["spec"]["containers"], json!([{"name": "sidecar", "image": "proxy"}]));
    }

    #[test]
    fn set_lists_merge_by_value() {
        let mut first = config(json!({"tags": ["a", "b"]}));
        first["metadata"]["finalizers"] = json!(["x/one"]);
        let live = apply(None, first, "a").unwrap();
        let mut second = config(json!({"tags": ["c", "a"]}));
        second["metadata"]["finalizers"] = json!(["x/two"]);
        let live = apply(Some(&live), second, "b").unwrap();
        assert_eq!(live["spec"]["tags"], json!(["c", "a", "b"]));
        assert_eq!(live["metadata"]["finalizers"], json!(["x/one", "x/two"]));
        assert_eq!(
            fields_of(&live, "b"),
            json!({"f:metadata": {"f:finalizers": {"v:\"x/two\"": {}}}, "f:spec": {"f:tags": {"v:\"a\"": {}, "v:\"c\"": {}}}})
        );
        let live = apply(Some(&live), config(json!({})), "a").unwrap();
        assert_eq!(live["spec"]["tags"], json!(["c", "a"]), "b is kept as only a applied it; a is shared");
        assert_eq!(live["metadata"]["finalizers"], json!(["x/two"]));
    }

    #[test]
    fn atomic_values_are_replaced_and_owned_whole() {
        let live = apply(None, config(json!({"selector": {"app": "web"}, "args": ["-v"]})), "a").unwrap();
        let live = apply(Some(&live), config(json!({"selector": {"tier": "db"}, "args": ["-q"]})), "a").unwrap();
        assert_eq!(live["spec"], json!({"selector": {"tier": "db"}, "args": ["-q"]}));
        assert_eq!(fields_of(&live, "a"), json!({"f:spec": {"f:args": {}, "f:selector": {}}}));
        let err = apply(Some(&live), config(json!({"selector": {"tier": "web"}})), "b").unwrap_err();
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"a\": .spec.selector");
    }

    #[test]
    fn fields_set_by_an_update_conflict_with_a_later_apply() {
        let rules = rules();
        let mut created = config(json!({"replicas": 1}));
        record_update(
            None,
            &mut created,
            UpdateRecord {
                manager: "kubectl-client-side-apply",
                api_version: "apps/v1",
                subresource: None,
                now: T1,
                rules: &rules,
            },
        );
        let applied = config(json!({"replicas": 4}));
        let err = server_side_apply(request(Some(&created), &applied, "ctl", &rules)).unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        let same = config(json!({"replicas": 1}));
        let shared = server_side_apply(request(Some(&created), &same, "ctl", &rules)).unwrap();
        assert_eq!(managers(&shared), ["ctl", "kubectl-client-side-apply"]);
    }

    #[test]
    fn status_is_applied_only_through_the_status_subresource() {
        let rules = rules();
        let mut with_status = config(json!({"replicas": 1}));
        with_status["status"] = json!({"ready": 1});
        let main = ApplyRequest { has_status_subresource: true, ..request(None, &with_status, "ctl", &rules) };
        let live = server_side_apply(main).unwrap();
        assert!(live.get("status").is_none());
        assert_eq!(fields_of(&live, "ctl"), json!({"f:spec": {"f:replicas": {}}}));

        let mut status_only = config(json!({"replicas": 9}));
        status_only["status"] = json!({"ready": 1});
        let status = ApplyRequest {
            subresource: Some("status"),
            has_status_subresource: true,
            ..request(Some(&live), &status_only, "ctl", &rules)
        };
        let live = server_side_apply(status).unwrap();
        assert_eq!(live["spec"]["replicas"], 1);
        assert_eq!(live["status"], json!({"ready": 1}));
        let entries = managed_fields::read_entries(&live).unwrap();
        assert_eq!(entries.len(), 2, "one entry per subresource");
        let status_entry = entries.iter().find(|e| e.subresource.as_deref() == Some("status")).unwrap();
        assert_eq!(status_entry.fields.to_fields_v1(), json!({"f:status": {"f:ready": {}}}));
        assert_eq!(live["metadata"]["managedFields"][1]["subresource"], "status");

        let without = ApplyRequest { has_status_subresource: false, ..request(None, &with_status, "ctl", &rules) };
        assert_eq!(server_side_apply(without).unwrap()["status"], json!({"ready": 1}));
    }

    #[test]
    fn rejects_configurations_that_are_not_objects_or_carry_managed_fields() {
        let err = apply(None, json!([1]), "a").unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "the applied configuration must be an object"));
        let mut with_fields = config(json!({}));
        with_fields["metadata"]["managedFields"] = json!([]);
        let err = apply(None, with_fields, "a").unwrap_err();
        assert_eq!(
            (err.code, err.reason.as_str(), err.message.as_str()),
            (400, "BadRequest", "metadata.managedFields must be nil")
        );
        let mut null_fields = config(json!({}));
        null_fields["metadata"]["managedFields"] = Value::Null;
        assert!(apply(None, null_fields, "a").is_ok());
        let err = apply(None, json!({"metadata": "x"}), "a").unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "metadata: expected an object, got \"x\""));
    }

    #[test]
    fn rejects_list_items_without_keys_or_duplicated() {
        let err = apply(None, config(json!({"containers": [{"image": "x"}]})), "a").unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "failed to create typed patch object (ns/web; apps/v1, Kind=Deployment): .spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}, {"name": "c"}], "tags": ["a", "a"]}});
        let err = apply(None, pod, "a").unwrap_err();
        assert_eq!(
            err.message,
            "failed to create typed patch object (/p; /v1, Kind=Pod): errors:\n  .spec.containers: duplicate entries for key [name=\"c\"]\n  .spec.tags: duplicate entries for value [=\"a\"]"
        );
    }

    #[test]
    fn metadata_null_leaves_live_metadata_alone() {
        let live = apply(None, config(json!({"replicas": 1})), "a").unwrap();
        let object = apply(Some(&live), json!({"metadata": null, "spec": {"paused": true}}), "b").unwrap();
        assert_eq!(object["metadata"]["name"], "web");
        assert_eq!(managers(&object), ["a", "b"]);
    }
}
