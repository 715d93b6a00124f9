//! The order in which runs were created.
//!
//! `creationTimestamp` has one-second resolution, so it orders only runs
//! created in different seconds. Within one second the API server's order
//! decides: the run's `resourceVersion` at creation, which the API server
//! takes from one increasing sequence (etcd's revision, comparable within a
//! resource since Kubernetes 1.35). Every later write changes
//! `metadata.resourceVersion`, so the controller records the creation's in
//! `status.creationRevision` with the run's first status, and the order is
//! the same for a controller that starts after the runs exist.
//!
//! A run written by another client before the controller first saw it (a
//! bot adding a label) no longer shows its creation's version, and a server
//! whose versions are not integers gives nothing to compare. Runs of one
//! pull request created in the same second are then ordered by what the
//! controller already did with them, so that a Running run is never failed
//! for one that was not, then by UID, and say so in `Ordered=False`.
//! Names never decide.

use std::collections::BTreeMap;

use crate::{ReviewRun, RunPhase};

use super::heads;

/// What is known of a run's place among the runs created in its second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revision {
    /// The `resourceVersion` of the creation.
    Known(u64),
    /// The `resourceVersion` is not a decimal integer.
    NotComparable,
    /// Another client wrote the run before the controller first saw it.
    ModifiedBeforeObserved,
}

impl Revision {
    pub fn of(run: &ReviewRun) -> Self {
        let observed = run.metadata.resource_version.as_deref().unwrap_or_default();
        if observed.parse::<u64>().is_err() {
            return Self::NotComparable;
        }
        let recorded = run.status.as_ref().and_then(|status| status.creation_revision.as_deref());
        let version = match recorded {
            Some(version) => version,
            None if unchanged_since_creation(run) => run.metadata.resource_version.as_deref().unwrap_or_default(),
            None => return Self::ModifiedBeforeObserved,
        };
        version.parse().map_or(Self::NotComparable, Self::Known)
    }

    fn uncertainty(self) -> Option<Uncertainty> {
        match self {
            Self::Known(_) => None,
            Self::NotComparable => Some(Uncertainty::NotComparable),
            Self::ModifiedBeforeObserved => Some(Uncertainty::ModifiedBeforeObserved),
        }
    }
}

/// Why runs of one pull request created in the same second could not be
/// ordered by the API server's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Uncertainty {
    ModifiedBeforeObserved,
    /// Said over the other: nothing would be comparable on this server.
    NotComparable,
}

impl Uncertainty {
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotComparable => "ResourceVersionNotComparable",
            Self::ModifiedBeforeObserved => "ModifiedBeforeObserved",
        }
    }

    pub fn message(self) -> String {
        let why = match self {
            Self::NotComparable => "the API server's resourceVersions are not comparable integers",
            Self::ModifiedBeforeObserved => {
                "a run of that second was written by another client before the controller first saw it"
            }
        };
        format!(
            "Another run of this pull request was created in the same second and {why}; runs of that second are \
             ordered by progress (a Running run is never failed for one that was not), then by UID"
        )
    }
}

/// The `resourceVersion` to record in `status.creationRevision`: the
/// observed one, while it is still the creation's.
pub fn revision_to_record(run: &ReviewRun) -> Option<String> {
    let recorded = run.status.as_ref().and_then(|status| status.creation_revision.as_ref());
    if recorded.is_some() || !unchanged_since_creation(run) {
        return None;
    }
    let version = run.metadata.resource_version.as_ref()?;
    version.parse::<u64>().is_ok().then(|| version.clone())
}

/// Sorts `runs` into creation order; each comes with the reason its place
/// within its second is uncertain, if it is.
pub fn creation_order(runs: Vec<&ReviewRun>) -> Vec<(&ReviewRun, Option<Uncertainty>)> {
    let second = |run: &ReviewRun| run.metadata.creation_timestamp.as_ref().map_or(i64::MIN, |t| t.0.as_second());
    let mut groups: BTreeMap<(&str, i64), (usize, Option<Uncertainty>)> = BTreeMap::new();
    for run in &runs {
        let group = groups.entry((run.spec.pull_request.url.as_str(), second(run))).or_default();
        group.0 += 1;
        group.1 = group.1.max(Revision::of(run).uncertainty());
    }
    let mut keyed: Vec<_> = runs
        .into_iter()
        .map(|run| {
            let (size, uncertainty) = groups[&(run.spec.pull_request.url.as_str(), second(run))];
            let uncertainty = uncertainty.filter(|_| size > 1);
            let revision = match (uncertainty, Revision::of(run)) {
                (None, Revision::Known(revision)) => revision,
                _ => 0,
            };
            let key = (second(run), revision, fallback_rank(run), run.metadata.uid.clone().unwrap_or_default());
            (key, run, uncertainty)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, run, uncertainty)| (run, uncertainty)).collect()
}

/// Without the API server's order, runs already judged outdated count as
/// created first and runs the controller has started (or finished) last,
/// so the tie never fails a Running run for a Pending one, and a decision
/// once written is not reversed when phases change.
fn fallback_rank(run: &ReviewRun) -> u8 {
    if heads::marked_passed(run) {
        0
    } else if run.phase() == RunPhase::Pending {
        1
    } else {
        2
    }
}

/// Whether `metadata.resourceVersion` is still the creation's: no status
/// (a status write changes it), no spec change, and no write by a field
/// manager other than the creator's, nor by the creator after the creation.
/// The API server stamps `creationTimestamp` and the creator's entry with
/// separate clock reads, which may fall on either side of a second.
fn unchanged_since_creation(run: &ReviewRun) -> bool {
    let created = run.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second());
    let managers = run.metadata.managed_fields.as_deref().unwrap_or_default();
    let creator_only = match managers {
        [] => true,
        [entry] => {
            let written = entry.time.as_ref().map(|t| t.0.as_second());
            let at_creation = match (written, created) {
                (Some(written), Some(created)) => written.abs_diff(created) <= 1,
                _ => true,
            };
            entry.subresource.is_none() && at_creation
        }
        _ => false,
    };
    run.status.is_none() && run.metadata.generation.unwrap_or(1) <= 1 && creator_only
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    use super::*;
    use crate::ReviewRunStatus;
    use crate::testing::{PR1, PR2, SHA_A, at, new_run};

    fn run(name: &str, pr: &str, created: i64, version: &str) -> ReviewRun {
        let mut run = new_run(name, pr, SHA_A, created);
        run.metadata.resource_version = Some(version.into());
        run
    }

    fn names(order: &[(&ReviewRun, Option<Uncertainty>)]) -> Vec<String> {
        order.iter().map(|(run, _)| run.metadata.name.clone().unwrap()).collect()
    }

    fn entry(manager: &str, second: i64, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            time: Some(Time(at(second))),
            subresource: subresource.map(str::to_owned),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn same_second_runs_follow_the_api_servers_order_not_their_names() {
        let new = run("a-new", PR1, 5, "12");
        let old = run("z-old", PR1, 5, "11");
        let order = creation_order(vec![&new, &old]);
        assert_eq!(names(&order), ["z-old", "a-new"]);
        assert!(order.iter().all(|(_, uncertainty)| uncertainty.is_none()));
    }

    #[test]
    fn the_second_decides_before_the_revision() {
        // Revisions of runs created in different seconds are not compared.
        let later = run("later", PR1, 6, "3");
        let earlier = run("earlier", PR1, 5, "9");
        assert_eq!(names(&creation_order(vec![&later, &earlier])), ["earlier", "later"]);
    }

    #[test]
    fn a_recorded_revision_outlives_later_writes() {
        let mut first = run("first", PR1, 5, "40");
        first.status = Some(ReviewRunStatus { creation_revision: Some("10".into()), ..ReviewRunStatus::default() });
        let second = run("second", PR1, 5, "11");
        assert_eq!(Revision::of(&first), Revision::Known(10));
        assert_eq!(names(&creation_order(vec![&second, &first])), ["first", "second"]);
        assert_eq!(revision_to_record(&first), None, "a recorded revision is final");
        assert_eq!(revision_to_record(&second).as_deref(), Some("11"));
    }

    #[test]
    fn a_run_written_before_it_was_observed_has_no_known_revision() {
        let mut labelled = run("labelled", PR1, 5, "20");
        labelled.metadata.managed_fields = Some(vec![entry("bot", 5, None), entry("kubectl-label", 5, None)]);
        assert_eq!(Revision::of(&labelled), Revision::ModifiedBeforeObserved);
        assert_eq!(revision_to_record(&labelled), None);

        let mut rewritten = run("rewritten", PR1, 5, "20");
        rewritten.metadata.managed_fields = Some(vec![entry("bot", 7, None)]);
        assert_eq!(Revision::of(&rewritten), Revision::ModifiedBeforeObserved, "written again a later second");

        let mut created = run("created", PR1, 5, "20");
        created.metadata.managed_fields = Some(vec![entry("bot", 5, None)]);
        assert_eq!(Revision::of(&created), Revision::Known(20));

        let mut cancelled = run("cancelled", PR1, 5, "20");
        cancelled.metadata.generation = Some(2);
        assert_eq!(Revision::of(&cancelled), Revision::ModifiedBeforeObserved, "spec changed");

        let mut with_status = run("status", PR1, 5, "20");
        with_status.status = Some(ReviewRunStatus::default());
        assert_eq!(Revision::of(&with_status), Revision::ModifiedBeforeObserved, "status written, none recorded");
    }

    #[test]
    fn without_comparable_revisions_a_running_run_counts_as_newer() {
        let mut running = run("a-running", PR1, 5, "opaque-1");
        running.status = Some(ReviewRunStatus { phase: Some(RunPhase::Running), ..ReviewRunStatus::default() });
        let pending = run("z-pending", PR1, 5, "opaque-2");
        for runs in [vec![&running, &pending], vec![&pending, &running]] {
            let order = creation_order(runs);
            assert_eq!(names(&order), ["z-pending", "a-running"]);
            assert!(order.iter().all(|(_, u)| *u == Some(Uncertainty::NotComparable)));
        }
    }

    #[test]
    fn uncertainty_is_per_pull_request_and_second() {
        let alone = run("alone", PR2, 5, "opaque");
        let other_second = run("other", PR1, 6, "opaque");
        let mut labelled = run("labelled", PR1, 5, "30");
        labelled.metadata.managed_fields = Some(vec![entry("bot", 5, None), entry("kubectl-label", 5, None)]);
        let known = run("known", PR1, 5, "31");
        let order = creation_order(vec![&alone, &other_second, &labelled, &known]);
        let uncertainty: BTreeMap<String, Option<Uncertainty>> =
            order.iter().map(|(run, u)| (run.metadata.name.clone().unwrap(), *u)).collect();
        assert_eq!(uncertainty["alone"], None, "a run alone in its second needs no revision");
        assert_eq!(uncertainty["other"], None);
        assert_eq!(uncertainty["labelled"], Some(Uncertainty::ModifiedBeforeObserved));
        assert_eq!(uncertainty["known"], Some(Uncertainty::ModifiedBeforeObserved));
    }
}
