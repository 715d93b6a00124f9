//! Fault injection for tests: make matching requests fail or slow down on purpose.
//!
//! Rules are armed through the Rust API ([`Faults::fail_next`], [`Faults::delay_next`]) or the admin
//! endpoint `POST /devcluster/faults` (see `server::admin`). Each rule matches a verb, a resource,
//! optionally a subresource and a name, and applies to the next `count` matching requests. Every
//! injected fault is logged at `warn` level, so a test's failures can be read off the server log.

use crate::error::ApiError;
use serde::Deserialize;
use std::sync::Mutex;
use std::time::Duration;

/// What an injected fault does to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    Fail(ApiError),
    Delay(Duration),
}

/// Which requests a fault applies to. `*` matches any verb or resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultTarget {
    /// RBAC verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection` or `*`.
    pub verb: String,
    /// Plural resource name, e.g. `pods`, or `*`.
    pub resource: String,
    /// `None` matches only requests to the main resource; `Some("*")` matches any subresource.
    pub subresource: Option<String>,
    /// `None` matches every name (and unnamed requests such as lists).
    pub name: Option<String>,
}

impl FaultTarget {
    pub fn new(verb: &str, resource: &str) -> Self {
        Self { verb: verb.into(), resource: resource.into(), subresource: None, name: None }
    }

    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.into());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    fn matches(&self, verb: &str, resource: &str, subresource: Option<&str>, name: Option<&str>) -> bool {
        let wildcard = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        wildcard(&self.verb, verb)
            && wildcard(&self.resource, resource)
            && match (self.subresource.as_deref(), subresource) {
                (None, None) => true,
                (Some(pattern), Some(actual)) => wildcard(pattern, actual),
                _ => false,
            }
            && self.name.as_deref().is_none_or(|n| name == Some(n))
    }
}

/// One armed rule: a target, what to do, and how many more requests it applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub target: FaultTarget,
    pub action: FaultAction,
    pub remaining: u32,
}

/// A fault rule as the admin endpoint accepts it (JSON, camelCase).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    pub verb: String,
    pub resource: String,
    #[serde(default)]
    pub subresource: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// How many matching requests the fault applies to (at least 1).
    pub count: u32,
    /// The HTTP status to fail with; exclusive with `delayMs`.
    #[serde(default)]
    pub status: Option<u16>,
    /// The `Status` reason, e.g. `InternalError`; defaults from the status code.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// Delay the request by this many milliseconds instead of failing it.
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

/// The `StatusReason` the real server uses for a status code.
fn default_reason(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

impl FaultSpec {
    /// The rule this spec describes; a spec that is not exactly one of "fail" or "delay" is an error
    /// naming the offending field.
    pub fn into_rule(self) -> Result<FaultRule, String> {
        if self.count == 0 {
            return Err("count: must be at least 1".into());
        }
        if self.verb.is_empty() || self.resource.is_empty() {
            return Err("verb and resource: required (use \"*\" to match any)".into());
        }
        let action = match (self.status, self.delay_ms) {
            (Some(_), Some(_)) => return Err("status and delayMs: set exactly one of them".into()),
            (None, None) => return Err("status or delayMs: one of them is required".into()),
            (Some(status), None) if !(400..=599).contains(&status) => {
                return Err(format!("status: {status} is not an error status (400-599)"));
            }
            (Some(status), None) => {
                let reason = self.reason.unwrap_or_else(|| default_reason(status).to_string());
                let message =
                    self.message.unwrap_or_else(|| format!("injected fault: {} {}", self.verb, self.resource));
                FaultAction::Fail(ApiError::new(status, &reason, message))
            }
            (None, Some(ms)) => FaultAction::Delay(Duration::from_millis(ms)),
        };
        let target =
            FaultTarget { verb: self.verb, resource: self.resource, subresource: self.subresource, name: self.name };
        Ok(FaultRule { target, action, remaining: self.count })
    }
}

/// The faults armed on one server.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    fn rules(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        // Rules are plain data; a panic elsewhere cannot leave them inconsistent.
        self.rules.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Arms a rule; rules armed earlier take precedence when several match.
    pub fn add(&self, rule: FaultRule) {
        tracing::info!(
            verb = %rule.target.verb,
            resource = %rule.target.resource,
            subresource = ?rule.target.subresource,
            name = ?rule.target.name,
            count = rule.remaining,
            action = ?rule.action,
            "fault armed"
        );
        self.rules().push(rule);
    }

    /// Makes the next `count` requests matching `target` fail with `error`.
    pub fn fail_next(&self, target: FaultTarget, count: u32, error: ApiError) {
        self.add(FaultRule { target, action: FaultAction::Fail(error), remaining: count });
    }

    /// Delays the next `count` requests matching `target` by `delay`.
    pub fn delay_next(&self, target: FaultTarget, count: u32, delay: Duration) {
        self.add(FaultRule { target, action: FaultAction::Delay(delay), remaining: count });
    }

    /// Disarms every rule.
    pub fn clear(&self) {
        self.rules().clear();
    }

    /// The rules still armed, with their remaining counts.
    pub fn armed(&self) -> Vec<FaultRule> {
        self.rules().clone()
    }

    /// The fault to apply to a request, consuming one use of the first matching rule.
    pub fn intercept(
        &self,
        verb: &str,
        resource: &str,
        subresource: Option<&str>,
        name: Option<&str>,
    ) -> Option<FaultAction> {
        let mut rules = self.rules();
        if rules.is_empty() {
            return None;
        }
        let index = rules.iter().position(|r| r.target.matches(verb, resource, subresource, name))?;
        let rule = &mut rules[index];
        rule.remaining = rule.remaining.saturating_sub(1);
        let action = rule.action.clone();
        let remaining = rule.remaining;
        if remaining == 0 {
            rules.remove(index);
        }
        match &action {
            FaultAction::Fail(error) => tracing::warn!(
                verb,
                resource,
                subresource,
                name,
                status = error.code,
                reason = %error.reason,
                remaining,
                "injected fault: failing request"
            ),
            FaultAction::Delay(delay) => tracing::warn!(
                verb,
                resource,
                subresource,
                name,
                delay_ms = delay.as_millis() as u64,
                remaining,
                "injected fault: delaying request"
            ),
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Result<FaultRule, String> {
        serde_json::from_value::<FaultSpec>(json).map_err(|e| e.to_string())?.into_rule()
    }

    #[test]
    fn a_rule_applies_to_the_next_n_matching_requests_only() {
        let faults = Faults::default();
        faults.fail_next(FaultTarget::new("delete", "pods").name("p"), 2, ApiError::internal("boom"));
        assert_eq!(faults.intercept("delete", "pods", None, Some("other")), None);
        assert_eq!(faults.intercept("get", "pods", None, Some("p")), None);
        assert_eq!(faults.intercept("delete", "pods", Some("status"), Some("p")), None);
        for _ in 0..2 {
            match faults.intercept("delete", "pods", None, Some("p")) {
                Some(FaultAction::Fail(e)) => assert_eq!((e.code, e.reason.as_str()), (500, "InternalError")),
                other => panic!("expected a failure, got {other:?}"),
            }
        }
        assert_eq!(faults.intercept("delete", "pods", None, Some("p")), None);
        assert!(faults.armed().is_empty());
    }

    #[test]
    fn wildcards_and_subresources() {
        let faults = Faults::default();
        faults.delay_next(FaultTarget::new("*", "*").subresource("*"), 1, Duration::from_millis(5));
        assert_eq!(faults.intercept("patch", "reviewruns", None, Some("x")), None);
        assert_eq!(
            faults.intercept("patch", "reviewruns", Some("status"), Some("x")),
            Some(FaultAction::Delay(Duration::from_millis(5)))
        );
        faults.delay_next(FaultTarget::new("list", "pods"), 3, Duration::from_millis(1));
        faults.clear();
        assert_eq!(faults.intercept("list", "pods", None, None), None);
    }

    #[test]
    fn specs_become_rules_or_name_the_bad_field() {
        let rule = spec(serde_json::json!({"verb": "delete", "resource": "pods", "count": 2, "status": 503})).unwrap();
        match rule.action {
            FaultAction::Fail(e) => {
                assert_eq!(
                    (e.code, e.reason.as_str(), e.message.as_str()),
                    (503, "ServiceUnavailable", "injected fault: delete pods")
                )
            }
            other => panic!("{other:?}"),
        }
        let rule = spec(serde_json::json!({"verb": "get", "resource": "pods", "count": 1, "delayMs": 20})).unwrap();
        assert_eq!(rule.action, FaultAction::Delay(Duration::from_millis(20)));
        let err = |v| spec(v).unwrap_err();
        assert!(
            err(serde_json::json!({"verb": "get", "resource": "pods", "count": 0, "status": 500})).starts_with("count")
        );
        assert!(
            err(serde_json::json!({"verb": "get", "resource": "pods", "count": 1})).starts_with("status or delayMs")
        );
        assert!(
            err(serde_json::json!({"verb": "get", "resource": "pods", "count": 1, "status": 500, "delayMs": 1}))
                .starts_with("status and delayMs")
        );
        assert!(
            err(serde_json::json!({"verb": "get", "resource": "pods", "count": 1, "status": 200}))
                .starts_with("status: 200")
        );
        assert!(
            err(serde_json::json!({"verb": "get", "resource": "pods", "count": 1, "sttus": 500}))
                .contains("unknown field")
        );
    }
}
