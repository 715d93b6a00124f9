//! Container processes: spawning each in its own process group (or its own session on a
//! pseudo-terminal), feeding its output to a log buffer, signalling and reaping it.
//!
//! No process may outlive the dev cluster. Three layers make sure of it:
//! - the runner kills every live process group on shutdown and when the cluster is dropped;
//! - piped containers get `PR_SET_PDEATHSIG(SIGKILL)`, so the kernel kills them when the spawning
//!   thread's process dies, even on SIGKILL of the host. The death signal belongs to the *thread*
//!   that forked, so all spawns happen on one dedicated thread that lives as long as the runner;
//! - terminal containers are session leaders of their pseudo-terminal, so when the host dies and the
//!   master side closes, the kernel sends SIGHUP to their session.
//!
//! Limit: a container's own children do not inherit the death signal (Linux clears it on fork), so
//! if the host is SIGKILLed while a container runs a child that ignores SIGHUP and outlives its
//! parent, that grandchild can survive. Orderly shutdown and drop kill whole process groups, so this
//! only concerns a hard kill of the host process.

use super::logs::LogBuffer;
use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::oneshot;

/// What to run for one container instance.
#[derive(Debug, Clone)]
pub struct Launch {
    /// `command` + `args`, already expanded.
    pub argv: Vec<String>,
    /// The complete environment (the host's is not inherited).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    /// `stdin: true, tty: true`: run on a pseudo-terminal.
    pub tty: bool,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + signal for a process ended by a signal (as container runtimes report).
    pub code: i32,
    pub signal: Option<i32>,
}

/// A started process: its process group and the news of its end.
#[derive(Debug)]
pub struct Started {
    pub pgid: i32,
    pub exit: oneshot::Receiver<Exit>,
}

/// The process groups of live containers, so they can all be killed at once, and so that shutdown
/// can wait until every one of them has been reaped: a host that exits first leaves its
/// containers' processes to PID 1, which in a container or a sandbox may never reap them.
#[derive(Debug, Clone, Default)]
pub struct ProcessTable {
    inner: Arc<TableInner>,
}

#[derive(Debug, Default)]
struct TableInner {
    /// Groups whose leader has not been reaped yet.
    groups: Mutex<HashSet<i32>>,
    emptied: tokio::sync::Notify,
}

impl ProcessTable {
    fn groups(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.inner.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, pgid: i32) {
        self.groups().insert(pgid);
    }

    /// The group's leader was reaped.
    fn remove(&self, pgid: i32) {
        let mut groups = self.groups();
        groups.remove(&pgid);
        if groups.is_empty() {
            self.inner.emptied.notify_waiters();
        }
    }

    /// SIGKILLs every live container process group; each leaves the table once reaped.
    pub fn kill_all(&self) {
        self.signal_all(libc::SIGKILL);
    }

    fn signal_all(&self, signal: i32) {
        let groups: Vec<i32> = self.groups().iter().copied().collect();
        for pgid in groups {
            signal_group(pgid, signal);
        }
    }

    /// Stops every container as a node shutting down does: SIGTERM to each process group, so that
    /// a container's init can stop and reap what it started, then SIGKILL to whatever is left after
    /// `grace`; waits until every container process has been reaped (false if some were not).
    pub async fn stop_all(&self, grace: std::time::Duration) -> bool {
        self.signal_all(libc::SIGTERM);
        if self.reaped(grace).await {
            return true;
        }
        self.kill_all();
        self.reaped(grace).await
    }

    /// Waits until every container process has been reaped; false if some were not `within` it.
    pub async fn reaped(&self, within: std::time::Duration) -> bool {
        let all_reaped = async {
            loop {
                let emptied = self.inner.emptied.notified();
                tokio::pin!(emptied);
                emptied.as_mut().enable();
                if self.groups().is_empty() {
                    return;
                }
                emptied.await;
            }
        };
        tokio::time::timeout(within, all_reaped).await.is_ok()
    }
}

/// Sends `signal` to a whole process group.
pub fn signal_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory-safety preconditions; a vanished group yields ESRCH, ignored.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

type Request = (Launch, Arc<LogBuffer>, oneshot::Sender<std::io::Result<Started>>);

/// Spawns container processes from one long-lived thread (see the module docs for why).
#[derive(Debug, Clone)]
pub struct Spawner {
    requests: mpsc::Sender<Request>,
    table: ProcessTable,
}

impl Spawner {
    /// Starts the spawning thread; it ends when every `Spawner` clone is dropped.
    pub fn start(runtime: tokio::runtime::Handle, table: ProcessTable) -> std::io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let thread_table = table.clone();
        std::thread::Builder::new().name("devcluster-spawner".into()).spawn(move || {
            let _entered = runtime.enter();
            for (launch, buffer, reply) in incoming {
                let result = if launch.tty {
                    spawn_tty(&launch, buffer, &thread_table)
                } else {
                    spawn_piped(&launch, buffer, &thread_table)
                };
                let _ = reply.send(result);
            }
        })?;
        Ok(Self { requests, table })
    }

    pub fn table(&self) -> &ProcessTable {
        &self.table
    }

    /// Starts `launch`, sending its output to `buffer`.
    pub async fn spawn(&self, launch: Launch, buffer: Arc<LogBuffer>) -> std::io::Result<Started> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((launch, buffer, reply)).map_err(|_| std::io::Error::other("the spawner has stopped"))?;
        answer.await.map_err(|_| std::io::Error::other("the spawner has stopped"))?
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

async fn pump(mut from: impl AsyncRead + Unpin, buffer: Arc<LogBuffer>) {
    let mut chunk = vec![0u8; 8192];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.append(&now(), &chunk[..n]),
        }
    }
}

fn spawn_piped(launch: &Launch, buffer: Arc<LogBuffer>, table: &ProcessTable) -> std::io::Result<Started> {
    let (program, args) = launch.argv.split_first().ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).env_clear().envs(launch.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &launch.working_dir {
        command.current_dir(dir);
    }
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command.process_group(0);
    let host = std::process::id() as i32;
    // SAFETY: the closure only makes async-signal-safe system calls (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The host died between fork and prctl: the death signal will never come.
            if libc::getppid() != host {
                return Err(std::io::Error::other("the dev cluster exited while starting the container"));
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pgid = child.id().map(|id| id as i32).ok_or_else(|| std::io::Error::other("the process exited at once"))?;
    table.insert(pgid);
    let stdout = child.stdout.take().map(|o| tokio::spawn(pump(o, buffer.clone())));
    let stderr = child.stderr.take().map(|e| tokio::spawn(pump(e, buffer.clone())));
    let (done, exit) = oneshot::channel();
    let table = table.clone();
    tokio::spawn(async move {
        let status = child.wait().await;
        // Whatever the container started dies with it, as in a container's PID namespace.
        signal_group(pgid, libc::SIGKILL);
        table.remove(pgid);
        for reader in [stdout, stderr].into_iter().flatten() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), reader).await;
        }
        buffer.finish();
        let exit = match status {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                match (status.code(), status.signal()) {
                    (Some(code), _) => Exit { code, signal: None },
                    (None, Some(signal)) => Exit { code: 128 + signal, signal: Some(signal) },
                    (None, None) => Exit { code: 1, signal: None },
                }
            }
            Err(_) => Exit { code: 1, signal: None },
        };
        let _ = done.send(exit);
    });
    Ok(Started { pgid, exit })
}

/// The number of a signal from the description `strsignal` gives (how portable-pty reports it).
fn signal_number(description: &str) -> Option<i32> {
    (1..32).find(|n| {
        // SAFETY: strsignal returns a pointer to a static or thread-local string, read at once.
        let name = unsafe { libc::strsignal(*n) };
        !name.is_null() && unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy() == description
    })
}

fn spawn_tty(launch: &Launch, buffer: Arc<LogBuffer>, table: &ProcessTable) -> std::io::Result<Started> {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let pair = native_pty_system()
        .openpty(PtySize { rows: 24, cols: 80, pixel_width: 0, pixel_height: 0 })
        .map_err(pty_error)?;
    let mut command = CommandBuilder::from_argv(launch.argv.iter().map(Into::into).collect());
    command.env_clear();
    for (k, v) in &launch.env {
        command.env(k, v);
    }
    if let Some(dir) = &launch.working_dir {
        command.cwd(dir);
    }
    let mut child = pair.slave.spawn_command(command).map_err(pty_error)?;
    drop(pair.slave);
    let pgid = child.process_id().map(|id| id as i32).ok_or_else(|| std::io::Error::other("no process id"))?;
    table.insert(pgid);
    let mut reader = pair.master.try_clone_reader().map_err(pty_error)?;
    // Stdin stays open (nothing writes to it yet): keep the writer and master until the process ends.
    let writer = pair.master.take_writer().map_err(pty_error)?;
    let master = pair.master;
    let read_buffer = buffer.clone();
    let reading = std::thread::Builder::new().name("devcluster-pty-read".into()).spawn(move || {
        let mut chunk = vec![0u8; 8192];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => read_buffer.append(&now(), &chunk[..n]),
            }
        }
    })?;
    let (done, exit) = oneshot::channel();
    let table = table.clone();
    std::thread::Builder::new().name("devcluster-pty-wait".into()).spawn(move || {
        let status = child.wait();
        signal_group(pgid, libc::SIGKILL);
        table.remove(pgid);
        drop(writer);
        drop(master);
        let _ = reading.join();
        buffer.finish();
        let exit = match status {
            Ok(status) => match status.signal().and_then(signal_number) {
                Some(signal) => Exit { code: 128 + signal, signal: Some(signal) },
                None => Exit { code: i32::try_from(status.exit_code()).unwrap_or(1), signal: None },
            },
            Err(_) => Exit { code: 1, signal: None },
        };
        let _ = done.send(exit);
    })?;
    Ok(Started { pgid, exit })
}

/// portable-pty reports `anyhow::Error`s; only their text is kept.
fn pty_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(script: &str, tty: bool) -> Launch {
        Launch {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default()), ("ONLY".into(), "this".into())],
            working_dir: None,
            tty,
        }
    }

    fn output(buffer: &LogBuffer) -> String {
        buffer.read_from(0).0.iter().map(|l| String::from_utf8_lossy(&l.data).into_owned()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn piped_processes_lead_their_group_and_report_exit_codes_and_signals() {
        let spawner = Spawner::start(tokio::runtime::Handle::current(), ProcessTable::default()).unwrap();
        let buffer = Arc::new(LogBuffer::new(1024));
        let started =
            spawner.spawn(launch("echo $$ $ONLY ${HOME:-nohome}; exit 4", false), buffer.clone()).await.unwrap();
        assert_eq!(started.exit.await.unwrap(), Exit { code: 4, signal: None });
        assert_eq!(output(&buffer), format!("{} this nohome\n", started.pgid));
        assert!(buffer.read_from(0).1, "the buffer is finished");

        let buffer = Arc::new(LogBuffer::new(1024));
        let started = spawner.spawn(launch("kill -TERM $$", false), buffer).await.unwrap();
        assert_eq!(started.exit.await.unwrap(), Exit { code: 143, signal: Some(libc::SIGTERM) });

        let missing = Launch { argv: vec!["/nonexistent/tool".into()], ..launch("", false) };
        assert!(spawner.spawn(missing, Arc::new(LogBuffer::new(10))).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn terminal_processes_see_a_tty_and_kill_all_ends_and_reaps_them() {
        let table = ProcessTable::default();
        let spawner = Spawner::start(tokio::runtime::Handle::current(), table.clone()).unwrap();
        let buffer = Arc::new(LogBuffer::new(1024));
        let started = spawner.spawn(launch("[ -t 0 ] && echo tty; exit 2", true), buffer.clone()).await.unwrap();
        assert_eq!(started.exit.await.unwrap(), Exit { code: 2, signal: None });
        // A terminal translates newlines to CRLF; it may add an empty line when the session ends.
        let text = output(&buffer);
        assert!(text.starts_with("tty\r\n"), "{text:?}");
        assert_eq!(text.trim_end(), "tty");

        let started = spawner.spawn(launch("exec sleep 600", true), Arc::new(LogBuffer::new(10))).await.unwrap();
        let piped = spawner.spawn(launch("exec sleep 600", false), Arc::new(LogBuffer::new(10))).await.unwrap();
        assert!(!table.reaped(std::time::Duration::from_millis(50)).await, "two processes live");
        table.kill_all();
        assert!(table.reaped(std::time::Duration::from_secs(30)).await, "every process is reaped");
        assert_eq!(started.exit.await.unwrap(), Exit { code: 137, signal: Some(libc::SIGKILL) });
        assert_eq!(piped.exit.await.unwrap(), Exit { code: 137, signal: Some(libc::SIGKILL) });
    }
}
