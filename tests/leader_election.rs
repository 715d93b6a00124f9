//! Leader election between in-process replicas on the dev cluster, and the
//! HTTP endpoints. Each replica runs `run_with_leadership` with a fake
//! controller that records when it is active.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use prometheus_client::metrics::gauge::Gauge;
use review_operator::metrics::Metrics;
use review_operator::operations::http;
use review_operator::operations::leader::{ElectionStatus, LeadershipError, LeaseConfig, run_with_leadership};
use review_operator::operations::shutdown::{self, ShutdownSignal, ShutdownTrigger};
use support::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

const LEASE: &str = "review-operator";

/// Who runs the fake controller: the number active now, the most ever
/// active at once, and how many terms each replica started.
#[derive(Default)]
struct Activity {
    active: AtomicUsize,
    most_at_once: AtomicUsize,
    terms: [AtomicUsize; 2],
}

impl Activity {
    fn terms(&self, replica: usize) -> usize {
        self.terms[replica].load(Ordering::SeqCst)
    }

    fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    fn most_at_once(&self) -> usize {
        self.most_at_once.load(Ordering::SeqCst)
    }
}

/// Counts one replica as active while alive (also when its task is aborted).
struct ActiveGuard(Arc<Activity>);

impl ActiveGuard {
    fn enter(activity: Arc<Activity>, replica: usize) -> Self {
        let now = activity.active.fetch_add(1, Ordering::SeqCst) + 1;
        activity.most_at_once.fetch_max(now, Ordering::SeqCst);
        activity.terms[replica].fetch_add(1, Ordering::SeqCst);
        Self(activity)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Replica {
    identity: String,
    status: Arc<ElectionStatus>,
    shutdown: ShutdownTrigger,
    task: JoinHandle<Result<(), LeadershipError>>,
}

fn start_replica(client: &Client, replica: usize, lease_duration: Duration, activity: &Arc<Activity>) -> Replica {
    let identity = format!("replica-{replica}");
    let lease = LeaseConfig {
        namespace: "default".into(),
        name: LEASE.into(),
        identity: identity.clone(),
        duration: lease_duration,
    };
    let status = Arc::new(ElectionStatus::new(Gauge::default()));
    let (trigger, signal) = shutdown::channel();
    let activity = activity.clone();
    let controller = move |stop: ShutdownSignal| {
        let activity = activity.clone();
        async move {
            let _active = ActiveGuard::enter(activity, replica);
            stop.wait().await;
            Ok::<(), std::io::Error>(())
        }
    };
    let task = tokio::spawn(run_with_leadership(client.clone(), lease, status.clone(), signal, controller));
    Replica { identity, status, shutdown: trigger, task }
}

async fn lease_spec(client: &Client) -> Option<k8s_openapi::api::coordination::v1::LeaseSpec> {
    Api::<Lease>::namespaced(client.clone(), "default").get_opt(LEASE).await.ok().flatten().and_then(|lease| lease.spec)
}

/// Waits until the holder has renewed the Lease `renewals` times.
async fn await_renewals(client: &Client, holder: &str, renewals: usize) {
    let seen = std::sync::Mutex::new(Vec::new());
    eventually("lease renewals", || async {
        let spec = lease_spec(client).await?;
        assert_eq!(spec.holder_identity.as_deref(), Some(holder), "the leader keeps the lease");
        let renewed = spec.renew_time?;
        let mut seen = seen.lock().expect("not poisoned");
        if !seen.contains(&renewed) {
            seen.push(renewed);
        }
        (seen.len() > renewals).then_some(())
    })
    .await;
}

#[tokio::test]
async fn standby_takes_over_within_the_lease_duration_when_the_leader_dies() {
    let cluster = support::cluster().await;
    let client = cluster.client().expect("client");
    let activity = Arc::new(Activity::default());
    let lease_duration = Duration::from_secs(2);

    let first = start_replica(&client, 0, lease_duration, &activity);
    eventually("the first replica leads", || async { (activity.terms(0) == 1).then_some(()) }).await;
    let second = start_replica(&client, 1, lease_duration, &activity);
    eventually("the second replica stands by", || async { second.status.is_ready().then_some(()) }).await;
    assert!(first.status.is_leading() && !second.status.is_leading());

    // Several renewals with a standby campaigning: still one active controller.
    await_renewals(&client, &first.identity, 3).await;
    assert_eq!(activity.terms(1), 0, "the standby never ran the controller");

    // Kill the leader: its controller stops with it, the Lease is not released.
    first.task.abort();
    assert!(first.task.await.expect_err("aborted").is_cancelled());
    let killed = Instant::now();
    eventually("the standby takes over", || async { (activity.terms(1) == 1).then_some(()) }).await;
    let takeover = killed.elapsed();
    println!("takeover after the leader died: {} ms", takeover.as_millis());
    assert!(takeover < lease_duration + Duration::from_secs(5), "the standby took over only after {takeover:?}");
    let spec = lease_spec(&client).await.expect("lease");
    assert_eq!(spec.holder_identity.as_deref(), Some(second.identity.as_str()));
    assert!(second.status.is_leading());
    assert_eq!(activity.most_at_once(), 1, "two replicas ran the controller at once");

    second.shutdown.trigger();
    second.task.await.expect("joins").expect("stops cleanly");
    assert_eq!(activity.active(), 0);
}

#[tokio::test]
async fn graceful_shutdown_hands_the_lease_over_before_it_expires() {
    let cluster = support::cluster().await;
    let client = cluster.client().expect("client");
    let activity = Arc::new(Activity::default());
    // Renewed every 20s, so the old lease expires 10 to 30 seconds after the handover starts.
    let lease_duration = Duration::from_secs(30);

    let first = start_replica(&client, 0, lease_duration, &activity);
    eventually("the first replica leads", || async { (activity.terms(0) == 1).then_some(()) }).await;
    let second = start_replica(&client, 1, lease_duration, &activity);
    eventually("the second replica stands by", || async { second.status.is_ready().then_some(()) }).await;

    let stopping = Instant::now();
    first.shutdown.trigger();
    first.task.await.expect("joins").expect("the leader stops cleanly");
    assert!(!first.status.is_leading());
    eventually("the standby takes over", || async { (activity.terms(1) == 1).then_some(()) }).await;
    let handover = stopping.elapsed();
    println!("handover after a graceful shutdown: {} ms", handover.as_millis());
    assert!(handover < Duration::from_secs(10), "the standby waited for the lease to expire: {handover:?}");
    let spec = lease_spec(&client).await.expect("lease");
    assert_eq!(spec.holder_identity.as_deref(), Some(second.identity.as_str()));
    assert_eq!(activity.most_at_once(), 1, "two replicas ran the controller at once");

    second.shutdown.trigger();
    second.task.await.expect("joins").expect("stops cleanly");
    let spec = lease_spec(&client).await.expect("lease");
    assert_eq!(spec.holder_identity, None, "the last leader released the lease");
}

#[tokio::test]
async fn controller_stops_when_another_holder_takes_the_lease() {
    let cluster = support::cluster().await;
    let client = cluster.client().expect("client");
    let activity = Arc::new(Activity::default());

    let replica = start_replica(&client, 0, Duration::from_secs(2), &activity);
    eventually("the replica leads", || async { (activity.terms(0) == 1).then_some(()) }).await;

    let intruder = serde_json::json!({"spec": {
        "holderIdentity": "intruder",
        "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now()),
        "leaseDurationSeconds": 3600,
    }});
    Api::<Lease>::namespaced(client.clone(), "default")
        .patch(LEASE, &PatchParams::default(), &Patch::Merge(&intruder))
        .await
        .expect("patch lease");

    eventually("the controller stops", || async { (activity.active() == 0).then_some(()) }).await;
    assert!(!replica.status.is_leading());
    assert!(!replica.task.is_finished(), "the replica stands by again");
    assert_eq!(activity.terms(0), 1);

    replica.shutdown.trigger();
    replica.task.await.expect("joins").expect("stops cleanly");
    let spec = lease_spec(&client).await.expect("lease");
    assert_eq!(spec.holder_identity.as_deref(), Some("intruder"), "a standby does not release");
}

#[tokio::test]
async fn a_controller_that_fails_ends_the_election_with_its_error_and_releases_the_lease() {
    let cluster = support::cluster().await;
    let client = cluster.client().expect("client");
    let lease = LeaseConfig {
        namespace: "default".into(),
        name: LEASE.into(),
        identity: "replica-0".into(),
        duration: Duration::from_secs(2),
    };
    let status = Arc::new(ElectionStatus::new(Gauge::default()));
    let (_trigger, signal) = shutdown::channel();
    let failing = |_stop: ShutdownSignal| async { Err::<(), _>(std::io::Error::other("watch failed")) };
    let error = run_with_leadership(client.clone(), lease, status.clone(), signal, failing)
        .await
        .expect_err("the controller failed");
    assert_eq!(error.to_string(), "the controller stopped on its own while leading: watch failed");
    assert!(!status.is_leading());
    assert_eq!(lease_spec(&client).await.expect("lease").holder_identity, None);
}

#[tokio::test]
async fn lease_durations_the_election_cannot_use_are_rejected() {
    let cluster = support::cluster().await;
    let client = cluster.client().expect("client");
    let lease = LeaseConfig {
        namespace: "default".into(),
        name: LEASE.into(),
        identity: "replica-0".into(),
        duration: Duration::from_secs(1),
    };
    let (_trigger, signal) = shutdown::channel();
    let never = |_stop: ShutdownSignal| async { Ok::<(), std::io::Error>(()) };
    let error = run_with_leadership(client, lease, Arc::new(ElectionStatus::new(Gauge::default())), signal, never)
        .await
        .expect_err("too short");
    assert_eq!(error.to_string(), "lease duration: must be at least 2s, got 1s");
}

/// One HTTP/1.1 GET over a fresh connection: status code, headers, body.
async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("receive");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status code");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn http_endpoints_report_health_readiness_and_leadership() {
    let cluster = support::cluster().await;
    let client = cluster.client().expect("client");
    let metrics = Arc::new(Metrics::default());
    let status = Arc::new(ElectionStatus::new(metrics.leader.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop_http, http_stopped) = shutdown::channel();
    let server =
        tokio::spawn(http::serve(listener, http::router(metrics.clone(), status.clone()), http_stopped.wait()));

    assert_eq!(get(address, "/healthz").await.0, 200);
    assert_eq!(get(address, "/healthz").await.2, "ok");
    let (code, _, body) = get(address, "/readyz").await;
    assert_eq!(code, 503, "not ready before the election reached the API server");
    assert!(body.contains("not ready"), "{body}");
    assert_eq!(get(address, "/nothing").await.0, 404);

    let lease = LeaseConfig {
        namespace: "default".into(),
        name: LEASE.into(),
        identity: "replica-0".into(),
        duration: Duration::from_secs(2),
    };
    let (stop_election, election_stopped) = shutdown::channel();
    let controller = |stop: ShutdownSignal| async move {
        stop.wait().await;
        Ok::<(), std::io::Error>(())
    };
    let election = tokio::spawn(run_with_leadership(client, lease, status.clone(), election_stopped, controller));

    eventually("ready and leading", || async {
        let (code, headers, body) = get(address, "/metrics").await;
        assert_eq!(code, 200);
        assert!(headers.contains(&format!("content-type: {}", http::OPENMETRICS_CONTENT_TYPE)), "{headers}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        let (ready, _, ready_body) = get(address, "/readyz").await;
        (body.contains("\nreview_operator_leader 1\n") && ready == 200 && ready_body == "ok").then_some(())
    })
    .await;

    stop_election.trigger();
    election.await.expect("joins").expect("stops cleanly");
    let (_, _, body) = get(address, "/metrics").await;
    assert!(body.contains("\nreview_operator_leader 0\n"), "{body}");

    stop_http.trigger();
    server.await.expect("joins").expect("serves until shutdown");
}

#[tokio::test]
async fn the_controllers_client_counts_its_requests_by_verb_and_resource() {
    let cluster = support::cluster().await;
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    let metrics = Arc::new(Metrics::default());
    let client =
        review_operator::controller::api_requests::counted_client(config, metrics.clone()).expect("counted client");
    let leases: Api<Lease> = Api::namespaced(client, "default");
    let lease =
        Lease { metadata: kube::api::ObjectMeta { name: Some("counted".into()), ..Default::default() }, spec: None };
    leases.create(&kube::api::PostParams::default(), &lease).await.expect("create");
    leases.get("counted").await.expect("get");
    leases.list(&kube::api::ListParams::default()).await.expect("list");
    leases.list(&kube::api::ListParams::default()).await.expect("list again");
    let renew = serde_json::json!({"spec": {"holderIdentity": "replica-0"}});
    leases.patch("counted", &PatchParams::default(), &Patch::Merge(&renew)).await.expect("patch");
    leases.delete("counted", &kube::api::DeleteParams::default()).await.expect("delete");
    // A refused request is a request too.
    assert!(leases.get("counted").await.is_err(), "deleted");

    let text = metrics.encode();
    for (verb, count) in [("create", 1), ("get", 2), ("list", 2), ("patch", 1), ("delete", 1)] {
        let line = format!("review_operator_api_requests_total{{verb=\"{verb}\",resource=\"leases\"}} {count}\n");
        assert!(text.contains(&line), "expected {line:?} in\n{text}");
    }
}
