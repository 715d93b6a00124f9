//! APIServices (`apiregistration.k8s.io/v1`): the aggregation layer's record of which server serves
//! each group-version. As on kube-apiserver, every built-in group-version has a local one from the
//! start, and every group-version a CRD serves gets one while it is served (labelled automanaged).
//! An APIService that names a Service is stored but never proxied: it is reported unavailable.

use serde_json::{Map, Value, json};

use super::{ApiServer, WriteContext};
use crate::auth::UserInfo;
use crate::error::Cause;
use crate::meta;
use crate::registry::{Origin, ResourceInfo};
use crate::schema::fields;
use crate::store::ObjectKey;

/// The label the aggregator's registration controllers put on the APIServices they manage.
const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";
/// The group priority of custom resources' APIServices, as the CRD registration controller sets.
const CUSTOM_GROUP_PRIORITY: i64 = 1000;
const CUSTOM_VERSION_PRIORITY: i64 = 100;
/// Built-in groups sit above every custom one; the core group is highest.
const BUILTIN_GROUP_PRIORITY: i64 = 17000;
const CORE_GROUP_PRIORITY: i64 = 18000;

/// `v1.apps`, or `v1.` for the core group.
fn name_of(group: &str, version: &str) -> String {
    format!("{version}.{group}")
}

fn local_apiservice(group: &str, version: &str, priorities: (i64, i64), managed: &str) -> Value {
    json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": name_of(group, version), "labels": {AUTOMANAGED: managed}},
        "spec": {"group": group, "version": version, "groupPriorityMinimum": priorities.0,
            "versionPriority": priorities.1, "service": null},
    })
}

/// The local APIServices of the built-in group-versions, `onstart` as kube-apiserver labels them.
pub(super) fn builtin_apiservices() -> Vec<Value> {
    let mut versions: Vec<(String, String)> = crate::builtin::builtin_resources()
        .into_iter()
        .chain(crate::builtin::review_resources())
        .map(|info| (info.group, info.version))
        .collect();
    versions.sort();
    versions.dedup();
    versions
        .iter()
        .map(|(group, version)| {
            let priority = if group.is_empty() { (CORE_GROUP_PRIORITY, 1) } else { (BUILTIN_GROUP_PRIORITY, 15) };
            local_apiservice(group, version, priority, "onstart")
        })
        .collect()
}

/// `PrepareForCreate`: a local APIService is available at once; one backed by a Service is not,
/// since the dev cluster does not proxy to aggregated servers.
pub(super) fn prepare_for_create(_: &ResourceInfo, _: &UserInfo, object: &mut Map<String, Value>) {
    let now = meta::now_rfc3339();
    let local = object.get("spec").and_then(|spec| spec.get("service")).is_none_or(Value::is_null);
    let condition = if local {
        json!({"type": "Available", "status": "True", "lastTransitionTime": now, "reason": "Local",
            "message": "Local APIServices are always available"})
    } else {
        json!({"type": "Available", "status": "False", "lastTransitionTime": now, "reason": "FailedDiscoveryCheck",
            "message": "the dev cluster does not proxy requests to aggregated API servers"})
    };
    object.insert("status".into(), json!({"conditions": [condition]}));
}

/// Validation: the name is `version.group`, and the priorities are in range.
pub(super) fn validate(object: &Value, _: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let group = meta::str_at(object, "/spec/group");
    let version = meta::str_at(object, "/spec/version");
    if version.is_empty() {
        causes.push(fields::required("spec.version", ""));
    }
    let name = meta::str_at(object, "/metadata/name");
    if name != name_of(group, version) {
        let detail = format!("must be `spec.version+\".\"+spec.group`: \"{}\"", name_of(group, version));
        causes.push(fields::invalid("metadata.name", &json!(name), &detail));
    }
    for (field, limit) in [("groupPriorityMinimum", 20000), ("versionPriority", 1000)] {
        let value = object.pointer(&format!("/spec/{field}")).cloned().unwrap_or(json!(0));
        if !value.as_i64().is_some_and(|n| n > 0 && n <= limit) {
            let detail = format!("must be positive and less than {limit}");
            causes.push(fields::invalid(&format!("spec.{field}"), &value, &detail));
        }
    }
    let has_service = object.pointer("/spec/service").is_some_and(|s| !s.is_null());
    let trusted = object.pointer("/spec/insecureSkipTLSVerify").and_then(Value::as_bool) == Some(true)
        || !meta::str_at(object, "/spec/caBundle").is_empty();
    if has_service && !trusted {
        causes.push(fields::required("spec.caBundle", "must be present if spec.insecureSkipTLSVerify is false"));
    }
    causes
}

impl ApiServer {
    /// Registers the group-versions a CRD serves, as the CRD registration controller does.
    pub(super) fn register_custom_versions(&self, crd: &Value) {
        let group = meta::str_at(crd, "/spec/group");
        let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
        let ctx = WriteContext::system("kube-aggregator");
        for version in versions.into_iter().flatten() {
            if version.get("served").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let version = meta::str_at(version, "/name");
            let priorities = (CUSTOM_GROUP_PRIORITY, CUSTOM_VERSION_PRIORITY);
            self.create_missing(local_apiservice(group, version, priorities, "true"), &ctx);
        }
    }

    /// Removes the automanaged APIServices of group-versions no CRD serves any longer.
    pub(super) fn unregister_custom_versions(&self, group: &str) {
        let served: Vec<String> = self
            .registry
            .all()
            .into_iter()
            .filter(|info| info.group == group && matches!(info.origin, Origin::Custom { .. }))
            .map(|info| info.version)
            .collect();
        for apiservice in self.store.list("apiregistration.k8s.io", "apiservices", None).objects {
            let automanaged = apiservice.pointer(&format!("/metadata/labels/{}", AUTOMANAGED.replace('/', "~1")));
            let version = meta::str_at(&apiservice, "/spec/version");
            if meta::str_at(&apiservice, "/spec/group") != group
                || automanaged.and_then(Value::as_str) != Some("true")
                || served.iter().any(|v| v == version)
            {
                continue;
            }
            let name = meta::str_at(&apiservice, "/metadata/name");
            let key = ObjectKey::new("apiregistration.k8s.io", "apiservices", "", name);
            if let Err(e) = self.remove_object(&key, 0) {
                tracing::warn!(apiservice = name, error = %e, "cannot remove the APIService of a deleted CRD");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_group_version_has_a_local_apiservice() {
        let names: Vec<String> =
            builtin_apiservices().iter().map(|a| meta::str_at(a, "/metadata/name").to_string()).collect();
        for expected in ["v1.", "v1.apps", "v1.batch", "v1.authentication.k8s.io", "v1.apiextensions.k8s.io"] {
            assert!(names.iter().any(|n| n == expected), "{expected} in {names:?}");
        }
        for apiservice in builtin_apiservices() {
            assert!(validate(&apiservice, None).is_empty(), "{apiservice}");
        }
    }

    #[test]
    fn local_apiservices_are_available_and_remote_ones_are_not() {
        let mut local = local_apiservice("apps", "v1", (17000, 15), "onstart");
        prepare_for_create(&crate::builtin::builtin_resources()[0], &UserInfo::admin(), local.as_object_mut().unwrap());
        assert_eq!(local.pointer("/status/conditions/0/reason"), Some(&json!("Local")));
        let mut remote = local_apiservice("metrics.k8s.io", "v1beta1", (100, 100), "false");
        remote["spec"]["service"] = json!({"namespace": "kube-system", "name": "metrics-server"});
        prepare_for_create(
            &crate::builtin::builtin_resources()[0],
            &UserInfo::admin(),
            remote.as_object_mut().unwrap(),
        );
        assert_eq!(remote.pointer("/status/conditions/0/status"), Some(&json!("False")));
    }

    #[test]
    fn names_priorities_and_trust_are_validated() {
        let mut wrong = local_apiservice("apps", "v1", (17000, 15), "false");
        wrong["metadata"]["name"] = json!("apps.v1");
        assert_eq!(validate(&wrong, None)[0].field, "metadata.name");
        let mut priorities = local_apiservice("apps", "v1", (0, 1001), "false");
        priorities["spec"]["versionPriority"] = json!(1001);
        let fields: Vec<String> = validate(&priorities, None).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.groupPriorityMinimum", "spec.versionPriority"]);
        let mut untrusted = local_apiservice("metrics.k8s.io", "v1beta1", (100, 100), "false");
        untrusted["spec"]["service"] = json!({"namespace": "kube-system", "name": "metrics-server"});
        assert_eq!(validate(&untrusted, None)[0].field, "spec.caBundle");
        untrusted["spec"]["insecureSkipTLSVerify"] = json!(true);
        assert!(validate(&untrusted, None).is_empty());
        let mut no_version = local_apiservice("apps", "", (17000, 15), "false");
        no_version["metadata"]["name"] = json!(".apps");
        assert_eq!(validate(&no_version, None)[0].field, "spec.version");
    }
}
