/* test_parse.c: the parser's tree shapes and its syntax errors. */
#include "frontend/ast.h"

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

static ast_file *parse(fixture *f, const char *src) {
    f->p = pool_new();
    f->buf = NULL;
    f->out = open_memstream(&f->buf, &f->len);
    diag_init(&f->d, "t.frost", src, strlen(src), f->out);
    int n;
    token *toks = lex_tokens(f->p, &f->d, &n);
    ck_assert_ptr_nonnull(toks);
    return parse_file(f->p, &f->d, toks);
}

static const char *fx_text(fixture *f) {
    fflush(f->out);
    return f->buf ? f->buf : "";
}

static void fx_close(fixture *f) {
    fclose(f->out);
    free(f->buf);
    pool_free(f->p);
}

static const char mlp[] = "# mlp\n"
                          "model mlp\n"
                          "const N = 128\n"
                          "const H = N * 4 + 2 * (1 - 3)\n"
                          "input  x     : f32[N, 784]\n"
                          "input  y     : f32[N, 10] grad\n"
                          "input  label : i32[N]\n"
                          "fc1  = linear(x, 512)\n"
                          "h1   = relu(fc1)\n"
                          "fc2  = linear(h1, 10, bias=false)\n"
                          "loss = cross_entropy(fc2, label)\n"
                          "output loss, fc2\n"
                          "config all   { train * }\n"
                          "config input { train none; grad x }\n"
                          "config ft    {\n"
                          "    train *; freeze fc1.* layer[12].?.w\n"
                          "    train *.bias\n"
                          "}\n"
                          "default ft\n";

START_TEST(whole_model) {
    fixture f;
    ast_file *a = parse(&f, mlp);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(f.d.errors, 0);
    ck_assert_int_eq(a->nstmts, 15);
    static const ast_stmt_kind kinds[] = {ST_MODEL,  ST_CONST,  ST_CONST,  ST_INPUT,  ST_INPUT,
                                          ST_INPUT,  ST_BIND,   ST_BIND,   ST_BIND,   ST_BIND,
                                          ST_OUTPUT, ST_CONFIG, ST_CONFIG, ST_CONFIG, ST_DEFAULT};
    for (int k = 0; k < 15; k++)
        ck_assert_int_eq(a->stmts[k].kind, kinds[k]);
    ck_assert_str_eq(a->stmts[0].name, "mlp");
    ck_assert_int_eq(a->stmts[0].loc.line, 2);
    ck_assert_int_eq(a->stmts[0].name_loc.col, 7);

    const ast_stmt *in = &a->stmts[4];
    ck_assert_str_eq(in->name, "y");
    ck_assert_str_eq(in->dtype, "f32");
    ck_assert_int_eq(in->ndims, 2);
    ck_assert_int_eq(in->dims[0]->kind, EX_NAME);
    ck_assert_str_eq(in->dims[0]->name, "N");
    ck_assert_int_eq(in->dims[1]->kind, EX_INT);
    ck_assert_int_eq(in->dims[1]->ival, 10);
    ck_assert(in->grad);
    ck_assert(!a->stmts[3].grad);

    const ast_stmt *fc2 = &a->stmts[8];
    ck_assert_str_eq(fc2->name, "fc2");
    ck_assert_str_eq(fc2->op, "linear");
    ck_assert_int_eq(fc2->op_loc.line, 10);
    ck_assert_int_eq(fc2->op_loc.col, 8);
    ck_assert_int_eq(fc2->nargs, 3);
    ck_assert_ptr_null(fc2->args[0].name);
    ck_assert_str_eq(fc2->args[0].value->name, "h1");
    ck_assert_int_eq(fc2->args[1].value->ival, 10);
    ck_assert_str_eq(fc2->args[2].name, "bias");
    ck_assert_int_eq(fc2->args[2].loc.col, 23);
    ck_assert_int_eq(fc2->args[2].value->kind, EX_BOOL);
    ck_assert_int_eq(fc2->args[2].value->ival, 0);

    const ast_stmt *out = &a->stmts[10];
    ck_assert_int_eq(out->nnames, 2);
    ck_assert_str_eq(out->names[0], "loss");
    ck_assert_str_eq(out->names[1], "fc2");
    ck_assert_int_eq(out->name_locs[1].col, 14);

    const ast_stmt *input = &a->stmts[12];
    ck_assert_str_eq(input->name, "input"); /* a keyword is fine as a config name */
    ck_assert_int_eq(input->nitems, 2);
    ck_assert_int_eq(input->items[0].kind, CFG_TRAIN);
    ck_assert_str_eq(input->items[0].word, "none");
    ck_assert_int_eq(input->items[1].kind, CFG_GRAD);
    ck_assert_str_eq(input->items[1].word, "x");

    const ast_stmt *ft = &a->stmts[13];
    ck_assert_int_eq(ft->nitems, 4);
    ck_assert_int_eq(ft->items[0].kind, CFG_TRAIN);
    ck_assert_str_eq(ft->items[0].word, "*");
    ck_assert_int_eq(ft->items[1].kind, CFG_FREEZE);
    ck_assert_str_eq(ft->items[1].word, "fc1.*");
    ck_assert_int_eq(ft->items[1].loc.line, 16);
    ck_assert_int_eq(ft->items[1].loc.col, 21);
    ck_assert_str_eq(ft->items[2].word, "layer[12].?.w");
    ck_assert_int_eq(ft->items[2].kind, CFG_FREEZE);
    ck_assert_str_eq(ft->items[3].word, "*.bias");
    ck_assert_int_eq(ft->items[3].kind, CFG_TRAIN);
    ck_assert_str_eq(a->stmts[14].name, "ft");
    fx_close(&f);
}
END_TEST

START_TEST(expression_precedence) {
    fixture f;
    ast_file *a = parse(&f, "const H = N * 4 + 2 * (1 - 3)\nconst M = -N % 3\n");
    ck_assert_ptr_nonnull(a);
    const ast_expr *e = a->stmts[0].value;
    ck_assert_int_eq(e->kind, EX_BIN);
    ck_assert_int_eq(e->op, '+');
    ck_assert_int_eq(e->loc.col, 17);
    ck_assert_int_eq(e->lhs->op, '*');
    ck_assert_str_eq(e->lhs->lhs->name, "N");
    ck_assert_int_eq(e->rhs->op, '*');
    ck_assert_int_eq(e->rhs->rhs->op, '-');
    ck_assert_int_eq(e->rhs->rhs->rhs->ival, 3);
    const ast_expr *m = a->stmts[1].value;
    ck_assert_int_eq(m->op, '%');
    ck_assert_int_eq(m->lhs->kind, EX_NEG);
    fx_close(&f);
}
END_TEST

START_TEST(lists_reals_and_dotted_names) {
    fixture f;
    ast_file *a = parse(&f, "layer1.0.fc = reshape(q0, [6, 5])\n"
                            "n = norm(x, eps=1e-5, momentum=-0.25)\n"
                            "z = reshape(\n    q0,\n    2, 3\n)\n");
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(a->stmts[0].name, "layer1.0.fc");
    const ast_expr *list = a->stmts[0].args[1].value;
    ck_assert_int_eq(list->kind, EX_LIST);
    ck_assert_int_eq(list->nitems, 2);
    ck_assert_int_eq(list->items[1]->ival, 5);
    const ast_stmt *n = &a->stmts[1];
    ck_assert_int_eq(n->args[1].value->kind, EX_REAL);
    ck_assert_double_eq_tol(n->args[1].value->rval, 1e-5, 1e-15);
    ck_assert_int_eq(n->args[2].value->kind, EX_NEG);
    ck_assert_double_eq(n->args[2].value->lhs->rval, 0.25);
    /* a call may span lines after '(' and ',' */
    ck_assert_int_eq(a->nstmts, 3);
    ck_assert_int_eq(a->stmts[2].nargs, 3);
    ck_assert_int_eq(a->stmts[2].args[2].loc.line, 5);
    ck_assert_int_eq(a->stmts[2].args[2].loc.col, 8);
    fx_close(&f);
}
END_TEST

/* `param NAME : f32[dims] init=...` is a statement; `param` followed by
 * '=' is a binding's name, as batchnorm and optimizer are. */
/* `lora PATTERN options`: the defaults (r 8, alpha 16, dropout 0), each
 * option in any order, and lora items among other items. */
START_TEST(lora_items) {
    fixture f;
    const ast_file *a = parse(&f, "config c { lora *.attn.c_attn; lora fc? rslora dropout=0.05 alpha=32 r=4\n"
                                  "           train *.bias }\n");
    ck_assert_ptr_nonnull(a);
    const ast_stmt *c = &a->stmts[0];
    ck_assert_int_eq(c->nitems, 3);
    const ast_cfg_item *d = &c->items[0], *o = &c->items[1];
    ck_assert_int_eq(d->kind, CFG_LORA);
    ck_assert_str_eq(d->lora.pattern, "*.attn.c_attn");
    ck_assert_int_eq(d->lora.r, 8);
    ck_assert(d->lora.alpha == 16 && d->lora.dropout == 0 && !d->lora.rslora);
    ck_assert_int_eq(o->kind, CFG_LORA);
    ck_assert_str_eq(o->word, "fc?");
    ck_assert_int_eq(o->loc.col, 37);
    ck_assert_int_eq(o->lora.r, 4);
    ck_assert(o->lora.alpha == 32 && o->lora.dropout == 0.05 && o->lora.rslora);
    ck_assert_int_eq(c->items[2].kind, CFG_TRAIN);
    fx_close(&f);
}
END_TEST

START_TEST(param_statement) {
    fixture f;
    ast_file *a = parse(&f, "param cls_token : f32[1, 1, D] init=normal(0.02)\n"
                            "param emb.pos : f32[4]\n"
                            "param = relu(x)\n");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->nstmts, 3);
    const ast_stmt *p = &a->stmts[0];
    ck_assert_int_eq(p->kind, ST_PARAM);
    ck_assert_str_eq(p->name, "cls_token");
    ck_assert_str_eq(p->dtype, "f32");
    ck_assert_int_eq(p->ndims, 3);
    ck_assert_str_eq(p->op, "normal");
    ck_assert_int_eq(p->value->kind, EX_REAL);
    ck_assert_int_eq(a->stmts[1].kind, ST_PARAM);
    ck_assert_str_eq(a->stmts[1].name, "emb.pos");
    ck_assert_ptr_null(a->stmts[1].op); /* zeros */
    ck_assert_int_eq(a->stmts[2].kind, ST_BIND);
    ck_assert_str_eq(a->stmts[2].name, "param");
    fx_close(&f);
}
END_TEST

/* One syntax error: the whole message, source line and caret included. */
static void check_error(const char *src, const char *expected) {
    fixture f;
    ck_assert_ptr_null(parse(&f, src));
    ck_assert_str_eq(fx_text(&f), expected);
    fx_close(&f);
}

/* A call in an argument is an EX_CALL holding the call as a nameless
 * binding: callee, location and arguments, which may nest again. */
START_TEST(nested_call) {
    fixture f;
    ast_file *a = parse(&f, "h = relu(linear(scale(x, 0.5), 16, bias=false))\n");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(f.d.errors, 0);
    const ast_stmt *st = &a->stmts[0];
    ck_assert_int_eq(st->kind, ST_BIND);
    ck_assert_str_eq(st->op, "relu");
    ck_assert_int_eq(st->nargs, 1);
    const ast_expr *lin = st->args[0].value;
    ck_assert_int_eq(lin->kind, EX_CALL);
    ck_assert_str_eq(lin->name, "linear");
    ck_assert_int_eq(lin->loc.col, 10);
    ck_assert_int_eq(lin->call->kind, ST_BIND);
    ck_assert_ptr_null(lin->call->name);
    ck_assert_str_eq(lin->call->op, "linear");
    ck_assert_int_eq(lin->call->nargs, 3);
    ck_assert_str_eq(lin->call->args[2].name, "bias");
    const ast_expr *sc = lin->call->args[0].value;
    ck_assert_int_eq(sc->kind, EX_CALL);
    ck_assert_str_eq(sc->call->op, "scale");
    ck_assert_int_eq(sc->call->nargs, 2);
    ck_assert_str_eq(fx_text(&f), "");
    fx_close(&f);
    /* an unclosed inner call is a syntax error at the end of the line */
    check_error("h = relu(linear(x, 16)\n", "t.frost:1:23: error: expected ',' or ')', got end of line\n"
                                            "    1 | h = relu(linear(x, 16)\n"
                                            "      |                       ^\n");
}
END_TEST

START_TEST(missing_paren_stops_at_end_of_line) {
    check_error("fc1 = linear(x, 16\nh1 = relu(fc1)\n", "t.frost:1:19: error: expected ',' or ')', got end of line\n"
                                                        "    1 | fc1 = linear(x, 16\n"
                                                        "      |                   ^\n");
}
END_TEST

START_TEST(missing_equals) {
    check_error("fc1 linear(x)\n", "t.frost:1:5: error: expected '=' after the name (a binding is NAME = op(...)), "
                                   "got 'linear'\n"
                                   "    1 | fc1 linear(x)\n"
                                   "      |     ^\n");
}
END_TEST

START_TEST(keyword_as_name) {
    check_error("input = relu(x)\n", "t.frost:1:7: error: expected an input name, got '='\n"
                                     "    1 | input = relu(x)\n"
                                     "      |       ^\n");
    check_error("const grad = 3\n", "t.frost:1:7: error: 'grad' is a keyword and cannot be used as a constant name\n"
                                    "    1 | const grad = 3\n"
                                    "      |       ^\n");
}
END_TEST

static const char block_src[] = "model m\n"
                                "def block(x, planes, stride=1, scale=0.5, flag=true) {\n"
                                "    fc1 = linear(x, planes, bias=false)\n"
                                "    if stride != 1 or dim(x, -1) != planes {\n"
                                "        downsample.0 = linear(x, planes)\n"
                                "        identity = downsample.0\n"
                                "    } else if not flag { identity = x }\n"
                                "    else {\n"
                                "        identity = x; extra = relu(x)\n"
                                "    }\n"
                                "    s = add(fc1, identity)\n"
                                "    return relu(s)\n"
                                "}\n"
                                "def id(x)\n"
                                "{\n"
                                "    return x\n"
                                "}\n"
                                "layer1.0 = block(x, 4, stride=2)\n"
                                "if N > 2 { h = layer1.0 }\n"
                                "batchnorm eval\n"
                                "config c { train *; batchnorm train }\n";

START_TEST(defs_and_blocks) {
    fixture f;
    ast_file *a = parse(&f, block_src);
    ck_assert_msg(a != NULL, "%s", fx_text(&f));
    ck_assert_int_eq(a->nstmts, 7);
    const ast_stmt *d = &a->stmts[1];
    ck_assert_int_eq(d->kind, ST_DEF);
    ck_assert_str_eq(d->name, "block");
    ck_assert_int_eq(d->name_loc.col, 5);
    ck_assert_int_eq(d->nparams, 5);
    ck_assert_str_eq(d->params[0].name, "x");
    ck_assert_ptr_null(d->params[0].dflt);
    ck_assert_str_eq(d->params[2].name, "stride");
    ck_assert_int_eq(d->params[2].dflt->ival, 1);
    ck_assert_str_eq(d->params[2].dflt_text, "1");
    ck_assert_int_eq(d->params[3].dflt->kind, EX_REAL);
    ck_assert_str_eq(d->params[3].dflt_text, "0.5");
    ck_assert_int_eq(d->params[4].dflt->kind, EX_BOOL);
    ck_assert_int_eq(d->params[4].loc.col, 43);

    const ast_block *b = d->body;
    ck_assert_int_eq(b->nstmts, 4);
    ck_assert_int_eq(b->open_loc.line, 2);
    ck_assert_int_eq(b->close_loc.line, 13);
    ck_assert_int_eq(b->stmts[0].kind, ST_BIND);
    ck_assert_str_eq(b->stmts[0].op, "linear");

    const ast_stmt *iff = &b->stmts[1];
    ck_assert_int_eq(iff->kind, ST_IF);
    ck_assert_int_eq(iff->loc.line, 4);
    ck_assert_int_eq(iff->narms, 2);
    ck_assert_int_eq(iff->arms[0].loc.line, 4);
    const ast_expr *c = iff->arms[0].cond; /* (stride != 1) or (dim(x, -1) != planes) */
    ck_assert_int_eq(c->kind, EX_OR);
    ck_assert_int_eq(c->loc.col, 20);
    ck_assert_int_eq(c->lhs->kind, EX_CMP);
    ck_assert_int_eq(c->lhs->op, CMP_NE);
    ck_assert_str_eq(c->lhs->lhs->name, "stride");
    ck_assert_int_eq(c->rhs->kind, EX_CMP);
    ck_assert_int_eq(c->rhs->lhs->kind, EX_DIM);
    ck_assert_str_eq(c->rhs->lhs->lhs->name, "x");
    ck_assert_int_eq(c->rhs->lhs->rhs->kind, EX_NEG);
    ck_assert_int_eq(c->rhs->lhs->loc.col, 23);
    const ast_block *then = iff->arms[0].body;
    ck_assert_int_eq(then->nstmts, 2);
    ck_assert_str_eq(then->stmts[0].name, "downsample.0");
    ck_assert_int_eq(then->stmts[1].kind, ST_ALIAS);
    ck_assert_str_eq(then->stmts[1].name, "identity");
    ck_assert_str_eq(then->stmts[1].value->name, "downsample.0");
    /* else if: a second arm of the same statement; the final else on the next line */
    const ast_arm *elif = &iff->arms[1];
    ck_assert_int_eq(elif->cond->kind, EX_NOT);
    ck_assert_int_eq(elif->body->nstmts, 1);
    ck_assert_ptr_nonnull(iff->else_body);
    ck_assert_int_eq(iff->else_body->nstmts, 2); /* ';' separates statements */
    ck_assert_str_eq(iff->else_body->stmts[1].name, "extra");

    const ast_stmt *ret = &b->stmts[3];
    ck_assert_int_eq(ret->kind, ST_RETURN);
    ck_assert_str_eq(ret->op, "relu");
    ck_assert_int_eq(ret->nargs, 1);
    const ast_stmt *id = &a->stmts[2]; /* '{' on the line after the header */
    ck_assert_int_eq(id->kind, ST_DEF);
    ck_assert_int_eq(id->body->stmts[0].kind, ST_RETURN);
    ck_assert_ptr_null(id->body->stmts[0].op);
    ck_assert_str_eq(id->body->stmts[0].value->name, "x");

    const ast_stmt *call = &a->stmts[3];
    ck_assert_int_eq(call->kind, ST_BIND);
    ck_assert_str_eq(call->name, "layer1.0");
    ck_assert_str_eq(call->op, "block");
    ck_assert_str_eq(call->args[2].name, "stride");
    const ast_stmt *top_if = &a->stmts[4];
    ck_assert_int_eq(top_if->kind, ST_IF);
    ck_assert_int_eq(top_if->narms, 1);
    ck_assert_int_eq(top_if->arms[0].cond->op, CMP_GT);
    ck_assert_ptr_null(top_if->else_body);
    ck_assert_int_eq(top_if->arms[0].body->stmts[0].kind, ST_ALIAS);
    ck_assert_int_eq(a->stmts[5].kind, ST_BATCHNORM);
    ck_assert(a->stmts[5].bn_eval);
    ck_assert_int_eq(a->stmts[5].name_loc.col, 11);
    const ast_stmt *cfg = &a->stmts[6];
    ck_assert_int_eq(cfg->nitems, 2);
    ck_assert_int_eq(cfg->items[1].kind, CFG_BATCHNORM);
    ck_assert_str_eq(cfg->items[1].word, "train");
    ck_assert_int_eq(cfg->items[1].loc.col, 31);
    fx_close(&f);
}
END_TEST

START_TEST(condition_precedence) {
    fixture f;
    /* not binds tighter than and, and tighter than or; comparisons bind
     * looser than arithmetic */
    ast_file *a = parse(&f, "const A = not a == 1 and b < c + 1 or d >= -2\nconst B = (a or b) and c\n"
                            "const C = bias == x\nbatchnorm = relu(x)\n");
    ck_assert_msg(a != NULL, "%s", fx_text(&f));
    const ast_expr *e = a->stmts[0].value;
    ck_assert_int_eq(e->kind, EX_OR);
    ck_assert_int_eq(e->lhs->kind, EX_AND);
    ck_assert_int_eq(e->lhs->lhs->kind, EX_NOT);
    ck_assert_int_eq(e->lhs->lhs->lhs->kind, EX_CMP);
    ck_assert_int_eq(e->lhs->lhs->lhs->op, CMP_EQ);
    ck_assert_int_eq(e->lhs->rhs->op, CMP_LT);
    ck_assert_int_eq(e->lhs->rhs->rhs->kind, EX_BIN);
    ck_assert_int_eq(e->rhs->op, CMP_GE);
    ck_assert_int_eq(e->rhs->rhs->kind, EX_NEG);
    const ast_expr *p = a->stmts[1].value;
    ck_assert_int_eq(p->kind, EX_AND);
    ck_assert_int_eq(p->lhs->kind, EX_OR);
    ck_assert_int_eq(a->stmts[2].value->kind, EX_CMP); /* '==' is not a keyword argument's '=' */
    /* batchnorm is only a statement when a mode follows */
    ck_assert_int_eq(a->stmts[3].kind, ST_BIND);
    ck_assert_str_eq(a->stmts[3].name, "batchnorm");
    fx_close(&f);
}
END_TEST

START_TEST(block_errors) {
    check_error("def f(x) {\n    y = relu(x)\n}\n", "t.frost:3:1: error: def 'f' must end with 'return NAME' (or "
                                                    "'return op(...)')\n"
                                                    "    3 | }\n"
                                                    "      | ^\n");
    check_error("def f(x) {\n    return x\n    y = relu(x)\n    return y\n}\n",
                "t.frost:2:5: error: 'return' must be the last statement of def 'f'\n"
                "    2 |     return x\n"
                "      |     ^\n");
    check_error("def f(x) {\n    if true { return x }\n    return x\n}\n",
                "t.frost:2:15: error: 'return' inside 'if' is not supported; assign the result to a name in each "
                "branch and return that name after the 'if'\n"
                "    2 |     if true { return x }\n"
                "      |               ^\n");
    check_error("return x\n", "t.frost:1:1: error: 'return' outside of a def\n"
                              "    1 | return x\n"
                              "      | ^\n");
    check_error("else { }\n", "t.frost:1:1: error: 'else' without 'if'\n"
                              "    1 | else { }\n"
                              "      | ^\n");
    check_error("def f(x) {\n    def g(y) { return y }\n    return x\n}\n",
                "t.frost:2:5: error: 'def' is only allowed at the top level\n"
                "    2 |     def g(y) { return y }\n"
                "      |     ^\n");
    check_error("if a < b < c { }\n", "t.frost:1:10: error: comparisons cannot be chained; combine them with 'and'\n"
                                      "    1 | if a < b < c { }\n"
                                      "      |          ^\n");
    check_error("if a == 1\n", "t.frost:1:10: error: expected '{', got end of line\n"
                               "    1 | if a == 1\n"
                               "      |          ^\n");
    check_error("def f(x, 2) { return x }\n", "t.frost:1:10: error: expected a parameter name, got '2'\n"
                                              "    1 | def f(x, 2) { return x }\n"
                                              "      |          ^\n");
    check_error("def f.g(x) { return x }\n", "t.frost:1:5: error: a def name must be a plain identifier without "
                                             "dots, got 'f.g'\n"
                                             "    1 | def f.g(x) { return x }\n"
                                             "      |     ^\n");
    check_error("const D = dim(x)\n", "t.frost:1:16: error: expected ',' and a dimension index (dim(x, i) is the "
                                      "size of dimension i of x), got ')'\n"
                                      "    1 | const D = dim(x)\n"
                                      "      |                ^\n");
    check_error("batchnorm on\n", "t.frost:1:11: error: expected 'eval' or 'train' after 'batchnorm', got 'on'\n"
                                  "    1 | batchnorm on\n"
                                  "      |           ^\n");
    check_error("config c { batchnorm eval train }\n", "t.frost:1:27: error: expected ';', '}' or end of line after "
                                                       "'batchnorm eval', got 'train'\n"
                                                       "    1 | config c { batchnorm eval train }\n"
                                                       "      |                           ^\n");
    check_error("fc1 = linear\n", "t.frost:1:13: error: expected '(' after op name 'linear', got end of line\n"
                                  "    1 | fc1 = linear\n"
                                  "      |             ^\n");
}
END_TEST

START_TEST(block_recovery) {
    fixture f;
    /* one message per bad statement of a block, the rest of the file goes on;
     * an unclosed block is reported once, at its owner */
    ck_assert_ptr_null(parse(&f, "model m\n"
                                 "def f(x) {\n"
                                 "    a = = 2\n"
                                 "    if x = 1 {\n"
                                 "        b = relu(x)\n"
                                 "    }\n"
                                 "    c = relu(x) d\n"
                                 "    return c\n"
                                 "}\n"
                                 "y = = 3\n"
                                 "def g(x) {\n"
                                 "    if true {\n"
                                 "        h = relu(x)\n"));
    ck_assert_int_eq(f.d.errors, 5);
    const char *t = fx_text(&f);
    ck_assert_ptr_nonnull(strstr(t, "t.frost:3:9: error: expected an op name, got '='\n"));
    ck_assert_ptr_nonnull(strstr(t, "t.frost:4:10: error: expected '{', got '='\n"));
    ck_assert_ptr_nonnull(strstr(t, "t.frost:7:17: error: expected end of line after the call, got 'd'\n"));
    ck_assert_ptr_nonnull(strstr(t, "t.frost:10:5: error: expected an op name, got '='\n"));
    ck_assert_ptr_nonnull(strstr(t, "t.frost:12:5: error: 'if' is not closed with '}'\n"));
    fx_close(&f);
}
END_TEST

START_TEST(trailing_junk) {
    check_error("model m extra\n", "t.frost:1:9: error: expected end of line after the model name, got 'extra'\n"
                                   "    1 | model m extra\n"
                                   "      |         ^\n");
}
END_TEST

START_TEST(config_errors) {
    check_error("config c { train }\n", "t.frost:1:18: error: expected a pattern after 'train'\n"
                                        "    1 | config c { train }\n"
                                        "      |                  ^\n");
    check_error("config c { trian * }\n", "t.frost:1:12: error: expected 'train', 'freeze', 'grad', 'batchnorm', "
                                          "'lora' or '}', got 'trian'\n"
                                          "    1 | config c { trian * }\n"
                                          "      |            ^\n");
}
END_TEST

START_TEST(recovers_per_statement) {
    fixture f;
    /* three bad statements, three messages; the config body is skipped as a
     * whole; after "relu(" the next line continues the call */
    ck_assert_ptr_null(parse(&f, "model m\nx = = 3\nconfig c {\n  trian *\n  train x\n}\ny = relu(\nconst = 2\n"));
    ck_assert_int_eq(f.d.errors, 3);
    const char *t = fx_text(&f);
    ck_assert_ptr_nonnull(strstr(t, "t.frost:2:5: error: expected an op name, got '='\n"));
    ck_assert_ptr_nonnull(
        strstr(t, "t.frost:4:3: error: expected 'train', 'freeze', 'grad', 'batchnorm', 'lora' or '}', got 'trian'\n"));
    ck_assert_ptr_nonnull(strstr(t, "t.frost:8:10: error: expected ',' or ')', got end of line\n"));
    fx_close(&f);
}
END_TEST

START_TEST(empty_input_parses_to_nothing) {
    fixture f;
    ast_file *a = parse(&f, "# just a comment\n\n");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->nstmts, 0);
    fx_close(&f);
}
END_TEST

/* before, n copies of rep, after (malloc'd) */
static char *repeat(const char *before, const char *rep, int n, const char *after) {
    size_t len = strlen(before) + strlen(rep) * (size_t)n + strlen(after) + 1;
    char *s = malloc(len), *q = s;
    q = stpcpy(q, before);
    for (int k = 0; k < n; k++)
        q = stpcpy(q, rep);
    strcpy(q, after);
    return s;
}

/* Past a nesting limit: one located error, then parsing goes on. */
START_TEST(nesting_limits) {
    fixture f;
    char *parens = repeat("model m\nconst A = ", "(", 1001, "1\nconst B = (1\n");
    ck_assert_ptr_null(parse(&f, parens));
    ck_assert_int_eq(f.d.errors, 2);
    ck_assert_ptr_nonnull(strstr(fx_text(&f), "t.frost:2:1011: error: expression nested more than 1000 deep"));
    ck_assert_ptr_nonnull(strstr(fx_text(&f), "t.frost:3:13: error: expected ')'")); /* the next statement */
    fx_close(&f);
    free(parens);

    char *ifs = repeat("model m\n", "if true {\n", 257, "a = x\n");
    char *src = repeat(ifs, "}\n", 257, "b = relu(x\n");
    ck_assert_ptr_null(parse(&f, src));
    ck_assert_int_eq(f.d.errors, 2);
    ck_assert(strstr(fx_text(&f), "t.frost:258:9: error: blocks nested more than 256 deep\n") == fx_text(&f));
    ck_assert_ptr_nonnull(strstr(fx_text(&f), "t.frost:517:11: error: expected"));
    fx_close(&f);
    free(ifs);
    free(src);

    /* 1000 levels and 256 blocks are fine */
    parens = repeat("model m\nconst A = ", "-(", 500, "1");
    src = repeat(parens, ")", 500, "\n");
    ck_assert_msg(parse(&f, src) != NULL, "%s", fx_text(&f));
    fx_close(&f);
    free(parens);
    free(src);
    ifs = repeat("model m\n", "if true {\n", 256, "");
    src = repeat(ifs, "}\n", 256, "");
    ck_assert_msg(parse(&f, src) != NULL, "%s", fx_text(&f));
    fx_close(&f);
    free(ifs);
    free(src);
}
END_TEST

/* A chain of else-ifs is one statement with an arm each, not nested ifs. */
START_TEST(long_else_if_chain) {
    fixture f;
    char *chain = repeat("model m\nif false { a = x }", " else if false { a = x }", 5000, " else { a = y }\n");
    ast_file *a = parse(&f, chain);
    ck_assert_msg(a != NULL, "%s", fx_text(&f));
    ck_assert_int_eq(a->nstmts, 2);
    const ast_stmt *iff = &a->stmts[1];
    ck_assert_int_eq(iff->narms, 5001);
    ck_assert_int_eq(iff->arms[5000].loc.col, 18 + 4999 * 24 + 7); /* its "if" */
    ck_assert_str_eq(iff->else_body->stmts[0].value->name, "y");
    fx_close(&f);
    free(chain);
}
END_TEST

int main(void) {
    Suite *s = suite_create("parse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, whole_model);
    tcase_add_test(tc, expression_precedence);
    tcase_add_test(tc, lists_reals_and_dotted_names);
    tcase_add_test(tc, param_statement);
    tcase_add_test(tc, lora_items);
    tcase_add_test(tc, nested_call);
    tcase_add_test(tc, missing_paren_stops_at_end_of_line);
    tcase_add_test(tc, missing_equals);
    tcase_add_test(tc, keyword_as_name);
    tcase_add_test(tc, defs_and_blocks);
    tcase_add_test(tc, condition_precedence);
    tcase_add_test(tc, block_errors);
    tcase_add_test(tc, block_recovery);
    tcase_add_test(tc, trailing_junk);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, recovers_per_statement);
    tcase_add_test(tc, empty_input_parses_to_nothing);
    tcase_add_test(tc, nesting_limits);
    tcase_add_test(tc, long_else_if_chain);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
