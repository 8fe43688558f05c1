#!/usr/bin/env bash
# Collects the programs in the archspec fuzz corpus (scripts/fuzz.sh) that the checker accepts
# at d_model 64 (the fuzz target's width), one distinct structure each, into the file the probe's test
# reads (trainer/tests/data/fuzzed-programs.jsonl: one JSON string per line).
#
#   scripts/fuzzed-programs.sh [ARCHLAB_BINARY] [MAX_PROGRAMS]
set -euo pipefail
cd "$(dirname "$0")/.."
archlab=${1:-${CARGO_TARGET_DIR:-target}/release/archlab}
max=${2:-400}
cache=${ARCHLAB_FUZZ_CACHE:-$HOME/.cache/archlab-fuzz}
corpus=$cache/corpus/archspec_check
# The seeds' own structures are not the fuzzer's: they are left out.
seeds=$cache/seeds/archspec_check
out=trainer/tests/data/fuzzed-programs.jsonl
mkdir -p "$(dirname "$out")"
python3 - "$archlab" "$corpus" "$out" "$max" "$seeds" <<'PY'
import json, os, subprocess, sys
archlab, corpus, out, limit, seeds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
seen, kept = set(), []
files = [(True, os.path.join(seeds, n)) for n in sorted(os.listdir(seeds))]
files += [(False, os.path.join(corpus, n)) for n in sorted(os.listdir(corpus))]
for is_seed, path in files:
    data = open(path, "rb").read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        continue
    # The width the fuzz target checks at (the probe runs them at it too).
    check = subprocess.run([archlab, "check", "--json", "--d-model", "64", "--seq-len", "24", "-"],
                           input=data, capture_output=True)
    if check.returncode != 0:
        continue
    report = json.loads(check.stdout)
    if report["hash"] in seen:
        continue
    seen.add(report["hash"])
    if not is_seed:
        kept.append(text)
kept = sorted(kept, key=len)[:limit]
with open(out, "w") as f:
    for text in kept:
        f.write(json.dumps(text) + "\n")
print(f"{len(kept)} distinct accepted programs written to {out}")
PY
