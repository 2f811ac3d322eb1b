/* smoke.c: run one generated model once, the way a training program would.
 * Compiled once per (example, configuration) against the generated header
 * P.h, like tests/e2e/gradcheck.c:
 *
 *   cc -std=c11 -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P smoke.c P.o -lopenblas -lm
 *
 *   ./smoke [CONFIG]  init, forward, backward, infer, train_step once each;
 *                     with CONFIG, also check which tensors train (below)
 *   ./smoke --params  print the persistent entries of the parameter table
 *                     (those of a state_dict; not dropout's RNG state), one
 *                     line each: NAME DTYPE [D0, D1, ...]  (DTYPE f32, i32, u8, i64)
 *
 * Inputs: f32 inputs uniform(-1, 1) from a fixed seed; i32 inputs (class
 * labels) 0, 1, 0, 1, ..., valid for any classifier with two classes or more.
 * Checks: every entry point returns 0; init gives finite parameters; the loss
 * of forward, infer and train_step is finite; backward writes finite values
 * into every gradient (of trainable parameters and of inputs marked grad), not
 * all zero; train_step changes some trainable parameter and nothing frozen.
 *
 * The configuration names of examples/ have fixed meanings (docs/models.md),
 * checked against the table when CONFIG is one of them. A layer is the
 * prefix of a parameter's name (conv1 of conv1.weight), in table order
 * (definition order); a batch norm is a layer with a running_mean buffer.
 *   all                  every parameter trains
 *   input, input_bn_eval no parameter trains; the f32 inputs get gradients
 *   norm                 exactly the norms' weights and biases: batch norms, and the
 *                        layer norms named as transformers name them (ln_1, ln_f, *norm*)
 *   head                 exactly the last layer
 *   bitfit               exactly the parameters named *.bias
 *   surgical_first/last  exactly the first/last quarter (rounded up) of the layers
 *   lora_*               exactly the LoRA adapters (lora_A and lora_B weights)
 * Last line "N passed, M failed"; exit status 1 on any failure.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../e2e/check.h" /* check(), npassed, nfailed */

#if !defined(FROST_PREFIX) || !defined(FROST_PREFIX_UPPER)
#error "compile with -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P"
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define LC(suffix) CAT(FROST_PREFIX, suffix)       /* p_forward */
#define UC(suffix) CAT(FROST_PREFIX_UPPER, suffix) /* P_ALIGN */

#define NUM_PARAMS UC(_NUM_PARAMS)
#define NUM_INPUTS UC(_NUM_INPUTS)
#define ALIGN_BYTES ((size_t)UC(_ALIGN))
#define param_table LC(_params)
#define input_table LC(_input_table)
typedef LC(_inputs) inputs_t;
typedef LC(_outputs) outputs_t;

#define NINPUTS_ALLOC (NUM_INPUTS > 0 ? NUM_INPUTS : 1)
_Static_assert(sizeof(inputs_t) == (size_t)NINPUTS_ALLOC * sizeof(void *), "inputs: one pointer per input");
_Static_assert(sizeof(outputs_t) % sizeof(float *) == 0, "outputs: pointers, the loss first");
#define NOUTPUTS (sizeof(outputs_t) / sizeof(float *))


static void *block(int64_t bytes) {
    size_t n = bytes > 0 ? (size_t)bytes : 1;
    n = (n + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES;
    void *p = aligned_alloc(ALIGN_BYTES, n);
    if (!p) {
        printf("FAIL: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static int64_t numel(int32_t rank, const int64_t *shape) {
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++)
        n *= shape[i];
    return n;
}

static int64_t entry_bytes(const LC(_param_info) * p) {
    int esize = p->dtype == FROST_DTYPE_I64 ? 8 : p->dtype == FROST_DTYPE_U8 ? 1 : 4;
    return esize * numel(p->rank, p->shape);
}

static const char *dtype_name(int32_t dt) {
    switch (dt) {
    case FROST_DTYPE_F32: return "f32";
    case FROST_DTYPE_I32: return "i32";
    case FROST_DTYPE_U8: return "u8";
    case FROST_DTYPE_I64: return "i64";
    default: return "?";
    }
}

static uint64_t rng = 0x5EEDu;
static float uniform(void) { /* xorshift64*, in [-1, 1) */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((rng * 0x2545F4914F6CDD1Dull) >> 40) * 0x1.0p-23f - 1.0f;
}

/* Every float of a gradient (nbytes at g) finite; adds sum |g| to *mass. */
static bool finite_floats(const float *g, int64_t n, double *mass) {
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(g[i]))
            return false;
        *mass += fabs(g[i]);
    }
    return true;
}

/* The gradient at grad_offset in the grads block (none when < 0) must be
 * finite; adds its magnitude to *mass. Returns 1 when there is one. */
static int check_grad(const unsigned char *grads, int64_t grad_offset, int32_t rank, const int64_t *shape,
                      const char *what, const char *name, double *mass) {
    if (grad_offset < 0)
        return 0;
    check(finite_floats((const float *)(grads + grad_offset), numel(rank, shape), mass),
          "backward: gradient of %s%s is not finite", what, name);
    return 1;
}

/* The layer of a parameter: its name without the last segment. */
static size_t layer_len(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

static bool same_layer(const char *a, const char *b) {
    size_t n = layer_len(a);
    return n == layer_len(b) && strncmp(a, b, n) == 0;
}

/* Is layer of parameter i a batch norm: has it a running_mean? */
static bool is_batchnorm(int i) {
    for (int k = 0; k < NUM_PARAMS; k++) {
        const char *name = param_table[k].name;
        if (param_table[k].is_buffer && same_layer(name, param_table[i].name) &&
            strcmp(name + layer_len(name), ".running_mean") == 0)
            return true;
    }
    return false;
}

/* Is the layer of parameter i a layer norm by its name: its last segment
 * starts with "ln" (GPT-2's ln_1, ln_f) or has "norm" in it (LLaMA's
 * input_layernorm, model.norm)? */
static bool is_named_norm(int i) {
    const char *name = param_table[i].name;
    size_t n = layer_len(name);
    const char *seg = name;
    for (size_t k = 0; k < n; k++)
        if (name[k] == '.')
            seg = name + k + 1;
    size_t len = (size_t)(name + n - seg);
    if (len >= 2 && strncmp(seg, "ln", 2) == 0)
        return true;
    for (size_t k = 0; k + 4 <= len; k++)
        if (strncmp(seg + k, "norm", 4) == 0)
            return true;
    return false;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Which parameters the configuration named `config` must train (see the top). */
static void check_config(const char *config) {
    int layer[NUM_PARAMS > 0 ? NUM_PARAMS : 1], nlayers = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        layer[i] = -1;
        if (param_table[i].is_buffer)
            continue;
        int prev = -1;
        for (int k = i - 1; k >= 0 && prev < 0; k--)
            if (!param_table[k].is_buffer)
                prev = k;
        layer[i] = prev >= 0 && same_layer(param_table[prev].name, param_table[i].name) ? layer[prev] : nlayers++;
    }
    int quarter = (nlayers + 3) / 4;
    bool known = true;
    for (int i = 0; i < NUM_PARAMS && known; i++) {
        const LC(_param_info) *p = &param_table[i];
        if (p->is_buffer)
            continue;
        bool want;
        if (strcmp(config, "all") == 0)
            want = true;
        else if (strcmp(config, "input") == 0 || strcmp(config, "input_bn_eval") == 0)
            want = false;
        else if (strcmp(config, "norm") == 0)
            want = is_batchnorm(i) || is_named_norm(i);
        else if (strcmp(config, "head") == 0)
            want = layer[i] == nlayers - 1;
        else if (strcmp(config, "bitfit") == 0)
            want = ends_with(p->name, ".bias");
        else if (strncmp(config, "lora_", 5) == 0)
            want = ends_with(p->name, ".lora_A.weight") || ends_with(p->name, ".lora_B.weight");
        else if (strcmp(config, "surgical_first") == 0)
            want = layer[i] < quarter;
        else if (strcmp(config, "surgical_last") == 0)
            want = layer[i] >= nlayers - quarter;
        else
            known = false;
        if (known)
            check(!p->trainable == !want, "config %s: %s should %s", config, p->name, want ? "train" : "be frozen");
    }
    if (strncmp(config, "input", 5) == 0 && (config[5] == 0 || strcmp(config + 5, "_bn_eval") == 0))
        for (int i = 0; i < NUM_INPUTS; i++)
            check(input_table[i].dtype != 0 || input_table[i].grad_offset >= 0, "config %s: input %s gets no gradient",
                  config, input_table[i].name);
    if (known)
        printf("config %s: %d layers with parameters, a quarter is %d\n", config, nlayers, quarter);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--params") == 0) {
        for (int i = 0; i < NUM_PARAMS; i++) {
            const LC(_param_info) *p = &param_table[i];
            if (!p->persistent)
                continue;
            printf("%s %s [", p->name, dtype_name(p->dtype));
            for (int32_t k = 0; k < p->rank; k++)
                printf("%s%" PRId64, k ? ", " : "", p->shape[k]);
            printf("]\n");
        }
        return 0;
    }

    unsigned char *params = block(UC(_PARAMS_BYTES)), *before = block(UC(_PARAMS_BYTES));
    unsigned char *grads = block(UC(_GRADS_BYTES));
    void *arena = block(UC(_TRAIN_ARENA_BYTES)), *infer_arena = block(UC(_INFER_ARENA_BYTES));
    void *opt_state = block(UC(_OPT_STATE_BYTES));
    memset(opt_state, 0, (size_t)UC(_OPT_STATE_BYTES));

    if (argc > 1)
        check_config(argv[1]);
    LC(_init)(params, 42);
    int ntrain = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        const LC(_param_info) *p = &param_table[i];
        ntrain += p->trainable;
        if (p->dtype == FROST_DTYPE_F32) {
            double mass = 0;
            check(finite_floats((const float *)(params + p->offset), numel(p->rank, p->shape), &mass),
                  "init: %s is not finite", p->name);
        }
    }

    /* inputs */
    void *data[NINPUTS_ALLOC] = {NULL};
    for (int i = 0; i < NUM_INPUTS; i++) {
        int64_t n = numel(input_table[i].rank, input_table[i].shape);
        data[i] = block(4 * n);
        for (int64_t k = 0; k < n; k++) {
            if (input_table[i].dtype == 0)
                ((float *)data[i])[k] = uniform();
            else
                ((int32_t *)data[i])[k] = (int32_t)(k % 2);
        }
    }
    inputs_t in;
    memcpy(&in, data, sizeof in);
    float loss = NAN;
    float *outs[NOUTPUTS];
    for (size_t k = 0; k < NOUTPUTS; k++)
        outs[k] = NULL;
    outs[0] = &loss;
    outputs_t out;
    memcpy(&out, outs, sizeof out);

    /* forward + backward */
    memset(grads, 0xFF, (size_t)UC(_GRADS_BYTES)); /* NaN everywhere: backward must write every gradient */
    int rc = LC(_forward)(params, &in, &out, arena);
    check(rc == 0, "forward returned %d", rc);
    check(isfinite(loss), "forward: loss %g is not finite", loss);
    float train_loss = loss;
    rc = LC(_backward)(params, grads, arena);
    check(rc == 0, "backward returned %d", rc);
    double mass = 0;
    int ngrads = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        const LC(_param_info) *p = &param_table[i];
        ngrads += check_grad(grads, p->grad_offset, p->rank, p->shape, "", p->name, &mass);
    }
    for (int i = 0; i < NUM_INPUTS; i++) {
        const LC(_input_info) *t = &input_table[i];
        ngrads += check_grad(grads, t->grad_offset, t->rank, t->shape, "input ", t->name, &mass);
    }
    if (ngrads)
        check(mass > 0, "backward: every gradient is zero");

    /* inference */
    loss = NAN;
    rc = LC(_infer)(params, &in, &out, infer_arena);
    check(rc == 0, "infer returned %d", rc);
    check(isfinite(loss), "infer: loss %g is not finite", loss);

    /* one optimizer step */
    memcpy(before, params, (size_t)UC(_PARAMS_BYTES));
    float step_loss = LC(_train_step)(params, grads, opt_state, &in, NULL, arena, NULL);
    check(isfinite(step_loss), "train_step: loss %g is not finite", step_loss);
    bool changed = false;
    for (int i = 0; i < NUM_PARAMS; i++) {
        const LC(_param_info) *p = &param_table[i];
        bool same = memcmp(params + p->offset, before + p->offset, (size_t)entry_bytes(p)) == 0;
        if (p->trainable)
            changed |= !same;
        else if (!p->is_buffer)
            check(same, "train_step changed the frozen parameter %s", p->name);
    }
    if (ntrain)
        check(changed, "train_step changed no trainable parameter");

    printf("%d of %d tensors trainable, %d gradients, loss %.6g (infer %.6g; train_step with %s: %.6g)\n", ntrain,
           NUM_PARAMS, ngrads, train_loss, loss, UC(_OPTIMIZER), step_loss);
    printf("%d passed, %d failed\n", npassed, nfailed);
    for (int i = 0; i < NUM_INPUTS; i++)
        free(data[i]);
    free(params), free(before), free(grads), free(arena), free(infer_arena), free(opt_state);
    return nfailed ? 1 : 0;
}
