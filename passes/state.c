/* state.c: room for the arena's state word.
 *
 * The generated entry points keep one 64-bit word at the start of every
 * arena: forward clears it on entry and sets it to the model's tag when it
 * succeeds; backward runs only when it finds that tag, and clears it, so a
 * backward without a matching forward (none yet, a failed one, one already
 * consumed, or an infer on the same arena, which clears it too) returns an
 * error instead of gradients from garbage. The word is at offset 0 in the
 * train and the infer arena alike, so that an infer on a train arena is seen:
 * hence a fixed slot ahead of the plan rather than a planned buffer.
 *
 * Runs after planning and widening, whose offsets it moves up; a buffer of
 * kind BUF_STATE records the slot so that validation, the header's kept
 * ranges and the views see it like any other storage. In the train program it
 * counts as a residual: forward leaves it for backward.
 */
#include "ir.h"

void pass_state(pool *p, ir_program *prog, bool train) {
    IR_ASSERT(ir_state_buf(prog) < 0);
    for (int b = 0; b < prog->nbufs; b++) {
        ir_buf *x = &prog->bufs[b];
        if (x->space == SPACE_ARENA && x->offset >= 0)
            x->offset += IR_ARENA_STATE_BYTES;
    }
    /* Sizes fit: pass_lower bounded every arena total well below 2^63. */
    prog->arena_bytes += IR_ARENA_STATE_BYTES;
    prog->lower_bound += IR_ARENA_STATE_BYTES;
    if (train) /* kept from forward for backward like any residual */
        prog->residual_bytes += IR_ARENA_STATE_BYTES;
    ir_shape words = {.rank = 1, .dim = {IR_ARENA_STATE_BYTES / 8}}; /* the slot; word 0 is used */
    int s = ir_add_buf(p, prog, "arena state", BUF_STATE, SPACE_ARENA, DT_I64, words, -1);
    ir_buf *x = &prog->bufs[s];
    x->offset = 0;
    x->first = 0;
    x->last = prog->nsteps > 0 ? prog->nsteps - 1 : 0;
}

int ir_state_buf(const ir_program *prog) {
    for (int b = 0; b < prog->nbufs; b++)
        if (prog->bufs[b].kind == BUF_STATE)
            return b;
    return -1;
}
