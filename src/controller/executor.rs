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
//! Writes to different runs do not depend on each other, so the labels, and
//! then the statuses, of a plan's runs are written concurrently (at most
//! [`CONCURRENT_WRITES`] at a time); each step of the plan's order still
//! completes before the next begins. Events are queued ([`EventQueue`]),
//! not awaited.
//!
//! [`plan`]: super::plan

use std::collections::BTreeMap;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::AgentLaunch;
use super::events::EventQueue;
use super::plan::{
    ApiErrorClass, EventKind, EventObject, FinalizerChange, LaunchError, ObservedPod, ObservedReviewer, PlannedEvent,
    PodOperation, ReviewerPlan, RunChange, RunUpdate, plan_launch_failure,
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
pub struct WriteMarks {
    pub reviewers: u64,
    pub runs: u64,
    pub pods: u64,
}

impl WriteMarks {
    /// Keeps the higher of both marks per resource.
    pub fn merge(&mut self, other: WriteMarks) {
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
    pub events: &'a EventQueue,
    pub metrics: &'a Metrics,
    pub agent: &'a AgentLaunch,
}

/// Writes to runs in flight at once.
pub const CONCURRENT_WRITES: usize = 16;

/// One execution: the plan's target and the versions of what it writes.
struct Execution<'a> {
    executor: &'a Executor<'a>,
    observed: &'a ObservedReviewer,
    namespace: &'a str,
    /// Every run as its latest write returned it; later writes take their
    /// `resourceVersion` precondition from here.
    runs_written: BTreeMap<String, ReviewRun>,
    /// The Reviewer as its latest write returned it.
    reviewer_written: Option<Reviewer>,
    /// Pods deleted, with the pod the API returned while it terminates.
    pods_deleted: Vec<(String, Option<Pod>)>,
    pod_created: Option<Pod>,
    written: WriteMarks,
}

/// What an execution that succeeded did beyond its writes' versions.
#[derive(Clone, Debug, Default)]
pub struct Executed {
    /// Set when the plan's pod was created (not found existing, not
    /// failed): the Reviewer as the API's answers to this execution show it,
    /// with the new pod, so that the reconcile can plan the pod's queue
    /// without waiting for the stores to show it.
    pub after_launch: Option<ObservedReviewer>,
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
        written: &mut WriteMarks,
    ) -> Result<Executed, ExecuteError> {
        let mut execution = Execution {
            executor: self,
            observed,
            namespace,
            runs_written: BTreeMap::new(),
            reviewer_written: None,
            pods_deleted: Vec::new(),
            pod_created: None,
            written: WriteMarks::default(),
        };
        let result = execution.execute(plan).await;
        written.merge(execution.written);
        result?;
        Ok(Executed { after_launch: execution.pod_created.is_some().then(|| execution.observed_after()) })
    }
}

impl Execution<'_> {
    async fn execute(&mut self, plan: &ReviewerPlan) -> Result<(), ExecuteError> {
        if plan.finalizer == FinalizerChange::Add {
            self.patch_finalizers(true).await?;
        }
        self.write_run_statuses(&plan.run_updates).await?;
        self.write_run_labels(plan).await?;
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
        self.emit(&plan.events);
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

    /// The `resourceVersion` a write to the run `name` must find.
    fn run_version(&self, name: &str) -> Option<String> {
        match self.runs_written.get(name) {
            Some(written) => written.metadata.resource_version.clone(),
            None => self.observed.run(name).and_then(|run| run.metadata.resource_version.clone()),
        }
    }

    fn reviewer_version(&self) -> Option<String> {
        self.reviewer_written.as_ref().or(self.observed.reviewer.as_ref())?.metadata.resource_version.clone()
    }

    fn record_run(&mut self, run: ReviewRun) {
        if let (Some(name), Some(version)) = (&run.metadata.name, &run.metadata.resource_version) {
            self.written.runs = self.written.runs.max(numeric(version));
            self.runs_written.insert(name.clone(), run);
        }
    }

    fn record_reviewer(&mut self, reviewer: Reviewer) {
        if let Some(version) = &reviewer.metadata.resource_version {
            self.written.reviewers = self.written.reviewers.max(numeric(version));
            self.reviewer_written = Some(reviewer);
        }
    }

    fn record_pod(&mut self, pod: &Pod) {
        if let Some(version) = &pod.metadata.resource_version {
            self.written.pods = self.written.pods.max(numeric(version));
        }
    }

    /// The observed Reviewer with every object this execution wrote as the
    /// API returned it.
    fn observed_after(&self) -> ObservedReviewer {
        let mut after = self.observed.clone();
        for run in &mut after.runs {
            if let Some(written) = run.metadata.name.as_ref().and_then(|name| self.runs_written.get(name)) {
                *run = written.clone();
            }
        }
        if let Some(reviewer) = &self.reviewer_written {
            after.reviewer = Some(reviewer.clone());
        }
        for (name, terminating) in &self.pods_deleted {
            after.pods.retain(|pod| &pod.name != name);
            after.pods.extend(terminating.as_ref().and_then(ObservedPod::from_pod));
        }
        after.pods.extend(self.pod_created.as_ref().and_then(ObservedPod::from_pod));
        after
    }

    /// Adds or removes the finalizer, keeping any others, on the observed
    /// version of the Reviewer.
    async fn patch_finalizers(&mut self, add: bool) -> Result<(), ExecuteError> {
        let Some(reviewer) = &self.observed.reviewer else { return Ok(()) };
        let mut finalizers: Vec<String> = reviewer.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        if add {
            finalizers.push(FINALIZER.to_owned());
        }
        let patch = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": self.reviewer_version() } });
        let params = PatchParams { field_manager: Some(self.executor.field_manager.to_owned()), ..Default::default() };
        let name = &self.observed.name;
        match self.reviewers().patch(name, &params, &Patch::Merge(&patch)).await {
            Ok(updated) => {
                self.record_reviewer(updated);
                Ok(())
            }
            // The Reviewer is gone once its last finalizer is removed.
            Err(kube::Error::Api(status)) if !add && status.is_not_found() => Ok(()),
            Err(source) => Err(api_error("update finalizers of", &format!("Reviewer {name}"), source)),
        }
    }

    async fn write_run_labels(&mut self, plan: &ReviewerPlan) -> Result<(), ExecuteError> {
        let api = self.runs();
        let params = PatchParams { field_manager: Some(self.executor.field_manager.to_owned()), ..Default::default() };
        // Collected first: a lazy iterator of futures borrowing the plan is not Send for every lifetime.
        let writes: Vec<_> = plan
            .run_labels
            .iter()
            .map(|labels| {
                let (api, params) = (&api, &params);
                async move {
                    let patch = json!({ "metadata": { "labels": labels.labels } });
                    api.patch(&labels.run, params, &Patch::Merge(&patch))
                        .await
                        .map_err(|source| api_error("label", &labels.run, source))
                }
            })
            .collect();
        let results: Vec<_> = stream::iter(writes).buffer_unordered(CONCURRENT_WRITES).collect().await;
        self.record_runs(results)
    }

    /// Records every run written; the first error, if any.
    fn record_runs(&mut self, results: Vec<Result<ReviewRun, ExecuteError>>) -> Result<(), ExecuteError> {
        let mut first_error = None;
        for result in results {
            match result {
                Ok(run) => self.record_run(run),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn write_run_statuses(&mut self, updates: &[RunUpdate]) -> Result<(), ExecuteError> {
        let api = self.runs();
        let params = self.apply_params();
        let metrics = self.executor.metrics;
        let writes: Vec<_> = updates
            .iter()
            .map(|update| {
                let version = self.run_version(&update.run);
                let (api, params) = (&api, &params);
                async move {
                    // The result belongs to the reviewer pod, which writes it
                    // with the move to Succeeded; the API makes it final. Echoing
                    // it back could only change it (timestamps lose their
                    // fraction in a round trip through metav1.Time), so the
                    // controller never applies it and never owns it.
                    let status = ReviewRunStatus { result: None, ..update.status.clone() };
                    let body = json!({
                        "apiVersion": format!("{GROUP}/{VERSION}"),
                        "kind": "ReviewRun",
                        "metadata": { "name": update.run, "resourceVersion": version },
                        "status": status,
                    });
                    let updated = api
                        .patch_status(&update.run, params, &Patch::Apply(&body))
                        .await
                        .map_err(|source| api_error("write status of", &format!("ReviewRun {}", update.run), source))?;
                    let sha = &updated.spec.pull_request.head_sha;
                    tracing::debug!(run = %update.run, %sha, change = ?update.change, "run status written");
                    let counter = match update.change {
                        RunChange::Superseded => Some(&metrics.supersedes),
                        RunChange::Late => Some(&metrics.late_runs),
                        RunChange::Duplicate => Some(&metrics.duplicate_runs),
                        _ => None,
                    };
                    if let Some(counter) = counter {
                        counter.inc();
                    }
                    Ok(updated)
                }
            })
            .collect();
        let results: Vec<_> = stream::iter(writes).buffer_unordered(CONCURRENT_WRITES).collect().await;
        self.record_runs(results)
    }

    async fn write_reviewer_status(&mut self, status: &ReviewerStatus) -> Result<(), ExecuteError> {
        let name = &self.observed.name;
        let body = json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "Reviewer",
            "metadata": { "name": name, "resourceVersion": self.reviewer_version() },
            "status": status,
        });
        let result = self.reviewers().patch_status(name, &self.apply_params(), &Patch::Apply(&body)).await;
        let updated = result.map_err(|source| api_error("write status of", &format!("Reviewer {name}"), source))?;
        self.record_reviewer(updated);
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
                    let terminating = either.left();
                    if let Some(pod) = &terminating {
                        self.record_pod(pod);
                    }
                    self.pods_deleted.push((deletion.name.clone(), terminating));
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
                tracing::info!(pod = %launch.name, incarnation = launch.incarnation, queue = ?launch.queue, "reviewer pod created");
                self.pod_created = Some(created);
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
        self.emit(&plan.events);
        self.emit(&failure.events);
        if failure.retry { Err(ExecuteError::LaunchTransient { message: error.message }) } else { Ok(()) }
    }

    fn observe_supersede_latency(&self, plan: &ReviewerPlan) {
        // The newest run that superseded work on the replaced pod.
        let superseding = plan
            .run_updates
            .iter()
            .filter(|u| u.change == RunChange::Superseded)
            .filter_map(|u| u.status.superseded_by.as_deref())
            .filter_map(|name| self.observed.run(name))
            .filter_map(|run| run.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .max();
        if let Some(created) = superseding {
            let seconds = Timestamp::now().duration_since(created).as_secs_f64().max(0.0);
            self.executor.metrics.supersede_to_restart.observe(seconds);
        }
    }

    /// Queues events for publishing.
    fn emit(&self, events: &[PlannedEvent]) {
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
            self.executor.events.publish(event, reference);
        }
    }

    fn reference(&self, object: &EventObject) -> Option<ObjectReference> {
        match object {
            EventObject::Reviewer => self.observed.reviewer.as_ref().map(|r| r.object_ref(&())),
            EventObject::Run(name) => self.observed.run(name).map(|run| run.object_ref(&())),
        }
    }
}

/// `Ok` for errors that mean done, the classified error otherwise.
fn classify(operation: PodOperation, error: kube::Error) -> Result<(), LaunchError> {
    let (code, message) = match &error {
        kube::Error::Api(status) => (Some(status.code), status.message.clone()),
        other => (None, other.to_string()),
    };
    match ApiErrorClass::of(operation, code, &message) {
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
