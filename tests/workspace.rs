//! The reviewer pod's workspace against local repositories: checkouts at a run's head,
//! worktrees of one clone, ancestry for the handoff, failures and credentials.

mod git_fixture;

use std::collections::BTreeMap;
use std::path::PathBuf;

use git_fixture::Repository;
use review_operator::agent::workspace::{
    CHECKOUT_ATTEMPTS, CheckoutError, SSH_KEY_ENV, TOKEN_ENV, WORKSPACE_ENV, Workspace,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn workspace(root: &std::path::Path, extra: &[(&str, &str)]) -> Workspace {
    let mut env: BTreeMap<String, String> = extra.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    env.insert(WORKSPACE_ENV.into(), root.display().to_string());
    Workspace::from_lookup(|name| env.get(name).cloned()).expect("a workspace")
}

fn read(path: &std::path::Path, file: &str) -> String {
    std::fs::read_to_string(path.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", path.display()))
}

#[test]
fn no_folder_no_workspace() {
    assert!(Workspace::from_lookup(|_| None).is_none());
    assert!(Workspace::from_lookup(|name| (name == WORKSPACE_ENV).then(String::new)).is_none());
}

#[tokio::test]
async fn each_run_gets_its_head_in_a_worktree_of_one_clone() {
    let repo = Repository::new("checkout");
    let a = repo.commit("main", None, &[("version", "A")], "A");
    let b = repo.commit("main", Some(&a), &[("version", "B")], "B");
    let root = repo.root.join("workspace");
    let workspace = workspace(&root, &[]);

    let first = workspace.checkout(&repo.url(), &a, "run-a").await.expect("A checked out");
    assert_eq!(first, root.join("run-a"));
    assert_eq!(read(&first, "version"), "A");
    let second = workspace.checkout(&repo.url(), &b, "run-b").await.expect("B checked out");
    assert_eq!(read(&second, "version"), "B");
    assert_eq!(read(&first, "version"), "A", "the first checkout stays at its own head");
    // Both are worktrees of one clone of the repository.
    let clones: Vec<PathBuf> = std::fs::read_dir(root.join(".clones")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(clones.len(), 1, "{clones:?}");

    // Checking out again (a supervisor that prepares the run a second time) keeps the checkout.
    assert_eq!(workspace.checkout(&repo.url(), &b, "run-b").await.expect("again"), second);
    // An abbreviated SHA is found among the branches.
    let short = workspace.checkout(&repo.url(), &a[..7], "run-short").await.expect("short SHA checked out");
    assert_eq!(read(&short, "version"), "A");
}

#[tokio::test]
async fn ancestry_tells_a_push_from_a_force_push() {
    let repo = Repository::new("ancestry");
    let a = repo.commit("main", None, &[("version", "A")], "A");
    let b = repo.commit("main", Some(&a), &[("version", "B")], "B");
    let rewritten = repo.commit("rewrite", None, &[("version", "C")], "C");
    let workspace = workspace(&repo.root.join("workspace"), &[]);
    workspace.checkout(&repo.url(), &b, "run-b").await.expect("B checked out");
    assert_eq!(workspace.is_ancestor(&repo.url(), &a, &b).await, Some(true));
    workspace.checkout(&repo.url(), &rewritten, "run-c").await.expect("C checked out");
    assert_eq!(workspace.is_ancestor(&repo.url(), &b, &rewritten).await, Some(false));
    // A commit the repository no longer has (force-pushed away) is no ancestor.
    let gone = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(workspace.is_ancestor(&repo.url(), gone, &b).await, Some(false));
}

#[tokio::test]
async fn a_missing_commit_or_repository_fails_after_every_attempt_with_the_reason() {
    let repo = Repository::new("missing");
    let a = repo.commit("main", None, &[("version", "A")], "A");
    let workspace = workspace(&repo.root.join("workspace"), &[]);
    let absent = "fedcba9876543210fedcba9876543210fedcba98";
    let error = workspace.checkout(&repo.url(), absent, "run-x").await.unwrap_err();
    assert_eq!(error, CheckoutError::MissingCommit { sha: absent.into(), url: repo.url() });
    assert_eq!(error.to_string(), format!("commit {absent} is not in {}", repo.url()));

    let nowhere = format!("file://{}/no-such-repository.git", repo.root.display());
    let started = std::time::Instant::now();
    let error = workspace.checkout(&nowhere, &a, "run-y").await.unwrap_err();
    let CheckoutError::Git { command, message } = &error else { panic!("{error:?}") };
    assert_eq!(command, "fetch");
    assert!(message.contains("does not appear to be a git repository"), "{message}");
    // One wait fewer than attempts, doubling from one second.
    let waits: u64 = (0..CHECKOUT_ATTEMPTS - 1).map(|n| 1 << n).sum();
    assert!(started.elapsed().as_secs() >= waits, "retried {CHECKOUT_ATTEMPTS} times");
    assert!(!repo.root.join("workspace/run-y").exists());
}

/// A server that answers every request 404 and hands back the first request's head.
async fn recording_server() -> (String, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buffer = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        String::from_utf8_lossy(&head).into_owned()
    });
    (format!("http://{address}/acme/widgets.git"), task)
}

#[tokio::test]
async fn a_token_is_sent_as_basic_auth_from_the_environment_never_the_arguments() {
    let (url, request) = recording_server().await;
    let root = std::env::temp_dir().join(format!("review-token-{}", uuid::Uuid::new_v4().simple()));
    let workspace = workspace(&root, &[(TOKEN_ENV, "s3cret"), (SSH_KEY_ENV, "  ")]);
    let error = workspace.checkout(&url, "0123456789abcdef0123456789abcdef01234567", "run-t").await.unwrap_err();
    assert!(matches!(error, CheckoutError::Git { .. }), "{error:?}");
    let head = request.await.unwrap();
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:s3cret");
    assert!(head.contains(&format!("Authorization: Basic {basic}")), "{head}");
    assert!(!format!("{workspace:?}").contains("s3cret"), "the token is not printed");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn the_earlier_review_is_a_file_beside_the_checkouts() {
    let root = std::env::temp_dir().join(format!("review-handoff-{}", uuid::Uuid::new_v4().simple()));
    let workspace = workspace(&root, &[]);
    let path = workspace.write_handoff("run-b", "earlier-review.md", "Please add a test.").unwrap();
    assert_eq!(path, root.join(".handoff/run-b/earlier-review.md"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "Please add a test.");
    let _ = std::fs::remove_dir_all(&root);
}
