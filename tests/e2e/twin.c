/* twin.c: a model compiled twice, plainly (prefix ref) and with other
 * options (prefix var: --infer-only, --checked), must compute the same bits:
 *   - P_infer: the same loss and, when the arenas have one layout (an
 *     unchecked variant), the same inference arena byte for byte: every
 *     activation, not only the outputs;
 *   - unless the variant is --infer-only: the same forward loss, the same
 *     gradients (the grads block up to the reference's size) and, after
 *     P_train_step with the same optimizer state, the same parameters.
 * Built by tests/e2e/run_twin.sh with -include ref.h -include var.h (and
 * -DVAR_INFER_ONLY, -DVAR_CHECKED from the variant's header). Ends with
 * "N passed, M failed".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

_Static_assert(REF_NUM_INPUTS == VAR_NUM_INPUTS && REF_NUM_PARAMS == VAR_NUM_PARAMS, "one model");
#define NINPUTS_ALLOC (REF_NUM_INPUTS > 0 ? REF_NUM_INPUTS : 1)
#define NOUTPUTS (sizeof(ref_outputs) / sizeof(float *))
_Static_assert(sizeof(ref_inputs) == sizeof(var_inputs) && sizeof(ref_outputs) == sizeof(var_outputs), "one model");

static unsigned char *block(int64_t bytes, int fill) {
    size_t n = ((bytes > 0 ? (size_t)bytes : 1) + REF_ALIGN - 1) / REF_ALIGN * REF_ALIGN;
    unsigned char *p = aligned_alloc(REF_ALIGN, n);
    if (!p) {
        printf("FAIL: out of memory\n%d passed, %d failed\n", npassed, nfailed + 1);
        exit(1);
    }
    memset(p, fill, n);
    return p;
}

int main(void) {
    check(REF_PARAMS_BYTES <= VAR_PARAMS_BYTES, "params: var %lld bytes, ref %lld", (long long)VAR_PARAMS_BYTES,
          (long long)REF_PARAMS_BYTES);
    unsigned char *pr = block(REF_PARAMS_BYTES, 0), *pv = block(VAR_PARAMS_BYTES, 0);
    ref_init(pr, 11);
    var_init(pv, 11);
    check(memcmp(pr, pv, (size_t)REF_PARAMS_BYTES) == 0, "init differs");
    for (int k = 0; k < REF_NUM_PARAMS; k++)
        check(ref_params[k].offset == var_params[k].offset && !strcmp(ref_params[k].name, var_params[k].name),
              "param %s: offset %lld, var %lld", ref_params[k].name, (long long)ref_params[k].offset,
              (long long)var_params[k].offset);

    ref_inputs in;
    const void **field = (const void **)&in;
    void *data[NINPUTS_ALLOC];
    for (int k = 0; k < REF_NUM_INPUTS; k++) {
        int64_t n = 1;
        for (int d = 0; d < ref_input_table[k].rank; d++)
            n *= ref_input_table[k].shape[d];
        data[k] = block(4 * n, 0);
        for (int64_t i = 0; i < n; i++) {
            if (ref_input_table[k].dtype == 0)
                ((float *)data[k])[i] = (float)((i * 29) % 23) / 11.5f - 1.0f;
            else
                ((int32_t *)data[k])[i] = (int32_t)((i * 7 + 3) % 2);
        }
        field[k] = data[k];
    }
    var_inputs vin;
    memcpy(&vin, &in, sizeof in);
    float lr = -1, lv = -2;
    ref_outputs outr;
    var_outputs outv;
    memset(&outr, 0, sizeof outr);
    memset(&outv, 0, sizeof outv);
    *(float **)&outr = &lr;
    *(float **)&outv = &lv;

    /* Arenas of garbage: whatever is not written before it is read shows. */
    unsigned char *ar = block(REF_INFER_ARENA_BYTES, 0x5c), *av = block(VAR_INFER_ARENA_BYTES, 0x5c);
    int rr = ref_infer(pr, &in, &outr, ar), rv = var_infer(pv, &vin, &outv, av);
    check(rr == 0 && rv == 0, "infer returned %d (ref), %d (var)", rr, rv);
    check(memcmp(&lr, &lv, sizeof lr) == 0, "infer loss %.9g (var) differs from %.9g (ref)", (double)lv, (double)lr);
#ifndef VAR_CHECKED
    check(REF_INFER_ARENA_BYTES == VAR_INFER_ARENA_BYTES, "inference arenas: %lld and %lld bytes",
          (long long)REF_INFER_ARENA_BYTES, (long long)VAR_INFER_ARENA_BYTES);
    check(memcmp(ar, av, (size_t)REF_INFER_ARENA_BYTES) == 0, "the inference arenas differ after infer");
#endif
    printf("infer loss %.9g (both)\n", (double)lr);

#ifndef VAR_INFER_ONLY
    unsigned char *gr = block(REF_GRADS_BYTES, 0x77), *gv = block(VAR_GRADS_BYTES, 0x77);
    unsigned char *tr = block(REF_TRAIN_ARENA_BYTES, 0x3c), *tv = block(VAR_TRAIN_ARENA_BYTES, 0x3c);
    unsigned char *sr = block(REF_OPT_STATE_BYTES, 0), *sv = block(VAR_OPT_STATE_BYTES, 0);
    rr = ref_forward(pr, &in, &outr, tr);
    rv = var_forward(pv, &vin, &outv, tv);
    check(rr == 0 && rv == 0, "forward returned %d (ref), %d (var)", rr, rv);
    check(memcmp(&lr, &lv, sizeof lr) == 0, "forward loss %.9g (var) differs from %.9g (ref)", (double)lv, (double)lr);
    rr = ref_backward(pr, gr, tr);
    rv = var_backward(pv, gv, tv);
    check(rr == 0 && rv == 0, "backward returned %d (ref), %d (var)", rr, rv);
    check(memcmp(gr, gv, (size_t)REF_GRADS_BYTES) == 0, "the gradients differ");
    ref_opt_init(sr);
    var_opt_init(sv);
    ref_init(pr, 11);
    var_init(pv, 11);
    for (int step = 0; step < 2; step++) {
        float a = ref_train_step(pr, gr, sr, &in, &outr, tr, NULL);
        float b = var_train_step(pv, gv, sv, &vin, &outv, tv, NULL);
        check(memcmp(&a, &b, sizeof a) == 0, "train_step %d: loss %.9g (var), %.9g (ref)", step, (double)b, (double)a);
    }
    check(memcmp(pr, pv, (size_t)REF_PARAMS_BYTES) == 0, "the parameters differ after two train steps");
    check(memcmp(sr, sv, (size_t)REF_OPT_STATE_BYTES) == 0, "the optimizer states differ after two train steps");
    printf("forward loss %.9g, %lld gradient bytes, parameters after two steps: identical\n", (double)lr,
           (long long)REF_GRADS_BYTES);
    free(gr), free(gv), free(tr), free(tv), free(sr), free(sv);
#endif
    for (int k = 0; k < REF_NUM_INPUTS; k++)
        free(data[k]);
    free(pr), free(pv), free(ar), free(av);
    printf("%d passed, %d failed\n", npassed, nfailed);
    return nfailed ? 1 : 0;
}
