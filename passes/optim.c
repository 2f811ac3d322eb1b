/* optim.c: the optimizers frost compiles into an object, by name, with
 * PyTorch's default hyper-parameters (torch.optim.SGD, torch.optim.AdamW):
 * their names and hyper-parameters, and the checks of both, for the model
 * file's `optimizer` statement (opt_read) and for the command line
 * (pass_optimizer). */
#include "ir.h"

#include <math.h>
#include <string.h>

const char *opt_name(ir_opt_kind kind) { return kind == OPT_ADAMW ? "adamw" : "sgd"; }

const char *opt_keys(ir_opt_kind kind) {
    return kind == OPT_ADAMW ? "lr, beta1, beta2, eps, weight_decay"
                             : "lr, momentum, dampening, weight_decay, nesterov";
}

int opt_slots(ir_opt_kind kind) { return kind == OPT_ADAMW ? 2 : 1; }

bool opt_init(ir_optimizer *o, const char *name) {
    if (strcmp(name, "sgd") == 0) {
        *o = (ir_optimizer){.kind = OPT_SGD, .lr = 0.01};
        return true;
    }
    if (strcmp(name, "adamw") == 0) {
        *o = (ir_optimizer){
            .kind = OPT_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2};
        return true;
    }
    return false;
}

const char *opt_unknown(pool *p, const char *name) {
    static const char *const names[] = {"sgd", "adamw"};
    return pool_printf(p, "unknown optimizer '%s' (frost has sgd and adamw)%s", name, diag_suggest(p, name, names, 2));
}

bool opt_set(ir_optimizer *o, const char *key, double value) {
    bool sgd = o->kind == OPT_SGD;
    if (strcmp(key, "lr") == 0)
        o->lr = value;
    else if (strcmp(key, "weight_decay") == 0)
        o->weight_decay = value;
    else if (sgd && strcmp(key, "momentum") == 0)
        o->momentum = value;
    else if (sgd && strcmp(key, "dampening") == 0)
        o->dampening = value;
    else if (sgd && strcmp(key, "nesterov") == 0)
        o->nesterov = value != 0;
    else if (!sgd && strcmp(key, "beta1") == 0)
        o->beta1 = value;
    else if (!sgd && strcmp(key, "beta2") == 0)
        o->beta2 = value;
    else if (!sgd && strcmp(key, "eps") == 0)
        o->eps = value;
    else
        return false;
    return true;
}

opt_problem opt_check(const ir_optimizer *o) {
    if (!(o->lr >= 0) || !isfinite(o->lr))
        return (opt_problem){"lr must be a finite number >= 0", "lr", NULL};
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return (opt_problem){"weight_decay must be a finite number >= 0", "weight_decay", NULL};
    if (o->kind == OPT_SGD) {
        if (!(o->momentum >= 0 && o->momentum < 1))
            return (opt_problem){"momentum must be in [0, 1)", "momentum", NULL};
        if (!(o->dampening >= 0 && o->dampening <= 1))
            return (opt_problem){"dampening must be in [0, 1]", "dampening", NULL};
        if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
            return (opt_problem){"nesterov needs momentum > 0 and dampening 0", "nesterov", NULL};
    } else {
        if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
            return (opt_problem){"beta1 and beta2 must be in [0, 1)", "beta1", "beta2"};
        if (!(o->eps > 0))
            return (opt_problem){"eps must be > 0", "eps", NULL};
    }
    return (opt_problem){NULL, NULL, NULL};
}

/* The names in opt_keys()' "lr, momentum, ..." list, for suggestions. */
static int key_list(pool *p, ir_opt_kind kind, const char **keys, int max) {
    int n = 0;
    for (const char *s = opt_keys(kind); *s && n < max;) {
        size_t len = strcspn(s, ", ");
        if (len)
            keys[n++] = pool_strndup(p, s, len);
        s += len;
        s += strspn(s, ", ");
    }
    return n;
}

/* The argument that gives `key`, NULL if none (or key NULL). */
static const opt_arg *given(const opt_stmt *st, const char *key) {
    for (int k = st->nargs - 1; key && k >= 0; k--)
        if (st->args[k].key && strcmp(st->args[k].key, key) == 0)
            return &st->args[k];
    return NULL;
}

bool opt_read(ir_optimizer *out, const opt_stmt *st, pool *p, diag_ctx *d) {
    ir_optimizer o;
    if (!opt_init(&o, st->name)) {
        diag_error(d, st->name_loc, "%s", opt_unknown(p, st->name));
        return false;
    }
    bool ok = true;
    for (int k = 0; k < st->nargs && !d->stopped; k++) {
        const opt_arg *a = &st->args[k];
        if (!a->key) {
            diag_error(d, a->loc, "hyper-parameters of optimizer %s are given by name, as in %s(lr=0.1) (it has %s)",
                       st->name, st->name, opt_keys(o.kind));
            ok = false;
            continue;
        }
        const opt_arg *first = NULL;
        for (int j = 0; j < k && !first; j++)
            if (st->args[j].key && strcmp(st->args[j].key, a->key) == 0)
                first = &st->args[j];
        if (first) {
            diag_error(d, a->loc, "hyper-parameter '%s' of optimizer %s is given twice", a->key, st->name);
            diag_note(d, first->loc, "first given here");
            ok = false;
            continue;
        }
        ir_optimizer probe = o;
        if (!opt_set(&probe, a->key, 0)) {
            const char *keys[16];
            int nkeys = key_list(p, o.kind, keys, 16);
            diag_error(d, a->loc, "optimizer %s has no hyper-parameter '%s' (it has %s)%s", st->name, a->key,
                       opt_keys(o.kind), diag_suggest(p, a->key, keys, nkeys));
            ok = false;
            continue;
        }
        const char *what = pool_printf(p, "hyper-parameter '%s' of optimizer %s", a->key, st->name);
        double v = 0;
        ok &= st->eval(st->ctx, k, what, strcmp(a->key, "nesterov") == 0, &v);
        opt_set(&o, a->key, v);
    }
    if (!ok)
        return false;
    opt_problem bad = opt_check(&o);
    if (bad.msg) {
        /* at the argument it is about, else at another it names, else at the name */
        const opt_arg *at = given(st, bad.key);
        if (!at)
            at = given(st, bad.also);
        diag_error(d, at ? at->loc : st->name_loc, "optimizer %s: %s", st->name, bad.msg);
        return false;
    }
    *out = o;
    return true;
}

bool pass_optimizer(ir_module *m, const frost_select *sel, diag_ctx *d) {
    const ir_graph *g = m->graph;
    src_loc at = g->has_optimizer ? g->optimizer_loc : (src_loc){0, 0};
    if (g->has_optimizer)
        m->opt = g->optimizer;
    else
        opt_init(&m->opt, "sgd");
    if (sel && sel->optimizer) {
        ir_optimizer chosen;
        if (!opt_init(&chosen, sel->optimizer)) {
            diag_error(d, (src_loc){0, 0}, "%s", opt_unknown(g->pool, sel->optimizer));
            return false;
        }
        /* Another optimizer on the command line starts from its own defaults;
         * the same one keeps the model's hyper-parameters. */
        if (!g->has_optimizer || chosen.kind != m->opt.kind)
            m->opt = chosen;
        at = (src_loc){0, 0};
    }
    for (int k = 0; sel && k < sel->nopt_settings; k++) {
        const frost_opt_setting *s = &sel->opt_settings[k];
        if (!opt_set(&m->opt, s->key, s->value)) {
            diag_error(d, (src_loc){0, 0}, "optimizer %s has no hyper-parameter '%s' (it has %s)",
                       opt_name(m->opt.kind), s->key, opt_keys(m->opt.kind));
            return false;
        }
        at = (src_loc){0, 0};
    }
    opt_problem bad = opt_check(&m->opt);
    if (bad.msg) {
        diag_error(d, at, "optimizer %s: %s", opt_name(m->opt.kind), bad.msg);
        return false;
    }
    return true;
}
