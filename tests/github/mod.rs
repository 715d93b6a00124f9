#![allow(dead_code)]
//! An in-process stand-in for the parts of GitHub's REST API that the operator talks to: pull
//! requests, pull request reviews, check runs, commit statuses and GitHub App authentication.
//!
//! Tests cannot reach GitHub, and the behaviour worth testing lives in GitHub's answers (422s for
//! stale commits, 403 for check runs without an App, expiring installation tokens, rate limits,
//! pagination), so the fake keeps real state, validates what GitHub validates, answers in
//! GitHub's JSON shapes (the ones `octocrab` deserializes) and records every request.
//!
//! `app-key.pem` and `app-key.pub.pem` beside this file are a test fixture: an RSA key pair made
//! only to sign and verify App JWTs against this fake. It has no other use and guards nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

/// The private half of the App key, for tests to build `jsonwebtoken::EncodingKey`s from.
pub const APP_KEY_PEM: &str = include_str!("app-key.pem");
/// The public half, against which App JWTs are verified.
pub const APP_KEY_PUB_PEM: &str = include_str!("app-key.pub.pem");

const DOCS: &str = "https://docs.github.com/rest";
const RATE_LIMIT: usize = 5000;
/// GitHub caps `per_page` at 100 and defaults it to 30.
const PER_PAGE_DEFAULT: usize = 30;
const PER_PAGE_MAX: usize = 100;
/// GitHub rejects App JWTs whose lifetime exceeds ten minutes.
const JWT_MAX_LIFETIME: i64 = 600;
/// Login that personal access tokens act as.
pub const TOKEN_USER: &str = "review-operator-user";
/// Login that installation tokens act as.
pub const APP_BOT_USER: &str = "review-operator[bot]";

/// One request as it arrived, with the status it was answered with.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub method: String,
    /// Path without the query, as sent (a `/api/v3` prefix included).
    pub path: String,
    /// Raw query string without the `?`; empty when there was none.
    pub query: String,
    pub authorization: Option<String>,
    /// The JSON body; `Value::Null` when empty, a `Value::String` when not JSON.
    pub body: Value,
    pub status: u16,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    pub id: u64,
    pub user: String,
    pub commit_id: String,
    pub body: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, or `PENDING` when no event was given.
    pub state: String,
    pub submitted_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckRun {
    pub id: u64,
    pub app_id: u64,
    pub name: String,
    pub head_sha: String,
    pub external_id: Option<String>,
    pub details_url: Option<String>,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CommitStatus {
    pub id: u64,
    pub state: String,
    pub context: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub creator: String,
    pub created_at: DateTime<Utc>,
}

/// The fake server. It listens on loopback until dropped.
pub struct FakeGitHub {
    url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGitHub {
    /// Starts the server on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake GitHub to loopback");
        let addr = listener.local_addr().expect("local address of the fake GitHub");
        let url = format!("http://{addr}");
        let app_key =
            DecodingKey::from_rsa_pem(APP_KEY_PUB_PEM.as_bytes()).expect("app-key.pub.pem is an RSA public key");
        let shared = Arc::new(Shared { app_key, world: Mutex::new(World::new(url.clone())) });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            // The task is aborted on drop; an accept error ends it early, which the tests
            // then see as refused connections.
            let _ = axum::serve(listener, router).await;
        });
        FakeGitHub { url, shared, server }
    }

    /// The API root, without a trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.shared.lock()
    }

    /// Accepts `token` as a personal access token (`Bearer T` or `token T`) for every repo.
    pub fn allow_token(&self, token: &str) {
        self.world().pats.insert(token.to_string());
    }

    /// Installs App `app_id` as installation `installation_id` on `repo` ("owner/name").
    /// Calling it again with the same installation adds the repo to it.
    pub fn enable_app(&self, app_id: u64, installation_id: u64, repo: &str) {
        let mut w = self.world();
        let owner = repo.split('/').next().unwrap_or(repo).to_string();
        match w.installations.iter_mut().find(|i| i.id == installation_id) {
            Some(inst) => {
                inst.app_id = app_id;
                if !inst.repos.iter().any(|r| r == repo) {
                    inst.repos.push(repo.to_string());
                }
            }
            None => {
                let created_at = Utc::now();
                w.installations.push(Installation {
                    id: installation_id,
                    app_id,
                    owner,
                    repos: vec![repo.to_string()],
                    created_at,
                })
            }
        }
    }

    /// Lifetime of installation tokens issued from now on (default 3600 seconds). `octocrab`
    /// refreshes tokens within 30 seconds of expiry, so a lifetime of 30 or less makes it fetch
    /// a new token for every request; 0 or less issues tokens that are already expired.
    pub fn set_token_lifetime(&self, seconds: i64) {
        self.world().token_lifetime = seconds;
    }

    /// Creates pull request `number` of `repo` with head `sha`, or moves its head there. Every
    /// head it ever had stays a commit of the PR, as force-pushed commits do for reviews.
    pub fn set_head(&self, repo: &str, number: u64, sha: &str) {
        let mut w = self.world();
        let id = w.next_id();
        let pull = w.pulls.entry((repo.to_string(), number)).or_insert_with(|| Pull {
            id,
            head: sha.to_string(),
            heads: Vec::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        });
        pull.head = sha.to_string();
        pull.updated_at = Utc::now();
        if !pull.heads.iter().any(|h| h == sha) {
            pull.heads.push(sha.to_string());
        }
    }

    /// Answers the next `times` requests whose method is `method` ("*" for any) and whose path
    /// starts with `path_prefix` with `status`, GitHub's error body carrying `message`, and
    /// `headers` on top of the usual ones. Rules are tried in the order they were added.
    pub fn fail(
        &self,
        method: &str,
        path_prefix: &str,
        times: usize,
        status: u16,
        headers: &[(&str, &str)],
        message: &str,
    ) {
        self.world().rules.push(Rule {
            method: method.to_ascii_uppercase(),
            prefix: path_prefix.to_string(),
            remaining: times,
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            message: message.to_string(),
        });
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.world().requests.clone()
    }

    /// Reviews of the PR, in submission order.
    pub fn reviews(&self, repo: &str, number: u64) -> Vec<Review> {
        self.world().reviews.get(&(repo.to_string(), number)).cloned().unwrap_or_default()
    }

    /// Check runs of the repo, in creation order.
    pub fn check_runs(&self, repo: &str) -> Vec<CheckRun> {
        self.world().check_runs.get(repo).cloned().unwrap_or_default()
    }

    /// Statuses of the commit, in creation order.
    pub fn statuses(&self, repo: &str, sha: &str) -> Vec<CommitStatus> {
        self.world().statuses.get(&(repo.to_string(), sha.to_string())).cloned().unwrap_or_default()
    }

    pub fn installation_tokens_issued(&self) -> usize {
        self.world().tokens_issued
    }
}

struct Shared {
    app_key: DecodingKey,
    world: Mutex<World>,
}

impl Shared {
    /// A panicking test thread must not wedge the server, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Pull {
    id: u64,
    head: String,
    heads: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

struct Installation {
    id: u64,
    app_id: u64,
    owner: String,
    repos: Vec<String>,
    created_at: DateTime<Utc>,
}

struct IssuedToken {
    installation_id: u64,
    app_id: u64,
    /// Full names the token may touch.
    repos: Vec<String>,
    expires_at: DateTime<Utc>,
}

struct Rule {
    method: String,
    prefix: String,
    remaining: usize,
    status: u16,
    headers: Vec<(String, String)>,
    message: String,
}

struct World {
    base: String,
    pats: HashSet<String>,
    installations: Vec<Installation>,
    issued: HashMap<String, IssuedToken>,
    tokens_issued: usize,
    token_lifetime: i64,
    pulls: BTreeMap<(String, u64), Pull>,
    reviews: BTreeMap<(String, u64), Vec<Review>>,
    check_runs: BTreeMap<String, Vec<CheckRun>>,
    statuses: BTreeMap<(String, String), Vec<CommitStatus>>,
    rules: Vec<Rule>,
    requests: Vec<Recorded>,
    next_id: u64,
    rate_reset: i64,
}

impl World {
    fn new(base: String) -> Self {
        World {
            base,
            pats: HashSet::new(),
            installations: Vec::new(),
            issued: HashMap::new(),
            tokens_issued: 0,
            token_lifetime: 3600,
            pulls: BTreeMap::new(),
            reviews: BTreeMap::new(),
            check_runs: BTreeMap::new(),
            statuses: BTreeMap::new(),
            rules: Vec::new(),
            requests: Vec::new(),
            next_id: 1000,
            rate_reset: Utc::now().timestamp() + 3600,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// A request reduced to what the routes look at.
struct Req {
    method: Method,
    /// Path with any GitHub Enterprise `/api/v3` prefix removed.
    path: String,
    query: Vec<(String, String)>,
    auth: Option<String>,
    body: Value,
    body_is_json: bool,
}

impl Req {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The credential after `Bearer ` or `token `, whichever scheme was used.
    fn credential(&self) -> Option<&str> {
        let auth = self.auth.as_deref()?.trim();
        let (scheme, rest) = auth.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
            Some(rest.trim())
        } else {
            None
        }
    }

    fn str_field(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(Value::as_str)
    }
}

struct Answer {
    status: u16,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Answer { status, body: Some(body), headers: Vec::new() }
    }

    fn error(status: u16, message: &str, documentation_url: &str) -> Self {
        Answer::json(status, json!({ "message": message, "documentation_url": documentation_url }))
    }

    fn with_header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_string(), value));
        self
    }
}

fn not_found() -> Answer {
    Answer::error(404, "Not Found", DOCS)
}

fn bad_credentials() -> Answer {
    Answer::error(401, "Bad credentials", DOCS)
}

fn bad_jwt() -> Answer {
    Answer::error(401, "A JSON web token could not be decoded", DOCS)
}

fn unprocessable(errors: Vec<Value>, documentation_url: &str) -> Answer {
    Answer::json(
        422,
        json!({ "message": "Unprocessable Entity", "errors": errors, "documentation_url": documentation_url }),
    )
}

fn validation_failed(resource: &str, field: &str, message: &str, documentation_url: &str) -> Answer {
    Answer::json(
        422,
        json!({
            "message": "Validation Failed",
            "errors": [{ "resource": resource, "code": "custom", "field": field, "message": message }],
            "documentation_url": documentation_url,
        }),
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_path = uri.path().to_string();
    let raw_query = uri.query().unwrap_or("").to_string();
    let auth = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (body, body_is_json) = if body.iter().all(u8::is_ascii_whitespace) {
        (Value::Null, true)
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => (value, true),
            Err(_) => (Value::String(String::from_utf8_lossy(&body).into_owned()), false),
        }
    };
    let path = match raw_path.strip_prefix("/api/v3") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_string(),
        _ => raw_path.clone(),
    };
    let req = Req {
        method: method.clone(),
        path: path.clone(),
        query: parse_query(&raw_query),
        auth: auth.clone(),
        body: body.clone(),
        body_is_json,
    };

    let mut world = shared.lock();
    let index = world.requests.len();
    world.requests.push(Recorded {
        method: method.to_string(),
        path: raw_path.clone(),
        query: raw_query,
        authorization: auth,
        body,
        status: 0,
    });
    let used = world.requests.len();

    let injected = world
        .rules
        .iter_mut()
        .find(|r| {
            r.remaining > 0
                && (r.method == "*" || r.method == method.as_str())
                && (path.starts_with(&r.prefix) || raw_path.starts_with(&r.prefix))
        })
        .map(|rule| {
            rule.remaining -= 1;
            let mut answer = Answer::error(rule.status, &rule.message, DOCS);
            answer.headers = rule.headers.clone();
            answer
        });
    let answer = match injected {
        Some(answer) => answer,
        None => route(&mut world, &shared.app_key, &req),
    };
    if let Some(recorded) = world.requests.get_mut(index) {
        recorded.status = answer.status;
    }
    let reset = world.rate_reset;
    drop(world);
    respond(answer, used, reset)
}

/// Adds the headers GitHub puts on every answer; the answer's own headers win.
fn respond(answer: Answer, used: usize, reset: i64) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let no_body = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let body = match (&answer.body, no_body) {
        (Some(value), false) => Body::from(value.to_string()),
        _ => Body::empty(),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let mut request_id = rand::rng();
    let defaults = [
        ("content-type", "application/json; charset=utf-8".to_string()),
        ("x-github-api-version-selected", "2022-11-28".to_string()),
        ("x-github-media-type", "github.v3; format=json".to_string()),
        ("x-ratelimit-limit", RATE_LIMIT.to_string()),
        ("x-ratelimit-remaining", RATE_LIMIT.saturating_sub(used).to_string()),
        ("x-ratelimit-used", used.min(RATE_LIMIT).to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-resource", "core".to_string()),
        (
            "x-github-request-id",
            format!(
                "{:04X}:{:06X}:{:07X}:{:07X}:{:08X}",
                request_id.random::<u16>(),
                request_id.random_range(0..0x100_0000u32),
                request_id.random_range(0..0x1000_0000u32),
                request_id.random_range(0..0x1000_0000u32),
                used
            ),
        ),
    ];
    let headers = response.headers_mut();
    for (name, value) in defaults
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .chain(answer.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    response
}

fn route(w: &mut World, app_key: &DecodingKey, req: &Req) -> Answer {
    if !req.body_is_json {
        return Answer::error(400, "Problems parsing JSON", DOCS);
    }
    let path = req.path.trim_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').collect();
    let method = req.method.as_str();
    match (method, segments.as_slice()) {
        ("GET", ["app", "installations"]) => list_installations(w, app_key, req),
        ("GET", ["app", "installations", id]) => get_installation(w, app_key, req, id),
        ("POST", ["app", "installations", id, "access_tokens"]) => create_access_token(w, app_key, req, id),
        ("GET", ["repos", owner, name, "installation"]) => {
            repo_installation(w, app_key, req, &format!("{owner}/{name}"))
        }
        ("GET" | "POST" | "PATCH", ["repos", owner, name, rest @ ..]) => {
            let repo = format!("{owner}/{name}");
            let who = match authorize_repo(w, req, &repo) {
                Ok(who) => who,
                Err(answer) => return answer,
            };
            match (method, rest) {
                ("GET", ["pulls", number]) => with_number(number, |n| get_pull(w, &repo, n)),
                ("GET", ["pulls", number, "reviews"]) => with_number(number, |n| list_reviews(w, req, &repo, n)),
                ("POST", ["pulls", number, "reviews"]) => {
                    with_number(number, |n| create_review(w, req, &who, &repo, n))
                }
                ("POST", ["check-runs"]) => create_check_run(w, req, &who, &repo),
                ("PATCH", ["check-runs", id]) => with_number(id, |id| update_check_run(w, req, &who, &repo, id)),
                ("GET", ["check-runs", id]) => with_number(id, |id| get_check_run(w, &repo, id)),
                ("GET", ["commits", reference, "check-runs"]) => list_check_runs(w, req, &repo, &decode(reference)),
                ("POST", ["statuses", sha]) => create_status(w, req, &who, &repo, sha),
                ("GET", ["commits", reference, "statuses"]) | ("GET", ["statuses", reference]) => {
                    list_statuses(w, req, &repo, &decode(reference))
                }
                ("GET", ["commits", reference, "status"]) => combined_status(w, req, &repo, &decode(reference)),
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn with_number(segment: &str, f: impl FnOnce(u64) -> Answer) -> Answer {
    match segment.parse() {
        Ok(n) => f(n),
        Err(_) => not_found(),
    }
}

/// Who a repo request acts as.
enum Caller {
    Token,
    Installation { app_id: u64 },
}

impl Caller {
    fn login(&self) -> &'static str {
        match self {
            Caller::Token => TOKEN_USER,
            Caller::Installation { .. } => APP_BOT_USER,
        }
    }
}

fn authorize_repo(w: &World, req: &Req, repo: &str) -> Result<Caller, Answer> {
    let Some(credential) = req.credential() else {
        return Err(bad_credentials());
    };
    if w.pats.contains(credential) {
        return Ok(Caller::Token);
    }
    match w.issued.get(credential) {
        Some(token) if token.expires_at > Utc::now() && token.repos.iter().any(|r| r == repo) => {
            Ok(Caller::Installation { app_id: token.app_id })
        }
        _ => Err(bad_credentials()),
    }
}

/// Verifies an App JWT the way GitHub does and returns the app id it was issued by.
fn authorize_app(w: &World, app_key: &DecodingKey, req: &Req) -> Result<u64, Answer> {
    let token = req.credential().ok_or_else(bad_jwt)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(token, app_key, &validation).map_err(|_| bad_jwt())?.claims;
    let now = Utc::now().timestamp();
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or_else(bad_jwt)?;
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(bad_jwt)?;
    // GitHub tolerates a little clock drift on `iat`, none on `exp`.
    if exp <= now || iat > now + 60 || exp - iat > JWT_MAX_LIFETIME {
        return Err(bad_jwt());
    }
    let app_id = match claims.get("iss") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(bad_jwt)?;
    if w.installations.iter().any(|i| i.app_id == app_id) {
        Ok(app_id)
    } else {
        Err(Answer::error(401, "Integration not found", DOCS))
    }
}

fn user_json(base: &str, login: &str, id: u64, kind: &str) -> Value {
    let login_path = login.replace('[', "%5B").replace(']', "%5D");
    let api = format!("{base}/users/{login_path}");
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("https://github.com/{login_path}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "site_admin": false,
    })
}

/// Stable made-up ids for names, so that the same user or repo always has the same id.
fn name_id(name: &str) -> u64 {
    name.bytes().fold(5381u64, |h, b| h.wrapping_mul(33) ^ u64::from(b)) % 100_000_000 + 1
}

fn caller_json(base: &str, login: &str) -> Value {
    let kind = if login.ends_with("[bot]") { "Bot" } else { "User" };
    user_json(base, login, name_id(login), kind)
}

fn repo_json(base: &str, repo: &str) -> Value {
    let (owner, name) = repo.split_once('/').unwrap_or((repo, repo));
    json!({
        "id": name_id(repo),
        "node_id": format!("R_{}", name_id(repo)),
        "name": name,
        "full_name": repo,
        "owner": user_json(base, owner, name_id(owner), "Organization"),
        "private": false,
        "html_url": format!("https://github.com/{repo}"),
        "description": null,
        "fork": false,
        "url": format!("{base}/repos/{repo}"),
        "default_branch": "main",
    })
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt_time(t: &Option<DateTime<Utc>>) -> Value {
    t.as_ref().map(|t| Value::String(time(t))).unwrap_or(Value::Null)
}

/// A base commit that no head equals.
fn base_sha(repo: &str) -> String {
    format!("{:040x}", name_id(repo))
}

fn head_ref(number: u64) -> String {
    format!("pr-{number}")
}

fn pull_json(base: &str, repo: &str, number: u64, pull: &Pull) -> Value {
    let owner = repo.split('/').next().unwrap_or(repo);
    let api = format!("{base}/repos/{repo}");
    let html = format!("https://github.com/{repo}/pull/{number}");
    let author = user_json(base, "octocat", name_id("octocat"), "User");
    let owner_json = user_json(base, owner, name_id(owner), "Organization");
    json!({
        "url": format!("{api}/pulls/{number}"),
        "id": pull.id,
        "node_id": format!("PR_{}", pull.id),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{number}"),
        "commits_url": format!("{api}/pulls/{number}/commits"),
        "review_comments_url": format!("{api}/pulls/{number}/comments"),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{number}/comments"),
        "statuses_url": format!("{api}/statuses/{}", pull.head),
        "number": number,
        "state": "open",
        "locked": false,
        "title": format!("Pull request #{number}"),
        "user": author,
        "body": null,
        "labels": [],
        "created_at": time(&pull.created_at),
        "updated_at": time(&pull.updated_at),
        "closed_at": null,
        "merged_at": null,
        "merge_commit_sha": null,
        "draft": false,
        "merged": false,
        "mergeable": true,
        "commits": pull.heads.len(),
        "head": {
            "label": format!("{owner}:{}", head_ref(number)),
            "ref": head_ref(number),
            "sha": pull.head,
            "user": owner_json,
            "repo": repo_json(base, repo),
        },
        "base": {
            "label": format!("{owner}:main"),
            "ref": "main",
            "sha": base_sha(repo),
            "user": owner_json,
            "repo": repo_json(base, repo),
        },
    })
}

fn get_pull(w: &World, repo: &str, number: u64) -> Answer {
    match w.pulls.get(&(repo.to_string(), number)) {
        Some(pull) => Answer::json(200, pull_json(&w.base, repo, number, pull)),
        None => not_found(),
    }
}

fn review_json(base: &str, repo: &str, number: u64, review: &Review) -> Value {
    json!({
        "id": review.id,
        "node_id": format!("PRR_{}", review.id),
        "user": caller_json(base, &review.user),
        "body": review.body,
        "state": review.state,
        "commit_id": review.commit_id,
        "html_url": format!("https://github.com/{repo}/pull/{number}#pullrequestreview-{}", review.id),
        "pull_request_url": format!("{base}/repos/{repo}/pulls/{number}"),
        "submitted_at": time(&review.submitted_at),
        "author_association": "NONE",
    })
}

fn list_reviews(w: &World, req: &Req, repo: &str, number: u64) -> Answer {
    if !w.pulls.contains_key(&(repo.to_string(), number)) {
        return not_found();
    }
    let items: Vec<Value> = w
        .reviews
        .get(&(repo.to_string(), number))
        .map(|rs| rs.iter().map(|r| review_json(&w.base, repo, number, r)).collect())
        .unwrap_or_default();
    paginate(&w.base, req, items, Value::Array)
}

const REVIEW_DOCS: &str = "https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request";

fn create_review(w: &mut World, req: &Req, who: &Caller, repo: &str, number: u64) -> Answer {
    let Some(pull) = w.pulls.get(&(repo.to_string(), number)) else {
        return not_found();
    };
    let commit_id = req.str_field("commit_id").unwrap_or(pull.head.as_str()).to_string();
    if !pull.heads.contains(&commit_id) {
        return unprocessable(vec![json!("Commit id is not part of the pull request")], REVIEW_DOCS);
    }
    let body = req.str_field("body").unwrap_or("").to_string();
    let state = match req.body.get("event") {
        None | Some(Value::Null) => "PENDING",
        Some(Value::String(e)) if e == "APPROVE" => "APPROVED",
        Some(Value::String(e)) if e == "REQUEST_CHANGES" => "CHANGES_REQUESTED",
        Some(Value::String(e)) if e == "COMMENT" => "COMMENTED",
        Some(other) => {
            return unprocessable(
                vec![json!(format!("Event {other} is not one of APPROVE, REQUEST_CHANGES, COMMENT"))],
                REVIEW_DOCS,
            );
        }
    };
    if body.trim().is_empty() && (state == "CHANGES_REQUESTED" || state == "COMMENTED") {
        let event = req.str_field("event").unwrap_or("");
        return unprocessable(vec![json!(format!("Review body is required when the event is {event}"))], REVIEW_DOCS);
    }
    let review = Review {
        id: w.next_id(),
        user: who.login().to_string(),
        commit_id,
        body,
        state: state.to_string(),
        submitted_at: Utc::now(),
    };
    let json = review_json(&w.base, repo, number, &review);
    w.reviews.entry((repo.to_string(), number)).or_default().push(review);
    Answer::json(200, json)
}

const CHECK_RUN_DOCS: &str = "https://docs.github.com/rest/checks/runs#create-a-check-run";
const STATUSES: [&str; 3] = ["queued", "in_progress", "completed"];
const CONCLUSIONS: [&str; 8] =
    ["action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"];

fn check_run_json(base: &str, repo: &str, run: &CheckRun) -> Value {
    let api = format!("{base}/repos/{repo}/check-runs/{}", run.id);
    json!({
        "id": run.id,
        "node_id": format!("CR_{}", run.id),
        "head_sha": run.head_sha,
        "external_id": run.external_id,
        "url": api,
        "html_url": format!("https://github.com/{repo}/runs/{}", run.id),
        "details_url": run.details_url,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": opt_time(&run.started_at),
        "completed_at": opt_time(&run.completed_at),
        "output": {
            "title": run.title,
            "summary": run.summary,
            "text": run.text,
            "annotations_count": 0,
            "annotations_url": format!("{api}/annotations"),
        },
        "name": run.name,
        "check_suite": { "id": run.id + 500_000 },
        "app": { "id": run.app_id, "slug": "review-operator", "name": "review-operator" },
        "pull_requests": [],
    })
}

fn require_app(who: &Caller) -> Result<u64, Answer> {
    match who {
        Caller::Installation { app_id } => Ok(*app_id),
        Caller::Token => Err(Answer::error(403, "You must authenticate via a GitHub App.", CHECK_RUN_DOCS)),
    }
}

fn parse_time(req: &Req, field: &str) -> Result<Option<DateTime<Utc>>, Answer> {
    match req.body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| {
            validation_failed("CheckRun", field, &format!("{field} is not a valid ISO 8601 timestamp"), CHECK_RUN_DOCS)
        }),
        Some(_) => Err(validation_failed("CheckRun", field, &format!("{field} is not a string"), CHECK_RUN_DOCS)),
    }
}

/// Applies the fields of a create or update body to `run`, validating them as GitHub does.
fn apply_check_run_fields(run: &mut CheckRun, req: &Req) -> Result<(), Answer> {
    let invalid = |field: &str, message: String| Err(validation_failed("CheckRun", field, &message, CHECK_RUN_DOCS));
    if let Some(name) = req.str_field("name") {
        run.name = name.to_string();
    }
    if let Some(head_sha) = req.str_field("head_sha") {
        run.head_sha = head_sha.to_string();
    }
    if let Some(external_id) = req.str_field("external_id") {
        run.external_id = Some(external_id.to_string());
    }
    if let Some(details_url) = req.str_field("details_url") {
        run.details_url = Some(details_url.to_string());
    }
    if let Some(started_at) = parse_time(req, "started_at")? {
        run.started_at = Some(started_at);
    }
    let completed_at = parse_time(req, "completed_at")?;
    if let Some(status) = req.body.get("status").filter(|s| !s.is_null()) {
        match status.as_str() {
            Some(s) if STATUSES.contains(&s) => run.status = s.to_string(),
            _ => return invalid("status", format!("{status} is not a valid status")),
        }
    }
    if let Some(conclusion) = req.body.get("conclusion").filter(|c| !c.is_null()) {
        match conclusion.as_str() {
            Some(c) if CONCLUSIONS.contains(&c) => {
                run.conclusion = Some(c.to_string());
                run.status = "completed".to_string();
            }
            _ => return invalid("conclusion", format!("{conclusion} is not a valid conclusion")),
        }
    }
    if completed_at.is_some() && run.conclusion.is_none() {
        return invalid("conclusion", "conclusion is required when completed_at is given".into());
    }
    if run.status == "completed" {
        if run.conclusion.is_none() {
            return invalid("conclusion", "conclusion is required when status is completed".into());
        }
        run.completed_at = completed_at.or(run.completed_at).or_else(|| Some(Utc::now()));
    }
    if let Some(output) = req.body.get("output").filter(|o| !o.is_null()) {
        let title = output.get("title").and_then(Value::as_str);
        let summary = output.get("summary").and_then(Value::as_str);
        match (title, summary) {
            (Some(title), Some(summary)) => {
                if summary.chars().count() > 65535 {
                    return invalid("output", "summary is too long (maximum is 65535 characters)".into());
                }
                run.title = Some(title.to_string());
                run.summary = Some(summary.to_string());
                run.text = output.get("text").and_then(Value::as_str).map(str::to_string);
            }
            _ => return invalid("output", "output requires a title and a summary".into()),
        }
    }
    Ok(())
}

fn create_check_run(w: &mut World, req: &Req, who: &Caller, repo: &str) -> Answer {
    let app_id = match require_app(who) {
        Ok(app_id) => app_id,
        Err(answer) => return answer,
    };
    let (Some(_), Some(_)) = (req.str_field("name"), req.str_field("head_sha")) else {
        return validation_failed("CheckRun", "name", "name and head_sha are required", CHECK_RUN_DOCS);
    };
    let mut run = CheckRun {
        id: w.next_id(),
        app_id,
        name: String::new(),
        head_sha: String::new(),
        external_id: None,
        details_url: None,
        status: "queued".to_string(),
        conclusion: None,
        started_at: None,
        completed_at: None,
        title: None,
        summary: None,
        text: None,
    };
    if let Err(answer) = apply_check_run_fields(&mut run, req) {
        return answer;
    }
    run.started_at = run.started_at.or_else(|| Some(Utc::now()));
    let json = check_run_json(&w.base, repo, &run);
    w.check_runs.entry(repo.to_string()).or_default().push(run);
    Answer::json(201, json)
}

fn update_check_run(w: &mut World, req: &Req, who: &Caller, repo: &str, id: u64) -> Answer {
    if let Err(answer) = require_app(who) {
        return answer;
    }
    let base = w.base.clone();
    let Some(run) = w.check_runs.get_mut(repo).and_then(|rs| rs.iter_mut().find(|r| r.id == id)) else {
        return not_found();
    };
    let mut updated = run.clone();
    if let Err(answer) = apply_check_run_fields(&mut updated, req) {
        return answer;
    }
    *run = updated;
    Answer::json(200, check_run_json(&base, repo, run))
}

fn get_check_run(w: &World, repo: &str, id: u64) -> Answer {
    match w.check_runs.get(repo).and_then(|rs| rs.iter().find(|r| r.id == id)) {
        Some(run) => Answer::json(200, check_run_json(&w.base, repo, run)),
        None => not_found(),
    }
}

/// A ref names a commit directly or is the head branch of one of the repo's pulls.
fn resolve_ref(w: &World, repo: &str, reference: &str) -> String {
    let branch = reference.strip_prefix("heads/").unwrap_or(reference);
    w.pulls
        .iter()
        .find(|((r, number), _)| r == repo && head_ref(*number) == branch)
        .map(|(_, pull)| pull.head.clone())
        .unwrap_or_else(|| reference.to_string())
}

fn list_check_runs(w: &World, req: &Req, repo: &str, reference: &str) -> Answer {
    let sha = resolve_ref(w, repo, reference);
    let latest_only = req.param("filter") != Some("all");
    let mut seen = HashSet::new();
    // Newest first, which is also what makes "latest" keep the newest run of each name.
    let runs: Vec<&CheckRun> = w.check_runs.get(repo).map(|rs| rs.iter().rev().collect()).unwrap_or_default();
    let items: Vec<Value> = runs
        .into_iter()
        .filter(|r| r.head_sha == sha)
        .filter(|r| req.param("check_name").is_none_or(|n| r.name == n))
        .filter(|r| req.param("status").is_none_or(|s| r.status == s))
        .filter(|r| req.param("app_id").is_none_or(|a| r.app_id.to_string() == a))
        .filter(|r| !latest_only || seen.insert(r.name.clone()))
        .map(|r| check_run_json(&w.base, repo, r))
        .collect();
    let total = items.len();
    paginate(&w.base, req, items, |page| json!({ "total_count": total, "check_runs": page }))
}

const STATUS_DOCS: &str = "https://docs.github.com/rest/commits/statuses#create-a-commit-status";

fn status_json(base: &str, repo: &str, sha: &str, status: &CommitStatus) -> Value {
    json!({
        "url": format!("{base}/repos/{repo}/statuses/{sha}"),
        "avatar_url": "https://avatars.githubusercontent.com/in/1?v=4",
        "id": status.id,
        "node_id": format!("SC_{}", status.id),
        "state": status.state,
        "description": status.description,
        "target_url": status.target_url,
        "context": status.context,
        "created_at": time(&status.created_at),
        "updated_at": time(&status.created_at),
        "creator": caller_json(base, &status.creator),
    })
}

fn create_status(w: &mut World, req: &Req, who: &Caller, repo: &str, sha: &str) -> Answer {
    let state = match req.body.get("state") {
        Some(Value::String(s)) if ["pending", "success", "failure", "error"].contains(&s.as_str()) => s.clone(),
        other => {
            let shown = other.map(Value::to_string).unwrap_or_else(|| "nothing".to_string());
            return validation_failed(
                "Status",
                "state",
                &format!("state is {shown}, not one of pending, success, failure, error"),
                STATUS_DOCS,
            );
        }
    };
    let description = req.str_field("description").map(str::to_string);
    if description.as_ref().is_some_and(|d| d.chars().count() > 140) {
        return validation_failed(
            "Status",
            "description",
            "description is too long (maximum is 140 characters)",
            STATUS_DOCS,
        );
    }
    let status = CommitStatus {
        id: w.next_id(),
        state,
        context: req.str_field("context").unwrap_or("default").to_string(),
        description,
        target_url: req.str_field("target_url").map(str::to_string),
        creator: who.login().to_string(),
        created_at: Utc::now(),
    };
    let json = status_json(&w.base, repo, sha, &status);
    w.statuses.entry((repo.to_string(), sha.to_string())).or_default().push(status);
    Answer::json(201, json)
}

fn list_statuses(w: &World, req: &Req, repo: &str, reference: &str) -> Answer {
    let sha = resolve_ref(w, repo, reference);
    let items: Vec<Value> = w
        .statuses
        .get(&(repo.to_string(), sha.clone()))
        .map(|ss| ss.iter().rev().map(|s| status_json(&w.base, repo, &sha, s)).collect())
        .unwrap_or_default();
    paginate(&w.base, req, items, Value::Array)
}

fn combined_status(w: &World, req: &Req, repo: &str, reference: &str) -> Answer {
    let sha = resolve_ref(w, repo, reference);
    let mut seen = HashSet::new();
    let latest: Vec<&CommitStatus> = w
        .statuses
        .get(&(repo.to_string(), sha.clone()))
        .map(|ss| ss.iter().rev().filter(|s| seen.insert(s.context.clone())).collect())
        .unwrap_or_default();
    let state = if latest.iter().any(|s| s.state == "error" || s.state == "failure") {
        "failure"
    } else if latest.is_empty() || latest.iter().any(|s| s.state == "pending") {
        "pending"
    } else {
        "success"
    };
    let statuses: Vec<Value> = latest.iter().map(|s| status_json(&w.base, repo, &sha, s)).collect();
    let total = statuses.len();
    let repository = repo_json(&w.base, repo);
    let base = w.base.clone();
    paginate(&w.base, req, statuses, |page| {
        json!({
            "state": state,
            "statuses": page,
            "sha": sha,
            "total_count": total,
            "repository": repository,
            "commit_url": format!("{base}/repos/{repo}/commits/{sha}"),
            "url": format!("{base}/repos/{repo}/commits/{sha}/status"),
        })
    })
}

/// Slices `items` by `per_page`/`page` and adds GitHub's `Link` header, whose URLs keep the
/// request's other query parameters.
fn paginate(base: &str, req: &Req, items: Vec<Value>, wrap: impl FnOnce(Vec<Value>) -> Value) -> Answer {
    let per_page = req
        .param("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p > 0)
        .unwrap_or(PER_PAGE_DEFAULT)
        .min(PER_PAGE_MAX);
    let page = req.param("page").and_then(|p| p.parse::<usize>().ok()).filter(|p| *p > 0).unwrap_or(1);
    let last = items.len().div_ceil(per_page).max(1);
    let page_items: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let answer = Answer::json(200, wrap(page_items));
    if last == 1 {
        return answer;
    }
    let link = |n: usize| {
        let mut query: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        query.push(format!("per_page={per_page}"));
        query.push(format!("page={n}"));
        format!("<{base}{}?{}>", req.path, query.join("&"))
    };
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(format!("{}; rel=\"prev\"", link((page - 1).min(last))));
    }
    if page < last {
        rels.push(format!("{}; rel=\"next\"", link(page + 1)));
        rels.push(format!("{}; rel=\"last\"", link(last)));
    }
    if page > 1 {
        rels.push(format!("{}; rel=\"first\"", link(1)));
    }
    answer.with_header("link", rels.join(", "))
}

fn installation_json(base: &str, inst: &Installation) -> Value {
    json!({
        "id": inst.id,
        "account": user_json(base, &inst.owner, name_id(&inst.owner), "Organization"),
        "access_tokens_url": format!("{base}/app/installations/{}/access_tokens", inst.id),
        "repositories_url": format!("{base}/installation/repositories"),
        "html_url": format!("https://github.com/organizations/{}/settings/installations/{}", inst.owner, inst.id),
        "app_id": inst.app_id,
        "app_slug": "review-operator",
        "target_id": name_id(&inst.owner),
        "target_type": "Organization",
        "permissions": permissions(),
        "events": ["check_run", "pull_request"],
        "created_at": time(&inst.created_at),
        "updated_at": time(&inst.created_at),
        "single_file_name": null,
        "repository_selection": "selected",
        "suspended_at": null,
        "suspended_by": null,
    })
}

fn permissions() -> Value {
    json!({ "checks": "write", "statuses": "write", "pull_requests": "write", "metadata": "read" })
}

fn list_installations(w: &World, app_key: &DecodingKey, req: &Req) -> Answer {
    let app_id = match authorize_app(w, app_key, req) {
        Ok(app_id) => app_id,
        Err(answer) => return answer,
    };
    let items: Vec<Value> =
        w.installations.iter().filter(|i| i.app_id == app_id).map(|i| installation_json(&w.base, i)).collect();
    paginate(&w.base, req, items, Value::Array)
}

fn find_installation<'a>(w: &'a World, app_id: u64, id: &str) -> Option<&'a Installation> {
    let id: u64 = id.parse().ok()?;
    w.installations.iter().find(|i| i.id == id && i.app_id == app_id)
}

fn get_installation(w: &World, app_key: &DecodingKey, req: &Req, id: &str) -> Answer {
    let app_id = match authorize_app(w, app_key, req) {
        Ok(app_id) => app_id,
        Err(answer) => return answer,
    };
    match find_installation(w, app_id, id) {
        Some(inst) => Answer::json(200, installation_json(&w.base, inst)),
        None => not_found(),
    }
}

fn repo_installation(w: &World, app_key: &DecodingKey, req: &Req, repo: &str) -> Answer {
    let app_id = match authorize_app(w, app_key, req) {
        Ok(app_id) => app_id,
        Err(answer) => return answer,
    };
    match w.installations.iter().find(|i| i.app_id == app_id && i.repos.iter().any(|r| r == repo)) {
        Some(inst) => Answer::json(200, installation_json(&w.base, inst)),
        None => not_found(),
    }
}

fn create_access_token(w: &mut World, app_key: &DecodingKey, req: &Req, id: &str) -> Answer {
    let app_id = match authorize_app(w, app_key, req) {
        Ok(app_id) => app_id,
        Err(answer) => return answer,
    };
    let Some(inst) = find_installation(w, app_id, id) else {
        return not_found();
    };
    // A token may be narrowed to some of the installation's repos, by name.
    let repos = match req.body.get("repositories").and_then(Value::as_array) {
        None => inst.repos.clone(),
        Some(names) => {
            let mut repos = Vec::new();
            for name in names {
                let full = format!("{}/{}", inst.owner, name.as_str().unwrap_or_default());
                if !inst.repos.contains(&full) {
                    return unprocessable(
                        vec![json!(format!(
                            "There is at least one repository that does not exist or is not accessible to the parent installation: {name}"
                        ))],
                        "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app",
                    );
                }
                repos.push(full);
            }
            repos
        }
    };
    let installation_id = inst.id;
    let token: String =
        format!("ghs_{}", rand::rng().sample_iter(Alphanumeric).take(36).map(char::from).collect::<String>());
    // Whole seconds, so that the expiry the client reads is the one enforced here.
    let expires_at = DateTime::from_timestamp(Utc::now().timestamp() + w.token_lifetime, 0).unwrap_or_else(Utc::now);
    let repositories: Vec<Value> = repos.iter().map(|r| repo_json(&w.base, r)).collect();
    w.issued.insert(token.clone(), IssuedToken { installation_id, app_id, repos, expires_at });
    w.tokens_issued += 1;
    let mut body = json!({
        "token": token,
        "expires_at": time(&expires_at),
        "permissions": permissions(),
        "repository_selection": "all",
    });
    if req.body.get("repositories").is_some() {
        body["repository_selection"] = json!("selected");
        body["repositories"] = Value::Array(repositories);
    }
    Answer::json(201, body)
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(&k.replace('+', " ")), decode(&v.replace('+', " ")))
        })
        .collect()
}

/// Percent-decoding; malformed escapes are kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
