//! Executing a [`ReviewerPlan`]: its [`Step`]s in order, each an API write
//! (or queued events), and nothing else. The executor never plans: when a
//! step fails it stops and says which and how ([`StepFailed`]); what to do
//! then is the reconcile's decision.
//!
//! Statuses are written with server-side apply under the controller's field
//! manager, with the `resourceVersion` the plan was made from as a
//! precondition: a 409 Conflict means the plan was made on an outdated view
//! ([`StepError::Outdated`]), never applied over newer data. Labels and
//! finalizers are merge patches. Pods are deleted with a UID precondition;
//! 404 on delete and 409 on create count as done.
//!
//! Writes to different runs do not depend on each other, so the runs of one
//! step are written concurrently (at most [`CONCURRENT_WRITES`] at a time);
//! each step still completes before the next begins. Events are queued
//! ([`EventQueue`]), not awaited.
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
use super::lean::LeanRun;
use super::plan::{
    ApiErrorClass, EventKind, EventObject, LaunchError, ObservedPod, ObservedReviewer, PlannedEvent, PodDeletion,
    PodLaunch, PodOperation, ReviewerPlan, RunChange, RunDeletion, RunLabels, RunUpdate, Step,
};
use super::pod::reviewer_pod;
use crate::api::{FINALIZER, GROUP, ReviewRun, ReviewRunStatus, Reviewer, ReviewerStatus, VERSION};
use crate::metrics::{Metrics, RestartLabels};

/// Why executing a plan stopped: the step that failed, and how.
#[derive(Debug, thiserror::Error)]
#[error("step {index} ({step}) of the plan: {error}")]
pub struct StepFailed {
    /// Index of the step in [`ReviewerPlan::steps`]; the steps before it
    /// were written, none after it.
    pub index: usize,
    /// [`Step::name`] of the step.
    pub step: &'static str,
    #[source]
    pub error: StepError,
}

/// How a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A write's `resourceVersion` precondition failed: the plan was made on
    /// an outdated view of the object.
    #[error("{object} changed since it was observed; the plan is dropped")]
    Outdated { object: String },
    /// A write failed.
    #[error("{action} {object}: {source}")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting or creating the reviewer pod failed, classified for
    /// [`plan_launch_failure`](super::plan::plan_launch_failure).
    #[error("cannot start the reviewer pod: {}", .0.message)]
    Pod(LaunchError),
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

/// What the API answered to the writes of one or more executions for one
/// Reviewer. Later writes take their `resourceVersion` preconditions from
/// here; a reconcile that plans again right after its writes plans on the
/// observed state with these answers applied ([`Answers::applied_to`]).
#[derive(Clone, Debug, Default)]
pub struct Answers {
    /// Every run as its latest write returned it.
    runs: BTreeMap<String, ReviewRun>,
    /// Runs deleted (or found gone).
    runs_deleted: Vec<String>,
    /// The Reviewer as its latest write returned it.
    reviewer: Option<Reviewer>,
    /// Pods deleted, with the pod the API returned while it terminates.
    pods_deleted: Vec<(String, Option<Pod>)>,
    pod_created: Option<Pod>,
    marks: WriteMarks,
}

impl Answers {
    /// The versions the writes returned.
    pub fn marks(&self) -> WriteMarks {
        self.marks
    }

    /// Whether a pod was created (not found existing, not failed).
    pub fn created_pod(&self) -> bool {
        self.pod_created.is_some()
    }

    /// `observed` with every object written as the API returned it.
    pub fn applied_to(&self, observed: &ObservedReviewer) -> ObservedReviewer {
        let mut after = observed.clone();
        after.runs.retain(|run| !run.metadata.name.as_ref().is_some_and(|name| self.runs_deleted.contains(name)));
        for run in &mut after.runs {
            if let Some(written) = run.metadata.name.as_ref().and_then(|name| self.runs.get(name)) {
                *run = written.clone();
            }
        }
        if let Some(reviewer) = &self.reviewer {
            after.reviewer = Some(reviewer.clone());
        }
        for (name, terminating) in &self.pods_deleted {
            after.pods.retain(|pod| &pod.name != name);
            after.pods.extend(terminating.as_ref().and_then(ObservedPod::from_pod));
        }
        after.pods.extend(self.pod_created.as_ref().and_then(ObservedPod::from_pod));
        after
    }

    fn record_run(&mut self, run: ReviewRun) {
        if let (Some(name), Some(version)) = (&run.metadata.name, &run.metadata.resource_version) {
            self.marks.runs = self.marks.runs.max(numeric(version));
            self.runs.insert(name.clone(), run);
        }
    }

    fn record_reviewer(&mut self, reviewer: Reviewer) {
        if let Some(version) = &reviewer.metadata.resource_version {
            self.marks.reviewers = self.marks.reviewers.max(numeric(version));
            self.reviewer = Some(reviewer);
        }
    }

    fn record_pod(&mut self, pod: &Pod) {
        if let Some(version) = &pod.metadata.resource_version {
            self.marks.pods = self.marks.pods.max(numeric(version));
        }
    }
}

/// Records every success of a step's concurrent writes, so that later
/// writes find what the API answered; the first error, if any.
fn record_each<T>(results: Vec<Result<T, StepError>>, mut record: impl FnMut(T)) -> Result<(), StepError> {
    let mut first_error = None;
    for result in results {
        match result {
            Ok(answer) => record(answer),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Deletes only the object with this UID, never a newer one of the same name.
fn only_uid(uid: &str) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid.to_owned()), resource_version: None }),
        ..DeleteParams::default()
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

/// One execution: the plan's target and what the API answered so far.
struct Execution<'a> {
    executor: &'a Executor<'a>,
    observed: &'a ObservedReviewer,
    namespace: &'a str,
    answers: &'a mut Answers,
}

impl Executor<'_> {
    /// Runs the steps of `plan` (made from `observed` in `namespace`) in
    /// order, and stops at the first that fails. `answers` holds what the
    /// API answered to earlier writes for this Reviewer, if any, and
    /// receives the answer to every successful write, also when a step
    /// fails.
    pub async fn execute(
        &self,
        namespace: &str,
        observed: &ObservedReviewer,
        plan: &ReviewerPlan,
        answers: &mut Answers,
    ) -> Result<(), StepFailed> {
        let mut execution = Execution { executor: self, observed, namespace, answers };
        for (index, step) in plan.steps.iter().enumerate() {
            if let Err(error) = execution.run(step).await {
                return Err(StepFailed { index, step: step.name(), error });
            }
        }
        if let Some(restart) = &plan.restart {
            let reason = format!("{:?}", restart.reason);
            self.metrics.restarts.get_or_create(&RestartLabels { reason }).inc();
            execution.observe_supersede_latency(plan);
        }
        Ok(())
    }
}

impl Execution<'_> {
    async fn run(&mut self, step: &Step) -> Result<(), StepError> {
        match step {
            Step::AddFinalizer => self.patch_finalizers(true).await,
            Step::WriteRunStatuses(updates) => self.write_run_statuses(updates).await,
            Step::LabelRuns(labels) => self.write_run_labels(labels).await,
            Step::DeleteRuns(deletions) => self.delete_runs(deletions).await,
            Step::WriteReviewerStatus(status) => self.write_reviewer_status(status).await,
            Step::DeletePod(deletion) => self.delete_pod(deletion).await.map_err(StepError::Pod),
            Step::CreatePod(launch) => self.create_pod(launch).await.map_err(StepError::Pod),
            Step::RemoveFinalizer => self.patch_finalizers(false).await,
            Step::EmitEvents(events) => {
                self.emit(events);
                Ok(())
            }
        }
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
        match self.answers.runs.get(name) {
            Some(written) => written.metadata.resource_version.clone(),
            None => self.observed.run(name).and_then(|run| run.metadata.resource_version.clone()),
        }
    }

    fn reviewer_version(&self) -> Option<String> {
        self.answers.reviewer.as_ref().or(self.observed.reviewer.as_ref())?.metadata.resource_version.clone()
    }

    /// Adds or removes the finalizer, keeping any others, on the observed
    /// version of the Reviewer.
    async fn patch_finalizers(&mut self, add: bool) -> Result<(), StepError> {
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
                self.answers.record_reviewer(updated);
                Ok(())
            }
            // The Reviewer is gone once its last finalizer is removed.
            Err(kube::Error::Api(status)) if !add && status.is_not_found() => Ok(()),
            Err(source) => Err(api_error("update finalizers of", &format!("Reviewer {name}"), source)),
        }
    }

    async fn write_run_labels(&mut self, labels: &[RunLabels]) -> Result<(), StepError> {
        let api = self.runs();
        let params = PatchParams { field_manager: Some(self.executor.field_manager.to_owned()), ..Default::default() };
        // Collected first: a lazy iterator of futures borrowing the plan is not Send for every lifetime.
        let writes: Vec<_> = labels
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

    /// Deletes expired runs with a UID precondition: 404 (already gone) and
    /// 409 (the name now belongs to a newer run) count as done.
    async fn delete_runs(&mut self, deletions: &[RunDeletion]) -> Result<(), StepError> {
        let api = self.runs();
        let metrics = self.executor.metrics;
        let deletes: Vec<_> = deletions
            .iter()
            .map(|deletion| {
                let api = &api;
                async move {
                    match api.delete(&deletion.name, &only_uid(&deletion.uid)).await {
                        Ok(_) => {
                            metrics.runs_expired.inc();
                            tracing::info!(run = %deletion.name, "expired run deleted");
                            Ok(deletion.name.clone())
                        }
                        Err(kube::Error::Api(status)) if status.is_not_found() || status.code == 409 => {
                            Ok(deletion.name.clone())
                        }
                        Err(source) => Err(api_error("delete", &format!("ReviewRun {}", deletion.name), source)),
                    }
                }
            })
            .collect();
        let results: Vec<_> = stream::iter(deletes).buffer_unordered(CONCURRENT_WRITES).collect().await;
        record_each(results, |name| self.answers.runs_deleted.push(name))
    }

    /// Records every run written; the first error, if any.
    fn record_runs(&mut self, results: Vec<Result<ReviewRun, StepError>>) -> Result<(), StepError> {
        record_each(results, |run| self.answers.record_run(run))
    }

    async fn write_run_statuses(&mut self, updates: &[RunUpdate]) -> Result<(), StepError> {
        // Each answer is a whole run: read without the field sets the controller never keeps.
        let api: Api<LeanRun> = Api::namespaced(self.executor.client.clone(), self.namespace);
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
                    let updated: ReviewRun = api
                        .patch_status(&update.run, params, &Patch::Apply(&body))
                        .await
                        .map_err(|source| api_error("write status of", &format!("ReviewRun {}", update.run), source))?
                        .into();
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

    async fn write_reviewer_status(&mut self, status: &ReviewerStatus) -> Result<(), StepError> {
        let name = &self.observed.name;
        let body = json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "Reviewer",
            "metadata": { "name": name, "resourceVersion": self.reviewer_version() },
            "status": status,
        });
        let result = self.reviewers().patch_status(name, &self.apply_params(), &Patch::Apply(&body)).await;
        let updated = result.map_err(|source| api_error("write status of", &format!("Reviewer {name}"), source))?;
        self.answers.record_reviewer(updated);
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

    /// Deletes a pod with a UID precondition, so that a newer pod of the
    /// same name is never deleted.
    async fn delete_pod(&mut self, deletion: &PodDeletion) -> Result<(), LaunchError> {
        match self.pods().delete(&deletion.name, &only_uid(&deletion.uid)).await {
            Ok(either) => {
                let terminating = either.left();
                if let Some(pod) = &terminating {
                    self.answers.record_pod(pod);
                }
                self.answers.pods_deleted.push((deletion.name.clone(), terminating));
                tracing::info!(pod = %deletion.name, uid = %deletion.uid, "reviewer pod deleted");
                Ok(())
            }
            Err(error) => classify(PodOperation::Delete, error),
        }
    }

    async fn create_pod(&mut self, launch: &PodLaunch) -> Result<(), LaunchError> {
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
                self.answers.record_pod(&created);
                tracing::info!(pod = %launch.name, incarnation = launch.incarnation, queue = ?launch.queue, "reviewer pod created");
                self.answers.pod_created = Some(created);
                Ok(())
            }
            Err(error) => classify(PodOperation::Create, error),
        }
    }

    fn observe_supersede_latency(&self, plan: &ReviewerPlan) {
        // The newest run that superseded work on the replaced pod.
        let superseding = plan
            .run_updates()
            .into_iter()
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

fn api_error(action: &'static str, object: &str, source: kube::Error) -> StepError {
    match &source {
        kube::Error::Api(status) if status.is_conflict() => StepError::Outdated { object: object.to_owned() },
        _ => StepError::Api { action, object: object.to_owned(), source },
    }
}

/// A `resourceVersion` as a number: etcd revisions on real clusters and the
/// dev cluster's revision counter. Unparsable versions count as 0, which
/// disables the wait for that write.
pub fn numeric(version: &str) -> u64 {
    version.parse().unwrap_or(0)
}
