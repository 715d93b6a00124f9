//! What the server serves: one `ResourceInfo` per group/version/resource, built-in or from a CRD.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// A CRD `additionalPrinterColumns` entry (also used for built-in tables).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    /// A simple JSONPath such as `.spec.reviewer` (without braces).
    pub json_path: String,
    pub priority: i32,
}

/// Where a resource comes from; decides validation, patch strategies and OpenAPI.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Builtin,
    /// Served because of this CustomResourceDefinition (by name).
    Custom {
        crd: String,
    },
}

/// One served group/version/resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    /// Plural, lower case: the URL segment.
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Served subresources, e.g. `status`.
    pub subresources: Vec<String>,
    pub printer_columns: Vec<PrinterColumn>,
    /// The structural `openAPIV3Schema` of a CRD version; `None` for built-ins. Shared, since every
    /// request resolves its resource.
    pub schema: Option<Arc<Value>>,
    pub origin: Origin,
}

impl ResourceInfo {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The storage identity `(group, resource)`: versions of one group/resource share objects, and
    /// events.k8s.io Events share the core Events' objects ([`crate::events`]).
    pub fn storage(&self) -> (&str, &str) {
        if crate::events::is_events_view(self) { ("", "events") } else { (&self.group, &self.resource) }
    }

    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    /// The patch content types the resource accepts, in the real server's order: custom resources
    /// have no strategic merge patch.
    pub fn patch_types(&self) -> &'static [&'static str] {
        match self.origin {
            Origin::Custom { .. } => {
                &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
            }
            _ => &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ],
        }
    }
}

/// (group, version, resource) of one served resource.
type ResourceKey = (String, String, String);

/// The set of served resources; CRDs add and remove entries at run time.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<BTreeMap<ResourceKey, ResourceInfo>>>,
}

impl Registry {
    pub fn new(resources: impl IntoIterator<Item = ResourceInfo>) -> Self {
        let registry = Self::default();
        for r in resources {
            registry.insert(r);
        }
        registry
    }

    pub fn insert(&self, info: ResourceInfo) {
        let key = (info.group.clone(), info.version.clone(), info.resource.clone());
        if let Ok(mut map) = self.inner.write() {
            map.insert(key, info);
        }
    }

    /// Removes every version served because of the named CRD.
    pub fn remove_crd(&self, crd: &str) {
        if let Ok(mut map) = self.inner.write() {
            map.retain(|_, info| info.origin != Origin::Custom { crd: crd.to_string() });
        }
    }

    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<ResourceInfo> {
        let map = self.inner.read().ok()?;
        map.get(&(group.to_string(), version.to_string(), resource.to_string())).cloned()
    }

    /// Any served version of a group/resource (for storage-level work such as GC).
    pub fn any_version(&self, group: &str, resource: &str) -> Option<ResourceInfo> {
        let map = self.inner.read().ok()?;
        map.values().find(|i| i.group == group && i.resource == resource).cloned()
    }

    /// The resource serving `kind` in `apiVersion` (for ownerReferences and body checks).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceInfo> {
        let map = self.inner.read().ok()?;
        map.values().find(|i| i.kind == kind && i.api_version() == api_version).cloned()
    }

    /// Every served resource, sorted by group, version, resource.
    pub fn all(&self) -> Vec<ResourceInfo> {
        self.inner.read().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }
}
