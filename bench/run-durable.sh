#!/bin/sh
# bench/run-durable.sh BUILD_DIR: the engine's million sleepers again, now as jobs posted over HTTP
# to flowd: BENCH_SLEEPERS (1,000,000) jobs of the sleep flow (1 s each) posted by wrk -t2 -c64,
# first to flowd on the memory store, then on its default SQLite store (full sync). Prints, for each,
# the wall time from the first POST until every job has succeeded, how long the posting took,
# flowd's peak RSS, and for SQLite the size of the database (file and log) at the end, and the
# ratios of the two. One run each: a run takes about a minute on 2 cores.
set -eu
B=${1:-build}
FLOWD=$B/flowd
DIR=$(dirname "$0")
N=${BENCH_SLEEPERS:-1000000}

command -v wrk >/dev/null || { echo "durable: wrk is not installed (apt-get install wrk); skipped"; exit 0; }
[ -x "$FLOWD" ] || { echo "durable: $FLOWD is missing (make first); skipped"; exit 0; }

TMP=$(mktemp -d)
PID=""
cleanup() {
    [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }

# metric NAME PORT: a value of /metrics
metric() {
    curl -s "http://127.0.0.1:$2/metrics" | awk -v k="$1" '$1 == k { print $2 }'
}

# run STORE: prints "wall_s=... post_s=... jobs=... rss_mib=..."
run() {
    rm -rf "$TMP/data"
    "$FLOWD" --port 0 --store "$1" --data-dir "$TMP/data" --log-level warn --max-jobs $((N + 1000)) \
        --max-finished $((N + 1000)) 2>"$TMP/flowd.log" &
    PID=$!
    port=$(flowd_port "$TMP/flowd.log" durable) || return 1
    t0=$(now)
    JOB_BODY='{"flow":"sleep","shared":{"seconds":1}}' JOBS_PER_THREAD=$((N / 2)) \
        wrk -t2 -c64 -d600s -s "$DIR/post_n.lua" "http://127.0.0.1:$port/v1/jobs" >"$TMP/wrk.out" 2>&1 &
    WRK=$!
    # until the POSTs are answered: N of them, or (wrk regenerates a request it could not send, so
    # one may be missing) all but a few and no more for 60 ms
    last=-1 still=0
    while :; do
        posted=$(metric 'flowd_http_requests_total{route="/v1/jobs",code="202"}' "$port")
        posted=${posted:-0}
        if [ "$posted" != "$last" ]; then last=$posted still=0 t1=$(now); else still=$((still + 1)); fi
        [ "$posted" -ge "$N" ] && break
        [ "$posted" -ge $((N - 64)) ] && [ "$still" -ge 3 ] && break
        kill -0 "$WRK" 2>/dev/null || { echo "durable: wrk ended early:" >&2; cat "$TMP/wrk.out" >&2; return 1; }
        sleep 0.02
    done
    kill -INT "$WRK"; wait "$WRK" 2>/dev/null || true
    started=$(metric flowd_jobs_started_total "$port")
    while :; do
        done_=$(metric 'flowd_jobs{status="succeeded"}' "$port")
        [ "${done_:-0}" -ge "$started" ] && break
        sleep 0.05
    done
    t2=$(now)
    rss=$(awk '/VmHWM/ { print $2 }' "/proc/$PID/status")
    db=$(du -cb "$TMP"/data/flowd.db* 2>/dev/null | awk 'END { print $1 }')
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
    PID=""
    awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v n="$started" -v rss="$rss" -v db="${db:-0}" 'BEGIN {
        printf "wall_s=%.2f post_s=%.2f jobs=%d jobs_per_s=%.0f rss_mib=%.0f db_mib=%.0f\n",
            t2 - t0, t1 - t0, n, n / (t1 - t0), rss / 1024, db / 1048576 }'
}

echo "== durable: $N sleep jobs (1 s each) posted over HTTP, wrk -t2 -c64, memory store then SQLite (one run each)"
mem=$(run memory:)
echo "memory: $mem"
sql=$(run sqlite:flowd.db)
echo "sqlite: $sql"
. "$DIR/lib.sh"
awk -v mw="$(val wall_s "$mem")" -v sw="$(val wall_s "$sql")" -v mj="$(val jobs_per_s "$mem")" \
    -v sj="$(val jobs_per_s "$sql")" -v db="$(val db_mib "$sql")" -v n="$(val jobs "$sql")" 'BEGIN {
    printf "durable sleepers: wall sqlite/memory=%.2f posting sqlite/memory=%.2f, %.0f bytes of database per job\n",
        sw / mw, sj / mj, db * 1048576 / n }'
