use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kept terminal transcript of one reviewer pod incarnation, written by
/// that pod's supervisor while the agent runs, named after the pod and owned
/// by the Reviewer, so that it outlives the pod and goes with the Reviewer.
// `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "review.ao.dev",
    version = "v1alpha1",
    kind = "ReviewTranscript",
    plural = "reviewtranscripts",
    shortname = "rtr",
    category = "review",
    namespaced,
    derive = "PartialEq",
    doc = "The terminal transcript of one reviewer pod, gzip-compressed; `kubectl review transcript POD|RUN` prints it.",
    printcolumn(name = "Reviewer", type_ = "string", json_path = ".spec.reviewer"),
    printcolumn(name = "Incarnation", type_ = "integer", json_path = ".spec.incarnation"),
    printcolumn(name = "Bytes", type_ = "integer", json_path = ".spec.totalBytes"),
    printcolumn(name = "Complete", type_ = "boolean", json_path = ".spec.complete"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ReviewTranscriptSpec {
    /// The Reviewer whose pod this is.
    #[schemars(length(min = 1, max = 253))]
    pub reviewer: String,
    /// The pod's name (also the transcript's name).
    #[schemars(length(min = 1, max = 253))]
    pub pod: String,
    /// The pod's UID: only the pod-bound token of this pod may write the transcript.
    #[serde(rename = "podUID")]
    #[schemars(length(min = 1, max = 128))]
    pub pod_uid: String,
    /// The pod's incarnation; retention keeps the newest.
    pub incarnation: i64,
    /// The transcript as gzip, base64 in JSON. When the agent printed more
    /// than fits, its head and its tail are kept and a line in between says
    /// how much was left out.
    #[serde(default)]
    #[schemars(schema_with = "base64_bytes")]
    pub data: ByteString,
    /// How many bytes the agent's terminal printed in all.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub total_bytes: i64,
    /// How many of them were left out between the head and the tail.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub omitted_bytes: i64,
    /// When the supervisor last wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Time>,
    /// True once the agent ended (or the pod was stopped) and the last output was written.
    #[serde(default)]
    pub complete: bool,
}

/// `data`'s schema: a base64 string, as the API server stores `[]byte` fields.
fn base64_bytes(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "format": "byte"})
}

/// `text` compressed as a transcript's `data`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// The text of a transcript's `data`.
pub fn decompress(data: &[u8]) -> std::io::Result<String> {
    let mut text = Vec::new();
    MultiGzDecoder::new(data).read_to_end(&mut text)?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}
