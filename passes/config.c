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

/* ------------------------------------------------------------ lora items */

/* index of the op of that name in op_table */
static int op_index(const char *name) {
    const op_def *op = op_find(name);
    IR_ASSERT(op);
    return (int)(op - op_table);
}

/* The lora item of c (if any) whose pattern names linear node n; -1 if none. */
static int lora_of(const ir_config *c, const ir_node *n) {
    if (n->op != op_index("linear"))
        return -1;
    for (int k = 0; k < c->nlora; k++)
        if (glob_match(c->lora[k].pattern, n->name))
            return k;
    return -1;
}

/* A train or freeze pattern of c may name the adapters c's lora items add. */
static bool matches_lora_param(const ir_graph *g, const ir_config *c, const char *pattern) {
    for (int ni = 0; ni < g->nnodes; ni++)
        if (lora_of(c, &g->nodes[ni]) >= 0) {
            const char *layer = g->nodes[ni].name;
            char a[512], b[512];
            snprintf(a, sizeof a, "%s.lora_A.weight", layer);
            snprintf(b, sizeof b, "%s.lora_B.weight", layer);
            if (glob_match(pattern, a) || glob_match(pattern, b))
                return true;
        }
    return false;
}

static bool check_lora(const ir_graph *g, const ir_config *c, diag_ctx *d) {
    int linear = op_index("linear");
    bool ok = true;
    for (int k = 0; k < c->nlora && !d->stopped; k++) {
        int hits = 0;
        for (int ni = 0; ni < g->nnodes; ni++) {
            const ir_node *n = &g->nodes[ni];
            if (n->op != linear || !glob_match(c->lora[k].pattern, n->name))
                continue;
            hits++;
            for (int s = 0; s < 2; s++) {
                const char *name = pool_printf(g->pool, "%s.lora_%c.weight", n->name, s ? 'B' : 'A');
                if (ir_find_value(g, name) >= 0) {
                    diag_error(d, c->lora[k].loc, "'lora %s' in config '%s' would add '%s', a name the model uses",
                               c->lora[k].pattern, c->name, name);
                    ok = false;
                }
            }
            int first = lora_of(c, n);
            if (first != k) {
                diag_error(d, c->lora[k].loc, "layer '%s' in config '%s' gets a second adapter from 'lora %s'", n->name,
                           c->name, c->lora[k].pattern);
                diag_note(d, c->lora[first].loc, "its first adapter comes from 'lora %s'", c->lora[first].pattern);
                ok = false;
            }
        }
        if (hits == 0) {
            diag_error(d, c->lora[k].loc, "pattern '%s' of 'lora' in config '%s' matches no linear layer",
                       c->lora[k].pattern, c->name);
            ok = false;
        }
    }
    return ok;
}

/* Each linear layer a lora item of c names becomes a lora_linear one
 * (ir_lora_adapt, in the lora_linear section of ops.c). */
static void apply_lora(ir_graph *g, const ir_config *c) {
    for (int ni = 0; ni < g->nnodes; ni++) {
        int k = lora_of(c, &g->nodes[ni]);
        if (k >= 0)
            ir_lora_adapt(g, &g->nodes[ni], &c->lora[k]);
    }
}

static bool check_patterns(const ir_graph *g, const ir_config *c, diag_ctx *d) {
    bool ok = check_lora(g, c, d);
    for (int k = 0; k < c->ntrain && !d->stopped; k++)
        if (!matches_some_param(g, c->train[k]) && !matches_lora_param(g, c, c->train[k])) {
            diag_error(d, loc_at(c->train_loc, k, c->loc), "pattern '%s' in config '%s' matches no parameter",
                       c->train[k], c->name);
            ok = false;
        }
    for (int k = 0; k < c->nfreeze && !d->stopped; k++)
        if (!matches_some_param(g, c->freeze[k]) && !matches_lora_param(g, c, c->freeze[k])) {
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

    int nbase = g->nvals;
    if (chosen)
        apply_lora(g, chosen);
    for (int v = 0; v < g->nvals; v++)
        if (g->vals[v].kind == VAL_PARAM)
            g->vals[v].trainable = base_all || v >= nbase; /* the adapters train unless frozen below */
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
