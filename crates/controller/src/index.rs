//! What the controller has observed, indexed for planning one Reviewer at a
//! time: the runs and the names of the pods of each Reviewer, which Reviewers
//! exist, how far each watch has caught up and, per Reviewer, the versions
//! the controller's own writes returned (see [`freshness`](super::freshness)).
//!
//! Reflector stores hold the Reviewers and pods; the index, fed by the same
//! watch events once the stores have applied them and by the answers to the
//! controller's writes, says which pods a reconcile reads. Runs, where most
//! of the controller's memory goes, are held by the index alone, encoded
//! ([`CachedRun`]). A reconcile thus costs time proportional to the
//! Reviewer's own runs and pods, not to the cluster's. `spec.reviewer` is
//! immutable and a pod's Reviewer label is the controller's, so objects
//! never move between Reviewers.
//!
//! Runs naming a Reviewer that does not exist are waiting for it
//! ([`ObservedIndex::waits_for_reviewer`]): the controller runtime reports
//! their triggers as objects it cannot find, and the controller reconciles
//! them from there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher;

use super::cache::CachedRun;
use super::executor::WriteMarks;
use super::freshness::{Entry, StoreProgress};
use crate::api::{ReviewRun, Reviewer, labels};

/// Namespace and name of a Reviewer.
pub type ReviewerKey = (String, String);

/// Values kept from one watch, as its store keeps objects: a relist is
/// swapped in only once it is done.
#[derive(Debug)]
struct Listed<T> {
    live: T,
    relisting: T,
}

impl<T: Default> Default for Listed<T> {
    fn default() -> Self {
        Self { live: T::default(), relisting: T::default() }
    }
}

/// Objects grouped by the Reviewer they belong to, by name, with what is
/// kept of each.
type Grouped<V> = HashMap<ReviewerKey, BTreeMap<String, V>>;

fn insert<V>(groups: &mut Grouped<V>, key: ReviewerKey, name: String, value: V) {
    groups.entry(key).or_default().insert(name, value);
}

fn remove<V>(groups: &mut Grouped<V>, key: &ReviewerKey, name: &str) {
    if let Some(names) = groups.get_mut(key) {
        names.remove(name);
        if names.is_empty() {
            groups.remove(key);
        }
    }
}

impl<V> Listed<Grouped<V>> {
    /// Applies a watch event of an object belonging to the Reviewer `key`
    /// (`None`: to no Reviewer), keeping `value` of it (`None`: keeping the
    /// version held before, if any).
    fn observe<K: kube::Resource>(
        &mut self,
        event: &watcher::Event<K>,
        key: impl Fn(&K) -> Option<ReviewerKey>,
        value: impl Fn(&K) -> Option<V>,
    ) {
        match event {
            watcher::Event::Apply(object) => {
                if let (Some(key), Some(value)) = (key(object), value(object)) {
                    insert(&mut self.live, key, object.name_any(), value);
                }
            }
            watcher::Event::Delete(object) => {
                if let Some(key) = key(object) {
                    remove(&mut self.live, &key, &object.name_any());
                }
            }
            watcher::Event::Init => self.relisting = Grouped::new(),
            watcher::Event::InitApply(object) => {
                if let (Some(key), Some(value)) = (key(object), value(object)) {
                    insert(&mut self.relisting, key, object.name_any(), value);
                }
            }
            watcher::Event::InitDone => self.live = std::mem::take(&mut self.relisting),
        }
    }
}

impl<V: Clone> Listed<Grouped<V>> {
    fn values(&self, key: &ReviewerKey) -> Vec<V> {
        self.live.get(key).map(|values| values.values().cloned().collect()).unwrap_or_default()
    }
}

impl Listed<Grouped<()>> {
    fn names(&self, key: &ReviewerKey) -> Vec<String> {
        self.live.get(key).map(|names| names.keys().cloned().collect()).unwrap_or_default()
    }
}

impl<T: Eq + Hash + Clone> Listed<HashSet<T>> {
    fn observe_key(&mut self, event: &watcher::Event<Reviewer>, key: impl Fn(&Reviewer) -> T) {
        match event {
            watcher::Event::Apply(object) => {
                self.live.insert(key(object));
            }
            watcher::Event::Delete(object) => {
                self.live.remove(&key(object));
            }
            watcher::Event::Init => self.relisting = HashSet::new(),
            watcher::Event::InitApply(object) => {
                self.relisting.insert(key(object));
            }
            watcher::Event::InitDone => self.live = std::mem::take(&mut self.relisting),
        }
    }
}

#[derive(Debug, Default)]
struct Groups {
    reviewers: Listed<HashSet<ReviewerKey>>,
    runs: Listed<Grouped<CachedRun>>,
    pods: Listed<Grouped<()>>,
}

/// The controller's index of what it observed; see the module documentation.
#[derive(Debug, Default)]
pub struct ObservedIndex {
    groups: Mutex<Groups>,
    progress: StoreProgress,
    entries: Mutex<HashMap<ReviewerKey, Arc<Entry>>>,
}

fn key(namespace: &str, name: &str) -> ReviewerKey {
    (namespace.to_owned(), name.to_owned())
}

fn run_reviewer(run: &ReviewRun) -> Option<ReviewerKey> {
    Some((run.namespace().unwrap_or_default(), run.spec.reviewer.clone()))
}

fn pod_reviewer(pod: &Pod) -> Option<ReviewerKey> {
    Some((pod.namespace().unwrap_or_default(), pod.labels().get(labels::REVIEWER)?.clone()))
}

/// A run encoded for the cache; never fails for runs the API server sent.
fn cache_run(run: &ReviewRun) -> Option<CachedRun> {
    CachedRun::encode(run)
        .inspect_err(
            |error| tracing::error!(run = %run.name_any(), %error, "cannot cache a run; keeping its last version"),
        )
        .ok()
}

fn reviewer_key(reviewer: &Reviewer) -> ReviewerKey {
    (reviewer.namespace().unwrap_or_default(), reviewer.name_any())
}

impl ObservedIndex {
    fn groups(&self) -> std::sync::MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a watch event the Reviewer store has applied.
    pub fn observe_reviewer(&self, event: &watcher::Event<Reviewer>) {
        self.groups().reviewers.observe_key(event, reviewer_key);
        self.progress.observe(|p| &p.reviewers, event);
    }

    /// Keeps the run of a watch event, already trimmed (see
    /// [`cache::trim_run`](super::cache::trim_run)).
    pub fn observe_run(&self, event: &watcher::Event<ReviewRun>) {
        self.groups().runs.observe(event, run_reviewer, cache_run);
        self.progress.observe(|p| &p.runs, event);
    }

    /// Records a watch event the pod store has applied.
    pub fn observe_pod(&self, event: &watcher::Event<Pod>) {
        self.groups().pods.observe(event, pod_reviewer, |_| Some(()));
        self.progress.observe(|p| &p.pods, event);
    }

    /// Records the versions the API returned to the controller's writes for
    /// the Reviewer `name`: its next reconcile waits until the stores show
    /// them.
    pub fn record_writes(&self, namespace: &str, name: &str, marks: WriteMarks) {
        self.entry(namespace, name).record(marks);
    }

    /// The runs in `namespace` naming the Reviewer `name`, by name.
    pub fn runs_of(&self, namespace: &str, name: &str) -> Vec<ReviewRun> {
        // Decoded outside the lock, which every watch event takes.
        let cached = self.groups().runs.values(&key(namespace, name));
        cached
            .iter()
            .filter_map(|run| {
                run.decode().inspect_err(|error| tracing::error!(%error, "cannot decode a cached run")).ok()
            })
            .collect()
    }

    /// Names of the reviewer pods of the Reviewer `name`.
    pub fn pods_of(&self, namespace: &str, name: &str) -> Vec<String> {
        self.groups().pods.names(&key(namespace, name))
    }

    /// Whether runs name the Reviewer `name`, which the Reviewer store does
    /// not hold.
    pub fn waits_for_reviewer(&self, namespace: &str, name: &str) -> bool {
        let groups = self.groups();
        let key = key(namespace, name);
        groups.runs.live.contains_key(&key) && !groups.reviewers.live.contains(&key)
    }

    /// The bookkeeping of the Reviewer `name`: its lock, its pending writes
    /// and its failures.
    pub fn entry(&self, namespace: &str, name: &str) -> Arc<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.entry(key(namespace, name)).or_default().clone()
    }

    /// Waits until every store has completed its first list, at most
    /// `limit`; whether they have.
    pub async fn wait_until_synced(&self, limit: Duration) -> bool {
        self.progress.wait_until_synced(limit).await
    }

    /// Whether the stores still lack the latest writes of `entry`.
    pub fn must_wait(&self, entry: &Entry) -> bool {
        entry.must_wait(&self.progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AgentSpec, PullRequest, ReviewRunSpec, ReviewerSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn run(name: &str, namespace: &str, reviewer: &str) -> ReviewRun {
        let mut run = ReviewRun::new(
            name,
            ReviewRunSpec {
                reviewer: reviewer.into(),
                pull_request: PullRequest::new("https://github.com/o/r/pull/1", "abcdef0"),
                cancel_requested: false,
                timeout: "1h".into(),
                ttl_seconds_after_finished: None,
            },
        );
        run.metadata.namespace = Some(namespace.into());
        run
    }

    fn run_names(index: &ObservedIndex, namespace: &str, reviewer: &str) -> Vec<String> {
        index.runs_of(namespace, reviewer).iter().map(ResourceExt::name_any).collect()
    }

    fn pod(name: &str, namespace: &str, reviewer: Option<&str>) -> Pod {
        let labels = reviewer.map(|reviewer| [(labels::REVIEWER.to_owned(), reviewer.to_owned())].into());
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels,
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    fn reviewer(name: &str, namespace: &str) -> Reviewer {
        let spec = ReviewerSpec::new("w1", AgentSpec::new("ghcr.io/acme/reviewer:1"));
        let mut reviewer = Reviewer::new(name, spec);
        reviewer.metadata.namespace = Some(namespace.into());
        reviewer
    }

    #[test]
    fn runs_are_indexed_by_namespace_and_reviewer() {
        let index = ObservedIndex::default();
        index.observe_run(&watcher::Event::Apply(run("b", "ns", "review-w1")));
        index.observe_run(&watcher::Event::Apply(run("a", "ns", "review-w1")));
        index.observe_run(&watcher::Event::Apply(run("c", "ns", "review-w2")));
        index.observe_run(&watcher::Event::Apply(run("d", "other", "review-w1")));
        // A second event for the same run keeps one entry.
        index.observe_run(&watcher::Event::Apply(run("a", "ns", "review-w1")));
        assert_eq!(run_names(&index, "ns", "review-w1"), ["a", "b"]);
        assert_eq!(run_names(&index, "ns", "review-w2"), ["c"]);
        assert_eq!(run_names(&index, "other", "review-w1"), ["d"]);
        assert!(index.runs_of("ns", "review-w3").is_empty());

        index.observe_run(&watcher::Event::Delete(run("b", "ns", "review-w1")));
        index.observe_run(&watcher::Event::Delete(run("c", "ns", "review-w2")));
        assert_eq!(run_names(&index, "ns", "review-w1"), ["a"]);
        assert!(index.runs_of("ns", "review-w2").is_empty());
    }

    #[test]
    fn a_reconcile_reads_the_latest_version_of_each_run() {
        let index = ObservedIndex::default();
        let mut first = run("a", "ns", "review-w1");
        first.metadata.resource_version = Some("1".into());
        let mut second = first.clone();
        second.metadata.resource_version = Some("2".into());
        second.spec.cancel_requested = true;
        index.observe_run(&watcher::Event::Apply(first));
        index.observe_run(&watcher::Event::Apply(second.clone()));
        assert_eq!(index.runs_of("ns", "review-w1"), [second]);
    }

    #[test]
    fn pods_are_indexed_by_their_reviewer_label() {
        let index = ObservedIndex::default();
        index.observe_pod(&watcher::Event::Apply(pod("review-w1-2", "ns", Some("review-w1"))));
        index.observe_pod(&watcher::Event::Apply(pod("review-w1-1", "ns", Some("review-w1"))));
        index.observe_pod(&watcher::Event::Apply(pod("review-w1-1", "other", Some("review-w1"))));
        index.observe_pod(&watcher::Event::Apply(pod("unlabelled", "ns", None)));
        assert_eq!(index.pods_of("ns", "review-w1"), ["review-w1-1", "review-w1-2"]);
        assert_eq!(index.pods_of("other", "review-w1"), ["review-w1-1"]);
        index.observe_pod(&watcher::Event::Delete(pod("review-w1-1", "ns", Some("review-w1"))));
        assert_eq!(index.pods_of("ns", "review-w1"), ["review-w1-2"]);
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_is_done() {
        let index = ObservedIndex::default();
        index.observe_run(&watcher::Event::Apply(run("gone", "ns", "review-w1")));
        index.observe_run(&watcher::Event::Init);
        index.observe_run(&watcher::Event::InitApply(run("kept", "ns", "review-w1")));
        // Until the relist is done, the index answers as the store does: from the old list.
        assert_eq!(run_names(&index, "ns", "review-w1"), ["gone"]);
        index.observe_run(&watcher::Event::InitDone);
        assert_eq!(run_names(&index, "ns", "review-w1"), ["kept"]);
    }

    #[test]
    fn runs_wait_for_a_reviewer_the_store_does_not_hold() {
        let index = ObservedIndex::default();
        assert!(!index.waits_for_reviewer("ns", "review-w1"), "no runs, nothing waits");
        index.observe_run(&watcher::Event::Apply(run("a", "ns", "review-w1")));
        assert!(index.waits_for_reviewer("ns", "review-w1"));
        index.observe_reviewer(&watcher::Event::Init);
        index.observe_reviewer(&watcher::Event::InitApply(reviewer("review-w1", "ns")));
        assert!(index.waits_for_reviewer("ns", "review-w1"), "not before the list is done");
        index.observe_reviewer(&watcher::Event::InitDone);
        assert!(!index.waits_for_reviewer("ns", "review-w1"));
        assert!(!index.waits_for_reviewer("other", "review-w1"), "no runs there");
        index.observe_reviewer(&watcher::Event::Delete(reviewer("review-w1", "ns")));
        assert!(index.waits_for_reviewer("ns", "review-w1"));
        index.observe_run(&watcher::Event::Delete(run("a", "ns", "review-w1")));
        assert!(!index.waits_for_reviewer("ns", "review-w1"));
    }
}
