//! Starting and stopping a dev cluster: the library API tests and `review-operator dev` use.

use crate::auth::{UserInfo, generate_token};
use crate::durable::RedbPersistence;
use crate::error::DevClusterError;
use crate::kubeconfig;
use crate::runner::{PodRunner, RunnerSettings};
use crate::server::{ApiServer, ServerSettings, router};
use crate::store::Store;
use crate::tls;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

/// How to start a dev cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where to write the kubeconfig; `None` writes it into a private temporary folder.
    pub kubeconfig_path: Option<PathBuf>,
    pub settings: ServerSettings,
    /// Where to keep objects durably; `None` keeps them in memory only. With a directory, every write is
    /// on disk before it is acknowledged, and a restart on the same directory serves the same objects
    /// with the same resourceVersions.
    pub data_dir: Option<PathBuf>,
    /// The local pod runner (on by default).
    pub runner: RunnerSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig_path: None,
            settings: ServerSettings::default(),
            data_dir: None,
            runner: RunnerSettings::default(),
        }
    }
}

/// What a cluster with a data directory keeps across restarts besides its objects: its CA and its
/// admin token, so that kubeconfigs and clients made before a restart (even `kill -9`) still work,
/// as they do against a real API server that restarts.
struct KeptIdentity {
    authority: tls::KeptAuthority,
    admin_token: String,
}

impl KeptIdentity {
    const CA: &'static str = "ca.pem";
    const CA_KEY: &'static str = "ca-key.pem";
    const ADMIN_TOKEN: &'static str = "admin-token";

    /// The kept identity, or `None` on a first start (or when any part is missing).
    fn read(dir: &Path) -> Result<Option<Self>, DevClusterError> {
        let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DevClusterError::Identity { path: dir.join(name).display().to_string(), source }),
        };
        let (Some(cert_pem), Some(key_pem), Some(token)) =
            (read(Self::CA)?, read(Self::CA_KEY)?, read(Self::ADMIN_TOKEN)?)
        else {
            return Ok(None);
        };
        Ok(Some(Self { authority: tls::KeptAuthority { cert_pem, key_pem }, admin_token: token.trim().to_string() }))
    }

    /// Writes the identity, readable by the owner only; the token last, so that a start killed
    /// midway writes everything again.
    fn write(&self, dir: &Path) -> Result<(), DevClusterError> {
        use std::os::unix::fs::OpenOptionsExt;
        for (name, text) in [
            (Self::CA, &self.authority.cert_pem),
            (Self::CA_KEY, &self.authority.key_pem),
            (Self::ADMIN_TOKEN, &self.admin_token),
        ] {
            let path = dir.join(name);
            let failed = |source| DevClusterError::Identity { path: path.display().to_string(), source };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(failed)?;
            std::io::Write::write_all(&mut file, text.as_bytes()).map_err(failed)?;
            file.sync_all().map_err(failed)?;
        }
        Ok(())
    }
}

/// A running dev cluster. Dropping it without [`DevCluster::shutdown`] stops serving as well.
#[derive(Debug)]
pub struct DevCluster {
    server: Arc<ApiServer>,
    address: SocketAddr,
    ca_der: Vec<u8>,
    ca_pem: String,
    /// Signs client certificates.
    authority: tls::KeptAuthority,
    kubeconfig_path: PathBuf,
    admin_token: String,
    shutdown: signal::Sender<bool>,
    serve: Option<JoinHandle<std::io::Result<()>>>,
    controllers: Option<JoinHandle<()>>,
    runner: Option<PodRunner>,
    temp_dir: Option<PathBuf>,
}

impl DevCluster {
    /// Starts serving on `config.listen` and writes a kubeconfig with a fresh admin token (the kept
    /// one, and the kept CA, when the data directory has them from an earlier start).
    pub async fn start(config: Config) -> Result<Self, DevClusterError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| DevClusterError::Bind { addr: config.listen.to_string(), source })?;
        let address = listener.local_addr().map_err(DevClusterError::Serve)?;
        let server = match &config.data_dir {
            None => ApiServer::new(config.settings),
            Some(dir) => {
                let (persistence, contents) = RedbPersistence::open(dir)?;
                let store = Store::restored(Arc::new(persistence), config.settings.history_limit, contents);
                ApiServer::with_store(config.settings, store)
            }
        };
        server.set_server_address(&address.to_string());
        let identity = config.data_dir.as_deref().map(KeptIdentity::read).transpose()?.flatten();
        let admin_token = identity.as_ref().map_or_else(generate_token, |kept| kept.admin_token.clone());
        server.auth.add(&admin_token, UserInfo::admin());

        let (kubeconfig_path, temp_dir) = match config.kubeconfig_path {
            Some(path) => (path, None),
            None => {
                let dir = std::env::temp_dir().join(format!("devcluster-{}", uuid::Uuid::new_v4()));
                (dir.join("kubeconfig"), Some(dir))
            }
        };
        let (certificates, authority) = tls::generate_with(address.ip(), identity.as_ref().map(|kept| &kept.authority))
            .map_err(|e| DevClusterError::Tls(e.to_string()))?;
        if let (Some(dir), None) = (&config.data_dir, &identity) {
            KeptIdentity { authority, admin_token: admin_token.clone() }.write(dir)?;
        }
        server.set_cluster_ca(&certificates.ca_pem);
        server.set_signing_authority(certificates.authority.clone());
        let contents = kubeconfig::render(&format!("https://{address}"), &certificates.ca_pem, &admin_token, "default");
        kubeconfig::write(&kubeconfig_path, &contents)
            .map_err(|source| DevClusterError::Kubeconfig { path: kubeconfig_path.display().to_string(), source })?;

        let (shutdown, stop) = signal::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(certificates.server_config.clone());
        let serve = tokio::spawn(serve_tls(listener, acceptor, router(server.clone()), stop));
        let controllers = tokio::spawn(server.clone().run_controllers(shutdown.subscribe()));
        let runner = if config.runner.enabled {
            let url = format!("https://{address}");
            Some(
                PodRunner::start(server.clone(), config.runner, url, certificates.ca_pem.clone(), shutdown.subscribe())
                    .map_err(DevClusterError::Serve)?,
            )
        } else {
            None
        };
        tracing::info!(%address, kubeconfig = %kubeconfig_path.display(), "dev cluster serving");
        Ok(Self {
            server,
            address,
            ca_der: certificates.ca_der,
            ca_pem: certificates.ca_pem,
            authority: certificates.authority,
            kubeconfig_path,
            admin_token,
            shutdown,
            serve: Some(serve),
            controllers: Some(controllers),
            runner,
            temp_dir,
        })
    }

    /// The server's base URL, e.g. `https://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// A client certificate signed by the cluster's CA for `user` in `groups` (X.509 client
    /// authentication), valid for a day.
    pub fn client_certificate(&self, user: &str, groups: &[&str]) -> Result<tls::ClientCertificate, DevClusterError> {
        self.authority
            .sign_client(user, groups, std::time::Duration::from_secs(24 * 3600))
            .map_err(|e| DevClusterError::Tls(e.to_string()))
    }

    /// The PEM certificate of the cluster's own CA, which signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The server state, for tests that inspect storage or inject faults.
    pub fn server(&self) -> &Arc<ApiServer> {
        &self.server
    }

    /// A `kube::Client` authenticated as the cluster admin, defaulting to namespace `default`.
    pub fn client(&self) -> Result<kube::Client, DevClusterError> {
        self.client_for_token(&self.admin_token)
    }

    /// A `kube::Client` presenting `token` (registered with `server().auth`), defaulting to namespace
    /// `default`: how tests act as identities other than the admin.
    pub fn client_for_token(&self, token: &str) -> Result<kube::Client, DevClusterError> {
        let url = self.url().parse().map_err(|e| DevClusterError::Client(format!("{e}")))?;
        let mut config = kube::Config::new(url);
        config.default_namespace = "default".into();
        config.auth_info.token = Some(token.to_string().into());
        config.root_cert = Some(vec![self.ca_der.clone()]);
        kube::Client::try_from(config).map_err(|e| DevClusterError::Client(e.to_string()))
    }

    /// Writes a kubeconfig for this cluster that presents `token`, with `namespace` as its default
    /// (for running kubectl as another identity).
    pub fn kubeconfig_for_token(&self, token: &str, namespace: &str, path: &Path) -> Result<(), DevClusterError> {
        let contents = kubeconfig::render(&self.url(), &self.ca_pem, token, namespace);
        kubeconfig::write(path, &contents)
            .map_err(|source| DevClusterError::Kubeconfig { path: path.display().to_string(), source })
    }

    /// Writes a kubeconfig for this cluster that presents `certificate` (X.509 client
    /// authentication), with `namespace` as its default.
    pub fn kubeconfig_for_certificate(
        &self,
        certificate: &tls::ClientCertificate,
        namespace: &str,
        path: &Path,
    ) -> Result<(), DevClusterError> {
        let credential =
            kubeconfig::Credential::Certificate { cert_pem: &certificate.cert_pem, key_pem: &certificate.key_pem };
        let contents = kubeconfig::render_with(&self.url(), &self.ca_pem, credential, namespace);
        kubeconfig::write(path, &contents)
            .map_err(|source| DevClusterError::Kubeconfig { path: path.display().to_string(), source })
    }

    /// Stops serving: stops every pod (SIGTERM, SIGKILL after a grace period) and waits until its
    /// processes are reaped, ends open watches, stops the built-in controllers and waits for the
    /// server task.
    pub async fn shutdown(mut self) -> Result<(), DevClusterError> {
        // The runner stops its pods gracefully once told; only a drop kills them at once.
        self.signal_shutdown();
        if let Some(runner) = self.runner.as_mut() {
            runner.stopped().await;
        }
        if let Some(serve) = self.serve.take() {
            match serve.await {
                Ok(result) => result.map_err(DevClusterError::Serve)?,
                Err(e) => return Err(DevClusterError::Serve(std::io::Error::other(e.to_string()))),
            }
        }
        if let Some(controllers) = self.controllers.take() {
            let _ = controllers.await;
        }
        Ok(())
    }

    fn stop_tasks(&self) {
        if let Some(runner) = &self.runner {
            runner.kill_all();
        }
        self.signal_shutdown();
    }

    /// Ends open watches and tells the runner and the built-in controllers to stop.
    fn signal_shutdown(&self) {
        self.server.drop_watches();
        let _ = self.shutdown.send(true);
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        self.stop_tasks();
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Accepts TLS connections and serves the router on each until `stop` changes, then waits briefly
/// for in-flight requests.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    mut stop: signal::Receiver<bool>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                // Watch events are small writes that must leave at once, not wait for Nagle's algorithm.
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot disable Nagle's algorithm");
                }
                let acceptor = acceptor.clone();
                let app = app.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    // The certificate was verified in the handshake; requests on this connection carry who it names.
                    let identity = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|leaf| tls::client_identity(leaf))
                        .map(crate::auth::CertificateIdentity);
                    let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                        app,
                        move |mut request: axum::http::Request<hyper::body::Incoming>| {
                            if let Some(identity) = &identity {
                                request.extensions_mut().insert(identity.clone());
                            }
                            request
                        },
                    ));
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).into_owned();
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
    }
    Ok(())
}
