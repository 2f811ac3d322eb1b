/* optim.c: the optimizers frost compiles into an object, by name, with
 * PyTorch's default hyper-parameters (torch.optim.SGD, torch.optim.AdamW). */
#include "ir.h"

#include <math.h>
#include <string.h>

const char *opt_name(ir_opt_kind kind) { return kind == OPT_ADAMW ? "adamw" : "sgd"; }

const char *opt_keys(ir_opt_kind kind) {
    return kind == OPT_ADAMW ? "lr, beta1, beta2, eps, weight_decay" : "lr, momentum, dampening, weight_decay, nesterov";
}

int opt_slots(ir_opt_kind kind) { return kind == OPT_ADAMW ? 2 : 1; }

bool opt_init(ir_optimizer *o, const char *name) {
    if (strcmp(name, "sgd") == 0) {
        *o = (ir_optimizer){.kind = OPT_SGD, .lr = 0.01};
        return true;
    }
    if (strcmp(name, "adamw") == 0) {
        *o = (ir_optimizer){.kind = OPT_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                            .weight_decay = 1e-2};
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

const char *opt_check(const ir_optimizer *o) {
    if (!(o->lr >= 0) || !isfinite(o->lr))
        return "lr must be a finite number >= 0";
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return "weight_decay must be a finite number >= 0";
    if (o->kind == OPT_SGD) {
        if (!(o->momentum >= 0 && o->momentum < 1))
            return "momentum must be in [0, 1)";
        if (!(o->dampening >= 0 && o->dampening <= 1))
            return "dampening must be in [0, 1]";
        if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
            return "nesterov needs momentum > 0 and dampening 0";
    } else {
        if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
            return "beta1 and beta2 must be in [0, 1)";
        if (!(o->eps > 0))
            return "eps must be > 0";
    }
    return NULL;
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
    const char *bad = opt_check(&m->opt);
    if (bad) {
        diag_error(d, at, "optimizer %s: %s", opt_name(m->opt.kind), bad);
        return false;
    }
    return true;
}
