//! Seeded random scenarios driven through the production reconcile path
//! (`plan_reviewer`, the `Executor`, the follow-up plan after a launch and
//! the launch failure plan) against the dev cluster: real HTTP, server-side
//! apply, `resourceVersion` and UID preconditions, and the CRDs' CEL rules.
//!
//! Each scenario drives one Reviewer and 1 to 3 pull requests through
//! pushes (several in the same second, with the previous head or without),
//! duplicate triggers, replayed triggers for SHAs the pull request moved
//! past, verdicts submitted by the live pod, pods deleted from outside and
//! pods slow to start. Between steps the test reconciles 0 to 3 times from
//! a fresh observation; some reconciles meet a server error (500) on one of
//! their writes, which stops the plan at that step as a controller killed
//! there would be, or sends a pod write down the launch failure path.
//!
//! The oracle is what the scenario did: the order it created runs in, the
//! SHAs it pushed last and the verdicts it submitted; run names are random,
//! so they sort against time. After the scenario, reconciles without
//! faults until the plan writes nothing, then checks, per pull request,
//! that only the first run for the last pushed SHA is unfinished (unless
//! its verdict is in), that every run for an earlier SHA that got no verdict
//! failed as Superseded and rejects a late verdict, and that the Reviewer
//! holds exactly one live pod, whose queue is those runs in creation order.
//!
//! `REVIEW_RECONCILE_SCENARIOS` sets the number of scenarios and
//! `REVIEW_RECONCILE_SEED` the seed of the first; a failure prints the seed
//! and the trace.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

mod harness;

use harness::*;

use devcluster::ApiError;
use devcluster::faults::FaultTarget;
use futures::FutureExt;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::events::Reporter;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use review_operator::api::{PullRequest, ReviewRun, ReviewRunSpec, RunPhase, RunReason, labels};
use review_operator::controller::AgentLaunch;
use review_operator::controller::events::{EventQueue, Publisher};
use review_operator::controller::executor::Executor;
use review_operator::controller::plan::{ObservedPod, ObservedReviewer, plan_reviewer};
use review_operator::controller::reconcile::reconcile_observed;
use review_operator::metrics::Metrics;

const DEFAULT_SCENARIOS: u64 = 8;
const DEFAULT_SEED: u64 = 0x00c0_ffee;
const STEPS: usize = 18;
const CONVERGENCE_BOUND: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_scenarios_through_the_production_executor() {
    let scenarios = env_u64("REVIEW_RECONCILE_SCENARIOS").unwrap_or(DEFAULT_SCENARIOS);
    let first = env_u64("REVIEW_RECONCILE_SEED").unwrap_or(DEFAULT_SEED);
    let h = Harness::without_kubelet().await;
    for (index, seed) in (first..first.saturating_add(scenarios)).enumerate() {
        let mut scenario = Scenario::new(&h, seed, format!("review-s{index}")).await;
        let outcome = std::panic::AssertUnwindSafe(scenario.run()).catch_unwind().await;
        h.cluster.server().faults.clear();
        if let Err(panic) = outcome {
            let tail = &scenario.trace[scenario.trace.len().saturating_sub(60)..];
            eprintln!(
                "reconcile scenario failed; reproduce with REVIEW_RECONCILE_SEED={seed} REVIEW_RECONCILE_SCENARIOS=1\n\
                 last {} of {} trace lines:\n{}",
                tail.len(),
                scenario.trace.len(),
                tail.join("\n")
            );
            std::panic::resume_unwind(panic);
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|value| value.parse().ok())
}

/// One pull request as the scenario drove it.
#[derive(Default)]
struct PullRequestHistory {
    url: String,
    /// SHAs in the order they were pushed; the last is the head.
    pushed: Vec<String>,
    /// Whether every push after the first named the head it replaced, so
    /// that the lineage alone proves every earlier SHA replaced.
    lineage_complete: bool,
}

/// One run as the scenario created it.
struct CreatedRun {
    name: String,
    pull_request: usize,
    sha: String,
    /// Created for a SHA the pull request had moved past.
    replay: bool,
    /// The live pod's verdict for it was accepted.
    submitted: bool,
}

struct Scenario<'a> {
    h: &'a Harness,
    rng: StdRng,
    reviewer: String,
    pull_requests: Vec<PullRequestHistory>,
    /// Every run, in the order the scenario created them.
    runs: Vec<CreatedRun>,
    metrics: Metrics,
    events: EventQueue,
    agent: AgentLaunch,
    trace: Vec<String>,
}

impl<'a> Scenario<'a> {
    async fn new(h: &'a Harness, seed: u64, reviewer: String) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let count = rng.random_range(1..=3);
        let pull_requests = (1..=count)
            .map(|n| PullRequestHistory {
                url: format!("https://github.com/acme/{reviewer}/pull/{n}"),
                lineage_complete: true,
                ..PullRequestHistory::default()
            })
            .collect();
        h.create_reviewer(&reviewer).await;
        let metrics = Metrics::default();
        let publisher = Publisher::new(h.client.clone(), Reporter::from(FIELD_MANAGER));
        let (events, _publisher) = EventQueue::start(publisher, std::sync::Arc::new(Metrics::default()));
        Self {
            h,
            rng,
            reviewer,
            pull_requests,
            runs: Vec::new(),
            metrics,
            events,
            agent: AgentLaunch::LocalBinary { path: "/bin/true".into() },
            trace: vec![format!("seed {seed}")],
        }
    }

    fn log(&mut self, line: String) {
        self.trace.push(line);
    }

    async fn run(&mut self) {
        for _ in 0..STEPS {
            self.step().await;
            for _ in 0..self.rng.random_range(0..=3) {
                let faulty = self.rng.random_bool(0.3);
                self.reconcile(faulty).await;
                self.start_pods(0.7).await;
            }
        }
        self.converge().await;
        self.check().await;
    }

    async fn step(&mut self) {
        match self.rng.random_range(0..100) {
            0..40 => {
                // One push, or a burst in the same second.
                for _ in 0..self.rng.random_range(1..=3) {
                    let pull_request = self.rng.random_range(0..self.pull_requests.len());
                    self.push(pull_request).await;
                }
            }
            40..50 => {
                let pull_request = self.rng.random_range(0..self.pull_requests.len());
                if let Some(head) = self.pull_requests[pull_request].pushed.last().cloned() {
                    self.log(format!("duplicate trigger for PR {pull_request} at {head}"));
                    self.create_run(pull_request, &head, None, false).await;
                }
            }
            50..58 => self.replay().await,
            58..75 => self.submit_running().await,
            75..85 => self.delete_live_pod().await,
            _ => self.log("idle".into()),
        }
    }

    async fn push(&mut self, pull_request: usize) {
        let sha: String = (0..40).map(|_| char::from(b"0123456789abcdef"[self.rng.random_range(0..16)])).collect();
        let history = &mut self.pull_requests[pull_request];
        let previous = match history.pushed.last() {
            Some(head) if self.rng.random_bool(0.7) => Some(head.clone()),
            Some(_) => {
                history.lineage_complete = false;
                None
            }
            None => None,
        };
        history.pushed.push(sha.clone());
        self.log(format!("push PR {pull_request}: {sha} (previous {previous:?})"));
        self.create_run(pull_request, &sha, previous, false).await;
    }

    /// A trigger for a SHA the pull request moved past, with the lineage it
    /// had; only where the lineage proves the SHA replaced, as creation
    /// order alone would make the replay the newest.
    async fn replay(&mut self) {
        let candidates: Vec<usize> = (0..self.pull_requests.len())
            .filter(|&p| self.pull_requests[p].lineage_complete && self.pull_requests[p].pushed.len() >= 2)
            .collect();
        let Some(&pull_request) = candidates.choose(&mut self.rng) else { return };
        let pushed = &self.pull_requests[pull_request].pushed;
        let index = self.rng.random_range(0..pushed.len() - 1);
        let sha = pushed[index].clone();
        let previous = index.checked_sub(1).map(|i| pushed[i].clone());
        self.log(format!("replayed trigger for PR {pull_request} at {sha} (previous {previous:?})"));
        self.create_run(pull_request, &sha, previous, true).await;
    }

    async fn create_run(&mut self, pull_request: usize, sha: &str, previous: Option<String>, replay: bool) {
        // Random names: they sort against creation order as often as not.
        let name = format!("r-{:08x}", self.rng.random::<u32>());
        let mut spec = PullRequest::new(&self.pull_requests[pull_request].url, sha);
        spec.previous_head_sha = previous;
        let run = ReviewRun::new(
            &name,
            ReviewRunSpec {
                reviewer: self.reviewer.clone(),
                pull_request: spec,
                cancel_requested: false,
                timeout: "1h".into(),
                ttl_seconds_after_finished: None,
            },
        );
        self.h.runs().create(&PostParams::default(), &run).await.expect("ReviewRun created");
        self.log(format!("created {name}"));
        self.runs.push(CreatedRun { name, pull_request, sha: sha.into(), replay, submitted: false });
    }

    /// The live pod submits a verdict for one of its Running runs. Which
    /// runs it has is read from the cluster (the pod's view); whether the
    /// API must accept the verdict is decided from the scenario: it must
    /// when the run is its pull request's current one.
    async fn submit_running(&mut self) {
        let observed = self.observe().await;
        let live = live_pod(&observed).map(|pod| pod.uid.clone());
        let running: Vec<usize> = (0..self.runs.len())
            .filter(|&i| {
                observed
                    .run(&self.runs[i].name)
                    .is_some_and(|run| run.phase() == RunPhase::Running && assignment(run).map(|(uid, _)| uid) == live)
            })
            .collect();
        let Some(&index) = running.choose(&mut self.rng) else { return };
        let current = self.is_current(index);
        let name = self.runs[index].name.clone();
        let result = self.h.submit(&name, "Approved").await;
        self.log(format!("submitted for {name} (current {current}): {}", result.is_ok()));
        if current {
            result
                .as_ref()
                .unwrap_or_else(|error| panic!("the verdict for the current run {name} was rejected: {error}"));
        }
        if result.is_ok() {
            self.runs[index].submitted = true;
        }
    }

    async fn delete_live_pod(&mut self) {
        let observed = self.observe().await;
        let Some(pod) = live_pod(&observed) else { return };
        self.log(format!("pod {} deleted from outside", pod.name));
        let _ = self.h.pods().delete(&pod.name, &DeleteParams::default()).await;
    }

    /// Whether the run at `index` is the one its pull request must review:
    /// the first created for the last pushed SHA, and no replay.
    fn is_current(&self, index: usize) -> bool {
        let run = &self.runs[index];
        let head = self.pull_requests[run.pull_request].pushed.last();
        !run.replay
            && head == Some(&run.sha)
            && self.runs.iter().position(|r| !r.replay && r.pull_request == run.pull_request && &r.sha == head.unwrap())
                == Some(index)
    }

    async fn observe(&self) -> ObservedReviewer {
        let reviewer = self.h.reviewers().get_opt(&self.reviewer).await.expect("read Reviewer");
        let runs = self.h.runs().list(&ListParams::default()).await.expect("list runs").items;
        let runs = runs.into_iter().filter(|run| run.spec.reviewer == self.reviewer).collect();
        let selector = format!("{}={}", labels::REVIEWER, self.reviewer);
        let pods = self.h.pods().list(&ListParams::default().labels(&selector)).await.expect("list pods").items;
        ObservedReviewer {
            name: self.reviewer.clone(),
            reviewer,
            runs,
            pods: pods.iter().filter_map(ObservedPod::from_pod).collect(),
        }
    }

    /// One reconcile from a fresh observation; `faulty` arms a server error
    /// on one kind of write the plan may make.
    async fn reconcile(&mut self, faulty: bool) {
        if faulty {
            let (verb, resource, subresource) = *[
                ("patch", "reviewruns", Some("status")),
                ("patch", "reviewruns", None),
                ("patch", "reviewers", Some("status")),
                ("patch", "reviewers", None),
                ("delete", "pods", None),
                ("create", "pods", None),
            ]
            .choose(&mut self.rng)
            .unwrap_or(&("create", "pods", None));
            let mut target = FaultTarget::new(verb, resource);
            if let Some(subresource) = subresource {
                target = target.subresource(subresource);
            }
            let error = ApiError::new(500, "InternalError", "injected: etcdserver: request timed out");
            self.h.cluster.server().faults.fail_next(target, 1, error);
            self.log(format!("fault armed: {verb} {resource} {subresource:?}"));
        }
        let observed = self.observe().await;
        let executor = Executor {
            client: &self.h.client,
            field_manager: FIELD_MANAGER,
            events: &self.events,
            metrics: &self.metrics,
            agent: &self.agent,
        };
        let reconciled = reconcile_observed(&executor, "default", &observed).await;
        self.h.cluster.server().faults.clear();
        match reconciled.result {
            Ok(_) => self.log("reconciled".into()),
            Err(error) => self.log(format!("reconcile failed: {error}")),
        }
    }

    /// Plays the kubelet: each Pending pod starts with `probability`.
    async fn start_pods(&mut self, probability: f64) {
        let selector = format!("{}={}", labels::REVIEWER, self.reviewer);
        let pods = self.h.pods().list(&ListParams::default().labels(&selector)).await.expect("list pods").items;
        for pod in pods {
            if self.rng.random_bool(probability) {
                report_running(&self.h.client, &pod).await.expect("pod status written");
            }
        }
    }

    async fn converge(&mut self) {
        for _ in 0..CONVERGENCE_BOUND {
            self.start_pods(1.0).await;
            let observed = self.observe().await;
            if plan_reviewer(&observed, Timestamp::now()).is_noop() {
                self.log("converged".into());
                return;
            }
            self.reconcile(false).await;
        }
        let observed = self.observe().await;
        panic!("no convergence in {CONVERGENCE_BOUND} reconciles: {:#?}", plan_reviewer(&observed, Timestamp::now()));
    }

    async fn check(&mut self) {
        let observed = self.observe().await;
        let live = live_pod(&observed).cloned().expect("one live pod");
        let live_pods = observed.pods.iter().filter(|pod| !pod.deleting && !finished(pod)).count();
        assert_eq!(live_pods, 1, "exactly one live pod: {:#?}", observed.pods);
        let mut expected_queue = Vec::new();
        for index in 0..self.runs.len() {
            let created = &self.runs[index];
            let run = observed.run(&created.name).unwrap_or_else(|| panic!("{} exists", created.name));
            let status = run.status.clone().unwrap_or_default();
            let head_submitted = self
                .runs
                .iter()
                .any(|r| r.submitted && r.pull_request == created.pull_request && !r.replay && self.is_head(r));
            if created.submitted {
                assert_eq!(run.phase(), RunPhase::Succeeded, "{} keeps its verdict", created.name);
            } else if self.is_current(index) && !head_submitted {
                assert_eq!(run.phase(), RunPhase::Running, "{} is its pull request's current run", created.name);
                assert_eq!(
                    assignment(run).map(|(uid, _)| uid),
                    Some(live.uid.clone()),
                    "{} is on the live pod",
                    created.name
                );
                expected_queue.push(created.name.clone());
            } else if self.is_head(created) {
                assert!(run.phase().is_terminal(), "{} duplicates its head's run: {status:?}", created.name);
            } else {
                assert_eq!(run.phase(), RunPhase::Failed, "{} reviews a replaced SHA", created.name);
                let allowed: &[RunReason] = if created.replay {
                    &[RunReason::Superseded]
                } else {
                    &[RunReason::Superseded, RunReason::Duplicate]
                };
                assert!(status.reason.is_some_and(|reason| allowed.contains(&reason)), "{}: {status:?}", created.name);
                let late = self.h.submit(&created.name, "Approved").await;
                assert!(late.is_err(), "a late verdict for {} is rejected", created.name);
            }
        }
        let reviewer = observed.reviewer.as_ref().expect("the Reviewer");
        let status = status_of(reviewer);
        assert_eq!(status.pod.map(|pod| pod.uid), Some(live.uid.clone()), "status.pod names the live pod");
        assert_eq!(status.queue, expected_queue, "the queue holds the current runs in creation order");
        let uid = reviewer.meta().uid.clone();
        self.log(format!("checked {} runs on Reviewer {uid:?}", self.runs.len()));
    }

    fn is_head(&self, run: &CreatedRun) -> bool {
        !run.replay && self.pull_requests[run.pull_request].pushed.last() == Some(&run.sha)
    }
}

/// The live pod as a controller sees it: the newest incarnation's, unless
/// it finished or is being deleted.
fn live_pod(observed: &ObservedReviewer) -> Option<&ObservedPod> {
    let newest = observed.pods.iter().map(|pod| pod.incarnation).max()?;
    observed.pods.iter().find(|pod| pod.incarnation == newest && !pod.deleting && !finished(pod))
}

fn finished(pod: &ObservedPod) -> bool {
    use review_operator::controller::plan::PodPhase;
    matches!(pod.phase, PodPhase::Succeeded | PodPhase::Failed)
}
