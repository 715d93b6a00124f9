//! The CustomResourceDefinitions generated from the types, as written to `crds/`.

use kube::CustomResourceExt;

use super::{ReviewRun, ReviewTranscript, Reviewer};

/// Each CRD's file name under `crds/` and its YAML.
pub fn documents() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![
        ("reviewrun.yaml", serde_yaml::to_string(&ReviewRun::crd())?),
        ("reviewer.yaml", serde_yaml::to_string(&Reviewer::crd())?),
        ("reviewtranscript.yaml", serde_yaml::to_string(&ReviewTranscript::crd())?),
    ])
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn crds_directory_matches_the_types() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
        for (file, generated) in documents().expect("CRDs serialize") {
            let path = dir.join(file);
            let written = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                written == generated,
                "{} is out of date with the Rust types; regenerate it with `cargo run -p review-operator -- crds --write`",
                path.display()
            );
        }
    }

    fn review_run_schema() -> Value {
        let crd = serde_json::to_value(ReviewRun::crd()).expect("CRD serializes");
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    fn run(status: Value) -> Value {
        let mut object = json!({
            "apiVersion": "review.ao.dev/v1alpha1",
            "kind": "ReviewRun",
            "metadata": {"name": "r1", "namespace": "default"},
            "spec": {
                "reviewer": "review-w1",
                "pullRequest": {"url": "https://github.com/acme/w/pull/1", "number": 1, "headSha": "abcdef1"},
                "cancelRequested": false,
                "timeout": "1h"
            }
        });
        if !status.is_null() {
            object["status"] = status;
        }
        object
    }

    fn approved() -> Value {
        json!({"verdict": "Approved", "body": "", "submittedAt": "2026-01-01T00:00:00Z"})
    }

    fn check(new: &Value, old: Option<&Value>) -> Result<(), String> {
        kube_cel::validate(&review_run_schema(), new, old).map_err(|errors| {
            // A rule kube-cel cannot evaluate would also "reject"; insist on a real verdict.
            for error in errors.iter() {
                assert_eq!(error.kind, kube_cel::ErrorKind::ValidationFailure, "{error}");
            }
            errors.to_string()
        })
    }

    #[test]
    fn cel_rules_compile_and_accept_a_valid_lifecycle() {
        let pending = run(json!({"phase": "Pending"}));
        let running = run(json!({"phase": "Running"}));
        let succeeded = run(json!({"phase": "Succeeded", "reason": "Submitted", "result": approved()}));
        check(&run(Value::Null), None).unwrap();
        check(&pending, Some(&run(Value::Null))).unwrap();
        check(&running, Some(&pending)).unwrap();
        check(&succeeded, Some(&running)).unwrap();
        // Conditions and other fields of a terminal run may still change.
        let mut marked = succeeded.clone();
        marked["status"]["conditions"] = json!([{"type": "Current", "status": "False", "reason": "Superseded",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        check(&marked, Some(&succeeded)).unwrap();
    }

    #[test]
    fn cel_rejects_changing_the_phase_of_a_terminal_run() {
        let failed = run(json!({"phase": "Failed", "reason": "Superseded"}));
        let err = check(&run(json!({"phase": "Running"})), Some(&failed)).unwrap_err();
        assert!(err.contains("final"), "{err}");
        let succeeded = run(json!({"phase": "Succeeded", "reason": "Submitted", "result": approved()}));
        let failed_now = run(json!({"phase": "Failed", "reason": "Cancelled"}));
        assert!(check(&failed_now, Some(&succeeded)).is_err());
    }

    #[test]
    fn cel_rejects_changing_the_reason_or_result_of_a_terminal_run() {
        let failed = run(json!({"phase": "Failed", "reason": "Superseded"}));
        assert!(check(&run(json!({"phase": "Failed", "reason": "TimedOut"})), Some(&failed)).is_err());
        let succeeded = run(json!({"phase": "Succeeded", "reason": "Submitted", "result": approved()}));
        let changed = run(json!({"phase": "Succeeded", "reason": "Submitted", "result":
            {"verdict": "ChangesRequested", "body": "fix it", "submittedAt": "2026-01-01T00:00:00Z"}}));
        assert!(check(&changed, Some(&succeeded)).is_err());
    }

    #[test]
    fn cel_rejects_a_result_without_the_move_from_running_to_succeeded() {
        let pending = run(json!({"phase": "Pending"}));
        let succeeded = run(json!({"phase": "Succeeded", "reason": "Submitted", "result": approved()}));
        let err = check(&succeeded, Some(&pending)).unwrap_err();
        assert!(err.contains("Running to Succeeded"), "{err}");
        // Not even when the status did not exist before.
        let err = check(&succeeded, Some(&run(Value::Null))).unwrap_err();
        assert!(err.contains("Running to Succeeded"), "{err}");
        // A result on a Running run is rejected outright.
        let running_with_result = run(json!({"phase": "Running", "result": approved()}));
        assert!(check(&running_with_result, Some(&run(json!({"phase": "Running"})))).is_err());
    }

    #[test]
    fn cel_rejects_removing_the_status_of_a_terminal_run_or_its_creation_revision() {
        let failed = run(json!({"phase": "Failed", "reason": "Superseded"}));
        let err = check(&run(Value::Null), Some(&failed)).unwrap_err();
        assert!(err.contains("are final"), "{err}");
        let counted = run(json!({"phase": "Pending", "creationRevision": "42"}));
        let err = check(&run(Value::Null), Some(&counted)).unwrap_err();
        assert!(err.contains("creationRevision is final"), "{err}");
        let err = check(&run(json!({"phase": "Pending"})), Some(&counted)).unwrap_err();
        assert!(err.contains("creationRevision is final"), "{err}");
        // A status that is neither final nor counted may go.
        check(&run(Value::Null), Some(&run(json!({"phase": "Pending"})))).unwrap();
    }

    #[test]
    fn cel_requires_a_body_for_changes_requested() {
        let running = run(json!({"phase": "Running"}));
        let verdict = |body: &str| {
            run(json!({"phase": "Succeeded", "reason": "Submitted", "result":
                {"verdict": "ChangesRequested", "body": body, "submittedAt": "2026-01-01T00:00:00Z"}}))
        };
        let err = check(&verdict(""), Some(&running)).unwrap_err();
        assert!(err.contains("non-empty body"), "{err}");
        check(&verdict("Please add a test."), Some(&running)).unwrap();
    }

    #[test]
    fn cel_rejects_terminal_phases_without_their_reason() {
        let running = run(json!({"phase": "Running"}));
        assert!(check(&run(json!({"phase": "Failed"})), Some(&running)).is_err());
        assert!(check(&run(json!({"phase": "Succeeded", "result": approved()})), Some(&running)).is_err());
    }

    #[test]
    fn cel_makes_the_spec_immutable_except_cancel_requested() {
        let old = run(json!({"phase": "Running"}));
        let mut new_sha = old.clone();
        new_sha["spec"]["pullRequest"]["headSha"] = json!("1234567");
        let err = check(&new_sha, Some(&old)).unwrap_err();
        assert!(err.contains("immutable"), "{err}");
        let mut new_reviewer = old.clone();
        new_reviewer["spec"]["reviewer"] = json!("review-w2");
        assert!(check(&new_reviewer, Some(&old)).is_err());
        let mut new_timeout = old.clone();
        new_timeout["spec"]["timeout"] = json!("2h");
        assert!(check(&new_timeout, Some(&old)).is_err());
        let mut cancelled = old.clone();
        cancelled["spec"]["cancelRequested"] = json!(true);
        check(&cancelled, Some(&old)).unwrap();
    }

    #[test]
    fn cel_rejects_a_previous_head_equal_to_the_head() {
        let mut object = run(Value::Null);
        object["spec"]["pullRequest"]["previousHeadSha"] = json!("abcdef1");
        let err = check(&object, None).unwrap_err();
        assert!(err.contains("spec.pullRequest.previousHeadSha"), "{err}");
        assert!(err.contains("must differ from spec.pullRequest.headSha"), "{err}");
        object["spec"]["pullRequest"]["previousHeadSha"] = json!("1234567");
        check(&object, None).unwrap();
    }

    #[test]
    fn schema_validates_formats_and_defaults() {
        let crd = serde_json::to_value(ReviewRun::crd()).expect("CRD serializes");
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["properties"]["cancelRequested"]["default"], json!(false));
        assert_eq!(spec["properties"]["timeout"]["default"], json!("1h"));
        assert_eq!(spec["properties"]["pullRequest"]["properties"]["headSha"]["pattern"], json!("^[0-9a-f]{7,64}$"));
        let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
        let phases = status["phase"]["enum"].as_array().expect("phase enum");
        for phase in ["Pending", "Running", "Succeeded", "Failed"] {
            assert!(phases.contains(&json!(phase)), "{phase}");
        }
        assert!(status["result"]["properties"]["verdict"]["enum"].as_array().is_some_and(|v| v.len() >= 2));
        let reviewer = serde_json::to_value(Reviewer::crd()).expect("CRD serializes");
        let spec = &reviewer["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["serviceAccountName"]["default"], json!("review-agent"));
        assert_eq!(spec["launchDeadline"]["default"], json!("5m"));
    }
}
