//! What the node knows about container images without pulling them.
//!
//! The dev kubelet never pulls an image: containers run as local processes. Two kubelet checks
//! still depend on the image, so the runner answers them from here:
//!
//! - **The image's user**, for `runAsNonRoot`. An [`ImageCatalog`] maps image repositories to the
//!   `USER` of their image config. Images the catalog does not know have an unknown user and are
//!   allowed to run: refusing every unlisted image would make `runAsNonRoot: true` unusable in
//!   development, and guessing root for them would be wrong for most purpose-built images.
//! - **Whether it can be pulled at all.** A registry host in the RFC 2606 `.invalid` domain can
//!   never resolve, so such an image fails to pull as it would on any node ([`unpullable_host`]).
//!   Every other image counts as present.

use std::collections::HashMap;

/// The registry an image without one comes from, as container runtimes normalize names.
const DEFAULT_REGISTRY: &str = "docker.io";

/// Stock images whose image config sets no `USER`, so that they run as root.
const STOCK_ROOT_IMAGES: &[&str] = &["alpine", "busybox", "debian", "ubuntu", "python", "node", "golang"];

/// The user each known image runs as, by repository (tags and digests are ignored).
///
/// The user is the image config's `USER` as written there: empty, a uid, a name, or either with
/// `:group`. [`ImageCatalog::default`] knows a few stock images that run as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCatalog {
    users: HashMap<String, String>,
}

impl Default for ImageCatalog {
    fn default() -> Self {
        Self::empty().with_all(STOCK_ROOT_IMAGES, "")
    }
}

impl ImageCatalog {
    /// A catalog that knows no image.
    pub fn empty() -> Self {
        Self { users: HashMap::new() }
    }

    /// Records that `image` (any tag or digest of its repository) runs as `user`.
    pub fn insert(&mut self, image: &str, user: &str) {
        self.users.insert(repository(image), user.to_string());
    }

    /// The catalog with `image` recorded as running as `user`.
    pub fn with(mut self, image: &str, user: &str) -> Self {
        self.insert(image, user);
        self
    }

    fn with_all(mut self, images: &[&str], user: &str) -> Self {
        for image in images {
            self.insert(image, user);
        }
        self
    }

    /// The user `image` runs as, or `None` when the catalog does not know its repository.
    pub fn user(&self, image: &str) -> Option<&str> {
        self.users.get(&repository(image)).map(String::as_str)
    }
}

/// How the container runtime reports an image's user to the kubelet: a numeric uid, or a name.
/// Only the part before `:` counts; an empty user is reported as neither (the kubelet then
/// assumes root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    Uid(i64),
    Name(String),
    Unset,
}

impl ImageUser {
    /// Parses an image config `USER` as containerd's CRI does (`getUserFromImage`).
    pub fn parse(user: &str) -> Self {
        let user = user.split(':').next().unwrap_or_default();
        if user.is_empty() {
            return Self::Unset;
        }
        match user.parse::<i64>() {
            Ok(uid) => Self::Uid(uid),
            Err(_) => Self::Name(user.to_string()),
        }
    }
}

/// The registry host and the path of an image name, without tag or digest.
fn split(image: &str) -> (&str, &str) {
    let name = image.split('@').next().unwrap_or_default();
    let name = match name.rfind(':') {
        // A colon after the last slash starts a tag; one before it belongs to a registry port.
        Some(colon) if !name[colon..].contains('/') => &name[..colon],
        _ => name,
    };
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => ("", name),
    }
}

/// The normalized repository of an image: `alpine`, `alpine:3.20`, `docker.io/library/alpine:3.20`
/// and `alpine@sha256:...` are all `docker.io/library/alpine`.
pub fn repository(image: &str) -> String {
    let (host, path) = split(image.trim());
    let host = match host {
        "" | "index.docker.io" => DEFAULT_REGISTRY,
        other => other,
    };
    if host == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{host}/library/{path}")
    } else {
        format!("{host}/{path}")
    }
}

/// The registry host of `image` when it lies in the reserved `.invalid` domain (RFC 2606), which
/// never resolves: such an image cannot be pulled.
pub fn unpullable_host(image: &str) -> Option<&str> {
    let (host, _) = split(image.trim());
    let without_port = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let lower = without_port.to_ascii_lowercase();
    (lower == "invalid" || lower.ends_with(".invalid")).then_some(without_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_ignore_tags_digests_and_default_registry() {
        let digest = "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for name in ["alpine", "alpine:3.20", "docker.io/library/alpine:3.20", digest, "index.docker.io/library/alpine"]
        {
            assert_eq!(repository(name), "docker.io/library/alpine", "{name}");
        }
        assert_eq!(repository("bitnami/kubectl:1.30"), "docker.io/bitnami/kubectl");
        assert_eq!(repository("ghcr.io/acme/agent:v1@sha256:abc"), "ghcr.io/acme/agent");
        assert_eq!(repository("localhost:5000/tool:dev"), "localhost:5000/tool");
        assert_eq!(repository("localhost/tool"), "localhost/tool");
        assert_eq!(repository("registry.example.com:5000/team/app"), "registry.example.com:5000/team/app");
        assert_ne!(repository("alpinex"), repository("alpine"));
    }

    #[test]
    fn the_catalog_matches_by_repository() {
        let catalog = ImageCatalog::default().with("gcr.io/distroless/static", "nonroot:nonroot");
        assert_eq!(catalog.user("busybox:1.36"), Some(""));
        assert_eq!(catalog.user("docker.io/library/golang:1.23@sha256:abc"), Some(""));
        assert_eq!(catalog.user("gcr.io/distroless/static:nonroot"), Some("nonroot:nonroot"));
        assert_eq!(catalog.user("gcr.io/distroless/base"), None);
        assert_eq!(catalog.user("acme/unknown"), None);
        let mut empty = ImageCatalog::empty();
        assert_eq!(empty.user("alpine"), None);
        empty.insert("alpine:3.20", "1000");
        assert_eq!(empty.user("alpine"), Some("1000"));
    }

    #[test]
    fn image_users_parse_like_the_runtime_reports_them() {
        assert_eq!(ImageUser::parse(""), ImageUser::Unset);
        assert_eq!(ImageUser::parse("0"), ImageUser::Uid(0));
        assert_eq!(ImageUser::parse("0:0"), ImageUser::Uid(0));
        assert_eq!(ImageUser::parse("65532:65532"), ImageUser::Uid(65532));
        assert_eq!(ImageUser::parse("nonroot:nonroot"), ImageUser::Name("nonroot".into()));
        assert_eq!(ImageUser::parse("root"), ImageUser::Name("root".into()));
    }

    #[test]
    fn only_invalid_registries_are_unpullable() {
        assert_eq!(unpullable_host("registry.invalid/acme/agent:1"), Some("registry.invalid"));
        assert_eq!(unpullable_host("registry.invalid:5000/acme/agent"), Some("registry.invalid"));
        assert_eq!(unpullable_host("Mirror.INVALID/x@sha256:abc"), Some("Mirror.INVALID"));
        assert_eq!(unpullable_host("registry.example.com/acme/agent:1"), None);
        assert_eq!(unpullable_host("invalid/agent"), None, "a Docker Hub user named invalid");
        assert_eq!(unpullable_host("busybox"), None);
    }
}
