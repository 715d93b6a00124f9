//! Never plan on a cache older than the controller's own writes.
//!
//! The reflector stores the controller plans from lag behind the API
//! server. Right after a reconcile deleted a pod and created the next one, a
//! store may still show the old pod alive and the new one missing; planning
//! on it would replace the pod again and count a second restart.
//!
//! Each write returns the object's new `resourceVersion`. An [`Entry`]
//! remembers, per Reviewer, the highest version written to each resource,
//! and [`StoreProgress`] knows how far each store has caught up (the highest version
//! among the watch events it applied; watch events arrive in version order).
//! A reconcile whose Reviewer has writes the stores have not seen yet waits
//! for them: the watch event of the write triggers the next reconcile anyway.
//!
//! Versions are compared as numbers, which holds for etcd revisions (real
//! clusters) and for the dev cluster's revision counter, though the API
//! calls them opaque. A write whose version is not a number is not waited
//! for, and no wait outlasts [`CACHE_WAIT_LIMIT`] (a store that relisted
//! after its object was deleted never sees that version), after which the
//! controller plans on what it has, as before; the `resourceVersion`
//! preconditions of status writes still keep it from overwriting newer data.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::Resource;
use kube::runtime::watcher;

use super::executor::{WriteMarks, numeric};

/// The longest a reconcile waits for the stores to show its own writes.
pub const CACHE_WAIT_LIMIT: Duration = Duration::from_secs(10);

/// How far one reflector store has caught up.
#[derive(Debug, Default)]
pub struct CacheProgress {
    applied: AtomicU64,
    /// Highest version of a relist in progress; the store swaps in the
    /// relisted objects only when the relist is done.
    relisting: AtomicU64,
    /// The store has completed its first list.
    synced: AtomicBool,
}

impl CacheProgress {
    /// Records a watch event the store has applied.
    pub fn observe<K: Resource>(&self, event: &watcher::Event<K>) {
        let version = |object: &K| object.meta().resource_version.as_deref().map_or(0, numeric);
        match event {
            watcher::Event::Apply(object) | watcher::Event::Delete(object) => {
                self.applied.fetch_max(version(object), Ordering::AcqRel);
            }
            watcher::Event::Init => self.relisting.store(0, Ordering::Release),
            watcher::Event::InitApply(object) => {
                self.relisting.fetch_max(version(object), Ordering::AcqRel);
            }
            watcher::Event::InitDone => {
                self.applied.fetch_max(self.relisting.load(Ordering::Acquire), Ordering::AcqRel);
                self.synced.store(true, Ordering::Release);
            }
        }
    }

    /// Whether the store has completed its first list.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// The highest version the store has applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }
}

/// Progress of the three stores the controller plans from.
#[derive(Debug, Default)]
pub struct StoreProgress {
    pub reviewers: CacheProgress,
    pub runs: CacheProgress,
    pub pods: CacheProgress,
    /// Woken whenever a store applied an event, for [`StoreProgress::wait_until_synced`].
    advanced: tokio::sync::Notify,
}

impl StoreProgress {
    /// Records a watch event the store of `progress` has applied, and wakes
    /// the reconciles waiting for the stores to catch up.
    pub fn observe<K: Resource>(&self, progress: fn(&StoreProgress) -> &CacheProgress, event: &watcher::Event<K>) {
        progress(self).observe(event);
        self.advanced.notify_waiters();
    }

    /// Whether every store has completed its first list.
    pub fn synced(&self) -> bool {
        self.reviewers.synced() && self.runs.synced() && self.pods.synced()
    }

    /// Waits until every store has completed its first list, at most
    /// `limit`; whether they have.
    ///
    /// The controller runtime waits only for the Reviewer store. Planning
    /// while the run store is still listing would see a Reviewer without
    /// runs and launch its pod with an empty queue; the run events of the
    /// list arrive before the store swaps them in, so nothing would trigger
    /// the Reviewer again.
    pub async fn wait_until_synced(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let advanced = self.advanced.notified();
            let mut advanced = std::pin::pin!(advanced);
            // Registered before the check, so an event applied in between still wakes us.
            advanced.as_mut().enable();
            if self.synced() {
                return true;
            }
            if tokio::time::timeout_at(deadline, advanced).await.is_err() {
                return self.synced();
            }
        }
    }

    /// Whether every store has applied the versions in `written`.
    pub fn have_seen(&self, written: &WriteMarks) -> bool {
        self.reviewers.applied() >= written.reviewers
            && self.runs.applied() >= written.runs
            && self.pods.applied() >= written.pods
    }
}

/// Per-Reviewer bookkeeping of the controller.
#[derive(Debug, Default)]
pub struct Entry {
    /// Serialises work on one Reviewer between the controller runtime and
    /// the path for runs whose Reviewer does not exist.
    pub lock: tokio::sync::Mutex<()>,
    pending: Mutex<Option<(WriteMarks, Instant)>>,
    /// Consecutive failed reconciles, for the back-off.
    pub failures: AtomicU32,
}

impl Entry {
    /// Remembers the versions of writes just made.
    pub fn record(&self, written: WriteMarks) {
        if written.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let mut merged = pending.map(|(previous, _)| previous).unwrap_or_default();
        merged.merge(written);
        *pending = Some((merged, Instant::now()));
    }

    /// Whether the stores still lack this Reviewer's latest writes (and the
    /// wait has not exceeded [`CACHE_WAIT_LIMIT`]). Forgets the writes once
    /// seen or given up on.
    pub fn must_wait(&self, stores: &StoreProgress) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((written, since)) = *pending else { return false };
        if stores.have_seen(&written) {
            *pending = None;
            return false;
        }
        if since.elapsed() >= CACHE_WAIT_LIMIT {
            tracing::warn!(?written, "caches did not show the controller's writes in time; planning anyway");
            *pending = None;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::sync::Arc;

    fn pod(version: &str) -> Pod {
        Pod {
            metadata: ObjectMeta { resource_version: Some(version.into()), ..ObjectMeta::default() },
            ..Pod::default()
        }
    }

    #[test]
    fn progress_follows_applied_events_and_completed_relists() {
        let progress = CacheProgress::default();
        progress.observe(&watcher::Event::Apply(pod("7")));
        progress.observe(&watcher::Event::Delete(pod("5")));
        assert_eq!(progress.applied(), 7);
        progress.observe(&watcher::Event::<Pod>::Init);
        progress.observe(&watcher::Event::InitApply(pod("12")));
        // The store still holds the old objects until the relist is done.
        assert_eq!(progress.applied(), 7);
        progress.observe(&watcher::Event::<Pod>::InitDone);
        assert_eq!(progress.applied(), 12);
    }

    #[test]
    fn entry_waits_until_every_store_has_seen_its_writes() {
        let stores = StoreProgress::default();
        let entry = Entry::default();
        assert!(!entry.must_wait(&stores));
        entry.record(WriteMarks { reviewers: 3, runs: 5, pods: 4 });
        stores.runs.observe(&watcher::Event::Apply(pod("5")));
        stores.reviewers.observe(&watcher::Event::Apply(pod("3")));
        assert!(entry.must_wait(&stores), "the pod store has not seen version 4");
        stores.pods.observe(&watcher::Event::Apply(pod("6")));
        assert!(!entry.must_wait(&stores));
        // Forgotten once seen.
        assert!(!entry.must_wait(&StoreProgress::default()));
    }

    #[test]
    fn entry_gives_up_after_the_limit() {
        let entry = Entry::default();
        entry.record(WriteMarks { reviewers: 0, runs: 0, pods: 9 });
        let stale = Instant::now().checked_sub(CACHE_WAIT_LIMIT).expect("monotonic clock is past the limit");
        if let Some((_, since)) = entry.pending.lock().unwrap().as_mut() {
            *since = stale;
        }
        assert!(!entry.must_wait(&StoreProgress::default()));
    }

    #[tokio::test]
    async fn waiting_for_the_first_lists_ends_when_every_store_is_synced_or_at_the_limit() {
        let stores = Arc::new(StoreProgress::default());
        assert!(!stores.wait_until_synced(Duration::from_millis(20)).await, "nothing listed");

        let waiter = tokio::spawn({
            let stores = stores.clone();
            async move { stores.wait_until_synced(Duration::from_secs(60)).await }
        });
        stores.observe(|c| &c.reviewers, &watcher::Event::<Pod>::InitDone);
        stores.observe(|c| &c.pods, &watcher::Event::<Pod>::Init);
        stores.observe(|c| &c.pods, &watcher::Event::InitApply(pod("3")));
        stores.observe(|c| &c.pods, &watcher::Event::<Pod>::InitDone);
        assert!(!stores.synced(), "the run store is still listing");
        stores.observe(|c| &c.runs, &watcher::Event::<Pod>::Init);
        stores.observe(|c| &c.runs, &watcher::Event::<Pod>::InitDone);
        assert!(waiter.await.expect("waiter"), "every store listed");
        // A later relist does not make the stores unsynced.
        stores.observe(|c| &c.runs, &watcher::Event::<Pod>::Init);
        assert!(stores.synced());
    }
}
