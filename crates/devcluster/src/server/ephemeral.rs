//! Ephemeral containers (`pods/ephemeralcontainers`, what `kubectl debug` writes): the
//! subresource changes only `spec.ephemeralContainers`, only by adding containers, and each new
//! one must be a valid ephemeral container. A write to the pod itself keeps the stored list.
//!
//! The local runner does not start ephemeral containers: they are stored and validated, and
//! their status stays unreported, as on a node whose kubelet lacks the feature.

use serde_json::{Value, json};

use crate::error::Cause;
use crate::meta;
use crate::schema::fields;

/// The fields an ephemeral container may not set, as the pod validation names them.
const FORBIDDEN: &[&str] = &["ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources"];

fn ephemeral_containers(pod: &Value) -> Vec<Value> {
    pod.pointer("/spec/ephemeralContainers").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The stored pod with the ephemeral containers of `body`: all the subresource may change.
pub(super) fn update(old: &Value, body: &Value) -> Value {
    let mut new = old.clone();
    let containers = ephemeral_containers(body);
    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
        if containers.is_empty() {
            spec.remove("ephemeralContainers");
        } else {
            spec.insert("ephemeralContainers".into(), Value::Array(containers));
        }
    }
    new
}

/// `PrepareForUpdate` of pods: a write to the pod keeps the stored ephemeral containers.
pub(super) fn prepare_for_update(subresource: Option<&str>, old: &Value, new: &mut Value) {
    if subresource.is_some() {
        return;
    }
    let kept = old.pointer("/spec/ephemeralContainers").cloned();
    if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
        match kept {
            Some(kept) => spec.insert("ephemeralContainers".into(), kept),
            None => spec.remove("ephemeralContainers"),
        };
    }
}

/// Validation of a pod's ephemeral containers: the stored ones unchanged and still there, and
/// every one named uniquely among all the pod's containers, with an image and none of the fields
/// an ephemeral container may not have.
pub(super) fn validate(pod: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let containers = ephemeral_containers(pod);
    if let Some(old) = old {
        for before in ephemeral_containers(old) {
            let name = meta::str_at(&before, "/name");
            match containers.iter().find(|c| meta::str_at(c, "/name") == name) {
                None => causes.push(fields::forbidden(
                    "spec.ephemeralContainers",
                    &format!("existing ephemeral containers \"{name}\" may not be removed"),
                )),
                Some(now) if *now != before => causes.push(fields::forbidden(
                    "spec.ephemeralContainers",
                    &format!("existing ephemeral containers \"{name}\" may not be changed"),
                )),
                Some(_) => {}
            }
        }
    }
    let mut names: Vec<String> = ["containers", "initContainers"]
        .iter()
        .flat_map(|list| pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array).cloned().unwrap_or_default())
        .map(|c| meta::str_at(&c, "/name").to_string())
        .collect();
    for (index, container) in containers.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{index}]");
        let name = meta::str_at(container, "/name");
        if name.is_empty() {
            causes.push(fields::required(&format!("{path}.name"), ""));
        } else if names.iter().any(|n| n == name) {
            causes.push(fields::duplicate(&format!("{path}.name"), &json!(name)));
        }
        names.push(name.to_string());
        if meta::str_at(container, "/image").is_empty() {
            causes.push(fields::required(&format!("{path}.image"), ""));
        }
        for field in FORBIDDEN {
            let set = container.get(*field).is_some_and(|v| !v.is_null() && v != &json!({}) && v != &json!([]));
            if set {
                causes.push(fields::forbidden(&format!("{path}.{field}"), "cannot be set for an Ephemeral Container"));
            }
        }
        let target = meta::str_at(container, "/targetContainerName");
        let known = |list: &str| {
            let listed = pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array);
            listed.into_iter().flatten().any(|c| meta::str_at(c, "/name") == target)
        };
        if !target.is_empty() && !known("containers") && !known("initContainers") {
            causes.push(fields::not_found(&format!("{path}.targetContainerName"), &json!(target)));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ephemeral: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "nginx"}],
            "ephemeralContainers": ephemeral}})
    }

    #[test]
    fn a_debugger_is_added_and_nothing_else_changes() {
        let old = pod(json!([]));
        let mut body = pod(json!([{"name": "debugger", "image": "busybox", "targetContainerName": "app"}]));
        body["spec"]["containers"][0]["image"] = json!("evil");
        let new = update(&old, &body);
        assert_eq!(new["spec"]["containers"][0]["image"], "nginx");
        assert_eq!(new["spec"]["ephemeralContainers"][0]["name"], "debugger");
        assert!(validate(&new, Some(&old)).is_empty(), "{:?}", validate(&new, Some(&old)));
    }

    #[test]
    fn ephemeral_containers_stay_as_they_were_added() {
        let old = pod(json!([{"name": "debugger", "image": "busybox"}]));
        let removed = pod(json!([]));
        assert!(validate(&removed, Some(&old))[0].message.contains("may not be removed"));
        let changed = pod(json!([{"name": "debugger", "image": "alpine"}]));
        assert!(validate(&changed, Some(&old))[0].message.contains("may not be changed"));
        let mut edited = pod(json!([]));
        prepare_for_update(None, &old, &mut edited);
        assert_eq!(edited["spec"]["ephemeralContainers"], old["spec"]["ephemeralContainers"]);
    }

    #[test]
    fn invalid_ephemeral_containers_are_named() {
        let bad = pod(json!([
            {"name": "app", "image": "busybox"},
            {"name": "d2", "image": "", "ports": [{"containerPort": 80}]},
            {"name": "d3", "image": "busybox", "targetContainerName": "nope"},
            {"image": "busybox"}
        ]));
        let causes: Vec<(String, String)> = validate(&bad, None).into_iter().map(|c| (c.field, c.reason)).collect();
        assert_eq!(
            causes,
            [
                ("spec.ephemeralContainers[0].name".to_string(), "FieldValueDuplicate".to_string()),
                ("spec.ephemeralContainers[1].image".into(), "FieldValueRequired".into()),
                ("spec.ephemeralContainers[1].ports".into(), "FieldValueForbidden".into()),
                ("spec.ephemeralContainers[2].targetContainerName".into(), "FieldValueNotFound".into()),
                ("spec.ephemeralContainers[3].name".into(), "FieldValueRequired".into()),
            ]
        );
    }
}
