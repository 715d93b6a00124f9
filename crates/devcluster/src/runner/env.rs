//! A container's environment from its `env` and `envFrom`, resolved as the kubelet does.

use crate::meta;
use base64::Engine;
use serde_json::Value;

/// Where secrets and config maps come from: `(kind, namespace, name)` → the object, if it exists.
pub trait RefSource {
    fn secret(&self, namespace: &str, name: &str) -> Option<Value>;
    fn config_map(&self, namespace: &str, name: &str) -> Option<Value>;
}

/// Why a container's configuration cannot be built; shown as a `CreateContainerConfigError` waiting message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The value of a downward-API `fieldRef` path, or an error naming an unsupported path.
pub fn field_value(pod: &Value, path: &str) -> Result<String, ConfigError> {
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .or_else(|| path.strip_prefix(&prefix.replace('\'', "\"")).and_then(|r| r.strip_suffix("\"]")))
    };
    if let Some(key) = quoted("metadata.labels['") {
        return Ok(pod
            .pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .into());
    }
    if let Some(key) = quoted("metadata.annotations['") {
        return Ok(pod
            .pointer("/metadata/annotations")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .into());
    }
    let pointer = match path {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "metadata.uid" => "/metadata/uid",
        "spec.nodeName" => "/spec/nodeName",
        "status.hostIP" => "/status/hostIP",
        "status.podIP" => "/status/podIP",
        "spec.serviceAccountName" => return Ok(service_account_name(pod).to_string()),
        "status.podIPs" => {
            let ips = pod.pointer("/status/podIPs").and_then(Value::as_array).cloned().unwrap_or_default();
            let ips: Vec<&str> = ips.iter().filter_map(|ip| ip.get("ip").and_then(Value::as_str)).collect();
            return Ok(ips.join(","));
        }
        other => return Err(ConfigError(format!("unsupported fieldPath: {other}"))),
    };
    Ok(meta::str_at(pod, pointer).to_string())
}

/// `spec.serviceAccountName`, defaulted to `default` as the ServiceAccount admission plugin does.
pub fn service_account_name(pod: &Value) -> &str {
    match meta::str_at(pod, "/spec/serviceAccountName") {
        "" => "default",
        name => name,
    }
}

/// The decoded value of one key of a secret (`data` is base64, `stringData` never stored) or config map.
fn key_of(object: &Value, key: &str, secret: bool) -> Option<String> {
    if secret {
        let encoded = object.pointer("/data").and_then(|d| d.get(key)).and_then(Value::as_str)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        return Some(String::from_utf8_lossy(&bytes).into_owned());
    }
    if let Some(v) = object.pointer("/data").and_then(|d| d.get(key)).and_then(Value::as_str) {
        return Some(v.to_string());
    }
    let encoded = object.pointer("/binaryData").and_then(|d| d.get(key)).and_then(Value::as_str)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// One `secretKeyRef` or `configMapKeyRef`; `Ok(None)` for a missing optional reference.
fn key_ref(
    reference: &Value,
    namespace: &str,
    secret: bool,
    source: &dyn RefSource,
) -> Result<Option<String>, ConfigError> {
    let name = meta::str_at(reference, "/name");
    let key = meta::str_at(reference, "/key");
    let optional = reference.get("optional").and_then(Value::as_bool).unwrap_or(false);
    let (object, kind, lower) = if secret {
        (source.secret(namespace, name), "Secret", "secret")
    } else {
        (source.config_map(namespace, name), "ConfigMap", "configmap")
    };
    let Some(object) = object else {
        return if optional { Ok(None) } else { Err(ConfigError(format!("{lower} \"{name}\" not found"))) };
    };
    match key_of(&object, key, secret) {
        Some(value) => Ok(Some(value)),
        None if optional => Ok(None),
        None => Err(ConfigError(format!("couldn't find key {key} in {kind} {namespace}/{name}"))),
    }
}

/// Every key of a secret or config map named by one `envFrom` entry, prefixed.
fn env_from(entry: &Value, namespace: &str, source: &dyn RefSource) -> Result<Vec<(String, String)>, ConfigError> {
    let prefix = meta::str_at(entry, "/prefix");
    let (reference, secret) = match (entry.get("secretRef"), entry.get("configMapRef")) {
        (Some(r), _) => (r, true),
        (None, Some(r)) => (r, false),
        (None, None) => return Ok(Vec::new()),
    };
    let name = meta::str_at(reference, "/name");
    let optional = reference.get("optional").and_then(Value::as_bool).unwrap_or(false);
    let object = if secret { source.secret(namespace, name) } else { source.config_map(namespace, name) };
    let Some(object) = object else {
        let lower = if secret { "secret" } else { "configmap" };
        return if optional { Ok(Vec::new()) } else { Err(ConfigError(format!("{lower} \"{name}\" not found"))) };
    };
    let mut keys: Vec<String> = ["/data", "/binaryData"]
        .iter()
        .filter_map(|p| object.pointer(p).and_then(Value::as_object))
        .flat_map(|m| m.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys.into_iter().filter_map(|k| key_of(&object, &k, secret).map(|v| (format!("{prefix}{k}"), v))).collect())
}

/// Expands `$(NAME)` references to earlier variables; `$$` escapes, unknown references stay as written.
pub fn expand(text: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[pos..pos + 2 + end + 1]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's variables in order: `envFrom` first, then `env` (later entries win, as in a container).
pub fn resolve(pod: &Value, container: &Value, source: &dyn RefSource) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = meta::str_at(pod, "/metadata/namespace");
    let mut vars: Vec<(String, String)> = Vec::new();
    for entry in container.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
        vars.extend(env_from(entry, namespace, source)?);
    }
    for entry in container.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = meta::str_at(entry, "/name").to_string();
        let value = match entry.get("valueFrom") {
            None => Some(expand(meta::str_at(entry, "/value"), &vars)),
            Some(from) => {
                if let Some(field) = from.get("fieldRef") {
                    Some(field_value(pod, meta::str_at(field, "/fieldPath"))?)
                } else if let Some(r) = from.get("secretKeyRef") {
                    key_ref(r, namespace, true, source)?
                } else if let Some(r) = from.get("configMapKeyRef") {
                    key_ref(r, namespace, false, source)?
                } else {
                    return Err(ConfigError(format!(
                        "env {name}: unsupported valueFrom (resourceFieldRef or fileKeyRef)"
                    )));
                }
            }
        };
        if let Some(value) = value {
            vars.retain(|(k, _)| *k != name);
            vars.push((name, value));
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Objects(Vec<(&'static str, Value)>);

    impl RefSource for Objects {
        fn secret(&self, ns: &str, name: &str) -> Option<Value> {
            self.find("Secret", ns, name)
        }
        fn config_map(&self, ns: &str, name: &str) -> Option<Value> {
            self.find("ConfigMap", ns, name)
        }
    }

    impl Objects {
        fn find(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
            self.0
                .iter()
                .find(|(k, o)| *k == kind && o["metadata"]["namespace"] == ns && o["metadata"]["name"] == name)
                .map(|(_, o)| o.clone())
        }
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"serviceAccountName": "robot"},
            "status": {"podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}
        })
    }

    fn sources() -> Objects {
        Objects(vec![
            ("Secret", json!({"metadata": {"name": "s", "namespace": "ns"}, "data": {"token": "c2VjcmV0"}})),
            ("ConfigMap", json!({"metadata": {"name": "c", "namespace": "ns"}, "data": {"mode": "fast", "x": "1"}})),
        ])
    }

    #[test]
    fn literals_field_refs_and_key_refs_resolve() {
        let container = json!({"env": [
            {"name": "A", "value": "lit"},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "mode"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k", "optional": true}}},
            {"name": "B", "value": "$(A)-$(NAME)-$$(A)-$(NOPE)"}
        ]});
        let vars = resolve(&pod(), &container, &sources()).unwrap();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("lit"));
        assert_eq!(get("NAME"), Some("p"));
        assert_eq!(get("NS"), Some("ns"));
        assert_eq!(get("UID"), Some("u-1"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("SA"), Some("robot"));
        assert_eq!(get("IP"), Some("127.0.0.1"));
        assert_eq!(get("TOKEN"), Some("secret"));
        assert_eq!(get("MODE"), Some("fast"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("B"), Some("lit-p-$(A)-$(NOPE)"));
    }

    #[test]
    fn env_from_prefixes_every_key() {
        let container = json!({"envFrom": [{"configMapRef": {"name": "c"}, "prefix": "CM_"}], "env": [{"name": "CM_x", "value": "2"}]});
        let vars = resolve(&pod(), &container, &sources()).unwrap();
        assert_eq!(vars, vec![("CM_mode".to_string(), "fast".to_string()), ("CM_x".to_string(), "2".to_string())]);
    }

    #[test]
    fn missing_references_are_config_errors() {
        let missing = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]});
        assert_eq!(resolve(&pod(), &missing, &sources()).unwrap_err().0, "secret \"nope\" not found");
        let key = json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]});
        assert_eq!(resolve(&pod(), &key, &sources()).unwrap_err().0, "couldn't find key k in ConfigMap ns/c");
        let field = json!({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]});
        assert_eq!(resolve(&pod(), &field, &sources()).unwrap_err().0, "unsupported fieldPath: spec.bogus");
        let from = json!({"envFrom": [{"secretRef": {"name": "gone"}}]});
        assert_eq!(resolve(&pod(), &from, &sources()).unwrap_err().0, "secret \"gone\" not found");
    }

    #[test]
    fn service_account_defaults_to_default() {
        assert_eq!(service_account_name(&json!({"spec": {}})), "default");
        assert_eq!(field_value(&json!({"spec": {}}), "spec.serviceAccountName").unwrap(), "default");
    }
}
