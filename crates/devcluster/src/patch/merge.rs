//! RFC 7386 JSON merge patch (`application/merge-patch+json`).

use crate::error::ApiError;
use serde_json::Value;

/// Applies a JSON merge patch. A patch that is not a JSON object replaces the target, per RFC 7386.
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut out = target.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}
