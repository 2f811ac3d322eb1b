/* Selective autodiff and residual selection: for each freeze configuration of
 * a small MLP, exactly the right backward kernels exist and exactly the right
 * tensors, in the right form, live from forward into backward. */
#include "ir.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char mlp_src[] = "model mlp\n"
                              "const N = 8\n"
                              "input x : f32[N, 20]\n"
                              "input label : i32[N]\n"
                              "fc1 = linear(x, 16)\n"
                              "h1 = relu(fc1)\n"
                              "fc2 = linear(h1, 4)\n"
                              "loss = cross_entropy(fc2, label)\n"
                              "output loss\n"
                              "config all { train * }\n"
                              "config head { train fc2.* }\n"
                              "config input { train none; grad x }\n"
                              "config first { train fc1.* }\n"
                              "config bitfit { train *.bias }\n"
                              "default head\n";

typedef struct {
    pool *p;
    ir_module *m;
    char *msgs;
    size_t msgs_len;
} built;

static built build(const char *src, const char *config) {
    built b = {.p = pool_new()};
    FILE *out = open_memstream(&b.msgs, &b.msgs_len);
    diag_ctx d;
    diag_init(&d, "test.frost", src, strlen(src), out);
    frost_select sel = {.config = config};
    b.m = frost_build(b.p, &d, NULL, 0, &sel);
    fclose(out);
    return b;
}

static void release(built *b) {
    pool_free(b->p);
    free(b->msgs);
}

static int count_kernel(const ir_program *prog, const char *kernel, bool backward) {
    int count = 0;
    for (int s = backward ? prog->nfwd : 0; s < (backward ? prog->nsteps : prog->nfwd); s++)
        count += strcmp(prog->steps[s].kernel, kernel) == 0;
    return count;
}

/* Buffer named `name`, or -1. */
static int find_buf(const ir_program *prog, const char *name) {
    for (int b = 0; b < prog->nbufs; b++)
        if (strcmp(prog->bufs[b].name, name) == 0)
            return b;
    return -1;
}

static bool is_residual(const ir_program *prog, const char *name) {
    int b = find_buf(prog, name);
    if (b < 0)
        return false;
    const ir_buf *buf = &prog->bufs[b];
    while (buf->alias_of >= 0)
        buf = &prog->bufs[buf->alias_of];
    return buf->space == SPACE_ARENA && buf->first >= 0 && buf->first < prog->nfwd && buf->last >= prog->nfwd;
}

/* Sum of aligned bytes of the root arena buffers that cross into backward. */
static int64_t residual_bytes(const ir_program *prog) {
    int64_t total = 0;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->alias_of < 0 && buf->space == SPACE_ARENA && buf->first >= 0 && buf->first < prog->nfwd &&
            buf->last >= prog->nfwd)
            total += ir_align_up(buf->bytes);
    }
    return total;
}

START_TEST(all_trainable_keeps_inputs_of_every_layer) {
    built b = build(mlp_src, "all");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_w", true), 2);
    ck_assert_int_eq(count_kernel(t, "rt_sum_rows", true), 2);
    /* fc1's input x is not needed: nothing upstream of fc1 wants a gradient */
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_x", true), 1);
    ck_assert(is_residual(t, "copy x"));          /* for d fc1.weight, copied: backward has no inputs */
    ck_assert(is_residual(t, "h1"));              /* for d fc2.weight, kept in full ... */
    ck_assert_int_eq(find_buf(t, "mask h1"), -1); /* ... so relu needs no mask */
    ck_assert_int_eq(count_kernel(t, "rt_relu_bwd_out", true), 1);
    ck_assert(is_residual(t, "aux0 loss")); /* the softmax */
    ck_assert(is_residual(t, "copy label"));
    ck_assert(!is_residual(t, "fc1"));
    ck_assert(!is_residual(t, "fc2"));
    /* grads: every param, aligned */
    ck_assert_int_eq(b.m->grads_bytes,
                     ir_align_up(16 * 20 * 4) + ir_align_up(16 * 4) + ir_align_up(4 * 16 * 4) + ir_align_up(4 * 4));
    ck_assert_int_eq(t->residual_bytes, residual_bytes(t));
    ck_assert_int_eq(t->residual_bytes, ir_align_up(8 * 20 * 4) + ir_align_up(8 * 16 * 4) + ir_align_up(8 * 4 * 4) +
                                            ir_align_up(8 * 4) + IR_ARENA_STATE_BYTES);
    release(&b);
}
END_TEST

START_TEST(head_only_frees_the_backbone) {
    built b = build(mlp_src, NULL); /* default: head */
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_w", true), 1);
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_x", true), 0);
    ck_assert_int_eq(count_kernel(t, "rt_relu_bwd_out", true) + count_kernel(t, "rt_relu_bwd_mask", true), 0);
    ck_assert_int_eq(find_buf(t, "copy x"), -1);
    ck_assert(is_residual(t, "h1"));
    ck_assert_int_eq(find_buf(t, "mask h1"), -1);
    ck_assert_int_eq(b.m->grads_bytes, ir_align_up(4 * 16 * 4) + ir_align_up(4 * 4));
    ck_assert_int_eq(b.m->grad_offset[ir_find_value(b.m->graph, "fc1.weight")], -1);
    ck_assert_int_eq(b.m->grad_offset[ir_find_value(b.m->graph, "fc2.weight")], 0);
    release(&b);
}
END_TEST

START_TEST(input_only_keeps_a_one_bit_mask) {
    built b = build(mlp_src, "input");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_w", true), 0);
    ck_assert_int_eq(count_kernel(t, "rt_sum_rows", true), 0);
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_x", true), 2);
    ck_assert_int_eq(count_kernel(t, "rt_sign_mask", false), 1);
    ck_assert_int_eq(count_kernel(t, "rt_relu_bwd_mask", true), 1);
    ck_assert(is_residual(t, "mask h1"));
    ck_assert(!is_residual(t, "h1"));
    ck_assert_int_eq(find_buf(t, "copy x"), -1);
    int mask = find_buf(t, "mask h1");
    ck_assert_int_eq(t->bufs[mask].bytes, 8 * 16 / 8);
    /* only d x in the grads block */
    ck_assert_int_eq(b.m->grads_bytes, ir_align_up(8 * 20 * 4));
    ck_assert_int_eq(b.m->grad_offset[ir_find_value(b.m->graph, "x")], 0);
    ck_assert_int_eq(t->residual_bytes,
                     ir_align_up(16) + ir_align_up(8 * 4 * 4) + ir_align_up(8 * 4) + IR_ARENA_STATE_BYTES);
    release(&b);
}
END_TEST

START_TEST(first_layer_only) {
    built b = build(mlp_src, "first");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_w", true), 1);
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_x", true), 1); /* through fc2, with its frozen weight */
    ck_assert(is_residual(t, "copy x"));
    ck_assert(is_residual(t, "mask h1"));
    ck_assert(!is_residual(t, "h1"));
    release(&b);
}
END_TEST

START_TEST(frozen_everything_has_an_empty_backward) {
    built b = build(mlp_src, "none");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(t->nsteps, t->nfwd);
    ck_assert_int_eq(t->residual_bytes, IR_ARENA_STATE_BYTES); /* only the state word */
    ck_assert_int_eq(b.m->grads_bytes, 0);
    release(&b);
}
END_TEST

START_TEST(infer_keeps_nothing_and_reuses_memory) {
    built b = build(mlp_src, "all");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *inf = &b.m->infer;
    ck_assert_int_eq(inf->nsteps, inf->nfwd);
    ck_assert_int_eq(inf->residual_bytes, 0);
    ck_assert_int_eq(count_kernel(inf, "rt_sign_mask", false), 0);
    ck_assert(inf->arena_bytes <= b.m->train.arena_bytes);
    ck_assert(inf->arena_bytes >= inf->lower_bound);
    release(&b);
}
END_TEST

START_TEST(gradient_passes_through_views_and_adds) {
    static const char src[] = "model v\n"
                              "input x : f32[4, 2, 3] grad\n"
                              "input t : f32[4, 6]\n"
                              "f = flatten(x)\n"
                              "a = add(f, f)\n"
                              "loss = mse_loss(a, t)\n"
                              "output loss\n";
    built b = build(src, "none");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    /* flatten is a view: no kernel, its buffer aliases x */
    int f = find_buf(t, "f");
    ck_assert_int_ge(f, 0);
    ck_assert_int_ge(t->bufs[f].alias_of, 0);
    /* add(f, f): both contributions to d f, so no in-place pass-through */
    ck_assert_int_eq(count_kernel(t, "rt_acc_f32", true) + count_kernel(t, "rt_sum_rows", true), 3);
    ck_assert(is_residual(t, "aux0 loss"));
    release(&b);
}
END_TEST

START_TEST(pattern_matching_nothing_is_an_error) {
    static const char src[] = "model m\n"
                              "input x : f32[2, 3]\n"
                              "input y : f32[2, 4]\n"
                              "h = linear(x, 4)\n"
                              "loss = mse_loss(h, y)\n"
                              "output loss\n"
                              "config c { train hh.* }\n";
    built b = build(src, "c");
    ck_assert_ptr_null(b.m);
    ck_assert_ptr_nonnull(strstr(b.msgs, "test.frost:7:18: error: pattern 'hh.*' in config 'c' matches no parameter"));
    release(&b);
}
END_TEST

START_TEST(glob_patterns) {
    ck_assert(glob_match("*", "fc1.weight"));
    ck_assert(glob_match("fc2.*", "fc2.bias"));
    ck_assert(!glob_match("fc2.*", "fc1.bias"));
    ck_assert(glob_match("*.bias", "layer1.0.bn1.bias"));
    ck_assert(glob_match("fc?.weight", "fc1.weight"));
    ck_assert(glob_match("layer[12].*", "layer2.0.conv1.weight"));
    ck_assert(!glob_match("layer[!12].*", "layer2.0.conv1.weight"));
    ck_assert(glob_match("layer[1-3].*", "layer3.x"));
    ck_assert(!glob_match("fc1", "fc1.weight"));
    ck_assert(glob_match("**x", "x"));
}
END_TEST

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "cannot open %s", path);
    char *text = NULL;
    size_t cap = 0;
    ssize_t got = getdelim(&text, &cap, '\0', f);
    fclose(f);
    ck_assert_msg(got > 0, "%s is empty", path);
    return text;
}

/* docs/autodiff.md's table of what each VJP reads from forward time is made
 * from the op table and its needs hooks (this test prints it): a model with
 * every op, each need named by the op's own names. The table in the docs
 * must be what this prints. */
static const char all_ops_src[] = "model all_ops\n"
                                  "input x : f32[2, 3, 8, 8]\n"
                                  "input label : i32[2]\n"
                                  "input t : f32[2, 10]\n"
                                  "input w : f32[10, 10]\n"
                                  "input col : f32[2, 1] grad\n"
                                  "input row : f32[1, 10]\n"
                                  "input ids : i32[2, 3]\n"
                                  "input q : f32[2, 3, 5, 4]\n"
                                  "at = attention(x, x, x)\n" /* x as [B, H, T, hd]; one gradient from three uses */
                                  "conv = conv2d(at, 4, 3, padding=1)\n"
                                  "bn = batchnorm2d(conv)\n"
                                  "r = relu(bn)\n"
                                  "mp = maxpool2d(r, 2)\n"
                                  "ap = avgpool2d(mp, 2)\n"
                                  "g = global_avgpool(ap)\n"
                                  "f = flatten(g)\n"
                                  "rs = reshape(f, [2, 4])\n"
                                  "d = dropout(rs, 0.1)\n"
                                  "fc0 = linear(d, 10)\n"
                                  "fc = lora_linear(fc0, 10, r=2, dropout=0.1)\n"
                                  "sg = sigmoid(fc)\n"
                                  "si = silu(sg)\n"
                                  "ge = gelu(si)\n"
                                  "gt = gelu(ge, tanh=true)\n"
                                  "rn = rms_norm(gt)\n"
                                  "ln = layer_norm(rn)\n"
                                  "sl = slice(ln, -1, 0, 10)\n"
                                  "ce2 = concat([sl, t], dim=0)\n"
                                  "tr = transpose(slice(ce2, 0, 0, 2), 0, -1)\n"
                                  "ex = expand(row, [2, 3, 10])\n"
                                  "pm = permute(tr, [1, 0])\n"
                                  "sm = softmax(pm)\n"
                                  "mu = mul(sm, t)\n"
                                  "ob = add(col, row)\n" /* broadcast on both sides */
                                  "mb = mul(ob, col)\n"
                                  "ms = scale(mb, 0.5)\n"
                                  "sum = add(mu, ms)\n"
                                  "mm = matmul(sum, w)\n"
                                  "r2 = relu(mm)\n" /* kept in full for d fc2.weight: no mask */
                                  "fc2 = linear(r2, 10)\n"
                                  "ce = cross_entropy(fc2, label)\n"
                                  "ro = rope(q, theta=100.0)\n"
                                  "rf = reshape(ro, [2, 60])\n"
                                  "rl = linear(rf, 10)\n"
                                  "mse = mse_loss(add(sum, reshape(slice(ex, 1, 0, 1), [2, 10])), rl)\n"
                                  "emb = embedding(ids, 7, 10)\n"
                                  "io = linear(emb, 10, in_out=true)\n"
                                  "lce = linear_cross_entropy(io, emb.weight, ids)\n" /* the tied head */
                                  "qt = transpose(q, -1, -2)\n"
                                  "bm = matmul(q, qt)\n" /* batched: rt_batched_matmul_* */
                                  "bf = reshape(bm, [2, 75])\n"
                                  "bl = linear(bf, 10)\n"
                                  "bmse = mse_loss(bl, t)\n"
                                  "losses = add(ce, mse)\n"
                                  "lossb = add(losses, bmse)\n"
                                  "loss = add(lossb, lce)\n"
                                  "output loss\n"
                                  "config x_only { train none; grad x; grad w; grad q }\n"
                                  "config w_only { train fc2.* }\n";

/* Input i of n by the op's own name: its argument's for tensors, the
 * suffix after "<node>." for the params and buffers it owns. */
static const char *input_name(const ir_graph *g, const ir_node *n, int i) {
    const op_def *op = &op_table[n->op];
    int tensors = 0;
    if (op->args[0].kind == ARG_TENSORS) /* one row for the whole list (needs_table) */
        return pool_printf(g->pool, "each of %s", op->args[0].name);
    for (int a = 0; a < op->nargs; a++)
        if (op->args[a].kind == ARG_TENSOR && tensors++ == i)
            return op->args[a].name;
    const char *full = g->vals[n->in[i]].name;
    size_t len = strlen(n->name);
    return strncmp(full, n->name, len) == 0 && full[len] == '.' ? full + len + 1 : full;
}

static void print_needs(FILE *out, const ir_graph *g, const ir_node *n, uint32_t needs) {
    const op_def *op = &op_table[n->op];
    if (!needs) {
        fprintf(out, "nothing");
        return;
    }
    const char *sep = "";
    for (int i = 0; i < n->nin; i++)
        if (needs & NEED_IN(i)) {
            ir_val_kind kind = g->vals[n->in[i]].kind;
            fprintf(out, "%s%s%s", sep, input_name(g, n, i),
                    kind == VAL_PARAM    ? " (a param: kept anyway)"
                    : kind == VAL_BUFFER ? " (a buffer: kept anyway)"
                                         : "");
            sep = ", ";
        }
    if (needs & NEED_OUT)
        fprintf(out, "%sthe output", sep), sep = ", ";
    if (needs & NEED_OUT_SIGN)
        fprintf(out, "%sthe sign of the output (a 1-bit mask, or the output if kept anyway)", sep), sep = ", ";
    for (int k = 0; k < op->naux; k++)
        if (needs & NEED_AUX(k)) {
            ck_assert_msg(op->aux_doc[k], "%s: aux %d has no aux_doc", op->name, k);
            fprintf(out, "%s%s (aux %d)", sep, op->aux_doc[k], k);
            sep = ", ";
        }
}

static char *needs_table(const ir_graph *g) {
    char *text;
    size_t len;
    FILE *out = open_memstream(&text, &len);
    fprintf(out, "| op | gradient | reads from forward |\n|---|---|---|\n");
    for (int o = 0; o < op_count; o++) {
        const ir_node *n = NULL;
        for (int k = 0; k < g->nnodes && !n; k++)
            if (g->nodes[k].op == o)
                n = &g->nodes[k];
        ck_assert_msg(n, "all_ops_src has no call of op %s: add one", op_table[o].name);
        /* the train program's needs, with batch norm on batch statistics and
         * in eval mode; a second row only for an op whose needs differ */
        bool differ = false;
        for (int i = 0; i < n->nin; i++)
            differ |= lower_op_needs(g, n, i, true, false) != lower_op_needs(g, n, i, true, true);
        for (int mode = 0; mode < (differ ? 2 : 1); mode++) {
            bool first = true;
            for (int i = 0; i < n->nin; i++) {
                if (!(op_table[o].diff_inputs >> i & 1) || (op_table[o].args[0].kind == ARG_TENSORS && i > 0))
                    continue; /* a list of tensors (concat): one row, its first's */
                const char *mode_name = !differ ? "" : mode ? " (`batchnorm eval`)" : " (batch statistics)";
                fprintf(out, "| %s%s%s%s | d %s | ", first ? "`" : "", first ? op_table[o].name : "", first ? "`" : "",
                        first ? mode_name : "", input_name(g, n, i));
                print_needs(out, g, n, lower_op_needs(g, n, i, true, mode == 1));
                fprintf(out, " |\n");
                first = false;
            }
        }
    }
    fclose(out);
    return text;
}

START_TEST(needs_table_matches_docs) {
    built b = build(all_ops_src, NULL);
    ck_assert_msg(b.m, "%s", b.msgs);
    char *table = needs_table(b.m->graph);
    char *doc = slurp(FROST_SOURCE_ROOT "/docs/autodiff.md");
    static const char begin[] = "<!-- needs table: made by tests/unit/test_lower.c from ir/ops.c -->\n";
    char *at = strstr(doc, begin), *end = at ? strstr(at, "<!-- end -->") : NULL;
    ck_assert_msg(at && end, "docs/autodiff.md has no needs table between '%.*s' and '<!-- end -->'",
                  (int)strlen(begin) - 1, begin);
    at += strlen(begin);
    *end = '\0';
    ck_assert_msg(strcmp(at, table) == 0,
                  "docs/autodiff.md's needs table differs from the op table's; it should be:\n%s", table);
    free(doc);
    free(table);
    release(&b);
}
END_TEST

/* The checklist at the top of ir/ops.c, as far as a program can tell: every
 * op has its row in docs/language.md's op table and is called by a model of
 * the gradient checks (tests/e2e/cases.txt), so its VJPs meet finite
 * differences in generated code. */
START_TEST(every_op_is_documented_and_gradient_checked) {
    char *lang = slurp(FROST_SOURCE_ROOT "/docs/language.md");
    char *cases = slurp(FROST_SOURCE_ROOT "/tests/e2e/cases.txt");
    /* the models the cases name, concatenated */
    char *models = NULL;
    size_t models_len = 0;
    FILE *all = open_memstream(&models, &models_len);
    for (char *line = strtok(cases, "\n"); line; line = strtok(NULL, "\n")) {
        char model[512];
        if (line[0] == '#' || sscanf(line, "%511s", model) != 1)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", FROST_SOURCE_ROOT, model);
        char *text = slurp(path);
        fprintf(all, "%s\n", text);
        free(text);
    }
    fclose(all);
    for (int o = 0; o < op_count; o++) {
        char row[128], call[128];
        snprintf(row, sizeof row, "\n| `%s` |", op_table[o].name);
        snprintf(call, sizeof call, "= %s(", op_table[o].name);
        ck_assert_msg(strstr(lang, row), "docs/language.md's op table has no row for %s", op_table[o].name);
        ck_assert_msg(strstr(models, call), "no model of tests/e2e/cases.txt calls %s: its VJPs are not checked",
                      op_table[o].name);
    }
    free(models);
    free(cases);
    free(lang);
}
END_TEST

/* rt.h's RT_STEP_KERNELS against the prototypes in the same header: a const
 * pointer for r, a pointer for w and s, int64_t for i and n, float for f. */
START_TEST(kernel_table_matches_prototypes) {
    char *header = slurp(FROST_SOURCE_ROOT "/runtime/rt.h");
    for (int k = 0; k < RTK_COUNT; k++) {
        const rt_kernel_desc *d = &rt_kernels[k];
        char head[128];
        snprintf(head, sizeof head, " %s(", d->name);
        char *at = strstr(header, head);
        ck_assert_msg(at, "rt.h declares no %s", d->name);
        char *params = at + strlen(head), *end = strstr(params, ");");
        ck_assert(end);
        int count = 0;
        for (char *p = params; p < end; count++) {
            char *comma = memchr(p, ',', (size_t)(end - p));
            char *stop = comma ? comma : end;
            char param[256];
            snprintf(param, sizeof param, "%.*s", (int)(stop - p), p);
            char letter = strchr(param, '*')                                  ? (strstr(param, "const") ? 'r' : 'w')
                          : strstr(param, "int64_t")                          ? 'i'
                          : strstr(param, "float") || strstr(param, "double") ? 'f'
                                                                              : '?';
            ck_assert_msg(count < (int)strlen(d->operands), "%s has more parameters than its operands \"%s\"", d->name,
                          d->operands);
            char want = d->operands[count];
            want = want == 's' ? 'w' : want == 'n' ? 'i' : want;
            ck_assert_msg(letter == want, "%s: parameter %d (%s) is not what operand letter '%c' says", d->name, count,
                          param, d->operands[count]);
            p = comma ? comma + 1 : end;
        }
        ck_assert_msg(count == (int)strlen(d->operands), "%s has %d parameters, its operands \"%s\" %zu", d->name,
                      count, d->operands, strlen(d->operands));
    }
    free(header);
}
END_TEST

/* Lowering every op, in every mode and for a spread of configurations, calls
 * every kernel of the table (each lc_step call checks its operands against
 * the kernel's letters, so this runs them all). */
START_TEST(lowering_every_op_calls_every_kernel) {
    static const char *selects[][2] = {
        {"all", NULL}, {"all", "bn_eval"}, {"x_only", NULL}, {"w_only", NULL}, {"none", NULL},
    };
    const char *src = all_ops_src;
    bool called[RTK_COUNT] = {0};
    for (size_t k = 0; k < sizeof selects / sizeof selects[0]; k++) {
        pool *p = pool_new();
        char *msgs;
        size_t len;
        FILE *out = open_memstream(&msgs, &len);
        diag_ctx d;
        diag_init(&d, "all_ops.frost", src, strlen(src), out);
        frost_select sel = {.config = selects[k][0], .bn_eval = selects[k][1] != NULL};
        ir_module *m = frost_build(p, &d, NULL, 0, &sel);
        fclose(out);
        ck_assert_msg(m, "%s", msgs);
        const ir_program *progs[] = {&m->train, &m->infer};
        for (int q = 0; q < 2; q++)
            for (int t = 0; t < progs[q]->nsteps; t++)
                for (int i = 0; i < RTK_COUNT; i++)
                    called[i] |= strcmp(progs[q]->steps[t].kernel, rt_kernels[i].name) == 0;
        free(msgs);
        pool_free(p);
    }
    for (int i = 0; i < RTK_COUNT; i++)
        ck_assert_msg(called[i], "no lowering of all_ops calls %s: extend the model or the configurations",
                      rt_kernels[i].name);
}
END_TEST

/* matmul's lowering: two matrices, and a batched a against one b (its
 * batch dims more rows of a, also past batch dims of size 1), are one GEMM of
 * the rank-2 kernels; anything else is the batched kernel over merged batch
 * dims with the masks of the operand each repeats. The forward step's int
 * operands, and both gradients by the same kind of kernel. */
START_TEST(matmul_lowers_to_one_gemm_where_it_can) {
    static const struct {
        const char *a, *b, *c, *kernel;
        int64_t ints[9];
    } cases[] = {
        {"3, 4", "4, 5", "3, 5", "matmul", {3, 4, 5}},
        {"2, 3, 3, 4", "4, 5", "2, 3, 3, 5", "matmul", {18, 4, 5}},
        {"2, 1, 3, 4", "1, 4, 5", "2, 1, 3, 5", "matmul", {6, 4, 5}},
        {"3, 4", "2, 4, 5", "2, 3, 5", "batched_matmul", {1, 1, 1, 2, 8, 0, 3, 4, 5}},
        {"2, 1, 3, 4", "5, 4, 6", "2, 5, 3, 6", "batched_matmul", {1, 1, 2, 5, 8, 4, 3, 4, 6}},
        {"6, 2, 3, 4", "6, 2, 4, 5", "6, 2, 3, 5", "batched_matmul", {1, 1, 1, 12, 0, 0, 3, 4, 5}},
        {"2, 3, 1, 3, 4", "3, 7, 4, 5", "2, 3, 7, 3, 5", "batched_matmul", {1, 2, 3, 7, 8, 2, 3, 4, 5}},
        {"2, 3, 1, 3, 4", "1, 1, 7, 4, 5", "2, 3, 7, 3, 5", "batched_matmul", {1, 1, 6, 7, 8, 4, 3, 4, 5}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char src[512], fwd[64], bwd_a[64], bwd_b[64];
        snprintf(src, sizeof src,
                 "model mm\ninput a : f32[%s] grad\ninput b : f32[%s] grad\ninput t : f32[%s]\n"
                 "c = matmul(a, b)\nl = mse_loss(c, t)\noutput l\n",
                 cases[k].a, cases[k].b, cases[k].c);
        snprintf(fwd, sizeof fwd, "rt_%s_fwd", cases[k].kernel);
        snprintf(bwd_a, sizeof bwd_a, "rt_%s_bwd_a", cases[k].kernel);
        snprintf(bwd_b, sizeof bwd_b, "rt_%s_bwd_b", cases[k].kernel);
        built b = build(src, NULL);
        ck_assert_msg(b.m, "%s", b.msgs);
        const ir_program *t = &b.m->train;
        ck_assert_msg(count_kernel(t, fwd, false) == 1, "[%s] x [%s]: no %s", cases[k].a, cases[k].b, fwd);
        ck_assert_msg(count_kernel(t, bwd_a, true) == 1 && count_kernel(t, bwd_b, true) == 1, "[%s] x [%s]: no %s, %s",
                      cases[k].a, cases[k].b, bwd_a, bwd_b);
        for (int s = 0; s < t->nfwd; s++) {
            if (strcmp(t->steps[s].kernel, fwd) != 0)
                continue;
            int n = 0;
            for (int o = 0; o < t->steps[s].nopnd; o++)
                if (t->steps[s].opnd[o].kind == OPND_INT) {
                    ck_assert_int_lt(n, 9);
                    ck_assert_msg(t->steps[s].opnd[o].i == cases[k].ints[n],
                                  "[%s] x [%s]: int operand %d is %lld, not %lld", cases[k].a, cases[k].b, n,
                                  (long long)t->steps[s].opnd[o].i, (long long)cases[k].ints[n]);
                    n++;
                }
            ck_assert_int_eq(n, strcmp(cases[k].kernel, "matmul") == 0 ? 3 : 9);
        }
        release(&b);
    }
}
END_TEST

/* Attention keeps the per-row log-sum-exp, never the [B, H, T, T]
 * probabilities, and its forward works on one tile of scores: the train
 * program's residual bytes and its arena grow linearly in T. Doubling T
 * from 64 to 128 to 256 must add no more than twice as much the second time
 * (a T^2 term, 2 heads x T^2 floats, would add four times as much). */
START_TEST(attention_memory_is_linear_in_sequence_length) {
    int64_t residual[3], arena[3];
    for (int t = 0; t < 3; t++) {
        char src[1024];
        snprintf(src, sizeof src,
                 "model attn_len\n"
                 "input x : f32[1, 2, %d, 16]\n"
                 "input target : f32[1, 2, %d, 16]\n"
                 "q = linear(x, 16)\n"
                 "k = linear(x, 16)\n"
                 "v = linear(x, 16)\n"
                 "a = attention(q, k, v)\n"
                 "o = linear(a, 16)\n"
                 "loss = mse_loss(o, target)\n"
                 "output loss\n",
                 64 << t, 64 << t);
        built b = build(src, "all");
        ck_assert_msg(b.m, "%s", b.msgs);
        ck_assert_int_eq(count_kernel(&b.m->train, "rt_attention_bwd", true), 1); /* one step for dq, dk, dv */
        residual[t] = b.m->train.residual_bytes;
        arena[t] = b.m->train.arena_bytes;
        release(&b);
    }
    int64_t slack = 4 * IR_ALIGN;
    ck_assert_int_gt(residual[1], residual[0]);
    ck_assert_int_le(residual[2] - residual[1], 2 * (residual[1] - residual[0]) + slack);
    ck_assert_int_gt(arena[1], arena[0]);
    ck_assert_int_le(arena[2] - arena[1], 2 * (arena[1] - arena[0]) + slack);
    /* and at T = 256 the whole arena is below what the [1, 2, 256, 256] probabilities alone would take */
    ck_assert_int_lt(arena[2], 2 * 256 * 256 * 4);
}
END_TEST

/* A pre-LN MLP block: the norm's output and the GELU's output are the inputs
 * of trainable linears, while the norm's own VJP keeps x and the GELU's keeps
 * fc. Only one of each pair is a residual: backward makes n and g again, from
 * x and fc, right before the weight gradients that read them (the GELU's
 * output through a reshape, a view of what is made again). */
static const char block_src[] = "model block\n"
                                "input x : f32[6, 8]\n"
                                "input target : f32[6, 8]\n"
                                "n = layer_norm(x)\n"
                                "fc = linear(n, 16)\n"
                                "g = gelu(fc, tanh=true)\n"
                                "out = linear(reshape(g, [6, 16]), 8)\n"
                                "loss = mse_loss(out, target)\n"
                                "output loss\n"
                                "config linears { train fc.* out.* }\n"
                                "config norm { train n.*; grad x }\n";

START_TEST(outputs_made_from_kept_inputs_are_made_again) {
    built b = build(block_src, "all");
    ck_assert_msg(b.m, "%s", b.msgs);
    const ir_program *t = &b.m->train;
    ck_assert(is_residual(t, "copy x")); /* layer_norm's d x and d weight */
    ck_assert(is_residual(t, "fc"));     /* gelu's d x */
    ck_assert(!is_residual(t, "n"));
    ck_assert(!is_residual(t, "g"));
    ck_assert(!is_residual(t, "remade n") && find_buf(t, "remade n") >= 0);
    ck_assert(!is_residual(t, "remade g") && find_buf(t, "remade g") >= 0);
    ck_assert_int_eq(count_kernel(t, "rt_layer_norm_fwd", true), 1);
    ck_assert_int_eq(count_kernel(t, "rt_gelu_tanh_fwd", true) + count_kernel(t, "rt_gelu_fwd", true), 1);
    int64_t rows = 6;
    ck_assert_int_eq(t->residual_bytes, ir_align_up(rows * 8 * 4) + ir_align_up(rows * 2 * 4) +
                                            ir_align_up(rows * 16 * 4) + ir_align_up(rows * 8 * 4) +
                                            IR_ARENA_STATE_BYTES); /* x, its statistics, fc, pred - target */
    release(&b);

    /* With the norm frozen and x wanting no gradient, x is not kept, so n is:
     * nothing is made again from inputs that are gone. */
    b = build(block_src, "linears");
    ck_assert_msg(b.m, "%s", b.msgs);
    t = &b.m->train;
    ck_assert(is_residual(t, "n"));
    ck_assert_int_eq(find_buf(t, "copy x"), -1);
    ck_assert_int_eq(find_buf(t, "remade n"), -1);
    ck_assert_int_ge(find_buf(t, "remade g"), 0);
    release(&b);

    /* Nothing reads n or g in full when only the norm trains: no recompute. */
    b = build(block_src, "norm");
    ck_assert_msg(b.m, "%s", b.msgs);
    t = &b.m->train;
    ck_assert_int_eq(find_buf(t, "remade n"), -1);
    ck_assert_int_eq(find_buf(t, "remade g"), -1);
    ck_assert_int_eq(count_kernel(t, "rt_layer_norm_fwd", true), 0);
    release(&b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("lower");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, all_trainable_keeps_inputs_of_every_layer);
    tcase_add_test(tc, head_only_frees_the_backbone);
    tcase_add_test(tc, input_only_keeps_a_one_bit_mask);
    tcase_add_test(tc, first_layer_only);
    tcase_add_test(tc, frozen_everything_has_an_empty_backward);
    tcase_add_test(tc, infer_keeps_nothing_and_reuses_memory);
    tcase_add_test(tc, gradient_passes_through_views_and_adds);
    tcase_add_test(tc, pattern_matching_nothing_is_an_error);
    tcase_add_test(tc, glob_patterns);
    tcase_add_test(tc, needs_table_matches_docs);
    tcase_add_test(tc, every_op_is_documented_and_gradient_checked);
    tcase_add_test(tc, kernel_table_matches_prototypes);
    tcase_add_test(tc, lowering_every_op_calls_every_kernel);
    tcase_add_test(tc, matmul_lowers_to_one_gemm_where_it_can);
    tcase_add_test(tc, attention_memory_is_linear_in_sequence_length);
    tcase_add_test(tc, outputs_made_from_kept_inputs_are_made_again);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
