//! End-to-end tests of `CrdSchema` with a realistic review CRD schema.

use super::*;
use serde_json::json;

fn review_schema() -> Value {
    json!({
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.spec.a <= self.spec.b", "message": "a must not exceed b"}
        ],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["headSha", "mode"],
                "x-kubernetes-validations": [
                    {"rule": "self.reviewers.size() <= 3",
                     "messageExpression": "'too many reviewers: ' + string(self.reviewers.size())"}
                ],
                "properties": {
                    "headSha": {"type": "string", "pattern": "^[0-9a-f]{7,64}$"},
                    "mode": {"type": "string", "enum": ["fast", "thorough"], "default": "fast"},
                    "a": {"type": "integer", "default": 0},
                    "b": {"type": "integer", "default": 10, "maximum": 100},
                    "repo": {
                        "type": "string",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "repo is immutable"}]
                    },
                    "reviewers": {"type": "array", "default": [], "items": {"type": "string", "minLength": 1}},
                    "pullRequest": {
                        "type": "object",
                        "properties": {
                            "number": {"type": "integer", "minimum": 1},
                            "url": {"type": "string", "format": "uri"}
                        }
                    },
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            },
            "status": {
                "type": "object",
                "properties": {"phase": {"type": "string"}}
            }
        }
    })
}

fn compiled() -> CrdSchema {
    let context = SchemaContext { group: "review.ao.dev".into(), version: "v1".into(), kind: "ReviewRun".into() };
    match CrdSchema::compile(&review_schema(), context) {
        Ok(schema) => schema,
        Err(causes) => panic!("schema should compile: {causes:?}"),
    }
}

fn object(spec: Value) -> Value {
    json!({"apiVersion": "review.ao.dev/v1", "kind": "ReviewRun", "metadata": {"name": "r1"}, "spec": spec})
}

fn prepared(spec: Value) -> Value {
    let mut obj = object(spec);
    compiled().prepare(&mut obj);
    obj
}

#[test]
fn schema_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CrdSchema>();
    assert_eq!(compiled().context().kind, "ReviewRun");
}

#[test]
fn prepare_prunes_and_defaults() {
    let schema = compiled();
    let mut obj = object(
        json!({"headSha": "abcdef0", "foo": 1, "pullRequest": {"number": 3, "bar": true}, "extra": {"free": 1}}),
    );
    obj["metadata"]["bogus"] = json!(1);
    obj["unknownTop"] = json!("x");
    let pruned = schema.prepare(&mut obj);
    assert_eq!(pruned, vec!["metadata.bogus", "spec.foo", "spec.pullRequest.bar", "unknownTop"]);
    assert_eq!(
        obj,
        json!({"apiVersion": "review.ao.dev/v1", "kind": "ReviewRun", "metadata": {"name": "r1"}, "spec": {
            "headSha": "abcdef0", "mode": "fast", "a": 0, "b": 10, "reviewers": [],
            "pullRequest": {"number": 3}, "extra": {"free": 1}
        }})
    );
}

#[test]
fn a_valid_object_has_no_causes() {
    let obj = prepared(json!({"headSha": "abcdef0", "a": 1, "b": 2, "reviewers": ["x"]}));
    assert_eq!(compiled().validate(&obj, None), Vec::<Cause>::new());
}

#[test]
fn pattern_failure_matches_the_real_wording() {
    let obj = prepared(json!({"headSha": "xyz"}));
    let causes = compiled().validate(&obj, None);
    assert_eq!(
        causes,
        vec![Cause::new(
            "FieldValueInvalid",
            "spec.headSha",
            "Invalid value: \"xyz\": spec.headSha in body should match '^[0-9a-f]{7,64}$'"
        )]
    );
}

#[test]
fn required_enum_and_type_errors_block_cel_rules() {
    let obj = object(json!({"mode": "slow", "a": "string", "b": 1}));
    let causes = compiled().validate(&obj, None);
    assert_eq!(
        causes,
        vec![
            Cause::new("FieldValueRequired", "spec.headSha", "Required value"),
            Cause::new(
                "FieldValueTypeInvalid",
                "spec.a",
                "Invalid value: \"string\": spec.a in body must be of type integer: \"string\""
            ),
            Cause::new(
                "FieldValueNotSupported",
                "spec.mode",
                "Unsupported value: \"slow\": supported values: \"fast\", \"thorough\""
            ),
            rules::blocking_error(),
        ]
    );
}

#[test]
fn root_rule_failure_is_reported_on_the_root() {
    let obj = prepared(json!({"headSha": "abcdef0", "a": 5, "b": 2}));
    let causes = compiled().validate(&obj, None);
    assert_eq!(
        causes,
        vec![Cause::new("FieldValueInvalid", "<nil>", "Invalid value: \"object\": a must not exceed b")]
    );
}

#[test]
fn message_expression_builds_the_message() {
    let obj = prepared(json!({"headSha": "abcdef0", "reviewers": ["a", "b", "c", "d"]}));
    let causes = compiled().validate(&obj, None);
    assert_eq!(
        causes,
        vec![Cause::new("FieldValueInvalid", "spec", "Invalid value: \"object\": too many reviewers: 4")]
    );
}

#[test]
fn transition_rules_run_only_on_update_with_an_old_value() {
    let schema = compiled();
    let new = prepared(json!({"headSha": "abcdef0", "repo": "b"}));
    assert!(schema.validate(&new, None).is_empty());
    let old_without_repo = prepared(json!({"headSha": "abcdef0"}));
    assert!(schema.validate(&new, Some(&old_without_repo)).is_empty());
    let same = prepared(json!({"headSha": "abcdef0", "repo": "b"}));
    assert!(schema.validate(&new, Some(&same)).is_empty());
    let old = prepared(json!({"headSha": "abcdef0", "repo": "a"}));
    assert_eq!(
        schema.validate(&new, Some(&old)),
        vec![Cause::new("FieldValueInvalid", "spec.repo", "Invalid value: \"string\": repo is immutable")]
    );
}

#[test]
fn unchanged_values_are_ratcheted_but_transition_rules_are_not() {
    let schema = compiled();
    let old = prepared(json!({"headSha": "xyz", "a": 5, "b": 2, "repo": "a"}));
    // Nothing the invalid values live in changed: the pattern and root rule failures are ignored.
    let mut new = old.clone();
    new["status"] = json!({"phase": "Done"});
    assert_eq!(
        schema.validate(&new, Some(&old)),
        vec![Cause::new("FieldValueInvalid", "<nil>", "Invalid value: \"object\": a must not exceed b")]
    );
    new["spec"]["repo"] = json!("b");
    let causes = schema.validate(&new, Some(&old));
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, vec!["<nil>", "spec.repo"]);
    let unchanged = old.clone();
    assert!(schema.validate(&unchanged, Some(&old)).is_empty());
}

#[test]
fn rules_with_field_path_are_ratcheted_on_their_node() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.x != 'bad'", "fieldPath": ".x", "message": "x is bad"}],
        "properties": {"x": {"type": "string"}, "y": {"type": "string"}}}}});
    let crd = CrdSchema::compile(&schema, SchemaContext::default()).unwrap_or_else(|c| panic!("{c:?}"));
    let old = json!({"spec": {"x": "bad"}});
    assert!(crd.validate(&old, Some(&old)).is_empty());
    let new = json!({"spec": {"x": "bad", "y": "changed"}});
    assert_eq!(
        crd.validate(&new, Some(&old)),
        vec![Cause::new("FieldValueInvalid", "spec.x", "Invalid value: \"object\": x is bad")]
    );
}

#[test]
fn nested_bounds_and_formats() {
    let obj = prepared(
        json!({"headSha": "abcdef0", "b": 101, "pullRequest": {"number": 0, "url": "nope"}, "reviewers": [""]}),
    );
    let causes = compiled().validate(&obj, None);
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    // A format error is a type error, which blocks the CEL rules as on the real server.
    assert_eq!(fields, vec!["spec.b", "spec.pullRequest.number", "spec.pullRequest.url", "spec.reviewers[0]", "<nil>"]);
    assert_eq!(causes[0].message, "Invalid value: 101: spec.b in body should be less than or equal to 100");
    assert_eq!(
        causes[2].message,
        "Invalid value: \"nope\": spec.pullRequest.url in body must be of type uri: \"nope\""
    );
    assert_eq!(causes[3].message, "Invalid value: \"\": spec.reviewers[0] in body should be at least 1 chars long");
}

#[test]
fn rule_reason_and_field_path_shape_the_cause() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.x != 'forbidden'", "reason": "FieldValueForbidden", "fieldPath": ".x", "message": "x is forbidden"},
            {"rule": "has(self.y)", "reason": "FieldValueRequired", "message": "y is required"},
            {"rule": "self.x != 'dup'", "reason": "FieldValueDuplicate"},
            {"rule": "self.x != 'plain'"}
        ],
        "properties": {"x": {"type": "string"}, "y": {"type": "string"}}}}});
    let crd = CrdSchema::compile(&schema, SchemaContext::default()).unwrap_or_else(|c| panic!("{c:?}"));
    let causes = crd.validate(&json!({"spec": {"x": "forbidden"}}), None);
    assert_eq!(
        causes,
        vec![
            Cause::new("FieldValueForbidden", "spec.x", "Forbidden: x is forbidden"),
            Cause::new("FieldValueRequired", "spec", "Required value: y is required"),
        ]
    );
    let causes = crd.validate(&json!({"spec": {"x": "dup", "y": "1"}}), None);
    assert_eq!(causes, vec![Cause::new("FieldValueDuplicate", "spec", "Duplicate value: \"object\"")]);
    let causes = crd.validate(&json!({"spec": {"x": "plain", "y": "1"}}), None);
    assert_eq!(
        causes,
        vec![Cause::new("FieldValueInvalid", "spec", "Invalid value: \"object\": failed rule: self.x != 'plain'")]
    );
}

#[test]
fn rules_under_maps_report_keyed_paths() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "limits": {"type": "object", "additionalProperties": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self >= 0", "message": "must not be negative"}]}}}}}});
    let crd = CrdSchema::compile(&schema, SchemaContext::default()).unwrap_or_else(|c| panic!("{c:?}"));
    let causes = crd.validate(&json!({"spec": {"limits": {"cpu": 1, "example.com/gpu": -1}}}), None);
    assert_eq!(
        causes,
        vec![Cause::new(
            "FieldValueInvalid",
            "spec.limits[example.com/gpu]",
            "Invalid value: \"integer\": must not be negative"
        )]
    );
}

#[test]
fn evaluation_errors_name_the_rule() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.missing == 1", "message": "missing must be 1"}],
        "properties": {"missing": {"type": "integer"}}}}});
    let crd = CrdSchema::compile(&schema, SchemaContext::default()).unwrap_or_else(|c| panic!("{c:?}"));
    let causes = crd.validate(&json!({"spec": {}}), None);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0].field, "spec");
    assert!(causes[0].message.starts_with("Invalid value: \"object\": no such key: missing"), "{}", causes[0].message);
    assert!(causes[0].message.ends_with(" evaluating rule: missing must be 1"), "{}", causes[0].message);
}

#[test]
fn compile_rejects_bad_rules_and_patterns() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.a <"}]},
        "name": {"type": "string", "pattern": "(unclosed"}
    }});
    let causes = CrdSchema::compile(&schema, SchemaContext::default()).err().unwrap_or_default();
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert_eq!(causes[0].field, "openAPIV3Schema.properties[name].pattern");
    assert!(
        causes[0].message.starts_with("Invalid value: \"(unclosed\": must be a valid regular expression, but isn't: ")
    );
    assert_eq!(causes[1].field, "openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule");
    assert!(causes[1].message.starts_with("Invalid value: \"self.a <\": compilation failed: "));
}

#[test]
fn root_context_variables_are_available() {
    let schema = json!({"type": "object", "x-kubernetes-validations": [
        {"rule": "apiVersion == 'review.ao.dev/v1' && kind == 'ReviewRun' && apiGroup == 'review.ao.dev'"}
    ]});
    let context = SchemaContext { group: "review.ao.dev".into(), version: "v1".into(), kind: "ReviewRun".into() };
    let crd = CrdSchema::compile(&schema, context).unwrap_or_else(|c| panic!("{c:?}"));
    assert!(crd.validate(&json!({}), None).is_empty());
}

/// A CRD as kube-derive generates it, to make sure the operator's own schemas are accepted.
mod derived {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use kube::{CustomResource, CustomResourceExt};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
    #[kube(group = "review.ao.dev", version = "v1", kind = "Sample", namespaced, status = "SampleStatus")]
    #[serde(rename_all = "camelCase")]
    pub struct SampleSpec {
        head_sha: String,
        mode: Option<Mode>,
        budget: Option<IntOrString>,
        labels: BTreeMap<String, String>,
        steps: Vec<Step>,
        note: Option<String>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
    pub enum Mode {
        Fast,
        Thorough,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
    pub struct Step {
        name: String,
        retries: Option<u32>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
    pub struct SampleStatus {
        phase: Option<String>,
        conditions: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    }

    #[test]
    fn kube_derived_schemas_compile_and_validate() {
        let crd = Sample::crd();
        let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
        let schema = serde_json::to_value(schema).unwrap_or_default();
        let context = SchemaContext { group: "review.ao.dev".into(), version: "v1".into(), kind: "Sample".into() };
        let crd_schema = CrdSchema::compile(&schema, context).unwrap_or_else(|c| panic!("{c:?}"));
        let mut obj = json!({"apiVersion": "review.ao.dev/v1", "kind": "Sample", "metadata": {"name": "s"},
            "spec": {"headSha": "abc", "mode": "Fast", "budget": "50%", "labels": {"a": "b"},
                "steps": [{"name": "lint", "retries": 2}], "note": null},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "reason": "R", "message": "m",
                "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
        assert_eq!(crd_schema.prepare(&mut obj), Vec::<String>::new());
        assert_eq!(crd_schema.validate(&obj, None), Vec::<Cause>::new());
        obj["spec"]["mode"] = json!("Slow");
        obj["spec"]["steps"][0]["retries"] = json!(-1);
        let causes = crd_schema.validate(&obj, None);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.mode", "spec.steps[0].retries", "<nil>"]);
    }
}

#[test]
fn root_rules_see_only_the_name_of_the_metadata() {
    let schema = json!({
        "type": "object",
        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object", "properties": {"n": {"type": "string"}}}},
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith(self.spec.n)", "message": "the name starts with spec.n"},
            {"rule": "!has(self.metadata.labels) && !has(self.metadata.managedFields)", "message": "metadata beyond the name"},
        ]
    });
    let context = SchemaContext { group: "review.ao.dev".into(), version: "v1".into(), kind: "Sample".into() };
    let schema = CrdSchema::compile(&schema, context).unwrap_or_else(|c| panic!("{c:?}"));
    let mut obj = json!({"apiVersion": "review.ao.dev/v1", "kind": "Sample",
        "metadata": {"name": "abc", "labels": {"a": "b"}, "managedFields": [{"manager": "m"}]}, "spec": {"n": "ab"}});
    assert_eq!(schema.validate(&obj, None), Vec::<Cause>::new());
    obj["spec"]["n"] = json!("x");
    let causes = schema.validate(&obj, None);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(causes[0].message.contains("the name starts with spec.n"), "{causes:?}");
}
