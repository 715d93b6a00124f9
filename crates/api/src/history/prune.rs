//! Deleting finished runs without forgetting the pushes they told of.
//!
//! A run is the history's only record that its commit, and the commit it
//! replaced, were pushed. Deleting it could make a late replay of either
//! look like a new push. So, per pull request, one run is kept whatever its
//! age: the run that made the head SHA the head (or, when no run is the
//! head's, the last one created, which carries the marks of a newer push),
//! and the commits the deleted runs knew as pushed are first recorded in
//! its `status.replacedShas`. [`read_history`](super::heads::read_history)
//! counts them as replaced before that run, which then moves the head to
//! its SHA as it did. The runs created before the kept one go only together,
//! when all have expired: a run left among them would be read without the
//! pushes before it. The runs after it moved nothing and go one by one.

use std::collections::{BTreeMap, BTreeSet};

use super::heads::Standing;
use crate::ReviewRun;

/// What deleting the expired runs of one Reviewer takes.
#[derive(Debug, Default, PartialEq)]
pub struct Pruning<'a> {
    /// Kept runs whose `status.replacedShas` must grow before any deletion,
    /// with the whole new list (sorted).
    pub records: Vec<(&'a ReviewRun, Vec<String>)>,
    /// Runs to delete once the records are written.
    pub deletions: Vec<&'a ReviewRun>,
}

/// Plans the deletion of the runs `expired` accepts. `runs` are in creation
/// order with their `standings` (index-aligned), as
/// [`ordered_history`](super::ordered_history) returns them.
pub fn plan_pruning<'a>(
    runs: &[&'a ReviewRun],
    standings: &[Standing],
    expired: impl Fn(&ReviewRun) -> bool,
) -> Pruning<'a> {
    let mut by_pr: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, run) in runs.iter().enumerate() {
        by_pr.entry(run.spec.pull_request.url.as_str()).or_default().push(index);
    }
    let mut pruning = Pruning::default();
    for indices in by_pr.values() {
        let head = indices.iter().position(|&index| standings.get(index) == Some(&Standing::Head));
        let Some(kept) = head.or_else(|| indices.len().checked_sub(1)) else { continue };
        let pr: Vec<&ReviewRun> = indices.iter().map(|&index| runs[index]).collect();
        let (before, after) = (&pr[..kept], &pr[kept + 1..]);
        // Runs after the kept one moved nothing; runs before it go only all
        // at once, so that no run is left to be read without the commits
        // replaced before it.
        let mut deletions: Vec<&ReviewRun> =
            if before.iter().all(|run| expired(run)) { before.to_vec() } else { Vec::new() };
        deletions.extend(after.iter().copied().filter(|run| expired(run)));
        let kept = pr[kept];
        if deletions.is_empty() {
            continue;
        }
        let recorded = replaced_shas(kept);
        let mut replaced: BTreeSet<&str> = recorded.iter().copied().collect();
        for run in &deletions {
            let pull_request = &run.spec.pull_request;
            replaced.insert(&pull_request.head_sha);
            replaced.extend(pull_request.previous_head_sha.as_deref());
            replaced.extend(replaced_shas(run));
        }
        replaced.remove(kept.spec.pull_request.head_sha.as_str());
        if replaced.len() > recorded.len() {
            pruning.records.push((kept, replaced.into_iter().map(str::to_owned).collect()));
        }
        pruning.deletions.extend(deletions);
    }
    pruning
}

/// The commits a run records as replaced before it.
pub fn replaced_shas(run: &ReviewRun) -> Vec<&str> {
    run.status.iter().flat_map(|status| status.replaced_shas.iter().map(String::as_str)).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::heads::{marked_passed, read_history};
    use super::*;
    use crate::testing::{PR1, PR2, SHA_A, SHA_B, SHA_C, SHA_X, new_run};
    use crate::{ReviewRunStatus, RunReason};

    fn push(name: &str, pr: &str, sha: &str, previous: Option<&str>) -> ReviewRun {
        let mut run = new_run(name, pr, sha, 0);
        run.spec.pull_request.previous_head_sha = previous.map(str::to_owned);
        run
    }

    fn standings(runs: &[ReviewRun]) -> Vec<Standing> {
        read_history(&runs.iter().collect::<Vec<_>>()).standings
    }

    /// `runs` after carrying out `pruning`: records written, deletions gone.
    fn pruned(runs: &[ReviewRun], pruning: &Pruning<'_>) -> Vec<ReviewRun> {
        let deleted: BTreeSet<&str> =
            pruning.deletions.iter().map(|run| run.metadata.name.as_deref().unwrap()).collect();
        runs.iter()
            .filter(|run| !deleted.contains(run.metadata.name.as_deref().unwrap()))
            .map(|run| {
                let mut run = run.clone();
                if let Some((_, shas)) =
                    pruning.records.iter().find(|(kept, _)| kept.metadata.name == run.metadata.name)
                {
                    run.status.get_or_insert_with(ReviewRunStatus::default).replaced_shas = shas.clone();
                }
                run
            })
            .collect()
    }

    fn prune_all(runs: &[ReviewRun]) -> Vec<ReviewRun> {
        let refs: Vec<&ReviewRun> = runs.iter().collect();
        let pruning = plan_pruning(&refs, &standings(runs), |_| true);
        pruned(runs, &pruning)
    }

    #[test]
    fn the_run_that_made_the_head_is_kept_with_the_commits_the_others_replaced() {
        let runs = [
            push("r1", PR1, SHA_A, None),
            push("r2", PR1, SHA_B, Some(SHA_A)),
            push("r3", PR1, SHA_C, Some(SHA_B)),
            push("r4", PR1, SHA_C, Some(SHA_B)),
            push("r5", PR1, SHA_A, None),
        ];
        let refs: Vec<&ReviewRun> = runs.iter().collect();
        let pruning = plan_pruning(&refs, &standings(&runs), |_| true);
        let names = |list: &[&ReviewRun]| list.iter().map(|r| r.metadata.name.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(names(&pruning.deletions), ["r1", "r2", "r4", "r5"], "r3 made C the head");
        assert_eq!(pruning.records.len(), 1);
        assert_eq!(pruning.records[0].0.metadata.name.as_deref(), Some("r3"));
        assert_eq!(pruning.records[0].1, [SHA_A, SHA_B]);
    }

    #[test]
    fn unexpired_runs_stay_and_nothing_is_recorded_when_nothing_goes() {
        let runs = [push("r1", PR1, SHA_A, None), push("r2", PR1, SHA_B, Some(SHA_A))];
        let refs: Vec<&ReviewRun> = runs.iter().collect();
        assert_eq!(plan_pruning(&refs, &standings(&runs), |_| false), Pruning::default());
        // A record already holding every commit is not written again.
        let mut again = runs.clone();
        again[1].status = Some(ReviewRunStatus { replaced_shas: vec![SHA_A.into()], ..ReviewRunStatus::default() });
        let refs: Vec<&ReviewRun> = again.iter().collect();
        let pruning = plan_pruning(&refs, &standings(&again), |_| true);
        assert!(pruning.records.is_empty(), "{pruning:?}");
        assert_eq!(pruning.deletions.len(), 1);
    }

    #[test]
    fn a_pull_request_without_a_head_run_keeps_its_last_run() {
        let mut marked = push("r2", PR1, SHA_B, Some(SHA_A));
        marked.status = Some(ReviewRunStatus { reason: Some(RunReason::Superseded), ..ReviewRunStatus::default() });
        let runs = [push("r1", PR1, SHA_A, None), marked, push("r3", PR2, SHA_X, None)];
        let after = prune_all(&runs);
        let names: Vec<_> = after.iter().map(|r| r.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["r2", "r3"]);
        assert!(marked_passed(&after[0]));
        assert_eq!(after[0].status.as_ref().unwrap().replaced_shas, [SHA_A]);
        // A replay of the deleted push is still late.
        let mut replay = after.clone();
        replay.push(push("r4", PR1, SHA_A, None));
        assert!(matches!(standings(&replay)[2], Standing::Late { .. }));
    }

    /// One generated push: a commit out of a few, with or without lineage.
    fn arb_push() -> impl Strategy<Value = (usize, Option<usize>, bool)> {
        (0..4usize, proptest::option::of(0..4usize), any::<bool>())
    }

    const SHAS: [&str; 4] = [SHA_A, SHA_B, SHA_C, SHA_X];

    fn run_of(index: usize, (sha, previous, other_pr): (usize, Option<usize>, bool)) -> ReviewRun {
        let pr = if other_pr { PR2 } else { PR1 };
        push(&format!("r{index}"), pr, SHAS[sha], previous.map(|p| SHAS[p]))
    }

    /// Marks the runs the history reads as not the head's, as the
    /// controller does; a mark stays.
    fn mark(runs: &mut [ReviewRun]) {
        let read = standings(runs);
        for (run, standing) in runs.iter_mut().zip(read) {
            if standing != Standing::Head {
                run.status.get_or_insert_with(ReviewRunStatus::default).reason = Some(RunReason::Superseded);
            }
        }
    }

    fn is_head(runs: &[ReviewRun]) -> Vec<(String, bool)> {
        runs.iter()
            .zip(standings(runs))
            .map(|(run, standing)| (run.metadata.name.clone().unwrap(), standing == Standing::Head))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Rounds of pushes, each followed by the deletion of whichever
        /// runs the round's mask expires: every later push reads as it
        /// would have without deletions, and so do the runs kept.
        #[test]
        fn pruning_never_changes_what_a_later_push_means(
            rounds in proptest::collection::vec((proptest::collection::vec(arb_push(), 1..6), any::<u16>()), 1..4),
            next in arb_push(),
        ) {
            let (mut all, mut kept) = (Vec::new(), Vec::new());
            for (pushes, expired_mask) in rounds {
                for push in pushes {
                    let run = run_of(all.len(), push);
                    all.push(run.clone());
                    kept.push(run);
                }
                mark(&mut all);
                mark(&mut kept);
                let refs: Vec<&ReviewRun> = kept.iter().collect();
                let pruning = plan_pruning(&refs, &standings(&kept), |run| {
                    let index: usize = run.metadata.name.as_deref().unwrap()[1..].parse().unwrap();
                    expired_mask & (1 << (index % 16)) != 0
                });
                kept = pruned(&kept, &pruning);
            }
            let next = run_of(99, next);
            all.push(next.clone());
            kept.push(next);
            prop_assert_eq!(standings(&all).pop(), standings(&kept).pop(), "the later push");
            let names: BTreeSet<String> = kept.iter().map(|run| run.metadata.name.clone().unwrap()).collect();
            let mut expected = is_head(&all);
            expected.retain(|(name, _)| names.contains(name));
            prop_assert_eq!(expected, is_head(&kept), "which kept runs are the head's");
        }
    }
}
