/* pipeline.c: the middle end, in order. Reading this function is reading the
 * architecture: frontend -> freeze configuration (and batch-norm mode) ->
 * optimizer -> layout of the params, grads and optimizer-state blocks ->
 * selective autodiff and residual selection -> per program: liveness ->
 * arena plan -> scratch widening -> the arena's state word -> guard gaps
 * (--checked) -> validation. Codegen and the views take the resulting module.
 * -d LETTERS (sel->dump, FROST_DUMP_LETTERS in ir.h) dumps the IR after the
 * passes it names. */
#include "ir.h"

#include <string.h>

static bool dumps(const frost_select *sel, char letter) { return sel && sel->dump && strchr(sel->dump, letter); }

static void dump_program(diag_ctx *d, const ir_program *prog, bool train, const char *after) {
    fprintf(d->out, "> %s program after %s:\n", train ? "train" : "infer", after);
    ir_dump_program(prog, d->out);
}

static void plan_program(pool *p, ir_program *prog, bool train, bool checked, diag_ctx *d, const frost_select *sel) {
    pass_liveness(prog);
    pass_plan(prog);
    if (dumps(sel, 'p'))
        dump_program(d, prog, train, "planning");
    pass_widen(prog);
    if (dumps(sel, 'w'))
        dump_program(d, prog, train, "widening");
    pass_state(p, prog, train);
    if (checked)
        pass_guard(prog, train);
    /* A plan that fails validation is a frost bug, never a user error. */
    if (!pass_validate(prog, stderr))
        ir_panic(__FILE__, __LINE__, "arena plan failed validation");
}

ir_module *frost_build(pool *p, diag_ctx *d, const frost_define *defs, int ndefs, const frost_select *sel) {
    ir_graph *g = frontend_load(p, d, defs, ndefs);
    return g ? frost_build_graph(g, d, sel) : NULL;
}

ir_module *frost_build_graph(ir_graph *g, diag_ctx *d, const frost_select *sel) {
    ir_module *m = pool_alloc(g->pool, sizeof *m);
    m->graph = g;
    if (!pass_config(m, sel, d) || !pass_optimizer(m, sel, d))
        return NULL;
    /* after the configuration's errors, before any size is added up */
    if (g->noutputs == 0) {
        diag_error(d, (src_loc){0, 0}, "model '%s' has no output: add 'output NAME' for its loss", g->model);
        return NULL;
    }
    if (dumps(sel, 'g')) {
        fprintf(d->out, "> graph after configuration:\n");
        ir_dump_graph(g, d->out);
    }
    if (!pass_layout(m, d) || !pass_lower(m, d))
        return NULL;
    if (dumps(sel, 'l')) {
        if (!m->infer_only)
            dump_program(d, &m->train, true, "lowering");
        dump_program(d, &m->infer, false, "lowering");
    }
    if (!m->infer_only)
        plan_program(g->pool, &m->train, true, m->checked, d, sel);
    plan_program(g->pool, &m->infer, false, m->checked, d, sel);
    return m;
}
