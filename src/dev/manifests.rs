//! Installing the project's own API objects with server-side apply: the CRDs generated from the
//! types, and the reviewer RBAC and admission policy that ship in `deploy/`, so what the dev
//! cluster enforces is what a real cluster gets.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use serde::Deserialize;

/// The objects from `deploy/` that make sense on a dev cluster. The controller's namespace and
/// ServiceAccount come first: the admission policy's binding takes that ServiceAccount as its
/// param, and denies every submission without it.
pub const DEPLOY_OBJECTS: [(&str, &str); 4] = [
    ("deploy/namespace.yaml", include_str!("../../deploy/namespace.yaml")),
    ("deploy/controller-rbac.yaml", include_str!("../../deploy/controller-rbac.yaml")),
    ("deploy/reviewer-rbac.yaml", include_str!("../../deploy/reviewer-rbac.yaml")),
    ("deploy/admission-policy.yaml", include_str!("../../deploy/admission-policy.yaml")),
];

const FIELD_MANAGER: &str = "review-operator-dev";

/// Errors installing manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: not valid YAML: {source}")]
    Yaml { file: String, source: serde_yaml::Error },
    #[error("{file}: {kind} {name}: {message}")]
    Type { file: String, kind: String, name: String, message: String },
    #[error("{file}: document {index} has no apiVersion/kind/metadata.name")]
    Incomplete { file: String, index: usize },
    #[error("{file}: applying {kind} {name}: {source}")]
    Apply { file: String, kind: String, name: String, source: Box<kube::Error> },
}

/// Splits a multi-document YAML file into objects, skipping empty documents.
pub fn documents(file: &str, text: &str) -> Result<Vec<DynamicObject>, ManifestError> {
    let mut out = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(document)
            .map_err(|source| ManifestError::Yaml { file: file.to_string(), source })?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject =
            serde_yaml::from_value(value).map_err(|source| ManifestError::Yaml { file: file.to_string(), source })?;
        if object.types.is_none() || object.metadata.name.is_none() {
            return Err(ManifestError::Incomplete { file: file.to_string(), index });
        }
        out.push(object);
    }
    Ok(out)
}

/// Applies every object of `text` (server-side, forced: this tool owns these objects).
pub async fn apply(client: &kube::Client, file: &str, text: &str) -> Result<(), ManifestError> {
    for object in documents(file, text)? {
        let types = object.types.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let fail = |source: kube::Error| ManifestError::Apply {
            file: file.to_string(),
            kind: types.kind.clone(),
            name: name.clone(),
            source: Box::new(source),
        };
        let gvk = GroupVersionKind::try_from(&types).map_err(|e| ManifestError::Type {
            file: file.to_string(),
            kind: types.kind.clone(),
            name: name.clone(),
            message: e.to_string(),
        })?;
        let (resource, capabilities) = pinned_kind(client, &gvk).await.map_err(fail)?;
        let api: Api<DynamicObject> = match (&object.metadata.namespace, capabilities.scope) {
            (Some(ns), kube::discovery::Scope::Namespaced) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(&object)).await.map_err(fail)?;
    }
    Ok(())
}

/// Installs the CRDs, waits until they are served, then installs the `deploy/` objects.
pub async fn install(client: &kube::Client) -> anyhow::Result<()> {
    for (file, yaml) in crate::api::crd::documents()? {
        apply(client, &format!("crds/{file}"), &yaml).await?;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let gvk = GroupVersionKind::gvk("review.ao.dev", "v1alpha1", "ReviewRun");
    while pinned_kind(client, &gvk).await.is_err() {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the CRDs were not served within 30s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for (file, text) in DEPLOY_OBJECTS {
        apply(client, file, text).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_manifests_parse() {
        for (file, text) in DEPLOY_OBJECTS {
            let objects = documents(file, text).unwrap();
            assert!(!objects.is_empty(), "{file}");
        }
    }

    #[test]
    fn bad_documents_name_the_file() {
        let err = documents("x.yaml", "a: [").unwrap_err();
        assert!(err.to_string().starts_with("x.yaml: not valid YAML"), "{err}");
        let err = documents("y.yaml", "apiVersion: v1\nkind: ConfigMap\n").unwrap_err();
        assert_eq!(err.to_string(), "y.yaml: document 0 has no apiVersion/kind/metadata.name");
        assert!(documents("z.yaml", "---\n---\n").unwrap().is_empty());
    }
}
