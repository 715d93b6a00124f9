//! Publishing Events off the reconcile path.
//!
//! Events are for people reading `kubectl describe` and `kubectl events`;
//! no decision of the controller depends on them. As client-go's event
//! broadcaster does, a reconcile queues its events and goes on, and a
//! background task publishes them through kube's [`Recorder`]. A full queue
//! drops the event (counted in `review_operator_events_dropped_total`)
//! rather than slow reconciles down.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// Events waiting to be published, at most.
pub const QUEUE_CAPACITY: usize = 4096;
/// Events being published at once.
const CONCURRENT_PUBLISHES: usize = 4;

struct Queued {
    event: Event,
    reference: ObjectReference,
}

/// The sending side of the event queue. The publishing task ends, after
/// publishing what is queued, once every `EventQueue` is dropped.
#[derive(Clone)]
pub struct EventQueue {
    sender: mpsc::Sender<Queued>,
    metrics: Arc<Metrics>,
}

impl EventQueue {
    /// A queue and the task publishing its events with `recorder`.
    pub fn start(recorder: Recorder, metrics: Arc<Metrics>) -> (Self, JoinHandle<()>) {
        let (queue, receiver) = Self::channel(QUEUE_CAPACITY, metrics.clone());
        let queued = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|queued| (queued, receiver))
        });
        let task = tokio::spawn(queued.for_each_concurrent(CONCURRENT_PUBLISHES, move |queued| {
            let (recorder, metrics) = (recorder.clone(), metrics.clone());
            async move {
                if let Err(error) = recorder.publish(&queued.event, &queued.reference).await {
                    metrics.events_dropped.inc();
                    tracing::warn!(%error, reason = %queued.event.reason, "cannot publish event");
                }
            }
        }));
        (queue, task)
    }

    fn channel(capacity: usize, metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<Queued>) {
        let (sender, receiver) = mpsc::channel(capacity);
        (Self { sender, metrics }, receiver)
    }

    /// Queues `event` about the object `reference`.
    pub fn publish(&self, event: Event, reference: ObjectReference) {
        if let Err(error) = self.sender.try_send(Queued { event, reference }) {
            self.metrics.events_dropped.inc();
            let reason = match &error {
                mpsc::error::TrySendError::Full(queued) | mpsc::error::TrySendError::Closed(queued) => {
                    queued.event.reason.clone()
                }
            };
            tracing::warn!(%reason, "event queue full; event dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::events::EventType;

    fn event(reason: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: None,
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_the_event() {
        let metrics = Arc::new(Metrics::default());
        let (queue, mut receiver) = EventQueue::channel(2, metrics.clone());
        for reason in ["First", "Second", "Third"] {
            queue.publish(event(reason), ObjectReference::default());
        }
        assert_eq!(metrics.events_dropped.get(), 1);
        assert_eq!(receiver.try_recv().map(|q| q.event.reason).ok().as_deref(), Some("First"));
        assert_eq!(receiver.try_recv().map(|q| q.event.reason).ok().as_deref(), Some("Second"));
        assert!(receiver.try_recv().is_err(), "the third event was dropped");
    }
}
