/* rt.h: the runtime kernels that generated code calls.
 *
 * rt.c is compiled to LLVM bitcode at build time, embedded in the compiler and
 * linked into every generated module, where these functions are specialised
 * with constant sizes and given internal linkage. So: no global state, no
 * allocation, no I/O, no libc beyond memcpy/memset/math; GEMMs go to
 * cblas_sgemm. Generated code is the only caller.
 *
 * Conventions (codegen relies on them):
 *  - pointer parameters first, then int64_t sizes/flags, then float constants;
 *    a step's operands are passed in the prototype's order;
 *  - `acc` (0 or 1): 1 adds into the destination, 0 overwrites it. Gradients
 *    with several contributions are written by the first and accumulated by the rest;
 *  - kernels that can detect bad input return int32_t (0 = ok, else an
 *    RT_ERR_* code the entry point returns); all others return void;
 *  - matrices are row-major; "x [M,K]" means M rows of K floats.
 */
#ifndef FROST_RT_H
#define FROST_RT_H

#include <stdint.h>

enum {
    RT_OK = 0,
    RT_ERR_LABEL = 1, /* a class label outside [0, classes) */
};

/* ---- glue */
void rt_copy(void *dst, const void *src, int64_t bytes);       /* no-op when dst is NULL */
void rt_fill_f32(float *dst, int64_t n, float value);
/* dst (+)= src */
void rt_acc_f32(float *dst, const float *src, int64_t n, int64_t acc);

/* ---- initialisation (counter-based RNG: same seed, same params, any order) */
/* p[i] ~ U(-bound, bound), stream distinguishes tensors of one model. */
void rt_init_uniform(float *p, int64_t n, uint64_t seed, int64_t stream, float bound);

/* ---- linear: y[M,N] = x[M,K] w[N,K]^T (+ b[N]); b may be NULL */
void rt_linear_fwd(const float *x, const float *w, const float *b, float *y,
                   int64_t M, int64_t K, int64_t N);
/* dx[M,K] (+)= dy[M,N] w[N,K] */
void rt_linear_bwd_x(const float *dy, const float *w, float *dx,
                     int64_t M, int64_t K, int64_t N, int64_t acc);
/* dw[N,K] (+)= dy[M,N]^T x[M,K] */
void rt_linear_bwd_w(const float *dy, const float *x, float *dw,
                     int64_t M, int64_t K, int64_t N, int64_t acc);
/* db[N] (+)= sum over rows of dy[M,N]; also the reduction of a broadcast add */
void rt_sum_rows(const float *dy, float *db, int64_t M, int64_t N, int64_t acc);

/* ---- matmul: c[M,N] = a[M,K] b[K,N] */
void rt_matmul_fwd(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N);
/* da[M,K] (+)= dc[M,N] b[K,N]^T */
void rt_matmul_bwd_a(const float *dc, const float *b, float *da,
                     int64_t M, int64_t K, int64_t N, int64_t acc);
/* db[K,N] (+)= a[M,K]^T dc[M,N] */
void rt_matmul_bwd_b(const float *a, const float *dc, float *db,
                     int64_t M, int64_t K, int64_t N, int64_t acc);

/* ---- relu */
void rt_relu_fwd(const float *x, float *y, int64_t n);
/* bits[i/8] bit (i%8) = y[i] > 0; ceil(n/8) bytes written */
void rt_sign_mask(const float *y, uint8_t *bits, int64_t n);
/* dx (+)= dy * (y > 0) */
void rt_relu_bwd_out(const float *y, const float *dy, float *dx, int64_t n, int64_t acc);
/* dx (+)= dy * bit(i) */
void rt_relu_bwd_mask(const uint8_t *bits, const float *dy, float *dx, int64_t n, int64_t acc);

/* ---- add: y[outer*inner] = a + b, b has `inner` elements repeated `outer`
 * times (outer = 1 when the shapes are equal) */
void rt_add_fwd(const float *a, const float *b, float *y, int64_t outer, int64_t inner);

/* ---- losses (mean reduction); loss points at one float */
/* probs[M,C] = softmax(logits) when probs is not NULL; loss = mean -log p[label] */
int32_t rt_cross_entropy_fwd(const float *logits, const int32_t *labels, float *probs, float *loss,
                             int64_t M, int64_t C);
/* dlogits (+)= (probs - onehot(labels)) * dloss / M */
void rt_cross_entropy_bwd(const float *probs, const int32_t *labels, const float *dloss,
                          float *dlogits, int64_t M, int64_t C, int64_t acc);
/* diff = pred - target when diff is not NULL; loss = mean diff^2 */
void rt_mse_fwd(const float *pred, const float *target, float *diff, float *loss, int64_t n);
/* dx (+)= sign * 2 * diff * dloss / n   (sign = +1 for pred, -1 for target) */
void rt_mse_bwd(const float *diff, const float *dloss, float *dx, int64_t n, int64_t sign,
                int64_t acc);

#endif
