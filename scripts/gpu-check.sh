#!/usr/bin/env bash
# GPU check for a trainer built with `--features tch`: trains the bundled MQAR example on
# `--device cuda` with softmax attention and DeltaNet and fails unless both reach the recall
# the CI test asks of the CPU build (tests/recall.rs: >= 0.95). Prints accuracy, tokens/s and
# wall time per program. Run by hand on a GPU machine (CI has none):
#
#   LD_LIBRARY_PATH=<site-packages>/torch/lib scripts/gpu-check.sh [ARCHLAB_BINARY] [DEVICE]
#
# DEVICE defaults to cuda; `tch-cpu` or `flex` runs the same check elsewhere for comparison.
set -euo pipefail

binary=${1:-target/release/archlab}
device=${2:-cuda}
config=examples/train/mqar.yaml
cd "$(dirname "$0")/.."

if ! "$binary" --version >/dev/null; then
    echo "gpu-check: $binary does not start (is libtorch on LD_LIBRARY_PATH?)" >&2
    exit 1
fi

failed=0
printf '%-16s %-8s %9s %12s %8s\n' program device accuracy tokens/s wall_s
for program in softmax_rope deltanet; do
    log=$(mktemp)
    start=$(date +%s.%N)
    if ! "$binary" train --program "archspec/library/$program.arch" --config "$config" \
        --device "$device" >"$log" 2>"$log.err"; then
        echo "gpu-check: $program on $device failed:" >&2
        tail -n 20 "$log.err" >&2
        failed=1
        continue
    fi
    wall=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
    # The result line is the last JSON object with "event": "result".
    python3 - "$log" "$program" "$device" "$wall" <<'EOF' || failed=1
import json, sys
path, program, device, wall = sys.argv[1:]
result = None
for line in open(path):
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        continue
    if isinstance(event, dict) and event.get("event") == "result":
        result = event
if result is None or result.get("status") != "ok":
    sys.exit(f"gpu-check: {program}: no successful result line in {path}")
accuracy = (result.get("accuracy") or {}).get("mqar")
print(f"{program:<16} {device:<8} {accuracy:>9.3f} {result.get('tokens_per_s', 0):>12,.0f} {wall:>8}")
if accuracy is None or accuracy < 0.95:
    sys.exit(f"gpu-check: {program} reached {accuracy} MQAR accuracy, below 0.95")
EOF
done
exit $failed
