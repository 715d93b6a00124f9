//! Publishing Events off the reconcile path.
//!
//! Events are for people reading `kubectl describe` and `kubectl events`;
//! no decision of the controller depends on them. As client-go's event
//! broadcaster does, a reconcile queues its events and goes on, and a
//! background task publishes them with a [`Publisher`]. A full queue
//! drops the event (counted in `review_operator_events_dropped_total`)
//! rather than slow reconciles down.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as EventObject, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// How long a repeat of an event counts on the first one's series, as in
/// kube's `Recorder` and client-go.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// How often events older than [`SERIES_WINDOW`] are forgotten.
const SWEEP_EVERY: SignedDuration = SignedDuration::from_mins(1);

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
    /// A queue and the task publishing its events with `publisher`.
    pub fn start(publisher: Publisher, metrics: Arc<Metrics>) -> (Self, JoinHandle<()>) {
        let (queue, receiver) = Self::channel(QUEUE_CAPACITY, metrics.clone());
        let queued = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|queued| (queued, receiver))
        });
        let task = tokio::spawn(queued.for_each_concurrent(CONCURRENT_PUBLISHES, move |queued| {
            let (publisher, metrics) = (publisher.clone(), metrics.clone());
            async move {
                if let Err(error) = publisher.publish(&queued.event, &queued.reference).await {
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

/// Publishes events as kube's `Recorder` does: an `events.k8s.io/v1` Event,
/// or, for a repeat within [`SERIES_WINDOW`] (same type, action and reason,
/// about the same objects), a count on the first one's series. The Recorder
/// keeps each event of the window whole, some 2 kB, in a table that never
/// shrinks, over 100 MB after a cold start of 10,000 Reviewers; this keeps
/// the first event's name and the count, under a hash of what makes a repeat.
#[derive(Clone)]
pub struct Publisher {
    client: kube::Client,
    reporter: Reporter,
    series: Arc<Mutex<Series>>,
}

impl Publisher {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self { client, reporter, series: Arc::default() }
    }

    fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `event` about the object `reference`.
    pub async fn publish(&self, event: &Event, reference: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let (key, repeat) = {
            let mut series = self.series();
            let key = series.key(event, reference);
            (key, series.repeat_of(key, now))
        };
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let events: Api<EventObject> = Api::namespaced(self.client.clone(), namespace);
        let recent = match repeat {
            Some(first) => {
                let recent = Recent { name: first.name, count: first.count + 1, last: now };
                let series = EventSeries { count: recent.count, last_observed_time: MicroTime(now) };
                let patch = json!({ "series": series });
                events.patch(&recent.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                recent
            }
            None => {
                let created = new_event(&self.reporter, event, reference, now);
                events.create(&PostParams::default(), &created).await?;
                Recent { name: created.metadata.name.unwrap_or_default(), count: 1, last: now }
            }
        };
        self.series().record(key, recent);
        Ok(())
    }
}

/// The Event kube's `Recorder` creates for `event` at `now`.
fn new_event(reporter: &Reporter, event: &Event, reference: &ObjectReference, now: Timestamp) -> EventObject {
    let object = reference.name.as_ref().unwrap_or(&reporter.controller);
    EventObject {
        metadata: ObjectMeta {
            namespace: reference.namespace.clone(),
            name: Some(format!("{object}.{:x}", now.as_nanosecond())),
            ..ObjectMeta::default()
        },
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        note: event.note.clone(),
        event_time: Some(MicroTime(now)),
        regarding: Some(reference.clone()),
        related: event.secondary.clone(),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(reporter.instance.clone().unwrap_or_else(|| reporter.controller.clone())),
        type_: Some(
            match event.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        ..EventObject::default()
    }
}

/// The events of the last [`SERIES_WINDOW`], by a hash of what makes a
/// repeat. Two different events with one hash, about one in 10^10 for the
/// events of a cold start of 10,000 Reviewers, would count the second on the
/// first's series.
#[derive(Debug, Default)]
struct Series {
    hasher: RandomState,
    recent: HashMap<u64, Recent>,
    swept: Option<Timestamp>,
}

/// What a repeat of a published event needs.
#[derive(Clone, Debug, PartialEq)]
struct Recent {
    /// The name of the Event first published.
    name: String,
    count: i32,
    last: Timestamp,
}

impl Series {
    /// What makes a repeat, as kube's `Recorder` compares events (the reporter is this publisher's).
    fn key(&self, event: &Event, reference: &ObjectReference) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        event.type_.hash(&mut hasher);
        (&event.action, &event.reason).hash(&mut hasher);
        for reference in std::iter::once(Some(reference)).chain([event.secondary.as_ref()]) {
            let fields = reference
                .map(|r| (&r.api_version, &r.field_path, &r.kind, &r.name, &r.namespace, &r.resource_version, &r.uid));
            fields.hash(&mut hasher);
        }
        hasher.finish()
    }

    /// The event `key` repeats, if published within [`SERIES_WINDOW`] of
    /// `now`. Forgets older events once every [`SWEEP_EVERY`], and gives
    /// back the memory of a burst.
    fn repeat_of(&mut self, key: u64, now: Timestamp) -> Option<Recent> {
        if self.swept.is_none_or(|swept| swept + SWEEP_EVERY <= now) {
            self.recent.retain(|_, recent| recent.last + SERIES_WINDOW > now);
            if self.recent.capacity() > 2 * self.recent.len() {
                self.recent.shrink_to_fit();
            }
            self.swept = Some(now);
        }
        self.recent.get(&key).filter(|recent| recent.last + SERIES_WINDOW > now).cloned()
    }

    fn record(&mut self, key: u64, recent: Recent) {
        self.recent.insert(key, recent);
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

    fn event(reason: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: None,
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn run(name: &str, version: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("review.ao.dev/v1alpha1".into()),
            kind: Some("ReviewRun".into()),
            name: Some(name.into()),
            namespace: Some("default".into()),
            resource_version: Some(version.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    #[test]
    fn a_repeat_within_the_window_counts_on_the_first_event() {
        let mut series = Series::default();
        let key = series.key(&event("Assigned"), &run("r1", "5"));
        assert_eq!(series.repeat_of(key, at(0)), None);
        series.record(key, Recent { name: "r1.1".into(), count: 1, last: at(0) });
        let first = series.repeat_of(key, at(100)).unwrap();
        assert_eq!((first.name.as_str(), first.count), ("r1.1", 1));
        series.record(key, Recent { count: 2, last: at(100), ..first });
        // The window runs from the last repeat.
        assert_eq!(series.repeat_of(key, at(400)).map(|r| r.count), Some(2));
        assert_eq!(series.repeat_of(key, at(460)), None);
    }

    #[test]
    fn events_differing_in_type_reason_or_object_are_no_repeats() {
        let series = Series::default();
        let key = series.key(&event("Assigned"), &run("r1", "5"));
        assert_eq!(key, series.key(&event("Assigned"), &run("r1", "5")));
        let warning = Event { type_: EventType::Warning, ..event("Assigned") };
        let related = Event { secondary: Some(run("r2", "1")), ..event("Assigned") };
        for other in [
            series.key(&event("Superseded"), &run("r1", "5")),
            series.key(&event("Assigned"), &run("r2", "5")),
            // As in kube's Recorder, a reference to a newer version is another object.
            series.key(&event("Assigned"), &run("r1", "6")),
            series.key(&warning, &run("r1", "5")),
            series.key(&related, &run("r1", "5")),
        ] {
            assert_ne!(key, other);
        }
    }

    #[test]
    fn old_events_are_forgotten_and_their_memory_given_back() {
        let mut series = Series::default();
        for n in 0..10_000 {
            series.record(n, Recent { name: format!("e{n}"), count: 1, last: at(0) });
        }
        assert_eq!(series.repeat_of(1, at(1)).map(|r| r.count), Some(1));
        assert_eq!(series.repeat_of(1, at(400)), None);
        assert!(series.recent.is_empty());
        assert!(series.recent.capacity() < 100, "{}", series.recent.capacity());
    }

    #[test]
    fn a_new_event_is_the_one_kube_creates() {
        let reporter = Reporter { controller: "review-operator".into(), instance: None };
        let mut warning = event("LaunchFailed");
        warning.type_ = EventType::Warning;
        warning.note = Some("cannot start".into());
        let created = new_event(&reporter, &warning, &run("r1", "5"), at(0));
        assert_eq!(created.metadata.name, Some(format!("r1.{:x}", at(0).as_nanosecond())));
        assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(created.regarding, Some(run("r1", "5")));
        assert_eq!((created.type_.as_deref(), created.reason.as_deref()), (Some("Warning"), Some("LaunchFailed")));
        assert_eq!((created.action.as_deref(), created.note.as_deref()), (Some("Reconcile"), Some("cannot start")));
        assert_eq!(created.reporting_instance.as_deref(), Some("review-operator"));
        assert_eq!(created.event_time, Some(MicroTime(at(0))));
        assert_eq!(created.series, None);
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
