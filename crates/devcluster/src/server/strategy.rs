//! A strategy per resource: what the server does for one kind beyond the
//! generic store, in the places kube-apiserver's registry gives each
//! resource (`PrepareForCreate`, defaulting, `Validate`, admission, graceful
//! deletion, `ReturnDeletedObject`, the hooks after a write or a delete,
//! the table printer and the field labels). The generic paths in
//! `objects.rs`, `table.rs` and `selector.rs` ask the strategy and never
//! name a kind.

use serde_json::{Map, Value, json};

use super::ApiServer;
use crate::auth::UserInfo;
use crate::builtin::{Defaulter, defaults};
use crate::error::{ApiError, Cause};
use crate::registry::{Origin, ResourceInfo};
use crate::selector::FieldLabels;
use crate::table::Columns;

/// Validation beyond the schema: the object about to be stored, and the stored one on updates.
type Validator = fn(&ApiServer, &Value, Option<&Value>) -> Vec<Cause>;
/// Admission of a new object by namespace and name.
type CreateAdmission = fn(&ApiServer, &str, &str) -> Result<(), ApiError>;
/// The grace period a delete gives the stored object and the requested period, if it is graceful.
type GracefulDeletion = fn(&Value, Option<i64>) -> Option<i64>;
/// Follows a stored write; may answer with the object as it became.
type AfterWrite = fn(&ApiServer, &Value) -> Result<Option<Value>, ApiError>;
/// Follows a delete that removed the object.
type AfterDelete = fn(&ApiServer, &Value);

/// A subresource with its own storage rather than the object's (`pods/log`, `pods/eviction`,
/// `serviceaccounts/token`); `status` and `scale` come from the resource's definition instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subresource {
    /// `GET`: the output of the pod's processes.
    Log,
    /// `POST` an `Eviction`: a delete that respects disruption budgets.
    Eviction,
    /// `POST` a `TokenRequest`: a token bound to the service account.
    Token,
    /// `PUT` or `PATCH` the object: only its approval conditions change (CSRs).
    Approval,
    /// `PUT` or `PATCH` the pod: only ephemeral containers are added (`kubectl debug`).
    EphemeralContainers,
    /// `PUT` or `PATCH` the pod: only its containers' CPU and memory change.
    Resize,
    /// A WebSocket upgrade: a command run in a container, its streams relayed.
    Exec,
    /// A WebSocket upgrade: a container's output relayed.
    Attach,
}

impl Subresource {
    /// The group, version and kind its requests carry, when they are not the resource's own.
    pub(crate) fn kind(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Self::Log | Self::Approval | Self::EphemeralContainers | Self::Resize => None,
            Self::Exec => Some(("", "v1", "PodExecOptions")),
            Self::Attach => Some(("", "v1", "PodAttachOptions")),
            Self::Eviction => Some(("policy", "v1", "Eviction")),
            Self::Token => Some(("authentication.k8s.io", "v1", "TokenRequest")),
        }
    }

    /// The verbs discovery lists for it.
    pub(crate) fn verbs(self) -> &'static [&'static str] {
        match self {
            Self::Log => &["get"],
            Self::Eviction | Self::Token => &["create"],
            Self::Exec | Self::Attach => &["create", "get"],
            Self::Approval | Self::EphemeralContainers | Self::Resize => &["get", "patch", "update"],
        }
    }

    /// For a subresource that writes one part of its object (reads and patches of it see the whole
    /// object): how the stored object takes that part from a body, or why it may not.
    pub(crate) fn part_writer(self) -> Option<PartWriter> {
        match self {
            Self::Approval => Some(|old, body| Ok(super::csr::approval_update(old, body))),
            Self::EphemeralContainers => Some(|old, body| Ok(super::ephemeral::update(old, body))),
            Self::Resize => Some(super::resize::update),
            Self::Log | Self::Eviction | Self::Token | Self::Exec | Self::Attach => None,
        }
    }
}

/// The stored object with one part taken from a request's body, or why that part may not change so.
pub(crate) type PartWriter = fn(&Value, &Value) -> Result<Value, ApiError>;

/// How the server treats one resource; [`Strategy::of`] says which.
#[derive(Clone, Copy)]
pub(crate) struct Strategy {
    /// `ReturnDeletedObject`: a delete that removes the object at once answers with the object
    /// instead of a `Status` (pods, services, service accounts and namespaces do so).
    pub returns_deleted_object: bool,
    /// `PrepareForCreate`: the status (and spec) a new object starts with, knowing who creates it.
    pub prepare_for_create: fn(&ResourceInfo, &UserInfo, &mut Map<String, Value>),
    /// `PrepareForUpdate`: what an update (of the object, or of the named subresource) may not
    /// change, restored from the stored object.
    pub prepare_for_update: Option<fn(Option<&str>, &Value, &mut Value)>,
    /// Fills in the fields the real server defaults, on every write.
    pub defaults: Option<Defaulter>,
    /// `Validate` beyond the schema.
    pub validate: Option<Validator>,
    /// Admission of a new object beyond the policies (the pod quota).
    pub admit_create: Option<CreateAdmission>,
    /// Graceful deletion (pods on a node): a deletion timestamp in the future, removal by the node.
    pub graceful_deletion: Option<GracefulDeletion>,
    /// Names that may not be deleted.
    pub undeletable: &'static [&'static str],
    /// Whether a delete always waits for the server's own finalizer (namespaces do).
    pub deletion_waits: bool,
    /// What marking the object for deletion also changes (a namespace's `Terminating` phase, a
    /// CRD's cleanup finalizer).
    pub mark_deleting: Option<fn(&mut Value)>,
    /// The server's own finalization of a deleting object (a namespace's contents, a CRD's custom
    /// resources), run whenever it may have progressed.
    pub terminate: Option<fn(&ApiServer, &crate::store::ObjectKey, &Value)>,
    pub after_write: Option<AfterWrite>,
    pub after_delete: Option<AfterDelete>,
    /// The columns of `kubectl get` (the table convertor).
    pub columns: Columns,
    /// The fields a field selector may name, when the resource registers more than its name
    /// and namespace.
    pub field_labels: Option<FieldLabels>,
    /// The subresources with their own storage, by name.
    pub subresources: &'static [(&'static str, Subresource)],
    /// The verbs its storage serves, as discovery lists them.
    pub verbs: &'static [&'static str],
}

impl Default for Strategy {
    fn default() -> Self {
        Self {
            returns_deleted_object: false,
            prepare_for_create: clear_status,
            prepare_for_update: None,
            defaults: None,
            validate: None,
            admit_create: None,
            graceful_deletion: None,
            undeletable: &[],
            deletion_waits: false,
            mark_deleting: None,
            terminate: None,
            after_write: None,
            after_delete: None,
            columns: Columns::NameAndAge,
            field_labels: None,
            subresources: &[],
            verbs: &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }
    }
}

impl Strategy {
    /// The strategy of a resource; custom resources and the built-ins not named here use the
    /// generic store's.
    pub(crate) fn of(info: &ResourceInfo) -> Self {
        if info.origin != Origin::Builtin {
            return Self::default();
        }
        Self::builtin(&info.group, &info.resource)
    }

    /// The subresource named `name` if it has its own storage.
    pub(crate) fn subresource(&self, name: &str) -> Option<Subresource> {
        self.subresources.iter().find(|(served, _)| *served == name).map(|(_, subresource)| *subresource)
    }

    /// The strategy of the built-in resource `resource` in `group`.
    pub(crate) fn builtin(group: &str, resource: &str) -> Self {
        let generic = Self::default();
        match (group, resource) {
            ("", "pods") => Self {
                returns_deleted_object: true,
                prepare_for_create: |_, _, object| {
                    let qos = super::resize::qos_class(&Value::Object(object.clone()));
                    object.insert("status".into(), json!({"phase": "Pending", "qosClass": qos}));
                },
                defaults: Some(defaults::pod),
                admit_create: Some(|server, namespace, name| server.admit_pod_quota(namespace, name)),
                graceful_deletion: Some(crate::runner::graceful_deletion),
                columns: Columns::Pod,
                subresources: &[
                    ("log", Subresource::Log),
                    ("eviction", Subresource::Eviction),
                    ("ephemeralcontainers", Subresource::EphemeralContainers),
                    ("resize", Subresource::Resize),
                    ("exec", Subresource::Exec),
                    ("attach", Subresource::Attach),
                ],
                prepare_for_update: Some(super::ephemeral::prepare_for_update),
                validate: Some(|_, object, old| super::ephemeral::validate(object, old)),
                field_labels: Some(FieldLabels {
                    fields: &[
                        "metadata.name",
                        "metadata.namespace",
                        "spec.nodeName",
                        "spec.restartPolicy",
                        "spec.schedulerName",
                        "spec.serviceAccountName",
                        "spec.hostNetwork",
                        "spec.host",
                        "status.phase",
                        "status.podIP",
                        "status.nominatedNodeName",
                    ],
                    booleans: &["spec.hostNetwork"],
                    renamed: &[("spec.host", "spec.nodeName")],
                }),
                ..generic
            },
            ("", "namespaces") => Self {
                returns_deleted_object: true,
                prepare_for_create: |_, _, object| {
                    object.insert("status".into(), json!({"phase": "Active"}));
                    object.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
                },
                undeletable: &["default", "kube-system", "kube-public"],
                deletion_waits: true,
                mark_deleting: Some(|object| object["status"] = json!({"phase": "Terminating"})),
                terminate: Some(|server, key, _| server.terminate_namespace(&key.name)),
                columns: Columns::Namespace,
                field_labels: Some(FieldLabels::only(&["metadata.name", "status.phase"])),
                ..generic
            },
            ("", "services") => Self {
                returns_deleted_object: true,
                defaults: Some(defaults::service),
                columns: Columns::Service,
                field_labels: Some(FieldLabels::only(&[
                    "metadata.name",
                    "metadata.namespace",
                    "spec.clusterIP",
                    "spec.type",
                ])),
                ..generic
            },
            ("", "serviceaccounts") => {
                Self { returns_deleted_object: true, subresources: &[("token", Subresource::Token)], ..generic }
            }
            ("", "secrets") => Self {
                defaults: Some(defaults::secret),
                columns: Columns::Secret,
                field_labels: Some(FieldLabels::only(&["metadata.name", "metadata.namespace", "type"])),
                ..generic
            },
            ("", "configmaps") => Self { columns: Columns::ConfigMap, ..generic },
            ("", "nodes") => Self {
                field_labels: Some(FieldLabels {
                    fields: &["metadata.name", "spec.unschedulable"],
                    booleans: &["spec.unschedulable"],
                    renamed: &[],
                }),
                ..generic
            },
            ("", "events") => Self {
                field_labels: Some(FieldLabels {
                    fields: &[
                        "metadata.name",
                        "metadata.namespace",
                        "involvedObject.kind",
                        "involvedObject.namespace",
                        "involvedObject.name",
                        "involvedObject.uid",
                        "involvedObject.apiVersion",
                        "involvedObject.resourceVersion",
                        "involvedObject.fieldPath",
                        "reason",
                        "reportingComponent",
                        "source",
                        "type",
                    ],
                    booleans: &[],
                    renamed: &[("source", "source.component")],
                }),
                columns: Columns::Event,
                ..generic
            },
            // Selectors match the stored core Events, as the real conversion maps these labels.
            ("events.k8s.io", "events") => Self {
                field_labels: Some(FieldLabels {
                    fields: &[
                        "metadata.name",
                        "metadata.namespace",
                        "regarding.kind",
                        "regarding.namespace",
                        "regarding.name",
                        "regarding.uid",
                        "regarding.apiVersion",
                        "regarding.resourceVersion",
                        "regarding.fieldPath",
                        "reason",
                        "reportingController",
                        "type",
                    ],
                    booleans: &[],
                    renamed: &[
                        ("regarding.kind", "involvedObject.kind"),
                        ("regarding.namespace", "involvedObject.namespace"),
                        ("regarding.name", "involvedObject.name"),
                        ("regarding.uid", "involvedObject.uid"),
                        ("regarding.apiVersion", "involvedObject.apiVersion"),
                        ("regarding.resourceVersion", "involvedObject.resourceVersion"),
                        ("regarding.fieldPath", "involvedObject.fieldPath"),
                        ("reportingController", "reportingComponent"),
                    ],
                }),
                columns: Columns::Event,
                ..generic
            },
            ("apps", "deployments") => {
                Self { defaults: Some(defaults::deployment), columns: Columns::Deployment, ..generic }
            }
            ("apiregistration.k8s.io", "apiservices") => Self {
                prepare_for_create: super::apiservices::prepare_for_create,
                validate: Some(|_, object, old| super::apiservices::validate(object, old)),
                columns: Columns::APIService,
                ..generic
            },
            ("batch", "jobs") => Self {
                prepare_for_create: super::batch::prepare_job,
                defaults: Some(defaults::job),
                validate: Some(|_, object, old| super::batch::validate_job(object, old)),
                columns: Columns::Job,
                ..generic
            },
            ("batch", "cronjobs") => Self {
                defaults: Some(defaults::cron_job),
                validate: Some(|_, object, old| super::batch::validate_cron_job(object, old)),
                columns: Columns::CronJob,
                ..generic
            },
            ("admissionregistration.k8s.io", "validatingwebhookconfigurations" | "mutatingwebhookconfigurations") => {
                Self {
                    defaults: Some(crate::webhooks::configuration::defaults),
                    validate: Some(|_, object, old| crate::webhooks::configuration::validate(object, old)),
                    columns: Columns::WebhookConfiguration,
                    ..generic
                }
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => Self {
                prepare_for_create: |_, _, object| {
                    object.remove("status");
                },
                validate: Some(|server, object, old| server.validate_crd(object, old)),
                deletion_waits: true,
                mark_deleting: Some(super::crd::mark_terminating),
                terminate: Some(|server, key, crd| server.clean_up_crd(key, crd)),
                after_write: Some(|server, object| server.establish_crd(object)),
                after_delete: Some(|server, object| server.remove_crd(object)),
                ..generic
            },
            ("certificates.k8s.io", "certificatesigningrequests") => Self {
                prepare_for_create: |info, user, object| {
                    clear_status(info, user, object);
                    super::csr::record_requester(user, object);
                },
                prepare_for_update: Some(super::csr::prepare_for_update),
                validate: Some(|_, object, old| super::csr::validate(object, old)),
                after_write: Some(|server, object| server.sign_approved(object)),
                columns: Columns::CertificateSigningRequest,
                subresources: &[("approval", Subresource::Approval)],
                ..generic
            },
            ("authentication.k8s.io", "tokenreviews" | "selfsubjectreviews")
            | ("authorization.k8s.io", "selfsubjectaccessreviews" | "selfsubjectrulesreviews") => {
                Self { verbs: &["create"], ..generic }
            }
            _ => generic,
        }
    }
}

/// The generic store's `PrepareForCreate`: a resource with a status subresource starts without
/// a status, as only that subresource writes it.
pub(super) fn clear_status(info: &ResourceInfo, _: &UserInfo, object: &mut Map<String, Value>) {
    if info.has_status() {
        object.remove("status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(group: &str, resource: &str) -> ResourceInfo {
        crate::builtin::builtin_resources()
            .into_iter()
            .find(|r| r.group == group && r.resource == resource)
            .expect("a built-in resource")
    }

    #[test]
    fn deleted_objects_are_returned_for_the_kinds_kube_apiserver_returns_them_for() {
        for resource in ["pods", "services", "serviceaccounts", "namespaces"] {
            assert!(Strategy::of(&info("", resource)).returns_deleted_object, "{resource}");
        }
        for resource in ["configmaps", "secrets"] {
            assert!(!Strategy::of(&info("", resource)).returns_deleted_object, "{resource}");
        }
    }

    #[test]
    fn new_objects_start_with_the_status_their_strategy_gives() {
        let prepared = |group: &str, resource: &str| {
            let info = info(group, resource);
            let mut object = json!({"status": {"phase": "Running"}, "spec": {}});
            let user = UserInfo::admin();
            (Strategy::of(&info).prepare_for_create)(&info, &user, object.as_object_mut().expect("an object"));
            object
        };
        assert_eq!(prepared("", "pods")["status"], json!({"phase": "Pending", "qosClass": "BestEffort"}));
        assert_eq!(prepared("", "namespaces")["status"], json!({"phase": "Active"}));
        assert_eq!(prepared("", "namespaces")["spec"], json!({"finalizers": ["kubernetes"]}));
        assert!(prepared("apiextensions.k8s.io", "customresourcedefinitions").get("status").is_none());
        assert!(prepared("apps", "deployments").get("status").is_none(), "a status subresource clears it");
        assert_eq!(prepared("", "configmaps")["status"], json!({"phase": "Running"}), "no status subresource");
    }

    #[test]
    fn only_namespaces_protect_names_and_wait_for_their_finalizer() {
        let namespaces = Strategy::of(&info("", "namespaces"));
        assert!(namespaces.undeletable.contains(&"default") && namespaces.deletion_waits);
        let pods = Strategy::of(&info("", "pods"));
        assert!(pods.undeletable.is_empty() && !pods.deletion_waits && pods.graceful_deletion.is_some());
    }

    #[test]
    fn subresources_with_their_own_storage_belong_to_their_resource() {
        let pods = Strategy::of(&info("", "pods"));
        assert_eq!(pods.subresource("log"), Some(Subresource::Log));
        assert_eq!(pods.subresource("eviction"), Some(Subresource::Eviction));
        assert_eq!(pods.subresource("token"), None);
        assert_eq!(Strategy::of(&info("", "serviceaccounts")).subresource("token"), Some(Subresource::Token));
        assert_eq!(Strategy::of(&info("", "secrets")).subresource("log"), None);
    }
}
