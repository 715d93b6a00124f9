//! Schema checks: CRD structural validation, defaulting, pruning and CEL rules, and the strict
//! decoding of built-in objects (unknown and duplicate fields).

mod support;

use devcluster::DevCluster;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use support::send_raw;

const RUNS: &str = "/apis/review.ao.dev/v1alpha1/namespaces/default/reviewruns";
const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";

async fn install_review_run_crd(cluster: &DevCluster) {
    let crd =
        std::fs::read(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds/reviewrun.yaml")).unwrap();
    let client = cluster.client().unwrap();
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let answer = send_raw(&client, "POST", path, &[("content-type", "application/yaml")], crd).await.unwrap();
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    wait_until_served(&client, RUNS).await;
}

/// Waits until the list path of a CRD's resources answers.
async fn wait_until_served(client: &kube::Client, list_path: &str) {
    support::eventually("the custom resources are served", || async {
        (send_raw(client, "GET", list_path, &[], vec![]).await.ok()?.status == 200).then_some(())
    })
    .await;
}

/// Stores a CRD and waits until its resources are served at `list_path`.
async fn install_crd(client: &kube::Client, crd: &Value, list_path: &str) {
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let body = crd.to_string().into_bytes();
    let created = send_raw(client, "POST", path, &[("content-type", "application/json")], body).await.unwrap();
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    wait_until_served(client, list_path).await;
}

fn runs(cluster: &DevCluster) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("review.ao.dev", "v1alpha1", "ReviewRun");
    Api::default_namespaced_with(cluster.client().unwrap(), &ApiResource::from_gvk(&gvk))
}

fn run(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "review.ao.dev/v1alpha1",
        "kind": "ReviewRun",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn valid_spec() -> Value {
    json!({"reviewer": "review-alice", "pullRequest": {"url": "https://example.com/p/1", "headSha": "abcdef1"}})
}

#[track_caller]
fn api_error(result: Result<DynamicObject, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_failing_their_schema_are_invalid_with_a_cause_per_field() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    let bad = run("bad", json!({"pullRequest": {"url": "https://example.com/p/1", "headSha": "NOT-HEX"}}));
    let status = api_error(runs(&cluster).create(&PostParams::default(), &bad).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.starts_with("ReviewRun.review.ao.dev \"bad\" is invalid: "), "{}", status.message);
    let causes = status.details.expect("details").causes;
    let fields: Vec<(&str, &str)> = causes.iter().map(|c| (c.field.as_str(), c.reason.as_str())).collect();
    assert!(fields.contains(&("spec.pullRequest.headSha", "FieldValueInvalid")), "{causes:?}");
    assert!(fields.contains(&("spec.reviewer", "FieldValueRequired")), "{causes:?}");
    let sha = causes.iter().find(|c| c.field == "spec.pullRequest.headSha").unwrap();
    assert!(sha.message.contains("should match '^[0-9a-f]{7,64}$'"), "{}", sha.message);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cel_transition_rule_rejects_an_update_naming_the_rule() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    let api = runs(&cluster);
    let mut created = api.create(&PostParams::default(), &run("run-1", valid_spec())).await.unwrap();
    created.data["spec"]["reviewer"] = json!("review-bob");
    let status = api_error(api.replace("run-1", &PostParams::default(), &created).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.contains("spec is immutable except spec.cancelRequested"), "{}", status.message);
    let causes = status.details.expect("details").causes;
    assert_eq!(causes[0].field, "spec");

    // The rule's one mutable field still changes.
    let mut current = api.get("run-1").await.unwrap();
    current.data["spec"]["cancelRequested"] = json!(true);
    api.replace("run-1", &PostParams::default(), &current).await.unwrap();
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_are_defaulted_and_pruned() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    let mut spec = valid_spec();
    spec["bogus"] = json!(1);
    let created = runs(&cluster).create(&PostParams::default(), &run("run-1", spec.clone())).await.unwrap();
    assert_eq!(created.data["spec"]["timeout"], "1h");
    assert_eq!(created.data["spec"]["cancelRequested"], false);
    assert_eq!(created.data["spec"].get("bogus"), None);

    let body = serde_json::to_vec(&run("run-2", spec)).unwrap();
    let client = cluster.client().unwrap();
    let strict = send_raw(&client, "POST", &format!("{RUNS}?fieldValidation=Strict"), &[], body).await.unwrap();
    assert_eq!(strict.status(400, "BadRequest"), "strict decoding error: unknown field \"spec.bogus\"");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_objects_with_unknown_fields_are_warned_about_or_rejected_under_strict() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"bogus":1}"#.to_vec();
    let strict =
        send_raw(&client, "POST", &format!("{CONFIG_MAPS}?fieldValidation=Strict"), &[], body.clone()).await.unwrap();
    assert_eq!(strict.status(400, "BadRequest"), "strict decoding error: unknown field \"bogus\"");

    let warned = send_raw(&client, "POST", CONFIG_MAPS, &[], body).await.unwrap();
    assert_eq!(warned.status, 201);
    assert_eq!(warned.headers.get("warning").unwrap(), "299 - \"unknown field \\\"bogus\\\"\"");
    assert_eq!(warned.json().get("bogus"), None);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_fields_are_rejected_under_strict() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"},"data":{"a":"1","a":"2"}}"#.to_vec();
    let strict = send_raw(&client, "POST", &format!("{CONFIG_MAPS}?fieldValidation=Strict"), &[], body).await.unwrap();
    assert_eq!(strict.status(400, "BadRequest"), "strict decoding error: duplicate field \"data.a\"");
    cluster.shutdown().await.unwrap();
}

const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn event(name: &str, note: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "review.ao.dev/operator", "reportingInstance": "operator-0",
        "action": "Reviewing", "reason": "Started", "type": "Normal",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "p"},
        "note": note,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_notes_over_1024_bytes_are_invalid_on_create_and_update() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let expected = "Event.events.k8s.io \"long\" is invalid: message: Too long: may not be more than 1024 bytes";

    let body = serde_json::to_vec(&event("long", &"x".repeat(1025))).unwrap();
    let answer = send_raw(&client, "POST", EVENTS, &[], body).await.unwrap();
    assert_eq!(answer.status(422, "Invalid"), expected);
    let causes = &answer.json()["details"]["causes"];
    assert_eq!(
        causes,
        &json!([{"reason": "FieldValueTooLong", "field": "message", "message": "Too long: may not be more than 1024 bytes"}])
    );

    let body = serde_json::to_vec(&event("long", &"x".repeat(1024))).unwrap();
    let created = send_raw(&client, "POST", EVENTS, &[], body).await.unwrap();
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    assert_eq!(created.json()["note"].as_str().map(str::len), Some(1024));

    let mut longer = created.json();
    longer["note"] = json!("é".repeat(513));
    let path = format!("{EVENTS}/long");
    let answer = send_raw(&client, "PUT", &path, &[], serde_json::to_vec(&longer).unwrap()).await.unwrap();
    // 513 characters, 1026 bytes: the limit is in bytes.
    let message = answer.status(422, "Invalid");
    assert!(message.contains("message: Too long: may not be more than 1024 bytes"), "{message}");
    cluster.shutdown().await.unwrap();
}

/// A CRD whose schema names a type OpenAPI lacks is refused, naming the field and the types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_schema_with_an_unknown_type_is_invalid() {
    let cluster = support::cluster().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "int"}}}}}}}]}});
    let client = cluster.client().unwrap();
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let answer = send_raw(&client, "POST", path, &[("content-type", "application/json")], crd.to_string().into_bytes())
        .await
        .unwrap();
    let message = answer.status(422, "Invalid");
    assert!(
        message.contains("properties[spec].properties[size].type: Unsupported value: \"int\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""),
        "{message}"
    );
    let listed = send_raw(&client, "GET", path, &[], vec![]).await.unwrap().json();
    assert!(listed["items"].as_array().is_some_and(Vec::is_empty), "nothing was stored: {listed}");
    cluster.shutdown().await.unwrap();
}

/// Moving a CRD's storage to a new version keeps the earlier one in `status.storedVersions`, as
/// objects may still be stored in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_versions_keep_every_storage_version_a_crd_had() {
    let cluster = support::cluster().await;
    let version = |name: &str, storage: bool| {
        json!({"name": name, "served": true, "storage": storage, "schema": {"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
    };
    let crd = |versions: Value| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}, "versions": versions}})
    };
    let client = cluster.client().unwrap();
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let merge = [("content-type", "application/merge-patch+json")];
    install_crd(
        &client,
        &crd(json!([version("v1beta1", true)])),
        "/apis/example.com/v1beta1/namespaces/default/gadgets",
    )
    .await;
    let named = format!("{path}/gadgets.example.com");
    let moved = json!({"spec": {"versions": [version("v1beta1", false), version("v1", true)]}});
    let patched = send_raw(&client, "PATCH", &named, &merge, moved.to_string().into_bytes()).await.unwrap();
    assert_eq!(patched.status, 200, "{}", String::from_utf8_lossy(&patched.body));
    let stored = support::eventually("both storage versions are recorded", || {
        let (client, named) = (client.clone(), named.clone());
        async move {
            let crd = send_raw(&client, "GET", &named, &[], vec![]).await.ok()?.json();
            let stored = crd.pointer("/status/storedVersions").cloned()?;
            (stored.as_array()?.len() == 2).then_some(stored)
        }
    })
    .await;
    assert_eq!(stored, json!(["v1beta1", "v1"]));
    cluster.shutdown().await.unwrap();
}

/// An object is read through each served version of its CRD pruned by that version's schema
/// (conversion `None`): what the other version's schema does not know is not shown, and not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_read_through_another_version_are_pruned_by_its_schema() {
    let cluster = support::cluster().await;
    let schema = |fields: &[&str]| {
        let properties: serde_json::Map<String, Value> =
            fields.iter().map(|f| (f.to_string(), json!({"type": "string"}))).collect();
        json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}}})
    };
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema(&["color", "size"])},
                {"name": "v1beta1", "served": true, "storage": false, "schema": schema(&["color"])}]}});
    let client = cluster.client().unwrap();
    let json_body = [("content-type", "application/json")];
    let v1 = "/apis/example.com/v1/namespaces/default/gizmos";
    install_crd(&client, &crd, v1).await;
    let gizmo = json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"},
        "spec": {"color": "red", "size": "L"}});
    let stored = send_raw(&client, "POST", v1, &json_body, gizmo.to_string().into_bytes()).await.unwrap();
    assert_eq!(stored.status, 201, "{}", String::from_utf8_lossy(&stored.body));
    let beta = send_raw(&client, "GET", "/apis/example.com/v1beta1/namespaces/default/gizmos/g", &[], vec![])
        .await
        .unwrap()
        .json();
    assert_eq!(
        (beta["apiVersion"].clone(), beta["spec"].clone()),
        (json!("example.com/v1beta1"), json!({"color": "red"}))
    );
    let listed = send_raw(&client, "GET", "/apis/example.com/v1beta1/namespaces/default/gizmos", &[], vec![])
        .await
        .unwrap()
        .json();
    assert_eq!(listed["items"][0]["spec"], json!({"color": "red"}));
    let full = send_raw(&client, "GET", &format!("{v1}/g"), &[], vec![]).await.unwrap().json();
    assert_eq!(full["spec"], json!({"color": "red", "size": "L"}), "the stored object keeps what v1 knows");
    cluster.shutdown().await.unwrap();
}

/// events.k8s.io Events are selected by the fields kube-apiserver registers for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_k8s_io_field_selectors_select_by_regarding_reason_type_and_controller() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let path = "/apis/events.k8s.io/v1/namespaces/default/events";
    let event = |name: &str, kind: &str, reason: &str, type_: &str| {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": name},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1", "action": "Check", "reason": reason, "type": type_, "note": "n",
            "regarding": {"kind": kind, "name": "x", "namespace": "default"}})
    };
    for (name, kind, reason, type_) in
        [("a", "Pod", "Started", "Normal"), ("b", "Pod", "Failed", "Warning"), ("c", "Node", "Failed", "Warning")]
    {
        let body = event(name, kind, reason, type_).to_string().into_bytes();
        let created = send_raw(&client, "POST", path, &[("content-type", "application/json")], body).await.unwrap();
        assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    }
    let names = |selector: &'static str| {
        let client = client.clone();
        async move {
            let url = format!("{path}?fieldSelector={selector}");
            let listed = send_raw(&client, "GET", &url, &[], vec![]).await.unwrap().json();
            let items = listed["items"].as_array().cloned().unwrap_or_default();
            items.iter().map(|e| e["metadata"]["name"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(names("regarding.kind%3DPod").await, ["a", "b"]);
    assert_eq!(names("reason%3DFailed,type%3DWarning").await, ["b", "c"]);
    assert_eq!(names("reportingController%3Dexample.com%2Fctl,regarding.kind!%3DPod").await, ["c"]);
    let refused = send_raw(&client, "GET", &format!("{path}?fieldSelector=note%3Dn"), &[], vec![]).await.unwrap();
    let message = refused.status(400, "BadRequest");
    assert!(message.contains("note"), "{message}");
    cluster.shutdown().await.unwrap();
}

/// With `optionalOldSelf: true`, `oldSelf` is an optional: empty on create, the old value on
/// update, and failures name the rule as the CRD wrote it. `optMap`, which the CEL library parses
/// but cannot evaluate, makes the CRD invalid instead of failing every object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_old_self_is_an_optional_on_create_and_update() {
    let cluster = support::cluster().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "dials.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "dials", "singular": "dial", "kind": "Dial"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object",
                    "properties": {"level": {"type": "integer"}},
                    "x-kubernetes-validations": [
                        {"rule": "!oldSelf.hasValue() || self.level >= oldSelf.value().level", "optionalOldSelf": true,
                            "message": "level may not go down"},
                        {"rule": "self.level <= oldSelf.orValue({'level': 5}).level + 5", "optionalOldSelf": true}]}}}}}]}});
    let client = cluster.client().unwrap();
    let json_body = [("content-type", "application/json")];
    let dials = "/apis/example.com/v1/namespaces/default/dials";
    let mut with_opt_map = crd.clone();
    with_opt_map["metadata"]["name"] = json!("knobs.example.com");
    with_opt_map["spec"]["names"] = json!({"plural": "knobs", "singular": "knob", "kind": "Knob"});
    with_opt_map["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "oldSelf.optMap(o, o.level).orValue(0) >= 0", "optionalOldSelf": true}]);
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let refused =
        send_raw(&client, "POST", crds, &[("content-type", "application/json")], with_opt_map.to_string().into_bytes())
            .await
            .unwrap();
    let message = refused.status(422, "Invalid");
    assert!(message.contains("properties[spec].x-kubernetes-validations[0].rule"), "{message}");
    assert!(message.contains("does not support optMap"), "{message}");
    install_crd(&client, &crd, dials).await;
    let dial = |level: i64| {
        json!({"apiVersion": "example.com/v1", "kind": "Dial", "metadata": {"name": "d"}, "spec": {"level": level}})
            .to_string()
            .into_bytes()
    };
    let too_high = send_raw(&client, "POST", dials, &json_body, dial(11)).await.unwrap();
    let message = too_high.status(422, "Invalid");
    assert!(message.contains("failed rule: self.level <= oldSelf.orValue({'level': 5}).level + 5"), "{message}");
    let created = send_raw(&client, "POST", dials, &json_body, dial(3)).await.unwrap();
    assert_eq!(created.status, 201, "on create oldSelf is empty: {}", String::from_utf8_lossy(&created.body));
    let merge = [("content-type", "application/merge-patch+json")];
    let up =
        send_raw(&client, "PATCH", &format!("{dials}/d"), &merge, br#"{"spec": {"level": 7}}"#.to_vec()).await.unwrap();
    assert_eq!(up.status, 200, "{}", String::from_utf8_lossy(&up.body));
    let down =
        send_raw(&client, "PATCH", &format!("{dials}/d"), &merge, br#"{"spec": {"level": 1}}"#.to_vec()).await.unwrap();
    assert!(down.status(422, "Invalid").contains("level may not go down"));
    cluster.shutdown().await.unwrap();
}
