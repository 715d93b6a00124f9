//! One reconcile of one Reviewer: observe the stores, plan with
//! [`plan_reviewer`], execute the plan's steps; after a pod launch, or a
//! pod step that failed, plan once more, here and nowhere else.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::Instrument;

use super::AgentLaunch;
use super::events::EventQueue;
use super::executor::{Answers, Executor, StepError, StepFailed, WriteMarks};
use super::index::ObservedIndex;
use super::plan::{ObservedPod, ObservedReviewer, Step, plan_launch_failure, plan_reviewer};
use crate::api::Reviewer;
use crate::metrics::{ErrorLabels, Metrics};

/// How soon to look again when the stores lag behind the controller's own
/// writes or a write found its object changed. The watch event of the
/// awaited change usually triggers the next reconcile earlier.
const CACHE_RETRY: Duration = Duration::from_millis(200);
/// How long a reconcile waits for the stores' first lists before it gives
/// up and is requeued.
const SYNC_WAIT: Duration = Duration::from_secs(30);
/// First and longest delay of the back-off after failed reconciles.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub field_manager: String,
    pub agent: AgentLaunch,
    pub metrics: Arc<Metrics>,
    pub events: EventQueue,
    pub reviewers: Store<Reviewer>,
    pub pods: Store<Pod>,
    /// The runs of each Reviewer, which pods it has, and the controller's
    /// own writes the caches have yet to show.
    pub index: Arc<ObservedIndex>,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A step of a plan failed; the steps before it were written.
    #[error(transparent)]
    Step(#[from] StepFailed),
    /// Reading the Reviewer from the API server failed.
    #[error("read Reviewer {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting or creating the reviewer pod failed with a transient error;
    /// the Reviewer is marked Degraded and the reconcile must be retried.
    #[error("cannot start the reviewer pod: {message}")]
    LaunchTransient { message: String },
}

impl ReconcileError {
    /// Short label of the error for the `reconcile_errors{kind}` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Step(StepFailed { error: StepError::Outdated { .. }, .. }) => "conflict",
            Self::Step(StepFailed { error: StepError::Pod(_), .. }) | Self::LaunchTransient { .. } => "launch",
            Self::Step(_) | Self::Read { .. } => "api",
        }
    }
}

/// The reconciler the controller runtime calls for a Reviewer.
pub async fn reconcile(reviewer: Arc<Reviewer>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = reviewer.namespace().unwrap_or_default();
    reconcile_key(&ctx, &namespace, &reviewer.name_any()).await
}

/// Reconciles the Reviewer `name`, whether or not it exists: runs naming a
/// missing Reviewer are reconciled through here too.
pub async fn reconcile_key(ctx: &Context, namespace: &str, name: &str) -> Result<Action, ReconcileError> {
    let span = tracing::info_span!("reconcile", reviewer = %name, namespace = %namespace);
    async {
        let started = Instant::now();
        ctx.metrics.reconciles.inc();
        let result = reconcile_locked(ctx, namespace, name).await;
        ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            tracing::warn!(%error, "reconcile failed");
            ctx.metrics.reconcile_errors.get_or_create(&ErrorLabels { kind: error.kind().to_owned() }).inc();
        }
        result
    }
    .instrument(span)
    .await
}

async fn reconcile_locked(ctx: &Context, namespace: &str, name: &str) -> Result<Action, ReconcileError> {
    if !ctx.index.wait_until_synced(SYNC_WAIT).await {
        tracing::warn!("the stores have not completed their first list; waiting");
        return Ok(Action::requeue(CACHE_RETRY));
    }
    let entry = ctx.index.entry(namespace, name);
    let _guard = entry.lock.lock().await;
    if ctx.index.must_wait(&entry) {
        tracing::debug!("caches lag behind the last writes; waiting");
        return Ok(Action::requeue(CACHE_RETRY));
    }
    let observed = match observe(ctx, namespace, name).await? {
        Some(observed) => observed,
        None => return Ok(Action::requeue(CACHE_RETRY)),
    };
    let executor = Executor {
        client: &ctx.client,
        field_manager: &ctx.field_manager,
        events: &ctx.events,
        metrics: &ctx.metrics,
        agent: &ctx.agent,
    };
    let reconciled = reconcile_observed(&executor, namespace, &observed).await;
    ctx.index.record_writes(namespace, name, reconciled.marks);
    if reconciled.result.is_ok() {
        entry.failures.store(0, Ordering::Release);
    }
    reconciled.result
}

/// What [`reconcile_observed`] did.
pub struct Reconciled {
    /// What to do next, or why the reconcile failed.
    pub result: Result<Action, ReconcileError>,
    /// The versions its writes returned, also when it failed.
    pub marks: WriteMarks,
}

/// The part of a reconcile after observing: plan, execute, and plan again
/// after a launch or a failed pod step. A plan made on an outdated object
/// ends in a short requeue, not an error.
pub async fn reconcile_observed(executor: &Executor<'_>, namespace: &str, observed: &ObservedReviewer) -> Reconciled {
    let mut answers = Answers::default();
    let mut result = plan_and_execute(executor, namespace, observed, &mut answers).await;
    // A plan that creates a pod assigns nothing: runs are assigned once the
    // pod is known. The API's answers to the writes just made show it, so
    // the reconcile plans the assignment on them at once rather than wait
    // for the pod's watch event (and a second trip through the debounce).
    // The follow-up never creates another pod in this reconcile.
    if let Ok(Executed::Launched) = result {
        tracing::debug!("planning again for the pod just created");
        let after_launch = answers.applied_to(observed);
        result = plan_and_execute(executor, namespace, &after_launch, &mut answers).await;
    }
    let result = match result {
        Ok(Executed::Launched) => Ok(Action::requeue(CACHE_RETRY)),
        Ok(Executed::Done(action)) => Ok(action),
        Err(ReconcileError::Step(StepFailed { error: StepError::Outdated { object }, .. })) => {
            tracing::debug!(%object, "planned on an outdated object; planning again");
            Ok(Action::requeue(CACHE_RETRY))
        }
        Err(error) => Err(error),
    };
    Reconciled { result, marks: answers.marks() }
}

/// What one plan-and-execute did.
enum Executed {
    /// It created the reviewer pod: plan again on the API's answers.
    Launched,
    /// Reconcile next as this says.
    Done(Action),
}

/// Plans `observed`, executes the plan and, when a pod step fails, plans
/// and executes what [`plan_launch_failure`] says instead: the one place
/// that decides what follows a failed step.
async fn plan_and_execute(
    executor: &Executor<'_>,
    namespace: &str,
    observed: &ObservedReviewer,
    answers: &mut Answers,
) -> Result<Executed, ReconcileError> {
    let plan = plan_reviewer(observed, Timestamp::now());
    let action = plan.requeue_after.map_or_else(Action::await_change, Action::requeue);
    if plan.steps.is_empty() {
        return Ok(Executed::Done(action));
    }
    tracing::info!(
        steps = ?plan.steps.iter().map(Step::name).collect::<Vec<_>>(),
        run_updates = plan.run_updates().len(),
        pod_creation = ?plan.pod_creation().map(|launch| &launch.name),
        restart = ?plan.restart.as_ref().map(|restart| restart.reason),
        "executing plan"
    );
    let launched_before = answers.created_pod();
    match executor.execute(namespace, observed, &plan, answers).await {
        Ok(()) if answers.created_pod() && !launched_before => Ok(Executed::Launched),
        // A pod found existing (409) gives no answer to plan on: the runs
        // whose first status waited for it get it on the next reconcile.
        Ok(()) if plan.pod_creation().is_some() && !plan.deferred_updates.is_empty() => {
            Ok(Executed::Done(Action::requeue(CACHE_RETRY)))
        }
        Ok(()) => Ok(Executed::Done(action)),
        Err(StepFailed { index, step, error: StepError::Pod(error) }) => {
            tracing::warn!(error = %error.message, class = ?error.class, index, step, "reviewer pod operation failed");
            let failure = plan_launch_failure(observed, &plan, &error, Timestamp::now());
            executor.execute(namespace, observed, &failure.plan, answers).await?;
            if failure.retry {
                Err(ReconcileError::LaunchTransient { message: error.message })
            } else {
                Ok(Executed::Done(action))
            }
        }
        Err(failed) => Err(failed.into()),
    }
}

/// The runtime's error policy: exponential back-off per Reviewer.
pub fn error_policy(reviewer: Arc<Reviewer>, _error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let entry = ctx.index.entry(&reviewer.namespace().unwrap_or_default(), &reviewer.name_any());
    let failures = entry.failures.fetch_add(1, Ordering::AcqRel);
    Action::requeue(backoff(failures))
}

fn backoff(failures: u32) -> Duration {
    BACKOFF_START.saturating_mul(2_u32.saturating_pow(failures.min(16))).min(BACKOFF_MAX)
}

/// What the stores hold about the Reviewer `name`; `None` when the store
/// lacks a Reviewer that the server has (the store has not seen it yet).
async fn observe(ctx: &Context, namespace: &str, name: &str) -> Result<Option<ObservedReviewer>, ReconcileError> {
    let key = ObjectRef::<Reviewer>::new(name).within(namespace);
    let reviewer = match ctx.reviewers.get(&key) {
        Some(reviewer) => Some(Arc::unwrap_or_clone(reviewer)),
        // Absent from the store: confirm with the server before failing runs
        // as ReviewerNotFound, as the store may not have seen it yet.
        None => {
            let api: Api<Reviewer> = Api::namespaced(ctx.client.clone(), namespace);
            let found =
                api.get_opt(name).await.map_err(|source| ReconcileError::Read { name: name.to_owned(), source })?;
            if found.is_some() {
                return Ok(None);
            }
            None
        }
    };
    let runs = ctx.index.runs_of(namespace, name);
    let pods = ctx
        .index
        .pods_of(namespace, name)
        .into_iter()
        .filter_map(|pod| ctx.pods.get(&ObjectRef::new(&pod).within(namespace)))
        .filter_map(|pod| ObservedPod::from_pod(&pod))
        .collect();
    Ok(Some(ObservedReviewer { name: name.to_owned(), reviewer, runs, pods }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }
}
