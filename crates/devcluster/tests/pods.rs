//! The local pod runner with real processes and the real kubectl: lifecycle, logs, deletion,
//! restarts, environment, init containers and pod-bound identities.

mod support;

use devcluster::runner::RunnerSettings;
use devcluster::runner::backoff::Backoff;
use devcluster::{Config, DevCluster};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::time::Duration;
use support::{phase, pod_when, pods};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn fast_cluster() -> DevCluster {
    let runner = RunnerSettings {
        backoff: Backoff { base: Duration::from_millis(100), cap: Duration::from_millis(400) },
        ..RunnerSettings::default()
    };
    DevCluster::start(Config { runner, ..Config::default() }).await.expect("dev cluster starts")
}

async fn create(cluster: &DevCluster, pod: Value) -> Pod {
    let pod: Pod = serde_json::from_value(pod).unwrap();
    pods(cluster).create(&PostParams::default(), &pod).await.unwrap()
}

fn shell_pod(name: &str, script: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}
    })
}

/// Process ids whose process group is `pgid`, read from /proc.
fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|stat| {
                // Fields after the parenthesised command: state ppid pgrp ...
                let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                let fields: Vec<&str> = rest.split_whitespace().collect();
                fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && fields.first() != Some(&"Z")
            })
        })
        .collect()
}

async fn logs(cluster: &DevCluster, args: &[&str]) -> String {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    support::kubectl(cluster, &all).await.ok()
}

/// The process group a shell pod reported with `echo pid $$$$` (`$$` is an escaped `$` in a pod's command).
async fn reported_pgid(cluster: &DevCluster, pod: &str) -> i32 {
    support::eventually("the pod reports its pid", || async {
        let out = support::kubectl(cluster, &["logs", pod]).await;
        out.stdout.lines().find_map(|l| l.strip_prefix("pid ")).and_then(|p| p.trim().parse().ok())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_loop_runs_streams_logs_and_delete_ends_its_process_group() {
    let cluster = fast_cluster().await;
    let mut pod = shell_pod("loop", "echo pid $$$$; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done");
    pod["spec"]["terminationGracePeriodSeconds"] = json!(5);
    create(&cluster, pod).await;
    let running = pod_when(&cluster, "loop", "Running", |p| phase(p) == "Running").await;
    assert_eq!(running["spec"]["nodeName"], "devcluster");
    assert_eq!(running["status"]["podIP"], "127.0.0.1");
    assert_eq!(running["status"]["hostIP"], "127.0.0.1");
    assert!(running["status"]["startTime"].is_string());
    let status = &running["status"]["containerStatuses"][0];
    assert_eq!((status["name"].as_str(), status["image"].as_str()), (Some("main"), Some("busybox")));
    assert_eq!((status["started"].as_bool(), status["ready"].as_bool()), (Some(true), Some(true)));
    assert_eq!(status["restartCount"], 0);
    assert!(status["state"]["running"]["startedAt"].is_string());
    let conditions: Vec<(String, String)> = running["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect();
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(conditions.contains(&(kind.to_string(), "True".to_string())), "{kind} in {conditions:?}");
    }

    // `kubectl logs -f` streams new lines as the loop prints them.
    let mut follow = tokio::process::Command::new(support::kubectl_path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["logs", "-f", "loop"])
        .env("HOME", std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line == "tick 5";
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .expect("kubectl logs -f streams the loop's output");
    assert_eq!(seen.first().map(|l| l.starts_with("pid ")), Some(true), "{seen:?}");
    assert!(seen.contains(&"tick 5".to_string()), "{seen:?}");

    let tail = logs(&cluster, &["loop", "--tail", "1"]).await;
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("tick "), "{tail}");
    let stamped = logs(&cluster, &["loop", "--tail", "1", "--timestamps"]).await;
    assert!(stamped.split_once(' ').is_some_and(|(t, rest)| t.contains('T') && rest.starts_with("tick")), "{stamped}");

    let pgid = reported_pgid(&cluster, "loop").await;
    assert!(!group_members(pgid).is_empty(), "the loop's process group is alive");
    support::kubectl(&cluster, &["delete", "pod", "loop", "--wait"]).await.ok();
    assert!(pods(&cluster).get_opt("loop").await.unwrap().is_none());
    support::eventually("the process group ends", || async { group_members(pgid).is_empty().then_some(()) }).await;
    // The `-f` stream ends with the container.
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        while lines.next_line().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(rest.is_ok(), "kubectl logs -f ends when the container ends");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_delete_keeps_the_object_until_the_processes_end() {
    let cluster = fast_cluster().await;
    // The shell ignores SIGTERM, so only the SIGKILL after the grace period ends it.
    let mut pod = shell_pod("stubborn", "trap '' TERM; echo pid $$$$; while true; do sleep 0.1; done");
    pod["spec"]["terminationGracePeriodSeconds"] = json!(2);
    create(&cluster, pod).await;
    pod_when(&cluster, "stubborn", "Running", |p| phase(p) == "Running").await;
    let pgid = reported_pgid(&cluster, "stubborn").await;
    support::kubectl(&cluster, &["delete", "pod", "stubborn", "--wait=false"]).await.ok();
    let deleting = pods(&cluster).get("stubborn").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(deleting.metadata.deletion_grace_period_seconds, Some(2));
    support::eventually("the pod object goes", || async {
        pods(&cluster).get_opt("stubborn").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(group_members(pgid).is_empty(), "no process of the group outlives the pod");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_fail_the_pod_and_on_failure_restarts_with_previous_logs() {
    let cluster = fast_cluster().await;
    create(&cluster, shell_pod("three", "echo bye; exit 3")).await;
    let failed = pod_when(&cluster, "three", "Failed", |p| phase(p) == "Failed").await;
    let terminated = &failed["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 3);
    assert_eq!(terminated["reason"], "Error");
    assert!(terminated["startedAt"].is_string() && terminated["finishedAt"].is_string());
    assert_eq!(logs(&cluster, &["three"]).await, "bye\n");
    let err = support::kubectl(&cluster, &["logs", "three", "--previous"]).await.failed();
    assert!(err.contains("previous terminated container \"main\" in pod \"three\" not found"), "{err}");
    let err = support::kubectl(&cluster, &["logs", "three", "-c", "nope"]).await.failed();
    assert!(err.contains("container nope is not valid for pod three"), "{err}");
    let err = support::kubectl(&cluster, &["get", "--raw", "/api/v1/namespaces/default/pods/ghost/log"]).await.failed();
    assert!(err.contains("pods \"ghost\" not found"), "{err}");
    let err = support::kubectl_with(
        &cluster,
        &["create", "--raw", "/api/v1/namespaces/default/pods/three/log", "-f", "-"],
        Some("{}"),
        &[],
    )
    .await
    .failed();
    assert!(err.contains("the server does not allow this method on the requested resource"), "{err}");
    let err = support::kubectl(&cluster, &["get", "--raw", "/api/v1/namespaces/default/pods/three/log?tailLines=x"])
        .await
        .failed();
    assert!(err.contains("invalid value for tailLines: \"x\" is not a non-negative integer"), "{err}");

    let missing_binary = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nobinary"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x", "command": ["/nonexistent/tool"]}]}
    });
    create(&cluster, missing_binary).await;
    let failed = pod_when(&cluster, "nobinary", "Failed", |p| phase(p) == "Failed").await;
    let terminated = &failed["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!((terminated["exitCode"].as_i64(), terminated["reason"].as_str()), (Some(128), Some("StartError")));
    let message = terminated["message"].as_str().unwrap();
    assert!(message.starts_with("failed to start container \"main\": "), "{message}");

    create(&cluster, shell_pod("zero", "exit 0")).await;
    let done = pod_when(&cluster, "zero", "Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(done["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");

    let mut flaky = shell_pod("flaky", "echo run at $(date +%s%N); exit 1");
    flaky["spec"]["restartPolicy"] = json!("OnFailure");
    create(&cluster, flaky).await;
    let restarted = pod_when(&cluster, "flaky", "restartCount 3", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) >= 3
    })
    .await;
    let last = &restarted["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!((last["exitCode"].as_i64(), last["reason"].as_str()), (Some(1), Some("Error")));
    assert_eq!(phase(&restarted), "Running");
    let previous = logs(&cluster, &["flaky", "--previous"]).await;
    assert!(previous.starts_with("run at "), "{previous}");
    let backing_off = pod_when(&cluster, "flaky", "CrashLoopBackOff", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })
    .await;
    let message = backing_off["status"]["containerStatuses"][0]["state"]["waiting"]["message"].as_str().unwrap();
    assert!(message.starts_with("back-off "), "{message}");
    assert!(message.contains("restarting failed container=main pod=flaky_default("), "{message}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_init_containers_and_missing_commands() {
    let cluster = fast_cluster().await;
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"}, "data": {"api": "czNjcjN0"}});
    support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(&secret.to_string()), &[]).await.ok();
    let mut env_pod = shell_pod("env", "echo \"$NAME/$NS/$SA/$APP/$IP/$KEY/$LIT\"; pwd");
    env_pod["metadata"]["labels"] = json!({"app": "web"});
    env_pod["spec"]["containers"][0]["env"] = json!([
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "api"}}},
        {"name": "LIT", "value": "x-$(NAME)"}
    ]);
    env_pod["spec"]["initContainers"] = json!([
        {"name": "first", "image": "busybox", "command": ["sh", "-c", "echo one > marker"]},
        {"name": "second", "image": "busybox", "command": ["sh", "-c", "echo two >> marker"]}
    ]);
    env_pod["spec"]["containers"][0]["workingDir"] = json!(std::env::temp_dir());
    create(&cluster, env_pod).await;
    let done = pod_when(&cluster, "env", "Succeeded or Failed", |p| matches!(phase(p), "Succeeded" | "Failed")).await;
    let init = done["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(init.len(), 2);
    assert!(init.iter().all(|c| c["state"]["terminated"]["reason"] == "Completed"), "{init:?}");
    let out = logs(&cluster, &["env"]).await;
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("env/default/default/web/127.0.0.1/s3cr3t/x-env"));
    // workingDir is honoured.
    assert_eq!(out.lines().last(), Some(std::env::temp_dir().to_str().unwrap().trim_end_matches('/')));

    let shared = shell_pod("shared", "cat marker");
    let mut shared = shared;
    shared["spec"]["initContainers"] =
        json!([{"name": "init", "image": "busybox", "command": ["sh", "-c", "echo from-init > marker"]}]);
    create(&cluster, shared).await;
    pod_when(&cluster, "shared", "Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(logs(&cluster, &["shared"]).await, "from-init\n");

    let mut failing_init = shell_pod("badinit", "echo never");
    failing_init["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox", "command": ["false"]}]);
    create(&cluster, failing_init).await;
    let failed = pod_when(&cluster, "badinit", "Failed", |p| phase(p) == "Failed").await;
    assert_eq!(failed["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 1);
    assert_eq!(failed["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "PodInitializing");

    create(
        &cluster,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nocmd"},
               "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
    )
    .await;
    let waiting = pod_when(&cluster, "nocmd", "a waiting reason", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    let message = waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"].as_str().unwrap();
    assert!(message.starts_with("spec.containers[0].command: Required value"), "{message}");
    assert!(message.contains("\"nginx\""), "{message}");
    assert_eq!(phase(&waiting), "Pending");

    let mut missing = shell_pod("nosecret", "true");
    missing["spec"]["containers"][0]["env"] =
        json!([{"name": "K", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]);
    create(&cluster, missing).await;
    let waiting = pod_when(&cluster, "nosecret", "a config error", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    assert_eq!(waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"], "secret \"absent\" not found");
    let err = support::kubectl(&cluster, &["logs", "nosecret"]).await.failed();
    assert!(
        err.contains("container \"main\" in pod \"nosecret\" is waiting to start: CreateContainerConfigError"),
        "{err}"
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_authenticate_as_their_service_account_until_deleted() {
    let cluster = fast_cluster().await;
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}});
    support::kubectl_with(&cluster, &["apply", "-f", "-"], Some(&sa.to_string()), &[]).await.ok();
    let sa_uid = support::kubectl(&cluster, &["get", "sa", "robot", "-o", "jsonpath={.metadata.uid}"]).await.ok();
    let script = "\"$KUBECTL\" auth whoami -o json; echo; echo TOKEN=$(sed -n 's/^ *token: //p' \"$KUBECONFIG\"); echo HOST=$KUBERNETES_SERVICE_HOST; sleep 600";
    let mut pod = shell_pod("agent", script);
    pod["spec"]["serviceAccountName"] = json!("robot");
    pod["spec"]["containers"][0]["env"] =
        json!([{"name": "KUBECTL", "value": support::kubectl_path().display().to_string()}]);
    let created = create(&cluster, pod).await;
    let pod_uid = created.metadata.uid.unwrap();
    let out = support::eventually("whoami output", || async {
        let out = support::kubectl(&cluster, &["logs", "agent"]).await.stdout;
        out.contains("TOKEN=").then_some(out)
    })
    .await;
    let json_end = out.find("\nTOKEN=").unwrap();
    let review: Value = serde_json::from_str(out[..json_end].trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let user = &review["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:default:robot");
    assert_eq!(user["uid"], sa_uid.as_str());
    assert_eq!(
        user["groups"],
        json!(["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"])
    );
    assert_eq!(user["extra"]["authentication.kubernetes.io/pod-name"], json!(["agent"]));
    assert_eq!(user["extra"]["authentication.kubernetes.io/pod-uid"], json!([pod_uid]));
    assert_eq!(user["extra"]["authentication.kubernetes.io/node-name"], json!(["devcluster"]));
    assert!(out.contains("HOST=127.0.0.1"), "{out}");
    let token = out.lines().find_map(|l| l.strip_prefix("TOKEN=")).unwrap().trim().to_string();
    assert_eq!(token.len(), 32, "{out}");

    let whoami = support::kubectl(&cluster, &["auth", "whoami", "--token", &token]).await.ok();
    assert!(whoami.contains("system:serviceaccount:default:robot"), "{whoami}");
    support::kubectl(&cluster, &["delete", "pod", "agent", "--grace-period=1"]).await.ok();
    let err = support::kubectl(&cluster, &["auth", "whoami", "--token", &token]).await.failed();
    assert!(err.contains("Unauthorized"), "{err}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_kills_every_pod_process() {
    let cluster = fast_cluster().await;
    for name in ["one", "two"] {
        create(&cluster, shell_pod(name, "echo pid $$$$; sleep 600 & wait")).await;
    }
    let mut groups = Vec::new();
    for name in ["one", "two"] {
        pod_when(&cluster, name, "Running", |p| phase(p) == "Running").await;
        let pgid = reported_pgid(&cluster, name).await;
        support::eventually("the sleep child starts", || async { (group_members(pgid).len() >= 2).then_some(()) })
            .await;
        groups.push(pgid);
    }
    cluster.shutdown().await.unwrap();
    for pgid in groups {
        support::eventually("the pod's process group ends", || async { group_members(pgid).is_empty().then_some(()) })
            .await;
    }

    // Dropping the cluster without shutdown kills its pods as well.
    let cluster = fast_cluster().await;
    create(&cluster, shell_pod("dropped", "echo pid $$$$; exec sleep 600")).await;
    pod_when(&cluster, "dropped", "Running", |p| phase(p) == "Running").await;
    let pgid = reported_pgid(&cluster, "dropped").await;
    assert!(!group_members(pgid).is_empty());
    drop(cluster);
    support::eventually("the dropped cluster's pod ends", || async { group_members(pgid).is_empty().then_some(()) })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_containers_get_a_pseudo_terminal() {
    let cluster = fast_cluster().await;
    let mut pod = shell_pod("tty", "if [ -t 0 ] && [ -t 1 ]; then echo on-a-tty; else echo no-tty; fi");
    pod["spec"]["containers"][0]["stdin"] = json!(true);
    pod["spec"]["containers"][0]["tty"] = json!(true);
    create(&cluster, pod).await;
    pod_when(&cluster, "tty", "Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(logs(&cluster, &["tty"]).await.trim_end(), "on-a-tty");
    cluster.shutdown().await.unwrap();
}

/// Set in the environment of the copy of this test binary that plays the host process: the folder
/// for its kubeconfig and pod folders (a killed host cannot remove them; the test does).
const HOST_ROLE: &str = "DEVCLUSTER_TEST_HOST_ROLE";

/// As the host: runs a cluster with a piped and a terminal pod, prints their process groups and
/// waits to be killed.
async fn act_as_host(dir: std::path::PathBuf) {
    let runner = RunnerSettings { pod_dir: Some(dir.join("pods")), ..RunnerSettings::default() };
    let config = Config { kubeconfig_path: Some(dir.join("kubeconfig")), runner, ..Config::default() };
    let cluster = DevCluster::start(config).await.expect("dev cluster starts");
    for (name, tty) in [("piped", false), ("terminal", true)] {
        let mut pod = shell_pod(name, "echo pid $$$$; exec sleep 600");
        pod["spec"]["containers"][0]["stdin"] = json!(tty);
        pod["spec"]["containers"][0]["tty"] = json!(tty);
        create(&cluster, pod).await;
        pod_when(&cluster, name, "Running", |p| phase(p) == "Running").await;
        println!("PGID={}", reported_pgid(&cluster, name).await);
    }
    println!("READY");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_process_ends_its_pods() {
    if let Some(dir) = std::env::var_os(HOST_ROLE) {
        return act_as_host(dir.into()).await;
    }
    for signal in [libc::SIGKILL, libc::SIGTERM, libc::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let mut host = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["killing_the_host_process_ends_its_pods", "--exact", "--nocapture"])
            .env(HOST_ROLE, dir.path())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(host.stdout.take().unwrap()).lines();
        let groups = tokio::time::timeout(Duration::from_secs(60), async {
            let mut groups = Vec::new();
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(pgid) = line.strip_prefix("PGID=") {
                    groups.push(pgid.parse::<i32>().unwrap());
                }
                if line == "READY" {
                    break;
                }
            }
            groups
        })
        .await
        .expect("the host process starts its pods");
        assert_eq!(groups.len(), 2);
        assert!(groups.iter().all(|g| !group_members(*g).is_empty()));
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(host.id().unwrap() as i32, signal) };
        let status = host.wait().await.unwrap();
        assert!(!status.success());
        for pgid in groups {
            support::eventually("the pod's process group ends with its host", || async {
                group_members(pgid).is_empty().then_some(())
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_is_ready_and_a_disabled_runner_leaves_pods_pending() {
    let cluster = fast_cluster().await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client().unwrap());
    let node = nodes.get("devcluster").await.unwrap();
    let status = node.status.unwrap();
    let ready = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("True", Some("KubeletReady")));
    assert_eq!(status.addresses.unwrap()[0].address, "127.0.0.1");
    cluster.shutdown().await.unwrap();

    let off = RunnerSettings { enabled: false, ..RunnerSettings::default() };
    let cluster = DevCluster::start(Config { runner: off, ..Config::default() }).await.unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client().unwrap());
    assert!(nodes.get_opt("devcluster").await.unwrap().is_none());
    create(&cluster, shell_pod("idle", "true")).await;
    let pod = serde_json::to_value(pods(&cluster).get("idle").await.unwrap()).unwrap();
    assert_eq!(phase(&pod), "Pending");
    assert!(pod["spec"]["nodeName"].is_null());
    // An unbound pod is deleted at once, as on a real cluster.
    let out = support::kubectl(&cluster, &["delete", "pod", "idle", "--wait=false"]).await.ok();
    assert_eq!(out.trim(), "pod \"idle\" deleted from default namespace");
    assert!(pods(&cluster).get_opt("idle").await.unwrap().is_none());
    cluster.shutdown().await.unwrap();
}

/// A pod labelled `app=web` on the dev cluster's node, marked Running and Ready (`healthy`) or
/// left Pending, as no kubelet runs it here.
async fn web_pod(client: &kube::Client, name: &str, healthy: bool) {
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "devcluster", "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.expect("pod created");
    if healthy {
        let status = serde_json::json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("status");
    }
}

#[tokio::test]
async fn evictions_respect_the_pods_disruption_budget() {
    use kube::api::{Api, PostParams};
    let cluster = support::cluster_without_pods().await;
    let client = cluster.client().expect("client");
    for (name, healthy) in [("web-1", true), ("web-2", true), ("web-pending", false)] {
        web_pod(&client, name, healthy).await;
    }
    let budgets: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let budget = |name: &str, min: serde_json::Value| {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name},
            "spec": {"minAvailable": min, "selector": {"matchLabels": {"app": "web"}}}}))
        .unwrap()
    };
    budgets.create(&PostParams::default(), &budget("web", serde_json::json!(2))).await.expect("budget");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    // Through kubectl (client-go retries a 429 only when it says when): the pods' own grace
    // period is 0, so an eviction removes them at once (no kubelet runs here).
    let evict = |name: &'static str| {
        let cluster = &cluster;
        async move {
            let eviction =
                serde_json::json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}});
            let path = format!("/api/v1/namespaces/default/pods/{name}/eviction");
            support::kubectl_with(cluster, &["create", "--raw", &path, "-f", "-"], Some(&eviction.to_string()), &[])
                .await
        }
    };

    // Two healthy pods and a budget of two: a healthy one may not go, a pending one may.
    let refused = evict("web-1").await.failed();
    assert!(refused.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{refused}");
    let evicted: serde_json::Value = serde_json::from_str(&evict("web-pending").await.ok()).expect("a Status");
    assert_eq!(
        (evicted["status"].clone(), evicted["code"].clone()),
        (serde_json::json!("Success"), serde_json::json!(201))
    );
    assert!(pods.get_opt("web-pending").await.unwrap().is_none());

    // A budget of 50% of two: one may go, then no more.
    budgets.delete("web", &Default::default()).await.expect("deleted");
    budgets.create(&PostParams::default(), &budget("web", serde_json::json!("50%"))).await.expect("budget");
    evict("web-1").await.ok();
    assert!(evict("web-2").await.failed().contains("would violate the pod's disruption budget"));

    // Two budgets over one pod: the eviction subresource refuses to choose.
    budgets.create(&PostParams::default(), &budget("web-too", serde_json::json!(0))).await.expect("budget");
    assert!(evict("web-2").await.failed().contains("more than one PodDisruptionBudget"));
    assert!(evict("nobody").await.failed().contains("pods \"nobody\" not found"));
}

/// `kubectl exec` runs a command as one more process of a running container, over WebSocket:
/// its output, its input, its exit code and the container's environment and folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_runs_commands_in_a_running_container() {
    let cluster = fast_cluster().await;
    let mut pod = shell_pod("shell", "pwd; exec sleep 600");
    pod["spec"]["containers"][0]["env"] = json!([{"name": "GREETING", "value": "hello"}]);
    create(&cluster, pod).await;
    pod_when(&cluster, "shell", "Running", |p| phase(p) == "Running").await;

    let out = support::kubectl(&cluster, &["exec", "shell", "--", "sh", "-c", "echo $GREETING; echo oops >&2"]).await;
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "hello\n", "oops\n"), "{out:?}");
    let failed = support::kubectl(&cluster, &["exec", "shell", "--", "sh", "-c", "exit 3"]).await;
    assert_eq!(failed.code, 3, "kubectl exits with the command's code: {failed:?}");
    assert!(failed.stderr.contains("command terminated with exit code 3"), "{}", failed.stderr);
    let echoed =
        support::kubectl_with(&cluster, &["exec", "-i", "shell", "--", "tr", "a-z", "A-Z"], Some("piped in\n"), &[])
            .await;
    assert_eq!((echoed.code, echoed.stdout.as_str()), (0, "PIPED IN\n"), "{echoed:?}");
    let cwd = support::kubectl(&cluster, &["exec", "shell", "-c", "main", "--", "pwd"]).await.ok();
    let own = support::eventually("the container prints its folder", || async {
        let printed = logs(&cluster, &["shell"]).await;
        (!printed.is_empty()).then_some(printed)
    })
    .await;
    assert_eq!(cwd, own, "the command runs in the container's folder");

    let missing = support::kubectl(&cluster, &["exec", "shell", "--", "no-such-command"]).await.failed();
    assert!(missing.contains("no-such-command"), "{missing}");
    let wrong = support::kubectl(&cluster, &["exec", "shell", "-c", "other", "--", "ls"]).await.failed();
    assert!(wrong.contains("container other is not valid for pod shell"), "{wrong}");

    // Without a WebSocket upgrade (SPDY, or a plain request) there is no stream; with no command,
    // no exec.
    let client = cluster.client().unwrap();
    let path = "/api/v1/namespaces/default/pods/shell/exec?command=ls&stdout=true";
    let plain = support::send_raw(&client, "POST", path, &[], Vec::new()).await.unwrap();
    assert!(plain.status(400, "BadRequest").starts_with("Upgrade request required"));
    let path = "/api/v1/namespaces/default/pods/shell/exec?stdout=true";
    let no_command = support::send_raw(&client, "GET", path, &[], Vec::new()).await.unwrap();
    assert_eq!(no_command.status(400, "BadRequest"), "you must specify at least 1 command");

    // `attach` relays what the container prints from then on.
    create(&cluster, shell_pod("ticker", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")).await;
    pod_when(&cluster, "ticker", "Running", |p| phase(p) == "Running").await;
    let mut attach = tokio::process::Command::new(support::kubectl_path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["attach", "ticker"])
        .env("HOME", std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl attach starts");
    let mut lines = BufReader::new(attach.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    let first = first.expect("a line within 30 s").expect("readable").expect("a line");
    assert!(first.starts_with("tick "), "{first}");
    let _ = attach.kill().await;
    cluster.shutdown().await.unwrap();
}
