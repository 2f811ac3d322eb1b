#!/usr/bin/env bash
# demo.sh: install what is missing, build frost, show the memory frost plans
# for the demo's network under each freeze configuration, then run the
# Fashion-MNIST demo: pre-train a conv net with batch norm in pure C, save a
# checkpoint, fine-tune it under several freeze configurations (each its own
# frost-compiled object) and compare memory and accuracy.
#
#   scripts/demo.sh [fashion options...]    e.g. --epochs 5 for a longer run
#
# Environment: BUILD_DIR (default: build), CC (default: cc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
export BUILD_DIR

say() { printf '\ndemo: %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

bash scripts/setup.sh

say "memory of examples/cnn_bn.frost (batch 128) per freeze configuration, planned at compile time"
run "$BUILD_DIR/frost" compare examples/cnn_bn.frost

say "Fashion-MNIST: pre-train, checkpoint, fine-tune under four freeze configurations"
run bash examples/fashion/run.sh "$@"
say "ok (objects, headers and the checkpoint are in $BUILD_DIR/fashion/)"
