/* elab.c: syntax tree -> ir_graph.
 *
 * Statements are elaborated in file order, which makes the node list a
 * topological order: a binding may only use names defined above it. Consts
 * are evaluated as they come (-D overrides replace their value); inputs become
 * VAL_INPUT values; each binding is matched against its op's signature in
 * ops.c, its shape rule run, and its output value created under the binding's
 * name. Errors never stop elaboration, but a name whose definition failed is
 * "poisoned": uses of it fail silently, so one mistake gives one message.
 *
 * Defs are expanded at each call, like macros with their own scope. A call
 * `P = f(args)` evaluates the arguments in the caller's scope, then
 * elaborates f's body in a new frame whose names are "P.<name>" in the graph
 * (so `conv1 = conv2d(...)` inside makes node P.conv1 and param
 * P.conv1.weight, and a nested call `ds = g(...)` makes names P.ds.<name>).
 * A def body sees its parameters, its own earlier assignments and the
 * top-level consts, nothing else. `if` evaluates its condition at compile
 * time and elaborates one branch; names assigned in it stay visible after it.
 * An error inside a def is followed by notes naming the calls that led to it;
 * the same message at the same place is reported once, not once per call.
 *
 * Compile-time values are evaluated in eval.c; outputs, configs and the
 * optimizer are training.c's; elab.h holds what the three share.
 */
#include "elab.h"

#include <math.h>
#include <string.h>

/* What a shape rule in ops.c sees of elaboration (ir.h, the sc_* functions). */
struct shape_ctx {
    elab_ctx *e;
};

/* Limits on what a model may expand to (docs/language.md, Limits). Defs that
 * call each other twice each, 30 deep, would expand to 2^30 calls: the work
 * must end at a located error, not after hours. MAX_NODES bounds the graph
 * (100,000 nodes already take the passes after elaboration seconds and GBs);
 * MAX_EXPANSION bounds the work of the calls themselves, nodes or not: each
 * call costs its def's length in tokens, which bounds the work elaborating
 * it can do besides its own calls. */
enum { MAX_CALL_DEPTH = 64, MAX_NODES = 100000, MAX_EXPANSION = 4000000 };

/* ---------------------------------------------------------------- diagnostics */

/* Notes naming the calls that led to the last error, innermost first. */
static void flush_calls(elab_ctx *e) {
    frame *f = e->pending;
    e->pending = NULL;
    for (; f && f->def; f = f->parent)
        diag_note(e->d, f->call_loc, "in call of '%s' as '%s'", f->def->name, f->prefix);
}

void elab_verr(elab_ctx *e, src_loc at, const char *fmt, va_list ap) {
    flush_calls(e);
    e->errors++;
    e->quiet = false;
    if (e->fr->def) {
        /* a def called N times would otherwise say the same N times */
        va_list copy;
        va_copy(copy, ap);
        char buf[1024];
        vsnprintf(buf, sizeof buf, fmt, copy);
        va_end(copy);
        for (int k = 0; k < e->nseen; k++)
            if (e->seen[k].at.line == at.line && e->seen[k].at.col == at.col && strcmp(e->seen[k].msg, buf) == 0) {
                e->quiet = true;
                return;
            }
        *VEC_PUSH(e->pool, e->seen, e->nseen, e->capseen) = (seen_error){at, pool_strdup(e->pool, buf)};
    }
    diag_verror(e->d, "error", at, fmt, ap);
    e->pending = e->fr;
}

/* Inside a def, an error at a place where an earlier call of it failed
 * already: counted and quiet, like any repeat (verr), without the work of
 * explaining it again (scanning the body, ranking suggestions), which a def
 * called 100,000 times would otherwise do 100,000 times. The message is not
 * compared: it is the same name or callee at the same place. */
static bool repeated_at(elab_ctx *e, src_loc at) {
    if (!e->fr->def)
        return false;
    for (int k = 0; k < e->nseen; k++)
        if (e->seen[k].at.line == at.line && e->seen[k].at.col == at.col) {
            flush_calls(e);
            e->errors++;
            e->quiet = true;
            return true;
        }
    return false;
}

/* ---------------------------------------------------------------- names */

enum { SMALL_FRAME = 8 };

/* The first symbol of frame f named s[0..len), NULL if none. The pointer is
 * good until the next elab_add_sym. */
static sym *find_localn(elab_ctx *e, const frame *f, const char *s, size_t len) {
    if (f->nsyms == 0)
        return NULL; /* and e->syms may still be NULL, which takes no offset */
    sym *syms = e->syms + f->base;
    if (f->nsyms > SMALL_FRAME) {
        int k = map_findn(&f->sym_ids, s, len);
        return k < 0 ? NULL : &syms[k];
    }
    for (int k = 0; k < f->nsyms; k++)
        if (strncmp(syms[k].name, s, len) == 0 && syms[k].name[len] == '\0')
            return &syms[k];
    return NULL;
}

static sym *find_local(elab_ctx *e, const frame *f, const char *name) { return find_localn(e, f, name, strlen(name)); }

void elab_add_sym(elab_ctx *e, const char *name, bool poison, cval v, src_loc loc) {
    frame *f = e->fr;
    IR_ASSERT(f->base + f->nsyms == e->nsyms); /* the innermost frame */
    *VEC_PUSH(e->pool, e->syms, e->nsyms, e->capsyms) = (sym){name, poison, v, loc, NULL};
    f->nsyms++;
    if (f->nsyms == SMALL_FRAME + 1) {
        for (int k = 0; k < f->nsyms; k++)
            map_put(e->pool, &f->sym_ids, e->syms[f->base + k].name, k);
    } else if (f->nsyms > SMALL_FRAME + 1) {
        map_put(e->pool, &f->sym_ids, name, f->nsyms - 1);
    }
}

/* The graph name of a name made in the current scope. */
static const char *full_name(elab_ctx *e, const char *local) {
    return e->fr->prefix ? pool_printf(e->pool, "%s.%s", e->fr->prefix, local) : local;
}

static int find_def(const elab_ctx *e, const char *name) { return map_find(&e->def_ids, name); }

/* A new name `local` of the current scope (graph name `full`) must not clash
 * with a name of the scope nor with any value of the graph, params
 * ("fc1.weight") included. */
static bool check_new_full(elab_ctx *e, const char *local, const char *full, src_loc at) {
    size_t len = strlen(full);
    if (len > MAX_NAME) {
        err(e, at,
            "the name '%.20s...%s' is %zu characters long; a name has at most %d, the prefixes of def calls "
            "included",
            full, full + len - 20, len, MAX_NAME);
        return false;
    }
    sym *s = find_local(e, e->fr, local);
    int v = ir_find_value(e->g, full);
    if (!s && v < 0)
        return true;
    err(e, at, "redefinition of '%s'", s ? local : full);
    note(e, s ? s->loc : e->g->vals[v].loc, "previous definition of '%s' is here", s ? local : full);
    return false;
}

/* For a statement's name: when it clashes, its uses stay quiet. */
bool elab_check_new_name(elab_ctx *e, const char *local, src_loc at) {
    if (check_new_full(e, local, full_name(e, local), at))
        return true;
    if (!find_local(e, e->fr, local)) /* it clashed with a value made elsewhere */
        elab_add_sym(e, local, true, tensor_val(-1), at);
    return false;
}

static int loc_cmp(src_loc a, src_loc b) { return a.line != b.line ? a.line - b.line : a.col - b.col; }

/* The assignments of `name` in stmts (if branches included): the first one
 * at or after `from`, and the first one before it. */
static void scan_assignments(const ast_stmt *stmts, int n, const char *name, src_loc from, const ast_stmt **before,
                             const ast_stmt **after) {
    for (int k = 0; k < n; k++) {
        const ast_stmt *st = &stmts[k];
        if (st->kind == ST_IF) {
            for (int i = 0; i < st->narms; i++)
                scan_assignments(st->arms[i].body->stmts, st->arms[i].body->nstmts, name, from, before, after);
            if (st->else_body)
                scan_assignments(st->else_body->stmts, st->else_body->nstmts, name, from, before, after);
            continue;
        }
        bool assigns = st->kind == ST_CONST || st->kind == ST_INPUT || st->kind == ST_PARAM || st->kind == ST_BIND ||
                       st->kind == ST_ALIAS;
        bool named = assigns && strcmp(st->name, name) == 0;
        for (int i = 0; st->kind == ST_MULTI && i < st->nnames; i++)
            named |= strcmp(st->names[i], name) == 0;
        if (!named)
            continue;
        const ast_stmt **slot = loc_cmp(st->loc, from) >= 0 ? after : before;
        if (!*slot)
            *slot = st;
    }
}

/* `name` begins with "<local>." for a name `local` of frame f: a value made
 * under it, like conv1.weight or downsample.0.weight. */
static bool under_local(elab_ctx *e, const frame *f, const char *name) {
    for (const char *dot = strchr(name, '.'); dot; dot = strchr(dot + 1, '.'))
        if (find_localn(e, f, name, (size_t)(dot - name)))
            return true;
    return false;
}

/* What `name` means in the current scope, without reporting anything; NULL
 * if nothing. A poisoned symbol is returned as such. */
sym *elab_resolve(elab_ctx *e, const char *name) {
    frame *f = e->fr;
    sym *s = find_local(e, f, name);
    if (s)
        return s;
    if (!f->def || under_local(e, f, name)) {
        /* a value by its graph name: a param (fc1.weight) or one made by a call (b1.fc) */
        int v = ir_find_value(e->g, full_name(e, name));
        if (v >= 0) {
            e->scratch = (sym){name, false, tensor_val(v), e->g->vals[v].loc, NULL};
            return &e->scratch;
        }
    }
    if (f->def) {
        sym *c = find_local(e, &e->top, name);
        if (c && c->v.kind != CV_TENSOR) /* a top-level const (or a poisoned name) */
            return c;
    }
    return NULL;
}

/* Look a name up; NULL after reporting why it is not there (nothing is
 * reported for a poisoned name: its definition already had an error). */
sym *elab_lookup(elab_ctx *e, const char *name, src_loc at) {
    sym *s = elab_resolve(e, name);
    if (s)
        return s->poison ? NULL : s;
    if (repeated_at(e, at))
        return NULL;
    frame *f = e->fr;
    if (f->def) {
        bool elsewhere = find_local(e, &e->top, name) || ir_find_value(e->g, name) >= 0;
        for (frame *p = f->parent; p && !elsewhere; p = p->parent)
            elsewhere = find_local(e, p, name) != NULL;
        if (elsewhere) {
            err(e, at,
                "'%s' is not visible inside def '%s' (a def sees its parameters, its own names and the "
                "top-level consts); pass it as an argument",
                name, f->def->name);
            return NULL;
        }
    }
    const ast_stmt *stmts = f->def ? f->def->body->stmts : e->file->stmts;
    int n = f->def ? f->def->body->nstmts : e->file->nstmts;
    const ast_stmt *before = NULL, *after = NULL;
    scan_assignments(stmts, n, name, f->cur, &before, &after);
    if (after) {
        err(e, at, "'%s' is used before its definition", name);
        note(e, after->name_loc, "'%s' is defined here", name);
        return NULL;
    }
    if (before) {
        err(e, at, "'%s' is not defined here: it is assigned only in a branch of 'if' that was not taken", name);
        note(e, before->name_loc, "'%s' is assigned here", name);
        return NULL;
    }
    int ncands = 0;
    const char **cands = pool_alloc(e->pool, sizeof *cands * (size_t)(f->nsyms + e->top.nsyms + 1));
    for (int k = 0; k < f->nsyms; k++)
        cands[ncands++] = e->syms[f->base + k].name;
    for (int k = 0; f->def && k < e->top.nsyms; k++)
        if (e->syms[k].v.kind != CV_TENSOR)
            cands[ncands++] = e->syms[k].name;
    err(e, at, "undefined name '%s'%s", name, suggest(e, name, cands, ncands));
    return NULL;
}

/* ---------------------------------------------------------------- inputs */

/* The dtype and shape of an input's or a param's declaration (`kind`
 * names it in messages: "input", "parameter"); false after reporting. */
static bool decl_type(elab_ctx *e, const ast_stmt *st, const char *kind, ir_dtype *dt, ir_shape *shape) {
    bool ok = true, param = st->kind == ST_PARAM;
    *dt = DT_F32;
    if (strcmp(st->dtype, "f32") == 0) {
        *dt = DT_F32;
    } else if (strcmp(st->dtype, "i32") == 0 && !param) {
        *dt = DT_I32;
    } else if (param) {
        err(e, st->dtype_loc, "parameter '%s' must be f32, not '%s'", st->name, st->dtype);
        ok = false;
    } else {
        const char *known[] = {"f32", "i32"};
        err(e, st->dtype_loc, "unknown dtype '%s' (expected f32 or i32)%s", st->dtype, suggest(e, st->dtype, known, 2));
        ok = false;
    }
    *shape = (ir_shape){0};
    if (st->ndims > IR_MAX_RANK) {
        err(e, st->dims[IR_MAX_RANK]->loc, "%s '%s' has %d dimensions; at most %d are supported", kind, st->name,
            st->ndims, IR_MAX_RANK);
        ok = false;
    }
    for (int k = 0; k < st->ndims && k < IR_MAX_RANK; k++) {
        int64_t v;
        const char *what = pool_printf(e->pool, "dimension %d of %s '%s'", k, kind, st->name);
        if (!eval_int(e, st->dims[k], what, &v)) {
            ok = false;
            continue;
        }
        const char *from = eval_define_of(e, st->dims[k]);
        from = from ? pool_printf(e->pool, " (from %s)", from) : "";
        if (v <= 0) {
            err(e, st->dims[k]->loc, "%s is %lld%s; dimensions must be positive", what, (long long)v, from);
            ok = false;
            continue;
        }
        shape->dim[shape->rank++] = v;
        if (ok && shape_bytes(shape, *dt) < 0) {
            err(e, st->dims[k]->loc, "%s '%s' is too large: %s%s%s does not fit in 2^63 bytes%s", kind, st->name,
                dtype_name(*dt), shape_str(e->pool, shape), k + 1 < st->ndims ? " (and more)" : "", from);
            ok = false;
        }
    }
    return ok;
}

static void elab_input(elab_ctx *e, const ast_stmt *st) {
    if (!elab_check_new_name(e, st->name, st->name_loc))
        return;
    ir_dtype dt;
    ir_shape shape;
    bool ok = decl_type(e, st, "input", &dt, &shape);
    if (ok && st->grad && dt != DT_F32) {
        err(e, st->name_loc, "input '%s' is %s: only f32 inputs have gradients ('grad')", st->name, dtype_name(dt));
        ok = false;
    }
    if (!ok) {
        elab_add_sym(e, st->name, true, tensor_val(-1), st->name_loc);
        return;
    }
    int v = ir_add_value(e->g, st->name, VAL_INPUT, dt, shape, st->name_loc);
    e->g->vals[v].wants_grad = st->grad;
    elab_add_sym(e, st->name, false, tensor_val(v), st->name_loc);
}

/* param NAME : f32[dims] init=zeros | ones | normal(std): a parameter no op
 * owns (ViT's cls_token, pos_embed), named as written; zeros without init. */
static void elab_param(elab_ctx *e, const ast_stmt *st) {
    if (!elab_check_new_name(e, st->name, st->name_loc))
        return;
    ir_dtype dt;
    ir_shape shape;
    bool ok = decl_type(e, st, "parameter", &dt, &shape);
    int init = INIT_ZEROS;
    double std = 0;
    const char *inits[] = {"zeros", "ones", "normal"};
    if (!st->op || strcmp(st->op, "zeros") == 0 || strcmp(st->op, "ones") == 0) {
        init = st->op && strcmp(st->op, "ones") == 0 ? INIT_ONES : INIT_ZEROS;
        if (st->value) {
            err(e, st->value->loc, "init=%s takes no argument (only normal(std) does)", st->op);
            ok = false;
        }
    } else if (strcmp(st->op, "normal") == 0) {
        init = INIT_NORMAL;
        if (!st->value) {
            err(e, st->op_loc, "init=normal needs its standard deviation: normal(std)");
            ok = false;
        } else if (!eval_real(e, st->value, "the standard deviation of init=normal", &std)) {
            ok = false;
        } else if (!(std > 0) || !isfinite(std)) {
            err(e, st->value->loc, "the standard deviation of init=normal must be positive, got %g", std);
            ok = false;
        }
    } else {
        err(e, st->op_loc, "unknown init '%s' (expected zeros, ones or normal(std))%s", st->op,
            suggest(e, st->op, inits, 3));
        ok = false;
    }
    if (!ok) {
        elab_add_sym(e, st->name, true, tensor_val(-1), st->name_loc);
        return;
    }
    int v = ir_add_value(e->g, st->name, VAL_PARAM, dt, shape, st->name_loc);
    e->g->vals[v].init = init;
    e->g->vals[v].init_std = std;
    elab_add_sym(e, st->name, false, tensor_val(v), st->name_loc);
}

/* ---------------------------------------------------------------- arguments of calls */

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
        else if (a->kind == ARG_TENSORS)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "=[...]");
        else if (a->has_default && a->kind == ARG_BOOL)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "=%s", a->default_value ? "true" : "false");
        else if (a->has_default)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "=%g", a->default_value);
    }
    if (n < sizeof buf)
        snprintf(buf + n, sizeof buf - n, ")");
    return pool_strdup(e->pool, buf);
}

/* "basic_block(x, planes, stride=1)" */
static const char *def_signature(elab_ctx *e, const ast_stmt *def) {
    enum { SHOWN = 16 }; /* parameters listed; the rest are counted */
    int shown = def->nparams < SHOWN ? def->nparams : SHOWN;
    size_t size = strlen(def->name) + 40;
    for (int k = 0; k < shown; k++)
        size += strlen(def->params[k].name) + (def->params[k].dflt ? strlen(def->params[k].dflt_text) + 1 : 0) + 2;
    char *s = pool_alloc(e->pool, size);
    size_t n = (size_t)snprintf(s, size, "%s(", def->name);
    for (int k = 0; k < shown; k++) {
        const ast_param *p = &def->params[k];
        n += (size_t)snprintf(s + n, size - n, "%s%s%s%s", k ? ", " : "", p->name, p->dflt ? "=" : "",
                              p->dflt ? p->dflt_text : "");
    }
    if (shown < def->nparams)
        n += (size_t)snprintf(s + n, size - n, ", ... %d more", def->nparams - shown);
    snprintf(s + n, size - n, ")");
    return s;
}

/* The formal parameters a call's arguments are matched against: an op's
 * arguments (op_def.args) or a def's parameters (ast_stmt.params). */
typedef struct {
    const op_def *op;    /* the op whose arguments they are, or NULL: */
    const ast_stmt *def; /* the def whose parameters they are */
    const str_map *ids;  /* the def's parameters by name (e->def_params) */
    int n;
} formals;

static formals op_formals(const op_def *op) { return (formals){.op = op, .n = op->nargs}; }

static formals def_formals(elab_ctx *e, int di) {
    return (formals){.def = e->defs[di], .ids = &e->def_params[di], .n = e->defs[di]->nparams};
}

static const char *callee_name(const formals *f) { return f->op ? f->op->name : f->def->name; }

static const char *formal_name(const formals *f, int k) { return f->op ? f->op->args[k].name : f->def->params[k].name; }

/* An op's ints argument takes one list, or the positional arguments from
 * its place on. */
static bool formal_ints(const formals *f, int k) { return f->op && f->op->args[k].kind == ARG_INTS; }

/* It may be left out: it has a default, or it is an ints argument (which
 * may be empty). */
static bool formal_optional(const formals *f, int k) {
    return f->op ? f->op->args[k].has_default || f->op->args[k].kind == ARG_INTS : f->def->params[k].dflt != NULL;
}

static int formal_index(const formals *f, const char *name) {
    if (!f->op)
        return map_find(f->ids, name);
    int which = -1;
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->op->args[i].name, name) == 0)
            which = i;
    return which;
}

static const char *formals_signature(elab_ctx *e, const formals *f) {
    return f->op ? signature(e, f->op) : def_signature(e, f->def);
}

/* "argument 'x' of linear", what the value of formal k is called in messages */
static const char *formal_what(elab_ctx *e, const formals *f, int k) {
    return pool_printf(e->pool, "argument '%s' of %s", formal_name(f, k), callee_name(f));
}

/* The integers of an ints argument: a list literal, a name holding a list
 * (a def's parameter), or one integer expression. */
static void collect_ints(elab_ctx *e, const ast_expr *x, const ast_expr **ints, int *nints) {
    const sym *s = x->kind == EX_NAME ? elab_resolve(e, x->name) : NULL;
    if (x->kind == EX_LIST) {
        for (int i = 0; i < x->nitems && *nints < IR_MAX_ATTR + 1; i++)
            ints[(*nints)++] = x->items[i];
    } else if (s && !s->poison && s->v.kind == CV_LIST) {
        for (int i = 0; i < s->v.nitems && *nints < IR_MAX_ATTR + 1; i++) {
            ast_expr *item = pool_alloc(e->pool, sizeof *item);
            *item = (ast_expr){.kind = EX_INT, .loc = x->loc, .ival = s->v.items[i]};
            ints[(*nints)++] = item;
        }
    } else if (*nints < IR_MAX_ATTR + 1) {
        ints[(*nints)++] = x;
    }
}

static bool is_list_arg(elab_ctx *e, const ast_expr *x) {
    if (x->kind == EX_LIST)
        return true;
    const sym *s = x->kind == EX_NAME ? elab_resolve(e, x->name) : NULL;
    return s && !s->poison && s->v.kind == CV_LIST;
}

/* The integers given to an op's ints argument; one more than an op can
 * take, for "too many values". */
typedef struct {
    const ast_expr *items[IR_MAX_ATTR + 1];
    int n;
} ints_args;

/* Match a call's arguments to formals f, by the rules that ops and defs
 * share: positional arguments first, in order, then keyword arguments, no
 * formal given twice. slot[k] (zeroed by the caller) is set to the argument
 * given for formal k; an op's ints argument gathers its integers in *ints
 * (NULL for a def). False after "too many arguments", when there is nothing
 * more to check; after any other error *ok is cleared, and the arguments
 * given are still to be evaluated, for their own errors. */
static bool match_args(elab_ctx *e, const ast_stmt *st, const formals *f, const ast_arg **slot, ints_args *ints,
                       bool *ok) {
    bool saw_keyword = false;
    int pos = 0;
    for (int k = 0; k < st->nargs && !halted(e); k++) {
        const ast_arg *a = &st->args[k];
        if (!a->name) {
            if (saw_keyword) {
                err(e, a->loc, "positional argument after keyword argument");
                *ok = false;
                continue;
            }
            if (pos < f->n && formal_ints(f, pos)) {
                if (is_list_arg(e, a->value) && ints->n == 0) {
                    collect_ints(e, a->value, ints->items, &ints->n);
                    slot[pos++] = a; /* a list takes the whole argument */
                } else if (ints->n < IR_MAX_ATTR + 1) {
                    ints->items[ints->n++] = a->value; /* a list here is reported as not an integer */
                    slot[pos] = slot[pos] ? slot[pos] : a;
                }
                continue;
            }
            if (pos >= f->n) {
                err(e, a->loc, "too many arguments to %s", formals_signature(e, f));
                return false;
            }
            slot[pos++] = a;
            continue;
        }
        saw_keyword = true;
        int which = formal_index(f, a->name);
        if (which < 0) {
            const char **names = pool_alloc(e->pool, sizeof *names * (size_t)(f->n + 1));
            for (int i = 0; i < f->n; i++)
                names[i] = formal_name(f, i);
            err(e, a->loc, "unknown keyword argument '%s' of %s%s", a->name, formals_signature(e, f),
                suggest(e, a->name, names, f->n));
            *ok = false;
        } else if (slot[which] || (formal_ints(f, which) && ints->n > 0)) {
            err(e, a->loc, "argument '%s' of %s is given twice", a->name, callee_name(f));
            if (slot[which])
                note(e, slot[which]->loc, "first given here");
            *ok = false;
        } else {
            slot[which] = a;
            if (formal_ints(f, which))
                collect_ints(e, a->value, ints->items, &ints->n);
        }
    }
    return true;
}

/* Formal k, when the call gives it no argument, must be optional: false
 * after reporting it missing. */
static bool check_given(elab_ctx *e, const ast_stmt *st, const formals *f, const ast_arg *const *slot, int k) {
    if (slot[k] || formal_optional(f, k))
        return true;
    err(e, st->op_loc, "missing argument '%s' of %s", formal_name(f, k), formals_signature(e, f));
    return false;
}

/* ---------------------------------------------------------------- calls of ops */

/* Match the call's arguments to the op's signature and fill n->in (tensors)
 * and n->attr / n->fattr (the rest, by position among non-tensor args). */
static bool node_args(elab_ctx *e, const ast_stmt *st, const op_def *op, ir_node *n) {
    const ast_arg *slot[OP_MAX_ARGS] = {0};
    ints_args ints = {.n = 0};
    bool ok = true, ints_too_many = false;
    formals f = op_formals(op);
    if (!match_args(e, st, &f, slot, &ints, &ok))
        return false;
    int nt = 0, na = 0;
    for (int k = 0; k < op->nargs; k++) {
        const op_arg *arg = &op->args[k];
        const ast_arg *a = slot[k];
        const char *what = formal_what(e, &f, k);
        if (!check_given(e, st, &f, slot, k)) {
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
        case ARG_TENSORS: {
            IR_ASSERT(nt == 0); /* the op's only tensor argument */
            const ast_expr *list = a->value;
            if (list->kind != EX_LIST || list->nitems == 0) {
                err(e, list->loc, "%s must be a list of one or more tensors [a, b, ...]%s", what,
                    list->kind == EX_LIST ? ", not an empty list" : "");
                ok = false;
                break;
            }
            if (list->nitems > IR_MAX_IN) {
                err(e, list->items[IR_MAX_IN]->loc, "%s takes at most %d tensors, got %d", what, IR_MAX_IN,
                    list->nitems);
                ok = false;
                break;
            }
            for (int i = 0; i < list->nitems; i++) {
                int v = -1;
                ok &= eval_tensor(e, list->items[i], what, &v);
                n->in[nt++] = v;
            }
            break;
        }
        case ARG_INTS:
            for (int i = 0; i < ints.n; i++) {
                if (na + i >= IR_MAX_ATTR) {
                    err(e, ints.items[i]->loc, "too many values for %s (at most %d)", what, IR_MAX_ATTR - na);
                    ints_too_many = true;
                    break;
                }
                ok &= eval_int(e, ints.items[i], what, &n->attr[na + i]);
            }
            na += ints_too_many ? 0 : ints.n;
            ok &= !ints_too_many;
            break;
        }
    }
    n->nin = nt;
    n->nattr = na;
    return ok;
}

/* Apply op to st's arguments; the output value is named `full`. Its id, or
 * -1 after an error. */
static int add_node(elab_ctx *e, ir_node *node, const char *full, src_loc name_loc);

static int apply_op(elab_ctx *e, const ast_stmt *st, const op_def *op, const char *full, src_loc name_loc) {
    ir_node n = {0};
    n.op = (int)(op - op_table);
    n.name = full;
    n.loc = st->op_loc;
    n.call = e->fr->prefix;
    n.out = -1;
    int errors = e->errors;
    if (!node_args(e, st, op, &n) || e->errors > errors)
        return -1;
    return add_node(e, &n, full, name_loc);
}

/* Run n's shape rule (its inputs and attributes set) and add it to the
 * graph, its output named `full`: the output's id, or -1 after an error. */
static int add_node(elab_ctx *e, ir_node *node, const char *full, src_loc name_loc) {
    ir_graph *g = e->g;
    ir_node n = *node;
    const op_def *op = &op_table[n.op];
    ir_dtype dt = DT_F32;
    ir_shape shape = {0};
    int errors = e->errors;
    if (g->nnodes >= MAX_NODES) {
        err(e, n.loc, "the model is too large: more than %d nodes (ops applied, calls of defs included)", MAX_NODES);
        e->halt = true;
        return -1;
    }
    shape_ctx sc = {e};
    bool inferred = op->infer(&sc, &n, &dt, &shape);
    if (!inferred && e->errors == errors) /* a shape rule must say why */
        err(e, n.loc, "%s: the shape check of '%s' failed", op->name, full);
    if (!inferred || e->errors > errors)
        return -1;
    if (shape_bytes(&shape, dt) < 0) {
        err(e, n.loc, "'%s' would be too large: %s%s does not fit in 2^63 bytes", full, dtype_name(dt),
            shape_str(e->pool, &shape));
        return -1;
    }
    n.out = ir_add_value(g, full, VAL_ACT, dt, shape, name_loc);
    g->vals[n.out].node = g->nnodes;
    *VEC_PUSH(g->pool, g->nodes, g->nnodes, g->capnodes) = n;
    return n.out;
}

/* ---------------------------------------------------------------- the shape rules' interface (ir.h) */

const ir_graph *sc_graph(shape_ctx *sc) { return sc->e->g; }

const ir_value *sc_in(shape_ctx *sc, const ir_node *n, int i) { return &sc->e->g->vals[n->in[i]]; }

void sc_error(shape_ctx *sc, src_loc at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    elab_verr(sc->e, at, fmt, ap);
    va_end(ap);
}

/* A param or buffer "<node name>.<suffix>" owned by n. */
static int add_owned(elab_ctx *e, ir_node *n, const char *suffix, ir_val_kind kind, ir_dtype dt, ir_shape shape,
                     int init, int64_t fan_in) {
    IR_ASSERT(n->nin < IR_MAX_IN);
    const char *name = pool_printf(e->pool, "%s.%s", n->name, suffix);
    /* its name in the current scope, for clashes with the scope's own names */
    const char *prefix = e->fr->prefix;
    size_t plen = prefix ? strlen(prefix) : 0;
    const char *local = prefix && strncmp(name, prefix, plen) == 0 && name[plen] == '.' ? name + plen + 1 : name;
    check_new_full(e, local, name, n->loc);
    if (shape_bytes(&shape, dt) < 0)
        err(e, n->loc, "parameter '%s' would be too large: %s%s does not fit in 2^63 bytes", name, dtype_name(dt),
            shape_str(e->pool, &shape));
    int v = ir_add_value(e->g, name, kind, dt, shape, n->loc);
    e->g->vals[v].init = init;
    e->g->vals[v].fan_in = fan_in;
    n->in[n->nin++] = v;
    return v;
}

int sc_param(shape_ctx *sc, ir_node *n, const char *suffix, ir_dtype dt, ir_shape shape, int init, int64_t fan_in) {
    return add_owned(sc->e, n, suffix, VAL_PARAM, dt, shape, init, fan_in);
}

void sc_param_std(shape_ctx *sc, int v, double std) {
    IR_ASSERT(v >= 0 && v < sc->e->g->nvals && sc->e->g->vals[v].init == INIT_NORMAL);
    sc->e->g->vals[v].init_std = std;
}

int sc_buffer(shape_ctx *sc, ir_node *n, const char *suffix, ir_dtype dt, ir_shape shape, int init, bool persistent) {
    int v = add_owned(sc->e, n, suffix, VAL_BUFFER, dt, shape, init, 0);
    sc->e->g->vals[v].nonpersistent = !persistent;
    return v;
}

/* ---------------------------------------------------------------- calls of defs */

static void elab_stmts(elab_ctx *e, const ast_stmt *stmts, int n);
static int apply(elab_ctx *e, const ast_stmt *st, const char *full, src_loc name_loc);

/* Every name assigned in a block (and the blocks in it) becomes poisoned,
 * unless it already has a meaning: the block's condition failed, so its
 * names must not give "undefined" messages of their own. */
static void poison_block(elab_ctx *e, const ast_block *b) {
    for (int k = 0; b && k < b->nstmts; k++) {
        const ast_stmt *st = &b->stmts[k];
        if (st->kind == ST_IF) {
            for (int i = 0; i < st->narms; i++)
                poison_block(e, st->arms[i].body);
            poison_block(e, st->else_body);
        } else if ((st->kind == ST_BIND || st->kind == ST_ALIAS) && !find_local(e, e->fr, st->name)) {
            elab_add_sym(e, st->name, true, tensor_val(-1), st->name_loc);
        } else if (st->kind == ST_MULTI) {
            for (int i = 0; i < st->nnames; i++)
                if (!find_local(e, e->fr, st->names[i]))
                    elab_add_sym(e, st->names[i], true, tensor_val(-1), st->name_locs[i]);
        }
    }
}

/* Expand def number di for the call st, its names under `full`. The
 * returned value's id, or -1 after an error (in the call or in the body). */
static int elab_call(elab_ctx *e, const ast_stmt *st, int di, const char *full) {
    const ast_stmt *def = e->defs[di];
    if (e->def_bad[di])
        return -1; /* reported at the def */
    if (e->fr->depth >= MAX_CALL_DEPTH) {
        err(e, st->op_loc, "calls of defs are nested more than %d deep", MAX_CALL_DEPTH);
        return -1;
    }
    e->expanded += def->ntokens;
    if (e->expanded > MAX_EXPANSION) {
        err(e, st->op_loc, "the model is too large: its calls of defs expand to more than %d tokens of def bodies",
            MAX_EXPANSION);
        e->halt = true;
        return -1;
    }
    int np = def->nparams;
    const ast_arg **slot = pool_alloc(e->pool, sizeof *slot * (size_t)(np + 1));
    cval *vals = pool_alloc(e->pool, sizeof *vals * (size_t)(np + 1));
    bool ok = true;
    formals fs = def_formals(e, di);
    if (!match_args(e, st, &fs, slot, NULL, &ok))
        return -1;
    for (int k = 0; k < np && !halted(e); k++) {
        if (!check_given(e, st, &fs, slot, k))
            ok = false;
        else if (slot[k])
            ok &= eval_value(e, slot[k]->value, formal_what(e, &fs, k), &vals[k]);
    }
    if (!ok || halted(e))
        return -1;

    frame f = {.parent = e->fr,
               .def = def,
               .prefix = full,
               .call_loc = st->op_loc,
               .depth = e->fr->depth + 1,
               .base = e->nsyms};
    e->fr = &f;
    int errors = e->errors;
    /* defaults are evaluated in the def's scope before its parameters exist:
     * they may use top-level consts only */
    for (int k = 0; k < np; k++)
        if (!slot[k] &&
            !eval_value(e, def->params[k].dflt,
                        pool_printf(e->pool, "the default of parameter '%s' of %s", def->params[k].name, def->name),
                        &vals[k]))
            vals[k] = (cval){.kind = CV_TENSOR, .i = -1};
    for (int k = 0; k < np; k++)
        elab_add_sym(e, def->params[k].name, vals[k].kind == CV_TENSOR && vals[k].i < 0, vals[k], def->params[k].loc);
    const ast_block *body = def->body;
    elab_stmts(e, body->stmts, body->nstmts - 1);
    const ast_stmt *ret = &body->stmts[body->nstmts - 1]; /* parse.c made sure */
    IR_ASSERT(ret->kind == ST_RETURN);
    f.cur = ret->loc;
    int result = -1;
    if (ret->op) {
        /* `return op(...)`: its value takes the call's own name */
        result = apply(e, ret, full, ret->op_loc);
    } else {
        sym *s = elab_lookup(e, ret->value->name, ret->value->loc);
        if (s && s->v.kind == CV_TENSOR)
            result = (int)s->v.i;
        else if (s)
            err(e, ret->value->loc, "def '%s' must return a tensor, but '%s' is %s", def->name, ret->value->name,
                eval_sym_text(s));
    }
    flush_calls(e);
    e->fr = f.parent;
    e->nsyms = f.base;
    return e->errors > errors ? -1 : result;
}

static int apply_callee(elab_ctx *e, const ast_stmt *st, const char *full, src_loc name_loc);

/* Apply st's callee, an op or a def, naming the result `full`; calls nested
 * in its arguments are named after it. */
static int apply(elab_ctx *e, const ast_stmt *st, const char *full, src_loc name_loc) {
    const char *outer = e->binding;
    e->binding = full;
    int v = apply_callee(e, st, full, name_loc);
    e->binding = outer;
    return v;
}

bool elab_nested_call(elab_ctx *e, const ast_expr *x, int64_t *out) {
    const char *base = e->binding ? pool_printf(e->pool, "%s.%s", e->binding, x->name) : x->name;
    const char *full = base;
    for (int k = 2; ir_find_value(e->g, full) >= 0; k++)
        full = pool_printf(e->pool, "%s_%d", base, k);
    int v = apply(e, x->call, full, x->loc);
    *out = v;
    return v >= 0;
}

static int apply_callee(elab_ctx *e, const ast_stmt *st, const char *full, src_loc name_loc) {
    int di = find_def(e, st->op);
    if (di >= 0)
        return elab_call(e, st, di, full);
    const op_def *op = op_find(st->op);
    if (op)
        return apply_op(e, st, op, full, name_loc);
    if (repeated_at(e, st->op_loc))
        return -1;
    int n = 0;
    const char **names = pool_alloc(e->pool, sizeof *names * (size_t)(op_count + e->ndefs));
    for (int k = 0; k < op_count; k++)
        names[n++] = op_table[k].name;
    for (int k = 0; k < e->ndefs; k++)
        names[n++] = e->defs[k]->name;
    err(e, st->op_loc, "unknown %s '%s'%s", e->ndefs ? "op or def" : "op", st->op, suggest(e, st->op, names, n));
    return -1;
}

/* ---------------------------------------------------------------- statements of any scope */

static void elab_bind(elab_ctx *e, const ast_stmt *st) {
    if (!elab_check_new_name(e, st->name, st->name_loc))
        return;
    int v = apply(e, st, full_name(e, st->name), st->name_loc);
    elab_add_sym(e, st->name, v < 0, tensor_val(v), st->name_loc);
}

/* q, k, v = chunk(x, 3, dim=-1) and a, b = split(x, [s0, s1]): one slice
 * node per name (ops.c's slice), of `dim` (split: the last dim) into equal
 * parts or into the given sizes. Signatures for the argument matcher, like
 * ops': */
static const op_def chunk_signature = {
    .name = "chunk",
    .args = {{"x", ARG_TENSOR, false, 0}, {"chunks", ARG_INT, false, 0}, {"dim", ARG_INT, true, -1}},
    .nargs = 3};
static const op_def split_signature = {
    .name = "split", .args = {{"x", ARG_TENSOR, false, 0}, {"sizes", ARG_INTS, false, 0}}, .nargs = 2};

/* The values of st's names into v[] (-1 each after an error). */
static void multi_pieces(elab_ctx *e, const ast_stmt *st, const op_def *sig, int *v) {
    ir_node args = {0};
    args.name = st->names[0];
    args.loc = st->op_loc;
    int errors = e->errors;
    if (!node_args(e, st, sig, &args) || e->errors > errors)
        return;
    const ir_value *x = &e->g->vals[args.in[0]];
    int rank = x->shape.rank, n = st->nnames;
    bool chunk = sig == &chunk_signature;
    int64_t dim = chunk ? args.attr[1] : -1;
    if (dim < 0)
        dim += rank;
    if (dim < 0 || dim >= rank) {
        err(e, st->op_loc, "%s: dim %lld is out of range for '%s' of shape %s", sig->name,
            (long long)(chunk ? args.attr[1] : -1), x->name, shape_str(e->pool, &x->shape));
        return;
    }
    int64_t size = x->shape.dim[dim], sizes[IR_MAX_ATTR];
    if (n > IR_MAX_ATTR) {
        err(e, st->name_locs[IR_MAX_ATTR], "%s gives at most %d results, but %d names are given", sig->name,
            IR_MAX_ATTR, n);
        return;
    }
    int64_t parts = chunk ? args.attr[0] : args.nattr;
    if (parts != n) {
        err(e, st->op_loc, "%s gives %lld results here, but %d names are given", sig->name, (long long)parts, n);
        return;
    }
    int64_t total = 0;
    for (int k = 0; k < n; k++) {
        sizes[k] = chunk ? size / n : args.attr[k];
        if (sizes[k] <= 0) {
            err(e, st->op_loc, "split: size %d is %lld; sizes must be positive", k, (long long)sizes[k]);
            return;
        }
        total += sizes[k];
    }
    if (total != size) {
        if (chunk)
            err(e, st->op_loc, "chunk: dim %lld of '%s' %s (size %lld) does not divide into %d equal parts",
                (long long)dim, x->name, shape_str(e->pool, &x->shape), (long long)size, n);
        else
            err(e, st->op_loc, "split: the sizes add up to %lld, but the last dim of '%s' %s is %lld", (long long)total,
                x->name, shape_str(e->pool, &x->shape), (long long)size);
        return;
    }
    int64_t start = 0;
    const int slice_op = (int)(op_find("slice") - op_table);
    for (int k = 0; k < n; k++) {
        ir_node piece = {0};
        piece.op = slice_op;
        piece.name = full_name(e, st->names[k]);
        piece.loc = st->op_loc;
        piece.call = e->fr->prefix;
        piece.out = -1;
        piece.in[0] = args.in[0];
        piece.nin = 1;
        piece.attr[0] = dim, piece.attr[1] = start, piece.attr[2] = start + sizes[k];
        piece.nattr = 3;
        v[k] = add_node(e, &piece, piece.name, st->name_locs[k]);
        start += sizes[k];
    }
}

static void elab_multi(elab_ctx *e, const ast_stmt *st) {
    int n = st->nnames;
    bool *fresh = pool_alloc(e->pool, sizeof *fresh * (size_t)n);
    int *v = pool_alloc(e->pool, sizeof *v * (size_t)n);
    bool all_fresh = true;
    for (int k = 0; k < n; k++) {
        v[k] = -1;
        fresh[k] = true;
        for (int i = 0; i < k && fresh[k]; i++)
            if (strcmp(st->names[i], st->names[k]) == 0) {
                err(e, st->name_locs[k], "'%s' is named twice in this statement", st->names[k]);
                fresh[k] = false;
            }
        fresh[k] = fresh[k] && elab_check_new_name(e, st->names[k], st->name_locs[k]);
        all_fresh &= fresh[k];
    }
    const op_def *sig = strcmp(st->op, "chunk") == 0   ? &chunk_signature
                        : strcmp(st->op, "split") == 0 ? &split_signature
                                                       : NULL;
    if (!sig)
        err(e, st->op_loc, "'%s' gives one result; only chunk and split give several (NAME, NAME, ... = chunk(x, n))",
            st->op);
    else if (all_fresh) {
        const char *outer = e->binding;
        e->binding = full_name(e, st->names[0]); /* calls nested in the arguments are named after the first */
        multi_pieces(e, st, sig, v);
        e->binding = outer;
    }
    for (int k = 0; k < n; k++)
        if (fresh[k])
            elab_add_sym(e, st->names[k], v[k] < 0, tensor_val(v[k]), st->name_locs[k]);
}

/* h = other: h names what other names (a tensor or a compile-time value) */
static void elab_alias(elab_ctx *e, const ast_stmt *st) {
    if (!elab_check_new_name(e, st->name, st->name_loc))
        return;
    const char *target = st->value->name;
    sym *s = NULL;
    if (!elab_resolve(e, target) && find_def(e, target) >= 0)
        err(e, st->value->loc, "'%s' is a def; call it: %s = %s(...)", target, st->name, target);
    else
        s = elab_lookup(e, target, st->value->loc);
    elab_add_sym(e, st->name, !s, s ? s->v : tensor_val(-1), st->name_loc);
}

/* The branch an if takes: its first arm whose condition holds, else its
 * else block (NULL when there is none). A condition that fails poisons what
 * the arms from there on and the else assign, and nothing is taken. */
static const ast_block *elab_if(elab_ctx *e, const ast_stmt *st) {
    const ast_block *taken = st->else_body;
    for (int k = 0; k < st->narms; k++) {
        e->fr->cur = st->arms[k].loc;
        bool c;
        if (!eval_cond(e, st->arms[k].cond, "the condition of 'if'", &c)) {
            for (; k < st->narms; k++)
                poison_block(e, st->arms[k].body);
            poison_block(e, st->else_body);
            taken = NULL;
            break;
        }
        if (c) {
            taken = st->arms[k].body;
            break;
        }
    }
    flush_calls(e);
    return taken;
}

/* Statements stmts[0..n) of a scope (bindings, aliases, ifs), with the
 * branches of its ifs taken in place. The branches being walked are kept
 * on e->open, not on the C stack: that grows only with the calls of defs
 * (MAX_CALL_DEPTH), whatever the ifs' nesting. */
static void elab_stmts(elab_ctx *e, const ast_stmt *stmts, int n) {
    int base = e->nopen;
    *VEC_PUSH(e->pool, e->open, e->nopen, e->capopen) = (open_block){stmts, n, 0};
    while (e->nopen > base && !halted(e)) {
        open_block *top = &e->open[e->nopen - 1]; /* moves when a call below pushes more */
        if (top->next == top->n) {
            e->nopen--;
            continue;
        }
        const ast_stmt *st = &top->stmts[top->next++];
        e->fr->cur = st->loc;
        const ast_block *b = NULL;
        switch (st->kind) {
        case ST_BIND: elab_bind(e, st); break;
        case ST_MULTI: elab_multi(e, st); break;
        case ST_ALIAS: elab_alias(e, st); break;
        case ST_IF: b = elab_if(e, st); break;
        default: IR_ASSERT(!"statement not allowed in a block");
        }
        flush_calls(e);
        if (b)
            *VEC_PUSH(e->pool, e->open, e->nopen, e->capopen) = (open_block){b->stmts, b->nstmts, 0};
    }
    e->nopen = base;
}

/* ---------------------------------------------------------------- defs */

/* The calls in x (nested calls in arguments, which may nest again). The
 * parser bounds expressions' depth (MAX_EXPR_DEPTH), so this recursion is
 * bounded too. */
static void collect_expr_calls(const ast_expr *x, const ast_stmt ***calls, int *n, int *cap, pool *p) {
    if (!x)
        return;
    if (x->kind == EX_CALL) {
        *VEC_PUSH(p, *calls, *n, *cap) = x->call;
        for (int a = 0; a < x->call->nargs; a++)
            collect_expr_calls(x->call->args[a].value, calls, n, cap, p);
        return;
    }
    collect_expr_calls(x->lhs, calls, n, cap, p);
    collect_expr_calls(x->rhs, calls, n, cap, p);
    for (int k = 0; k < x->nitems; k++)
        collect_expr_calls(x->items[k], calls, n, cap, p);
}

static void collect_calls(const ast_block *b, const ast_stmt ***calls, int *n, int *cap, pool *p) {
    for (int k = 0; b && k < b->nstmts; k++) {
        const ast_stmt *st = &b->stmts[k];
        if (st->kind == ST_IF) {
            for (int i = 0; i < st->narms; i++)
                collect_calls(st->arms[i].body, calls, n, cap, p);
            collect_calls(st->else_body, calls, n, cap, p);
        } else if (st->op) {
            *VEC_PUSH(p, *calls, *n, *cap) = st;
            for (int a = 0; a < st->nargs; a++)
                collect_expr_calls(st->args[a].value, calls, n, cap, p);
        }
    }
}

/* "a -> b -> c -> a" for the cycle stack[from..depth] closed by a call back
 * to stack[from]; a long cycle shows its ends only. */
static const char *cycle_text(elab_ctx *e, const int *stack, int from, int depth) {
    enum { ENDS = 3 };
    int len = depth - from + 1;
    size_t size = 64;
    for (int i = from; i <= depth; i++)
        if (len <= 2 * ENDS + 2 || i < from + ENDS || i > depth - ENDS)
            size += strlen(e->defs[stack[i]]->name) + 4;
    char *text = pool_alloc(e->pool, size + strlen(e->defs[stack[from]]->name));
    size_t n = 0;
    for (int i = from; i <= depth; i++) {
        if (len > 2 * ENDS + 2 && i == from + ENDS) {
            n += (size_t)snprintf(text + n, size - n, "... %d more -> ", len - 2 * ENDS);
            i = depth - ENDS + 1;
        }
        n += (size_t)snprintf(text + n, size - n, "%s -> ", e->defs[stack[i]]->name);
    }
    strcpy(text + n, e->defs[stack[from]]->name);
    return text;
}

/* Depth-first search over "def calls def" (all branches): a call back into
 * a def on the stack closes a cycle, whose defs are marked bad. The stack is
 * explicit: a chain of 100,000 defs must not recurse 100,000 deep. */
static void find_recursion(elab_ctx *e) {
    int n = e->ndefs;
    int *state = pool_alloc(e->pool, sizeof *state * (size_t)(n + 1)); /* 0 new, 1 on the stack, 2 done */
    int *pos = pool_alloc(e->pool, sizeof *pos * (size_t)(n + 1));     /* on the stack: its index there */
    int *stack = pool_alloc(e->pool, sizeof *stack * (size_t)(n + 1));
    int *next = pool_alloc(e->pool, sizeof *next * (size_t)(n + 1)); /* per stack entry: next call */
    const ast_stmt ***calls = pool_alloc(e->pool, sizeof *calls * (size_t)(n + 1));
    int *ncalls = pool_alloc(e->pool, sizeof *ncalls * (size_t)(n + 1));
    for (int d = 0; d < n; d++) {
        int cap = 0;
        collect_calls(e->defs[d]->body, &calls[d], &ncalls[d], &cap, e->pool);
    }
    for (int root = 0; root < n && !halted(e); root++) {
        if (state[root])
            continue;
        int depth = 0;
        stack[0] = root, next[0] = 0, pos[root] = 0, state[root] = 1;
        while (depth >= 0 && !halted(e)) {
            int d = stack[depth];
            if (next[depth] == ncalls[d]) {
                state[d] = 2;
                depth--;
                continue;
            }
            const ast_stmt *call = calls[d][next[depth]++];
            int c = find_def(e, call->op);
            if (c < 0 || state[c] == 2)
                continue;
            if (state[c] == 0) {
                depth++;
                stack[depth] = c, next[depth] = 0, pos[c] = depth, state[c] = 1;
                continue;
            }
            for (int i = pos[c]; i <= depth; i++)
                e->def_bad[stack[i]] = true;
            err(e, call->op_loc,
                "recursive call of '%s' (%s); a def cannot call itself, directly or through other "
                "defs",
                e->defs[c]->name, cycle_text(e, stack, pos[c], depth));
        }
    }
}

/* Gather the defs: one per name, not the name of an op, sound parameters,
 * no recursion. */
static void collect_defs(elab_ctx *e) {
    const ast_file *f = e->file;
    for (int k = 0; k < f->nstmts && !halted(e); k++) {
        const ast_stmt *st = &f->stmts[k];
        if (st->kind != ST_DEF)
            continue;
        int prev = find_def(e, st->name);
        if (prev >= 0) {
            err(e, st->name_loc, "redefinition of def '%s'", st->name);
            note(e, e->defs[prev]->name_loc, "previous definition of '%s' is here", st->name);
            continue;
        }
        if (op_find(st->name)) {
            err(e, st->name_loc, "a def cannot be named '%s': that is an op", st->name);
            continue;
        }
        bool bad = false;
        const ast_param *dflt = NULL;
        str_map params = {0};
        for (int i = 0; i < st->nparams; i++) {
            const ast_param *p = &st->params[i];
            if (!map_put(e->pool, &params, p->name, i)) {
                err(e, p->loc, "duplicate parameter '%s' of def '%s'", p->name, st->name);
                note(e, st->params[map_find(&params, p->name)].loc, "first declared here");
                bad = true;
            }
            if (p->dflt)
                dflt = p;
            else if (dflt) {
                err(e, p->loc, "parameter '%s' of def '%s' needs a default: it follows '%s', which has one", p->name,
                    st->name, dflt->name);
                bad = true;
            }
        }
        int n = e->ndefs, m = e->ndefs;
        map_put(e->pool, &e->def_ids, st->name, e->ndefs);
        *VEC_PUSH(e->pool, e->def_bad, n, e->capbad) = bad;
        *VEC_PUSH(e->pool, e->def_params, m, e->capparams) = params;
        *VEC_PUSH(e->pool, e->defs, e->ndefs, e->capdefs) = st;
    }
    find_recursion(e);
}

/* ---------------------------------------------------------------- the file */

/* A statement a file may hold once: the first one is remembered in *first
 * (true is returned), a later one is an error pointing back at it. */
static bool once(elab_ctx *e, const ast_stmt *st, const ast_stmt **first, const char *keyword) {
    if (*first) {
        err(e, st->loc, "a second '%s' statement", keyword);
        note(e, (*first)->loc, "the first is here");
        return false;
    }
    *first = st;
    return true;
}

static void elab_file(elab_ctx *e, const frost_define *defs, int ndefs) {
    const ast_file *f = e->file;
    ir_graph *g = e->g;
    if (f->nstmts == 0) {
        /* no source line: at best it would show a comment */
        const char *src = e->d->src;
        e->d->src = NULL;
        err(e, (src_loc){1, 1}, "empty model: expected 'model NAME'");
        e->d->src = src;
        return;
    }
    for (int k = 0; k < ndefs; k++) {
        bool found = false;
        for (int i = 0; i < f->nstmts; i++)
            found |= f->stmts[i].kind == ST_CONST && strcmp(f->stmts[i].name, defs[k].name) == 0;
        if (!found)
            err(e, (src_loc){0, 0}, "-D %s: no such const in %s", defs[k].name, e->d->file);
    }
    if (f->stmts[0].kind != ST_MODEL)
        err(e, f->stmts[0].loc, "expected 'model NAME' as the first statement");
    collect_defs(e);
    const ast_stmt *model = NULL, *dflt = NULL, *bn = NULL, *optim = NULL;
    for (int k = 0; k < f->nstmts && !halted(e); k++) {
        const ast_stmt *st = &f->stmts[k];
        e->top.cur = st->loc;
        switch (st->kind) {
        case ST_MODEL:
            if (model) {
                err(e, st->loc, "a file holds one model, but this is a second 'model' statement");
                note(e, model->loc, "the model '%s' is declared here", model->name);
            } else {
                model = st;
                g->model = st->name;
            }
            break;
        case ST_CONST: elab_const(e, st, defs, ndefs); break;
        case ST_INPUT: elab_input(e, st); break;
        case ST_PARAM: elab_param(e, st); break;
        case ST_BIND:
        case ST_MULTI:
        case ST_ALIAS:
        case ST_IF: elab_stmts(e, st, 1); break;
        case ST_OUTPUT: elab_output(e, st); break;
        case ST_CONFIG: elab_config(e, st); break;
        case ST_DEFAULT: once(e, st, &dflt, "default"); break;
        case ST_BATCHNORM:
            if (once(e, st, &bn, "batchnorm"))
                g->bn_eval = st->bn_eval;
            break;
        case ST_OPTIMIZER:
            if (once(e, st, &optim, "optimizer"))
                elab_optimizer(e, st);
            break;
        case ST_DEF: break; /* expanded where called */
        case ST_RETURN: IR_ASSERT(!"return at the top level"); break;
        }
    }
    e->top.cur = (src_loc){0, 0};
    if (dflt) /* configs may follow `default` */
        elab_default(e, dflt);
    for (int k = 0; k < g->nconfigs; k++) /* and `batchnorm` */
        if (g->configs[k].bn_eval_loc.line == 0)
            g->configs[k].bn_eval = g->bn_eval;
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
    e->fr = &e->top;
    elab_file(e, defs, ndefs);
    flush_calls(e);
    return d->errors > errors || e->errors > 0 ? NULL : e->g;
}
