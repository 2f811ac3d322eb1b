/* compare.c: `frost compare`: one row per freeze configuration, so the memory
 * a fine-tuning recipe needs can be read off before any hardware is bought.
 *
 * "total" is what training holds at its peak: params + grads + optimizer
 * state + train arena, the four blocks a training caller allocates
 * (docs/abi.md). The ratios are against the row named
 * `all`, full training, or the first row when there is none (the headers say
 * which). */
#include "ir.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const compare_row *reference_row(const compare_row *rows, int nrows) {
    for (int k = 0; k < nrows; k++)
        if (strcmp(rows[k].config, "all") == 0)
            return &rows[k];
    return &rows[0];
}

static int64_t total_of(const compare_row *r) {
    return r->params_bytes + r->grads_bytes + r->opt_state_bytes + r->train_arena;
}

static double ratio(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 0.0; }

/* "train" or "eval": the mode of batch norm in the train program; "-" when
 * the model has none. */
static const char *bn_mode(const compare_row *r) { return !r->has_batchnorm ? "-" : r->bn_eval ? "eval" : "train"; }

enum {
    CC_CONFIG,
    CC_BN,
    CC_TRAINABLE,
    CC_GRADS,
    CC_OPT,
    CC_RESIDUALS,
    CC_TRAIN,
    CC_INFER,
    CC_BOUND,
    CC_RATIO,
    CC_TOTAL,
    CC_ARENA_REF,
    CC_TOTAL_REF,
    NCOLS
};

/* The config column's cell (malloc'd): quoted as RFC 4180 says in CSV when
 * it holds a comma, quote or newline (command-line patterns may), with `|`
 * escaped in markdown. */
static char *config_cell(const char *name, view_format fmt) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    IR_ASSERT(f);
    bool quote = fmt == FMT_CSV && strpbrk(name, ",\"\n");
    if (quote)
        fputc('"', f);
    for (const char *c = name; *c; c++) {
        if ((quote && *c == '"') || (fmt == FMT_MARKDOWN && *c == '|'))
            fputc(fmt == FMT_CSV ? '"' : '\\', f);
        fputc(*c, f);
    }
    if (quote)
        fputc('"', f);
    IR_ASSERT(fclose(f) == 0);
    return text;
}

/* The cell of row k, column c: the config column holds names of any length
 * (names[k]), the others numbers in 48 bytes each. */
#define CELL(k, c) ((c) == CC_CONFIG ? names[k] : cells + ((size_t)(k)*NCOLS + (size_t)(c)) * 48)

/* Aligned text, or a markdown table. */
static void compare_table(const char *model, int nrows, const compare_row *ref, view_format fmt, const char *cells,
                          char *const *names, FILE *out) {
    char *arena_ref = malloc(strlen(ref->config) + 16), *total_ref = malloc(strlen(ref->config) + 16);
    IR_ASSERT(arena_ref && total_ref);
    sprintf(arena_ref, "arena vs %s", ref->config);
    sprintf(total_ref, "total vs %s", ref->config);
    const char *heads[NCOLS] = {"config",    "batch norm",  "trainable params", "grads",       "optimizer",
                                "residuals", "train arena", "infer arena",      "lower bound", "arena/bound",
                                "total",     arena_ref,     total_ref};
    int width[NCOLS];
    for (int c = 0; c < NCOLS; c++) {
        width[c] = (int)strlen(heads[c]);
        for (int k = 0; k < nrows; k++)
            if ((int)strlen(CELL(k, c)) > width[c])
                width[c] = (int)strlen(CELL(k, c));
    }
    bool md = fmt == FMT_MARKDOWN;
    char pb[32];
    if (!md)
        fprintf(out, "model %s: memory per freeze configuration\n\n", model);
    for (int k = -1; k < nrows; k++) {
        for (int c = 0; c < NCOLS; c++) {
            const char *cell = k < 0 ? heads[c] : CELL(k, c);
            if (md)
                fprintf(out, c ? "| %*s " : "| %-*s ", width[c], cell);
            else
                fprintf(out, c ? "  %*s" : "%-*s", width[c], cell);
        }
        fprintf(out, md ? "|\n" : "\n");
        if (md && k < 0) {
            for (int c = 0; c < NCOLS; c++) {
                fprintf(out, "|%s", c ? "-" : ":");
                for (int i = 0; i < width[c]; i++)
                    fputc('-', out);
                fprintf(out, "%s", c ? ":" : "-");
            }
            fprintf(out, "|\n");
        }
    }
    fprintf(out,
            "\ntotal = params + grads + optimizer + train arena (params: %s in every row; optimizer: %s state);\n"
            "arena/bound = train arena / lower bound; batch norm: on batch statistics (train) or running ones\n"
            "(eval) in the train program, or - when there is none; the last two columns are relative to\n"
            "configuration '%s'.\n",
            view_bytes(pb, ref->params_bytes), ref->optimizer, ref->config);
    free(arena_ref);
    free(total_ref);
}

void view_compare(const char *model, const compare_row *rows, int nrows, view_format fmt, FILE *out) {
    if (nrows <= 0)
        return;
    if (fmt == FMT_SVG) {
        view_compare_svg(model, rows, nrows, out);
        return;
    }
    const compare_row *ref = reference_row(rows, nrows);
    if (fmt == FMT_JSON) {
        fprintf(out, "{\"model\": ");
        view_json_string(out, model);
        fprintf(out, ", \"reference\": ");
        view_json_string(out, ref->config);
        fprintf(out, ", \"params_bytes\": %" PRId64 ", \"optimizer\": \"%s\", \"configs\": [", ref->params_bytes,
                ref->optimizer);
        for (int k = 0; k < nrows; k++) {
            const compare_row *r = &rows[k];
            fprintf(out, "%s\n  {\"config\": ", k ? "," : "");
            view_json_string(out, r->config);
            fprintf(out, ", \"batchnorm\": ");
            if (r->has_batchnorm)
                view_json_string(out, bn_mode(r));
            else
                fputs("null", out);
            fprintf(out,
                    ", \"trainable_params\": %" PRId64 ", \"total_params\": %" PRId64 ", \"params_bytes\": %" PRId64
                    ", \"grads_bytes\": %" PRId64 ", \"opt_state_bytes\": %" PRId64 ", \"residual_bytes\": %" PRId64
                    ", \"train_arena_bytes\": %" PRId64 ", \"infer_arena_bytes\": %" PRId64
                    ", \"lower_bound\": %" PRId64 ", \"arena_over_bound\": %.6f, \"total_bytes\": %" PRId64
                    ", \"arena_vs_reference\": %.6f, \"total_vs_reference\": %.6f}",
                    r->trainable_params, r->total_params, r->params_bytes, r->grads_bytes, r->opt_state_bytes,
                    r->residual_bytes, r->train_arena, r->infer_arena, r->lower_bound,
                    ratio(r->train_arena, r->lower_bound), total_of(r), ratio(r->train_arena, ref->train_arena),
                    ratio(total_of(r), total_of(ref)));
        }
        fprintf(out, "\n]}\n");
        return;
    }
    /* Cells first, then printed aligned (text), piped (markdown) or comma
     * separated (csv: exact bytes, no units). */
    bool raw = fmt == FMT_CSV;
    char *cells = malloc((size_t)nrows * NCOLS * 48);
    char **names = calloc((size_t)nrows, sizeof *names);
    IR_ASSERT(cells && names);
    for (int k = 0; k < nrows; k++) {
        const compare_row *r = &rows[k];
        char b[32];
        names[k] = config_cell(r->config, fmt);
        snprintf(CELL(k, CC_BN), 48, "%s", bn_mode(r));
        snprintf(CELL(k, CC_TRAINABLE), 48, "%" PRId64, r->trainable_params);
        int64_t bytes[] = {r->grads_bytes, r->opt_state_bytes, r->residual_bytes,
                           r->train_arena, r->infer_arena,     r->lower_bound};
        for (int c = 0; c < 6; c++) {
            if (raw)
                snprintf(CELL(k, CC_GRADS + c), 48, "%" PRId64, bytes[c]);
            else
                snprintf(CELL(k, CC_GRADS + c), 48, "%s", view_bytes(b, bytes[c]));
        }
        snprintf(CELL(k, CC_RATIO), 48, "%.4f", ratio(r->train_arena, r->lower_bound));
        if (raw)
            snprintf(CELL(k, CC_TOTAL), 48, "%" PRId64, total_of(r));
        else
            snprintf(CELL(k, CC_TOTAL), 48, "%s", view_bytes(b, total_of(r)));
        snprintf(CELL(k, CC_ARENA_REF), 48, "%.3f", ratio(r->train_arena, ref->train_arena));
        snprintf(CELL(k, CC_TOTAL_REF), 48, "%.3f", ratio(total_of(r), total_of(ref)));
    }
    if (fmt == FMT_CSV) {
        fprintf(out, "config,batchnorm,trainable_params,grads_bytes,opt_state_bytes,residual_bytes,train_arena_bytes,"
                     "infer_arena_bytes,"
                     "lower_bound_bytes,arena_over_bound,total_bytes,arena_vs_reference,total_vs_reference\n");
        for (int k = 0; k < nrows; k++)
            for (int c = 0; c < NCOLS; c++)
                fprintf(out, "%s%c", CELL(k, c), c + 1 < NCOLS ? ',' : '\n');
    } else {
        compare_table(model, nrows, ref, fmt, cells, names, out);
    }
#undef CELL
    for (int k = 0; k < nrows; k++)
        free(names[k]);
    free(names);
    free(cells);
}
