/* svg.c: pictures to look at rather than read, drawn as plain SVG text (no
 * Graphviz: nothing here needs a layout).
 *
 * `frost plan --format svg`: the train arena as PyTorch's memory-snapshot
 * viewer shows a heap: step along x (forward, then backward, the turn
 * marked), arena offset up y, one rectangle per storage over the steps it
 * lives and the bytes it occupies, coloured by role with the residuals (what
 * forward leaves for backward) in red; over it the bytes in use per step as
 * planned, whose peak is the lower bound, and the arena's top. Scratch that
 * widen.c grew into space free at its step is drawn at its grown size but
 * counted in the line at its planned one, as the lower bound counts it.
 * Hovering a rectangle names the buffer.
 *
 * `frost compare --format svg`: one stacked bar per configuration: params,
 * gradients, optimizer state (when some configuration has any beyond its
 * step counter), then the train arena split into residuals and the rest.
 */
#include "ir.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const font = "font-family=\"Helvetica, Arial, sans-serif\"";

/* A step of 1, 2 or 5 times a power of ten near `raw` (at least 1). */
static double nice_step(double raw) {
    if (raw <= 1)
        return 1;
    double p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* Byte axis: ticks of a nice step in the binary unit that suits `max`;
 * *unit_name "MiB" and so on. */
static double byte_ticks(int64_t max, double *unit, const char **unit_name) {
    static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    *unit = 1;
    while (u < 4 && (double)max / *unit >= 1024) {
        *unit *= 1024;
        u++;
    }
    *unit_name = names[u];
    return nice_step((double)max / *unit / 6) * *unit;
}

static void svg_begin(FILE *out, int w, int h) {
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" %s "
            "font-size=\"12\">\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            w, h, w, h, font, w, h);
}

static void svg_text(FILE *out, double x, double y, const char *anchor, const char *extra, const char *text) {
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s%s>", x, y, anchor, extra ? " " : "",
            extra ? extra : "");
    view_xml_string(out, text);
    fputs("</text>\n", out);
}

static void legend(FILE *out, double x, double y, const char *fill, const char *stroke, const char *text) {
    fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"%s\" stroke=\"%s\"/>\n", x, y - 11,
            fill, stroke);
    svg_text(out, x + 20, y, "start", NULL, text);
}

/* ---------------------------------------------------------------- the arena */

typedef enum { ROLE_ACT, ROLE_RESIDUAL, ROLE_SAVED, ROLE_GRAD, ROLE_SCRATCH, ROLE_WIDENED, ROLE_COUNT } arena_role;

static const struct {
    const char *fill, *stroke, *name;
} roles[ROLE_COUNT] = {
    [ROLE_ACT] = {"#92c5de", "#4a88ad", "activation (forward only)"},
    [ROLE_RESIDUAL] = {"#d6604d", "#8c2d1f", "residual: kept for backward"},
    [ROLE_SAVED] = {"#f4a582", "#c2704a", "saved, not across the turn"},
    [ROLE_GRAD] = {"#a6dba0", "#4f9a48", "gradient of an activation"},
    [ROLE_SCRATCH] = {"#d0d0d0", "#8c8c8c", "scratch of one step"},
    [ROLE_WIDENED] = {"#ededed", "#b4b4b4", "scratch grown into free space"},
};

static arena_role role_of(const ir_program *prog, const ir_buf *b) {
    if (view_is_residual(prog, b))
        return ROLE_RESIDUAL;
    switch (b->kind) {
    case BUF_SAVED: return ROLE_SAVED;
    case BUF_GRAD: return ROLE_GRAD;
    case BUF_SCRATCH: return b->bytes > b->planned_bytes ? ROLE_WIDENED : ROLE_SCRATCH;
    default: return ROLE_ACT;
    }
}

void view_plan_svg(const ir_module *m, FILE *out) {
    const ir_program *prog = &m->train;
    const int W = 1200, H = 720;
    const double x0 = 90, x1 = W - 250, y0 = 78, y1 = H - 62;
    int nsteps = prog->nsteps > 0 ? prog->nsteps : 1;
    int64_t top = prog->arena_bytes > 0 ? prog->arena_bytes : 1;
    double sx = (x1 - x0) / nsteps, sy = (y1 - y0) / (double)top;
#define X(t) (x0 + (t)*sx)
#define Y(bytes) (y1 - (double)(bytes)*sy)
    char b1[32], b2[32], b3[32];
    svg_begin(out, W, H);
    char *title = NULL;
    size_t len = 0;
    FILE *t = open_memstream(&title, &len);
    IR_ASSERT(t);
    fprintf(t, "%s, config %s: train arena %s, lower bound %s (ratio %.4f), residuals %s", m->graph->model,
            view_config_name(m), view_bytes(b1, prog->arena_bytes), view_bytes(b2, prog->lower_bound),
            prog->lower_bound > 0 ? (double)prog->arena_bytes / (double)prog->lower_bound : 1.0,
            view_bytes(b3, prog->residual_bytes));
    IR_ASSERT(fclose(t) == 0);
    svg_text(out, x0, 24, "start", "font-size=\"15\" font-weight=\"bold\"", title);
    free(title);
    svg_text(out, x0, 44, "start", "fill=\"#555\"",
             "each rectangle: one buffer, over the steps it is live and the arena bytes it occupies; "
             "line: bytes in use as planned");

    /* the buffers: storages (alias roots) that take space */
    fprintf(out, "<g stroke-width=\"0.4\">\n");
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->space != SPACE_ARENA || buf->alias_of >= 0 || buf->first < 0 || buf->bytes <= 0)
            continue;
        arena_role r = role_of(prog, buf);
        double h = (double)buf->bytes * sy;
        fprintf(out, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" stroke=\"%s\"><title>",
                X(buf->first), Y(buf->offset + buf->bytes), (buf->last - buf->first + 1) * sx, h < 0.5 ? 0.5 : h,
                roles[r].fill, roles[r].stroke);
        view_xml_string(out, buf->name);
        fprintf(out, ": %s, %s at offset %" PRId64 ", steps %d..%d%s</title></rect>\n", buf_kind_name(buf->kind),
                view_bytes(b1, buf->bytes), buf->offset, buf->first, buf->last,
                r == ROLE_RESIDUAL ? " (residual)" : "");
    }
    fprintf(out, "</g>\n");

    /* the plot's frame, the arena's top and the forward/backward turn */
    fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", x0, y0,
            x1 - x0, y1 - y0);
    if (prog->nsteps > prog->nfwd) {
        fprintf(out,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\" stroke-dasharray=\"6 4\"/>\n",
                X(prog->nfwd), y0 - 14, X(prog->nfwd), y1);
        svg_text(out, X(prog->nfwd) - 6, y0 - 4, "end", "font-weight=\"bold\"", "forward");
        svg_text(out, X(prog->nfwd) + 6, y0 - 4, "start", "font-weight=\"bold\"", "backward");
    }

    /* bytes in use per step: a step function whose peak is the lower bound */
    int64_t *load = view_step_load(prog);
    int peak = 0;
    fprintf(out, "<polyline fill=\"none\" stroke=\"#111\" stroke-width=\"1.6\" points=\"");
    for (int s = 0; s < prog->nsteps; s++) {
        fprintf(out, "%.2f,%.2f %.2f,%.2f ", X(s), Y(load[s]), X(s + 1), Y(load[s]));
        if (load[s] > load[peak])
            peak = s;
    }
    fprintf(out, "\"/>\n");
    if (prog->nsteps > 0) {
        double px = X(peak + 0.5), py = Y(load[peak]);
        fprintf(out, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" fill=\"#111\"/>\n", px, py);
        char label[96];
        snprintf(label, sizeof label, "lower bound %s at step %d", view_bytes(b1, load[peak]), peak);
        /* beside the peak, on whichever side has room */
        bool left = px > (x0 + x1) / 2;
        svg_text(out, px + (left ? -8 : 8), py < y0 + 30 ? py + 16 : py - 8, left ? "end" : "start",
                 "font-weight=\"bold\" fill=\"#111\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\"",
                 label);
    }
    free(load);

    /* axes */
    double unit;
    const char *unit_name;
    double ystep = byte_ticks(top, &unit, &unit_name);
    for (double v = 0; v <= (double)top * 1.0001; v += ystep) {
        char label[48];
        snprintf(label, sizeof label, "%g %s", v / unit, unit_name);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\" stroke=\"#333\"/>\n", x0 - 5, Y(v), x0,
                Y(v));
        svg_text(out, x0 - 8, Y(v) + 4, "end", NULL, label);
    }
    svg_text(out, x0 - 8, y0 + 4, "end", "font-weight=\"bold\"", view_bytes(b1, prog->arena_bytes));
    fprintf(out, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">arena offset</text>\n",
            (y0 + y1) / 2);
    double xstep = nice_step(nsteps / 12.0);
    for (double s = 0; s <= nsteps; s += xstep) {
        char label[24];
        snprintf(label, sizeof label, "%d", (int)s);
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" stroke=\"#333\"/>\n", X(s), y1, X(s),
                y1 + 5);
        svg_text(out, X(s), y1 + 18, "middle", NULL, label);
    }
    char xlabel[96];
    if (prog->nsteps > prog->nfwd)
        snprintf(xlabel, sizeof xlabel, "step (forward 0..%d, backward %d..%d; frost plan --steps lists them)",
                 prog->nfwd - 1, prog->nfwd, prog->nsteps - 1);
    else
        snprintf(xlabel, sizeof xlabel, "step (frost plan --steps lists them)");
    svg_text(out, (x0 + x1) / 2, y1 + 40, "middle", NULL, xlabel);

    /* legend */
    double ly = y0 + 10;
    for (int r = 0; r < ROLE_COUNT; r++, ly += 24)
        legend(out, x1 + 24, ly, roles[r].fill, roles[r].stroke, roles[r].name);
    fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#111\" stroke-width=\"1.6\"/>\n",
            x1 + 24, ly - 4, x1 + 38, ly - 4);
    svg_text(out, x1 + 44, ly, "start", NULL, "bytes in use as planned;");
    svg_text(out, x1 + 44, ly + 16, "start", NULL, "its peak is the lower bound");
    fputs("</svg>\n", out);
#undef X
#undef Y
}

/* ---------------------------------------------------------------- the configurations */

enum { SEG_PARAMS, SEG_GRADS, SEG_OPT, SEG_RESIDUALS, SEG_ARENA, SEG_COUNT };

static const struct {
    const char *fill, *name;
} segs[SEG_COUNT] = {
    [SEG_PARAMS] = {"#8da0cb", "params"},
    [SEG_GRADS] = {"#66c2a5", "grads"},
    [SEG_OPT] = {"#b3a2d6", "optimizer state"},
    [SEG_RESIDUALS] = {"#d6604d", "train arena: residuals"},
    [SEG_ARENA] = {"#92c5de", "train arena: the rest"},
};

static int64_t seg_bytes(const compare_row *r, int k) {
    switch (k) {
    case SEG_PARAMS: return r->params_bytes;
    case SEG_GRADS: return r->grads_bytes;
    case SEG_OPT: return r->opt_state_bytes;
    case SEG_RESIDUALS: return r->residual_bytes;
    default: return r->train_arena - r->residual_bytes;
    }
}

void view_compare_svg(const char *model, const compare_row *rows, int nrows, FILE *out) {
    /* optimizer state beyond its step counter (none when no row trains a parameter) */
    bool opt = false;
    size_t longest = 0;
    int64_t max = 1;
    for (int k = 0; k < nrows; k++) {
        opt |= rows[k].opt_state_bytes > IR_OPT_HEADER_BYTES;
        size_t n = strlen(rows[k].config) + (rows[k].has_batchnorm && rows[k].bn_eval ? 10 : 0);
        if (n > longest)
            longest = n;
    }
    int64_t *total = malloc(sizeof(int64_t) * (size_t)(nrows + 1));
    IR_ASSERT(total);
    for (int k = 0; k < nrows; k++) {
        total[k] = 0;
        for (int s = 0; s < SEG_COUNT; s++)
            total[k] += seg_bytes(&rows[k], s); /* frost compare's total, the step counter included */
        if (total[k] > max)
            max = total[k];
    }
    const double row_h = 30, bar_h = 20;
    const int W = 1000;
    double xl = 20 + 7.0 * (double)(longest < 48 ? longest : 48), xr = W - 110, y0 = 96;
    const int H = (int)(y0 + row_h * nrows + 34);
    double sx = (xr - xl) / (double)max;
    char b1[32];
    svg_begin(out, W, H);
    char title[256];
    snprintf(title, sizeof title, "%s: memory per freeze configuration", model);
    svg_text(out, 20, 24, "start", "font-size=\"15\" font-weight=\"bold\"", title);
    svg_text(out, 20, 44, "start", "fill=\"#555\"",
             opt ? "bar: params + grads + optimizer state + train arena (residuals in red): frost compare's total"
                 : "bar: params + grads + train arena (residuals in red); the total adds the optimizer's step count");
    double lx = 20;
    for (int s = 0; s < SEG_COUNT; s++) {
        if (s == SEG_OPT && !opt)
            continue;
        legend(out, lx, 70, segs[s].fill, "#555", segs[s].name);
        lx += 34 + 7.0 * (double)strlen(segs[s].name);
    }
    double unit;
    const char *unit_name;
    double step = byte_ticks(max, &unit, &unit_name);
    double yb = y0 + row_h * nrows;
    for (double v = 0; v <= (double)max * 1.0001; v += step) {
        char label[48];
        snprintf(label, sizeof label, "%g %s", v / unit, unit_name);
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", xl + v * sx, y0 - 4,
                xl + v * sx, yb);
        svg_text(out, xl + v * sx, yb + 16, "middle", "fill=\"#333\"", label);
    }
    for (int k = 0; k < nrows; k++) {
        const compare_row *r = &rows[k];
        double y = y0 + row_h * k + (row_h - bar_h) / 2, x = xl;
        char name[128];
        snprintf(name, sizeof name, "%s%s", r->config, r->has_batchnorm && r->bn_eval ? " (bn eval)" : "");
        svg_text(out, xl - 8, y + bar_h / 2 + 4, "end", NULL, name);
        for (int s = 0; s < SEG_COUNT; s++) {
            int64_t bytes = s == SEG_OPT && !opt ? 0 : seg_bytes(r, s);
            if (bytes <= 0)
                continue;
            double w = (double)bytes * sx;
            fprintf(out,
                    "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\" stroke=\"white\" "
                    "stroke-width=\"0.5\"><title>",
                    x, y, w, bar_h, segs[s].fill);
            view_xml_string(out, r->config);
            fprintf(out, ": %s %s</title></rect>\n", segs[s].name, view_bytes(b1, bytes));
            x += w;
        }
        svg_text(out, x + 6, y + bar_h / 2 + 4, "start", "font-weight=\"bold\"", view_bytes(b1, total[k]));
    }
    fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", xl, y0 - 4, xl, yb);
    fputs("</svg>\n", out);
    free(total);
}
