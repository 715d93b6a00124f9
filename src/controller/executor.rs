//! Executing a [`ReviewerPlan`]: the API writes, in the order the [`plan`]
//! module documents, and nothing else.
//!
//! Statuses are written with server-side apply under the controller's field
//! manager, with the `resourceVersion` the plan was made from as a
//! precondition: a 409 Conflict means the plan was made on an outdated view
//! and is dropped ([`ExecuteError::Outdated`]), never applied over newer
//! data. Labels and finalizers are merge patches. Pods are deleted with a UID
//! precondition; 404 on delete and 409 on create count as done.
//!
//! [`plan`]: super::plan

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::AgentLaunch;
use super::plan::{
    ApiErrorClass, EventKind, EventObject, FinalizerChange, LaunchError, ObservedReviewer, PlannedEvent, PodOperation,
    ReviewerPlan, RunChange, RunUpdate, plan_launch_failure,
};
use super::pod::reviewer_pod;
use crate::api::{FINALIZER, GROUP, ReviewRun, ReviewRunStatus, Reviewer, ReviewerStatus, VERSION};
use crate::metrics::{Metrics, RestartLabels};

/// Why executing a plan stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// A write's `resourceVersion` precondition failed: the plan was made on
    /// an outdated view of the object. Nothing after it was written.
    #[error("{object} changed since it was observed; the plan is dropped")]
    Outdated { object: String },
    /// A write failed; the plan stopped there.
    #[error("{action} {object}: {source}")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting or creating the reviewer pod failed with a transient error;
    /// the Reviewer is marked Degraded and the reconcile must be retried.
    #[error("cannot start the reviewer pod: {message}")]
    LaunchTransient { message: String },
}

impl ExecuteError {
    /// Short label of the error for the `reconcile_errors{kind}` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Outdated { .. } => "conflict",
            Self::Api { .. } => "api",
            Self::LaunchTransient { .. } => "launch",
        }
    }
}

/// The highest `resourceVersion` each write of an execution returned, per
/// resource: a reconcile must not plan on caches older than these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub reviewers: u64,
    pub runs: u64,
    pub pods: u64,
}

impl Written {
    /// Keeps the higher of both marks per resource.
    pub fn merge(&mut self, other: Written) {
        self.reviewers = self.reviewers.max(other.reviewers);
        self.runs = self.runs.max(other.runs);
        self.pods = self.pods.max(other.pods);
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Executes plans against the API server.
pub struct Executor<'a> {
    pub client: &'a kube::Client,
    pub field_manager: &'a str,
    pub recorder: &'a Recorder,
    pub metrics: &'a Metrics,
    pub agent: &'a AgentLaunch,
}

/// One execution: the plan's target and the versions of what it writes.
struct Run<'a> {
    executor: &'a Executor<'a>,
    observed: &'a ObservedReviewer,
    namespace: &'a str,
    /// Current `resourceVersion` of every run and of the Reviewer, advanced
    /// by each write, so that consecutive writes chain their preconditions.
    run_versions: BTreeMap<String, String>,
    reviewer_version: Option<String>,
    written: Written,
    created: Executed,
}

/// What an execution that succeeded did beyond its writes' versions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Executed {
    /// The plan's pod was created (not found existing, not failed).
    pub pod_created: bool,
}

impl Executor<'_> {
    /// Applies `plan` (made from `observed` in `namespace`). `written`
    /// receives the versions of every successful write, also when an error
    /// stops the execution.
    pub async fn execute(
        &self,
        namespace: &str,
        observed: &ObservedReviewer,
        plan: &ReviewerPlan,
        written: &mut Written,
    ) -> Result<Executed, ExecuteError> {
        let mut run = Run {
            executor: self,
            observed,
            namespace,
            run_versions: observed
                .runs
                .iter()
                .filter_map(|r| Some((r.metadata.name.clone()?, r.metadata.resource_version.clone()?)))
                .collect(),
            reviewer_version: observed.reviewer.as_ref().and_then(|r| r.metadata.resource_version.clone()),
            written: Written::default(),
            created: Executed::default(),
        };
        let result = run.execute(plan).await;
        written.merge(run.written);
        result.map(|()| run.created)
    }
}

impl Run<'_> {
    async fn execute(&mut self, plan: &ReviewerPlan) -> Result<(), ExecuteError> {
        if plan.finalizer == FinalizerChange::Add {
            self.patch_finalizers(true).await?;
        }
        for labels in &plan.run_labels {
            let patch = json!({ "metadata": { "labels": labels.labels } });
            let params =
                PatchParams { field_manager: Some(self.executor.field_manager.to_owned()), ..Default::default() };
            let updated = self
                .runs()
                .patch(&labels.run, &params, &Patch::Merge(&patch))
                .await
                .map_err(|source| api_error("label", &labels.run, source))?;
            self.record_run(&updated);
        }
        self.write_run_statuses(&plan.run_updates).await?;
        if let Some(status) = &plan.reviewer_status {
            self.write_reviewer_status(status).await?;
        }
        if let Err(error) = self.change_pods(plan).await {
            return self.handle_launch_failure(plan, error).await;
        }
        if let Some(restart) = &plan.restart {
            let reason = format!("{:?}", restart.reason);
            self.executor.metrics.restarts.get_or_create(&RestartLabels { reason }).inc();
            self.observe_supersede_latency(plan);
        }
        if plan.finalizer == FinalizerChange::Remove {
            self.patch_finalizers(false).await?;
        }
        self.emit(&plan.events).await;
        Ok(())
    }

    fn runs(&self) -> Api<ReviewRun> {
        Api::namespaced(self.executor.client.clone(), self.namespace)
    }

    fn reviewers(&self) -> Api<Reviewer> {
        Api::namespaced(self.executor.client.clone(), self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.executor.client.clone(), self.namespace)
    }

    fn record_run(&mut self, run: &ReviewRun) {
        if let (Some(name), Some(version)) = (&run.metadata.name, &run.metadata.resource_version) {
            self.written.runs = self.written.runs.max(numeric(version));
            self.run_versions.insert(name.clone(), version.clone());
        }
    }

    fn record_reviewer(&mut self, reviewer: &Reviewer) {
        if let Some(version) = &reviewer.metadata.resource_version {
            self.written.reviewers = self.written.reviewers.max(numeric(version));
            self.reviewer_version = Some(version.clone());
        }
    }

    fn record_pod(&mut self, pod: &Pod) {
        if let Some(version) = &pod.metadata.resource_version {
            self.written.pods = self.written.pods.max(numeric(version));
        }
    }

    /// Adds or removes the finalizer, keeping any others, on the observed
    /// version of the Reviewer.
    async fn patch_finalizers(&mut self, add: bool) -> Result<(), ExecuteError> {
        let Some(reviewer) = &self.observed.reviewer else { return Ok(()) };
        let mut finalizers: Vec<String> = reviewer.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        if add {
            finalizers.push(FINALIZER.to_owned());
        }
        let patch = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": self.reviewer_version } });
        let params = PatchParams { field_manager: Some(self.executor.field_manager.to_owned()), ..Default::default() };
        let name = &self.observed.name;
        match self.reviewers().patch(name, &params, &Patch::Merge(&patch)).await {
            Ok(updated) => {
                self.record_reviewer(&updated);
                Ok(())
            }
            // The Reviewer is gone once its last finalizer is removed.
            Err(kube::Error::Api(status)) if !add && status.is_not_found() => Ok(()),
            Err(source) => Err(api_error("update finalizers of", &format!("Reviewer {name}"), source)),
        }
    }

    async fn write_run_statuses(&mut self, updates: &[RunUpdate]) -> Result<(), ExecuteError> {
        for update in updates {
            let version = self.run_versions.get(&update.run).cloned();
            // The result belongs to the reviewer pod, which writes it with
            // the move to Succeeded; the API makes it final. Echoing it back
            // could only change it (timestamps lose their fraction in a
            // round trip through metav1.Time), so the controller never
            // applies it and never owns it.
            let status = ReviewRunStatus { result: None, ..update.status.clone() };
            let body = json!({
                "apiVersion": format!("{GROUP}/{VERSION}"),
                "kind": "ReviewRun",
                "metadata": { "name": update.run, "resourceVersion": version },
                "status": status,
            });
            let result = self.runs().patch_status(&update.run, &self.apply_params(), &Patch::Apply(&body)).await;
            let updated =
                result.map_err(|source| api_error("write status of", &format!("ReviewRun {}", update.run), source))?;
            self.record_run(&updated);
            let sha = &updated.spec.pull_request.head_sha;
            tracing::debug!(run = %update.run, %sha, change = ?update.change, "run status written");
            let metrics = self.executor.metrics;
            let counter = match update.change {
                RunChange::Superseded => Some(&metrics.supersedes),
                RunChange::Late => Some(&metrics.late_runs),
                RunChange::Duplicate => Some(&metrics.duplicate_runs),
                _ => None,
            };
            if let Some(counter) = counter {
                counter.inc();
            }
        }
        Ok(())
    }

    async fn write_reviewer_status(&mut self, status: &ReviewerStatus) -> Result<(), ExecuteError> {
        let name = &self.observed.name;
        let body = json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "Reviewer",
            "metadata": { "name": name, "resourceVersion": self.reviewer_version },
            "status": status,
        });
        let result = self.reviewers().patch_status(name, &self.apply_params(), &Patch::Apply(&body)).await;
        let updated = result.map_err(|source| api_error("write status of", &format!("Reviewer {name}"), source))?;
        self.record_reviewer(&updated);
        let depth = i64::try_from(status.queue.len()).unwrap_or(i64::MAX);
        let labels = crate::metrics::ReviewerLabels { namespace: self.namespace.to_owned(), reviewer: name.clone() };
        self.executor.metrics.queue_depth.get_or_create(&labels).set(depth);
        Ok(())
    }

    fn apply_params(&self) -> PatchParams {
        // Forced: the reviewer pod writes its verdict into the same status
        // under its own manager; the resourceVersion precondition, not field
        // ownership, protects newer data.
        PatchParams::apply(self.executor.field_manager).force()
    }

    /// Steps 5 and 6: pod deletions, then the pod creation.
    async fn change_pods(&mut self, plan: &ReviewerPlan) -> Result<(), LaunchError> {
        for deletion in &plan.pod_deletions {
            let params = DeleteParams {
                preconditions: Some(Preconditions { uid: Some(deletion.uid.clone()), resource_version: None }),
                ..DeleteParams::default()
            };
            match self.pods().delete(&deletion.name, &params).await {
                Ok(either) => {
                    if let Some(pod) = either.left() {
                        self.record_pod(&pod);
                    }
                    tracing::info!(pod = %deletion.name, uid = %deletion.uid, "reviewer pod deleted");
                }
                Err(error) => classify(PodOperation::Delete, error)?,
            }
        }
        let Some(launch) = &plan.pod_creation else { return Ok(()) };
        let Some(reviewer) = &self.observed.reviewer else { return Ok(()) };
        let Some(pod) = reviewer_pod(reviewer, launch, self.executor.agent) else {
            return Err(LaunchError {
                class: ApiErrorClass::Permanent,
                message: format!("Reviewer {} has no name, namespace or UID", self.observed.name),
            });
        };
        let params = PostParams { field_manager: Some(self.executor.field_manager.to_owned()), dry_run: false };
        match self.pods().create(&params, &pod).await {
            Ok(created) => {
                self.record_pod(&created);
                self.created.pod_created = true;
                tracing::info!(pod = %launch.name, incarnation = launch.incarnation, queue = ?launch.queue, "reviewer pod created");
                Ok(())
            }
            Err(error) => classify(PodOperation::Create, error),
        }
    }

    /// Writes what [`plan_launch_failure`] says after a pod operation failed.
    async fn handle_launch_failure(&mut self, plan: &ReviewerPlan, error: LaunchError) -> Result<(), ExecuteError> {
        tracing::warn!(error = %error.message, class = ?error.class, "reviewer pod operation failed");
        let failure = plan_launch_failure(self.observed, plan, &error, Timestamp::now());
        self.write_run_statuses(&failure.run_updates).await?;
        if let Some(status) = &failure.reviewer_status {
            self.write_reviewer_status(status).await?;
        }
        // The plan's own events describe writes that did happen (statuses);
        // the failure's events say what did not.
        self.emit(&plan.events).await;
        self.emit(&failure.events).await;
        if failure.retry { Err(ExecuteError::LaunchTransient { message: error.message }) } else { Ok(()) }
    }

    fn observe_supersede_latency(&self, plan: &ReviewerPlan) {
        // The newest run that superseded work on the replaced pod.
        let superseding = plan
            .run_updates
            .iter()
            .filter(|u| u.change == RunChange::Superseded)
            .filter_map(|u| u.status.superseded_by.as_deref())
            .filter_map(|name| self.observed.runs.iter().find(|r| r.metadata.name.as_deref() == Some(name)))
            .filter_map(|run| run.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .max();
        if let Some(created) = superseding {
            let seconds = Timestamp::now().duration_since(created).as_secs_f64().max(0.0);
            self.executor.metrics.supersede_to_restart.observe(seconds);
        }
    }

    /// Emits events; a failure to publish one is logged, never fatal.
    async fn emit(&self, events: &[PlannedEvent]) {
        for planned in events {
            let Some(reference) = self.reference(&planned.object) else { continue };
            let event = Event {
                type_: match planned.kind {
                    EventKind::Normal => EventType::Normal,
                    EventKind::Warning => EventType::Warning,
                },
                reason: planned.reason.to_owned(),
                note: Some(planned.note.clone()),
                action: "Reconcile".to_owned(),
                secondary: None,
            };
            if let Err(error) = self.executor.recorder.publish(&event, &reference).await {
                tracing::warn!(%error, reason = planned.reason, "cannot publish event");
            }
        }
    }

    fn reference(&self, object: &EventObject) -> Option<ObjectReference> {
        match object {
            EventObject::Reviewer => self.observed.reviewer.as_ref().map(|r| r.object_ref(&())),
            EventObject::Run(name) => self
                .observed
                .runs
                .iter()
                .find(|run| run.metadata.name.as_deref() == Some(name.as_str()))
                .map(|run| run.object_ref(&())),
        }
    }
}

/// `Ok` for errors that mean done, the classified error otherwise.
fn classify(operation: PodOperation, error: kube::Error) -> Result<(), LaunchError> {
    let (code, message) = match &error {
        kube::Error::Api(status) => (Some(status.code), status.message.clone()),
        other => (None, other.to_string()),
    };
    match ApiErrorClass::of(operation, code) {
        ApiErrorClass::Done => Ok(()),
        class => Err(LaunchError { class, message }),
    }
}

fn api_error(action: &'static str, object: &str, source: kube::Error) -> ExecuteError {
    match &source {
        kube::Error::Api(status) if status.is_conflict() => ExecuteError::Outdated { object: object.to_owned() },
        _ => ExecuteError::Api { action, object: object.to_owned(), source },
    }
}

/// A `resourceVersion` as a number: etcd revisions on real clusters and the
/// dev cluster's revision counter. Unparsable versions count as 0, which
/// disables the wait for that write.
pub fn numeric(version: &str) -> u64 {
    version.parse().unwrap_or(0)
}
