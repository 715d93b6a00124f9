//! ResourceQuota, for pod counts only: the `ResourceQuota` admission plugin's check on pod
//! creation, and the quota controller's upkeep of `status.hard` and `status.used`.
//!
//! Only `pods` and `count/pods` in `spec.hard` are enforced and reported; compute resources
//! (`requests.cpu`, `limits.memory`, ...), other object counts and quota scopes are stored but not
//! acted upon. Unlike kube-apiserver, which charges against the usage recorded in the quota's
//! status (and refuses pods while a new quota has none yet), admission counts the namespace's pods
//! live, so that a quota holds from the moment it is created.

use super::{ApiServer, WriteContext};
use crate::error::{ApiError, Details};
use crate::meta;
use crate::store::ObjectKey;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The quota resource names that count pods, in the order kube-apiserver prints them.
const POD_RESOURCES: [&str; 2] = ["count/pods", "pods"];

/// Whether the quota charges for `pod` at `now` (kube-apiserver's `QuotaV1Pod`): finished pods are
/// free, and so is a terminating pod once its grace period has run out past `deletionTimestamp`
/// (one stuck on a lost node must not block its replacement).
fn counts(pod: &Value, now: DateTime<Utc>) -> bool {
    if matches!(meta::str_at(pod, "/status/phase"), "Succeeded" | "Failed") {
        return false;
    }
    let deletion = DateTime::parse_from_rfc3339(meta::str_at(pod, "/metadata/deletionTimestamp")).ok();
    let grace = pod.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
    match (deletion, grace) {
        (Some(at), Some(grace)) => now <= at.with_timezone(&Utc) + chrono::Duration::seconds(grace),
        _ => true,
    }
}

/// The pod-count limits of a quota's `spec.hard`, as `(resource name, limit)`. A limit that is not
/// a whole number is ignored.
fn pod_limits(quota: &Value) -> Vec<(&'static str, i64)> {
    POD_RESOURCES
        .iter()
        .filter_map(|resource| {
            let hard = quota.pointer("/spec/hard")?.get(*resource)?;
            let limit = match hard {
                Value::String(s) => s.trim().parse::<i64>().ok()?,
                other => other.as_i64()?,
            };
            Some((*resource, limit))
        })
        .collect()
}

fn by_name(mut objects: Vec<Value>) -> Vec<Value> {
    objects.sort_by(|a, b| meta::str_at(a, "/metadata/name").cmp(meta::str_at(b, "/metadata/name")));
    objects
}

impl ApiServer {
    /// How many of the namespace's pods the quota charges for now.
    fn charged_pods(&self, namespace: &str) -> i64 {
        let now = Utc::now();
        let pods = self.store.list("", "pods", Some(namespace)).objects;
        pods.iter().filter(|pod| counts(pod, now)).count() as i64
    }

    fn quotas(&self, namespace: &str) -> Vec<Value> {
        by_name(self.store.list("", "resourcequotas", Some(namespace)).objects.iter().map(|q| (**q).clone()).collect())
    }

    /// Refuses a new pod that would take a quota of the namespace over its pod count, with the
    /// plugin's 403 (`exceeded quota: NAME, requested: pods=1, used: pods=N, limited: pods=N`).
    pub(super) fn admit_pod_quota(&self, namespace: &str, name: &str) -> Result<(), ApiError> {
        let quotas = self.quotas(namespace);
        if quotas.iter().all(|q| pod_limits(q).is_empty()) {
            return Ok(());
        }
        let used = self.charged_pods(namespace);
        for quota in &quotas {
            let exceeded: Vec<(&str, i64)> =
                pod_limits(quota).into_iter().filter(|(_, limit)| used + 1 > *limit).collect();
            if exceeded.is_empty() {
                continue;
            }
            let list = |value: &dyn Fn(i64) -> i64| {
                exceeded
                    .iter()
                    .map(|(resource, limit)| format!("{resource}={}", value(*limit)))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let message = format!(
                "pods \"{name}\" is forbidden: exceeded quota: {}, requested: {}, used: {}, limited: {}",
                meta::str_at(quota, "/metadata/name"),
                list(&|_| 1),
                list(&|_| used),
                list(&|limit| limit),
            );
            return Err(ApiError::forbidden(message).with_details(Details {
                name: name.into(),
                kind: "pods".into(),
                ..Details::default()
            }));
        }
        Ok(())
    }

    /// Brings `status.hard` (a copy of `spec.hard`) and the pod counts in `status.used` of every
    /// quota in `namespace` up to date, writing only what changed.
    pub(super) fn refresh_quotas(&self, namespace: &str) {
        let quotas = self.quotas(namespace);
        if quotas.is_empty() {
            return;
        }
        let Ok(info) = self.resolve("", "v1", "resourcequotas") else { return };
        let used = self.charged_pods(namespace);
        for quota in quotas {
            let hard = quota.pointer("/spec/hard").cloned().unwrap_or_else(|| json!({}));
            let mut counted = Map::new();
            for (resource, _) in pod_limits(&quota) {
                counted.insert(resource.into(), Value::String(used.to_string()));
            }
            let status = json!({"hard": hard, "used": counted});
            if quota.get("status") == Some(&status) {
                continue;
            }
            let name = meta::str_at(&quota, "/metadata/name");
            let body = json!({
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": meta::str_at(&quota, "/metadata/resourceVersion")},
                "status": status,
            });
            let ctx = WriteContext::system("resourcequota-controller");
            if let Err(e) = self.update_object(&info, Some(namespace), name, Some("status"), body, &ctx) {
                // A conflict means the quota changed: its own change event brings another pass.
                tracing::debug!(quota = name, error = %e, "cannot write the quota status");
            }
        }
    }

    /// Every namespace that has a quota, for the periodic re-check (terminating pods stop counting
    /// with time alone, with no change to react to).
    pub(super) fn refresh_all_quotas(&self) {
        let mut namespaces: Vec<String> = self
            .store
            .list("", "resourcequotas", None)
            .objects
            .iter()
            .map(|q| meta::str_at(q, "/metadata/namespace").to_string())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        for namespace in namespaces {
            self.refresh_quotas(&namespace);
        }
    }
}

/// Whether a change to this object can change quota usage or limits.
pub(super) fn affects_quotas(key: &ObjectKey) -> bool {
    key.group.is_empty() && matches!(key.resource.as_str(), "pods" | "resourcequotas") && !key.namespace.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap_or_default()
    }

    #[test]
    fn finished_and_long_terminated_pods_are_free() {
        let now = at(0);
        assert!(counts(&json!({"status": {"phase": "Running"}}), now));
        assert!(counts(&json!({"status": {"phase": "Pending"}}), now));
        assert!(!counts(&json!({"status": {"phase": "Succeeded"}}), now));
        assert!(!counts(&json!({"status": {"phase": "Failed"}}), now));
        let deleting = |deadline: DateTime<Utc>, grace: i64| {
            json!({"metadata": {"deletionTimestamp": deadline.to_rfc3339(), "deletionGracePeriodSeconds": grace},
                "status": {"phase": "Running"}})
        };
        assert!(counts(&deleting(at(3), 3), now), "still within its grace period");
        assert!(counts(&deleting(at(-2), 3), now), "past the timestamp but not past the grace period");
        assert!(!counts(&deleting(at(-4), 3), now));
    }

    #[test]
    fn pod_limits_read_both_names() {
        let quota = json!({"spec": {"hard": {"pods": "2", "count/pods": 5, "requests.cpu": "1"}}});
        assert_eq!(pod_limits(&quota), vec![("count/pods", 5), ("pods", 2)]);
        assert!(pod_limits(&json!({"spec": {"hard": {"pods": "1.5"}}})).is_empty());
        assert!(pod_limits(&json!({"spec": {}})).is_empty());
    }
}
