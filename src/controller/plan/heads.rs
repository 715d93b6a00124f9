//! Rule 1: the head SHA of each pull request.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{CONDITION_CURRENT, ReviewRun, RunReason, conditions};

/// Where a run stands with respect to its pull request's head SHA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Standing {
    /// The run is for the head SHA.
    Head,
    /// The pull request moved to a newer SHA after this run was created.
    Stale { head_run: Option<String> },
    /// The run was created for a SHA the pull request had already moved
    /// past (a late or replayed webhook).
    Late { head_run: Option<String> },
}

/// The standing of every run; `runs` must be in creation order and the
/// result is index-aligned with it.
///
/// Walking each pull request's runs in creation order, a run whose SHA
/// differs from the current head makes it the new head and marks the old one
/// as passed, unless its own SHA was passed already: then it is late. SHAs
/// that earlier reconciles marked as passed (a run with `Current=False` or
/// reason `Superseded`) stay passed even after the runs that moved the pull
/// request on were deleted.
pub(super) fn standings(runs: &[&ReviewRun]) -> Vec<Standing> {
    let mut by_pr: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, run) in runs.iter().enumerate() {
        by_pr.entry(run.spec.pull_request.url.as_str()).or_default().push(index);
    }
    let mut result = vec![Standing::Head; runs.len()];
    for indices in by_pr.values() {
        let mut passed: BTreeSet<&str> =
            indices.iter().map(|&i| runs[i]).filter(|run| marked_passed(run)).map(sha).collect();
        let mut head: Option<&str> = None;
        let mut late = BTreeSet::new();
        for &index in indices {
            let sha = sha(runs[index]);
            if passed.contains(sha) {
                late.insert(index);
            } else if head != Some(sha) {
                if let Some(previous) = head {
                    passed.insert(previous);
                }
                head = Some(sha);
            }
        }
        // The run that introduced the head SHA is the one others point at.
        let head_run = head
            .and_then(|head| indices.iter().map(|&i| runs[i]).find(|run| sha(run) == head))
            .and_then(|run| run.metadata.name.clone());
        for &index in indices {
            result[index] = if Some(sha(runs[index])) == head {
                Standing::Head
            } else if late.contains(&index) {
                Standing::Late { head_run: head_run.clone() }
            } else {
                Standing::Stale { head_run: head_run.clone() }
            };
        }
    }
    result
}

fn sha(run: &ReviewRun) -> &str {
    &run.spec.pull_request.head_sha
}

fn marked_passed(run: &ReviewRun) -> bool {
    run.status.as_ref().is_some_and(|status| {
        status.reason == Some(RunReason::Superseded)
            || conditions::is(&status.conditions, CONDITION_CURRENT, conditions::FALSE)
    })
}
