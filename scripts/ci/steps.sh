# Sourced by .ci/run: named steps with their wall times, a step run in the background while
# others go on, and one timing line per step when CI ends (also when it fails), so a slow step
# shows in every CI log.
#
#   step NAME COMMAND...        run COMMAND now
#   background NAME COMMAND...  start COMMAND now, its output in $CI_LOGS/NAME.log
#   await NAME                  wait for a background step; its log when it failed
#   CI_CLEANUP=COMMAND          run at exit, whatever happened
#   $CI_LOGS/*.report           printed after the timings (lines a step wants in the log)

CI_LOGS=${CI_LOGS:-$(mktemp -d)}
CI_STARTED=$SECONDS
CI_TIMES=()
CI_CURRENT=""
CI_STEP_STARTED=$SECONDS
declare -A CI_PIDS=()

step() {
  local name=$1 started=$SECONDS
  shift
  CI_CURRENT=$name CI_STEP_STARTED=$SECONDS
  echo "== step $name" >&2
  "$@"
  CI_TIMES+=("$name|$((SECONDS - started))|")
  CI_CURRENT=""
}

background() {
  local name=$1
  shift
  echo "== step $name (in the background, log in $CI_LOGS/$name.log)" >&2
  # Its own process group, so that an early exit stops everything it started.
  setsid bash -c 'started=$SECONDS; "${@:2}" > "$1.log" 2>&1; code=$?
    echo "$((SECONDS - started)) $code" > "$1.done"; exit "$code"' _ "$CI_LOGS/$name" "$@" &
  CI_PIDS[$name]=$!
}

await() {
  local name=$1 started=$SECONDS seconds code
  CI_CURRENT="waiting for $name" CI_STEP_STARTED=$SECONDS
  wait "${CI_PIDS[$name]}" || true
  read -r seconds code < "$CI_LOGS/$name.done"
  CI_TIMES+=("$name|$seconds|in the background; waited $((SECONDS - started)) s")
  CI_CURRENT=""
  if [ "$code" != 0 ]; then
    echo "== step $name failed (exit $code):" >&2
    tail -40 "$CI_LOGS/$name.log" >&2
    return 1
  fi
}

# The EXIT trap: stops background steps still running, runs CI_CLEANUP, prints the timings and
# keeps the exit status.
ci_finish() {
  local code=$? entry name seconds note pid report
  for pid in "${CI_PIDS[@]}"; do
    kill -- "-$pid" 2>/dev/null || true
  done
  [ -n "${CI_CLEANUP:-}" ] && { eval "$CI_CLEANUP" || true; }
  echo "== timing (wall seconds per step; total $((SECONDS - CI_STARTED)) s)" >&2
  for entry in "${CI_TIMES[@]}"; do
    IFS='|' read -r name seconds note <<< "$entry"
    printf '==   %-20s %6s s  %s\n' "$name" "$seconds" "$note" >&2
  done
  for report in "$CI_LOGS"/*.report; do
    [ -f "$report" ] && sed 's/^/==   /' "$report" >&2
  done
  if [ -n "$CI_CURRENT" ]; then
    printf '==   %-20s failed after %s s\n' "$CI_CURRENT" "$((SECONDS - CI_STEP_STARTED))" >&2
  fi
  return "$code"
}
trap ci_finish EXIT
