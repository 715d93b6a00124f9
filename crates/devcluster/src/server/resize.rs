//! In-place pod resize (`pods/resize`): the subresource changes only the CPU and memory of the
//! pod's containers (their `resources` and `resizePolicy`), and never the pod's QoS class; and a
//! pod's QoS class, which its containers' requests and limits decide.
//!
//! The local runner enforces no resources, so a resize is stored and nothing on the node changes.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Cause};
use crate::meta;
use crate::schema::fields;

/// What a resize may change in a container.
const RESIZABLE: &[&str] = &["resources", "resizePolicy"];
/// The resources a resize may change.
const RESIZABLE_RESOURCES: &[&str] = &["cpu", "memory"];

fn containers(pod: &Value) -> Vec<Value> {
    pod.pointer("/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// `Guaranteed` when every container limits CPU and memory to what it requests, `BestEffort`
/// when none requests or limits either, `Burstable` otherwise (`GetPodQOS`, containers and
/// init containers alike).
pub(crate) fn qos_class(pod: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for list in ["/spec/initContainers", "/spec/containers"] {
        for container in pod.pointer(list).and_then(Value::as_array).into_iter().flatten() {
            let limits = container.pointer("/resources/limits").and_then(Value::as_object);
            let requests = container.pointer("/resources/requests").and_then(Value::as_object);
            for resource in RESIZABLE_RESOURCES {
                let limit = limits.and_then(|l| l.get(*resource));
                // A request left out defaults to the limit.
                let request = requests.and_then(|r| r.get(*resource)).or(limit);
                any |= limit.is_some() || request.is_some();
                if limit.is_none() || request != limit {
                    guaranteed = false;
                }
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// The stored pod with the containers' resources of `body`, or why the resize is refused.
pub(super) fn update(old: &Value, body: &Value) -> Result<Value, ApiError> {
    let name = meta::str_at(old, "/metadata/name");
    let refuse = |causes: Vec<Cause>| ApiError::invalid("", "Pod", name, causes);
    let mut resized = containers(old);
    let wanted = containers(body);
    if wanted.len() != resized.len() {
        return Err(refuse(vec![fields::forbidden("spec", "only cpu and memory resources are mutable")]));
    }
    for (index, (current, new)) in resized.iter_mut().zip(&wanted).enumerate() {
        let strip = |container: &Value| {
            let mut rest: Map<String, Value> = container.as_object().cloned().unwrap_or_default();
            rest.retain(|k, _| !RESIZABLE.contains(&k.as_str()));
            rest
        };
        let other_resources = |container: &Value| {
            let mut others = Vec::new();
            for kind in ["limits", "requests"] {
                let listed = container.pointer(&format!("/resources/{kind}")).and_then(Value::as_object);
                let kept = listed.into_iter().flatten().filter(|(r, _)| !RESIZABLE_RESOURCES.contains(&r.as_str()));
                others.extend(kept.map(|(r, v)| (kind, r.clone(), v.clone())));
            }
            others
        };
        if strip(current) != strip(new) || other_resources(current) != other_resources(new) {
            let path = format!("spec.containers[{index}]");
            return Err(refuse(vec![fields::forbidden(&path, "only cpu and memory resources are mutable")]));
        }
        if let Some(container) = current.as_object_mut() {
            for field in RESIZABLE {
                match new.get(*field) {
                    Some(value) => container.insert(field.to_string(), value.clone()),
                    None => container.remove(*field),
                };
            }
        }
    }
    let mut new = old.clone();
    new["spec"]["containers"] = Value::Array(resized);
    let (before, after) = (qos_class(old), qos_class(&new));
    if before != after {
        let detail = "Pod QOS Class may not change as a result of resizing";
        return Err(refuse(vec![fields::invalid("metadata.resources", &json!(after), detail)]));
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(resources: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "nginx", "resources": resources}]}})
    }

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(qos_class(&pod(json!({"requests": {"cpu": "100m"}}))), "Burstable");
        assert_eq!(qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        let unequal = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}});
        assert_eq!(qos_class(&pod(unequal)), "Burstable");
    }

    #[test]
    fn a_resize_changes_cpu_and_memory_only() {
        let old = pod(json!({"requests": {"cpu": "100m"}}));
        let mut body = pod(json!({"requests": {"cpu": "200m", "memory": "64Mi"}}));
        body["metadata"]["labels"] = json!({"ignored": "yes"});
        let new = update(&old, &body).unwrap();
        assert_eq!(new["spec"]["containers"][0]["resources"], json!({"requests": {"cpu": "200m", "memory": "64Mi"}}));
        assert!(new["metadata"].get("labels").is_none(), "only resources are taken");
        let mut image = body.clone();
        image["spec"]["containers"][0]["image"] = json!("other");
        let err = update(&old, &image).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("spec.containers[0]: Forbidden: only cpu and memory resources are mutable"),
            "{}",
            err.message
        );
        let storage = pod(json!({"requests": {"cpu": "100m", "ephemeral-storage": "1Gi"}}));
        assert!(update(&old, &storage).is_err(), "other resources are not resizable");
        let removed = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        assert!(update(&old, &removed).is_err());
    }

    #[test]
    fn a_resize_may_not_change_the_qos_class() {
        let old = pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}));
        let burstable = pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}));
        let err = update(&old, &burstable).unwrap_err();
        assert!(err.message.contains("Pod QOS Class may not change as a result of resizing"), "{}", err.message);
        let bigger = pod(json!({"limits": {"cpu": "2", "memory": "2Gi"}}));
        assert!(update(&old, &bigger).is_ok());
    }
}
