//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw body with the webhook
//! secret, as `sha256=<hex>`. During a rotation two secrets are valid.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a delivery's signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 must be sha256= followed by 64 hexadecimal characters")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body signed with the webhook secret")]
    Mismatch,
}

/// Why the secrets could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the webhook secret file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the webhook secret file {path} holds no secret (one secret per non-empty line)")]
    Empty { path: String },
}

/// The secrets a signature may be made with.
#[derive(Clone)]
pub struct WebhookSecrets(Vec<Vec<u8>>);

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} secrets)", self.0.len())
    }
}

impl WebhookSecrets {
    pub fn new(secrets: Vec<Vec<u8>>) -> Self {
        Self(secrets)
    }

    /// Reads every file; each non-empty line is a secret (surrounding white
    /// space removed), so a rotation is a second line or a second file.
    pub fn read(paths: &[impl AsRef<Path>]) -> Result<Self, SecretError> {
        let mut secrets = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let name = path.display().to_string();
            let text =
                std::fs::read_to_string(path).map_err(|source| SecretError::Read { path: name.clone(), source })?;
            let before = secrets.len();
            secrets.extend(
                text.lines().map(str::trim).filter(|line| !line.is_empty()).map(|line| line.as_bytes().to_vec()),
            );
            if secrets.len() == before {
                return Err(SecretError::Empty { path: name });
            }
        }
        Ok(Self(secrets))
    }

    /// Checks `header` against `body`, in constant time per secret.
    pub fn verify(&self, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let hex = header.strip_prefix("sha256=").ok_or(SignatureError::Malformed)?;
        let signature = hex::decode(hex).map_err(|_| SignatureError::Malformed)?;
        if signature.len() != 32 {
            return Err(SignatureError::Malformed);
        }
        let matches = |secret: &Vec<u8>| {
            Hmac::<Sha256>::new_from_slice(secret)
                .map(|mut mac| {
                    mac.update(body);
                    mac.verify_slice(&signature).is_ok()
                })
                .unwrap_or(false)
        };
        if self.0.iter().any(matches) { Ok(()) } else { Err(SignatureError::Mismatch) }
    }
}

/// The `X-Hub-Signature-256` value of `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_githubs_documented_example() {
        // GitHub's docs: secret "It's a Secret to Everybody", payload "Hello, World!".
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(b"It's a Secret to Everybody", b"Hello, World!"), expected);
        let secrets = WebhookSecrets::new(vec![b"It's a Secret to Everybody".to_vec()]);
        assert_eq!(secrets.verify(b"Hello, World!", Some(expected)), Ok(()));
    }

    #[test]
    fn wrong_missing_and_malformed_signatures_are_refused() {
        let secrets = WebhookSecrets::new(vec![b"s3cret".to_vec()]);
        let body = br#"{"action":"opened"}"#;
        assert_eq!(secrets.verify(body, None), Err(SignatureError::Missing));
        assert_eq!(secrets.verify(body, Some(&sign(b"other", body))), Err(SignatureError::Mismatch));
        assert_eq!(secrets.verify(b"tampered", Some(&sign(b"s3cret", body))), Err(SignatureError::Mismatch));
        assert_eq!(secrets.verify(body, Some("sha1=abc")), Err(SignatureError::Malformed));
        assert_eq!(secrets.verify(body, Some("sha256=zz")), Err(SignatureError::Malformed));
        assert_eq!(secrets.verify(body, Some("sha256=abcd")), Err(SignatureError::Malformed));
    }

    #[test]
    fn either_secret_of_a_rotation_is_accepted() {
        let dir = std::env::temp_dir().join(format!("webhook-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let two_lines = dir.join("two-lines");
        std::fs::write(&two_lines, "old-secret\n  new-secret  \n\n").unwrap();
        let secrets = WebhookSecrets::read(&[&two_lines]).unwrap();
        for secret in [&b"old-secret"[..], b"new-secret"] {
            assert_eq!(secrets.verify(b"{}", Some(&sign(secret, b"{}"))), Ok(()));
        }
        let second_file = dir.join("second");
        std::fs::write(&second_file, "third-secret").unwrap();
        let secrets = WebhookSecrets::read(&[&two_lines, &second_file]).unwrap();
        assert_eq!(secrets.verify(b"{}", Some(&sign(b"third-secret", b"{}"))), Ok(()));
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n \n").unwrap();
        assert!(matches!(WebhookSecrets::read(&[&empty]), Err(SecretError::Empty { .. })));
        assert!(matches!(WebhookSecrets::read(&[dir.join("missing")]), Err(SecretError::Read { .. })));
    }
}
