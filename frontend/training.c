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
    int ntrain = 0, nfreeze = 0, ngrad = 0, nlora = 0;
    for (int k = 0; k < st->nitems; k++) {
        ast_cfg_kind kind = st->items[k].kind;
        ntrain += kind == CFG_TRAIN, nfreeze += kind == CFG_FREEZE, ngrad += kind == CFG_GRAD;
        nlora += kind == CFG_LORA;
    }
    c.lora = pool_alloc(e->pool, sizeof *c.lora * (size_t)(nlora + 1));
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
        case CFG_LORA: c.lora[c.nlora++] = it->lora; break;
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

typedef struct {
    elab_ctx *e;
    const ast_stmt *st;
} hyper_ctx;

/* opt_stmt.eval: the value of the statement's argument k */
static bool eval_hyper(void *ctx, int k, const char *what, bool as_bool, double *out) {
    const hyper_ctx *h = ctx;
    const ast_expr *x = h->st->args[k].value;
    if (!as_bool)
        return eval_real(h->e, x, what, out);
    int64_t b = 0;
    bool ok = eval_bool(h->e, x, what, &b);
    *out = (double)b;
    return ok;
}

/* optimizer NAME(KEY=VALUE, ...): passes/optim.c knows the optimizers and
 * their hyper-parameters and checks the statement (opt_read); this passes
 * on the name, keys and locations, and evaluates the values it asks for. */
void elab_optimizer(elab_ctx *e, const ast_stmt *st) {
    opt_arg *args = pool_alloc(e->pool, sizeof *args * (size_t)(st->nargs + 1));
    for (int k = 0; k < st->nargs; k++)
        args[k] = (opt_arg){st->args[k].name, st->args[k].loc};
    hyper_ctx h = {e, st};
    opt_stmt os = {st->op, st->op_loc, args, st->nargs, eval_hyper, &h};
    int reported = e->d->errors, counted = e->errors;
    ir_optimizer o;
    bool ok = opt_read(&o, &os, e->pool, e->d);
    /* opt_read reports to e->d itself: count its errors as elaboration's */
    e->errors += (e->d->errors - reported) - (e->errors - counted);
    if (!ok)
        return;
    e->g->has_optimizer = true;
    e->g->optimizer = o;
    e->g->optimizer_loc = st->op_loc;
}
