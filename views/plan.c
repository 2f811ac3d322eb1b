/* plan.c: `frost plan`: every buffer of the train and infer programs with its
 * role, size, live interval and arena offset, then the totals. */
#include "ir.h"

#include <inttypes.h>
#include <string.h>

const char *buf_kind_name(ir_buf_kind k) {
    switch (k) {
    case BUF_INPUT: return "input";
    case BUF_PARAM: return "param";
    case BUF_PARAM_GRAD: return "param-grad";
    case BUF_INPUT_GRAD: return "input-grad";
    case BUF_OUTPUT: return "output";
    case BUF_ACT: return "act";
    case BUF_SAVED: return "saved";
    case BUF_GRAD: return "grad";
    case BUF_SCRATCH: return "scratch";
    case BUF_STATE: return "state";
    }
    return "?";
}

static const char *space_name(ir_space s) {
    switch (s) {
    case SPACE_ARENA: return "arena";
    case SPACE_PARAMS: return "params";
    case SPACE_GRADS: return "grads";
    case SPACE_INPUT: return "input";
    case SPACE_OUTPUT: return "output";
    }
    return "?";
}

const char *view_bytes(char s[32], int64_t bytes) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(s, 32, "%" PRId64 " B", bytes);
    else
        snprintf(s, 32, "%.2f %s", v, units[u]);
    return s;
}

static const ir_buf *root_of(const ir_program *prog, const ir_buf *b) {
    while (b->alias_of >= 0)
        b = &prog->bufs[b->alias_of];
    return b;
}

static bool is_residual(const ir_program *prog, const ir_buf *b) {
    return b->space == SPACE_ARENA && b->first >= 0 && b->first < prog->nfwd && b->last >= prog->nfwd;
}

/* Did b take over the storage of its inplace_of buffer (plan.c merged them)?
 * Then both are arena storages at one offset, and the donor's last step is b's
 * first: without the takeover they would be live together there and could not
 * share bytes. */
static const ir_buf *took_over(const ir_program *prog, const ir_buf *b) {
    if (b->inplace_of < 0 || b->space != SPACE_ARENA || b->first < 0 || b->bytes == 0)
        return NULL;
    const ir_buf *d = &prog->bufs[b->inplace_of];
    const ir_buf *rd = root_of(prog, d), *rb = root_of(prog, b);
    if (rd->space != SPACE_ARENA || rd == rb || rd->offset != rb->offset || d->last != b->first)
        return NULL;
    return d;
}

static int count_takeovers(const ir_program *prog) {
    int n = 0;
    for (int b = 0; b < prog->nbufs; b++)
        n += took_over(prog, &prog->bufs[b]) != NULL;
    return n;
}

static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", *s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static void json_shape(FILE *out, const ir_shape *s) {
    fputc('[', out);
    for (int k = 0; k < s->rank; k++)
        fprintf(out, "%s%" PRId64, k ? ", " : "", s->dim[k]);
    fputc(']', out);
}

static double ratio(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 1.0; }

/* The buffer's role; non-learnable state in the params block (running
 * statistics, counters) is a "buffer", as PyTorch calls it. */
static const char *kind_name(const ir_graph *g, const ir_buf *buf) {
    if (buf->kind == BUF_PARAM && buf->value >= 0 && buf->value < g->nvals && g->vals[buf->value].kind == VAL_BUFFER)
        return "buffer";
    return buf_kind_name(buf->kind);
}

/* Text table: the cells of every row first, then columns as wide as their
 * widest cell (names and offsets vary a lot between models). */
enum { PC_NAME, PC_KIND, PC_DTYPE, PC_SHAPE, PC_BYTES, PC_LIVE, PC_OFFSET, PC_NOTE, PC_COUNT };

static void plan_text_program(const ir_graph *g, const char *title, const ir_program *prog, FILE *out) {
    static const char *heads[PC_COUNT] = {"buffer", "kind", "dtype", "shape", "bytes", "live", "offset", "note"};
    static const bool right[PC_COUNT] = {[PC_BYTES] = true, [PC_OFFSET] = true};
    pool *p = g->pool;
    const char **cells = pool_alloc(p, sizeof *cells * PC_COUNT * (size_t)(prog->nbufs + 1));
    int rows = 0, width[PC_COUNT];
    for (int c = 0; c < PC_COUNT; c++)
        width[c] = (int)strlen(heads[c]);
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->space == SPACE_ARENA && buf->first < 0)
            continue; /* never touched: takes no memory */
        const char **row = cells + (size_t)rows * PC_COUNT;
        const ir_buf *donor = took_over(prog, buf);
        row[PC_NAME] = buf->name;
        row[PC_KIND] = kind_name(g, buf);
        row[PC_DTYPE] = dtype_name(buf->dtype);
        row[PC_SHAPE] = shape_str(p, &buf->shape);
        row[PC_BYTES] = pool_printf(p, "%" PRId64, buf->bytes);
        row[PC_LIVE] = buf->first >= 0 && buf->space == SPACE_ARENA
                           ? pool_printf(p, "%d..%d%s", buf->first, buf->last, is_residual(prog, buf) ? " *" : "")
                           : "-";
        if (buf->space == SPACE_ARENA)
            row[PC_OFFSET] = pool_printf(p, "%" PRId64, root_of(prog, buf)->offset);
        else if (buf->space == SPACE_INPUT || buf->space == SPACE_OUTPUT)
            row[PC_OFFSET] = pool_printf(p, "%s[%d]", space_name(buf->space), buf->index);
        else
            row[PC_OFFSET] = pool_printf(p, "%s+%" PRId64, space_name(buf->space), buf->offset);
        if (buf->alias_of >= 0)
            row[PC_NOTE] = pool_printf(p, "%s %s", buf->kind == BUF_GRAD ? "shares" : "view of",
                                       root_of(prog, buf)->name);
        else if (donor)
            row[PC_NOTE] = pool_printf(p, "in place of %s", donor->name);
        else
            row[PC_NOTE] = "";
        for (int c = 0; c < PC_COUNT; c++)
            if ((int)strlen(row[c]) > width[c])
                width[c] = (int)strlen(row[c]);
        rows++;
    }
    fprintf(out, "%s: %d forward steps, %d backward steps\n", title, prog->nfwd, prog->nsteps - prog->nfwd);
    for (int r = -1; r < rows; r++) {
        const char *const *row = r < 0 ? heads : cells + (size_t)r * PC_COUNT;
        int n = PC_COUNT;
        while (n > 1 && !*row[n - 1])
            n--; /* no trailing blanks */
        for (int c = 0; c < n; c++) {
            if (c + 1 == n && !right[c])
                fprintf(out, "  %s", row[c]); /* last column: no padding */
            else
                fprintf(out, right[c] ? "  %*s" : "  %-*s", width[c], row[c]);
        }
        fputc('\n', out);
    }
    char b1[32], b2[32], b3[32];
    fprintf(out, "  arena %s, lower bound %s, ratio %.4f", view_bytes(b1, prog->arena_bytes),
            view_bytes(b2, prog->lower_bound), ratio(prog->arena_bytes, prog->lower_bound));
    if (prog->nsteps > prog->nfwd)
        fprintf(out, ", residuals %s", view_bytes(b3, prog->residual_bytes));
    int inplace = count_takeovers(prog);
    if (inplace)
        fprintf(out, ", %d in place", inplace);
    fprintf(out, "\n\n");
}

static void plan_json_program(const ir_graph *g, const ir_program *prog, FILE *out) {
    fprintf(out, "{\"forward_steps\": %d, \"backward_steps\": %d, \"arena_bytes\": %" PRId64
                 ", \"lower_bound\": %" PRId64 ", \"ratio\": %.6f, \"residual_bytes\": %" PRId64
                 ", \"inplace_takeovers\": %d, \"buffers\": [",
            prog->nfwd, prog->nsteps - prog->nfwd, prog->arena_bytes, prog->lower_bound,
            ratio(prog->arena_bytes, prog->lower_bound), prog->residual_bytes, count_takeovers(prog));
    bool first = true;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->space == SPACE_ARENA && buf->first < 0)
            continue;
        fprintf(out, "%s\n    {\"name\": ", first ? "" : ",");
        first = false;
        json_string(out, buf->name);
        fprintf(out, ", \"kind\": \"%s\", \"space\": \"%s\", \"dtype\": \"%s\", \"shape\": ", kind_name(g, buf),
                space_name(buf->space), dtype_name(buf->dtype));
        json_shape(out, &buf->shape);
        fprintf(out, ", \"bytes\": %" PRId64, buf->bytes);
        if (buf->space == SPACE_ARENA)
            fprintf(out, ", \"first\": %d, \"last\": %d, \"residual\": %s", buf->first, buf->last,
                    is_residual(prog, buf) ? "true" : "false");
        if (buf->space == SPACE_INPUT || buf->space == SPACE_OUTPUT)
            fprintf(out, ", \"index\": %d", buf->index);
        else
            fprintf(out, ", \"offset\": %" PRId64, buf->alias_of >= 0 ? root_of(prog, buf)->offset : buf->offset);
        if (buf->alias_of >= 0) {
            fprintf(out, ", \"alias_of\": ");
            json_string(out, root_of(prog, buf)->name);
        }
        const ir_buf *donor = took_over(prog, buf);
        if (donor) {
            fprintf(out, ", \"inplace_of\": ");
            json_string(out, donor->name);
        }
        fputc('}', out);
    }
    fprintf(out, "\n  ]}");
}

static int64_t count_elems(const ir_graph *g, bool trainable_only) {
    int64_t n = 0;
    for (int v = 0; v < g->nvals; v++)
        if (g->vals[v].kind == VAL_PARAM && (!trainable_only || g->vals[v].trainable))
            n += shape_numel(&g->vals[v].shape);
    return n;
}

const char *view_config_name(const ir_module *m) {
    if (m->config && m->config->name)
        return m->config->name;
    const ir_graph *g = m->graph;
    int params = 0, trainable = 0, grads = 0;
    for (int v = 0; v < g->nvals; v++) {
        params += g->vals[v].kind == VAL_PARAM;
        trainable += g->vals[v].kind == VAL_PARAM && g->vals[v].trainable;
        grads += g->vals[v].kind == VAL_INPUT && g->vals[v].wants_grad;
    }
    if (grads == 0 && trainable == params)
        return "all";
    if (grads == 0 && trainable == 0)
        return "none";
    return "(command line)";
}

void view_plan(const ir_module *m, view_format fmt, FILE *out) {
    const ir_graph *g = m->graph;
    const char *config = view_config_name(m);
    int64_t total = m->params_bytes + m->grads_bytes + m->train.arena_bytes;
    if (fmt == FMT_JSON) {
        fprintf(out, "{\"model\": ");
        json_string(out, g->model);
        fprintf(out, ", \"config\": ");
        json_string(out, config);
        fprintf(out, ", \"batchnorm_eval\": %s", m->bn_eval ? "true" : "false");
        fprintf(out, ",\n  \"trainable_params\": %" PRId64 ", \"total_params\": %" PRId64
                     ", \"params_bytes\": %" PRId64 ", \"grads_bytes\": %" PRId64
                     ", \"training_total_bytes\": %" PRId64 ",\n  \"train\": ",
                count_elems(g, true), count_elems(g, false), m->params_bytes, m->grads_bytes, total);
        plan_json_program(g, &m->train, out);
        fprintf(out, ",\n  \"infer\": ");
        plan_json_program(g, &m->infer, out);
        fprintf(out, "\n}\n");
        return;
    }
    fprintf(out, "model %s, config %s: %" PRId64 " of %" PRId64 " parameters trainable\n\n", g->model, config,
            count_elems(g, true), count_elems(g, false));
    plan_text_program(g, "train (forward + backward)", &m->train, out);
    plan_text_program(g, "infer", &m->infer, out);
    fprintf(out, "live: first..last step using the buffer (* = residual, kept from forward for backward);\n"
                 "offset: bytes into the arena, params, grads, or the inputs/outputs struct field\n\n");
    /* Totals: exact bytes, the same in binary units, and what each figure is. */
    const struct {
        const char *label;
        int64_t bytes;
        const char *what;
    } rows[] = {
        {"params", m->params_bytes, "parameters and buffers"},
        {"grads", m->grads_bytes, "trainable parameter and input gradients"},
        {"residuals", m->train.residual_bytes, "part of the train arena kept from forward for backward"},
        {"train arena", m->train.arena_bytes, "forward + backward"},
        {"  lower bound", m->train.lower_bound, pool_printf(g->pool, "ratio %.4f", ratio(m->train.arena_bytes,
                                                                                         m->train.lower_bound))},
        {"infer arena", m->infer.arena_bytes, "inference only"},
        {"  lower bound", m->infer.lower_bound, pool_printf(g->pool, "ratio %.4f", ratio(m->infer.arena_bytes,
                                                                                         m->infer.lower_bound))},
        {"training total", total, "params + grads + train arena"},
    };
    int wb = 5;
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        int n = snprintf(NULL, 0, "%" PRId64, rows[k].bytes);
        if (n > wb)
            wb = n;
    }
    fprintf(out, "totals %*s\n", 10 + wb, "bytes");
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        char h[32];
        fprintf(out, "  %-14s %*" PRId64 "  %10s  %s\n", rows[k].label, wb, rows[k].bytes, view_bytes(h, rows[k].bytes),
                rows[k].what);
    }
    int ti = count_takeovers(&m->train), ii = count_takeovers(&m->infer);
    if (ti || ii)
        fprintf(out, "in place: %d in train, %d in infer (an element-wise output takes over the storage of an\n"
                     "input that dies at it; the lower bounds count each such pair once)\n",
                ti, ii);
}

void compare_row_of(const ir_module *m, const char *config, compare_row *row) {
    memset(row, 0, sizeof *row);
    row->config = config;
    row->trainable_params = count_elems(m->graph, true);
    row->total_params = count_elems(m->graph, false);
    row->params_bytes = m->params_bytes;
    row->grads_bytes = m->grads_bytes;
    row->residual_bytes = m->train.residual_bytes;
    row->train_arena = m->train.arena_bytes;
    row->infer_arena = m->infer.arena_bytes;
    row->lower_bound = m->train.lower_bound;
}
