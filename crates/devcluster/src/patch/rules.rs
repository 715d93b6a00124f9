//! How lists and maps merge at each field path, shared by strategic merge patch and server-side apply.
//! Built-in types take their rules from a table of the patch strategies Kubernetes documents;
//! custom resources from `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` / `x-kubernetes-map-type`
//! in their schema.

use serde_json::Value;
use std::collections::BTreeMap;

/// How the list at one field path merges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListType {
    /// Replaced whole (the default for custom resources and unlisted fields).
    #[default]
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// A list of objects merged by the values of these keys.
    ///
    /// The keys are the server-side apply `x-kubernetes-list-map-keys`; the first one is the strategic
    /// merge patch `patchMergeKey` (e.g. container `ports` are keyed by `containerPort` and `protocol` for
    /// apply, by `containerPort` alone for strategic merge patch).
    Map(Vec<String>),
}

/// Merge rules for one kind. Paths are dotted field names from the object root; list elements add no
/// segment, so `spec.containers.env` is the `env` list of any container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeRules {
    pub lists: BTreeMap<String, ListType>,
    /// Paths of maps that are replaced whole (`x-kubernetes-map-type: atomic`).
    pub atomic_maps: Vec<String>,
}

impl MergeRules {
    pub fn list_type(&self, path: &str) -> ListType {
        self.lists.get(path).cloned().unwrap_or_default()
    }

    pub fn is_atomic_map(&self, path: &str) -> bool {
        self.atomic_maps.iter().any(|p| p == path)
    }

    /// Rules for a built-in kind (`group` empty for core): the `patchStrategy`/`patchMergeKey` and
    /// `listType`/`listMapKeys` markers of the Kubernetes 1.37 API types. Unknown kinds get
    /// [`MergeRules::metadata_only`].
    pub fn builtin(group: &str, kind: &str) -> Self {
        let mut rules = Self::metadata_only();
        match (group, kind) {
            ("", "Pod") => {
                rules.pod_spec("spec");
                rules.pod_status("status");
            }
            ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
                rules.pod_spec("spec.template.spec");
                rules.map_list("status.conditions", &["type"]);
                rules.atomic_map("spec.selector");
            }
            ("batch", "CronJob") => {
                rules.pod_spec("spec.jobTemplate.spec.template.spec");
                rules.atomic_map("spec.jobTemplate.spec.selector");
                rules.atomic("status.active");
            }
            ("", "Namespace") => {
                rules.atomic("spec.finalizers");
                rules.map_list("status.conditions", &["type"]);
            }
            ("", "ServiceAccount") => {
                rules.map_list("secrets", &["name"]);
                rules.atomic("imagePullSecrets");
            }
            ("", "Service") => {
                rules.map_list("spec.ports", &["port", "protocol"]);
                for list in ["clusterIPs", "externalIPs", "ipFamilies", "loadBalancerSourceRanges"] {
                    rules.atomic(&format!("spec.{list}"));
                }
                rules.atomic_map("spec.selector");
                rules.map_list("status.conditions", &["type"]);
                rules.atomic("status.loadBalancer.ingress");
            }
            ("", "Node") => {
                rules.set("spec.podCIDRs");
                rules.atomic("spec.taints");
                rules.map_list("status.addresses", &["type"]);
                rules.map_list("status.conditions", &["type"]);
                rules.atomic("status.images");
            }
            ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
                rules.atomic("rules");
                rules.atomic("aggregationRule.clusterRoleSelectors");
            }
            ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
                rules.atomic("subjects");
            }
            ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
                rules.map_list("spec.matchConditions", &["name"]);
                rules.map_list("spec.variables", &["name"]);
                rules.atomic("spec.validations");
                rules.atomic("spec.auditAnnotations");
                rules.atomic("spec.matchConstraints.resourceRules");
                rules.atomic("spec.matchConstraints.excludeResourceRules");
                rules.map_list("status.conditions", &["type"]);
            }
            ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
                rules.set("spec.validationActions");
                rules.atomic("spec.matchResources.resourceRules");
                rules.atomic("spec.matchResources.excludeResourceRules");
            }
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration") => {
                rules.map_list("webhooks", &["name"]);
                rules.map_list("webhooks.matchConditions", &["name"]);
                for list in ["rules", "admissionReviewVersions"] {
                    rules.atomic(&format!("webhooks.{list}"));
                }
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                rules.atomic("spec.versions");
                rules.atomic("spec.names.shortNames");
                rules.atomic("spec.names.categories");
                rules.map_list("status.conditions", &["type"]);
                rules.atomic("status.storedVersions");
            }
            ("policy", "PodDisruptionBudget") => {
                rules.atomic_map("spec.selector");
                rules.map_list("status.conditions", &["type"]);
            }
            // ConfigMap, Secret, Event, Lease and unknown kinds: nothing beyond metadata.
            _ => {}
        }
        rules
    }

    /// Rules derived from a CRD's structural schema: every `x-kubernetes-list-type` and
    /// `x-kubernetes-map-type: atomic`, plus [`MergeRules::metadata_only`], which always wins for
    /// `metadata`. Lists without a list type stay atomic, as a real server treats them.
    pub fn from_schema(schema: &Value) -> Self {
        let mut rules = Self::default();
        rules.collect(schema, "");
        let metadata = Self::metadata_only();
        rules.lists.retain(|path, _| !is_metadata(path));
        rules.atomic_maps.retain(|path| !is_metadata(path));
        rules.lists.extend(metadata.lists);
        rules.atomic_maps.extend(metadata.atomic_maps);
        rules
    }

    /// The rules every object shares through `metadata`.
    pub fn metadata_only() -> Self {
        let mut lists = BTreeMap::new();
        lists.insert("metadata.finalizers".to_string(), ListType::Set);
        lists.insert("metadata.ownerReferences".to_string(), ListType::Map(vec!["uid".to_string()]));
        lists.insert("metadata.managedFields".to_string(), ListType::Atomic);
        Self { lists, atomic_maps: Vec::new() }
    }

    fn collect(&mut self, schema: &Value, path: &str) {
        if !path.is_empty() {
            if let Some(list_type) = schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                self.lists.insert(path.to_string(), list_type_of(list_type, schema));
            }
            if schema.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
                self.atomic_maps.push(path.to_string());
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                let child = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                self.collect(property, &child);
            }
        }
        if let Some(items) = schema.get("items") {
            self.collect(items, path);
        }
    }

    /// Every list and atomic map of a `PodSpec` at `prefix`, including its containers'.
    fn pod_spec(&mut self, prefix: &str) {
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            let containers = format!("{prefix}.{list}");
            self.map_list(&containers, &["name"]);
            self.map_list(&format!("{containers}.env"), &["name"]);
            self.map_list(&format!("{containers}.ports"), &["containerPort", "protocol"]);
            self.map_list(&format!("{containers}.volumeMounts"), &["mountPath"]);
            self.map_list(&format!("{containers}.volumeDevices"), &["devicePath"]);
            self.map_list(&format!("{containers}.resources.claims"), &["name"]);
            for atomic in ["args", "command", "envFrom", "resizePolicy", "restartPolicyRules"] {
                self.atomic(&format!("{containers}.{atomic}"));
            }
        }
        self.map_list(&format!("{prefix}.volumes"), &["name"]);
        self.map_list(&format!("{prefix}.imagePullSecrets"), &["name"]);
        self.map_list(&format!("{prefix}.hostAliases"), &["ip"]);
        self.map_list(&format!("{prefix}.resourceClaims"), &["name"]);
        self.map_list(&format!("{prefix}.schedulingGates"), &["name"]);
        self.map_list(&format!("{prefix}.evictionResponders"), &["name"]);
        self.map_list(&format!("{prefix}.topologySpreadConstraints"), &["topologyKey", "whenUnsatisfiable"]);
        self.atomic(&format!("{prefix}.tolerations"));
        self.atomic(&format!("{prefix}.readinessGates"));
        self.atomic(&format!("{prefix}.securityContext.supplementalGroups"));
        self.atomic(&format!("{prefix}.securityContext.sysctls"));
        self.atomic_map(&format!("{prefix}.nodeSelector"));
    }

    fn pod_status(&mut self, prefix: &str) {
        self.map_list(&format!("{prefix}.conditions"), &["type"]);
        self.map_list(&format!("{prefix}.podIPs"), &["ip"]);
        self.map_list(&format!("{prefix}.hostIPs"), &["ip"]);
        self.map_list(&format!("{prefix}.resourceClaimStatuses"), &["name"]);
        for statuses in ["containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"] {
            self.atomic(&format!("{prefix}.{statuses}"));
        }
    }

    fn map_list(&mut self, path: &str, keys: &[&str]) {
        self.lists.insert(path.to_string(), ListType::Map(keys.iter().map(|k| k.to_string()).collect()));
    }

    fn set(&mut self, path: &str) {
        self.lists.insert(path.to_string(), ListType::Set);
    }

    fn atomic(&mut self, path: &str) {
        self.lists.insert(path.to_string(), ListType::Atomic);
    }

    fn atomic_map(&mut self, path: &str) {
        self.atomic_maps.push(path.to_string());
    }
}

fn list_type_of(list_type: &str, schema: &Value) -> ListType {
    match list_type {
        "set" => ListType::Set,
        "map" => ListType::Map(
            schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| keys.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

fn is_metadata(path: &str) -> bool {
    path == "metadata" || path.starts_with("metadata.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(keys: &[&str]) -> ListType {
        ListType::Map(keys.iter().map(|k| k.to_string()).collect())
    }

    #[test]
    fn metadata_rules_are_shared_by_every_kind() {
        for (group, kind) in [("", "ConfigMap"), ("", "Pod"), ("coordination.k8s.io", "Lease"), ("x.io", "Unknown")] {
            let rules = MergeRules::builtin(group, kind);
            assert_eq!(rules.list_type("metadata.finalizers"), ListType::Set, "{kind}");
            assert_eq!(rules.list_type("metadata.ownerReferences"), keys(&["uid"]), "{kind}");
            assert_eq!(rules.list_type("metadata.managedFields"), ListType::Atomic, "{kind}");
        }
    }

    #[test]
    fn pod_rules_follow_the_documented_strategies() {
        let rules = MergeRules::builtin("", "Pod");
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            assert_eq!(rules.list_type(&format!("spec.{list}")), keys(&["name"]));
            assert_eq!(rules.list_type(&format!("spec.{list}.env")), keys(&["name"]));
            assert_eq!(rules.list_type(&format!("spec.{list}.ports")), keys(&["containerPort", "protocol"]));
            assert_eq!(rules.list_type(&format!("spec.{list}.volumeMounts")), keys(&["mountPath"]));
            assert_eq!(rules.list_type(&format!("spec.{list}.volumeDevices")), keys(&["devicePath"]));
            assert_eq!(rules.list_type(&format!("spec.{list}.args")), ListType::Atomic);
        }
        assert_eq!(rules.list_type("spec.volumes"), keys(&["name"]));
        assert_eq!(rules.list_type("spec.imagePullSecrets"), keys(&["name"]));
        assert_eq!(rules.list_type("spec.tolerations"), ListType::Atomic);
        assert_eq!(rules.list_type("status.conditions"), keys(&["type"]));
        assert_eq!(rules.list_type("status.containerStatuses"), ListType::Atomic);
        assert!(rules.is_atomic_map("spec.nodeSelector"));
    }

    #[test]
    fn deployment_rules_cover_the_pod_template() {
        let rules = MergeRules::builtin("apps", "Deployment");
        assert_eq!(rules.list_type("spec.template.spec.containers"), keys(&["name"]));
        assert_eq!(rules.list_type("spec.template.spec.containers.env"), keys(&["name"]));
        assert_eq!(rules.list_type("spec.template.spec.volumes"), keys(&["name"]));
        assert_eq!(rules.list_type("status.conditions"), keys(&["type"]));
        assert_eq!(rules.list_type("spec.containers"), ListType::Atomic);
        assert!(rules.is_atomic_map("spec.selector"));
    }

    #[test]
    fn other_builtin_kinds() {
        assert_eq!(MergeRules::builtin("", "ServiceAccount").list_type("secrets"), keys(&["name"]));
        assert_eq!(MergeRules::builtin("", "Service").list_type("spec.ports"), keys(&["port", "protocol"]));
        assert_eq!(MergeRules::builtin("", "Namespace").list_type("status.conditions"), keys(&["type"]));
        assert_eq!(MergeRules::builtin("", "Node").list_type("spec.podCIDRs"), ListType::Set);
        assert_eq!(MergeRules::builtin("", "Node").list_type("status.addresses"), keys(&["type"]));
        let rbac = "rbac.authorization.k8s.io";
        assert_eq!(MergeRules::builtin(rbac, "ClusterRole").list_type("rules"), ListType::Atomic);
        assert_eq!(MergeRules::builtin(rbac, "RoleBinding").list_type("subjects"), ListType::Atomic);
        let admission = "admissionregistration.k8s.io";
        let vap = MergeRules::builtin(admission, "ValidatingAdmissionPolicy");
        assert_eq!(vap.list_type("spec.variables"), keys(&["name"]));
        assert_eq!(vap.list_type("spec.matchConditions"), keys(&["name"]));
        let binding = MergeRules::builtin(admission, "ValidatingAdmissionPolicyBinding");
        assert_eq!(binding.list_type("spec.validationActions"), ListType::Set);
        let crd = MergeRules::builtin("apiextensions.k8s.io", "CustomResourceDefinition");
        assert_eq!(crd.list_type("status.conditions"), keys(&["type"]));
        assert_eq!(
            MergeRules::builtin("policy", "PodDisruptionBudget").list_type("status.conditions"),
            keys(&["type"])
        );
        // A kind is looked up with its group: a core "Deployment" is unknown.
        assert_eq!(MergeRules::builtin("", "Deployment"), MergeRules::metadata_only());
    }

    #[test]
    fn schema_list_and_map_types_are_collected() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "reviewers": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                        "plain": {"type": "array", "items": {"type": "string"}},
                        "steps": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name", "phase"],
                            "items": {
                                "type": "object",
                                "properties": {
                                    "args": {"type": "array", "x-kubernetes-list-type": "atomic"},
                                    "ref": {"type": "object", "x-kubernetes-map-type": "atomic"},
                                    "labels": {"type": "object", "x-kubernetes-map-type": "granular"}
                                }
                            }
                        }
                    }
                },
                "status": {"type": "object", "properties": {"conditions": {
                    "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]
                }}}
            }
        });
        let rules = MergeRules::from_schema(&schema);
        assert_eq!(rules.list_type("spec.reviewers"), ListType::Set);
        assert_eq!(rules.list_type("spec.plain"), ListType::Atomic);
        assert_eq!(rules.list_type("spec.steps"), keys(&["name", "phase"]));
        assert_eq!(rules.list_type("spec.steps.args"), ListType::Atomic);
        assert_eq!(rules.list_type("status.conditions"), keys(&["type"]));
        assert_eq!(rules.atomic_maps, vec!["spec.steps.ref".to_string()]);
        assert_eq!(rules.list_type("metadata.finalizers"), ListType::Set);
    }

    #[test]
    fn schema_cannot_override_metadata_rules() {
        let schema = json!({"properties": {"metadata": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {
            "finalizers": {"type": "array", "x-kubernetes-list-type": "atomic"},
            "labels": {"type": "object", "x-kubernetes-map-type": "atomic"}
        }}}});
        assert_eq!(MergeRules::from_schema(&schema), MergeRules::metadata_only());
    }

    #[test]
    fn schema_without_extensions_gives_metadata_only() {
        assert_eq!(MergeRules::from_schema(&json!({"type": "object"})), MergeRules::metadata_only());
        assert_eq!(MergeRules::from_schema(&json!(null)), MergeRules::metadata_only());
    }

    #[test]
    fn map_list_without_keys_has_no_keys() {
        let schema = json!({"properties": {"items": {"type": "array", "x-kubernetes-list-type": "map"}}});
        assert_eq!(MergeRules::from_schema(&schema).list_type("items"), ListType::Map(Vec::new()));
    }
}
