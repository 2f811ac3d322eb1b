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

static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
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

static void plan_text_program(const ir_graph *g, const char *title, const ir_program *prog, FILE *out) {
    char b1[32], b2[32], b3[32];
    fprintf(out, "%s: %d forward steps, %d backward steps\n", title, prog->nfwd, prog->nsteps - prog->nfwd);
    fprintf(out, "  %-24s %-11s %-5s %-18s %12s  %-11s %12s\n", "buffer", "kind", "dtype", "shape", "bytes", "live",
            "offset");
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        char live[32] = "-", offset[40] = "-";
        if (buf->space == SPACE_ARENA && buf->first >= 0) {
            snprintf(live, sizeof live, "%d..%d%s", buf->first, buf->last, is_residual(prog, buf) ? " *" : "");
            if (buf->alias_of >= 0)
                snprintf(offset, sizeof offset, "= %s", root_of(prog, buf)->name);
            else
                snprintf(offset, sizeof offset, "%" PRId64, buf->offset);
        } else if (buf->space != SPACE_ARENA) {
            if (buf->space == SPACE_INPUT || buf->space == SPACE_OUTPUT)
                snprintf(offset, sizeof offset, "%s[%d]", space_name(buf->space), buf->index);
            else
                snprintf(offset, sizeof offset, "%s+%" PRId64, space_name(buf->space), buf->offset);
        }
        if (buf->space == SPACE_ARENA && buf->first < 0)
            continue; /* never touched: takes no memory */
        fprintf(out, "  %-24s %-11s %-5s %-18s %12" PRId64 "  %-11s %12s\n", buf->name, buf_kind_name(buf->kind),
                dtype_name(buf->dtype), shape_str(g->pool, &buf->shape), buf->bytes, live, offset);
    }
    fprintf(out, "  arena %s, lower bound %s, ratio %.4f", view_bytes(b1, prog->arena_bytes),
            view_bytes(b2, prog->lower_bound), ratio(prog->arena_bytes, prog->lower_bound));
    if (prog->nsteps > prog->nfwd)
        fprintf(out, ", residuals %s", view_bytes(b3, prog->residual_bytes));
    fprintf(out, "\n\n");
}

static void plan_json_program(const ir_program *prog, FILE *out) {
    fprintf(out, "{\"forward_steps\": %d, \"backward_steps\": %d, \"arena_bytes\": %" PRId64
                 ", \"lower_bound\": %" PRId64 ", \"ratio\": %.6f, \"residual_bytes\": %" PRId64 ", \"buffers\": [",
            prog->nfwd, prog->nsteps - prog->nfwd, prog->arena_bytes, prog->lower_bound,
            ratio(prog->arena_bytes, prog->lower_bound), prog->residual_bytes);
    bool first = true;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->space == SPACE_ARENA && buf->first < 0)
            continue;
        fprintf(out, "%s\n    {\"name\": ", first ? "" : ",");
        first = false;
        json_string(out, buf->name);
        fprintf(out, ", \"kind\": \"%s\", \"space\": \"%s\", \"dtype\": \"%s\", \"shape\": ", buf_kind_name(buf->kind),
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

void view_plan(const ir_module *m, view_format fmt, FILE *out) {
    const ir_graph *g = m->graph;
    const char *config = m->config ? m->config->name : "(command line)";
    if (fmt == FMT_JSON) {
        fprintf(out, "{\"model\": ");
        json_string(out, g->model);
        fprintf(out, ", \"config\": ");
        json_string(out, config);
        fprintf(out, ",\n  \"trainable_params\": %" PRId64 ", \"total_params\": %" PRId64
                     ", \"params_bytes\": %" PRId64 ", \"grads_bytes\": %" PRId64 ",\n  \"train\": ",
                count_elems(g, true), count_elems(g, false), m->params_bytes, m->grads_bytes);
        plan_json_program(&m->train, out);
        fprintf(out, ",\n  \"infer\": ");
        plan_json_program(&m->infer, out);
        fprintf(out, "\n}\n");
        return;
    }
    char b[6][32];
    fprintf(out, "model %s, config %s: %" PRId64 " of %" PRId64 " parameters trainable\n\n", g->model, config,
            count_elems(g, true), count_elems(g, false));
    plan_text_program(g, "train (forward + backward)", &m->train, out);
    plan_text_program(g, "infer", &m->infer, out);
    fprintf(out, "live: first..last step using the buffer; * = residual, kept from forward for backward\n\n");
    fprintf(out, "totals\n");
    fprintf(out, "  params          %12s\n", view_bytes(b[0], m->params_bytes));
    fprintf(out, "  grads           %12s\n", view_bytes(b[1], m->grads_bytes));
    fprintf(out, "  residuals       %12s\n", view_bytes(b[2], m->train.residual_bytes));
    fprintf(out, "  train arena     %12s   (lower bound %s, ratio %.4f)\n", view_bytes(b[3], m->train.arena_bytes),
            view_bytes(b[4], m->train.lower_bound), ratio(m->train.arena_bytes, m->train.lower_bound));
    fprintf(out, "  infer arena     %12s   (ratio %.4f)\n", view_bytes(b[5], m->infer.arena_bytes),
            ratio(m->infer.arena_bytes, m->infer.lower_bound));
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
