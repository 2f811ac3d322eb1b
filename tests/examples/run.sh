#!/usr/bin/env bash
# run.sh: compile one example model under every configuration it defines,
# link each object with smoke.c and run it once (init, forward, backward,
# infer, train_step; see smoke.c for the checks).
#
#   tests/examples/run.sh FROST MODEL WORKDIR [FROST-OPTIONS...]
#
# FROST-OPTIONS go to every `frost compile`, e.g. `-D N=2 -O1` for a small
# batch and a quick compile. Configurations are the `config NAME` lines of
# MODEL (a model without any is compiled once, as `all`). When MODEL has an
# `optimizer NAME` statement, the header must say P_OPTIMIZER "NAME".
# Prints one line per configuration and ends with "N passed, M failed"
# (exit 1 on any failure, 2 on bad usage).
#
# Environment: CC (default cc), FROST_TEST_CFLAGS (extra flags for the driver,
# e.g. the sanitizer flags of scripts/test.sh).
set -uo pipefail

[ $# -ge 3 ] || { echo "usage: run.sh FROST MODEL WORKDIR [FROST-OPTIONS...]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
frost=$1 model=$2 work=$3
shift 3
opts=("$@")
base=$(basename "$model" .frost)
prefix=ex_$(printf '%s' "$base" | tr -c 'A-Za-z0-9_' '_')
prefix_upper=$(printf '%s' "$prefix" | LC_ALL=C tr '[:lower:]' '[:upper:]')
read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${FROST_TEST_CFLAGS:-}"

mapfile -t configs < <(sed -n 's/^[[:space:]]*config[[:space:]]\{1,\}\([A-Za-z0-9_]\{1,\}\).*/\1/p' "$model")
[ ${#configs[@]} -gt 0 ] || configs=(all)
optimizer=$(sed -n 's/^[[:space:]]*optimizer[[:space:]]\{1,\}\([A-Za-z0-9_]\{1,\}\).*/\1/p' "$model" | head -n 1)

passed=0 failed=0
fail() { echo "FAIL $base $1: $2"; failed=$((failed + 1)); }
for config in "${configs[@]}"; do
    dir=$work/$base/$config
    mkdir -p "$dir"
    if ! "$frost" compile "$model" --config "$config" "${opts[@]}" --name "$prefix" \
        -o "$dir/$prefix.o" --header "$dir/$prefix.h" > "$dir/log" 2>&1; then
        fail "$config" "frost compile failed"; sed 's/^/    /' "$dir/log"; continue
    fi
    if [ -n "$optimizer" ] && ! grep -q "^#define ${prefix_upper}_OPTIMIZER \"$optimizer\"" "$dir/$prefix.h"; then
        fail "$config" "the header does not say optimizer $optimizer"
    fi
    if ! "${cc[@]}" "${extra[@]}" -std=c11 -O1 -Wall -Wextra -Werror \
        -include "$dir/$prefix.h" -DFROST_PREFIX="$prefix" -DFROST_PREFIX_UPPER="$prefix_upper" \
        "$here/smoke.c" "$dir/$prefix.o" -lopenblas -lm -o "$dir/smoke" >> "$dir/log" 2>&1; then
        fail "$config" "building the driver failed"; sed 's/^/    /' "$dir/log"; continue
    fi
    if "$dir/smoke" "$config" > "$dir/out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $base $config: $(sed -n '$!p' "$dir/out" | tail -n 1)"
    else
        fail "$config" "the driver failed"; sed 's/^/    /' "$dir/out"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
