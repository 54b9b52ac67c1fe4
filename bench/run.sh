#!/bin/sh
# bench/run.sh BUILD_DIR: the benchmarks behind `make bench`. Every figure is the median of three runs,
# printed as key=value; each is compared with a baseline measured in the same run (the same work on
# bare libuv/jansson, or a bare HTTP server) because these machines are noisy, and with the targets.
set -eu
B=${1:-build}
BENCH=$B/flow-bench
. "$(dirname "$0")/lib.sh"

echo "== engine ($RUNS runs each, median shown)"
steps=$(measure "$BENCH" steps 1000000)
bare=$(measure "$BENCH" bare-steps 1000000)
sps=$(val steps_per_s "$steps")
echo "$steps"
echo "$bare"
awk -v s="$sps" -v b="$(val steps_per_s "$bare")" 'BEGIN { printf "steps: engine/bare=%.2f engine/pocketflow_ref=%.1f (PocketFlow: 430000 steps/s, from the issue)\n", s / b, s / 430000 }'
verdict steps ">= 20x PocketFlow = 8600000 steps/s" "$(awk -v s="$sps" 'BEGIN { print (s >= 8600000) }')"

sleep_line=$(measure "$BENCH" sleepers 1000000 1)
bare=$(measure "$BENCH" bare-sleepers 1000000 1)
echo "$sleep_line"
echo "$bare"
w=$(val wall_s "$sleep_line")
r=$(val peak_rss_mib "$sleep_line")
bw=$(val wall_s "$bare")
br=$(val peak_rss_mib "$bare")
awk -v w="$w" -v b="$bw" -v r="$r" -v br="$br" 'BEGIN { printf "sleepers: wall engine/bare=%.2f rss engine/bare=%.2f, peak rss per job engine=%.0f B bare=%.0f B (PocketFlow: 100000 sleepers in 4.2 s, 394 MiB)\n", w / b, r / br, r * 1048576 / 1000000, br * 1048576 / 1000000 }'
verdict sleepers "1000000 x 1 s in <= 1.5x the bare wall and <= 2x the bare rss (issue 16)" "$(awk -v w="$w" -v b="$bw" -v r="$r" -v br="$br" 'BEGIN { print (w <= 1.5 * b && r <= 2 * br) }')"

fan=$(measure "$BENCH" fanout 1000000 0.1)
bare=$(measure "$BENCH" bare-fanout 1000000 0.1)
echo "$fan"
echo "$bare"
w=$(val wall_s "$fan")
r=$(val peak_rss_mib "$fan")
awk -v w="$w" -v b="$(val wall_s "$bare")" 'BEGIN { printf "fanout: wall engine/bare=%.2f (PocketFlow: 100000 items in 2.1 s, 210 MiB)\n", w / b }'
verdict fanout "1000000 x 0.1 s in <= 1.5 s wall and <= 600 MiB" "$(awk -v w="$w" -v r="$r" 'BEGIN { print (w <= 1.5 && r <= 600) }')"

for extra in "$(dirname "$0")"/run-*.sh; do
    [ -f "$extra" ] && sh "$extra" "$B"
done
exit 0
