#!/usr/bin/env bash
# bench/scale.sh: how frost's time grows with the depth of a model. For each
# L, a stack of L linear+ReLU blocks (x : f32[N, 64], fcK = linear(prev, 64),
# hK = relu(fcK)), a 10-class head and a cross-entropy loss, generated into a
# temporary directory; prints a markdown table of the wall-clock and CPU
# seconds of `frost plan` (and of `frost compile -O3` with --compile), best of
# REPEAT runs.
#
#   bench/scale.sh [--compile] [--frost FROST] [L...]
#
# L defaults to 100 1000 5000 10000; FROST to build/frost. Environment:
# REPEAT (default 1) runs per measurement, N (default 32) the batch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
frost=build/frost compile=false layers=()
while [ $# -gt 0 ]; do
    case "$1" in
    --compile) compile=true ;;
    --frost) frost=${2:?--frost needs a path}; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) layers+=("$1") ;;
    esac
    shift
done
[ ${#layers[@]} -gt 0 ] || layers=(100 1000 5000 10000)
repeat=${REPEAT:-1}
batch=${N:-32}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# best TIMES COMMAND...: "WALL CPU", each the least over TIMES runs, in
# seconds; CPU is user + system time, which a loaded machine inflates less.
best() {
    local times=$1 wall="" cpu="" w c
    shift
    for ((k = 0; k < times; k++)); do
        /usr/bin/time -f '%e %U %S' -o "$tmp/time" "$@" > /dev/null 2>&1
        read -r w c < <(awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$tmp/time")
        wall=$(awk -v a="$w" -v b="$wall" 'BEGIN { print (b == "" || a < b) ? a : b }')
        cpu=$(awk -v a="$c" -v b="$cpu" 'BEGIN { print (b == "" || a < b) ? a : b }')
    done
    echo "$wall $cpu"
}

if $compile; then
    echo "| layers | nodes | frost plan (s) | plan CPU (s) | frost compile -O3 (s) | compile CPU (s) |"
    echo "|-------:|------:|---------------:|-------------:|----------------------:|----------------:|"
else
    echo "| layers | nodes | frost plan (s) | plan CPU (s) |"
    echo "|-------:|------:|---------------:|-------------:|"
fi
for L in "${layers[@]}"; do
    model=$tmp/stack$L.frost
    awk -v L="$L" -v N="$batch" 'BEGIN {
        printf "model stack\nconst N = %d\ninput x : f32[N, 64]\ninput label : i32[N]\n", N
        prev = "x"
        for (k = 1; k <= L; k++) { printf "fc%d = linear(%s, 64)\nh%d = relu(fc%d)\n", k, prev, k, k; prev = "h" k }
        printf "head = linear(%s, 10)\nloss = cross_entropy(head, label)\noutput loss\n", prev
    }' > "$model"
    read -r plan plan_cpu < <(best "$repeat" "$frost" plan "$model")
    if $compile; then
        read -r comp comp_cpu < <(best "$repeat" "$frost" compile "$model" -O3 -o "$tmp/stack.o" --header "$tmp/stack.h")
        echo "| $L | $((2 * L + 2)) | $plan | $plan_cpu | $comp | $comp_cpu |"
    else
        echo "| $L | $((2 * L + 2)) | $plan | $plan_cpu |"
    fi
done
