//! Checks of command-line input, done before any API call, and the
//! deterministic names of triggered runs.

use kube::api::ObjectMeta;

use crate::api::history::pull_request_heads;
use crate::api::{PullRequest, ReviewRun, ReviewRunSpec, Verdict, labels};

/// Input the plugin refuses before talking to the API server.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidInput(pub String);

fn invalid(message: impl Into<String>) -> InvalidInput {
    InvalidInput(message.into())
}

/// What `trigger` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerRequest {
    pub reviewer: String,
    pub url: String,
    pub head_sha: String,
    pub number: Option<i64>,
    /// Unix seconds of a deliberate re-review; `None` for a plain trigger.
    pub rerun_at: Option<i64>,
    /// `--previous-sha`: the head this push replaced, when the caller knows it.
    pub previous_sha: Option<String>,
}

/// The run `trigger` creates for a request, given the runs the cluster has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerPlan {
    pub name: String,
    pub previous_head_sha: Option<String>,
}

/// Decides the run's lineage and name from the runs of the namespace.
///
/// Without `--previous-sha` the lineage is the pull request's head as the
/// cluster shows it (decided as the controller decides it), unless the SHA
/// was already seen for the pull request: then the trigger is a replay or a
/// re-trigger and carries no lineage, so it cannot move the head back. A
/// deliberate return to an earlier commit passes `--previous-sha`; when the
/// run of that SHA exists already with other lineage, the new run is named
/// `<name>-p<previous7>`, as a return gets a run of its own.
pub fn plan_trigger(request: &TriggerRequest, runs: &[ReviewRun]) -> TriggerPlan {
    let own: Vec<ReviewRun> = runs
        .iter()
        .filter(|run| run.spec.reviewer == request.reviewer && run.spec.pull_request.url == request.url)
        .cloned()
        .collect();
    let base = run_name(request);
    let Some(previous) = &request.previous_sha else {
        let seen = own.iter().any(|run| run.spec.pull_request.head_sha == request.head_sha);
        let head = pull_request_heads(&own).get(request.url.as_str()).map(|run| run.spec.pull_request.head_sha.clone());
        let previous_head_sha = if seen { None } else { head };
        return TriggerPlan { name: base, previous_head_sha };
    };
    let taken = own.iter().any(|run| {
        run.metadata.name.as_deref() == Some(base.as_str())
            && run.spec.pull_request.previous_head_sha.as_ref() != Some(previous)
    });
    let name = if taken { format!("{base}-p{}", previous.chars().take(7).collect::<String>()) } else { base };
    TriggerPlan { name, previous_head_sha: Some(previous.clone()) }
}

/// Checks a trigger request the way the schema would, with messages that
/// name the flag.
pub fn validate_trigger(request: &TriggerRequest) -> Result<(), InvalidInput> {
    validate_object_name("--reviewer", &request.reviewer)?;
    validate_url(&request.url)?;
    validate_sha("--sha", &request.head_sha)?;
    if let Some(previous) = &request.previous_sha {
        validate_sha("--previous-sha", previous)?;
        if previous == &request.head_sha {
            return Err(invalid(format!(
                "--previous-sha {previous:?} must differ from --sha: it is the head the pull request had before this push"
            )));
        }
    }
    if let Some(number) = request.number
        && number < 1
    {
        return Err(invalid(format!("--number must be a positive pull request number, got {number}")));
    }
    // The longest name a trigger may pick: `-p<previous7>` for a return to an earlier commit.
    let name = format!("{}-p0000000", run_name(request));
    if name.len() > 253 {
        return Err(invalid(format!(
            "--reviewer {:?} is too long: the run name {name:?} would exceed 253 characters",
            request.reviewer
        )));
    }
    Ok(())
}

/// The run's name: `<reviewer>-<pr-hash8>-<sha7>`, plus `-r<unix-seconds>`
/// for `--rerun`.
///
/// `pr-hash8` is the first 8 characters of the `review.ao.dev/pr` label
/// value (FNV-1a of the URL), `sha7` the first 7 characters of the head SHA.
/// The same reviewer, PR and SHA therefore always give the same name, which
/// is what makes `trigger` idempotent; a re-run carries the second it was
/// asked for, so each deliberate re-run is a new, distinct run.
pub fn run_name(request: &TriggerRequest) -> String {
    let base = ReviewRun::conventional_name(&request.reviewer, &request.url, &request.head_sha);
    match request.rerun_at {
        Some(seconds) => format!("{base}-r{seconds}"),
        None => base,
    }
}

/// The ReviewRun `trigger` creates, labelled as the controller would label it.
pub fn trigger_run(request: &TriggerRequest, plan: &TriggerPlan, namespace: &str) -> ReviewRun {
    ReviewRun {
        metadata: ObjectMeta {
            name: Some(plan.name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels::run_labels(&request.reviewer, &request.url)),
            ..ObjectMeta::default()
        },
        spec: ReviewRunSpec {
            reviewer: request.reviewer.clone(),
            pull_request: PullRequest {
                url: request.url.clone(),
                number: request.number,
                head_sha: request.head_sha.clone(),
                previous_head_sha: plan.previous_head_sha.clone(),
                repository: None,
                clone_url: None,
            },
            cancel_requested: false,
            timeout: "1h".to_owned(),
            ttl_seconds_after_finished: None,
        },
        status: None,
    }
}

/// Object names are DNS subdomains (RFC 1123): lowercase alphanumerics,
/// `-` and `.`, starting and ending alphanumeric.
pub fn validate_object_name(flag: &str, name: &str) -> Result<(), InvalidInput> {
    let valid_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > 253 || !valid_chars || !alnum(name.chars().next()) || !alnum(name.chars().last())
    {
        return Err(invalid(format!(
            "{flag} {name:?} is not a valid name: expected lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit (at most 253 characters)"
        )));
    }
    Ok(())
}

fn validate_url(url: &str) -> Result<(), InvalidInput> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split('/').next().unwrap_or_default());
    let ok = rest.is_some()
        && host.is_some_and(|h| !h.is_empty())
        && !url.chars().any(char::is_whitespace)
        && url.len() <= 2048;
    if !ok {
        return Err(invalid(format!(
            "--pr {url:?} is not a pull request URL: expected an http(s) URL such as https://github.com/OWNER/REPO/pull/NUMBER"
        )));
    }
    Ok(())
}

fn validate_sha(flag: &str, sha: &str) -> Result<(), InvalidInput> {
    let hex = sha.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !(7..=64).contains(&sha.len()) || !hex {
        let hint = if sha.chars().any(|c| c.is_ascii_uppercase()) { " (write it in lowercase)" } else { "" };
        return Err(invalid(format!(
            "{flag} {sha:?} is not a commit SHA: expected 7 to 64 lowercase hexadecimal characters{hint}"
        )));
    }
    Ok(())
}

/// The verdict spellings `--verdict` accepts.
pub const VERDICTS: &str = "approved, changes-requested";

/// Parses `--verdict`: `approved` or `changes-requested` (the API's
/// `Approved` and `ChangesRequested` are accepted too).
pub fn parse_verdict(text: &str) -> Result<Verdict, InvalidInput> {
    match text {
        "approved" | "Approved" => Ok(Verdict::Approved),
        "changes-requested" | "ChangesRequested" => Ok(Verdict::ChangesRequested),
        other => Err(invalid(format!("unknown verdict {other:?}: expected one of {VERDICTS}"))),
    }
}

/// A changes-requested verdict must say what to change.
pub fn validate_body(verdict: Verdict, body: &str) -> Result<(), InvalidInput> {
    if verdict == Verdict::ChangesRequested && body.trim().is_empty() {
        return Err(invalid(
            "--verdict changes-requested needs a review body: pass --body-file FILE (or - for stdin) with non-empty text",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TriggerRequest {
        TriggerRequest {
            reviewer: "review-w1".into(),
            url: "https://github.com/acme/widgets/pull/42".into(),
            head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
            number: Some(42),
            rerun_at: None,
            previous_sha: None,
        }
    }

    #[test]
    fn run_names_are_deterministic_and_reruns_distinct() {
        let pr = &labels::pr_label_value("https://github.com/acme/widgets/pull/42")[..8];
        assert_eq!(run_name(&request()), format!("review-w1-{pr}-0123456"));
        assert_eq!(run_name(&request()), run_name(&request()));
        let rerun = TriggerRequest { rerun_at: Some(1_700_000_000), ..request() };
        assert_eq!(run_name(&rerun), format!("review-w1-{pr}-0123456-r1700000000"));
        let other_pr = TriggerRequest { url: "https://github.com/acme/widgets/pull/43".into(), ..request() };
        assert_ne!(run_name(&other_pr), run_name(&request()));
        validate_object_name("name", &run_name(&rerun)).unwrap();
    }

    fn existing(name: &str, sha: &str, previous: Option<&str>, created: i64) -> ReviewRun {
        let request = TriggerRequest { head_sha: sha.into(), previous_sha: previous.map(str::to_owned), ..request() };
        let plan = TriggerPlan { name: name.into(), previous_head_sha: previous.map(str::to_owned) };
        let mut run = trigger_run(&request, &plan, "team");
        run.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + created).unwrap(),
        ));
        run.metadata.resource_version = Some(created.to_string());
        run
    }

    const A: &str = "aaaaaaa";
    const B: &str = "bbbbbbb";
    const C: &str = "ccccccc";

    #[test]
    fn a_trigger_without_previous_sha_pushes_onto_the_head_the_cluster_shows() {
        let runs = [existing("one", A, None, 1), existing("two", B, Some(A), 2)];
        let plan = plan_trigger(&TriggerRequest { head_sha: C.into(), ..request() }, &runs);
        assert_eq!(plan.previous_head_sha.as_deref(), Some(B));
        assert_eq!(plan.name, run_name(&TriggerRequest { head_sha: C.into(), ..request() }));
        // The first push of a pull request has nothing to replace.
        assert_eq!(plan_trigger(&request(), &[]).previous_head_sha, None);
        // Runs of other reviewers or pull requests do not count.
        let mut other = existing("other", B, None, 3);
        other.spec.reviewer = "review-w2".into();
        assert_eq!(plan_trigger(&TriggerRequest { head_sha: C.into(), ..request() }, &[other]).previous_head_sha, None);
    }

    #[test]
    fn a_trigger_of_a_sha_already_seen_carries_no_lineage() {
        let runs = [existing("one", A, None, 1), existing("two", B, Some(A), 2)];
        let replay = plan_trigger(&TriggerRequest { head_sha: A.into(), ..request() }, &runs);
        assert_eq!(replay.previous_head_sha, None, "a replay stays late");
        let again = plan_trigger(&TriggerRequest { head_sha: B.into(), ..request() }, &runs);
        assert_eq!(again.previous_head_sha, None);
    }

    #[test]
    fn a_return_to_an_earlier_commit_gets_a_run_of_its_own() {
        let back = TriggerRequest { head_sha: A.into(), previous_sha: Some(B.into()), ..request() };
        let base = run_name(&back);
        let runs = [existing(&base, A, None, 1), existing("two", B, Some(A), 2)];
        let plan = plan_trigger(&back, &runs);
        assert_eq!(plan.name, format!("{base}-pbbbbbbb"));
        assert_eq!(plan.previous_head_sha.as_deref(), Some(B));
        validate_object_name("name", &plan.name).unwrap();
        // Triggered again, the same run is found: idempotent.
        let runs = [existing(&base, A, None, 1), existing("two", B, Some(A), 2), existing(&plan.name, A, Some(B), 3)];
        assert_eq!(plan_trigger(&back, &runs).name, plan.name);
        // An explicit lineage the base run already has keeps the base name.
        let onto_a = TriggerRequest { head_sha: B.into(), previous_sha: Some(A.into()), ..request() };
        let runs = [existing(&run_name(&onto_a), B, Some(A), 1)];
        assert_eq!(plan_trigger(&onto_a, &runs).name, run_name(&onto_a));
    }

    #[test]
    fn previous_sha_errors_name_the_flag() {
        let err = validate_trigger(&TriggerRequest { previous_sha: Some("XYZ".into()), ..request() }).unwrap_err();
        assert_eq!(
            err.0,
            "--previous-sha \"XYZ\" is not a commit SHA: expected 7 to 64 lowercase hexadecimal characters (write it in lowercase)"
        );
        let same = TriggerRequest { previous_sha: Some(request().head_sha), ..request() };
        let err = validate_trigger(&same).unwrap_err();
        assert!(err.0.contains("must differ from --sha"), "{err}");
    }

    #[test]
    fn trigger_run_is_labelled_like_the_controller_labels_it() {
        let plan = plan_trigger(&request(), &[]);
        let run = trigger_run(&request(), &plan, "team");
        let labels = run.metadata.labels.unwrap();
        assert_eq!(labels[labels::REVIEWER], "review-w1");
        assert_eq!(labels[labels::PULL_REQUEST], labels::pr_label_value(&request().url));
        assert_eq!(run.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(run.spec.pull_request.number, Some(42));
    }

    #[test]
    fn trigger_input_errors_name_the_flag() {
        validate_trigger(&request()).unwrap();
        let err =
            validate_trigger(&TriggerRequest { url: "github.com/acme/w/pull/1".into(), ..request() }).unwrap_err();
        assert!(err.0.starts_with("--pr \"github.com/acme/w/pull/1\" is not a pull request URL"), "{err}");
        let err = validate_trigger(&TriggerRequest { url: "https:///x".into(), ..request() }).unwrap_err();
        assert!(err.0.starts_with("--pr"), "{err}");
        let err = validate_trigger(&TriggerRequest { head_sha: "ABCDEF1".into(), ..request() }).unwrap_err();
        assert_eq!(
            err.0,
            "--sha \"ABCDEF1\" is not a commit SHA: expected 7 to 64 lowercase hexadecimal characters (write it in lowercase)"
        );
        let err = validate_trigger(&TriggerRequest { head_sha: "abc".into(), ..request() }).unwrap_err();
        assert!(err.0.starts_with("--sha \"abc\""), "{err}");
        let err = validate_trigger(&TriggerRequest { reviewer: "Review_W1".into(), ..request() }).unwrap_err();
        assert!(err.0.starts_with("--reviewer \"Review_W1\" is not a valid name"), "{err}");
        let err = validate_trigger(&TriggerRequest { number: Some(0), ..request() }).unwrap_err();
        assert_eq!(err.0, "--number must be a positive pull request number, got 0");
        let err = validate_trigger(&TriggerRequest { reviewer: "a".repeat(250), ..request() }).unwrap_err();
        assert!(err.0.contains("would exceed 253 characters"), "{err}");
    }

    #[test]
    fn verdicts_and_bodies_are_checked() {
        assert_eq!(parse_verdict("approved"), Ok(Verdict::Approved));
        assert_eq!(parse_verdict("changes-requested"), Ok(Verdict::ChangesRequested));
        assert_eq!(parse_verdict("ChangesRequested"), Ok(Verdict::ChangesRequested));
        assert_eq!(
            parse_verdict("lgtm").unwrap_err().0,
            "unknown verdict \"lgtm\": expected one of approved, changes-requested"
        );
        validate_body(Verdict::Approved, "").unwrap();
        validate_body(Verdict::ChangesRequested, "Add a test.").unwrap();
        let err = validate_body(Verdict::ChangesRequested, " \n").unwrap_err();
        assert!(err.0.starts_with("--verdict changes-requested needs a review body"), "{err}");
    }
}
