//! Objects a real cluster has without anyone creating them: what kube-apiserver writes at start
//! (the `default/kubernetes` Service and the bootstrap RBAC policy) and what the controller manager
//! keeps in every namespace (the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap).
//!
//! Each is created only when missing, so a restart on a data directory neither duplicates nor
//! overwrites them; the CA ConfigMap follows the cluster's current CA, as the root CA publisher
//! updates it.

use super::{ApiServer, WriteContext};
use crate::builtin::defaults::KUBERNETES_SERVICE_IP;
use crate::meta;
use crate::store::ObjectKey;
use serde_json::{Value, json};

/// The namespaces the API server creates.
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The ConfigMap the root CA publisher keeps in every namespace, for in-cluster clients.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// The port kube-apiserver serves on, which the `kubernetes` Service targets.
const SECURE_PORT: u16 = 6443;

/// The labels and annotations of bootstrap RBAC objects.
fn bootstrap_metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn non_resource_rule(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// The namespaced resources `view` reads, by group (a subset of the real aggregated role's).
const VIEWABLE: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "pods",
            "pods/log",
            "pods/status",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "replicationcontrollers/status",
            "serviceaccounts",
            "services",
            "services/status",
            "bindings",
            "events",
            "limitranges",
            "namespaces/status",
            "resourcequotas",
            "resourcequotas/status",
        ],
    ),
    ("", &["namespaces"]),
    (
        "apps",
        &[
            "controllerrevisions",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
        ],
    ),
    ("autoscaling", &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    ("batch", &["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    ("discovery.k8s.io", &["endpointslices"]),
    ("networking.k8s.io", &["ingresses", "ingresses/status", "networkpolicies"]),
    ("policy", &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
];

/// The namespaced resources `edit` also writes, by group.
const EDITABLE: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "pods",
            "pods/attach",
            "pods/exec",
            "pods/portforward",
            "pods/proxy",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "secrets",
            "serviceaccounts",
            "services",
            "services/proxy",
        ],
    ),
    (
        "apps",
        &[
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
        ],
    ),
    ("autoscaling", &["horizontalpodautoscalers"]),
    ("batch", &["cronjobs", "jobs"]),
    ("coordination.k8s.io", &["leases"]),
    ("networking.k8s.io", &["ingresses", "networkpolicies"]),
    ("policy", &["poddisruptionbudgets"]),
];

fn view_rules() -> Vec<Value> {
    VIEWABLE.iter().map(|(group, resources)| rule(READ, &[group], resources)).collect()
}

fn edit_rules() -> Vec<Value> {
    let mut rules = view_rules();
    rules.push(rule(READ, &[""], &["secrets"]));
    rules.extend(EDITABLE.iter().map(|(group, resources)| rule(WRITE, &[group], resources)));
    rules.push(rule(&["impersonate"], &[""], &["serviceaccounts"]));
    rules.push(rule(&["create"], &[""], &["serviceaccounts/token"]));
    rules
}

fn admin_rules() -> Vec<Value> {
    let mut rules = edit_rules();
    rules.push(rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]));
    let rbac = ["rolebindings", "roles"];
    rules.push(rule(
        &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        &["rbac.authorization.k8s.io"],
        &rbac,
    ));
    rules
}

/// The bootstrap ClusterRoles (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`): `cluster-admin`
/// may do everything; `admin`, `edit` and `view` carry the rules their aggregation yields (a subset
/// of the real ones); and the `system:` basics every authenticated user is bound to.
pub fn cluster_roles() -> Vec<Value> {
    let role = |name: &str, rules: Vec<Value>| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": bootstrap_metadata(name), "rules": rules});
    vec![
        role("cluster-admin", vec![rule(&["*"], &["*"], &["*"]), non_resource_rule(&["*"], &["*"])]),
        role("admin", admin_rules()),
        role("edit", edit_rules()),
        role("view", view_rules()),
        role("system:discovery", vec![non_resource_rule(&["get"], &super::access::DISCOVERY_PATHS)]),
        role(
            "system:basic-user",
            vec![
                rule(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
                rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
            ],
        ),
        // What an aggregated API server or webhook authorizer is bound to: it asks whether a
        // token authenticates and what its user may do.
        role(
            "system:auth-delegator",
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
            ],
        ),
        role(
            "system:public-info-viewer",
            vec![non_resource_rule(&["get"], &["/healthz", "/livez", "/readyz", "/version", "/version/"])],
        ),
    ]
}

/// The bootstrap ClusterRoleBindings of those roles.
pub fn cluster_role_bindings() -> Vec<Value> {
    let group = |name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name});
    let binding = |name: &str, subjects: Vec<Value>| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": bootstrap_metadata(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": subjects,
        })
    };
    vec![
        binding("cluster-admin", vec![group(crate::rbac::MASTERS_GROUP)]),
        binding("system:discovery", vec![group("system:authenticated")]),
        binding("system:basic-user", vec![group("system:authenticated")]),
        binding("system:public-info-viewer", vec![group("system:authenticated"), group("system:unauthenticated")]),
    ]
}

/// The `default/kubernetes` Service: the API server's in-cluster address.
fn kubernetes_service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": KUBERNETES_SERVICE_IP,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": SECURE_PORT}],
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
    })
}

impl ApiServer {
    /// Creates what kube-apiserver creates at start, where missing.
    pub(super) fn bootstrap(&self) {
        let ctx = WriteContext::system("devcluster");
        let namespaces = SYSTEM_NAMESPACES
            .iter()
            .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        let service = std::iter::once(kubernetes_service());
        let rbac = cluster_roles().into_iter().chain(cluster_role_bindings());
        let apiservices = super::apiservices::builtin_apiservices();
        for object in namespaces.chain(service).chain(rbac).chain(apiservices) {
            self.create_missing(object, &ctx);
        }
    }

    /// Creates `object` unless one of its kind and name exists.
    pub(super) fn create_missing(&self, object: Value, ctx: &WriteContext) {
        let api_version = meta::str_at(&object, "/apiVersion").to_string();
        let Some(info) = self.registry.by_kind(&api_version, meta::str_at(&object, "/kind")) else { return };
        let namespace = meta::str_at(&object, "/metadata/namespace").to_string();
        let namespace = (!namespace.is_empty()).then_some(namespace.as_str());
        let name = meta::str_at(&object, "/metadata/name").to_string();
        if self.store.get(&Self::key(&info, namespace, &name)).is_some() {
            return;
        }
        if let Err(e) = self.create_resolved(&info, namespace, object, ctx)
            && e.code != 409
        {
            tracing::error!(kind = %info.kind, %name, error = %e, "cannot create a bootstrap object");
        }
    }

    /// Records the cluster's CA, published in every namespace's `kube-root-ca.crt`.
    pub fn set_cluster_ca(&self, ca_pem: &str) {
        if let Ok(mut ca) = self.cluster_ca.write() {
            *ca = ca_pem.to_string();
        }
        for namespace in self.store.list("", "namespaces", None).objects {
            self.ensure_namespace_defaults(meta::str_at(&namespace, "/metadata/name"));
        }
    }

    fn cluster_ca(&self) -> String {
        self.cluster_ca.read().map(|ca| ca.clone()).unwrap_or_default()
    }

    /// The service account and token controllers' and the root CA publisher's work for one
    /// namespace: its `default` ServiceAccount and its `kube-root-ca.crt` ConfigMap, created when
    /// missing (the CA refreshed when it changed). Terminating namespaces are left alone.
    pub(crate) fn ensure_namespace_defaults(&self, namespace: &str) {
        let Some(ns) = self.store.get(&ObjectKey::new("", "namespaces", "", namespace)) else { return };
        if ns.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}});
        self.create_missing(account, &WriteContext::system("kube-controller-manager"));
        let ca = self.cluster_ca();
        if ca.is_empty() {
            return;
        }
        let ctx = WriteContext::system("kube-controller-manager");
        let key = ObjectKey::new("", "configmaps", namespace, ROOT_CA_CONFIG_MAP);
        match self.store.get(&key) {
            None => {
                let config_map = json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": namespace,
                        "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                    "data": {"ca.crt": ca},
                });
                self.create_missing(config_map, &ctx);
            }
            Some(current) if meta::str_at(&current, "/data/ca.crt") != ca => {
                let mut updated = (*current).clone();
                updated["data"] = json!({"ca.crt": ca});
                let Ok(info) = self.resolve("", "v1", "configmaps") else { return };
                if let Err(e) = self.update_object(&info, Some(namespace), ROOT_CA_CONFIG_MAP, None, updated, &ctx) {
                    tracing::debug!(%namespace, error = %e, "the root CA ConfigMap will be refreshed later");
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_admin_may_do_everything_and_every_role_is_bound_by_name() {
        let roles = cluster_roles();
        let admin = roles.iter().find(|r| r["metadata"]["name"] == "cluster-admin").unwrap();
        assert_eq!(
            admin["rules"],
            json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}])
        );
        for binding in cluster_role_bindings() {
            let name = &binding["roleRef"]["name"];
            assert!(roles.iter().any(|r| &r["metadata"]["name"] == name), "{name}");
        }
        let names: Vec<&str> = roles.iter().filter_map(|r| r["metadata"]["name"].as_str()).collect();
        for expected in ["admin", "edit", "view", "system:discovery", "system:basic-user", "system:public-info-viewer"]
        {
            assert!(names.contains(&expected), "{expected}");
        }
    }
}
