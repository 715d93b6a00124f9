//! The reconciler of Reviewers. Decisions live in [`plan`] as pure functions
//! of what was observed; executing a plan is I/O at the edge.

pub mod api_requests;
pub mod cache;
pub mod delivery;
pub mod events;
pub mod executor;
pub mod freshness;
pub mod index;
pub mod lean;
pub mod metrics;
pub mod plan;
pub mod pod;
pub mod reconcile;
pub mod tasks;
pub mod transcripts;

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use review_api as api;

use crate::api::{ReviewRun, Reviewer, labels};
use events::{EventQueue, Publisher};
use index::ObservedIndex;
use reconcile::Context;
use tasks::{AbortOnDrop, read_ahead};

/// Watch events decoded ahead of the controller: two pages of a list
/// (`watcher::Config`'s pages hold 500 objects).
const READ_AHEAD: usize = 1000;

/// Debounce for the controller runtime (`kube::runtime::controller::Config::debounce`).
///
/// One trigger (a CI bot's loop over PRs) creates several ReviewRuns a few
/// milliseconds apart. The runtime's debounce is trailing-edge: each event
/// for a Reviewer pushes its reconcile back by this much, so a burst whose
/// events are closer together than this lands in one reconcile. Events
/// arriving while a reconcile runs are batched into the next one anyway.
/// Restarting once does not rest on the debounce: the runs of the replaced
/// pod are assigned to the fresh one only once it runs, so a run of the same
/// trigger that arrives while it starts supersedes work no live pod holds,
/// and restarts nothing. The debounce only saves reconciles, and it adds
/// directly to supersede latency, hence 2 ms: it merges the events a watch
/// delivers together, and a supersede costs the API server's round trips,
/// not a wait.
pub const RECOMMENDED_DEBOUNCE: Duration = Duration::from_millis(2);

/// Reviewers reconciled at once (`kube::runtime::controller::Config::concurrency`).
///
/// Each reconcile writes up to [`executor::CONCURRENT_WRITES`] runs at once,
/// so this also bounds the controller's API requests in flight, and with
/// them its connections and memory, when every Reviewer needs work at once
/// (a cold start). Reconciles of one Reviewer never overlap either way.
pub const RECOMMENDED_CONCURRENCY: u16 = 16;

/// How soon a reconcile of runs waiting for a missing Reviewer is retried
/// when it asked to be.
const MISSING_REVIEWER_RETRY: Duration = Duration::from_millis(200);

/// How long shutdown waits for queued events to be published.
const EVENT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// How the in-pod supervisor (`review-operator agent`) gets into reviewer pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentLaunch {
    /// Real clusters: an init container running the operator's image copies the binary into a shared
    /// `emptyDir`, and the agent container runs that copy (the agent image is the user's own).
    Inject { operator_image: String },
    /// Dev clusters, whose pods are local processes: run this binary directly.
    LocalBinary { path: std::path::PathBuf },
}

/// Settings of the Reviewer controller.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// The field manager of every write the controller makes.
    pub field_manager: String,
    /// How long the runtime waits after the last event before reconciling.
    pub debounce: Duration,
    /// Reviewers reconciled at once, at least 1.
    pub concurrency: u16,
    pub agent: AgentLaunch,
    /// Delivery of verdicts to GitHub, off when `None`.
    pub delivery: Option<crate::delivery::DeliverySettings>,
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The API server does not serve a resource the controller needs.
    #[error("cannot list {resource}: {source} (are the CustomResourceDefinitions from crds/ installed?)")]
    ApiUnavailable {
        resource: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// Runs the Reviewer controller until `shutdown` completes, then lets the
/// reconciles in flight finish.
///
/// Reconciles are keyed by Reviewer: ReviewRun events map to the Reviewer
/// their `spec.reviewer` names in the same namespace, pod events to the
/// Reviewer owning the pod. Runs naming a Reviewer that does not exist are
/// reconciled from the runtime's not-found reports, as the runtime only
/// reconciles objects its store holds.
pub async fn run(
    client: kube::Client,
    settings: ControllerSettings,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    check_api::<Reviewer>(&client, "reviewers.review.ao.dev").await?;
    check_api::<ReviewRun>(&client, "reviewruns.review.ao.dev").await?;

    let index = Arc::new(ObservedIndex::default());
    let (reviewers, reviewer_events) =
        reflect::<Reviewer>(&client, watcher::Config::default(), cache::trim_managed_fields, {
            let index = index.clone();
            move |event| index.observe_reviewer(event)
        });
    // The index is the run cache (see `cache::CachedRun`): no reflector store.
    let run_events = {
        let index = index.clone();
        let events = watcher(Api::<lean::LeanRun>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .map_ok(lean::into_run_event)
            .modify(cache::trim_run);
        read_ahead(events, READ_AHEAD).inspect_ok(move |event| index.observe_run(event)).touched_objects()
    };
    let pod_config = watcher::Config::default().labels(labels::REVIEWER);
    let (pods, pod_events) = reflect::<Pod>(&client, pod_config, cache::trim_pod, {
        let index = index.clone();
        move |event| index.observe_pod(event)
    });

    let publisher = Publisher::new(client.clone(), Reporter::from(settings.field_manager.as_str()));
    let (events, event_publisher) = EventQueue::start(publisher, metrics.clone());
    // Tasks of this run end with it, even when it is aborted (at the Lease's expiry).
    let mut event_publisher = AbortOnDrop(event_publisher);
    let context = Arc::new(Context {
        events,
        client,
        field_manager: settings.field_manager.clone(),
        agent: settings.agent.clone(),
        metrics: metrics.clone(),
        reviewers: reviewers.clone(),
        pods,
        index,
    });

    let (stop_controller, controller_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_side_loop, side_loop_stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_controller.send(());
        let _ = stop_side_loop.send(true);
    });
    // Delivery has its own watch and queue, so a slow GitHub never delays a reconcile.
    let delivery = settings.delivery.clone().map(|delivery| {
        let (client, metrics, mut stopped) = (context.client.clone(), metrics.clone(), side_loop_stopped.clone());
        AbortOnDrop(tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            if let Err(error) = crate::delivery::run(client, delivery, metrics, stop).await {
                tracing::error!(%error, "delivery to GitHub stopped");
            }
        }))
    });

    // Retention reads transcripts' metadata only, apart from the reconciler.
    let mut retention = {
        let (client, reviewers, mut stopped) = (context.client.clone(), reviewers.clone(), side_loop_stopped.clone());
        AbortOnDrop(tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            transcripts::run(client, reviewers, stop).await;
        }))
    };

    let run_to_reviewer = |run: ReviewRun| {
        Some(ObjectRef::<Reviewer>::new(&run.spec.reviewer).within(&run.namespace().unwrap_or_default()))
    };

    tracing::info!(debounce = ?settings.debounce, concurrency = settings.concurrency, field_manager = %settings.field_manager, "controller starting");
    Controller::for_stream(reviewer_events, reviewers)
        .watches_stream(run_events, run_to_reviewer)
        .owns_stream(pod_events)
        .with_config(controller::Config::default().debounce(settings.debounce).concurrency(settings.concurrency.max(1)))
        .graceful_shutdown_on(controller_stopped.map(|_| ()))
        .run(reconcile::reconcile, reconcile::error_policy, context.clone())
        .for_each_concurrent(usize::from(settings.concurrency.max(1)), |result| {
            let context = context.clone();
            async move {
                match result {
                    Ok((object, _)) => tracing::trace!(reviewer = %object.name, "reconciled"),
                    // The runtime reconciles only Reviewers its store holds: runs
                    // waiting for a missing one are reconciled here, after the
                    // same debounce.
                    Err(controller::Error::ObjectNotFound(object)) => {
                        reconcile_missing_reviewer(&context, &object).await
                    }
                    Err(controller::Error::ReconcilerFailed(error, object)) => {
                        tracing::debug!(reviewer = %object.name, %error, "reconcile failed; retrying with back-off")
                    }
                    Err(error) => tracing::warn!(%error, "controller stream error"),
                }
            }
        })
        .await;
    // The last sender of the event queue: the publisher's stream ends with it.
    drop(context);
    let _ = (&mut retention.0).await;
    if let Some(mut delivery) = delivery {
        let _ = (&mut delivery.0).await;
    }
    // Every queue sender is gone with the reconciles: the publisher ends once
    // it has published what is queued.
    if tokio::time::timeout(EVENT_FLUSH_LIMIT, &mut event_publisher.0).await.is_err() {
        tracing::warn!("events still queued at shutdown were not published");
    }
    tracing::info!("controller stopped");
    Ok(())
}

async fn check_api<K>(client: &kube::Client, resource: &'static str) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    api.list_metadata(&ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(|source| ControllerError::ApiUnavailable { resource, source })
}

/// A reflector store of `K` and its stream of touched objects; `trim`
/// drops what the controller never reads before the store keeps an object
/// (see [`cache`]), and `applied` sees every event once the store has
/// applied it.
fn reflect<K>(
    client: &kube::Client,
    config: watcher::Config,
    trim: impl Fn(&mut K) + Send + Sync + 'static,
    applied: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (Store<K>, impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(Api::<K>::all(client.clone()), config).default_backoff().modify(trim);
    let events = read_ahead(events, READ_AHEAD).reflect(writer).inspect_ok(applied).touched_objects();
    (store, events)
}

/// Reconciles the Reviewer `object`, absent from the store, if runs wait
/// for it; [`reconcile::reconcile_key`] confirms with a read from the
/// server that it is missing. A reconcile that must be retried is, once,
/// after a short delay: the writes it makes trigger the next one anyway.
async fn reconcile_missing_reviewer(context: &Arc<Context>, object: &ObjectRef<kube::api::DynamicObject>) {
    let namespace = object.namespace.clone().unwrap_or_default();
    if !context.index.waits_for_reviewer(&namespace, &object.name) {
        tracing::trace!(reviewer = %object.name, "trigger for a Reviewer that is gone; nothing waits for it");
        return;
    }
    tracing::debug!(reviewer = %object.name, %namespace, "runs name a Reviewer missing from the store");
    let retry = match reconcile::reconcile_key(context, &namespace, &object.name).await {
        Ok(action) if action == controller::Action::await_change() => None,
        Ok(_) => Some(MISSING_REVIEWER_RETRY),
        Err(_) => Some(MISSING_REVIEWER_RETRY * 5),
    };
    if let Some(delay) = retry {
        let context = context.clone();
        let name = object.name.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if context.index.waits_for_reviewer(&namespace, &name) {
                let _ = reconcile::reconcile_key(&context, &namespace, &name).await;
            }
        });
    }
}
