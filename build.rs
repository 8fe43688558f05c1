//! Bundles the cognition base (`cognition/*.yaml`) into the binary, so `archlab` finds it
//! wherever it runs. User entries are added at run time from directories.

use std::fmt::Write;
use std::path::Path;

fn main() {
    // Read at run time, not `env!`: a build script compiled for one checkout can be run for
    // another sharing its target directory, and must read the cognition base of the crate it
    // builds.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join("cognition");
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading the cognition base {}: {e}", dir.display()));
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    // An empty base would build a binary whose Researcher retrieves nothing, silently.
    assert!(
        !files.is_empty(),
        "the cognition base {} holds no .yaml entries",
        dir.display()
    );
    files.sort();
    let mut code = String::from(
        "/// Built-in cognition entries: (file name, YAML text).\npub const BUILT_IN: &[(&str, &str)] = &[\n",
    );
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let _ = writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("cognition_entries.rs");
    std::fs::write(out, code).expect("writing the bundled cognition list");
}
