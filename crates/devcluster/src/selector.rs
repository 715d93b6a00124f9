//! `labelSelector` and `fieldSelector` query parameters.

use crate::error::ApiError;
use serde_json::Value;

/// A parsed label selector: equality- and set-based requirements, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    raw: String,
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`. A malformed selector is a 400 naming it.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        Ok(Self { raw: raw.to_string() })
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let _ = object;
        self.raw.is_empty()
    }
}

/// A parsed field selector (`=`, `==`, `!=` on the fields the resource supports).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    raw: String,
}

impl FieldSelector {
    /// Parses a field selector for `resource` (plural, with `group`); an unsupported field is a 400
    /// `field label not supported: FIELD`.
    pub fn parse(group: &str, resource: &str, raw: &str) -> Result<Self, ApiError> {
        let _ = (group, resource);
        Ok(Self { raw: raw.to_string() })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let _ = object;
        self.raw.is_empty()
    }
}
