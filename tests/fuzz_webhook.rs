//! Fuzzed deliveries to the webhook receiver, with a fixed seed and budget:
//! whatever the body, the signature or the fields, the answer is never a
//! 5xx or a panic, every refusal is a 4xx whose error names what is wrong,
//! and only accepted deliveries write.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

mod harness;

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use kube::api::{ListParams, Patch, PatchParams};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use review_operator::intake::payload::examples;
use review_operator::intake::server::{MAX_BODY, Receiver, router};
use review_operator::intake::signature::{WebhookSecrets, sign};
use serde_json::{Value, json};
use tower::ServiceExt;

use harness::*;

const SECRET: &[u8] = b"fuzz-secret";
/// The seed every run of these tests starts from, so that a failure repeats.
const SEED: [u8; 32] = *b"review-operator webhook fuzzing!";
const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";

struct Target {
    runtime: tokio::runtime::Runtime,
    h: Harness,
    receiver: Arc<Receiver>,
}

impl Target {
    /// A cluster without a controller, the Reviewer matching the example repository, a ready receiver.
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (h, receiver) = runtime.block_on(async {
            let h = Harness::new().await;
            h.create_reviewer(REVIEWER).await;
            let rules = json!({"spec": {"match": {"repositories": [examples::REPOSITORY]}}});
            h.reviewers().patch(REVIEWER, &PatchParams::default(), &Patch::Merge(&rules)).await.expect("match");
            let receiver =
                Receiver::start(h.client.clone(), WebhookSecrets::new(vec![SECRET.to_vec()]), "webhook".into());
            let ready = router(receiver.clone(), "/github");
            support::eventually("the receiver sees the Reviewer's match", || async {
                let body = examples::pull_request("labeled", 1, HEAD).to_string();
                let (status, answer) = send(&ready, signed(body.into_bytes(), None)).await;
                (status == 202 && answer["message"].as_str().is_some_and(|m| m.contains("ignored"))).then_some(())
            })
            .await;
            (h, receiver)
        });
        Self { runtime, h, receiver }
    }

    fn send(&self, request: Request<Body>) -> (u16, Value) {
        self.runtime.block_on(send(&router(self.receiver.clone(), "/github"), request))
    }

    fn run_count(&self) -> usize {
        self.runtime.block_on(self.h.runs().list(&ListParams::default())).expect("runs").items.len()
    }
}

async fn send(router: &axum::Router, request: Request<Body>) -> (u16, Value) {
    let response = router.clone().oneshot(request).await.expect("an answer, not a panic");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A `pull_request` delivery of `body`, signed with the secret unless `signature` is given.
fn signed(body: Vec<u8>, signature: Option<String>) -> Request<Body> {
    let signature = signature.unwrap_or_else(|| sign(SECRET, &body));
    Request::post("/github")
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-hub-signature-256", signature)
        .body(Body::from(body))
        .unwrap()
}

fn runner(cases: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED))
}

/// A refusal: a 4xx whose `error` says something.
fn refused(status: u16, answer: &Value) -> Result<String, TestCaseError> {
    prop_assert!((400..500).contains(&status), "expected a 4xx, got {status}: {answer}");
    let error = answer["error"].as_str().unwrap_or_default().to_owned();
    prop_assert!(!error.is_empty(), "the refusal says why: {answer}");
    Ok(error)
}

/// The fields a `pull_request` delivery needs, as JSON pointers, and a value of the wrong type for each.
const REQUIRED: &[(&str, &str)] = &[
    ("/action", "string"),
    ("/pull_request", "object"),
    ("/pull_request/html_url", "string"),
    ("/pull_request/number", "integer"),
    ("/pull_request/head", "object"),
    ("/pull_request/head/sha", "string"),
    ("/pull_request/head/ref", "string"),
    ("/pull_request/user", "object"),
    ("/pull_request/user/login", "string"),
    ("/repository", "object"),
    ("/repository/full_name", "string"),
    ("/repository/clone_url", "string"),
];

fn wrong_value(expected: &str) -> impl Strategy<Value = Value> {
    let scalars = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_filter("finite", |f| f.is_finite() && f.fract() != 0.0).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!([1, "two"])),
        Just(json!({"unexpected": true})),
    ];
    let expected = expected.to_owned();
    scalars.prop_filter("of the wrong type", move |value| match expected.as_str() {
        "string" => !value.is_string(),
        "integer" => !value.is_i64(),
        _ => !value.is_object(),
    })
}

#[test]
fn fuzzed_deliveries_are_refused_with_a_4xx_that_names_the_field_and_write_nothing() {
    let target = Target::new();

    // Any bytes, correctly signed: a 4xx, never a panic or a 5xx.
    runner(200)
        .run(&proptest::collection::vec(any::<u8>(), 0..512), |body| {
            let (status, answer) = target.send(signed(body, None));
            refused(status, &answer).map(drop)
        })
        .unwrap();

    // A required field missing, or of the wrong type: the error names it.
    let field = proptest::sample::select(REQUIRED);
    let mutation =
        field.prop_flat_map(|(pointer, expected)| (Just(pointer), proptest::option::of(wrong_value(expected))));
    runner(200)
        .run(&mutation, |(pointer, replacement)| {
            let mut payload = examples::pull_request("opened", 3, HEAD);
            let (parent, name) = pointer.rsplit_once('/').unwrap();
            let container = if parent.is_empty() { &mut payload } else { payload.pointer_mut(parent).unwrap() };
            match &replacement {
                Some(value) => container[name] = value.clone(),
                None => drop(container.as_object_mut().unwrap().remove(name)),
            }
            let (status, answer) = target.send(signed(payload.to_string().into_bytes(), None));
            let error = refused(status, &answer)?;
            prop_assert!(error.contains(name), "{pointer} replaced by {replacement:?}: {error}");
            Ok(())
        })
        .unwrap();

    // Any head SHA: a run when it is a commit SHA, otherwise a refusal naming the field.
    let accepted = std::cell::Cell::new(0);
    runner(100)
        .run(&prop_oneof!["[0-9a-f]{40}", ".{0,48}"], |sha| {
            let payload = examples::pull_request("opened", 4, &sha);
            let (status, answer) = target.send(signed(payload.to_string().into_bytes(), None));
            let commit = (7..=64).contains(&sha.len()) && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if commit {
                prop_assert!(status == 201 || status == 200, "{sha}: {status} {answer}");
                accepted.set(accepted.get() + usize::from(status == 201));
            } else {
                let error = refused(status, &answer)?;
                prop_assert!(error.contains("pull_request.head.sha"), "{sha}: {error}");
            }
            Ok(())
        })
        .unwrap();

    // Any signature but the right one: 401.
    let body = examples::pull_request("opened", 5, HEAD).to_string();
    let right = sign(SECRET, body.as_bytes());
    runner(200)
        .run(&prop_oneof!["sha256=[0-9a-f]{64}", "sha256=.{0,70}", ".{0,80}"], |signature| {
            prop_assume!(signature != right);
            let Ok(request) = Request::post("/github")
                .header("content-type", "application/json")
                .header("x-github-event", "pull_request")
                .header("x-hub-signature-256", signature.as_str())
                .body(Body::from(body.clone()))
            else {
                // Not a valid header value at all: no request to send.
                return Ok(());
            };
            let (status, answer) = target.send(request);
            prop_assert_eq!(status, 401, "{}", answer);
            Ok(())
        })
        .unwrap();

    // Hostile shapes.
    // In a field intake does not read, which serde still has to skip.
    let deep = format!(r#"{{"action":"opened","extra":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    let mut invalid_utf8 = br#"{"action": ""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
    let valid = examples::pull_request("opened", 6, HEAD).to_string();
    let duplicate = valid.replacen(r#""action":"opened","#, r#""action":"opened","action":"closed","#, 1);
    assert_ne!(duplicate, valid, "the payload starts with its action");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Skipped without recursing: refused for what it lacks.
        (deep.into_bytes(), "missing field `pull_request`"),
        (invalid_utf8, "invalid unicode"),
        (duplicate.into_bytes(), "duplicate field `action`"),
        (valid.replace(r#""number":6"#, r#""number":1e400"#).into_bytes(), "number"),
        (valid.replace(r#""number":6"#, r#""number":99999999999999999999"#).into_bytes(), "number"),
        (format!("{valid} trailing").into_bytes(), "after the payload"),
    ];
    for (body, expected) in cases {
        let (status, answer) = target.send(signed(body, None));
        let error = refused(status, &answer).unwrap();
        assert!(error.contains(expected), "{expected}: {error}");
    }
    let huge = vec![b' '; 100 * 1024 * 1024];
    assert!(huge.len() > MAX_BODY);
    let (status, answer) = target.send(signed(huge, None));
    assert_eq!(status, 413, "{answer}");

    // Only the deliveries answered 201 wrote.
    assert_eq!(target.run_count(), accepted.get());
}
