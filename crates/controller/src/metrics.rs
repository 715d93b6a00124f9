//! Prometheus metrics of the controller, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label of a reconcile error: which kind of failure it was.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
}

/// Label of a delivery to GitHub: how it ended (`started`, `delivered`,
/// `skipped`, `failed`, or `retried` for a failed request).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub result: String,
}

/// Label of a restart: why the reviewer pod was replaced.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabels {
    pub reason: String,
}

/// Label of a per-Reviewer gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewerLabels {
    pub namespace: String,
    pub reviewer: String,
}

/// Labels of a request to the API server: its verb and resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    pub verb: String,
    pub resource: String,
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub supersedes: Counter,
    pub restarts: Family<RestartLabels, Counter>,
    pub duplicate_runs: Counter,
    pub late_runs: Counter,
    /// Finished runs deleted after their TTL.
    pub runs_expired: Counter,
    /// Seconds from a superseding run's creation to the fresh pod's creation.
    pub supersede_to_restart: Histogram,
    pub queue_depth: Family<ReviewerLabels, Gauge>,
    /// Events not published: the queue was full, or the API refused them.
    pub events_dropped: Counter,
    /// 1 while this replica holds the leader Lease and runs the reconciler, else 0.
    pub leader: Gauge,
    /// Delivery steps to GitHub, by result.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// GitHub's `x-ratelimit-remaining` on its last answer.
    pub github_rate_limit_remaining: Gauge,
    /// Requests to the API server, by verb and resource.
    pub api_requests: Family<ApiRequestLabels, Counter>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0].into_iter()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("review_operator");
        let reconciles = Counter::default();
        registry.register("reconciles", "Reconciles of Reviewers", reconciles.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register("reconcile_errors", "Failed reconciles by error kind", reconcile_errors.clone());
        let reconcile_duration = Histogram::new(latency_buckets());
        registry.register("reconcile_duration_seconds", "Time one reconcile takes", reconcile_duration.clone());
        let supersedes = Counter::default();
        registry.register("supersedes", "Runs failed because a newer head SHA exists", supersedes.clone());
        let restarts = Family::<RestartLabels, Counter>::default();
        registry.register("restarts", "Reviewer pods replaced because their work went stale", restarts.clone());
        let duplicate_runs = Counter::default();
        registry.register("duplicate_runs", "Runs failed as duplicates of a covering run", duplicate_runs.clone());
        let late_runs = Counter::default();
        registry.register("late_runs", "Runs created for an already superseded SHA", late_runs.clone());
        let runs_expired = Counter::default();
        registry.register("runs_expired", "Finished runs deleted after their TTL", runs_expired.clone());
        let supersede_to_restart = Histogram::new(latency_buckets());
        registry.register(
            "supersede_to_restart_seconds",
            "Time from a superseding run's creation to the fresh reviewer pod's creation",
            supersede_to_restart.clone(),
        );
        let queue_depth = Family::<ReviewerLabels, Gauge>::default();
        registry.register("queue_depth", "Runs assigned to the live reviewer pod", queue_depth.clone());
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Events not published because the event queue was full or the API refused them",
            events_dropped.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and runs the reconciler",
            leader.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register("deliveries", "Delivery steps to GitHub by result", deliveries.clone());
        let github_rate_limit_remaining = Gauge::default();
        registry.register(
            "github_rate_limit_remaining",
            "Requests GitHub still allows in its current rate-limit window, from its last answer",
            github_rate_limit_remaining.clone(),
        );
        let api_requests = Family::<ApiRequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests to the Kubernetes API server by verb and resource",
            api_requests.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            supersedes,
            restarts,
            duplicate_runs,
            late_runs,
            runs_expired,
            supersede_to_restart,
            queue_depth,
            events_dropped,
            leader,
            deliveries,
            github_rate_limit_remaining,
            api_requests,
        }
    }
}

impl Metrics {
    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_labels() {
        let metrics = Metrics::default();
        metrics.reconciles.inc();
        metrics.restarts.get_or_create(&RestartLabels { reason: "Superseded".into() }).inc();
        let text = metrics.encode();
        assert!(text.contains("review_operator_reconciles_total 1"), "{text}");
        assert!(text.contains("review_operator_restarts_total{reason=\"Superseded\"} 1"), "{text}");
        assert!(text.contains("# EOF"));
    }
}
