/* header.c: the C header that goes with a generated object file.
 *
 * Self-contained (only <stdint.h>), C++-safe (extern "C", no designated
 * initialisers, no data symbols: the parameter table is a static const array),
 * and self-documenting: a caller should need nothing but this file and
 * docs/abi.md. The contract is in ARCHITECTURE.md "Generated interface".
 */
#include "cg.h"

#include <ctype.h>
#include <string.h>

void cg_prefix(const ir_module *m, const cg_options *o, char buf[CG_MAX_PREFIX])
{
    const char *src = o && o->prefix && *o->prefix ? o->prefix
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
static void hd_ident(char *buf, size_t size, const char *name)
{
    static const char *const kw[] = {
        "auto", "bool", "break", "case", "catch", "char", "class", "const", "continue", "default",
        "delete", "do", "double", "else", "enum", "extern", "float", "for", "goto", "if", "inline",
        "int", "long", "namespace", "new", "operator", "private", "protected", "public", "register",
        "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "template",
        "this", "throw", "try", "typedef", "typename", "union", "unsigned", "using", "virtual",
        "void", "volatile", "while"};
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

static void hd_upper(char *s)
{
    for (; *s; s++)
        *s = (char)toupper((unsigned char)*s);
}

static const char *hd_dtype(ir_dtype dt)
{
    switch (dt) {
    case DT_F32: return "f32";
    case DT_I32: return "i32";
    case DT_U8: return "u8";
    case DT_BIT: return "bit";
    case DT_I64: return "i64";
    }
    return "?";
}

static void hd_shape(FILE *out, ir_dtype dt, const ir_shape *s)
{
    fprintf(out, "%s[", hd_dtype(dt));
    for (int i = 0; i < s->rank; i++)
        fprintf(out, "%s%lld", i ? ", " : "", (long long)s->dim[i]);
    fputc(']', out);
}

static const char *hd_ctype(ir_dtype dt)
{
    switch (dt) {
    case DT_F32: return "float";
    case DT_I32: return "int32_t";
    case DT_I64: return "int64_t";
    default: return "uint8_t";
    }
}

/* A C string literal; names in comments are printed as they are. */
static void hd_cstring(FILE *out, const char *s)
{
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

static int64_t hd_numel(const ir_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->dim[i];
    return n;
}

void cg_emit_header(const ir_module *m, const cg_options *o, FILE *out)
{
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

    fprintf(out,
            "/* %s.h: interface of the object file frost generated for model `%s`.\n"
            " * Generated code; do not edit. See frost's docs/abi.md for the full reference.\n"
            " *\n"
            " * Configuration: %s; %d of %d parameter tensors trainable (%lld of %lld scalars).\n"
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
            " * Return codes: 0 ok, %s_ERR_LABEL a class label outside [0, classes).\n"
            " * Link with -lopenblas -lm.\n"
            " */\n",
            p, model, m->config && m->config->name ? m->config->name : "from the command line",
            ntrain, nparams, (long long)train_scalars, (long long)scalars, P, P, P, P, P, P, P, p, p,
            p, p, p, p, p, p, p, P, P);

    fprintf(out, "#ifndef %s_FROST_H\n#define %s_FROST_H\n\n#include <stdint.h>\n\n", P, P);
    fprintf(out, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");

    fprintf(out, "/* Block sizes in bytes, each a multiple of %s_ALIGN. */\n", P);
    fprintf(out, "#define %s_PARAMS_BYTES      %lldLL /* all parameters and buffers */\n", P,
            (long long)ir_align_up(m->params_bytes));
    fprintf(out, "#define %s_GRADS_BYTES       %lldLL /* trainable parameters, then input gradients */\n",
            P, (long long)ir_align_up(m->grads_bytes));
    fprintf(out, "#define %s_TRAIN_ARENA_BYTES %lldLL /* forward + backward */\n", P,
            (long long)ir_align_up(m->train.arena_bytes));
    fprintf(out, "#define %s_INFER_ARENA_BYTES %lldLL /* inference only */\n", P,
            (long long)ir_align_up(m->infer.arena_bytes));
    fprintf(out, "#define %s_RESIDUAL_BYTES    %lldLL /* part of the train arena kept from forward to backward */\n",
            P, (long long)m->train.residual_bytes);
    fprintf(out, "#define %s_ALIGN             %d   /* required alignment of params, grads, arena */\n",
            P, IR_ALIGN);
    fprintf(out, "#define %s_NUM_PARAMS        %d   /* entries of %s_params[] */\n", P, nparams, p);
    fprintf(out, "#define %s_NUM_TRAINABLE     %d\n", P, ntrain);
    fprintf(out, "#define %s_NUM_INPUTS        %d\n", P, ninputs);
    fprintf(out, "#define %s_NUM_OUTPUTS       %d\n\n", P, g->noutputs);
    fprintf(out, "/* Return codes of %s_forward, %s_backward and %s_infer. */\n", p, p, p);
    fprintf(out, "#define %s_OK         0\n#define %s_ERR_LABEL  1 /* a class label outside [0, classes) */\n\n",
            P, P);

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
            fprintf(out, "/* Gradients of inputs marked `grad`: d loss / d input, written by %s_backward\n"
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

    /* Parameter table. */
    fprintf(out,
            "/* Parameters and buffers (e.g. batch-norm running statistics) in the params\n"
            " * block, named as in PyTorch's state_dict. offset: bytes into params;\n"
            " * grad_offset: bytes into grads, -1 when the tensor gets no gradient. */\n"
            "typedef struct {\n"
            "    const char *name;\n"
            "    int64_t offset;\n"
            "    int64_t grad_offset;\n"
            "    int32_t rank;\n"
            "    int64_t shape[%d];\n"
            "    int32_t trainable;\n"
            "    int32_t is_buffer;\n"
            "} %s_param_info;\n\n",
            IR_MAX_RANK, p);
    fprintf(out, "#if defined(__GNUC__)\n__attribute__((unused))\n#endif\n");
    if (nparams)
        fprintf(out, "static const %s_param_info %s_params[%s_NUM_PARAMS] = {\n", p, p, P);
    else
        fprintf(out, "static const %s_param_info %s_params[1] = {\n", p, p);
    if (!nparams)
        fprintf(out, "    { \"\", -1, -1, 0, {0}, 0, 0 } /* placeholder: the model has no parameters */\n");
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_PARAM && val->kind != VAL_BUFFER)
            continue;
        fprintf(out, "    { ");
        hd_cstring(out, val->name);
        bool tr = val->kind == VAL_PARAM && val->trainable;
        int64_t goff = tr && m->grad_offset ? m->grad_offset[v] : -1;
        fprintf(out, ", %lldLL, %lldLL, %d, {", (long long)(m->param_offset ? m->param_offset[v] : -1),
                (long long)goff, val->shape.rank);
        for (int i = 0; i < val->shape.rank; i++)
            fprintf(out, "%s%lldLL", i ? ", " : "", (long long)val->shape.dim[i]);
        if (!val->shape.rank)
            fprintf(out, "0");
        fprintf(out, "}, %d, %d },\n", tr, val->kind == VAL_BUFFER);
    }
    fprintf(out, "};\n\n");

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
        fprintf(out, "static const %s_input_info %s_input_table[1] = {\n"
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
    fprintf(out, "#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s_FROST_H */\n", P);
}
