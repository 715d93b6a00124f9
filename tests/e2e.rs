//! End to end on the dev cluster with real pods: the controller, the in-pod supervisor, the demo
//! agent and the `submit` command, under the RBAC and admission policy from `deploy/`.
//!
//! Each test starts its own cluster (pods run as local processes), installs what ships
//! (`dev::manifests::install`), binds the reviewer service account `review-agent` in namespace
//! `demo` (`examples/reviewer-rolebinding-demo.yaml`), runs the controller in-process and creates
//! runs as a CI bot would. Everything waits on polls with generous deadlines.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

mod git_fixture;
mod github;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use devcluster::DevCluster;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use review_operator::api::{
    AgentSpec, CONDITION_DEGRADED, PullRequest, ReviewRun, ReviewRunSpec, ReviewTranscript, Reviewer, ReviewerSpec,
    RunPhase, RunReason, TranscriptRetention, Verdict, WorkspaceSpec, conditions,
};
use review_operator::controller::{AgentLaunch, ControllerSettings};
use review_operator::metrics::Metrics;
use serde_json::json;
use support::Output;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const NAMESPACE: &str = "demo";
const BINARY: &str = env!("CARGO_BIN_EXE_review-operator");
const PR1: &str = "https://github.com/acme/widgets/pull/1";
const PR2: &str = "https://github.com/acme/widgets/pull/2";
const PR3: &str = "https://github.com/acme/widgets/pull/3";
const SHA_A: &str = "aaaaaaa1111111";
const SHA_B: &str = "bbbbbbb2222222";
const SHA_C: &str = "ccccccc3333333";
/// The reviewer service account's user name, as its pod-bound token authenticates.
const REVIEWER_USER: &str = "system:serviceaccount:demo:review-agent";

/// A cluster running pods, with the manifests installed and the controller running.
struct E2e {
    cluster: DevCluster,
    client: Client,
    stop: oneshot::Sender<()>,
    controller: JoinHandle<Result<(), review_operator::controller::ControllerError>>,
    /// Copies of pod kubeconfigs, removed at the end.
    scratch: PathBuf,
}

impl E2e {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// As [`E2e::start`], with the controller delivering verdicts to GitHub as `delivery` says.
    async fn start_with(delivery: Option<review_operator::delivery::DeliverySettings>) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let cluster = support::cluster().await;
        let client = cluster.client().expect("client");
        review_operator::dev::manifests::install(&client).await.expect("CRDs and policies installed");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
        namespaces.create(&PostParams::default(), &ns).await.expect("namespace created");
        review_operator::dev::manifests::apply(
            &client,
            "examples/reviewer-rolebinding-demo.yaml",
            include_str!("../examples/reviewer-rolebinding-demo.yaml"),
        )
        .await
        .expect("reviewer service account bound");
        let settings = ControllerSettings {
            field_manager: "review-operator".into(),
            debounce: Duration::from_millis(100),
            concurrency: review_operator::controller::RECOMMENDED_CONCURRENCY,
            agent: AgentLaunch::LocalBinary { path: BINARY.into() },
            delivery,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let controller = tokio::spawn(review_operator::controller::run(
            client.clone(),
            settings,
            Arc::new(Metrics::default()),
            shutdown,
        ));
        let scratch = std::env::temp_dir().join(format!("review-e2e-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&scratch).expect("scratch folder");
        Self { cluster, client, stop, controller, scratch }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.controller.await.expect("controller task").expect("controller ends cleanly");
        self.cluster.shutdown().await.expect("cluster shuts down");
        let _ = std::fs::remove_dir_all(&self.scratch);
    }

    fn runs(&self) -> Api<ReviewRun> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    fn reviewers(&self) -> Api<Reviewer> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// A Reviewer whose agent is the demo agent with `demo_args`.
    async fn create_reviewer(&self, name: &str, demo_args: &[&str]) {
        self.create_reviewer_with(name, demo_agent(demo_args), "5m").await;
    }

    async fn create_reviewer_with(&self, name: &str, agent: AgentSpec, launch_deadline: &str) {
        self.create_reviewer_spec(name, agent, launch_deadline, None).await;
    }

    async fn create_reviewer_spec(
        &self,
        name: &str,
        agent: AgentSpec,
        launch_deadline: &str,
        workspace: Option<WorkspaceSpec>,
    ) {
        let mut reviewer = Reviewer::new(
            name,
            ReviewerSpec {
                launch_deadline: launch_deadline.into(),
                workspace,
                ..ReviewerSpec::new(name.trim_start_matches("review-"), agent)
            },
        );
        reviewer.metadata.namespace = Some(NAMESPACE.into());
        self.reviewers().create(&PostParams::default(), &reviewer).await.expect("Reviewer created");
    }

    /// Creates the run a CI bot creates for a push.
    async fn trigger(&self, name: &str, reviewer: &str, pr: &str, sha: &str) {
        self.trigger_pull_request(name, reviewer, PullRequest::new(pr, sha)).await;
    }

    async fn trigger_pull_request(&self, name: &str, reviewer: &str, pull_request: PullRequest) {
        let run = ReviewRun::new(
            name,
            ReviewRunSpec {
                reviewer: reviewer.into(),
                pull_request,
                cancel_requested: false,
                timeout: "10m".into(),
                ttl_seconds_after_finished: None,
            },
        );
        self.runs().create(&PostParams::default(), &run).await.expect("ReviewRun created");
    }

    async fn run(&self, name: &str) -> ReviewRun {
        self.runs().get(name).await.expect("run exists")
    }

    async fn wait_run(&self, name: &str, what: &str, check: impl Fn(&ReviewRun) -> bool) -> ReviewRun {
        let api = self.runs();
        let check = &check;
        eventually(&format!("run {name}: {what}"), || {
            let api = api.clone();
            async move { api.get(name).await.ok().filter(|run| check(run)) }
        })
        .await
    }

    /// Waits until the run is Running and returns its pod (name, UID).
    async fn wait_running(&self, name: &str) -> (String, String) {
        let run = self.wait_run(name, "Running", |run| run.phase() == RunPhase::Running).await;
        let assignment = run.status.and_then(|s| s.assignment).expect("a Running run is assigned");
        (assignment.pod, assignment.pod_uid)
    }

    async fn reviewer(&self, name: &str) -> Reviewer {
        self.reviewers().get(name).await.expect("Reviewer exists")
    }

    /// Waits until the pod's log (through the real `kubectl logs`) holds `needle`, and returns it.
    async fn wait_logs(&self, pod: &str, needle: &str) -> String {
        eventually(&format!("`{needle}` in the log of pod {pod}"), || async {
            let out = support::kubectl(&self.cluster, &["logs", "-n", NAMESPACE, pod]).await;
            (out.code == 0 && out.stdout.contains(needle)).then_some(out.stdout)
        })
        .await
    }

    async fn wait_pod_gone(&self, pod: &str) {
        let api = self.pods();
        eventually(&format!("pod {pod} to be deleted"), || {
            let api = api.clone();
            async move { matches!(api.get_opt(pod).await, Ok(None)).then_some(()) }
        })
        .await;
    }

    /// The processes of the pod with `uid`, once its supervisor and agent both run, and a copy of
    /// the pod's kubeconfig (the late agent's identity) under `label`.
    async fn pod_processes(&self, uid: &str, label: &str) -> (Vec<ProcessId>, PathBuf) {
        let processes = eventually(&format!("the processes of pod {uid}"), || async {
            let found = processes_of_pod(uid);
            // The supervisor (`review-operator agent`) and the demo agent in its terminal.
            let agent_running = found.iter().any(|p| p.cmdline.contains("demo-agent"))
                && found.iter().any(|p| p.cmdline.contains("\0agent\0"));
            agent_running.then_some(found)
        })
        .await;
        let kubeconfig = processes
            .iter()
            .find_map(|p| p.kubeconfig.clone())
            .expect("pod processes have KUBECONFIG in their environment");
        let copy = self.scratch.join(format!("{label}.kubeconfig"));
        std::fs::copy(&kubeconfig, &copy).expect("the pod's kubeconfig is readable");
        (processes.into_iter().map(|p| p.id).collect(), copy)
    }
}

/// The demo agent with `demo_args`, in an image the dev kubelet does not know.
fn demo_agent(demo_args: &[&str]) -> AgentSpec {
    let mut args = vec!["demo-agent".to_string()];
    args.extend(demo_args.iter().map(|a| a.to_string()));
    AgentSpec {
        image: "review-operator/demo-agent:local".into(),
        command: vec![BINARY.into()],
        args,
        env: Vec::new(),
        resources: None,
        harness: Some("demo-agent".into()),
        prompt: None,
        security_context: None,
    }
}

/// Polls `check` with a deadline generous enough for reviews of a few seconds on a busy machine.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One process, told apart from a later one with a reused pid by its start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProcessId {
    pid: i32,
    process_group: i32,
    start_time: u64,
}

impl ProcessId {
    fn read(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name: state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            return None;
        }
        Some(Self { pid, process_group: fields.get(2)?.parse().ok()?, start_time: fields.get(19)?.parse().ok()? })
    }

    fn alive(&self) -> bool {
        Self::read(self.pid).is_some_and(|now| now == *self)
    }
}

struct PodProcess {
    id: ProcessId,
    cmdline: String,
    kubeconfig: Option<PathBuf>,
}

/// Processes whose environment holds `POD_UID=<uid>`: a pod's containers get it from the downward
/// API, and everything they start inherits it.
fn processes_of_pod(uid: &str) -> Vec<PodProcess> {
    let marker = format!("POD_UID={uid}");
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let variables: Vec<String> =
                environ.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
            if !variables.contains(&marker) {
                return None;
            }
            let kubeconfig = variables.iter().find_map(|v| v.strip_prefix("KUBECONFIG=")).map(PathBuf::from);
            let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?).into_owned();
            Some(PodProcess { id: ProcessId::read(pid)?, cmdline, kubeconfig })
        })
        .collect()
}

/// Members of process group `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| ProcessId::read(*pid).is_some_and(|p| p.process_group == pgid))
        .collect()
}

/// Runs `review-operator submit` as an agent would, with the identity of `kubeconfig` (and no pod
/// environment: what is checked is what the API server enforces).
async fn submit(kubeconfig: &Path, run: &str, verdict: &str, body: Option<&str>) -> Output {
    let mut args = vec!["submit", run, "--verdict", verdict, "-n", NAMESPACE];
    if body.is_some() {
        args.extend(["--body-file", "-"]);
    }
    run_program(Path::new(BINARY), &args, kubeconfig, body).await
}

/// Runs the real kubectl with the identity of `kubeconfig`.
async fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")];
    all.extend(args);
    run_program(&support::kubectl_path(), &all, kubeconfig, None).await
}

async fn run_program(program: &Path, args: &[&str], kubeconfig: &Path, stdin: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().expect("a folder"))
        .env_remove("POD_UID")
        .env_remove("REVIEW_INCARNATION")
        .env_remove("REVIEW_NAMESPACE");
    support::run_command(cmd, stdin).await
}

/// A client with the identity of `kubeconfig` (a copy of a pod's).
async fn client_from(kubeconfig: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig loads");
    Client::try_from(config).expect("client")
}

/// The status patch a reviewer would send to approve `run`, bypassing the submit command's own
/// checks so that only the API server decides.
async fn raw_submit(client: &Client, run: &str) -> kube::Error {
    let runs: Api<ReviewRun> = Api::namespaced(client.clone(), NAMESPACE);
    let patch = json!({"status": {"phase": "Succeeded", "reason": "Submitted",
        "result": {"verdict": "Approved", "body": "", "submittedAt": "2026-01-01T00:00:00Z"}}});
    runs.patch_status(run, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect_err("the API server rejects the submission")
}

fn api_status(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other}"),
    }
}

fn queue_lines(log: &str) -> Vec<String> {
    log.lines().filter_map(review_operator::agent::demo::queued_run).collect()
}

#[tokio::test]
async fn a_triggered_run_is_prompted_reviewed_and_submitted_with_its_verdict() {
    let e2e = E2e::start().await;
    e2e.create_reviewer("review-w1", &["--review-seconds", "2"]).await;
    e2e.create_reviewer("review-w2", &["--review-seconds", "2", "--request-changes"]).await;
    e2e.trigger("review-w1-pr1-aaaaaaa", "review-w1", PR1, SHA_A).await;
    e2e.trigger("review-w2-pr2-bbbbbbb", "review-w2", PR2, SHA_B).await;

    let (pod1, _) = e2e.wait_running("review-w1-pr1-aaaaaaa").await;
    let (pod2, _) = e2e.wait_running("review-w2-pr2-bbbbbbb").await;
    assert_eq!(pod1, "review-w1-1");
    assert_eq!(pod2, "review-w2-1");

    let approved = e2e.wait_run("review-w1-pr1-aaaaaaa", "Succeeded", |run| run.phase() == RunPhase::Succeeded).await;
    let status = approved.status.clone().expect("status");
    assert_eq!(status.reason, Some(RunReason::Submitted));
    assert_eq!(status.message.as_deref(), Some("The review was submitted: Approved"));
    let result = status.result.expect("a result");
    assert_eq!(result.verdict, Verdict::Approved);
    assert_eq!(result.body, "");
    // The verdict was written by the submit command (its field manager) on the status subresource.
    let writer = approved.managed_fields().iter().find(|entry| {
        entry.subresource.as_deref() == Some("status") && entry.manager.as_deref() == Some("kubectl-review")
    });
    assert!(writer.is_some(), "the submit command wrote the status: {:?}", approved.managed_fields());

    let log = e2e.wait_logs(&pod1, "submit review-w1-pr1-aaaaaaa exited with 0").await;
    // The supervisor typed the prompt; the agent read it from its terminal and worked through it.
    assert!(log.contains("You are review-w1, the code reviewer of worker w1."), "{log}");
    assert!(log.contains("Queue (1):"), "{log}");
    assert!(log.contains("1. run review-w1-pr1-aaaaaaa"), "{log}");
    assert!(log.contains("[demo-agent] queued review-w1-pr1-aaaaaaa"), "{log}");
    assert!(log.contains("[demo-agent] reviewing review-w1-pr1-aaaaaaa: 2/2s"), "{log}");
    assert!(log.contains("[demo-agent] run review-w1-pr1-aaaaaaa submitted: Approved"), "{log}");

    let changes = e2e.wait_run("review-w2-pr2-bbbbbbb", "Succeeded", |run| run.phase() == RunPhase::Succeeded).await;
    let result = changes.status.and_then(|s| s.result).expect("a result");
    assert_eq!(result.verdict, Verdict::ChangesRequested);
    assert_eq!(result.body, review_operator::agent::demo::CHANGES_BODY);
    let log = e2e.wait_logs(&pod2, "submit review-w2-pr2-bbbbbbb exited with 0").await;
    assert!(log.contains("1. run review-w2-pr2-bbbbbbb"), "{log}");
    assert!(log.contains("[demo-agent] run review-w2-pr2-bbbbbbb submitted: ChangesRequested"), "{log}");

    // One pod per Reviewer, never restarted.
    for name in ["review-w1", "review-w2"] {
        let status = e2e.reviewer(name).await.status.expect("status");
        assert_eq!((status.incarnation, status.restarts), (1, 0), "{name}");
    }
    e2e.stop().await;
}

#[tokio::test]
async fn a_new_sha_mid_review_ends_the_old_pod_and_rejects_its_late_submission() {
    let e2e = E2e::start().await;
    e2e.create_reviewer("review-w1", &["--review-seconds", "4"]).await;
    let old = "review-w1-pr1-aaaaaaa";
    let new = "review-w1-pr1-bbbbbbb";
    e2e.trigger(old, "review-w1", PR1, SHA_A).await;
    let (old_pod, old_uid) = e2e.wait_running(old).await;
    e2e.wait_logs(&old_pod, &format!("[demo-agent] reviewing {old} (4s)")).await;
    let (old_processes, old_kubeconfig) = e2e.pod_processes(&old_uid, "old-pod").await;
    let old_groups: std::collections::BTreeSet<i32> = old_processes.iter().map(|p| p.process_group).collect();
    // The supervisor's group and the agent's own terminal session.
    assert!(old_groups.len() >= 2, "{old_processes:?}");

    // The agent is mid-review of the old head when the new one arrives.
    e2e.trigger(new, "review-w1", PR1, SHA_B).await;
    let superseded = e2e.wait_run(old, "Failed", |run| run.phase() == RunPhase::Failed).await.status.expect("status");
    assert_eq!(superseded.reason, Some(RunReason::Superseded));
    assert_eq!(superseded.superseded_by.as_deref(), Some(new));
    assert_eq!(superseded.result, None, "the old agent never landed a verdict");

    eventually("every process of the old pod to end", || async {
        old_processes.iter().all(|p| !p.alive()).then_some(())
    })
    .await;
    for group in &old_groups {
        assert_eq!(group_members(*group), Vec::<i32>::new(), "process group {group} of the old pod is empty");
    }

    let (new_pod, new_uid) = e2e.wait_running(new).await;
    assert_ne!(new_uid, old_uid);
    assert_eq!(new_pod, "review-w1-2");
    let log = e2e.wait_logs(&new_pod, &format!("[demo-agent] queued {new}")).await;
    assert_eq!(queue_lines(&log), [new.to_string()], "the fresh prompt holds only the current queue: {log}");
    assert!(log.contains("Queue (1):"), "{log}");
    // The old run appears only as the pull request's earlier review; without a workspace there
    // is no checkout to tell the range from.
    assert_eq!(
        entry_line(&log, new, "earlier review").as_deref(),
        Some(format!("run {old} at {SHA_A} was superseded by run {new} before its review was submitted").as_str())
    );
    assert_eq!(
        entry_line(&log, new, "review range").as_deref(),
        Some(format!("the whole pull request (whether {SHA_A} is an ancestor of {SHA_B} is unknown)").as_str())
    );
    assert!(log.lines().filter(|line| line.contains(old)).all(|line| line.contains("earlier review: run")), "{log}");
    let (_, new_kubeconfig) = e2e.pod_processes(&new_uid, "new-pod").await;

    // The old agent's late submission: its pod is gone, so its token no longer authenticates.
    e2e.wait_pod_gone(&old_pod).await;
    let late = submit(&old_kubeconfig, old, "approved", None).await;
    assert_eq!(late.code, 1, "{late:?}");
    assert_eq!(late.stdout, "");
    assert!(late.stderr.starts_with("error: Error from server (Unauthorized): Unauthorized"), "{late:?}");

    // With a live reviewer identity (the fresh pod's), the command says why it cannot land...
    let other = submit(&new_kubeconfig, old, "approved", None).await;
    assert_eq!(other.code, 1, "{other:?}");
    assert_eq!(other.stderr, format!("error: run {old} is no longer running: Superseded by {new}\n"));
    // ...and the API server refuses the write itself: the run is final (the CRD rule is checked
    // before admission policies, as on a real API server).
    let status = api_status(raw_submit(&client_from(&new_kubeconfig).await, old).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
    assert!(
        status.message.contains("the phase, reason and result of a Succeeded or Failed run are final"),
        "{}",
        status.message
    );

    let after = e2e.run(old).await.status.expect("status");
    assert_eq!((after.phase, after.reason, after.result), (Some(RunPhase::Failed), Some(RunReason::Superseded), None));
    e2e.wait_run(new, "Succeeded", |run| run.phase() == RunPhase::Succeeded).await;
    let reviewer = e2e.reviewer("review-w1").await.status.expect("status");
    assert_eq!((reviewer.incarnation, reviewer.restarts), (2, 1));
    e2e.stop().await;
}

#[tokio::test]
async fn a_second_pull_request_while_busy_gets_a_follow_up_prompt_in_the_same_pod() {
    let e2e = E2e::start().await;
    e2e.create_reviewer("review-w1", &["--review-seconds", "5"]).await;
    let first = "review-w1-pr1-aaaaaaa";
    let second = "review-w1-pr2-bbbbbbb";
    e2e.trigger(first, "review-w1", PR1, SHA_A).await;
    let (pod, uid) = e2e.wait_running(first).await;
    e2e.wait_logs(&pod, &format!("[demo-agent] reviewing {first} (5s)")).await;
    let before = e2e.reviewer("review-w1").await.status.expect("status");

    e2e.trigger(second, "review-w1", PR2, SHA_B).await;
    let (second_pod, second_uid) = e2e.wait_running(second).await;
    assert_eq!((second_pod.as_str(), second_uid.as_str()), (pod.as_str(), uid.as_str()));
    let log = e2e.wait_logs(&pod, &format!("submit {second} exited with 0")).await;
    assert!(log.contains("More runs were added to your queue."), "{log}");
    assert!(log.contains(&format!("2. run {second}")), "{log}");
    assert_eq!(queue_lines(&log), [first.to_string(), second.to_string()], "{log}");
    // The first review went on undisturbed and finished first.
    let first_done = log.find(&format!("submit {first} exited with 0")).expect("the first run was submitted");
    let second_started = log.find(&format!("[demo-agent] reviewing {second} (5s)")).expect("second reviewed");
    assert!(first_done < second_started, "{log}");
    // The follow-up reached the agent while it was still busy with the first review.
    let follow_up = log.find("More runs were added to your queue.").expect("a follow-up prompt");
    assert!(follow_up < first_done, "{log}");

    for run in [first, second] {
        let status = e2e.run(run).await.status.expect("status");
        assert_eq!(status.phase, Some(RunPhase::Succeeded), "{run}");
        assert_eq!(status.assignment.map(|a| a.pod_uid), Some(uid.clone()), "{run}");
    }
    let after = e2e.reviewer("review-w1").await.status.expect("status");
    assert_eq!((after.incarnation, after.restarts), (before.incarnation, before.restarts));
    assert_eq!(after.pod.map(|p| p.uid), Some(uid.clone()));
    let pods = e2e.pods().list(&ListParams::default()).await.expect("pods");
    let names: Vec<(String, Option<String>)> = pods.iter().map(|p| (p.name_any(), p.uid())).collect();
    assert_eq!(names, [(pod.clone(), Some(uid.clone()))]);
    let restarts: Vec<i32> = pods.items[0]
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .collect();
    assert_eq!(restarts, [0]);
    e2e.stop().await;
}

#[tokio::test]
async fn pod_bound_tokens_admit_only_the_assigned_pod_and_running_runs() {
    let e2e = E2e::start().await;
    // Reviews long enough that the runs stay Running while the test submits on their behalf.
    e2e.create_reviewer("review-w1", &["--review-seconds", "600"]).await;
    e2e.create_reviewer("review-w2", &["--review-seconds", "600"]).await;
    let mine = "review-w1-pr1-aaaaaaa";
    let theirs = "review-w2-pr2-bbbbbbb";
    e2e.trigger(mine, "review-w1", PR1, SHA_A).await;
    e2e.trigger(theirs, "review-w2", PR2, SHA_B).await;
    let (pod1, uid1) = e2e.wait_running(mine).await;
    let (pod2, uid2) = e2e.wait_running(theirs).await;
    assert_eq!((pod1.as_str(), pod2.as_str()), ("review-w1-1", "review-w2-1"));
    let (_, kubeconfig1) = e2e.pod_processes(&uid1, "w1").await;
    let (_, kubeconfig2) = e2e.pod_processes(&uid2, "w2").await;

    // Each copy is the pod's own bound identity.
    for (kubeconfig, pod, uid) in [(&kubeconfig1, &pod1, &uid1), (&kubeconfig2, &pod2, &uid2)] {
        let whoami = kubectl_as(kubeconfig, &["auth", "whoami", "-o", "json"]).await.ok();
        let review: serde_json::Value = serde_json::from_str(&whoami).expect("SelfSubjectReview JSON");
        let user = &review["status"]["userInfo"];
        assert_eq!(user["username"], REVIEWER_USER, "{whoami}");
        assert_eq!(user["extra"]["authentication.kubernetes.io/pod-name"], json!([pod]), "{whoami}");
        assert_eq!(user["extra"]["authentication.kubernetes.io/pod-uid"], json!([uid]), "{whoami}");
    }

    // Another reviewer's pod (same namespace, same service account) is denied by the policy.
    let denied = submit(&kubeconfig2, mine, "approved", None).await;
    assert_eq!(denied.code, 1, "{denied:?}");
    assert_eq!(
        denied.stderr,
        format!(
            "error: Error from server (Forbidden): reviewruns.review.ao.dev \"{mine}\" is forbidden: \
             ValidatingAdmissionPolicy 'review-operator-submissions' with binding 'review-operator-submissions' \
             denied request: run {mine} is assigned to pod {pod1} (incarnation 1); only that pod may submit its verdict\n"
        )
    );
    assert_eq!(e2e.run(mine).await.phase(), RunPhase::Running);

    // The assigned pod's identity lands the verdict.
    let landed = submit(&kubeconfig1, mine, "changes-requested", Some("Rename the flag.")).await;
    assert_eq!(
        (landed.code, landed.stdout.as_str()),
        (0, format!("run {mine} submitted: ChangesRequested\n").as_str())
    );
    let result = e2e.run(mine).await.status.and_then(|s| s.result).expect("a result");
    assert_eq!((result.verdict, result.body.as_str()), (Verdict::ChangesRequested, "Rename the flag."));

    // The reviewer service account may not read pods or secrets.
    for resource in ["pods", "secrets"] {
        let out = kubectl_as(&kubeconfig1, &["get", resource, "-n", NAMESPACE]).await;
        assert_eq!(out.code, 1, "{out:?}");
        assert_eq!(
            out.stderr,
            format!(
                "Error from server (Forbidden): {resource} is forbidden: User \"{REVIEWER_USER}\" cannot list \
                 resource \"{resource}\" in API group \"\" in the namespace \"{NAMESPACE}\"\n"
            )
        );
    }

    // A Failed run is final: the command refuses it, and so does the CRD rule on the API server.
    let cancelled = "review-w1-pr3-ccccccc";
    e2e.trigger(cancelled, "review-w1", PR3, SHA_C).await;
    e2e.wait_running(cancelled).await;
    e2e.runs()
        .patch(cancelled, &PatchParams::default(), &Patch::Merge(json!({"spec": {"cancelRequested": true}})))
        .await
        .expect("cancel requested");
    let failed = e2e.wait_run(cancelled, "Failed", |run| run.phase() == RunPhase::Failed).await;
    assert_eq!(failed.status.as_ref().and_then(|s| s.reason), Some(RunReason::Cancelled));
    let refused = submit(&kubeconfig2, cancelled, "approved", None).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.starts_with(&format!("error: run {cancelled} is no longer running: Cancelled")),
        "{refused:?}"
    );
    // The cluster admin is not matched by the policy: only the CRD rule stands in the way.
    let status = api_status(raw_submit(&e2e.client, cancelled).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
    assert!(
        status.message.contains("the phase, reason and result of a Succeeded or Failed run are final"),
        "{}",
        status.message
    );
    let after = e2e.run(cancelled).await.status.expect("status");
    assert_eq!((after.phase, after.reason, after.result), (Some(RunPhase::Failed), Some(RunReason::Cancelled), None));
    e2e.stop().await;
}

/// The Warning events about `regarding` with `reason`, through the events API.
async fn warnings(client: &Client, regarding: &str, reason: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let list = events.list(&ListParams::default()).await.expect("events listed");
    list.items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding)
        })
        .collect()
}

fn degraded(reviewer: &Reviewer) -> Option<Condition> {
    let status = reviewer.status.as_ref()?;
    conditions::find(&status.conditions, CONDITION_DEGRADED).cloned()
}

/// An agent that exits at once: each pod ends a moment after it starts, and the controller waits
/// longer and longer before the next (the kubelet never backs off pods with `restartPolicy: Never`).
#[tokio::test]
async fn a_crash_looping_agent_backs_off_and_says_why() {
    let e2e = E2e::start().await;
    let agent = AgentSpec {
        command: vec!["/bin/sh".into()],
        args: vec!["-c".into(), "echo cannot find the model; exit 3".into()],
        ..demo_agent(&[])
    };
    e2e.create_reviewer_with("review-w1", agent, "5m").await;
    e2e.trigger("review-w1-pr1-aaaaaaa", "review-w1", PR1, SHA_A).await;

    let pods = e2e.pods();
    // Pods are deleted once they ended; their creation times are kept as they appear.
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let created = eventually("three incarnations", || async {
        let listed = pods.list(&ListParams::default()).await.ok()?.items;
        let mut seen = seen.lock().expect("not poisoned");
        for pod in listed {
            if let Some(time) = pod.metadata.creation_timestamp.clone() {
                seen.entry(pod.name_any()).or_insert(time.0);
            }
        }
        (seen.len() >= 3).then(|| seen.clone())
    })
    .await;
    let second = |name: &str| created[name].as_second();
    let first_gap = second("review-w1-2") - second("review-w1-1");
    let second_gap = second("review-w1-3") - second("review-w1-2");
    assert!(first_gap >= 5, "the first wait is 5s: {first_gap}s");
    assert!(second_gap >= 10, "the second wait doubles: {second_gap}s");

    let reviewer = e2e.reviewer("review-w1").await;
    let back_off = reviewer.status.as_ref().and_then(|s| s.crash_back_off.clone()).expect("a crash back-off");
    assert!(back_off.failures >= 2, "{back_off:?}");
    assert!(back_off.message.contains("Error, exit code 3"), "{back_off:?}");
    let condition = degraded(&reviewer).expect("Degraded");
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "CrashLoopBackOff"));
    assert!(condition.message.contains("exit code 3"), "{}", condition.message);
    let said = warnings(&e2e.client, "review-w1", "CrashLoopBackOff").await;
    assert!(!said.is_empty(), "a Warning event says it");
    assert_eq!(e2e.reviewer("review-w1").await.status.map(|s| s.restarts), Some(0), "ended pods are not restarts");
    e2e.stop().await;
}

/// An image no registry serves (`.invalid` never resolves): the pod stays Pending in
/// `ImagePullBackOff`, its run is never Running, and fails once the launch deadline has passed.
#[tokio::test]
async fn a_pod_that_cannot_pull_its_image_fails_its_runs_after_the_launch_deadline() {
    let e2e = E2e::start().await;
    let agent = AgentSpec { image: "registry.invalid/acme/reviewer:1".into(), ..demo_agent(&[]) };
    e2e.create_reviewer_with("review-w1", agent, "3s").await;
    let run = "review-w1-pr1-aaaaaaa";
    e2e.trigger(run, "review-w1", PR1, SHA_A).await;

    let failed = e2e
        .wait_run(run, "Failed as LaunchFailed", |run| {
            run.phase() == RunPhase::Failed
                && run.status.as_ref().and_then(|s| s.reason) == Some(RunReason::LaunchFailed)
        })
        .await;
    let status = failed.status.expect("status");
    assert_eq!((status.start_time, status.assignment), (None, None), "never Running");
    let message = status.message.unwrap_or_default();
    assert!(message.contains("review-w1-1 did not start within the launch deadline 3s"), "{message}");
    assert!(message.contains("registry.invalid"), "{message}");

    let reviewer = e2e.reviewer("review-w1").await;
    let condition = degraded(&reviewer).expect("Degraded");
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "PodNotStarting"));
    assert!(condition.message.contains("ImagePull") && condition.message.contains("registry.invalid"), "{condition:?}");
    assert!(!warnings(&e2e.client, "review-w1", "PodNotStarting").await.is_empty(), "a Warning event says it");
    let pod = e2e.pods().get("review-w1-1").await.expect("the pod stays: the kubelet keeps trying");
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    e2e.stop().await;
}

/// A stock image that runs as root (the dev kubelet knows `python` as one) runs under the pod's
/// numeric user, or under the user `spec.agent.securityContext` gives; without a numeric user the
/// kubelet refuses it, as a real one does.
#[tokio::test]
async fn a_root_agent_image_runs_as_the_pods_user_or_its_own() {
    let e2e = E2e::start().await;
    let root_image = AgentSpec { image: "python:3.12".into(), ..demo_agent(&["--review-seconds", "1"]) };
    let own_user = AgentSpec {
        security_context: Some(review_operator::api::AgentSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            ..Default::default()
        }),
        ..root_image.clone()
    };
    e2e.create_reviewer_with("review-w1", root_image, "5m").await;
    e2e.create_reviewer_with("review-w2", own_user, "5m").await;
    e2e.trigger("review-w1-pr1-aaaaaaa", "review-w1", PR1, SHA_A).await;
    e2e.trigger("review-w2-pr2-bbbbbbb", "review-w2", PR2, SHA_B).await;
    for run in ["review-w1-pr1-aaaaaaa", "review-w2-pr2-bbbbbbb"] {
        e2e.wait_run(run, "Succeeded", |run| run.phase() == RunPhase::Succeeded).await;
    }

    // The same pod without a numeric user is refused before it starts.
    let mut pod = e2e.pods().get("review-w1-1").await.expect("pod");
    pod.metadata = kube::api::ObjectMeta { name: Some("root-probe".into()), ..Default::default() };
    pod.status = None;
    let spec = pod.spec.as_mut().expect("spec");
    spec.node_name = None;
    let security = spec.security_context.as_mut().expect("pod security context");
    (security.run_as_user, security.run_as_group) = (None, None);
    e2e.pods().create(&PostParams::default(), &pod).await.expect("probe pod created");
    let waiting = eventually("the probe pod refused", || async {
        let pod = e2e.pods().get("root-probe").await.ok()?;
        let status = pod.status?.container_statuses?.into_iter().next()?;
        status.state?.waiting.filter(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
    })
    .await;
    let message = waiting.message.unwrap_or_default();
    assert!(message.contains("container has runAsNonRoot and image will run as root"), "{message}");
    e2e.stop().await;
}

/// With a pod quota of one, the replacement of a superseded pod is refused while the old pod
/// terminates (its agent takes its grace period); the controller retries, and the new run starts
/// once the old pod is gone, instead of failing.
#[tokio::test]
async fn a_quota_filled_by_the_terminating_pod_clears_once_it_is_gone() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let e2e = E2e::start().await;
    let quotas: Api<ResourceQuota> = Api::namespaced(e2e.client.clone(), NAMESPACE);
    let quota = serde_json::from_value(json!({"metadata": {"name": "reviewers"}, "spec": {"hard": {"pods": "1"}}}))
        .expect("quota");
    quotas.create(&PostParams::default(), &quota).await.expect("quota created");
    // The agent ignores SIGTERM, so the pod takes the supervisor's grace period to end.
    let script = format!("trap '' TERM; {BINARY} demo-agent --review-seconds 60; sleep 600");
    let agent = AgentSpec { command: vec!["/bin/sh".into()], args: vec!["-c".into(), script], ..demo_agent(&[]) };
    e2e.create_reviewer_with("review-w1", agent, "5m").await;
    let (old, new) = ("review-w1-pr1-aaaaaaa", "review-w1-pr1-bbbbbbb");
    e2e.trigger(old, "review-w1", PR1, SHA_A).await;
    let (first, _) = e2e.wait_running(old).await;
    assert_eq!(first, "review-w1-1");

    e2e.trigger(new, "review-w1", PR1, SHA_B).await;
    let refused = eventually("a launch refused by the quota", || async {
        let said = warnings(&e2e.client, "review-w1", "LaunchFailed").await;
        said.into_iter().find(|e| e.note.as_deref().unwrap_or_default().contains("exceeded quota: reviewers"))
    })
    .await;
    assert!(refused.note.unwrap_or_default().contains("used: pods=1, limited: pods=1"));
    let (second, _) = e2e.wait_running(new).await;
    assert_eq!(second, "review-w1-2");
    let old_status = e2e.run(old).await.status.expect("status");
    assert_eq!(old_status.reason, Some(RunReason::Superseded));
    e2e.stop().await;
}

/// Delivery with real reviewer pods: a push, a second push mid-review, the fresh reviewer's
/// verdict. GitHub holds exactly one review, for the newer commit; the superseded run's status
/// on the old commit says it was superseded.
#[tokio::test]
async fn delivery_posts_one_review_for_the_newer_commit_after_a_push_mid_review() {
    use review_operator::api::DeliveryState;
    let github = github::FakeGitHub::start().await;
    github.allow_token("ghp_e2e");
    github.set_head("acme/widgets", 1, SHA_A);
    let settings = review_operator::delivery::DeliverySettings {
        api_url: github.url(),
        auth: review_operator::delivery::github::GitHubAuth::Token("ghp_e2e".into()),
    };
    let e2e = E2e::start_with(Some(settings)).await;
    e2e.create_reviewer("review-w1", &["--review-seconds", "3"]).await;
    let pr = format!("{}/acme/widgets/pull/1", github.url());
    let (old, new) = ("review-w1-pr1-aaaaaaa", "review-w1-pr1-bbbbbbb");
    e2e.trigger(old, "review-w1", &pr, SHA_A).await;
    e2e.wait_running(old).await;
    github.set_head("acme/widgets", 1, SHA_B);
    e2e.trigger(new, "review-w1", &pr, SHA_B).await;

    let delivered = |state: DeliveryState| {
        move |run: &ReviewRun| run.status.as_ref().and_then(|s| s.delivery.as_ref()).is_some_and(|d| d.state == state)
    };
    e2e.wait_run(new, "delivered", delivered(DeliveryState::Delivered)).await;
    let skipped = e2e.wait_run(old, "delivery skipped", delivered(DeliveryState::Skipped)).await;
    assert_eq!(skipped.status.and_then(|s| s.reason), Some(RunReason::Superseded));
    let reviews = github.reviews("acme/widgets", 1);
    assert_eq!(
        reviews.iter().map(|r| (r.commit_id.as_str(), r.state.as_str())).collect::<Vec<_>>(),
        [(SHA_B, "APPROVED")]
    );
    let old_statuses: Vec<String> = github.statuses("acme/widgets", SHA_A).into_iter().map(|s| s.state).collect();
    assert_eq!(old_statuses.last().map(String::as_str), Some("error"), "{old_statuses:?}");
    let descriptions: Vec<String> =
        github.statuses("acme/widgets", SHA_A).into_iter().filter_map(|s| s.description).collect();
    assert!(descriptions.iter().any(|d| d.contains("Superseded by commit bbbbbbb")), "{descriptions:?}");
    let new_statuses: Vec<String> = github.statuses("acme/widgets", SHA_B).into_iter().map(|s| s.state).collect();
    assert_eq!(new_statuses.last().map(String::as_str), Some("success"), "{new_statuses:?}");
    e2e.stop().await;
}

/// The value of the prompt line `   <key>: <value>` that follows the queue entry of `run` in a
/// pod's log (before the next entry).
fn entry_line(log: &str, run: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.iter().position(|line| review_operator::agent::demo::queued_run(line).as_deref() == Some(run))?;
    lines[start + 1..]
        .iter()
        .take_while(|line| review_operator::agent::demo::queued_run(line).is_none())
        .find_map(|line| line.trim().strip_prefix(&format!("{key}: ")).map(|value| value.trim_end().to_owned()))
}

fn pushed(url: &str, sha: &str, previous: Option<&str>, clone_url: &str) -> PullRequest {
    PullRequest {
        previous_head_sha: previous.map(str::to_owned),
        clone_url: Some(clone_url.to_owned()),
        ..PullRequest::new(url, sha)
    }
}

#[tokio::test]
async fn a_workspace_checks_out_each_head_and_the_fresh_reviewer_is_told_what_is_left_to_review() {
    let repo = git_fixture::Repository::new("e2e");
    let a = repo.commit("main", None, &[("version", "A")], "A");
    let b = repo.commit("main", Some(&a), &[("version", "B")], "B");
    let rewritten = repo.commit("main", None, &[("version", "C")], "rewritten");
    let other = repo.commit("other", Some(&a), &[("version", "D")], "D");
    let e2e = E2e::start().await;
    e2e.create_reviewer_spec(
        "review-w1",
        demo_agent(&["--review-seconds", "4", "--request-changes"]),
        "5m",
        Some(WorkspaceSpec::default()),
    )
    .await;
    let url = repo.url();

    // A is reviewed at a checkout that holds A.
    let run_a = "review-w1-pr1-a";
    e2e.trigger_pull_request(run_a, "review-w1", pushed(PR1, &a, None, &url)).await;
    let (pod1, _) = e2e.wait_running(run_a).await;
    let log = e2e.wait_logs(&pod1, &format!("[demo-agent] reviewing {run_a} (4s)")).await;
    let checkout_a = entry_line(&log, run_a, "checkout").expect("the prompt names the checkout");
    assert_eq!(std::fs::read_to_string(Path::new(&checkout_a).join("version")).unwrap(), "A");
    assert_eq!(entry_line(&log, run_a, "earlier review"), None, "the first review of the pull request: {log}");

    // B, a child of A, arrives mid-review: the fresh pod's checkout holds B, and its prompt gives A..B.
    let run_b = "review-w1-pr1-b";
    e2e.trigger_pull_request(run_b, "review-w1", pushed(PR1, &b, Some(&a), &url)).await;
    let (pod2, _) = e2e.wait_running(run_b).await;
    assert_ne!(pod2, pod1);
    let log = e2e.wait_logs(&pod2, &format!("[demo-agent] queued {run_b}")).await;
    let checkout_b = entry_line(&log, run_b, "checkout").expect("checkout of B");
    assert_eq!(std::fs::read_to_string(Path::new(&checkout_b).join("version")).unwrap(), "B");
    assert_eq!(
        entry_line(&log, run_b, "earlier review").as_deref(),
        Some(format!("run {run_a} at {a} was superseded by run {run_b} before its review was submitted").as_str()),
        "{log}"
    );
    let range = entry_line(&log, run_b, "review range").expect("a range");
    assert!(range.starts_with(&format!("{a}..{b} ")), "{range}");

    // A second pull request's run gets its own checkout in the same pod.
    let run_d = "review-w1-pr2-d";
    e2e.trigger_pull_request(run_d, "review-w1", pushed(PR2, &other, None, &url)).await;
    let log = e2e.wait_logs(&pod2, &format!("[demo-agent] queued {run_d}")).await;
    let checkout_d = entry_line(&log, run_d, "checkout").expect("checkout of D");
    assert_ne!(checkout_d, checkout_b);
    assert_eq!(std::fs::read_to_string(Path::new(&checkout_d).join("version")).unwrap(), "D");
    assert_eq!(std::fs::read_to_string(Path::new(&checkout_b).join("version")).unwrap(), "B");

    // B is reviewed; then a force-push to an unrelated commit asks for a full review, with the
    // earlier verdict's text in the workspace.
    e2e.wait_run(run_b, "Succeeded", |run| run.phase() == RunPhase::Succeeded).await;
    let run_c = "review-w1-pr1-c";
    e2e.trigger_pull_request(run_c, "review-w1", pushed(PR1, &rewritten, Some(&b), &url)).await;
    let log = e2e.wait_logs(&pod2, &format!("[demo-agent] queued {run_c}")).await;
    assert_eq!(
        entry_line(&log, run_c, "earlier review").as_deref(),
        Some(format!("run {run_b} at {b} was reviewed: changes requested").as_str()),
        "{log}"
    );
    assert_eq!(
        entry_line(&log, run_c, "review range").as_deref(),
        Some(format!("the whole pull request ({b} is not an ancestor of {rewritten}: a force-push)").as_str())
    );
    let text = entry_line(&log, run_c, "earlier review text").expect("the earlier review's file");
    assert_eq!(std::fs::read_to_string(&text).unwrap(), review_operator::agent::demo::CHANGES_BODY);

    // An unreachable repository fails only that run, with the reason, and restarts nothing.
    let run_x = "review-w1-pr3-x";
    let nowhere = format!("file://{}/missing.git", repo.root.display());
    e2e.trigger_pull_request(run_x, "review-w1", pushed(PR3, &a, None, &nowhere)).await;
    let failed = e2e.wait_run(run_x, "Failed", |run| run.phase() == RunPhase::Failed).await.status.expect("status");
    assert_eq!(failed.reason, Some(RunReason::CheckoutFailed));
    let message = failed.message.unwrap_or_default();
    assert!(
        message.starts_with(&format!("Checking out {a} from {nowhere} failed after 3 attempts: git fetch failed: ")),
        "{message}"
    );
    assert!(message.contains("does not appear to be a git repository"), "{message}");
    for run in [run_c, run_d] {
        e2e.wait_run(run, "Succeeded", |run| run.phase() == RunPhase::Succeeded).await;
    }
    let log = e2e.wait_logs(&pod2, &format!("[demo-agent] run {run_c} submitted")).await;
    assert!(!queue_lines(&log).contains(&run_x.to_owned()), "a failed checkout is never prompted: {log}");
    let status = e2e.reviewer("review-w1").await.status.expect("status");
    assert_eq!((status.incarnation, status.restarts), (2, 1), "only the supersede restarted the reviewer");
    e2e.stop().await;
}

/// `kubectl review ...` through the real kubectl, which finds the plugin on PATH.
async fn kubectl_review(cluster: &DevCluster, args: &[&str]) -> Output {
    let plugin_dir = Path::new(env!("CARGO_BIN_EXE_kubectl-review")).parent().expect("binary folder");
    let path = format!("{}:{}", plugin_dir.display(), std::env::var("PATH").unwrap_or_default());
    // kubectl takes no flags before a plugin's name: the kubeconfig comes from the environment.
    let mut cmd = tokio::process::Command::new(support::kubectl_path());
    cmd.arg("review").args(args).env("PATH", path).env("KUBECONFIG", cluster.kubeconfig_path());
    support::run_command(cmd, None).await
}

#[tokio::test]
async fn a_replaced_pods_transcript_is_kept_private_to_it_and_pruned_to_the_newest() {
    let e2e = E2e::start().await;
    let mut reviewer = Reviewer::new(
        "review-w1",
        ReviewerSpec {
            transcripts: Some(TranscriptRetention { keep: 3 }),
            ..ReviewerSpec::new("w1", demo_agent(&["--review-seconds", "30"]))
        },
    );
    reviewer.metadata.namespace = Some(NAMESPACE.into());
    e2e.reviewers().create(&PostParams::default(), &reviewer).await.expect("Reviewer created");
    let transcripts: Api<ReviewTranscript> = Api::namespaced(e2e.client.clone(), NAMESPACE);

    let first = "review-w1-pr1-0";
    e2e.trigger(first, "review-w1", PR1, "a000000").await;
    let (pod1, uid1) = e2e.wait_running(first).await;
    e2e.wait_logs(&pod1, &format!("[demo-agent] reviewing {first} (30s)")).await;
    let (_, first_kubeconfig) = e2e.pod_processes(&uid1, "first-pod").await;
    // Written while the agent runs.
    eventually("the transcript of the live pod", || async {
        let transcript = transcripts.get_opt(&pod1).await.ok().flatten()?;
        let text = review_operator::api::decompress(&transcript.spec.data.0).ok()?;
        text.contains(&format!("[demo-agent] reviewing {first} (30s)")).then_some(())
    })
    .await;

    // Five pushes, each mid-review: five restarts, six pods.
    let mut previous = first.to_owned();
    for push in 1..=5 {
        let run = format!("review-w1-pr1-{push}");
        let pull_request = PullRequest {
            previous_head_sha: Some(format!("a00000{}", push - 1)),
            ..PullRequest::new(PR1, format!("a00000{push}"))
        };
        e2e.trigger_pull_request(&run, "review-w1", pull_request).await;
        let (pod, _) = e2e.wait_running(&run).await;
        let log = e2e.wait_logs(&pod, &format!("[demo-agent] reviewing {run} (30s)")).await;
        let earlier_pod = e2e.run(&previous).await.status.and_then(|s| s.assignment).expect("assigned").pod;
        assert_eq!(
            entry_line(&log, &run, "earlier transcript").as_deref(),
            Some(format!("kubectl review transcript {earlier_pod} (ReviewTranscript {earlier_pod})").as_str()),
            "the fresh prompt names the replaced pod's transcript: {log}"
        );
        previous = run;
    }
    let status = e2e.reviewer("review-w1").await.status.expect("status");
    assert_eq!((status.incarnation, status.restarts), (6, 5));

    // Only the three newest incarnations' transcripts remain, the live one among them.
    let kept = eventually("retention to keep three transcripts", || async {
        let mut names: Vec<String> = transcripts
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter_map(|t| t.metadata.name)
            .collect();
        names.sort();
        (names == ["review-w1-4", "review-w1-5", "review-w1-6"]).then_some(names)
    })
    .await;
    assert_eq!(kept.len(), 3);

    // The replaced pod's transcript is readable after the pod is gone, by pod and by run, and complete.
    e2e.wait_pod_gone("review-w1-5").await;
    let by_run = kubectl_review(&e2e.cluster, &["transcript", "review-w1-pr1-4", "-n", NAMESPACE]).await.ok();
    assert!(by_run.contains("1. run review-w1-pr1-4"), "{by_run}");
    assert!(by_run.contains("[demo-agent] reviewing review-w1-pr1-4 (30s)"), "{by_run}");
    let by_pod = kubectl_review(&e2e.cluster, &["transcript", "review-w1-5", "-n", NAMESPACE]).await.ok();
    assert_eq!(by_pod, by_run);
    let replaced = transcripts.get("review-w1-5").await.expect("kept");
    assert!(replaced.spec.complete, "the last write came on SIGTERM");
    assert_eq!((replaced.spec.pod.as_str(), replaced.spec.incarnation), ("review-w1-5", 5));
    let owner = &replaced.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Reviewer", "review-w1"));
    let pruned = kubectl_review(&e2e.cluster, &["transcript", first, "-n", NAMESPACE]).await.failed();
    assert!(
        pruned.contains(&format!("run {first} was reviewed by pod {pod1}, whose transcript is not kept")),
        "{pruned}"
    );
    let unknown = kubectl_review(&e2e.cluster, &["transcript", "no-such-pod", "-n", NAMESPACE]).await.failed();
    assert!(unknown.contains("no transcript and no run named no-such-pod in namespace demo"), "{unknown}");

    // Another pod's token cannot write it: the live pod's (same service account) is refused.
    let live_uid = e2e.reviewer("review-w1").await.status.and_then(|s| s.pod).expect("live pod").uid;
    let (_, live_kubeconfig) = e2e.pod_processes(&live_uid, "live-pod").await;
    let as_live: Api<ReviewTranscript> = Api::namespaced(client_from(&live_kubeconfig).await, NAMESPACE);
    let overwrite = json!({"spec": {"data": ""}});
    let error = as_live
        .patch("review-w1-5", &PatchParams::default(), &Patch::Merge(&overwrite))
        .await
        .expect_err("another pod's write is refused");
    let status = api_status(error);
    assert_eq!(status.code, 403, "{status:?}");
    assert!(status.message.contains("a reviewer pod may only write its own transcript"), "{}", status.message);
    // Nor may a replaced pod's token, once its pod is gone, write anything at all.
    let as_first: Api<ReviewTranscript> = Api::namespaced(client_from(&first_kubeconfig).await, NAMESPACE);
    let error = as_first.patch("review-w1-5", &PatchParams::default(), &Patch::Merge(&overwrite)).await.unwrap_err();
    assert_eq!(api_status(error).code, 401);

    // Deleting the Reviewer takes its transcripts with it.
    e2e.reviewers().delete("review-w1", &Default::default()).await.expect("Reviewer deleted");
    eventually("the transcripts to be garbage-collected", || async {
        transcripts.list(&ListParams::default()).await.ok().filter(|list| list.items.is_empty()).map(|_| ())
    })
    .await;
    e2e.stop().await;
}

#[tokio::test]
async fn an_agent_that_prints_50_mb_keeps_a_transcript_within_the_cap() {
    let e2e = E2e::start().await;
    let agent = AgentSpec {
        command: vec!["sh".into()],
        args: vec!["-c".into(), "head -c 52428800 /dev/urandom | base64; echo THE-END; sleep 600".into()],
        ..demo_agent(&[])
    };
    e2e.create_reviewer_with("review-w1", agent, "5m").await;
    e2e.trigger("review-w1-pr1-a", "review-w1", PR1, SHA_A).await;
    let (pod, _) = e2e.wait_running("review-w1-pr1-a").await;
    let transcripts: Api<ReviewTranscript> = Api::namespaced(e2e.client.clone(), NAMESPACE);
    let transcript = eventually("the whole output in the transcript", || async {
        let transcript = transcripts.get_opt(&pod).await.ok().flatten()?;
        (transcript.spec.total_bytes > 50 * 1024 * 1024
            && review_operator::api::decompress(&transcript.spec.data.0).ok()?.contains("THE-END"))
        .then_some(transcript)
    })
    .await;
    let cap = review_operator::agent::transcript::MAX_COMPRESSED_BYTES;
    assert!(transcript.spec.data.0.len() <= cap, "{} compressed bytes", transcript.spec.data.0.len());
    assert!(transcript.spec.omitted_bytes > 40 * 1024 * 1024, "{}", transcript.spec.omitted_bytes);
    let text = review_operator::api::decompress(&transcript.spec.data.0).unwrap();
    assert!(text.contains("bytes left out here]"));
    e2e.stop().await;
}

/// The environment of process `pid`, as `NAME=value` entries.
fn environment_of(pid: i32) -> Vec<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    environ.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

#[tokio::test]
async fn the_workspace_credentials_reach_the_supervisor_and_never_the_agent() {
    let repo = git_fixture::Repository::new("credentials");
    let head = repo.commit("main", None, &[("version", "A")], "A");
    let e2e = E2e::start().await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-credentials", "namespace": NAMESPACE},
        "stringData": {"token": "s3cret-token"}});
    support::kubectl_with(&e2e.cluster, &["apply", "-f", "-"], Some(&secret.to_string()), &[]).await.ok();
    let workspace = WorkspaceSpec { credentials_secret: Some("git-credentials".into()), ..WorkspaceSpec::default() };
    e2e.create_reviewer_spec("review-w1", demo_agent(&["--review-seconds", "30"]), "5m", Some(workspace)).await;
    let run = "review-w1-pr1-a";
    e2e.trigger_pull_request(run, "review-w1", pushed(PR1, &head, None, &repo.url())).await;
    let (pod, uid) = e2e.wait_running(run).await;
    let log = e2e.wait_logs(&pod, &format!("[demo-agent] {run}: reading the checkout ")).await;
    let (processes, _) = e2e.pod_processes(&uid, "credentials").await;
    let token = "REVIEW_GIT_TOKEN=s3cret-token".to_owned();
    let mut supervisor = 0;
    for process in processes_of_pod(&uid) {
        let has_token = environment_of(process.id.pid).contains(&token);
        if process.cmdline.contains("\0agent\0") {
            assert!(has_token, "the supervisor has the token from the kubelet");
            supervisor += 1;
        } else {
            assert!(!has_token, "{} sees the token", process.cmdline.replace('\0', " "));
        }
    }
    assert_eq!(supervisor, 1, "{} processes", processes.len());
    assert!(processes_of_pod(&uid).iter().any(|p| p.cmdline.contains("demo-agent")));
    assert!(!log.contains("s3cret-token"), "{log}");
    e2e.stop().await;
}
