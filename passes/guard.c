/* guard.c: guard gaps in a checked plan (frost compile --checked).
 *
 * Runs after state.c, on a finished plan. Every storage (alias root) of the
 * arena gets IR_GUARD_BYTES of guard directly before and directly after its
 * bytes, and the arena one more guard at its very end; codegen fills each
 * guard with a known pattern when its storage becomes live (the arena's end
 * guard on entry) and verifies them after the steps that write the storage,
 * so a kernel that writes past its buffer, or memory beyond a too-small
 * arena that changes between calls, is reported with the buffer's name.
 *
 * The plan itself is kept, reuse and in-place takeovers included: offsets
 * move up by a monotone step function of the offset, (2k + 1) guards for the
 * k-th distinct offset above the state word. Buffers at one offset (alias
 * groups, an in-place pair, storages whose lives do not meet) move together;
 * of two storages A below B that are live together, A's end lies at or below
 * B's start, and B moves at least two guards further than A, so A's guard
 * after and B's guard before fit between them. Widened scratch is no
 * exception: widen.c grew it only into bytes free at its step. The state word
 * stays at offset 0, unguarded (the first storage's guard follows it).
 */
#include "ir.h"

#include <stdlib.h>

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Index of o in the sorted distinct offsets u[0..n). */
static int64_t rank_of(const int64_t *u, int64_t n, int64_t o) {
    int64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (u[mid] <= o)
            lo = mid;
        else
            hi = mid;
    }
    IR_ASSERT(n > 0 && u[lo] == o);
    return lo;
}

static bool guarded(const ir_buf *b) {
    return b->space == SPACE_ARENA && b->kind != BUF_STATE && b->offset >= IR_ARENA_STATE_BYTES;
}

void pass_guard(ir_program *prog, bool train) {
    const int64_t G = IR_GUARD_BYTES;
    int64_t *u = malloc(sizeof *u * ((size_t)prog->nbufs + 1));
    IR_ASSERT(u);
    int64_t n = 0;
    for (int b = 0; b < prog->nbufs; b++)
        if (guarded(&prog->bufs[b]))
            u[n++] = prog->bufs[b].offset;
    qsort(u, (size_t)n, sizeof *u, cmp_i64);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (k == 0 || u[i] != u[k - 1])
            u[k++] = u[i];
    for (int b = 0; b < prog->nbufs; b++)
        if (guarded(&prog->bufs[b]))
            prog->bufs[b].offset += (2 * rank_of(u, k, prog->bufs[b].offset) + 1) * G;
    free(u);

    /* Storages live at once: at most that many guard pairs are in use at a
     * step, which is what the lower bound grows by. */
    int *load = calloc((size_t)prog->nsteps + 2, sizeof *load);
    IR_ASSERT(load);
    int64_t residuals = 0;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *x = &prog->bufs[b];
        if (!guarded(x) || x->alias_of >= 0 || x->first < 0)
            continue;
        load[x->first]++;
        load[x->last + 1]--;
        residuals += train && x->first < prog->nfwd && x->last >= prog->nfwd;
    }
    int most = 0;
    for (int t = 0, live = 0; t < prog->nsteps; t++)
        if ((live += load[t]) > most)
            most = live;
    free(load);
    /* Two guards per buffer on top of a total that pass_lower kept below
     * 2^63: no plan near that limit is run in checked mode. */
    prog->arena_bytes += 2 * k * G + G; /* the last storage's guard ends by then; the arena's own follows */
    prog->lower_bound += 2 * (int64_t)most * G + G;
    if (train)
        prog->residual_bytes += 2 * residuals * G + G;
}
