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

/* Every node's activation inputs come from earlier nodes: the node list is
 * a topological order. */
static void ck_topological(const ir_graph *g) {
    for (int k = 0; k < g->nnodes; k++)
        for (int i = 0; i < g->nodes[k].nin; i++) {
            const ir_value *in = &g->vals[g->nodes[k].in[i]];
            ck_assert(in->kind != VAL_ACT || in->node < k);
        }
}

#define ck_shape(v, ...)                                     \
    do {                                                     \
        int64_t want_[] = {__VA_ARGS__};                     \
        int rank_ = (int)(sizeof want_ / sizeof want_[0]);   \
        ck_assert_int_eq((v)->shape.rank, rank_);            \
        for (int k_ = 0; k_ < rank_; k_++)                   \
            ck_assert_int_eq((v)->shape.dim[k_], want_[k_]); \
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
    ck_assert_int_eq(n0->nattr, 3);
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

/* Calls nest: an inner call's value is named after the binding it is an
 * argument of, "<binding>.<callee>", "_2" when taken; inside a def under
 * the call's name; its params follow. */
START_TEST(nested_calls) {
    fixture f;
    ir_graph *g = load(&f, "model m\n"
                           "input x : f32[4, 8]\n"
                           "input label : i32[4]\n"
                           "def mlp(x, d) {\n"
                           "    return linear(gelu(linear(x, d), tanh=true), 8)\n"
                           "}\n"
                           "h = relu(linear(x, 16))\n"
                           "b = add(mlp(h, 32), scale(linear(h, 8), 0.5))\n"
                           "c = add(relu(b), relu(b))\n"
                           "loss = cross_entropy(linear(c, 3, bias=false), label)\n"
                           "output loss\n");
    ck_assert_ptr_nonnull(g);
    ck_shape(val(g, "h.linear.weight"), 16, 8);
    ck_shape(val(g, "h.linear"), 4, 16);
    ck_shape(val(g, "b.mlp.gelu.linear.weight"), 32, 16);
    ck_shape(val(g, "b.mlp.gelu"), 4, 32);
    ck_shape(val(g, "b.mlp.weight"), 8, 32);
    ck_shape(val(g, "b.scale.linear.bias"), 8);
    ck_shape(val(g, "c.relu"), 4, 8);
    ck_shape(val(g, "c.relu_2"), 4, 8);
    ck_shape(val(g, "loss.linear.weight"), 3, 8);
    ck_assert_int_eq(ir_find_value(g, "loss.linear.bias"), -1);
    /* arguments in order, inner calls first: a topological order */
    const ir_node *add = &g->nodes[val(g, "b")->node];
    ck_assert_int_eq(add->in[0], ir_find_value(g, "b.mlp"));
    ck_assert_int_eq(add->in[1], ir_find_value(g, "b.scale"));
    ck_assert_str_eq(g->nodes[val(g, "b.mlp.gelu")->node].call, "b.mlp");
    ck_topological(g);
    ck_assert_str_eq(fx_text(&f), "");
    fx_close(&f);
}
END_TEST

/* concat's list: its tensors are the node's inputs in order, nested calls
 * among them named after the binding; a param statement's value is a
 * VAL_PARAM of no node with the init it names, usable by name. */
START_TEST(concat_list_and_param) {
    fixture f;
    ir_graph *g = load(&f, "model m\n"
                           "input x : f32[2, 3, 4]\n"
                           "param cls : f32[1, 1, 4] init=normal(0.25)\n"
                           "param emb.pos : f32[1, 4, 4]\n"
                           "param one : f32[4] init=ones\n"
                           "t = concat([expand(cls, [2, -1, -1]), x], dim=-2)\n"
                           "u = add(t, emb.pos)\n");
    ck_assert_ptr_nonnull(g);
    const ir_node *cat = &g->nodes[val(g, "t")->node];
    ck_assert_int_eq(cat->nin, 2);
    ck_assert_int_eq(cat->in[0], ir_find_value(g, "t.expand"));
    ck_assert_int_eq(cat->in[1], ir_find_value(g, "x"));
    ck_assert_int_eq(cat->attr[0], 1); /* dim -2, from the front */
    ck_shape(val(g, "t"), 2, 4, 4);
    const ir_value *cls = val(g, "cls"), *pos = val(g, "emb.pos"), *one = val(g, "one");
    ck_assert_int_eq(cls->kind, VAL_PARAM);
    ck_assert_int_eq(cls->node, -1);
    ck_assert_int_eq(cls->init, INIT_NORMAL);
    ck_assert_double_eq(cls->init_std, 0.25);
    ck_assert_int_eq(pos->init, INIT_ZEROS);
    ck_assert_int_eq(one->init, INIT_ONES);
    ck_assert_int_eq(g->nodes[val(g, "u")->node].in[1], ir_find_value(g, "emb.pos"));
    ck_topological(g);
    ck_assert_str_eq(fx_text(&f), "");
    fx_close(&f);
}
END_TEST

/* A def that calls itself through a nested call is recursive too. */
START_TEST(nested_call_recursion) {
    fixture f;
    ir_graph *g = load(&f, "model m\n"
                           "input x : f32[4, 8]\n"
                           "def f(x) {\n"
                           "    return relu(f(x))\n"
                           "}\n"
                           "h = f(x)\n"
                           "output h\n");
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(fx_text(&f), "t.frost:4:17: error: recursive call of 'f' (f -> f)"), "got: %s", fx_text(&f));
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

/* A dimension that a -D override made bad says so, also through the consts
 * computed from it (H = N * 4); dimensions count from 0, as in dim(x, i). */
START_TEST(define_named_in_dimension_error) {
    fixture f;
    frost_define zero[] = {{"N", 0}};
    ck_assert_ptr_null(load_defs(&f, "model m\nconst N = 2\nconst H = N * 4\ninput x : f32[3, H]\n", zero, 1));
    ck_assert_str_eq(fx_text(&f), "t.frost:4:18: error: dimension 1 of input 'x' is 0 (from -D N=0); dimensions "
                                  "must be positive\n"
                                  "    4 | input x : f32[3, H]\n"
                                  "      |                  ^\n");
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
    check_errors("fc1 = lineer(x, 16)\nh = relu(fc1)\n",
                 "t.frost:5:7: error: unknown op 'lineer'; did you mean 'linear'?\n"
                 "    5 | fc1 = lineer(x, 16)\n"
                 "      |       ^\n");
}
END_TEST

START_TEST(argument_matching_errors) {
    check_errors("a = relu(x, 2)\n", "t.frost:5:13: error: too many arguments to relu(x)\n"
                                     "    5 | a = relu(x, 2)\n"
                                     "      |             ^\n");
    check_errors("a = linear(x)\n", "t.frost:5:5: error: missing argument 'out_features' of linear(x, out_features, "
                                    "bias=true, in_out=false)\n"
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
                 "t.frost:6:5: error: add: shapes [4, 10] and [4, 8] cannot be broadcast together (dims aligned "
                 "from the right must be equal or 1)\n"
                 "    6 | b = add(a, x)\n"
                 "      |     ^\n");
    check_errors("a = cross_entropy(x, x)\n",
                 "t.frost:5:5: error: cross_entropy: labels must be i32[4], got f32[4, 8]\n"
                 "    5 | a = cross_entropy(x, x)\n"
                 "      |     ^\n");
}
END_TEST

START_TEST(input_errors) {
    check_errors("input z : f32[N - 4, 2]\n", "t.frost:5:17: error: dimension 0 of input 'z' is 0; dimensions must be "
                                              "positive\n"
                                              "    5 | input z : f32[N - 4, 2]\n"
                                              "      |                 ^\n");
    check_errors("input z : f32[2, -N]\n", "t.frost:5:18: error: dimension 1 of input 'z' is -4; dimensions must be "
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

/* ---------------------------------------------------------------- defs */

static const char blocks[] = "model blocks\n"
                             "const N = 4\n"
                             "const W = 8\n"
                             "input x     : f32[N, W]\n"
                             "input label : i32[N]\n"
                             "def shortcut(t, planes) {\n"
                             "    proj = linear(t, planes, bias=false)\n"
                             "    return relu(proj)\n"
                             "}\n"
                             "# a residual block; linear stands in for conv + batch norm\n"
                             "def block(t, planes, stride=1, has_bias=true) {\n"
                             "    conv1 = linear(t, planes, bias=has_bias)\n"
                             "    relu1 = relu(conv1)\n"
                             "    if stride != 1 or dim(t, 1) != planes {\n"
                             "        downsample.0 = linear(t, planes, bias=false)\n"
                             "        downsample.1 = linear(downsample.0, planes)\n"
                             "        identity = downsample.1\n"
                             "    } else if dim(t, -1) > 100 {\n"
                             "        identity = shortcut(t, planes)\n"
                             "    } else {\n"
                             "        identity = t\n"
                             "    }\n"
                             "    sum = add(relu1, identity)\n"
                             "    return relu(sum)\n"
                             "}\n"
                             "def pair(t, planes) {\n"
                             "    first = block(t, planes, 2)\n"
                             "    second = block(first, planes, has_bias=false)\n"
                             "    w = second.conv1.weight       # a param made inside, by its path\n"
                             "    nested = shortcut(second, planes)\n"
                             "    return nested\n"
                             "}\n"
                             "layer1.0 = block(x, W)           # identity shortcut\n"
                             "layer1.1 = block(layer1.0, W, stride=1)\n"
                             "layer2.0 = block(layer1.1, 16)   # downsample: width changes\n"
                             "layer3 = pair(layer2.0, 16)\n"
                             "h = layer3                       # another name, no new tensor\n"
                             "fc = linear(h, 10)\n"
                             "loss = cross_entropy(fc, label)\n"
                             "output loss\n";

START_TEST(def_names) {
    fixture f;
    ir_graph *g = load(&f, blocks);
    ck_assert_msg(g != NULL, "%s", fx_text(&f));
    /* assignments in a def are named under the call's name */
    ck_shape(val(g, "layer1.0.conv1.weight"), 8, 8);
    ck_shape(val(g, "layer1.0.conv1.bias"), 8);
    ck_shape(val(g, "layer1.0.relu1"), 4, 8);
    ck_shape(val(g, "layer1.0.sum"), 4, 8);
    /* `return op(...)`: its value takes the call's name */
    const ir_value *out = val(g, "layer1.0");
    ck_assert_int_eq(out->kind, VAL_ACT);
    ck_assert_str_eq(op_table[g->nodes[out->node].op].name, "relu");
    ck_assert_int_eq(out->loc.line, 24); /* the return */
    /* the identity branch makes no downsample */
    ck_assert_int_eq(ir_find_value(g, "layer1.0.downsample.0.weight"), -1);
    ck_assert_int_eq(ir_find_value(g, "layer1.1.downsample.0.weight"), -1);
    ck_assert_int_eq(ir_find_value(g, "layer1.0.identity"), -1); /* an alias is no tensor */
    /* the other branch, with dotted numeric names as torchvision has them */
    ck_shape(val(g, "layer2.0.downsample.0.weight"), 16, 8);
    ck_assert_int_eq(ir_find_value(g, "layer2.0.downsample.0.bias"), -1);
    ck_shape(val(g, "layer2.0.downsample.1.weight"), 16, 16);
    ck_shape(val(g, "layer2.0.downsample.1.bias"), 16);
    ck_shape(val(g, "layer2.0"), 4, 16);
    /* nested calls: names compose; defaults and keyword arguments */
    ck_shape(val(g, "layer3.first.downsample.0.weight"), 16, 16); /* stride 2 */
    ck_shape(val(g, "layer3.first.conv1.bias"), 16);
    ck_assert_int_eq(ir_find_value(g, "layer3.second.conv1.bias"), -1); /* has_bias=false */
    ck_assert_int_eq(ir_find_value(g, "layer3.second.downsample.0.weight"), -1);
    ck_shape(val(g, "layer3.nested.proj.weight"), 16, 16);
    ck_shape(val(g, "layer3.nested"), 4, 16);
    /* layer3 returned `nested`: the name layer3 refers to it, no value is called layer3 */
    ck_assert_int_eq(ir_find_value(g, "layer3"), -1);
    ck_assert_int_eq(ir_find_value(g, "h"), -1);
    const ir_node *fc = &g->nodes[val(g, "fc")->node];
    ck_assert_int_eq(fc->in[0], ir_find_value(g, "layer3.nested"));
    /* node names are the full names; node order is a topological order */
    int v = ir_find_value(g, "layer2.0.downsample.1");
    ck_assert_str_eq(g->nodes[g->vals[v].node].name, "layer2.0.downsample.1");
    ck_topological(g);
    /* every value name is unique */
    for (int a = 0; a < g->nvals; a++)
        for (int b = a + 1; b < g->nvals; b++)
            ck_assert_str_ne(g->vals[a].name, g->vals[b].name);
    ck_assert_str_eq(fx_text(&f), "");
    fx_close(&f);
}
END_TEST

START_TEST(def_values_and_conditions) {
    fixture f;
    ir_graph *g = load(&f, "model m\n"
                           "const N = 4\n"
                           "input x : f32[N, 2, 3]\n"
                           "def shaped(t, dims=[3, -1], p=0.25, eps=1e-5, on=true, n=N * 2) {\n"
                           "    r = reshape(t, dims)\n"
                           "    s = reshape(t, shape=dims)\n"
                           "    if p > 0.2 and eps < 0.001 and on == true and not (n != 8) {\n"
                           "        a = flatten(r, start_dim=0)\n"
                           "    } else {\n"
                           "        a = flatten(s)\n"
                           "    }\n"
                           "    if dim(t, 0) * dim(t, -1) >= 12 or undefined_name {\n"
                           "        b = relu(a)\n"
                           "    }\n"
                           "    return b\n"
                           "}\n"
                           "one = shaped(x)\n"
                           "two = shaped(x, [6, 4], p=0.0, on=false)\n"
                           "three = shaped(x, eps=0.5 * 2, n=-3)\n"
                           "k = N\n"
                           "if k == 4 { four = linear(one, 2, bias=k != 4) } else { four = relu(one) }\n");
    ck_assert_msg(g != NULL, "%s", fx_text(&f));
    ck_shape(val(g, "one.r"), 3, 8);
    ck_shape(val(g, "one.a"), 24); /* the condition held: flatten from 0 */
    ck_shape(val(g, "one.b"), 24); /* `return b`: the call's name refers to one.b */
    ck_assert_int_eq(ir_find_value(g, "one"), -1);
    ck_shape(val(g, "two.r"), 6, 4);
    ck_shape(val(g, "two.s"), 6, 4);
    ck_shape(val(g, "two.a"), 6, 4); /* p=0.0: the else branch, flatten from 1 */
    ck_shape(val(g, "three.a"), 3, 8);
    ck_shape(val(g, "four.weight"), 2, 24);
    ck_assert_int_eq(ir_find_value(g, "four.bias"), -1);
    fx_close(&f);
}
END_TEST

static void check_errors(const char *body, const char *expected);

START_TEST(def_call_errors) {
    static const char def[] = "def block(t, planes, stride=1) {\n"
                              "    fc = linear(t, planes)\n"
                              "    return relu(fc)\n"
                              "}\n";
    char src[1024];
    snprintf(src, sizeof src, "%sb = blok(x, 3)\n", def);
    check_errors(src, "t.frost:9:5: error: unknown op or def 'blok'; did you mean 'block'?\n"
                      "    9 | b = blok(x, 3)\n"
                      "      |     ^\n");
    snprintf(src, sizeof src, "%sb = block(x)\nc = block(x, 1, 2, 3)\nd = block(x, 2, strid=1)\n", def);
    check_errors(src, "t.frost:9:5: error: missing argument 'planes' of block(t, planes, stride=1)\n"
                      "    9 | b = block(x)\n"
                      "      |     ^\n"
                      "t.frost:10:20: error: too many arguments to block(t, planes, stride=1)\n"
                      "   10 | c = block(x, 1, 2, 3)\n"
                      "      |                    ^\n"
                      "t.frost:11:17: error: unknown keyword argument 'strid' of block(t, planes, stride=1); did you "
                      "mean 'stride'?\n"
                      "   11 | d = block(x, 2, strid=1)\n"
                      "      |                 ^\n");
    snprintf(src, sizeof src, "%sb = block(x, 2, stride=1, planes=3)\nc = block(N, 2)\nh = block\n", def);
    check_errors(src, "t.frost:9:27: error: argument 'planes' of block is given twice\n"
                      "    9 | b = block(x, 2, stride=1, planes=3)\n"
                      "      |                           ^\n"
                      "t.frost:9:14: note: first given here\n"
                      "    9 | b = block(x, 2, stride=1, planes=3)\n"
                      "      |              ^\n"
                      "t.frost:6:17: error: argument 'x' of linear must be a tensor, but 't' is an integer constant\n"
                      "    6 |     fc = linear(t, planes)\n"
                      "      |                 ^\n"
                      "t.frost:10:5: note: in call of 'block' as 'c'\n"
                      "   10 | c = block(N, 2)\n"
                      "      |     ^\n"
                      "t.frost:11:5: error: 'block' is a def; call it: h = block(...)\n"
                      "   11 | h = block\n"
                      "      |     ^\n");
}
END_TEST

START_TEST(def_body_errors) {
    /* an error inside a def points there, with a note at the call; the same
     * error from a second call is not repeated; the caller's result is
     * poisoned, so its users stay quiet */
    check_errors("def inner(t, k) {\n"
                 "    s = linear(t, k)\n"
                 "    q = add(s, t)\n"
                 "    return q\n"
                 "}\n"
                 "def outer(t) {\n"
                 "    in1 = inner(t, 5)\n"
                 "    return in1\n"
                 "}\n"
                 "b1 = outer(x)\n"
                 "b2 = outer(x)\n"
                 "c = relu(b1)\n",
                 "t.frost:7:9: error: add: shapes [4, 5] and [4, 8] cannot be broadcast together (dims aligned "
                 "from the right must be equal or 1)\n"
                 "    7 |     q = add(s, t)\n"
                 "      |         ^\n"
                 "t.frost:11:11: note: in call of 'inner' as 'b1.in1'\n"
                 "   11 |     in1 = inner(t, 5)\n"
                 "      |           ^\n"
                 "t.frost:14:6: note: in call of 'outer' as 'b1'\n"
                 "   14 | b1 = outer(x)\n"
                 "      |      ^\n");
    /* scope: the caller's names are not visible; order and untaken branches */
    check_errors("def f(h) {\n"
                 "    y = relu(label)\n"
                 "    z = relu(w)\n"
                 "    w = relu(h)\n"
                 "    if false { v = relu(h) }\n"
                 "    u = relu(v)\n"
                 "    return u\n"
                 "}\n"
                 "b = f(x)\n",
                 "t.frost:6:14: error: 'label' is not visible inside def 'f' (a def sees its parameters, its own "
                 "names and the top-level consts); pass it as an argument\n"
                 "    6 |     y = relu(label)\n"
                 "      |              ^\n"
                 "t.frost:13:5: note: in call of 'f' as 'b'\n"
                 "   13 | b = f(x)\n"
                 "      |     ^\n"
                 "t.frost:7:14: error: 'w' is used before its definition\n"
                 "    7 |     z = relu(w)\n"
                 "      |              ^\n"
                 "t.frost:8:5: note: 'w' is defined here\n"
                 "    8 |     w = relu(h)\n"
                 "      |     ^\n"
                 "t.frost:13:5: note: in call of 'f' as 'b'\n"
                 "   13 | b = f(x)\n"
                 "      |     ^\n"
                 "t.frost:10:14: error: 'v' is not defined here: it is assigned only in a branch of 'if' that was "
                 "not taken\n"
                 "   10 |     u = relu(v)\n"
                 "      |              ^\n"
                 "t.frost:9:16: note: 'v' is assigned here\n"
                 "    9 |     if false { v = relu(h) }\n"
                 "      |                ^\n"
                 "t.frost:13:5: note: in call of 'f' as 'b'\n"
                 "   13 | b = f(x)\n"
                 "      |     ^\n");
    /* a name made in a def clashes with one made outside it */
    check_errors("def block(t) {\n"
                 "    fc = linear(t, 4)\n"
                 "    return relu(fc)\n"
                 "}\n"
                 "b = block(x)\n"
                 "b.fc = linear(x, 3)\n"
                 "c.fc.weight = relu(x)\n"
                 "c = block(x)\n",
                 "t.frost:10:1: error: redefinition of 'b.fc'\n"
                 "   10 | b.fc = linear(x, 3)\n"
                 "      | ^\n"
                 "t.frost:6:5: note: previous definition of 'b.fc' is here\n"
                 "    6 |     fc = linear(t, 4)\n"
                 "      |     ^\n"
                 "t.frost:6:10: error: redefinition of 'c.fc.weight'\n"
                 "    6 |     fc = linear(t, 4)\n"
                 "      |          ^\n"
                 "t.frost:11:1: note: previous definition of 'c.fc.weight' is here\n"
                 "   11 | c.fc.weight = relu(x)\n"
                 "      | ^\n"
                 "t.frost:12:5: note: in call of 'block' as 'c'\n"
                 "   12 | c = block(x)\n"
                 "      |     ^\n");
}
END_TEST

START_TEST(def_declaration_errors) {
    check_errors("def f(t) {\n    y = g(t)\n    return y\n}\n"
                 "def g(t) {\n    z = f(t)\n    return z\n}\n"
                 "def h(t) {\n    if false { a = h(t) }\n    return t\n}\n"
                 "b = f(x)\n",
                 "t.frost:10:9: error: recursive call of 'f' (f -> g -> f); a def cannot call itself, directly or "
                 "through other defs\n"
                 "   10 |     z = f(t)\n"
                 "      |         ^\n"
                 "t.frost:14:20: error: recursive call of 'h' (h -> h); a def cannot call itself, directly or "
                 "through other defs\n"
                 "   14 |     if false { a = h(t) }\n"
                 "      |                    ^\n");
    check_errors("def f(t) {\n    return t\n}\ndef f(u) {\n    return u\n}\ndef relu(t) { return t }\n"
                 "def g(a, b=1, c, a) { return a }\n",
                 "t.frost:8:5: error: redefinition of def 'f'\n"
                 "    8 | def f(u) {\n"
                 "      |     ^\n"
                 "t.frost:5:5: note: previous definition of 'f' is here\n"
                 "    5 | def f(t) {\n"
                 "      |     ^\n"
                 "t.frost:11:5: error: a def cannot be named 'relu': that is an op\n"
                 "   11 | def relu(t) { return t }\n"
                 "      |     ^\n"
                 "t.frost:12:15: error: parameter 'c' of def 'g' needs a default: it follows 'b', which has one\n"
                 "   12 | def g(a, b=1, c, a) { return a }\n"
                 "      |               ^\n"
                 "t.frost:12:18: error: duplicate parameter 'a' of def 'g'\n"
                 "   12 | def g(a, b=1, c, a) { return a }\n"
                 "      |                  ^\n"
                 "t.frost:12:7: note: first declared here\n"
                 "   12 | def g(a, b=1, c, a) { return a }\n"
                 "      |       ^\n"
                 "t.frost:12:18: error: parameter 'a' of def 'g' needs a default: it follows 'b', which has one\n"
                 "   12 | def g(a, b=1, c, a) { return a }\n"
                 "      |                  ^\n");
}
END_TEST

START_TEST(condition_errors) {
    check_errors("def f(t, planes, n=N * 2) {\n"
                 "    if planes { a = relu(t) }\n"
                 "    if t == n { b = relu(t) }\n"
                 "    if dim(t, 2) == n { c = relu(t) }\n"
                 "    if n == true or 1.5 { d = relu(t) }\n"
                 "    e = relu(a)\n"
                 "    return n\n"
                 "}\n"
                 "b = f(x, 3)\n",
                 "t.frost:6:8: error: the condition of 'if' must be true or false, but 'planes' is an integer "
                 "constant\n"
                 "    6 |     if planes { a = relu(t) }\n"
                 "      |        ^\n"
                 "t.frost:13:5: note: in call of 'f' as 'b'\n"
                 "   13 | b = f(x, 3)\n"
                 "      |     ^\n"
                 "t.frost:7:8: error: 't' is a tensor and cannot be compared; compare its shape with dim(t, i)\n"
                 "    7 |     if t == n { b = relu(t) }\n"
                 "      |        ^\n"
                 "t.frost:13:5: note: in call of 'f' as 'b'\n"
                 "   13 | b = f(x, 3)\n"
                 "      |     ^\n"
                 "t.frost:8:15: error: dim: index 2 is out of range for 't' of shape [4, 8] (rank 2)\n"
                 "    8 |     if dim(t, 2) == n { c = relu(t) }\n"
                 "      |               ^\n"
                 "t.frost:13:5: note: in call of 'f' as 'b'\n"
                 "   13 | b = f(x, 3)\n"
                 "      |     ^\n"
                 "t.frost:9:10: error: '==' compares an integer with a bool\n"
                 "    9 |     if n == true or 1.5 { d = relu(t) }\n"
                 "      |          ^\n"
                 "t.frost:13:5: note: in call of 'f' as 'b'\n"
                 "   13 | b = f(x, 3)\n"
                 "      |     ^\n"
                 "t.frost:11:12: error: def 'f' must return a tensor, but 'n' is an integer constant\n"
                 "   11 |     return n\n"
                 "      |            ^\n"
                 "t.frost:13:5: note: in call of 'f' as 'b'\n"
                 "   13 | b = f(x, 3)\n"
                 "      |     ^\n");
    /* `and` looks at its right side only when the left is true */
    check_errors("const C = 1 < 2\nif N { a = relu(x) }\nif 1.5 > N and x { b = relu(x) }\n"
                 "if 1.5 < N and x { b = relu(x) }\n",
                 "t.frost:5:13: error: constant 'C' must be an integer, got a condition\n"
                 "    5 | const C = 1 < 2\n"
                 "      |             ^\n"
                 "t.frost:6:4: error: the condition of 'if' must be true or false, but 'N' is an integer constant\n"
                 "    6 | if N { a = relu(x) }\n"
                 "      |    ^\n"
                 "t.frost:8:16: error: an operand of 'and' must be true or false, but 'x' is a tensor\n"
                 "    8 | if 1.5 < N and x { b = relu(x) }\n"
                 "      |                ^\n");
}
END_TEST

static int bn_mode_of_sel(const ir_graph *g, const char *config, bool bn_eval) {
    ir_module m = {.graph = (ir_graph *)g};
    frost_select sel = {.config = config, .bn_eval = bn_eval};
    diag_ctx d;
    diag_init(&d, "t.frost", NULL, 0, stderr);
    ck_assert(pass_config(&m, &sel, &d));
    return m.bn_eval;
}

static int bn_mode_of(const ir_graph *g, const char *config) { return bn_mode_of_sel(g, config, false); }

START_TEST(batchnorm_mode) {
    static const char head[] = "model m\ninput x : f32[4, 8]\ninput t : f32[4, 2]\n"
                               "fc = linear(x, 2)\nloss = mse_loss(fc, t)\noutput loss\n";
    char src[1024];
    fixture f;
    snprintf(src, sizeof src,
             "%sconfig a { train * }\nconfig b { train *; batchnorm eval }\n"
             "config c {\n  train fc.*\n  batchnorm train\n}\n",
             head);
    ir_graph *g = load(&f, src);
    ck_assert_msg(g != NULL, "%s", fx_text(&f));
    ck_assert(!g->bn_eval);
    ck_assert(!g->configs[0].bn_eval);
    ck_assert_int_eq(g->configs[0].bn_eval_loc.line, 0);
    ck_assert(g->configs[1].bn_eval);
    ck_assert_int_eq(g->configs[1].bn_eval_loc.line, 8);
    ck_assert_int_eq(g->configs[1].bn_eval_loc.col, 31);
    ck_assert(!g->configs[2].bn_eval);
    ck_assert_int_eq(g->configs[2].bn_eval_loc.line, 11);
    ck_assert(!bn_mode_of(g, "a"));
    ck_assert(bn_mode_of(g, "b"));
    ck_assert(!bn_mode_of(g, NULL));
    ck_assert(!bn_mode_of(g, "all"));
    fx_close(&f);
    /* the model-wide default, even when it comes after the configs */
    snprintf(src, sizeof src, "%sconfig a { train * }\nconfig c { train *; batchnorm train }\nbatchnorm eval\n", head);
    g = load(&f, src);
    ck_assert_msg(g != NULL, "%s", fx_text(&f));
    ck_assert(g->bn_eval);
    ck_assert(g->configs[0].bn_eval);
    ck_assert(!g->configs[1].bn_eval);
    ck_assert(bn_mode_of(g, "a"));
    ck_assert(!bn_mode_of(g, "c"));
    ck_assert(bn_mode_of_sel(g, "c", true)); /* --batchnorm-eval: eval whatever the config says */
    ck_assert(bn_mode_of(g, "none"));        /* built in: the model's mode */
    ck_assert(bn_mode_of(g, NULL));
    fx_close(&f);
    check_errors("batchnorm eval\nbatchnorm train\nconfig c { train *; batchnorm eval; batchnorm train }\n",
                 "t.frost:6:1: error: a second 'batchnorm' statement\n"
                 "    6 | batchnorm train\n"
                 "      | ^\n"
                 "t.frost:5:1: note: the first is here\n"
                 "    5 | batchnorm eval\n"
                 "      | ^\n"
                 "t.frost:7:47: error: config 'c' sets 'batchnorm' twice\n"
                 "    7 | config c { train *; batchnorm eval; batchnorm train }\n"
                 "      |                                               ^\n"
                 "t.frost:7:31: note: first set here\n"
                 "    7 | config c { train *; batchnorm eval; batchnorm train }\n"
                 "      |                               ^\n");
}
END_TEST

/* Float arguments reach an op's fattr through def parameters and their
 * defaults; bools and ints too. Needs dropout and batchnorm2d. */
START_TEST(def_float_args) {
    if (!op_find("dropout") || !op_find("batchnorm2d") || !op_find("conv2d"))
        return;
    fixture f;
    ir_graph *g = load(&f, "model m\n"
                           "input x : f32[2, 3, 8, 8]\n"
                           "def unit(t, planes, p=0.25, eps=1e-5, momentum=0.1, bias=false, k=3) {\n"
                           "    conv = conv2d(t, planes, k, padding=k / 2, bias=bias)\n"
                           "    bn = batchnorm2d(conv, eps=eps, momentum=momentum * 2)\n"
                           "    return dropout(bn, p=p)\n"
                           "}\n"
                           "a = unit(x, 4)\n"
                           "b = unit(a, 4, p=0.5, eps=0.001, bias=true, k=1)\n");
    ck_assert_msg(g != NULL, "%s", fx_text(&f));
    const ir_node *bn = &g->nodes[val(g, "a.bn")->node];
    ck_assert_double_eq_tol(bn->fattr[0], 1e-5, 1e-15);
    ck_assert_double_eq_tol(bn->fattr[1], 0.2, 1e-15);
    ck_assert_double_eq(g->nodes[val(g, "a")->node].fattr[0], 0.25);
    ck_assert_double_eq(g->nodes[val(g, "b")->node].fattr[0], 0.5);
    ck_assert_double_eq_tol(g->nodes[val(g, "b.bn")->node].fattr[0], 0.001, 1e-15);
    ck_shape(val(g, "a.conv.weight"), 4, 3, 3, 3);
    ck_assert_int_eq(ir_find_value(g, "a.conv.bias"), -1);
    ck_shape(val(g, "b.conv.weight"), 4, 4, 1, 1);
    ck_shape(val(g, "b.conv.bias"), 4);
    ck_shape(val(g, "b"), 2, 4, 8, 8);
    fx_close(&f);
}
END_TEST

/* ResNet-18 written with a def: every parameter and buffer name, in order, is
 * a key of torchvision's resnet18().state_dict(). Needs the conv ops; skipped
 * (passes) without them. */
static const char resnet18[] = "model resnet18\n"
                               "const N = 2\n"
                               "input x     : f32[N, 3, 64, 64]\n"
                               "input label : i32[N]\n"
                               "def basic_block(x, planes, stride=1) {\n"
                               "    conv1 = conv2d(x, planes, 3, stride=stride, padding=1, bias=false)\n"
                               "    bn1   = batchnorm2d(conv1)\n"
                               "    relu1 = relu(bn1)\n"
                               "    conv2 = conv2d(relu1, planes, 3, padding=1, bias=false)\n"
                               "    bn2   = batchnorm2d(conv2, eps=1e-5, momentum=0.1)\n"
                               "    if stride != 1 or dim(x, 1) != planes {\n"
                               "        downsample.0 = conv2d(x, planes, 1, stride=stride, bias=false)\n"
                               "        downsample.1 = batchnorm2d(downsample.0)\n"
                               "        identity = downsample.1\n"
                               "    } else {\n"
                               "        identity = x\n"
                               "    }\n"
                               "    sum = add(bn2, identity)\n"
                               "    return relu(sum)\n"
                               "}\n"
                               "conv1    = conv2d(x, 64, 7, stride=2, padding=3, bias=false)\n"
                               "bn1      = batchnorm2d(conv1)\n"
                               "relu     = relu(bn1)\n"
                               "maxpool  = maxpool2d(relu, 3, stride=2, padding=1)\n"
                               "layer1.0 = basic_block(maxpool, 64)\n"
                               "layer1.1 = basic_block(layer1.0, 64)\n"
                               "layer2.0 = basic_block(layer1.1, 128, 2)\n"
                               "layer2.1 = basic_block(layer2.0, 128)\n"
                               "layer3.0 = basic_block(layer2.1, 256, 2)\n"
                               "layer3.1 = basic_block(layer3.0, 256)\n"
                               "layer4.0 = basic_block(layer3.1, 512, 2)\n"
                               "layer4.1 = basic_block(layer4.0, 512)\n"
                               "avgpool  = global_avgpool(layer4.1)\n"
                               "flat     = flatten(avgpool)\n"
                               "fc       = linear(flat, 1000)\n"
                               "loss     = cross_entropy(fc, label)\n"
                               "output loss, fc\n";

START_TEST(resnet18_state_dict_names) {
    if (!op_find("conv2d") || !op_find("batchnorm2d") || !op_find("maxpool2d") || !op_find("global_avgpool"))
        return;
    char want[200][64];
    int n = 0;
    static const char *bn[] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
    snprintf(want[n++], 64, "conv1.weight");
    for (int i = 0; i < 5; i++)
        snprintf(want[n++], 64, "bn1.%s", bn[i]);
    for (int layer = 1; layer <= 4; layer++)
        for (int b = 0; b < 2; b++) {
            for (int c = 1; c <= 2; c++) {
                snprintf(want[n++], 64, "layer%d.%d.conv%d.weight", layer, b, c);
                for (int i = 0; i < 5; i++)
                    snprintf(want[n++], 64, "layer%d.%d.bn%d.%s", layer, b, c, bn[i]);
            }
            if (layer > 1 && b == 0) {
                snprintf(want[n++], 64, "layer%d.0.downsample.0.weight", layer);
                for (int i = 0; i < 5; i++)
                    snprintf(want[n++], 64, "layer%d.0.downsample.1.%s", layer, bn[i]);
            }
        }
    snprintf(want[n++], 64, "fc.weight");
    snprintf(want[n++], 64, "fc.bias");
    ck_assert_int_eq(n, 122);
    fixture f;
    ir_graph *g = load(&f, resnet18);
    ck_assert_msg(g != NULL, "%s", fx_text(&f));
    int k = 0;
    int64_t params = 0;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_PARAM && val->kind != VAL_BUFFER)
            continue;
        ck_assert_int_lt(k, n);
        ck_assert_str_eq(val->name, want[k]);
        k++;
        if (val->kind == VAL_PARAM)
            params += shape_numel(&val->shape);
    }
    ck_assert_int_eq(k, n);
    ck_assert_int_eq(params, 11689512); /* sum(p.numel() for p in resnet18().parameters()) */
    ck_shape(val(g, "layer2.0.downsample.0.weight"), 128, 64, 1, 1);
    ck_shape(val(g, "layer4.1"), 2, 512, 2, 2);
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

/* ---------------------------------------------------------------- map.c, ir.c */

START_TEST(string_map) {
    pool *p = pool_new();
    str_map m = {0};
    ck_assert_int_eq(map_find(&m, "x"), -1); /* all zero is an empty map */
    enum { N = 5000 };                       /* enough to grow the table many times */
    char **keys = pool_alloc(p, sizeof *keys * N);
    for (int k = 0; k < N; k++) {
        keys[k] = pool_printf(p, "layer%d.fc.weight", k);
        ck_assert(map_put(p, &m, keys[k], k));
    }
    ck_assert_int_eq(m.n, N);
    for (int k = 0; k < N; k++)
        ck_assert_int_eq(map_find(&m, keys[k]), k);
    ck_assert_int_eq(map_find(&m, "layer5000.fc.weight"), -1);
    ck_assert_int_eq(map_find(&m, "layer1"), -1);
    ck_assert(!map_put(p, &m, pool_strdup(p, "layer7.fc.weight"), 99)); /* the first value stays */
    ck_assert_int_eq(map_find(&m, "layer7.fc.weight"), 7);
    ck_assert_int_eq(m.n, N);
    /* a key given as a prefix of a longer string: "layer12" of "layer12.fc" */
    ck_assert(map_put(p, &m, "layer12", N));
    ck_assert_int_eq(map_findn(&m, "layer12.fc", 7), N);
    ck_assert_int_eq(map_findn(&m, "layer12.fc", 6), -1);
    ck_assert_int_eq(map_findn(&m, "", 0), -1);
    ck_assert(map_put(p, &m, "", N + 1));
    ck_assert_int_eq(map_findn(&m, "x", 0), N + 1);

    /* ir_find_value: the first value of a name, as the graph's only index */
    ir_graph *g = ir_graph_new(p);
    ck_assert_int_eq(ir_find_value(g, "x"), -1);
    int x = ir_add_value(g, "x", VAL_INPUT, DT_F32, (ir_shape){1, {4}}, (src_loc){1, 1});
    int again = ir_add_value(g, "x", VAL_ACT, DT_F32, (ir_shape){1, {4}}, (src_loc){2, 1});
    ck_assert_int_ne(x, again);
    ck_assert_int_eq(ir_find_value(g, "x"), x);
    pool_free(p);
}
END_TEST

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

/* ir_storage_root(s): the end of an alias chain, -1 (or a panic) for a
 * broken one. */
START_TEST(storage_roots) {
    pool *p = pool_new();
    ir_program prog = {0};
    for (int k = 0; k < 5; k++)
        ir_add_buf(p, &prog, "b", BUF_ACT, SPACE_ARENA, DT_F32, (ir_shape){1, {4}}, -1);
    prog.bufs[1].alias_of = 0;
    prog.bufs[2].alias_of = 1; /* 2 -> 1 -> 0 */
    prog.bufs[4].alias_of = 2;
    int root[5];
    ir_storage_roots(&prog, root);
    static const int want[5] = {0, 0, 0, 3, 0};
    for (int b = 0; b < 5; b++) {
        ck_assert_int_eq(root[b], want[b]);
        ck_assert_int_eq(ir_storage_root(&prog, b), want[b]);
    }
    prog.bufs[0].alias_of = 4; /* a cycle: 0 -> 4 -> 2 -> 1 -> 0 */
    ck_assert_int_eq(ir_storage_root(&prog, 2), -1);
    ck_assert_int_eq(ir_storage_root(&prog, 3), 3);
    prog.bufs[0].alias_of = 5; /* past the last buffer */
    ck_assert_int_eq(ir_storage_root(&prog, 4), -1);
    prog.bufs[0].alias_of = -1;
    prog.bufs[3].alias_of = 3; /* its own alias */
    ck_assert_int_eq(ir_storage_root(&prog, 3), -1);
    ck_assert_int_eq(ir_storage_root(&prog, 4), 0);
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
    ck_assert_ptr_nonnull(strstr(text, "  node 0: %5 = linear(%0, %3, %4) attr[512, 1, 0]  # fc1\n"));
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
    tcase_add_test(tc, nested_calls);
    tcase_add_test(tc, concat_list_and_param);
    tcase_add_test(tc, nested_call_recursion);
    tcase_add_test(tc, define_overrides_const);
    tcase_add_test(tc, define_of_unknown_const);
    tcase_add_test(tc, define_named_in_dimension_error);
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
    tcase_add_test(tc, def_names);
    tcase_add_test(tc, def_values_and_conditions);
    tcase_add_test(tc, def_call_errors);
    tcase_add_test(tc, def_body_errors);
    tcase_add_test(tc, def_declaration_errors);
    tcase_add_test(tc, condition_errors);
    tcase_add_test(tc, batchnorm_mode);
    tcase_add_test(tc, def_float_args);
    tcase_add_test(tc, resnet18_state_dict_names);
    suite_add_tcase(s, tc);
    TCase *ti = tcase_create("ir");
    tcase_add_test(ti, string_map);
    tcase_add_test(ti, shapes);
    tcase_add_test(ti, storage_roots);
    tcase_add_test(ti, buffers_and_dumps);
    suite_add_tcase(s, ti);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
