/* elab.c: syntax tree -> ir_graph.
 *
 * Statements are elaborated in file order, which makes the node list a
 * topological order: a binding may only use names defined above it. Consts
 * are evaluated as they come (-D overrides replace their value); inputs become
 * VAL_INPUT values; each binding is matched against its op's signature in
 * ops.c, its shape rule run, and its output value created under the binding's
 * name. Errors never stop elaboration, but a name whose definition failed is
 * "poisoned": uses of it fail silently, so one mistake gives one message.
 */
#include "ast.h"

#include <string.h>

typedef enum { SYM_CONST, SYM_VALUE, SYM_POISON } sym_kind;

typedef struct {
    const char *name;
    sym_kind kind;
    int64_t value; /* SYM_CONST: the value; SYM_VALUE: the value id */
    src_loc loc;
} sym;

struct elab_ctx {
    pool *pool;
    diag_ctx *d;
    ir_graph *g;
    const ast_file *file;
    int stmt;      /* index of the statement being elaborated */
    sym *syms;
    int nsyms, capsyms;
};

ir_graph *elab_graph(elab_ctx *e) { return e->g; }

void elab_error(elab_ctx *e, src_loc at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(e->d, "error", at, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- names */

static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(b);
    if (strlen(a) > 64 || n > 64)
        return 99;
    int row[65];
    for (size_t j = 0; j <= n; j++)
        row[j] = (int)j;
    for (size_t i = 1; a[i - 1]; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= n; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            if (up + 1 < best)
                best = up + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[n];
}

/* "; did you mean 'x'?" for the closest candidate within 2 edits, else "".
 * Edits must leave something in common: 'b' does not suggest 'a'. */
static const char *suggest(elab_ctx *e, const char *name, const char **cands, int n) {
    const char *best = NULL;
    int bestd = 3;
    for (int k = 0; k < n; k++) {
        int dist = edit_distance(name, cands[k]);
        size_t longer = strlen(name) > strlen(cands[k]) ? strlen(name) : strlen(cands[k]);
        if (dist < bestd && (size_t)dist < longer) {
            best = cands[k];
            bestd = dist;
        }
    }
    return best ? pool_printf(e->pool, "; did you mean '%s'?", best) : "";
}

static sym *find_sym(elab_ctx *e, const char *name) {
    for (int k = 0; k < e->nsyms; k++)
        if (strcmp(e->syms[k].name, name) == 0)
            return &e->syms[k];
    return NULL;
}

static void add_sym(elab_ctx *e, const char *name, sym_kind kind, int64_t value, src_loc loc) {
    *VEC_PUSH(e->pool, e->syms, e->nsyms, e->capsyms) = (sym){name, kind, value, loc};
}

/* A new definition of `name` must not clash with anything defined before,
 * params ("fc1.weight") included. */
static bool check_new_name(elab_ctx *e, const char *name, src_loc at) {
    sym *s = find_sym(e, name);
    int v = ir_find_value(e->g, name);
    if (!s && v < 0)
        return true;
    diag_error(e->d, at, "redefinition of '%s'", name);
    diag_note(e->d, s ? s->loc : e->g->vals[v].loc, "previous definition of '%s' is here", name);
    return false;
}

/* Look a name up; NULL after reporting why it is not there (nothing is
 * reported for a poisoned name: its definition already had an error). */
static sym *lookup(elab_ctx *e, const char *name, src_loc at) {
    sym *s = find_sym(e, name);
    if (s)
        return s->kind == SYM_POISON ? NULL : s;
    int v = ir_find_value(e->g, name);
    if (v >= 0) { /* a param, e.g. fc1.weight */
        add_sym(e, name, SYM_VALUE, v, e->g->vals[v].loc);
        return &e->syms[e->nsyms - 1];
    }
    const ast_file *f = e->file;
    for (int k = e->stmt; k < f->nstmts; k++) {
        const ast_stmt *st = &f->stmts[k];
        if ((st->kind == ST_CONST || st->kind == ST_INPUT || st->kind == ST_BIND) && strcmp(st->name, name) == 0) {
            diag_error(e->d, at, "'%s' is used before its definition", name);
            diag_note(e->d, st->name_loc, "'%s' is defined here", name);
            return NULL;
        }
    }
    const char **cands = pool_alloc(e->pool, sizeof *cands * (size_t)(e->nsyms + 1));
    for (int k = 0; k < e->nsyms; k++)
        cands[k] = e->syms[k].name;
    diag_error(e->d, at, "undefined name '%s'%s", name, suggest(e, name, cands, e->nsyms));
    return NULL;
}

/* ---------------------------------------------------------------- constants */

static const char *expr_kind_text(const ast_expr *x) {
    switch (x->kind) {
    case EX_REAL: return "a real number";
    case EX_BOOL: return x->ival ? "'true'" : "'false'";
    case EX_LIST: return "a list";
    default: return "an integer";
    }
}

/* Evaluate an integer constant expression. `what` names the thing being
 * computed for messages ("dimension 1 of input 'x'"). */
static bool eval_int(elab_ctx *e, const ast_expr *x, const char *what, int64_t *out) {
    int64_t a, b;
    switch (x->kind) {
    case EX_INT:
        *out = x->ival;
        return true;
    case EX_REAL:
    case EX_BOOL:
    case EX_LIST:
        diag_error(e->d, x->loc, "%s must be an integer, got %s", what, expr_kind_text(x));
        return false;
    case EX_NAME: {
        sym *s = lookup(e, x->name, x->loc);
        if (!s)
            return false;
        if (s->kind != SYM_CONST) {
            diag_error(e->d, x->loc, "%s must be an integer, but '%s' is a tensor", what, x->name);
            return false;
        }
        *out = s->value;
        return true;
    }
    case EX_NEG:
        if (!eval_int(e, x->lhs, what, &a))
            return false;
        if (a == INT64_MIN) {
            diag_error(e->d, x->loc, "integer overflow in constant expression");
            return false;
        }
        *out = -a;
        return true;
    case EX_BIN: {
        bool ok = eval_int(e, x->lhs, what, &a);
        ok &= eval_int(e, x->rhs, what, &b);
        if (!ok)
            return false;
        bool overflow = false;
        switch (x->op) {
        case '+': overflow = __builtin_add_overflow(a, b, out); break;
        case '-': overflow = __builtin_sub_overflow(a, b, out); break;
        case '*': overflow = __builtin_mul_overflow(a, b, out); break;
        case '/':
        case '%':
            if (b == 0) {
                diag_error(e->d, x->loc, "division by zero in constant expression");
                return false;
            }
            overflow = a == INT64_MIN && b == -1;
            if (!overflow)
                *out = x->op == '/' ? a / b : a % b;
            break;
        default: IR_ASSERT(!"unknown operator");
        }
        if (overflow) {
            diag_error(e->d, x->loc, "integer overflow in constant expression (%lld %c %lld)", (long long)a, x->op,
                       (long long)b);
            return false;
        }
        return true;
    }
    }
    IR_ASSERT(!"unknown expression");
    return false;
}

static void elab_const(elab_ctx *e, const ast_stmt *st, const frost_define *defs, int ndefs) {
    if (!check_new_name(e, st->name, st->name_loc))
        return;
    int64_t v = 0;
    bool ok = true;
    const frost_define *def = NULL;
    for (int k = 0; k < ndefs; k++)
        if (strcmp(defs[k].name, st->name) == 0)
            def = &defs[k]; /* the last -D wins */
    if (def)
        v = def->value;
    else
        ok = eval_int(e, st->value, pool_printf(e->pool, "constant '%s'", st->name), &v);
    add_sym(e, st->name, ok ? SYM_CONST : SYM_POISON, v, st->name_loc);
}

/* ---------------------------------------------------------------- inputs */

static void elab_input(elab_ctx *e, const ast_stmt *st) {
    if (!check_new_name(e, st->name, st->name_loc))
        return;
    bool ok = true;
    ir_dtype dt = DT_F32;
    if (strcmp(st->dtype, "f32") == 0) {
        dt = DT_F32;
    } else if (strcmp(st->dtype, "i32") == 0) {
        dt = DT_I32;
    } else {
        const char *known[] = {"f32", "i32"};
        diag_error(e->d, st->dtype_loc, "unknown dtype '%s' (expected f32 or i32)%s", st->dtype,
                   suggest(e, st->dtype, known, 2));
        ok = false;
    }
    ir_shape shape = {0};
    if (st->ndims > IR_MAX_RANK) {
        diag_error(e->d, st->dims[IR_MAX_RANK]->loc, "input '%s' has %d dimensions; at most %d are supported",
                   st->name, st->ndims, IR_MAX_RANK);
        ok = false;
    }
    for (int k = 0; k < st->ndims && k < IR_MAX_RANK; k++) {
        int64_t v;
        const char *what = pool_printf(e->pool, "dimension %d of input '%s'", k + 1, st->name);
        if (!eval_int(e, st->dims[k], what, &v)) {
            ok = false;
            continue;
        }
        if (v <= 0) {
            diag_error(e->d, st->dims[k]->loc, "%s is %lld; dimensions must be positive", what, (long long)v);
            ok = false;
            continue;
        }
        shape.dim[shape.rank++] = v;
        if (ok && shape_bytes(&shape, dt) < 0) {
            diag_error(e->d, st->dims[k]->loc, "input '%s' is too large: %s%s%s does not fit in 2^63 bytes", st->name,
                       dtype_name(dt), shape_str(e->pool, &shape), k + 1 < st->ndims ? " (and more)" : "");
            ok = false;
        }
    }
    if (!ok) {
        add_sym(e, st->name, SYM_POISON, 0, st->name_loc);
        return;
    }
    int v = ir_add_value(e->g, st->name, VAL_INPUT, dt, shape, st->name_loc);
    e->g->vals[v].wants_grad = st->grad;
    add_sym(e, st->name, SYM_VALUE, v, st->name_loc);
}

/* ---------------------------------------------------------------- bindings */

/* "linear(x, out_features, bias=true)" */
static const char *signature(elab_ctx *e, const op_def *op) {
    char buf[512];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s(", op->name);
    for (int k = 0; k < op->nargs && n < sizeof buf; k++) {
        const op_arg *a = &op->args[k];
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", k ? ", " : "", a->name);
        if (n >= sizeof buf)
            break;
        if (a->kind == ARG_INTS)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "...");
        else if (a->has_default && a->kind == ARG_BOOL)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "=%s", a->default_value ? "true" : "false");
        else if (a->has_default)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "=%g", a->default_value);
    }
    if (n < sizeof buf)
        snprintf(buf + n, sizeof buf - n, ")");
    return pool_strdup(e->pool, buf);
}

static bool eval_tensor(elab_ctx *e, const ast_expr *x, const char *what, int *out) {
    if (x->kind != EX_NAME) {
        diag_error(e->d, x->loc, "%s must be a tensor name, got %s", what,
                   x->kind == EX_NEG || x->kind == EX_BIN ? "an expression" : expr_kind_text(x));
        return false;
    }
    sym *s = lookup(e, x->name, x->loc);
    if (!s)
        return false;
    if (s->kind != SYM_VALUE) {
        diag_error(e->d, x->loc, "%s must be a tensor, but '%s' is an integer constant", what, x->name);
        return false;
    }
    *out = (int)s->value;
    return true;
}

static bool eval_bool(elab_ctx *e, const ast_expr *x, const char *what, int64_t *out) {
    if (x->kind == EX_BOOL) {
        *out = x->ival;
        return true;
    }
    if (x->kind == EX_REAL || x->kind == EX_LIST) {
        diag_error(e->d, x->loc, "%s must be true or false, got %s", what, expr_kind_text(x));
        return false;
    }
    int64_t v;
    if (!eval_int(e, x, what, &v))
        return false;
    if (v != 0 && v != 1) {
        diag_error(e->d, x->loc, "%s must be true or false, got %lld", what, (long long)v);
        return false;
    }
    *out = v;
    return true;
}

static bool eval_real(elab_ctx *e, const ast_expr *x, const char *what, double *out) {
    if (x->kind == EX_REAL) {
        *out = x->rval;
        return true;
    }
    if (x->kind == EX_NEG && (x->lhs->kind == EX_REAL || x->lhs->kind == EX_NEG)) {
        if (!eval_real(e, x->lhs, what, out))
            return false;
        *out = -*out;
        return true;
    }
    if (x->kind == EX_BOOL || x->kind == EX_LIST) {
        diag_error(e->d, x->loc, "%s must be a number, got %s", what, expr_kind_text(x));
        return false;
    }
    int64_t v;
    if (!eval_int(e, x, what, &v))
        return false;
    *out = (double)v;
    return true;
}

/* Match the call's arguments to the op's signature and fill n->in (tensors)
 * and n->attr / n->fattr (the rest, by position among non-tensor args). */
static bool match_args(elab_ctx *e, const ast_stmt *st, const op_def *op, ir_node *n) {
    const ast_arg *slot[OP_MAX_ARGS] = {0};
    const ast_expr *ints[IR_MAX_ATTR + 1];
    int nints = 0;
    bool ok = true, saw_keyword = false, ints_too_many = false;
    int pos = 0;
    for (int k = 0; k < st->nargs; k++) {
        const ast_arg *a = &st->args[k];
        if (!a->name) {
            if (saw_keyword) {
                diag_error(e->d, a->loc, "positional argument after keyword argument");
                ok = false;
                continue;
            }
            if (pos < op->nargs && op->args[pos].kind == ARG_INTS) {
                if (a->value->kind == EX_LIST && nints == 0) {
                    for (int i = 0; i < a->value->nitems; i++)
                        if (nints < IR_MAX_ATTR + 1)
                            ints[nints++] = a->value->items[i];
                    slot[pos++] = a; /* a list takes the whole argument */
                } else if (nints < IR_MAX_ATTR + 1) {
                    ints[nints++] = a->value;
                    slot[pos] = slot[pos] ? slot[pos] : a;
                }
                continue;
            }
            if (pos >= op->nargs) {
                diag_error(e->d, a->loc, "too many arguments to %s", signature(e, op));
                return false;
            }
            slot[pos++] = a;
            continue;
        }
        saw_keyword = true;
        int which = -1;
        const char *names[OP_MAX_ARGS];
        for (int i = 0; i < op->nargs; i++) {
            names[i] = op->args[i].name;
            if (strcmp(op->args[i].name, a->name) == 0)
                which = i;
        }
        if (which < 0) {
            diag_error(e->d, a->loc, "unknown keyword argument '%s' of %s%s", a->name, signature(e, op),
                       suggest(e, a->name, names, op->nargs));
            ok = false;
        } else if (slot[which] || (op->args[which].kind == ARG_INTS && nints > 0)) {
            diag_error(e->d, a->loc, "argument '%s' of %s is given twice", a->name, op->name);
            if (slot[which])
                diag_note(e->d, slot[which]->loc, "first given here");
            ok = false;
        } else {
            slot[which] = a;
            if (op->args[which].kind == ARG_INTS) {
                if (a->value->kind == EX_LIST)
                    for (int i = 0; i < a->value->nitems && nints < IR_MAX_ATTR + 1; i++)
                        ints[nints++] = a->value->items[i];
                else
                    ints[nints++] = a->value;
            }
        }
    }
    int nt = 0, na = 0;
    for (int k = 0; k < op->nargs; k++) {
        const op_arg *arg = &op->args[k];
        const ast_arg *a = slot[k];
        const char *what = pool_printf(e->pool, "argument '%s' of %s", arg->name, op->name);
        if (!a && !arg->has_default && arg->kind != ARG_INTS) {
            diag_error(e->d, st->op_loc, "missing argument '%s' of %s", arg->name, signature(e, op));
            ok = false;
            continue;
        }
        int64_t iv;
        switch (arg->kind) {
        case ARG_TENSOR: {
            int v = -1;
            IR_ASSERT(nt < IR_MAX_IN);
            ok &= eval_tensor(e, a->value, what, &v);
            n->in[nt++] = v;
            break;
        }
        case ARG_INT:
            iv = (int64_t)arg->default_value;
            if (a)
                ok &= eval_int(e, a->value, what, &iv);
            n->attr[na++] = iv;
            break;
        case ARG_BOOL:
            iv = arg->default_value != 0;
            if (a)
                ok &= eval_bool(e, a->value, what, &iv);
            n->attr[na++] = iv;
            break;
        case ARG_FLOAT:
            n->fattr[na] = arg->default_value;
            if (a)
                ok &= eval_real(e, a->value, what, &n->fattr[na]);
            na++;
            break;
        case ARG_INTS:
            for (int i = 0; i < nints; i++) {
                if (na + i >= IR_MAX_ATTR) {
                    diag_error(e->d, ints[i]->loc, "too many values for %s (at most %d)", what, IR_MAX_ATTR - na);
                    ints_too_many = true;
                    break;
                }
                ok &= eval_int(e, ints[i], what, &n->attr[na + i]);
            }
            na += ints_too_many ? 0 : nints;
            ok &= !ints_too_many;
            break;
        }
    }
    n->nin = nt;
    n->nattr = na;
    return ok;
}

static void elab_bind(elab_ctx *e, const ast_stmt *st) {
    ir_graph *g = e->g;
    if (!check_new_name(e, st->name, st->name_loc))
        return;
    const op_def *op = op_find(st->op);
    if (!op) {
        const char **names = pool_alloc(e->pool, sizeof *names * (size_t)op_count);
        for (int k = 0; k < op_count; k++)
            names[k] = op_table[k].name;
        diag_error(e->d, st->op_loc, "unknown op '%s'%s", st->op, suggest(e, st->op, names, op_count));
        add_sym(e, st->name, SYM_POISON, 0, st->name_loc);
        return;
    }
    ir_node n = {0};
    n.op = (int)(op - op_table);
    n.name = st->name;
    n.loc = st->op_loc;
    n.out = -1;
    ir_dtype dt = DT_F32;
    ir_shape shape = {0};
    int errors = e->d->errors;
    if (!match_args(e, st, op, &n) || e->d->errors > errors) {
        add_sym(e, st->name, SYM_POISON, 0, st->name_loc);
        return;
    }
    bool inferred = op->infer(e, &n, &dt, &shape);
    if (!inferred && e->d->errors == errors) /* a shape rule must say why */
        diag_error(e->d, st->op_loc, "%s: the shape check of '%s' failed", op->name, st->name);
    if (!inferred || e->d->errors > errors) {
        add_sym(e, st->name, SYM_POISON, 0, st->name_loc);
        return;
    }
    if (shape_bytes(&shape, dt) < 0) {
        diag_error(e->d, st->op_loc, "'%s' would be too large: %s%s does not fit in 2^63 bytes", st->name,
                   dtype_name(dt), shape_str(e->pool, &shape));
        add_sym(e, st->name, SYM_POISON, 0, st->name_loc);
        return;
    }
    n.out = ir_add_value(g, st->name, VAL_ACT, dt, shape, st->name_loc);
    g->vals[n.out].node = g->nnodes;
    *VEC_PUSH(g->pool, g->nodes, g->nnodes, g->capnodes) = n;
    add_sym(e, st->name, SYM_VALUE, n.out, st->name_loc);
}

int elab_add_param(elab_ctx *e, ir_node *n, const char *suffix, ir_val_kind kind, ir_shape shape, int init,
                   int64_t fan_in) {
    IR_ASSERT(n->nin < IR_MAX_IN);
    const char *name = pool_printf(e->pool, "%s.%s", n->name, suffix);
    check_new_name(e, name, n->loc);
    if (shape_bytes(&shape, DT_F32) < 0)
        diag_error(e->d, n->loc, "parameter '%s' would be too large: f32%s does not fit in 2^63 bytes", name,
                   shape_str(e->pool, &shape));
    int v = ir_add_value(e->g, name, kind, DT_F32, shape, n->loc);
    e->g->vals[v].init = init;
    e->g->vals[v].fan_in = fan_in;
    n->in[n->nin++] = v;
    return v;
}

/* ---------------------------------------------------------------- outputs, configs */

static void elab_output(elab_ctx *e, const ast_stmt *st) {
    ir_graph *g = e->g;
    for (int k = 0; k < st->nnames; k++) {
        sym *s = lookup(e, st->names[k], st->name_locs[k]);
        if (!s)
            continue;
        if (s->kind != SYM_VALUE) {
            diag_error(e->d, st->name_locs[k], "output '%s' must be a tensor, but it is an integer constant",
                       st->names[k]);
            continue;
        }
        int v = (int)s->value;
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_ACT) {
            diag_error(e->d, st->name_locs[k], "output '%s' is %s; outputs must be computed by a binding",
                       st->names[k], val->kind == VAL_INPUT ? "an input" : "a parameter");
            continue;
        }
        bool dup = false;
        for (int i = 0; i < g->noutputs; i++)
            dup |= g->outputs[i] == v;
        if (dup) {
            diag_error(e->d, st->name_locs[k], "'%s' is already an output", st->names[k]);
            continue;
        }
        if (g->noutputs == 0) {
            bool scalar = true;
            for (int i = 0; i < val->shape.rank; i++)
                scalar &= val->shape.dim[i] == 1;
            if (!scalar || val->dtype != DT_F32) {
                diag_error(e->d, st->name_locs[k],
                           "the first output is the loss and must be a scalar f32, but '%s' is %s%s", val->name,
                           dtype_name(val->dtype), shape_str(e->pool, &val->shape));
                continue;
            }
        }
        *VEC_PUSH(g->pool, g->outputs, g->noutputs, g->capoutputs) = v;
    }
}

static void elab_config(elab_ctx *e, const ast_stmt *st) {
    ir_graph *g = e->g;
    for (int k = 0; k < g->nconfigs; k++)
        if (strcmp(g->configs[k].name, st->name) == 0) {
            diag_error(e->d, st->name_loc, "redefinition of config '%s'", st->name);
            diag_note(e->d, g->configs[k].loc, "previous definition of '%s' is here", st->name);
            return;
        }
    ir_config c = {.name = st->name, .loc = st->name_loc};
    int ntrain = 0, nfreeze = 0, ngrad = 0;
    for (int k = 0; k < st->nitems; k++) {
        ast_cfg_kind kind = st->items[k].kind;
        ntrain += kind == CFG_TRAIN, nfreeze += kind == CFG_FREEZE, ngrad += kind == CFG_GRAD;
    }
    c.train = pool_alloc(e->pool, sizeof *c.train * (size_t)(ntrain + 1));
    c.train_loc = pool_alloc(e->pool, sizeof *c.train_loc * (size_t)(ntrain + 1));
    c.freeze = pool_alloc(e->pool, sizeof *c.freeze * (size_t)(nfreeze + 1));
    c.freeze_loc = pool_alloc(e->pool, sizeof *c.freeze_loc * (size_t)(nfreeze + 1));
    c.grad = pool_alloc(e->pool, sizeof *c.grad * (size_t)(ngrad + 1));
    c.grad_loc = pool_alloc(e->pool, sizeof *c.grad_loc * (size_t)(ngrad + 1));
    const ast_cfg_item *none = NULL;
    for (int k = 0; k < st->nitems; k++) {
        const ast_cfg_item *it = &st->items[k];
        switch (it->kind) {
        case CFG_TRAIN:
            if (strcmp(it->word, "none") == 0) {
                none = it;
                break;
            }
            c.train_loc[c.ntrain] = it->loc;
            c.train[c.ntrain++] = it->word;
            break;
        case CFG_FREEZE:
            c.freeze_loc[c.nfreeze] = it->loc;
            c.freeze[c.nfreeze++] = it->word;
            break;
        case CFG_GRAD:
            c.grad_loc[c.ngrad] = it->loc;
            c.grad[c.ngrad++] = it->word;
            break;
        }
    }
    if (none && c.ntrain > 0)
        diag_error(e->d, none->loc, "'train none' in config '%s' contradicts its other train patterns", st->name);
    *VEC_PUSH(g->pool, g->configs, g->nconfigs, g->capconfigs) = c;
}

static void elab_default(elab_ctx *e, const ast_stmt *st) {
    ir_graph *g = e->g;
    for (int k = 0; k < g->nconfigs; k++)
        if (strcmp(g->configs[k].name, st->name) == 0) {
            g->default_config = k;
            return;
        }
    const char **names = pool_alloc(e->pool, sizeof *names * (size_t)(g->nconfigs + 1));
    for (int k = 0; k < g->nconfigs; k++)
        names[k] = g->configs[k].name;
    diag_error(e->d, st->name_loc, "no config named '%s'%s", st->name, suggest(e, st->name, names, g->nconfigs));
}

/* ---------------------------------------------------------------- the file */

static void elab_file(elab_ctx *e, const frost_define *defs, int ndefs) {
    const ast_file *f = e->file;
    ir_graph *g = e->g;
    if (f->nstmts == 0) {
        /* no source line: at best it would show a comment */
        const char *src = e->d->src;
        e->d->src = NULL;
        diag_error(e->d, (src_loc){1, 1}, "empty model: expected 'model NAME'");
        e->d->src = src;
        return;
    }
    for (int k = 0; k < ndefs; k++) {
        bool found = false;
        for (int i = 0; i < f->nstmts; i++)
            found |= f->stmts[i].kind == ST_CONST && strcmp(f->stmts[i].name, defs[k].name) == 0;
        if (!found)
            diag_error(e->d, (src_loc){0, 0}, "-D %s: no such const in %s", defs[k].name, e->d->file);
    }
    if (f->stmts[0].kind != ST_MODEL)
        diag_error(e->d, f->stmts[0].loc, "expected 'model NAME' as the first statement");
    const ast_stmt *model = NULL, *dflt = NULL;
    for (e->stmt = 0; e->stmt < f->nstmts; e->stmt++) {
        const ast_stmt *st = &f->stmts[e->stmt];
        switch (st->kind) {
        case ST_MODEL:
            if (model) {
                diag_error(e->d, st->loc, "a file holds one model, but this is a second 'model' statement");
                diag_note(e->d, model->loc, "the model '%s' is declared here", model->name);
            } else {
                model = st;
                g->model = st->name;
            }
            break;
        case ST_CONST: elab_const(e, st, defs, ndefs); break;
        case ST_INPUT: elab_input(e, st); break;
        case ST_BIND: elab_bind(e, st); break;
        case ST_OUTPUT: elab_output(e, st); break;
        case ST_CONFIG: elab_config(e, st); break;
        case ST_DEFAULT:
            if (dflt) {
                diag_error(e->d, st->loc, "a second 'default' statement");
                diag_note(e->d, dflt->loc, "the first is here");
            } else {
                dflt = st;
            }
            break;
        }
    }
    if (dflt) /* configs may follow `default` */
        elab_default(e, dflt);
}

ir_graph *frontend_load(pool *p, diag_ctx *d, const frost_define *defs, int ndefs) {
    if (!d->src) {
        d->src = "";
        d->src_len = 0;
    }
    int errors = d->errors;
    int ntok;
    token *toks = lex_tokens(p, d, &ntok);
    if (!toks)
        return NULL;
    ast_file *f = parse_file(p, d, toks);
    if (!f)
        return NULL;
    elab_ctx *e = pool_alloc(p, sizeof *e);
    e->pool = p;
    e->d = d;
    e->g = ir_graph_new(p);
    e->file = f;
    elab_file(e, defs, ndefs);
    return d->errors > errors ? NULL : e->g;
}
