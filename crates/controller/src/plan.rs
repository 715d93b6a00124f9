//! Planning a reconcile of one Reviewer: a pure function from what was
//! observed (the Reviewer, the ReviewRuns naming it, its pods, the time) to
//! the writes that bring the cluster to the desired state.
//!
//! # Executing a plan
//!
//! A [`ReviewerPlan`] is a list of [`Step`]s in this order, so that a
//! reconcile killed at any point converges on the next one:
//!
//! 1. add the finalizer ([`Step::AddFinalizer`]);
//! 2. write the run statuses ([`Step::WriteRunStatuses`]), which record
//!    a new run's creation `resourceVersion` before anything else changes it;
//! 3. merge the run labels ([`Step::LabelRuns`]);
//! 4. delete expired runs ([`Step::DeleteRuns`]), after the statuses that
//!    record what they told of their pull requests' histories;
//! 5. write the Reviewer status ([`Step::WriteReviewerStatus`]), which
//!    records the incarnation about to be created before creating it;
//! 6. delete pods with a UID precondition ([`Step::DeletePod`]);
//!    404 means done;
//! 7. create the pod ([`Step::CreatePod`]); 409 AlreadyExists
//!    means done, because pod names are derived from the incarnation;
//! 8. remove the finalizer ([`Step::RemoveFinalizer`]);
//! 9. emit the events ([`Step::EmitEvents`]); the reconcile then requeues
//!    after [`ReviewerPlan::requeue_after`].
//!
//! The executor runs the steps in order and stops at the first that fails.
//! If a pod step fails, [`plan_launch_failure`] plans what to write instead;
//! the reconcile, not the executor, calls it.
//!
//! Statuses are whole: empty fields are omitted when serialized (an emptied
//! `queue`, for instance). Write them with server-side apply under one field
//! manager, which removes the omitted fields it owns, not with a JSON merge
//! patch, which would keep them.
//!
//! # Rules
//!
//! The rules the planner implements, by name; the code refers to them so.
//!
//! - **Head only.** Per pull request, only runs of its head SHA are current,
//!   the head read from the runs' history of pushes in the API server's
//!   creation order ([`history`](crate::api::history)). A run of an older SHA
//!   fails as Superseded, naming the run that superseded it; one created
//!   after its SHA was replaced (a replay) fails at once, as a late run.
//! - **One review per head.** A further run for the head SHA while another
//!   run covers it (unfinished, or approved) fails as Duplicate; after
//!   ChangesRequested or a failure, a new run reviews again.
//! - **Cancel and time out.** `spec.cancelRequested` fails a run as
//!   Cancelled; a Running run past `spec.timeout` fails as TimedOut.
//! - **Fresh pod for stale work.** The live pod is replaced, never given new
//!   work, when a run assigned to it has failed as Superseded, Cancelled or
//!   TimedOut. The rule is level-based: a reconcile killed after failing such
//!   a run but before replacing the pod still replaces it next time, a
//!   replaced pod (new UID) is never replaced again for the same runs, and
//!   however many runs went stale, the pod is replaced once.
//! - **Assign to a started pod.** Runs are assigned to a pod only once it is
//!   known (its UID is part of the assignment) and runs: a plan that creates
//!   a pod assigns nothing, and the first plan that sees it Running and
//!   Ready assigns the queue to it, so that a run's timeout starts when a
//!   review can. A run of that queue with no status yet gets no Pending
//!   status in the creating plan ([`ReviewerPlan::deferred_updates`]), nor
//!   while that pod starts normally, for up to [`FIRST_STATUS_GRACE`] after
//!   its creation: when the pod runs within it, one write instead of two.
//!   A pod the kubelet or the scheduler reports as not starting ends the
//!   wait at once, so that the runs say why they are waiting.
//! - **Idempotent launch.** Pod names are derived from the incarnation, and
//!   the incarnation is recorded in the Reviewer status before the pod is
//!   created, so a launch repeated after a crash creates the same pod.
//! - **Launch deadline.** A pod that does not start (an image that cannot be
//!   pulled, a container the kubelet refuses, no node to run it) makes the
//!   Reviewer Degraded with the kubelet's or the scheduler's reason, and its
//!   waiting runs fail once `launchDeadline` has passed; the pod stays, as
//!   the kubelet keeps trying.
//! - **Crash back-off.** Pods that end soon after they start are replaced
//!   after an exponential back-off ([`CRASH_BACK_OFF_INITIAL`] doubling up
//!   to [`CRASH_BACK_OFF_MAX`], recorded in `status.crashBackOff`), since
//!   with `restartPolicy: Never` the kubelet never backs off.
//! - **Missing Reviewer waits.** Runs naming a Reviewer that does not exist
//!   wait, Pending, with `Succeeded=Unknown` (ReviewerNotFound).
//! - **Tear down.** A Reviewer being deleted fails its unfinished runs,
//!   deletes its pods, then removes its finalizer.
//! - **Expire finished runs.** A run finished for longer than its
//!   `spec.ttlSecondsAfterFinished` (or its Reviewer's
//!   `spec.runTtlSecondsAfterFinished`) is deleted, unless its delivery to
//!   GitHub is under way or its pull request's history needs it
//!   ([`prune`](crate::api::history::prune)): one run per pull request
//!   stays, with the commits the deleted ones told of recorded first.

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::{self, DesiredCondition};
use crate::api::history::heads::Standing;
use crate::api::history::{order, ordered_history, prune};
use crate::api::{
    ANNOTATION_CANCEL_REASON, Assignment, CONDITION_CURRENT, CONDITION_DEGRADED, CONDITION_ORDERED, CONDITION_READY,
    CONDITION_SUCCEEDED, CrashBackOff, FINALIZER, LastRestart, PodReference, REASON_REVIEWER_NOT_FOUND, RestartReason,
    ReviewRun, ReviewRunStatus, Reviewer, ReviewerStatus, RunPhase, RunReason, Verdict, duration, labels,
};

/// Everything the planner looks at for one Reviewer.
#[derive(Clone, Debug, Default)]
pub struct ObservedReviewer {
    /// Name of the Reviewer (the reconcile key), whether or not it exists.
    pub name: String,
    /// The Reviewer, `None` when it does not exist.
    pub reviewer: Option<Reviewer>,
    /// The ReviewRuns whose `spec.reviewer` names it; others are ignored.
    pub runs: Vec<ReviewRun>,
    /// The reviewer pods (label `review.ao.dev/reviewer`), see [`ObservedPod::from_pod`].
    pub pods: Vec<ObservedPod>,
}

impl ObservedReviewer {
    /// The observed run named `name`.
    pub fn run(&self, name: &str) -> Option<&ReviewRun> {
        self.runs.iter().find(|run| run.metadata.name.as_deref() == Some(name))
    }
}

/// What the planner needs to know about a reviewer pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedPod {
    pub name: String,
    pub uid: String,
    /// From the `review.ao.dev/incarnation` label.
    pub incarnation: i64,
    pub phase: PodPhase,
    /// Every container is ready.
    pub ready: bool,
    /// The pod has a deletion timestamp.
    pub deleting: bool,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
    /// When the agent container last started running.
    pub started_at: Option<Timestamp>,
    /// Why a pod that has not started is not starting, as the kubelet or
    /// the scheduler says it; see [`not_starting`].
    pub not_starting: Option<String>,
    /// How a finished pod ended.
    pub ended: Option<PodEnd>,
}

/// How a finished reviewer pod ended, from its agent container (or the
/// init container that failed before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEnd {
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// The terminated reason and exit code, for example `Error, exit code 1`.
    pub summary: String,
}

impl PodEnd {
    /// How long it ran, when the kubelet said when it started and ended.
    fn ran(&self) -> Option<Duration> {
        let ran = self.finished?.as_millisecond().checked_sub(self.started?.as_millisecond())?;
        Some(Duration::from_millis(u64::try_from(ran).unwrap_or(0)))
    }
}

/// `Pod.status.phase`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl ObservedPod {
    /// Reads a pod; `None` for pods without a UID or incarnation label, which
    /// the controller did not create.
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let incarnation = pod.metadata.labels.as_ref()?.get(labels::INCARNATION)?.parse().ok()?;
        let status = pod.status.as_ref();
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Pending") | None => PodPhase::Pending,
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            Some(_) => PodPhase::Unknown,
        };
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conds| conds.iter().any(|c| c.type_ == "Ready" && c.status == conditions::TRUE));
        let agent = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|statuses| statuses.iter().find(|c| c.name == super::pod::CONTAINER));
        let started_at = agent.and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref()).map(|t| t.0);
        let finished = matches!(phase, PodPhase::Succeeded | PodPhase::Failed);
        Some(Self {
            name: pod.metadata.name.clone()?,
            uid: pod.metadata.uid.clone()?,
            incarnation,
            phase,
            ready,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            started_at,
            not_starting: if finished { None } else { not_starting(pod) },
            ended: if finished { pod_end(pod) } else { None },
        })
    }

    /// Whether the pod can be given work: it runs and is ready, or it was
    /// given work before (readiness that flaps later moves nothing).
    fn started(&self, status: &ReviewerStatus) -> bool {
        (self.phase == PodPhase::Running && self.ready) || status.pod.as_ref().is_some_and(|p| p.uid == self.uid)
    }

    fn finished(&self) -> bool {
        matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed)
    }

    fn reference(&self) -> PodReference {
        PodReference { name: self.name.clone(), uid: self.uid.clone(), incarnation: self.incarnation }
    }
}

/// Waiting reasons every pod goes through on its way to running.
const STARTING_REASONS: [&str; 2] = ["ContainerCreating", "PodInitializing"];

/// Why a pod is not starting: a container waiting for any reason but the
/// usual ones (`ImagePullBackOff`, `ErrImagePull`,
/// `CreateContainerConfigError`, ...), or a scheduler that cannot place it
/// (`Unschedulable`). `None` while it is merely on its way.
pub fn not_starting(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let containers = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for container in containers {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else { continue };
        let reason = waiting.reason.as_deref().unwrap_or_default();
        if reason.is_empty() || STARTING_REASONS.contains(&reason) {
            continue;
        }
        return Some(match waiting.message.as_deref() {
            Some(message) if !message.is_empty() => format!("container {}: {reason}: {message}", container.name),
            _ => format!("container {}: {reason}", container.name),
        });
    }
    let unscheduled =
        status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == conditions::FALSE)?;
    let reason = unscheduled.reason.as_deref().unwrap_or("Unschedulable");
    Some(match unscheduled.message.as_deref() {
        Some(message) if !message.is_empty() => format!("{reason}: {message}"),
        _ => reason.to_owned(),
    })
}

/// How a finished pod ended: its agent container's last state, or that of
/// an init container that failed (the agent then never ran).
fn pod_end(pod: &Pod) -> Option<PodEnd> {
    let status = pod.status.as_ref()?;
    let terminated = |c: &k8s_openapi::api::core::v1::ContainerStatus| c.state.as_ref()?.terminated.clone();
    let agent =
        status.container_statuses.iter().flatten().filter(|c| c.name == super::pod::CONTAINER).find_map(terminated);
    let failed_init =
        || status.init_container_statuses.iter().flatten().filter_map(terminated).find(|t| t.exit_code != 0);
    let ended = agent.or_else(failed_init)?;
    let reason = ended.reason.as_deref().unwrap_or("Terminated");
    Some(PodEnd {
        started: ended.started_at.map(|t| t.0),
        finished: ended.finished_at.map(|t| t.0),
        summary: format!("{reason}, exit code {}", ended.exit_code),
    })
}

/// The writes of one reconcile, as ordered [`Step`]s. Empty when nothing
/// needs to change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReviewerPlan {
    /// What to write, in order; see the module documentation for why this
    /// order.
    pub steps: Vec<Step>,
    /// First statuses (Pending) of runs that the pod being created is about
    /// to be given: not written when the pod is created, as the plan that
    /// assigns them right after writes their status anyway; written by the
    /// launch failure plan when it is not ([`plan_launch_failure`]).
    pub deferred_updates: Vec<RunUpdate>,
    /// Set when this plan replaces a live pod because its work went stale
    /// (at most one per plan, however many runs caused it).
    pub restart: Option<LastRestart>,
    /// When to reconcile again at the latest: the next run timeout or launch
    /// deadline.
    pub requeue_after: Option<Duration>,
}

/// One step of a [`ReviewerPlan`]. The executor runs them in order and
/// stops at the first that fails.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Add the controller's finalizer to the Reviewer.
    AddFinalizer,
    /// Write these run statuses, in creation order of the runs. The runs
    /// are independent objects, so they may be written concurrently; all
    /// are written before the next step begins.
    WriteRunStatuses(Vec<RunUpdate>),
    /// Merge these labels into the runs' metadata.
    LabelRuns(Vec<RunLabels>),
    /// Delete these finished runs, each with a UID precondition; 404 means
    /// done. Only after the run statuses that record what they told of
    /// their pull requests' histories.
    DeleteRuns(Vec<RunDeletion>),
    /// Write the Reviewer status (the whole status).
    WriteReviewerStatus(ReviewerStatus),
    /// Delete a pod with a UID precondition; 404 means done.
    DeletePod(PodDeletion),
    /// Create the reviewer pod; 409 AlreadyExists means done, as pod names
    /// are derived from the incarnation.
    CreatePod(PodLaunch),
    /// Remove the controller's finalizer: the Reviewer goes.
    RemoveFinalizer,
    /// Queue these events; they say what the writes before them did.
    EmitEvents(Vec<PlannedEvent>),
}

impl Step {
    /// A short name of the step, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AddFinalizer => "add finalizer",
            Self::WriteRunStatuses(_) => "write run statuses",
            Self::LabelRuns(_) => "label runs",
            Self::DeleteRuns(_) => "delete expired runs",
            Self::WriteReviewerStatus(_) => "write reviewer status",
            Self::DeletePod(_) => "delete pod",
            Self::CreatePod(_) => "create pod",
            Self::RemoveFinalizer => "remove finalizer",
            Self::EmitEvents(_) => "emit events",
        }
    }

    /// Whether the step writes to the API (events are queued, not written
    /// by the step).
    fn writes(&self) -> bool {
        !matches!(self, Self::EmitEvents(_))
    }
}

impl ReviewerPlan {
    /// Whether the plan writes nothing (events and requeue aside).
    pub fn is_noop(&self) -> bool {
        !self.steps.iter().any(Step::writes)
    }

    /// The run statuses the plan writes, in order.
    pub fn run_updates(&self) -> Vec<&RunUpdate> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Step::WriteRunStatuses(updates) => Some(updates),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The run labels the plan merges.
    pub fn run_labels(&self) -> Vec<&RunLabels> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Step::LabelRuns(labels) => Some(labels),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The Reviewer status the plan writes, if any.
    pub fn reviewer_status(&self) -> Option<&ReviewerStatus> {
        self.steps.iter().find_map(|step| match step {
            Step::WriteReviewerStatus(status) => Some(status),
            _ => None,
        })
    }

    /// The pods the plan deletes.
    pub fn pod_deletions(&self) -> Vec<&PodDeletion> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Step::DeletePod(deletion) => Some(deletion),
                _ => None,
            })
            .collect()
    }

    /// The runs the plan deletes.
    pub fn run_deletions(&self) -> Vec<&RunDeletion> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Step::DeleteRuns(deletions) => Some(deletions),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The pod the plan creates, if any.
    pub fn pod_creation(&self) -> Option<&PodLaunch> {
        self.steps.iter().find_map(|step| match step {
            Step::CreatePod(launch) => Some(launch),
            _ => None,
        })
    }

    /// What the plan does with the Reviewer's finalizer.
    pub fn finalizer(&self) -> FinalizerChange {
        self.steps
            .iter()
            .find_map(|step| match step {
                Step::AddFinalizer => Some(FinalizerChange::Add),
                Step::RemoveFinalizer => Some(FinalizerChange::Remove),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The events the plan emits.
    pub fn events(&self) -> Vec<&PlannedEvent> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Step::EmitEvents(events) => Some(events),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// What the planner decided, before it is put in [`Step`] order.
#[derive(Debug, Default)]
struct Decisions {
    finalizer: FinalizerChange,
    run_labels: Vec<RunLabels>,
    run_updates: Vec<RunUpdate>,
    run_deletions: Vec<RunDeletion>,
    deferred_updates: Vec<RunUpdate>,
    reviewer_status: Option<ReviewerStatus>,
    pod_deletions: Vec<PodDeletion>,
    pod_creation: Option<PodLaunch>,
    restart: Option<LastRestart>,
    events: Vec<PlannedEvent>,
    requeue_after: Option<Duration>,
}

impl Decisions {
    /// The one place that orders a plan's writes (see the module
    /// documentation).
    fn into_plan(self) -> ReviewerPlan {
        let mut steps = Vec::new();
        if self.finalizer == FinalizerChange::Add {
            steps.push(Step::AddFinalizer);
        }
        if !self.run_updates.is_empty() {
            steps.push(Step::WriteRunStatuses(self.run_updates));
        }
        if !self.run_labels.is_empty() {
            steps.push(Step::LabelRuns(self.run_labels));
        }
        if !self.run_deletions.is_empty() {
            steps.push(Step::DeleteRuns(self.run_deletions));
        }
        steps.extend(self.reviewer_status.map(Step::WriteReviewerStatus));
        steps.extend(self.pod_deletions.into_iter().map(Step::DeletePod));
        steps.extend(self.pod_creation.map(Step::CreatePod));
        if self.finalizer == FinalizerChange::Remove {
            steps.push(Step::RemoveFinalizer);
        }
        if !self.events.is_empty() {
            steps.push(Step::EmitEvents(self.events));
        }
        ReviewerPlan {
            steps,
            deferred_updates: self.deferred_updates,
            restart: self.restart,
            requeue_after: self.requeue_after,
        }
    }
}

/// What to do with the Reviewer's finalizer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FinalizerChange {
    #[default]
    Keep,
    Add,
    Remove,
}

/// Labels to merge into a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunLabels {
    pub run: String,
    pub labels: BTreeMap<String, String>,
}

/// A run status to write (the whole status, for a merge patch or
/// server-side apply of the status subresource).
#[derive(Clone, Debug, PartialEq)]
pub struct RunUpdate {
    pub run: String,
    /// The main transition, for events and metrics.
    pub change: RunChange,
    pub status: ReviewRunStatus,
}

/// The main transition of a run update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunChange {
    /// Failed as Superseded: a newer head SHA exists.
    Superseded,
    /// Failed as Superseded at once: created for a SHA already moved past.
    Late,
    Duplicate,
    Cancelled,
    TimedOut,
    LaunchFailed,
    ReviewerDeleted,
    /// Assigned to the live pod (now Running) for the first time.
    Assigned,
    /// Moved to a new pod after the one it was on was replaced or died.
    /// No event: the Reviewer's `Restarted` event and the run's status say it.
    Reassigned,
    /// Waiting for a Reviewer that does not exist.
    ReviewerNotFound,
    /// Bookkeeping only: conditions, short SHA, completion time, generation.
    Refreshed,
}

/// A finished run to delete, its TTL after completion passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDeletion {
    pub name: String,
    /// Delete only this run, not a newer one with the same name.
    pub uid: String,
}

/// A pod to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodDeletion {
    pub name: String,
    /// Delete only this pod, not a newer one with the same name.
    pub uid: String,
}

/// A reviewer pod to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodLaunch {
    /// `<reviewer>-<incarnation>`.
    pub name: String,
    pub incarnation: i64,
    /// The runs it will be given once it is observed, oldest first.
    pub queue: Vec<String>,
}

/// An event to emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub object: EventObject,
    pub kind: EventKind,
    pub reason: &'static str,
    pub note: String,
}

/// The object an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventObject {
    Reviewer,
    Run(String),
}

/// Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// Plans one reconcile of the Reviewer `observed.name`.
pub fn plan_reviewer(observed: &ObservedReviewer, now: Timestamp) -> ReviewerPlan {
    let mut planner = Planner::new(observed, now);
    planner.apply_run_rules();
    match &observed.reviewer {
        None => planner.wait_for_missing_reviewer(),
        Some(reviewer) if reviewer.metadata.deletion_timestamp.is_some() => planner.tear_down(reviewer),
        Some(reviewer) => planner.run_reviewer(reviewer),
    }
    planner.finish()
}

/// How a failed pod deletion or creation is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiErrorClass {
    /// Not a failure: 404 on delete (already gone), 409 on create (the pod
    /// of this incarnation already exists).
    Done,
    /// Retry with back-off: 5xx, 429, timeouts and connection errors, a 409
    /// on delete (the UID precondition failed: the cache is behind), and
    /// the 403s that clear by themselves ([`TRANSIENT_FORBIDDEN`]). Runs
    /// wait for the launch until `launchDeadline`.
    Transient,
    /// Other 4xx: retrying will not help.
    Permanent,
}

/// Messages of 403s that clear without anyone acting on the Reviewer, as
/// kube-apiserver words them: an exceeded ResourceQuota (the replaced pod
/// still counts while it terminates), and a service account that does not
/// exist yet (the ServiceAccount admission plugin; it is often created just
/// after the Reviewer).
pub const TRANSIENT_FORBIDDEN: [&str; 2] = ["exceeded quota", "error looking up service account"];

/// A pod operation of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodOperation {
    Delete,
    Create,
}

impl ApiErrorClass {
    /// Classifies an API error by HTTP status code and, for 403s, the API's
    /// message; `None` for errors without a response (timeouts, connection
    /// failures).
    pub fn of(operation: PodOperation, code: Option<u16>, message: &str) -> Self {
        match (operation, code) {
            (PodOperation::Delete, Some(404)) | (PodOperation::Create, Some(409)) => Self::Done,
            (PodOperation::Delete, Some(409)) | (_, Some(429)) | (_, None) => Self::Transient,
            (_, Some(403)) if TRANSIENT_FORBIDDEN.iter().any(|m| message.contains(m)) => Self::Transient,
            (_, Some(code)) if (400..500).contains(&code) => Self::Permanent,
            (_, Some(_)) => Self::Transient,
        }
    }
}

/// A failed pod deletion or creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchError {
    /// [`ApiErrorClass::Transient`] or [`ApiErrorClass::Permanent`].
    pub class: ApiErrorClass,
    /// The API's message.
    pub message: String,
}

/// What to write after a pod operation of a plan failed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LaunchFailurePlan {
    /// The runs that fail as LaunchFailed (permanent errors only; after a
    /// transient error [`plan_reviewer`] fails them once `launchDeadline`
    /// has passed), or the Pending statuses deferred for a launch that
    /// did not happen (transient errors); then the Reviewer status with
    /// `Degraded=True`; then the failed plan's events (they describe writes
    /// that did happen) and the failure's.
    pub plan: ReviewerPlan,
    /// Return the error from the reconcile, so that it is retried with
    /// back-off and counted (transient errors).
    pub retry: bool,
}

/// Plans the writes after a pod deletion or creation of `plan` failed.
///
/// Statuses are based on `plan`'s, as the executor wrote those first.
pub fn plan_launch_failure(
    observed: &ObservedReviewer,
    plan: &ReviewerPlan,
    error: &LaunchError,
    now: Timestamp,
) -> LaunchFailurePlan {
    let generation = observed.reviewer.as_ref().and_then(|r| r.metadata.generation);
    let mut status = plan
        .reviewer_status()
        .cloned()
        .or_else(|| observed.reviewer.as_ref().and_then(|r| r.status.clone()))
        .unwrap_or_default();
    let permanent = error.class == ApiErrorClass::Permanent;
    let mut run_updates = Vec::new();
    let mut events: Vec<PlannedEvent> = plan.events().into_iter().cloned().collect();
    if !permanent {
        // The runs wait, Pending, for a launch that succeeds.
        run_updates.extend(plan.deferred_updates.iter().cloned());
    }
    conditions::set(
        &mut status.conditions,
        DesiredCondition {
            type_: CONDITION_DEGRADED,
            status: conditions::TRUE,
            reason: "LaunchFailed",
            message: error.message.clone(),
        },
        generation,
        now,
    );
    events.push(PlannedEvent {
        object: EventObject::Reviewer,
        kind: EventKind::Warning,
        reason: "LaunchFailed",
        note: format!("cannot start the reviewer pod: {}", error.message),
    });
    if permanent {
        let queue = plan.pod_creation().map(|launch| launch.queue.as_slice()).unwrap_or_default();
        let planned = plan.run_updates();
        for name in queue {
            let Some(run) = observed.run(name) else {
                continue;
            };
            let base = planned
                .iter()
                .copied()
                .chain(&plan.deferred_updates)
                .find(|update| &update.run == name)
                .map(|update| update.status.clone())
                .or_else(|| controller_status(run))
                .unwrap_or_default();
            let mut state = RunState::new(run, base);
            state.fail(
                RunReason::LaunchFailed,
                format!("The reviewer pod could not be started: {}", error.message),
                now,
            );
            state.set_succeeded_condition(now);
            events.push(state.event(EventKind::Warning, "LaunchFailed"));
            run_updates.push(RunUpdate { run: name.clone(), change: RunChange::LaunchFailed, status: state.desired });
        }
    }
    let decisions = Decisions { run_updates, reviewer_status: Some(status), events, ..Decisions::default() };
    LaunchFailurePlan { plan: decisions.into_plan(), retry: !permanent }
}

/// A run being planned: the observed run and its desired status.
struct RunState<'a> {
    run: &'a ReviewRun,
    name: String,
    desired: ReviewRunStatus,
    change: Option<RunChange>,
    standing: Standing,
    /// Why the run's place among same-second runs is uncertain, if it is.
    uncertainty: Option<order::Uncertainty>,
    /// How its lineage conflicts with another run's, if it does: said with
    /// its first status.
    conflict: Option<String>,
}

impl<'a> RunState<'a> {
    fn new(run: &'a ReviewRun, desired: ReviewRunStatus) -> Self {
        Self {
            run,
            name: run.metadata.name.clone().unwrap_or_default(),
            desired,
            change: None,
            standing: Standing::Head,
            uncertainty: None,
            conflict: None,
        }
    }

    fn phase(&self) -> RunPhase {
        self.desired.phase.unwrap_or(RunPhase::Pending)
    }

    fn unfinished(&self) -> bool {
        !self.phase().is_terminal()
    }

    fn is_current(&self) -> bool {
        self.standing == Standing::Head
    }

    fn fail(&mut self, reason: RunReason, message: String, now: Timestamp) {
        self.desired.phase = Some(RunPhase::Failed);
        self.desired.reason = Some(reason);
        self.desired.message = Some(message);
        self.desired.completion_time = Some(Time(now));
    }

    fn set_succeeded_condition(&mut self, now: Timestamp) {
        let generation = self.run.metadata.generation;
        let desired = match (self.phase(), self.desired.reason) {
            (RunPhase::Pending, _) => {
                let (reason, message) = if self.change == Some(RunChange::ReviewerNotFound) {
                    (REASON_REVIEWER_NOT_FOUND, format!("Reviewer {} does not exist", self.run.spec.reviewer))
                } else {
                    ("Pending", "Waiting for the reviewer pod".to_owned())
                };
                DesiredCondition { type_: CONDITION_SUCCEEDED, status: conditions::UNKNOWN, reason, message }
            }
            (RunPhase::Running, _) => DesiredCondition {
                type_: CONDITION_SUCCEEDED,
                status: conditions::UNKNOWN,
                reason: "Running",
                message: "The reviewer is reviewing the pull request".to_owned(),
            },
            (RunPhase::Succeeded, reason) => DesiredCondition {
                type_: CONDITION_SUCCEEDED,
                status: conditions::TRUE,
                reason: reason.unwrap_or(RunReason::Submitted).as_str(),
                message: "The review was submitted".to_owned(),
            },
            (RunPhase::Failed, reason) => DesiredCondition {
                type_: CONDITION_SUCCEEDED,
                status: conditions::FALSE,
                reason: reason.map_or("Failed", RunReason::as_str),
                message: self.desired.message.clone().unwrap_or_default(),
            },
        };
        conditions::set(&mut self.desired.conditions, desired, generation, now);
    }

    fn event(&self, kind: EventKind, reason: &'static str) -> PlannedEvent {
        PlannedEvent {
            object: EventObject::Run(self.name.clone()),
            kind,
            reason,
            note: self.desired.message.clone().unwrap_or_default(),
        }
    }

    fn timeout(&self) -> Duration {
        // The schema enforces the pattern; an unparsable value falls back to the default.
        duration::parse(&self.run.spec.timeout).unwrap_or(Duration::from_secs(3600))
    }
}

struct Planner<'a> {
    observed: &'a ObservedReviewer,
    now: Timestamp,
    runs: Vec<RunState<'a>>,
    plan: Decisions,
    deadlines: Vec<i64>,
    /// The live pod is starting normally and within [`FIRST_STATUS_GRACE`]
    /// of its creation: runs without a status get their first one when they
    /// are assigned to it.
    first_status_waits: bool,
}

impl<'a> Planner<'a> {
    fn new(observed: &'a ObservedReviewer, now: Timestamp) -> Self {
        let runs: Vec<&ReviewRun> = observed.runs.iter().filter(|run| run.spec.reviewer == observed.name).collect();
        let (runs, uncertainties, history) = ordered_history(runs);
        let mut conflicts: BTreeMap<usize, String> =
            history.conflicts.into_iter().map(|conflict| (conflict.index, conflict.message)).collect();
        let runs = runs
            .into_iter()
            .zip(history.standings)
            .zip(uncertainties)
            .enumerate()
            .map(|(index, ((run, standing), uncertainty))| {
                let mut desired = controller_status(run).unwrap_or_default();
                desired.phase = Some(desired.phase.unwrap_or(RunPhase::Pending));
                desired.short_sha = Some(run.spec.pull_request.head_sha.chars().take(7).collect());
                desired.observed_generation = run.metadata.generation;
                if desired.creation_revision.is_none() {
                    desired.creation_revision = order::revision_to_record(run);
                }
                let conflict = conflicts.remove(&index);
                RunState { standing, uncertainty, conflict, ..RunState::new(run, desired) }
            })
            .collect();
        Self { observed, now, runs, plan: Decisions::default(), deadlines: Vec::new(), first_status_waits: false }
    }

    fn now_ms(&self) -> i64 {
        self.now.as_millisecond()
    }

    /// Everything decided per run without the pod: the rules *head only*,
    /// *cancel and time out* and *one review per head*.
    fn apply_run_rules(&mut self) {
        let now = self.now;
        for state in &mut self.runs {
            let sha = state.run.spec.pull_request.head_sha.clone();
            if let Some(uncertainty) = state.uncertainty {
                let ordered = DesiredCondition {
                    type_: CONDITION_ORDERED,
                    status: conditions::FALSE,
                    reason: uncertainty.reason(),
                    message: uncertainty.message(),
                };
                conditions::set(&mut state.desired.conditions, ordered, state.run.metadata.generation, now);
            }
            match state.standing.clone() {
                Standing::Head => set_current(state, true, now),
                Standing::Stale { head_run } | Standing::Late { head_run } => {
                    let late = matches!(state.standing, Standing::Late { .. });
                    set_current(state, false, now);
                    if state.unfinished() {
                        let message = match (&head_run, late) {
                            (Some(head), true) => {
                                format!(
                                    "Commit {sha} was already superseded when this run was created; {head} reviews the head"
                                )
                            }
                            (Some(head), false) => format!("Commit {sha} was superseded; {head} reviews the new head"),
                            (None, _) => format!("Commit {sha} was superseded"),
                        };
                        state.fail(RunReason::Superseded, message, now);
                        state.desired.superseded_by = head_run;
                        state.change = Some(if late { RunChange::Late } else { RunChange::Superseded });
                    }
                }
            }
            if state.unfinished() && state.run.spec.cancel_requested {
                let reason = state.run.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_CANCEL_REASON));
                let message = match reason {
                    Some(reason) => format!("The run was cancelled: {reason}"),
                    None => "The run was cancelled".to_owned(),
                };
                state.fail(RunReason::Cancelled, message, now);
                state.change = Some(RunChange::Cancelled);
            }
            if state.phase() == RunPhase::Running {
                let start = state.desired.start_time.as_ref().map_or(now.as_millisecond(), |t| t.0.as_millisecond());
                let deadline = start.saturating_add(i64::try_from(state.timeout().as_millis()).unwrap_or(i64::MAX));
                if now.as_millisecond() >= deadline {
                    let message = format!("The run was Running for longer than its timeout {}", state.run.spec.timeout);
                    state.fail(RunReason::TimedOut, message, now);
                    state.change = Some(RunChange::TimedOut);
                } else {
                    self.deadlines.push(deadline);
                }
            }
        }
        self.mark_duplicates();
    }

    /// The rule *one review per head*.
    fn mark_duplicates(&mut self) {
        let mut by_pr: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, state) in self.runs.iter().enumerate() {
            if state.is_current() {
                by_pr.entry(state.run.spec.pull_request.url.as_str()).or_default().push(index);
            }
        }
        let mut duplicates = Vec::new();
        for indices in by_pr.values() {
            // A Running run covers every pending run; otherwise walk in
            // creation order: an Approved run or an earlier pending run
            // covers, a ChangesRequested verdict opens the SHA for re-review.
            let running = indices.iter().copied().find(|&i| self.runs[i].phase() == RunPhase::Running);
            let mut cover: Option<usize> = None;
            for &index in indices {
                let state = &self.runs[index];
                match state.phase() {
                    RunPhase::Succeeded => {
                        let approved = state.desired.result.as_ref().is_some_and(|r| r.verdict == Verdict::Approved);
                        cover = approved.then_some(index);
                    }
                    RunPhase::Pending => match running.or(cover) {
                        Some(covering) => duplicates.push((index, covering)),
                        None => cover = Some(index),
                    },
                    RunPhase::Running | RunPhase::Failed => {}
                }
            }
        }
        let now = self.now;
        for (index, covering) in duplicates {
            let covering = self.runs[covering].name.clone();
            let state = &mut self.runs[index];
            let message = format!(
                "Run {covering} already covers commit {} of this pull request",
                state.run.spec.pull_request.head_sha
            );
            state.fail(RunReason::Duplicate, message, now);
            state.change = Some(RunChange::Duplicate);
        }
    }

    /// The rule *missing Reviewer waits*.
    fn wait_for_missing_reviewer(&mut self) {
        for state in &mut self.runs {
            if state.phase() == RunPhase::Pending && state.change.is_none() {
                state.change = Some(RunChange::ReviewerNotFound);
            }
        }
    }

    /// The rule *tear down*.
    fn tear_down(&mut self, reviewer: &Reviewer) {
        let now = self.now;
        for state in &mut self.runs {
            if state.unfinished() {
                let message = format!("Reviewer {} was deleted", self.observed.name);
                state.fail(RunReason::ReviewerDeleted, message, now);
                state.change = Some(RunChange::ReviewerDeleted);
            }
        }
        for pod in self.observed.pods.iter().filter(|pod| !pod.deleting) {
            self.plan.pod_deletions.push(PodDeletion { name: pod.name.clone(), uid: pod.uid.clone() });
        }
        if has_finalizer(reviewer) {
            self.plan.finalizer = FinalizerChange::Remove;
        }
    }

    /// The reviewer pod, restarts and assignment.
    fn run_reviewer(&mut self, reviewer: &Reviewer) {
        if !has_finalizer(reviewer) {
            self.plan.finalizer = FinalizerChange::Add;
        }
        let observed_status = reviewer.status.clone().unwrap_or_default();
        let mut status = observed_status.clone();
        let observed = self.observed;
        let pods = &observed.pods;
        let target = pods.iter().map(|pod| pod.incarnation).max().unwrap_or(0).max(observed_status.incarnation);
        let live = pods.iter().find(|pod| pod.incarnation == target && !pod.deleting && !pod.finished());
        for pod in pods.iter().filter(|pod| !pod.deleting && live.is_none_or(|live| live.uid != pod.uid)) {
            self.plan.pod_deletions.push(PodDeletion { name: pod.name.clone(), uid: pod.uid.clone() });
        }

        let restart = live.and_then(|pod| self.restart_for(pod));
        let mut backing_off = false;
        let degraded: Option<DesiredCondition<'static>> = match (live, restart) {
            (Some(pod), Some(restart)) => {
                self.plan.pod_deletions.push(PodDeletion { name: pod.name.clone(), uid: pod.uid.clone() });
                self.launch(target + 1, &mut status);
                status.restarts += 1;
                status.last_restart = Some(restart.clone());
                self.plan.events.push(PlannedEvent {
                    object: EventObject::Reviewer,
                    kind: EventKind::Normal,
                    reason: "Restarted",
                    note: format!("Replacing pod {} ({:?}: {})", pod.name, restart.reason, restart.runs.join(", ")),
                });
                self.plan.restart = Some(restart);
                None
            }
            (Some(pod), None) if pod.started(&observed_status) => {
                self.assign(pod, &mut status);
                self.settle_crash_back_off(pod, &mut status)
            }
            (Some(pod), None) => self.wait_for_start(reviewer, pod, &mut status),
            (None, _) => {
                let known = pods.iter().any(|pod| pod.incarnation == target)
                    || observed_status.pod.as_ref().is_some_and(|pod| pod.incarnation == target)
                    || self
                        .runs
                        .iter()
                        .any(|state| state.desired.assignment.as_ref().is_some_and(|a| a.incarnation == target));
                let incarnation = if known || target == 0 { target + 1 } else { target };
                self.fail_runs_past_launch_deadline(reviewer, &observed_status);
                match self.crash_back_off(&observed_status, target) {
                    CrashLoop::Reset => status.crash_back_off = None,
                    CrashLoop::Unchanged => {}
                    CrashLoop::BackOff(back_off) => status.crash_back_off = Some(back_off),
                }
                match status.crash_back_off.clone() {
                    Some(back_off) if back_off.incarnation == target && self.now < back_off.next_launch.0 => {
                        backing_off = true;
                        status.pod = None;
                        status.queue = Vec::new();
                        self.deadlines.push(back_off.next_launch.0.as_millisecond());
                        let wait = back_off.next_launch.0.as_millisecond() - back_off_start(&back_off);
                        Some(DesiredCondition {
                            type_: CONDITION_DEGRADED,
                            status: conditions::TRUE,
                            reason: "CrashLoopBackOff",
                            message: format!(
                                "{} ({} in a row); the next pod starts {}s after it",
                                back_off.message,
                                back_off.failures,
                                wait / 1000
                            ),
                        })
                    }
                    _ => {
                        self.launch(incarnation, &mut status);
                        None
                    }
                }
            }
        };
        status.queue_length = i64::try_from(status.queue.len()).unwrap_or(i64::MAX);
        status.observed_generation = reviewer.metadata.generation;
        let generation = reviewer.metadata.generation;
        // Said the same way while the pod is created and while it starts, so
        // that a pod on its way costs no Reviewer status write of its own.
        let starting = |name: &str| DesiredCondition {
            type_: CONDITION_READY,
            status: conditions::FALSE,
            reason: "PodStarting",
            message: format!("Reviewer pod {name} is starting"),
        };
        let ready = match live {
            _ if let Some(launch) = &self.plan.pod_creation => starting(&launch.name),
            _ if backing_off => DesiredCondition {
                type_: CONDITION_READY,
                status: conditions::FALSE,
                reason: "BackOff",
                message: "Waiting before the next reviewer pod, as the last ones ended soon after starting".to_owned(),
            },
            Some(pod) if pod.phase == PodPhase::Running && pod.ready => DesiredCondition {
                type_: CONDITION_READY,
                status: conditions::TRUE,
                reason: "PodReady",
                message: format!("Pod {} is ready", pod.name),
            },
            Some(pod) if pod.phase == PodPhase::Pending && pod.not_starting.is_none() => starting(&pod.name),
            _ => DesiredCondition {
                type_: CONDITION_READY,
                status: conditions::FALSE,
                reason: "PodNotReady",
                message: "The reviewer pod is not ready yet".to_owned(),
            },
        };
        conditions::set(&mut status.conditions, ready, generation, self.now);
        if let Some(degraded) = degraded {
            let said = conditions::find(&observed_status.conditions, CONDITION_DEGRADED).is_some_and(|c| {
                c.status == degraded.status && c.reason == degraded.reason && c.message == degraded.message
            });
            if degraded.status == conditions::TRUE && !said {
                self.plan.events.push(PlannedEvent {
                    object: EventObject::Reviewer,
                    kind: EventKind::Warning,
                    reason: degraded.reason,
                    note: degraded.message.clone(),
                });
            }
            conditions::set(&mut status.conditions, degraded, generation, self.now);
        }
        if reviewer.status.as_ref() != Some(&status) {
            self.plan.reviewer_status = Some(status);
        }
        self.expire_finished_runs(reviewer);
    }

    /// The rule *expire finished runs*.
    fn expire_finished_runs(&mut self, reviewer: &Reviewer) {
        let now_ms = self.now_ms();
        let mut deadlines = Vec::new();
        let mut expired: BTreeSet<&str> = BTreeSet::new();
        for state in &self.runs {
            match expiry_ms(state.run, reviewer).filter(|_| state.change.is_none()) {
                Some(expiry) if expiry <= now_ms => {
                    expired.insert(state.name.as_str());
                }
                Some(expiry) => deadlines.push(expiry),
                None => {}
            }
        }
        let runs: Vec<&ReviewRun> = self.runs.iter().map(|state| state.run).collect();
        let standings: Vec<Standing> = self.runs.iter().map(|state| state.standing.clone()).collect();
        let pruning = prune::plan_pruning(&runs, &standings, |run| {
            run.metadata.name.as_deref().is_some_and(|name| expired.contains(name))
        });
        // A record goes with this plan's status writes only to a run that
        // has a status: a first status may be deferred to the pod's start,
        // and deleting before the record is written would lose the pushes.
        let mut waiting: Vec<&str> = Vec::new();
        for (kept, replaced) in pruning.records {
            if kept.status.is_none() {
                waiting.push(&kept.spec.pull_request.url);
            } else if let Some(state) = self.runs.iter_mut().find(|state| std::ptr::eq(state.run, kept)) {
                state.desired.replaced_shas = replaced;
            }
        }
        self.plan.run_deletions = pruning
            .deletions
            .into_iter()
            .filter(|run| !waiting.contains(&run.spec.pull_request.url.as_str()))
            .filter_map(|run| Some(RunDeletion { name: run.metadata.name.clone()?, uid: run.metadata.uid.clone()? }))
            .collect();
        self.deadlines.extend(deadlines);
    }

    /// The rule *launch deadline* for a live pod that has not started: runs
    /// wait for it, unassigned (their timeout starts when a review can), and
    /// fail once it has not started
    /// within `launchDeadline` of their creation or its own. Says why it is
    /// not starting, when the kubelet or the scheduler says so.
    fn wait_for_start(
        &mut self,
        reviewer: &Reviewer,
        pod: &ObservedPod,
        status: &mut ReviewerStatus,
    ) -> Option<DesiredCondition<'static>> {
        status.pod = None;
        status.queue = Vec::new();
        status.incarnation = pod.incarnation;
        let pod_created = pod.created.map_or(i64::MIN, |t| t.as_millisecond());
        let grace_ends = pod_created.saturating_add(i64::try_from(FIRST_STATUS_GRACE.as_millis()).unwrap_or(0));
        if pod.not_starting.is_none() && self.now_ms() < grace_ends {
            self.first_status_waits = true;
            self.deadlines.push(grace_ends);
        }
        let why = pod.not_starting.as_deref().unwrap_or("it is still starting");
        self.fail_runs_waiting_since(reviewer, pod_created, || {
            format!(
                "Reviewer pod {} did not start within the launch deadline {}: {why}",
                pod.name, reviewer.spec.launch_deadline
            )
        });
        pod.not_starting.as_ref().map(|reason| DesiredCondition {
            type_: CONDITION_DEGRADED,
            status: conditions::TRUE,
            reason: "PodNotStarting",
            message: format!("Pod {} is not starting: {reason}", pod.name),
        })
    }

    /// The rule *crash back-off*: a started pod ends a back-off once it has
    /// stayed up for [`CRASH_WINDOW`]; until then the Reviewer stays
    /// Degraded.
    fn settle_crash_back_off(
        &mut self,
        pod: &ObservedPod,
        status: &mut ReviewerStatus,
    ) -> Option<DesiredCondition<'static>> {
        if status.crash_back_off.is_some() {
            let window = i64::try_from(CRASH_WINDOW.as_millis()).unwrap_or(i64::MAX);
            // Without a start time, the pod's creation is the best bound.
            match pod.started_at.or(pod.created).map(|t| t.as_millisecond().saturating_add(window)) {
                Some(settled) if settled <= self.now_ms() => status.crash_back_off = None,
                Some(settled) => {
                    self.deadlines.push(settled);
                    return None;
                }
                None => return None,
            }
        }
        Some(DesiredCondition {
            type_: CONDITION_DEGRADED,
            status: conditions::FALSE,
            reason: "PodRunning",
            message: "The reviewer pod was started".to_owned(),
        })
    }

    /// What the pod of incarnation `target`, if it ended, says about the
    /// crash back-off before the next one.
    fn crash_back_off(&self, status: &ReviewerStatus, target: i64) -> CrashLoop {
        if status.crash_back_off.as_ref().is_some_and(|b| b.incarnation == target) {
            return CrashLoop::Unchanged;
        }
        let ended = self.observed.pods.iter().filter(|pod| pod.incarnation == target && pod.finished());
        let Some((pod, end, ran)) = ended
            .filter_map(|pod| {
                let end = pod.ended.as_ref()?;
                Some((pod, end, end.ran()?))
            })
            .next()
        else {
            return CrashLoop::Unchanged;
        };
        let Some(finished) = end.finished.filter(|_| ran < CRASH_WINDOW) else {
            return CrashLoop::Reset;
        };
        let failures = status.crash_back_off.as_ref().map_or(0, |b| b.failures).saturating_add(1);
        let next = finished.as_millisecond().saturating_add(back_off_delay_ms(failures));
        let Ok(next) = Timestamp::from_millisecond(next) else {
            return CrashLoop::Unchanged;
        };
        CrashLoop::BackOff(CrashBackOff {
            failures,
            incarnation: target,
            message: format!("Pod {} ended {}s after it started: {}", pod.name, ran.as_secs(), end.summary),
            next_launch: Time(next),
        })
    }

    /// The rule *fresh pod for stale work*: the restart the live pod is due,
    /// if any.
    fn restart_for(&self, pod: &ObservedPod) -> Option<LastRestart> {
        let mut reasons = Vec::new();
        let mut runs = Vec::new();
        for state in &self.runs {
            let on_pod = state.desired.assignment.as_ref().is_some_and(|a| a.pod_uid == pod.uid);
            let reason = match state.desired.reason {
                Some(RunReason::Superseded) => RestartReason::Superseded,
                Some(RunReason::Cancelled) => RestartReason::Cancelled,
                Some(RunReason::TimedOut) => RestartReason::TimedOut,
                _ => continue,
            };
            if on_pod && state.phase() == RunPhase::Failed {
                reasons.push(reason);
                runs.push(state.name.clone());
            }
        }
        let reason = reasons.into_iter().min()?;
        Some(LastRestart { time: Time(self.now), reason, runs })
    }

    fn queue(&self) -> Vec<String> {
        self.runs.iter().filter(|s| s.is_current() && s.unfinished()).map(|s| s.name.clone()).collect()
    }

    /// The rule *idempotent launch*: the incarnation goes into the status
    /// written before the pod named after it is created.
    fn launch(&mut self, incarnation: i64, status: &mut ReviewerStatus) {
        let name = Reviewer::pod_name(&self.observed.name, incarnation);
        self.plan.pod_creation = Some(PodLaunch { name, incarnation, queue: self.queue() });
        status.incarnation = incarnation;
        status.pod = None;
        status.queue = Vec::new();
    }

    /// The rule *assign to a started pod*: new current runs go to the live
    /// pod.
    fn assign(&mut self, pod: &ObservedPod, status: &mut ReviewerStatus) {
        let assignment = Assignment { pod: pod.name.clone(), pod_uid: pod.uid.clone(), incarnation: pod.incarnation };
        let now = self.now;
        let mut queue = Vec::new();
        for state in &mut self.runs {
            if !state.is_current() || !state.unfinished() {
                continue;
            }
            if state.desired.assignment.as_ref() != Some(&assignment) {
                state.desired.phase = Some(RunPhase::Running);
                state.desired.assignment = Some(assignment.clone());
                state.desired.message = Some(format!("Assigned to reviewer pod {}", pod.name));
                state.change = Some(RunChange::Reassigned);
                if state.desired.start_time.is_none() {
                    state.desired.start_time = Some(Time(now));
                    let deadline = now
                        .as_millisecond()
                        .saturating_add(i64::try_from(state.timeout().as_millis()).unwrap_or(i64::MAX));
                    self.deadlines.push(deadline);
                    state.change = Some(RunChange::Assigned);
                }
            }
            queue.push(state.name.clone());
        }
        status.pod = Some(pod.reference());
        status.incarnation = pod.incarnation;
        status.queue = queue;
    }

    /// The rule *launch deadline* after transient launch errors: once
    /// launches have failed for longer than `launchDeadline`, the runs
    /// waiting for a pod fail.
    fn fail_runs_past_launch_deadline(&mut self, reviewer: &Reviewer, status: &ReviewerStatus) {
        let Some(degraded) = conditions::find(&status.conditions, CONDITION_DEGRADED) else {
            return;
        };
        if degraded.status != conditions::TRUE {
            return;
        }
        let since = degraded.last_transition_time.0.as_millisecond();
        self.fail_runs_waiting_since(reviewer, since, || {
            format!(
                "No reviewer pod could be started within the launch deadline {}: {}",
                reviewer.spec.launch_deadline, degraded.message
            )
        });
    }

    /// Fails, as LaunchFailed with `message`, the current unfinished runs
    /// that have waited for a pod for longer than `launchDeadline`: since
    /// their creation or `since`, whichever is later. The others get a
    /// requeue at their deadline.
    fn fail_runs_waiting_since(&mut self, reviewer: &Reviewer, since: i64, message: impl Fn() -> String) {
        let limit = launch_deadline_ms(reviewer);
        let now = self.now;
        let mut deadlines = Vec::new();
        for state in &mut self.runs {
            if !state.is_current() || !state.unfinished() {
                continue;
            }
            let created = state.run.metadata.creation_timestamp.as_ref().map_or(i64::MIN, |t| t.0.as_millisecond());
            let deadline = since.max(created).saturating_add(limit);
            if now.as_millisecond() >= deadline {
                state.fail(RunReason::LaunchFailed, message(), now);
                state.change = Some(RunChange::LaunchFailed);
            } else {
                deadlines.push(deadline);
            }
        }
        self.deadlines.extend(deadlines);
    }

    fn finish(mut self) -> ReviewerPlan {
        let now = self.now;
        for state in &mut self.runs {
            if state.phase().is_terminal() && state.desired.completion_time.is_none() {
                state.desired.completion_time = Some(Time(now));
            }
            state.set_succeeded_condition(now);
            let queued = self.plan.pod_creation.as_ref().is_some_and(|launch| launch.queue.contains(&state.name));
            let first_status = state.run.status.is_none() && state.change.is_none();
            if first_status && self.first_status_waits && state.is_current() && state.unfinished() {
                continue;
            }
            let deferred = queued && first_status;
            // Said with the run's first status, in the plan that writes it.
            if let Some(conflict) = state.conflict.take().filter(|_| state.run.status.is_none() && !deferred) {
                self.plan.events.push(PlannedEvent {
                    object: EventObject::Run(state.name.clone()),
                    kind: EventKind::Warning,
                    reason: "ConflictingLineage",
                    note: conflict,
                });
            }
            // Labels follow the first status, which records the creation's
            // resourceVersion before a label write changes it.
            let desired_labels = run_labels(state.run);
            let observed_labels = state.run.metadata.labels.clone().unwrap_or_default();
            if !deferred && desired_labels.iter().any(|(key, value)| observed_labels.get(key) != Some(value)) {
                self.plan.run_labels.push(RunLabels { run: state.name.clone(), labels: desired_labels });
            }
            if controller_status(state.run).as_ref() == Some(&state.desired) {
                continue;
            }
            let change = state.change.unwrap_or(RunChange::Refreshed);
            let event = match change {
                RunChange::Superseded | RunChange::Late | RunChange::Duplicate | RunChange::Cancelled => {
                    Some((EventKind::Normal, reason_name(change)))
                }
                RunChange::TimedOut | RunChange::LaunchFailed | RunChange::ReviewerNotFound => {
                    Some((EventKind::Warning, reason_name(change)))
                }
                RunChange::ReviewerDeleted | RunChange::Assigned => Some((EventKind::Normal, reason_name(change))),
                RunChange::Reassigned | RunChange::Refreshed => None,
            };
            if let Some((kind, reason)) = event {
                let mut event = state.event(kind, reason);
                if change == RunChange::ReviewerNotFound {
                    event.note = format!("Reviewer {} does not exist", state.run.spec.reviewer);
                }
                self.plan.events.push(event);
            }
            let update = RunUpdate { run: state.name.clone(), change, status: state.desired.clone() };
            if deferred {
                self.plan.deferred_updates.push(update);
            } else {
                self.plan.run_updates.push(update);
            }
        }
        let now_ms = self.now_ms();
        self.plan.requeue_after = self
            .deadlines
            .iter()
            .copied()
            .filter(|&deadline| deadline > now_ms)
            .min()
            .map(|deadline| Duration::from_millis(u64::try_from(deadline - now_ms).unwrap_or(0)));
        self.plan.into_plan()
    }
}

fn reason_name(change: RunChange) -> &'static str {
    match change {
        RunChange::Superseded => "Superseded",
        RunChange::Late => "LateRun",
        RunChange::Duplicate => "Duplicate",
        RunChange::Cancelled => "Cancelled",
        RunChange::TimedOut => "TimedOut",
        RunChange::LaunchFailed => "LaunchFailed",
        RunChange::ReviewerDeleted => "ReviewerDeleted",
        RunChange::Assigned => "Assigned",
        RunChange::Reassigned => "Reassigned",
        RunChange::ReviewerNotFound => REASON_REVIEWER_NOT_FOUND,
        RunChange::Refreshed => "Refreshed",
    }
}

fn set_current(state: &mut RunState<'_>, current: bool, now: Timestamp) {
    let generation = state.run.metadata.generation;
    let desired = if current {
        DesiredCondition {
            type_: CONDITION_CURRENT,
            status: conditions::TRUE,
            reason: "HeadCommit",
            message: "The run is for the pull request's head commit".to_owned(),
        }
    } else {
        DesiredCondition {
            type_: CONDITION_CURRENT,
            status: conditions::FALSE,
            reason: "Superseded",
            message: "The pull request has a newer head commit".to_owned(),
        }
    };
    conditions::set(&mut state.desired.conditions, desired, generation, now);
}

/// The part of a run's status the reconciler writes: all of it but
/// `delivery`, which the delivery loop owns under its own field manager.
/// Leaving it out of the reconciler's applies keeps one writer per field.
fn controller_status(run: &ReviewRun) -> Option<ReviewRunStatus> {
    let mut status = run.status.clone()?;
    status.delivery = None;
    Some(status)
}

fn run_labels(run: &ReviewRun) -> BTreeMap<String, String> {
    labels::run_labels(&run.spec.reviewer, &run.spec.pull_request.url)
}

fn has_finalizer(reviewer: &Reviewer) -> bool {
    reviewer.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|name| name == FINALIZER))
}

/// How long runs without a status wait for a starting pod before they are
/// written Pending: a pod that runs within it gives each of them one write
/// (its assignment) instead of two, which halves a cold start's writes.
pub const FIRST_STATUS_GRACE: Duration = Duration::from_secs(10);

/// A pod that ends within this long of starting counts as crashing.
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// The wait after the first crash; it doubles with every further one.
pub const CRASH_BACK_OFF_INITIAL: Duration = Duration::from_secs(5);
/// The longest wait between crashing pods.
pub const CRASH_BACK_OFF_MAX: Duration = Duration::from_secs(300);

/// What an ended pod means for the crash back-off.
enum CrashLoop {
    /// Nothing new: no pod ended, or its end was counted already.
    Unchanged,
    /// It ended after a long life: crashes are no longer in a row.
    Reset,
    BackOff(CrashBackOff),
}

/// The wait before the pod after `failures` crashes in a row.
fn back_off_delay_ms(failures: i64) -> i64 {
    let initial = i64::try_from(CRASH_BACK_OFF_INITIAL.as_millis()).unwrap_or(i64::MAX);
    let max = i64::try_from(CRASH_BACK_OFF_MAX.as_millis()).unwrap_or(i64::MAX);
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    initial.saturating_mul(1_i64 << doublings).min(max)
}

/// When the wait of `back_off` began: its next launch less its delay.
fn back_off_start(back_off: &CrashBackOff) -> i64 {
    back_off.next_launch.0.as_millisecond().saturating_sub(back_off_delay_ms(back_off.failures))
}

/// When a finished run may be deleted: its completion time plus its TTL
/// (its own, else its Reviewer's). `None` while it is unfinished, has no
/// TTL, or its delivery to GitHub is under way (a run deleted then would
/// leave its verdict unposted).
fn expiry_ms(run: &ReviewRun, reviewer: &Reviewer) -> Option<i64> {
    let status = run.status.as_ref()?;
    if !status.phase?.is_terminal() || status.delivery.as_ref().is_some_and(|d| !d.state.is_final()) {
        return None;
    }
    let ttl = run.spec.ttl_seconds_after_finished.or(reviewer.spec.run_ttl_seconds_after_finished)?;
    let completed = status.completion_time.as_ref()?.0.as_millisecond();
    Some(completed.saturating_add(ttl.max(0).saturating_mul(1000)))
}

/// `spec.launchDeadline` in milliseconds; the schema enforces the pattern,
/// so an unparsable value falls back to the default.
fn launch_deadline_ms(reviewer: &Reviewer) -> i64 {
    let limit = duration::parse(&reviewer.spec.launch_deadline).unwrap_or(Duration::from_secs(300));
    i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)
}
