/* ir.c: shapes, the graph's value table, and readable dumps of the graph and
 * of a lowered program (for -d style debugging and for tests). */
#include "ir.h"

#include <string.h>

/* ---------------------------------------------------------------- shapes */

/* Elements of s, or -1 when the count overflows int64 or a dim is negative. */
int64_t shape_numel(const ir_shape *s) {
    int64_t n = 1;
    for (int k = 0; k < s->rank; k++) {
        if (s->dim[k] < 0 || __builtin_mul_overflow(n, s->dim[k], &n))
            return -1;
    }
    return n;
}

int64_t shape_bytes(const ir_shape *s, ir_dtype dt) {
    int64_t n = shape_numel(s), bytes;
    if (n < 0)
        return -1;
    switch (dt) {
    case DT_BIT: return n / 8 + (n % 8 != 0);
    case DT_U8: return n;
    case DT_F32:
    case DT_I32: return __builtin_mul_overflow(n, (int64_t)4, &bytes) ? -1 : bytes;
    case DT_I64: return __builtin_mul_overflow(n, (int64_t)8, &bytes) ? -1 : bytes;
    }
    IR_ASSERT(!"unknown dtype");
    return -1;
}

bool shape_eq(const ir_shape *a, const ir_shape *b) {
    if (a->rank != b->rank)
        return false;
    for (int k = 0; k < a->rank; k++)
        if (a->dim[k] != b->dim[k])
            return false;
    return true;
}

const char *dtype_name(ir_dtype dt) {
    switch (dt) {
    case DT_F32: return "f32";
    case DT_I32: return "i32";
    case DT_U8: return "u8";
    case DT_BIT: return "bit";
    case DT_I64: return "i64";
    }
    return "?";
}

const char *shape_str(pool *p, const ir_shape *s) {
    char buf[IR_MAX_RANK * 22 + 4];
    size_t n = 0;
    buf[n++] = '[';
    for (int k = 0; k < s->rank && k < IR_MAX_RANK; k++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%lld", k ? ", " : "", (long long)s->dim[k]);
    snprintf(buf + n, sizeof buf - n, "]");
    return pool_strdup(p, buf);
}

/* ---------------------------------------------------------------- graph */

ir_graph *ir_graph_new(pool *p) {
    ir_graph *g = pool_alloc(p, sizeof *g);
    g->pool = p;
    g->default_config = -1;
    return g;
}

ir_graph *ir_graph_fork(pool *p, const ir_graph *g) {
    ir_graph *f = pool_alloc(p, sizeof *f);
    *f = *g;
    f->pool = p;
    f->vals = pool_alloc(p, sizeof *f->vals * (size_t)(g->nvals + 1));
    memcpy(f->vals, g->vals, sizeof *f->vals * (size_t)g->nvals);
    f->capvals = g->nvals;
    /* nodes and the name table too: a configuration's lora items rewrite
     * nodes and add values (config.c) */
    f->nodes = pool_alloc(p, sizeof *f->nodes * (size_t)(g->nnodes + 1));
    memcpy(f->nodes, g->nodes, sizeof *f->nodes * (size_t)g->nnodes);
    f->capnodes = g->nnodes;
    f->val_ids = map_copy(p, &g->val_ids);
    return f;
}

int ir_add_value(ir_graph *g, const char *name, ir_val_kind kind, ir_dtype dt, ir_shape shape, src_loc loc) {
    ir_value *v = VEC_PUSH(g->pool, g->vals, g->nvals, g->capvals);
    v->name = name;
    v->kind = kind;
    v->dtype = dt;
    v->shape = shape;
    v->node = -1;
    v->loc = loc;
    map_put(g->pool, &g->val_ids, name, g->nvals - 1);
    return g->nvals - 1;
}

int ir_find_value(const ir_graph *g, const char *name) { return map_find(&g->val_ids, name); }

static const char *val_kind_name(ir_val_kind k) {
    switch (k) {
    case VAL_INPUT: return "input";
    case VAL_PARAM: return "param";
    case VAL_BUFFER: return "buffer";
    case VAL_ACT: return "act";
    }
    return "?";
}

static void dump_patterns(FILE *out, const char *what, const char **pats, int n) {
    if (n == 0)
        return;
    fprintf(out, " %s", what);
    for (int k = 0; k < n; k++)
        fprintf(out, " %s", pats[k]);
    fputc(';', out);
}

void ir_dump_graph(const ir_graph *g, FILE *out) {
    fprintf(out, "model %s\n", g->model ? g->model : "?");
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        fprintf(out, "  %%%d %-6s %s : %s%s", v, val_kind_name(val->kind), val->name, dtype_name(val->dtype),
                shape_str(g->pool, &val->shape));
        if (val->kind == VAL_PARAM || val->kind == VAL_BUFFER)
            fprintf(out, " init=%d fan_in=%lld%s", val->init, (long long)val->fan_in,
                    val->trainable ? " trainable" : "");
        if (val->kind == VAL_INPUT && val->wants_grad)
            fprintf(out, " grad");
        fputc('\n', out);
    }
    for (int k = 0; k < g->nnodes; k++) {
        const ir_node *n = &g->nodes[k];
        fprintf(out, "  node %d: %%%d = %s(", k, n->out, op_table[n->op].name);
        for (int i = 0; i < n->nin; i++)
            fprintf(out, "%s%%%d", i ? ", " : "", n->in[i]);
        fputc(')', out);
        if (n->nattr > 0) {
            fprintf(out, " attr[");
            for (int i = 0; i < n->nattr; i++)
                fprintf(out, "%s%lld", i ? ", " : "", (long long)n->attr[i]);
            fputc(']', out);
        }
        fprintf(out, "  # %s\n", n->name);
    }
    fprintf(out, "  outputs:");
    for (int k = 0; k < g->noutputs; k++)
        fprintf(out, " %s", g->vals[g->outputs[k]].name);
    fputc('\n', out);
    for (int k = 0; k < g->nconfigs; k++) {
        const ir_config *c = &g->configs[k];
        fprintf(out, "  config %s%s {", c->name, k == g->default_config ? " (default)" : "");
        if (c->ntrain == 0)
            fprintf(out, " train none;");
        dump_patterns(out, "train", c->train, c->ntrain);
        dump_patterns(out, "freeze", c->freeze, c->nfreeze);
        dump_patterns(out, "grad", c->grad, c->ngrad);
        fprintf(out, " }\n");
    }
}

/* ---------------------------------------------------------------- program */

int ir_add_buf(pool *p, ir_program *prog, const char *name, ir_buf_kind kind, ir_space space, ir_dtype dt,
               ir_shape shape, int value) {
    ir_buf *b = VEC_PUSH(p, prog->bufs, prog->nbufs, prog->capbufs);
    b->name = name;
    b->kind = kind;
    b->space = space;
    b->dtype = dt;
    b->shape = shape;
    b->bytes = b->planned_bytes = shape_bytes(&shape, dt);
    b->value = value;
    b->index = -1;
    b->alias_of = -1;
    b->inplace_of = -1;
    b->offset = -1;
    b->first = b->last = -1;
    return prog->nbufs - 1;
}

/* End of b's alias chain; root (NULL: none) caches the ends found so far
 * (-1: not yet known) and receives the end for every buffer on the chain.
 * -1 for a broken chain: a chain without a cycle has fewer hops than the
 * program has buffers. */
static int chain_root(const ir_program *prog, int *root, int b) {
    int r = b;
    for (int hops = 0; !(root && root[r] >= 0) && prog->bufs[r].alias_of >= 0; hops++) {
        if (prog->bufs[r].alias_of >= prog->nbufs || hops >= prog->nbufs)
            return -1;
        r = prog->bufs[r].alias_of;
    }
    int res = root && root[r] >= 0 ? root[r] : r;
    if (root) {
        for (int x = b; root[x] < 0 && x != res; x = prog->bufs[x].alias_of)
            root[x] = res;
        root[res] = res;
    }
    return res;
}

int ir_storage_root(const ir_program *prog, int b) { return chain_root(prog, NULL, b); }

void ir_storage_roots(const ir_program *prog, int *root) {
    for (int b = 0; b < prog->nbufs; b++)
        root[b] = -1;
    for (int b = 0; b < prog->nbufs; b++) {
        int r = chain_root(prog, root, b);
        IR_ASSERT(r >= 0); /* a broken chain of aliases */
    }
}

const char *space_name(ir_space s) {
    switch (s) {
    case SPACE_ARENA: return "arena";
    case SPACE_PARAMS: return "params";
    case SPACE_GRADS: return "grads";
    case SPACE_INPUT: return "input";
    case SPACE_OUTPUT: return "output";
    }
    return "?";
}

/* One line per buffer, then one line per step (frost compile -d lpw):
 *   b3 fc1 [arena] f32[128, 512] 262144 bytes @0 live 0..5
 *   fwd  0: rt_linear_fwd(b0 x, b1 fc1.weight, b2 fc1.bias, w b3 fc1, 128, 784, 512)
 * A step that can work in blocks of images (widen.c) says which operands
 * hold the block count and the scratch; a scratch widen.c grew, the bytes
 * plan.c placed. */
void ir_dump_program(const ir_program *prog, FILE *out) {
    char shape[IR_MAX_RANK * 22 + 4];
    for (int k = 0; k < prog->nbufs; k++) {
        const ir_buf *b = &prog->bufs[k];
        size_t n = 0;
        shape[n++] = '[';
        for (int i = 0; i < b->shape.rank; i++)
            n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%lld", i ? ", " : "", (long long)b->shape.dim[i]);
        snprintf(shape + n, sizeof shape - n, "]");
        fprintf(out, "b%d %s [%s] %s%s %lld bytes", k, b->name, space_name(b->space), dtype_name(b->dtype), shape,
                (long long)b->bytes);
        if (b->offset >= 0)
            fprintf(out, " @%lld", (long long)b->offset);
        if (b->alias_of >= 0)
            fprintf(out, " alias of b%d", b->alias_of);
        if (b->inplace_of >= 0)
            fprintf(out, " inplace of b%d", b->inplace_of);
        if (b->first >= 0)
            fprintf(out, " live %d..%d", b->first, b->last);
        if (b->planned_bytes != b->bytes) /* a scratch widen.c grew */
            fprintf(out, " planned %lld", (long long)b->planned_bytes);
        fputc('\n', out);
    }
    for (int k = 0; k < prog->nsteps; k++) {
        const ir_step *s = &prog->steps[k];
        fprintf(out, "%s %3d: %s(", k < prog->nfwd ? "fwd" : "bwd", k, s->kernel);
        for (int i = 0; i < s->nopnd; i++) {
            const ir_opnd *o = &s->opnd[i];
            fputs(i ? ", " : "", out);
            switch (o->kind) {
            case OPND_BUF:
                fprintf(out, "%sb%d %s", o->writes ? "w " : "", o->buf,
                        o->buf >= 0 && o->buf < prog->nbufs ? prog->bufs[o->buf].name : "?");
                break;
            case OPND_INT: fprintf(out, "%lld", (long long)o->i); break;
            case OPND_FLOAT: fprintf(out, "%g", o->f); break;
            case OPND_NULL: fputs("null", out); break;
            }
        }
        fputc(')', out);
        if (s->blocks_opnd >= 0 && s->blocks_max >= 2)
            fprintf(out, "  # blocks: operand %d, up to %lld images of %lld scratch bytes in operand %d",
                    s->blocks_opnd, (long long)s->blocks_max, (long long)s->blocked_bytes, s->scratch_opnd);
        fputc('\n', out);
    }
    if (prog->arena_bytes || prog->lower_bound)
        fprintf(out, "arena %lld bytes, lower bound %lld, residual %lld\n", (long long)prog->arena_bytes,
                (long long)prog->lower_bound, (long long)prog->residual_bytes);
}
