/* layout.c: the params, grads and optimizer-state blocks.
 *
 * Every value gets its place in the blocks the caller passes in, each tensor
 * at an IR_ALIGN boundary:
 *   params: params and buffers (VAL_PARAM, VAL_BUFFER), in value order;
 *   grads:  gradients of trainable params in value order, then of the inputs
 *           that want one;
 *   optimizer state: the step counter (IR_OPT_HEADER_BYTES), then
 *           opt_slots() tensors per trainable param, in value order.
 * Runs after config.c (which params train, which inputs want gradients) and
 * optim.c (how many slots), before lower.c, whose buffers of the params and
 * grads blocks take these offsets.
 *
 * The module's memory is added up once, in checked arithmetic: here the
 * blocks, then in lower.c every arena buffer of both programs, each at its
 * aligned size (layout_add). Every size computed after lowering is a part
 * or a partial sum of these: an arena is never larger than the sum of its
 * buffers (plan.c places each one at most on top of all the others), widen.c
 * only moves scratch into free space, and the header's and the views' totals
 * add blocks and an arena. So once this fits in int64, nothing later can
 * overflow, and no pass after lowering needs to check.
 */
#include "ck.h"
#include "ir.h"

bool layout_add(int64_t *total, int64_t bytes, int64_t copies) {
    int64_t aligned;
    return !ck_align(bytes, IR_ALIGN, &aligned) && !ck_mul(aligned, copies, &aligned) &&
           !ck_add(*total, aligned, total);
}

void layout_too_large(diag_ctx *d, src_loc at, const char *name) {
    diag_error(d, at,
               "the model is too large: with '%s', its parameters, gradients, optimizer state and arena buffers "
               "add up to more than 2^63 bytes",
               name);
}

/* The bytes layout_blocks gives each value, added up in value order. */
static bool count_blocks(const ir_module *m, diag_ctx *d) {
    const ir_graph *g = m->graph;
    int64_t total = IR_OPT_HEADER_BYTES;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        bool param = val->kind == VAL_PARAM || val->kind == VAL_BUFFER;
        bool trained = val->kind == VAL_PARAM && val->trainable, input_grad = val->kind == VAL_INPUT && val->wants_grad;
        int64_t copies = param + (trained ? 1 + opt_slots(m->opt.kind) : 0) + input_grad;
        if (copies && !layout_add(&total, shape_bytes(&val->shape, val->dtype), copies)) {
            layout_too_large(d, val->loc, val->name);
            return false;
        }
    }
    return true;
}

/* Sizes and offsets cannot overflow: count_blocks has added them all up. */
static void layout_blocks(ir_module *m) {
    const ir_graph *g = m->graph;
    m->param_offset = pool_alloc(g->pool, sizeof(int64_t) * (size_t)g->nvals + 1);
    m->grad_offset = pool_alloc(g->pool, sizeof(int64_t) * (size_t)g->nvals + 1);
    int64_t params = 0, grads = 0;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        m->param_offset[v] = m->grad_offset[v] = -1;
        int64_t bytes = ir_align_up(shape_bytes(&val->shape, val->dtype));
        if (val->kind == VAL_PARAM || val->kind == VAL_BUFFER) {
            m->param_offset[v] = params;
            params += bytes;
        }
        if (val->kind == VAL_PARAM && val->trainable) {
            m->grad_offset[v] = grads;
            grads += bytes;
        }
    }
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind == VAL_INPUT && val->wants_grad) {
            m->grad_offset[v] = grads;
            grads += ir_align_up(shape_bytes(&val->shape, val->dtype));
        }
    }
    m->params_bytes = params;
    m->grads_bytes = grads;

    /* Optimizer state: the step counter, then each trainable param's slots. */
    m->opt_offset = pool_alloc(g->pool, sizeof(int64_t) * (size_t)g->nvals + 1);
    int64_t state = IR_OPT_HEADER_BYTES;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        m->opt_offset[v] = -1;
        if (val->kind == VAL_PARAM && val->trainable) {
            m->opt_offset[v] = state;
            state += opt_slots(m->opt.kind) * ir_align_up(shape_bytes(&val->shape, val->dtype));
        }
    }
    m->opt_state_bytes = state;
}

bool pass_layout(ir_module *m, diag_ctx *d) {
    if (!count_blocks(m, d))
        return false;
    layout_blocks(m);
    return true;
}
