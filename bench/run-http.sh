#!/bin/sh
# bench/run-http.sh BUILD_DIR: POST /v1/jobs of the noop flow against flowd, and the same wrk run
# against a bare libmicrohttpd server that answers a canned 202 and does no work (bench/mhd_floor.c,
# two threads like flowd's default), one server at a time. flowd runs twice: on the memory store
# (compared with the bare server) and on its default SQLite store with full sync (compared with the
# memory store: each 202 waits for its group commit). Otherwise flowd has its defaults (log level
# info: a line per request). Prints req/s and p99 latencies, the ratios, and the targets. Like
# bench/run.sh, it runs each BENCH_RUNS times (3), the three servers in turn, and prints the medians.
# Memory and SQLite run again with --http-threads 1, to show how the durable path grows with the
# threads that accept (issue 16: figures at 1 and 2 HTTP threads), and SQLite once more on a store
# of two files (--store-shards 2: two writer threads), against the one file of the default.
# bench/run.sh calls it; run it alone with `sh bench/run-http.sh build`.
set -eu
B=${1:-build}
DIR=$(dirname "$0")
FLOWD=$B/flowd
FLOOR=$B/mhd_floor
DURATION=${BENCH_HTTP_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
WRK="wrk -t2 -c64 -d$DURATION --latency -s $DIR/post_job.lua"

command -v wrk >/dev/null || { echo "http: wrk is not installed (apt-get install wrk); skipped"; exit 0; }
[ -x "$FLOWD" ] || { echo "http: $FLOWD is missing (make first); skipped"; exit 0; }
# shellcheck disable=SC2046
cc -O2 -o "$FLOOR" "$DIR/mhd_floor.c" $(pkg-config --cflags --libs libmicrohttpd)

TMP=$(mktemp -d)
PIDS=""
cleanup() {
    [ -f "$TMP/pid" ] && PIDS="$PIDS $(cat "$TMP/pid")"
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# free_port: a TCP port nothing listens on (from the kernel's ephemeral range)
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo 18092
}

# wait_port PORT: until something answers HTTP on it (5 s at most)
wait_port() {
    i=0
    while ! curl -s -o /dev/null "http://127.0.0.1:$1/"; do
        i=$((i + 1))
        [ "$i" -gt 100 ] && { echo "http: nothing listens on port $1" >&2; return 1; }
        sleep 0.05
    done
}

. "$DIR/lib.sh" # flowd_port (its median is replaced below by one of plain numbers)

# run_wrk URL NAME: prints "rps p99_ms non2xx"
run_wrk() {
    $WRK "$1" >"$TMP/$2.wrk" 2>&1
    awk '
        /Requests\/sec:/ { rps = $2 }
        $1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 } p99 = v }
        /Non-2xx/ { bad = $NF }
        END { printf "%s %.3f %d\n", rps, p99, bad }' "$TMP/$2.wrk"
}

# median N...: the middle value
median() {
    printf '%s\n' "$@" | sort -n | awk -v n="$#" 'NR == int((n + 1) / 2) { print }'
}

# flowd_run NAME FLAG...: flowd with these flags and a new SQLite data directory, under wrk; prints
# run_wrk's "rps p99_ms non2xx" (its pid is in $TMP/pid meanwhile, for cleanup)
flowd_run() {
    name=$1
    shift
    rm -rf "$TMP/data"
    "$FLOWD" --port 0 --data-dir "$TMP/data" "$@" 2>"$TMP/$name.log" &
    echo "$!" >"$TMP/pid"
    port=$(flowd_port "$TMP/$name.log" http)
    run_wrk "http://127.0.0.1:$port/v1/jobs" "$name"
    kill -TERM "$(cat "$TMP/pid")"; wait "$(cat "$TMP/pid")" 2>/dev/null || true
    rm -f "$TMP/pid"
}

echo "== http: POST /v1/jobs (noop flow), wrk -t2 -c64 -d$DURATION, one server at a time ($RUNS runs each, medians)"
bare_rpss="" bare_p99s="" flowd_rpss="" flowd_p99s="" sqlite_rpss="" sqlite_p99s="" mem1_rpss="" sqlite1_rpss=""
shards_rpss=""
run=0
while [ "$run" -lt "$RUNS" ]; do
    run=$((run + 1))
    port=$(free_port)
    "$FLOOR" "$port" 2 &
    PIDS="$!"
    wait_port "$port"
    bare=$(run_wrk "http://127.0.0.1:$port/v1/jobs" bare)
    kill "$PIDS"; wait "$PIDS" 2>/dev/null || true
    PIDS=""

    flowd=$(flowd_run flowd --store memory:)
    sqlite=$(flowd_run sqlite)
    mem1=$(flowd_run mem1 --store memory: --http-threads 1)
    sqlite1=$(flowd_run sqlite1 --http-threads 1)
    shards=$(flowd_run shards --store-shards 2)
    mem1_rpss="$mem1_rpss ${mem1%% *}" sqlite1_rpss="$sqlite1_rpss ${sqlite1%% *}"
    shards_rpss="$shards_rpss ${shards%% *}"

    set -- $bare
    bare_rpss="$bare_rpss $1" bare_p99s="$bare_p99s $2"
    set -- $flowd
    flowd_rpss="$flowd_rpss $1" flowd_p99s="$flowd_p99s $2"
    [ "$3" = 0 ] || echo "http: $3 answers of flowd were not 2xx" >&2
    echo "  run $run: bare_rps=${bare%% *} flowd_rps=${flowd%% *} flowd_p99_ms=$2 sqlite_rps=${sqlite%% *}" >&2
    set -- $sqlite
    sqlite_rpss="$sqlite_rpss $1" sqlite_p99s="$sqlite_p99s $2"
    [ "$3" = 0 ] || echo "http: $3 answers of flowd on SQLite were not 2xx" >&2
done

# shellcheck disable=SC2086
awk -v br="$(median $bare_rpss)" -v bp="$(median $bare_p99s)" -v fr="$(median $flowd_rpss)" \
    -v fp="$(median $flowd_p99s)" 'BEGIN {
    printf "bare_rps=%.0f bare_p99_ms=%.2f flowd_rps=%.0f flowd_p99_ms=%.2f ratio=%.2f\n", br, bp, fr, fp, fr / br
    printf "http: flowd/pocketflow_ref=%.1f (PocketFlow behind FastAPI: 4700 req/s, from the issue)\n", fr / 4700
    ok = (fr >= 0.6 * br && fp < 10)
    printf "target http: POST /v1/jobs >= 0.6x the bare server and p99 < 10 ms: %s\n", ok ? "met" : "NOT met"
}'
# shellcheck disable=SC2086
awk -v mr="$(median $flowd_rpss)" -v sr="$(median $sqlite_rpss)" -v sp="$(median $sqlite_p99s)" 'BEGIN {
    printf "sqlite_rps=%.0f sqlite_p99_ms=%.2f memory_rps=%.0f sqlite/memory=%.2f\n", sr, sp, mr, sr / mr
    printf "target durable: accepted jobs/s on SQLite >= 0.5x the memory store: %s\n", (sr >= 0.5 * mr) ? "met" : "NOT met"
}'
# shellcheck disable=SC2086
awk -v m1="$(median $mem1_rpss)" -v s1="$(median $sqlite1_rpss)" -v m2="$(median $flowd_rpss)" \
    -v s2="$(median $sqlite_rpss)" 'BEGIN {
    printf "http_threads=1: memory_rps=%.0f sqlite_rps=%.0f sqlite/memory=%.2f\n", m1, s1, s1 / m1
    printf "http_threads=2: memory_rps=%.0f sqlite_rps=%.0f sqlite/memory=%.2f\n", m2, s2, s2 / m2
    printf "threads 2/1: memory=%.2f sqlite=%.2f\n", m2 / m1, s2 / s1
}'
# shellcheck disable=SC2086
awk -v s1="$(median $sqlite_rpss)" -v s2="$(median $shards_rpss)" 'BEGIN {
    printf "store_shards=2: sqlite_rps=%.0f (1 file: %.0f) files 2/1=%.2f\n", s2, s1, s2 / s1
}'
