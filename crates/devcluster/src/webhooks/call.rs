//! One HTTPS POST of an AdmissionReview to a webhook, verified against the webhook's `caBundle`
//! (the system's roots without one), within its timeout. Failures are worded as Go's HTTP client
//! words them, since they end up in the messages clients see (`Post "URL": ...`).

use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;

/// Where and how to reach one webhook.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The URL as the request names it, with the `timeout` query kube-apiserver's client adds.
    pub url: String,
    /// Where to connect.
    pub host: String,
    pub port: u16,
    /// The name the server's certificate must carry: the URL's host, or a Service's DNS name when
    /// the connection goes to one of its pods.
    pub server_name: String,
    pub path_and_query: String,
    /// PEM certificates the server's chain must lead to; `None` trusts the system's roots.
    pub ca_bundle: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl Endpoint {
    /// The endpoint of an `https://host[:port][/path]` URL (validation has checked its form).
    pub(crate) fn from_url(url: &str, ca_bundle: Option<Vec<u8>>, timeout: Duration) -> Result<Self, String> {
        let rest = url.strip_prefix("https://").ok_or_else(|| format!("unsupported URL {url:?}"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority).ok_or_else(|| format!("invalid host in URL {url:?}"))?;
        let query = format!("timeout={}s", timeout.as_secs());
        Ok(Self {
            url: format!("{url}?{query}"),
            server_name: host.clone(),
            host,
            port,
            path_and_query: format!("{path}?{query}"),
            ca_bundle,
            timeout,
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 443.
fn split_host_port(authority: &str) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => 443,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), 443)),
    }
}

/// What a webhook answered: its status code and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// POSTs `body` (JSON) to the endpoint, within its timeout.
pub(crate) async fn post(endpoint: &Endpoint, body: Vec<u8>) -> Result<Answer, String> {
    let url = &endpoint.url;
    match tokio::time::timeout(endpoint.timeout, exchange(endpoint, body)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(format!("Post {url:?}: {error}")),
        Err(_) => Err(format!("Post {url:?}: context deadline exceeded")),
    }
}

async fn exchange(endpoint: &Endpoint, body: Vec<u8>) -> Result<Answer, String> {
    let config = client_config(endpoint.ca_bundle.as_deref())?;
    let address = format!("{}:{}", endpoint.host, endpoint.port);
    let addresses: Vec<_> = tokio::net::lookup_host(&address)
        .await
        .map_err(|_| format!("dial tcp: lookup {}: no such host", endpoint.host))?
        .collect();
    let mut last_error = format!("dial tcp: lookup {}: no such host", endpoint.host);
    let mut tcp = None;
    for socket_address in addresses {
        match tokio::net::TcpStream::connect(socket_address).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(error) => last_error = format!("dial tcp {socket_address}: connect: {}", dial_error(&error)),
        }
    }
    let tcp = tcp.ok_or(last_error)?;
    let server_name = ServerName::try_from(endpoint.server_name.clone()).map_err(|e| format!("invalid host: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|error| tls_error(&error))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let host_header = endpoint.url.split('/').nth(2).unwrap_or(&address).to_string();
    let request = hyper::Request::post(&endpoint.path_and_query)
        .header(hyper::header::HOST, host_header)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json, */*")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes().to_vec();
    driver.abort();
    Ok(Answer { status, body })
}

/// Go's wording of the usual connect errors.
fn dial_error(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => error.to_string(),
    }
}

/// A failed handshake as Go's `crypto/tls` reports it, for the verification failures it names.
fn tls_error(error: &std::io::Error) -> String {
    let detail = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match detail {
        // A chain that does not lead to the bundle: no issuer of that name, or one whose key did
        // not sign it.
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature,
        )) => "tls: failed to verify certificate: x509: certificate signed by unknown authority".into(),
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
        | Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
            "tls: failed to verify certificate: x509: certificate is not valid for the requested host".into()
        }
        Some(other) => format!("tls: {other}"),
        None => format!("tls: {error}"),
    }
}

/// A client trusting `ca_bundle`'s certificates, or the system's roots without one.
fn client_config(ca_bundle: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(pem) => {
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("unable to load root certificates: {e}"))?;
            if certificates.is_empty() {
                return Err("unable to load root certificates: no certificates found in caBundle".into());
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|e| format!("unable to load root certificates: {e}"))?;
            }
        }
        None => {
            for certificate in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot use is skipped, as Go's pool skips it.
                let _ = roots.add(certificate);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Runs `work` to completion from synchronous code, on a runtime of its own on another thread, so
/// that a write path that is not async can wait for webhooks. On a multi-threaded runtime the
/// waiting worker hands its other tasks on, so other requests (and a webhook served in the same
/// process) go on meanwhile; a current-thread runtime waits.
pub(crate) fn blocking<T: Send>(work: impl std::future::Future<Output = T> + Send) -> Result<T, String> {
    let run = || {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("cannot start the webhook client: {e}"))?;
                    Ok(runtime.block_on(work))
                })
                .join()
                .unwrap_or_else(|_| Err("the webhook client panicked".into()))
        })
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(run)
        }
        _ => run(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_their_port_path_and_timeout_query() {
        let endpoint = Endpoint::from_url("https://127.0.0.1:8443/validate", None, Duration::from_secs(10)).unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("127.0.0.1", 8443));
        assert_eq!(endpoint.path_and_query, "/validate?timeout=10s");
        assert_eq!(endpoint.url, "https://127.0.0.1:8443/validate?timeout=10s");
        let endpoint = Endpoint::from_url("https://hooks.example.com", None, Duration::from_secs(3)).unwrap();
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port, endpoint.path_and_query.as_str()),
            ("hooks.example.com", 443, "/?timeout=3s")
        );
        let endpoint = Endpoint::from_url("https://[::1]:9443/m", None, Duration::from_secs(1)).unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("::1", 9443));
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_an_error() {
        let error = client_config(Some(b"not a certificate")).unwrap_err();
        assert!(error.contains("no certificates found in caBundle"), "{error}");
    }

    #[test]
    fn blocking_runs_from_outside_and_inside_a_runtime() {
        assert_eq!(blocking(async { 1 + 1 }).unwrap(), 2);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert_eq!(runtime.block_on(async { blocking(async { 3 }) }).unwrap(), 3);
    }
}
