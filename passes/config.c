/* config.c: which params are trainable and which inputs want a gradient.
 *
 * The base is the configuration named with --config, else the file's
 * `default`, else everything trainable (or nothing, when --train patterns are
 * given: then exactly what they name). `all` and `none` always exist unless the
 * file defines configurations of those names. Command-line --train/--freeze
 * patterns then add and remove, --grad adds inputs.
 *
 * A pattern that matches no parameter is an error, in every configuration of
 * the file and on the command line: a typo would otherwise silently freeze (or
 * train) the wrong set, and memory figures would look plausible.
 */
#include "ir.h"

#include <string.h>

/* Shell-style glob: * any run (dots included), ? one character, [abc] [a-z] [!x] a set. */
bool glob_match(const char *pat, const char *s) {
    const char *star_pat = NULL, *star_s = NULL;
    while (*s) {
        if (*pat == '*') {
            star_pat = ++pat;
            star_s = s;
            continue;
        }
        bool ok = false;
        const char *next = pat + 1;
        if (*pat == '?') {
            ok = true;
        } else if (*pat == '[') {
            const char *q = pat + 1;
            bool negate = *q == '!' || *q == '^';
            q += negate;
            bool hit = false;
            for (bool first = true; *q && (first || *q != ']'); first = false, q++) {
                if (q[1] == '-' && q[2] && q[2] != ']') {
                    hit |= *s >= q[0] && *s <= q[2];
                    q += 2;
                } else {
                    hit |= *s == *q;
                }
            }
            if (*q == ']') {
                ok = hit != negate;
                next = q + 1;
            } else {
                ok = *s == '['; /* unterminated set: a literal '[' */
            }
        } else {
            ok = *pat == *s;
        }
        if (ok && *pat) {
            pat = next;
            s++;
        } else if (star_pat) {
            pat = star_pat;
            s = ++star_s;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static bool matches_some_param(const ir_graph *g, const char *pattern) {
    for (int v = 0; v < g->nvals; v++)
        if (g->vals[v].kind == VAL_PARAM && glob_match(pattern, g->vals[v].name))
            return true;
    return false;
}

static void set_trainable(ir_graph *g, const char *pattern, bool trainable) {
    for (int v = 0; v < g->nvals; v++)
        if (g->vals[v].kind == VAL_PARAM && glob_match(pattern, g->vals[v].name))
            g->vals[v].trainable = trainable;
}

static src_loc loc_at(const src_loc *locs, int k, src_loc fallback) { return locs ? locs[k] : fallback; }

static bool check_patterns(const ir_graph *g, const ir_config *c, diag_ctx *d) {
    bool ok = true;
    for (int k = 0; k < c->ntrain && !d->stopped; k++)
        if (!matches_some_param(g, c->train[k])) {
            diag_error(d, loc_at(c->train_loc, k, c->loc), "pattern '%s' in config '%s' matches no parameter",
                       c->train[k], c->name);
            ok = false;
        }
    for (int k = 0; k < c->nfreeze && !d->stopped; k++)
        if (!matches_some_param(g, c->freeze[k])) {
            diag_error(d, loc_at(c->freeze_loc, k, c->loc), "pattern '%s' in config '%s' matches no parameter",
                       c->freeze[k], c->name);
            ok = false;
        }
    for (int k = 0; k < c->ngrad && !d->stopped; k++) {
        int v = ir_find_value(g, c->grad[k]);
        if (v < 0 || g->vals[v].kind != VAL_INPUT) {
            diag_error(d, loc_at(c->grad_loc, k, c->loc), "'grad %s' in config '%s': no input of that name", c->grad[k],
                       c->name);
            ok = false;
        } else if (g->vals[v].dtype != DT_F32) {
            diag_error(d, loc_at(c->grad_loc, k, c->loc),
                       "'grad %s' in config '%s': the input is %s; only f32 inputs have gradients", c->grad[k], c->name,
                       dtype_name(g->vals[v].dtype));
            ok = false;
        }
    }
    return ok;
}

static bool set_input_grad(ir_graph *g, const char *name, diag_ctx *d) {
    int v = ir_find_value(g, name);
    if (v < 0 || g->vals[v].kind != VAL_INPUT) {
        diag_error(d, (src_loc){0, 0}, "--grad %s: no input of that name", name);
        return false;
    }
    if (g->vals[v].dtype != DT_F32) {
        diag_error(d, (src_loc){0, 0}, "--grad %s: the input is %s; only f32 inputs have gradients", name,
                   dtype_name(g->vals[v].dtype));
        return false;
    }
    g->vals[v].wants_grad = true;
    return true;
}

const char **config_names(const ir_graph *g, int *n) {
    const char **names = pool_alloc(g->pool, sizeof *names * (size_t)(g->nconfigs + 2));
    *n = 0;
    names[(*n)++] = "all";
    for (int k = 0; k < g->nconfigs; k++)
        if (strcmp(g->configs[k].name, "all") != 0 && strcmp(g->configs[k].name, "none") != 0)
            names[(*n)++] = g->configs[k].name;
    names[(*n)++] = "none";
    return names;
}

/* "head", "head + --train fc1.* + --batchnorm-eval": a configuration and
 * what the command line changed in it, so that it is not taken for the
 * file's own. */
static const char *describe(pool *p, const char *config, const frost_select *sel) {
    const char *desc = config;
    for (int k = 0; k < sel->ntrain; k++)
        desc = pool_printf(p, "%s + --train %s", desc, sel->train[k]);
    for (int k = 0; k < sel->nfreeze; k++)
        desc = pool_printf(p, "%s + --freeze %s", desc, sel->freeze[k]);
    for (int k = 0; k < sel->ngrad; k++)
        desc = pool_printf(p, "%s + --grad %s", desc, sel->grad[k]);
    if (sel->bn_eval)
        desc = pool_printf(p, "%s + --batchnorm-eval", desc);
    return desc;
}

bool pass_config(ir_module *m, const frost_select *sel, diag_ctx *d) {
    ir_graph *g = m->graph;
    bool ok = true;
    for (int k = 0; k < g->nconfigs && !d->stopped; k++)
        ok &= check_patterns(g, &g->configs[k], d);

    const ir_config *chosen = NULL;
    bool base_all;
    /* --config NAME, else a `default all` / `default none` of the file */
    const char *named = sel->config ? sel->config : g->default_config < 0 ? g->default_builtin : NULL;
    if (named) {
        for (int k = 0; k < g->nconfigs; k++)
            if (strcmp(g->configs[k].name, named) == 0)
                chosen = &g->configs[k];
        if (!chosen && strcmp(named, "all") != 0 && strcmp(named, "none") != 0) {
            int n = 0;
            const char **names = config_names(g, &n);
            const char *list = names[0];
            for (int k = 1; k < n; k++)
                list = pool_printf(g->pool, "%s, %s", list, names[k]);
            diag_error(d, (src_loc){0, 0}, "no configuration named '%s' (known: %s)%s", named, list,
                       diag_suggest(g->pool, named, names, n));
            return false;
        }
        base_all = !chosen && strcmp(named, "all") == 0;
    } else if (g->default_config >= 0) {
        chosen = &g->configs[g->default_config];
        base_all = false;
    } else {
        base_all = sel->ntrain == 0;
    }

    for (int v = 0; v < g->nvals; v++)
        if (g->vals[v].kind == VAL_PARAM)
            g->vals[v].trainable = base_all;
    if (chosen) {
        for (int k = 0; k < chosen->ntrain; k++)
            set_trainable(g, chosen->train[k], true);
        for (int k = 0; k < chosen->nfreeze; k++)
            set_trainable(g, chosen->freeze[k], false);
        for (int k = 0; k < chosen->ngrad; k++) {
            int v = ir_find_value(g, chosen->grad[k]);
            if (v >= 0 && g->vals[v].kind == VAL_INPUT)
                g->vals[v].wants_grad = true;
        }
    }
    for (int k = 0; k < sel->ntrain; k++) {
        if (!matches_some_param(g, sel->train[k])) {
            diag_error(d, (src_loc){0, 0}, "--train pattern '%s' matches no parameter", sel->train[k]);
            ok = false;
        }
        set_trainable(g, sel->train[k], true);
    }
    for (int k = 0; k < sel->nfreeze; k++) {
        if (!matches_some_param(g, sel->freeze[k])) {
            diag_error(d, (src_loc){0, 0}, "--freeze pattern '%s' matches no parameter", sel->freeze[k]);
            ok = false;
        }
        set_trainable(g, sel->freeze[k], false);
    }
    for (int k = 0; k < sel->ngrad; k++)
        ok &= set_input_grad(g, sel->grad[k], d);
    m->config = chosen;
    /* without a configuration, everything trains, or only what --train names */
    m->config_desc = describe(g->pool, chosen ? chosen->name : named ? named : base_all ? "all" : "none", sel);
    /* batch-norm mode: the chosen config's (elab.c filled in the model's
     * default where it says nothing), else the model's `batchnorm` statement;
     * --batchnorm-eval makes it eval in any case */
    m->bn_eval = (chosen ? chosen->bn_eval : g->bn_eval) || sel->bn_eval;
    /* --infer-only: only P_infer is built, and it does not depend on what
     * trains; --checked: guard gaps and checks (guard.c, codegen) */
    m->infer_only = sel->infer_only;
    m->checked = sel->checked;
    if (m->infer_only)
        for (int v = 0; v < g->nvals; v++)
            g->vals[v].trainable = g->vals[v].wants_grad = false;
    return ok;
}
