#!/usr/bin/env bash
# run.sh: frost's GEMMs and threads in generated code against OpenBLAS's
# GEMMs and one thread. Compiles MODEL (tests/gemm/shapes.frost: awkward
# matrix sizes; convs.frost: convolutions that run on several threads) under
# CONFIG with --gemm frost for this machine (gw), --gemm frost --mcpu haswell
# (gn: the 256-bit micro-kernel, which runs on any x86-64 with AVX2) and
# --gemm openblas (go), links the three with tests/gemm/compare.c and runs it
# (see there for the checks). Every input is f32. WIDTHS `widths-differ`
# drops the check that the two micro-kernels' objects agree bit for bit
# (for models whose other kernels sum with the vector width).
#
#   tests/gemm/run.sh FROST SOURCE_ROOT WORKDIR MODEL CONFIG [WIDTHS]
#
# Environment: CC, FROST_TEST_CFLAGS as for tests/e2e/run_gradcheck.sh.
set -euo pipefail
[ $# -eq 5 ] || [ $# -eq 6 ] || { echo "usage: run.sh FROST SOURCE_ROOT WORKDIR MODEL CONFIG [WIDTHS]" >&2; exit 2; }
frost=$1 root=$2 model=$4 config=$5 widths=()
case ${6:-} in
'') ;;
widths-differ) widths=(-DCOMPARE_WIDTHS_DIFFER) ;;
*) echo "run.sh: unknown WIDTHS '$6' (widths-differ)" >&2; exit 2 ;;
esac
dir=$3/gemm/$(basename "$model" .frost)-$config
mkdir -p "$dir"
read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${FROST_TEST_CFLAGS:-}"
if ! grep -qw avx2 /proc/cpuinfo; then
    echo "run.sh: this CPU has no AVX2: the 256-bit object cannot run here; skipped"
    exit 77
fi
"$frost" compile "$model" --config "$config" --gemm frost --name gw -o "$dir/gw.o" --header "$dir/gw.h"
"$frost" compile "$model" --config "$config" --gemm frost --mcpu haswell --name gn -o "$dir/gn.o" --header "$dir/gn.h"
"$frost" compile "$model" --config "$config" --gemm openblas --name go -o "$dir/go.o" --header "$dir/go.h"
"${cc[@]}" "${extra[@]}" "${widths[@]}" -std=c11 -O1 -Wall -Wextra -Werror -I"$dir" "$root/tests/gemm/compare.c" \
    "$dir/gw.o" "$dir/gn.o" "$dir/go.o" -lopenblas -lm -o "$dir/compare"
"$dir/compare"
