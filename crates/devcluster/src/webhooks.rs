//! Admission webhooks, as `k8s.io/apiserver/pkg/admission/plugin/webhook` calls them: on every
//! write, the webhooks of the `MutatingWebhookConfiguration`s (configurations by name, webhooks as
//! listed) that match the request are called one after another and their `JSONPatch` answers
//! applied, then those of the `ValidatingWebhookConfiguration`s are called all at once.
//!
//! A webhook matches by its `rules`, `namespaceSelector`, `objectSelector` and `matchConditions`
//! (CEL, evaluated as for admission policies). It is sent an `admission.k8s.io` `AdmissionReview`
//! over HTTPS, verified against its `caBundle`, within its `timeoutSeconds`, at its URL or at a
//! running pod of its Service. A call that fails
//! follows the webhook's `failurePolicy`; a denial refuses the request with the webhook's message
//! and code. Mutating webhooks with `reinvocationPolicy: IfNeeded` are called once more when a
//! later webhook changed the object. Under `matchPolicy: Equivalent` a rule naming another served
//! version of the resource (a CRD's) matches too: the webhook is sent the objects in that version
//! and its patch is read back from it. Webhook configurations and the rest of
//! `admissionregistration.k8s.io` are never sent to webhooks, as on the real server.

pub(crate) mod call;
pub(crate) mod configuration;
mod review;

pub(crate) use review::options;

use crate::admission::{self, AdmissionRequest};
use crate::error::{ApiError, qualified_resource};
use crate::meta;
use crate::registry::{Registry, ResourceInfo};
use crate::server::ApiServer;
use crate::store::{ObjectKey, Store};
use base64::Engine;
use call::Endpoint;
use review::{Verdict, review, verdict};
use serde_json::{Value, json};
use std::time::Duration;

const GROUP: &str = "admissionregistration.k8s.io";
const MUTATING: &str = "mutatingwebhookconfigurations";
const VALIDATING: &str = "validatingwebhookconfigurations";

/// One webhook of one configuration.
#[derive(Debug, Clone)]
struct Hook {
    webhook: Value,
    mutating: bool,
    /// How its rules matched a request through another version, if they did.
    equivalent: Option<Equivalent>,
}

/// A match under `matchPolicy: Equivalent` through another served version of the requested
/// resource: the webhook is sent the objects in that version, and its patch is read back from it.
#[derive(Debug, Clone)]
struct Equivalent {
    matched: ResourceInfo,
    requested: ResourceInfo,
}

impl Hook {
    /// How the rules match the request: as requested (`Some(None)`), through an equivalent
    /// version (`Some(Some(..))`), or not at all. A subresource with a kind of its own has no
    /// equivalent.
    fn match_rules(&self, registry: &Registry, request: &AdmissionRequest<'_>) -> Option<Option<Equivalent>> {
        let rules = self.webhook.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
        if rules.iter().any(|rule| admission::rule_matches(rule, request)) {
            return Some(None);
        }
        if meta::str_at(&self.webhook, "/matchPolicy") == "Exact" || request.body_kind.is_some() {
            return None;
        }
        let requested = registry.get(request.group, request.version, request.resource)?;
        for rule in &rules {
            let versions = rule.get("apiVersions").and_then(Value::as_array).into_iter().flatten();
            for version in versions.filter_map(Value::as_str).filter(|v| *v != request.version) {
                let Some(matched) = registry.get(request.group, version, request.resource) else { continue };
                if admission::rule_matches(rule, &AdmissionRequest { version, ..*request }) {
                    return Some(Some(Equivalent { matched, requested }));
                }
            }
        }
        None
    }

    /// The request's objects in the version the webhook matched through, when not the requested one.
    fn converted(&self, request: &AdmissionRequest<'_>) -> (Option<Value>, Option<Value>) {
        match &self.equivalent {
            None => (None, None),
            Some(equivalent) => (
                request.object.map(|o| ApiServer::present(&equivalent.matched, o)),
                request.old_object.map(|o| ApiServer::present(&equivalent.matched, o)),
            ),
        }
    }

    /// The request as the webhook sees it, with the objects [`Hook::converted`] gave.
    fn sees<'a>(
        &'a self,
        request: &AdmissionRequest<'a>,
        converted: &'a (Option<Value>, Option<Value>),
    ) -> AdmissionRequest<'a> {
        match &self.equivalent {
            None => *request,
            Some(equivalent) => AdmissionRequest {
                version: &equivalent.matched.version,
                object: converted.0.as_ref(),
                old_object: converted.1.as_ref(),
                ..*request
            },
        }
    }

    fn name(&self) -> &str {
        meta::str_at(&self.webhook, "/name")
    }

    fn fails_closed(&self) -> bool {
        meta::str_at(&self.webhook, "/failurePolicy") != "Ignore"
    }

    fn reinvoked_if_needed(&self) -> bool {
        meta::str_at(&self.webhook, "/reinvocationPolicy") == "IfNeeded"
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.webhook.get("timeoutSeconds").and_then(Value::as_u64).unwrap_or(10).clamp(1, 30))
    }

    /// The AdmissionReview version to send: the first of the webhook's that the server speaks.
    fn review_version(&self) -> &'static str {
        let versions = self.webhook.get("admissionReviewVersions").and_then(Value::as_array);
        versions
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|v| configuration::REVIEW_VERSIONS.iter().find(|known| **known == v).copied())
            .unwrap_or("v1")
    }

    /// Whether a dry-run request may call it: only webhooks without side effects.
    fn dry_run_safe(&self) -> bool {
        matches!(meta::str_at(&self.webhook, "/sideEffects"), "None" | "NoneOnDryRun")
    }

    /// Where to call: `clientConfig.url`, or `https://name.namespace.svc:port/path` for a Service,
    /// connected to one of the pods it selects, as kube-apiserver's service resolver does.
    fn endpoint(&self, store: &Store) -> Result<Endpoint, String> {
        let config = self.webhook.get("clientConfig").cloned().unwrap_or(Value::Null);
        let ca_bundle = match meta::str_at(&config, "/caBundle") {
            "" => None,
            encoded => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| format!("invalid caBundle: {e}"))?,
            ),
        };
        let Some(service) = config.get("service").filter(|s| !s.is_null()) else {
            return Endpoint::from_url(meta::str_at(&config, "/url"), ca_bundle, self.timeout());
        };
        let name = meta::str_at(service, "/name");
        let namespace = meta::str_at(service, "/namespace");
        let port = service.get("port").and_then(Value::as_u64).unwrap_or(443);
        let url = format!("https://{name}.{namespace}.svc:{port}{}", meta::str_at(service, "/path"));
        let mut endpoint = Endpoint::from_url(&url, ca_bundle, self.timeout())?;
        let (host, target_port) = service_backend(store, namespace, name, port)
            .map_err(|error| format!("Post {:?}: {error}", endpoint.url))?;
        endpoint.host = host;
        endpoint.port = target_port;
        Ok(endpoint)
    }

    /// `failed calling webhook "NAME": REASON`, refusing the request when the webhook fails closed.
    fn failed(&self, reason: &str) -> Result<(), ApiError> {
        let message = format!("failed calling webhook \"{}\": {reason}", self.name());
        if self.fails_closed() {
            tracing::warn!(webhook = self.name(), %message, "webhook call failed; request refused");
            Err(ApiError::internal(message))
        } else {
            tracing::warn!(webhook = self.name(), %message, "webhook call failed; ignored");
            Ok(())
        }
    }
}

/// Where a Service sends a connection to its `port`: the address and target port of a running
/// pod it selects (pods are local processes, so their address is the host's), or the external
/// name of an `ExternalName` Service. Worded as kube-apiserver's service resolver when there is
/// none.
fn service_backend(store: &Store, namespace: &str, name: &str, port: u64) -> Result<(String, u16), String> {
    let service = store
        .get(&ObjectKey::new("", "services", namespace, name))
        .ok_or_else(|| format!("service \"{name}\" not found"))?;
    if meta::str_at(&service, "/spec/type") == "ExternalName" {
        let port = u16::try_from(port).map_err(|_| format!("invalid port {port}"))?;
        return Ok((meta::str_at(&service, "/spec/externalName").to_string(), port));
    }
    let ports = service.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let service_port = ports
        .iter()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(port))
        .ok_or_else(|| format!("no service port {port} found for service \"{name}\""))?;
    let no_endpoints = || format!("no endpoints available for service \"{name}\"");
    let selector = service.pointer("/spec/selector").filter(|s| s.as_object().is_some_and(|m| !m.is_empty()));
    let selector = json!({"matchLabels": selector.ok_or_else(no_endpoints)?});
    let target = service_port.get("targetPort").cloned().unwrap_or_else(|| json!(port));
    store
        .list("", "pods", Some(namespace))
        .objects
        .iter()
        .filter(|pod| {
            meta::str_at(pod, "/status/phase") == "Running"
                && pod.pointer("/metadata/deletionTimestamp").is_none()
                && admission::selector_matches(&selector, pod)
        })
        .find_map(|pod| {
            let address = meta::str_at(pod, "/status/podIP");
            let port = match &target {
                Value::String(port_name) => container_port(pod, port_name)?,
                number => number.as_u64().and_then(|p| u16::try_from(p).ok())?,
            };
            (!address.is_empty()).then(|| (address.to_string(), port))
        })
        .ok_or_else(no_endpoints)
}

/// The number of the container port named `port_name` in a pod.
fn container_port(pod: &Value, port_name: &str) -> Option<u16> {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array)?;
    containers
        .iter()
        .flat_map(|c| c.get("ports").and_then(Value::as_array).cloned().unwrap_or_default())
        .find(|p| meta::str_at(p, "/name") == port_name)
        .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
        .and_then(|p| u16::try_from(p).ok())
}

/// The webhooks of every configuration of one kind, in the order the real server calls them:
/// configurations by name, then each one's webhooks as listed.
fn hooks(store: &Store, resource: &str) -> Vec<Hook> {
    let mut configurations = store.list(GROUP, resource, None).objects;
    configurations.sort_by(|a, b| meta::str_at(a, "/metadata/name").cmp(meta::str_at(b, "/metadata/name")));
    configurations
        .iter()
        .flat_map(|c| c.get("webhooks").and_then(Value::as_array).cloned().unwrap_or_default())
        .map(|webhook| Hook { webhook, mutating: resource == MUTATING, equivalent: None })
        .collect()
}

/// Whether a webhook whose rules match is to be called for the request (as it sees it), by its
/// selectors and match conditions. A match condition that cannot be evaluated refuses the request
/// when the webhook fails closed, and skips the webhook otherwise.
fn applies(hook: &Hook, request: &AdmissionRequest<'_>, namespace: Option<&Value>) -> Result<bool, ApiError> {
    let empty = json!({});
    let namespace_selector = hook.webhook.get("namespaceSelector").unwrap_or(&empty);
    let namespace_matches = if request.group.is_empty() && request.resource == "namespaces" {
        [request.object, request.old_object]
            .into_iter()
            .flatten()
            .any(|o| admission::selector_matches(namespace_selector, o))
    } else if request.namespace.is_some() {
        admission::selector_matches(namespace_selector, namespace.unwrap_or(&empty))
    } else {
        true
    };
    let object_selector = hook.webhook.get("objectSelector").unwrap_or(&empty);
    let object_matches = [request.object, request.old_object]
        .into_iter()
        .flatten()
        .any(|o| admission::selector_matches(object_selector, o));
    if !namespace_matches || !object_matches {
        return Ok(false);
    }
    let conditions = hook.webhook.get("matchConditions").and_then(Value::as_array).cloned().unwrap_or_default();
    match admission::conditions_hold(&conditions, request) {
        Ok(holds) => Ok(holds),
        Err(error) if hook.fails_closed() => {
            let subject = qualified_resource(request.group, request.resource);
            let subject = if request.name.is_empty() { subject } else { format!("{subject} \"{}\"", request.name) };
            Err(ApiError::forbidden(format!(
                "{subject} is forbidden: failed calling webhook \"{}\": {error}",
                hook.name()
            )))
        }
        Err(error) => {
            tracing::warn!(webhook = hook.name(), %error, "match condition failed; webhook skipped");
            Ok(false)
        }
    }
}

/// The webhooks of `resource` that apply to the request, refusing a dry run that one with side
/// effects would see.
fn matching(
    store: &Store,
    registry: &Registry,
    resource: &str,
    request: &AdmissionRequest<'_>,
) -> Result<Vec<Hook>, ApiError> {
    if request.group == GROUP {
        return Ok(Vec::new());
    }
    let all = hooks(store, resource);
    if all.is_empty() {
        return Ok(Vec::new());
    }
    let namespace = request.namespace.and_then(|ns| store.get(&ObjectKey::new("", "namespaces", "", ns)));
    let mut found = Vec::new();
    for mut hook in all {
        let Some(equivalent) = hook.match_rules(registry, request) else { continue };
        hook.equivalent = equivalent;
        let converted = hook.converted(request);
        if applies(&hook, &hook.sees(request, &converted), namespace.as_deref())? {
            if request.dry_run && !hook.dry_run_safe() {
                return Err(ApiError::bad_request(format!(
                    "admission webhook \"{}\" does not support dry run",
                    hook.name()
                )));
            }
            found.push(hook);
        }
    }
    Ok(found)
}

/// Calls one webhook and reads its answer.
async fn invoke(
    hook: &Hook,
    endpoint: Result<Endpoint, String>,
    seen: &AdmissionRequest<'_>,
    requested: &AdmissionRequest<'_>,
    options: &Value,
) -> Result<Verdict, String> {
    let version = hook.review_version();
    let uid = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&review(version, &uid, seen, requested, options)).map_err(|e| e.to_string())?;
    let answer = match endpoint {
        Ok(endpoint) => call::post(&endpoint, body).await,
        Err(error) => Err(error),
    };
    verdict(hook.name(), hook.mutating, version, &uid, answer)
}

/// Calls the matching mutating webhooks in order, applying their patches to `object` (which a
/// delete lacks: patches then apply to nothing). `request` names no object: `object` is what the
/// webhooks see. Returns their warnings and whether the object changed, so that the caller
/// defaults and validates it again.
pub(crate) fn mutate(
    store: &Store,
    registry: &Registry,
    request: &AdmissionRequest<'_>,
    mut object: Option<&mut Value>,
    options: &Value,
) -> Result<(Vec<String>, bool), ApiError> {
    let hooks = matching(store, registry, MUTATING, &AdmissionRequest { object: object.as_deref(), ..*request })?;
    if hooks.is_empty() {
        return Ok((Vec::new(), false));
    }
    let mut warnings = Vec::new();
    // The number of changes made so far, as each webhook ran.
    let mut ran: Vec<usize> = Vec::new();
    let mut changes = 0;
    for hook in &hooks {
        if mutate_once(store, hook, request, &mut object, options, &mut warnings)? {
            changes += 1;
        }
        ran.push(changes);
    }
    let mut changed = changes > 0;
    // `IfNeeded` webhooks see the object again when a later webhook changed it.
    for (hook, changes_then) in hooks.iter().zip(ran) {
        if hook.reinvoked_if_needed() && changes_then < changes {
            changed |= mutate_once(store, hook, request, &mut object, options, &mut warnings)?;
        }
    }
    Ok((warnings, changed))
}

/// One mutating call; whether it changed the object.
fn mutate_once(
    store: &Store,
    hook: &Hook,
    request: &AdmissionRequest<'_>,
    object: &mut Option<&mut Value>,
    options: &Value,
    warnings: &mut Vec<String>,
) -> Result<bool, ApiError> {
    let current = AdmissionRequest { object: object.as_deref(), ..*request };
    let converted = hook.converted(&current);
    let endpoint = hook.endpoint(store);
    let outcome = call::blocking(invoke(hook, endpoint, &hook.sees(&current, &converted), &current, options))
        .and_then(|verdict| verdict);
    match outcome {
        Err(reason) => hook.failed(&reason).map(|()| false).map_err(|e| e.with_warnings(warnings.clone())),
        Ok(Verdict::Denied { error, warnings: more }) => {
            warnings.extend(more);
            Err(error.with_warnings(warnings.clone()))
        }
        Ok(Verdict::Allowed { patch, warnings: more }) => {
            warnings.extend(more);
            let (Some(patch), Some(target)) = (patch, object.as_deref_mut()) else { return Ok(false) };
            // The patch is to the object as the webhook saw it, converted back when that was another version.
            let patched =
                crate::patch::json::json_patch(converted.0.as_ref().unwrap_or(target), &patch).map_err(|e| {
                    ApiError::internal(format!("applying the patch of webhook \"{}\": {}", hook.name(), e.message))
                })?;
            let patched = match &hook.equivalent {
                Some(equivalent) if patched.is_object() => ApiServer::present(&equivalent.requested, &patched),
                _ => patched,
            };
            if !patched.is_object() {
                return Err(ApiError::internal(format!(
                    "applying the patch of webhook \"{}\": the result is not an object",
                    hook.name()
                )));
            }
            let changed = patched != *target;
            *target = patched;
            Ok(changed)
        }
    }
}

/// Calls the matching validating webhooks, all at once. Returns their warnings; the first denial
/// (in webhook order) or failure under `failurePolicy: Fail` is the error.
pub(crate) fn validate(
    store: &Store,
    registry: &Registry,
    request: &AdmissionRequest<'_>,
    options: &Value,
) -> Result<Vec<String>, ApiError> {
    let hooks = matching(store, registry, VALIDATING, request)?;
    if hooks.is_empty() {
        return Ok(Vec::new());
    }
    let endpoints: Vec<_> = hooks.iter().map(|hook| hook.endpoint(store)).collect();
    let converted: Vec<_> = hooks.iter().map(|hook| hook.converted(request)).collect();
    let seen: Vec<_> = hooks.iter().zip(&converted).map(|(hook, converted)| hook.sees(request, converted)).collect();
    let calls = hooks
        .iter()
        .zip(endpoints)
        .zip(&seen)
        .map(|((hook, endpoint), seen)| invoke(hook, endpoint, seen, request, options));
    let outcomes = call::blocking(futures::future::join_all(calls)).map_err(ApiError::internal)?;
    let mut warnings = Vec::new();
    let mut refusal = None;
    for (hook, outcome) in hooks.iter().zip(outcomes) {
        match outcome {
            Ok(Verdict::Allowed { warnings: more, .. }) => warnings.extend(more),
            Ok(Verdict::Denied { error, warnings: more }) => {
                warnings.extend(more);
                refusal.get_or_insert(error);
            }
            Err(reason) => {
                if let Err(error) = hook.failed(&reason) {
                    refusal.get_or_insert(error);
                }
            }
        }
    }
    match refusal {
        Some(error) => Err(error.with_warnings(warnings)),
        None => Ok(warnings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Operation;
    use crate::auth::UserInfo;

    fn hook(webhook: Value) -> Hook {
        Hook { webhook, mutating: false, equivalent: None }
    }

    /// A create of ConfigMap `team-a/c` by `user`, for the tests here and of the reviews.
    pub(crate) fn request<'a>(user: &'a UserInfo, object: Option<&'a Value>) -> AdmissionRequest<'a> {
        AdmissionRequest {
            operation: Operation::Create,
            user,
            group: "",
            version: "v1",
            resource: "configmaps",
            kind: "ConfigMap",
            subresource: None,
            namespace: Some("team-a"),
            name: "c",
            object,
            old_object: None,
            dry_run: false,
            body_kind: None,
        }
    }

    #[test]
    fn dry_runs_need_webhooks_without_side_effects() {
        assert!(hook(json!({"sideEffects": "None"})).dry_run_safe());
        assert!(hook(json!({"sideEffects": "NoneOnDryRun"})).dry_run_safe());
        assert!(!hook(json!({"sideEffects": "Unknown"})).dry_run_safe());
        assert!(!hook(json!({"sideEffects": "Some"})).dry_run_safe());
    }

    fn store_with(resource: &str, webhook: Value) -> Store {
        let store = Store::new(std::sync::Arc::new(crate::store::NoPersistence), 10);
        let configuration = json!({"metadata": {"name": "c"}, "webhooks": [webhook]});
        store.create(ObjectKey::new(GROUP, resource, "", "c"), configuration).unwrap();
        store
    }

    fn all_config_maps(side_effects: &str) -> Value {
        json!({"name": "v.example.com", "sideEffects": side_effects, "clientConfig": {"url": "https://127.0.0.1:1/"},
            "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]})
    }

    #[test]
    fn a_dry_run_that_a_webhook_with_side_effects_would_see_is_refused() {
        let user = UserInfo::default();
        let object = json!({"metadata": {"name": "c"}});
        let mut req = request(&user, Some(&object));
        req.dry_run = true;
        let store = store_with(VALIDATING, all_config_maps("Some"));
        let error = validate(&store, &Registry::new(Vec::new()), &req, &json!({})).unwrap_err();
        assert_eq!((error.code, error.reason.as_str()), (400, "BadRequest"));
        assert_eq!(error.message, "admission webhook \"v.example.com\" does not support dry run");
        let store = store_with(MUTATING, all_config_maps("Unknown"));
        let mut mutable = object.clone();
        assert_eq!(
            mutate(&store, &Registry::new(Vec::new()), &req, Some(&mut mutable), &json!({})).unwrap_err().code,
            400
        );
    }

    #[test]
    fn webhook_configurations_are_never_sent_to_webhooks() {
        let user = UserInfo::default();
        let object = json!({"metadata": {"name": "c"}});
        let mut req = request(&user, Some(&object));
        req.group = GROUP;
        req.resource = VALIDATING;
        let store = store_with(VALIDATING, all_config_maps("None"));
        assert_eq!(validate(&store, &Registry::new(Vec::new()), &req, &json!({})).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_service_is_called_through_a_running_pod_it_selects() {
        let hook = Hook {
            webhook: json!({"name": "s.example.com", "clientConfig": {"service": {"name": "hooks", "namespace": "ops", "port": 8443, "path": "/v"}}}),
            mutating: false,
            equivalent: None,
        };
        let store = Store::new(std::sync::Arc::new(crate::store::NoPersistence), 10);
        let error = |store: &Store| hook.endpoint(store).unwrap_err();
        let url = "Post \"https://hooks.ops.svc:8443/v?timeout=10s\"";
        assert_eq!(error(&store), format!("{url}: service \"hooks\" not found"));
        let service = |ports: Value| json!({"metadata": {"name": "hooks"}, "spec": {"selector": {"app": "hooks"}, "ports": ports}});
        let key = ObjectKey::new("", "services", "ops", "hooks");
        store.create(key.clone(), service(json!([{"port": 443}]))).unwrap();
        assert_eq!(error(&store), format!("{url}: no service port 8443 found for service \"hooks\""));
        store.update(key, 0, service(json!([{"port": 8443, "targetPort": "https"}]))).unwrap();
        assert_eq!(error(&store), format!("{url}: no endpoints available for service \"hooks\""));
        let pod = json!({"metadata": {"name": "p", "namespace": "ops", "labels": {"app": "hooks"}},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "https", "containerPort": 9443}]}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1"}});
        store.create(ObjectKey::new("", "pods", "ops", "p"), pod).unwrap();
        let endpoint = hook.endpoint(&store).unwrap();
        assert_eq!(endpoint.url, "https://hooks.ops.svc:8443/v?timeout=10s");
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port, endpoint.server_name.as_str()),
            ("127.0.0.1", 9443, "hooks.ops.svc")
        );
        let external = json!({"metadata": {"name": "hooks"}, "spec": {"type": "ExternalName", "externalName": "hooks.example.com"}});
        store.update(ObjectKey::new("", "services", "ops", "hooks"), 0, external).unwrap();
        let endpoint = hook.endpoint(&store).unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("hooks.example.com", 8443));
    }

    #[test]
    fn namespace_and_object_selectors_decide_who_is_called() {
        let user = UserInfo::default();
        let object = json!({"metadata": {"name": "c", "labels": {"app": "web"}}});
        let req = request(&user, Some(&object));
        let namespace = json!({"metadata": {"name": "team-a", "labels": {"env": "dev"}}});
        let base = json!({"name": "v.example.com", "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"], "scope": "*"}]});
        let with = |field: &str, selector: Value| {
            let mut webhook = base.clone();
            webhook[field] = selector;
            applies(&hook(webhook), &req, Some(&namespace)).unwrap()
        };
        assert!(applies(&hook(base.clone()), &req, Some(&namespace)).unwrap());
        assert!(with("namespaceSelector", json!({"matchLabels": {"env": "dev"}})));
        assert!(!with("namespaceSelector", json!({"matchLabels": {"env": "prod"}})));
        assert!(with("objectSelector", json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})));
        assert!(!with("objectSelector", json!({"matchLabels": {"app": "db"}})));
        assert!(!with("matchConditions", json!([{"name": "named-d", "expression": "request.name == 'd'"}])));
        assert!(with(
            "matchConditions",
            json!([{"name": "labelled", "expression": "object.metadata.labels.app == 'web'"}])
        ));
        let mut failing = base.clone();
        failing["matchConditions"] = json!([{"name": "broken", "expression": "object.missing.field == 1"}]);
        let error = applies(&hook(failing.clone()), &req, Some(&namespace)).unwrap_err();
        assert_eq!(error.code, 403);
        assert!(error.message.starts_with("configmaps \"c\" is forbidden: failed calling webhook \"v.example.com\": failed to evaluate matchCondition 'broken'"), "{}", error.message);
        failing["failurePolicy"] = json!("Ignore");
        assert!(!applies(&hook(failing), &req, Some(&namespace)).unwrap());
    }
}
