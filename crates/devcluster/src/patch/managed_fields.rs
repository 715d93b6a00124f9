//! `metadata.managedFields`: reading and writing its entries, and its upkeep for writes that are not
//! server-side apply (create, update, patch), so that a later apply sees who set what.

use super::fieldset::{FieldPath, FieldSet};
use super::rules::MergeRules;
use super::structured;
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// `metadata` fields that describe the object rather than configure it: never owned, ignored in applied
/// configurations (as the API server's "strip meta" manager does).
const UNOWNED_METADATA: [&str; 9] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "generation",
    "managedFields",
    "resourceVersion",
    "deletionTimestamp",
];

/// The operation a managedFields entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One `ManagedFieldsEntry`: the fields one manager owns through one kind of operation.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedFieldsEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// RFC 3339 time of the manager's last change.
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    /// Whether both entries belong to the same manager as the API server identifies them: appliers by
    /// name and subresource, updaters also by `apiVersion`.
    pub fn same_manager(&self, other: &Self) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// The manager as conflict messages name it: `"kubectl" with subresource "status" using v1`.
    pub fn describe(&self) -> String {
        let mut text = Value::String(self.manager.clone()).to_string();
        if let Some(subresource) = &self.subresource {
            text.push_str(&format!(" with subresource {}", Value::String(subresource.clone())));
        }
        if self.operation == Operation::Update {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }

    /// The key conflicts are grouped and sorted by, standing for the API server's manager identifier.
    pub(crate) fn identity(&self) -> (&str, Operation, &str, Option<&str>) {
        let api_version = if self.operation == Operation::Apply { "" } else { self.api_version.as_str() };
        (&self.manager, self.operation, api_version, self.subresource.as_deref())
    }

    pub fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation.as_str()));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), json!(subresource));
        }
        Value::Object(entry)
    }

    /// Decodes one entry; the error names the entry's field that is wrong.
    pub fn from_json(entry: &Value) -> Result<Self, String> {
        let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_string);
        let operation = match entry.get("operation").and_then(Value::as_str) {
            Some("Apply") => Operation::Apply,
            Some("Update") | None => Operation::Update,
            Some(other) => {
                return Err(format!("operation: unsupported value {other:?}: expected \"Apply\" or \"Update\""));
            }
        };
        match entry.get("fieldsType").and_then(Value::as_str) {
            Some("FieldsV1") | None => {}
            Some(other) => return Err(format!("fieldsType: unsupported value {other:?}: expected \"FieldsV1\"")),
        }
        let fields = match entry.get("fieldsV1") {
            Some(fields) => FieldSet::from_fields_v1(fields).map_err(|e| format!("fieldsV1: {e}"))?,
            None => FieldSet::new(),
        };
        Ok(Self {
            manager: text("manager").unwrap_or_default(),
            operation,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields,
        })
    }
}

/// The entries of `object.metadata.managedFields` (none when absent). Errors name the entry index.
pub fn read_entries(object: &Value) -> Result<Vec<ManagedFieldsEntry>, String> {
    match object.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => entries
            .iter()
            .enumerate()
            .map(|(i, e)| ManagedFieldsEntry::from_json(e).map_err(|err| format!("metadata.managedFields[{i}].{err}")))
            .collect(),
        Some(other) => Err(format!("metadata.managedFields: expected a list, got {other}")),
    }
}

/// Like `read_entries`, skipping entries that do not decode: stored objects are never rejected for them.
pub(crate) fn read_entries_lenient(object: &Value) -> Vec<ManagedFieldsEntry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(|e| ManagedFieldsEntry::from_json(e).ok()).collect())
        .unwrap_or_default()
}

/// The API server keeps at most this many `Update` entries, folding the oldest into `ancient-changes`.
pub const MAX_UPDATE_ENTRIES: usize = 10;

/// The manager the oldest `Update` entries are folded into, one entry per `apiVersion`.
pub const ANCIENT_CHANGES_MANAGER: &str = "ancient-changes";

/// Writes `entries` to `object.metadata.managedFields`, dropping empty ones, capping `Update` entries at
/// `MAX_UPDATE_ENTRIES` and sorting them as the API server does (operation, time, manager, apiVersion,
/// subresource); removes the field when none remain.
pub fn write_entries(object: &mut Value, mut entries: Vec<ManagedFieldsEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    cap_update_entries(&mut entries);
    entries.sort_by(entry_order);
    let Some(object) = object.as_object_mut() else {
        return;
    };
    let metadata = object.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata
            .insert("managedFields".into(), Value::Array(entries.iter().map(ManagedFieldsEntry::to_json).collect()));
    }
}

/// Folds the oldest `Update` entries into one `ancient-changes` entry per `apiVersion` until at most
/// `MAX_UPDATE_ENTRIES` remain, so managers that write under ever new names cannot grow the object forever.
fn cap_update_entries(entries: &mut Vec<ManagedFieldsEntry>) {
    let mut updaters: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].operation == Operation::Update).collect();
    if updaters.len() <= MAX_UPDATE_ENTRIES {
        return;
    }
    updaters.sort_by(|&a, &b| {
        entries[a].time.cmp(&entries[b].time).then_with(|| entries[a].manager.cmp(&entries[b].manager))
    });
    let mut remaining = updaters.len();
    let mut folded = vec![false; entries.len()];
    let mut first_of_version: BTreeMap<String, usize> = BTreeMap::new();
    for oldest in updaters {
        if remaining <= MAX_UPDATE_ENTRIES {
            break;
        }
        let version = entries[oldest].api_version.clone();
        let existing_bucket = entries.iter().position(|e| {
            e.operation == Operation::Update && e.manager == ANCIENT_CHANGES_MANAGER && e.api_version == version
        });
        let bucket = match (existing_bucket, first_of_version.get(&version)) {
            (Some(bucket), _) if bucket != oldest => bucket,
            (_, Some(&first)) => {
                entries[first].manager = ANCIENT_CHANGES_MANAGER.to_string();
                entries[first].subresource = None;
                first
            }
            _ => {
                first_of_version.insert(version, oldest);
                continue;
            }
        };
        let fields = entries[oldest].fields.clone();
        entries[bucket].fields = entries[bucket].fields.union(&fields);
        entries[bucket].time = entries[oldest].time.clone();
        folded[oldest] = true;
        remaining -= 1;
    }
    let mut index = 0;
    entries.retain(|_| {
        index += 1;
        !folded[index - 1]
    });
}

fn entry_order(a: &ManagedFieldsEntry, b: &ManagedFieldsEntry) -> Ordering {
    a.operation
        .cmp(&b.operation)
        .then_with(|| a.time.cmp(&b.time))
        .then_with(|| a.manager.cmp(&b.manager))
        .then_with(|| a.api_version.cmp(&b.api_version))
        .then_with(|| a.subresource.cmp(&b.subresource))
}

/// The object without what nobody owns: `apiVersion`, `kind` and the identity and bookkeeping fields of
/// `metadata`.
pub(crate) fn owned_view(object: &Value) -> Value {
    let Value::Object(map) = object else { return object.clone() };
    // Built from the kept fields only: the managed fields are often the larger part of an object,
    // and every apply takes this view of the live object and of the merged one.
    let view = map.iter().filter(|(name, _)| !matches!(name.as_str(), "apiVersion" | "kind")).map(|(name, value)| {
        let value = match (name.as_str(), value) {
            ("metadata", Value::Object(metadata)) => Value::Object(
                metadata
                    .iter()
                    .filter(|(field, _)| !UNOWNED_METADATA.contains(&field.as_str()))
                    .map(|(field, value)| (field.clone(), value.clone()))
                    .collect(),
            ),
            _ => value.clone(),
        };
        (name.clone(), value)
    });
    Value::Object(view.collect())
}

/// Removes `metadata` itself, which is never owned (only fields inside it are).
pub(crate) fn without_metadata_root(mut set: FieldSet) -> FieldSet {
    set.remove(&FieldPath::fields(&["metadata"]));
    set
}

/// One non-apply write, for recording field ownership.
#[derive(Debug, Clone, Copy)]
pub struct UpdateRecord<'a> {
    /// The manager: the `fieldManager` parameter, or one derived from the User-Agent.
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub now: &'a str,
    pub rules: &'a MergeRules,
}

/// Records in `new.metadata.managedFields` that `record.manager` (operation `Update`) owns the fields it
/// changed relative to `old`, and removes those fields from other managers' sets.
///
/// The starting entries are those the client sent in `new` when it sent any that decode (so clients can
/// rewrite managedFields; `[{}]` clears them), else those of `old`, so clients unaware of managedFields
/// cannot drop them. Subresource writes always start from `old`. Fields the write removed leave every
/// manager's set; entries left empty are dropped.
pub fn record_update(old: Option<&Value>, new: &mut Value, record: UpdateRecord<'_>) {
    let sent = match new.pointer("/metadata/managedFields") {
        Some(Value::Array(entries)) if !entries.is_empty() && record.subresource.is_none() => read_entries(new).ok(),
        _ => None,
    };
    let mut entries = sent.unwrap_or_else(|| old.map(read_entries_lenient).unwrap_or_default());

    let old_view = old.map(owned_view);
    let comparison = structured::compare(old_view.as_ref(), &owned_view(new), record.rules);
    let changed = without_metadata_root(comparison.changed());
    let removed = without_metadata_root(comparison.removed);

    for entry in &mut entries {
        entry.fields = entry.fields.difference(&changed).without_prefixes(&removed);
    }
    if !changed.is_empty() {
        let updater = ManagedFieldsEntry {
            manager: record.manager.to_string(),
            operation: Operation::Update,
            api_version: record.api_version.to_string(),
            time: Some(record.now.to_string()),
            subresource: record.subresource.map(str::to_string),
            fields: changed,
        };
        match entries.iter_mut().find(|e| e.same_manager(&updater)) {
            Some(existing) => {
                existing.fields = existing.fields.union(&updater.fields);
                existing.time = updater.time;
            }
            None => entries.push(updater),
        }
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-01-01T00:00:00Z";
    const T2: &str = "2026-01-02T00:00:00Z";

    fn record<'a>(manager: &'a str, now: &'a str, rules: &'a MergeRules) -> UpdateRecord<'a> {
        UpdateRecord { manager, api_version: "apps/v1", subresource: None, now, rules }
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "1", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "image": image}
        })
    }

    #[test]
    fn create_records_every_field_but_identity() {
        let rules = MergeRules::metadata_only();
        let mut new = deployment(1, "nginx");
        record_update(None, &mut new, record("kubectl-create", T1, &rules));
        assert_eq!(
            new["metadata"]["managedFields"],
            json!([{
                "manager": "kubectl-create",
                "operation": "Update",
                "apiVersion": "apps/v1",
                "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {".": {}, "f:image": {}, "f:replicas": {}}
                }
            }])
        );
    }

    #[test]
    fn update_moves_changed_fields_to_the_updater() {
        let rules = MergeRules::metadata_only();
        let mut old = deployment(1, "nginx");
        record_update(None, &mut old, record("creator", T1, &rules));
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        record_update(Some(&old), &mut new, record("kubectl-edit", T2, &rules));
        let entries = read_entries(&new).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].manager, "creator");
        assert_eq!(entries[0].time.as_deref(), Some(T1));
        assert!(!entries[0].fields.contains(&FieldPath::fields(&["spec", "replicas"])));
        assert!(entries[0].fields.contains(&FieldPath::fields(&["spec", "image"])));
        assert_eq!(entries[1].manager, "kubectl-edit");
        assert_eq!(entries[1].time.as_deref(), Some(T2));
        assert_eq!(entries[1].fields.to_fields_v1(), json!({"f:spec": {"f:replicas": {}}}));
    }

    #[test]
    fn same_manager_accumulates_into_one_entry() {
        let rules = MergeRules::metadata_only();
        let mut v1 = deployment(1, "nginx");
        record_update(None, &mut v1, record("a", T1, &rules));
        let mut v2 = v1.clone();
        v2["spec"]["replicas"] = json!(2);
        record_update(Some(&v1), &mut v2, record("b", T1, &rules));
        let mut v3 = v2.clone();
        v3["spec"]["image"] = json!("httpd");
        record_update(Some(&v2), &mut v3, record("b", T2, &rules));
        let entries = read_entries(&v3).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].manager, "b");
        assert_eq!(entries[1].time.as_deref(), Some(T2));
        assert_eq!(entries[1].fields.to_fields_v1(), json!({"f:spec": {"f:image": {}, "f:replicas": {}}}));
    }

    #[test]
    fn entries_left_empty_are_dropped_and_removed_fields_disowned() {
        let rules = MergeRules::metadata_only();
        let mut v1 = json!({"metadata": {"name": "x"}, "spec": {"a": 1}});
        record_update(None, &mut v1, record("a", T1, &rules));
        let mut v2 = v1.clone();
        v2["spec"] = json!({"b": 2});
        record_update(Some(&v1), &mut v2, record("b", T2, &rules));
        let entries = read_entries(&v2).unwrap();
        assert_eq!(entries[0].fields.to_fields_v1(), json!({"f:spec": {}}), "`a` still owns the map it created");
        assert_eq!(entries[1].fields.to_fields_v1(), json!({"f:spec": {"f:b": {}}}));

        let mut v3 = v2.clone();
        v3.as_object_mut().unwrap().remove("spec");
        v3["data"] = json!({"c": 3});
        record_update(Some(&v2), &mut v3, record("c", T2, &rules));
        let entries = read_entries(&v3).unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].manager, "c");
    }

    #[test]
    fn a_write_that_changes_nothing_keeps_entries_and_times() {
        let rules = MergeRules::metadata_only();
        let mut v1 = deployment(1, "nginx");
        record_update(None, &mut v1, record("a", T1, &rules));
        let mut v2 = v1.clone();
        v2["metadata"]["resourceVersion"] = json!("2");
        record_update(Some(&v1), &mut v2, record("b", T2, &rules));
        assert_eq!(v2["metadata"]["managedFields"], v1["metadata"]["managedFields"]);
    }

    #[test]
    fn clients_may_replace_or_clear_managed_fields_but_not_drop_them() {
        let rules = MergeRules::metadata_only();
        let mut v1 = deployment(1, "nginx");
        record_update(None, &mut v1, record("a", T1, &rules));

        let mut unaware = v1.clone();
        unaware["metadata"].as_object_mut().unwrap().remove("managedFields");
        record_update(Some(&v1), &mut unaware, record("b", T2, &rules));
        assert_eq!(unaware["metadata"]["managedFields"], v1["metadata"]["managedFields"]);

        let mut cleared = v1.clone();
        cleared["metadata"]["managedFields"] = json!([{}]);
        record_update(Some(&v1), &mut cleared, record("b", T2, &rules));
        assert!(cleared["metadata"].get("managedFields").is_none());

        let mut status = v1.clone();
        status["metadata"]["managedFields"] = json!([{}]);
        status["status"] = json!({"ready": true});
        let status_record = UpdateRecord { subresource: Some("status"), ..record("ctl", T2, &rules) };
        record_update(Some(&v1), &mut status, status_record);
        let entries = read_entries(&status).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].subresource.as_deref(), Some("status"));
        assert_eq!(entries[1].to_json()["subresource"], json!("status"));
        assert_eq!(entries[1].fields.to_fields_v1(), json!({"f:status": {".": {}, "f:ready": {}}}));
    }

    #[test]
    fn decoding_errors_name_the_entry_field() {
        let bad_operation = json!({"metadata": {"managedFields": [{"manager": "a", "operation": "Patch"}]}});
        assert_eq!(
            read_entries(&bad_operation).unwrap_err(),
            "metadata.managedFields[0].operation: unsupported value \"Patch\": expected \"Apply\" or \"Update\""
        );
        let bad_type = json!({"metadata": {"managedFields": [{"manager": "a", "fieldsType": "FieldsV2"}]}});
        assert_eq!(
            read_entries(&bad_type).unwrap_err(),
            "metadata.managedFields[0].fieldsType: unsupported value \"FieldsV2\": expected \"FieldsV1\""
        );
        let bad_fields = json!({"metadata": {"managedFields": [{"manager": "a", "fieldsV1": {"x": {}}}]}});
        assert!(
            read_entries(&bad_fields)
                .unwrap_err()
                .starts_with("metadata.managedFields[0].fieldsV1: invalid fieldsV1 key")
        );
        let not_a_list = json!({"metadata": {"managedFields": {}}});
        assert_eq!(read_entries(&not_a_list).unwrap_err(), "metadata.managedFields: expected a list, got {}");
        assert_eq!(read_entries_lenient(&bad_operation), Vec::new());
    }

    #[test]
    fn entries_sort_apply_first_then_by_time() {
        let entry = |manager: &str, operation, time: &str| ManagedFieldsEntry {
            manager: manager.into(),
            operation,
            api_version: "v1".into(),
            time: Some(time.into()),
            subresource: None,
            fields: [FieldPath::fields(&["spec", manager])].into_iter().collect(),
        };
        let mut object = json!({});
        write_entries(
            &mut object,
            vec![
                entry("u2", Operation::Update, T1),
                entry("a", Operation::Apply, T2),
                entry("u1", Operation::Update, T1),
            ],
        );
        let managers: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["a", "u1", "u2"]);
    }

    fn update_entry(manager: &str, api_version: &str, time: &str) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: manager.into(),
            operation: Operation::Update,
            api_version: api_version.into(),
            time: Some(time.into()),
            subresource: None,
            fields: [FieldPath::fields(&["spec", manager])].into_iter().collect(),
        }
    }

    #[test]
    fn update_entries_are_capped_by_folding_the_oldest_per_version() {
        let mut entries: Vec<ManagedFieldsEntry> =
            (0..12).map(|i| update_entry(&format!("m{i:02}"), "v1", &format!("2026-01-01T00:00:{i:02}Z"))).collect();
        entries.push(ManagedFieldsEntry { operation: Operation::Apply, ..update_entry("applier", "v1", T1) });
        let mut object = json!({});
        write_entries(&mut object, entries);
        let entries = read_entries(&object).unwrap();
        let updaters: Vec<&ManagedFieldsEntry> = entries.iter().filter(|e| e.operation == Operation::Update).collect();
        assert_eq!(updaters.len(), MAX_UPDATE_ENTRIES);
        assert_eq!(entries.len(), MAX_UPDATE_ENTRIES + 1, "apply entries are never folded");
        let ancient = updaters.iter().find(|e| e.manager == ANCIENT_CHANGES_MANAGER).unwrap();
        assert_eq!(ancient.fields.to_fields_v1(), json!({"f:spec": {"f:m00": {}, "f:m01": {}, "f:m02": {}}}));
        assert_eq!(ancient.time.as_deref(), Some("2026-01-01T00:00:02Z"));
        assert!(!updaters.iter().any(|e| ["m00", "m01", "m02"].contains(&e.manager.as_str())));
    }

    #[test]
    fn capping_reuses_an_existing_bucket_and_keeps_versions_apart() {
        let mut entries = vec![update_entry(ANCIENT_CHANGES_MANAGER, "v1", "2026-01-01T00:00:30Z")];
        entries.extend((0..10).map(|i| {
            update_entry(&format!("m{i:02}"), if i == 0 { "v2" } else { "v1" }, &format!("2026-01-01T00:00:{i:02}Z"))
        }));
        let mut object = json!({});
        write_entries(&mut object, entries);
        let entries = read_entries(&object).unwrap();
        assert_eq!(entries.len(), MAX_UPDATE_ENTRIES);
        assert!(
            entries.iter().any(|e| e.manager == "m00" && e.api_version == "v2"),
            "only one v2 entry: nothing to fold it with"
        );
        let ancient = entries.iter().find(|e| e.manager == ANCIENT_CHANGES_MANAGER).unwrap();
        assert_eq!(ancient.fields.to_fields_v1(), json!({"f:spec": {"f:ancient-changes": {}, "f:m01": {}}}));
    }

    #[test]
    fn describes_managers_like_conflict_messages() {
        let mut entry = ManagedFieldsEntry {
            manager: "kubectl-client-side-apply".into(),
            operation: Operation::Update,
            api_version: "apps/v1".into(),
            time: None,
            subresource: None,
            fields: FieldSet::new(),
        };
        assert_eq!(entry.describe(), "\"kubectl-client-side-apply\" using apps/v1");
        entry.operation = Operation::Apply;
        entry.subresource = Some("status".into());
        assert_eq!(entry.describe(), "\"kubectl-client-side-apply\" with subresource \"status\"");
    }
}
