//! The agent terminal's transcript, kept in the cluster as a ReviewTranscript
//! so that it outlives the pod: [`Transcript`] holds the head and the tail of
//! what the terminal printed, [`Transcript::snapshot`] compresses them under
//! the size cap, and [`TranscriptWriter`] writes the object.

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use std::collections::VecDeque;

use crate::api::{ReviewTranscript, ReviewTranscriptSpec, Reviewer, gzip, labels};

/// The first bytes of the transcript, always kept: the prompt and how the agent started.
pub const HEAD_BYTES: usize = 128 * 1024;
/// The last bytes of the transcript kept before compression.
pub const TAIL_BYTES: usize = 1024 * 1024;
/// The most compressed bytes a transcript holds. Base64 in JSON makes the
/// object about 4/3 of this, under the API server's request limit (3 MiB)
/// and etcd's value limit (1.5 MiB) with room to spare.
pub const MAX_COMPRESSED_BYTES: usize = 768 * 1024;
/// How often the supervisor writes the transcript while the agent runs.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

/// What the terminal printed: the head, the tail, and how much in all.
#[derive(Debug, Default)]
pub struct Transcript {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

/// A transcript ready to write: gzip of the head, a line for what was left out, and the tail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub compressed: Vec<u8>,
    pub total_bytes: u64,
    pub omitted_bytes: u64,
}

impl Transcript {
    /// Appends what the terminal printed.
    pub fn record(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.head.len() < HEAD_BYTES {
            let take = bytes.len().min(HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.len() >= TAIL_BYTES {
            self.tail.clear();
            bytes = &bytes[bytes.len() - TAIL_BYTES..];
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(TAIL_BYTES);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// How many bytes were printed in all; a change means there is something new to write.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The head and as much of the tail as fits in [`MAX_COMPRESSED_BYTES`] once compressed.
    pub fn snapshot(&self) -> Snapshot {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let mut keep = tail.len();
        loop {
            let kept = &tail[tail.len() - keep..];
            let omitted = self.total - self.head.len() as u64 - kept.len() as u64;
            let mut text = Vec::with_capacity(self.head.len() + kept.len() + 80);
            text.extend_from_slice(&self.head);
            if omitted > 0 {
                text.extend_from_slice(format!("\n[review-operator: {omitted} bytes left out here]\n").as_bytes());
            }
            text.extend_from_slice(kept);
            let compressed = gzip(&text);
            if compressed.len() <= MAX_COMPRESSED_BYTES || keep == 0 {
                return Snapshot { compressed, total_bytes: self.total, omitted_bytes: omitted };
            }
            // Incompressible output: keep a shorter tail, in proportion to the excess.
            let ratio = MAX_COMPRESSED_BYTES as f64 / compressed.len() as f64;
            keep = ((keep as f64 * ratio * 0.9) as usize).min(keep / 2 + keep / 4);
        }
    }
}

/// Writes one pod's transcript object, by server-side apply under the supervisor's field manager.
pub struct TranscriptWriter {
    api: Api<ReviewTranscript>,
    reviewers: Api<Reviewer>,
    reviewer: String,
    pod: String,
    pod_uid: String,
    incarnation: i64,
    owner: Option<OwnerReference>,
    written: Option<u64>,
}

impl TranscriptWriter {
    pub fn new(client: kube::Client, identity: &super::Identity, reviewer: Option<&Reviewer>) -> Self {
        Self {
            api: Api::namespaced(client.clone(), &identity.namespace),
            reviewers: Api::namespaced(client, &identity.namespace),
            reviewer: identity.reviewer.clone(),
            pod: identity.pod_name.clone(),
            pod_uid: identity.pod_uid.clone(),
            incarnation: identity.incarnation,
            owner: reviewer.and_then(owner_of),
            written: None,
        }
    }

    /// Writes `transcript` unless nothing changed since the last write (or `complete`).
    pub async fn flush(&mut self, transcript: &std::sync::Mutex<Transcript>, complete: bool) {
        let snapshot = match transcript.lock() {
            Ok(transcript) if complete || self.written != Some(transcript.total()) => transcript.snapshot(),
            _ => return,
        };
        if self.owner.is_none() {
            // Without the Reviewer as owner the transcript would outlive it; read it again.
            self.owner = self.reviewers.get(&self.reviewer).await.ok().as_ref().and_then(owner_of);
            if self.owner.is_none() {
                tracing::warn!(reviewer = %self.reviewer, "cannot read the Reviewer; the transcript waits");
                return;
            }
        }
        let object = ReviewTranscript {
            metadata: ObjectMeta {
                name: Some(self.pod.clone()),
                labels: Some(
                    [
                        (labels::REVIEWER.to_owned(), self.reviewer.clone()),
                        (labels::INCARNATION.to_owned(), self.incarnation.to_string()),
                    ]
                    .into(),
                ),
                owner_references: self.owner.clone().map(|owner| vec![owner]),
                ..ObjectMeta::default()
            },
            spec: ReviewTranscriptSpec {
                reviewer: self.reviewer.clone(),
                pod: self.pod.clone(),
                pod_uid: self.pod_uid.clone(),
                incarnation: self.incarnation,
                data: ByteString(snapshot.compressed),
                total_bytes: i64::try_from(snapshot.total_bytes).unwrap_or(i64::MAX),
                omitted_bytes: i64::try_from(snapshot.omitted_bytes).unwrap_or(i64::MAX),
                updated_at: Some(Time(k8s_openapi::jiff::Timestamp::now())),
                complete,
            },
        };
        let params = PatchParams::apply(super::FIELD_MANAGER).force();
        match self.api.patch(&self.pod, &params, &Patch::Apply(&object)).await {
            Ok(_) => self.written = Some(snapshot.total_bytes),
            Err(error) => tracing::warn!(pod = %self.pod, %error, "writing the transcript"),
        }
    }
}

/// A non-blocking owner reference to the Reviewer (blocking one would need delete rights on it).
fn owner_of(reviewer: &Reviewer) -> Option<OwnerReference> {
    let mut owner = reviewer.controller_owner_ref(&())?;
    owner.controller = None;
    owner.block_owner_deletion = None;
    Some(owner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::decompress;

    #[test]
    fn a_short_transcript_is_kept_whole() {
        let mut transcript = Transcript::default();
        transcript.record(b"hello ");
        transcript.record(b"world");
        let snapshot = transcript.snapshot();
        assert_eq!((snapshot.total_bytes, snapshot.omitted_bytes), (11, 0));
        assert_eq!(decompress(&snapshot.compressed).unwrap(), "hello world");
    }

    #[test]
    fn a_long_transcript_keeps_its_head_and_tail_and_says_what_is_left_out() {
        let mut transcript = Transcript::default();
        transcript.record(b"PROMPT\n");
        let line = b"0123456789 the agent is thinking\n";
        let lines = 3 * (HEAD_BYTES + TAIL_BYTES) / line.len();
        for _ in 0..lines {
            transcript.record(line);
        }
        transcript.record(b"VERDICT\n");
        let snapshot = transcript.snapshot();
        let total = (7 + lines * line.len() + 8) as u64;
        assert_eq!(snapshot.total_bytes, total);
        assert_eq!(
            snapshot.omitted_bytes,
            total - (HEAD_BYTES + TAIL_BYTES) as u64,
            "text compresses: all of the tail fits"
        );
        let text = decompress(&snapshot.compressed).unwrap();
        assert!(text.starts_with("PROMPT\n0123456789"));
        assert!(text.ends_with("thinking\nVERDICT\n"));
        assert!(text.contains(&format!("\n[review-operator: {} bytes left out here]\n", snapshot.omitted_bytes)));
    }

    #[test]
    fn incompressible_output_is_capped_by_a_shorter_tail() {
        let mut transcript = Transcript::default();
        // 50 MB of noise in one write and in many small ones.
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut noise = vec![0u8; 50 * 1024 * 1024];
        for byte in noise.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        transcript.record(&noise[..1000]);
        for chunk in noise[1000..].chunks(8192) {
            transcript.record(chunk);
        }
        let snapshot = transcript.snapshot();
        assert!(snapshot.compressed.len() <= MAX_COMPRESSED_BYTES, "{}", snapshot.compressed.len());
        assert!(snapshot.compressed.len() > MAX_COMPRESSED_BYTES / 2, "the cap is used, not wasted");
        assert_eq!(snapshot.total_bytes, noise.len() as u64);
        let text = decompress(&snapshot.compressed).unwrap();
        assert!(text.contains("bytes left out here]"));
        let mut one = Transcript::default();
        one.record(&noise);
        assert_eq!(one.snapshot().total_bytes, noise.len() as u64);
        assert!(one.snapshot().compressed.len() <= MAX_COMPRESSED_BYTES);
    }
}
