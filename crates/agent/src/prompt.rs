//! The prompts the supervisor writes into the agent's terminal, and which
//! assigned runs still need one. Pure functions of what was observed.

use std::collections::BTreeSet;

use super::handoff::{Handoff, handoff_lines};
use crate::api::{ReviewRun, RunPhase};

/// The built-in first prompt; `spec.agent.prompt` replaces it. Placeholders
/// are documented on [`crate::api::AgentSpec::prompt`].
pub const DEFAULT_TEMPLATE: &str = "\
You are {{reviewer}}, the code reviewer of worker {{worker}}. Your role is review only: never commit, push or edit files.

For each run in the queue below, review the diff of the pull request's head SHA against the pull request's base branch. \
When a run names a checkout, the code at its head SHA is there. When it names a review range, the commits before it were reviewed already: \
review what changed in that range, and the rest only where the changes touch it. \
Look for bugs, missing error handling, security problems, missing tests and broken conventions of the codebase.

When a review is done, write your review text to a file and submit the verdict with the exact command given for that run:
  {{submit_command}}
Use --verdict approved when the change is ready to merge, and --verdict changes-requested with a body that says what to change otherwise. \
Submit only with that command: do not post reviews, comments or statuses to GitHub yourself (no gh, no API calls); \
the operator posts your verdict to the pull request, and only while the commit you reviewed is still its head. \
Review the runs in order; more runs may be added while you work.

Queue ({{count}}):
{{queue}}";

/// One run of the queue, as the prompt lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub run: String,
    pub url: String,
    pub number: Option<i64>,
    pub head_sha: String,
    /// Where the run's head is checked out, with a workspace.
    pub checkout: Option<String>,
    /// The pull request's earlier review, when it had one.
    pub handoff: Option<Handoff>,
}

impl QueueEntry {
    /// The entry for a run, before its checkout and handoff are known.
    pub fn from_run(run: &ReviewRun) -> Self {
        Self {
            run: run.metadata.name.clone().unwrap_or_default(),
            url: run.spec.pull_request.url.clone(),
            number: run.spec.pull_request.number,
            head_sha: run.spec.pull_request.head_sha.clone(),
            checkout: None,
            handoff: None,
        }
    }
}

/// Who the prompt is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptContext {
    pub reviewer: String,
    pub worker: String,
    pub namespace: String,
    pub pod: String,
    pub incarnation: i64,
    /// Path of the `review-operator` binary in the pod (injected, or the
    /// local binary in dev mode).
    pub binary: String,
}

/// `<binary> submit <run> --verdict approved|changes-requested --body-file FILE`.
pub fn submit_command(binary: &str, run: &str) -> String {
    format!("{binary} submit {run} --verdict approved|changes-requested --body-file FILE")
}

/// The numbered queue, numbering from `first_number`. Each entry starts
/// with a line `N. run <name>`, which is what the demo agent parses.
pub fn render_queue(entries: &[QueueEntry], first_number: usize, binary: &str) -> String {
    let mut out = String::new();
    for (offset, entry) in entries.iter().enumerate() {
        let number = entry.number.map(|n| format!(" (#{n})")).unwrap_or_default();
        out.push_str(&format!(
            "{}. run {}\n   pull request: {}{number}\n   head SHA: {}\n",
            first_number + offset,
            entry.run,
            entry.url,
            entry.head_sha,
        ));
        if let Some(checkout) = &entry.checkout {
            out.push_str(&format!("   checkout: {checkout}\n"));
        }
        for line in entry.handoff.iter().flat_map(|handoff| handoff_lines(handoff, &entry.head_sha)) {
            out.push_str(&format!("   {line}\n"));
        }
        out.push_str(&format!("   submit: {}\n", submit_command(binary, &entry.run)));
    }
    out
}

/// Replaces each `{{name}}` of `values` in `template`; unknown placeholders
/// stay as written.
pub fn render_template(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let known = after.find("}}").and_then(|end| {
            let key = after[..end].trim();
            values.iter().find(|(name, _)| *name == key).map(|(_, value)| (value, end))
        });
        match known {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The first prompt: the template (or [`DEFAULT_TEMPLATE`]) with the queue.
pub fn initial_prompt(template: Option<&str>, context: &PromptContext, entries: &[QueueEntry]) -> String {
    let values = [
        ("reviewer", context.reviewer.clone()),
        ("worker", context.worker.clone()),
        ("namespace", context.namespace.clone()),
        ("pod", context.pod.clone()),
        ("incarnation", context.incarnation.to_string()),
        ("count", entries.len().to_string()),
        ("queue", render_queue(entries, 1, &context.binary)),
        ("submit_command", submit_command(&context.binary, "RUN")),
    ];
    render_template(template.unwrap_or(DEFAULT_TEMPLATE), &values)
}

/// The prompt for runs assigned after the first prompt: just the new runs,
/// numbered after those already given.
pub fn follow_up_prompt(context: &PromptContext, entries: &[QueueEntry], first_number: usize) -> String {
    format!(
        "More runs were added to your queue. Review them after the current ones, the same way:\n{}",
        render_queue(entries, first_number, &context.binary)
    )
}

/// The runs already taken for the agent, to find the newly assigned ones,
/// and how many of them its prompts listed (a run whose checkout failed is
/// taken but never listed).
#[derive(Clone, Debug, Default)]
pub struct Prompted {
    runs: BTreeSet<String>,
    listed: usize,
}

impl Prompted {
    /// How many runs the agent's prompts have listed.
    pub fn len(&self) -> usize {
        self.listed
    }

    /// Whether no prompt has been written yet.
    pub fn is_empty(&self) -> bool {
        self.listed == 0
    }

    /// Records that a prompt listed `count` more runs.
    pub fn listed(&mut self, count: usize) {
        self.listed += count;
    }

    /// Running runs assigned to the pod `pod_uid` that the agent has not
    /// been given yet, oldest assignment first (then by creation and name),
    /// and remembers them as given.
    pub fn take_new<'a>(&mut self, runs: impl IntoIterator<Item = &'a ReviewRun>, pod_uid: &str) -> Vec<QueueEntry> {
        let mut new: Vec<&ReviewRun> = runs
            .into_iter()
            .filter(|run| run.phase() == RunPhase::Running)
            .filter(|run| run.status.as_ref().and_then(|s| s.assignment.as_ref()).is_some_and(|a| a.pod_uid == pod_uid))
            .filter(|run| run.metadata.name.as_ref().is_some_and(|name| !self.runs.contains(name)))
            .collect();
        new.sort_by_key(|run| {
            (
                run.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| t.0),
                run.metadata.creation_timestamp.clone().map(|t| t.0),
                run.metadata.name.clone(),
            )
        });
        new.into_iter()
            .map(|run| {
                let entry = QueueEntry::from_run(run);
                self.runs.insert(entry.run.clone());
                entry
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn context() -> PromptContext {
        PromptContext {
            reviewer: "review-w1".into(),
            worker: "w1".into(),
            namespace: "team".into(),
            pod: "review-w1-2".into(),
            incarnation: 2,
            binary: "/opt/review-operator/review-operator".into(),
        }
    }

    fn entry(run: &str, n: i64) -> QueueEntry {
        QueueEntry {
            run: run.into(),
            url: format!("https://github.com/acme/w/pull/{n}"),
            number: Some(n),
            head_sha: "abcdef1234".into(),
            checkout: None,
            handoff: None,
        }
    }

    #[test]
    fn default_prompt_states_the_role_queue_and_submit_commands() {
        let prompt = initial_prompt(None, &context(), &[entry("r-a", 1), entry("r-b", 2)]);
        assert!(
            prompt.starts_with(
                "You are review-w1, the code reviewer of worker w1. Your role is review only: never commit"
            )
        );
        for topic in
            ["base branch", "bugs", "missing error handling", "security problems", "missing tests", "conventions"]
        {
            assert!(prompt.contains(topic), "{topic}: {prompt}");
        }
        assert!(prompt.contains("Queue (2):\n1. run r-a\n   pull request: https://github.com/acme/w/pull/1 (#1)\n   head SHA: abcdef1234\n   submit: /opt/review-operator/review-operator submit r-a --verdict approved|changes-requested --body-file FILE\n2. run r-b\n"), "{prompt}");
        assert!(prompt.contains("  /opt/review-operator/review-operator submit RUN --verdict"), "{prompt}");
        assert!(prompt.contains("Submit only with that command: do not post reviews"), "{prompt}");
        assert!(!prompt.contains("{{"), "{prompt}");
    }

    #[test]
    fn a_custom_template_gets_every_placeholder_and_keeps_unknown_ones() {
        let template = "{{reviewer}}/{{worker}}/{{namespace}}/{{pod}}/{{incarnation}}/{{count}}/{{ unknown }}/{{submit_command}}\n{{queue}}";
        let prompt = initial_prompt(Some(template), &context(), &[entry("r-a", 1)]);
        assert_eq!(
            prompt,
            "review-w1/w1/team/review-w1-2/2/1/{{ unknown }}/\
             /opt/review-operator/review-operator submit RUN --verdict approved|changes-requested --body-file FILE\n\
             1. run r-a\n   pull request: https://github.com/acme/w/pull/1 (#1)\n   head SHA: abcdef1234\n   \
             submit: /opt/review-operator/review-operator submit r-a --verdict approved|changes-requested --body-file FILE\n"
        );
        assert_eq!(render_template("{{reviewer", &[("reviewer", "x".into())]), "{{reviewer");
        assert_eq!(render_template("a {{b}} c", &[]), "a {{b}} c");
    }

    #[test]
    fn an_entry_names_its_checkout_and_the_earlier_review() {
        use crate::handoff::{Ancestry, Earlier, EarlierOutcome};
        let mut entry = entry("r-b", 1);
        entry.checkout = Some("/workspace/r-b".into());
        entry.handoff = Some(Handoff {
            earlier: Earlier {
                run: "r-a".into(),
                head_sha: "1234567".into(),
                outcome: EarlierOutcome::Superseded { by: None },
                pod: None,
            },
            ancestry: Ancestry::Ancestor,
            review_file: None,
            transcript_pod: None,
        });
        let queue = render_queue(&[entry], 1, "ro");
        assert_eq!(
            queue,
            "1. run r-b\n   pull request: https://github.com/acme/w/pull/1 (#1)\n   head SHA: abcdef1234\n   \
             checkout: /workspace/r-b\n   \
             earlier review: run r-a at 1234567 was superseded before its review was submitted\n   \
             review range: 1234567..abcdef1234 (what changed since the earlier review: git diff 1234567 abcdef1234)\n   \
             submit: ro submit r-b --verdict approved|changes-requested --body-file FILE\n"
        );
    }

    #[test]
    fn follow_up_lists_only_new_runs_numbered_after_the_old_ones() {
        let prompt = follow_up_prompt(&context(), &[entry("r-c", 3)], 3);
        assert!(prompt.starts_with("More runs were added to your queue."), "{prompt}");
        assert!(prompt.contains("\n3. run r-c\n"), "{prompt}");
        assert!(!prompt.contains("r-a"));
    }

    fn run(name: &str, phase: &str, pod_uid: &str, start: &str) -> ReviewRun {
        let status: Value = json!({"phase": phase, "startTime": start,
            "assignment": {"pod": "review-w1-2", "podUID": pod_uid, "incarnation": 2}});
        serde_json::from_value(json!({
            "apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"reviewer": "review-w1", "pullRequest": {"url": "https://github.com/a/b/pull/1", "headSha": "abcdef1"}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn only_running_runs_of_this_pod_are_new_and_each_only_once() {
        let runs = [
            run("b", "Running", "uid-2", "2026-01-01T00:00:01Z"),
            run("a", "Running", "uid-2", "2026-01-01T00:00:02Z"),
            run("other-pod", "Running", "uid-1", "2026-01-01T00:00:00Z"),
            run("failed", "Failed", "uid-2", "2026-01-01T00:00:00Z"),
        ];
        let mut prompted = Prompted::default();
        assert!(prompted.is_empty());
        let names: Vec<String> = prompted.take_new(&runs, "uid-2").into_iter().map(|e| e.run).collect();
        assert_eq!(names, ["b", "a"]);
        // Taken, but listed only once a prompt says so.
        assert!(prompted.is_empty());
        prompted.listed(2);
        assert_eq!(prompted.len(), 2);
        assert!(prompted.take_new(&runs, "uid-2").is_empty());
        let later = [run("c", "Running", "uid-2", "2026-01-01T00:01:00Z")];
        let names: Vec<String> =
            prompted.take_new(runs.iter().chain(&later), "uid-2").into_iter().map(|e| e.run).collect();
        assert_eq!(names, ["c"]);
    }
}
