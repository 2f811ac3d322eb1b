#!/usr/bin/env bash
# run_twin.sh: compile a model twice, plainly (the reference) and with extra
# `frost compile` options (the variant: --infer-only, --checked), link both
# objects into tests/e2e/twin.c and run it: the variant's P_infer must give
# the reference's outputs bit for bit and, when it trains, its forward,
# backward and update the reference's loss, gradients and parameters bit for
# bit. For --infer-only it also checks the object and header: only init and
# infer (and last_error when checked) are defined, nothing of training is
# declared, and the inference arena is the reference's.
#
#   run_twin.sh FROST MODEL CONFIG WORKDIR VARIANT-OPTION...
#
# Environment: CC, FROST_TEST_CFLAGS as for run_gradcheck.sh.
set -euo pipefail
[ $# -ge 5 ] || { echo "usage: run_twin.sh FROST MODEL CONFIG WORKDIR VARIANT-OPTION..." >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
frost=$1 model=$2 config=$3 work=$4
shift 4
variant=("$@")
base=$(basename "$model" .frost)
dir=$work/${base}_${config}_$(printf '%s' "${variant[*]}" | tr -c 'A-Za-z0-9_.-' '_')
mkdir -p "$dir"
read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${FROST_TEST_CFLAGS:-}"
run() { printf '+ %s\n' "$*"; "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

run "$frost" compile "$model" --config "$config" --name ref -o "$dir/ref.o" --header "$dir/ref.h" || exit 1
run "$frost" compile "$model" --config "$config" "${variant[@]}" --name var -o "$dir/var.o" --header "$dir/var.h" || exit 1

flags=()
if grep -q '^#define VAR_INFER_ONLY 1' "$dir/var.h"; then
    flags+=(-DVAR_INFER_ONLY=1)
    defined=$(nm -g --defined-only "$dir/var.o" | awk '{print $3}' | sort | tr '\n' ' ')
    want="var_infer var_init var_set_threads "
    grep -q '^#define VAR_CHECKED 1' "$dir/var.h" && want="var_infer var_init var_last_error var_set_threads "
    [ "$defined" = "$want" ] || fail "an --infer-only object defines '$defined', not '$want'"
    if grep -Eq 'var_(forward|backward|update|train_step|opt_init)\b|VAR_(GRADS_BYTES|TRAIN_ARENA_BYTES|OPT_STATE_BYTES|RESIDUAL_BYTES|ERR_STATE|NUM_KEPT_RANGES)' "$dir/var.h"; then
        fail "the --infer-only header declares training"
    fi
    if ! grep -q '^#define VAR_CHECKED 1' "$dir/var.h"; then
        r=$(sed -n 's/^#define REF_INFER_ARENA_BYTES \([0-9]*\)LL.*/\1/p' "$dir/ref.h")
        v=$(sed -n 's/^#define VAR_INFER_ARENA_BYTES \([0-9]*\)LL.*/\1/p' "$dir/var.h")
        [ -n "$r" ] && [ "$r" = "$v" ] || fail "inference arena: --infer-only $v bytes, full compile $r"
    fi
    echo "ok   --infer-only object and header: $defined"
fi
grep -q '^#define VAR_CHECKED 1' "$dir/var.h" && flags+=(-DVAR_CHECKED=1)
run "${cc[@]}" "${extra[@]}" -std=c11 -O1 -Wall -Wextra "${flags[@]}" -include "$dir/ref.h" -include "$dir/var.h" \
    "$here/twin.c" "$dir/ref.o" "$dir/var.o" -lopenblas -lm -o "$dir/twin" || exit 1
run "$dir/twin"
