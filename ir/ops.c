/* ops.c: the op table. Each op is described once, here: its call signature,
 * its shape rule (which creates the params it owns), its forward lowering, and
 * for every differentiable input the VJP together with what that VJP reads
 * from forward time. The residual set of a model is derived from these needs
 * (passes/lower.c), so an op never decides on its own what to keep.
 *
 * Adding an op: write its four hooks, add a row to op_table, add its kernels
 * to runtime/rt.h and runtime/rt.c.
 */
#include "ir.h"

#include <string.h>

static const ir_value *in_val(elab_ctx *e, const ir_node *n, int i) {
    return &elab_graph(e)->vals[n->in[i]];
}

static const ir_value *gval(const ir_graph *g, const ir_node *n, int i) {
    return &g->vals[n->in[i]];
}

static int64_t numel_of(const ir_graph *g, int value) { return shape_numel(&g->vals[value].shape); }

static bool require_f32(elab_ctx *e, const ir_node *n, int i, const char *what) {
    const ir_value *v = in_val(e, n, i);
    if (v->dtype != DT_F32) {
        elab_error(e, n->loc, "%s '%s' must be f32, not %s", what, v->name, dtype_name(v->dtype));
        return false;
    }
    return true;
}

static bool require_rank_at_least(elab_ctx *e, const ir_node *n, int i, int rank, const char *what) {
    const ir_value *v = in_val(e, n, i);
    if (v->shape.rank < rank) {
        elab_error(e, n->loc, "%s '%s' must have rank >= %d, but has shape %s", what, v->name, rank,
                   shape_str(elab_graph(e)->pool, &v->shape));
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ linear
 * y = x w^T + b over the last dimension of x. in: x, weight [out, K], bias [out] */

static bool linear_infer(elab_ctx *e, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(e, n, 0, "linear input") || !require_rank_at_least(e, n, 0, 1, "linear input"))
        return false;
    int64_t out_features = n->attr[0];
    if (out_features <= 0) {
        elab_error(e, n->loc, "linear: out_features must be positive, got %lld", (long long)out_features);
        return false;
    }
    const ir_value *x = in_val(e, n, 0);
    int64_t in_features = x->shape.dim[x->shape.rank - 1];
    ir_shape w = {2, {out_features, in_features}};
    elab_add_param(e, n, "weight", VAL_PARAM, w, INIT_KAIMING_UNIFORM, in_features);
    if (n->attr[1]) {
        ir_shape b = {1, {out_features}};
        elab_add_param(e, n, "bias", VAL_PARAM, b, INIT_BIAS_UNIFORM, in_features);
    }
    *dt = DT_F32;
    *shape = in_val(e, n, 0)->shape;
    shape->dim[shape->rank - 1] = out_features;
    return true;
}

/* M rows of K features into N outputs */
static void linear_dims(const ir_graph *g, const ir_node *n, int64_t *M, int64_t *K, int64_t *N) {
    const ir_value *w = gval(g, n, 1);
    *N = w->shape.dim[0];
    *K = w->shape.dim[1];
    *M = numel_of(g, n->in[0]) / *K;
}

static uint32_t linear_needs(const ir_graph *g, const ir_node *n, int input) {
    switch (input) {
    case 0: return NEED_IN(1); /* dx = dy w */
    case 1: return NEED_IN(0); /* dw = dy^T x: the only reason to keep x */
    default: return 0;         /* db = sum dy */
    }
}

static void linear_forward(lower_ctx *c, const ir_node *n) {
    int64_t M, K, N;
    linear_dims(lc_graph(c), n, &M, &K, &N);
    int bias = n->nin > 2 ? lc_in(c, n, 2) : -1;
    lc_step(c, n, "rt_linear_fwd", "rrrwiii", lc_in(c, n, 0), lc_in(c, n, 1), bias, lc_out(c, n), M, K, N);
}

static void linear_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t M, K, N, acc;
    linear_dims(lc_graph(c), n, &M, &K, &N);
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    if (input == 0)
        lc_step(c, n, "rt_linear_bwd_x", "rrwiiii", dy, lc_saved(c, n, NEED_IN(1)), dst, M, K, N, acc);
    else if (input == 1)
        lc_step(c, n, "rt_linear_bwd_w", "rrwiiii", dy, lc_saved(c, n, NEED_IN(0)), dst, M, K, N, acc);
    else
        lc_step(c, n, "rt_sum_rows", "rwiii", dy, dst, M, N, acc);
}

/* ------------------------------------------------------------------ matmul
 * c[M,N] = a[M,K] b[K,N], both operands tensors (no params). */

static bool matmul_infer(elab_ctx *e, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(e, n, 0, "matmul operand") || !require_f32(e, n, 1, "matmul operand"))
        return false;
    const ir_value *a = in_val(e, n, 0), *b = in_val(e, n, 1);
    pool *p = elab_graph(e)->pool;
    if (a->shape.rank != 2 || b->shape.rank != 2) {
        elab_error(e, n->loc, "matmul needs two matrices, got %s and %s", shape_str(p, &a->shape),
                   shape_str(p, &b->shape));
        return false;
    }
    if (a->shape.dim[1] != b->shape.dim[0]) {
        elab_error(e, n->loc, "matmul: inner dimensions differ: %s x %s", shape_str(p, &a->shape),
                   shape_str(p, &b->shape));
        return false;
    }
    *dt = DT_F32;
    *shape = (ir_shape){2, {a->shape.dim[0], b->shape.dim[1]}};
    return true;
}

static void matmul_dims(const ir_graph *g, const ir_node *n, int64_t *M, int64_t *K, int64_t *N) {
    *M = gval(g, n, 0)->shape.dim[0];
    *K = gval(g, n, 0)->shape.dim[1];
    *N = gval(g, n, 1)->shape.dim[1];
}

static uint32_t matmul_needs(const ir_graph *g, const ir_node *n, int input) {
    return input == 0 ? NEED_IN(1) : NEED_IN(0);
}

static void matmul_forward(lower_ctx *c, const ir_node *n) {
    int64_t M, K, N;
    matmul_dims(lc_graph(c), n, &M, &K, &N);
    lc_step(c, n, "rt_matmul_fwd", "rrwiii", lc_in(c, n, 0), lc_in(c, n, 1), lc_out(c, n), M, K, N);
}

static void matmul_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t M, K, N, acc;
    matmul_dims(lc_graph(c), n, &M, &K, &N);
    int dc = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    if (input == 0)
        lc_step(c, n, "rt_matmul_bwd_a", "rrwiiii", dc, lc_saved(c, n, NEED_IN(1)), dst, M, K, N, acc);
    else
        lc_step(c, n, "rt_matmul_bwd_b", "rrwiiii", lc_saved(c, n, NEED_IN(0)), dc, dst, M, K, N, acc);
}

/* ------------------------------------------------------------------ relu */

static bool relu_infer(elab_ctx *e, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(e, n, 0, "relu input"))
        return false;
    *dt = DT_F32;
    *shape = in_val(e, n, 0)->shape;
    return true;
}

static uint32_t relu_needs(const ir_graph *g, const ir_node *n, int input) {
    return NEED_OUT_SIGN; /* dx = dy * (y > 0): one bit per element at most */
}

static void relu_forward(lower_ctx *c, const ir_node *n) {
    lc_step(c, n, "rt_relu_fwd", "rwi", lc_in(c, n, 0), lc_out(c, n), numel_of(lc_graph(c), n->out));
}

static void relu_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc, count = numel_of(lc_graph(c), n->out);
    bool is_mask;
    int sign = lc_saved_sign(c, n, &is_mask);
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, is_mask ? "rt_relu_bwd_mask" : "rt_relu_bwd_out", "rrwii", sign, dy, dst, count, acc);
}

/* ------------------------------------------------------------------ add
 * a + b with equal shapes, or b's shape a suffix of a's (b repeated over a's
 * leading dimensions, like a bias). */

static bool add_infer(elab_ctx *e, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(e, n, 0, "add operand") || !require_f32(e, n, 1, "add operand"))
        return false;
    const ir_value *a = in_val(e, n, 0), *b = in_val(e, n, 1);
    bool suffix = b->shape.rank <= a->shape.rank;
    for (int k = 0; suffix && k < b->shape.rank; k++)
        suffix = b->shape.dim[b->shape.rank - 1 - k] == a->shape.dim[a->shape.rank - 1 - k];
    if (!suffix) {
        pool *p = elab_graph(e)->pool;
        elab_error(e, n->loc,
                   "add: shapes %s and %s do not match (the second may only be a trailing part of the first)",
                   shape_str(p, &a->shape), shape_str(p, &b->shape));
        return false;
    }
    *dt = DT_F32;
    *shape = a->shape;
    return true;
}

static uint32_t add_needs(const ir_graph *g, const ir_node *n, int input) { return 0; }

static void add_forward(lower_ctx *c, const ir_node *n) {
    const ir_graph *g = lc_graph(c);
    int64_t inner = numel_of(g, n->in[1]);
    lc_step(c, n, "rt_add_fwd", "rrwii", lc_in(c, n, 0), lc_in(c, n, 1), lc_out(c, n),
            numel_of(g, n->in[0]) / inner, inner);
}

static void add_vjp(lower_ctx *c, const ir_node *n, int input) {
    const ir_graph *g = lc_graph(c);
    int64_t inner = numel_of(g, n->in[1]), outer = numel_of(g, n->in[0]) / inner;
    if (input == 0 || outer == 1) {
        lc_grad_pass(c, n, input);
        return;
    }
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, "rt_sum_rows", "rwiii", dy, dst, outer, inner, acc);
}

/* ------------------------------------------------------------------ flatten, reshape
 * Pure reinterpretations: the output shares the input's storage and the
 * gradient passes through. */

static bool flatten_infer(elab_ctx *e, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    const ir_value *x = in_val(e, n, 0);
    int64_t start = n->attr[0];
    if (start < 0)
        start += x->shape.rank;
    if (start < 0 || start >= x->shape.rank) {
        elab_error(e, n->loc, "flatten: start_dim %lld is out of range for shape %s", (long long)n->attr[0],
                   shape_str(elab_graph(e)->pool, &x->shape));
        return false;
    }
    *dt = x->dtype;
    shape->rank = (int)start + 1;
    int64_t rest = 1;
    for (int k = 0; k < x->shape.rank; k++) {
        if (k < start)
            shape->dim[k] = x->shape.dim[k];
        else
            rest *= x->shape.dim[k];
    }
    shape->dim[start] = rest;
    return true;
}

static bool reshape_infer(elab_ctx *e, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    const ir_value *x = in_val(e, n, 0);
    pool *p = elab_graph(e)->pool;
    int rank = n->nattr;
    if (rank < 1 || rank > IR_MAX_RANK) {
        elab_error(e, n->loc, "reshape needs between 1 and %d dimensions, got %d", IR_MAX_RANK, rank);
        return false;
    }
    int infer_at = -1;
    int64_t known = 1;
    for (int k = 0; k < rank; k++) {
        int64_t d = n->attr[k];
        if (d == -1 && infer_at < 0) {
            infer_at = k;
        } else if (d <= 0) {
            elab_error(e, n->loc, "reshape: dimension %d is %lld; dimensions must be positive (one may be -1)", k,
                       (long long)d);
            return false;
        } else {
            known *= d;
        }
    }
    int64_t total = shape_numel(&x->shape);
    shape->rank = rank;
    for (int k = 0; k < rank; k++)
        shape->dim[k] = n->attr[k];
    if (infer_at >= 0 && total % known == 0)
        shape->dim[infer_at] = total / known;
    if (shape_numel(shape) != total || (infer_at >= 0 && total % known != 0)) {
        elab_error(e, n->loc, "reshape: cannot view %s (%lld elements) as %s", shape_str(p, &x->shape),
                   (long long)total, shape_str(p, shape));
        return false;
    }
    *dt = x->dtype;
    return true;
}

static uint32_t view_needs(const ir_graph *g, const ir_node *n, int input) { return 0; }
static void view_forward(lower_ctx *c, const ir_node *n) { lc_alias_out(c, n, 0); }
static void view_vjp(lower_ctx *c, const ir_node *n, int input) { lc_grad_pass(c, n, input); }

/* ------------------------------------------------------------------ cross_entropy
 * mean over the batch of -log softmax(logits)[label]. aux 0: the softmax. */

static bool cross_entropy_infer(elab_ctx *e, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    const ir_value *logits = in_val(e, n, 0), *labels = in_val(e, n, 1);
    pool *p = elab_graph(e)->pool;
    if (!require_f32(e, n, 0, "cross_entropy logits"))
        return false;
    if (logits->shape.rank != 2) {
        elab_error(e, n->loc, "cross_entropy: logits must be [batch, classes], got %s",
                   shape_str(p, &logits->shape));
        return false;
    }
    if (labels->dtype != DT_I32 || labels->shape.rank != 1 || labels->shape.dim[0] != logits->shape.dim[0]) {
        elab_error(e, n->loc, "cross_entropy: labels must be i32[%lld], got %s%s",
                   (long long)logits->shape.dim[0], dtype_name(labels->dtype), shape_str(p, &labels->shape));
        return false;
    }
    *dt = DT_F32;
    shape->rank = 0;
    return true;
}

static uint32_t cross_entropy_needs(const ir_graph *g, const ir_node *n, int input) {
    return NEED_AUX(0) | NEED_IN(1);
}

static void cross_entropy_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    *dt = DT_F32;
    *shape = gval(g, n, 0)->shape;
}

static void cross_entropy_forward(lower_ctx *c, const ir_node *n) {
    const ir_shape *s = &gval(lc_graph(c), n, 0)->shape;
    lc_step(c, n, "rt_cross_entropy_fwd", "rrwwii", lc_in(c, n, 0), lc_in(c, n, 1), lc_aux(c, n, 0),
            lc_out(c, n), s->dim[0], s->dim[1]);
}

static void cross_entropy_vjp(lower_ctx *c, const ir_node *n, int input) {
    const ir_shape *s = &gval(lc_graph(c), n, 0)->shape;
    int64_t acc;
    int dloss = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, "rt_cross_entropy_bwd", "rrrwiii", lc_saved(c, n, NEED_AUX(0)), lc_saved(c, n, NEED_IN(1)),
            dloss, dst, s->dim[0], s->dim[1], acc);
}

/* ------------------------------------------------------------------ mse_loss
 * mean of (pred - target)^2. aux 0: pred - target, which both VJPs read. */

static bool mse_infer(elab_ctx *e, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(e, n, 0, "mse_loss prediction") || !require_f32(e, n, 1, "mse_loss target"))
        return false;
    const ir_value *a = in_val(e, n, 0), *b = in_val(e, n, 1);
    if (!shape_eq(&a->shape, &b->shape)) {
        pool *p = elab_graph(e)->pool;
        elab_error(e, n->loc, "mse_loss: prediction %s and target %s differ in shape", shape_str(p, &a->shape),
                   shape_str(p, &b->shape));
        return false;
    }
    *dt = DT_F32;
    shape->rank = 0;
    return true;
}

static uint32_t mse_needs(const ir_graph *g, const ir_node *n, int input) { return NEED_AUX(0); }

static void mse_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    *dt = DT_F32;
    *shape = gval(g, n, 0)->shape;
}

static void mse_forward(lower_ctx *c, const ir_node *n) {
    lc_step(c, n, "rt_mse_fwd", "rrwwi", lc_in(c, n, 0), lc_in(c, n, 1), lc_aux(c, n, 0), lc_out(c, n),
            numel_of(lc_graph(c), n->in[0]));
}

static void mse_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc;
    int dloss = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, "rt_mse_bwd", "rrwiii", lc_saved(c, n, NEED_AUX(0)), dloss, dst,
            numel_of(lc_graph(c), n->in[0]), input == 0 ? (int64_t)1 : (int64_t)-1, acc);
}

/* ------------------------------------------------------------------ the table */

#define T(name) {name, ARG_TENSOR, false, 0}
#define I(name) {name, ARG_INT, false, 0}
#define I_OPT(name, v) {name, ARG_INT, true, v}
#define B_OPT(name, v) {name, ARG_BOOL, true, v}
#define INTS(name) {name, ARG_INTS, false, 0}

/* Columns: signature; shape rule; differentiable inputs (bit i = input i);
 * residual needs; aux tensors; forward; VJP. */
const op_def op_table[] = {
    {.name = "linear", .args = {T("x"), I("out_features"), B_OPT("bias", 1)}, .nargs = 3,
     .infer = linear_infer, .diff_inputs = 0x7, .needs = linear_needs,
     .forward = linear_forward, .vjp = linear_vjp},
    {.name = "matmul", .args = {T("a"), T("b")}, .nargs = 2,
     .infer = matmul_infer, .diff_inputs = 0x3, .needs = matmul_needs,
     .forward = matmul_forward, .vjp = matmul_vjp},
    {.name = "relu", .args = {T("x")}, .nargs = 1,
     .infer = relu_infer, .diff_inputs = 0x1, .needs = relu_needs,
     .forward = relu_forward, .vjp = relu_vjp},
    {.name = "add", .args = {T("a"), T("b")}, .nargs = 2,
     .infer = add_infer, .diff_inputs = 0x3, .needs = add_needs,
     .forward = add_forward, .vjp = add_vjp},
    {.name = "flatten", .args = {T("x"), I_OPT("start_dim", 1)}, .nargs = 2,
     .infer = flatten_infer, .diff_inputs = 0x1, .needs = view_needs,
     .forward = view_forward, .vjp = view_vjp, .is_view = true},
    {.name = "reshape", .args = {T("x"), INTS("shape")}, .nargs = 2,
     .infer = reshape_infer, .diff_inputs = 0x1, .needs = view_needs,
     .forward = view_forward, .vjp = view_vjp, .is_view = true},
    {.name = "cross_entropy", .args = {T("logits"), T("labels")}, .nargs = 2,
     .infer = cross_entropy_infer, .diff_inputs = 0x1, .needs = cross_entropy_needs,
     .naux = 1, .aux_shape = cross_entropy_aux,
     .forward = cross_entropy_forward, .vjp = cross_entropy_vjp},
    {.name = "mse_loss", .args = {T("pred"), T("target")}, .nargs = 2,
     .infer = mse_infer, .diff_inputs = 0x3, .needs = mse_needs,
     .naux = 1, .aux_shape = mse_aux,
     .forward = mse_forward, .vjp = mse_vjp},
};
const int op_count = (int)(sizeof op_table / sizeof op_table[0]);

const op_def *op_find(const char *name) {
    for (int k = 0; k < op_count; k++)
        if (strcmp(op_table[k].name, name) == 0)
            return &op_table[k];
    return NULL;
}
