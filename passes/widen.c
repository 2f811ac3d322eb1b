/* widen.c: give blocked kernels the arena space nobody uses at their step.
 *
 * A conv2d step's GEMM is fastest with a few hundred columns, but one image of
 * a late ResNet stage has only 16 or 64 output positions. Its kernel can
 * instead gather a block of images into one GEMM, given scratch for the whole
 * block (rt.h: `images`). That scratch is only worth having if it costs no
 * memory: the arena's size is fixed by the busiest step (usually early in the
 * network, or at the forward/backward turn), and the late layers' steps leave
 * much of it idle. So this pass runs after plan.c and, for each step that can
 * work in blocks (ir_step.blocks_opnd, set by lc_step_blocks), finds the
 * largest byte range of the arena that no other buffer occupies at that step,
 * and moves the step's scratch there with as many images as fit (capped by
 * the step's blocks_max). A scratch buffer lives at its one step only, so
 * moving it cannot collide with anything at any other step; arena_bytes and
 * lower_bound stay as planned, and validate.c checks the result as it checks
 * every plan.
 */
#include "ir.h"

#include <stdlib.h>

typedef struct {
    int64_t lo, hi; /* [lo, hi) */
} byte_range;

static int by_start(const void *a, const void *b) {
    const byte_range *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* The largest aligned free range of the arena at step t, ignoring buffer
 * `self`; `used` has room for every buffer. Returns its size, *start its
 * offset. */
static int64_t largest_gap(const ir_program *prog, int t, int self, byte_range *used, int64_t *start) {
    int n = 0;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (b == self || buf->space != SPACE_ARENA || buf->bytes <= 0 || buf->first < 0)
            continue;
        if (buf->first <= t && t <= buf->last)
            used[n++] = (byte_range){buf->offset, buf->offset + buf->bytes};
    }
    qsort(used, (size_t)n, sizeof *used, by_start);
    int64_t best = 0, cursor = 0;
    *start = 0;
    for (int i = 0; i <= n; i++) {
        int64_t end = i < n ? used[i].lo : prog->arena_bytes;
        if (end - cursor > best) {
            best = end - cursor;
            *start = cursor;
        }
        if (i < n && ir_align_up(used[i].hi) > cursor)
            cursor = ir_align_up(used[i].hi);
    }
    return best;
}

void pass_widen(ir_program *prog) {
    byte_range *used = NULL;
    for (int t = 0; t < prog->nsteps; t++) {
        ir_step *s = &prog->steps[t];
        if (s->blocks_opnd < 0 || s->blocks_max < 2 || s->blocked_bytes <= 0)
            continue;
        if (!used) {
            used = malloc(sizeof *used * (size_t)(prog->nbufs ? prog->nbufs : 1));
            IR_ASSERT(used);
        }
        const int scratch = s->opnd[s->scratch_opnd].buf;
        ir_buf *buf = &prog->bufs[scratch];
        IR_ASSERT(buf->kind == BUF_SCRATCH && buf->space == SPACE_ARENA && buf->first == t && buf->last == t);
        int64_t start, gap = largest_gap(prog, t, scratch, used, &start);
        int64_t images = gap / s->blocked_bytes;
        if (images > s->blocks_max)
            images = s->blocks_max;
        if (images < 2)
            continue;
        IR_ASSERT(buf->dtype == DT_F32 && s->blocked_bytes % 4 == 0);
        buf->shape = (ir_shape){1, {images * s->blocked_bytes / 4}};
        buf->bytes = shape_bytes(&buf->shape, buf->dtype);
        buf->offset = start;
        s->opnd[s->blocks_opnd].i = images;
    }
    free(used);
}
