use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: `Unknown` while the run is pending or running, `True` or
/// `False` once it is done, with the run's reason.
pub const CONDITION_SUCCEEDED: &str = "Succeeded";
/// Condition type: `False` (reason `Superseded`) once the pull request has a
/// newer head SHA, also on completed runs, so consumers never act on an
/// outdated verdict.
pub const CONDITION_CURRENT: &str = "Current";
/// Condition type: set (always `False`) on runs of one pull request created
/// in the same second that could not be ordered by the API server's
/// `resourceVersion`s; the reason says why.
pub const CONDITION_ORDERED: &str = "Ordered";
/// Annotation saying why `spec.cancelRequested` was set (for example that
/// the pull request was merged); the Cancelled message repeats it.
pub const ANNOTATION_CANCEL_REASON: &str = "review.ao.dev/cancel-reason";
/// Reason of `Succeeded=Unknown` while the named Reviewer does not exist.
pub const REASON_REVIEWER_NOT_FOUND: &str = "ReviewerNotFound";

/// The spec of a ReviewRun: one review of one pull request at one head SHA.
// `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "review.ao.dev",
    version = "v1alpha1",
    kind = "ReviewRun",
    plural = "reviewruns",
    shortname = "rr",
    category = "review",
    namespaced,
    status = "ReviewRunStatus",
    derive = "PartialEq",
    doc = "One review of one pull request at one head SHA, performed by a Reviewer.",
    printcolumn(name = "Reviewer", type_ = "string", json_path = ".spec.reviewer"),
    printcolumn(name = "PR", type_ = "integer", json_path = ".spec.pullRequest.number"),
    printcolumn(name = "SHA", type_ = "string", json_path = ".status.shortSha"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.reason"),
    printcolumn(name = "Verdict", type_ = "string", json_path = ".status.result.verdict"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.pullRequest.url", priority = 1),
    printcolumn(name = "Delivery", type_ = "string", json_path = ".status.delivery.state", priority = 1),
    // Rules sit on the narrowest node that holds what they compare, so the API server converts and
    // compares that node, not the whole object, for each. Transition rules on `status` run only
    // when the old and the new object both have one; these three cover a status removed or added.
    validation = Rule::new(
        "has(self.status) || !has(oldSelf.status) || !has(oldSelf.status.phase) || !(oldSelf.status.phase in ['Succeeded', 'Failed'])"
    ).message("the phase, reason and result of a Succeeded or Failed run are final").field_path(".status"),
    validation = Rule::new(
        "has(oldSelf.status) || !has(self.status) || !has(self.status.result)"
    ).message("status.result may only be set together with the move from Running to Succeeded").field_path(".status.result"),
    validation = Rule::new(
        "has(self.status) || !has(oldSelf.status) || !has(oldSelf.status.creationRevision)"
    ).message("status.creationRevision is final once set").field_path(".status.creationRevision"),
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.reviewer == oldSelf.reviewer && self.pullRequest == oldSelf.pullRequest && self.timeout == oldSelf.timeout",
        "message": "spec is immutable except spec.cancelRequested"
    }
]))]
pub struct ReviewRunSpec {
    /// Name of the Reviewer, in the same namespace, that performs this review.
    #[schemars(length(min = 1, max = 253))]
    pub reviewer: String,
    /// The pull request to review.
    pub pull_request: PullRequest,
    /// Asks the controller to stop the run. A pending run fails at once; a
    /// running run fails and its reviewer pod is restarted. The only mutable
    /// field of the spec.
    #[serde(default)]
    pub cancel_requested: bool,
    /// How long the run may stay Running before it fails as TimedOut, e.g.
    /// `45m` or `1h30m` (units h, m, s, ms).
    #[serde(default = "default_timeout")]
    #[schemars(regex(pattern = r"^([0-9]+(h|m|s|ms))+$"), length(max = 32))]
    pub timeout: String,
    /// Seconds after the run finished (`status.completionTime`) that the
    /// controller deletes it, as for a Job. Without it the Reviewer's
    /// `spec.runTtlSecondsAfterFinished` applies, and without that the run is
    /// kept until deleted. Whatever the TTL, the run that made its pull
    /// request's head SHA the head is kept, and so is a run whose GitHub
    /// delivery is still pending; the commits a deleted run knew to be
    /// replaced are recorded in the kept run's `status.replacedShas` first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,
}

fn default_timeout() -> String {
    "1h".to_owned()
}

/// A pull request at one head SHA.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.previousHeadSha) || self.previousHeadSha != self.headSha",
        "message": "must differ from spec.pullRequest.headSha",
        "fieldPath": ".previousHeadSha"
    }
]))]
pub struct PullRequest {
    /// URL of the pull request (http or https). It identifies the pull
    /// request: runs with the same URL review the same pull request.
    #[schemars(regex(pattern = r"^https?://[^\s/]+\S*$"), length(max = 2048))]
    pub url: String,
    /// The pull request's number, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    /// The commit to review: 7 to 64 lowercase hexadecimal characters.
    #[schemars(regex(pattern = r"^[0-9a-f]{7,64}$"))]
    pub head_sha: String,
    /// The head the pull request had before the push this run reviews (a
    /// GitHub `synchronize` event's `before`). When set it decides which
    /// commit is newer, whatever the creation times: this SHA, and every SHA
    /// it had already replaced, are older than `headSha`. A push whose
    /// previous head is the pull request's current head makes `headSha` the
    /// head again even if it was replaced before (a force-push back to an
    /// earlier commit). Without it, runs are ordered by creation: the API
    /// server's order, from their resourceVersions, within one second.
    /// Must differ from `headSha`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{7,64}$"))]
    pub previous_head_sha: Option<String>,
    /// The repository as `owner/name`, when known (the webhook receiver sets
    /// it). Derived from a GitHub pull request URL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub repository: Option<String>,
    /// The URL to clone the repository from, when known (the webhook
    /// receiver sets GitHub's `clone_url`). Derived from a GitHub pull
    /// request URL, `https://HOST/OWNER/NAME/pull/N`, as
    /// `https://HOST/OWNER/NAME.git` when absent. `file://` URLs work too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub clone_url: Option<String>,
}

impl PullRequest {
    /// The pull request `url` at `head_sha`, with nothing else known.
    pub fn new(url: impl Into<String>, head_sha: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            number: None,
            head_sha: head_sha.into(),
            previous_head_sha: None,
            repository: None,
            clone_url: None,
        }
    }

    /// `repository`, or `OWNER/NAME` from a URL of the form `.../OWNER/NAME/pull/N`.
    pub fn repository_name(&self) -> Option<String> {
        if let Some(repository) = self.repository.as_ref().filter(|r| !r.is_empty()) {
            return Some(repository.clone());
        }
        let (_, owner, name) = self.github_parts()?;
        Some(format!("{owner}/{name}"))
    }

    /// `cloneUrl`, or `https://HOST/OWNER/NAME.git` from a URL of the form
    /// `https://HOST/OWNER/NAME/pull/N`.
    pub fn clone_source(&self) -> Option<String> {
        if let Some(url) = self.clone_url.as_ref().filter(|u| !u.is_empty()) {
            return Some(url.clone());
        }
        let (host, owner, name) = self.github_parts()?;
        Some(format!("https://{host}/{owner}/{name}.git"))
    }

    /// Host, owner and name of a pull request URL `http(s)://HOST/OWNER/NAME/pull/N[/...]`.
    fn github_parts(&self) -> Option<(&str, &str, &str)> {
        let rest = self.url.strip_prefix("https://").or_else(|| self.url.strip_prefix("http://"))?;
        let mut parts = rest.split(['?', '#']).next()?.split('/');
        let (host, owner, name, pull, number) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = !host.is_empty() && !owner.is_empty() && !name.is_empty();
        (valid && pull == "pull" && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
            .then_some((host, owner, name))
    }
}

/// Observed state of a ReviewRun, written by the controller and, for the
/// verdict, by the reviewer pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.phase) || self.phase != 'Succeeded' || (has(self.result) && has(self.reason) && self.reason == 'Submitted')",
        "message": "a Succeeded run has a result and reason Submitted"
    },
    {
        "rule": "!has(self.phase) || self.phase != 'Failed' || (has(self.reason) && self.reason != 'Submitted')",
        "message": "a Failed run has a failure reason"
    },
    {
        "rule": "!has(self.result) || (has(self.phase) && self.phase == 'Succeeded')",
        "message": "only a Succeeded run has a result"
    },
    {
        "rule": "!has(oldSelf.phase) || !(oldSelf.phase in ['Succeeded', 'Failed']) || (has(self.phase) && self.phase == oldSelf.phase && has(self.reason) == has(oldSelf.reason) && (!has(oldSelf.reason) || self.reason == oldSelf.reason) && has(self.result) == has(oldSelf.result) && (!has(oldSelf.result) || self.result == oldSelf.result))",
        "message": "the phase, reason and result of a Succeeded or Failed run are final"
    },
    {
        "rule": "!has(self.result) || has(oldSelf.result) || (has(oldSelf.phase) && oldSelf.phase == 'Running' && has(self.phase) && self.phase == 'Succeeded')",
        "message": "status.result may only be set together with the move from Running to Succeeded",
        "fieldPath": ".result"
    },
    {
        "rule": "!has(oldSelf.creationRevision) || (has(self.creationRevision) && self.creationRevision == oldSelf.creationRevision)",
        "message": "status.creationRevision is final once set",
        "fieldPath": ".creationRevision"
    }
]))]
pub struct ReviewRunStatus {
    /// Pending until assigned to a reviewer pod, Running while reviewed,
    /// then Succeeded or Failed (both final).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RunPhase>,
    /// Why the run finished: Submitted for Succeeded; Superseded, Duplicate,
    /// Cancelled, TimedOut, LaunchFailed, ReviewerDeleted or CheckoutFailed for Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RunReason>,
    /// A human-readable sentence about the run's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The first 7 characters of the head SHA, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_sha: Option<String>,
    /// Name of the run for the pull request's newer head SHA that made this
    /// run obsolete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// The reviewer pod incarnation this run is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Assignment>,
    /// When the run was first assigned to a reviewer pod; the timeout counts
    /// from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run reached Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The submitted review. Set by the reviewer only together with the move
    /// from Running to Succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ReviewResult>,
    /// `Succeeded` and `Current` conditions, and `Ordered=False` on a run
    /// whose place among the runs of its second could not be decided from
    /// the API server's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The spec generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The run's `resourceVersion` at its creation, recorded by the
    /// controller when it first observed the run unchanged since creation.
    /// It orders runs of one pull request created in the same second (the
    /// resolution of `creationTimestamp`) in the order the API server
    /// committed them. Final once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub creation_revision: Option<String>,
    /// Commits the pull request's head had moved past before this run made
    /// its SHA the head, kept from runs the controller deleted after their
    /// TTL: a later run for one of them is late, as it was while those runs
    /// existed. Written by the controller; only ever grows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced_shas: Vec<String>,
    /// What the operator wrote to GitHub for this run, when delivery is on.
    /// Written by the delivery loop alone (its own field manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
}

/// The run's delivery to GitHub: the check run or commit status on the
/// reviewed commit, and the pull request review.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Pending while the run is under way (or a write is being retried);
    /// then Delivered, Skipped or Failed, all final.
    pub state: DeliveryState,
    /// Why it is Skipped or Failed: `Outdated`, `HeadMoved`, the run's own
    /// reason (`Superseded`, `Cancelled`, ...), `PermissionDenied`,
    /// `NotFound` or `Unprocessable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub reason: Option<String>,
    /// The pull request review posted for the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_id: Option<i64>,
    /// The check run on the reviewed commit (GitHub App authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_run_id: Option<i64>,
    /// GitHub requests that failed and were retried.
    #[serde(default)]
    pub attempts: i64,
    /// A sentence on the last step, or GitHub's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
    /// When this state was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

impl Delivery {
    /// A delivery in `state` with nothing else known yet.
    pub fn new(state: DeliveryState) -> Self {
        Self { state, reason: None, review_id: None, check_run_id: None, attempts: 0, message: None, time: None }
    }
}

/// The state of a run's delivery.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Skipped,
    Failed,
}

impl DeliveryState {
    /// Delivered, Skipped and Failed are final.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// Lifecycle phase of a ReviewRun.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RunPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl RunPhase {
    /// Succeeded and Failed are final.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Why a ReviewRun finished.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RunReason {
    // Succeeded: the reviewer submitted its verdict.
    Submitted,
    // Failed: the pull request has a newer head SHA.
    Superseded,
    // Failed: another run already covers the same head SHA.
    Duplicate,
    // Failed: spec.cancelRequested was set.
    Cancelled,
    // Failed: Running for longer than spec.timeout.
    TimedOut,
    // Failed: the reviewer pod could not be started.
    LaunchFailed,
    // Failed: the Reviewer was deleted.
    ReviewerDeleted,
    // Failed: the reviewer pod could not check out the run's head SHA.
    CheckoutFailed,
}

impl RunReason {
    /// The reason as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "Submitted",
            Self::Superseded => "Superseded",
            Self::Duplicate => "Duplicate",
            Self::Cancelled => "Cancelled",
            Self::TimedOut => "TimedOut",
            Self::LaunchFailed => "LaunchFailed",
            Self::ReviewerDeleted => "ReviewerDeleted",
            Self::CheckoutFailed => "CheckoutFailed",
        }
    }
}

/// The reviewer pod incarnation a run is assigned to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// Name of the reviewer pod.
    pub pod: String,
    /// UID of the reviewer pod; a pod re-created with the same name has a
    /// different UID.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
    /// Incarnation number of the reviewer pod.
    pub incarnation: i64,
}

/// A submitted review.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.verdict != 'ChangesRequested' || size(self.body) > 0",
        "message": "a ChangesRequested verdict needs a non-empty body"
    }
]))]
pub struct ReviewResult {
    /// Approved or ChangesRequested.
    pub verdict: Verdict,
    /// The review text. Required (non-empty) for ChangesRequested.
    #[serde(default)]
    #[schemars(length(max = 65536))]
    pub body: String,
    /// Identifier of the review on the code host, e.g. the GitHub review id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub review_id: Option<String>,
    /// When the review was submitted.
    pub submitted_at: Time,
}

/// The reviewer's verdict.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Verdict {
    Approved,
    ChangesRequested,
}

impl ReviewRun {
    /// The conventional name of the run of `reviewer` for `url` at `sha`:
    /// `<reviewer>-<pr-hash8>-<sha7>`, where `pr-hash8` is the first 8
    /// characters of the `review.ao.dev/pr` label value. The same review
    /// always gets the same name, which makes creating it idempotent.
    pub fn conventional_name(reviewer: &str, url: &str, sha: &str) -> String {
        let pr = super::labels::pr_label_value(url);
        let sha: String = sha.chars().take(7).collect();
        format!("{reviewer}-{}-{sha}", &pr[..8])
    }

    /// The run's phase; a run without status is Pending.
    pub fn phase(&self) -> RunPhase {
        self.status.as_ref().and_then(|s| s.phase).unwrap_or(RunPhase::Pending)
    }
}

#[cfg(test)]
mod tests {
    use super::PullRequest;

    #[test]
    fn a_github_pull_request_url_gives_the_repository_and_clone_url() {
        let pr = PullRequest::new("https://github.com/acme/widgets/pull/12", "aaaaaaa");
        assert_eq!(pr.repository_name().as_deref(), Some("acme/widgets"));
        assert_eq!(pr.clone_source().as_deref(), Some("https://github.com/acme/widgets.git"));
        let enterprise = PullRequest::new("https://git.example.com/team/app/pull/3/files?w=1", "aaaaaaa");
        assert_eq!(enterprise.clone_source().as_deref(), Some("https://git.example.com/team/app.git"));
    }

    #[test]
    fn a_reviewer_may_check_out_only_runs_that_name_their_clone_url() {
        use crate::WorkspaceSpec;
        let derived = PullRequest::new("https://github.com/acme/widgets/pull/12", "aaaaaaa");
        let named = PullRequest { clone_url: Some("file:///srv/widgets.git".into()), ..derived.clone() };
        let explicit_only = WorkspaceSpec { derive_clone_url: Some(false), ..WorkspaceSpec::default() };
        assert_eq!(explicit_only.clone_source(&derived), None);
        assert_eq!(explicit_only.clone_source(&named).as_deref(), Some("file:///srv/widgets.git"));
        let default = WorkspaceSpec::default();
        assert_eq!(default.clone_source(&derived).as_deref(), Some("https://github.com/acme/widgets.git"));
        assert!(default.is_enabled());
    }

    #[test]
    fn given_fields_win_and_other_urls_give_nothing() {
        let mut pr = PullRequest::new("https://github.com/acme/widgets/pull/12", "aaaaaaa");
        pr.clone_url = Some("file:///srv/git/widgets.git".into());
        pr.repository = Some("mirror/widgets".into());
        assert_eq!(pr.clone_source().as_deref(), Some("file:///srv/git/widgets.git"));
        assert_eq!(pr.repository_name().as_deref(), Some("mirror/widgets"));
        for url in [
            "https://gitlab.example.com/acme/widgets/-/merge_requests/1",
            "https://github.com/acme/widgets/pull/",
            "https://github.com/acme/widgets/pull/x1",
            "https://github.com/acme/pull/1",
        ] {
            let pr = PullRequest::new(url, "aaaaaaa");
            assert_eq!((pr.clone_source(), pr.repository_name()), (None, None), "{url}");
        }
    }
}
