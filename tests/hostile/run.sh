#!/usr/bin/env bash
# Hostile inputs: model files too big for tests/golden/, generated here with
# awk, that once crashed frost (stack overflow on deep nesting) or took
# minutes (exponential def expansion, quadratic name lookups, lexing and
# diagnostics). Each case runs `frost compile` (or `frost plan` for big valid
# models) on one generated file and checks the exit status, the exact first
# line of stderr (none for a valid model), that no output file is left behind,
# and that it finished within its time limit. The limits catch hangs, not
# slowness: each is ten times or more what the case takes on a loaded
# machine, while the bugs they guard against ran for minutes.
#
#   tests/hostile/run.sh path/to/frost [TIME_SCALE]
#
# TIME_SCALE multiplies every time limit (sanitizer builds are slower).
# Messages name the file as NAME.frost: frost runs in the temporary directory.
# Last line: "N passed, M failed" (exit 1 on any failure).
set -u
frost=${1:?usage: run.sh FROST_BINARY [TIME_SCALE]}
scale=${2:-1}
case "$frost" in /*) ;; *) frost=$PWD/$frost ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

passed=0 failed=0

# expect NAME STATUS FIRST_LINE SECONDS SUBCOMMAND [MAX_STDERR_BYTES]: run
# frost SUBCOMMAND on NAME.frost (compile writes into out/, which must stay
# empty unless STATUS is 0); FIRST_LINE "" means stderr must be empty. With
# STACK_KB set, frost runs with that stack size limit.
expect() {
    local name=$1 want_status=$2 want_first=$3 limit=$4 cmd=$5 max_bytes=${6:-}
    local problems=() args=()
    rm -rf out && mkdir out
    [ "$cmd" = compile ] && args=(-o out/x.o -O0)
    local start=$SECONDS
    (
        [ -z "${STACK_KB:-}" ] || ulimit -s "$STACK_KB"
        exec timeout "$((limit * scale))" "$frost" "$cmd" "$name.frost" "${args[@]}"
    ) > stdout 2> stderr
    local status=$? took=$((SECONDS - start))
    if [ "$status" -eq 124 ]; then
        problems+=("killed after the limit of $((limit * scale)) s")
    elif [ "$status" -ne "$want_status" ]; then
        problems+=("exit status $status, expected $want_status")
    fi
    local first
    first=$(head -n 1 stderr)
    [ "$first" = "$want_first" ] || problems+=("first line of stderr: '${first:0:300}', expected '$want_first'")
    local bytes
    bytes=$(wc -c < stderr)
    [ -z "$max_bytes" ] || [ "$bytes" -le "$max_bytes" ] ||
        problems+=("$bytes bytes on stderr, expected at most $max_bytes")
    if [ "$want_status" -ne 0 ]; then
        local leftovers
        leftovers=$(ls -A out)
        [ -z "$leftovers" ] || problems+=("left files behind: $leftovers")
    fi
    if [ ${#problems[@]} -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $name (${took} s)"
    else
        failed=$((failed + 1))
        echo "FAIL $name: $(IFS=';'; echo "${problems[*]}")"
    fi
    rm -f "$name.frost"
}

# A stack of L linear+ReLU blocks on x : f32[8, 64], then an MSE loss.
stack() {
    awk -v L="$1" 'BEGIN {
        print "model stack"; print "input x : f32[8, 64]"; print "input t : f32[8, 64]"
        prev = "x"
        for (k = 1; k <= L; k++) { printf "fc%d = linear(%s, 64)\nh%d = relu(fc%d)\n", k, prev, k, k; prev = "h" k }
        printf "loss = mse_loss(%s, t)\noutput loss\n", prev
    }'
}

# rep N TEXT: TEXT N times, no newline
rep() { awk -v n="$1" -v s="$2" 'BEGIN { for (k = 0; k < n; k++) printf "%s", s }'; }

# ---------------------------------------------------------------- deep nesting

# Each of these overflowed the stack (SIGSEGV) in the parser or in elab.c's
# recursive evaluation. An expression nests at most 1000 deep; the error
# points at the token one past the limit.
deep="expression nested more than 1000 deep (each parenthesis, bracket, unary operator and operator of a chain is one level)"
{ echo "model m"; echo "const N = $(rep 60000 "(")1$(rep 60000 ")")"; } > deep_parens.frost
expect deep_parens 1 "deep_parens.frost:2:1011: error: $deep" 30 compile
{ echo "model m"; echo "const N = $(rep 100000 "[")1$(rep 100000 "]")"; } > deep_brackets.frost
expect deep_brackets 1 "deep_brackets.frost:2:1011: error: $deep" 30 compile
{ echo "model m"; echo "const N = $(rep 100000 "-")1"; } > deep_minus.frost
expect deep_minus 1 "deep_minus.frost:2:1011: error: $deep" 30 compile
{ echo "model m"; echo "if $(rep 100000 "not ")true {"; echo "}"; } > deep_not.frost
expect deep_not 1 "deep_not.frost:2:4004: error: $deep" 30 compile
# a + b + ... is a left-deep tree: depth 1 per operator
{ echo "model m"; echo "const N = 1$(rep 200000 "+1")"; } > long_sum.frost
expect long_sum 1 "long_sum.frost:2:2012: error: $deep" 30 compile
# at the limit everything still works (and fits the stack under ASan)
{
    echo "model m"
    echo "const A = $(rep 1000 "(")8$(rep 1000 ")")"
    echo "const B = 1$(rep 998 "+1") - 998"
    echo "const C = $(rep 1000 "-")8"
    echo "input x : f32[A, B * C]"
    echo "input t : f32[A, 8]"
    echo "if $(rep 1000 "not ")true {"
    echo "    h = x"
    echo "} else {"
    echo "    h = relu(x)"
    echo "}"
    echo "fc = linear(h, 8)"
    echo "loss = mse_loss(fc, t)"
    echo "output loss"
} > nesting_at_limits.frost
expect nesting_at_limits 0 "" 30 plan

# Blocks ('if' and def bodies) nest at most 256 deep.
{
    echo "model m"; echo "input x : f32[2, 4]"
    rep 50000 $'if true {\n'; echo "h = relu(x)"; rep 50000 $'}\n'
} > deep_ifs.frost
expect deep_ifs 1 "deep_ifs.frost:259:9: error: blocks nested more than 256 deep" 30 compile
# An else-if chain is one statement, however long (it recursed once per
# 'else if' in the parser and in elab.c).
{
    stack 1
    echo "if false {"; echo "    g = relu(x)"
    rep 50000 $'} else if false {\n    g = relu(x)\n'
    echo "} else if true {"; echo "    g = relu(fc1)"; echo "} else {"; echo "    g = x"; echo "}"
    echo "output g"
} > long_else_if.frost
expect long_else_if 0 "" 30 plan
# The deepest stack a valid model can ask for: 64 nested def calls, each
# inside 255 nested ifs of its def (the def body is the 256th block), and an
# expression 1000 deep at the bottom. It must fit in a quarter of the usual
# 8 MB, sanitizers included: elab.c walks the ifs with a stack of its own.
{
    echo "model m"; echo "input x : f32[2, 4]"; echo "input t : f32[2, 8]"
    for k in $(seq 1 64); do
        echo "def f$k(x) {"
        rep 255 $'if true {\n'
        if [ "$k" -eq 1 ]; then
            echo "y = linear(x, $(rep 1000 "(")8$(rep 1000 ")"))"
        else
            echo "y = f$((k - 1))(x)"
        fi
        rep 255 $'}\n'
        echo "return y"; echo "}"
    done
    echo "h = f64(x)"; echo "loss = mse_loss(h, t)"; echo "output loss"
} > deepest_valid_stack.frost
STACK_KB=2048 expect deepest_valid_stack 0 "" 10 plan

# 100,000 defs, each calling the previous one: the search for recursive defs
# recursed once per def. Now the call depth limit speaks, at the 65th call
# (in f99936: the top level calls f99999).
{
    echo "model m"; echo "input x : f32[2, 4]"
    echo "def f0(x) {"; echo "return relu(x)"; echo "}"
    awk 'BEGIN { for (k = 1; k < 100000; k++) printf "def f%d(x) {\nreturn f%d(x)\n}\n", k, k - 1 }'
    echo "h = f99999(x)"
} > def_chain.frost
expect def_chain 1 "def_chain.frost:299812:8: error: calls of defs are nested more than 64 deep" 30 compile
# A cycle through 20,000 defs: found without recursion, and named by its ends
# (the message once listed every def, built by 20,000 concatenations).
{
    echo "model m"; echo "input x : f32[2, 4]"
    awk 'BEGIN { for (k = 0; k < 20000; k++) printf "def f%d(x) {\nreturn f%d(x)\n}\n", k, (k + 1) % 20000 }'
    echo "h = f0(x)"
} > def_cycle.frost
expect def_cycle 1 "def_cycle.frost:60001:8: error: recursive call of 'f0' (f0 -> f1 -> f2 -> ... 19994 more -> f19997 -> f19998 -> f19999 -> f0); a def cannot call itself, directly or through other defs" 30 compile

# ---------------------------------------------------------------- exponential expansion

# defs NAME DEPTH LEAF: f0 returns LEAF, each f(k) calls f(k-1) twice; the
# top level calls f(DEPTH): 2^DEPTH calls of f0 from a 1.6 kB file.
defs() {
    awk -v D="$1" -v leaf="$2" 'BEGIN {
        print "model m"; print "input x : f32[2, 4]"; print "input t : f32[2, 4]"
        printf "def f0(x) {\n    return %s\n}\n", leaf
        for (k = 1; k <= D; k++) printf "def f%d(x) {\n    a = f%d(x)\n    b = f%d(a)\n    return b\n}\n", k, k - 1, k - 1
        printf "h = f%d(x)\ng = relu(h)\nloss = mse_loss(g, t)\noutput loss\n", D
    }'
}
# 16 deep took 22 s and 700 MB, 30 deep would take days: a model has at
# most 100,000 nodes, and the error names the calls that led to it.
defs 30 "relu(x)" > exp_nodes.frost
expect exp_nodes 1 "exp_nodes.frost:5:12: error: the model is too large: more than 100000 nodes (ops applied, calls of defs included)" 30 compile
# Calls that make no node at all are bounded too: each call costs its def's
# length in tokens, 4,000,000 in all.
defs 40 "x" > exp_calls.frost
expect exp_calls 1 "exp_calls.frost:8:9: error: the model is too large: its calls of defs expand to more than 4000000 tokens of def bodies" 30 compile
# The node limit holds for a flat file too (the 100,001st node is fc50001)...
stack 50001 > too_many_nodes.frost
expect too_many_nodes 1 "too_many_nodes.frost:100004:11: error: the model is too large: more than 100000 nodes (ops applied, calls of defs included)" 30 compile
# ... and a genuine 10,000-layer model, written with a def, is fine.
{
    echo "model deep"; echo "input x : f32[8, 64]"; echo "input t : f32[8, 64]"
    echo "def block(x, width) {"; echo "    fc = linear(x, width)"; echo "    return relu(fc)"; echo "}"
    awk 'BEGIN { prev = "x"; for (k = 1; k <= 10000; k++) { printf "b%d = block(%s, 64)\n", k, prev; prev = "b" k }
                 printf "loss = mse_loss(%s, t)\noutput loss\n", prev }'
} > layers_10000_def.frost
expect layers_10000_def 0 "" 30 plan

# Names have at most 1024 characters, def call prefixes included: each
# statement of a def called under a 1 MB name used to make a 1 MB name.
{ echo "model m"; echo "input x : f32[2, 4]"; echo "$(rep 2000 a) = relu(x)"; } > long_name.frost
expect long_name 1 "long_name.frost:3:1: error: name is 2000 characters long; a name has at most 1024" 30 compile
{
    echo "model m"; echo "input x : f32[2, 4]"
    echo "def f(x) {"; echo "    first_layer = relu(x)"; echo "    return first_layer"; echo "}"
    echo "$(rep 1020 a) = f(x)"
} > long_prefix.frost
expect long_prefix 1 "long_prefix.frost:4:5: error: the name 'aaaaaaaaaaaaaaaaaaaa...aaaaaaaa.first_layer' is 1032 characters long; a name has at most 1024, the prefixes of def calls included" 30 compile

# ---------------------------------------------------------------- quadratic time

# Every new name was checked against all earlier ones with strcmp: 10,000
# layers took half a minute to plan.
stack 15000 > plan_15000_layers.frost
expect plan_15000_layers 0 "" 30 plan

# The lexer counted each token's column from the start of its line: a 1 MB
# line took minutes.
{
    stack 1
    awk 'BEGIN { printf "config c { train"; for (k = 0; k < 170000; k++) printf " fc1.*"; print " }" }'
} > lex_1mb_line.frost
expect lex_1mb_line 0 "" 30 plan

# frost compare read, parsed and elaborated the file once per configuration
# (and checked for duplicates by a scan each time): 2,000 configurations
# took 22 s. The file is elaborated once now.
{
    stack 2
    awk 'BEGIN { for (k = 0; k < 2000; k++) printf "config c%d { train fc%d.* }\n", k, k % 2 + 1 }'
} > compare_2000_configs.frost
expect compare_2000_configs 0 "" 15 compare

# ---------------------------------------------------------------- floods of errors

# There was no error limit: 20,000 errors on one 60 kB line wrote 1.6 GB.
# Now 20 errors, then "too many errors", each with the line and a caret.
{
    echo "model m"
    awk 'BEGIN { printf "x = "; for (k = 0; k < 60000; k++) printf "@"; print "" }'
} > lex_error_flood.frost
expect lex_error_flood 1 "lex_error_flood.frost:2:5: error: unexpected character '@'" 30 compile $((21 * 130000))
{
    stack 1
    awk 'BEGIN { printf "output nope0"; for (k = 1; k < 20000; k++) printf ", nope%d", k; print "" }'
} > elab_error_flood.frost
expect elab_error_flood 1 "elab_error_flood.frost:8:8: error: undefined name 'nope0'" 30 compile $((21 * 400000))

# Explaining an error must not cost as much as the whole file each time.
# 'did you mean' ranked 60,000 long names with a full edit-distance table
# per name, for each of 20 undefined names.
{
    echo "model m"; echo "input x : f32[2, 4]"
    awk 'BEGIN { prev = "x"; for (k = 0; k < 60000; k++) {
                     name = sprintf("a_rather_long_and_descriptive_name_of_layer_%06d", k)
                     printf "%s = relu(%s)\n", name, prev; prev = name } }'
    awk 'BEGIN { printf "output zzz_rather_long_and_descriptive_name_of_layer_000000"
                 for (k = 1; k < 20; k++) printf ", zzz_rather_long_and_descriptive_name_of_layer_%06d", k; print "" }'
} > suggest_many_names.frost
expect suggest_many_names 1 "suggest_many_names.frost:60003:8: error: undefined name 'zzz_rather_long_and_descriptive_name_of_layer_000000'" 20 compile
# A def whose body fails, called 50,000 times among 50,000 consts: each
# call explained its (quiet) repeat again, scanning and ranking everything.
{
    echo "model m"; echo "input x : f32[2, 4]"
    awk 'BEGIN { for (k = 0; k < 50000; k++) printf "const a_rather_long_and_descriptive_constant_%06d = %d\n", k, k }'
    echo "def f(x) {"; echo "    return relu(a_rather_long_and_descriptive_constant_x)"; echo "}"
    awk 'BEGIN { for (k = 0; k < 50000; k++) printf "h%d = f(x)\n", k }'
} > repeated_def_error.frost
expect repeated_def_error 1 "repeated_def_error.frost:50004:17: error: undefined name 'a_rather_long_and_descriptive_constant_x'" 30 compile
# A call missing 19,999 of a def's 20,000 parameters: each message built the
# signature by 20,000 concatenations, for every missing parameter.
{
    echo "model m"; echo "input x : f32[2, 4]"
    awk 'BEGIN { printf "def f(p0"; for (k = 1; k < 20000; k++) printf ", p%d", k; print ") {" }'
    echo "    return relu(p0)"; echo "}"
    echo "h = f(x)"
} > many_missing_args.frost
expect many_missing_args 1 "many_missing_args.frost:6:5: error: missing argument 'p1' of f(p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, ... 19984 more)" 30 compile $((22 * 400))

[ "$failed" -eq 0 ] || echo "(frost: $frost)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
