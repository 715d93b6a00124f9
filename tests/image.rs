//! The image's binary: built without the embedded dev cluster, so that what
//! the init container injects into every reviewer pod carries no API server,
//! and statically linked, so that it runs in any agent image.

#[path = "../crates/devcluster/tests/support/mod.rs"]
mod support;

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
    assert_eq!(
        profile,
        ["inherits = \"release\"", "strip = \"symbols\"", "lto = \"fat\"", "codegen-units = 1"],
        "the image binary is built stripped and optimized as one unit"
    );
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

/// The host's target triple, as the Dockerfile reads it.
fn host_target() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc).arg("-vV").output().expect("rustc runs");
    let version = String::from_utf8(output.stdout).expect("utf-8");
    version.lines().find_map(|line| line.strip_prefix("host: ")).expect("a host line").to_owned()
}

/// The ELF program header types of `binary`, and the `DT_NEEDED` entries of its dynamic section
/// (64-bit little-endian ELF, the targets the image is built for).
fn elf_program_headers(binary: &[u8]) -> (Vec<u32>, usize) {
    assert_eq!(&binary[..4], b"\x7fELF", "an ELF file");
    assert_eq!((binary[4], binary[5]), (2, 1), "64-bit little-endian");
    let u16_at = |at: usize| u16::from_le_bytes([binary[at], binary[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(binary[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(binary[at..at + 8].try_into().unwrap()) as usize;
    let (offset, size, count) = (u64_at(32), u16_at(54), u16_at(56));
    let mut types = Vec::new();
    let mut needed = 0;
    for header in (0..count).map(|i| offset + i * size) {
        let kind = u32_at(header);
        types.push(kind);
        const PT_DYNAMIC: u32 = 2;
        if kind == PT_DYNAMIC {
            let (start, length) = (u64_at(header + 8), u64_at(header + 32));
            const DT_NEEDED: u64 = 1;
            needed += (start..start + length).step_by(16).filter(|&entry| u64_at(entry) as u64 == DT_NEEDED).count();
        }
    }
    (types, needed)
}

/// The image's build, with the Dockerfile's flags and target (in the debug profile, to keep the
/// test short; linking is the same): no ELF interpreter and no shared libraries, so it runs in
/// any agent image. Run against the dev cluster under the name `localhost`, it shows that name
/// lookups work without glibc's NSS libraries.
#[tokio::test]
async fn the_image_build_has_no_elf_interpreter_and_resolves_names_statically() {
    let target = host_target();
    let target_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/static-image");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = tokio::process::Command::new(cargo)
        .args(["build", "--locked", "--no-default-features", "--target", &target])
        .args(["--bin", "review-operator", "--bin", "kubectl-review"])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .expect("cargo runs");
    // Cargo's progress comes first and the cause last: show the errors and the end.
    let stderr = String::from_utf8_lossy(&build.stderr);
    let errors: Vec<&str> =
        stderr.lines().filter(|line| line.starts_with("error") || line.contains("error:")).collect();
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(
        build.status.success(),
        "static build failed ({}):\n{}\n...\n{}",
        build.status,
        errors.join("\n"),
        tail.join("\n")
    );
    let binaries = std::path::Path::new(target_dir).join(&target).join("debug");
    for name in ["review-operator", "kubectl-review"] {
        let binary = std::fs::read(binaries.join(name)).expect("the binary was built");
        let (types, needed) = elf_program_headers(&binary);
        const PT_INTERP: u32 = 3;
        assert!(!types.contains(&PT_INTERP), "{name} names an ELF interpreter: {types:?}");
        assert_eq!(needed, 0, "{name} needs shared libraries");
    }

    let cluster = support::cluster_without_pods().await;
    let client = cluster.client().expect("client");
    review_operator::dev::manifests::install(&client).await.expect("CRDs installed");
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig_path()).expect("kubeconfig");
    let by_name =
        kubeconfig.replace(&cluster.address().to_string(), &format!("localhost:{}", cluster.address().port()));
    assert_ne!(by_name, kubeconfig, "the kubeconfig names the server's address");
    let path = std::path::Path::new(target_dir).join(format!("localhost-{}.kubeconfig", cluster.address().port()));
    std::fs::write(&path, by_name).expect("kubeconfig written");
    let mut list = tokio::process::Command::new(binaries.join("kubectl-review"));
    list.args(["get", "-n", "default"]).env("KUBECONFIG", &path);
    let out = support::run_command(list, None).await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.code, 0, "the static plugin reached the API server as localhost: {}", out.stderr);
}
