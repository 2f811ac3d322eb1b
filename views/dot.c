/* dot.c: `frost dot`: the liveness graph of the train program in Graphviz.
 *
 * One node per kernel call, labelled with its step number (the numbers of
 * `frost plan`'s `live a..b` and `--steps`), forward and backward in two
 * clusters; an edge per tensor from the step that wrote it to each step that
 * reads it, labelled with its name and size ("+=" when a step adds to what an
 * earlier one wrote, as gradients with several contributions do). Edges from
 * forward into backward are the residuals and are drawn bold red. Residuals
 * that full training would keep but this freeze configuration does not are
 * drawn grey and dashed into a "not kept" note that names the frozen
 * parameters whose gradients needed them: that is the memory selective
 * differentiation saved. A step whose output took over the storage of a
 * dying input says "in place" under its name.
 *
 * Big graphs are collapsed (above VIEW_COLLAPSE_STEPS steps, or --collapse):
 * the forward steps of one def call (a residual block, by ir_node.call) become
 * one node, its backward steps another, labelled with the call's name, step
 * range and the bytes it keeps for backward; nodes outside def calls become
 * one node per phase too. Edges then stand for all the tensors that cross
 * between two such nodes. Laid out in a U: forward down the left, each
 * backward node beside and just below its forward node, backward running up
 * the right, so residual edges are short and the graph fits one screen. The
 * expanded graph of a ResNet draws hundreds of residual edges across the
 * whole height of the graph, which is what made Graphviz take minutes.
 *
 * --only / --from / --to keep the steps of some graph nodes; tensors that
 * come from steps left out are drawn as plain text "from #N" nodes.
 */
#include "ir.h"

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#include <stdlib.h>
#include <string.h>

static void dot_escape(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
}

static int storage_id(const ir_program *prog, int b) { return (int)(view_storage(prog, &prog->bufs[b]) - prog->bufs); }

/* ---------------------------------------------------------------- which steps */

/* Name is `prefix` or lies under it (prefix.*): a module path, as PyTorch's. */
static bool under(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    return strncmp(name, prefix, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

/* The glob matches the name or one of its dotted prefixes. */
static bool matches_module(const char *pattern, const char *name) {
    char *buf = strdup(name);
    IR_ASSERT(buf);
    bool match = glob_match(pattern, buf);
    for (size_t k = strlen(buf); k-- > 0 && !match;)
        if (buf[k] == '.') {
            buf[k] = '\0';
            match = glob_match(pattern, buf);
        }
    free(buf);
    return match;
}

/* The closest node name or dotted prefix of one ("layer2") for a
 * did-you-mean (malloc'd), or NULL. */
static char *closest_module(const ir_graph *g, const char *name) {
    int bd = 4;
    char *best = NULL;
    for (int n = 0; n < g->nnodes; n++) {
        char *cand = strdup(g->nodes[n].name);
        IR_ASSERT(cand);
        for (size_t k = strlen(cand) + 1; k-- > 0;)
            if (cand[k] == '.' || cand[k] == '\0') {
                cand[k] = '\0';
                int d = diag_edit_distance(name, cand, bd - 1);
                if (d < bd) {
                    bd = d;
                    free(best);
                    best = strdup(cand);
                }
            }
        free(cand);
    }
    return best;
}

static char *unknown_name(const ir_graph *g, const char *option, const char *name) {
    char *near = closest_module(g, name);
    char *msg = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&msg, &len);
    IR_ASSERT(f);
    if (strcmp(option, "--only") == 0)
        fprintf(f, "%s '%s': no node of model %s matches, nor any name it lies under", option, name, g->model);
    else
        fprintf(f, "%s '%s': no node of model %s is named so or lies under it", option, name, g->model);
    if (near && !strpbrk(name, "*?["))
        fprintf(f, "; did you mean '%s'?", near);
    IR_ASSERT(fclose(f) == 0);
    free(near);
    return msg;
}

/* Per graph node: is it drawn? false with a message when o names nothing. */
static bool select_nodes(const ir_graph *g, const view_options *o, bool *sel, char **err) {
    int lo = 0, hi = g->nnodes - 1;
    if (o->from) {
        for (lo = 0; lo < g->nnodes && !under(g->nodes[lo].name, o->from); lo++)
            ;
        if (lo == g->nnodes) {
            *err = unknown_name(g, "--from", o->from);
            return false;
        }
    }
    if (o->to) {
        for (hi = g->nnodes - 1; hi >= 0 && !under(g->nodes[hi].name, o->to); hi--)
            ;
        if (hi < 0) {
            *err = unknown_name(g, "--to", o->to);
            return false;
        }
    }
    if (lo > hi) {
        *err = strdup("--from names a node that comes after the last one --to names");
        return false;
    }
    for (int n = 0; n < g->nnodes; n++)
        sel[n] = n >= lo && n <= hi;
    for (int k = 0; k < o->nonly; k++) {
        bool any = false;
        for (int n = 0; n < g->nnodes; n++)
            any |= matches_module(o->only[k], g->nodes[n].name);
        if (!any) {
            *err = unknown_name(g, "--only", o->only[k]);
            return false;
        }
    }
    if (o->nonly)
        for (int n = 0; n < g->nnodes; n++) {
            bool any = false;
            for (int k = 0; k < o->nonly; k++)
                any |= matches_module(o->only[k], g->nodes[n].name);
            sel[n] &= any;
        }
    return true;
}

/* ---------------------------------------------------------------- what each dropped residual was for */

/* The params of `full` whose gradients backward computes from storage r:
 * written by a backward step that reads r, or reads what such a step wrote,
 * and so on; those m freezes go to out[] (value ids of m's graph, room for
 * every value), nearest first (fewest steps between), then in params order.
 * Returns their number. */
typedef struct {
    int depth, buf;
} dot_reach;

static int by_depth(const void *a, const void *b) {
    const dot_reach *x = a, *y = b;
    return x->depth != y->depth ? x->depth - y->depth : x->buf - y->buf;
}

static int frozen_users(const ir_module *m, const ir_module *full, int r, int *out, int *depth_of, dot_reach *reach) {
    const ir_program *fp = &full->train;
    for (int b = 0; b < fp->nbufs; b++)
        depth_of[b] = -1;
    depth_of[r] = 0;
    for (int s = fp->nfwd; s < fp->nsteps; s++) {
        const ir_step *st = &fp->steps[s];
        int d = -1;
        for (int k = 0; k < st->nopnd; k++) {
            const ir_opnd *o = &st->opnd[k];
            int sid = o->kind == OPND_BUF && !o->writes ? storage_id(fp, o->buf) : -1;
            if (sid >= 0 && depth_of[sid] >= 0 && (d < 0 || depth_of[sid] < d))
                d = depth_of[sid];
        }
        for (int k = 0; k < st->nopnd && d >= 0; k++) {
            const ir_opnd *o = &st->opnd[k];
            int sid = o->kind == OPND_BUF && o->writes ? storage_id(fp, o->buf) : -1;
            if (sid >= 0 && (depth_of[sid] < 0 || depth_of[sid] > d + 1))
                depth_of[sid] = d + 1;
        }
    }
    int nr = 0, n = 0;
    for (int b = 0; b < fp->nbufs; b++)
        if (depth_of[b] > 0 && fp->bufs[b].kind == BUF_PARAM_GRAD && fp->bufs[b].value >= 0)
            reach[nr++] = (dot_reach){depth_of[b], b};
    qsort(reach, (size_t)nr, sizeof *reach, by_depth);
    for (int k = 0; k < nr; k++) {
        int v = ir_find_value(m->graph, full->graph->vals[fp->bufs[reach[k].buf].value].name);
        if (v >= 0 && !m->graph->vals[v].trainable)
            out[n++] = v;
    }
    return n;
}

/* ---------------------------------------------------------------- the drawing */

typedef struct {
    const char *name; /* def call or node name; NULL: glue (copies, the seed) */
    int first, last, nsteps;
    bool backward;
    int64_t keeps; /* forward: residual bytes of the storages it first writes */
    int64_t grads; /* backward: bytes of parameter gradients it writes */
    double level;  /* collapsed: top-to-bottom order of the U layout */
    int twin;      /* collapsed: the other phase's unit of the same name, or -1 */
} dot_unit;

/* The end of an edge: a unit, an input buffer, a tensor from a step that is
 * not drawn, a sink buffer (output, gradient) or a "not kept" note. */
typedef enum { END_UNIT, END_INPUT, END_OUTSIDE, END_SINK, END_DROPPED } end_kind;
typedef struct {
    end_kind kind;
    int id;
} dot_end;

typedef struct {
    dot_end from, to;
    bool residual, adds, dashed;
    int ntensors;
    int64_t bytes;
    const char *name; /* the first tensor's name */
    int *storages;
    int nstorages, capstorages; /* counted once each */
} dot_edge;

typedef struct {
    const ir_module *m;
    const ir_program *prog;
    pool *pool;
    bool collapse;
    dot_unit *units;
    int nunits, capunits;
    int *unit_of; /* per step: its unit, -1 when not drawn */
    dot_edge *edges;
    int nedges, capedges;
    bool *input_used, *sink_used; /* per buffer */
    int *outside;
    int noutside, capoutside; /* storages drawn as "from #N" text */
    int *outside_from;        /* per storage: the step that wrote it */
} dot_ctx;

static bool same_end(dot_end a, dot_end b) { return a.kind == b.kind && a.id == b.id; }

static double end_level(const dot_ctx *c, dot_end e) {
    return e.kind == END_UNIT ? c->units[e.id].level : e.kind == END_INPUT ? -1.0 : 0.0;
}

/* Add tensor `storage` (buffer `buf` names it) to the edge from -> to, made
 * when missing. Expanded, every tensor has an edge of its own. */
static void add_edge(dot_ctx *c, dot_end from, dot_end to, int buf, bool residual, bool adds) {
    int storage = storage_id(c->prog, buf);
    dot_edge *e = NULL;
    for (int k = c->nedges - 1; k >= 0 && !e; k--) {
        dot_edge *x = &c->edges[k];
        if (!c->collapse && !same_end(x->to, to))
            break; /* a step's reads are added together */
        if (same_end(x->from, from) && same_end(x->to, to) && x->residual == residual && x->adds == adds &&
            (c->collapse || x->storages[0] == storage))
            e = x;
    }
    if (!e) {
        e = VEC_PUSH(c->pool, c->edges, c->nedges, c->capedges);
        *e = (dot_edge){.from = from, .to = to, .residual = residual, .adds = adds, .name = c->prog->bufs[buf].name};
    }
    for (int k = 0; k < e->nstorages; k++)
        if (e->storages[k] == storage)
            return;
    *VEC_PUSH(c->pool, e->storages, e->nstorages, e->capstorages) = storage;
    e->ntensors++;
    e->bytes += c->prog->bufs[buf].bytes;
}

/* Expanded, a unit is a step and named after it. */
static void print_end(FILE *out, const dot_ctx *c, dot_end e) {
    static const char *prefix[] = {"u", "buf", "ext", "buf", "dropped"};
    if (e.kind == END_UNIT && !c->collapse)
        fprintf(out, "step%d", c->units[e.id].first);
    else
        fprintf(out, "%s%d", prefix[e.kind], e.id);
}

/* Label of a single step: its number, kernel (without rt_), the graph node it
 * belongs to, and "in place" when it writes an output over a dying input.
 * Lines are separated by DOT's \n escape, which must not itself be escaped. */
static void step_label(FILE *out, const ir_graph *g, const ir_program *prog, int s) {
    const ir_step *st = &prog->steps[s];
    fprintf(out, "#%d ", s);
    dot_escape(out, view_kernel(st));
    if (st->node >= 0) {
        fputs("\\n", out);
        dot_escape(out, g->nodes[st->node].name);
    }
    for (int k = 0; k < st->nopnd; k++) {
        const ir_opnd *o = &st->opnd[k];
        const ir_buf *donor = o->kind == OPND_BUF && o->writes ? view_took_over(prog, &prog->bufs[o->buf]) : NULL;
        if (donor) {
            fputs("\\n(in place of ", out);
            dot_escape(out, donor->name);
            fputc(')', out);
            break;
        }
    }
}

static void unit_label(FILE *out, const dot_ctx *c, int u) {
    const dot_unit *un = &c->units[u];
    char b1[32];
    if (un->nsteps == 1) {
        step_label(out, c->m->graph, c->prog, un->first);
    } else {
        dot_escape(out, un->name ? un->name : "glue");
        fprintf(out, "\\n#%d..%d (%d steps)", un->first, un->last, un->nsteps);
    }
    if (un->keeps)
        fprintf(out, "\\nkeeps %s", view_bytes(b1, un->keeps));
    if (un->grads && c->collapse)
        fprintf(out, "\\nparam grads %s", view_bytes(b1, un->grads));
}

/* The units: one per step, or collapsed one per (def call or node, phase). */
static void make_units(dot_ctx *c, const bool *node_sel, bool filtered) {
    const ir_graph *g = c->m->graph;
    const ir_program *prog = c->prog;
    /* group id per graph node: the first node of its run of the same def call */
    int *group = malloc(sizeof(int) * (size_t)(g->nnodes + 1));
    int *unit_of_group = malloc(sizeof(int) * 2 * (size_t)(g->nnodes + 1));
    bool *grad_seen = calloc((size_t)prog->nbufs + 1, sizeof(bool));
    IR_ASSERT(group && unit_of_group && grad_seen);
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *a = &g->nodes[n], *b = n > 0 ? &g->nodes[n - 1] : NULL;
        group[n] = b && a->call && b->call && strcmp(a->call, b->call) == 0 ? group[n - 1] : n;
        unit_of_group[2 * n] = unit_of_group[2 * n + 1] = -1;
    }
    for (int s = 0; s < prog->nsteps; s++) {
        const ir_step *st = &prog->steps[s];
        bool bwd = s >= prog->nfwd;
        c->unit_of[s] = -1;
        if (st->node >= 0 ? !node_sel[st->node] : filtered)
            continue;
        int *slot = c->collapse && st->node >= 0 ? &unit_of_group[2 * group[st->node] + bwd] : NULL;
        if (!slot || *slot < 0) {
            const ir_node *n = st->node >= 0 ? &g->nodes[st->node] : NULL;
            dot_unit *u = VEC_PUSH(c->pool, c->units, c->nunits, c->capunits);
            *u = (dot_unit){.name = n ? (c->collapse && n->call ? n->call : n->name) : NULL,
                            .first = s,
                            .backward = bwd,
                            .twin = -1};
            if (slot) {
                *slot = c->nunits - 1;
                int other = unit_of_group[2 * group[st->node] + !bwd];
                if (other >= 0) {
                    u->twin = other;
                    c->units[other].twin = c->nunits - 1;
                }
            }
        }
        int ui = slot ? *slot : c->nunits - 1;
        dot_unit *u = &c->units[ui];
        c->unit_of[s] = ui;
        u->last = s;
        u->nsteps++;
        for (int k = 0; k < st->nopnd; k++) {
            const ir_opnd *o = &st->opnd[k];
            if (o->kind != OPND_BUF || !o->writes)
                continue;
            const ir_buf *b = &prog->bufs[o->buf];
            if (b->alias_of < 0 && b->first == s && view_is_residual(prog, b))
                u->keeps += b->bytes;
            if (b->kind == BUF_PARAM_GRAD && !grad_seen[o->buf])
                u->grads += b->bytes;
            grad_seen[o->buf] = true;
        }
    }
    free(group);
    free(unit_of_group);
    free(grad_seen);
    if (!c->collapse)
        return;
    /* The U: forward units top to bottom; a backward unit just below its
     * forward twin; one without (the seed, glue) just below the next backward
     * unit that has one, or at the bottom. */
    int nf = 0;
    for (int u = 0; u < c->nunits; u++)
        if (!c->units[u].backward)
            c->units[u].level = nf++;
    for (int u = 0; u < c->nunits; u++) {
        dot_unit *x = &c->units[u];
        if (!x->backward)
            continue;
        if (x->twin >= 0) {
            x->level = c->units[x->twin].level + 0.5;
            continue;
        }
        x->level = nf;
        for (int v = u + 1; v < c->nunits; v++)
            if (c->units[v].backward && c->units[v].twin >= 0) {
                x->level = c->units[c->units[v].twin].level + 0.75;
                break;
            }
    }
}

/* Walk the steps keeping, per storage, the step that last wrote it (-2-b:
 * input buffer b, -1: nothing yet), and make the edges. */
static void make_edges(dot_ctx *c) {
    const ir_program *prog = c->prog;
    int *writer = malloc(sizeof(int) * (size_t)(prog->nbufs + 1));
    IR_ASSERT(writer);
    for (int b = 0; b < prog->nbufs; b++)
        writer[b] = prog->bufs[b].kind == BUF_INPUT ? -2 - b : -1;
    for (int s = 0; s < prog->nsteps; s++) {
        const ir_step *st = &prog->steps[s];
        int u = c->unit_of[s];
        for (int k = 0; k < st->nopnd && u >= 0; k++) {
            const ir_opnd *o = &st->opnd[k];
            if (o->kind != OPND_BUF || o->writes)
                continue;
            const ir_buf *buf = &prog->bufs[o->buf];
            if (buf->space == SPACE_PARAMS)
                continue; /* params are not memory this plan manages */
            int sid = storage_id(prog, o->buf), w = writer[sid];
            dot_end to = {END_UNIT, u};
            if (w == -1 || (w >= 0 && c->unit_of[w] == u))
                continue;
            bool residual = w >= 0 && w < prog->nfwd && s >= prog->nfwd;
            if (w <= -2) {
                c->input_used[-2 - w] = true;
                add_edge(c, (dot_end){END_INPUT, -2 - w}, to, o->buf, false, false);
            } else if (c->unit_of[w] < 0) {
                if (c->outside_from[sid] < 0) {
                    *VEC_PUSH(c->pool, c->outside, c->noutside, c->capoutside) = sid;
                    c->outside_from[sid] = w;
                }
                add_edge(c, (dot_end){END_OUTSIDE, sid}, to, o->buf, residual, false);
            } else {
                add_edge(c, (dot_end){END_UNIT, c->unit_of[w]}, to, o->buf, residual, false);
            }
        }
        for (int k = 0; k < st->nopnd; k++) {
            const ir_opnd *o = &st->opnd[k];
            if (o->kind != OPND_BUF || !o->writes)
                continue;
            const ir_buf *buf = &prog->bufs[o->buf];
            int sid = storage_id(prog, o->buf), w = writer[sid];
            writer[sid] = s;
            if (u < 0)
                continue;
            /* written again: a further contribution added to a gradient */
            if (w >= 0 && w != s && buf->space != SPACE_PARAMS && c->unit_of[w] >= 0 && c->unit_of[w] != u)
                add_edge(c, (dot_end){END_UNIT, c->unit_of[w]}, (dot_end){END_UNIT, u}, o->buf, false, true);
            bool sink =
                buf->kind == BUF_INPUT_GRAD || buf->kind == BUF_OUTPUT || (buf->kind == BUF_PARAM_GRAD && !c->collapse);
            dot_end from = {END_UNIT, u}, to = {END_SINK, o->buf};
            bool drawn = false;
            for (int e = c->nedges - 1; e >= 0 && sink && !drawn; e--)
                drawn = same_end(c->edges[e].from, from) && same_end(c->edges[e].to, to);
            if (sink && !drawn) {
                c->sink_used[o->buf] = true;
                *VEC_PUSH(c->pool, c->edges, c->nedges, c->capedges) = (dot_edge){.from = from, .to = to};
            }
        }
    }
    free(writer);
}

static void print_edge(FILE *out, const dot_ctx *c, const dot_edge *e) {
    char b1[32];
    /* Collapsed: an edge runs down the page from the end higher in the U;
     * one drawn upwards (backward towards the input) is given reversed with
     * dir=back, so that dot ranks it like the others. */
    bool up = c->collapse && e->to.kind == END_UNIT && end_level(c, e->from) > end_level(c, e->to);
    fputs("  ", out);
    print_end(out, c, up ? e->to : e->from);
    fputs(" -> ", out);
    print_end(out, c, up ? e->from : e->to);
    if (e->to.kind == END_SINK || e->to.kind == END_DROPPED) {
        fprintf(out, "%s;\n", e->dashed ? " [style=dashed, color=grey]" : "");
        return;
    }
    fputs(" [label=\"", out);
    dot_escape(out, e->name);
    if (e->ntensors > 1)
        fprintf(out, " +%d", e->ntensors - 1);
    fprintf(out, "%s\\n%s\"", e->adds ? " +=" : "", view_bytes(b1, e->bytes));
    if (up)
        fputs(", dir=back", out);
    if (e->residual)
        fputs(", color=\"#cc3311\", fontcolor=\"#cc3311\", penwidth=2.5", out);
    fputs("];\n", out);
}

/* The residuals of full training that m does not keep, each with the frozen
 * params whose gradients needed it; as notes hanging off the unit that makes
 * the tensor (collapsed: one note per unit). */
static void print_dropped(FILE *out, dot_ctx *c, const ir_module *full) {
    const ir_program *prog = c->prog, *fp = &full->train;
    const ir_graph *g = c->m->graph;
    enum { SHOWN = 3 }; /* params named in a note; the rest counted */
    int *depth = malloc(sizeof(int) * (size_t)(fp->nbufs + 1));
    dot_reach *reach = malloc(sizeof *reach * (size_t)(fp->nbufs + 1));
    int *found = malloc(sizeof(int) * (size_t)(g->nvals + 1));
    int *note_of = malloc(sizeof(int) * (size_t)(c->nunits + 1)); /* collapsed: the unit's note */
    IR_ASSERT(depth && reach && found && note_of);
    for (int u = 0; u < c->nunits; u++)
        note_of[u] = -1;
    typedef struct {
        dot_end at; /* what it hangs off */
        const char *name;
        int count;
        int64_t bytes;
        int *params;
        int nparams, capparams;
    } note;
    note *notes = NULL;
    int nnotes = 0, capnotes = 0;
    for (int b = 0; b < fp->nbufs; b++) {
        const ir_buf *buf = &fp->bufs[b];
        if (buf->alias_of >= 0 || !view_is_residual(fp, buf))
            continue;
        bool kept = false;
        for (int k = 0; k < prog->nbufs && !kept; k++)
            kept = strcmp(prog->bufs[k].name, buf->name) == 0 &&
                   view_is_residual(prog, view_storage(prog, &prog->bufs[k]));
        if (kept)
            continue;
        /* where this value is produced in m's program: a forward step, or an input */
        dot_end at = {END_UNIT, -1};
        for (int s = 0; s < prog->nfwd && at.id == -1; s++)
            for (int k = 0; k < prog->steps[s].nopnd; k++) {
                const ir_opnd *o = &prog->steps[s].opnd[k];
                if (o->kind == OPND_BUF && o->writes && prog->bufs[o->buf].value == buf->value)
                    at.id = c->unit_of[s] >= 0 ? c->unit_of[s] : -2;
            }
        for (int ib = 0; ib < prog->nbufs && at.id == -1; ib++)
            if (prog->bufs[ib].kind == BUF_INPUT && prog->bufs[ib].alias_of < 0 && prog->bufs[ib].value == buf->value &&
                c->input_used[ib])
                at = (dot_end){END_INPUT, ib};
        if (at.id < 0)
            continue; /* made by a step that is not drawn */
        note *n = c->collapse && at.kind == END_UNIT && note_of[at.id] >= 0 ? &notes[note_of[at.id]] : NULL;
        if (!n) {
            if (c->collapse && at.kind == END_UNIT)
                note_of[at.id] = nnotes;
            n = VEC_PUSH(c->pool, notes, nnotes, capnotes);
            *n = (note){.at = at, .name = buf->name};
        }
        n->count++;
        n->bytes += buf->bytes;
        int nf = frozen_users(c->m, full, b, found, depth, reach);
        for (int k = 0; k < nf; k++) {
            bool dup = false;
            for (int i = 0; i < n->nparams && !dup; i++)
                dup = n->params[i] == found[k];
            if (!dup)
                *VEC_PUSH(c->pool, n->params, n->nparams, n->capparams) = found[k];
        }
    }
    char b1[32];
    for (int k = 0; k < nnotes; k++) {
        const note *n = &notes[k];
        fprintf(out, "  dropped%d [shape=note, style=dashed, color=grey, fontcolor=grey, label=\"not kept: ", k);
        if (n->count == 1)
            dot_escape(out, n->name);
        else
            fprintf(out, "%d tensors", n->count);
        fprintf(out, "\\n%s", view_bytes(b1, n->bytes));
        if (n->nparams) {
            fputs("\\nfor frozen ", out);
            for (int i = 0; i < n->nparams && i < SHOWN; i++) {
                fputs(i ? ", " : "", out);
                dot_escape(out, g->vals[n->params[i]].name);
            }
            if (n->nparams > SHOWN)
                fprintf(out, " +%d more", n->nparams - SHOWN);
        }
        fputs("\"];\n", out);
        dot_edge e = {.from = n->at, .to = {END_DROPPED, k}, .dashed = true};
        print_edge(out, c, &e);
    }
    free(depth);
    free(reach);
    free(found);
    free(note_of);
}

bool view_dot(const ir_module *m, const ir_module *full, const view_options *o, FILE *out, char **err) {
    static const view_options none = {0};
    if (!o)
        o = &none;
    const ir_graph *g = m->graph;
    const ir_program *prog = &m->train;
    bool *node_sel = malloc(sizeof(bool) * (size_t)(g->nnodes + 1));
    IR_ASSERT(node_sel);
    if (!select_nodes(g, o, node_sel, err)) {
        free(node_sel);
        return false;
    }
    bool filtered = o->from || o->to || o->nonly;
    int drawn = 0;
    for (int s = 0; s < prog->nsteps; s++)
        drawn += prog->steps[s].node >= 0 ? node_sel[prog->steps[s].node] : !filtered;
    pool *p = pool_new();
    dot_ctx c = {.m = m, .prog = prog, .pool = p};
    c.collapse = o->collapse == COLLAPSE_ALWAYS || (o->collapse == COLLAPSE_AUTO && drawn > VIEW_COLLAPSE_STEPS);
    c.unit_of = pool_alloc(p, sizeof(int) * (size_t)(prog->nsteps + 1));
    c.input_used = pool_alloc(p, sizeof(bool) * (size_t)(prog->nbufs + 1));
    c.sink_used = pool_alloc(p, sizeof(bool) * (size_t)(prog->nbufs + 1));
    c.outside_from = pool_alloc(p, sizeof(int) * (size_t)(prog->nbufs + 1));
    for (int b = 0; b < prog->nbufs; b++)
        c.outside_from[b] = -1;
    make_units(&c, node_sel, filtered);
    make_edges(&c);
    free(node_sel);

    char b1[32], b2[32];
    fputs("digraph \"", out);
    dot_escape(out, g->model);
    /* newrank: one ranking over the whole graph, clusters included, so that
     * every edge goes down a rank. Without it dot may lay an edge between the
     * two clusters flat, and Graphviz 2.43 frees a flat edge's label twice
     * (gvFreeLayout after flat_edges), e.g. for tests/e2e/models/conv_grid.frost. */
    fputs("\" {\n  graph [rankdir=TB, newrank=true, ", out);
    /* Big expanded graphs: bound dot's network simplex (iterations per node),
     * which otherwise takes minutes on a few hundred steps with labelled edges. */
    if (!c.collapse && drawn > 150)
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
    if (filtered || c.collapse) {
        fprintf(out, "\\n%d of %d steps", drawn, prog->nsteps);
        if (c.collapse)
            fputs(", each def call's forward and backward steps drawn as one node (--expand: every step)", out);
    }
    fputs("\\n#N: step number, as in frost plan; red bold edges: residuals, kept from forward for backward; grey "
          "dashed: residuals of full training this configuration does not keep\"];\n",
          out);
    fprintf(out, "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f4f4f4\", fontname=\"Helvetica\", "
                 "fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");

    /* inputs and tensors from steps not drawn, outside the clusters */
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->kind == BUF_INPUT && buf->alias_of < 0 && (c.input_used[b] || !filtered)) {
            fprintf(out, "  buf%d [shape=ellipse, fillcolor=\"#ddeeff\", label=\"", b);
            dot_escape(out, buf->name);
            fprintf(out, "\\n%s%s\"];\n", dtype_name(buf->dtype), shape_str(g->pool, &buf->shape));
        }
    }
    for (int k = 0; k < c.noutside; k++) {
        int sid = c.outside[k];
        fprintf(out, "  ext%d [shape=plaintext, style=\"\", label=\"", sid);
        dot_escape(out, prog->bufs[sid].name);
        fprintf(out, "\\n%s from #%d\"];\n", view_bytes(b1, prog->bufs[sid].bytes), c.outside_from[sid]);
    }
    for (int part = 0; part < 2; part++) {
        fprintf(out, "  subgraph cluster_%s {\n    label=\"%s\"; style=rounded; color=\"%s\";\n",
                part ? "backward" : "forward", part ? "backward" : "forward", part ? "#aa3377" : "#4477aa");
        for (int u = 0; u < c.nunits; u++) {
            if (c.units[u].backward != part)
                continue;
            fputs("    ", out);
            print_end(out, &c, (dot_end){END_UNIT, u});
            fputs(" [", out);
            if (c.units[u].nsteps > 1)
                fprintf(out, "fillcolor=\"%s\", ", part ? "#f6e3ec" : "#e3ebf6");
            fputs("label=\"", out);
            unit_label(out, &c, u);
            fprintf(out, "\"];\n");
        }
        /* gradients of params and inputs, and the outputs, are where backward/forward end */
        for (int b = 0; b < prog->nbufs; b++) {
            const ir_buf *buf = &prog->bufs[b];
            bool here = part ? buf->kind == BUF_PARAM_GRAD || buf->kind == BUF_INPUT_GRAD : buf->kind == BUF_OUTPUT;
            if (!here || !c.sink_used[b])
                continue;
            fprintf(out, "    buf%d [shape=ellipse, fillcolor=\"%s\", label=\"", b, part ? "#fbe3ef" : "#ddeeff");
            dot_escape(out, buf->name);
            fprintf(out, "\\n%s\"];\n", view_bytes(b1, buf->bytes));
        }
        fprintf(out, "  }\n");
    }
    for (int k = 0; k < c.nedges; k++)
        print_edge(out, &c, &c.edges[k]);
    if (full && full != m)
        print_dropped(out, &c, full);
    /* Expanded, backward below forward: the backward steps nothing drawn in
     * backward leads to (the seed, zero fills) hang below the last forward
     * step drawn, invisibly. */
    if (!c.collapse) {
        int last_fwd = -1;
        bool *has_pred = pool_alloc(p, sizeof(bool) * (size_t)(c.nunits + 1));
        for (int u = 0; u < c.nunits; u++)
            if (!c.units[u].backward)
                last_fwd = u;
        for (int k = 0; k < c.nedges; k++) {
            const dot_edge *e = &c.edges[k];
            if (e->to.kind == END_UNIT &&
                ((e->from.kind == END_UNIT && c.units[e->from.id].backward) || e->from.kind == END_OUTSIDE))
                has_pred[e->to.id] = true;
        }
        for (int u = 0; u < c.nunits && last_fwd >= 0; u++)
            if (c.units[u].backward && !has_pred[u])
                fprintf(out, "  step%d -> step%d [style=invis];\n", c.units[last_fwd].first, c.units[u].first);
    }
    fprintf(out, "}\n");
    pool_free(p);
    return true;
}

bool view_render(const char *dot_text, size_t len, const char *format, FILE *out, char **err) {
    (void)len;
    GVC_t *gvc = gvContext();
    Agraph_t *graph = agmemread(dot_text);
    if (!graph) {
        *err = strdup("Graphviz could not read the generated DOT");
        gvFreeContext(gvc);
        return false;
    }
    bool laid_out = gvLayout(gvc, graph, "dot") == 0, ok = laid_out;
    char *data = NULL;
    unsigned int data_len = 0;
    if (ok)
        ok = gvRenderData(gvc, graph, format, &data, &data_len) == 0;
    if (ok && fwrite(data, 1, data_len, out) != data_len) {
        ok = false;
        *err = strdup("cannot write the rendered graph");
    } else if (!laid_out) {
        *err = strdup("Graphviz could not lay out the graph");
    } else if (!ok) {
        /* Graphviz renders PNG through a plugin (cairo, gd) that may be missing */
        static const char fmt[] = "Graphviz could not render the graph as %s: is its plugin for %s installed "
                                  "('dot -T%s' tells)?";
        size_t n = sizeof fmt + 3 * strlen(format);
        if ((*err = malloc(n)))
            snprintf(*err, n, fmt, format, format, format);
    }
    if (data)
        gvFreeRenderData(data);
    gvFreeLayout(gvc, graph);
    agclose(graph);
    gvFreeContext(gvc);
    return ok;
}
