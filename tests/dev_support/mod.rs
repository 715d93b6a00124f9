//! Helpers for tests that run `review-operator dev` as a child process and drive it with the real
//! kubectl, as a user would.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../crates/devcluster/tests/support/mod.rs"]
mod support;

/// The pinned kubectl the test command installs at `.tools/kubectl/bin/kubectl`; fails loudly when
/// it is missing.
pub use support::kubectl_path;

/// How long a test waits for something the dev command does; generous for a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// The repository root (where README.md, examples/ and deploy/ live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder holding this build's binaries (`review-operator`, `kubectl-review`).
pub fn binary_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_review-operator")).parent().expect("binary folder").to_path_buf()
}

/// A `PATH` with this build's binaries first, as the README tells a user to set it.
pub fn path_with_binaries() -> String {
    format!("{}:{}", binary_dir().display(), std::env::var("PATH").unwrap_or_default())
}

/// A running `review-operator dev` child; killed (with its process group) if the test fails early.
pub struct DevProcess {
    pub child: Option<Child>,
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl DevProcess {
    /// Starts `review-operator dev --listen 127.0.0.1:0 --webhook-listen 127.0.0.1:0 --kubeconfig DIR/kubeconfig EXTRA...` in a
    /// fresh temporary folder, with this build's binaries on `PATH`, in its own process group.
    pub fn start(name: &str, extra: &[&str]) -> Self {
        use std::os::unix::process::CommandExt;
        let dir = std::env::temp_dir().join(format!("review-operator-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary folder");
        let kubeconfig = dir.join("kubeconfig");
        let stdout = dir.join("stdout");
        let stderr = dir.join("stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_review-operator"))
            .args(["dev", "--listen", "127.0.0.1:0", "--webhook-listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(extra)
            .current_dir(&dir)
            .env("PATH", path_with_binaries())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .process_group(0)
            .spawn()
            .expect("review-operator dev starts");
        Self { child: Some(child), kubeconfig, dir, stdout, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Runs the real kubectl with this cluster's kubeconfig and returns its output.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kubectl_path())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    /// Runs kubectl and returns its stdout, failing the test when it fails.
    #[track_caller]
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `kubectl get --raw /readyz` answers `ok` with the written kubeconfig.
    pub fn wait_ready(&mut self) {
        self.poll("/readyz to answer ok", |dev| {
            let out = dev.kubectl(&["get", "--raw", "/readyz"]);
            (out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok").then_some(())
        });
    }

    /// Polls `check` until it returns `Some`, failing after [`DEADLINE`] or if the process exits.
    pub fn poll<T>(&mut self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(value) = check(self) {
                return value;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("try_wait")) {
                panic!(
                    "review-operator dev exited ({status}) while waiting for {what}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process to exit.
    pub fn interrupt(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGINT)
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn stop_with(&mut self, signal: libc::c_int) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) with a pid this test spawned and has not yet reaped.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} delivered");
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!(
                    "review-operator dev did not exit within {DEADLINE:?} of signal {signal}\nstdout:\n{}",
                    self.stdout()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(group) = libc::pid_t::try_from(child.id()) {
                // SAFETY: signals the process group this test created for the child.
                unsafe { libc::kill(-group, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcessInfo {
    pub pid: u32,
    pub parent: u32,
    pub group: u32,
    /// Start time in clock ticks since boot: tells a process from a later one that reuses its pid.
    pub start: u64,
    pub state: char,
    pub command: String,
}

/// Reads one process's `/proc/PID/stat`, or `None` when it is gone.
pub fn process_info(pid: u32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let command = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    Some(ProcessInfo {
        pid,
        state: fields.first()?.chars().next()?,
        parent: fields.get(1)?.parse().ok()?,
        group: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
        command,
    })
}

/// Every process on the machine.
pub fn all_processes() -> Vec<ProcessInfo> {
    let entries = std::fs::read_dir("/proc").expect("/proc is readable");
    entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok()).filter_map(process_info).collect()
}

/// The processes whose parent chain leads to `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<ProcessInfo> {
    let all = all_processes();
    let mut found: BTreeSet<u32> = BTreeSet::from([root]);
    loop {
        let before = found.len();
        for process in &all {
            if found.contains(&process.parent) {
                found.insert(process.pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    all.into_iter().filter(|p| p.pid != root && found.contains(&p.pid)).collect()
}

/// Whether the recorded process still runs: same pid and start time, and not a zombie.
pub fn still_running(process: &ProcessInfo) -> bool {
    process_info(process.pid).is_some_and(|now| now.start == process.start && now.state != 'Z')
}

/// Every process in any of `groups`, zombies included.
pub fn members_of(groups: &BTreeSet<u32>) -> Vec<ProcessInfo> {
    all_processes().into_iter().filter(|p| groups.contains(&p.group)).collect()
}
