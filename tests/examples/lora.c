/* lora.c: adapter files and merging with generated code (tests/examples/lora.sh).
 *
 * Four objects of tests/examples/lora.frost, linked into one program: base
 * (configuration none, no adapters), lo (lora_fc: fc1 and fc2 adapted, r=2),
 * rk (lora_rank: r=4) and one (lora_one: fc1 alone). It checks that
 *   - the adapters matter: lo's logits with random lora_B differ from its
 *     logits with B zero (so the comparisons below can fail);
 *   - merging lo's adapters into base's params (frost_lora_merge) gives
 *     base_infer the logits and loss of lo_infer within 1e-5;
 *   - a base checkpoint loads into a fresh lo object with the adapters
 *     reported absent, then the adapter file (PEFT's names) fills them, and
 *     lo_infer is bit for bit what it was;
 *   - the adapter file loads into rk (another rank), one (a layer fewer) and
 *     one's adapter file into lo (a layer missing) only with errors naming
 *     the tensors.
 * Prints one line per check; exit 0 when all hold. */
#include "frost_support.h"
#include "base.h"
#include "lo.h"
#include "one.h"
#include "rk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what, const char *detail) {
    printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail && *detail ? ": " : "", detail ? detail : "");
    failures += !ok;
}

static void *block(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(p, 0, bytes);
    return p;
}

static double max_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* Expect rc to be `want` with `text` in the message. */
static void expect_error(int rc, const frost_error *e, int want, const char *text, const char *what) {
    char detail[FROST_ERROR_MSG + 64];
    snprintf(detail, sizeof detail, "%s (%s)", e->msg, frost_strerror(rc));
    check(rc == want && strstr(e->msg, text) != NULL, what, detail);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    char adapter[1024], one_adapter[1024], base_ckpt[1024];
    snprintf(adapter, sizeof adapter, "%s/adapter_model.safetensors", dir);
    snprintf(one_adapter, sizeof one_adapter, "%s/one_adapter.safetensors", dir);
    snprintf(base_ckpt, sizeof base_ckpt, "%s/base.safetensors", dir);

    float x[4 * 6], head[4 * 5], merged_head[4 * 5], zero_head[4 * 5], loss, merged_loss;
    int32_t label[4] = {0, 3, 1, 4};
    for (int i = 0; i < 24; i++)
        x[i] = (float)sin(0.7 * i) * 1.5f;
    lo_inputs in = {x, label};
    base_inputs bin = {x, label};
    frost_error e;
    char detail[FROST_ERROR_MSG + 64];

    /* lo with trained-looking adapters: random lora_B. */
    void *lp = block(LO_PARAMS_BYTES), *arena = block(LO_INFER_ARENA_BYTES);
    lo_init(lp, 1);
    check(LO_NUM_ADAPTERS == 2 && !strcmp(lo_adapters[0].layer, "fc1") && !lo_adapters[0].in_out &&
              !strcmp(lo_adapters[1].layer, "fc2") && lo_adapters[1].in_out && lo_adapters[0].r == 2 &&
              lo_adapters[0].scale == 2.0,
          "adapter table", lo_adapters[0].layer);
    srand(5);
    for (int k = 0; k < LO_NUM_ADAPTERS; k++) {
        const frost_param_info *b = &lo_params[lo_adapters[k].lora_B];
        float *v = (float *)((char *)lp + b->offset);
        for (int64_t i = 0; i < b->shape[0] * b->shape[1]; i++)
            v[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 0.6f;
    }
    lo_outputs out = {&loss, head};
    if (lo_infer(lp, &in, &out, arena))
        return 2;

    /* The adapters matter. */
    void *zp = block(LO_PARAMS_BYTES);
    memcpy(zp, lp, LO_PARAMS_BYTES);
    for (int k = 0; k < LO_NUM_ADAPTERS; k++) {
        const frost_param_info *b = &lo_params[lo_adapters[k].lora_B];
        memset((char *)zp + b->offset, 0, (size_t)(b->shape[0] * b->shape[1]) * sizeof(float));
    }
    float zero_loss;
    lo_outputs zout = {&zero_loss, zero_head};
    if (lo_infer(zp, &in, &zout, arena))
        return 2;
    snprintf(detail, sizeof detail, "max |logit difference| %.3g with B zero", max_diff(head, zero_head, 20));
    check(max_diff(head, zero_head, 20) > 1e-2, "the adapters change the logits", detail);

    /* Merge into the base object. */
    void *bp = block(BASE_PARAMS_BYTES), *barena = block(BASE_INFER_ARENA_BYTES);
    int rc = frost_lora_merge(bp, base_params, BASE_NUM_PARAMS, lp, lo_params, LO_NUM_PARAMS, lo_adapters,
                              LO_NUM_ADAPTERS, &e);
    check(rc == 0, "frost_lora_merge", e.msg);
    base_outputs bout = {&merged_loss, merged_head};
    if (base_infer(bp, &bin, &bout, barena))
        return 2;
    double dh = max_diff(head, merged_head, 20), dl = fabs((double)loss - (double)merged_loss);
    snprintf(detail, sizeof detail, "max |logit difference| %.3g, loss %.7g vs %.7g", dh, merged_loss, loss);
    check(dh <= 1e-5 && dl <= 1e-5 * fmax(1.0, fabs(loss)), "the merged base object infers as the adapted one", detail);

    /* Base checkpoint, then the adapter file, into a fresh LoRA object. */
    frost_save_options base_only = {.skip = frost_lora_patterns};
    rc = frost_ckpt_save_ex(base_ckpt, lp, lo_params, LO_NUM_PARAMS, &base_only, &e);
    check(rc == 0, "save the base tensors", e.msg);
    rc = frost_lora_save(adapter, lp, lo_params, LO_NUM_PARAMS, &e);
    check(rc == 0, "frost_lora_save", e.msg);
    void *fresh = block(LO_PARAMS_BYTES);
    lo_init(fresh, 77);
    rc = frost_ckpt_load(base_ckpt, fresh, lo_params, LO_NUM_PARAMS, NULL, &e);
    check(rc == 0 && strstr(e.msg, "4 adapter tensors absent (a base checkpoint)"), "a base checkpoint into lo", e.msg);
    rc = frost_lora_load(adapter, fresh, lo_params, LO_NUM_PARAMS, &e);
    check(rc == 0 && strstr(e.msg, "loaded 4 tensors"), "frost_lora_load", e.msg);
    float again[20], again_loss;
    lo_outputs aout = {&again_loss, again};
    if (lo_infer(fresh, &in, &aout, arena))
        return 2;
    check(!memcmp(again, head, sizeof head) && again_loss == loss, "reloaded: the same logits, bit for bit", "");

    /* Mismatches. */
    void *rp = block(RK_PARAMS_BYTES), *op = block(ONE_PARAMS_BYTES);
    rc = frost_lora_load(adapter, rp, rk_params, RK_NUM_PARAMS, &e);
    expect_error(rc, &e, FROST_ERR_SHAPE, "'fc1.lora_A.weight' is [2, 6] in the file, the model wants [4, 6]",
                 "another rank");
    rc = frost_lora_load(adapter, op, one_params, ONE_NUM_PARAMS, &e);
    expect_error(rc, &e, FROST_ERR_UNEXPECTED,
                 "2 tensors in the file not in the model: 'fc2.lora_A.weight', 'fc2.lora_B.weight'",
                 "an adapter for a layer the object does not adapt");
    one_init(op, 3);
    rc = frost_lora_save(one_adapter, op, one_params, ONE_NUM_PARAMS, &e);
    check(rc == 0, "save one's adapter", e.msg);
    rc = frost_lora_load(one_adapter, fresh, lo_params, LO_NUM_PARAMS, &e);
    expect_error(rc, &e, FROST_ERR_MISSING, "2 tensors missing from the file: 'fc2.lora_A.weight', 'fc2.lora_B.weight'",
                 "a layer without its adapter in the file");
    rc = frost_lora_merge(bp, base_params, BASE_NUM_PARAMS, rp, rk_params, RK_NUM_PARAMS, lo_adapters, LO_NUM_ADAPTERS,
                          &e);
    expect_error(rc, &e, FROST_ERR_SHAPE, "'fc1.lora_A.weight' is [4, 6]; adapter 'fc1' (r = 2",
                 "merge with the wrong adapter table");

    free(lp), free(zp), free(arena), free(bp), free(barena), free(fresh), free(rp), free(op);
    printf("%s\n", failures ? "FAILED" : "all LoRA checks passed");
    return failures ? 1 : 0;
}
