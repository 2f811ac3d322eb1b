/* misuse.c: the guard rails of the generated entry points. Every way a caller
 * can get the protocol or the blocks wrong that the object can see at
 * negligible cost must give its error code, never a crash or gradients
 * computed from garbage:
 *   - backward with no forward, after a failed one, twice after one, after an
 *     infer on the same arena: P_ERR_STATE;
 *   - a class label out of range: P_ERR_LABEL, from the last part of a long
 *     forward too (tests/e2e/models/deep.frost);
 *   - a NULL block, inputs struct or input pointer: P_ERR_NULL;
 *   - a block off P_ALIGN or an input off its element's alignment: P_ERR_ALIGN;
 *   - a NULL outputs struct is fine (nothing is written);
 *   - P_opt_init zeroes the optimizer state.
 * Generic over the model, like poison.c:
 *
 *   cc -std=c11 -O1 -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P \
 *      tests/e2e/misuse.c P.o -lopenblas -lm
 *
 * (tests/e2e/run_gradcheck.sh with FROST_DRIVER=misuse). Ends with
 * "N passed, M failed".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#if !defined(FROST_PREFIX) || !defined(FROST_PREFIX_UPPER)
#error "compile with -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P"
#endif
#define MU_CAT_(a, b) a##b
#define MU_CAT(a, b) MU_CAT_(a, b)
#define LC(suffix) MU_CAT(FROST_PREFIX, suffix)
#define UC(suffix) MU_CAT(FROST_PREFIX_UPPER, suffix)

#define NUM_INPUTS UC(_NUM_INPUTS)
#define BLOCK_ALIGN ((size_t)UC(_ALIGN))
#define PARAMS_BYTES ((int64_t)UC(_PARAMS_BYTES))
#define GRADS_BYTES ((int64_t)UC(_GRADS_BYTES))
#define TRAIN_ARENA_BYTES ((int64_t)UC(_TRAIN_ARENA_BYTES))
#define OPT_STATE_BYTES ((int64_t)UC(_OPT_STATE_BYTES))
#define ERR_NULL UC(_ERR_NULL)
#define ERR_ALIGN UC(_ERR_ALIGN)
#define ERR_STATE UC(_ERR_STATE)
typedef LC(_inputs) inputs_t;
typedef LC(_outputs) outputs_t;
#define NINPUTS_ALLOC (NUM_INPUTS > 0 ? NUM_INPUTS : 1)
_Static_assert(sizeof(inputs_t) == (size_t)NINPUTS_ALLOC * sizeof(void *), "inputs struct: pointers in table order");

/* one spare alignment unit, so that block + 4 stays inside the allocation */
static unsigned char *alloc_block(int64_t bytes) { return check_block(bytes, BLOCK_ALIGN, BLOCK_ALIGN); }

int main(void) {
    unsigned char *params = alloc_block(PARAMS_BYTES), *grads = alloc_block(GRADS_BYTES);
    unsigned char *arena = alloc_block(TRAIN_ARENA_BYTES), *opt = alloc_block(OPT_STATE_BYTES);
    LC(_init)(params, 1);
    inputs_t in;
    const void **field = (const void **)&in;
    void *data[NINPUTS_ALLOC];
    for (int k = 0; k < NUM_INPUTS; k++) {
        int64_t n = 1;
        for (int d = 0; d < LC(_input_table)[k].rank; d++)
            n *= LC(_input_table)[k].shape[d];
        data[k] = alloc_block(4 * n + 4); /* zeros: label 0 is a valid class */
        field[k] = data[k];
    }
    float loss = 0;
    outputs_t out;
    memset(&out, 0, sizeof out);
    *(float **)&out = &loss;

    int rc = LC(_backward)(params, grads, arena);
    check(rc == ERR_STATE, "backward before any forward returned %d, not ERR_STATE", rc);
    rc = LC(_forward)(params, &in, &out, arena);
    check(rc == 0, "forward returned %d", rc);
    rc = LC(_backward)(params, grads, arena);
    check(rc == 0, "backward after forward returned %d", rc);
    rc = LC(_backward)(params, grads, arena);
    check(rc == ERR_STATE, "a second backward after one forward returned %d, not ERR_STATE", rc);
    rc = LC(_forward)(params, &in, &out, arena);
    check(rc == 0, "forward returned %d", rc);
    rc = LC(_infer)(params, &in, &out, arena);
    check(rc == 0, "infer returned %d", rc);
    rc = LC(_backward)(params, grads, arena);
    check(rc == ERR_STATE, "backward after forward then infer returned %d, not ERR_STATE", rc);

    rc = LC(_forward)(params, &in, NULL, arena);
    check(rc == 0, "forward with a NULL outputs struct returned %d", rc);
    rc = LC(_backward)(params, grads, arena);
    check(rc == 0, "backward after it returned %d", rc);

    rc = LC(_forward)(params, &in, &out, NULL);
    check(rc == ERR_NULL, "forward with a NULL arena returned %d, not ERR_NULL", rc);
    rc = LC(_forward)(params, &in, &out, arena + 8);
    check(rc == ERR_ALIGN, "forward with a misaligned arena returned %d, not ERR_ALIGN", rc);
    rc = LC(_infer)(params, NULL, &out, arena);
    check(NUM_INPUTS == 0 || rc == ERR_NULL, "infer with a NULL inputs struct returned %d, not ERR_NULL", rc);
    if (PARAMS_BYTES > 0) {
        rc = LC(_forward)(NULL, &in, &out, arena);
        check(rc == ERR_NULL, "forward with NULL params returned %d, not ERR_NULL", rc);
        rc = LC(_infer)(params + 16, &in, &out, arena);
        check(rc == ERR_ALIGN, "infer with misaligned params returned %d, not ERR_ALIGN", rc);
    }
    for (int k = 0; k < NUM_INPUTS; k++) {
        field[k] = NULL;
        rc = LC(_forward)(params, &in, &out, arena);
        check(rc == ERR_NULL, "forward with input '%s' NULL returned %d, not ERR_NULL", LC(_input_table)[k].name, rc);
        field[k] = (unsigned char *)data[k] + 2;
        rc = LC(_forward)(params, &in, &out, arena);
        check(rc == ERR_ALIGN, "forward with input '%s' off its alignment returned %d, not ERR_ALIGN",
              LC(_input_table)[k].name, rc);
        field[k] = data[k];
    }
    /* A kernel's error (a label out of range; the loss comes last, in the
     * last part of a long forward) is the entry point's, and the forward
     * leaves nothing for backward. */
    for (int k = 0; k < NUM_INPUTS; k++) {
        if (LC(_input_table)[k].dtype != 1)
            continue;
        ((int32_t *)data[k])[0] = 1 << 30;
        rc = LC(_forward)(params, &in, &out, arena);
        check(rc == UC(_ERR_LABEL), "forward with label %d in '%s' returned %d, not ERR_LABEL", 1 << 30,
              LC(_input_table)[k].name, rc);
        ((int32_t *)data[k])[0] = 0;
    }
    rc = LC(_backward)(params, grads, arena);
    check(rc == ERR_STATE, "backward after failed forwards returned %d, not ERR_STATE", rc);
    rc = LC(_forward)(params, &in, &out, arena);
    check(rc == 0, "forward returned %d", rc);
    if (GRADS_BYTES > 0) {
        rc = LC(_backward)(params, NULL, arena);
        check(rc == ERR_NULL, "backward with NULL grads returned %d, not ERR_NULL", rc);
        rc = LC(_backward)(params, grads + 32, arena);
        check(rc == ERR_ALIGN, "backward with misaligned grads returned %d, not ERR_ALIGN", rc);
    }
    rc = LC(_backward)(params, grads, arena);
    check(rc == 0, "backward after the refused ones returned %d (a refused call must not consume the forward)", rc);

    memset(opt, 0xA5, (size_t)OPT_STATE_BYTES);
    LC(_opt_init)(opt);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < OPT_STATE_BYTES; i++)
        nonzero += opt[i] != 0;
    check(nonzero == 0, "opt_init left %lld of %lld bytes non-zero", (long long)nonzero, (long long)OPT_STATE_BYTES);
    LC(_opt_init)(NULL);

    for (int k = 0; k < NUM_INPUTS; k++)
        free(data[k]);
    free(params), free(grads), free(arena), free(opt);
    printf("%d passed, %d failed\n", npassed, nfailed);
    return nfailed ? 1 : 0;
}
