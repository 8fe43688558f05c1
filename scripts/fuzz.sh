#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the code that reads untrusted input:
# the archspec parser, checker and mutation operators (fuzz/fuzz_targets/archspec_check.rs) and
# the trainer-output readers (fuzz/fuzz_targets/trainer_output.rs).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#
# cargo-fuzz passes rustc flags that stable rustc keeps for nightly (-Z…); RUSTC_BOOTSTRAP=1
# lets this stable toolchain take them, and `-s none` leaves out AddressSanitizer (it needs a
# nightly standard library; the targets are safe Rust, so a panic or a failed assertion is what
# a fuzzer finds here). The seeds are the library, every cognition sketch, the examples'
# programs and fuzz/seeds/; the growing corpus and any crash are kept under ~/.cache.
# A crash fails the script and names the input file: make it a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
cache=${ARCHLAB_FUZZ_CACHE:-$HOME/.cache/archlab-fuzz}
tools=$cache/tools
if ! [ -x "$tools/bin/cargo-fuzz" ]; then
  cargo install --quiet --locked cargo-fuzz@0.13.2 --root "$tools"
fi
export PATH="$tools/bin:$PATH" RUSTC_BOOTSTRAP=1
options=(-s none -O --target-dir "$cache/target")
(cd fuzz && cargo fuzz build "${options[@]}")

# Seeds for the checker: each library program, each cognition sketch (the YAML's `archspec: |-`
# block, unindented) and each program an example names.
seeds=$cache/seeds/archspec_check
rm -rf "$seeds" && mkdir -p "$seeds"
cp archspec/library/*.arch "$seeds/"
for yaml in cognition/*.yaml; do
  awk '/^archspec: \|/ { inside = 1; next } inside && /^[^ ]/ { exit } inside { sub(/^  /, ""); print }' \
    "$yaml" > "$seeds/sketch-$(basename "$yaml" .yaml).arch"
done
find examples -name '*.arch' -exec cp {} "$seeds/" \;

for target in archspec_check trainer_output; do
  corpus=$cache/corpus/$target
  mkdir -p "$corpus" "$cache/artifacts/$target"
  extra=$PWD/fuzz/seeds/$target
  [ "$target" = archspec_check ] && extra=$seeds
  log=$cache/$target.log
  echo "fuzzing $target for ${seconds}s"
  if ! (cd fuzz && cargo fuzz run "${options[@]}" "$target" "$corpus" "$extra" -- \
    -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$cache/artifacts/$target/") > "$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; its input is under $cache/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(INFO: seed corpus|#[0-9]+ +DONE|stat::number_of_executed_units|stat::new_units_added)' "$log"
done
