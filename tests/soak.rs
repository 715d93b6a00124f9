//! The chaos soak (`examples/soak/`) for one minute with a fixed seed, as CI runs it: the dev
//! cluster, two controller replicas and 20 Reviewers as separate processes while runs are
//! created, replayed and cancelled and processes are killed. It prints one JSON line with its
//! counts and violations and exits non-zero on any violation.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;

/// `examples/soak`, which `cargo test` builds beside the test binaries.
fn soak_example() -> PathBuf {
    let deps = std::env::current_exe().expect("the test binary's path");
    let profile = deps.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let example = profile.join("examples").join("soak");
    assert!(example.exists(), "{} is missing: `cargo test` builds the examples", example.display());
    example
}

#[test]
fn the_soak_passes_for_a_minute_with_a_fixed_seed() {
    let output = Command::new(soak_example())
        .args(["--minutes", "1", "--seed", "7", "--reviewers", "20", "--binary"])
        .arg(env!("CARGO_BIN_EXE_review-operator"))
        .arg("--plugin")
        .arg(env!("CARGO_BIN_EXE_kubectl-review"))
        .arg("--kubectl")
        .arg(support::kubectl_path())
        .output()
        .expect("the soak runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!("one JSON line ({error}): {stdout}\n{}", String::from_utf8_lossy(&output.stderr))
    });
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert!(output.status.success(), "{report}");
    for count in [
        "runs",
        "pushes",
        "supersedes",
        "controller_kills",
        "pod_kills",
        "cluster_kills",
        "late_verdicts_tried",
        "webhook_deliveries",
        "plugin_triggers",
        "probes",
    ] {
        assert!(report[count].as_u64().is_some_and(|n| n > 0), "the scenario did {count}: {report}");
    }
}
