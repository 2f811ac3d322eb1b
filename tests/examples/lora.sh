#!/usr/bin/env bash
# lora.sh: LoRA adapter files and merging through generated code. Compiles
# tests/examples/lora.frost four times (configurations none, lora_fc,
# lora_rank, lora_one, each under its own symbol prefix), links them with
# tests/examples/lora.c and the support library into one program and runs it
# (see lora.c for the checks).
#
#   tests/examples/lora.sh FROST SOURCE_ROOT LIBFROST_SUPPORT WORKDIR
#
# Environment: CC, FROST_TEST_CFLAGS as for run.sh.
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: lora.sh FROST SOURCE_ROOT LIBFROST_SUPPORT WORKDIR" >&2; exit 2; }
frost=$1 root=$2 lib=$3 dir=$4/lora
mkdir -p "$dir"
read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${FROST_TEST_CFLAGS:-}"
model=$root/tests/examples/lora.frost
"$frost" compile "$model" --config none --infer-only --name base -O1 -o "$dir/base.o"
"$frost" compile "$model" --config lora_fc --name lo -O1 -o "$dir/lo.o"
"$frost" compile "$model" --config lora_rank --infer-only --name rk -O1 -o "$dir/rk.o"
"$frost" compile "$model" --config lora_one --infer-only --name one -O1 -o "$dir/one.o"
"${cc[@]}" "${extra[@]}" -std=c11 -O1 -Wall -Wextra -Werror -I"$dir" -I"$root/support" "$root/tests/examples/lora.c" \
    "$dir/base.o" "$dir/lo.o" "$dir/rk.o" "$dir/one.o" "$lib" -lz -lopenblas -lm -o "$dir/lora"
"$dir/lora" "$dir"
