/* rt.c: the runtime kernels declared in rt.h.
 *
 * Compiled twice: natively into librt (unit tests call the kernels directly)
 * and to LLVM bitcode that codegen links into every generated module, where
 * the sizes become constants and the functions are internalised. Hence the
 * rules of rt.h: no globals, no allocation, no I/O; only memcpy/memset/expf/logf
 * and cblas_sgemm from outside. Loops are written plainly over restrict
 * pointers so the vectoriser can take them once the target CPU is known.
 */
#include "rt.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- glue */

void rt_copy(void *dst, const void *src, int64_t bytes)
{
    if (!dst || bytes <= 0)
        return;
    memcpy(dst, src, (size_t)bytes);
}

void rt_fill_f32(float *restrict dst, int64_t n, float value)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = value;
}

void rt_acc_f32(float *restrict dst, const float *restrict src, int64_t n, int64_t acc)
{
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            dst[i] += src[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i];
    }
}

/* ---------------------------------------------------------------- init */

/* splitmix64's finaliser: a bijection on 64 bits with good avalanche. */
static inline uint64_t rt_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* p[i] depends only on (seed, stream, i): element i of tensor `stream` is
 * the top 24 bits of mix(key + i), key = mix(seed ^ mix(stream)). 24 bits map
 * exactly onto floats u in [0,1), and bound * (2u - 1) stays in [-bound, bound). */
void rt_init_uniform(float *restrict p, int64_t n, uint64_t seed, int64_t stream, float bound)
{
    uint64_t key = rt_mix64(seed ^ rt_mix64((uint64_t)stream));
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = rt_mix64(key + (uint64_t)i);
        float u = (float)(r >> 40) * (1.0f / 16777216.0f);
        p[i] = bound * (2.0f * u - 1.0f);
    }
}

/* ---------------------------------------------------------------- GEMM */

/* C[m,n] = op(A) op(B) + beta C, row-major. Degenerate sizes are handled here
 * because BLAS rejects leading dimensions of 0 (and would print about it). */
static void rt_gemm(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int64_t m, int64_t n,
                    int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                    float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        if (beta == 0.0f)
            memset(c, 0, (size_t)(m * n) * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, 1.0f, a, (blasint)lda,
                b, (blasint)ldb, beta, c, (blasint)ldc);
}

void rt_linear_fwd(const float *restrict x, const float *restrict w, const float *restrict b,
                   float *restrict y, int64_t M, int64_t K, int64_t N)
{
    float beta = 0.0f;
    if (b) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                y[i * N + j] = b[j];
        beta = 1.0f;
    }
    rt_gemm(CblasNoTrans, CblasTrans, M, N, K, x, K, w, K, beta, y, N);
}

void rt_linear_bwd_x(const float *restrict dy, const float *restrict w, float *restrict dx,
                     int64_t M, int64_t K, int64_t N, int64_t acc)
{
    rt_gemm(CblasNoTrans, CblasNoTrans, M, K, N, dy, N, w, K, acc ? 1.0f : 0.0f, dx, K);
}

void rt_linear_bwd_w(const float *restrict dy, const float *restrict x, float *restrict dw,
                     int64_t M, int64_t K, int64_t N, int64_t acc)
{
    rt_gemm(CblasTrans, CblasNoTrans, N, K, M, dy, N, x, K, acc ? 1.0f : 0.0f, dw, K);
}

void rt_sum_rows(const float *restrict dy, float *restrict db, int64_t M, int64_t N, int64_t acc)
{
    if (!acc)
        for (int64_t j = 0; j < N; j++)
            db[j] = 0.0f;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            db[j] += dy[i * N + j];
}

void rt_matmul_fwd(const float *restrict a, const float *restrict b, float *restrict c,
                   int64_t M, int64_t K, int64_t N)
{
    rt_gemm(CblasNoTrans, CblasNoTrans, M, N, K, a, K, b, N, 0.0f, c, N);
}

void rt_matmul_bwd_a(const float *restrict dc, const float *restrict b, float *restrict da,
                     int64_t M, int64_t K, int64_t N, int64_t acc)
{
    rt_gemm(CblasNoTrans, CblasTrans, M, K, N, dc, N, b, N, acc ? 1.0f : 0.0f, da, K);
}

void rt_matmul_bwd_b(const float *restrict a, const float *restrict dc, float *restrict db,
                     int64_t M, int64_t K, int64_t N, int64_t acc)
{
    rt_gemm(CblasTrans, CblasNoTrans, K, N, M, a, K, dc, N, acc ? 1.0f : 0.0f, db, N);
}

/* ---------------------------------------------------------------- relu */

void rt_relu_fwd(const float *restrict x, float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void rt_sign_mask(const float *restrict y, uint8_t *restrict bits, int64_t n)
{
    int64_t full = n / 8;
    for (int64_t b = 0; b < full; b++) {
        unsigned v = 0;
        for (int j = 0; j < 8; j++)
            v |= (unsigned)(y[b * 8 + j] > 0.0f) << j;
        bits[b] = (uint8_t)v;
    }
    if (n % 8) {
        unsigned v = 0;
        for (int64_t j = 0; j < n % 8; j++)
            v |= (unsigned)(y[full * 8 + j] > 0.0f) << j;
        bits[full] = (uint8_t)v;
    }
}

void rt_relu_bwd_out(const float *restrict y, const float *restrict dy, float *restrict dx,
                     int64_t n, int64_t acc)
{
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    } else {
        for (int64_t i = 0; i < n; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

void rt_relu_bwd_mask(const uint8_t *restrict bits, const float *restrict dy, float *restrict dx,
                      int64_t n, int64_t acc)
{
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            dx[i] += (bits[i >> 3] >> (i & 7)) & 1 ? dy[i] : 0.0f;
    } else {
        for (int64_t i = 0; i < n; i++)
            dx[i] = (bits[i >> 3] >> (i & 7)) & 1 ? dy[i] : 0.0f;
    }
}

/* ---------------------------------------------------------------- add */

void rt_add_fwd(const float *restrict a, const float *restrict b, float *restrict y,
                int64_t outer, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            y[o * inner + i] = a[o * inner + i] + b[i];
}

/* ---------------------------------------------------------------- losses */

int32_t rt_cross_entropy_fwd(const float *restrict logits, const int32_t *restrict labels,
                             float *restrict probs, float *restrict loss, int64_t M, int64_t C)
{
    /* Labels are checked first so that a bad batch writes nothing. */
    for (int64_t i = 0; i < M; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return RT_ERR_LABEL;
    double total = 0.0;
    for (int64_t i = 0; i < M; i++) {
        const float *row = logits + i * C;
        float mx = row[0];
        for (int64_t j = 1; j < C; j++)
            mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int64_t j = 0; j < C; j++)
            sum += expf(row[j] - mx);
        total += (double)(mx + logf(sum) - row[labels[i]]);
        if (probs) {
            float inv = 1.0f / sum;
            for (int64_t j = 0; j < C; j++)
                probs[i * C + j] = expf(row[j] - mx) * inv;
        }
    }
    *loss = M > 0 ? (float)(total / (double)M) : 0.0f;
    return RT_OK;
}

void rt_cross_entropy_bwd(const float *restrict probs, const int32_t *restrict labels,
                          const float *restrict dloss, float *restrict dlogits, int64_t M,
                          int64_t C, int64_t acc)
{
    float s = M > 0 ? *dloss / (float)M : 0.0f;
    for (int64_t i = 0; i < M; i++) {
        const float *p = probs + i * C;
        float *d = dlogits + i * C;
        if (acc) {
            for (int64_t j = 0; j < C; j++)
                d[j] += p[j] * s;
        } else {
            for (int64_t j = 0; j < C; j++)
                d[j] = p[j] * s;
        }
        d[labels[i]] -= s;
    }
}

void rt_mse_fwd(const float *restrict pred, const float *restrict target, float *restrict diff,
                float *restrict loss, int64_t n)
{
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float d = pred[i] - target[i];
        if (diff)
            diff[i] = d;
        total += (double)d * (double)d;
    }
    *loss = n > 0 ? (float)(total / (double)n) : 0.0f;
}

void rt_mse_bwd(const float *restrict diff, const float *restrict dloss, float *restrict dx,
                int64_t n, int64_t sign, int64_t acc)
{
    float s = n > 0 ? (float)sign * 2.0f * *dloss / (float)n : 0.0f;
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            dx[i] += s * diff[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            dx[i] = s * diff[i];
    }
}
