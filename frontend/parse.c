/* parse.c: tokens -> syntax tree, by recursive descent.
 *
 * Grammar (EBNF; NL is a newline; docs/language.md has the same grammar with
 * explanations). Inside ( ) and [ ] newlines may follow '(', '[' and ',' and
 * precede ')' and ']', so a long call can span lines, but a missing ')' is
 * still caught at the end of its line:
 *
 *   file      = { NL } [ stmt { NL { NL } stmt } ] { NL } EOF
 *   stmt      = "model" NAME
 *             | "const" NAME "=" expr
 *             | "input" NAME ":" DTYPE [ "[" expr { "," expr } "]" ] [ "grad" ]
 *             | NAME "=" NAME "(" [ arg { "," arg } [ "," ] ] ")"
 *             | "output" NAME { "," NAME }
 *             | "config" NAME "{" { cfgsep } [ cfgitem { cfgsep { cfgsep } cfgitem } ] { cfgsep } "}"
 *             | "default" NAME
 *   arg       = NAME "=" expr | expr
 *   expr      = term { ("+" | "-") term }
 *   term      = unary { ("*" | "/" | "%") unary }
 *   unary     = "-" unary | primary
 *   primary   = INT | REAL | "true" | "false" | NAME | "(" expr ")"
 *             | "[" [ expr { "," expr } [ "," ] ] "]"
 *   cfgitem   = ("train" | "freeze") PATTERN { PATTERN } | "grad" NAME { NAME }
 *   cfgsep    = ";" | NL
 *   NAME      = [A-Za-z_][A-Za-z0-9_]* { "." [A-Za-z0-9_]+ }, not a keyword
 *   PATTERN   = adjacent tokens of NAME, INT and * ? [ ] . ! ^ - glued together
 *
 * Keywords: model const input output config default train freeze grad none
 * true false, and def (reserved for `def NAME(params) { ... }` blocks, issue #4).
 * A config or default name may be any word (`config input { ... }`).
 *
 * On a syntax error the parser reports it and resumes at the next statement
 * (after the closing brace when inside a config), so one bad line costs one
 * message. elab.c only runs when the whole file parsed.
 */
#include "ast.h"

#include <setjmp.h>
#include <string.h>

typedef struct {
    pool *pool;
    diag_ctx *d;
    token *tok;      /* current token */
    bool in_config;  /* recovery must skip to the closing brace */
    jmp_buf fail;
} parser;

static const char *describe(pool *p, const token *t) {
    switch (t->kind) {
    case TK_NEWLINE: return "end of line";
    case TK_EOF: return "end of file";
    default: return pool_printf(p, "'%.*s'", t->len, t->text);
    }
}

static _Noreturn void fail_at(parser *ps, src_loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static _Noreturn void fail_at(parser *ps, src_loc at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(ps->d, "error", at, fmt, ap);
    va_end(ap);
    longjmp(ps->fail, 1);
}

/* "expected X, got Y" at the current token */
static _Noreturn void expected(parser *ps, const char *what) {
    fail_at(ps, ps->tok->loc, "expected %s, got %s", what, describe(ps->pool, ps->tok));
}

static bool is_punct(const token *t, char c) { return t->kind == TK_PUNCT && t->text[0] == c; }
static bool is_word(const token *t, const char *kw) { return t->kind == TK_IDENT && lex_equal(t, kw); }

static void skip_punct(parser *ps, char c) {
    if (!is_punct(ps->tok, c)) {
        char what[8] = {'\'', c, '\'', 0};
        expected(ps, what);
    }
    ps->tok++;
}

/* Newlines allowed here inside ( ) or [ ]: after an opener or a comma, and
 * before a closer. */
static void skip_continuation(parser *ps) {
    while (ps->tok->kind == TK_NEWLINE)
        ps->tok++;
}

static void skip_newlines_before_closer(parser *ps, char closer) {
    token *t = ps->tok;
    while (t->kind == TK_NEWLINE)
        t++;
    if (is_punct(t, closer))
        ps->tok = t;
}

static char *tok_str(parser *ps, const token *t) { return pool_strndup(ps->pool, t->text, (size_t)t->len); }

/* A name that is defined by the statement: not a keyword; plain (no dots)
 * unless dotted names make sense for it. */
static const char *def_name(parser *ps, const char *what, bool dots, src_loc *loc) {
    token *t = ps->tok;
    if (t->kind != TK_IDENT)
        expected(ps, what);
    if (lex_is_keyword(t->text, t->len))
        fail_at(ps, t->loc, "'%.*s' is a keyword and cannot be used as %s", t->len, t->text, what);
    if (!dots && memchr(t->text, '.', (size_t)t->len))
        fail_at(ps, t->loc, "%s must be a plain identifier without dots, got '%.*s'", what, t->len, t->text);
    *loc = t->loc;
    ps->tok++;
    return tok_str(ps, t);
}

/* Any word, keywords included (config names, default). */
static const char *any_word(parser *ps, const char *what, src_loc *loc) {
    token *t = ps->tok;
    if (t->kind != TK_IDENT)
        expected(ps, what);
    *loc = t->loc;
    ps->tok++;
    return tok_str(ps, t);
}

static void end_of_stmt(parser *ps, const char *after) {
    if (ps->tok->kind != TK_NEWLINE && ps->tok->kind != TK_EOF)
        fail_at(ps, ps->tok->loc, "expected end of line after %s, got %s", after, describe(ps->pool, ps->tok));
}

/* ---------------------------------------------------------------- expressions */

static ast_expr *new_expr(parser *ps, ast_expr_kind kind, src_loc loc) {
    ast_expr *e = pool_alloc(ps->pool, sizeof *e);
    e->kind = kind;
    e->loc = loc;
    return e;
}

static ast_expr *expr(parser *ps);

static ast_expr *primary(parser *ps) {
    token *t = ps->tok;
    if (t->kind == TK_INT) {
        ps->tok++;
        ast_expr *e = new_expr(ps, EX_INT, t->loc);
        e->ival = t->ival;
        return e;
    }
    if (t->kind == TK_REAL) {
        ps->tok++;
        ast_expr *e = new_expr(ps, EX_REAL, t->loc);
        e->rval = t->rval;
        return e;
    }
    if (is_word(t, "true") || is_word(t, "false")) {
        ps->tok++;
        ast_expr *e = new_expr(ps, EX_BOOL, t->loc);
        e->ival = t->text[0] == 't';
        return e;
    }
    if (t->kind == TK_IDENT) {
        if (lex_is_keyword(t->text, t->len))
            fail_at(ps, t->loc, "expected an expression, got keyword '%.*s'", t->len, t->text);
        ps->tok++;
        if (is_punct(ps->tok, '('))
            fail_at(ps, t->loc, "nested calls are not supported; bind the inner call to a name");
        ast_expr *e = new_expr(ps, EX_NAME, t->loc);
        e->name = tok_str(ps, t);
        return e;
    }
    if (is_punct(t, '(')) {
        ps->tok++;
        skip_continuation(ps);
        ast_expr *e = expr(ps);
        skip_newlines_before_closer(ps, ')');
        skip_punct(ps, ')');
        return e;
    }
    if (is_punct(t, '[')) {
        ps->tok++;
        ast_expr *e = new_expr(ps, EX_LIST, t->loc);
        int cap = 0;
        skip_continuation(ps);
        while (!is_punct(ps->tok, ']')) {
            *VEC_PUSH(ps->pool, e->items, e->nitems, cap) = expr(ps);
            skip_newlines_before_closer(ps, ']');
            if (!is_punct(ps->tok, ','))
                break;
            ps->tok++;
            skip_continuation(ps);
        }
        if (!is_punct(ps->tok, ']'))
            expected(ps, "',' or ']'");
        ps->tok++;
        return e;
    }
    expected(ps, "an expression");
}

static ast_expr *unary(parser *ps) {
    if (is_punct(ps->tok, '-')) {
        ast_expr *e = new_expr(ps, EX_NEG, ps->tok->loc);
        ps->tok++;
        e->lhs = unary(ps);
        return e;
    }
    return primary(ps);
}

static ast_expr *binary(parser *ps, ast_expr *lhs, ast_expr *(*operand)(parser *), const char *ops) {
    while (ps->tok->kind == TK_PUNCT && strchr(ops, ps->tok->text[0])) {
        ast_expr *e = new_expr(ps, EX_BIN, ps->tok->loc);
        e->op = ps->tok->text[0];
        ps->tok++;
        e->lhs = lhs;
        e->rhs = operand(ps);
        lhs = e;
    }
    return lhs;
}

static ast_expr *term(parser *ps) { return binary(ps, unary(ps), unary, "*/%"); }
static ast_expr *expr(parser *ps) { return binary(ps, term(ps), term, "+-"); }

/* ---------------------------------------------------------------- statements */

static void call_args(parser *ps, ast_stmt *st) {
    skip_punct(ps, '(');
    skip_continuation(ps);
    int cap = 0;
    while (!is_punct(ps->tok, ')')) {
        ast_arg *a = VEC_PUSH(ps->pool, st->args, st->nargs, cap);
        a->loc = ps->tok->loc;
        if (ps->tok->kind == TK_IDENT && is_punct(ps->tok + 1, '=')) {
            a->name = tok_str(ps, ps->tok);
            ps->tok += 2;
        }
        a->value = expr(ps);
        skip_newlines_before_closer(ps, ')');
        if (!is_punct(ps->tok, ','))
            break;
        ps->tok++;
        skip_continuation(ps);
    }
    if (!is_punct(ps->tok, ')'))
        expected(ps, "',' or ')'");
    ps->tok++;
}

static bool is_pattern_tok(const token *t) {
    return t->kind == TK_IDENT || t->kind == TK_INT || (t->kind == TK_PUNCT && strchr("*?[].!^-", t->text[0]));
}

/* A glob pattern: tokens with nothing between them, glued back into text. */
static const char *pattern(parser *ps, src_loc *loc) {
    token *first = ps->tok;
    if (!is_pattern_tok(first))
        expected(ps, "a pattern");
    token *last = ps->tok++;
    while (is_pattern_tok(ps->tok) && ps->tok->pos == last->pos + (size_t)last->len)
        last = ps->tok++;
    *loc = first->loc;
    return pool_strndup(ps->pool, first->text, last->pos + (size_t)last->len - first->pos);
}

static void config_body(parser *ps, ast_stmt *st) {
    skip_punct(ps, '{');
    ps->in_config = true;
    int cap = 0;
    for (;;) {
        while (ps->tok->kind == TK_NEWLINE || is_punct(ps->tok, ';'))
            ps->tok++;
        if (is_punct(ps->tok, '}'))
            break;
        ast_cfg_kind kind;
        if (is_word(ps->tok, "train"))
            kind = CFG_TRAIN;
        else if (is_word(ps->tok, "freeze"))
            kind = CFG_FREEZE;
        else if (is_word(ps->tok, "grad"))
            kind = CFG_GRAD;
        else if (ps->tok->kind == TK_EOF)
            fail_at(ps, st->loc, "config '%s' is not closed with '}'", st->name);
        else
            expected(ps, "'train', 'freeze', 'grad' or '}'");
        const char *kw = kind == CFG_TRAIN ? "train" : kind == CFG_FREEZE ? "freeze" : "grad";
        ps->tok++;
        int count = 0;
        while (ps->tok->kind != TK_NEWLINE && !is_punct(ps->tok, ';') && !is_punct(ps->tok, '}') &&
               ps->tok->kind != TK_EOF) {
            ast_cfg_item *it = VEC_PUSH(ps->pool, st->items, st->nitems, cap);
            it->kind = kind;
            if (kind == CFG_GRAD) {
                if (ps->tok->kind != TK_IDENT)
                    expected(ps, "an input name");
                it->loc = ps->tok->loc;
                it->word = tok_str(ps, ps->tok++);
            } else {
                it->word = pattern(ps, &it->loc);
            }
            count++;
        }
        if (count == 0)
            fail_at(ps, ps->tok->loc, "expected %s after '%s'", kind == CFG_GRAD ? "an input name" : "a pattern",
                    kw);
    }
    ps->tok++;
    ps->in_config = false;
}

static void stmt(parser *ps, ast_stmt *st) {
    token *t = ps->tok;
    st->loc = t->loc;
    if (is_word(t, "model")) {
        st->kind = ST_MODEL;
        ps->tok++;
        st->name = def_name(ps, "a model name", false, &st->name_loc);
        end_of_stmt(ps, "the model name");
    } else if (is_word(t, "const")) {
        st->kind = ST_CONST;
        ps->tok++;
        st->name = def_name(ps, "a constant name", false, &st->name_loc);
        skip_punct(ps, '=');
        st->value = expr(ps);
        end_of_stmt(ps, "the constant's value");
    } else if (is_word(t, "input")) {
        st->kind = ST_INPUT;
        ps->tok++;
        st->name = def_name(ps, "an input name", false, &st->name_loc);
        skip_punct(ps, ':');
        if (ps->tok->kind != TK_IDENT)
            expected(ps, "a dtype (f32 or i32)");
        st->dtype = tok_str(ps, ps->tok);
        st->dtype_loc = ps->tok->loc;
        ps->tok++;
        if (is_punct(ps->tok, '[')) {
            ps->tok++;
            skip_continuation(ps);
            int cap = 0;
            for (;;) {
                *VEC_PUSH(ps->pool, st->dims, st->ndims, cap) = expr(ps);
                skip_newlines_before_closer(ps, ']');
                if (!is_punct(ps->tok, ','))
                    break;
                ps->tok++;
                skip_continuation(ps);
            }
            if (!is_punct(ps->tok, ']'))
                expected(ps, "',' or ']'");
            ps->tok++;
        }
        if (is_word(ps->tok, "grad")) {
            st->grad = true;
            ps->tok++;
        }
        end_of_stmt(ps, "the input's type");
    } else if (is_word(t, "output")) {
        st->kind = ST_OUTPUT;
        ps->tok++;
        int cap = 0, lcap = 0;
        for (;;) {
            src_loc loc;
            const char *name = def_name(ps, "an output name", true, &loc);
            int n = st->nnames;
            *VEC_PUSH(ps->pool, st->names, st->nnames, cap) = name;
            *VEC_PUSH(ps->pool, st->name_locs, n, lcap) = loc;
            if (!is_punct(ps->tok, ','))
                break;
            ps->tok++;
        }
        end_of_stmt(ps, "the output names");
    } else if (is_word(t, "config")) {
        st->kind = ST_CONFIG;
        ps->tok++;
        st->name = any_word(ps, "a config name", &st->name_loc);
        config_body(ps, st);
        end_of_stmt(ps, "'}'");
    } else if (is_word(t, "default")) {
        st->kind = ST_DEFAULT;
        ps->tok++;
        st->name = any_word(ps, "a config name", &st->name_loc);
        end_of_stmt(ps, "the config name");
    } else if (is_word(t, "def")) {
        fail_at(ps, t->loc, "'def' blocks are not supported yet");
    } else if (t->kind == TK_IDENT && !lex_is_keyword(t->text, t->len)) {
        st->kind = ST_BIND;
        st->name = def_name(ps, "a name", true, &st->name_loc);
        if (!is_punct(ps->tok, '='))
            expected(ps, "'=' after the name (a binding is NAME = op(...))");
        ps->tok++;
        token *op = ps->tok;
        if (op->kind != TK_IDENT || lex_is_keyword(op->text, op->len))
            expected(ps, "an op name");
        st->op = tok_str(ps, op);
        st->op_loc = op->loc;
        ps->tok++;
        if (!is_punct(ps->tok, '('))
            fail_at(ps, ps->tok->loc, "expected '(' after op name '%s', got %s", st->op, describe(ps->pool, ps->tok));
        call_args(ps, st);
        end_of_stmt(ps, "the call");
    } else {
        expected(ps, "a statement (model, const, input, NAME = op(...), output, config or default)");
    }
}

ast_file *parse_file(pool *p, diag_ctx *d, token *toks) {
    /* in the pool, not on the stack: it changes between setjmp and longjmp */
    parser *ps = pool_alloc(p, sizeof *ps);
    ps->pool = p;
    ps->d = d;
    ps->tok = toks;
    ast_file *f = pool_alloc(p, sizeof *f);
    int errors = d->errors;
    for (;;) {
        while (ps->tok->kind == TK_NEWLINE)
            ps->tok++;
        if (ps->tok->kind == TK_EOF)
            break;
        ast_stmt st = {0};
        if (setjmp(ps->fail) == 0) {
            stmt(ps, &st);
            *VEC_PUSH(p, f->stmts, f->nstmts, f->capstmts) = st;
        } else {
            /* resume at the next statement */
            if (ps->in_config) {
                while (ps->tok->kind != TK_EOF && !is_punct(ps->tok, '}'))
                    ps->tok++;
                ps->in_config = false;
            }
            while (ps->tok->kind != TK_NEWLINE && ps->tok->kind != TK_EOF)
                ps->tok++;
        }
    }
    f->eof_loc = ps->tok->loc;
    return d->errors > errors ? NULL : f;
}
