//! The `scale` subresource of custom resources whose CRD version declares
//! `subresources.scale`: an `autoscaling/v1` Scale read from, and written to, the paths the CRD
//! names (what `kubectl scale` and autoscalers use).

use super::objects::{SubresourceWrite, WriteContext};
use super::{ApiServer, json_response};
use crate::admission::Operation;
use crate::error::{ApiError, Cause};
use crate::meta;
use crate::patch::PatchType;
use crate::registry::{Origin, ResourceInfo};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

/// Where a CRD version keeps its replicas and selector, as JSON pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ScalePaths {
    spec_replicas: String,
    status_replicas: String,
    label_selector: Option<String>,
}

/// `.spec.replicas` as the JSON pointer `/spec/replicas`.
fn pointer(json_path: &str) -> String {
    json_path.trim_start_matches('.').split('.').fold(String::new(), |out, part| format!("{out}/{part}"))
}

impl ApiServer {
    /// The scale paths of `info`'s version, when its CRD declares the subresource.
    pub(super) fn scale_paths(&self, info: &ResourceInfo) -> Option<ScalePaths> {
        let Origin::Custom { crd } = &info.origin else { return None };
        let key = crate::store::ObjectKey::new("apiextensions.k8s.io", "customresourcedefinitions", "", crd);
        let crd = self.store.get(&key)?;
        let versions = crd.pointer("/spec/versions")?.as_array()?;
        let version = versions.iter().find(|v| meta::str_at(v, "/name") == info.version)?;
        let scale = version.pointer("/subresources/scale")?;
        Some(ScalePaths {
            spec_replicas: pointer(meta::str_at(scale, "/specReplicasPath")),
            status_replicas: pointer(meta::str_at(scale, "/statusReplicasPath")),
            label_selector: Some(meta::str_at(scale, "/labelSelectorPath")).filter(|p| !p.is_empty()).map(pointer),
        })
    }
}

/// The Scale of `object`.
fn scale_of(object: &Value, paths: &ScalePaths) -> Value {
    let replicas = |path: &str| object.pointer(path).and_then(Value::as_i64).unwrap_or(0);
    let mut status = json!({"replicas": replicas(&paths.status_replicas)});
    if let Some(selector) = paths.label_selector.as_deref().and_then(|p| object.pointer(p)).and_then(Value::as_str) {
        status["selector"] = json!(selector);
    }
    let metadata = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"], "namespace": metadata["namespace"], "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"], "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {"replicas": replicas(&paths.spec_replicas)},
        "status": status,
    })
}

/// A write to the scale subresource: the new Scale (`PUT`) or a patch of the current one.
pub(super) enum ScaleWrite {
    Replace(Value),
    Patch(PatchType, Value),
}

/// Serves `GET` (`write` is `None`), `PUT` and `PATCH` of `namespace/name`'s scale.
pub(super) fn serve(
    server: &ApiServer,
    info: &ResourceInfo,
    paths: &ScalePaths,
    namespace: Option<&str>,
    name: &str,
    write: Option<(ScaleWrite, WriteContext)>,
) -> Result<Response, ApiError> {
    let object = server.get_object(info, namespace, name)?;
    let current = scale_of(&object, paths);
    let Some((write, ctx)) = write else { return Ok(json_response(StatusCode::OK, &current, &HeaderMap::new())) };
    let mut desired = match write {
        ScaleWrite::Replace(scale) => scale,
        ScaleWrite::Patch(PatchType::Merge, patch) => crate::patch::merge::merge_patch(&current, &patch)?,
        ScaleWrite::Patch(PatchType::Json, patch) => crate::patch::json::json_patch(&current, &patch)?,
        ScaleWrite::Patch(..) => {
            return Err(ApiError::unsupported_media_type(&[
                "application/json-patch+json",
                "application/merge-patch+json",
            ]));
        }
    };
    let invalid = |message: String| {
        ApiError::invalid("autoscaling", "Scale", name, vec![Cause::new("FieldValueInvalid", "spec.replicas", message)])
    };
    let replicas_of = |scale: &Value| -> Result<i64, ApiError> {
        let replicas = match scale.pointer("/spec/replicas") {
            Some(value) => {
                value.as_i64().ok_or_else(|| invalid(format!("Invalid value: {value}: must be an integer")))?
            }
            None => 0,
        };
        if replicas < 0 {
            return Err(invalid(format!("Invalid value: {replicas}: must be greater than or equal to 0")));
        }
        Ok(replicas)
    };
    // Webhooks and policies see the Scale, not the object it scales, as on kube-apiserver.
    let write = SubresourceWrite {
        info,
        subresource: "scale",
        body_kind: ("autoscaling", "v1", "Scale"),
        operation: Operation::Update,
        namespace,
        name,
        old: Some(&current),
        ctx: &ctx,
    };
    let warnings = server.admit_subresource(&write, &mut desired, |scale| replicas_of(scale).map(|_| ()))?;
    let replicas = replicas_of(&desired)?;
    let mut updated = object;
    // A Scale naming a resourceVersion is a precondition on the object it scales.
    let version = meta::str_at(&desired, "/metadata/resourceVersion");
    if !version.is_empty() {
        updated["metadata"]["resourceVersion"] = json!(version);
    }
    set_at(&mut updated, &paths.spec_replicas, json!(replicas));
    let ctx = WriteContext { admitted: true, ..ctx };
    let outcome = server.update_object(info, namespace, name, None, updated, &ctx)?;
    let warnings = warnings.into_iter().chain(outcome.warnings).collect::<Vec<_>>();
    Ok(json_response(StatusCode::OK, &scale_of(&outcome.object, paths), &super::handlers::warning_headers(&warnings)))
}

/// Sets the value at JSON pointer `path`, making the objects on the way.
fn set_at(object: &mut Value, path: &str, value: Value) {
    let mut target = object;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !target.is_object() {
            *target = json!({});
        }
        let Some(map) = target.as_object_mut() else { return };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        target = map.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_values() {
        assert_eq!(pointer(".spec.replicas"), "/spec/replicas");
        let mut object = json!({"metadata": {"name": "w"}});
        set_at(&mut object, "/spec/size/replicas", json!(3));
        assert_eq!(object["spec"]["size"]["replicas"], 3);
        let paths = ScalePaths {
            spec_replicas: "/spec/size/replicas".into(),
            status_replicas: "/status/replicas".into(),
            label_selector: Some("/status/selector".into()),
        };
        object["status"] = json!({"replicas": 2, "selector": "app=w"});
        let scale = scale_of(&object, &paths);
        assert_eq!(
            (scale["spec"]["replicas"].clone(), scale["status"].clone()),
            (json!(3), json!({"replicas": 2, "selector": "app=w"}))
        );
    }
}
