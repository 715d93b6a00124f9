//! The environment the controller gives a reviewer pod and the agent in it
//! reads: the contract between the two.

/// The workspace folder (`/workspace` in a pod; the pod builder sets it).
pub const WORKSPACE_ENV: &str = "REVIEW_WORKSPACE";
/// A token for HTTPS fetches, from `spec.workspace.credentialsSecret`.
pub const TOKEN_ENV: &str = "REVIEW_GIT_TOKEN";
/// A private key for SSH fetches, from `spec.workspace.credentialsSecret`.
pub const SSH_KEY_ENV: &str = "REVIEW_GIT_SSH_KEY";
