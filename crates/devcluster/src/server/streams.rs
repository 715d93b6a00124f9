//! `pods/exec` and `pods/attach` over WebSocket, in the `v5.channel.k8s.io` and
//! `v4.channel.k8s.io` protocols kubectl speaks: every binary frame starts with its channel
//! (0 stdin, 1 stdout, 2 stderr, 3 the final `Status`, 4 terminal resizes; in v5, 255 closes the
//! channel its second byte names).
//!
//! `exec` runs the command as one more local process of the container: with the environment and
//! folder the container's own processes got. `attach` streams what the container prints from
//! then on. The SPDY protocol older clients fall back to is not served, and terminals are not
//! emulated: a command asked for with `tty` runs on pipes.

use axum::extract::ws::{Message, WebSocket};
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ApiError;
use crate::meta;
use crate::request::Query;
use crate::runner::exec::ExecTarget;
use crate::runner::logs::LogBuffer;

/// The protocols served, preferred first.
pub(super) const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;

/// The query of an exec or attach request (`PodExecOptions`, `PodAttachOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamOptions {
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl StreamOptions {
    /// The options of an exec (`command` required) or an attach request, with the API server's
    /// errors.
    pub(super) fn parse(query: &Query, exec: bool) -> Result<Self, ApiError> {
        let options = Self {
            container: query.get("container").map(str::to_string),
            command: query.all("command").into_iter().map(str::to_string).collect(),
            stdin: query.flag("stdin"),
            stdout: query.flag("stdout"),
            stderr: query.flag("stderr"),
        };
        if exec && options.command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least 1 command"));
        }
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
        }
        Ok(options)
    }

    /// The `PodExecOptions` or `PodAttachOptions` admission sees for the connection.
    pub(super) fn admission_object(&self, exec: bool) -> Value {
        let mut object = json!({
            "kind": if exec { "PodExecOptions" } else { "PodAttachOptions" },
            "apiVersion": "v1",
            "stdin": self.stdin,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "tty": false,
        });
        if let Some(container) = &self.container {
            object["container"] = json!(container);
        }
        if exec {
            object["command"] = json!(self.command);
        }
        object
    }
}

/// The container ID a stream goes to: the named (or only) container, which must be running.
pub(super) fn running_container(pod: &Value, container: &str) -> Result<String, ApiError> {
    let pod_name = meta::str_at(pod, "/metadata/name");
    let phase = meta::str_at(pod, "/status/phase");
    if matches!(phase, "Succeeded" | "Failed") {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array);
    let status = statuses.into_iter().flatten().find(|s| s["name"] == container);
    let id = status
        .filter(|s| s.pointer("/state/running").is_some())
        .map(|s| meta::str_at(s, "/containerID").to_string())
        .filter(|id| !id.is_empty());
    id.ok_or_else(|| {
        ApiError::bad_request(format!(
            "unable to upgrade connection: container not found (\"{container}\") in pod {pod_name}"
        ))
    })
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

/// The `Status` sent on the error channel when a command ends.
fn exit_status(code: Option<i32>) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(code) => json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}}),
        None => json!({"metadata": {}, "status": "Failure", "message": "command terminated by a signal",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "137"}]}}),
    }
}

fn failure(message: String) -> Value {
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"})
}

async fn finish(socket: &mut WebSocket, status: &Value) {
    let _ = socket.send(frame(ERROR, status.to_string().as_bytes())).await;
    // A normal closure, which clients read as the end of every stream (a bare close is an error).
    let close = axum::extract::ws::CloseFrame { code: axum::extract::ws::close_code::NORMAL, reason: "".into() };
    let _ = socket.send(Message::Close(Some(close))).await;
}

/// Runs an exec session: the command's output to the client, the client's input to the command,
/// and the exit status last.
pub(super) async fn exec(mut socket: WebSocket, target: ExecTarget, options: StreamOptions) {
    let mut command = tokio::process::Command::new(&options.command[0]);
    command
        .args(&options.command[1..])
        .env_clear()
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .stdin(if options.stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = target.working_dir.as_ref().filter(|d| d.is_dir()) {
        command.current_dir(dir);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let message =
                format!("exec failed: unable to start container process: exec: {:?}: {e}", options.command[0]);
            return finish(&mut socket, &failure(message)).await;
        }
    };
    let mut stdin = child.stdin.take();
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let (mut out_buf, mut err_buf) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    let mut exit = None;
    loop {
        tokio::select! {
            read = read_some(&mut stdout, &mut out_buf) => match read {
                Some(n) => if options.stdout && socket.send(frame(STDOUT, &out_buf[..n])).await.is_err() { return },
                None => stdout = None,
            },
            read = read_some(&mut stderr, &mut err_buf) => match read {
                Some(n) => if options.stderr && socket.send(frame(STDERR, &err_buf[..n])).await.is_err() { return },
                None => stderr = None,
            },
            status = child.wait(), if exit.is_none() => {
                exit = Some(status.ok().and_then(|s| s.code()));
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(data))) => match data.first() {
                    Some(&STDIN) => {
                        if let Some(pipe) = stdin.as_mut()
                            && pipe.write_all(&data[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    Some(&CLOSE) if data.get(1) == Some(&STDIN) => stdin = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
        if let (Some(code), None, None) = (exit, &stdout, &stderr) {
            return finish(&mut socket, &exit_status(code)).await;
        }
    }
}

/// Reads once from a pipe that may be gone: `None` at its end (and forever after, without
/// waking, so a `select!` waits on the others).
async fn read_some(pipe: &mut Option<impl AsyncReadExt + Unpin>, buf: &mut [u8]) -> Option<usize> {
    match pipe {
        Some(reader) => match reader.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// Runs an attach session: what the container prints from now on, until it ends.
pub(super) async fn attach(mut socket: WebSocket, output: std::sync::Arc<LogBuffer>, options: StreamOptions) {
    let mut changed = output.subscribe();
    let mut next = output.tail_start(0);
    loop {
        let (lines, finished) = output.read_from(next);
        for line in lines {
            next = line.seq + 1;
            if (options.stdout || options.stderr) && socket.send(frame(STDOUT, &line.data)).await.is_err() {
                return;
            }
        }
        if finished {
            return finish(&mut socket, &exit_status(Some(0))).await;
        }
        tokio::select! {
            change = changed.changed() => if change.is_err() { return finish(&mut socket, &exit_status(Some(0))).await },
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_need_a_command_and_a_stream() {
        let query = Query::parse(Some("command=ls&command=-l&stdout=true&container=app"));
        let options = StreamOptions::parse(&query, true).unwrap();
        assert_eq!(options.command, ["ls", "-l"]);
        assert_eq!(options.container.as_deref(), Some("app"));
        let err = StreamOptions::parse(&Query::parse(Some("stdout=true")), true).unwrap_err();
        assert_eq!(err.message, "you must specify at least 1 command");
        let err = StreamOptions::parse(&Query::parse(Some("command=ls")), true).unwrap_err();
        assert_eq!(err.message, "you must specify at least 1 of stdin, stdout, stderr");
        assert!(StreamOptions::parse(&Query::parse(Some("stdout=1")), false).is_ok());
    }

    #[test]
    fn exit_codes_become_statuses() {
        assert_eq!(exit_status(Some(0))["status"], "Success");
        let failed = exit_status(Some(3));
        assert_eq!(
            (failed["reason"].as_str(), failed["details"]["causes"][0]["message"].as_str()),
            (Some("NonZeroExitCode"), Some("3"))
        );
    }

    #[test]
    fn only_running_containers_take_streams() {
        let pod = |state: Value, phase: &str| {
            json!({"metadata": {"name": "p"}, "status": {"phase": phase,
            "containerStatuses": [{"name": "app", "containerID": "devcluster://1", "state": state}]}})
        };
        assert_eq!(running_container(&pod(json!({"running": {}}), "Running"), "app").unwrap(), "devcluster://1");
        let err = running_container(&pod(json!({"waiting": {}}), "Pending"), "app").unwrap_err();
        assert!(err.message.contains("container not found (\"app\")"), "{}", err.message);
        let err = running_container(&pod(json!({"terminated": {}}), "Succeeded"), "app").unwrap_err();
        assert!(err.message.contains("completed pod"), "{}", err.message);
    }
}
