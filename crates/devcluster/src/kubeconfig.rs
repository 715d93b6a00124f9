//! The kubeconfig that points `kubectl` and `kube::Client` at a dev cluster.

use std::path::Path;

/// How a kubeconfig's user authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Token(&'a str),
    /// A client certificate and its key, in PEM.
    Certificate {
        cert_pem: &'a str,
        key_pem: &'a str,
    },
}

/// A kubeconfig with one cluster, user and context, all named `devcluster`, trusting `ca_pem`.
pub fn render(server_url: &str, ca_pem: &str, token: &str, namespace: &str) -> String {
    render_with(server_url, ca_pem, Credential::Token(token), namespace)
}

/// As [`render`], with any credential.
pub fn render_with(server_url: &str, ca_pem: &str, credential: Credential<'_>, namespace: &str) -> String {
    use base64::Engine;
    let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let ca = encode(ca_pem);
    let user = match credential {
        Credential::Token(token) => format!("    token: {token}\n"),
        Credential::Certificate { cert_pem, key_pem } => {
            format!("    client-certificate-data: {}\n    client-key-data: {}\n", encode(cert_pem), encode(key_pem))
        }
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: devcluster\n  cluster:\n    server: {server_url}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: devcluster-admin\n  user:\n{user}contexts:\n- name: devcluster\n  context:\n    \
         cluster: devcluster\n    user: devcluster-admin\n    namespace: {namespace}\ncurrent-context: devcluster\n"
    )
}

/// Writes the kubeconfig readable by the owner only (it holds an admin token).
pub fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_parseable_kubeconfig() {
        let text = render("https://127.0.0.1:1234", "PEM", "tok", "default");
        let parsed: kube::config::Kubeconfig = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some("devcluster"));
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:1234"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("UEVN"));
    }

    #[test]
    fn a_certificate_credential_renders_client_certificate_data() {
        let text = render_with("https://h", "PEM", Credential::Certificate { cert_pem: "C", key_pem: "K" }, "ns");
        let parsed: kube::config::Kubeconfig = serde_yaml::from_str(&text).unwrap();
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.client_certificate_data.as_deref(), Some("Qw=="));
        assert!(user.token.is_none());
        let token = render("https://h", "PEM", "tok", "ns");
        let parsed: kube::config::Kubeconfig = serde_yaml::from_str(&token).unwrap();
        assert!(parsed.auth_infos[0].auth_info.as_ref().unwrap().client_certificate_data.is_none());
    }

    #[test]
    fn write_creates_parent_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/kubeconfig");
        write(&path, "x").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x");
    }
}
