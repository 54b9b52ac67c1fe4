#!/bin/sh
# tests/exports.sh LIBFLOW_A: what libflow.a exports is exactly what lib/include declares with
# FLOW_EXPORT: every such function is defined and global, and no other symbol of the library is
# (a private one, flow__ or not, would let a program depend on the library's insides).
set -eu
lib=${1:-build/libflow.a}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Declarations may span lines: join each header (but its preprocessor lines) into one line, then
# take the name before "(" of every FLOW_EXPORT declaration.
for h in lib/include/*.h lib/include/flow/*.h; do
    grep -v '^#' "$h" | tr '\n' ' ' | grep -oE 'FLOW_EXPORT [^;(]*\(' |
        grep -oE '[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\($' | tr -d '( '
done | sort -u >"$tmp/declared"

# Global symbols the archive defines (T: text, D/B/R: data), without sanitizers' own.
nm -g --defined-only "$lib" | awk 'NF == 3 && $2 ~ /^[TDBRW]$/ { print $3 }' |
    grep -vE '^(__asan|__ubsan|__tsan|__odr_asan|__sanitizer)' | sort -u >"$tmp/exported"

status=0
if ! comm -23 "$tmp/exported" "$tmp/declared" >"$tmp/extra" || [ -s "$tmp/extra" ]; then
    echo "exports: $lib exports symbols that lib/include does not declare with FLOW_EXPORT:"
    sed 's/^/  /' "$tmp/extra"
    status=1
fi
if ! comm -13 "$tmp/exported" "$tmp/declared" >"$tmp/missing" || [ -s "$tmp/missing" ]; then
    echo "exports: FLOW_EXPORT functions that $lib does not export (declared but hidden or not defined):"
    sed 's/^/  /' "$tmp/missing"
    status=1
fi
[ $status = 0 ] && echo "exports: $(wc -l <"$tmp/exported") symbols, all declared in lib/include"
exit $status
