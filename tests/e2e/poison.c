/* poison.c: a run-time check of the arena plan of one generated model under
 * one freeze configuration.
 *
 * The header lists the train-arena byte ranges that forward leaves for
 * backward (P_kept_ranges, docs/abi.md): the residuals. Everything else in the
 * arena is, by the plan, dead between P_forward and P_backward. This driver
 * takes the plan at its word: after forward it overwrites every dead byte
 * with poison, fills the whole grads block with poison too, scribbles over the
 * caller's inputs, runs backward, and requires every gradient to be
 * bit-identical to a run without any of that. A residual missing from the plan
 * (or a plan that lets something overwrite one) shows up as NaN or changed
 * gradients; a gradient element backward forgets to write shows up as poison.
 *
 * Poisons: 0xFF bytes (a NaN with all payload bits set), the quiet-NaN float
 * 0x7FC00000, and the finite 1e30f (NaN can vanish through a comparison such
 * as ReLU's `x > 0`; a huge finite value does not).
 *
 * Compiled once per (model, configuration) against the generated header:
 *
 *   cc -std=c11 -O1 -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P \
 *      poison.c P.o -lopenblas -lm
 *
 * (tests/e2e/run_poison.sh does this.) Inputs are filled as in gradcheck.c:
 * f32 uniform(-1, 1), i32 the class labels 1, 0, 1, 0, ... The params block is
 * restored from the state init left before every forward, so that state
 * forward updates (running statistics, RNG counters) is the same in each run.
 * Prints "N passed, M failed" last; exit 1 on any failure.
 */
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

#define PZ_CAT_(a, b) a##b
#define PZ_CAT(a, b) PZ_CAT_(a, b)
#define PZ_STR_(a) #a
#define PZ_STR(a) PZ_STR_(a)
#define LC(suffix) PZ_CAT(FROST_PREFIX, suffix)
#define UC(suffix) PZ_CAT(FROST_PREFIX_UPPER, suffix)

#define NUM_PARAMS UC(_NUM_PARAMS)
#define NUM_INPUTS UC(_NUM_INPUTS)
#define NUM_KEPT UC(_NUM_KEPT_RANGES)
#define BLOCK_ALIGN ((size_t)UC(_ALIGN))
#define PARAMS_BYTES ((int64_t)UC(_PARAMS_BYTES))
#define GRADS_BYTES ((int64_t)UC(_GRADS_BYTES))
#define TRAIN_ARENA_BYTES ((int64_t)UC(_TRAIN_ARENA_BYTES))
#define RESIDUAL_BYTES ((int64_t)UC(_RESIDUAL_BYTES))
#define param_table LC(_params)
#define input_table LC(_input_table)
#define kept_ranges LC(_kept_ranges)
typedef LC(_inputs) inputs_t;
typedef LC(_outputs) outputs_t;

#define NINPUTS_ALLOC (NUM_INPUTS > 0 ? NUM_INPUTS : 1)
#define NPARAMS_ALLOC (NUM_PARAMS > 0 ? NUM_PARAMS : 1)
#define NOUTPUTS (sizeof(outputs_t) / sizeof(float *))
_Static_assert(sizeof(inputs_t) == (size_t)NINPUTS_ALLOC * sizeof(void *), "inputs struct: pointers in table order");
_Static_assert(sizeof(kept_ranges) / sizeof(kept_ranges[0]) == (NUM_KEPT > 0 ? NUM_KEPT : 1), "kept range table size");


static void *alloc_block(int64_t bytes) {
    size_t n = bytes > 0 ? (size_t)bytes : 1;
    n = (n + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    void *p = aligned_alloc(BLOCK_ALIGN, n);
    if (!p) {
        printf("FAIL: out of memory (%zu bytes)\n%d passed, %d failed\n", n, npassed, nfailed + 1);
        exit(1);
    }
    return p;
}

/* Byte i of the block gets byte i % 4 of the little-endian 32-bit pattern. */
static void fill_u32(void *p, int64_t lo, int64_t hi, uint32_t pattern) {
    unsigned char *b = p;
    for (int64_t i = lo; i < hi; i++)
        b[i] = (unsigned char)(pattern >> (8 * (i % 4)));
}

static int64_t numel(int32_t rank, const int64_t *shape) {
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++)
        n *= shape[i];
    return n;
}

static uint64_t rng_state = 0x5eedULL;
static double rng_uniform(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static unsigned char *params, *params_init, *grads, *grads_ref, *arena;
static void *input_data[NINPUTS_ALLOC], *input_saved[NINPUTS_ALLOC];
static int64_t input_bytes[NINPUTS_ALLOC];
static inputs_t inputs;
static outputs_t outputs;
static float loss_value;

/* Gradient byte ranges in the grads block (f32 params and inputs). */
typedef struct {
    const char *name;
    int64_t lo, hi;
} range;
static range grad_ranges[NPARAMS_ALLOC + NINPUTS_ALLOC];
static int ngrad;

static void forward(uint32_t arena_fill) {
    memcpy(params, params_init, (size_t)PARAMS_BYTES);
    fill_u32(arena, 0, TRAIN_ARENA_BYTES, arena_fill);
    loss_value = NAN;
    int rc = LC(_forward)(params, &inputs, &outputs, arena);
    check(rc == 0, "forward returned %d", rc);
}

static void backward(void) {
    int rc = LC(_backward)(params, grads, arena);
    check(rc == 0, "backward returned %d", rc);
}

/* Overwrite every arena byte outside the kept ranges; returns how many. */
static int64_t poison_dead(uint32_t pattern) {
    int64_t at = 0, poisoned = 0;
    for (int k = 0; k < NUM_KEPT; k++) {
        fill_u32(arena, at, kept_ranges[k][0], pattern);
        poisoned += kept_ranges[k][0] - at;
        at = kept_ranges[k][0] + kept_ranges[k][1];
    }
    fill_u32(arena, at, TRAIN_ARENA_BYTES, pattern);
    return poisoned + (TRAIN_ARENA_BYTES - at);
}

/* The kept-range table itself: sorted, disjoint, inside the arena, aligned,
 * no more than the residual bytes the header announces. */
static void check_kept_table(void) {
    int64_t total = 0, end = 0;
    for (int k = 0; k < NUM_KEPT; k++) {
        int64_t off = kept_ranges[k][0], bytes = kept_ranges[k][1];
        check(bytes > 0, "kept range %d has %" PRId64 " bytes", k, bytes);
        check(off >= end, "kept range %d at %" PRId64 " is not after the previous one (ends at %" PRId64 ")", k, off,
              end);
        check(off % (int64_t)BLOCK_ALIGN == 0, "kept range %d at %" PRId64 " is not aligned", k, off);
        check(off + bytes <= TRAIN_ARENA_BYTES,
              "kept range %d [%" PRId64 ", +%" PRId64 ") leaves the arena (%" PRId64 ")", k, off, bytes,
              TRAIN_ARENA_BYTES);
        total += bytes;
        end = off + bytes;
    }
    check(total <= RESIDUAL_BYTES, "kept ranges total %" PRId64 " bytes, more than the %" PRId64 " residual bytes",
          total, RESIDUAL_BYTES);
    check(RESIDUAL_BYTES - total < (int64_t)BLOCK_ALIGN * (NUM_KEPT > 0 ? NUM_KEPT : 1),
          "kept ranges total %" PRId64 " bytes, residual bytes %" PRId64 ": more than alignment padding apart", total,
          RESIDUAL_BYTES);
}

int main(void) {
    printf("poison %s: train arena %" PRId64 " bytes, %d kept ranges (residuals %" PRId64 " bytes), grads %" PRId64
           " bytes\n",
           PZ_STR(FROST_PREFIX), TRAIN_ARENA_BYTES, NUM_KEPT, RESIDUAL_BYTES, GRADS_BYTES);
    check_kept_table();

    params = alloc_block(PARAMS_BYTES);
    params_init = alloc_block(PARAMS_BYTES);
    grads = alloc_block(GRADS_BYTES);
    grads_ref = alloc_block(GRADS_BYTES);
    arena = alloc_block(TRAIN_ARENA_BYTES);
    memset(params, 0, (size_t)PARAMS_BYTES);
    LC(_init)(params, 42);
    memcpy(params_init, params, (size_t)PARAMS_BYTES);

    for (int i = 0; i < NUM_PARAMS; i++)
        if (param_table[i].grad_offset >= 0)
            grad_ranges[ngrad++] =
                (range){param_table[i].name, param_table[i].grad_offset,
                        param_table[i].grad_offset + 4 * numel(param_table[i].rank, param_table[i].shape)};
    const void *ptrs[NINPUTS_ALLOC] = {NULL};
    for (int i = 0; i < NUM_INPUTS; i++) {
        int64_t n = numel(input_table[i].rank, input_table[i].shape);
        input_bytes[i] = 4 * n;
        input_data[i] = alloc_block(input_bytes[i]);
        input_saved[i] = alloc_block(input_bytes[i]);
        if (input_table[i].dtype == 0)
            for (int64_t k = 0; k < n; k++)
                ((float *)input_data[i])[k] = (float)(2.0 * rng_uniform() - 1.0);
        else
            for (int64_t k = 0; k < n; k++)
                ((int32_t *)input_data[i])[k] = (int32_t)((k * 7 + 3) % 2);
        memcpy(input_saved[i], input_data[i], (size_t)input_bytes[i]);
        ptrs[i] = input_data[i];
        if (input_table[i].grad_offset >= 0)
            grad_ranges[ngrad++] =
                (range){input_table[i].name, input_table[i].grad_offset, input_table[i].grad_offset + input_bytes[i]};
    }
    memcpy(&inputs, ptrs, sizeof inputs);
    float *outs[NOUTPUTS];
    for (size_t i = 0; i < NOUTPUTS; i++)
        outs[i] = NULL;
    outs[0] = &loss_value;
    memcpy(&outputs, outs, sizeof outputs);

    /* Reference: nothing poisoned, grads zeroed. */
    forward(0);
    float loss_ref = loss_value;
    memset(grads, 0, (size_t)(GRADS_BYTES > 0 ? GRADS_BYTES : 1));
    backward();
    memcpy(grads_ref, grads, (size_t)(GRADS_BYTES > 0 ? GRADS_BYTES : 1));
    printf("loss %.9g; %d gradients\n", loss_ref, ngrad);
    check(isfinite(loss_ref), "loss is not finite: %g", loss_ref);

    static const struct {
        const char *name;
        uint32_t pattern;
    } poisons[] = {{"0xFF bytes", 0xFFFFFFFFu}, {"quiet NaN", 0x7FC00000u}, {"1e30f", 0x7149F2CAu}};
    for (size_t k = 0; k < sizeof poisons / sizeof poisons[0]; k++) {
        uint32_t pattern = poisons[k].pattern;
        forward(0x5A5A5A5Au); /* a different arena before forward, too */
        check(memcmp(&loss_value, &loss_ref, sizeof loss_ref) == 0, "%s: forward's loss %.9g differs from %.9g",
              poisons[k].name, loss_value, loss_ref);
        int64_t dead = poison_dead(pattern);
        fill_u32(grads, 0, GRADS_BYTES, pattern);
        for (int i = 0; i < NUM_INPUTS; i++) /* backward must not read the inputs either */
            fill_u32(input_data[i], 0, input_bytes[i], input_table[i].dtype == 0 ? pattern : 0x7FFFFFFFu);
        backward();
        for (int i = 0; i < NUM_INPUTS; i++)
            memcpy(input_data[i], input_saved[i], (size_t)input_bytes[i]);
        for (int g = 0; g < ngrad; g++) {
            const range *r = &grad_ranges[g];
            int64_t diff = 0, first = -1;
            for (int64_t o = r->lo; o < r->hi; o += 4)
                if (memcmp(grads + o, grads_ref + o, 4) != 0) {
                    if (first < 0)
                        first = (o - r->lo) / 4;
                    diff++;
                }
            check(diff == 0,
                  "%s: gradient of %s differs from the unpoisoned run in %" PRId64 " of %" PRId64
                  " elements (first: %" PRId64 ")",
                  poisons[k].name, r->name, diff, (r->hi - r->lo) / 4, first);
        }
        printf("%s: %" PRId64 " dead arena bytes and %" PRId64 " grads bytes poisoned\n", poisons[k].name, dead,
               GRADS_BYTES);
    }
    if (ngrad == 0)
        printf("no gradients: only forward and the table are checked\n");
    printf("%d passed, %d failed\n", npassed, nfailed);
    /* Freed, not left to exit: a block only copied from (params_init of a
     * model without params, PARAMS_BYTES 0) may have no live pointer left
     * after optimisation, and LeakSanitizer would report it. */
    for (int i = 0; i < NUM_INPUTS; i++)
        free(input_data[i]), free(input_saved[i]);
    free(params), free(params_init), free(grads), free(grads_ref), free(arena);
    return nfailed ? 1 : 0;
}
