//! The kubelet's `runAsNonRoot` check (`verifyRunAsNonRoot`), made before a container starts.
//!
//! The dev kubelet runs every process as its own user whatever the pod asks, but a pod that a real
//! node would refuse to start must not start here either: the check decides on the pod's settings
//! and the image's user from the [`ImageCatalog`], exactly as the real one decides on the
//! settings and the image config.

use super::images::{ImageCatalog, ImageUser};
use crate::meta;
use serde_json::Value;

/// The effective value of a `securityContext` field: the container's overrides the pod's.
fn effective<'a>(pod: &'a Value, container: &'a Value, field: &str) -> Option<&'a Value> {
    container
        .pointer(&format!("/securityContext/{field}"))
        .filter(|v| !v.is_null())
        .or_else(|| pod.pointer(&format!("/spec/securityContext/{field}")).filter(|v| !v.is_null()))
}

/// Why the container may not start under `runAsNonRoot`, worded as the kubelet words it; `None`
/// when it may. An image the catalog does not know is allowed (its user is unknown).
pub fn run_as_non_root_violation(pod: &Value, container: &Value, catalog: &ImageCatalog) -> Option<String> {
    if !effective(pod, container, "runAsNonRoot").and_then(Value::as_bool).unwrap_or(false) {
        return None;
    }
    let who = format!(
        "(pod: \"{}_{}({})\", container: {})",
        meta::str_at(pod, "/metadata/name"),
        meta::str_at(pod, "/metadata/namespace"),
        meta::str_at(pod, "/metadata/uid"),
        meta::str_at(container, "/name"),
    );
    if let Some(uid) = effective(pod, container, "runAsUser").and_then(Value::as_i64) {
        return (uid == 0).then(|| format!("container's runAsUser breaks non-root policy {who}"));
    }
    let user = catalog.user(meta::str_at(container, "/image"))?;
    match ImageUser::parse(user) {
        ImageUser::Uid(0) | ImageUser::Unset => {
            Some(format!("container has runAsNonRoot and image will run as root {who}"))
        }
        ImageUser::Name(name) => Some(format!(
            "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root {who}"
        )),
        ImageUser::Uid(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(security: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"}, "spec": {"securityContext": security}})
    }

    fn container(image: &str, security: Value) -> Value {
        json!({"name": "c", "image": image, "securityContext": security})
    }

    #[test]
    fn the_container_overrides_the_pod() {
        let catalog = ImageCatalog::default();
        let strict = pod(json!({"runAsNonRoot": true}));
        assert_eq!(
            run_as_non_root_violation(&strict, &container("alpine", json!({})), &catalog).as_deref(),
            Some("container has runAsNonRoot and image will run as root (pod: \"p_ns(u-1)\", container: c)")
        );
        let relaxed = container("alpine", json!({"runAsNonRoot": false}));
        assert_eq!(run_as_non_root_violation(&strict, &relaxed, &catalog), None);
        let with_user = pod(json!({"runAsNonRoot": true, "runAsUser": 65532}));
        assert_eq!(run_as_non_root_violation(&with_user, &container("alpine", json!({})), &catalog), None);
        let as_root = container("alpine", json!({"runAsUser": 0}));
        assert_eq!(
            run_as_non_root_violation(&with_user, &as_root, &catalog).as_deref(),
            Some("container's runAsUser breaks non-root policy (pod: \"p_ns(u-1)\", container: c)")
        );
        let only_container = container("alpine", json!({"runAsNonRoot": true}));
        assert!(run_as_non_root_violation(&pod(json!(null)), &only_container, &catalog).is_some());
        assert_eq!(run_as_non_root_violation(&pod(json!({})), &container("alpine", json!({})), &catalog), None);
    }

    #[test]
    fn the_image_user_decides_when_no_uid_is_set() {
        let catalog = ImageCatalog::empty()
            .with("acme/zero", "0:0")
            .with("acme/named", "nonroot:nonroot")
            .with("acme/numeric", "1000:1000");
        let strict = pod(json!({"runAsNonRoot": true}));
        let check = |image: &str| run_as_non_root_violation(&strict, &container(image, json!({})), &catalog);
        assert!(check("acme/zero").is_some_and(|m| m.contains("image will run as root")));
        assert_eq!(
            check("acme/named").as_deref(),
            Some(
                "container has runAsNonRoot and image has non-numeric user (nonroot), cannot verify user is non-root (pod: \"p_ns(u-1)\", container: c)"
            )
        );
        assert_eq!(check("acme/numeric"), None);
        assert_eq!(check("acme/unknown"), None, "images the catalog does not know are allowed");
    }
}
