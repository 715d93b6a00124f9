//! Authentication: who a request comes from, by bearer token or by client certificate.

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

/// Who the verified client certificate of a connection names; requests carry it as an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity(pub UserInfo);

/// Known bearer tokens.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: Arc<RwLock<HashMap<String, Credential>>>,
}

/// The pod a requested token is bound to: the token works while that pod exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// What one token authenticates as, until when, and while which pod exists.
#[derive(Debug, Clone)]
struct Credential {
    user: UserInfo,
    expires: Option<std::time::SystemTime>,
    bound: Option<BoundPod>,
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
        self.insert(token, Credential { user, expires: None, bound: None });
    }

    /// A token that stops working at `expires`, and when `bound`'s pod is gone.
    pub fn add_requested(&self, token: &str, user: UserInfo, expires: std::time::SystemTime, bound: Option<BoundPod>) {
        self.insert(token, Credential { user, expires: Some(expires), bound });
    }

    fn insert(&self, token: &str, credential: Credential) {
        if let Ok(mut map) = self.tokens.write() {
            map.insert(token.to_string(), credential);
        }
    }

    pub fn remove(&self, token: &str) {
        if let Ok(mut map) = self.tokens.write() {
            map.remove(token);
        }
    }

    /// The user of an `Authorization` header value, if it carries a known bearer token that has
    /// not expired and whose bound pod `pod_exists` says still exists.
    pub fn authenticate_with(
        &self,
        authorization: Option<&str>,
        pod_exists: impl Fn(&BoundPod) -> bool,
    ) -> Option<UserInfo> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let credential = self.tokens.read().ok()?.get(token).cloned()?;
        if credential.expires.is_some_and(|expires| std::time::SystemTime::now() >= expires) {
            return None;
        }
        if credential.bound.as_ref().is_some_and(|bound| !pod_exists(bound)) {
            return None;
        }
        Some(credential.user)
    }

    /// [`Authenticator::authenticate_with`] for tokens bound to nothing.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<UserInfo> {
        self.authenticate_with(authorization, |_| false)
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

    #[test]
    fn requested_tokens_expire_and_end_with_their_pod() {
        let auth = Authenticator::default();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(600);
        auth.add_requested("expired", UserInfo::admin(), past, None);
        assert_eq!(auth.authenticate(Some("Bearer expired")), None);
        auth.add_requested("fresh", UserInfo::admin(), future, None);
        assert_eq!(auth.authenticate(Some("Bearer fresh")), Some(UserInfo::admin()));
        let pod = BoundPod { namespace: "team".into(), name: "p".into(), uid: "u".into() };
        auth.add_requested("bound", UserInfo::admin(), future, Some(pod.clone()));
        assert_eq!(auth.authenticate_with(Some("Bearer bound"), |b| *b == pod), Some(UserInfo::admin()));
        assert_eq!(auth.authenticate_with(Some("Bearer bound"), |_| false), None);
    }
}
