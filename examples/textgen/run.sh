#!/usr/bin/env bash
# examples/textgen/run.sh: compile examples/textgen/gpt_small.frost twice per
# configuration, a training object (batch BATCH) and an inference-only one of
# batch 1 that sampling runs, each with its own prefix; write
# textgen_models.h, which lists them for the driver; link them with
# textgen.c and frost's support library, and run the demo.
#
#   examples/textgen/run.sh [textgen options...]     (see textgen --help)
#
# Environment: BUILD_DIR (default build), OUT (default $BUILD_DIR/textgen:
# objects, the program, the checkpoint), CC (default cc), CFLAGS (more flags
# for the driver, e.g. sanitizers), BATCH (default 16), FROST_FLAGS (more
# options for every frost compile, e.g. -O1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-$BUILD_DIR/textgen}
BATCH=${BATCH:-16}
read -r -a cc <<<"${CC:-cc}"
read -r -a cflags <<<"${CFLAGS:-}"
read -r -a frost_flags <<<"${FROST_FLAGS:-}"
frost=$BUILD_DIR/frost
model=examples/textgen/gpt_small.frost
mkdir -p "$OUT"

# The fine-tuning runs, in order: the configuration of gpt_small.frost and
# what it trains, in the table's words. Pre-training uses "all". A new
# configuration (e.g. a LoRA one) is one more line here.
configs=(
    "all|every parameter"
    "last_block|block 3 + ln_f"
    "norm|layer norms"
    "bitfit|biases"
    "head|ln_f (the head is the tied wte)"
    "lora_attn|LoRA r 8 on attn.c_attn"
    "lora_all|LoRA r 8 on every block linear"
)

header=$OUT/textgen_models.h.tmp
objects=()
{
    echo "/* textgen_models.h: written by examples/textgen/run.sh; the objects textgen.c links. */"
    for entry in "${configs[@]}"; do
        echo "#include \"tg_${entry%%|*}.h\""
        echo "#include \"tg_${entry%%|*}_sample.h\""
    done
    echo "#define TEXTGEN_MODELS(X) \\"
    for entry in "${configs[@]}"; do
        name=${entry%%|*} what=${entry#*|}
        upper=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
        echo "    X(tg_$name, TG_$upper, tg_${name}_sample, TG_${upper}_SAMPLE, \"$name\", \"$what\") \\"
    done
    echo "    /* end */"
} >"$header"
mv "$header" "$OUT/textgen_models.h"

for entry in "${configs[@]}"; do
    name=${entry%%|*}
    "$frost" compile "$model" -D N="$BATCH" --config "$name" --optimizer adamw --name "tg_$name" \
        -o "$OUT/tg_$name.o" "${frost_flags[@]}"
    "$frost" compile "$model" -D N=1 --config "$name" --infer-only --name "tg_${name}_sample" \
        -o "$OUT/tg_${name}_sample.o" "${frost_flags[@]}"
    objects+=("$OUT/tg_$name.o" "$OUT/tg_${name}_sample.o")
done

"${cc[@]}" "${cflags[@]}" -std=c11 -O2 -Wall -Wextra -I "$OUT" -I support examples/textgen/textgen.c "${objects[@]}" \
    "$BUILD_DIR/support/libfrost_support.a" -lz -lopenblas -lm -o "$OUT/textgen"
exec "$OUT/textgen" --out "$OUT" "$@"
