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
/// The longest note, in bytes, the API server accepts: events.k8s.io
/// validation rejects the whole event beyond it, and some notes quote
/// unbounded text (an API error message, a list of run names).
pub const NOTE_LIMIT: usize = 1024;
/// Marks a note cut to [`NOTE_LIMIT`].
const ELLIPSIS: &str = "…";

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

    /// Queues `event` about the object `reference`, its note cut to
    /// [`NOTE_LIMIT`]: every event passes here, so no caller has to bound
    /// what it quotes.
    pub fn publish(&self, mut event: Event, reference: ObjectReference) {
        event.note = event.note.map(bounded_note);
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

/// `note` if it fits in [`NOTE_LIMIT`] bytes; else its longest prefix that
/// ends on a character boundary and leaves room for an ellipsis, with the
/// ellipsis.
fn bounded_note(mut note: String) -> String {
    if note.len() <= NOTE_LIMIT {
        return note;
    }
    let mut end = NOTE_LIMIT - ELLIPSIS.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note.truncate(end);
    note.push_str(ELLIPSIS);
    note
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

    #[test]
    fn notes_that_fit_are_kept_whole() {
        let exact = "a".repeat(NOTE_LIMIT);
        assert_eq!(bounded_note(exact.clone()), exact);
        assert_eq!(bounded_note(String::new()), "");
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary_with_an_ellipsis() {
        let ascii = bounded_note("x".repeat(5000));
        assert_eq!(ascii.len(), NOTE_LIMIT);
        assert!(ascii.ends_with("x…"), "{ascii}");
        // Two-byte characters: the cut cannot fall inside one.
        for prefix in ["", "x"] {
            let note = bounded_note(format!("{prefix}{}", "é".repeat(1000)));
            assert!(note.len() <= NOTE_LIMIT, "{}", note.len());
            assert!(note.len() >= NOTE_LIMIT - 4, "{}", note.len());
            assert!(note.ends_with("é…"), "{note}");
        }
    }

    #[test]
    fn published_events_carry_the_bounded_note() {
        let metrics = Arc::new(Metrics::default());
        let (queue, mut receiver) = EventQueue::channel(1, metrics);
        let mut long = event("LaunchFailed");
        long.note = Some("y".repeat(2 * NOTE_LIMIT));
        queue.publish(long, ObjectReference::default());
        let note = receiver.try_recv().ok().and_then(|q| q.event.note).unwrap_or_default();
        assert_eq!(note.len(), NOTE_LIMIT);
    }
}
