//! `pods/eviction` (`policy/v1` Eviction): a pod deletion that respects the namespace's
//! PodDisruptionBudgets, as `kubectl drain` and node-draining tools ask for it.
//!
//! The dev cluster has no disruption controller, so a budget's allowance is computed when an
//! eviction asks, from the pods its selector matches now: the same arithmetic the controller does
//! (`minAvailable` or `maxUnavailable`, an integer or a percentage of the matching pods rounded
//! up), with kube-apiserver's default `unhealthyPodEvictionPolicy: IfHealthyBudget`.

use super::ApiServer;
use super::objects::DeleteOptions;
use crate::error::{ApiError, Cause, Details};
use crate::meta;
use crate::registry::ResourceInfo;
use serde_json::{Value, json};

/// Whether a pod counts as healthy for a budget: Running, Ready and not being deleted.
fn healthy(pod: &Value) -> bool {
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| meta::str_at(c, "/type") == "Ready" && meta::str_at(c, "/status") == "True"));
    meta::str_at(pod, "/status/phase") == "Running" && ready && pod.pointer("/metadata/deletionTimestamp").is_none()
}

/// An integer, or a percentage of `of` rounded up, as `intstr` budgets are read.
fn scaled(value: &Value, of: usize) -> Option<usize> {
    match value {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => {
            let percent: usize = s.strip_suffix('%')?.parse().ok()?;
            Some((percent * of).div_ceil(100))
        }
        _ => None,
    }
}

/// Refuses the eviction of `pod` when `budget` allows no disruption now.
fn check_budget(server: &ApiServer, pod: &Value, budget: &Value) -> Result<(), ApiError> {
    let namespace = meta::str_at(pod, "/metadata/namespace");
    let selector = budget.pointer("/spec/selector").cloned().unwrap_or_else(|| json!({}));
    let matching: Vec<_> = server
        .store
        .list("", "pods", Some(namespace))
        .objects
        .into_iter()
        .filter(|p| crate::admission::selector_matches(&selector, p))
        .collect();
    let expected = matching.len();
    let current = matching.iter().filter(|p| healthy(p)).count();
    let spec = &budget["spec"];
    let desired = match (spec.get("minAvailable"), spec.get("maxUnavailable")) {
        (Some(min), _) if !min.is_null() => scaled(min, expected),
        (_, Some(max)) if !max.is_null() => scaled(max, expected).map(|max| expected.saturating_sub(max)),
        _ => Some(0),
    }
    .unwrap_or(expected);
    // A pod that is not running is no disruption; one running but not ready only while the
    // budget is met (IfHealthyBudget); a healthy one only when one more may go.
    let allowed = match (meta::str_at(pod, "/status/phase"), healthy(pod)) {
        (phase, _) if phase != "Running" => true,
        (_, false) => current >= desired,
        (_, true) => current > desired,
    };
    if allowed {
        return Ok(());
    }
    let name = meta::str_at(budget, "/metadata/name");
    let cause = Cause::new(
        "DisruptionBudget",
        "",
        format!("The disruption budget {name} needs {desired} healthy pods and has {current} currently"),
    );
    Err(ApiError::too_many_requests("Cannot evict pod as it would violate the pod's disruption budget.")
        .with_details(Details { causes: vec![cause], ..Details::default() }))
}

/// Evicts `namespace/name` (`pods` is the pods resource) as `eviction` asks, or says why not.
pub(super) fn evict(
    server: &ApiServer,
    pods: &ResourceInfo,
    namespace: &str,
    name: &str,
    eviction: &Value,
    mut options: DeleteOptions,
) -> Result<Value, ApiError> {
    let body_name = meta::str_at(eviction, "/metadata/name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!("name in URL does not match name in Eviction object: {body_name}")));
    }
    let pod = server.get_object(pods, Some(namespace), name)?;
    let budgets: Vec<_> = server
        .store
        .list("policy", "poddisruptionbudgets", Some(namespace))
        .objects
        .into_iter()
        .filter(|budget| {
            let selector = budget.pointer("/spec/selector").cloned().unwrap_or_else(|| json!({}));
            crate::admission::selector_matches(&selector, &pod)
        })
        .collect();
    match budgets.as_slice() {
        [] => {}
        [budget] => check_budget(server, &pod, budget)?,
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    }
    let delete = eviction.get("deleteOptions").cloned().unwrap_or(Value::Null);
    if let Some(grace) = delete.get("gracePeriodSeconds").and_then(Value::as_i64) {
        options.grace_period_seconds = Some(grace);
    }
    options.precondition_uid = delete.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
    options.precondition_resource_version =
        delete.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
    server.delete_object(pods, Some(namespace), name, &options)?;
    Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_integers_or_percentages_rounded_up() {
        assert_eq!(scaled(&json!(2), 5), Some(2));
        assert_eq!(scaled(&json!("50%"), 5), Some(3));
        assert_eq!(scaled(&json!("0%"), 5), Some(0));
        assert_eq!(scaled(&json!("x"), 5), None);
    }
}
