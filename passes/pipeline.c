/* pipeline.c: the middle end, in order. Reading this function is reading the
 * architecture: frontend -> freeze configuration -> selective autodiff and
 * residual selection -> liveness -> arena plan -> scratch widening ->
 * the arena's state word -> validation. Codegen and the views take the resulting module. */
#include "ir.h"

static void plan_program(pool *p, ir_program *prog, bool train) {
    pass_liveness(prog);
    pass_plan(prog);
    pass_widen(prog);
    pass_state(p, prog, train);
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
    if (!pass_layout(m, d) || !pass_lower(m, d))
        return NULL;
    plan_program(g->pool, &m->train, true);
    plan_program(g->pool, &m->infer, false);
    return m;
}
