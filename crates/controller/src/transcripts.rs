//! Transcript retention: each Reviewer keeps its newest `spec.transcripts.keep`
//! ReviewTranscripts (by incarnation), and never the live pod's less. It has its own
//! metadata-only watch, so transcripts, however large, never reach the reconciler.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::api::{ReviewTranscript, Reviewer, labels};

/// How long retention waits after a transcript event before pruning, so one pass covers a burst.
pub const PRUNE_DELAY: Duration = Duration::from_secs(1);
/// How often every Reviewer is looked at again (a lowered `keep` takes effect by then).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// One kept transcript, as its metadata shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeptTranscript {
    pub incarnation: i64,
    pub name: String,
}

/// The transcripts to delete: all but the `keep` newest incarnations, and never the one of
/// the `live` incarnation.
pub fn transcripts_to_prune(transcripts: &BTreeSet<KeptTranscript>, keep: usize, live: i64) -> Vec<String> {
    transcripts
        .iter()
        .rev()
        .skip(keep)
        .filter(|transcript| transcript.incarnation != live)
        .map(|transcript| transcript.name.clone())
        .collect()
}

/// A Reviewer's transcripts: (namespace, Reviewer name).
type Owner = (String, String);

/// Runs retention until `stop` completes.
pub async fn run(client: kube::Client, reviewers: Store<Reviewer>, stop: impl std::future::Future<Output = ()>) {
    let api: Api<PartialObjectMeta<ReviewTranscript>> = Api::all(client.clone());
    let config = watcher::Config::default().labels(labels::REVIEWER);
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut known: BTreeMap<Owner, BTreeSet<KeptTranscript>> = BTreeMap::new();
    let mut names: BTreeMap<(String, String), (Owner, KeptTranscript)> = BTreeMap::new();
    let mut due: BTreeSet<Owner> = BTreeSet::new();
    let mut prune_at: Option<tokio::time::Instant> = None;
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    tokio::pin!(stop);
    loop {
        let prune = crate::api::deadline::sleep_until(prune_at);
        tokio::select! {
            () = &mut stop => return,
            _ = sweep.tick() => {
                due.extend(known.keys().cloned());
                prune_at.get_or_insert_with(tokio::time::Instant::now);
            }
            () = prune => {
                prune_at = None;
                for owner in std::mem::take(&mut due) {
                    prune_owner(&client, &reviewers, &owner, known.get(&owner)).await;
                }
            }
            event = events.next() => {
                let (applied, deleted) = match event {
                    Some(Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object))) => (Some(object), None),
                    Some(Ok(watcher::Event::Delete(object))) => (None, Some(object)),
                    Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => (None, None),
                    Some(Err(error)) => {
                        tracing::debug!(%error, "watching ReviewTranscripts");
                        (None, None)
                    }
                    None => return,
                };
                if let Some(object) = deleted {
                    let key = (object.metadata.namespace.clone().unwrap_or_default(), object.metadata.name.clone().unwrap_or_default());
                    if let Some((owner, kept)) = names.remove(&key)
                        && let Some(set) = known.get_mut(&owner) {
                        set.remove(&kept);
                    }
                }
                if let Some(object) = applied {
                    let metadata = &object.metadata;
                    let labels = metadata.labels.clone().unwrap_or_default();
                    let (Some(reviewer), Some(name)) = (labels.get(labels::REVIEWER), metadata.name.clone()) else { continue };
                    let incarnation = labels.get(labels::INCARNATION).and_then(|i| i.parse().ok()).unwrap_or(0);
                    let namespace = metadata.namespace.clone().unwrap_or_default();
                    let owner = (namespace.clone(), reviewer.clone());
                    let kept = KeptTranscript { incarnation, name: name.clone() };
                    if let Some((old_owner, old)) = names.insert((namespace, name), (owner.clone(), kept.clone()))
                        && let Some(set) = known.get_mut(&old_owner) {
                        set.remove(&old);
                    }
                    known.entry(owner.clone()).or_default().insert(kept);
                    due.insert(owner);
                    prune_at.get_or_insert_with(|| tokio::time::Instant::now() + PRUNE_DELAY);
                }
            }
        }
    }
}

async fn prune_owner(
    client: &kube::Client,
    reviewers: &Store<Reviewer>,
    (namespace, reviewer): &Owner,
    transcripts: Option<&BTreeSet<KeptTranscript>>,
) {
    let Some(transcripts) = transcripts else { return };
    // A Reviewer that is gone takes its transcripts with it (they are owned by it).
    let Some(owner) = reviewers.get(&ObjectRef::new(reviewer).within(namespace)) else { return };
    let live = owner.status.as_ref().map_or(0, |status| status.incarnation);
    let api: Api<ReviewTranscript> = Api::namespaced(client.clone(), namespace);
    for name in transcripts_to_prune(transcripts, owner.spec.transcripts_kept(), live) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(reviewer = %reviewer, transcript = %name, "pruned a transcript"),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => tracing::warn!(reviewer = %reviewer, transcript = %name, %error, "pruning a transcript"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(incarnations: &[i64]) -> BTreeSet<KeptTranscript> {
        incarnations.iter().map(|&i| KeptTranscript { incarnation: i, name: format!("review-w1-{i}") }).collect()
    }

    #[test]
    fn the_newest_incarnations_are_kept() {
        let transcripts = kept(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(transcripts_to_prune(&transcripts, 3, 6), ["review-w1-3", "review-w1-2", "review-w1-1"]);
        assert_eq!(transcripts_to_prune(&transcripts, 10, 6), Vec::<String>::new());
        // Incarnation 10 sorts after 9, not after 1.
        let transcripts = kept(&[9, 10, 2]);
        assert_eq!(transcripts_to_prune(&transcripts, 1, 10), ["review-w1-9", "review-w1-2"]);
    }

    #[test]
    fn the_live_pods_transcript_is_never_pruned() {
        let transcripts = kept(&[1, 2, 3]);
        assert_eq!(transcripts_to_prune(&transcripts, 0, 3), ["review-w1-2", "review-w1-1"]);
        assert_eq!(transcripts_to_prune(&transcripts, 1, 2), ["review-w1-1"]);
    }
}
