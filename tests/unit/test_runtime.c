/* test_runtime.c: the CNN runtime kernels (conv2d, batch norm, pooling,
 * dropout) and the in-place contract of the element-wise forward kernels.
 *
 * Every kernel is compared with a naive reference written here: direct loops
 * over the definition, accumulated in double, which also report the
 * magnitude sum |terms| of each result. Float kernels are then held to
 * |got - want| <= TOL * magnitude (a few float epsilons: the bound of a
 * rounding-error analysis, not a loose percentage). Backward kernels are also
 * checked against central differences of their forward kernels along random
 * directions (<dy, d f(x; v)> against <dx, v>), so forward and backward
 * agree with each other independently of the references.
 *
 * Buffers come with NaN guard zones on both sides, outputs start as NaN (a
 * kernel that reads what it should only write produces NaN), scratch is
 * exactly rt_conv2d_scratch_floats() floats of NaN, and the guards and the
 * inputs are checked afterwards: out-of-bounds reads and writes show up
 * without a sanitizer (and with one, as well).
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

#include <cblas.h>

/* ================================================================ helpers */

static uint64_t rng;
static void seed_rng(uint64_t s) { rng = s * 0x9e3779b97f4a7c15ull + 12345; }
static uint64_t rnext(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return rng >> 16;
}
static float frand(void) /* [-1, 1) */
{
    return (float)((rnext() >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}
static void fill_rand(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        p[i] = frand();
}

/* The configuration under test, for failure messages. */
static char ctx[200];

/* Guarded float buffers: GUARD sentinel NaNs on each side; the contents
 * start as the sentinel too. */
enum { GUARD = 16 };
static const uint32_t SENTINEL_BITS = 0x7fc0deadu;
static float sentinel(void) {
    float f;
    memcpy(&f, &SENTINEL_BITS, sizeof f);
    return f;
}
static int is_sentinel(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u == SENTINEL_BITS;
}
static float *gnew(int64_t n) {
    float *b = malloc(sizeof(float) * (size_t)(n + 2 * GUARD));
    ck_assert(b);
    for (int64_t i = 0; i < n + 2 * GUARD; i++)
        b[i] = sentinel();
    return b + GUARD;
}
static void gpoison(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        p[i] = sentinel();
}
static void gcheck(const float *p, int64_t n, const char *what) {
    for (int i = 1; i <= GUARD; i++) {
        ck_assert_msg(is_sentinel(p[-i]), "%s: %s: write %d floats before the buffer", ctx, what, i);
        ck_assert_msg(is_sentinel(p[n + i - 1]), "%s: %s: write %d floats after the buffer", ctx, what, i);
    }
}
static void gfree(float *p) {
    if (p)
        free(p - GUARD);
}
static float *gdup(const float *src, int64_t n) {
    float *p = gnew(n);
    memcpy(p, src, sizeof(float) * (size_t)n);
    return p;
}

static double *dnew(int64_t n) {
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    ck_assert(p);
    return p;
}

/* Tolerances, in float epsilons times the magnitude sum |terms| of a result. */
#define TOL_GEMM (8.0 * FLT_EPSILON) /* sums of products, up to ~150 terms */
#define TOL_ELEM (4.0 * FLT_EPSILON) /* a few roundings per element */

/* |got - want| <= rtol * mag (mag NULL: |want|); NaN never passes. */
static void expect_near(const float *got, const double *want, const double *mag, int64_t n, double rtol,
                        const char *what) {
    for (int64_t i = 0; i < n; i++) {
        double m = mag ? mag[i] : fabs(want[i]);
        double err = fabs((double)got[i] - want[i]);
        ck_assert_msg(err <= rtol * m, "%s: %s[%lld]: got %.9g, want %.9g (err %.3g, tol %.3g)", ctx, what,
                      (long long)i, (double)got[i], want[i], err, rtol * m);
    }
}

/* want += pre, mag += |pre|: the reference for acc = 1 */
static void add_prefill(double *want, double *mag, const float *pre, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        want[i] += pre[i];
        mag[i] += fabs(pre[i]);
    }
}

static void expect_same(const float *a, const float *b, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(memcmp(&a[i], &b[i], sizeof(float)) == 0, "%s: %s[%lld]: %.9g vs %.9g", ctx, what, (long long)i,
                      (double)a[i], (double)b[i]);
}

static double ddot(const float *a, const float *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}
static double dabsdot(const float *a, const float *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)a[i] * b[i]);
    return s;
}

/* x +/- h v, rounded to float */
static void shifted(float *out, const float *x, const float *v, int64_t n, double h) {
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)((double)x[i] + h * v[i]);
}

static int out_size(int n, int k, int s, int p, int d) {
    int span = n + 2 * p - d * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

#define IDX4(a, b, c, e, B, C, E) ((((int64_t)(a) * (B) + (b)) * (C) + (c)) * (E) + (e))

/* ================================================================ conv2d */

typedef struct {
    int N, C, H, W, K, k, s, p, d, g;
    int images; /* images per GEMM (rt.h); 0 and 1: one at a time */
} conv_t;

static int conv_oh(const conv_t *c) { return out_size(c->H, c->k, c->s, c->p, c->d); }
static int conv_ow(const conv_t *c) { return out_size(c->W, c->k, c->s, c->p, c->d); }
static void conv_ctx(const conv_t *c) {
    snprintf(ctx, sizeof ctx, "conv N%d C%d H%d W%d K%d k%d s%d p%d d%d groups%d images%d", c->N, c->C, c->H, c->W,
             c->K, c->k, c->s, c->p, c->d, c->g, c->images);
}
static int64_t conv_scratch(const conv_t *c) {
    if (c->images > 1)
        return c->images * rt_conv2d_blocked_scratch_floats(c->C, c->H, c->W, c->K, c->k, c->s, c->p, c->d, c->g);
    return rt_conv2d_scratch_floats(c->C, c->H, c->W, c->k, c->s, c->p, c->d, c->g);
}
static float *conv_scratch_new(const conv_t *c) {
    int64_t n = conv_scratch(c);
    return n ? gnew(n) : NULL;
}
static void conv_scratch_check(const conv_t *c, float *scr) {
    if (scr) {
        gcheck(scr, conv_scratch(c), "scratch");
        gpoison(scr, conv_scratch(c));
    }
}

/* Visit every (output, input, weight) triple of the convolution:
 * y[n,o,oy,ox] += x[n,ci,iy,ix] * w[o,cw,ky,kx], iy = oy*s - p + ky*d. */
#define CONV_FOR_EACH(c, BODY)                                                                                      \
    do {                                                                                                            \
        const int OH_ = conv_oh(c), OW_ = conv_ow(c), Cg_ = (c)->C / (c)->g;                                        \
        const int Kg_ = (c)->K / (c)->g;                                                                            \
        for (int n = 0; n < (c)->N; n++)                                                                            \
            for (int o = 0; o < (c)->K; o++)                                                                        \
                for (int oy = 0; oy < OH_; oy++)                                                                    \
                    for (int ox = 0; ox < OW_; ox++)                                                                \
                        for (int cw = 0; cw < Cg_; cw++)                                                            \
                            for (int ky = 0; ky < (c)->k; ky++)                                                     \
                                for (int kx = 0; kx < (c)->k; kx++) {                                               \
                                    const int iy = oy * (c)->s - (c)->p + ky * (c)->d;                              \
                                    const int ix = ox * (c)->s - (c)->p + kx * (c)->d;                              \
                                    if (iy < 0 || iy >= (c)->H || ix < 0 || ix >= (c)->W)                           \
                                        continue;                                                                   \
                                    const int64_t yi = IDX4(n, o, oy, ox, (c)->K, OH_, OW_);                        \
                                    const int64_t xi = IDX4(n, o / Kg_ * Cg_ + cw, iy, ix, (c)->C, (c)->H, (c)->W); \
                                    const int64_t wi = IDX4(o, cw, ky, kx, Cg_, (c)->k, (c)->k);                    \
                                    BODY;                                                                           \
                                }                                                                                   \
    } while (0)

static void ref_conv_fwd(const conv_t *c, const float *x, const float *w, const float *b, double *y, double *mag) {
    const int64_t ny = (int64_t)c->N * c->K * conv_oh(c) * conv_ow(c), OHW = (int64_t)conv_oh(c) * conv_ow(c);
    for (int64_t i = 0; i < ny; i++) {
        y[i] = b ? b[(i / OHW) % c->K] : 0.0;
        mag[i] = fabs(y[i]);
    }
    CONV_FOR_EACH(c, {
        double t = (double)x[xi] * w[wi];
        y[yi] += t;
        mag[yi] += fabs(t);
    });
}

static void ref_conv_bwd_x(const conv_t *c, const float *dy, const float *w, double *dx, double *mag) {
    const int64_t nx = (int64_t)c->N * c->C * c->H * c->W;
    memset(dx, 0, sizeof(double) * (size_t)nx);
    memset(mag, 0, sizeof(double) * (size_t)nx);
    CONV_FOR_EACH(c, {
        double t = (double)dy[yi] * w[wi];
        dx[xi] += t;
        mag[xi] += fabs(t);
    });
}

static void ref_conv_bwd_w(const conv_t *c, const float *dy, const float *x, double *dw, double *mag) {
    const int64_t nw = (int64_t)c->K * (c->C / c->g) * c->k * c->k;
    memset(dw, 0, sizeof(double) * (size_t)nw);
    memset(mag, 0, sizeof(double) * (size_t)nw);
    CONV_FOR_EACH(c, {
        double t = (double)dy[yi] * x[xi];
        dw[wi] += t;
        mag[wi] += fabs(t);
    });
}

/* All conv kernels on one configuration against the references, acc 0 and 1,
 * with and without bias. */
static void conv_check_images(const conv_t *c) {
    conv_ctx(c);
    const int OH = conv_oh(c), OW = conv_ow(c), Cg = c->C / c->g;
    const int64_t nx = (int64_t)c->N * c->C * c->H * c->W, nw = (int64_t)c->K * Cg * c->k * c->k;
    const int64_t ny = (int64_t)c->N * c->K * OH * OW;

    /* the scratch size: 0 for depthwise/single-channel convs; one at a time, 0
     * for 1x1/s1/p0 convs too, else one image's columns for one group; in
     * blocks, each image's columns and output (or dy) slice */
    int64_t want_scratch = (int64_t)Cg * c->k * c->k * OH * OW;
    if (c->images > 1)
        want_scratch = (int64_t)c->images * (Cg * c->k * c->k + c->K / c->g) * OH * OW;
    else if (c->k == 1 && c->s == 1 && c->p == 0)
        want_scratch = 0;
    if (Cg == 1 && c->g > 1)
        want_scratch = 0;
    ck_assert_msg(conv_scratch(c) == want_scratch, "%s: scratch %lld floats, want %lld", ctx,
                  (long long)conv_scratch(c), (long long)want_scratch);

    float *x = gnew(nx), *w = gnew(nw), *b = gnew(c->K), *dy = gnew(ny);
    fill_rand(x, nx), fill_rand(w, nw), fill_rand(b, c->K), fill_rand(dy, ny);
    float *x0 = gdup(x, nx), *w0 = gdup(w, nw), *b0 = gdup(b, c->K), *dy0 = gdup(dy, ny);
    float *y = gnew(ny), *dx = gnew(nx), *dw = gnew(nw), *scr = conv_scratch_new(c);
    int64_t nmax = nx > ny ? nx : ny;
    nmax = nmax > nw ? nmax : nw;
    double *want = dnew(nmax), *mag = dnew(nmax);

    for (int bias = 0; bias <= 1; bias++) {
        gpoison(y, ny);
        rt_conv2d_fwd(x, w, bias ? b : NULL, y, scr, c->N, c->C, c->H, c->W, c->K, c->k, c->s, c->p, c->d, c->g,
                      c->images);
        ref_conv_fwd(c, x, w, bias ? b : NULL, want, mag);
        expect_near(y, want, mag, ny, TOL_GEMM, bias ? "fwd y (bias)" : "fwd y");
        gcheck(y, ny, "y");
        conv_scratch_check(c, scr);
    }
    for (int acc = 0; acc <= 1; acc++) {
        float *pre = gnew(nx);
        fill_rand(pre, nx);
        if (acc)
            memcpy(dx, pre, sizeof(float) * (size_t)nx);
        else
            gpoison(dx, nx);
        rt_conv2d_bwd_x(dy, w, dx, scr, c->N, c->C, c->H, c->W, c->K, c->k, c->s, c->p, c->d, c->g, c->images, acc);
        ref_conv_bwd_x(c, dy, w, want, mag);
        if (acc)
            add_prefill(want, mag, pre, nx);
        expect_near(dx, want, mag, nx, TOL_GEMM, acc ? "bwd_x dx (acc)" : "bwd_x dx");
        gcheck(dx, nx, "dx");
        conv_scratch_check(c, scr);
        gfree(pre);
    }
    for (int acc = 0; acc <= 1; acc++) {
        float *pre = gnew(nw);
        fill_rand(pre, nw);
        if (acc)
            memcpy(dw, pre, sizeof(float) * (size_t)nw);
        else
            gpoison(dw, nw);
        rt_conv2d_bwd_w(dy, x, dw, scr, c->N, c->C, c->H, c->W, c->K, c->k, c->s, c->p, c->d, c->g, c->images, acc);
        ref_conv_bwd_w(c, dy, x, want, mag);
        if (acc)
            add_prefill(want, mag, pre, nw);
        expect_near(dw, want, mag, nw, TOL_GEMM, acc ? "bwd_w dw (acc)" : "bwd_w dw");
        gcheck(dw, nw, "dw");
        conv_scratch_check(c, scr);
        gfree(pre);
    }
    /* inputs are read only */
    expect_same(x, x0, nx, "x unchanged");
    expect_same(w, w0, nw, "w unchanged");
    expect_same(b, b0, c->K, "b unchanged");
    expect_same(dy, dy0, ny, "dy unchanged");
    gcheck(x, nx, "x"), gcheck(w, nw, "w"), gcheck(b, c->K, "b"), gcheck(dy, ny, "dy");

    gfree(x), gfree(w), gfree(b), gfree(dy), gfree(x0), gfree(w0), gfree(b0), gfree(dy0);
    gfree(y), gfree(dx), gfree(dw), gfree(scr);
    free(want), free(mag);
}

/* One image per GEMM, then blocks of 2 and 3 (a short last block when N is
 * odd, a block larger than N when N < 3). */
static void conv_check(const conv_t *c) {
    for (int images = 1; images <= 3; images++) {
        conv_t b = *c;
        b.images = images;
        conv_check_images(&b);
    }
}

/* The grid: loop index -> (k, s, p, d); inside, every channel/group layout and
 * a few odd spatial sizes. */
static const int grid_k[] = {1, 2, 3, 5};
enum { GRID_N = 4 * 3 * 3 * 2 };
static const struct {
    int N, C, K, g;
} conv_layouts[] = {
    {2, 3, 5, 1}, /* plain */
    {3, 4, 6, 2}, /* grouped */
    {2, 6, 4, 2}, /* grouped, fewer outputs than inputs */
    {2, 3, 3, 3}, /* depthwise */
    {1, 2, 6, 2}, /* depthwise with channel multiplier 3 */
    {2, 1, 4, 1}, /* a single input channel (im2col, k*k-row columns) */
};
static const int conv_hw[][2] = {{7, 5}, {10, 9}, {3, 12}};

START_TEST(conv_grid) {
    conv_t c;
    c.k = grid_k[_i / 18];
    c.s = (_i / 6) % 3 + 1;
    c.p = (_i / 2) % 3;
    c.d = _i % 2 + 1;
    seed_rng(100 + (uint64_t)_i);
    for (size_t l = 0; l < sizeof conv_layouts / sizeof *conv_layouts; l++)
        for (size_t h = 0; h < sizeof conv_hw / sizeof *conv_hw; h++) {
            c.N = conv_layouts[l].N, c.C = conv_layouts[l].C, c.K = conv_layouts[l].K;
            c.g = conv_layouts[l].g;
            c.H = conv_hw[h][0], c.W = conv_hw[h][1];
            if (conv_oh(&c) > 0 && conv_ow(&c) > 0)
                conv_check(&c);
        }
}
END_TEST

/* Larger, ResNet-like layers: long GEMM reductions, OpenBLAS's blocked paths. */
START_TEST(conv_larger) {
    static const conv_t cases[] = {
        {2, 16, 14, 14, 32, 3, 2, 1, 1, 1, 1},  /* 3x3 stride 2 */
        {2, 16, 14, 14, 16, 3, 1, 1, 1, 1, 1},  /* 3x3 stride 1 */
        {2, 16, 14, 14, 32, 1, 2, 0, 1, 1, 1},  /* 1x1 stride 2 downsample */
        {2, 32, 7, 7, 24, 1, 1, 0, 1, 1, 1},    /* 1x1 pointwise */
        {2, 3, 23, 21, 8, 7, 2, 3, 1, 1, 1},    /* a stem: 7x7 stride 2 pad 3 */
        {2, 16, 15, 13, 16, 3, 1, 1, 1, 16, 1}, /* depthwise 3x3 */
        {2, 16, 15, 13, 16, 5, 2, 2, 1, 16, 1}, /* depthwise 5x5 stride 2 */
        {2, 16, 12, 12, 16, 3, 1, 2, 2, 4, 1},  /* grouped, dilated */
    };
    seed_rng(7);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        conv_check(&cases[i]);
}
END_TEST

START_TEST(conv_scratch_sizes) {
    /* one image's columns for one group, or 0 */
    ck_assert_int_eq(rt_conv2d_scratch_floats(64, 56, 56, 3, 1, 1, 1, 1), 64 * 9 * 56 * 56);
    ck_assert_int_eq(rt_conv2d_scratch_floats(64, 56, 56, 1, 2, 0, 1, 1), 64 * 28 * 28);
    ck_assert_int_eq(rt_conv2d_scratch_floats(3, 224, 224, 7, 2, 3, 1, 1), 3 * 49 * 112 * 112);
    ck_assert_int_eq(rt_conv2d_scratch_floats(64, 56, 56, 3, 1, 1, 1, 4), 16 * 9 * 56 * 56);
    ck_assert_int_eq(rt_conv2d_scratch_floats(64, 56, 56, 1, 1, 0, 1, 1), 0);           /* pointwise */
    ck_assert_int_eq(rt_conv2d_scratch_floats(64, 56, 56, 1, 1, 0, 3, 2), 0);           /* d is moot */
    ck_assert_int_eq(rt_conv2d_scratch_floats(64, 56, 56, 3, 2, 1, 1, 64), 0);          /* depthwise */
    ck_assert_int_eq(rt_conv2d_scratch_floats(1, 28, 28, 5, 1, 0, 1, 1), 25 * 24 * 24); /* C = 1 */
    ck_assert_int_eq(rt_conv2d_scratch_floats(4, 2, 9, 3, 1, 0, 1, 1), 0);              /* no output */
    ck_assert_int_eq(rt_conv2d_scratch_floats(4, 3, 9, 3, 1, 0, 1, 1), 4 * 9 * 1 * 7);
    /* per image in blocks: columns and the output slice of each group, or 0 */
    ck_assert_int_eq(rt_conv2d_blocked_scratch_floats(256, 8, 8, 512, 3, 2, 1, 1, 1), (256 * 9 + 512) * 16);
    ck_assert_int_eq(rt_conv2d_blocked_scratch_floats(64, 56, 56, 128, 1, 1, 0, 1, 1), (64 + 128) * 56 * 56);
    ck_assert_int_eq(rt_conv2d_blocked_scratch_floats(64, 8, 8, 32, 3, 1, 1, 1, 4), (16 * 9 + 8) * 64);
    ck_assert_int_eq(rt_conv2d_blocked_scratch_floats(64, 8, 8, 64, 3, 1, 1, 1, 64), 0); /* depthwise */
    ck_assert_int_eq(rt_conv2d_blocked_scratch_floats(4, 2, 9, 8, 3, 1, 0, 1, 1), 0);    /* no output */
    /* -1 when a size overflows int64, never a wrapped value: 2^24 * 256^2 * 4097^2 is 2^64.0007 */
    ck_assert_int_eq(rt_conv2d_scratch_floats(16777216, 4096, 4096, 256, 1, 128, 1, 1), -1);
    ck_assert_int_eq(rt_conv2d_blocked_scratch_floats(16777216, 4096, 4096, 1, 256, 1, 128, 1, 1), -1);
    ck_assert_int_eq(rt_conv2d_blocked_scratch_floats(1, 4096, 4096, INT64_MAX, 3, 1, 1, 1, 1), -1);
    ck_assert_int_eq(rt_conv2d_scratch_floats(4, 8, 8, 3, 1, INT64_MAX / 2 + 1, 1, 1), -1);
}
END_TEST

/* Output size of a window op: floor division, 0 when the window never fits
 * (a dilated window past int64 included), -1 when the padded input overflows
 * int64. */
START_TEST(window_out_sizes) {
    ck_assert_int_eq(rt_out_size(224, 7, 2, 3, 1), 112);
    ck_assert_int_eq(rt_out_size(5, 3, 2, 0, 2), 1);
    ck_assert_int_eq(rt_out_size(4, 7, 1, 1, 1), 0);
    ck_assert_int_eq(rt_out_size(28, (int64_t)1 << 40, 1, 0, 1), 0);
    ck_assert_int_eq(rt_out_size(8, 3, 1, 0, INT64_MAX / 2 + 1), 0); /* d(k-1) */
    ck_assert_int_eq(rt_out_size(8, (int64_t)1 << 32, 1, 0, (int64_t)1 << 32), 0);
    ck_assert_int_eq(rt_out_size(8, 3, 1, INT64_MAX / 2 + 1, 1), -1); /* 2p */
    ck_assert_int_eq(rt_out_size(INT64_MAX - 1, 3, 1, 1, 1), -1);     /* n + 2p */
    ck_assert_int_eq(rt_out_size(1, (int64_t)1 << 32, (int64_t)1 << 62, (int64_t)1 << 31, 1), 1);
}
END_TEST

/* No output positions (the window is larger than the padded input): fwd
 * writes nothing, bwd_x/bwd_w with acc = 0 write zeros, with acc = 1 nothing. */
START_TEST(conv_empty_output) {
    const conv_t c = {2, 4, 3, 5, 6, 5, 1, 0, 1, 2, 1};
    conv_ctx(&c);
    ck_assert_int_eq(conv_oh(&c), 0);
    const int64_t nx = 2 * 4 * 3 * 5, nw = 6 * 2 * 25;
    float *x = gnew(nx), *w = gnew(nw), *dx = gnew(nx), *dw = gnew(nw), *dy = gnew(1);
    fill_rand(x, nx), fill_rand(w, nw);
    float *y = gnew(0);
    rt_conv2d_fwd(x, w, NULL, y, NULL, c.N, c.C, c.H, c.W, c.K, c.k, c.s, c.p, c.d, c.g, 1);
    gcheck(y, 0, "y");
    rt_conv2d_bwd_x(dy, w, dx, NULL, c.N, c.C, c.H, c.W, c.K, c.k, c.s, c.p, c.d, c.g, 1, 0);
    rt_conv2d_bwd_w(dy, x, dw, NULL, c.N, c.C, c.H, c.W, c.K, c.k, c.s, c.p, c.d, c.g, 1, 0);
    for (int64_t i = 0; i < nx; i++)
        ck_assert(dx[i] == 0.0f);
    for (int64_t i = 0; i < nw; i++)
        ck_assert(dw[i] == 0.0f);
    fill_rand(dx, nx), fill_rand(dw, nw);
    float *dx0 = gdup(dx, nx), *dw0 = gdup(dw, nw);
    rt_conv2d_bwd_x(dy, w, dx, NULL, c.N, c.C, c.H, c.W, c.K, c.k, c.s, c.p, c.d, c.g, 1, 1);
    rt_conv2d_bwd_w(dy, x, dw, NULL, c.N, c.C, c.H, c.W, c.K, c.k, c.s, c.p, c.d, c.g, 1, 1);
    expect_same(dx, dx0, nx, "dx (acc)");
    expect_same(dw, dw0, nw, "dw (acc)");
    gcheck(dx, nx, "dx"), gcheck(dw, nw, "dw");
    gfree(x), gfree(w), gfree(dx), gfree(dw), gfree(dy), gfree(y), gfree(dx0), gfree(dw0);
}
END_TEST

/* Finite differences: L = <dy, conv(x, w, b)>. Conv is linear in each of x, w,
 * b, so the central difference is exact up to float rounding, which the
 * tolerance bounds by the magnitude of the sums involved. */
static void conv_fd(const conv_t *c) {
    conv_ctx(c);
    const int OH = conv_oh(c), OW = conv_ow(c), Cg = c->C / c->g;
    const int64_t nx = (int64_t)c->N * c->C * c->H * c->W, nw = (int64_t)c->K * Cg * c->k * c->k;
    const int64_t ny = (int64_t)c->N * c->K * OH * OW;
    float *x = gnew(nx), *w = gnew(nw), *b = gnew(c->K), *dy = gnew(ny), *y = gnew(ny);
    float *vx = gnew(nx), *vw = gnew(nw), *vb = gnew(c->K);
    float *xp = gnew(nx), *wp = gnew(nw), *bp = gnew(c->K);
    float *dx = gnew(nx), *dw = gnew(nw), *db = gnew(c->K), *scr = conv_scratch_new(c);
    fill_rand(x, nx), fill_rand(w, nw), fill_rand(b, c->K), fill_rand(dy, ny);
    fill_rand(vx, nx), fill_rand(vw, nw), fill_rand(vb, c->K);
    const double h = 0.25;

    rt_conv2d_bwd_x(dy, w, dx, scr, c->N, c->C, c->H, c->W, c->K, c->k, c->s, c->p, c->d, c->g, c->images, 0);
    rt_conv2d_bwd_w(dy, x, dw, scr, c->N, c->C, c->H, c->W, c->K, c->k, c->s, c->p, c->d, c->g, c->images, 0);
    rt_sum_channels(dy, db, c->N, c->K, (int64_t)OH * OW, 0);

    for (int which = 0; which < 3; which++) {
        double L[2], mag = 0.0;
        for (int sgn = 0; sgn < 2; sgn++) {
            const double hs = sgn ? -h : h;
            shifted(xp, x, vx, nx, which == 0 ? hs : 0.0);
            shifted(wp, w, vw, nw, which == 1 ? hs : 0.0);
            shifted(bp, b, vb, c->K, which == 2 ? hs : 0.0);
            rt_conv2d_fwd(xp, wp, bp, y, scr, c->N, c->C, c->H, c->W, c->K, c->k, c->s, c->p, c->d, c->g, c->images);
            L[sgn] = ddot(dy, y, ny);
            mag += dabsdot(dy, y, ny);
        }
        const double fd = (L[0] - L[1]) / (2 * h);
        const float *grad = which == 0 ? dx : which == 1 ? dw : db;
        const float *v = which == 0 ? vx : which == 1 ? vw : vb;
        const int64_t n = which == 0 ? nx : which == 1 ? nw : c->K;
        const double an = ddot(grad, v, n);
        /* rounding: of y (and of x +/- h v), amplified by 1/(2h); of the gradient */
        const double tol = 8 * FLT_EPSILON * (mag / (2 * h) + dabsdot(grad, v, n));
        ck_assert_msg(fabs(fd - an) <= tol, "%s: d%s: finite difference %.9g, <grad, v> %.9g (tol %.3g)", ctx,
                      which == 0   ? "x"
                      : which == 1 ? "w"
                                   : "b",
                      fd, an, tol);
    }
    gfree(x), gfree(w), gfree(b), gfree(dy), gfree(y), gfree(vx), gfree(vw), gfree(vb);
    gfree(xp), gfree(wp), gfree(bp), gfree(dx), gfree(dw), gfree(db), gfree(scr);
}

START_TEST(conv_finite_differences) {
    static const conv_t cases[] = {
        {2, 4, 7, 6, 6, 3, 2, 1, 1, 1, 1},
        {2, 4, 7, 6, 6, 3, 1, 2, 2, 2, 1},
        {2, 4, 5, 5, 4, 1, 1, 0, 1, 2, 1},
        {2, 4, 5, 6, 4, 1, 2, 1, 1, 1, 1},
        {2, 3, 7, 7, 6, 3, 2, 1, 1, 3, 1},
        {3, 2, 6, 5, 2, 2, 1, 1, 2, 2, 1},
        {2, 1, 8, 7, 3, 5, 2, 2, 1, 1, 1},
        /* blocks of images: 2 of 2, then 2 and a short 1 */
        {2, 4, 7, 6, 6, 3, 2, 1, 1, 1, 2},
        {3, 2, 6, 5, 2, 2, 1, 1, 2, 2, 2},
        {3, 4, 5, 5, 4, 1, 1, 0, 1, 2, 2},
    };
    seed_rng(11);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        conv_fd(&cases[i]);
}
END_TEST

/* ================================================================ sum_channels */

START_TEST(sum_channels) {
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 1}, {2, 4, 7}, {4, 3, 49}, {2, 2, 1001}};
    seed_rng(3);
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const int N = shapes[t][0], K = shapes[t][1], HW = shapes[t][2];
        snprintf(ctx, sizeof ctx, "sum_channels N%d K%d HW%d", N, K, HW);
        const int64_t n = (int64_t)N * K * HW;
        float *dy = gnew(n), *db = gnew(K), *pre = gnew(K);
        fill_rand(dy, n), fill_rand(pre, K);
        double *want = dnew(K), *mag = dnew(K);
        for (int acc = 0; acc <= 1; acc++) {
            for (int k = 0; k < K; k++) {
                want[k] = acc ? pre[k] : 0.0;
                mag[k] = fabs(want[k]);
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < HW; j++) {
                        want[k] += dy[((int64_t)i * K + k) * HW + j];
                        mag[k] += fabs(dy[((int64_t)i * K + k) * HW + j]);
                    }
            }
            if (acc)
                memcpy(db, pre, sizeof(float) * (size_t)K);
            else
                gpoison(db, K);
            rt_sum_channels(dy, db, N, K, HW, acc);
            expect_near(db, want, mag, K, TOL_ELEM, acc ? "db (acc)" : "db");
            gcheck(db, K, "db");
        }
        gfree(dy), gfree(db), gfree(pre), free(want), free(mag);
    }
}
END_TEST

/* ================================================================ batch norm */

typedef struct {
    int N, C, HW;
    float offset, spread; /* x = offset + spread * U(-1, 1) */
} bn_t;

static const bn_t bn_cases[] = {
    {2, 3, 5, 0.0f, 1.0f},      {3, 4, 49, 0.5f, 2.0f},
    {1, 2, 1, 0.0f, 1.0f}, /* m = 1 */
    {4, 5, 13, -3.0f, 0.5f},    {2, 3, 1000, 0.0f, 1.0f},
    {3, 2, 77, 1000.0f, 0.01f}, /* mean >> std: a naive E[x^2]-E[x]^2 in float is all noise */
    {2, 3, 9, 2.0f, 0.0f},      /* constant channels: var = 0 */
};

static void bn_ctx(const bn_t *b, const char *what) {
    snprintf(ctx, sizeof ctx, "%s N%d C%d HW%d offset %g spread %g", what, b->N, b->C, b->HW, (double)b->offset,
             (double)b->spread);
}

static void bn_fill_x(const bn_t *b, float *x) {
    const int64_t n = (int64_t)b->N * b->C * b->HW;
    for (int64_t i = 0; i < n; i++)
        x[i] = b->offset + b->spread * frand();
}

/* channel statistics in double, two passes */
static void ref_bn_stats(const bn_t *b, const float *x, int c, double *mean, double *var) {
    const int64_t m = (int64_t)b->N * b->HW;
    double s = 0.0, v = 0.0;
    for (int n = 0; n < b->N; n++)
        for (int j = 0; j < b->HW; j++)
            s += x[((int64_t)n * b->C + c) * b->HW + j];
    s /= (double)m;
    for (int n = 0; n < b->N; n++)
        for (int j = 0; j < b->HW; j++) {
            double e = x[((int64_t)n * b->C + c) * b->HW + j] - s;
            v += e * e;
        }
    *mean = s;
    *var = v / (double)m;
}

START_TEST(bn_train_forward) {
    const float eps = 1e-5f;
    seed_rng(21);
    for (size_t t = 0; t < sizeof bn_cases / sizeof *bn_cases; t++) {
        const bn_t *b = &bn_cases[t];
        bn_ctx(b, "bn_train_fwd");
        const int C = b->C, HW = b->HW;
        const int64_t n = (int64_t)b->N * C * HW, m = (int64_t)b->N * HW;
        float *x = gnew(n), *g = gnew(C), *be = gnew(C), *rm = gnew(C), *rv = gnew(C);
        float *y = gnew(n), *stats = gnew(2 * C), *y2 = gnew(n);
        bn_fill_x(b, x);
        fill_rand(g, C), fill_rand(be, C), fill_rand(rm, C);
        for (int c = 0; c < C; c++)
            rv[c] = 0.5f + 0.5f * frand() * frand();
        float *x0 = gdup(x, n), *rm0 = gdup(rm, C), *rv0 = gdup(rv, C);
        double *want = dnew(n), *mag = dnew(n), *wm = dnew(2 * C), *wmag = dnew(2 * C);
        double *wrm = dnew(C), *wrv = dnew(C), *wrmag = dnew(C), *wvmag = dnew(C);
        const float momentum = t % 2 ? 0.1f : 0.3f;
        for (int c = 0; c < C; c++) {
            double mean, var;
            ref_bn_stats(b, x, c, &mean, &var);
            const double inv = 1.0 / sqrt(var + eps);
            wm[c] = mean, wmag[c] = fabs(mean) + b->spread;
            wm[C + c] = inv, wmag[C + c] = inv;
            for (int i = 0; i < b->N; i++)
                for (int j = 0; j < HW; j++) {
                    const int64_t k = ((int64_t)i * C + c) * HW + j;
                    const double xh = (x[k] - mean) * inv;
                    want[k] = xh * g[c] + be[c];
                    /* x - mean loses |x| eps in float, scaled by inv |gamma| */
                    mag[k] = (fabs(x[k]) + fabs(mean) + fabs(xh) / inv) * inv * fabs(g[c]) + fabs(be[c]);
                }
            const double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
            wrm[c] = (1.0 - momentum) * rm[c] + momentum * mean;
            wrmag[c] = fabs(rm[c]) + fabs(mean) + b->spread;
            wrv[c] = (1.0 - momentum) * rv[c] + momentum * unbiased;
            wvmag[c] = fabs(rv[c]) + unbiased;
        }
        int64_t nb = 41;
        rt_bn_train_fwd(x, g, be, rm, rv, &nb, y, stats, b->N, C, HW, eps, momentum);
        ck_assert_int_eq(nb, 42);
        expect_near(y, want, mag, n, TOL_ELEM, "y");
        expect_near(stats, wm, wmag, C, TOL_ELEM, "stats mean");
        /* invstd: the variance is summed in double and rounded once */
        expect_near(stats + C, wm + C, wmag + C, C, TOL_ELEM, "stats invstd");
        expect_near(rm, wrm, wrmag, C, TOL_ELEM, "running_mean");
        expect_near(rv, wrv, wvmag, C, TOL_ELEM, "running_var");
        expect_same(x, x0, n, "x unchanged");
        gcheck(y, n, "y"), gcheck(stats, 2 * C, "stats"), gcheck(rm, C, "rm"), gcheck(rv, C, "rv");

        /* stats NULL: same y and state update */
        memcpy(rm, rm0, sizeof(float) * (size_t)C), memcpy(rv, rv0, sizeof(float) * (size_t)C);
        rt_bn_train_fwd(x, g, be, rm, rv, &nb, y2, NULL, b->N, C, HW, eps, momentum);
        ck_assert_int_eq(nb, 43);
        expect_same(y2, y, n, "y (stats NULL)");
        expect_near(rm, wrm, wrmag, C, TOL_ELEM, "running_mean (stats NULL)");

        /* in place: y = x gives the out-of-place result bit for bit */
        memcpy(rm, rm0, sizeof(float) * (size_t)C), memcpy(rv, rv0, sizeof(float) * (size_t)C);
        memcpy(y2, x, sizeof(float) * (size_t)n);
        float *stats2 = gnew(2 * C);
        rt_bn_train_fwd(y2, g, be, rm, rv, &nb, y2, stats2, b->N, C, HW, eps, momentum);
        expect_same(y2, y, n, "y (in place)");
        expect_same(stats2, stats, 2 * C, "stats (in place)");
        expect_near(rv, wrv, wvmag, C, TOL_ELEM, "running_var (in place)");
        gcheck(y2, n, "y in place");

        gfree(x), gfree(g), gfree(be), gfree(rm), gfree(rv), gfree(y), gfree(stats), gfree(y2);
        gfree(x0), gfree(rm0), gfree(rv0), gfree(stats2);
        free(want), free(mag), free(wm), free(wmag), free(wrm), free(wrv), free(wrmag), free(wvmag);
    }
}
END_TEST

START_TEST(bn_train_backward) {
    const float eps = 1e-5f;
    seed_rng(22);
    for (size_t t = 0; t < sizeof bn_cases / sizeof *bn_cases; t++) {
        const bn_t *b = &bn_cases[t];
        bn_ctx(b, "bn_train_bwd");
        const int C = b->C, HW = b->HW;
        const int64_t n = (int64_t)b->N * C * HW, m = (int64_t)b->N * HW;
        float *x = gnew(n), *g = gnew(C), *be = gnew(C), *rm = gnew(C), *rv = gnew(C);
        float *y = gnew(n), *stats = gnew(2 * C), *dy = gnew(n), *dx = gnew(n), *dg = gnew(C);
        float *pre = gnew(n), *preg = gnew(C);
        bn_fill_x(b, x);
        fill_rand(g, C), fill_rand(be, C), fill_rand(dy, n), fill_rand(pre, n), fill_rand(preg, C);
        for (int c = 0; c < C; c++)
            rm[c] = 0.0f, rv[c] = 1.0f;
        int64_t nb = 0;
        rt_bn_train_fwd(x, g, be, rm, rv, &nb, y, stats, b->N, C, HW, eps, 0.1f);
        double *want = dnew(n), *mag = dnew(n), *wg = dnew(C), *wgmag = dnew(C);
        /* the reference takes mean and invstd from stats, as the kernel does */
        for (int c = 0; c < C; c++) {
            const double mean = stats[c], inv = stats[C + c];
            double sdy = 0, sdyxh = 0, sabs = 0, sabsx = 0;
            for (int i = 0; i < b->N; i++)
                for (int j = 0; j < HW; j++) {
                    const int64_t k = ((int64_t)i * C + c) * HW + j;
                    sdy += dy[k], sdyxh += dy[k] * (x[k] - mean) * inv;
                    sabs += fabs(dy[k]), sabsx += fabs(dy[k] * (x[k] - mean) * inv);
                }
            wg[c] = sdyxh, wgmag[c] = sabsx;
            const double kc = inv * g[c] / (double)m;
            for (int i = 0; i < b->N; i++)
                for (int j = 0; j < HW; j++) {
                    const int64_t k = ((int64_t)i * C + c) * HW + j;
                    const double xh = (x[k] - mean) * inv;
                    want[k] = kc * ((double)m * dy[k] - sdy - xh * sdyxh);
                    mag[k] = fabs(kc) *
                             ((double)m * fabs(dy[k]) + sabs + (fabs(xh) + (fabs(x[k]) + fabs(mean)) * inv) * sabsx);
                }
        }
        for (int acc = 0; acc <= 1; acc++) {
            if (acc)
                memcpy(dx, pre, sizeof(float) * (size_t)n), memcpy(dg, preg, sizeof(float) * (size_t)C);
            else
                gpoison(dx, n), gpoison(dg, C);
            rt_bn_train_bwd_x(x, g, stats, dy, dx, b->N, C, HW, acc);
            rt_bn_train_bwd_gamma(x, stats, dy, dg, b->N, C, HW, acc);
            if (acc)
                add_prefill(want, mag, pre, n), add_prefill(wg, wgmag, preg, C);
            expect_near(dx, want, mag, n, TOL_ELEM, acc ? "dx (acc)" : "dx");
            expect_near(dg, wg, wgmag, C, TOL_ELEM, acc ? "dgamma (acc)" : "dgamma");
            gcheck(dx, n, "dx"), gcheck(dg, C, "dgamma");
        }
        gfree(x), gfree(g), gfree(be), gfree(rm), gfree(rv), gfree(y), gfree(stats), gfree(dy);
        gfree(dx), gfree(dg), gfree(pre), gfree(preg);
        free(want), free(mag), free(wg), free(wgmag);
    }
}
END_TEST

/* L(x, gamma, beta) = <dy, bn_train_fwd(x)>: central differences with one
 * Richardson step (error O(h^4)) along random directions. */
static double bn_train_L(const bn_t *b, const float *x, const float *g, const float *be, const float *dy, float *y,
                         double *mag) {
    const int64_t n = (int64_t)b->N * b->C * b->HW;
    float rm[16] = {0}, rv[16] = {0};
    int64_t nb = 0;
    rt_bn_train_fwd(x, g, be, rm, rv, &nb, y, NULL, b->N, b->C, b->HW, 1e-5f, 0.1f);
    *mag += dabsdot(dy, y, n);
    return ddot(dy, y, n);
}

START_TEST(bn_train_finite_differences) {
    static const bn_t cases[] = {
        {2, 3, 5, 0.0f, 1.0f},
        {3, 2, 7, 0.5f, 2.0f},
        {1, 3, 4, -1.0f, 0.3f},
        {4, 2, 9, 10.0f, 1.0f},
    };
    seed_rng(23);
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        const bn_t *b = &cases[t];
        bn_ctx(b, "bn_train fd");
        const int C = b->C, HW = b->HW;
        const int64_t n = (int64_t)b->N * C * HW;
        float *x = gnew(n), *g = gnew(C), *be = gnew(C), *dy = gnew(n), *y = gnew(n);
        float *v = gnew(n), *vg = gnew(C), *vb = gnew(C), *xp = gnew(n), *gp = gnew(C), *bp = gnew(C);
        float *stats = gnew(2 * C), *dx = gnew(n), *dg = gnew(C), *db = gnew(C);
        float rm[16] = {0}, rv[16] = {0};
        bn_fill_x(b, x);
        fill_rand(g, C), fill_rand(be, C), fill_rand(dy, n);
        fill_rand(v, n), fill_rand(vg, C), fill_rand(vb, C);
        for (int c = 0; c < C; c++)
            vg[c] *= 4.0f, vb[c] *= 4.0f;
        int64_t nb = 0;
        rt_bn_train_fwd(x, g, be, rm, rv, &nb, y, stats, b->N, C, HW, 1e-5f, 0.1f);
        rt_bn_train_bwd_x(x, g, stats, dy, dx, b->N, C, HW, 0);
        rt_bn_train_bwd_gamma(x, stats, dy, dg, b->N, C, HW, 0);
        rt_sum_channels(dy, db, b->N, C, HW, 0);
        for (int which = 0; which < 3; which++) {
            /* x is nonlinear: h relative to the spread; gamma, beta: linear */
            const double h = which == 0 ? 0.02 * b->spread : 0.25;
            double D[2], mag = 0.0;
            for (int r = 0; r < 2; r++) {
                const double hr = r ? h / 2 : h;
                double L[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    const double hs = sgn ? -hr : hr;
                    shifted(xp, x, v, n, which == 0 ? hs : 0.0);
                    shifted(gp, g, vg, C, which == 1 ? hs : 0.0);
                    shifted(bp, be, vb, C, which == 2 ? hs : 0.0);
                    L[sgn] = bn_train_L(b, xp, gp, bp, dy, y, &mag);
                }
                D[r] = (L[0] - L[1]) / (2 * hr);
            }
            const double fd = (4 * D[1] - D[0]) / 3;
            const float *grad = which == 0 ? dx : which == 1 ? dg : db;
            const float *dir = which == 0 ? v : which == 1 ? vg : vb;
            const int64_t nn = which == 0 ? n : C;
            const double an = ddot(grad, dir, nn);
            /* rounding of L amplified by ~1/h (Richardson: 5/(3h)); truncation O(h^4) */
            const double tol = 8 * FLT_EPSILON * (mag / h + dabsdot(grad, dir, nn)) + 1e-6 * fabs(an);
            ck_assert_msg(fabs(fd - an) <= tol, "%s: d%s: finite difference %.9g, <grad, v> %.9g (tol %.3g)", ctx,
                          which == 0   ? "x"
                          : which == 1 ? "gamma"
                                       : "beta",
                          fd, an, tol);
        }
        gfree(x), gfree(g), gfree(be), gfree(dy), gfree(y), gfree(v), gfree(vg), gfree(vb);
        gfree(xp), gfree(gp), gfree(bp), gfree(stats), gfree(dx), gfree(dg), gfree(db);
    }
}
END_TEST

START_TEST(bn_eval) {
    const float eps = 1e-3f;
    seed_rng(24);
    for (size_t t = 0; t < sizeof bn_cases / sizeof *bn_cases; t++) {
        const bn_t *b = &bn_cases[t];
        bn_ctx(b, "bn_eval");
        const int C = b->C, HW = b->HW;
        const int64_t n = (int64_t)b->N * C * HW;
        float *x = gnew(n), *g = gnew(C), *be = gnew(C), *rm = gnew(C), *rv = gnew(C);
        float *y = gnew(n), *y2 = gnew(n), *dy = gnew(n), *dx = gnew(n), *dg = gnew(C);
        float *pre = gnew(n), *preg = gnew(C);
        bn_fill_x(b, x);
        fill_rand(g, C), fill_rand(be, C), fill_rand(dy, n), fill_rand(pre, n), fill_rand(preg, C);
        for (int c = 0; c < C; c++) {
            rm[c] = b->offset + b->spread * frand();
            rv[c] = b->spread * b->spread * (0.6f + 0.4f * frand()); /* > 0 */
        }
        float *x0 = gdup(x, n), *rm0 = gdup(rm, C), *rv0 = gdup(rv, C);
        double *want = dnew(n), *mag = dnew(n), *wdx = dnew(n), *mdx = dnew(n);
        double *wg = dnew(C), *mg = dnew(C);
        for (int c = 0; c < C; c++) {
            const double inv = 1.0 / sqrt((double)rv[c] + eps);
            wg[c] = mg[c] = 0.0;
            for (int i = 0; i < b->N; i++)
                for (int j = 0; j < HW; j++) {
                    const int64_t k = ((int64_t)i * C + c) * HW + j;
                    want[k] = (x[k] - (double)rm[c]) * inv * g[c] + be[c];
                    mag[k] = (fabs(x[k]) + fabs(rm[c])) * inv * fabs(g[c]) + fabs(be[c]);
                    wdx[k] = dy[k] * (double)g[c] * inv;
                    mdx[k] = fabs(wdx[k]);
                    wg[c] += dy[k] * (x[k] - (double)rm[c]) * inv;
                    mg[c] += fabs(dy[k]) * (fabs(x[k]) + fabs(rm[c])) * inv;
                }
        }
        rt_bn_eval_fwd(x, g, be, rm, rv, y, b->N, C, HW, eps);
        expect_near(y, want, mag, n, TOL_ELEM, "y");
        expect_same(x, x0, n, "x unchanged");
        expect_same(rm, rm0, C, "running_mean unchanged");
        expect_same(rv, rv0, C, "running_var unchanged");
        memcpy(y2, x, sizeof(float) * (size_t)n);
        rt_bn_eval_fwd(y2, g, be, rm, rv, y2, b->N, C, HW, eps);
        expect_same(y2, y, n, "y (in place)");
        gcheck(y, n, "y"), gcheck(y2, n, "y2");
        for (int acc = 0; acc <= 1; acc++) {
            if (acc)
                memcpy(dx, pre, sizeof(float) * (size_t)n), memcpy(dg, preg, sizeof(float) * (size_t)C);
            else
                gpoison(dx, n), gpoison(dg, C);
            rt_bn_eval_bwd_x(g, rv, dy, dx, b->N, C, HW, acc, eps);
            rt_bn_eval_bwd_gamma(x, rm, rv, dy, dg, b->N, C, HW, acc, eps);
            if (acc)
                add_prefill(wdx, mdx, pre, n), add_prefill(wg, mg, preg, C);
            expect_near(dx, wdx, mdx, n, TOL_ELEM, acc ? "dx (acc)" : "dx");
            expect_near(dg, wg, mg, C, TOL_ELEM, acc ? "dgamma (acc)" : "dgamma");
            gcheck(dx, n, "dx"), gcheck(dg, C, "dgamma");
        }
        /* finite differences (eval mode is affine in x and in gamma) */
        float *v = gnew(n), *vg = gnew(C), *xp = gnew(n), *gp = gnew(C);
        fill_rand(v, n), fill_rand(vg, C);
        rt_bn_eval_bwd_x(g, rv, dy, dx, b->N, C, HW, 0, eps);
        rt_bn_eval_bwd_gamma(x, rm, rv, dy, dg, b->N, C, HW, 0, eps);
        float *xm = gnew(n), *gm = gnew(C);
        for (int which = 0; which < 2; which++) {
            /* affine: any h; the realised direction (x+ - x-)/2h is exact in
             * double even where x + hv rounds (x ~ 1000) */
            const double h = 0.25;
            double L[2], lmag = 0.0;
            for (int sgn = 0; sgn < 2; sgn++) {
                shifted(sgn ? xm : xp, x, v, n, which == 0 ? (sgn ? -h : h) : 0.0);
                shifted(sgn ? gm : gp, g, vg, C, which == 1 ? (sgn ? -h : h) : 0.0);
                rt_bn_eval_fwd(sgn ? xm : xp, sgn ? gm : gp, be, rm, rv, y, b->N, C, HW, eps);
                L[sgn] = ddot(dy, y, n);
                lmag += dabsdot(dy, y, n);
            }
            const double fd = (L[0] - L[1]) / (2 * h);
            const float *grad = which ? dg : dx, *dir = which ? vg : v;
            const float *plus = which ? gp : xp, *minus = which ? gm : xm;
            const int64_t nn = which ? C : n;
            double an = 0.0;
            for (int64_t i = 0; i < nn; i++)
                an += (double)grad[i] * (((double)plus[i] - minus[i]) / (2 * h));
            const double tol = 8 * FLT_EPSILON * (lmag / h + dabsdot(grad, dir, nn));
            ck_assert_msg(fabs(fd - an) <= tol, "%s: d%s: finite difference %.9g, <grad, v> %.9g (tol %.3g)", ctx,
                          which ? "gamma" : "x", fd, an, tol);
        }
        gfree(v), gfree(vg), gfree(xp), gfree(gp), gfree(xm), gfree(gm);
        gfree(x), gfree(g), gfree(be), gfree(rm), gfree(rv), gfree(y), gfree(y2), gfree(dy);
        gfree(dx), gfree(dg), gfree(pre), gfree(preg), gfree(x0), gfree(rm0), gfree(rv0);
        free(want), free(mag), free(wdx), free(mdx), free(wg), free(mg);
    }
}
END_TEST

/* ================================================================ pooling */

typedef struct {
    int NC, H, W, k, s, p;
} pool_t;

static int pool_oh(const pool_t *q) { return out_size(q->H, q->k, q->s, q->p, 1); }
static int pool_ow(const pool_t *q) { return out_size(q->W, q->k, q->s, q->p, 1); }
static void pool_ctx(const pool_t *q, const char *what) {
    snprintf(ctx, sizeof ctx, "%s NC%d H%d W%d k%d s%d p%d", what, q->NC, q->H, q->W, q->k, q->s, q->p);
}

static uint8_t *bnew(int64_t n) /* bytes, guarded by 0xA5 */
{
    uint8_t *b = malloc((size_t)(n + 2 * GUARD));
    ck_assert(b);
    memset(b, 0xA5, (size_t)(n + 2 * GUARD));
    return b + GUARD;
}
static void bcheck(const uint8_t *p, int64_t n, const char *what) {
    for (int i = 1; i <= GUARD; i++)
        ck_assert_msg(p[-i] == 0xA5 && p[n + i - 1] == 0xA5, "%s: %s: write outside the buffer", ctx, what);
}

/* Max over the window: two passes, (1) the maximum over the taps inside the
 * image (NaN if any tap is NaN), (2) the first tap, row-major, equal to it. */
static void ref_maxpool(const pool_t *q, const float *x, float *y, int *arg) {
    const int OH = pool_oh(q), OW = pool_ow(q);
    for (int pl = 0; pl < q->NC; pl++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float best = -INFINITY;
                int nan = 0;
                for (int ky = 0; ky < q->k; ky++)
                    for (int kx = 0; kx < q->k; kx++) {
                        int iy = oy * q->s - q->p + ky, ix = ox * q->s - q->p + kx;
                        if (iy < 0 || iy >= q->H || ix < 0 || ix >= q->W)
                            continue;
                        float v = x[((int64_t)pl * q->H + iy) * q->W + ix];
                        nan |= isnan(v);
                        best = fmaxf(best, v);
                    }
                int first = -1;
                for (int ky = 0; ky < q->k && first < 0; ky++)
                    for (int kx = 0; kx < q->k && first < 0; kx++) {
                        int iy = oy * q->s - q->p + ky, ix = ox * q->s - q->p + kx;
                        if (iy < 0 || iy >= q->H || ix < 0 || ix >= q->W)
                            continue;
                        float v = x[((int64_t)pl * q->H + iy) * q->W + ix];
                        if (nan ? isnan(v) : v == best)
                            first = ky * q->k + kx;
                    }
                const int64_t o = ((int64_t)pl * OH + oy) * OW + ox;
                y[o] = nan ? NAN : best;
                arg[o] = first;
            }
}

static void pool_grid_cases(int i, pool_t *q) {
    /* i -> k in 1..5, s in 1..3, p in 0..k/2 */
    static const int kk[] = {1, 2, 3, 4, 5};
    q->k = kk[i / 9];
    q->s = (i / 3) % 3 + 1;
    q->p = i % 3;
}
enum { POOL_GRID_N = 5 * 3 * 3 };
static const int pool_hw[][2] = {{7, 5}, {8, 9}, {1, 6}, {13, 12}};

START_TEST(maxpool_grid) {
    pool_t q = {3, 0, 0, 0, 0, 0};
    pool_grid_cases(_i, &q);
    if (q.p > q.k / 2) /* PyTorch's limit; otherwise windows can be all padding */
        return;
    seed_rng(300 + (uint64_t)_i);
    for (size_t h = 0; h < sizeof pool_hw / sizeof *pool_hw; h++) {
        q.H = pool_hw[h][0], q.W = pool_hw[h][1];
        const int OH = pool_oh(&q), OW = pool_ow(&q);
        if (OH <= 0 || OW <= 0)
            continue;
        const int64_t nx = (int64_t)q.NC * q.H * q.W, ny = (int64_t)q.NC * OH * OW;
        float *x = gnew(nx), *y = gnew(ny), *y2 = gnew(ny), *wy = gnew(ny), *dy = gnew(ny);
        float *dx = gnew(nx), *pre = gnew(nx);
        uint8_t *arg = bnew(ny);
        int *warg = calloc((size_t)ny, sizeof(int));
        double *want = dnew(nx), *mag = dnew(nx);
        /* data: continuous; few levels (ties); with -inf and NaN */
        for (int data = 0; data < 3; data++) {
            pool_ctx(&q, data == 0 ? "maxpool" : data == 1 ? "maxpool ties" : "maxpool inf/nan");
            for (int64_t i = 0; i < nx; i++) {
                x[i] = data == 0 ? frand() : (float)(int)(2.5f * frand());
                if (data == 2 && (rnext() % 7) == 0)
                    x[i] = -INFINITY;
                if (data == 2 && (rnext() % 23) == 0)
                    x[i] = NAN;
            }
            ref_maxpool(&q, x, wy, warg);
            gpoison(y, ny);
            rt_maxpool_fwd(x, y, arg, q.NC, q.H, q.W, q.k, q.s, q.p);
            for (int64_t i = 0; i < ny; i++) {
                ck_assert_msg(memcmp(&y[i], &wy[i], sizeof(float)) == 0 || (isnan(y[i]) && isnan(wy[i])),
                              "%s: y[%lld] = %g, want %g", ctx, (long long)i, (double)y[i], (double)wy[i]);
                ck_assert_msg(arg[i] == warg[i], "%s: argmax[%lld] = %d, want %d", ctx, (long long)i, arg[i], warg[i]);
            }
            rt_maxpool_fwd(x, y2, NULL, q.NC, q.H, q.W, q.k, q.s, q.p);
            for (int64_t i = 0; i < ny; i++)
                ck_assert(memcmp(&y[i], &y2[i], sizeof(float)) == 0 || (isnan(y[i]) && isnan(y2[i])));
            gcheck(y, ny, "y"), gcheck(y2, ny, "y2"), bcheck(arg, ny, "argmax");
            /* backward: dy scattered through the reference argmax */
            fill_rand(dy, ny), fill_rand(pre, nx);
            for (int acc = 0; acc <= 1; acc++) {
                memset(want, 0, sizeof(double) * (size_t)nx), memset(mag, 0, sizeof(double) * (size_t)nx);
                for (int pl = 0; pl < q.NC; pl++)
                    for (int oy = 0; oy < OH; oy++)
                        for (int ox = 0; ox < OW; ox++) {
                            const int64_t o = ((int64_t)pl * OH + oy) * OW + ox;
                            const int iy = oy * q.s - q.p + warg[o] / q.k, ix = ox * q.s - q.p + warg[o] % q.k;
                            want[((int64_t)pl * q.H + iy) * q.W + ix] += dy[o];
                            mag[((int64_t)pl * q.H + iy) * q.W + ix] += fabs(dy[o]);
                        }
                if (acc)
                    add_prefill(want, mag, pre, nx), memcpy(dx, pre, sizeof(float) * (size_t)nx);
                else
                    gpoison(dx, nx);
                rt_maxpool_bwd(arg, dy, dx, q.NC, q.H, q.W, q.k, q.s, q.p, acc);
                expect_near(dx, want, mag, nx, TOL_ELEM, acc ? "dx (acc)" : "dx");
                gcheck(dx, nx, "dx");
            }
        }
        gfree(x), gfree(y), gfree(y2), gfree(wy), gfree(dy), gfree(dx), gfree(pre);
        free(arg - GUARD), free(warg), free(want), free(mag);
    }
}
END_TEST

/* Max pool is piecewise linear: with distinct inputs on a grid of 1/8 and
 * perturbations below 1/16, every argmax stays put and all values are exact
 * in float, so the central difference equals <dx, v> to double rounding. */
START_TEST(maxpool_finite_differences) {
    static const pool_t cases[] = {{2, 9, 7, 3, 2, 1}, {3, 6, 8, 2, 2, 0}, {2, 7, 7, 3, 1, 1}, {1, 11, 10, 5, 3, 2}};
    seed_rng(31);
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        const pool_t *q = &cases[t];
        pool_ctx(q, "maxpool fd");
        const int OH = pool_oh(q), OW = pool_ow(q);
        const int64_t nx = (int64_t)q->NC * q->H * q->W, ny = (int64_t)q->NC * OH * OW;
        float *x = gnew(nx), *v = gnew(nx), *xp = gnew(nx), *y = gnew(ny), *dy = gnew(ny), *dx = gnew(nx);
        uint8_t *arg = bnew(ny);
        for (int64_t i = 0; i < nx; i++) /* a permutation of 0..nx-1, scaled */
            x[i] = (float)i;
        for (int64_t i = nx - 1; i > 0; i--) {
            int64_t j = (int64_t)(rnext() % (uint64_t)(i + 1));
            float tmp = x[i];
            x[i] = x[j], x[j] = tmp;
        }
        for (int64_t i = 0; i < nx; i++) {
            x[i] = (x[i] - (float)(nx / 2)) / 8.0f;
            v[i] = (float)((int)(rnext() % 2049) - 1024) / 1024.0f;
        }
        fill_rand(dy, ny);
        rt_maxpool_fwd(x, y, arg, q->NC, q->H, q->W, q->k, q->s, q->p);
        rt_maxpool_bwd(arg, dy, dx, q->NC, q->H, q->W, q->k, q->s, q->p, 0);
        const double h = 1.0 / 32;
        double L[2];
        float *ym = gnew(ny);
        for (int sgn = 0; sgn < 2; sgn++) {
            shifted(xp, x, v, nx, sgn ? -h : h);
            rt_maxpool_fwd(xp, sgn ? ym : y, NULL, q->NC, q->H, q->W, q->k, q->s, q->p);
            L[sgn] = ddot(dy, sgn ? ym : y, ny);
        }
        /* exact: y(x + hv) - y(x - hv) = 2h v[argmax] */
        double mag = 0.0;
        for (int64_t i = 0; i < ny; i++) {
            const float *vi = v + i / ((int64_t)OH * OW) * q->H * q->W; /* v's plane */
            const int a = arg[i], oy = (int)(i / OW % OH), ox = (int)(i % OW);
            const int64_t at = (int64_t)(oy * q->s - q->p + a / q->k) * q->W + (ox * q->s - q->p + a % q->k);
            ck_assert_msg((double)y[i] - ym[i] == 2 * h * vi[at], "%s: an argmax moved", ctx);
            mag += fabs(dy[i] * vi[at]);
        }
        /* dx sums up to k*k values of dy in float */
        const double fd = (L[0] - L[1]) / (2 * h), an = ddot(dx, v, nx);
        ck_assert_msg(fabs(fd - an) <= TOL_ELEM * mag, "%s: finite difference %.12g, <dx, v> %.12g", ctx, fd, an);
        gfree(x), gfree(v), gfree(xp), gfree(y), gfree(ym), gfree(dy), gfree(dx), free(arg - GUARD);
    }
}
END_TEST

START_TEST(avgpool_grid) {
    pool_t q = {3, 0, 0, 0, 0, 0};
    pool_grid_cases(_i, &q);
    if (q.p > q.k / 2)
        return;
    seed_rng(400 + (uint64_t)_i);
    for (size_t h = 0; h < sizeof pool_hw / sizeof *pool_hw; h++) {
        q.H = pool_hw[h][0], q.W = pool_hw[h][1];
        pool_ctx(&q, "avgpool");
        const int OH = pool_oh(&q), OW = pool_ow(&q), k = q.k;
        if (OH <= 0 || OW <= 0)
            continue;
        const int64_t nx = (int64_t)q.NC * q.H * q.W, ny = (int64_t)q.NC * OH * OW;
        float *x = gnew(nx), *y = gnew(ny), *dy = gnew(ny), *dx = gnew(nx), *pre = gnew(nx);
        double *wy = dnew(ny), *my = dnew(ny), *wdx = dnew(nx), *mdx = dnew(nx);
        fill_rand(x, nx), fill_rand(dy, ny), fill_rand(pre, nx);
        for (int pl = 0; pl < q.NC; pl++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const int64_t o = ((int64_t)pl * OH + oy) * OW + ox;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * q.s - q.p + ky, ix = ox * q.s - q.p + kx;
                            if (iy < 0 || iy >= q.H || ix < 0 || ix >= q.W)
                                continue; /* padding: 0, but counted in k*k */
                            const int64_t xi = ((int64_t)pl * q.H + iy) * q.W + ix;
                            wy[o] += x[xi] / (double)(k * k), my[o] += fabs(x[xi]) / (k * k);
                            wdx[xi] += dy[o] / (double)(k * k), mdx[xi] += fabs(dy[o]) / (k * k);
                        }
                }
        rt_avgpool_fwd(x, y, q.NC, q.H, q.W, q.k, q.s, q.p);
        expect_near(y, wy, my, ny, TOL_GEMM, "y");
        gcheck(y, ny, "y");
        for (int acc = 0; acc <= 1; acc++) {
            if (acc)
                add_prefill(wdx, mdx, pre, nx), memcpy(dx, pre, sizeof(float) * (size_t)nx);
            else
                gpoison(dx, nx);
            rt_avgpool_bwd(dy, dx, q.NC, q.H, q.W, q.k, q.s, q.p, acc);
            expect_near(dx, wdx, mdx, nx, TOL_GEMM, acc ? "dx (acc)" : "dx");
            gcheck(dx, nx, "dx");
        }
        /* finite differences: linear */
        float *v = gnew(nx), *xp = gnew(nx);
        fill_rand(v, nx);
        rt_avgpool_bwd(dy, dx, q.NC, q.H, q.W, q.k, q.s, q.p, 0);
        double L[2], lmag = 0;
        for (int sgn = 0; sgn < 2; sgn++) {
            shifted(xp, x, v, nx, sgn ? -0.25 : 0.25);
            rt_avgpool_fwd(xp, y, q.NC, q.H, q.W, q.k, q.s, q.p);
            L[sgn] = ddot(dy, y, ny), lmag += dabsdot(dy, y, ny);
        }
        const double fd = (L[0] - L[1]) / 0.5, an = ddot(dx, v, nx);
        const double tol = 8 * FLT_EPSILON * (lmag / 0.25 + dabsdot(dx, v, nx));
        ck_assert_msg(fabs(fd - an) <= tol, "%s: finite difference %.9g, <dx, v> %.9g", ctx, fd, an);
        gfree(v), gfree(xp);
        gfree(x), gfree(y), gfree(dy), gfree(dx), gfree(pre), free(wy), free(my), free(wdx), free(mdx);
    }
}
END_TEST

START_TEST(global_avgpool) {
    static const int shapes[][2] = {{1, 1}, {3, 7}, {8, 49}, {5, 1000}, {2, 3}};
    seed_rng(41);
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const int NC = shapes[t][0], HW = shapes[t][1];
        snprintf(ctx, sizeof ctx, "global_avgpool NC%d HW%d", NC, HW);
        const int64_t nx = (int64_t)NC * HW;
        float *x = gnew(nx), *y = gnew(NC), *dy = gnew(NC), *dx = gnew(nx), *pre = gnew(nx);
        double *wy = dnew(NC), *my = dnew(NC), *wdx = dnew(nx), *mdx = dnew(nx);
        fill_rand(x, nx), fill_rand(dy, NC), fill_rand(pre, nx);
        for (int i = 0; i < NC; i++)
            for (int j = 0; j < HW; j++) {
                wy[i] += x[(int64_t)i * HW + j] / (double)HW;
                my[i] += fabs(x[(int64_t)i * HW + j]) / HW;
                wdx[(int64_t)i * HW + j] = dy[i] / (double)HW;
                mdx[(int64_t)i * HW + j] = fabs(dy[i]) / HW;
            }
        rt_global_avgpool_fwd(x, y, NC, HW);
        expect_near(y, wy, my, NC, TOL_ELEM, "y");
        gcheck(y, NC, "y");
        for (int acc = 0; acc <= 1; acc++) {
            if (acc)
                add_prefill(wdx, mdx, pre, nx), memcpy(dx, pre, sizeof(float) * (size_t)nx);
            else
                gpoison(dx, nx);
            rt_global_avgpool_bwd(dy, dx, NC, HW, acc);
            expect_near(dx, wdx, mdx, nx, TOL_ELEM, acc ? "dx (acc)" : "dx");
            gcheck(dx, nx, "dx");
        }
        float *v = gnew(nx), *xp = gnew(nx);
        fill_rand(v, nx);
        rt_global_avgpool_bwd(dy, dx, NC, HW, 0);
        double L[2], lmag = 0;
        for (int sgn = 0; sgn < 2; sgn++) {
            shifted(xp, x, v, nx, sgn ? -0.25 : 0.25);
            rt_global_avgpool_fwd(xp, y, NC, HW);
            L[sgn] = ddot(dy, y, NC), lmag += dabsdot(dy, y, NC);
        }
        const double fd = (L[0] - L[1]) / 0.5, an = ddot(dx, v, nx);
        const double tol = 8 * FLT_EPSILON * (lmag / 0.25 + dabsdot(dx, v, nx));
        ck_assert_msg(fabs(fd - an) <= tol, "%s: finite difference %.9g, <dx, v> %.9g", ctx, fd, an);
        gfree(v), gfree(xp);
        gfree(x), gfree(y), gfree(dy), gfree(dx), gfree(pre), free(wy), free(my), free(wdx), free(mdx);
    }
}
END_TEST

/* ================================================================ dropout */

/* The mask as rt.h specifies it. */
static uint64_t ref_mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int ref_keep(int64_t seed, int64_t i, float p) {
    const uint64_t key = ref_mix64((uint64_t)seed ^ 0x64726f706f75742eull);
    const float u = (float)(ref_mix64(key + (uint64_t)i) >> 40) * (1.0f / 16777216.0f);
    return u >= p;
}

START_TEST(dropout) {
    static const float ps[] = {0.0f, 0.1f, 0.5f, 0.9f, 1.0f, 1.0f / 3.0f};
    static const int64_t seeds[] = {0, 1, 12345, -1, INT64_MAX};
    enum { N = 1001 };
    seed_rng(51);
    float *x = gnew(N), *y = gnew(N), *y2 = gnew(N), *dy = gnew(N), *dx = gnew(N), *pre = gnew(N);
    for (size_t a = 0; a < sizeof ps / sizeof *ps; a++)
        for (size_t b = 0; b < sizeof seeds / sizeof *seeds; b++) {
            const float p = ps[a];
            snprintf(ctx, sizeof ctx, "dropout p %g seed %lld", (double)p, (long long)seeds[b]);
            const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
            fill_rand(x, N), fill_rand(dy, N), fill_rand(pre, N);
            int64_t state = seeds[b], seed = 777;
            gpoison(y, N);
            rt_dropout_fwd(x, y, &state, &seed, N, p);
            ck_assert(seed == seeds[b]);
            ck_assert(state == (int64_t)((uint64_t)seeds[b] + 1)); /* wraps at INT64_MAX */
            int kept = 0;
            for (int64_t i = 0; i < N; i++) {
                const int keep = ref_keep(seed, i, p);
                const float want = keep ? x[i] * scale : 0.0f;
                kept += keep;
                ck_assert_msg(memcmp(&y[i], &want, sizeof want) == 0, "%s: y[%lld] = %.9g, want %.9g", ctx,
                              (long long)i, (double)y[i], (double)want);
            }
            if (p == 0.0f)
                ck_assert_int_eq(kept, N);
            if (p == 1.0f)
                ck_assert_int_eq(kept, 0);
            /* same seed, same mask; in place too; seed_out may be NULL */
            state = seeds[b];
            memcpy(y2, x, sizeof(float) * N);
            rt_dropout_fwd(y2, y2, &state, NULL, N, p);
            expect_same(y2, y, N, "y (in place)");
            ck_assert(state == (int64_t)((uint64_t)seeds[b] + 1));
            /* backward regenerates the mask from the seed */
            for (int acc = 0; acc <= 1; acc++) {
                if (acc)
                    memcpy(dx, pre, sizeof(float) * N);
                else
                    gpoison(dx, N);
                rt_dropout_bwd(&seed, dy, dx, N, acc, p);
                for (int64_t i = 0; i < N; i++) {
                    const float g = ref_keep(seed, i, p) ? dy[i] * scale : 0.0f;
                    const float want = acc ? pre[i] + g : g;
                    ck_assert_msg(memcmp(&dx[i], &want, sizeof want) == 0, "%s: dx[%lld] = %.9g, want %.9g", ctx,
                                  (long long)i, (double)dx[i], (double)want);
                }
            }
            /* finite differences: linear in x for a fixed seed */
            float *v = gnew(N), *xp = gnew(N);
            fill_rand(v, N);
            rt_dropout_bwd(&seed, dy, dx, N, 0, p);
            double L[2], lmag = 0;
            for (int sgn = 0; sgn < 2; sgn++) {
                state = seeds[b];
                shifted(xp, x, v, N, sgn ? -0.25 : 0.25);
                rt_dropout_fwd(xp, y2, &state, NULL, N, p);
                L[sgn] = ddot(dy, y2, N), lmag += dabsdot(dy, y2, N);
            }
            const double fd = (L[0] - L[1]) / 0.5, an = ddot(dx, v, N);
            ck_assert_msg(fabs(fd - an) <= 8 * FLT_EPSILON * (lmag / 0.25 + dabsdot(dx, v, N)),
                          "%s: finite difference %.9g, <dx, v> %.9g", ctx, fd, an);
            gfree(v), gfree(xp);
            gcheck(y, N, "y"), gcheck(y2, N, "y2"), gcheck(dx, N, "dx");
        }
    gfree(x), gfree(y), gfree(y2), gfree(dy), gfree(dx), gfree(pre);
}
END_TEST

/* Statistics of the mask: keep rate, independence of neighbours and of
 * consecutive seeds (the counter advances by one per call). */
START_TEST(dropout_statistics) {
    enum { N = 200000 };
    static float x[N], y1[N], y2[N];
    snprintf(ctx, sizeof ctx, "dropout statistics");
    for (int64_t i = 0; i < N; i++)
        x[i] = 1.0f;
    const float p = 0.3f;
    int64_t state = 99;
    rt_dropout_fwd(x, y1, &state, NULL, N, p);
    rt_dropout_fwd(x, y2, &state, NULL, N, p);
    ck_assert(state == 101);
    int64_t k1 = 0, k11 = 0, both = 0;
    for (int64_t i = 0; i < N; i++) {
        k1 += y1[i] != 0.0f;
        k11 += i > 0 && y1[i] != 0.0f && y1[i - 1] != 0.0f;
        both += y1[i] != 0.0f && y2[i] != 0.0f;
    }
    const double q = 1.0 - p, sd1 = sqrt(N * q * (1 - q)), sd2 = sqrt(N * q * q * (1 - q * q));
    ck_assert_msg(fabs(k1 - N * q) < 5 * sd1, "kept %lld of %d, expected %g", (long long)k1, N, N * q);
    ck_assert_msg(fabs(k11 - N * q * q) < 5 * sd2, "neighbours both kept %lld, expected %g", (long long)k11, N * q * q);
    ck_assert_msg(fabs(both - N * q * q) < 5 * sd2, "kept by both seeds %lld, expected %g", (long long)both, N * q * q);
}
END_TEST

/* ================================================================ exp */

/* The runtime's exp against libm's on a dense sweep of every finite float
 * with a normal result (every 4099th bit pattern: 2 ulp), and its ends. */
START_TEST(exp_sweep) {
    enum { n = 4096 };
    float x[n], y[n];
    double worst = 0;
    float worst_x = 0;
    int64_t count = 0;
    for (uint64_t b = 0; b <= 0xFFFFFFFFull;) {
        int k = 0;
        for (; k < n && b <= 0xFFFFFFFFull; b += 4099) {
            uint32_t bits = (uint32_t)b;
            float v;
            memcpy(&v, &bits, 4);
            if (isfinite(v) && v > -87.33f && v < 88.72f)
                x[k++] = v;
        }
        rt_exp_fwd(x, y, k);
        for (int i = 0; i < k; i++) {
            float e = expf(x[i]);
            double ulp = fabs((double)y[i] - (double)e) / (double)(nextafterf(e, INFINITY) - e);
            if (ulp > worst)
                worst = ulp, worst_x = x[i];
        }
        count += k;
    }
    ck_assert_msg(worst <= 2.0, "exp(%.9g): %.2f ulp from expf", worst_x, worst);
    ck_assert(count > 500000);
    float ends[] = {-INFINITY, INFINITY, NAN, -104.5f, -1e30f, 88.73f, 1e30f, 0.0f, -0.0f, -100.0f};
    rt_exp_fwd(ends, y, 10);
    ck_assert(y[0] == 0.0f && y[1] == INFINITY && isnan(y[2]) && y[3] == 0.0f && y[4] == 0.0f);
    ck_assert(y[5] == INFINITY && y[6] == INFINITY && y[7] == 1.0f && y[8] == 1.0f);
    ck_assert_msg(fabs(y[9] - expf(-100.0f)) <= 2e-45, "exp(-100) = %g (subnormal)", y[9]); /* 3.8e-44 */
}
END_TEST

/* ================================================================ sigmoid */

/* Forward against a double reference, the saturated ends and NaN; backward
 * from the output, written and accumulated. */
START_TEST(sigmoid) {
    enum { n = 1037 };
    seed_rng(67);
    snprintf(ctx, sizeof ctx, "sigmoid");
    float *x = gnew(n), *y = gnew(n), *dy = gnew(n), *dx = gnew(n);
    fill_rand(x, n), fill_rand(dy, n);
    for (int64_t i = 0; i < n; i++)
        x[i] *= 12.0f; /* well into both tails */
    x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f, x[3] = NAN, x[4] = -INFINITY, x[5] = INFINITY;
    rt_sigmoid_fwd(x, y, n);
    ck_assert(y[0] == 0.0f && y[1] == 1.0f && y[2] == 0.5f && isnan(y[3]) && y[4] == 0.0f && y[5] == 1.0f);
    for (int64_t i = 6; i < n; i++) {
        double want = 1.0 / (1.0 + exp(-(double)x[i]));
        ck_assert_msg(fabs(y[i] - want) <= 2e-7 * want + 1e-30, "sigmoid(%g) = %.9g, want %.9g", x[i], y[i], want);
    }
    for (int64_t i = 0; i < n; i++)
        dx[i] = 3.0f;
    rt_sigmoid_bwd(y, dy, dx, n, 1);
    for (int64_t i = 6; i < n; i++)
        ck_assert(dx[i] == 3.0f + dy[i] * y[i] * (1.0f - y[i]));
    rt_sigmoid_bwd(y, dy, dx, n, 0);
    for (int64_t i = 6; i < n; i++)
        ck_assert(dx[i] == dy[i] * y[i] * (1.0f - y[i]));
    ck_assert(dx[0] == 0.0f && dx[1] == 0.0f && dx[2] == dy[2] * 0.25f);
    gcheck(x, n, "x"), gcheck(y, n, "y"), gcheck(dy, n, "dy"), gcheck(dx, n, "dx");
    gfree(x), gfree(y), gfree(dy), gfree(dx);
}
END_TEST

/* ================================================================ silu */

/* Forward and backward against a double reference, the far ends and NaN;
 * backward written and accumulated. */
START_TEST(silu) {
    enum { n = 1037 };
    seed_rng(71);
    snprintf(ctx, sizeof ctx, "silu");
    float *x = gnew(n), *y = gnew(n), *dy = gnew(n), *dx = gnew(n);
    fill_rand(x, n), fill_rand(dy, n);
    for (int64_t i = 0; i < n; i++)
        x[i] *= 12.0f;
    x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f, x[3] = NAN, x[4] = -INFINITY, x[5] = INFINITY;
    rt_silu_fwd(x, y, n);
    ck_assert(y[0] == 0.0f && y[1] == 100.0f && y[2] == 0.0f && isnan(y[3]) && y[4] == 0.0f && y[5] == INFINITY);
    for (int64_t i = 6; i < n; i++) {
        double xd = x[i], want = xd / (1.0 + exp(-xd));
        ck_assert_msg(fabs(y[i] - want) <= 4e-7 * fabs(want) + 1e-30, "silu(%g) = %.9g, want %.9g", x[i], y[i], want);
    }
    for (int64_t i = 0; i < n; i++)
        dx[i] = 3.0f;
    rt_silu_bwd(x, dy, dx, n, 1);
    for (int64_t i = 6; i < n; i++) {
        double xd = x[i], s = 1.0 / (1.0 + exp(-xd)), want = 3.0 + dy[i] * s * (1.0 + xd * (1.0 - s));
        ck_assert_msg(fabs(dx[i] - want) <= 1e-6 * (3.0 + fabs(dy[i])), "silu' at %g: %.9g, want %.9g", x[i], dx[i],
                      want);
    }
    rt_silu_bwd(x, dy, dx, n, 0);
    for (int64_t i = 6; i < n; i++) {
        double xd = x[i], s = 1.0 / (1.0 + exp(-xd)), want = dy[i] * s * (1.0 + xd * (1.0 - s));
        ck_assert_msg(fabs(dx[i] - want) <= 1e-6 * fabs(dy[i]) + 1e-30, "silu' at %g: %.9g, want %.9g", x[i], dx[i],
                      want);
    }
    ck_assert(dx[0] == 0.0f && dx[1] == dy[1] && dx[2] == dy[2] * 0.5f && isnan(dx[3]) && dx[4] == 0.0f &&
              dx[5] == dy[5]);
    gcheck(x, n, "x"), gcheck(y, n, "y"), gcheck(dy, n, "dy"), gcheck(dx, n, "dx");
    gfree(x), gfree(y), gfree(dy), gfree(dx);
}
END_TEST

/* ================================================================ gelu */

static double gelu_ref(double x, int tanh_form) {
    if (tanh_form)
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static double gelu_grad_ref(double x, int tanh_form) {
    if (tanh_form) {
        double k = sqrt(2.0 / M_PI), t = tanh(k * (x + 0.044715 * x * x * x));
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
    }
    return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
}

/* Both forms, forward and backward against a double reference (absolute
 * error allowed where 1 + erf cancels in the left tail), the far ends and NaN;
 * backward written and accumulated. */
START_TEST(gelu) {
    enum { n = 1037 };
    seed_rng(73);
    float *x = gnew(n), *y = gnew(n), *dy = gnew(n), *dx = gnew(n);
    fill_rand(x, n), fill_rand(dy, n);
    for (int64_t i = 0; i < n; i++)
        x[i] *= 9.0f;
    x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f, x[3] = NAN, x[4] = -INFINITY, x[5] = INFINITY;
    for (int form = 0; form < 2; form++) {
        snprintf(ctx, sizeof ctx, "gelu tanh=%d", form);
        rt_gelu_fwd(x, y, n, form);
        ck_assert(y[0] == 0.0f && y[1] == 100.0f && y[2] == 0.0f && isnan(y[3]) && y[4] == 0.0f && y[5] == INFINITY);
        for (int64_t i = 6; i < n; i++) {
            double want = gelu_ref(x[i], form);
            ck_assert_msg(fabs(y[i] - want) <= 1e-6 * fabs(want) + 2e-7 * fabs(x[i]), "%s(%g) = %.9g, want %.9g", ctx,
                          x[i], y[i], want);
        }
        for (int64_t i = 0; i < n; i++)
            dx[i] = 3.0f;
        rt_gelu_bwd(x, dy, dx, n, 1, form);
        for (int64_t i = 6; i < n; i++) {
            double want = 3.0 + dy[i] * gelu_grad_ref(x[i], form);
            ck_assert_msg(fabs(dx[i] - want) <= 2e-6 * (3.0 + fabs(dy[i]) * (1.0 + fabs(x[i]))),
                          "%s' at %g: %.9g, want %.9g", ctx, x[i], dx[i], want);
        }
        rt_gelu_bwd(x, dy, dx, n, 0, form);
        for (int64_t i = 6; i < n; i++) {
            double want = dy[i] * gelu_grad_ref(x[i], form);
            ck_assert_msg(fabs(dx[i] - want) <= 2e-6 * fabs(dy[i]) * (1.0 + fabs(x[i])), "%s' at %g: %.9g, want %.9g",
                          ctx, x[i], dx[i], want);
        }
        ck_assert(dx[0] == 0.0f && dx[1] == dy[1] && dx[2] == dy[2] * 0.5f && isnan(dx[3]) && dx[4] == 0.0f &&
                  dx[5] == dy[5]);
    }
    gcheck(x, n, "x"), gcheck(y, n, "y"), gcheck(dy, n, "dy"), gcheck(dx, n, "dx");
    gfree(x), gfree(y), gfree(dy), gfree(dx);
}
END_TEST

/* ================================================================ rms_norm */

/* Forward (with and without the per-row statistic) and both VJPs, written
 * and accumulated, against a double reference. */
START_TEST(rms_norm) {
    enum { rows = 7, D = 37, n = rows * D };
    const double eps = 1e-6;
    seed_rng(79);
    snprintf(ctx, sizeof ctx, "rms_norm");
    float *x = gnew(n), *w = gnew(D), *y = gnew(n), *y2 = gnew(n), *rstd = gnew(rows), *dy = gnew(n), *dx = gnew(n),
          *dw = gnew(D);
    fill_rand(x, n), fill_rand(w, D), fill_rand(dy, n);
    for (int64_t j = 0; j < D; j++)
        x[3 * D + j] *= 1e-3f; /* a row of small values, where eps matters */
    rt_rms_norm_fwd(x, w, y, rstd, rows, D, eps);
    rt_rms_norm_fwd(x, w, y2, NULL, rows, D, eps);
    double dw_ref[D] = {0};
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t j = 0; j < D; j++)
            ss += (double)x[r * D + j] * x[r * D + j];
        double rs = 1.0 / sqrt(ss / D + eps);
        ck_assert_msg(fabs(rstd[r] - rs) <= 1e-6 * rs, "rstd[%lld] = %.9g, want %.9g", (long long)r, rstd[r], rs);
        for (int64_t j = 0; j < D; j++) {
            double want = x[r * D + j] * rs * w[j];
            ck_assert(y[r * D + j] == y2[r * D + j]);
            ck_assert_msg(fabs(y[r * D + j] - want) <= 1e-6 * (fabs(want) + 1e-3), "y = %.9g, want %.9g", y[r * D + j],
                          want);
            dw_ref[j] += (double)dy[r * D + j] * x[r * D + j] * rs;
        }
    }
    for (int64_t i = 0; i < n; i++)
        dx[i] = 2.0f;
    rt_rms_norm_bwd_x(x, w, rstd, dy, dx, rows, D, 1);
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t r = 0; r < rows; r++) {
            double ss = 0, dot = 0;
            for (int64_t j = 0; j < D; j++)
                ss += (double)x[r * D + j] * x[r * D + j];
            double rs = 1.0 / sqrt(ss / D + eps);
            for (int64_t j = 0; j < D; j++)
                dot += (double)dy[r * D + j] * w[j] * x[r * D + j] * rs;
            for (int64_t j = 0; j < D; j++) {
                double want = (pass == 0 ? 2.0 : 0.0) + rs * (dy[r * D + j] * w[j] - x[r * D + j] * rs * dot / D);
                ck_assert_msg(fabs(dx[r * D + j] - want) <= 2e-5 * (2.0 + rs), "dx (pass %d) = %.9g, want %.9g", pass,
                              dx[r * D + j], want);
            }
        }
        if (pass == 0)
            rt_rms_norm_bwd_x(x, w, rstd, dy, dx, rows, D, 0);
    }
    for (int64_t j = 0; j < D; j++)
        dw[j] = 1.5f;
    rt_rms_norm_bwd_w(x, rstd, dy, dw, rows, D, 1);
    for (int64_t j = 0; j < D; j++)
        ck_assert_msg(fabs(dw[j] - (1.5 + dw_ref[j])) <= 1e-5 * (1.5 + fabs(dw_ref[j])), "dw = %.9g, want %.9g", dw[j],
                      1.5 + dw_ref[j]);
    rt_rms_norm_bwd_w(x, rstd, dy, dw, rows, D, 0);
    for (int64_t j = 0; j < D; j++)
        ck_assert_msg(fabs(dw[j] - dw_ref[j]) <= 1e-5 * (1.0 + fabs(dw_ref[j])), "dw = %.9g, want %.9g", dw[j],
                      dw_ref[j]);
    gcheck(x, n, "x"), gcheck(w, D, "w"), gcheck(y, n, "y"), gcheck(y2, n, "y2"), gcheck(rstd, rows, "rstd");
    gcheck(dy, n, "dy"), gcheck(dx, n, "dx"), gcheck(dw, D, "dw");
    gfree(x), gfree(w), gfree(y), gfree(y2), gfree(rstd), gfree(dy), gfree(dx), gfree(dw);
}
END_TEST

/* ================================================================ attention */

/* Forward and backward against a naive double-precision reference that
 * forms the whole probability matrix: causal and not, grouped-query heads,
 * sequence lengths not a multiple of the tile, a single query. Backward
 * written, accumulated, and for each gradient alone (the others NULL, and v
 * and o NULL when only dv is wanted: it must not read them). */
static const struct {
    int64_t B, H, Hkv, T, S, hd, causal, tile;
    double scale;
} attn_cases[] = {
    {1, 2, 2, 7, 7, 5, 1, 3, 0.0},
    {2, 4, 2, 5, 11, 4, 0, 4, 0.0},
    {1, 3, 1, 1, 1, 8, 1, 16, 0.0},
    {1, 4, 1, 20, 20, 3, 1, 16, 0.3},
    {2, 2, 1, 1, 9, 6, 0, 4, 1.5},
    {1, 6, 3, 33, 33, 4, 0, 16, 0.0},
    {1, 2, 1, 70, 70, 8, 1, RT_ATTENTION_TILE, 0.0}, /* the tile frost uses, a partial second block */
    {1, 2, 2, 3, 70, 8, 0, RT_ATTENTION_TILE, 0.0},
};
enum { ATTN_CASES = sizeof attn_cases / sizeof attn_cases[0] };

static void attn_expect(const float *got, const double *want, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= 1e-4 * (1.0 + fabs(want[i])), "%s: %s[%lld]: got %.9g, want %.9g", ctx,
                      what, (long long)i, (double)got[i], want[i]);
}

START_TEST(attention) {
    int64_t B = attn_cases[_i].B, H = attn_cases[_i].H, Hkv = attn_cases[_i].Hkv, T = attn_cases[_i].T,
            S = attn_cases[_i].S, hd = attn_cases[_i].hd, causal = attn_cases[_i].causal, tile = attn_cases[_i].tile;
    double scale = attn_cases[_i].scale ? attn_cases[_i].scale : 1.0 / sqrt((double)hd);
    snprintf(ctx, sizeof ctx, "attention B %lld H %lld Hkv %lld T %lld S %lld hd %lld causal %lld tile %lld",
             (long long)B, (long long)H, (long long)Hkv, (long long)T, (long long)S, (long long)hd, (long long)causal,
             (long long)tile);
    seed_rng(97 + (uint64_t)_i);
    int64_t nq = B * H * T * hd, nkv = B * Hkv * S * hd, rows = B * H * T;
    float *q = gnew(nq), *k = gnew(nkv), *v = gnew(nkv), *o = gnew(nq), *lse = gnew(rows),
          *scores = gnew(RT_ATTENTION_FWD_SCRATCH(tile)), *bwd_scratch = gnew(RT_ATTENTION_BWD_SCRATCH(tile)),
          *dout = gnew(nq), *dq = gnew(nq), *dk = gnew(nkv), *dv = gnew(nkv);
    fill_rand(q, nq), fill_rand(k, nkv), fill_rand(v, nkv), fill_rand(dout, nq);
    for (int64_t i = 0; i < nq; i++)
        q[i] *= 3.0f; /* peaked rows: the running maximum matters */
    double *o_ref = dnew(nq), *lse_ref = dnew(rows), *dq_ref = dnew(nq), *dk_ref = dnew(nkv), *dv_ref = dnew(nkv),
           *p = dnew(S), *dp = dnew(S);
    int64_t group = H / Hkv;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < T; i++) {
                int64_t row = (b * H + h) * T + i, kv0 = (b * Hkv + h / group) * S;
                const float *qi = q + row * hd, *doi = dout + row * hd;
                int64_t keys = causal ? i + 1 : S;
                double m = -INFINITY, l = 0;
                for (int64_t j = 0; j < keys; j++) {
                    p[j] = scale * ddot(qi, k + (kv0 + j) * hd, hd);
                    m = p[j] > m ? p[j] : m;
                }
                for (int64_t j = 0; j < keys; j++)
                    l += exp(p[j] - m);
                lse_ref[row] = m + log(l);
                for (int64_t j = 0; j < keys; j++) {
                    p[j] = exp(p[j] - lse_ref[row]);
                    for (int64_t d = 0; d < hd; d++)
                        o_ref[row * hd + d] += p[j] * v[(kv0 + j) * hd + d];
                }
                double D = 0;
                for (int64_t d = 0; d < hd; d++)
                    D += doi[d] * o_ref[row * hd + d];
                for (int64_t j = 0; j < keys; j++) {
                    dp[j] = ddot(doi, v + (kv0 + j) * hd, hd);
                    double ds = p[j] * (dp[j] - D);
                    for (int64_t d = 0; d < hd; d++) {
                        dv_ref[(kv0 + j) * hd + d] += p[j] * doi[d];
                        dq_ref[row * hd + d] += scale * ds * k[(kv0 + j) * hd + d];
                        dk_ref[(kv0 + j) * hd + d] += scale * ds * qi[d];
                    }
                }
            }
    rt_attention_fwd(q, k, v, o, lse, scores, B, H, Hkv, T, S, hd, causal, tile, scale);
    attn_expect(o, o_ref, nq, "o");
    attn_expect(lse, lse_ref, rows, "lse");
    float *o2 = gnew(nq);
    rt_attention_fwd(q, k, v, o2, NULL, scores, B, H, Hkv, T, S, hd, causal, tile, scale);
    expect_same(o, o2, nq, "o without lse");
    for (int pass = 0; pass < 5; pass++) {
        /* 0: all written; 1: all accumulated onto 0.5; 2, 3, 4: dv, dq, dk alone */
        bool want_q = pass < 2 || pass == 3, want_k = pass < 2 || pass == 4, want_v = pass < 3;
        float pre = pass == 1 ? 0.5f : 0.0f;
        for (int64_t i = 0; i < nq; i++)
            dq[i] = pass == 1 ? pre : sentinel();
        for (int64_t i = 0; i < nkv; i++)
            dk[i] = dv[i] = pass == 1 ? pre : sentinel();
        bool ds = want_q || want_k;
        rt_attention_bwd(q, k, ds ? v : NULL, ds ? o : NULL, lse, dout, want_q ? dq : NULL, want_k ? dk : NULL,
                         want_v ? dv : NULL, bwd_scratch, B, H, Hkv, T, S, hd, causal, pass == 1, pass == 1, pass == 1,
                         tile, scale);
        double *shifted = dnew(nq > nkv ? nq : nkv);
        const struct {
            bool wanted;
            const float *got;
            const double *ref;
            int64_t n;
            const char *name;
        } grads[] = {{want_q, dq, dq_ref, nq, "dq"}, {want_k, dk, dk_ref, nkv, "dk"}, {want_v, dv, dv_ref, nkv, "dv"}};
        for (int g = 0; g < 3; g++) {
            if (!grads[g].wanted) {
                for (int64_t i = 0; i < grads[g].n; i++)
                    ck_assert_msg(is_sentinel(grads[g].got[i]), "%s: %s written though NULL", ctx, grads[g].name);
                continue;
            }
            for (int64_t i = 0; i < grads[g].n; i++)
                shifted[i] = grads[g].ref[i] + pre;
            attn_expect(grads[g].got, shifted, grads[g].n, grads[g].name);
        }
        free(shifted);
    }
    gcheck(q, nq, "q"), gcheck(k, nkv, "k"), gcheck(v, nkv, "v"), gcheck(o, nq, "o"), gcheck(o2, nq, "o2");
    gcheck(lse, rows, "lse"), gcheck(scores, RT_ATTENTION_FWD_SCRATCH(tile), "scores"), gcheck(dout, nq, "dout"),
        gcheck(dq, nq, "dq");
    gcheck(dk, nkv, "dk"), gcheck(dv, nkv, "dv"), gcheck(bwd_scratch, RT_ATTENTION_BWD_SCRATCH(tile), "bwd scratch");
    gfree(q), gfree(k), gfree(v), gfree(o), gfree(o2), gfree(lse), gfree(scores), gfree(bwd_scratch), gfree(dout),
        gfree(dq), gfree(dk), gfree(dv);
    free(o_ref), free(lse_ref), free(dq_ref), free(dk_ref), free(dv_ref), free(p), free(dp);
}
END_TEST

/* ================================================================ layer_norm */

/* Forward (affine and not, with and without the statistics) and both VJPs,
 * written and accumulated, against a double reference. */
START_TEST(layer_norm) {
    enum { rows = 7, D = 37, n = rows * D };
    const double eps = 1e-5;
    seed_rng(83);
    snprintf(ctx, sizeof ctx, "layer_norm");
    float *x = gnew(n), *w = gnew(D), *b = gnew(D), *y = gnew(n), *y2 = gnew(n), *stats = gnew(2 * rows), *dy = gnew(n),
          *dx = gnew(n), *dw = gnew(D);
    fill_rand(x, n), fill_rand(w, D), fill_rand(b, D), fill_rand(dy, n);
    for (int64_t j = 0; j < D; j++)
        x[2 * D + j] = 10.0f + 0.1f * x[2 * D + j]; /* a large mean, a small spread */
    double mean[rows], rs[rows], dw_ref[D] = {0};
    for (int64_t r = 0; r < rows; r++) {
        double s1 = 0, s2 = 0;
        for (int64_t j = 0; j < D; j++)
            s1 += x[r * D + j];
        mean[r] = s1 / D;
        for (int64_t j = 0; j < D; j++)
            s2 += (x[r * D + j] - mean[r]) * (x[r * D + j] - mean[r]);
        rs[r] = 1.0 / sqrt(s2 / D + eps);
    }
    for (int affine = 0; affine < 2; affine++) {
        const float *wp = affine ? w : NULL;
        rt_layer_norm_fwd(x, wp, affine ? b : NULL, y, stats, rows, D, eps);
        rt_layer_norm_fwd(x, wp, affine ? b : NULL, y2, NULL, rows, D, eps);
        for (int64_t r = 0; r < rows; r++) {
            ck_assert_msg(fabs(stats[2 * r] - mean[r]) <= 1e-6 * fabs(mean[r]) + 1e-7, "mean %.9g, want %.9g",
                          stats[2 * r], mean[r]);
            ck_assert_msg(fabs(stats[2 * r + 1] - rs[r]) <= 1e-5 * rs[r], "rstd %.9g, want %.9g", stats[2 * r + 1],
                          rs[r]);
            for (int64_t j = 0; j < D; j++) {
                double h = (x[r * D + j] - mean[r]) * rs[r], want = affine ? h * w[j] + b[j] : h;
                ck_assert(y[r * D + j] == y2[r * D + j]);
                ck_assert_msg(fabs(y[r * D + j] - want) <= 5e-4 * (1.0 + fabs(want)), "y = %.9g, want %.9g (row %lld)",
                              y[r * D + j], want, (long long)r);
            }
        }
        for (int pass = 0; pass < 2; pass++) {
            for (int64_t i = 0; i < n; i++)
                dx[i] = 2.0f;
            rt_layer_norm_bwd_x(x, wp, stats, dy, dx, rows, D, pass == 0);
            for (int64_t r = 0; r < rows; r++) {
                double sg = 0, sgh = 0;
                for (int64_t j = 0; j < D; j++) {
                    double g = affine ? (double)dy[r * D + j] * w[j] : dy[r * D + j];
                    sg += g, sgh += g * (x[r * D + j] - mean[r]) * rs[r];
                }
                for (int64_t j = 0; j < D; j++) {
                    double g = affine ? (double)dy[r * D + j] * w[j] : dy[r * D + j];
                    double h = (x[r * D + j] - mean[r]) * rs[r];
                    double want = (pass == 0 ? 2.0 : 0.0) + rs[r] * (g - sg / D - h * sgh / D);
                    ck_assert_msg(fabs(dx[r * D + j] - want) <=
                                      2e-5 * (2.0 + rs[r]) + 4e-7 * fabs(mean[r]) * rs[r] * rs[r],
                                  "dx (affine %d, pass %d, row %lld) = %.9g, want %.9g", affine, pass, (long long)r,
                                  dx[r * D + j], want);
                }
            }
        }
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < D; j++)
            dw_ref[j] += dy[r * D + j] * (x[r * D + j] - mean[r]) * rs[r];
    for (int64_t j = 0; j < D; j++)
        dw[j] = 1.5f;
    rt_layer_norm_bwd_w(x, stats, dy, dw, rows, D, 1);
    for (int64_t j = 0; j < D; j++)
        ck_assert_msg(fabs(dw[j] - (1.5 + dw_ref[j])) <= 5e-4 * (1.5 + fabs(dw_ref[j])), "dw = %.9g, want %.9g", dw[j],
                      1.5 + dw_ref[j]);
    rt_layer_norm_bwd_w(x, stats, dy, dw, rows, D, 0);
    for (int64_t j = 0; j < D; j++)
        ck_assert_msg(fabs(dw[j] - dw_ref[j]) <= 5e-4 * (1.0 + fabs(dw_ref[j])), "dw = %.9g, want %.9g", dw[j],
                      dw_ref[j]);
    gcheck(x, n, "x"), gcheck(w, D, "w"), gcheck(b, D, "b"), gcheck(y, n, "y"), gcheck(y2, n, "y2");
    gcheck(stats, 2 * rows, "stats"), gcheck(dy, n, "dy"), gcheck(dx, n, "dx"), gcheck(dw, D, "dw");
    gfree(x), gfree(w), gfree(b), gfree(y), gfree(y2), gfree(stats), gfree(dy), gfree(dx), gfree(dw);
}
END_TEST

/* ================================================================ softmax */

/* Forward against a double reference (rows of large logits, where the max
 * must be subtracted, and -inf, which gives 0); backward from the output,
 * written and accumulated. */
START_TEST(softmax) {
    static const int64_t Ds[] = {1, 5, 64, 1000};
    seed_rng(73);
    for (size_t t = 0; t < sizeof Ds / sizeof *Ds; t++) {
        const int64_t D = Ds[t], rows = 3, n = rows * D;
        snprintf(ctx, sizeof ctx, "softmax D=%lld", (long long)D);
        float *x = gnew(n), *y = gnew(n), *dy = gnew(n), *dx = gnew(n), *pre = gnew(n);
        fill_rand(x, n), fill_rand(dy, n), fill_rand(pre, n);
        for (int64_t j = 0; j < D; j++)
            x[D + j] = x[D + j] * 30.0f + 500.0f; /* e^x alone overflows */
        if (D > 1)
            x[2 * D + 1] = -INFINITY;
        rt_softmax_fwd(x, y, rows, D);
        double *want = dnew(n), *mag = dnew(n);
        for (int64_t r = 0; r < rows; r++) {
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < D; j++)
                mx = fmax(mx, x[r * D + j]);
            for (int64_t j = 0; j < D; j++)
                sum += exp((double)x[r * D + j] - mx);
            for (int64_t j = 0; j < D; j++)
                want[r * D + j] = exp((double)x[r * D + j] - mx) / sum, mag[r * D + j] = want[r * D + j];
        }
        expect_near(y, want, mag, n, TOL_GEMM, "y");
        if (D > 1)
            ck_assert(y[2 * D + 1] == 0.0f);
        for (int acc = 0; acc < 2; acc++) {
            for (int64_t r = 0; r < rows; r++) {
                double dot = 0.0, adot = 0.0;
                for (int64_t j = 0; j < D; j++)
                    dot += (double)dy[r * D + j] * y[r * D + j], adot += fabs((double)dy[r * D + j] * y[r * D + j]);
                for (int64_t j = 0; j < D; j++) {
                    const int64_t i = r * D + j;
                    want[i] = y[i] * (dy[i] - dot);
                    mag[i] = y[i] * (fabs(dy[i]) + adot);
                }
            }
            if (acc) {
                memcpy(dx, pre, sizeof(float) * (size_t)n);
                add_prefill(want, mag, pre, n);
            } else {
                gpoison(dx, n);
            }
            rt_softmax_bwd(y, dy, dx, rows, D, acc);
            expect_near(dx, want, mag, n, TOL_GEMM, acc ? "dx (acc)" : "dx");
        }
        gcheck(x, n, "x"), gcheck(y, n, "y"), gcheck(dy, n, "dy"), gcheck(dx, n, "dx");
        gfree(x), gfree(y), gfree(dy), gfree(dx), gfree(pre), free(want), free(mag);
    }
}
END_TEST

/* ================================================================ permute */

/* Random permutations of random shapes of rank 1 to 6, unmerged (as ops.c
 * would pass them before merging): y against index arithmetic, exactly; acc
 * adds; the copy back by the inverse permutation gives x again. */
/* slice of the middle dim of [outer, D, inner]: forward written and
 * accumulated, backward written (zeros around the slice) and accumulated
 * (nothing outside it touched). */
START_TEST(slice) {
    static const int64_t cases[][5] = {{3, 7, 2, 2, 4}, {1, 5, 1, 0, 5}, {4, 9, 3, 8, 1}, {2, 6, 5, 0, 1}};
    seed_rng(83);
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        const int64_t outer = cases[t][0], D = cases[t][1], inner = cases[t][2], start = cases[t][3], len = cases[t][4];
        const int64_t nx = outer * D * inner, ny = outer * len * inner;
        snprintf(ctx, sizeof ctx, "slice [%lld, %lld, %lld] %lld+%lld", (long long)outer, (long long)D,
                 (long long)inner, (long long)start, (long long)len);
        float *x = gnew(nx), *y = gnew(ny), *dy = gnew(ny), *dx = gnew(nx), *pre = gnew(nx);
        fill_rand(x, nx), fill_rand(dy, ny), fill_rand(pre, nx);
        gpoison(y, ny);
        rt_slice_fwd(x, y, outer, D, inner, start, len, 0);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < len; j++)
                for (int64_t i = 0; i < inner; i++)
                    ck_assert(y[(o * len + j) * inner + i] == x[(o * D + start + j) * inner + i]);
        memcpy(dx, y, sizeof(float) * (size_t)ny); /* dx as scratch: y + x slice again */
        rt_slice_fwd(x, y, outer, D, inner, start, len, 1);
        for (int64_t k = 0; k < ny; k++)
            ck_assert(y[k] == dx[k] + dx[k]);
        gpoison(dx, nx);
        rt_slice_bwd(dy, dx, outer, D, inner, start, len, 0);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < D; j++)
                for (int64_t i = 0; i < inner; i++) {
                    float want = j >= start && j < start + len ? dy[(o * len + j - start) * inner + i] : 0.0f;
                    ck_assert(dx[(o * D + j) * inner + i] == want);
                }
        memcpy(dx, pre, sizeof(float) * (size_t)nx);
        rt_slice_bwd(dy, dx, outer, D, inner, start, len, 1);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < D; j++)
                for (int64_t i = 0; i < inner; i++) {
                    int64_t at = (o * D + j) * inner + i;
                    float want = pre[at] + (j >= start && j < start + len ? dy[(o * len + j - start) * inner + i] : 0);
                    ck_assert(dx[at] == want);
                }
        gcheck(x, nx, "x"), gcheck(y, ny, "y"), gcheck(dy, ny, "dy"), gcheck(dx, nx, "dx"), gcheck(pre, nx, "pre");
        gfree(x), gfree(y), gfree(dy), gfree(dx), gfree(pre);
    }
}
END_TEST

/* concat of up to 8 parts along the middle dim of [outer, d_k, inner],
 * absent parts (NULL, d_k = 0) between present ones: y against index
 * arithmetic, every float written; rt_slice_fwd of y, its VJP, gives each
 * part back. */
START_TEST(concat) {
    static const int64_t cases[][10] = {
        /* outer, inner, d_0..d_7 */
        {3, 2, 1, 4, 0, 0, 0, 0, 0, 0},
        {1, 5, 2, 0, 3, 1, 0, 0, 0, 0},
        {4, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {2, 3, 0, 6, 0, 2, 0, 0, 0, 5},
    };
    seed_rng(89);
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        const int64_t outer = cases[t][0], inner = cases[t][1], *d = &cases[t][2];
        int64_t D = 0;
        for (int k = 0; k < 8; k++)
            D += d[k];
        snprintf(ctx, sizeof ctx, "concat case %zu", t);
        float *x[8], *y = gnew(outer * D * inner);
        for (int k = 0; k < 8; k++) {
            x[k] = d[k] ? gnew(outer * d[k] * inner) : NULL;
            if (x[k])
                fill_rand(x[k], outer * d[k] * inner);
        }
        gpoison(y, outer * D * inner);
        rt_concat_fwd(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], y, outer, inner, d[0], d[1], d[2], d[3], d[4],
                      d[5], d[6], d[7]);
        int64_t start = 0;
        for (int k = 0; k < 8; k++) {
            for (int64_t o = 0; o < outer; o++)
                for (int64_t j = 0; j < d[k]; j++)
                    for (int64_t i = 0; i < inner; i++)
                        ck_assert(y[(o * D + start + j) * inner + i] == x[k][(o * d[k] + j) * inner + i]);
            if (d[k]) {
                float *back = gnew(outer * d[k] * inner);
                gpoison(back, outer * d[k] * inner);
                rt_slice_fwd(y, back, outer, D, inner, start, d[k], 0);
                for (int64_t e = 0; e < outer * d[k] * inner; e++)
                    ck_assert(back[e] == x[k][e]);
                gcheck(back, outer * d[k] * inner, "back");
                gfree(back);
            }
            start += d[k];
        }
        gcheck(y, outer * D * inner, "y");
        gfree(y);
        for (int k = 0; k < 8; k++)
            if (x[k]) {
                gcheck(x[k], outer * d[k] * inner, "x");
                gfree(x[k]);
            }
    }
}
END_TEST

/* expand's forward is rt_permute with stride 0 along the broadcast dims:
 * y[a, b, c] = x[a, 0, c], written and accumulated. */
START_TEST(permute_broadcasts_with_stride_zero) {
    seed_rng(97);
    const int64_t A = 3, B = 4, C = 5;
    float *x = gnew(A * C), *y = gnew(A * B * C), *pre = gnew(A * B * C);
    fill_rand(x, A * C), fill_rand(pre, A * B * C);
    gpoison(y, A * B * C);
    rt_permute(x, y, 1, 1, 1, A, B, C, 0, 0, 0, C, 0, 1, 0);
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = 0; c < C; c++)
                ck_assert(y[(a * B + b) * C + c] == x[a * C + c]);
    memcpy(y, pre, sizeof(float) * (size_t)(A * B * C));
    rt_permute(x, y, 1, 1, 1, A, B, C, 0, 0, 0, C, 0, 1, 1);
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = 0; c < C; c++)
                ck_assert(y[(a * B + b) * C + c] == pre[(a * B + b) * C + c] + x[a * C + c]);
    gcheck(x, A * C, "x"), gcheck(y, A * B * C, "y"), gcheck(pre, A * B * C, "pre");
    gfree(x), gfree(y), gfree(pre);
}
END_TEST

START_TEST(permute) {
    seed_rng(79);
    for (int t = 0; t < 60; t++) {
        const int rank = 1 + t % 6;
        int64_t xd[6], perm[6], inv[6], xs[6], yd[6] = {1, 1, 1, 1, 1, 1}, st[6] = {0}, ys[6], st_inv[6] = {0};
        int64_t n = 1;
        for (int k = 0; k < rank; k++) {
            xd[k] = 1 + (int64_t)(rnext() % 4);
            n *= xd[k];
            perm[k] = k;
        }
        for (int k = rank - 1; k > 0; k--) { /* Fisher-Yates */
            int j = (int)(rnext() % (uint64_t)(k + 1));
            int64_t tmp = perm[k];
            perm[k] = perm[j], perm[j] = tmp;
        }
        for (int k = rank - 1, m = 1; k >= 0; k--)
            xs[k] = m, m *= (int)xd[k];
        /* y's dims right-aligned in six: y dim 6 - rank + k is x dim perm[k] */
        for (int k = 0; k < rank; k++) {
            yd[6 - rank + k] = xd[perm[k]];
            st[6 - rank + k] = xs[perm[k]];
            inv[perm[k]] = k;
        }
        for (int k = 5, m = 1; k >= 0; k--)
            ys[k] = m, m *= (int)yd[k];
        /* the VJP: dx's dims (x's) with dy's strides, right-aligned likewise */
        int64_t xd6[6] = {1, 1, 1, 1, 1, 1};
        for (int k = 0; k < rank; k++) {
            xd6[6 - rank + k] = xd[k];
            st_inv[6 - rank + k] = ys[6 - rank + inv[k]];
        }
        snprintf(ctx, sizeof ctx, "permute case %d (rank %d)", t, rank);
        float *x = gnew(n), *y = gnew(n), *back = gnew(n), *pre = gnew(n);
        fill_rand(x, n), fill_rand(pre, n);
        rt_permute(x, y, yd[0], yd[1], yd[2], yd[3], yd[4], yd[5], st[0], st[1], st[2], st[3], st[4], st[5], 0);
        int64_t idx[6] = {0};
        for (int64_t o = 0; o < n; o++) {
            int64_t off = 0;
            for (int k = 0; k < 6; k++)
                off += idx[k] * st[k];
            ck_assert_msg(y[o] == x[off], "%s: y[%lld]", ctx, (long long)o);
            for (int k = 5; k >= 0 && ++idx[k] == yd[k]; k--)
                idx[k] = 0;
        }
        rt_permute(y, back, xd6[0], xd6[1], xd6[2], xd6[3], xd6[4], xd6[5], st_inv[0], st_inv[1], st_inv[2], st_inv[3],
                   st_inv[4], st_inv[5], 0);
        expect_same(back, x, n, "x permuted back");
        memcpy(back, pre, sizeof(float) * (size_t)n);
        rt_permute(y, back, xd6[0], xd6[1], xd6[2], xd6[3], xd6[4], xd6[5], st_inv[0], st_inv[1], st_inv[2], st_inv[3],
                   st_inv[4], st_inv[5], 1);
        for (int64_t i = 0; i < n; i++)
            ck_assert_msg(back[i] == pre[i] + x[i], "%s: acc [%lld]", ctx, (long long)i);
        gcheck(x, n, "x"), gcheck(y, n, "y"), gcheck(back, n, "back");
        gfree(x), gfree(y), gfree(back), gfree(pre);
    }
}
END_TEST

/* ================================================================ broadcasting */

/* Operand shapes as the language gives them (right-aligned); the test pads
 * them to six dims and does not merge any, as ops.c would. */
typedef struct {
    int rank;
    int64_t dim[6];
} bc_shape;
static const struct {
    bc_shape a, b;
} bcast_cases[] = {
    {{3, {2, 1, 3}}, {2, {4, 3}}}, {{2, {4, 3}}, {3, {2, 1, 3}}}, {{2, {5, 1}}, {2, {1, 6}}},
    {{1, {1}}, {2, {4, 3}}},       {{2, {4, 3}}, {1, {1}}},       {{2, {4, 3}}, {1, {3}}},
    {{2, {3, 7}}, {2, {3, 7}}},    {{2, {37, 1}}, {1, {29}}},     {{6, {2, 1, 3, 1, 2, 5}}, {5, {1, 3, 4, 1, 5}}},
};
enum { BCAST_N = sizeof bcast_cases / sizeof bcast_cases[0] };

static void bc_pad(const bc_shape *s, int64_t *d) {
    for (int k = 0; k < 6; k++)
        d[k] = k >= 6 - s->rank ? s->dim[k - (6 - s->rank)] : 1;
}

/* offset in an operand of padded dims d of output element (i0..i5) */
static int64_t bc_offset(const int64_t *d, const int64_t *i) {
    int64_t o = 0;
    for (int k = 0; k < 6; k++)
        o = o * d[k] + (d[k] == 1 ? 0 : i[k]);
    return o;
}

/* Forward (add and mul, exact: one rounding of an exact double result),
 * in place over an operand of the output's size, and the reduction towards
 * each operand with and without the other factor, written and accumulated. */
START_TEST(broadcast) {
    seed_rng(71 + (uint64_t)_i);
    int64_t A[6], B[6], n[6], a_rep = 0, b_rep = 0, na = 1, nb = 1, ny = 1;
    bc_pad(&bcast_cases[_i].a, A), bc_pad(&bcast_cases[_i].b, B);
    for (int k = 0; k < 6; k++) {
        n[k] = A[k] > B[k] ? A[k] : B[k];
        a_rep |= A[k] != n[k] ? 1 << k : 0;
        b_rep |= B[k] != n[k] ? 1 << k : 0;
        na *= A[k], nb *= B[k], ny *= n[k];
    }
    snprintf(ctx, sizeof ctx, "broadcast case %d", _i);
    float *a = gnew(na), *b = gnew(nb), *y = gnew(ny), *z = gnew(ny), *dy = gnew(ny);
    fill_rand(a, na), fill_rand(b, nb), fill_rand(dy, ny);
    int64_t *ia = malloc(sizeof(int64_t) * (size_t)ny), *ib = malloc(sizeof(int64_t) * (size_t)ny);
    ck_assert(ia && ib);
    int64_t idx[6] = {0};
    for (int64_t o = 0; o < ny; o++) {
        ia[o] = bc_offset(A, idx), ib[o] = bc_offset(B, idx);
        for (int k = 5; k >= 0 && ++idx[k] == n[k]; k--)
            idx[k] = 0;
    }
    for (int mul = 0; mul < 2; mul++) {
        void (*fwd)(const float *, const float *, float *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                    int64_t, int64_t) = mul ? rt_mul_bcast_fwd : rt_add_bcast_fwd;
        fwd(a, b, y, n[0], n[1], n[2], n[3], n[4], n[5], a_rep, b_rep);
        for (int64_t o = 0; o < ny; o++) {
            double want = mul ? (double)a[ia[o]] * b[ib[o]] : (double)a[ia[o]] + b[ib[o]];
            ck_assert_msg(y[o] == (float)want, "%s: %s y[%lld] = %.9g, want %.9g", ctx, mul ? "mul" : "add",
                          (long long)o, (double)y[o], want);
        }
        if (a_rep == 0) { /* into a */
            memcpy(z, a, sizeof(float) * (size_t)ny);
            fwd(z, b, z, n[0], n[1], n[2], n[3], n[4], n[5], a_rep, b_rep);
            expect_same(z, y, ny, "in place into a");
        }
        if (b_rep == 0) { /* into b */
            memcpy(z, b, sizeof(float) * (size_t)ny);
            fwd(a, z, z, n[0], n[1], n[2], n[3], n[4], n[5], a_rep, b_rep);
            expect_same(z, y, ny, "in place into b");
        }
    }
    for (int side = 0; side < 2; side++) {
        const int64_t nx = side ? nb : na, rep = side ? b_rep : a_rep, orep = side ? a_rep : b_rep;
        const int64_t *ix = side ? ib : ia, *io = side ? ia : ib;
        const float *other = side ? a : b;
        float *dx = gnew(nx), *pre = gnew(nx);
        double *want = dnew(nx), *mag = dnew(nx);
        fill_rand(pre, nx);
        for (int with_other = 0; with_other < 2; with_other++) {
            for (int64_t j = 0; j < nx; j++)
                want[j] = mag[j] = 0.0;
            for (int64_t o = 0; o < ny; o++) {
                double t = (double)dy[o] * (with_other ? other[io[o]] : 1.0);
                want[ix[o]] += t, mag[ix[o]] += fabs(t);
            }
            for (int acc = 0; acc < 2; acc++) {
                snprintf(ctx, sizeof ctx, "broadcast case %d: d %s, %s, acc %d", _i, side ? "b" : "a",
                         with_other ? "mul" : "add", acc);
                if (acc) {
                    memcpy(dx, pre, sizeof(float) * (size_t)nx);
                    add_prefill(want, mag, pre, nx);
                } else {
                    gpoison(dx, nx);
                }
                rt_bcast_reduce(dy, with_other ? other : NULL, dx, n[0], n[1], n[2], n[3], n[4], n[5], rep, orep, acc);
                expect_near(dx, want, mag, nx, TOL_GEMM, "dx");
                gcheck(dx, nx, "dx");
            }
        }
        gfree(dx), gfree(pre), free(want), free(mag);
    }
    gcheck(a, na, "a"), gcheck(b, nb, "b"), gcheck(y, ny, "y"), gcheck(z, ny, "z"), gcheck(dy, ny, "dy");
    gfree(a), gfree(b), gfree(y), gfree(z), gfree(dy), free(ia), free(ib);
}
END_TEST

/* ================================================================ batched matmul */

/* Batch shapes of a and b as the language gives them (right-aligned, the
 * [M,K] and [K,N] matrices after them); the test pads them to four dims and
 * merges none, as ops.c would. */
static const struct {
    bc_shape a, b;
    int64_t M, K, N;
} bmm_cases[] = {
    {{1, {3}}, {1, {3}}, 7, 17, 1},                  /* the same batch on both sides */
    {{3, {2, 1, 3}}, {2, {4, 1}}, 7, 1, 17},         /* each repeated along some dims, K = 1 */
    {{0, {0}}, {1, {5}}, 17, 7, 7},                  /* a rank-2 a over b's batch */
    {{2, {5, 2}}, {0, {0}}, 1, 17, 7},               /* a batched a against a rank-2 b, M = 1 */
    {{4, {1, 3, 1, 2}}, {4, {2, 1, 4, 1}}, 7, 7, 7}, /* alternating repeats over four dims */
    {{1, {3}}, {1, {1}}, 1, 1, 1},                   /* a 1-sized batch dim of b, 1 x 1 matrices */
    {{1, {1}}, {2, {1, 1}}, 7, 17, 17},              /* only 1-sized batch dims */
    {{2, {2, 1}}, {3, {3, 2, 4}}, 17, 1, 1},         /* b's batch longer and larger */
};
enum { BMM_N = sizeof bmm_cases / sizeof bmm_cases[0] };

static void bmm_pad(const bc_shape *s, int64_t *d) {
    for (int k = 0; k < 4; k++)
        d[k] = k >= 4 - s->rank ? s->dim[k - (4 - s->rank)] : 1;
}

/* Forward, and each gradient written and accumulated, against loops over
 * the definition in double. dc and the accumulated-into gradients hold
 * random values; written ones start as NaN, so a kernel reading one fails. */
START_TEST(batched_matmul) {
    seed_rng(301 + (uint64_t)_i);
    const int64_t M = bmm_cases[_i].M, K = bmm_cases[_i].K, N = bmm_cases[_i].N;
    int64_t A[4], B[4], n[4], sa[4], sb[4], a_rep = 0, b_rep = 0, batches = 1;
    bmm_pad(&bmm_cases[_i].a, A), bmm_pad(&bmm_cases[_i].b, B);
    int64_t ta = M * K, tb = K * N; /* row-major strides of a and b, 0 where one repeats */
    for (int k = 3; k >= 0; k--) {
        n[k] = A[k] > B[k] ? A[k] : B[k];
        a_rep |= A[k] != n[k] ? 1 << k : 0, b_rep |= B[k] != n[k] ? 1 << k : 0;
        sa[k] = A[k] == 1 ? 0 : ta, sb[k] = B[k] == 1 ? 0 : tb;
        ta *= A[k], tb *= B[k], batches *= n[k];
    }
    const int64_t na = ta, nb = tb, nc = batches * M * N;
    snprintf(ctx, sizeof ctx, "batched_matmul case %d", _i);
    float *a = gnew(na), *b = gnew(nb), *c = gnew(nc), *dc = gnew(nc);
    fill_rand(a, na), fill_rand(b, nb), fill_rand(dc, nc);
    double *c_want = dnew(nc), *c_mag = dnew(nc), *da_want = dnew(na), *da_mag = dnew(na), *db_want = dnew(nb),
           *db_mag = dnew(nb);
    for (int64_t t = 0; t < batches; t++) {
        int64_t i[4], rest = t;
        for (int k = 3; k >= 0; k--)
            i[k] = rest % n[k], rest /= n[k];
        const int64_t oa = i[0] * sa[0] + i[1] * sa[1] + i[2] * sa[2] + i[3] * sa[3];
        const int64_t ob = i[0] * sb[0] + i[1] * sb[1] + i[2] * sb[2] + i[3] * sb[3], oc = t * M * N;
        for (int64_t r = 0; r < M; r++)
            for (int64_t q = 0; q < N; q++)
                for (int64_t k = 0; k < K; k++) {
                    double ab = (double)a[oa + r * K + k] * b[ob + k * N + q];
                    double ga = (double)dc[oc + r * N + q] * b[ob + k * N + q];
                    double gb = (double)a[oa + r * K + k] * dc[oc + r * N + q];
                    c_want[oc + r * N + q] += ab, c_mag[oc + r * N + q] += fabs(ab);
                    da_want[oa + r * K + k] += ga, da_mag[oa + r * K + k] += fabs(ga);
                    db_want[ob + k * N + q] += gb, db_mag[ob + k * N + q] += fabs(gb);
                }
    }
    rt_batched_matmul_fwd(a, b, c, n[0], n[1], n[2], n[3], a_rep, b_rep, M, K, N);
    expect_near(c, c_want, c_mag, nc, TOL_GEMM, "c");
    float *da = gnew(na), *db = gnew(nb), *pre_a = gnew(na), *pre_b = gnew(nb);
    fill_rand(pre_a, na), fill_rand(pre_b, nb);
    for (int acc = 0; acc < 2; acc++) {
        snprintf(ctx, sizeof ctx, "batched_matmul case %d, acc %d", _i, acc);
        if (acc) {
            memcpy(da, pre_a, sizeof(float) * (size_t)na), memcpy(db, pre_b, sizeof(float) * (size_t)nb);
            add_prefill(da_want, da_mag, pre_a, na), add_prefill(db_want, db_mag, pre_b, nb);
        } else {
            gpoison(da, na), gpoison(db, nb);
        }
        rt_batched_matmul_bwd_a(dc, b, da, n[0], n[1], n[2], n[3], a_rep, b_rep, M, K, N, acc);
        rt_batched_matmul_bwd_b(a, dc, db, n[0], n[1], n[2], n[3], a_rep, b_rep, M, K, N, acc);
        expect_near(da, da_want, da_mag, na, TOL_GEMM, "da");
        expect_near(db, db_want, db_mag, nb, TOL_GEMM, "db");
        gcheck(da, na, "da"), gcheck(db, nb, "db");
    }
    gcheck(a, na, "a"), gcheck(b, nb, "b"), gcheck(c, nc, "c"), gcheck(dc, nc, "dc");
    gfree(a), gfree(b), gfree(c), gfree(dc), gfree(da), gfree(db), gfree(pre_a), gfree(pre_b);
    free(c_want), free(c_mag), free(da_want), free(da_mag), free(db_want), free(db_mag);
}
END_TEST

/* ================================================================ embedding, LM losses */

/* N(0, 1) from the seed: deterministic, finite, the moments of a standard
 * normal over many draws, and another stream gives other values. */
START_TEST(init_normal) {
    enum { n = 200000 };
    snprintf(ctx, sizeof ctx, "init_normal");
    float *a = gnew(n), *b = gnew(n);
    rt_init_normal(a, n, 42, 3, 1.0f);
    rt_init_normal(b, n, 42, 3, 1.0f);
    ck_assert(memcmp(a, b, sizeof(float) * n) == 0);
    double s1 = 0, s2 = 0, s4 = 0;
    for (int64_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(a[i]), "a[%lld] = %g", (long long)i, a[i]);
        s1 += a[i], s2 += (double)a[i] * a[i], s4 += (double)a[i] * a[i] * a[i] * a[i];
    }
    ck_assert_msg(fabs(s1 / n) < 0.01, "mean %g", s1 / n);
    ck_assert_msg(fabs(s2 / n - 1.0) < 0.02, "variance %g", s2 / n);
    ck_assert_msg(fabs(s4 / n - 3.0) < 0.1, "fourth moment %g", s4 / n); /* normal, not uniform (1.8) */
    rt_init_normal(b, n, 42, 4, 2.0f);
    int same = 0;
    for (int64_t i = 0; i < n; i++)
        same += a[i] * 2.0f == b[i];
    ck_assert_int_lt(same, 10);
    gcheck(a, n, "a"), gcheck(b, n, "b");
    gfree(a), gfree(b);
}
END_TEST

/* Forward gathers rows; out-of-range ids write nothing and return
 * RT_ERR_INDEX; backward scatter-adds repeated ids, written and accumulated. */
START_TEST(embedding) {
    enum { n = 9, num = 5, dim = 7 };
    seed_rng(91);
    snprintf(ctx, sizeof ctx, "embedding");
    int32_t ids[n] = {3, 0, 4, 3, 1, 3, 0, 2, 4};
    float *w = gnew(num * dim), *y = gnew(n * dim), *dy = gnew(n * dim), *dw = gnew(num * dim);
    fill_rand(w, num * dim), fill_rand(dy, n * dim);
    ck_assert_int_eq(rt_embedding_fwd(ids, w, y, n, num, dim), RT_OK);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++)
            ck_assert(y[i * dim + j] == w[ids[i] * dim + j]);
    for (int bad = 0; bad < 2; bad++) {
        int32_t wrong[n];
        memcpy(wrong, ids, sizeof ids);
        wrong[n - 1] = bad ? num : -1;
        gpoison(y, n * dim);
        ck_assert_int_eq(rt_embedding_fwd(wrong, w, y, n, num, dim), RT_ERR_INDEX);
        for (int64_t i = 0; i < n * dim; i++)
            ck_assert_msg(is_sentinel(y[i]), "y[%lld] written for a bad id", (long long)i);
    }
    for (int acc = 0; acc < 2; acc++) {
        double want[num * dim];
        for (int64_t i = 0; i < num * dim; i++)
            dw[i] = 0.25f, want[i] = acc ? 0.25 : 0.0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < dim; j++)
                want[ids[i] * dim + j] += dy[i * dim + j];
        rt_embedding_bwd(ids, dy, dw, n, num, dim, acc);
        for (int64_t i = 0; i < num * dim; i++)
            ck_assert_msg(fabs(dw[i] - want[i]) < 1e-6, "dw[%lld] = %.9g, want %.9g (acc %d)", (long long)i, dw[i],
                          want[i], acc);
    }
    gcheck(w, num * dim, "w"), gcheck(y, n * dim, "y"), gcheck(dy, n * dim, "dy"), gcheck(dw, num * dim, "dw");
    gfree(w), gfree(y), gfree(dy), gfree(dw);
}
END_TEST

/* The double reference of a mean cross-entropy with ignore_index over
 * logits[M, C]: the loss, and d logits for dloss = 1. */
static double ref_ce(const double *logits, const int32_t *labels, int64_t M, int64_t C, int64_t ignore, double *dl,
                     double *lse) {
    int64_t count = 0;
    for (int64_t i = 0; i < M; i++)
        count += labels[i] != ignore;
    double total = 0;
    for (int64_t i = 0; i < M; i++) {
        const double *row = logits + i * C;
        double mx = row[0], s = 0;
        for (int64_t j = 1; j < C; j++)
            mx = row[j] > mx ? row[j] : mx;
        for (int64_t j = 0; j < C; j++)
            s += exp(row[j] - mx);
        double l = mx + log(s);
        if (lse)
            lse[i] = l;
        bool kept = labels[i] != ignore;
        if (kept)
            total += l - row[labels[i]];
        for (int64_t j = 0; j < C; j++)
            dl[i * C + j] = kept ? (exp(row[j] - l) - (j == labels[i])) / (double)count : 0.0;
    }
    return count ? total / (double)count : 0.0;
}

/* cross_entropy with ignored rows: the mean over the others, their
 * gradient, ignored rows' gradient 0; every row ignored: loss 0, gradient 0;
 * another label out of range: RT_ERR_LABEL, nothing written. */
START_TEST(cross_entropy_ignore) {
    enum { M = 6, C = 5 };
    seed_rng(92);
    snprintf(ctx, sizeof ctx, "cross_entropy_ignore");
    float *logits = gnew(M * C), *probs = gnew(M * C), *dl = gnew(M * C), loss, dloss = 0.75f;
    double ref[M * C], dref[M * C];
    fill_rand(logits, M * C);
    for (int64_t i = 0; i < M * C; i++)
        ref[i] = logits[i];
    const int32_t cases[3][M] = {{2, -100, 4, 0, -100, 1}, {3, 3, 0, 3, 1, 4}, {-100, -100, -100, -100, -100, -100}};
    const int64_t ignore[3] = {-100, 3, -100};
    for (int t = 0; t < 3; t++) {
        double want = ref_ce(ref, cases[t], M, C, ignore[t], dref, NULL);
        ck_assert_int_eq(rt_cross_entropy_fwd(logits, cases[t], probs, &loss, M, C, ignore[t]), RT_OK);
        ck_assert_msg(fabs(loss - want) < 1e-5, "case %d: loss %.9g, want %.9g", t, loss, want);
        if (t == 2)
            ck_assert(loss == 0.0f);
        for (int acc = 0; acc < 2; acc++) {
            for (int64_t i = 0; i < M * C; i++)
                dl[i] = 0.5f;
            rt_cross_entropy_bwd(probs, cases[t], &dloss, dl, M, C, ignore[t], acc);
            for (int64_t i = 0; i < M * C; i++)
                ck_assert_msg(fabs(dl[i] - ((acc ? 0.5 : 0.0) + dloss * dref[i])) < 1e-6,
                              "case %d: dlogits[%lld] = %.9g, want %.9g", t, (long long)i, dl[i],
                              (acc ? 0.5 : 0.0) + dloss * dref[i]);
        }
    }
    const int32_t bad[2][M] = {{2, -100, 5, 0, 1, 1}, {2, -1, 4, 0, 1, 1}};
    for (int t = 0; t < 2; t++) {
        loss = 123.0f;
        gpoison(probs, M * C);
        ck_assert_int_eq(rt_cross_entropy_fwd(logits, bad[t], probs, &loss, M, C, -100), RT_ERR_LABEL);
        ck_assert(loss == 123.0f && is_sentinel(probs[0]));
    }
    gcheck(logits, M * C, "logits"), gcheck(probs, M * C, "probs"), gcheck(dl, M * C, "dl");
    gfree(logits), gfree(probs), gfree(dl);
}
END_TEST

/* linear with the weight [in, out]: y = x w + b, with and without bias. */
START_TEST(linear_in_out) {
    enum { M = 5, K = 7, N = 3 };
    seed_rng(93);
    snprintf(ctx, sizeof ctx, "linear_in_out");
    float *x = gnew(M * K), *w = gnew(K * N), *b = gnew(N), *y = gnew(M * N);
    fill_rand(x, M * K), fill_rand(w, K * N), fill_rand(b, N);
    for (int bias = 0; bias < 2; bias++) {
        rt_linear_in_out_fwd(x, w, bias ? b : NULL, y, M, K, N);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double want = bias ? b[j] : 0.0;
                for (int64_t k = 0; k < K; k++)
                    want += (double)x[i * K + k] * w[k * N + j];
                ck_assert_msg(fabs(y[i * N + j] - want) < 1e-5, "y[%lld][%lld] = %.9g, want %.9g", (long long)i,
                              (long long)j, y[i * N + j], want);
            }
    }
    gcheck(x, M * K, "x"), gcheck(w, K * N, "w"), gcheck(b, N, "b"), gcheck(y, M * N, "y");
    gfree(x), gfree(w), gfree(b), gfree(y);
}
END_TEST

/* linear_cross_entropy against cross_entropy of the logits in double:
 * tiles that divide neither N nor V (3 x 5 over 7 x 23), one tile for
 * everything (64 x 1024), ignored rows, every row ignored; lse, loss, dh and
 * dw written and accumulated; a bad label writes nothing. */
START_TEST(linear_cross_entropy) {
    enum { N = 7, d = 6, V = 23 };
    seed_rng(94);
    snprintf(ctx, sizeof ctx, "linear_cross_entropy");
    float *h = gnew(N * d), *w = gnew(V * d), *lse = gnew(N), *dh = gnew(N * d), *dw = gnew(V * d);
    fill_rand(h, N * d), fill_rand(w, V * d);
    for (int64_t i = 0; i < d; i++)
        h[2 * d + i] *= 30.0f; /* a row of large logits: the online max must rescale */
    double logits[N * V], dref[N * V], lref[N];
    for (int64_t i = 0; i < N; i++)
        for (int64_t v = 0; v < V; v++) {
            double s = 0;
            for (int64_t k = 0; k < d; k++)
                s += (double)h[i * d + k] * w[v * d + k];
            logits[i * V + v] = s;
        }
    const int32_t cases[3][N] = {
        {22, 0, 7, 13, 4, 20, 9}, {22, -100, 7, 5, -100, 0, 21}, {-100, -100, -100, -100, -100, -100, -100}};
    const int64_t tiles[2][2] = {{3, 5}, {64, 1024}};
    for (int t = 0; t < 3; t++)
        for (int tile = 0; tile < 2; tile++) {
            int64_t rows = tiles[tile][0], cols = tiles[tile][1];
            int64_t sf = rt_linear_ce_scratch_floats(N, V, rows, cols);
            ck_assert_int_eq(sf, tile ? N * (V + 3) : 3 * (5 + 3));
            float *scratch = gnew(sf), loss, dloss = 1.5f;
            snprintf(ctx, sizeof ctx, "linear_cross_entropy case %d, tile %lldx%lld", t, (long long)rows,
                     (long long)cols);
            double want = ref_ce(logits, cases[t], N, V, -100, dref, lref);
            ck_assert_int_eq(rt_linear_ce_fwd(h, w, cases[t], lse, &loss, scratch, N, d, V, -100, rows, cols), RT_OK);
            ck_assert_msg(fabs(loss - want) <= 1e-5 * (1 + fabs(want)), "%s: loss %.9g, want %.9g", ctx, loss, want);
            for (int64_t i = 0; i < N; i++)
                ck_assert_msg(fabs(lse[i] - lref[i]) <= 1e-5 * (1 + fabs(lref[i])), "%s: lse[%lld] %.9g, want %.9g",
                              ctx, (long long)i, lse[i], lref[i]);
            float loss2 = -1.0f;
            ck_assert_int_eq(rt_linear_ce_fwd(h, w, cases[t], NULL, &loss2, scratch, N, d, V, -100, rows, cols), RT_OK);
            ck_assert(loss2 == loss);
            for (int acc = 0; acc < 2; acc++) {
                for (int64_t i = 0; i < N * d; i++)
                    dh[i] = 0.5f;
                for (int64_t i = 0; i < V * d; i++)
                    dw[i] = 0.5f;
                /* both at once, or each alone (the other NULL) */
                int both = (t + acc) % 2 == 0;
                rt_linear_ce_bwd(h, w, cases[t], lse, &dloss, dh, both ? dw : NULL, scratch, N, d, V, -100, rows, cols,
                                 acc, acc);
                if (!both)
                    rt_linear_ce_bwd(h, w, cases[t], lse, &dloss, NULL, dw, scratch, N, d, V, -100, rows, cols, 1 - acc,
                                     acc);
                for (int64_t i = 0; i < N; i++)
                    for (int64_t k = 0; k < d; k++) {
                        double g = acc ? 0.5 : 0.0;
                        for (int64_t v = 0; v < V; v++)
                            g += dloss * dref[i * V + v] * w[v * d + k];
                        ck_assert_msg(fabs(dh[i * d + k] - g) <= 2e-5 * (1 + fabs(g)),
                                      "%s: dh[%lld][%lld] %.9g, want %.9g (acc %d)", ctx, (long long)i, (long long)k,
                                      dh[i * d + k], g, acc);
                    }
                for (int64_t v = 0; v < V; v++)
                    for (int64_t k = 0; k < d; k++) {
                        double g = acc ? 0.5 : 0.0;
                        for (int64_t i = 0; i < N; i++)
                            g += dloss * dref[i * V + v] * h[i * d + k];
                        ck_assert_msg(fabs(dw[v * d + k] - g) <= 2e-5 * (1 + fabs(g)),
                                      "%s: dw[%lld][%lld] %.9g, want %.9g (acc %d)", ctx, (long long)v, (long long)k,
                                      dw[v * d + k], g, acc);
                    }
            }
            gcheck(scratch, sf, "scratch");
            gfree(scratch);
        }
    /* bad labels: V itself, and -1 while ignore_index is -100 */
    const int32_t bad[2][N] = {{22, 0, 7, V, 4, 20, 9}, {22, 0, -1, 13, 4, 20, 9}};
    for (int t = 0; t < 2; t++) {
        float *scratch = gnew(3 * 8), loss = 123.0f;
        gpoison(lse, N);
        ck_assert_int_eq(rt_linear_ce_fwd(h, w, bad[t], lse, &loss, scratch, N, d, V, -100, 3, 5), RT_ERR_LABEL);
        ck_assert(loss == 123.0f && is_sentinel(lse[0]) && is_sentinel(scratch[0]));
        gfree(scratch);
    }
    gcheck(h, N * d, "h"), gcheck(w, V * d, "w"), gcheck(lse, N, "lse"), gcheck(dh, N * d, "dh"),
        gcheck(dw, V * d, "dw");
    gfree(h), gfree(w), gfree(lse), gfree(dh), gfree(dw);
}
END_TEST

/* ================================================================ rope */

/* Forward and the VJP, written and accumulated, against the formula in
 * double with exact angles; head_dim 140 has more pairs than one chunk of
 * angles (RT_ROPE_CHUNK). */
START_TEST(rope) {
    static const int64_t dims[][3] = {{3, 9, 10}, {2, 5, 140}, {1, 1, 2}};
    static const double thetas[] = {10000.0, 500000.0, 10.0};
    seed_rng(89);
    for (int k = 0; k < 3; k++) {
        int64_t heads = dims[k][0], T = dims[k][1], hd = dims[k][2], half = hd / 2, n = heads * T * hd;
        double theta = thetas[k];
        snprintf(ctx, sizeof ctx, "rope heads %lld T %lld hd %lld", (long long)heads, (long long)T, (long long)hd);
        float *x = gnew(n), *y = gnew(n), *dy = gnew(n), *dx = gnew(n);
        fill_rand(x, n), fill_rand(dy, n);
        rt_rope_fwd(x, y, heads, T, hd, theta);
        for (int pass = 0; pass < 2; pass++) {
            for (int64_t e = 0; e < n; e++)
                dx[e] = 0.5f;
            rt_rope_bwd(dy, dx, heads, T, hd, pass, theta);
            for (int64_t h = 0; h < heads; h++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t i = 0; i < half; i++) {
                        int64_t lo = (h * T + t) * hd + i, hi = lo + half;
                        double a = (double)t * pow(theta, -2.0 * (double)i / (double)hd), c = cos(a), s = sin(a);
                        double ylo = x[lo] * c - x[hi] * s, yhi = x[hi] * c + x[lo] * s;
                        double dlo = dy[lo] * c + dy[hi] * s + (pass ? 0.5 : 0.0);
                        double dhi = dy[hi] * c - dy[lo] * s + (pass ? 0.5 : 0.0);
                        ck_assert_msg(fabs(y[lo] - ylo) <= 2e-6 && fabs(y[hi] - yhi) <= 2e-6,
                                      "%s: y at t %lld i %lld = (%.9g, %.9g), want (%.9g, %.9g)", ctx, (long long)t,
                                      (long long)i, y[lo], y[hi], ylo, yhi);
                        ck_assert_msg(fabs(dx[lo] - dlo) <= 2e-6 && fabs(dx[hi] - dhi) <= 2e-6,
                                      "%s: dx (acc %d) at t %lld i %lld = (%.9g, %.9g), want (%.9g, %.9g)", ctx, pass,
                                      (long long)t, (long long)i, dx[lo], dx[hi], dlo, dhi);
                    }
        }
        gcheck(x, n, "x"), gcheck(y, n, "y"), gcheck(dy, n, "dy"), gcheck(dx, n, "dx");
        gfree(x), gfree(y), gfree(dy), gfree(dx);
    }
}
END_TEST

/* ================================================================ in place */

/* The element-wise forward kernels that the planner may run in place give the
 * same bits in place as out of place (sizes with vector bodies and tails). */
START_TEST(in_place) {
    static const int64_t sizes[] = {1, 7, 37, 1000, 1027};
    seed_rng(61);
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        const int64_t n = sizes[t];
        snprintf(ctx, sizeof ctx, "in place n=%lld", (long long)n);
        float *a = gnew(n), *b = gnew(n), *y = gnew(n), *z = gnew(n);
        fill_rand(a, n), fill_rand(b, n);

        rt_relu_fwd(a, y, n);
        for (int64_t i = 0; i < n; i++)
            ck_assert(y[i] == (a[i] > 0 ? a[i] : 0.0f));
        memcpy(z, a, sizeof(float) * (size_t)n);
        rt_relu_fwd(z, z, n);
        expect_same(z, y, n, "relu");

        rt_sigmoid_fwd(a, y, n);
        memcpy(z, a, sizeof(float) * (size_t)n);
        rt_sigmoid_fwd(z, z, n);
        expect_same(z, y, n, "sigmoid");

        rt_silu_fwd(a, y, n);
        memcpy(z, a, sizeof(float) * (size_t)n);
        rt_silu_fwd(z, z, n);
        expect_same(z, y, n, "silu");

        for (int form = 0; form < 2; form++) {
            rt_gelu_fwd(a, y, n, form);
            memcpy(z, a, sizeof(float) * (size_t)n);
            rt_gelu_fwd(z, z, n, form);
            expect_same(z, y, n, "gelu");
        }

        rt_add_fwd(a, b, y, 1, n); /* y = a + b */
        for (int64_t i = 0; i < n; i++)
            ck_assert(y[i] == a[i] + b[i]);
        memcpy(z, a, sizeof(float) * (size_t)n);
        rt_add_fwd(z, b, z, 1, n); /* into a */
        expect_same(z, y, n, "add into a");
        memcpy(z, b, sizeof(float) * (size_t)n);
        rt_add_fwd(a, z, z, 1, n); /* into b */
        expect_same(z, y, n, "add into b");
        rt_add_fwd(a, a, y, 1, n); /* x + x */
        memcpy(z, a, sizeof(float) * (size_t)n);
        rt_add_fwd(z, z, z, 1, n);
        expect_same(z, y, n, "x + x in place");
        rt_scale(a, y, n, 0, -1.75f); /* y = c a */
        for (int64_t i = 0; i < n; i++)
            ck_assert(y[i] == -1.75f * a[i]);
        memcpy(z, a, sizeof(float) * (size_t)n);
        rt_scale(z, z, n, 0, -1.75f);
        expect_same(z, y, n, "scale");
        memcpy(z, b, sizeof(float) * (size_t)n);
        rt_scale(a, z, n, 1, 0.5f); /* the VJP: accumulated */
        for (int64_t i = 0; i < n; i++)
            ck_assert(z[i] == b[i] + 0.5f * a[i]);

        rt_mul_fwd(a, b, y, 1, n); /* y = a * b */
        for (int64_t i = 0; i < n; i++)
            ck_assert(y[i] == a[i] * b[i]);
        memcpy(z, a, sizeof(float) * (size_t)n);
        rt_mul_fwd(z, b, z, 1, n);
        expect_same(z, y, n, "mul into a");
        memcpy(z, b, sizeof(float) * (size_t)n);
        rt_mul_fwd(a, z, z, 1, n);
        expect_same(z, y, n, "mul into b");
        rt_mul_fwd(a, a, y, 1, n); /* x * x */
        memcpy(z, a, sizeof(float) * (size_t)n);
        rt_mul_fwd(z, z, z, 1, n);
        expect_same(z, y, n, "x * x in place");
        if (n % 7 == 0 && n > 7) { /* broadcast: b has n/7 elements */
            rt_mul_fwd(a, b, y, 7, n / 7);
            for (int64_t i = 0; i < n; i++)
                ck_assert(y[i] == a[i] * b[i % (n / 7)]);
            memcpy(z, a, sizeof(float) * (size_t)n);
            rt_mul_fwd(z, b, z, 7, n / 7);
            expect_same(z, y, n, "broadcast mul into a");
            rt_add_fwd(a, b, y, 7, n / 7);
            for (int64_t i = 0; i < n; i++)
                ck_assert(y[i] == a[i] + b[i % (n / 7)]);
            memcpy(z, a, sizeof(float) * (size_t)n);
            rt_add_fwd(z, b, z, 7, n / 7);
            expect_same(z, y, n, "broadcast add into a");
        }
        gcheck(y, n, "y"), gcheck(z, n, "z");
        gfree(a), gfree(b), gfree(y), gfree(z);
    }
}
END_TEST

/* ================================================================ GEMM
 *
 * rt_sgemm, frost's own, against OpenBLAS on awkward sizes: every (M, N, K)
 * with each of 1, 7, 17, 63, 65 and 513, every transpose, both micro-kernels
 * (here in the native build; tests/gemm/run.sh checks them in generated code
 * for their targets), beta 0 (C starts as NaN and must not leak), 1 and 0.5.
 * The operands sit in padded rows (leading dimension = width + 3) whose
 * padding is NaN, so a read past a row shows, and C's padding must stay as it
 * was. Both results are held to the rounding bound 2 (K + 2) eps sum |terms|.
 * Triples with two or more 513s run for one transpose each (time). */
enum { GEMM_SIZES = 6 };
static const int64_t gemm_sizes[GEMM_SIZES] = {1, 7, 17, 63, 65, 513};

static float *gemm_operand(int64_t rows, int64_t cols, int64_t ld, int random) {
    float *p = malloc(sizeof(float) * (size_t)(rows * ld));
    ck_assert_ptr_nonnull(p);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < ld; j++)
            p[i * ld + j] = j < cols && random ? frand() : sentinel();
    return p;
}

static void gemm_case(int64_t ta, int64_t tb, int64_t m, int64_t n, int64_t k, float beta, int64_t wide) {
    int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    int64_t lda = ac + 3, ldb = bc + 3, ldc = n + 3;
    float *a = gemm_operand(ar, ac, lda, 1), *b = gemm_operand(br, bc, ldb, 1);
    float *c = gemm_operand(m, n, ldc, beta != 0.0f), *ref = malloc(sizeof(float) * (size_t)(m * ldc));
    ck_assert_ptr_nonnull(ref);
    memcpy(ref, c, sizeof(float) * (size_t)(m * ldc));
    snprintf(ctx, sizeof ctx, "gemm ta %lld tb %lld m %lld n %lld k %lld beta %g wide %lld", (long long)ta,
             (long long)tb, (long long)m, (long long)n, (long long)k, beta, (long long)wide);
    rt_sgemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc, wide);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
                (blasint)k, 1.0f, a, (blasint)lda, b, (blasint)ldb, beta, ref, (blasint)ldc);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ldc; j++) {
            float got = c[i * ldc + j], want = ref[i * ldc + j];
            if (j >= n) {
                ck_assert_msg(is_sentinel(got), "%s: C's padding at (%lld, %lld) was written", ctx, (long long)i,
                              (long long)j);
                continue;
            }
            double mag = beta != 0.0f ? fabs(beta * (double)want) : 0.0; /* want's C term is the old C */
            for (int64_t p = 0; p < k; p++)
                mag += fabs((double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]));
            double tol = 2.0 * (double)(k + 2) * FLT_EPSILON * (mag + FLT_MIN);
            ck_assert_msg(fabs((double)got - want) <= tol, "%s: C(%lld, %lld) = %.9g, OpenBLAS %.9g (bound %.3g)", ctx,
                          (long long)i, (long long)j, got, want, tol);
        }
    free(a);
    free(b);
    free(c);
    free(ref);
}

START_TEST(gemm_against_openblas) {
    int64_t ta = _i & 1, tb = (_i >> 1) & 1, wide = (_i >> 2) & 1;
    seed_rng(900 + (uint64_t)_i);
    int t = 0;
    for (int x = 0; x < GEMM_SIZES; x++)
        for (int y = 0; y < GEMM_SIZES; y++)
            for (int z = 0; z < GEMM_SIZES; z++, t++) {
                int bigs = (x == GEMM_SIZES - 1) + (y == GEMM_SIZES - 1) + (z == GEMM_SIZES - 1);
                if (bigs >= 2 && t % 8 != _i)
                    continue;
                static const float betas[] = {0.0f, 1.0f, 0.5f};
                gemm_case(ta, tb, gemm_sizes[x], gemm_sizes[y], gemm_sizes[z], betas[t % 3], wide);
            }
}
END_TEST

/* On the pool the result is the same, bit for bit, for any thread count
 * (rt_sgemm cuts rows, then columns, differently for each). */
START_TEST(gemm_threads) {
    static const int64_t shapes[][3] = {{513, 65, 63}, {7, 513, 65}, {1, 1025, 17}, {300, 300, 800}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        seed_rng(77 + s);
        float *a = gemm_operand(m, k, k, 1), *b = gemm_operand(k, n, n, 1);
        float *one = gemm_operand(m, n, n, 0), *many = gemm_operand(m, n, n, 0);
        rt_pool_stop();
        ck_assert_int_eq(rt_pool_threads(), 1);
        rt_sgemm(0, 0, m, n, k, a, k, b, n, 0.0f, one, n, 1);
        for (int64_t threads = 2; threads <= 3; threads++) {
            ck_assert_int_eq(rt_pool_start(threads), threads);
            ck_assert_int_eq(rt_pool_threads(), threads);
            memset(many, 0xff, sizeof(float) * (size_t)(m * n));
            rt_sgemm(0, 0, m, n, k, a, k, b, n, 0.0f, many, n, 1);
            ck_assert_msg(!memcmp(one, many, sizeof(float) * (size_t)(m * n)),
                          "gemm %lld x %lld x %lld: 1 and %lld threads differ", (long long)m, (long long)n,
                          (long long)k, (long long)threads);
        }
        rt_pool_stop();
        free(a);
        free(b);
        free(one);
        free(many);
    }
}
END_TEST

/* rt_parallel runs every task once, on the pool or, when the pool is busy
 * (a task calling rt_parallel), on the caller. */
typedef struct {
    int64_t hits[64];
    int64_t nested;
} pool_probe;

static void probe_inner(void *arg, int64_t i) {
    __atomic_fetch_add(&((pool_probe *)arg)->nested, i + 1, __ATOMIC_RELAXED);
}
static void probe_task(void *arg, int64_t i) {
    pool_probe *p = arg;
    __atomic_fetch_add(&p->hits[i], 1, __ATOMIC_RELAXED);
    rt_parallel(probe_inner, arg, 4); /* nested: runs inline */
}

START_TEST(pool_runs_every_task) {
    for (int64_t threads = 1; threads <= 4; threads++) {
        ck_assert_int_eq(rt_pool_start(threads), threads);
        for (int rep = 0; rep < 50; rep++) {
            pool_probe p = {{0}, 0};
            int64_t n = 1 + (rep * 7) % 64;
            rt_parallel(probe_task, &p, n);
            for (int64_t i = 0; i < 64; i++)
                ck_assert_int_eq(p.hits[i], i < n);
            ck_assert_int_eq(p.nested, n * 10);
        }
    }
    rt_pool_stop();
    ck_assert_int_eq(rt_pool_threads(), 1);
}
END_TEST

/* ================================================================ main */

/* ---------------------------------------------------------------- checked mode */

START_TEST(checked_guards_and_finite) {
    uint8_t g[3 * 64];
    memset(g, 0, sizeof g);
    rt_guard_fill(g + 64, 64);
    ck_assert_int_eq(rt_guard_find(g + 64, 64), -1);
    ck_assert_int_eq(g[63], 0); /* exactly its bytes */
    ck_assert_int_eq(g[128], 0);
    uint32_t word;
    memcpy(&word, g + 64, 4);
    ck_assert_uint_eq(word, RT_GUARD_WORD);
    float f;
    memcpy(&f, g + 64, 4);
    ck_assert(isnan(f));                  /* a kernel reading a guard makes a NaN */
    for (int at = 0; at < 64; at += 21) { /* every byte counts, one bit is enough */
        g[64 + at] ^= 0x10;
        ck_assert_int_eq(rt_guard_find(g + 64, 64), at);
        g[64 + at] ^= 0x10;
    }
    ck_assert_int_eq(rt_guard_find(g + 64, 0), -1);

    float v[17];
    for (int i = 0; i < 17; i++)
        v[i] = (float)i - 8.0f;
    v[3] = FLT_MAX, v[4] = -FLT_MAX, v[5] = FLT_MIN / 4; /* finite, subnormal included */
    ck_assert_int_eq(rt_nonfinite_find(v, 17), -1);
    ck_assert_int_eq(rt_nonfinite_find(NULL, 17), -1);
    const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 4; k++) {
        v[11] = bad[k];
        ck_assert_int_eq(rt_nonfinite_find(v, 17), 11);
        ck_assert_int_eq(rt_nonfinite_find(v, 11), -1);
    }

    int64_t state[8] = {42, 0};
    ck_assert_int_eq(rt_check_report(state, 7, "test: a reported failure", v, 11, RT_ERR_NONFINITE), RT_ERR_NONFINITE);
    ck_assert_int_eq(state[0], 42); /* the state word is backward's */
    ck_assert_int_eq(state[1], 7);
    ck_assert_int_eq(rt_check_report(NULL, 8, "test: a guard", NULL, 3, RT_ERR_GUARD), RT_ERR_GUARD);
}
END_TEST

static Suite *runtime_suite(void) {
    Suite *s = suite_create("runtime");
    TCase *c = tcase_create("conv");
    tcase_set_timeout(c, 600);
    tcase_add_loop_test(c, conv_grid, 0, GRID_N);
    tcase_add_test(c, conv_larger);
    tcase_add_test(c, conv_scratch_sizes);
    tcase_add_test(c, window_out_sizes);
    tcase_add_test(c, conv_empty_output);
    tcase_add_test(c, conv_finite_differences);
    tcase_add_test(c, sum_channels);
    suite_add_tcase(s, c);
    TCase *b = tcase_create("batchnorm");
    tcase_set_timeout(b, 600);
    tcase_add_test(b, bn_train_forward);
    tcase_add_test(b, bn_train_backward);
    tcase_add_test(b, bn_train_finite_differences);
    tcase_add_test(b, bn_eval);
    suite_add_tcase(s, b);
    TCase *p = tcase_create("pool");
    tcase_set_timeout(p, 600);
    tcase_add_loop_test(p, maxpool_grid, 0, POOL_GRID_N);
    tcase_add_test(p, maxpool_finite_differences);
    tcase_add_loop_test(p, avgpool_grid, 0, POOL_GRID_N);
    tcase_add_test(p, global_avgpool);
    suite_add_tcase(s, p);
    TCase *d = tcase_create("dropout");
    tcase_set_timeout(d, 600);
    tcase_add_test(d, dropout);
    tcase_add_test(d, dropout_statistics);
    tcase_add_test(d, exp_sweep);
    tcase_add_test(d, sigmoid);
    tcase_add_test(d, silu);
    tcase_add_test(d, gelu);
    tcase_add_test(d, rms_norm);
    tcase_add_test(d, layer_norm);
    tcase_add_test(d, softmax);
    tcase_add_loop_test(d, broadcast, 0, BCAST_N);
    tcase_add_loop_test(d, batched_matmul, 0, BMM_N);
    tcase_add_test(d, permute);
    tcase_add_test(d, slice);
    tcase_add_test(d, concat);
    tcase_add_test(d, permute_broadcasts_with_stride_zero);
    tcase_add_test(d, init_normal);
    tcase_add_test(d, embedding);
    tcase_add_test(d, cross_entropy_ignore);
    tcase_add_test(d, linear_in_out);
    tcase_add_test(d, linear_cross_entropy);
    tcase_add_loop_test(d, attention, 0, ATTN_CASES);
    tcase_add_test(d, rope);
    tcase_add_test(d, in_place);
    suite_add_tcase(s, d);
    TCase *gm = tcase_create("gemm");
    tcase_set_timeout(gm, 600);
    tcase_add_loop_test(gm, gemm_against_openblas, 0, 8);
    tcase_add_test(gm, gemm_threads);
    tcase_add_test(gm, pool_runs_every_task);
    suite_add_tcase(s, gm);
    TCase *ck = tcase_create("checked");
    tcase_add_test(ck, checked_guards_and_finite);
    suite_add_tcase(s, ck);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(runtime_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
