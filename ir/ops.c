/* ops.c: the op table. Each op is described once, here: its call signature,
 * its shape rule (which creates the params it owns), its forward lowering, and
 * for every differentiable input the VJP together with what that VJP reads
 * from forward time. The residual set of a model is derived from these needs
 * (passes/lower.c), so an op never decides on its own what to keep.
 *
 * The hooks see the frontend through shape_ctx (sc_*) and the lowering
 * through lower_ctx (lc_*), both declared in ir.h.
 *
 * Adding an op touches this file, the runtime and the docs and tests, nothing
 * else:
 *   1. here: its section (shape rule, needs, forward, VJPs; aux tensors with
 *      their shape and an aux_doc) and its row in op_table;
 *   2. its kernels in runtime/rt.h and runtime/rt.c, with unit tests in
 *      tests/unit/test_runtime.c;
 *   3. its row in docs/language.md's op table (and a section if it keeps
 *      anything), and a call of it in tests/unit/test_lower.c's all_ops_src,
 *      which makes docs/autodiff.md's needs table: paste what the test
 *      prints;
 *   4. a model calling it among tests/e2e/cases.txt, with a configuration
 *      per combination of which of its inputs need gradients (finite
 *      differences in the generated code), and a golden case
 *      (tests/golden) for each error its shape rule reports.
 * The test `lower` checks the parts of 3 and 4 a program can see.
 */
#include "ir.h"
#include "ck.h"
#include "rt.h" /* rt_out_size, rt_conv2d_*scratch_floats: sizes shared with the kernels */

#include <math.h>
#include <string.h>

static const ir_value *gval(const ir_graph *g, const ir_node *n, int i) { return &g->vals[n->in[i]]; }

static int64_t numel_of(const ir_graph *g, int value) { return shape_numel(&g->vals[value].shape); }

static bool require_f32(shape_ctx *sc, const ir_node *n, int i, const char *what) {
    const ir_value *v = sc_in(sc, n, i);
    if (v->dtype != DT_F32) {
        sc_error(sc, n->loc, "%s '%s' must be f32, not %s", what, v->name, dtype_name(v->dtype));
        return false;
    }
    return true;
}

static bool require_rank_at_least(shape_ctx *sc, const ir_node *n, int i, int rank, const char *what) {
    const ir_value *v = sc_in(sc, n, i);
    if (v->shape.rank < rank) {
        sc_error(sc, n->loc, "%s '%s' must have rank >= %d, but has shape %s", what, v->name, rank,
                 shape_str(sc_graph(sc)->pool, &v->shape));
        return false;
    }
    return true;
}

/* The needs of a VJP that reads nothing from forward time (add, views,
 * average pooling): d/d input is a function of d/d output alone. */
static uint32_t needs_nothing(lower_ctx *c, const ir_node *n, int input) { return 0; }

/* ------------------------------------------------------------------ linear
 * y = x w^T + b over the last dimension of x. in: x, weight [out, K], bias [out].
 * With in_out, the weight is stored [K, out] and y = x w + b: Hugging Face
 * GPT-2's Conv1D layout, so that its checkpoints load as they are. */

enum { LINEAR_OUT_FEATURES, LINEAR_BIAS, LINEAR_IN_OUT }; /* n->attr[] */

static bool linear_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "linear input") || !require_rank_at_least(sc, n, 0, 1, "linear input"))
        return false;
    int64_t out_features = n->attr[LINEAR_OUT_FEATURES];
    if (out_features <= 0) {
        sc_error(sc, n->loc, "linear: out_features must be positive, got %lld", (long long)out_features);
        return false;
    }
    const ir_value *x = sc_in(sc, n, 0);
    int64_t in_features = x->shape.dim[x->shape.rank - 1];
    ir_shape w = n->attr[LINEAR_IN_OUT] ? (ir_shape){2, {in_features, out_features}}
                                        : (ir_shape){2, {out_features, in_features}};
    sc_param(sc, n, "weight", DT_F32, w, INIT_KAIMING_UNIFORM, in_features);
    if (n->attr[LINEAR_BIAS]) {
        ir_shape b = {1, {out_features}};
        sc_param(sc, n, "bias", DT_F32, b, INIT_BIAS_UNIFORM, in_features);
    }
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    shape->dim[shape->rank - 1] = out_features;
    return true;
}

/* M rows of K features into N outputs; the weight is input 1 (linear and
 * lora_linear), stored [K, N] when in_out */
static void linear_dims(const ir_graph *g, const ir_node *n, bool in_out, int64_t *M, int64_t *K, int64_t *N) {
    const ir_value *w = gval(g, n, 1);
    *N = w->shape.dim[in_out ? 1 : 0];
    *K = w->shape.dim[in_out ? 0 : 1];
    *M = numel_of(g, n->in[0]) / *K;
}

static uint32_t linear_needs(lower_ctx *c, const ir_node *n, int input) {
    switch (input) {
    case 0: return NEED_IN(1); /* dx = dy w */
    case 1: return NEED_IN(0); /* dw = dy^T x: the only reason to keep x */
    default: return 0;         /* db = sum dy */
    }
}

/* y = x w^T + b (x w + b when in_out) with x, w, b inputs 0, 1, 2 (b only if
 * has_bias): linear, and the base layer of lora_linear. */
static void linear_base_forward(lower_ctx *c, const ir_node *n, bool has_bias, bool in_out) {
    int64_t M, K, N;
    linear_dims(lc_graph(c), n, in_out, &M, &K, &N);
    /* An input's or param's buffer is made at its first use, so the order of
     * these calls is the order of the plan's buffer list: the last input first. */
    int bias = has_bias ? lc_in(c, n, 2) : -1, w = lc_in(c, n, 1), x = lc_in(c, n, 0);
    lc_step(c, n, in_out ? RTK_linear_in_out_fwd : RTK_linear_fwd, LC_R(x), LC_R(w), LC_R(bias), LC_W(lc_out(c, n)),
            LC_I(M), LC_I(K), LC_I(N));
}

static void linear_forward(lower_ctx *c, const ir_node *n) {
    linear_base_forward(c, n, n->nin > 2, n->attr[LINEAR_IN_OUT] != 0);
}

/* d input 0 (x), 1 (w) or 2 (b) of linear_base_forward's y: the first
 * contribution to it (acc from lc_grad_in) */
static void linear_base_vjp(lower_ctx *c, const ir_node *n, int input, bool in_out) {
    int64_t M, K, N, acc;
    linear_dims(lc_graph(c), n, in_out, &M, &K, &N);
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    /* x [M,K] times an [in, out] weight is a matmul: its VJPs are matmul's */
    if (input == 0 && in_out)
        lc_step(c, n, RTK_matmul_bwd_a, LC_R(dy), LC_R(lc_saved(c, n, NEED_IN(1))), LC_W(dst), LC_I(M), LC_I(K),
                LC_I(N), LC_I(acc));
    else if (input == 1 && in_out)
        lc_step(c, n, RTK_matmul_bwd_b, LC_R(lc_saved(c, n, NEED_IN(0))), LC_R(dy), LC_W(dst), LC_I(M), LC_I(K),
                LC_I(N), LC_I(acc));
    else if (input == 0)
        lc_step(c, n, RTK_linear_bwd_x, LC_R(dy), LC_R(lc_saved(c, n, NEED_IN(1))), LC_W(dst), LC_I(M), LC_I(K),
                LC_I(N), LC_I(acc));
    else if (input == 1)
        lc_step(c, n, RTK_linear_bwd_w, LC_R(dy), LC_R(lc_saved(c, n, NEED_IN(0))), LC_W(dst), LC_I(M), LC_I(K),
                LC_I(N), LC_I(acc));
    else
        lc_step(c, n, RTK_sum_rows, LC_R(dy), LC_W(dst), LC_I(M), LC_I(N), LC_I(acc));
}

static void linear_vjp(lower_ctx *c, const ir_node *n, int input) {
    linear_base_vjp(c, n, input, n->attr[LINEAR_IN_OUT] != 0);
}

static int64_t last_dim(const ir_graph *g, int value); /* with rms_norm */

/* ------------------------------------------------------------------ lora_linear
 * A linear layer with a low-rank adapter (LoRA, as PEFT's lora.Linear):
 * y = x w^T + b + s B(A(dropout(x))), s = alpha / r (alpha / sqrt(r) with
 * rslora). in: x, weight ([out, K], or [K, out] with in_out), bias [out] (if
 * bias), lora_A.weight [r, K] (Kaiming-uniform, as a linear weight), lora_B.weight
 * [out, r] (zeros: a fresh adapter changes nothing), and with dropout a
 * non-persistent i64 buffer lora_dropout.rng_state. Dropout applies in
 * training only; its mask is regenerated from the seed (aux 1) like dropout's.
 * aux 0: u = s A(dropout(x)), [rows, r], kept for d B.
 *
 * In row form, with d = dropout(x): u = s d A^T, y = base + u B^T; then
 * g = s dy B, d A = g^T d, d B = dy^T u, d x = base's + dropout'(g A). */

enum { LORA_OUT, LORA_R, LORA_ALPHA, LORA_DROPOUT, LORA_BIAS, LORA_IN_OUT, LORA_RSLORA }; /* attr[] / fattr[] */
enum { LORA_X, LORA_WEIGHT }; /* n->in[]: then bias (if any), A, B, rng_state (with dropout) */
enum { LORA_AUX_U, LORA_AUX_SEED };

static int lora_a(const ir_node *n) { return n->attr[LORA_BIAS] ? 3 : 2; }
static int lora_b(const ir_node *n) { return lora_a(n) + 1; }
static int lora_rng(const ir_node *n) { return lora_a(n) + 2; }
static bool lora_drops(const ir_node *n) { return n->fattr[LORA_DROPOUT] > 0; }

static double lora_scale(const ir_node *n) {
    double r = (double)n->attr[LORA_R];
    return n->fattr[LORA_ALPHA] / (n->attr[LORA_RSLORA] ? sqrt(r) : r);
}

bool ir_lora_adapter(const ir_node *n, ir_adapter *a) {
    if (strcmp(op_table[n->op].name, "lora_linear") != 0)
        return false;
    *a = (ir_adapter){.weight = n->in[LORA_WEIGHT],
                      .lora_a = n->in[lora_a(n)],
                      .lora_b = n->in[lora_b(n)],
                      .r = n->attr[LORA_R],
                      .alpha = n->fattr[LORA_ALPHA],
                      .scale = lora_scale(n),
                      .dropout = n->fattr[LORA_DROPOUT],
                      .in_out = n->attr[LORA_IN_OUT] != 0,
                      .rslora = n->attr[LORA_RSLORA] != 0};
    return true;
}

void ir_lora_adapt(ir_graph *g, ir_node *n, const ir_lora *l) {
    IR_ASSERT(!strcmp(op_table[n->op].name, "linear"));
    const ir_value *x = &g->vals[n->in[0]];
    int64_t in = x->shape.dim[x->shape.rank - 1], out = n->attr[LINEAR_OUT_FEATURES];
    bool bias = n->attr[LINEAR_BIAS] != 0, in_out = n->attr[LINEAR_IN_OUT] != 0;
    memset(n->attr, 0, sizeof n->attr);
    memset(n->fattr, 0, sizeof n->fattr);
    n->op = (int)(op_find("lora_linear") - op_table);
    n->attr[LORA_OUT] = out, n->attr[LORA_R] = l->r, n->fattr[LORA_ALPHA] = l->alpha;
    n->fattr[LORA_DROPOUT] = l->dropout, n->attr[LORA_BIAS] = bias, n->attr[LORA_IN_OUT] = in_out;
    n->attr[LORA_RSLORA] = l->rslora;
    n->nattr = LORA_RSLORA + 1;
    struct {
        const char *suffix;
        ir_val_kind kind;
        ir_dtype dt;
        ir_shape shape;
        int init;
    } owned[] = {{"lora_A.weight", VAL_PARAM, DT_F32, {2, {l->r, in}}, INIT_KAIMING_UNIFORM},
                 {"lora_B.weight", VAL_PARAM, DT_F32, {2, {out, l->r}}, INIT_ZEROS},
                 {"lora_dropout.rng_state", VAL_BUFFER, DT_I64, {0, {0}}, INIT_ZEROS}};
    for (int o = 0; o < (l->dropout > 0 ? 3 : 2); o++) {
        IR_ASSERT(n->nin < IR_MAX_IN);
        int v = ir_add_value(g, pool_printf(g->pool, "%s.%s", n->name, owned[o].suffix), owned[o].kind, owned[o].dt,
                             owned[o].shape, l->loc);
        g->vals[v].init = owned[o].init;
        g->vals[v].fan_in = owned[o].init == INIT_KAIMING_UNIFORM ? in : 0;
        g->vals[v].nonpersistent = owned[o].kind == VAL_BUFFER;
        n->in[n->nin++] = v;
    }
}

static bool lora_linear_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "lora_linear input") || !require_rank_at_least(sc, n, 0, 1, "lora_linear input"))
        return false;
    int64_t out = n->attr[LORA_OUT], r = n->attr[LORA_R];
    double p = n->fattr[LORA_DROPOUT];
    if (out <= 0) {
        sc_error(sc, n->loc, "lora_linear: out_features must be positive, got %lld", (long long)out);
        return false;
    }
    if (r <= 0) {
        sc_error(sc, n->loc, "lora_linear: r (the adapter's rank) must be positive, got %lld", (long long)r);
        return false;
    }
    if (!(p >= 0 && p < 1)) {
        sc_error(sc, n->loc, "lora_linear: dropout must be in [0, 1), got %g", p);
        return false;
    }
    if (!isfinite(n->fattr[LORA_ALPHA])) {
        sc_error(sc, n->loc, "lora_linear: alpha must be finite, got %g", n->fattr[LORA_ALPHA]);
        return false;
    }
    const ir_value *x = sc_in(sc, n, 0);
    int64_t in = x->shape.dim[x->shape.rank - 1];
    ir_shape w = n->attr[LORA_IN_OUT] ? (ir_shape){2, {in, out}} : (ir_shape){2, {out, in}};
    sc_param(sc, n, "weight", DT_F32, w, INIT_KAIMING_UNIFORM, in);
    if (n->attr[LORA_BIAS])
        sc_param(sc, n, "bias", DT_F32, (ir_shape){1, {out}}, INIT_BIAS_UNIFORM, in);
    sc_param(sc, n, "lora_A.weight", DT_F32, (ir_shape){2, {r, in}}, INIT_KAIMING_UNIFORM, in);
    sc_param(sc, n, "lora_B.weight", DT_F32, (ir_shape){2, {out, r}}, INIT_ZEROS, 0);
    if (p > 0)
        sc_buffer(sc, n, "lora_dropout.rng_state", DT_I64, (ir_shape){0, {0}}, INIT_ZEROS, false);
    *dt = DT_F32;
    *shape = x->shape;
    shape->dim[shape->rank - 1] = out;
    return true;
}

static uint32_t lora_linear_needs(lower_ctx *c, const ir_node *n, int input) {
    uint32_t seed = lora_drops(n) ? NEED_AUX(LORA_AUX_SEED) : 0;
    if (input == LORA_X)
        return NEED_IN(LORA_WEIGHT) | NEED_IN(lora_a(n)) | NEED_IN(lora_b(n)) | seed;
    if (input == LORA_WEIGHT)
        return NEED_IN(LORA_X);
    if (input == lora_a(n))
        return NEED_IN(LORA_X) | NEED_IN(lora_b(n)) | seed;
    if (input == lora_b(n))
        return NEED_AUX(LORA_AUX_U);
    return 0; /* bias */
}

static void lora_linear_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    if (k == LORA_AUX_SEED) {
        *dt = DT_I64;
        *shape = (ir_shape){1, {1}};
        return;
    }
    *dt = DT_F32;
    *shape = (ir_shape){2, {numel_of(g, n->in[LORA_X]) / last_dim(g, n->in[LORA_X]), n->attr[LORA_R]}};
}

typedef struct {
    int64_t rows, in, out, r;
} lora_dims;

static lora_dims lora_dims_of(const ir_graph *g, const ir_node *n) {
    int64_t in = last_dim(g, n->in[LORA_X]);
    return (lora_dims){numel_of(g, n->in[LORA_X]) / in, in, n->attr[LORA_OUT], n->attr[LORA_R]};
}

static void lora_linear_forward(lower_ctx *c, const ir_node *n) {
    lora_dims d = lora_dims_of(lc_graph(c), n);
    linear_base_forward(c, n, n->attr[LORA_BIAS] != 0, n->attr[LORA_IN_OUT] != 0);
    int x = lc_in(c, n, LORA_X), dropped = x;
    float p = (float)n->fattr[LORA_DROPOUT];
    if (lora_drops(n) && lc_training(c)) {
        dropped = lc_scratch(c, n, DT_F32, d.rows * d.in);
        lc_step(c, n, RTK_dropout_fwd, LC_R(x), LC_W(dropped), LC_W(lc_in(c, n, lora_rng(n))),
                LC_W(lc_aux(c, n, LORA_AUX_SEED)), LC_I(d.rows * d.in), LC_F(p));
    }
    int ax = lc_scratch(c, n, DT_F32, d.rows * d.r), u = lc_aux(c, n, LORA_AUX_U);
    if (u < 0)
        u = lc_scratch(c, n, DT_F32, d.rows * d.r);
    lc_step(c, n, RTK_linear_fwd, LC_R(dropped), LC_R(lc_in(c, n, lora_a(n))), LC_R(-1), LC_W(ax), LC_I(d.rows),
            LC_I(d.in), LC_I(d.r));
    lc_step(c, n, RTK_scale, LC_R(ax), LC_W(u), LC_I(d.rows * d.r), LC_I(0), LC_F(lora_scale(n)));
    /* y [rows, out] += u [rows, r] B^T, B [out, r] */
    lc_step(c, n, RTK_matmul_bwd_a, LC_R(u), LC_R(lc_in(c, n, lora_b(n))), LC_W(lc_out(c, n)), LC_I(d.rows),
            LC_I(d.out), LC_I(d.r), LC_I(1));
}

/* g = s dy B [rows, r] into scratch, for d A and d x */
static int lora_g(lower_ctx *c, const ir_node *n, lora_dims d) {
    int dyB = lc_scratch(c, n, DT_F32, d.rows * d.r), g = lc_scratch(c, n, DT_F32, d.rows * d.r);
    lc_step(c, n, RTK_linear_bwd_x, LC_R(lc_grad_out(c, n)), LC_R(lc_saved(c, n, NEED_IN(lora_b(n)))), LC_W(dyB),
            LC_I(d.rows), LC_I(d.r), LC_I(d.out), LC_I(0));
    lc_step(c, n, RTK_scale, LC_R(dyB), LC_W(g), LC_I(d.rows * d.r), LC_I(0), LC_F(lora_scale(n)));
    return g;
}

static void lora_linear_vjp(lower_ctx *c, const ir_node *n, int input) {
    const ir_graph *g = lc_graph(c);
    lora_dims d = lora_dims_of(g, n);
    float p = (float)n->fattr[LORA_DROPOUT];
    int64_t acc;
    if (input == LORA_X || input == LORA_WEIGHT || (n->attr[LORA_BIAS] && input == 2)) {
        linear_base_vjp(c, n, input, n->attr[LORA_IN_OUT] != 0);
        if (input != LORA_X)
            return;
        /* the adapter's share of d x: dropout'(g A), added to the base's */
        int gs = lora_g(c, n, d), dst = lc_grad_in(c, n, LORA_X, &acc), a = lc_saved(c, n, NEED_IN(lora_a(n)));
        IR_ASSERT(acc == 1);
        if (!lora_drops(n)) {
            lc_step(c, n, RTK_linear_bwd_x, LC_R(gs), LC_R(a), LC_W(dst), LC_I(d.rows), LC_I(d.in), LC_I(d.r), LC_I(1));
            return;
        }
        int gA = lc_scratch(c, n, DT_F32, d.rows * d.in);
        lc_step(c, n, RTK_linear_bwd_x, LC_R(gs), LC_R(a), LC_W(gA), LC_I(d.rows), LC_I(d.in), LC_I(d.r), LC_I(0));
        lc_step(c, n, RTK_dropout_bwd, LC_R(lc_saved(c, n, NEED_AUX(LORA_AUX_SEED))), LC_R(gA), LC_W(dst),
                LC_I(d.rows * d.in), LC_I(1), LC_F(p));
        return;
    }
    int dst = lc_grad_in(c, n, input, &acc);
    if (input == lora_b(n)) { /* d B [out, r] (+)= dy^T u */
        lc_step(c, n, RTK_linear_bwd_w, LC_R(lc_grad_out(c, n)), LC_R(lc_saved(c, n, NEED_AUX(LORA_AUX_U))), LC_W(dst),
                LC_I(d.rows), LC_I(d.r), LC_I(d.out), LC_I(acc));
        return;
    }
    /* d A [r, in] (+)= g^T dropout(x), the dropped input made again from the seed */
    int gs = lora_g(c, n, d), x = lc_saved(c, n, NEED_IN(LORA_X)), dropped = x;
    if (lora_drops(n)) {
        dropped = lc_scratch(c, n, DT_F32, d.rows * d.in);
        lc_step(c, n, RTK_dropout_bwd, LC_R(lc_saved(c, n, NEED_AUX(LORA_AUX_SEED))), LC_R(x), LC_W(dropped),
                LC_I(d.rows * d.in), LC_I(0), LC_F(p));
    }
    lc_step(c, n, RTK_linear_bwd_w, LC_R(gs), LC_R(dropped), LC_W(dst), LC_I(d.rows), LC_I(d.in), LC_I(d.r), LC_I(acc));
}

/* ------------------------------------------------------------------ matmul
 * c[..., M, N] = a[..., M, K] b[..., K, N], both operands tensors (no params)
 * of rank >= 2: the last two dims are the matrices, the leading (batch) dims
 * broadcast with numpy's rule (aligned from the right, equal or 1 or missing)
 * into c's, as torch.matmul's. Two matrices are one GEMM, as is a batched a
 * against one b: its batch dims are more rows of a. Anything else is a
 * batched GEMM over at most four merged batch dims, each operand repeated
 * along those it lacks; d/d an operand sums over the batches that repeat it. */

enum { MM_A, MM_B };                      /* n->in[] */
enum { MM_BATCH_DIMS = IR_MAX_RANK - 2 }; /* rt_batched_matmul_*'s n0..n3 */

static bool matmul_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, MM_A, "matmul operand") || !require_f32(sc, n, MM_B, "matmul operand"))
        return false;
    pool *p = sc_graph(sc)->pool;
    for (int i = MM_A; i <= MM_B; i++) { /* torch.matmul's vector cases are not frost's */
        const ir_value *v = sc_in(sc, n, i);
        if (v->shape.rank < 2) {
            sc_error(sc, n->loc,
                     "matmul operand '%s' must be a matrix or a batch of matrices (rank >= 2), but has shape %s; "
                     "reshape a vector to [1, K] or [K, 1]",
                     v->name, shape_str(p, &v->shape));
            return false;
        }
    }
    const ir_shape *a = &sc_in(sc, n, MM_A)->shape, *b = &sc_in(sc, n, MM_B)->shape;
    if (a->dim[a->rank - 1] != b->dim[b->rank - 2]) {
        sc_error(sc, n->loc, "matmul: inner dimensions differ: %s x %s", shape_str(p, a), shape_str(p, b));
        return false;
    }
    shape->rank = a->rank > b->rank ? a->rank : b->rank;
    for (int k = 3; k <= shape->rank; k++) { /* the batch dims, from the right */
        int64_t da = k <= a->rank ? a->dim[a->rank - k] : 1, db = k <= b->rank ? b->dim[b->rank - k] : 1;
        if (da != db && da != 1 && db != 1) {
            sc_error(sc, n->loc,
                     "matmul: batch dimensions of %s and %s cannot be broadcast together (the dims before the last "
                     "two, aligned from the right, must be equal or 1)",
                     shape_str(p, a), shape_str(p, b));
            return false;
        }
        shape->dim[shape->rank - k] = da > db ? da : db;
    }
    shape->dim[shape->rank - 2] = a->dim[a->rank - 2];
    shape->dim[shape->rank - 1] = b->dim[b->rank - 1];
    *dt = DT_F32;
    return true;
}

/* What the kernels see: the matrix sizes (M with a's trailing batch dims
 * that b lacks folded in) and, when batches remain, their dims with size-1
 * dims dropped and neighbours repeated by the same operand merged,
 * right-aligned in MM_BATCH_DIMS dims (leading 1s); rep[i] has bit k set
 * when operand i repeats along dim k (rt.h's broadcasting masks). */
typedef struct {
    int64_t M, K, N;
    int64_t dim[MM_BATCH_DIMS];
    int64_t rep[2];
    int batch_dims; /* 0: one GEMM, the rank-2 kernels */
} matmul_dims;

static matmul_dims matmul_dims_of(const ir_graph *g, const ir_node *n) {
    const ir_shape *c = &g->vals[n->out].shape, *in[2] = {&gval(g, n, MM_A)->shape, &gval(g, n, MM_B)->shape};
    matmul_dims d = {.M = c->dim[c->rank - 2], .K = in[MM_A]->dim[in[MM_A]->rank - 1], .N = c->dim[c->rank - 1]};
    int64_t dim[MM_BATCH_DIMS];
    int rep[MM_BATCH_DIMS][2], r = 0; /* merged dims, innermost first */
    for (int k = 3; k <= c->rank; k++) {
        int64_t size = c->dim[c->rank - k];
        if (size == 1)
            continue;
        int ra = k > in[MM_A]->rank || in[MM_A]->dim[in[MM_A]->rank - k] == 1;
        int rb = k > in[MM_B]->rank || in[MM_B]->dim[in[MM_B]->rank - k] == 1;
        if (r > 0 && rep[r - 1][MM_A] == ra && rep[r - 1][MM_B] == rb) {
            dim[r - 1] *= size;
        } else {
            dim[r] = size, rep[r][MM_A] = ra, rep[r][MM_B] = rb;
            r++;
        }
    }
    /* Along the innermost (merged) batch dim, if only a varies there, a's
     * matrices follow each other and so do c's, all against one matrix of
     * b: they are more rows of one GEMM. Further out such a dim cannot fold:
     * the matrices of the dims inside it lie between its rows of c. */
    if (r > 0 && rep[0][MM_B] && !rep[0][MM_A]) {
        d.M *= dim[0];
        for (int k = 1; k < r; k++) {
            dim[k - 1] = dim[k];
            rep[k - 1][MM_A] = rep[k][MM_A], rep[k - 1][MM_B] = rep[k][MM_B];
        }
        r--;
    }
    d.batch_dims = r;
    for (int k = 0; k < MM_BATCH_DIMS; k++) {
        int m = MM_BATCH_DIMS - 1 - k; /* dim[m] of d is merged dim k */
        d.dim[m] = k < r ? dim[k] : 1;
        for (int i = 0; i < 2; i++)
            d.rep[i] |= k < r && rep[k][i] ? (int64_t)1 << m : 0;
    }
    return d;
}

static uint32_t matmul_needs(lower_ctx *c, const ir_node *n, int input) {
    return input == MM_A ? NEED_IN(MM_B) : NEED_IN(MM_A); /* d a = d c b^T, d b = a^T d c */
}

static void matmul_forward(lower_ctx *c, const ir_node *n) {
    matmul_dims d = matmul_dims_of(lc_graph(c), n);
    int b = lc_in(c, n, MM_B), a = lc_in(c, n, MM_A); /* buffers in the plan's order (linear_forward) */
    if (d.batch_dims == 0)
        lc_step(c, n, RTK_matmul_fwd, LC_R(a), LC_R(b), LC_W(lc_out(c, n)), LC_I(d.M), LC_I(d.K), LC_I(d.N));
    else
        lc_step(c, n, RTK_batched_matmul_fwd, LC_R(a), LC_R(b), LC_W(lc_out(c, n)), LC_I(d.dim[0]), LC_I(d.dim[1]),
                LC_I(d.dim[2]), LC_I(d.dim[3]), LC_I(d.rep[MM_A]), LC_I(d.rep[MM_B]), LC_I(d.M), LC_I(d.K), LC_I(d.N));
}

static void matmul_vjp(lower_ctx *c, const ir_node *n, int input) {
    matmul_dims d = matmul_dims_of(lc_graph(c), n);
    int64_t acc;
    int dc = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    int other = lc_saved(c, n, NEED_IN(input == MM_A ? MM_B : MM_A));
    if (d.batch_dims == 0 && input == MM_A)
        lc_step(c, n, RTK_matmul_bwd_a, LC_R(dc), LC_R(other), LC_W(dst), LC_I(d.M), LC_I(d.K), LC_I(d.N), LC_I(acc));
    else if (d.batch_dims == 0)
        lc_step(c, n, RTK_matmul_bwd_b, LC_R(other), LC_R(dc), LC_W(dst), LC_I(d.M), LC_I(d.K), LC_I(d.N), LC_I(acc));
    else if (input == MM_A)
        lc_step(c, n, RTK_batched_matmul_bwd_a, LC_R(dc), LC_R(other), LC_W(dst), LC_I(d.dim[0]), LC_I(d.dim[1]),
                LC_I(d.dim[2]), LC_I(d.dim[3]), LC_I(d.rep[MM_A]), LC_I(d.rep[MM_B]), LC_I(d.M), LC_I(d.K), LC_I(d.N),
                LC_I(acc));
    else
        lc_step(c, n, RTK_batched_matmul_bwd_b, LC_R(other), LC_R(dc), LC_W(dst), LC_I(d.dim[0]), LC_I(d.dim[1]),
                LC_I(d.dim[2]), LC_I(d.dim[3]), LC_I(d.rep[MM_A]), LC_I(d.rep[MM_B]), LC_I(d.M), LC_I(d.K), LC_I(d.N),
                LC_I(acc));
}

/* ------------------------------------------------------------------ relu */

static bool relu_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "relu input"))
        return false;
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static uint32_t relu_needs(lower_ctx *c, const ir_node *n, int input) {
    return NEED_OUT_SIGN; /* dx = dy * (y > 0): one bit per element at most */
}

static void relu_forward(lower_ctx *c, const ir_node *n) {
    lc_step(c, n, RTK_relu_fwd, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_I(numel_of(lc_graph(c), n->out)));
}

static void relu_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc, count = numel_of(lc_graph(c), n->out);
    bool is_mask;
    int sign = lc_saved_sign(c, n, &is_mask);
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, is_mask ? RTK_relu_bwd_mask : RTK_relu_bwd_out, LC_R(sign), LC_R(dy), LC_W(dst), LC_I(count),
            LC_I(acc));
}

/* ------------------------------------------------------------------ sigmoid
 * y = 1 / (1 + e^-x). Its derivative y (1 - y) is a function of the output,
 * so the VJP keeps the output, never the input. */

static bool sigmoid_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "sigmoid input"))
        return false;
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static uint32_t sigmoid_needs(lower_ctx *c, const ir_node *n, int input) { return NEED_OUT; }

static void sigmoid_forward(lower_ctx *c, const ir_node *n) {
    lc_step(c, n, RTK_sigmoid_fwd, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_I(numel_of(lc_graph(c), n->out)));
}

static void sigmoid_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_sigmoid_bwd, LC_R(lc_saved(c, n, NEED_OUT)), LC_R(dy), LC_W(dst),
            LC_I(numel_of(lc_graph(c), n->out)), LC_I(acc));
}

/* ------------------------------------------------------------------ silu
 * y = x sigmoid(x). Its derivative s (1 + x (1 - s)) is not a function of
 * the output alone (y is not monotonic), so the VJP keeps the input. */

static bool silu_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "silu input"))
        return false;
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static uint32_t silu_needs(lower_ctx *c, const ir_node *n, int input) { return NEED_IN(0); }

static void silu_forward(lower_ctx *c, const ir_node *n) {
    lc_step(c, n, RTK_silu_fwd, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_I(numel_of(lc_graph(c), n->out)));
}

static void silu_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_silu_bwd, LC_R(lc_saved(c, n, NEED_IN(0))), LC_R(dy), LC_W(dst),
            LC_I(numel_of(lc_graph(c), n->out)), LC_I(acc));
}

/* ------------------------------------------------------------------ gelu
 * y = x Phi(x): erf form (PyTorch's approximate="none") or, with tanh=true,
 * PyTorch's tanh approximation (approximate="tanh"). The language has no
 * string arguments, so the choice is the bool `tanh`. Like silu, the VJP
 * keeps the input (GELU is not monotonic: the output does not give x). */

enum { GELU_TANH }; /* n->attr[] */

static bool gelu_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "gelu input"))
        return false;
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static uint32_t gelu_needs(lower_ctx *c, const ir_node *n, int input) { return NEED_IN(0); }

static void gelu_forward(lower_ctx *c, const ir_node *n) {
    lc_step(c, n, RTK_gelu_fwd, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_I(numel_of(lc_graph(c), n->out)),
            LC_I(n->attr[GELU_TANH] != 0));
}

static void gelu_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_gelu_bwd, LC_R(lc_saved(c, n, NEED_IN(0))), LC_R(dy), LC_W(dst),
            LC_I(numel_of(lc_graph(c), n->out)), LC_I(acc), LC_I(n->attr[GELU_TANH] != 0));
}

/* ------------------------------------------------------------------ rms_norm
 * LLaMA's RMSNorm over the last dim: y = x / sqrt(mean(x^2) + eps) * weight.
 * in: x [..., D], weight [D]. fattr: eps. aux 0: per-row 1/rms, f32[rows],
 * written by forward only when a surviving VJP reads it. */

enum { RMS_X, RMS_WEIGHT }; /* n->in[] */
enum { RMS_EPS };           /* n->fattr[] */

static int64_t last_dim(const ir_graph *g, int value) {
    const ir_shape *s = &g->vals[value].shape;
    return s->dim[s->rank - 1];
}

static bool norm_common_infer(shape_ctx *sc, ir_node *n, const char *op, double eps) {
    char what[32];
    snprintf(what, sizeof what, "%s input", op);
    if (!require_f32(sc, n, 0, what) || !require_rank_at_least(sc, n, 0, 1, what))
        return false;
    if (!(eps > 0)) {
        sc_error(sc, n->loc, "%s: eps must be positive, got %g", op, eps);
        return false;
    }
    return true;
}

static bool rms_norm_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!norm_common_infer(sc, n, "rms_norm", n->fattr[RMS_EPS]))
        return false;
    ir_shape w = {1, {last_dim(sc_graph(sc), n->in[0])}};
    sc_param(sc, n, "weight", DT_F32, w, INIT_ONES, 0);
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static uint32_t rms_norm_needs(lower_ctx *c, const ir_node *n, int input) {
    return input == RMS_X ? NEED_IN(RMS_X) | NEED_IN(RMS_WEIGHT) | NEED_AUX(0) : NEED_IN(RMS_X) | NEED_AUX(0);
}

static void norm_rows_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    int64_t D = last_dim(g, n->in[0]);
    *dt = DT_F32;
    *shape = (ir_shape){1, {numel_of(g, n->in[0]) / D}};
}

static void rms_norm_forward(lower_ctx *c, const ir_node *n) {
    const ir_graph *g = lc_graph(c);
    int64_t D = last_dim(g, n->in[0]);
    lc_step(c, n, RTK_rms_norm_fwd, LC_R(lc_in(c, n, RMS_X)), LC_R(lc_in(c, n, RMS_WEIGHT)), LC_W(lc_out(c, n)),
            LC_W(lc_aux(c, n, 0)), LC_I(numel_of(g, n->in[0]) / D), LC_I(D), LC_F(n->fattr[RMS_EPS]));
}

static void rms_norm_vjp(lower_ctx *c, const ir_node *n, int input) {
    const ir_graph *g = lc_graph(c);
    int64_t acc, D = last_dim(g, n->in[0]), rows = numel_of(g, n->in[0]) / D;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    int xs = lc_saved(c, n, NEED_IN(RMS_X)), rstd = lc_saved(c, n, NEED_AUX(0));
    if (input == RMS_X)
        lc_step(c, n, RTK_rms_norm_bwd_x, LC_R(xs), LC_R(lc_saved(c, n, NEED_IN(RMS_WEIGHT))), LC_R(rstd), LC_R(dy),
                LC_W(dst), LC_I(rows), LC_I(D), LC_I(acc));
    else
        lc_step(c, n, RTK_rms_norm_bwd_w, LC_R(xs), LC_R(rstd), LC_R(dy), LC_W(dst), LC_I(rows), LC_I(D), LC_I(acc));
}

/* ------------------------------------------------------------------ layer_norm
 * PyTorch's nn.LayerNorm(D, eps, elementwise_affine=affine) over the last
 * dim. in: x [..., D], weight [D], bias [D] (both only if affine). fattr:
 * eps; attr: affine. aux 0: per-row mean and 1/std, f32[rows, 2], written by
 * forward only when a surviving VJP reads it. */

enum { LN_X, LN_WEIGHT, LN_BIAS }; /* n->in[] */
enum { LN_EPS };                   /* n->fattr[] */
enum { LN_AFFINE = 1 };            /* n->attr[]: the second non-tensor argument */

static bool layer_norm_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!norm_common_infer(sc, n, "layer_norm", n->fattr[LN_EPS]))
        return false;
    if (n->attr[LN_AFFINE]) {
        ir_shape w = {1, {last_dim(sc_graph(sc), n->in[0])}};
        sc_param(sc, n, "weight", DT_F32, w, INIT_ONES, 0);
        sc_param(sc, n, "bias", DT_F32, w, INIT_ZEROS, 0);
    }
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static uint32_t layer_norm_needs(lower_ctx *c, const ir_node *n, int input) {
    switch (input) {
    case LN_X: return NEED_IN(LN_X) | (n->attr[LN_AFFINE] ? NEED_IN(LN_WEIGHT) : 0) | NEED_AUX(0);
    case LN_WEIGHT: return NEED_IN(LN_X) | NEED_AUX(0);
    default: return 0;
    }
}

static void layer_norm_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    int64_t D = last_dim(g, n->in[0]);
    *dt = DT_F32;
    *shape = (ir_shape){2, {numel_of(g, n->in[0]) / D, 2}};
}

static void layer_norm_forward(lower_ctx *c, const ir_node *n) {
    const ir_graph *g = lc_graph(c);
    int64_t D = last_dim(g, n->in[0]);
    bool affine = n->attr[LN_AFFINE] != 0;
    lc_step(c, n, RTK_layer_norm_fwd, LC_R(lc_in(c, n, LN_X)), LC_R(affine ? lc_in(c, n, LN_WEIGHT) : -1),
            LC_R(affine ? lc_in(c, n, LN_BIAS) : -1), LC_W(lc_out(c, n)), LC_W(lc_aux(c, n, 0)),
            LC_I(numel_of(g, n->in[0]) / D), LC_I(D), LC_F(n->fattr[LN_EPS]));
}

static void layer_norm_vjp(lower_ctx *c, const ir_node *n, int input) {
    const ir_graph *g = lc_graph(c);
    int64_t acc, D = last_dim(g, n->in[0]), rows = numel_of(g, n->in[0]) / D;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    if (input == LN_BIAS) {
        lc_step(c, n, RTK_sum_channels, LC_R(dy), LC_W(dst), LC_I(rows), LC_I(D), LC_I(1), LC_I(acc));
        return;
    }
    int xs = lc_saved(c, n, NEED_IN(LN_X)), stats = lc_saved(c, n, NEED_AUX(0));
    if (input == LN_X)
        lc_step(c, n, RTK_layer_norm_bwd_x, LC_R(xs),
                LC_R(n->attr[LN_AFFINE] ? lc_saved(c, n, NEED_IN(LN_WEIGHT)) : -1), LC_R(stats), LC_R(dy), LC_W(dst),
                LC_I(rows), LC_I(D), LC_I(acc));
    else
        lc_step(c, n, RTK_layer_norm_bwd_w, LC_R(xs), LC_R(stats), LC_R(dy), LC_W(dst), LC_I(rows), LC_I(D), LC_I(acc));
}

/* ------------------------------------------------------------------ rope
 * Rotary position embedding, the LLaMA / Hugging Face convention
 * (rotate_half): in x [B, H, T, hd], hd even, element i of a head pairs with
 * element i + hd/2 and both turn by the angle t * theta^(-2i/hd) of position
 * t in 0..T-1. fattr: theta. A rotation's VJP is the inverse rotation of dy,
 * so it keeps nothing. Not element-wise in op_def's sense (element i reads
 * element i + hd/2), so the planner never runs it in place. */

enum { ROPE_THETA }; /* n->fattr[] */

static bool rope_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "rope input"))
        return false;
    const ir_value *x = sc_in(sc, n, 0);
    if (x->shape.rank != 4) {
        sc_error(sc, n->loc, "rope input '%s' must be [batch, heads, seq, head_dim], but has shape %s", x->name,
                 shape_str(sc_graph(sc)->pool, &x->shape));
        return false;
    }
    if (x->shape.dim[3] % 2 != 0) {
        sc_error(sc, n->loc, "rope: head_dim (the last dim of '%s') must be even, got %lld", x->name,
                 (long long)x->shape.dim[3]);
        return false;
    }
    if (!(n->fattr[ROPE_THETA] > 0)) {
        sc_error(sc, n->loc, "rope: theta must be positive, got %g", n->fattr[ROPE_THETA]);
        return false;
    }
    *dt = DT_F32;
    *shape = x->shape;
    return true;
}

/* The kernels see x as B*H heads of T positions of hd floats. */
static void rope_step(lower_ctx *c, const ir_node *n, rt_kernel kernel, int src, int dst, int64_t acc) {
    const ir_shape *s = &gval(lc_graph(c), n, 0)->shape;
    if (kernel == RTK_rope_fwd)
        lc_step(c, n, kernel, LC_R(src), LC_W(dst), LC_I(s->dim[0] * s->dim[1]), LC_I(s->dim[2]), LC_I(s->dim[3]),
                LC_F(n->fattr[ROPE_THETA]));
    else
        lc_step(c, n, kernel, LC_R(src), LC_W(dst), LC_I(s->dim[0] * s->dim[1]), LC_I(s->dim[2]), LC_I(s->dim[3]),
                LC_I(acc), LC_F(n->fattr[ROPE_THETA]));
}

static void rope_forward(lower_ctx *c, const ir_node *n) {
    rope_step(c, n, RTK_rope_fwd, lc_in(c, n, 0), lc_out(c, n), 0);
}

static void rope_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    rope_step(c, n, RTK_rope_bwd, dy, dst, acc);
}

/* ------------------------------------------------------------------ attention
 * PyTorch's F.scaled_dot_product_attention(q, k, v, is_causal=causal,
 * scale=scale) with grouped-query heads. in: q [B, H, T, hd], k and v [B,
 * Hkv, S, hd], H a multiple of Hkv. attr: causal; fattr: scale (0: 1/sqrt(hd)).
 * aux 0: per-row log-sum-exp f32[B, H, T], the only thing besides the
 * operands that backward reads: the [B, H, T, S] probabilities are never
 * stored (forward is an online softmax over key tiles, backward recomputes
 * them from q, k and the log-sum-exp). */

enum { ATTN_Q, ATTN_K, ATTN_V }; /* n->in[] */
enum { ATTN_CAUSAL };            /* n->attr[] */
enum { ATTN_SCALE = 1 };         /* n->fattr[]: the second non-tensor argument */

typedef struct {
    int64_t B, H, Hkv, T, S, hd;
} attn_dims;

static attn_dims attention_dims(const ir_graph *g, const ir_node *n) {
    const ir_shape *q = &gval(g, n, ATTN_Q)->shape, *k = &gval(g, n, ATTN_K)->shape;
    return (attn_dims){q->dim[0], q->dim[1], k->dim[1], q->dim[2], k->dim[2], q->dim[3]};
}

static double attention_scale(const ir_graph *g, const ir_node *n) {
    double scale = n->fattr[ATTN_SCALE];
    return scale == 0 ? 1.0 / sqrt((double)attention_dims(g, n).hd) : scale;
}

static bool attention_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    static const char *names[] = {"q", "k", "v"};
    pool *p = sc_graph(sc)->pool;
    for (int i = 0; i < 3; i++) {
        char what[32];
        snprintf(what, sizeof what, "attention %s", names[i]);
        if (!require_f32(sc, n, i, what))
            return false;
        const ir_value *x = sc_in(sc, n, i);
        if (x->shape.rank != 4) {
            sc_error(sc, n->loc, "attention: %s '%s' must be [batch, heads, seq, head_dim], but has shape %s", names[i],
                     x->name, shape_str(p, &x->shape));
            return false;
        }
    }
    const ir_shape *q = &sc_in(sc, n, ATTN_Q)->shape, *k = &sc_in(sc, n, ATTN_K)->shape,
                   *v = &sc_in(sc, n, ATTN_V)->shape;
    if (!shape_eq(k, v)) {
        sc_error(sc, n->loc, "attention: k %s and v %s must have the same shape", shape_str(p, k), shape_str(p, v));
        return false;
    }
    if (q->dim[0] != k->dim[0] || q->dim[3] != k->dim[3]) {
        sc_error(sc, n->loc, "attention: q %s and k %s must have the same batch and head_dim", shape_str(p, q),
                 shape_str(p, k));
        return false;
    }
    if (q->dim[1] % k->dim[1]) {
        sc_error(sc, n->loc, "attention: q's %lld heads are not a multiple of k and v's %lld", (long long)q->dim[1],
                 (long long)k->dim[1]);
        return false;
    }
    if (n->attr[ATTN_CAUSAL] && q->dim[2] != k->dim[2]) {
        sc_error(sc, n->loc, "attention: causal needs as many keys as queries, got %lld queries and %lld keys",
                 (long long)q->dim[2], (long long)k->dim[2]);
        return false;
    }
    if (!(n->fattr[ATTN_SCALE] >= 0)) {
        sc_error(sc, n->loc, "attention: scale must be >= 0 (0: 1/sqrt(head_dim)), got %g", n->fattr[ATTN_SCALE]);
        return false;
    }
    *dt = DT_F32;
    *shape = *q;
    return true;
}

static uint32_t attention_needs(lower_ctx *c, const ir_node *n, int input) {
    uint32_t probs = NEED_IN(ATTN_Q) | NEED_IN(ATTN_K) | NEED_AUX(0); /* P recomputed */
    if (input == ATTN_V)
        return probs;                          /* dv = P^T do */
    return probs | NEED_IN(ATTN_V) | NEED_OUT; /* dP = do v^T, D = rowsum(do * o) */
}

static void attention_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    attn_dims d = attention_dims(g, n);
    *dt = DT_F32;
    *shape = (ir_shape){3, {d.B, d.H, d.T}};
}

/* Queries and keys per block: no more than the longer of the two needs. */
static int64_t attention_tile(attn_dims d) {
    int64_t longest = d.T > d.S ? d.T : d.S;
    return longest < RT_ATTENTION_TILE ? longest : RT_ATTENTION_TILE;
}

static void attention_forward(lower_ctx *c, const ir_node *n) {
    const ir_graph *g = lc_graph(c);
    attn_dims d = attention_dims(g, n);
    int v = lc_in(c, n, ATTN_V), k = lc_in(c, n, ATTN_K), q = lc_in(c, n, ATTN_Q);
    int64_t tile = attention_tile(d);
    lc_step(c, n, RTK_attention_fwd, LC_R(q), LC_R(k), LC_R(v), LC_W(lc_out(c, n)), LC_W(lc_aux(c, n, 0)),
            LC_S(lc_scratch(c, n, DT_F32, RT_ATTENTION_FWD_SCRATCH(tile))), LC_I(d.B), LC_I(d.H), LC_I(d.Hkv),
            LC_I(d.T), LC_I(d.S), LC_I(d.hd), LC_I(n->attr[ATTN_CAUSAL] != 0), LC_I(tile), LC_F(attention_scale(g, n)));
}

/* One step computes every surviving gradient (they share the recomputed
 * probabilities): it is emitted by the hook of the first surviving input, and
 * the hooks of the others add nothing. */
static void attention_vjp(lower_ctx *c, const ir_node *n, int input) {
    uint32_t wanted = lc_vjps(c, n);
    if (input != __builtin_ctz(wanted))
        return;
    const ir_graph *g = lc_graph(c);
    attn_dims d = attention_dims(g, n);
    int dst[3] = {-1, -1, -1};
    int64_t acc[3] = {0, 0, 0};
    for (int i = ATTN_Q; i <= ATTN_V; i++)
        if (wanted & (1u << i))
            dst[i] = lc_grad_in(c, n, i, &acc[i]);
    bool ds = wanted & ((1u << ATTN_Q) | (1u << ATTN_K)); /* reads v and the output */
    lc_step(c, n, RTK_attention_bwd, LC_R(lc_saved(c, n, NEED_IN(ATTN_Q))), LC_R(lc_saved(c, n, NEED_IN(ATTN_K))),
            LC_R(ds ? lc_saved(c, n, NEED_IN(ATTN_V)) : -1), LC_R(ds ? lc_saved(c, n, NEED_OUT) : -1),
            LC_R(lc_saved(c, n, NEED_AUX(0))), LC_R(lc_grad_out(c, n)), LC_W(dst[ATTN_Q]), LC_W(dst[ATTN_K]),
            LC_W(dst[ATTN_V]), LC_S(lc_scratch(c, n, DT_F32, RT_ATTENTION_BWD_SCRATCH(attention_tile(d)))), LC_I(d.B),
            LC_I(d.H), LC_I(d.Hkv), LC_I(d.T), LC_I(d.S), LC_I(d.hd), LC_I(n->attr[ATTN_CAUSAL] != 0),
            LC_I(acc[ATTN_Q]), LC_I(acc[ATTN_K]), LC_I(acc[ATTN_V]), LC_I(attention_tile(d)),
            LC_F(attention_scale(g, n)));
}

/* ------------------------------------------------------------------ softmax
 * softmax over the last dim (the row's max subtracted first). Its VJP
 * dx = y (dy - sum(dy y)) is a function of the output, so it keeps the
 * output, never the input. */

static bool softmax_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "softmax input") || !require_rank_at_least(sc, n, 0, 1, "softmax input"))
        return false;
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static uint32_t softmax_needs(lower_ctx *c, const ir_node *n, int input) { return NEED_OUT; }

static void softmax_forward(lower_ctx *c, const ir_node *n) {
    const ir_graph *g = lc_graph(c);
    int64_t D = last_dim(g, n->in[0]);
    lc_step(c, n, RTK_softmax_fwd, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_I(numel_of(g, n->out) / D), LC_I(D));
}

static void softmax_vjp(lower_ctx *c, const ir_node *n, int input) {
    const ir_graph *g = lc_graph(c);
    int64_t acc, D = last_dim(g, n->in[0]);
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_softmax_bwd, LC_R(lc_saved(c, n, NEED_OUT)), LC_R(dy), LC_W(dst), LC_I(numel_of(g, n->out) / D),
            LC_I(D), LC_I(acc));
}

/* ------------------------------------------------------------------ add, mul
 * a + b and a * b with numpy's broadcasting: dims aligned from the right,
 * an operand's dim of size 1 (or missing) repeated to the other's. Three
 * lowerings, fastest first: equal shapes are element-wise (rt_add_fwd,
 * rt_mul_fwd with outer = 1); one operand a trailing part of the other's
 * shape is the row-wise kernel (a bias); anything else is the strided
 * kernel over (merged) dims. Every one of them may run in place: an input
 * as large as the output has the output's shape up to leading 1s, so its
 * element i is output element i. d/d an operand sums d output (times the
 * other operand, for mul) over the dims it is repeated along. */

enum { BC_A, BC_B }; /* n->in[] */

static bool broadcast_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape, const char *op) {
    char what[32];
    snprintf(what, sizeof what, "%s operand", op);
    if (!require_f32(sc, n, BC_A, what) || !require_f32(sc, n, BC_B, what))
        return false;
    const ir_shape *a = &sc_in(sc, n, BC_A)->shape, *b = &sc_in(sc, n, BC_B)->shape;
    shape->rank = a->rank > b->rank ? a->rank : b->rank;
    for (int k = 1; k <= shape->rank; k++) {
        int64_t da = k <= a->rank ? a->dim[a->rank - k] : 1, db = k <= b->rank ? b->dim[b->rank - k] : 1;
        if (da != db && da != 1 && db != 1) {
            pool *p = sc_graph(sc)->pool;
            sc_error(sc, n->loc,
                     "%s: shapes %s and %s cannot be broadcast together (dims aligned from the right must be equal "
                     "or 1)",
                     op, shape_str(p, a), shape_str(p, b));
            return false;
        }
        shape->dim[shape->rank - k] = da > db ? da : db;
    }
    *dt = DT_F32;
    return true;
}

static bool add_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    return broadcast_infer(sc, n, dt, shape, "add");
}
static bool mul_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    return broadcast_infer(sc, n, dt, shape, "mul");
}

/* The output's dims for the kernels: dims of size 1 dropped, neighbours that
 * the same operands repeat along merged, right-aligned in IR_MAX_RANK dims
 * (leading 1s); rep[i]: bit k set when operand i repeats along dim k. */
typedef struct {
    int64_t dim[IR_MAX_RANK];
    int64_t rep[2];
    int rank; /* dims in use, the last `rank` of dim[] */
} bcast_dims;

static bcast_dims broadcast_dims(const ir_graph *g, const ir_node *n) {
    const ir_shape *out = &g->vals[n->out].shape, *in[2] = {&gval(g, n, BC_A)->shape, &gval(g, n, BC_B)->shape};
    int64_t dim[IR_MAX_RANK];
    int rep[IR_MAX_RANK][2], r = 0; /* merged dims, innermost first */
    for (int k = 1; k <= out->rank; k++) {
        int64_t d = out->dim[out->rank - k];
        if (d == 1)
            continue;
        int ra = k > in[0]->rank || in[0]->dim[in[0]->rank - k] == 1;
        int rb = k > in[1]->rank || in[1]->dim[in[1]->rank - k] == 1;
        if (r > 0 && rep[r - 1][0] == ra && rep[r - 1][1] == rb) {
            dim[r - 1] *= d;
        } else {
            dim[r] = d, rep[r][0] = ra, rep[r][1] = rb;
            r++;
        }
    }
    bcast_dims b = {.rank = r};
    for (int k = 0; k < IR_MAX_RANK; k++) {
        int m = IR_MAX_RANK - 1 - k; /* dim[m] of b is merged dim k */
        b.dim[m] = k < r ? dim[k] : 1;
        for (int i = 0; i < 2; i++)
            b.rep[i] |= k < r && rep[k][i] ? (int64_t)1 << m : 0;
    }
    return b;
}

/* Operand `rows` is repeated over the outermost dim only (a trailing part of
 * the other's shape) and the other is not repeated: the row-wise kernel,
 * with the full operand first. */
static bool broadcast_row_wise(const bcast_dims *b, int rows) {
    return b->rank >= 1 && b->rep[rows] == (int64_t)1 << (IR_MAX_RANK - b->rank) && b->rep[1 - rows] == 0;
}

static void broadcast_forward(lower_ctx *c, const ir_node *n, rt_kernel same, rt_kernel strided) {
    const ir_graph *g = lc_graph(c);
    bcast_dims b = broadcast_dims(g, n);
    int in[2];
    in[BC_B] = lc_in(c, n, BC_B), in[BC_A] = lc_in(c, n, BC_A); /* buffers in the plan's order (linear_forward) */
    int y = lc_out(c, n);
    int64_t count = numel_of(g, n->out);
    if (b.rep[0] == 0 && b.rep[1] == 0) {
        lc_step(c, n, same, LC_R(in[BC_A]), LC_R(in[BC_B]), LC_W(y), LC_I(1), LC_I(count));
    } else if (broadcast_row_wise(&b, BC_B) || broadcast_row_wise(&b, BC_A)) {
        int rows = broadcast_row_wise(&b, BC_B) ? BC_B : BC_A; /* a + b == b + a, a * b == b * a exactly */
        int64_t outer = b.dim[IR_MAX_RANK - b.rank];
        lc_step(c, n, same, LC_R(in[1 - rows]), LC_R(in[rows]), LC_W(y), LC_I(outer), LC_I(count / outer));
    } else {
        lc_step(c, n, strided, LC_R(in[BC_A]), LC_R(in[BC_B]), LC_W(y), LC_I(b.dim[0]), LC_I(b.dim[1]), LC_I(b.dim[2]),
                LC_I(b.dim[3]), LC_I(b.dim[4]), LC_I(b.dim[5]), LC_I(b.rep[0]), LC_I(b.rep[1]));
    }
}

/* d input (+)= the sum of dy (* other, -1: none) over the dims input repeats along */
static void broadcast_reduce(lower_ctx *c, const ir_node *n, int input, int other) {
    bcast_dims b = broadcast_dims(lc_graph(c), n);
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_bcast_reduce, LC_R(dy), LC_R(other), LC_W(dst), LC_I(b.dim[0]), LC_I(b.dim[1]), LC_I(b.dim[2]),
            LC_I(b.dim[3]), LC_I(b.dim[4]), LC_I(b.dim[5]), LC_I(b.rep[input]), LC_I(other >= 0 ? b.rep[1 - input] : 0),
            LC_I(acc));
}

static void add_forward(lower_ctx *c, const ir_node *n) { broadcast_forward(c, n, RTK_add_fwd, RTK_add_bcast_fwd); }

static void add_vjp(lower_ctx *c, const ir_node *n, int input) {
    if (broadcast_dims(lc_graph(c), n).rep[input] == 0)
        lc_grad_pass(c, n, input); /* d input is d output, of the same size */
    else
        broadcast_reduce(c, n, input, -1);
}

static uint32_t mul_needs(lower_ctx *c, const ir_node *n, int input) {
    return NEED_IN(1 - input); /* d a = dy b, d b = dy a */
}

static void mul_forward(lower_ctx *c, const ir_node *n) { broadcast_forward(c, n, RTK_mul_fwd, RTK_mul_bcast_fwd); }

static void mul_vjp(lower_ctx *c, const ir_node *n, int input) {
    broadcast_reduce(c, n, input, lc_saved(c, n, NEED_IN(1 - input)));
}

/* ------------------------------------------------------------------ scale
 * y = c x, c a float constant (multiplication by a constant: attention's
 * 1/sqrt(d), a residual's weight). d x = c dy reads nothing from forward. */

enum { SCALE_C }; /* n->fattr[] */

static bool scale_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "scale input"))
        return false;
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static void scale_forward(lower_ctx *c, const ir_node *n) {
    lc_step(c, n, RTK_scale, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_I(numel_of(lc_graph(c), n->out)), LC_I(0),
            LC_F(n->fattr[SCALE_C]));
}

static void scale_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_scale, LC_R(dy), LC_W(dst), LC_I(numel_of(lc_graph(c), n->out)), LC_I(acc),
            LC_F(n->fattr[SCALE_C]));
}

/* ------------------------------------------------------------------ transpose, permute
 * Output dim k is input dim perm[k]: transpose(x, d0, d1) swaps two dims,
 * permute(x, dims) gives them all (negative dims count from the end; the
 * shape rules store them normalised in n->attr). Both lower to one strided
 * copy, rt_permute; the VJP is the copy back by the inverse permutation. A
 * permutation that keeps the memory order (the identity, or moving dims of
 * size 1) is a copy too, with its dims merged into one row: a view would
 * need lower.c to decide per node, not per op (op_def.is_view). */

static bool normalise_dim(shape_ctx *sc, ir_node *n, int k, const char *op) {
    const ir_shape *x = &sc_in(sc, n, 0)->shape;
    int64_t d = n->attr[k] < 0 ? n->attr[k] + x->rank : n->attr[k];
    if (d < 0 || d >= x->rank) {
        sc_error(sc, n->loc, "%s: dim %lld is out of range for shape %s", op, (long long)n->attr[k],
                 shape_str(sc_graph(sc)->pool, x));
        return false;
    }
    n->attr[k] = d;
    return true;
}

static void permuted_shape(const ir_shape *x, const int64_t *perm, ir_shape *shape) {
    shape->rank = x->rank;
    for (int k = 0; k < x->rank; k++)
        shape->dim[k] = x->dim[perm[k]];
}

enum { TRANSPOSE_D0, TRANSPOSE_D1 }; /* n->attr[] */

static bool transpose_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "transpose input") || !normalise_dim(sc, n, TRANSPOSE_D0, "transpose") ||
        !normalise_dim(sc, n, TRANSPOSE_D1, "transpose"))
        return false;
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    shape->dim[n->attr[TRANSPOSE_D0]] = sc_in(sc, n, 0)->shape.dim[n->attr[TRANSPOSE_D1]];
    shape->dim[n->attr[TRANSPOSE_D1]] = sc_in(sc, n, 0)->shape.dim[n->attr[TRANSPOSE_D0]];
    return true;
}

static bool permute_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "permute input"))
        return false;
    const ir_shape *x = &sc_in(sc, n, 0)->shape;
    if (n->nattr != x->rank) {
        sc_error(sc, n->loc, "permute needs one dim per dim of its input: shape %s has %d, got %d",
                 shape_str(sc_graph(sc)->pool, x), x->rank, n->nattr);
        return false;
    }
    bool seen[IR_MAX_RANK] = {false};
    for (int k = 0; k < n->nattr; k++) {
        if (!normalise_dim(sc, n, k, "permute"))
            return false;
        if (seen[n->attr[k]]) {
            sc_error(sc, n->loc, "permute: dim %lld of shape %s is given twice", (long long)n->attr[k],
                     shape_str(sc_graph(sc)->pool, x));
            return false;
        }
        seen[n->attr[k]] = true;
    }
    *dt = DT_F32;
    permuted_shape(x, n->attr, shape);
    return true;
}

/* Output dim k of n is input dim perm[k]. */
static void transpose_perm(const ir_graph *g, const ir_node *n, int64_t *perm) {
    for (int k = 0; k < gval(g, n, 0)->shape.rank; k++)
        perm[k] = k;
    perm[n->attr[TRANSPOSE_D0]] = n->attr[TRANSPOSE_D1];
    perm[n->attr[TRANSPOSE_D1]] = n->attr[TRANSPOSE_D0];
}

static void permute_perm(const ir_graph *g, const ir_node *n, int64_t *perm) {
    for (int k = 0; k < gval(g, n, 0)->shape.rank; k++)
        perm[k] = n->attr[k];
}

/* One rt_permute step: dst (+)= the copy of src whose dim k (dims[k]) has
 * stride stride[k] in src. Dims of size 1 are dropped and neighbours whose
 * strides chain are merged, right-aligned in IR_MAX_RANK dims. */
static void permute_step(lower_ctx *c, const ir_node *n, int src, int dst, const int64_t *dims, const int64_t *stride,
                         int rank, int64_t acc) {
    int64_t md[IR_MAX_RANK], ms[IR_MAX_RANK]; /* merged, innermost first */
    int r = 0;
    for (int k = rank - 1; k >= 0; k--) {
        if (dims[k] == 1)
            continue;
        if (r > 0 && stride[k] == ms[r - 1] * md[r - 1]) {
            md[r - 1] *= dims[k];
        } else {
            md[r] = dims[k], ms[r] = stride[k];
            r++;
        }
    }
    int64_t d[IR_MAX_RANK], s[IR_MAX_RANK];
    for (int k = 0; k < IR_MAX_RANK; k++) {
        d[IR_MAX_RANK - 1 - k] = k < r ? md[k] : 1;
        s[IR_MAX_RANK - 1 - k] = k < r ? ms[k] : 0;
    }
    lc_step(c, n, RTK_permute, LC_R(src), LC_W(dst), LC_I(d[0]), LC_I(d[1]), LC_I(d[2]), LC_I(d[3]), LC_I(d[4]),
            LC_I(d[5]), LC_I(s[0]), LC_I(s[1]), LC_I(s[2]), LC_I(s[3]), LC_I(s[4]), LC_I(s[5]), LC_I(acc));
}

static void row_major_strides(const ir_shape *s, int64_t *stride) {
    int64_t t = 1;
    for (int k = s->rank - 1; k >= 0; k--) {
        stride[k] = t;
        t *= s->dim[k];
    }
}

static void permuted_forward(lower_ctx *c, const ir_node *n, const int64_t *perm) {
    const ir_graph *g = lc_graph(c);
    const ir_shape *x = &gval(g, n, 0)->shape;
    int64_t xs[IR_MAX_RANK], stride[IR_MAX_RANK];
    row_major_strides(x, xs);
    for (int k = 0; k < x->rank; k++)
        stride[k] = xs[perm[k]];
    permute_step(c, n, lc_in(c, n, 0), lc_out(c, n), g->vals[n->out].shape.dim, stride, x->rank, 0);
}

static void permuted_vjp(lower_ctx *c, const ir_node *n, int input, const int64_t *perm) {
    const ir_graph *g = lc_graph(c);
    const ir_shape *x = &gval(g, n, 0)->shape;
    int64_t ys[IR_MAX_RANK], stride[IR_MAX_RANK], acc;
    row_major_strides(&g->vals[n->out].shape, ys);
    for (int k = 0; k < x->rank; k++)
        stride[perm[k]] = ys[k]; /* input dim perm[k] is dy's dim k */
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    permute_step(c, n, dy, dst, x->dim, stride, x->rank, acc);
}

static void transpose_forward(lower_ctx *c, const ir_node *n) {
    int64_t perm[IR_MAX_RANK];
    transpose_perm(lc_graph(c), n, perm);
    permuted_forward(c, n, perm);
}

static void transpose_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t perm[IR_MAX_RANK];
    transpose_perm(lc_graph(c), n, perm);
    permuted_vjp(c, n, input, perm);
}

static void permute_forward(lower_ctx *c, const ir_node *n) {
    int64_t perm[IR_MAX_RANK];
    permute_perm(lc_graph(c), n, perm);
    permuted_forward(c, n, perm);
}

static void permute_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t perm[IR_MAX_RANK];
    permute_perm(lc_graph(c), n, perm);
    permuted_vjp(c, n, input, perm);
}

/* ------------------------------------------------------------------ flatten, reshape
 * Pure reinterpretations: the output shares the input's storage and the
 * gradient passes through. */

static bool flatten_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    const ir_value *x = sc_in(sc, n, 0);
    int64_t start = n->attr[0];
    if (start < 0)
        start += x->shape.rank;
    if (start < 0 || start >= x->shape.rank) {
        sc_error(sc, n->loc, "flatten: start_dim %lld is out of range for shape %s", (long long)n->attr[0],
                 shape_str(sc_graph(sc)->pool, &x->shape));
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

static bool reshape_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    const ir_value *x = sc_in(sc, n, 0);
    pool *p = sc_graph(sc)->pool;
    int rank = n->nattr;
    if (rank < 1 || rank > IR_MAX_RANK) {
        sc_error(sc, n->loc, "reshape needs between 1 and %d dimensions, got %d", IR_MAX_RANK, rank);
        return false;
    }
    int infer_at = -1;
    int64_t known = 1;
    bool overflow = false; /* then the given dims hold more elements than any tensor, x included */
    for (int k = 0; k < rank; k++) {
        int64_t d = n->attr[k];
        if (d == -1 && infer_at < 0) {
            infer_at = k;
        } else if (d <= 0) {
            sc_error(sc, n->loc, "reshape: dimension %d is %lld; dimensions must be positive (one may be -1)", k,
                     (long long)d);
            return false;
        } else {
            overflow |= ck_mul(known, d, &known);
        }
    }
    int64_t total = shape_numel(&x->shape);
    bool fits = !overflow && (infer_at >= 0 ? total % known == 0 : known == total);
    shape->rank = rank;
    for (int k = 0; k < rank; k++)
        shape->dim[k] = n->attr[k];
    if (fits && infer_at >= 0)
        shape->dim[infer_at] = total / known;
    if (!fits) {
        sc_error(sc, n->loc, "reshape: cannot view %s (%lld elements) as %s", shape_str(p, &x->shape), (long long)total,
                 shape_str(p, shape));
        return false;
    }
    *dt = x->dtype;
    return true;
}

static void view_forward(lower_ctx *c, const ir_node *n) { lc_alias_out(c, n, 0); }
static void view_vjp(lower_ctx *c, const ir_node *n, int input) { lc_grad_pass(c, n, input); }

/* ------------------------------------------------------------------ slice
 * x[..., start:end, ...] along one dim: a copy (the IR's views have no
 * offset). What `q, k, v = chunk(qkv, 3)` and `split` elaborate to, one slice
 * per result. Its VJP writes d y into the slice of d x (zeros around it when
 * it is the first contribution) and needs nothing. attr: dim, start, end. */

enum { SLICE_DIM, SLICE_START, SLICE_END }; /* n->attr[] */

static bool slice_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "slice input") || !require_rank_at_least(sc, n, 0, 1, "slice input"))
        return false;
    const ir_value *x = sc_in(sc, n, 0);
    pool *p = sc_graph(sc)->pool;
    int64_t dim = n->attr[SLICE_DIM];
    if (dim < 0)
        dim += x->shape.rank;
    if (dim < 0 || dim >= x->shape.rank) {
        sc_error(sc, n->loc, "slice: dim %lld is out of range for shape %s", (long long)n->attr[SLICE_DIM],
                 shape_str(p, &x->shape));
        return false;
    }
    int64_t start = n->attr[SLICE_START], end = n->attr[SLICE_END], size = x->shape.dim[dim];
    if (!(0 <= start && start < end && end <= size)) {
        sc_error(sc, n->loc, "slice: [%lld, %lld) is not a non-empty range of dim %lld of %s (size %lld)",
                 (long long)start, (long long)end, (long long)dim, shape_str(p, &x->shape), (long long)size);
        return false;
    }
    n->attr[SLICE_DIM] = dim; /* the lowering sees it from the front */
    *dt = DT_F32;
    *shape = x->shape;
    shape->dim[dim] = end - start;
    return true;
}

/* x as [outer, D, inner] around the sliced dim D */
static void slice_dims(const ir_graph *g, const ir_node *n, int64_t *outer, int64_t *D, int64_t *inner) {
    const ir_shape *s = &gval(g, n, 0)->shape;
    int dim = (int)n->attr[SLICE_DIM];
    *outer = *inner = 1;
    for (int k = 0; k < s->rank; k++) {
        if (k < dim)
            *outer *= s->dim[k];
        else if (k > dim)
            *inner *= s->dim[k];
    }
    *D = s->dim[dim];
}

static void slice_forward(lower_ctx *c, const ir_node *n) {
    int64_t outer, D, inner;
    slice_dims(lc_graph(c), n, &outer, &D, &inner);
    lc_step(c, n, RTK_slice_fwd, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_I(outer), LC_I(D), LC_I(inner),
            LC_I(n->attr[SLICE_START]), LC_I(n->attr[SLICE_END] - n->attr[SLICE_START]), LC_I(0));
}

static void slice_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t outer, D, inner, acc;
    slice_dims(lc_graph(c), n, &outer, &D, &inner);
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_slice_bwd, LC_R(dy), LC_W(dst), LC_I(outer), LC_I(D), LC_I(inner), LC_I(n->attr[SLICE_START]),
            LC_I(n->attr[SLICE_END] - n->attr[SLICE_START]), LC_I(acc));
}

/* ------------------------------------------------------------------ concat
 * torch.cat(xs, dim): the tensors of the list side by side along one dim,
 * equal elsewhere. At most IR_MAX_IN of them (the elaborator says so); one
 * step writes the whole output. The VJP towards x_k is the slice of dy where
 * x_k sits (rt_slice_fwd, a strided copy) and needs nothing. attr: dim. */

enum { CONCAT_DIM }; /* n->attr[] */

static bool concat_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    pool *p = sc_graph(sc)->pool;
    for (int i = 0; i < n->nin; i++)
        if (!require_f32(sc, n, i, "concat input"))
            return false;
    if (!require_rank_at_least(sc, n, 0, 1, "concat input"))
        return false;
    const ir_shape *first = &sc_in(sc, n, 0)->shape;
    int64_t dim = n->attr[CONCAT_DIM] < 0 ? n->attr[CONCAT_DIM] + first->rank : n->attr[CONCAT_DIM];
    if (dim < 0 || dim >= first->rank) {
        sc_error(sc, n->loc, "concat: dim %lld is out of range for shape %s", (long long)n->attr[CONCAT_DIM],
                 shape_str(p, first));
        return false;
    }
    *shape = *first;
    for (int i = 1; i < n->nin; i++) {
        const ir_value *x = sc_in(sc, n, i);
        bool fits = x->shape.rank == first->rank;
        for (int k = 0; fits && k < first->rank; k++)
            fits = k == dim || x->shape.dim[k] == first->dim[k];
        if (!fits) {
            sc_error(sc, n->loc, "concat: '%s' %s does not fit '%s' %s: shapes must be equal except along dim %lld",
                     x->name, shape_str(p, &x->shape), sc_in(sc, n, 0)->name, shape_str(p, first), (long long)dim);
            return false;
        }
        if (ck_add(shape->dim[dim], x->shape.dim[dim], &shape->dim[dim])) {
            sc_error(sc, n->loc, "concat: dim %lld of the result is too large", (long long)dim);
            return false;
        }
    }
    n->attr[CONCAT_DIM] = dim; /* the lowering sees it from the front */
    *dt = DT_F32;
    return true;
}

/* the output as [outer, D, inner] around the concatenated dim D; *start: where
 * input `input` begins along it, *len its size there */
static void concat_dims(const ir_graph *g, const ir_node *n, int input, int64_t *outer, int64_t *D, int64_t *inner,
                        int64_t *start, int64_t *len) {
    const ir_shape *s = &g->vals[n->out].shape;
    int dim = (int)n->attr[CONCAT_DIM];
    *outer = *inner = 1;
    for (int k = 0; k < s->rank; k++) {
        if (k < dim)
            *outer *= s->dim[k];
        else if (k > dim)
            *inner *= s->dim[k];
    }
    *D = s->dim[dim];
    *start = 0;
    for (int i = 0; i < input; i++)
        *start += gval(g, n, i)->shape.dim[dim];
    *len = gval(g, n, input)->shape.dim[dim];
}

static void concat_forward(lower_ctx *c, const ir_node *n) {
    const ir_graph *g = lc_graph(c);
    int64_t outer, D, inner, start, d[IR_MAX_IN] = {0};
    int x[IR_MAX_IN];
    for (int i = IR_MAX_IN - 1; i >= 0; i--) /* buffers in the plan's order (linear_forward) */
        x[i] = i < n->nin ? lc_in(c, n, i) : -1;
    for (int i = 0; i < n->nin; i++)
        concat_dims(g, n, i, &outer, &D, &inner, &start, &d[i]);
    _Static_assert(IR_MAX_IN == 8, "rt_concat_fwd takes 8 inputs");
    lc_step(c, n, RTK_concat_fwd, LC_R(x[0]), LC_R(x[1]), LC_R(x[2]), LC_R(x[3]), LC_R(x[4]), LC_R(x[5]), LC_R(x[6]),
            LC_R(x[7]), LC_W(lc_out(c, n)), LC_I(outer), LC_I(inner), LC_I(d[0]), LC_I(d[1]), LC_I(d[2]), LC_I(d[3]),
            LC_I(d[4]), LC_I(d[5]), LC_I(d[6]), LC_I(d[7]));
}

static void concat_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t outer, D, inner, start, len, acc;
    concat_dims(lc_graph(c), n, input, &outer, &D, &inner, &start, &len);
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_slice_fwd, LC_R(dy), LC_W(dst), LC_I(outer), LC_I(D), LC_I(inner), LC_I(start), LC_I(len),
            LC_I(acc));
}

/* ------------------------------------------------------------------ expand
 * torch's Tensor.expand(shape): dims of size 1 repeated to the size given,
 * -1 keeping a dim, new dims in front (never -1); ViT's class token
 * [1, 1, D] to [N, 1, D]. A copy: rt_permute with stride 0 along the
 * repeated dims. Its VJP sums dy over them (rt_bcast_reduce, as add's
 * broadcasting does) and needs nothing. attr: the output's dims, -1s
 * resolved by the shape rule. */

static bool expand_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "expand input"))
        return false;
    const ir_shape *x = &sc_in(sc, n, 0)->shape;
    pool *p = sc_graph(sc)->pool;
    int rank = n->nattr;
    if (rank < x->rank || rank > IR_MAX_RANK) {
        sc_error(sc, n->loc, "expand: %d dims given for %s; give between its rank %d and %d", rank, shape_str(p, x),
                 x->rank, IR_MAX_RANK);
        return false;
    }
    shape->rank = rank;
    for (int k = 0; k < rank; k++) {
        int j = k - (rank - x->rank); /* x's dim aligned with it from the right, < 0: a new dim */
        int64_t want = n->attr[k], have = j >= 0 ? x->dim[j] : 1;
        if (want == -1 && j < 0) {
            sc_error(sc, n->loc, "expand: dim %d is -1, but it is a new dim in front of %s (give its size)", k,
                     shape_str(p, x));
            return false;
        }
        if (want == -1)
            want = have;
        if (want <= 0) {
            sc_error(sc, n->loc, "expand: dim %d is %lld; sizes must be positive (-1 keeps a dim)", k, (long long)want);
            return false;
        }
        if (want != have && have != 1) {
            sc_error(sc, n->loc,
                     "expand: cannot expand %s to size %lld in dim %d: only dims of size 1 repeat (-1 keeps a dim)",
                     shape_str(p, x), (long long)n->attr[k], k);
            return false;
        }
        n->attr[k] = shape->dim[k] = want;
    }
    *dt = DT_F32;
    return true;
}

/* Does output dim k of n repeat its input (a new dim, or size 1 grown)? */
static bool expand_repeats(const ir_graph *g, const ir_node *n, int k) {
    const ir_shape *x = &gval(g, n, 0)->shape, *y = &g->vals[n->out].shape;
    int j = k - (y->rank - x->rank);
    return (j < 0 || x->dim[j] == 1) && y->dim[k] != 1;
}

static void expand_forward(lower_ctx *c, const ir_node *n) {
    const ir_graph *g = lc_graph(c);
    const ir_shape *x = &gval(g, n, 0)->shape, *y = &g->vals[n->out].shape;
    int64_t xs[IR_MAX_RANK], stride[IR_MAX_RANK];
    row_major_strides(x, xs);
    for (int k = 0; k < y->rank; k++) {
        int j = k - (y->rank - x->rank);
        stride[k] = expand_repeats(g, n, k) || j < 0 ? 0 : xs[j];
    }
    permute_step(c, n, lc_in(c, n, 0), lc_out(c, n), y->dim, stride, y->rank, 0);
}

static void expand_vjp(lower_ctx *c, const ir_node *n, int input) {
    const ir_graph *g = lc_graph(c);
    const ir_shape *y = &g->vals[n->out].shape;
    int64_t dim[IR_MAX_RANK], rep = 0, acc; /* y's dims right-aligned in IR_MAX_RANK, as rt_bcast_reduce takes them */
    for (int m = 0; m < IR_MAX_RANK; m++) {
        int k = m - (IR_MAX_RANK - y->rank);
        dim[m] = k >= 0 ? y->dim[k] : 1;
        rep |= k >= 0 && expand_repeats(g, n, k) ? (int64_t)1 << m : 0;
    }
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_bcast_reduce, LC_R(dy), LC_R(-1), LC_W(dst), LC_I(dim[0]), LC_I(dim[1]), LC_I(dim[2]),
            LC_I(dim[3]), LC_I(dim[4]), LC_I(dim[5]), LC_I(rep), LC_I(0), LC_I(acc));
}

/* ------------------------------------------------------------------ embedding
 * nn.Embedding(num, dim): y[ids shape..., dim] = weight[ids]. in: ids (i32,
 * any shape; no gradient), weight [num, dim] (N(0, 1)). d weight is a
 * scatter-add of dy into the rows of the ids, which it needs. An id outside
 * [0, num) makes forward and infer return RT_ERR_INDEX. */

enum { EMB_IDS, EMB_WEIGHT };       /* n->in[] */
enum { EMB_NUM, EMB_DIM, EMB_STD }; /* n->attr[] (num, dim), n->fattr[EMB_STD] */

static bool embedding_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    const ir_value *ids = sc_in(sc, n, EMB_IDS);
    pool *p = sc_graph(sc)->pool;
    int64_t num = n->attr[EMB_NUM], dim = n->attr[EMB_DIM];
    if (ids->dtype != DT_I32) {
        sc_error(sc, n->loc, "embedding ids '%s' must be i32, not %s", ids->name, dtype_name(ids->dtype));
        return false;
    }
    if (num <= 0 || dim <= 0) {
        sc_error(sc, n->loc, "embedding: num and dim must be positive, got %lld and %lld", (long long)num,
                 (long long)dim);
        return false;
    }
    if (ids->shape.rank >= IR_MAX_RANK) {
        sc_error(sc, n->loc, "embedding: ids %s leave no room for the embedding dimension (rank at most %d)",
                 shape_str(p, &ids->shape), IR_MAX_RANK - 1);
        return false;
    }
    int64_t weights, out;
    if (ck_mul(num, dim, &weights) || ck_mul(shape_numel(&ids->shape), dim, &out)) {
        sc_error(sc, n->loc, "embedding: %lld x %lld is too large", (long long)num, (long long)dim);
        return false;
    }
    double std = n->fattr[EMB_STD];
    if (!(std > 0) || !isfinite(std)) {
        sc_error(sc, n->loc, "embedding: std must be positive, got %g", std);
        return false;
    }
    sc_param_std(sc, sc_param(sc, n, "weight", DT_F32, (ir_shape){2, {num, dim}}, INIT_NORMAL, 0), std);
    *dt = DT_F32;
    *shape = ids->shape;
    shape->dim[shape->rank++] = dim;
    return true;
}

static uint32_t embedding_needs(lower_ctx *c, const ir_node *n, int input) { return NEED_IN(EMB_IDS); }

static void embedding_forward(lower_ctx *c, const ir_node *n) {
    int w = lc_in(c, n, EMB_WEIGHT), ids = lc_in(c, n, EMB_IDS); /* buffers in the plan's order (linear_forward) */
    lc_step(c, n, RTK_embedding_fwd, LC_R(ids), LC_R(w), LC_W(lc_out(c, n)),
            LC_I(numel_of(lc_graph(c), n->in[EMB_IDS])), LC_I(n->attr[EMB_NUM]), LC_I(n->attr[EMB_DIM]));
}

static void embedding_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_embedding_bwd, LC_R(lc_saved(c, n, NEED_IN(EMB_IDS))), LC_R(dy), LC_W(dst),
            LC_I(numel_of(lc_graph(c), n->in[EMB_IDS])), LC_I(n->attr[EMB_NUM]), LC_I(n->attr[EMB_DIM]), LC_I(acc));
}

/* ------------------------------------------------------------------ cross_entropy
 * mean over the rows of -log softmax(logits)[label]: logits [..., C], labels
 * i32 of the leading shape ([N, C] and [N], or [B, T, V] and [B, T]). Rows
 * whose label is ignore_index count for nothing, in the sum and in the
 * divisor (PyTorch's reduction='mean'); all of them ignored: loss 0. attr:
 * ignore_index. aux 0: the softmax. */

enum { CE_IGNORE_INDEX }; /* n->attr[] */

/* The labels of a loss over the last dim of in[0] (logits, or h): i32 of
 * in[0]'s leading shape. */
static bool require_row_labels(shape_ctx *sc, ir_node *n, int i, const char *op, const char *what) {
    const ir_value *x = sc_in(sc, n, 0), *labels = sc_in(sc, n, i);
    pool *p = sc_graph(sc)->pool;
    if (x->shape.rank < 2) {
        sc_error(sc, n->loc, "%s: %s '%s' must be [rows..., %s], got %s", op, i == 1 ? "logits" : "input", x->name,
                 i == 1 ? "classes" : "features", shape_str(p, &x->shape));
        return false;
    }
    ir_shape rows = x->shape;
    rows.rank--;
    if (labels->dtype != DT_I32 || !shape_eq(&labels->shape, &rows)) {
        sc_error(sc, n->loc, "%s: %s must be i32%s, got %s%s", op, what, shape_str(p, &rows), dtype_name(labels->dtype),
                 shape_str(p, &labels->shape));
        return false;
    }
    return true;
}

static bool cross_entropy_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "cross_entropy logits") || !require_row_labels(sc, n, 1, "cross_entropy", "labels"))
        return false;
    *dt = DT_F32;
    shape->rank = 0;
    return true;
}

static uint32_t cross_entropy_needs(lower_ctx *c, const ir_node *n, int input) { return NEED_AUX(0) | NEED_IN(1); }

static void cross_entropy_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    *dt = DT_F32;
    *shape = gval(g, n, 0)->shape;
}

static void cross_entropy_forward(lower_ctx *c, const ir_node *n) {
    const ir_graph *g = lc_graph(c);
    int64_t C = last_dim(g, n->in[0]);
    int labels = lc_in(c, n, 1), logits = lc_in(c, n, 0); /* buffers in the plan's order (linear_forward) */
    lc_step(c, n, RTK_cross_entropy_fwd, LC_R(logits), LC_R(labels), LC_W(lc_aux(c, n, 0)), LC_W(lc_out(c, n)),
            LC_I(numel_of(g, n->in[0]) / C), LC_I(C), LC_I(n->attr[CE_IGNORE_INDEX]));
}

static void cross_entropy_vjp(lower_ctx *c, const ir_node *n, int input) {
    const ir_graph *g = lc_graph(c);
    int64_t acc, C = last_dim(g, n->in[0]);
    int dloss = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_cross_entropy_bwd, LC_R(lc_saved(c, n, NEED_AUX(0))), LC_R(lc_saved(c, n, NEED_IN(1))),
            LC_R(dloss), LC_W(dst), LC_I(numel_of(g, n->in[0]) / C), LC_I(C), LC_I(n->attr[CE_IGNORE_INDEX]),
            LC_I(acc));
}

/* ------------------------------------------------------------------ linear_cross_entropy
 * The language-model head and its loss in one op: cross_entropy(h w^T,
 * labels, ignore_index) for h [..., d], w [V, d] a tensor argument (usually
 * another node's param: the tied embedding), labels i32 of h's leading
 * shape. The [N, V] logits are never materialised: forward computes them a
 * tile of LCE_ROWS x LCE_COLS at a time into scratch with an online
 * log-sum-exp per row and keeps only that (aux 0, f32[N]); each VJP
 * recomputes the tiles from h, w and the log-sum-exp. The tile, 64 rows x
 * 1024 vocabulary entries, is 256 KiB of scratch whatever N and V (GPT-2's
 * [1024, 50257] logits would be 196 MiB). */

enum { LCE_H, LCE_WEIGHT, LCE_LABELS };  /* n->in[] */
enum { LCE_IGNORE_INDEX };               /* n->attr[] */
enum { LCE_ROWS = 64, LCE_COLS = 1024 }; /* the tile */

static bool linear_cross_entropy_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, LCE_H, "linear_cross_entropy input") ||
        !require_f32(sc, n, LCE_WEIGHT, "linear_cross_entropy weight") ||
        !require_row_labels(sc, n, LCE_LABELS, "linear_cross_entropy", "labels"))
        return false;
    const ir_value *h = sc_in(sc, n, LCE_H), *w = sc_in(sc, n, LCE_WEIGHT);
    int64_t d = h->shape.dim[h->shape.rank - 1];
    if (w->shape.rank != 2 || w->shape.dim[1] != d) {
        pool *p = sc_graph(sc)->pool;
        sc_error(sc, n->loc, "linear_cross_entropy: weight '%s' must be [vocabulary, %lld], got %s", w->name,
                 (long long)d, shape_str(p, &w->shape));
        return false;
    }
    *dt = DT_F32;
    shape->rank = 0;
    return true;
}

/* Either VJP recomputes the logits from h and w and needs the labels and the
 * per-row log-sum-exp to form softmax - onehot. */
static uint32_t linear_cross_entropy_needs(lower_ctx *c, const ir_node *n, int input) {
    return NEED_IN(LCE_H) | NEED_IN(LCE_WEIGHT) | NEED_IN(LCE_LABELS) | NEED_AUX(0);
}

static void lce_dims(const ir_graph *g, const ir_node *n, int64_t *N, int64_t *d, int64_t *V) {
    *d = last_dim(g, n->in[LCE_H]);
    *N = numel_of(g, n->in[LCE_H]) / *d;
    *V = gval(g, n, LCE_WEIGHT)->shape.dim[0];
}

static void linear_cross_entropy_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    int64_t N, d, V;
    lce_dims(g, n, &N, &d, &V);
    *dt = DT_F32;
    *shape = (ir_shape){1, {N}};
}

static int lce_scratch(lower_ctx *c, const ir_node *n, int64_t N, int64_t V) {
    return lc_scratch(c, n, DT_F32, rt_linear_ce_scratch_floats(N, V, LCE_ROWS, LCE_COLS));
}

static void linear_cross_entropy_forward(lower_ctx *c, const ir_node *n) {
    int64_t N, d, V;
    lce_dims(lc_graph(c), n, &N, &d, &V);
    /* buffers in the plan's order (linear_forward) */
    int labels = lc_in(c, n, LCE_LABELS), w = lc_in(c, n, LCE_WEIGHT), h = lc_in(c, n, LCE_H);
    lc_step(c, n, RTK_linear_ce_fwd, LC_R(h), LC_R(w), LC_R(labels), LC_W(lc_aux(c, n, 0)), LC_W(lc_out(c, n)),
            LC_S(lce_scratch(c, n, N, V)), LC_I(N), LC_I(d), LC_I(V), LC_I(n->attr[LCE_IGNORE_INDEX]), LC_I(LCE_ROWS),
            LC_I(LCE_COLS));
}

/* One backward step for both gradients (the first surviving VJP emits it):
 * the logits' tiles are recomputed once, not once per gradient. */
static void linear_cross_entropy_vjp(lower_ctx *c, const ir_node *n, int input) {
    uint32_t wanted = lc_vjps(c, n);
    if (input != __builtin_ctz(wanted))
        return;
    int64_t N, d, V, acc[2] = {0, 0};
    lce_dims(lc_graph(c), n, &N, &d, &V);
    int dst[2] = {-1, -1};
    for (int i = LCE_H; i <= LCE_WEIGHT; i++)
        if (wanted & (1u << i))
            dst[i] = lc_grad_in(c, n, i, &acc[i]);
    lc_step(c, n, RTK_linear_ce_bwd, LC_R(lc_saved(c, n, NEED_IN(LCE_H))), LC_R(lc_saved(c, n, NEED_IN(LCE_WEIGHT))),
            LC_R(lc_saved(c, n, NEED_IN(LCE_LABELS))), LC_R(lc_saved(c, n, NEED_AUX(0))), LC_R(lc_grad_out(c, n)),
            LC_W(dst[LCE_H]), LC_W(dst[LCE_WEIGHT]), LC_S(lce_scratch(c, n, N, V)), LC_I(N), LC_I(d), LC_I(V),
            LC_I(n->attr[LCE_IGNORE_INDEX]), LC_I(LCE_ROWS), LC_I(LCE_COLS), LC_I(acc[LCE_H]), LC_I(acc[LCE_WEIGHT]));
}

/* ------------------------------------------------------------------ mse_loss
 * mean of (pred - target)^2. aux 0: pred - target, which both VJPs read. */

static bool mse_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "mse_loss prediction") || !require_f32(sc, n, 1, "mse_loss target"))
        return false;
    const ir_value *a = sc_in(sc, n, 0), *b = sc_in(sc, n, 1);
    if (!shape_eq(&a->shape, &b->shape)) {
        pool *p = sc_graph(sc)->pool;
        sc_error(sc, n->loc, "mse_loss: prediction %s and target %s differ in shape", shape_str(p, &a->shape),
                 shape_str(p, &b->shape));
        return false;
    }
    *dt = DT_F32;
    shape->rank = 0;
    return true;
}

static uint32_t mse_needs(lower_ctx *c, const ir_node *n, int input) { return NEED_AUX(0); }

static void mse_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    *dt = DT_F32;
    *shape = gval(g, n, 0)->shape;
}

static void mse_forward(lower_ctx *c, const ir_node *n) {
    int target = lc_in(c, n, 1), pred = lc_in(c, n, 0); /* buffers in the plan's order (linear_forward) */
    lc_step(c, n, RTK_mse_fwd, LC_R(pred), LC_R(target), LC_W(lc_aux(c, n, 0)), LC_W(lc_out(c, n)),
            LC_I(numel_of(lc_graph(c), n->in[0])));
}

static void mse_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc;
    int dloss = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_mse_bwd, LC_R(lc_saved(c, n, NEED_AUX(0))), LC_R(dloss), LC_W(dst),
            LC_I(numel_of(lc_graph(c), n->in[0])), LC_I(input == 0 ? (int64_t)1 : (int64_t)-1), LC_I(acc));
}

/* ------------------------------------------------------------------ NCHW helpers */

static bool require_nchw(shape_ctx *sc, const ir_node *n, const char *op) {
    const ir_value *x = sc_in(sc, n, 0);
    if (x->dtype != DT_F32 || x->shape.rank != 4) {
        sc_error(sc, n->loc, "%s needs an f32 [batch, channels, height, width] input, got %s%s", op,
                 dtype_name(x->dtype), shape_str(sc_graph(sc)->pool, &x->shape));
        return false;
    }
    return true;
}

typedef struct {
    int64_t N, C, H, W;
} nchw;

static nchw dims4(const ir_graph *g, int value) {
    const ir_shape *s = &g->vals[value].shape;
    return (nchw){s->dim[0], s->dim[1], s->dim[2], s->dim[3]};
}

/* ------------------------------------------------------------------ conv2d
 * in: x [N,C,H,W], weight [K, C/groups, k, k], bias [K]. Square windows. */

/* n->attr[], in the order of the signature's non-tensor arguments */
enum { CONV_OUT_CHANNELS, CONV_KERNEL, CONV_STRIDE, CONV_PADDING, CONV_DILATION, CONV_GROUPS, CONV_BIAS };

static bool conv2d_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_nchw(sc, n, "conv2d"))
        return false;
    nchw x = dims4(sc_graph(sc), n->in[0]);
    int64_t K = n->attr[CONV_OUT_CHANNELS], k = n->attr[CONV_KERNEL], s = n->attr[CONV_STRIDE],
            p = n->attr[CONV_PADDING], d = n->attr[CONV_DILATION], groups = n->attr[CONV_GROUPS];
    if (K <= 0 || k <= 0 || s <= 0 || d <= 0 || p < 0 || groups <= 0) {
        sc_error(sc, n->loc,
                 "conv2d: out_channels, kernel, stride, dilation and groups must be positive and padding "
                 "non-negative (got %lld, %lld, %lld, %lld, %lld; padding %lld)",
                 (long long)K, (long long)k, (long long)s, (long long)d, (long long)groups, (long long)p);
        return false;
    }
    if (x.C % groups || K % groups) {
        sc_error(sc, n->loc, "conv2d: groups (%lld) must divide both in_channels (%lld) and out_channels (%lld)",
                 (long long)groups, (long long)x.C, (long long)K);
        return false;
    }
    int64_t OH = rt_out_size(x.H, k, s, p, d), OW = rt_out_size(x.W, k, s, p, d);
    if (OH < 0 || OW < 0) {
        sc_error(sc, n->loc, "conv2d: padding %lld is too large: the padded %lldx%lld input overflows 64-bit sizes",
                 (long long)p, (long long)x.H, (long long)x.W);
        return false;
    }
    if (OH < 1 || OW < 1) {
        sc_error(sc, n->loc, "conv2d: a %lldx%lld kernel (dilation %lld, padding %lld) does not fit a %lldx%lld input",
                 (long long)k, (long long)k, (long long)d, (long long)p, (long long)x.H, (long long)x.W);
        return false;
    }
    /* The kernels' im2col scratch is an arena buffer like any tensor (conv2d_scratch) and must fit as one. */
    int64_t scratch = rt_conv2d_scratch_floats(x.C, x.H, x.W, k, s, p, d, groups);
    if (scratch < 0 || shape_bytes(&(ir_shape){1, {scratch}}, DT_F32) < 0) {
        sc_error(sc, n->loc,
                 "conv2d: the im2col scratch of '%s' would be too large: f32[%lld, %lld, %lld, %lld, %lld] "
                 "(in_channels/groups, kernel, kernel, output height, output width) does not fit in 2^63 bytes",
                 n->name, (long long)(x.C / groups), (long long)k, (long long)k, (long long)OH, (long long)OW);
        return false;
    }
    /* -1 when the weight is too large, which sc_param reports */
    int64_t fan_in = shape_numel(&(ir_shape){3, {x.C / groups, k, k}});
    sc_param(sc, n, "weight", DT_F32, (ir_shape){4, {K, x.C / groups, k, k}}, INIT_KAIMING_UNIFORM, fan_in);
    if (n->attr[CONV_BIAS])
        sc_param(sc, n, "bias", DT_F32, (ir_shape){1, {K}}, INIT_BIAS_UNIFORM, fan_in);
    *dt = DT_F32;
    *shape = (ir_shape){4, {x.N, K, OH, OW}};
    return true;
}

static uint32_t conv2d_needs(lower_ctx *c, const ir_node *n, int input) {
    switch (input) {
    case 0: return NEED_IN(1); /* dx = conv_transpose(dy, w) */
    case 1: return NEED_IN(0); /* dw = dy (x) im2col(x): the only reason to keep x */
    default: return 0;         /* db = sum dy */
    }
}

/* The im2col scratch a conv2d step needs (rt_conv2d_scratch_floats is a pure
 * inline function of rt.h shared with the kernels). */
static int conv2d_scratch(lower_ctx *c, const ir_node *n) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    int64_t floats = rt_conv2d_scratch_floats(x.C, x.H, x.W, n->attr[CONV_KERNEL], n->attr[CONV_STRIDE],
                                              n->attr[CONV_PADDING], n->attr[CONV_DILATION], n->attr[CONV_GROUPS]);
    return lc_scratch(c, n, DT_F32, floats);
}

/* GEMM columns worth gathering into one call: at OH*OW of 16 or 64 (ResNet's
 * last stages), per-image GEMMs run at a fifth to nine tenths of the speed of
 * 512-column ones (OpenBLAS 0.3.21, 2 cores, bench/gemm_columns.c); past 512
 * the gain is a few %. */
enum { CONV_GEMM_COLUMNS = 512 };

/* After the step just appended: it may take blocks of images (its `n`
 * operand in rt.h) if widen.c finds room for its scratch. */
static void conv2d_blocks(lower_ctx *c, const ir_node *n) {
    nchw x = dims4(lc_graph(c), n->in[0]), y = dims4(lc_graph(c), n->out);
    int64_t per_image = rt_conv2d_blocked_scratch_floats(
        x.C, x.H, x.W, n->attr[CONV_OUT_CHANNELS], n->attr[CONV_KERNEL], n->attr[CONV_STRIDE], n->attr[CONV_PADDING],
        n->attr[CONV_DILATION], n->attr[CONV_GROUPS]);
    int64_t columns = y.H * y.W, most = columns > 0 ? CONV_GEMM_COLUMNS / columns : 1, bytes;
    /* a block whose scratch overflows int64 fits no arena: one image at a time */
    if (per_image < 0 || ck_mul(per_image, (int64_t)sizeof(float), &bytes))
        return;
    if (most > x.N)
        most = x.N;
    lc_step_blocks(c, most, bytes);
}

static void conv2d_forward(lower_ctx *c, const ir_node *n) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    int bias = n->nin > 2 ? lc_in(c, n, 2) : -1;
    /* buffers in the plan's order (linear_forward): the scratch before the weight */
    int scratch = conv2d_scratch(c, n), w = lc_in(c, n, 1), x_buf = lc_in(c, n, 0);
    lc_step(c, n, RTK_conv2d_fwd, LC_R(x_buf), LC_R(w), LC_R(bias), LC_W(lc_out(c, n)), LC_S(scratch), LC_I(x.N),
            LC_I(x.C), LC_I(x.H), LC_I(x.W), LC_I(n->attr[CONV_OUT_CHANNELS]), LC_I(n->attr[CONV_KERNEL]),
            LC_I(n->attr[CONV_STRIDE]), LC_I(n->attr[CONV_PADDING]), LC_I(n->attr[CONV_DILATION]),
            LC_I(n->attr[CONV_GROUPS]), LC_IMAGES);
    conv2d_blocks(c, n);
}

static void conv2d_vjp(lower_ctx *c, const ir_node *n, int input) {
    const ir_graph *g = lc_graph(c);
    nchw x = dims4(g, n->in[0]);
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    if (input == 2) {
        nchw y = dims4(g, n->out);
        lc_step(c, n, RTK_sum_channels, LC_R(dy), LC_W(dst), LC_I(y.N), LC_I(y.C), LC_I(y.H * y.W), LC_I(acc));
        return;
    }
    int scratch = conv2d_scratch(c, n);
    lc_step(c, n, input == 0 ? RTK_conv2d_bwd_x : RTK_conv2d_bwd_w, LC_R(dy),
            LC_R(lc_saved(c, n, input == 0 ? NEED_IN(1) : NEED_IN(0))), LC_W(dst), LC_S(scratch), LC_I(x.N), LC_I(x.C),
            LC_I(x.H), LC_I(x.W), LC_I(n->attr[CONV_OUT_CHANNELS]), LC_I(n->attr[CONV_KERNEL]),
            LC_I(n->attr[CONV_STRIDE]), LC_I(n->attr[CONV_PADDING]), LC_I(n->attr[CONV_DILATION]),
            LC_I(n->attr[CONV_GROUPS]), LC_IMAGES, LC_I(acc));
    conv2d_blocks(c, n);
}

/* ------------------------------------------------------------------ batchnorm2d
 * in: x [N,C,H,W], weight, bias, running_mean, running_var (all [C]),
 * num_batches_tracked (i64 scalar): PyTorch's BatchNorm2d state, by name.
 * fattr: eps, momentum. Training mode normalises with the batch statistics
 * and updates the running ones; eval mode (inference, or a configuration
 * with `batchnorm eval`) uses the running statistics and is affine in x, so
 * its d/dx keeps nothing from forward. aux 0 (training mode): per-channel
 * batch mean and 1/std, [2, C]. */

enum { BN_X, BN_WEIGHT, BN_BIAS, BN_MEAN, BN_VAR, BN_COUNT }; /* n->in[] */
enum { BN_EPS, BN_MOMENTUM };                                 /* n->fattr[] */

static bool batchnorm2d_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_nchw(sc, n, "batchnorm2d"))
        return false;
    if (!(n->fattr[BN_EPS] > 0) || !(n->fattr[BN_MOMENTUM] >= 0 && n->fattr[BN_MOMENTUM] <= 1)) {
        sc_error(sc, n->loc, "batchnorm2d: eps must be positive and momentum in [0, 1] (got %g, %g)", n->fattr[BN_EPS],
                 n->fattr[BN_MOMENTUM]);
        return false;
    }
    int64_t C = sc_in(sc, n, 0)->shape.dim[1];
    ir_shape per_channel = {1, {C}};
    sc_param(sc, n, "weight", DT_F32, per_channel, INIT_ONES, 0);
    sc_param(sc, n, "bias", DT_F32, per_channel, INIT_ZEROS, 0);
    sc_buffer(sc, n, "running_mean", DT_F32, per_channel, INIT_ZEROS, true);
    sc_buffer(sc, n, "running_var", DT_F32, per_channel, INIT_ONES, true);
    sc_buffer(sc, n, "num_batches_tracked", DT_I64, (ir_shape){0, {0}}, INIT_ZEROS, true);
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static bool bn_batch_stats(lower_ctx *c) { return lc_training(c) && !lc_bn_eval(c); }

static uint32_t batchnorm2d_needs(lower_ctx *c, const ir_node *n, int input) {
    if (bn_batch_stats(c)) {
        switch (input) {
        case BN_X: return NEED_IN(BN_X) | NEED_IN(BN_WEIGHT) | NEED_AUX(0);
        case BN_WEIGHT: return NEED_IN(BN_X) | NEED_AUX(0);
        default: return 0;
        }
    }
    switch (input) {
    case BN_X: return NEED_IN(BN_WEIGHT) | NEED_IN(BN_VAR); /* parameters only */
    case BN_WEIGHT: return NEED_IN(BN_X) | NEED_IN(BN_MEAN) | NEED_IN(BN_VAR);
    default: return 0;
    }
}

static void batchnorm2d_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    *dt = DT_F32;
    *shape = (ir_shape){2, {2, gval(g, n, 0)->shape.dim[1]}};
}

static void batchnorm2d_forward(lower_ctx *c, const ir_node *n) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    int in[BN_COUNT + 1];
    for (int i = 0; i <= BN_COUNT; i++)
        in[i] = lc_in(c, n, i);
    if (bn_batch_stats(c))
        lc_step(c, n, RTK_bn_train_fwd, LC_R(in[BN_X]), LC_R(in[BN_WEIGHT]), LC_R(in[BN_BIAS]), LC_W(in[BN_MEAN]),
                LC_W(in[BN_VAR]), LC_W(in[BN_COUNT]), LC_W(lc_out(c, n)), LC_W(lc_aux(c, n, 0)), LC_I(x.N), LC_I(x.C),
                LC_I(x.H * x.W), LC_F(n->fattr[BN_EPS]), LC_F(n->fattr[BN_MOMENTUM]));
    else
        lc_step(c, n, RTK_bn_eval_fwd, LC_R(in[BN_X]), LC_R(in[BN_WEIGHT]), LC_R(in[BN_BIAS]), LC_R(in[BN_MEAN]),
                LC_R(in[BN_VAR]), LC_W(lc_out(c, n)), LC_I(x.N), LC_I(x.C), LC_I(x.H * x.W), LC_F(n->fattr[BN_EPS]));
}

static void batchnorm2d_vjp(lower_ctx *c, const ir_node *n, int input) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    int64_t acc, HW = x.H * x.W;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    if (input == BN_BIAS) {
        lc_step(c, n, RTK_sum_channels, LC_R(dy), LC_W(dst), LC_I(x.N), LC_I(x.C), LC_I(HW), LC_I(acc));
    } else if (bn_batch_stats(c)) {
        int stats = lc_saved(c, n, NEED_AUX(0)), xs = lc_saved(c, n, NEED_IN(BN_X));
        if (input == BN_X)
            lc_step(c, n, RTK_bn_train_bwd_x, LC_R(xs), LC_R(lc_saved(c, n, NEED_IN(BN_WEIGHT))), LC_R(stats), LC_R(dy),
                    LC_W(dst), LC_I(x.N), LC_I(x.C), LC_I(HW), LC_I(acc));
        else
            lc_step(c, n, RTK_bn_train_bwd_gamma, LC_R(xs), LC_R(stats), LC_R(dy), LC_W(dst), LC_I(x.N), LC_I(x.C),
                    LC_I(HW), LC_I(acc));
    } else if (input == BN_X) {
        lc_step(c, n, RTK_bn_eval_bwd_x, LC_R(lc_saved(c, n, NEED_IN(BN_WEIGHT))),
                LC_R(lc_saved(c, n, NEED_IN(BN_VAR))), LC_R(dy), LC_W(dst), LC_I(x.N), LC_I(x.C), LC_I(HW), LC_I(acc),
                LC_F(n->fattr[BN_EPS]));
    } else {
        lc_step(c, n, RTK_bn_eval_bwd_gamma, LC_R(lc_saved(c, n, NEED_IN(BN_X))),
                LC_R(lc_saved(c, n, NEED_IN(BN_MEAN))), LC_R(lc_saved(c, n, NEED_IN(BN_VAR))), LC_R(dy), LC_W(dst),
                LC_I(x.N), LC_I(x.C), LC_I(HW), LC_I(acc), LC_F(n->fattr[BN_EPS]));
    }
}

/* ------------------------------------------------------------------ pooling
 * maxpool2d / avgpool2d (x, kernel, stride = kernel, padding = 0); square
 * windows over each plane. Max pooling keeps, for backward, the arg-max
 * position inside each window (one byte per output) instead of its input.
 * Average pooling counts padding in the divisor (PyTorch's default). */

enum { POOL_KERNEL, POOL_STRIDE, POOL_PADDING }; /* n->attr[] */

static bool pool_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape, const char *op) {
    if (!require_nchw(sc, n, op))
        return false;
    nchw x = dims4(sc_graph(sc), n->in[0]);
    int64_t k = n->attr[POOL_KERNEL];
    if (n->attr[POOL_STRIDE] < 0)
        n->attr[POOL_STRIDE] = k; /* stride defaults to the kernel size */
    int64_t s = n->attr[POOL_STRIDE], p = n->attr[POOL_PADDING], window;
    if (k <= 0 || s <= 0 || p < 0 || p > k / 2) {
        sc_error(sc, n->loc,
                 "%s: kernel and stride must be positive and padding at most half the kernel "
                 "(got kernel %lld, stride %lld, padding %lld)",
                 op, (long long)k, (long long)s, (long long)p);
        return false;
    }
    if (ck_mul(k, k, &window) || window > RT_POOL_WINDOW_MAX) {
        sc_error(sc, n->loc, "%s: a %lldx%lld window is larger than frost's %d-element limit", op, (long long)k,
                 (long long)k, RT_POOL_WINDOW_MAX);
        return false;
    }
    int64_t OH = rt_out_size(x.H, k, s, p, 1), OW = rt_out_size(x.W, k, s, p, 1);
    IR_ASSERT(OH >= 0 && OW >= 0); /* padding <= kernel / 2 <= 8: the padded input cannot overflow */
    if (OH < 1 || OW < 1) {
        sc_error(sc, n->loc, "%s: a %lldx%lld window does not fit a %lldx%lld input", op, (long long)k, (long long)k,
                 (long long)x.H, (long long)x.W);
        return false;
    }
    *dt = DT_F32;
    *shape = (ir_shape){4, {x.N, x.C, OH, OW}};
    return true;
}

static bool maxpool2d_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    return pool_infer(sc, n, dt, shape, "maxpool2d");
}
static bool avgpool2d_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    return pool_infer(sc, n, dt, shape, "avgpool2d");
}

static uint32_t maxpool2d_needs(lower_ctx *c, const ir_node *n, int input) { return NEED_AUX(0); }

static void maxpool2d_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    *dt = DT_U8;
    *shape = g->vals[n->out].shape;
}

static void maxpool2d_forward(lower_ctx *c, const ir_node *n) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    lc_step(c, n, RTK_maxpool_fwd, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_W(lc_aux(c, n, 0)), LC_I(x.N * x.C),
            LC_I(x.H), LC_I(x.W), LC_I(n->attr[POOL_KERNEL]), LC_I(n->attr[POOL_STRIDE]), LC_I(n->attr[POOL_PADDING]));
}

static void maxpool2d_vjp(lower_ctx *c, const ir_node *n, int input) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_maxpool_bwd, LC_R(lc_saved(c, n, NEED_AUX(0))), LC_R(dy), LC_W(dst), LC_I(x.N * x.C), LC_I(x.H),
            LC_I(x.W), LC_I(n->attr[POOL_KERNEL]), LC_I(n->attr[POOL_STRIDE]), LC_I(n->attr[POOL_PADDING]), LC_I(acc));
}

static void avgpool2d_forward(lower_ctx *c, const ir_node *n) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    lc_step(c, n, RTK_avgpool_fwd, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_I(x.N * x.C), LC_I(x.H), LC_I(x.W),
            LC_I(n->attr[POOL_KERNEL]), LC_I(n->attr[POOL_STRIDE]), LC_I(n->attr[POOL_PADDING]));
}

static void avgpool2d_vjp(lower_ctx *c, const ir_node *n, int input) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_avgpool_bwd, LC_R(dy), LC_W(dst), LC_I(x.N * x.C), LC_I(x.H), LC_I(x.W),
            LC_I(n->attr[POOL_KERNEL]), LC_I(n->attr[POOL_STRIDE]), LC_I(n->attr[POOL_PADDING]), LC_I(acc));
}

/* global_avgpool(x): [N,C,H,W] -> [N,C,1,1], PyTorch's AdaptiveAvgPool2d(1). */
static bool global_avgpool_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_nchw(sc, n, "global_avgpool"))
        return false;
    nchw x = dims4(sc_graph(sc), n->in[0]);
    *dt = DT_F32;
    *shape = (ir_shape){4, {x.N, x.C, 1, 1}};
    return true;
}

static void global_avgpool_forward(lower_ctx *c, const ir_node *n) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    lc_step(c, n, RTK_global_avgpool_fwd, LC_R(lc_in(c, n, 0)), LC_W(lc_out(c, n)), LC_I(x.N * x.C), LC_I(x.H * x.W));
}

static void global_avgpool_vjp(lower_ctx *c, const ir_node *n, int input) {
    nchw x = dims4(lc_graph(c), n->in[0]);
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_global_avgpool_bwd, LC_R(dy), LC_W(dst), LC_I(x.N * x.C), LC_I(x.H * x.W), LC_I(acc));
}

/* ------------------------------------------------------------------ dropout
 * dropout(x, p): in training, zeroes each element with probability p and
 * scales the rest by 1/(1-p); the identity in inference. The mask is never
 * stored: forward draws a seed from the node's RNG counter (a non-persistent
 * i64 buffer "<name>.rng_state" in the params block) and saves the 8-byte seed;
 * backward regenerates the mask from it. */

static bool dropout_infer(shape_ctx *sc, ir_node *n, ir_dtype *dt, ir_shape *shape) {
    if (!require_f32(sc, n, 0, "dropout input"))
        return false;
    double p = n->fattr[0];
    if (!(p >= 0 && p < 1)) {
        sc_error(sc, n->loc, "dropout: p must be in [0, 1), got %g", p);
        return false;
    }
    sc_buffer(sc, n, "rng_state", DT_I64, (ir_shape){0, {0}}, INIT_ZEROS, false);
    *dt = DT_F32;
    *shape = sc_in(sc, n, 0)->shape;
    return true;
}

static uint32_t dropout_needs(lower_ctx *c, const ir_node *n, int input) { return NEED_AUX(0); }

static void dropout_aux(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape) {
    *dt = DT_I64;
    *shape = (ir_shape){1, {1}};
}

static void dropout_forward(lower_ctx *c, const ir_node *n) {
    int rng_state = lc_in(c, n, 1), x = lc_in(c, n, 0); /* buffers in the plan's order (linear_forward) */
    lc_step(c, n, RTK_dropout_fwd, LC_R(x), LC_W(lc_out(c, n)), LC_W(rng_state), LC_W(lc_aux(c, n, 0)),
            LC_I(numel_of(lc_graph(c), n->out)), LC_F(n->fattr[0]));
}

static void dropout_vjp(lower_ctx *c, const ir_node *n, int input) {
    int64_t acc;
    int dy = lc_grad_out(c, n);
    int dst = lc_grad_in(c, n, input, &acc);
    lc_step(c, n, RTK_dropout_bwd, LC_R(lc_saved(c, n, NEED_AUX(0))), LC_R(dy), LC_W(dst),
            LC_I(numel_of(lc_graph(c), n->out)), LC_I(acc), LC_F(n->fattr[0]));
}

/* ------------------------------------------------------------------ the table */

#define T(name) \
    { name, ARG_TENSOR, false, 0 }
#define I(name) \
    { name, ARG_INT, false, 0 }
#define I_OPT(name, v) \
    { name, ARG_INT, true, v }
#define B_OPT(name, v) \
    { name, ARG_BOOL, true, v }
#define INTS(name) \
    { name, ARG_INTS, false, 0 }
#define TENSORS(name) \
    { name, ARG_TENSORS, false, 0 }
#define F(name) \
    { name, ARG_FLOAT, false, 0 }
#define F_OPT(name, v) \
    { name, ARG_FLOAT, true, v }

/* Columns: signature; shape rule; differentiable inputs (bit i = input i);
 * residual needs; aux tensors; forward; VJP. */
const op_def op_table[] = {
    {.name = "linear",
     .args = {T("x"), I("out_features"), B_OPT("bias", 1), B_OPT("in_out", 0)},
     .nargs = 4,
     .infer = linear_infer,
     .diff_inputs = 0x7,
     .needs = linear_needs,
     .forward = linear_forward,
     .vjp = linear_vjp},
    {.name = "lora_linear",
     .args = {T("x"), I("out_features"), I_OPT("r", 8), F_OPT("alpha", 16), F_OPT("dropout", 0), B_OPT("bias", 1),
              B_OPT("in_out", 0), B_OPT("rslora", 0)},
     .nargs = 8,
     .infer = lora_linear_infer,
     .diff_inputs = 0x1f, /* x, weight, bias, A, B (without a bias the rng buffer is bit 4: buffers never train) */
     .needs = lora_linear_needs,
     .naux = 2,
     .aux_doc = {"u = s A(dropout(x)), r floats per row", "the seed of the adapter's dropout mask, 8 bytes"},
     .aux_shape = lora_linear_aux,
     .forward = lora_linear_forward,
     .vjp = lora_linear_vjp},
    {.name = "matmul",
     .args = {T("a"), T("b")},
     .nargs = 2,
     .infer = matmul_infer,
     .diff_inputs = 0x3,
     .needs = matmul_needs,
     .forward = matmul_forward,
     .vjp = matmul_vjp},
    {.name = "relu",
     .args = {T("x")},
     .nargs = 1,
     .infer = relu_infer,
     .diff_inputs = 0x1,
     .needs = relu_needs,
     .forward = relu_forward,
     .vjp = relu_vjp,
     .elementwise = true},
    {.name = "sigmoid",
     .args = {T("x")},
     .nargs = 1,
     .infer = sigmoid_infer,
     .diff_inputs = 0x1,
     .needs = sigmoid_needs,
     .forward = sigmoid_forward,
     .vjp = sigmoid_vjp,
     .elementwise = true},
    {.name = "silu",
     .args = {T("x")},
     .nargs = 1,
     .infer = silu_infer,
     .diff_inputs = 0x1,
     .needs = silu_needs,
     .forward = silu_forward,
     .vjp = silu_vjp,
     .elementwise = true,
     .recomputable = true},
    {.name = "gelu",
     .args = {T("x"), B_OPT("tanh", 0)},
     .nargs = 2,
     .infer = gelu_infer,
     .diff_inputs = 0x1,
     .needs = gelu_needs,
     .forward = gelu_forward,
     .vjp = gelu_vjp,
     .elementwise = true,
     .recomputable = true},
    {.name = "add",
     .args = {T("a"), T("b")},
     .nargs = 2,
     .infer = add_infer,
     .diff_inputs = 0x3,
     .needs = needs_nothing,
     .forward = add_forward,
     .vjp = add_vjp,
     .elementwise = true,
     .recomputable = true},
    {.name = "mul",
     .args = {T("a"), T("b")},
     .nargs = 2,
     .infer = mul_infer,
     .diff_inputs = 0x3,
     .needs = mul_needs,
     .forward = mul_forward,
     .vjp = mul_vjp,
     .elementwise = true,
     .recomputable = true},
    {.name = "scale",
     .args = {T("x"), F("c")},
     .nargs = 2,
     .infer = scale_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = scale_forward,
     .vjp = scale_vjp,
     .elementwise = true,
     .recomputable = true},
    {.name = "flatten",
     .args = {T("x"), I_OPT("start_dim", 1)},
     .nargs = 2,
     .infer = flatten_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = view_forward,
     .vjp = view_vjp,
     .is_view = true},
    {.name = "reshape",
     .args = {T("x"), INTS("shape")},
     .nargs = 2,
     .infer = reshape_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = view_forward,
     .vjp = view_vjp,
     .is_view = true},
    {.name = "transpose",
     .args = {T("x"), I("d0"), I("d1")},
     .nargs = 3,
     .infer = transpose_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = transpose_forward,
     .vjp = transpose_vjp,
     .recomputable = true},
    {.name = "permute",
     .args = {T("x"), INTS("dims")},
     .nargs = 2,
     .infer = permute_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = permute_forward,
     .vjp = permute_vjp,
     .recomputable = true},
    {.name = "slice",
     .args = {T("x"), I("dim"), I("start"), I("end")},
     .nargs = 4,
     .infer = slice_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = slice_forward,
     .vjp = slice_vjp,
     .recomputable = true},
    {.name = "concat",
     .args = {TENSORS("xs"), I_OPT("dim", 0)},
     .nargs = 2,
     .infer = concat_infer,
     .diff_inputs = (1u << IR_MAX_IN) - 1,
     .needs = needs_nothing,
     .forward = concat_forward,
     .vjp = concat_vjp,
     .recomputable = true},
    {.name = "expand",
     .args = {T("x"), INTS("shape")},
     .nargs = 2,
     .infer = expand_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = expand_forward,
     .vjp = expand_vjp,
     .recomputable = true},
    {.name = "embedding",
     .args = {T("ids"), I("num"), I("dim"), F_OPT("std", 1.0)},
     .nargs = 4,
     .infer = embedding_infer,
     .diff_inputs = 0x2,
     .needs = embedding_needs,
     .forward = embedding_forward,
     .vjp = embedding_vjp},
    {.name = "cross_entropy",
     .args = {T("logits"), T("labels"), I_OPT("ignore_index", -100)},
     .nargs = 3,
     .infer = cross_entropy_infer,
     .diff_inputs = 0x1,
     .needs = cross_entropy_needs,
     .naux = 1,
     .aux_shape = cross_entropy_aux,
     .aux_doc = {"softmax of the logits"},
     .forward = cross_entropy_forward,
     .vjp = cross_entropy_vjp},
    {.name = "linear_cross_entropy",
     .args = {T("h"), T("weight"), T("labels"), I_OPT("ignore_index", -100)},
     .nargs = 4,
     .infer = linear_cross_entropy_infer,
     .diff_inputs = 0x3,
     .needs = linear_cross_entropy_needs,
     .naux = 1,
     .aux_shape = linear_cross_entropy_aux,
     .aux_doc = {"per-row log-sum-exp of the logits, 1 float per row"},
     .forward = linear_cross_entropy_forward,
     .vjp = linear_cross_entropy_vjp},
    {.name = "mse_loss",
     .args = {T("pred"), T("target")},
     .nargs = 2,
     .infer = mse_infer,
     .diff_inputs = 0x3,
     .needs = mse_needs,
     .naux = 1,
     .aux_shape = mse_aux,
     .aux_doc = {"pred - target"},
     .forward = mse_forward,
     .vjp = mse_vjp},
    {.name = "conv2d",
     .args = {T("x"), I("out_channels"), I("kernel"), I_OPT("stride", 1), I_OPT("padding", 0), I_OPT("dilation", 1),
              I_OPT("groups", 1), B_OPT("bias", 1)},
     .nargs = 8,
     .infer = conv2d_infer,
     .diff_inputs = 0x7,
     .needs = conv2d_needs,
     .forward = conv2d_forward,
     .vjp = conv2d_vjp},
    {.name = "batchnorm2d",
     .args = {T("x"), F_OPT("eps", 1e-5), F_OPT("momentum", 0.1)},
     .nargs = 3,
     .infer = batchnorm2d_infer,
     .diff_inputs = 0x7,
     .needs = batchnorm2d_needs,
     .naux = 1,
     .aux_shape = batchnorm2d_aux,
     .aux_doc = {"per-channel batch mean and 1/std, 2·C floats"},
     .forward = batchnorm2d_forward,
     .vjp = batchnorm2d_vjp},
    {.name = "rms_norm",
     .args = {T("x"), F_OPT("eps", 1e-6)},
     .nargs = 2,
     .infer = rms_norm_infer,
     .diff_inputs = 0x3,
     .needs = rms_norm_needs,
     .naux = 1,
     .aux_shape = norm_rows_aux,
     .aux_doc = {"per-row 1/rms, 1 float per row"},
     .forward = rms_norm_forward,
     .vjp = rms_norm_vjp,
     .recomputable = true},
    {.name = "layer_norm",
     .args = {T("x"), F_OPT("eps", 1e-5), B_OPT("affine", 1)},
     .nargs = 3,
     .infer = layer_norm_infer,
     .diff_inputs = 0x7,
     .needs = layer_norm_needs,
     .naux = 1,
     .aux_shape = layer_norm_aux,
     .aux_doc = {"per-row mean and 1/std, 2 floats per row"},
     .forward = layer_norm_forward,
     .vjp = layer_norm_vjp,
     .recomputable = true},
    {.name = "softmax",
     .args = {T("x")},
     .nargs = 1,
     .infer = softmax_infer,
     .diff_inputs = 0x1,
     .needs = softmax_needs,
     .forward = softmax_forward,
     .vjp = softmax_vjp},
    {.name = "attention",
     .args = {T("q"), T("k"), T("v"), B_OPT("causal", 1), F_OPT("scale", 0.0)},
     .nargs = 5,
     .infer = attention_infer,
     .diff_inputs = 0x7,
     .needs = attention_needs,
     .naux = 1,
     .aux_shape = attention_aux,
     .aux_doc = {"per-row log-sum-exp of the scores, 1 float per query row"},
     .forward = attention_forward,
     .vjp = attention_vjp},
    {.name = "rope",
     .args = {T("x"), F_OPT("theta", 10000.0)},
     .nargs = 2,
     .infer = rope_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = rope_forward,
     .vjp = rope_vjp,
     .recomputable = true},
    {.name = "maxpool2d",
     .args = {T("x"), I("kernel"), I_OPT("stride", -1), I_OPT("padding", 0)},
     .nargs = 4,
     .infer = maxpool2d_infer,
     .diff_inputs = 0x1,
     .needs = maxpool2d_needs,
     .naux = 1,
     .aux_shape = maxpool2d_aux,
     .aux_doc = {"position of each max in its window, 1 byte per output"},
     .forward = maxpool2d_forward,
     .vjp = maxpool2d_vjp},
    {.name = "avgpool2d",
     .args = {T("x"), I("kernel"), I_OPT("stride", -1), I_OPT("padding", 0)},
     .nargs = 4,
     .infer = avgpool2d_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = avgpool2d_forward,
     .vjp = avgpool2d_vjp},
    {.name = "global_avgpool",
     .args = {T("x")},
     .nargs = 1,
     .infer = global_avgpool_infer,
     .diff_inputs = 0x1,
     .needs = needs_nothing,
     .forward = global_avgpool_forward,
     .vjp = global_avgpool_vjp},
    {.name = "dropout",
     .args = {T("x"), F_OPT("p", 0.5)},
     .nargs = 2,
     .infer = dropout_infer,
     .diff_inputs = 0x1,
     .needs = dropout_needs,
     .naux = 1,
     .aux_shape = dropout_aux,
     .aux_doc = {"the seed of its mask, 8 bytes: the mask is drawn again"},
     .forward = dropout_forward,
     .vjp = dropout_vjp,
     .identity_in_infer = true},
};
const int op_count = (int)(sizeof op_table / sizeof op_table[0]);

const op_def *op_find(const char *name) {
    for (int k = 0; k < op_count; k++)
        if (strcmp(op_table[k].name, name) == 0)
            return &op_table[k];
    return NULL;
}
