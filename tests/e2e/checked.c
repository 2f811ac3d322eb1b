/* checked.c: what an object compiled with `frost compile --checked` catches
 * (docs/abi.md, "Checked builds"). Generic over the model, like misuse.c:
 *
 *   cc -std=c11 -O1 -DFROST_CHECKED=1 -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P \
 *      tests/e2e/checked.c P.o -lopenblas -lm
 *
 * (tests/e2e/run_gradcheck.sh with FROST_DRIVER=checked and --checked among
 * the options). Every block is allocated at exactly the header's size. A
 * block "too small" is played by treating its tail as somebody else's memory
 * that changes between calls, which is what frost can see of a short
 * allocation: memory past the end of a block is not frost's to watch while
 * no call runs, and a call that writes there has already done the damage.
 *   - a clean run: every entry point returns 0, P_last_error is NULL;
 *   - a NaN, +Inf or -Inf in an f32 input or parameter: P_ERR_NONFINITE from
 *     infer and forward, P_last_error naming the step's node and the buffer;
 *   - the arena's tail (less than a guard, and more) or a residual's guard
 *     changed between forward and backward: P_ERR_GUARD from backward, naming
 *     the end of the arena or the buffer;
 *   - the params block's tail changed after P_init: P_ERR_GUARD from infer
 *     and forward;
 *   - the grads or the optimizer state block's tail changed: P_update
 *     refuses (it returns void: a line on stderr, parameters untouched).
 * Ends with "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#if !defined(FROST_PREFIX) || !defined(FROST_PREFIX_UPPER) || !defined(FROST_CHECKED)
#error "compile with -DFROST_CHECKED=1 -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P"
#endif
#define CK_CAT_(a, b) a##b
#define CK_CAT(a, b) CK_CAT_(a, b)
#define LC(suffix) CK_CAT(FROST_PREFIX, suffix)
#define UC(suffix) CK_CAT(FROST_PREFIX_UPPER, suffix)

#define NUM_INPUTS UC(_NUM_INPUTS)
#define NUM_PARAMS UC(_NUM_PARAMS)
#define BLOCK_ALIGN ((size_t)UC(_ALIGN))
#define GUARD ((int64_t)UC(_GUARD_BYTES))
#define PARAMS_BYTES ((int64_t)UC(_PARAMS_BYTES))
#define GRADS_BYTES ((int64_t)UC(_GRADS_BYTES))
#define TRAIN_ARENA_BYTES ((int64_t)UC(_TRAIN_ARENA_BYTES))
#define INFER_ARENA_BYTES ((int64_t)UC(_INFER_ARENA_BYTES))
#define OPT_STATE_BYTES ((int64_t)UC(_OPT_STATE_BYTES))
#define ERR_GUARD UC(_ERR_GUARD)
#define ERR_NONFINITE UC(_ERR_NONFINITE)
typedef LC(_inputs) inputs_t;
typedef LC(_outputs) outputs_t;
#define NINPUTS_ALLOC (NUM_INPUTS > 0 ? NUM_INPUTS : 1)
#define NOUTPUTS (sizeof(outputs_t) / sizeof(float *))

static unsigned char *alloc_block(int64_t bytes) { return check_block(bytes, 0, BLOCK_ALIGN); }

static const char *last(const void *arena) {
    const char *m = LC(_last_error)(arena);
    return m ? m : "(none)";
}

static bool has(const char *text, const char *needle) { return strstr(text, needle) != NULL; }

/* stderr of one call, for P_update, which can only report there. */
static char errbuf[16384];
static FILE *cap;
static int saved_fd = -1;
static void capture_begin(void) {
    fflush(stderr);
    cap = tmpfile();
    saved_fd = dup(2);
    if (cap && saved_fd >= 0)
        dup2(fileno(cap), 2);
}
static const char *capture_end(void) {
    fflush(stderr);
    errbuf[0] = 0;
    if (saved_fd >= 0) {
        dup2(saved_fd, 2);
        close(saved_fd);
        saved_fd = -1;
    }
    if (cap) {
        rewind(cap);
        size_t n = fread(errbuf, 1, sizeof errbuf - 1, cap);
        errbuf[n] = 0;
        fclose(cap);
        cap = NULL;
    }
    fputs(errbuf, stderr); /* still in the test's log */
    return errbuf;
}

static unsigned char *params, *grads, *arena, *iarena, *opt, *params_copy;
static inputs_t in;
static outputs_t out;
static float loss;

/* forward + backward from the parameters P_init gives; true when both return 0. */
static bool train_once(void) {
    LC(_init)(params, 7);
    return LC(_forward)(params, &in, &out, arena) == 0 && LC(_backward)(params, grads, arena) == 0;
}

int main(void) {
    params = alloc_block(PARAMS_BYTES), grads = alloc_block(GRADS_BYTES), arena = alloc_block(TRAIN_ARENA_BYTES);
    iarena = alloc_block(INFER_ARENA_BYTES), opt = alloc_block(OPT_STATE_BYTES);
    params_copy = alloc_block(PARAMS_BYTES);
    check(GUARD == 64 && PARAMS_BYTES % (int64_t)BLOCK_ALIGN == 0, "guard %lld bytes", (long long)GUARD);
    LC(_init)(params, 7);
    LC(_opt_init)(opt);

    const void **field = (const void **)&in;
    void *data[NINPUTS_ALLOC];
    int64_t count[NINPUTS_ALLOC];
    int first_f32 = -1;
    for (int k = 0; k < NUM_INPUTS; k++) {
        int64_t n = 1;
        for (int d = 0; d < LC(_input_table)[k].rank; d++)
            n *= LC(_input_table)[k].shape[d];
        count[k] = n;
        data[k] = alloc_block(4 * n);
        if (LC(_input_table)[k].dtype == 0) {
            for (int64_t i = 0; i < n; i++)
                ((float *)data[k])[i] = (float)((i * 37) % 19) / 9.5f - 1.0f;
            if (first_f32 < 0)
                first_f32 = k;
        } else {
            for (int64_t i = 0; i < n; i++)
                ((int32_t *)data[k])[i] = (int32_t)(i % 2);
        }
        field[k] = data[k];
    }
    memset(&out, 0, sizeof out);
    *(float **)&out = &loss;

    /* A clean run. */
    int rc = LC(_forward)(params, &in, &out, arena);
    check(rc == 0, "forward returned %d: %s", rc, last(arena));
    check(LC(_last_error)(arena) == NULL, "last_error after a clean forward: %s", last(arena));
    rc = LC(_backward)(params, grads, arena);
    check(rc == 0, "backward returned %d: %s", rc, last(arena));
    check(LC(_last_error)(arena) == NULL, "last_error after a clean backward: %s", last(arena));
    rc = LC(_infer)(params, &in, &out, iarena);
    check(rc == 0 && LC(_last_error)(iarena) == NULL, "infer returned %d: %s", rc, last(iarena));
    check(LC(_last_error)(NULL) == NULL, "last_error(NULL) is not NULL");
    float l = LC(_train_step)(params, grads, opt, &in, &out, arena, NULL);
    check(isfinite(l), "train_step gave %g", (double)l);

    /* Non-finite values in an input and in a parameter. */
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3 && first_f32 >= 0; b++) {
        float *x = data[first_f32], saved = x[count[first_f32] - 1];
        x[count[first_f32] - 1] = bad[b];
        rc = LC(_infer)(params, &in, &out, iarena);
        check(rc == ERR_NONFINITE, "infer with %g in input '%s' returned %d, not ERR_NONFINITE", (double)bad[b],
              LC(_input_table)[first_f32].name, rc);
        check(has(last(iarena), "_infer: step ") && has(last(iarena), " of node '") &&
                  has(last(iarena), "wrote a non-finite value into '"),
              "infer's message for %g in an input: %s", (double)bad[b], last(iarena));
        rc = LC(_forward)(params, &in, &out, arena);
        check(rc == ERR_NONFINITE && has(last(arena), "_forward: step ") &&
                  has(last(arena), "wrote a non-finite value into '"),
              "forward with %g in an input returned %d: %s", (double)bad[b], rc, last(arena));
        rc = LC(_backward)(params, grads, arena);
        check(rc == UC(_ERR_STATE), "backward after a non-finite forward returned %d, not ERR_STATE", rc);
        x[count[first_f32] - 1] = saved;
    }
    for (int k = 0; k < NUM_PARAMS; k++) {
        const LC(_param_info) *p = &LC(_params)[k];
        if (p->dtype != 0 || p->is_buffer)
            continue;
        LC(_init)(params, 7);
        ((float *)(params + p->offset))[0] = NAN;
        rc = LC(_infer)(params, &in, &out, iarena);
        check(rc == ERR_NONFINITE && has(last(iarena), " of node '"), "infer with a NaN in '%s' returned %d: %s",
              p->name, rc, last(iarena));
        LC(_init)(params, 7);
        break;
    }
    rc = LC(_infer)(params, &in, &out, iarena);
    check(rc == 0 && LC(_last_error)(iarena) == NULL, "infer after the NaN runs returned %d: %s", rc, last(iarena));

    /* The arena's tail changing between forward and backward: short by less
     * than a guard, and by more. */
    int64_t shorts[] = {GUARD / 2, GUARD + 4 * (int64_t)BLOCK_ALIGN};
    for (int s = 0; s < 2; s++) {
        int64_t n = shorts[s], from = TRAIN_ARENA_BYTES - n;
        if (from < 64)
            from = 64, n = TRAIN_ARENA_BYTES - 64; /* never the state word */
        rc = LC(_forward)(params, &in, &out, arena);
        check(rc == 0, "forward returned %d", rc);
        memset(arena + from, 0x5A, (size_t)n);
        rc = LC(_backward)(params, grads, arena);
        check(rc == ERR_GUARD, "backward with the last %lld arena bytes changed returned %d, not ERR_GUARD",
              (long long)n, rc);
        check(has(last(arena), "_backward: on entry: guard at the end of the arena changed since"),
              "backward's message for the arena's tail: %s", last(arena));
    }
    /* A residual's guard changed between the calls. */
    int residual = -1;
    for (int k = 1; k + 1 < UC(_NUM_KEPT_RANGES) && residual < 0; k++)
        residual = k; /* [0] is the state word, the last the arena's end guard */
    if (residual > 0) {
        rc = LC(_forward)(params, &in, &out, arena);
        const int64_t *r = LC(_kept_ranges)[residual];
        arena[r[0] + r[1] - 1] ^= 1; /* the last byte of its guard after */
        rc = LC(_backward)(params, grads, arena);
        check(rc == ERR_GUARD && has(last(arena), "_backward: on entry: guard after arena buffer '"),
              "backward with a residual's guard changed returned %d: %s", rc, last(arena));
    }
    check(train_once(), "forward and backward after the arena tests failed: %s", last(arena));

    /* The params block's tail changed after P_init (a model without params
     * has no params block, so no tail to change). */
    if (PARAMS_BYTES > 0) {
        LC(_init)(params, 7);
        params[PARAMS_BYTES - 3] ^= 0x40;
        rc = LC(_infer)(params, &in, &out, iarena);
        check(rc == ERR_GUARD && has(last(iarena), "guard at the end of the params block changed"),
              "infer with the params block's tail changed returned %d: %s", rc, last(iarena));
        rc = LC(_forward)(params, &in, &out, arena);
        check(rc == ERR_GUARD, "forward with the params block's tail changed returned %d", rc);
        LC(_init)(params, 7);
        rc = LC(_infer)(params, &in, &out, iarena);
        check(rc == 0, "infer after P_init set the guard again returned %d: %s", rc, last(iarena));
    }

    /* The grads and optimizer state blocks' tails: P_update refuses. */
    unsigned char *tails[] = {grads, opt};
    int64_t sizes[] = {GRADS_BYTES, OPT_STATE_BYTES};
    const char *names[] = {"grads block", "optimizer state block"};
    for (int t = 0; t < 2; t++) {
        if (sizes[t] == 0 || UC(_NUM_TRAINABLE) == 0)
            continue;
        LC(_opt_init)(opt);
        check(train_once(), "forward and backward failed");
        memcpy(params_copy, params, (size_t)PARAMS_BYTES);
        tails[t][sizes[t] - 1] ^= 0x08;
        capture_begin();
        LC(_update)(params, grads, opt, NULL);
        const char *err = capture_end();
        check(memcmp(params, params_copy, (size_t)PARAMS_BYTES) == 0, "update ran with the %s's tail changed",
              names[t]);
        check(has(err, "_update: on entry: guard at the end of the ") && has(err, names[t]),
              "update's message for the %s: %s", names[t], err);
        tails[t][sizes[t] - 1] ^= 0x08;
        LC(_update)(params, grads, opt, NULL);
        check(memcmp(params, params_copy, (size_t)PARAMS_BYTES) != 0, "update with intact guards changed nothing");
    }

    for (int k = 0; k < NUM_INPUTS; k++)
        free(data[k]);
    free(params), free(grads), free(arena), free(iarena), free(opt), free(params_copy);
    printf("%d passed, %d failed\n", npassed, nfailed);
    return nfailed ? 1 : 0;
}
