#!/bin/sh
# run-fuzz.sh TARGET SECONDS [SEEDS]: fuzz TARGET for SECONDS (and at most
# 2,000,000 runs) from the seed directory SEEDS, in a fresh corpus
# directory that is removed afterwards. libFuzzer exits non-zero on a
# crash, a leak, a timeout (10 s per input) or an input over 2 GiB of
# memory, and this script with it; the input that did it is kept in the
# current directory as crash-*, leak-*, timeout-* or oom-*.
set -eu
target=$1
seconds=$2
seeds=${3:-}
corpus=$(mktemp -d "${TMPDIR:-/tmp}/drover-fuzz-XXXXXX")
trap 'rm -rf "$corpus"' EXIT
# shellcheck disable=SC2086
"$target" -max_total_time="$seconds" -runs=2000000 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$corpus" $seeds
