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
 *             | "param" NAME ":" DTYPE [ "[" expr { "," expr } "]" ] [ "init" "=" NAME [ "(" expr ")" ] ]
 *             | assign
 *             | "output" NAME { "," NAME }
 *             | "config" NAME "{" { cfgsep } [ cfgitem { cfgsep { cfgsep } cfgitem } ] { cfgsep } "}"
 *             | "default" NAME
 *             | "batchnorm" ( "eval" | "train" )
 *             | "optimizer" NAME [ "(" [ arg { "," arg } [ "," ] ] ")" ]
 *             | "def" NAME "(" [ param { "," param } [ "," ] ] ")" block
 *             | if
 *   assign    = NAME "=" NAME "(" [ arg { "," arg } [ "," ] ] ")"     a call of an op or a def
 *             | NAME "=" NAME                                       another name for a value
 *   param     = NAME [ "=" expr ]
 *   block     = "{" { bsep } [ bstmt { bsep { bsep } bstmt } ] { bsep } "}"
 *   bstmt     = assign | if | "return" NAME [ "(" [ arg { "," arg } [ "," ] ] ")" ]
 *   bsep      = ";" | NL
 *   if        = "if" expr block [ "else" ( if | block ) ]
 *   arg       = NAME "=" expr | expr
 *   expr      = conj { "or" conj }
 *   conj      = neg { "and" neg }
 *   neg       = "not" neg | cmp
 *   cmp       = sum [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) sum ]
 *   sum       = term { ("+" | "-") term }
 *   term      = unary { ("*" | "/" | "%") unary }
 *   unary     = "-" unary | primary
 *   primary   = INT | REAL | "true" | "false" | NAME | "dim" "(" NAME "," expr ")"
 *             | "(" expr ")" | "[" [ expr { "," expr } [ "," ] ] "]"
 *   cfgitem   = ("train" | "freeze") PATTERN { PATTERN } | "grad" NAME { NAME }
 *             | "batchnorm" ( "eval" | "train" )
 *             | "lora" PATTERN { "r" "=" INT | "alpha" "=" NUMBER | "dropout" "=" NUMBER | "rslora" }
 *   cfgsep    = ";" | NL
 *   NAME      = [A-Za-z_][A-Za-z0-9_]* { "." [A-Za-z0-9_]+ }, not a keyword
 *   PATTERN   = adjacent tokens of NAME, INT and * ? [ ] . ! ^ - glued together
 *
 * Keywords: model const input output config default train freeze grad none
 * true false def if else return and or not. A config or default name may be
 * any word (`config input { ... }`). `batchnorm`, `eval`, `optimizer`,
 * `param`, `init` and `dim` are words with a meaning only where the grammar
 * above uses them (`batchnorm`, `optimizer` and `param` start a statement
 * only when no '=' follows).
 *
 * `return` may only end a def's body (not inside an `if` of it), and a def's
 * body must end with one; `else` may stand on the line after the `}`; a
 * block's `{` may stand on the line after its `if` or `def` header.
 *
 * On a syntax error the parser reports it and resumes at the next statement
 * (after the closing brace when inside a config; inside a def or if block at
 * the next statement of that block), so one bad line costs one message.
 * elab.c only runs when the whole file parsed.
 */
#include "ast.h"

#include <math.h>
#include <setjmp.h>
#include <string.h>

/* Nesting no sane model comes near, checked so that hostile input cannot
 * run the recursive descent here, or the recursive evaluation in eval.c, off
 * the end of the stack (docs/language.md, Limits). */
enum { MAX_EXPR_DEPTH = 1000, MAX_BLOCK_DEPTH = 256 };

/* Where statements stand: return is only allowed directly in a def body. */
typedef enum { IN_TOP, IN_TOP_IF, IN_DEF, IN_DEF_IF } stmt_ctx;

typedef struct {
    pool *pool;
    diag_ctx *d;
    token *tok;        /* current token */
    bool in_config;    /* recovery must skip to the closing brace */
    int depth;         /* open def/if blocks: ';' and '}' may end a statement */
    int expr_depth;    /* nesting of the expression being parsed (see nest()) */
    bool eof_reported; /* an unclosed block was reported; enclosing ones stay quiet */
    jmp_buf *fail;     /* where a syntax error resumes (the innermost statement) */
    jmp_buf stop;      /* where parsing ends when diag.c's error limit is passed */
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
    longjmp(ps->d->stopped ? ps->stop : *ps->fail, 1);
}

/* "expected X, got Y" at the current token */
static _Noreturn void expected(parser *ps, const char *what) {
    fail_at(ps, ps->tok->loc, "expected %s, got %s", what, describe(ps->pool, ps->tok));
}

static bool is_punct(const token *t, char c) { return t->kind == TK_PUNCT && t->len == 1 && t->text[0] == c; }
static bool is_word(const token *t, const char *kw) { return t->kind == TK_IDENT && lex_equal(t, kw); }
static bool is_name(const token *t) { return t->kind == TK_IDENT && !lex_is_keyword(t->text, t->len); }

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

/* Inside a block a statement may also end at ';' or before the '}'. */
static bool at_stmt_end(const parser *ps) {
    const token *t = ps->tok;
    return t->kind == TK_NEWLINE || t->kind == TK_EOF || (ps->depth > 0 && (is_punct(t, ';') || is_punct(t, '}')));
}

static void end_of_stmt(parser *ps, const char *after) {
    if (!at_stmt_end(ps))
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

/* One more level of expression nesting, at token t: '(', '[', dim(, unary
 * '-' or 'not', or one more operator of a chain (a + b + c is a left-deep
 * tree, and eval.c recurses once per operator). Callers restore the depth
 * when the construct ends; a syntax error's recovery resets it. */
static void nest(parser *ps, const token *t) {
    if (++ps->expr_depth > MAX_EXPR_DEPTH)
        fail_at(ps, t->loc,
                "expression nested more than %d deep (each parenthesis, bracket, unary operator and operator "
                "of a chain is one level)",
                MAX_EXPR_DEPTH);
}

static ast_expr *name_expr(parser *ps, const token *t) {
    ast_expr *e = new_expr(ps, EX_NAME, t->loc);
    e->name = tok_str(ps, t);
    return e;
}

/* dim(x, i): the size of dimension i of tensor x; the word is at t, the
 * current token is the '(' */
static ast_expr *dim_call(parser *ps, const token *t) {
    ast_expr *e = new_expr(ps, EX_DIM, t->loc);
    nest(ps, t);
    ps->tok++;
    skip_continuation(ps);
    if (!is_name(ps->tok))
        expected(ps, "a tensor name (dim(x, i) is the size of dimension i of x)");
    e->lhs = name_expr(ps, ps->tok++);
    if (!is_punct(ps->tok, ','))
        expected(ps, "',' and a dimension index (dim(x, i) is the size of dimension i of x)");
    ps->tok++;
    skip_continuation(ps);
    e->rhs = expr(ps);
    skip_newlines_before_closer(ps, ')');
    if (!is_punct(ps->tok, ')'))
        expected(ps, "')' (dim takes a tensor and an index)");
    ps->tok++;
    ps->expr_depth--;
    return e;
}

static void call_args(parser *ps, ast_arg **args, int *nargs);

/* callee(args) inside an argument: the current token is the '(' */
static ast_expr *nested_call(parser *ps, const token *t) {
    ast_expr *e = new_expr(ps, EX_CALL, t->loc);
    e->name = tok_str(ps, t);
    nest(ps, t);
    ast_stmt *call = pool_alloc(ps->pool, sizeof *call);
    call->kind = ST_BIND;
    call->loc = call->op_loc = t->loc;
    call->op = e->name;
    call_args(ps, &call->args, &call->nargs);
    e->call = call;
    ps->expr_depth--;
    return e;
}

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
        if (is_punct(ps->tok, '(')) {
            if (lex_equal(t, "dim"))
                return dim_call(ps, t);
            return nested_call(ps, t);
        }
        return name_expr(ps, t);
    }
    if (is_punct(t, '(')) {
        nest(ps, t);
        ps->tok++;
        skip_continuation(ps);
        ast_expr *e = expr(ps);
        skip_newlines_before_closer(ps, ')');
        skip_punct(ps, ')');
        ps->expr_depth--;
        return e;
    }
    if (is_punct(t, '[')) {
        nest(ps, t);
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
        ps->expr_depth--;
        return e;
    }
    expected(ps, "an expression");
}

static ast_expr *unary(parser *ps) {
    if (is_punct(ps->tok, '-')) {
        ast_expr *e = new_expr(ps, EX_NEG, ps->tok->loc);
        nest(ps, ps->tok);
        ps->tok++;
        e->lhs = unary(ps);
        ps->expr_depth--;
        return e;
    }
    return primary(ps);
}

static ast_expr *binary(parser *ps, ast_expr *lhs, ast_expr *(*operand)(parser *), const char *ops) {
    int depth = ps->expr_depth;
    while (ps->tok->kind == TK_PUNCT && ps->tok->len == 1 && strchr(ops, ps->tok->text[0])) {
        ast_expr *e = new_expr(ps, EX_BIN, ps->tok->loc);
        e->op = ps->tok->text[0];
        nest(ps, ps->tok);
        ps->tok++;
        e->lhs = lhs;
        e->rhs = operand(ps);
        lhs = e;
    }
    ps->expr_depth = depth;
    return lhs;
}

static ast_expr *term(parser *ps) { return binary(ps, unary(ps), unary, "*/%"); }
static ast_expr *sum(parser *ps) { return binary(ps, term(ps), term, "+-"); }

/* The CMP_* code of a comparison token, else 0. */
static char cmp_op(const token *t) {
    if (t->kind != TK_PUNCT)
        return 0;
    if (t->len == 2)
        switch (t->text[0]) {
        case '=': return CMP_EQ;
        case '!': return CMP_NE;
        case '<': return CMP_LE;
        case '>': return CMP_GE;
        default: return 0;
        }
    return t->text[0] == '<' || t->text[0] == '>' ? t->text[0] : 0;
}

static ast_expr *comparison(parser *ps) {
    ast_expr *lhs = sum(ps);
    char op = cmp_op(ps->tok);
    if (!op)
        return lhs;
    ast_expr *e = new_expr(ps, EX_CMP, ps->tok->loc);
    e->op = op;
    nest(ps, ps->tok);
    ps->tok++;
    e->lhs = lhs;
    e->rhs = sum(ps);
    ps->expr_depth--;
    if (cmp_op(ps->tok))
        fail_at(ps, ps->tok->loc, "comparisons cannot be chained; combine them with 'and'");
    return e;
}

static ast_expr *negation(parser *ps) {
    if (is_word(ps->tok, "not")) {
        ast_expr *e = new_expr(ps, EX_NOT, ps->tok->loc);
        nest(ps, ps->tok);
        ps->tok++;
        e->lhs = negation(ps);
        ps->expr_depth--;
        return e;
    }
    return comparison(ps);
}

static ast_expr *logical(parser *ps, ast_expr *(*operand)(parser *), const char *word, ast_expr_kind kind) {
    ast_expr *lhs = operand(ps);
    int depth = ps->expr_depth;
    while (is_word(ps->tok, word)) {
        ast_expr *e = new_expr(ps, kind, ps->tok->loc);
        nest(ps, ps->tok);
        ps->tok++;
        e->lhs = lhs;
        e->rhs = operand(ps);
        lhs = e;
    }
    ps->expr_depth = depth;
    return lhs;
}

static ast_expr *conjunction(parser *ps) { return logical(ps, negation, "and", EX_AND); }
static ast_expr *expr(parser *ps) { return logical(ps, conjunction, "or", EX_OR); }

/* ---------------------------------------------------------------- statements */

/* (args) of a call, into *args / *nargs; the current token is the '(' */
static void call_args(parser *ps, ast_arg **args, int *nargs) {
    skip_punct(ps, '(');
    skip_continuation(ps);
    int cap = 0;
    while (!is_punct(ps->tok, ')')) {
        ast_arg *a = VEC_PUSH(ps->pool, *args, *nargs, cap);
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

/* after `batchnorm`: eval (true) or train (false) */
static bool bn_mode(parser *ps, src_loc *loc) {
    token *t = ps->tok;
    if (!is_word(t, "eval") && !is_word(t, "train"))
        fail_at(ps, t->loc, "expected 'eval' or 'train' after 'batchnorm', got %s", describe(ps->pool, t));
    *loc = t->loc;
    ps->tok++;
    return t->text[0] == 'e';
}

static bool at_item_end(const parser *ps) {
    return ps->tok->kind == TK_NEWLINE || is_punct(ps->tok, ';') || is_punct(ps->tok, '}') || ps->tok->kind == TK_EOF;
}

/* after `lora`: PATTERN { r=INT | alpha=NUMBER | dropout=NUMBER | rslora },
 * each option at most once; the defaults are PEFT's (r 8, alpha 16 as
 * frost's examples use, dropout 0). */
static void lora_item(parser *ps, ast_cfg_item *it) {
    it->kind = CFG_LORA;
    if (at_item_end(ps))
        fail_at(ps, ps->tok->loc, "expected a pattern of linear layers after 'lora'");
    it->word = pattern(ps, &it->loc);
    it->lora = (ir_lora){.pattern = it->word, .loc = it->loc, .r = 8, .alpha = 16, .dropout = 0};
    bool seen[4] = {false};
    static const char *const options[] = {"r", "alpha", "dropout", "rslora"};
    while (!at_item_end(ps)) {
        token *t = ps->tok;
        int o = 0;
        while (o < 4 && !(t->kind == TK_IDENT && lex_equal(t, options[o])))
            o++;
        if (o == 4)
            fail_at(ps, t->loc, "expected a lora option (r=, alpha=, dropout=, rslora) or the end of the item, got %s",
                    describe(ps->pool, t));
        if (seen[o])
            fail_at(ps, t->loc, "lora option '%s' is given twice", options[o]);
        seen[o] = true;
        ps->tok++;
        if (o == 3) {
            it->lora.rslora = true;
            continue;
        }
        if (!is_punct(ps->tok, '='))
            fail_at(ps, ps->tok->loc, "expected '=' after lora option '%s', got %s", options[o],
                    describe(ps->pool, ps->tok));
        ps->tok++;
        token *v = ps->tok;
        if (o == 0) {
            if (v->kind != TK_INT || v->ival <= 0 || v->ival > (1 << 20))
                fail_at(ps, v->loc, "lora r must be an integer from 1 to %d, got %s", 1 << 20, describe(ps->pool, v));
            it->lora.r = v->ival;
        } else {
            double x = v->kind == TK_INT ? (double)v->ival : v->kind == TK_REAL ? v->rval : NAN;
            if (o == 1 && !isfinite(x))
                fail_at(ps, v->loc, "lora alpha must be a finite number, got %s", describe(ps->pool, v));
            if (o == 2 && !(x >= 0 && x < 1))
                fail_at(ps, v->loc, "lora dropout must be a number in [0, 1), got %s", describe(ps->pool, v));
            *(o == 1 ? &it->lora.alpha : &it->lora.dropout) = x;
        }
        ps->tok++;
    }
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
        if (is_word(ps->tok, "batchnorm")) {
            ps->tok++;
            ast_cfg_item *it = VEC_PUSH(ps->pool, st->items, st->nitems, cap);
            it->kind = CFG_BATCHNORM;
            it->word = bn_mode(ps, &it->loc) ? "eval" : "train";
            if (ps->tok->kind != TK_NEWLINE && !is_punct(ps->tok, ';') && !is_punct(ps->tok, '}'))
                fail_at(ps, ps->tok->loc, "expected ';', '}' or end of line after 'batchnorm %s', got %s", it->word,
                        describe(ps->pool, ps->tok));
            continue;
        }
        if (is_word(ps->tok, "lora")) {
            ps->tok++;
            lora_item(ps, VEC_PUSH(ps->pool, st->items, st->nitems, cap));
            continue;
        }
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
            expected(ps, "'train', 'freeze', 'grad', 'batchnorm', 'lora' or '}'");
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
            fail_at(ps, ps->tok->loc, "expected %s after '%s'", kind == CFG_GRAD ? "an input name" : "a pattern", kw);
    }
    ps->tok++;
    ps->in_config = false;
}

/* NAME = callee(args), NAME = NAME, or NAME, NAME, ... = callee(args) (a
 * call with several results: chunk, split) */
static void assignment(parser *ps, ast_stmt *st) {
    st->kind = ST_BIND;
    st->name = def_name(ps, "a name", true, &st->name_loc);
    if (is_punct(ps->tok, ',')) {
        int cap = 0, lcap = 0, nlocs = 0;
        *VEC_PUSH(ps->pool, st->names, st->nnames, cap) = st->name;
        *VEC_PUSH(ps->pool, st->name_locs, nlocs, lcap) = st->name_loc;
        while (is_punct(ps->tok, ',')) {
            ps->tok++;
            src_loc loc;
            const char *name = def_name(ps, "a name", true, &loc);
            *VEC_PUSH(ps->pool, st->names, st->nnames, cap) = name;
            *VEC_PUSH(ps->pool, st->name_locs, nlocs, lcap) = loc;
        }
        if (!is_punct(ps->tok, '='))
            expected(ps, "'=' after the names (NAME, NAME, ... = chunk(...))");
        ps->tok++;
        token *op = ps->tok;
        if (op->kind != TK_IDENT || lex_is_keyword(op->text, op->len) || !is_punct(op + 1, '('))
            expected(ps, "a call of chunk or split (NAME, NAME, ... = chunk(x, n))");
        st->kind = ST_MULTI;
        st->op = tok_str(ps, op);
        st->op_loc = op->loc;
        ps->tok++;
        call_args(ps, &st->args, &st->nargs);
        end_of_stmt(ps, "the call");
        return;
    }
    if (!is_punct(ps->tok, '='))
        expected(ps, "'=' after the name (a binding is NAME = op(...))");
    ps->tok++;
    token *op = ps->tok;
    if (op->kind != TK_IDENT || lex_is_keyword(op->text, op->len))
        expected(ps, "an op name");
    ps->tok++;
    if (!is_punct(ps->tok, '(')) {
        /* `h = other`: another name for a value (not for an op) */
        if (op_find(tok_str(ps, op)) || !at_stmt_end(ps))
            fail_at(ps, ps->tok->loc, "expected '(' after op name '%.*s', got %s", op->len, op->text,
                    describe(ps->pool, ps->tok));
        st->kind = ST_ALIAS;
        st->value = name_expr(ps, op);
        return;
    }
    st->op = tok_str(ps, op);
    st->op_loc = op->loc;
    call_args(ps, &st->args, &st->nargs);
    end_of_stmt(ps, "the call");
}

static void block_stmt(parser *ps, ast_stmt *st, stmt_ctx ctx);

/* Recovery inside a block: skip to the end of the statement, over any
 * braces it opened, but not past the '}' closing the block. */
static void recover(parser *ps, bool in_block) {
    int depth = 0;
    for (;; ps->tok++) {
        const token *t = ps->tok;
        if (t->kind == TK_EOF)
            return;
        if (is_punct(t, '{')) {
            depth++;
        } else if (is_punct(t, '}')) {
            if (depth == 0 && in_block)
                return;
            depth -= depth > 0;
        } else if (depth == 0 && (t->kind == TK_NEWLINE || (in_block && is_punct(t, ';')))) {
            return;
        }
    }
}

/* { statements }: `what` names the construct for "not closed" ("def 'f'"),
 * reported at `owner`. Each statement has its own recovery point. */
static ast_block *block(parser *ps, stmt_ctx ctx, const char *what, src_loc owner) {
    token *t = ps->tok;
    while (t->kind == TK_NEWLINE) /* the brace may stand on the next line */
        t++;
    if (is_punct(t, '{'))
        ps->tok = t;
    if (!is_punct(ps->tok, '{'))
        expected(ps, "'{'");
    if (ps->depth >= MAX_BLOCK_DEPTH)
        fail_at(ps, ps->tok->loc, "blocks nested more than %d deep", MAX_BLOCK_DEPTH);
    ast_block *b = pool_alloc(ps->pool, sizeof *b);
    b->open_loc = ps->tok->loc;
    ps->tok++;
    int depth = ++ps->depth;
    jmp_buf *outer = ps->fail;
    for (;;) {
        while (ps->tok->kind == TK_NEWLINE || is_punct(ps->tok, ';'))
            ps->tok++;
        if (is_punct(ps->tok, '}'))
            break;
        if (ps->tok->kind == TK_EOF) {
            ps->depth = depth - 1;
            if (ps->eof_reported)
                longjmp(*outer, 1);
            ps->eof_reported = true;
            fail_at(ps, owner, "%s is not closed with '}'", what);
        }
        ast_stmt *st = VEC_PUSH(ps->pool, b->stmts, b->nstmts, b->capstmts);
        *st = (ast_stmt){0};
        jmp_buf here;
        ps->fail = &here;
        if (setjmp(here) == 0) {
            block_stmt(ps, st, ctx);
        } else {
            b->nstmts--;
            b->had_error = true;
            ps->depth = depth;
            ps->expr_depth = 0;
            recover(ps, true);
        }
        ps->fail = outer;
    }
    b->close_loc = ps->tok->loc;
    ps->tok++;
    ps->depth = depth - 1;
    return b;
}

/* if ... { } else if ... { } ... else { }: each `else if` adds an arm in
 * this loop, so a chain of any length nests nothing. */
static void if_stmt(parser *ps, ast_stmt *st, stmt_ctx ctx) {
    stmt_ctx inner = ctx == IN_TOP || ctx == IN_TOP_IF ? IN_TOP_IF : IN_DEF_IF;
    st->kind = ST_IF;
    st->loc = ps->tok->loc;
    int cap = 0;
    for (;;) {
        ast_arm *arm = VEC_PUSH(ps->pool, st->arms, st->narms, cap);
        arm->loc = ps->tok->loc;
        ps->tok++;
        arm->cond = expr(ps);
        arm->body = block(ps, inner, "'if'", arm->loc);
        token *t = ps->tok; /* `else` may stand on the line after the '}' */
        while (t->kind == TK_NEWLINE)
            t++;
        if (!is_word(t, "else"))
            return;
        ps->tok = t + 1;
        if (!is_word(ps->tok, "if")) {
            st->else_body = block(ps, inner, "'else'", t->loc);
            return;
        }
    }
}

static void return_stmt(parser *ps, ast_stmt *st) {
    st->kind = ST_RETURN;
    ps->tok++;
    token *t = ps->tok;
    if (!is_name(t))
        expected(ps, "a name or a call after 'return'");
    ps->tok++;
    if (is_punct(ps->tok, '(')) {
        st->op = tok_str(ps, t);
        st->op_loc = t->loc;
        call_args(ps, &st->args, &st->nargs);
        end_of_stmt(ps, "the call");
    } else {
        st->value = name_expr(ps, t);
        end_of_stmt(ps, "the returned name");
    }
}

/* A statement of a def or if block. */
static void block_stmt(parser *ps, ast_stmt *st, stmt_ctx ctx) {
    token *t = ps->tok;
    st->loc = t->loc;
    if (is_word(t, "if")) {
        if_stmt(ps, st, ctx);
        end_of_stmt(ps, "'}'");
    } else if (is_word(t, "return")) {
        if (ctx == IN_DEF_IF)
            fail_at(ps, t->loc,
                    "'return' inside 'if' is not supported; assign the result to a name in each "
                    "branch and return that name after the 'if'");
        if (ctx != IN_DEF)
            fail_at(ps, t->loc, "'return' outside of a def");
        return_stmt(ps, st);
    } else if (is_word(t, "else")) {
        fail_at(ps, t->loc, "'else' without 'if'");
    } else if (is_word(t, "def")) {
        fail_at(ps, t->loc, "'def' is only allowed at the top level");
    } else if (is_word(t, "optimizer") && !is_punct(t + 1, '=')) {
        fail_at(ps, t->loc, "'optimizer' is only allowed at the top level");
    } else if (is_word(t, "param") && !is_punct(t + 1, '=')) {
        fail_at(ps, t->loc, "'param' is only allowed at the top level, outside 'if' and 'def'");
    } else if (is_name(t)) {
        assignment(ps, st);
    } else {
        expected(ps, ctx == IN_DEF ? "NAME = op(...), 'if' or 'return'" : "NAME = op(...) or 'if'");
    }
}

static void def_stmt(parser *ps, ast_stmt *st) {
    const token *start = ps->tok;
    st->kind = ST_DEF;
    ps->tok++;
    st->name = def_name(ps, "a def name", false, &st->name_loc);
    if (!is_punct(ps->tok, '('))
        fail_at(ps, ps->tok->loc, "expected '(' and the parameters of def '%s', got %s", st->name,
                describe(ps->pool, ps->tok));
    ps->tok++;
    skip_continuation(ps);
    int cap = 0;
    while (!is_punct(ps->tok, ')')) {
        ast_param *prm = VEC_PUSH(ps->pool, st->params, st->nparams, cap);
        *prm = (ast_param){0};
        prm->name = def_name(ps, "a parameter name", false, &prm->loc);
        if (is_punct(ps->tok, '=')) {
            ps->tok++;
            const token *first = ps->tok;
            prm->dflt = expr(ps);
            const token *last = ps->tok - 1;
            prm->dflt_text = pool_strndup(ps->pool, first->text, last->pos + (size_t)last->len - first->pos);
        }
        skip_newlines_before_closer(ps, ')');
        if (!is_punct(ps->tok, ','))
            break;
        ps->tok++;
        skip_continuation(ps);
    }
    if (!is_punct(ps->tok, ')'))
        expected(ps, "',' or ')'");
    ps->tok++;
    st->body = block(ps, IN_DEF, pool_printf(ps->pool, "def '%s'", st->name), st->loc);
    st->ntokens = (int)(ps->tok - start);
    const ast_block *b = st->body;
    for (int k = 0; k + 1 < b->nstmts; k++)
        if (b->stmts[k].kind == ST_RETURN)
            fail_at(ps, b->stmts[k].loc, "'return' must be the last statement of def '%s'", st->name);
    if (!b->had_error && (b->nstmts == 0 || b->stmts[b->nstmts - 1].kind != ST_RETURN))
        fail_at(ps, b->close_loc, "def '%s' must end with 'return NAME' (or 'return op(...)')", st->name);
}

/* ":" DTYPE [ "[" expr { "," expr } "]" ] of an input or a param */
static void tensor_type(parser *ps, ast_stmt *st, const char *dtypes) {
    skip_punct(ps, ':');
    if (ps->tok->kind != TK_IDENT)
        expected(ps, dtypes);
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
        tensor_type(ps, st, "a dtype (f32 or i32)");
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
    } else if (is_word(t, "batchnorm") && !is_punct(t + 1, '=')) {
        st->kind = ST_BATCHNORM;
        ps->tok++;
        st->bn_eval = bn_mode(ps, &st->name_loc);
        end_of_stmt(ps, pool_printf(ps->pool, "'batchnorm %s'", st->bn_eval ? "eval" : "train"));
    } else if (is_word(t, "optimizer") && !is_punct(t + 1, '=')) {
        /* optimizer sgd(lr=0.1, momentum=0.9): passes/optim.c checks name, keys and values */
        st->kind = ST_OPTIMIZER;
        ps->tok++;
        if (ps->tok->kind != TK_IDENT || lex_is_keyword(ps->tok->text, ps->tok->len))
            expected(ps, "an optimizer name (sgd or adamw)");
        st->op = tok_str(ps, ps->tok);
        st->op_loc = ps->tok->loc;
        ps->tok++;
        if (is_punct(ps->tok, '(')) {
            call_args(ps, &st->args, &st->nargs);
            end_of_stmt(ps, "the optimizer's hyper-parameters");
        } else if (!at_stmt_end(ps)) {
            fail_at(ps, ps->tok->loc,
                    "expected '(' and hyper-parameters (KEY=VALUE), or end of line, after "
                    "'optimizer %s', got %s",
                    st->op, describe(ps->pool, ps->tok));
        }
    } else if (is_word(t, "param") && !is_punct(t + 1, '=')) {
        /* param cls_token : f32[1, 1, 192] init=normal(0.02) */
        st->kind = ST_PARAM;
        ps->tok++;
        st->name = def_name(ps, "a parameter name", true, &st->name_loc);
        tensor_type(ps, st, "a dtype (f32)");
        if (is_word(ps->tok, "init") && is_punct(ps->tok + 1, '=')) {
            ps->tok += 2;
            if (ps->tok->kind != TK_IDENT)
                expected(ps, "an init (zeros, ones or normal(std))");
            st->op = tok_str(ps, ps->tok);
            st->op_loc = ps->tok->loc;
            ps->tok++;
            if (is_punct(ps->tok, '(')) {
                ps->tok++;
                st->value = expr(ps);
                skip_punct(ps, ')');
            }
        }
        end_of_stmt(ps, "the parameter's type and init");
    } else if (is_word(t, "def")) {
        def_stmt(ps, st);
        end_of_stmt(ps, "'}'");
    } else if (is_word(t, "if")) {
        if_stmt(ps, st, IN_TOP);
        end_of_stmt(ps, "'}'");
    } else if (is_word(t, "return")) {
        fail_at(ps, t->loc, "'return' outside of a def");
    } else if (is_word(t, "else")) {
        fail_at(ps, t->loc, "'else' without 'if'");
    } else if (is_name(t)) {
        assignment(ps, st);
    } else {
        expected(ps, "a statement (model, const, input, param, NAME = op(...), output, config, default, def or if)");
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
    if (setjmp(ps->stop))
        return NULL;
    for (;;) {
        while (ps->tok->kind == TK_NEWLINE)
            ps->tok++;
        if (ps->tok->kind == TK_EOF)
            break;
        ast_stmt st = {0};
        jmp_buf top;
        ps->fail = &top;
        if (setjmp(top) == 0) {
            stmt(ps, &st);
            *VEC_PUSH(p, f->stmts, f->nstmts, f->capstmts) = st;
        } else {
            /* resume at the next statement */
            if (ps->in_config) {
                while (ps->tok->kind != TK_EOF && !is_punct(ps->tok, '}'))
                    ps->tok++;
                ps->in_config = false;
            }
            ps->depth = 0;
            ps->expr_depth = 0;
            recover(ps, false);
        }
    }
    f->eof_loc = ps->tok->loc;
    return d->errors > errors ? NULL : f;
}
