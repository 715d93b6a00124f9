use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: the live reviewer pod is running.
pub const CONDITION_READY: &str = "Ready";
/// Condition type: the controller cannot start or replace the reviewer pod.
pub const CONDITION_DEGRADED: &str = "Degraded";
/// Finalizer that lets the controller remove the pod and fail unfinished
/// runs before a Reviewer goes away.
pub const FINALIZER: &str = "review.ao.dev/reviewer";

/// The spec of a Reviewer: the stable handle of one worker's reviewer agent.
// `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "review.ao.dev",
    version = "v1alpha1",
    kind = "Reviewer",
    plural = "reviewers",
    shortname = "rvr",
    category = "review",
    namespaced,
    status = "ReviewerStatus",
    derive = "PartialEq",
    doc = "The long-lived reviewer agent of one worker, named review-<worker> by convention. The controller keeps one reviewer pod for it.",
    printcolumn(name = "Worker", type_ = "string", json_path = ".spec.workerId"),
    printcolumn(name = "Pod", type_ = "string", json_path = ".status.pod.name"),
    printcolumn(name = "Incarnation", type_ = "integer", json_path = ".status.incarnation"),
    printcolumn(name = "Queue", type_ = "integer", json_path = ".status.queueLength"),
    printcolumn(name = "Restarts", type_ = "integer", json_path = ".status.restarts"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ReviewerSpec {
    /// Identifier of the coding worker whose pull requests this reviewer reviews.
    #[schemars(length(min = 1))]
    pub worker_id: String,
    /// The agent the reviewer pod runs.
    pub agent: AgentSpec,
    /// Service account of the reviewer pod.
    #[serde(default = "default_service_account_name")]
    pub service_account_name: String,
    /// How long a run may wait for a reviewer pod that cannot be started
    /// before it fails as LaunchFailed, e.g. `5m` (units h, m, s, ms).
    #[serde(default = "default_launch_deadline")]
    #[schemars(regex(pattern = r"^([0-9]+(h|m|s|ms))+$"), length(max = 32))]
    pub launch_deadline: String,
    /// Which pull requests the GitHub webhook receiver creates runs for on
    /// this Reviewer. Without it, webhooks create no runs for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<PullRequestMatch>,
    /// A checkout of each run's head for the agent to read. Without it the
    /// pod has no workspace and the prompt names no path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceSpec>,
    /// How many of the pods' kept transcripts (ReviewTranscripts) the
    /// controller keeps. Default: the last 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcripts: Option<TranscriptRetention>,
    /// The default `spec.ttlSecondsAfterFinished` of this Reviewer's runs:
    /// seconds after a run finished that the controller deletes it. Without
    /// it (and without the run's own), finished runs are kept until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub run_ttl_seconds_after_finished: Option<i64>,
}

/// Retention of a Reviewer's transcripts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptRetention {
    /// How many transcripts to keep, newest incarnations first (the live
    /// pod's counts). 0 keeps none once the pod is gone.
    #[serde(default = "default_transcripts_kept")]
    #[schemars(range(min = 0, max = 1000))]
    pub keep: i64,
}

/// Transcripts kept when `spec.transcripts` is not set.
pub const DEFAULT_TRANSCRIPTS_KEPT: i64 = 10;

fn default_transcripts_kept() -> i64 {
    DEFAULT_TRANSCRIPTS_KEPT
}

impl ReviewerSpec {
    /// The reviewer of `worker_id` running `agent`, with every other field at the default the
    /// schema gives it.
    pub fn new(worker_id: impl Into<String>, agent: AgentSpec) -> Self {
        Self {
            worker_id: worker_id.into(),
            agent,
            service_account_name: default_service_account_name(),
            launch_deadline: default_launch_deadline(),
            r#match: None,
            workspace: None,
            transcripts: None,
            run_ttl_seconds_after_finished: None,
        }
    }

    /// How many transcripts the controller keeps.
    pub fn transcripts_kept(&self) -> usize {
        let keep = self.transcripts.as_ref().map_or(DEFAULT_TRANSCRIPTS_KEPT, |t| t.keep);
        usize::try_from(keep).unwrap_or(0)
    }
}

/// Where the reviewer pod checks out the code it reviews: one clone per
/// repository on a volume of the pod, and a worktree per run at its head SHA.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// Check out runs that have a clone URL (`spec.pullRequest.cloneUrl`, or
    /// derived from a GitHub pull request URL). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Name of a Secret in the Reviewer's namespace with the credentials to
    /// fetch with: key `token` (HTTPS, sent as a basic-auth password) or key
    /// `ssh-privatekey` (SSH URLs). The kubelet hands it to the supervisor,
    /// which keeps it from the agent's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: Option<String>,
    /// Size limit of the workspace volume, e.g. `4Gi`. Default 2Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// For a run without `cloneUrl`, clone `https://HOST/OWNER/NAME.git`
    /// derived from its pull request URL. Default true; false checks out
    /// only runs that name their clone URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive_clone_url: Option<bool>,
}

impl WorkspaceSpec {
    /// Whether runs are checked out.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// Where a run of `pull_request` is cloned from, if it is checked out at all.
    pub fn clone_source(&self, pull_request: &crate::PullRequest) -> Option<String> {
        match self.derive_clone_url.unwrap_or(true) {
            true => pull_request.clone_source(),
            false => pull_request.clone_url.clone().filter(|url| !url.is_empty()),
        }
    }
}

/// The pull requests a Reviewer reviews when they arrive through the
/// webhook receiver. Every field given must accept the pull request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestMatch {
    /// Repositories as `owner/name` (compared case-insensitively, as GitHub does).
    #[schemars(length(min = 1))]
    #[schemars(inner(regex(pattern = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")))]
    pub repositories: Vec<String>,
    /// Only pull requests whose head branch starts with this, e.g. `agent/w1/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_branch_prefix: Option<String>,
    /// Only pull requests opened by these GitHub logins (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    /// Review draft pull requests too; by default a draft gets its first run
    /// when it is marked ready for review.
    #[serde(default)]
    pub drafts: bool,
    /// Labels that suppress runs for a pull request.
    #[serde(default = "default_skip_labels")]
    pub skip_labels: Vec<String>,
}

fn default_skip_labels() -> Vec<String> {
    vec!["review:skip".to_owned()]
}

fn default_service_account_name() -> String {
    "review-agent".to_owned()
}

fn default_launch_deadline() -> String {
    "5m".to_owned()
}

/// The container the reviewer pod runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// Container image of the agent.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables of the agent container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Compute resources of the agent container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Name of the agent CLI (for example `claude-code`); informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<String>,
    /// Template of the first prompt the reviewer pod writes into the agent's
    /// terminal, replacing the built-in one. Placeholders, written
    /// `{{name}}`: `{{reviewer}}` (Reviewer name), `{{worker}}` (spec.workerId),
    /// `{{namespace}}`, `{{pod}}` (pod name), `{{incarnation}}`, `{{count}}`
    /// (number of queued runs), `{{queue}}` (the numbered queue: per run its
    /// name, pull request URL, head SHA, checkout path with a workspace, the
    /// pull request's earlier review and the range left to review, and the
    /// exact submit command) and
    /// `{{submit_command}}` (the submit command with RUN in place of the
    /// run's name). Unknown placeholders are left as written. Prompts for
    /// runs assigned later list just the new runs and do not use the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub prompt: Option<String>,
    /// The user and root filesystem of the agent container. Reviewer pods
    /// run as UID and GID 65532 unless set here, so that a kubelet can
    /// verify they are not root even when the image's user is root or a
    /// name; set the user an agent image expects here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<AgentSecurityContext>,
}

impl AgentSpec {
    /// The agent `image` with its own entrypoint and nothing else set.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            command: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            resources: None,
            harness: None,
            prompt: None,
            security_context: None,
        }
    }
}

/// The settable part of the agent container's security context. Everything
/// else stays within PodSecurity "restricted" whatever is set: never
/// privileged, no privilege escalation, all capabilities dropped,
/// RuntimeDefault seccomp, non-root.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.runAsNonRoot) || self.runAsNonRoot",
        "message": "runAsNonRoot: must be true: reviewer pods never run as root (PodSecurity restricted)",
    },
]))]
pub struct AgentSecurityContext {
    /// UID the agent runs as (not 0: restricted forbids root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub run_as_user: Option<i64>,
    /// Primary GID of the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub run_as_group: Option<i64>,
    /// Must be true when set; the container always runs as non-root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// Mount the image's root filesystem read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
}

/// Observed state of a Reviewer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewerStatus {
    /// The live reviewer pod, once the controller has seen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodReference>,
    /// Incarnation of the newest reviewer pod; increments at every fresh pod.
    #[serde(default)]
    pub incarnation: i64,
    /// How many pods were replaced because their work went stale, was
    /// cancelled or timed out.
    #[serde(default)]
    pub restarts: i64,
    /// Names of the runs assigned to the live pod, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<String>,
    /// Number of entries in queue.
    #[serde(default)]
    pub queue_length: i64,
    /// The most recent replacement of the reviewer pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<LastRestart>,
    /// Set while reviewer pods keep ending soon after they start: the next
    /// pod is created only after an exponential delay. Cleared once a pod
    /// stays up, or ends after a long life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_back_off: Option<CrashBackOff>,
    /// `Ready` and `Degraded` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The spec generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Reviewer pods ending soon after they start, and when the next may start.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrashBackOff {
    /// Pods in a row that ended soon after they started.
    pub failures: i64,
    /// Incarnation of the last of them.
    pub incarnation: i64,
    /// How it ended, as the kubelet reported it.
    pub message: String,
    /// No new pod is created before this time.
    pub next_launch: Time,
}

/// A reviewer pod incarnation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodReference {
    /// Pod name, `<reviewer>-<incarnation>`.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Incarnation number.
    pub incarnation: i64,
}

/// A replacement of the reviewer pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRestart {
    /// When the controller decided to replace the pod.
    pub time: Time,
    /// Why: Superseded, Cancelled or TimedOut (the first that applies, in
    /// that order).
    pub reason: RestartReason,
    /// Names of the runs whose failure caused the replacement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
}

/// Why the reviewer pod was replaced.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum RestartReason {
    Superseded,
    Cancelled,
    TimedOut,
}

impl Reviewer {
    /// Name of the pod of `incarnation`: `<reviewer>-<incarnation>`.
    pub fn pod_name(reviewer: &str, incarnation: i64) -> String {
        format!("{reviewer}-{incarnation}")
    }
}
