#!/bin/sh
# bench/run-regex.sh BUILD_DIR: how long the patterns of issue 11 hold the loop thread now that they run
# on PCRE2 under the default limits (glibc's regexec took 17 to 37 s on some of them), with PCRE2's JIT
# and with its interpreter; and one input answer of 1,000 bomb-ish strings, which the budget stops.
set -eu
B=${1:-build}
echo "== regular expressions (the time of one match, or of one schema check)"
"$B/flow-bench" regex 1 20
"$B/flow-bench" regex 0 5
