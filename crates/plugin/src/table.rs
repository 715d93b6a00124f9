//! Text output of `get` and `status`.

use std::collections::BTreeMap;

use crate::api::history::pull_request_heads;
use crate::api::{CONDITION_CURRENT, CONDITION_READY, ReviewRun, Reviewer, conditions};

/// Column headers of `get`.
pub const RUN_HEADERS: [&str; 6] = ["NAME", "PR", "SHA", "PHASE", "VERDICT", "CURRENT"];

/// One `get` row: name, PR (`#number`, or the URL without one), short SHA,
/// phase, verdict and the `Current` condition (`-` when absent).
pub fn run_row(run: &ReviewRun) -> [String; 6] {
    let pr = &run.spec.pull_request;
    let status = run.status.as_ref();
    [
        run.metadata.name.clone().unwrap_or_default(),
        pr.number.map_or_else(|| pr.url.clone(), |n| format!("#{n}")),
        pr.head_sha.chars().take(7).collect(),
        format!("{:?}", run.phase()),
        status.and_then(|s| s.result.as_ref()).map_or("-".into(), |r| super::submit::verdict_name(r.verdict).into()),
        status
            .and_then(|s| conditions::find(&s.conditions, CONDITION_CURRENT))
            .map_or("-".into(), |c| c.status.clone()),
    ]
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|i| rows.iter().filter_map(|r| r.get(i)).map(String::len).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| if i + 1 == row.len() { cell.clone() } else { format!("{cell:<w$}", w = widths[i]) })
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The `get` table: header plus one row per run, sorted by name.
pub fn runs_table(runs: &[ReviewRun]) -> String {
    let mut rows = vec![RUN_HEADERS.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    let mut sorted: Vec<&ReviewRun> = runs.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    rows.extend(sorted.into_iter().map(|run| run_row(run).to_vec()));
    render(&rows)
}

/// The `status REVIEWER` report: pod, incarnation, restarts, the last
/// restart and why, the queue and the head of each pull request.
pub fn reviewer_report(reviewer: &Reviewer, runs: &[ReviewRun]) -> String {
    let status = reviewer.status.clone().unwrap_or_default();
    let name = reviewer.metadata.name.as_deref().unwrap_or_default();
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("{label:<14}{value}\n"));
    line("Reviewer:", format!("{name} (worker {})", reviewer.spec.worker_id));
    line("Pod:", status.pod.as_ref().map_or("<none>".into(), |p| format!("{} (uid {})", p.name, p.uid)));
    line("Incarnation:", status.incarnation.to_string());
    line(
        "Ready:",
        conditions::find(&status.conditions, CONDITION_READY).map_or("Unknown".into(), |c| c.status.clone()),
    );
    line("Restarts:", status.restarts.to_string());
    line(
        "Last restart:",
        status.last_restart.as_ref().map_or("<none>".into(), |r| {
            format!(
                "{} {:?} (runs: {})",
                r.time.0,
                r.reason,
                if r.runs.is_empty() { "-".into() } else { r.runs.join(", ") }
            )
        }),
    );
    out.push_str(&format!("Queue ({}):\n", status.queue.len()));
    let by_name: BTreeMap<&str, &ReviewRun> =
        runs.iter().filter_map(|r| Some((r.metadata.name.as_deref()?, r))).collect();
    let mut queue_rows = Vec::new();
    for (index, run_name) in status.queue.iter().enumerate() {
        let mut row = vec![format!("  {}.", index + 1)];
        match by_name.get(run_name.as_str()) {
            Some(run) => row.extend(run_row(run)[..4].iter().cloned()),
            None => row.extend([run_name.clone(), "-".into(), "-".into(), "(not found)".into()]),
        }
        queue_rows.push(row);
    }
    out.push_str(&render(&queue_rows));
    out.push_str("Heads:\n");
    let head_rows: Vec<Vec<String>> = pull_request_heads(runs)
        .into_iter()
        .map(|(url, run)| {
            let row = run_row(run);
            vec![format!("  {url}"), row[2].clone(), row[0].clone(), row[3].clone()]
        })
        .collect();
    out.push_str(&render(&head_rows));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn run(name: &str, url: &str, sha: &str, created: &str, status: Value) -> ReviewRun {
        serde_json::from_value(json!({
            "apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun",
            "metadata": {"name": name, "namespace": "team", "creationTimestamp": created},
            "spec": {"reviewer": "review-w1", "pullRequest": {"url": url, "number": 7, "headSha": sha}},
            "status": status,
        }))
        .unwrap()
    }

    const URL: &str = "https://github.com/a/b/pull/7";

    #[test]
    fn get_table_shows_pr_sha_phase_verdict_and_current() {
        let done = run(
            "r1",
            URL,
            "aaaaaaa111",
            "2026-01-01T00:00:00Z",
            json!({"phase": "Succeeded", "reason": "Submitted",
            "result": {"verdict": "Approved", "body": "", "submittedAt": "2026-01-01T00:00:00Z"},
            "conditions": [{"type": "Current", "status": "False", "reason": "Superseded", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        );
        let mut pending = run("r2", URL, "bbbbbbb222", "2026-01-01T00:01:00Z", Value::Null);
        pending.spec.pull_request.number = None;
        assert_eq!(
            runs_table(&[pending, done]),
            "NAME   PR                              SHA       PHASE       VERDICT    CURRENT\n\
             r1     #7                              aaaaaaa   Succeeded   Approved   False\n\
             r2     https://github.com/a/b/pull/7   bbbbbbb   Pending     -          -\n"
        );
    }

    #[test]
    fn heads_are_decided_as_the_controller_decides_them() {
        let outdated = json!({"phase": "Failed", "reason": "Superseded", "conditions": [{"type": "Current",
            "status": "False", "reason": "Superseded", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let mut runs = [
            run("z-first", URL, "aaaaaaa", "2026-01-01T00:00:00Z", outdated),
            run("a-second", URL, "bbbbbbb", "2026-01-01T00:00:00Z", Value::Null),
            run("older", URL, "ccccccc", "2025-12-31T00:00:00Z", json!({"phase": "Pending"})),
        ];
        for (run, version) in runs.iter_mut().zip(["11", "12", "3"]) {
            run.metadata.resource_version = Some(version.into());
        }
        runs[0].status.as_mut().unwrap().creation_revision = Some("10".into());
        let heads = pull_request_heads(&runs);
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[URL].metadata.name.as_deref(), Some("a-second"), "created last, in the same second");
    }

    #[test]
    fn reviewer_report_lists_pod_queue_heads_and_last_restart() {
        let reviewer: Reviewer = serde_json::from_value(json!({
            "apiVersion": "review.ao.dev/v1alpha1", "kind": "Reviewer",
            "metadata": {"name": "review-w1", "namespace": "team"},
            "spec": {"workerId": "w1", "agent": {"image": "img"}},
            "status": {"pod": {"name": "review-w1-2", "uid": "u2", "incarnation": 2}, "incarnation": 2,
                "restarts": 1, "queue": ["new", "gone"], "queueLength": 2,
                "lastRestart": {"time": "2026-01-01T00:00:00Z", "reason": "Superseded", "runs": ["old"]}}
        }))
        .unwrap();
        let runs = [run("new", URL, "bbbbbbb", "2026-01-01T00:00:00Z", json!({"phase": "Running"}))];
        assert_eq!(
            reviewer_report(&reviewer, &runs),
            "Reviewer:     review-w1 (worker w1)\n\
             Pod:          review-w1-2 (uid u2)\n\
             Incarnation:  2\n\
             Ready:        Unknown\n\
             Restarts:     1\n\
             Last restart: 2026-01-01T00:00:00Z Superseded (runs: old)\n\
             Queue (2):\n  \
               1.   new    #7   bbbbbbb   Running\n  \
               2.   gone   -    -         (not found)\n\
             Heads:\n  \
               https://github.com/a/b/pull/7   bbbbbbb   new   Running\n"
        );
    }
}
