# bench/lib.sh: what the benchmark scripts share (sourced): run a command a few times and keep the
# median line, read a key=value field, print a target's verdict, wait for a flowd to listen, write
# the looping flow two of them run, and start a PostgreSQL of their own.
RUNS=${BENCH_RUNS:-3}

# median LINE... : the line whose wall_s is the median
median() {
    printf '%s\n' "$@" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^wall_s=/) { split($i, kv, "="); print kv[2], $0 } }' \
        | sort -n | awk -v n="$#" 'NR == int((n + 1) / 2) { $1 = ""; sub(/^ /, ""); print }'
}

# measure CMD... : runs it RUNS times, prints every line to stderr and the median line to stdout
measure() {
    lines=""
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        line=$("$@")
        echo "  run $((i + 1)): $line" >&2
        lines="$lines
$line"
        i=$((i + 1))
    done
    # shellcheck disable=SC2086
    (IFS='
'; median $lines)
}

# loop_flow FILE: the flow "loop" into FILE: one noop node whose Lua post hook adds one to
# shared.n and loops until it reaches shared.limit (run-patches.sh, run-restart.sh)
loop_flow() {
    cat >"$1" <<'DOC'
{"name": "loop", "start": "tick", "nodes": {
  "tick": {"type": "noop",
           "post": ["shared.n = shared.n + 1", "if shared.n < shared.limit then return 'again' end"],
           "next": {"again": "tick"}}}}
DOC
}

# val KEY LINE : the value of KEY=... in LINE
val() {
    printf '%s\n' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

# verdict NAME TARGET-TEXT OK(1|0)
verdict() {
    if [ "$3" = 1 ]; then echo "target $1: $2: met"; else echo "target $1: $2: NOT met"; fi
}

# flowd_port LOG NAME : the port of flowd's "listening on" line in LOG (10 s at most; NAME for the
# error, which prints the log and fails)
flowd_port() {
    i=0
    while ! grep -q 'listening on http://' "$1" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -gt 200 ] && { echo "$2: flowd did not start:" >&2; cat "$1" >&2; return 1; }
        sleep 0.05
    done
    sed -n 's|.*listening on http://[^ ]*:\([0-9]*\).*|\1|p' "$1" | head -1
}

# as_pg CMD...: runs it as the postgres user when we are root
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_up DIR: PostgreSQL as tests/e2e/test_postgres.c starts it: Debian's server (apt-get installs it
# when missing, as root), initdb into DIR/pg as the postgres user, the server on 127.0.0.1 on a free
# port with its socket in DIR (which must be the postgres user's to write). Sets PGBIN, PGPORT and
# PGPID (pg_down stops it). Returns 1 and sets PG_WHY when it cannot run here; exits when it fails.
pg_up() {
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/postgres" ]; then
        if [ "$(id -u)" != 0 ]; then PG_WHY="PostgreSQL is not installed (apt-get install postgresql)"; return 1; fi
        echo "postgres: installing PostgreSQL with apt-get ..." >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    fi
    [ "$(id -u)" = 0 ] && chown postgres "$1"
    as_pg "$PGBIN/initdb" -D "$1/pg" -A trust -U postgres -E UTF8 --no-sync >"$1/initdb.log" 2>&1 \
        || { echo "postgres: initdb failed:" >&2; cat "$1/initdb.log" >&2; exit 1; }
    PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$PGBIN/postgres" -D "$1/pg" -p "$PGPORT" -k "$1" -c listen_addresses=127.0.0.1 \
        -c max_connections=200 >"$1/postgres.log" 2>&1 &
    PGPID=$!
    i=0
    until "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; do
        i=$((i + 1))
        [ "$i" -gt 200 ] && { echo "postgres: the server did not start:" >&2; cat "$1/postgres.log" >&2; exit 1; }
        sleep 0.05
    done
}

# pg_down: stops what pg_up started (if it did)
pg_down() {
    [ -n "${PGPID:-}" ] || return 0
    kill -INT "$PGPID" 2>/dev/null || true
    i=0
    while kill -0 "$PGPID" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    PGPID=""
}

# pg_db NAME: a new, empty database NAME; prints its URI
pg_db() {
    as_pg "$PGBIN/dropdb" -h 127.0.0.1 -p "$PGPORT" -U postgres --if-exists "$1" 2>/dev/null
    as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres "$1"
    echo "postgresql://postgres@127.0.0.1:$PGPORT/$1"
}
