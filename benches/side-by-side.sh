#!/usr/bin/env bash
# Compare two builds of the `bench` example on one cell, run at the same time.
#
#   benches/side-by-side.sh OLD_BENCH NEW_BENCH WORKLOAD SIZE MODE [ROUNDS]
#
# Each round runs `OLD_BENCH --repeat WORKLOAD SIZE MODE 1` and the same with NEW_BENCH
# at once, each pinned to its own CPU (`taskset`; the CPUs swapped every round), and prints
# both times and NEW/OLD; then the median and the mean of the ratios. On a shared machine,
# whose speed moves by a quarter from one second to the next, the two runs of a round see
# the same disturbances, so their ratio is steadier than either time (a binary against
# itself: 0.97-0.98). Meant for a mode whose events run on one thread (`drive-inline`,
# `base-futures`): a spawning mode's two workers would share one CPU. With OLD_BENCH and
# NEW_BENCH the same binary and MODE given as `A:B`, compares mode B with mode A instead
# (say `base-futures:drive-inline`, for drive-flow's inline ratio to its baseline).
#
# Build each binary with `cargo build --release --example bench` and copy
# `target/release/examples/bench` aside before building the other. Needs `taskset` (util-linux)
# and at least two CPUs.
set -euo pipefail

if [ $# -lt 5 ]; then
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
old=$1 new=$2 workload=$3 size=$4 mode=$5 rounds=${6:-8}
case $mode in
    *:*) old_mode=${mode%%:*} new_mode=${mode#*:} ;;
    *) old_mode=$mode new_mode=$mode ;;
esac
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The ns/event figure of one `--repeat` run's output.
per_event() { grep -oE '[0-9.]+ ns/event' "$1" | grep -oE '^[0-9.]+'; }

for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 0 ]; then a=0 b=1; else a=1 b=0; fi
    taskset -c $a "$old" --repeat "$workload" "$size" "$old_mode" 1 >"$scratch/old" 2>&1 &
    taskset -c $b "$new" --repeat "$workload" "$size" "$new_mode" 1 >"$scratch/new" 2>&1 &
    wait
    echo "$(per_event "$scratch/old") $(per_event "$scratch/new")"
done | awk '
    { ratio = $2 / $1; printf "old %s  new %s  new/old %.3f\n", $1, $2, ratio
      sum += ratio; ratios[++n] = ratio }
    END {
        # median: sort the ratios (insertion sort: a few rounds)
        for (i = 2; i <= n; i++) { v = ratios[i]; j = i - 1
            while (j > 0 && ratios[j] > v) { ratios[j + 1] = ratios[j]; j-- }
            ratios[j + 1] = v }
        median = (n % 2) ? ratios[(n + 1) / 2] : (ratios[n / 2] + ratios[n / 2 + 1]) / 2
        printf "new/old over %d rounds: median %.3f, mean %.3f\n", n, median, sum / n }'
