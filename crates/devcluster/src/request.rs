//! Parsing of resource URLs and their query parameters.

use crate::error::ApiError;

/// A parsed resource URL: `/api/v1/...` or `/apis/GROUP/VERSION/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// What a URL addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath {
    /// `/api` or `/apis`.
    Root {
        core: bool,
    },
    /// `/api/v1` or `/apis/GROUP/VERSION` (or `/apis/GROUP`, `version` empty).
    GroupVersion {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
}

/// Subresources of namespaces themselves, which must not be read as namespaced resource names.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Parses a request path; `None` when it is not an API path.
pub fn parse_path(path: &str) -> Option<ApiPath> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Some(ApiPath::Root { core: true }),
        ["apis"] => return Some(ApiPath::Root { core: false }),
        ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
        ["apis", group] => return Some(ApiPath::GroupVersion { group: group.to_string(), version: String::new() }),
        ["apis", group, version, rest @ ..] => (group.to_string(), version.to_string(), rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(ApiPath::GroupVersion { group, version });
    }
    // The legacy `/watch/` prefix is answered like `?watch=true` by the caller; strip it here.
    let rest: Vec<&str> = if rest.first() == Some(&"watch") { rest[1..].to_vec() } else { rest.to_vec() };
    let (namespace, rest) = match rest.as_slice() {
        ["namespaces", ns, resource, tail @ ..] if !NAMESPACE_SUBRESOURCES.contains(resource) || !group.is_empty() => {
            (Some(ns.to_string()), [&[*resource][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let (resource, name, subresource) = match rest.as_slice() {
        [resource] => (resource.to_string(), None, None),
        [resource, name] => (resource.to_string(), Some(name.to_string()), None),
        [resource, name, sub] => (resource.to_string(), Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(ApiPath::Resource(ResourcePath { group, version, namespace, resource, name, subresource }))
}

/// Whether the path used the legacy `/watch/` prefix.
pub fn is_legacy_watch(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["api", _, "watch", ..] | ["apis", _, _, "watch", ..])
}

/// Query parameters, decoded.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Every pair in order: a parameter given more than once (`command` of an exec) has them all,
    /// and elsewhere the last one counts.
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs: Vec<(String, String)> = raw
            .map(|q| {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        (percent_decode(k), percent_decode(v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { pairs }
    }

    /// The last value given for `key`, empty or not.
    fn last(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter given more than once, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.last(key).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.last(key), Some("true" | "1" | ""))
    }

    /// A non-negative integer parameter; anything else is a 400 naming it.
    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not a non-negative integer"))
            }),
        }
    }

    /// A resourceVersion parameter: absent, or a decimal number.
    pub fn resource_version(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid {key}: {v:?}: resource versions are opaque decimal strings"))
            }),
        }
    }

    /// `dryRun=All`; any other value is a 400 as on the real server.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun parameter: dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match parse_path(path) {
            Some(ApiPath::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_core_and_group_paths() {
        let r = resource("/api/v1/namespaces/default/pods/p1/status");
        assert_eq!((r.group.as_str(), r.version.as_str()), ("", "v1"));
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.subresource.as_deref()),
            ("pods", Some("p1"), Some("status"))
        );
        let r = resource("/apis/review.ao.dev/v1alpha1/namespaces/ns/reviewruns");
        assert_eq!((r.group.as_str(), r.resource.as_str(), r.name), ("review.ao.dev", "reviewruns", None));
        let r = resource("/apis/review.ao.dev/v1alpha1/reviewruns");
        assert_eq!(r.namespace, None);
    }

    #[test]
    fn namespaces_themselves_are_cluster_scoped() {
        let r = resource("/api/v1/namespaces/demo");
        assert_eq!((r.resource.as_str(), r.name.as_deref(), r.namespace), ("namespaces", Some("demo"), None));
        let r = resource("/api/v1/namespaces/demo/status");
        assert_eq!((r.name.as_deref(), r.subresource.as_deref()), (Some("demo"), Some("status")));
        let r = resource("/api/v1/namespaces");
        assert_eq!((r.resource.as_str(), r.name), ("namespaces", None));
    }

    #[test]
    fn roots_and_group_versions() {
        assert_eq!(parse_path("/api"), Some(ApiPath::Root { core: true }));
        assert_eq!(parse_path("/apis/"), Some(ApiPath::Root { core: false }));
        assert_eq!(
            parse_path("/apis/apps/v1"),
            Some(ApiPath::GroupVersion { group: "apps".into(), version: "v1".into() })
        );
        assert_eq!(parse_path("/healthz"), None);
        assert_eq!(parse_path("/api/v1/pods/a/b/c/d"), None);
    }

    #[test]
    fn legacy_watch_prefix() {
        assert!(is_legacy_watch("/api/v1/watch/namespaces/default/pods"));
        let r = resource("/api/v1/watch/namespaces/default/pods");
        assert_eq!((r.resource.as_str(), r.namespace.as_deref()), ("pods", Some("default")));
    }

    #[test]
    fn query_decoding_and_errors() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1&limit=5&x=abc"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert!(!q.flag("missing"));
        assert_eq!(q.number("limit").unwrap(), Some(5));
        assert_eq!(q.number("x").unwrap_err().code, 400);
        assert_eq!(q.resource_version("x").unwrap_err().code, 400);
        assert!(!q.dry_run().unwrap());
        assert!(Query::parse(Some("dryRun=All")).dry_run().unwrap());
        assert_eq!(Query::parse(Some("dryRun=Some")).dry_run().unwrap_err().code, 400);
    }

    #[test]
    fn malformed_percent_escapes_are_kept_literally() {
        assert_eq!(percent_decode("a%zzb%"), "a%zzb%");
        assert_eq!(percent_decode("%41"), "A");
    }
}
