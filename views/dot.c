/* dot.c: `frost dot`: the liveness graph of the train program in Graphviz.
 *
 * One node per kernel call, forward and backward in two clusters; an edge per
 * tensor from the step that wrote it to each step that reads it, labelled with
 * its name and size ("+=" when a step adds to what an earlier one wrote, as
 * gradients with several contributions do). Edges from forward into backward are the residuals and
 * are drawn bold red. Residuals that full training would keep but this freeze
 * configuration does not are drawn grey and dashed into a "not kept" node:
 * that is the memory selective differentiation saved. A step whose output
 * took over the storage of a dying input says "in place" under its name.
 */
#include "ir.h"

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#include <stdlib.h>
#include <string.h>

static const ir_buf *storage(const ir_program *prog, int b) {
    const ir_buf *buf = &prog->bufs[b];
    while (buf->alias_of >= 0)
        buf = &prog->bufs[buf->alias_of];
    return buf;
}

static int storage_id(const ir_program *prog, int b) { return (int)(storage(prog, b) - prog->bufs); }

static void dot_escape(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
}

/* Label of a step node: kernel (without rt_), the graph node it belongs to,
 * and "in place" when it writes an output over a dying input. Lines are
 * separated by DOT's \n escape, which must not itself be escaped. */
static void step_label(FILE *out, const ir_graph *g, const ir_program *prog, const ir_step *s) {
    dot_escape(out, strncmp(s->kernel, "rt_", 3) == 0 ? s->kernel + 3 : s->kernel);
    if (s->node >= 0) {
        fputs("\\n", out);
        dot_escape(out, g->nodes[s->node].name);
    }
    for (int k = 0; k < s->nopnd; k++) {
        const ir_opnd *o = &s->opnd[k];
        if (o->kind != OPND_BUF || !o->writes)
            continue;
        const ir_buf *b = &prog->bufs[o->buf];
        if (b->inplace_of < 0 || b->space != SPACE_ARENA || b->first < 0 || b->bytes == 0)
            continue;
        const ir_buf *d = &prog->bufs[b->inplace_of];
        if (storage(prog, b->inplace_of)->space == SPACE_ARENA && storage(prog, b->inplace_of) != storage(prog, o->buf) &&
            storage(prog, b->inplace_of)->offset == storage(prog, o->buf)->offset && d->last == b->first) {
            fputs("\\n(in place of ", out);
            dot_escape(out, d->name);
            fputc(')', out);
            break;
        }
    }
}

static bool residual_in(const ir_program *prog, const char *name) {
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (strcmp(buf->name, name) == 0) {
            const ir_buf *st = storage(prog, b);
            return st->space == SPACE_ARENA && st->first >= 0 && st->first < prog->nfwd && st->last >= prog->nfwd;
        }
    }
    return false;
}

void view_dot(const ir_module *m, const ir_module *full, FILE *out) {
    const ir_graph *g = m->graph;
    const ir_program *prog = &m->train;
    char b1[32], b2[32];
    fputs("digraph \"", out);
    dot_escape(out, g->model);
    /* newrank: one ranking over the whole graph, clusters included, so that
     * every edge (all run from an earlier step to a later one) goes down a
     * rank. Without it dot may lay an edge between the two clusters flat, and
     * Graphviz 2.43 frees a flat edge's label twice (gvFreeLayout after
     * flat_edges), e.g. for tests/e2e/models/conv_grid.frost. */
    fputs("\" {\n  graph [rankdir=TB, newrank=true, ", out);
    /* Big graphs: bound dot's network simplex (iterations per node), which
     * otherwise takes minutes on a few hundred steps with labelled edges. */
    if (prog->nsteps > 150)
        fputs("nslimit=2, nslimit1=2, ", out);
    fputs("fontname=\"Helvetica\", labelloc=t, label=\"", out);
    dot_escape(out, g->model);
    fputs(", config ", out);
    dot_escape(out, view_config_name(m));
    fprintf(out, ": residuals %s, train arena %s", view_bytes(b1, prog->residual_bytes),
            view_bytes(b2, prog->arena_bytes));
    if (full && full != m &&
        (full->train.residual_bytes != prog->residual_bytes || full->train.arena_bytes != prog->arena_bytes)) {
        char b3[32];
        fprintf(out, " (full training: residuals %s, train arena %s)", view_bytes(b2, full->train.residual_bytes),
                view_bytes(b3, full->train.arena_bytes));
    }
    fputs("\\nred bold edges: residuals, kept from forward for backward; grey dashed: residuals of full "
          "training this configuration does not keep\"];\n",
          out);
    fprintf(out, "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f4f4f4\", fontname=\"Helvetica\", "
                 "fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");

    /* inputs and outputs outside the clusters */
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->kind == BUF_INPUT && buf->alias_of < 0) {
            fprintf(out, "  buf%d [shape=ellipse, fillcolor=\"#ddeeff\", label=\"", b);
            dot_escape(out, buf->name);
            fprintf(out, "\\n%s%s\"];\n", dtype_name(buf->dtype), shape_str(g->pool, &buf->shape));
        }
    }
    for (int part = 0; part < 2; part++) {
        int lo = part ? prog->nfwd : 0, hi = part ? prog->nsteps : prog->nfwd;
        fprintf(out, "  subgraph cluster_%s {\n    label=\"%s\"; style=rounded; color=\"%s\";\n",
                part ? "backward" : "forward", part ? "backward" : "forward", part ? "#aa3377" : "#4477aa");
        for (int s = lo; s < hi; s++) {
            fprintf(out, "    step%d [label=\"", s);
            step_label(out, g, prog, &prog->steps[s]);
            fprintf(out, "\"];\n");
        }
        /* gradients of params and inputs, and the outputs, are where backward/forward end */
        for (int b = 0; b < prog->nbufs; b++) {
            const ir_buf *buf = &prog->bufs[b];
            bool sink = part ? (buf->kind == BUF_PARAM_GRAD || buf->kind == BUF_INPUT_GRAD) : buf->kind == BUF_OUTPUT;
            if (!sink)
                continue;
            fprintf(out, "    buf%d [shape=ellipse, fillcolor=\"%s\", label=\"", b, part ? "#fbe3ef" : "#ddeeff");
            dot_escape(out, buf->name);
            fprintf(out, "\\n%s\"];\n", view_bytes(b1, buf->bytes));
        }
        fprintf(out, "  }\n");
    }

    /* Walk the steps keeping, per storage, the step that last wrote it. */
    int *writer = malloc(sizeof(int) * (size_t)(prog->nbufs + 1));
    bool *bwd_pred = calloc((size_t)prog->nsteps + 1, sizeof(bool)); /* step has an edge from a backward step */
    IR_ASSERT(writer && bwd_pred);
    for (int b = 0; b < prog->nbufs; b++)
        writer[b] = prog->bufs[b].kind == BUF_INPUT ? -2 - b : -1; /* -2-b: the input node buf b */
    for (int s = 0; s < prog->nsteps; s++) {
        const ir_step *st = &prog->steps[s];
        for (int k = 0; k < st->nopnd; k++) {
            const ir_opnd *o = &st->opnd[k];
            if (o->kind != OPND_BUF || o->writes)
                continue;
            const ir_buf *buf = &prog->bufs[o->buf];
            if (buf->space == SPACE_PARAMS)
                continue; /* params are not memory this plan manages */
            int w = writer[storage_id(prog, o->buf)];
            if (w == -1)
                continue;
            bool residual = w >= 0 && w < prog->nfwd && s >= prog->nfwd;
            bwd_pred[s] |= w >= prog->nfwd;
            if (w >= 0)
                fprintf(out, "  step%d -> step%d", w, s);
            else
                fprintf(out, "  buf%d -> step%d", -2 - w, s);
            fprintf(out, " [label=\"");
            dot_escape(out, buf->name);
            fprintf(out, "\\n%s\"%s];\n", view_bytes(b1, buf->bytes),
                    residual ? ", color=\"#cc3311\", fontcolor=\"#cc3311\", penwidth=2.5" : "");
        }
        for (int k = 0; k < st->nopnd; k++) {
            const ir_opnd *o = &st->opnd[k];
            if (o->kind != OPND_BUF || !o->writes)
                continue;
            const ir_buf *buf = &prog->bufs[o->buf];
            int sid = storage_id(prog, o->buf), w = writer[sid];
            if (w >= 0 && w != s && buf->space != SPACE_PARAMS) {
                /* written again: a further contribution added to a gradient */
                bwd_pred[s] |= w >= prog->nfwd;
                fprintf(out, "  step%d -> step%d [label=\"", w, s);
                dot_escape(out, buf->name);
                fprintf(out, " +=\\n%s\"];\n", view_bytes(b1, buf->bytes));
            }
            writer[sid] = s;
            if (buf->kind == BUF_PARAM_GRAD || buf->kind == BUF_INPUT_GRAD || buf->kind == BUF_OUTPUT)
                fprintf(out, "  step%d -> buf%d;\n", s, o->buf);
        }
    }

    /* Residuals of full training that this configuration does not keep. */
    if (full && full != m) {
        const ir_program *fp = &full->train;
        int dropped = 0;
        for (int b = 0; b < fp->nbufs; b++) {
            const ir_buf *buf = &fp->bufs[b];
            if (buf->alias_of >= 0 || buf->space != SPACE_ARENA || buf->first < 0 || buf->first >= fp->nfwd ||
                buf->last < fp->nfwd || residual_in(prog, buf->name))
                continue;
            /* where this value is produced in our program */
            int from = -1;
            for (int s = 0; s < prog->nfwd && from < 0; s++)
                for (int k = 0; k < prog->steps[s].nopnd; k++) {
                    const ir_opnd *o = &prog->steps[s].opnd[k];
                    if (o->kind == OPND_BUF && o->writes && prog->bufs[o->buf].value == buf->value)
                        from = s;
                }
            fprintf(out, "  dropped%d [shape=note, style=dashed, color=grey, fontcolor=grey, label=\"not kept: ", dropped);
            dot_escape(out, buf->name);
            fprintf(out, "\\n%s\"];\n", view_bytes(b1, buf->bytes));
            if (from >= 0) {
                fprintf(out, "  step%d -> dropped%d [style=dashed, color=grey];\n", from, dropped);
            } else {
                for (int ib = 0; ib < prog->nbufs; ib++)
                    if (prog->bufs[ib].kind == BUF_INPUT && prog->bufs[ib].alias_of < 0 &&
                        prog->bufs[ib].value == buf->value)
                        fprintf(out, "  buf%d -> dropped%d [style=dashed, color=grey];\n", ib, dropped);
            }
            dropped++;
        }
    }
    /* Backward below forward: the backward steps nothing in backward leads to
     * (the seed, zero fills) hang below the last forward step, invisibly. */
    for (int s = prog->nfwd; s < prog->nsteps && prog->nfwd > 0; s++)
        if (!bwd_pred[s])
            fprintf(out, "  step%d -> step%d [style=invis];\n", prog->nfwd - 1, s);
    free(writer);
    free(bwd_pred);
    fprintf(out, "}\n");
}

bool view_svg(const char *dot_text, size_t len, FILE *out, char **err) {
    (void)len;
    GVC_t *gvc = gvContext();
    Agraph_t *graph = agmemread(dot_text);
    if (!graph) {
        *err = strdup("Graphviz could not read the generated DOT");
        gvFreeContext(gvc);
        return false;
    }
    bool ok = gvLayout(gvc, graph, "dot") == 0;
    char *svg = NULL;
    unsigned int svg_len = 0;
    if (ok)
        ok = gvRenderData(gvc, graph, "svg", &svg, &svg_len) == 0;
    if (ok)
        ok = fwrite(svg, 1, svg_len, out) == svg_len;
    else
        *err = strdup("Graphviz could not lay out or render the graph");
    if (svg)
        gvFreeRenderData(svg);
    gvFreeLayout(gvc, graph);
    agclose(graph);
    gvFreeContext(gvc);
    return ok;
}
