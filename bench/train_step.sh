#!/usr/bin/env bash
# train_step.sh: one training step (forward + backward) and one inference call
# of frost-compiled models next to the same models in PyTorch (Debian's
# python3-torch), side by side in one run, same batch and thread count.
#
#   bench/train_step.sh [MODEL...]     (default: lenet resnet18_cifar)
#
# Environment: CONFIG (the freeze configuration of both, default all: every
# parameter trainable; the PyTorch twin is set up to match, see
# bench/train_step.py), BATCH (default 32), THREADS (default: nproc), SECONDS_PER
# (measuring time per model, system and round, default 2), ROUNDS (default 3),
# GEMM (frost's --gemm: frost, the default, or openblas), BUILD_DIR, CC. The
# rounds alternate frost and PyTorch, model by model, and
# each cell is the median over rounds of the per-round medians: shared
# machines drift between fast and slow phases lasting tens of seconds, and
# alternating puts both systems in the same phases.
# Prints a markdown table; ratio = frost time / PyTorch time (< 1: frost faster).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
BATCH=${BATCH:-32}
THREADS=${THREADS:-$(nproc)}
SECONDS_PER=${SECONDS_PER:-2}
ROUNDS=${ROUNDS:-3}
CONFIG=${CONFIG:-all}
read -r -a cc <<<"${CC:-cc}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(lenet resnet18_cifar)
out=$BUILD_DIR/bench
mkdir -p "$out"
GEMM=${GEMM:-frost}
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS FROST_NUM_THREADS=$THREADS

have_torch=1
/usr/bin/python3 -c 'import torch' 2>/dev/null || have_torch=0

echo "one training step (forward + backward) and one inference call, configuration $CONFIG, batch $BATCH, $THREADS threads;"
echo "median over $ROUNDS alternating rounds of the median step in each; frost: ${cc[*]} driver + generated object, PyTorch $(
    [ $have_torch = 1 ] && /usr/bin/python3 -c 'import torch; print(torch.__version__)' || echo 'not installed')"
echo
echo "| model | frost train ms | PyTorch train ms | ratio | frost infer ms | PyTorch infer ms | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for m in "${models[@]}"; do
    "$BUILD_DIR/frost" compile "examples/$m.frost" -D N="$BATCH" --config "$CONFIG" --gemm "$GEMM" --name bm \
        -o "$out/$m.o" --header "$out/$m.h"
    "${cc[@]}" -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -include "$out/$m.h" -DFROST_PREFIX=bm -DFROST_PREFIX_UPPER=BM \
        bench/step_time.c "$out/$m.o" -lopenblas -lm -o "$out/step_$m"
done
median() { # "V1 V2 ... " -> their median
    tr ' ' '\n' <<<"$1" | grep . | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
declare -A f_train f_infer t_train t_infer
for ((r = 0; r < ROUNDS; r++)); do
    for m in "${models[@]}"; do
        read -r a b _ < <("$out/step_$m" "$SECONDS_PER")
        f_train[$m]+="$a " f_infer[$m]+="$b "
        if [ $have_torch = 1 ]; then
            read -r a b _ < <(/usr/bin/python3 bench/train_step.py "$m" "$BATCH" "$THREADS" "$SECONDS_PER" "$CONFIG" "$BUILD_DIR/frost")
            t_train[$m]+="$a " t_infer[$m]+="$b "
        fi
    done
done
for m in "${models[@]}"; do
    f1=$(median "${f_train[$m]}") f2=$(median "${f_infer[$m]}")
    if [ $have_torch = 1 ]; then
        t1=$(median "${t_train[$m]}") t2=$(median "${t_infer[$m]}")
        r1=$(awk -v a="$f1" -v b="$t1" 'BEGIN { printf "%.2f", a / b }')
        r2=$(awk -v a="$f2" -v b="$t2" 'BEGIN { printf "%.2f", a / b }')
    else
        t1=- t2=- r1=- r2=-
    fi
    echo "| $m | $f1 | $t1 | $r1 | $f2 | $t2 | $r2 |"
done
