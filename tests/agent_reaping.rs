//! The supervisor leaves no zombie behind: what the agent started and
//! orphaned is handed to the supervisor, which waits for it before exiting.
//! A test binary of its own, as it waits for any child of the process.

use std::time::Duration;

use review_operator::agent::reaper;
use review_operator::agent::terminal::Terminal;

/// The children of this process, from `/proc/self/task/*/children`.
fn children() -> Vec<u32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let path = task.expect("task").path().join("children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        pids.extend(text.split_whitespace().filter_map(|pid| pid.parse::<u32>().ok()));
    }
    pids
}

fn state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.split_whitespace().next().map(str::to_owned)
}

#[tokio::test]
async fn orphans_of_the_agent_are_reaped_by_the_supervisor() {
    reaper::become_subreaper();
    // The subshell starts a sleep and exits at once, so the sleep is orphaned.
    let command = ["sh".to_owned(), "-c".to_owned(), "(sleep 600 &); exec sleep 600".to_owned()];
    let mut terminal = Terminal::spawn(&command).expect("agent starts");
    let leader = loop_until(|| {
        let kids = children();
        (kids.len() >= 2).then_some(kids)
    })
    .await;
    assert!(leader.len() >= 2, "the orphaned sleep became our child: {leader:?}");

    terminal.terminate(Duration::from_secs(5)).await;
    let reaped = reaper::reap_children(Duration::from_secs(10)).await;
    assert!(reaped >= 1, "the orphan was reaped");
    for pid in leader {
        assert_eq!(state(pid), None, "process {pid} is gone, not a zombie");
    }
    assert!(children().is_empty(), "no child left: {:?}", children());
}

async fn loop_until<T>(mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
