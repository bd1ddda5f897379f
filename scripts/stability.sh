#!/usr/bin/env bash
# Run the integration, end-to-end and namespace tests N times in a row while two busy
# processes keep both cores loaded, and summarise what failed.
#
#   scripts/stability.sh [RUNS] [pytest paths...]
#
# A test that fails one run in three blocks everyone's landing; this is how a
# change proves it added no flake (docs/benchmarks.md "Stability runs").
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
shift || true
paths=("$@")
[ ${#paths[@]} -eq 0 ] && paths=(tests/integration tests/e2e tests/netns)
py=".venv/bin/python"
out="${STABILITY_DIR:-$(mktemp -d /tmp/datanet-stability.XXXXXX)}"
mkdir -p "$out"

burners=()
for _ in 1 2; do
    "$py" -c 'while True: pass' &
    burners+=($!)
done
trap 'kill "${burners[@]}" 2>/dev/null' EXIT

failed=0
for i in $(seq 1 "$runs"); do
    start=$(date +%s)
    if "$py" -m pytest -q -p no:cacheprovider "${paths[@]}" >"$out/run-$i.log" 2>&1; then
        status=passed
    else
        status=FAILED
        failed=$((failed + 1))
    fi
    summary=$(tail -1 "$out/run-$i.log")
    echo "run $i/$runs: $status in $(( $(date +%s) - start )) s - $summary"
    grep -E '^(FAILED|ERROR) ' "$out/run-$i.log" | sed 's/^/    /'
done
echo "$((runs - failed))/$runs runs passed; logs in $out"
[ "$failed" -eq 0 ]
