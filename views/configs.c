/* configs.c: `frost configs`: the freeze configurations a model file offers,
 * before any is planned: what each trains (its patterns, and the parameters
 * they select), which inputs get gradients, the batch-norm mode, and which is
 * the default.
 *
 * mods[k] is the model under configuration k, after pass_config only (no
 * lowering: this view costs no planning), in config_names() order. */
#include "ir.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int tensors, trainable; /* parameter tensors (buffers are not parameters) */
    int64_t scalars, trainable_scalars;
} param_count;

static param_count count_params(const ir_graph *g) {
    param_count c = {0};
    for (int v = 0; v < g->nvals; v++) {
        if (g->vals[v].kind != VAL_PARAM)
            continue;
        int64_t n = shape_numel(&g->vals[v].shape);
        c.tensors++, c.scalars += n;
        if (g->vals[v].trainable)
            c.trainable++, c.trainable_scalars += n;
    }
    return c;
}

static bool has_batchnorm(const ir_graph *g) {
    const op_def *bn = op_find("batchnorm2d");
    for (int n = 0; n < g->nnodes; n++)
        if (&op_table[g->nodes[n].op] == bn)
            return true;
    return false;
}

/* The configuration's own patterns: the file's, or what the built-in all
 * and none mean (none: no pattern). */
static void patterns(const ir_module *m, const char *name, const char *const **train, int *ntrain,
                     const char *const **freeze, int *nfreeze) {
    static const char *const star[] = {"*"};
    if (m->config) {
        *train = m->config->train, *ntrain = m->config->ntrain;
        *freeze = m->config->freeze, *nfreeze = m->config->nfreeze;
    } else {
        *train = star, *ntrain = strcmp(name, "all") == 0;
        *freeze = NULL, *nfreeze = 0;
    }
}

/* "a b c" (malloc'd); `empty` when there are none. */
static char *join(const char *const *words, int n, const char *sep, const char *empty) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    IR_ASSERT(f);
    for (int k = 0; k < n; k++)
        fprintf(f, "%s%s", k ? sep : "", words[k]);
    if (!n)
        fputs(empty, f);
    IR_ASSERT(fclose(f) == 0);
    return text;
}

/* The inputs of m that get a gradient: the file's `input ... grad` and the
 * configuration's `grad` (malloc'd array of names). */
static const char **grad_inputs(const ir_graph *g, int *n) {
    const char **names = malloc(sizeof *names * (size_t)(g->nvals + 1));
    IR_ASSERT(names);
    *n = 0;
    for (int v = 0; v < g->nvals; v++)
        if (g->vals[v].kind == VAL_INPUT && g->vals[v].wants_grad)
            names[(*n)++] = g->vals[v].name;
    return names;
}

/* printf into a new string (malloc'd). */
static char *cell_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *cell_printf(const char *fmt, ...) {
    va_list ap, copy;
    va_start(ap, fmt);
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    IR_ASSERT(s);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

enum { CF_NAME, CF_FROM, CF_TRAIN, CF_FREEZE, CF_LORA, CF_PARAMS, CF_GRAD, CF_BN, NCOLS };

/* "fc* r=2 alpha=4 dropout=0.1 rslora; head r=8 alpha=16", malloc'd; "-" when none */
static char *lora_cell(const ir_config *c) {
    char *cell = cell_printf("-");
    for (int k = 0; c && k < c->nlora; k++) {
        const ir_lora *l = &c->lora[k];
        char *next = cell_printf("%s%s%s r=%" PRId64 " alpha=%g dropout=%g%s", k ? cell : "", k ? "; " : "", l->pattern,
                                 l->r, l->alpha, l->dropout, l->rslora ? " rslora" : "");
        free(cell);
        cell = next;
    }
    return cell;
}

static bool any_lora(const ir_module *const *mods, int n) {
    for (int k = 0; k < n; k++)
        if (mods[k]->config && mods[k]->config->nlora)
            return true;
    return false;
}

static void configs_text(const char *model, const ir_module *const *mods, const char *const *names, int n, int dflt,
                         FILE *out) {
    static const char *const heads[NCOLS] = {"config",           "from", "train",     "freeze", "lora",
                                             "trainable params", "grad", "batch norm"};
    bool lora = any_lora(mods, n); /* the lora column only where some configuration has adapters */
    char **cells = calloc((size_t)n * NCOLS, sizeof *cells);
    IR_ASSERT(cells);
    size_t width[NCOLS];
    for (int c = 0; c < NCOLS; c++)
        width[c] = strlen(heads[c]);
    bool bn = has_batchnorm(mods[0]->graph);
    for (int k = 0; k < n; k++) {
        const ir_module *m = mods[k];
        const char *const *train, *const *freeze;
        int ntrain, nfreeze, ngrad;
        patterns(m, names[k], &train, &ntrain, &freeze, &nfreeze);
        param_count pc = count_params(m->graph);
        const char **grads = grad_inputs(m->graph, &ngrad);
        char **row = cells + (size_t)k * NCOLS;
        row[CF_NAME] = cell_printf("%s", names[k]);
        row[CF_FROM] = m->config ? cell_printf("line %d", m->config->loc.line) : cell_printf("built in");
        row[CF_TRAIN] = join(train, ntrain, " ", "none");
        row[CF_FREEZE] = join(freeze, nfreeze, " ", "-");
        row[CF_LORA] = lora_cell(m->config);
        row[CF_PARAMS] = cell_printf("%d of %d (%" PRId64 " of %" PRId64 " scalars)", pc.trainable, pc.tensors,
                                     pc.trainable_scalars, pc.scalars);
        row[CF_GRAD] = join(grads, ngrad, ", ", "-");
        row[CF_BN] = cell_printf("%s", !bn ? "-" : m->bn_eval ? "eval" : "train");
        free(grads);
        for (int c = 0; c < NCOLS; c++)
            if (strlen(row[c]) > width[c])
                width[c] = strlen(row[c]);
    }
    fprintf(out, "model %s: %d configurations, the default marked *\n\n", model, n);
    for (int k = -1; k < n; k++) {
        fputs(k >= 0 && k == dflt ? "* " : "  ", out);
        for (int c = 0; c < NCOLS; c++) {
            if (c == CF_LORA && !lora)
                continue;
            const char *cell = k < 0 ? heads[c] : cells[(size_t)k * NCOLS + (size_t)c];
            if (c + 1 == NCOLS)
                fprintf(out, "%s\n", cell);
            else
                fprintf(out, "%-*s  ", (int)width[c], cell);
        }
    }
    fprintf(out, "\ntrainable params: parameter tensors (and scalars) the configuration trains; grad: inputs\n"
                 "that get d loss / d input; batch norm: on batch statistics (train) or running ones\n"
                 "(eval) in the train program, - when the model has none. all and none are built in\n"
                 "unless the file defines them.\n");
    for (size_t k = 0; k < (size_t)n * NCOLS; k++)
        free(cells[k]);
    free(cells);
}

static void json_strings(FILE *out, const char *const *s, int n) {
    fputc('[', out);
    for (int k = 0; k < n; k++) {
        if (k)
            fputs(", ", out);
        view_json_string(out, s[k]);
    }
    fputc(']', out);
}

static void configs_json(const char *model, const ir_module *const *mods, const char *const *names, int n, int dflt,
                         FILE *out) {
    bool bn = has_batchnorm(mods[0]->graph);
    fputs("{\"model\": ", out);
    view_json_string(out, model);
    fputs(", \"default\": ", out);
    view_json_string(out, names[dflt]);
    fputs(", \"configs\": [", out);
    for (int k = 0; k < n; k++) {
        const ir_module *m = mods[k];
        const ir_graph *g = m->graph;
        const char *const *train, *const *freeze;
        int ntrain, nfreeze, ngrad;
        patterns(m, names[k], &train, &ntrain, &freeze, &nfreeze);
        param_count pc = count_params(g);
        const char **grads = grad_inputs(g, &ngrad);
        fprintf(out, "%s\n  {\"name\": ", k ? "," : "");
        view_json_string(out, names[k]);
        fprintf(out, ", \"default\": %s, \"builtin\": %s", k == dflt ? "true" : "false", m->config ? "false" : "true");
        if (m->config)
            fprintf(out, ", \"line\": %d", m->config->loc.line);
        fputs(", \"train\": ", out);
        json_strings(out, train, ntrain);
        fputs(", \"freeze\": ", out);
        json_strings(out, freeze, nfreeze);
        fputs(", \"lora\": [", out);
        for (int l = 0; m->config && l < m->config->nlora; l++) {
            const ir_lora *a = &m->config->lora[l];
            fputs(l ? ", {\"pattern\": " : "{\"pattern\": ", out);
            view_json_string(out, a->pattern);
            fprintf(out, ", \"r\": %" PRId64 ", \"alpha\": %.17g, \"dropout\": %.17g, \"rslora\": %s}", a->r, a->alpha,
                    a->dropout, a->rslora ? "true" : "false");
        }
        fputs("]", out);
        fputs(", \"grad\": ", out);
        json_strings(out, grads, ngrad);
        fprintf(out, ", \"batchnorm\": %s", !bn ? "null" : m->bn_eval ? "\"eval\"" : "\"train\"");
        fprintf(out,
                ",\n   \"trainable_tensors\": %d, \"total_tensors\": %d, \"trainable_params\": %" PRId64
                ", \"total_params\": %" PRId64 ",\n   \"trainable\": [",
                pc.trainable, pc.tensors, pc.trainable_scalars, pc.scalars);
        for (int v = 0, i = 0; v < g->nvals; v++)
            if (g->vals[v].kind == VAL_PARAM && g->vals[v].trainable) {
                fputs(i++ ? ", " : "", out);
                view_json_string(out, g->vals[v].name);
            }
        fputs("]}", out);
        free(grads);
    }
    fputs("\n]}\n", out);
}

void view_configs(const ir_module *const *mods, const char *const *names, int n, int dflt, view_format fmt, FILE *out) {
    IR_ASSERT(n > 0 && dflt >= 0 && dflt < n);
    const char *model = mods[0]->graph->model;
    if (fmt == FMT_JSON)
        configs_json(model, mods, names, n, dflt, out);
    else
        configs_text(model, mods, names, n, dflt, out);
}
