//! Authorization: decides whether a user may perform a request, from RBAC objects in the store.
//!
//! Mirrors `k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac`: members of `system:masters` are always
//! allowed (the admin token, checked first so the admin path costs nothing), everyone else needs a
//! ClusterRoleBinding, or a RoleBinding in the request's namespace, whose subjects include them and whose
//! role has a rule covering the verb, API group, resource (`resource/subresource`) and name.
//! ClusterRole aggregation and `nonResourceURLs` are not evaluated: discovery and OpenAPI paths are
//! served to every authenticated user, as the default `system:discovery` role does.

use crate::auth::UserInfo;
use crate::error::{ApiError, Details, qualified_resource};
use crate::meta;
use crate::store::{ObjectKey, Store};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The group whose members bypass RBAC, as the real server's privileged-group authorizer does.
pub const MASTERS_GROUP: &str = "system:masters";

/// What a request asks to do, in RBAC's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAttributes {
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// One `PolicyRule` of a Role or ClusterRole (resource rules only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

impl PolicyRule {
    /// The resource rules of a Role or ClusterRole object (rules with only `nonResourceURLs` are skipped).
    pub fn from_role(role: &Value) -> Vec<Self> {
        role.get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| Self {
                verbs: strings(r.get("verbs")),
                api_groups: strings(r.get("apiGroups")),
                resources: strings(r.get("resources")),
                resource_names: strings(r.get("resourceNames")),
            })
            .filter(|r| !r.resources.is_empty())
            .collect()
    }

    /// Whether this rule allows the request, with RBAC's matching rules: `*` matches any verb, group or
    /// resource (`*` also covers subresources, `*/sub` one subresource of any resource), `resource/sub` names a
    /// subresource,
    /// and `resourceNames` restricts to named requests.
    pub fn allows(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        subresource: Option<&str>,
        name: Option<&str>,
    ) -> bool {
        let has = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        if !has(&self.verbs, verb) || !has(&self.api_groups, group) {
            return false;
        }
        let combined = match subresource {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        let resource_matches = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || subresource.is_some_and(|sub| r.strip_prefix("*/").is_some_and(|rule_sub| rule_sub == sub))
        });
        if !resource_matches {
            return false;
        }
        self.resource_names.is_empty() || name.is_some_and(|n| self.resource_names.iter().any(|r| r == n))
    }
}

/// Whether a binding subject names the user. `namespace` is the binding's own (empty for cluster bindings),
/// the default namespace of ServiceAccount subjects.
fn subject_matches(subject: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    let name = meta::str_at(subject, "/name");
    match meta::str_at(subject, "/kind") {
        "User" => user.username == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let namespace = match meta::str_at(subject, "/namespace") {
                "" => binding_namespace,
                ns => ns,
            };
            user.username == format!("system:serviceaccount:{namespace}:{name}")
        }
        _ => false,
    }
}

/// How the real RBAC authorizer names the grant that allowed a request, e.g.
/// `RBAC: allowed by RoleBinding "b/ns" of Role "r" to ServiceAccount "sa/ns"`.
fn describe(binding: &Value, binding_ns: &str, role_kind: &str, role_name: &str, subject: &Value) -> String {
    let name = meta::str_at(binding, "/metadata/name");
    let binding = if binding_ns.is_empty() {
        format!("ClusterRoleBinding \"{name}\"")
    } else {
        format!("RoleBinding \"{name}/{binding_ns}\"")
    };
    let kind = meta::str_at(subject, "/kind");
    let subject_name = meta::str_at(subject, "/name");
    let subject = match (kind, meta::str_at(subject, "/namespace")) {
        ("ServiceAccount", "") => format!("{subject_name}/{binding_ns}"),
        ("ServiceAccount", ns) => format!("{subject_name}/{ns}"),
        _ => subject_name.to_string(),
    };
    format!("RBAC: allowed by {binding} of {role_kind} \"{role_name}\" to {kind} \"{subject}\"")
}

/// A binding that applies to a user, and the rules of the role it grants.
#[derive(Debug)]
struct Grant {
    description: String,
    rules: Vec<PolicyRule>,
}

/// Every grant the user holds that applies in `namespace` (cluster-wide grants always apply).
fn grants(store: &Store, user: &UserInfo, namespace: Option<&str>) -> Vec<Grant> {
    let mut out = Vec::new();
    let mut bindings = store.list(RBAC_GROUP, "clusterrolebindings", None).objects;
    if let Some(ns) = namespace {
        bindings.extend(store.list(RBAC_GROUP, "rolebindings", Some(ns)).objects);
    }
    for binding in bindings {
        let binding_ns = meta::str_at(&binding, "/metadata/namespace");
        let Some(subject) = binding
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|s| subject_matches(s, user, binding_ns))
        else {
            continue;
        };
        let role_kind = meta::str_at(&binding, "/roleRef/kind");
        let role_name = meta::str_at(&binding, "/roleRef/name");
        let role = match role_kind {
            "ClusterRole" => store.get(&ObjectKey::new(RBAC_GROUP, "clusterroles", "", role_name)),
            "Role" => store.get(&ObjectKey::new(RBAC_GROUP, "roles", binding_ns, role_name)),
            _ => None,
        };
        let Some(role) = role else { continue };
        out.push(Grant {
            description: describe(&binding, binding_ns, role_kind, role_name, subject),
            rules: PolicyRule::from_role(&role),
        });
    }
    out
}

/// What every authenticated user may do, as the default `system:basic-user` ClusterRole grants.
fn basic_user_rules() -> Vec<PolicyRule> {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        PolicyRule {
            verbs: v(&["create"]),
            api_groups: v(&["authorization.k8s.io"]),
            resources: v(&["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            resource_names: Vec::new(),
        },
        PolicyRule {
            verbs: v(&["create"]),
            api_groups: v(&["authentication.k8s.io"]),
            resources: v(&["selfsubjectreviews"]),
            resource_names: Vec::new(),
        },
    ]
}

/// Grants by user and namespace, computed at `revision` of the RBAC group.
#[derive(Debug, Default)]
struct GrantCache {
    revision: u64,
    grants: HashMap<GrantKey, Arc<Vec<Grant>>>,
}

/// Whom grants are for: the user's name and groups (what subjects match), and the namespace.
type GrantKey = (String, Vec<String>, Option<String>);

/// Users and namespaces whose grants are kept; past it the cache starts over.
const GRANT_CACHE_LIMIT: usize = 4096;

/// Decides requests from the RBAC objects of a store. Every request is decided, and finding a
/// user's grants walks every binding and role, so grants are kept per user and namespace until an
/// RBAC object changes, as the real server's authorizer reads them from its informers' caches.
#[derive(Debug)]
pub struct Authorizer {
    store: Store,
    cache: Mutex<GrantCache>,
}

impl Authorizer {
    pub fn new(store: Store) -> Self {
        Self { store, cache: Mutex::default() }
    }

    /// The user's grants in `namespace`, as of the latest RBAC change.
    fn grants(&self, user: &UserInfo, namespace: Option<&str>) -> Arc<Vec<Grant>> {
        // Read before the grants are: a change while they are computed makes them stale at once.
        let revision = self.store.group_revision(RBAC_GROUP);
        let key: GrantKey = (user.username.clone(), user.groups.clone(), namespace.map(str::to_owned));
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.revision != revision {
                *cache = GrantCache { revision, grants: HashMap::new() };
            }
            if let Some(grants) = cache.grants.get(&key) {
                return grants.clone();
            }
        }
        let grants = Arc::new(grants(&self.store, user, namespace));
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.revision == revision {
            if cache.grants.len() >= GRANT_CACHE_LIMIT {
                cache.grants.clear();
            }
            cache.grants.insert(key, grants.clone());
        }
        grants
    }

    /// Decides a request without rendering an error (for `SelfSubjectAccessReview`).
    pub fn decide(&self, attributes: &RequestAttributes) -> Decision {
        if attributes.user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return Decision { allowed: true, reason: String::new() };
        }
        let basic = basic_user_rules().iter().any(|r| {
            r.allows(&attributes.verb, &attributes.group, &attributes.resource, attributes.subresource.as_deref(), None)
        });
        if basic {
            return Decision {
                allowed: true,
                reason: "RBAC: allowed by ClusterRoleBinding \"system:basic-user\" of ClusterRole \"system:basic-user\" to Group \"system:authenticated\"".into(),
            };
        }
        let grants = self.grants(&attributes.user, attributes.namespace.as_deref());
        let grant = grants.iter().find(|g| {
            g.rules.iter().any(|r| {
                r.allows(
                    &attributes.verb,
                    &attributes.group,
                    &attributes.resource,
                    attributes.subresource.as_deref(),
                    attributes.name.as_deref(),
                )
            })
        });
        match grant {
            Some(grant) => Decision { allowed: true, reason: grant.description.clone() },
            None => Decision { allowed: false, reason: String::new() },
        }
    }

    /// The resource rules that apply to a user in a namespace (for `SelfSubjectRulesReview`).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        if user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return vec![PolicyRule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                resource_names: Vec::new(),
            }];
        }
        let ns = (!namespace.is_empty()).then_some(namespace);
        let grants = self.grants(user, ns);
        basic_user_rules().into_iter().chain(grants.iter().flat_map(|g| g.rules.iter().cloned())).collect()
    }

    /// Allows or denies a request. A denial is a 403 `Forbidden` worded like the real server's.
    pub fn authorize(&self, attributes: &RequestAttributes) -> Result<(), ApiError> {
        if self.decide(attributes).allowed {
            return Ok(());
        }
        let qualified = qualified_resource(&attributes.group, &attributes.resource);
        let subject = match &attributes.name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified,
        };
        tracing::debug!(
            user = %attributes.user.username,
            verb = %attributes.verb,
            group = %attributes.group,
            resource = %attributes.resource,
            subresource = ?attributes.subresource,
            namespace = ?attributes.namespace,
            name = ?attributes.name,
            "request denied by RBAC"
        );
        Err(ApiError::forbidden(format!("{subject} is forbidden: {}", forbidden_message(attributes))).with_details(
            Details {
                name: attributes.name.clone().unwrap_or_default(),
                group: attributes.group.clone(),
                kind: attributes.resource.clone(),
                ..Details::default()
            },
        ))
    }
}

/// The outcome of an authorization check: whether it is allowed and why (as `SubjectAccessReviewStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The real server's denial text: `User "u" cannot VERB resource "R[/SUB]" in API group "G" in the
/// namespace "NS"` (or `at the cluster scope`).
pub fn forbidden_message(attributes: &RequestAttributes) -> String {
    let resource = match &attributes.subresource {
        Some(sub) => format!("{}/{sub}", attributes.resource),
        None => attributes.resource.clone(),
    };
    let scope = match &attributes.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    format!(
        "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        attributes.user.username, attributes.verb, attributes.group
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PolicyRule { verbs: v(verbs), api_groups: v(groups), resources: v(resources), resource_names: v(names) }
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_subresources() {
        let status = rule(&["patch"], &["review.ao.dev"], &["reviewruns/status"], &[]);
        assert!(status.allows("patch", "review.ao.dev", "reviewruns", Some("status"), Some("x")));
        assert!(!status.allows("patch", "review.ao.dev", "reviewruns", None, Some("x")));
        assert!(!status.allows("update", "review.ao.dev", "reviewruns", Some("status"), Some("x")));
        assert!(!status.allows("patch", "", "reviewruns", Some("status"), Some("x")));

        let main = rule(&["get"], &[""], &["pods"], &[]);
        assert!(main.allows("get", "", "pods", None, Some("p")));
        assert!(!main.allows("get", "", "pods", Some("status"), Some("p")));

        let any_status = rule(&["*"], &["*"], &["*/status"], &[]);
        assert!(any_status.allows("update", "apps", "deployments", Some("status"), Some("d")));
        assert!(!any_status.allows("update", "apps", "deployments", None, Some("d")));

        let everything = rule(&["*"], &["*"], &["*"], &[]);
        assert!(everything.allows("deletecollection", "x.io", "things", Some("scale"), None));
    }

    #[test]
    fn resource_names_restrict_to_named_requests() {
        let named = rule(&["get", "list"], &[""], &["configmaps"], &["allowed"]);
        assert!(named.allows("get", "", "configmaps", None, Some("allowed")));
        assert!(!named.allows("get", "", "configmaps", None, Some("other")));
        assert!(!named.allows("list", "", "configmaps", None, None));
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let user = UserInfo {
            username: "system:serviceaccount:ns:sa".into(),
            groups: vec!["system:serviceaccounts".into()],
            ..UserInfo::default()
        };
        assert!(subject_matches(&json!({"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}), &user, ""));
        assert!(subject_matches(&json!({"kind": "ServiceAccount", "name": "sa"}), &user, "ns"));
        assert!(!subject_matches(&json!({"kind": "ServiceAccount", "name": "sa", "namespace": "other"}), &user, "ns"));
        assert!(subject_matches(&json!({"kind": "Group", "name": "system:serviceaccounts"}), &user, ""));
        assert!(subject_matches(&json!({"kind": "User", "name": "system:serviceaccount:ns:sa"}), &user, ""));
        assert!(!subject_matches(&json!({"kind": "User", "name": "someone"}), &user, ""));
    }

    fn authorizer_with_binding() -> Authorizer {
        Authorizer::new(store_with_binding())
    }

    fn store_with_binding() -> Store {
        let store = Store::new(Arc::new(crate::store::NoPersistence), 100);
        let role = json!({"metadata": {"name": "status-writer", "namespace": "ns"},
            "rules": [{"verbs": ["patch"], "apiGroups": ["review.ao.dev"], "resources": ["reviewruns/status"]}]});
        store.create(ObjectKey::new(RBAC_GROUP, "roles", "ns", "status-writer"), role).unwrap();
        let binding = json!({"metadata": {"name": "b", "namespace": "ns"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "status-writer"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]});
        store.create(ObjectKey::new(RBAC_GROUP, "rolebindings", "ns", "b"), binding).unwrap();
        store
    }

    fn attributes(
        verb: &str,
        resource: &str,
        subresource: Option<&str>,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> RequestAttributes {
        RequestAttributes {
            user: UserInfo { username: "system:serviceaccount:ns:sa".into(), ..UserInfo::default() },
            verb: verb.into(),
            group: if resource == "pods" { String::new() } else { "review.ao.dev".into() },
            resource: resource.into(),
            subresource: subresource.map(str::to_string),
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn bindings_grant_their_roles_in_their_namespace_only() {
        let authorizer = authorizer_with_binding();
        let allowed = authorizer.decide(&attributes("patch", "reviewruns", Some("status"), Some("ns"), Some("x")));
        assert_eq!(
            allowed,
            Decision {
                allowed: true,
                reason: "RBAC: allowed by RoleBinding \"b/ns\" of Role \"status-writer\" to ServiceAccount \"sa/ns\""
                    .into()
            }
        );
        assert!(
            !authorizer.decide(&attributes("patch", "reviewruns", Some("status"), Some("other"), Some("x"))).allowed
        );
        let mut admin = attributes("delete", "pods", None, Some("ns"), Some("p"));
        admin.user = UserInfo::admin();
        assert!(authorizer.decide(&admin).allowed);
        let user = attributes("get", "pods", None, None, None).user;
        assert_eq!(authorizer.rules_for(&user, "ns").len(), basic_user_rules().len() + 1);
        assert_eq!(authorizer.rules_for(&user, "other"), basic_user_rules());
    }

    #[test]
    fn denials_are_worded_like_the_real_server() {
        let authorizer = authorizer_with_binding();
        let err = authorizer.authorize(&attributes("patch", "reviewruns", None, Some("ns"), Some("x"))).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            err.message,
            "reviewruns.review.ao.dev \"x\" is forbidden: User \"system:serviceaccount:ns:sa\" cannot patch resource \"reviewruns\" in API group \"review.ao.dev\" in the namespace \"ns\""
        );
        let details = err.details.unwrap();
        assert_eq!(
            (details.name.as_str(), details.group.as_str(), details.kind.as_str()),
            ("x", "review.ao.dev", "reviewruns")
        );
        let err = authorizer.authorize(&attributes("list", "pods", None, None, None)).unwrap_err();
        assert_eq!(
            err.message,
            "pods is forbidden: User \"system:serviceaccount:ns:sa\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
        );
        let err = authorizer
            .authorize(&attributes("update", "reviewruns", Some("status"), Some("ns"), Some("x")))
            .unwrap_err();
        assert!(err.message.contains("cannot update resource \"reviewruns/status\""), "{}", err.message);
    }

    #[test]
    fn kept_grants_follow_every_change_of_a_binding_or_role() {
        let store = store_with_binding();
        let authorizer = Authorizer::new(store.clone());
        let patch = attributes("patch", "reviewruns", Some("status"), Some("ns"), Some("x"));
        let get = attributes("get", "reviewruns", None, Some("ns"), Some("x"));
        assert!(authorizer.decide(&patch).allowed);
        assert!(!authorizer.decide(&get).allowed);

        // The role gains a verb: the kept grants are read again.
        let role = json!({"metadata": {"name": "status-writer", "namespace": "ns"},
            "rules": [{"verbs": ["patch", "get"], "apiGroups": ["review.ao.dev"], "resources": ["reviewruns", "reviewruns/status"]}]});
        let key = ObjectKey::new(RBAC_GROUP, "roles", "ns", "status-writer");
        store.update(key.clone(), 0, role).unwrap();
        assert!(authorizer.decide(&get).allowed);

        // A change outside RBAC keeps them; deleting the binding ends them.
        store
            .create(ObjectKey::new("", "configmaps", "ns", "c"), json!({"metadata": {"name": "c", "namespace": "ns"}}))
            .unwrap();
        assert!(authorizer.decide(&get).allowed);
        store.delete(&ObjectKey::new(RBAC_GROUP, "rolebindings", "ns", "b"), 0).unwrap();
        assert!(!authorizer.decide(&patch).allowed);
        assert!(!authorizer.decide(&get).allowed);
        assert_eq!(authorizer.rules_for(&patch.user, "ns"), basic_user_rules());
    }
}
