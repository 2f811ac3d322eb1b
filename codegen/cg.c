/* cg.c: one LLVM module per model, written as an object file.
 *
 *   embedded runtime bitcode ──parse──▶ rt module ─┐
 *                                                  ├─ LLVMLinkModules2 ─▶ entry points built
 *   empty model module (triple, data layout) ──────┘   over the runtime's own prototypes
 *   ─▶ runtime internalised, every function retargeted to the chosen CPU
 *   ─▶ verify ─▶ default<On> ─▶ object file
 *
 * Every step of a program is one call of the runtime function it names; its
 * operands map onto that function's parameters in order (rt.h conventions).
 * The runtime is linked before the entry points are built so that the
 * prototypes checked against are exactly those that will be called.
 *
 * Only C API that exists in LLVM 14 through 19: the *2 builders with explicit
 * types, LLVMPointerType(elem, 0), LLVMGlobalGetValueType.
 */
#include "cg.h"
#include "rt.h"
#include "target_names.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Core.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

typedef enum { E_FORWARD, E_BACKWARD, E_INFER } cg_entry_kind;
static const char *const entry_suffix[] = {"forward", "backward", "infer"};

typedef struct {
    const ir_module *m;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef t_void, t_i8, t_i32, t_i64, t_ptr; /* t_ptr: i8* (ptr from LLVM 15 on) */
    LLVMTypeRef t_in, t_out;                       /* the inputs / outputs structs */
    int ninputs;
    char prefix[CG_MAX_PREFIX];
    char *err;       /* first error, malloc'd */
    char *llvm_diag; /* first error LLVM reported through the context, malloc'd */
    /* --checked: the messages P_last_error returns, message id k + 1 at [k] */
    LLVMValueRef *msgs;
    int nmsgs, capmsgs;
} cg_ctx;

/* The entry point being built: its arguments (NULL when it has no such block). */
typedef struct {
    cg_entry_kind kind;
    const ir_program *prog;
    LLVMValueRef fn, params, grads, arena, in, out;
    /* --checked: per buffer, its storage (alias root) and, per storage, the
     * extent of its largest member: its guards are the IR_GUARD_BYTES before
     * the root's offset and after offset + extent */
    int *root;
    int64_t *ext;
} cg_env;

static char *cg_vstrdupf(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

char *cg_strdupf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = cg_vstrdupf(fmt, ap);
    va_end(ap);
    return s;
}

static bool cg_fail(cg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool cg_fail(cg_ctx *c, const char *fmt, ...) {
    if (!c->err) {
        va_list ap;
        va_start(ap, fmt);
        c->err = cg_vstrdupf(fmt, ap);
        va_end(ap);
    }
    return false;
}

/* Without a handler, LLVMContext::diagnose exits the process on errors. */
static void cg_diag_handler(LLVMDiagnosticInfoRef di, void *opaque) {
    cg_ctx *c = opaque;
    if (LLVMGetDiagInfoSeverity(di) != LLVMDSError || c->llvm_diag)
        return;
    char *msg = LLVMGetDiagInfoDescription(di);
    c->llvm_diag = malloc(strlen(msg) + 1);
    if (c->llvm_diag)
        strcpy(c->llvm_diag, msg);
    LLVMDisposeMessage(msg);
}

/* ---------------------------------------------------------------- calls */

typedef enum { A_PTR, A_INT, A_FLOAT, A_NULL, A_VALUE } cg_arg_kind;
typedef struct {
    cg_arg_kind kind;
    LLVMValueRef v; /* A_PTR: any pointer; A_VALUE: an integer value */
    int64_t i;
    double f;
    bool aligned; /* A_PTR: known to be IR_ALIGN-aligned (a block base plus an aligned offset) */
} cg_arg;

static const char *cg_arg_kind_name(cg_arg_kind k) {
    switch (k) {
    case A_PTR: return "a buffer";
    case A_INT: return "an integer";
    case A_FLOAT: return "a float";
    case A_NULL: return "a null pointer";
    case A_VALUE: return "an integer";
    }
    return "?";
}

static const char *cg_type_kind_name(LLVMTypeRef t) {
    switch (LLVMGetTypeKind(t)) {
    case LLVMPointerTypeKind: return "a pointer";
    case LLVMIntegerTypeKind: return "an integer";
    case LLVMFloatTypeKind:
    case LLVMDoubleTypeKind: return "a float";
    default: return "an unsupported type";
    }
}

/* Call runtime function `kernel` with args checked against its prototype.
 * `what` names the call in messages. Returns the call, or NULL after cg_fail. */
static LLVMValueRef cg_call(cg_ctx *c, const char *what, const char *kernel, const cg_arg *args, int nargs) {
    LLVMValueRef fn = kernel ? LLVMGetNamedFunction(c->mod, kernel) : NULL;
    if (!fn || LLVMIsDeclaration(fn) || strncmp(kernel, "rt_", 3) != 0) {
        cg_fail(c, "%s: '%s' is not a runtime kernel", what, kernel ? kernel : "(null)");
        return NULL;
    }
    LLVMTypeRef fty = LLVMGlobalGetValueType(fn);
    unsigned np = LLVMCountParamTypes(fty);
    if (LLVMIsFunctionVarArg(fty) || np != (unsigned)nargs) {
        cg_fail(c, "%s: %s takes %u operands, the step has %d", what, kernel, np, nargs);
        return NULL;
    }
    LLVMTypeRef pt[IR_MAX_OPND];
    LLVMValueRef av[IR_MAX_OPND];
    if (np > IR_MAX_OPND) {
        cg_fail(c, "%s: %s has too many parameters", what, kernel);
        return NULL;
    }
    LLVMGetParamTypes(fty, pt);
    for (unsigned k = 0; k < np; k++) {
        LLVMTypeKind tk = LLVMGetTypeKind(pt[k]);
        bool ok;
        switch (args[k].kind) {
        case A_PTR:
            ok = tk == LLVMPointerTypeKind;
            if (ok)
                av[k] = LLVMBuildPointerCast(c->b, args[k].v, pt[k], "");
            break;
        case A_NULL:
            ok = tk == LLVMPointerTypeKind;
            if (ok)
                av[k] = LLVMConstNull(pt[k]);
            break;
        case A_INT:
            ok = tk == LLVMIntegerTypeKind;
            if (ok) {
                unsigned w = LLVMGetIntTypeWidth(pt[k]);
                if (w < 64 && (args[k].i < -(INT64_C(1) << (w - 1)) || args[k].i >= (INT64_C(1) << (w - 1))) &&
                    !(w == 1 && (args[k].i == 0 || args[k].i == 1))) {
                    cg_fail(c, "%s: operand %u of %s: %lld does not fit in i%u", what, k + 1, kernel,
                            (long long)args[k].i, w);
                    return NULL;
                }
                av[k] = LLVMConstInt(pt[k], (unsigned long long)args[k].i, 1);
            }
            break;
        case A_VALUE:
            ok = tk == LLVMIntegerTypeKind;
            if (ok)
                av[k] = LLVMBuildIntCast2(c->b, args[k].v, pt[k], 0, "");
            break;
        case A_FLOAT:
            ok = tk == LLVMFloatTypeKind || tk == LLVMDoubleTypeKind;
            if (ok)
                av[k] = LLVMConstReal(pt[k], args[k].f);
            break;
        default: ok = false;
        }
        if (!ok) {
            cg_fail(c, "%s: operand %u of %s is %s, the kernel expects %s", what, k + 1, kernel,
                    cg_arg_kind_name(args[k].kind), cg_type_kind_name(pt[k]));
            return NULL;
        }
    }
    LLVMTypeRef rt = LLVMGetReturnType(fty);
    LLVMTypeKind rk = LLVMGetTypeKind(rt);
    /* int64_t: the checked mode's finders, called by codegen itself */
    bool i64_ok = !strcmp(kernel, "rt_guard_find") || !strcmp(kernel, "rt_nonfinite_find");
    if (rk != LLVMVoidTypeKind &&
        !(rk == LLVMIntegerTypeKind && (LLVMGetIntTypeWidth(rt) == 32 || (i64_ok && LLVMGetIntTypeWidth(rt) == 64)))) {
        cg_fail(c, "%s: %s returns neither void nor int32_t", what, kernel);
        return NULL;
    }
    return LLVMBuildCall2(c->b, fty, fn, av, np, "");
}

/* The functions codegen splits the work into (kernel specialisations, parts
 * of entry points) must stay functions: inlined back, they would rebuild the
 * one huge body whose optimisation grows superlinearly. */
static void cg_never_inline(cg_ctx *c, LLVMValueRef fn) {
    unsigned kind = LLVMGetEnumAttributeKindForName("noinline", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, kind, 0));
}

/* Call `kernel` through a specialisation: an internal, never-inlined function
 * that takes the call's pointers (and A_VALUE integers) as parameters and
 * passes its constant operands (A_INT, A_FLOAT, A_NULL) to the kernel as
 * constants, so the optimiser specialises the kernel for them inside a body
 * of bounded size. Calls with the same kernel, constants and pointer
 * alignments share one specialisation: its name is that key, and the module's
 * symbol table is the lookup. Entry points thus stay a flat list of calls
 * whatever the model's depth, and optimisation time grows linearly with the
 * number of steps (inlining every kernel into one body made it superlinear),
 * while the repeated layers of a deep model compile once. */
static LLVMValueRef cg_call_spec(cg_ctx *c, const char *what, const char *kernel, const cg_arg *args, int nargs) {
    LLVMValueRef kfn = kernel ? LLVMGetNamedFunction(c->mod, kernel) : NULL;
    if (!kfn || LLVMIsDeclaration(kfn) || nargs < 0 || nargs > IR_MAX_OPND)
        return cg_call(c, what, kernel, args, nargs); /* reports what is wrong */

    /* The key: kernel name, then one token per operand. */
    char key[64 + IR_MAX_OPND * 32];
    int len = snprintf(key, sizeof key, "frost.%s", kernel);
    for (int k = 0; k < nargs && len < (int)sizeof key; k++) {
        const cg_arg *a = &args[k];
        int room = (int)sizeof key - len;
        switch (a->kind) {
        case A_PTR: len += snprintf(key + len, (size_t)room, ".%s", a->aligned ? "P" : "p"); break;
        case A_VALUE: len += snprintf(key + len, (size_t)room, ".v"); break;
        case A_NULL: len += snprintf(key + len, (size_t)room, ".0"); break;
        case A_INT: len += snprintf(key + len, (size_t)room, ".%lld", (long long)a->i); break;
        case A_FLOAT: len += snprintf(key + len, (size_t)room, ".%a", a->f); break;
        }
    }
    if (len >= (int)sizeof key)
        return cg_call(c, what, kernel, args, nargs); /* cannot happen with IR_MAX_OPND operands */

    LLVMTypeRef pt[IR_MAX_OPND];
    LLVMValueRef pv[IR_MAX_OPND];
    unsigned np = 0;
    for (int k = 0; k < nargs; k++)
        if (args[k].kind == A_PTR || args[k].kind == A_VALUE) {
            pt[np] = args[k].kind == A_PTR ? c->t_ptr : c->t_i64;
            pv[np++] = args[k].kind == A_PTR ? LLVMBuildPointerCast(c->b, args[k].v, c->t_ptr, "")
                                             : LLVMBuildIntCast2(c->b, args[k].v, c->t_i64, 0, "");
        }
    LLVMValueRef spec = LLVMGetNamedFunction(c->mod, key);
    if (!spec) {
        LLVMTypeRef ret = LLVMGetReturnType(LLVMGlobalGetValueType(kfn));
        spec = LLVMAddFunction(c->mod, key, LLVMFunctionType(ret, pt, np, 0));
        LLVMSetLinkage(spec, LLVMInternalLinkage);
        cg_never_inline(c, spec);
        LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
        LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, spec, "entry"));
        cg_arg inner[IR_MAX_OPND];
        unsigned j = 0;
        for (int k = 0; k < nargs; k++) {
            inner[k] = args[k];
            if (args[k].kind == A_PTR || args[k].kind == A_VALUE) {
                if (args[k].kind == A_PTR && args[k].aligned)
                    LLVMSetParamAlignment(LLVMGetParam(spec, j), IR_ALIGN);
                inner[k].v = LLVMGetParam(spec, j++);
            }
        }
        LLVMValueRef call = cg_call(c, what, kernel, inner, nargs);
        if (call) {
            if (LLVMGetTypeKind(ret) == LLVMVoidTypeKind)
                LLVMBuildRetVoid(c->b);
            else
                LLVMBuildRet(c->b, call);
        }
        LLVMPositionBuilderAtEnd(c->b, saved);
        if (!call) {
            LLVMDeleteFunction(spec);
            return NULL;
        }
    }
    return LLVMBuildCall2(c->b, LLVMGlobalGetValueType(spec), spec, pv, np, "");
}

/* ---------------------------------------------------------------- buffers */

static LLVMValueRef cg_offset(cg_ctx *c, LLVMValueRef base, int64_t off, const char *name) {
    if (off == 0)
        return base;
    LLVMValueRef idx = LLVMConstInt(c->t_i64, (unsigned long long)off, 0);
    return LLVMBuildInBoundsGEP2(c->b, c->t_i8, base, &idx, 1, name);
}

/* Pointer to the storage of buffer `id` inside entry point env, or NULL after cg_fail. */
static LLVMValueRef cg_buf_ptr(cg_ctx *c, const cg_env *env, const char *what, int id, bool writes, bool *aligned) {
    *aligned = false;
    const ir_program *p = env->prog;
    if (id < 0 || id >= p->nbufs) {
        cg_fail(c, "%s: buffer id %d out of range", what, id);
        return NULL;
    }
    int root = ir_storage_root(p, id);
    if (root < 0) {
        cg_fail(c, "%s: buffer '%s' has a broken alias chain", what, p->bufs[id].name);
        return NULL;
    }
    const ir_buf *b = &p->bufs[root];
    const char *name = b->name ? b->name : "";
    const char *entry = entry_suffix[env->kind];
    int64_t limit = -1;
    LLVMValueRef base = NULL;
    switch (b->space) {
    case SPACE_ARENA: base = env->arena, limit = p->arena_bytes; break;
    case SPACE_PARAMS:
        if (writes && env->kind != E_FORWARD) {
            cg_fail(c, "%s: %s writes parameter block buffer '%s', which is const there", what, entry, name);
            return NULL;
        }
        base = env->params, limit = c->m->params_bytes;
        break;
    case SPACE_GRADS: base = env->grads, limit = c->m->grads_bytes; break;
    case SPACE_INPUT:
    case SPACE_OUTPUT: {
        bool in = b->space == SPACE_INPUT;
        LLVMValueRef s = in ? env->in : env->out;
        int n = in ? c->ninputs : c->m->graph->noutputs;
        if (!s) {
            cg_fail(c, "%s: %s has no %ss, but buffer '%s' is one", what, entry, space_name(b->space), name);
            return NULL;
        }
        if (b->index < 0 || b->index >= n) {
            cg_fail(c, "%s: buffer '%s' is %s field %d of %d", what, name, space_name(b->space), b->index, n);
            return NULL;
        }
        LLVMTypeRef st = in ? c->t_in : c->t_out;
        LLVMValueRef field = LLVMBuildStructGEP2(c->b, st, s, (unsigned)b->index, "");
        return LLVMBuildLoad2(c->b, c->t_ptr, field, name);
    }
    default: cg_fail(c, "%s: buffer '%s' has an unknown space", what, name); return NULL;
    }
    if (!base) {
        cg_fail(c, "%s: %s has no %s block, but buffer '%s' lives there", what, entry, space_name(b->space), name);
        return NULL;
    }
    if (b->offset < 0 || b->bytes < 0 || b->offset > limit - b->bytes) {
        cg_fail(c, "%s: buffer '%s' [%lld, +%lld) lies outside the %s block (%lld bytes)", what, name,
                (long long)b->offset, (long long)b->bytes, space_name(b->space), (long long)limit);
        return NULL;
    }
    *aligned = b->offset % IR_ALIGN == 0; /* the blocks themselves are aligned by contract */
    return cg_offset(c, base, b->offset, name);
}

/* ---------------------------------------------------------------- entry points */

static LLVMValueRef cg_add_function(cg_ctx *c, const char *suffix, LLVMTypeRef ret, LLVMTypeRef *params, unsigned n) {
    char name[CG_MAX_PREFIX + 32];
    snprintf(name, sizeof name, "%s_%s", c->prefix, suffix);
    if (LLVMGetNamedFunction(c->mod, name)) {
        cg_fail(c, "entry point %s clashes with a runtime symbol; choose another prefix", name);
        return NULL;
    }
    LLVMTypeRef fty = LLVMFunctionType(ret, params, n, 0);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, fty);
    LLVMSetLinkage(fn, LLVMExternalLinkage);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    return fn;
}

static void cg_name_param(LLVMValueRef fn, unsigned i, const char *name, bool aligned) {
    LLVMValueRef p = LLVMGetParam(fn, i);
    LLVMSetValueName2(p, name, strlen(name));
    if (aligned) /* the blocks are P_ALIGN-aligned by contract (unchecked here) */
        LLVMSetParamAlignment(p, IR_ALIGN);
}

/* ---------------------------------------------------------------- guards
 * Always on, a few instructions per call: the entry points check their
 * pointers and the arena's state word before any kernel runs, and return an
 * RT_ERR_* code (rt.h) instead of crashing or computing from garbage. */

/* if (bad) return code (an i32 value); then continue in a new block. */
static void cg_return_if(cg_ctx *c, LLVMValueRef fn, LLVMValueRef bad, LLVMValueRef code, const char *name) {
    LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(c->ctx, fn, name);
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "ok");
    LLVMBuildCondBr(c->b, bad, fail, next);
    LLVMPositionBuilderAtEnd(c->b, fail);
    LLVMBuildRet(c->b, code);
    LLVMPositionBuilderAtEnd(c->b, next);
}

/* if (rc != 0) return rc: a kernel's or a part's error code becomes the entry point's. */
static void cg_return_nonzero(cg_ctx *c, LLVMValueRef fn, LLVMValueRef rc) {
    cg_return_if(c, fn, LLVMBuildICmp(c->b, LLVMIntNE, rc, LLVMConstInt(LLVMTypeOf(rc), 0, 0), ""), rc, "fail");
}

static LLVMValueRef cg_code(cg_ctx *c, int code) { return LLVMConstInt(c->t_i32, (unsigned long long)code, 0); }

/* Return RT_ERR_NULL when p is NULL, RT_ERR_ALIGN when it is not a multiple of align. */
static void cg_check_ptr(cg_ctx *c, LLVMValueRef fn, LLVMValueRef p, int64_t align) {
    LLVMValueRef null = LLVMBuildICmp(c->b, LLVMIntEQ, p, LLVMConstNull(LLVMTypeOf(p)), "");
    cg_return_if(c, fn, null, cg_code(c, RT_ERR_NULL), "null");
    if (align > 1) {
        LLVMValueRef low = LLVMBuildAnd(c->b, LLVMBuildPtrToInt(c->b, p, c->t_i64, ""),
                                        LLVMConstInt(c->t_i64, (unsigned long long)(align - 1), 0), "");
        cg_return_if(c, fn, LLVMBuildICmp(c->b, LLVMIntNE, low, LLVMConstInt(c->t_i64, 0, 0), ""),
                     cg_code(c, RT_ERR_ALIGN), "misaligned");
    }
}

/* The tag forward leaves in the arena's state word for backward: a hash of
 * what makes an arena's contents this object's (prefix, model, plan sizes), so
 * that another model's forward on the same arena does not pass either. */
static uint64_t cg_state_tag(const cg_ctx *c) {
    const ir_program *t = &c->m->train;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    const char *texts[] = {c->prefix, c->m->graph->model ? c->m->graph->model : ""};
    for (size_t k = 0; k < 2; k++)
        for (const char *q = texts[k]; *q; q++)
            h = (h ^ (unsigned char)*q) * 1099511628211ull;
    int64_t sizes[] = {t->nsteps, t->nfwd, t->nbufs, t->arena_bytes, c->m->params_bytes, c->m->grads_bytes};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        h = (h ^ (uint64_t)sizes[k]) * 1099511628211ull;
    return h ? h : 1;
}

/* Pointer to the arena's state word, or NULL for a program without one
 * (hand-built programs in tests). */
static LLVMValueRef cg_state_ptr(cg_ctx *c, const cg_env *env) {
    int s = ir_state_buf(env->prog);
    if (s < 0)
        return NULL;
    return LLVMBuildPointerCast(c->b, cg_offset(c, env->arena, env->prog->bufs[s].offset, "state"),
                                LLVMPointerType(c->t_i64, 0), "");
}

static void cg_checked_prologue(cg_ctx *c, cg_env *env, LLVMValueRef state);

/* The checks every entry point makes first, and the state word's protocol:
 * forward and infer clear it (forward sets the tag when it succeeds),
 * backward runs only on the tag and clears it. */
static void cg_prologue(cg_ctx *c, cg_env *env) {
    const ir_module *m = c->m;
    if (m->params_bytes > 0)
        cg_check_ptr(c, env->fn, env->params, IR_ALIGN);
    cg_check_ptr(c, env->fn, env->arena, IR_ALIGN);
    if (env->kind == E_BACKWARD) {
        if (m->grads_bytes > 0)
            cg_check_ptr(c, env->fn, env->grads, IR_ALIGN);
    } else {
        if (c->ninputs > 0) {
            cg_check_ptr(c, env->fn, env->in, 1);
            const ir_graph *g = m->graph;
            for (int v = 0, k = 0; v < g->nvals; v++) {
                if (g->vals[v].kind != VAL_INPUT)
                    continue;
                LLVMValueRef field = LLVMBuildStructGEP2(c->b, c->t_in, env->in, (unsigned)k++, "");
                LLVMValueRef ptr = LLVMBuildLoad2(c->b, c->t_ptr, field, g->vals[v].name);
                cg_check_ptr(c, env->fn, ptr, g->vals[v].dtype == DT_U8 ? 1 : 4);
            }
        }
        /* A NULL outputs struct reads as one with every field NULL: nothing is written. */
        LLVMValueRef none = LLVMAddGlobal(c->mod, c->t_out, "");
        LLVMSetInitializer(none, LLVMConstNull(c->t_out));
        LLVMSetGlobalConstant(none, 1);
        LLVMSetLinkage(none, LLVMInternalLinkage);
        LLVMValueRef is_null = LLVMBuildICmp(c->b, LLVMIntEQ, env->out, LLVMConstNull(LLVMTypeOf(env->out)), "");
        env->out = LLVMBuildSelect(c->b, is_null, none, env->out, "outs");
    }
    LLVMValueRef state = cg_state_ptr(c, env);
    if (!state)
        return;
    LLVMValueRef tag = LLVMConstInt(c->t_i64, cg_state_tag(c), 0);
    if (env->kind == E_BACKWARD) {
        LLVMValueRef have = LLVMBuildLoad2(c->b, c->t_i64, state, "state");
        cg_return_if(c, env->fn, LLVMBuildICmp(c->b, LLVMIntNE, have, tag, ""), cg_code(c, RT_ERR_STATE), "no_forward");
    }
    LLVMBuildStore(c->b, LLVMConstInt(c->t_i64, 0, 0), state);
    if (m->checked)
        cg_checked_prologue(c, env, state);
}

/* ---------------------------------------------------------------- checked mode
 * frost compile --checked (docs/abi.md): guards around every arena storage
 * (passes/guard.c) and at the end of every block, filled with RT_GUARD_WORD
 * and verified after each step that writes next to them, and every f32
 * output of every step scanned for NaN and infinities. A failed check
 * returns RT_ERR_GUARD or RT_ERR_NONFINITE through rt_check_report, which
 * prints the message and leaves its id in word 1 of the arena's state slot
 * for P_last_error. */

/* A constant string for P_last_error's table; *id is its message id (> 0). */
static LLVMValueRef cg_message(cg_ctx *c, const char *text, int *id) {
    if (c->nmsgs == c->capmsgs) {
        int cap = c->capmsgs ? 2 * c->capmsgs : 64;
        LLVMValueRef *grown = realloc(c->msgs, sizeof *grown * (size_t)cap);
        if (!grown) {
            cg_fail(c, "out of memory");
            return NULL;
        }
        c->msgs = grown, c->capmsgs = cap;
    }
    LLVMValueRef init = LLVMConstStringInContext(c->ctx, text, (unsigned)strlen(text), 0);
    LLVMValueRef g = LLVMAddGlobal(c->mod, LLVMTypeOf(init), "frost.msg");
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    c->msgs[c->nmsgs++] = g;
    *id = c->nmsgs;
    return LLVMConstPointerCast(g, c->t_ptr);
}

/* found (an i64 from rt_guard_find or rt_nonfinite_find) >= 0: report `msg`
 * and return its code from fn (or return void: P_update); state may be NULL,
 * p is the scanned tensor for RT_ERR_NONFINITE. */
static bool cg_report_if(cg_ctx *c, LLVMValueRef fn, LLVMValueRef state, LLVMValueRef found, LLVMValueRef p, int code,
                         const char *msg) {
    if (!found)
        return false;
    LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(c->ctx, fn, code == RT_ERR_GUARD ? "guard" : "nonfinite");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "ok");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, found, LLVMConstInt(c->t_i64, 0, 0), ""), fail, next);
    LLVMPositionBuilderAtEnd(c->b, fail);
    int id = 0;
    LLVMValueRef text = cg_message(c, msg, &id);
    if (!text)
        return false;
    cg_arg a[] = {
        {.kind = state ? A_PTR : A_NULL, .v = state}, {.kind = A_INT, .i = id},      {.kind = A_PTR, .v = text},
        {.kind = p ? A_PTR : A_NULL, .v = p},         {.kind = A_VALUE, .v = found}, {.kind = A_INT, .i = code}};
    LLVMValueRef rc = cg_call(c, "checked mode", "rt_check_report", a, 6);
    if (!rc)
        return false;
    if (LLVMGetTypeKind(LLVMGetReturnType(LLVMGlobalGetValueType(fn))) == LLVMVoidTypeKind)
        LLVMBuildRetVoid(c->b);
    else
        LLVMBuildRet(c->b, rc);
    LLVMPositionBuilderAtEnd(c->b, next);
    return true;
}

static bool cg_guard_fill(cg_ctx *c, LLVMValueRef p) {
    cg_arg a[] = {{.kind = A_PTR, .v = p}, {.kind = A_INT, .i = IR_GUARD_BYTES}};
    return cg_call(c, "checked mode", "rt_guard_fill", a, 2) != NULL;
}

static bool cg_guard_check(cg_ctx *c, LLVMValueRef fn, LLVMValueRef state, LLVMValueRef p, const char *msg) {
    cg_arg a[] = {{.kind = A_PTR, .v = p}, {.kind = A_INT, .i = IR_GUARD_BYTES}};
    return cg_report_if(c, fn, state, cg_call(c, "checked mode", "rt_guard_find", a, 2), NULL, RT_ERR_GUARD, msg);
}

/* The guard at the end of a block of `bytes` (as planned; the header's size
 * adds the guard). */
static LLVMValueRef cg_block_guard(cg_ctx *c, LLVMValueRef base, int64_t bytes) {
    return cg_offset(c, base, ir_align_up(bytes), "guard");
}

/* The blocks as the header names their sizes, for messages. */
static const char *cg_arena_macro(const cg_env *env) {
    return env->kind == E_INFER ? "INFER_ARENA_BYTES" : "TRAIN_ARENA_BYTES";
}

/* Storage of every buffer of env's program and the extent of each storage;
 * false after cg_fail. Freed by cg_entry. */
static bool cg_storages(cg_ctx *c, cg_env *env) {
    const ir_program *p = env->prog;
    env->root = calloc((size_t)p->nbufs + 1, sizeof *env->root);
    env->ext = calloc((size_t)p->nbufs + 1, sizeof *env->ext);
    if (!env->root || !env->ext)
        return cg_fail(c, "out of memory");
    for (int b = 0; b < p->nbufs; b++) {
        int r = b;
        for (int hops = 0; p->bufs[r].alias_of >= 0 && p->bufs[r].alias_of < p->nbufs && hops <= p->nbufs; hops++)
            r = p->bufs[r].alias_of;
        env->root[b] = r;
    }
    for (int b = 0; b < p->nbufs; b++)
        if (p->bufs[b].bytes > env->ext[env->root[b]])
            env->ext[env->root[b]] = p->bufs[b].bytes;
    return true;
}

/* A guarded arena storage (passes/guard.c): not the state word. */
static bool cg_guarded(const ir_buf *b) {
    return b->space == SPACE_ARENA && b->kind != BUF_STATE && b->offset >= IR_ARENA_STATE_BYTES + IR_GUARD_BYTES;
}

/* The guards before and after storage r, checked with messages "<what>:
 * guard before|after arena buffer 'NAME' <why>". */
static bool cg_check_storage(cg_ctx *c, const cg_env *env, LLVMValueRef state, int r, const char *what,
                             const char *why) {
    const ir_buf *b = &env->prog->bufs[r];
    for (int after = 0; after < 2; after++) {
        int64_t off = after ? b->offset + env->ext[r] : b->offset - IR_GUARD_BYTES;
        char *msg = cg_strdupf("%s: guard %s arena buffer '%s' %s", what, after ? "after" : "before",
                               b->name ? b->name : "?", why);
        bool ok = msg && cg_guard_check(c, env->fn, state, cg_offset(c, env->arena, off, ""), msg);
        free(msg);
        if (!ok)
            return c->err ? false : cg_fail(c, "out of memory");
    }
    return true;
}

/* After the argument and state checks: clear the last error; forward and
 * infer set the arena's end guard, backward verifies what forward left (the
 * end guard, the guards of every residual) and sets the grads guard; every
 * entry point verifies the params guard that P_init set. */
static void cg_checked_prologue(cg_ctx *c, cg_env *env, LLVMValueRef state) {
    const ir_module *m = c->m;
    const ir_program *p = env->prog;
    const char *entry = entry_suffix[env->kind];
    LLVMValueRef idx = LLVMConstInt(c->t_i64, 1, 0);
    LLVMBuildStore(c->b, LLVMConstInt(c->t_i64, 0, 0), LLVMBuildInBoundsGEP2(c->b, c->t_i64, state, &idx, 1, ""));
    char *msg;
    if (m->params_bytes > 0) {
        msg = cg_strdupf("%s_%s: on entry: guard at the end of the params block changed: the block is smaller "
                         "than the header's PARAMS_BYTES, something wrote past its end, or P_init (which sets "
                         "the guard) never ran on it",
                         c->prefix, entry);
        if (!msg || !cg_guard_check(c, env->fn, state, cg_block_guard(c, env->params, m->params_bytes), msg))
            cg_fail(c, "out of memory");
        free(msg);
    }
    LLVMValueRef end = cg_offset(c, env->arena, p->arena_bytes - IR_GUARD_BYTES, "arena_end");
    if (env->kind != E_BACKWARD) {
        cg_guard_fill(c, end);
        return;
    }
    msg = cg_strdupf("%s_backward: on entry: guard at the end of the arena changed since %s_forward: the "
                     "arena is smaller than the header's TRAIN_ARENA_BYTES, or it was written between the calls",
                     c->prefix, c->prefix);
    if (!msg || !cg_guard_check(c, env->fn, state, end, msg))
        cg_fail(c, "out of memory");
    free(msg);
    char what[CG_MAX_PREFIX + 64];
    snprintf(what, sizeof what, "%s_backward: on entry", c->prefix);
    char *why = cg_strdupf("changed since %s_forward: the arena is smaller than the header's TRAIN_ARENA_BYTES, "
                           "or it was written between the calls",
                           c->prefix);
    for (int b = 0; why && b < p->nbufs; b++) {
        const ir_buf *x = &p->bufs[b];
        if (env->root[b] == b && cg_guarded(x) && x->first >= 0 && x->first < p->nfwd && x->last >= p->nfwd &&
            !cg_check_storage(c, env, state, b, what, why))
            break;
    }
    free(why);
    if (m->grads_bytes > 0)
        cg_guard_fill(c, cg_block_guard(c, env->grads, m->grads_bytes));
}

/* Around step s: before it, set the guards of the storages it starts;
 * after it, verify the guards next to what it wrote and the arena's end, and
 * scan its f32 outputs (scratch aside). args are the step's operands. */
static bool cg_checked_step(cg_ctx *c, const cg_env *env, int s, const cg_arg *args, bool after) {
    const ir_program *p = env->prog;
    const ir_step *st = &p->steps[s];
    const ir_graph *g = c->m->graph;
    LLVMValueRef state = cg_state_ptr(c, env);
    int done[IR_MAX_OPND], ndone = 0;
    bool wrote_params = false, wrote_grads = false;
    char what[CG_MAX_PREFIX + 320];
    const char *node =
        st->node >= 0 && st->node < g->nnodes && g->nodes[st->node].name ? g->nodes[st->node].name : NULL;
    snprintf(what, sizeof what, "%s_%s: step %d (%s%s%.200s%s)", c->prefix, entry_suffix[env->kind], s, view_kernel(st),
             node ? " of node '" : "", node ? node : "", node ? "'" : "");
    for (int k = 0; k < st->nopnd; k++) {
        const ir_opnd *o = &st->opnd[k];
        if (o->kind != OPND_BUF || (after && !o->writes))
            continue;
        int r = env->root[o->buf];
        const ir_buf *x = &p->bufs[r], *ob = &p->bufs[o->buf];
        wrote_params |= x->space == SPACE_PARAMS;
        wrote_grads |= x->space == SPACE_GRADS;
        if (after && ob->dtype == DT_F32 && ob->kind != BUF_SCRATCH) {
            char *msg = cg_strdupf("%s wrote a non-finite value into '%s'", what, ob->name ? ob->name : "?");
            cg_arg a[] = {{.kind = A_PTR, .v = args[k].v}, {.kind = A_INT, .i = ob->bytes / 4}};
            LLVMValueRef found = msg ? cg_call(c, what, "rt_nonfinite_find", a, 2) : NULL;
            bool ok = found && cg_report_if(c, env->fn, state, found, args[k].v, RT_ERR_NONFINITE, msg);
            free(msg);
            if (!ok)
                return c->err ? false : cg_fail(c, "out of memory");
        }
        if (!cg_guarded(x))
            continue;
        bool seen = false;
        for (int j = 0; j < ndone; j++)
            seen |= done[j] == r;
        if (seen)
            continue;
        done[ndone++] = r;
        if (!after) {
            if (x->first == s && (!cg_guard_fill(c, cg_offset(c, env->arena, x->offset - IR_GUARD_BYTES, "")) ||
                                  !cg_guard_fill(c, cg_offset(c, env->arena, x->offset + env->ext[r], ""))))
                return false;
        } else if (!cg_check_storage(c, env, state, r, what, "overwritten: the step wrote out of bounds")) {
            return false;
        }
    }
    if (!after)
        return true;
    const char *blocks[] = {"params", "grads"};
    const char *macros[] = {"PARAMS_BYTES", "GRADS_BYTES"};
    LLVMValueRef bases[] = {env->params, env->grads};
    int64_t sizes[] = {c->m->params_bytes, c->m->grads_bytes};
    bool wrote[] = {wrote_params, wrote_grads};
    for (int k = 0; k < 2; k++) {
        if (!wrote[k] || sizes[k] == 0 || !bases[k])
            continue;
        char *msg = cg_strdupf("%s: guard at the end of the %s block overwritten: the step wrote past the block "
                               "(is it as large as the header's %s?)",
                               what, blocks[k], macros[k]);
        bool ok = msg && cg_guard_check(c, env->fn, state, cg_block_guard(c, bases[k], sizes[k]), msg);
        free(msg);
        if (!ok)
            return c->err ? false : cg_fail(c, "out of memory");
    }
    char *msg = cg_strdupf("%s: guard at the end of the arena overwritten: the step wrote past the arena "
                           "(is it as large as the header's %s?)",
                           what, cg_arena_macro(env));
    bool ok =
        msg && cg_guard_check(c, env->fn, state, cg_offset(c, env->arena, p->arena_bytes - IR_GUARD_BYTES, ""), msg);
    free(msg);
    return ok ? true : c->err ? false : cg_fail(c, "out of memory");
}

/* P_last_error(arena): the message of the check that failed in the last call
 * on this arena, NULL when it had none (or arena is NULL). */
static bool cg_last_error(cg_ctx *c) {
    LLVMTypeRef pt[] = {c->t_ptr};
    LLVMValueRef fn = cg_add_function(c, "last_error", c->t_ptr, pt, 1);
    if (!fn)
        return false;
    cg_name_param(fn, 0, "arena", false);
    LLVMValueRef arena = LLVMGetParam(fn, 0);
    LLVMValueRef *items = malloc(sizeof *items * (size_t)(c->nmsgs + 1));
    if (!items)
        return cg_fail(c, "out of memory");
    items[0] = LLVMConstNull(c->t_ptr); /* id 0: no error */
    for (int k = 0; k < c->nmsgs; k++)
        items[k + 1] = LLVMConstPointerCast(c->msgs[k], c->t_ptr);
    LLVMTypeRef at = LLVMArrayType(c->t_ptr, (unsigned)c->nmsgs + 1);
    LLVMValueRef table = LLVMAddGlobal(c->mod, at, "frost.messages");
    LLVMSetInitializer(table, LLVMConstArray(c->t_ptr, items, (unsigned)c->nmsgs + 1));
    LLVMSetGlobalConstant(table, 1);
    LLVMSetLinkage(table, LLVMPrivateLinkage);
    free(items);
    LLVMBasicBlockRef look = LLVMAppendBasicBlockInContext(c->ctx, fn, "look");
    LLVMBasicBlockRef none = LLVMAppendBasicBlockInContext(c->ctx, fn, "none");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, arena, LLVMConstNull(c->t_ptr), ""), none, look);
    LLVMPositionBuilderAtEnd(c->b, look);
    LLVMValueRef one = LLVMConstInt(c->t_i64, 1, 0);
    LLVMValueRef word = LLVMBuildInBoundsGEP2(
        c->b, c->t_i64, LLVMBuildPointerCast(c->b, arena, LLVMPointerType(c->t_i64, 0), ""), &one, 1, "");
    LLVMValueRef id = LLVMBuildLoad2(c->b, c->t_i64, word, "id");
    LLVMBasicBlockRef found = LLVMAppendBasicBlockInContext(c->ctx, fn, "found");
    LLVMValueRef in_range =
        LLVMBuildICmp(c->b, LLVMIntULE, id, LLVMConstInt(c->t_i64, (unsigned long long)c->nmsgs, 0), "");
    LLVMBuildCondBr(c->b, in_range, found, none);
    LLVMPositionBuilderAtEnd(c->b, found);
    LLVMValueRef ix[] = {LLVMConstInt(c->t_i64, 0, 0), id};
    LLVMBuildRet(c->b, LLVMBuildLoad2(c->b, c->t_ptr, LLVMBuildInBoundsGEP2(c->b, at, table, ix, 2, ""), "msg"));
    LLVMPositionBuilderAtEnd(c->b, none);
    LLVMBuildRet(c->b, LLVMConstNull(c->t_ptr));
    return true;
}

/* The runtime's target constants (rt.h "target"): bodies that return them,
 * inlined wherever the kernels ask. */
static bool cg_define_constant(cg_ctx *c, const char *name, int64_t value) {
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (!fn) /* no kernel asks */
        return true;
    if (!LLVMIsDeclaration(fn))
        return cg_fail(c, "internal error: the runtime defines %s", name);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    LLVMBuildRet(c->b, LLVMConstInt(c->t_i64, (unsigned long long)value, 1));
    unsigned kind = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, kind, 0));
    return true;
}

/* int P_set_threads(int n): start the object's thread pool (rt_pool_start). */
static bool cg_set_threads(cg_ctx *c) {
    LLVMTypeRef pt[] = {c->t_i32};
    LLVMValueRef fn = cg_add_function(c, "set_threads", c->t_i32, pt, 1);
    if (!fn)
        return false;
    cg_name_param(fn, 0, "nthreads", false);
    LLVMValueRef start = LLVMGetNamedFunction(c->mod, "rt_pool_start");
    if (!start)
        return cg_fail(c, "internal error: the runtime lacks rt_pool_start");
    LLVMTypeRef sty = LLVMFunctionType(c->t_i64, &c->t_i64, 1, 0);
    LLVMValueRef arg = LLVMBuildSExt(c->b, LLVMGetParam(fn, 0), c->t_i64, "");
    LLVMValueRef got = LLVMBuildCall2(c->b, sty, start, &arg, 1, "threads");
    LLVMBuildRet(c->b, LLVMBuildTrunc(c->b, got, c->t_i32, ""));
    return true;
}

/* Steps [lo, hi) of env's program as calls in the function being built. */
static bool cg_steps(cg_ctx *c, const cg_env *env, int lo, int hi) {
    const ir_program *prog = env->prog;
    for (int s = lo; s < hi; s++) {
        const ir_step *st = &prog->steps[s];
        char what[CG_MAX_PREFIX + 64];
        snprintf(what, sizeof what, "%s_%s: step %d (%s)", c->prefix, entry_suffix[env->kind], s,
                 st->kernel ? st->kernel : "(null)");
        if (st->nopnd < 0 || st->nopnd > IR_MAX_OPND)
            return cg_fail(c, "%s: %d operands", what, st->nopnd);
        cg_arg args[IR_MAX_OPND];
        for (int k = 0; k < st->nopnd; k++) {
            const ir_opnd *o = &st->opnd[k];
            switch (o->kind) {
            case OPND_BUF:
                args[k].kind = A_PTR;
                if (!(args[k].v = cg_buf_ptr(c, env, what, o->buf, o->writes, &args[k].aligned)))
                    return false;
                break;
            case OPND_INT: args[k].kind = A_INT, args[k].i = o->i; break;
            case OPND_FLOAT: args[k].kind = A_FLOAT, args[k].f = o->f; break;
            case OPND_NULL: args[k].kind = A_NULL; break;
            default: return cg_fail(c, "%s: operand %d has an unknown kind", what, k + 1);
            }
        }
        if (c->m->checked && !cg_checked_step(c, env, s, args, false))
            return false;
        LLVMValueRef call = cg_call_spec(c, what, st->kernel, args, st->nopnd);
        if (!call)
            return false;
        if (LLVMGetTypeKind(LLVMTypeOf(call)) == LLVMIntegerTypeKind)
            cg_return_nonzero(c, env->fn, call);
        if (c->m->checked && !cg_checked_step(c, env, s, args, true))
            return false;
    }
    return true;
}

/* Steps per part of an entry point (cg_part). */
enum { CG_PART_STEPS = 256 };

/* Steps [lo, hi) in a never-inlined function of their own,
 * P_<entry>.part<lo>(params, grads, arena, in, out), called from the entry
 * point being built; returns that call (the part's return code), or NULL
 * after cg_fail. */
static LLVMValueRef cg_part(cg_ctx *c, const cg_env *env, int lo, int hi) {
    char name[CG_MAX_PREFIX + 48];
    snprintf(name, sizeof name, "%s_%s.part%d", c->prefix, entry_suffix[env->kind], lo);
    LLVMTypeRef pt[] = {c->t_ptr, c->t_ptr, c->t_ptr, LLVMPointerType(c->t_in, 0), LLVMPointerType(c->t_out, 0)};
    LLVMTypeRef fty = LLVMFunctionType(c->t_i32, pt, 5, 0);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, fty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    cg_never_inline(c, fn);
    LLVMValueRef args[5] = {env->params, env->grads, env->arena, env->in, env->out};
    for (int k = 0; k < 5; k++)
        if (!args[k])
            args[k] = LLVMConstNull(pt[k]);
    LLVMValueRef call = LLVMBuildCall2(c->b, fty, fn, args, 5, "");
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    cg_env part = *env;
    part.fn = fn;
    part.params = env->params ? LLVMGetParam(fn, 0) : NULL;
    part.grads = env->grads ? LLVMGetParam(fn, 1) : NULL;
    part.arena = LLVMGetParam(fn, 2);
    part.in = env->in ? LLVMGetParam(fn, 3) : NULL;
    part.out = env->out ? LLVMGetParam(fn, 4) : NULL;
    bool ok = cg_steps(c, &part, lo, hi);
    if (ok)
        LLVMBuildRet(c->b, cg_code(c, 0));
    LLVMPositionBuilderAtEnd(c->b, saved);
    return ok ? call : NULL;
}

static bool cg_entry_body(cg_ctx *c, cg_env *envp, int from, int to);

static bool cg_entry(cg_ctx *c, cg_entry_kind kind, const ir_program *prog, int from, int to) {
    cg_env env = {.kind = kind, .prog = prog};
    bool ok = (!c->m->checked || cg_storages(c, &env)) && cg_entry_body(c, &env, from, to);
    free(env.root);
    free(env.ext);
    return ok;
}

static bool cg_entry_body(cg_ctx *c, cg_env *envp, int from, int to) {
    cg_env env = *envp;
    cg_entry_kind kind = env.kind;
    const ir_program *prog = env.prog;
    /* No alignment attributes on these parameters: the prologue checks the
     * alignment, and LLVM would fold that check away under a promise. */
    /* forward, infer: (params, in, out, arena); backward: (params, grads, arena) */
    bool bwd = kind == E_BACKWARD;
    LLVMTypeRef fwd_types[] = {c->t_ptr, LLVMPointerType(c->t_in, 0), LLVMPointerType(c->t_out, 0), c->t_ptr};
    LLVMTypeRef bwd_types[] = {c->t_ptr, c->t_ptr, c->t_ptr};
    static const char *const fwd_names[] = {"params", "in", "out", "arena"};
    static const char *const bwd_names[] = {"params", "grads", "arena"};
    LLVMValueRef *fwd_slots[] = {&env.params, &env.in, &env.out, &env.arena};
    LLVMValueRef *bwd_slots[] = {&env.params, &env.grads, &env.arena};
    unsigned np = bwd ? 3 : 4;
    if (!(env.fn = cg_add_function(c, entry_suffix[kind], c->t_i32, bwd ? bwd_types : fwd_types, np)))
        return false;
    for (unsigned k = 0; k < np; k++) {
        cg_name_param(env.fn, k, (bwd ? bwd_names : fwd_names)[k], false);
        *(bwd ? bwd_slots : fwd_slots)[k] = LLVMGetParam(env.fn, k);
    }
    if (from < 0 || to > prog->nsteps || from > to)
        return cg_fail(c, "%s_%s: step range [%d, %d) outside the program's %d steps", c->prefix, entry_suffix[kind],
                       from, to, prog->nsteps);
    cg_prologue(c, &env);
    /* Steps in parts of at most CG_PART_STEPS, each its own never-inlined
     * function: code generation (instruction selection, register allocation)
     * of one huge body grows faster than linearly with its size. */
    for (int lo = from; lo < to; lo += CG_PART_STEPS) {
        int hi = to - lo > CG_PART_STEPS ? lo + CG_PART_STEPS : to;
        if (to - from <= CG_PART_STEPS) {
            if (!cg_steps(c, &env, lo, hi))
                return false;
            break;
        }
        LLVMValueRef rc = cg_part(c, &env, lo, hi);
        if (!rc)
            return false;
        cg_return_nonzero(c, env.fn, rc);
    }
    if (kind == E_FORWARD) {
        LLVMValueRef state = cg_state_ptr(c, &env);
        if (state)
            LLVMBuildStore(c->b, LLVMConstInt(c->t_i64, cg_state_tag(c), 0), state);
    }
    LLVMBuildRet(c->b, LLVMConstInt(c->t_i32, 0, 0));
    return true;
}

/* P_init(params, seed): every parameter and buffer in value-id order; the
 * value id is the RNG stream, so a tensor's values do not depend on others. */
static bool cg_init(cg_ctx *c) {
    const ir_graph *g = c->m->graph;
    LLVMTypeRef pt[] = {c->t_ptr, c->t_i64};
    LLVMValueRef fn = cg_add_function(c, "init", c->t_void, pt, 2);
    if (!fn)
        return false;
    cg_name_param(fn, 0, "params", true);
    cg_name_param(fn, 1, "seed", false);
    LLVMValueRef params = LLVMGetParam(fn, 0), seed = LLVMGetParam(fn, 1);
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_PARAM && val->kind != VAL_BUFFER)
            continue;
        char what[CG_MAX_PREFIX + 64];
        snprintf(what, sizeof what, "%s_init: '%s'", c->prefix, val->name ? val->name : "?");
        int64_t off = c->m->param_offset ? c->m->param_offset[v] : -1;
        int64_t n = shape_numel(&val->shape);
        int64_t esize = val->dtype == DT_I64 ? 8 : val->dtype == DT_F32 || val->dtype == DT_I32 ? 4 : 1;
        if (val->dtype == DT_BIT)
            return cg_fail(c, "%s: bit tensors cannot be parameters", what);
        if (off < 0 || n < 0 || off > c->m->params_bytes - n * esize)
            return cg_fail(c, "%s: offset %lld (+%lld bytes) outside the %lld-byte params block", what, (long long)off,
                           (long long)(n * esize), (long long)c->m->params_bytes);
        LLVMValueRef p = cg_offset(c, params, off, val->name ? val->name : "");
        bool aligned = off % IR_ALIGN == 0;
        if (val->init == INIT_ZEROS) {
            LLVMBuildMemSet(c->b, p, LLVMConstInt(c->t_i8, 0, 0),
                            LLVMConstInt(c->t_i64, (unsigned long long)(n * esize), 0), 1);
            continue;
        }
        if (val->dtype != DT_F32)
            return cg_fail(c, "%s: only f32 parameters can be initialised other than with zeros", what);
        if (val->init == INIT_ONES) {
            cg_arg a[] = {
                {.kind = A_PTR, .v = p, .aligned = aligned}, {.kind = A_INT, .i = n}, {.kind = A_FLOAT, .f = 1.0}};
            if (!cg_call_spec(c, what, "rt_fill_f32", a, 3))
                return false;
        } else if (val->init == INIT_KAIMING_UNIFORM || val->init == INIT_BIAS_UNIFORM) {
            /* PyTorch's Linear/Conv default: kaiming_uniform(a=sqrt(5)) for the
             * weight and U(-1/sqrt(fan_in), ..) for the bias: the same bound. */
            if (val->fan_in <= 0)
                return cg_fail(c, "%s: uniform initialisation needs fan_in > 0, not %lld", what,
                               (long long)val->fan_in);
            float bound = (float)(1.0 / sqrt((double)val->fan_in));
            cg_arg a[] = {{.kind = A_PTR, .v = p, .aligned = aligned},
                          {.kind = A_INT, .i = n},
                          {.kind = A_VALUE, .v = seed},
                          {.kind = A_VALUE, .v = LLVMConstInt(c->t_i64, (unsigned long long)v, 0)},
                          {.kind = A_FLOAT, .f = bound}};
            if (!cg_call_spec(c, what, "rt_init_uniform", a, 5))
                return false;
        } else if (val->init == INIT_NORMAL) {
            cg_arg a[] = {{.kind = A_PTR, .v = p, .aligned = aligned},
                          {.kind = A_INT, .i = n},
                          {.kind = A_VALUE, .v = seed},
                          {.kind = A_VALUE, .v = LLVMConstInt(c->t_i64, (unsigned long long)v, 0)},
                          {.kind = A_FLOAT, .f = val->init_std > 0 ? val->init_std : 1.0}};
            if (!cg_call_spec(c, what, "rt_init_normal", a, 5))
                return false;
        } else {
            return cg_fail(c, "%s: unknown initialiser %d", what, val->init);
        }
    }
    if (c->m->checked && c->m->params_bytes > 0 && !cg_guard_fill(c, cg_block_guard(c, params, c->m->params_bytes)))
        return false;
    LLVMBuildRetVoid(c->b);
    return true;
}

/* ---------------------------------------------------------------- module */

/* ---------------------------------------------------------------- optimizer */

/* The frost_hparams struct of the header: seven floats and an int32. */
static LLVMTypeRef cg_hparams_type(cg_ctx *c) {
    LLVMTypeRef f = LLVMFloatTypeInContext(c->ctx);
    LLVMTypeRef fields[] = {f, f, f, f, f, f, f, c->t_i32};
    return LLVMStructTypeInContext(c->ctx, fields, 8, 0);
}

/* --checked: P_update verifies the guards at the end of its three blocks (it
 * returns void: a failure is reported on stderr only, and stops the update). */
static bool cg_update_guards(cg_ctx *c, LLVMValueRef fn, LLVMValueRef params, LLVMValueRef grads, LLVMValueRef state,
                             const char *when) {
    const char *names[] = {"params", "grads", "optimizer state"};
    const char *sets[] = {"P_init", "P_backward", "P_opt_init"};
    LLVMValueRef bases[] = {params, grads, state};
    int64_t sizes[] = {c->m->params_bytes, c->m->grads_bytes, c->m->opt_state_bytes};
    for (int k = 0; k < 3; k++) {
        if (sizes[k] == 0)
            continue;
        char *msg = cg_strdupf("%s_update: %s: guard at the end of the %s block changed: the block is smaller than "
                               "the header says, something wrote past its end, or %s (which sets the guard) did not "
                               "run on it; nothing was updated",
                               c->prefix, when, names[k], sets[k]);
        if (msg && !strcmp(when, "after the update"))
            strcpy(strstr(msg, "; nothing was updated"), "");
        bool ok = msg && cg_guard_check(c, fn, NULL, cg_block_guard(c, bases[k], sizes[k]), msg);
        free(msg);
        if (!ok)
            return c->err ? false : cg_fail(c, "out of memory");
    }
    return true;
}

/* P_update(params, grads, opt_state, hparams): one optimizer step over the
 * trainable parameters; hparams NULL means the defaults compiled in. */
static bool cg_update(cg_ctx *c) {
    const ir_module *m = c->m;
    const ir_graph *g = m->graph;
    const ir_optimizer *o = &m->opt;
    LLVMTypeRef pt[] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr};
    LLVMValueRef fn = cg_add_function(c, "update", c->t_void, pt, 4);
    if (!fn)
        return false;
    cg_name_param(fn, 0, "params", true);
    cg_name_param(fn, 1, "grads", true);
    cg_name_param(fn, 2, "opt_state", true);
    cg_name_param(fn, 3, "hparams", false);
    LLVMValueRef params = LLVMGetParam(fn, 0), grads = LLVMGetParam(fn, 1), state = LLVMGetParam(fn, 2);

    LLVMTypeRef ht = cg_hparams_type(c), f32 = LLVMFloatTypeInContext(c->ctx);
    LLVMValueRef defaults[] = {LLVMConstReal(f32, o->lr),        LLVMConstReal(f32, o->momentum),
                               LLVMConstReal(f32, o->dampening), LLVMConstReal(f32, o->weight_decay),
                               LLVMConstReal(f32, o->beta1),     LLVMConstReal(f32, o->beta2),
                               LLVMConstReal(f32, o->eps),       LLVMConstInt(c->t_i32, o->nesterov, 0)};
    LLVMValueRef dflt = LLVMAddGlobal(c->mod, ht, "frost_default_hparams");
    LLVMSetInitializer(dflt, LLVMConstStructInContext(c->ctx, defaults, 8, 0));
    LLVMSetGlobalConstant(dflt, 1);
    LLVMSetLinkage(dflt, LLVMInternalLinkage);
    LLVMValueRef given = LLVMGetParam(fn, 3);
    LLVMValueRef none = LLVMBuildICmp(c->b, LLVMIntEQ, given, LLVMConstNull(c->t_ptr), "");
    LLVMValueRef hp = LLVMBuildSelect(c->b, none, LLVMBuildPointerCast(c->b, dflt, c->t_ptr, ""), given, "hp");

    if (m->checked && !cg_update_guards(c, fn, params, grads, state, "on entry"))
        return false;
    cg_arg begin[] = {{.kind = A_PTR, .v = state}};
    if (!cg_call(c, "update", "rt_opt_step_begin", begin, 1))
        return false;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (!m->opt_offset || m->opt_offset[v] < 0)
            continue; /* frozen, a buffer, or a module built without optimizer state */
        char what[CG_MAX_PREFIX + 64];
        snprintf(what, sizeof what, "%s_update: '%s'", c->prefix, val->name);
        int64_t n = shape_numel(&val->shape), slot = ir_align_up(n * 4);
        if (m->opt_offset[v] + opt_slots(o->kind) * slot > m->opt_state_bytes || m->grad_offset[v] < 0)
            return cg_fail(c, "%s: optimizer state or gradient outside its block", what);
        LLVMValueRef p = cg_offset(c, params, m->param_offset[v], val->name);
        LLVMValueRef gr = cg_offset(c, grads, m->grad_offset[v], "");
        LLVMValueRef s1 = cg_offset(c, state, m->opt_offset[v], "");
        /* Layout puts every tensor at an IR_ALIGN multiple; slots are rounded up to one. */
        bool al = m->param_offset[v] % IR_ALIGN == 0 && m->grad_offset[v] % IR_ALIGN == 0 &&
                  m->opt_offset[v] % IR_ALIGN == 0 && slot % IR_ALIGN == 0;
        if (o->kind == OPT_SGD) {
            cg_arg a[] = {{.kind = A_PTR, .v = p, .aligned = al},
                          {.kind = A_PTR, .v = gr, .aligned = al},
                          {.kind = A_PTR, .v = s1, .aligned = al},
                          {.kind = A_PTR, .v = state},
                          {.kind = A_PTR, .v = hp},
                          {.kind = A_INT, .i = n}};
            if (!cg_call_spec(c, what, "rt_sgd_update", a, 6))
                return false;
        } else {
            LLVMValueRef s2 = cg_offset(c, state, m->opt_offset[v] + slot, "");
            cg_arg a[] = {{.kind = A_PTR, .v = p, .aligned = al},
                          {.kind = A_PTR, .v = gr, .aligned = al},
                          {.kind = A_PTR, .v = s1, .aligned = al},
                          {.kind = A_PTR, .v = s2, .aligned = al},
                          {.kind = A_PTR, .v = state},
                          {.kind = A_PTR, .v = hp},
                          {.kind = A_INT, .i = n}};
            if (!cg_call_spec(c, what, "rt_adamw_update", a, 7))
                return false;
        }
    }
    if (m->checked && !cg_update_guards(c, fn, params, grads, state, "after the update"))
        return false;
    LLVMBuildRetVoid(c->b);
    return true;
}

/* P_opt_init(opt_state): zero the optimizer state, as the first update needs. */
static bool cg_opt_init(cg_ctx *c) {
    LLVMTypeRef pt[] = {c->t_ptr};
    LLVMValueRef fn = cg_add_function(c, "opt_init", c->t_void, pt, 1);
    if (!fn)
        return false;
    cg_name_param(fn, 0, "opt_state", true);
    if (c->m->opt_state_bytes > 0) {
        LLVMValueRef state = LLVMGetParam(fn, 0);
        LLVMBasicBlockRef zero = LLVMAppendBasicBlockInContext(c->ctx, fn, "zero");
        LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, fn, "done");
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, state, LLVMConstNull(c->t_ptr), ""), done, zero);
        LLVMPositionBuilderAtEnd(c->b, zero);
        LLVMBuildMemSet(c->b, state, LLVMConstInt(c->t_i8, 0, 0),
                        LLVMConstInt(c->t_i64, (unsigned long long)c->m->opt_state_bytes, 0), IR_ALIGN);
        if (c->m->checked && !cg_guard_fill(c, cg_block_guard(c, state, c->m->opt_state_bytes)))
            return false;
        LLVMBuildBr(c->b, done);
        LLVMPositionBuilderAtEnd(c->b, done);
    }
    LLVMBuildRetVoid(c->b);
    return true;
}

/* P_train_step(params, grads, opt_state, in, out, arena, hparams): forward,
 * backward and update; returns the loss, or NaN (parameters untouched) when
 * forward or backward reported an error. out may be NULL. */
static bool cg_train_step(cg_ctx *c) {
    char name[CG_MAX_PREFIX + 32];
    LLVMValueRef callee[3];
    static const char *const parts[] = {"forward", "backward", "update"};
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%s_%s", c->prefix, parts[k]);
        if (!(callee[k] = LLVMGetNamedFunction(c->mod, name)))
            return cg_fail(c, "train_step: %s was not generated", name);
    }
    LLVMTypeRef f32 = LLVMFloatTypeInContext(c->ctx);
    LLVMTypeRef pin = LLVMPointerType(c->t_in, 0), pout = LLVMPointerType(c->t_out, 0);
    LLVMTypeRef pt[] = {c->t_ptr, c->t_ptr, c->t_ptr, pin, pout, c->t_ptr, c->t_ptr};
    LLVMValueRef fn = cg_add_function(c, "train_step", f32, pt, 7);
    if (!fn)
        return false;
    cg_name_param(fn, 0, "params", true);
    cg_name_param(fn, 1, "grads", true);
    cg_name_param(fn, 2, "opt_state", true);
    cg_name_param(fn, 3, "in", false);
    cg_name_param(fn, 4, "out", false);
    cg_name_param(fn, 5, "arena", true);
    cg_name_param(fn, 6, "hparams", false);
    LLVMValueRef params = LLVMGetParam(fn, 0), grads = LLVMGetParam(fn, 1), state = LLVMGetParam(fn, 2);
    LLVMValueRef in = LLVMGetParam(fn, 3), out = LLVMGetParam(fn, 4), arena = LLVMGetParam(fn, 5);
    LLVMValueRef hp = LLVMGetParam(fn, 6);

    /* Our own outputs struct: the caller's fields, with the loss redirected
     * to a local so that it is known even when the caller passes none. */
    LLVMValueRef loss = LLVMBuildAlloca(c->b, f32, "loss");
    LLVMValueRef outs = LLVMBuildAlloca(c->b, c->t_out, "outs");
    LLVMValueRef has_out = LLVMBuildICmp(c->b, LLVMIntNE, out, LLVMConstNull(pout), "");
    LLVMBasicBlockRef copy = LLVMAppendBasicBlockInContext(c->ctx, fn, "copy_out");
    LLVMBasicBlockRef clear = LLVMAppendBasicBlockInContext(c->ctx, fn, "no_out");
    LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(c->ctx, fn, "run");
    LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(c->ctx, fn, "fail");
    LLVMBuildCondBr(c->b, has_out, copy, clear);
    LLVMPositionBuilderAtEnd(c->b, copy);
    LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->t_out, out, ""), outs);
    LLVMBuildBr(c->b, run);
    LLVMPositionBuilderAtEnd(c->b, clear);
    LLVMBuildStore(c->b, LLVMConstNull(c->t_out), outs);
    LLVMBuildBr(c->b, run);
    LLVMPositionBuilderAtEnd(c->b, run);
    LLVMValueRef field0 = LLVMBuildStructGEP2(c->b, c->t_out, outs, 0, "");
    LLVMBuildStore(c->b, LLVMBuildPointerCast(c->b, loss, c->t_ptr, ""), field0);

    LLVMValueRef fargs[] = {params, in, outs, arena};
    LLVMValueRef rc = LLVMBuildCall2(c->b, LLVMGlobalGetValueType(callee[0]), callee[0], fargs, 4, "");
    LLVMBasicBlockRef bwd = LLVMAppendBasicBlockInContext(c->ctx, fn, "backward");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, rc, LLVMConstInt(c->t_i32, 0, 0), ""), fail, bwd);
    LLVMPositionBuilderAtEnd(c->b, bwd);
    LLVMValueRef bargs[] = {params, grads, arena};
    rc = LLVMBuildCall2(c->b, LLVMGlobalGetValueType(callee[1]), callee[1], bargs, 3, "");
    LLVMBasicBlockRef upd = LLVMAppendBasicBlockInContext(c->ctx, fn, "update");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, rc, LLVMConstInt(c->t_i32, 0, 0), ""), fail, upd);
    LLVMPositionBuilderAtEnd(c->b, upd);
    LLVMValueRef uargs[] = {params, grads, state, hp};
    LLVMBuildCall2(c->b, LLVMGlobalGetValueType(callee[2]), callee[2], uargs, 4, "");
    LLVMValueRef value = LLVMBuildLoad2(c->b, f32, loss, "");
    LLVMBasicBlockRef give = LLVMAppendBasicBlockInContext(c->ctx, fn, "give_loss");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, fn, "done");
    LLVMBuildCondBr(c->b, has_out, give, done);
    LLVMPositionBuilderAtEnd(c->b, give);
    LLVMValueRef user_field = LLVMBuildStructGEP2(c->b, c->t_out, out, 0, "");
    LLVMValueRef user_loss = LLVMBuildLoad2(c->b, c->t_ptr, user_field, "");
    LLVMBasicBlockRef store = LLVMAppendBasicBlockInContext(c->ctx, fn, "store_loss");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, user_loss, LLVMConstNull(c->t_ptr), ""), store, done);
    LLVMPositionBuilderAtEnd(c->b, store);
    LLVMBuildStore(c->b, value, LLVMBuildPointerCast(c->b, user_loss, LLVMPointerType(f32, 0), ""));
    LLVMBuildBr(c->b, done);
    LLVMPositionBuilderAtEnd(c->b, done);
    LLVMBuildRet(c->b, value);
    LLVMPositionBuilderAtEnd(c->b, fail);
    LLVMBuildRet(c->b, LLVMConstReal(f32, NAN));
    return true;
}

static bool cg_is_entry(const cg_ctx *c, const char *name) {
    size_t n = strlen(c->prefix);
    if (strncmp(name, c->prefix, n) != 0 || name[n] != '_')
        return false;
    name += n + 1;
    return !strcmp(name, "forward") || !strcmp(name, "backward") || !strcmp(name, "infer") || !strcmp(name, "init") ||
           !strcmp(name, "update") || !strcmp(name, "train_step") || !strcmp(name, "opt_init") ||
           !strcmp(name, "set_threads") || (c->m->checked && !strcmp(name, "last_error"));
}

/* Internalise everything the runtime defined and give every function the
 * target's CPU: the bitcode was produced for the build host's baseline. */
static void cg_finish_functions(cg_ctx *c, const char *cpu, const char *features) {
    static const char *const drop[] = {"target-cpu", "target-features", "tune-cpu"};
    for (LLVMValueRef f = LLVMGetFirstFunction(c->mod); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f))
            continue;
        size_t len;
        const char *name = LLVMGetValueName2(f, &len);
        if (!cg_is_entry(c, name))
            LLVMSetLinkage(f, LLVMInternalLinkage);
        for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
            LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, drop[i], (unsigned)strlen(drop[i]));
        if (cpu && *cpu)
            LLVMAddTargetDependentFunctionAttr(f, "target-cpu", cpu);
        if (features && *features)
            LLVMAddTargetDependentFunctionAttr(f, "target-features", features);
    }
    for (LLVMValueRef gv = LLVMGetFirstGlobal(c->mod); gv; gv = LLVMGetNextGlobal(gv))
        if (!LLVMIsDeclaration(gv))
            LLVMSetLinkage(gv, LLVMInternalLinkage);
}

static char *cg_strdup(const char *s) {
    char *d = malloc(strlen(s) + 1);
    if (d)
        strcpy(d, s);
    return d;
}

/* Parse the embedded runtime and link it into c->mod. */
static bool cg_link_runtime(cg_ctx *c, const char *triple, LLVMTargetDataRef td) {
    LLVMMemoryBufferRef buf =
        LLVMCreateMemoryBufferWithMemoryRange((const char *)frost_rt_bitcode, frost_rt_bitcode_len, "frost_rt.bc", 0);
    LLVMModuleRef rt = NULL;
    bool bad = LLVMParseBitcodeInContext2(c->ctx, buf, &rt);
    LLVMDisposeMemoryBuffer(buf);
    if (bad || !rt)
        return cg_fail(c, "cannot read the embedded runtime bitcode: %s",
                       c->llvm_diag ? c->llvm_diag : "unknown error");
    LLVMSetTarget(rt, triple);
    LLVMSetModuleDataLayout(rt, td);
    if (LLVMLinkModules2(c->mod, rt)) /* consumes rt */
        return cg_fail(c, "cannot link the runtime: %s", c->llvm_diag ? c->llvm_diag : "unknown error");
    return true;
}

static bool cg_build(cg_ctx *c, const cg_options *o, const char *path) {
    const ir_module *m = c->m;
    const ir_graph *g = m->graph;
    int opt = o ? o->opt_level : 2;
    opt = opt < 0 ? 0 : opt > 3 ? 3 : opt;

    char *terr0 = NULL;
    if (!cg_check_target(o, &terr0)) {
        c->err = terr0;
        return false;
    }
    /* Target: the host unless told otherwise. */
    char *triple = o && o->triple ? cg_strdup(o->triple) : LLVMGetDefaultTargetTriple();
    char *host_cpu = NULL, *host_features = NULL;
    const char *cpu = "", *features = "";
    if (o && o->cpu) {
        cpu = o->cpu;
    } else if (!(o && o->triple)) {
        cpu = host_cpu = LLVMGetHostCPUName();
        features = host_features = LLVMGetHostCPUFeatures();
    }
    char *terr = NULL;
    LLVMTargetRef target = NULL;
    LLVMTargetMachineRef tm = NULL;
    LLVMTargetDataRef td = NULL;
    bool ok = false;
    if (!triple) {
        cg_fail(c, "out of memory");
        goto out;
    }
    if (LLVMGetTargetFromTriple(triple, &target, &terr)) {
        cg_fail(c, "target %s: %s", triple, terr ? terr : "unknown target");
        goto out;
    }
    static const LLVMCodeGenOptLevel levels[] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess, LLVMCodeGenLevelDefault,
                                                 LLVMCodeGenLevelAggressive};
    tm = LLVMCreateTargetMachine(target, triple, cpu, features, levels[opt], LLVMRelocPIC, LLVMCodeModelDefault);
    if (!tm) {
        cg_fail(c, "cannot create a target machine for %s (cpu '%s')", triple, cpu);
        goto out;
    }
    td = LLVMCreateTargetDataLayout(tm);
    LLVMSetTarget(c->mod, triple);
    LLVMSetModuleDataLayout(c->mod, td);
    if (!cg_link_runtime(c, triple, td))
        goto out;
    int wide = cg_target_has_feature(triple, cpu, features, "avx512f");
    if (!cg_define_constant(c, "rt_cfg_gemm", o && o->gemm == CG_GEMM_OPENBLAS ? RT_GEMM_OPENBLAS : RT_GEMM_FROST) ||
        !cg_define_constant(c, "rt_cfg_wide", wide == 1))
        goto out;

    /* One pointer field per input (value-id order), one per output. */
    c->ninputs = 0;
    for (int v = 0; v < g->nvals; v++)
        c->ninputs += g->vals[v].kind == VAL_INPUT;
    LLVMTypeRef *fields = malloc(sizeof *fields * (size_t)(c->ninputs + g->noutputs + 1));
    if (!fields) {
        cg_fail(c, "out of memory");
        goto out;
    }
    for (int i = 0; i < c->ninputs + g->noutputs; i++)
        fields[i] = c->t_ptr;
    char sname[CG_MAX_PREFIX + 16];
    snprintf(sname, sizeof sname, "%s_inputs", c->prefix);
    c->t_in = LLVMStructCreateNamed(c->ctx, sname);
    LLVMStructSetBody(c->t_in, fields, (unsigned)c->ninputs, 0);
    snprintf(sname, sizeof sname, "%s_outputs", c->prefix);
    c->t_out = LLVMStructCreateNamed(c->ctx, sname);
    LLVMStructSetBody(c->t_out, fields, (unsigned)g->noutputs, 0);
    free(fields);

    if (m->train.nfwd < 0 || m->train.nfwd > m->train.nsteps) {
        cg_fail(c, "train program: nfwd %d outside [0, %d]", m->train.nfwd, m->train.nsteps);
        goto out;
    }
    /* --checked: the checks after every step stay calls; inlined, they made
     * each part's body many times larger and ResNet-18's compile 13 times
     * slower */
    static const char *const checks[] = {"rt_guard_fill", "rt_guard_find", "rt_nonfinite_find", "rt_check_report"};
    for (size_t k = 0; m->checked && k < sizeof checks / sizeof *checks; k++) {
        LLVMValueRef fn = LLVMGetNamedFunction(c->mod, checks[k]);
        if (fn)
            cg_never_inline(c, fn);
    }
    /* --infer-only: init and infer; the train program was never built */
    if ((!m->infer_only && (!cg_entry(c, E_FORWARD, &m->train, 0, m->train.nfwd) ||
                            !cg_entry(c, E_BACKWARD, &m->train, m->train.nfwd, m->train.nsteps))) ||
        !cg_entry(c, E_INFER, &m->infer, 0, m->infer.nsteps) || !cg_init(c) || !cg_set_threads(c) ||
        (!m->infer_only && (!cg_update(c) || !cg_opt_init(c) || !cg_train_step(c))) ||
        (m->checked && !cg_last_error(c)))
        goto out;
    cg_finish_functions(c, cpu, features);

    char *verr = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &verr)) {
        cg_fail(c, "internal error: generated module does not verify: %s", verr ? verr : "");
        LLVMDisposeMessage(verr);
        goto out;
    }
    LLVMDisposeMessage(verr);

    /* At O0 still drop the runtime functions no step calls. */
    char pipeline[48];
    snprintf(pipeline, sizeof pipeline, "default<O%d>%s", opt, opt ? "" : ",globaldce");
    LLVMPassBuilderOptionsRef popts = LLVMCreatePassBuilderOptions();
    LLVMErrorRef perr = LLVMRunPasses(c->mod, pipeline, tm, popts);
    LLVMDisposePassBuilderOptions(popts);
    if (perr) {
        char *msg = LLVMGetErrorMessage(perr);
        cg_fail(c, "optimisation failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        goto out;
    }

    char *cpath = cg_strdup(path); /* LLVM 14 takes char * */
    if (!cpath) {
        cg_fail(c, "out of memory");
        goto out;
    }
    char *eerr = NULL;
    if (LLVMTargetMachineEmitToFile(tm, c->mod, cpath, LLVMObjectFile, &eerr)) {
        cg_fail(c, "cannot write %s: %s", path, eerr ? eerr : "unknown error");
        LLVMDisposeMessage(eerr);
        free(cpath);
        goto out;
    }
    free(cpath);
    ok = true;
out:
    if (td)
        LLVMDisposeTargetData(td);
    if (tm)
        LLVMDisposeTargetMachine(tm);
    if (terr)
        LLVMDisposeMessage(terr);
    if (host_cpu)
        LLVMDisposeMessage(host_cpu);
    if (host_features)
        LLVMDisposeMessage(host_features);
    if (triple) {
        if (o && o->triple)
            free(triple);
        else
            LLVMDisposeMessage(triple);
    }
    return ok;
}

bool cg_emit_object(const ir_module *m, const cg_options *o, const char *path, char **err) {
    if (err)
        *err = NULL;
    cg_ctx c = {.m = m};
    bool ok = false;
    if (!m || !m->graph || !path) {
        if (err)
            *err = cg_strdup("cg_emit_object: no module or no path");
        return false;
    }
    cg_prefix(m, o, c.prefix);

    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    c.ctx = LLVMContextCreate();
    LLVMContextSetDiagnosticHandler(c.ctx, cg_diag_handler, &c);
    c.mod = LLVMModuleCreateWithNameInContext(c.prefix, c.ctx);
    c.b = LLVMCreateBuilderInContext(c.ctx);
    c.t_void = LLVMVoidTypeInContext(c.ctx);
    c.t_i8 = LLVMInt8TypeInContext(c.ctx);
    c.t_i32 = LLVMInt32TypeInContext(c.ctx);
    c.t_i64 = LLVMInt64TypeInContext(c.ctx);
    c.t_ptr = LLVMPointerType(c.t_i8, 0);

    ok = cg_build(&c, o, path);

    LLVMDisposeBuilder(c.b);
    LLVMDisposeModule(c.mod);
    LLVMContextDispose(c.ctx);
    free(c.llvm_diag);
    free(c.msgs);
    if (!ok && !c.err)
        c.err = cg_strdup("code generation failed");
    if (err)
        *err = c.err;
    else
        free(c.err);
    return ok;
}
