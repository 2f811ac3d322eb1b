#!/usr/bin/env bash
# The files frost writes: `frost compile` and `frost dot -o` outputs get the
# mode the umask says (0666 minus it, like any compiler's), and no temporary
# (*.tmp-*) survives a failure, a signal included. Run from the repository
# root.
#
#   tests/cli/outputs.sh path/to/frost
#
# Last line: "N passed, M failed" (exit 1 on any failure).
set -u
frost=${1:?usage: outputs.sh FROST_BINARY}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Background jobs of a script without job control ignore SIGINT, and frost
# rightly leaves an ignored signal alone: with job control they do not.
set -m

passed=0 failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }

# Fresh empty directory for one case.
case_dir() { rm -rf "$tmp/$1" && mkdir "$tmp/$1" && echo "$tmp/$1"; }

# The names in a directory that grep ARGS select (all of them without ARGS).
leftovers() {
    local dir=$1
    shift
    (cd "$dir" && ls -A | grep "${@:-^}" | tr '\n' ' ')
}

modes() { stat -c '%a' "$@" | tr '\n' ' '; }

# mode NAME UMASK EXPECTED: compile's object and header, dot's output.
mode() {
    local d
    d=$(case_dir "$1")
    (umask "$2" && "$frost" compile examples/mlp.frost -O0 -o "$d/m.o" && "$frost" dot examples/mlp.frost -o "$d/g.dot") 2> "$d.err"
    local got
    got=$(modes "$d/m.o" "$d/m.h" "$d/g.dot" 2> /dev/null)
    if [ "$got" = "$3 $3 $3 " ]; then pass; else fail "$1" "modes '$got', expected $3 each ($(cat "$d.err"))"; fi
}
mode umask_022 022 644
mode umask_077 077 600
mode umask_002 002 664

# fails NAME ARGS...: frost exits 1 after creating its temporaries, and
# leaves nothing behind but what the case put there (a directory m.o).
fails() {
    local name=$1 d
    shift
    d="$tmp/$name"
    "$frost" "$@" 2> "$d.err" > /dev/null
    local status=$? left
    left=$(leftovers "$d" -v -x 'm\.o')
    if [ "$status" -eq 1 ] && [ -z "$left" ]; then pass; else fail "$name" "status $status, left '$left'"; fi
}
d=$(case_dir header_unwritable)
fails header_unwritable compile examples/mlp.frost -o "$d/m.o" --header "$d/missing/m.h"
d=$(case_dir object_is_a_directory) && mkdir "$d/m.o" # code and header made, then the rename fails
fails object_is_a_directory compile examples/mlp.frost -O0 -o "$d/m.o"

# signal NAME SIG: a signal while `frost compile` generates code (ResNet-18 at
# -O3 takes seconds) kills it with that signal and removes its temporaries.
signal() {
    local d pid i
    d=$(case_dir "$1")
    "$frost" compile examples/resnet18.frost -O3 -o "$d/r.o" 2> "$d.err" &
    pid=$!
    for ((i = 0; i < 1200; i++)); do # up to a minute for the temporaries to appear
        [ -n "$(leftovers "$d" '\.tmp-')" ] && break
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.05
    done
    local before
    before=$(leftovers "$d" '\.tmp-')
    kill -s "$2" "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    local status=$? left expected
    left=$(leftovers "$d")
    expected=$((128 + $(kill -l "$2")))
    if [ -z "$before" ]; then
        fail "$1" "no temporary appeared before frost ended (status $status)"
    elif [ "$status" -ne "$expected" ] || [ -n "$left" ]; then
        fail "$1" "status $status (expected $expected), left '$left'"
    else
        pass
    fi
}
signal sigterm TERM
signal sigint INT
signal sighup HUP

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
