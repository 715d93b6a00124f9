//! The operator's HTTP endpoints: `/metrics`, `/healthz` and `/readyz`.
//!
//! - `/healthz` answers `ok` while the process serves HTTP at all (the
//!   liveness probe: a wedged runtime stops answering).
//! - `/readyz` answers `ok` once the API server answered the leader
//!   election and this replica is leading or standing by for the Lease, and
//!   503 while the election cannot reach the API server. A standby is ready:
//!   it is doing its job, and failing it would stop rollouts from progressing.
//! - `/metrics` is the Prometheus registry in the OpenMetrics text format.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use super::leader::ElectionStatus;
use crate::metrics::Metrics;

/// Content type of the OpenMetrics text format that `prometheus-client` writes.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    election: Arc<ElectionStatus>,
}

/// The routes, over the process's metrics and election status.
pub fn router(metrics: Arc<Metrics>, election: Arc<ElectionStatus>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Endpoints { metrics, election })
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

async fn metrics_text(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], endpoints.metrics.encode())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(endpoints): State<Endpoints>) -> (StatusCode, &'static str) {
    if endpoints.election.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the leader election has not reached the API server\n")
    }
}
