/* compare.c: one model with f32 inputs only compiled three times
 * (tests/gemm/run.sh):
 *   gw  frost's GEMM, this machine's CPU (the 512-bit micro-kernel where it
 *       has AVX-512F)
 *   gn  frost's GEMM for --mcpu haswell (the 256-bit micro-kernel)
 *   go  OpenBLAS's GEMM, the reference
 * One forward and backward of each on the same inputs and parameters. Checks:
 * the loss and every gradient (inputs' and parameters') of gw and gn match
 * go's within floating-point rounding; gw with 1, 2 and 3 threads, and gw and
 * gn, agree bit for bit (each element of C is the same sequence of FMAs
 * whatever the blocking, and the other kernels split their work so that each
 * result is computed as on one thread; gw and gn not when compiled with
 * COMPARE_WIDTHS_DIFFER); and the gradients are not all zero,
 * so that the comparison can fail. Exit status 0 when all hold, 1 otherwise. */
#include "gn.h"
#include "go.h"
#include "gw.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*set_threads)(int);
    void (*init)(void *, uint64_t);
    int (*step)(void *params, void *grads, void *arena, void **in, float *loss);
} object;

#define OBJECT(p, P)                                                                      \
    static int p##_step(void *params, void *grads, void *arena, void **in, float *loss) { \
        p##_inputs ins;                                                                   \
        p##_outputs outs = {loss};                                                        \
        memcpy(&ins, in, sizeof ins);                                                     \
        int rc = p##_forward(params, &ins, &outs, arena);                                 \
        return rc ? rc : p##_backward(params, grads, arena);                              \
    }                                                                                     \
    static const object p##_object = {#p, p##_set_threads, p##_init, p##_step};
OBJECT(gw, GW)
OBJECT(gn, GN)
OBJECT(go, GO)

_Static_assert(GW_PARAMS_BYTES == GO_PARAMS_BYTES && GW_GRADS_BYTES == GO_GRADS_BYTES &&
                   GN_GRADS_BYTES == GO_GRADS_BYTES && GW_NUM_INPUTS == GO_NUM_INPUTS,
               "one model, three objects");

static void *block(size_t bytes) {
    void *p = aligned_alloc(GW_ALIGN, (bytes + GW_ALIGN - 1) / GW_ALIGN * GW_ALIGN);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* mask[j] = 1 where float j of the grads block belongs to a gradient: the
 * block also holds alignment gaps between tensors that no kernel writes. */
static int64_t numel(int32_t rank, const int64_t *shape) {
    int64_t n = 1;
    for (int32_t k = 0; k < rank; k++)
        n *= shape[k];
    return n;
}

static void mark(unsigned char *mask, int64_t grad_offset, int64_t n) {
    if (grad_offset >= 0)
        memset(mask + grad_offset / (int64_t)sizeof(float), 1, (size_t)n);
}

/* bit for bit over the gradients */
static int same(const float *a, const float *b, const unsigned char *mask, int64_t n) {
    for (int64_t j = 0; j < n; j++)
        if (mask[j] && memcmp(&a[j], &b[j], sizeof(float)))
            return 0;
    return 1;
}

/* The loss and the grads block of one forward + backward. */
static float run(const object *o, int threads, void *params, void **in, float *grads) {
    void *arena = block(GW_TRAIN_ARENA_BYTES > GN_TRAIN_ARENA_BYTES ? GW_TRAIN_ARENA_BYTES : GN_TRAIN_ARENA_BYTES);
    float loss = NAN;
    o->set_threads(threads);
    int rc = o->step(params, grads, arena, in, &loss);
    free(arena);
    if (rc) {
        fprintf(stderr, "%s: step returned %d\n", o->name, rc);
        exit(1);
    }
    return loss;
}

int main(void) {
    enum { NG = GW_GRADS_BYTES / sizeof(float) };
    void *params = block(GW_PARAMS_BYTES);
    gw_init(params, 7);
    void *in[GW_NUM_INPUTS];
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < GW_NUM_INPUTS; i++) {
        int64_t n = 1;
        for (int k = 0; k < gw_input_table[i].rank; k++)
            n *= gw_input_table[i].shape[k];
        float *x = block((size_t)n * sizeof(float));
        for (int64_t j = 0; j < n; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            x[j] = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
        }
        in[i] = x;
    }
    float *ref = block(GW_GRADS_BYTES), *wide1 = block(GW_GRADS_BYTES), *wide2 = block(GW_GRADS_BYTES),
          *wide3 = block(GW_GRADS_BYTES), *narrow = block(GW_GRADS_BYTES);
    static unsigned char mask[NG];
    int64_t count = 0;
    for (int i = 0; i < GW_NUM_PARAMS; i++)
        if (gw_params[i].dtype == FROST_DTYPE_F32)
            mark(mask, gw_params[i].grad_offset, numel(gw_params[i].rank, gw_params[i].shape));
    for (int i = 0; i < GW_NUM_INPUTS; i++)
        mark(mask, gw_input_table[i].grad_offset, numel(gw_input_table[i].rank, gw_input_table[i].shape));
    for (int64_t j = 0; j < NG; j++)
        count += mask[j];
    float l_ref = run(&go_object, 1, params, in, ref);
    float l_w1 = run(&gw_object, 1, params, in, wide1);
    float l_w2 = run(&gw_object, 2, params, in, wide2);
    float l_w3 = run(&gw_object, 3, params, in, wide3);
    float l_n = run(&gn_object, 2, params, in, narrow);
    int bad = 0;
    double worst = 0.0, scale = 0.0;
    for (int64_t j = 0; j < NG; j++)
        if (mask[j])
            scale = fmax(scale, fabs(ref[j]));
    /* rounding relative to the gradient, with a floor of 1 % of the largest
     * (a sum that cancels to near zero keeps the rounding of its terms) */
    for (int64_t j = 0; j < NG; j++) {
        if (!mask[j])
            continue;
        double d = fabs((double)wide1[j] - ref[j]), dn = fabs((double)narrow[j] - ref[j]);
        double unit = fabs(ref[j]) + 0.01 * scale, tol = 1e-4 * unit;
        worst = fmax(worst, fmax(d, dn) / unit);
        if ((d > tol || dn > tol || isnan(d) || isnan(dn)) && bad++ < 5)
            fprintf(stderr, "grad %lld: frost %.9g (256-bit %.9g), OpenBLAS %.9g\n", (long long)j, wide1[j], narrow[j],
                    ref[j]);
    }
    if (fabs((double)l_w1 - l_ref) > 1e-5 * (1.0 + fabs(l_ref)) ||
        fabs((double)l_n - l_ref) > 1e-5 * (1.0 + fabs(l_ref)))
        bad++, fprintf(stderr, "loss: frost %.9g (256-bit %.9g), OpenBLAS %.9g\n", l_w1, l_n, l_ref);
    if (!same(wide1, wide2, mask, NG) || l_w1 != l_w2 || !same(wide1, wide3, mask, NG) || l_w1 != l_w3)
        bad++, fprintf(stderr, "1, 2 and 3 threads differ\n");
#ifndef COMPARE_WIDTHS_DIFFER
    if (!same(wide1, narrow, mask, NG) || l_w1 != l_n)
        bad++, fprintf(stderr, "the 512-bit and 256-bit micro-kernels differ\n");
#endif
    if (!(scale > 0.0))
        bad++, fprintf(stderr, "the gradients are all zero: nothing was compared\n");
    printf("%d gradients, largest %.4g; worst difference from OpenBLAS %.3g (relative to |g| + 1%% of the largest); "
           "loss %.9g: %s\n",
           (int)count, scale, worst, l_ref, bad ? "FAIL" : "ok");
    free(ref), free(wide1), free(wide2), free(wide3), free(narrow), free(params);
    for (int i = 0; i < GW_NUM_INPUTS; i++)
        free(in[i]);
    return bad ? 1 : 0;
}
