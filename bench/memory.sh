#!/usr/bin/env bash
# bench/memory.sh: the memory plan of every example model under every
# configuration, as a markdown table: residual bytes (kept from forward for
# backward), train arena bytes, the lower bound (the most bytes live at one
# step: no static plan of this schedule can do better), their ratio, the infer
# arena with its ratio, and the wall-clock time of `frost compile` (best of
# REPEAT runs, object and header written to a temporary directory).
#
#   bench/memory.sh [FROST] [MODEL.frost...]
#
# FROST defaults to build/frost; the models to examples/*.frost. The
# configurations of a model are the ones `frost compare` lists: all, every
# `config` of the file, none. Environment: REPEAT (default 3) compile runs per
# configuration. Ends with the worst ratio and whether the target (<= 1.02)
# is met; exit status 1 when it is not, or when frost fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
frost=${1:-build/frost}
[ $# -gt 0 ] && shift
if [ $# -gt 0 ]; then
    models=("$@")
else
    models=(examples/*.frost)
fi
repeat=${REPEAT:-3}
target=1.02
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

now() { date +%s.%N; }

echo "| model | config | trainable params | residuals (B) | train arena (B) | lower bound (B) | ratio | infer arena (B) | infer ratio | compile (s) |"
echo "|:------|:-------|-----------------:|--------------:|----------------:|----------------:|------:|----------------:|------------:|------------:|"
worst=0 worst_what="" status=0
for model in "${models[@]}"; do
    name=$(basename "$model" .frost)
    if ! configs=$("$frost" compare "$model" --format csv 2>"$tmp/err" | tail -n +2 | cut -d, -f1); then
        echo "bench/memory.sh: frost compare $model failed:" >&2
        cat "$tmp/err" >&2
        status=1
        continue
    fi
    for config in $configs; do
        "$frost" plan "$model" --config "$config" --format json >"$tmp/plan.json"
        best=""
        for ((k = 0; k < repeat; k++)); do
            t0=$(now)
            "$frost" compile "$model" --config "$config" -o "$tmp/m.o" --header "$tmp/m.h"
            t1=$(now)
            best=$(awk -v a="$t0" -v b="$t1" -v best="$best" 'BEGIN { t = b - a; if (best == "" || t < best) best = t; printf "%.3f", best }')
        done
        row=$("$python" - "$tmp/plan.json" "$name" "$config" "$best" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
t, i = p["train"], p["infer"]
ratio = t["arena_bytes"] / t["lower_bound"] if t["lower_bound"] else 1.0
iratio = i["arena_bytes"] / i["lower_bound"] if i["lower_bound"] else 1.0
print(f'| {sys.argv[2]} | {sys.argv[3]} | {p["trainable_params"]} | {t["residual_bytes"]} | {t["arena_bytes"]} '
      f'| {t["lower_bound"]} | {ratio:.4f} | {i["arena_bytes"]} | {iratio:.4f} | {sys.argv[4]} |'
      f'\t{max(ratio, iratio):.6f}')
PY
)
        printf '%s\n' "${row%%$'\t'*}"
        r=${row##*$'\t'}
        if awk -v r="$r" -v w="$worst" 'BEGIN { exit !(r > w) }'; then
            worst=$r
            worst_what="$name $config"
        fi
    done
done
echo
if awk -v w="$worst" -v t="$target" 'BEGIN { exit !(w <= t) }'; then
    printf 'worst ratio %.4f (%s): target <= %s met\n' "$worst" "$worst_what" "$target"
else
    printf 'worst ratio %.4f (%s): target <= %s MISSED\n' "$worst" "$worst_what" "$target"
    status=1
fi
exit $status
