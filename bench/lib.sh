# bench/lib.sh: what the benchmark scripts share (sourced): run a command a few times and keep the
# median line, read a key=value field, print a target's verdict, wait for a flowd to listen.
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
