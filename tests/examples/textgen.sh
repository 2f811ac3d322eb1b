#!/usr/bin/env bash
# textgen.sh: the text demo (examples/textgen/) end to end, in seconds: build
# it with examples/textgen/run.sh and run it for a few steps on Debian's
# fortunes (it must exit 0, print the final table with a row for every
# configuration, and every validation loss a number); then the program's
# errors: no fortune files, no held-out file, no directory (exit 1, the
# message naming the path) and bad usage (exit 2). Skipped (77) without the
# fortunes package.
#
#   tests/examples/textgen.sh BUILD_DIR WORKDIR
#
# Environment: CC, FROST_TEST_CFLAGS (e.g. the sanitizer flags of
# scripts/test.sh) for the driver.
set -uo pipefail

[ $# -eq 2 ] || { echo "usage: textgen.sh BUILD_DIR WORKDIR" >&2; exit 2; }
build=$1 work=$2/textgen
fortunes=/usr/share/games/fortunes
if [ ! -r "$fortunes/startrek" ]; then
    echo "SKIP: $fortunes/startrek absent (apt-get install fortunes)"
    exit 77
fi
rm -rf "$work"
mkdir -p "$work/empty" "$work/only-cookie"
cp "$fortunes/cookie" "$work/only-cookie/"
touch "$work/only-cookie/cookie.dat"

failed=0
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# A few steps of everything, -O1 to compile quickly.
BUILD_DIR=$build OUT=$work FROST_FLAGS=-O1 CFLAGS="${FROST_TEST_CFLAGS:-}" \
    examples/textgen/run.sh --steps 3 --finetune-steps 2 --samples 1 --sample-bytes 8 --plain > "$work/run.out" 2>&1
rc=$?
configs=$(sed -n 's/^    "\([a-z_0-9]*\)|.*/\1/p' examples/textgen/run.sh)
if [ $rc -ne 0 ]; then
    fail "run (exit $rc)"
    sed 's/^/    /' "$work/run.out"
else
    grep -q '^| configuration | trains | trainable params |' "$work/run.out" || fail "run: no final table"
    for c in $configs; do
        # | name | trains | params | grads | opt | arena | ratio | before | after | merged | time |
        grep -Eq "^\| $c \| .* \| [0-9]+\.[0-9]{4} \| [0-9]+\.[0-9]{4} \| ([0-9]+\.[0-9]{4}|-) \| [0-9.ms]+ \|$" \
            "$work/run.out" || fail "run: no table row for '$c' with validation losses"
        case $c in
        lora_*) # adapters saved, and merged into the base weights they validate as adapted (4 decimals)
            [ -s "$work/${c}_adapter_model.safetensors" ] || fail "run: no adapter file for '$c'"
            awk -F' [|] ' -v c="$c" '$1 == "| " c && $9 != $10 { bad = 1 } $1 == "| " c { seen = 1 }
                END { exit !(seen && !bad) }' "$work/run.out" ||
                fail "run: '$c' merged into the base weights does not validate as adapted"
            ;;
        esac
    done
    [ -s "$work/gpt_small_pretrained.safetensors" ] || fail "run: no checkpoint"
    grep -q "pre-trained, before fine-tuning" "$work/run.out" || fail "run: no sample"
    [ $failed -eq 0 ] && echo "ok   run: $(grep -c '^| ' "$work/run.out") table lines, configurations:" $configs
fi

prog=$work/textgen
expect() { # NAME STATUS TEXT ARGS...: the program exits STATUS and says TEXT on stderr
    local name=$1 want=$2 text=$3
    shift 3
    "$prog" --out "$work" --plain "$@" > "$work/$name.out" 2> "$work/$name.err"
    local got=$?
    if [ $got -ne "$want" ] || ! grep -qF -- "$text" "$work/$name.err"; then
        fail "$name (exit $got, want $want; stderr should contain: $text)"
        sed 's/^/    /' "$work/$name.err"
    else
        echo "ok   $name: $(head -n 1 "$work/$name.err")"
    fi
}
if [ -x "$prog" ]; then
    expect empty-dir 1 "no fortune files in '$work/empty'" --data-dir "$work/empty"
    expect no-hold-out 1 "'$work/only-cookie/startrek': no such fortune file" --data-dir "$work/only-cookie"
    expect only-hold-out 1 "has no fortune file besides the held-out 'cookie'" \
        --data-dir "$work/only-cookie" --hold-out cookie
    expect missing-dir 1 "cannot open the fortune directory '$work/absent': No such file or directory" \
        --data-dir "$work/absent"
    expect bad-number 2 "bad value for --steps: 'x'" --steps x
    expect unknown 2 "unknown option '--epochz'" --epochz 1
    expect no-value 2 "--seed needs a value" --seed
    expect bad-fraction 2 "--val-fraction must be in (0, 1)" --val-fraction 1
    "$prog" --help > "$work/help.out" 2>&1 && grep -q -- "--finetune-steps N" "$work/help.out" ||
        fail "--help (exit 0, listing the options)"
else
    fail "no program $prog"
fi
[ $failed -eq 0 ] && echo "all passed" && exit 0
echo "$failed failed"
exit 1
