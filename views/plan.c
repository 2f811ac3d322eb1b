/* plan.c: `frost plan`: every buffer of the train and infer programs with its
 * role, size, live interval and arena offset, then the totals. */
#include "ir.h"

#include <inttypes.h>
#include <stdlib.h>
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

const ir_buf *view_storage(const ir_program *prog, const ir_buf *b) {
    int r = ir_storage_root(prog, (int)(b - prog->bufs));
    IR_ASSERT(r >= 0);
    return &prog->bufs[r];
}

bool view_is_residual(const ir_program *prog, const ir_buf *b) {
    return b->space == SPACE_ARENA && b->first >= 0 && b->first < prog->nfwd && b->last >= prog->nfwd;
}

/* Did b take over the storage of its inplace_of buffer (plan.c merged them)?
 * Then both are arena storages at one offset, and the donor's last step is b's
 * first: without the takeover they would be live together there and could not
 * share bytes. */
const ir_buf *view_took_over(const ir_program *prog, const ir_buf *b) {
    if (b->inplace_of < 0 || b->space != SPACE_ARENA || b->first < 0 || b->bytes == 0)
        return NULL;
    const ir_buf *d = &prog->bufs[b->inplace_of];
    const ir_buf *rd = view_storage(prog, d), *rb = view_storage(prog, b);
    if (rd->space != SPACE_ARENA || rd == rb || rd->offset != rb->offset || d->last != b->first)
        return NULL;
    return d;
}

static int count_takeovers(const ir_program *prog) {
    int n = 0;
    for (int b = 0; b < prog->nbufs; b++)
        n += view_took_over(prog, &prog->bufs[b]) != NULL;
    return n;
}

int64_t *view_step_load(const ir_program *prog) {
    int64_t *load = calloc((size_t)prog->nsteps + 1, sizeof *load);
    int64_t *size = calloc((size_t)prog->nbufs + 1, sizeof *size); /* per storage: its object's size */
    IR_ASSERT(load && size);
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        int r = (int)(view_storage(prog, buf) - prog->bufs);
        if (buf->space == SPACE_ARENA && ir_align_up(buf->planned_bytes) > size[r])
            size[r] = ir_align_up(buf->planned_bytes);
    }
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->space == SPACE_ARENA && buf->alias_of < 0 && buf->first >= 0) {
            load[buf->first] += size[b];
            load[buf->last + 1] -= size[b];
        }
        if (view_took_over(prog, buf)) {
            int r = (int)(view_storage(prog, buf) - prog->bufs);
            load[buf->first] -= size[r];
            load[buf->first + 1] += size[r];
        }
    }
    int64_t peak = 0;
    for (int t = 0; t < prog->nsteps; t++) {
        if (t > 0)
            load[t] += load[t - 1];
        if (load[t] > peak)
            peak = load[t];
    }
    IR_ASSERT(peak == prog->lower_bound); /* counted as plan.c counts */
    free(size);
    return load;
}

const char *view_kernel(const ir_step *s) { return strncmp(s->kernel, "rt_", 3) == 0 ? s->kernel + 3 : s->kernel; }

void view_json_string(FILE *out, const char *s) {
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

void view_xml_string(FILE *out, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        case '"': fputs("&quot;", out); break;
        default:
            if ((unsigned char)*s >= 0x20)
                fputc(*s, out); /* XML 1.0 has no control characters but tab and newlines */
        }
    }
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

/* Text tables: the cells of every row first, then columns as wide as their
 * widest cell (names and offsets vary a lot between models); the last column
 * unpadded and a row's trailing blank cells left out. */
static void text_table(FILE *out, int ncols, const char *const *heads, const bool *right, const char *const *cells,
                       int rows) {
    int width[16];
    IR_ASSERT(ncols <= 16);
    for (int c = 0; c < ncols; c++) {
        width[c] = (int)strlen(heads[c]);
        for (int r = 0; r < rows; r++)
            if ((int)strlen(cells[(size_t)r * ncols + c]) > width[c])
                width[c] = (int)strlen(cells[(size_t)r * ncols + c]);
    }
    for (int r = -1; r < rows; r++) {
        const char *const *row = r < 0 ? heads : cells + (size_t)r * ncols;
        int n = ncols;
        while (n > 1 && !*row[n - 1])
            n--;
        for (int c = 0; c < n; c++) {
            if (c + 1 == n && !right[c])
                fprintf(out, "  %s", row[c]);
            else
                fprintf(out, right[c] ? "  %*s" : "  %-*s", width[c], row[c]);
        }
        fputc('\n', out);
    }
}

enum { PC_NAME, PC_KIND, PC_DTYPE, PC_SHAPE, PC_BYTES, PC_LIVE, PC_OFFSET, PC_NOTE, PC_COUNT };

static void plan_text_program(const ir_graph *g, const char *title, const ir_program *prog, FILE *out) {
    static const char *heads[PC_COUNT] = {"buffer", "kind", "dtype", "shape", "bytes", "live", "offset", "note"};
    static const bool right[PC_COUNT] = {[PC_BYTES] = true, [PC_OFFSET] = true};
    pool *p = g->pool;
    const char **cells = pool_alloc(p, sizeof *cells * PC_COUNT * (size_t)(prog->nbufs + 1));
    int rows = 0;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->space == SPACE_ARENA && buf->first < 0)
            continue; /* never touched: takes no memory */
        const char **row = cells + (size_t)rows++ * PC_COUNT;
        const ir_buf *donor = view_took_over(prog, buf);
        row[PC_NAME] = buf->name;
        row[PC_KIND] = kind_name(g, buf);
        row[PC_DTYPE] = dtype_name(buf->dtype);
        row[PC_SHAPE] = shape_str(p, &buf->shape);
        row[PC_BYTES] = pool_printf(p, "%" PRId64, buf->bytes);
        row[PC_LIVE] = buf->first >= 0 && buf->space == SPACE_ARENA
                           ? pool_printf(p, "%d..%d%s", buf->first, buf->last, view_is_residual(prog, buf) ? " *" : "")
                           : "-";
        if (buf->space == SPACE_ARENA)
            row[PC_OFFSET] = pool_printf(p, "%" PRId64, view_storage(prog, buf)->offset);
        else if (buf->space == SPACE_INPUT || buf->space == SPACE_OUTPUT)
            row[PC_OFFSET] = pool_printf(p, "%s[%d]", space_name(buf->space), buf->index);
        else
            row[PC_OFFSET] = pool_printf(p, "%s+%" PRId64, space_name(buf->space), buf->offset);
        if (buf->alias_of >= 0)
            row[PC_NOTE] =
                pool_printf(p, "%s %s", buf->kind == BUF_GRAD ? "shares" : "view of", view_storage(prog, buf)->name);
        else if (donor)
            row[PC_NOTE] = pool_printf(p, "in place of %s", donor->name);
        else
            row[PC_NOTE] = "";
    }
    fprintf(out, "%s: %d forward steps, %d backward steps\n", title, prog->nfwd, prog->nsteps - prog->nfwd);
    text_table(out, PC_COUNT, heads, right, cells, rows);
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

/* The buffers step s reads and writes, for --steps: writes that add to what
 * an earlier step wrote to the same storage (a gradient's further
 * contributions) are "adds". `written` (per storage, cleared by the caller
 * before step 0) follows the writes. */
typedef struct {
    int reads[IR_MAX_OPND], writes[IR_MAX_OPND];
    bool adds[IR_MAX_OPND];
    int nreads, nwrites;
} step_io;

static void step_io_of(const ir_program *prog, int s, bool *written, step_io *io) {
    const ir_step *st = &prog->steps[s];
    io->nreads = io->nwrites = 0;
    for (int k = 0; k < st->nopnd; k++) {
        const ir_opnd *o = &st->opnd[k];
        if (o->kind != OPND_BUF)
            continue;
        int *list = o->writes ? io->writes : io->reads, *n = o->writes ? &io->nwrites : &io->nreads;
        bool dup = false;
        for (int i = 0; i < *n; i++)
            dup |= list[i] == o->buf;
        if (dup)
            continue;
        if (o->writes)
            io->adds[*n] = written[view_storage(prog, &prog->bufs[o->buf]) - prog->bufs];
        list[(*n)++] = o->buf;
    }
    for (int i = 0; i < io->nwrites; i++)
        written[view_storage(prog, &prog->bufs[io->writes[i]]) - prog->bufs] = true;
}

static const char *node_name(const ir_graph *g, const ir_step *st) {
    return st->node >= 0 ? g->nodes[st->node].name : "";
}

enum { SC_STEP, SC_KERNEL, SC_NODE, SC_LIVE, SC_READS, SC_WRITES, SC_COUNT };

/* --steps: what each step index of the buffer table's `live a..b` is. */
static void plan_text_steps(const ir_graph *g, const char *title, const ir_program *prog, FILE *out) {
    static const char *heads[SC_COUNT] = {"step", "kernel", "node", "live bytes", "reads", "writes"};
    static const bool right[SC_COUNT] = {[SC_STEP] = true, [SC_LIVE] = true};
    pool *p = g->pool;
    bool backward = prog->nsteps > prog->nfwd;
    const char **cells = pool_alloc(p, sizeof *cells * SC_COUNT * (size_t)(prog->nsteps + 1));
    bool *written = calloc((size_t)prog->nbufs + 1, sizeof *written);
    int64_t *load = view_step_load(prog);
    IR_ASSERT(written);
    int rows = 0, peak = -1;
    for (int s = 0; s < prog->nsteps; s++) {
        const char **row;
        if (s == prog->nfwd) { /* the boundary forward leaves its residuals across */
            row = cells + (size_t)rows++ * SC_COUNT;
            for (int c = 0; c < SC_COUNT; c++)
                row[c] = "";
            row[SC_KERNEL] = "-- backward --";
        }
        step_io io;
        step_io_of(prog, s, written, &io);
        row = cells + (size_t)rows++ * SC_COUNT;
        row[SC_STEP] = pool_printf(p, "%d", s);
        row[SC_KERNEL] = view_kernel(&prog->steps[s]);
        row[SC_NODE] = node_name(g, &prog->steps[s]);
        row[SC_LIVE] = pool_printf(p, "%" PRId64, load[s]);
        const char *reads = "", *writes = "";
        for (int i = 0; i < io.nreads; i++)
            reads = pool_printf(p, "%s%s%s", reads, i ? ", " : "", prog->bufs[io.reads[i]].name);
        for (int i = 0; i < io.nwrites; i++)
            writes = pool_printf(p, "%s%s%s%s", writes, i ? ", " : "", io.adds[i] ? "+= " : "",
                                 prog->bufs[io.writes[i]].name);
        row[SC_READS] = reads;
        row[SC_WRITES] = writes;
        if (peak < 0 || load[s] > load[peak])
            peak = s;
    }
    fprintf(out, "%s steps: ", title);
    if (backward)
        fprintf(out, "forward 0..%d, backward %d..%d\n", prog->nfwd - 1, prog->nfwd, prog->nsteps - 1);
    else
        fprintf(out, "0..%d\n", prog->nsteps - 1);
    text_table(out, SC_COUNT, heads, right, cells, rows);
    char b1[32];
    if (peak >= 0)
        fprintf(out, "  peak %s at step %d (the lower bound)\n", view_bytes(b1, load[peak]), peak);
    fputc('\n', out);
    free(load);
    free(written);
}

static void plan_json_program(const ir_graph *g, const ir_program *prog, bool steps, FILE *out) {
    fprintf(out,
            "{\"forward_steps\": %d, \"backward_steps\": %d, \"arena_bytes\": %" PRId64 ", \"lower_bound\": %" PRId64
            ", \"ratio\": %.6f, \"residual_bytes\": %" PRId64 ", \"inplace_takeovers\": %d, \"buffers\": [",
            prog->nfwd, prog->nsteps - prog->nfwd, prog->arena_bytes, prog->lower_bound,
            ratio(prog->arena_bytes, prog->lower_bound), prog->residual_bytes, count_takeovers(prog));
    bool first = true;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->space == SPACE_ARENA && buf->first < 0)
            continue;
        fprintf(out, "%s\n    {\"name\": ", first ? "" : ",");
        first = false;
        view_json_string(out, buf->name);
        fprintf(out, ", \"kind\": \"%s\", \"space\": \"%s\", \"dtype\": \"%s\", \"shape\": ", kind_name(g, buf),
                space_name(buf->space), dtype_name(buf->dtype));
        json_shape(out, &buf->shape);
        fprintf(out, ", \"bytes\": %" PRId64, buf->bytes);
        if (buf->space == SPACE_ARENA)
            fprintf(out, ", \"first\": %d, \"last\": %d, \"residual\": %s", buf->first, buf->last,
                    view_is_residual(prog, buf) ? "true" : "false");
        if (buf->space == SPACE_INPUT || buf->space == SPACE_OUTPUT)
            fprintf(out, ", \"index\": %d", buf->index);
        else
            fprintf(out, ", \"offset\": %" PRId64, buf->alias_of >= 0 ? view_storage(prog, buf)->offset : buf->offset);
        if (buf->alias_of >= 0) {
            fprintf(out, ", \"alias_of\": ");
            view_json_string(out, view_storage(prog, buf)->name);
        }
        const ir_buf *donor = view_took_over(prog, buf);
        if (donor) {
            fprintf(out, ", \"inplace_of\": ");
            view_json_string(out, donor->name);
        }
        fputc('}', out);
    }
    fprintf(out, "\n  ]");
    if (steps) {
        bool *written = calloc((size_t)prog->nbufs + 1, sizeof *written);
        int64_t *load = view_step_load(prog);
        IR_ASSERT(written);
        fprintf(out, ", \"steps\": [");
        for (int s = 0; s < prog->nsteps; s++) {
            const ir_step *st = &prog->steps[s];
            step_io io;
            step_io_of(prog, s, written, &io);
            fprintf(out, "%s\n    {\"step\": %d, \"kernel\": ", s ? "," : "", s);
            view_json_string(out, view_kernel(st));
            fprintf(out, ", \"node\": ");
            if (st->node >= 0)
                view_json_string(out, g->nodes[st->node].name);
            else
                fputs("null", out);
            fprintf(out, ", \"live_bytes\": %" PRId64 ", \"reads\": [", load[s]);
            for (int i = 0; i < io.nreads; i++) {
                fputs(i ? ", " : "", out);
                view_json_string(out, prog->bufs[io.reads[i]].name);
            }
            fprintf(out, "], \"writes\": [");
            for (int i = 0; i < io.nwrites; i++) {
                fputs(i ? ", " : "", out);
                view_json_string(out, prog->bufs[io.writes[i]].name);
            }
            fprintf(out, "], \"adds_to\": [");
            for (int i = 0, n = 0; i < io.nwrites; i++)
                if (io.adds[i]) {
                    fputs(n++ ? ", " : "", out);
                    view_json_string(out, prog->bufs[io.writes[i]].name);
                }
            fputs("]}", out);
        }
        fprintf(out, "\n  ]");
        free(load);
        free(written);
    }
    fputc('}', out);
}

static int64_t count_elems(const ir_graph *g, bool trainable_only) {
    int64_t n = 0;
    for (int v = 0; v < g->nvals; v++)
        if (g->vals[v].kind == VAL_PARAM && (!trainable_only || g->vals[v].trainable))
            n += shape_numel(&g->vals[v].shape);
    return n;
}

const char *view_config_name(const ir_module *m) {
    if (m->config_desc)
        return m->config_desc;
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

void view_plan(const ir_module *m, view_format fmt, const view_options *o, FILE *out) {
    static const view_options none = {0};
    if (!o)
        o = &none;
    if (fmt == FMT_SVG) {
        view_plan_svg(m, out);
        return;
    }
    const ir_graph *g = m->graph;
    const char *config = view_config_name(m);
    /* What training holds: the three blocks the caller allocates and the train arena. */
    int64_t total = m->params_bytes + m->grads_bytes + m->opt_state_bytes + m->train.arena_bytes;
    if (fmt == FMT_JSON) {
        fprintf(out, "{\"model\": ");
        view_json_string(out, g->model);
        fprintf(out, ", \"config\": ");
        view_json_string(out, config);
        fprintf(out, ", \"batchnorm_eval\": %s", m->bn_eval ? "true" : "false");
        fprintf(out,
                ",\n  \"trainable_params\": %" PRId64 ", \"total_params\": %" PRId64 ", \"params_bytes\": %" PRId64
                ", \"grads_bytes\": %" PRId64 ",\n  \"optimizer\": \"%s\", \"opt_state_bytes\": %" PRId64
                ", \"training_total_bytes\": %" PRId64 ",\n  \"train\": ",
                count_elems(g, true), count_elems(g, false), m->params_bytes, m->grads_bytes, opt_name(m->opt.kind),
                m->opt_state_bytes, total);
        plan_json_program(g, &m->train, o->steps, out);
        fprintf(out, ",\n  \"infer\": ");
        plan_json_program(g, &m->infer, o->steps, out);
        fprintf(out, "\n}\n");
        return;
    }
    fprintf(out, "model %s, config %s: %" PRId64 " of %" PRId64 " parameters trainable\n\n", g->model, config,
            count_elems(g, true), count_elems(g, false));
    plan_text_program(g, "train (forward + backward)", &m->train, out);
    if (o->steps)
        plan_text_steps(g, "train", &m->train, out);
    plan_text_program(g, "infer", &m->infer, out);
    if (o->steps)
        plan_text_steps(g, "infer", &m->infer, out);
    fprintf(out, "live: first..last step using the buffer (* = residual, kept from forward for backward);\n"
                 "offset: bytes into the arena, params, grads, or the inputs/outputs struct field\n");
    if (o->steps)
        fprintf(out, "steps: live bytes: the arena in use during the step as planned (its peak is the lower\n"
                     "bound); += : the step adds to what an earlier step wrote\n");
    fputc('\n', out);
    /* Totals: exact bytes, the same in binary units, and what each figure is. */
    const struct {
        const char *label;
        int64_t bytes;
        const char *what;
    } rows[] = {
        {"params", m->params_bytes, "parameters and buffers"},
        {"grads", m->grads_bytes, "trainable parameter and input gradients"},
        {"optimizer", m->opt_state_bytes,
         pool_printf(g->pool, "%s state: the step count, then %s per trainable parameter", opt_name(m->opt.kind),
                     m->opt.kind == OPT_ADAMW ? "two moments" : "a momentum buffer")},
        {"residuals", m->train.residual_bytes, "part of the train arena kept from forward for backward"},
        {"train arena", m->train.arena_bytes, "forward + backward"},
        {"  lower bound", m->train.lower_bound,
         pool_printf(g->pool, "ratio %.4f", ratio(m->train.arena_bytes, m->train.lower_bound))},
        {"infer arena", m->infer.arena_bytes, "inference only"},
        {"  lower bound", m->infer.lower_bound,
         pool_printf(g->pool, "ratio %.4f", ratio(m->infer.arena_bytes, m->infer.lower_bound))},
        {"training total", total, "params + grads + optimizer + train arena"},
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
        fprintf(out,
                "in place: %d in train, %d in infer (an element-wise output takes over the storage of an\n"
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
    row->opt_state_bytes = m->opt_state_bytes;
    row->optimizer = opt_name(m->opt.kind);
    row->bn_eval = m->bn_eval;
    const op_def *bn = op_find("batchnorm2d");
    for (int n = 0; n < m->graph->nnodes; n++)
        row->has_batchnorm |= &op_table[m->graph->nodes[n].op] == bn;
}
