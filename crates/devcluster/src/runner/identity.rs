//! Pod-bound identities: the service-account user a pod's token authenticates as, and the files a
//! projected service-account volume would hold.

use crate::auth::UserInfo;
use crate::meta;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The node every pod is bound to.
pub const NODE_NAME: &str = "devcluster";

/// The user a pod's projected token authenticates as: the service account, its groups, and the
/// `extra` keys a real projected token carries. `sa_uid` is the ServiceAccount object's uid, if it exists.
pub fn pod_user(pod: &Value, service_account: &str, sa_uid: Option<&str>) -> UserInfo {
    let namespace = meta::str_at(pod, "/metadata/namespace");
    let extra = BTreeMap::from([
        ("authentication.kubernetes.io/node-name".to_string(), vec![NODE_NAME.to_string()]),
        ("authentication.kubernetes.io/pod-name".to_string(), vec![meta::str_at(pod, "/metadata/name").to_string()]),
        ("authentication.kubernetes.io/pod-uid".to_string(), vec![meta::str_at(pod, "/metadata/uid").to_string()]),
    ]);
    UserInfo { extra, ..service_account_user(namespace, service_account, sa_uid) }
}

/// The user any token of service account `namespace/name` authenticates as, before pod extras.
pub fn service_account_user(namespace: &str, name: &str, sa_uid: Option<&str>) -> UserInfo {
    UserInfo {
        username: format!("system:serviceaccount:{namespace}:{name}"),
        uid: sa_uid.unwrap_or_default().to_string(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
        extra: BTreeMap::new(),
    }
}

/// Writes `token`, `ca.crt` and `namespace` into `dir`, as the projected volume at
/// `/var/run/secrets/kubernetes.io/serviceaccount` holds them.
pub fn write_projected_files(dir: &Path, token: &str, ca_pem: &str, namespace: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, contents) in [("token", token), ("ca.crt", ca_pem), ("namespace", namespace)] {
        crate::kubeconfig::write(&dir.join(name), contents)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_users_carry_the_service_account_and_pod_extras() {
        let pod = json!({"metadata": {"name": "p", "namespace": "team", "uid": "pod-uid"}});
        let user = pod_user(&pod, "robot", Some("sa-uid"));
        assert_eq!(user.username, "system:serviceaccount:team:robot");
        assert_eq!(user.uid, "sa-uid");
        assert_eq!(user.groups, ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]);
        assert_eq!(user.extra["authentication.kubernetes.io/pod-name"], ["p"]);
        assert_eq!(user.extra["authentication.kubernetes.io/pod-uid"], ["pod-uid"]);
        assert_eq!(user.extra["authentication.kubernetes.io/node-name"], ["devcluster"]);
        assert_eq!(pod_user(&pod, "robot", None).uid, "");
    }

    #[test]
    fn projected_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        write_projected_files(dir.path(), "tok", "PEM", "team").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("token")).unwrap(), "tok");
        assert_eq!(std::fs::read_to_string(dir.path().join("ca.crt")).unwrap(), "PEM");
        assert_eq!(std::fs::read_to_string(dir.path().join("namespace")).unwrap(), "team");
    }
}
