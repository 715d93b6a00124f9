//! Answers carry their keys in the order kube-apiserver writes them: built-in kinds in their Go
//! types' field order (`kind`, `apiVersion`, `metadata`, then the type's fields), lists, `Status`
//! errors and watch events likewise, custom resources with sorted keys. Checked on the raw bytes.

mod support;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::json;
use support::send_raw;

/// A JSON document as written: every object's keys in the order they came.
#[derive(Debug)]
enum Node {
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Node>()? {
                    entries.push((key, value));
                }
                Ok(Node::Object(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Array(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

impl Node {
    fn parse(bytes: &[u8]) -> Node {
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
    }

    /// The node at a `/`-separated path of keys and list indices.
    #[track_caller]
    fn at(&self, path: &str) -> &Node {
        path.split('/').filter(|p| !p.is_empty()).fold(self, |node, part| match node {
            Node::Object(entries) => &entries.iter().find(|(k, _)| k == part).unwrap_or_else(|| panic!("no {part}")).1,
            Node::Array(items) => &items[part.parse::<usize>().expect("an index")],
            Node::Scalar => panic!("{part} under a scalar"),
        })
    }

    /// The keys of the object at `path`, in written order.
    #[track_caller]
    fn keys(&self, path: &str) -> Vec<&str> {
        match self.at(path) {
            Node::Object(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            other => panic!("{path} is not an object: {other:?}"),
        }
    }

    /// Whether every object in the document has sorted keys.
    fn sorted_everywhere(&self) -> bool {
        match self {
            Node::Object(entries) => {
                entries.windows(2).all(|w| w[0].0 < w[1].0) && entries.iter().all(|(_, v)| v.sorted_everywhere())
            }
            Node::Array(items) => items.iter().all(Node::sorted_everywhere),
            Node::Scalar => true,
        }
    }
}

/// Asserts that `keys` come in the order `declared` gives them (a subsequence of it).
#[track_caller]
fn in_declared_order(keys: &[&str], declared: &[&str]) {
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| declared.iter().position(|d| d == k).unwrap_or_else(|| panic!("{k} is not declared")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{keys:?} is not in the order of {declared:?}");
}

const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// `PodSpec` in Go's order, which its protobuf field numbers do not follow.
const POD_SPEC: &[&str] = &[
    "volumes",
    "initContainers",
    "containers",
    "ephemeralContainers",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "dnsPolicy",
    "nodeSelector",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "hostname",
    "subdomain",
    "affinity",
    "schedulerName",
    "tolerations",
    "hostAliases",
    "priorityClassName",
    "priority",
    "dnsConfig",
    "readinessGates",
    "runtimeClassName",
    "enableServiceLinks",
    "preemptionPolicy",
    "overhead",
    "topologySpreadConstraints",
    "setHostnameAsFQDN",
    "os",
    "hostUsers",
    "schedulingGates",
    "resourceClaims",
    "resources",
];

const CONTAINER: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "ports",
    "envFrom",
    "env",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "restartPolicyRules",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
];

async fn get(client: &kube::Client, path: &str) -> Node {
    let answer = send_raw(client, "GET", path, &[], vec![]).await.unwrap();
    Node::parse(&answer.body)
}

async fn post(client: &kube::Client, path: &str, body: serde_json::Value) -> Node {
    let answer = send_raw(client, "POST", path, &[("content-type", "application/json")], body.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    Node::parse(&answer.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_objects_lists_errors_and_watch_events_come_in_go_field_order() {
    let cluster = support::cluster_without_pods().await;
    let client = cluster.client().unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {"volumes": [{"name": "scratch", "emptyDir": {}}],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1d"], "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 80, "name": "http"}]}],
            "nodeSelector": {"disk": "ssd"}}});
    let created = post(&client, "/api/v1/namespaces/default/pods", pod).await;
    assert_eq!(created.keys("")[..4], ["kind", "apiVersion", "metadata", "spec"]);
    let read = get(&client, "/api/v1/namespaces/default/pods/web").await;
    let top = read.keys("");
    assert_eq!(top[..4], ["kind", "apiVersion", "metadata", "spec"]);
    in_declared_order(&top, &["kind", "apiVersion", "metadata", "spec", "status"]);
    in_declared_order(&read.keys("metadata"), OBJECT_META);
    assert_eq!(read.keys("metadata")[..2], ["name", "namespace"]);
    let spec = read.keys("spec");
    in_declared_order(&spec, POD_SPEC);
    assert_eq!(spec[..3], ["volumes", "initContainers", "containers"], "Go order, not protobuf numbers");
    in_declared_order(&read.keys("spec/containers/0"), CONTAINER);
    assert_eq!(read.keys("spec/containers/0/env/0"), ["name", "value"]);
    assert_eq!(read.keys("spec/containers/0/ports/0"), ["name", "containerPort", "protocol"]);
    assert_eq!(read.keys("spec/volumes/0"), ["name", "emptyDir"], "an inline struct's fields follow the name");

    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "labels": {"b": "2", "a": "1"}}, "data": {"z": "1", "a": "2"}, "immutable": false});
    post(&client, "/api/v1/namespaces/default/configmaps", config_map).await;
    let raw = send_raw(&client, "GET", "/api/v1/namespaces/default/configmaps/settings", &[], vec![]).await.unwrap();
    let prefix = r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"settings","namespace":"default","uid":""#;
    assert!(raw.body.starts_with(prefix.as_bytes()), "{}", String::from_utf8_lossy(&raw.body));
    let read = Node::parse(&raw.body);
    assert_eq!(read.keys(""), ["kind", "apiVersion", "metadata", "immutable", "data"]);
    let metadata = read.keys("metadata");
    in_declared_order(&metadata, OBJECT_META);
    assert_eq!(metadata[..4], ["name", "namespace", "uid", "resourceVersion"]);
    assert_eq!(metadata[metadata.len() - 2..], ["labels", "managedFields"]);
    assert_eq!(read.keys("metadata/labels"), ["a", "b"], "maps keep sorted keys");
    assert_eq!(read.keys("data"), ["a", "z"]);
    assert_eq!(read.keys("metadata/managedFields/0")[..3], ["manager", "operation", "apiVersion"]);

    let list = get(&client, "/api/v1/namespaces/default/configmaps?limit=1").await;
    assert_eq!(list.keys(""), ["kind", "apiVersion", "metadata", "items"]);
    assert_eq!(list.keys("metadata"), ["resourceVersion", "continue", "remainingItemCount"]);
    assert_eq!(list.keys("items/0")[..3], ["kind", "apiVersion", "metadata"]);

    let missing = get(&client, "/api/v1/namespaces/default/configmaps/missing").await;
    assert_eq!(missing.keys(""), ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]);
    assert_eq!(missing.keys("details"), ["name", "kind"]);
    let invalid = send_raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("content-type", "application/json")],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}}).to_string().into_bytes(),
    )
    .await
    .unwrap();
    let invalid = Node::parse(&invalid.body);
    assert_eq!(invalid.keys("details"), ["name", "kind", "causes"]);
    assert_eq!(invalid.keys("details/causes/0"), ["reason", "message", "field"]);

    let watch = send_raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&fieldSelector=metadata.name%3Dsettings&timeoutSeconds=1",
        &[],
        vec![],
    )
    .await
    .unwrap();
    let first = watch.body.split(|b| *b == b'\n').next().expect("one event");
    let event = Node::parse(first);
    assert_eq!(event.keys(""), ["type", "object"]);
    assert_eq!(event.keys("object"), ["kind", "apiVersion", "metadata", "immutable", "data"]);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_keep_sorted_keys_as_unstructured_objects() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}});
    let stored = post(&client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).await;
    // A CustomResourceDefinition is a built-in Go struct: its type and metadata come first.
    assert_eq!(stored.keys("")[..4], ["kind", "apiVersion", "metadata", "spec"]);
    let path = "/apis/example.com/v1/namespaces/default/widgets";
    support::eventually("widgets to be served", || async {
        let answer = send_raw(&client, "GET", path, &[], vec![]).await.ok()?;
        (answer.status == 200).then_some(())
    })
    .await;
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "labels": {"z": "1"}}, "spec": {"size": 3, "color": "red", "parts": [{"b": 1, "a": 2}]}});
    let created = post(&client, path, widget).await;
    assert!(created.sorted_everywhere(), "{created:?}");
    let read = get(&client, &format!("{path}/w")).await;
    assert_eq!(read.keys(""), ["apiVersion", "kind", "metadata", "spec"]);
    assert!(read.sorted_everywhere(), "{read:?}");
    let list = get(&client, path).await;
    assert_eq!(list.keys(""), ["apiVersion", "items", "kind", "metadata"]);
    assert!(list.sorted_everywhere(), "{list:?}");
    cluster.shutdown().await.unwrap();
}
