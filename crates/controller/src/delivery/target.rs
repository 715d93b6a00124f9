//! Which runs are delivered, and where: the pull request on the configured
//! GitHub host, as `owner/name` and number.

use crate::api::ReviewRun;

/// A pull request on the configured GitHub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestTarget {
    pub owner: String,
    pub name: String,
    pub number: u64,
}

impl PullRequestTarget {
    /// `owner/name`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// The web host of a GitHub API URL: `github.com` for `https://api.github.com`,
/// the host itself for GitHub Enterprise (`https://ghe.example.com/api/v3`).
pub fn web_host(api_url: &str) -> Option<String> {
    let host = host_of(api_url)?;
    Some(if host == "api.github.com" { "github.com".to_owned() } else { host })
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The pull request of `run` when it is on `host`: `owner/name` from
/// `spec.pullRequest.repository` or the URL's path, the number from
/// `spec.pullRequest.number` or the URL (`https://HOST/OWNER/NAME/pull/N`).
/// `None` for runs elsewhere, which delivery leaves alone.
pub fn target(run: &ReviewRun, host: &str) -> Option<PullRequestTarget> {
    let pull_request = &run.spec.pull_request;
    let url_host = host_of(&pull_request.url)?;
    if url_host != host && url_host.split(':').next() != Some(host) {
        return None;
    }
    let path = pull_request.url.split("://").nth(1)?.split_once('/')?.1;
    let path = path.split(['?', '#']).next()?;
    let mut parts = path.split('/').filter(|part| !part.is_empty());
    let (url_owner, url_name) = (parts.next(), parts.next());
    let url_number = match (parts.next(), parts.next()) {
        (Some("pull" | "pulls"), Some(number)) => number.parse::<u64>().ok(),
        _ => None,
    };
    let (owner, name) = match pull_request.repository.as_deref().and_then(|r| r.split_once('/')) {
        Some((owner, name)) => (owner.to_owned(), name.to_owned()),
        None => (url_owner?.to_owned(), url_name?.to_owned()),
    };
    let number = pull_request.number.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0).or(url_number)?;
    (!owner.is_empty() && !name.is_empty()).then_some(PullRequestTarget { owner, name, number })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PullRequest, ReviewRunSpec};

    fn run(url: &str) -> ReviewRun {
        ReviewRun::new(
            "r1",
            ReviewRunSpec {
                reviewer: "review-w1".into(),
                pull_request: PullRequest::new(url, "abcdef1"),
                cancel_requested: false,
                timeout: "1h".into(),
                ttl_seconds_after_finished: None,
            },
        )
    }

    #[test]
    fn the_web_host_of_github_and_enterprise_api_urls() {
        assert_eq!(web_host("https://api.github.com").as_deref(), Some("github.com"));
        assert_eq!(web_host("https://GHE.example.com/api/v3").as_deref(), Some("ghe.example.com"));
        assert_eq!(web_host("http://127.0.0.1:8080").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(web_host("ftp://x"), None);
    }

    #[test]
    fn a_github_pull_request_url_names_the_repository_and_number() {
        let target = target(&run("https://github.com/acme/widgets/pull/42"), "github.com").unwrap();
        assert_eq!((target.repository(), target.number), ("acme/widgets".to_owned(), 42));
        let files = target_of("https://github.com/acme/widgets/pull/42/files#diff", "github.com").unwrap();
        assert_eq!(files.number, 42);
    }

    fn target_of(url: &str, host: &str) -> Option<PullRequestTarget> {
        target(&run(url), host)
    }

    #[test]
    fn the_spec_overrides_what_the_url_says() {
        let mut run = run("https://github.com/acme/widgets/pull/42");
        run.spec.pull_request.repository = Some("acme/renamed".into());
        run.spec.pull_request.number = Some(7);
        let target = target(&run, "github.com").unwrap();
        assert_eq!((target.repository(), target.number), ("acme/renamed".to_owned(), 7));
    }

    #[test]
    fn runs_on_other_hosts_or_without_a_number_are_not_delivered() {
        assert_eq!(target_of("https://gitlab.com/acme/widgets/-/merge_requests/3", "github.com"), None);
        assert_eq!(target_of("https://github.com/acme/widgets", "github.com"), None);
        assert_eq!(target_of("https://github.com/acme/widgets/issues/3", "github.com"), None);
        assert_eq!(target_of("https://github.com/acme/widgets/pull/x", "github.com"), None);
        assert!(target_of("http://127.0.0.1:8080/acme/widgets/pull/3", "127.0.0.1:8080").is_some());
    }
}
