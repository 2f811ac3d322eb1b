#!/usr/bin/env bash
# fuzz.sh: build frost's libFuzzer harnesses (clang, ASan + UBSan) and run
# them on seed corpora made from the examples, the golden files and small
# hand-made checkpoint, IDX and JSON files.
#
#   scripts/fuzz.sh [--seconds S | --runs N] [--jobs J] [HARNESS...]
#
# HARNESS: model safetensors idx json (default: all four, one after another).
# --seconds S   stop each harness after S seconds (default 30)
# --runs N      stop each harness after N inputs, or S seconds if sooner: with
#               the fixed --seed and a fresh FUZZ_DIR, a reproducible run
#               (what scripts/test.sh does)
# --seed K      libFuzzer's seed (default 1)
# A finding (crash, sanitizer report, leak, an input taking over 10 s, over
# 2 GB) stops that harness and leaves the input in $FUZZ_DIR/findings/;
# the script then exits 1. Corpora grow in $FUZZ_DIR/corpus/HARNESS and are
# kept between runs, so a long campaign can be resumed. The last line is
# "N passed, M failed" (a harness passes when it ran without a finding).
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_DIR (default
# $FUZZ_BUILD_DIR/fuzz).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
FUZZ_DIR=${FUZZ_DIR:-$BUILD/fuzz}
seconds=30 runs= seed=1 harnesses=()
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    model|safetensors|idx|json) harnesses+=("$1"); shift ;;
    *) echo "fuzz: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=(model safetensors idx json)
say() { printf 'fuzz: %s\n' "$*"; }

# Packages (clang's fuzzer runtime included) come from setup.sh's list;
# configure the instrumented tree and build only the harnesses.
if [ ! -f "$BUILD/meson-private/coredata.dat" ]; then
    BUILD_DIR=build bash scripts/setup.sh >/dev/null   # packages; the plain build is a by-product
    say "configuring $BUILD (clang, libFuzzer, ASan + UBSan)"
    CC=clang CXX=clang++ meson setup "$BUILD" -Dfuzz=true -De2e=false \
        -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$BUILD" $(for h in "${harnesses[@]}"; do echo "tests/fuzz/fuzz_$h"; done) >/dev/null

# Seeds: regenerated every run (cheap), beside the growing corpora.
seeds=$FUZZ_DIR/seeds
rm -rf "$seeds" && mkdir -p "$seeds"/{model,safetensors,idx,json} "$FUZZ_DIR/findings"
cp examples/*.frost examples/*/*.frost tests/golden/*.frost tests/e2e/models/*.frost "$seeds/model/" 2>/dev/null || true
# safetensors: an 8-byte little-endian header length, the JSON header, data.
le32() { printf '\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
st() { # NAME JSON DATA_BYTES
    { printf "$(le32 ${#2})"'\x00\x00\x00\x00'; printf '%s' "$2"; head -c "$3" /dev/zero; } > "$seeds/safetensors/$1"
    printf '%s' "$2" > "$seeds/json/$1.json"
}
st full '{"fc.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[24,36]},"bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[36,44]},"ids":{"dtype":"I32","shape":[4],"data_offsets":[44,60]},"mask":{"dtype":"U8","shape":[5],"data_offsets":[60,65]},"__metadata__":{"format":"pt"}}' 65
st partial '{"fc.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"extra":{"dtype":"BF16","shape":[1],"data_offsets":[24,26]}}' 26
st empty '{}' 0
printf '[1, -2.5e3, "a\\u00e9\\ud83d\\ude00", {"k": [true, false, null]}, {}]' > "$seeds/json/values.json"
# IDX (fuzz_idx): a 2-byte big-endian length of the images file, the images
# file, then the labels file; plain and gzip'd.
idx_seed() { # NAME IMAGES LABELS
    local n
    n=$(stat -c %s "$2")
    { printf "\\x$(printf %02x $((n >> 8)))\\x$(printf %02x $((n & 255)))"; cat "$2" "$3"; } > "$seeds/idx/$1"
}
printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x03' > "$seeds/images"
printf '\x00\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0\xf0\xff\x01' >> "$seeds/images"
printf '\x00\x00\x08\x01\x00\x00\x00\x02\x01\x07' > "$seeds/labels"
idx_seed plain "$seeds/images" "$seeds/labels"
gzip -nc "$seeds/images" > "$seeds/images.gz"
gzip -nc "$seeds/labels" > "$seeds/labels.gz"
idx_seed gzip "$seeds/images.gz" "$seeds/labels.gz"
rm -f "$seeds"/images* "$seeds"/labels*

# Every sanitizer report is a finding: UBSan would otherwise print and go on.
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

dict() { case $1 in model) echo tests/fuzz/model.dict ;; safetensors|json) echo tests/fuzz/json.dict ;; esac; }
passed=0 failed=0
for h in "${harnesses[@]}"; do
    corpus=$FUZZ_DIR/corpus/$h
    mkdir -p "$corpus"
    args=(-seed="$seed" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
          -artifact_prefix="$FUZZ_DIR/findings/$h-")
    [ -n "$(dict "$h")" ] && args+=(-dict="$(dict "$h")")
    args+=(-max_total_time="$seconds")
    limit="$seconds s"
    if [ -n "$runs" ]; then args+=(-runs="$runs"); limit="$runs inputs or $seconds s"; fi
    log=$FUZZ_DIR/$h.log
    say "$h: $limit (log: $log)"
    if "$BUILD/tests/fuzz/fuzz_$h" "${args[@]}" "$corpus" "$seeds/$h" > "$log" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        say "$h: FINDING (see $log and $FUZZ_DIR/findings/)"
        grep -m 5 -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | sed 's/^/    /' || true
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    say "$h: ${execs:-?} inputs, ${cov:-no coverage line}, corpus $(ls "$corpus" | wc -l) files"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
