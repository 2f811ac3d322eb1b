/* liveness.c: live intervals of buffers, in step indices.
 *
 * A buffer is live from the first to the last step that names it as an
 * operand (inclusive at both ends: a step's outputs must not share storage
 * with its inputs, unless plan.c lets an element-wise output take over an input
 * that dies there, see below). Steps are in execution order, forward [0, nfwd) then
 * backward [nfwd, nsteps); the arena persists between the two calls, so one
 * interval spanning nfwd is a residual. Aliases (alias_of, possibly chained)
 * share their root's storage, so the whole alias group gets the union of its
 * members' intervals. Buffers never named keep first = last = -1.
 *
 * Intervals are computed for every buffer; only SPACE_ARENA ones are planned.
 *
 * In-place takeovers (ir_buf.inplace_of) are not merged here: a taker's group
 * keeps its own interval, which starts at the step where its donor's ends, so
 * each buffer's interval stays the truth about when it is used (the views and
 * the residual set depend on that). plan.c decides whether the takeover
 * happens and then treats both groups as one storage object.
 */
#include "ir.h"

#include <stdlib.h>

void pass_liveness(ir_program *prog) {
    int n = prog->nbufs;
    for (int b = 0; b < n; b++)
        prog->bufs[b].first = prog->bufs[b].last = -1;
    if (n <= 0)
        return;
    int *root = malloc(sizeof(int) * (size_t)n);
    IR_ASSERT(root);
    ir_storage_roots(prog, root);
    for (int b = 0; b < n; b++)
        IR_ASSERT(prog->bufs[b].inplace_of < n);

    /* Each step references a buffer's group: first is the first such step,
     * last the last one. */
    for (int t = 0; t < prog->nsteps; t++) {
        const ir_step *s = &prog->steps[t];
        for (int k = 0; k < s->nopnd; k++) {
            if (s->opnd[k].kind != OPND_BUF)
                continue;
            int b = s->opnd[k].buf;
            IR_ASSERT(b >= 0 && b < n);
            ir_buf *r = &prog->bufs[root[b]];
            if (r->first < 0)
                r->first = t;
            r->last = t;
        }
    }
    for (int b = 0; b < n; b++) {
        if (root[b] != b) {
            prog->bufs[b].first = prog->bufs[root[b]].first;
            prog->bufs[b].last = prog->bufs[root[b]].last;
        }
    }
    free(root);
}
