//! Validating admission: ValidatingAdmissionPolicies and their bindings, evaluated on every write.
//!
//! Follows `k8s.io/apiserver/pkg/admission/plugin/policy/validating`: a binding applies its policy when
//! the policy's `matchConstraints` and the binding's `matchResources` both match the request, then the
//! policy's `matchConditions` decide whether it is relevant, its `variables` are computed and each
//! `validation` is evaluated with CEL (the `kube-cel` function library) over `object`, `oldObject`,
//! `request`, `params`, `namespaceObject` and `variables`. The binding's `validationActions` say what a
//! failure does: `Deny` rejects with the real server's wording, `Warn` adds a warning, `Audit` is ignored.
//! Evaluation errors follow the policy's `failurePolicy`. Policies and bindings themselves are exempt, as
//! on the real server. The `authorizer` variable and type checking are not supported.

use crate::auth::UserInfo;
use crate::error::{ApiError, Cause, Details, qualified_resource};
use crate::meta;
use crate::registry::Registry;
use crate::selector::LabelSelector;
use crate::store::{ObjectKey, Store};
use kube_cel::KubeCelExt;
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, Program, Value as Cel};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const GROUP: &str = "admissionregistration.k8s.io";

/// The admission operation, as `request.operation` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    /// A streaming subresource (`pods/exec`, `pods/attach`) is connected to.
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }
}

/// One write, as admission policies see it.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionRequest<'a> {
    pub operation: Operation,
    pub user: &'a UserInfo,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub kind: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    /// The object after the write (`None` for deletes).
    pub object: Option<&'a Value>,
    /// The object before the write (`None` for creates).
    pub old_object: Option<&'a Value>,
    pub dry_run: bool,
    /// The group, version and kind of the object the request carries when it is not the
    /// resource's own: a subresource's kind, such as `policy/v1` `Eviction` for `pods/eviction`.
    pub body_kind: Option<(&'a str, &'a str, &'a str)>,
}

impl AdmissionRequest<'_> {
    /// `kind` (and `requestKind`) of an AdmissionRequest: `{group, version, kind}`.
    pub(crate) fn kind_json(&self) -> Value {
        let (group, version, kind) = self.body_kind.unwrap_or((self.group, self.version, self.kind));
        json!({"group": group, "version": version, "kind": kind})
    }
}

/// Runs every matching policy. Returns the warnings of `Warn` bindings; a `Deny` failure is the error.
pub fn admit(store: &Store, registry: &Registry, request: &AdmissionRequest<'_>) -> Result<Vec<String>, ApiError> {
    if request.group == GROUP {
        return Ok(Vec::new());
    }
    let bindings = store.list(GROUP, "validatingadmissionpolicybindings", None).objects;
    let mut warnings = Vec::new();
    for binding in bindings {
        let policy_name = meta::str_at(&binding, "/spec/policyName");
        let Some(policy) = store.get(&ObjectKey::new(GROUP, "validatingadmissionpolicies", "", policy_name)) else {
            continue;
        };
        let namespace_object = request.namespace.and_then(|ns| store.get(&ObjectKey::new("", "namespaces", "", ns)));
        let policy_constraints = policy.pointer("/spec/matchConstraints");
        let binding_constraints = binding.pointer("/spec/matchResources");
        if !constraints_match(policy_constraints, request, namespace_object.as_deref())
            || binding_constraints.is_some_and(|c| !constraints_match(Some(c), request, namespace_object.as_deref()))
        {
            continue;
        }
        let evaluation = PolicyEvaluation {
            policy: &policy,
            binding: &binding,
            request,
            namespace_object: namespace_object.as_deref(),
        };
        for failure in evaluation.run(store, registry) {
            let actions = strings(binding.pointer("/spec/validationActions"));
            tracing::info!(
                policy = evaluation.policy_name(),
                binding = evaluation.binding_name(),
                operation = request.operation.as_str(),
                resource = request.resource,
                name = request.name,
                message = %failure.message,
                actions = ?actions,
                "admission policy failed"
            );
            if actions.iter().any(|a| a == "Warn") {
                warnings.push(format!(
                    "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {}",
                    evaluation.policy_name(),
                    evaluation.binding_name(),
                    failure.message
                ));
            }
            if actions.iter().any(|a| a == "Deny") {
                return Err(denial(&evaluation, request, &failure));
            }
        }
    }
    Ok(warnings)
}

/// One failed validation (or evaluation error under `failurePolicy: Fail`).
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    message: String,
    /// `Forbidden`, `Unauthorized`, `RequestEntityTooLarge` or `Invalid` (the default).
    reason: String,
}

/// The real server's rejection: `<resource> "<name>" is forbidden: ValidatingAdmissionPolicy 'p' with
/// binding 'b' denied request: <message>`, with the validation's reason and its status code.
fn denial(evaluation: &PolicyEvaluation<'_>, request: &AdmissionRequest<'_>, failure: &Failure) -> ApiError {
    let message = format!(
        "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {}",
        evaluation.policy_name(),
        evaluation.binding_name(),
        failure.message
    );
    let qualified = qualified_resource(request.group, request.resource);
    let subject = if request.name.is_empty() { qualified } else { format!("{qualified} \"{}\"", request.name) };
    let code = match failure.reason.as_str() {
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    };
    ApiError::new(code, &failure.reason, format!("{subject} is forbidden: {message}")).with_details(Details {
        name: request.name.to_string(),
        group: request.group.to_string(),
        kind: request.resource.to_string(),
        causes: vec![Cause::new("", "", message)],
        retry_after_seconds: None,
    })
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Whether a `MatchResources` (`resourceRules`, `excludeResourceRules`, `namespaceSelector`,
/// `objectSelector`) matches the request. A policy without `matchConstraints` matches nothing.
fn constraints_match(constraints: Option<&Value>, request: &AdmissionRequest<'_>, namespace: Option<&Value>) -> bool {
    let Some(constraints) = constraints else { return false };
    let rules = |field: &str| constraints.get(field).and_then(Value::as_array).cloned().unwrap_or_default();
    if !rules("resourceRules").iter().any(|r| rule_matches(r, request)) {
        return false;
    }
    if rules("excludeResourceRules").iter().any(|r| rule_matches(r, request)) {
        return false;
    }
    let namespace_ok = match constraints.get("namespaceSelector") {
        None => true,
        Some(selector) => {
            let labelled = if request.group.is_empty() && request.resource == "namespaces" {
                request.object.or(request.old_object)
            } else if request.namespace.is_some() {
                namespace
            } else {
                // Cluster-scoped objects other than namespaces always match a namespaceSelector.
                return object_selector_matches(constraints, request);
            };
            labelled.is_some_and(|o| selector_matches(selector, o))
        }
    };
    namespace_ok && object_selector_matches(constraints, request)
}

fn object_selector_matches(constraints: &Value, request: &AdmissionRequest<'_>) -> bool {
    match constraints.get("objectSelector") {
        None => true,
        Some(selector) => {
            [request.object, request.old_object].into_iter().flatten().any(|o| selector_matches(selector, o))
        }
    }
}

/// A `NamedRuleWithOperations`: groups, versions, operations, resources (`res/sub`, `*`, `*/*`),
/// resourceNames and scope.
pub(crate) fn rule_matches(rule: &Value, request: &AdmissionRequest<'_>) -> bool {
    let has = |field: &str, value: &str| strings(rule.get(field)).iter().any(|v| v == "*" || v == value);
    let resource = strings(rule.get("resources")).iter().any(|pattern| {
        let (res, sub) = pattern.split_once('/').unwrap_or((pattern, ""));
        (res == "*" || res == request.resource) && (sub == "*" || sub == request.subresource.unwrap_or(""))
    });
    let names = strings(rule.get("resourceNames"));
    let scope = match meta::str_at(rule, "/scope") {
        "Cluster" => request.namespace.is_none(),
        "Namespaced" => request.namespace.is_some(),
        _ => true,
    };
    has("apiGroups", request.group)
        && has("apiVersions", request.version)
        && has("operations", request.operation.as_str())
        && resource
        && (names.is_empty() || names.iter().any(|n| n == request.name))
        && scope
}

/// Whether an object's labels satisfy a structured `LabelSelector` (`matchLabels`, `matchExpressions`).
/// A selector that cannot be understood matches nothing.
pub(crate) fn selector_matches(selector: &Value, object: &Value) -> bool {
    let mut requirements: Vec<String> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for expression in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = meta::str_at(expression, "/key");
        let values = strings(expression.get("values")).join(",");
        requirements.push(match meta::str_at(expression, "/operator") {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return false,
        });
    }
    LabelSelector::parse(&requirements.join(",")).is_ok_and(|s| s.matches(object))
}

/// Converts JSON to CEL: integers stay `int`, as the API server's CEL typing of JSON does.
fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cel::Int(i),
            None => n.as_u64().map(Cel::UInt).unwrap_or_else(|| Cel::Float(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => Cel::Map(Map {
            map: Arc::new(
                map.iter().map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v))).collect::<HashMap<_, _>>(),
            ),
        }),
    }
}

/// The `request` variable: an `admission.k8s.io/v1` `AdmissionRequest` without the objects.
pub(crate) fn request_variable(request: &AdmissionRequest<'_>) -> Value {
    let kind = request.kind_json();
    let resource = json!({"group": request.group, "version": request.version, "resource": request.resource});
    let subresource = request.subresource.unwrap_or("");
    json!({
        "kind": kind,
        "resource": resource,
        "subResource": subresource,
        "requestKind": kind,
        "requestResource": resource,
        "requestSubResource": subresource,
        "name": request.name,
        "namespace": request.namespace.unwrap_or(""),
        "operation": request.operation.as_str(),
        "userInfo": {
            "username": request.user.username,
            "uid": request.user.uid,
            "groups": request.user.groups,
            "extra": request.user.extra,
        },
        "dryRun": request.dry_run,
    })
}

/// Evaluating one policy through one binding.
struct PolicyEvaluation<'a> {
    policy: &'a Value,
    binding: &'a Value,
    request: &'a AdmissionRequest<'a>,
    namespace_object: Option<&'a Value>,
}

/// Why an expression could not produce a boolean.
#[derive(Debug)]
struct EvalError(String);

/// Compiled programs by expression: policies change rarely, requests often.
static PROGRAMS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Arc<Program>>>> =
    std::sync::LazyLock::new(Default::default);
/// Distinct expressions kept compiled; past it the cache starts over.
const PROGRAM_CACHE_LIMIT: usize = 1024;

fn compiled(expression: &str) -> Result<Arc<Program>, EvalError> {
    let mut programs = PROGRAMS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(program) = programs.get(expression) {
        return Ok(program.clone());
    }
    let program = Arc::new(Program::compile(expression).map_err(|e| EvalError(format!("compilation failed: {e}")))?);
    if programs.len() >= PROGRAM_CACHE_LIMIT {
        programs.clear();
    }
    programs.insert(expression.to_owned(), program.clone());
    Ok(program)
}

/// Whether `expression` compiles; the compiler's message when it does not, as validation reports it.
pub(crate) fn compile(expression: &str) -> Result<(), String> {
    compiled(expression).map(|_| ()).map_err(|EvalError(e)| e)
}

thread_local! {
    /// The CEL functions, standard and Kubernetes': registering them is costlier than most
    /// evaluations, so each thread does it once and every evaluation runs in a scope of its own
    /// below them, holding just its variables.
    static FUNCTIONS: Context<'static> = {
        let mut context = Context::default();
        context.register_all();
        context
    };
}

/// Runs `evaluate` with a fresh scope over the CEL functions.
fn with_scope<T>(evaluate: impl FnOnce(Context<'_>) -> T) -> T {
    FUNCTIONS.with(|functions| evaluate(functions.new_inner_scope()))
}

/// Evaluates match conditions (webhooks' `matchConditions`) over `object`, `oldObject` and
/// `request`: `Ok(false)` as soon as one is false, the first error as `Err` naming the condition.
pub(crate) fn conditions_hold(conditions: &[Value], request: &AdmissionRequest<'_>) -> Result<bool, String> {
    if conditions.is_empty() {
        return Ok(true);
    }
    with_scope(|mut context| {
        context.add_variable_from_value("request", to_cel(&request_variable(request)));
        context.add_variable_from_value("object", request.object.map(to_cel).unwrap_or(Cel::Null));
        context.add_variable_from_value("oldObject", request.old_object.map(to_cel).unwrap_or(Cel::Null));
        for condition in conditions {
            match evaluate_bool(&context, meta::str_at(condition, "/expression")) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(EvalError(e)) => {
                    let name = meta::str_at(condition, "/name");
                    return Err(format!("failed to evaluate matchCondition '{name}': {e}"));
                }
            }
        }
        Ok(true)
    })
}

fn evaluate(context: &Context<'_>, expression: &str) -> Result<Cel, EvalError> {
    compiled(expression)?.execute(context).map_err(|e| EvalError(e.to_string()))
}

/// Whether `expression` may read the request's objects: it names `object`, `oldObject`,
/// `namespaceObject`, or `variables` and `authorizer`, which may read them in turn. Match conditions
/// that cannot are evaluated before the objects are converted to CEL, the costly part, which most
/// requests a policy does not match then never pay for.
fn may_read_objects(expression: &str) -> bool {
    ["object", "Object", "variables", "authorizer"].iter().any(|name| expression.contains(name))
}

fn evaluate_bool(context: &Context<'_>, expression: &str) -> Result<bool, EvalError> {
    match evaluate(context, expression)? {
        Cel::Bool(b) => Ok(b),
        other => Err(EvalError(format!("expected a boolean, got {other:?}"))),
    }
}

impl PolicyEvaluation<'_> {
    fn policy_name(&self) -> &str {
        meta::str_at(self.policy, "/metadata/name")
    }

    fn binding_name(&self) -> &str {
        meta::str_at(self.binding, "/metadata/name")
    }

    fn fail_closed(&self) -> bool {
        meta::str_at(self.policy, "/spec/failurePolicy") != "Ignore"
    }

    /// An evaluation error as the policy's failurePolicy says: a failure, or nothing.
    fn on_error(&self, message: String) -> Option<Failure> {
        tracing::warn!(policy = self.policy_name(), binding = self.binding_name(), error = %message, "admission policy evaluation error");
        self.fail_closed().then(|| Failure { message, reason: "Invalid".into() })
    }

    /// The failures of this policy for the request: one per failing validation per param object.
    fn run(&self, store: &Store, registry: &Registry) -> Vec<Failure> {
        let params = match self.params(store, registry) {
            Ok(params) => params,
            Err(failure) => return failure.into_iter().collect(),
        };
        params.iter().flat_map(|p| self.run_with(p.as_deref())).collect()
    }

    /// The param objects to evaluate against: `[None]` without `paramKind`, else the objects `paramRef`
    /// selects. No params is an empty list under `parameterNotFoundAction: Allow`, a failure under `Deny`.
    fn params(&self, store: &Store, registry: &Registry) -> Result<Vec<Option<Arc<Value>>>, Option<Failure>> {
        let Some(param_kind) = self.policy.pointer("/spec/paramKind") else { return Ok(vec![None]) };
        let Some(param_ref) = self.binding.pointer("/spec/paramRef") else {
            return Err(self.on_error(format!(
                "policy '{}' has paramKind but binding '{}' has no paramRef",
                self.policy_name(),
                self.binding_name()
            )));
        };
        let api_version = meta::str_at(param_kind, "/apiVersion");
        let kind = meta::str_at(param_kind, "/kind");
        let Some(info) = registry.by_kind(api_version, kind) else {
            return Err(
                self.on_error(format!("failed to find resource referenced by paramKind: '{api_version}, Kind={kind}'"))
            );
        };
        let namespace = match (meta::str_at(param_ref, "/namespace"), info.namespaced) {
            (_, false) => "",
            ("", true) => self.request.namespace.unwrap_or(""),
            (ns, true) => ns,
        };
        let found: Vec<Option<Arc<Value>>> = match meta::str_at(param_ref, "/name") {
            "" => {
                let selector = param_ref.get("selector").cloned().unwrap_or_else(|| json!({}));
                let scope = (!namespace.is_empty()).then_some(namespace);
                store
                    .list(&info.group, &info.resource, scope)
                    .objects
                    .into_iter()
                    .filter(|o| selector_matches(&selector, o))
                    .map(Some)
                    .collect()
            }
            name => {
                store.get(&ObjectKey::new(&info.group, &info.resource, namespace, name)).map(Some).into_iter().collect()
            }
        };
        if !found.is_empty() {
            return Ok(found);
        }
        if meta::str_at(param_ref, "/parameterNotFoundAction") == "Allow" {
            return Ok(Vec::new());
        }
        Err(Some(Failure {
            message: "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
            reason: "Invalid".into(),
        }))
    }

    /// Adds the `request` and `params` variables, not yet the objects.
    fn add_request(&self, context: &mut Context<'_>, params: Option<&Value>) {
        context.add_variable_from_value("request", to_cel(&request_variable(self.request)));
        context.add_variable_from_value("params", params.map(to_cel).unwrap_or(Cel::Null));
    }

    fn add_objects(&self, context: &mut Context<'_>) {
        context.add_variable_from_value("object", self.request.object.map(to_cel).unwrap_or(Cel::Null));
        context.add_variable_from_value("oldObject", self.request.old_object.map(to_cel).unwrap_or(Cel::Null));
        context.add_variable_from_value("namespaceObject", self.namespace_object.map(to_cel).unwrap_or(Cel::Null));
    }

    #[cfg(test)]
    fn with_context<T>(&self, params: Option<&Value>, evaluate: impl FnOnce(&Context<'_>) -> T) -> T {
        with_scope(|mut context| {
            self.add_request(&mut context, params);
            self.add_objects(&mut context);
            evaluate(&context)
        })
    }

    fn run_with(&self, params: Option<&Value>) -> Vec<Failure> {
        with_scope(|context| self.run_in(context, params))
    }

    fn run_in(&self, mut context: Context<'_>, params: Option<&Value>) -> Vec<Failure> {
        let list = |field: &str| {
            self.policy
                .get("spec")
                .and_then(|spec| spec.get(field))
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
        };
        let conditions = list("matchConditions");
        let objects_first = conditions.iter().any(|c| may_read_objects(meta::str_at(c, "/expression")));
        self.add_request(&mut context, params);
        if objects_first {
            self.add_objects(&mut context);
        }
        for condition in conditions {
            let expression = meta::str_at(condition, "/expression");
            match evaluate_bool(&context, expression) {
                Ok(true) => {}
                Ok(false) => return Vec::new(),
                Err(EvalError(e)) => {
                    let name = meta::str_at(condition, "/name");
                    return self
                        .on_error(format!("failed to evaluate matchCondition '{name}': {e}"))
                        .into_iter()
                        .collect();
                }
            }
        }
        if !objects_first {
            self.add_objects(&mut context);
        }
        let mut variables = HashMap::new();
        for variable in list("variables") {
            let name = meta::str_at(variable, "/name").to_string();
            match evaluate(&context, meta::str_at(variable, "/expression")) {
                Ok(value) => {
                    variables.insert(Key::String(Arc::new(name)), value);
                    context.add_variable_from_value("variables", Cel::Map(Map { map: Arc::new(variables.clone()) }));
                }
                Err(EvalError(e)) => {
                    return self.on_error(format!("variable '{name}' resulted in error: {e}")).into_iter().collect();
                }
            }
        }
        let mut failures = Vec::new();
        for validation in list("validations") {
            let expression = meta::str_at(validation, "/expression");
            let reason = match meta::str_at(validation, "/reason") {
                "" => "Invalid".to_string(),
                r => r.to_string(),
            };
            match evaluate_bool(&context, expression) {
                Ok(true) => {}
                Ok(false) => failures.push(Failure { message: self.message(&context, validation), reason }),
                Err(EvalError(e)) => {
                    failures.extend(self.on_error(format!("expression '{expression}' resulted in error: {e}")));
                }
            }
        }
        failures
    }

    /// A failed validation's message: `messageExpression` if it yields a non-empty string, else `message`,
    /// else the real server's `failed expression: <expression>`.
    fn message(&self, context: &Context<'_>, validation: &Value) -> String {
        let from_expression = match meta::str_at(validation, "/messageExpression") {
            "" => None,
            expression => match evaluate(context, expression) {
                Ok(Cel::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                _ => None,
            },
        };
        from_expression.unwrap_or_else(|| match meta::str_at(validation, "/message") {
            "" => format!("failed expression: {}", meta::str_at(validation, "/expression").trim()),
            m => m.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_conditions_that_may_read_the_objects_are_told_apart() {
        for expression in [
            "request.userInfo.username.startsWith('system:serviceaccount:')",
            "request.userInfo.username != 'system:serviceaccount:' + params.metadata.namespace",
        ] {
            assert!(!may_read_objects(expression), "{expression}");
        }
        for expression in [
            "has(object.status)",
            "oldObject.metadata.name == 'a'",
            "namespaceObject.metadata.labels['x'] == 'y'",
            "variables.owner == request.userInfo.username",
            "authorizer.group('').resource('pods').check('get').allowed()",
        ] {
            assert!(may_read_objects(expression), "{expression}");
        }
    }

    #[test]
    fn programs_are_compiled_once_per_expression() {
        let first = compiled("1 + 1 == 2").expect("compiles");
        assert!(Arc::ptr_eq(&first, &compiled("1 + 1 == 2").expect("compiles")));
        let Err(EvalError(error)) = compiled("1 +") else { panic!("a syntax error compiles") };
        assert!(error.starts_with("compilation failed: "), "{error}");
    }

    fn request<'a>(
        user: &'a UserInfo,
        object: Option<&'a Value>,
        subresource: Option<&'a str>,
    ) -> AdmissionRequest<'a> {
        AdmissionRequest {
            operation: Operation::Update,
            user,
            group: "review.ao.dev",
            version: "v1alpha1",
            resource: "reviewruns",
            kind: "ReviewRun",
            subresource,
            namespace: Some("ns"),
            name: "x",
            object,
            old_object: object,
            dry_run: false,
            body_kind: None,
        }
    }

    #[test]
    fn resource_rules_match_groups_operations_and_subresources() {
        let user = UserInfo::default();
        let rule = |resources: Value| json!({"apiGroups": ["review.ao.dev"], "apiVersions": ["*"], "operations": ["UPDATE", "DELETE"], "resources": resources});
        let main = request(&user, None, None);
        let status = request(&user, None, Some("status"));
        assert!(rule_matches(&rule(json!(["reviewruns"])), &main));
        assert!(!rule_matches(&rule(json!(["reviewruns"])), &status));
        assert!(rule_matches(&rule(json!(["reviewruns/status"])), &status));
        assert!(rule_matches(&rule(json!(["reviewruns/*"])), &status));
        assert!(!rule_matches(&rule(json!(["*"])), &status));
        assert!(rule_matches(&rule(json!(["*/*"])), &status));
        assert!(rule_matches(&rule(json!(["*"])), &main));
        let mut create = main;
        create.operation = Operation::Create;
        assert!(!rule_matches(&rule(json!(["reviewruns"])), &create));
        let mut other_group = rule(json!(["reviewruns"]));
        other_group["apiGroups"] = json!([""]);
        assert!(!rule_matches(&other_group, &main));
        let mut cluster_scoped = rule(json!(["*"]));
        cluster_scoped["scope"] = json!("Cluster");
        assert!(!rule_matches(&cluster_scoped, &main));
        let mut named = rule(json!(["*"]));
        named["resourceNames"] = json!(["y"]);
        assert!(!rule_matches(&named, &main));
    }

    #[test]
    fn selectors_and_exclusions() {
        let user = UserInfo::default();
        let object = json!({"metadata": {"labels": {"team": "a", "tier": "web"}}});
        let req = request(&user, Some(&object), None);
        assert!(selector_matches(&json!({"matchLabels": {"team": "a"}}), &object));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "db"]}]}),
            &object
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
            &object
        ));
        assert!(!selector_matches(&json!({"matchExpressions": [{"key": "tier", "operator": "Sideways"}]}), &object));
        assert!(selector_matches(&json!({}), &object));
        let all = json!({"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]});
        let ns = json!({"metadata": {"name": "ns", "labels": {"env": "dev"}}});
        assert!(constraints_match(Some(&json!({"resourceRules": [all]})), &req, Some(&ns)));
        assert!(!constraints_match(
            Some(&json!({"resourceRules": [all], "excludeResourceRules": [all]})),
            &req,
            Some(&ns)
        ));
        assert!(!constraints_match(
            Some(&json!({"resourceRules": [all], "namespaceSelector": {"matchLabels": {"env": "prod"}}})),
            &req,
            Some(&ns)
        ));
        assert!(constraints_match(
            Some(&json!({"resourceRules": [all], "objectSelector": {"matchLabels": {"team": "a"}}})),
            &req,
            Some(&ns)
        ));
        assert!(!constraints_match(None, &req, Some(&ns)));
    }

    #[test]
    fn the_request_variable_carries_user_extras_and_subresource() {
        let mut user = UserInfo { username: "system:serviceaccount:ns:sa".into(), ..UserInfo::default() };
        user.extra.insert("authentication.kubernetes.io/pod-uid".into(), vec!["u-1".into()]);
        let object = json!({"status": {"assignment": {"podUID": "u-1"}}, "spec": {"replicas": 3}});
        let req = request(&user, Some(&object), Some("status"));
        let policy = json!({"metadata": {"name": "p"}, "spec": {}});
        let binding = json!({"metadata": {"name": "b"}});
        let evaluation = PolicyEvaluation { policy: &policy, binding: &binding, request: &req, namespace_object: None };
        evaluation.with_context(None, |context| {
            for expression in [
                "request.userInfo.extra['authentication.kubernetes.io/pod-uid'][0] == object.status.assignment.podUID",
                "request.subResource == 'status' && request.operation == 'UPDATE'",
                "object.spec.replicas >= 0 && params == null && oldObject.spec.replicas == 3",
                "request.resource.resource == 'reviewruns' && request.kind.kind == 'ReviewRun'",
            ] {
                assert!(evaluate_bool(context, expression).unwrap(), "{expression}");
            }
            assert!(evaluate_bool(context, "object.spec.missing == 1").is_err());
            assert!(evaluate_bool(context, "'not a bool'").is_err());
        });
        // Variables of one evaluation are not seen by the next on the same thread.
        with_scope(|context| assert!(evaluate(&context, "request").is_err()));
    }

    #[test]
    fn messages_prefer_message_expression_then_message_then_the_expression() {
        let user = UserInfo::default();
        let object = json!({"spec": {"replicas": 3}});
        let req = request(&user, Some(&object), None);
        let policy = json!({"metadata": {"name": "p"}, "spec": {}});
        let binding = json!({"metadata": {"name": "b"}});
        let evaluation = PolicyEvaluation { policy: &policy, binding: &binding, request: &req, namespace_object: None };
        evaluation.with_context(None, |context| {
            let v = |v: Value| evaluation.message(context, &v);
            assert_eq!(
                v(json!({"expression": "false", "message": "m", "messageExpression": "'n=' + string(object.spec.replicas)"})),
                "n=3"
            );
            assert_eq!(v(json!({"expression": "false", "message": "m", "messageExpression": "''"})), "m");
            assert_eq!(v(json!({"expression": " false "})), "failed expression: false");
        });
    }
}
