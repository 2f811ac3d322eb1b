/* gradcheck.c: end-to-end check of one generated model under one freeze
 * configuration. It calls the generated entry points the way a user program
 * does and checks them against each other and against finite differences.
 *
 * Compiled once per (model, configuration) against the generated header P.h:
 *
 *   cc -std=c11 -O1 -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P \
 *      gradcheck.c P.o -lopenblas -lm
 *
 * FROST_PREFIX is the prefix of functions, types and tables (p_forward,
 * p_inputs, p_params), FROST_PREFIX_UPPER the prefix of macros (P_ALIGN); the
 * preprocessor cannot upper-case, so both are given. tests/e2e/run_gradcheck.sh
 * does all of this.
 *
 * What the generated header must provide besides docs/abi.md's contract:
 *   #define P_NUM_INPUTS n
 *   typedef struct { const char *name; int32_t dtype;  (0 f32, 1 i32)
 *                    int32_t rank; int64_t shape[6];
 *                    int64_t grad_offset;  (-1 unless the input wants a gradient)
 *                  } p_input_info;
 *   static const p_input_info p_input_table[P_NUM_INPUTS];
 * and p_inputs must be exactly P_NUM_INPUTS pointers in table order; p_outputs
 * must be pointers only, the first being the scalar f32 loss (the others are
 * passed as NULL).
 *
 * Inputs: f32 inputs get seeded uniform(-1, 1) values; i32 inputs get the
 * labels (i*7+3) % 2, i.e. 1, 0, 1, 0, ..., valid for any classifier with at
 * least two classes (models with other integer inputs need another filler).
 *
 * Checks (each counted; "N passed, M failed" is printed last, exit 1 on any
 * failure, 2 on bad usage):
 *  - the parameter and input tables are consistent: in bounds, aligned, not
 *    overlapping, trainable <=> grad_offset >= 0, sizeof(p_inputs) matches;
 *    block sizes are multiples of the alignment;
 *  - p_init is deterministic and gives finite values;
 *  - every entry point returns 0; forward's loss is finite and equals infer's
 *    within 1e-5 relative;
 *  - forward+backward leave params (except buffers) and inputs unchanged;
 *  - backward writes every byte of every gradient (the grads block is filled
 *    with a NaN sentinel first) with finite values and no byte outside them
 *    (frozen parameters get no gradient, padding stays untouched);
 *  - running forward+backward again, over an arena filled with different
 *    garbage, gives bit-identical gradients and loss (so nothing reads memory
 *    it has not written in the same call); so does a run with NULL outputs
 *    and one where the inputs are overwritten between forward and backward;
 *    inputs are deliberately not aligned;
 *  - a class label of -1 makes forward and infer return non-zero;
 *  - for every trainable parameter and every input that wants a gradient, up
 *    to --coords seeded-random coordinates agree with central differences of
 *    infer's loss (see fd_check for tolerances and ReLU kinks).
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h" /* check(), npassed, nfailed */

#if !defined(FROST_PREFIX) || !defined(FROST_PREFIX_UPPER)
#error "compile with -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P"
#endif

#define GC_CAT_(a, b) a##b
#define GC_CAT(a, b) GC_CAT_(a, b)
#define GC_STR_(a) #a
#define GC_STR(a) GC_STR_(a)
#define LC(suffix) GC_CAT(FROST_PREFIX, suffix)       /* p_forward */
#define UC(suffix) GC_CAT(FROST_PREFIX_UPPER, suffix) /* P_ALIGN */

#define NUM_PARAMS UC(_NUM_PARAMS)
#define NUM_INPUTS UC(_NUM_INPUTS)
#define BLOCK_ALIGN ((size_t)UC(_ALIGN))
#define PARAMS_BYTES ((int64_t)UC(_PARAMS_BYTES))
#define GRADS_BYTES ((int64_t)UC(_GRADS_BYTES))
#define TRAIN_ARENA_BYTES ((int64_t)UC(_TRAIN_ARENA_BYTES))
#define INFER_ARENA_BYTES ((int64_t)UC(_INFER_ARENA_BYTES))
#ifdef FROST_CHECKED /* frost compile --checked (run_gradcheck.sh defines it) */
#define GRADS_GUARD (GRADS_BYTES > 0 ? (int64_t)UC(_GUARD_BYTES) : 0)
#else
#define GRADS_GUARD 0
#endif
#define param_table LC(_params)
#define input_table LC(_input_table)
typedef LC(_inputs) inputs_t;
typedef LC(_outputs) outputs_t;

/* A model without parameters (inputs) still has a one-entry placeholder table
 * (a one-field inputs struct): C has no empty arrays or structs. */
#define NPARAMS_ALLOC (NUM_PARAMS > 0 ? NUM_PARAMS : 1)
#define NINPUTS_ALLOC (NUM_INPUTS > 0 ? NUM_INPUTS : 1)
_Static_assert(sizeof(inputs_t) == (size_t)NINPUTS_ALLOC * sizeof(void *),
               "the inputs struct must be exactly NUM_INPUTS pointers in table order");
_Static_assert(sizeof(outputs_t) % sizeof(float *) == 0 && sizeof(outputs_t) >= sizeof(float *),
               "the outputs struct must be pointers, the loss first");
_Static_assert(sizeof(param_table) / sizeof(param_table[0]) == NPARAMS_ALLOC, "param table size");
_Static_assert(sizeof(input_table) / sizeof(input_table[0]) == NINPUTS_ALLOC, "input table size");

#define NOUTPUTS (sizeof(outputs_t) / sizeof(float *))

/* Byte patterns: the grads block starts as SENTINEL, arenas as NaN garbage
 * (first run) or as finite garbage (second run). */
#define SENTINEL 0x7FBADBADu
#define ARENA_NAN 0x7FC0FFEEu
#define ARENA_JUNK 0x3F9E3779u /* about 1.24f */

static bool verbose;


static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(fmt, ap);
    va_end(ap);
    printf("%d passed, %d failed\n", npassed, nfailed);
    exit(1);
}

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state;
static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_uniform(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; } /* [0, 1) */

static int64_t numel(int32_t rank, const int64_t *shape) {
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++)
        n *= shape[i];
    return n;
}

static const char *shape_str(int32_t rank, const int64_t *shape) {
    static char buf[8][96];
    static int next;
    char *s = buf[next++ % 8];
    size_t len = 0;
    len += (size_t)snprintf(s + len, 96 - len, "[");
    for (int32_t i = 0; i < rank && len < 80; i++)
        len += (size_t)snprintf(s + len, 96 - len, "%s%" PRId64, i ? ", " : "", shape[i]);
    snprintf(s + len, 96 - len, "]");
    return s;
}

static void *alloc_block(int64_t bytes) {
    size_t n = bytes > 0 ? (size_t)bytes : 1;
    n = (n + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    void *p = aligned_alloc(BLOCK_ALIGN, n);
    if (!p)
        fatal("out of memory allocating %zu bytes", n);
    return p;
}

static void fill_u32(void *p, int64_t bytes, uint32_t pattern) {
    unsigned char *b = p;
    for (int64_t i = 0; i < bytes; i++)
        b[i] = (unsigned char)(pattern >> (8 * (i % 4)));
}

static bool is_pattern_byte(const unsigned char *b, int64_t i, uint32_t pattern) {
    return b[i] == (unsigned char)(pattern >> (8 * (i % 4)));
}

/* ------------------------------------------------------------ model state */

static unsigned char *params, *params_before, *grads, *grads_first, *train_arena, *infer_arena;
static void *input_data[NINPUTS_ALLOC], *input_before[NINPUTS_ALLOC];
static int64_t input_bytes[NINPUTS_ALLOC];
static inputs_t inputs;
static float loss_value;
static outputs_t outputs;

static void bind_io(void) {
    const void *ptrs[NINPUTS_ALLOC] = {NULL};
    for (int i = 0; i < NUM_INPUTS; i++)
        ptrs[i] = input_data[i];
    memcpy(&inputs, ptrs, sizeof inputs);
    float *outs[NOUTPUTS];
    for (size_t i = 0; i < NOUTPUTS; i++)
        outs[i] = NULL;
    outs[0] = &loss_value;
    memcpy(&outputs, outs, sizeof outputs);
}

static double run_infer(void) {
    fill_u32(infer_arena, INFER_ARENA_BYTES, ARENA_NAN);
    loss_value = NAN;
    int rc = LC(_infer)(params, &inputs, &outputs, infer_arena);
    if (rc != 0)
        fatal("infer returned %d", rc);
    return loss_value;
}

/* Buffers (batch-norm running statistics, dropout RNG counters) change in
 * every forward; each evaluation starts from the state init left, so that
 * repeated runs (and finite differences) see the same function. */
static int64_t param_bytes(const LC(_param_info) * p) {
    int64_t esize = p->dtype == 4 ? 8 : p->dtype == 2 ? 1 : 4; /* i64, u8, f32/i32 */
    return esize * numel(p->rank, p->shape);
}

static bool has_buffers(void) {
    for (int i = 0; i < NUM_PARAMS; i++)
        if (param_table[i].is_buffer)
            return true;
    return false;
}

static void restore_buffers(void) {
    for (int i = 0; i < NUM_PARAMS; i++) {
        const LC(_param_info) *p = &param_table[i];
        if (p->is_buffer)
            memcpy(params + p->offset, params_before + p->offset, (size_t)param_bytes(p));
    }
}

/* The training-mode loss (what backward differentiates), from forward alone. */
static double run_forward_loss(void) {
    restore_buffers();
    fill_u32(train_arena, TRAIN_ARENA_BYTES, ARENA_JUNK);
    loss_value = NAN;
    int rc = LC(_forward)(params, &inputs, &outputs, train_arena);
    if (rc != 0)
        fatal("forward returned %d", rc);
    return loss_value;
}

/* forward + backward over an arena filled with `garbage`; grads start as
 * SENTINEL. With `scribble`, the inputs are overwritten between the two calls
 * (backward must not read them: docs/abi.md) and restored afterwards. */
static double run_train(uint32_t garbage, bool scribble) {
    restore_buffers();
    fill_u32(train_arena, TRAIN_ARENA_BYTES, garbage);
    fill_u32(grads, GRADS_BYTES, SENTINEL);
    loss_value = NAN;
    int rc = LC(_forward)(params, &inputs, &outputs, train_arena);
    check(rc == 0, "forward returned %d", rc);
    double loss = loss_value;
    if (scribble)
        for (int i = 0; i < NUM_INPUTS; i++)
            fill_u32(input_data[i], input_bytes[i], input_table[i].dtype == 0 ? ARENA_NAN : 0x7FFFFFFFu);
    rc = LC(_backward)(params, grads, train_arena);
    check(rc == 0, "backward returned %d", rc);
    if (scribble)
        for (int i = 0; i < NUM_INPUTS; i++)
            memcpy(input_data[i], input_before[i], (size_t)input_bytes[i]);
    return loss;
}

/* ------------------------------------------------------------ tables */

typedef struct {
    const char *name;
    int64_t lo, hi; /* byte range */
} range;

static void check_disjoint(const char *block, range *r, int n) {
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            check(r[i].hi <= r[j].lo || r[j].hi <= r[i].lo,
                  "%s: %s [%" PRId64 ", %" PRId64 ") overlaps %s [%" PRId64 ", %" PRId64 ")", block, r[i].name, r[i].lo,
                  r[i].hi, r[j].name, r[j].lo, r[j].hi);
}

static bool shape_ok(int32_t rank, const int64_t *shape) {
    if (rank < 0 || rank > 6)
        return false;
    for (int32_t i = 0; i < rank; i++)
        if (shape[i] <= 0)
            return false;
    return true;
}

/* Byte ranges of all gradients in the grads block (params, then inputs). */
static range grad_ranges[NPARAMS_ALLOC + NINPUTS_ALLOC];
static int ngrad_ranges;

static void check_tables(void) {
    range pr[NPARAMS_ALLOC];
    int npr = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        const LC(_param_info) *p = &param_table[i];
        if (!check(shape_ok(p->rank, p->shape), "param %s: bad rank/shape %d %s", p->name, (int)p->rank,
                   shape_str(p->rank < 0 || p->rank > 6 ? 0 : p->rank, p->shape)))
            fatal("cannot continue with a broken parameter table");
        int64_t bytes = param_bytes(p);
        check(p->offset >= 0 && p->offset + bytes <= PARAMS_BYTES,
              "param %s: offset %" PRId64 " + %" PRId64 " bytes outside params (%" PRId64 ")", p->name, p->offset,
              bytes, PARAMS_BYTES);
        check(p->offset % (int64_t)BLOCK_ALIGN == 0, "param %s: offset %" PRId64 " not aligned", p->name, p->offset);
        check(!!p->trainable == (p->grad_offset >= 0), "param %s: trainable=%d but grad_offset=%" PRId64, p->name,
              (int)p->trainable, p->grad_offset);
        check(!(p->is_buffer && p->trainable), "param %s: a buffer cannot be trainable", p->name);
        pr[npr++] = (range){p->name, p->offset, p->offset + bytes};
        if (p->grad_offset >= 0) {
            check(p->grad_offset + bytes <= GRADS_BYTES,
                  "param %s: grad offset %" PRId64 " + %" PRId64 " outside grads (%" PRId64 ")", p->name,
                  p->grad_offset, bytes, GRADS_BYTES);
            check(p->grad_offset % (int64_t)BLOCK_ALIGN == 0, "param %s: grad offset %" PRId64 " not aligned", p->name,
                  p->grad_offset);
            grad_ranges[ngrad_ranges++] = (range){p->name, p->grad_offset, p->grad_offset + bytes};
        }
    }
    check_disjoint("params", pr, npr);
    check(PARAMS_BYTES % (int64_t)BLOCK_ALIGN == 0 && GRADS_BYTES % (int64_t)BLOCK_ALIGN == 0 &&
              TRAIN_ARENA_BYTES % (int64_t)BLOCK_ALIGN == 0 && INFER_ARENA_BYTES % (int64_t)BLOCK_ALIGN == 0,
          "block sizes must be multiples of the alignment %zu", BLOCK_ALIGN);

    for (int i = 0; i < NUM_INPUTS; i++) {
        const LC(_input_info) *in = &input_table[i];
        if (!check(shape_ok(in->rank, in->shape) && (in->dtype == 0 || in->dtype == 1),
                   "input %s: bad dtype/rank/shape", in->name))
            fatal("cannot continue with a broken input table");
        int64_t bytes = 4 * numel(in->rank, in->shape);
        if (in->grad_offset >= 0) {
            check(in->dtype == 0, "input %s: an i32 input cannot want a gradient", in->name);
            check(in->grad_offset + bytes <= GRADS_BYTES,
                  "input %s: grad offset %" PRId64 " + %" PRId64 " outside grads (%" PRId64 ")", in->name,
                  in->grad_offset, bytes, GRADS_BYTES);
            grad_ranges[ngrad_ranges++] = (range){in->name, in->grad_offset, in->grad_offset + bytes};
        }
    }
    check_disjoint("grads", grad_ranges, ngrad_ranges);
}

/* ------------------------------------------------------------ write checks */

static void check_grads_written(void) {
    /* Inside each gradient: every float overwritten and finite. */
    for (int r = 0; r < ngrad_ranges; r++) {
        int64_t bad = 0, nonfinite = 0, first = -1;
        for (int64_t o = grad_ranges[r].lo; o < grad_ranges[r].hi; o += 4) {
            uint32_t bits;
            float v;
            memcpy(&bits, grads + o, 4);
            memcpy(&v, grads + o, 4);
            if (bits == SENTINEL) {
                if (first < 0)
                    first = (o - grad_ranges[r].lo) / 4;
                bad++;
            } else if (!isfinite(v)) {
                nonfinite++;
            }
        }
        check(bad == 0, "grad of %s: %" PRId64 " elements not written by backward (first: %" PRId64 ")",
              grad_ranges[r].name, bad, first);
        check(nonfinite == 0, "grad of %s: %" PRId64 " non-finite elements", grad_ranges[r].name, nonfinite);
    }
    /* Outside them: untouched (but for a checked build's guard at the end,
     * which backward sets). */
    int64_t touched = 0, first = -1;
    for (int64_t o = 0; o < GRADS_BYTES - GRADS_GUARD; o++) {
        bool inside = false;
        for (int r = 0; r < ngrad_ranges && !inside; r++)
            inside = o >= grad_ranges[r].lo && o < grad_ranges[r].hi;
        if (!inside && !is_pattern_byte(grads, o, SENTINEL)) {
            if (first < 0)
                first = o;
            touched++;
        }
    }
    check(touched == 0,
          "backward wrote %" PRId64 " bytes of the grads block outside every gradient (first at %" PRId64 ")", touched,
          first);
}

static void check_unchanged(void) {
    for (int i = 0; i < NUM_PARAMS; i++) {
        const LC(_param_info) *p = &param_table[i];
        if (p->is_buffer)
            continue; /* running statistics may legitimately change in forward */
        int64_t bytes = param_bytes(p);
        check(memcmp(params + p->offset, params_before + p->offset, (size_t)bytes) == 0,
              "forward/backward modified param %s", p->name);
    }
    for (int i = 0; i < NUM_INPUTS; i++)
        check(memcmp(input_data[i], input_before[i], (size_t)input_bytes[i]) == 0, "forward/backward modified input %s",
              input_table[i].name);
}

/* ------------------------------------------------------------ finite differences */

static int ncoords = 12;
static double loss0; /* forward's loss at the unperturbed point */

/* Does analytic a match numeric n obtained with step h? The loss is an f32
 * computed by the generated code, so (L+ - L-) carries rounding noise of a few
 * ulp of |L|; divided by h it gives the absolute floor. Otherwise relative
 * error |a-n| / max(1e-2, |a|+|n|) < 2e-2. */
static bool close_enough(double a, double n, double h, double *err) {
    double diff = fabs(a - n);
    double rel = diff / fmax(1e-2, fabs(a) + fabs(n));
    double noise = 1e-6 + 8.0 * FLT_EPSILON * fmax(fabs(loss0), 1e-3) / h;
    *err = rel;
    return rel < 2e-2 || diff <= noise;
}

/* Compare one coordinate. Central differences with eps = 1e-2 (scaled by the
 * value's magnitude). A mismatch may come from a ReLU kink inside [x-eps,
 * x+eps]: then retry with eps = 1e-3, and finally accept a one-sided difference
 * on either side (the side without the kink is exact up to O(eps)). Only when
 * all of these disagree is it counted as a failure. */
static bool fd_check(float *x, double analytic, double *numeric, double *err, int *attempts) {
    static const double eps_list[] = {1e-2, 1e-3};
    const int neps = (int)(sizeof eps_list / sizeof eps_list[0]);
    const float orig = *x;
    for (int k = 0; k < neps; k++) {
        *attempts = k + 1;
        double eps = eps_list[k] * fmax(1.0, fabs((double)orig));
        float xp = (float)((double)orig + eps), xm = (float)((double)orig - eps);
        *x = xp;
        double lp = run_forward_loss();
        *x = xm;
        double lm = run_forward_loss();
        *x = orig;
        double h = (double)xp - (double)xm;
        *numeric = (lp - lm) / h;
        if (close_enough(analytic, *numeric, h, err))
            return true;
        if (k == neps - 1) {
            double hr = (double)xp - (double)orig, hl = (double)orig - (double)xm;
            double right = (lp - loss0) / hr, left = (loss0 - lm) / hl, e2;
            if (close_enough(analytic, right, hr, &e2) || close_enough(analytic, left, hl, &e2)) {
                *attempts = k + 2;
                return true;
            }
        }
    }
    return false;
}

/* Check up to ncoords coordinates of one tensor; x points at its values, g at
 * its analytic gradient (a copy, from the first backward). */
static void check_tensor(const char *kind, const char *name, int32_t rank, const int64_t *shape, float *x,
                         const float *g) {
    int64_t n = numel(rank, shape);
    int64_t m = n <= ncoords ? n : ncoords;
    int bad = 0, retried = 0;
    double worst = 0;
    int64_t *chosen = malloc(sizeof *chosen * (size_t)(m > 0 ? m : 1));
    if (!chosen)
        fatal("out of memory");
    for (int64_t c = 0; c < m; c++) {
        int64_t idx = c;
        if (n > ncoords) { /* distinct random coordinates */
            bool dup;
            do {
                idx = (int64_t)(rng_next() % (uint64_t)n);
                dup = false;
                for (int64_t j = 0; j < c; j++)
                    dup = dup || chosen[j] == idx;
            } while (dup);
        }
        chosen[c] = idx;
        double numeric = 0, err = 0;
        int attempts = 0;
        bool ok = fd_check(&x[idx], g[idx], &numeric, &err, &attempts);
        if (ok && attempts > 1)
            retried++;
        if (ok && attempts == 1 && err > worst)
            worst = err;
        if (!check(ok, "%s %s %s, element %" PRId64 ": analytic %.6e, numeric %.6e (rel err %.2e)", kind, name,
                   shape_str(rank, shape), idx, g[idx], numeric, err))
            bad++;
        else if (verbose)
            printf("    %s[%" PRId64 "] analytic %.6e numeric %.6e%s\n", name, idx, g[idx], numeric,
                   attempts > 1 ? " (retried)" : "");
    }
    free(chosen);
    printf("%s %-5s %-24s %-16s %" PRId64 "/%" PRId64 " coordinates, worst rel err %.1e%s\n", bad ? "FAIL" : "ok  ",
           kind, name, shape_str(rank, shape), m - bad, m, worst, retried ? " (some retried near a kink)" : "");
}

/* ------------------------------------------------------------ main */

static void usage(void) {
    fprintf(stderr, "usage: gradcheck [--seed N] [--coords K] [--verbose]\n");
    exit(2);
}

int main(int argc, char **argv) {
    uint64_t seed = 1234;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--coords") && i + 1 < argc)
            ncoords = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
            verbose = true;
        else
            usage();
    }
    if (ncoords < 1)
        usage();
    rng_state = seed;

    int ntrain = 0, ninputgrads = 0;
    for (int i = 0; i < NUM_PARAMS; i++)
        ntrain += param_table[i].grad_offset >= 0;
    for (int i = 0; i < NUM_INPUTS; i++)
        ninputgrads += input_table[i].grad_offset >= 0;
    printf("gradcheck %s: %d params (%d trainable), %d inputs (%d want grads); bytes: params %" PRId64
           ", grads %" PRId64 ", train arena %" PRId64 ", infer arena %" PRId64 "\n",
           GC_STR(FROST_PREFIX), NUM_PARAMS, ntrain, NUM_INPUTS, ninputgrads, PARAMS_BYTES, GRADS_BYTES,
           TRAIN_ARENA_BYTES, INFER_ARENA_BYTES);

    check_tables();

    params = alloc_block(PARAMS_BYTES);
    params_before = alloc_block(PARAMS_BYTES);
    grads = alloc_block(GRADS_BYTES);
    grads_first = alloc_block(GRADS_BYTES);
    train_arena = alloc_block(TRAIN_ARENA_BYTES);
    infer_arena = alloc_block(INFER_ARENA_BYTES);

    /* Deterministic init: same seed, same bytes (padding zeroed beforehand). */
    memset(params, 0, (size_t)PARAMS_BYTES);
    memset(params_before, 0, (size_t)PARAMS_BYTES);
    LC(_init)(params, seed);
    LC(_init)(params_before, seed);
    check(memcmp(params, params_before, (size_t)PARAMS_BYTES) == 0, "init is not deterministic");
    for (int i = 0; i < NUM_PARAMS; i++) {
        const LC(_param_info) *p = &param_table[i];
        if (p->dtype != 0)
            continue; /* integer buffers (counters) */
        const float *v = (const float *)(params + p->offset);
        int64_t n = numel(p->rank, p->shape), bad = 0;
        for (int64_t k = 0; k < n; k++)
            bad += !isfinite(v[k]);
        check(bad == 0, "init left %" PRId64 " non-finite values in %s", bad, p->name);
    }
    /* A fresh LoRA adapter's B is zero (it leaves the layer unchanged), which
     * would make d A and the adapter's share of d x zero whatever the code
     * computes: give each B random values, as training would. */
    for (int i = 0; i < NUM_PARAMS; i++) {
        const LC(_param_info) *p = &param_table[i];
        const char *tail = strstr(p->name, "lora_B.weight");
        if (p->dtype != 0 || !tail || tail[strlen("lora_B.weight")] != '\0')
            continue;
        float *v = (float *)(params + p->offset);
        for (int64_t k = 0; k < numel(p->rank, p->shape); k++)
            v[k] = (float)(rng_uniform() - 0.5);
        memcpy(params_before + p->offset, v, (size_t)param_bytes(p));
    }

    for (int i = 0; i < NUM_INPUTS; i++) {
        const LC(_input_info) *in = &input_table[i];
        int64_t n = numel(in->rank, in->shape);
        input_bytes[i] = 4 * n;
        /* 4 bytes past an aligned address: inputs need no particular alignment */
        input_data[i] = (char *)alloc_block(input_bytes[i] + 4) + 4;
        input_before[i] = alloc_block(input_bytes[i]);
        if (in->dtype == 0) {
            float *v = input_data[i];
            for (int64_t k = 0; k < n; k++)
                v[k] = (float)(2.0 * rng_uniform() - 1.0);
        } else {
            int32_t *v = input_data[i];
            for (int64_t k = 0; k < n; k++)
                v[k] = (int32_t)((k * 7 + 3) % 2);
        }
        memcpy(input_before[i], input_data[i], (size_t)input_bytes[i]);
    }
    bind_io();

    /* First training step over NaN garbage. */
    double loss_fwd = run_train(ARENA_NAN, false);
    printf("loss (forward) = %.9g\n", loss_fwd);
    check(isfinite(loss_fwd), "forward loss is not finite: %g", loss_fwd);
    check_unchanged();
    check_grads_written();
    memcpy(grads_first, grads, (size_t)GRADS_BYTES);

    /* Inference agrees with forward. */
    /* Inference agrees with forward unless the model has training-mode state
     * (batch norm on batch statistics, dropout): then it only has to run. */
    double loss_infer = run_infer();
    if (has_buffers())
        check(isfinite(loss_infer), "infer loss is not finite: %g", loss_infer);
    else
        check(fabs(loss_infer - loss_fwd) <= 1e-5 * fabs(loss_fwd) + 1e-30,
              "infer loss %.9g differs from forward loss %.9g", loss_infer, loss_fwd);
    loss0 = run_forward_loss();
    check(memcmp(&loss0, &loss_fwd, sizeof loss0) == 0, "forward alone gives loss %.9g, with backward %.9g", loss0,
          loss_fwd);

    /* Second training step over finite garbage: bit-identical results. */
    double loss_again = run_train(ARENA_JUNK, false);
    check(memcmp(&loss_again, &loss_fwd, sizeof loss_fwd) == 0, "second forward gives loss %.9g, first gave %.9g",
          loss_again, loss_fwd);
    check(memcmp(grads, grads_first, (size_t)GRADS_BYTES) == 0,
          "second forward+backward gives different gradients (reads of unwritten memory?)");

    /* Backward works from what forward saved, not from the caller's inputs. */
    run_train(ARENA_NAN, true);
    check(memcmp(grads, grads_first, (size_t)GRADS_BYTES) == 0,
          "gradients change when the inputs are overwritten between forward and backward");

    /* NULL output fields are skipped, and backward does not need them. */
    {
        outputs_t none;
        float *nulls[NOUTPUTS];
        for (size_t i = 0; i < NOUTPUTS; i++)
            nulls[i] = NULL;
        memcpy(&none, nulls, sizeof none);
        restore_buffers();
        fill_u32(train_arena, TRAIN_ARENA_BYTES, ARENA_NAN);
        fill_u32(grads, GRADS_BYTES, SENTINEL);
        int rc = LC(_forward)(params, &inputs, &none, train_arena);
        check(rc == 0, "forward with NULL outputs returned %d", rc);
        rc = LC(_backward)(params, grads, train_arena);
        check(rc == 0, "backward after forward with NULL outputs returned %d", rc);
        check(memcmp(grads, grads_first, (size_t)GRADS_BYTES) == 0, "gradients differ when forward's outputs are NULL");
        fill_u32(infer_arena, INFER_ARENA_BYTES, ARENA_NAN);
        rc = LC(_infer)(params, &inputs, &none, infer_arena);
        check(rc == 0, "infer with NULL outputs returned %d", rc);
    }

    /* A label outside [0, classes) is reported, not read past (in v1 every
     * i32 input is a class label). */
    for (int i = 0; i < NUM_INPUTS; i++) {
        if (input_table[i].dtype != 1)
            continue;
        int32_t *v = input_data[i], saved = v[0];
        v[0] = -1;
        fill_u32(infer_arena, INFER_ARENA_BYTES, ARENA_NAN);
        int rc = LC(_infer)(params, &inputs, &outputs, infer_arena);
        check(rc != 0, "infer accepted label -1 in input %s", input_table[i].name);
        fill_u32(train_arena, TRAIN_ARENA_BYTES, ARENA_NAN);
        rc = LC(_forward)(params, &inputs, &outputs, train_arena);
        check(rc != 0, "forward accepted label -1 in input %s", input_table[i].name);
        v[0] = saved;
    }

    /* Finite differences, against the first step's gradients. */
    for (int i = 0; i < NUM_PARAMS; i++) {
        const LC(_param_info) *p = &param_table[i];
        if (p->grad_offset < 0)
            continue;
        check_tensor("param", p->name, p->rank, p->shape, (float *)(params + p->offset),
                     (const float *)(grads_first + p->grad_offset));
    }
    for (int i = 0; i < NUM_INPUTS; i++) {
        const LC(_input_info) *in = &input_table[i];
        if (in->grad_offset < 0 || in->dtype != 0)
            continue;
        check_tensor("input", in->name, in->rank, in->shape, input_data[i],
                     (const float *)(grads_first + in->grad_offset));
    }
    if (ntrain + ninputgrads == 0)
        printf("nothing trainable and no input gradients: only the structural checks apply\n");

    printf("%d passed, %d failed\n", npassed, nfailed);
    return nfailed ? 1 : 0;
}
