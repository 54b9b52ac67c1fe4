#!/bin/sh
# bench/run-netpolicy.sh BUILD_DIR: what the outbound policy (lib/netpolicy.h) costs: the HTTP client
# asks it once per address it connects to and once per request it sends. A mix of public, private,
# loopback, IPv6 and IPv4-in-IPv6 addresses against short allow and deny lists, as flowd runs it.
# Target: under 1 us a verdict, nothing next to a connection or a request (tens of us at least).
set -eu
B=${1:-build}
. "$(dirname "$0")/lib.sh"
echo "== outbound policy ($RUNS runs, median shown)"
line=$(measure "$B/flow-bench" netpolicy 10000000)
echo "$line"
verdict netpolicy "a verdict in under 1 us" "$(awk -v ns="$(val ns_per_check "$line")" 'BEGIN { print (ns < 1000) }')"
