//! RFC 6902 JSON patch (`application/json-patch+json`), applied atomically.

use crate::error::ApiError;
use serde_json::Value;

/// Applies every operation or none; a failing `test` fails the whole patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let _ = (target, patch);
    Err(ApiError::internal("json patch not implemented"))
}
