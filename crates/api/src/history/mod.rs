//! Which commit is newer: the creation order of runs and the history of
//! pushes they tell, read the same way by the controller (which run of a
//! pull request is current), the agent (which review came before) and the
//! plugin (which run is a pull request's head).

pub mod heads;
pub mod order;
pub mod prune;

use std::collections::BTreeMap;

use crate::ReviewRun;
use heads::Standing;

/// The run that made each pull request's head SHA its head, by URL,
/// decided as the controller decides it from one Reviewer's `runs`. Pull
/// requests whose head no run shows (the runs that moved them on were
/// deleted) are left out.
pub fn pull_request_heads(runs: &[ReviewRun]) -> BTreeMap<&str, &ReviewRun> {
    let (ordered, _, history) = ordered_history(runs.iter().collect());
    let mut result = BTreeMap::new();
    for (run, standing) in ordered.into_iter().zip(history.standings) {
        if standing == Standing::Head {
            result.entry(run.spec.pull_request.url.as_str()).or_insert(run);
        }
    }
    result
}

/// `runs` in the order the API server created them, as the controller orders them.
pub fn creation_ordered<'a>(runs: impl IntoIterator<Item = &'a ReviewRun>) -> Vec<&'a ReviewRun> {
    order::creation_order(runs.into_iter().collect()).into_iter().map(|(run, _)| run).collect()
}

/// `runs` in creation order, with the uncertainty of each one's place and
/// the history they tell (index-aligned).
pub fn ordered_history(runs: Vec<&ReviewRun>) -> (Vec<&ReviewRun>, Vec<Option<order::Uncertainty>>, heads::History) {
    let (runs, uncertainties): (Vec<&ReviewRun>, Vec<_>) = order::creation_order(runs).into_iter().unzip();
    let history = heads::read_history(&runs);
    (runs, uncertainties, history)
}
