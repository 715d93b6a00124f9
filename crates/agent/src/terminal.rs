//! The agent's pseudo-terminal: spawns the agent as the leader of its own
//! session (and so process group), mirrors everything it shows to stdout,
//! writes input the way a terminal emulator pastes it, and ends the whole
//! process group.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};
use tokio::sync::oneshot;

use super::transcript::Transcript;

/// Errors starting or talking to the agent's terminal.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("no agent command: pass it after `--` (spec.agent.command and args)")]
    NoCommand,
    #[error("cannot start {command:?} in a pseudo-terminal: {message}")]
    Spawn { command: String, message: String },
    #[error("the agent's terminal is closed")]
    Closed,
}

/// Tracks whether the program in the terminal enabled bracketed paste
/// (`ESC[?2004h` / `ESC[?2004l`), across reads that may split a sequence.
#[derive(Debug, Default)]
pub struct PasteMode {
    enabled: bool,
    tail: Vec<u8>,
}

const ENABLE: &[u8] = b"\x1b[?2004h";
const DISABLE: &[u8] = b"\x1b[?2004l";

impl PasteMode {
    /// Feeds output bytes; returns whether bracketed paste is enabled after them.
    pub fn observe(&mut self, bytes: &[u8]) -> bool {
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(bytes);
        let last = |needle: &[u8]| window.windows(needle.len()).rposition(|w| w == needle);
        match (last(ENABLE), last(DISABLE)) {
            (Some(on), Some(off)) => self.enabled = on > off,
            (Some(_), None) => self.enabled = true,
            (None, Some(_)) => self.enabled = false,
            (None, None) => {}
        }
        let keep = window.len().saturating_sub(ENABLE.len() - 1);
        self.tail = window.split_off(keep);
        self.enabled
    }
}

/// What to type for `text`: lines joined by `\n`, wrapped in bracketed-paste
/// markers when the program asked for them, then Enter (`\r`), as a terminal
/// emulator sends a paste followed by Enter.
pub fn typed_input(text: &str, bracketed: bool) -> Vec<u8> {
    let body = text.trim_end_matches('\n');
    let mut out = Vec::with_capacity(body.len() + 16);
    if bracketed {
        out.extend_from_slice(b"\x1b[200~");
    }
    out.extend_from_slice(body.as_bytes());
    if bracketed {
        out.extend_from_slice(b"\x1b[201~");
    }
    out.push(b'\r');
    out
}

/// A running agent in its pseudo-terminal.
pub struct Terminal {
    /// Keeps the terminal open for as long as the agent runs.
    _master: Box<dyn MasterPty + Send>,
    input: std::sync::mpsc::Sender<String>,
    process_group: Option<i32>,
    exited: Option<oneshot::Receiver<u32>>,
    transcript: Arc<Mutex<Transcript>>,
}

impl Terminal {
    /// Starts `command` in a new pseudo-terminal, mirroring its output to stdout.
    pub fn spawn(command: &[String]) -> Result<Self, TerminalError> {
        Self::spawn_withholding(command, &[])
    }

    /// [`Terminal::spawn`], without the variables `withheld` in the agent's environment.
    pub fn spawn_withholding(command: &[String], withheld: &[&str]) -> Result<Self, TerminalError> {
        let (program, args) = command.split_first().ok_or(TerminalError::NoCommand)?;
        let spawn_error =
            |e: &dyn std::fmt::Display| TerminalError::Spawn { command: command.join(" "), message: e.to_string() };
        let pair = native_pty_system()
            .openpty(PtySize { rows: 50, cols: 200, pixel_width: 0, pixel_height: 0 })
            .map_err(|e| spawn_error(&e))?;
        let mut builder = CommandBuilder::new(program);
        builder.args(args);
        if let Ok(dir) = std::env::current_dir() {
            builder.cwd(dir);
        }
        for name in withheld {
            builder.env_remove(name);
        }
        if std::env::var_os("TERM").is_none() {
            builder.env("TERM", "xterm-256color");
        }
        let mut child = pair.slave.spawn_command(builder).map_err(|e| spawn_error(&e))?;
        // Only the agent holds the terminal's other end, so reads end when it is gone.
        drop(pair.slave);
        let process_group = child.process_id().and_then(|pid| i32::try_from(pid).ok());
        let reader = pair.master.try_clone_reader().map_err(|e| spawn_error(&e))?;
        let writer = pair.master.take_writer().map_err(|e| spawn_error(&e))?;
        let bracketed = Arc::new(AtomicBool::new(false));
        let transcript = Arc::new(Mutex::new(Transcript::default()));
        std::thread::spawn({
            let bracketed = bracketed.clone();
            let transcript = transcript.clone();
            move || mirror(reader, &bracketed, &transcript)
        });
        let (input, queued) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || type_input(writer, &queued, &bracketed));
        let (exit_tx, exited) = oneshot::channel();
        std::thread::spawn(move || {
            let code = child.wait().map(|status| status.exit_code()).unwrap_or(1);
            let _ = exit_tx.send(code);
        });
        tracing::info!(command = %command.join(" "), pid = ?process_group, "agent started");
        Ok(Self { _master: pair.master, input, process_group, exited: Some(exited), transcript })
    }

    /// What the terminal printed so far.
    pub fn transcript(&self) -> Arc<Mutex<Transcript>> {
        self.transcript.clone()
    }

    /// Types `text` into the terminal (without blocking on a slow reader).
    pub fn type_text(&self, text: &str) -> Result<(), TerminalError> {
        self.input.send(text.to_owned()).map_err(|_| TerminalError::Closed)
    }

    /// Waits for the agent to exit; its exit code.
    pub async fn wait(&mut self) -> u32 {
        match &mut self.exited {
            Some(exited) => {
                let code = exited.await.unwrap_or(1);
                self.exited = None;
                code
            }
            None => std::future::pending().await,
        }
    }

    /// Ends the agent's whole process group: SIGTERM, then SIGKILL after
    /// `grace` (or at once once the leader exited, for stragglers), and
    /// waits until the leader is reaped.
    pub async fn terminate(&mut self, grace: Duration) -> u32 {
        self.signal_group(libc::SIGTERM);
        let exited = tokio::time::timeout(grace, self.wait()).await;
        self.signal_group(libc::SIGKILL);
        match exited {
            Ok(code) => code,
            Err(_) => {
                // SIGKILL cannot be ignored: the exit comes promptly, and waiting for it reaps the leader.
                let _ = tokio::time::timeout(grace, self.wait()).await;
                128 + 9
            }
        }
    }

    /// Sends `signal` to the agent's process group; a group already gone is fine.
    pub fn signal_group(&self, signal: i32) {
        if let Some(group) = self.process_group {
            // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
            let result = unsafe { libc::kill(-group, signal) };
            if result != 0 {
                tracing::debug!(group, signal, error = %std::io::Error::last_os_error(), "signalling the agent's process group");
            }
        }
    }
}

fn mirror(mut reader: Box<dyn Read + Send>, bracketed: &AtomicBool, transcript: &Mutex<Transcript>) {
    let mut paste = PasteMode::default();
    let mut buffer = [0u8; 8192];
    loop {
        match reader.read(&mut buffer) {
            // EOF, or EIO once the agent's side of the terminal is closed.
            Ok(0) | Err(_) => break,
            Ok(n) => {
                bracketed.store(paste.observe(&buffer[..n]), Ordering::Relaxed);
                if let Ok(mut transcript) = transcript.lock() {
                    transcript.record(&buffer[..n]);
                }
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&buffer[..n]).and_then(|()| stdout.flush());
            }
        }
    }
}

fn type_input(mut writer: Box<dyn Write + Send>, queued: &std::sync::mpsc::Receiver<String>, bracketed: &AtomicBool) {
    while let Ok(text) = queued.recv() {
        let bytes = typed_input(&text, bracketed.load(Ordering::Relaxed));
        if let Err(error) = writer.write_all(&bytes).and_then(|()| writer.flush()) {
            tracing::warn!(%error, "writing to the agent's terminal");
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paste_mode_follows_the_last_sequence_even_when_split() {
        let mut mode = PasteMode::default();
        assert!(!mode.observe(b"hello"));
        assert!(!mode.observe(b"\x1b[?20"));
        assert!(mode.observe(b"04h prompt> "));
        assert!(mode.observe(b"more output"));
        assert!(!mode.observe(b"\x1b[?2004l bye"));
        assert!(mode.observe(b"\x1b[?2004l\x1b[?2004h"));
    }

    #[test]
    fn typed_input_pastes_then_presses_enter() {
        assert_eq!(typed_input("a\nb\n", false), b"a\nb\r");
        assert_eq!(typed_input("a\nb", true), b"\x1b[200~a\nb\x1b[201~\r");
    }

    #[tokio::test]
    async fn the_agent_reads_typed_lines_and_its_group_is_ended() {
        // `head -n 2` echoes what it is typed and exits after two lines.
        let mut terminal = Terminal::spawn(&["head".into(), "-n".into(), "2".into()]).unwrap();
        terminal.type_text("first\nsecond").unwrap();
        assert_eq!(tokio::time::timeout(Duration::from_secs(30), terminal.wait()).await.unwrap(), 0);

        let mut sleeper =
            Terminal::spawn(&["sh".into(), "-c".into(), "sleep 600 & sleep 600; echo never".into()]).unwrap();
        let group = sleeper.process_group.unwrap();
        let code = sleeper.terminate(Duration::from_secs(5)).await;
        assert_ne!(code, 0, "sh is ended by SIGTERM");
        // The background `sleep` of the group is gone too (kill(pgid, 0) fails with ESRCH).
        let mut gone = false;
        for _ in 0..200 {
            // SAFETY: signal 0 only checks for existence.
            if unsafe { libc::kill(-group, 0) } != 0 {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "process group {group} still has members");
    }

    #[test]
    fn an_empty_command_is_refused() {
        assert!(matches!(Terminal::spawn(&[]), Err(TerminalError::NoCommand)));
    }
}
