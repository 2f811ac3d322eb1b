/* rt.h: the runtime kernels that generated code calls.
 *
 * rt.c is compiled to LLVM bitcode at build time, embedded in the compiler and
 * linked into every generated module, where these functions are specialised
 * with constant sizes and given internal linkage. So: no global state but
 * the thread pool (one per object, started by rt_pool_start), no allocation
 * but its threads', no I/O (checked mode's rt_check_report aside), no libc
 * beyond memcpy/memset/math, pthreads, getenv/sysconf (rt_pool_start) and
 * cblas_sgemm (--gemm openblas). Generated code is the only caller.
 *
 * Conventions (codegen relies on them):
 *  - pointer parameters first, then int64_t sizes/flags, then float constants;
 *    a step's operands are passed in the prototype's order;
 *  - `acc` (0 or 1): 1 adds into the destination, 0 overwrites it. Gradients
 *    with several contributions are written by the first and accumulated by the rest;
 *  - kernels that can detect bad input return int32_t (0 = ok, else an
 *    RT_ERR_* code the entry point returns); all others return void;
 *  - matrices are row-major; "x [M,K]" means M rows of K floats;
 *  - in place: the planner may give an element-wise forward kernel (rt_relu_fwd,
 *    rt_add_fwd, rt_mul_fwd, rt_*_bcast_fwd, rt_scale, rt_dropout_fwd,
 *    rt_bn_*_fwd, ...) an output that is its input. Those kernels declare no
 *    `restrict` and read element i before writing element i; every other
 *    kernel takes distinct, non-overlapping buffers (but for
 *    rt_attention_bwd's gradients, which may be one: see there).
 *
 * Convolutional networks (the last sections):
 *  - activations are NCHW f32: x[N,C,H,W] is N images of C planes of H rows of
 *    W floats; the pooling kernels see x as NC = N*C independent planes;
 *  - square windows: one kernel size k, stride s, padding p, dilation d per
 *    conv/pool; out size OH = (H + 2p - d*(k-1) - 1)/s + 1 (floor), OW likewise
 *    (pools: d = 1); padding is zeros for conv and avg pool (avg divides by k*k,
 *    count_include_pad), -infinity for max pool, as in PyTorch;
 *  - conv weights are w[K, C/groups, k, k]; the conv kernels use a scratch
 *    buffer of rt_conv2d_scratch_floats(...) floats (one image's im2col
 *    columns for one group), or more when they block images (below); the
 *    same size serves fwd, bwd_x and bwd_w, and scratch may be NULL when that
 *    size is 0;
 *  - batch norm normalises each channel over N*HW values; "stats" is the
 *    residual training forward keeps for backward: {mean[C], invstd[C]}.
 */
#ifndef FROST_RT_H
#define FROST_RT_H

#include <stdint.h>

#include "ck.h"

/* ---------------------------------------------------------------- target
 * Constants of the object being compiled: codegen/cg.c defines these in every
 * generated module (they fold away); runtime/rt_native.c defines them for
 * librt, the unit tests' native build. */
enum { RT_GEMM_OPENBLAS = 0, RT_GEMM_FROST = 1 };
int64_t rt_cfg_gemm(void);                           /* RT_GEMM_*: frost build --gemm */
int64_t rt_cfg_wide(void);                           /* 1 when the target has 512-bit vectors (AVX-512F) */
void rt_native_set_gemm(int64_t gemm, int64_t wide); /* librt only: what the two return */

/* ---------------------------------------------------------------- threads
 * The object's pool (rt.c "threads"). rt_pool_start(n) makes n - 1 workers (n
 * <= 0: $FROST_NUM_THREADS, else the online CPUs; at most 64) and returns the
 * thread count; not while a kernel runs. Until it is called, every kernel
 * runs on its caller's thread. rt_parallel runs task(ctx, i) for i in
 * [0, ntasks) on the pool and returns when all have run. */
int64_t rt_pool_start(int64_t nthreads);
void rt_pool_stop(void);
int64_t rt_pool_threads(void);
void rt_parallel(void (*task)(void *ctx, int64_t i), void *ctx, int64_t ntasks);

/* C[m,n] = op(A) op(B) + beta C, row-major, op transposing when ta / tb is 1:
 * frost's GEMM (rt.c "GEMM") with the 512-bit micro-kernel when wide is 1,
 * else the 256-bit one; on the pool. */
void rt_sgemm(int64_t ta, int64_t tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
              int64_t ldb, float beta, float *c, int64_t ldc, int64_t wide);

enum {
    RT_OK = 0,
    RT_ERR_LABEL = 1, /* a class label outside [0, classes) */
    /* Misuse the entry points catch before any kernel runs (codegen/cg.c): */
    RT_ERR_NULL = 2,  /* a block, the inputs struct or an input pointer is NULL */
    RT_ERR_ALIGN = 3, /* a block not ALIGN-aligned, or an input not aligned to its element */
    RT_ERR_STATE = 4, /* backward without a matching forward on this arena */
    /* Only objects compiled with --checked return these (the checks below): */
    RT_ERR_GUARD = 5,     /* a guard byte around a buffer or at the end of a block changed */
    RT_ERR_NONFINITE = 6, /* a step wrote a NaN or an infinity into one of its f32 outputs */
    /* A kernel's again, numbered after the others: */
    RT_ERR_INDEX = 7, /* an embedding id outside [0, num) */
};

/* ---- checked mode (frost compile --checked; docs/abi.md). Guards are runs
 * of RT_GUARD_WORD, a quiet NaN, so that a kernel reading one by mistake
 * makes its output non-finite and is caught too. The one exception to "no
 * I/O": rt_check_report writes one line to stderr. */
#define RT_GUARD_WORD 0x7FC6A4D5u
void rt_guard_fill(uint8_t *p, int64_t bytes);
/* The first byte of p[0, bytes) that is not the guard pattern, or -1. */
int64_t rt_guard_find(const uint8_t *p, int64_t bytes);
/* The first of p[0, n) that is a NaN or an infinity, or -1 (also when p is NULL). */
int64_t rt_nonfinite_find(const float *p, int64_t n);
/* A failed check: remembers message `id` in word 1 of the arena's state slot
 * (state may be NULL), prints "frost: MSG" and, for a non-finite value, the
 * element and its value (p[where]) or, for a guard, the byte to stderr, and
 * returns code. */
int32_t rt_check_report(int64_t *state, int64_t id, const char *msg, const float *p, int64_t where, int64_t code);

/* ---- glue */
void rt_copy(void *dst, const void *src, int64_t bytes); /* no-op when dst is NULL */
void rt_fill_f32(float *dst, int64_t n, float value);
/* dst (+)= src */
void rt_acc_f32(float *dst, const float *src, int64_t n, int64_t acc);

/* ---- initialisation (counter-based RNG: same seed, same params, any order) */
/* p[i] ~ U(-bound, bound), stream distinguishes tensors of one model. */
void rt_init_uniform(float *p, int64_t n, uint64_t seed, int64_t stream, float bound);
/* p[i] ~ N(0, std^2) (nn.Embedding's init), by Box-Muller from one 64-bit
 * draw of the same counter-based stream as rt_init_uniform. */
void rt_init_normal(float *p, int64_t n, uint64_t seed, int64_t stream, float std);

/* ---- linear: y[M,N] = x[M,K] w[N,K]^T (+ b[N]); b may be NULL */
void rt_linear_fwd(const float *x, const float *w, const float *b, float *y, int64_t M, int64_t K, int64_t N);
/* dx[M,K] (+)= dy[M,N] w[N,K] */
void rt_linear_bwd_x(const float *dy, const float *w, float *dx, int64_t M, int64_t K, int64_t N, int64_t acc);
/* dw[N,K] (+)= dy[M,N]^T x[M,K] */
void rt_linear_bwd_w(const float *dy, const float *x, float *dw, int64_t M, int64_t K, int64_t N, int64_t acc);
/* db[N] (+)= sum over rows of dy[M,N] */
void rt_sum_rows(const float *dy, float *db, int64_t M, int64_t N, int64_t acc);

/* ---- linear with the weight stored [in, out] (Hugging Face GPT-2's Conv1D):
 * y[M,N] = x[M,K] w[K,N] (+ b[N]); b may be NULL. Its VJPs are
 * rt_matmul_bwd_a (dx = dy w^T) and rt_matmul_bwd_b (dw = x^T dy). */
void rt_linear_in_out_fwd(const float *x, const float *w, const float *b, float *y, int64_t M, int64_t K, int64_t N);

/* ---- matmul: c[M,N] = a[M,K] b[K,N] */
void rt_matmul_fwd(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N);
/* da[M,K] (+)= dc[M,N] b[K,N]^T */
void rt_matmul_bwd_a(const float *dc, const float *b, float *da, int64_t M, int64_t K, int64_t N, int64_t acc);
/* db[K,N] (+)= a[M,K]^T dc[M,N] */
void rt_matmul_bwd_b(const float *a, const float *dc, float *db, int64_t M, int64_t K, int64_t N, int64_t acc);

/* ---- batched matmul: c[n0, n1, n2, n3, M, N] holds one product [M,K] [K,N]
 * per batch. a is [n0, n1, n2, n3, M, K] but for the dims whose bit k (1 << k:
 * dim k, 0 the outermost) is set in a_rep, where it has size 1 and its one
 * matrix is repeated (broadcast) along the dim; b is [n0, ..., n3, K, N] with
 * b_rep likewise. Both are row-major in their own dims. */
void rt_batched_matmul_fwd(const float *a, const float *b, float *c, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                           int64_t a_rep, int64_t b_rep, int64_t M, int64_t K, int64_t N);
/* da (+)= dc b^T per batch; the batches along the dims a repeats add into one
 * matrix of da */
void rt_batched_matmul_bwd_a(const float *dc, const float *b, float *da, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                             int64_t a_rep, int64_t b_rep, int64_t M, int64_t K, int64_t N, int64_t acc);
/* db (+)= a^T dc per batch; the batches along the dims b repeats add into one
 * matrix of db */
void rt_batched_matmul_bwd_b(const float *a, const float *dc, float *db, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                             int64_t a_rep, int64_t b_rep, int64_t M, int64_t K, int64_t N, int64_t acc);

/* ---- relu; y may be x */
void rt_relu_fwd(const float *x, float *y, int64_t n);
/* bits[i/8] bit (i%8) = y[i] > 0; ceil(n/8) bytes written */
void rt_sign_mask(const float *y, uint8_t *bits, int64_t n);
/* dx (+)= dy * (y > 0) */
void rt_relu_bwd_out(const float *y, const float *dy, float *dx, int64_t n, int64_t acc);
/* dx (+)= dy * bit(i) */
void rt_relu_bwd_mask(const uint8_t *bits, const float *dy, float *dx, int64_t n, int64_t acc);

/* ---- sigmoid: y = 1 / (1 + e^-x); y may be x */
/* y = e^x element-wise, by the runtime's own exp that the kernels use
 * (vectorisable; within 2 ulp of expf where the result is normal). */
void rt_exp_fwd(const float *restrict x, float *restrict y, int64_t n);
void rt_sigmoid_fwd(const float *x, float *y, int64_t n);
/* dx (+)= dy * y * (1 - y), from the output */
void rt_sigmoid_bwd(const float *y, const float *dy, float *dx, int64_t n, int64_t acc);

/* ---- silu: y = x / (1 + e^-x); y may be x */
void rt_silu_fwd(const float *x, float *y, int64_t n);
/* dx (+)= dy * s * (1 + x (1 - s)), s = sigmoid(x), from the input */
void rt_silu_bwd(const float *x, const float *dy, float *dx, int64_t n, int64_t acc);

/* ---- gelu: y = x Phi(x); tanh = 0: 0.5 x (1 + erf(x / sqrt 2)), tanh = 1:
 * PyTorch's approximate="tanh", 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); y may be x */
void rt_gelu_fwd(const float *x, float *y, int64_t n, int64_t tanh);
/* dx (+)= dy * gelu'(x), from the input */
void rt_gelu_bwd(const float *x, const float *dy, float *dx, int64_t n, int64_t acc, int64_t tanh);

/* ---- rms_norm over rows of D: y = x * r * w, r = 1 / sqrt(mean(x^2) + eps);
 * rstd[rows] receives r when not NULL. y is not x. */
void rt_rms_norm_fwd(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t D, double eps);
/* dx (+)= r (g - xh mean(g xh)), g = dy w, xh = x r */
void rt_rms_norm_bwd_x(const float *x, const float *w, const float *rstd, const float *dy, float *dx, int64_t rows,
                       int64_t D, int64_t acc);
/* dw (+)= sum over rows of dy x r */
void rt_rms_norm_bwd_w(const float *x, const float *rstd, const float *dy, float *dw, int64_t rows, int64_t D,
                       int64_t acc);

/* ---- layer_norm over rows of D: y = (x - mean) * r * w + b, r = 1 / sqrt(var
 * + eps), var biased; w and b may be NULL (no affine); stats[rows][2]
 * receives mean and r when not NULL. y is not x. */
void rt_layer_norm_fwd(const float *x, const float *w, const float *b, float *y, float *stats, int64_t rows, int64_t D,
                       double eps);
/* dx (+)= r (g - mean(g) - xh mean(g xh)), g = dy w (dy if w is NULL), xh = (x - mean) r */
void rt_layer_norm_bwd_x(const float *x, const float *w, const float *stats, const float *dy, float *dx, int64_t rows,
                         int64_t D, int64_t acc);
/* dw (+)= sum over rows of dy xh */
void rt_layer_norm_bwd_w(const float *x, const float *stats, const float *dy, float *dw, int64_t rows, int64_t D,
                         int64_t acc);

/* ---- rope: rotary embedding, Hugging Face's rotate_half convention, over x
 * [heads, T, hd] (heads = B*H, hd even, half = hd/2): for position t and pair
 * i < half, with a = t * theta^(-2i/hd) computed as Hugging Face does in f32
 * (rt.c), y[i] = x[i] cos a - x[i+half] sin a, y[i+half] = x[i+half] cos a +
 * x[i] sin a. y is not x. */
void rt_rope_fwd(const float *x, float *y, int64_t heads, int64_t T, int64_t hd, double theta);
/* dx (+)= the inverse rotation of dy (the rotation is orthogonal) */
void rt_rope_bwd(const float *dy, float *dx, int64_t heads, int64_t T, int64_t hd, int64_t acc, double theta);

/* ---- attention (PyTorch's scaled_dot_product_attention): q [B,H,T,hd], k
 * and v [B,Hkv,S,hd], query head h reads key/value head h / (H/Hkv); o
 * [B,H,T,hd] = softmax(scale q k^T, key j > query i masked when causal) v.
 * Both directions work on blocks of `tile` queries x `tile` keys, each block's
 * scores one GEMM (FlashAttention-2): nothing T x S is ever stored. Forward is
 * an online softmax over key blocks; lse [B,H,T] receives each row's
 * log-sum-exp when not NULL. scratch holds RT_ATTENTION_FWD_SCRATCH(tile)
 * floats; with tile <= RT_ATTENTION_TILE (the compiler's tiles) the heads run
 * on the pool, each task with that scratch on its stack, and scratch is not
 * touched. */
#define RT_ATTENTION_TILE 64 /* queries and keys per block */
#define RT_ATTENTION_FWD_SCRATCH(tile) ((tile) * (tile) + 2 * (tile))
#define RT_ATTENTION_BWD_SCRATCH(tile) (2 * (tile) * (tile) + (tile))
void rt_attention_fwd(const float *q, const float *k, const float *v, float *o, float *lse, float *scratch, int64_t B,
                      int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t hd, int64_t causal, int64_t tile,
                      double scale);
/* Block by block, recomputing the probabilities P from q, k and lse: dv (+)=
 * P^T do; with D = rowsum(do * o), ds = P (do v^T - D), dq (+)= scale ds k and
 * dk (+)= scale ds^T q (GQA: summed over a kv head's query heads). A NULL dq,
 * dk or dv is not computed; v and o are read only for dq or dk. dq, dk and dv
 * may be one buffer (an input used twice): each with acc 0 is zeroed first,
 * then every contribution adds. scratch holds RT_ATTENTION_BWD_SCRATCH(tile)
 * floats, used as the forward's (on the pool by image and key/value head). */
void rt_attention_bwd(const float *q, const float *k, const float *v, const float *o, const float *lse,
                      const float *dout, float *dq, float *dk, float *dv, float *scratch, int64_t B, int64_t H,
                      int64_t Hkv, int64_t T, int64_t S, int64_t hd, int64_t causal, int64_t acc_q, int64_t acc_k,
                      int64_t acc_v, int64_t tile, double scale);

/* ---- softmax over rows of D: y = e^(x - max) / sum e^(x - max); y is not x */
void rt_softmax_fwd(const float *x, float *y, int64_t rows, int64_t D);
/* dx (+)= y (dy - sum(dy y)) per row, from the output */
void rt_softmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t D, int64_t acc);

/* ---- transpose, permute: a strided copy. y is row-major [n0, ..., n5] and
 * its element (i0, ..., i5) is x[i0 s0 + ... + i5 s5]: y (+)= that. Forward
 * passes the strides of x's dims in y's order, the VJP those of dy's dims in
 * dx's order (the inverse permutation). y is not x. */
void rt_permute(const float *x, float *y, int64_t n0, int64_t n1, int64_t n2, int64_t n3, int64_t n4, int64_t n5,
                int64_t s0, int64_t s1, int64_t s2, int64_t s3, int64_t s4, int64_t s5, int64_t acc);

/* ---- slice: x is [outer, D, inner]; y [outer, len, inner] (+)= x[:, start:start+len, :].
 * rt_slice_bwd: dx[:, start:start+len, :] (+)= dy; with acc 0 the rest of dx
 * becomes 0. y is not x. */
void rt_slice_fwd(const float *x, float *y, int64_t outer, int64_t D, int64_t inner, int64_t start, int64_t len,
                  int64_t acc);
void rt_slice_bwd(const float *dy, float *dx, int64_t outer, int64_t D, int64_t inner, int64_t start, int64_t len,
                  int64_t acc);
/* ---- concat of up to 8 tensors along one dim: x_k is [outer, d_k, inner] and
 * y [outer, d_0 + ... + d_7, inner] their parts side by side; an absent x_k
 * is NULL with d_k = 0. y is written once, whole, and is none of the x_k. Its
 * VJP towards x_k is rt_slice_fwd of dy. */
void rt_concat_fwd(const float *x0, const float *x1, const float *x2, const float *x3, const float *x4, const float *x5,
                   const float *x6, const float *x7, float *y, int64_t outer, int64_t inner, int64_t d0, int64_t d1,
                   int64_t d2, int64_t d3, int64_t d4, int64_t d5, int64_t d6, int64_t d7);

/* ---- add, mul: y[outer*inner] = a + b (a * b), b has `inner` elements repeated `outer`
 * times (outer = 1 when the shapes are equal); y may be a, or b when outer = 1 */
void rt_add_fwd(const float *a, const float *b, float *y, int64_t outer, int64_t inner);
void rt_mul_fwd(const float *a, const float *b, float *y, int64_t outer, int64_t inner);
/* ---- scale: y (+)= c x; y may be x. Forward (acc 0) and its VJP (dx (+)= c dy). */
void rt_scale(const float *x, float *y, int64_t n, int64_t acc, float c);
/* ---- broadcasting (numpy's rule). y is row-major [n0, n1, ..., n5]; an
 * operand has the same dims except those whose bit k (1 << k: dim k, 0 the
 * outermost) is set in its `rep` mask, where it has size 1 and is repeated:
 * its strides are those of its own row-major layout with stride 0 along the
 * repeated dims. y may be a or b when that operand's mask is 0. */
void rt_add_bcast_fwd(const float *a, const float *b, float *y, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                      int64_t n4, int64_t n5, int64_t a_rep, int64_t b_rep);
void rt_mul_bcast_fwd(const float *a, const float *b, float *y, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                      int64_t n4, int64_t n5, int64_t a_rep, int64_t b_rep);
/* The VJP of both towards one operand: dx (+)= dy * other, summed over the
 * dims dx repeats along (dx_rep); other (the other operand of a mul) is
 * repeated along other_rep, NULL for add (a factor 1). dy has y's dims. */
void rt_bcast_reduce(const float *dy, const float *other, float *dx, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                     int64_t n4, int64_t n5, int64_t dx_rep, int64_t other_rep, int64_t acc);

/* ---- embedding: y[n, dim] = w[ids[i]] for n ids; RT_ERR_INDEX (nothing
 * written) when an id is outside [0, num) */
int32_t rt_embedding_fwd(const int32_t *ids, const float *w, float *y, int64_t n, int64_t num, int64_t dim);
/* dw[num, dim] (+)= scatter-add of dy[n, dim] to rows ids[i] (ids checked by forward) */
void rt_embedding_bwd(const int32_t *ids, const float *dy, float *dw, int64_t n, int64_t num, int64_t dim, int64_t acc);

/* ---- losses (mean reduction); loss points at one float */
/* probs[M,C] = softmax(logits) when probs is not NULL; loss = mean over the
 * rows whose label is not `ignore` of -log p[label] (0 when every row is
 * ignored); RT_ERR_LABEL (nothing written) for another label outside [0, C) */
int32_t rt_cross_entropy_fwd(const float *logits, const int32_t *labels, float *probs, float *loss, int64_t M,
                             int64_t C, int64_t ignore);
/* dlogits (+)= (probs - onehot(labels)) * dloss / count, count the rows not
 * ignored; an ignored row gets 0 */
void rt_cross_entropy_bwd(const float *probs, const int32_t *labels, const float *dloss, float *dlogits, int64_t M,
                          int64_t C, int64_t ignore, int64_t acc);
/* ---- linear_cross_entropy: cross_entropy(h[N,d] w[V,d]^T, labels) without
 * the [N,V] logits: tiles of rows x cols (a chunk of `rows` rows times a
 * chunk of `cols` vocabulary entries) are computed into scratch, one at a
 * time, with an online log-sum-exp per row. Scratch holds
 * rt_linear_ce_scratch_floats(...) floats. */
static inline int64_t rt_linear_ce_scratch_floats(int64_t N, int64_t V, int64_t rows, int64_t cols) {
    int64_t r = N < rows ? N : rows, v = V < cols ? V : cols, n;
    if (ck_add(v, 3, &n) || ck_mul(r, n, &n)) /* the tile and 3 floats per row: running max, sum, label logit */
        return -1;
    return n;
}
/* lse[N] = log-sum-exp of each row's logits when lse is not NULL; loss as
 * rt_cross_entropy_fwd; RT_ERR_LABEL (nothing written) likewise */
int32_t rt_linear_ce_fwd(const float *h, const float *w, const int32_t *labels, float *lse, float *loss, float *scratch,
                         int64_t N, int64_t d, int64_t V, int64_t ignore, int64_t rows, int64_t cols);
/* g = (softmax - onehot(labels)) * dloss / count from the logits recomputed
 * tile by tile and lse; dh[N,d] (+)= g w and dw[V,d] (+)= g^T h, each unless
 * NULL (acc_h, acc_w: add to what is there), from one recomputation */
void rt_linear_ce_bwd(const float *h, const float *w, const int32_t *labels, const float *lse, const float *dloss,
                      float *dh, float *dw, float *scratch, int64_t N, int64_t d, int64_t V, int64_t ignore,
                      int64_t rows, int64_t cols, int64_t acc_h, int64_t acc_w);
/* diff = pred - target when diff is not NULL; loss = mean diff^2 */
void rt_mse_fwd(const float *pred, const float *target, float *diff, float *loss, int64_t n);
/* dx (+)= sign * 2 * diff * dloss / n   (sign = +1 for pred, -1 for target) */
void rt_mse_bwd(const float *diff, const float *dloss, float *dx, int64_t n, int64_t sign, int64_t acc);

/* ---- conv2d (groups divide C and K; all but the special cases below run
 * im2col + GEMM per group and per image, or per block of `images` images).
 *
 * `images` is how many images share one GEMM. At most 1: one at a time, with
 * rt_conv2d_scratch_floats() floats of scratch. More (ignored by depthwise
 * convs, which use no scratch): blocks of that many images, with
 * images * rt_conv2d_blocked_scratch_floats() floats of scratch. The compiler
 * picks it after planning the arena, from the space free at that step
 * (passes/widen.c), so blocking never makes the arena larger. */
/* Depthwise convs (groups > 1, one input channel per group) run direct loops
 * without scratch. A conv of a single-channel input (C = groups = 1, LeNet's
 * first layer) is not one of them: its K outputs share that channel, and one
 * GEMM over its k*k-row columns beats K passes of direct loops. */
static inline int rt_conv2d_is_depthwise(int64_t C, int64_t groups) { return groups > 1 && C / groups == 1; }
/* Outputs of a window op (conv, pool) along one axis, for n, k, d >= 1 and
 * p >= 0; 0 when the window never fits, -1 when the padded input n + 2p
 * overflows int64 (the compiler rejects such a padding, ir/ops.c). */
static inline int64_t rt_out_size(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d) {
    int64_t padded, extent;
    if (ck_mul(2, p, &padded) || ck_add(n, padded, &padded))
        return -1;
    /* a dilated window wider than int64 is wider than any padded input */
    if (ck_mul(d, k - 1, &extent) || padded - extent - 1 < 0 || s <= 0)
        return 0;
    return (padded - extent - 1) / s + 1;
}
/* floats of scratch that rt_conv2d_fwd/_bwd_x/_bwd_w need for these sizes;
 * 0 when they need none, -1 when the count overflows int64 (the compiler
 * rejects such a conv). static inline here (not in rt.c) because the
 * compiler (ir/ops.c) sizes the arena with it and does not link the runtime:
 * one formula for both. Depthwise convs use direct loops; 1x1
 * stride-1 unpadded convs read x as the column matrix; all others hold one
 * image's columns for one group: (C/groups)*k*k * OH*OW floats. */
static inline int64_t rt_conv2d_scratch_floats(int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                                               int64_t d, int64_t groups) {
    if (groups <= 0 || rt_conv2d_is_depthwise(C, groups) || (k == 1 && s == 1 && p == 0))
        return 0;
    int64_t OH = rt_out_size(H, k, s, p, d), OW = rt_out_size(W, k, s, p, d), n;
    if (OH < 0 || OW < 0 || ck_mul(C / groups, k, &n) || ck_mul(n, k, &n) || ck_mul(n, OH, &n) || ck_mul(n, OW, &n))
        return -1;
    return n;
}
/* floats of scratch per image when images > 1: each image's columns and its
 * slice of the output (or packed dy) matrix, (C/groups*k*k + K/groups)*OH*OW;
 * 0 for depthwise convs, -1 when the count overflows int64 (the compiler then
 * does not block that conv). */
static inline int64_t rt_conv2d_blocked_scratch_floats(int64_t C, int64_t H, int64_t W, int64_t K, int64_t k, int64_t s,
                                                       int64_t p, int64_t d, int64_t groups) {
    if (groups <= 0 || rt_conv2d_is_depthwise(C, groups))
        return 0;
    int64_t OH = rt_out_size(H, k, s, p, d), OW = rt_out_size(W, k, s, p, d), n;
    if (OH < 0 || OW < 0 || ck_mul(C / groups, k, &n) || ck_mul(n, k, &n) || ck_add(n, K / groups, &n) ||
        ck_mul(n, OH, &n) || ck_mul(n, OW, &n))
        return -1;
    return n;
}
/* y[N,K,OH,OW] = conv(x[N,C,H,W], w[K,C/groups,k,k]) (+ b[K]); b may be NULL */
void rt_conv2d_fwd(const float *x, const float *w, const float *b, float *y, float *scratch, int64_t N, int64_t C,
                   int64_t H, int64_t W, int64_t K, int64_t k, int64_t s, int64_t p, int64_t d, int64_t groups,
                   int64_t images);
/* dx[N,C,H,W] (+)= conv_transpose(dy[N,K,OH,OW], w) */
void rt_conv2d_bwd_x(const float *dy, const float *w, float *dx, float *scratch, int64_t N, int64_t C, int64_t H,
                     int64_t W, int64_t K, int64_t k, int64_t s, int64_t p, int64_t d, int64_t groups, int64_t images,
                     int64_t acc);
/* dw[K,C/groups,k,k] (+)= sum over images of dy (x) im2col(x) */
void rt_conv2d_bwd_w(const float *dy, const float *x, float *dw, float *scratch, int64_t N, int64_t C, int64_t H,
                     int64_t W, int64_t K, int64_t k, int64_t s, int64_t p, int64_t d, int64_t groups, int64_t images,
                     int64_t acc);
/* db[K] (+)= sum over n and the HW positions of dy[N,K,HW] (conv bias, bn beta) */
void rt_sum_channels(const float *dy, float *db, int64_t N, int64_t K, int64_t HW, int64_t acc);

/* ---- batch norm over x[N,C,HW]; m = N*HW values per channel */
/* training: batch mean and biased variance var per channel, invstd =
 * 1/sqrt(var + eps), y = (x - mean) * invstd * gamma + beta;
 * running_mean = (1 - momentum) running_mean + momentum mean, running_var
 * likewise with the unbiased variance var*m/(m-1); *num_batches += 1;
 * stats[2C] = {mean[C], invstd[C]} when stats is not NULL. y may be x. */
void rt_bn_train_fwd(const float *x, const float *gamma, const float *beta, float *running_mean, float *running_var,
                     int64_t *num_batches, float *y, float *stats, int64_t N, int64_t C, int64_t HW, float eps,
                     float momentum);
/* dx (+)= invstd*gamma/m * (m dy - sum(dy) - xhat sum(dy xhat)), xhat = (x - mean)*invstd
 * from x and the stats of rt_bn_train_fwd */
void rt_bn_train_bwd_x(const float *x, const float *gamma, const float *stats, const float *dy, float *dx, int64_t N,
                       int64_t C, int64_t HW, int64_t acc);
/* dgamma[C] (+)= sum(dy xhat); dbeta is rt_sum_channels(dy) */
void rt_bn_train_bwd_gamma(const float *x, const float *stats, const float *dy, float *dgamma, int64_t N, int64_t C,
                           int64_t HW, int64_t acc);
/* eval: y = (x - running_mean)/sqrt(running_var + eps) * gamma + beta; no state
 * changes. y may be x. */
void rt_bn_eval_fwd(const float *x, const float *gamma, const float *beta, const float *running_mean,
                    const float *running_var, float *y, int64_t N, int64_t C, int64_t HW, float eps);
/* dx (+)= dy * gamma / sqrt(running_var + eps) */
void rt_bn_eval_bwd_x(const float *gamma, const float *running_var, const float *dy, float *dx, int64_t N, int64_t C,
                      int64_t HW, int64_t acc, float eps);
/* dgamma (+)= sum(dy * (x - running_mean) / sqrt(running_var + eps)) */
void rt_bn_eval_bwd_gamma(const float *x, const float *running_mean, const float *running_var, const float *dy,
                          float *dgamma, int64_t N, int64_t C, int64_t HW, int64_t acc, float eps);

/* ---- pooling over planes x[NC,H,W] -> y[NC,OH,OW] (dilation 1) */
/* The most elements a pooling window may have: max pooling keeps the
 * position of each max inside its window in one byte. The shape rules of
 * ops.c reject larger windows. */
enum { RT_POOL_WINDOW_MAX = 256 };
/* max; argmax (may be NULL; needs k*k <= RT_POOL_WINDOW_MAX) gets the row-major position
 * ky*k + kx of each max inside its window: the first max on ties, the first
 * NaN if the window holds one (NaN propagates, as in PyTorch) */
void rt_maxpool_fwd(const float *x, float *y, uint8_t *argmax, int64_t NC, int64_t H, int64_t W, int64_t k, int64_t s,
                    int64_t p);
/* dx (+)= dy scattered to the argmax positions */
void rt_maxpool_bwd(const uint8_t *argmax, const float *dy, float *dx, int64_t NC, int64_t H, int64_t W, int64_t k,
                    int64_t s, int64_t p, int64_t acc);
/* average with count_include_pad: window sum / (k*k) */
void rt_avgpool_fwd(const float *x, float *y, int64_t NC, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p);
void rt_avgpool_bwd(const float *dy, float *dx, int64_t NC, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                    int64_t acc);
/* global average: y[NC] = mean of each plane x[NC,HW] */
void rt_global_avgpool_fwd(const float *x, float *y, int64_t NC, int64_t HW);
void rt_global_avgpool_bwd(const float *dy, float *dx, int64_t NC, int64_t HW, int64_t acc);

/* ---- dropout (training; the mask is a pure function of a 64-bit seed)
 * seed = *rng_state, then *rng_state = seed + 1 (wrapping), and *seed_out =
 * seed when seed_out is not NULL. With key = mix(seed ^ 0x64726f706f75742e)
 * and u_i = (mix(key + i) >> 40) * 2^-24 (mix: the splitmix64 finaliser of
 * rt_init_uniform), element i is kept iff u_i >= p; kept elements are scaled
 * by 1/(1-p), dropped ones are 0 (all of them when p >= 1). y may be x. */
void rt_dropout_fwd(const float *x, float *y, int64_t *rng_state, int64_t *seed_out, int64_t n, float p);
/* dx (+)= dy * mask(*seed) / (1-p) */
void rt_dropout_bwd(const int64_t *seed, const float *dy, float *dx, int64_t n, int64_t acc, float p);

/* ---- optimizers (P_update). The state block starts with the i64 step
 * counter that rt_opt_step_begin advances once per update; each trainable
 * parameter then has its own state tensors (zeroed by the caller before the
 * first step). hp points at the header's frost_hparams. */
typedef struct rt_hparams {
    float lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    int32_t nesterov;
} rt_hparams;

void rt_opt_step_begin(int64_t *step);
/* torch.optim.SGD: g += wd*p; buf = momentum*buf + (1-dampening)*g (buf = g
 * on step 1); g = nesterov ? g + momentum*buf : buf; p -= lr*g */
void rt_sgd_update(float *p, const float *g, float *buf, const int64_t *step, const rt_hparams *hp, int64_t n);
/* torch.optim.AdamW: p *= 1 - lr*wd; m, v moving averages of g and g^2;
 * p -= lr * m/(1-beta1^t) / (sqrt(v/(1-beta2^t)) + eps) */
void rt_adamw_update(float *p, const float *g, float *m, float *v, const int64_t *step, const rt_hparams *hp,
                     int64_t n);

/* ---- the kernels of steps, described once
 * Each step of a lowered program (lower.c's lc_step) calls one of these, with
 * its operands in this order. Letters: r a buffer the kernel reads, w one it
 * writes (and reads too when accumulating), s its scratch (written; widen.c
 * may grow it), i an int64_t, n the int64_t number of images it does at once
 * (1 when lowered; widen.c may raise it, with n times the scratch), f a
 * float. A buffer operand may be absent (NULL) where the kernel allows it.
 * The test `lower` checks each letter against the prototype above (const
 * pointer for r) and that lowering every op calls every kernel here. */
#define RT_STEP_KERNELS(X)                     \
    X(copy, "wri")                             \
    X(fill_f32, "wif")                         \
    X(acc_f32, "wrii")                         \
    X(linear_fwd, "rrrwiii")                   \
    X(linear_in_out_fwd, "rrrwiii")            \
    X(linear_bwd_x, "rrwiiii")                 \
    X(linear_bwd_w, "rrwiiii")                 \
    X(sum_rows, "rwiii")                       \
    X(matmul_fwd, "rrwiii")                    \
    X(matmul_bwd_a, "rrwiiii")                 \
    X(matmul_bwd_b, "rrwiiii")                 \
    X(batched_matmul_fwd, "rrwiiiiiiiii")      \
    X(batched_matmul_bwd_a, "rrwiiiiiiiiii")   \
    X(batched_matmul_bwd_b, "rrwiiiiiiiiii")   \
    X(relu_fwd, "rwi")                         \
    X(sign_mask, "rwi")                        \
    X(relu_bwd_out, "rrwii")                   \
    X(relu_bwd_mask, "rrwii")                  \
    X(sigmoid_fwd, "rwi")                      \
    X(sigmoid_bwd, "rrwii")                    \
    X(silu_fwd, "rwi")                         \
    X(silu_bwd, "rrwii")                       \
    X(gelu_fwd, "rwii")                        \
    X(gelu_bwd, "rrwiii")                      \
    X(rms_norm_fwd, "rrwwiif")                 \
    X(rms_norm_bwd_x, "rrrrwiii")              \
    X(rms_norm_bwd_w, "rrrwiii")               \
    X(layer_norm_fwd, "rrrwwiif")              \
    X(layer_norm_bwd_x, "rrrrwiii")            \
    X(layer_norm_bwd_w, "rrrwiii")             \
    X(rope_fwd, "rwiiif")                      \
    X(rope_bwd, "rwiiiif")                     \
    X(softmax_fwd, "rwii")                     \
    X(softmax_bwd, "rrwiii")                   \
    X(permute, "rwiiiiiiiiiiiii")              \
    X(slice_fwd, "rwiiiiii")                   \
    X(slice_bwd, "rwiiiiii")                   \
    X(concat_fwd, "rrrrrrrrwiiiiiiiiii")       \
    X(add_fwd, "rrwii")                        \
    X(mul_fwd, "rrwii")                        \
    X(add_bcast_fwd, "rrwiiiiiiii")            \
    X(mul_bcast_fwd, "rrwiiiiiiii")            \
    X(bcast_reduce, "rrwiiiiiiiii")            \
    X(scale, "rwiif")                          \
    X(embedding_fwd, "rrwiii")                 \
    X(embedding_bwd, "rrwiiii")                \
    X(cross_entropy_fwd, "rrwwiii")            \
    X(cross_entropy_bwd, "rrrwiiii")           \
    X(linear_ce_fwd, "rrrwwsiiiiii")           \
    X(linear_ce_bwd, "rrrrrwwsiiiiiiii")       \
    X(mse_fwd, "rrwwi")                        \
    X(mse_bwd, "rrwiii")                       \
    X(conv2d_fwd, "rrrwsiiiiiiiiiin")          \
    X(conv2d_bwd_x, "rrwsiiiiiiiiiini")        \
    X(conv2d_bwd_w, "rrwsiiiiiiiiiini")        \
    X(sum_channels, "rwiiii")                  \
    X(bn_train_fwd, "rrrwwwwwiiiff")           \
    X(bn_train_bwd_x, "rrrrwiiii")             \
    X(bn_train_bwd_gamma, "rrrwiiii")          \
    X(bn_eval_fwd, "rrrrrwiiif")               \
    X(bn_eval_bwd_x, "rrrwiiiif")              \
    X(bn_eval_bwd_gamma, "rrrrwiiiif")         \
    X(maxpool_fwd, "rwwiiiiii")                \
    X(maxpool_bwd, "rrwiiiiiii")               \
    X(avgpool_fwd, "rwiiiiii")                 \
    X(avgpool_bwd, "rwiiiiiii")                \
    X(global_avgpool_fwd, "rwii")              \
    X(global_avgpool_bwd, "rwiii")             \
    X(dropout_fwd, "rwwwif")                   \
    X(attention_fwd, "rrrwwsiiiiiiiif")        \
    X(attention_bwd, "rrrrrrwwwsiiiiiiiiiiif") \
    X(dropout_bwd, "rrwiif")

/* RTK_linear_fwd names rt_linear_fwd. */
typedef enum {
#define RT_KERNEL_ID(name, operands) RTK_##name,
    RT_STEP_KERNELS(RT_KERNEL_ID)
#undef RT_KERNEL_ID
        RTK_COUNT
} rt_kernel;

#endif
