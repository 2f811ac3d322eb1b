/* ast.h: tokens and the syntax tree of a model file, shared by lex.c,
 * parse.c and elaboration (elab.h). The tree is plain data in the
 * compilation's pool; it keeps every construct's location so elaboration
 * can point at it. */
#ifndef FROST_AST_H
#define FROST_AST_H

#include "ir.h"

/* Characters in a name, the prefixes that def calls add included: what a
 * statement allocates is then bounded whatever the source (docs/language.md,
 * Limits). */
enum { MAX_NAME = 1024 };

/* ---------------------------------------------------------------- lex.c */

typedef enum {
    TK_IDENT,   /* [A-Za-z_][A-Za-z0-9_]* ( '.' [A-Za-z0-9_]+ )*  (keywords too) */
    TK_INT,     /* 128 */
    TK_REAL,    /* 0.25, 1e-5 */
    TK_PUNCT,   /* ( ) [ ] { } , = : ; + - * / % . ? ! ^ < > and == != <= >= */
    TK_NEWLINE, /* end of a statement (one for a run of blank lines) */
    TK_EOF,
} tok_kind;

typedef struct {
    tok_kind kind;
    const char *text; /* points into the source; not NUL-terminated */
    int len;
    size_t pos; /* byte offset in the source */
    src_loc loc;
    int64_t ival; /* TK_INT */
    double rval;  /* TK_REAL */
} token;

/* Checks that the source is text, then splits it into tokens ending with
 * TK_EOF. NULL after reporting errors. */
token *lex_tokens(pool *p, diag_ctx *d, int *ntok);
bool lex_equal(const token *t, const char *s); /* token text is s */
bool lex_is_keyword(const char *s, int len);

/* ---------------------------------------------------------------- parse.c */

typedef enum {
    EX_INT,  /* ival */
    EX_REAL, /* rval */
    EX_BOOL, /* ival 0/1 */
    EX_NAME, /* name: a const, a def's parameter or a tensor */
    EX_NEG,  /* -lhs */
    EX_BIN,  /* lhs op rhs, op one of + - * / % */
    EX_LIST, /* [items...], e.g. reshape's dims */
    EX_CMP,  /* lhs op rhs, op one of the CMP_* codes below */
    EX_AND,  /* lhs and rhs */
    EX_OR,   /* lhs or rhs */
    EX_NOT,  /* not lhs */
    EX_DIM,  /* dim(lhs, rhs): lhs an EX_NAME (a tensor), rhs the index */
    EX_CALL, /* name(args...): an op or def called inside an argument; its value is a tensor */
} ast_expr_kind;

/* EX_CMP's op: the operator's first character, or one of these for the
 * two-character ones */
enum { CMP_EQ = '=', CMP_NE = '!', CMP_LT = '<', CMP_LE = 'l', CMP_GT = '>', CMP_GE = 'g' };

typedef struct ast_expr ast_expr;
struct ast_expr {
    ast_expr_kind kind;
    src_loc loc; /* binary: the operator; dim: the word dim; call: the callee's name */
    int64_t ival;
    double rval;
    const char *name; /* name; call: the callee */
    char op;
    ast_expr *lhs, *rhs;
    ast_expr **items;
    int nitems;
    struct ast_stmt *call; /* call: an ST_BIND without a name (op, op_loc, args) */
};

typedef struct {
    const char *name; /* keyword argument's name, NULL when positional */
    src_loc loc;      /* the argument (its name when keyword) */
    ast_expr *value;
} ast_arg;

typedef enum { CFG_TRAIN, CFG_FREEZE, CFG_GRAD, CFG_BATCHNORM, CFG_LORA } ast_cfg_kind;
typedef struct {
    ast_cfg_kind kind;
    const char *word; /* glob pattern, "none", an input name, or "eval"/"train" (batchnorm) */
    src_loc loc;
    ir_lora lora; /* CFG_LORA: the adapter's options (word is the layers' pattern) */
} ast_cfg_item;

typedef enum {
    ST_MODEL,     /* model NAME */
    ST_CONST,     /* const NAME = value */
    ST_INPUT,     /* input NAME : dtype[dims] [grad] */
    ST_PARAM,     /* param NAME : dtype[dims] [init=WORD[(value)]]: op, op_loc the init, value its std */
    ST_BIND,      /* NAME = op(args), or NAME = def(args) */
    ST_MULTI,     /* NAME, NAME, ... = chunk(args) or split(args): names (name: the first), op, args */
    ST_OUTPUT,    /* output NAME, ... */
    ST_CONFIG,    /* config NAME { items } */
    ST_DEFAULT,   /* default NAME */
    ST_ALIAS,     /* NAME = value (an EX_NAME): a second name for a value */
    ST_DEF,       /* def NAME(params) { body } */
    ST_IF,        /* if c1 { ... } [ else if c2 { ... } ]... [ else { else_body } ]: arms */
    ST_RETURN,    /* return value (an EX_NAME), or return op(args) (op set) */
    ST_BATCHNORM, /* batchnorm eval|train: bn_eval */
    ST_OPTIMIZER, /* optimizer NAME [(KEY=VALUE, ...)]: op, op_loc, args */
} ast_stmt_kind;

typedef struct ast_stmt ast_stmt;

/* { statements } of a def or an if */
typedef struct {
    ast_stmt *stmts;
    int nstmts, capstmts;
    src_loc open_loc, close_loc; /* the braces */
    bool had_error;              /* a statement in it failed to parse (and was dropped) */
} ast_block;

/* One `if COND { ... }` of an if statement: the first, then each `else if`. */
typedef struct {
    src_loc loc; /* its 'if' */
    ast_expr *cond;
    ast_block *body;
} ast_arm;

typedef struct {
    const char *name;
    src_loc loc;
    ast_expr *dflt;        /* default value, NULL when the parameter is required */
    const char *dflt_text; /* its source text, for signatures in messages */
} ast_param;

struct ast_stmt {
    ast_stmt_kind kind;
    src_loc loc;      /* the statement's first token */
    const char *name; /* model/const/input/binding/alias/config/default/def name */
    src_loc name_loc;
    ast_expr *value;   /* const value; alias target; returned name */
    const char *dtype; /* input */
    src_loc dtype_loc;
    ast_expr **dims;
    int ndims;
    bool grad;      /* input ... grad */
    const char *op; /* binding, return of a call: the op or def called; optimizer: its name; param: init */
    src_loc op_loc;
    ast_arg *args;
    int nargs;
    const char **names;
    src_loc *name_locs;
    int nnames; /* output */
    ast_cfg_item *items;
    int nitems; /* config */
    ast_param *params;
    int nparams;     /* def */
    int ntokens;     /* def: its length in tokens, what each call of it costs (elab.c) */
    ast_block *body; /* def */
    /* if: the `if` and each `else if`, in order. A chain of else-ifs is one
     * statement, not nested ones, so that its length costs no stack. */
    ast_arm *arms;
    int narms;
    ast_block *else_body; /* if: the final `else`, NULL without */
    bool bn_eval;         /* batchnorm eval */
};

typedef struct {
    ast_stmt *stmts;
    int nstmts, capstmts;
    src_loc eof_loc;
} ast_file;

/* Recursive descent over the tokens. NULL after reporting syntax errors (it
 * reports at most one per statement and goes on with the next line). */
ast_file *parse_file(pool *p, diag_ctx *d, token *toks);

#endif
