//! Patch engines: JSON merge patch, JSON patch, strategic merge patch and server-side apply.
//! Pure functions over `serde_json::Value`; the HTTP layer picks one by `Content-Type`.

pub mod apply;
pub mod fieldset;
pub mod json;
pub mod managed_fields;
pub mod merge;
pub mod rules;
pub mod strategic;
pub mod structured;

/// The patch flavours the server accepts, keyed by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        match mime {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" | "application/apply-patch+cbor" => {
                Some(Self::Apply)
            }
            _ => None,
        }
    }
}
