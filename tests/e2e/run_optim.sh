#!/usr/bin/env bash
# run_optim.sh FROST WORKDIR TAG [frost compile options...]: compile
# tests/e2e/models/optim_tiny.frost with the options, build optim.c against
# it and run it. $CC, $FROST_TEST_CFLAGS, $FROST_TEST_COMPILE_FLAGS and
# $FROST_TEST_RUNNER as in run_gradcheck.sh.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: run_optim.sh FROST WORKDIR TAG [OPTIONS...]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
frost=$1 work=$2 tag=$3
shift 3
dir=$work/optim_$tag
mkdir -p "$dir"
read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${FROST_TEST_CFLAGS:-}"
read -r -a frost_flags <<<"${FROST_TEST_COMPILE_FLAGS:-}"
read -r -a runner <<<"${FROST_TEST_RUNNER:-}"
run() { printf '+ %s\n' "$*"; "$@"; }
run "$frost" compile "$here/models/optim_tiny.frost" "$@" "${frost_flags[@]}" --name ot -o "$dir/ot.o" --header "$dir/ot.h"
run "${cc[@]}" "${extra[@]}" -std=c11 -O1 -Wall -Wextra -include "$dir/ot.h" -DFROST_PREFIX=ot \
    -DFROST_PREFIX_UPPER=OT "$here/optim.c" "$dir/ot.o" -lopenblas -lm -o "$dir/optim"
run "${runner[@]}" "$dir/optim"
