//! RFC 6902 JSON patch (`application/json-patch+json`), applied atomically.
//!
//! Mirrors the API server's two failure classes: a body that does not decode as a list of operation
//! objects is a `400 BadRequest`; an operation that cannot be applied (a failing `test`, a missing path,
//! an unknown `op`) is the `422 Invalid` "generic server response" the server builds for patch failures.
//!
//! A `test` of a key its (existing) parent object lacks compares the test value with `null`, as in the
//! Go library the API server uses: clients rely on it to add a first list item only while the list is
//! absent (kube-rs' finalizer helper tests `/metadata/finalizers` against `null` before adding it).

use crate::error::{ApiError, Details};
use json_patch::{PatchError, PatchErrorKind, PatchOperation};
use serde_json::Value;

/// The API server refuses JSON patches with more operations than this (`maxJSONPatchOperations`).
pub const MAX_OPERATIONS: usize = 10_000;

/// The fixed text of the API server's `422` answer to a JSON patch that cannot be applied.
pub const REJECTED: &str = "the server rejected our request due to an error in our request";

/// Applies every operation or none; a failing `test` fails the whole patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let operations = decode(patch)?;
    // Operations apply to a copy, one at a time, so that a failure leaves the target untouched.
    let mut out = target.clone();
    for operation in &operations {
        if let PatchOperation::Test(test) = operation
            && is_absent_key(&out, test.path.as_str())
        {
            if test.value.is_null() {
                continue;
            }
            return Err(rejected(&format!("testing value {} failed: test failed", test.path)));
        }
        json_patch::patch_unsafe(&mut out, std::slice::from_ref(operation))
            .map_err(|e| rejected(&describe(operation, &e)))?;
    }
    Ok(out)
}

/// True when `pointer` names a key that its parent, an existing object, does not have.
fn is_absent_key(document: &Value, pointer: &str) -> bool {
    let Some((parent, token)) = pointer.rsplit_once('/') else { return false };
    let key = token.replace("~1", "/").replace("~0", "~");
    document.pointer(parent).and_then(Value::as_object).is_some_and(|map| !map.contains_key(&key))
}

/// Checks the body's shape (400 on failure) and then each operation (422 on failure).
fn decode(patch: &Value) -> Result<Vec<PatchOperation>, ApiError> {
    let items = match patch {
        Value::Array(items) => items.as_slice(),
        // Go decodes `null` into an empty patch.
        Value::Null => &[],
        other => return Err(bad_shape(other, "jsonpatch.Patch")),
    };
    if items.len() > MAX_OPERATIONS {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
                items.len()
            ),
        ));
    }
    if let Some(item) = items.iter().find(|item| !item.is_object() && !item.is_null()) {
        return Err(bad_shape(item, "jsonpatch.Operation"));
    }
    items.iter().map(decode_operation).collect()
}

fn decode_operation(item: &Value) -> Result<PatchOperation, ApiError> {
    let kind = item.get("op").and_then(Value::as_str).unwrap_or("unknown");
    if !matches!(kind, "add" | "remove" | "replace" | "move" | "copy" | "test") {
        return Err(rejected(&format!("Unexpected kind: {kind}")));
    }
    serde_json::from_value(item.clone()).map_err(|e| rejected(&format!("{kind} operation is malformed: {e}")))
}

/// The Go JSON decoder's wording for a value of the wrong JSON type.
fn bad_shape(value: &Value, go_type: &str) -> ApiError {
    let found = match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    };
    ApiError::bad_request(format!("json: cannot unmarshal {found} into Go value of type {go_type}"))
}

/// The 422 `Invalid` answer with empty `details`, as `NewGenericServerResponse` builds it for patches that
/// cannot be applied. The real server drops the underlying error; it is appended here so that clients can
/// see what failed.
pub(crate) fn rejected(cause: &str) -> ApiError {
    ApiError::new(422, "Invalid", format!("{REJECTED}: {cause}")).with_details(Details::default())
}

/// Words a failed operation like the Go `evanphx/json-patch` library the API server uses.
fn describe(operation: &PatchOperation, error: &PatchError) -> String {
    let path = error.path.as_str();
    let (kind, from) = match operation {
        PatchOperation::Add(_) => ("add", None),
        PatchOperation::Remove(_) => ("remove", None),
        PatchOperation::Replace(_) => ("replace", None),
        PatchOperation::Move(op) => ("move", Some(op.from.as_str())),
        PatchOperation::Copy(op) => ("copy", Some(op.from.as_str())),
        PatchOperation::Test(_) => ("test", None),
    };
    match (&error.kind, from) {
        (PatchErrorKind::TestFailed, _) => format!("testing value {path} failed: test failed"),
        (PatchErrorKind::InvalidPointer, _) if kind == "test" => {
            format!("test operation does not apply: is missing path: {path}: missing value")
        }
        (PatchErrorKind::InvalidPointer, _) => {
            format!("{kind} operation does not apply: doc is missing path: \"{path}\": missing value")
        }
        (PatchErrorKind::InvalidFromPointer, Some(from)) => {
            format!("{kind} operation does not apply: doc is missing from path: \"{from}\": missing value")
        }
        (PatchErrorKind::CannotMoveInsideItself, Some(from)) => {
            format!("move operation does not apply: cannot move \"{from}\" into its own child \"{path}\"")
        }
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"containers": [{"name": "c"}]}})
    }

    fn assert_rejected(err: &ApiError, cause: &str) {
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert_eq!(err.message, format!("{REJECTED}: {cause}"));
        assert_eq!(err.to_status()["details"], json!({}));
    }

    #[test]
    fn applies_every_operation_kind() {
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
            {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/c"},
            {"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/d"},
            {"op": "add", "path": "/spec/containers/-", "value": {"name": "e"}},
            {"op": "remove", "path": "/spec/containers/0"},
            {"op": "test", "path": "/metadata/name", "value": "p"}
        ]);
        let out = json_patch(&pod(), &patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"name": "p", "labels": {"a": "9", "c": "9", "d": "2"}}, "spec": {"containers": [{"name": "e"}]}})
        );
    }

    #[test]
    fn null_and_empty_patches_change_nothing() {
        assert_eq!(json_patch(&pod(), &json!(null)).unwrap(), pod());
        assert_eq!(json_patch(&pod(), &json!([])).unwrap(), pod());
    }

    #[test]
    fn failing_test_rejects_the_whole_patch() {
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "test", "path": "/metadata/name", "value": "other"}
        ]);
        let err = json_patch(&pod(), &patch).unwrap_err();
        assert_rejected(&err, "testing value /metadata/name failed: test failed");
    }

    #[test]
    fn missing_paths_are_rejected() {
        let err = json_patch(&pod(), &json!([{"op": "remove", "path": "/spec/affinity"}])).unwrap_err();
        assert_rejected(
            &err,
            "remove operation does not apply: doc is missing path: \"/spec/affinity\": missing value",
        );
        let err = json_patch(&pod(), &json!([{"op": "replace", "path": "/x/y", "value": 1}])).unwrap_err();
        assert_rejected(&err, "replace operation does not apply: doc is missing path: \"/x/y\": missing value");
        let err = json_patch(&pod(), &json!([{"op": "test", "path": "/x/y", "value": 1}])).unwrap_err();
        assert_rejected(&err, "test operation does not apply: is missing path: /x/y: missing value");
    }

    #[test]
    fn testing_an_absent_key_compares_with_null() {
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
        ]);
        let out = json_patch(&pod(), &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
        // Once the key exists, the same patch fails, so that only one writer adds the first item.
        let err = json_patch(&out, &patch).unwrap_err();
        assert_rejected(&err, "testing value /metadata/finalizers failed: test failed");
        let err = json_patch(&pod(), &json!([{"op": "test", "path": "/x", "value": 1}])).unwrap_err();
        assert_rejected(&err, "testing value /x failed: test failed");
        let escaped = json!({"metadata": {"labels": {"a/b": "1"}}});
        let err =
            json_patch(&escaped, &json!([{"op": "test", "path": "/metadata/labels/a~1b", "value": null}])).unwrap_err();
        assert_rejected(&err, "testing value /metadata/labels/a~1b failed: test failed");
    }

    #[test]
    fn a_failure_after_applied_operations_returns_no_partial_result() {
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/spec/nothing"}
        ]);
        let err = json_patch(&pod(), &patch).unwrap_err();
        assert_rejected(&err, "remove operation does not apply: doc is missing path: \"/spec/nothing\": missing value");
    }

    #[test]
    fn missing_from_paths_are_rejected() {
        let err = json_patch(&pod(), &json!([{"op": "copy", "from": "/nope", "path": "/x"}])).unwrap_err();
        assert_rejected(&err, "copy operation does not apply: doc is missing from path: \"/nope\": missing value");
    }

    #[test]
    fn moving_into_a_child_is_rejected() {
        let err = json_patch(&pod(), &json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}])).unwrap_err();
        assert_rejected(
            &err,
            "move operation does not apply: cannot move \"/spec\" into its own child \"/spec/inner\"",
        );
    }

    #[test]
    fn unknown_or_missing_op_is_rejected() {
        let err = json_patch(&pod(), &json!([{"op": "frobnicate", "path": "/a"}])).unwrap_err();
        assert_rejected(&err, "Unexpected kind: frobnicate");
        let err = json_patch(&pod(), &json!([{"path": "/a"}])).unwrap_err();
        assert_rejected(&err, "Unexpected kind: unknown");
    }

    #[test]
    fn malformed_operation_is_rejected() {
        let err = json_patch(&pod(), &json!([{"op": "add", "value": 1}])).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert!(err.message.starts_with(&format!("{REJECTED}: add operation is malformed: ")), "{}", err.message);
        assert!(err.message.contains("path"), "{}", err.message);
    }

    #[test]
    fn body_that_is_not_a_list_is_a_bad_request() {
        let err = json_patch(&pod(), &json!({"op": "add"})).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
        assert_eq!(err.message, "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
    }

    #[test]
    fn list_item_that_is_not_an_object_is_a_bad_request() {
        let err = json_patch(&pod(), &json!(["add"])).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
        assert_eq!(err.message, "json: cannot unmarshal string into Go value of type jsonpatch.Operation");
    }

    #[test]
    fn too_many_operations_is_too_large() {
        let ops = vec![json!({"op": "test", "path": "/metadata/name", "value": "p"}); MAX_OPERATIONS + 1];
        let err = json_patch(&pod(), &Value::Array(ops)).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (413, "RequestEntityTooLarge"));
        assert_eq!(
            err.message,
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
    }
}
