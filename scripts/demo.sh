#!/usr/bin/env bash
# demo.sh: build frost, compile the example MLP for two freeze configurations,
# compare their memory, then link the example driver against the default
# configuration and train it for a few steps.
#
#   scripts/demo.sh
#
# Environment: BUILD_DIR (default: build), CC (default: cc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
CC=${CC:-cc}
out=$BUILD_DIR/demo
frost=$BUILD_DIR/frost

say() { printf '\ndemo: %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

BUILD_DIR=$BUILD_DIR bash scripts/setup.sh
mkdir -p "$out"

say "compile the model: default configuration (head: only fc2 trains)"
run "$frost" compile examples/mlp.frost -o "$out/mlp.o"
say "compile it again with every parameter trainable, under the prefix mlp_all"
run "$frost" compile examples/mlp.frost --config all --name mlp_all -o "$out/mlp_all.o"

# The sizes are compile-time constants in the headers; print them side by side.
cat >"$out/sizes.c" <<'EOF'
#include <stdio.h>
#include "mlp.h"
#include "mlp_all.h"
static void row(const char *what, long long head, long long all) {
    printf("  %-22s %14lld %14lld\n", what, head, all);
}
int main(void) {
    printf("  %-22s %14s %14s\n", "bytes", "head", "all");
    row("parameters", (long long)MLP_PARAMS_BYTES, (long long)MLP_ALL_PARAMS_BYTES);
    row("gradients", (long long)MLP_GRADS_BYTES, (long long)MLP_ALL_GRADS_BYTES);
    row("residuals", (long long)MLP_RESIDUAL_BYTES, (long long)MLP_ALL_RESIDUAL_BYTES);
    row("train arena", (long long)MLP_TRAIN_ARENA_BYTES, (long long)MLP_ALL_TRAIN_ARENA_BYTES);
    row("inference arena", (long long)MLP_INFER_ARENA_BYTES, (long long)MLP_ALL_INFER_ARENA_BYTES);
    return 0;
}
EOF
say "memory per configuration (from the generated headers)"
"$CC" -std=c11 -I "$out" "$out/sizes.c" -o "$out/sizes"
"$out/sizes"

say "link the example driver against mlp.o (plain C, -lopenblas -lm) and run it"
run "$CC" -std=c11 -O2 -Wall -Wextra -I "$out" examples/mlp_driver.c "$out/mlp.o" \
    -lopenblas -lm -o "$out/mlp_driver"
run "$out/mlp_driver"
say "ok"
