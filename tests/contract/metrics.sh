#!/bin/sh
# tests/contract/metrics.sh FLOWD: the /metrics text of a flowd that has run and refused something,
# checked by Prometheus' own linter (promtool check metrics: the exposition format, names, help
# and type lines, histogram buckets). Any problem it reports fails the check.
set -eu
FLOWD=${1:-build/flowd}
command -v promtool >/dev/null || { echo "metrics: promtool is missing (make deps installs Debian's prometheus)"; exit 1; }
TMP=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
"$FLOWD" --port 0 --store memory: --flows examples/flows >"$TMP/log" 2>&1 &
pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$TMP/log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "metrics: flowd did not start:"; cat "$TMP/log"; exit 1; }
base="http://127.0.0.1:$port"
curl -s -o /dev/null -H 'Content-Type: application/json' -d '{"flow": "noop"}' "$base/v1/jobs"
curl -s -o /dev/null -H 'Content-Type: application/json' -d '{"flow": "sleep", "shared": {"seconds": -1}}' "$base/v1/jobs"
curl -s -o /dev/null "$base/v1/jobs/0123"
sleep 0.3
curl -s "$base/metrics" >"$TMP/metrics"
grep -q '^flowd_jobs_finished_total{flow="noop",outcome="succeeded"} 1$' "$TMP/metrics" ||
    { echo "metrics: no finished noop job in:"; cat "$TMP/metrics"; exit 1; }
if ! promtool check metrics <"$TMP/metrics" >"$TMP/lint" 2>&1 || [ -s "$TMP/lint" ]; then
    echo "metrics: promtool check metrics found problems:"
    cat "$TMP/lint"
    exit 1
fi
echo "metrics: $(grep -c '^[a-z]' "$TMP/metrics") samples of /metrics, promtool check metrics clean"
