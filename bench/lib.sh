# bench/lib.sh: what the benchmark scripts share (sourced): run a command a few times and keep the
# median line, read a key=value field, print a target's verdict.
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
