#!/usr/bin/env bash
# test.sh: build frost and run the whole test suite, then run it again in a
# second build directory under AddressSanitizer + UndefinedBehaviorSanitizer,
# then give each libFuzzer harness a short reproducible run (scripts/fuzz.sh),
# then check the code style (scripts/format.sh --check).
#
#   scripts/test.sh
#
# Environment:
#   BUILD_DIR          plain build directory (default: build)
#   ASAN_BUILD_DIR     sanitizer build directory (default: build-asan)
#   FROST_NO_SANITIZE  set to 1 to skip the sanitizer pass
#   FROST_NO_FUZZ      set to 1 to skip the fuzzing pass (skipped anyway
#                      without clang's fuzzer runtime)
#   FROST_FUZZ_RUNS    inputs per harness in that pass (default 20000; each
#                      harness stops after 30 s in any case)
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

# A short, reproducible fuzzing run of every harness (fixed seed, fresh
# corpus from the seeds), when clang's fuzzer runtime is there (setup.sh
# installs it). Long campaigns: scripts/fuzz.sh --seconds 3600.
fuzz=skipped
if [ "${FROST_NO_FUZZ:-0}" != 1 ] && command -v clang >/dev/null &&
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
        clang -x c - -fsanitize=fuzzer -o /dev/null 2>/dev/null; then
    fuzz=fail
    say "== fuzz smoke (${FUZZ_BUILD_DIR:-build-fuzz}: libFuzzer, fixed seed)"
    smoke=${FUZZ_BUILD_DIR:-build-fuzz}/fuzz-smoke
    rm -rf "$smoke"
    if FUZZ_DIR=$smoke bash scripts/fuzz.sh --runs "${FROST_FUZZ_RUNS:-20000}" --seconds 30; then
        fuzz=ok
    fi
fi

# The code style of .clang-format (scripts/format.sh; clang-format 14, which
# setup.sh installs; skipped with another version).
say "== code style (scripts/format.sh --check)"
style_rc=0
bash scripts/format.sh --check || style_rc=$?
style=$([ $style_rc = 0 ] && echo ok || { [ $style_rc = 77 ] && echo skipped || echo fail; })

ok_or_skipped() { [ "$1" = ok ] || [ "$1" = skipped ]; }
if [ "$plain" = ok ] && ok_or_skipped "$asan" && ok_or_skipped "$fuzz" && ok_or_skipped "$style"; then
    say "SUMMARY: PASS (plain: $plain, sanitizers: $asan, fuzz: $fuzz, style: $style)"
    exit 0
fi
logs="$BUILD_DIR/meson-logs/testlog.txt"
[ "$asan" = skipped ] || logs="$logs, $ASAN_BUILD_DIR/meson-logs/testlog.txt"
[ "$fuzz" = skipped ] || logs="$logs, ${FUZZ_BUILD_DIR:-build-fuzz}/fuzz-smoke/*.log"
say "SUMMARY: FAIL (plain: $plain, sanitizers: $asan, fuzz: $fuzz, style: $style); logs: $logs"
exit 1
