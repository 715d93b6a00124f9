//! The built-in resources the server serves, and their checks against the `k8s-openapi` types.

use crate::error::{ApiError, Cause};
use crate::registry::{Origin, ResourceInfo};
use crate::schema::fields;
use k8s_openapi::api::{
    admissionregistration::v1 as admission, apps::v1 as apps, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, events::v1 as events, flowcontrol::v1 as flowcontrol,
    policy::v1 as policy, rbac::v1 as rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub mod defaults;

/// Checks a built-in object against its `k8s-openapi` type. Returns the dotted paths of unknown fields
/// (a 400 under `fieldValidation=Strict`, a `Warning` header otherwise); a value of the wrong type is a 400.
///
/// Paths look like `spec.containers[0].foo`, as in the real server's `unknown field "..."` warnings.
/// Missing required fields are not decoding errors (Go decodes them as zero values): they are left to
/// validation. Kinds without a typed check yield no unknown fields.
pub fn check_builtin(info: &ResourceInfo, object: &Value) -> Result<Vec<String>, ApiError> {
    let mut object = object.clone();
    drop_nulls(&mut object);
    if let Value::Object(map) = &mut object {
        map.insert("apiVersion".into(), Value::String(info.api_version()));
        map.insert("kind".into(), Value::String(info.kind.clone()));
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => decode_as::<core::Pod>(info, &object),
        ("", "Namespace") => decode_as::<core::Namespace>(info, &object),
        ("", "Node") => decode_as::<core::Node>(info, &object),
        ("", "Event") => decode_as::<core::Event>(info, &object),
        ("", "ServiceAccount") => decode_as::<core::ServiceAccount>(info, &object),
        ("", "ConfigMap") => decode_as::<core::ConfigMap>(info, &object),
        ("", "Secret") => decode_as::<core::Secret>(info, &object),
        ("", "Service") => decode_as::<core::Service>(info, &object),
        ("", "ResourceQuota") => decode_as::<core::ResourceQuota>(info, &object),
        ("events.k8s.io", "Event") => decode_as::<events::Event>(info, &object),
        ("coordination.k8s.io", "Lease") => decode_as::<coordination::Lease>(info, &object),
        ("apps", "Deployment") => decode_as::<apps::Deployment>(info, &object),
        ("batch", "Job") => decode_as::<batch::Job>(info, &object),
        ("batch", "CronJob") => decode_as::<batch::CronJob>(info, &object),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            decode_as::<certificates::CertificateSigningRequest>(info, &object)
        }
        ("policy", "PodDisruptionBudget") => decode_as::<policy::PodDisruptionBudget>(info, &object),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => decode_as::<flowcontrol::FlowSchema>(info, &object),
        ("rbac.authorization.k8s.io", "Role") => decode_as::<rbac::Role>(info, &object),
        ("rbac.authorization.k8s.io", "RoleBinding") => decode_as::<rbac::RoleBinding>(info, &object),
        ("rbac.authorization.k8s.io", "ClusterRole") => decode_as::<rbac::ClusterRole>(info, &object),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => decode_as::<rbac::ClusterRoleBinding>(info, &object),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            decode_as::<admission::ValidatingAdmissionPolicy>(info, &object)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            decode_as::<admission::ValidatingAdmissionPolicyBinding>(info, &object)
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            decode_as::<admission::ValidatingWebhookConfiguration>(info, &object)
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            decode_as::<admission::MutatingWebhookConfiguration>(info, &object)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            decode_as::<apiextensions::CustomResourceDefinition>(info, &object)
        }
        ("apiregistration.k8s.io", "APIService") => decode_as::<apiregistration::APIService>(info, &object),
        _ => Ok(Vec::new()),
    }
}

/// Whether a group is Kubernetes' own (the core group, unqualified names, `*.k8s.io`), whose
/// kinds are Go types, rather than one a CRD may define.
pub fn is_builtin_group(group: &str) -> bool {
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

/// The longest event note (`message` in core/v1) kube-apiserver accepts, in bytes.
pub const EVENT_NOTE_LIMIT: usize = 1024;

/// The built-in validation the server applies beyond decoding, worded as kube-apiserver words it.
/// Only what clients of this project can trip is checked: the length of an event's note, on
/// create and on update.
///
/// Both event APIs store one internal Event whose `message` is events.k8s.io's `note`; the check
/// applies to events with an `eventTime` (the events.k8s.io kind always has one) and reports the
/// internal field name, as `field.TooLong` renders it: `message: Too long: may not be
/// more than 1024 bytes` (bytes, Go's `len`, not characters).
pub fn validate_builtin(info: &ResourceInfo, object: &Value) -> Vec<Cause> {
    let note_field = match (info.group.as_str(), info.kind.as_str()) {
        ("events.k8s.io", "Event") => "note",
        ("", "Event") => "message",
        _ => return Vec::new(),
    };
    let has_event_time = object.get("eventTime").is_some_and(|t| !t.is_null());
    let note_len = object.get(note_field).and_then(Value::as_str).map_or(0, str::len);
    if has_event_time && note_len > EVENT_NOTE_LIMIT {
        return vec![fields::too_long("message", EVENT_NOTE_LIMIT as u64)];
    }
    Vec::new()
}

/// Go decodes `null` as the zero value of any field; k8s-openapi rejects it for required fields.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Placeholders tried, in order, for a required field the object lacks, so that decoding can go on
/// and find every unknown field (Go would decode the missing field as its zero value).
const PLACEHOLDERS: [fn() -> Value; 5] = [
    || Value::String(String::new()),
    || Value::from(0),
    || Value::Bool(false),
    || Value::Object(Default::default()),
    || Value::Array(Vec::new()),
];

/// Upper bound on re-decoding attempts while filling in missing required fields.
const MAX_ATTEMPTS: usize = 256;

/// Deserializes `object` as `T`, collecting ignored (unknown) field paths and locating type errors.
fn decode_as<T: DeserializeOwned>(info: &ResourceInfo, object: &Value) -> Result<Vec<String>, ApiError> {
    let mut object = object.clone();
    let mut filled: Vec<(String, usize)> = Vec::new();
    let mut found = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
        let result: Result<T, _> =
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&object, &mut record));
        let error = match result {
            Ok(_) => return Ok(unknown),
            Err(e) => e,
        };
        let message = error.inner().to_string();
        let pointer = json_pointer(error.path());
        let missing = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`'));
        let is_null = object.pointer(&pointer).is_some_and(Value::is_null);
        let retry = match missing {
            Some(field) => fill(&mut object, &format!("{pointer}/{}", escape(field)), 0, &mut filled),
            None if is_null => fill(&mut object, &pointer, 0, &mut filled),
            None => match filled.iter().position(|(p, _)| *p == pointer) {
                Some(i) => {
                    let next = filled[i].1 + 1;
                    filled.remove(i);
                    fill(&mut object, &pointer, next, &mut filled)
                }
                None => {
                    let segments: Vec<&serde_path_to_error::Segment> = error.path().iter().collect();
                    let fields: Vec<&str> = segments
                        .iter()
                        .filter_map(|s| match s {
                            serde_path_to_error::Segment::Map { key } => Some(key.as_str()),
                            _ => None,
                        })
                        .collect();
                    let last_field =
                        segments.iter().rposition(|s| matches!(s, serde_path_to_error::Segment::Map { .. }));
                    let parent = json_pointer_of(&segments[..last_field.unwrap_or(0)]);
                    let owner = struct_name::<T>(&object, &parent).unwrap_or_else(|| info.kind.clone());
                    return Err(decode_error(info, &owner, &fields, &message));
                }
            },
        };
        if !retry {
            return Ok(unknown);
        }
        found = unknown;
    }
    Ok(found)
}

/// Puts placeholder number `choice` at `pointer` (replacing a value, or adding a missing object
/// field); false when there is nothing left to try.
fn fill(object: &mut Value, pointer: &str, choice: usize, filled: &mut Vec<(String, usize)>) -> bool {
    let Some(make) = PLACEHOLDERS.get(choice) else { return false };
    if let Some(slot) = object.pointer_mut(pointer) {
        *slot = make();
    } else {
        let Some((parent, field)) = pointer.rsplit_once('/') else { return false };
        let Some(Value::Object(map)) = object.pointer_mut(parent) else { return false };
        map.insert(unescape(field), make());
    }
    filled.push((pointer.to_string(), choice));
    true
}

/// The Go struct that holds the field at `parent`: found by making that value a boolean and reading
/// which type serde then expected (k8s-openapi names its struct visitors after the type).
fn struct_name<T: DeserializeOwned>(object: &Value, parent: &str) -> Option<String> {
    if parent.is_empty() {
        return None;
    }
    let mut probe = object.clone();
    *probe.pointer_mut(parent)? = Value::Bool(true);
    let message = serde_json::from_value::<T>(probe).err()?.to_string();
    let expected = message.strip_prefix("invalid type: boolean `true`, expected ")?;
    let name = expected.split(" at line").next()?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric())).then(|| name.to_string())
}

fn json_pointer(path: &serde_path_to_error::Path) -> String {
    json_pointer_of(&path.iter().collect::<Vec<_>>())
}

fn json_pointer_of(segments: &[&serde_path_to_error::Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
            serde_path_to_error::Segment::Map { key } => format!("/{}", escape(key)),
            _ => String::new(),
        })
        .collect()
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(key: &str) -> String {
    key.replace("~1", "/").replace("~0", "~")
}

/// `spec.containers[0].foo` from a `serde_ignored` path.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() { key.clone() } else { format!("{parent}.{key}") }
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

/// A 400 worded like the real server's decoding error, e.g. `Pod in version "v1" cannot be handled as a
/// Pod: json: cannot unmarshal number into Go struct field Container.spec.containers.image of type string`.
/// `owner` is the Go struct holding the field; `fields` are the field names on the way to the failing
/// value (list indices left out, as Go does).
fn decode_error(info: &ResourceInfo, owner: &str, fields: &[&str], message: &str) -> ApiError {
    let kind = &info.kind;
    let detail = match parse_invalid_type(message) {
        Some((got, expected)) if !fields.is_empty() => {
            format!("json: cannot unmarshal {got} into Go struct field {owner}.{} of type {expected}", fields.join("."))
        }
        Some((got, expected)) => format!("json: cannot unmarshal {got} into Go value of type {expected}"),
        None if fields.is_empty() => message.to_string(),
        None => format!("{}: {message}", fields.join(".")),
    };
    ApiError::bad_request(format!("{kind} in version \"{}\" cannot be handled as a {kind}: {detail}", info.version))
}

/// From serde's `invalid type: integer `5`, expected a string`: Go's JSON kind of the value and
/// the Go type that was expected.
fn parse_invalid_type(message: &str) -> Option<(&'static str, String)> {
    let rest = message.strip_prefix("invalid type: ")?;
    let (unexpected, expected) = rest.split_once(", expected ")?;
    let got = match unexpected.split_whitespace().next()? {
        "integer" | "floating" => "number",
        "string" => "string",
        "boolean" => "bool",
        "map" => "object",
        "sequence" => "array",
        _ => return None,
    };
    let expected = match expected {
        "a string" => "string".to_string(),
        "a boolean" => "bool".to_string(),
        "i32" => "int32".to_string(),
        "i64" => "int64".to_string(),
        "f64" => "float64".to_string(),
        "a map" => "map[string]string".to_string(),
        "a sequence" => "[]interface {}".to_string(),
        name if name.chars().next().is_some_and(char::is_uppercase) && !name.contains(' ') => format!("v1.{name}"),
        other => other.to_string(),
    };
    Some((got, expected))
}

/// A kind's defaulting: the object about to be stored, and what it may need to know.
pub type Defaulter = fn(&mut Value, &Defaulting<'_>) -> Result<(), ApiError>;

/// What defaulting may need beyond the object itself.
pub struct Defaulting<'a> {
    /// The stored object, on updates.
    pub old: Option<&'a Value>,
    /// Picks a free ClusterIP from the service range.
    pub allocate_cluster_ip: &'a dyn Fn() -> Result<String, ApiError>,
    /// Picks a free node port, other than the ones given, from the node port range.
    pub allocate_node_port: &'a dyn Fn(&[i64]) -> Result<i64, ApiError>,
}

/// A built-in resource: `short` names, and whether it has a `status` subresource.
fn info(
    group: &str,
    version: &str,
    resource: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        subresources: if status { vec!["status".into()] } else { Vec::new() },
        printer_columns: Vec::new(),
        schema: None,
        origin: Origin::Builtin,
    }
}

/// The reviews: created and answered at once, never stored, so only discovery lists them.
pub fn review_resources() -> Vec<ResourceInfo> {
    vec![
        info("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", false, &[], false),
        info("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", false, &[], false),
        info("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false, &[], false),
        info("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", false, &[], false),
    ]
}

/// Every built-in resource with its metadata.
pub fn builtin_resources() -> Vec<ResourceInfo> {
    let mut all = vec![
        info("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        info("", "v1", "nodes", "Node", false, &["no"], true),
        info("", "v1", "pods", "Pod", true, &["po"], true),
        info("", "v1", "events", "Event", true, &["ev"], false),
        info("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], false),
        info("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        info("", "v1", "secrets", "Secret", true, &[], false),
        info("", "v1", "services", "Service", true, &["svc"], true),
        // Pod counts are enforced on pod creation and kept in `status.used` ([`crate::server`]).
        info("", "v1", "resourcequotas", "ResourceQuota", true, &["quota"], true),
        info("events.k8s.io", "v1", "events", "Event", true, &["ev"], false),
        info("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false),
        info("apps", "v1", "deployments", "Deployment", true, &["deploy"], true),
        // Served and defaulted; no controller runs their pods.
        info("batch", "v1", "jobs", "Job", true, &[], true),
        info("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true),
        info("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], true),
        info(
            "certificates.k8s.io",
            "v1",
            "certificatesigningrequests",
            "CertificateSigningRequest",
            false,
            &["csr"],
            true,
        ),
        // Stored and served so that manifests carrying one apply; no request is classified by it.
        info("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", false, &[], true),
        info("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[], false),
        info("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[], false),
        info("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[], false),
        info("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], false),
        info(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
            false,
            &[],
            true,
        ),
        info(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            false,
            &[],
            false,
        ),
        // Called on writes by [`crate::webhooks`].
        info(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
            &[],
            false,
        ),
        info(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            &[],
            false,
        ),
        info(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
        info("apiregistration.k8s.io", "v1", "apiservices", "APIService", false, &[], true),
    ];
    for info in &mut all {
        if info.group.is_empty() && matches!(info.resource.as_str(), "pods" | "services") {
            info.categories = vec!["all".into()];
        }
        if info.group == "apps" || info.group == "batch" {
            info.categories = vec!["all".into()];
        }
        let own_storage = crate::server::strategy::Strategy::builtin(&info.group, &info.resource).subresources;
        info.subresources.extend(own_storage.iter().map(|(name, _)| name.to_string()));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(group: &str, kind: &str) -> ResourceInfo {
        match builtin_resources().into_iter().find(|r| r.group == group && r.kind == kind) {
            Some(info) => info,
            None => panic!("no built-in {group}/{kind}"),
        }
    }

    #[test]
    fn unknown_fields_are_reported_with_their_paths() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
            "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i", "foo": true}]}, "extra": 1});
        let mut unknown = check_builtin(&info("", "Pod"), &pod).unwrap();
        unknown.sort();
        assert_eq!(unknown, vec!["extra", "metadata.bogus", "spec.containers[1].foo"]);
    }

    #[test]
    fn wrong_types_are_bad_requests_naming_the_field() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": 5}]}});
        let err = check_builtin(&info("", "Pod"), &pod).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
        assert_eq!(
            err.message,
            "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal number into Go struct field Container.spec.containers.image of type string"
        );
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"replicas": "three"}});
        let err = check_builtin(&info("apps", "Deployment"), &deploy).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        let cm = json!({"metadata": "oops"});
        let err = check_builtin(&info("", "ConfigMap"), &cm).unwrap_err();
        assert_eq!(
            err.message,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal string into Go struct field ConfigMap.metadata of type v1.ObjectMeta"
        );
    }

    #[test]
    fn non_type_errors_keep_serde_wording_with_the_path() {
        let secret = json!({"metadata": {"name": "s"}, "data": {"k": "***"}});
        let err = check_builtin(&info("", "Secret"), &secret).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.starts_with("Secret in version \"v1\" cannot be handled as a Secret: data.k: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn missing_required_fields_and_nulls_are_not_decoding_errors() {
        let binding = json!({"metadata": {"name": "b"}, "subjects": null});
        assert_eq!(
            check_builtin(&info("rbac.authorization.k8s.io", "RoleBinding"), &binding).unwrap(),
            Vec::<String>::new()
        );
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"image": "i", "resources": {"limits": {"cpu": 1}}}]}});
        assert_eq!(check_builtin(&info("", "Pod"), &pod).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn unknown_fields_after_a_missing_required_field_are_still_found() {
        let binding =
            json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role"}, "subjects": [{"name": "x"}], "zzz": 1});
        let unknown = check_builtin(&info("rbac.authorization.k8s.io", "RoleBinding"), &binding).unwrap();
        assert_eq!(unknown, vec!["zzz"]);
        let pod = json!({"spec": {"containers": [{"ports": [{"protocol": "TCP", "x/y": 1}]}], "zz": 2}});
        let mut unknown = check_builtin(&info("", "Pod"), &pod).unwrap();
        unknown.sort();
        assert_eq!(unknown, vec!["spec.containers[0].ports[0].x/y", "spec.zz"]);
    }

    #[test]
    fn placeholders_run_out_gracefully() {
        let mut object = json!({"a": {}});
        let mut filled = Vec::new();
        assert!(fill(&mut object, "/a/b~0c", 0, &mut filled));
        assert_eq!(object, json!({"a": {"b~c": ""}}));
        assert_eq!(filled, vec![("/a/b~0c".to_string(), 0)]);
        assert!(fill(&mut object, "/a/b~0c", 1, &mut filled));
        assert_eq!(object, json!({"a": {"b~c": 0}}));
        assert!(!fill(&mut object, "/a/b", PLACEHOLDERS.len(), &mut filled));
        assert!(!fill(&mut object, "/missing/b", 0, &mut filled));
        assert!(!fill(&mut object, "nothing", 0, &mut filled));
        assert_eq!(unescape("a~1b~0c"), "a/b~c");
    }

    #[test]
    fn nulls_inside_lists_decode_as_zero_values() {
        let role = json!({"rules": [{"verbs": ["get", null], "apiGroups": [""], "resources": ["pods"], "bogus": 1}]});
        let unknown = check_builtin(&info("rbac.authorization.k8s.io", "Role"), &role).unwrap();
        assert_eq!(unknown, vec!["rules[0].bogus"]);
    }

    #[test]
    fn every_builtin_kind_is_checked() {
        for info in builtin_resources() {
            let object = json!({"metadata": {"name": "x", "nope": 1}});
            let unknown = check_builtin(&info, &object).unwrap();
            assert_eq!(unknown, vec!["metadata.nope"], "{}/{}", info.group, info.kind);
        }
    }

    #[test]
    fn typed_fields_of_each_group_decode() {
        let lease = json!({"spec": {"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": "2024-01-01T00:00:00.000000Z"}});
        assert!(check_builtin(&info("coordination.k8s.io", "Lease"), &lease).unwrap().is_empty());
        let event = json!({"eventTime": "2024-01-01T00:00:00.000000Z", "reason": "R", "note": "n", "bogus": 1});
        assert_eq!(check_builtin(&info("events.k8s.io", "Event"), &event).unwrap(), vec!["bogus"]);
        let pdb = json!({"spec": {"minAvailable": "50%", "maxUnavailable": 1}});
        assert!(check_builtin(&info("policy", "PodDisruptionBudget"), &pdb).unwrap().is_empty());
        let crd = json!({"spec": {"group": "g", "names": {"plural": "fs", "kind": "F"}, "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object",
            "x-kubernetes-preserve-unknown-fields": true, "default": {"a": 1}}}}]}});
        assert!(check_builtin(&info("apiextensions.k8s.io", "CustomResourceDefinition"), &crd).unwrap().is_empty());
    }

    #[test]
    fn event_notes_over_the_limit_are_invalid() {
        let events = info("events.k8s.io", "Event");
        let note = |n: usize| json!({"eventTime": "2024-01-01T00:00:00.000000Z", "note": "x".repeat(n)});
        assert!(validate_builtin(&events, &note(EVENT_NOTE_LIMIT)).is_empty());
        let causes = validate_builtin(&events, &note(EVENT_NOTE_LIMIT + 1));
        assert_eq!(
            causes,
            vec![Cause::new("FieldValueTooLong", "message", "Too long: may not be more than 1024 bytes")]
        );
        // Bytes, not characters.
        let wide = json!({"eventTime": "2024-01-01T00:00:00.000000Z", "note": "é".repeat(600)});
        assert_eq!(validate_builtin(&events, &wide).len(), 1);
        let core = info("", "Event");
        let legacy = json!({"message": "x".repeat(2000)});
        assert!(validate_builtin(&core, &legacy).is_empty(), "legacy events without eventTime are not checked");
        let new_style = json!({"eventTime": "2024-01-01T00:00:00.000000Z", "message": "x".repeat(2000)});
        assert_eq!(validate_builtin(&core, &new_style).len(), 1);
        assert!(validate_builtin(&info("", "Pod"), &note(5000)).is_empty());
    }

    #[test]
    fn unknown_kinds_are_not_checked() {
        let mut custom = info("", "Pod");
        custom.group = "review.ao.dev".into();
        custom.kind = "ReviewRun".into();
        assert!(check_builtin(&custom, &json!({"anything": 1})).unwrap().is_empty());
    }

    #[test]
    fn invalid_type_messages_map_to_go_types() {
        assert_eq!(
            parse_invalid_type("invalid type: boolean `true`, expected a string"),
            Some(("bool", "string".into()))
        );
        assert_eq!(
            parse_invalid_type("invalid type: floating point `1.5`, expected i64"),
            Some(("number", "int64".into()))
        );
        assert_eq!(
            parse_invalid_type("invalid type: map, expected a sequence"),
            Some(("object", "[]interface {}".into()))
        );
        assert_eq!(
            parse_invalid_type("invalid type: sequence, expected a map"),
            Some(("array", "map[string]string".into()))
        );
        assert_eq!(parse_invalid_type("invalid type: string \"x\", expected f64"), Some(("string", "float64".into())));
        assert_eq!(
            parse_invalid_type("invalid type: string \"x\", expected a boolean"),
            Some(("string", "bool".into()))
        );
        assert_eq!(
            parse_invalid_type("invalid type: string \"x\", expected something odd"),
            Some(("string", "something odd".into()))
        );
        assert_eq!(parse_invalid_type("invalid type: unit value, expected a string"), None);
        assert_eq!(parse_invalid_type("invalid value: x"), None);
    }

    #[test]
    fn list_items_of_the_wrong_type_name_the_owning_struct() {
        let pod = json!({"spec": {"containers": ["nginx"]}});
        let err = check_builtin(&info("", "Pod"), &pod).unwrap_err();
        assert_eq!(
            err.message,
            "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type v1.Container"
        );
        assert_eq!(struct_name::<core::Pod>(&pod, "/nowhere"), None);
        assert_eq!(struct_name::<core::Pod>(&pod, ""), None);
    }

    #[test]
    fn top_level_type_errors_name_the_go_value() {
        let err = decode_error(&info("", "Pod"), "Pod", &[], "invalid type: sequence, expected Pod");
        assert_eq!(
            err.message,
            "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal array into Go value of type v1.Pod"
        );
        let err = decode_error(&info("", "Pod"), "Pod", &[], "custom failure");
        assert_eq!(err.message, "Pod in version \"v1\" cannot be handled as a Pod: custom failure");
    }
}
