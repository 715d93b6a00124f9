//! One reconcile of one Reviewer: observe the stores, plan with
//! [`plan_reviewer`], execute the plan.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::AgentLaunch;
use super::executor::{ExecuteError, Executor, Written};
use super::freshness::{Caches, Ledger};
use super::plan::{ObservedPod, ObservedReviewer, plan_reviewer};
use crate::api::{ReviewRun, Reviewer, labels};
use crate::metrics::{ErrorLabels, Metrics};

/// How soon to look again when the stores lag behind the controller's own
/// writes or a write found its object changed. The watch event of the
/// awaited change usually triggers the next reconcile earlier.
const CACHE_RETRY: Duration = Duration::from_millis(200);
/// How long a reconcile that created a pod waits for the stores to show it
/// before planning the assignment itself; past it, the pod's watch event
/// triggers the assignment as usual.
const FOLLOW_UP_WAIT: Duration = Duration::from_secs(2);
/// First and longest delay of the back-off after failed reconciles.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub field_manager: String,
    pub agent: AgentLaunch,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub reviewers: Store<Reviewer>,
    pub runs: Store<ReviewRun>,
    pub pods: Store<Pod>,
    pub caches: Arc<Caches>,
    pub ledger: Ledger,
}

/// The reconciler the controller runtime calls for a Reviewer.
pub async fn reconcile(reviewer: Arc<Reviewer>, ctx: Arc<Context>) -> Result<Action, ExecuteError> {
    let namespace = reviewer.namespace().unwrap_or_default();
    reconcile_key(&ctx, &namespace, &reviewer.name_any()).await
}

/// Reconciles the Reviewer `name`, whether or not it exists: runs naming a
/// missing Reviewer are reconciled through here too (rule 9).
pub async fn reconcile_key(ctx: &Context, namespace: &str, name: &str) -> Result<Action, ExecuteError> {
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

async fn reconcile_locked(ctx: &Context, namespace: &str, name: &str) -> Result<Action, ExecuteError> {
    let entry = ctx.ledger.entry(namespace, name);
    let _guard = entry.lock.lock().await;
    if entry.must_wait(&ctx.caches) {
        tracing::debug!("caches lag behind the last writes; waiting");
        return Ok(Action::requeue(CACHE_RETRY));
    }
    let mut outcome = plan_and_execute(ctx, &entry, namespace, name).await?;
    // A plan that creates a pod assigns nothing: runs are assigned once the
    // pod is observed. Waiting here for the stores to show it, and planning
    // again at once, saves the new pod's watch event a second trip through
    // the debounce (half of a supersede's latency otherwise). The follow-up
    // never creates another pod in this reconcile.
    if outcome.created_pod && entry.wait_until_seen(&ctx.caches, FOLLOW_UP_WAIT).await {
        tracing::debug!("planning again for the pod just created");
        outcome = plan_and_execute(ctx, &entry, namespace, name).await?;
    }
    Ok(outcome.action)
}

/// What one plan-and-execute step did.
struct Outcome {
    action: Action,
    /// The plan created a reviewer pod and every write succeeded.
    created_pod: bool,
}

async fn plan_and_execute(
    ctx: &Context,
    entry: &super::freshness::Entry,
    namespace: &str,
    name: &str,
) -> Result<Outcome, ExecuteError> {
    let key = ObjectRef::<Reviewer>::new(name).within(namespace);
    let reviewer = match ctx.reviewers.get(&key) {
        Some(reviewer) => Some(Arc::unwrap_or_clone(reviewer)),
        // Absent from the store: confirm with the server before failing runs
        // as ReviewerNotFound, as the store may not have seen it yet.
        None => {
            let api: Api<Reviewer> = Api::namespaced(ctx.client.clone(), namespace);
            let found = api.get_opt(name).await.map_err(|source| ExecuteError::Api {
                action: "read",
                object: format!("Reviewer {name}"),
                source,
            })?;
            if found.is_some() {
                return Ok(Outcome { action: Action::requeue(CACHE_RETRY), created_pod: false });
            }
            None
        }
    };
    let observed = observe(ctx, namespace, name, reviewer);
    let plan = plan_reviewer(&observed, Timestamp::now());
    let action = plan.requeue_after.map_or_else(Action::await_change, Action::requeue);
    if plan.is_noop() && plan.events.is_empty() {
        entry.failures.store(0, Ordering::Release);
        return Ok(Outcome { action, created_pod: false });
    }
    tracing::info!(
        run_updates = plan.run_updates.len(),
        pod_deletions = plan.pod_deletions.len(),
        pod_creation = ?plan.pod_creation.as_ref().map(|launch| &launch.name),
        restart = ?plan.restart.as_ref().map(|restart| restart.reason),
        "executing plan"
    );
    let executor = Executor {
        client: &ctx.client,
        field_manager: &ctx.field_manager,
        recorder: &ctx.recorder,
        metrics: &ctx.metrics,
        agent: &ctx.agent,
    };
    let mut written = Written::default();
    let result = executor.execute(namespace, &observed, &plan, &mut written).await;
    entry.record(written);
    match result {
        Ok(executed) => {
            entry.failures.store(0, Ordering::Release);
            Ok(Outcome { action, created_pod: executed.pod_created })
        }
        Err(ExecuteError::Outdated { object }) => {
            tracing::debug!(%object, "planned on an outdated object; planning again");
            Ok(Outcome { action: Action::requeue(CACHE_RETRY), created_pod: false })
        }
        Err(error) => Err(error),
    }
}

/// The runtime's error policy: exponential back-off per Reviewer.
pub fn error_policy(reviewer: Arc<Reviewer>, _error: &ExecuteError, ctx: Arc<Context>) -> Action {
    let entry = ctx.ledger.entry(&reviewer.namespace().unwrap_or_default(), &reviewer.name_any());
    let failures = entry.failures.fetch_add(1, Ordering::AcqRel);
    Action::requeue(backoff(failures))
}

fn backoff(failures: u32) -> Duration {
    BACKOFF_START.saturating_mul(2_u32.saturating_pow(failures.min(16))).min(BACKOFF_MAX)
}

/// What the stores hold about the Reviewer `name`.
fn observe(ctx: &Context, namespace: &str, name: &str, reviewer: Option<Reviewer>) -> ObservedReviewer {
    let runs = ctx
        .runs
        .state()
        .into_iter()
        .filter(|run| run.meta().namespace.as_deref() == Some(namespace) && run.spec.reviewer == name)
        .map(Arc::unwrap_or_clone)
        .collect();
    let pods = ctx
        .pods
        .state()
        .iter()
        .filter(|pod| pod.meta().namespace.as_deref() == Some(namespace))
        .filter(|pod| pod.labels().get(labels::REVIEWER).map(String::as_str) == Some(name))
        .filter_map(|pod| ObservedPod::from_pod(pod))
        .collect();
    ObservedReviewer { name: name.to_owned(), reviewer, runs, pods }
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
