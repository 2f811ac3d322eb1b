#!/usr/bin/env bash
# run_gradcheck.sh: compile a model with frost, build gradcheck.c against the
# generated header and object, and run it. Exit status is the checker's
# (1 also when compiling or linking fails, 2 on bad usage).
#
#   run_gradcheck.sh FROST MODEL CONFIG WORKDIR
#   run_gradcheck.sh FROST MODEL --train PAT [--freeze PAT] [--grad INPUT]... WORKDIR
#
# A lone word between MODEL and WORKDIR names a configuration of the model
# (`--config CONFIG`); anything else is passed to `frost compile` unchanged.
# Files go to WORKDIR/<model>_<selection>/ so that cases may share WORKDIR.
#
# Environment:
#   FROST_DRIVER       the checker to build: gradcheck (default), poison
#                      (run_poison.sh sets it), misuse or checked (tests/e2e/DRIVER.c)
#   CC                 C compiler (default: cc)
#   FROST_TEST_CFLAGS  extra flags for compiling and linking the checker, e.g.
#                      the sanitizer flags of scripts/test.sh
#   FROST_TEST_COMPILE_FLAGS  extra `frost compile` options, e.g. --mcpu x86-64-v2
#   FROST_TEST_RUNNER  a command the checker runs under, e.g. valgrind
#                      (scripts/valgrind.sh sets these two)
set -euo pipefail

usage() {
    echo "usage: run_gradcheck.sh FROST MODEL (CONFIG | FROST-OPTIONS...) WORKDIR" >&2
    exit 2
}
[ $# -ge 4 ] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
frost=$1
model=$2
shift 2
work=${*: -1}
sel=("${@:1:$#-1}")

if [ ${#sel[@]} -eq 1 ] && [[ ${sel[0]} != -* ]]; then
    tag=${sel[0]}
    sel=(--config "${sel[0]}")
else
    tag=${sel[*]}
fi
base=$(basename "$model" .frost)
# C identifiers for the prefix; the directory name only needs to be unique.
driver=${FROST_DRIVER:-gradcheck}
case $driver in
gradcheck) short=gc ;;
poison) short=pz ;;
misuse) short=mu ;;
checked) short=ck ;;
*) echo "run_gradcheck.sh: unknown FROST_DRIVER '$driver'" >&2; exit 2 ;;
esac
prefix=${short}_$(printf '%s' "$base" | tr -c 'A-Za-z0-9_' '_')
prefix_upper=$(printf '%s' "$prefix" | LC_ALL=C tr '[:lower:]' '[:upper:]')
dir=$work/${base}_$(printf '%s' "$tag" | tr -c 'A-Za-z0-9_.-' '_')
mkdir -p "$dir"

read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${FROST_TEST_CFLAGS:-}"
read -r -a frost_flags <<<"${FROST_TEST_COMPILE_FLAGS:-}"
read -r -a runner <<<"${FROST_TEST_RUNNER:-}"

run() { printf '+ %s\n' "$*"; "$@"; }

run "$frost" compile "$model" "${sel[@]}" "${frost_flags[@]}" --name "$prefix" \
    -o "$dir/$prefix.o" --header "$dir/$prefix.h" || exit 1
# A --checked object's header says so; the drivers then leave its guards alone.
checked=()
if grep -q "^#define ${prefix_upper}_CHECKED 1" "$dir/$prefix.h"; then
    checked=(-DFROST_CHECKED=1)
fi
run "${cc[@]}" "${extra[@]}" -std=c11 -O1 -Wall -Wextra "${checked[@]}" \
    -include "$dir/$prefix.h" -DFROST_PREFIX="$prefix" -DFROST_PREFIX_UPPER="$prefix_upper" \
    "$here/$driver.c" "$dir/$prefix.o" -lopenblas -lm -o "$dir/$driver" || exit 1
run "${runner[@]}" "$dir/$driver"
