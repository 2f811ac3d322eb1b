#!/usr/bin/env bash
# names.sh: compare the parameter table of a generated header with a list of
# PyTorch state_dict entries (name, dtype, shape, in order), e.g.
# tests/fixtures/resnet18_state_dict.txt, written by
# tests/fixtures/make_resnet18_names.py from torchvision. No torch needed here:
# the model is compiled, linked with smoke.c and its table printed with
# `smoke --params` (persistent entries only, as in a state_dict).
#
#   tests/examples/names.sh FROST MODEL FIXTURE WORKDIR
#
# Exit status 0 when they are identical, 1 otherwise (with a diff).
# Environment: CC, FROST_TEST_CFLAGS as for run.sh.
set -uo pipefail

[ $# -eq 4 ] || { echo "usage: names.sh FROST MODEL FIXTURE WORKDIR" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
frost=$1 model=$2 fixture=$3 work=$4
base=$(basename "$model" .frost)
prefix=nm_$(printf '%s' "$base" | tr -c 'A-Za-z0-9_' '_')
prefix_upper=$(printf '%s' "$prefix" | LC_ALL=C tr '[:lower:]' '[:upper:]')
dir=$work/$base-names
mkdir -p "$dir"
read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${FROST_TEST_CFLAGS:-}"

set -e
"$frost" compile "$model" -O0 --name "$prefix" -o "$dir/$prefix.o" --header "$dir/$prefix.h"
"${cc[@]}" "${extra[@]}" -std=c11 -O1 -Wall -Wextra -Werror \
    -include "$dir/$prefix.h" -DFROST_PREFIX="$prefix" -DFROST_PREFIX_UPPER="$prefix_upper" \
    "$here/smoke.c" "$dir/$prefix.o" -lopenblas -lm -o "$dir/smoke"
"$dir/smoke" --params > "$dir/params.txt"
set +e
if diff -u "$fixture" "$dir/params.txt"; then
    echo "$base: $(wc -l < "$fixture") entries, names, dtypes, shapes and order as in $(basename "$fixture")"
else
    echo "FAIL: the parameter table of $model differs from $fixture (- expected, + frost)"
    exit 1
fi
