#!/bin/sh
# bench/run-lua.sh BUILD_DIR: Lua hooks (run by bench/run.sh). A loop whose prep and post are Lua against
# the same loop in PocketFlow's Python, measured in the same run (target: at least 2x PocketFlow); the
# same loop on a shared store of a thousand keys (target: at most 1.5x the time per step of a 1-key
# store); and what an empty hook call and the sandbox's set-up cost per call.
# PocketFlow's pocketflow module is looked for in POCKETFLOW_DIR (default ../shared/anchors/pocketflow,
# beside the repository), then among python3's own modules; without it that comparison is skipped.
set -eu
B=${1:-build}
BENCH=$B/flow-bench
. "$(dirname "$0")/lib.sh"
N=${LUA_STEPS:-1000000}
echo "== Lua hooks ($RUNS runs each, median shown)"
lua=$(measure "$BENCH" lua-steps "$N" 0)
wide=$(measure "$BENCH" lua-steps "$N" 1000)
calls=$(measure "$BENCH" lua-calls "$N")
echo "$lua"
echo "$wide"
echo "$calls"
dir=${POCKETFLOW_DIR:-$(dirname "$0")/../../shared/anchors/pocketflow}
py=""
if command -v python3 >/dev/null && PYTHONPATH="$dir" python3 -c 'import pocketflow' 2>/dev/null; then
    py=$(PYTHONPATH="$dir" measure python3 "$(dirname "$0")/pocketflow_loop.py" "$((N / 4))")
    echo "$py"
fi
awk -v w="$(val ns_per_step "$wide")" -v l="$(val ns_per_step "$lua")" \
    'BEGIN { printf "lua steps: 1002-key store/1-key store per step=%.2f\n", w / l }'
verdict lua-store "a 1000-key store at most 1.5x the time per step of a 1-key store" \
    "$(awk -v w="$(val ns_per_step "$wide")" -v l="$(val ns_per_step "$lua")" 'BEGIN { print (w <= 1.5 * l) }')"
if [ -n "$py" ]; then
    awk -v l="$(val steps_per_s "$lua")" -v p="$(val steps_per_s "$py")" \
        'BEGIN { printf "lua steps: flowd/pocketflow=%.2f (steps per second, the same loop in the same run)\n", l / p }'
    verdict lua-steps "at least 2x PocketFlow's Python on the same loop" \
        "$(awk -v l="$(val steps_per_s "$lua")" -v p="$(val steps_per_s "$py")" 'BEGIN { print (l >= 2 * p) }')"
else
    echo "lua steps: PocketFlow not found (set POCKETFLOW_DIR to the folder of pocketflow.py): no comparison"
fi
awk -v c="$(val empty_hook_ns "$calls")" -v b="$(val bare_pcall_ns "$calls")" -v s="$(val sandbox_ns "$calls")" \
    'BEGIN { printf "lua calls: an empty hook %.0f ns, of which the sandbox'"'"'s set-up %.0f ns (a bare lua_pcall: %.0f ns)\n", c, s, b }'
exit 0
