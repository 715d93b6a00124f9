//! `ValidatingWebhookConfiguration` and `MutatingWebhookConfiguration`: their scheme defaults and
//! their validation, worded as `k8s.io/kubernetes/pkg/apis/admissionregistration/validation`.

use crate::builtin::Defaulting;
use crate::error::{ApiError, Cause};
use crate::meta;
use crate::schema::fields::{self, child, index};
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// The AdmissionReview versions the server can send, best first.
pub(crate) const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
const SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
const FAILURE_POLICIES: &[&str] = &["Fail", "Ignore"];
const MATCH_POLICIES: &[&str] = &["Equivalent", "Exact"];
const REINVOCATION_POLICIES: &[&str] = &["IfNeeded", "Never"];
const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
const SELECTOR_OPERATORS: &[&str] = &["DoesNotExist", "Exists", "In", "NotIn"];
const MAX_MATCH_CONDITIONS: usize = 64;

/// Whether the configuration holds mutating webhooks (which have a `reinvocationPolicy`).
fn is_mutating(object: &Value) -> bool {
    meta::str_at(object, "/kind") == "MutatingWebhookConfiguration"
}

fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// `SetDefaults_ValidatingWebhook` / `SetDefaults_MutatingWebhook`, `SetDefaults_Rule` and
/// `SetDefaults_ServiceReference`.
pub(crate) fn defaults(object: &mut Value, _: &Defaulting<'_>) -> Result<(), ApiError> {
    let mutating = is_mutating(object);
    let Some(webhooks) = object.get_mut("webhooks").and_then(Value::as_array_mut) else { return Ok(()) };
    for webhook in webhooks.iter_mut().filter_map(Value::as_object_mut) {
        default(webhook, "failurePolicy", json!("Fail"));
        default(webhook, "matchPolicy", json!("Equivalent"));
        default(webhook, "namespaceSelector", json!({}));
        default(webhook, "objectSelector", json!({}));
        default(webhook, "timeoutSeconds", json!(10));
        if mutating {
            default(webhook, "reinvocationPolicy", json!("Never"));
        }
        for rule in webhook.get_mut("rules").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(rule) = rule.as_object_mut() {
                default(rule, "scope", json!("*"));
            }
        }
        let service = webhook.get_mut("clientConfig").and_then(|c| c.get_mut("service"));
        if let Some(service) = service.and_then(Value::as_object_mut) {
            default(service, "port", json!(443));
        }
    }
    Ok(())
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn supported(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// An optional enumerated field: absent is fine (defaulting fills it), anything else must be listed.
fn check_enum(causes: &mut Vec<Cause>, webhook: &Value, path: &str, field: &str, allowed: &[&str]) {
    if let Some(value) = webhook.get(field).filter(|v| !v.is_null())
        && !value.as_str().is_some_and(|v| allowed.contains(&v))
    {
        causes.push(fields::not_supported(&child(path, field), value, &supported(allowed)));
    }
}

/// The configuration's validation: every webhook, and names unique within it.
pub(crate) fn validate(object: &Value, _: Option<&Value>) -> Vec<Cause> {
    let mutating = is_mutating(object);
    let mut causes = Vec::new();
    let mut names = HashSet::new();
    let webhooks = object.get("webhooks").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, webhook) in webhooks.iter().enumerate() {
        let path = index("webhooks", i);
        let name = meta::str_at(webhook, "/name");
        if !name.is_empty() && !names.insert(name.to_string()) {
            causes.push(fields::duplicate(&child(&path, "name"), &json!(name)));
        }
        validate_webhook(&mut causes, webhook, &path, mutating);
    }
    causes
}

fn validate_webhook(causes: &mut Vec<Cause>, webhook: &Value, path: &str, mutating: bool) {
    validate_name(causes, meta::str_at(webhook, "/name"), &child(path, "name"));
    for (i, rule) in webhook.get("rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
        validate_rule(causes, rule, &index(&child(path, "rules"), i));
    }
    check_enum(causes, webhook, path, "failurePolicy", FAILURE_POLICIES);
    check_enum(causes, webhook, path, "matchPolicy", MATCH_POLICIES);
    if mutating {
        check_enum(causes, webhook, path, "reinvocationPolicy", REINVOCATION_POLICIES);
    }
    match webhook.get("sideEffects").filter(|v| !v.is_null()) {
        None => causes.push(fields::required(
            &child(path, "sideEffects"),
            &format!("must specify one of {}", SIDE_EFFECTS.join(", ")),
        )),
        Some(_) => check_enum(causes, webhook, path, "sideEffects", SIDE_EFFECTS),
    }
    if let Some(timeout) = webhook.get("timeoutSeconds").filter(|v| !v.is_null())
        && !timeout.as_i64().is_some_and(|t| (1..=30).contains(&t))
    {
        causes.push(fields::invalid(
            &child(path, "timeoutSeconds"),
            timeout,
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    validate_review_versions(causes, webhook.get("admissionReviewVersions"), &child(path, "admissionReviewVersions"));
    validate_client_config(causes, webhook.get("clientConfig"), &child(path, "clientConfig"));
    for selector in ["namespaceSelector", "objectSelector"] {
        if let Some(selector_value) = webhook.get(selector) {
            validate_selector(causes, selector_value, &child(path, selector));
        }
    }
    validate_match_conditions(causes, webhook.get("matchConditions"), &child(path, "matchConditions"));
}

/// `IsFullyQualifiedName`: a DNS subdomain of at least three segments.
fn validate_name(causes: &mut Vec<Cause>, name: &str, path: &str) {
    if name.is_empty() {
        causes.push(fields::required(path, ""));
        return;
    }
    if let Some(cause) = meta::validate_name(meta::NameRule::Subdomain, name, path) {
        causes.push(cause);
        return;
    }
    if name.split('.').count() < 3 {
        causes.push(fields::invalid(
            path,
            &json!(name),
            "should be a domain with at least three segments separated by dots",
        ));
    }
}

fn has_wildcard(values: &[String]) -> bool {
    values.iter().any(|v| v == "*")
}

/// `validateRuleWithOperations` and `validateRule` (subresources allowed).
fn validate_rule(causes: &mut Vec<Cause>, rule: &Value, path: &str) {
    let operations = strings(rule.get("operations"));
    let operations_path = child(path, "operations");
    if operations.is_empty() {
        causes.push(fields::required(&operations_path, ""));
    }
    if operations.len() > 1 && has_wildcard(&operations) {
        causes.push(fields::invalid(
            &operations_path,
            &json!(operations),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, operation) in operations.iter().enumerate() {
        if !OPERATIONS.contains(&operation.as_str()) {
            causes.push(fields::not_supported(&index(&operations_path, i), &json!(operation), &supported(OPERATIONS)));
        }
    }
    for (field, what) in [("apiGroups", "API groups"), ("apiVersions", "API versions")] {
        let values = strings(rule.get(field));
        let field_path = child(path, field);
        if values.is_empty() {
            causes.push(fields::required(&field_path, ""));
        }
        if values.len() > 1 && has_wildcard(&values) {
            causes.push(fields::invalid(
                &field_path,
                &json!(values),
                &format!("if '*' is present, must not specify other {what}"),
            ));
        }
        if field == "apiVersions" {
            for (i, _) in values.iter().enumerate().filter(|(_, v)| v.is_empty()) {
                causes.push(fields::required(&index(&field_path, i), ""));
            }
        }
    }
    validate_resources(causes, &strings(rule.get("resources")), &child(path, "resources"));
    if let Some(scope) = rule.get("scope").filter(|v| !v.is_null())
        && !scope.as_str().is_some_and(|s| SCOPES.contains(&s))
    {
        causes.push(fields::not_supported(&child(path, "scope"), scope, &supported(SCOPES)));
    }
}

/// `validateResources`: `res`, `res/sub`, `res/*`, `*/sub`, `*` and `*/*`, without overlaps.
fn validate_resources(causes: &mut Vec<Cause>, resources: &[String], path: &str) {
    if resources.is_empty() {
        causes.push(fields::required(path, ""));
    }
    let double_wildcard = resources.iter().any(|r| r == "*/*");
    let single_wildcard = resources.iter().any(|r| r == "*");
    let mut plain = false;
    let mut wildcard_subresources: HashSet<&str> = HashSet::new();
    let mut wildcard_resources: HashSet<&str> = HashSet::new();
    for resource in resources {
        if let Some((res, "*")) = resource.split_once('/') {
            wildcard_subresources.insert(res);
        }
        if let Some(("*", sub)) = resource.split_once('/') {
            wildcard_resources.insert(sub);
        }
    }
    for (i, resource) in resources.iter().enumerate() {
        if resource.is_empty() {
            causes.push(fields::required(&index(path, i), ""));
            continue;
        }
        let Some((res, sub)) = resource.split_once('/') else {
            plain |= resource != "*";
            continue;
        };
        if sub != "*" && wildcard_subresources.contains(res) {
            causes.push(fields::invalid(
                &index(path, i),
                &json!(resource),
                &format!("if '{res}/*' is present, must not specify {resource}"),
            ));
        }
        if res != "*" && wildcard_resources.contains(sub) {
            causes.push(fields::invalid(
                &index(path, i),
                &json!(resource),
                &format!("if '*/{sub}' is present, must not specify {resource}"),
            ));
        }
    }
    if double_wildcard && resources.len() > 1 {
        causes.push(fields::invalid(path, &json!(resources), "if '*/*' is present, must not specify other resources"));
    }
    if single_wildcard && plain {
        causes.push(fields::invalid(
            path,
            &json!(resources),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

/// `validateAdmissionReviewVersions`: at least one the server can send, none repeated.
fn validate_review_versions(causes: &mut Vec<Cause>, versions: Option<&Value>, path: &str) {
    let versions = strings(versions);
    if versions.is_empty() {
        causes.push(fields::required(path, &format!("must specify one of {}", REVIEW_VERSIONS.join(", "))));
        return;
    }
    let mut seen = HashSet::new();
    for (i, version) in versions.iter().enumerate() {
        if !seen.insert(version) {
            causes.push(fields::invalid(&index(path, i), &json!(version), "duplicate version"));
        }
    }
    if !versions.iter().any(|v| REVIEW_VERSIONS.contains(&v.as_str())) {
        causes.push(fields::invalid(
            path,
            &json!(versions),
            &format!("must include at least one of {}", REVIEW_VERSIONS.join(", ")),
        ));
    }
}

/// Exactly one of `url` and `service`; an https URL without user information, query or fragment;
/// a service with a name, a namespace, a valid port and a path starting with `/`.
fn validate_client_config(causes: &mut Vec<Cause>, config: Option<&Value>, path: &str) {
    let config = config.cloned().unwrap_or_else(|| json!({}));
    let url = config.get("url").filter(|v| !v.is_null());
    let service = config.get("service").filter(|v| !v.is_null());
    match (url, service) {
        (Some(url), None) => validate_url(causes, url.as_str().unwrap_or(""), &child(path, "url")),
        (None, Some(service)) => validate_service(causes, service, &child(path, "service")),
        _ => causes.push(fields::required(path, "exactly one of url or service is required")),
    }
}

/// `ValidateWebhookURL` with https forced.
fn validate_url(causes: &mut Vec<Cause>, url: &str, path: &str) {
    const FORM: &str = "; desired format: https://host[/path]";
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if scheme != "https" {
        causes.push(fields::invalid(path, &json!(scheme), &format!("'https' is the only allowed URL scheme{FORM}")));
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = rest.split('/').next().unwrap_or("");
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if host.is_empty() {
        causes.push(fields::invalid(path, &json!(host), &format!("host must be specified{FORM}")));
    }
    if let Some(user) = user {
        causes.push(fields::invalid(path, &json!(user), "user information is not permitted in the URL"));
    }
    if !fragment.is_empty() {
        causes.push(fields::invalid(path, &json!(fragment), "fragments are not permitted in the URL"));
    }
    if !query.is_empty() {
        causes.push(fields::invalid(path, &json!(query), "query parameters are not permitted in the URL"));
    }
}

/// `ValidateWebhookService`.
fn validate_service(causes: &mut Vec<Cause>, service: &Value, path: &str) {
    if meta::str_at(service, "/name").is_empty() {
        causes.push(fields::required(&child(path, "name"), "service name is required"));
    }
    if meta::str_at(service, "/namespace").is_empty() {
        causes.push(fields::required(&child(path, "namespace"), "service namespace is required"));
    }
    if let Some(port) = service.get("port").filter(|v| !v.is_null())
        && !port.as_i64().is_some_and(|p| (1..=65535).contains(&p))
    {
        causes.push(fields::invalid(
            &child(path, "port"),
            port,
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let service_path = meta::str_at(service, "/path");
    if service_path.is_empty() || service_path == "/" {
        return;
    }
    if !service_path.starts_with('/') {
        causes.push(fields::invalid(&child(path, "path"), &json!(service_path), "must start with a '/'"));
    } else if service_path.starts_with("//") {
        causes.push(fields::invalid(&child(path, "path"), &json!(service_path), "segment[0] may not be empty"));
    }
}

/// A `LabelSelector`'s operators are the four known ones, with values only where they belong.
fn validate_selector(causes: &mut Vec<Cause>, selector: &Value, path: &str) {
    let expressions = selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten();
    for (i, expression) in expressions.enumerate() {
        let expression_path = index(&child(path, "matchExpressions"), i);
        let operator = meta::str_at(expression, "/operator");
        let values = strings(expression.get("values"));
        match operator {
            "In" | "NotIn" if values.is_empty() => causes.push(fields::required(
                &child(&expression_path, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(fields::forbidden(
                &child(&expression_path, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            op if !SELECTOR_OPERATORS.contains(&op) => causes.push(fields::invalid(
                &child(&expression_path, "operator"),
                &json!(op),
                "not a valid selector operator",
            )),
            _ => {}
        }
    }
}

/// `validateMatchConditions`: at most 64, each named once, each a CEL expression that compiles.
fn validate_match_conditions(causes: &mut Vec<Cause>, conditions: Option<&Value>, path: &str) {
    let conditions = conditions.and_then(Value::as_array).cloned().unwrap_or_default();
    if conditions.len() > MAX_MATCH_CONDITIONS {
        causes.push(fields::too_many(path, conditions.len(), MAX_MATCH_CONDITIONS as u64));
    }
    let mut names = HashSet::new();
    for (i, condition) in conditions.iter().enumerate() {
        let condition_path = index(path, i);
        let name = meta::str_at(condition, "/name");
        if name.is_empty() {
            causes.push(fields::required(&child(&condition_path, "name"), ""));
        } else if !names.insert(name) {
            causes.push(fields::duplicate(&child(&condition_path, "name"), &json!(name)));
        }
        let expression = meta::str_at(condition, "/expression");
        if expression.is_empty() {
            causes.push(fields::required(&child(&condition_path, "expression"), ""));
        } else if let Err(error) = crate::admission::compile(expression) {
            causes.push(fields::invalid(&child(&condition_path, "expression"), &json!(expression), &error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook() -> Value {
        json!({
            "name": "deny.example.com",
            "clientConfig": {"url": "https://127.0.0.1:8443/validate"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })
    }

    fn messages(webhooks: Vec<Value>) -> Vec<String> {
        let object = json!({"kind": "ValidatingWebhookConfiguration", "webhooks": webhooks});
        validate(&object, None).into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn defaults_fill_the_policies_selectors_timeout_and_scope() {
        let allocate = || Ok(String::new());
        let allocate_port = |_: &[i64]| Ok(0);
        let defaulting = Defaulting { old: None, allocate_cluster_ip: &allocate, allocate_node_port: &allocate_port };
        let mut object = json!({"kind": "MutatingWebhookConfiguration", "webhooks": [webhook()]});
        object["webhooks"][0]["clientConfig"] = json!({"service": {"name": "s", "namespace": "n"}});
        defaults(&mut object, &defaulting).unwrap();
        let hook = &object["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["matchPolicy"], "Equivalent");
        assert_eq!(hook["namespaceSelector"], json!({}));
        assert_eq!(hook["objectSelector"], json!({}));
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["reinvocationPolicy"], "Never");
        assert_eq!(hook["rules"][0]["scope"], "*");
        assert_eq!(hook["clientConfig"]["service"]["port"], 443);
    }

    #[test]
    fn a_valid_webhook_has_no_causes() {
        assert!(messages(vec![webhook()]).is_empty());
    }

    #[test]
    fn names_are_unique_and_fully_qualified() {
        let mut short = webhook();
        short["name"] = json!("deny.example");
        assert_eq!(
            messages(vec![webhook(), webhook(), short]),
            vec![
                "webhooks[1].name: Duplicate value: \"deny.example.com\"",
                "webhooks[2].name: Invalid value: \"deny.example\": should be a domain with at least three segments separated by dots",
            ]
        );
    }

    #[test]
    fn urls_must_be_https_without_user_query_or_fragment() {
        let with_url = |url: &str| {
            let mut hook = webhook();
            hook["clientConfig"] = json!({"url": url});
            messages(vec![hook])
        };
        assert_eq!(
            with_url("http://h/p"),
            vec![
                "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]"
            ]
        );
        assert_eq!(
            with_url("https://u:p@h/p?x=1#f"),
            vec![
                "webhooks[0].clientConfig.url: Invalid value: \"u:p\": user information is not permitted in the URL",
                "webhooks[0].clientConfig.url: Invalid value: \"f\": fragments are not permitted in the URL",
                "webhooks[0].clientConfig.url: Invalid value: \"x=1\": query parameters are not permitted in the URL",
            ]
        );
        let mut both = webhook();
        both["clientConfig"]["service"] = json!({"name": "s", "namespace": "n"});
        assert_eq!(
            messages(vec![both]),
            vec!["webhooks[0].clientConfig: Required value: exactly one of url or service is required"]
        );
    }

    #[test]
    fn side_effects_versions_timeouts_and_rules_are_checked() {
        let mut hook = webhook();
        hook.as_object_mut().unwrap().remove("sideEffects");
        hook["admissionReviewVersions"] = json!(["v2"]);
        hook["timeoutSeconds"] = json!(31);
        hook["rules"] = json!([{"operations": ["CREATE", "*", "PATCH"], "apiGroups": [""], "apiVersions": ["v1"],
            "resources": ["*", "pods"], "scope": "Everywhere"}]);
        assert_eq!(
            messages(vec![hook]),
            vec![
                "webhooks[0].rules[0].operations: Invalid value: [\"CREATE\",\"*\",\"PATCH\"]: if '*' is present, must not specify other operations",
                "webhooks[0].rules[0].operations[2]: Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\"",
                "webhooks[0].rules[0].resources: Invalid value: [\"*\",\"pods\"]: if '*' is present, must not specify other resources without subresources",
                "webhooks[0].rules[0].scope: Unsupported value: \"Everywhere\": supported values: \"*\", \"Cluster\", \"Namespaced\"",
                "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
                "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
                "webhooks[0].admissionReviewVersions: Invalid value: [\"v2\"]: must include at least one of v1, v1beta1",
            ]
        );
    }

    #[test]
    fn match_conditions_must_compile() {
        let mut hook = webhook();
        hook["matchConditions"] =
            json!([{"name": "a", "expression": "object.x =="}, {"name": "a", "expression": "true"}]);
        let found = messages(vec![hook]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with(
            "webhooks[0].matchConditions[0].expression: Invalid value: \"object.x ==\": compilation failed"
        ));
        assert_eq!(found[1], "webhooks[0].matchConditions[1].name: Duplicate value: \"a\"");
    }
}
