/* header.c: the C header that goes with a generated object file.
 *
 * Self-contained (only <stdint.h>), C++-safe (extern "C", no designated
 * initialisers, no data symbols: the parameter table is a static const array),
 * and self-documenting: a caller should need nothing but this file and
 * docs/abi.md. The contract is in ARCHITECTURE.md "Generated interface".
 */
#include "cg.h"
#include "rt.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void cg_prefix(const ir_module *m, const cg_options *o, char buf[CG_MAX_PREFIX]) {
    const char *src = o && o->prefix && *o->prefix                           ? o->prefix
                      : m && m->graph && m->graph->model && *m->graph->model ? m->graph->model
                                                                             : "model";
    size_t n = 0;
    if (isdigit((unsigned char)src[0])) {
        buf[n++] = 'm';
        buf[n++] = '_';
    }
    for (; *src && n + 1 < CG_MAX_PREFIX; src++)
        buf[n++] = isalnum((unsigned char)*src) || *src == '_' ? *src : '_';
    buf[n] = 0;
}

/* Name made a C identifier (and not a keyword a C or C++ compiler would reject). */
static void hd_ident(char *buf, size_t size, const char *name) {
    static const char *const kw[] = {
        "auto",      "bool",   "break",    "case",     "catch",    "char",      "class",   "const",    "continue",
        "default",   "delete", "do",       "double",   "else",     "enum",      "extern",  "float",    "for",
        "goto",      "if",     "inline",   "int",      "long",     "namespace", "new",     "operator", "private",
        "protected", "public", "register", "restrict", "return",   "short",     "signed",  "sizeof",   "static",
        "struct",    "switch", "template", "this",     "throw",    "try",       "typedef", "typename", "union",
        "unsigned",  "using",  "virtual",  "void",     "volatile", "while"};
    size_t n = 0;
    if (!name || !*name)
        name = "_";
    if (isdigit((unsigned char)name[0]))
        buf[n++] = '_';
    for (; *name && n + 2 < size; name++)
        buf[n++] = isalnum((unsigned char)*name) || *name == '_' ? *name : '_';
    buf[n] = 0;
    for (size_t i = 0; i < sizeof kw / sizeof *kw; i++)
        if (!strcmp(buf, kw[i])) {
            buf[n++] = '_';
            buf[n] = 0;
        }
}

static void hd_upper(char *s) {
    for (; *s; s++)
        *s = (char)toupper((unsigned char)*s);
}

static void hd_shape(FILE *out, ir_dtype dt, const ir_shape *s) {
    fprintf(out, "%s[", dtype_name(dt));
    for (int i = 0; i < s->rank; i++)
        fprintf(out, "%s%lld", i ? ", " : "", (long long)s->dim[i]);
    fputc(']', out);
}

static const char *hd_ctype(ir_dtype dt) {
    switch (dt) {
    case DT_F32: return "float";
    case DT_I32: return "int32_t";
    case DT_I64: return "int64_t";
    default: return "uint8_t";
    }
}

/* A C string literal; names in comments are printed as they are. */
static void hd_cstring(FILE *out, const char *s) {
    fputc('"', out);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(out, "\\%03o", (unsigned char)*s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static int64_t hd_numel(const ir_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->dim[i];
    return n;
}

/* A user block's size in the header: with --checked, its guard included. */
static int64_t hd_block(const ir_module *m, int64_t bytes) {
    return m->checked ? ir_checked_block(bytes) : ir_align_up(bytes);
}

static int hd_count_adapters(const ir_graph *g) {
    int count = 0;
    ir_adapter a;
    for (int ni = 0; ni < g->nnodes; ni++)
        count += ir_lora_adapter(&g->nodes[ni], &a);
    return count;
}

/* The index of value v in P_params[], which lists params and buffers in value order. */
static int hd_param_index(const ir_graph *g, int v) {
    int index = 0;
    for (int u = 0; u < v; u++)
        index += g->vals[u].kind == VAL_PARAM || g->vals[u].kind == VAL_BUFFER;
    return index;
}

/* Adapter table: each LoRA layer's tensors (as P_params[] indices) and how
 * W += scale B A is laid out, for frost_lora_merge (support/frost_support.h)
 * and any code that merges or inspects adapters without knowing the model. */
static void hd_adapters(const ir_graph *g, const char *p, FILE *out) {
    fprintf(out,
            "/* LoRA adapters (configuration items `lora`), in graph order. weight, lora_A,\n"
            " * lora_B: indices into %s_params[]; the layer computes W x + b + scale B(A(dropout(x)))\n"
            " * with A [r, in], B [out, r], and W [out, in], or [in, out] when in_out (GPT-2's\n"
            " * Conv1D). scale is alpha / r, or alpha / sqrt(r) with rslora. The type is the\n"
            " * same for every frost model. */\n"
            "#ifndef FROST_ADAPTER_INFO_DEFINED\n"
            "#define FROST_ADAPTER_INFO_DEFINED\n"
            "typedef struct frost_adapter_info {\n"
            "    const char *layer;\n"
            "    int32_t weight, lora_A, lora_B;\n"
            "    int32_t r;\n"
            "    double alpha, scale, dropout;\n"
            "    int32_t in_out, rslora;\n"
            "} frost_adapter_info;\n"
            "#endif\n\n",
            p);
    int count = hd_count_adapters(g);
    fprintf(out, "#if defined(__GNUC__)\n__attribute__((unused))\n#endif\n");
    fprintf(out, "static const frost_adapter_info %s_adapters[%s] = {\n", p, count ? "" : "1");
    if (!count)
        fprintf(out, "    { \"\", -1, -1, -1, 0, 0, 0, 0, 0, 0 } /* placeholder: the model has no adapters */\n");
    ir_adapter a;
    for (int ni = 0; ni < g->nnodes; ni++) {
        if (!ir_lora_adapter(&g->nodes[ni], &a))
            continue;
        fprintf(out, "    { ");
        hd_cstring(out, g->nodes[ni].name);
        fprintf(out, ", %d, %d, %d, %lld, %.17g, %.17g, %.17g, %d, %d },\n", hd_param_index(g, a.weight),
                hd_param_index(g, a.lora_a), hd_param_index(g, a.lora_b), (long long)a.r, a.alpha, a.scale, a.dropout,
                a.in_out, a.rslora);
    }
    fprintf(out, "};\n\n");
}

/* The optimizer compiled in: its state size, default hyper-parameters and
 * the update / train_step entry points. frost_hparams is shared by every
 * model's header (guarded), so a driver can hold one for several models. */
static void hd_optimizer(const ir_module *m, const char *p, const char *P, FILE *out) {
    const ir_optimizer *o = &m->opt;
    fprintf(out,
            "/* Optimizer: %s, compiled in. Its state (the step count, then per\n"
            " * trainable parameter %s) must be zeroed before the first update:\n"
            " * %s_opt_init does that (a NULL opt_state is left alone). */\n"
            "#define %s_OPTIMIZER \"%s\"\n"
            "#define %s_OPT_STATE_BYTES %lldLL\n"
            "void %s_opt_init(void *opt_state);\n\n",
            opt_name(o->kind), o->kind == OPT_ADAMW ? "the first and second moments" : "the momentum buffer", p, P,
            opt_name(o->kind), P, (long long)hd_block(m, m->opt_state_bytes), p);
    fprintf(out, "#ifndef FROST_HPARAMS_DEFINED\n#define FROST_HPARAMS_DEFINED\n"
                 "/* Hyper-parameters read at every update; fields an optimizer does not use\n"
                 " * are ignored (SGD: lr, momentum, dampening, weight_decay, nesterov; AdamW:\n"
                 " * lr, beta1, beta2, eps, weight_decay). */\n"
                 "typedef struct frost_hparams {\n"
                 "    float lr, momentum, dampening, weight_decay, beta1, beta2, eps;\n"
                 "    int32_t nesterov;\n"
                 "} frost_hparams;\n#endif\n\n");
    fprintf(out, "/* The defaults this object was compiled with (also used when hparams is NULL). */\n");
    fprintf(out, "#if defined(__GNUC__)\n__attribute__((unused))\n#endif\n");
    const double values[] = {o->lr, o->momentum, o->dampening, o->weight_decay, o->beta1, o->beta2, o->eps};
    fprintf(out, "static const frost_hparams %s_default_hparams = {", p);
    for (size_t k = 0; k < sizeof values / sizeof values[0]; k++) {
        char lit[40];
        snprintf(lit, sizeof lit, "%.9g", values[k]);
        /* a float literal needs a '.' or an exponent before its 'f' */
        fprintf(out, " %s%sf,", lit, strpbrk(lit, ".e") ? "" : ".0");
    }
    fprintf(out, " %d };\n\n", o->nesterov ? 1 : 0);
    fprintf(out,
            "/* One optimizer step on the trainable parameters from grads (as the last\n"
            " * %s_backward left them). hparams may be NULL: %s_default_hparams. */\n"
            "void %s_update(void *params, const void *grads, void *opt_state, const frost_hparams *hparams);\n\n"
            "/* %s_forward, %s_backward and %s_update in one call. Returns the loss, or\n"
            " * NaN when forward or backward failed (then nothing was updated: call\n"
            " * %s_forward for the return code). out may be NULL. */\n"
            "float %s_train_step(void *params, void *grads, void *opt_state, const %s_inputs *in, %s_outputs *out,\n"
            "                    void *arena, const frost_hparams *hparams);\n\n",
            p, p, p, p, p, p, p, p, p, p);
}

/* The residuals as arena byte ranges {offset, bytes}, sorted by offset: every
 * storage (alias root) of the train arena live from forward into backward,
 * with the extent of its largest member. Everything else in the arena is dead
 * between P_forward and P_backward (tests/e2e/poison.c relies on that). */
static void hd_kept_ranges(const ir_module *m, const char *p, const char *P, FILE *out) {
    const ir_program *prog = &m->train;
    int n = 0;
    int *root = calloc((size_t)prog->nbufs + 1, sizeof(int));
    int64_t *ext = calloc((size_t)prog->nbufs + 1, sizeof(int64_t));
    int *kept = calloc((size_t)prog->nbufs + 1, sizeof(int));
    if (!root || !ext || !kept) {
        free(root), free(ext), free(kept);
        fprintf(out, "#error \"frost ran out of memory writing the kept ranges\"\n");
        return;
    }
    ir_storage_roots(prog, root);
    for (int b = 0; b < prog->nbufs; b++)
        if (prog->bufs[b].space == SPACE_ARENA && prog->bufs[b].bytes > ext[root[b]])
            ext[root[b]] = prog->bufs[b].bytes;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *x = &prog->bufs[b];
        bool state = x->kind == BUF_STATE; /* read by backward even when it has no steps */
        if (root[b] != b || x->space != SPACE_ARENA || x->first < 0 || ext[b] == 0 ||
            (!state && (x->first >= prog->nfwd || x->last < prog->nfwd)))
            continue;
        int k = n++; /* insertion by offset */
        while (k > 0 && prog->bufs[kept[k - 1]].offset > x->offset) {
            kept[k] = kept[k - 1];
            k--;
        }
        kept[k] = b;
    }
    /* --checked: each residual's guards are kept with it, and the arena's end guard */
    int64_t gb = m->checked ? IR_GUARD_BYTES : 0;
    int64_t total = m->checked ? gb : 0;
    for (int k = 0; k < n; k++)
        total += ext[kept[k]] + (prog->bufs[kept[k]].kind == BUF_STATE ? 0 : 2 * gb);
    fprintf(out,
            "/* Residuals: the train-arena byte ranges {offset, bytes} that %s_forward leaves\n"
            " * for %s_backward, sorted by offset (%lld bytes in all). Every other byte of\n"
            " * the train arena is dead between the two calls and may be overwritten. */\n"
            "#define %s_NUM_KEPT_RANGES %d\n",
            p, p, (long long)total, P, n + (m->checked ? 1 : 0));
    fprintf(out, "#if defined(__GNUC__)\n__attribute__((unused))\n#endif\n");
    if (n || m->checked)
        fprintf(out, "static const int64_t %s_kept_ranges[%s_NUM_KEPT_RANGES][2] = {\n", p, P);
    else
        fprintf(out,
                "static const int64_t %s_kept_ranges[1][2] = {\n"
                "    { 0, 0 } /* placeholder: forward keeps nothing for backward */\n",
                p);
    for (int k = 0; k < n; k++) {
        const ir_buf *x = &prog->bufs[kept[k]];
        int64_t g = x->kind == BUF_STATE ? 0 : gb;
        fprintf(out, "    { %lldLL, %lldLL }, /* %s%s */\n", (long long)(x->offset - g),
                (long long)(ext[kept[k]] + 2 * g), x->name ? x->name : "?", g ? " and its guards" : "");
    }
    if (m->checked)
        fprintf(out, "    { %lldLL, %lldLL }, /* guard at the end of the arena */\n",
                (long long)(prog->arena_bytes - IR_GUARD_BYTES), (long long)IR_GUARD_BYTES);
    fprintf(out, "};\n\n");
    free(root);
    free(ext);
    free(kept);
}

/* --infer-only: the top comment. */
static void hd_infer_intro(const char *p, const char *P, const char *model, int nparams, int64_t scalars, FILE *out) {
    fprintf(out,
            "/* %s.h: interface of the object file frost generated for model `%s`.\n"
            " * Generated code; do not edit. See frost's docs/abi.md for the full reference.\n"
            " *\n"
            " * Inference only (frost compile --infer-only): %d parameter tensors (%lld scalars),\n"
            " * no training entry points, no gradients, no optimizer.\n"
            " *\n"
            " * Usage (error handling omitted; both blocks must be %s_ALIGN-aligned and\n"
            " * must not overlap):\n"
            " *\n"
            " *   void *params = aligned_alloc(%s_ALIGN, %s_PARAMS_BYTES);\n"
            " *   void *arena  = aligned_alloc(%s_ALIGN, %s_INFER_ARENA_BYTES);\n"
            " *   %s_init(params, 42);                  (or load a checkpoint via %s_params[])\n"
            " *   %s_inputs in = { ... };               (pointers to the caller's tensors)\n"
            " *   %s_outputs out = { ... };             (NULL fields are not written)\n"
            " *   int rc = %s_infer(params, &in, &out, arena);\n"
            " *\n"
            " * Generated code never allocates and has no global state: concurrent calls\n"
            " * are safe with one arena per thread. Return codes: 0 ok, else a %s_ERR_*\n"
            " * code below. Link with -lopenblas -lm.\n"
            " */\n",
            p, model, nparams, (long long)scalars, P, P, P, P, P, p, p, p, p, p, P);
}

/* --checked: what the checks are, in the top comment's style. */
static void hd_checked_intro(const ir_module *m, const char *p, const char *P, FILE *out) {
    fprintf(out,
            "/* Checked build (frost compile --checked), for development: every arena buffer\n"
            " * has %d guard bytes before and after it, the arena and every block one at its\n"
            " * end (the sizes below include them), and after each step the guards next to\n"
            " * what it wrote are verified and its f32 outputs scanned for NaN and Inf: a\n"
            " * failure returns %s_ERR_GUARD or %s_ERR_NONFINITE, writes one line to stderr,\n"
            " * and %s_last_error(arena) names the buffer and the step. %s_init sets the\n"
            " * params guard, which every call then verifies",
            IR_GUARD_BYTES, P, P, p, p);
    if (!m->infer_only)
        fprintf(out,
                "; %s_opt_init sets the optimizer\n"
                " * state's, which %s_update verifies (it reports on stderr only)",
                p, p);
    fprintf(out, ".\n */\n");
}

/* --checked: P_last_error. */
/* The thread pool's one call. */
static void hd_set_threads(const char *p, FILE *out) {
    fprintf(out,
            "/* Run the kernels on nthreads threads (this one and nthreads - 1 workers\n"
            " * the object starts now and keeps); nthreads <= 0: $FROST_NUM_THREADS, else\n"
            " * the online CPUs. Returns the count in use. Until it is called every\n"
            " * kernel runs on the caller's thread. Not while another call of this object\n"
            " * runs. Results do not depend on the count. */\n"
            "int %s_set_threads(int nthreads);\n\n",
            p);
}

static void hd_last_error(const ir_module *m, const char *p, FILE *out) {
    if (!m->checked)
        return;
    fprintf(out,
            "/* The message of the check that failed in the last call on this arena\n"
            " * (%s_ERR_GUARD, %s_ERR_NONFINITE), naming the buffer, the step, its kernel\n"
            " * and node; NULL when that call had no such failure, or arena is NULL. The\n"
            " * string is static. */\n"
            "const char *%s_last_error(const void *arena);\n\n",
            p, p, p);
}

/* s for a C comment (malloc'd): a pattern holding a star then a slash must not end it. */
static char *hd_comment_text(const char *s) {
    char *t = malloc(2 * strlen(s) + 1), *q = t;
    if (!t)
        abort();
    for (; *s; s++) {
        if (*s == '/' && q > t && q[-1] == '*')
            *q++ = ' ';
        *q++ = *s;
    }
    *q = '\0';
    return t;
}

void cg_emit_header(const ir_module *m, const cg_options *o, FILE *out) {
    const ir_graph *g = m->graph;
    char p[CG_MAX_PREFIX], P[CG_MAX_PREFIX], id[256];
    cg_prefix(m, o, p);
    strcpy(P, p);
    hd_upper(P);

    int nparams = 0, ntrain = 0, ninputs = 0;
    int64_t scalars = 0, train_scalars = 0;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind == VAL_INPUT)
            ninputs++;
        if (val->kind != VAL_PARAM && val->kind != VAL_BUFFER)
            continue;
        nparams++;
        scalars += hd_numel(&val->shape);
        if (val->kind == VAL_PARAM && val->trainable) {
            ntrain++;
            train_scalars += hd_numel(&val->shape);
        }
    }
    const char *model = g->model ? g->model : p;
    char *config = hd_comment_text(view_config_name(m));
    const op_def *bn = op_find("batchnorm2d");
    bool has_bn = false;
    for (int n = 0; n < g->nnodes; n++)
        has_bn |= &op_table[g->nodes[n].op] == bn;
    const char *bn_mode = !has_bn ? ""
                          : m->bn_eval
                              ? " * Batch norm: eval mode (running statistics in training too, not updated).\n"
                              : " * Batch norm: train mode (batch statistics; forward updates the running ones).\n";

    if (m->infer_only)
        hd_infer_intro(p, P, model, nparams, scalars, out);
    else
        fprintf(out,
                "/* %s.h: interface of the object file frost generated for model `%s`.\n"
                " * Generated code; do not edit. See frost's docs/abi.md for the full reference.\n"
                " *\n"
                " * Configuration: %s; %d of %d parameter tensors trainable (%lld of %lld scalars).\n"
                "%s"
                " *\n"
                " * Usage (error handling omitted; every block must be %s_ALIGN-aligned and\n"
                " * the three blocks must not overlap):\n"
                " *\n"
                " *   void *params = aligned_alloc(%s_ALIGN, %s_PARAMS_BYTES);\n"
                " *   void *grads  = aligned_alloc(%s_ALIGN, %s_GRADS_BYTES);\n"
                " *   void *arena  = aligned_alloc(%s_ALIGN, %s_TRAIN_ARENA_BYTES);\n"
                " *   %s_init(params, 42);                  (or load a checkpoint via %s_params[])\n"
                " *   %s_inputs in = { ... };               (pointers to the caller's tensors)\n"
                " *   %s_outputs out = { ... };             (NULL fields are not written)\n"
                " *   int rc = %s_forward(params, &in, &out, arena);\n"
                " *   if (rc == 0) rc = %s_backward(params, grads, arena);\n"
                " *   ... update params from grads (SGD, Adam: the caller's choice) ...\n"
                " *\n"
                " * %s_backward continues the %s_forward that ran last on the same arena: call\n"
                " * them in pairs, with the arena untouched in between. The loss (output 0) is\n"
                " * seeded with gradient 1. Each backward overwrites the whole grads block: it\n"
                " * does not accumulate across calls. %s_infer needs only %s_INFER_ARENA_BYTES\n"
                " * and keeps nothing. Generated code never allocates and has no global state:\n"
                " * concurrent calls are safe with one arena (and grads block) per thread.\n"
                " * Return codes: 0 ok, else a %s_ERR_* code below; after an error the call\n"
                " * has stopped and its outputs and gradients are not valid.\n"
                " * Link with -lopenblas -lm.\n"
                " */\n",
                p, model, config, ntrain, nparams, (long long)train_scalars, (long long)scalars, bn_mode, P, P, P, P, P,
                P, P, p, p, p, p, p, p, p, p, p, P, P);
    free(config);

    if (m->checked)
        hd_checked_intro(m, p, P, out);
    fprintf(out, "#ifndef %s_FROST_H\n#define %s_FROST_H\n\n#include <stdint.h>\n\n", P, P);
    fprintf(out, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    if (m->infer_only)
        fprintf(out, "#define %s_INFER_ONLY 1 /* compiled with --infer-only: %s_init and %s_infer only */\n", P, p, p);
    if (m->checked)
        fprintf(out,
                "#define %s_CHECKED 1     /* compiled with --checked: guards and NaN/Inf checks */\n"
                "#define %s_GUARD_BYTES 64 /* one guard; the block sizes below include theirs */\n",
                P, P);
    if (m->infer_only || m->checked)
        fputc('\n', out);

    fprintf(out, "/* Block sizes in bytes, each a multiple of %s_ALIGN. */\n", P);
    fprintf(out, "#define %s_PARAMS_BYTES      %lldLL /* all parameters and buffers */\n", P,
            (long long)hd_block(m, m->params_bytes));
    if (!m->infer_only) {
        fprintf(out, "#define %s_GRADS_BYTES       %lldLL /* trainable parameters, then input gradients */\n", P,
                (long long)hd_block(m, m->grads_bytes));
        fprintf(out, "#define %s_TRAIN_ARENA_BYTES %lldLL /* forward + backward */\n", P,
                (long long)ir_align_up(m->train.arena_bytes));
    }
    fprintf(out, "#define %s_INFER_ARENA_BYTES %lldLL /* inference only */\n", P,
            (long long)ir_align_up(m->infer.arena_bytes));
    if (!m->infer_only)
        fprintf(out,
                "#define %s_RESIDUAL_BYTES    %lldLL /* part of the train arena kept from forward to backward */\n", P,
                (long long)m->train.residual_bytes);
    fprintf(out, "#define %s_ALIGN             %d   /* required alignment of params, grads, arena */\n", P, IR_ALIGN);
    fprintf(out, "#define %s_NUM_PARAMS        %d   /* entries of %s_params[] */\n", P, nparams, p);
    if (!m->infer_only)
        fprintf(out, "#define %s_NUM_TRAINABLE     %d\n", P, ntrain);
    fprintf(out, "#define %s_NUM_ADAPTERS      %d   /* entries of %s_adapters[]: LoRA layers */\n", P,
            hd_count_adapters(g), p);
    fprintf(out, "#define %s_NUM_INPUTS        %d\n", P, ninputs);
    fprintf(out, "#define %s_NUM_OUTPUTS       %d\n\n", P, g->noutputs);
    if (m->infer_only) {
        fprintf(out,
                "/* Return codes of %s_infer. */\n"
                "#define %s_OK         0\n"
                "#define %s_ERR_LABEL  %d /* a class label outside [0, classes) */\n"
                "#define %s_ERR_NULL   %d /* the arena, the inputs struct or an input pointer is NULL, or\n"
                "                             params while %s_PARAMS_BYTES is not 0 (out may be NULL) */\n"
                "#define %s_ERR_ALIGN  %d /* a block not %s_ALIGN-aligned, or an input not aligned\n"
                "                             to its element type */\n"
                "#define %s_ERR_INDEX  %d /* an embedding id outside [0, num) */\n\n",
                p, P, P, RT_ERR_LABEL, P, RT_ERR_NULL, P, P, RT_ERR_ALIGN, P, P, RT_ERR_INDEX);
    } else {
        fprintf(out, "/* Return codes of %s_forward, %s_backward and %s_infer. */\n", p, p, p);
        fprintf(out,
                "#define %s_OK         0\n"
                "#define %s_ERR_LABEL  %d /* a class label outside [0, classes) */\n"
                "#define %s_ERR_NULL   %d /* a block, the inputs struct or an input pointer is NULL\n"
                "                             (params may be NULL when %s_PARAMS_BYTES is 0, grads\n"
                "                             when %s_GRADS_BYTES is 0, out always: nothing written) */\n"
                "#define %s_ERR_ALIGN  %d /* a block not %s_ALIGN-aligned, or an input not aligned\n"
                "                             to its element type */\n"
                "#define %s_ERR_STATE  %d /* %s_backward without a matching %s_forward on this arena:\n"
                "                             none yet, it failed, a backward consumed it already,\n"
                "                             or an infer or another model's forward ran since */\n"
                "#define %s_ERR_INDEX  %d /* an embedding id outside [0, num) */\n\n",
                P, P, RT_ERR_LABEL, P, RT_ERR_NULL, P, P, P, RT_ERR_ALIGN, P, P, RT_ERR_STATE, p, p, P, RT_ERR_INDEX);
    }
    if (m->checked)
        fprintf(out,
                "/* --checked only (%s_last_error names the buffer or the step): */\n"
                "#define %s_ERR_GUARD     %d /* a guard byte around an arena buffer or at the end of a\n"
                "                                block changed: a kernel wrote out of bounds, a block is\n"
                "                                smaller than its size here, or the memory past it changed */\n"
                "#define %s_ERR_NONFINITE %d /* a step wrote a NaN or an infinity into an f32 output */\n\n",
                p, P, RT_ERR_GUARD, P, RT_ERR_NONFINITE);

    /* Inputs, in value-id order: the order codegen numbers the fields in. */
    fprintf(out, "/* Inputs: row-major tensors owned by the caller, read during the call. */\n");
    fprintf(out, "typedef struct {\n");
    if (!ninputs)
        fprintf(out, "    const void *unused_; /* the model has no inputs */\n");
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_INPUT)
            continue;
        hd_ident(id, sizeof id, val->name);
        fprintf(out, "    const %s *%s; /* ", hd_ctype(val->dtype), id);
        hd_shape(out, val->dtype, &val->shape);
        fprintf(out, "%s */\n", val->wants_grad ? ", gradient in the grads block" : "");
    }
    fprintf(out, "} %s_inputs;\n\n", p);

    fprintf(out, "/* Outputs: caller-owned buffers the results are copied to; a NULL field is skipped. */\n");
    fprintf(out, "typedef struct {\n");
    if (!g->noutputs)
        fprintf(out, "    void *unused_; /* the model has no outputs */\n");
    for (int k = 0; k < g->noutputs; k++) {
        const ir_value *val = &g->vals[g->outputs[k]];
        hd_ident(id, sizeof id, val->name);
        fprintf(out, "    %s *%s; /* ", hd_ctype(val->dtype), id);
        hd_shape(out, val->dtype, &val->shape);
        fprintf(out, "%s */\n", k == 0 ? ", the loss" : "");
    }
    fprintf(out, "} %s_outputs;\n\n", p);

    /* Input gradients. */
    bool any = false;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_INPUT || !val->wants_grad)
            continue;
        if (!any)
            fprintf(out,
                    "/* Gradients of inputs marked `grad`: d loss / d input, written by %s_backward\n"
                    " * into the grads block at these byte offsets, same shape as the input. */\n",
                    p);
        any = true;
        hd_ident(id, sizeof id, val->name);
        hd_upper(id);
        int64_t off = m->grad_offset ? m->grad_offset[v] : -1;
        fprintf(out, "#define %s_GRAD_%s_OFFSET %lldLL /* ", P, id, (long long)off);
        hd_shape(out, val->dtype, &val->shape);
        fprintf(out, " */\n");
    }
    if (any)
        fputc('\n', out);
    if (!m->infer_only)
        hd_kept_ranges(m, p, P, out);

    /* Parameter table. The entry type is shared by every frost model (guarded),
     * so one model's table can be passed to code written for any model, e.g.
     * the checkpoint functions of support/frost_support.h. */
    fprintf(out,
            "/* Parameters and buffers (e.g. batch-norm running statistics) in the params\n"
            " * block, named as in PyTorch's state_dict. offset: bytes into params;\n"
            " * grad_offset: bytes into grads, -1 when the tensor gets no gradient;\n"
            " * dtype: a FROST_DTYPE_* code; persistent: 0 for state a checkpoint leaves\n"
            " * out. The type is the same for every frost model. */\n"
            "#ifndef FROST_PARAM_INFO_DEFINED\n"
            "#define FROST_PARAM_INFO_DEFINED\n"
            "#define FROST_DTYPE_F32 %d\n"
            "#define FROST_DTYPE_I32 %d\n"
            "#define FROST_DTYPE_U8  %d\n"
            "#define FROST_DTYPE_I64 %d\n"
            "#define FROST_MAX_RANK  %d\n"
            "typedef struct frost_param_info {\n"
            "    const char *name;\n"
            "    int64_t offset;\n"
            "    int64_t grad_offset;\n"
            "    int32_t rank;\n"
            "    int64_t shape[%d];\n"
            "    int32_t dtype;\n"
            "    int32_t trainable;\n"
            "    int32_t is_buffer;\n"
            "    int32_t persistent;\n"
            "} frost_param_info;\n"
            "#endif\n"
            "typedef frost_param_info %s_param_info;\n\n",
            (int)DT_F32, (int)DT_I32, (int)DT_U8, (int)DT_I64, IR_MAX_RANK, IR_MAX_RANK, p);
    fprintf(out, "#if defined(__GNUC__)\n__attribute__((unused))\n#endif\n");
    if (nparams)
        fprintf(out, "static const %s_param_info %s_params[%s_NUM_PARAMS] = {\n", p, p, P);
    else
        fprintf(out, "static const %s_param_info %s_params[1] = {\n", p, p);
    if (!nparams)
        fprintf(out, "    { \"\", -1, -1, 0, {0}, 0, 0, 0, 0 } /* placeholder: the model has no parameters */\n");
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_PARAM && val->kind != VAL_BUFFER)
            continue;
        fprintf(out, "    { ");
        hd_cstring(out, val->name);
        bool tr = val->kind == VAL_PARAM && val->trainable;
        int64_t goff = tr && m->grad_offset ? m->grad_offset[v] : -1;
        fprintf(out, ", %lldLL, %lldLL, %d, {", (long long)(m->param_offset ? m->param_offset[v] : -1), (long long)goff,
                val->shape.rank);
        for (int i = 0; i < val->shape.rank; i++)
            fprintf(out, "%s%lldLL", i ? ", " : "", (long long)val->shape.dim[i]);
        if (!val->shape.rank)
            fprintf(out, "0");
        fprintf(out, "}, %d, %d, %d, %d },\n", (int)val->dtype, tr, val->kind == VAL_BUFFER, !val->nonpersistent);
    }
    fprintf(out, "};\n\n");

    hd_adapters(g, p, out);

    /* Input table: what a generic driver (tests/e2e/gradcheck.c) needs to feed
     * the inputs struct without knowing the model. */
    fprintf(out,
            "/* Inputs in %s_inputs order. dtype: 0 f32, 1 i32. grad_offset: bytes into\n"
            " * grads of d loss / d input, -1 unless the input is marked `grad`. */\n"
            "typedef struct {\n"
            "    const char *name;\n"
            "    int32_t dtype;\n"
            "    int32_t rank;\n"
            "    int64_t shape[%d];\n"
            "    int64_t grad_offset;\n"
            "} %s_input_info;\n\n",
            p, IR_MAX_RANK, p);
    fprintf(out, "#if defined(__GNUC__)\n__attribute__((unused))\n#endif\n");
    if (ninputs)
        fprintf(out, "static const %s_input_info %s_input_table[%s_NUM_INPUTS] = {\n", p, p, P);
    else
        fprintf(out,
                "static const %s_input_info %s_input_table[1] = {\n"
                "    { \"\", 0, 0, {0}, -1 } /* placeholder: the model has no inputs */\n",
                p, p);
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_INPUT)
            continue;
        fprintf(out, "    { ");
        hd_cstring(out, val->name);
        int64_t goff = val->wants_grad && m->grad_offset ? m->grad_offset[v] : -1;
        fprintf(out, ", %d, %d, {", (int)val->dtype, val->shape.rank);
        for (int i = 0; i < val->shape.rank; i++)
            fprintf(out, "%s%lldLL", i ? ", " : "", (long long)val->shape.dim[i]);
        if (!val->shape.rank)
            fprintf(out, "0");
        fprintf(out, "}, %lldLL },\n", (long long)goff);
    }
    fprintf(out, "};\n\n");

    if (m->infer_only) {
        fprintf(out,
                "/* Fill params with the default initialisation (PyTorch's for each layer),\n"
                " * deterministically: the same seed gives the same values on every machine. */\n"
                "void %s_init(void *params, uint64_t seed);\n\n"
                "/* Inference: arena of %s_INFER_ARENA_BYTES, nothing kept. */\n"
                "int %s_infer(const void *params, const %s_inputs *in, %s_outputs *out, void *arena);\n\n",
                p, P, p, p, p);
        hd_set_threads(p, out);
        hd_last_error(m, p, out);
        fprintf(out, "#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s_FROST_H */\n", P);
        return;
    }
    fprintf(out,
            "/* Fill params with the default initialisation (PyTorch's for each layer),\n"
            " * deterministically: the same seed gives the same values on every machine. */\n"
            "void %s_init(void *params, uint64_t seed);\n\n"
            "/* Training forward pass: reads in, writes out and the arena (which then\n"
            " * holds what %s_backward needs). May update buffers in params. */\n"
            "int %s_forward(void *params, const %s_inputs *in, %s_outputs *out, void *arena);\n\n"
            "/* Backward pass of the last %s_forward on this arena: overwrites grads. */\n"
            "int %s_backward(const void *params, void *grads, void *arena);\n\n"
            "/* Inference: forward only, arena of %s_INFER_ARENA_BYTES. */\n"
            "int %s_infer(const void *params, const %s_inputs *in, %s_outputs *out, void *arena);\n\n",
            p, p, p, p, p, p, p, P, p, p, p);
    hd_set_threads(p, out);
    hd_last_error(m, p, out);
    hd_optimizer(m, p, P, out);
    fprintf(out, "#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s_FROST_H */\n", P);
}
