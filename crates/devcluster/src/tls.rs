//! TLS for the API server. kubectl only sends bearer tokens over TLS, so every dev cluster gets its own
//! certificate authority and a serving certificate for its loopback address, both generated at start.
//! The same authority signs client certificates (X.509 client authentication, as kube-apiserver's
//! `--client-ca-file`): the subject's common name is the user and its organizations the groups.

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
    /// The authority, which also signs client certificates.
    pub authority: KeptAuthority,
}

/// Errors generating certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Configure(#[from] rustls::Error),
    #[error("cannot sign the certificate request: {0}")]
    Request(String),
    #[error("cannot verify client certificates: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}

/// A client certificate and its private key, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl KeptAuthority {
    /// Signs a client certificate with a new key for `user` in `groups`, valid for `validity`.
    pub fn sign_client(
        &self,
        user: &str,
        groups: &[&str],
        validity: std::time::Duration,
    ) -> Result<ClientCertificate, TlsError> {
        let key = KeyPair::generate()?;
        // One attribute per RDN, as openssl and kubeadm write subjects: several organizations are
        // several groups.
        let subject = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                let mut attribute = |oid: &[u64], value: &str| {
                    w.next().write_set(|w| {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&yasna::models::ObjectIdentifier::from_slice(oid));
                            w.next().write_utf8_string(value);
                        })
                    })
                };
                for group in groups {
                    attribute(&[2, 5, 4, 10], group);
                }
                attribute(&[2, 5, 4, 3], user);
            })
        });
        let cert_pem = self.issue_client(&subject, &rcgen::PublicKeyData::subject_public_key_info(&key), validity)?;
        Ok(ClientCertificate { cert_pem, key_pem: key.serialize_pem() })
    }

    /// Signs a PKCS#10 request (PEM) for client authentication with its subject exactly as
    /// requested, as kube-controller-manager's `kubernetes.io/kube-apiserver-client` signer does.
    pub fn sign_request(&self, request_pem: &str, validity: std::time::Duration) -> Result<String, TlsError> {
        use x509_parser::prelude::FromDer;
        let der = pem_to_der(request_pem).ok_or(TlsError::Request("not PEM".into()))?;
        let (_, request) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
            .map_err(|e| TlsError::Request(e.to_string()))?;
        request.verify_signature().map_err(|e| TlsError::Request(format!("its signature does not verify: {e}")))?;
        let info = &request.certification_request_info;
        self.issue_client(info.subject.as_raw(), info.subject_pki.raw, validity)
    }

    /// A certificate for client authentication of `subject` (DER `Name`) and `public_key` (DER
    /// `SubjectPublicKeyInfo`), valid from a minute ago (clock skew) for `validity`, in PEM.
    fn issue_client(
        &self,
        subject: &[u8],
        public_key: &[u8],
        validity: std::time::Duration,
    ) -> Result<String, TlsError> {
        use rcgen::SigningKey;
        use x509_parser::prelude::FromDer;
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        if ca_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(TlsError::Request("the authority's key is not ECDSA P-256".into()));
        }
        let ca_der = pem_to_der(&self.cert_pem).ok_or(TlsError::Generate(rcgen::Error::CouldNotParseCertificate))?;
        let (_, ca) = x509_parser::certificate::X509Certificate::from_der(&ca_der)
            .map_err(|_| TlsError::Generate(rcgen::Error::CouldNotParseCertificate))?;
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let time = |at: time::OffsetDateTime| {
            yasna::models::UTCTime::from_datetime_opt(at).ok_or(TlsError::Request(format!("{at} is past 2049")))
        };
        let (not_before, not_after) = (time(now - time::Duration::minutes(1))?, time(now + validity)?);
        let serial: [u8; 16] = rand::random();
        let ecdsa_sha256 = yasna::models::ObjectIdentifier::from_slice(&[1, 2, 840, 10045, 4, 3, 2]);
        let algorithm = |w: yasna::DERWriter| w.write_sequence(|w| w.next().write_oid(&ecdsa_sha256));
        let extension = |w: &mut yasna::DERWriterSeq, oid: &[u64], critical: bool, value: Vec<u8>| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&yasna::models::ObjectIdentifier::from_slice(oid));
                if critical {
                    w.next().write_bool(true);
                }
                w.next().write_bytes(&value);
            })
        };
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_tagged(yasna::Tag::context(0), |w| w.write_u8(2));
                w.next().write_bigint_bytes(&serial, true);
                algorithm(w.next());
                w.next().write_der(ca.subject().as_raw());
                w.next().write_sequence(|w| {
                    w.next().write_utctime(&not_before);
                    w.next().write_utctime(&not_after);
                });
                w.next().write_der(subject);
                w.next().write_der(public_key);
                w.next().write_tagged(yasna::Tag::context(3), |w| {
                    w.write_sequence(|w| {
                        // digitalSignature and keyEncipherment, as kube-controller-manager's signer sets.
                        extension(w, &[2, 5, 29, 15], true, yasna::construct_der(|w| w.write_bitvec_bytes(&[0xa0], 3)));
                        extension(
                            w,
                            &[2, 5, 29, 37],
                            false,
                            yasna::construct_der(|w| {
                                w.write_sequence(|w| {
                                    w.next().write_oid(&yasna::models::ObjectIdentifier::from_slice(&[
                                        1, 3, 6, 1, 5, 5, 7, 3, 2,
                                    ]))
                                })
                            }),
                        );
                        extension(w, &[2, 5, 29, 19], true, yasna::construct_der(|w| w.write_sequence(|_| {})));
                    })
                });
            })
        });
        let signature = ca_key.sign(&tbs)?;
        let cert = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                algorithm(w.next());
                w.next().write_bitvec_bytes(&signature, signature.len() * 8);
            })
        });
        Ok(to_pem("CERTIFICATE", &cert))
    }
}

/// The identity a verified client certificate (DER) presents: its subject's common name as the
/// user, its organizations as groups, plus `system:authenticated`; `None` without a common name.
pub fn client_identity(der: &[u8]) -> Option<crate::auth::UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let mut groups: Vec<String> =
        subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    groups.push("system:authenticated".into());
    Some(crate::auth::UserInfo { username: user, groups, ..Default::default() })
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
    // Client certificates are optional (bearer tokens need none); one that is presented must be
    // signed by the authority.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.clone()))?;
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let certificates =
        ServingCertificates { ca_pem, ca_der, server_config: Arc::new(config), authority: authority.clone() };
    Ok((certificates, authority))
}

/// A PEM block of `label` with lines of 64 characters.
fn to_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
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

    fn der(pem: &str) -> Vec<u8> {
        pem_to_der(pem).unwrap()
    }

    #[test]
    fn client_certificates_name_the_user_and_groups_they_were_signed_for() {
        let (_, authority) = generate_with([127, 0, 0, 1].into(), None).unwrap();
        let client = authority.sign_client("jane", &["dev", "ops"], std::time::Duration::from_secs(3600)).unwrap();
        let user = client_identity(&der(&client.cert_pem)).unwrap();
        assert_eq!(user.username, "jane");
        assert_eq!(user.groups, ["dev", "ops", "system:authenticated"]);
        let (cert_der, ca_der) = (der(&client.cert_pem), der(&authority.cert_pem));
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key())).unwrap();
        let validity = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(validity, 3600 + 60);
    }

    #[test]
    fn signed_requests_keep_their_subject_and_become_client_certificates() {
        let (_, authority) = generate_with([127, 0, 0, 1].into(), None).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["ignored.example".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "bob");
        params.distinguished_name.push(DnType::OrganizationName, "reviewers");
        let request = params.serialize_request(&key).unwrap().pem().unwrap();
        let cert_pem = authority.sign_request(&request, std::time::Duration::from_secs(600)).unwrap();
        let user = client_identity(&der(&cert_pem)).unwrap();
        assert_eq!(
            (user.username.as_str(), user.groups.as_slice()),
            ("bob", &["reviewers".to_string(), "system:authenticated".to_string()][..])
        );
        let cert_der = der(&cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
        assert!(cert.extended_key_usage().unwrap().unwrap().value.client_auth);
        assert!(cert.subject_alternative_name().unwrap().is_none(), "a client certificate names no hosts");
    }

    #[test]
    fn a_request_that_is_not_pkcs10_is_refused() {
        let (_, authority) = generate_with([127, 0, 0, 1].into(), None).unwrap();
        let bad = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert!(authority.sign_request(bad, std::time::Duration::from_secs(60)).is_err());
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "eve");
        let mut request = der(&params.serialize_request(&key).unwrap().pem().unwrap());
        let last = request.len() - 1;
        request[last] ^= 0xff;
        let forged = to_pem("CERTIFICATE REQUEST", &request);
        let err = authority.sign_request(&forged, std::time::Duration::from_secs(60)).unwrap_err();
        assert!(err.to_string().contains("signature does not verify"), "{err}");
        assert!(client_identity(b"not der").is_none());
    }

    #[test]
    fn generates_a_ca_and_serving_config() {
        let certs = generate([127, 0, 0, 1].into()).unwrap();
        assert!(certs.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!certs.ca_der.is_empty());
        assert_eq!(certs.server_config.alpn_protocols[0], b"h2");
    }
}
