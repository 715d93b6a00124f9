//! core/v1 Events and events.k8s.io/v1 Events are one resource seen through two APIs, as on a real
//! server: what one API writes the other reads, lists, watches, patches and deletes, converted
//! field by field, with the same name, uid and resourceVersion.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use std::time::Duration;
use support::send_raw;

fn core_event(name: &str) -> CoreEvent {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "pod-uid"},
        "related": {"kind": "Node", "name": "node-1"},
        "reason": "Pulled", "message": "pulled the image", "type": "Normal", "action": "Pull",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:05Z", "count": 2,
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:05.000000Z"},
        "reportingComponent": "kubelet", "reportingInstance": "node-1"
    }))
    .unwrap()
}

fn new_event(name: &str, regarding: &str) -> NewEvent {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "example.com/ctl", "reportingInstance": "ctl-0",
        "action": "Reconcile", "reason": "Synced", "type": "Warning", "note": "synced the object",
        "regarding": {"kind": "ConfigMap", "name": regarding, "namespace": "default"},
        "deprecatedSource": {"component": "ctl"}, "deprecatedCount": 4,
        "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z", "deprecatedLastTimestamp": "2026-01-01T00:00:09Z"
    }))
    .unwrap()
}

fn apis(client: &kube::Client) -> (Api<CoreEvent>, Api<NewEvent>) {
    (Api::default_namespaced(client.clone()), Api::default_namespaced(client.clone()))
}

fn names<T: kube::Resource>(items: &[T]) -> Vec<String> {
    items.iter().map(|i| i.meta().name.clone().unwrap_or_default()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_through_one_api_is_read_through_the_other_field_by_field() {
    let cluster = support::cluster().await;
    let (core, new) = apis(&cluster.client().unwrap());

    let created = core.create(&PostParams::default(), &core_event("from-core")).await.unwrap();
    let seen = new.get("from-core").await.unwrap();
    assert_eq!(seen.metadata.uid, created.metadata.uid);
    assert_eq!(seen.metadata.resource_version, created.metadata.resource_version);
    assert_eq!(seen.note.as_deref(), Some("pulled the image"));
    let regarding = seen.regarding.as_ref().unwrap();
    assert_eq!((regarding.kind.as_deref(), regarding.uid.as_deref()), (Some("Pod"), Some("pod-uid")));
    assert_eq!(seen.related.as_ref().and_then(|r| r.name.as_deref()), Some("node-1"));
    assert_eq!(seen.deprecated_source.as_ref().and_then(|s| s.host.as_deref()), Some("node-1"));
    assert_eq!(seen.deprecated_count, Some(2));
    assert_eq!(seen.deprecated_first_timestamp, created.first_timestamp);
    assert_eq!(seen.deprecated_last_timestamp, created.last_timestamp);
    assert_eq!(seen.event_time, created.event_time);
    assert_eq!(seen.series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(seen.reporting_controller.as_deref(), Some("kubelet"));
    assert_eq!(seen.reporting_instance.as_deref(), Some("node-1"));
    assert_eq!(
        (seen.action.as_deref(), seen.reason.as_deref(), seen.type_.as_deref()),
        (Some("Pull"), Some("Pulled"), Some("Normal"))
    );

    let created = new.create(&PostParams::default(), &new_event("from-events", "settings")).await.unwrap();
    let seen = core.get("from-events").await.unwrap();
    assert_eq!(seen.metadata.uid, created.metadata.uid);
    assert_eq!(seen.metadata.resource_version, created.metadata.resource_version);
    assert_eq!(seen.message.as_deref(), Some("synced the object"));
    assert_eq!(seen.involved_object.name.as_deref(), Some("settings"));
    assert_eq!(seen.reporting_component.as_deref(), Some("example.com/ctl"));
    assert_eq!(seen.source.as_ref().and_then(|s| s.component.as_deref()), Some("ctl"));
    assert_eq!((seen.count, seen.first_timestamp.is_some(), seen.last_timestamp.is_some()), (Some(4), true, true));

    // Both lists hold both events; the raw answers carry each API's apiVersion and kind.
    let listed = core.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&listed.items), ["from-core", "from-events"]);
    let listed = new.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&listed.items), ["from-core", "from-events"]);
    let client = cluster.client().unwrap();
    let raw = send_raw(&client, "GET", "/apis/events.k8s.io/v1/namespaces/default/events/from-core", &[], vec![])
        .await
        .unwrap()
        .json();
    assert_eq!((raw["apiVersion"].as_str(), raw["kind"].as_str()), (Some("events.k8s.io/v1"), Some("Event")));
    assert!(raw.get("message").is_none() && raw.get("involvedObject").is_none(), "{raw}");

    // A patch through one API changes what the other reads, at the same resourceVersion.
    let patch = json!({"note": "patched through events.k8s.io"});
    let patched = new.patch("from-core", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let seen = core.get("from-core").await.unwrap();
    assert_eq!(seen.message.as_deref(), Some("patched through events.k8s.io"));
    assert_eq!(seen.metadata.resource_version, patched.metadata.resource_version);
    let patch = json!({"message": "patched through core", "count": 7});
    let patched = core.patch("from-events", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    let seen = new.get("from-events").await.unwrap();
    assert_eq!((seen.note.as_deref(), seen.deprecated_count), (Some("patched through core"), Some(7)));
    assert_eq!(seen.metadata.resource_version, patched.metadata.resource_version);

    // A replace through events.k8s.io of what core wrote keeps the rest of it.
    let mut replaced = new.get("from-core").await.unwrap();
    replaced.type_ = Some("Warning".into());
    new.replace("from-core", &PostParams::default(), &replaced).await.unwrap();
    let seen = core.get("from-core").await.unwrap();
    assert_eq!((seen.type_.as_deref(), seen.count), (Some("Warning"), Some(2)));

    // A delete through one API removes the event from both.
    new.delete("from-core", &DeleteParams::default()).await.unwrap();
    assert!(core.get_opt("from-core").await.unwrap().is_none());
    core.delete("from-events", &DeleteParams::default()).await.unwrap();
    assert!(new.get_opt("from-events").await.unwrap().is_none());
    cluster.shutdown().await.unwrap();
}

/// The first ADDED object named `name` a watch reports, within 30 seconds.
async fn added<K>(stream: impl futures::Stream<Item = kube::Result<WatchEvent<K>>>, name: &str) -> K
where
    K: kube::Resource + Clone,
{
    let mut stream = std::pin::pin!(stream);
    let found = async {
        while let Some(event) = stream.try_next().await.unwrap() {
            if let WatchEvent::Added(object) = event
                && object.meta().name.as_deref() == Some(name)
            {
                return object;
            }
        }
        panic!("the watch ended before {name} was added");
    };
    tokio::time::timeout(Duration::from_secs(30), found).await.expect("the watch reports the event within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_and_field_selectors_of_each_api_see_events_written_through_the_other() {
    let cluster = support::cluster().await;
    let (core, new) = apis(&cluster.client().unwrap());

    // A watch through events.k8s.io, selecting by a converted field, sees a create through core.
    let fields = WatchParams::default().fields("regarding.name=web,reportingController=kubelet");
    let stream = new.watch(&fields, "0").await.unwrap();
    let created = core.create(&PostParams::default(), &core_event("from-core")).await.unwrap();
    let seen = added(stream, "from-core").await;
    assert_eq!(seen.note.as_deref(), Some("pulled the image"));
    assert_eq!(seen.metadata.resource_version, created.metadata.resource_version);

    // And a watch through core sees a create through events.k8s.io.
    let stream = core.watch(&WatchParams::default().fields("involvedObject.name=settings"), "0").await.unwrap();
    new.create(&PostParams::default(), &new_event("from-events", "settings")).await.unwrap();
    let seen = added(stream, "from-events").await;
    assert_eq!(seen.message.as_deref(), Some("synced the object"));

    // Each API's field selectors select what the other wrote.
    let select = |fields: &str| ListParams::default().fields(fields);
    let list_core = |fields: &'static str| {
        let core = core.clone();
        async move { names(&core.list(&select(fields)).await.unwrap().items) }
    };
    let list_new = |fields: &'static str| {
        let new = new.clone();
        async move { names(&new.list(&select(fields)).await.unwrap().items) }
    };
    assert_eq!(list_core("involvedObject.kind=ConfigMap").await, ["from-events"]);
    assert_eq!(list_core("source=ctl,reportingComponent=example.com/ctl").await, ["from-events"]);
    assert_eq!(list_core("reason=Synced,type=Warning").await, ["from-events"]);
    assert_eq!(list_new("regarding.uid=pod-uid").await, ["from-core"]);
    assert_eq!(list_new("reportingController=kubelet,reason=Pulled,type=Normal").await, ["from-core"]);
    assert_eq!(list_new("regarding.kind!=Pod").await, ["from-events"]);

    // A watch from a resourceVersion replays what the other API wrote after it.
    let rv = created.metadata.resource_version.clone().unwrap();
    let stream = new.watch(&WatchParams::default(), &rv).await.unwrap();
    let seen = added(stream, "from-events").await;
    assert_eq!(seen.reporting_controller.as_deref(), Some("example.com/ctl"));
    let stream = core.watch(&WatchParams::default(), &rv).await.unwrap();
    let mut stream = std::pin::pin!(stream);
    new.delete("from-core", &DeleteParams::default()).await.unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = stream.next().await {
            if let Ok(WatchEvent::Deleted(object)) = event {
                return object;
            }
        }
        panic!("the watch ended before the delete");
    })
    .await
    .unwrap();
    assert_eq!(deleted.metadata.name.as_deref(), Some("from-core"));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_through_both_apis_shares_field_ownership() {
    let cluster = support::cluster().await;
    let (core, new) = apis(&cluster.client().unwrap());
    let applied = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "applied"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/ctl",
        "reportingInstance": "ctl-0", "action": "Apply", "reason": "Applied", "note": "one",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"}
    });
    new.patch("applied", &PatchParams::apply("events-writer"), &Patch::Apply(&applied)).await.unwrap();

    // Through core, the note is the message the events.k8s.io manager owns: a conflict.
    let core_apply = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "applied"},
        "message": "two", "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}});
    let err = core.patch("applied", &PatchParams::apply("core-writer"), &Patch::Apply(&core_apply)).await.unwrap_err();
    let kube::Error::Api(status) = err else { panic!("expected a conflict, got {err:?}") };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"), "{}", status.message);
    assert!(status.message.contains("events-writer") && status.message.contains(".message"), "{}", status.message);

    let forced = PatchParams::apply("core-writer").force();
    let written = core.patch("applied", &forced, &Patch::Apply(&core_apply)).await.unwrap();
    let seen = new.get("applied").await.unwrap();
    assert_eq!(seen.note.as_deref(), Some("two"));
    assert_eq!(seen.metadata.resource_version, written.metadata.resource_version);
    let entries = seen.metadata.managed_fields.clone().unwrap_or_default();
    let fields_of = |manager: &str| {
        let entry = entries.iter().find(|e| e.manager.as_deref() == Some(manager)).expect("an entry per manager");
        (entry.api_version.clone().unwrap_or_default(), serde_json::to_value(&entry.fields_v1).unwrap())
    };
    let (version, fields) = fields_of("core-writer");
    assert_eq!(version, "v1");
    assert!(fields.pointer("/f:message").is_some(), "{fields}");
    let (version, fields) = fields_of("events-writer");
    assert_eq!(version, "events.k8s.io/v1");
    assert!(fields.pointer("/f:note").is_none() && fields.pointer("/f:reason").is_some(), "{fields}");

    // A write that changes nothing answers with the managers' fields as stored, each API's own.
    let unchanged = new.replace("applied", &PostParams::default(), &seen).await.unwrap();
    assert_eq!(unchanged.metadata.resource_version, seen.metadata.resource_version);
    assert_eq!(unchanged.metadata.managed_fields, Some(entries.clone()));

    // The events.k8s.io manager applying again without the note gives up nothing else.
    let mut without_note = applied.clone();
    without_note.as_object_mut().unwrap().remove("note");
    new.patch("applied", &PatchParams::apply("events-writer"), &Patch::Apply(&without_note)).await.unwrap();
    let seen = core.get("applied").await.unwrap();
    assert_eq!((seen.message.as_deref(), seen.reason.as_deref()), (Some("two"), Some("Applied")));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_for_core_events_does_not_grant_events_k8s_io() {
    let cluster = support::cluster().await;
    let admin = cluster.client().unwrap();
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "core-events", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "create"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "core-events", "namespace": "default"},
        "subjects": [{"kind": "ServiceAccount", "name": "recorder", "namespace": "default"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "core-events"}});
    for (path, body) in [
        ("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", role),
        ("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", binding),
    ] {
        let answer = send_raw(&admin, "POST", path, &[], body.to_string().into_bytes()).await.unwrap();
        assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    }
    let token = support::service_account_token(&cluster, "default", "recorder", None);
    let (core, new) = apis(&support::client_with_token(&cluster, Some(&token)));
    core.create(&PostParams::default(), &core_event("recorded")).await.unwrap();
    assert_eq!(names(&core.list(&ListParams::default()).await.unwrap().items), ["recorded"]);
    let err = new.get("recorded").await.unwrap_err();
    let kube::Error::Api(status) = err else { panic!("expected Forbidden, got {err:?}") };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "events.events.k8s.io \"recorded\" is forbidden: User \"system:serviceaccount:default:recorder\" \
         cannot get resource \"events\" in API group \"events.k8s.io\" in the namespace \"default\""
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_events_through_both_apis() {
    let cluster = support::cluster().await;
    let manifest = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: from-kubectl\n\
        eventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: example.com/ctl\n\
        reportingInstance: ctl-0\naction: Reconcile\nreason: Synced\ntype: Normal\nnote: created by kubectl\n\
        regarding: {kind: ConfigMap, name: settings, namespace: default}\n";
    support::kubectl_with(&cluster, &["create", "-f", "-"], Some(manifest), &[]).await.ok();
    let core_manifest = "apiVersion: v1\nkind: Event\nmetadata:\n  name: core-from-kubectl\n\
        involvedObject: {kind: Pod, name: web, namespace: default}\nreason: Pulled\nmessage: core message\n\
        type: Normal\nsource: {component: kubelet}\nfirstTimestamp: \"2026-01-01T00:00:00Z\"\n\
        lastTimestamp: \"2026-01-01T00:00:00Z\"\ncount: 1\n";
    support::kubectl_with(&cluster, &["create", "-f", "-"], Some(core_manifest), &[]).await.ok();

    let core_names = support::kubectl(&cluster, &["get", "events", "-o", "name"]).await.ok();
    assert_eq!(core_names, "event/core-from-kubectl\nevent/from-kubectl\n");
    let new_names = support::kubectl(&cluster, &["get", "events.v1.events.k8s.io", "-o", "name"]).await.ok();
    assert_eq!(new_names, "event.events.k8s.io/core-from-kubectl\nevent.events.k8s.io/from-kubectl\n");
    let message =
        support::kubectl(&cluster, &["get", "events", "from-kubectl", "-o", "jsonpath={.message}"]).await.ok();
    assert_eq!(message, "created by kubectl");
    let note = support::kubectl(
        &cluster,
        &["get", "events.v1.events.k8s.io", "core-from-kubectl", "-o", "jsonpath={.note}/{.regarding.name}"],
    )
    .await
    .ok();
    assert_eq!(note, "core message/web");

    // Both APIs print the one internal Event with kube-apiserver's columns.
    for resource in ["events", "events.v1.events.k8s.io"] {
        let table = support::kubectl(&cluster, &["get", resource, "-o", "wide"]).await.ok();
        let rows: Vec<Vec<&str>> =
            table.lines().map(|l| l.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect()).collect();
        assert_eq!(
            rows[0],
            ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"],
            "{table}"
        );
        assert!(rows[1][1..].starts_with(&["Normal", "Pulled", "pod/web", "kubelet", "core message"]), "{table}");
        assert!(
            rows[2][1..].starts_with(&["Normal", "Synced", "configmap/settings", "example.com/ctl, ctl-0"]),
            "{table}"
        );
        assert_eq!(rows[2].last(), Some(&"from-kubectl"), "{table}");
    }
    let events = support::kubectl(&cluster, &["events"]).await.ok();
    assert!(events.contains("created by kubectl") && events.contains("core message"), "{events}");

    support::kubectl(&cluster, &["delete", "events.v1.events.k8s.io", "core-from-kubectl"]).await.ok();
    let left = support::kubectl(&cluster, &["get", "events", "-o", "name"]).await.ok();
    assert_eq!(left, "event/from-kubectl\n");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_through_either_api_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || devcluster::Config { data_dir: Some(dir.path().to_path_buf()), ..devcluster::Config::default() };
    let cluster = devcluster::DevCluster::start(config()).await.unwrap();
    let (core, new) = apis(&cluster.client().unwrap());
    let from_new = new.create(&PostParams::default(), &new_event("from-events", "settings")).await.unwrap();
    let from_core = core.create(&PostParams::default(), &core_event("from-core")).await.unwrap();
    cluster.shutdown().await.unwrap();

    let cluster = devcluster::DevCluster::start(config()).await.unwrap();
    let (core, new) = apis(&cluster.client().unwrap());
    let seen = core.get("from-events").await.unwrap();
    assert_eq!(seen.metadata.resource_version, from_new.metadata.resource_version);
    assert_eq!(seen.message.as_deref(), Some("synced the object"));
    let seen = new.get("from-core").await.unwrap();
    assert_eq!(seen.metadata.uid, from_core.metadata.uid);
    assert_eq!(seen.note.as_deref(), Some("pulled the image"));
    let listed: Vec<Value> = new
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    cluster.shutdown().await.unwrap();
}

/// The `k8s\0` + `runtime.Unknown` protobuf body typed clients send.
fn protobuf_body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use prost::Message;
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some("application/vnd.kubernetes.protobuf".into()),
    };
    [b"k8s\0".to_vec(), unknown.encode_to_vec()].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_events_of_either_api_are_read_through_the_other() {
    use k8s_pb::api::{core::v1 as pb_core, events::v1 as pb_events};
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
    use prost::Message;
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let (core, new) = apis(&client);
    let metadata = |name: &str| Some(pb_meta::ObjectMeta { name: Some(name.into()), ..Default::default() });
    let reference = Some(pb_core::ObjectReference {
        kind: Some("Pod".into()),
        name: Some("web".into()),
        namespace: Some("default".into()),
        ..Default::default()
    });
    let new_style = pb_events::Event {
        metadata: metadata("pb-events"),
        event_time: Some(pb_meta::MicroTime { seconds: Some(1_767_225_600), nanos: Some(0) }),
        reporting_controller: Some("example.com/ctl".into()),
        reporting_instance: Some("ctl-0".into()),
        action: Some("Reconcile".into()),
        reason: Some("Synced".into()),
        note: Some("sent as protobuf".into()),
        regarding: reference.clone(),
        ..Default::default()
    };
    let old_style = pb_core::Event {
        metadata: metadata("pb-core"),
        involved_object: reference,
        reason: Some("Pulled".into()),
        message: Some("core as protobuf".into()),
        source: Some(pb_core::EventSource { component: Some("kubelet".into()), host: None }),
        count: Some(3),
        ..Default::default()
    };
    let headers = [("content-type", "application/vnd.kubernetes.protobuf")];
    for (path, body) in [
        (
            "/apis/events.k8s.io/v1/namespaces/default/events",
            protobuf_body("events.k8s.io/v1", "Event", new_style.encode_to_vec()),
        ),
        ("/api/v1/namespaces/default/events", protobuf_body("v1", "Event", old_style.encode_to_vec())),
    ] {
        let created = send_raw(&client, "POST", path, &headers, body).await.unwrap();
        assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    }
    let seen = core.get("pb-events").await.unwrap();
    assert_eq!(seen.message.as_deref(), Some("sent as protobuf"));
    assert_eq!(seen.involved_object.name.as_deref(), Some("web"));
    assert_eq!(seen.reporting_component.as_deref(), Some("example.com/ctl"));
    let seen = new.get("pb-core").await.unwrap();
    assert_eq!((seen.note.as_deref(), seen.deprecated_count), (Some("core as protobuf"), Some(3)));
    assert_eq!(seen.deprecated_source.and_then(|s| s.component).as_deref(), Some("kubelet"));
    cluster.shutdown().await.unwrap();
}
