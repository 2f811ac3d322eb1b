/* training.c: the statements that say how the graph is trained rather than
 * what it computes: `output` (the first output is the loss), `config` and
 * `default` (the freeze configurations), `optimizer`. Top level only; they
 * fill g->outputs, g->configs, g->default_config and g->optimizer.
 */
#include "elab.h"

#include <string.h>

/* ---------------------------------------------------------------- outputs, configs */

void elab_output(elab_ctx *e, const ast_stmt *st) {
    ir_graph *g = e->g;
    for (int k = 0; k < st->nnames && !halted(e); k++) {
        bool loss = !e->loss_named;
        e->loss_named = true;
        sym *s = elab_lookup(e, st->names[k], st->name_locs[k]);
        if (!s)
            continue;
        if (s->v.kind != CV_TENSOR) {
            err(e, st->name_locs[k], "output '%s' must be a tensor, but it is %s", st->names[k], eval_sym_text(s));
            continue;
        }
        int v = (int)s->v.i;
        const ir_value *val = &g->vals[v];
        if (val->kind != VAL_ACT) {
            err(e, st->name_locs[k], "output '%s' is %s; outputs must be computed by a binding", st->names[k],
                val->kind == VAL_INPUT ? "an input" : "a parameter");
            continue;
        }
        if (map_find(&e->output_ids, val->name) >= 0) {
            err(e, st->name_locs[k], "'%s' is already an output", st->names[k]);
            continue;
        }
        if (g->noutputs == 0) {
            if (!loss)
                continue; /* the loss failed, and said why: this output is not the loss */
            bool scalar = true;
            for (int i = 0; i < val->shape.rank; i++)
                scalar &= val->shape.dim[i] == 1;
            if (!scalar || val->dtype != DT_F32) {
                err(e, st->name_locs[k], "the first output is the loss and must be a scalar f32, but '%s' is %s%s",
                    val->name, dtype_name(val->dtype), shape_str(e->pool, &val->shape));
                continue;
            }
        }
        map_put(e->pool, &e->output_ids, val->name, g->noutputs);
        *VEC_PUSH(g->pool, g->outputs, g->noutputs, g->capoutputs) = v;
    }
}

void elab_config(elab_ctx *e, const ast_stmt *st) {
    ir_graph *g = e->g;
    int prev = map_find(&e->config_ids, st->name);
    if (prev >= 0) {
        err(e, st->name_loc, "redefinition of config '%s'", st->name);
        note(e, g->configs[prev].loc, "previous definition of '%s' is here", st->name);
        return;
    }
    ir_config c = {.name = st->name, .loc = st->name_loc};
    int ntrain = 0, nfreeze = 0, ngrad = 0;
    for (int k = 0; k < st->nitems; k++) {
        ast_cfg_kind kind = st->items[k].kind;
        ntrain += kind == CFG_TRAIN, nfreeze += kind == CFG_FREEZE, ngrad += kind == CFG_GRAD;
    }
    c.train = pool_alloc(e->pool, sizeof *c.train * (size_t)(ntrain + 1));
    c.train_loc = pool_alloc(e->pool, sizeof *c.train_loc * (size_t)(ntrain + 1));
    c.freeze = pool_alloc(e->pool, sizeof *c.freeze * (size_t)(nfreeze + 1));
    c.freeze_loc = pool_alloc(e->pool, sizeof *c.freeze_loc * (size_t)(nfreeze + 1));
    c.grad = pool_alloc(e->pool, sizeof *c.grad * (size_t)(ngrad + 1));
    c.grad_loc = pool_alloc(e->pool, sizeof *c.grad_loc * (size_t)(ngrad + 1));
    const ast_cfg_item *none = NULL;
    for (int k = 0; k < st->nitems; k++) {
        const ast_cfg_item *it = &st->items[k];
        switch (it->kind) {
        case CFG_TRAIN:
            if (strcmp(it->word, "none") == 0) {
                none = it;
                break;
            }
            c.train_loc[c.ntrain] = it->loc;
            c.train[c.ntrain++] = it->word;
            break;
        case CFG_FREEZE:
            c.freeze_loc[c.nfreeze] = it->loc;
            c.freeze[c.nfreeze++] = it->word;
            break;
        case CFG_GRAD:
            c.grad_loc[c.ngrad] = it->loc;
            c.grad[c.ngrad++] = it->word;
            break;
        case CFG_BATCHNORM:
            if (c.bn_eval_loc.line > 0) {
                err(e, it->loc, "config '%s' sets 'batchnorm' twice", st->name);
                note(e, c.bn_eval_loc, "first set here");
                break;
            }
            c.bn_eval = strcmp(it->word, "eval") == 0;
            c.bn_eval_loc = it->loc;
            break;
        }
    }
    if (none && c.ntrain > 0)
        err(e, none->loc, "'train none' in config '%s' contradicts its other train patterns", st->name);
    map_put(e->pool, &e->config_ids, st->name, g->nconfigs);
    *VEC_PUSH(g->pool, g->configs, g->nconfigs, g->capconfigs) = c;
}

void elab_default(elab_ctx *e, const ast_stmt *st) {
    ir_graph *g = e->g;
    g->default_config = map_find(&e->config_ids, st->name);
    if (g->default_config >= 0)
        return;
    if (strcmp(st->name, "all") == 0 || strcmp(st->name, "none") == 0) { /* always there */
        g->default_builtin = st->name;
        return;
    }
    const char **names = pool_alloc(e->pool, sizeof *names * (size_t)(g->nconfigs + 1));
    for (int k = 0; k < g->nconfigs; k++)
        names[k] = g->configs[k].name;
    err(e, st->name_loc, "no config named '%s'%s", st->name, suggest(e, st->name, names, g->nconfigs));
}

/* ---------------------------------------------------------------- optimizer */

/* The names in opt_keys()' "lr, momentum, ..." list, for suggestions. */
static int key_list(elab_ctx *e, ir_opt_kind kind, const char **keys, int max) {
    int n = 0;
    for (const char *s = opt_keys(kind); *s && n < max;) {
        size_t len = strcspn(s, ", ");
        if (len)
            keys[n++] = pool_strndup(e->pool, s, len);
        s += len;
        s += strspn(s, ", ");
    }
    return n;
}

/* Where opt_check's message points: the argument named by its first word
 * ("momentum must be in [0, 1)"), else an argument it names further on
 * ("beta1 and beta2 ...", the later given first), else the optimizer's name. */
static src_loc check_loc(const ast_stmt *st, const char *msg) {
    for (int pass = 0; pass < 2; pass++)
        for (int k = st->nargs - 1; k >= 0; k--) {
            const char *key = st->args[k].name;
            size_t len = key ? strlen(key) : 0;
            if (!len)
                continue;
            if (pass == 0 && strncmp(msg, key, len) == 0 && msg[len] == ' ')
                return st->args[k].loc;
            for (const char *hit = strstr(msg, key); pass == 1 && hit; hit = strstr(hit + 1, key))
                if ((hit == msg || hit[-1] == ' ') && (hit[len] == ' ' || hit[len] == '\0'))
                    return st->args[k].loc;
        }
    return st->op_loc;
}

/* optimizer NAME(KEY=VALUE, ...): PyTorch's defaults for NAME (passes/optim.c),
 * then the given hyper-parameters, checked together. */
void elab_optimizer(elab_ctx *e, const ast_stmt *st) {
    ir_optimizer o;
    if (!opt_init(&o, st->op)) {
        err(e, st->op_loc, "%s", opt_unknown(e->pool, st->op));
        return;
    }
    bool ok = true;
    for (int k = 0; k < st->nargs && !halted(e); k++) {
        const ast_arg *a = &st->args[k];
        if (!a->name) {
            err(e, a->loc, "hyper-parameters of optimizer %s are given by name, as in %s(lr=0.1) (it has %s)", st->op,
                st->op, opt_keys(o.kind));
            ok = false;
            continue;
        }
        const ast_arg *first = NULL;
        for (int j = 0; j < k && !first; j++)
            if (st->args[j].name && strcmp(st->args[j].name, a->name) == 0)
                first = &st->args[j];
        if (first) {
            err(e, a->loc, "hyper-parameter '%s' of optimizer %s is given twice", a->name, st->op);
            note(e, first->loc, "first given here");
            ok = false;
            continue;
        }
        ir_optimizer probe = o;
        if (!opt_set(&probe, a->name, 0)) {
            const char *keys[16];
            int nkeys = key_list(e, o.kind, keys, 16);
            err(e, a->loc, "optimizer %s has no hyper-parameter '%s' (it has %s)%s", st->op, a->name, opt_keys(o.kind),
                suggest(e, a->name, keys, nkeys));
            ok = false;
            continue;
        }
        const char *what = pool_printf(e->pool, "hyper-parameter '%s' of optimizer %s", a->name, st->op);
        double v = 0;
        if (strcmp(a->name, "nesterov") == 0) {
            int64_t b = 0;
            ok &= eval_bool(e, a->value, what, &b);
            v = (double)b;
        } else {
            ok &= eval_real(e, a->value, what, &v);
        }
        opt_set(&o, a->name, v);
    }
    if (!ok)
        return;
    const char *bad = opt_check(&o);
    if (bad) {
        err(e, check_loc(st, bad), "optimizer %s: %s", st->op, bad);
        return;
    }
    e->g->has_optimizer = true;
    e->g->optimizer = o;
    e->g->optimizer_loc = st->op_loc;
}
