//! Admission webhooks through kubectl and `kube::Client`, against a webhook the test serves over
//! TLS with a CA of its own: denials, JSON patches, the AdmissionReview sent, failurePolicy,
//! caBundle verification, selectors, timeouts, subresources, dry runs and the validation of the
//! configurations themselves.

mod support;

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use devcluster::DevCluster;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The reviews the webhook received, with the path each came to.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook server on loopback, with the PEM of the CA that signed its certificate.
struct Webhook {
    base_url: String,
    ca_pem: String,
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CA and a serving certificate for 127.0.0.1 signed by it.
fn certificates() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, format!("webhook-test-ca-{}", uuid::Uuid::new_v4()));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
    // The name a Service-named webhook is verified by.
    params.subject_alt_names.push(SanType::DnsName("hooks.default.svc".try_into().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    (ca_pem, config)
}

/// The answer of the webhook at `path` to `review`:
/// - `deny-bad`: denies names starting with `bad`, allows the rest with a warning;
/// - `deny-all`: denies everything with code 403;
/// - `label`: adds the label `mutated-by: webhook` through a JSON patch;
/// - `slow`: answers after five seconds;
/// - `wrong-uid`: answers for another request;
/// - `annotate`: adds the annotation `annotated-by: webhook` through a JSON patch;
/// - `bad-patch`: answers with a patch that cannot apply;
/// - `bad-type`: patches a number into a ConfigMap's data;
/// - `bad-schedule`: patches a CronJob's schedule into one that does not parse;
/// - anything else: allows.
async fn answer(State(received): State<Received>, Path(path): Path<String>, Json(review): Json<Value>) -> Json<Value> {
    received.lock().unwrap().push((path.clone(), review.clone()));
    let request = &review["request"];
    let uid = request["uid"].clone();
    let allow = json!({"uid": uid, "allowed": true});
    let response = match path.as_str() {
        "deny-bad" if request["name"].as_str().unwrap_or("").starts_with("bad") => json!({
            "uid": uid, "allowed": false, "warnings": ["denied by the test webhook"],
            "status": {"message": "names starting with bad are not allowed"},
        }),
        "deny-bad" => json!({"uid": uid, "allowed": true, "warnings": ["checked by the test webhook"]}),
        "deny-all" => {
            json!({"uid": uid, "allowed": false, "status": {"code": 403, "reason": "Forbidden", "message": "nothing passes"}})
        }
        "label" => {
            let patch = if request["object"]["metadata"]["labels"].is_object() {
                json!([{"op": "add", "path": "/metadata/labels/mutated-by", "value": "webhook"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}])
            };
            let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch})
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            allow
        }
        "wrong-uid" => json!({"uid": "someone-else", "allowed": true}),
        "annotate" => {
            let patch = if request["object"]["metadata"]["annotations"].is_object() {
                json!([{"op": "add", "path": "/metadata/annotations/annotated-by", "value": "webhook"}])
            } else {
                json!([{"op": "add", "path": "/metadata/annotations", "value": {"annotated-by": "webhook"}}])
            };
            let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch})
        }
        "bad-type" => {
            let patch = json!([{"op": "add", "path": "/data/number", "value": 5}]).to_string();
            let patch = base64::engine::general_purpose::STANDARD.encode(patch);
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch})
        }
        "bad-schedule" => {
            let patch = json!([{"op": "replace", "path": "/spec/schedule", "value": "every minute"}]).to_string();
            let patch = base64::engine::general_purpose::STANDARD.encode(patch);
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch})
        }
        "bad-patch" => {
            let patch = json!([{"op": "remove", "path": "/spec/nothing"}]).to_string();
            let patch = base64::engine::general_purpose::STANDARD.encode(patch);
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch})
        }
        _ => allow,
    };
    Json(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}))
}

/// Serves the webhook over TLS on a free loopback port.
async fn serve_webhook() -> Webhook {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (ca_pem, config) = certificates();
    let received: Received = Arc::default();
    let app = axum::Router::new().route("/{path}", axum::routing::post(answer)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    Webhook { base_url: format!("https://127.0.0.1:{port}"), ca_pem, received, task }
}

impl Webhook {
    fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    /// The reviews received at `path`.
    fn reviews(&self, path: &str) -> Vec<Value> {
        self.received.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, r)| r.clone()).collect()
    }
}

/// One webhook of a configuration: the path it calls and the fields it sets beyond the usual.
fn webhook(name: &str, url: &str, ca_bundle: &str, resources: Value, extra: Value) -> Value {
    let mut hook = json!({
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": resources}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    for (key, value) in extra.as_object().into_iter().flatten() {
        hook[key] = value.clone();
    }
    hook
}

/// Stores a configuration of `kind` named `name` holding `webhooks`, through kubectl.
async fn register(cluster: &DevCluster, kind: &str, name: &str, webhooks: Vec<Value>) {
    let manifest = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": webhooks,
    });
    support::kubectl_with(cluster, &["apply", "-f", "-"], Some(&manifest.to_string()), &[]).await.ok();
}

/// A pod of one busybox container, which the dev cluster runs as a local process.
fn pod(name: &str) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .unwrap()
}

fn config_map(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).unwrap()
}

fn status_of(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A loopback URL nothing listens on.
async fn closed_port_url(path: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("https://127.0.0.1:{port}/{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validating_webhook_denies_with_its_message_and_sees_each_operation() {
    let cluster = support::cluster().await;
    let hook = serve_webhook().await;
    let url = format!("{}/deny-bad", hook.base_url);
    register(
        &cluster,
        "ValidatingWebhookConfiguration",
        "deny-bad",
        vec![webhook("deny-bad.webhooks.test", &url, &hook.ca_bundle(), json!(["configmaps"]), json!({}))],
    )
    .await;
    let table = support::kubectl(&cluster, &["get", "validatingwebhookconfigurations"]).await.ok();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "WEBHOOKS", "AGE"]);
    assert!(table.lines().nth(1).unwrap().starts_with("deny-bad "), "{table}");
    assert_eq!(table.lines().nth(1).unwrap().split_whitespace().nth(1), Some("1"), "{table}");

    let stderr = support::kubectl(&cluster, &["create", "configmap", "bad-one", "--from-literal=k=v"]).await.failed();
    assert!(
        stderr.contains(
            "admission webhook \"deny-bad.webhooks.test\" denied the request: names starting with bad are not allowed"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("Warning: denied by the test webhook"), "a denial carries its warnings: {stderr}");
    let created = support::kubectl(&cluster, &["create", "configmap", "good-one", "--from-literal=k=v"]).await;
    assert_eq!(created.code, 0, "{created:?}");
    assert!(created.stderr.contains("Warning: checked by the test webhook"), "{created:?}");
    let client = cluster.client().unwrap();
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client);
    let status = status_of(config_maps.create(&PostParams::default(), &config_map("bad-two", json!({}))).await);
    assert_eq!(status.code, 400, "a denial without a code is a 400: {status:?}");

    let creates = hook.reviews("deny-bad");
    let review = creates.iter().find(|r| r["request"]["name"] == "good-one").expect("the create was reviewed");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    let request = &review["request"];
    assert_eq!(request["kind"], json!({"group": "", "version": "v1", "kind": "ConfigMap"}));
    assert_eq!(request["resource"], json!({"group": "", "version": "v1", "resource": "configmaps"}));
    assert_eq!(request["requestKind"], request["kind"]);
    assert_eq!((request["operation"].as_str(), request["namespace"].as_str()), (Some("CREATE"), Some("default")));
    assert_eq!(request["userInfo"]["username"], "kubernetes-admin");
    assert!(request["userInfo"]["groups"].as_array().unwrap().contains(&json!("system:masters")));
    assert_eq!(request["object"]["data"], json!({"k": "v"}));
    assert_eq!(request["oldObject"], Value::Null);
    assert_eq!(
        (request["dryRun"].as_bool(), request["options"]["kind"].as_str()),
        (Some(false), Some("CreateOptions"))
    );
    assert!(!request["uid"].as_str().unwrap().is_empty());

    support::kubectl(&cluster, &["label", "configmap", "good-one", "team=a"]).await.ok();
    let update =
        hook.reviews("deny-bad").into_iter().find(|r| r["request"]["operation"] == "UPDATE").expect("the update");
    assert_eq!(update["request"]["object"]["metadata"]["labels"], json!({"team": "a"}));
    assert_eq!(update["request"]["oldObject"]["metadata"]["name"], "good-one");
    assert!(update["request"]["oldObject"]["metadata"].get("labels").is_none(), "{update}");
    assert_eq!(update["request"]["options"]["kind"], "UpdateOptions");

    support::kubectl(&cluster, &["create", "configmap", "tried", "--from-literal=k=v", "--dry-run=server"]).await.ok();
    let dry = hook.reviews("deny-bad").into_iter().find(|r| r["request"]["name"] == "tried").expect("the dry run");
    assert_eq!(dry["request"]["dryRun"], true);
    assert_eq!(dry["request"]["options"]["dryRun"], json!(["All"]));

    support::kubectl(&cluster, &["delete", "configmap", "good-one"]).await.ok();
    let delete =
        hook.reviews("deny-bad").into_iter().find(|r| r["request"]["operation"] == "DELETE").expect("the delete");
    assert_eq!(delete["request"]["object"], Value::Null);
    assert_eq!(delete["request"]["oldObject"]["metadata"]["name"], "good-one");
    assert_eq!(delete["request"]["options"]["kind"], "DeleteOptions");
    assert!(hook.reviews("deny-bad").iter().all(|r| r["request"]["resource"]["resource"] == "configmaps"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutating_webhook_patches_before_validating_webhooks_see_the_object() {
    let cluster = support::cluster().await;
    let hook = serve_webhook().await;
    let ca = hook.ca_bundle();
    let configmaps = json!(["configmaps"]);
    register(
        &cluster,
        "MutatingWebhookConfiguration",
        "label",
        vec![webhook("label.webhooks.test", &format!("{}/label", hook.base_url), &ca, configmaps.clone(), json!({}))],
    )
    .await;
    register(
        &cluster,
        "ValidatingWebhookConfiguration",
        "observe",
        vec![webhook("observe.webhooks.test", &format!("{}/observe", hook.base_url), &ca, configmaps, json!({}))],
    )
    .await;
    let stored = support::kubectl(&cluster, &["get", "mutatingwebhookconfiguration", "label", "-o", "json"]).await.ok();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    let defaults = &stored["webhooks"][0];
    assert_eq!(
        (defaults["failurePolicy"].as_str(), defaults["matchPolicy"].as_str(), defaults["reinvocationPolicy"].as_str()),
        (Some("Fail"), Some("Equivalent"), Some("Never"))
    );
    assert_eq!((defaults["timeoutSeconds"].as_i64(), defaults["rules"][0]["scope"].as_str()), (Some(10), Some("*")));
    assert_eq!((&defaults["namespaceSelector"], &defaults["objectSelector"]), (&json!({}), &json!({})));

    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let created = config_maps.create(&PostParams::default(), &config_map("plain", json!({}))).await.unwrap();
    assert_eq!(created.metadata.labels.unwrap()["mutated-by"], "webhook");
    let labelled =
        config_maps.create(&PostParams::default(), &config_map("labelled", json!({"team": "a"}))).await.unwrap();
    let labels = labelled.metadata.labels.unwrap();
    assert_eq!((labels["team"].as_str(), labels["mutated-by"].as_str()), ("a", "webhook"));
    let stored = config_maps.get("plain").await.unwrap();
    assert_eq!(stored.metadata.labels.unwrap()["mutated-by"], "webhook");
    let seen = hook.reviews("observe");
    let plain = seen.iter().find(|r| r["request"]["name"] == "plain").expect("validated");
    assert_eq!(plain["request"]["object"]["metadata"]["labels"]["mutated-by"], "webhook", "{plain}");
    // Mutating webhooks see a new object before the server gives it a uid; validating ones after.
    assert!(!plain["request"]["object"]["metadata"]["uid"].as_str().unwrap_or("").is_empty(), "{plain}");
    let mutated = hook.reviews("label").into_iter().find(|r| r["request"]["name"] == "plain").expect("mutated");
    assert!(mutated["request"]["object"]["metadata"].get("uid").is_none(), "{mutated}");

    // A server-side apply that creates is admitted once, as the create it is.
    let manifest =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "v"}});
    support::kubectl_with(&cluster, &["apply", "--server-side", "-f", "-"], Some(&manifest.to_string()), &[])
        .await
        .ok();
    let applied = config_maps.get("applied").await.unwrap();
    assert_eq!(applied.metadata.labels.unwrap()["mutated-by"], "webhook");
    let managers = applied.metadata.managed_fields.unwrap();
    assert_eq!(managers.iter().map(|m| m.operation.as_deref()).collect::<Vec<_>>(), [Some("Apply")]);
    let seen: Vec<Value> = hook.reviews("observe").into_iter().filter(|r| r["request"]["name"] == "applied").collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0]["request"]["operation"].as_str(), seen[0]["request"]["dryRun"].as_bool()),
        (Some("CREATE"), Some(false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policy_decides_when_the_webhook_is_down() {
    let cluster = support::cluster().await;
    let url = closed_port_url("allow").await;
    let down = |policy: &str| {
        let mut hook = webhook("down.webhooks.test", &url, "", json!(["*/*"]), json!({"failurePolicy": policy}));
        hook["rules"][0]["apiGroups"] = json!(["*"]);
        hook
    };
    register(&cluster, "ValidatingWebhookConfiguration", "down", vec![down("Fail")]).await;
    let stderr = support::kubectl(&cluster, &["create", "configmap", "refused", "--from-literal=k=v"]).await.failed();
    let port = url.trim_start_matches("https://127.0.0.1:").trim_end_matches("/allow");
    assert!(
        stderr.contains(&format!(
            "Internal error occurred: failed calling webhook \"down.webhooks.test\": failed to call webhook: Post \"{url}?timeout=10s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )),
        "{stderr}"
    );
    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let status = status_of(config_maps.create(&PostParams::default(), &config_map("refused", json!({}))).await);
    assert_eq!((status.code, status.reason.as_str()), (500, "InternalError"));

    // Webhook configurations are never sent to webhooks: the broken one can still be replaced.
    register(&cluster, "ValidatingWebhookConfiguration", "down", vec![down("Ignore")]).await;
    support::kubectl(&cluster, &["create", "configmap", "let-through", "--from-literal=k=v"]).await.ok();
    support::kubectl(&cluster, &["delete", "validatingwebhookconfiguration", "down"]).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_bundle_a_wrong_uid_and_a_slow_webhook_fail_the_call() {
    let cluster = support::cluster().await;
    let hook = serve_webhook().await;
    let other = serve_webhook().await;
    let configmaps = json!(["configmaps"]);
    let object_selector = |value: &str| json!({"objectSelector": {"matchLabels": {"case": value}}});
    register(
        &cluster,
        "ValidatingWebhookConfiguration",
        "failing",
        vec![
            webhook(
                "untrusted.webhooks.test",
                &format!("{}/allow", hook.base_url),
                &other.ca_bundle(),
                configmaps.clone(),
                object_selector("tls"),
            ),
            webhook(
                "wrong-uid.webhooks.test",
                &format!("{}/wrong-uid", hook.base_url),
                &hook.ca_bundle(),
                configmaps.clone(),
                object_selector("uid"),
            ),
            webhook("slow.webhooks.test", &format!("{}/slow", hook.base_url), &hook.ca_bundle(), configmaps.clone(), {
                let mut extra = object_selector("slow");
                extra["timeoutSeconds"] = json!(1);
                extra
            }),
        ],
    )
    .await;
    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let refused = |case: &str| {
        let config_maps = config_maps.clone();
        let object = config_map(&format!("case-{case}"), json!({"case": case}));
        async move { status_of(config_maps.create(&PostParams::default(), &object).await) }
    };
    let tls = refused("tls").await;
    assert_eq!(tls.code, 500);
    assert!(
        tls.message.contains("failed calling webhook \"untrusted.webhooks.test\": failed to call webhook: Post"),
        "{tls:?}"
    );
    assert!(
        tls.message.ends_with("tls: failed to verify certificate: x509: certificate signed by unknown authority"),
        "{tls:?}"
    );
    assert!(hook.reviews("allow").is_empty(), "no request passes an untrusted handshake");

    let uid = refused("uid").await;
    assert!(
        uid.message.contains("received invalid webhook response: expected response.uid=")
            && uid.message.ends_with("got \"someone-else\""),
        "{uid:?}"
    );

    let started = std::time::Instant::now();
    let slow = refused("slow").await;
    assert!(slow.message.contains("/slow?timeout=1s\": context deadline exceeded"), "{slow:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout cut the call short: {:?}", started.elapsed());
    config_maps.create(&PostParams::default(), &config_map("unselected", json!({"case": "none"}))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_and_conditions_that_do_not_match_skip_the_webhook() {
    let cluster = support::cluster().await;
    let hook = serve_webhook().await;
    let deny_all = format!("{}/deny-all", hook.base_url);
    let ca = hook.ca_bundle();
    let resources = json!(["configmaps", "namespaces"]);
    support::kubectl(&cluster, &["create", "namespace", "dev"]).await.ok();
    support::kubectl(&cluster, &["label", "namespace", "dev", "env=dev"]).await.ok();
    register(
        &cluster,
        "ValidatingWebhookConfiguration",
        "selective",
        vec![
            webhook("prod-only.webhooks.test", &deny_all, &ca, resources.clone(), json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}})),
            webhook("locked-only.webhooks.test", &deny_all, &ca, resources.clone(), json!({"objectSelector": {"matchLabels": {"locked": "true"}}})),
            webhook("frozen-only.webhooks.test", &deny_all, &ca, resources, json!({"matchConditions": [{"name": "frozen", "expression": "object != null && object.metadata.name.startsWith('frozen')"}]})),
        ],
    )
    .await;
    support::kubectl(&cluster, &["create", "configmap", "free", "-n", "dev", "--from-literal=k=v"]).await.ok();
    assert!(hook.reviews("deny-all").is_empty(), "no webhook matched");

    let stderr = support::kubectl(&cluster, &["create", "configmap", "frozen-1", "-n", "dev"]).await.failed();
    assert!(
        stderr.contains("admission webhook \"frozen-only.webhooks.test\" denied the request: nothing passes"),
        "{stderr}"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client().unwrap(), "dev");
    let status =
        status_of(config_maps.create(&PostParams::default(), &config_map("held", json!({"locked": "true"}))).await);
    assert_eq!(
        (status.code, status.message.as_str()),
        (403, "admission webhook \"locked-only.webhooks.test\" denied the request: nothing passes")
    );

    // A namespace is matched by its own labels.
    let stderr = support::kubectl(&cluster, &["label", "namespace", "dev", "env=prod", "--overwrite"]).await.failed();
    assert!(stderr.contains("admission webhook \"prod-only.webhooks.test\" denied the request"), "{stderr}");
    let names: Vec<String> =
        hook.reviews("deny-all").iter().map(|r| r["request"]["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["frozen-1", "held", "dev"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_naming_pods_status_sees_status_writes_only() {
    let cluster = support::cluster_without_pods().await;
    let hook = serve_webhook().await;
    register(
        &cluster,
        "ValidatingWebhookConfiguration",
        "pod-status",
        vec![webhook(
            "status.webhooks.test",
            &format!("{}/status", hook.base_url),
            &hook.ca_bundle(),
            json!(["pods/status"]),
            json!({}),
        )],
    )
    .await;
    let pods = support::pods(&cluster);
    pods.create(&PostParams::default(), &pod("p")).await.unwrap();
    assert!(hook.reviews("status").is_empty(), "a pod create is not a status write");
    let patch = json!({"status": {"phase": "Running"}});
    pods.patch_status("p", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let reviews = hook.reviews("status");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    // A mutating webhook's change outside the status of a status write does not stay.
    let mut label = webhook(
        "label.webhooks.test",
        &format!("{}/label", hook.base_url),
        &hook.ca_bundle(),
        json!(["pods/status"]),
        json!({}),
    );
    label["rules"][0]["operations"] = json!(["UPDATE"]);
    register(&cluster, "MutatingWebhookConfiguration", "pod-status", vec![label]).await;
    let patch = json!({"status": {"phase": "Succeeded"}});
    let written = pods.patch_status("p", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(hook.reviews("label").len(), 1);
    assert_eq!(written.status.unwrap().phase.as_deref(), Some("Succeeded"));
    assert!(written.metadata.labels.unwrap_or_default().is_empty(), "the label a status write patched in is dropped");
    let request = &reviews[0]["request"];
    assert_eq!((request["subResource"].as_str(), request["operation"].as_str()), (Some("status"), Some("UPDATE")));
    assert_eq!(request["object"]["status"]["phase"], "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configurations_are_refused_with_each_field() {
    let cluster = support::cluster().await;
    let bad = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "bad"},
        "webhooks": [
            {"name": "short.test", "clientConfig": {"url": "http://u:p@127.0.0.1/x?q=1"},
             "rules": [{"operations": ["PATCH"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"], "scope": "Anywhere"}],
             "admissionReviewVersions": ["v2"], "timeoutSeconds": 31},
            {"name": "twice.webhooks.test", "clientConfig": {}, "sideEffects": "Some", "admissionReviewVersions": ["v1"]},
            {"name": "twice.webhooks.test", "clientConfig": {"service": {"name": "s", "namespace": "n"}}, "sideEffects": "None", "admissionReviewVersions": ["v1"]},
        ],
    });
    let stderr = support::kubectl_with(&cluster, &["create", "-f", "-"], Some(&bad.to_string()), &[]).await.failed();
    for expected in [
        "The ValidatingWebhookConfiguration \"bad\" is invalid:",
        "webhooks[0].name: Invalid value: \"short.test\": should be a domain with at least three segments separated by dots",
        "webhooks[0].rules[0].operations[0]: Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\"",
        "webhooks[0].rules[0].scope: Unsupported value: \"Anywhere\"",
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
        "webhooks[0].admissionReviewVersions: Invalid value: [\"v2\"]: must include at least one of v1, v1beta1",
        "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme",
        "webhooks[0].clientConfig.url: Invalid value: \"u:p\": user information is not permitted in the URL",
        "webhooks[0].clientConfig.url: Invalid value: \"q=1\": query parameters are not permitted in the URL",
        "webhooks[1].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
        "webhooks[1].clientConfig: Required value: exactly one of url or service is required",
        "webhooks[2].name: Duplicate value: \"twice.webhooks.test\"",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in {stderr}");
    }
    let api: Api<DynamicObject> = Api::all_with(
        cluster.client().unwrap(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration"),
            "mutatingwebhookconfigurations",
        ),
    );
    let mut object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "bad-policy"},
        "webhooks": [{"name": "m.webhooks.test", "clientConfig": {"url": "https://127.0.0.1/m"}, "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "reinvocationPolicy": "Always",
            "matchConditions": [{"name": "c", "expression": "object.metadata.name =="}]}],
    }))
    .unwrap();
    let status = status_of(api.create(&PostParams::default(), &object).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains(
            "webhooks[0].reinvocationPolicy: Unsupported value: \"Always\": supported values: \"IfNeeded\", \"Never\""
        ),
        "{status:?}"
    );
    assert!(
        status.message.contains(
            "webhooks[0].matchConditions[0].expression: Invalid value: \"object.metadata.name ==\": compilation failed"
        ),
        "{status:?}"
    );
    object.data["webhooks"][0]["reinvocationPolicy"] = json!("IfNeeded");
    object.data["webhooks"][0]["matchConditions"] = json!([]);
    // Watchers see the configuration stored.
    let stream = api.watch(&kube::api::WatchParams::default(), "0").await.unwrap();
    let mut stream = Box::pin(stream);
    api.create(&PostParams::default(), &object).await.unwrap();
    let added = tokio::time::timeout(Duration::from_secs(30), async {
        use futures::StreamExt;
        while let Some(event) = stream.next().await {
            if let kube::api::WatchEvent::Added(added) = event.unwrap() {
                return added;
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("an ADDED event within 30 s");
    assert_eq!(added.metadata.name.as_deref(), Some("bad-policy"));
    assert_eq!(added.data["webhooks"][0]["timeoutSeconds"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_webhooks_run_in_name_order_and_are_reinvoked_if_needed() {
    let cluster = support::cluster().await;
    let hook = serve_webhook().await;
    let ca = hook.ca_bundle();
    let url = |path: &str| format!("{}/{path}", hook.base_url);
    let configmaps = json!(["configmaps"]);
    let only = |case: &str| json!({"objectSelector": {"matchLabels": {"case": case}}});
    register(
        &cluster,
        "MutatingWebhookConfiguration",
        "b-annotate",
        vec![webhook("annotate.webhooks.test", &url("annotate"), &ca, configmaps.clone(), only("order"))],
    )
    .await;
    let mut first = only("order");
    first["reinvocationPolicy"] = json!("IfNeeded");
    register(
        &cluster,
        "MutatingWebhookConfiguration",
        "a-label",
        vec![
            webhook("label.webhooks.test", &url("label"), &ca, configmaps.clone(), first),
            webhook("deny.webhooks.test", &url("deny-bad"), &ca, configmaps.clone(), only("deny")),
            webhook("broken.webhooks.test", &url("bad-patch"), &ca, configmaps.clone(), only("patch")),
        ],
    )
    .await;
    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client().unwrap());
    let created =
        config_maps.create(&PostParams::default(), &config_map("ordered", json!({"case": "order"}))).await.unwrap();
    assert_eq!(created.metadata.labels.unwrap()["mutated-by"], "webhook");
    assert_eq!(created.metadata.annotations.unwrap()["annotated-by"], "webhook");
    let labels = hook.reviews("label");
    assert_eq!(labels.len(), 2, "called again after the annotation: {labels:?}");
    assert!(labels[0]["request"]["object"]["metadata"].get("annotations").is_none(), "a-label runs first");
    assert_eq!(labels[1]["request"]["object"]["metadata"]["annotations"]["annotated-by"], "webhook");
    assert_eq!(hook.reviews("annotate").len(), 1, "Never is never reinvoked");

    let denied =
        status_of(config_maps.create(&PostParams::default(), &config_map("bad-name", json!({"case": "deny"}))).await);
    assert_eq!(
        (denied.code, denied.message.as_str()),
        (400, "admission webhook \"deny.webhooks.test\" denied the request: names starting with bad are not allowed")
    );
    let broken =
        status_of(config_maps.create(&PostParams::default(), &config_map("patched", json!({"case": "patch"}))).await);
    assert_eq!((broken.code, broken.reason.as_str()), (500, "InternalError"));
    assert!(
        broken.message.starts_with("Internal error occurred: applying the patch of webhook \"broken.webhooks.test\": "),
        "{broken:?}"
    );
    assert!(config_maps.get_opt("patched").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patched_object_is_decoded_and_validated_again() {
    let cluster = support::cluster().await;
    let hook = serve_webhook().await;
    let ca = hook.ca_bundle();
    let mut cron_jobs = webhook(
        "schedule.webhooks.test",
        &format!("{}/bad-schedule", hook.base_url),
        &ca,
        json!(["cronjobs"]),
        json!({}),
    );
    cron_jobs["rules"][0]["apiGroups"] = json!(["batch"]);
    register(
        &cluster,
        "MutatingWebhookConfiguration",
        "breaking",
        vec![
            webhook(
                "type.webhooks.test",
                &format!("{}/bad-type", hook.base_url),
                &ca,
                json!(["configmaps"]),
                json!({}),
            ),
            cron_jobs,
        ],
    )
    .await;
    let stderr = support::kubectl(&cluster, &["create", "configmap", "typed", "--from-literal=k=v"]).await.failed();
    assert!(
        stderr.contains("Internal error occurred: ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ConfigMap.data.number of type string"),
        "{stderr}"
    );
    let stderr =
        support::kubectl(&cluster, &["create", "cronjob", "nightly", "--image=busybox", "--schedule=0 3 * * *"])
            .await
            .failed();
    assert!(
        stderr.contains("CronJob.batch \"nightly\" is invalid: spec.schedule: Invalid value: \"every minute\""),
        "{stderr}"
    );
    assert_eq!(hook.reviews("bad-schedule").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_discovered_and_a_service_is_called_through_its_pods() {
    let cluster = support::cluster_without_pods().await;
    let resources =
        support::kubectl(&cluster, &["api-resources", "--api-group=admissionregistration.k8s.io", "--no-headers"])
            .await
            .ok();
    for resource in ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"] {
        let line =
            resources.lines().find(|l| l.starts_with(resource)).unwrap_or_else(|| panic!("{resource} in {resources}"));
        assert!(line.contains("admissionregistration.k8s.io/v1") && line.contains("false"), "{line}");
    }
    let explained =
        support::kubectl(&cluster, &["explain", "validatingwebhookconfiguration.webhooks.timeoutSeconds"]).await.ok();
    assert!(explained.contains("FIELD: timeoutSeconds <integer>"), "{explained}");
    let served = serve_webhook().await;
    let mut hook = webhook("svc.webhooks.test", "", &served.ca_bundle(), json!(["configmaps"]), json!({}));
    hook["clientConfig"] =
        json!({"service": {"name": "hooks", "namespace": "default", "path": "/check"}, "caBundle": served.ca_bundle()});
    register(&cluster, "ValidatingWebhookConfiguration", "by-service", vec![hook]).await;
    let url = "Post \"https://hooks.default.svc:443/check?timeout=10s\"";
    let stderr = support::kubectl(&cluster, &["create", "configmap", "c", "--from-literal=k=v"]).await.failed();
    assert!(
        stderr.contains(&format!("Internal error occurred: failed calling webhook \"svc.webhooks.test\": failed to call webhook: {url}: service \"hooks\" not found")),
        "{stderr}"
    );
    // kubectl's Service selects app=hooks; the webhook's port is its target.
    let port = served.base_url.rsplit(':').next().unwrap();
    support::kubectl(&cluster, &["create", "service", "clusterip", "hooks", &format!("--tcp=443:{port}")]).await.ok();
    let stderr = support::kubectl(&cluster, &["create", "configmap", "c", "--from-literal=k=v"]).await.failed();
    assert!(stderr.contains(&format!("{url}: no endpoints available for service \"hooks\"")), "{stderr}");

    let pods = support::pods(&cluster);
    let pod = json!({"metadata": {"name": "hooks-1", "labels": {"app": "hooks"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap()).await.unwrap();
    let running = json!({"status": {"phase": "Running", "podIP": "127.0.0.1"}});
    pods.patch_status("hooks-1", &PatchParams::default(), &Patch::Merge(&running)).await.unwrap();
    support::kubectl(&cluster, &["create", "configmap", "c", "--from-literal=k=v"]).await.ok();
    let reviews = served.reviews("check");
    assert_eq!(reviews.len(), 1, "the pod behind the Service answered: {reviews:?}");
    assert_eq!(reviews[0]["request"]["name"], "c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_and_token_requests_are_sent_with_their_own_kinds() {
    let cluster = support::cluster_without_pods().await;
    let hook = serve_webhook().await;
    let ca = hook.ca_bundle();
    register(
        &cluster,
        "ValidatingWebhookConfiguration",
        "subresources",
        vec![
            webhook(
                "eviction.webhooks.test",
                &format!("{}/deny-all", hook.base_url),
                &ca,
                json!(["pods/eviction"]),
                json!({}),
            ),
            webhook(
                "token.webhooks.test",
                &format!("{}/token", hook.base_url),
                &ca,
                json!(["serviceaccounts/token"]),
                json!({}),
            ),
        ],
    )
    .await;
    let pods = support::pods(&cluster);
    pods.create(&PostParams::default(), &pod("p")).await.unwrap();
    let status = status_of(pods.evict("p", &kube::api::EvictParams::default()).await);
    assert_eq!(
        (status.code, status.message.as_str()),
        (403, "admission webhook \"eviction.webhooks.test\" denied the request: nothing passes")
    );
    assert!(pods.get_opt("p").await.unwrap().is_some(), "the pod stays");
    let evictions = hook.reviews("deny-all");
    let request = &evictions[0]["request"];
    assert_eq!(request["kind"], json!({"group": "policy", "version": "v1", "kind": "Eviction"}));
    assert_eq!(request["resource"], json!({"group": "", "version": "v1", "resource": "pods"}));
    assert_eq!(
        (request["subResource"].as_str(), request["operation"].as_str(), request["name"].as_str()),
        (Some("eviction"), Some("CREATE"), Some("p"))
    );
    assert_eq!(request["object"]["kind"], "Eviction");

    let token = support::kubectl(&cluster, &["create", "token", "default"]).await.ok();
    assert!(!token.trim().is_empty());
    let requests = hook.reviews("token");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0]["request"]["kind"],
        json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"})
    );
    assert_eq!(requests[0]["request"]["subResource"], "token");
}

/// A CRD whose version declares the scale subresource.
const SCALED_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.ready"}},
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
        "status": {"type": "object", "properties": {"ready": {"type": "integer"}}}}}}}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_is_sent_as_a_scale_and_not_as_the_object() {
    let cluster = support::cluster_without_pods().await;
    let hook = serve_webhook().await;
    support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(SCALED_CRD), &[]).await.ok();
    support::eventually("widgets to be served", || async {
        cluster.server().registry.all().iter().any(|r| r.resource == "widgets").then_some(())
    })
    .await;
    let widget = r#"{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "default"}, "spec": {"size": 1}}"#;
    support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(widget), &[]).await.ok();
    let ca = hook.ca_bundle();
    let for_widgets = |name: &str, path: &str, resource: &str| {
        let mut hook = webhook(name, &format!("{}/{path}", hook.base_url), &ca, json!([resource]), json!({}));
        hook["rules"][0]["apiGroups"] = json!(["example.com"]);
        hook
    };
    register(
        &cluster,
        "ValidatingWebhookConfiguration",
        "widgets",
        vec![
            for_widgets("scale.webhooks.test", "scale", "widgets/scale"),
            for_widgets("plain.webhooks.test", "plain", "widgets"),
        ],
    )
    .await;
    support::kubectl(&cluster, &["scale", "widget/w1", "--replicas", "3"]).await.ok();
    let size = support::kubectl(&cluster, &["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]).await.ok();
    assert_eq!(size, "3");
    assert!(hook.reviews("plain").is_empty(), "the object's own rule does not match a scale");
    let scales = hook.reviews("scale");
    assert_eq!(scales.len(), 1, "{scales:?}");
    let request = &scales[0]["request"];
    assert_eq!(request["kind"], json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
    assert_eq!(request["resource"], json!({"group": "example.com", "version": "v1", "resource": "widgets"}));
    assert_eq!((request["subResource"].as_str(), request["operation"].as_str()), (Some("scale"), Some("UPDATE")));
    assert_eq!(
        (request["object"]["spec"]["replicas"].as_i64(), request["oldObject"]["spec"]["replicas"].as_i64()),
        (Some(3), Some(1))
    );
}

/// A CRD served in two versions, converted with the `None` strategy.
const TWO_VERSION_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "gadgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
    "versions": [
      {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}},
      {"name": "v2", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_policy_equivalent_sends_another_served_version_and_exact_does_not() {
    let cluster = support::cluster_without_pods().await;
    let hook = serve_webhook().await;
    support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(TWO_VERSION_CRD), &[]).await.ok();
    support::eventually("gadgets to be served in v2", || async {
        cluster.server().registry.get("example.com", "v2", "gadgets").map(|_| ())
    })
    .await;
    let ca = hook.ca_bundle();
    let v1_gadgets = |name: &str, path: &str, policy: &str| {
        let mut hook = webhook(
            name,
            &format!("{}/{path}", hook.base_url),
            &ca,
            json!(["gadgets"]),
            json!({"matchPolicy": policy}),
        );
        hook["rules"][0]["apiGroups"] = json!(["example.com"]);
        hook["rules"][0]["apiVersions"] = json!(["v1"]);
        hook
    };
    register(
        &cluster,
        "MutatingWebhookConfiguration",
        "gadgets",
        vec![v1_gadgets("label.webhooks.test", "label", "Equivalent")],
    )
    .await;
    register(
        &cluster,
        "ValidatingWebhookConfiguration",
        "gadgets",
        vec![v1_gadgets("exact.webhooks.test", "exact", "Exact")],
    )
    .await;
    let gadget = r#"{"apiVersion": "example.com/v2", "kind": "Gadget", "metadata": {"name": "g1", "namespace": "default"}, "spec": {"size": 2}}"#;
    support::kubectl_with(&cluster, &["create", "-f", "-"], Some(gadget), &[]).await.ok();

    let labels = hook.reviews("label");
    assert_eq!(labels.len(), 1, "{labels:?}");
    let request = &labels[0]["request"];
    assert_eq!(request["kind"], json!({"group": "example.com", "version": "v1", "kind": "Gadget"}));
    assert_eq!(request["resource"]["version"], "v1");
    assert_eq!(request["requestKind"], json!({"group": "example.com", "version": "v2", "kind": "Gadget"}));
    assert_eq!(request["requestResource"]["version"], "v2");
    assert_eq!(request["object"]["apiVersion"], "example.com/v1");
    assert!(hook.reviews("exact").is_empty(), "an Exact rule for v1 does not match a v2 request");
    let stored = support::kubectl(&cluster, &["get", "gadgets.v2.example.com", "g1", "-o", "json"]).await.ok();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["apiVersion"], "example.com/v2");
    assert_eq!(stored["metadata"]["labels"]["mutated-by"], "webhook", "{stored}");
    assert_eq!(stored["spec"]["size"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_is_a_connect_a_webhook_may_refuse() {
    let cluster = support::cluster().await;
    let hook = serve_webhook().await;
    let pod = json!({"metadata": {"name": "shell"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "exec sleep 600"]}]}});
    support::pods(&cluster).create(&PostParams::default(), &serde_json::from_value(pod).unwrap()).await.unwrap();
    support::pod_when(&cluster, "shell", "Running", |p| support::phase(p) == "Running").await;
    let mut exec = webhook(
        "exec.webhooks.test",
        &format!("{}/deny-all", hook.base_url),
        &hook.ca_bundle(),
        json!(["pods/exec"]),
        json!({}),
    );
    exec["rules"][0]["operations"] = json!(["CONNECT"]);
    register(&cluster, "ValidatingWebhookConfiguration", "no-exec", vec![exec]).await;

    let stderr = support::kubectl(&cluster, &["exec", "shell", "--", "echo", "hi"]).await.failed();
    assert!(stderr.contains("admission webhook \"exec.webhooks.test\" denied the request: nothing passes"), "{stderr}");
    // kubectl tries WebSocket, then SPDY: each attempt is admitted.
    let reviews = hook.reviews("deny-all");
    assert!(!reviews.is_empty());
    let request = &reviews[0]["request"];
    assert_eq!((request["operation"].as_str(), request["subResource"].as_str()), (Some("CONNECT"), Some("exec")));
    assert_eq!(request["kind"], json!({"group": "", "version": "v1", "kind": "PodExecOptions"}));
    assert_eq!(request["object"]["command"], json!(["echo", "hi"]));
    assert_eq!(request["options"], Value::Null);
    support::kubectl(&cluster, &["delete", "validatingwebhookconfiguration", "no-exec"]).await.ok();
    let out = support::kubectl(&cluster, &["exec", "shell", "--", "echo", "hi"]).await.ok();
    assert_eq!(out, "hi\n");
}
