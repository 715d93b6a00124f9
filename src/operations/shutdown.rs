//! A shutdown signal shared by every long-running part of the process.
//!
//! The trigger fires once (on SIGTERM/SIGINT, or when a part fails); every
//! clone of the signal then resolves, so the HTTP server, the leader election
//! and the reconciler all stop from the same event.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// Fires the shutdown. Clones fire the same signal.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger(Arc<watch::Sender<bool>>);

/// Resolves once the shutdown has been triggered (or its trigger is gone).
#[derive(Clone, Debug)]
pub struct ShutdownSignal(watch::Receiver<bool>);

/// A fresh, untriggered shutdown pair.
pub fn channel() -> (ShutdownTrigger, ShutdownSignal) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger(Arc::new(sender)), ShutdownSignal(receiver))
}

impl ShutdownTrigger {
    /// Starts the shutdown; later calls do nothing.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl ShutdownSignal {
    /// A future that resolves at shutdown. It owns its state, so it can be
    /// handed to spawned tasks (`Send + 'static`).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut receiver = self.0.clone();
        async move {
            // An error means every trigger was dropped: nobody can keep us
            // running any more, so that counts as a shutdown as well.
            let _ = receiver.wait_for(|triggered| *triggered).await;
        }
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

/// Waits for SIGTERM (what the kubelet sends) or SIGINT (Ctrl-C) and returns
/// the signal's name.
pub async fn termination_signal() -> std::io::Result<&'static str> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => Ok("SIGTERM"),
        interrupted = tokio::signal::ctrl_c() => interrupted.map(|()| "SIGINT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_clone_resolves_once_triggered() {
        let (trigger, signal) = channel();
        let waiters: Vec<_> = (0..3).map(|_| tokio::spawn(signal.clone().wait())).collect();
        assert!(!signal.is_triggered());
        trigger.trigger();
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(10), waiter)
                .await
                .expect("waiter resolves")
                .expect("waiter task completes");
        }
        assert!(signal.is_triggered());
    }

    #[tokio::test]
    async fn dropping_every_trigger_counts_as_shutdown() {
        let (trigger, signal) = channel();
        drop(trigger);
        tokio::time::timeout(Duration::from_secs(10), signal.wait())
            .await
            .expect("signal resolves when its trigger is gone");
    }
}
