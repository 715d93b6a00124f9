//! The real kubectl 1.37.1 against fresh in-process dev clusters, asserting on what it prints.

mod support;

use devcluster::DevCluster;
use std::path::PathBuf;
use std::time::Duration;
use support::{Output, kubectl, kubectl_with};
use tokio::io::{AsyncBufReadExt, BufReader};

const REVIEW_RUN_CRD: &str = "reviewruns.review.ao.dev";

fn crd_path(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds").join(name).display().to_string()
}

/// A ReviewRun manifest; only labels and `cancelRequested` vary, the spec's mutable parts.
fn review_run(name: &str, team: &str, cancel: bool, number: u32) -> String {
    format!(
        "apiVersion: review.ao.dev/v1alpha1
kind: ReviewRun
metadata:
  name: {name}
  labels:
    team: {team}
spec:
  reviewer: review-alice
  cancelRequested: {cancel}
  pullRequest:
    url: https://example.com/org/repo/pull/{number}
    headSha: abcdef{number}234567
    number: {number}
"
    )
}

async fn kubectl_stdin(cluster: &DevCluster, args: &[&str], stdin: &str) -> Output {
    kubectl_with(cluster, args, Some(stdin), &[]).await
}

/// Applies the ReviewRun CRD and waits until kubectl sees it Established.
async fn install_review_run_crd(cluster: &DevCluster) {
    let out = kubectl(cluster, &["apply", "-f", &crd_path("reviewrun.yaml")]).await.ok();
    assert_eq!(out.trim(), format!("customresourcedefinition.apiextensions.k8s.io/{REVIEW_RUN_CRD} created"));
    let out = kubectl(cluster, &["wait", "--for=condition=Established", &format!("crd/{REVIEW_RUN_CRD}")]).await.ok();
    assert_eq!(out.trim(), format!("customresourcedefinition.apiextensions.k8s.io/{REVIEW_RUN_CRD} condition met"));
}

async fn create_runs(cluster: &DevCluster, runs: &[(&str, &str)]) {
    for (i, (name, team)) in runs.iter().enumerate() {
        let out =
            kubectl_stdin(cluster, &["apply", "-f", "-"], &review_run(name, team, false, i as u32 + 1)).await.ok();
        assert_eq!(out.trim(), format!("reviewrun.review.ao.dev/{name} created"));
    }
}

/// Splits a kubectl table into rows of whitespace-separated cells.
fn table(text: &str) -> Vec<Vec<String>> {
    text.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_reports_client_and_server() {
    let cluster = support::cluster().await;
    let out = kubectl(&cluster, &["version", "-o", "json"]).await.ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["clientVersion"]["gitVersion"], "v1.37.1");
    assert_eq!(v["serverVersion"]["major"], "1");
    assert_eq!(v["serverVersion"]["minor"], "37");
    let text = kubectl(&cluster, &["version"]).await.ok();
    assert!(text.contains("Client Version: v1.37.1"), "{text}");
    assert!(text.contains("Server Version: v1.37.1"), "{text}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_resources_include_custom_resources_once_their_crd_exists() {
    let cluster = support::cluster().await;
    let before = kubectl(&cluster, &["api-resources"]).await.ok();
    let configmaps = table(&before).into_iter().find(|r| r.first().map(String::as_str) == Some("configmaps")).unwrap();
    assert_eq!(configmaps, ["configmaps", "cm", "v1", "true", "ConfigMap"]);
    assert!(before.contains("customresourcedefinitions"), "{before}");
    assert!(!before.contains("reviewruns"), "{before}");

    install_review_run_crd(&cluster).await;
    let after = kubectl(&cluster, &["api-resources", "--api-group=review.ao.dev"]).await.ok();
    let rows = table(&after);
    assert_eq!(rows[0], ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]);
    assert_eq!(rows[1], ["reviewruns", "rr", "review.ao.dev/v1alpha1", "true", "ReviewRun"]);
    let wide = kubectl(&cluster, &["api-resources", "--api-group=review.ao.dev", "-o", "wide"]).await.ok();
    let rows = table(&wide);
    assert_eq!(rows[0][5..], ["VERBS", "CATEGORIES"]);
    assert_eq!(rows[1][5..], ["create,delete,deletecollection,get,list,patch,update,watch", "review"]);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_resources_list_the_reviews_as_create_only_and_get_on_them_is_not_allowed() {
    let cluster = support::cluster().await;
    for (group, reviews) in [
        ("authentication.k8s.io", ["selfsubjectreviews", "tokenreviews"]),
        ("authorization.k8s.io", ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
    ] {
        let wide = kubectl(&cluster, &["api-resources", &format!("--api-group={group}"), "-o", "wide"]).await.ok();
        let rows = table(&wide);
        let names: Vec<&str> = rows[1..].iter().map(|row| row[0].as_str()).collect();
        assert_eq!(names, reviews, "{wide}");
        for row in &rows[1..] {
            assert_eq!(row.last().map(String::as_str), Some("create"), "{wide}");
        }
    }
    let denied = kubectl(&cluster, &["get", "tokenreviews"]).await.failed();
    assert!(denied.contains("MethodNotAllowed"), "{denied}");
    let pods = kubectl(&cluster, &["get", "--raw", "/api/v1"]).await.ok();
    let list: serde_json::Value = serde_json::from_str(&pods).expect("an APIResourceList");
    let eviction = list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/eviction").unwrap();
    assert_eq!(
        (&eviction["group"], &eviction["version"], &eviction["kind"], &eviction["verbs"]),
        (
            &serde_json::json!("policy"),
            &serde_json::json!("v1"),
            &serde_json::json!("Eviction"),
            &serde_json::json!(["create"])
        )
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_of_a_crd_and_its_objects() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    let again = kubectl(&cluster, &["apply", "-f", &crd_path("reviewrun.yaml")]).await.ok();
    assert_eq!(again.trim(), format!("customresourcedefinition.apiextensions.k8s.io/{REVIEW_RUN_CRD} unchanged"));

    let first = review_run("run-1", "a", false, 1);
    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], &first).await.ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 created");
    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], &first).await.ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 unchanged");
    let edited = review_run("run-1", "b", true, 1);
    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], &edited).await.ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 configured");

    let got =
        kubectl(&cluster, &["get", "rr", "run-1", "-o", "jsonpath={.metadata.labels.team} {.spec.cancelRequested}"])
            .await
            .ok();
    assert_eq!(got, "b true");
    let annotation = kubectl(
        &cluster,
        &[
            "get",
            "rr",
            "run-1",
            "-o",
            "jsonpath={.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
        ],
    )
    .await
    .ok();
    let last: serde_json::Value = serde_json::from_str(&annotation).unwrap();
    assert_eq!(last["metadata"]["labels"]["team"], "b");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_and_updates() {
    let cluster = support::cluster().await;
    let out = kubectl(&cluster, &["apply", "--server-side", "-f", &crd_path("reviewrun.yaml")]).await.ok();
    assert_eq!(
        out.trim(),
        format!("customresourcedefinition.apiextensions.k8s.io/{REVIEW_RUN_CRD} serverside-applied")
    );
    kubectl(&cluster, &["wait", "--for=condition=Established", &format!("crd/{REVIEW_RUN_CRD}")]).await.ok();

    let out =
        kubectl_stdin(&cluster, &["apply", "--server-side", "-f", "-"], &review_run("run-1", "a", false, 1)).await.ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 serverside-applied");
    let out =
        kubectl_stdin(&cluster, &["apply", "--server-side", "-f", "-"], &review_run("run-1", "b", false, 1)).await.ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 serverside-applied");
    let got = kubectl(
        &cluster,
        &["get", "rr", "run-1", "-o", "jsonpath={.metadata.labels.team} {.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}"],
    )
    .await
    .ok();
    assert_eq!(got, "b kubectl Apply");

    // Another manager owning the same field conflicts until it forces.
    let conflict = kubectl_stdin(
        &cluster,
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &review_run("run-1", "c", false, 1),
    )
    .await
    .failed();
    assert!(conflict.contains("Apply failed with 1 conflict"), "{conflict}");
    assert!(conflict.contains("conflict with \"kubectl\": .metadata.labels.team"), "{conflict}");
    let out = kubectl_stdin(
        &cluster,
        &["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"],
        &review_run("run-1", "c", false, 1),
    )
    .await
    .ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 serverside-applied");
    let got = kubectl(&cluster, &["get", "rr", "run-1", "-o", "jsonpath={.metadata.labels.team}"]).await.ok();
    assert_eq!(got, "c");
    cluster.shutdown().await.unwrap();
}

const CONFIG_MAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
  level: \"1\"
";

fn deployment(image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: fast
      - name: sidecar
        image: busybox:1
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_of_built_in_objects_uses_strategic_merge() {
    let cluster = support::cluster().await;
    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], CONFIG_MAP).await.ok();
    assert_eq!(out.trim(), "configmap/settings created");
    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], CONFIG_MAP).await.ok();
    assert_eq!(out.trim(), "configmap/settings unchanged");
    let edited = CONFIG_MAP.replace("mode: fast", "mode: slow").replace("  level: \"1\"\n", "");
    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], &edited).await.ok();
    assert_eq!(out.trim(), "configmap/settings configured");
    let data = kubectl(&cluster, &["get", "configmap", "settings", "-o", "jsonpath={.data}"]).await.ok();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&data).unwrap(), serde_json::json!({"mode": "slow"}));

    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], &deployment("nginx:1.27", 1)).await.ok();
    assert_eq!(out.trim(), "deployment.apps/web created");
    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], &deployment("nginx:1.27", 1)).await.ok();
    assert_eq!(out.trim(), "deployment.apps/web unchanged");
    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], &deployment("nginx:1.28", 3)).await.ok();
    assert_eq!(out.trim(), "deployment.apps/web configured");
    let got = kubectl(
        &cluster,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[*].name} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].value}"],
    )
    .await
    .ok();
    assert_eq!(got, "3 web sidecar nginx:1.28 fast");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_tables_with_printer_columns_by_name_short_name_and_category() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    create_runs(&cluster, &[("run-1", "a"), ("run-2", "b")]).await;

    for target in ["reviewruns", "rr", "reviewrun.review.ao.dev", "review"] {
        let rows = table(&kubectl(&cluster, &["get", target]).await.ok());
        assert_eq!(
            rows[0],
            ["NAME", "REVIEWER", "PR", "SHA", "PHASE", "REASON", "VERDICT", "AGE"],
            "kubectl get {target}"
        );
        let names: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
        assert_eq!(names, ["run-1", "run-2"], "{rows:?}");
        assert_eq!(&rows[1][1..3], ["review-alice", "1"], "{rows:?}");
        assert_eq!(rows[1].len(), 4, "unset status columns print as blanks: {rows:?}");
    }
    let wide = table(&kubectl(&cluster, &["get", "rr", "-o", "wide"]).await.ok());
    assert_eq!(wide[0][wide[0].len() - 2..], ["URL", "DELIVERY"]);
    // An unset delivery prints as a blank, after the URL.
    assert_eq!(wide[2].last().map(String::as_str), Some("https://example.com/org/repo/pull/2"));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_as_yaml_jsonpath_and_with_selectors() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    create_runs(&cluster, &[("run-1", "a"), ("run-2", "b"), ("run-3", "a")]).await;

    let yaml = kubectl(&cluster, &["get", "rr", "run-2", "-o", "yaml"]).await.ok();
    let object: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(object["kind"], "ReviewRun");
    assert_eq!(object["apiVersion"], "review.ao.dev/v1alpha1");
    assert_eq!(object["metadata"]["namespace"], "default");
    assert_eq!(object["metadata"]["generation"], 1);
    assert_eq!(object["spec"]["pullRequest"]["number"], 2);

    let names = kubectl(&cluster, &["get", "rr", "-o", "jsonpath={.items[*].metadata.name}"]).await.ok();
    assert_eq!(names, "run-1 run-2 run-3");
    let names = kubectl(&cluster, &["get", "rr", "-l", "team=a", "-o", "name"]).await.ok();
    assert_eq!(names, "reviewrun.review.ao.dev/run-1\nreviewrun.review.ao.dev/run-3\n");
    let names = kubectl(&cluster, &["get", "rr", "-l", "team in (b),team!=a", "-o", "name"]).await.ok();
    assert_eq!(names, "reviewrun.review.ao.dev/run-2\n");
    let names = kubectl(&cluster, &["get", "rr", "--field-selector", "metadata.name!=run-1", "-o", "name"]).await.ok();
    assert_eq!(names, "reviewrun.review.ao.dev/run-2\nreviewrun.review.ao.dev/run-3\n");
    let none = kubectl(
        &cluster,
        &[
            "get",
            "configmaps",
            "-A",
            "--field-selector",
            "metadata.namespace=kube-system,metadata.name!=kube-root-ca.crt",
        ],
    )
    .await;
    assert_eq!((none.code, none.stdout.as_str(), none.stderr.trim()), (0, "", "No resources found"));
    let rejected = kubectl(&cluster, &["get", "rr", "--field-selector", "spec.reviewer=x"]).await.failed();
    assert!(rejected.contains("field label not supported: spec.reviewer"), "{rejected}");
    let missing = kubectl(&cluster, &["get", "rr", "nope"]).await.failed();
    assert!(missing.contains("reviewruns.review.ao.dev \"nope\" not found"), "{missing}");
    cluster.shutdown().await.unwrap();
}

/// Built-in kinds come back with the fields the real server defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_kinds_are_defaulted_on_create() {
    use base64::Engine;
    let cluster = support::cluster_without_pods().await;
    let manifests = "apiVersion: v1
kind: Secret
metadata:
  name: x
stringData:
  a: b
---
apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: c
    image: busybox:1.36
  - name: d
    image: busybox
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:latest
";
    kubectl_stdin(&cluster, &["apply", "-f", "-"], manifests).await.ok();
    let get = |kind: &'static str, name: &'static str| {
        let cluster = &cluster;
        async move {
            let out = kubectl(cluster, &["get", kind, name, "-o", "json"]).await.ok();
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        }
    };
    let secret = get("secret", "x").await;
    assert_eq!(secret["data"]["a"], base64::engine::general_purpose::STANDARD.encode("b"));
    assert_eq!(secret["type"], "Opaque");
    assert!(secret.get("stringData").is_none(), "{secret}");

    let pod = get("pod", "p").await;
    let spec = &pod["spec"];
    assert_eq!(
        (&spec["restartPolicy"], &spec["dnsPolicy"], &spec["terminationGracePeriodSeconds"], &spec["schedulerName"]),
        (&"Always".into(), &"ClusterFirst".into(), &30.into(), &"default-scheduler".into())
    );
    assert_eq!(spec["securityContext"], serde_json::json!({}));
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "Always");
    assert_eq!(spec["containers"][0]["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(spec["containers"][0]["terminationMessagePolicy"], "File");

    let service = get("service", "web").await;
    let spec = &service["spec"];
    assert_eq!((spec["type"].as_str(), spec["sessionAffinity"].as_str()), (Some("ClusterIP"), Some("None")));
    assert_eq!(spec["ports"][0], serde_json::json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
    let ip: std::net::Ipv4Addr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
    assert!(ip.octets()[0] == 10 && (96..112).contains(&ip.octets()[1]), "{ip} is in 10.96.0.0/12");
    assert_eq!(spec["clusterIPs"], serde_json::json!([ip.to_string()]));

    let deployment = get("deployment", "web").await;
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
    // A second apply of the same manifests changes nothing: the served schemas key the defaulted
    // lists, so kubectl diffs them by key. (The Secret is "configured" again, as on a real
    // server: its last-applied stringData never shows in the live object.)
    let again = kubectl_stdin(&cluster, &["apply", "-f", "-"], manifests).await.ok();
    assert_eq!(again, "secret/x configured\npod/p unchanged\nservice/web unchanged\ndeployment.apps/web unchanged\n");
    cluster.shutdown().await.unwrap();
}

/// kubectl's `create` generators send protobuf bodies; the objects arrive as if sent as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_generators_send_protobuf_bodies() {
    use base64::Engine;
    let cluster = support::cluster().await;
    let out = kubectl(&cluster, &["create", "namespace", "review", "-v=8"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("Content-Type: application/vnd.kubernetes.protobuf"), "kubectl sent protobuf");
    assert_eq!(out.stdout, "namespace/review created\n");
    let out = kubectl(&cluster, &["create", "secret", "generic", "s", "-n", "review", "--from-literal=k=v"]).await.ok();
    assert_eq!(out, "secret/s created\n");
    let out = kubectl(&cluster, &["create", "configmap", "c", "-n", "review", "--from-literal=k=v"]).await.ok();
    assert_eq!(out, "configmap/c created\n");
    let out = kubectl(&cluster, &["create", "secret", "generic", "x", "--from-literal=a=b"]).await.ok();
    assert_eq!(out, "secret/x created\n");

    let json = |args: &'static [&'static str]| {
        let cluster = &cluster;
        async move { serde_json::from_str::<serde_json::Value>(&kubectl(cluster, args).await.ok()).unwrap() }
    };
    let secret = json(&["get", "secret", "x", "-o", "json"]).await;
    assert_eq!(secret["data"]["a"], base64::engine::general_purpose::STANDARD.encode("b"));
    assert_eq!(secret["type"], "Opaque");
    let secret = json(&["get", "secret", "s", "-n", "review", "-o", "json"]).await;
    assert_eq!(secret["data"]["k"], base64::engine::general_purpose::STANDARD.encode("v"));
    let map = json(&["get", "configmap", "c", "-n", "review", "-o", "json"]).await;
    assert_eq!(map["data"], serde_json::json!({"k": "v"}));
    let namespace = json(&["get", "namespace", "review", "-o", "json"]).await;
    assert_eq!(namespace["status"]["phase"], "Active");
    cluster.shutdown().await.unwrap();
}

/// Every `kubectl create` generator of a served kind sends protobuf and is read as the real server
/// reads it: zero values that Go leaves out of JSON stay out, pointers set to zero stay in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_generator_of_a_served_kind_is_read_from_protobuf() {
    let cluster = support::cluster().await;
    let created = [
        (
            &["create", "deployment", "d", "--image=nginx:1.27", "--replicas=0", "--port=80"][..],
            "deployment.apps/d created",
        ),
        (&["create", "service", "nodeport", "np", "--tcp=80:8080"][..], "service/np created"),
        (&["create", "service", "clusterip", "headless", "--clusterip=None"][..], "service/headless created"),
        (&["create", "quota", "q", "--hard=pods=2,cpu=1"][..], "resourcequota/q created"),
        (&["create", "role", "r", "--verb=get", "--resource=pods"][..], "role.rbac.authorization.k8s.io/r created"),
        (
            &["create", "rolebinding", "rb", "--role=r", "--user=u"][..],
            "rolebinding.rbac.authorization.k8s.io/rb created",
        ),
        (
            &["create", "clusterrole", "cr", "--verb=get", "--resource=nodes"][..],
            "clusterrole.rbac.authorization.k8s.io/cr created",
        ),
        (
            &["create", "clusterrolebinding", "crb", "--clusterrole=cr", "--group=g"][..],
            "clusterrolebinding.rbac.authorization.k8s.io/crb created",
        ),
        (&["create", "pdb", "p", "--selector=a=b", "--min-available=50%"][..], "poddisruptionbudget.policy/p created"),
        (&["create", "job", "j", "--image=busybox", "--", "echo", "hi"][..], "job.batch/j created"),
        (&["create", "cronjob", "c", "--image=busybox", "--schedule=*/5 * * * *"][..], "cronjob.batch/c created"),
        (&["create", "job", "from-c", "--from=cronjob/c"][..], "job.batch/from-c created"),
    ];
    for (args, expected) in created {
        let out = kubectl(&cluster, args).await.ok();
        assert_eq!(out.trim(), expected, "kubectl {args:?}");
    }
    let json = |args: &'static [&'static str]| {
        let cluster = &cluster;
        async move { serde_json::from_str::<serde_json::Value>(&kubectl(cluster, args).await.ok()).unwrap() }
    };
    let deployment = json(&["get", "deployment", "d", "-o", "json"]).await;
    assert_eq!(deployment["spec"]["replicas"], 0, "a pointer set to zero is kept");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"], serde_json::json!([{"containerPort": 80, "protocol": "TCP"}]));
    for value_field in ["stdin", "tty"] {
        assert!(container.get(value_field).is_none(), "a Go value field at zero is left out: {container}");
    }
    assert!(deployment["spec"].get("paused").is_none() && deployment["spec"].get("minReadySeconds").is_none());
    assert!(deployment["spec"]["template"]["metadata"].get("creationTimestamp").is_none());
    let service = json(&["get", "service", "np", "-o", "json"]).await;
    let port = &service["spec"]["ports"][0];
    assert_eq!((port["port"].clone(), port["targetPort"].clone()), (serde_json::json!(80), serde_json::json!(8080)));
    let node_port = port["nodePort"].as_i64().expect("a node port was allocated");
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    let quota = json(&["get", "quota", "q", "-o", "json"]).await;
    assert_eq!(quota["spec"]["hard"], serde_json::json!({"cpu": "1", "pods": "2"}));
    let pdb = json(&["get", "pdb", "p", "-o", "json"]).await;
    assert_eq!(pdb["spec"]["minAvailable"], "50%", "an IntOrString string");
    let binding = json(&["get", "rolebinding", "rb", "-o", "json"]).await;
    assert_eq!(binding["subjects"][0]["name"], "u");
    assert_eq!(
        binding["roleRef"],
        serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"})
    );
    let job = json(&["get", "job", "j", "-o", "json"]).await;
    let uid = job["metadata"]["uid"].as_str().expect("a uid");
    assert_eq!(
        job["spec"]["selector"],
        serde_json::json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"], "j");
    assert_eq!((job["spec"]["backoffLimit"].clone(), job["spec"]["completions"].clone()), (6.into(), 1.into()));
    assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["command"], serde_json::json!(["echo", "hi"]));
    let cron = json(&["get", "cronjob", "c", "-o", "json"]).await;
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cron["spec"]["successfulJobsHistoryLimit"], 3);

    let rows = table(&kubectl(&cluster, &["get", "services"]).await.ok());
    assert_eq!(rows[0], ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
    let np = rows.iter().find(|r| r[0] == "np").expect("a row for np");
    assert_eq!((np[1].as_str(), np[3].as_str()), ("NodePort", "<none>"));
    assert_eq!(np[4], format!("80:{node_port}/TCP"));
    let headless = rows.iter().find(|r| r[0] == "headless").expect("a row for headless");
    assert_eq!(headless[2], "None");
    let rows = table(&kubectl(&cluster, &["get", "jobs"]).await.ok());
    assert_eq!(rows[0], ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(&rows[1][..3], ["from-c", "Running", "0/1"], "no controller runs them: {rows:?}");
    let rows = table(&kubectl(&cluster, &["get", "cj"]).await.ok());
    assert_eq!(rows[0], ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]);
    assert_eq!(rows[1][..7], ["c", "*/5", "*", "*", "*", "*", "<none>"], "{rows:?}");
    // `all` is pods, services and the workload kinds, not config maps or service accounts.
    let all = kubectl(&cluster, &["get", "all", "-o", "name"]).await.ok();
    assert!(all.contains("service/np") && all.contains("job.batch/j") && all.contains("cronjob.batch/c"), "{all}");
    assert!(!all.contains("configmap/") && !all.contains("serviceaccount/"), "{all}");

    let bad = kubectl(&cluster, &["create", "cronjob", "bad", "--image=busybox", "--schedule=nope"]).await.failed();
    assert!(bad.contains("spec.schedule: Invalid value: \"nope\""), "{bad}");
    cluster.shutdown().await.unwrap();
}

/// Every built-in group-version has a local APIService; a CRD's group-version has one while the
/// CRD serves it; an aggregated APIService is stored but reported unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiservices_list_the_served_group_versions() {
    let cluster = support::cluster().await;
    let rows = table(&kubectl(&cluster, &["get", "apiservices"]).await.ok());
    assert_eq!(rows[0], ["NAME", "SERVICE", "AVAILABLE", "AGE"]);
    for name in ["v1.", "v1.apps", "v1.batch", "v1.rbac.authorization.k8s.io", "v1.apiregistration.k8s.io"] {
        let row = rows.iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("{name} in {rows:?}"));
        assert_eq!((row[1].as_str(), row[2].as_str()), ("Local", "True"), "{row:?}");
    }
    assert!(!rows.iter().any(|r| r[0] == "v1alpha1.review.ao.dev"), "no CRD yet: {rows:?}");
    install_review_run_crd(&cluster).await;
    let apiservice = kubectl(&cluster, &["get", "apiservice", "v1alpha1.review.ao.dev", "-o", "json"]).await.ok();
    let apiservice: serde_json::Value = serde_json::from_str(&apiservice).unwrap();
    assert_eq!(apiservice["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"], "true");
    assert_eq!(apiservice["spec"]["groupPriorityMinimum"], 1000);
    kubectl(&cluster, &["delete", "crd", REVIEW_RUN_CRD]).await.ok();
    let gone = kubectl(&cluster, &["get", "apiservice", "v1alpha1.review.ao.dev"]).await.failed();
    assert!(gone.contains("NotFound") || gone.contains("not found"), "{gone}");

    let remote = r#"{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
            "insecureSkipTLSVerify": true, "service": {"namespace": "kube-system", "name": "metrics-server"}}}"#;
    let out = kubectl_stdin(&cluster, &["create", "-f", "-"], remote).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = table(&kubectl(&cluster, &["get", "apiservice", "v1beta1.metrics.k8s.io"]).await.ok());
    assert_eq!(
        rows[1][..4],
        ["v1beta1.metrics.k8s.io", "kube-system/metrics-server", "False", "(FailedDiscoveryCheck)"]
    );
    let misnamed = remote.replace("v1beta1.metrics.k8s.io", "metrics");
    let out = kubectl_stdin(&cluster, &["create", "-f", "-"], &misnamed).await;
    assert!(out.stderr.contains("metadata.name: Invalid value: \"metrics\""), "{}", out.stderr);
    cluster.shutdown().await.unwrap();
}

/// `kubectl debug` adds an ephemeral container through the pod's `ephemeralcontainers`
/// subresource; once added it can be neither removed nor changed, and writes to the pod keep it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_adds_an_ephemeral_container() {
    let cluster = support::cluster().await;
    kubectl(&cluster, &["run", "web", "--image=nginx:1.27", "-n", "default"]).await.ok();
    let out = kubectl(&cluster, &["debug", "web", "--image=busybox", "--target=web", "-n", "default"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("Defaulting debug container name to debugger-"), "{said}");
    let pod = kubectl(&cluster, &["get", "pod", "web", "-n", "default", "-o", "json"]).await.ok();
    let pod: serde_json::Value = serde_json::from_str(&pod).unwrap();
    let debugger = &pod["spec"]["ephemeralContainers"][0];
    assert_eq!((debugger["image"].as_str(), debugger["targetContainerName"].as_str()), (Some("busybox"), Some("web")));
    assert_eq!(debugger["terminationMessagePath"], "/dev/termination-log", "defaulted as a container is");
    assert_eq!(pod["spec"]["containers"].as_array().map(Vec::len), Some(1));

    let remove = r#"[{"op": "remove", "path": "/spec/ephemeralContainers/0"}]"#;
    let args =
        ["patch", "pod", "web", "-n", "default", "--subresource=ephemeralcontainers", "--type=json", "-p", remove];
    let refused = kubectl(&cluster, &args).await.failed();
    assert!(refused.contains("may not be removed"), "{refused}");
    let with_ports =
        r#"{"spec": {"ephemeralContainers": [{"name": "d2", "image": "busybox", "ports": [{"containerPort": 80}]}]}}"#;
    let args = ["patch", "pod", "web", "-n", "default", "--subresource=ephemeralcontainers", "-p", with_ports];
    let refused = kubectl(&cluster, &args).await.failed();
    assert!(refused.contains("].ports: Forbidden: cannot be set for an Ephemeral Container"), "{refused}");
    // A write to the pod itself leaves the ephemeral containers alone.
    let label = kubectl(&cluster, &["label", "pod", "web", "-n", "default", "debugged=yes"]).await;
    assert_eq!(label.code, 0, "{}", label.stderr);
    let replaced = r#"[{"op": "remove", "path": "/spec/ephemeralContainers"}]"#;
    kubectl(&cluster, &["patch", "pod", "web", "-n", "default", "--type=json", "-p", replaced]).await.ok();
    let names = kubectl(
        &cluster,
        &["get", "pod", "web", "-n", "default", "-o", "jsonpath={.spec.ephemeralContainers[*].name}"],
    )
    .await
    .ok();
    assert!(names.starts_with("debugger-"), "{names}");
    cluster.shutdown().await.unwrap();
}

/// `kubectl patch --subresource resize` changes a container's CPU and memory in place, and nothing
/// else; the QoS class the pod was created with stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_changes_cpu_and_memory_in_place() {
    let cluster = support::cluster().await;
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sized", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "command": ["sleep", "600"],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}"#;
    let out = kubectl_stdin(&cluster, &["create", "-f", "-"], pod).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let qos =
        kubectl(&cluster, &["get", "pod", "sized", "-n", "default", "-o", "jsonpath={.status.qosClass}"]).await.ok();
    assert_eq!(qos, "Burstable");
    let more =
        r#"{"spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]}}"#;
    let args = ["patch", "pod", "sized", "-n", "default", "--subresource", "resize", "-p", more];
    let out = kubectl(&cluster, &args).await.ok();
    assert_eq!(out.trim(), "pod/sized patched");
    let cpu = kubectl(
        &cluster,
        &["get", "pod", "sized", "-n", "default", "-o", "jsonpath={.spec.containers[0].resources.requests.cpu}"],
    )
    .await
    .ok();
    assert_eq!(cpu, "250m");
    let image = r#"{"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}"#;
    let args = ["patch", "pod", "sized", "-n", "default", "--subresource", "resize", "-p", image];
    let refused = kubectl(&cluster, &args).await.failed();
    assert!(refused.contains("only cpu and memory resources are mutable"), "{refused}");
    let guaranteed =
        r#"{"spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}}]}}"#;
    let args = ["patch", "pod", "sized", "-n", "default", "--subresource", "resize", "-p", guaranteed];
    let refused = kubectl(&cluster, &args).await.failed();
    assert!(refused.contains("Pod QOS Class may not change as a result of resizing"), "{refused}");
    cluster.shutdown().await.unwrap();
}

/// Applying a kind nothing serves fails as on a real server: kubectl's validation finds no schema
/// for it (in `/openapi/v3`, then in the protobuf `/openapi/v2`) and the kind has no mapping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_kind_nothing_serves_says_no_matches_for_kind() {
    let cluster = support::cluster().await;
    let thing = "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: t}\nspec: {size: 3}\n";
    let out = kubectl_stdin(&cluster, &["apply", "-f", "-"], thing).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("no matches for kind \"Thing\" in version \"example.com/v1\""), "{}", out.stderr);
    cluster.shutdown().await.unwrap();
}

/// An unset boolean field label reads as `false`, as on a real server: a fresh node is schedulable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_read_unset_booleans_as_false() {
    let cluster = support::cluster().await;
    let schedulable = ["get", "nodes", "--field-selector", "spec.unschedulable=false", "-o", "name"];
    let listed = support::eventually("the node to be listed as schedulable", || {
        let cluster = &cluster;
        async move { Some(kubectl(cluster, &schedulable).await.ok()).filter(|out| !out.is_empty()) }
    })
    .await;
    assert_eq!(listed, "node/devcluster\n");
    kubectl(&cluster, &["cordon", "devcluster"]).await.ok();
    assert_eq!(kubectl(&cluster, &schedulable).await.ok(), "");
    let cordoned = kubectl(&cluster, &["get", "nodes", "--field-selector", "spec.unschedulable=true", "-o", "name"]);
    assert_eq!(cordoned.await.ok(), "node/devcluster\n");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_later_changes() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    create_runs(&cluster, &[("run-1", "a")]).await;

    let mut cmd = tokio::process::Command::new(support::kubectl_path());
    cmd.arg("--kubeconfig").arg(cluster.kubeconfig_path()).args(["get", "rr", "-w", "-o", "name"]);
    cmd.env("HOME", std::env::temp_dir()).stdout(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().expect("kubectl starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap();
    assert_eq!(first.as_deref(), Some("reviewrun.review.ao.dev/run-1"));

    create_runs(&cluster, &[("run-2", "b")]).await;
    let out = kubectl(&cluster, &["label", "rr", "run-1", "team=z", "--overwrite"]).await.ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 labeled");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap();
        seen.push(line.expect("kubectl keeps watching"));
    }
    assert_eq!(seen, ["reviewrun.review.ao.dev/run-2", "reviewrun.review.ao.dev/run-1"]);
    child.kill().await.unwrap();

    // The table form streams rows with the printer columns.
    let mut cmd = tokio::process::Command::new(support::kubectl_path());
    cmd.arg("--kubeconfig").arg(cluster.kubeconfig_path()).args(["get", "rr", "run-2", "-w"]);
    cmd.env("HOME", std::env::temp_dir()).stdout(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().expect("kubectl starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let header = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(header.starts_with("NAME"), "{header}");
    let row = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(row.starts_with("run-2"), "{row}");
    kubectl(
        &cluster,
        &["patch", "rr", "run-2", "--subresource=status", "--type=merge", "-p", r#"{"status":{"phase":"Pending"}}"#],
    )
    .await
    .ok();
    let changed = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    let cells: Vec<&str> = changed.split_whitespace().collect();
    assert_eq!(cells[0], "run-2");
    assert!(cells.contains(&"Pending"), "{changed}");
    child.kill().await.unwrap();
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_merge_json_and_status() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    create_runs(&cluster, &[("run-1", "a")]).await;

    let out =
        kubectl(&cluster, &["patch", "rr", "run-1", "--type", "merge", "-p", r#"{"spec":{"cancelRequested":true}}"#])
            .await
            .ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 patched");
    let out =
        kubectl(&cluster, &["patch", "rr", "run-1", "--type", "merge", "-p", r#"{"spec":{"cancelRequested":true}}"#])
            .await
            .ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 patched (no change)");
    let out = kubectl(
        &cluster,
        &["patch", "rr", "run-1", "--type", "json", "-p", r#"[{"op":"test","path":"/metadata/labels/team","value":"a"},{"op":"replace","path":"/metadata/labels/team","value":"j"}]"#],
    )
    .await
    .ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 patched");
    let failed = kubectl(
        &cluster,
        &["patch", "rr", "run-1", "--type", "json", "-p", r#"[{"op":"replace","path":"/metadata/labels/team","value":"k"},{"op":"test","path":"/spec/reviewer","value":"bob"}]"#],
    )
    .await
    .failed();
    assert!(failed.contains("test"), "{failed}");

    // Status goes through the subresource only; the main endpoint ignores it.
    let out = kubectl(
        &cluster,
        &[
            "patch",
            "rr",
            "run-1",
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"phase":"Pending","shortSha":"abcdef1"},"metadata":{"labels":{"team":"ignored"}}}"#,
        ],
    )
    .await
    .ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 patched");
    kubectl(&cluster, &["patch", "rr", "run-1", "--type", "merge", "-p", r#"{"status":{"phase":"Running"}}"#])
        .await
        .ok();
    let got = kubectl(
        &cluster,
        &["get", "rr", "run-1", "-o", "jsonpath={.spec.cancelRequested} {.metadata.labels.team} {.status.phase} {.status.shortSha} {.metadata.generation}"],
    )
    .await
    .ok();
    assert_eq!(got, "true j Pending abcdef1 2");
    let unsupported =
        kubectl(&cluster, &["patch", "rr", "run-1", "-p", r#"{"spec":{"cancelRequested":false}}"#]).await.failed();
    assert!(
        unsupported.contains(
            "application/strategic-merge-patch+json is not supported by review.ao.dev/v1alpha1, Kind=ReviewRun: \
             the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        ),
        "{unsupported}"
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_with_a_non_interactive_editor() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    create_runs(&cluster, &[("run-1", "before")]).await;
    let out =
        kubectl_with(&cluster, &["edit", "rr", "run-1"], None, &[("EDITOR", "sed -i s/team:\\ before/team:\\ after/")])
            .await
            .ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 edited");
    let got = kubectl(&cluster, &["get", "rr", "run-1", "-o", "jsonpath={.metadata.labels.team}"]).await.ok();
    assert_eq!(got, "after");
    let out = kubectl_with(&cluster, &["edit", "rr", "run-1"], None, &[("EDITOR", "true")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Edit cancelled, no changes made."), "{out:?}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_and_cascades_in_the_foreground() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    create_runs(&cluster, &[("run-1", "a")]).await;
    let out = kubectl(&cluster, &["delete", "rr", "run-1", "--wait"]).await.ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev \"run-1\" deleted from default namespace");
    let missing = kubectl(&cluster, &["get", "rr", "run-1"]).await.failed();
    assert!(missing.contains("not found"), "{missing}");

    // A dependent with blockOwnerDeletion holds its owner until it is gone.
    let owner = kubectl_stdin(&cluster, &["apply", "-f", "-"], CONFIG_MAP).await.ok();
    assert_eq!(owner.trim(), "configmap/settings created");
    let uid = kubectl(&cluster, &["get", "cm", "settings", "-o", "jsonpath={.metadata.uid}"]).await.ok();
    let dependent = format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: settings
    uid: {uid}
    blockOwnerDeletion: true
"
    );
    kubectl_stdin(&cluster, &["apply", "-f", "-"], &dependent).await.ok();
    let out = kubectl(&cluster, &["delete", "cm", "settings", "--cascade=foreground", "--wait"]).await.ok();
    assert_eq!(out.trim(), "configmap \"settings\" deleted from default namespace");
    let left = kubectl(&cluster, &["get", "cm", "-o", "name"]).await.ok();
    assert!(!left.contains("settings") && !left.contains("dependent"), "{left}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_condition_and_jsonpath() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    create_runs(&cluster, &[("run-1", "a")]).await;

    let waiter = {
        let kubeconfig = cluster.kubeconfig_path().to_path_buf();
        tokio::spawn(async move {
            tokio::process::Command::new(support::kubectl_path())
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .env("HOME", std::env::temp_dir())
                .args(["wait", "rr/run-1", "--for=condition=Current", "--timeout=60s"])
                .kill_on_drop(true)
                .output()
                .await
                .unwrap()
        })
    };
    let status = r#"{"status":{"conditions":[{"type":"Current","status":"True","reason":"Latest","message":"head SHA is current","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    kubectl(&cluster, &["patch", "rr", "run-1", "--subresource=status", "--type=merge", "-p", status]).await.ok();
    let out = waiter.await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "reviewrun.review.ao.dev/run-1 condition met");

    kubectl(
        &cluster,
        &["patch", "rr", "run-1", "--subresource=status", "--type=merge", "-p", r#"{"status":{"phase":"Pending"}}"#],
    )
    .await
    .ok();
    let out =
        kubectl(&cluster, &["wait", "rr/run-1", "--for=jsonpath={.status.phase}=Pending", "--timeout=30s"]).await.ok();
    assert_eq!(out.trim(), "reviewrun.review.ao.dev/run-1 condition met");
    let timed_out =
        kubectl(&cluster, &["wait", "rr/run-1", "--for=condition=Succeeded", "--timeout=1s"]).await.failed();
    assert!(timed_out.contains("timed out waiting for the condition on reviewruns/run-1"), "{timed_out}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_describes_custom_resource_fields() {
    let cluster = support::cluster().await;
    install_review_run_crd(&cluster).await;
    let out = kubectl(&cluster, &["explain", "reviewruns.spec.pullRequest.headSha"]).await.ok();
    assert!(out.contains("GROUP:      review.ao.dev"), "{out}");
    assert!(out.contains("KIND:       ReviewRun"), "{out}");
    assert!(out.contains("VERSION:    v1alpha1"), "{out}");
    assert!(out.contains("FIELD: headSha <string>"), "{out}");
    assert!(out.contains("The commit to review: 7 to 64 lowercase hexadecimal characters."), "{out}");
    let out = kubectl(&cluster, &["explain", "rr.spec"]).await.ok();
    assert!(out.contains("pullRequest\t<Object> -required-"), "{out}");
    assert!(out.contains("reviewer\t<string> -required-"), "{out}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_whoami_names_the_admin() {
    let cluster = support::cluster().await;
    let out = kubectl(&cluster, &["auth", "whoami", "-o", "json"]).await.ok();
    let review: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(review["kind"], "SelfSubjectReview");
    let user = &review["status"]["userInfo"];
    assert!(user["groups"].as_array().unwrap().iter().any(|g| g == "system:masters"), "{user}");
    let rows = table(&kubectl(&cluster, &["auth", "whoami"]).await.ok());
    assert_eq!(rows[0], ["ATTRIBUTE", "VALUE"]);
    assert_eq!(rows[1][0], "Username");
    assert_eq!(rows[1][1], user["username"].as_str().unwrap());
    cluster.shutdown().await.unwrap();
}

/// A CRD whose version declares the scale subresource, with the replicas and selector it names.
const SCALED_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.ready", "labelSelectorPath": ".status.selector"}},
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer", "maximum": 10}}},
        "status": {"type": "object", "properties": {"ready": {"type": "integer"}, "selector": {"type": "string"}}}}}}}]}}"#;

#[tokio::test]
async fn kubectl_scale_writes_the_replicas_path_a_crd_names() {
    let cluster = support::cluster_without_pods().await;
    support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(SCALED_CRD), &[]).await.ok();
    support::eventually("widgets to be served", || async {
        cluster.server().registry.all().iter().any(|r| r.resource == "widgets").then_some(())
    })
    .await;
    let widget = r#"{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "default"}, "spec": {"size": 1}}"#;
    support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(widget), &[]).await.ok();
    let resources =
        support::kubectl(&cluster, &["api-resources", "--api-group", "example.com", "-o", "wide"]).await.ok();
    assert!(resources.contains("widgets"), "{resources}");

    let out = support::kubectl(&cluster, &["scale", "widget/w1", "--replicas", "3", "-n", "default"]).await.ok();
    assert_eq!(out.trim(), "widget.example.com/w1 scaled");
    let size =
        support::kubectl(&cluster, &["get", "widget", "w1", "-n", "default", "-o", "jsonpath={.spec.size}"]).await.ok();
    assert_eq!(size, "3");
    let raw = support::kubectl(&cluster, &["get", "--raw", "/apis/example.com/v1/namespaces/default/widgets/w1/scale"])
        .await
        .ok();
    let scale: serde_json::Value = serde_json::from_str(&raw).expect("a Scale");
    assert_eq!(
        (scale["kind"].clone(), scale["apiVersion"].clone()),
        (serde_json::json!("Scale"), serde_json::json!("autoscaling/v1"))
    );
    assert_eq!(
        (scale["spec"]["replicas"].clone(), scale["status"]["replicas"].clone()),
        (serde_json::json!(3), serde_json::json!(0))
    );

    // The object's own validation still holds; a stale resourceVersion is a conflict.
    let too_many =
        support::kubectl(&cluster, &["scale", "widget/w1", "--replicas", "11", "-n", "default"]).await.failed();
    assert!(too_many.contains("spec.size"), "{too_many}");
    let url = "/apis/example.com/v1/namespaces/default/widgets/w1/scale";
    let stale_scale = serde_json::json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "w1", "namespace": "default", "resourceVersion": "1"}, "spec": {"replicas": 2}});
    let stale =
        support::kubectl_with(&cluster, &["replace", "--raw", url, "-f", "-"], Some(&stale_scale.to_string()), &[])
            .await
            .failed();
    assert!(stale.contains("the object has been modified"), "{stale}");
    let mut fresh = stale_scale;
    fresh["metadata"]["resourceVersion"] = scale["metadata"]["resourceVersion"].clone();
    let replaced =
        support::kubectl_with(&cluster, &["replace", "--raw", url, "-f", "-"], Some(&fresh.to_string()), &[])
            .await
            .ok();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&replaced).expect("a Scale")["spec"]["replicas"], 2);
    // A resource without the subresource has no scale.
    let none =
        support::kubectl(&cluster, &["get", "--raw", "/api/v1/namespaces/default/configmaps/x/scale"]).await.failed();
    assert!(none.contains("NotFound") || none.contains("not found"), "{none}");
}
