//! The files in `examples/` run as the README says: `review-operator dev --no-demo` with the build
//! folder on PATH, `kubectl apply -f examples/`, then `bash examples/ci-bot.sh`.

mod dev_support;

use std::process::{Command, Stdio};

use dev_support::{DevProcess, kubectl_path, path_with_binaries, repo_root};

#[test]
fn example_files_and_the_ci_bot_script_run_against_the_dev_cluster() {
    let mut dev = DevProcess::start("examples", &["--no-demo"]);
    dev.wait_ready();
    dev.poll("the CRDs installed", |dev| dev.stdout().contains("export KUBECONFIG=").then_some(()));

    // The objects the dev command installs from deploy/ are the ones kubectl reads from the same
    // files, so applying them again is no conflict.
    let deploy = repo_root().join("deploy");
    let reapplied = dev.kubectl_ok(&[
        "apply",
        "--server-side",
        "-f",
        &deploy.join("reviewer-rbac.yaml").display().to_string(),
        "-f",
        &deploy.join("admission-policy.yaml").display().to_string(),
    ]);
    assert_eq!(reapplied.lines().count(), 5, "{reapplied}");

    let examples = repo_root().join("examples");
    let applied = dev.kubectl_ok(&["apply", "-f", &examples.display().to_string()]);
    assert_eq!(
        applied.lines().collect::<Vec<_>>(),
        [
            "namespace/demo created",
            "serviceaccount/review-agent created",
            "rolebinding.rbac.authorization.k8s.io/review-agent created",
            "reviewer.review.ao.dev/review-example created",
            "reviewrun.review.ao.dev/review-example-pr1-0a1b2c3 created",
        ]
    );
    dev.kubectl_ok(&[
        "wait",
        "-n",
        "demo",
        "--for=jsonpath={.status.phase}=Succeeded",
        "reviewrun/review-example-pr1-0a1b2c3",
        "--timeout=180s",
    ]);
    let verdict = dev.kubectl_ok(&[
        "get",
        "rr",
        "review-example-pr1-0a1b2c3",
        "-n",
        "demo",
        "-o",
        "jsonpath={.status.result.verdict}",
    ]);
    assert_eq!(verdict, "Approved", "the example run's verdict");

    // The user's shell: kubectl and the build folder on PATH, KUBECONFIG from the dev command.
    let kubectl_dir = kubectl_path().parent().expect("kubectl folder").to_path_buf();
    let path = format!("{}:{}", kubectl_dir.display(), path_with_binaries());
    let out = Command::new("bash")
        .arg(examples.join("ci-bot.sh"))
        .current_dir(repo_root())
        .env("PATH", path)
        .env("KUBECONFIG", &dev.kubeconfig)
        .env("HOME", &dev.dir)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ci-bot.sh failed:\nstdout:\n{stdout}\nstderr:\n{stderr}");

    let pushed: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("ci-bot: pushed "))
        .filter_map(|line| line.split_once(": reviewrun.review.ao.dev/"))
        .map(|(_, rest)| rest.trim_end_matches(" created"))
        .collect();
    let [first, second] = pushed[..] else { panic!("two pushes reported on stderr: {stderr}") };
    assert!(stdout.contains(&format!("ci-bot: {first}: Superseded by {second}")), "stdout:\n{stdout}");
    assert!(stdout.contains("ci-bot: verdict for "), "stdout:\n{stdout}");
    assert!(stdout.contains(": Approved"), "stdout:\n{stdout}");
    let table: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("NAME "))
        .skip(1)
        .map(|line| line.split_whitespace().collect())
        .collect();
    let phases: Vec<(&str, &str, &str)> = table.iter().map(|row| (row[0], row[4], row[5])).collect();
    assert!(phases.contains(&(first, "Failed", "Superseded")), "runs printed: {phases:?}");
    assert!(phases.contains(&(second, "Succeeded", "Submitted")), "runs printed: {phases:?}");
    assert!(phases.contains(&("review-example-pr1-0a1b2c3", "Succeeded", "Submitted")), "runs printed: {phases:?}");

    // The final objects, read back with kubectl.
    let superseded_by =
        dev.kubectl_ok(&["get", "rr", first, "-n", "demo", "-o", "jsonpath={.status.reason}/{.status.supersededBy}"]);
    assert_eq!(superseded_by, format!("Superseded/{second}"));
    let verdict = dev.kubectl_ok(&["get", "rr", second, "-n", "demo", "-o", "jsonpath={.status.result.verdict}"]);
    assert_eq!(verdict, "Approved");
    let incarnation: u64 = dev
        .kubectl_ok(&["get", "rvr", "review-example", "-n", "demo", "-o", "jsonpath={.status.incarnation}"])
        .trim()
        .parse()
        .expect("incarnation is a number");
    assert!(incarnation >= 2, "the superseded review restarted the reviewer; incarnation {incarnation}");

    // A signed GitHub delivery, sent with curl and openssl as the README shows.
    let announced = dev.stdout();
    let line = announced.lines().find(|l| l.starts_with("GitHub webhook receiver at ")).expect("the receiver line");
    let (url, secret) = line
        .strip_prefix("GitHub webhook receiver at ")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|rest| rest.split_once(" (secret in "))
        .expect("URL and secret path");
    let out = Command::new("bash")
        .arg(examples.join("github/deliver.sh"))
        .current_dir(repo_root())
        .env("WEBHOOK_URL", url)
        .env("WEBHOOK_SECRET_FILE", secret)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "deliver.sh failed: {answer}{}", String::from_utf8_lossy(&out.stderr));
    assert!(answer.trim_end().ends_with("\n201"), "created: {answer}");
    let run = answer.split('"').find(|part| part.starts_with("demo/")).and_then(|name| name.strip_prefix("demo/"));
    let run = run.unwrap_or_else(|| panic!("the created run: {answer}"));
    dev.kubectl_ok(&[
        "wait",
        "-n",
        "demo",
        "--for=jsonpath={.status.phase}=Succeeded",
        &format!("rr/{run}"),
        "--timeout=180s",
    ]);

    let status = dev.interrupt();
    assert_eq!(status.code(), Some(0), "dev exits cleanly on Ctrl-C; stderr:\n{}", dev.stderr());
}
