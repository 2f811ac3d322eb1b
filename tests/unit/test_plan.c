/* test_plan.c: liveness, arena planning and validation.
 *
 * Small hand-made programs with known answers, the validator catching broken
 * plans, and seeded random programs shaped like training graphs (forward chain
 * with skips, views and scratch; residuals kept until their backward use;
 * backward in reverse with gradient aliasing and accumulation). Every random
 * program is planned and validated; the ratio arena / lower bound is reported.
 *
 * FROST_TEST_QUICK=1 runs fewer and smaller random programs and skips the
 * timing limits (for valgrind).
 */
#include "ir.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- builders */

static int add(pool *P, ir_program *prog, const char *name, ir_space sp, int64_t bytes) {
    ir_shape sh = {.rank = 1, .dim = {bytes}};
    ir_buf_kind kind = sp == SPACE_ARENA ? BUF_ACT : sp == SPACE_INPUT ? BUF_INPUT : sp == SPACE_OUTPUT ? BUF_OUTPUT
                                                   : sp == SPACE_GRADS ? BUF_PARAM_GRAD : BUF_PARAM;
    int b = ir_add_buf(P, prog, name, kind, sp, DT_U8, sh, -1);
    ck_assert_int_eq(prog->bufs[b].bytes, bytes);
    ck_assert_int_eq(prog->bufs[b].alias_of, -1);
    return b;
}

static int add_alias(pool *P, ir_program *prog, const char *name, int of) {
    const ir_buf *src = &prog->bufs[of];
    int b = ir_add_buf(P, prog, name, src->kind, src->space, src->dtype, src->shape, -1);
    prog->bufs[b].alias_of = of;
    return b;
}

/* A step over buffers: `r` operands read, `w` written; -1 ends each list. */
static void add_step(pool *P, ir_program *prog, const char *kernel, const int *r, const int *w) {
    ir_step *s = VEC_PUSH(P, prog->steps, prog->nsteps, prog->capsteps);
    memset(s, 0, sizeof *s);
    s->kernel = kernel;
    s->node = -1;
    for (int k = 0; r && r[k] >= 0; k++)
        s->opnd[s->nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = r[k]};
    s->opnd[s->nopnd++] = (ir_opnd){.kind = OPND_INT, .i = 7};
    for (int k = 0; w && w[k] >= 0; k++)
        s->opnd[s->nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = w[k], .writes = true};
    ck_assert_int_le(s->nopnd, IR_MAX_OPND);
}
#define R(...) ((const int[]){__VA_ARGS__, -1})
#define W(...) ((const int[]){__VA_ARGS__, -1})

static void plan_all(ir_program *prog) {
    pass_liveness(prog);
    pass_plan(prog);
}

/* Validate, capturing the messages. */
static bool validate_capture(const ir_program *prog, char **msg) {
    size_t len = 0;
    FILE *f = open_memstream(msg, &len);
    bool ok = pass_validate(prog, f);
    fclose(f);
    return ok;
}

static void assert_valid(const ir_program *prog) {
    char *msg = NULL;
    bool ok = validate_capture(prog, &msg);
    if (!ok)
        fprintf(stderr, "%s", msg);
    ck_assert(ok);
    ck_assert_str_eq(msg, "");
    free(msg);
    ck_assert_int_ge(prog->arena_bytes, prog->lower_bound);
    ck_assert_int_eq(prog->arena_bytes % IR_ALIGN, 0);
}

/* ---------------------------------------------------------------- small programs */

START_TEST(test_chain) {
    pool *P = pool_new();
    ir_program prog = {0};
    int x = add(P, &prog, "x", SPACE_INPUT, 4000);
    int a = add(P, &prog, "a", SPACE_ARENA, 100);
    int b = add(P, &prog, "b", SPACE_ARENA, 200);
    int c = add(P, &prog, "c", SPACE_ARENA, 300);
    add_step(P, &prog, "f", R(x), W(a));
    add_step(P, &prog, "g", R(a), W(b));
    add_step(P, &prog, "h", R(b), W(c));
    prog.nfwd = prog.nsteps;
    prog.bufs[x].offset = 4096; /* caller's block: the planner must not touch it */
    plan_all(&prog);
    ck_assert_int_eq(prog.bufs[a].first, 0);
    ck_assert_int_eq(prog.bufs[a].last, 1);
    ck_assert_int_eq(prog.bufs[b].first, 1);
    ck_assert_int_eq(prog.bufs[b].last, 2);
    ck_assert_int_eq(prog.bufs[c].first, 2);
    ck_assert_int_eq(prog.bufs[c].last, 2);
    /* Live sets: {a}, {a,b}, {b,c}: 128, 384, 576. a and c can share. */
    ck_assert_int_eq(prog.lower_bound, 576);
    ck_assert_int_eq(prog.arena_bytes, 576);
    ck_assert_int_eq(prog.residual_bytes, 0);
    ck_assert_int_eq(prog.bufs[x].offset, 4096);
    for (int k = a; k <= c; k++)
        ck_assert_int_eq(prog.bufs[k].offset % IR_ALIGN, 0);
    ck_assert(prog.bufs[a].offset + 128 <= prog.bufs[b].offset || prog.bufs[b].offset + 256 <= prog.bufs[a].offset);
    assert_valid(&prog);
    pool_free(P);
}
END_TEST

START_TEST(test_alias_group) {
    pool *P = pool_new();
    ir_program prog = {0};
    int x = add(P, &prog, "x", SPACE_ARENA, 1000);
    int y = add_alias(P, &prog, "y", x);
    int z = add_alias(P, &prog, "z", y); /* chained */
    int w = add(P, &prog, "w", SPACE_ARENA, 64);
    int u = add(P, &prog, "u", SPACE_ARENA, 640);
    int q = add(P, &prog, "q", SPACE_ARENA, 640);
    add_step(P, &prog, "mk", NULL, W(u));       /* 0 */
    add_step(P, &prog, "f", R(u), W(y));        /* 1: writes through an alias */
    add_step(P, &prog, "g", R(y), W(w));        /* 2 */
    add_step(P, &prog, "h", R(w), W(q));        /* 3 */
    add_step(P, &prog, "k", R(z, q), NULL);     /* 4: the group ends here */
    prog.nfwd = prog.nsteps;
    plan_all(&prog);
    /* The root is never named itself, yet owns the group's interval [1, 4]. */
    for (int b = x; b <= z; b++) {
        ck_assert_int_eq(prog.bufs[b].first, 1);
        ck_assert_int_eq(prog.bufs[b].last, 4);
        ck_assert_int_eq(prog.bufs[b].offset, prog.bufs[x].offset);
    }
    /* u [0,1] meets the group at 1; w [2,3] and q [3,4] meet it too. Live at
     * 3: x(1024) + w(64) + q(640) = 1728; u can reuse w/q's space. */
    ck_assert_int_eq(prog.lower_bound, 1728);
    ck_assert_int_eq(prog.arena_bytes, 1728);
    assert_valid(&prog);

    /* A group whose members are larger than the root takes the largest size. */
    pool_free(P);
    P = pool_new();
    ir_program p2 = {0};
    int r = add(P, &p2, "r", SPACE_ARENA, 64);
    int big = add(P, &p2, "big", SPACE_ARENA, 500);
    p2.bufs[big].alias_of = r;
    add_step(P, &p2, "f", NULL, W(r));
    add_step(P, &p2, "g", R(big), NULL);
    p2.nfwd = 1;
    plan_all(&p2);
    ck_assert_int_eq(p2.lower_bound, 512);
    ck_assert_int_eq(p2.arena_bytes, 512);
    ck_assert_int_eq(p2.residual_bytes, 512);
    assert_valid(&p2);
    pool_free(P);
}
END_TEST

START_TEST(test_residual_and_unused) {
    pool *P = pool_new();
    ir_program prog = {0};
    int x = add(P, &prog, "x", SPACE_INPUT, 256);
    int h = add(P, &prog, "h", SPACE_ARENA, 256); /* kept for backward */
    int y = add(P, &prog, "y", SPACE_ARENA, 128); /* dies in forward */
    int loss = add(P, &prog, "loss", SPACE_OUTPUT, 4);
    int dy = add(P, &prog, "d y", SPACE_ARENA, 128);
    int dw = add(P, &prog, "d w", SPACE_GRADS, 256);
    int unused = add(P, &prog, "unused", SPACE_ARENA, 1 << 20);
    int zero = add(P, &prog, "zero", SPACE_ARENA, 0);
    add_step(P, &prog, "f", R(x), W(h));          /* 0 */
    add_step(P, &prog, "g", R(h), W(y));          /* 1 */
    add_step(P, &prog, "loss", R(y), W(loss, zero)); /* 2 */
    prog.nfwd = 3;
    add_step(P, &prog, "seed", NULL, W(dy));      /* 3 */
    add_step(P, &prog, "dg", R(dy, h), W(dw));    /* 4 */
    plan_all(&prog);
    ck_assert_int_eq(prog.bufs[h].first, 0);
    ck_assert_int_eq(prog.bufs[h].last, 4);
    ck_assert_int_eq(prog.bufs[unused].first, -1);
    ck_assert_int_eq(prog.bufs[unused].last, -1);
    ck_assert_int_eq(prog.bufs[unused].offset, -1);
    ck_assert_int_eq(prog.residual_bytes, 256);
    /* Peak: h + y at 1..2, or h + dy at 3..4: 384. y and dy share. */
    ck_assert_int_eq(prog.lower_bound, 384);
    ck_assert_int_eq(prog.arena_bytes, 384);
    ck_assert_int_eq(prog.bufs[x].first, 0); /* intervals exist for every buffer */
    ck_assert_int_eq(prog.bufs[dw].last, 4);
    assert_valid(&prog);
    pool_free(P);
}
END_TEST

START_TEST(test_empty) {
    ir_program prog = {0};
    plan_all(&prog);
    ck_assert_int_eq(prog.arena_bytes, 0);
    ck_assert_int_eq(prog.lower_bound, 0);
    assert_valid(&prog);

    pool *P = pool_new();
    ir_program p2 = {0};
    int a = add(P, &p2, "a", SPACE_ARENA, 64);
    (void)a;
    add_step(P, &p2, "nothing", NULL, NULL);
    p2.nfwd = 1;
    plan_all(&p2);
    ck_assert_int_eq(p2.arena_bytes, 0);
    assert_valid(&p2);
    pool_free(P);
}
END_TEST

/* ---------------------------------------------------------------- validator */

static ir_program small_plan(pool *P, int *a, int *b, int *c) {
    ir_program prog = {0};
    *a = add(P, &prog, "a", SPACE_ARENA, 100);
    *b = add(P, &prog, "b", SPACE_ARENA, 200);
    *c = add(P, &prog, "c", SPACE_ARENA, 300);
    add_step(P, &prog, "f", NULL, W(*a));
    add_step(P, &prog, "g", R(*a), W(*b));
    add_step(P, &prog, "h", R(*b), W(*c));
    prog.nfwd = prog.nsteps;
    plan_all(&prog);
    return prog;
}

START_TEST(test_validate_overlap) {
    pool *P = pool_new();
    int a, b, c;
    ir_program prog = small_plan(P, &a, &b, &c);
    assert_valid(&prog);
    /* b and c are live together at step 2: put them on the same bytes. */
    prog.bufs[c].offset = prog.bufs[b].offset;
    prog.arena_bytes = ir_align_up(prog.arena_bytes + 512);
    char *msg = NULL;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "overlap"));
    ck_assert_ptr_nonnull(strstr(msg, "'b'"));
    ck_assert_ptr_nonnull(strstr(msg, "'c'"));
    ck_assert_ptr_nonnull(strstr(msg, "steps 1..2"));
    free(msg);
    /* Partial overlap by one aligned block is caught as well. */
    prog.bufs[c].offset = prog.bufs[b].offset + 192;
    ck_assert(!validate_capture(&prog, &msg));
    free(msg);
    /* Adjacent is fine; a and c never meet, so they may share. */
    prog.bufs[b].offset = 0;
    prog.bufs[c].offset = 256;
    prog.bufs[a].offset = 256;
    ck_assert(validate_capture(&prog, &msg));
    free(msg);
    pool_free(P);
}
END_TEST

START_TEST(test_validate_bounds) {
    pool *P = pool_new();
    int a, b, c;
    ir_program prog = small_plan(P, &a, &b, &c);
    char *msg = NULL;
    int64_t saved = prog.bufs[c].offset;
    prog.bufs[c].offset = prog.arena_bytes; /* beyond the end */
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "'c'"));
    free(msg);
    prog.bufs[c].offset = saved + 8; /* misaligned */
    ck_assert(!validate_capture(&prog, &msg));
    free(msg);
    prog.bufs[c].offset = -1; /* referenced but not placed */
    ck_assert(!validate_capture(&prog, &msg));
    free(msg);
    prog.bufs[c].offset = saved;
    prog.arena_bytes -= IR_ALIGN; /* arena too small for the plan */
    ck_assert(!validate_capture(&prog, &msg));
    free(msg);
    prog.arena_bytes += IR_ALIGN;
    ck_assert(validate_capture(&prog, &msg));
    free(msg);

    /* An alias placed away from its root. */
    int y = add_alias(P, &prog, "y", b);
    add_step(P, &prog, "k", R(y), NULL);
    prog.nfwd = prog.nsteps;
    plan_all(&prog);
    ck_assert(validate_capture(&prog, &msg));
    free(msg);
    prog.bufs[y].offset = prog.bufs[b].offset == 0 ? IR_ALIGN : 0;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "aliases"));
    free(msg);

    /* An operand naming no buffer. */
    plan_all(&prog);
    prog.steps[1].opnd[0].buf = prog.nbufs + 3;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "names buffer"));
    free(msg);
    prog.steps[1].opnd[0].buf = -2;
    ck_assert(!validate_capture(&prog, &msg));
    free(msg);
    pool_free(P);
}
END_TEST

START_TEST(test_validate_backward_input) {
    pool *P = pool_new();
    ir_program prog = {0};
    int x = add(P, &prog, "x", SPACE_INPUT, 256);
    int xr = add_alias(P, &prog, "x reshaped", x);
    int h = add(P, &prog, "h", SPACE_ARENA, 256);
    int loss = add(P, &prog, "loss", SPACE_OUTPUT, 4);
    int dh = add(P, &prog, "d h", SPACE_ARENA, 256);
    int dw = add(P, &prog, "d w", SPACE_GRADS, 256);
    add_step(P, &prog, "f", R(x), W(h));
    add_step(P, &prog, "l", R(h), W(loss));
    prog.nfwd = 2;
    add_step(P, &prog, "seed", NULL, W(dh));
    add_step(P, &prog, "dw", R(dh, h), W(dw));
    plan_all(&prog);
    assert_valid(&prog);

    add_step(P, &prog, "dw2", R(dh, x), W(dw)); /* backward reads the caller's input */
    plan_all(&prog);
    char *msg = NULL;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "backward step 4"));
    ck_assert_ptr_nonnull(strstr(msg, "'x'"));
    free(msg);

    prog.steps[4].opnd[1].buf = xr; /* through a view of it */
    ck_assert(!validate_capture(&prog, &msg));
    free(msg);

    prog.steps[4].opnd[1].buf = loss; /* the caller's output */
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "'loss'"));
    free(msg);

    prog.steps[4].opnd[1].buf = h;
    plan_all(&prog);
    assert_valid(&prog);
    pool_free(P);
}
END_TEST

/* ---------------------------------------------------------------- random programs */

typedef struct {
    uint64_t s;
} rng;

static uint64_t rnext(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double runif(rng *r) { return (double)(rnext(r) >> 11) * 0x1.0p-53; }
static int rint_(rng *r, int lo, int hi) { return lo + (int)(rnext(r) % (uint64_t)(hi - lo + 1)); }
/* Log-uniform over [lo, hi]. */
static int64_t rlog(rng *r, double lo, double hi) { return (int64_t)exp(log(lo) + runif(r) * (log(hi) - log(lo))); }

/* A training-shaped program with L layers: forward chain (views, skips,
 * scratch, saved masks), loss, and if train, backward in reverse order. */
static void gen_training(pool *P, ir_program *prog, rng *r, int L, bool train) {
    int64_t palette[8];
    int npal = rint_(r, 2, 8);
    for (int k = 0; k < npal; k++)
        palette[k] = rlog(r, 64, 32e6);
    int *act = calloc((size_t)L + 1, sizeof(int));
    int *keep_in = calloc((size_t)L + 1, sizeof(int)); /* buffer read by layer i's backward for its input, -1 */
    int *keep_out = calloc((size_t)L + 1, sizeof(int));
    int *saved = calloc((size_t)L + 1, sizeof(int));
    int *skip = calloc((size_t)L + 1, sizeof(int));   /* act index added by layer i, -1 */
    int *param = calloc((size_t)L + 1, sizeof(int));
    bool *view = calloc((size_t)L + 1, sizeof(bool));
    int *grad = calloc((size_t)L + 1, sizeof(int));
    int x = add(P, prog, "x", SPACE_INPUT, palette[0]);
    for (int i = 0; i < L; i++) {
        int in = i ? act[i - 1] : x;
        keep_in[i] = keep_out[i] = saved[i] = skip[i] = -1;
        param[i] = add(P, prog, "w", SPACE_PARAMS, rlog(r, 64, 4e6));
        if (i > 0 && runif(r) < 0.1) {
            view[i] = true; /* reshape: no step, no residual */
            act[i] = add_alias(P, prog, "view", act[i - 1]);
            continue;
        }
        int64_t sz = runif(r) < 0.8 ? palette[rint_(r, 0, npal - 1)] : rlog(r, 16, 64e6);
        act[i] = add(P, prog, "act", SPACE_ARENA, sz);
        int rd[4] = {in, param[i], -1, -1}, wr[4] = {act[i], -1, -1, -1};
        int nr = 2, nw = 1;
        if (i >= 3 && runif(r) < 0.2) {
            skip[i] = rint_(r, i > 6 ? i - 6 : 0, i - 2);
            rd[nr++] = act[skip[i]];
        }
        if (runif(r) < 0.3)
            wr[nw++] = add(P, prog, "scratch", SPACE_ARENA, rlog(r, 16, 16e6));
        if (train && runif(r) < 0.25)
            wr[nw++] = saved[i] = add(P, prog, "mask", SPACE_ARENA, sz / 32 + 1);
        add_step(P, prog, "fwd", rd, wr);
        if (train && runif(r) < 0.6) {
            if (i == 0) { /* the caller's input is gone by backward: copy it */
                keep_in[i] = add(P, prog, "copy x", SPACE_ARENA, palette[0]);
                add_step(P, prog, "copy", R(x), W(keep_in[i]));
            } else {
                keep_in[i] = act[i - 1];
            }
        }
        if (train && runif(r) < 0.3)
            keep_out[i] = act[i];
    }
    int label = add(P, prog, "label", SPACE_INPUT, 512);
    int loss = add(P, prog, "loss", SPACE_OUTPUT, 4);
    int probs = -1;
    if (train && runif(r) < 0.5) {
        probs = add(P, prog, "probs", SPACE_ARENA, prog->bufs[act[L - 1]].bytes);
        add_step(P, prog, "loss", R(act[L - 1], label), W(loss, probs));
    } else {
        add_step(P, prog, "loss", R(act[L - 1], label), W(loss));
    }
    prog->nfwd = prog->nsteps;
    if (train) {
        for (int i = 0; i < L; i++)
            grad[i] = -1;
        grad[L - 1] = add(P, prog, "d act", SPACE_ARENA, prog->bufs[act[L - 1]].bytes);
        if (probs >= 0)
            add_step(P, prog, "seed", R(probs), W(grad[L - 1]));
        else
            add_step(P, prog, "seed", NULL, W(grad[L - 1]));
        for (int i = L - 1; i >= 0; i--) {
            int g = grad[i];
            IR_ASSERT(g >= 0);
            if (view[i]) {
                if (grad[i - 1] < 0)
                    grad[i - 1] = add_alias(P, prog, "d view", g);
                else
                    add_step(P, prog, "acc", R(g), W(grad[i - 1]));
                continue;
            }
            if (runif(r) < 0.7) { /* trainable: d weight needs the input */
                int dw = add(P, prog, "d w", SPACE_GRADS, prog->bufs[param[i]].bytes);
                int rd[3] = {g, keep_in[i] >= 0 ? keep_in[i] : g, -1};
                if (runif(r) < 0.3) {
                    int s = add(P, prog, "scratch", SPACE_ARENA, rlog(r, 16, 16e6));
                    add_step(P, prog, "dw", rd, W(dw, s));
                } else {
                    add_step(P, prog, "dw", rd, W(dw));
                }
            }
            if (i == 0)
                continue;
            int rd[6] = {g, param[i], -1, -1, -1, -1}, nr = 2;
            if (keep_out[i] >= 0)
                rd[nr++] = keep_out[i];
            if (saved[i] >= 0)
                rd[nr++] = saved[i];
            int wr[4] = {-1, -1, -1, -1}, nw = 0;
            if (grad[i - 1] < 0) {
                if (runif(r) < 0.3 && prog->bufs[g].bytes == prog->bufs[act[i - 1]].bytes) {
                    grad[i - 1] = add_alias(P, prog, "d in", g); /* in place */
                } else {
                    grad[i - 1] = add(P, prog, "d in", SPACE_ARENA, prog->bufs[act[i - 1]].bytes);
                }
            }
            wr[nw++] = grad[i - 1];
            if (skip[i] >= 0) {
                int j = skip[i];
                if (grad[j] < 0)
                    grad[j] = add(P, prog, "d skip", SPACE_ARENA, prog->bufs[act[j]].bytes);
                wr[nw++] = grad[j];
            }
            if (runif(r) < 0.2)
                wr[nw++] = add(P, prog, "scratch", SPACE_ARENA, rlog(r, 16, 16e6));
            add_step(P, prog, "dx", rd, wr);
        }
    }
    free(act);
    free(keep_in);
    free(keep_out);
    free(saved);
    free(skip);
    free(param);
    free(view);
    free(grad);
}

/* Unstructured: random intervals, sizes and aliases (stress for the passes,
 * not a realistic shape). */
static void gen_unstructured(pool *P, ir_program *prog, rng *r, int nbufs, int nsteps) {
    for (int b = 0; b < nbufs; b++) {
        if (b > 0 && runif(r) < 0.1) {
            add_alias(P, prog, "alias", rint_(r, 0, b - 1));
        } else {
            ir_space sp = runif(r) < 0.9 ? SPACE_ARENA : SPACE_PARAMS;
            add(P, prog, "buf", sp, runif(r) < 0.05 ? 0 : rlog(r, 1, 1e7));
        }
    }
    for (int t = 0; t < nsteps; t++) {
        int rd[8], k = 0, nr = rint_(r, 0, 6);
        for (; k < nr; k++)
            rd[k] = rint_(r, 0, nbufs - 1);
        rd[k] = -1;
        add_step(P, prog, "op", rd, NULL);
    }
    prog->nfwd = rint_(r, 0, nsteps);
}

static int root_of(const ir_program *prog, int b) {
    while (prog->bufs[b].alias_of >= 0)
        b = prog->bufs[b].alias_of;
    return b;
}

/* Brute-force overlap check, for cross-checking the validator's sweep. */
static bool brute_ok(const ir_program *prog) {
    int n = prog->nbufs;
    for (int a = 0; a < n; a++) {
        const ir_buf *x = &prog->bufs[a];
        if (x->space != SPACE_ARENA || x->first < 0)
            continue;
        if (x->offset < 0 || x->offset % IR_ALIGN || x->offset + x->bytes > prog->arena_bytes)
            return false;
        for (int b = a + 1; b < n; b++) {
            const ir_buf *y = &prog->bufs[b];
            if (y->space != SPACE_ARENA || y->first < 0 || x->bytes == 0 || y->bytes == 0)
                continue;
            bool time = x->first <= y->last && y->first <= x->last;
            bool mem = x->offset < y->offset + y->bytes && y->offset < x->offset + x->bytes;
            bool same = root_of(prog, a) == root_of(prog, b);
            if (time && mem && !same)
                return false;
        }
    }
    return true;
}

static bool quick(void) {
    const char *q = getenv("FROST_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(test_random_training) {
    int nprog = quick() ? 40 : 400;
    double sum = 0, worst = 0, plan_time = 0, max_time = 0;
    int worst_seed = -1, nratio = 0, biggest = 0, exact = 0;
    for (int seed = 0; seed < nprog; seed++) {
        rng r = {.s = 0x5eed0000u + (uint64_t)seed};
        pool *P = pool_new();
        ir_program prog = {0};
        int L = seed % 25 == 24 ? rint_(&r, 800, quick() ? 1000 : 3000) : rint_(&r, 1, 200);
        bool train = seed % 10 != 9;
        gen_training(P, &prog, &r, L, train);
        double t0 = now();
        plan_all(&prog);
        double dt = now() - t0;
        plan_time += dt;
        if (dt > max_time)
            max_time = dt;
        if (prog.nbufs > biggest)
            biggest = prog.nbufs;
        assert_valid(&prog);
        ck_assert_int_gt(prog.lower_bound, 0);
        if (!train)
            ck_assert_int_eq(prog.residual_bytes, 0);
        double ratio = (double)prog.arena_bytes / (double)prog.lower_bound;
        if (getenv("PLAN_VERBOSE") && ratio > 1.005)
            printf("seed %d: %d buffers, ratio %.4f\n", seed, prog.nbufs, ratio);
        sum += ratio;
        nratio++;
        exact += prog.arena_bytes == prog.lower_bound;
        if (ratio > worst) {
            worst = ratio;
            worst_seed = seed;
        }
        pool_free(P);
    }
    double mean = sum / nratio;
    printf("plan: %d training-shaped programs (up to %d buffers): arena/lower_bound mean %.4f, worst %.4f "
           "(seed %d), %d exact; plan time total %.3f s, max %.3f s\n",
           nratio, biggest, mean, worst, worst_seed, exact, plan_time, max_time);
    fflush(stdout);
    ck_assert(mean <= 1.05);
}
END_TEST

START_TEST(test_random_unstructured) {
    int nprog = quick() ? 30 : 200;
    double sum = 0, worst = 0;
    int n = 0;
    for (int seed = 0; seed < nprog; seed++) {
        rng r = {.s = 0xabc00000u + (uint64_t)seed};
        pool *P = pool_new();
        ir_program prog = {0};
        int nb = rint_(&r, 1, seed % 20 == 19 ? 2000 : 150);
        gen_unstructured(P, &prog, &r, nb, rint_(&r, 1, 2 * nb));
        plan_all(&prog);
        assert_valid(&prog);
        ck_assert(brute_ok(&prog));
        if (prog.lower_bound > 0) {
            double ratio = (double)prog.arena_bytes / (double)prog.lower_bound;
            sum += ratio;
            n++;
            if (ratio > worst)
                worst = ratio;
        }
        /* Break the plan: move one live buffer onto another that meets it in
         * time. Validator and brute force must both object. */
        int a = -1, b = -1;
        for (int i = 0; i < prog.nbufs && b < 0; i++) {
            const ir_buf *x = &prog.bufs[i];
            if (x->space != SPACE_ARENA || x->alias_of >= 0 || x->first < 0 || x->bytes == 0)
                continue;
            for (int j = i + 1; j < prog.nbufs; j++) {
                const ir_buf *y = &prog.bufs[j];
                if (y->space == SPACE_ARENA && y->alias_of < 0 && y->bytes > 0 && y->first >= 0 &&
                    x->first <= y->last && y->first <= x->last && x->bytes <= prog.arena_bytes - y->offset) {
                    a = i;
                    b = j;
                    break;
                }
            }
        }
        if (b >= 0) {
            prog.bufs[a].offset = prog.bufs[b].offset;
            for (int i = 0; i < prog.nbufs; i++) /* keep aliases with their root */
                if (prog.bufs[i].alias_of >= 0 && prog.bufs[i].space == SPACE_ARENA) {
                    prog.bufs[i].offset = prog.bufs[root_of(&prog, i)].offset;
                }
            ck_assert(!brute_ok(&prog));
            ck_assert(!pass_validate(&prog, NULL));
        }
        pool_free(P);
    }
    printf("plan: %d unstructured random programs: arena/lower_bound mean %.4f, worst %.4f\n", n, sum / n, worst);
    fflush(stdout);
}
END_TEST

/* Thousands of buffers must plan well under a second. */
START_TEST(test_speed) {
    rng r = {.s = 42};
    pool *P = pool_new();
    ir_program prog = {0};
    gen_training(P, &prog, &r, quick() ? 1000 : 4000, true);
    double t0 = now();
    plan_all(&prog);
    double dt = now() - t0;
    t0 = now();
    ck_assert(pass_validate(&prog, stderr));
    double dv = now() - t0;
    printf("plan: %d buffers, %d steps: liveness+plan %.3f s, validate %.4f s, arena/lower_bound %.4f\n", prog.nbufs,
           prog.nsteps, dt, dv, (double)prog.arena_bytes / (double)prog.lower_bound);
    fflush(stdout);
    if (!quick()) /* generous for sanitizers; valgrind runs use FROST_TEST_QUICK */
        ck_assert(dt < 5.0);
    pool_free(P);

    /* Worst case for the planner: unstructured, so no order reaches the
     * bound early and every stage runs. */
    P = pool_new();
    ir_program p2 = {0};
    int nb = quick() ? 2000 : 10000;
    gen_unstructured(P, &p2, &r, nb, nb);
    t0 = now();
    plan_all(&p2);
    dt = now() - t0;
    ck_assert(pass_validate(&p2, stderr));
    printf("plan: %d unstructured buffers, %d steps: liveness+plan %.3f s, arena/lower_bound %.4f\n", p2.nbufs,
           p2.nsteps, dt, (double)p2.arena_bytes / (double)p2.lower_bound);
    fflush(stdout);
    if (!quick())
        ck_assert(dt < 10.0);
    pool_free(P);
}
END_TEST

int main(void) {
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("small");
    tcase_add_test(tc, test_chain);
    tcase_add_test(tc, test_alias_group);
    tcase_add_test(tc, test_residual_and_unused);
    tcase_add_test(tc, test_empty);
    suite_add_tcase(s, tc);
    TCase *tv = tcase_create("validate");
    tcase_add_test(tv, test_validate_overlap);
    tcase_add_test(tv, test_validate_bounds);
    tcase_add_test(tv, test_validate_backward_input);
    suite_add_tcase(s, tv);
    TCase *tr = tcase_create("random");
    tcase_set_timeout(tr, 600);
    tcase_add_test(tr, test_random_training);
    tcase_add_test(tr, test_random_unstructured);
    tcase_add_test(tr, test_speed);
    suite_add_tcase(s, tr);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
