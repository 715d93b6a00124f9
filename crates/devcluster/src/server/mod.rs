//! The HTTP API server: routing, authentication, and the shared state every handler uses.

mod access;
mod admin;
mod apiservices;
mod batch;
mod bootstrap;
mod crd;
pub(crate) mod csr;
mod ephemeral;
mod eviction;
mod gc;
mod handlers;
mod objects;
mod quota;
mod resize;
mod scale;
pub(crate) mod strategy;
mod streams;
mod tokens;
mod watch;

pub use objects::{DeleteOptions, Deletion, Propagation, WriteContext};

use crate::auth::{Authenticator, UserInfo};
use crate::builtin::builtin_resources;
use crate::error::ApiError;
use crate::meta;
use crate::registry::Registry;
use crate::schema::CrdSchema;
use crate::store::{NoPersistence, ObjectKey, Store};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch as signal;

/// A served custom resource version's compiled schema and the CRD it came from.
#[derive(Debug)]
pub(crate) struct CustomSchema {
    pub crd: String,
    pub schema: CrdSchema,
    pub rules: Arc<crate::patch::rules::MergeRules>,
}

/// Tunables of one server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How many changes are kept for watch resumption before a resume gets 410 Gone.
    pub history_limit: usize,
    /// How often idle watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// How often the garbage collector re-checks everything, besides reacting to changes.
    pub gc_sweep_interval: Duration,
    /// The largest request body accepted (the real server's limit is 3 MiB).
    pub max_body_bytes: usize,
    /// Whether `/readyz` answers `ok` from the start. Embedders that install objects first start
    /// unready and call [`ApiServer::set_ready`] when done, so "ready" means usable.
    pub ready_at_start: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            history_limit: 100_000,
            bookmark_interval: Duration::from_secs(5),
            gc_sweep_interval: Duration::from_secs(5),
            max_body_bytes: 3 * 1024 * 1024,
            ready_at_start: true,
        }
    }
}

/// State shared by all requests of one server.
#[derive(Debug)]
pub struct ApiServer {
    pub registry: Registry,
    pub store: Store,
    pub auth: Authenticator,
    /// RBAC decisions on `store`'s roles and bindings.
    pub authorizer: crate::rbac::Authorizer,
    pub faults: crate::faults::Faults,
    /// Output of pod containers, kept by the pod runner and served at `pods/NAME/log`.
    pub pod_logs: crate::runner::logs::LogBook,
    /// How each running container's processes run, for `pods/exec`.
    pub pod_exec: crate::runner::exec::ExecTargets,
    pub settings: ServerSettings,
    /// Compiled schemas of served custom resources, by (group, version, resource).
    schemas: RwLock<HashMap<(String, String, String), Arc<CustomSchema>>>,
    /// Merge rules of built-in kinds by (group, kind), built once.
    builtin_rules: HashMap<(String, String), Arc<crate::patch::rules::MergeRules>>,
    /// Bumped to end every open watch (fault injection and shutdown).
    watch_epoch: signal::Sender<u64>,
    server_address: RwLock<String>,
    /// The cluster CA in PEM, published in every namespace (empty until the embedder sets it).
    cluster_ca: RwLock<String>,
    /// The authority the certificate signers issue with (none until the embedder sets it).
    signing_authority: RwLock<Option<crate::tls::KeptAuthority>>,
    ready: std::sync::atomic::AtomicBool,
    /// Held from a pod's quota check to its storage, so that two pods cannot both take the last
    /// place a quota leaves.
    pod_admission: std::sync::Mutex<()>,
}

impl ApiServer {
    /// Who an `Authorization` header is: a known token, unexpired, whose bound pod, if any, still
    /// exists with the UID it was bound to (as kube-apiserver checks bound service-account tokens).
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<UserInfo> {
        self.auth.authenticate_with(authorization, |bound| {
            let key = crate::store::ObjectKey::new("", "pods", &bound.namespace, &bound.name);
            self.store.get(&key).is_some_and(|pod| meta::str_at(&pod, "/metadata/uid") == bound.uid)
        })
    }

    /// A server keeping its objects in memory only.
    pub fn new(settings: ServerSettings) -> Arc<Self> {
        let store = Store::new(Arc::new(NoPersistence), settings.history_limit);
        Self::with_store(settings, store)
    }

    /// A server on an existing store (e.g. one restored from a data directory): custom resources of stored
    /// CRDs are served again, and built-in objects are created only when missing.
    pub fn with_store(settings: ServerSettings, store: Store) -> Arc<Self> {
        let (watch_epoch, _) = signal::channel(0);
        let server = Arc::new(Self {
            registry: Registry::new(builtin_resources()),
            authorizer: crate::rbac::Authorizer::new(store.clone()),
            store,
            auth: Authenticator::default(),
            faults: crate::faults::Faults::default(),
            pod_logs: crate::runner::logs::LogBook::default(),
            pod_exec: crate::runner::exec::ExecTargets::default(),
            schemas: RwLock::new(HashMap::new()),
            builtin_rules: builtin_resources()
                .into_iter()
                .map(|r| {
                    let rules = crate::patch::rules::MergeRules::builtin(&r.group, &r.kind);
                    ((r.group, r.kind), Arc::new(rules))
                })
                .collect(),
            watch_epoch,
            server_address: RwLock::new(String::new()),
            cluster_ca: RwLock::new(String::new()),
            signing_authority: RwLock::new(None),
            ready: std::sync::atomic::AtomicBool::new(settings.ready_at_start),
            pod_admission: std::sync::Mutex::new(()),
            settings,
        });
        server.serve_stored_crds();
        server.bootstrap();
        server
    }

    fn serve_stored_crds(&self) {
        for crd in self.store.list("apiextensions.k8s.io", "customresourcedefinitions", None).objects {
            if let Err(e) = self.establish_crd(&crd) {
                tracing::error!(crd = meta::str_at(&crd, "/metadata/name"), error = %e, "cannot serve a stored CRD");
            }
        }
    }

    pub(crate) fn set_server_address(&self, address: &str) {
        if let Ok(mut a) = self.server_address.write() {
            *a = address.to_string();
        }
    }

    fn server_address(&self) -> String {
        self.server_address.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// Marks the server ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Ends every open watch stream; clients re-establish them as after a network drop.
    pub fn drop_watches(&self) {
        self.watch_epoch.send_modify(|e| *e += 1);
    }

    pub(crate) fn schema_for(&self, group: &str, version: &str, resource: &str) -> Option<Arc<CustomSchema>> {
        let map = self.schemas.read().ok()?;
        map.get(&(group.to_string(), version.to_string(), resource.to_string())).cloned()
    }

    /// Every stored object, for consistency checks in tests.
    pub fn stored_objects(&self) -> Vec<(ObjectKey, Arc<serde_json::Value>)> {
        self.store.all()
    }
}

/// Paths served without authentication, as the real server's `system:public-info-viewer` allows.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version" | "/version/")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// The router serving one `ApiServer`.
pub fn router(server: Arc<ApiServer>) -> Router {
    Router::new().fallback(dispatch).with_state(server)
}

async fn dispatch(State(server): State<Arc<ApiServer>>, request: Request) -> Response {
    // Read the whole body first, whatever the answer: a response sent while the client is still
    // writing a large body would end the connection under it.
    let (parts, body) = request.into_parts();
    let request = match handlers::read_body(&server, body).await {
        Ok(bytes) => Request::from_parts(parts, Body::from(bytes)),
        Err(error) => return error.into_response(),
    };
    let path = request.uri().path().to_string();
    if path.starts_with("/readyz") && !server.is_ready() {
        let body = "[-]devcluster-setup failed: reason withheld\nreadyz check failed\n";
        return (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
            .into_response();
    }
    if is_public(&path) {
        return public_endpoint(&path);
    }
    // As kube-apiserver's union authenticator: the client certificate first, then the token.
    let user = match request.extensions().get::<crate::auth::CertificateIdentity>() {
        Some(identity) => Some(identity.0.clone()),
        None => server.authenticate(request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())),
    };
    let Some(user) = user else {
        return ApiError::unauthorized().into_response();
    };
    handlers::handle(server, user, request).await
}

fn public_endpoint(path: &str) -> Response {
    if path.starts_with("/version") {
        let version = json!({
            "major": "1",
            "minor": "37",
            "emulationMajor": "1",
            "emulationMinor": "37",
            "minCompatibilityMajor": "1",
            "minCompatibilityMinor": "36",
            "gitVersion": "v1.37.1-devcluster",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.25",
            "compiler": "gc",
            "platform": "linux/amd64"
        });
        return json_response(StatusCode::OK, &version, &HeaderMap::new());
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
}

/// A JSON response with extra headers (warnings).
pub(crate) fn json_response(code: StatusCode, body: &serde_json::Value, extra: &HeaderMap) -> Response {
    json_bytes_response(code, crate::wire::to_vec(body), extra)
}

/// An answer whose JSON body is written already.
pub(crate) fn json_bytes_response(code: StatusCode, body: Vec<u8>, extra: &HeaderMap) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    for (k, v) in extra {
        response.headers_mut().append(k, v.clone());
    }
    response
}

/// The identity recorded for requests the server makes itself.
pub(crate) fn system_user(name: &str) -> UserInfo {
    UserInfo { username: format!("system:{name}"), groups: vec!["system:masters".into()], ..UserInfo::default() }
}
