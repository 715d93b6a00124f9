//! ReviewRuns by the Reviewer they name.
//!
//! A reconcile plans one Reviewer from its runs. Scanning the whole run
//! store for them costs every reconcile time proportional to all runs of
//! the cluster; the index, kept from the same watch events as the store,
//! makes it proportional to the Reviewer's own runs. `spec.reviewer` is
//! immutable, so a run never moves between Reviewers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use kube::ResourceExt;
use kube::runtime::watcher;

use crate::api::ReviewRun;

/// Namespace and name of a Reviewer.
type ReviewerKey = (String, String);

#[derive(Debug, Default)]
struct Names {
    live: HashMap<ReviewerKey, BTreeSet<String>>,
    /// A relist in progress; swapped in when it is done, as the store does.
    relisting: HashMap<ReviewerKey, BTreeSet<String>>,
}

/// Names of the runs naming each Reviewer, as far as the run store has seen.
#[derive(Debug, Default)]
pub struct RunIndex {
    names: Mutex<Names>,
}

fn reviewer_of(run: &ReviewRun) -> ReviewerKey {
    (run.namespace().unwrap_or_default(), run.spec.reviewer.clone())
}

impl RunIndex {
    /// Records a watch event of the run store.
    pub fn observe(&self, event: &watcher::Event<ReviewRun>) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(run) => {
                names.live.entry(reviewer_of(run)).or_default().insert(run.name_any());
            }
            watcher::Event::Delete(run) => {
                let key = reviewer_of(run);
                if let Some(runs) = names.live.get_mut(&key) {
                    runs.remove(&run.name_any());
                    if runs.is_empty() {
                        names.live.remove(&key);
                    }
                }
            }
            watcher::Event::Init => names.relisting = HashMap::new(),
            watcher::Event::InitApply(run) => {
                names.relisting.entry(reviewer_of(run)).or_default().insert(run.name_any());
            }
            watcher::Event::InitDone => names.live = std::mem::take(&mut names.relisting),
        }
    }

    /// Names of the runs in `namespace` naming the Reviewer `reviewer`.
    pub fn runs_of(&self, namespace: &str, reviewer: &str) -> Vec<String> {
        let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        names
            .live
            .get(&(namespace.to_owned(), reviewer.to_owned()))
            .map(|runs| runs.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PullRequest, ReviewRunSpec};

    fn run(name: &str, namespace: &str, reviewer: &str) -> ReviewRun {
        let mut run = ReviewRun::new(
            name,
            ReviewRunSpec {
                reviewer: reviewer.into(),
                pull_request: PullRequest::new("https://github.com/o/r/pull/1", "abcdef0"),
                cancel_requested: false,
                timeout: "1h".into(),
            },
        );
        run.metadata.namespace = Some(namespace.into());
        run
    }

    #[test]
    fn runs_are_indexed_by_namespace_and_reviewer() {
        let index = RunIndex::default();
        index.observe(&watcher::Event::Apply(run("b", "ns", "review-w1")));
        index.observe(&watcher::Event::Apply(run("a", "ns", "review-w1")));
        index.observe(&watcher::Event::Apply(run("c", "ns", "review-w2")));
        index.observe(&watcher::Event::Apply(run("d", "other", "review-w1")));
        // A second event for the same run keeps one entry.
        index.observe(&watcher::Event::Apply(run("a", "ns", "review-w1")));
        assert_eq!(index.runs_of("ns", "review-w1"), ["a", "b"]);
        assert_eq!(index.runs_of("ns", "review-w2"), ["c"]);
        assert_eq!(index.runs_of("other", "review-w1"), ["d"]);
        assert!(index.runs_of("ns", "review-w3").is_empty());

        index.observe(&watcher::Event::Delete(run("b", "ns", "review-w1")));
        index.observe(&watcher::Event::Delete(run("c", "ns", "review-w2")));
        assert_eq!(index.runs_of("ns", "review-w1"), ["a"]);
        assert!(index.runs_of("ns", "review-w2").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_is_done() {
        let index = RunIndex::default();
        index.observe(&watcher::Event::Apply(run("gone", "ns", "review-w1")));
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(run("kept", "ns", "review-w1")));
        // Until the relist is done, the index answers as the store does: from the old list.
        assert_eq!(index.runs_of("ns", "review-w1"), ["gone"]);
        index.observe(&watcher::Event::InitDone);
        assert_eq!(index.runs_of("ns", "review-w1"), ["kept"]);
    }
}
