#!/usr/bin/env bash
# The release build of the `archlab` binary, exactly as the images run it (docker/*.Dockerfile)
# and as CI runs it. Arguments go to cargo, e.g. `--features tch` for the libtorch trainer.
# Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin archlab "$@" >&2
echo "target/release/archlab"
