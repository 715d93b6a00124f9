//! `meta.k8s.io/v1` `Table` responses for kubectl's `Accept: ...;as=Table;...`.
//!
//! Custom resources get `Name` plus the CRD's `additionalPrinterColumns` (or a single `Age` column
//! when it defines none), converted like apiextensions' table convertor: `date` cells are already
//! humanized (`5m`) by the server. Built-ins get the columns of the real server's printers for the
//! kinds an operator looks at, and `Name`/`Age` otherwise.

mod jsonpath;

pub use jsonpath::JsonPath;

use crate::registry::{Origin, PrinterColumn, ResourceInfo};
use crate::server::strategy::Strategy;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// What `includeObject` asks to embed in each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter (`None`, `Metadata`, `Object`); anything else is
    /// `None` so the caller can answer 400 with the real message.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "None" => Some(Self::None),
            "" | "Metadata" => Some(Self::Metadata),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// Whether an `Accept` header asks for a `meta.k8s.io/v1` Table (kubectl sends
/// `application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json`).
/// The Table itself is served as `application/json`.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let has = |k: &str, v: &str| params.iter().any(|(pk, pv)| pk.trim() == k && pv.trim() == v);
        media == "application/json" && has("as", "Table") && has("g", "meta.k8s.io") && has("v", "v1")
    })
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// Builds a Table of `objects` with the resource's printer columns (Name and Age at least).
/// `resource_version` and `continue_token` go into the Table's list metadata.
pub fn to_table(
    info: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    to_table_at(info, objects, include, resource_version, continue_token, Utc::now())
}

/// [`to_table`] with ages computed against `now`.
pub fn to_table_at(
    info: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    let printer = Printer::for_resource(info);
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({"cells": printer.cells(object, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    });
                }
                IncludeObject::Object => row["object"] = object.clone(),
            }
            row
        })
        .collect();
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), json!(resource_version));
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), json!(token));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": printer.definitions(),
        "rows": rows,
    })
}

/// A `TableColumnDefinition`.
fn column(name: &str, type_: &str, format: &str, description: &str, priority: i32) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// The columns of a built-in kind, as kube-apiserver's printer for it gives them; a resource's
/// strategy names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Columns {
    Pod,
    Namespace,
    Deployment,
    Service,
    Job,
    CronJob,
    ConfigMap,
    Secret,
    CertificateSigningRequest,
    APIService,
    /// Both event APIs: kube-apiserver prints the one internal Event.
    Event,
    /// Validating and mutating webhook configurations: how many webhooks each holds.
    WebhookConfiguration,
    NameAndAge,
}

/// How one kind's rows are printed.
enum Printer {
    /// Name followed by JSONPath columns, as for custom resources.
    Custom(Vec<(PrinterColumn, Option<JsonPath>)>),
    Builtin(Columns),
}

impl Printer {
    fn for_resource(info: &ResourceInfo) -> Self {
        if let Origin::Custom { .. } = info.origin {
            let columns = if info.printer_columns.is_empty() {
                vec![PrinterColumn {
                    name: "Age".into(),
                    type_: "date".into(),
                    format: String::new(),
                    description: CREATION_DESCRIPTION.into(),
                    json_path: ".metadata.creationTimestamp".into(),
                    priority: 0,
                }]
            } else {
                info.printer_columns.clone()
            };
            let parsed = columns
                .into_iter()
                .map(|c| {
                    let path = JsonPath::parse(&c.json_path).ok();
                    (c, path)
                })
                .collect();
            return Self::Custom(parsed);
        }
        Self::Builtin(Strategy::of(info).columns)
    }

    fn definitions(&self) -> Vec<Value> {
        let name = column("Name", "string", "name", NAME_DESCRIPTION, 0);
        let age = column("Age", "string", "", CREATION_DESCRIPTION, 0);
        let s = |n: &str, d: &str| column(n, "string", "", d, 0);
        let wide = |n: &str, d: &str| column(n, "string", "", d, 1);
        match self {
            Self::Custom(columns) => std::iter::once(name)
                .chain(columns.iter().map(|(c, _)| {
                    let description = if c.description.is_empty() {
                        format!("Custom resource definition column (in JSONPath format): {}", c.json_path)
                    } else {
                        c.description.clone()
                    };
                    column(&c.name, &c.type_, &c.format, &description, c.priority)
                }))
                .collect(),
            Self::Builtin(Columns::Pod) => vec![
                name,
                s("Ready", "The aggregate readiness state of this pod for accepting traffic."),
                s("Status", "The aggregate status of the containers in this pod."),
                s(
                    "Restarts",
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ),
                age,
                wide(
                    "IP",
                    "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                ),
                wide("Node", "NodeName indicates in which node this pod is scheduled."),
                wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node."),
                wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
            ],
            Self::Builtin(Columns::Namespace) => vec![name, s("Status", "The status of the namespace"), age],
            Self::Builtin(Columns::Deployment) => vec![
                name,
                s("Ready", "Number of the pod with ready state"),
                column(
                    "Up-to-date",
                    "string",
                    "",
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                    0,
                ),
                column(
                    "Available",
                    "string",
                    "",
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                    0,
                ),
                age,
                wide("Containers", "Names of each container in the template."),
                wide("Images", "Images referenced by each container in the template."),
                wide(
                    "Selector",
                    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                ),
            ],
            Self::Builtin(Columns::Service) => vec![
                name,
                s("Type", "type determines how the Service is exposed."),
                s("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
                s(
                    "External-IP",
                    "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                ),
                s("Port(s)", "The list of ports that are exposed by this service."),
                age,
                wide("Selector", "Route service traffic to pods with label keys and values matching this selector."),
            ],
            Self::Builtin(Columns::Job) => vec![
                name,
                s("Status", "Status of the job."),
                s("Completions", "The completion status of the job."),
                s("Duration", "Time required to complete the job."),
                age,
                wide("Containers", "Names of each container in the template."),
                wide("Images", "Images referenced by each container in the template."),
                wide("Selector", "Selector of the job."),
            ],
            Self::Builtin(Columns::CronJob) => vec![
                name,
                s("Schedule", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
                s(
                    "Timezone",
                    "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
                ),
                column("Suspend", "boolean", "", "This flag tells the controller to suspend subsequent executions.", 0),
                column("Active", "integer", "", "A list of pointers to currently running jobs.", 0),
                s("Last Schedule", "Information when was the last time the job was successfully scheduled."),
                age,
                wide("Containers", "Names of each container in the template."),
                wide("Images", "Images referenced by each container in the template."),
                wide("Selector", "Selector of the job."),
            ],
            Self::Builtin(Columns::ConfigMap) => {
                vec![name, column("Data", "string", "", "Data contains the configuration data.", 0), age]
            }
            Self::Builtin(Columns::Secret) => vec![
                name,
                s("Type", "Used to facilitate programmatic handling of secret data."),
                column("Data", "string", "", "Data contains the secret data.", 0),
                age,
            ],
            Self::Builtin(Columns::CertificateSigningRequest) => vec![
                name,
                age,
                s("SignerName", "Only one of the certificate signers is allowed to sign the certificate."),
                s("Requestor", "Name of the user who created the request."),
                s("RequestedDuration", "The requested duration of validity of the issued certificate."),
                s("Condition", "The status of the certificate signing request."),
            ],
            Self::Builtin(Columns::APIService) => vec![
                name,
                s("Service", "The reference to the service that hosts this API endpoint."),
                s("Available", "Whether this service is available."),
                age,
            ],
            Self::Builtin(Columns::Event) => vec![
                s("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
                s("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
                s(
                    "Reason",
                    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                ),
                s("Object", "The object that this event is about."),
                wide(
                    "Subobject",
                    "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
                ),
                wide("Source", "The component reporting this event. Should be a short machine understandable string."),
                s("Message", "A human-readable description of the status of this operation."),
                wide(
                    "First Seen",
                    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
                ),
                wide("Count", "The number of times this event has occurred."),
                column("Name", "string", "name", NAME_DESCRIPTION, 1),
            ],
            Self::Builtin(Columns::WebhookConfiguration) => vec![
                name,
                column(
                    "Webhooks",
                    "integer",
                    "",
                    "Webhooks indicates the number of webhooks registered in this configuration",
                    0,
                ),
                age,
            ],
            Self::Builtin(Columns::NameAndAge) => vec![name, age],
        }
    }

    fn cells(&self, object: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let name = json!(str_at(object, "/metadata/name"));
        let age = json!(age_since(object.pointer("/metadata/creationTimestamp"), now));
        match self {
            Self::Custom(columns) => std::iter::once(name)
                .chain(columns.iter().map(|(c, path)| {
                    let value = path.as_ref().and_then(|p| p.find(object).into_iter().next());
                    value.map_or(Value::Null, |v| custom_cell(&c.type_, v, now))
                }))
                .collect(),
            Self::Builtin(Columns::Pod) => pod_cells(object, name, age, now),
            Self::Builtin(Columns::Namespace) => vec![name, json!(str_at(object, "/status/phase")), age],
            Self::Builtin(Columns::Deployment) => deployment_cells(object, name, age),
            Self::Builtin(Columns::Service) => service_cells(object, name, age),
            Self::Builtin(Columns::Job) => job_cells(object, name, age, now),
            Self::Builtin(Columns::CronJob) => cron_job_cells(object, name, age, now),
            Self::Builtin(Columns::ConfigMap) => {
                vec![name, json!(count(object, "data") + count(object, "binaryData")), age]
            }
            Self::Builtin(Columns::Secret) => {
                vec![name, json!(str_at(object, "/type")), json!(count(object, "data")), age]
            }
            Self::Builtin(Columns::CertificateSigningRequest) => {
                let duration = object
                    .pointer("/spec/expirationSeconds")
                    .and_then(Value::as_i64)
                    .map_or_else(|| "<none>".to_string(), |s| human_duration(chrono::TimeDelta::seconds(s)));
                vec![
                    name,
                    age,
                    json!(str_at(object, "/spec/signerName")),
                    json!(str_at(object, "/spec/username")),
                    json!(duration),
                    json!(csr_condition(object)),
                ]
            }
            Self::Builtin(Columns::APIService) => {
                vec![name, json!(apiservice_service(object)), json!(apiservice_available(object)), age]
            }
            Self::Builtin(Columns::Event) => event_cells(object, name, now),
            Self::Builtin(Columns::WebhookConfiguration) => {
                let webhooks = object.get("webhooks").and_then(Value::as_array).map_or(0, Vec::len);
                vec![name, json!(webhooks), age]
            }
            Self::Builtin(Columns::NameAndAge) => vec![name, age],
        }
    }
}

/// `printEvent` of kube-apiserver, on the core form of either API's Event: times fall back from
/// the deprecated timestamps to `eventTime` and the series, a singleton counts 1, and the source
/// is the reporting component and instance when the old `source` is empty.
fn event_cells(object: &Value, name: Value, now: DateTime<Utc>) -> Vec<Value> {
    let converted;
    let event = if str_at(object, "/apiVersion") == crate::events::EVENTS_API_VERSION {
        converted = crate::events::events_to_core(object);
        &converted
    } else {
        object
    };
    let since = |pointer: &str| event.pointer(pointer).filter(|t| t.as_str().is_some_and(|t| !t.is_empty()));
    let first = match since("/firstTimestamp") {
        Some(t) => age_since(Some(t), now),
        None => age_since(since("/eventTime"), now),
    };
    let mut last = since("/lastTimestamp").map_or_else(|| first.clone(), |t| age_since(Some(t), now));
    let mut count = int_at(event, "/count");
    if event.get("series").is_some_and(Value::is_object) {
        last = age_since(since("/series/lastObservedTime"), now);
        count = int_at(event, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(event, "/involvedObject/kind").to_lowercase();
    let target = match str_at(event, "/involvedObject/name") {
        "" => kind,
        object_name => format!("{kind}/{object_name}"),
    };
    let first_non_empty = |a: &str, b: &str| if a.is_empty() { b.to_string() } else { a.to_string() };
    let component = first_non_empty(str_at(event, "/source/component"), str_at(event, "/reportingComponent"));
    let instance = first_non_empty(str_at(event, "/source/host"), str_at(event, "/reportingInstance"));
    let source = if instance.is_empty() { component } else { format!("{component}, {instance}") };
    vec![
        json!(last),
        json!(str_at(event, "/type")),
        json!(str_at(event, "/reason")),
        json!(target),
        json!(str_at(event, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(event, "/message").trim()),
        json!(first),
        json!(count),
        name,
    ]
}

/// `Local`, or the `namespace/name` of the Service that serves the APIService.
fn apiservice_service(object: &Value) -> String {
    match object.pointer("/spec/service").filter(|s| !s.is_null()) {
        Some(service) => format!("{}/{}", str_at(service, "/namespace"), str_at(service, "/name")),
        None => "Local".to_string(),
    }
}

/// `True`, or `False (Reason)`, from the Available condition; `Unknown` without one.
fn apiservice_available(object: &Value) -> String {
    let conditions = object.pointer("/status/conditions").and_then(Value::as_array);
    let available = conditions.into_iter().flatten().find(|c| str_at(c, "/type") == "Available");
    match available {
        Some(c) if str_at(c, "/status") == "True" => "True".to_string(),
        Some(c) => format!("{} ({})", str_at(c, "/status"), str_at(c, "/reason")),
        None => "Unknown".to_string(),
    }
}

/// A request's condition as kubectl shows it: `Pending`, `Approved` or `Denied`, then `,Failed`
/// and `,Issued` when they apply.
fn csr_condition(object: &Value) -> String {
    let holds = |type_: &str| crate::server::csr::condition_is(object, type_);
    let mut condition = if holds("Denied") {
        "Denied".to_string()
    } else if holds("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if holds("Failed") {
        condition.push_str(",Failed");
    }
    if !str_at(object, "/status/certificate").is_empty() {
        condition.push_str(",Issued");
    }
    condition
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int_at(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn count(object: &Value, field: &str) -> usize {
    object.get(field).and_then(Value::as_object).map_or(0, Map::len)
}

/// `cellForJSONValue` of apiextensions' table convertor: the cell for a typed CRD column.
fn custom_cell(type_: &str, value: &Value, now: DateTime<Utc>) -> Value {
    match type_ {
        "integer" => value.as_i64().or_else(|| value.as_f64().map(|f| f as i64)).map_or(Value::Null, |i| json!(i)),
        "number" => value.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => value.as_bool().map_or(Value::Null, Value::Bool),
        "date" => match value.as_str() {
            Some(s) => json!(match DateTime::parse_from_rfc3339(s) {
                Ok(t) => human_duration(now.signed_duration_since(t.with_timezone(&Utc))),
                Err(_) => "<invalid>".to_string(),
            }),
            None => Value::Null,
        },
        _ => match value {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
    }
}

/// `translateTimestampSince`: `<unknown>` without a timestamp, a humanized age otherwise.
fn age_since(timestamp: Option<&Value>, now: DateTime<Utc>) -> String {
    timestamp
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or_else(|| "<unknown>".to_string(), |t| human_duration(now.signed_duration_since(t.with_timezone(&Utc))))
}

/// `duration.HumanDuration` of apimachinery: two or three significant figures (`90s`, `5m3s`, `3h`, `2d4h`).
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{days}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

fn exit_reason(terminated: &Value) -> String {
    let signal = terminated.get("signal").and_then(Value::as_i64).unwrap_or(0);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", terminated.get("exitCode").and_then(Value::as_i64).unwrap_or(0))
    }
}

fn condition_true(object: &Value, type_: &str) -> bool {
    object.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
        cs.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some(type_)
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    })
}

/// The pod printer of kubectl/the API server: ready count, aggregate status, restarts and wide columns.
fn pod_cells(pod: &Value, name: Value, age: Value, now: DateTime<Utc>) -> Vec<Value> {
    let empty = Vec::new();
    let list = |p: &str| pod.pointer(p).and_then(Value::as_array).unwrap_or(&empty);
    let total = list("/spec/containers").len();
    let mut reason = str_at(pod, "/status/phase").to_string();
    if !str_at(pod, "/status/reason").is_empty() {
        reason = str_at(pod, "/status/reason").to_string();
    }
    let mut restarts = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut note_restart = |status: &Value, restarts: &mut i64| {
        *restarts += status.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        let finished = status
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        if let Some(t) = finished {
            last_restart = Some(last_restart.map_or(t, |l: DateTime<Utc>| l.max(t)));
        }
    };
    let init_statuses = list("/status/initContainerStatuses");
    let init_total = list("/spec/initContainers").len();
    let mut initializing = false;
    for (i, status) in init_statuses.iter().enumerate() {
        note_restart(status, &mut restarts);
        let terminated = status.pointer("/state/terminated");
        let waiting_reason = status.pointer("/state/waiting/reason").and_then(Value::as_str).unwrap_or("");
        if terminated.and_then(|t| t.get("exitCode")).and_then(Value::as_i64).unwrap_or(-1) == 0 {
            continue;
        }
        reason = match terminated {
            Some(t) => match t.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => format!("Init:{}", exit_reason(t)),
            },
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                format!("Init:{waiting_reason}")
            }
            None => format!("Init:{i}/{init_total}"),
        };
        initializing = true;
        break;
    }
    let mut ready = 0;
    if !initializing || condition_true(pod, "Initialized") {
        restarts = 0;
        let mut has_running = false;
        for status in list("/status/containerStatuses").iter().rev() {
            note_restart(status, &mut restarts);
            let waiting = status.pointer("/state/waiting/reason").and_then(Value::as_str).unwrap_or("");
            let terminated = status.pointer("/state/terminated");
            let terminated_reason = terminated.and_then(|t| t.get("reason")).and_then(Value::as_str).unwrap_or("");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if !terminated_reason.is_empty() {
                reason = terminated_reason.to_string();
            } else if let Some(t) = terminated {
                reason = exit_reason(t);
            } else if status.get("ready").and_then(Value::as_bool) == Some(true)
                && status.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") { "Running".into() } else { "NotReady".into() };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
        reason = if str_at(pod, "/status/reason") == "NodeLost" { "Unknown".into() } else { "Terminating".into() };
    }
    let restarts_cell = match last_restart {
        Some(t) => format!("{restarts} ({} ago)", human_duration(now.signed_duration_since(t))),
        None => restarts.to_string(),
    };
    let or_none = |s: &str| if s.is_empty() { "<none>".to_string() } else { s.to_string() };
    let gates = list("/spec/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| g.get("conditionType").and_then(Value::as_str).is_some_and(|t| condition_true(pod, t)))
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name,
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age,
        json!(or_none(str_at(pod, "/status/podIP"))),
        json!(or_none(str_at(pod, "/spec/nodeName"))),
        json!(or_none(str_at(pod, "/status/nominatedNodeName"))),
        json!(gates_cell),
    ]
}

fn deployment_cells(deploy: &Value, name: Value, age: Value) -> Vec<Value> {
    let desired = deploy.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let template = deploy.pointer("/spec/template");
    vec![
        name,
        json!(format!("{}/{desired}", int_at(deploy, "/status/readyReplicas"))),
        json!(int_at(deploy, "/status/updatedReplicas")),
        json!(int_at(deploy, "/status/availableReplicas")),
        age,
        json!(template_containers(template, "name")),
        json!(template_containers(template, "image")),
        json!(selector_string(deploy.pointer("/spec/selector"))),
    ]
}

/// kubectl's Service row: its type, addresses, and ports as `port[:nodePort]/protocol`.
fn service_cells(service: &Value, name: Value, age: Value) -> Vec<Value> {
    let service_type = str_at(service, "/spec/type");
    let list = |pointer: &str| -> Vec<String> {
        let items = service.pointer(pointer).and_then(Value::as_array);
        items.into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
    };
    let external_ips = list("/spec/externalIPs");
    let external = match service_type {
        "ExternalName" => str_at(service, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let ingress = service.pointer("/status/loadBalancer/ingress").and_then(Value::as_array);
            let mut addresses: Vec<String> = ingress
                .into_iter()
                .flatten()
                .map(|i| if str_at(i, "/ip").is_empty() { str_at(i, "/hostname") } else { str_at(i, "/ip") })
                .map(String::from)
                .collect();
            addresses.extend(external_ips);
            if addresses.is_empty() { "<pending>".to_string() } else { addresses.join(",") }
        }
        _ if external_ips.is_empty() => "<none>".to_string(),
        _ => external_ips.join(","),
    };
    let ports = service.pointer("/spec/ports").and_then(Value::as_array);
    let ports: Vec<String> = ports
        .into_iter()
        .flatten()
        .map(|port| {
            let number = int_at(port, "/port");
            let protocol = str_at(port, "/protocol");
            match port.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0) {
                Some(node_port) => format!("{number}:{node_port}/{protocol}"),
                None => format!("{number}/{protocol}"),
            }
        })
        .collect();
    let cluster_ip = match str_at(service, "/spec/clusterIP") {
        "" => "<none>",
        ip => ip,
    };
    // A Service's selector is a plain label map: printed as a selector of those labels.
    let selector = service.pointer("/spec/selector").map(|labels| json!({"matchLabels": labels}));
    let selector = selector_string(selector.as_ref());
    vec![
        name,
        json!(service_type),
        json!(cluster_ip),
        json!(external),
        json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") }),
        age,
        json!(selector),
    ]
}

/// The containers of a pod template, by `field`, joined by commas.
fn template_containers(template: Option<&Value>, field: &str) -> String {
    let containers = template.and_then(|t| t.pointer("/spec/containers")).and_then(Value::as_array);
    let values: Vec<&str> =
        containers.into_iter().flatten().map(|c| c.get(field).and_then(Value::as_str).unwrap_or("")).collect();
    values.join(",")
}

/// Whether the Job's condition of `type_` is true.
fn job_condition(job: &Value, type_: &str) -> bool {
    let conditions = job.pointer("/status/conditions").and_then(Value::as_array);
    conditions.into_iter().flatten().any(|c| str_at(c, "/type") == type_ && str_at(c, "/status") == "True")
}

/// kubectl's Job row: the status from its conditions, `succeeded/completions` (or `succeeded/1 of
/// parallelism` for a work queue), and the time from start to completion (or to now).
fn job_cells(job: &Value, name: Value, age: Value, now: DateTime<Utc>) -> Vec<Value> {
    let status = if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let succeeded = int_at(job, "/status/succeeded");
    let completions = match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => {
            let parallelism = job.pointer("/spec/parallelism").and_then(Value::as_i64).unwrap_or(0);
            if parallelism > 1 { format!("{succeeded}/1 of {parallelism}") } else { format!("{succeeded}/1") }
        }
    };
    let time =
        |pointer: &str| job.pointer(pointer).and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let duration = match (time("/status/startTime"), time("/status/completionTime")) {
        (Some(start), Some(end)) => human_duration(end.signed_duration_since(start)),
        (Some(start), None) => human_duration(now.signed_duration_since(start)),
        (None, _) => String::new(),
    };
    let template = job.pointer("/spec/template");
    vec![
        name,
        json!(status),
        json!(completions),
        json!(duration),
        age,
        json!(template_containers(template, "name")),
        json!(template_containers(template, "image")),
        json!(selector_string(job.pointer("/spec/selector"))),
    ]
}

/// kubectl's CronJob row.
fn cron_job_cells(cron: &Value, name: Value, age: Value, now: DateTime<Utc>) -> Vec<Value> {
    let zone = cron.pointer("/spec/timeZone").and_then(Value::as_str).unwrap_or("<none>");
    // `printBoolPtr`: Go's `%t` capitalised.
    let suspend = match cron.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let active = cron.pointer("/status/active").and_then(Value::as_array).map_or(0, Vec::len);
    let last = match cron.pointer("/status/lastScheduleTime") {
        Some(time) => age_since(Some(time), now),
        None => "<none>".to_string(),
    };
    let template = cron.pointer("/spec/jobTemplate/spec/template");
    vec![
        name,
        json!(str_at(cron, "/spec/schedule")),
        json!(zone),
        json!(suspend),
        json!(active),
        json!(last),
        age,
        json!(template_containers(template, "name")),
        json!(template_containers(template, "image")),
        json!(selector_string(cron.pointer("/spec/jobTemplate/spec/selector"))),
    ]
}

/// `metav1.FormatLabelSelector`: `a=b,c in (d,e)`, `<none>` when empty.
fn selector_string(selector: Option<&Value>) -> String {
    let Some(selector) = selector else { return "<none>".into() };
    let mut parts: Vec<String> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    for expr in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match expr.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        });
    }
    if parts.is_empty() { "<none>".into() } else { parts.join(",") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::builtin_resources;
    use chrono::TimeDelta;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn builtin(group: &str, resource: &str) -> ResourceInfo {
        builtin_resources().into_iter().find(|r| r.group == group && r.resource == resource).unwrap()
    }

    fn review_runs(columns: Vec<PrinterColumn>) -> ResourceInfo {
        ResourceInfo {
            group: "review.ao.dev".into(),
            version: "v1alpha1".into(),
            resource: "reviewruns".into(),
            singular: "reviewrun".into(),
            kind: "ReviewRun".into(),
            list_kind: "ReviewRunList".into(),
            namespaced: true,
            short_names: Vec::new(),
            categories: Vec::new(),
            subresources: vec!["status".into()],
            printer_columns: columns,
            schema: None,
            origin: Origin::Custom { crd: "reviewruns.review.ao.dev".into() },
        }
    }

    fn col(name: &str, type_: &str, path: &str) -> PrinterColumn {
        PrinterColumn {
            name: name.into(),
            type_: type_.into(),
            format: String::new(),
            description: String::new(),
            json_path: path.into(),
            priority: 0,
        }
    }

    fn run() -> Value {
        json!({
            "apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun",
            "metadata": {"name": "r1", "namespace": "ns", "creationTimestamp": "2026-01-01T11:55:00Z", "labels": {"a": "b"}},
            "spec": {"reviewer": "alice", "attempts": 2, "score": 1.5, "urgent": true, "tags": ["x"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        })
    }

    #[test]
    fn human_durations_match_apimachinery() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (303, "5m3s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (730 * 86400, "2y"),
            (735 * 86400, "2y5d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(TimeDelta::seconds(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn custom_resource_columns_follow_the_crd() {
        let info = review_runs(vec![
            col("Reviewer", "string", ".spec.reviewer"),
            col("Ready", "string", ".status.conditions[?(@.type==\"Ready\")].status"),
            col("Attempts", "integer", ".spec.attempts"),
            col("Score", "number", ".spec.score"),
            col("Urgent", "boolean", ".spec.urgent"),
            col("Tags", "string", ".spec.tags"),
            col("Missing", "string", ".spec.nothing"),
            col("Age", "date", ".metadata.creationTimestamp"),
        ]);
        let table = to_table_at(&info, &[run()], IncludeObject::Metadata, "42", Some("tok"), now());
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"], json!({"resourceVersion": "42", "continue": "tok"}));
        let defs = table["columnDefinitions"].as_array().unwrap();
        let names: Vec<&str> = defs.iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Reviewer", "Ready", "Attempts", "Score", "Urgent", "Tags", "Missing", "Age"]);
        assert_eq!(defs[0]["format"], "name");
        assert_eq!(defs[8]["type"], "date");
        assert_eq!(defs[1]["description"], "Custom resource definition column (in JSONPath format): .spec.reviewer");
        assert_eq!(table["rows"][0]["cells"], json!(["r1", "alice", "True", 2, 1.5, true, "[\"x\"]", null, "5m"]));
        assert_eq!(
            table["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": run()["metadata"]})
        );
    }

    #[test]
    fn custom_resource_without_columns_gets_age() {
        let table = to_table_at(&review_runs(Vec::new()), &[run()], IncludeObject::None, "", None, now());
        let defs = table["columnDefinitions"].as_array().unwrap();
        assert_eq!(defs.len(), 2);
        assert_eq!((defs[1]["name"].as_str(), defs[1]["type"].as_str()), (Some("Age"), Some("date")));
        assert_eq!(table["rows"][0]["cells"], json!(["r1", "5m"]));
        assert!(table["rows"][0].get("object").is_none());
        assert_eq!(table["metadata"], json!({}));
    }

    #[test]
    fn mistyped_and_invalid_cells() {
        let info = review_runs(vec![
            col("A", "integer", ".spec.reviewer"),
            col("B", "date", ".spec.reviewer"),
            col("C", "boolean", ".spec.reviewer"),
            col("D", "date", ".spec.attempts"),
            col("E", "string", ".spec[bad"),
            col("F", "number", ".spec.attempts"),
        ]);
        let table = to_table_at(&info, &[run()], IncludeObject::Object, "1", None, now());
        assert_eq!(table["rows"][0]["cells"], json!(["r1", null, "<invalid>", null, null, null, 2.0]));
        assert_eq!(table["rows"][0]["object"], run());
    }

    #[test]
    fn default_builtin_table_is_name_and_age() {
        let cm = json!({"metadata": {"name": "sa1", "creationTimestamp": "2026-01-01T10:00:00Z"}});
        let table = to_table_at(
            &builtin("", "serviceaccounts"),
            &[cm, json!({"metadata": {"name": "x"}})],
            IncludeObject::Metadata,
            "7",
            None,
            now(),
        );
        let names: Vec<&str> =
            table["columnDefinitions"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Age"]);
        assert_eq!(table["rows"][0]["cells"], json!(["sa1", "120m"]));
        assert_eq!(table["rows"][1]["cells"], json!(["x", "<unknown>"]));
    }

    #[test]
    fn pod_columns() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T11:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T11:50:00Z"}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        let table = to_table_at(&builtin("", "pods"), &[pod], IncludeObject::None, "1", None, now());
        let names: Vec<&str> =
            table["columnDefinitions"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        assert_eq!(table["columnDefinitions"][5]["priority"], 1);
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["p", "1/2", "CrashLoopBackOff", "2 (10m ago)", "60m", "10.0.0.5", "n1", "<none>", "<none>"])
        );
    }

    #[test]
    fn pod_status_variants() {
        let status_of = |pod: Value| {
            to_table_at(&builtin("", "pods"), &[pod], IncludeObject::None, "", None, now())["rows"][0]["cells"][2]
                .clone()
        };
        assert_eq!(status_of(json!({"metadata": {"name": "p"}, "status": {"phase": "Pending"}})), "Pending");
        assert_eq!(
            status_of(
                json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T11:00:00Z"}, "status": {"phase": "Running"}})
            ),
            "Terminating"
        );
        assert_eq!(
            status_of(json!({"metadata": {"name": "p"}, "status": {"phase": "Failed", "reason": "Evicted"}})),
            "Evicted"
        );
        assert_eq!(
            status_of(json!({"metadata": {"name": "p"}, "status": {"phase": "Failed", "containerStatuses": [
                {"state": {"terminated": {"exitCode": 137, "signal": 9}}}]}})),
            "Signal:9"
        );
        assert_eq!(
            status_of(json!({"metadata": {"name": "p"}, "status": {"phase": "Failed", "containerStatuses": [
                {"state": {"terminated": {"exitCode": 3}}}]}})),
            "ExitCode:3"
        );
        assert_eq!(
            status_of(
                json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{}, {}]}, "status": {"phase": "Pending",
                "initContainerStatuses": [{"state": {"terminated": {"exitCode": 0}}}, {"state": {"running": {}}}]}})
            ),
            "Init:1/2"
        );
        assert_eq!(
            status_of(json!({"metadata": {"name": "p"}, "status": {"phase": "Pending",
                "initContainerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}})),
            "Init:ImagePullBackOff"
        );
        assert_eq!(
            status_of(json!({"metadata": {"name": "p"}, "status": {"phase": "Pending",
                "initContainerStatuses": [{"state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}})),
            "Init:Error"
        );
        assert_eq!(
            status_of(
                json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"ready": true, "state": {"running": {}}}, {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}})
            ),
            "NotReady"
        );
    }

    #[test]
    fn readiness_gates_cell() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"readinessGates": [{"conditionType": "x"}, {"conditionType": "y"}]},
            "status": {"conditions": [{"type": "x", "status": "True"}]}});
        let table = to_table_at(&builtin("", "pods"), &[pod], IncludeObject::None, "", None, now());
        assert_eq!(table["rows"][0]["cells"][8], "1/2");
    }

    #[test]
    fn namespace_deployment_configmap_secret_columns() {
        let ns = json!({"metadata": {"name": "dev", "creationTimestamp": "2026-01-01T11:59:00Z"}, "status": {"phase": "Active"}});
        let t = to_table_at(&builtin("", "namespaces"), &[ns], IncludeObject::None, "", None, now());
        assert_eq!(t["rows"][0]["cells"], json!(["dev", "Active", "60s"]));

        let deploy = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "DoesNotExist"}]},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}, {"name": "d", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = to_table_at(&builtin("apps", "deployments"), &[deploy], IncludeObject::None, "", None, now());
        let names: Vec<&str> =
            t["columnDefinitions"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "2/3", 3, 2, "<unknown>", "c,d", "nginx,busybox", "app=web,tier in (a,b),!x"])
        );

        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        let t = to_table_at(&builtin("", "configmaps"), &[cm], IncludeObject::None, "", None, now());
        assert_eq!(t["rows"][0]["cells"], json!(["c", 3, "<unknown>"]));

        let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg=="}});
        let t = to_table_at(&builtin("", "secrets"), &[secret], IncludeObject::None, "", None, now());
        assert_eq!(t["rows"][0]["cells"], json!(["s", "Opaque", 1, "<unknown>"]));
    }

    #[test]
    fn selector_string_without_selector() {
        assert_eq!(selector_string(None), "<none>");
        assert_eq!(selector_string(Some(&json!({}))), "<none>");
    }

    #[test]
    fn accept_header_selects_tables() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(wants_table("application/json; as=Table; g=meta.k8s.io; v=v1"));
        assert!(!wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io"));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/yaml;as=Table;v=v1;g=meta.k8s.io"));
    }

    #[test]
    fn include_object_parses_query_values() {
        assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
        assert_eq!(IncludeObject::parse(""), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("Metadata"), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("object"), None);
    }
}
