//! The head SHA of each pull request, read from its runs as a history of
//! pushes.
//!
//! Runs are read in creation order. A run with `previousHeadSha` is a push
//! that says which commit it replaced; that lineage decides over creation
//! order:
//! - its previous head is the current head: its SHA becomes the head, even
//!   a SHA replaced before (a force-push back to an earlier commit);
//! - otherwise, if its SHA was already replaced, it is late (a replay), and
//!   its previous head counts as replaced too;
//! - otherwise, if its SHA is the head, nothing moves;
//! - otherwise its SHA becomes the head (the pushes in between were never
//!   seen). When its previous head had already been replaced by another
//!   commit, the history forked: two pushes claim the same parent. The one
//!   created later takes the head, and the run gets a Warning event.
//!
//! A run without lineage moves the head to its SHA unless that SHA was
//! already replaced (then it is late) or is the head. Cycles in the lineage
//! (B replaced A, then A replaced B) read as force-pushes in creation
//! order, so they end on the later push's commit.
//!
//! A run is the head's only if it was created since its SHA last became the
//! head: runs for that SHA from before a force-push away and back stay
//! outdated. Decisions written by earlier reconciles stay: a run already
//! marked outdated (`Current=False`, or failed as `Superseded`) is never
//! the head again. If the runs that moved the pull request on were deleted,
//! such a mark is the only trace left of a newer push: the history reads as
//! if a push of an unknown commit followed the marked run, and a later run
//! whose previous head is a commit no run shows is taken as a push onto it.
//!
//! Runs deleted after their TTL leave their commits in the kept run's
//! `status.replacedShas` ([`prune`](super::prune)): they count as replaced
//! before that run, and that run moves the head to its SHA, as it did when
//! they were there.

use std::collections::{BTreeMap, BTreeSet};

use crate::{CONDITION_CURRENT, ReviewRun, RunReason, conditions};

/// Where a run stands with respect to its pull request's head SHA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The run is for the head SHA.
    Head,
    /// The pull request moved to a newer SHA after this run was created.
    Stale { head_run: Option<String> },
    /// The run was created for a SHA the pull request had already moved
    /// past (a late or replayed push).
    Late { head_run: Option<String> },
}

/// A run whose lineage contradicts the history read so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Index into the runs given to [`read_history`].
    pub index: usize,
    pub message: String,
}

/// What the runs say of their pull requests' histories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Index-aligned with the runs.
    pub standings: Vec<Standing>,
    pub conflicts: Vec<Conflict>,
}

/// Reads `runs`, which must be in creation order.
pub fn read_history(runs: &[&ReviewRun]) -> History {
    let mut by_pr: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, run) in runs.iter().enumerate() {
        by_pr.entry(run.spec.pull_request.url.as_str()).or_default().push(index);
    }
    let mut history = History { standings: vec![Standing::Head; runs.len()], conflicts: Vec::new() };
    for indices in by_pr.values() {
        let pr: Vec<&ReviewRun> = indices.iter().map(|&i| runs[i]).collect();
        let walk = walk_with_marks(&pr);
        let head_run =
            walk.head.as_ref().filter(|head| head.sha.is_some()).and_then(|head| pr[head.start].metadata.name.clone());
        for (position, &index) in indices.iter().enumerate() {
            history.standings[index] = if walk.is_head(&pr, position) {
                Standing::Head
            } else if walk.late.contains(&position) {
                Standing::Late { head_run: head_run.clone() }
            } else {
                Standing::Stale { head_run: head_run.clone() }
            };
        }
        history.conflicts.extend(
            walk.conflicts.into_iter().map(|(position, message)| Conflict { index: indices[position], message }),
        );
    }
    history
}

/// Whether an earlier reconcile judged the run outdated.
pub fn marked_passed(run: &ReviewRun) -> bool {
    run.status.as_ref().is_some_and(|status| {
        status.reason == Some(RunReason::Superseded)
            || conditions::is(&status.conditions, CONDITION_CURRENT, conditions::FALSE)
    })
}

/// The head: its SHA (`None`: a commit no run shows) and the position of
/// the run that made it the head.
#[derive(Clone, Debug)]
struct Head<'a> {
    sha: Option<&'a str>,
    start: usize,
}

#[derive(Debug, Default)]
struct Walk<'a> {
    head: Option<Head<'a>>,
    late: BTreeSet<usize>,
    conflicts: Vec<(usize, String)>,
}

impl Walk<'_> {
    fn is_head(&self, pr: &[&ReviewRun], position: usize) -> bool {
        self.head.as_ref().is_some_and(|head| {
            position >= head.start && head.sha == Some(sha(pr[position])) && !self.late.contains(&position)
        })
    }
}

/// Walks one pull request's runs, adding a push of an unknown commit after
/// each marked run the walk would otherwise make the head's, until none is.
fn walk_with_marks<'a>(pr: &[&'a ReviewRun]) -> Walk<'a> {
    let mut unknown_pushes = BTreeSet::new();
    loop {
        let walk = walk(pr, &unknown_pushes);
        let contradicted =
            (0..pr.len()).filter(|&position| marked_passed(pr[position]) && walk.is_head(pr, position)).max();
        match contradicted {
            Some(position) if unknown_pushes.insert(position) => {}
            _ => return walk,
        }
    }
}

fn walk<'a>(pr: &[&'a ReviewRun], unknown_pushes: &BTreeSet<usize>) -> Walk<'a> {
    let mut result = Walk::default();
    let mut passed: BTreeSet<&str> = BTreeSet::new();
    let mut shown: BTreeSet<&str> = BTreeSet::new();
    // The commit that replaced each replaced one, for forks.
    let mut successor: BTreeMap<&str, &str> = BTreeMap::new();
    for (position, run) in pr.iter().enumerate() {
        let sha = sha(run);
        // Pushes told by deleted runs (see `prune`) happened before this
        // run, which made its SHA the head after them.
        let recorded = super::prune::replaced_shas(run);
        passed.extend(recorded.iter().copied().filter(|replaced| *replaced != sha));
        let previous = run.spec.pull_request.previous_head_sha.as_deref().filter(|previous| *previous != sha);
        let head_sha = result.head.as_ref().map(|head| head.sha);
        let onto_head = !recorded.is_empty()
            || previous.is_some_and(|previous| match head_sha {
                None => true,
                Some(Some(head)) => head == previous,
                // The unknown commit: any commit no run shows.
                Some(None) => !shown.contains(previous) && !passed.contains(previous),
            });
        let moves = if onto_head {
            true
        } else if head_sha == Some(Some(sha)) {
            false
        } else if passed.contains(sha) {
            result.late.insert(position);
            false
        } else {
            if let Some(previous) = previous
                && let Some(replaced_by) = successor.get(previous)
            {
                let message = format!(
                    "Lineage conflict: commit {} was already replaced by {}, and this run says {} replaced it; \
                     the run created later is taken as the newer push",
                    short(previous),
                    short(replaced_by),
                    short(sha)
                );
                result.conflicts.push((position, message));
            }
            true
        };
        if let Some(previous) = previous {
            passed.insert(previous);
            if moves {
                successor.insert(previous, sha);
            }
        }
        if moves {
            if let Some(Head { sha: Some(old), .. }) = result.head
                && old != sha
            {
                passed.insert(old);
                successor.insert(old, sha);
            }
            passed.remove(sha);
            result.head = Some(Head { sha: Some(sha), start: position });
        }
        shown.insert(sha);
        if unknown_pushes.contains(&position) {
            if let Some(Head { sha: Some(old), .. }) = result.head {
                passed.insert(old);
            }
            result.head = Some(Head { sha: None, start: position + 1 });
        }
    }
    result
}

fn sha(run: &ReviewRun) -> &str {
    &run.spec.pull_request.head_sha
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReviewRunStatus;
    use crate::testing::{PR1, PR2, SHA_A, SHA_B, SHA_C, SHA_X, new_run};

    /// A run for `sha` pushed onto `previous`; tests give runs in creation order.
    fn push(name: &str, sha: &str, previous: Option<&str>) -> ReviewRun {
        let mut run = new_run(name, PR1, sha, 0);
        run.spec.pull_request.previous_head_sha = previous.map(str::to_owned);
        run
    }

    fn marked(mut run: ReviewRun) -> ReviewRun {
        run.status = Some(ReviewRunStatus { reason: Some(RunReason::Superseded), ..ReviewRunStatus::default() });
        run
    }

    /// Standings of runs given in creation order.
    fn read(runs: &[ReviewRun]) -> History {
        read_history(&runs.iter().collect::<Vec<_>>())
    }

    fn stale(head: &str) -> Standing {
        Standing::Stale { head_run: Some(head.into()) }
    }

    fn late(head: &str) -> Standing {
        Standing::Late { head_run: Some(head.into()) }
    }

    #[test]
    fn without_lineage_the_last_created_new_sha_is_the_head() {
        let history = read(&[push("r1", SHA_A, None), push("r2", SHA_B, None), push("r3", SHA_A, None)]);
        assert_eq!(history.standings, [stale("r2"), Standing::Head, late("r2")]);
        assert!(history.conflicts.is_empty());
    }

    #[test]
    fn lineage_overrides_creation_order() {
        // The push of C onto B was created before the push of B onto A.
        let history = read(&[push("r1", SHA_C, Some(SHA_B)), push("r2", SHA_B, Some(SHA_A))]);
        assert_eq!(history.standings, [Standing::Head, late("r1")]);
    }

    #[test]
    fn what_a_replaced_commit_had_replaced_is_replaced_too() {
        let runs = [push("r1", SHA_C, Some(SHA_B)), push("r2", SHA_B, Some(SHA_A)), push("r3", SHA_A, None)];
        assert_eq!(read(&runs).standings, [Standing::Head, late("r1"), late("r1")]);
    }

    #[test]
    fn a_replayed_push_with_its_lineage_is_late() {
        let runs = [
            push("r1", SHA_A, None),
            push("r2", SHA_B, Some(SHA_A)),
            push("r3", SHA_C, Some(SHA_B)),
            push("r4", SHA_B, Some(SHA_A)),
        ];
        assert_eq!(read(&runs).standings, [stale("r3"), stale("r3"), Standing::Head, late("r3")]);
    }

    #[test]
    fn a_force_push_back_makes_the_earlier_commit_the_head_with_a_run_of_its_own() {
        let runs = [push("r1", SHA_A, None), push("r2", SHA_B, Some(SHA_A)), push("r3", SHA_A, Some(SHA_B))];
        let history = read(&runs);
        assert_eq!(history.standings, [stale("r3"), stale("r3"), Standing::Head]);
        assert!(history.conflicts.is_empty(), "a force-push back is no conflict");
        // Without lineage the same SHA is a replay.
        let runs = [push("r1", SHA_A, None), push("r2", SHA_B, Some(SHA_A)), push("r3", SHA_A, None)];
        assert_eq!(read(&runs).standings, [stale("r2"), Standing::Head, late("r2")]);
    }

    #[test]
    fn a_cycle_reads_as_force_pushes_in_creation_order() {
        let runs = [push("r1", SHA_A, Some(SHA_B)), push("r2", SHA_B, Some(SHA_A))];
        let history = read(&runs);
        assert_eq!(history.standings, [stale("r2"), Standing::Head]);
        assert!(history.conflicts.is_empty());
    }

    #[test]
    fn two_children_of_one_commit_the_later_created_wins_with_a_conflict() {
        let runs = [push("r1", SHA_A, None), push("r2", SHA_B, Some(SHA_A)), push("r3", SHA_C, Some(SHA_A))];
        let history = read(&runs);
        assert_eq!(history.standings, [stale("r3"), stale("r3"), Standing::Head]);
        assert_eq!(history.conflicts.len(), 1);
        assert_eq!(history.conflicts[0].index, 2);
        assert!(
            history.conflicts[0].message.contains("aaaaaaa was already replaced by bbbbbbb"),
            "{:?}",
            history.conflicts
        );
        // A child of a commit replaced without lineage conflicts the same way.
        let runs = [push("r1", SHA_A, None), push("r2", SHA_B, None), push("r3", SHA_C, Some(SHA_A))];
        let history = read(&runs);
        assert_eq!(history.standings, [stale("r3"), stale("r3"), Standing::Head]);
        assert_eq!(history.conflicts.len(), 1);
    }

    #[test]
    fn a_previous_head_no_run_shows_is_a_push_whose_predecessors_were_missed() {
        let runs = [push("r1", SHA_A, None), push("r2", SHA_C, Some(SHA_X))];
        let history = read(&runs);
        assert_eq!(history.standings, [stale("r2"), Standing::Head]);
        assert!(history.conflicts.is_empty());
        // ... and the missed commit counts as replaced.
        let runs = [push("r1", SHA_A, None), push("r2", SHA_C, Some(SHA_X)), push("r3", SHA_X, None)];
        assert_eq!(read(&runs).standings, [stale("r2"), Standing::Head, late("r2")]);
    }

    #[test]
    fn a_re_trigger_of_the_head_with_lineage_moves_nothing() {
        let runs = [push("r1", SHA_A, None), push("r2", SHA_B, Some(SHA_A)), push("r3", SHA_B, Some(SHA_A))];
        assert_eq!(read(&runs).standings, [stale("r2"), Standing::Head, Standing::Head]);
    }

    #[test]
    fn a_marked_run_is_never_the_head_again() {
        // The run that moved the pull request past A was deleted.
        let runs = [marked(push("r1", SHA_A, None)), push("r2", SHA_A, None)];
        assert_eq!(read(&runs).standings, [Standing::Stale { head_run: None }, Standing::Late { head_run: None }]);
        // A new commit still becomes the head.
        let runs = [marked(push("r1", SHA_A, None)), push("r2", SHA_C, None)];
        assert_eq!(read(&runs).standings, [stale("r2"), Standing::Head]);
        // A return to A onto the commit no run shows any more is a push onto the unknown head.
        let runs = [marked(push("r1", SHA_A, None)), push("r2", SHA_A, Some(SHA_B))];
        assert_eq!(read(&runs).standings, [stale("r2"), Standing::Head]);
        // Marks the walk agrees with change nothing.
        let runs = [marked(push("r1", SHA_A, None)), push("r2", SHA_B, Some(SHA_A))];
        assert_eq!(read(&runs).standings, [stale("r2"), Standing::Head]);
    }

    #[test]
    fn pull_requests_are_read_separately() {
        let mut other = push("r2", SHA_B, None);
        other.spec.pull_request.url = PR2.into();
        let runs = [push("r1", SHA_A, None), other, push("r3", SHA_C, Some(SHA_A))];
        assert_eq!(read(&runs).standings, [stale("r3"), Standing::Head, Standing::Head]);
    }
}
