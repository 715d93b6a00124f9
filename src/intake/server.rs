//! The webhook receiver's HTTP server: checks each delivery (content type,
//! size, signature, payload), plans it with [`plan_pull_request`] over the
//! Reviewers it watches, and answers only once the API server accepted the
//! writes, with 5xx when it did not, so that GitHub's redelivery applies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;

use super::payload::PullRequestEvent;
use super::plan::{IntakePlan, ReviewerKey, plan_pull_request};
use super::signature::WebhookSecrets;
use crate::api::{ANNOTATION_CANCEL_REASON, ReviewRun, Reviewer, labels};
use crate::operations::http::OPENMETRICS_CONTENT_TYPE;

/// GitHub's limit on a delivery's payload.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// Label of a delivery's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

/// Label of a refused delivery.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// The receiver's metrics.
#[derive(Debug)]
pub struct IntakeMetrics {
    registry: Registry,
    pub deliveries: Family<OutcomeLabels, Counter>,
    pub rejected: Family<ReasonLabels, Counter>,
    pub runs_created: Counter,
    pub runs_cancelled: Counter,
}

impl Default for IntakeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("review_operator_webhook");
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register("deliveries", "Deliveries by outcome", deliveries.clone());
        let rejected = Family::<ReasonLabels, Counter>::default();
        registry.register("rejected", "Deliveries refused with a 4xx, by reason", rejected.clone());
        let runs_created = Counter::default();
        registry.register("runs_created", "ReviewRuns created from deliveries", runs_created.clone());
        let runs_cancelled = Counter::default();
        registry.register(
            "runs_cancelled",
            "ReviewRuns cancelled because their pull request closed",
            runs_cancelled.clone(),
        );
        Self { registry, deliveries, rejected, runs_created, runs_cancelled }
    }
}

impl IntakeMetrics {
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// What every request of the receiver shares.
pub struct Receiver {
    client: Client,
    reviewers: Store<Reviewer>,
    ready: Arc<AtomicBool>,
    secrets: WebhookSecrets,
    field_manager: String,
    pub metrics: IntakeMetrics,
    /// The Reviewer watch, which lives as long as the receiver: once the
    /// server that holds it stops, nothing keeps reconnecting to an API
    /// server that may be gone.
    watch: tokio::task::AbortHandle,
}

impl Receiver {
    /// A receiver watching every Reviewer, in a background task that ends
    /// when the receiver is dropped.
    pub fn start(client: Client, secrets: WebhookSecrets, field_manager: String) -> Arc<Self> {
        let (reviewers, writer) = reflector::store();
        let stream =
            watcher(Api::<Reviewer>::all(client.clone()), watcher::Config::default()).default_backoff().reflect(writer);
        let watch = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(error) = event {
                    tracing::warn!(%error, "watching Reviewers");
                }
            }
        });
        let ready = Arc::new(AtomicBool::new(false));
        tokio::spawn({
            let (reviewers, ready) = (reviewers.clone(), ready.clone());
            async move {
                if reviewers.wait_until_ready().await.is_ok() {
                    ready.store(true, Ordering::Release);
                }
            }
        });
        Arc::new(Self {
            client,
            reviewers,
            ready,
            secrets,
            field_manager,
            metrics: IntakeMetrics::default(),
            watch: watch.abort_handle(),
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// The routes: deliveries at `path`, and `/healthz`, `/readyz`, `/metrics`.
pub fn router(receiver: Arc<Receiver>, path: &str) -> Router {
    Router::new()
        .route(path, post(deliver))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(receiver)
}

async fn readyz(State(receiver): State<Arc<Receiver>>) -> (StatusCode, &'static str) {
    if receiver.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the Reviewers have not been listed yet\n")
    }
}

async fn metrics(State(receiver): State<Arc<Receiver>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], receiver.metrics.encode())
}

/// An answer to a delivery, and its outcome for the metrics.
struct Answer {
    status: StatusCode,
    outcome: &'static str,
    body: serde_json::Value,
}

impl Answer {
    fn refused(receiver: &Receiver, status: StatusCode, reason: &'static str, message: String) -> Self {
        receiver.metrics.rejected.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
        Self { status, outcome: "rejected", body: json!({ "error": message }) }
    }

    fn message(status: StatusCode, outcome: &'static str, message: String) -> Self {
        Self { status, outcome, body: json!({ "message": message }) }
    }

    /// The API server refused a write: a 503, so that GitHub redelivers, listing under `done`
    /// what was written before it.
    fn unavailable(message: String, done: &str, names: Vec<String>) -> Self {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), message.into());
        body.insert(done.into(), names.into());
        Self { status: StatusCode::SERVICE_UNAVAILABLE, outcome: "failed", body: body.into() }
    }
}

async fn deliver(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let delivery = headers.get("x-github-delivery").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let answer = answer(&receiver, &headers, body).await;
    receiver.metrics.deliveries.get_or_create(&OutcomeLabels { outcome: answer.outcome.to_owned() }).inc();
    tracing::info!(%delivery, status = answer.status.as_u16(), outcome = answer.outcome, "delivery");
    (answer.status, axum::Json(answer.body)).into_response()
}

async fn answer(receiver: &Receiver, headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Answer {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let message = format!("the body is larger than GitHub's limit of {MAX_BODY} bytes");
            return Answer::refused(receiver, StatusCode::PAYLOAD_TOO_LARGE, "too_large", message);
        }
        Err(rejection) => {
            return Answer::refused(
                receiver,
                StatusCode::BAD_REQUEST,
                "unreadable",
                format!("cannot read the body: {rejection}"),
            );
        }
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        let message = format!(
            "Content-Type must be application/json, got {content_type:?}: set the webhook's content type to application/json"
        );
        return Answer::refused(receiver, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type", message);
    }
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if let Err(error) = receiver.secrets.verify(&body, signature) {
        return Answer::refused(receiver, StatusCode::UNAUTHORIZED, "signature", error.to_string());
    }
    let Some(event) = headers.get("x-github-event").and_then(|v| v.to_str().ok()) else {
        return Answer::refused(
            receiver,
            StatusCode::BAD_REQUEST,
            "missing_event",
            "missing X-GitHub-Event header".into(),
        );
    };
    match event {
        "ping" => Answer::message(StatusCode::OK, "ping", "pong".into()),
        "pull_request" => {
            let event = match PullRequestEvent::parse(&body) {
                Ok(event) => event,
                Err(error) => {
                    return Answer::refused(receiver, StatusCode::BAD_REQUEST, "invalid_payload", error.to_string());
                }
            };
            // The store's Reviewers are shared, not copied, per delivery.
            let reviewers = receiver.reviewers.state();
            match plan_pull_request(&event, reviewers.iter().map(AsRef::as_ref)) {
                Ok(plan) => execute(receiver, plan).await,
                Err(error) => Answer::refused(receiver, StatusCode::BAD_REQUEST, "invalid_payload", error.to_string()),
            }
        }
        other => Answer::message(StatusCode::ACCEPTED, "ignored", format!("event {other:?} is ignored")),
    }
}

/// Carries out a plan; never plans.
async fn execute(receiver: &Receiver, plan: IntakePlan) -> Answer {
    match plan {
        IntakePlan::Ignore(why) => Answer::message(StatusCode::ACCEPTED, "ignored", why),
        IntakePlan::Create(runs) => {
            let mut created = Vec::new();
            let mut unchanged = Vec::new();
            for run in runs {
                let name = run.name_any();
                let namespace = run.namespace().unwrap_or_default();
                match create_run(receiver, &run).await {
                    Ok(true) => created.push(format!("{namespace}/{name}")),
                    Ok(false) => unchanged.push(format!("{namespace}/{name}")),
                    Err(message) => return Answer::unavailable(message, "created", created),
                }
            }
            receiver.metrics.runs_created.inc_by(created.len() as u64);
            let (status, outcome) =
                if created.is_empty() { (StatusCode::OK, "unchanged") } else { (StatusCode::CREATED, "created") };
            Answer { status, outcome, body: json!({ "created": created, "unchanged": unchanged }) }
        }
        IntakePlan::Cancel { url, reason, reviewers } => {
            let mut cancelled = Vec::new();
            for reviewer in &reviewers {
                match cancel_runs(receiver, reviewer, &url, &reason).await {
                    Ok(names) => cancelled.extend(names),
                    Err(message) => return Answer::unavailable(message, "cancelled", cancelled),
                }
            }
            receiver.metrics.runs_cancelled.inc_by(cancelled.len() as u64);
            Answer {
                status: StatusCode::OK,
                outcome: "cancelled",
                body: json!({ "cancelled": cancelled, "reason": reason }),
            }
        }
    }
}

/// Creates `run`; `Ok(false)` when a run of that name exists for the same
/// review (a redelivery).
async fn create_run(receiver: &Receiver, run: &ReviewRun) -> Result<bool, String> {
    let namespace = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let api: Api<ReviewRun> = Api::namespaced(receiver.client.clone(), &namespace);
    let params = PostParams { field_manager: Some(receiver.field_manager.clone()), ..PostParams::default() };
    match api.create(&params, run).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api.get(&name).await.map_err(|e| format!("reading ReviewRun {namespace}/{name}: {e}"))?;
            let (ours, theirs) = (&run.spec.pull_request, &existing.spec.pull_request);
            let same = existing.spec.reviewer == run.spec.reviewer
                && theirs.url == ours.url
                && theirs.head_sha == ours.head_sha
                && theirs.previous_head_sha == ours.previous_head_sha;
            if same { Ok(false) } else { Err(format!("ReviewRun {namespace}/{name} exists for another review")) }
        }
        Err(error) => Err(format!("creating ReviewRun {namespace}/{name}: {error}")),
    }
}

/// Cancels the unfinished runs of `reviewer` for the pull request `url`.
async fn cancel_runs(
    receiver: &Receiver,
    reviewer: &ReviewerKey,
    url: &str,
    reason: &str,
) -> Result<Vec<String>, String> {
    let api: Api<ReviewRun> = Api::namespaced(receiver.client.clone(), &reviewer.namespace);
    let selector = format!("{}={}", labels::PULL_REQUEST, labels::pr_label_value(url));
    let runs = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("listing ReviewRuns in {}: {e}", reviewer.namespace))?;
    let params = PatchParams { field_manager: Some(receiver.field_manager.clone()), ..PatchParams::default() };
    let mut cancelled = Vec::new();
    for run in runs.items {
        let open = !run.phase().is_terminal() && !run.spec.cancel_requested;
        if run.spec.reviewer != reviewer.name || run.spec.pull_request.url != url || !open {
            continue;
        }
        let name = run.name_any();
        let patch = json!({
            "metadata": { "annotations": { ANNOTATION_CANCEL_REASON: reason } },
            "spec": { "cancelRequested": true },
        });
        api.patch(&name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("cancelling ReviewRun {}/{name}: {e}", reviewer.namespace))?;
        cancelled.push(format!("{}/{name}", reviewer.namespace));
    }
    Ok(cancelled)
}
