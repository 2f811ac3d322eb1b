/* test_codegen.c: runtime kernels against naive loops, then codegen end to end.
 *
 * The ir_modules here are built by hand (static arrays, no frontend, no
 * passes), so these tests pin down exactly what codegen promises: a step is
 * one call of its kernel with operands in prototype order, buffers resolve
 * through alias_of to their space and offset, kernel error codes come back
 * from the entry points, and the header/object pair compiles, links (two
 * models in one program) and computes what a reference loop computes.
 * Tests that need a C compiler are skipped, not failed, when `cc` is absent.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir.h"
#include "rt.h"

/* ================================================================ helpers */

static uint64_t rng_state;
static float frand(void) /* deterministic, in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static void fill_rand(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        p[i] = frand();
}

static void expect_close(const float *got, const float *want, int64_t n, float tol, const char *what) {
    for (int64_t i = 0; i < n; i++) {
        float d = fabsf(got[i] - want[i]);
        float scale = fabsf(want[i]) > 1.0f ? fabsf(want[i]) : 1.0f;
        ck_assert_msg(d <= tol * scale, "%s[%lld]: got %.9g, want %.9g", what, (long long)i, (double)got[i],
                      (double)want[i]);
    }
}

/* ================================================================ kernels */

enum { KM = 5, KK = 7, KN = 3 };

/* y[M,N] = x[M,K] w[N,K]^T + b */
static void ref_linear(const float *x, const float *w, const float *b, float *y, int M, int K, int N) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = b ? b[j] : 0.0;
            for (int k = 0; k < K; k++)
                s += (double)x[i * K + k] * w[j * K + k];
            y[i * N + j] = (float)s;
        }
}

START_TEST(k_copy_fill_acc) {
    float a[10], b[10], want[10];
    rng_state = 1;
    fill_rand(a, 10);
    rt_copy(b, a, sizeof a);
    ck_assert(!memcmp(a, b, sizeof a));
    rt_copy(NULL, a, sizeof a); /* no-op, must not crash */
    rt_copy(b, a, 0);
    rt_fill_f32(b, 7, 2.5f);
    for (int i = 0; i < 7; i++)
        ck_assert(b[i] == 2.5f);
    ck_assert(b[7] == a[7]);
    for (int acc = 0; acc <= 1; acc++) {
        fill_rand(b, 10);
        for (int i = 0; i < 10; i++)
            want[i] = (acc ? b[i] : 0.0f) + a[i];
        rt_acc_f32(b, a, 10, acc);
        expect_close(b, want, 10, 0, "acc");
    }
}
END_TEST

START_TEST(k_init_uniform) {
    enum { N = 10000 };
    static float p[N], q[N];
    rt_init_uniform(p, N, 42, 3, 0.5f);
    rt_init_uniform(q, N, 42, 3, 0.5f);
    ck_assert(!memcmp(p, q, sizeof p)); /* deterministic */
    double mean = 0, sq = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(p[i] >= -0.5f && p[i] < 0.5f);
        mean += p[i], sq += (double)p[i] * p[i];
    }
    mean /= N, sq /= N;
    ck_assert_msg(fabs(mean) < 0.02, "mean %g", mean);
    ck_assert_msg(fabs(sq - 0.25 / 3) < 0.01, "E[x^2] %g", sq); /* U(-a,a): a^2/3 */
    /* A prefix of a longer tensor equals the shorter tensor: values depend on i only. */
    rt_init_uniform(q, 17, 42, 3, 0.5f);
    ck_assert(!memcmp(p, q, 17 * sizeof *p));
    rt_init_uniform(q, N, 42, 4, 0.5f);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += p[i] == q[i];
    ck_assert_msg(same < 10, "stream 3 and 4 share %d values", same);
    rt_init_uniform(q, N, 43, 3, 0.5f);
    same = 0;
    for (int i = 0; i < N; i++)
        same += p[i] == q[i];
    ck_assert_msg(same < 10, "seeds 42 and 43 share %d values", same);
}
END_TEST

START_TEST(k_linear) {
    float x[KM * KK], w[KN * KK], b[KN], y[KM * KN], want[KM * KN];
    rng_state = 2;
    fill_rand(x, KM * KK), fill_rand(w, KN * KK), fill_rand(b, KN);
    rt_linear_fwd(x, w, b, y, KM, KK, KN);
    ref_linear(x, w, b, want, KM, KK, KN);
    expect_close(y, want, KM * KN, 1e-5f, "linear+b");
    rt_linear_fwd(x, w, NULL, y, KM, KK, KN);
    ref_linear(x, w, NULL, want, KM, KK, KN);
    expect_close(y, want, KM * KN, 1e-5f, "linear");
    /* K = 0: y is the bias (no BLAS call with a zero leading dimension). */
    rt_linear_fwd(x, w, b, y, KM, 0, KN);
    for (int i = 0; i < KM * KN; i++)
        ck_assert(y[i] == b[i % KN]);
    rt_linear_fwd(x, w, NULL, y, KM, 0, KN);
    for (int i = 0; i < KM * KN; i++)
        ck_assert(y[i] == 0.0f);
    rt_linear_fwd(x, w, b, y, 0, KK, KN); /* M = 0: nothing to do */
}
END_TEST

START_TEST(k_linear_bwd) {
    float x[KM * KK], w[KN * KK], dy[KM * KN], dx[KM * KK], dw[KN * KK];
    float wdx[KM * KK], wdw[KN * KK];
    rng_state = 3;
    fill_rand(x, KM * KK), fill_rand(w, KN * KK), fill_rand(dy, KM * KN);
    for (int acc = 0; acc <= 1; acc++) {
        fill_rand(dx, KM * KK), fill_rand(dw, KN * KK);
        for (int i = 0; i < KM; i++)
            for (int k = 0; k < KK; k++) {
                double s = acc ? dx[i * KK + k] : 0.0;
                for (int j = 0; j < KN; j++)
                    s += (double)dy[i * KN + j] * w[j * KK + k];
                wdx[i * KK + k] = (float)s;
            }
        for (int j = 0; j < KN; j++)
            for (int k = 0; k < KK; k++) {
                double s = acc ? dw[j * KK + k] : 0.0;
                for (int i = 0; i < KM; i++)
                    s += (double)dy[i * KN + j] * x[i * KK + k];
                wdw[j * KK + k] = (float)s;
            }
        rt_linear_bwd_x(dy, w, dx, KM, KK, KN, acc);
        rt_linear_bwd_w(dy, x, dw, KM, KK, KN, acc);
        expect_close(dx, wdx, KM * KK, 1e-5f, acc ? "dx acc" : "dx");
        expect_close(dw, wdw, KN * KK, 1e-5f, acc ? "dw acc" : "dw");
    }
}
END_TEST

START_TEST(k_sum_rows) {
    float dy[KM * KN], db[KN], want[KN];
    rng_state = 4;
    fill_rand(dy, KM * KN);
    for (int acc = 0; acc <= 1; acc++) {
        fill_rand(db, KN);
        for (int j = 0; j < KN; j++) {
            double s = acc ? db[j] : 0.0;
            for (int i = 0; i < KM; i++)
                s += dy[i * KN + j];
            want[j] = (float)s;
        }
        rt_sum_rows(dy, db, KM, KN, acc);
        expect_close(db, want, KN, 1e-5f, "sum_rows");
    }
}
END_TEST

START_TEST(k_matmul) {
    float a[KM * KK], b[KK * KN], c[KM * KN], dc[KM * KN], da[KM * KK], db[KK * KN];
    float want_c[KM * KN], want_da[KM * KK], want_db[KK * KN];
    rng_state = 5;
    fill_rand(a, KM * KK), fill_rand(b, KK * KN), fill_rand(dc, KM * KN);
    for (int i = 0; i < KM; i++)
        for (int j = 0; j < KN; j++) {
            double s = 0;
            for (int k = 0; k < KK; k++)
                s += (double)a[i * KK + k] * b[k * KN + j];
            want_c[i * KN + j] = (float)s;
        }
    rt_matmul_fwd(a, b, c, KM, KK, KN);
    expect_close(c, want_c, KM * KN, 1e-5f, "matmul");
    for (int acc = 0; acc <= 1; acc++) {
        fill_rand(da, KM * KK), fill_rand(db, KK * KN);
        for (int i = 0; i < KM; i++)
            for (int k = 0; k < KK; k++) {
                double s = acc ? da[i * KK + k] : 0.0;
                for (int j = 0; j < KN; j++)
                    s += (double)dc[i * KN + j] * b[k * KN + j];
                want_da[i * KK + k] = (float)s;
            }
        for (int k = 0; k < KK; k++)
            for (int j = 0; j < KN; j++) {
                double s = acc ? db[k * KN + j] : 0.0;
                for (int i = 0; i < KM; i++)
                    s += (double)a[i * KK + k] * dc[i * KN + j];
                want_db[k * KN + j] = (float)s;
            }
        rt_matmul_bwd_a(dc, b, da, KM, KK, KN, acc);
        rt_matmul_bwd_b(a, dc, db, KM, KK, KN, acc);
        expect_close(da, want_da, KM * KK, 1e-5f, "matmul da");
        expect_close(db, want_db, KK * KN, 1e-5f, "matmul db");
    }
}
END_TEST

START_TEST(k_relu) {
    enum { N = 21 };
    float x[N], y[N], dy[N], dx[N], want[N];
    uint8_t bits[4];
    rng_state = 6;
    fill_rand(x, N), fill_rand(dy, N);
    x[3] = 0.0f; /* relu'(0) = 0, as in PyTorch */
    rt_relu_fwd(x, y, N);
    for (int i = 0; i < N; i++)
        ck_assert(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    memset(bits, 0xA5, sizeof bits);
    rt_sign_mask(y, bits, N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq((bits[i / 8] >> (i % 8)) & 1, y[i] > 0);
    ck_assert_int_eq(bits[3], 0xA5);         /* exactly ceil(21/8) = 3 bytes written */
    ck_assert_int_eq(bits[2] >> (N % 8), 0); /* padding bits clear */
    for (int acc = 0; acc <= 1; acc++) {
        for (int variant = 0; variant < 2; variant++) {
            fill_rand(dx, N);
            for (int i = 0; i < N; i++)
                want[i] = (acc ? dx[i] : 0.0f) + (y[i] > 0 ? dy[i] : 0.0f);
            if (variant)
                rt_relu_bwd_mask(bits, dy, dx, N, acc);
            else
                rt_relu_bwd_out(y, dy, dx, N, acc);
            expect_close(dx, want, N, 0, variant ? "relu_bwd_mask" : "relu_bwd_out");
        }
    }
}
END_TEST

START_TEST(k_add) {
    float a[12], b[4], y[12];
    rng_state = 7;
    fill_rand(a, 12), fill_rand(b, 4);
    rt_add_fwd(a, b, y, 3, 4);
    for (int i = 0; i < 12; i++)
        ck_assert(y[i] == a[i] + b[i % 4]);
    float c[12];
    fill_rand(c, 12);
    rt_add_fwd(a, c, y, 1, 12);
    for (int i = 0; i < 12; i++)
        ck_assert(y[i] == a[i] + c[i]);
}
END_TEST

START_TEST(k_cross_entropy) {
    enum { M = 4, C = 5 };
    float logits[M * C], probs[M * C], want_p[M * C], loss = -1, dl[M * C], want_dl[M * C];
    int32_t labels[M] = {0, 4, 2, 2};
    rng_state = 8;
    fill_rand(logits, M * C);
    logits[7] = 80.0f; /* exp overflows without max subtraction */
    double want_loss = 0;
    for (int i = 0; i < M; i++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < C; j++)
            mx = fmax(mx, logits[i * C + j]);
        for (int j = 0; j < C; j++)
            s += exp(logits[i * C + j] - mx);
        for (int j = 0; j < C; j++)
            want_p[i * C + j] = (float)(exp(logits[i * C + j] - mx) / s);
        want_loss += mx + log(s) - logits[i * C + labels[i]];
    }
    want_loss /= M;
    ck_assert_int_eq(rt_cross_entropy_fwd(logits, labels, probs, &loss, M, C, -100), RT_OK);
    ck_assert_msg(fabs(loss - want_loss) < 1e-5, "loss %g want %g", (double)loss, want_loss);
    expect_close(probs, want_p, M * C, 1e-6f, "probs");
    loss = -1;
    ck_assert_int_eq(rt_cross_entropy_fwd(logits, labels, NULL, &loss, M, C, -100), RT_OK);
    ck_assert_msg(fabs(loss - want_loss) < 1e-5, "loss without probs");

    float dloss = 0.5f;
    for (int acc = 0; acc <= 1; acc++) {
        fill_rand(dl, M * C);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < C; j++)
                want_dl[i * C + j] = (acc ? dl[i * C + j] : 0.0f) + (want_p[i * C + j] - (j == labels[i])) * dloss / M;
        rt_cross_entropy_bwd(probs, labels, &dloss, dl, M, C, -100, acc);
        expect_close(dl, want_dl, M * C, 1e-6f, "dlogits");
    }

    /* Bad labels: error code, and nothing written. */
    int32_t bad[2][M] = {{0, 1, 5, 2}, {0, -1, 1, 2}};
    for (int t = 0; t < 2; t++) {
        loss = 123.0f;
        memset(probs, 0, sizeof probs);
        ck_assert_int_eq(rt_cross_entropy_fwd(logits, bad[t], probs, &loss, M, C, -100), RT_ERR_LABEL);
        ck_assert(loss == 123.0f);
        ck_assert(probs[0] == 0.0f);
    }
}
END_TEST

START_TEST(k_mse) {
    enum { N = 9 };
    float pred[N], target[N], diff[N], dx[N], want[N], loss = -1;
    rng_state = 9;
    fill_rand(pred, N), fill_rand(target, N);
    double wl = 0;
    for (int i = 0; i < N; i++)
        wl += (double)(pred[i] - target[i]) * (pred[i] - target[i]);
    wl /= N;
    rt_mse_fwd(pred, target, diff, &loss, N);
    ck_assert_msg(fabs(loss - wl) < 1e-6, "mse %g want %g", (double)loss, wl);
    for (int i = 0; i < N; i++)
        ck_assert(diff[i] == pred[i] - target[i]);
    loss = -1;
    rt_mse_fwd(pred, target, NULL, &loss, N);
    ck_assert(fabs(loss - wl) < 1e-6);
    float dloss = 3.0f;
    for (int sign = -1; sign <= 1; sign += 2)
        for (int acc = 0; acc <= 1; acc++) {
            fill_rand(dx, N);
            for (int i = 0; i < N; i++)
                want[i] = (acc ? dx[i] : 0.0f) + sign * 2.0f * diff[i] * dloss / N;
            rt_mse_bwd(diff, &dloss, dx, N, sign, acc);
            expect_close(dx, want, N, 1e-6f, "mse_bwd");
        }
}
END_TEST

/* ================================================================ hand-built modules */

/* Storage for one hand-built ir_module; everything static-sized. */
typedef struct {
    ir_value vals[16];
    int outputs[4];
    ir_config cfg;
    ir_graph g;
    ir_buf bufs[32];
    ir_step steps[32];
    ir_step isteps[16];
    int64_t poff[16], goff[16];
    ir_module m;
} tmod;

static int tm_val(tmod *t, const char *name, ir_val_kind kind, ir_dtype dt, int rank, int64_t d0, int64_t d1) {
    int v = t->g.nvals++;
    ir_value *val = &t->vals[v];
    memset(val, 0, sizeof *val);
    val->name = name, val->kind = kind, val->dtype = dt, val->node = -1;
    val->shape.rank = rank, val->shape.dim[0] = d0, val->shape.dim[1] = d1;
    t->poff[v] = t->goff[v] = -1;
    return v;
}

static int tm_buf(tmod *t, const char *name, ir_space space, ir_dtype dt, int64_t bytes, int64_t offset_or_index) {
    int b = t->m.train.nbufs++;
    ir_buf *buf = &t->bufs[b];
    memset(buf, 0, sizeof *buf);
    buf->name = name, buf->space = space, buf->dtype = dt, buf->bytes = bytes;
    buf->value = -1, buf->alias_of = -1, buf->index = -1;
    if (space == SPACE_INPUT || space == SPACE_OUTPUT)
        buf->index = (int)offset_or_index;
    else
        buf->offset = offset_or_index;
    return b;
}

/* Operands by a format string: b buffer read, w buffer written, i int64, f float, n null. */
static void tm_step_into(ir_step *st, const char *kernel, const char *fmt, va_list ap) {
    memset(st, 0, sizeof *st);
    st->kernel = kernel, st->node = -1;
    for (; *fmt; fmt++) {
        ir_opnd *o = &st->opnd[st->nopnd++];
        switch (*fmt) {
        case 'b':
        case 'w': o->kind = OPND_BUF, o->buf = va_arg(ap, int), o->writes = *fmt == 'w'; break;
        case 'i': o->kind = OPND_INT, o->i = va_arg(ap, int64_t); break;
        case 'f': o->kind = OPND_FLOAT, o->f = va_arg(ap, double); break;
        case 'n': o->kind = OPND_NULL; break;
        default: ck_abort_msg("bad operand format");
        }
    }
}
static void tm_step(tmod *t, const char *kernel, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tm_step_into(&t->steps[t->m.train.nsteps++], kernel, fmt, ap);
    va_end(ap);
}
static void tm_istep(tmod *t, const char *kernel, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tm_step_into(&t->isteps[t->m.infer.nsteps++], kernel, fmt, ap);
    va_end(ap);
}

static void tm_begin(tmod *t, const char *model) {
    memset(t, 0, sizeof *t);
    t->g.model = model;
    t->g.vals = t->vals, t->g.capvals = 16;
    t->g.outputs = t->outputs, t->g.capoutputs = 4;
    t->g.default_config = -1;
    t->m.graph = &t->g;
    t->m.train.bufs = t->bufs, t->m.train.capbufs = 32;
    t->m.train.steps = t->steps, t->m.train.capsteps = 32;
    t->m.param_offset = t->poff, t->m.grad_offset = t->goff;
}

static void tm_end(tmod *t) {
    /* The infer program shares the train program's buffers. */
    t->m.infer.bufs = t->bufs, t->m.infer.nbufs = t->m.train.nbufs;
    t->m.infer.steps = t->isteps, t->m.infer.capsteps = 16;
    t->m.infer.nfwd = t->m.infer.nsteps;
    t->m.infer.arena_bytes = t->m.train.arena_bytes;
}

/* Model "tiny": h = relu(x w^T + b); loss = mse(h, target); outputs loss, h.
 * w trainable, b frozen, x wants a gradient, plus two buffers (ones, zeros). */
enum { TM = 4, TK = 3, TN = 2, T_SEED = 2 };
static void build_tiny(tmod *t, const char *model) {
    tm_begin(t, model);
    t->cfg.name = "probe";
    t->m.config = &t->cfg;
    int x = tm_val(t, "x", VAL_INPUT, DT_F32, 2, TM, TK);
    int w = tm_val(t, "fc.weight", VAL_PARAM, DT_F32, 2, TN, TK);
    int b = tm_val(t, "fc.bias", VAL_PARAM, DT_F32, 1, TN, 0);
    int tg = tm_val(t, "target", VAL_INPUT, DT_F32, 2, TM, TN);
    tm_val(t, "fc", VAL_ACT, DT_F32, 2, TM, TN);
    int h = tm_val(t, "h", VAL_ACT, DT_F32, 2, TM, TN);
    int loss = tm_val(t, "loss", VAL_ACT, DT_F32, 0, 0, 0);
    int rm = tm_val(t, "bn.running_var", VAL_BUFFER, DT_F32, 1, TN, 0);
    int z = tm_val(t, "bn.running_mean", VAL_BUFFER, DT_F32, 1, TK, 0);
    (void)tg;
    t->vals[x].wants_grad = true;
    t->vals[w].trainable = true, t->vals[w].init = INIT_KAIMING_UNIFORM, t->vals[w].fan_in = TK;
    t->vals[b].init = INIT_BIAS_UNIFORM, t->vals[b].fan_in = TK;
    t->vals[rm].init = INIT_ONES;
    t->vals[z].init = INIT_ZEROS;
    t->outputs[t->g.noutputs++] = loss;
    t->outputs[t->g.noutputs++] = h;
    t->poff[w] = 0, t->poff[b] = 64, t->poff[rm] = 128, t->poff[z] = 192;
    t->m.params_bytes = 256;
    t->goff[w] = 0, t->goff[x] = 64;
    t->m.grads_bytes = 128;

    int bx = tm_buf(t, "x", SPACE_INPUT, DT_F32, TM * TK * 4, 0);
    int btg = tm_buf(t, "target", SPACE_INPUT, DT_F32, TM * TN * 4, 1);
    int bw = tm_buf(t, "fc.weight", SPACE_PARAMS, DT_F32, TN * TK * 4, 0);
    int bb = tm_buf(t, "fc.bias", SPACE_PARAMS, DT_F32, TN * 4, 64);
    int by = tm_buf(t, "fc", SPACE_ARENA, DT_F32, TM * TN * 4, 0);
    int bh = tm_buf(t, "h", SPACE_ARENA, DT_F32, TM * TN * 4, 64);
    int bhv = tm_buf(t, "h flat", SPACE_ARENA, DT_F32, TM * TN * 4, 99999); /* alias: offset unused */
    t->bufs[bhv].alias_of = bh;
    int bdiff = tm_buf(t, "loss diff", SPACE_ARENA, DT_F32, TM * TN * 4, 128);
    int bloss = tm_buf(t, "loss", SPACE_ARENA, DT_F32, 4, 192);
    int bout0 = tm_buf(t, "out loss", SPACE_OUTPUT, DT_F32, 4, 0);
    int bout1 = tm_buf(t, "out h", SPACE_OUTPUT, DT_F32, TM * TN * 4, 1);
    int bxs = tm_buf(t, "x saved", SPACE_ARENA, DT_F32, TM * TK * 4, 256);
    int bdl = tm_buf(t, "d loss", SPACE_ARENA, DT_F32, 4, 320);
    int bdh = tm_buf(t, "d h", SPACE_ARENA, DT_F32, TM * TN * 4, 384);
    int bdy = tm_buf(t, "d fc", SPACE_ARENA, DT_F32, TM * TN * 4, 448);
    int bdw = tm_buf(t, "d fc.weight", SPACE_GRADS, DT_F32, TN * TK * 4, 0);
    int bdx = tm_buf(t, "d x", SPACE_GRADS, DT_F32, TM * TK * 4, 64);
    t->m.train.arena_bytes = 512;
    t->m.train.residual_bytes = 3 * 64;

    tm_step(t, "rt_copy", "wbi", bxs, bx, (int64_t)(TM * TK * 4));
    tm_step(t, "rt_linear_fwd", "bbbwiii", bx, bw, bb, by, (int64_t)TM, (int64_t)TK, (int64_t)TN);
    tm_step(t, "rt_relu_fwd", "bwi", by, bh, (int64_t)(TM * TN));
    tm_step(t, "rt_mse_fwd", "bbwwi", bhv, btg, bdiff, bloss, (int64_t)(TM * TN));
    tm_step(t, "rt_copy", "wbi", bout0, bloss, (int64_t)4);
    tm_step(t, "rt_copy", "wbi", bout1, bh, (int64_t)(TM * TN * 4));
    t->m.train.nfwd = t->m.train.nsteps;
    tm_step(t, "rt_fill_f32", "wif", bdl, (int64_t)1, 1.0);
    tm_step(t, "rt_mse_bwd", "bbwiii", bdiff, bdl, bdh, (int64_t)(TM * TN), (int64_t)1, (int64_t)0);
    tm_step(t, "rt_relu_bwd_out", "bbwii", bh, bdh, bdy, (int64_t)(TM * TN), (int64_t)0);
    tm_step(t, "rt_linear_bwd_w", "bbwiiii", bdy, bxs, bdw, (int64_t)TM, (int64_t)TK, (int64_t)TN, (int64_t)0);
    tm_step(t, "rt_linear_bwd_x", "bbwiiii", bdy, bw, bdx, (int64_t)TM, (int64_t)TK, (int64_t)TN, (int64_t)0);

    tm_istep(t, "rt_linear_fwd", "bbbwiii", bx, bw, bb, by, (int64_t)TM, (int64_t)TK, (int64_t)TN);
    tm_istep(t, "rt_relu_fwd", "bwi", by, bh, (int64_t)(TM * TN));
    tm_istep(t, "rt_mse_fwd", "bbnwi", bhv, btg, bloss, (int64_t)(TM * TN));
    tm_istep(t, "rt_copy", "wbi", bout0, bloss, (int64_t)4);
    tm_istep(t, "rt_copy", "wbi", bout1, bh, (int64_t)(TM * TN * 4));
    tm_end(t);
}

/* Model "clf": loss = cross_entropy(x w^T, label); w trainable, no bias. */
enum { CM = 3, CK = 4, CC = 5 };
static void build_clf(tmod *t, const char *model) {
    tm_begin(t, model);
    tm_val(t, "x", VAL_INPUT, DT_F32, 2, CM, CK);
    tm_val(t, "label", VAL_INPUT, DT_I32, 1, CM, 0);
    int w = tm_val(t, "head.weight", VAL_PARAM, DT_F32, 2, CC, CK);
    tm_val(t, "logits", VAL_ACT, DT_F32, 2, CM, CC);
    int loss = tm_val(t, "loss", VAL_ACT, DT_F32, 0, 0, 0);
    t->vals[w].trainable = true, t->vals[w].init = INIT_KAIMING_UNIFORM, t->vals[w].fan_in = CK;
    t->outputs[t->g.noutputs++] = loss;
    t->poff[w] = 0, t->m.params_bytes = 128;
    t->goff[w] = 0, t->m.grads_bytes = 128;

    int bx = tm_buf(t, "x", SPACE_INPUT, DT_F32, CM * CK * 4, 0);
    int blab = tm_buf(t, "label", SPACE_INPUT, DT_I32, CM * 4, 1);
    int bw = tm_buf(t, "head.weight", SPACE_PARAMS, DT_F32, CC * CK * 4, 0);
    int blg = tm_buf(t, "logits", SPACE_ARENA, DT_F32, CM * CC * 4, 0);
    int bp = tm_buf(t, "probs", SPACE_ARENA, DT_F32, CM * CC * 4, 64);
    int bl = tm_buf(t, "loss", SPACE_ARENA, DT_F32, 4, 128);
    int bo = tm_buf(t, "out loss", SPACE_OUTPUT, DT_F32, 4, 0);
    int bxs = tm_buf(t, "x saved", SPACE_ARENA, DT_F32, CM * CK * 4, 192);
    int bls = tm_buf(t, "label saved", SPACE_ARENA, DT_I32, CM * 4, 256);
    int bdl = tm_buf(t, "d loss", SPACE_ARENA, DT_F32, 4, 320);
    int bdlg = tm_buf(t, "d logits", SPACE_ARENA, DT_F32, CM * CC * 4, 384);
    int bdw = tm_buf(t, "d head.weight", SPACE_GRADS, DT_F32, CC * CK * 4, 0);
    t->m.train.arena_bytes = 448;

    tm_step(t, "rt_copy", "wbi", bxs, bx, (int64_t)(CM * CK * 4));
    tm_step(t, "rt_copy", "wbi", bls, blab, (int64_t)(CM * 4));
    tm_step(t, "rt_linear_fwd", "bbnwiii", bx, bw, blg, (int64_t)CM, (int64_t)CK, (int64_t)CC);
    tm_step(t, "rt_cross_entropy_fwd", "bbwwiii", blg, blab, bp, bl, (int64_t)CM, (int64_t)CC, (int64_t)-100);
    tm_step(t, "rt_copy", "wbi", bo, bl, (int64_t)4);
    t->m.train.nfwd = t->m.train.nsteps;
    tm_step(t, "rt_fill_f32", "wif", bdl, (int64_t)1, 1.0);
    tm_step(t, "rt_cross_entropy_bwd", "bbbwiiii", bp, bls, bdl, bdlg, (int64_t)CM, (int64_t)CC, (int64_t)-100,
            (int64_t)0);
    tm_step(t, "rt_linear_bwd_w", "bbwiiii", bdlg, bxs, bdw, (int64_t)CM, (int64_t)CK, (int64_t)CC, (int64_t)0);

    tm_istep(t, "rt_linear_fwd", "bbnwiii", bx, bw, blg, (int64_t)CM, (int64_t)CK, (int64_t)CC);
    tm_istep(t, "rt_cross_entropy_fwd", "bbnwiii", blg, blab, bl, (int64_t)CM, (int64_t)CC, (int64_t)-100);
    tm_istep(t, "rt_copy", "wbi", bo, bl, (int64_t)4);
    tm_end(t);
}

/* ================================================================ driving cc */

static char tmpdir[64];

static void make_tmpdir(void) {
    strcpy(tmpdir, "/tmp/frost_cg_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static bool have_tool(const char *tool) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

#define SKIP_WITHOUT_CC()                                                \
    do {                                                                 \
        if (!have_tool("cc")) {                                          \
            fprintf(stderr, "%s: skipped, no `cc` on PATH\n", __func__); \
            return;                                                      \
        }                                                                \
    } while (0)

/* Emit NAME.o and NAME.h into tmpdir. */
static void emit_with(const tmod *t, const char *name, const cg_options *opts) {
    char path[256];
    cg_options o = *opts;
    char *err = NULL;
    snprintf(path, sizeof path, "%s/%s.o", tmpdir, name);
    bool ok = cg_emit_object(&t->m, &o, path, &err);
    ck_assert_msg(ok, "cg_emit_object: %s", err ? err : "(no message)");
    ck_assert_ptr_null(err);
    snprintf(path, sizeof path, "%s/%s.h", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    cg_emit_header(&t->m, &o, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void emit(const tmod *t, const char *name, const char *prefix) {
    cg_options o = {.prefix = prefix, .opt_level = 2};
    emit_with(t, name, &o);
}

static void write_file(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run_cmd(const char *fmt, ...) {
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

/* The driver prints lines "key v0 v1 ..." (floats as %a); keep them here. */
typedef struct {
    char key[32];
    int n;
    double v[64];
} kv_line;
static kv_line lines[32];
static int nlines;

static void run_driver(const char *exe) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "'%s/%s'", tmpdir, exe);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char buf[4096];
    nlines = 0;
    while (fgets(buf, sizeof buf, p) && nlines < 32) {
        kv_line *l = &lines[nlines++];
        char *s = buf, *end;
        int len = 0;
        sscanf(s, "%31s%n", l->key, &len);
        s += len;
        l->n = 0;
        for (double d; l->n < 64 && (d = strtod(s, &end), end != s); s = end)
            l->v[l->n++] = d;
    }
    ck_assert_int_eq(pclose(p), 0);
}

static const kv_line *get(const char *key, int n) {
    for (int i = 0; i < nlines; i++)
        if (!strcmp(lines[i].key, key)) {
            ck_assert_msg(lines[i].n == n, "%s: %d values, want %d", key, lines[i].n, n);
            return &lines[i];
        }
    ck_abort_msg("driver printed no line '%s'", key);
    return NULL;
}

static void expect_line(const char *key, const float *want, int n, float tol) {
    const kv_line *l = get(key, n);
    float got[64];
    for (int i = 0; i < n; i++)
        got[i] = (float)l->v[i];
    expect_close(got, want, n, tol, key);
}

/* ================================================================ end to end */

/* Inputs as the drivers make them. */
static void tiny_inputs(float *x, float *target) {
    for (int i = 0; i < TM * TK; i++)
        x[i] = (float)(i % 7 - 3) * 0.25f;
    for (int i = 0; i < TM * TN; i++)
        target[i] = (float)(i % 5) * 0.1f;
}

static const char tiny_driver[] =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include \"tiny.h\"\n"
    "static void pr(const char *k, const float *v, int n) {\n"
    "    printf(\"%s\", k);\n"
    "    for (int i = 0; i < n; i++) printf(\" %a\", (double)v[i]);\n"
    "    printf(\"\\n\");\n"
    "}\n"
    "static const tiny_param_info *find(const char *name) {\n"
    "    for (int i = 0; i < TINY_NUM_PARAMS; i++)\n"
    "        if (!strcmp(tiny_params[i].name, name)) return &tiny_params[i];\n"
    "    return NULL;\n"
    "}\n"
    "int main(void) {\n"
    "    char *params = aligned_alloc(TINY_ALIGN, TINY_PARAMS_BYTES);\n"
    "    char *grads = aligned_alloc(TINY_ALIGN, TINY_GRADS_BYTES);\n"
    "    void *arena = aligned_alloc(TINY_ALIGN, TINY_TRAIN_ARENA_BYTES);\n"
    "    void *iarena = aligned_alloc(TINY_ALIGN, TINY_INFER_ARENA_BYTES);\n"
    "    memset(params, 0x7f, TINY_PARAMS_BYTES);\n"
    "    tiny_init(params, 2);\n"
    "    const char *names[] = {\"fc.weight\", \"fc.bias\", \"bn.running_var\", \"bn.running_mean\"};\n"
    "    for (int k = 0; k < 4; k++) {\n"
    "        const tiny_param_info *p = find(names[k]);\n"
    "        if (!p) return 3;\n"
    "        int64_t n = 1;\n"
    "        for (int i = 0; i < p->rank; i++) n *= p->shape[i];\n"
    "        pr(names[k], (const float *)(params + p->offset), (int)n);\n"
    "        printf(\"meta_%d %lld %lld %d %d %d\\n\", k, (long long)p->offset,\n"
    "               (long long)p->grad_offset, (int)p->rank, (int)p->trainable, (int)p->is_buffer);\n"
    "    }\n"
    "    float x[12], target[8], loss = -1, h[8];\n"
    "    for (int i = 0; i < 12; i++) x[i] = (float)(i % 7 - 3) * 0.25f;\n"
    "    for (int i = 0; i < 8; i++) target[i] = (float)(i % 5) * 0.1f;\n"
    "    tiny_inputs in = { x, target };\n"
    "    tiny_outputs out = { &loss, h };\n"
    "    printf(\"rc_fwd %d\\n\", tiny_forward(params, &in, &out, arena));\n"
    "    pr(\"loss\", &loss, 1);\n"
    "    pr(\"h\", h, 8);\n"
    "    memset(grads, 0x7f, TINY_GRADS_BYTES);\n"
    "    printf(\"rc_bwd %d\\n\", tiny_backward(params, grads, arena));\n"
    "    pr(\"dw\", (const float *)(grads + find(\"fc.weight\")->grad_offset), 6);\n"
    "    pr(\"dx\", (const float *)(grads + TINY_GRAD_X_OFFSET), 12);\n"
    "    float loss2 = -1;\n"
    "    tiny_outputs out2 = { &loss2, NULL };\n"
    "    printf(\"rc_inf %d\\n\", tiny_infer(params, &in, &out2, iarena));\n"
    "    pr(\"loss_infer\", &loss2, 1);\n"
    "    loss2 = -1;\n"
    "    printf(\"rc_fwd2 %d\\n\", tiny_forward(params, &in, &out2, arena));\n"
    "    pr(\"loss_fwd_nullh\", &loss2, 1);\n"
    "    printf(\"sizes %lld %lld %lld %lld %lld %d %d\\n\", (long long)TINY_PARAMS_BYTES,\n"
    "           (long long)TINY_GRADS_BYTES, (long long)TINY_TRAIN_ARENA_BYTES,\n"
    "           (long long)TINY_INFER_ARENA_BYTES, (long long)TINY_RESIDUAL_BYTES, TINY_ALIGN,\n"
    "           TINY_NUM_PARAMS);\n"
    "    free(params); free(grads); free(arena); free(iarena);\n"
    "    return 0;\n"
    "}\n";

/* Reference for the tiny model from the same initialisation. */
static void tiny_reference(float *w, float *b, float *loss, float *h, float *dw, float *dx) {
    float x[TM * TK], target[TM * TN], y[TM * TN], dy[TM * TN];
    tiny_inputs(x, target);
    rt_init_uniform(w, TN * TK, T_SEED, 1, (float)(1.0 / sqrt(TK)));
    rt_init_uniform(b, TN, T_SEED, 2, (float)(1.0 / sqrt(TK)));
    ref_linear(x, w, b, y, TM, TK, TN);
    double l = 0;
    for (int i = 0; i < TM * TN; i++) {
        h[i] = y[i] > 0 ? y[i] : 0.0f;
        l += (double)(h[i] - target[i]) * (h[i] - target[i]);
    }
    *loss = (float)(l / (TM * TN));
    int pos = 0;
    for (int i = 0; i < TM * TN; i++)
        pos += h[i] > 0;
    ck_assert_msg(pos > 0 && pos < TM * TN, "seed should make some units active, not %d", pos);
    for (int i = 0; i < TM * TN; i++)
        dy[i] = h[i] > 0 ? 2.0f * (h[i] - target[i]) / (TM * TN) : 0.0f;
    for (int j = 0; j < TN; j++)
        for (int k = 0; k < TK; k++) {
            double s = 0;
            for (int i = 0; i < TM; i++)
                s += (double)dy[i * TN + j] * x[i * TK + k];
            dw[j * TK + k] = (float)s;
        }
    for (int i = 0; i < TM; i++)
        for (int k = 0; k < TK; k++) {
            double s = 0;
            for (int j = 0; j < TN; j++)
                s += (double)dy[i * TN + j] * w[j * TK + k];
            dx[i * TK + k] = (float)s;
        }
}

/* Every optimisation level, and a CPU chosen explicitly (baseline x86-64 on
 * x86 hosts: the runtime must be retargeted, not keep the host's features). */
static const cg_options tiny_opts[] = {
    {.opt_level = 2},
    {.opt_level = 0},
    {.opt_level = 1},
    {.opt_level = 3},
#if defined(__x86_64__)
    {.opt_level = 2, .cpu = "x86-64"},
#endif
};

START_TEST(e2e_tiny) {
    SKIP_WITHOUT_CC();
    static tmod t;
    const cg_options *opts = &tiny_opts[_i];
    build_tiny(&t, "tiny");
    make_tmpdir();
    emit_with(&t, "tiny", opts); /* prefix defaults to the model name */
    write_file("driver.c", tiny_driver);
    run_cmd("cd '%s' && cc -std=c11 -Wall -Wextra -Werror -pedantic -I. driver.c tiny.o -o driver "
            "-lopenblas -lm",
            tmpdir);
    run_driver("driver");

    float w[TN * TK], b[TN], loss, h[TM * TN], dw[TN * TK], dx[TM * TK];
    tiny_reference(w, b, &loss, h, dw, dx);
    expect_line("fc.weight", w, TN * TK, 0);
    expect_line("fc.bias", b, TN, 0);
    float ones[TN] = {1, 1}, zeros[TK] = {0};
    expect_line("bn.running_var", ones, TN, 0);
    expect_line("bn.running_mean", zeros, TK, 0);
    float meta0[] = {0, 0, 2, 1, 0}, meta1[] = {64, -1, 1, 0, 0}, meta2[] = {128, -1, 1, 0, 1};
    expect_line("meta_0", meta0, 5, 0);
    expect_line("meta_1", meta1, 5, 0);
    expect_line("meta_2", meta2, 5, 0);
    float zero = 0;
    expect_line("rc_fwd", &zero, 1, 0);
    expect_line("rc_bwd", &zero, 1, 0);
    expect_line("rc_inf", &zero, 1, 0);
    expect_line("rc_fwd2", &zero, 1, 0);
    expect_line("loss", &loss, 1, 1e-5f);
    expect_line("h", h, TM * TN, 1e-5f);
    expect_line("dw", dw, TN * TK, 1e-5f);
    expect_line("dx", dx, TM * TK, 1e-5f);
    expect_line("loss_infer", &loss, 1, 1e-5f);
    expect_line("loss_fwd_nullh", &loss, 1, 1e-5f);
    float sizes[] = {256, 128, 512, 512, 192, 64, 4};
    expect_line("sizes", sizes, 7, 0);

    /* The header is also valid C++. */
    if (have_tool("c++"))
        run_cmd("cd '%s' && c++ -x c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only tiny.h", tmpdir);
    remove_tmpdir();
}
END_TEST

static const char two_driver[] = "#include <stdio.h>\n"
                                 "#include <stdlib.h>\n"
                                 "#include \"a.h\"\n"
                                 "#include \"b.h\"\n"
                                 "int main(void) {\n"
                                 "    void *pa = aligned_alloc(MA_ALIGN, MA_PARAMS_BYTES);\n"
                                 "    void *aa = aligned_alloc(MA_ALIGN, MA_TRAIN_ARENA_BYTES);\n"
                                 "    void *pb = aligned_alloc(MB_ALIGN, MB_PARAMS_BYTES);\n"
                                 "    float *gb = aligned_alloc(MB_ALIGN, MB_GRADS_BYTES);\n"
                                 "    void *ab = aligned_alloc(MB_ALIGN, MB_TRAIN_ARENA_BYTES);\n"
                                 "    ma_init(pa, 2);\n"
                                 "    mb_init(pb, 99);\n"
                                 "    float xa[12], ta[8], la = -1;\n"
                                 "    for (int i = 0; i < 12; i++) xa[i] = (float)(i % 7 - 3) * 0.25f;\n"
                                 "    for (int i = 0; i < 8; i++) ta[i] = (float)(i % 5) * 0.1f;\n"
                                 "    ma_inputs ia = { xa, ta };\n"
                                 "    ma_outputs oa = { &la, NULL };\n"
                                 "    int rca = ma_forward(pa, &ia, &oa, aa);\n"
                                 "    float xb[12], lb = -1;\n"
                                 "    for (int i = 0; i < 12; i++) xb[i] = (float)((i * 5) % 11 - 5) * 0.2f;\n"
                                 "    int32_t lab[3] = { 4, 0, 2 };\n"
                                 "    mb_inputs ib = { xb, lab };\n"
                                 "    mb_outputs ob = { &lb };\n"
                                 "    int rcb = mb_forward(pb, &ib, &ob, ab);\n"
                                 "    int rcb2 = mb_backward(pb, gb, ab);\n"
                                 "    printf(\"rc %d %d %d\\n\", rca, rcb, rcb2);\n"
                                 "    printf(\"la %a\\nlb %a\\n\", (double)la, (double)lb);\n"
                                 "    printf(\"wb\");\n"
                                 "    for (int i = 0; i < 20; i++) printf(\" %a\", (double)((float *)pb)[i]);\n"
                                 "    printf(\"\\ndwb\");\n"
                                 "    for (int i = 0; i < 20; i++) printf(\" %a\", (double)gb[i]);\n"
                                 "    printf(\"\\n\");\n"
                                 "    lab[1] = 5; lb = -1;\n"
                                 "    int bad1 = mb_forward(pb, &ib, &ob, ab);\n"
                                 "    lab[1] = -1;\n"
                                 "    int bad2 = mb_infer(pb, &ib, &ob, ab);\n"
                                 "    printf(\"bad %d %d %d %a\\n\", bad1, bad2, MB_ERR_LABEL, (double)lb);\n"
                                 "    free(pa); free(aa); free(pb); free(gb); free(ab);\n"
                                 "    return 0;\n"
                                 "}\n";

START_TEST(e2e_two_models) {
    SKIP_WITHOUT_CC();
    static tmod ta, tb;
    build_tiny(&ta, "tiny");
    build_clf(&tb, "clf");
    make_tmpdir();
    emit(&ta, "a", "ma");
    emit(&tb, "b", "mb");
    write_file("driver.c", two_driver);
    run_cmd("cd '%s' && cc -std=c11 -Wall -Wextra -Werror -I. driver.c a.o b.o -o driver "
            "-lopenblas -lm",
            tmpdir);
    /* No runtime symbol leaks out of either object. */
    run_cmd("cd '%s' && ! nm -g --defined-only a.o b.o | grep -q ' rt_'", tmpdir);
    run_driver("driver");

    float zeros3[3] = {0};
    expect_line("rc", zeros3, 3, 0);
    float w[TN * TK], b[TN], loss, h[TM * TN], dw[TN * TK], dx[TM * TK];
    tiny_reference(w, b, &loss, h, dw, dx);
    expect_line("la", &loss, 1, 1e-5f);

    /* clf reference */
    float wb[CC * CK], xb[CM * CK], logits[CM * CC], probs[CM * CC], lb, dl[CM * CC], dwb[CC * CK];
    int32_t lab[CM] = {4, 0, 2};
    rt_init_uniform(wb, CC * CK, 99, 2, 0.5f); /* value id 2, fan_in 4 */
    for (int i = 0; i < CM * CK; i++)
        xb[i] = (float)((i * 5) % 11 - 5) * 0.2f;
    ref_linear(xb, wb, NULL, logits, CM, CK, CC);
    ck_assert_int_eq(rt_cross_entropy_fwd(logits, lab, probs, &lb, CM, CC, -100), 0);
    float one = 1.0f;
    rt_cross_entropy_bwd(probs, lab, &one, dl, CM, CC, -100, 0);
    for (int j = 0; j < CC; j++)
        for (int k = 0; k < CK; k++) {
            double s = 0;
            for (int i = 0; i < CM; i++)
                s += (double)dl[i * CC + j] * xb[i * CK + k];
            dwb[j * CK + k] = (float)s;
        }
    expect_line("wb", wb, CC * CK, 0);
    expect_line("lb", &lb, 1, 1e-5f);
    expect_line("dwb", dwb, CC * CK, 1e-5f);
    /* Bad labels: both entry points return RT_ERR_LABEL and write no loss. */
    float bad[] = {RT_ERR_LABEL, RT_ERR_LABEL, RT_ERR_LABEL, -1};
    expect_line("bad", bad, 4, 0);
    remove_tmpdir();
}
END_TEST

/* ================================================================ errors */

static char *emit_err(const tmod *t) {
    char path[128];
    make_tmpdir();
    snprintf(path, sizeof path, "%s/x.o", tmpdir);
    cg_options o = {.opt_level = 1};
    char *err = NULL;
    ck_assert(!cg_emit_object(&t->m, &o, path, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_int_ne(access(path, F_OK), 0);
    remove_tmpdir();
    return err;
}

#define EXPECT_ERR(t, needle)                                                   \
    do {                                                                        \
        char *e_ = emit_err(t);                                                 \
        ck_assert_msg(strstr(e_, needle), "error '%s' lacks '%s'", e_, needle); \
        free(e_);                                                               \
    } while (0)

START_TEST(err_kernels) {
    static tmod t;
    build_tiny(&t, "tiny");
    t.steps[2].kernel = "rt_nope";
    EXPECT_ERR(&t, "'rt_nope' is not a runtime kernel");
    build_tiny(&t, "tiny");
    t.steps[2].kernel = "cblas_sgemm"; /* declared in the runtime, not a kernel */
    EXPECT_ERR(&t, "not a runtime kernel");
    build_tiny(&t, "tiny");
    t.steps[2].nopnd = 2; /* rt_relu_fwd(x, y, n) */
    EXPECT_ERR(&t, "rt_relu_fwd takes 3 operands, the step has 2");
    build_tiny(&t, "tiny");
    t.steps[2].opnd[0].kind = OPND_FLOAT;
    EXPECT_ERR(&t, "operand 1 of rt_relu_fwd is a float, the kernel expects a pointer");
    build_tiny(&t, "tiny");
    t.steps[2].opnd[2].kind = OPND_NULL;
    EXPECT_ERR(&t, "operand 3 of rt_relu_fwd is a null pointer, the kernel expects an integer");
}
END_TEST

START_TEST(err_buffers) {
    static tmod t;
    build_tiny(&t, "tiny");
    t.steps[t.m.train.nfwd + 3].opnd[1].buf = 0; /* backward reading input x */
    EXPECT_ERR(&t, "backward has no inputs");
    build_tiny(&t, "tiny");
    t.bufs[4].offset = 500; /* "fc" [500, +32) in a 512-byte arena */
    EXPECT_ERR(&t, "outside the arena block");
    build_tiny(&t, "tiny");
    t.steps[2].opnd[0].buf = 77;
    EXPECT_ERR(&t, "buffer id 77 out of range");
    build_tiny(&t, "tiny");
    t.bufs[6].alias_of = 6;
    EXPECT_ERR(&t, "broken alias chain");
    build_tiny(&t, "tiny");
    t.isteps[0].opnd[1].writes = true; /* infer writing fc.weight */
    EXPECT_ERR(&t, "infer writes parameter block buffer 'fc.weight'");
    build_tiny(&t, "tiny");
    t.bufs[0].index = 2;
    EXPECT_ERR(&t, "input field 2 of 2");
    build_tiny(&t, "tiny");
    t.vals[1].fan_in = 0;
    EXPECT_ERR(&t, "fan_in");
    build_tiny(&t, "tiny");
    t.vals[1].init = 42;
    EXPECT_ERR(&t, "unknown initialiser 42");
}
END_TEST

START_TEST(err_prefix_and_path) {
    static tmod t;
    build_tiny(&t, "tiny");
    char *err = NULL;
    cg_options o = {.opt_level = 2};
    ck_assert(!cg_emit_object(&t.m, &o, "/nonexistent-dir/x.o", &err));
    ck_assert_msg(err && strstr(err, "/nonexistent-dir/x.o"), "err: %s", err ? err : "(null)");
    free(err);
    /* Only the native target is linked in: another triple is a clean error. */
    o.triple = "aarch64-unknown-linux-gnu";
    err = NULL;
    ck_assert(!cg_emit_object(&t.m, &o, "/tmp/never-written.o", &err));
    ck_assert_msg(err && strstr(err, "aarch64-unknown-linux-gnu"), "err: %s", err ? err : "(null)");
    free(err);
    o.triple = NULL;
    /* A prefix that looks like the runtime's own is still fine: entry names
     * (P_forward, ...) never coincide with kernel names, and the runtime is
     * internalised whatever the prefix. */
    o.prefix = "rt";
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/x.o", tmpdir);
    err = NULL;
    bool ok = cg_emit_object(&t.m, &o, path, &err);
    ck_assert_msg(ok, "%s", err ? err : "");
    remove_tmpdir();
}
END_TEST

START_TEST(header_text) {
    static tmod t;
    build_tiny(&t, "9-lives.net");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cg_emit_header(&t.m, NULL, f);
    fclose(f);
    const char *needles[] = {
        "#ifndef M_9_LIVES_NET_FROST_H",
        "#include <stdint.h>",
        "extern \"C\"",
        "#define M_9_LIVES_NET_PARAMS_BYTES      256LL",
        "#define M_9_LIVES_NET_TRAIN_ARENA_BYTES 512LL",
        "#define M_9_LIVES_NET_RESIDUAL_BYTES    192LL",
        "#define M_9_LIVES_NET_ALIGN             64",
        "#define M_9_LIVES_NET_NUM_PARAMS        4",
        "#define M_9_LIVES_NET_GRAD_X_OFFSET 64LL",
        "const float *x; /* f32[4, 3], gradient in the grads block */",
        "float *loss; /* f32[], the loss */",
        "{ \"fc.bias\", 64LL, -1LL, 1, {2LL}, 0, 0, 0, 1 },",
        "{ \"bn.running_var\", 128LL, -1LL, 1, {2LL}, 0, 0, 1, 1 },",
        "Configuration: probe; 1 of 4 parameter tensors trainable (6 of 13 scalars)",
        "int m_9_lives_net_forward(void *params, const m_9_lives_net_inputs *in, m_9_lives_net_outputs *out, void "
        "*arena);",
        "int m_9_lives_net_backward(const void *params, void *grads, void *arena);",
        "void m_9_lives_net_init(void *params, uint64_t seed);",
        "static const m_9_lives_net_input_info m_9_lives_net_input_table[M_9_LIVES_NET_NUM_INPUTS] = {",
        "{ \"x\", 0, 2, {4LL, 3LL}, 64LL },",
        "{ \"target\", 0, 2, {4LL, 2LL}, -1LL },",
    };
    for (size_t i = 0; i < sizeof needles / sizeof *needles; i++)
        ck_assert_msg(strstr(text, needles[i]), "header lacks: %s\n----\n%s", needles[i], text);
    free(text);
}
END_TEST

/* No inputs, no parameters: placeholders keep the header valid C and C++. */
START_TEST(e2e_empty) {
    SKIP_WITHOUT_CC();
    static tmod t;
    tm_begin(&t, "empty");
    int loss = tm_val(&t, "loss", VAL_ACT, DT_F32, 0, 0, 0);
    t.outputs[t.g.noutputs++] = loss;
    int bl = tm_buf(&t, "loss", SPACE_ARENA, DT_F32, 4, 0);
    int bo = tm_buf(&t, "out loss", SPACE_OUTPUT, DT_F32, 4, 0);
    t.m.train.arena_bytes = 64;
    tm_step(&t, "rt_fill_f32", "wif", bl, (int64_t)1, 0.5);
    tm_step(&t, "rt_copy", "wbi", bo, bl, (int64_t)4);
    t.m.train.nfwd = t.m.train.nsteps;
    tm_istep(&t, "rt_fill_f32", "wif", bl, (int64_t)1, 0.25);
    tm_istep(&t, "rt_copy", "wbi", bo, bl, (int64_t)4);
    tm_end(&t);
    make_tmpdir();
    emit(&t, "empty", NULL);
    write_file("driver.c", "#include <stdio.h>\n#include <stdlib.h>\n#include \"empty.h\"\n"
                           "int main(void) {\n"
                           "    void *arena = aligned_alloc(EMPTY_ALIGN, EMPTY_TRAIN_ARENA_BYTES);\n"
                           "    float l1 = 0, l2 = 0;\n"
                           "    empty_inputs in = { 0 };\n"
                           "    empty_outputs out = { &l1 };\n"
                           "    empty_init(NULL, 1);\n"
                           "    int rc = empty_forward(NULL, &in, &out, arena);\n"
                           "    rc |= empty_backward(NULL, NULL, arena);\n"
                           "    out.loss = &l2;\n"
                           "    rc |= empty_infer(NULL, &in, &out, arena);\n"
                           "    printf(\"r %d %a %a %d %d\\n\", rc, (double)l1, (double)l2, EMPTY_NUM_PARAMS,\n"
                           "           (int)(sizeof empty_params / sizeof *empty_params));\n"
                           "    free(arena);\n"
                           "    return 0;\n"
                           "}\n");
    run_cmd("cd '%s' && cc -std=c11 -Wall -Wextra -Werror -pedantic -I. driver.c empty.o -o driver "
            "-lopenblas -lm",
            tmpdir);
    run_driver("driver");
    float want[] = {0, 0.5f, 0.25f, 0, 1};
    expect_line("r", want, 5, 0);
    if (have_tool("c++"))
        run_cmd("cd '%s' && c++ -x c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only empty.h", tmpdir);
    remove_tmpdir();
}
END_TEST

/* Steps with the same kernel, constants and pointer alignment share one
 * specialisation (cg_call_spec): a deep stack of identical layers compiles
 * its kernels once, and every entry point stays a flat list of calls. */
START_TEST(specialisations_shared) {
    if (!have_tool("nm")) {
        fprintf(stderr, "%s: skipped, no `nm` on PATH\n", __func__);
        return;
    }
    static tmod t;
    tm_begin(&t, "spec");
    int loss = tm_val(&t, "loss", VAL_ACT, DT_F32, 0, 0, 0);
    t.outputs[t.g.noutputs++] = loss;
    enum { LAYERS = 20 };
    int b[LAYERS + 1];
    for (int i = 0; i <= LAYERS; i++)
        b[i] = tm_buf(&t, "h", SPACE_ARENA, DT_F32, 64, 64 * i);
    int odd = tm_buf(&t, "odd", SPACE_ARENA, DT_F32, 32, 64 * (LAYERS + 1) + 4); /* not 64-aligned */
    int bo = tm_buf(&t, "out loss", SPACE_OUTPUT, DT_F32, 4, 0);
    t.m.train.arena_bytes = 64 * (LAYERS + 2);
    for (int i = 0; i < LAYERS; i++)
        tm_step(&t, "rt_relu_fwd", "bwi", b[i], b[i + 1], (int64_t)16); /* one specialisation */
    tm_step(&t, "rt_relu_fwd", "bwi", b[0], b[1], (int64_t)8);          /* another size */
    tm_step(&t, "rt_relu_fwd", "bwi", b[0], odd, (int64_t)8);           /* another alignment */
    tm_step(&t, "rt_copy", "wbi", bo, b[LAYERS], (int64_t)4);
    t.m.train.nfwd = t.m.train.nsteps;
    tm_istep(&t, "rt_copy", "wbi", bo, b[0], (int64_t)4);
    tm_end(&t);
    make_tmpdir();
    emit(&t, "spec", NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "nm '%s/spec.o' | grep -c 'frost\\.rt_relu_fwd\\.'", tmpdir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    int count = -1;
    ck_assert_int_eq(fscanf(p, "%d", &count), 1);
    pclose(p);
    ck_assert_int_eq(count, 3);
    remove_tmpdir();
}
END_TEST

/* ================================================================ checked mode */

/* --checked end to end on a real plan: a kernel told to write past its
 * buffer (a relu step's size sabotaged after planning) is caught by the
 * guard after that buffer, named with the step, its kernel and node; the
 * unsabotaged program runs clean. */
static const char oob_model[] = "model oob\n"
                                "input x : f32[4, 6]\n"
                                "input label : i32[4]\n"
                                "fc1 = linear(x, 5)\n"
                                "h1 = relu(fc1)\n"
                                "fc2 = linear(h1, 3)\n"
                                "loss = cross_entropy(fc2, label)\n"
                                "output loss\n";

static const char oob_driver[] = "#include <stdio.h>\n"
                                 "#include <stdlib.h>\n"
                                 "#include \"oob.h\"\n"
                                 "int main(void) {\n"
                                 "    void *params = aligned_alloc(OOB_ALIGN, OOB_PARAMS_BYTES);\n"
                                 "    void *arena = aligned_alloc(OOB_ALIGN, OOB_TRAIN_ARENA_BYTES);\n"
                                 "    void *iarena = aligned_alloc(OOB_ALIGN, OOB_INFER_ARENA_BYTES);\n"
                                 "    oob_init(params, 1);\n"
                                 "    float x[24], loss = 0;\n"
                                 "    int32_t label[4] = {0, 1, 2, 0};\n"
                                 "    for (int i = 0; i < 24; i++) x[i] = (float)(i % 5) * 0.3f - 0.5f;\n"
                                 "    oob_inputs in = {x, label};\n"
                                 "    oob_outputs out = {&loss};\n"
                                 "    int rc = oob_infer(params, &in, &out, iarena);\n"
                                 "    const char *m = oob_last_error(iarena);\n"
                                 "    printf(\"infer %d %s\\n\", rc, m ? m : \"(none)\");\n"
                                 "    rc = oob_forward(params, &in, &out, arena);\n"
                                 "    m = oob_last_error(arena);\n"
                                 "    printf(\"forward %d %s\\n\", rc, m ? m : \"(none)\");\n"
                                 "    printf(\"null %d\\n\", oob_last_error(NULL) == NULL);\n"
                                 "    return 0;\n"
                                 "}\n";

static void oob_run(bool sabotage, char *text, size_t size) {
    pool *p = pool_new();
    diag_ctx d;
    diag_init(&d, "oob.frost", oob_model, strlen(oob_model), stderr);
    frost_select sel = {.checked = true};
    ir_module *m = frost_build(p, &d, NULL, 0, &sel);
    ck_assert_ptr_nonnull(m);
    ck_assert(m->checked);
    ir_program *progs[] = {&m->infer, &m->train};
    for (int k = 0; sabotage && k < 2; k++) {
        int found = 0;
        for (int s = 0; s < progs[k]->nsteps; s++)
            if (!strcmp(progs[k]->steps[s].kernel, "rt_relu_fwd")) {
                progs[k]->steps[s].opnd[2].i += 3; /* 12 bytes past its output */
                found++;
            }
        ck_assert_int_eq(found, 1);
    }
    make_tmpdir();
    cg_options o = {.opt_level = 1};
    char path[256];
    snprintf(path, sizeof path, "%s/oob.o", tmpdir);
    char *err = NULL;
    ck_assert_msg(cg_emit_object(m, &o, path, &err), "cg_emit_object: %s", err ? err : "?");
    snprintf(path, sizeof path, "%s/oob.h", tmpdir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    cg_emit_header(m, &o, f);
    ck_assert_int_eq(fclose(f), 0);
    pool_free(p);
    write_file("driver.c", oob_driver);
    run_cmd("cd '%s' && cc -std=c11 -Wall -Wextra -Werror -I. driver.c oob.o -o driver -lopenblas -lm", tmpdir);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "'%s/driver' 2>/dev/null", tmpdir);
    FILE *out = popen(cmd, "r");
    ck_assert_ptr_nonnull(out);
    size_t n = fread(text, 1, size - 1, out);
    text[n] = 0;
    ck_assert_int_eq(pclose(out), 0);
    remove_tmpdir();
}

START_TEST(checked_out_of_bounds) {
    SKIP_WITHOUT_CC();
    static char text[4096];
    oob_run(false, text, sizeof text);
    ck_assert_msg(strstr(text, "infer 0 (none)\nforward 0 (none)\nnull 1\n"), "clean run:\n%s", text);
    oob_run(true, text, sizeof text);
    char want[160];
    snprintf(want, sizeof want, "infer %d oob_infer: step ", RT_ERR_GUARD);
    ck_assert_msg(strstr(text, want), "lacks '%s':\n%s", want, text);
    snprintf(want, sizeof want, "forward %d oob_forward: step ", RT_ERR_GUARD);
    ck_assert_msg(strstr(text, want), "lacks '%s':\n%s", want, text);
    const char *needles[] = {"(relu_fwd of node 'h1'): guard after arena buffer '",
                             "' overwritten: the step wrote out of bounds"};
    for (int k = 0; k < 2; k++) {
        const char *first = strstr(text, needles[k]);
        ck_assert_msg(first && strstr(first + 1, needles[k]), "twice '%s':\n%s", needles[k], text);
    }
}
END_TEST

static Suite *codegen_suite(void) {
    Suite *s = suite_create("codegen");
    TCase *k = tcase_create("kernels");
    tcase_add_test(k, k_copy_fill_acc);
    tcase_add_test(k, k_init_uniform);
    tcase_add_test(k, k_linear);
    tcase_add_test(k, k_linear_bwd);
    tcase_add_test(k, k_sum_rows);
    tcase_add_test(k, k_matmul);
    tcase_add_test(k, k_relu);
    tcase_add_test(k, k_add);
    tcase_add_test(k, k_cross_entropy);
    tcase_add_test(k, k_mse);
    suite_add_tcase(s, k);
    TCase *c = tcase_create("codegen");
    tcase_set_timeout(c, 120);
    tcase_add_test(c, header_text);
    tcase_add_test(c, err_kernels);
    tcase_add_test(c, err_buffers);
    tcase_add_test(c, err_prefix_and_path);
    tcase_add_loop_test(c, e2e_tiny, 0, (int)(sizeof tiny_opts / sizeof *tiny_opts));
    tcase_add_test(c, e2e_two_models);
    tcase_add_test(c, e2e_empty);
    tcase_add_test(c, specialisations_shared);
    tcase_add_test(c, checked_out_of_bounds);
    suite_add_tcase(s, c);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(codegen_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
