/* test_elab.c: model file -> graph (frontend_load), and the graph/shape
 * helpers of ir.c it relies on. */
#include "ir.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pool *p;
    diag_ctx d;
    char *buf;
    size_t len;
    FILE *out;
} fixture;

static ir_graph *load_defs(fixture *f, const char *src, const frost_define *defs, int ndefs) {
    f->p = pool_new();
    f->buf = NULL;
    f->out = open_memstream(&f->buf, &f->len);
    diag_init(&f->d, "t.frost", src, strlen(src), f->out);
    return frontend_load(f->p, &f->d, defs, ndefs);
}

static ir_graph *load(fixture *f, const char *src) { return load_defs(f, src, NULL, 0); }

static const char *fx_text(fixture *f) {
    fflush(f->out);
    return f->buf ? f->buf : "";
}

static void fx_close(fixture *f) {
    fclose(f->out);
    free(f->buf);
    pool_free(f->p);
}

static const ir_value *val(const ir_graph *g, const char *name) {
    int v = ir_find_value(g, name);
    ck_assert_msg(v >= 0, "no value '%s'", name);
    return &g->vals[v];
}

#define ck_shape(v, ...)                                                       \
    do {                                                                       \
        int64_t want_[] = {__VA_ARGS__};                                       \
        int rank_ = (int)(sizeof want_ / sizeof want_[0]);                     \
        ck_assert_int_eq((v)->shape.rank, rank_);                              \
        for (int k_ = 0; k_ < rank_; k_++)                                     \
            ck_assert_int_eq((v)->shape.dim[k_], want_[k_]);                   \
    } while (0)

static const char mlp[] = "model mlp\n"
                          "const N = 128\n"
                          "const H = N * 4          # 512\n"
                          "input  x     : f32[N, 784]\n"
                          "input  y     : f32[N, 10] grad\n"
                          "input  label : i32[N]\n"
                          "fc1  = linear(x, H)\n"
                          "h1   = relu(fc1)\n"
                          "fc2  = linear(h1, 10, bias=false)\n"
                          "loss = cross_entropy(fc2, label)\n"
                          "output loss, fc2\n"
                          "config all   { train * }\n"
                          "config head  { train fc2.* }\n"
                          "config input { train none; grad x }\n"
                          "config ft    { train *; freeze fc1.* }\n"
                          "default head\n";

START_TEST(mlp_graph) {
    fixture f;
    ir_graph *g = load(&f, mlp);
    ck_assert_msg(g != NULL, "%s", fx_text(&f));
    ck_assert_str_eq(g->model, "mlp");
    ck_assert_int_eq(g->nvals, 10);
    const ir_value *x = val(g, "x");
    ck_assert_int_eq(x->kind, VAL_INPUT);
    ck_assert_int_eq(x->dtype, DT_F32);
    ck_shape(x, 128, 784);
    ck_assert_int_eq(x->loc.line, 4);
    ck_assert_int_eq(x->loc.col, 8);
    ck_assert(!x->wants_grad);
    ck_assert(val(g, "y")->wants_grad);
    ck_assert_int_eq(val(g, "label")->dtype, DT_I32);
    ck_shape(val(g, "label"), 128);

    const ir_value *w = val(g, "fc1.weight");
    ck_assert_int_eq(w->kind, VAL_PARAM);
    ck_shape(w, 512, 784);
    ck_assert_int_eq(w->init, INIT_KAIMING_UNIFORM);
    ck_assert_int_eq(w->fan_in, 784);
    ck_shape(val(g, "fc1.bias"), 512);
    ck_shape(val(g, "fc1"), 128, 512);
    ck_assert_int_eq(val(g, "fc1")->kind, VAL_ACT);
    ck_shape(val(g, "fc2.weight"), 10, 512);
    ck_assert_int_eq(ir_find_value(g, "fc2.bias"), -1);
    ck_shape(val(g, "loss"));
    ck_assert_int_eq(val(g, "loss")->dtype, DT_F32);

    ck_assert_int_eq(g->nnodes, 4);
    const ir_node *n0 = &g->nodes[0];
    ck_assert_str_eq(n0->name, "fc1");
    ck_assert_str_eq(op_table[n0->op].name, "linear");
    ck_assert_int_eq(n0->nin, 3); /* x, fc1.weight, fc1.bias */
    ck_assert_int_eq(n0->in[0], ir_find_value(g, "x"));
    ck_assert_int_eq(n0->in[1], ir_find_value(g, "fc1.weight"));
    ck_assert_int_eq(n0->in[2], ir_find_value(g, "fc1.bias"));
    ck_assert_int_eq(n0->nattr, 2);
    ck_assert_int_eq(n0->attr[0], 512);
    ck_assert_int_eq(n0->attr[1], 1); /* bias defaults to true */
    ck_assert_int_eq(n0->out, ir_find_value(g, "fc1"));
    ck_assert_int_eq(g->vals[n0->out].node, 0);
    ck_assert_int_eq(n0->loc.line, 7);
    ck_assert_int_eq(n0->loc.col, 8);
    const ir_node *n2 = &g->nodes[2];
    ck_assert_int_eq(n2->nin, 2);
    ck_assert_int_eq(n2->attr[1], 0);
    ck_assert_int_eq(g->nodes[1].nattr, 0);

    ck_assert_int_eq(g->noutputs, 2);
    ck_assert_int_eq(g->outputs[0], ir_find_value(g, "loss"));
    ck_assert_int_eq(g->outputs[1], ir_find_value(g, "fc2"));

    ck_assert_int_eq(g->nconfigs, 4);
    ck_assert_int_eq(g->default_config, 1);
    const ir_config *head = &g->configs[1];
    ck_assert_str_eq(head->name, "head");
    ck_assert_int_eq(head->ntrain, 1);
    ck_assert_str_eq(head->train[0], "fc2.*");
    ck_assert_int_eq(head->train_loc[0].line, 13);
    ck_assert_int_eq(head->train_loc[0].col, 22);
    const ir_config *in = &g->configs[2];
    ck_assert_int_eq(in->ntrain, 0);
    ck_assert_int_eq(in->ngrad, 1);
    ck_assert_str_eq(in->grad[0], "x");
    const ir_config *ft = &g->configs[3];
    ck_assert_int_eq(ft->ntrain, 1);
    ck_assert_int_eq(ft->nfreeze, 1);
    ck_assert_str_eq(ft->freeze[0], "fc1.*");
    ck_assert_int_eq(f.d.errors, 0);
    ck_assert_str_eq(fx_text(&f), "");
    fx_close(&f);
}
END_TEST

START_TEST(define_overrides_const) {
    fixture f;
    frost_define defs[] = {{"N", 256}};
    ir_graph *g = load_defs(&f, mlp, defs, 1);
    ck_assert_ptr_nonnull(g);
    ck_shape(val(g, "x"), 256, 784);
    ck_shape(val(g, "fc1"), 256, 1024); /* H = N * 4 follows N */
    frost_define both[] = {{"N", 2}, {"H", 3}};
    fx_close(&f);
    g = load_defs(&f, mlp, both, 2);
    ck_assert_ptr_nonnull(g);
    ck_shape(val(g, "fc1"), 2, 3);
    fx_close(&f);
}
END_TEST

START_TEST(define_of_unknown_const) {
    fixture f;
    frost_define defs[] = {{"Q", 3}};
    ck_assert_ptr_null(load_defs(&f, mlp, defs, 1));
    ck_assert_str_eq(fx_text(&f), "t.frost: error: -D Q: no such const in t.frost\n");
    fx_close(&f);
}
END_TEST

START_TEST(const_arithmetic) {
    fixture f;
    ir_graph *g = load(&f, "model m\nconst A = 7\nconst B = (A * 4 - 2) / 3 % 5 + -A\n"
                           "input x : f32[A, B + 10, 2 * (A - 5)]\n");
    ck_assert_msg(g != NULL, "%s", fx_text(&f));
    /* (28 - 2) / 3 = 8; 8 % 5 = 3; 3 - 7 = -4 */
    ck_shape(val(g, "x"), 7, 6, 4);
    fx_close(&f);
}
END_TEST

START_TEST(op_attributes) {
    fixture f;
    ir_graph *g = load(&f, "model m\n"
                           "input a : f32[4, 2, 3]\n"
                           "fa = flatten(a)\n"
                           "f0 = flatten(a, start_dim=0)\n"
                           "r1 = reshape(a, [6, 4])\n"
                           "r2 = reshape(a, 2, -1, 3)\n"
                           "r3 = reshape(a, shape=[24])\n"
                           "p  = linear(fa, 3, bias=0)\n"
                           "layer1.0.fc = linear(fa, 5)\n");
    ck_assert_msg(g != NULL, "%s", fx_text(&f));
    const ir_node *n = g->nodes;
    ck_assert_int_eq(n[0].nattr, 1);
    ck_assert_int_eq(n[0].attr[0], 1);
    ck_shape(val(g, "fa"), 4, 6);
    ck_assert_int_eq(n[1].attr[0], 0);
    ck_shape(val(g, "f0"), 24);
    ck_assert_int_eq(n[2].nattr, 2);
    ck_assert_int_eq(n[2].attr[0], 6);
    ck_assert_int_eq(n[2].attr[1], 4);
    ck_shape(val(g, "r1"), 6, 4);
    ck_assert_int_eq(n[3].nattr, 3);
    ck_assert_int_eq(n[3].attr[1], -1);
    ck_shape(val(g, "r2"), 2, 4, 3);
    ck_shape(val(g, "r3"), 24);
    ck_assert_int_eq(n[5].nin, 2);
    ck_assert_int_eq(n[5].attr[1], 0);
    ck_shape(val(g, "layer1.0.fc.weight"), 5, 6);
    ck_shape(val(g, "layer1.0.fc.bias"), 5);
    fx_close(&f);
}
END_TEST

/* Errors: the full text of the messages, so their wording is tested too. */
static void check_errors(const char *body, const char *expected) {
    fixture f;
    char src[2048];
    snprintf(src, sizeof src, "model m\nconst N = 4\ninput x : f32[N, 8]\ninput label : i32[N]\n%s", body);
    ck_assert_ptr_null(load(&f, src));
    ck_assert_str_eq(fx_text(&f), expected);
    fx_close(&f);
}

START_TEST(unknown_op_suggests) {
    check_errors("fc1 = lineer(x, 16)\nh = relu(fc1)\n", "t.frost:5:7: error: unknown op 'lineer'; did you mean 'linear'?\n"
                                                       "    5 | fc1 = lineer(x, 16)\n"
                                                       "      |       ^\n");
}
END_TEST

START_TEST(argument_matching_errors) {
    check_errors("a = relu(x, 2)\n", "t.frost:5:13: error: too many arguments to relu(x)\n"
                                     "    5 | a = relu(x, 2)\n"
                                     "      |             ^\n");
    check_errors("a = linear(x)\n", "t.frost:5:5: error: missing argument 'out_features' of linear(x, out_features, "
                                    "bias=true)\n"
                                    "    5 | a = linear(x)\n"
                                    "      |     ^\n");
    check_errors("a = linear(x, 3, bias=true, bias=false)\n",
                 "t.frost:5:29: error: argument 'bias' of linear is given twice\n"
                 "    5 | a = linear(x, 3, bias=true, bias=false)\n"
                 "      |                             ^\n"
                 "t.frost:5:18: note: first given here\n"
                 "    5 | a = linear(x, 3, bias=true, bias=false)\n"
                 "      |                  ^\n");
    check_errors("a = linear(x, out_features=3, false)\n",
                 "t.frost:5:31: error: positional argument after keyword argument\n"
                 "    5 | a = linear(x, out_features=3, false)\n"
                 "      |                               ^\n");
    check_errors("a = linear(x, 3, bias=2)\n", "t.frost:5:23: error: argument 'bias' of linear must be true or false, "
                                               "got 2\n"
                                               "    5 | a = linear(x, 3, bias=2)\n"
                                               "      |                       ^\n");
    check_errors("a = linear(x, x)\n", "t.frost:5:15: error: argument 'out_features' of linear must be an integer, "
                                       "but 'x' is a tensor\n"
                                       "    5 | a = linear(x, x)\n"
                                       "      |               ^\n");
    check_errors("a = relu(2 * N)\n", "t.frost:5:12: error: argument 'x' of relu must be a tensor name, got an "
                                      "expression\n"
                                      "    5 | a = relu(2 * N)\n"
                                      "      |            ^\n");
}
END_TEST

START_TEST(names_errors) {
    check_errors("a = relu(xx)\n", "t.frost:5:10: error: undefined name 'xx'; did you mean 'x'?\n"
                                   "    5 | a = relu(xx)\n"
                                   "      |          ^\n");
    check_errors("a = relu(b)\nb = relu(x)\n", "t.frost:5:10: error: 'b' is used before its definition\n"
                                               "    5 | a = relu(b)\n"
                                               "      |          ^\n"
                                               "t.frost:6:1: note: 'b' is defined here\n"
                                               "    6 | b = relu(x)\n"
                                               "      | ^\n");
    check_errors("label = relu(x)\n", "t.frost:5:1: error: redefinition of 'label'\n"
                                      "    5 | label = relu(x)\n"
                                      "      | ^\n"
                                      "t.frost:4:7: note: previous definition of 'label' is here\n"
                                      "    4 | input label : i32[N]\n"
                                      "      |       ^\n");
    /* a binding may not take the name of another node's param */
    check_errors("a = linear(x, 2)\na.bias = relu(x)\n", "t.frost:6:1: error: redefinition of 'a.bias'\n"
                                                          "    6 | a.bias = relu(x)\n"
                                                          "      | ^\n"
                                                          "t.frost:5:5: note: previous definition of 'a.bias' is here\n"
                                                          "    5 | a = linear(x, 2)\n"
                                                          "      |     ^\n");
}
END_TEST

START_TEST(poisoned_names_are_silent) {
    /* one message for the bad op; users of `a` and their users stay quiet */
    check_errors("a = lineer(x, 16)\nb = relu(a)\nc = add(b, a)\noutput c\n",
                 "t.frost:5:5: error: unknown op 'lineer'; did you mean 'linear'?\n"
                 "    5 | a = lineer(x, 16)\n"
                 "      |     ^\n");
}
END_TEST

START_TEST(shape_errors_from_ops) {
    check_errors("a = linear(x, 10)\nb = add(a, x)\n",
                 "t.frost:6:5: error: add: shapes [4, 10] and [4, 8] do not match (the second may only be a trailing "
                 "part of the first)\n"
                 "    6 | b = add(a, x)\n"
                 "      |     ^\n");
    check_errors("a = cross_entropy(x, x)\n", "t.frost:5:5: error: cross_entropy: labels must be i32[4], got f32[4, 8]\n"
                                              "    5 | a = cross_entropy(x, x)\n"
                                              "      |     ^\n");
}
END_TEST

START_TEST(input_errors) {
    check_errors("input z : f32[N - 4, 2]\n", "t.frost:5:17: error: dimension 1 of input 'z' is 0; dimensions must be "
                                              "positive\n"
                                              "    5 | input z : f32[N - 4, 2]\n"
                                              "      |                 ^\n");
    check_errors("input z : f32[2, -N]\n", "t.frost:5:18: error: dimension 2 of input 'z' is -4; dimensions must be "
                                           "positive\n"
                                           "    5 | input z : f32[2, -N]\n"
                                           "      |                  ^\n");
    check_errors("input z : i32[4611686018427387904]\n",
                 "t.frost:5:15: error: input 'z' is too large: i32[4611686018427387904] does not fit in 2^63 bytes\n"
                 "    5 | input z : i32[4611686018427387904]\n"
                 "      |               ^\n");
    check_errors("input z : bf16[2]\n", "t.frost:5:11: error: unknown dtype 'bf16' (expected f32 or i32)\n"
                                        "    5 | input z : bf16[2]\n"
                                        "      |           ^\n");
    check_errors("const M = N / (N - 4)\n", "t.frost:5:13: error: division by zero in constant expression\n"
                                            "    5 | const M = N / (N - 4)\n"
                                            "      |             ^\n");
}
END_TEST

START_TEST(output_and_config_errors) {
    check_errors("a = linear(x, 10)\noutput a\n", "t.frost:6:8: error: the first output is the loss and must be a "
                                                  "scalar f32, but 'a' is f32[4, 10]\n"
                                                  "    6 | output a\n"
                                                  "      |        ^\n");
    check_errors("output x\n", "t.frost:5:8: error: output 'x' is an input; outputs must be computed by a binding\n"
                                "    5 | output x\n"
                                "      |        ^\n");
    check_errors("config a { train * }\ndefault b\n", "t.frost:6:9: error: no config named 'b'\n"
                                                      "    6 | default b\n"
                                                      "      |         ^\n");
    check_errors("config a { train none x.* }\n",
                 "t.frost:5:18: error: 'train none' in config 'a' contradicts its other train patterns\n"
                 "    5 | config a { train none x.* }\n"
                 "      |                  ^\n");
    check_errors("config a { train * }\nconfig a { train none }\n", "t.frost:6:8: error: redefinition of config 'a'\n"
                                                                    "    6 | config a { train none }\n"
                                                                    "      |        ^\n"
                                                                    "t.frost:5:8: note: previous definition of 'a' "
                                                                    "is here\n"
                                                                    "    5 | config a { train * }\n"
                                                                    "      |        ^\n");
}
END_TEST

START_TEST(file_level_errors) {
    fixture f;
    ck_assert_ptr_null(load(&f, ""));
    ck_assert_str_eq(fx_text(&f), "t.frost:1:1: error: empty model: expected 'model NAME'\n");
    fx_close(&f);
    ck_assert_ptr_null(load(&f, "# nothing\n\n"));
    ck_assert_str_eq(fx_text(&f), "t.frost:1:1: error: empty model: expected 'model NAME'\n");
    fx_close(&f);
    ck_assert_ptr_null(load(&f, "const N = 2\nmodel m\n"));
    ck_assert_str_eq(fx_text(&f), "t.frost:1:1: error: expected 'model NAME' as the first statement\n"
                                  "    1 | const N = 2\n"
                                  "      | ^\n");
    fx_close(&f);
}
END_TEST

#ifndef FROST_SOURCE_ROOT
#define FROST_SOURCE_ROOT "."
#endif

/* The models shipped in the repository all load. */
START_TEST(repository_models) {
    static const char *files[] = {"examples/mlp.frost", "tests/e2e/models/mlp_small.frost",
                                  "tests/e2e/models/ops.frost"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", FROST_SOURCE_ROOT, files[k]);
        FILE *in = fopen(path, "rb");
        ck_assert_msg(in != NULL, "cannot open %s", path);
        static char src[1 << 16];
        size_t n = fread(src, 1, sizeof src - 1, in);
        fclose(in);
        src[n] = '\0';
        fixture f;
        ir_graph *g = load(&f, src);
        ck_assert_msg(g != NULL, "%s: %s", files[k], fx_text(&f));
        ck_assert_int_ge(g->noutputs, 1);
        ck_assert_int_ge(g->nconfigs, 3);
        ck_assert_int_ge(g->default_config, 0);
        fx_close(&f);
    }
}
END_TEST

/* ---------------------------------------------------------------- ir.c */

START_TEST(shapes) {
    pool *p = pool_new();
    ir_shape s = {2, {128, 784}};
    ck_assert_int_eq(shape_numel(&s), 100352);
    ck_assert_int_eq(shape_bytes(&s, DT_F32), 401408);
    ck_assert_int_eq(shape_bytes(&s, DT_I32), 401408);
    ck_assert_int_eq(shape_bytes(&s, DT_U8), 100352);
    ir_shape odd = {1, {17}};
    ck_assert_int_eq(shape_bytes(&odd, DT_BIT), 3);
    ir_shape scalar = {0, {0}};
    ck_assert_int_eq(shape_numel(&scalar), 1);
    ck_assert_int_eq(shape_bytes(&scalar, DT_F32), 4);
    ir_shape huge = {2, {INT64_C(1) << 32, INT64_C(1) << 30}};
    ck_assert_int_eq(shape_numel(&huge), INT64_C(1) << 62);
    ck_assert_int_eq(shape_bytes(&huge, DT_F32), -1);
    ck_assert_int_eq(shape_bytes(&huge, DT_BIT), INT64_C(1) << 59);
    ir_shape over = {3, {INT64_C(1) << 32, INT64_C(1) << 32, 2}};
    ck_assert_int_eq(shape_numel(&over), -1);
    ck_assert_int_eq(shape_bytes(&over, DT_U8), -1);
    ck_assert_str_eq(shape_str(p, &s), "[128, 784]");
    ck_assert_str_eq(shape_str(p, &scalar), "[]");
    ck_assert(shape_eq(&s, &(ir_shape){2, {128, 784}}));
    ck_assert(!shape_eq(&s, &(ir_shape){2, {128, 785}}));
    ck_assert(!shape_eq(&s, &odd));
    ck_assert_str_eq(dtype_name(DT_F32), "f32");
    ck_assert_str_eq(dtype_name(DT_I32), "i32");
    ck_assert_str_eq(dtype_name(DT_U8), "u8");
    ck_assert_str_eq(dtype_name(DT_BIT), "bit");
    pool_free(p);
}
END_TEST

START_TEST(buffers_and_dumps) {
    pool *p = pool_new();
    ir_program prog = {0};
    int b = ir_add_buf(p, &prog, "fc1 mask", BUF_SAVED, SPACE_ARENA, DT_BIT, (ir_shape){2, {4, 5}}, 7);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(prog.nbufs, 1);
    ck_assert_int_eq(prog.bufs[0].bytes, 3);
    ck_assert_int_eq(prog.bufs[0].value, 7);
    ck_assert_int_eq(prog.bufs[0].alias_of, -1);
    ck_assert_int_eq(prog.bufs[0].offset, -1);
    ck_assert_int_eq(prog.bufs[0].first, -1);
    ck_assert_int_eq(prog.bufs[0].last, -1);
    ir_step *s = VEC_PUSH(p, prog.steps, prog.nsteps, prog.capsteps);
    *s = (ir_step){.kernel = "rt_relu_fwd", .nopnd = 2, .node = 0};
    s->opnd[0] = (ir_opnd){.kind = OPND_BUF, .buf = 0, .writes = true};
    s->opnd[1] = (ir_opnd){.kind = OPND_INT, .i = 20};
    prog.nfwd = 1;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ir_dump_program(&prog, out);
    fclose(out);
    ck_assert_str_eq(text, "b0 fc1 mask [arena] bit[4, 5] 3 bytes\n"
                           "fwd   0: rt_relu_fwd(w b0 fc1 mask, 20)\n");
    free(text);
    pool_free(p);

    fixture f;
    ir_graph *g = load(&f, mlp);
    ck_assert_ptr_nonnull(g);
    out = open_memstream(&text, &len);
    ir_dump_graph(g, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "model mlp\n"));
    ck_assert_ptr_nonnull(strstr(text, "  %2 input  label : i32[128]\n"));
    ck_assert_ptr_nonnull(strstr(text, "  node 0: %5 = linear(%0, %3, %4) attr[512, 1]  # fc1\n"));
    ck_assert_ptr_nonnull(strstr(text, "  outputs: loss fc2\n"));
    ck_assert_ptr_nonnull(strstr(text, "  config head (default) { train fc2.*; }\n"));
    ck_assert_ptr_nonnull(strstr(text, "  config input { train none; grad x; }\n"));
    free(text);
    fx_close(&f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("elab");
    TCase *tc = tcase_create("elab");
    tcase_add_test(tc, mlp_graph);
    tcase_add_test(tc, define_overrides_const);
    tcase_add_test(tc, define_of_unknown_const);
    tcase_add_test(tc, const_arithmetic);
    tcase_add_test(tc, op_attributes);
    tcase_add_test(tc, unknown_op_suggests);
    tcase_add_test(tc, argument_matching_errors);
    tcase_add_test(tc, names_errors);
    tcase_add_test(tc, poisoned_names_are_silent);
    tcase_add_test(tc, shape_errors_from_ops);
    tcase_add_test(tc, input_errors);
    tcase_add_test(tc, output_and_config_errors);
    tcase_add_test(tc, file_level_errors);
    tcase_add_test(tc, repository_models);
    suite_add_tcase(s, tc);
    TCase *ti = tcase_create("ir");
    tcase_add_test(ti, shapes);
    tcase_add_test(ti, buffers_and_dumps);
    suite_add_tcase(s, ti);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
