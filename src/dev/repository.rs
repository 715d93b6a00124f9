//! The demo's pull request as a real repository: a bare repository on disk with two commits, the
//! second a child of the first, so the demo agent reads a real checkout and the fresh reviewer is
//! told the range between them. Authors and dates are fixed, so the commits, and the demo's run
//! names, are the same on every machine.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The demo repository and its two commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoRepository {
    pub url: String,
    pub first: String,
    pub second: String,
}

const FIRST_FILES: [(&str, &str); 2] = [
    ("README.md", "# widgets\n\nParses widget counts.\n"),
    ("lib.rs", "pub fn parse_count(text: &str) -> u32 {\n    text.trim().parse().unwrap()\n}\n"),
];

const SECOND_FILES: [(&str, &str); 2] = [
    (
        "lib.rs",
        "pub fn parse_count(text: &str) -> Result<u32, std::num::ParseIntError> {\n    text.trim().parse()\n}\n",
    ),
    ("CHANGELOG.md", "- parse_count returns an error instead of panicking\n"),
];

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(args)
        // The user's own configuration (hooks, signing, templates) stays out of the demo.
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Demo Worker")
        .env("GIT_AUTHOR_EMAIL", "worker@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_NAME", "Demo Worker")
        .env("GIT_COMMITTER_EMAIL", "worker@example.com")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .map_err(|error| format!("running git: {error}"))?;
    if !output.status.success() {
        return Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn commit(work: &Path, files: &[(&str, &str)], message: &str) -> Result<String, String> {
    for (name, contents) in files {
        std::fs::write(work.join(name), contents).map_err(|error| format!("writing {name}: {error}"))?;
    }
    git(work, &["add", "--all"])?;
    git(work, &["commit", "--quiet", "-m", message])?;
    git(work, &["rev-parse", "HEAD"])
}

/// Makes the repository afresh under `dir` (`demo-repository.git`, served as a `file://` URL).
pub fn create(dir: &Path) -> Result<DemoRepository, String> {
    let bare: PathBuf = dir.join("demo-repository.git");
    let work = dir.join("demo-repository-work");
    for path in [&bare, &work] {
        match std::fs::remove_dir_all(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("removing {}: {error}", path.display()));
            }
            _ => {}
        }
        std::fs::create_dir_all(path).map_err(|error| format!("creating {}: {error}", path.display()))?;
    }
    let bare = std::fs::canonicalize(&bare).map_err(|error| format!("{}: {error}", bare.display()))?;
    git(&bare, &["init", "--quiet", "--bare"])?;
    git(&work, &["init", "--quiet"])?;
    let first = commit(&work, &FIRST_FILES, "Parse widget counts")?;
    let second = commit(&work, &SECOND_FILES, "Return an error for a malformed count")?;
    let url = format!("file://{}", bare.display());
    git(&work, &["push", "--quiet", &url, "HEAD:refs/heads/main"])?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(DemoRepository { url, first, second })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_repository_is_the_same_everywhere_and_its_second_commit_follows_the_first() {
        let dir = std::env::temp_dir().join(format!("review-demo-repo-{}", uuid::Uuid::new_v4().simple()));
        let repository = create(&dir).expect("the demo repository");
        let again = create(&dir).expect("made afresh");
        assert_eq!(repository, again);
        let bare = dir.join("demo-repository.git");
        let parent = git(&bare, &["rev-parse", &format!("{}^", repository.second)]).unwrap();
        assert_eq!(parent, repository.first);
        assert_eq!(git(&bare, &["rev-parse", "main"]).unwrap(), repository.second);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
