//! `review-operator dev` as a user runs it: a child process on an ephemeral port, checked with the
//! real kubectl, stopped with Ctrl-C or SIGTERM.

mod dev_support;

use std::collections::BTreeSet;

use dev_support::{DevProcess, descendants, members_of, still_running};

/// The phases of the demo's runs, as `NAME=PHASE/REASON` lines sorted by name.
fn run_phases(dev: &DevProcess) -> Vec<String> {
    let out = dev.kubectl_ok(&[
        "get",
        "reviewruns",
        "-n",
        "demo",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.phase}/{.status.reason}{\"\\n\"}{end}",
    ]);
    let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn dev_plays_the_supersede_demo_and_ctrl_c_stops_every_pod_process() {
    let mut dev = DevProcess::start("dev-demo", &[]);
    dev.wait_ready();
    let stdout = dev.poll("the export line", |dev| {
        let stdout = dev.stdout();
        stdout.contains("export KUBECONFIG=").then_some(stdout)
    });
    assert!(stdout.contains("dev cluster ready at https://127.0.0.1:"), "stdout: {stdout}");
    assert!(stdout.contains(&format!("export KUBECONFIG={}", dev.kubeconfig.display())), "stdout: {stdout}");

    let phases = dev.poll("one run Superseded and one Succeeded", |dev| {
        let phases = run_phases(dev);
        (phases.iter().any(|p| p.ends_with("=Succeeded/Submitted"))).then_some(phases)
    });
    // The demo's pull request is a local repository: its head and the commit before it, as git
    // itself reads them.
    let repository = dev.dir.join("demo-repository.git");
    let git = |revision: &str| {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&repository)
            .args(["rev-parse", revision])
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git rev-parse {revision}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let (first, second) = (git("main^"), git("main"));
    let (first_run, second_run) =
        (format!("review-demo-pr1-{}", &first[..7]), format!("review-demo-pr1-{}", &second[..7]));
    let mut expected = [format!("{first_run}=Failed/Superseded"), format!("{second_run}=Succeeded/Submitted")];
    expected.sort();
    assert_eq!(phases, expected, "the demo's runs");
    let verdict = dev.kubectl_ok(&["get", "rr", &second_run, "-n", "demo", "-o", "jsonpath={.status.result.verdict}"]);
    assert_eq!(verdict, "Approved");
    let superseded_by =
        dev.kubectl_ok(&["get", "rr", &first_run, "-n", "demo", "-o", "jsonpath={.status.supersededBy}"]);
    assert_eq!(superseded_by, second_run);
    // The fresh reviewer read its checkout and was told the range its predecessor left.
    let pod = dev.kubectl_ok(&["get", "rr", &second_run, "-n", "demo", "-o", "jsonpath={.status.assignment.pod}"]);
    let log = dev.kubectl_ok(&["logs", "-n", "demo", &pod]);
    assert!(log.contains(&format!("review range: {first}..{second} ")), "{log}");
    assert!(log.contains(&format!("{second_run}: reading the checkout ")), "{log}");
    assert!(log.contains(": CHANGELOG.md, README.md, lib.rs"), "the checkout holds the second commit: {log}");
    assert!(log.contains("earlier transcript: kubectl review transcript review-demo-1"), "{log}");
    let incarnation: u64 = dev
        .kubectl_ok(&["get", "rvr", "review-demo", "-n", "demo", "-o", "jsonpath={.status.incarnation}"])
        .trim()
        .parse()
        .expect("incarnation is a number");
    assert!(incarnation >= 2, "the Reviewer was restarted at least once, got incarnation {incarnation}");
    dev.poll("the timeline's final verdict", |dev| {
        dev.stdout().contains(&format!("run {second_run} submitted: approved")).then_some(())
    });

    // The live reviewer pod's processes: the agent wrapper and the demo agent in its terminal.
    let pod_processes = dev.poll("the reviewer pod's processes", |dev| {
        let found = descendants(dev.pid());
        found.iter().any(|p| p.command.starts_with("review-operato")).then_some(found)
    });
    let groups: BTreeSet<u32> = pod_processes.iter().map(|p| p.group).collect();

    let status = dev.interrupt();
    assert_eq!(status.code(), Some(0), "exit status after SIGINT; stderr:\n{}", dev.stderr());
    let left: Vec<_> = pod_processes.iter().filter(|p| still_running(p)).collect();
    assert!(left.is_empty(), "pod processes still running after Ctrl-C: {left:?}");
    let left_in_groups = members_of(&groups);
    assert!(
        left_in_groups.is_empty(),
        "processes (zombies included) left in the pods' process groups: {left_in_groups:?}"
    );
    assert!(dev.stdout().contains("stopping"), "stdout: {}", dev.stdout());
    assert_eq!(dev.stderr(), "", "nothing on stderr for a clean demo and stop");
}

#[test]
fn sigterm_stops_dev_and_leaves_no_pod_process_not_even_a_zombie() {
    let mut dev = DevProcess::start("dev-sigterm", &[]);
    dev.wait_ready();
    let pod_processes = dev.poll("the reviewer pod's agent in its terminal", |dev| {
        let found = descendants(dev.pid());
        found.iter().any(|p| p.command.starts_with("review-operato") && p.group != dev.pid()).then_some(found)
    });
    let groups: BTreeSet<u32> = pod_processes.iter().map(|p| p.group).filter(|g| *g != dev.pid()).collect();
    assert!(!groups.is_empty(), "the pods run in process groups of their own: {pod_processes:?}");

    let status = dev.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM; stderr:\n{}", dev.stderr());
    let left = members_of(&groups);
    assert!(left.is_empty(), "processes (zombies included) left in the pods' process groups: {left:?}");
}

#[test]
fn a_port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let address = taken.local_addr().expect("address").to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_review-operator"))
        .args(["dev", "--no-demo", "--listen", &address, "--kubeconfig"])
        .arg(std::env::temp_dir().join(format!("review-operator-port-in-use-{}", std::process::id())).join("kc"))
        .output()
        .expect("review-operator dev runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "exit status");
    assert_eq!(out.status.code(), Some(1), "a clean error exit, not a panic (101) or a signal; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "exactly one line on stderr: {stderr:?}");
    assert!(stderr.contains(&address), "the error names {address}: {stderr:?}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr:?}");
    assert_eq!(stderr.matches("in use").count(), 1, "the cause is stated once: {stderr:?}");
}
