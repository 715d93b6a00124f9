//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! [`run_with_leadership`] runs the reconciler only while this replica holds
//! the Lease, so two replicas never act at once:
//!
//! - **Acquiring and renewing** is `kube-lease-manager`'s protocol: the holder
//!   renews `grace` seconds before `renewTime + leaseDurationSeconds`; a
//!   candidate takes the Lease once it is free or expired. Taking it is a
//!   server-side apply without `force`, so two candidates racing for it get a
//!   409 conflict for all but one.
//! - **Fencing.** The leader also watches the Lease and stops the reconciler
//!   (awaiting its end) at `renewTime + duration − grace/2` unless it has seen
//!   its own renewal by then, well before a standby may take over at
//!   `renewTime + duration`. A renewal request that hangs therefore cannot
//!   leave two replicas acting. Losing the Lease to another holder stops the
//!   reconciler as well. The reconciler may finish its work until the Lease
//!   expires, no longer: then it is aborted, with every task it started
//!   (a reconcile waiting on an unreachable API server, queued events).
//! - **Handing over.** On shutdown the leader stops the reconciler, waits for
//!   it, then clears the Lease. The standby watches the Lease and, seeing it
//!   released, campaigns at once instead of waiting out the old expiry (the
//!   manager caches the Lease until then, so a fresh manager is built).
//! - **Crashes.** A leader that dies without releasing keeps the Lease until
//!   it expires; the standby takes over within one lease duration (plus the
//!   manager's random 0.1–1 s back-off after clearing an expired Lease).
//!
//! Every term of leadership uses a fresh `LeaseManager`; a term that ended for
//! any reason other than shutdown does not clear the Lease, because the
//! manager's release is not conditional and could clear a newer holder.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseParams};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use crate::controller::tasks::AbortOnDrop;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::shutdown::{self, ShutdownSignal};

/// Shortest lease the election accepts: the renewal must happen at least one
/// whole second before expiry, and Lease durations are whole seconds.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(2);

/// Pause after an API error before campaigning again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Where the Lease lives and who this replica is.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique among replicas (the pod name in a cluster).
    pub identity: String,
    /// `leaseDurationSeconds`: how long a holder that stops renewing keeps the Lease.
    pub duration: Duration,
}

/// A lease duration the election cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseDurationError {
    #[error("must be a whole number of seconds, got {0:?}")]
    NotWholeSeconds(Duration),
    #[error("must be at least {}s, got {}s", MIN_LEASE_DURATION.as_secs(), .0.as_secs())]
    TooShort(Duration),
}

/// Checks a lease duration: whole seconds, at least [`MIN_LEASE_DURATION`].
pub fn validate_lease_duration(duration: Duration) -> Result<Duration, LeaseDurationError> {
    if duration.subsec_nanos() != 0 {
        Err(LeaseDurationError::NotWholeSeconds(duration))
    } else if duration < MIN_LEASE_DURATION {
        Err(LeaseDurationError::TooShort(duration))
    } else {
        Ok(duration)
    }
}

impl LeaseConfig {
    /// How long before expiry the holder renews: a third of the duration,
    /// at least one second (and always less than the duration).
    fn grace_seconds(&self) -> u64 {
        (self.duration.as_secs() / 3).max(1)
    }

    /// How long after its last renewal a leader may still act.
    fn fence_after_renewal(&self) -> Duration {
        self.duration.saturating_sub(Duration::from_secs(self.grace_seconds()) / 2)
    }
}

/// What the election reports to probes and metrics.
#[derive(Debug)]
pub struct ElectionStatus {
    ready: AtomicBool,
    leader: Gauge,
}

impl ElectionStatus {
    /// `leader` is set to 1 while this replica leads (the `review_operator_leader` metric).
    pub fn new(leader: Gauge) -> Self {
        Self { ready: AtomicBool::new(false), leader }
    }

    /// Ready: the API server answered the election's last request, and this
    /// replica is either leading or standing by for the Lease.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether this replica is running the reconciler.
    pub fn is_leading(&self) -> bool {
        self.leader.get() == 1
    }

    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    fn set_leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

/// Why the election stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum LeadershipError {
    #[error("lease duration: {0}")]
    LeaseDuration(#[from] LeaseDurationError),
    #[error("the controller stopped on its own while leading: {0}")]
    ControllerFailed(#[source] Box<dyn StdError + Send + Sync>),
    #[error("the controller stopped on its own while leading, without an error")]
    ControllerStopped,
    #[error("the controller task panicked or was cancelled: {0}")]
    ControllerPanicked(#[source] tokio::task::JoinError),
}

/// Runs `lead` while this replica holds the Lease, until `shutdown`.
///
/// `lead` is called at the start of every term of leadership with a signal
/// that resolves when the term ends (leadership lost or shutdown); its future
/// runs on its own task, and the term ends only once that future has
/// returned. On shutdown, the Lease is released after the future returned,
/// so a standby takes over at once. If the future returns while still
/// leading, the election releases the Lease and returns the error.
///
/// API errors are retried forever (the probe reports not ready meanwhile).
pub async fn run_with_leadership<F, Fut, E>(
    client: Client,
    lease: LeaseConfig,
    status: Arc<ElectionStatus>,
    shutdown: ShutdownSignal,
    mut lead: F,
) -> Result<(), LeadershipError>
where
    F: FnMut(ShutdownSignal) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>> + Send + 'static,
{
    validate_lease_duration(lease.duration)?;
    let api = Api::<Lease>::namespaced(client.clone(), &lease.namespace);
    let (views, mut lease_view) = watch::channel(None);
    let _lease_watch = AbortOnDrop(tokio::spawn(watch_lease(api.clone(), lease.name.clone(), views)));

    loop {
        if shutdown.is_triggered() {
            return Ok(());
        }
        let manager = tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            built = build_manager(client.clone(), &lease) => match built {
                Ok(manager) => manager,
                Err(error) => {
                    status.set_ready(false);
                    warn!(error = %error, lease = %lease.name, "cannot read the leader Lease; retrying");
                    pause(RETRY_DELAY, &shutdown).await;
                    continue;
                }
            },
        };
        status.set_ready(true);

        match campaign(&manager, &lease, &status, &shutdown, &mut lease_view).await {
            Campaign::Shutdown => return Ok(()),
            Campaign::Again => continue,
            Campaign::Acquired => {}
        }
        let Some(fence) = initial_fence(&api, &lease).await else {
            continue;
        };

        info!(lease = %lease.name, identity = %lease.identity, "acquired the leader Lease; starting the controller");
        status.set_leading(true);
        let end = lead_term(&manager, &lease, &status, &shutdown, &mut lease_view, fence, &mut lead).await;
        status.set_leading(false);

        match end {
            TermEnd::Lost(why) => {
                warn!(lease = %lease.name, identity = %lease.identity, reason = why, "lost leadership; controller stopped");
            }
            TermEnd::Shutdown { fence } => {
                release(&manager, &lease, fence).await;
                return Ok(());
            }
            TermEnd::ControllerEnded { fence, error } => {
                release(&manager, &lease, fence).await;
                return Err(error);
            }
        }
    }
}

enum Campaign {
    Acquired,
    /// Build a fresh manager and campaign again (the Lease was released, or an API error).
    Again,
    Shutdown,
}

/// Waits, standing by, until this replica holds the Lease.
async fn campaign(
    manager: &LeaseManager,
    lease: &LeaseConfig,
    status: &ElectionStatus,
    shutdown: &ShutdownSignal,
    lease_view: &mut watch::Receiver<Option<LeaseView>>,
) -> Campaign {
    // Only releases seen from now on make us restart the campaign.
    lease_view.borrow_and_update();
    debug!(lease = %lease.name, identity = %lease.identity, "standing by for the leader Lease");
    let mut acquisition = Box::pin(manager.changed());
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => return Campaign::Shutdown,
            changed = &mut acquisition => match changed {
                Ok(true) => return Campaign::Acquired,
                Ok(false) => acquisition = Box::pin(manager.changed()),
                Err(error) => {
                    status.set_ready(false);
                    warn!(error = %error, lease = %lease.name, "leader election failed; retrying");
                    pause(RETRY_DELAY, shutdown).await;
                    return Campaign::Again;
                }
            },
            Ok(()) = lease_view.changed() => {
                let released = lease_view.borrow_and_update().as_ref().is_some_and(|view| view.holder.is_none());
                if released {
                    debug!(lease = %lease.name, "the leader Lease was released; campaigning now");
                    return Campaign::Again;
                }
            }
        }
    }
}

enum TermEnd {
    Lost(&'static str),
    Shutdown { fence: Instant },
    ControllerEnded { fence: Instant, error: LeadershipError },
}

/// One term of leadership: runs the controller until leadership is lost,
/// the shutdown starts, or the controller stops; returns after it stopped.
async fn lead_term<F, Fut, E>(
    manager: &LeaseManager,
    lease: &LeaseConfig,
    status: &ElectionStatus,
    shutdown: &ShutdownSignal,
    lease_view: &mut watch::Receiver<Option<LeaseView>>,
    mut fence: Instant,
    lead: &mut F,
) -> TermEnd
where
    F: FnMut(ShutdownSignal) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>> + Send + 'static,
{
    let (stop, stop_signal) = shutdown::channel();
    let mut controller = AbortOnDrop(tokio::spawn(lead(stop_signal)));
    let mut renewal: Pin<Box<dyn Future<Output = _> + Send + '_>> = Box::pin(manager.changed());

    let reason = loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break None,
            ended = &mut controller.0 => {
                let error = match ended {
                    Ok(Ok(())) => LeadershipError::ControllerStopped,
                    Ok(Err(error)) => LeadershipError::ControllerFailed(error.into()),
                    Err(join) => LeadershipError::ControllerPanicked(join),
                };
                return TermEnd::ControllerEnded { fence, error };
            }
            _ = tokio::time::sleep_until(fence) => break Some("the Lease was not renewed in time"),
            changed = &mut renewal => match changed {
                Ok(true) => renewal = Box::pin(manager.changed()),
                Ok(false) => break Some("another replica holds the Lease"),
                Err(error) => {
                    // Keep leading until the fence: the next renewal may succeed.
                    status.set_ready(false);
                    warn!(error = %error, lease = %lease.name, "renewing the leader Lease failed; retrying");
                    renewal = Box::pin(async move {
                        tokio::time::sleep(RETRY_DELAY).await;
                        manager.changed().await
                    });
                }
            },
            Ok(()) = lease_view.changed() => {
                let renewed = lease_view.borrow_and_update().as_ref().and_then(|view| view.renewed_by(&lease.identity));
                if let Some(renewed) = renewed {
                    status.set_ready(true);
                    fence = fence.max(renewed + lease.fence_after_renewal());
                }
            }
        }
    };
    stop.trigger();
    // The controller may finish what it is doing, but not past the Lease's expiry, from which a
    // standby may act: what is still running then (a reconcile waiting on an unreachable API
    // server, events being flushed) is aborted, so two replicas never act at once.
    let expiry = fence + Duration::from_secs(lease.grace_seconds()) / 2;
    match tokio::time::timeout_at(expiry, &mut controller.0).await {
        Ok(Ok(Err(error))) => {
            let error: Box<dyn StdError + Send + Sync> = error.into();
            warn!(error = %error, "the controller returned an error while stopping");
        }
        Ok(_) => {}
        Err(_) => {
            controller.0.abort();
            warn!(lease = %lease.name, "the controller did not stop before the Lease expires; aborted it");
        }
    }
    match reason {
        Some(why) => TermEnd::Lost(why),
        None => TermEnd::Shutdown { fence },
    }
}

/// Right after acquiring: the fence from the Lease's own `renewTime`, read
/// anew (the manager may have found itself holder of a Lease renewed a while
/// ago). `None` when the read fails or shows another holder.
async fn initial_fence(api: &Api<Lease>, lease: &LeaseConfig) -> Option<Instant> {
    match api.get(&lease.name).await {
        Ok(object) => {
            let renewed = LeaseView::of(&object).renewed_by(&lease.identity);
            if renewed.is_none() {
                warn!(lease = %lease.name, "the leader Lease changed hands right after acquiring it");
            }
            renewed.map(|renewed| renewed + lease.fence_after_renewal())
        }
        Err(error) => {
            warn!(error = %error, lease = %lease.name, "cannot read the leader Lease after acquiring it");
            None
        }
    }
}

/// Clears the Lease so a standby takes over at once; only while the fence
/// holds, i.e. while no other replica can have taken the Lease yet.
async fn release(manager: &LeaseManager, lease: &LeaseConfig, fence: Instant) {
    let Some(time_left) = fence.checked_duration_since(Instant::now()) else {
        info!(lease = %lease.name, "not releasing the leader Lease: it may already have another holder");
        return;
    };
    match tokio::time::timeout(time_left, manager.release()).await {
        Ok(Ok(())) => info!(lease = %lease.name, identity = %lease.identity, "released the leader Lease"),
        Ok(Err(error)) => warn!(error = %error, lease = %lease.name, "releasing the leader Lease failed"),
        Err(_) => warn!(lease = %lease.name, "releasing the leader Lease timed out"),
    }
}

async fn build_manager(client: Client, lease: &LeaseConfig) -> kube_lease_manager::Result<LeaseManager> {
    let params = LeaseParams::new(lease.identity.clone(), lease.duration.as_secs(), lease.grace_seconds());
    LeaseManagerBuilder::new(client, lease.name.clone())
        .with_namespace(lease.namespace.clone())
        .with_parameters(params)
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .build()
        .await
}

async fn pause(delay: Duration, shutdown: &ShutdownSignal) {
    tokio::select! {
        _ = shutdown.wait() => {}
        _ = tokio::time::sleep(delay) => {}
    }
}

/// The parts of the Lease the election looks at.
#[derive(Clone, Debug, PartialEq)]
struct LeaseView {
    holder: Option<String>,
    renew_time: Option<SystemTime>,
}

impl LeaseView {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Self {
            holder: spec.and_then(|spec| spec.holder_identity.clone()),
            renew_time: spec.and_then(|spec| spec.renew_time.as_ref()).map(|time| SystemTime::from(time.0)),
        }
    }

    /// When `identity` last renewed, on this process's monotonic clock.
    /// The holder writes `renewTime` from its own clock, so no skew applies.
    fn renewed_by(&self, identity: &str) -> Option<Instant> {
        if self.holder.as_deref() != Some(identity) {
            return None;
        }
        let age = SystemTime::now().duration_since(self.renew_time?).unwrap_or(Duration::ZERO);
        Some(Instant::now().checked_sub(age).unwrap_or_else(Instant::now))
    }
}

/// Publishes every change of the Lease (`None` while it does not exist).
async fn watch_lease(api: Api<Lease>, name: String, views: watch::Sender<Option<LeaseView>>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) => {
                views.send_replace(Some(LeaseView::of(&lease)));
            }
            Ok(watcher::Event::Delete(_)) => {
                views.send_replace(None);
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(error) => debug!(error = %error, lease = %name, "watching the leader Lease failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn config(duration: u64) -> LeaseConfig {
        LeaseConfig {
            namespace: "default".into(),
            name: "review-operator".into(),
            identity: "replica-a".into(),
            duration: Duration::from_secs(duration),
        }
    }

    #[test]
    fn grace_is_a_third_of_the_duration_and_at_least_a_second() {
        assert_eq!(config(15).grace_seconds(), 5);
        assert_eq!(config(2).grace_seconds(), 1);
        assert_eq!(config(15).fence_after_renewal(), Duration::from_millis(12_500));
        assert_eq!(config(2).fence_after_renewal(), Duration::from_millis(1_500));
    }

    #[test]
    fn lease_durations_must_be_whole_seconds_of_at_least_two() {
        assert_eq!(validate_lease_duration(Duration::from_secs(15)), Ok(Duration::from_secs(15)));
        assert_eq!(
            validate_lease_duration(Duration::from_secs(1)),
            Err(LeaseDurationError::TooShort(Duration::from_secs(1)))
        );
        assert_eq!(
            validate_lease_duration(Duration::from_millis(2500)),
            Err(LeaseDurationError::NotWholeSeconds(Duration::from_millis(2500)))
        );
        assert_eq!(
            validate_lease_duration(Duration::from_secs(1)).unwrap_err().to_string(),
            "must be at least 2s, got 1s"
        );
    }

    fn lease(holder: Option<&str>, renewed: SystemTime) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: Some(MicroTime(renewed.try_into().expect("valid timestamp"))),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn only_own_renewals_count() {
        let renewed = SystemTime::now() - Duration::from_secs(3);
        let view = LeaseView::of(&lease(Some("replica-a"), renewed));
        let age = Instant::now() - view.renewed_by("replica-a").expect("own renewal");
        assert!(age >= Duration::from_secs(3), "{age:?}");
        assert_eq!(view.renewed_by("replica-b"), None);
        assert_eq!(LeaseView::of(&lease(None, renewed)).renewed_by("replica-a"), None);
        assert_eq!(LeaseView::of(&Lease::default()), LeaseView { holder: None, renew_time: None });
    }
}
