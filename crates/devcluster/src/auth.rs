//! Bearer-token authentication: who a request comes from.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// The authenticated identity, as `authentication.k8s.io/v1` `UserInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct UserInfo {
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The cluster administrator that the generated kubeconfig authenticates as.
    pub fn admin() -> Self {
        Self {
            username: "kubernetes-admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            extra: BTreeMap::new(),
        }
    }
}

/// Known bearer tokens.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: Arc<RwLock<HashMap<String, UserInfo>>>,
}

/// A random token of 32 URL-safe characters.
pub fn generate_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..32).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

impl Authenticator {
    pub fn add(&self, token: &str, user: UserInfo) {
        if let Ok(mut map) = self.tokens.write() {
            map.insert(token.to_string(), user);
        }
    }

    pub fn remove(&self, token: &str) {
        if let Ok(mut map) = self.tokens.write() {
            map.remove(token);
        }
    }

    /// The user of an `Authorization` header value, if it carries a known bearer token.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<UserInfo> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.tokens.read().ok()?.get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bearer_tokens_authenticate() {
        let auth = Authenticator::default();
        let token = generate_token();
        assert_eq!(token.len(), 32);
        auth.add(&token, UserInfo::admin());
        assert_eq!(auth.authenticate(Some(&format!("Bearer {token}"))), Some(UserInfo::admin()));
        assert_eq!(auth.authenticate(Some("Bearer wrong")), None);
        assert_eq!(auth.authenticate(Some(&format!("Basic {token}"))), None);
        assert_eq!(auth.authenticate(None), None);
        auth.remove(&token);
        assert_eq!(auth.authenticate(Some(&format!("Bearer {token}"))), None);
    }
}
