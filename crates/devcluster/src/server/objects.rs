//! Object lifecycle semantics shared by the HTTP handlers and the server's own controllers:
//! create, update, patch and delete with metadata upkeep, validation, status subresource rules,
//! finalizers and deletion propagation.

use super::ApiServer;
use super::strategy::Strategy;
use crate::admission::{self, AdmissionRequest, Operation};
use crate::auth::UserInfo;
use crate::builtin::{check_builtin, validate_builtin};
use crate::error::{ApiError, Cause};
use crate::events;
use crate::meta::{self, NameRule};
use crate::patch::apply::{ApplyRequest, server_side_apply};
use crate::patch::managed_fields::{UpdateRecord, record_update};
use crate::patch::rules::MergeRules;
use crate::patch::{PatchType, json::json_patch, merge::merge_patch, strategic::strategic_merge_patch};
use crate::registry::{Origin, ResourceInfo};
use crate::store::{ObjectKey, StoreError, resource_version_of};
use crate::webhooks;
use serde_json::{Value, json};
use std::sync::Arc;

/// How unknown and duplicate fields are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// Who writes and how: the parts of a request that shape a write.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub user: UserInfo,
    pub manager: String,
    pub field_validation: FieldValidation,
    pub dry_run: bool,
    /// Fields the request body repeated (reported like unknown fields).
    pub duplicate_fields: Vec<String>,
    /// Whether webhooks and admission policies have admitted the write already, through a
    /// subresource of its own kind (`scale`): the object's own write is not sent to them again.
    pub admitted: bool,
}

impl WriteContext {
    /// A context for writes the server makes itself.
    pub fn system(manager: &str) -> Self {
        Self {
            user: super::system_user(manager),
            manager: manager.to_string(),
            field_validation: FieldValidation::Ignore,
            dry_run: false,
            duplicate_fields: Vec::new(),
            admitted: false,
        }
    }
}

/// A write through a subresource whose requests carry a kind of their own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubresourceWrite<'a> {
    pub info: &'a ResourceInfo,
    pub subresource: &'a str,
    /// The group, version and kind of the subresource's body (`policy/v1` `Eviction`).
    pub body_kind: (&'a str, &'a str, &'a str),
    pub operation: Operation,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    /// The subresource's object before the write, on updates.
    pub old: Option<&'a Value>,
    pub ctx: &'a WriteContext,
}

/// A stored (or dry-run) object and the warnings to send with it.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// `DeleteOptions`, merged from the body and the query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub dry_run: bool,
    /// The deprecated `orphanDependents` as sent: `false` makes a deletion that must wait a 202.
    pub orphan_dependents: Option<bool>,
    /// Who deletes (admission policies see it); empty for the server's own deletions.
    pub user: UserInfo,
}

/// The outcome of a delete: the object as deleted (or as marked for deletion), and whether it left
/// storage at once.
#[derive(Debug, Clone)]
pub struct Deletion {
    pub object: Value,
    pub immediate: bool,
}

impl Deletion {
    /// The answer kube-apiserver gives (`Store.finalizeDelete` and the DELETE handler): the object
    /// while it waits for finalizers or a grace period, and when the resource returns deleted objects;
    /// otherwise a `Status` naming what was deleted, so that a client can tell a finished deletion
    /// from a pending one. The code is 200, or 202 for a pending deletion that asked for
    /// `orphanDependents: false`.
    pub fn answer(&self, info: &ResourceInfo, options: &DeleteOptions) -> (u16, Value) {
        let code = if !self.immediate && options.orphan_dependents == Some(false) { 202 } else { 200 };
        if !self.immediate || Strategy::of(info).returns_deleted_object {
            return (code, self.object.clone());
        }
        let mut details = serde_json::Map::new();
        details.insert("name".into(), json!(meta::str_at(&self.object, "/metadata/name")));
        if !info.group.is_empty() {
            details.insert("group".into(), json!(info.group));
        }
        details.insert("kind".into(), json!(info.resource));
        details.insert("uid".into(), json!(meta::str_at(&self.object, "/metadata/uid")));
        let status =
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details});
        (code, status)
    }
}

impl DeleteOptions {
    /// The options as a `DeleteOptions` body carries them (webhooks are sent them).
    pub(crate) fn to_json(&self) -> Value {
        let mut options = json!({});
        if let Some(propagation) = self.propagation {
            options["propagationPolicy"] = json!(format!("{propagation:?}"));
        }
        if let Some(seconds) = self.grace_period_seconds {
            options["gracePeriodSeconds"] = json!(seconds);
        }
        let mut preconditions = json!({});
        if let Some(uid) = &self.precondition_uid {
            preconditions["uid"] = json!(uid);
        }
        if let Some(version) = &self.precondition_resource_version {
            preconditions["resourceVersion"] = json!(version);
        }
        if preconditions != json!({}) {
            options["preconditions"] = preconditions;
        }
        if let Some(orphan) = self.orphan_dependents {
            options["orphanDependents"] = json!(orphan);
        }
        options
    }

    pub fn parse_propagation(value: &str) -> Result<Propagation, ApiError> {
        match value {
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            "Orphan" => Ok(Propagation::Orphan),
            other => Err(ApiError::invalid(
                "",
                "DeleteOptions",
                "",
                vec![Cause::new(
                    "FieldValueNotSupported",
                    "propagationPolicy",
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                )],
            )),
        }
    }
}

const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
const ORPHAN_FINALIZER: &str = "orphan";

fn store_error(info: &ResourceInfo, name: &str, err: StoreError) -> ApiError {
    match err {
        StoreError::AlreadyExists => ApiError::already_exists(&info.group, &info.resource, name),
        StoreError::NotFound => ApiError::not_found(&info.group, &info.resource, name),
        StoreError::Conflict { .. } => ApiError::stale(&info.group, &info.resource, name),
        StoreError::Persist(m) => ApiError::internal(m),
    }
}

/// Strict decoding errors or warnings for unknown and duplicate fields.
fn field_problems(
    validation: FieldValidation,
    unknown: &[String],
    duplicate: &[String],
) -> Result<Vec<String>, ApiError> {
    let problems: Vec<String> = duplicate
        .iter()
        .map(|f| format!("duplicate field \"{f}\""))
        .chain(unknown.iter().map(|f| format!("unknown field \"{f}\"")))
        .collect();
    match validation {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(problems),
        FieldValidation::Strict if problems.is_empty() => Ok(Vec::new()),
        FieldValidation::Strict => {
            Err(ApiError::bad_request(format!("strict decoding error: {}", problems.join(", "))))
        }
    }
}

/// Server-side apply needs an explicit `fieldManager`.
fn missing_apply_manager() -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "PatchOptions",
        "",
        vec![Cause::new("FieldValueRequired", "fieldManager", "Required value: is required for apply patch")],
    )
}

/// Metadata only the server sets: writes carry it over from the stored object.
const SERVER_METADATA: &[&str] =
    &["uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds"];

/// Sets `to[field]` to `from[field]`, or removes it when `from` has none.
fn copy_field(from: &Value, to: &mut Value, field: &str) {
    match from.get(field) {
        Some(value) => to[field] = value.clone(),
        None => {
            if let Some(map) = to.as_object_mut() {
                map.remove(field);
            }
        }
    }
}

/// Carries the stored object's values of these metadata fields over to `new`.
fn keep_server_metadata(old: &Value, new: &mut Value, fields: &[&str]) {
    for field in fields {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(v) => set_meta(new, field, v.clone()),
            None => remove_meta(new, field),
        }
    }
}

/// A change outside metadata and status bumps `generation`.
fn bump_generation(old: &Value, new: &mut Value) {
    if meta::spec_changed(old, new) {
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        set_meta(new, "generation", json!(generation));
    }
}

fn set_meta(object: &mut Value, key: &str, value: Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(key.to_string(), value);
    }
}

fn remove_meta(object: &mut Value, key: &str) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove(key);
    }
}

impl ApiServer {
    /// The served resource, or the real server's 404 for an unknown one.
    pub fn resolve(&self, group: &str, version: &str, resource: &str) -> Result<ResourceInfo, ApiError> {
        self.registry.get(group, version, resource).ok_or_else(|| {
            ApiError::new(404, "NotFound", "the server could not find the requested resource").with_details(
                crate::error::Details { group: group.into(), kind: resource.into(), ..Default::default() },
            )
        })
    }

    /// The merge rules of a resource, computed once (per CRD version for custom resources).
    pub(crate) fn merge_rules(&self, info: &ResourceInfo) -> Arc<MergeRules> {
        let cached = match &info.origin {
            Origin::Builtin => self.builtin_rules.get(&(info.group.clone(), info.kind.clone())).cloned(),
            Origin::Custom { .. } => {
                self.schema_for(&info.group, &info.version, &info.resource).map(|s| s.rules.clone())
            }
        };
        cached.unwrap_or_else(|| {
            Arc::new(match &info.origin {
                Origin::Builtin => MergeRules::builtin(&info.group, &info.kind),
                Origin::Custom { .. } => info.schema.as_deref().map(MergeRules::from_schema).unwrap_or_default(),
            })
        })
    }

    pub(super) fn key(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> ObjectKey {
        let ns = if info.namespaced { namespace.unwrap_or("") } else { "" };
        let (group, resource) = info.storage();
        ObjectKey::new(group, resource, ns, name)
    }

    /// A stored object in the form writes through `info` work on (see [`events::write_view`]);
    /// the stored object itself for every resource stored as it is served.
    pub(crate) fn write_view(info: &ResourceInfo, stored: Arc<Value>) -> Arc<Value> {
        events::write_view(info, &stored).map_or(stored, Arc::new)
    }

    /// Stored objects carry the version they were written in; readers see the version they asked for.
    /// An object as served through `info`'s version: with that apiVersion and kind, and, for a
    /// custom resource stored through another version, without the fields that version's schema
    /// does not know (the None conversion: pruned, nothing renamed).
    pub(crate) fn present(info: &ResourceInfo, object: &Value) -> Value {
        Self::present_view(info, object).into_owned()
    }

    /// [`Self::present`] without a copy when the stored object is already as served, as nearly
    /// every object is: its own version's apiVersion and kind.
    pub(crate) fn present_view<'a>(info: &ResourceInfo, object: &'a Value) -> std::borrow::Cow<'a, Value> {
        let as_served = meta::str_at(object, "/kind") == info.kind && {
            let api_version = meta::str_at(object, "/apiVersion");
            match api_version.split_once('/') {
                Some((group, version)) => group == info.group && version == info.version,
                None => info.group.is_empty() && api_version == info.version,
            }
        };
        if as_served {
            return std::borrow::Cow::Borrowed(object);
        }
        std::borrow::Cow::Owned(Self::present_copy(info, object))
    }

    fn present_copy(info: &ResourceInfo, object: &Value) -> Value {
        // Stored core Events read through events.k8s.io; a write's view is converted already.
        if events::is_events_view(info) && meta::str_at(object, "/apiVersion") != events::EVENTS_API_VERSION {
            return events::core_to_events(object);
        }
        let mut out = object.clone();
        let api_version = info.api_version();
        if let (Origin::Custom { .. }, Some(schema)) = (&info.origin, &info.schema)
            && meta::str_at(object, "/apiVersion") != api_version
        {
            crate::schema::prune::prune(schema, &mut out, "", true, &mut Vec::new());
        }
        if let Some(map) = out.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(api_version));
            map.insert("kind".into(), Value::String(info.kind.clone()));
        }
        out
    }

    pub fn get_object(&self, info: &ResourceInfo, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let key = Self::key(info, namespace, name);
        self.store
            .get(&key)
            .map(|o| Self::present(info, &o))
            .ok_or_else(|| ApiError::not_found(&info.group, &info.resource, name))
    }

    /// Checks that the body's apiVersion and kind match the URL.
    fn check_type(info: &ResourceInfo, body: &Value) -> Result<(), ApiError> {
        let api_version = meta::str_at(body, "/apiVersion");
        let kind = meta::str_at(body, "/kind");
        if kind.is_empty() {
            return Err(ApiError::bad_request(format!("Object 'Kind' is missing in '{body}'")));
        }
        if api_version.is_empty() {
            return Err(ApiError::bad_request(format!("Object 'apiVersion' is missing in '{body}'")));
        }
        if api_version != info.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                info.api_version()
            )));
        }
        if kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                info.kind
            )));
        }
        Ok(())
    }

    /// Namespace rules for a write: the body's namespace must match the URL, and the namespace must exist
    /// and not be terminating (for creates).
    fn check_namespace(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        body: &mut Value,
        creating: bool,
    ) -> Result<(), ApiError> {
        if !info.namespaced {
            remove_meta(body, "namespace");
            return Ok(());
        }
        let Some(ns) = namespace else {
            return Err(ApiError::bad_request(
                "the server could not find the requested resource: a namespace is required",
            ));
        };
        let in_body = meta::str_at(body, "/metadata/namespace").to_string();
        if !in_body.is_empty() && in_body != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        set_meta(body, "namespace", Value::String(ns.to_string()));
        if creating {
            let ns_object = self
                .store
                .get(&ObjectKey::new("", "namespaces", "", ns))
                .ok_or_else(|| ApiError::not_found("", "namespaces", ns))?;
            if ns_object.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    crate::error::qualified_resource(&info.group, &info.resource),
                    meta::str_at(body, "/metadata/name"),
                ))
                .with_details(crate::error::Details {
                    name: meta::str_at(body, "/metadata/name").into(),
                    group: info.group.clone(),
                    kind: info.resource.clone(),
                    causes: vec![Cause::new("NamespaceTerminating", "metadata.namespace", format!("namespace {ns} is being terminated"))],
                    retry_after_seconds: None,
                }));
            }
        }
        Ok(())
    }

    /// Admission of the object about to be stored, in kube-apiserver's order: decoding and
    /// defaulting, mutating webhooks (then decoding and defaulting again), validation, admission
    /// policies, validating webhooks and the pod quota. Returns warnings.
    fn admit(
        &self,
        info: &ResourceInfo,
        object: &mut Value,
        old: Option<&Value>,
        subresource: Option<&str>,
        ctx: &WriteContext,
    ) -> Result<Vec<String>, ApiError> {
        let name = meta::str_at(object, "/metadata/name").to_string();
        let unknown = self.normalize(info, object, old)?;
        let namespace = meta::str_at(object, "/metadata/namespace").to_string();
        let operation = if old.is_some() { Operation::Update } else { Operation::Create };
        let request = AdmissionRequest {
            operation,
            user: &ctx.user,
            group: &info.group,
            version: &info.version,
            resource: &info.resource,
            kind: &info.kind,
            subresource,
            namespace: (!namespace.is_empty()).then_some(namespace.as_str()),
            name: &name,
            object: None,
            old_object: old,
            dry_run: ctx.dry_run,
            body_kind: None,
        };
        let webhook_options = webhooks::options(operation, ctx.dry_run, &ctx.manager, None);
        // Webhooks may not rename or re-identify the object: what the server set stays.
        let kept: Vec<(&str, Option<Value>)> =
            ["name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion"]
                .into_iter()
                .map(|field| (field, object.get("metadata").and_then(|m| m.get(field)).cloned()))
                .collect();
        // A new object gets its uid and creation time after mutating admission on kube-apiserver.
        if old.is_none() && !ctx.admitted {
            for field in ["uid", "creationTimestamp", "generation"] {
                remove_meta(object, field);
            }
        }
        let (webhook_warnings, mutated) = match ctx.admitted {
            true => (Vec::new(), false),
            false => webhooks::mutate(&self.store, &self.registry, &request, Some(object), &webhook_options)?,
        };
        // What an update may change comes after mutating admission: a status write keeps only the
        // status a webhook left, a write of the object keeps the stored status.
        if let (true, Some(old)) = (mutated, old) {
            match subresource {
                Some("status") => {
                    let mut status_only = old.clone();
                    copy_field(object, &mut status_only, "status");
                    *object = status_only;
                }
                None if info.has_status() => copy_field(old, object, "status"),
                _ => {}
            }
        }
        for (field, value) in kept {
            match value {
                Some(value) => set_meta(object, field, value),
                None => remove_meta(object, field),
            }
        }
        if mutated {
            // An object a patch left undecodable is the server's fault, as kube-apiserver sees it.
            self.normalize(info, object, old)
                .map_err(|e| if e.code == 400 { ApiError::internal(e.message) } else { e })?;
        }
        self.validate(info, object, old, &name)?;
        let mut warnings = field_problems(ctx.field_validation, &unknown, &ctx.duplicate_fields)?;
        warnings.extend(webhook_warnings);
        if !ctx.admitted {
            let request = AdmissionRequest { object: Some(object), ..request };
            warnings.extend(admission::admit(&self.store, &self.registry, &request)?);
            warnings.extend(webhooks::validate(&self.store, &self.registry, &request, &webhook_options)?);
        }
        if let (None, None, Some(admit)) = (old, subresource, Strategy::of(info).admit_create) {
            admit(self, &namespace, &name)?;
        }
        Ok(warnings)
    }

    /// Decoding and defaulting: drops unknown fields of built-in kinds and applies their defaults, or
    /// prunes and defaults a custom resource by its schema. Returns the fields dropped.
    fn normalize(&self, info: &ResourceInfo, object: &mut Value, old: Option<&Value>) -> Result<Vec<String>, ApiError> {
        match &info.origin {
            Origin::Builtin => {
                let unknown = check_builtin(info, object)?;
                for path in &unknown {
                    meta::remove_field_path(object, path);
                }
                if let Some(defaults) = Strategy::of(info).defaults {
                    let allocate = || self.allocate_cluster_ip();
                    let allocate_port = |also_taken: &[i64]| self.allocate_node_port(also_taken);
                    let defaulting = crate::builtin::Defaulting {
                        old,
                        allocate_cluster_ip: &allocate,
                        allocate_node_port: &allocate_port,
                    };
                    defaults(object, &defaulting)?;
                }
                Ok(unknown)
            }
            Origin::Custom { .. } => {
                let Some(schema) = self.schema_for(&info.group, &info.version, &info.resource) else {
                    return Err(ApiError::internal(format!("no schema for {}", info.resource)));
                };
                Ok(schema.schema.prepare(object))
            }
        }
    }

    /// Validation: the built-in checks or the custom resource's schema, finalizers of a deleting
    /// object, and the strategy's own rules.
    fn validate(&self, info: &ResourceInfo, object: &Value, old: Option<&Value>, name: &str) -> Result<(), ApiError> {
        let mut causes = match &info.origin {
            Origin::Builtin => validate_builtin(info, object),
            Origin::Custom { .. } => match self.schema_for(&info.group, &info.version, &info.resource) {
                Some(schema) => schema.schema.validate(object, old),
                None => return Err(ApiError::internal(format!("no schema for {}", info.resource))),
            },
        };
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, name, causes));
        }
        if let Some(old) = old {
            let added: Vec<String> =
                meta::finalizers(object).into_iter().filter(|f| !meta::finalizers(old).contains(f)).collect();
            if old.pointer("/metadata/deletionTimestamp").is_some() && !added.is_empty() {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
                ));
            }
        }
        if let Some(validate) = Strategy::of(info).validate {
            causes.extend(validate(self, object, old));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, name, causes));
        }
        Ok(())
    }

    /// A random free address of the service range (as the real allocator picks), skipping the
    /// range's network address and the `kubernetes` Service's first address.
    fn allocate_cluster_ip(&self) -> Result<String, ApiError> {
        use crate::builtin::defaults::SERVICE_RANGE;
        use rand::Rng;
        let taken: std::collections::HashSet<String> = self
            .store
            .list("", "services", None)
            .objects
            .iter()
            .map(|s| meta::str_at(s, "/spec/clusterIP").to_string())
            .collect();
        let (base, prefix) = SERVICE_RANGE;
        let size = 1u32 << (32 - prefix);
        let mut rng = rand::rng();
        for _ in 0..1024 {
            let ip = std::net::Ipv4Addr::from(base + rng.random_range(2..size - 1)).to_string();
            if !taken.contains(&ip) {
                return Ok(ip);
            }
        }
        Err(ApiError::internal("failed to allocate a serviceIP: range is full"))
    }

    /// A random free port of the node port range (30000-32767), as the real allocator picks,
    /// other than the ones any Service holds and `also_taken`.
    fn allocate_node_port(&self, also_taken: &[i64]) -> Result<i64, ApiError> {
        use crate::builtin::defaults::NODE_PORT_RANGE;
        use rand::Rng;
        let mut taken: std::collections::HashSet<i64> = also_taken.iter().copied().collect();
        for service in self.store.list("", "services", None).objects.iter() {
            let ports = service.pointer("/spec/ports").and_then(Value::as_array);
            taken.extend(ports.into_iter().flatten().filter_map(|p| p.get("nodePort").and_then(Value::as_i64)));
        }
        let mut rng = rand::rng();
        for _ in 0..1024 {
            let port = rng.random_range(NODE_PORT_RANGE);
            if !taken.contains(&port) {
                return Ok(port);
            }
        }
        Err(ApiError::internal("failed to allocate a nodePort: range is full"))
    }

    /// Creates an object (POST, or server-side apply of a missing object).
    pub fn create_object(
        &self,
        group: &str,
        version: &str,
        resource: &str,
        namespace: Option<&str>,
        body: Value,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, ApiError> {
        let info = self.resolve(group, version, resource)?;
        self.create_resolved(&info, namespace, body, ctx)
    }

    pub(crate) fn create_resolved(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        body: Value,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, ApiError> {
        self.create_recording(info, namespace, body, None, ctx)
    }

    /// Creates an object whose managedFields are `managed` when given (server-side apply has
    /// recorded its own entry), else the create's Update entry.
    fn create_recording(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        mut body: Value,
        managed: Option<Value>,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        Self::check_type(info, &body)?;
        if !body.get("metadata").is_some_and(Value::is_object) {
            body["metadata"] = json!({});
        }
        let mut name = meta::str_at(&body, "/metadata/name").to_string();
        let generate = meta::str_at(&body, "/metadata/generateName").to_string();
        let rule = NameRule::for_resource(&info.group, &info.resource);
        if name.is_empty() {
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    "",
                    vec![Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
            name = format!("{generate}{}", meta::generated_suffix());
            set_meta(&mut body, "name", Value::String(name.clone()));
        }
        if let Some(cause) = meta::validate_name(rule, &name, "metadata.name") {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, vec![cause]));
        }
        self.check_namespace(info, namespace, &mut body, true)?;
        self.refuse_while_terminating(info)?;
        for server_set in
            ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"]
        {
            remove_meta(&mut body, server_set);
        }
        set_meta(&mut body, "uid", Value::String(uuid::Uuid::new_v4().to_string()));
        set_meta(&mut body, "creationTimestamp", Value::String(meta::now_rfc3339()));
        set_meta(&mut body, "generation", json!(1));
        self.reset_status_on_create(info, &ctx.user, &mut body);
        // Quota admission counts stored pods: no other pod may be stored between its check and this one.
        let _admitting =
            Strategy::of(info).admit_create.map(|_| self.pod_admission.lock().unwrap_or_else(|e| e.into_inner()));
        let warnings = self.admit(info, &mut body, None, None, ctx)?;
        let now = meta::now_rfc3339();
        let api_version = info.api_version();
        let rules = self.merge_rules(info);
        record_update(
            None,
            &mut body,
            UpdateRecord {
                manager: &ctx.manager,
                api_version: &api_version,
                subresource: None,
                now: &now,
                rules: &rules,
            },
        );
        if let Some(managed) = managed {
            set_meta(&mut body, "managedFields", managed);
        }
        if ctx.dry_run {
            return Ok(WriteOutcome { object: Self::present(info, &body), warnings, created: true });
        }
        let key = Self::key(info, namespace, &name);
        let stored = self.store.create(key, events::to_storage(info, body)).map_err(|e| store_error(info, &name, e))?;
        let mut object = Self::present(info, &stored);
        if let Some(updated) = self.after_write(info, &object)? {
            object = updated;
        }
        Ok(WriteOutcome { object, warnings, created: true })
    }

    /// What a freshly created object's status starts as ([`Strategy::prepare_for_create`]).
    fn reset_status_on_create(&self, info: &ResourceInfo, user: &UserInfo, body: &mut Value) {
        if let Some(map) = body.as_object_mut() {
            (Strategy::of(info).prepare_for_create)(info, user, map);
        }
    }

    /// Replaces an object (PUT on the object or on its `status` subresource).
    pub fn update_object(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        mut body: Value,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        Self::check_type(info, &body)?;
        let body_name = meta::str_at(&body, "/metadata/name");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        self.check_namespace(info, namespace, &mut body, false)?;
        let expected = meta::str_at(&body, "/metadata/resourceVersion").to_string();
        let expected = if expected.is_empty() {
            if matches!(info.origin, Origin::Custom { .. }) {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    name,
                    vec![Cause::new(
                        "FieldValueInvalid",
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )],
                ));
            }
            0
        } else {
            expected.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid resourceVersion {expected:?}: resource versions are decimal strings"
                ))
            })?
        };
        let key = Self::key(info, namespace, name);
        let old = self.store.get(&key).ok_or_else(|| ApiError::not_found(&info.group, &info.resource, name))?;
        let old = Self::write_view(info, old);
        if expected != 0 && expected != resource_version_of(&old) {
            return Err(ApiError::stale(&info.group, &info.resource, name));
        }
        self.replace(info, &key, &old, body, subresource, expected, ctx)
    }

    /// Stores `body` in place of `old`, keeping what the subresource rules say must not change.
    #[allow(clippy::too_many_arguments)]
    fn replace(
        &self,
        info: &ResourceInfo,
        key: &ObjectKey,
        old: &Value,
        body: Value,
        subresource: Option<&str>,
        expected: u64,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, ApiError> {
        let name = key.name.clone();
        let strategy = Strategy::of(info);
        let writer = subresource.and_then(|s| strategy.subresource(s)).and_then(|s| s.part_writer());
        let part = writer.map(|write| write(old, &body)).transpose()?;
        let mut new = match (subresource, part) {
            (Some("status"), _) => {
                let mut new = old.clone();
                copy_field(&body, &mut new, "status");
                new
            }
            (Some(_), Some(part)) => part,
            (Some(other), None) => {
                return Err(ApiError::not_found(&info.group, &format!("{}/{other}", info.resource), &name));
            }
            (None, _) => {
                let mut new = body;
                if info.has_status() {
                    copy_field(old, &mut new, "status");
                }
                keep_server_metadata(old, &mut new, &[SERVER_METADATA, &["managedFields"]].concat());
                new
            }
        };
        if let Some(prepare) = strategy.prepare_for_update {
            prepare(subresource, old, &mut new);
        }
        remove_meta(&mut new, "resourceVersion");
        let warnings = self.admit(info, &mut new, Some(old), subresource, ctx)?;
        bump_generation(old, &mut new);
        let now = meta::now_rfc3339();
        let api_version = info.api_version();
        let rules = self.merge_rules(info);
        record_update(
            Some(old),
            &mut new,
            UpdateRecord { manager: &ctx.manager, api_version: &api_version, subresource, now: &now, rules: &rules },
        );
        self.commit_replacement(info, key, old, new, expected, warnings, ctx)
    }

    /// The last step of every update: no-op detection, finalizer-driven deletion, dry run, storage.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit_replacement(
        &self,
        info: &ResourceInfo,
        key: &ObjectKey,
        old: &Value,
        mut new: Value,
        expected: u64,
        warnings: Vec<String>,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, ApiError> {
        let old_rv = resource_version_of(old);
        set_meta(&mut new, "resourceVersion", Value::String(old_rv.to_string()));
        let unchanged = meta::same_content(old, &new);
        if unchanged || ctx.dry_run {
            // Answered without storing: with every manager's fields as stored.
            let answer = if unchanged { old } else { &new };
            let answer = events::answer_form(info, answer)
                .map_or_else(|| Self::present(info, answer), |a| Self::present(info, &a));
            return Ok(WriteOutcome { object: answer, warnings, created: false });
        }
        let expected = if expected == 0 { old_rv } else { expected };
        let finished = new.pointer("/metadata/deletionTimestamp").is_some() && meta::finalizers(&new).is_empty();
        let new = events::to_storage(info, new);
        let stored = if finished {
            let updated = self.store.update(key.clone(), expected, new).map_err(|e| store_error(info, &key.name, e))?;
            let deleted = self.store.delete(key, 0).map_err(|e| store_error(info, &key.name, e))?;
            // The last finalizer gone ends the object as a delete would, hooks included.
            self.after_delete(info, &deleted);
            updated
        } else {
            self.store.update(key.clone(), expected, new).map_err(|e| store_error(info, &key.name, e))?
        };
        let mut object = Self::present(info, &stored);
        if !finished && let Some(updated) = self.after_write(info, &object)? {
            object = updated;
        }
        Ok(WriteOutcome { object, warnings, created: false })
    }

    /// Applies a patch of any supported type; retried on conflicts unless the patch pins a resourceVersion.
    #[allow(clippy::too_many_arguments)]
    pub fn patch_object(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch_type: PatchType,
        patch: &Value,
        force: bool,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, ApiError> {
        if patch_type == PatchType::Strategic && matches!(info.origin, Origin::Custom { .. }) {
            return Err(ApiError::unsupported_media_type(info.patch_types()));
        }
        let writes_part = |s: &str| {
            Strategy::of(info).subresource(s).is_some_and(|s| s.part_writer().is_some())
                && patch_type != PatchType::Apply
        };
        if let Some(sub) = subresource.filter(|s| (*s != "status" || !info.has_status()) && !writes_part(s)) {
            return Err(ApiError::not_found(&info.group, &format!("{}/{sub}", info.resource), name));
        }
        let key = Self::key(info, namespace, name);
        let rules = self.merge_rules(info);
        let mut last_conflict = None;
        for _attempt in 0..8 {
            let Some(old) = self.store.get(&key) else {
                if patch_type == PatchType::Apply && subresource.is_none() {
                    return self.apply_create(info, namespace, name, patch, force, &rules, ctx);
                }
                return Err(ApiError::not_found(&info.group, &info.resource, name));
            };
            let old = Self::write_view(info, old);
            let current = Self::present_view(info, &old);
            let patched = match patch_type {
                PatchType::Merge => merge_patch(&current, patch)?,
                PatchType::Json => json_patch(&current, patch)?,
                PatchType::Strategic => strategic_merge_patch(&current, patch, &rules)?,
                PatchType::Apply => {
                    if ctx.manager.is_empty() {
                        return Err(missing_apply_manager());
                    }
                    let api_version = info.api_version();
                    let now = meta::now_rfc3339();
                    server_side_apply(ApplyRequest {
                        live: Some(&current),
                        config: patch,
                        manager: &ctx.manager,
                        force,
                        rules: &rules,
                        api_version: &api_version,
                        subresource,
                        has_status_subresource: info.has_status(),
                        now: &now,
                    })?
                }
            };
            if !patched.is_object() {
                return Err(ApiError::bad_request("the patched object must be a JSON object"));
            }
            // A patch that sets metadata.resourceVersion makes it a precondition, as on the real
            // server; any other patch is applied to the latest version, retried on a conflict.
            let pinned = patch_sets_resource_version(patch_type, patch);
            let patched_version = meta::str_at(&patched, "/metadata/resourceVersion").to_string();
            let expected = if !pinned || patched_version == resource_version_of(&old).to_string() {
                resource_version_of(&old)
            } else {
                return Err(ApiError::stale(&info.group, &info.resource, name));
            };
            let mut body = patched;
            Self::check_type(info, &body)?;
            if meta::str_at(&body, "/metadata/name") != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::str_at(&body, "/metadata/name")
                )));
            }
            self.check_namespace(info, namespace, &mut body, false)?;
            let record_ctx = ctx;
            match self.replace_patched(info, &key, &old, body, subresource, expected, patch_type, record_ctx) {
                Err(e) if e.code == 409 && e.reason == "Conflict" && !pinned => {
                    last_conflict = Some(e);
                }
                other => return other,
            }
        }
        Err(last_conflict.unwrap_or_else(|| ApiError::stale(&info.group, &info.resource, name)))
    }

    /// Like `replace`, but server-side apply has already recorded its own managedFields entry.
    #[allow(clippy::too_many_arguments)]
    fn replace_patched(
        &self,
        info: &ResourceInfo,
        key: &ObjectKey,
        old: &Value,
        body: Value,
        subresource: Option<&str>,
        expected: u64,
        patch_type: PatchType,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, ApiError> {
        if patch_type != PatchType::Apply {
            return self.replace(info, key, old, body, subresource, expected, ctx);
        }
        let mut new = body;
        if subresource.is_none() && info.has_status() {
            copy_field(old, &mut new, "status");
        }
        // Server-side apply has already recorded its own managedFields entry.
        keep_server_metadata(old, &mut new, SERVER_METADATA);
        remove_meta(&mut new, "resourceVersion");
        let warnings = self.admit(info, &mut new, Some(old), subresource, ctx)?;
        bump_generation(old, &mut new);
        self.commit_replacement(info, key, old, new, expected, warnings, ctx)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_create(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        force: bool,
        rules: &MergeRules,
        ctx: &WriteContext,
    ) -> Result<WriteOutcome, ApiError> {
        if ctx.manager.is_empty() {
            return Err(missing_apply_manager());
        }
        let api_version = info.api_version();
        let now = meta::now_rfc3339();
        let mut object = server_side_apply(ApplyRequest {
            live: None,
            config: patch,
            manager: &ctx.manager,
            force,
            rules,
            api_version: &api_version,
            subresource: None,
            has_status_subresource: info.has_status(),
            now: &now,
        })?;
        if meta::str_at(&object, "/metadata/name").is_empty() {
            set_meta(&mut object, "name", Value::String(name.to_string()));
        }
        if meta::str_at(&object, "/metadata/name") != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::str_at(&object, "/metadata/name")
            )));
        }
        let managed = object.pointer("/metadata/managedFields").cloned();
        let mut written = self.create_recording(info, namespace, object, managed, ctx)?;
        written.created = true;
        Ok(written)
    }

    /// Deletes an object, or marks it for deletion when finalizers (or propagation) must run first.
    pub fn delete_object(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deletion, ApiError> {
        let key = Self::key(info, namespace, name);
        let old = self.store.get(&key).ok_or_else(|| ApiError::not_found(&info.group, &info.resource, name))?;
        check_delete_preconditions(info, name, &old, options)?;
        let strategy = Strategy::of(info);
        if strategy.undeletable.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: this {} may not be deleted",
                info.resource, info.singular
            )));
        }
        let finalizers = finalizers_after_propagation(&old, options.propagation);
        self.admit_delete(info, name, &Self::write_view(info, old.clone()), options)?;
        let needs_wait = !finalizers.is_empty() || strategy.deletion_waits;
        let graceful = strategy.graceful_deletion.and_then(|graceful| graceful(&old, options.grace_period_seconds));
        if options.dry_run {
            let immediate = !needs_wait && graceful.is_none();
            return Ok(Deletion { object: Self::present(info, &old), immediate });
        }
        let mut marked = (*old).clone();
        match graceful {
            // The node stops the pod's processes first and then deletes it with grace 0.
            Some(grace) => {
                let current = old.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
                if old.pointer("/metadata/deletionTimestamp").is_none() || current != Some(grace) {
                    let at = crate::runner::deletion_timestamp(grace);
                    set_meta(&mut marked, "deletionTimestamp", Value::String(at));
                    set_meta(&mut marked, "deletionGracePeriodSeconds", json!(grace));
                }
            }
            None if !needs_wait => {
                let deleted =
                    self.store.delete(&key, resource_version_of(&old)).map_err(|e| store_error(info, name, e))?;
                self.after_delete(info, &deleted);
                return Ok(Deletion { object: Self::present(info, &deleted), immediate: true });
            }
            None => {
                if marked.pointer("/metadata/deletionTimestamp").is_none() {
                    set_meta(&mut marked, "deletionTimestamp", Value::String(meta::now_rfc3339()));
                    set_meta(&mut marked, "deletionGracePeriodSeconds", json!(0));
                }
            }
        }
        meta::set_finalizers(&mut marked, &finalizers);
        if graceful.is_none()
            && let Some(mark_deleting) = strategy.mark_deleting
        {
            mark_deleting(&mut marked);
        }
        let pending = if marked == *old {
            old
        } else {
            self.store.update(key, resource_version_of(&old), marked).map_err(|e| store_error(info, name, e))?
        };
        Ok(Deletion { object: Self::present(info, &pending), immediate: false })
    }

    /// Admission of a delete: mutating webhooks (which see only the old object), admission
    /// policies, then validating webhooks.
    fn admit_delete(
        &self,
        info: &ResourceInfo,
        name: &str,
        old: &Value,
        options: &DeleteOptions,
    ) -> Result<(), ApiError> {
        let namespace = meta::str_at(old, "/metadata/namespace");
        let request = AdmissionRequest {
            operation: Operation::Delete,
            user: &options.user,
            group: &info.group,
            version: &info.version,
            resource: &info.resource,
            kind: &info.kind,
            subresource: None,
            namespace: (!namespace.is_empty()).then_some(namespace),
            name,
            object: None,
            old_object: Some(old),
            dry_run: options.dry_run,
            body_kind: None,
        };
        let webhook_options = webhooks::options(Operation::Delete, options.dry_run, "", Some(options.to_json()));
        webhooks::mutate(&self.store, &self.registry, &request, None, &webhook_options)?;
        admission::admit(&self.store, &self.registry, &request)?;
        webhooks::validate(&self.store, &self.registry, &request, &webhook_options)?;
        Ok(())
    }

    /// Admission of a write through a subresource with a kind of its own (`pods/eviction`,
    /// `serviceaccounts/token`, `scale`), as kube-apiserver admits it: mutating webhooks (their
    /// patches apply to `body`), then `check` (the subresource's own validation), admission
    /// policies and validating webhooks. Returns the webhooks' warnings.
    pub(crate) fn admit_subresource(
        &self,
        write: &SubresourceWrite<'_>,
        body: &mut Value,
        check: impl FnOnce(&Value) -> Result<(), ApiError>,
    ) -> Result<Vec<String>, ApiError> {
        let info = write.info;
        let (group, version, kind) = write.body_kind;
        // Decoding gives the body the kind the endpoint takes, as webhooks see it on the real server.
        if let Some(map) = body.as_object_mut() {
            let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
            map.insert("apiVersion".into(), json!(api_version));
            map.insert("kind".into(), json!(kind));
        }
        let request = AdmissionRequest {
            operation: write.operation,
            user: &write.ctx.user,
            group: &info.group,
            version: &info.version,
            resource: &info.resource,
            kind: &info.kind,
            subresource: Some(write.subresource),
            namespace: write.namespace,
            name: write.name,
            object: None,
            old_object: write.old,
            dry_run: write.ctx.dry_run,
            body_kind: Some(write.body_kind),
        };
        let options = webhooks::options(write.operation, write.ctx.dry_run, &write.ctx.manager, None);
        let (mut warnings, _) = webhooks::mutate(&self.store, &self.registry, &request, Some(body), &options)?;
        check(body)?;
        let request = AdmissionRequest { object: Some(body), ..request };
        warnings.extend(admission::admit(&self.store, &self.registry, &request)?);
        warnings.extend(webhooks::validate(&self.store, &self.registry, &request, &options)?);
        Ok(warnings)
    }

    /// The strategy's hook after a stored write (CRDs become served).
    fn after_write(&self, info: &ResourceInfo, object: &Value) -> Result<Option<Value>, ApiError> {
        match Strategy::of(info).after_write {
            Some(after_write) => after_write(self, object),
            None => Ok(None),
        }
    }

    /// The strategy's hook after a delete that removed the object.
    fn after_delete(&self, info: &ResourceInfo, object: &Value) {
        if let Some(after_delete) = Strategy::of(info).after_delete {
            after_delete(self, object);
        }
    }

    /// Removes from storage an object whose deletion the server's own controllers complete (a
    /// terminated namespace, the custom resources of a deleted CRD), with its strategy's hook after a
    /// delete. `expected` is the `resourceVersion` the removal must find (0: any).
    pub(crate) fn remove_object(&self, key: &ObjectKey, expected: u64) -> Result<(), StoreError> {
        let deleted = self.store.delete(key, expected)?;
        if let Some(info) = self.registry.any_version(&key.group, &key.resource) {
            self.after_delete(&info, &deleted);
        }
        Ok(())
    }

    /// Removes a finalizer the server's own controllers manage, completing the deletion if it was the last.
    pub(crate) fn remove_finalizer(&self, key: &ObjectKey, finalizer: &str) -> Result<(), ApiError> {
        let Some(info) = self.registry.any_version(&key.group, &key.resource) else { return Ok(()) };
        let Some(old) = self.store.get(key) else { return Ok(()) };
        let old = Self::write_view(&info, old);
        let mut finalizers = meta::finalizers(&old);
        let before = finalizers.len();
        finalizers.retain(|f| f != finalizer);
        if finalizers.len() == before {
            return Ok(());
        }
        let mut new = (*old).clone();
        meta::set_finalizers(&mut new, &finalizers);
        let expected = resource_version_of(&old);
        self.commit_replacement(
            &info,
            key,
            &old,
            new,
            expected,
            Vec::new(),
            &WriteContext::system("garbage-collector"),
        )?;
        Ok(())
    }
}

/// Whether `patch` itself sets `metadata.resourceVersion` (a JSON patch by an operation on that
/// path), which makes the version a precondition of the patch.
fn patch_sets_resource_version(patch_type: PatchType, patch: &Value) -> bool {
    match patch_type {
        PatchType::Json => patch.as_array().is_some_and(|ops| {
            ops.iter().any(|op| op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion"))
        }),
        _ => patch.pointer("/metadata/resourceVersion").is_some_and(|v| !v.is_null()),
    }
}

/// The UID and `resourceVersion` preconditions of a delete.
fn check_delete_preconditions(
    info: &ResourceInfo,
    name: &str,
    old: &Value,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let conflict = |message: String| ApiError::conflict(&info.group, &info.resource, name, &message);
    if let Some(uid) = &options.precondition_uid {
        let actual = meta::str_at(old, "/metadata/uid");
        if uid != actual {
            return Err(conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
            )));
        }
    }
    if let Some(rv) = &options.precondition_resource_version {
        let actual = resource_version_of(old).to_string();
        if *rv != actual {
            return Err(conflict(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
            )));
        }
    }
    Ok(())
}

/// The finalizers an object keeps while it is deleted with `propagation`: foreground and orphan
/// deletion each add theirs, replacing the other's.
fn finalizers_after_propagation(old: &Value, propagation: Option<Propagation>) -> Vec<String> {
    let mut finalizers = meta::finalizers(old);
    match propagation {
        Some(Propagation::Foreground) if !finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) => {
            finalizers.retain(|f| f != ORPHAN_FINALIZER);
            finalizers.push(FOREGROUND_FINALIZER.into());
        }
        Some(Propagation::Orphan) if !finalizers.iter().any(|f| f == ORPHAN_FINALIZER) => {
            finalizers.retain(|f| f != FOREGROUND_FINALIZER);
            finalizers.push(ORPHAN_FINALIZER.into());
        }
        _ => {}
    }
    finalizers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn pods() -> ResourceInfo {
        crate::builtin::builtin_resources()
            .into_iter()
            .find(|r| r.group.is_empty() && r.resource == "pods")
            .expect("pods are served")
    }

    #[test]
    fn objects_stored_as_served_are_presented_without_a_copy() {
        let info = pods();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert!(matches!(ApiServer::present_view(&info, &pod), Cow::Borrowed(_)));
        let grouped = ResourceInfo { group: "example.com".into(), kind: "Widget".into(), ..info.clone() };
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"size": 1}});
        assert!(matches!(ApiServer::present_view(&grouped, &widget), Cow::Borrowed(_)));
    }

    #[test]
    fn objects_stored_otherwise_are_presented_as_served() {
        let grouped = ResourceInfo { group: "example.com".into(), kind: "Widget".into(), ..pods() };
        for stored in [
            json!({"apiVersion": "example.com/v2", "kind": "Widget", "spec": {"size": 1}}),
            json!({"apiVersion": "v1", "kind": "Widget", "spec": {"size": 1}}),
            json!({"apiVersion": "other.com/v1", "kind": "Widget", "spec": {"size": 1}}),
            json!({"apiVersion": "example.com/v1", "kind": "Gadget", "spec": {"size": 1}}),
        ] {
            let shown = ApiServer::present_view(&grouped, &stored);
            assert!(matches!(shown, Cow::Owned(_)), "{stored}");
            assert_eq!(
                *shown,
                json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"size": 1}}),
                "{stored}"
            );
        }
    }
}
