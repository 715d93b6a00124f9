//! Local git repositories for the workspace tests: a bare repository served over `file://`,
//! with commits made through a scratch clone.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A bare repository and a scratch clone that commits into it.
pub struct Repository {
    pub root: PathBuf,
    pub bare: PathBuf,
    work: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .expect("git runs (the tests need the git command)");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Repository {
    /// An empty repository under a new temporary folder.
    pub fn new(label: &str) -> Self {
        let root = std::env::temp_dir().join(format!("review-git-{label}-{}", uuid::Uuid::new_v4().simple()));
        let bare = root.join("origin.git");
        let work = root.join("work");
        std::fs::create_dir_all(&bare).expect("repository folder");
        std::fs::create_dir_all(&work).expect("work folder");
        git(&bare, &["init", "--bare", "--quiet"]);
        git(&work, &["init", "--quiet"]);
        Self { root, bare, work }
    }

    /// The `file://` URL to clone it from.
    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Commits `files` (name, contents) on top of `parent` (a new root commit when `None`) and
    /// pushes it as `branch`; returns the commit's full SHA.
    pub fn commit(&self, branch: &str, parent: Option<&str>, files: &[(&str, &str)], message: &str) -> String {
        match parent {
            Some(parent) => {
                git(&self.work, &["checkout", "--quiet", "--detach", parent]);
            }
            None => {
                git(
                    &self.work,
                    &["checkout", "--quiet", "--orphan", &format!("orphan-{}", uuid::Uuid::new_v4().simple())],
                );
                let _ = Command::new("git").arg("-C").arg(&self.work).args(["rm", "-rf", "--quiet", "."]).output();
            }
        }
        for (name, contents) in files {
            std::fs::write(self.work.join(name), contents).expect("file written");
        }
        git(&self.work, &["add", "--all"]);
        git(&self.work, &["commit", "--quiet", "--allow-empty", "-m", message]);
        let sha = git(&self.work, &["rev-parse", "HEAD"]);
        git(&self.work, &["push", "--quiet", "--force", &self.url(), &format!("HEAD:refs/heads/{branch}")]);
        sha
    }
}

impl Drop for Repository {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
