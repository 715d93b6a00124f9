//! Discovery documents: `/api`, `/api/v1`, `/apis`, `/apis/GROUP/VERSION`, and the aggregated
//! (`apidiscovery.k8s.io/v2`) documents kubectl asks for first.

use crate::registry::ResourceInfo;
use serde_json::Value;

/// `/api`: `APIVersions` for the core group. `server_address` is the `host:port` clients use.
pub fn core_versions(server_address: &str) -> Value {
    let _ = server_address;
    Value::Null
}

/// `/apis`: `APIGroupList` of the non-core groups among `resources`.
pub fn group_list(resources: &[ResourceInfo]) -> Value {
    let _ = resources;
    Value::Null
}

/// `/api/v1` or `/apis/GROUP/VERSION`: `APIResourceList`, or `None` when nothing is served there.
pub fn resource_list(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let _ = (resources, group, version);
    None
}

/// Aggregated discovery (`APIGroupDiscoveryList`), for `/api` (`core = true`) or `/apis`.
pub fn aggregated(resources: &[ResourceInfo], core: bool) -> Value {
    let _ = (resources, core);
    Value::Null
}
