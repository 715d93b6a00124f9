//! `/openapi/v2` and `/openapi/v3` documents, complete enough for `kubectl apply` and `kubectl explain`.
//!
//! kubectl reads `/openapi/v3` (the index), then the document of one group-version. `explain` finds
//! the schema whose `x-kubernetes-group-version-kind` names the kind; `--validate=strict` looks for a
//! PATCH operation tagged with that GVK that declares the `fieldValidation` query parameter, and only
//! falls back to client-side validation against `/openapi/v2` (protobuf) when it finds none.
//!
//! Built-in schemas come from `k8s-openapi`'s `JsonSchema` impls; custom resource schemas are the
//! CRD's `openAPIV3Schema` completed like apiextensions' builder (`apiVersion`, `kind`, `metadata`).

mod paths;

use crate::patch::rules::{ListType, MergeRules};
use crate::registry::{Origin, ResourceInfo};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

/// Where `$ref`s point in OpenAPI v3 documents.
const V3_REF_PREFIX: &str = "#/components/schemas/";
/// Where `$ref`s point in Swagger 2.0 documents.
const V2_REF_PREFIX: &str = "#/definitions/";
/// The version reported in `info`.
const API_VERSION: &str = "v1.37.0";

/// `/openapi/v3`: the index of group-versions, each with its `serverRelativeURL`. The `hash` is the
/// upper-case hex SHA-512 of the document (as the real server computes its ETag), so it changes
/// whenever the served schemas change and clients may cache by URL.
pub fn v3_index(resources: &[ResourceInfo]) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(resources) {
        let Some(doc) = v3_group_version(resources, &group, &version) else { continue };
        let key = gv_path(&group, &version);
        let url = format!("/openapi/v3/{key}?hash={}", document_hash(&doc));
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// The upper-case hex SHA-512 of a document's JSON: the `hash` of its `serverRelativeURL`, also
/// suitable as its `ETag`.
pub fn document_hash(doc: &Value) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA512, doc.to_string().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`, or `None` when nothing is served there.
pub fn v3_group_version(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceInfo> = resources.iter().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return None;
    }
    let schemas = schemas_for(&served, V3_REF_PREFIX);
    let mut path_map = Map::new();
    for info in &served {
        paths::insert_paths(&mut path_map, info, &kind_schema_name(info), paths::Dialect::V3);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": API_VERSION},
        "paths": path_map,
        "components": {"schemas": schemas},
    }))
}

/// The media type of the protobuf `/openapi/v2` answer (clients ask for it as `...spec.v2@v1.0+protobuf`,
/// which Go's media type parser refuses in an answer).
pub const V2_PROTOBUF_MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2` as protobuf: a Swagger 2.0 document (`swagger: "2.0"`, field 1 of gnostic's
/// `Document`) without definitions. kubectl reads it only to validate a kind that `/openapi/v3`
/// does not describe, and a kind no document describes is left unvalidated, as on a real server:
/// the request then fails as the server answers it (for example `no matches for kind`).
pub const V2_PROTOBUF_DOCUMENT: &[u8] = b"\x0a\x032.0";

/// Whether an `Accept` header asks for the protobuf OpenAPI v2 document before JSON.
pub fn wants_v2_protobuf(accept: &str) -> bool {
    let first = accept.split(',').next().unwrap_or("").split(';').next().unwrap_or("").trim();
    first.eq_ignore_ascii_case(V2_PROTOBUF_MEDIA_TYPE)
        || first.eq_ignore_ascii_case("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
}

/// `/openapi/v2`: one Swagger 2.0 document with every definition. client-go asks for it as protobuf
/// only (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and cannot decode JSON.
pub fn v2(resources: &[ResourceInfo]) -> Value {
    let served: Vec<&ResourceInfo> = resources.iter().collect();
    let definitions = schemas_for(&served, V2_REF_PREFIX);
    let mut path_map = Map::new();
    for info in &served {
        paths::insert_paths(&mut path_map, info, &kind_schema_name(info), paths::Dialect::V2);
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": API_VERSION},
        "paths": path_map,
        "definitions": definitions,
    })
}

/// Served group-versions, core first.
fn group_versions(resources: &[ResourceInfo]) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = resources.iter().map(|r| (r.group.clone(), r.version.clone())).collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

/// `api/v1` or `apis/GROUP/VERSION`: the index key and URL suffix of a group-version.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `review.ao.dev` becomes `dev.ao.review`, the prefix of custom resource schema names.
fn reverse_group(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

/// The schema name of a resource's kind, e.g. `io.k8s.api.core.v1.Pod` or `dev.ao.review.v1alpha1.ReviewRun`.
pub fn kind_schema_name(info: &ResourceInfo) -> String {
    match info.origin {
        Origin::Builtin => builtin_schema(None, info)
            .unwrap_or_else(|| format!("{}.{}.{}", reverse_group(&info.group), info.version, info.kind)),
        Origin::Custom { .. } => format!("{}.{}.{}", reverse_group(&info.group), info.version, info.kind),
    }
}

fn list_schema_name(info: &ResourceInfo, kind_name: &str) -> String {
    match kind_name.rsplit_once('.') {
        Some((prefix, _)) => format!("{prefix}.{}", info.list_kind),
        None => info.list_kind.clone(),
    }
}

fn generator(ref_prefix: &str) -> SchemaGenerator {
    let path = ref_prefix.trim_start_matches('#').trim_end_matches('/').to_string();
    SchemaSettings::openapi3()
        .with(|s| {
            s.definitions_path = path.into();
            s.meta_schema = None;
        })
        .into_generator()
}

/// The `k8s-openapi` schema name of a built-in kind (registering the schema with `generator` when
/// given), or `None` for a kind this server does not know the type of.
fn builtin_schema(generator: Option<&mut SchemaGenerator>, info: &ResourceInfo) -> Option<String> {
    use k8s_openapi::api;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    use k8s_openapi::schemars::JsonSchema;

    macro_rules! kinds {
        ($($group:literal $version:literal $kind:literal => $ty:ty),* $(,)?) => {
            match (info.group.as_str(), info.version.as_str(), info.kind.as_str()) {
                $(($group, $version, $kind) => {
                    if let Some(generator) = generator {
                        generator.subschema_for::<$ty>();
                    }
                    Some(<$ty as JsonSchema>::schema_name().into_owned())
                })*
                _ => None,
            }
        };
    }
    kinds! {
        "" "v1" "Namespace" => api::core::v1::Namespace,
        "" "v1" "Node" => api::core::v1::Node,
        "" "v1" "Pod" => api::core::v1::Pod,
        "" "v1" "Event" => api::core::v1::Event,
        "" "v1" "ServiceAccount" => api::core::v1::ServiceAccount,
        "" "v1" "ConfigMap" => api::core::v1::ConfigMap,
        "" "v1" "Secret" => api::core::v1::Secret,
        "" "v1" "Service" => api::core::v1::Service,
        "" "v1" "ResourceQuota" => api::core::v1::ResourceQuota,
        "events.k8s.io" "v1" "Event" => api::events::v1::Event,
        "coordination.k8s.io" "v1" "Lease" => api::coordination::v1::Lease,
        "apps" "v1" "Deployment" => api::apps::v1::Deployment,
        "batch" "v1" "Job" => api::batch::v1::Job,
        "batch" "v1" "CronJob" => api::batch::v1::CronJob,
        "policy" "v1" "PodDisruptionBudget" => api::policy::v1::PodDisruptionBudget,
        "flowcontrol.apiserver.k8s.io" "v1" "FlowSchema" => api::flowcontrol::v1::FlowSchema,
        "rbac.authorization.k8s.io" "v1" "Role" => api::rbac::v1::Role,
        "rbac.authorization.k8s.io" "v1" "RoleBinding" => api::rbac::v1::RoleBinding,
        "rbac.authorization.k8s.io" "v1" "ClusterRole" => api::rbac::v1::ClusterRole,
        "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" => api::rbac::v1::ClusterRoleBinding,
        "admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicy" => api::admissionregistration::v1::ValidatingAdmissionPolicy,
        "admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicyBinding" => api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        "admissionregistration.k8s.io" "v1" "ValidatingWebhookConfiguration" => api::admissionregistration::v1::ValidatingWebhookConfiguration,
        "admissionregistration.k8s.io" "v1" "MutatingWebhookConfiguration" => api::admissionregistration::v1::MutatingWebhookConfiguration,
        "apiextensions.k8s.io" "v1" "CustomResourceDefinition" => apiextensions::CustomResourceDefinition,
        "apiregistration.k8s.io" "v1" "APIService" => k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
    }
}

fn gvk_extension(info: &ResourceInfo, kind: &str) -> Value {
    json!([{"group": info.group, "version": info.version, "kind": kind}])
}

/// Every schema a set of resources needs: their kinds, lists, and the `meta/v1` types paths refer to.
fn schemas_for(served: &[&ResourceInfo], ref_prefix: &str) -> Map<String, Value> {
    let mut generator = generator(ref_prefix);
    generator.subschema_for::<meta::ObjectMeta>();
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    let mut kinds = Vec::new();
    for info in served {
        let name = match info.origin {
            Origin::Builtin => builtin_schema(Some(&mut generator), info),
            Origin::Custom { .. } => None,
        };
        kinds.push((*info, name));
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
    );
    for (info, builtin_name) in kinds {
        let name = match builtin_name {
            Some(name) => {
                if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
                    schema.insert("x-kubernetes-group-version-kind".into(), gvk_extension(info, &info.kind));
                }
                annotate_merge_rules(&mut schemas, &name, &MergeRules::builtin(&info.group, &info.kind), ref_prefix);
                name
            }
            None => {
                let name = kind_schema_name(info);
                schemas.insert(name.clone(), custom_schema(info, ref_prefix));
                name
            }
        };
        schemas.insert(list_schema_name(info, &name), list_schema(info, &name, ref_prefix));
    }
    schemas
}

/// Marks the lists of a built-in kind with the patch and list extensions the real server's schemas
/// carry (`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`, `x-kubernetes-list-type`,
/// `x-kubernetes-list-map-keys`), from the same rules the server merges with. kubectl's client-side
/// apply reads them to diff lists by key: without them a list the server completed with defaults
/// (container `imagePullPolicy`, service port `protocol`) differs from the manifest's on every apply.
fn annotate_merge_rules(schemas: &mut Map<String, Value>, root: &str, rules: &MergeRules, ref_prefix: &str) {
    for (path, list_type) in &rules.lists {
        let segments: Vec<&str> = path.split('.').collect();
        let Some((last, parents)) = segments.split_last() else { continue };
        let mut owner = root.to_string();
        let mut found = true;
        for segment in parents {
            let next = schemas
                .get(&owner)
                .and_then(|s| s.pointer(&format!("/properties/{segment}")))
                .and_then(|p| referenced(p, ref_prefix));
            match next {
                Some(name) => owner = name,
                None => {
                    found = false;
                    break;
                }
            }
        }
        let Some(Value::Object(property)) =
            schemas.get_mut(&owner).and_then(|s| s.pointer_mut(&format!("/properties/{last}"))).filter(|_| found)
        else {
            continue;
        };
        match list_type {
            ListType::Atomic => {
                property.insert("x-kubernetes-list-type".into(), json!("atomic"));
            }
            ListType::Set => {
                property.insert("x-kubernetes-list-type".into(), json!("set"));
                property.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
            }
            ListType::Map(keys) => {
                property.insert("x-kubernetes-list-type".into(), json!("map"));
                property.insert("x-kubernetes-list-map-keys".into(), json!(keys));
                if let Some(key) = keys.first() {
                    property.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                    property.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
                }
            }
        }
    }
}

/// The component a property refers to, directly, through `allOf`, or as its items' type.
fn referenced(property: &Value, ref_prefix: &str) -> Option<String> {
    let reference = property
        .get("$ref")
        .or_else(|| property.pointer("/allOf/0/$ref"))
        .or_else(|| property.pointer("/items/$ref"))
        .or_else(|| property.pointer("/items/allOf/0/$ref"))?;
    reference.as_str()?.strip_prefix(ref_prefix).map(str::to_string)
}

fn ref_to(ref_prefix: &str, name: &str) -> Value {
    json!({"$ref": format!("{ref_prefix}{name}")})
}

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// A CRD's `openAPIV3Schema` completed with `apiVersion`, `kind`, `metadata` and the GVK extension.
fn custom_schema(info: &ResourceInfo, ref_prefix: &str) -> Value {
    let mut schema = match info.schema.as_deref() {
        Some(Value::Object(schema)) => schema.clone(),
        _ => Map::from_iter([("x-kubernetes-preserve-unknown-fields".to_string(), json!(true))]),
    };
    schema.insert("type".into(), json!("object"));
    let properties = schema.entry("properties").or_insert_with(|| json!({}));
    if let Value::Object(properties) = properties {
        properties.insert("apiVersion".into(), json!({"type": "string", "description": API_VERSION_DESCRIPTION}));
        properties.insert("kind".into(), json!({"type": "string", "description": KIND_DESCRIPTION}));
        properties.insert(
            "metadata".into(),
            json!({
                "allOf": [ref_to(ref_prefix, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")],
                "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                "default": {},
            }),
        );
    }
    schema.insert("x-kubernetes-group-version-kind".into(), gvk_extension(info, &info.kind));
    Value::Object(schema)
}

/// The `KindList` schema: `items` of the kind and list metadata.
fn list_schema(info: &ResourceInfo, kind_name: &str, ref_prefix: &str) -> Value {
    json!({
        "description": format!("{} is a list of {}", info.list_kind, info.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DESCRIPTION},
            "kind": {"type": "string", "description": KIND_DESCRIPTION},
            "items": {"type": "array", "description": format!("List of {}.", info.resource), "items": ref_to(ref_prefix, kind_name)},
            "metadata": {
                "allOf": [ref_to(ref_prefix, "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")],
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "default": {},
            },
        },
        "x-kubernetes-group-version-kind": gvk_extension(info, &info.list_kind),
    })
}

#[cfg(test)]
mod tests;
