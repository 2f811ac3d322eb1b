/* compare.c: `frost compare`: one row per freeze configuration, so the memory
 * a fine-tuning recipe needs can be read off before any hardware is bought.
 *
 * "total" is what training holds at its peak: params + grads + train arena
 * (optimizer state is not part of v1). The ratios are against the row named
 * `all`, full training. */
#include "ir.h"

#include <inttypes.h>
#include <string.h>

static const compare_row *reference_row(const compare_row *rows, int nrows) {
    for (int k = 0; k < nrows; k++)
        if (strcmp(rows[k].config, "all") == 0)
            return &rows[k];
    return &rows[0];
}

static int64_t total_of(const compare_row *r) { return r->params_bytes + r->grads_bytes + r->train_arena; }

static double ratio(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 0.0; }

void view_compare(const char *model, const compare_row *rows, int nrows, view_format fmt, FILE *out) {
    const compare_row *ref = reference_row(rows, nrows);
    static const char *heads[] = {"config", "trainable", "grads", "residuals", "train arena", "infer arena",
                                  "lower bound", "arena/bound", "total", "arena vs all", "total vs all"};
    enum { NCOLS = 11 };
    if (fmt == FMT_JSON) {
        fprintf(out, "{\"model\": \"%s\", \"reference\": \"%s\", \"configs\": [", model, ref->config);
        for (int k = 0; k < nrows; k++) {
            const compare_row *r = &rows[k];
            fprintf(out,
                    "%s\n  {\"config\": \"%s\", \"trainable_params\": %" PRId64 ", \"total_params\": %" PRId64
                    ", \"params_bytes\": %" PRId64 ", \"grads_bytes\": %" PRId64 ", \"residual_bytes\": %" PRId64
                    ", \"train_arena_bytes\": %" PRId64 ", \"infer_arena_bytes\": %" PRId64
                    ", \"lower_bound\": %" PRId64 ", \"arena_over_bound\": %.6f, \"total_bytes\": %" PRId64
                    ", \"arena_vs_all\": %.6f, \"total_vs_all\": %.6f}",
                    k ? "," : "", r->config, r->trainable_params, r->total_params, r->params_bytes, r->grads_bytes,
                    r->residual_bytes, r->train_arena, r->infer_arena, r->lower_bound,
                    ratio(r->train_arena, r->lower_bound), total_of(r), ratio(r->train_arena, ref->train_arena),
                    ratio(total_of(r), total_of(ref)));
        }
        fprintf(out, "\n]}\n");
        return;
    }
    /* Cells first, then print aligned (text), piped (markdown) or comma separated. */
    char cells[64][NCOLS][40];
    if (nrows > 64)
        nrows = 64;
    for (int k = 0; k < nrows; k++) {
        const compare_row *r = &rows[k];
        bool raw = fmt == FMT_CSV;
        char b[32];
        snprintf(cells[k][0], 40, "%s", r->config);
        snprintf(cells[k][1], 40, "%" PRId64, r->trainable_params);
        int64_t bytes[] = {r->grads_bytes, r->residual_bytes, r->train_arena, r->infer_arena, r->lower_bound};
        for (int c = 0; c < 5; c++)
            snprintf(cells[k][2 + c], 40, "%s", raw ? (snprintf(b, 32, "%" PRId64, bytes[c]), b) : view_bytes(b, bytes[c]));
        snprintf(cells[k][7], 40, "%.4f", ratio(r->train_arena, r->lower_bound));
        snprintf(cells[k][8], 40, "%s", raw ? (snprintf(b, 32, "%" PRId64, total_of(r)), b) : view_bytes(b, total_of(r)));
        snprintf(cells[k][9], 40, "%.3f", ratio(r->train_arena, ref->train_arena));
        snprintf(cells[k][10], 40, "%.3f", ratio(total_of(r), total_of(ref)));
    }
    if (fmt == FMT_CSV) {
        fprintf(out, "config,trainable_params,grads_bytes,residual_bytes,train_arena_bytes,infer_arena_bytes,"
                     "lower_bound_bytes,arena_over_bound,total_bytes,arena_vs_all,total_vs_all\n");
        for (int k = 0; k < nrows; k++)
            for (int c = 0; c < NCOLS; c++)
                fprintf(out, "%s%c", cells[k][c], c + 1 < NCOLS ? ',' : '\n');
        return;
    }
    int width[NCOLS];
    for (int c = 0; c < NCOLS; c++) {
        width[c] = (int)strlen(heads[c]);
        for (int k = 0; k < nrows; k++)
            if ((int)strlen(cells[k][c]) > width[c])
                width[c] = (int)strlen(cells[k][c]);
    }
    bool md = fmt == FMT_MARKDOWN;
    if (!md)
        fprintf(out, "model %s: memory per freeze configuration (ratios against '%s')\n\n", model, ref->config);
    for (int c = 0; c < NCOLS; c++)
        fprintf(out, md ? "| %-*s " : (c ? "  %*s" : "%-*s"), width[c], heads[c]);
    fprintf(out, md ? "|\n" : "\n");
    if (md) {
        for (int c = 0; c < NCOLS; c++) {
            fprintf(out, "|%s", c ? "-" : ":");
            for (int k = 0; k < width[c]; k++)
                fputc('-', out);
            fprintf(out, "%s", c ? ":" : "-");
        }
        fprintf(out, "|\n");
    }
    for (int k = 0; k < nrows; k++) {
        for (int c = 0; c < NCOLS; c++)
            fprintf(out, md ? (c ? "| %*s " : "| %-*s ") : (c ? "  %*s" : "%-*s"), width[c], cells[k][c]);
        fprintf(out, md ? "|\n" : "\n");
    }
    if (!md)
        fprintf(out, "\ntotal = params + grads + train arena; params are %s in every row\n",
                view_bytes((char[32]){0}, ref->params_bytes));
}
