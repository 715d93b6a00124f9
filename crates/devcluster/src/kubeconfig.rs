//! The kubeconfig that points `kubectl` and `kube::Client` at a dev cluster.

use std::path::Path;

/// A kubeconfig with one cluster, user and context, all named `devcluster`, trusting `ca_pem`.
pub fn render(server_url: &str, ca_pem: &str, token: &str, namespace: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: devcluster\n  cluster:\n    server: {server_url}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: devcluster-admin\n  user:\n    token: {token}\ncontexts:\n- name: devcluster\n  context:\n    \
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
    fn write_creates_parent_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/kubeconfig");
        write(&path, "x").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x");
    }
}
