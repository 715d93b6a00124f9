//! The GitHub REST client of delivery, on octocrab: token or GitHub App
//! authentication (a JWT for the App, an installation token per repository,
//! which octocrab renews before it expires), every answer classified as done,
//! to be retried, or refused, and the rate limit GitHub reports.

use std::collections::HashMap;
use std::time::Duration;

use http::HeaderMap;
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;
use tokio::sync::Mutex;

/// How the operator authenticates to GitHub.
#[derive(Clone)]
pub enum GitHubAuth {
    /// A personal or fine-grained access token: commit statuses, no check runs.
    Token(String),
    /// A GitHub App: check runs, and reviews as the App.
    App { app_id: u64, private_key_pem: String },
}

impl std::fmt::Debug for GitHubAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token(..)"),
            Self::App { app_id, .. } => write!(f, "App {{ app_id: {app_id}, .. }}"),
        }
    }
}

/// Why a GitHub request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// 5xx, 429, a rate limit or a connection failure: retried later.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// 401, 403, 404, 422 and other refusals: retrying will not help.
    #[error("{message}")]
    Refused { status: u16, message: String },
    #[error("cannot set up the GitHub client: {0}")]
    Setup(String),
}

impl GitHubError {
    /// The `delivery.reason` of a refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Refused { status: 401 | 403, .. } => "PermissionDenied",
            Self::Refused { status: 404, .. } => "NotFound",
            Self::Refused { status: 422, .. } => "Unprocessable",
            Self::Refused { .. } | Self::Setup(_) => "Refused",
            Self::Transient { .. } => "Retrying",
        }
    }
}

/// A request's method.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    Get,
    Post,
    Patch,
}

/// The GitHub client.
pub struct GitHub {
    /// The token client, or the App's own (JWT) client.
    base: Octocrab,
    app: bool,
    /// App installation clients by `owner/name`.
    installations: Mutex<HashMap<String, Octocrab>>,
    rate_limit_remaining: Gauge,
}

impl GitHub {
    /// A client for the API at `api_url` (`https://api.github.com`, or a
    /// GitHub Enterprise `https://HOST/api/v3`). octocrab's own retries are
    /// off: delivery retries with back-off it can see and count.
    pub fn new(api_url: &str, auth: &GitHubAuth, rate_limit_remaining: Gauge) -> Result<Self, GitHubError> {
        let setup = |error: octocrab::Error| GitHubError::Setup(error.to_string());
        let builder = Octocrab::builder()
            .base_uri(api_url)
            .map_err(setup)?
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)));
        let (base, app) = match auth {
            GitHubAuth::Token(token) => (builder.personal_token(token.clone()).build().map_err(setup)?, false),
            GitHubAuth::App { app_id, private_key_pem } => {
                let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|error| {
                    GitHubError::Setup(format!("the GitHub App key is not an RSA PEM key: {error}"))
                })?;
                (builder.app(octocrab::models::AppId(*app_id), key).build().map_err(setup)?, true)
            }
        };
        Ok(Self { base, app, installations: Mutex::new(HashMap::new()), rate_limit_remaining })
    }

    /// Whether the client is a GitHub App, which can create check runs.
    pub fn is_app(&self) -> bool {
        self.app
    }

    /// Sends one request about `repository` (`owner/name`) and returns the
    /// answer's JSON (`Null` for an empty body).
    pub async fn request(
        &self,
        repository: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, GitHubError> {
        let client = self.client_for(repository).await?;
        let sent = match method {
            Method::Get => client._get(path).await,
            Method::Post => client._post(path, body).await,
            Method::Patch => client._patch(path, body).await,
        };
        let response = sent.map_err(|error| GitHubError::Transient {
            message: format!("cannot reach GitHub: {error}"),
            retry_after: None,
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let Some(remaining) = header_i64(&headers, "x-ratelimit-remaining") {
            self.rate_limit_remaining.set(remaining);
        }
        let text = client.body_to_string(response).await.map_err(|error| GitHubError::Transient {
            message: format!("cannot read GitHub's answer: {error}"),
            retry_after: None,
        })?;
        let json: Value =
            if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        Err(classify(status, &headers, &json, &text))
    }

    /// The client that acts on `repository`: the token's, or the App's
    /// installation on it (looked up once, then kept).
    async fn client_for(&self, repository: &str) -> Result<Octocrab, GitHubError> {
        if !self.app {
            return Ok(self.base.clone());
        }
        let mut installations = self.installations.lock().await;
        if let Some(client) = installations.get(repository) {
            return Ok(client.clone());
        }
        let (owner, name) = repository.split_once('/').unwrap_or((repository, ""));
        let installation = self.base.apps().get_repository_installation(owner, name).await.map_err(|error| {
            match octocrab_status(&error) {
                Some(404) => GitHubError::Refused {
                    status: 404,
                    message: format!("the GitHub App is not installed on {repository}"),
                },
                Some(status) if status == 429 || status >= 500 => GitHubError::Transient {
                    message: format!("GitHub answered {status} to the installation lookup of {repository}"),
                    retry_after: None,
                },
                Some(status) => GitHubError::Refused {
                    status,
                    message: format!("the installation lookup of {repository} was refused: {error}"),
                },
                None => GitHubError::Transient {
                    message: format!("cannot look up the installation of {repository}: {error}"),
                    retry_after: None,
                },
            }
        })?;
        let client = self.base.installation(installation.id).map_err(|error| GitHubError::Setup(error.to_string()))?;
        installations.insert(repository.to_owned(), client.clone());
        Ok(client)
    }
}

fn octocrab_status(error: &octocrab::Error) -> Option<u16> {
    match error {
        octocrab::Error::GitHub { source, .. } => Some(source.status_code.as_u16()),
        _ => None,
    }
}

fn header_i64(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Sorts a failed answer into retried and refused, as GitHub documents its
/// rate limits: 429, or 403 with `x-ratelimit-remaining: 0` or a secondary
/// rate limit message, waits for `retry-after` or until `x-ratelimit-reset`.
fn classify(status: u16, headers: &HeaderMap, json: &Value, text: &str) -> GitHubError {
    let message = json.get("message").and_then(Value::as_str).map_or_else(|| text.trim().to_owned(), str::to_owned);
    let message = format!("GitHub answered {status}: {message}");
    let retry_after = header_i64(headers, "retry-after")
        .map(|seconds| Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
        .or_else(|| {
            let remaining = header_i64(headers, "x-ratelimit-remaining")?;
            let reset = header_i64(headers, "x-ratelimit-reset")?;
            let wait = reset.saturating_sub(chrono::Utc::now().timestamp()).max(1);
            (remaining == 0).then(|| Duration::from_secs(u64::try_from(wait).unwrap_or(1)))
        });
    let rate_limited = status == 429
        || (status == 403 && (retry_after.is_some() || message.to_ascii_lowercase().contains("rate limit")));
    if rate_limited || status >= 500 {
        GitHubError::Transient { message, retry_after }
    } else {
        GitHubError::Refused { status, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn server_errors_and_rate_limits_are_retried_after_what_github_says() {
        let body = json!({"message": "Server Error"});
        let error = classify(502, &headers(&[]), &body, "");
        assert!(matches!(error, GitHubError::Transient { retry_after: None, .. }), "{error:?}");
        let error = classify(429, &headers(&[("retry-after", "7")]), &json!({"message": "slow down"}), "");
        assert!(matches!(error, GitHubError::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(7)));
        let reset = (chrono::Utc::now().timestamp() + 60).to_string();
        let primary = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &reset)]);
        let error = classify(403, &primary, &json!({"message": "API rate limit exceeded"}), "");
        let GitHubError::Transient { retry_after: Some(wait), .. } = error else { panic!("{error:?}") };
        assert!((55..=60).contains(&wait.as_secs()), "{wait:?}");
        let secondary = json!({"message": "You have exceeded a secondary rate limit."});
        assert!(matches!(classify(403, &headers(&[]), &secondary, ""), GitHubError::Transient { .. }));
    }

    #[test]
    fn refusals_name_githubs_message_and_a_reason() {
        let cases = [(401, "PermissionDenied"), (403, "PermissionDenied"), (404, "NotFound"), (422, "Unprocessable")];
        for (status, reason) in cases {
            let error = classify(status, &headers(&[]), &json!({"message": "Resource not accessible"}), "");
            assert_eq!(error.reason(), reason);
            assert_eq!(error.to_string(), format!("GitHub answered {status}: Resource not accessible"));
        }
        let error = classify(400, &headers(&[]), &Value::Null, "not json");
        assert_eq!(error.to_string(), "GitHub answered 400: not json");
    }
}
