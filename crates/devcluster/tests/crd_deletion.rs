//! Deleting a CRD, watched to the end: the CRD terminates behind its cleanup finalizer, its custom
//! resources are deleted one by one (their own finalizers respected, watchers told), new ones are
//! refused meanwhile, and the CRD goes last.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use serde_json::json;

fn crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}))
    .expect("a CRD")
}

fn widget(name: &str, finalizers: &[&str]) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name, "finalizers": finalizers}, "spec": {"size": 1}}))
    .expect("a widget")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_crd_deletes_its_resources_first_and_watchers_see_them_go() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd()).await.unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let widgets: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &ApiResource::from_gvk(&gvk));
    support::eventually("widgets are served", || async { widgets.list(&Default::default()).await.ok() }).await;
    widgets.create(&PostParams::default(), &widget("free", &[])).await.unwrap();
    widgets.create(&PostParams::default(), &widget("held", &["example.com/hold"])).await.unwrap();
    let listed = widgets.list(&Default::default()).await.unwrap();
    let version = listed.metadata.resource_version.clone().unwrap();
    let mut events = widgets.watch(&WatchParams::default(), &version).await.unwrap().boxed();

    let deleted = crds.delete("widgets.example.com", &DeleteParams::default()).await.unwrap();
    let terminating = deleted.left().expect("the CRD waits for its resources");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.finalizers, Some(vec!["customresourcecleanup.apiextensions.k8s.io".to_string()]));
    let conditions = terminating.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(conditions.iter().any(|c| c.type_ == "Terminating" && c.status == "True"), "{conditions:?}");

    // The free widget is deleted; the held one waits for its own finalizer.
    let mut seen = Vec::new();
    while !seen.contains(&"DELETED free".to_string()) || !seen.contains(&"MODIFIED held".to_string()) {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.try_next()).await;
        let event = event.expect("a watch event within 30 s").unwrap().expect("the watch goes on");
        seen.push(match event {
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap_or_default()),
            WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.unwrap_or_default()),
            other => format!("{other:?}"),
        });
    }
    let refused = widgets.create(&PostParams::default(), &widget("late", &[])).await.unwrap_err();
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 405);
            assert_eq!(status.message, "create not allowed while custom resource definition is terminating");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(crds.get_opt("widgets.example.com").await.unwrap().is_some(), "held by the held widget");

    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    widgets.patch("held", &PatchParams::default(), &release).await.unwrap();
    while !seen.contains(&"DELETED held".to_string()) {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.try_next()).await;
        let Ok(Ok(Some(event))) = event else { break };
        if let WatchEvent::Deleted(o) = event {
            seen.push(format!("DELETED {}", o.metadata.name.unwrap_or_default()));
        }
    }
    assert!(seen.contains(&"DELETED held".to_string()), "{seen:?}");
    support::eventually("the CRD is gone", || async {
        crds.get_opt("widgets.example.com").await.ok().and_then(|crd| crd.is_none().then_some(()))
    })
    .await;
    support::eventually("widgets are no longer served", || async {
        match widgets.list(&Default::default()).await {
            Err(kube::Error::Api(status)) if status.code == 404 => Some(()),
            _ => None,
        }
    })
    .await;
    cluster.shutdown().await.unwrap();
}
