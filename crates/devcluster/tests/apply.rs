//! Server-side apply through `kube::Client`: several managers merge and conflict as on a real server.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": data})
}

/// The managers recorded in managedFields, with their operation, in order.
fn managers(object: &ConfigMap) -> Vec<(String, String)> {
    let fields = object.metadata.managed_fields.as_deref().unwrap_or_default();
    fields.iter().map(|m| (m.manager.clone().unwrap_or_default(), m.operation.clone().unwrap_or_default())).collect()
}

/// The data keys a manager owns, from its fieldsV1 set.
fn owned_data_keys(object: &ConfigMap, manager: &str) -> Vec<String> {
    let fields = object.metadata.managed_fields.as_deref().unwrap_or_default();
    let entry = fields.iter().find(|m| m.manager.as_deref() == Some(manager)).expect("the manager has an entry");
    let set = &entry.fields_v1.as_ref().expect("fieldsV1").0;
    set.get("f:data")
        .and_then(Value::as_object)
        .map(|d| d.keys().filter_map(|k| k.strip_prefix("f:")).map(str::to_string).collect())
        .unwrap_or_default()
}

fn data(object: &ConfigMap) -> Value {
    serde_json::to_value(object.data.clone().unwrap_or_default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_merge_and_conflict_until_forced() {
    let cluster = support::cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());

    let first = api
        .patch("shared", &PatchParams::apply("alpha"), &Patch::Apply(config_map(json!({"a": "1", "x": "1"}))))
        .await
        .unwrap();
    assert_eq!(managers(&first), [("alpha".to_string(), "Apply".to_string())]);
    let merged =
        api.patch("shared", &PatchParams::apply("beta"), &Patch::Apply(config_map(json!({"b": "2"})))).await.unwrap();
    assert_eq!(data(&merged), json!({"a": "1", "b": "2", "x": "1"}));
    assert_eq!(
        managers(&merged),
        [("alpha".to_string(), "Apply".to_string()), ("beta".to_string(), "Apply".to_string())]
    );
    assert_eq!(owned_data_keys(&merged, "alpha"), ["a", "x"]);
    assert_eq!(owned_data_keys(&merged, "beta"), ["b"]);

    // Applying the same value another manager owns shares the field without a conflict.
    let shared = api
        .patch("shared", &PatchParams::apply("beta"), &Patch::Apply(config_map(json!({"b": "2", "a": "1"}))))
        .await
        .unwrap();
    assert_eq!(owned_data_keys(&shared, "alpha"), ["a", "x"]);
    assert_eq!(owned_data_keys(&shared, "beta"), ["a", "b"]);

    // A different value for a field another manager owns is a conflict naming it.
    let err = api
        .patch("shared", &PatchParams::apply("beta"), &Patch::Apply(config_map(json!({"b": "2", "x": "changed"}))))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else { panic!("expected an API error, got {err:?}") };
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(status.message, "Apply failed with 1 conflict: conflict with \"alpha\": .data.x");
    let unchanged = api.get("shared").await.unwrap();
    assert_eq!(data(&unchanged), json!({"a": "1", "b": "2", "x": "1"}));

    // Forcing takes the field over; the previous owner loses it.
    let forced = api
        .patch(
            "shared",
            &PatchParams::apply("beta").force(),
            &Patch::Apply(config_map(json!({"b": "2", "x": "changed"}))),
        )
        .await
        .unwrap();
    assert_eq!(data(&forced), json!({"a": "1", "b": "2", "x": "changed"}));
    assert_eq!(owned_data_keys(&forced, "alpha"), ["a"]);
    assert_eq!(owned_data_keys(&forced, "beta"), ["b", "x"]);

    // A manager that stops applying a field it alone owns removes it; shared fields stay.
    let pruned = api
        .patch("shared", &PatchParams::apply("beta"), &Patch::Apply(config_map(json!({"x": "changed"}))))
        .await
        .unwrap();
    assert_eq!(data(&pruned), json!({"a": "1", "x": "changed"}));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_name_every_manager_and_update_managers_with_their_version() {
    let cluster = support::cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    api.patch("shared", &PatchParams::apply("alpha"), &Patch::Apply(config_map(json!({"a": "1"})))).await.unwrap();
    let edit = PatchParams { field_manager: Some("editor".into()), ..PatchParams::default() };
    let edited = api.patch("shared", &edit, &Patch::Merge(json!({"data": {"e": "1"}}))).await.unwrap();
    assert_eq!(
        managers(&edited),
        [("alpha".to_string(), "Apply".to_string()), ("editor".to_string(), "Update".to_string())]
    );

    let err = api
        .patch("shared", &PatchParams::apply("gamma"), &Patch::Apply(config_map(json!({"a": "2", "e": "2"}))))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else { panic!("expected an API error, got {err:?}") };
    assert_eq!(status.code, 409);
    assert_eq!(
        status.message,
        "Apply failed with 2 conflicts: conflicts with \"alpha\":\n- .data.a\nconflicts with \"editor\" using v1:\n- .data.e"
    );
    cluster.shutdown().await.unwrap();
}
