//! The GitHub flags of `review-operator controller` and `review-operator
//! dev`: where delivery writes and as whom. Without a credential, delivery
//! is off and runs say nothing about it.

use std::path::{Path, PathBuf};

use crate::delivery::DeliverySettings;
use crate::delivery::github::GitHubAuth;

/// GitHub delivery flags; every flag also reads an environment variable.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct GitHubArgs {
    /// The GitHub REST API: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise.
    #[arg(long, env = "REVIEW_OPERATOR_GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
    /// A file holding a GitHub token (commit statuses and reviews; check runs need an App).
    #[arg(long, env = "REVIEW_OPERATOR_GITHUB_TOKEN_FILE", value_name = "PATH", conflicts_with_all = ["github_app_id", "github_app_key_file"])]
    pub github_token_file: Option<PathBuf>,
    /// The GitHub App's id, with --github-app-key-file.
    #[arg(long, env = "REVIEW_OPERATOR_GITHUB_APP_ID", requires = "github_app_key_file")]
    pub github_app_id: Option<u64>,
    /// A file holding the GitHub App's private key (PEM), with --github-app-id.
    #[arg(long, env = "REVIEW_OPERATOR_GITHUB_APP_KEY_FILE", value_name = "PATH", requires = "github_app_id")]
    pub github_app_key_file: Option<PathBuf>,
}

/// A GitHub flag that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GitHubArgsError {
    #[error("{flag} {path}: cannot read it: {reason}")]
    Unreadable { flag: &'static str, path: String, reason: String },
    #[error("{flag} {path}: the file is empty")]
    Empty { flag: &'static str, path: String },
    #[error(
        "{flag} {path}: expected a PEM private key (-----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----)"
    )]
    NotPem { flag: &'static str, path: String },
    #[error("--github-api-url {0:?}: expected an http or https URL such as https://api.github.com")]
    ApiUrl(String),
    #[error("--github-app-id and --github-app-key-file go together")]
    IncompleteApp,
}

impl GitHubArgs {
    /// The delivery settings, or `None` when no credential is given.
    pub fn delivery(&self) -> Result<Option<DeliverySettings>, GitHubArgsError> {
        let auth = match (&self.github_token_file, self.github_app_id, &self.github_app_key_file) {
            (None, None, None) => return Ok(None),
            (Some(path), None, None) => GitHubAuth::Token(read("--github-token-file", path)?),
            (None, Some(app_id), Some(path)) => {
                let key = read("--github-app-key-file", path)?;
                if !key.starts_with("-----BEGIN") || !key.contains("PRIVATE KEY-----") {
                    return Err(GitHubArgsError::NotPem {
                        flag: "--github-app-key-file",
                        path: path.display().to_string(),
                    });
                }
                GitHubAuth::App { app_id, private_key_pem: key }
            }
            _ => return Err(GitHubArgsError::IncompleteApp),
        };
        let url = self.github_api_url.trim_end_matches('/');
        if crate::delivery::target::web_host(url).is_none() {
            return Err(GitHubArgsError::ApiUrl(self.github_api_url.clone()));
        }
        Ok(Some(DeliverySettings { api_url: url.to_owned(), auth }))
    }
}

/// A credential file's content, trimmed.
fn read(flag: &'static str, path: &Path) -> Result<String, GitHubArgsError> {
    let text = std::fs::read_to_string(path).map_err(|error| GitHubArgsError::Unreadable {
        flag,
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(GitHubArgsError::Empty { flag, path: path.display().to_string() });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        github: GitHubArgs,
    }

    fn parse(args: &[&str]) -> Result<GitHubArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).map(|cli| cli.github)
    }

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("review-github-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn without_a_credential_delivery_is_off() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.github_api_url, "https://api.github.com");
        assert!(args.delivery().unwrap().is_none());
    }

    #[test]
    fn a_token_file_is_read_and_trimmed() {
        let path = file("token", "ghp_secret\n");
        let args = parse(&[
            "--github-token-file",
            path.to_str().unwrap(),
            "--github-api-url",
            "https://ghe.example.com/api/v3/",
        ])
        .unwrap();
        let settings = args.delivery().unwrap().unwrap();
        assert_eq!(settings.api_url, "https://ghe.example.com/api/v3");
        assert!(matches!(settings.auth, GitHubAuth::Token(ref token) if token == "ghp_secret"));
    }

    #[test]
    fn an_app_needs_its_id_and_key() {
        let key = file("key.pem", "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n");
        let args = parse(&["--github-app-id", "42", "--github-app-key-file", key.to_str().unwrap()]).unwrap();
        assert!(matches!(args.delivery().unwrap().unwrap().auth, GitHubAuth::App { app_id: 42, .. }));
        let error = parse(&["--github-app-id", "42"]).unwrap_err().to_string();
        assert!(error.contains("--github-app-key-file"), "{error}");
        let token = file("token2", "t");
        let both =
            ["--github-token-file", token.to_str().unwrap(), "--github-app-id", "1", "--github-app-key-file", "k"];
        assert!(parse(&both).unwrap_err().to_string().contains("cannot be used with"));
    }

    #[test]
    fn bad_files_and_urls_name_the_flag() {
        let missing = GitHubArgs { github_token_file: Some("/nonexistent/token".into()), ..GitHubArgs::default() };
        let error = GitHubArgs { github_api_url: "https://api.github.com".into(), ..missing }.delivery().unwrap_err();
        assert!(error.to_string().starts_with("--github-token-file /nonexistent/token: cannot read it"), "{error}");
        let empty = file("empty", "\n");
        let args = parse(&["--github-token-file", empty.to_str().unwrap()]).unwrap();
        assert_eq!(
            args.delivery().unwrap_err().to_string(),
            format!("--github-token-file {}: the file is empty", empty.display())
        );
        let not_pem = file("key.txt", "not a key");
        let args = parse(&["--github-app-id", "1", "--github-app-key-file", not_pem.to_str().unwrap()]).unwrap();
        assert!(matches!(args.delivery().unwrap_err(), GitHubArgsError::NotPem { .. }));
        let token = file("token3", "t");
        let args =
            parse(&["--github-token-file", token.to_str().unwrap(), "--github-api-url", "api.github.com"]).unwrap();
        assert!(args.delivery().unwrap_err().to_string().starts_with("--github-api-url \"api.github.com\""));
    }
}
