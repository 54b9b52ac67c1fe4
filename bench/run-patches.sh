#!/bin/sh
# bench/run-patches.sh BUILD_DIR: checkpoints as patches. One job of 1,000 steps (a noop node whose
# Lua post hook changes one small key and loops) with a shared store of 1 MiB (a key no step
# writes), against the same job with a 1 KiB store, in the same run: time per step of each (from the
# job's started_at to its finished_at; the median of three jobs each) and their ratio. First on
# flowd's default SQLite store (full sync), then on PostgreSQL (started as bench/run-postgres.sh
# starts it: skipped when it cannot run here), one instance on a new database. A checkpoint that
# rewrote the whole store would make the ratio grow with the store (hundreds); the target is <= 2x
# on each store.
set -eu
B=${1:-build}
FLOWD=$B/flowd
DIR=$(dirname "$0")
[ -x "$FLOWD" ] || { echo "patches: $FLOWD is missing (make first); skipped"; exit 0; }
command -v python3 >/dev/null || { echo "patches: python3 is missing; skipped"; exit 0; }
. "$DIR/lib.sh"

TMP=$(mktemp -d /tmp/flowd-bench-patches-XXXXXX)
PID="" PGPID=""
cleanup() {
    [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
    pg_down
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

loop_flow "$TMP/loop.json"

# us_per_step PORT BYTES: one job with a store of about BYTES, to its end; prints microseconds per
# step
us_per_step() {
    python3 - "$1" "$2" <<'PY'
import json, sys, time, urllib.request
port, size = sys.argv[1], int(sys.argv[2])
base = "http://127.0.0.1:%s" % port
body = json.dumps({"flow": "loop", "shared": {"n": 0, "limit": 1000, "big": "x" * size}}).encode()
req = urllib.request.Request(base + "/v1/jobs", body, {"Content-Type": "application/json"})
job = json.load(urllib.request.urlopen(req))
while True:
    job = json.load(urllib.request.urlopen(base + "/v1/jobs/%s?wait=30" % job["id"]))
    if job["status"] not in ("queued", "running"):
        break
assert job["status"] == "succeeded" and job["steps"] == 1000, job
def us(t):
    from datetime import datetime
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1e6
print("%.1f" % ((us(job["finished_at"]) - us(job["started_at"])) / 1000))
PY
}
mid3() { sort -n | sed -n 2p; }

# per_store NAME FLAG...: flowd with these flags (its store), the three jobs of each size; prints
# "NAME store_1kib_us_per_step=... store_1mib_us_per_step=..."
per_store() {
    name=$1
    shift
    "$FLOWD" --port 0 --log-level warn --max-shared 4MiB --max-body 4MiB "$@" 2>"$TMP/flowd-$name.log" &
    PID=$!
    port=$(flowd_port "$TMP/flowd-$name.log" patches)
    curl -sf -X PUT "http://127.0.0.1:$port/v1/flows/loop" -H 'Content-Type: application/json' \
        -d @"$TMP/loop.json" >/dev/null
    small=$( (us_per_step "$port" 1024; us_per_step "$port" 1024; us_per_step "$port" 1024) | mid3)
    big=$( (us_per_step "$port" 1048576; us_per_step "$port" 1048576; us_per_step "$port" 1048576) | mid3)
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
    PID=""
    echo "$name store_1kib_us_per_step=$small store_1mib_us_per_step=$big"
}

# report LINE: its figures and the ratio against the target
report() {
    set -- $1
    small=$(val store_1kib_us_per_step "$*") big=$(val store_1mib_us_per_step "$*")
    echo "$2 $3"
    awk -v n="$1" -v s="$small" -v b="$big" 'BEGIN { r = b / s; printf "patches %s: 1MiB/1KiB per step=%.2f (target <= 2): %s\n", n, r, r <= 2 ? "met" : "NOT MET" }'
}

echo "== patches: a 1,000-step job changing one small key, median of 3 jobs; SQLite (full sync), then PostgreSQL"
report "$(per_store sqlite --data-dir "$TMP/data")"
if pg_up "$TMP"; then
    report "$(per_store postgresql --store "$(pg_db flowd)")"
else
    echo "patches postgresql: $PG_WHY; skipped"
fi
