#!/usr/bin/env bash
# Hostile inputs: model files too big for tests/golden/, generated here with
# awk, that once crashed frost (stack overflow on deep nesting) or took
# minutes (exponential def expansion, quadratic name lookups, lexing and
# diagnostics). Each case runs `frost compile` (or `frost plan` for big valid
# models) on one generated file and checks the exit status, the exact first
# line of stderr (none for a valid model), that no output file is left behind,
# and that it finished within its time limit.
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
# empty unless STATUS is 0); FIRST_LINE "" means stderr must be empty.
expect() {
    local name=$1 want_status=$2 want_first=$3 limit=$4 cmd=$5 max_bytes=${6:-}
    local problems=() args=()
    rm -rf out && mkdir out
    [ "$cmd" = compile ] && args=(-o out/x.o -O0)
    local start=$SECONDS
    timeout "$((limit * scale))" "$frost" "$cmd" "$name.frost" "${args[@]}" > stdout 2> stderr
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

# ---------------------------------------------------------------- quadratic time

# Every new name was checked against all earlier ones with strcmp: 10,000
# layers took half a minute to plan.
stack 15000 > plan_15000_layers.frost
expect plan_15000_layers 0 "" 10 plan

# The lexer counted each token's column from the start of its line: a 1 MB
# line took minutes.
{
    stack 1
    awk 'BEGIN { printf "config c { train"; for (k = 0; k < 170000; k++) printf " fc1.*"; print " }" }'
} > lex_1mb_line.frost
expect lex_1mb_line 0 "" 10 plan

# ---------------------------------------------------------------- floods of errors

# There was no error limit: 20,000 errors on one 60 kB line wrote 1.6 GB.
# Now 20 errors, then "too many errors", each with the line and a caret.
{
    echo "model m"
    awk 'BEGIN { printf "x = "; for (k = 0; k < 60000; k++) printf "@"; print "" }'
} > lex_error_flood.frost
expect lex_error_flood 1 "lex_error_flood.frost:2:5: error: unexpected character '@'" 10 compile $((21 * 130000))
{
    stack 1
    awk 'BEGIN { printf "output nope0"; for (k = 1; k < 20000; k++) printf ", nope%d", k; print "" }'
} > elab_error_flood.frost
expect elab_error_flood 1 "elab_error_flood.frost:8:8: error: undefined name 'nope0'" 10 compile $((21 * 400000))

[ "$failed" -eq 0 ] || echo "(frost: $frost)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
