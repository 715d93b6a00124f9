//! What a cluster holds before anyone writes: the `kubernetes` Service, the bootstrap RBAC policy,
//! and each namespace's `default` ServiceAccount and `kube-root-ca.crt` ConfigMap.

mod support;

use devcluster::{Config, DevCluster};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

/// Waits until `namespace` has its `default` ServiceAccount and a CA ConfigMap holding `ca_pem`.
async fn namespace_defaults(client: &kube::Client, namespace: &str, ca_pem: &str) -> (ServiceAccount, ConfigMap) {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    support::eventually(&format!("the defaults of namespace {namespace}"), || {
        let (accounts, maps) = (accounts.clone(), maps.clone());
        async move {
            let account = accounts.get_opt("default").await.unwrap()?;
            let map = maps.get_opt("kube-root-ca.crt").await.unwrap()?;
            let holds_ca = map.data.as_ref().and_then(|d| d.get("ca.crt")).is_some_and(|ca| ca == ca_pem);
            holds_ca.then_some((account, map))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_creates_the_kubernetes_service_and_bootstrap_rbac() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let spec = services.get("kubernetes").await.unwrap().spec.unwrap();
    assert_eq!((spec.type_.as_deref(), spec.cluster_ip.as_deref()), (Some("ClusterIP"), Some("10.96.0.1")));
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("https"), 443, Some("TCP")));

    let roles: Api<ClusterRole> = Api::all(client.clone());
    let admin = roles.get("cluster-admin").await.unwrap();
    let rules = admin.rules.unwrap();
    assert_eq!(rules[0].verbs, ["*"]);
    assert_eq!(
        (rules[0].api_groups.as_deref(), rules[0].resources.as_deref()),
        (Some(&["*".to_string()][..]), Some(&["*".to_string()][..]))
    );
    assert_eq!(rules[1].non_resource_urls.as_deref(), Some(&["*".to_string()][..]));
    for name in ["admin", "edit", "view", "system:discovery", "system:basic-user", "system:public-info-viewer"] {
        assert!(roles.get_opt(name).await.unwrap().is_some(), "ClusterRole {name}");
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = bindings.get("cluster-admin").await.unwrap();
    assert_eq!(binding.role_ref.name, "cluster-admin");
    assert_eq!(binding.subjects.unwrap()[0].name, "system:masters");
    assert!(bindings.get_opt("system:discovery").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_a_default_service_account_and_the_cluster_ca() {
    let cluster = support::cluster().await;
    let client = cluster.client().unwrap();
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        namespace_defaults(&client, namespace, cluster.ca_pem()).await;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let fresh = Namespace {
        metadata: ObjectMeta { name: Some("fresh".into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    namespaces.create(&PostParams::default(), &fresh).await.unwrap();
    let (account, _) = namespace_defaults(&client, "fresh", cluster.ca_pem()).await;

    // A deleted default ServiceAccount comes back, as the controller manager recreates it.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "fresh");
    accounts.delete("default", &DeleteParams::default()).await.unwrap();
    support::eventually("the default ServiceAccount to be recreated", || {
        let accounts = accounts.clone();
        let old_uid = account.metadata.uid.clone();
        async move { accounts.get_opt("default").await.unwrap().filter(|a| a.metadata.uid != old_uid).map(|_| ()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_objects_survive_a_restart_once_and_keep_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let config = || Config { data_dir: Some(dir.path().join("data")), ..Config::default() };
    let first = DevCluster::start(config()).await.unwrap();
    let client = first.client().unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service_uid = services.get("kubernetes").await.unwrap().metadata.uid;
    let (account, _) = namespace_defaults(&client, "default", first.ca_pem()).await;
    let old_ca = first.ca_pem().to_string();
    first.shutdown().await.unwrap();

    let second = DevCluster::start(config()).await.unwrap();
    assert_eq!(second.ca_pem(), old_ca, "a restart on the same data directory keeps the CA");
    let client = second.client().unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    assert_eq!(services.get("kubernetes").await.unwrap().metadata.uid, service_uid);
    let (again, _) = namespace_defaults(&client, "default", second.ca_pem()).await;
    assert_eq!(again.metadata.uid, account.metadata.uid);
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    let defaults = accounts.list(&ListParams::default().fields("metadata.name=default")).await.unwrap();
    assert_eq!(defaults.items.len(), 4, "one per namespace");
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let admins = roles.list(&ListParams::default().fields("metadata.name=cluster-admin")).await.unwrap();
    assert_eq!(admins.items.len(), 1);
    second.shutdown().await.unwrap();
}
