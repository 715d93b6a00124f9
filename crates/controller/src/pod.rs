//! The reviewer pod of one incarnation, built from `spec.agent`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSecurityContext,
    PodSpec, ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use super::AgentLaunch;
use super::plan::PodLaunch;
use crate::api::pod_env::{SSH_KEY_ENV, TOKEN_ENV, WORKSPACE_ENV};
use crate::api::{AgentSecurityContext, AgentSpec, Reviewer, WorkspaceSpec, labels};

/// Name of the agent container.
pub const CONTAINER: &str = "agent";
/// Name of the init container that installs the supervisor ([`AgentLaunch::Inject`]).
pub const INSTALL_CONTAINER: &str = "install-review-operator";
/// Where the operator image holds its binary.
pub const IMAGE_BINARY: &str = "/review-operator";
/// Directory of the shared `emptyDir` the init container copies the binary into.
pub const INJECTED_DIR: &str = "/opt/review-operator";
/// The injected binary, as the agent container runs it.
pub const INJECTED_BINARY: &str = "/opt/review-operator/review-operator";
/// Name of the shared `emptyDir` volume.
pub const BINARY_VOLUME: &str = "review-operator-bin";
/// Name of the `emptyDir` volume that holds the checkouts (`spec.workspace`).
pub const WORKSPACE_VOLUME: &str = "workspace";
/// Where the agent container mounts the workspace volume.
pub const WORKSPACE_DIR: &str = "/workspace";
/// The workspace volume's size limit unless `spec.workspace.sizeLimit` says otherwise.
pub const DEFAULT_WORKSPACE_SIZE: &str = "2Gi";
/// The keys of `spec.workspace.credentialsSecret` the supervisor reads.
pub const TOKEN_KEY: &str = "token";
pub const SSH_KEY_KEY: &str = "ssh-privatekey";
/// The cluster autoscaler keeps a node that runs a pod with an `emptyDir`
/// (the supervisor's) unless the pod says it may be evicted. A reviewer pod
/// may: the controller replaces it, and its runs go to the next incarnation.
pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// UID and GID reviewer pods run as unless `spec.agent.securityContext` says
/// otherwise: the operator image's user (distroless `nonroot`). A kubelet
/// refuses `runAsNonRoot` for an image whose user is a name, or root,
/// unless the pod names a numeric user.
pub const DEFAULT_USER: i64 = 65532;

/// The pod for `launch`, owned by `reviewer` (controller reference, so that
/// deleting the Reviewer also garbage-collects it).
///
/// `restartPolicy: Never`: a reviewer whose process exits has lost its
/// terminal, so the pod finishes and the controller starts the next
/// incarnation instead of restarting the container in place. The security
/// context is restricted: non-root, no privilege escalation, all
/// capabilities dropped, RuntimeDefault seccomp. The pod runs as
/// [`DEFAULT_USER`]; `spec.agent.securityContext` may give the agent
/// container another non-root user, never more privilege.
///
/// The agent container runs the in-pod supervisor (`review-operator agent --
/// <spec.agent.command> <spec.agent.args>`), which holds the agent's
/// terminal; see [`AgentLaunch`] for how the binary gets there. The agent
/// must therefore be named in `spec.agent.command` (or `args`): the image's
/// own entrypoint cannot be wrapped, as the controller never reads images.
/// The container has neither `stdin` nor `tty`: the supervisor allocates the
/// agent's pseudo-terminal itself and mirrors it to its stdout, so the
/// container's log stays a plain transcript and nothing depends on
/// `kubectl attach`.
///
/// Downward-API variables `POD_NAME`, `POD_UID` and `POD_NAMESPACE` tell the
/// supervisor and `submit` which pod they run in.
///
/// `None` when the Reviewer lacks the name, namespace or UID an owner
/// reference needs (it was not read from the API).
pub fn reviewer_pod(reviewer: &Reviewer, launch: &PodLaunch, agent_launch: &AgentLaunch) -> Option<Pod> {
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
        field_ref("POD_NAME", "metadata.name"),
        field_ref("POD_UID", "metadata.uid"),
        field_ref("POD_NAMESPACE", "metadata.namespace"),
        env_var("REVIEW_NAMESPACE", &namespace),
        env_var("REVIEW_REVIEWER", &name),
        env_var("REVIEW_INCARNATION", &launch.incarnation.to_string()),
        env_var("REVIEW_WORKER_ID", &reviewer.spec.worker_id),
    ];
    let workspace = reviewer.spec.workspace.as_ref().filter(|w| w.is_enabled());
    if let Some(workspace) = workspace {
        // A local binary runs as a process of the dev cluster's node, in the container's own
        // working directory: the workspace is a folder there rather than a mounted volume.
        let dir = match agent_launch {
            AgentLaunch::Inject { .. } => WORKSPACE_DIR,
            AgentLaunch::LocalBinary { .. } => "workspace",
        };
        env.push(env_var(WORKSPACE_ENV, dir));
        env.extend(credential_env(workspace));
    }
    env.extend(agent.env.iter().cloned());
    let supervisor = match agent_launch {
        AgentLaunch::Inject { .. } => INJECTED_BINARY.to_owned(),
        AgentLaunch::LocalBinary { path } => path.display().to_string(),
    };
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(agent.image.clone()),
        command: Some(supervised_command(&supervisor, agent)),
        env: Some(env),
        resources: agent.resources.clone(),
        security_context: Some(agent_security(agent.security_context.as_ref())),
        volume_mounts: mounts(agent_launch, workspace.is_some()),
        ..Container::default()
    };
    let (init_containers, mut volumes) = match agent_launch {
        AgentLaunch::Inject { operator_image } => (
            Some(vec![Container {
                name: INSTALL_CONTAINER.to_owned(),
                image: Some(operator_image.clone()),
                command: Some(vec![IMAGE_BINARY.to_owned(), "install".to_owned(), INJECTED_BINARY.to_owned()]),
                // The operator image's own user, whatever the agent runs as.
                security_context: Some(SecurityContext {
                    run_as_user: Some(DEFAULT_USER),
                    run_as_group: Some(DEFAULT_USER),
                    ..restricted()
                }),
                volume_mounts: Some(vec![binary_mount(false)]),
                resources: Some(install_resources()),
                ..Container::default()
            }]),
            Some(vec![Volume {
                name: BINARY_VOLUME.to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            }]),
        ),
        AgentLaunch::LocalBinary { .. } => (None, None),
    };
    if let (Some(workspace), AgentLaunch::Inject { .. }) = (workspace, agent_launch) {
        let size = workspace.size_limit.clone().unwrap_or_else(|| Quantity(DEFAULT_WORKSPACE_SIZE.to_owned()));
        volumes.get_or_insert_with(Vec::new).push(Volume {
            name: WORKSPACE_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource { size_limit: Some(size), ..EmptyDirVolumeSource::default() }),
            ..Volume::default()
        });
    }
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(launch.name.clone()),
            namespace: Some(namespace),
            labels: Some(pod_labels),
            annotations: Some(BTreeMap::from([(SAFE_TO_EVICT.to_owned(), "true".to_owned())])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            init_containers,
            containers: vec![container],
            volumes,
            restart_policy: Some("Never".to_owned()),
            service_account_name: Some(reviewer.spec.service_account_name.clone()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(DEFAULT_USER),
                run_as_group: Some(DEFAULT_USER),
                seccomp_profile: Some(runtime_default()),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
        status: None,
    })
}

/// `<supervisor> agent -- <spec.agent.command> <spec.agent.args>`.
fn supervised_command(supervisor: &str, agent: &AgentSpec) -> Vec<String> {
    let mut command = vec![supervisor.to_owned(), "agent".to_owned(), "--".to_owned()];
    command.extend(agent.command.iter().cloned());
    command.extend(agent.args.iter().cloned());
    command
}

/// The agent container's mounts: the injected binary, and the workspace when enabled.
fn mounts(agent_launch: &AgentLaunch, workspace: bool) -> Option<Vec<VolumeMount>> {
    let AgentLaunch::Inject { .. } = agent_launch else { return None };
    let mut mounts = vec![binary_mount(true)];
    if workspace {
        mounts.push(VolumeMount {
            name: WORKSPACE_VOLUME.to_owned(),
            mount_path: WORKSPACE_DIR.to_owned(),
            ..VolumeMount::default()
        });
    }
    Some(mounts)
}

/// The credentials Secret's keys as optional variables: the kubelet resolves them, so the
/// reviewer's service account needs no access to Secrets, and the supervisor removes them from
/// the agent's environment.
fn credential_env(workspace: &WorkspaceSpec) -> Vec<EnvVar> {
    let Some(secret) = &workspace.credentials_secret else { return Vec::new() };
    let key = |name: &str, key: &str| EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.clone(), key: key.to_owned(), optional: Some(true) }),
            ..EnvVarSource::default()
        }),
    };
    vec![key(TOKEN_ENV, TOKEN_KEY), key(SSH_KEY_ENV, SSH_KEY_KEY)]
}

fn binary_mount(read_only: bool) -> VolumeMount {
    VolumeMount {
        name: BINARY_VOLUME.to_owned(),
        mount_path: INJECTED_DIR.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

/// What copying the supervisor binary needs. Set so that a namespace whose
/// ResourceQuota covers cpu or memory admits the pod at all (quota refuses
/// containers without requests and limits for what it limits).
fn install_resources() -> ResourceRequirements {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(quantities("10m", "32Mi")),
        limits: Some(quantities("200m", "64Mi")),
        ..ResourceRequirements::default()
    }
}

/// [`restricted`] with what `spec.agent.securityContext` sets. Only the user,
/// group and root filesystem come from the spec; `runAsNonRoot` stays true
/// (the CRD rejects false), so the result is restricted whatever is set.
fn agent_security(settings: Option<&AgentSecurityContext>) -> SecurityContext {
    let Some(settings) = settings else { return restricted() };
    SecurityContext {
        run_as_user: settings.run_as_user,
        run_as_group: settings.run_as_group,
        read_only_root_filesystem: settings.read_only_root_filesystem,
        ..restricted()
    }
}

fn field_ref(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { api_version: None, field_path: field_path.to_owned() }),
            ..EnvVarSource::default()
        }),
    }
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
    use crate::plan::ObservedPod;

    fn reviewer() -> Reviewer {
        let mut reviewer = Reviewer::new(
            "review-w1",
            ReviewerSpec::new(
                "w1",
                AgentSpec {
                    command: vec!["reviewer".into()],
                    env: vec![env_var("MODEL", "large")],
                    ..AgentSpec::new("ghcr.io/acme/reviewer:1")
                },
            ),
        );
        reviewer.metadata.namespace = Some("team".into());
        reviewer.metadata.uid = Some("reviewer-uid".into());
        reviewer
    }

    fn local() -> AgentLaunch {
        AgentLaunch::LocalBinary { path: "/usr/local/bin/review-operator".into() }
    }

    fn launch() -> PodLaunch {
        PodLaunch { name: "review-w1-3".into(), incarnation: 3, queue: vec![] }
    }

    #[test]
    fn local_binary_runs_the_supervisor_directly() {
        let mut reviewer = reviewer();
        reviewer.spec.agent.args = vec!["--model".into(), "large".into()];
        let pod = reviewer_pod(&reviewer, &launch(), &local()).unwrap();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.init_containers, None);
        assert_eq!(spec.volumes, None);
        let container = &spec.containers[0];
        assert_eq!(
            container.command.as_deref().unwrap(),
            ["/usr/local/bin/review-operator", "agent", "--", "reviewer", "--model", "large"]
        );
        assert_eq!(container.args, None);
        assert_eq!(container.volume_mounts, None);
        assert_eq!((container.stdin, container.tty), (None, None));
    }

    #[test]
    fn inject_copies_the_binary_into_a_shared_empty_dir() {
        let inject = AgentLaunch::Inject { operator_image: "ghcr.io/acme/review-operator:0.1".into() };
        let pod = reviewer_pod(&reviewer(), &launch(), &inject).unwrap();
        let spec = pod.spec.unwrap();
        let volumes = spec.volumes.unwrap();
        assert_eq!(volumes.len(), 1);
        assert_eq!(volumes[0].name, BINARY_VOLUME);
        assert!(volumes[0].empty_dir.is_some());
        let init = &spec.init_containers.unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("ghcr.io/acme/review-operator:0.1"));
        assert_eq!(
            init.command.as_deref().unwrap(),
            ["/review-operator", "install", "/opt/review-operator/review-operator"]
        );
        let init_mount = &init.volume_mounts.as_ref().unwrap()[0];
        assert_eq!((init_mount.mount_path.as_str(), init_mount.read_only), ("/opt/review-operator", Some(false)));
        assert_eq!(init.security_context.as_ref().unwrap().run_as_non_root, Some(true));
        let resources = init.resources.as_ref().unwrap();
        for quantities in [&resources.requests, &resources.limits] {
            let quantities = quantities.as_ref().unwrap();
            assert!(quantities.contains_key("cpu") && quantities.contains_key("memory"), "{quantities:?}");
        }
        let container = &spec.containers[0];
        assert_eq!(container.image.as_deref(), Some("ghcr.io/acme/reviewer:1"));
        assert_eq!(
            container.command.as_deref().unwrap(),
            ["/opt/review-operator/review-operator", "agent", "--", "reviewer"]
        );
        let mount = &container.volume_mounts.as_ref().unwrap()[0];
        assert_eq!((mount.name.as_str(), mount.read_only), (BINARY_VOLUME, Some(true)));
    }

    #[test]
    fn reviewer_pod_tells_the_supervisor_who_it_is() {
        let pod = reviewer_pod(&reviewer(), &launch(), &local()).unwrap();
        let env = pod.spec.unwrap().containers[0].env.clone().unwrap();
        let field = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
                .map(|f| f.field_path.clone())
        };
        assert_eq!(field("POD_NAME").as_deref(), Some("metadata.name"));
        assert_eq!(field("POD_UID").as_deref(), Some("metadata.uid"));
        assert_eq!(field("POD_NAMESPACE").as_deref(), Some("metadata.namespace"));
        let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
        assert_eq!(value("REVIEW_REVIEWER").as_deref(), Some("review-w1"));
        assert_eq!(value("REVIEW_INCARNATION").as_deref(), Some("3"));
        assert_eq!(value("REVIEW_NAMESPACE").as_deref(), Some("team"));
    }

    #[test]
    fn reviewer_pod_is_owned_labelled_and_restricted() {
        let launch = PodLaunch { name: "review-w1-3".into(), incarnation: 3, queue: vec![] };
        let pod = reviewer_pod(&reviewer(), &launch, &local()).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("review-w1-3"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("team"));
        let annotations = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.get(SAFE_TO_EVICT).map(String::as_str), Some("true"));
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
    fn reviewer_pod_runs_as_a_numeric_non_root_user() {
        let inject = AgentLaunch::Inject { operator_image: "ghcr.io/acme/review-operator:0.1".into() };
        let spec = reviewer_pod(&reviewer(), &launch(), &inject).unwrap().spec.unwrap();
        let pod = spec.security_context.as_ref().unwrap();
        assert_eq!((pod.run_as_user, pod.run_as_group, pod.run_as_non_root), (Some(65532), Some(65532), Some(true)));
        let init = spec.init_containers.as_ref().unwrap()[0].security_context.clone().unwrap();
        assert_eq!((init.run_as_user, init.run_as_group), (Some(65532), Some(65532)));
        let agent = spec.containers[0].security_context.clone().unwrap();
        assert_eq!(agent.run_as_user, None, "the agent inherits the pod's user");
        assert_eq!(agent, restricted());
    }

    #[test]
    fn agent_security_context_sets_the_user_and_nothing_more() {
        let mut reviewer = reviewer();
        reviewer.spec.agent.security_context = Some(AgentSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
        });
        let inject = AgentLaunch::Inject { operator_image: "ghcr.io/acme/review-operator:0.1".into() };
        let spec = reviewer_pod(&reviewer, &launch(), &inject).unwrap().spec.unwrap();
        let agent = spec.containers[0].security_context.clone().unwrap();
        assert_eq!((agent.run_as_user, agent.run_as_group), (Some(1000), Some(1000)));
        assert_eq!(agent.read_only_root_filesystem, Some(true));
        assert_eq!(
            (agent.run_as_non_root, agent.allow_privilege_escalation, agent.privileged),
            (Some(true), Some(false), Some(false))
        );
        assert_eq!(agent.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(agent.seccomp_profile.unwrap().type_, "RuntimeDefault");
        // The supervisor's installer keeps the operator image's user.
        let init = spec.init_containers.as_ref().unwrap()[0].security_context.clone().unwrap();
        assert_eq!(init.run_as_user, Some(65532));
    }

    /// Delivery to GitHub is the controller's: nothing of a GitHub credential, nor any Secret,
    /// reaches a reviewer pod.
    #[test]
    fn reviewer_pods_get_no_secret() {
        let inject = AgentLaunch::Inject { operator_image: "ghcr.io/acme/review-operator:0.1".into() };
        let spec = reviewer_pod(&reviewer(), &launch(), &inject).unwrap().spec.unwrap();
        let volumes = spec.volumes.unwrap_or_default();
        assert!(volumes.iter().all(|v| v.secret.is_none() && v.projected.is_none()), "{volumes:?}");
        for container in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
            let env = container.env.clone().unwrap_or_default();
            assert!(env.iter().all(|e| e.value_from.as_ref().is_none_or(|v| v.secret_key_ref.is_none())), "{env:?}");
            assert!(env.iter().all(|e| !e.name.contains("GITHUB")), "{env:?}");
            assert!(container.env_from.is_none());
        }
    }

    fn env_of(container: &Container, name: &str) -> Option<EnvVar> {
        container.env.as_ref()?.iter().find(|e| e.name == name).cloned()
    }

    #[test]
    fn a_workspace_is_a_sized_volume_with_credentials_only_from_the_kubelet() {
        let mut reviewer = reviewer();
        reviewer.spec.workspace = Some(WorkspaceSpec {
            credentials_secret: Some("git-credentials".into()),
            size_limit: Some(Quantity("8Gi".into())),
            ..WorkspaceSpec::default()
        });
        let inject = AgentLaunch::Inject { operator_image: "ghcr.io/acme/review-operator:0.1".into() };
        let spec = reviewer_pod(&reviewer, &launch(), &inject).unwrap().spec.unwrap();
        let volume = spec.volumes.unwrap().into_iter().find(|v| v.name == WORKSPACE_VOLUME).expect("workspace volume");
        assert_eq!(volume.empty_dir.unwrap().size_limit, Some(Quantity("8Gi".into())));
        let container = &spec.containers[0];
        let mount = container.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == WORKSPACE_VOLUME).cloned();
        assert_eq!(mount.map(|m| (m.mount_path, m.read_only)), Some(("/workspace".to_owned(), None)));
        assert_eq!(env_of(container, WORKSPACE_ENV).and_then(|e| e.value).as_deref(), Some("/workspace"));
        for (name, key) in [(TOKEN_ENV, TOKEN_KEY), (SSH_KEY_ENV, SSH_KEY_KEY)] {
            let from = env_of(container, name).and_then(|e| e.value_from).and_then(|v| v.secret_key_ref);
            let expected = SecretKeySelector { name: "git-credentials".into(), key: key.into(), optional: Some(true) };
            assert_eq!(from, Some(expected), "{name}");
        }

        // Without a size, the default; as a local process, a folder in the working directory.
        reviewer.spec.workspace = Some(WorkspaceSpec::default());
        let spec = reviewer_pod(&reviewer, &launch(), &inject).unwrap().spec.unwrap();
        let volume = spec.volumes.unwrap().into_iter().find(|v| v.name == WORKSPACE_VOLUME).unwrap();
        assert_eq!(volume.empty_dir.unwrap().size_limit, Some(Quantity(DEFAULT_WORKSPACE_SIZE.into())));
        assert_eq!(env_of(&spec.containers[0], TOKEN_ENV), None);
        let spec = reviewer_pod(&reviewer, &launch(), &local()).unwrap().spec.unwrap();
        assert_eq!(env_of(&spec.containers[0], WORKSPACE_ENV).and_then(|e| e.value).as_deref(), Some("workspace"));
        assert_eq!(spec.volumes, None);
    }

    #[test]
    fn a_disabled_or_absent_workspace_adds_nothing() {
        let inject = AgentLaunch::Inject { operator_image: "ghcr.io/acme/review-operator:0.1".into() };
        let mut reviewer = reviewer();
        for workspace in [None, Some(WorkspaceSpec { enabled: Some(false), ..WorkspaceSpec::default() })] {
            reviewer.spec.workspace = workspace;
            let spec = reviewer_pod(&reviewer, &launch(), &inject).unwrap().spec.unwrap();
            assert_eq!(spec.volumes.unwrap().len(), 1);
            assert_eq!(spec.containers[0].volume_mounts.as_ref().unwrap().len(), 1);
            assert_eq!(env_of(&spec.containers[0], WORKSPACE_ENV), None);
        }
    }

    #[test]
    fn reviewer_pod_needs_an_api_read_reviewer() {
        let mut reviewer = reviewer();
        reviewer.metadata.uid = None;
        let launch = PodLaunch { name: "review-w1-1".into(), incarnation: 1, queue: vec![] };
        assert!(reviewer_pod(&reviewer, &launch, &local()).is_none());
    }
}
