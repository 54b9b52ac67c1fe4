#!/bin/sh
# bench/run-restart.sh BUILD_DIR: how long flowd takes to start again, and the memory it takes, on a
# SQLite store that holds one job of a long history, against the same with one job of a short one,
# in the same run. The job loops on a noop node (its Lua post counts) to BENCH_RESTART_STEPS
# (500,000) steps, and to 1,000 for the baseline, and ends; flowd stops (SIGTERM) and starts on the
# store again, timed from its start until /healthz answers, with its peak RSS then. A start that read
# a job's whole history took a time and memory that grew with it (62 s and 9.6 GB for 5.1 million
# steps before schema 9); the target is that neither grows: long/short <= 2 for both, medians of
# three starts each.
set -eu
B=${1:-build}
FLOWD=$B/flowd
DIR=$(dirname "$0")
LONG=${BENCH_RESTART_STEPS:-500000}
[ -x "$FLOWD" ] || { echo "restart: $FLOWD is missing (make first); skipped"; exit 0; }
command -v curl >/dev/null || { echo "restart: curl is missing; skipped"; exit 0; }
. "$DIR/lib.sh"

TMP=$(mktemp -d /tmp/flowd-bench-restart-XXXXXX)
PID=""
cleanup() {
    [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

mkdir "$TMP/flows"
loop_flow "$TMP/flows/loop.json"

now() { date +%s.%N; }

# start DATA: flowd on the SQLite store in DATA; sets PID and PORT
start() {
    "$FLOWD" --port 0 --data-dir "$1" --flows "$TMP/flows" --log-level warn --max-steps 100000000 \
        2>"$TMP/flowd.log" &
    PID=$!
    PORT=$(flowd_port "$TMP/flowd.log" restart)
}

stop() {
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
}

# store DATA STEPS: a store in DATA with one job that ran STEPS steps and succeeded
store() {
    start "$1"
    id=$(curl -s -H 'Content-Type: application/json' -d "{\"flow\": \"loop\", \"shared\": {\"n\": 0, \"limit\": $2}}" \
        "http://127.0.0.1:$PORT/v1/jobs" | sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p' | head -1)
    [ -n "$id" ] || { echo "restart: the job was not taken" >&2; exit 1; }
    while :; do
        status=$(curl -s "http://127.0.0.1:$PORT/v1/jobs/$id" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p' | head -1)
        case $status in
        succeeded) break ;;
        failed | canceled) echo "restart: the job of $2 steps ended $status" >&2; exit 1 ;;
        esac
        sleep 0.1
    done
    stop
}

# restart DATA: prints "wall_s=... rss_mib=..." of one start on DATA, until /healthz answers
restart() {
    t0=$(now)
    start "$1"
    until curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz"; do sleep 0.01; done
    t1=$(now)
    rss=$(awk '/VmHWM/ { print $2 }' "/proc/$PID/status")
    stop
    awk -v t0="$t0" -v t1="$t1" -v rss="$rss" 'BEGIN { printf "wall_s=%.3f rss_mib=%.1f\n", t1 - t0, rss / 1024 }'
}

echo "== restart: a SQLite store with one job of $LONG steps, against one of 1000 ($RUNS starts each, medians)"
store "$TMP/short" 1000
store "$TMP/long" "$LONG"
short=$(measure restart "$TMP/short")
long=$(measure restart "$TMP/long")
db=$(du -cb "$TMP"/long/flowd.db* | awk 'END { printf "%.0f", $1 / 1048576 }')
echo "short (1000 steps): $short"
echo "long ($LONG steps, $db MiB): $long"
awk -v sw="$(val wall_s "$short")" -v lw="$(val wall_s "$long")" -v sr="$(val rss_mib "$short")" \
    -v lr="$(val rss_mib "$long")" 'BEGIN {
    printf "restart: wall long/short=%.2f rss long/short=%.2f\n", lw / sw, lr / sr
    ok = (lw <= 2 * sw && lr <= 2 * sr)
    printf "target restart: a start takes no more time or memory for a job of a long history (<= 2x): %s\n",
        ok ? "met" : "NOT met"
}'
