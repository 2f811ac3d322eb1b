/* optim.c: the optimizer compiled into a generated object (P_update,
 * P_train_step) against a reference written here in double precision.
 *
 *   cc -std=c11 -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P optim.c P.o -lopenblas -lm
 *
 * The model has inputs x (f32) and label (i32), and its loss as output 0
 * (tests/e2e/models/optim_tiny.frost). Checks, each counted ("N passed, M
 * failed" last; exit 1 on failure):
 *  - three updates with run-time hyper-parameters that differ from the
 *    compiled-in defaults match the reference update of PyTorch's SGD
 *    (momentum, dampening, Nesterov, weight decay) or AdamW, element by
 *    element; frozen parameters and buffers stay bit-identical;
 *  - hparams NULL means P_default_hparams;
 *  - P_train_step equals forward + backward + update, bit for bit, and
 *    returns the loss;
 *  - 200 train steps on the fixed batch bring the loss below 80% of its
 *    starting value (below a quarter when every parameter trains).
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h" /* check(), npassed, nfailed */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define LC(s) CAT(FROST_PREFIX, s)
#define UC(s) CAT(FROST_PREFIX_UPPER, s)

static void *block(int64_t bytes) {
    size_t n = (size_t)(bytes > 0 ? bytes : 1);
    n = (n + UC(_ALIGN) - 1) / UC(_ALIGN) * UC(_ALIGN);
    void *p = aligned_alloc(UC(_ALIGN), n);
    if (!p) {
        puts("FAIL: out of memory");
        exit(1);
    }
    memset(p, 0, n);
    return p;
}

static int64_t numel(const frost_param_info *p) {
    int64_t n = 1;
    for (int i = 0; i < p->rank; i++)
        n *= p->shape[i];
    return n;
}

static float x_data[8 * 5];
static int32_t label_data[8];
static LC(_inputs) in;
static float loss_out;
static LC(_outputs) out;

/* Reference optimizer state, per trainable parameter, in double. */
typedef struct {
    double *buf, *m, *v;
} ref_state;
static ref_state ref[UC(_NUM_PARAMS)];
static int64_t ref_step;

static bool is_adamw(void) { return strcmp(UC(_OPTIMIZER), "adamw") == 0; }

static void ref_update(float *params, const float *grads_f, const frost_hparams *hp) {
    ref_step++;
    for (int i = 0; i < UC(_NUM_PARAMS); i++) {
        const frost_param_info *pi = &LC(_params)[i];
        if (!pi->trainable)
            continue;
        int64_t n = numel(pi);
        float *p = (float *)((char *)params + pi->offset);
        const float *g = (const float *)((const char *)grads_f + pi->grad_offset);
        ref_state *s = &ref[i];
        if (!s->buf) {
            s->buf = calloc((size_t)n, sizeof(double));
            s->m = calloc((size_t)n, sizeof(double));
            s->v = calloc((size_t)n, sizeof(double));
        }
        for (int64_t k = 0; k < n; k++) {
            double w = p[k], d = g[k];
            if (is_adamw()) {
                w *= 1.0 - (double)hp->lr * hp->weight_decay;
                s->m[k] = hp->beta1 * s->m[k] + (1.0 - hp->beta1) * d;
                s->v[k] = hp->beta2 * s->v[k] + (1.0 - hp->beta2) * d * d;
                double mhat = s->m[k] / (1.0 - pow(hp->beta1, (double)ref_step));
                double vhat = s->v[k] / (1.0 - pow(hp->beta2, (double)ref_step));
                w -= hp->lr * mhat / (sqrt(vhat) + hp->eps);
            } else {
                d += hp->weight_decay * w;
                if (hp->momentum != 0) {
                    s->buf[k] = ref_step == 1 ? d : hp->momentum * s->buf[k] + (1.0 - hp->dampening) * d;
                    d = hp->nesterov ? d + hp->momentum * s->buf[k] : s->buf[k];
                }
                w -= hp->lr * d;
            }
            p[k] = (float)w;
        }
    }
}

int main(void) {
    for (int i = 0; i < 8 * 5; i++)
        x_data[i] = (float)sin(0.7 * i + 0.3);
    for (int i = 0; i < 8; i++)
        label_data[i] = i % 3;
    in = (LC(_inputs)){x_data, label_data};
    out = (LC(_outputs)){&loss_out};

    void *params = block(UC(_PARAMS_BYTES)), *grads = block(UC(_GRADS_BYTES));
    void *state = block(UC(_OPT_STATE_BYTES)), *arena = block(UC(_TRAIN_ARENA_BYTES));
    void *expect = block(UC(_PARAMS_BYTES)), *before = block(UC(_PARAMS_BYTES));
    LC(_init)(params, 7);
    printf("optimizer %s, %d of %d tensors trainable, state %lld bytes\n", UC(_OPTIMIZER), UC(_NUM_TRAINABLE),
           UC(_NUM_PARAMS), (long long)UC(_OPT_STATE_BYTES));

    /* Run-time hyper-parameters other than the compiled-in defaults. */
    frost_hparams hp = LC(_default_hparams);
    hp.lr *= 0.5f;
    hp.weight_decay = 0.05f;
    if (!is_adamw()) {
        hp.momentum = 0.8f;
        hp.nesterov = 1;
    } else {
        hp.beta1 = 0.8f;
    }
    for (int step = 1; step <= 3; step++) {
        int rc = LC(_forward)(params, &in, &out, arena);
        rc |= LC(_backward)(params, grads, arena);
        check(rc == 0, "step %d: forward/backward returned %d", step, rc);
        memcpy(before, params, UC(_PARAMS_BYTES));
        memcpy(expect, params, UC(_PARAMS_BYTES));
        ref_update(expect, grads, &hp);
        LC(_update)(params, grads, state, &hp);
        for (int i = 0; i < UC(_NUM_PARAMS); i++) {
            const frost_param_info *pi = &LC(_params)[i];
            const float *got = (const float *)((char *)params + pi->offset);
            const float *want = (const float *)((char *)expect + pi->offset);
            if (!pi->trainable) {
                check(memcmp((char *)params + pi->offset, (char *)before + pi->offset,
                             (size_t)numel(pi) * (pi->dtype == 4 ? 8 : 4)) == 0,
                      "step %d: update changed %s, which is not trainable", step, pi->name);
                continue;
            }
            double worst = 0;
            bool moved = false;
            for (int64_t k = 0; k < numel(pi); k++) {
                double err = fabs((double)got[k] - want[k]) / fmax(1e-3, fabs(want[k]));
                worst = fmax(worst, err);
                moved |= got[k] != ((const float *)((char *)before + pi->offset))[k];
            }
            check(worst < 1e-5, "step %d: %s differs from the reference by %.3g (relative)", step, pi->name, worst);
            check(moved, "step %d: %s did not change", step, pi->name);
        }
    }
    check(*(int64_t *)state == 3, "the state's step counter is %lld after 3 updates", (long long)*(int64_t *)state);

    /* NULL hparams: the defaults. */
    {
        void *p2 = block(UC(_PARAMS_BYTES)), *s2 = block(UC(_OPT_STATE_BYTES));
        memcpy(p2, params, UC(_PARAMS_BYTES));
        memcpy(s2, state, UC(_OPT_STATE_BYTES));
        LC(_update)(params, grads, state, NULL);
        LC(_update)(p2, grads, s2, &LC(_default_hparams));
        check(memcmp(p2, params, UC(_PARAMS_BYTES)) == 0 && memcmp(s2, state, UC(_OPT_STATE_BYTES)) == 0,
              "update with NULL hparams differs from update with the defaults");
        free(p2);
        free(s2);
    }

    /* train_step == forward + backward + update. */
    {
        void *p2 = block(UC(_PARAMS_BYTES)), *s2 = block(UC(_OPT_STATE_BYTES)), *g2 = block(UC(_GRADS_BYTES));
        memcpy(p2, params, UC(_PARAMS_BYTES));
        memcpy(s2, state, UC(_OPT_STATE_BYTES));
        float loss_fwd = NAN;
        LC(_outputs) o2 = {&loss_fwd};
        int rc = LC(_forward)(p2, &in, &o2, arena) | LC(_backward)(p2, g2, arena);
        LC(_update)(p2, g2, s2, &hp);
        loss_out = NAN;
        float loss_step = LC(_train_step)(params, grads, state, &in, &out, arena, &hp);
        check(rc == 0 && loss_step == loss_fwd && loss_out == loss_fwd,
              "train_step returned %g (out: %g), forward gave %g", loss_step, loss_out, loss_fwd);
        check(memcmp(p2, params, UC(_PARAMS_BYTES)) == 0 && memcmp(s2, state, UC(_OPT_STATE_BYTES)) == 0,
              "train_step's update differs from forward + backward + update");
        float again = LC(_train_step)(params, grads, state, &in, NULL, arena, &hp);
        check(isfinite(again), "train_step with out NULL returned %g", again);
        /* A bad label: NaN, and nothing updated. */
        memcpy(p2, params, UC(_PARAMS_BYTES));
        label_data[0] = 99;
        float bad = LC(_train_step)(params, grads, state, &in, &out, arena, &hp);
        label_data[0] = 0;
        check(isnan(bad) && memcmp(p2, params, UC(_PARAMS_BYTES)) == 0,
              "train_step with a bad label returned %g and %s the params", bad,
              memcmp(p2, params, UC(_PARAMS_BYTES)) ? "changed" : "kept");
        free(p2);
        free(s2);
        free(g2);
    }

    /* Training on the fixed batch reduces the loss. */
    {
        LC(_init)(params, 11);
        memset(state, 0, UC(_OPT_STATE_BYTES));
        float first = LC(_train_step)(params, grads, state, &in, NULL, arena, NULL), last = first;
        for (int k = 0; k < 200; k++)
            last = LC(_train_step)(params, grads, state, &in, NULL, arena, NULL);
        printf("loss %.4f -> %.4f after 200 steps\n", first, last);
        float goal = UC(_NUM_TRAINABLE) == UC(_NUM_PARAMS) ? 0.25f : 0.8f;
        check(isfinite(last) && last < goal * first, "200 steps took the loss from %g only to %g", first, last);
    }
    for (int i = 0; i < UC(_NUM_PARAMS); i++) {
        free(ref[i].buf);
        free(ref[i].m);
        free(ref[i].v);
    }
    free(params);
    free(grads);
    free(state);
    free(arena);
    free(expect);
    free(before);
    printf("%d passed, %d failed\n", npassed, nfailed);
    return nfailed ? 1 : 0;
}
