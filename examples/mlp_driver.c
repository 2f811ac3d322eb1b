/* mlp_driver.c: train examples/mlp.frost from plain C.
 *
 *   frost compile examples/mlp.frost -o mlp.o          (writes mlp.o and mlp.h)
 *   cc -std=c11 -O2 -I. examples/mlp_driver.c mlp.o -lopenblas -lm -o mlp_driver
 *   ./mlp_driver
 *
 * scripts/demo.sh does exactly this. The program works for every configuration
 * of the model (`--config all|head|input`, `--train`/`--freeze` patterns): it
 * finds what to update in the parameter table of the generated header, not in
 * its own code. The only things it knows about the model are the sizes below,
 * which must match examples/mlp.frost (it checks the parameter shapes).
 *
 * Memory: the caller owns everything. Four blocks, sizes fixed at compile
 * time by the header, aligned to MLP_ALIGN:
 *   params       all parameters                  MLP_PARAMS_BYTES
 *   grads        gradients of trainable ones     MLP_GRADS_BYTES
 *   arena        forward+backward working set    MLP_TRAIN_ARENA_BYTES
 *   infer arena  inference working set           MLP_INFER_ARENA_BYTES
 * (one arena of the larger size could serve both; separate ones show the sizes).
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlp.h"

enum {
    BATCH = 128,    /* const N of mlp.frost (compile without -D N=...) */
    FEATURES = 784, /* x : f32[N, 784] */
    CLASSES = 10,   /* fc2 = linear(h1, 10) */
};
#define STEPS 20
#define LEARNING_RATE 0.5f

/* ------------------------------------------------------------------ helpers */

/* aligned_alloc wants a size that is a multiple of the alignment, and a
 * configuration may need zero bytes of gradients: round up, at least one unit. */
static void *alloc_block(const char *what, long long bytes) {
    size_t n = bytes > 0 ? (size_t)bytes : 1;
    n = (n + MLP_ALIGN - 1) / MLP_ALIGN * MLP_ALIGN;
    void *p = aligned_alloc(MLP_ALIGN, n);
    if (!p) {
        fprintf(stderr, "mlp_driver: cannot allocate %zu bytes for %s\n", n, what);
        exit(1);
    }
    return p;
}

static void print_bytes(const char *what, long long bytes) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 3) {
        v /= 1024.0;
        u++;
    }
    printf("  %-34s %8.1f %-3s (%lld bytes)\n", what, v, unit[u], bytes);
}

static int64_t numel(const mlp_param_info *p) {
    int64_t n = 1;
    for (int32_t d = 0; d < p->rank; d++)
        n *= p->shape[d];
    return n;
}

static const mlp_param_info *find_param(const char *name) {
    for (int i = 0; i < MLP_NUM_PARAMS; i++)
        if (strcmp(mlp_params[i].name, name) == 0)
            return &mlp_params[i];
    return NULL;
}

/* Every entry point returns 0 on success (MLP_ERR_LABEL: a label outside [0, 10)). */
static void check_rc(const char *what, int rc) {
    if (rc != 0) {
        fprintf(stderr, "mlp_driver: %s failed with code %d\n", what, rc);
        exit(1);
    }
}

static uint64_t rng = 0x853c49e6748fea9bull;
static float uniform01(void) { /* xorshift64*, enough for synthetic data */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((rng * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1u << 24);
}

/* A synthetic but learnable batch: sample i has class i % 10, and class c
 * lights up the c-th band of 78 "pixels" on top of uniform noise. */
static void make_batch(float *x, int32_t *label) {
    const int band = FEATURES / CLASSES;
    for (int i = 0; i < BATCH; i++) {
        int c = i % CLASSES;
        label[i] = c;
        for (int j = 0; j < FEATURES; j++) {
            float signal = (j / band == c) ? 1.0f : 0.0f;
            x[(size_t)i * FEATURES + j] = signal + 0.5f * (uniform01() - 0.5f);
        }
    }
}

/* Plain SGD over the parameter table: only entries with a gradient (the
 * trainable ones of this configuration) have grad_offset >= 0. */
static int64_t sgd_step(void *params, const void *grads, float lr) {
    int64_t updated = 0;
    for (int i = 0; i < MLP_NUM_PARAMS; i++) {
        const mlp_param_info *p = &mlp_params[i];
        if (p->grad_offset < 0)
            continue;
        float *w = (float *)((char *)params + p->offset);
        const float *g = (const float *)((const char *)grads + p->grad_offset);
        int64_t n = numel(p);
        for (int64_t k = 0; k < n; k++)
            w[k] -= lr * g[k];
        updated += n;
    }
    return updated;
}

/* ------------------------------------------------------------------ main */

int main(void) {
    printf("memory of this configuration (compile-time constants of mlp.h):\n");
    print_bytes("parameters (MLP_PARAMS_BYTES)", MLP_PARAMS_BYTES);
    print_bytes("gradients (MLP_GRADS_BYTES)", MLP_GRADS_BYTES);
    print_bytes("train arena (MLP_TRAIN_ARENA_BYTES)", MLP_TRAIN_ARENA_BYTES);
    print_bytes("  of which residuals", MLP_RESIDUAL_BYTES);
    print_bytes("infer arena (MLP_INFER_ARENA_BYTES)", MLP_INFER_ARENA_BYTES);

    /* The model must be the one this driver was written for. */
    const mlp_param_info *w1 = find_param("fc1.weight"), *w2 = find_param("fc2.weight");
    if (!w1 || !w2 || w1->rank != 2 || w1->shape[1] != FEATURES || w2->rank != 2 || w2->shape[0] != CLASSES) {
        fprintf(stderr, "mlp_driver: mlp.h does not describe examples/mlp.frost's model\n");
        return 1;
    }

    printf("\nparameters:\n");
    int64_t trainable = 0;
    for (int i = 0; i < MLP_NUM_PARAMS; i++) {
        const mlp_param_info *p = &mlp_params[i];
        char shape[64];
        int len = snprintf(shape, sizeof shape, "[");
        for (int32_t d = 0; d < p->rank && len < 48; d++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%" PRId64, d ? ", " : "", p->shape[d]);
        snprintf(shape + len, sizeof shape - (size_t)len, "]");
        printf("  %-12s %-12s %s\n", p->name, shape, p->trainable ? "trainable" : "frozen");
        if (p->grad_offset >= 0)
            trainable += numel(p);
    }

    void *params = alloc_block("params", MLP_PARAMS_BYTES);
    void *grads = alloc_block("grads", MLP_GRADS_BYTES);
    void *arena = alloc_block("train arena", MLP_TRAIN_ARENA_BYTES);
    void *infer_arena = alloc_block("infer arena", MLP_INFER_ARENA_BYTES);
    float *x = alloc_block("x", (long long)sizeof(float) * BATCH * FEATURES);
    int32_t *label = alloc_block("label", (long long)sizeof(int32_t) * BATCH);

    mlp_set_threads(0);   /* the kernels on $FROST_NUM_THREADS threads, else every CPU */
    mlp_init(params, 42); /* deterministic: same seed, same weights everywhere */
    make_batch(x, label);

    /* The inputs struct holds pointers to the caller's tensors; outputs point
     * at where results go. */
    float loss = NAN;
    mlp_inputs in = {.x = x, .label = label};
    mlp_outputs out = {.loss = &loss};

    printf("\ntraining on one synthetic batch of %d, plain SGD (lr %.2f), %" PRId64 " trainable scalars\n", BATCH,
           (double)LEARNING_RATE, trainable);
    if (trainable == 0)
        printf("  (nothing is trainable in this configuration: the loss stays put)\n");
    for (int step = 0; step < STEPS; step++) {
        check_rc("mlp_forward", mlp_forward(params, &in, &out, arena));
        /* backward continues the forward that just ran on this arena */
        check_rc("mlp_backward", mlp_backward(params, grads, arena));
#ifdef MLP_GRAD_X_OFFSET
        if (step == 0) { /* configurations with `grad x` also return d loss / d x */
            const float *dx = (const float *)((const char *)grads + MLP_GRAD_X_OFFSET);
            double norm = 0;
            for (size_t k = 0; k < (size_t)BATCH * FEATURES; k++)
                norm += (double)dx[k] * dx[k];
            printf("  |d loss / d x| = %.6g\n", sqrt(norm));
        }
#endif
        sgd_step(params, grads, LEARNING_RATE);
        if (step % 5 == 0 || step == STEPS - 1)
            printf("  step %2d  loss %.6f\n", step, (double)loss);
    }

    loss = NAN;
    check_rc("mlp_infer", mlp_infer(params, &in, &out, infer_arena));
    printf("\ninference after training: loss %.6f\n", (double)loss);

    free(label);
    free(x);
    free(infer_arena);
    free(arena);
    free(grads);
    free(params);
    return 0;
}
