//! Watch streams: newline-delimited JSON events with resumption, bookmarks, initial events,
//! selectors that see objects enter and leave their view, and 410 Gone for expired versions.

use super::ApiServer;
use crate::error::ApiError;
use crate::registry::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType};
use crate::table::{IncludeObject, to_table};
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StartAt {
    /// No resourceVersion or "0": synthetic ADDED events for the current state, then changes.
    CurrentState,
    /// `sendInitialEvents=true`: like `CurrentState`, then a bookmark marking the end of initial events.
    InitialEvents,
    /// Changes after this resourceVersion.
    After(u64),
}

/// A parsed watch request.
#[derive(Debug, Clone)]
pub(super) struct WatchRequest {
    pub info: ResourceInfo,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub start: StartAt,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    /// `Some` when the client asked for Table rows instead of objects.
    pub table: Option<IncludeObject>,
    /// Events carry `PartialObjectMetadata` instead of objects.
    pub metadata_only: bool,
}

impl WatchRequest {
    fn in_scope(&self, change: &Change) -> bool {
        let (group, resource) = self.info.storage();
        change.key.group == group
            && change.key.resource == resource
            && self.namespace.as_deref().is_none_or(|ns| change.key.namespace == ns)
    }

    fn selects(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event type this watcher sees for a change, if any.
    fn event_for(&self, change: &Change) -> Option<EventType> {
        let now = self.selects(&change.object);
        let before = change.previous.as_deref().is_some_and(|p| self.selects(p));
        match change.kind {
            EventType::Added if now => Some(EventType::Added),
            EventType::Modified if now && before => Some(EventType::Modified),
            EventType::Modified if now => Some(EventType::Added),
            EventType::Modified if before => Some(EventType::Deleted),
            EventType::Deleted if now => Some(EventType::Deleted),
            _ => None,
        }
    }

    fn render(&self, kind: &str, object: &Value) -> Bytes {
        let object = ApiServer::present(&self.info, object);
        let object = match self.table {
            Some(include) => {
                let rv = crate::meta::str_at(&object, "/metadata/resourceVersion").to_string();
                to_table(&self.info, std::slice::from_ref(&object), include, &rv, None)
            }
            None if self.metadata_only => crate::accept::partial(&object),
            None => object,
        };
        line(kind, &object)
    }

    /// Renders a change; plain watches share one serialization of the object per change.
    fn render_change(&self, kind: &str, change: &Change) -> Bytes {
        if self.table.is_some() || self.metadata_only {
            return self.render(kind, &change.object);
        }
        let api_version = self.info.api_version();
        let (cached_version, json) = change.encoded.get_or_init(|| {
            (api_version.clone(), crate::wire::to_vec(&ApiServer::present_view(&self.info, &change.object)))
        });
        if *cached_version != api_version {
            return self.render(kind, &change.object);
        }
        Bytes::from(crate::wire::watch_event_line_encoded(kind, json))
    }

    fn bookmark(&self, revision: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": metadata});
        line("BOOKMARK", &object)
    }
}

/// One watch event line, keys in kube-apiserver's order.
fn line(event_type: &str, object: &Value) -> Bytes {
    Bytes::from(crate::wire::watch_event_line(event_type, object))
}

/// Starts streaming a watch; the stream ends on timeout, client disconnect, `drop_watches` or shutdown.
pub(super) fn watch_response(server: Arc<ApiServer>, request: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(1024);
    tokio::spawn(stream_events(server, request, tx));
    let mut response = Response::new(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

type Sink = mpsc::Sender<Result<Bytes, Infallible>>;

async fn send(tx: &Sink, bytes: Bytes) -> bool {
    tx.send(Ok(bytes)).await.is_ok()
}

async fn stream_events(server: Arc<ApiServer>, request: WatchRequest, tx: Sink) {
    let mut epoch = server.watch_epoch.subscribe();
    let info = &request.info;
    let (replay, mut live, mut seen) = match request.start {
        StartAt::After(rv) => match server.store.watch_from(Some(rv)) {
            Ok(start) => (start.replay, start.live, start.revision.max(rv)),
            Err(too_old) => {
                let status = ApiError::expired(too_old.to_string()).to_status();
                let _ = send(&tx, line("ERROR", &status)).await;
                return;
            }
        },
        StartAt::CurrentState | StartAt::InitialEvents => {
            let (group, resource) = info.storage();
            let (listing, start) = server.store.list_and_watch(group, resource, request.namespace.as_deref());
            for object in listing.objects.iter().filter(|o| request.selects(o)) {
                if !send(&tx, request.render("ADDED", object)).await {
                    return;
                }
            }
            if request.start == StartAt::InitialEvents && !send(&tx, request.bookmark(listing.revision, true)).await {
                return;
            }
            (Vec::new(), start.live, listing.revision)
        }
    };
    for change in replay {
        seen = seen.max(change.resource_version);
        if request.in_scope(&change)
            && let Some(kind) = request.event_for(&change)
            && !send(&tx, request.render_change(kind.as_str(), &change)).await
        {
            return;
        }
    }
    let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut bookmark_tick = tokio::time::interval(server.settings.bookmark_interval);
    bookmark_tick.tick().await;
    loop {
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            change = live.recv() => match change {
                Ok(change) => {
                    seen = seen.max(change.resource_version);
                    if request.in_scope(&change)
                        && let Some(kind) = request.event_for(&change)
                        && !send(&tx, request.render_change(kind.as_str(), &change)).await
                    {
                        return;
                    }
                }
                // A watcher too slow for the feed is closed; it resumes from its last version, as after a drop.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            },
            _ = bookmark_tick.tick(), if request.bookmarks => {
                if !send(&tx, request.bookmark(seen, false)).await {
                    return;
                }
            }
            _ = timeout => return,
            _ = epoch.changed() => return,
            _ = tx.closed() => return,
        }
    }
}
