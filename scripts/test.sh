#!/usr/bin/env bash
# test.sh: build frost and run the whole test suite, then run it again in a
# second build directory under AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   scripts/test.sh
#
# Environment:
#   BUILD_DIR          plain build directory (default: build)
#   ASAN_BUILD_DIR     sanitizer build directory (default: build-asan)
#   FROST_NO_SANITIZE  set to 1 to skip the sanitizer pass
#
# In the sanitizer pass the end-to-end tests compile their drivers (which link
# the generated objects) with the same sanitizers: tests/e2e/run_gradcheck.sh
# adds $FROST_TEST_CFLAGS to its compiler command line, and `meson test` passes
# this environment through to the tests.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}

say() { printf 'test: %s\n' "$*"; }

plain=fail
asan=skipped

say "== plain build ($BUILD_DIR)"
if ! BUILD_DIR=$BUILD_DIR bash scripts/setup.sh; then
    plain="build failed"
elif meson test -C "$BUILD_DIR" --print-errorlogs; then
    plain=ok
fi

if [ "${FROST_NO_SANITIZE:-0}" != 1 ]; then
    asan=fail
    sanitize=-fsanitize=address,undefined
    say "== sanitizer build ($ASAN_BUILD_DIR: $sanitize)"
    export FROST_TEST_CFLAGS="$sanitize -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
    # Make every sanitizer report fatal; settings the caller gave come last
    # and so win (the sanitizers take the last value of a repeated option).
    export ASAN_OPTIONS="abort_on_error=1:halt_on_error=1:print_summary=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    if ! BUILD_DIR=$ASAN_BUILD_DIR bash scripts/setup.sh -Db_sanitize=address,undefined -Db_lundef=false; then
        asan="build failed"
    elif meson test -C "$ASAN_BUILD_DIR" --print-errorlogs --timeout-multiplier 4; then
        asan=ok
    fi
fi

if [ "$plain" = ok ] && { [ "$asan" = ok ] || [ "$asan" = skipped ]; }; then
    say "SUMMARY: PASS (plain: $plain, sanitizers: $asan)"
    exit 0
fi
logs="$BUILD_DIR/meson-logs/testlog.txt"
[ "$asan" = skipped ] || logs="$logs, $ASAN_BUILD_DIR/meson-logs/testlog.txt"
say "SUMMARY: FAIL (plain: $plain, sanitizers: $asan); logs: $logs"
exit 1
