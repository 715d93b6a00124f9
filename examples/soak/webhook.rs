//! Signed GitHub deliveries to the soak's `review-operator webhook`, shaped like GitHub's
//! `pull_request` payloads for the soak's repositories (`acme/w<N>`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use review_operator::intake::payload::examples;
use review_operator::intake::signature::sign;
use serde_json::{Value, json};

/// The receiver's answer to one delivery.
pub struct Answer {
    pub status: u16,
    /// Names of the runs it created (it answers `namespace/name`; the soak has one namespace).
    pub created: Vec<String>,
    /// Names of the runs that already existed for the same delivery.
    pub unchanged: Vec<String>,
}

pub struct WebhookSender {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    port: u16,
    secret: Vec<u8>,
}

impl WebhookSender {
    pub fn new(port: u16, secret: Vec<u8>) -> Self {
        Self { http: HttpClient::builder(TokioExecutor::new()).build_http(), port, secret }
    }

    pub async fn ready(&self) -> bool {
        let Ok(uri) = format!("http://127.0.0.1:{}/readyz", self.port).parse::<hyper::Uri>() else { return false };
        self.http.get(uri).await.is_ok_and(|r| r.status() == 200)
    }

    /// Delivers `payload` as a `pull_request` event, signed with the receiver's secret.
    pub async fn deliver(&self, payload: &Value) -> anyhow::Result<Answer> {
        let body = payload.to_string();
        let request = hyper::Request::post(format!("http://127.0.0.1:{}/github", self.port))
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
            .header("x-hub-signature-256", sign(&self.secret, body.as_bytes()))
            .body(Full::new(Bytes::from(body)))?;
        let response = tokio::time::timeout(std::time::Duration::from_secs(30), self.http.request(request)).await??;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let names = |key: &str| -> Vec<String> {
            answer[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
                .map(|n| n.rsplit('/').next().unwrap_or(n).to_owned())
                .collect()
        };
        Ok(Answer { status, created: names("created"), unchanged: names("unchanged") })
    }
}

/// The repository and number of a soak pull request URL, `https://github.com/OWNER/NAME/pull/N`.
fn parts(url: &str) -> Option<(String, i64)> {
    let path = url.strip_prefix("https://github.com/")?;
    let (repository, number) = path.split_once("/pull/")?;
    Some((repository.to_owned(), number.parse().ok()?))
}

/// GitHub's documented example payload, moved to the soak's repository and branch.
fn for_repository(mut payload: Value, url: &str, repository: &str, number: i64) -> Value {
    let worker = repository.rsplit('/').next().unwrap_or_default();
    payload["pull_request"]["html_url"] = json!(url);
    payload["pull_request"]["url"] = json!(format!("https://api.github.com/repos/{repository}/pulls/{number}"));
    payload["pull_request"]["head"]["ref"] = json!(format!("agent/{worker}/change-{number}"));
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(repository);
    payload["repository"]["full_name"] = json!(repository);
    payload["repository"]["name"] = json!(worker);
    payload["repository"]["html_url"] = json!(format!("https://github.com/{repository}"));
    payload["repository"]["clone_url"] = json!(format!("https://github.com/{repository}.git"));
    payload
}

/// `opened` at `head`, or `synchronize` from `before` to `head`.
pub fn push_payload(url: &str, before: Option<&str>, head: &str) -> Option<Value> {
    let (repository, number) = parts(url)?;
    let payload = match before {
        Some(before) => examples::synchronize(number, before, head),
        None => examples::pull_request("opened", number, head),
    };
    Some(for_repository(payload, url, &repository, number))
}
