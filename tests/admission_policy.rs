//! The CEL of `deploy/admission-policy.yaml`, evaluated on realistic requests.
//!
//! kube-cel's evaluator binds `request.userInfo` without `extra`, so the
//! expressions are evaluated with `request.userInfo.extra` read from
//! `params.extra` instead (bound to the request's extra; absent when the
//! user has none). kube-cel also escapes JSON object keys as the API server
//! escapes CRD property names (`.` → `__dot__`, ...), which the API server
//! does not do for `extra`'s keys, so the key literal is escaped to match.
//! `params` also holds what the binding's param, the controller's
//! ServiceAccount, contributes: its name and namespace (`namespace`, a CEL
//! reserved word, is one of the keys kube-cel escapes).
//! Everything else is the shipped text.

use kube_cel::{AdmissionRequest, GroupVersionResource, VapEvaluator, VapExpression};
use serde::Deserialize;
use serde_json::{Value, json};

const POLICY: &str = include_str!("../deploy/admission-policy.yaml");
const CONTROLLER: &str = "system:serviceaccount:review-system:review-operator";
const REVIEWER_SA: &str = "system:serviceaccount:team:review-agent";

fn policy() -> Value {
    policy_named("review-operator-submissions")
}

fn policy_named(name: &str) -> Value {
    serde_yaml::Deserializer::from_str(POLICY)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .find(|doc| doc["kind"] == "ValidatingAdmissionPolicy" && doc["metadata"]["name"] == name)
        .expect("the policy document")
}

const POD_UID_KEY: &str = "authentication.kubernetes.io/pod-uid";
const POD_NAME_KEY: &str = "authentication.kubernetes.io/pod-name";

/// kube-cel's escaping of object keys (`_`, `.`, `-`, `/`).
fn escaped(key: &str) -> String {
    key.replace('_', "__").replace('.', "__dot__").replace('-', "__dash__").replace('/', "__slash__")
}

fn with_params(expression: &str) -> String {
    expression
        .replace("request.userInfo.extra", "params.extra")
        .replace(&format!("'{POD_UID_KEY}'"), &format!("'{}'", escaped(POD_UID_KEY)))
        .replace(&format!("'{POD_NAME_KEY}'"), &format!("'{}'", escaped(POD_NAME_KEY)))
        .replace("params.metadata.namespace", "params.metadata.__namespace__")
}

fn expressions(list: &Value) -> Vec<VapExpression> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| VapExpression {
            expression: with_params(item["expression"].as_str().unwrap()),
            message: item["message"].as_str().map(str::to_owned),
            message_expression: item["messageExpression"].as_str().map(with_params),
        })
        .collect()
}

fn run(status: Value) -> Value {
    json!({
        "apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewRun",
        "metadata": {"name": "r1", "namespace": "team"},
        "spec": {"reviewer": "review-w1", "pullRequest": {"url": "https://github.com/a/b/pull/1", "headSha": "abcdef1"}},
        "status": status,
    })
}

fn assignment() -> Value {
    json!({"pod": "review-w1-2", "podUID": "uid-2", "incarnation": 2})
}

fn running() -> Value {
    run(json!({"phase": "Running", "assignment": assignment()}))
}

fn submitted() -> Value {
    run(json!({"phase": "Succeeded", "reason": "Submitted", "assignment": assignment(),
        "result": {"verdict": "Approved", "body": "", "submittedAt": "2026-01-01T00:00:00Z"}}))
}

fn pod_extra(uid: &str) -> Value {
    json!({"authentication.kubernetes.io/pod-uid": [uid], "authentication.kubernetes.io/pod-name": ["p"]})
}

/// `None` when the policy does not match the request; else the messages of failed validations.
fn admit(username: &str, extra: Option<Value>, old: Value, new: Value) -> Option<Vec<String>> {
    admit_to(&policy(), "UPDATE", "reviewruns", username, extra, Some(old), new)
}

fn admit_to(
    policy: &Value,
    operation: &str,
    resource: &str,
    username: &str,
    extra: Option<Value>,
    old: Option<Value>,
    new: Value,
) -> Option<Vec<String>> {
    // The binding's param: the controller's ServiceAccount.
    let mut params = json!({"metadata": {"name": "review-operator", "namespace": "review-system"}});
    if let Some(extra) = extra {
        params["extra"] = extra;
    }
    let name = new["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let builder = VapEvaluator::builder().object(new).params(params).request(AdmissionRequest {
        operation: operation.into(),
        username: username.into(),
        name,
        namespace: "team".into(),
        resource: GroupVersionResource {
            group: "review.ao.dev".into(),
            version: "v1alpha1".into(),
            resource: resource.into(),
        },
        ..AdmissionRequest::default()
    });
    let evaluator = match old {
        Some(old) => builder.old_object(old),
        None => builder,
    }
    .build();
    let conditions = evaluator.evaluate(&expressions(&policy["spec"]["matchConditions"]));
    for condition in &conditions {
        assert!(
            condition.passed || condition.message.as_deref().is_some_and(|m| !m.contains("error")),
            "{condition:?}"
        );
    }
    if !conditions.iter().all(|c| c.passed) {
        return None;
    }
    let results = evaluator.evaluate(&expressions(&policy["spec"]["validations"]));
    Some(results.into_iter().filter(|r| !r.passed).filter_map(|r| r.message).collect())
}

#[test]
fn the_assigned_pod_may_submit() {
    assert_eq!(admit(REVIEWER_SA, Some(pod_extra("uid-2")), running(), submitted()), Some(vec![]));
}

#[test]
fn another_pod_is_denied_with_the_assigned_pod_named() {
    let denied = admit(REVIEWER_SA, Some(pod_extra("uid-9")), running(), submitted()).unwrap();
    assert_eq!(denied, ["run r1 is assigned to pod review-w1-2 (incarnation 2); only that pod may submit its verdict"]);
}

#[test]
fn a_token_without_a_pod_is_denied() {
    let denied = admit(REVIEWER_SA, None, running(), submitted()).unwrap();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].starts_with("run r1 is assigned to pod review-w1-2"), "{denied:?}");
}

#[test]
fn the_controller_and_people_are_not_matched() {
    let failed = run(json!({"phase": "Failed", "reason": "Superseded", "assignment": assignment()}));
    assert_eq!(admit(CONTROLLER, None, running(), failed.clone()), None);
    assert_eq!(admit("kubernetes-admin", None, running(), failed), None);
}

#[test]
fn a_run_that_is_not_running_is_denied() {
    let failed =
        run(json!({"phase": "Failed", "reason": "Superseded", "supersededBy": "r2", "assignment": assignment()}));
    let denied = admit(REVIEWER_SA, Some(pod_extra("uid-2")), failed, submitted()).unwrap();
    assert!(
        denied.contains(&"run r1 is Failed; a reviewer may only submit the verdict of a Running run".to_owned()),
        "{denied:?}"
    );
}

const ONLY_MOVES: &str =
    "a reviewer may only move its run from Running to Succeeded with a result, or to Failed with reason CheckoutFailed";

#[test]
fn only_the_move_to_succeeded_with_a_result_or_a_failed_checkout_is_allowed() {
    let cancelled = run(json!({"phase": "Failed", "reason": "Cancelled", "assignment": assignment()}));
    let denied = admit(REVIEWER_SA, Some(pod_extra("uid-2")), running(), cancelled).unwrap();
    assert_eq!(denied, [ONLY_MOVES]);
    let checkout = json!({"phase": "Failed", "reason": "CheckoutFailed", "message": "m", "assignment": assignment()});
    assert_eq!(admit(REVIEWER_SA, Some(pod_extra("uid-2")), running(), run(checkout.clone())), Some(vec![]));
    let mut with_result = checkout;
    with_result["result"] = submitted()["status"]["result"].clone();
    let denied = admit(REVIEWER_SA, Some(pod_extra("uid-2")), running(), run(with_result)).unwrap();
    assert_eq!(denied, [ONLY_MOVES]);
    let mut reassigned = submitted();
    reassigned["status"]["assignment"]["podUID"] = json!("uid-9");
    let denied = admit(REVIEWER_SA, Some(pod_extra("uid-2")), running(), reassigned).unwrap();
    assert_eq!(denied, ["a reviewer may not change the run's assignment"]);
}

#[test]
fn the_binding_denies_with_the_policy() {
    let binding = serde_yaml::Deserializer::from_str(POLICY)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .find(|doc| doc["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("the binding document");
    assert_eq!(binding["spec"]["policyName"], policy()["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert_eq!(
        binding["spec"]["paramRef"],
        json!({"name": "review-operator", "namespace": "review-system", "parameterNotFoundAction": "Deny"})
    );
    assert_eq!(policy()["spec"]["paramKind"], json!({"apiVersion": "v1", "kind": "ServiceAccount"}));
    assert_eq!(policy()["spec"]["matchConstraints"]["resourceRules"][0]["resources"], json!(["reviewruns/status"]));
}

fn transcript(pod: &str, pod_uid: &str) -> Value {
    json!({
        "apiVersion": "review.ao.dev/v1alpha1", "kind": "ReviewTranscript",
        "metadata": {"name": pod, "namespace": "team"},
        "spec": {"reviewer": "review-w1", "pod": pod, "podUID": pod_uid, "incarnation": 2, "data": ""},
    })
}

fn pod_token(name: &str, uid: &str) -> Value {
    json!({POD_UID_KEY: [uid], POD_NAME_KEY: [name]})
}

#[test]
fn a_pod_writes_only_its_own_transcript() {
    let policy = policy_named("review-operator-transcripts");
    let own = transcript("review-w1-2", "uid-2");
    let admit = |operation, extra, old: Option<Value>, new: Value| {
        admit_to(&policy, operation, "reviewtranscripts", REVIEWER_SA, extra, old, new)
    };
    assert_eq!(admit("CREATE", Some(pod_token("review-w1-2", "uid-2")), None, own.clone()), Some(vec![]));
    assert_eq!(admit("UPDATE", Some(pod_token("review-w1-2", "uid-2")), Some(own.clone()), own.clone()), Some(vec![]));
    let denied = "transcript review-w1-2 belongs to pod review-w1-2; a reviewer pod may only write its own transcript";
    // Another pod, by name or by UID; a token bound to no pod.
    assert_eq!(admit("CREATE", Some(pod_token("review-w2-1", "uid-9")), None, own.clone()).unwrap(), [denied]);
    assert_eq!(
        admit("UPDATE", Some(pod_token("review-w1-2", "uid-9")), Some(own.clone()), own.clone()).unwrap(),
        [denied]
    );
    assert_eq!(admit("CREATE", None, None, own.clone()).unwrap(), [denied]);
    // A pod of the same name from before (a re-created Reviewer) keeps its own transcript.
    let earlier = transcript("review-w1-2", "uid-old");
    assert_eq!(admit("UPDATE", Some(pod_token("review-w1-2", "uid-2")), Some(earlier), own.clone()).unwrap(), [denied]);
    // The controller (pruning is a delete, and not matched anyway) and people are not matched.
    let by = |user: &str| admit_to(&policy, "UPDATE", "reviewtranscripts", user, None, Some(own.clone()), own.clone());
    assert_eq!(by(CONTROLLER), None);
    assert_eq!(by("kubernetes-admin"), None);
}
