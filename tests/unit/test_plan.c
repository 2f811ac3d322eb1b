/* test_plan.c: liveness, arena planning and validation.
 *
 * Small hand-made programs with known answers, in-place takeovers (accepted
 * and refused), the validator catching broken plans, and seeded random
 * programs shaped like training graphs (forward chain with skips, views,
 * scratch and in-place candidates; residuals kept until their backward use;
 * backward in reverse with gradient aliasing and accumulation). Every random
 * program goes through the real pass_liveness, pass_plan and pass_validate, is
 * cross-checked by a brute-force oracle, and is then corrupted (overlap,
 * misalignment, out of the arena) to see the validator object; the
 * distribution of arena / lower bound is reported. Finally every model of
 * examples/ and tests/e2e/models/ under each of its configurations is built
 * through frost_build and checked the same way.
 *
 * FROST_TEST_QUICK=1 runs fewer and smaller random programs and skips the
 * timing limits (for valgrind).
 */
#include "ir.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- builders */

static int add(pool *P, ir_program *prog, const char *name, ir_space sp, int64_t bytes) {
    ir_shape sh = {.rank = 1, .dim = {bytes}};
    ir_buf_kind kind = sp == SPACE_ARENA    ? BUF_ACT
                       : sp == SPACE_INPUT  ? BUF_INPUT
                       : sp == SPACE_OUTPUT ? BUF_OUTPUT
                       : sp == SPACE_GRADS  ? BUF_PARAM_GRAD
                                            : BUF_PARAM;
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
    add_step(P, &prog, "mk", NULL, W(u));   /* 0 */
    add_step(P, &prog, "f", R(u), W(y));    /* 1: writes through an alias */
    add_step(P, &prog, "g", R(y), W(w));    /* 2 */
    add_step(P, &prog, "h", R(w), W(q));    /* 3 */
    add_step(P, &prog, "k", R(z, q), NULL); /* 4: the group ends here */
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
    add_step(P, &prog, "f", R(x), W(h));             /* 0 */
    add_step(P, &prog, "g", R(h), W(y));             /* 1 */
    add_step(P, &prog, "loss", R(y), W(loss, zero)); /* 2 */
    prog.nfwd = 3;
    add_step(P, &prog, "seed", NULL, W(dy));   /* 3 */
    add_step(P, &prog, "dg", R(dy, h), W(dw)); /* 4 */
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

/* ---------------------------------------------------------------- in place */

/* Is b's storage the one it may take over (plan.c merged them)? */
static bool took_over(const ir_program *prog, int b) {
    int d = prog->bufs[b].inplace_of;
    return d >= 0 && prog->bufs[b].offset == prog->bufs[d].offset;
}

/* x -> a = f(x) -> b = relu(a), in place -> c = g(b) */
static ir_program inplace_chain(pool *P, int *x, int *a, int *b, int *c) {
    ir_program prog = {0};
    *x = add(P, &prog, "x", SPACE_INPUT, 1024);
    *a = add(P, &prog, "a", SPACE_ARENA, 1024);
    *b = add(P, &prog, "b", SPACE_ARENA, 1024);
    *c = add(P, &prog, "c", SPACE_ARENA, 256);
    prog.bufs[*b].inplace_of = *a;
    add_step(P, &prog, "f", R(*x), W(*a));    /* 0 */
    add_step(P, &prog, "relu", R(*a), W(*b)); /* 1: a dies here */
    add_step(P, &prog, "g", R(*b), W(*c));    /* 2 */
    prog.nfwd = prog.nsteps;
    return prog;
}

START_TEST(test_inplace_basic) {
    pool *P = pool_new();
    int x, a, b, c;
    ir_program prog = inplace_chain(P, &x, &a, &b, &c);
    plan_all(&prog);
    /* Intervals stay per buffer; the storage is shared. */
    ck_assert_int_eq(prog.bufs[a].first, 0);
    ck_assert_int_eq(prog.bufs[a].last, 1);
    ck_assert_int_eq(prog.bufs[b].first, 1);
    ck_assert_int_eq(prog.bufs[b].last, 2);
    ck_assert(took_over(&prog, b));
    /* Step 1 holds a and b in the same 1024 bytes (counted once); step 2 b + c. */
    ck_assert_int_eq(prog.lower_bound, 1024 + 256);
    ck_assert_int_eq(prog.arena_bytes, 1024 + 256);
    assert_valid(&prog);

    /* A chain a -> b -> d -> e is one storage. */
    pool_free(P);
    P = pool_new();
    prog = inplace_chain(P, &x, &a, &b, &c);
    int d = add(P, &prog, "d", SPACE_ARENA, 1024), e = add(P, &prog, "e", SPACE_ARENA, 1024);
    prog.bufs[d].inplace_of = b;
    prog.bufs[e].inplace_of = d;
    add_step(P, &prog, "add", R(b, c), W(d)); /* 3: b dies */
    add_step(P, &prog, "relu", R(d), W(e));   /* 4: d dies */
    add_step(P, &prog, "use", R(e), NULL);    /* 5 */
    prog.nfwd = prog.nsteps;
    plan_all(&prog);
    ck_assert(took_over(&prog, b) && took_over(&prog, d) && took_over(&prog, e));
    ck_assert_int_eq(prog.bufs[e].offset, prog.bufs[a].offset);
    ck_assert_int_eq(prog.lower_bound, 1024 + 256);
    ck_assert_int_eq(prog.arena_bytes, 1024 + 256);
    assert_valid(&prog);

    /* Through views: the donor is read through a reshape of it, and the taker
     * is read later through a reshape of its own. */
    pool_free(P);
    P = pool_new();
    prog = (ir_program){0};
    x = add(P, &prog, "x", SPACE_INPUT, 512);
    a = add(P, &prog, "a", SPACE_ARENA, 512);
    int av = add_alias(P, &prog, "a view", a);
    b = add(P, &prog, "b", SPACE_ARENA, 512);
    int bv = add_alias(P, &prog, "b view", b);
    prog.bufs[b].inplace_of = av;
    add_step(P, &prog, "f", R(x), W(a));
    add_step(P, &prog, "relu", R(av), W(b));
    add_step(P, &prog, "use", R(bv), NULL);
    prog.nfwd = prog.nsteps;
    plan_all(&prog);
    ck_assert_int_eq(prog.bufs[b].offset, prog.bufs[a].offset);
    ck_assert_int_eq(prog.arena_bytes, 512);
    assert_valid(&prog);
    pool_free(P);
}
END_TEST

/* Each way a candidate must be refused: the plan stays valid and the two
 * storages get disjoint bytes. */
START_TEST(test_inplace_refused) {
    for (int variant = 0; variant < 8; variant++) {
        pool *P = pool_new();
        int x, a, b, c;
        ir_program prog = inplace_chain(P, &x, &a, &b, &c);
        int other = -1;
        switch (variant) {
        case 0: /* the donor is read again after the handover */
            add_step(P, &prog, "late", R(a), NULL);
            prog.nfwd = prog.nsteps;
            break;
        case 1: /* sizes differ */ prog.bufs[b].bytes = 2048; break;
        case 2: /* the donor is the caller's input */ prog.bufs[b].inplace_of = x; break;
        case 3: /* the handover step also writes the donor */
            prog.steps[1].opnd[prog.steps[1].nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = a, .writes = true};
            break;
        case 4: /* the handover step reads the taker (accumulates into it) */
            prog.steps[1].opnd[prog.steps[1].nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = b};
            break;
        case 5: /* the donor is a residual: backward reads it */ add_step(P, &prog, "bwd", R(a), NULL); break;
        case 6: /* two takers of one donor: only one gets it */
            other = add(P, &prog, "b2", SPACE_ARENA, 1024);
            prog.bufs[other].inplace_of = a;
            prog.steps[1].opnd[prog.steps[1].nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = other, .writes = true};
            add_step(P, &prog, "use", R(other), NULL);
            prog.nfwd = prog.nsteps;
            break;
        case 7: /* the taker starts after the donor died: ordinary reuse, no takeover needed */
            prog = (ir_program){0};
            x = add(P, &prog, "x", SPACE_INPUT, 1024);
            a = add(P, &prog, "a", SPACE_ARENA, 1024);
            b = add(P, &prog, "b", SPACE_ARENA, 1024);
            prog.bufs[b].inplace_of = a;
            add_step(P, &prog, "f", R(x), W(a));
            add_step(P, &prog, "g", R(a), NULL);
            add_step(P, &prog, "mk", NULL, W(b));
            add_step(P, &prog, "use", R(b), NULL);
            prog.nfwd = prog.nsteps;
            break;
        }
        plan_all(&prog);
        assert_valid(&prog);
        if (variant == 6) {
            ck_assert(took_over(&prog, b) != took_over(&prog, other));
        } else if (variant == 7) {
            ck_assert_int_lt(prog.bufs[a].last, prog.bufs[b].first);
            ck_assert_int_eq(prog.arena_bytes, 1024);
        } else {
            ck_assert_msg(!took_over(&prog, b), "variant %d", variant);
            int64_t lo = prog.bufs[a].offset, hi = lo + prog.bufs[a].bytes;
            int d = prog.bufs[b].inplace_of;
            if (prog.bufs[d].space == SPACE_ARENA)
                ck_assert(prog.bufs[b].offset >= hi || prog.bufs[b].offset + prog.bufs[b].bytes <= lo);
        }
        pool_free(P);
    }
}
END_TEST

/* The validator accepts exactly a valid takeover's overlap. */
START_TEST(test_validate_inplace) {
    pool *P = pool_new();
    int x, a, b, c;
    ir_program prog = inplace_chain(P, &x, &a, &b, &c);
    plan_all(&prog);
    ck_assert(took_over(&prog, b));
    assert_valid(&prog);
    char *msg = NULL;

    /* Without the permission the same bytes are an overlap. */
    prog.bufs[b].inplace_of = -1;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "overlap"));
    free(msg);
    prog.bufs[b].inplace_of = a;

    /* Partly on the donor's bytes. */
    int64_t off = prog.bufs[b].offset;
    prog.arena_bytes += 1024;
    prog.bufs[b].offset = off + 64;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "different offsets"));
    free(msg);
    prog.bufs[b].offset = off;
    prog.arena_bytes -= 1024;
    ck_assert(validate_capture(&prog, &msg));
    free(msg);

    /* Different extents. */
    prog.bufs[b].bytes = 960;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "different sizes"));
    free(msg);
    prog.bufs[b].bytes = 1024;

    /* The handover step writes the donor / reads the taker. */
    ir_step saved = prog.steps[1];
    prog.steps[1].opnd[0].writes = true;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "writes the donor"));
    free(msg);
    prog.steps[1] = saved;
    prog.steps[1].opnd[prog.steps[1].nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = b};
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "reads the taker"));
    free(msg);
    prog.steps[1] = saved;

    /* The donor is read after the handover (plan not redone). */
    add_step(P, &prog, "late", R(a), NULL);
    prog.nfwd = prog.nsteps;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "used after"));
    free(msg);
    prog.nsteps--;
    prog.nfwd = prog.nsteps;
    ck_assert(validate_capture(&prog, &msg));
    free(msg);

    /* A third storage on the shared bytes at the handover step is caught, even
     * though the pair itself is exempt; so is a second taker of the donor. */
    int z = add(P, &prog, "z", SPACE_ARENA, 64);
    prog.steps[1].opnd[prog.steps[1].nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = z, .writes = true};
    prog.bufs[z].offset = off;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "'z'"));
    free(msg);
    prog.bufs[z].bytes = 1024;
    prog.bufs[z].inplace_of = a;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "'z'"));
    free(msg);
    prog.steps[1].nopnd--;
    ck_assert(validate_capture(&prog, &msg)); /* z unused again: no space, no check */
    free(msg);

    /* A donor used only at its handover step (never written: first == last)
     * still has its bytes defended, through its taker. */
    prog.steps[0] = (ir_step){.kernel = "nothing", .node = -1};
    ck_assert(validate_capture(&prog, &msg));
    free(msg);
    int w = add(P, &prog, "w", SPACE_ARENA, 64);
    prog.steps[1].opnd[prog.steps[1].nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = w, .writes = true};
    prog.bufs[w].offset = off + 128;
    ck_assert(!validate_capture(&prog, &msg));
    ck_assert_ptr_nonnull(strstr(msg, "'w'"));
    free(msg);
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
 * scratch, saved masks), loss, and if train, backward in reverse order. With
 * `ip`, a layer whose output has its input's size may name that input as
 * in-place donor (drawn from ip, so the program is otherwise the same as
 * without); whether the donor dies there is up to the rest of the program. */
static void gen_training(pool *P, ir_program *prog, rng *r, int L, bool train, rng *ip) {
    int64_t palette[8];
    int npal = rint_(r, 2, 8);
    for (int k = 0; k < npal; k++)
        palette[k] = rlog(r, 64, 32e6);
    int *act = calloc((size_t)L + 1, sizeof(int));
    int *keep_in = calloc((size_t)L + 1, sizeof(int)); /* buffer read by layer i's backward for its input, -1 */
    int *keep_out = calloc((size_t)L + 1, sizeof(int));
    int *saved = calloc((size_t)L + 1, sizeof(int));
    int *skip = calloc((size_t)L + 1, sizeof(int)); /* act index added by layer i, -1 */
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
        if (ip && prog->bufs[in].bytes == sz && runif(ip) < 0.7)
            prog->bufs[act[i]].inplace_of = in; /* for i == 0 the caller's input: always refused */
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

/* Brute-force oracle for the validator, written from the rules rather than
 * from validate.c: intervals recomputed from the steps per alias group, every
 * pair of groups compared. Two groups live at a common step may share bytes
 * only as an in-place takeover: same offset and extent, the donor's last step
 * is the taker's first, and that step writes only the taker's group and reads
 * only the donor's. */
static bool brute_ok(const ir_program *prog) {
    int n = prog->nbufs;
    int *root = malloc(sizeof(int) * (size_t)(n + 1)), *first = malloc(sizeof(int) * (size_t)(n + 1)),
        *last = malloc(sizeof(int) * (size_t)(n + 1));
    int64_t *ext = malloc(sizeof(int64_t) * (size_t)(n + 1));
    bool ok = true;
    for (int b = 0; b < n; b++) {
        root[b] = root_of(prog, b);
        first[b] = last[b] = -1;
        ext[b] = 0;
    }
    for (int t = 0; t < prog->nsteps; t++)
        for (int k = 0; k < prog->steps[t].nopnd; k++)
            if (prog->steps[t].opnd[k].kind == OPND_BUF) {
                int g = root[prog->steps[t].opnd[k].buf];
                if (first[g] < 0)
                    first[g] = t;
                last[g] = t;
            }
    for (int b = 0; b < n; b++) /* the state word: live throughout, no step names it */
        if (prog->bufs[b].kind == BUF_STATE && prog->nsteps > 0)
            first[root[b]] = 0, last[root[b]] = prog->nsteps - 1;
    for (int b = 0; b < n && ok; b++) {
        const ir_buf *x = &prog->bufs[b];
        if (x->space != SPACE_ARENA || first[root[b]] < 0)
            continue;
        if (x->offset < 0 || x->offset % IR_ALIGN || x->offset + x->bytes > prog->arena_bytes ||
            x->offset != prog->bufs[root[b]].offset || prog->bufs[root[b]].space != SPACE_ARENA)
            ok = false;
        if (x->bytes > ext[root[b]])
            ext[root[b]] = x->bytes;
    }
    for (int a = 0; a < n && ok; a++) {
        if (root[a] != a || prog->bufs[a].space != SPACE_ARENA || first[a] < 0 || ext[a] == 0)
            continue;
        for (int b = a + 1; b < n && ok; b++) {
            if (root[b] != b || prog->bufs[b].space != SPACE_ARENA || first[b] < 0 || ext[b] == 0)
                continue;
            int64_t oa = prog->bufs[a].offset, ob = prog->bufs[b].offset;
            if (!(first[a] <= last[b] && first[b] <= last[a]) || !(oa < ob + ext[b] && ob < oa + ext[a]))
                continue;
            /* In place, either way round? */
            bool pair = false;
            for (int dir = 0; dir < 2 && !pair; dir++) {
                int D = dir ? b : a, T = dir ? a : b;
                bool named = false;
                for (int m = 0; m < n && !named; m++)
                    named = root[m] == T && prog->bufs[m].inplace_of >= 0 && root[prog->bufs[m].inplace_of] == D;
                if (!named || oa != ob || ext[a] != ext[b] || last[D] != first[T])
                    continue;
                const ir_step *s = &prog->steps[first[T]];
                bool w = false, rd = false, bad = false;
                for (int k = 0; k < s->nopnd; k++) {
                    if (s->opnd[k].kind != OPND_BUF)
                        continue;
                    int g = root[s->opnd[k].buf];
                    if (g == T)
                        w = true, bad |= !s->opnd[k].writes;
                    if (g == D)
                        rd = true, bad |= s->opnd[k].writes;
                }
                pair = w && rd && !bad;
            }
            if (!pair)
                ok = false;
        }
    }
    free(root);
    free(first);
    free(last);
    free(ext);
    return ok;
}

/* Move a storage (its whole alias group) to a new offset. */
static void move_group(ir_program *prog, int g, int64_t offset) {
    for (int b = 0; b < prog->nbufs; b++)
        if (prog->bufs[b].space == SPACE_ARENA && root_of(prog, b) == g)
            prog->bufs[b].offset = offset;
}

/* Are g and h the two sides of an in-place permission (either way)? */
static bool inplace_related(const ir_program *prog, int g, int h) {
    for (int b = 0; b < prog->nbufs; b++) {
        int d = prog->bufs[b].inplace_of;
        if (d < 0)
            continue;
        int rb = root_of(prog, b), rd = root_of(prog, d);
        if ((rb == g && rd == h) || (rb == h && rd == g))
            return true;
    }
    return false;
}

/* Corrupt a valid plan three ways (two storages live together on the same
 * bytes; a misaligned offset; a storage beyond the arena's end), checking that
 * the validator (and the oracle, when affordable) rejects each, and restore it.
 * Returns how many corruptions were tried. */
static int corrupt_and_check(ir_program *prog, uint64_t seed, bool oracle) {
    rng r = {.s = seed};
    int n = prog->nbufs, tried = 0;
    int *live = malloc(sizeof(int) * (size_t)(n + 1));
    /* Live roots (with bytes) at a random busy step. */
    int nlive = 0;
    for (int attempt = 0; attempt < 8 && nlive < 2 && prog->nsteps > 0; attempt++) {
        int t = rint_(&r, 0, prog->nsteps - 1);
        nlive = 0;
        for (int b = 0; b < n; b++) {
            const ir_buf *x = &prog->bufs[b];
            if (x->space == SPACE_ARENA && x->alias_of < 0 && x->first >= 0 && x->first <= t && t <= x->last &&
                x->bytes > 0)
                live[nlive++] = b;
        }
    }
    if (nlive >= 2) {
        int g = live[rint_(&r, 0, nlive - 1)], h = -1;
        for (int k = 0; k < nlive && h < 0; k++) {
            int c = live[(k + rint_(&r, 0, nlive - 1)) % nlive];
            if (c != g && !inplace_related(prog, g, c) &&
                prog->bufs[g].bytes <= prog->arena_bytes - prog->bufs[c].offset)
                h = c;
        }
        if (h >= 0) {
            int64_t saved = prog->bufs[g].offset;
            move_group(prog, g, prog->bufs[h].offset);
            ck_assert_msg(!pass_validate(prog, NULL), "overlap of '%s' and '%s' not caught", prog->bufs[g].name,
                          prog->bufs[h].name);
            if (oracle)
                ck_assert(!brute_ok(prog));
            move_group(prog, g, saved);
            tried++;
        }
        int64_t saved = prog->bufs[g].offset;
        move_group(prog, g, saved + 8 * rint_(&r, 1, 7)); /* misaligned */
        ck_assert(!pass_validate(prog, NULL));
        move_group(prog, g, ir_align_up(prog->arena_bytes - prog->bufs[g].bytes + 1)); /* past the end */
        ck_assert(!pass_validate(prog, NULL));
        move_group(prog, g, saved);
        int64_t arena = prog->arena_bytes; /* an arena too small for the plan */
        int64_t top = 0;
        for (int b = 0; b < n; b++)
            if (prog->bufs[b].space == SPACE_ARENA && prog->bufs[b].first >= 0 &&
                prog->bufs[b].offset + prog->bufs[b].bytes > top)
                top = prog->bufs[b].offset + prog->bufs[b].bytes;
        prog->arena_bytes = top - 1;
        ck_assert(!pass_validate(prog, NULL));
        prog->arena_bytes = arena;
        ck_assert(pass_validate(prog, stderr));
        tried += 3;
    }
    free(live);
    return tried;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* "n programs: mean, p50/p90/p99/max, exact, histogram" */
static void report_ratios(const char *what, double *ratio, int n) {
    if (n == 0)
        return;
    qsort(ratio, (size_t)n, sizeof *ratio, cmp_double);
    static const double edges[] = {1.0, 1.001, 1.01, 1.02, 1.05};
    int bucket[6] = {0};
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += ratio[i];
        int k = 0;
        while (k < 5 && ratio[i] > edges[k])
            k++;
        bucket[k]++;
    }
    printf("plan: %s: %d programs, arena/lower_bound mean %.4f, p50 %.4f, p90 %.4f, p99 %.4f, max %.4f\n"
           "plan:   = 1: %d, (1, 1.001]: %d, (1.001, 1.01]: %d, (1.01, 1.02]: %d, (1.02, 1.05]: %d, > 1.05: %d\n",
           what, n, sum / n, ratio[n / 2], ratio[(int)(0.9 * (n - 1))], ratio[(int)(0.99 * (n - 1))], ratio[n - 1],
           bucket[0], bucket[1], bucket[2], bucket[3], bucket[4], bucket[5]);
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
    double *ratios = malloc(sizeof(double) * (size_t)nprog);
    double plan_time = 0, max_time = 0;
    int worst_seed = -1, nratio = 0, biggest = 0, most_steps = 0, candidates = 0, taken = 0, corrupted = 0;
    double worst = 0;
    for (int seed = 0; seed < nprog; seed++) {
        rng r = {.s = 0x5eed0000u + (uint64_t)seed}, ip = {.s = 0x1b1ace00u + (uint64_t)seed};
        pool *P = pool_new();
        ir_program prog = {0};
        int L = seed % 25 == 24 ? rint_(&r, 800, quick() ? 1000 : 3000) : rint_(&r, 1, 200);
        bool train = seed % 10 != 9;
        gen_training(P, &prog, &r, L, train, &ip);
        double t0 = now();
        plan_all(&prog);
        double dt = now() - t0;
        plan_time += dt;
        if (dt > max_time)
            max_time = dt;
        if (prog.nbufs > biggest)
            biggest = prog.nbufs;
        if (prog.nsteps > most_steps)
            most_steps = prog.nsteps;
        assert_valid(&prog);
        if (prog.nbufs <= 3000)
            ck_assert_msg(brute_ok(&prog), "seed %d: the oracle rejects a plan the validator accepts", seed);
        ck_assert_int_gt(prog.lower_bound, 0);
        if (!train)
            ck_assert_int_eq(prog.residual_bytes, 0);
        for (int b = 0; b < prog.nbufs; b++)
            if (prog.bufs[b].inplace_of >= 0) {
                candidates++;
                taken += took_over(&prog, b);
            }
        double ratio = (double)prog.arena_bytes / (double)prog.lower_bound;
        if (getenv("PLAN_VERBOSE") && ratio > 1.005)
            printf("seed %d: %d buffers, ratio %.4f\n", seed, prog.nbufs, ratio);
        ratios[nratio++] = ratio;
        if (ratio > worst) {
            worst = ratio;
            worst_seed = seed;
        }
        corrupted += corrupt_and_check(&prog, 0xbad0000u + (uint64_t)seed, prog.nbufs <= 3000);
        pool_free(P);
    }
    double mean = 0;
    for (int i = 0; i < nratio; i++)
        mean += ratios[i] / nratio;
    printf("plan: training-shaped programs: up to %d buffers and %d steps; worst seed %d; %d in-place candidates, "
           "%d taken; %d corrupted plans rejected; plan time total %.3f s, max %.3f s\n",
           biggest, most_steps, worst_seed, candidates, taken, corrupted, plan_time, max_time);
    report_ratios("training-shaped", ratios, nratio);
    fflush(stdout);
    ck_assert(mean <= 1.01);
    ck_assert(worst <= 1.05);
    ck_assert_int_gt(taken, 0);
    ck_assert_int_lt(taken, candidates); /* some candidates must be refused too */
    free(ratios);
}
END_TEST

/* Random in-place permissions on an unstructured program: for some storages,
 * a donor whose last step is the storage's first, made the same size; the
 * handover step is usually (not always) made to write only the taker and
 * read only the donor, so that both accepted and refused takeovers occur. */
static void add_unstructured_inplace(ir_program *prog, rng *ip) {
    pass_liveness(prog);
    int n = prog->nbufs;
    for (int b = 0; b < n; b++) {
        ir_buf *x = &prog->bufs[b];
        if (x->alias_of >= 0 || x->first < 0 || runif(ip) >= 0.3)
            continue;
        int start = rint_(ip, 0, n - 1), d = -1;
        for (int k = 0; k < n && d < 0; k++) {
            int c = (start + k) % n;
            if (c != b && prog->bufs[c].alias_of < 0 && prog->bufs[c].last == x->first)
                d = c;
        }
        if (d < 0)
            continue;
        x->inplace_of = d;
        x->bytes = prog->bufs[d].bytes;
        for (int m = 0; m < n; m++) /* aliases no larger than their root */
            if (prog->bufs[m].alias_of >= 0 && root_of(prog, m) == b && prog->bufs[m].bytes > x->bytes)
                prog->bufs[m].bytes = x->bytes;
        if (runif(ip) < 0.8) {
            ir_step *s = &prog->steps[x->first];
            for (int k = 0; k < s->nopnd; k++)
                if (s->opnd[k].kind == OPND_BUF)
                    s->opnd[k].writes = root_of(prog, s->opnd[k].buf) == b;
        }
    }
}

START_TEST(test_random_unstructured) {
    int nprog = quick() ? 30 : 200;
    double *ratios = malloc(sizeof(double) * (size_t)nprog);
    int n = 0, candidates = 0, taken = 0, corrupted = 0;
    for (int seed = 0; seed < nprog; seed++) {
        rng r = {.s = 0xabc00000u + (uint64_t)seed}, ip = {.s = 0xface00u + (uint64_t)seed};
        pool *P = pool_new();
        ir_program prog = {0};
        int nb = rint_(&r, 1, seed % 20 == 19 ? 2000 : 150);
        gen_unstructured(P, &prog, &r, nb, rint_(&r, 1, 2 * nb));
        if (seed % 2)
            add_unstructured_inplace(&prog, &ip);
        plan_all(&prog);
        assert_valid(&prog);
        ck_assert_msg(brute_ok(&prog), "seed %d: the oracle rejects a plan the validator accepts", seed);
        for (int b = 0; b < prog.nbufs; b++)
            if (prog.bufs[b].inplace_of >= 0 && prog.bufs[b].first >= 0) {
                candidates++;
                taken += took_over(&prog, b) && prog.bufs[b].bytes > 0 &&
                         prog.bufs[root_of(&prog, prog.bufs[b].inplace_of)].last == prog.bufs[b].first;
            }
        if (prog.lower_bound > 0)
            ratios[n++] = (double)prog.arena_bytes / (double)prog.lower_bound;
        /* Break the plan; validator and oracle must both object. */
        corrupted += corrupt_and_check(&prog, 0xdead00u + (uint64_t)seed, true);
        pool_free(P);
    }
    printf("plan: unstructured programs: %d in-place candidates, %d taken; %d corrupted plans rejected\n", candidates,
           taken, corrupted);
    report_ratios("unstructured", ratios, n);
    fflush(stdout);
    ck_assert_int_gt(taken, 0);
    free(ratios);
}
END_TEST

/* Thousands of buffers plan into a valid arena near the lower bound. The time
 * is printed, not asserted: a loaded machine must not fail the suite, and
 * bench/scale.sh measures how planning time grows with the model. */
START_TEST(test_speed) {
    rng r = {.s = 42};
    pool *P = pool_new();
    ir_program prog = {0};
    rng ip = {.s = 7};
    gen_training(P, &prog, &r, quick() ? 1000 : 4000, true, &ip);
    double t0 = now();
    plan_all(&prog);
    double dt = now() - t0;
    t0 = now();
    ck_assert(pass_validate(&prog, stderr));
    double dv = now() - t0;
    printf("plan: %d buffers, %d steps: liveness+plan %.3f s, validate %.4f s, arena/lower_bound %.4f\n", prog.nbufs,
           prog.nsteps, dt, dv, (double)prog.arena_bytes / (double)prog.lower_bound);
    fflush(stdout);
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
    pool_free(P);
}
END_TEST

/* ---------------------------------------------------------------- real models */

#ifndef FROST_SOURCE_ROOT
#define FROST_SOURCE_ROOT "."
#endif

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char chunk[4096];
    for (size_t got; (got = fread(chunk, 1, sizeof chunk, f)) > 0;)
        fwrite(chunk, 1, got, mem);
    fclose(f);
    fclose(mem);
    return text;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* ---------------------------------------------------------------- widening */

/* The largest aligned range of [0, arena) that no buffer other than `self`
 * live at step t touches, by brute force over candidate starts. */
static int64_t oracle_gap(const ir_program *prog, int t, int self) {
    int64_t best = 0;
    for (int c = -1; c < prog->nbufs; c++) {
        int64_t start = 0;
        if (c >= 0) {
            const ir_buf *cb = &prog->bufs[c];
            if (c == self || cb->space != SPACE_ARENA || cb->first > t || cb->last < t || cb->first < 0)
                continue;
            start = ir_align_up(cb->offset + cb->bytes);
        }
        int64_t end = prog->arena_bytes;
        for (int b = 0; b < prog->nbufs; b++) {
            const ir_buf *o = &prog->bufs[b];
            if (b == self || o->space != SPACE_ARENA || o->bytes <= 0 || o->first > t || o->last < t || o->first < 0)
                continue;
            if (o->offset < start + 1 && o->offset + o->bytes > start)
                end = start; /* start lies inside o */
            else if (o->offset >= start && o->offset < end)
                end = o->offset;
        }
        if (end - start > best)
            best = end - start;
    }
    return best;
}

static int add_scratch(pool *P, ir_program *prog, const char *name, int64_t floats) {
    ir_shape sh = {.rank = 1, .dim = {floats}};
    return ir_add_buf(P, prog, name, BUF_SCRATCH, SPACE_ARENA, DT_F32, sh, -1);
}

/* A step that can take blocks: reads `in`, writes `out` and scratch `scr`; its
 * int operand (lowered as 1) is the block size. */
static void add_blocked_step(pool *P, ir_program *prog, int in, int out, int scr, int64_t most, int64_t per) {
    ir_step *s = VEC_PUSH(P, prog->steps, prog->nsteps, prog->capsteps);
    memset(s, 0, sizeof *s);
    s->kernel = "blocked";
    s->node = -1;
    s->opnd[s->nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = in};
    s->opnd[s->nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = out, .writes = true};
    s->opnd[s->nopnd++] = (ir_opnd){.kind = OPND_BUF, .buf = scr, .writes = true};
    s->opnd[s->nopnd++] = (ir_opnd){.kind = OPND_INT, .i = 1};
    s->scratch_opnd = 2, s->blocks_opnd = 3, s->blocks_max = most, s->blocked_bytes = per;
}

/* A big early buffer sets the arena; three later steps find it mostly free:
 * one takes its cap, one finds no room for two blocks, one takes what the
 * largest gap holds. The arena and the lower bound do not move. */
START_TEST(test_widen) {
    pool *P = pool_new();
    ir_program prog = {0};
    int x = add(P, &prog, "x", SPACE_INPUT, 64);
    int big = add(P, &prog, "big", SPACE_ARENA, 16384);
    int a = add(P, &prog, "a", SPACE_ARENA, 256);
    int c = add(P, &prog, "c", SPACE_ARENA, 256);
    int d = add(P, &prog, "d", SPACE_ARENA, 256);
    int e = add(P, &prog, "e", SPACE_ARENA, 256);
    int s1 = add_scratch(P, &prog, "s1", 64), s2 = add_scratch(P, &prog, "s2", 64);
    int s3 = add_scratch(P, &prog, "s3", 64);
    add_step(P, &prog, "f", R(x), W(big));
    add_step(P, &prog, "g", R(big), W(a));
    add_blocked_step(P, &prog, a, c, s1, 3, 1000);     /* step 2: capped at 3 */
    add_blocked_step(P, &prog, c, d, s2, 100, 100000); /* step 3: no room for 2 */
    add_blocked_step(P, &prog, d, e, s3, 1000, 1000);  /* step 4: as many as fit */
    prog.nfwd = prog.nsteps;
    plan_all(&prog);
    const int64_t arena = prog.arena_bytes, bound = prog.lower_bound;
    ck_assert_int_eq(arena, 16384 + 256);
    int64_t gap4 = oracle_gap(&prog, 4, s3);
    ck_assert_int_ge(gap4, 2 * 1000); /* 16640 bytes, 512 of them live: at most three gaps */

    pass_widen(&prog);
    ck_assert_int_eq(prog.arena_bytes, arena);
    ck_assert_int_eq(prog.lower_bound, bound);
    ck_assert_int_eq(prog.steps[2].opnd[3].i, 3);
    ck_assert_int_eq(prog.bufs[s1].bytes, 3000);
    ck_assert_int_eq(prog.bufs[s1].shape.dim[0], 750);
    ck_assert_int_eq(prog.steps[3].opnd[3].i, 1);
    ck_assert_int_eq(prog.bufs[s2].bytes, 256);
    ck_assert_int_eq(prog.steps[4].opnd[3].i, gap4 / 1000);
    ck_assert_int_eq(prog.bufs[s3].bytes, gap4 / 1000 * 1000);
    for (int b = s1; b <= s3; b++) {
        ck_assert_int_eq(prog.bufs[b].offset % IR_ALIGN, 0);
        ck_assert_int_le(prog.bufs[b].offset + prog.bufs[b].bytes, arena);
    }
    assert_valid(&prog);
    ck_assert(brute_ok(&prog));
    pool_free(P);
}
END_TEST

/* Every model of examples/ and tests/e2e/models/ under `all`, each of its own
 * configurations and `none`: built by frost_build (which validates and panics
 * on failure), cross-checked by the oracle, corrupted, and measured. */
START_TEST(test_models) {
    static const char *dirs[] = {"examples", "tests/e2e/models"};
    int nmodels = 0, nplans = 0, corrupted = 0, taken = 0, blocked = 0, blockable = 0;
    double worst = 0;
    char worst_what[512] = "";
    for (size_t di = 0; di < sizeof dirs / sizeof dirs[0]; di++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", FROST_SOURCE_ROOT, dirs[di]);
        DIR *dp = opendir(dir);
        ck_assert_msg(dp != NULL, "cannot open %s", dir);
        char *names[256];
        int nnames = 0;
        for (struct dirent *e; (e = readdir(dp)) != NULL && nnames < 256;) {
            size_t len = strlen(e->d_name);
            if (len > 6 && strcmp(e->d_name + len - 6, ".frost") == 0)
                names[nnames++] = strdup(e->d_name);
        }
        closedir(dp);
        qsort(names, (size_t)nnames, sizeof *names, cmp_str);
        for (int k = 0; k < nnames; k++) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, names[k]);
            char *src = slurp(path);
            ck_assert_msg(src != NULL, "cannot read %s", path);
            nmodels++;
            /* The configurations: all, the file's own, none. */
            const char *configs[66];
            int nconfigs = 0;
            pool *lp = pool_new();
            diag_ctx d;
            diag_init(&d, path, src, strlen(src), stderr);
            frost_select all = {.config = "all"};
            ir_module *m0 = frost_build(lp, &d, NULL, 0, &all);
            ck_assert_msg(m0 != NULL, "%s does not build", path);
            configs[nconfigs++] = "all";
            for (int c = 0; c < m0->graph->nconfigs && nconfigs < 65; c++)
                if (strcmp(m0->graph->configs[c].name, "all") && strcmp(m0->graph->configs[c].name, "none"))
                    configs[nconfigs++] = m0->graph->configs[c].name;
            configs[nconfigs++] = "none";
            for (int c = 0; c < nconfigs; c++) {
                pool *cp = pool_new();
                frost_select sel = {.config = configs[c]};
                diag_init(&d, path, src, strlen(src), stderr);
                ir_module *m = frost_build(cp, &d, NULL, 0, &sel);
                ck_assert_msg(m != NULL, "%s --config %s does not build", path, configs[c]);
                ir_program *progs[2] = {&m->train, &m->infer};
                for (int pi = 0; pi < 2; pi++) {
                    ir_program *prog = progs[pi];
                    assert_valid(prog);
                    ck_assert(brute_ok(prog));
                    for (int b = 0; b < prog->nbufs; b++)
                        taken += took_over(prog, b);
                    for (int t = 0; t < prog->nsteps; t++) {
                        const ir_step *st = &prog->steps[t];
                        if (st->blocks_opnd < 0 || st->blocks_max < 2)
                            continue;
                        blockable++;
                        blocked += st->opnd[st->blocks_opnd].i > 1;
                        ck_assert_int_le(st->opnd[st->blocks_opnd].i, st->blocks_max);
                    }
                    double ratio = prog->lower_bound ? (double)prog->arena_bytes / (double)prog->lower_bound : 1.0;
                    if (ratio > worst) {
                        worst = ratio;
                        snprintf(worst_what, sizeof worst_what, "%s %s %s", names[k], configs[c],
                                 pi ? "infer" : "train");
                    }
                    ck_assert_msg(ratio <= 1.02, "%s --config %s, %s: arena %lld, lower bound %lld (ratio %.4f)", path,
                                  configs[c], pi ? "infer" : "train", (long long)prog->arena_bytes,
                                  (long long)prog->lower_bound, ratio);
                    corrupted += corrupt_and_check(prog, 0x5a5a00u + (uint64_t)(nplans * 2 + pi), true);
                }
                nplans++;
                pool_free(cp);
            }
            pool_free(lp);
            free(src);
            free(names[k]);
        }
    }
    printf("plan: %d models, %d configurations (train and infer each): worst arena/lower_bound %.4f (%s); "
           "%d in-place takeovers; %d of %d blockable steps widened; %d corrupted plans rejected\n",
           nmodels, nplans, worst, worst_what, taken, blocked, blockable, corrupted);
    fflush(stdout);
    ck_assert_int_gt(nmodels, 2);
    ck_assert_int_gt(blocked, 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("small");
    tcase_add_test(tc, test_chain);
    tcase_add_test(tc, test_alias_group);
    tcase_add_test(tc, test_residual_and_unused);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_widen);
    suite_add_tcase(s, tc);
    TCase *ti = tcase_create("inplace");
    tcase_add_test(ti, test_inplace_basic);
    tcase_add_test(ti, test_inplace_refused);
    tcase_add_test(ti, test_validate_inplace);
    suite_add_tcase(s, ti);
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
    TCase *tm = tcase_create("models");
    tcase_set_timeout(tm, 600);
    tcase_add_test(tm, test_models);
    suite_add_tcase(s, tm);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
