//! CustomResourceDefinitions: checking them, serving their resources, and cleaning up after them.

use super::ApiServer;
use crate::error::{ApiError, Cause};
use crate::meta;
use crate::patch::rules::MergeRules;
use crate::registry::{Origin, PrinterColumn, ResourceInfo};
use crate::schema::{CrdSchema, SchemaContext};
use crate::store::{ObjectKey, resource_version_of};
use serde_json::{Value, json};
use std::sync::Arc;

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn printer_columns(version: &Value) -> Vec<PrinterColumn> {
    version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| PrinterColumn {
                    name: meta::str_at(c, "/name").to_string(),
                    type_: meta::str_at(c, "/type").to_string(),
                    format: meta::str_at(c, "/format").to_string(),
                    description: meta::str_at(c, "/description").to_string(),
                    json_path: meta::str_at(c, "/jsonPath").to_string(),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The resources a CRD serves, one per served version, with their compiled schemas.
fn served_versions(crd: &Value) -> Result<Vec<(ResourceInfo, CrdSchema)>, Vec<Cause>> {
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let group = meta::str_at(&spec, "/group").to_string();
    let kind = meta::str_at(&spec, "/names/kind").to_string();
    let plural = meta::str_at(&spec, "/names/plural").to_string();
    let singular = match meta::str_at(&spec, "/names/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let list_kind = match meta::str_at(&spec, "/names/listKind") {
        "" => format!("{kind}List"),
        s => s.to_string(),
    };
    let namespaced = meta::str_at(&spec, "/scope") == "Namespaced";
    let mut out = Vec::new();
    let mut causes = Vec::new();
    for (i, version) in spec.get("versions").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if version.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = meta::str_at(version, "/name").to_string();
        let schema = version
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        let context = SchemaContext { group: group.clone(), version: name.clone(), kind: kind.clone() };
        match CrdSchema::compile(&schema, context) {
            Ok(compiled) => {
                let info = ResourceInfo {
                    group: group.clone(),
                    version: name,
                    resource: plural.clone(),
                    singular: singular.clone(),
                    kind: kind.clone(),
                    list_kind: list_kind.clone(),
                    namespaced,
                    short_names: strings(spec.pointer("/names/shortNames")),
                    categories: strings(spec.pointer("/names/categories")),
                    subresources: ["status", "scale"]
                        .into_iter()
                        .filter(|sub| version.pointer(&format!("/subresources/{sub}")).is_some())
                        .map(str::to_owned)
                        .collect(),
                    printer_columns: printer_columns(version),
                    schema: Some(std::sync::Arc::new(schema)),
                    origin: Origin::Custom { crd: meta::str_at(crd, "/metadata/name").to_string() },
                };
                out.push((info, compiled));
            }
            Err(mut errs) => {
                for cause in &mut errs {
                    cause.field = format!("spec.versions[{i}].schema.{}", cause.field);
                }
                causes.extend(errs);
            }
        }
    }
    if causes.is_empty() { Ok(out) } else { Err(causes) }
}

impl ApiServer {
    /// The checks a CRD must pass before it is stored.
    pub(super) fn validate_crd(&self, crd: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        let group = meta::str_at(crd, "/spec/group");
        let plural = meta::str_at(crd, "/spec/names/plural");
        let name = meta::str_at(crd, "/metadata/name");
        let required = [
            ("spec.group", group),
            ("spec.names.plural", plural),
            ("spec.names.kind", meta::str_at(crd, "/spec/names/kind")),
        ];
        for (field, value) in required {
            if value.is_empty() {
                causes.push(Cause::new("FieldValueRequired", field, "Required value"));
            }
        }
        let scope = meta::str_at(crd, "/spec/scope");
        if scope != "Namespaced" && scope != "Cluster" {
            causes.push(Cause::new(
                "FieldValueNotSupported",
                "spec.scope",
                format!("Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""),
            ));
        }
        if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
            ));
        }
        let versions = crd.pointer("/spec/versions").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
        if versions == 0 {
            causes.push(Cause::new(
                "FieldValueRequired",
                "spec.versions",
                "Required value: must have exactly one version marked as storage version",
            ));
        }
        let storage = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count())
            .unwrap_or(0);
        if versions > 0 && storage != 1 {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "spec.versions",
                format!("Invalid value: {storage}: must have exactly one version marked as storage version"),
            ));
        }
        if let Some(old) = old {
            for (field, pointer) in [("spec.group", "/spec/group"), ("spec.names.plural", "/spec/names/plural")] {
                if meta::str_at(old, pointer) != meta::str_at(crd, pointer) {
                    causes.push(Cause::new("FieldValueInvalid", field, "Invalid value: field is immutable"));
                }
            }
        }
        if causes.is_empty()
            && let Err(errs) = served_versions(crd)
        {
            causes.extend(errs);
        }
        causes
    }

    /// Serves a stored CRD's versions and marks it `Established`. Returns the CRD with its new status.
    pub(super) fn establish_crd(&self, crd: &Value) -> Result<Option<Value>, ApiError> {
        if crd.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(None);
        }
        let name = meta::str_at(crd, "/metadata/name").to_string();
        let served = served_versions(crd)
            .map_err(|causes| ApiError::invalid("apiextensions.k8s.io", "CustomResourceDefinition", &name, causes))?;
        self.registry.remove_crd(&name);
        if let Ok(mut schemas) = self.schemas.write() {
            schemas.retain(|_, s| s.crd != name);
            for (info, schema) in &served {
                schemas.insert(
                    (info.group.clone(), info.version.clone(), info.resource.clone()),
                    Arc::new(super::CustomSchema {
                        crd: name.clone(),
                        schema: schema.clone(),
                        rules: Arc::new(info.schema.as_deref().map(MergeRules::from_schema).unwrap_or_default()),
                    }),
                );
            }
        }
        for (info, _) in served {
            self.registry.insert(info);
        }
        self.register_custom_versions(crd);
        self.unregister_custom_versions(meta::str_at(crd, "/spec/group"));
        let now = meta::now_rfc3339();
        let condition = |type_: &str, reason: &str, message: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
        let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
        let mut accepted = names.clone();
        if accepted.get("singular").is_none_or(|s| s.as_str() == Some("")) {
            accepted["singular"] = json!(meta::str_at(crd, "/spec/names/kind").to_lowercase());
        }
        if accepted.get("listKind").is_none_or(|s| s.as_str() == Some("")) {
            accepted["listKind"] = json!(format!("{}List", meta::str_at(crd, "/spec/names/kind")));
        }
        // Every version objects were ever stored in stays listed until a user removes it (after
        // migrating them), so the current storage version is appended to the recorded ones.
        let mut stored_versions: Vec<String> = crd
            .pointer("/status/storedVersions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let storage = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .map(|v| meta::str_at(v, "/name").to_string());
        for version in storage {
            if !stored_versions.contains(&version) {
                stored_versions.push(version);
            }
        }
        let status = json!({
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
            "acceptedNames": accepted,
            "storedVersions": stored_versions,
        });
        let same = |old: &Value| {
            old.pointer("/status/acceptedNames") == status.get("acceptedNames")
                && old.pointer("/status/storedVersions") == status.get("storedVersions")
                && old.pointer("/status/conditions").and_then(Value::as_array).map(Vec::len) == Some(2)
        };
        if same(crd) {
            return Ok(None);
        }
        let key = ObjectKey::new("apiextensions.k8s.io", "customresourcedefinitions", "", &name);
        let Some(current) = self.store.get(&key) else { return Ok(None) };
        let mut updated = (*current).clone();
        updated["status"] = status;
        let stored = self
            .store
            .update(key, resource_version_of(&current), updated)
            .map_err(|e| ApiError::internal(format!("cannot record the status of CRD {name}: {e}")))?;
        Ok(Some((*stored).clone()))
    }

    /// Stops serving a deleted CRD and deletes every object of it, as the real server's cleanup does.
    pub(super) fn remove_crd(&self, crd: &Value) {
        let name = meta::str_at(crd, "/metadata/name").to_string();
        let group = meta::str_at(crd, "/spec/group").to_string();
        let plural = meta::str_at(crd, "/spec/names/plural").to_string();
        if self.registry.any_version(&group, &plural).is_some() {
            for object in self.store.list(&group, &plural, None).objects {
                let ns = meta::str_at(&object, "/metadata/namespace");
                let obj_name = meta::str_at(&object, "/metadata/name");
                let key = ObjectKey::new(&group, &plural, ns, obj_name);
                if let Err(e) = self.remove_object(&key, 0) {
                    tracing::warn!(crd = %name, object = obj_name, error = %e, "cannot delete a custom resource of a deleted CRD");
                }
            }
        }
        self.registry.remove_crd(&name);
        if let Ok(mut schemas) = self.schemas.write() {
            schemas.retain(|_, s| s.crd != name);
        }
        self.unregister_custom_versions(&group);
    }
}

/// The finalizer that holds a deleted CRD until its custom resources are gone.
pub(crate) const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Sets a CRD's condition of `type_`, replacing the one it had.
fn set_condition(crd: &mut Value, type_: &str, status: &str, reason: &str, message: &str) {
    let condition = json!({"type": type_, "status": status, "lastTransitionTime": meta::now_rfc3339(),
        "reason": reason, "message": message});
    if !crd.get("status").is_some_and(Value::is_object) {
        crd["status"] = json!({});
    }
    let conditions = crd["status"].get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != type_).collect();
    conditions.push(condition);
    crd["status"]["conditions"] = Value::Array(conditions);
}

/// What deleting a CRD marks, as its REST storage does: the cleanup finalizer and the
/// `Terminating` condition; the custom resources are deleted next.
pub(super) fn mark_terminating(crd: &mut Value) {
    let mut finalizers = meta::finalizers(crd);
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        finalizers.push(CLEANUP_FINALIZER.to_string());
        meta::set_finalizers(crd, &finalizers);
    }
    let message = "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon";
    set_condition(crd, "Terminating", "True", "InstanceDeletionPending", message);
}

impl ApiServer {
    /// Deletes a terminating CRD's custom resources (each as a client's delete would, finalizers
    /// respected, so watchers see every one go), then releases the CRD.
    pub(super) fn clean_up_crd(&self, key: &ObjectKey, crd: &Value) {
        if !meta::finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER) {
            return;
        }
        let group = meta::str_at(crd, "/spec/group").to_string();
        let plural = meta::str_at(crd, "/spec/names/plural").to_string();
        let remaining = self.store.list(&group, &plural, None).objects;
        if let Some(info) = self.registry.any_version(&group, &plural) {
            let options = super::DeleteOptions::default();
            for object in remaining.iter().filter(|o| o.pointer("/metadata/deletionTimestamp").is_none()) {
                let namespace = meta::str_at(object, "/metadata/namespace");
                let namespace = (!namespace.is_empty()).then_some(namespace);
                if let Err(e) = self.delete_object(&info, namespace, meta::str_at(object, "/metadata/name"), &options)
                    && e.code != 404
                {
                    tracing::debug!(crd = %key.name, error = %e, "custom resource cleanup will retry");
                }
            }
        }
        if !remaining.is_empty() {
            return;
        }
        if let Err(e) = self.remove_finalizer(key, CLEANUP_FINALIZER) {
            tracing::debug!(crd = %key.name, error = %e, "CRD cleanup will retry");
        }
    }

    /// After a custom resource is removed: the cleanup of its terminating CRD may go on.
    pub(super) fn advance_crd_cleanup(&self, removed: &ObjectKey) {
        let Some(info) = self.registry.any_version(&removed.group, &removed.resource) else { return };
        let Origin::Custom { crd } = &info.origin else { return };
        let key = ObjectKey::new("apiextensions.k8s.io", "customresourcedefinitions", "", crd);
        if let Some(object) = self.store.get(&key)
            && object.pointer("/metadata/deletionTimestamp").is_some()
        {
            self.clean_up_crd(&key, &object);
        }
    }

    /// Creating a custom resource of a terminating CRD is refused, as on kube-apiserver.
    pub(super) fn refuse_while_terminating(&self, info: &ResourceInfo) -> Result<(), ApiError> {
        let Origin::Custom { crd } = &info.origin else { return Ok(()) };
        let key = ObjectKey::new("apiextensions.k8s.io", "customresourcedefinitions", "", crd);
        match self.store.get(&key) {
            Some(object) if object.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
            )),
            _ => Ok(()),
        }
    }
}
