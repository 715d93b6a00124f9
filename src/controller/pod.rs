//! Rule 4: the reviewer pod of one incarnation, built from `spec.agent`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, Pod, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use super::AgentLaunch;
use super::plan::PodLaunch;
use crate::api::{Reviewer, labels};

/// Name of the agent container.
pub const CONTAINER: &str = "agent";

/// The pod for `launch`, owned by `reviewer` (controller reference, so that
/// deleting the Reviewer also garbage-collects it).
///
/// `restartPolicy: Never`: a reviewer whose process exits has lost its
/// terminal, so the pod finishes and the controller starts the next
/// incarnation instead of restarting the container in place. The security
/// context is restricted: non-root, no privilege escalation, all
/// capabilities dropped, RuntimeDefault seccomp.
///
/// `None` when the Reviewer lacks the name, namespace or UID an owner
/// reference needs (it was not read from the API).
///
/// `_agent` says how the in-pod supervisor gets into the pod; the pod does
/// not carry the supervisor yet, so the agent container runs `spec.agent`
/// as given.
pub fn reviewer_pod(reviewer: &Reviewer, launch: &PodLaunch, _agent: &AgentLaunch) -> Option<Pod> {
    let owner = reviewer.controller_owner_ref(&())?;
    let name = reviewer.metadata.name.clone()?;
    let namespace = reviewer.metadata.namespace.clone()?;
    let agent = &reviewer.spec.agent;
    let pod_labels = BTreeMap::from([
        (labels::REVIEWER.to_owned(), name.clone()),
        (labels::INCARNATION.to_owned(), launch.incarnation.to_string()),
        ("app.kubernetes.io/name".to_owned(), "reviewer".to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), "review-operator".to_owned()),
    ]);
    let mut env = vec![
        env_var("REVIEW_NAMESPACE", &namespace),
        env_var("REVIEW_REVIEWER", &name),
        env_var("REVIEW_INCARNATION", &launch.incarnation.to_string()),
        env_var("REVIEW_WORKER_ID", &reviewer.spec.worker_id),
    ];
    env.extend(agent.env.iter().cloned());
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(agent.image.clone()),
        command: (!agent.command.is_empty()).then(|| agent.command.clone()),
        args: (!agent.args.is_empty()).then(|| agent.args.clone()),
        env: Some(env),
        resources: agent.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(launch.name.clone()),
            namespace: Some(namespace),
            labels: Some(pod_labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".to_owned()),
            service_account_name: Some(reviewer.spec.service_account_name.clone()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(runtime_default()),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
        status: None,
    })
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.to_owned()), value_from: None }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".to_owned(), localhost_profile: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AgentSpec, ReviewerSpec};
    use crate::controller::plan::ObservedPod;

    fn reviewer() -> Reviewer {
        let mut reviewer = Reviewer::new(
            "review-w1",
            ReviewerSpec {
                worker_id: "w1".into(),
                agent: AgentSpec {
                    image: "ghcr.io/acme/reviewer:1".into(),
                    command: vec!["reviewer".into()],
                    args: vec![],
                    env: vec![env_var("MODEL", "large")],
                    resources: None,
                    harness: None,
                },
                service_account_name: "review-agent".into(),
                launch_deadline: "5m".into(),
            },
        );
        reviewer.metadata.namespace = Some("team".into());
        reviewer.metadata.uid = Some("reviewer-uid".into());
        reviewer
    }

    fn agent() -> AgentLaunch {
        AgentLaunch::Inject { operator_image: "ghcr.io/acme/review-operator:1".into() }
    }

    #[test]
    fn reviewer_pod_is_owned_labelled_and_restricted() {
        let launch = PodLaunch { name: "review-w1-3".into(), incarnation: 3, queue: vec![] };
        let pod = reviewer_pod(&reviewer(), &launch, &agent()).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("review-w1-3"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("team"));
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Reviewer", "reviewer-uid", Some(true))
        );
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.service_account_name.as_deref(), Some("review-agent"));
        let container = &spec.containers[0];
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(security.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert_eq!(security.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        assert!(container.env.as_ref().unwrap().iter().any(|e| e.name == "MODEL"));
        // The controller recognises the pod it built.
        let mut observed = pod.clone();
        observed.metadata.uid = Some("pod-uid".into());
        assert_eq!(ObservedPod::from_pod(&observed).map(|p| p.incarnation), Some(3));
    }

    #[test]
    fn reviewer_pod_needs_an_api_read_reviewer() {
        let mut reviewer = reviewer();
        reviewer.metadata.uid = None;
        let launch = PodLaunch { name: "review-w1-1".into(), incarnation: 1, queue: vec![] };
        assert!(reviewer_pod(&reviewer, &launch, &agent()).is_none());
    }
}
