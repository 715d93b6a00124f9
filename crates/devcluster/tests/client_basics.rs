//! The dev cluster through `kube::Client`: CRUD, conflicts, watches and garbage collection.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, PropagationPolicy};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::BTreeMap;
use std::time::Duration;

/// Selects the tests' own config maps: every namespace also holds the `kube-root-ca.crt` the
/// controller manager publishes there, as on a real cluster.
const OWN_CONFIG_MAPS: &str = "metadata.name!=kube-root-ca.crt";

fn config_map(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        data: Some(BTreeMap::from([("k".to_string(), value.to_string())])),
        ..ConfigMap::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_list_update_delete() {
    let cluster = support::cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let created = api.create(&PostParams::default(), &config_map("a", "1")).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("default"));

    let got = api.get("a").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "1");
    let list = api.list(&ListParams::default().fields(OWN_CONFIG_MAPS)).await.unwrap();
    assert_eq!(list.items.len(), 1);

    let mut changed = created.clone();
    changed.data = Some(BTreeMap::from([("k".to_string(), "2".to_string())]));
    let updated = api.replace("a", &PostParams::default(), &changed).await.unwrap();
    assert_ne!(updated.metadata.resource_version, created.metadata.resource_version);

    // The first object's resourceVersion is now stale.
    let err = api.replace("a", &PostParams::default(), &changed).await.unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
            assert!(status.message.contains("the object has been modified"), "{}", status.message);
        }
        other => panic!("expected a 409, got {other:?}"),
    }

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let err = api.get("a").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404 && s.message == "configmaps \"a\" not found"));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_conflicts_and_generate_name() {
    let cluster = support::cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    api.create(&PostParams::default(), &config_map("dup", "1")).await.unwrap();
    let err = api.create(&PostParams::default(), &config_map("dup", "1")).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"));

    let mut generated = config_map("", "1");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let created = api.create(&PostParams::default(), &generated).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let dry = PostParams { dry_run: true, ..PostParams::default() };
    api.create(&dry, &config_map("dry", "1")).await.unwrap();
    assert!(api.get_opt("dry").await.unwrap().is_none());

    let in_missing_ns: Api<ConfigMap> = Api::namespaced(cluster.client().unwrap(), "nowhere");
    let err = in_missing_ns.create(&PostParams::default(), &config_map("x", "1")).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404 && s.message == "namespaces \"nowhere\" not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginated_lists_return_every_object_once() {
    let cluster = support::cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    for i in 0..25 {
        api.create(&PostParams::default(), &config_map(&format!("cm-{i:02}"), "v")).await.unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().fields(OWN_CONFIG_MAPS).limit(10);
    loop {
        let page = api.list(&params).await.unwrap();
        names.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(names, expected);
}

/// Collects the watcher's view of config map names until `done` holds.
async fn watch_until(
    stream: &mut (impl futures::Stream<Item = Result<ConfigMap, watcher::Error>> + Unpin),
    view: &mut BTreeMap<String, String>,
    done: impl Fn(&BTreeMap<String, String>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(view) {
        let next = tokio::time::timeout_at(deadline, stream.next()).await.expect("watcher caught up in time");
        match next {
            Some(Ok(cm)) => {
                let value = cm.data.as_ref().and_then(|d| d.get("k").cloned()).unwrap_or_default();
                view.insert(cm.metadata.name.unwrap(), value);
            }
            Some(Err(_)) => {}
            None => panic!("watch stream ended"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_keeps_a_correct_view_across_drops_and_expiry() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &config_map("before", "0")).await.unwrap();

    let store = kube::runtime::reflector::store::Writer::<ConfigMap>::default();
    let reader = store.as_reader();
    let mut stream = watcher(api.clone(), watcher::Config::default().fields(OWN_CONFIG_MAPS))
        .default_backoff()
        .reflect(store)
        .applied_objects()
        .boxed();
    let mut view = BTreeMap::new();
    watch_until(&mut stream, &mut view, |v| v.contains_key("before")).await;

    // A forced drop of every watch: the watcher resumes from its last resourceVersion.
    cluster.server().drop_watches();
    api.create(&PostParams::default(), &config_map("after-drop", "1")).await.unwrap();
    watch_until(&mut stream, &mut view, |v| v.contains_key("after-drop")).await;

    // Expired history: the next resume gets 410 Gone and the watcher relists.
    cluster.server().store.compact();
    cluster.server().drop_watches();
    api.create(&PostParams::default(), &config_map("after-expiry", "2")).await.unwrap();
    api.delete("before", &DeleteParams::default()).await.unwrap();
    watch_until(&mut stream, &mut view, |v| v.contains_key("after-expiry")).await;

    // Events arrive in order: once a later marker is seen, the deletion has been applied too.
    api.create(&PostParams::default(), &config_map("marker", "3")).await.unwrap();
    watch_until(&mut stream, &mut view, |v| v.contains_key("marker")).await;
    let mut names: Vec<String> = reader.state().iter().map(|c| c.metadata.name.clone().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["after-drop", "after-expiry", "marker"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_resume_from_expired_version_gets_410() {
    let cluster = support::cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let first = api.create(&PostParams::default(), &config_map("one", "1")).await.unwrap();
    api.create(&PostParams::default(), &config_map("two", "2")).await.unwrap();
    cluster.server().store.compact();
    let rv = first.metadata.resource_version.unwrap();
    let mut events = api.watch(&kube::api::WatchParams::default(), &rv).await.unwrap().boxed();
    let event = events.try_next().await;
    match event {
        Ok(Some(kube::api::WatchEvent::Error(e))) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(e.message.starts_with("too old resource version"), "{}", e.message);
        }
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

fn owned_by(name: &str, owner: &ConfigMap, block: bool) -> ConfigMap {
    let mut child = config_map(name, "child");
    child.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.metadata.name.clone().unwrap(),
        uid: owner.metadata.uid.clone().unwrap(),
        block_owner_deletion: Some(block),
        controller: Some(true),
    }]);
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_reference_gc_in_background_foreground_and_orphan_modes() {
    let cluster = support::cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());

    for (mode, policy) in [
        ("background", PropagationPolicy::Background),
        ("foreground", PropagationPolicy::Foreground),
        ("orphan", PropagationPolicy::Orphan),
    ] {
        let owner = api.create(&PostParams::default(), &config_map(&format!("{mode}-owner"), "o")).await.unwrap();
        let child = format!("{mode}-child");
        api.create(&PostParams::default(), &owned_by(&child, &owner, true)).await.unwrap();
        let params = DeleteParams { propagation_policy: Some(policy.clone()), ..DeleteParams::default() };
        api.delete(&format!("{mode}-owner"), &params).await.unwrap();
        let owner_name = format!("{mode}-owner");
        support::eventually("the owner to be gone", || {
            let api = api.clone();
            let owner_name = owner_name.clone();
            async move { api.get_opt(&owner_name).await.unwrap().is_none().then_some(()) }
        })
        .await;
        let remaining = api.get_opt(&child).await.unwrap();
        match mode {
            "orphan" => {
                let orphan = remaining.expect("orphaned dependent stays");
                assert!(orphan.metadata.owner_references.unwrap_or_default().is_empty());
            }
            _ => {
                support::eventually("the dependent to be collected", || {
                    let api = api.clone();
                    let child = child.clone();
                    async move { api.get_opt(&child).await.unwrap().is_none().then_some(()) }
                })
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_waits_for_blocking_dependents_with_finalizers() {
    let cluster = support::cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let owner = api.create(&PostParams::default(), &config_map("owner", "o")).await.unwrap();
    let mut child = owned_by("child", &owner, true);
    child.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &child).await.unwrap();

    api.delete("owner", &DeleteParams::foreground()).await.unwrap();
    // The child is deleted in the foreground too: once its own (dependent-free) foreground step is
    // done, only the test's finalizer holds it, and the collector writes it no more.
    let held = support::eventually("the child to be marked for deletion and held by its finalizer only", || {
        let api = api.clone();
        async move {
            api.get("child").await.ok().filter(|c| {
                c.metadata.deletion_timestamp.is_some()
                    && c.metadata.finalizers.as_deref() == Some(&["example.com/hold".to_string()][..])
            })
        }
    })
    .await;
    let owner_now = api.get("owner").await.unwrap();
    assert!(owner_now.metadata.deletion_timestamp.is_some());
    assert!(owner_now.metadata.finalizers.unwrap().contains(&"foregroundDeletion".to_string()));

    let patch =
        serde_json::json!({"metadata": {"finalizers": null, "resourceVersion": held.metadata.resource_version}});
    api.patch("child", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    support::eventually("owner and child to be gone", || {
        let api = api.clone();
        async move {
            (api.get_opt("owner").await.unwrap().is_none() && api.get_opt("child").await.unwrap().is_none())
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_removes_its_contents_then_itself() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta { name: Some("doomed".into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    api.create(&PostParams::default(), &config_map("inside", "1")).await.unwrap();

    namespaces.delete("doomed", &DeleteParams::default()).await.unwrap();
    support::eventually("the namespace to be gone", || {
        let namespaces = namespaces.clone();
        async move { namespaces.get_opt("doomed").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert!(api.get_opt("inside").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_embedder_when_asked_to() {
    let settings = devcluster::ServerSettings { ready_at_start: false, ..Default::default() };
    let cluster = devcluster::DevCluster::start(devcluster::Config { settings, ..Default::default() }).await.unwrap();
    let client = cluster.client().unwrap();
    let readyz = || async {
        let request = axum::http::Request::get("/readyz").body(Vec::new()).unwrap();
        client.request_text(request).await
    };
    match readyz().await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected 500 before set_ready, got {other:?}"),
    }
    cluster.server().set_ready(true);
    assert_eq!(readyz().await.unwrap(), "ok");
}

/// Patches and server-side applies that do not name a resourceVersion apply to the latest
/// version, however many race: a real API server retries them on a conflict instead of
/// answering 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_without_a_resource_version_all_land() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    let map =
        ConfigMap { metadata: ObjectMeta { name: Some("shared".into()), ..Default::default() }, ..Default::default() };
    maps.create(&PostParams::default(), &map).await.unwrap();
    let patches = (0..36).map(|i| {
        let maps = maps.clone();
        async move {
            let (patch, params) = match i % 3 {
                0 => (kube::api::Patch::Merge(serde_json::json!({"data": {format!("k{i}"): "v"}})), Default::default()),
                1 => (
                    kube::api::Patch::Json(
                        serde_json::from_value(
                            serde_json::json!([{"op": "add", "path": format!("/metadata/labels"), "value": {}}]),
                        )
                        .unwrap(),
                    ),
                    Default::default(),
                ),
                _ => (
                    kube::api::Patch::Apply(serde_json::json!({
                        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"},
                        "data": {format!("k{i}"): "v"},
                    })),
                    kube::api::PatchParams::apply(&format!("applier-{i}")),
                ),
            };
            maps.patch("shared", &params, &patch).await
        }
    });
    for result in futures::future::join_all(patches).await {
        result.expect("a patch without a resourceVersion is not refused for a conflict");
    }
    let data = maps.get("shared").await.unwrap().data.unwrap_or_default();
    assert_eq!(data.len(), 24, "every merge patch and server-side apply landed: {data:?}");
    // A patch naming a stale resourceVersion is still refused.
    let stale = kube::api::Patch::Merge(serde_json::json!({"metadata": {"resourceVersion": "1"}, "data": {"x": "y"}}));
    let err = maps.patch("shared", &kube::api::PatchParams::default(), &stale).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref status) if status.code == 409), "{err}");
}

/// kube-rs' finalizer helper adds the first finalizer with a JSON patch that tests the absent
/// `/metadata/finalizers` against `null`, and removes it with a test of its index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_rs_finalizer_helper_adds_and_removes_its_finalizer() {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event, finalizer};
    use std::sync::Arc;

    const FINALIZER: &str = "example.com/cleanup";
    let cluster = support::cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let created = api.create(&PostParams::default(), &config_map("guarded", "1")).await.unwrap();
    assert!(created.metadata.finalizers.is_none());

    let reconcile = |object: ConfigMap| {
        let api = api.clone();
        async move {
            finalizer(&api, FINALIZER, Arc::new(object), |event| async move {
                Ok::<_, std::convert::Infallible>(match event {
                    Event::Apply(_) | Event::Cleanup(_) => Action::await_change(),
                })
            })
            .await
        }
    };
    reconcile(created).await.unwrap();
    let held = api.get("guarded").await.unwrap();
    assert_eq!(held.metadata.finalizers, Some(vec![FINALIZER.to_string()]));

    api.delete("guarded", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("guarded").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    reconcile(deleting).await.unwrap();
    support::eventually("the object to be gone once its finalizer is removed", || {
        let api = api.clone();
        async move { api.get_opt("guarded").await.unwrap().is_none().then_some(()) }
    })
    .await;
}

/// A delete that removes the object at once answers a `Status` naming it (`Either::Right`), except
/// for the kinds whose registry returns deleted objects (pods among them); an object finalizers hold
/// comes back marked for deletion (`Either::Left`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_answer_a_status_unless_the_object_stays_or_its_kind_returns_it() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;

    let cluster = support::cluster_without_pods().await;
    let client = cluster.client().unwrap();
    let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let created = maps.create(&PostParams::default(), &config_map("gone", "1")).await.unwrap();
    let answer = maps.delete("gone", &DeleteParams::default()).await.unwrap();
    let status = answer.right().expect("a Status for an object deleted at once");
    assert!(status.is_success(), "{status:?}");
    let details = status.details.expect("details");
    assert_eq!((details.name.as_str(), details.group.as_str(), details.kind.as_str()), ("gone", "", "configmaps"));
    assert_eq!(Some(details.uid), created.metadata.uid);

    let mut held = config_map("held", "1");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    maps.create(&PostParams::default(), &held).await.unwrap();
    let answer = maps.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = answer.left().expect("the object its finalizer holds");
    assert!(marked.metadata.deletion_timestamp.is_some());

    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
    }))
    .unwrap();
    deployments.create(&PostParams::default(), &deployment).await.unwrap();
    let status = deployments.delete("web", &DeleteParams::default()).await.unwrap().right().expect("a Status");
    let details = status.details.expect("details");
    assert_eq!((details.group.as_str(), details.kind.as_str()), ("apps", "deployments"));

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deleted = pods.delete("p", &DeleteParams::default()).await.unwrap().left().expect("the pod");
    assert_eq!(deleted.metadata.name.as_deref(), Some("p"));
    assert!(pods.get_opt("p").await.unwrap().is_none());
}

/// Metadata-only requests (`as=PartialObjectMetadata[List]`) get only the objects' metadata, for
/// GET, LIST, WATCH and PATCH; an `as` the server cannot produce is a 406.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_requests_get_partial_object_metadata() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &config_map("m", "1")).await.unwrap();

    let got = api.get_metadata("m").await.unwrap();
    assert_eq!(got.types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
    assert_eq!(got.metadata.name.as_deref(), Some("m"));
    let listed = api.list_metadata(&ListParams::default().fields(OWN_CONFIG_MAPS)).await.unwrap();
    let names: Vec<_> = listed.items.iter().filter_map(|i| i.metadata.name.as_deref()).collect();
    assert_eq!(names, ["m"]);
    assert!(listed.metadata.resource_version.is_some());
    let patch = serde_json::json!({"metadata": {"labels": {"seen": "yes"}}});
    let patched =
        api.patch_metadata("m", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["seen"], "yes");
    assert_eq!(api.get("m").await.unwrap().data.unwrap()["k"], "1", "the patch kept the data");

    // kube 5's metadata watcher: a watcher on `Api<PartialObjectMeta<K>>`, which sends metadata-only
    // lists and watches.
    let metadata_api: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::default_namespaced(client.clone());
    let mut stream = watcher(metadata_api, watcher::Config::default().fields(OWN_CONFIG_MAPS))
        .default_backoff()
        .applied_objects()
        .boxed();
    api.create(&PostParams::default(), &config_map("later", "2")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await.expect("the watcher sees the new object");
        let seen = next.expect("the stream goes on").unwrap();
        assert_eq!(seen.types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
        if seen.metadata.name.as_deref() == Some("later") {
            break;
        }
    }

    let raw = |accept: &str| {
        axum::http::Request::get("/api/v1/namespaces/default/configmaps/m")
            .header("Accept", accept)
            .body(Vec::new())
            .unwrap()
    };
    match client.request_text(raw("application/json;as=Unknown;g=meta.k8s.io;v=v1")).await {
        Err(kube::Error::Api(status)) => assert_eq!((status.code, status.reason.as_str()), (406, "NotAcceptable")),
        other => panic!("expected a 406, got {other:?}"),
    }
    let fallback = client.request_text(raw("application/json;as=Unknown;g=meta.k8s.io;v=v1, application/json")).await;
    assert!(fallback.unwrap().contains("\"kind\":\"ConfigMap\""));
}
