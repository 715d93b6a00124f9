//! `review-operator demo-agent`: a deterministic stand-in for an agent CLI,
//! for the end-to-end tests and the dev demo.
//!
//! It reads the prompts typed into its terminal, takes each `N. run <name>`
//! line as a queued run, "reviews" the runs in order (printing progress),
//! and submits each by running `<this binary> submit`, so the transcript
//! shows the command, its output and its exit code, as an agent's would.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clap::Args;

/// Options of the demo agent.
#[derive(Args, Clone, Debug)]
pub struct DemoOptions {
    /// How long each review takes.
    #[arg(long, default_value_t = 5)]
    pub review_seconds: u64,
    /// Extra wait before each submission (lets a test supersede the run meanwhile).
    #[arg(long, default_value_t = 0)]
    pub submit_delay_seconds: u64,
    /// Request changes instead of approving.
    #[arg(long)]
    pub request_changes: bool,
}

/// The body of a changes-requested verdict.
pub const CHANGES_BODY: &str = "Please add a test for the new error path.";

/// The run named by a queue line `N. run <name>` of a prompt, ignoring
/// terminal decorations (bracketed-paste markers, carriage returns).
pub fn queued_run(line: &str) -> Option<String> {
    let line = line.replace("\x1b[200~", "").replace("\x1b[201~", "");
    let line = line.trim();
    let (number, rest) = line.split_once(". run ")?;
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let name = rest.trim();
    let valid =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    valid.then(|| name.to_owned())
}

/// One queue entry of a prompt: the run, and where its checkout and review range are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedRun {
    pub run: String,
    pub checkout: Option<String>,
    pub range: Option<String>,
}

/// Reads a prompt's queue line by line: an entry starts at `N. run <name>` and ends at its
/// `submit:` line (or the next entry).
#[derive(Debug, Default)]
pub struct QueueReader {
    entry: Option<QueuedRun>,
}

impl QueueReader {
    /// The entry that `line` completes, if any.
    pub fn read(&mut self, line: &str) -> Option<QueuedRun> {
        if let Some(run) = queued_run(line) {
            return self.entry.replace(QueuedRun { run, ..QueuedRun::default() });
        }
        let line = line.replace("\x1b[200~", "").replace("\x1b[201~", "");
        let line = line.trim();
        let entry = self.entry.as_mut()?;
        if let Some(path) = line.strip_prefix("checkout: ") {
            entry.checkout = Some(path.to_owned());
        } else if let Some(range) = line.strip_prefix("review range: ") {
            entry.range = Some(range.to_owned());
        } else if line.starts_with("submit: ") {
            return self.entry.take();
        }
        None
    }
}

/// Reads prompts from stdin until it closes, reviewing and submitting each queued run once.
pub fn run(options: &DemoOptions) -> std::io::Result<()> {
    let binary = std::env::current_exe()?;
    let (queue, queued) = mpsc::channel::<QueuedRun>();
    let worker = std::thread::spawn({
        let options = options.clone();
        move || {
            for entry in queued {
                review(&binary, &entry, &options);
            }
        }
    });
    say("demo agent ready; waiting for the queue");
    let mut seen = HashSet::new();
    let mut reader = QueueReader::default();
    for line in std::io::stdin().lock().lines() {
        if let Some(entry) = reader.read(&line?)
            && seen.insert(entry.run.clone())
        {
            say(&format!("queued {}", entry.run));
            if queue.send(entry).is_err() {
                break;
            }
        }
    }
    drop(queue);
    let _ = worker.join();
    Ok(())
}

fn say(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "[demo-agent] {text}").and_then(|()| stdout.flush());
}

/// The files at the top of a checkout, as the demo agent lists them.
fn listing(path: &std::path::Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|name| name != ".git");
    names.sort();
    names.join(", ")
}

fn review(binary: &std::path::Path, entry: &QueuedRun, options: &DemoOptions) {
    let run = entry.run.as_str();
    say(&format!("reviewing {run} ({}s)", options.review_seconds));
    if let Some(checkout) = &entry.checkout {
        say(&format!("{run}: reading the checkout {checkout}: {}", listing(std::path::Path::new(checkout))));
    }
    if let Some(range) = &entry.range {
        say(&format!("{run}: review range {range}"));
    }
    for second in 1..=options.review_seconds {
        std::thread::sleep(Duration::from_secs(1));
        say(&format!("reviewing {run}: {second}/{}s", options.review_seconds));
    }
    if options.submit_delay_seconds > 0 {
        say(&format!("holding the verdict for {run} back for {}s", options.submit_delay_seconds));
        std::thread::sleep(Duration::from_secs(options.submit_delay_seconds));
    }
    let verdict = if options.request_changes { "changes-requested" } else { "approved" };
    let mut command = Command::new(binary);
    command.args(["submit", run, "--verdict", verdict]);
    if options.request_changes {
        command.args(["--body-file", "-"]);
    }
    say(&format!("$ review-operator submit {run} --verdict {verdict}"));
    let outcome =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(if options.request_changes { CHANGES_BODY.as_bytes() } else { b"" })?;
            }
            child.wait_with_output()
        });
    match outcome {
        Ok(output) => {
            let text =
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            for line in text.lines() {
                say(line);
            }
            say(&format!("submit {run} exited with {}", output.status.code().unwrap_or(-1)));
        }
        Err(error) => say(&format!("submit {run} could not run: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{PromptContext, QueueEntry, follow_up_prompt, initial_prompt};

    fn context() -> PromptContext {
        PromptContext {
            reviewer: "review-w1".into(),
            worker: "w1".into(),
            namespace: "team".into(),
            pod: "review-w1-1".into(),
            incarnation: 1,
            binary: "/bin/review-operator".into(),
        }
    }

    fn entry(run: &str) -> QueueEntry {
        QueueEntry {
            run: run.into(),
            url: "https://github.com/a/b/pull/1".into(),
            number: Some(1),
            head_sha: "abcdef1".into(),
            checkout: Some(format!("/workspace/{run}")),
            handoff: None,
        }
    }

    fn runs_in(text: &str) -> Vec<String> {
        text.lines().filter_map(queued_run).collect()
    }

    #[test]
    fn parses_the_queue_of_initial_and_follow_up_prompts() {
        let first =
            initial_prompt(None, &context(), &[entry("review-w1-aaaa-1234567"), entry("review-w1-bbbb-1234567")]);
        assert_eq!(runs_in(&first), ["review-w1-aaaa-1234567", "review-w1-bbbb-1234567"]);
        let later = follow_up_prompt(&context(), &[entry("review-w1-cccc-1234567")], 3);
        assert_eq!(runs_in(&later), ["review-w1-cccc-1234567"]);
    }

    #[test]
    fn reads_each_entrys_checkout_and_range() {
        let mut with_range = entry("review-w1-bbbb-1234567");
        with_range.handoff = Some(crate::handoff::Handoff {
            earlier: crate::handoff::Earlier {
                run: "review-w1-aaaa-1234567".into(),
                head_sha: "aaaaaaa".into(),
                outcome: crate::handoff::EarlierOutcome::Superseded { by: None },
                pod: None,
            },
            ancestry: crate::handoff::Ancestry::Ancestor,
            review_file: None,
            transcript_pod: None,
        });
        let text = initial_prompt(None, &context(), &[entry("review-w1-aaaa-1234567"), with_range]);
        let mut reader = QueueReader::default();
        let entries: Vec<QueuedRun> = text.lines().filter_map(|line| reader.read(line)).collect();
        assert_eq!(
            entries,
            [
                QueuedRun {
                    run: "review-w1-aaaa-1234567".into(),
                    checkout: Some("/workspace/review-w1-aaaa-1234567".into()),
                    range: None
                },
                QueuedRun {
                    run: "review-w1-bbbb-1234567".into(),
                    checkout: Some("/workspace/review-w1-bbbb-1234567".into()),
                    range: Some(
                        "aaaaaaa..abcdef1 (what changed since the earlier review: git diff aaaaaaa abcdef1)".into()
                    ),
                },
            ]
        );
    }

    #[test]
    fn ignores_terminal_decorations_and_other_lines() {
        assert_eq!(queued_run("\x1b[200~1. run r-1\r").as_deref(), Some("r-1"));
        assert_eq!(queued_run("12. run r-2\x1b[201~").as_deref(), Some("r-2"));
        assert_eq!(queued_run("Queue (2):"), None);
        assert_eq!(queued_run("a. run r-1"), None);
        assert_eq!(queued_run("1. run "), None);
        assert_eq!(queued_run("1. run R_1"), None);
        assert_eq!(queued_run("   submit: /bin/review-operator submit r-1 --verdict approved"), None);
    }
}
