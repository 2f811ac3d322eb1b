#!/usr/bin/env bash
# train_step.sh: one training step (forward + backward) and one inference call
# of frost-compiled models next to the same models in PyTorch (Debian's
# python3-torch), side by side in one run, same batch and thread count.
#
#   bench/train_step.sh [MODEL...]     (default: lenet resnet18_cifar)
#
# Environment: BATCH (default 32), THREADS (default: nproc), SECONDS_PER
# (measuring time per model and system, default 3), BUILD_DIR, CC.
# Prints a markdown table; ratio = frost time / PyTorch time (< 1: frost faster).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
BATCH=${BATCH:-32}
THREADS=${THREADS:-$(nproc)}
SECONDS_PER=${SECONDS_PER:-3}
read -r -a cc <<<"${CC:-cc}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(lenet resnet18_cifar)
out=$BUILD_DIR/bench
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

have_torch=1
/usr/bin/python3 -c 'import torch' 2>/dev/null || have_torch=0

echo "one training step (forward + backward) and one inference call, batch $BATCH, $THREADS threads;"
echo "median of repeated runs; frost: ${cc[*]} driver + generated object, PyTorch $(
    [ $have_torch = 1 ] && /usr/bin/python3 -c 'import torch; print(torch.__version__)' || echo 'not installed')"
echo
echo "| model | frost train ms | PyTorch train ms | ratio | frost infer ms | PyTorch infer ms | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for m in "${models[@]}"; do
    "$BUILD_DIR/frost" compile "examples/$m.frost" -D N="$BATCH" --config all --name bm \
        -o "$out/$m.o" --header "$out/$m.h"
    "${cc[@]}" -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -include "$out/$m.h" -DFROST_PREFIX=bm -DFROST_PREFIX_UPPER=BM \
        bench/step_time.c "$out/$m.o" -lopenblas -lm -o "$out/step_$m"
    read -r ft fi _ < <("$out/step_$m" "$SECONDS_PER")
    if [ $have_torch = 1 ]; then
        read -r tt ti _ < <(/usr/bin/python3 bench/train_step.py "$m" "$BATCH" "$THREADS" "$SECONDS_PER")
        rt=$(awk -v a="$ft" -v b="$tt" 'BEGIN { printf "%.2f", a / b }')
        ri=$(awk -v a="$fi" -v b="$ti" 'BEGIN { printf "%.2f", a / b }')
    else
        tt=- ti=- rt=- ri=-
    fi
    echo "| $m | $ft | $tt | $rt | $fi | $ti | $ri |"
done
