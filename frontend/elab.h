/* elab.h: what the parts of elaboration (syntax tree -> ir_graph) share,
 * private to frontend/. Each section names the file that implements it:
 *
 *   elab.c      scopes and names, diagnostics, inputs, calls of ops and defs,
 *               the statements of any scope, the file (frontend_load)
 *   eval.c      compile-time values: expressions, conditions, tensor names,
 *               consts
 *   training.c  how the graph is trained: outputs, configs, default,
 *               optimizer
 */
#ifndef FROST_ELAB_H
#define FROST_ELAB_H

#include "ast.h"

/* A compile-time value, or a tensor (a value id). */
typedef enum { CV_INT, CV_REAL, CV_BOOL, CV_LIST, CV_TENSOR } cv_kind;
typedef struct {
    cv_kind kind;
    int64_t i;      /* int; bool 0/1; tensor: the value id */
    double r;       /* real */
    int64_t *items; /* list */
    int nitems;
} cval;

typedef struct {
    const char *name; /* as written in its scope: "conv1" inside a def, "layer1.0" at top level */
    bool poison;      /* its definition failed: uses of it fail silently */
    cval v;
    src_loc loc;
    const char *from_define; /* a const: "-D N=0" when its value comes from that override, directly or
                              * through the consts it is computed from; else NULL */
} sym;

/* A scope: the top level, or one call of a def. */
typedef struct frame frame;
struct frame {
    frame *parent;
    const ast_stmt *def; /* the ST_DEF being expanded; NULL at the top level */
    const char *prefix;  /* graph names made here are "<prefix>.<name>"; NULL at the top level */
    src_loc call_loc;    /* the callee's name in the call */
    int base, nsyms;     /* its symbols: e->syms[base, base + nsyms) */
    str_map sym_ids;     /* name -> index among them of its first symbol; built once there are
                           * more than SMALL_FRAME (a def body's own few names are scanned) */
    src_loc cur;         /* start of the statement (or else-if) being elaborated, for "used
                           * before its definition"; line 0: none */
    int depth;
};

typedef struct {
    src_loc at;
    const char *msg;
} seen_error;

/* A block whose statements elab_stmts() is walking: stmts[next] is next. */
typedef struct {
    const ast_stmt *stmts;
    int n, next;
} open_block;

typedef struct elab_ctx elab_ctx;
struct elab_ctx {
    pool *pool;
    diag_ctx *d;
    ir_graph *g;
    const ast_file *file;
    frame top;
    frame *fr;        /* the current scope */
    int errors;       /* errors so far, including repeats not printed again */
    frame *pending;   /* the last error was made in this frame: call notes are owed */
    bool quiet;       /* the last error was a repeat: its notes are not printed either */
    seen_error *seen; /* errors made inside defs, to report each once */
    int nseen, capseen;
    const ast_stmt **defs; /* the file's defs */
    bool *def_bad;         /* recursive or with bad parameters: calls fail silently */
    str_map *def_params;   /* per def: parameter name -> index */
    int ndefs, capdefs, capbad, capparams;
    str_map def_ids;    /* def name -> index in defs */
    str_map config_ids; /* config name -> index in g->configs */
    str_map output_ids; /* name of an output value -> index in g->outputs */
    sym scratch;        /* lookup result that is not a symbol of the scope */
    sym *syms;          /* the symbols of every frame, innermost last: a call's go when it ends */
    int nsyms, capsyms;
    int64_t expanded;    /* tokens of the defs called so far (MAX_EXPANSION) */
    bool halt;           /* a size limit was passed: stop elaborating */
    bool loss_named;     /* the first name of `output` has been seen: later ones are not the loss */
    const char *binding; /* graph name of the value being made: calls nested in its arguments are named after it */
    open_block *open;    /* elab_stmts' blocks, of every scope (innermost last) */
    int nopen, capopen;
};

/* ---------------------------------------------------------------- elab.c */

/* Past diag.c's error limit, or past one of elab.c's size limits,
 * elaboration stops: the loops over statements, arguments and items check
 * this. */
static inline bool halted(const elab_ctx *e) { return e->halt || e->d->stopped; }

/* An error at `at`. Inside a def, the same message at the same place is
 * counted but printed once, whatever the number of calls; the notes naming
 * the calls that led to it follow the next error or the statement's end. */
void elab_verr(elab_ctx *e, src_loc at, const char *fmt, va_list ap);

static inline void err(elab_ctx *e, src_loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void err(elab_ctx *e, src_loc at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    elab_verr(e, at, fmt, ap);
    va_end(ap);
}

/* A note on the last error; none when that was a repeat (quiet). */
static inline void note(elab_ctx *e, src_loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void note(elab_ctx *e, src_loc at, const char *fmt, ...) {
    if (e->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    diag_verror(e->d, "note", at, fmt, ap);
    va_end(ap);
}

/* "; did you mean 'x'?" for the closest candidate within 2 edits, else "". */
static inline const char *suggest(elab_ctx *e, const char *name, const char **cands, int n) {
    return diag_suggest(e->pool, name, cands, n);
}

static inline cval tensor_val(int v) { return (cval){.kind = CV_TENSOR, .i = v}; }

/* Names of the current scope (the definitions say more). */
void elab_add_sym(elab_ctx *e, const char *name, bool poison, cval v, src_loc loc); /* innermost scope */
bool elab_check_new_name(elab_ctx *e, const char *local, src_loc at);               /* false: a clash, reported */
sym *elab_resolve(elab_ctx *e, const char *name);                                   /* quiet; NULL: nothing */
sym *elab_lookup(elab_ctx *e, const char *name, src_loc at);                        /* NULL: reported, or poisoned */
/* A call inside an argument (EX_CALL), elaborated where it stands: its value
 * is named after the binding being made, "<binding>.<callee>" ("h.linear"
 * for h = relu(linear(x, 16))), with "_2", "_3"... when that name is taken.
 * *out: its value id; false after reporting. */
bool elab_nested_call(elab_ctx *e, const ast_expr *x, int64_t *out);

/* ---------------------------------------------------------------- eval.c */

/* Evaluate x in the current scope; `what` names the thing being computed,
 * for messages ("dimension 1 of input 'x'"). False after reporting. */
bool eval_int(elab_ctx *e, const ast_expr *x, const char *what, int64_t *out);
bool eval_real(elab_ctx *e, const ast_expr *x, const char *what, double *out);  /* a number */
bool eval_bool(elab_ctx *e, const ast_expr *x, const char *what, int64_t *out); /* as 0/1 */
bool eval_cond(elab_ctx *e, const ast_expr *x, const char *what, bool *out);    /* of `if`, `and`... */
bool eval_value(elab_ctx *e, const ast_expr *x, const char *what, cval *out);   /* of any kind */
bool eval_tensor(elab_ctx *e, const ast_expr *x, const char *what, int *out);   /* a value id */
const char *eval_sym_text(const sym *s);                                        /* "an integer constant", "a tensor" */
const char *eval_define_of(elab_ctx *e, const ast_expr *x);                     /* "-D N=0", or NULL */

void elab_const(elab_ctx *e, const ast_stmt *st, const frost_define *defs, int ndefs);

/* ---------------------------------------------------------------- training.c */

void elab_output(elab_ctx *e, const ast_stmt *st);
void elab_config(elab_ctx *e, const ast_stmt *st);
void elab_default(elab_ctx *e, const ast_stmt *st); /* after every config */
void elab_optimizer(elab_ctx *e, const ast_stmt *st);

#endif
