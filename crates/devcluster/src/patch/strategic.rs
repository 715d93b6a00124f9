//! Strategic merge patch for built-in types (`application/strategic-merge-patch+json`).

use super::rules::MergeRules;
use crate::error::ApiError;
use serde_json::Value;

/// Applies a strategic merge patch using the list strategies in `rules`.
pub fn strategic_merge_patch(target: &Value, patch: &Value, rules: &MergeRules) -> Result<Value, ApiError> {
    let _ = (target, patch, rules);
    Err(ApiError::internal("strategic merge patch not implemented"))
}
