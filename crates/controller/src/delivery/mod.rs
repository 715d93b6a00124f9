//! Delivery: the operator posts each verdict to its pull request, pinned to
//! the reviewed commit, and nothing for a commit the pull request has moved
//! past. It is the only writer to GitHub: reviewer pods hold no GitHub
//! credential and submit through the API server, whose rules refuse stale
//! submissions.
//!
//! A loop of its own, with its own watch on ReviewRuns, so that a slow or
//! failing GitHub never delays the reconciler's supersedes. Per run it plans
//! one step from the run's status ([`plan::plan_delivery`]), carries it out
//! ([`execute`](mod@execute)) and records the result in `status.delivery` under its own
//! field manager. GitHub's 5xx, 429 and rate limits are retried with
//! back-off that honours `Retry-After` and `x-ratelimit-reset`; refusals
//! (401, 403, 404, 422) fail the delivery with GitHub's message and a
//! Warning event.

pub mod execute;
pub mod github;
pub mod plan;
pub mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt, reflector};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use crate::api::{Delivery, DeliveryState, GROUP, ReviewRun, VERSION};
use crate::cache::trim_for_delivery;
use crate::events::{EventQueue, Publisher};
use crate::executor::numeric;
use crate::freshness::CACHE_WAIT_LIMIT;
use crate::metrics::{DeliveryLabels, Metrics};
use execute::{StepContext, execute};
use github::{GitHub, GitHubAuth, GitHubError};
use plan::{DeliveryStep, plan_delivery};

/// The field manager of `status.delivery`.
pub const FIELD_MANAGER: &str = "review-operator-delivery";
/// Runs delivered at once.
const CONCURRENCY: u16 = 4;
/// The first wait after a failed GitHub request without `Retry-After`; it
/// doubles per attempt up to [`MAX_BACK_OFF`].
const FIRST_BACK_OFF: Duration = Duration::from_secs(1);
const MAX_BACK_OFF: Duration = Duration::from_secs(300);

/// Where and as whom delivery writes.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// `https://api.github.com`, or a GitHub Enterprise `https://HOST/api/v3`.
    pub api_url: String,
    pub auth: GitHubAuth,
}

/// Why delivery could not run.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("--github-api-url {0:?} is not an http(s) URL")]
    ApiUrl(String),
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error("cannot record the delivery of ReviewRun {run}: {source}")]
    Record {
        run: String,
        #[source]
        source: kube::Error,
    },
}

struct Context {
    client: kube::Client,
    github: GitHub,
    /// The web host of the configured GitHub: runs on other hosts are not delivered.
    host: String,
    runs: Store<ReviewRun>,
    metrics: Arc<Metrics>,
    events: EventQueue,
    /// Failed attempts per run UID since this process started, for back-off
    /// and `delivery.attempts`.
    attempts: Mutex<HashMap<String, i64>>,
    /// The version of each run's last delivery record, per run UID.
    recorded: RecordedVersions,
}

impl Context {
    /// Counts a delivery step by its result.
    fn count(&self, result: &str) {
        self.metrics.deliveries.get_or_create(&DeliveryLabels { result: result.into() }).inc();
    }
}

/// Runs delivery until `shutdown` completes.
pub async fn run(
    client: kube::Client,
    settings: DeliverySettings,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DeliveryError> {
    let host = target::web_host(&settings.api_url).ok_or_else(|| DeliveryError::ApiUrl(settings.api_url.clone()))?;
    let github = GitHub::new(&settings.api_url, &settings.auth, metrics.github_rate_limit_remaining.clone())?;
    let (events, publisher) =
        EventQueue::start(Publisher::new(client.clone(), Reporter::from(FIELD_MANAGER)), metrics.clone());
    // Its own watch, trimmed to what delivery reads: at 200,000 runs a
    // store of whole runs would outweigh the reconciler's cache.
    let (runs, writer) = reflector::store();
    let watch = watcher::watcher(Api::<ReviewRun>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(trim_for_delivery)
        .reflect(writer)
        .applied_objects();
    let controller = Controller::for_stream(watch, runs.clone());
    let context = Arc::new(Context {
        client,
        github,
        host: host.clone(),
        runs,
        metrics,
        events,
        attempts: Mutex::new(HashMap::new()),
        recorded: RecordedVersions::default(),
    });
    tracing::info!(api = %settings.api_url, %host, app = context.github.is_app(), "delivery to GitHub starting");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(());
    });
    controller
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(async move {
            let _ = stopped.await;
        })
        .run(deliver, retry_policy, context.clone())
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "delivery reconcile failed");
            }
        })
        .await;
    drop(context);
    let _ = tokio::time::timeout(Duration::from_secs(5), publisher).await;
    tracing::info!("delivery stopped");
    Ok(())
}

async fn deliver(run: Arc<ReviewRun>, context: Arc<Context>) -> Result<Action, DeliveryError> {
    let name = run.name_any();
    let span = tracing::info_span!(
        "deliver",
        run = %name,
        reviewer = %run.spec.reviewer,
        sha = %run.spec.pull_request.head_sha,
    );
    async move {
        let Some(target) = target::target(&run, &context.host) else { return Ok(Action::await_change()) };
        let uid = run.uid().unwrap_or_default();
        if let Some(wait) = context.recorded.unseen(&uid, run.resource_version().as_deref(), Instant::now()) {
            tracing::debug!(?wait, "the store has not shown the last delivery record yet");
            return Ok(Action::requeue(wait));
        }
        let newer_sha = run.status.as_ref().and_then(|s| s.superseded_by.as_deref()).and_then(|newer| {
            let key = ObjectRef::<ReviewRun>::new(newer).within(&run.namespace().unwrap_or_default());
            context.runs.get(&key).map(|newer| newer.spec.pull_request.head_sha.clone())
        });
        let step = plan_delivery(&run, newer_sha.as_deref(), Timestamp::now());
        if step == DeliveryStep::Wait {
            return Ok(Action::await_change());
        }
        let step_context = StepContext {
            github: &context.github,
            run: &run,
            target: &target,
            context: format!("review-operator/{}", run.spec.reviewer),
        };
        let attempts = context.attempts.lock().map(|a| a.get(&uid).copied().unwrap_or(0)).unwrap_or(0);
        match execute(&step, &step_context).await {
            Ok(mut delivery) => {
                delivery.attempts = delivery.attempts.max(attempts);
                record(&context, &run, &delivery).await?;
                if let Ok(mut all) = context.attempts.lock() {
                    all.remove(&uid);
                }
                let result = match delivery.state {
                    DeliveryState::Pending => "started",
                    DeliveryState::Delivered => "delivered",
                    DeliveryState::Skipped => "skipped",
                    DeliveryState::Failed => "failed",
                };
                context.count(result);
                tracing::info!(state = ?delivery.state, reason = ?delivery.reason, review = ?delivery.review_id, "delivered");
                Ok(Action::await_change())
            }
            Err(GitHubError::Transient { message, retry_after }) => {
                let attempts = attempts + 1;
                if let Ok(mut all) = context.attempts.lock() {
                    all.insert(uid, attempts);
                }
                context.count("retried");
                // Said on the run when it shows a delivery already; a start
                // that failed is retried without a record, so it stays a start.
                if let Some(previous) = run.status.as_ref().and_then(|s| s.delivery.clone()) {
                    let retrying = Delivery { attempts, message: Some(message.clone()), ..previous };
                    record(&context, &run, &retrying).await?;
                }
                let wait = retry_after.unwrap_or_else(|| back_off(attempts));
                tracing::warn!(%message, attempts, wait = ?wait, "GitHub request failed; retrying");
                Ok(Action::requeue(wait))
            }
            Err(refused) => {
                let previous = run.status.as_ref().and_then(|s| s.delivery.clone());
                let delivery = Delivery {
                    state: DeliveryState::Failed,
                    reason: Some(refused.reason().to_owned()),
                    attempts,
                    message: Some(refused.to_string()),
                    time: Some(Time(Timestamp::now())),
                    ..previous.unwrap_or_else(|| Delivery::new(DeliveryState::Failed))
                };
                record(&context, &run, &delivery).await?;
                context.count("failed");
                let event = Event {
                    type_: EventType::Warning,
                    reason: "DeliveryFailed".into(),
                    note: Some(format!("cannot deliver to {}: {refused}", target.repository())),
                    action: "Deliver".into(),
                    secondary: None,
                };
                context.events.publish(event, run.object_ref(&()));
                tracing::warn!(error = %refused, "GitHub refused the delivery");
                Ok(Action::await_change())
            }
        }
    }
    .instrument(span)
    .await
}

/// Writes `status.delivery` with server-side apply under [`FIELD_MANAGER`],
/// which owns that field alone, and remembers the version it made.
async fn record(context: &Context, run: &ReviewRun, delivery: &Delivery) -> Result<(), DeliveryError> {
    let name = run.name_any();
    let api: Api<ReviewRun> = Api::namespaced(context.client.clone(), &run.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "ReviewRun",
        "metadata": {"name": name},
        "status": {"delivery": delivery},
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let recorded = api
        .patch_status(&name, &params, &Patch::Apply(&body))
        .await
        .map_err(|source| DeliveryError::Record { run: name, source })?;
    context.recorded.written(&run.uid().unwrap_or_default(), recorded.resource_version().as_deref(), Instant::now());
    Ok(())
}

/// Keeps delivery from planning on a run older than its own last record.
///
/// The patch's answer comes before the watch event that brings the record
/// into the store, and any change of the run in between (the reconciler's
/// status writes) triggers a reconcile on a copy without it, which would
/// post the step again. Versions are compared as numbers, as the
/// reconciler's cache wait compares them; a version that is not a number
/// is not waited for, and no wait outlasts [`CACHE_WAIT_LIMIT`].
#[derive(Debug, Default)]
struct RecordedVersions(Mutex<HashMap<String, (u64, Instant)>>);

impl RecordedVersions {
    fn written(&self, uid: &str, version: Option<&str>, now: Instant) {
        let version = version.map_or(0, numeric);
        if let Ok(mut all) = self.0.lock() {
            all.retain(|_, (_, at)| now.duration_since(*at) < CACHE_WAIT_LIMIT);
            if version > 0 {
                all.insert(uid.to_owned(), (version, now));
            }
        }
    }

    /// How long to wait when the run in hand is older than its last record;
    /// forgets the record once it has been seen or waited for long enough.
    fn unseen(&self, uid: &str, version: Option<&str>, now: Instant) -> Option<Duration> {
        let mut all = self.0.lock().ok()?;
        let (written, at) = *all.get(uid)?;
        let waited = now.duration_since(at);
        if version.map_or(0, numeric) >= written || waited >= CACHE_WAIT_LIMIT {
            all.remove(uid);
            return None;
        }
        Some(CACHE_WAIT_LIMIT - waited)
    }
}

fn back_off(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    FIRST_BACK_OFF.saturating_mul(1 << doublings).min(MAX_BACK_OFF)
}

/// Failed status writes (the API server, not GitHub) are retried soon.
fn retry_policy(_run: Arc<ReviewRun>, error: &DeliveryError, _context: Arc<Context>) -> Action {
    tracing::warn!(%error, "delivery failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_older_than_its_last_record_waits_until_the_record_is_seen_or_too_long() {
        let recorded = RecordedVersions::default();
        let start = Instant::now();
        assert_eq!(recorded.unseen("u", Some("5"), start), None, "nothing recorded");
        recorded.written("u", Some("10"), start);
        let later = start + Duration::from_secs(3);
        assert_eq!(recorded.unseen("u", Some("9"), later), Some(CACHE_WAIT_LIMIT - Duration::from_secs(3)));
        assert_eq!(recorded.unseen("other", Some("9"), later), None, "per run");
        assert_eq!(recorded.unseen("u", Some("10"), later), None, "seen");
        assert_eq!(recorded.unseen("u", Some("9"), later), None, "forgotten once seen");

        recorded.written("u", Some("20"), start);
        assert_eq!(recorded.unseen("u", Some("19"), start + CACHE_WAIT_LIMIT), None, "waited long enough");
        recorded.written("u", Some("not-a-number"), start);
        assert_eq!(recorded.unseen("u", Some("1"), start), None, "opaque versions are not waited for");
    }

    #[test]
    fn back_off_doubles_up_to_five_minutes() {
        assert_eq!(back_off(1), Duration::from_secs(1));
        assert_eq!(back_off(2), Duration::from_secs(2));
        assert_eq!(back_off(5), Duration::from_secs(16));
        assert_eq!(back_off(40), MAX_BACK_OFF);
    }
}
