#!/usr/bin/env bash
# bench/scale.sh: how frost's time grows with the depth of a model. For each
# L, a stack of L linear+ReLU blocks (x : f32[N, 64], fcK = linear(prev, 64),
# hK = relu(fcK)), a 10-class head and a cross-entropy loss, generated into a
# temporary directory; prints a markdown table of the wall-clock seconds of
# `frost plan` (and of `frost compile -O3` with --compile), best of REPEAT
# runs.
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

now() { date +%s.%N; }

# best TIMES COMMAND...: the shortest wall-clock seconds of TIMES runs
best() {
    local times=$1 best="" t0 t1
    shift
    for ((k = 0; k < times; k++)); do
        t0=$(now)
        "$@" > /dev/null
        t1=$(now)
        best=$(awk -v a="$t0" -v b="$t1" -v best="$best" 'BEGIN { t = b - a; if (best == "" || t < best) best = t; printf "%.3f", best }')
    done
    echo "$best"
}

if $compile; then
    echo "| layers | nodes | frost plan (s) | frost compile -O3 (s) |"
    echo "|-------:|------:|---------------:|----------------------:|"
else
    echo "| layers | nodes | frost plan (s) |"
    echo "|-------:|------:|---------------:|"
fi
for L in "${layers[@]}"; do
    model=$tmp/stack$L.frost
    awk -v L="$L" -v N="$batch" 'BEGIN {
        printf "model stack\nconst N = %d\ninput x : f32[N, 64]\ninput label : i32[N]\n", N
        prev = "x"
        for (k = 1; k <= L; k++) { printf "fc%d = linear(%s, 64)\nh%d = relu(fc%d)\n", k, prev, k, k; prev = "h" k }
        printf "head = linear(%s, 10)\nloss = cross_entropy(head, label)\noutput loss\n", prev
    }' > "$model"
    plan=$(best "$repeat" "$frost" plan "$model")
    if $compile; then
        comp=$(best "$repeat" "$frost" compile "$model" -O3 -o "$tmp/stack.o" --header "$tmp/stack.h")
        echo "| $L | $((2 * L + 2)) | $plan | $comp |"
    else
        echo "| $L | $((2 * L + 2)) | $plan |"
    fi
done
