//! TLS for the API server. kubectl only sends bearer tokens over TLS, so every dev cluster gets its own
//! certificate authority and a serving certificate for its loopback address, both generated at start.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::IpAddr;
use std::sync::Arc;

/// A generated CA and the server configuration that presents a certificate signed by it.
#[derive(Debug, Clone)]
pub struct ServingCertificates {
    /// The CA certificate in PEM, for `certificate-authority-data` in kubeconfigs.
    pub ca_pem: String,
    /// The CA certificate in DER, for `kube::Config::root_cert`.
    pub ca_der: Vec<u8>,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Errors generating certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Configure(#[from] rustls::Error),
}

/// A certificate authority kept across restarts: its certificate and key in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAuthority {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates a CA and a serving certificate valid for `localhost`, `127.0.0.1`, `::1` and `ip`.
pub fn generate(ip: IpAddr) -> Result<ServingCertificates, TlsError> {
    generate_with(ip, None).map(|(certificates, _)| certificates)
}

/// As [`generate`], signing with `kept` when given (a restart on the same data directory, so that
/// kubeconfigs written before keep working), and returning the authority to keep.
pub fn generate_with(
    ip: IpAddr,
    kept: Option<&KeptAuthority>,
) -> Result<(ServingCertificates, KeptAuthority), TlsError> {
    let ca_key = match kept {
        Some(kept) => KeyPair::from_pem(&kept.key_pem)?,
        None => KeyPair::generate()?,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "devcluster-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    // The same key and name sign as the kept certificate did, which clients already trust.
    let ca_pem = match kept {
        Some(kept) => kept.cert_pem.clone(),
        None => ca_params.self_signed(&ca_key)?.pem(),
    };
    let ca_der = pem_to_der(&ca_pem).ok_or(TlsError::Generate(rcgen::Error::CouldNotParseCertificate))?;
    let authority = KeptAuthority { cert_pem: ca_pem.clone(), key_pem: ca_key.serialize_pem() };
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "kubernetes.default.svc".to_string()])?;
    params.distinguished_name.push(DnType::CommonName, "devcluster-apiserver");
    let mut ips: Vec<IpAddr> = vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
    if !ips.contains(&ip) {
        ips.push(ip);
    }
    params.subject_alt_names.extend(ips.into_iter().map(SanType::IpAddress));
    let server_cert = params.signed_by(&server_key, &issuer)?;

    let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((ServingCertificates { ca_pem, ca_der, server_config: Arc::new(config) }, authority))
}

/// The DER bytes of the first PEM block.
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_authority_signs_again_with_the_same_certificate() {
        let (first, kept) = generate_with([127, 0, 0, 1].into(), None).unwrap();
        let (second, again) = generate_with([127, 0, 0, 1].into(), Some(&kept)).unwrap();
        assert_eq!(second.ca_pem, first.ca_pem);
        assert_eq!(second.ca_der, first.ca_der);
        assert_eq!(again.cert_pem, kept.cert_pem);
        assert!(kept.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn generates_a_ca_and_serving_config() {
        let certs = generate([127, 0, 0, 1].into()).unwrap();
        assert!(certs.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!certs.ca_der.is_empty());
        assert_eq!(certs.server_config.alpn_protocols[0], b"h2");
    }
}
