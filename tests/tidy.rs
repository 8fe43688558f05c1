//! Repository hygiene: every Rust file says what it is for in a `//!` comment on its first line,
//! and nothing `.gitignore` ignores is tracked (a run directory committed by accident).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != ".git" {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "archspec", "trainer", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {} files", files.len());
    let undocumented: Vec<String> = files
        .iter()
        .filter(|path| {
            !std::fs::read_to_string(path)
                .unwrap_or_default()
                .starts_with("//!")
        })
        .map(|path| {
            path.strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a leading //! comment: {undocumented:?}"
    );
}

#[test]
fn no_tracked_file_is_one_gitignore_ignores() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new("git")
        .args(["ls-files", "--cached", "--ignored", "--exclude-standard"])
        .current_dir(root)
        .output();
    let Ok(output) = output.map_err(|e| eprintln!("skipped: git does not run: {e}")) else {
        return;
    };
    if !output.status.success() {
        eprintln!(
            "skipped: not a git checkout: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let tracked_but_ignored = String::from_utf8_lossy(&output.stdout);
    assert!(
        tracked_but_ignored.trim().is_empty(),
        "tracked files that .gitignore ignores (git rm --cached them):\n{tracked_but_ignored}"
    );
}

/// The README's first screen promises two commands; CI must run the second one (adding only
/// `--locked`, which refuses a stale `Cargo.lock`).
#[test]
fn ci_runs_the_readme_s_test_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let command = readme
        .lines()
        .skip_while(|line| !line.starts_with("# 2. The tests"))
        .nth(1)
        .expect("the README's test command after `# 2. The tests`");
    assert!(command.starts_with("cargo test"), "{command}");
    let ci = std::fs::read_to_string(root.join(".ci/run")).expect(".ci/run");
    let runs = ci
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.contains("--no-run"))
        .filter_map(|line| line.find("cargo test").map(|at| &line[at..]))
        .any(|invocation| {
            let mut words: Vec<&str> = invocation
                .split_whitespace()
                .filter(|w| *w != "--locked")
                .collect();
            let mut expected: Vec<&str> = command.split_whitespace().collect();
            words.sort_unstable();
            expected.sort_unstable();
            words == expected
        });
    assert!(runs, "`.ci/run` does not run `{command}`");
}
