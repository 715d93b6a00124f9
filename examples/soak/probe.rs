//! Probes: the soak stops acting, waits until one Reviewer is quiet, makes the work of its pod
//! stale (a push to a pull request whose run is Running) or re-triggers that run's commit, and
//! checks the restart against what it did. Restarts are counted from the scenario's own log: one
//! when the run it saw Running ended Superseded by its push, none when the run finished first or
//! when the commit was only re-triggered.
//!
//! Quiet means: the Reviewer's pod runs, every unfinished run of the Reviewer is Running on that
//! pod and is for the head the scenario last pushed to its pull request (at most one per pull
//! request), and the pod's queue is exactly those runs.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use rand::Rng;
use review_operator::api::{ReviewRun, RunPhase, RunReason};

use super::{NAMESPACE, SLOW_EVERY, Soak};

/// How long a Reviewer may take to become quiet.
const QUIET_WITHIN: Duration = Duration::from_secs(60);
/// Runs the scenario created longer ago than this must not be Pending without a reason.
const PENDING_REASON_AFTER: Duration = Duration::from_secs(30);

/// A quiet Reviewer.
struct Quiet {
    pod: String,
    restarts: i64,
    running: Vec<ReviewRun>,
}

/// Why a Reviewer is not quiet; `backing_off` when its pod is in crash back-off, which can
/// legitimately outlast the wait.
struct NotQuiet {
    why: String,
    backing_off: bool,
}

impl NotQuiet {
    fn new(why: String) -> Self {
        Self { why, backing_off: false }
    }
}

impl Soak {
    /// One probe of a slow Reviewer (its runs stay Running long enough to be superseded).
    pub(super) async fn probe(&mut self) -> anyhow::Result<()> {
        let slow: Vec<String> = self
            .reviewers
            .keys()
            .filter(|name| {
                name.strip_prefix("review-w").and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n % SLOW_EVERY == 0)
            })
            .filter(|name| !self.missing_reviewers.contains(*name))
            .cloned()
            .collect();
        if slow.is_empty() {
            return Ok(());
        }
        let reviewer = slow[self.rng.random_range(0..slow.len())].clone();
        self.counts.probes += 1;
        let Some(mut quiet) = self.wait_quiet(&reviewer).await? else { return Ok(()) };
        if quiet.running.is_empty() {
            let urls: Vec<String> =
                self.log.iter().filter(|(_, log)| log.reviewer == reviewer).map(|(url, _)| url.clone()).collect();
            let url = urls[self.rng.random_range(0..urls.len())].clone();
            let sha = self.sha();
            let previous = self.log[&url].heads.last().cloned();
            self.create_run(&url, &sha, previous.as_deref()).await?;
            self.record_push(&url, sha, previous)?;
            let Some(again) = self.wait_quiet(&reviewer).await? else { return Ok(()) };
            quiet = again;
        }
        if quiet.running.is_empty() {
            self.counts.probes_skipped += 1;
            return Ok(());
        }
        let run = quiet.running[self.rng.random_range(0..quiet.running.len())].clone();
        let url = run.spec.pull_request.url.clone();
        if self.rng.random_bool(0.5) {
            self.probe_stale_push(&reviewer, &run, &url, quiet).await
        } else {
            self.probe_retrigger(&reviewer, &run, &url, quiet).await
        }
    }

    /// A push to the Running run's pull request: the pod restarts once if the run ended
    /// Superseded, not at all if it finished before the push was seen.
    async fn probe_stale_push(
        &mut self,
        reviewer: &str,
        run: &ReviewRun,
        url: &str,
        before: Quiet,
    ) -> anyhow::Result<()> {
        let sha = self.sha();
        let head = run.spec.pull_request.head_sha.clone();
        if self.rng.random_bool(0.5) {
            self.deliver_push(url, Some(&head), &sha).await?;
        } else {
            self.create_run(url, &sha, Some(&head)).await?;
        }
        self.record_push(url, sha, Some(head))?;
        let name = run.name_any();
        let ended = self.wait_terminal(&name).await?;
        let Some(after) = self.wait_quiet(reviewer).await? else { return Ok(()) };
        let expected = match ended {
            Some(RunReason::Superseded) => before.restarts + 1,
            Some(RunReason::Submitted) => before.restarts,
            other => {
                self.violations.push(format!("probe: {name}, Running when a push replaced it, ended {other:?}"));
                return Ok(());
            }
        };
        self.counts.probe_restarts_expected += expected - before.restarts;
        self.counts.probe_restarts_seen += after.restarts - before.restarts;
        if after.restarts != expected {
            self.violations.push(format!(
                "probe: {reviewer} restarted {} times when {name} ended {ended:?} (expected {})",
                after.restarts - before.restarts,
                expected - before.restarts
            ));
        }
        if ended == Some(RunReason::Superseded) && after.pod == before.pod {
            self.violations.push(format!("probe: {reviewer} kept pod {} after {name} went stale", before.pod));
        }
        Ok(())
    }

    /// The Running run's commit triggered again: nothing restarts.
    async fn probe_retrigger(
        &mut self,
        reviewer: &str,
        run: &ReviewRun,
        url: &str,
        before: Quiet,
    ) -> anyhow::Result<()> {
        let head = run.spec.pull_request.head_sha.clone();
        self.retrigger_head(url, &head).await?;
        let Some(after) = self.wait_quiet(reviewer).await? else { return Ok(()) };
        if after.restarts != before.restarts || after.pod != before.pod {
            self.violations.push(format!(
                "probe: re-triggering {} of {url} replaced pod {} by {} ({} restarts)",
                &head[..7],
                before.pod,
                after.pod,
                after.restarts - before.restarts
            ));
        }
        Ok(())
    }

    /// The run's reason once it is terminal, waiting up to a minute.
    async fn wait_terminal(&mut self, name: &str) -> anyhow::Result<Option<RunReason>> {
        let until = Instant::now() + QUIET_WITHIN;
        loop {
            let run = self.runs_api().get(name).await?;
            if run.phase().is_terminal() {
                return Ok(run.status.and_then(|s| s.reason));
            }
            if Instant::now() > until {
                self.violations
                    .push(format!("probe: {name} was still {:?} a minute after a push replaced it", run.phase()));
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the Reviewer is quiet; a Reviewer that does not become quiet in time is a
    /// violation, unless its pod is backing off (then the probe is skipped).
    async fn wait_quiet(&mut self, reviewer: &str) -> anyhow::Result<Option<Quiet>> {
        let until = Instant::now() + QUIET_WITHIN;
        loop {
            let state = self.quiet_state(reviewer).await?;
            match state {
                Ok(quiet) => return Ok(Some(quiet)),
                Err(not) if Instant::now() > until => {
                    if not.backing_off {
                        self.counts.probes_skipped += 1;
                    } else {
                        self.violations.push(format!("probe: {reviewer} was not quiet within a minute: {}", not.why));
                    }
                    return Ok(None);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn quiet_state(&mut self, reviewer: &str) -> anyhow::Result<Result<Quiet, NotQuiet>> {
        let runs = self.runs().await?;
        self.check_pending_reasons(&runs);
        let Some(object) = self.reviewers_api().get_opt(reviewer).await? else {
            return Ok(Err(NotQuiet::new("the Reviewer does not exist".into())));
        };
        let status = object.status.unwrap_or_default();
        if status.crash_back_off.is_some() {
            return Ok(Err(NotQuiet { why: "its pod is backing off".into(), backing_off: true }));
        }
        let Some(pod) = status.pod else { return Ok(Err(NotQuiet::new("no pod in its status".into()))) };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let live = pods.get_opt(&pod.name).await?.filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && p.uid().as_deref() == Some(pod.uid.as_str())
        });
        if live.is_none() {
            return Ok(Err(NotQuiet::new(format!("pod {} does not run", pod.name))));
        }
        let unfinished: Vec<ReviewRun> =
            runs.into_iter().filter(|r| r.spec.reviewer == reviewer && !r.phase().is_terminal()).collect();
        let mut urls = std::collections::BTreeSet::new();
        for run in &unfinished {
            let pr = &run.spec.pull_request;
            let head = self.log.get(&pr.url).and_then(|log| log.heads.last());
            let on_pod = run.status.as_ref().and_then(|s| s.assignment.as_ref()).is_some_and(|a| a.pod_uid == pod.uid);
            let why = if run.phase() != RunPhase::Running || !on_pod {
                format!("{} is {:?}, not Running on {}", run.name_any(), run.phase(), pod.name)
            } else if head != Some(&pr.head_sha) {
                format!("{} reviews {}, not the last pushed head of {}", run.name_any(), &pr.head_sha[..7], pr.url)
            } else if !urls.insert(pr.url.clone()) {
                format!("{} has two unfinished runs", pr.url)
            } else {
                continue;
            };
            return Ok(Err(NotQuiet::new(why)));
        }
        let mut queue = status.queue.clone();
        queue.sort();
        let mut names: Vec<String> = unfinished.iter().map(ResourceExt::name_any).collect();
        names.sort();
        if queue != names {
            return Ok(Err(NotQuiet::new(format!("its queue is {queue:?}, its unfinished runs {names:?}"))));
        }
        Ok(Ok(Quiet { pod: pod.name, restarts: status.restarts, running: unfinished }))
    }

    /// A run the scenario created a while ago that is Pending says why.
    fn check_pending_reasons(&mut self, runs: &[ReviewRun]) {
        for run in runs.iter().filter(|r| r.phase() == RunPhase::Pending) {
            let name = run.name_any();
            let old = self.created.get(&name).is_some_and(|c| c.at.elapsed() > PENDING_REASON_AFTER);
            let reason = run
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Succeeded"))
                .map(|c| c.reason.clone())
                .unwrap_or_default();
            if old && reason.is_empty() {
                let violation = format!("run {name} is Pending without a reason");
                if !self.violations.contains(&violation) {
                    self.violations.push(violation);
                }
            }
        }
    }
}
