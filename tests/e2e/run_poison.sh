#!/usr/bin/env bash
# run_poison.sh: compile a model with frost, build poison.c against the
# generated header and object, and run it: backward must give bit-identical
# gradients after every arena byte outside the header's kept ranges, the grads
# block and the inputs were poisoned between forward and backward. Exit status
# is the checker's (1 also when compiling or linking fails, 2 on bad usage).
#
#   run_poison.sh FROST MODEL CONFIG WORKDIR
#   run_poison.sh FROST MODEL FROST-OPTIONS... WORKDIR
#
# Arguments and environment (CC, FROST_TEST_CFLAGS) as for run_gradcheck.sh.
set -euo pipefail

usage() {
    echo "usage: run_poison.sh FROST MODEL (CONFIG | FROST-OPTIONS...) WORKDIR" >&2
    exit 2
}
[ $# -ge 4 ] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
frost=$1
model=$2
shift 2
work=${*: -1}
sel=("${@:1:$#-1}")

if [ ${#sel[@]} -eq 1 ] && [[ ${sel[0]} != -* ]]; then
    tag=${sel[0]}
    sel=(--config "${sel[0]}")
else
    tag=${sel[*]}
fi
base=$(basename "$model" .frost)
prefix=pz_$(printf '%s' "$base" | tr -c 'A-Za-z0-9_' '_')
prefix_upper=$(printf '%s' "$prefix" | LC_ALL=C tr '[:lower:]' '[:upper:]')
dir=$work/${base}_$(printf '%s' "$tag" | tr -c 'A-Za-z0-9_.-' '_')
mkdir -p "$dir"

read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${FROST_TEST_CFLAGS:-}"

run() { printf '+ %s\n' "$*"; "$@"; }

run "$frost" compile "$model" "${sel[@]}" --name "$prefix" \
    -o "$dir/$prefix.o" --header "$dir/$prefix.h" || exit 1
run "${cc[@]}" "${extra[@]}" -std=c11 -O1 -Wall -Wextra \
    -include "$dir/$prefix.h" -DFROST_PREFIX="$prefix" -DFROST_PREFIX_UPPER="$prefix_upper" \
    "$here/poison.c" "$dir/$prefix.o" -lopenblas -lm -o "$dir/poison" || exit 1
run "$dir/poison"
