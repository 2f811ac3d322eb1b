#!/usr/bin/env bash
# gpt2_hf.sh: examples/gpt2.frost on Hugging Face-layout checkpoints, loaded by
# name, against the loss PyTorch computes for the same weights and inputs
# (tests/fixtures/gpt2_tiny*, written by tests/fixtures/make_gpt2_safetensors.py;
# no torch needed here). The model is compiled with the fixture's sizes
# (-D ...), linked with bench/gpt2_hf.c and run on
#   - gpt2_tiny_lmhead.safetensors: GPT2LMHeadModel's names, lm_head.weight
#     (tied) skipped;
#   - gpt2_tiny.safetensors: GPT2Model's names (no "transformer."), loaded with
#     the prefix "transformer.", the attention's mask buffers skipped;
# each time the loss must be PyTorch's within 1e-5 relative, and every
# parameter's gradient (configuration all) PyTorch's within 1e-4 relative
# (max|g - g_torch| / max|g_torch| per tensor). And the wrong
# way round must fail naming the missing tensors: the GPT2Model file without
# the prefix, the GPT2LMHeadModel file with it.
#
#   tests/examples/gpt2_hf.sh FROST SOURCE_ROOT LIBFROST_SUPPORT WORKDIR
#
# Environment: CC, FROST_TEST_CFLAGS as for run.sh.
set -uo pipefail

[ $# -eq 4 ] || { echo "usage: gpt2_hf.sh FROST SOURCE_ROOT LIBFROST_SUPPORT WORKDIR" >&2; exit 2; }
frost=$1 root=$2 lib=$3 dir=$4/gpt2-hf
fix=$root/tests/fixtures
mkdir -p "$dir"
read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${FROST_TEST_CFLAGS:-}"
read -r -a defines <<<"$(sed -n 's/^defines //p' "$fix/gpt2_tiny_expected.txt")"
loss=$(sed -n 's/^loss //p' "$fix/gpt2_tiny_expected.txt")
[ ${#defines[@]} -gt 0 ] && [ -n "$loss" ] || { echo "FAIL: no defines or loss in gpt2_tiny_expected.txt"; exit 1; }

set -e
"$frost" compile "$root/examples/gpt2.frost" "${defines[@]}" -O1 -o "$dir/gpt2.o" --header "$dir/gpt2.h"
"${cc[@]}" "${extra[@]}" -std=c11 -O1 -Wall -Wextra -Werror -include "$dir/gpt2.h" -I"$root/support" \
    "$root/bench/gpt2_hf.c" "$dir/gpt2.o" "$lib" -lz -lopenblas -lm -o "$dir/gpt2_hf"
set +e

failed=0
run() { # NAME EXPECT(ok|fail) GREP ARGS...: run the driver, check its status and output
    local name=$1 want=$2 text=$3
    shift 3
    "$dir/gpt2_hf" "$@" --expect-loss "$loss" --rtol 1e-5 > "$dir/$name.out" 2>&1
    local rc=$?
    if { [ "$want" = ok ] && [ $rc -ne 0 ]; } || { [ "$want" = fail ] && [ $rc -ne 1 ]; } ||
        ! grep -qF -- "$text" "$dir/$name.out"; then
        echo "FAIL $name (exit $rc, want $want, output should contain: $text)"
        sed 's/^/    /' "$dir/$name.out"
        failed=$((failed + 1))
    else
        echo "ok   $name: $(tail -n 1 "$dir/$name.out")"
    fi
}
inputs=$fix/gpt2_tiny_inputs.safetensors
grads=(--expect-grads "$fix/gpt2_tiny_grads.safetensors" --grad-rtol 1e-4)
run lmhead ok "148 gradients against" "$fix/gpt2_tiny_lmhead.safetensors" "$inputs" --skip lm_head.weight "${grads[@]}"
run model ok "(names without the prefix 'transformer.')" "$fix/gpt2_tiny.safetensors" "$inputs" \
    --prefix transformer. --skip '*.attn.bias' --skip '*.attn.masked_bias' "${grads[@]}"
run model-no-prefix fail "148 tensors missing from the file: 'transformer.wte.weight'" \
    "$fix/gpt2_tiny.safetensors" "$inputs" --skip '*.attn.bias' --skip '*.attn.masked_bias'
run lmhead-with-prefix fail \
    "148 tensors missing from the file (looked up without the prefix 'transformer.'): 'wte.weight'" \
    "$fix/gpt2_tiny_lmhead.safetensors" "$inputs" --prefix transformer. --skip lm_head.weight
run model-buffers fail "24 tensors in the file not in the model: 'h.0.attn.bias', 'h.0.attn.masked_bias'" \
    "$fix/gpt2_tiny.safetensors" "$inputs" --prefix transformer.
[ $failed -eq 0 ]
