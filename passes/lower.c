/* lower.c: selective reverse-mode autodiff and residual selection.
 *
 * From the graph and the freeze configuration this pass builds two programs:
 *   train: forward steps, then backward steps for exactly the gradients that
 *          were asked for (trainable params, inputs marked grad);
 *   infer: forward steps only, keeping nothing.
 *
 * A VJP survives only if its input needs a gradient (it is, or depends on, a
 * trainable param or a grad input) and its output reaches the loss. The
 * residuals are what the surviving VJPs declare they need (op_def.needs), in
 * the cheapest form that serves every reader:
 *   - a tensor needed in full is simply kept alive from forward to backward
 *     (a caller's input is copied into the arena: backward has no inputs);
 *   - "only the sign of the output" becomes a 1-bit mask, unless the output's
 *     storage is kept in full anyway, in which case the mask would be waste;
 *   - auxiliary tensors (softmax, differences) are produced only when read;
 *   - an output kept in full that a cheap op (op_def.recomputable: norms,
 *     element-wise ops, transposes) computes from inputs kept anyway is not
 *     kept: backward runs that op's forward again just before its first
 *     reader, so the input and the output are never both residuals.
 * Frozen params therefore cost no gradient buffer, no weight-gradient kernel
 * and do not keep their layer's input alive.
 */
#include "ir.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct lower_ctx {
    ir_module *m;
    const ir_graph *g;
    pool *p;
    ir_program *prog;
    bool train;

    /* per value */
    int *buf;        /* forward buffer holding it */
    int *saved_copy; /* arena copy of a caller input needed in backward */
    int *grad;       /* buffer of d loss / d value */
    int *root;       /* value whose storage it shares (itself unless made by a view op) */
    bool *needs_grad;
    bool *reaches_loss;
    bool *kept_full; /* by storage root: some surviving VJP reads it in full */
    bool *recompute; /* by storage root: read in full in backward, but made again there */
    int *remade;     /* buffer holding the value made again in backward, -1 until made */
    /* per node */
    bool *live;            /* contributes to an output */
    uint32_t *vjps;        /* bit i: the VJP w.r.t. input i survives */
    uint32_t *needs;       /* union of the surviving VJPs' needs */
    int *aux;              /* [node * IR_MAX_AUX + k] */
    int *mask;             /* 1-bit sign mask of the output, -1 if none */
    bool *grad_donated;    /* per buffer id of a node's d output: its storage now holds a d input */
    int ngrad_donated;     /* size of grad_donated */
    rt_kernel last_kernel; /* of the step lc_step appended last, for lc_step_blocks */
    bool recomputing;      /* backward is emitting a forward again: its inputs are saved values */
};

const ir_graph *lc_graph(lower_ctx *c) { return c->g; }
bool lc_training(lower_ctx *c) { return c->train; }
bool lc_bn_eval(lower_ctx *c) { return c->train && c->m->bn_eval; }

static const op_def *op_of(const ir_graph *g, const ir_node *n) { return &op_table[n->op]; }

uint32_t lower_op_needs(const ir_graph *g, const ir_node *n, int input, bool training, bool bn_eval) {
    ir_module m = {.bn_eval = bn_eval};
    lower_ctx c = {.m = &m, .g = g, .train = training};
    return op_of(g, n)->needs(&c, n, input);
}

static int node_index(lower_ctx *c, const ir_node *n) { return (int)(n - c->g->nodes); }

static int new_buf(lower_ctx *c, const char *name, ir_buf_kind kind, ir_space space, ir_dtype dt, ir_shape shape,
                   int value) {
    return ir_add_buf(c->p, c->prog, name, kind, space, dt, shape, value);
}

/* The buffer through which forward code reaches value v. Params and inputs get
 * a buffer on first use; activations get theirs when their node is lowered. */
static int value_buf(lower_ctx *c, int v) {
    if (c->buf[v] >= 0)
        return c->buf[v];
    const ir_value *val = &c->g->vals[v];
    IR_ASSERT(val->kind != VAL_ACT);
    int b;
    if (val->kind == VAL_INPUT) {
        int index = 0;
        for (int k = 0; k < v; k++)
            index += c->g->vals[k].kind == VAL_INPUT;
        b = new_buf(c, val->name, BUF_INPUT, SPACE_INPUT, val->dtype, val->shape, v);
        c->prog->bufs[b].index = index;
    } else {
        b = new_buf(c, val->name, BUF_PARAM, SPACE_PARAMS, val->dtype, val->shape, v);
        c->prog->bufs[b].offset = c->m->param_offset[v];
    }
    return c->buf[v] = b;
}

const rt_kernel_desc rt_kernels[RTK_COUNT] = {
#define RT_KERNEL_DESC(name, operands) [RTK_##name] = {"rt_" #name, operands},
    RT_STEP_KERNELS(RT_KERNEL_DESC)
#undef RT_KERNEL_DESC
};

/* A step that does not match its kernel's operands is a bug of the op that
 * lowered it: stop at once, naming both. */
static void bad_operands(const ir_node *n, const rt_kernel_desc *k, const char *what, int at) {
    fprintf(stderr, "frost: internal error: %s of node %s: %s operand %d (the kernel's operands are \"%s\")\n", k->name,
            n ? n->name : "(glue)", what, at, k->operands);
    abort();
}

void lc_step_args(lower_ctx *c, const ir_node *n, rt_kernel kernel, const lc_arg *args, int nargs) {
    IR_ASSERT(kernel >= 0 && kernel < RTK_COUNT);
    const rt_kernel_desc *k = &rt_kernels[kernel];
    int want = (int)strlen(k->operands);
    if (nargs != want)
        bad_operands(n, k, nargs < want ? "missing" : "one too many at", nargs < want ? nargs : want);
    ir_step *s = VEC_PUSH(c->p, c->prog->steps, c->prog->nsteps, c->prog->capsteps);
    memset(s, 0, sizeof *s);
    s->blocks_opnd = s->scratch_opnd = -1;
    s->kernel = k->name;
    c->last_kernel = kernel;
    s->node = n ? node_index(c, n) : -1;
    IR_ASSERT(nargs <= IR_MAX_OPND);
    for (int a = 0; a < nargs; a++) {
        if (args[a].letter != k->operands[a])
            bad_operands(n, k, "the wrong kind of", a);
        ir_opnd *o = &s->opnd[s->nopnd++];
        switch (args[a].letter) {
        case 'r':
        case 'w':
        case 's':
            o->buf = args[a].buf;
            o->kind = o->buf < 0 ? OPND_NULL : OPND_BUF;
            o->writes = args[a].letter != 'r';
            break;
        case 'i':
        case 'n':
            o->kind = OPND_INT;
            o->i = args[a].i;
            break;
        case 'f':
            o->kind = OPND_FLOAT;
            o->f = args[a].f;
            break;
        default: bad_operands(n, k, "an unknown letter for", a);
        }
    }
}

/* ------------------------------------------------------------ forward hooks */

static int saved_value(lower_ctx *c, int v);

int lc_in(lower_ctx *c, const ir_node *n, int i) {
    return c->recomputing ? saved_value(c, n->in[i]) : value_buf(c, n->in[i]);
}

int lc_out(lower_ctx *c, const ir_node *n) {
    IR_ASSERT(c->buf[n->out] >= 0);
    return c->buf[n->out];
}

int lc_aux(lower_ctx *c, const ir_node *n, int k) {
    return c->recomputing ? -1 : c->aux[node_index(c, n) * IR_MAX_AUX + k];
}

int lc_scratch(lower_ctx *c, const ir_node *n, ir_dtype dt, int64_t numel) {
    if (numel <= 0)
        return -1;
    ir_shape shape = {1, {numel}};
    return new_buf(c, pool_printf(c->p, "scratch %s", c->g->vals[n->out].name), BUF_SCRATCH, SPACE_ARENA, dt, shape,
                   -1);
}

void lc_step_blocks(lower_ctx *c, int64_t blocks_max, int64_t blocked_bytes) {
    IR_ASSERT(c->prog->nsteps > 0);
    ir_step *s = &c->prog->steps[c->prog->nsteps - 1];
    const char *operands = rt_kernels[c->last_kernel].operands;
    const char *blocks = strchr(operands, 'n'), *scratch = strchr(operands, 's');
    IR_ASSERT(blocks && scratch);
    int blocks_opnd = (int)(blocks - operands), scratch_opnd = (int)(scratch - operands);
    /* a step without scratch (pointwise, depthwise) stays one image at a time:
     * there is no buffer to widen */
    if (s->opnd[scratch_opnd].kind != OPND_BUF || blocks_max < 2 || blocked_bytes <= 0)
        return;
    s->blocks_opnd = blocks_opnd;
    s->scratch_opnd = scratch_opnd;
    s->blocks_max = blocks_max;
    s->blocked_bytes = blocked_bytes;
}

void lc_alias_out(lower_ctx *c, const ir_node *n, int i) {
    int src = lc_in(c, n, i);
    const ir_value *out = &c->g->vals[n->out];
    const ir_buf *sb = &c->prog->bufs[src];
    int b = new_buf(c, out->name, sb->kind, sb->space, out->dtype, out->shape, n->out);
    c->prog->bufs[b].alias_of = src;
    c->prog->bufs[b].index = c->prog->bufs[src].index;
    c->prog->bufs[b].offset = c->prog->bufs[src].offset;
    c->buf[n->out] = b;
}

/* ----------------------------------------------------------- backward hooks */

/* Value v made again in backward (c->recompute of its root): the first
 * request emits its node's forward into a new buffer, which lives from there
 * to its last reader; a view of such a value is an alias of its input's remade
 * buffer. Inputs of the node are saved values themselves (kept, or remade in
 * turn: chains are made again from the inside out). */
static int remade_value(lower_ctx *c, int v) {
    if (c->remade[v] >= 0)
        return c->remade[v];
    const ir_value *val = &c->g->vals[v];
    const ir_node *n = &c->g->nodes[val->node];
    int b;
    if (c->root[v] != v) { /* a view: reinterpret what its input became */
        int src = remade_value(c, n->in[0]);
        b = new_buf(c, pool_printf(c->p, "remade %s", val->name), BUF_SAVED, SPACE_ARENA, val->dtype, val->shape, v);
        c->prog->bufs[b].alias_of = src;
    } else {
        b = new_buf(c, pool_printf(c->p, "remade %s", val->name), BUF_SAVED, SPACE_ARENA, val->dtype, val->shape, v);
        int forward_buf = c->buf[v];
        bool outer = c->recomputing;
        c->buf[v] = b;
        c->recomputing = true;
        op_of(c->g, n)->forward(c, n);
        c->recomputing = outer;
        c->buf[v] = forward_buf;
    }
    return c->remade[v] = b;
}

static int saved_value(lower_ctx *c, int v) {
    int r = c->root[v];
    if (c->g->vals[r].kind == VAL_INPUT) {
        IR_ASSERT(c->saved_copy[r] >= 0);
        return c->saved_copy[r];
    }
    if (c->recompute[r])
        return remade_value(c, v);
    return value_buf(c, v);
}

int lc_saved(lower_ctx *c, const ir_node *n, uint32_t need) {
    IR_ASSERT(c->needs[node_index(c, n)] & need);
    if (need == NEED_OUT)
        return saved_value(c, n->out);
    for (int k = 0; k < IR_MAX_AUX; k++)
        if (need == NEED_AUX(k)) {
            int b = lc_aux(c, n, k);
            IR_ASSERT(b >= 0);
            return b;
        }
    for (int i = 0; i < n->nin; i++)
        if (need == NEED_IN(i))
            return saved_value(c, n->in[i]);
    IR_ASSERT(!"lc_saved: not a single need");
}

int lc_saved_sign(lower_ctx *c, const ir_node *n, bool *is_mask) {
    int m = c->mask[node_index(c, n)];
    *is_mask = m >= 0;
    return m >= 0 ? m : saved_value(c, n->out);
}

int lc_grad_out(lower_ctx *c, const ir_node *n) {
    IR_ASSERT(c->grad[n->out] >= 0);
    return c->grad[n->out];
}

int lc_grad_in(lower_ctx *c, const ir_node *n, int i, int64_t *acc) {
    int v = n->in[i];
    if (c->grad[v] >= 0) {
        *acc = 1;
        return c->grad[v];
    }
    *acc = 0;
    const ir_value *val = &c->g->vals[v];
    const char *name = pool_printf(c->p, "d %s", val->name);
    int b;
    if (val->kind == VAL_ACT) {
        b = new_buf(c, name, BUF_GRAD, SPACE_ARENA, val->dtype, val->shape, v);
    } else {
        IR_ASSERT(c->m->grad_offset[v] >= 0);
        b = new_buf(c, name, val->kind == VAL_INPUT ? BUF_INPUT_GRAD : BUF_PARAM_GRAD, SPACE_GRADS, val->dtype,
                    val->shape, v);
        c->prog->bufs[b].offset = c->m->grad_offset[v];
    }
    return c->grad[v] = b;
}

uint32_t lc_vjps(lower_ctx *c, const ir_node *n) { return c->vjps[n - c->g->nodes]; }

/* The output's gradient may become the input's gradient in place when (a) the
 * input has no gradient yet and lives in the arena, (b) no other input of this
 * node has taken that storage, and (c) the input is not also another operand of
 * this node (its second contribution would then read what it writes). Every
 * reader of d output is a VJP of this node, so nothing reads it afterwards. */
void lc_grad_pass(lower_ctx *c, const ir_node *n, int i) {
    int v = n->in[i];
    int dy = lc_grad_out(c, n);
    bool operand_twice = false;
    for (int k = 0; k < n->nin; k++)
        operand_twice |= k != i && n->in[k] == v;
    IR_ASSERT(dy < c->ngrad_donated);
    if (c->grad[v] < 0 && c->g->vals[v].kind == VAL_ACT && !c->grad_donated[dy] && !operand_twice) {
        const ir_value *val = &c->g->vals[v];
        int b = new_buf(c, pool_printf(c->p, "d %s", val->name), BUF_GRAD, SPACE_ARENA, val->dtype, val->shape, v);
        c->prog->bufs[b].alias_of = dy;
        c->grad_donated[dy] = true;
        c->grad[v] = b;
        return;
    }
    int64_t acc;
    int dst = lc_grad_in(c, n, i, &acc);
    lc_step(c, n, RTK_acc_f32, LC_W(dst), LC_R(dy), LC_I(shape_numel(&c->g->vals[v].shape)), LC_I(acc));
}

/* ------------------------------------------------------------ analysis */

/* An output kept in full for later VJPs (a trainable linear's input) that a
 * recomputable op makes from inputs kept anyway (its own VJP's needs: a norm's
 * x, gelu's x) is made again in backward rather than kept: without this both
 * the input and the output of the op would be residuals. Inputs may be made
 * again themselves (checked in definition order), params are always there.
 * The op's own VJP must not read its output (softmax, sigmoid and relu's sign
 * keep the output rather than the input). */
static void choose_recompute(lower_ctx *c) {
    const ir_graph *g = c->g;
    for (int ni = 0; ni < g->nnodes; ni++) {
        const ir_node *n = &g->nodes[ni];
        const op_def *op = op_of(g, n);
        int r = n->out;
        if (!c->live[ni] || !op->recomputable || op->is_view || c->root[r] != r || !c->kept_full[r] ||
            (c->needs[ni] & (NEED_OUT | NEED_OUT_SIGN)))
            continue;
        bool inputs_there = true;
        for (int i = 0; i < n->nin; i++) {
            int in = c->root[n->in[i]];
            inputs_there &= g->vals[in].kind == VAL_PARAM || c->kept_full[in] || c->recompute[in];
        }
        if (inputs_there) {
            c->recompute[r] = true;
            c->kept_full[r] = false;
        }
    }
}

static void analyse(lower_ctx *c) {
    const ir_graph *g = c->g;
    for (int o = 0; o < g->noutputs; o++)
        if (g->vals[g->outputs[o]].kind == VAL_ACT)
            c->live[g->vals[g->outputs[o]].node] = true;
    for (int ni = g->nnodes - 1; ni >= 0; ni--) {
        const ir_node *n = &g->nodes[ni];
        if (!c->live[ni])
            continue;
        for (int i = 0; i < n->nin; i++) {
            const ir_value *in = &g->vals[n->in[i]];
            if (in->kind == VAL_ACT)
                c->live[in->node] = true;
        }
    }

    for (int v = 0; v < g->nvals; v++) {
        c->root[v] = v;
        const ir_value *val = &g->vals[v];
        c->needs_grad[v] =
            c->train && ((val->kind == VAL_PARAM && val->trainable) || (val->kind == VAL_INPUT && val->wants_grad));
    }
    for (int ni = 0; ni < g->nnodes; ni++) {
        const ir_node *n = &g->nodes[ni];
        const op_def *op = op_of(g, n);
        if (op->is_view || (op->identity_in_infer && !c->train))
            c->root[n->out] = c->root[n->in[0]];
        for (int i = 0; i < n->nin; i++)
            if (op->diff_inputs & (1u << i) && c->needs_grad[n->in[i]])
                c->needs_grad[n->out] = true;
    }

    if (!c->train || g->noutputs == 0)
        return;
    c->reaches_loss[g->outputs[0]] = true;
    for (int ni = g->nnodes - 1; ni >= 0; ni--) {
        const ir_node *n = &g->nodes[ni];
        const op_def *op = op_of(g, n);
        if (!c->live[ni] || !c->reaches_loss[n->out] || !c->needs_grad[n->out])
            continue;
        for (int i = 0; i < n->nin; i++) {
            if (!(op->diff_inputs & (1u << i)) || !c->needs_grad[n->in[i]])
                continue;
            c->reaches_loss[n->in[i]] = true;
            c->vjps[ni] |= 1u << i;
            c->needs[ni] |= op->needs(c, n, i);
        }
    }
    for (int ni = 0; ni < g->nnodes; ni++) {
        const ir_node *n = &g->nodes[ni];
        for (int i = 0; i < n->nin; i++)
            if (c->needs[ni] & NEED_IN(i))
                c->kept_full[c->root[n->in[i]]] = true;
        if (c->needs[ni] & NEED_OUT)
            c->kept_full[c->root[n->out]] = true;
    }
    choose_recompute(c);
}

/* ------------------------------------------------------------ emission */

static void emit_forward(lower_ctx *c) {
    const ir_graph *g = c->g;
    /* Caller inputs read in backward are copied now: backward gets no inputs. */
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_INPUT || !c->kept_full[v])
            continue;
        int b = new_buf(c, pool_printf(c->p, "copy %s", val->name), BUF_SAVED, SPACE_ARENA, val->dtype, val->shape, v);
        lc_step(c, NULL, RTK_copy, LC_W(b), LC_R(value_buf(c, v)), LC_I(c->prog->bufs[b].bytes));
        c->saved_copy[v] = b;
    }
    for (int ni = 0; ni < g->nnodes; ni++) {
        const ir_node *n = &g->nodes[ni];
        const op_def *op = op_of(g, n);
        if (!c->live[ni])
            continue;
        const ir_value *out = &g->vals[n->out];
        if (!op->is_view && !(op->identity_in_infer && !c->train))
            c->buf[n->out] = new_buf(c, out->name, BUF_ACT, SPACE_ARENA, out->dtype, out->shape, n->out);
        /* An element-wise output may overwrite an input that dies here; plan.c checks that it does. */
        for (int i = 0, ob = c->buf[n->out]; op->elementwise && ob >= 0 && i < n->nin; i++) {
            int ib = c->buf[n->in[i]];
            if (c->prog->bufs[ob].inplace_of < 0 && ib >= 0 && c->prog->bufs[ib].space == SPACE_ARENA &&
                c->prog->bufs[ib].bytes == c->prog->bufs[ob].bytes && !c->kept_full[c->root[n->in[i]]])
                c->prog->bufs[ob].inplace_of = ib;
        }
        for (int k = 0; k < op->naux; k++) {
            if (!(c->needs[ni] & NEED_AUX(k)))
                continue;
            ir_dtype dt;
            ir_shape shape;
            op->aux_shape(g, n, k, &dt, &shape);
            c->aux[ni * IR_MAX_AUX + k] =
                new_buf(c, pool_printf(c->p, "aux%d %s", k, out->name), BUF_SAVED, SPACE_ARENA, dt, shape, n->out);
        }
        if (op->identity_in_infer && !c->train)
            lc_alias_out(c, n, 0);
        else
            op->forward(c, n);
        if ((c->needs[ni] & NEED_OUT_SIGN) && !c->kept_full[c->root[n->out]]) {
            int m =
                new_buf(c, pool_printf(c->p, "mask %s", out->name), BUF_SAVED, SPACE_ARENA, DT_BIT, out->shape, n->out);
            lc_step(c, n, RTK_sign_mask, LC_R(c->buf[n->out]), LC_W(m), LC_I(shape_numel(&out->shape)));
            c->mask[ni] = m;
        }
    }
    for (int o = 0; o < g->noutputs; o++) {
        int v = g->outputs[o];
        const ir_value *val = &g->vals[v];
        int b = new_buf(c, val->name, BUF_OUTPUT, SPACE_OUTPUT, val->dtype, val->shape, v);
        c->prog->bufs[b].index = o;
        lc_step(c, NULL, RTK_copy, LC_W(b), LC_R(value_buf(c, v)), LC_I(c->prog->bufs[b].bytes));
    }
    c->prog->nfwd = c->prog->nsteps;
}

static void emit_backward(lower_ctx *c) {
    const ir_graph *g = c->g;
    int loss = g->outputs[0];
    if (c->needs_grad[loss]) {
        const ir_value *val = &g->vals[loss];
        int b = new_buf(c, pool_printf(c->p, "d %s", val->name), BUF_GRAD, SPACE_ARENA, val->dtype, val->shape, loss);
        lc_step(c, NULL, RTK_fill_f32, LC_W(b), LC_I(shape_numel(&val->shape)), LC_F(1.0));
        c->grad[loss] = b;
    }
    for (int ni = g->nnodes - 1; ni >= 0; ni--) {
        const ir_node *n = &g->nodes[ni];
        if (!c->vjps[ni])
            continue;
        for (int i = 0; i < n->nin; i++)
            if (c->vjps[ni] & (1u << i))
                op_of(g, n)->vjp(c, n, i);
    }
    /* A requested gradient that nothing contributes to is zero, not garbage. */
    for (int v = 0; v < g->nvals; v++) {
        if (c->m->grad_offset[v] < 0 || c->grad[v] >= 0)
            continue;
        const ir_value *val = &g->vals[v];
        int b =
            new_buf(c, pool_printf(c->p, "d %s", val->name), val->kind == VAL_INPUT ? BUF_INPUT_GRAD : BUF_PARAM_GRAD,
                    SPACE_GRADS, val->dtype, val->shape, v);
        c->prog->bufs[b].offset = c->m->grad_offset[v];
        lc_step(c, NULL, RTK_fill_f32, LC_W(b), LC_I(shape_numel(&val->shape)), LC_F(0.0));
    }
}

static void lower_program(ir_module *m, ir_program *prog, bool train) {
    const ir_graph *g = m->graph;
    pool *p = g->pool;
    int nv = g->nvals, nn = g->nnodes;
    lower_ctx c = {.m = m, .g = g, .p = p, .prog = prog, .train = train};
    c.buf = pool_alloc(p, sizeof(int) * (size_t)nv);
    c.saved_copy = pool_alloc(p, sizeof(int) * (size_t)nv);
    c.grad = pool_alloc(p, sizeof(int) * (size_t)nv);
    c.root = pool_alloc(p, sizeof(int) * (size_t)nv);
    c.needs_grad = pool_alloc(p, sizeof(bool) * (size_t)nv);
    c.reaches_loss = pool_alloc(p, sizeof(bool) * (size_t)nv);
    c.kept_full = pool_alloc(p, sizeof(bool) * (size_t)nv);
    c.recompute = pool_alloc(p, sizeof(bool) * (size_t)nv);
    c.remade = pool_alloc(p, sizeof(int) * (size_t)nv);
    c.live = pool_alloc(p, sizeof(bool) * (size_t)nn + 1);
    c.vjps = pool_alloc(p, sizeof(uint32_t) * (size_t)nn + 1);
    c.needs = pool_alloc(p, sizeof(uint32_t) * (size_t)nn + 1);
    c.aux = pool_alloc(p, sizeof(int) * (size_t)nn * IR_MAX_AUX + 1);
    c.mask = pool_alloc(p, sizeof(int) * (size_t)nn + 1);
    for (int v = 0; v < nv; v++)
        c.buf[v] = c.saved_copy[v] = c.grad[v] = c.remade[v] = -1;
    for (int k = 0; k < nn * IR_MAX_AUX; k++)
        c.aux[k] = -1;
    for (int k = 0; k < nn; k++)
        c.mask[k] = -1;

    analyse(&c);
    emit_forward(&c);
    if (train) {
        /* Upper bound on buffers backward can create: a few per VJP. */
        int bound = prog->nbufs + 4 * nn * IR_MAX_IN + nv + 8;
        c.grad_donated = pool_alloc(p, sizeof(bool) * (size_t)bound);
        c.ngrad_donated = bound;
        emit_backward(&c);
        IR_ASSERT(prog->nbufs <= bound);
    }
}

/* Where to point at an arena buffer: its value's definition, or for a
 * scratch the op of the first step using it. */
static src_loc buf_loc(const ir_graph *g, const ir_program *prog, int b) {
    if (prog->bufs[b].value >= 0)
        return g->vals[prog->bufs[b].value].loc;
    for (int t = 0; t < prog->nsteps; t++)
        for (int k = 0; k < prog->steps[t].nopnd; k++)
            if (prog->steps[t].opnd[k].kind == OPND_BUF && prog->steps[t].opnd[k].buf == b && prog->steps[t].node >= 0)
                return g->nodes[prog->steps[t].node].loc;
    return (src_loc){0, 0};
}

/* The module's memory, continued from the blocks (layout.c): every arena
 * buffer of the program at its aligned size. */
static bool count_arena(const ir_module *m, const ir_program *prog, int64_t *total, diag_ctx *d) {
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->space == SPACE_ARENA && !layout_add(total, buf->bytes, 1)) {
            layout_too_large(d, buf_loc(m->graph, prog, b), buf->name);
            return false;
        }
    }
    return true;
}

bool pass_lower(ir_module *m, diag_ctx *d) {
    IR_ASSERT(m->graph->noutputs > 0); /* the pipeline checked */
    /* fits in int64: layout.c has added it up */
    int64_t total = m->params_bytes + m->grads_bytes + m->opt_state_bytes;
    if (!m->infer_only)
        lower_program(m, &m->train, true);
    lower_program(m, &m->infer, false);
    return count_arena(m, &m->train, &total, d) && count_arena(m, &m->infer, &total, d);
}
