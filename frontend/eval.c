/* eval.c: compile-time evaluation. Integer, real and list expressions, the
 * conditions of `if`, tensor names and dim(x, i), evaluated in the current
 * scope as elaboration reaches them (elab.h), and the const statement (with
 * its -D override). Every message names what is being computed (`what`,
 * "dimension 1 of input 'x'") and points at the offending subexpression.
 */
#include "elab.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- compile-time values */

static const char *expr_kind_text(const ast_expr *x) {
    switch (x->kind) {
    case EX_REAL: return "a real number";
    case EX_BOOL: return x->ival ? "'true'" : "'false'";
    case EX_LIST: return "a list";
    case EX_CMP:
    case EX_AND:
    case EX_OR:
    case EX_NOT: return "a condition";
    case EX_CALL: return "a call (a tensor)";
    default: return "an integer";
    }
}

/* what a named compile-time value or tensor is, for "but 'x' is ..." */
const char *eval_sym_text(const sym *s) {
    switch (s->v.kind) {
    case CV_INT: return "an integer constant";
    case CV_REAL: return "a real number";
    case CV_BOOL: return s->v.i ? "a bool (true)" : "a bool (false)";
    case CV_LIST: return "a list";
    default: return "a tensor";
    }
}

static const char *cmp_text(char op) {
    switch (op) {
    case CMP_EQ: return "==";
    case CMP_NE: return "!=";
    case CMP_LT: return "<";
    case CMP_LE: return "<=";
    case CMP_GT: return ">";
    default: return ">=";
    }
}

/* The kind an expression evaluates to, from its form (names looked up
 * quietly; an unknown name counts as an integer and is reported later). */
static cv_kind expr_type(elab_ctx *e, const ast_expr *x) {
    switch (x->kind) {
    case EX_REAL: return CV_REAL;
    case EX_BOOL:
    case EX_CMP:
    case EX_AND:
    case EX_OR:
    case EX_NOT: return CV_BOOL;
    case EX_LIST: return CV_LIST;
    case EX_CALL: return CV_TENSOR;
    case EX_NEG: return expr_type(e, x->lhs);
    case EX_BIN: return expr_type(e, x->lhs) == CV_REAL || expr_type(e, x->rhs) == CV_REAL ? CV_REAL : CV_INT;
    case EX_NAME: {
        sym *s = elab_resolve(e, x->name);
        return s && !s->poison ? s->v.kind : CV_INT;
    }
    default: return CV_INT;
    }
}

/* dim(x, i): size of dimension i of x (negative i counts from the end) */
static bool eval_dim(elab_ctx *e, const ast_expr *x, int64_t *out);

/* Evaluate an integer constant expression. `what` names the thing being
 * computed for messages ("dimension 1 of input 'x'"). */
bool eval_int(elab_ctx *e, const ast_expr *x, const char *what, int64_t *out) {
    int64_t a, b;
    switch (x->kind) {
    case EX_INT: *out = x->ival; return true;
    case EX_REAL:
    case EX_BOOL:
    case EX_LIST:
    case EX_CMP:
    case EX_AND:
    case EX_OR:
    case EX_NOT:
    case EX_CALL: err(e, x->loc, "%s must be an integer, got %s", what, expr_kind_text(x)); return false;
    case EX_DIM: return eval_dim(e, x, out);
    case EX_NAME: {
        sym *s = elab_lookup(e, x->name, x->loc);
        if (!s)
            return false;
        if (s->v.kind != CV_INT) {
            err(e, x->loc, "%s must be an integer, but '%s' is %s", what, x->name, eval_sym_text(s));
            return false;
        }
        *out = s->v.i;
        return true;
    }
    case EX_NEG:
        if (!eval_int(e, x->lhs, what, &a))
            return false;
        if (a == INT64_MIN) {
            err(e, x->loc, "integer overflow in constant expression");
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
                err(e, x->loc, "division by zero in constant expression");
                return false;
            }
            overflow = a == INT64_MIN && b == -1;
            if (!overflow)
                *out = x->op == '/' ? a / b : a % b;
            break;
        default: IR_ASSERT(!"unknown operator");
        }
        if (overflow) {
            err(e, x->loc, "integer overflow in constant expression (%lld %c %lld)", (long long)a, x->op, (long long)b);
            return false;
        }
        return true;
    }
    }
    IR_ASSERT(!"unknown expression");
    return false;
}

static bool eval_dim(elab_ctx *e, const ast_expr *x, int64_t *out) {
    int v = -1;
    int64_t i = 0;
    bool ok = eval_tensor(e, x->lhs, "the first argument of dim", &v);
    ok &= eval_int(e, x->rhs, "the index of dim", &i);
    if (!ok)
        return false;
    const ir_value *val = &e->g->vals[v];
    int64_t k = i < 0 ? i + val->shape.rank : i;
    if (k < 0 || k >= val->shape.rank) {
        err(e, x->rhs->loc, "dim: index %lld is out of range for '%s' of shape %s (rank %d)", (long long)i,
            x->lhs->name, shape_str(e->pool, &val->shape), val->shape.rank);
        return false;
    }
    *out = val->shape.dim[k];
    return true;
}

bool eval_real(elab_ctx *e, const ast_expr *x, const char *what, double *out) {
    switch (x->kind) {
    case EX_REAL: *out = x->rval; return true;
    case EX_NEG:
        if (!eval_real(e, x->lhs, what, out))
            return false;
        *out = -*out;
        return true;
    case EX_BOOL:
    case EX_LIST:
    case EX_CMP:
    case EX_AND:
    case EX_OR:
    case EX_NOT:
    case EX_CALL: err(e, x->loc, "%s must be a number, got %s", what, expr_kind_text(x)); return false;
    case EX_NAME: {
        sym *s = elab_lookup(e, x->name, x->loc);
        if (!s)
            return false;
        if (s->v.kind == CV_REAL || s->v.kind == CV_INT) {
            *out = s->v.kind == CV_REAL ? s->v.r : (double)s->v.i;
            return true;
        }
        err(e, x->loc, "%s must be a number, but '%s' is %s", what, x->name, eval_sym_text(s));
        return false;
    }
    case EX_BIN:
        if (expr_type(e, x) == CV_REAL) {
            double a, b;
            bool ok = eval_real(e, x->lhs, what, &a);
            ok &= eval_real(e, x->rhs, what, &b);
            if (!ok)
                return false;
            switch (x->op) {
            case '+': *out = a + b; break;
            case '-': *out = a - b; break;
            case '*': *out = a * b; break;
            case '/':
                if (b == 0) {
                    err(e, x->loc, "division by zero in constant expression");
                    return false;
                }
                *out = a / b;
                break;
            default: err(e, x->loc, "'%c' needs integers, but an operand is a real number", x->op); return false;
            }
            if (!isfinite(*out)) {
                err(e, x->loc, "real overflow in constant expression (%g %c %g)", a, x->op, b);
                return false;
            }
            return true;
        }
        break;
    default: break;
    }
    int64_t v;
    if (!eval_int(e, x, what, &v))
        return false;
    *out = (double)v;
    return true;
}

/* An op's bool argument: true/false, a condition, or an integer 0 or 1. */
bool eval_bool(elab_ctx *e, const ast_expr *x, const char *what, int64_t *out) {
    if (x->kind == EX_REAL || x->kind == EX_LIST) {
        err(e, x->loc, "%s must be true or false, got %s", what, expr_kind_text(x));
        return false;
    }
    if (expr_type(e, x) == CV_BOOL) {
        bool b;
        if (!eval_cond(e, x, what, &b))
            return false;
        *out = b;
        return true;
    }
    int64_t v;
    if (!eval_int(e, x, what, &v))
        return false;
    if (v != 0 && v != 1) {
        err(e, x->loc, "%s must be true or false, got %lld", what, (long long)v);
        return false;
    }
    *out = v;
    return true;
}

static bool eval_list(elab_ctx *e, const ast_expr *x, const char *what, cval *out) {
    *out = (cval){.kind = CV_LIST, .nitems = x->nitems};
    out->items = pool_alloc(e->pool, sizeof *out->items * (size_t)(x->nitems + 1));
    bool ok = true;
    for (int k = 0; k < x->nitems; k++)
        ok &= eval_int(e, x->items[k], pool_printf(e->pool, "item %d of %s", k + 1, what), &out->items[k]);
    return ok;
}

/* Any value: a tensor (by name) or a compile-time value. */
bool eval_value(elab_ctx *e, const ast_expr *x, const char *what, cval *out) {
    if (x->kind == EX_CALL) {
        *out = (cval){.kind = CV_TENSOR, .i = -1};
        return elab_nested_call(e, x, &out->i);
    }
    if (x->kind == EX_NAME) {
        sym *s = elab_lookup(e, x->name, x->loc);
        if (s)
            *out = s->v;
        return s != NULL;
    }
    bool b;
    switch (expr_type(e, x)) {
    case CV_BOOL:
        *out = (cval){.kind = CV_BOOL};
        if (!eval_cond(e, x, what, &b))
            return false;
        out->i = b;
        return true;
    case CV_REAL: *out = (cval){.kind = CV_REAL}; return eval_real(e, x, what, &out->r);
    case CV_LIST: return eval_list(e, x, what, out);
    default: *out = (cval){.kind = CV_INT}; return eval_int(e, x, what, &out->i);
    }
}

/* One side of a comparison: a number or a bool. */
static bool eval_operand(elab_ctx *e, const ast_expr *x, const char *what, cval *out) {
    if (x->kind == EX_NAME) {
        sym *s = elab_lookup(e, x->name, x->loc);
        if (!s)
            return false;
        if (s->v.kind == CV_TENSOR) {
            err(e, x->loc, "'%s' is a tensor and cannot be compared; compare its shape with dim(%s, i)", x->name,
                x->name);
            return false;
        }
        if (s->v.kind == CV_LIST) {
            err(e, x->loc, "%s must be a number or a bool, but '%s' is a list", what, x->name);
            return false;
        }
        *out = s->v;
        return true;
    }
    if (x->kind == EX_LIST) {
        err(e, x->loc, "%s must be a number or a bool, got a list", what);
        return false;
    }
    return eval_value(e, x, what, out);
}

static const char *cv_text(cv_kind k) {
    return k == CV_BOOL ? "a bool" : k == CV_REAL ? "a real number" : "an integer";
}

static bool eval_compare(elab_ctx *e, const ast_expr *x, bool *out) {
    const char *op = cmp_text(x->op);
    cval a, b;
    bool ok = eval_operand(e, x->lhs, pool_printf(e->pool, "the left side of '%s'", op), &a);
    ok &= eval_operand(e, x->rhs, pool_printf(e->pool, "the right side of '%s'", op), &b);
    if (!ok)
        return false;
    if ((a.kind == CV_BOOL) != (b.kind == CV_BOOL)) {
        err(e, x->loc, "'%s' compares %s with %s", op, cv_text(a.kind), cv_text(b.kind));
        return false;
    }
    if (a.kind == CV_BOOL && x->op != CMP_EQ && x->op != CMP_NE) {
        err(e, x->loc, "'%s' needs numbers, but both sides are bools", op);
        return false;
    }
    int c;
    if (a.kind == CV_REAL || b.kind == CV_REAL) {
        double l = a.kind == CV_REAL ? a.r : (double)a.i, r = b.kind == CV_REAL ? b.r : (double)b.i;
        c = (l > r) - (l < r);
    } else {
        c = (a.i > b.i) - (a.i < b.i);
    }
    switch (x->op) {
    case CMP_EQ: *out = c == 0; break;
    case CMP_NE: *out = c != 0; break;
    case CMP_LT: *out = c < 0; break;
    case CMP_LE: *out = c <= 0; break;
    case CMP_GT: *out = c > 0; break;
    default: *out = c >= 0; break;
    }
    return true;
}

/* A condition: true/false, a comparison, and/or/not of conditions, or a
 * name holding a bool. `and` and `or` evaluate their right side only when
 * the left does not decide. */
bool eval_cond(elab_ctx *e, const ast_expr *x, const char *what, bool *out) {
    switch (x->kind) {
    case EX_BOOL: *out = x->ival != 0; return true;
    case EX_CMP: return eval_compare(e, x, out);
    case EX_NOT:
        if (!eval_cond(e, x->lhs, "the operand of 'not'", out))
            return false;
        *out = !*out;
        return true;
    case EX_AND:
    case EX_OR: {
        const char *side = x->kind == EX_AND ? "an operand of 'and'" : "an operand of 'or'";
        if (!eval_cond(e, x->lhs, side, out))
            return false;
        if (*out == (x->kind == EX_OR))
            return true;
        return eval_cond(e, x->rhs, side, out);
    }
    case EX_NAME: {
        sym *s = elab_lookup(e, x->name, x->loc);
        if (!s)
            return false;
        if (s->v.kind != CV_BOOL) {
            err(e, x->loc, "%s must be true or false, but '%s' is %s", what, x->name, eval_sym_text(s));
            return false;
        }
        *out = s->v.i != 0;
        return true;
    }
    case EX_NEG:
    case EX_BIN:
    case EX_DIM: err(e, x->loc, "%s must be true or false, got a number", what); return false;
    default: err(e, x->loc, "%s must be true or false, got %s", what, expr_kind_text(x)); return false;
    }
}

/* ---------------------------------------------------------------- tensors */

bool eval_tensor(elab_ctx *e, const ast_expr *x, const char *what, int *out) {
    if (x->kind == EX_CALL) {
        int64_t v = -1;
        bool ok = elab_nested_call(e, x, &v);
        *out = (int)v;
        return ok;
    }
    if (x->kind != EX_NAME) {
        err(e, x->loc, "%s must be a tensor name, got %s", what,
            x->kind == EX_NEG || x->kind == EX_BIN ? "an expression" : expr_kind_text(x));
        return false;
    }
    sym *s = elab_lookup(e, x->name, x->loc);
    if (!s)
        return false;
    if (s->v.kind != CV_TENSOR) {
        err(e, x->loc, "%s must be a tensor, but '%s' is %s", what, x->name, eval_sym_text(s));
        return false;
    }
    *out = (int)s->v.i;
    return true;
}

/* ---------------------------------------------------------------- constants */

/* The -D override ("-D N=0") that the value of x comes from, through the
 * consts it names; NULL if none. For messages about that value. */
const char *eval_define_of(elab_ctx *e, const ast_expr *x) {
    if (!x)
        return NULL;
    if (x->kind == EX_NAME) {
        sym *s = elab_resolve(e, x->name);
        return s && !s->poison && s->v.kind == CV_INT ? s->from_define : NULL;
    }
    if (x->kind == EX_CALL)
        return NULL;
    const char *from = x->kind == EX_DIM ? NULL : eval_define_of(e, x->lhs);
    if (!from)
        from = eval_define_of(e, x->rhs);
    for (int k = 0; k < x->nitems && !from; k++)
        from = eval_define_of(e, x->items[k]);
    return from;
}

void elab_const(elab_ctx *e, const ast_stmt *st, const frost_define *defs, int ndefs) {
    if (!elab_check_new_name(e, st->name, st->name_loc))
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
    elab_add_sym(e, st->name, !ok, (cval){.kind = CV_INT, .i = v}, st->name_loc);
    e->syms[e->nsyms - 1].from_define =
        def ? pool_printf(e->pool, "-D %s=%lld", def->name, (long long)def->value) : eval_define_of(e, st->value);
}
