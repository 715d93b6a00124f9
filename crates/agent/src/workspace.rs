//! The reviewer pod's workspace: one bare clone per repository and a
//! worktree per run at the run's head SHA, so that the agent reads the code it
//! reviews and a follow-up run fetches only the commits that are new.
//!
//! It drives the `git` command, which the agent image must provide (reviewer
//! images carry git for their agents anyway). Credentials reach `git` through
//! its environment, never its arguments, and never the agent's environment.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::api::{PullRequest, WorkspaceSpec};

pub use crate::api::pod_env::{SSH_KEY_ENV, TOKEN_ENV, WORKSPACE_ENV};
/// Variables the supervisor reads and the agent never sees.
pub const WITHHELD_ENV: [&str; 2] = [TOKEN_ENV, SSH_KEY_ENV];

/// How often a checkout is tried before its run fails.
pub const CHECKOUT_ATTEMPTS: u32 = 3;
/// The wait after the first failed attempt; it doubles after each.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long one git command may take (a first fetch of a large repository).
pub const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a checkout failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    #[error("the agent image has no git command ({0}); the workspace needs git on the PATH")]
    NoGit(String),
    #[error("git {command} failed: {message}")]
    Git { command: String, message: String },
    #[error("commit {sha} is not in {url}")]
    MissingCommit { sha: String, url: String },
    #[error("preparing {path}: {message}")]
    Io { path: String, message: String },
}

impl CheckoutError {
    /// Failures that another attempt cannot fix.
    fn is_permanent(&self) -> bool {
        matches!(self, Self::NoGit(_))
    }
}

/// What `git` authenticates with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    token: Option<String>,
    ssh_key: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("ssh_key", &self.ssh_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The workspace of one pod.
#[derive(Clone, Debug)]
pub struct Workspace {
    root: PathBuf,
    credentials: Credentials,
    /// The Reviewer's settings: where runs are cloned from.
    settings: WorkspaceSpec,
}

impl Workspace {
    /// The workspace `WORKSPACE_ENV` names, with the credentials the kubelet passed; `None`
    /// when the Reviewer has none. A relative folder is taken from the working directory.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let root = PathBuf::from(lookup(WORKSPACE_ENV).filter(|dir| !dir.is_empty())?);
        let root = match root.is_absolute() {
            true => root,
            false => std::env::current_dir().map(|dir| dir.join(&root)).unwrap_or(root),
        };
        let secret = |name| lookup(name).filter(|value| !value.trim().is_empty());
        let credentials = Credentials { token: secret(TOKEN_ENV), ssh_key: secret(SSH_KEY_ENV) };
        Some(Self { root, credentials, settings: WorkspaceSpec::default() })
    }

    /// The workspace with the Reviewer's `spec.workspace` settings.
    pub fn with_settings(self, settings: WorkspaceSpec) -> Self {
        Self { settings, ..self }
    }

    /// Where a run of `pull_request` is cloned from; `None` when it is not checked out.
    pub fn clone_source(&self, pull_request: &PullRequest) -> Option<String> {
        self.settings.clone_source(pull_request)
    }

    /// Where `run` is checked out.
    pub fn checkout_path(&self, run: &str) -> PathBuf {
        self.root.join(run)
    }

    /// Where files handed over to `run` (the earlier verdict) are kept, beside its checkout.
    pub fn handoff_dir(&self, run: &str) -> PathBuf {
        self.root.join(".handoff").join(run)
    }

    /// The bare clone that holds every commit fetched from `url`.
    fn clone_dir(&self, url: &str) -> PathBuf {
        let digest = Sha256::digest(url.as_bytes());
        self.root.join(".clones").join(hex::encode(&digest[..8]))
    }

    /// Checks `sha` of `url` out at [`Workspace::checkout_path`] of `run`, trying
    /// [`CHECKOUT_ATTEMPTS`] times.
    pub async fn checkout(&self, url: &str, sha: &str, run: &str) -> Result<PathBuf, CheckoutError> {
        let mut wait = FIRST_RETRY;
        let mut attempt = 1;
        loop {
            match self.checkout_once(url, sha, run).await {
                Ok(path) => return Ok(path),
                Err(error) if error.is_permanent() || attempt >= CHECKOUT_ATTEMPTS => return Err(error),
                Err(error) => {
                    tracing::warn!(run, sha, url, attempt, %error, "checkout failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }

    async fn checkout_once(&self, url: &str, sha: &str, run: &str) -> Result<PathBuf, CheckoutError> {
        let clone = self.clone_dir(url);
        let commit = self.fetch(&clone, url, sha).await?;
        let path = self.checkout_path(run);
        if path.exists() {
            let head = self.git(Some(&path), &["rev-parse", "HEAD"]).await.ok();
            if head.as_deref().map(str::trim) == Some(commit.as_str()) {
                return Ok(path);
            }
            // A checkout left half-made by an earlier attempt.
            let _ = self.git(Some(&clone), &["worktree", "remove", "--force", &path.display().to_string()]).await;
            std::fs::remove_dir_all(&path).or_else(ignore_missing).map_err(|e| io_error(&path, &e))?;
            let _ = self.git(Some(&clone), &["worktree", "prune"]).await;
        }
        self.git(Some(&clone), &["worktree", "add", "--detach", "--force", &path.display().to_string(), &commit])
            .await?;
        Ok(path)
    }

    /// Makes `sha` present in the clone for `url`, fetching only when it is missing, and
    /// returns the full commit name.
    async fn fetch(&self, clone: &Path, url: &str, sha: &str) -> Result<String, CheckoutError> {
        if !clone.join("HEAD").exists() {
            std::fs::create_dir_all(clone).map_err(|e| io_error(clone, &e))?;
            self.git(Some(clone), &["init", "--bare", "--quiet"]).await?;
        }
        if let Some(commit) = self.resolve(clone, sha).await {
            return Ok(commit);
        }
        // A full SHA is fetched by itself (GitHub and git's own servers allow it). Failing that,
        // or for an abbreviated one, the branches and pull request heads, where it must be.
        if sha.len() == 40 || sha.len() == 64 {
            // Its failure is no answer yet: the branches may still hold the commit.
            let _ = self.git(Some(clone), &["fetch", "--quiet", "--no-tags", url, sha]).await;
            if let Some(commit) = self.resolve(clone, sha).await {
                return Ok(commit);
            }
        }
        let refs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/pull/*/head:refs/remotes/pull/*"];
        self.git(Some(clone), &["fetch", "--quiet", "--no-tags", url, refs[0], refs[1]]).await?;
        self.resolve(clone, sha)
            .await
            .ok_or_else(|| CheckoutError::MissingCommit { sha: sha.to_owned(), url: url.to_owned() })
    }

    /// The full name of commit `sha` when the clone has it.
    async fn resolve(&self, clone: &Path, sha: &str) -> Option<String> {
        let spec = format!("{sha}^{{commit}}");
        let out = self.git(Some(clone), &["rev-parse", "--verify", "--quiet", &spec]).await.ok()?;
        Some(out.trim().to_owned()).filter(|commit| !commit.is_empty())
    }

    /// Whether `old` is an ancestor of `new` in `url`'s history; `false` when `old` cannot be
    /// found any more (a force-push dropped it), `None` when git cannot tell.
    pub async fn is_ancestor(&self, url: &str, old: &str, new: &str) -> Option<bool> {
        let clone = self.clone_dir(url);
        let new = self.resolve(&clone, new).await?;
        let old = match self.fetch(&clone, url, old).await {
            Ok(old) => old,
            Err(CheckoutError::MissingCommit { .. }) => return Some(false),
            Err(_) => return None,
        };
        let mut command = self.command(Some(&clone), &["merge-base", "--is-ancestor", &old, &new]);
        match command.status().await.ok()?.code() {
            Some(0) => Some(true),
            Some(1) => Some(false),
            _ => None,
        }
    }

    /// Writes `contents` as `name` into the handoff folder of `run`, and returns its path.
    pub fn write_handoff(&self, run: &str, name: &str, contents: &str) -> Result<PathBuf, CheckoutError> {
        let dir = self.handoff_dir(run);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, &e))?;
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|e| io_error(&path, &e))?;
        Ok(path)
    }

    fn command(&self, dir: Option<&Path>, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("git");
        if let Some(dir) = dir {
            command.arg("-C").arg(dir);
        }
        command
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in WITHHELD_ENV {
            command.env_remove(name);
        }
        if let Some(token) = &self.credentials.token {
            // As configuration from the environment, so the token is in no process's arguments.
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}"));
        }
        command
    }

    /// Runs git and returns its standard output.
    async fn git(&self, dir: Option<&Path>, args: &[&str]) -> Result<String, CheckoutError> {
        let key = match &self.credentials.ssh_key {
            Some(key) => Some(SshKey::write(key).map_err(|e| io_error(Path::new("the SSH key"), &e))?),
            None => None,
        };
        let mut command = self.command(dir, args);
        if let Some(key) = &key {
            let ssh =
                format!("ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new", key.path.display());
            command.env("GIT_SSH_COMMAND", ssh);
        }
        let name = args.first().copied().unwrap_or("").to_owned();
        let output = match tokio::time::timeout(GIT_TIMEOUT, command.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(CheckoutError::NoGit(error.to_string()));
            }
            Ok(Err(error)) => return Err(CheckoutError::Git { command: name, message: error.to_string() }),
            Err(_) => {
                let message = format!("no answer within {}s", GIT_TIMEOUT.as_secs());
                return Err(CheckoutError::Git { command: name, message });
            }
        };
        drop(key);
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        // git's first `fatal:` line says why; what follows is advice.
        let mut lines = stderr.lines().map(str::trim).filter(|line| !line.is_empty());
        let fatal = stderr.lines().find_map(|line| line.trim().strip_prefix("fatal: "));
        let message = fatal.or_else(|| lines.next_back()).unwrap_or("").to_owned();
        let message = if message.is_empty() { output.status.to_string() } else { message };
        Err(CheckoutError::Git { command: name, message })
    }
}

/// An SSH private key in a file only its owner reads, for one git command; removed after it.
struct SshKey {
    path: PathBuf,
}

impl SshKey {
    fn write(key: &str) -> std::io::Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::env::temp_dir().join(format!("review-ssh-key-{}", uuid::Uuid::new_v4().simple()));
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        file.write_all(key.as_bytes())?;
        if !key.ends_with('\n') {
            file.write_all(b"\n")?;
        }
        Ok(Self { path })
    }
}

impl Drop for SshKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn ignore_missing(error: std::io::Error) -> std::io::Result<()> {
    if error.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(error) }
}

fn io_error(path: &Path, error: &std::io::Error) -> CheckoutError {
    CheckoutError::Io { path: path.display().to_string(), message: error.to_string() }
}
