//! RFC 7386 JSON merge patch (`application/merge-patch+json`).

use crate::error::ApiError;
use serde_json::Value;

/// Applies a JSON merge patch: objects merge recursively, `null` deletes a key, anything else replaces.
///
/// RFC 7386 lets a non-object patch replace the whole document, but a Kubernetes object must stay an
/// object, so the API server rejects such a patch as `400 Invalid JSON Patch`; so does this function.
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request("Invalid JSON Patch"));
    }
    let mut out = target.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_objects_recursively() {
        let target = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}});
        let patch = json!({"metadata": {"labels": {"b": "2"}}});
        let out = merge_patch(&target, &patch).unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}}));
    }

    #[test]
    fn null_deletes_keys() {
        let target = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let out = merge_patch(&target, &json!({"metadata": {"labels": {"a": null}}})).unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"b": "2"}}}));
    }

    #[test]
    fn null_for_a_missing_key_adds_nothing() {
        let target = json!({"spec": {}});
        let out = merge_patch(&target, &json!({"spec": {"gone": null, "new": {"x": null, "y": 1}}})).unwrap();
        assert_eq!(out, json!({"spec": {"new": {"y": 1}}}));
    }

    #[test]
    fn lists_and_scalars_are_replaced() {
        let target = json!({"spec": {"items": [1, 2, 3], "n": 1, "obj": {"a": 1}}});
        let out = merge_patch(&target, &json!({"spec": {"items": [4], "obj": "flat"}})).unwrap();
        assert_eq!(out, json!({"spec": {"items": [4], "n": 1, "obj": "flat"}}));
    }

    #[test]
    fn leaves_the_target_untouched() {
        let target = json!({"a": 1});
        let _ = merge_patch(&target, &json!({"a": 2})).unwrap();
        assert_eq!(target, json!({"a": 1}));
    }

    #[test]
    fn rejects_a_patch_that_is_not_an_object() {
        for patch in [json!(null), json!([1]), json!("x"), json!(3)] {
            let err = merge_patch(&json!({"a": 1}), &patch).unwrap_err();
            assert_eq!(
                (err.code, err.reason.as_str(), err.message.as_str()),
                (400, "BadRequest", "Invalid JSON Patch")
            );
        }
    }
}
