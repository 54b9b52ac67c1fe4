#!/bin/sh
# bench/run-scraper.sh BUILD_DIR: the seed's scraper shape through a flow document: one job mapping an
# http node over 10,000 URLs of a local flowd-mock that each answer after 100 ms, 1,000 at once.
# The ideal is 10 waves of 100 ms: 1 s. Target: within 1.5x of it.
set -eu
B=${1:-build}
. "$(dirname "$0")/lib.sh"
out=$(mktemp)
"$B/flowd-mock" --port 0 --threads 2 >"$out" 2>&1 &
mock=$!
trap 'kill $mock 2>/dev/null; rm -f "$out"' EXIT
i=0
while ! grep -q '^port=' "$out" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
port=$(sed -n 's/^port=//p' "$out")
echo "== scraper ($RUNS runs, median shown; flowd-mock on port $port)"
line=$(measure "$B/flow-bench" scraper "http://127.0.0.1:$port" 10000 100 1000)
echo "$line"
verdict scraper "10000 URLs x 100 ms, 1000 at once, within 1.5x of the ideal 1 s" \
    "$(awk -v r="$(val vs_ideal "$line")" 'BEGIN { print (r <= 1.5) }')"
