//! The image's binary: built without the embedded dev cluster, so that what
//! the init container injects into every reviewer pod carries no API server,
//! and statically linked, so that it runs in any agent image.

use std::process::Command;

/// The `RUN` instruction of the Dockerfile's build stage, its continuation lines joined.
fn dockerfile_build() -> String {
    let dockerfile = include_str!("../Dockerfile").replace("\\\n", " ");
    dockerfile
        .lines()
        .find(|line| line.starts_with("RUN ") && line.contains("cargo build"))
        .expect("a cargo build")
        .to_owned()
}

/// Asserts that the Dockerfile's build instruction contains each of `parts`.
fn assert_build_has(parts: &[&str]) {
    let build = dockerfile_build();
    for part in parts {
        assert!(build.contains(part), "{part:?} in {build}");
    }
}

#[test]
fn the_image_links_statically_for_its_own_platform() {
    // The target is the build machine's; naming it keeps the flag off build scripts and proc macros.
    assert_build_has(&["RUSTFLAGS=\"-C target-feature=+crt-static\"", "rustc -vV", "--target \"$target\""]);
}

#[test]
fn the_image_builds_without_the_dev_cluster() {
    assert_build_has(&["--no-default-features", "--bin review-operator", "--profile image"]);
    let profile: Vec<&str> = include_str!("../Cargo.toml")
        .lines()
        .skip_while(|line| *line != "[profile.image]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(profile, ["inherits = \"release\"", "strip = \"symbols\""]);
    assert!(include_str!("../Dockerfile").contains("COPY --from=build /out/review-operator /review-operator"));
    assert_build_has(&["cp \"target/$target/image/review-operator\""]);
}

#[test]
fn without_default_features_nothing_links_the_dev_cluster() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tree = |features: &[&str]| {
        let output = Command::new(&cargo)
            .args(["tree", "--locked", "--package", "review-operator", "--edges", "normal,build"])
            .args(["--prefix", "none", "--format", "{p}"])
            .args(features)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo runs");
        assert!(output.status.success(), "cargo tree: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let names = |tree: &str| {
        tree.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect::<Vec<_>>()
    };
    let shipped = names(&tree(&["--no-default-features"]));
    assert!(shipped.iter().any(|name| name == "kube"), "the tree lists dependencies: {shipped:?}");
    for absent in ["devcluster", "redb", "rcgen"] {
        assert!(!shipped.iter().any(|name| name == absent), "{absent} is linked into the image's binary");
    }
    // The default build, the README's `review-operator dev`, has it.
    assert!(names(&tree(&[])).iter().any(|name| name == "devcluster"));
}
