//! `/openapi/v2` and `/openapi/v3` documents, complete enough for `kubectl apply` and `kubectl explain`.

use crate::registry::ResourceInfo;
use serde_json::Value;

/// `/openapi/v3`: the index of group-versions, each with its `serverRelativeURL`.
pub fn v3_index(resources: &[ResourceInfo]) -> Value {
    let _ = resources;
    Value::Null
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`, or `None` when nothing is served there.
pub fn v3_group_version(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let _ = (resources, group, version);
    None
}

/// `/openapi/v2`: one Swagger 2.0 document with every definition.
pub fn v2(resources: &[ResourceInfo]) -> Value {
    let _ = resources;
    Value::Null
}
