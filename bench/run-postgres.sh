#!/bin/sh
# bench/run-postgres.sh BUILD_DIR: flowd on PostgreSQL, one instance and then two on one database.
# PostgreSQL is started as tests/e2e/test_postgres.c starts it: Debian's server (apt-get installs it
# when missing, as root), initdb into a temporary folder as the postgres user, the server on
# 127.0.0.1 on a free port with its socket in that folder; it is stopped and removed at the end.
#
# The flow is "paced": each job sleeps BENCH_PG_SLEEP seconds (0.05), and each flowd runs at most
# BENCH_PG_RUNNING (20) jobs at once (--max-running), as a worker pool or a per-instance rate limit
# to an upstream would: one instance finishes at most 20 / 0.05 = 400 jobs/s however fast it
# accepts them, and a second instance doubles that ceiling. (A flow of no-op jobs would measure
# only the database's commits, which two instances share; a CPU-bound one would measure two
# processes on this machine's two cores.)
#
# Then the same with the limit in the flow instead ("shared": its max_running, which holds over
# every instance on the database): the ceiling is 400 jobs/s with one instance or two, and what is
# measured is how close to it the turns that the instances ask the database for keep it.
#
# Each run posts BENCH_PG_JOBS (4000) jobs with wrk -t2 -c32 (bench/post_n.lua), split evenly over
# the instances, on a new database; prints the accepted jobs/s (from the first POST until every POST
# has its 202) and the finished jobs/s (until every job has succeeded), and the ratios of two
# instances to one. One run each. Then takeovers (below).
set -eu
B=${1:-build}
FLOWD=$B/flowd
DIR=$(dirname "$0")
N=${BENCH_PG_JOBS:-4000}
SLEEP=${BENCH_PG_SLEEP:-0.05}
RUNNING=${BENCH_PG_RUNNING:-20}

command -v wrk >/dev/null || { echo "postgres: wrk is not installed (apt-get install wrk); skipped"; exit 0; }
[ -x "$FLOWD" ] || { echo "postgres: $FLOWD is missing (make first); skipped"; exit 0; }

. "$DIR/lib.sh"
TMP=$(mktemp -d /tmp/flowd-bench-pg-XXXXXX)
PIDS="" PGPID=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    pg_down
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
pg_up "$TMP" || { echo "postgres: $PG_WHY; skipped"; exit 0; }

mkdir -p "$TMP/flows"
cat >"$TMP/flows/paced.json" <<EOF
{"name": "paced", "description": "Waits a little.", "start": "wait",
 "nodes": {"wait": {"type": "sleep", "params": {"seconds": $SLEEP}}}}
EOF
cat >"$TMP/flows/shared.json" <<EOF
{"name": "shared", "description": "Waits a little: at most $RUNNING at once over every instance.",
 "max_running": $RUNNING, "start": "wait",
 "nodes": {"wait": {"type": "sleep", "params": {"seconds": $SLEEP}}}}
EOF

now() { date +%s.%N; }

# metric NAME PORT: a value of /metrics (0 when absent)
metric() {
    v=$(curl -s "http://127.0.0.1:$2/metrics" | awk -v k="$1" '$1 == k { print $2 }')
    echo "${v:-0}"
}

# sum NAME PORT...: a metric summed over the instances
sum() {
    name=$1
    shift
    t=0
    for p in "$@"; do t=$((t + $(metric "$name" "$p"))); done
    echo "$t"
}

# run K FLOW [FLOWD_ARGS]: K instances on a new database; prints "accepted_per_s=... finished_per_s=..."
run() {
    k=$1 flow=$2
    shift 2
    uri=$(pg_db flowd)
    ports="" j=0
    while [ "$j" -lt "$k" ]; do
        j=$((j + 1))
        "$FLOWD" --port 0 --store "$uri" --flows "$TMP/flows" --log-level warn \
            --max-jobs $((N + 1000)) --max-finished $((N + 1000)) "$@" 2>"$TMP/flowd$j.log" &
        PIDS="$PIDS $!"
        port=$(flowd_port "$TMP/flowd$j.log" postgres) || return 1
        ports="$ports $port"
    done
    wrks=""
    t0=$(now)
    for p in $ports; do
        JOB_BODY="{\"flow\":\"$flow\"}" JOBS_PER_THREAD=$((N / 2 / k)) \
            wrk -t2 -c$((32 / k)) -d600s -s "$DIR/post_n.lua" "http://127.0.0.1:$p/v1/jobs" \
            >"$TMP/wrk$p.out" 2>&1 &
        wrks="$wrks $!"
    done
    want=$((N / 2 / k * 2 * k))
    # until the POSTs are answered: all of them, or (wrk makes a request again when it could not
    # send it, so one may be missing) all but a few and no more for 60 ms, as run-durable.sh
    last=-1 still=0
    while :; do
        # shellcheck disable=SC2086
        posted=$(sum 'flowd_http_requests_total{route="/v1/jobs",code="202"}' $ports)
        if [ "$posted" != "$last" ]; then last=$posted still=0 t1=$(now); else still=$((still + 1)); fi
        [ "$posted" -ge "$want" ] && break
        [ "$posted" -ge $((want - 64)) ] && [ "$still" -ge 3 ] && break
        sleep 0.02
    done
    for w in $wrks; do kill -INT "$w" 2>/dev/null || true; wait "$w" 2>/dev/null || true; done
    # shellcheck disable=SC2086
    while [ "$(sum 'flowd_jobs{status="succeeded"}' $ports)" -lt "$posted" ]; do
        sleep 0.02
    done
    t2=$(now)
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=""
    awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v n="$posted" 'BEGIN {
        printf "jobs=%d accepted_per_s=%.0f finished_per_s=%.0f wall_s=%.2f\n", n, n / (t1 - t0), n / (t2 - t0), t2 - t0 }'
}

echo "== postgres: $N jobs of a flow that sleeps $SLEEP s, each flowd running at most $RUNNING at once (--max-running), wrk -t2 -c32 split over the instances, on one database (one run each)"
one=$(run 1 paced --max-running "$RUNNING")
echo "one instance: $one"
two=$(run 2 paced --max-running "$RUNNING")
echo "two instances: $two"
awk -v a1="$(val accepted_per_s "$one")" -v a2="$(val accepted_per_s "$two")" \
    -v f1="$(val finished_per_s "$one")" -v f2="$(val finished_per_s "$two")" 'BEGIN {
    printf "postgres: accepted two/one=%.2f finished two/one=%.2f\n", a2 / a1, f2 / f1
    printf "target postgres: two instances finish more jobs per second than one: %s\n", (f2 > f1) ? "met" : "NOT met"
}'
ceiling=$(awk -v r="$RUNNING" -v s="$SLEEP" 'BEGIN { printf "%.0f", r / s }')
echo "== postgres: the same jobs with max_running $RUNNING in the flow, over every instance (a ceiling of $ceiling jobs/s)"
one=$(run 1 shared)
echo "shared limit, one instance: $one"
two=$(run 2 shared)
echo "shared limit, two instances: $two"
awk -v f1="$(val finished_per_s "$one")" -v f2="$(val finished_per_s "$two")" -v c="$ceiling" 'BEGIN {
    printf "postgres shared limit: finished one/ceiling=%.2f two/ceiling=%.2f\n", f1 / c, f2 / c
}'

# Takeovers: K jobs that wait for input on an instance killed with SIGKILL, and another instance
# beside it (--lease 2s, --claim-interval 200ms). Measured from when the dead instance's lease ran
# out (its row in instances: the lease the live one renews is always later) until the other holds
# them all (its flowd_jobs{status="waiting"}): BENCH_PG_TAKEOVER (3000) jobs against 30 (one claim)
# in the same run.
cat >"$TMP/flows/asks.json" <<'DOC'
{"name": "asks", "description": "Waits for an answer.", "start": "ask",
 "nodes": {"ask": {"type": "input", "params": {"prompt": "go on?"}}}}
DOC
TAKE=${BENCH_PG_TAKEOVER:-3000}
LEASE_S=2

# takeover K: prints "jobs=K seconds=S" (from the end of the dead instance's lease)
takeover() {
    k=$1
    uri=$(pg_db takeover)
    for j in 1 2; do
        "$FLOWD" --port 0 --store "$uri" --flows "$TMP/flows" --log-level warn --lease "${LEASE_S}s" \
            --claim-interval 200ms --max-jobs $((k + 1000)) 2>"$TMP/take$j.log" &
        PIDS="$PIDS $!"
        eval "pid$j=$!"
        eval "port$j=\$(flowd_port \"$TMP/take$j.log\" postgres)" || return 1
    done
    # one connection, one POST after the other (wrk may send one again that it could not send)
    # shellcheck disable=SC2154
    python3 - "$port1" "$k" <<'PY' || return 1
import http.client, sys
port, k = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(k):
    c.request("POST", "/v1/jobs", '{"flow": "asks"}', {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status != 202:
        sys.exit("takeover: POST answered %d" % r.status)
PY
    while [ "$(metric 'flowd_jobs{status="waiting"}' "$port1")" -lt "$k" ]; do sleep 0.05; done
    # shellcheck disable=SC2154
    kill -KILL "$pid1"
    t0=$(as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d takeover -tA \
        -c "SELECT min(extract(epoch FROM lease_until)) FROM instances")
    # shellcheck disable=SC2154
    while [ "$(metric 'flowd_jobs{status="waiting"}' "$port2")" -lt "$k" ]; do sleep 0.02; done
    t1=$(now)
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=""
    awk -v t0="$t0" -v t1="$t1" -v k="$k" 'BEGIN { printf "jobs=%d seconds=%.2f\n", k, t1 - t0 }'
}

echo "== postgres: takeovers, jobs waiting for input on an instance killed with SIGKILL (--lease ${LEASE_S}s, --claim-interval 200ms): seconds from the end of the dead one's lease until the other holds them all"
short=$(takeover 30)
echo "takeover short: $short"
long=$(takeover "$TAKE")
echo "takeover long: $long"
awk -v s="$(val seconds "$short")" -v l="$(val seconds "$long")" -v n="$TAKE" 'BEGIN {
    d = l - s
    rate = (n - 30) / (d > 0.01 ? d : 0.01)
    printf "postgres takeover: %d jobs %.2f s, 30 jobs %.2f s: the other %d took %.2f s (%.0f jobs/s)\n", n, l, s, n - 30, d, rate
}'
