#!/usr/bin/env bash
# examples/fashion/run.sh: compile examples/cnn_bn.frost once per freeze
# configuration (each object with its own prefix), link them with fashion.c
# and frost's support library, and run the demo.
#
#   examples/fashion/run.sh [fashion options...]     (see fashion --help)
#
# Environment: BUILD_DIR (default build), CC (default cc), BATCH (default 128).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUILD_DIR=${BUILD_DIR:-build}
BATCH=${BATCH:-128}
read -r -a cc <<<"${CC:-cc}"
frost=$BUILD_DIR/frost
out=$BUILD_DIR/fashion
mkdir -p "$out"

compile() { # NAME frost-options...
    local name=$1
    shift
    "$frost" compile examples/cnn_bn.frost -D N="$BATCH" --optimizer adamw --name "fm_$name" \
        -o "$out/fm_$name.o" "$@"
}
# Fine-tuning trains the new classifier (fc2) in every configuration.
compile all --config all
compile head --config head
compile bitfit --config bitfit --train 'fc2.*'
compile norm --config norm --train 'fc2.*'

"${cc[@]}" -std=c11 -O2 -Wall -Wextra -I "$out" -I support examples/fashion/fashion.c \
    "$out"/fm_all.o "$out"/fm_head.o "$out"/fm_bitfit.o "$out"/fm_norm.o \
    "$BUILD_DIR/support/libfrost_support.a" -lz -lopenblas -lm -o "$out/fashion"
exec "$out/fashion" --out "$out" "$@"
