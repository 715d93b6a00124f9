//! `GET .../pods/NAME/log`: which container instance a request reads, with the kubelet's errors, and
//! the (optionally following) text stream.

use super::logs::{LogBook, LogBuffer};
use crate::error::ApiError;
use crate::meta;
use crate::request::Query;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

/// The query parameters of a log request (`PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// Only lines read at or after this time (`sinceSeconds` / `sinceTime`), as an RFC 3339 timestamp
    /// with nanoseconds in UTC, the form log lines are stamped with.
    pub since: Option<String>,
}

impl LogOptions {
    pub fn parse(query: &Query) -> Result<Self, ApiError> {
        let since_seconds = query.number("sinceSeconds")?;
        let since_time = match query.get("sinceTime") {
            None => None,
            Some(t) => Some(chrono::DateTime::parse_from_rfc3339(t).map_err(|_| {
                ApiError::bad_request(format!("sinceTime: Invalid value: {t:?}: must be an RFC 3339 timestamp"))
            })?),
        };
        let since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("at most one of sinceTime or sinceSeconds may be specified"));
            }
            (Some(0), None) => {
                return Err(ApiError::bad_request("sinceSeconds: Invalid value: 0: must be greater than 0"));
            }
            (Some(s), None) => {
                Some(chrono::Utc::now() - chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000)))
            }
            (None, Some(t)) => Some(t.with_timezone(&chrono::Utc)),
            (None, None) => None,
        };
        Ok(Self {
            since: since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            container: query.get("container").map(str::to_string),
            follow: query.flag("follow"),
            previous: query.flag("previous"),
            timestamps: query.flag("timestamps"),
            tail_lines: query.number("tailLines")?,
            limit_bytes: query.number("limitBytes")?,
        })
    }
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| meta::str_at(c, "/name").to_string())
        .collect()
}

/// The container a request names, or the only one, with the API server's errors for the rest.
pub fn container_name(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let pod_name = meta::str_at(pod, "/metadata/name");
    let containers = names(pod, "containers");
    let init = names(pod, "initContainers");
    let Some(requested) = requested else {
        if containers.len() == 1 {
            return Ok(containers[0].clone());
        }
        let mut message =
            format!("a container name must be specified for pod {pod_name}, choose one of: [{}]", containers.join(" "));
        if !init.is_empty() {
            message.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
        }
        return Err(ApiError::bad_request(message));
    };
    if containers.iter().chain(&init).any(|c| c == requested) {
        Ok(requested.to_string())
    } else {
        Err(ApiError::bad_request(format!("container {requested} is not valid for pod {pod_name}")))
    }
}

/// The container ID whose output a request reads, following the kubelet's `validateContainerLogStatus`.
pub fn container_id(pod: &Value, container: &str, previous: bool) -> Result<String, ApiError> {
    let pod_name = meta::str_at(pod, "/metadata/name");
    if meta::str_at(pod, "/spec/nodeName").is_empty() {
        return Err(ApiError::bad_request(format!("pod {pod_name} does not have a host assigned")));
    }
    let status = ["/status/containerStatuses", "/status/initContainerStatuses"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .find(|s| s["name"] == container);
    let Some(status) = status else {
        return Err(ApiError::bad_request(format!("container {container:?} in pod {pod_name:?} is not available")));
    };
    let id = |p: &str| status.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let terminated_gone =
        || ApiError::bad_request(format!("container {container:?} in pod {pod_name:?} is terminated"));
    if previous {
        return id("/lastState/terminated/containerID").ok_or_else(|| {
            ApiError::bad_request(format!("previous terminated container {container:?} in pod {pod_name:?} not found"))
        });
    }
    if status.pointer("/state/running").is_some() {
        return id("/containerID").ok_or_else(terminated_gone);
    }
    if status.pointer("/state/terminated").is_some() {
        return id("/state/terminated/containerID")
            .or_else(|| id("/lastState/terminated/containerID"))
            .ok_or_else(terminated_gone);
    }
    if status.pointer("/lastState/terminated").is_some() {
        return id("/lastState/terminated/containerID").ok_or_else(terminated_gone);
    }
    let reason = status.pointer("/state/waiting/reason").and_then(Value::as_str).unwrap_or("ContainerCreating");
    Err(ApiError::bad_request(format!("container {container:?} in pod {pod_name:?} is waiting to start: {reason}")))
}

struct Follow {
    buffer: Arc<LogBuffer>,
    changes: tokio::sync::watch::Receiver<u64>,
    cursor: u64,
    follow: bool,
    timestamps: bool,
    remaining: Option<u64>,
    since: Option<String>,
    done: bool,
}

impl Follow {
    /// The next chunk of text, waiting for more while following; `None` at the end.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done || self.remaining == Some(0) {
                return None;
            }
            let (lines, finished) = self.buffer.read_from(self.cursor);
            if !lines.is_empty() {
                let mut out = Vec::new();
                for line in &lines {
                    self.cursor = line.seq + 1;
                    if self.since.as_deref().is_some_and(|since| line.timestamp.as_str() < since) {
                        continue;
                    }
                    if self.timestamps {
                        out.extend_from_slice(line.timestamp.as_bytes());
                        out.push(b' ');
                    }
                    out.extend_from_slice(&line.data);
                }
                if out.is_empty() {
                    continue;
                }
                if let Some(left) = self.remaining.as_mut() {
                    let keep = (*left).min(out.len() as u64);
                    out.truncate(keep as usize);
                    *left -= keep;
                }
                return Some(Bytes::from(out));
            }
            if finished || !self.follow {
                self.done = true;
                return None;
            }
            if self.changes.changed().await.is_err() {
                self.done = true;
            }
        }
    }
}

/// Answers a log request for `pod` from `book`.
pub fn log_response(book: &LogBook, pod: &Value, options: &LogOptions) -> Result<Response, ApiError> {
    let container = container_name(pod, options.container.as_deref())?;
    let id = container_id(pod, &container, options.previous)?;
    let pod_name = meta::str_at(pod, "/metadata/name");
    let buffer = book.get(&id).ok_or_else(|| {
        ApiError::bad_request(format!("container {container:?} in pod {pod_name:?} has no logs kept"))
    })?;
    let cursor = match options.tail_lines {
        Some(n) => buffer.tail_start(usize::try_from(n).unwrap_or(usize::MAX)),
        None => 0,
    };
    let follow = Follow {
        changes: buffer.subscribe(),
        buffer,
        cursor,
        follow: options.follow,
        timestamps: options.timestamps,
        remaining: options.limit_bytes,
        since: options.since.clone(),
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        f.next().await.map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), f))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: Value) -> Value {
        json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "devcluster", "containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]},
            "status": {"containerStatuses": [status]}
        })
    }

    #[test]
    fn container_names_are_checked() {
        let p = pod(json!({}));
        assert_eq!(container_name(&p, Some("i")).unwrap(), "i");
        let err = container_name(&p, Some("x")).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "container x is not valid for pod p"));
        assert_eq!(
            container_name(&p, None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        let single = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container_name(&single, None).unwrap(), "only");
    }

    #[test]
    fn instances_follow_the_container_status() {
        let running = pod(
            json!({"name": "a", "containerID": "c2", "state": {"running": {}}, "lastState": {"terminated": {"containerID": "c1"}}}),
        );
        assert_eq!(container_id(&running, "a", false).unwrap(), "c2");
        assert_eq!(container_id(&running, "a", true).unwrap(), "c1");
        let fresh = pod(json!({"name": "a", "containerID": "c1", "state": {"running": {}}, "lastState": {}}));
        assert_eq!(
            container_id(&fresh, "a", true).unwrap_err().message,
            "previous terminated container \"a\" in pod \"p\" not found"
        );
        let backoff = pod(
            json!({"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"containerID": "c1"}}}),
        );
        assert_eq!(container_id(&backoff, "a", false).unwrap(), "c1");
        let waiting =
            pod(json!({"name": "a", "state": {"waiting": {"reason": "CreateContainerConfigError"}}, "lastState": {}}));
        assert_eq!(
            container_id(&waiting, "a", false).unwrap_err().message,
            "container \"a\" in pod \"p\" is waiting to start: CreateContainerConfigError"
        );
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(container_id(&unbound, "a", false).unwrap_err().message, "pod p does not have a host assigned");
    }

    #[test]
    fn options_parse_and_reject_bad_values() {
        let o = LogOptions::parse(&Query::parse(Some(
            "container=a&follow=true&previous=true&timestamps=true&tailLines=3&limitBytes=9",
        )))
        .unwrap();
        assert_eq!(o.container.as_deref(), Some("a"));
        assert!(o.follow && o.previous && o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(3), Some(9)));
        let since = LogOptions::parse(&Query::parse(Some("sinceTime=2026-01-02T03:04:05Z"))).unwrap().since;
        assert_eq!(since.as_deref(), Some("2026-01-02T03:04:05.000000000Z"));
        assert!(LogOptions::parse(&Query::parse(Some("sinceSeconds=5"))).unwrap().since.is_some());
        for bad in
            ["tailLines=-1", "sinceTime=yesterday", "sinceSeconds=0", "sinceSeconds=1&sinceTime=2026-01-02T03:04:05Z"]
        {
            assert_eq!(LogOptions::parse(&Query::parse(Some(bad))).unwrap_err().code, 400, "{bad}");
        }
    }

    #[tokio::test]
    async fn streams_tail_and_timestamps_then_follows_until_the_end() {
        let buffer = Arc::new(LogBuffer::new(1024));
        buffer.append("T1", b"zero\n");
        buffer.append("T3", b"one\ntwo\n");
        let mut f = Follow {
            changes: buffer.subscribe(),
            buffer: buffer.clone(),
            cursor: buffer.tail_start(1),
            follow: true,
            timestamps: true,
            remaining: None,
            since: Some("T2".into()),
            done: false,
        };
        assert_eq!(f.next().await.unwrap(), Bytes::from_static(b"T3 two\n"));
        let writer = buffer.clone();
        tokio::spawn(async move {
            writer.append("T1", b"too old\n");
            writer.append("T4", b"three\n");
            writer.finish();
        });
        assert_eq!(f.next().await.unwrap(), Bytes::from_static(b"T4 three\n"));
        assert_eq!(f.next().await, None);
    }
}
