#!/usr/bin/env bash
# valgrind.sh: the end-to-end suite (gradient checks, poison checks, optimizer
# checks) with every generated object compiled for a baseline x86-64 CPU and
# every checker run under valgrind's memcheck, which cannot decode AVX-512.
# Not part of scripts/test.sh: it takes several minutes.
#
#   scripts/valgrind.sh [MCPU]        (default x86-64-v2)
#
# Exit status 1 when any test fails; memcheck errors fail a test (exit 99).
# Environment: BUILD_DIR (default build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
mcpu=${1:-x86-64-v2}
if ! command -v valgrind >/dev/null; then
    sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind
fi
BUILD_DIR=$BUILD_DIR bash scripts/setup.sh
export FROST_TEST_COMPILE_FLAGS="--mcpu $mcpu"
export FROST_TEST_RUNNER="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
exec meson test -C "$BUILD_DIR" --suite e2e --print-errorlogs --timeout-multiplier 10
