#!/usr/bin/env bash
# Command-line usage errors: each case runs frost with some arguments and
# checks the exit status and the first line of stderr, and that no output file
# is left behind.
#
#   tests/cli/usage.sh path/to/frost
#
# Run from the repository root. Last line: "N passed, M failed".
set -u
frost=${1:?usage: usage.sh FROST_BINARY}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
# Under LeakSanitizer, Graphviz's own leaks (dot -o g.png renders) are not frost's.
export LSAN_OPTIONS="suppressions=$PWD/tests/views/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

# expect STATUS 'FIRST STDERR LINE' ARGS...   ('' : stderr must be empty)
expect() {
    local want_status=$1 want_line=$2
    shift 2
    rm -rf "$tmp/out" && mkdir "$tmp/out"
    (cd "$tmp/out" && "$frost" "$@" > "$tmp/stdout" 2> "$tmp/stderr")
    local status=$? line problems=()
    line=$(head -n 1 "$tmp/stderr")
    [ "$status" -eq "$want_status" ] || problems+=("exit status $status, expected $want_status")
    [ "$line" = "$want_line" ] || problems+=("stderr starts '$line', expected '$want_line'")
    if [ "$want_status" -ne 0 ]; then
        local left
        left=$(ls -A "$tmp/out")
        [ -z "$left" ] || problems+=("left files behind: $left")
    fi
    if [ ${#problems[@]} -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL frost $*: $(IFS=';'; echo "${problems[*]}")"
    fi
}

model=$PWD/examples/mlp.frost
# An unknown CPU is a usage error naming the closest known ones, before LLVM
# can warn or abort (it used to abort with status 134 and leave temporaries).
if [ "$(uname -m)" = x86_64 ]; then
    expect 2 "frost: unknown CPU 'znver' for x86_64-pc-linux-gnu; the closest it knows: 'znver1', 'znver2', 'znver3' ('--mcpu help' lists them all)" \
        compile "$model" --triple x86_64-pc-linux-gnu --mcpu znver -o x.o
fi
expect 2 "frost: unknown target triple 'nosuch-thing': No available targets are compatible with triple \"nosuch-thing\"" \
    compile "$model" --triple nosuch-thing -o x.o
expect 2 "frost: unknown --gemm 'mkl' (frost or openblas)" compile "$model" --gemm mkl -o x.o
expect 0 "" compile "$model" --gemm openblas -o x.o
nm "$tmp/out/x.o" | grep -qw cblas_sgemm || { failed=$((failed + 1)); echo "FAIL --gemm openblas: x.o calls no cblas_sgemm"; }
expect 0 "" compile "$model" -o x.o
! nm "$tmp/out/x.o" | grep -qw cblas_sgemm || { failed=$((failed + 1)); echo "FAIL the default GEMM is frost's, yet x.o calls cblas_sgemm"; }
expect 0 "" compile --mcpu help
grep -qx 'x86-64-v2' "$tmp/stdout" || { failed=$((failed + 1)); echo "FAIL --mcpu help does not list x86-64-v2"; }
expect 0 "" compile "$model" --mcpu x86-64-v2 -o x.o
[ -s "$tmp/out/x.o" ] && [ -s "$tmp/out/x.h" ] || { failed=$((failed + 1)); echo "FAIL --mcpu x86-64-v2 wrote no x.o/x.h"; }

# An option a command does not take is a usage error, not ignored (one table
# in cli/frost.c says which command takes which); names they give must exist.
expect 2 "frost: --steps is an option of frost plan, not frost dot" dot "$model" --steps
expect 2 "frost: --only is an option of frost dot, not frost plan" plan "$model" --only fc1
expect 2 "frost: --expand is an option of frost dot, not frost compare" compare "$model" --expand
expect 2 "frost: --steps is an option of frost plan, not frost compile" compile "$model" --steps -o x.o
expect 2 "frost: --header is an option of frost compile, not frost plan" plan "$model" --header x.h
expect 2 "frost: --format is an option of frost plan, compare, dot and configs, not frost compile" \
    compile "$model" --format json -o x.o
expect 2 "frost: --from is an option of frost dot, not frost compare" compare "$model" --from fc1
expect 2 "frost: -O2 is an option of frost compile, not frost dot" dot "$model" -O2
expect 2 "frost: --optimizer is an option of frost compile, plan and compare, not frost dot" dot "$model" --optimizer sgd
expect 2 "frost: unknown option '--nosuch'" plan "$model" --nosuch
expect 2 "frost: --infer-only is an option of frost compile, not frost plan" plan "$model" --infer-only
expect 2 "frost: --infer-only is an option of frost compile, not frost compare" compare "$model" --infer-only
expect 2 "frost: --checked is an option of frost compile, not frost dot" dot "$model" --checked
expect 0 "" plan "$model" -o p.txt
grep -q '^model mlp, config head' "$tmp/out/p.txt" || { failed=$((failed + 1)); echo "FAIL plan -o p.txt wrote no plan"; }
# The usage error points to the command's help.
expect 2 "frost: unknown option '--nosuch'" compile "$model" --nosuch
[ "$(sed -n 2p "$tmp/stderr")" = "Try 'frost compile --help'." ] ||
    { failed=$((failed + 1)); echo "FAIL compile --nosuch: second line '$(sed -n 2p "$tmp/stderr")'"; }

# An option's value never starts with '-': a missing value is not taken from
# the next option. Values with a '-' further in (lr=-1, N=-1) are values.
expect 2 "frost: option --from needs a value" dot "$model" --from
expect 2 "frost: option --config needs a value, got '-o' (values never start with '-')" \
    compile "$model" --config -o x.o
expect 2 "frost: option -o needs a value, got '--config' (values never start with '-')" \
    compile "$model" -o --config head
expect 2 "frost: option --train needs a value, got '-fc1.*' (values never start with '-')" \
    plan "$model" --train -fc1.*
expect 1 "$model: error: optimizer sgd: lr must be a finite number >= 0" compile "$model" --opt lr=-1 -o x.o
expect 1 "$model:5:20: error: dimension 0 of input 'x' is -1 (from -D N=-1); dimensions must be positive" \
    plan "$model" -D N=-1
expect 1 "$model:5:20: error: dimension 0 of input 'x' is -1 (from -D N=-1); dimensions must be positive" \
    plan "$model" -DN=-1

# Help: the overview, and each command's own with only its options (exit 0).
expect 0 "" --help
grep -q '^usage: frost compile FILE' "$tmp/stdout" && grep -q '^options of dot:' "$tmp/stdout" ||
    { failed=$((failed + 1)); echo "FAIL frost --help is not the overview"; }
# help_lists CMD OPTION... : `frost CMD --help` lists exactly these options
help_lists() {
    local cmd=$1 got want
    shift
    for h in --help -h; do
        expect 0 "" "$cmd" "$h"
        got=$(grep -oE '^  (-[-a-zA-Z0-9]+)' "$tmp/stdout" | tr -d ' ' | tr '\n' ' ')
        want="$* "
        [ "$got" = "$want" ] || { failed=$((failed + 1)); echo "FAIL frost $cmd $h lists '$got', expected '$want'"; }
        grep -q "^usage: frost $cmd FILE" "$tmp/stdout" || { failed=$((failed + 1)); echo "FAIL frost $cmd $h: no usage line"; }
    done
}
help_lists compile -o --header -D --config --train --freeze --grad --batchnorm-eval --optimizer --opt --name -O0 --mcpu --triple --gemm --infer-only --checked -d -h
help_lists plan -o -D --config --train --freeze --grad --batchnorm-eval --optimizer --opt --format --steps -h
help_lists compare -o -D --config --train --freeze --grad --batchnorm-eval --optimizer --opt --format -h
help_lists dot -o -D --config --train --freeze --grad --batchnorm-eval --format --only --from --to --collapse --expand -h
help_lists configs -o -D --format -h
expect 0 "" dot "$model" --only fc1 --help # help wins over the rest
grep -q '^usage: frost dot FILE' "$tmp/stdout" || { failed=$((failed + 1)); echo "FAIL dot ... --help: no dot help"; }
expect 0 "" help plan
grep -q '^usage: frost plan FILE' "$tmp/stdout" || { failed=$((failed + 1)); echo "FAIL frost help plan: no plan help"; }
expect 2 "frost: unknown --format 'markdown'" plan "$model" --format markdown
expect 1 "frost: error: --from 'fc9': no node of model mlp is named so or lies under it; did you mean 'fc1'?" \
    dot "$model" --from fc9 -o g.dot
expect 1 "frost: error: --only 'conv*': no node of model mlp matches, nor any name it lies under" \
    dot "$model" --only 'conv*' -o g.svg
expect 1 "frost: error: --from names a node that comes after the last one --to names" dot "$model" --from fc2 --to fc1
expect 0 "" plan "$model" -o p.svg
grep -q '<svg' "$tmp/out/p.svg" || { failed=$((failed + 1)); echo "FAIL plan -o p.svg wrote no SVG"; }
expect 0 "" compare "$model" --format svg -o c.svg
grep -q '<svg' "$tmp/out/c.svg" || { failed=$((failed + 1)); echo "FAIL compare -o c.svg wrote no SVG"; }

# compile -d LETTERS dumps the IR to stderr after the passes it names, each
# section under a "> ... after ...:" line; an unknown letter is a usage error,
# and -d belongs to compile.
# dumped LETTERS MODEL 'SECTION LINE' 'A LINE OF IT (grep -E)' [compile args...]
dumped() {
    local letters=$1 m=$2 section=$3 pattern=$4
    shift 4
    expect 0 "$section" compile "$m" -d "$letters" -o x.o "$@"
    grep -Eq "$pattern" "$tmp/stderr" ||
        { failed=$((failed + 1)); echo "FAIL -d $letters: no line matching '$pattern' on stderr"; }
}
dumped g "$model" "> graph after configuration:" '^  node 0: %4 = linear\(%0, %2, %3\) attr\[512, 1, 0\]  # fc1$'
[ "$(grep -c '^> ' "$tmp/stderr")" -eq 1 ] ||
    { failed=$((failed + 1)); echo "FAIL -d g dumps more than the graph"; }
dumped l "$model" "> train program after lowering:" \
    '^fwd +[0-9]+: rt_linear_fwd\(b[0-9]+ x, b[0-9]+ fc1\.weight, b[0-9]+ fc1\.bias, w b[0-9]+ fc1, 128, 784, 512\)$'
grep -Eq '^b[0-9]+ fc1 \[arena\] f32\[128, 512\] 262144 bytes$' "$tmp/stderr" ||
    { failed=$((failed + 1)); echo "FAIL -d l: fc1 not lowered, or planned already"; }
grep -qx '> infer program after lowering:' "$tmp/stderr" ||
    { failed=$((failed + 1)); echo "FAIL -d l does not dump the infer program"; }
dumped p "$model" "> train program after planning:" '^arena [0-9]+ bytes, lower bound [0-9]+, residual [0-9]+$'
dumped w "$PWD/tests/e2e/models/conv_grid.frost" "> train program after widening:" \
    ' live ([0-9]+)\.\.\1 planned [0-9]+$' --config all
grep -q '  # blocks: operand [0-9]*, up to [0-9]* images' "$tmp/stderr" ||
    { failed=$((failed + 1)); echo "FAIL -d w does not name the blocked steps"; }
[ "$(grep -c '^> ' "$tmp/stderr")" -eq 2 ] ||
    { failed=$((failed + 1)); echo "FAIL -d w dumps other sections than widening"; }
expect 0 "> graph after configuration:" compile "$model" -d wplg -o x.o
[ "$(grep -c '^> ' "$tmp/stderr")" -eq 7 ] && [ -s "$tmp/out/x.o" ] ||
    { failed=$((failed + 1)); echo "FAIL -d wplg: not 7 sections, or no x.o"; }
expect 2 "frost: unknown -d letter 'x' (letters: glpw)" compile "$model" -d gx -o x.o
expect 2 "frost: -d is an option of frost compile, not frost plan" plan "$model" -d g

# dot writes a real PNG for a .png name; plan and compare draw SVG only and
# refuse a .png name rather than write text into it.
expect 0 "" dot "$model" -o g.png
[ "$(head -c 8 "$tmp/out/g.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] ||
    { failed=$((failed + 1)); echo "FAIL dot -o g.png does not start with the PNG signature"; }
expect 2 "frost: plan draws SVG, not PNG: write -o p.svg (rsvg-convert makes a PNG of it)" plan "$model" -o p.png
expect 2 "frost: compare draws SVG, not PNG: write -o c.svg (rsvg-convert makes a PNG of it)" compare "$model" -o c.png
expect 2 "frost: unknown --format 'png'" plan "$model" --format png

# The header's Configuration line says what the command line changed, and a
# model with batch norm gets its mode.
expect 0 "" compile "$PWD/tests/e2e/models/pool_bn.frost" --config x_only --train '*.bias' --batchnorm-eval -O0 -o pb.o
grep -qF ' * Configuration: x_only + --train *.bias + --batchnorm-eval; 3 of 13 parameter tensors trainable' "$tmp/out/pb.h" &&
    grep -qF ' * Batch norm: eval mode (running statistics in training too, not updated).' "$tmp/out/pb.h" ||
    { failed=$((failed + 1)); echo "FAIL pool_bn.h: $(sed -n 4,5p "$tmp/out/pb.h")"; }
# A pattern holding a star then a slash does not end the header's comment.
expect 0 "" compile "$model" --train '[!*/]*' -O0 -o m.o
cc -fsyntax-only -x c "$tmp/out/m.h" 2> /dev/null || { failed=$((failed + 1)); echo "FAIL --train '[!*/]*': m.h is not C"; }

# frost configs lists the configurations; it takes no --config, and draws no image.
expect 2 "frost: --config is an option of frost compile, plan, compare and dot, not frost configs" \
    configs "$model" --config head
expect 2 "frost: configs writes text|json, not an image ('c.svg')" configs "$model" -o c.svg
expect 0 "" configs "$model" --format json -o c.json
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["default"] == "head", d' "$tmp/out/c.json" ||
    { failed=$((failed + 1)); echo "FAIL configs --format json: not JSON with default head"; }

# Only f32 inputs have gradients (an i32 input used to get a meaningless slot).
expect 1 "$model: error: --grad label: the input is i32; only f32 inputs have gradients" \
    compile "$model" --grad label -o x.o

# A dimension made bad by -D names the override, and counts from 0 as dim(x, i) does.
expect 1 "$model:5:20: error: dimension 0 of input 'x' is 0 (from -D N=0); dimensions must be positive" \
    compile "$model" -D N=0 -o x.o

# An unknown --config lists each configuration once (mlp defines its own
# 'all': it used to be listed twice) and suggests the closest, as 'default' does.
expect 1 "$model: error: no configuration named 'haed' (known: all, head, input, none); did you mean 'head'?" \
    compile "$model" --config haed -o x.o

# --optimizer gets the hint the file's `optimizer adam` gets.
expect 1 "$model: error: unknown optimizer 'adam' (frost has sgd and adamw); did you mean 'adamw'?" \
    compile "$model" --optimizer adam -o x.o

# `default all` and `default none` name the configurations every model has
# (they used to be rejected: "no config named 'all'").
for d in all none; do
    printf 'model m\ninput x : f32[2, 3]\ninput t : f32[2, 4]\nfc = linear(x, 4)\nloss = mse_loss(fc, t)\noutput loss\nconfig head { train none }\ndefault %s\n' \
        "$d" > "$tmp/default_$d.frost"
    expect 0 "" plan "$tmp/default_$d.frost"
    want="model m, config $d: $([ $d = all ] && echo 16 || echo 0) of 16 parameters trainable"
    got=$(head -n 1 "$tmp/stdout")
    [ "$got" = "$want" ] || { failed=$((failed + 1)); echo "FAIL default $d: plan says '$got', expected '$want'"; }
    expect 0 "" configs "$tmp/default_$d.frost"
    got=$(grep '^\* ' "$tmp/stdout" | awk '{print $2, $3, $4}')
    [ "$got" = "$d built in" ] || { failed=$((failed + 1)); echo "FAIL default $d: configs marks '$got'"; }
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
