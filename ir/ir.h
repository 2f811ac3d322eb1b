/* ir.h: frost's internal interface. One header for the whole compiler; its
 * sections double as a table of contents:
 *
 *   pool.c        bump allocation, freed at once per compilation
 *   map.c         string -> int hash map for name tables
 *   diag.c        diagnostics: file:line:col: error: ... with source line and caret
 *   (graph)       values and nodes of the forward graph, built by frontend/elab.c
 *   ops.c         the op table: signature, shape rule, forward lowering, VJPs
 *   (program)     buffers and kernel steps, produced by passes/lower.c
 *   passes/       one file per pass, one entry point each; pipeline.c calls them in order
 *   codegen/      LLVM module, object file, C header
 *
 * Everything refers to everything else by small integer ids (indices into the
 * arrays of ir_graph / ir_program), never by pointer, so arrays may grow.
 */
#ifndef FROST_IR_H
#define FROST_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rt.h" /* rt_kernel: the kernels a lowered step calls */

/* ---------------------------------------------------------------- pool.c */

typedef struct pool pool;
pool *pool_new(void);
void pool_free(pool *p);
void *pool_alloc(pool *p, size_t size); /* zeroed, 16-byte aligned */
char *pool_strdup(pool *p, const char *s);
char *pool_strndup(pool *p, const char *s, size_t n);
char *pool_printf(pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Growable array stored in the pool: `T *items; int n, cap;` triples. */
#define VEC_PUSH(pl, items, n, cap)                                                                       \
    (((n) == (cap) ? (void)((items) = pool_grow((pl), (items), (n), &(cap), sizeof *(items))) : (void)0), \
     &(items)[(n)++])
void *pool_grow(pool *p, void *items, int n, int *cap, size_t elem_size);

/* ---------------------------------------------------------------- map.c */

/* Names to small integers (ids, indices). All zero is an empty map; the
 * table lives in the pool given to map_put. Keys are not copied and must
 * outlive the map. */
typedef struct map_slot map_slot;
typedef struct {
    map_slot *slots;
    int n, cap;
} str_map;
int map_find(const str_map *m, const char *key);            /* -1 if absent */
int map_findn(const str_map *m, const char *s, size_t len); /* key s[0..len) */
/* Add key -> value (value >= 0); false, leaving the map as it was, when the
 * key is present already (the first value stays). */
bool map_put(pool *p, str_map *m, const char *key, int value);
str_map map_copy(pool *p, const str_map *m); /* an independent copy in p (keys shared) */

/* ---------------------------------------------------------------- diag.c */

typedef struct {
    int line, col; /* 1-based; line 0 means "no location" */
} src_loc;

typedef struct diag_ctx {
    const char *file; /* name used in messages */
    const char *src;  /* whole source text (NUL-terminated), may be NULL */
    size_t src_len;
    FILE *out; /* where messages go (stderr in the CLI, a memstream in tests) */
    int errors, warnings;
    int error_limit; /* after this many errors, one "too many errors" and silence; 0: none */
    bool stopped;    /* the limit was passed: what reports errors should stop soon */
} diag_ctx;

#define DIAG_ERROR_LIMIT 20

/* error_limit is DIAG_ERROR_LIMIT. */
void diag_init(diag_ctx *d, const char *file, const char *src, size_t len, FILE *out);
/* Print "file:line:col: error: msg", then the source line and a caret under col.
 * Errors are counted even when stopped. */
void diag_error(diag_ctx *d, src_loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(diag_ctx *d, src_loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(diag_ctx *d, src_loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_verror(diag_ctx *d, const char *kind, src_loc at, const char *fmt, va_list ap);
/* Levenshtein distance of a and b for did-you-mean hints when it is at most
 * max, else max + 1; names over 64 bytes are never within max. */
int diag_edit_distance(const char *a, const char *b, int max);
/* Length of the valid UTF-8 sequence at s (n >= 1 bytes available), 0 when
 * it is not one. */
size_t diag_utf8_len(const unsigned char *s, size_t n);
/* "; did you mean 'x'?" for the candidate closest to name within 2 edits
 * that leave something in common ('b' does not suggest 'a'), else "". */
const char *diag_suggest(pool *p, const char *name, const char *const *cands, int n);

/* Internal invariant violated: a frost bug, never a user error. */
#define IR_ASSERT(c) ((c) ? (void)0 : ir_panic(__FILE__, __LINE__, #c))
_Noreturn void ir_panic(const char *file, int line, const char *what);

typedef struct {
    const char *name; /* -D NAME=VALUE */
    int64_t value;
} frost_define;

/* ---------------------------------------------------------------- shapes */

typedef enum {
    DT_F32,
    DT_I32,
    DT_U8,  /* e.g. arg-max position inside a pooling window */
    DT_BIT, /* bit-packed booleans, e.g. a ReLU's sign mask: ceil(n/8) bytes */
    DT_I64, /* counters: batch norm's num_batches_tracked, dropout's RNG state */
} ir_dtype;

#define IR_MAX_RANK 6
typedef struct {
    int rank;
    int64_t dim[IR_MAX_RANK];
} ir_shape;

int64_t shape_numel(const ir_shape *s);
/* Bytes of a tensor, or -1 when it would overflow int64 (callers report it). */
int64_t shape_bytes(const ir_shape *s, ir_dtype dt);
bool shape_eq(const ir_shape *a, const ir_shape *b);
const char *dtype_name(ir_dtype dt);               /* "f32", "i32", "u8", "bit", "i64" */
const char *shape_str(pool *p, const ir_shape *s); /* "[128, 784]" */

/* ---------------------------------------------------------------- graph */

typedef enum {
    VAL_INPUT,  /* supplied by the caller through the inputs struct */
    VAL_PARAM,  /* learnable, lives in the params block */
    VAL_BUFFER, /* non-learnable state in the params block (BN running stats) */
    VAL_ACT,    /* computed by a node */
} ir_val_kind;

typedef struct {
    const char *name; /* "x", "fc1.weight", "fc1" (a node's output takes the node's name) */
    ir_val_kind kind;
    ir_dtype dtype;
    ir_shape shape;
    int node; /* producing node for VAL_ACT, else -1 */
    src_loc loc;
    /* params: how ir_init() should fill it (see rt_init_* in runtime/rt.h) */
    int init;        /* INIT_* */
    int64_t fan_in;  /* for Kaiming/uniform bounds */
    double init_std; /* INIT_NORMAL: the standard deviation (sc_param_std); 0 means 1 */
    /* Set by the freeze configuration (passes/config.c): */
    bool trainable;  /* VAL_PARAM: receives a gradient */
    bool wants_grad; /* VAL_INPUT: the caller asked for d loss / d input */
    /* VAL_BUFFER that is run-time state, not model state (dropout's RNG
     * counter): left out of checkpoints. */
    bool nonpersistent;
} ir_value;

/* INIT_NORMAL: N(0, init_std^2); nn.Embedding's N(0, 1) by default */
enum { INIT_ZEROS, INIT_ONES, INIT_KAIMING_UNIFORM, INIT_BIAS_UNIFORM, INIT_NORMAL };

/* The optimizer compiled into the object (P_update, P_train_step). Its
 * hyper-parameters here are the defaults baked into the header; callers may
 * pass others at run time. */
typedef enum { OPT_SGD, OPT_ADAMW } ir_opt_kind;
typedef struct {
    ir_opt_kind kind;
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    bool nesterov;
} ir_optimizer;

/* optim.c. opt_init: PyTorch's defaults for "sgd" or "adamw" (false if the
 * name is neither). opt_set: one hyper-parameter by name (false if this
 * optimizer has no such key; nesterov takes 0/1). opt_check: what is wrong
 * with the values together, if anything (opt_problem). */
bool opt_init(ir_optimizer *o, const char *name);
bool opt_set(ir_optimizer *o, const char *key, double value);
const char *opt_keys(ir_opt_kind kind); /* "lr, momentum, ..." for messages */
const char *opt_name(ir_opt_kind kind);
typedef struct {
    const char *msg;  /* static, "momentum must be in [0, 1)"; NULL: the values are usable */
    const char *key;  /* the hyper-parameter it is about, */
    const char *also; /* and another it names, or NULL: where to point */
} opt_problem;
opt_problem opt_check(const ir_optimizer *o);

/* A model file's `optimizer NAME(KEY=VALUE, ...)` as the frontend collected
 * it: the name, and each argument's key and location. The values are
 * expressions only the frontend can evaluate: opt_read asks for each one
 * when its key has passed the checks, through eval(ctx, k, ...), as a number
 * or (as_bool) true/false as 1/0, named `what` in messages; eval returns
 * false after reporting why the value is not one. */
typedef struct {
    const char *key; /* NULL when given by position */
    src_loc loc;     /* the argument (its key when named) */
} opt_arg;
typedef struct {
    const char *name;
    src_loc name_loc;
    const opt_arg *args;
    int nargs;
    bool (*eval)(void *ctx, int k, const char *what, bool as_bool, double *out);
    void *ctx;
} opt_stmt;
/* The statement's optimizer: PyTorch's defaults for its name, then the
 * hyper-parameters given, checked together. Errors (an unknown optimizer or
 * key, a key given twice or by position, a value out of range) go to d at
 * the name or argument they are about; false after any. */
bool opt_read(ir_optimizer *o, const opt_stmt *st, pool *p, diag_ctx *d);
/* "unknown optimizer 'adam' (frost has sgd and adamw); did you mean 'adamw'?",
 * in p: the one message for the file's `optimizer` and for --optimizer. */
const char *opt_unknown(pool *p, const char *name);
int opt_slots(ir_opt_kind kind); /* state tensors per trainable parameter */

#define IR_MAX_IN 8
#define IR_MAX_ATTR 8
typedef struct {
    int op;            /* index into op_table */
    const char *name;  /* the name it was bound to, e.g. "fc1" */
    int in[IR_MAX_IN]; /* value ids: tensor arguments first, then the params it owns */
    int nin;
    int out;                   /* value id */
    int64_t attr[IR_MAX_ATTR]; /* op-specific integer attributes, meaning given by ops.c */
    int nattr;                 /* how many of attr[] the call filled (ARG_INTS makes it vary) */
    double fattr[IR_MAX_ATTR]; /* op-specific real attributes */
    src_loc loc;
    /* The def call whose body made it, by the call's name ("layer1.0" for
     * layer1.0.conv1 and for layer1.0.downsample.0); the innermost one when
     * calls nest; NULL at the top level. What `frost dot` collapses. */
    const char *call;
} ir_node;

/* `lora PATTERN r=8 alpha=16 dropout=0 rslora` in a configuration: the linear
 * layers whose names match become lora_linear layers (config.c). */
typedef struct {
    const char *pattern;
    src_loc loc;
    int64_t r;
    double alpha, dropout;
    bool rslora;
} ir_lora;

typedef struct {
    const char *name;
    src_loc loc;
    const char **train;
    int ntrain; /* glob patterns of trainable params; "*" all, none: ntrain=0 */
    src_loc *train_loc;
    const char **freeze;
    int nfreeze; /* patterns removed again after train */
    src_loc *freeze_loc;
    const char **grad;
    int ngrad; /* inputs that want a gradient */
    src_loc *grad_loc;
    bool bn_eval;        /* `batchnorm eval`: batch norm on running statistics when training too */
    src_loc bn_eval_loc; /* the config's `batchnorm` item; line 0: inherited from the model's default */
    ir_lora *lora;       /* adapters, in the order given */
    int nlora;
} ir_config;

typedef struct {
    pool *pool;
    const char *model; /* `model NAME` */
    ir_value *vals;
    int nvals, capvals;
    str_map val_ids; /* value name -> the first value of that name; ir_add_value keeps it */
    ir_node *nodes;
    int nnodes, capnodes; /* in definition order = a topological order */
    int *outputs;
    int noutputs, capoutputs; /* value ids; outputs[0] is the loss */
    ir_config *configs;
    int nconfigs, capconfigs;
    int default_config;          /* index into configs, or -1 */
    const char *default_builtin; /* `default all` / `default none` (no such config in the file), else NULL */
    bool bn_eval;                /* top-level `batchnorm eval`: the mode of configs that don't say */
    bool has_optimizer;          /* the file has an `optimizer` statement: */
    ir_optimizer optimizer;      /*   its choice and hyper-parameters */
    src_loc optimizer_loc;
} ir_graph;

ir_graph *ir_graph_new(pool *p);
/* A graph for one more run of the passes on what the frontend built once
 * (frost compare): in pool p, with values, nodes and the name table of its
 * own (pass_config marks values trainable, and a configuration's lora items
 * rewrite nodes and add values); outputs and configs are shared with g, which
 * must outlive it. */
ir_graph *ir_graph_fork(pool *p, const ir_graph *g);
int ir_add_value(ir_graph *g, const char *name, ir_val_kind kind, ir_dtype dt, ir_shape shape, src_loc loc);
int ir_find_value(const ir_graph *g, const char *name); /* -1 if absent */
void ir_dump_graph(const ir_graph *g, FILE *out);

/* ---------------------------------------------------------------- shape rules
 * What an op's shape rule (op_def.infer in ops.c) may ask of the frontend
 * that builds the graph (frontend/elab.c implements it): the counterpart of
 * lower_ctx and the lc_* functions below. */
typedef struct shape_ctx shape_ctx;
const ir_graph *sc_graph(shape_ctx *sc);                       /* the graph so far (and its pool) */
const ir_value *sc_in(shape_ctx *sc, const ir_node *n, int i); /* input i of n */
/* A trainable param "<node name>.<suffix>" owned by n, appended to n->in;
 * its value id. fan_in: for the kaiming/bias init bounds (-1: too large). */
int sc_param(shape_ctx *sc, ir_node *n, const char *suffix, ir_dtype dt, ir_shape shape, int init, int64_t fan_in);
/* The standard deviation of an INIT_NORMAL param made by sc_param (value
 * id v): N(0, std^2) instead of N(0, 1). */
void sc_param_std(shape_ctx *sc, int v, double std);
/* Likewise a buffer: state the op keeps but nothing trains (running
 * statistics, counters). Persistent buffers are part of the state_dict and
 * of checkpoints; the others (an RNG counter) are not. */
int sc_buffer(shape_ctx *sc, ir_node *n, const char *suffix, ir_dtype dt, ir_shape shape, int init, bool persistent);
/* Report an error; the shape rule then returns false. */
void sc_error(shape_ctx *sc, src_loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- ops.c
 * The op table. Each op lives in one place in ops.c: its call signature, its
 * shape rule (which also creates the params it owns), its forward lowering and
 * one VJP per differentiable input together with the residuals that VJP needs.
 */

/* What a VJP reads from forward time. Bit i < 8: input i in full. */
#define NEED_IN(i) (1u << (i))
#define NEED_OUT (1u << 8)             /* the output in full */
#define NEED_OUT_SIGN (1u << 9)        /* only out > 0: satisfied by OUT if kept anyway, else a 1-bit mask */
#define NEED_AUX(k) (1u << (10 + (k))) /* auxiliary tensor k the forward can emit (probs, arg-max, seed, ...) */
#define IR_MAX_AUX 4

typedef struct lower_ctx lower_ctx; /* passes/lower.c */

/* ARG_TENSORS: a list of 1 to IR_MAX_IN tensors, [a, b, ...] (concat), the
 * op's only tensor argument: they are n->in[0..k) */
typedef enum { ARG_TENSOR, ARG_INT, ARG_FLOAT, ARG_BOOL, ARG_INTS, ARG_TENSORS } op_arg_kind;
typedef struct {
    const char *name;
    op_arg_kind kind;
    bool has_default;
    double default_value; /* ints/bools/floats; ARG_INTS never defaults */
} op_arg;

#define OP_MAX_ARGS 10
typedef struct op_def {
    const char *name;
    op_arg args[OP_MAX_ARGS]; /* positional order; keyword by name; tensors first */
    int nargs;
    /* Shape rule. On entry n->in[0..ntensor) are set and n->attr[k] / fattr[k]
     * hold the k-th non-tensor argument (ints in attr, floats in fattr, by
     * argument position among non-tensor args). It checks, creates owned params
     * with sc_param() / sc_buffer(), sets the output dtype/shape, and returns false after
     * reporting an error at n->loc. */
    bool (*infer)(shape_ctx *sc, ir_node *n, ir_dtype *out_dt, ir_shape *out_shape);
    /* Which inputs are differentiable (bit i = input i). */
    uint32_t diff_inputs;
    /* Residual needs of the VJP w.r.t. input i (may depend on the mode:
     * lc_training, lc_bn_eval). */
    uint32_t (*needs)(lower_ctx *c, const ir_node *n, int input);
    /* Shape/dtype of auxiliary tensor k, if the op has any, and what it is
     * (for docs/autodiff.md's needs table, which tests/unit/test_lower.c
     * generates from this table and the needs hooks). */
    int naux;
    const char *aux_doc[IR_MAX_AUX];
    void (*aux_shape)(const ir_graph *g, const ir_node *n, int k, ir_dtype *dt, ir_shape *shape);
    /* Emit forward steps. lower_ctx says which aux tensors are wanted. */
    void (*forward)(lower_ctx *c, const ir_node *n);
    /* Emit the steps that add d loss/d input[i] into its gradient buffer. */
    void (*vjp)(lower_ctx *c, const ir_node *n, int input);
    /* The output is input 0 reinterpreted (reshape): same storage, no kernel. */
    bool is_view;
    /* Output element i depends only on element i of each input of the output's size
     * (relu, add): the output may take over the storage of such an input that dies
     * at this op (ir_buf.inplace_of). */
    bool elementwise;
    /* Outside training (the infer program) the op is the identity (dropout):
     * its output there is a view of input 0. */
    bool identity_in_infer;
    /* Forward is cheap (linear in the output's size), deterministic and has no
     * side effects, and reads nothing but its inputs: when a later VJP keeps
     * the output in full while this op's inputs are kept anyway, backward runs
     * forward again instead of keeping the output (lower.c, recompute). */
    bool recomputable;
} op_def;

/* A lora_linear node's adapter, for the generated header's adapter table
 * (codegen/header.c): value ids of the base weight and of lora_A/lora_B, and
 * how the update W += scale B A is laid out. */
typedef struct {
    int weight, lora_a, lora_b; /* value ids */
    int64_t r;
    double alpha, scale, dropout;
    bool in_out, rslora; /* weight stored [in, out]; scale alpha / sqrt(r) */
} ir_adapter;
/* True (and *a filled) when n is an adapted linear layer (ops.c, lora_linear). */
bool ir_lora_adapter(const ir_node *n, ir_adapter *a);
/* Turn linear node n into a lora_linear one with l's adapter: the same node
 * (every value keeps its id, the graph its order) with the params
 * <name>.lora_A.weight [r, in] (drawn like a linear weight) and
 * <name>.lora_B.weight [out, r] (zeros), and with dropout a non-persistent
 * RNG buffer, as lora_linear's shape rule makes them (config.c's lora items). */
void ir_lora_adapt(ir_graph *g, ir_node *n, const ir_lora *l);

extern const op_def op_table[];
extern const int op_count;
const op_def *op_find(const char *name); /* NULL if unknown */

/* ---------------------------------------------------------------- lower.c
 * What an op's forward/vjp hooks may ask of the lowering pass. Buffer id -1
 * stands for "absent" and is passed to kernels as a null pointer. */
int lc_in(lower_ctx *c, const ir_node *n, int i);         /* forward: buffer holding input i */
int lc_out(lower_ctx *c, const ir_node *n);               /* forward: buffer for the output */
int lc_aux(lower_ctx *c, const ir_node *n, int k);        /* forward: aux k, -1 when nobody needs it */
void lc_alias_out(lower_ctx *c, const ir_node *n, int i); /* forward: output is input i reinterpreted */
/* backward: the buffer that satisfies one need (NEED_IN(i), NEED_OUT or NEED_AUX(k)) */
int lc_saved(lower_ctx *c, const ir_node *n, uint32_t need);
/* backward: what NEED_OUT_SIGN resolved to: the output itself or its 1-bit mask */
int lc_saved_sign(lower_ctx *c, const ir_node *n, bool *is_mask);
int lc_grad_out(lower_ctx *c, const ir_node *n); /* backward: d loss / d output */
/* backward: buffer receiving d loss / d input i; *acc = 1 when it already holds
 * an earlier contribution that must be added to */
int lc_grad_in(lower_ctx *c, const ir_node *n, int i, int64_t *acc);
/* backward: d input i = d output, reinterpreted (reshape) or passed through (add);
 * shares storage when that is safe, otherwise copies/accumulates */
void lc_grad_pass(lower_ctx *c, const ir_node *n, int i);
/* backward: the inputs of n whose VJPs survive (bit i = input i), for an op
 * whose one backward step computes several input gradients (attention) */
uint32_t lc_vjps(lower_ctx *c, const ir_node *n);
/* Append one call of a kernel of rt.h's RT_STEP_KERNELS, its operands made
 * with the LC_* constructors below, one per letter of the kernel's operand
 * string, in order:
 *     lc_step(c, n, RTK_relu_fwd, LC_R(x), LC_W(y), LC_I(count));
 * A constructor that does not match the kernel's letter (LC_R where it
 * writes, a missing operand) stops the compiler with an internal error naming
 * the kernel and the operand: every op is lowered by the test `lower`. A
 * buffer id of -1 is an absent operand (NULL). */
typedef struct {
    char letter; /* r w s i n f, as in RT_STEP_KERNELS */
    int buf;
    int64_t i;
    double f;
} lc_arg;
#define LC_R(b) ((lc_arg){'r', .buf = (b)})        /* a buffer read */
#define LC_W(b) ((lc_arg){'w', .buf = (b)})        /* a buffer written */
#define LC_S(b) ((lc_arg){'s', .buf = (b)})        /* scratch (lc_scratch) */
#define LC_I(v) ((lc_arg){'i', .i = (int64_t)(v)}) /* an integer */
#define LC_IMAGES ((lc_arg){'n', .i = 1})          /* images at once: 1, widen.c may raise it */
#define LC_F(v) ((lc_arg){'f', .f = (double)(v)})  /* a float */
#define lc_step(c, n, kernel, ...)                                  \
    lc_step_args((c), (n), (kernel), (const lc_arg[]){__VA_ARGS__}, \
                 (int)(sizeof((const lc_arg[]){__VA_ARGS__}) / sizeof(lc_arg)))
void lc_step_args(lower_ctx *c, const ir_node *n, rt_kernel kernel, const lc_arg *args, int nargs);
/* Name ("rt_relu_fwd") and operand letters of a kernel of RT_STEP_KERNELS. */
typedef struct {
    const char *name;
    const char *operands;
} rt_kernel_desc;
extern const rt_kernel_desc rt_kernels[RTK_COUNT];
const ir_graph *lc_graph(lower_ctx *c);
/* The program being built is the train program (dropout active, batch norm on
 * batch statistics unless lc_bn_eval). */
bool lc_training(lower_ctx *c);
/* Training with batch norm in eval mode (running statistics, no updates). */
bool lc_bn_eval(lower_ctx *c);
/* forward: a temporary arena buffer of `numel` elements, live for one step. */
int lc_scratch(lower_ctx *c, const ir_node *n, ir_dtype dt, int64_t numel);
/* The step just appended, of a kernel with an `n` operand (images at once)
 * and an `s` one (its scratch), may do b > 1 images at once given b *
 * blocked_bytes of scratch: widen.c picks b, at most blocks_max, from the
 * arena space free at that step. */
void lc_step_blocks(lower_ctx *c, int64_t blocks_max, int64_t blocked_bytes);

/* ---------------------------------------------------------------- program
 * The lowered form: buffers and a linear list of kernel calls. Codegen turns
 * each step into one call of a runtime kernel (runtime/rt.h) whose pointer
 * arguments are buffers and whose scalar arguments are constants.
 */

typedef enum {
    SPACE_ARENA,  /* planned into the train or infer arena */
    SPACE_PARAMS, /* params block, offset fixed by the param table */
    SPACE_GRADS,  /* grads block: trainable param grads, then input grads */
    SPACE_INPUT,  /* caller's pointer: inputs struct field `index` */
    SPACE_OUTPUT, /* caller's pointer: outputs struct field `index` (may be NULL) */
} ir_space;
const char *space_name(ir_space s); /* "arena", "params", "grads", "input", "output" */

typedef enum {
    BUF_INPUT,
    BUF_PARAM,
    BUF_PARAM_GRAD,
    BUF_INPUT_GRAD,
    BUF_OUTPUT,  /* outside the arena */
    BUF_ACT,     /* forward activation */
    BUF_SAVED,   /* derived for backward only: 1-bit mask, input copy, aux (probs, arg-max) */
    BUF_GRAD,    /* gradient of an activation */
    BUF_SCRATCH, /* temporary of one step */
    BUF_STATE,   /* the arena's state word (state.c): no step touches it, codegen does */
} ir_buf_kind;

typedef struct {
    const char *name; /* "fc1", "fc1.weight", "d fc1", "fc1 mask" ... */
    ir_buf_kind kind;
    ir_space space;
    ir_dtype dtype;
    ir_shape shape;
    int64_t bytes;         /* shape_bytes() */
    int64_t planned_bytes; /* bytes when plan.c placed it: widen.c grows a scratch past it, into
                            * space free at its step, without changing the plan */
    int value;             /* graph value it holds or derives from, -1 for scratch */
    int index;             /* SPACE_INPUT/SPACE_OUTPUT: struct field index */
    int alias_of;          /* -1, or the buffer whose storage this one shares (reshape) */
    int inplace_of;        /* -1, or a buffer whose storage this one may take over at its first
                           * write (element-wise ops, set by lower.c); plan.c does so only when
                           * that storage's last use is the step that first writes this one */
    int64_t offset;        /* byte offset in its space; arena offsets set by plan.c */
    /* Liveness (liveness.c), in step indices; arena buffers only. A residual
     * is an arena buffer with first < nfwd <= last. */
    int first, last;
} ir_buf;

typedef enum { OPND_BUF, OPND_INT, OPND_FLOAT, OPND_NULL /* null pointer: optional operand absent */ } ir_opnd_kind;
typedef struct {
    ir_opnd_kind kind;
    int buf;     /* OPND_BUF */
    int64_t i;   /* OPND_INT */
    double f;    /* OPND_FLOAT */
    bool writes; /* OPND_BUF: the kernel writes this buffer (reads it too if accumulating) */
} ir_opnd;

#define IR_MAX_OPND 24
typedef struct {
    const char *kernel; /* runtime function name, e.g. "rt_relu_fwd" */
    ir_opnd opnd[IR_MAX_OPND];
    int nopnd;
    int node; /* graph node it belongs to, -1 for glue (copies, seeds) */
    /* A step whose kernel can do its work in blocks of several images given
     * more scratch (conv2d's GEMMs): widen.c may set the int operand
     * blocks_opnd to up to blocks_max, with blocks_opnd's value times
     * blocked_bytes of scratch in the buffer of operand scratch_opnd.
     * blocks_opnd < 0: not such a step. */
    int blocks_opnd, scratch_opnd;
    int64_t blocks_max, blocked_bytes;
} ir_step;

typedef struct {
    ir_buf *bufs;
    int nbufs, capbufs;
    ir_step *steps;
    int nsteps, capsteps;
    int nfwd; /* steps [0, nfwd) run in forward/infer, [nfwd, nsteps) in backward */
    /* Filled by plan.c: */
    int64_t arena_bytes;    /* size of the planned arena */
    int64_t lower_bound;    /* max over steps of the sum of live arena bytes */
    int64_t residual_bytes; /* arena bytes live across the forward/backward boundary */
} ir_program;


/* The whole result of compiling one model under one configuration. */
typedef struct {
    ir_graph *graph;
    const ir_config *config; /* NULL when trainability came only from the command line */
    const char *config_desc; /* the configuration and what the command line changed in it,
                               * "head + --train fc1.*" (config.c); NULL: a module built by hand */
    bool bn_eval;            /* batch norm uses running statistics in the train program too */
    ir_program train;        /* forward + backward */
    ir_program infer;        /* forward only, nothing kept */
    int64_t params_bytes;    /* params and buffers, each at an aligned offset */
    int64_t grads_bytes;     /* trainable param grads + input grads */
    int64_t *param_offset;   /* per value id: offset in params, -1 if not a param/buffer */
    int64_t *grad_offset;    /* per value id: offset in grads, -1 if none */
    ir_optimizer opt;        /* the update P_update / P_train_step perform */
    int64_t opt_state_bytes; /* step counter, then opt_slots() tensors per trainable param */
    int64_t *opt_offset;     /* per value id: offset of its first state tensor, -1 if none */
    /* --infer-only: m->train is empty (no steps, no buffers, never planned),
     * nothing is trainable; codegen emits init and infer only. */
    bool infer_only;
    /* --checked: pass_guard spaced the arenas; codegen fills and verifies the
     * guards and scans every step's f32 outputs for NaN/Inf. */
    bool checked;
} ir_module;

#define IR_OPT_HEADER_BYTES IR_ALIGN /* the optimizer state starts with an i64 step counter */

#define IR_ALIGN 64 /* alignment of every block and every buffer in it */
static inline int64_t ir_align_up(int64_t x) { return (x + IR_ALIGN - 1) & ~(int64_t)(IR_ALIGN - 1); }

int ir_add_buf(pool *p, ir_program *prog, const char *name, ir_buf_kind kind, ir_space space, ir_dtype dt,
               ir_shape shape, int value);
/* The buffer that owns b's storage: the end of b's alias_of chain (b itself
 * when it aliases nothing). -1 when the chain is broken: it names a buffer
 * the program does not have, or comes back on itself. validate.c, the
 * checker, walks the chains on its own. */
int ir_storage_root(const ir_program *prog, int b);
/* ir_storage_root of every buffer, into root[0..nbufs), in linear time (each
 * chain is walked once); a broken chain is a frost bug (IR_ASSERT). */
void ir_storage_roots(const ir_program *prog, int *root);
void ir_dump_program(const ir_program *prog, FILE *out);

/* ---------------------------------------------------------------- passes */

/* config.c: apply a named configuration plus command-line patterns (which
 * params train, which inputs want gradients) and decide the batch-norm mode
 * (m->bn_eval); reports patterns that match nothing. */
typedef struct {
    const char *key;
    double value;
} frost_opt_setting;

typedef struct {
    const char *config; /* --config NAME, NULL: the file's default (or none) */
    const char **train;
    int ntrain; /* --train PATTERN */
    const char **freeze;
    int nfreeze; /* --freeze PATTERN */
    const char **grad;
    int ngrad;             /* --grad INPUT */
    const char *optimizer; /* --optimizer NAME, NULL: the model's (or sgd) */
    const frost_opt_setting *opt_settings;
    int nopt_settings; /* --opt KEY=VALUE */
    bool bn_eval;      /* --batchnorm-eval: as a config's `batchnorm eval` */
    bool infer_only;   /* --infer-only: no train program, nothing trainable */
    bool checked;      /* --checked: guard gaps in the plan, checks after every step */
    const char *dump;  /* -d LETTERS: what frost_build dumps, NULL: nothing */
} frost_select;
bool pass_config(ir_module *m, const frost_select *sel, diag_ctx *d);
/* Every configuration of g by name, each once: all, the file's in their
 * order, none (pool-allocated in g's pool). */
const char **config_names(const ir_graph *g, int *n);
/* optim.c: the optimizer: the model's `optimizer` statement (or sgd), then
 * --optimizer / --opt from the command line. */
bool pass_optimizer(ir_module *m, const frost_select *sel, diag_ctx *d);
bool glob_match(const char *pattern, const char *name);

/* pipeline.c: the whole middle end: frontend, config, optimizer, layout,
 * lower, then for the train and the infer program liveness, plan, widen,
 * state, validate. NULL after reporting errors. With sel->dump, it writes
 * the IR to d->out after the passes its letters name (like QBE's -d):
 *   g  the graph after configuration: values (trainable, grad), nodes, configs
 *   l  the train and infer programs after lowering: buffers and steps
 *   p  each program after liveness and planning: live steps, offsets, arena
 *   w  each program after scratch widening: block counts, grown scratch */
#define FROST_DUMP_LETTERS "glpw"

ir_module *frost_build(pool *p, diag_ctx *d, const frost_define *defs, int ndefs, const frost_select *sel);
/* The same after the frontend, for a graph it made; the passes allocate in
 * g->pool. */
ir_module *frost_build_graph(ir_graph *g, diag_ctx *d, const frost_select *sel);

/* layout.c: the params, grads and optimizer-state blocks: param_offset,
 * grad_offset, opt_offset and the three sizes. Fails (after reporting) when
 * they add up to more than int64 holds. layout_add: *total += `copies`
 * aligned copies of a tensor of `bytes` (>= 0), false when that overflows;
 * layout_too_large reports it, naming the tensor that did. */
bool pass_layout(ir_module *m, diag_ctx *d);
bool layout_add(int64_t *total, int64_t bytes, int64_t copies);
void layout_too_large(diag_ctx *d, src_loc at, const char *name);
/* lower.c (after layout.c): autodiff + residual selection; builds m->train
 * and m->infer (m->train unless m->infer_only), for a model with an output
 * (the pipeline checks). Fails (after reporting) when the blocks and the
 * arena buffers add up to more than int64 holds; past it,
 * no size or offset that a later pass computes from them can overflow. */
bool pass_lower(ir_module *m, diag_ctx *d);
/* What node n's VJP w.r.t. input i reads from forward time (NEED_* bits) in
 * the train program (training) or the infer one, batch norm in eval mode or
 * not: op_def.needs outside a lowering, for the docs' needs table. */
uint32_t lower_op_needs(const ir_graph *g, const ir_node *n, int input, bool training, bool bn_eval);
/* liveness.c: first/last of every arena buffer of a program. */
void pass_liveness(ir_program *prog);
/* plan.c: arena offsets, arena_bytes, lower_bound, residual_bytes. */
void pass_plan(ir_program *prog);
/* widen.c (after plan.c): steps that can work in blocks of images get the
 * largest block that the arena's free space at that step holds, capped by
 * the step's blocks_max; their scratch moves into that space. arena_bytes and
 * lower_bound do not change. */
void pass_widen(ir_program *prog);
/* state.c (after widen.c): the first IR_ARENA_STATE_BYTES of the arena
 * become the state word that forward, backward and infer keep (codegen):
 * every planned arena buffer moves up by that much, arena_bytes and
 * lower_bound (and, for the train program, residual_bytes) grow by it, and
 * a buffer of kind BUF_STATE at offset 0 stands for it. */
#define IR_ARENA_STATE_BYTES IR_ALIGN
void pass_state(pool *p, ir_program *prog, bool train);
/* The BUF_STATE buffer of prog, -1 when it has none (not planned yet, or a
 * program built by hand). */
int ir_state_buf(const ir_program *prog);
/* guard.c (after state.c, --checked only): every arena storage gets
 * IR_GUARD_BYTES of guard before and after it, and the arena one more at its
 * end: offsets move up by a monotone function of the offset (so storages that
 * shared bytes still do, in-place pairs included, and storages live together
 * stay apart with their guards), arena_bytes, lower_bound and residual_bytes
 * grow accordingly. The state word stays at offset 0. */
#define IR_GUARD_BYTES IR_ALIGN
void pass_guard(ir_program *prog, bool train);
/* The size the header gives a user block (params, grads, optimizer state) of
 * `bytes` when checked: its last IR_GUARD_BYTES are the block's guard. An
 * empty block stays empty (its pointer may be NULL). */
static inline int64_t ir_checked_block(int64_t bytes) { return bytes > 0 ? ir_align_up(bytes) + IR_GUARD_BYTES : 0; }
/* validate.c: no two arena buffers with overlapping lives overlap in memory;
 * every step operand is in bounds. Returns false and prints the offending pair. */
bool pass_validate(const ir_program *prog, FILE *out);

/* ---------------------------------------------------------------- frontend
 * lex.c, parse.c (AST in frontend/ast.h), elab.c with eval.c and training.c
 * (AST -> graph; what they share in frontend/elab.h). */
/* Parse d->src and build the graph. -D overrides must name a `const` of the
 * file. Returns NULL after reporting errors through d. */
ir_graph *frontend_load(pool *p, diag_ctx *d, const frost_define *defs, int ndefs);

/* ---------------------------------------------------------------- codegen */
typedef enum { CG_GEMM_FROST = 0, CG_GEMM_OPENBLAS = 1 } cg_gemm;
typedef struct {
    const char *prefix; /* symbol and macro prefix; default: the model name */
    const char *triple; /* NULL: host */
    const char *cpu;    /* NULL: host CPU */
    int opt_level;      /* 0..3 */
    cg_gemm gemm;       /* whose GEMM the kernels call; default frost's */
} cg_options;
/* Write the object file to path. On failure returns false with a message in *err
 * (malloc'd). */
bool cg_emit_object(const ir_module *m, const cg_options *o, const char *path, char **err);
/* target.c: is o's triple a registered target and o's CPU (if given) one it
 * knows? Run before cg_emit_object: LLVM aborts the process on some unknown
 * CPUs. false with a message (malloc'd) that names the closest CPUs. */
bool cg_check_target(const cg_options *o, char **err);
/* The CPU names of o's target (the host's by default), one per line. */
bool cg_list_cpus(const cg_options *o, FILE *out, char **err);
/* Write the C header for the object. */
void cg_emit_header(const ir_module *m, const cg_options *o, FILE *out);

/* ---------------------------------------------------------------- views
 * What a user sees of a plan: views/plan.c, views/compare.c, views/dot.c, and
 * the hand-drawn pictures of plan and compare in views/svg.c. */
typedef enum { FMT_TEXT, FMT_JSON, FMT_MARKDOWN, FMT_CSV, FMT_DOT, FMT_SVG, FMT_PNG } view_format;
const char *buf_kind_name(ir_buf_kind k); /* "act", "saved", "grad", ... */
/* "1.50 MiB"; s must hold 32 bytes */
const char *view_bytes(char s[32], int64_t bytes);
/* A step's kernel as the views name it: "conv2d_fwd" for rt_conv2d_fwd. */
const char *view_kernel(const ir_step *s);
/* The storage a buffer's bytes belong to (the root of its alias chain). */
const ir_buf *view_storage(const ir_program *prog, const ir_buf *b);
/* Live across the forward/backward boundary: kept from forward for backward. */
bool view_is_residual(const ir_program *prog, const ir_buf *b);
/* The buffer whose storage b took over in place (plan.c merged them), or NULL. */
const ir_buf *view_took_over(const ir_program *prog, const ir_buf *b);
/* Arena bytes in use at each step as planned (malloc'd, nsteps entries):
 * each storage at its aligned planned size over [first, last], an in-place
 * pair once at its handover step, as plan.c counts; the maximum is
 * prog->lower_bound. */
int64_t *view_step_load(const ir_program *prog);
void view_json_string(FILE *out, const char *s);
void view_xml_string(FILE *out, const char *s); /* escaped for SVG text and attributes */

/* What `frost plan` and `frost dot` show beyond their defaults (NULL: none). */
#define VIEW_COLLAPSE_STEPS 60 /* dot: more steps to draw than this: def calls collapse */
typedef enum { COLLAPSE_AUTO, COLLAPSE_ALWAYS, COLLAPSE_NEVER } view_collapse;
typedef struct {
    bool steps;            /* plan: every step: kernel, node, live bytes, reads, writes */
    const char *from, *to; /* dot: the nodes from the first of FROM to the last of TO, where a
                             * name stands for the node of that name and those under it (NAME.*) */
    const char **only;
    int nonly;              /* dot: the nodes whose name, or a dotted prefix of it, matches one
                                   * of these globs */
    view_collapse collapse; /* dot: --collapse, --expand; AUTO: above VIEW_COLLAPSE_STEPS steps */
} view_options;

void view_plan(const ir_module *m, view_format fmt, const view_options *o, FILE *out);
/* Name of the configuration m was built with and what the command line
 * changed in it (m->config_desc: "head + --train fc1.*"); for a module
 * built by hand its `config`, else "all" or "none" when every or no
 * parameter trains (and no input wants a gradient), else "(command line)".
 * The title of every view and the header's "Configuration:" line. */
const char *view_config_name(const ir_module *m);
/* One row of `frost compare`: one configuration's figures. */
typedef struct {
    const char *config;
    int64_t trainable_params; /* elements */
    int64_t total_params;     /* elements */
    int64_t params_bytes, grads_bytes, residual_bytes, opt_state_bytes;
    int64_t train_arena, infer_arena, lower_bound;
    bool has_batchnorm;    /* the model has batch norm, */
    bool bn_eval;          /*   on running statistics in the train program too */
    const char *optimizer; /* opt_name() of the optimizer opt_state_bytes is the state of */
} compare_row;
void compare_row_of(const ir_module *m, const char *config, compare_row *row);
/* rows[0] is the reference the ratios are taken against when named "all";
 * otherwise the row named "all" is. */
void view_compare(const char *model, const compare_row *rows, int nrows, view_format fmt, FILE *out);
/* configs.c: `frost configs`: mods[k] is the model under configuration
 * names[k] after pass_config (config_names() order), dflt the default's
 * index. Text or JSON. */
void view_configs(const ir_module *const *mods, const char *const *names, int n, int dflt, view_format fmt, FILE *out);
/* Liveness graph. `full` is the same model with every param trainable (for the
 * residuals that selective differentiation dropped), or NULL. false with a
 * message (malloc'd) in *err when o names nodes the graph does not have. */
bool view_dot(const ir_module *m, const ir_module *full, const view_options *o, FILE *out, char **err);
/* Lay out DOT text and render it with Graphviz's library, as `format`
 * ("svg", "png"). false + message (malloc'd) on failure. */
bool view_render(const char *dot_text, size_t len, const char *format, FILE *out, char **err);
/* svg.c: the arena of m's train program, offset against step; the memory
 * of each compare row as a stacked bar. */
void view_plan_svg(const ir_module *m, FILE *out);
void view_compare_svg(const char *model, const compare_row *rows, int nrows, FILE *out);

#endif
