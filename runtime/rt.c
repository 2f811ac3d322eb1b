/* rt.c: the runtime kernels declared in rt.h.
 *
 * Compiled twice: natively into librt (unit tests call the kernels directly)
 * and to LLVM bitcode that codegen links into every generated module, where
 * the sizes become constants and the functions are internalised. Hence the
 * rules of rt.h: no globals but the thread pool, no allocation, no I/O (but
 * for checked mode's one report on stderr); only memcpy/memset, math.h (logf,
 * sqrt, floorf, ceilf), pthreads and cblas_sgemm (--gemm openblas) from
 * outside. Loops are
 * written plainly over restrict pointers so the vectoriser can take them once
 * the target CPU is known.
 *
 * Kernels that may run in place (rt.h) cannot use restrict. They call one
 * inline body either as body(y, y, ...) when the output is the input, where
 * the vectoriser sees a single pointer (dependence distance 0: safe), or as
 * body(x, y, ...) otherwise, where it checks for overlap at run time. Without
 * the split, an in-place call would fail that run-time check and run scalar.
 */
#include "rt.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Without
 * -ffast-math the vectoriser keeps float/double sums (and max/min
 * selections) in order, i.e. scalar; RT_REDUCE lets it reassociate the one
 * loop that follows (clang only: the bitcode is clang's; the native test
 * library may stay scalar). The result then depends on the vector width of
 * the target CPU, never on the run. Long reductions accumulate in double. */
#if defined(__clang__)
#define RT_REDUCE _Pragma("clang loop vectorize(enable) interleave(enable)")
#else
#define RT_REDUCE
#endif

/* The element-wise bodies that may run in place (y = x) are called as
 * body(y, y) or body(x, y) and must be inlined into both calls: only there
 * does the vectoriser see that the two pointers are one. A shared out-of-line
 * body checks for overlap at run time, finds it when in place, and runs its
 * scalar loop (GELU in place was a tenth of a ViT step so). */
#define RT_ELEMENTWISE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------- exp
 *
 * e^x without a call, so that the loops of softmax, attention, the losses,
 * sigmoid, SiLU and GELU vectorise (libm's expf is a scalar call LLVM cannot
 * widen). x = n ln 2 + r with |r| <= ln 2 / 2 (ln 2 in two parts, so that
 * n ln 2 is exact), e^r by a degree-6 polynomial (Taylor's, its coefficients
 * adjusted for least error on that interval), times 2^n as two powers of two
 * built in the exponent bits (each a normal float, so 2^n may be subnormal or
 * 2^128 on the way). Within 2 ulp of expf where the result is normal
 * (tests/unit/test_runtime.c checks it over the whole range); e^-inf = 0
 * exactly, as masked scores need; inf above ln(FLT_MAX), NaN stays NaN.
 * Branch-free: every case is a select. */
static inline float rt_pow2i(int32_t n) { /* 2^n for -126 <= n <= 127 */
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float rt_exp(float x) {
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    float xc = x < -104.0f ? -104.0f : x > 88.75f ? 88.75f : x; /* NaN passes, and is set apart at the end */
    float n = floorf(xc * log2e + 0.5f);
    float r = xc - n * ln2_hi - n * ln2_lo;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float er = p * r * r + r + 1.0f;
    int32_t ni = (int32_t)(xc == xc ? n : 0.0f), half = ni / 2;
    float y = er * rt_pow2i(half) * rt_pow2i(ni - half);
    y = x < -104.0f ? 0.0f : y;
    y = x > 88.72283905f ? INFINITY : y;
    return x != x ? x : y;
}

void rt_exp_fwd(const float *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = rt_exp(x[i]);
}

/* ---------------------------------------------------------------- checked mode */

void rt_guard_fill(uint8_t *p, int64_t bytes) {
    for (int64_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)(RT_GUARD_WORD >> (8 * (i % 4)));
}

int64_t rt_guard_find(const uint8_t *p, int64_t bytes) {
    for (int64_t i = 0; i < bytes; i++)
        if (p[i] != (uint8_t)(RT_GUARD_WORD >> (8 * (i % 4))))
            return i;
    return -1;
}

int64_t rt_nonfinite_find(const float *p, int64_t n) {
    if (!p)
        return -1;
    /* exponent all ones: NaN or an infinity; integer bits so that no
     * fast-math assumption of the caller's flags can fold the test away */
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &p[i], 4);
        if ((bits & 0x7F800000u) == 0x7F800000u)
            return i;
    }
    return -1;
}

int32_t rt_check_report(int64_t *state, int64_t id, const char *msg, const float *p, int64_t where, int64_t code) {
    if (state)
        state[1] = id;
    if (code == RT_ERR_NONFINITE && p)
        fprintf(stderr, "frost: %s: element %lld is %g\n", msg, (long long)where, (double)p[where]);
    else
        fprintf(stderr, "frost: %s (byte %lld of the guard)\n", msg, (long long)where);
    return (int32_t)code;
}

/* ---------------------------------------------------------------- glue */

void rt_copy(void *dst, const void *src, int64_t bytes) {
    if (!dst || bytes <= 0)
        return;
    memcpy(dst, src, (size_t)bytes);
}

void rt_fill_f32(float *restrict dst, int64_t n, float value) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = value;
}

void rt_acc_f32(float *restrict dst, const float *restrict src, int64_t n, int64_t acc) {
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
static inline uint64_t rt_mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* p[i] depends only on (seed, stream, i): element i of tensor `stream` is
 * the top 24 bits of mix(key + i), key = mix(seed ^ mix(stream)). 24 bits map
 * exactly onto floats u in [0,1), and bound * (2u - 1) stays in [-bound, bound). */
void rt_init_uniform(float *restrict p, int64_t n, uint64_t seed, int64_t stream, float bound) {
    uint64_t key = rt_mix64(seed ^ rt_mix64((uint64_t)stream));
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = rt_mix64(key + (uint64_t)i);
        float u = (float)(r >> 40) * (1.0f / 16777216.0f);
        p[i] = bound * (2.0f * u - 1.0f);
    }
}

/* One 64-bit draw per element: its top 24 bits give u1 in (0, 1) (half a
 * step off 0, so the log is finite), its low 24 bits u2 in [0, 1). */
void rt_init_normal(float *restrict p, int64_t n, uint64_t seed, int64_t stream, float std) {
    uint64_t key = rt_mix64(seed ^ rt_mix64((uint64_t)stream));
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = rt_mix64(key + (uint64_t)i);
        float u1 = ((float)(r >> 40) + 0.5f) * (1.0f / 16777216.0f);
        float u2 = (float)(r & 0xFFFFFFu) * (1.0f / 16777216.0f);
        p[i] = std * sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
    }
}

/* ---------------------------------------------------------------- threads
 *
 * One pool per generated object (the module's only global state): nthreads - 1
 * workers, started by rt_pool_start (P_set_threads) and never inside a
 * forward or backward. rt_parallel runs task(ctx, 0..ntasks-1), the caller
 * taking its share. Each job waits for every worker to finish it before the
 * next is published, so a worker never sees a half-written job. Workers spin
 * for a while after a job (kernels come in quick succession) and then sleep
 * on a condition variable. A caller that finds the pool busy (another thread,
 * or a task calling rt_parallel) runs its tasks itself. Tasks must write
 * disjoint data and not depend on their order: the kernels split work so that
 * every result is computed by the same operations whatever thread runs it, so
 * results do not depend on the thread count. */
enum { RT_MAX_THREADS = 64, RT_SPIN = 1 << 16, RT_WORKER_STACK = 4 << 20 };

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t worker[RT_MAX_THREADS];
    int64_t nworkers;
    uint64_t generation; /* atomic: bumped for every job and for stop */
    int64_t busy;        /* atomic: a job is in flight */
    int64_t stop;
    void (*task)(void *ctx, int64_t i);
    void *ctx;
    int64_t ntasks;
    int64_t next;     /* atomic: the next task to claim */
    int64_t finished; /* atomic: workers done with this job */
} rt_pool_state;

static rt_pool_state rt_pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static inline void rt_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void rt_pool_claim(void) {
    for (;;) {
        int64_t i = __atomic_fetch_add(&rt_pool.next, 1, __ATOMIC_RELAXED);
        if (i >= rt_pool.ntasks)
            return;
        rt_pool.task(rt_pool.ctx, i);
    }
}

static void *rt_pool_worker(void *arg) {
    (void)arg;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = __atomic_load_n(&rt_pool.generation, __ATOMIC_ACQUIRE);
        for (int64_t s = 0; gen == seen && s < RT_SPIN; s++) {
            rt_cpu_relax();
            gen = __atomic_load_n(&rt_pool.generation, __ATOMIC_ACQUIRE);
        }
        if (gen == seen) {
            pthread_mutex_lock(&rt_pool.mu);
            while ((gen = __atomic_load_n(&rt_pool.generation, __ATOMIC_ACQUIRE)) == seen)
                pthread_cond_wait(&rt_pool.wake, &rt_pool.mu);
            pthread_mutex_unlock(&rt_pool.mu);
        }
        seen = gen;
        if (rt_pool.stop)
            return NULL;
        rt_pool_claim();
        __atomic_fetch_add(&rt_pool.finished, 1, __ATOMIC_RELEASE);
    }
}

static void rt_pool_publish(void) {
    pthread_mutex_lock(&rt_pool.mu);
    __atomic_fetch_add(&rt_pool.generation, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&rt_pool.wake);
    pthread_mutex_unlock(&rt_pool.mu);
}

int64_t rt_pool_threads(void) { return rt_pool.nworkers + 1; }

void rt_pool_stop(void) {
    if (!rt_pool.nworkers)
        return;
    rt_pool.stop = 1;
    rt_pool_publish();
    for (int64_t w = 0; w < rt_pool.nworkers; w++)
        pthread_join(rt_pool.worker[w], NULL);
    rt_pool.nworkers = 0;
    rt_pool.stop = 0;
}

int64_t rt_pool_start(int64_t nthreads) {
    if (nthreads <= 0) {
        const char *env = getenv("FROST_NUM_THREADS");
        nthreads = env && *env ? atol(env) : 0;
        if (nthreads <= 0)
            nthreads = sysconf(_SC_NPROCESSORS_ONLN);
    }
    nthreads = nthreads < 1 ? 1 : nthreads > RT_MAX_THREADS ? RT_MAX_THREADS : nthreads;
    if (nthreads == rt_pool.nworkers + 1)
        return nthreads;
    rt_pool_stop();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, RT_WORKER_STACK);
    while (rt_pool.nworkers < nthreads - 1 &&
           !pthread_create(&rt_pool.worker[rt_pool.nworkers], &attr, rt_pool_worker, NULL))
        rt_pool.nworkers++;
    pthread_attr_destroy(&attr);
    return rt_pool.nworkers + 1;
}

void rt_parallel(void (*task)(void *ctx, int64_t i), void *ctx, int64_t ntasks) {
    int64_t idle = 0;
    if (ntasks <= 1 || !rt_pool.nworkers ||
        !__atomic_compare_exchange_n(&rt_pool.busy, &idle, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        for (int64_t i = 0; i < ntasks; i++)
            task(ctx, i);
        return;
    }
    rt_pool.task = task;
    rt_pool.ctx = ctx;
    rt_pool.ntasks = ntasks;
    __atomic_store_n(&rt_pool.next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&rt_pool.finished, 0, __ATOMIC_RELAXED);
    rt_pool_publish();
    rt_pool_claim();
    while (__atomic_load_n(&rt_pool.finished, __ATOMIC_ACQUIRE) < rt_pool.nworkers)
        rt_cpu_relax();
    __atomic_store_n(&rt_pool.busy, 0, __ATOMIC_RELEASE);
}

/* Kernels whose items (channels, rows, elements) are independent run fn(args,
 * lo, hi) over ranges of [0, n) across the pool. Each item is computed by
 * the same code whatever range holds it, so results do not depend on the
 * thread count. A task gets at least RT_RANGE_GRAIN floats of traffic (`cost`
 * per item) so that small kernels stay on the caller's thread; ranges start at
 * multiples of `align` items (bit masks pack 8 elements a byte). */
enum { RT_RANGE_GRAIN = 1 << 14 };

typedef void rt_range_fn(const void *args, int64_t lo, int64_t hi);

typedef struct {
    rt_range_fn *fn;
    const void *args;
    int64_t n, per;
} rt_range_job;

static void rt_range_task(void *ctx, int64_t t) {
    const rt_range_job *j = ctx;
    int64_t lo = t * j->per, hi = lo + j->per < j->n ? lo + j->per : j->n;
    j->fn(j->args, lo, hi);
}

static void rt_parallel_ranges(rt_range_fn *fn, const void *args, int64_t n, int64_t cost, int64_t align) {
    if (n <= 0)
        return;
    int64_t threads = rt_pool_threads(), work = n * (cost > 0 ? cost : 1);
    int64_t tasks = work / RT_RANGE_GRAIN, most = threads > 1 ? 4 * threads : 1;
    tasks = tasks > most ? most : tasks;
    tasks = tasks > n / align ? n / align : tasks;
    if (tasks <= 1) {
        fn(args, 0, n);
        return;
    }
    int64_t per = (n + tasks - 1) / tasks;
    per = (per + align - 1) / align * align;
    rt_range_job j = {fn, args, n, per};
    rt_parallel(rt_range_task, &j, (n + per - 1) / per);
}

/* [*lo, *hi): the outputs o in [0, n_out) whose input o*s + off lies in [0, lim). */
static inline void rt_tap_range(int64_t off, int64_t s, int64_t lim, int64_t n_out, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (s - 1 - off) / s;
    int64_t h = lim > off ? (lim - off + s - 1) / s : 0;
    if (h > n_out)
        h = n_out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* ---------------------------------------------------------------- GEMM
 *
 * frost's own SGEMM, after BLIS's design: C is cut into blocks of RT_MC rows
 * (and, when there are few, column chunks) that the pool's threads take as
 * tasks. For each RT_KC-deep slice of the product a task packs its rows of
 * op(A) into MR-row panels (MR floats per k, zero-padded), and then, one
 * NR-column panel of op(B) at a time, packs that panel (NR floats per k) and
 * sweeps the row panels with a micro-kernel that keeps an MR x NR tile of C in
 * registers: per k, NR/W vector loads of B, MR broadcasts of A and MR*NR/W
 * FMAs. The B panel stays in L1, the packed A block in L2. Both buffers are on
 * the stack (RT_GEMM_STACK bytes at most; the pool's workers get 4 MiB).
 *
 * Two micro-kernels, written once with vector types: 12 x 32 in 512-bit
 * vectors (24 accumulators of AVX-512's 32 registers) and 6 x 16 in 256-bit
 * ones (12 of AVX2's 16); codegen tells rt_cfg_wide() which the target has.
 * Each element of C is the same sequence of FMAs whatever the blocking of the
 * threads, so results do not depend on the thread count. */
/* RT_KC: the B panel (32 x kc) and an A panel (12 x kc) of the 512-bit
 * micro-kernel fit L1 together (33 of 48 KiB); the 256-bit one takes the same
 * slices, so that both give the same bits. */
enum { RT_MC = 144, RT_KC = 192, RT_NR_MAX = 32 };
/* bytes: the packed blocks and tile, and an im2col panel's index tables and transposition rows */
enum { RT_GEMM_STACK = (RT_MC * RT_KC + RT_KC * RT_NR_MAX + 12 * RT_NR_MAX + 8 * RT_KC) * 4 + 2 * 3 * RT_KC * 8 };

typedef float rt_v16 __attribute__((vector_size(64)));
typedef float rt_v8 __attribute__((vector_size(32)));

#if defined(__clang__)
#define RT_WIDE_VECTORS __attribute__((min_vector_width(512)))
#else
#define RT_WIDE_VECTORS
#endif

/* C tile (ldc) = acc (mode 0), += acc (1), beta C + acc (2) */
#define RT_UKERNEL(name, vec, W, MR, NV)                                                             \
    RT_WIDE_VECTORS static void name(int64_t kc, const float *restrict ap, const float *restrict bp, \
                                     float *restrict c, int64_t ldc, int64_t mode, float beta) {     \
        vec acc[MR][NV];                                                                             \
        for (int r = 0; r < MR; r++)                                                                 \
            for (int v = 0; v < NV; v++)                                                             \
                acc[r][v] = (vec){0};                                                                \
        for (int64_t p = 0; p < kc; p++) {                                                           \
            vec b[NV];                                                                               \
            for (int v = 0; v < NV; v++)                                                             \
                memcpy(&b[v], bp + p * (W * NV) + v * W, sizeof(vec));                               \
            for (int r = 0; r < MR; r++) {                                                           \
                float a = ap[p * MR + r];                                                            \
                for (int v = 0; v < NV; v++)                                                         \
                    acc[r][v] += b[v] * a;                                                           \
            }                                                                                        \
        }                                                                                            \
        for (int r = 0; r < MR; r++)                                                                 \
            for (int v = 0; v < NV; v++) {                                                           \
                float *cp = c + r * ldc + v * W;                                                     \
                vec old;                                                                             \
                if (mode == 0) {                                                                     \
                    memcpy(cp, &acc[r][v], sizeof(vec));                                             \
                    continue;                                                                        \
                }                                                                                    \
                memcpy(&old, cp, sizeof(vec));                                                       \
                old = mode == 1 ? old + acc[r][v] : old * beta + acc[r][v];                          \
                memcpy(cp, &old, sizeof(vec));                                                       \
            }                                                                                        \
    }

RT_UKERNEL(rt_ukernel_12x32, rt_v16, 16, 12, 2)
RT_UKERNEL(rt_ukernel_6x16, rt_v8, 8, 6, 2)

/* The im2col matrix of a convolution's input, read in place by the packing
 * (implicit GEMM: the columns are never written out). Row (c, ky, kx),
 * column (image, oy, ox) holds x[image, c, oy*s + ky*d - p, ox*s + kx*d - p],
 * 0 where that falls outside the plane. */
typedef struct {
    const float *x;       /* image 0, first channel of the group */
    int64_t image_stride; /* floats between images */
    int64_t H, W, k, s, p, d;
    int64_t OH, OW, OHW; /* the output plane */
} rt_im2col_view;

/* Beyond plain row-major operands, for convolutions on NCHW data:
 *  - columns in groups: column j of a row of op(A) (ta = 0) or of C lives
 *    at (j / group) * group_stride + j % group from the row's start, so that
 *    a batch of planes [N][channels][pixels] is the matrix [channels,
 *    N*pixels]. Plain: a_group = k, c_group = n.
 *  - a_flip taps: op(A)[i][o*taps + t] = a[(o*m + i)*taps + taps-1-t], a
 *    convolution's weights [Kg, m, k, k] transposed and rotated by 180
 *    degrees: d x of a stride-1 conv is the conv of d y with those.
 *  - bcols: op(B) is an im2col matrix (tb = 0) or its transpose (tb = 1). */
typedef struct {
    int64_t ta, tb, m, n, k, lda, ldb, ldc, wide;
    const float *a, *b;
    float *c;
    float beta;
    int64_t nchunks, chunk; /* column chunks per row block, and their width */
    int64_t a_group, a_group_stride, c_group, c_group_stride, a_flip;
    const rt_im2col_view *bcols;
} rt_gemm_job;

/* Rows [i0, i0+mc) and depth [p0, p0+kc) of op(A), as MR-row panels. */
static void rt_pack_a(const rt_gemm_job *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int64_t mr,
                      float *restrict dst) {
    for (int64_t ir = 0; ir < mc; ir += mr, dst += mr * kc) {
        int64_t rows = mc - ir < mr ? mc - ir : mr;
        if (g->a_flip) { /* per row, each output channel's taps are contiguous, reversed */
            const int64_t taps = g->a_flip, o0 = p0 / taps, t0 = p0 % taps;
            for (int64_t r = 0; r < mr; r++) {
                if (r >= rows) {
                    for (int64_t p = 0; p < kc; p++)
                        dst[p * mr + r] = 0.0f;
                    continue;
                }
                for (int64_t p = 0, o = o0, t = t0; p < kc; o++, t = 0) {
                    const float *src = g->a + (o * g->m + i0 + ir + r) * taps + taps - 1;
                    for (; t < taps && p < kc; t++, p++)
                        dst[p * mr + r] = src[-t];
                }
            }
            continue;
        }
        if (g->ta) { /* op(A) rows are A's columns: mr contiguous floats per k */
            for (int64_t p = 0; p < kc; p++) {
                const float *src = g->a + (p0 + p) * g->lda + i0 + ir;
                for (int64_t r = 0; r < mr; r++)
                    dst[p * mr + r] = r < rows ? src[r] : 0.0f;
            }
            continue;
        }
        for (int64_t r = 0; r < mr; r++) {
            const float *row = g->a + (i0 + ir + r) * g->lda;
            for (int64_t p = 0; p < kc;) { /* a run within one column group at a time */
                const int64_t j = p0 + p, off = j % g->a_group;
                const int64_t len = g->a_group - off < kc - p ? g->a_group - off : kc - p;
                const float *src = row + j / g->a_group * g->a_group_stride + off;
                for (int64_t u = 0; u < len; u++)
                    dst[(p + u) * mr + r] = r < rows ? src[u] : 0.0f;
                p += len;
            }
        }
    }
}

/* Where pixels and taps of an im2col view read x: element (tap, pixel) is
 * x[pixel.off + tap.off] when pixel.y + tap.y lies in [0, H) and pixel.x +
 * tap.x in [0, W), else 0. A pixel's (y, x) is its window's top left corner,
 * (oy*s - p, ox*s - p); a tap's, its offset in the window, (ky*d, kx*d). */
typedef struct {
    int64_t off[RT_KC], y[RT_KC], x[RT_KC];
} rt_cols_index;

/* pixels [j, j+n) of the view into ix[0, n), and [n, pad) as never valid */
static void rt_cols_pixels(const rt_im2col_view *v, int64_t j, int64_t n, int64_t pad, rt_cols_index *ix) {
    int64_t image = j / v->OHW, q = j % v->OHW, oy = q / v->OW, ox = q % v->OW;
    for (int64_t u = 0; u < n; u++) {
        const int64_t y = oy * v->s - v->p, x = ox * v->s - v->p;
        ix->off[u] = image * v->image_stride + y * v->W + x;
        ix->y[u] = y;
        ix->x[u] = x;
        if (++ox == v->OW) { /* the next output row, or image */
            ox = 0;
            if (++oy == v->OH) {
                oy = 0;
                image++;
            }
        }
    }
    for (int64_t u = n; u < pad; u++) {
        ix->off[u] = 0;
        ix->y[u] = -v->H - 1 - v->k * v->d; /* below any tap's reach */
        ix->x[u] = 0;
    }
}

/* taps [t, t+n) of the view: rows (c, ky, kx) of its im2col matrix */
static void rt_cols_taps(const rt_im2col_view *v, int64_t t, int64_t n, rt_cols_index *ix) {
    const int64_t kk = v->k * v->k;
    int64_t c = t / kk, ky = t % kk / v->k, kx = t % v->k;
    for (int64_t u = 0; u < n; u++) {
        ix->off[u] = c * v->H * v->W + ky * v->d * v->W + kx * v->d;
        ix->y[u] = ky * v->d;
        ix->x[u] = kx * v->d;
        if (++kx == v->k) {
            kx = 0;
            if (++ky == v->k) {
                ky = 0;
                c++;
            }
        }
    }
}

/* dst[p*nr + cc] = element (tap p, pixel cc) of the view for p < kc, cc <
 * nr: one masked gather per row of the packed panel, whatever the plane's
 * width or padding, so that it vectorises (where the plane's rows are short
 * and the copies of rt_cols_copy would be a few floats each). */
static void rt_cols_gather(const rt_im2col_view *v, const rt_cols_index *taps, const rt_cols_index *pixels, int64_t kc,
                           int64_t nr, float *restrict dst) {
    const float *restrict x = v->x;
    const uint64_t H = (uint64_t)v->H, W = (uint64_t)v->W;
    for (int64_t p = 0; p < kc; p++) {
        const int64_t to = taps->off[p], ty = taps->y[p], tx = taps->x[p];
        float *restrict d = dst + p * nr;
        for (int64_t cc = 0; cc < nr; cc++) {
            const int ok = (uint64_t)(ty + pixels->y[cc]) < H && (uint64_t)(tx + pixels->x[cc]) < W;
            d[cc] = ok ? x[to + pixels->off[cc]] : 0.0f;
        }
    }
}

/* The copy path of an im2col view for stride 1 and output rows at least
 * RT_COPY_MIN_OW wide: a range of pixels is then a few runs along one output
 * row each, and a tap of a run is a contiguous piece of an input row with
 * zeros at the padding, copied rather than gathered. */
enum { RT_COPY_MIN_OW = 16, RT_RUNS_MAX = RT_KC / RT_COPY_MIN_OW + 2 };

static int rt_cols_copyable(const rt_im2col_view *v) { return v->s == 1 && v->OW >= RT_COPY_MIN_OW; }

/* pixels [at, at+len) of a range: one output row of one image; y, x: its
 * first window's top left corner */
typedef struct {
    int64_t at, len, y, x;
    const float *image;
} rt_pixel_run;

/* The runs of pixels [j, j+n) (n <= RT_KC) of a copyable view; their count. */
static int64_t rt_pixel_runs(const rt_im2col_view *v, int64_t j, int64_t n, rt_pixel_run *runs) {
    int64_t nruns = 0;
    for (int64_t at = 0; at < n;) {
        const int64_t q = (j + at) % v->OHW, oy = q / v->OW, ox = q % v->OW;
        const int64_t len = v->OW - ox < n - at ? v->OW - ox : n - at;
        runs[nruns++] = (rt_pixel_run){at, len, oy - v->p, ox - v->p, v->x + (j + at) / v->OHW * v->image_stride};
        at += len;
    }
    return nruns;
}

/* out[u] for u < r->len = element (tap, pixel r->at + u): taps->off[t]
 * etc. of tap t, rt_cols_taps */
static inline void rt_run_copy(const rt_im2col_view *v, const rt_pixel_run *r, const rt_cols_index *taps, int64_t t,
                               float *restrict out) {
    const int64_t iy = r->y + taps->y[t], ix = r->x + taps->x[t], len = r->len;
    int64_t lo = ix < 0 ? -ix : 0, hi = v->W - ix < len ? v->W - ix : len;
    if (iy < 0 || iy >= v->H || hi <= lo)
        lo = hi = 0;
    for (int64_t u = 0; u < lo; u++)
        out[u] = 0.0f;
    if (hi > lo)
        memcpy(out + lo, r->image + taps->off[t] + r->y * v->W + r->x + lo, (size_t)(hi - lo) * sizeof(float));
    for (int64_t u = hi > lo ? hi : 0; u < len; u++)
        out[u] = 0.0f;
}

/* The B panel of an im2col view: taps [p0, p0+kc) by pixels [j0, j0+cols) */
static void rt_cols_pack(const rt_im2col_view *v, int64_t j0, int64_t cols, int64_t p0, int64_t kc, int64_t nr,
                         float *restrict dst) {
    rt_cols_index taps;
    rt_cols_taps(v, p0, kc, &taps);
    if (rt_cols_copyable(v)) {
        rt_pixel_run runs[RT_RUNS_MAX];
        const int64_t nruns = rt_pixel_runs(v, j0, cols, runs);
        for (int64_t p = 0; p < kc; p++) {
            for (int64_t r = 0; r < nruns; r++)
                rt_run_copy(v, &runs[r], &taps, p, dst + p * nr + runs[r].at);
            for (int64_t cc = cols; cc < nr; cc++)
                dst[p * nr + cc] = 0.0f;
        }
        return;
    }
    rt_cols_index pixels;
    rt_cols_pixels(v, j0, cols, nr, &pixels);
    rt_cols_gather(v, &taps, &pixels, kc, nr, dst);
}

/* dst[p*ldd + t] = src[t*lds + p] for t < 8, p < kc: 8 x 8 blocks
 * transposed in registers (unpacks, then pairs, then halves). */
static void rt_transpose_8(const float *restrict src, int64_t lds, int64_t kc, float *restrict dst, int64_t ldd) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        rt_v8 r[8], t[8], s[8], o[8];
        for (int i = 0; i < 8; i++)
            memcpy(&r[i], src + i * lds + p, sizeof(rt_v8));
        for (int i = 0; i < 8; i += 2) {
            t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
            t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
        }
        for (int i = 0; i < 8; i += 4)
            for (int h = 0; h < 2; h++) {
                s[i + 2 * h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
                s[i + 2 * h + 1] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
            }
        for (int i = 0; i < 4; i++) {
            o[i] = __builtin_shufflevector(s[i], s[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
            o[i + 4] = __builtin_shufflevector(s[i], s[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        }
        for (int i = 0; i < 8; i++)
            memcpy(dst + (p + i) * ldd, &o[i], sizeof(rt_v8));
    }
    for (; p < kc; p++)
        for (int i = 0; i < 8; i++)
            dst[p * ldd + i] = src[i * lds + p];
}

/* The B panel of a transposed im2col view: pixels [p0, p0+kc) by taps [j0,
 * j0+cols). Eight taps at a time go as rows (copied or gathered, pixels
 * contiguous) into a buffer, and the buffer is transposed into the panel. */
static void rt_cols_pack_transposed(const rt_im2col_view *v, int64_t j0, int64_t cols, int64_t p0, int64_t kc,
                                    int64_t nr, float *restrict dst) {
    _Alignas(64) float rows[8 * RT_KC];
    rt_cols_index taps, pixels;
    rt_pixel_run runs[RT_RUNS_MAX];
    const int copy = rt_cols_copyable(v);
    const int64_t nruns = copy ? rt_pixel_runs(v, p0, kc, runs) : 0;
    if (!copy)
        rt_cols_pixels(v, p0, kc, kc, &pixels);
    rt_cols_taps(v, j0, cols, &taps);
    const uint64_t H = (uint64_t)v->H, W = (uint64_t)v->W;
    for (int64_t c0 = 0; c0 < nr; c0 += 8) {
        for (int64_t t = 0; t < 8; t++) {
            float *restrict row = rows + t * RT_KC;
            const int64_t cc = c0 + t;
            if (cc >= cols) {
                memset(row, 0, (size_t)kc * sizeof(float));
            } else if (copy) {
                for (int64_t r = 0; r < nruns; r++)
                    rt_run_copy(v, &runs[r], &taps, cc, row + runs[r].at);
            } else {
                const int64_t to = taps.off[cc], ty = taps.y[cc], tx = taps.x[cc];
                for (int64_t p = 0; p < kc; p++) {
                    const int ok = (uint64_t)(ty + pixels.y[p]) < H && (uint64_t)(tx + pixels.x[p]) < W;
                    row[p] = ok ? v->x[to + pixels.off[p]] : 0.0f;
                }
            }
        }
        rt_transpose_8(rows, RT_KC, kc, dst + c0, nr);
    }
}

/* Columns [j0, j0+nr) (fewer at the edge: zeros) and depth [p0, p0+kc) of op(B). */
static void rt_pack_b(const rt_gemm_job *g, int64_t j0, int64_t cols, int64_t p0, int64_t kc, int64_t nr,
                      float *restrict dst) {
    const rt_im2col_view *v = g->bcols;
    if (v && g->tb) /* columns are taps, depth the output pixels */
        rt_cols_pack_transposed(v, j0, cols, p0, kc, nr, dst);
    else if (v) /* columns are output pixels, depth the taps */
        rt_cols_pack(v, j0, cols, p0, kc, nr, dst);
    if (v)
        return;
    if (g->tb) {
        for (int64_t cc = 0; cc < nr; cc++) {
            const float *src = g->b + (j0 + cc) * g->ldb + p0;
            for (int64_t p = 0; p < kc; p++)
                dst[p * nr + cc] = cc < cols ? src[p] : 0.0f;
        }
        return;
    }
    for (int64_t p = 0; p < kc; p++) {
        const float *src = g->b + (p0 + p) * g->ldb + j0;
        for (int64_t cc = 0; cc < nr; cc++)
            dst[p * nr + cc] = cc < cols ? src[cc] : 0.0f;
    }
}

/* Column j of row 0 of C */
static inline float *rt_c_column(const rt_gemm_job *g, int64_t j) {
    return g->c + j / g->c_group * g->c_group_stride + j % g->c_group;
}

/* Copy rows x cols of C at (i, j0) to or from a tile with rows nr apart,
 * one column group's run at a time. */
static void rt_c_tile(const rt_gemm_job *g, int64_t i, int64_t j0, int64_t rows, int64_t cols, float *tile, int64_t nr,
                      int to_tile) {
    for (int64_t cc = 0; cc < cols;) {
        const int64_t j = j0 + cc, off = j % g->c_group;
        const int64_t len = g->c_group - off < cols - cc ? g->c_group - off : cols - cc;
        float *column = rt_c_column(g, j) + i * g->ldc;
        for (int64_t r = 0; r < rows; r++) {
            if (to_tile)
                memcpy(tile + r * nr + cc, column + r * g->ldc, (size_t)len * sizeof(float));
            else
                memcpy(column + r * g->ldc, tile + r * nr + cc, (size_t)len * sizeof(float));
        }
        cc += len;
    }
}

/* One task: row block t / nchunks, column chunk t % nchunks, all of K. */
static void rt_gemm_task(void *ctx, int64_t t) {
    const rt_gemm_job *g = ctx;
    int64_t mr = g->wide ? 12 : 6, nr = g->wide ? 32 : 16;
    int64_t i0 = (t / g->nchunks) * RT_MC, mc = g->m - i0 < RT_MC ? g->m - i0 : RT_MC;
    int64_t j_begin = (t % g->nchunks) * g->chunk;
    int64_t j_end = j_begin + g->chunk < g->n ? j_begin + g->chunk : g->n;
    _Alignas(64) float apack[RT_MC * RT_KC];
    _Alignas(64) float bpack[RT_KC * RT_NR_MAX];
    _Alignas(64) float tile[12 * RT_NR_MAX];
    for (int64_t p0 = 0; p0 < g->k; p0 += RT_KC) {
        int64_t kc = g->k - p0 < RT_KC ? g->k - p0 : RT_KC;
        int64_t mode = p0 ? 1 : g->beta == 0.0f ? 0 : g->beta == 1.0f ? 1 : 2;
        rt_pack_a(g, i0, mc, p0, kc, mr, apack);
        for (int64_t j0 = j_begin; j0 < j_end; j0 += nr) {
            int64_t cols = j_end - j0 < nr ? j_end - j0 : nr;
            /* a panel that crosses a column group or the edge goes through a tile */
            int whole = cols == nr && j0 % g->c_group + nr <= g->c_group;
            float *panel = rt_c_column(g, j0);
            rt_pack_b(g, j0, cols, p0, kc, nr, bpack);
            for (int64_t ir = 0; ir < mc; ir += mr) {
                int64_t rows = mc - ir < mr ? mc - ir : mr;
                float *dst = panel + (i0 + ir) * g->ldc;
                int64_t ldt = g->ldc;
                int through_tile = !whole || rows < mr;
                if (through_tile) {
                    rt_c_tile(g, i0 + ir, j0, rows, cols, tile, nr, 1);
                    dst = tile;
                    ldt = nr;
                }
                if (g->wide)
                    rt_ukernel_12x32(kc, apack + ir * kc, bpack, dst, ldt, mode, g->beta);
                else
                    rt_ukernel_6x16(kc, apack + ir * kc, bpack, dst, ldt, mode, g->beta);
                if (through_tile)
                    rt_c_tile(g, i0 + ir, j0, rows, cols, tile, nr, 0);
            }
        }
    }
}

/* Runs job g (m, n, k > 0) on the pool. */
static void rt_gemm_run(rt_gemm_job *g) {
    int64_t nr = g->wide ? 32 : 16;
    g->nchunks = 1;
    g->chunk = g->n;
    /* Enough tasks for every thread: cut the columns when the rows are few. */
    int64_t blocks = (g->m + RT_MC - 1) / RT_MC, want = 4 * rt_pool_threads();
    if (rt_pool_threads() > 1 && blocks < want) {
        int64_t panels = (g->n + nr - 1) / nr, per = (panels * blocks + want - 1) / want;
        per = per < 1 ? 1 : per;
        g->chunk = per * nr;
        g->nchunks = (g->n + g->chunk - 1) / g->chunk;
    }
    rt_parallel(rt_gemm_task, g, blocks * g->nchunks);
}

void rt_sgemm(int64_t ta, int64_t tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
              int64_t ldb, float beta, float *c, int64_t ldc, int64_t wide) {
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    rt_gemm_job g = {.ta = ta,
                     .tb = tb,
                     .m = m,
                     .n = n,
                     .k = k,
                     .lda = lda,
                     .ldb = ldb,
                     .ldc = ldc,
                     .wide = wide,
                     .a = a,
                     .b = b,
                     .c = c,
                     .beta = beta,
                     .a_group = k,
                     .c_group = n};
    rt_gemm_run(&g);
}

/* C[m,n] = op(A) op(B) + beta C, row-major: frost's GEMM or OpenBLAS's, as
 * the object was compiled (--gemm). Degenerate sizes are handled here
 * because BLAS rejects leading dimensions of 0 (and would print about it). */
static void rt_gemm(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        if (beta == 0.0f)
            memset(c, 0, (size_t)(m * n) * sizeof(float));
        return;
    }
    if (rt_cfg_gemm() == RT_GEMM_FROST) {
        rt_sgemm(ta == CblasTrans, tb == CblasTrans, m, n, k, a, lda, b, ldb, beta, c, ldc, rt_cfg_wide());
        return;
    }
    cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, 1.0f, a, (blasint)lda, b, (blasint)ldb, beta,
                c, (blasint)ldc);
}

void rt_linear_fwd(const float *restrict x, const float *restrict w, const float *restrict b, float *restrict y,
                   int64_t M, int64_t K, int64_t N) {
    float beta = 0.0f;
    if (b) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                y[i * N + j] = b[j];
        beta = 1.0f;
    }
    rt_gemm(CblasNoTrans, CblasTrans, M, N, K, x, K, w, K, beta, y, N);
}

void rt_linear_bwd_x(const float *restrict dy, const float *restrict w, float *restrict dx, int64_t M, int64_t K,
                     int64_t N, int64_t acc) {
    rt_gemm(CblasNoTrans, CblasNoTrans, M, K, N, dy, N, w, K, acc ? 1.0f : 0.0f, dx, K);
}

void rt_linear_bwd_w(const float *restrict dy, const float *restrict x, float *restrict dw, int64_t M, int64_t K,
                     int64_t N, int64_t acc) {
    rt_gemm(CblasTrans, CblasNoTrans, N, K, M, dy, N, x, K, acc ? 1.0f : 0.0f, dw, K);
}

void rt_sum_rows(const float *restrict dy, float *restrict db, int64_t M, int64_t N, int64_t acc) {
    if (!acc)
        for (int64_t j = 0; j < N; j++)
            db[j] = 0.0f;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            db[j] += dy[i * N + j];
}

void rt_linear_in_out_fwd(const float *restrict x, const float *restrict w, const float *restrict b, float *restrict y,
                          int64_t M, int64_t K, int64_t N) {
    float beta = 0.0f;
    if (b) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                y[i * N + j] = b[j];
        beta = 1.0f;
    }
    rt_gemm(CblasNoTrans, CblasNoTrans, M, N, K, x, K, w, N, beta, y, N);
}

void rt_matmul_fwd(const float *restrict a, const float *restrict b, float *restrict c, int64_t M, int64_t K,
                   int64_t N) {
    rt_gemm(CblasNoTrans, CblasNoTrans, M, N, K, a, K, b, N, 0.0f, c, N);
}

void rt_matmul_bwd_a(const float *restrict dc, const float *restrict b, float *restrict da, int64_t M, int64_t K,
                     int64_t N, int64_t acc) {
    rt_gemm(CblasNoTrans, CblasTrans, M, K, N, dc, N, b, N, acc ? 1.0f : 0.0f, da, K);
}

void rt_matmul_bwd_b(const float *restrict a, const float *restrict dc, float *restrict db, int64_t M, int64_t K,
                     int64_t N, int64_t acc) {
    rt_gemm(CblasTrans, CblasNoTrans, K, N, M, a, K, dc, N, acc ? 1.0f : 0.0f, db, N);
}

/* ---------------------------------------------------------------- batched matmul */

enum { RT_BATCH_DIMS = 4 };

/* The batches of a batched matmul: their dims, and each operand's strides
 * between its matrices (0 along the dims it repeats). */
typedef struct {
    int64_t n[RT_BATCH_DIMS], sa[RT_BATCH_DIMS], sb[RT_BATCH_DIMS];
    int64_t count;
} rt_batches;

/* Row-major strides of an operand of `matrix` floats per batch, repeated
 * along the dims of rep. */
static void rt_batch_strides(const int64_t *n, int64_t rep, int64_t matrix, int64_t *stride) {
    for (int k = RT_BATCH_DIMS - 1; k >= 0; k--) {
        int repeated = (rep >> k) & 1;
        stride[k] = repeated ? 0 : matrix;
        matrix *= repeated ? 1 : n[k];
    }
}

static rt_batches rt_batches_of(int64_t n0, int64_t n1, int64_t n2, int64_t n3, int64_t a_rep, int64_t b_rep, int64_t M,
                                int64_t K, int64_t N) {
    rt_batches t = {.n = {n0, n1, n2, n3}, .count = n0 * n1 * n2 * n3};
    rt_batch_strides(t.n, a_rep, M * K, t.sa);
    rt_batch_strides(t.n, b_rep, K * N, t.sb);
    return t;
}

/* Batch number `at` (row-major over n[]) as its indices. */
static void rt_batch_index(const rt_batches *t, int64_t at, int64_t *i) {
    for (int k = RT_BATCH_DIMS - 1; k >= 0; k--) {
        i[k] = at % t->n[k];
        at /= t->n[k];
    }
}

static int64_t rt_batch_offset(const int64_t *i, const int64_t *stride) {
    return i[0] * stride[0] + i[1] * stride[1] + i[2] * stride[2] + i[3] * stride[3];
}

/* Whether batch i comes after the first, in row-major order, of the batches
 * that share one matrix of an operand repeated along the dims of rep (they
 * differ only along those dims): then its gradient adds to what that first
 * batch wrote, with no zeroing pass and no scratch. */
static int rt_batch_repeats(const int64_t *i, int64_t rep) {
    for (int k = 0; k < RT_BATCH_DIMS; k++)
        if ((rep >> k) & 1 && i[k] > 0)
            return 1;
    return 0;
}

void rt_batched_matmul_fwd(const float *restrict a, const float *restrict b, float *restrict c, int64_t n0, int64_t n1,
                           int64_t n2, int64_t n3, int64_t a_rep, int64_t b_rep, int64_t M, int64_t K, int64_t N) {
    const rt_batches t = rt_batches_of(n0, n1, n2, n3, a_rep, b_rep, M, K, N);
    for (int64_t at = 0; at < t.count; at++) {
        int64_t i[RT_BATCH_DIMS];
        rt_batch_index(&t, at, i);
        rt_gemm(CblasNoTrans, CblasNoTrans, M, N, K, a + rt_batch_offset(i, t.sa), K, b + rt_batch_offset(i, t.sb), N,
                0.0f, c + at * M * N, N);
    }
}

void rt_batched_matmul_bwd_a(const float *restrict dc, const float *restrict b, float *restrict da, int64_t n0,
                             int64_t n1, int64_t n2, int64_t n3, int64_t a_rep, int64_t b_rep, int64_t M, int64_t K,
                             int64_t N, int64_t acc) {
    const rt_batches t = rt_batches_of(n0, n1, n2, n3, a_rep, b_rep, M, K, N);
    for (int64_t at = 0; at < t.count; at++) {
        int64_t i[RT_BATCH_DIMS];
        rt_batch_index(&t, at, i);
        float beta = acc || rt_batch_repeats(i, a_rep) ? 1.0f : 0.0f;
        rt_gemm(CblasNoTrans, CblasTrans, M, K, N, dc + at * M * N, N, b + rt_batch_offset(i, t.sb), N, beta,
                da + rt_batch_offset(i, t.sa), K);
    }
}

void rt_batched_matmul_bwd_b(const float *restrict a, const float *restrict dc, float *restrict db, int64_t n0,
                             int64_t n1, int64_t n2, int64_t n3, int64_t a_rep, int64_t b_rep, int64_t M, int64_t K,
                             int64_t N, int64_t acc) {
    const rt_batches t = rt_batches_of(n0, n1, n2, n3, a_rep, b_rep, M, K, N);
    for (int64_t at = 0; at < t.count; at++) {
        int64_t i[RT_BATCH_DIMS];
        rt_batch_index(&t, at, i);
        float beta = acc || rt_batch_repeats(i, b_rep) ? 1.0f : 0.0f;
        rt_gemm(CblasTrans, CblasNoTrans, K, N, M, a + rt_batch_offset(i, t.sa), K, dc + at * M * N, N, beta,
                db + rt_batch_offset(i, t.sb), N);
    }
}

/* ---------------------------------------------------------------- relu */

RT_ELEMENTWISE void rt_relu_body(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

/* The arguments of the element-wise kernels, for their ranges (x may be y) */
typedef struct {
    const float *x, *dy;
    const uint8_t *bits;
    float *y; /* y, or dx */
    uint8_t *mask;
    int64_t acc, tanh;
} rt_map_args;

static void rt_relu_fwd_range(const void *args, int64_t lo, int64_t hi) {
    const rt_map_args *a = args;
    if (a->x == a->y)
        rt_relu_body(a->y + lo, a->y + lo, hi - lo);
    else
        rt_relu_body(a->x + lo, a->y + lo, hi - lo);
}

void rt_relu_fwd(const float *x, float *y, int64_t n) {
    rt_parallel_ranges(rt_relu_fwd_range, &(rt_map_args){.x = x, .y = y}, n, 2, 1);
}

/* elements [lo, hi), lo a multiple of 8 */
static void rt_sign_mask_range(const void *args, int64_t lo, int64_t hi) {
    const rt_map_args *a = args;
    const float *restrict y = a->x;
    uint8_t *restrict bits = a->mask;
    for (int64_t b = lo / 8; b * 8 < hi; b++) {
        unsigned v = 0;
        for (int64_t j = 0; j < 8 && b * 8 + j < hi; j++)
            v |= (unsigned)(y[b * 8 + j] > 0.0f) << j;
        bits[b] = (uint8_t)v;
    }
}

void rt_sign_mask(const float *restrict y, uint8_t *restrict bits, int64_t n) {
    rt_parallel_ranges(rt_sign_mask_range, &(rt_map_args){.x = y, .mask = bits}, n, 1, 8);
}

static void rt_relu_bwd_out_range(const void *args, int64_t lo, int64_t hi) {
    const rt_map_args *a = args;
    const float *restrict y = a->x, *restrict dy = a->dy;
    float *restrict dx = a->y;
    if (a->acc) {
        for (int64_t i = lo; i < hi; i++)
            dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    } else {
        for (int64_t i = lo; i < hi; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

void rt_relu_bwd_out(const float *restrict y, const float *restrict dy, float *restrict dx, int64_t n, int64_t acc) {
    rt_parallel_ranges(rt_relu_bwd_out_range, &(rt_map_args){.x = y, .dy = dy, .y = dx, .acc = acc}, n, 3, 1);
}

/* elements [lo, hi), lo a multiple of 8: a byte of the mask at a time (its
 * eight selects vectorise), then the tail */
static void rt_relu_bwd_mask_range(const void *args, int64_t lo, int64_t hi) {
    const rt_map_args *a = args;
    const uint8_t *restrict bits = a->bits;
    const float *restrict dy = a->dy;
    float *restrict dx = a->y;
    const int64_t whole = lo + (hi - lo) / 8 * 8;
    for (int64_t i = lo; i < whole; i += 8) {
        const unsigned m = bits[i >> 3];
        if (a->acc) {
            for (int j = 0; j < 8; j++)
                dx[i + j] += (m >> j) & 1 ? dy[i + j] : 0.0f;
        } else {
            for (int j = 0; j < 8; j++)
                dx[i + j] = (m >> j) & 1 ? dy[i + j] : 0.0f;
        }
    }
    for (int64_t i = whole; i < hi; i++) {
        const float g = (bits[i >> 3] >> (i & 7)) & 1 ? dy[i] : 0.0f;
        dx[i] = a->acc ? dx[i] + g : g;
    }
}

void rt_relu_bwd_mask(const uint8_t *restrict bits, const float *restrict dy, float *restrict dx, int64_t n,
                      int64_t acc) {
    rt_parallel_ranges(rt_relu_bwd_mask_range, &(rt_map_args){.bits = bits, .dy = dy, .y = dx, .acc = acc}, n, 2, 8);
}

/* ---------------------------------------------------------------- sigmoid */

/* 1 / (1 + e^-x) is exact enough in f32 over the whole range: e^-x
 * overflows to inf for x < -88 and the quotient is then 0, never NaN. */
RT_ELEMENTWISE void rt_sigmoid_body(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = 1.0f / (1.0f + rt_exp(-x[i]));
}

void rt_sigmoid_fwd(const float *x, float *y, int64_t n) {
    if (x == y)
        rt_sigmoid_body(y, y, n);
    else
        rt_sigmoid_body(x, y, n);
}

void rt_sigmoid_bwd(const float *restrict y, const float *restrict dy, float *restrict dx, int64_t n, int64_t acc) {
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            dx[i] += dy[i] * y[i] * (1.0f - y[i]);
    } else {
        for (int64_t i = 0; i < n; i++)
            dx[i] = dy[i] * y[i] * (1.0f - y[i]);
    }
}

/* ---------------------------------------------------------------- silu */

/* x / (1 + e^-x): for x < -88 e^-x is inf and y is -0, never NaN; for
 * x = -inf the quotient is -inf / inf, so that end is set apart. */
static inline float rt_silu1(float x) { return x == -INFINITY ? 0.0f : x / (1.0f + rt_exp(-x)); }

RT_ELEMENTWISE void rt_silu_body(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = rt_silu1(x[i]);
}

void rt_silu_fwd(const float *x, float *y, int64_t n) {
    if (x == y)
        rt_silu_body(y, y, n);
    else
        rt_silu_body(x, y, n);
}

static inline float rt_silu_grad(float x) {
    float s = 1.0f / (1.0f + rt_exp(-x));
    return x == -INFINITY || x == INFINITY ? s : s * (1.0f + x * (1.0f - s));
}

void rt_silu_bwd(const float *restrict x, const float *restrict dy, float *restrict dx, int64_t n, int64_t acc) {
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            dx[i] += dy[i] * rt_silu_grad(x[i]);
    } else {
        for (int64_t i = 0; i < n; i++)
            dx[i] = dy[i] * rt_silu_grad(x[i]);
    }
}

/* ---------------------------------------------------------------- gelu */

#define RT_SQRT1_2 0.70710678118654752440f  /* 1 / sqrt 2 */
#define RT_SQRT2_PI 0.79788456080286535588f /* sqrt(2 / pi) */
#define RT_INV_SQRT_2PI 0.39894228040143267794f
#define RT_GELU_C 0.044715f

/* 1 + erf(x) without a call (libm's erff is scalar, and GELU's exact form
 * spends most of its time in it): erfc(|x|) = t e^(-x^2 + P(t)), t = 1 / (1 +
 * |x| / 2), P a degree-9 polynomial fitted by Chebyshev economisation (the
 * classic erfcc approximation, relative error below 1.2e-7 for every x in
 * exact arithmetic; in f32 the rounding of x^2 adds up to 1.6e-6 for
 * x in [-4, 0), where the result is below 2e-8), and 1 + erf(x) =
 * erfc(-x): erfc(|x|) for x < 0, where it is small and must stay accurate
 * relative to itself, 2 - erfc(x) for x >= 0. NaN gives NaN. */
static inline float rt_one_plus_erf(float x) {
    float z = fabsf(x), t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float erfc_z = t * rt_exp(-z * z + p);
    return x < 0.0f ? erfc_z : 2.0f - erfc_z;
}

/* 1 + erf (or 1 + tanh) is 0 at x = -inf and the product 0 * -inf: that
 * end is set apart. The tanh form is computed as x sigmoid(2u), since
 * 1 + tanh(u) = 2 sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): no tanhf
 * call (the loop vectorises with rt_exp) and no cancellation in 1 + tanh for
 * negative x. e^-2u overflows to inf for very negative x (x^3 too), and the
 * quotient is then -0, never NaN. */
static inline float rt_gelu_erf1(float x) { return x == -INFINITY ? 0.0f : 0.5f * x * rt_one_plus_erf(x * RT_SQRT1_2); }

static inline float rt_gelu_tanh1(float x) {
    if (x == -INFINITY)
        return 0.0f;
    return x / (1.0f + rt_exp(-2.0f * RT_SQRT2_PI * (x + RT_GELU_C * x * x * x)));
}

RT_ELEMENTWISE void rt_gelu_body(const float *x, float *y, int64_t n, int64_t tanh) {
    if (tanh) {
        for (int64_t i = 0; i < n; i++)
            y[i] = rt_gelu_tanh1(x[i]);
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] = rt_gelu_erf1(x[i]);
    }
}

static void rt_gelu_fwd_range(const void *args, int64_t lo, int64_t hi) {
    const rt_map_args *a = args;
    if (a->x == a->y)
        rt_gelu_body(a->y + lo, a->y + lo, hi - lo, a->tanh);
    else
        rt_gelu_body(a->x + lo, a->y + lo, hi - lo, a->tanh);
}

void rt_gelu_fwd(const float *x, float *y, int64_t n, int64_t tanh) {
    /* the cost of an element: about 8 floats' worth of traffic */
    rt_parallel_ranges(rt_gelu_fwd_range, &(rt_map_args){.x = x, .y = y, .tanh = tanh}, n, 8, 1);
}

/* Phi(x) + x phi(x); at +-inf the second term is inf * 0, so those ends are
 * the limits 1 and 0. */
static inline float rt_gelu_erf_grad(float x) {
    if (isinf(x))
        return x > 0 ? 1.0f : 0.0f;
    return 0.5f * rt_one_plus_erf(x * RT_SQRT1_2) + x * RT_INV_SQRT_2PI * rt_exp(-0.5f * x * x);
}

static inline float rt_gelu_tanh_grad(float x) {
    if (fabsf(x) > 20.0f) /* t = +-1 exactly in f32 and x^3 may overflow */
        return x > 0 ? 1.0f : 0.0f;
    /* with s = sigmoid(2u): 0.5 (1 + tanh u) = s and 1 - tanh^2 u = 4 s (1 - s) */
    float s = 1.0f / (1.0f + rt_exp(-2.0f * RT_SQRT2_PI * (x + RT_GELU_C * x * x * x)));
    return s + 2.0f * x * s * (1.0f - s) * RT_SQRT2_PI * (1.0f + 3.0f * RT_GELU_C * x * x);
}

static void rt_gelu_bwd_range(const void *args, int64_t lo, int64_t hi) {
    const rt_map_args *a = args;
    const float *restrict x = a->x, *restrict dy = a->dy;
    float *restrict dx = a->y;
    for (int64_t i = lo; i < hi; i++) {
        float g = dy[i] * (a->tanh ? rt_gelu_tanh_grad(x[i]) : rt_gelu_erf_grad(x[i]));
        dx[i] = a->acc ? dx[i] + g : g;
    }
}

void rt_gelu_bwd(const float *restrict x, const float *restrict dy, float *restrict dx, int64_t n, int64_t acc,
                 int64_t tanh) {
    rt_parallel_ranges(rt_gelu_bwd_range, &(rt_map_args){.x = x, .dy = dy, .y = dx, .acc = acc, .tanh = tanh}, n, 12,
                       1);
}

/* ---------------------------------------------------------------- rms_norm */

/* The arguments of the row norms (rms_norm, layer_norm), for their ranges of
 * rows (d/dx, forward) or of columns (d/dw: each column sums the rows in
 * order). */
typedef struct {
    const float *x, *w, *b, *stats, *dy;
    float *y, *out_stats; /* y or dx; rstd, or mean and rstd */
    int64_t rows, D, acc;
    double eps;
} rt_norm_args;

/* d/dw by ranges of at least this many columns (a vector's worth or more) */
enum { RT_NORM_COLS = 16 };

/* The sums over a row are in double, so long rows lose nothing to f32
 * accumulation. */
static void rt_rms_norm_fwd_rows(const void *args, int64_t r0, int64_t r1) {
    const rt_norm_args *a = args;
    const float *restrict x = a->x, *restrict w = a->w;
    float *restrict y = a->y, *restrict rstd = a->out_stats;
    const int64_t D = a->D;
    const double eps = a->eps;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        double ss = 0;
        for (int64_t j = 0; j < D; j++)
            ss += (double)xr[j] * xr[j];
        float rs = (float)(1.0 / sqrt(ss / (double)D + eps));
        if (rstd)
            rstd[r] = rs;
        for (int64_t j = 0; j < D; j++)
            yr[j] = xr[j] * rs * w[j];
    }
}

void rt_rms_norm_fwd(const float *restrict x, const float *restrict w, float *restrict y, float *restrict rstd,
                     int64_t rows, int64_t D, double eps) {
    rt_norm_args a = {.x = x, .w = w, .y = y, .out_stats = rstd, .rows = rows, .D = D, .eps = eps};
    rt_parallel_ranges(rt_rms_norm_fwd_rows, &a, rows, 3 * D, 1);
}

static void rt_rms_norm_bwd_x_rows(const void *args, int64_t r0, int64_t r1) {
    const rt_norm_args *a = args;
    const float *restrict x = a->x, *restrict w = a->w, *restrict rstd = a->stats, *restrict dy = a->dy;
    float *restrict dx = a->y;
    const int64_t D = a->D, acc = a->acc;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * D, *dyr = dy + r * D;
        float *dxr = dx + r * D;
        float rs = rstd[r];
        double dot = 0; /* sum of g * xh */
        for (int64_t j = 0; j < D; j++)
            dot += (double)dyr[j] * w[j] * xr[j] * rs;
        float m = (float)(dot / (double)D);
        for (int64_t j = 0; j < D; j++) {
            float v = rs * (dyr[j] * w[j] - xr[j] * rs * m);
            dxr[j] = acc ? dxr[j] + v : v;
        }
    }
}

void rt_rms_norm_bwd_x(const float *restrict x, const float *restrict w, const float *restrict rstd,
                       const float *restrict dy, float *restrict dx, int64_t rows, int64_t D, int64_t acc) {
    rt_norm_args a = {.x = x, .w = w, .stats = rstd, .dy = dy, .y = dx, .rows = rows, .D = D, .acc = acc};
    rt_parallel_ranges(rt_rms_norm_bwd_x_rows, &a, rows, 4 * D, 1);
}

static void rt_rms_norm_bwd_w_cols(const void *args, int64_t j0, int64_t j1) {
    const rt_norm_args *a = args;
    const float *restrict x = a->x, *restrict rstd = a->stats, *restrict dy = a->dy;
    float *restrict dw = a->y;
    const int64_t D = a->D;
    if (!a->acc)
        memset(dw + j0, 0, sizeof(float) * (size_t)(j1 - j0));
    for (int64_t r = 0; r < a->rows; r++) {
        const float *xr = x + r * D, *dyr = dy + r * D;
        float rs = rstd[r];
        for (int64_t j = j0; j < j1; j++)
            dw[j] += dyr[j] * xr[j] * rs;
    }
}

void rt_rms_norm_bwd_w(const float *restrict x, const float *restrict rstd, const float *restrict dy,
                       float *restrict dw, int64_t rows, int64_t D, int64_t acc) {
    rt_norm_args a = {.x = x, .stats = rstd, .dy = dy, .y = dw, .rows = rows, .D = D, .acc = acc};
    rt_parallel_ranges(rt_rms_norm_bwd_w_cols, &a, D, 2 * rows, RT_NORM_COLS);
}

/* ---------------------------------------------------------------- layer_norm */

/* Two passes over each row (mean, then the centred sum of squares), in
 * double. */
static void rt_layer_norm_fwd_rows(const void *args, int64_t r0, int64_t r1) {
    const rt_norm_args *a = args;
    const float *restrict x = a->x, *restrict w = a->w, *restrict b = a->b;
    float *restrict y = a->y, *restrict stats = a->out_stats;
    const int64_t D = a->D;
    const double eps = a->eps;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        double sum = 0, ss = 0;
        for (int64_t j = 0; j < D; j++)
            sum += xr[j];
        double mean = sum / (double)D;
        for (int64_t j = 0; j < D; j++)
            ss += ((double)xr[j] - mean) * ((double)xr[j] - mean);
        float mu = (float)mean, rs = (float)(1.0 / sqrt(ss / (double)D + eps));
        if (stats)
            stats[2 * r] = mu, stats[2 * r + 1] = rs;
        for (int64_t j = 0; j < D; j++) {
            float h = (xr[j] - mu) * rs;
            yr[j] = w ? h * w[j] + b[j] : h;
        }
    }
}

void rt_layer_norm_fwd(const float *restrict x, const float *restrict w, const float *restrict b, float *restrict y,
                       float *restrict stats, int64_t rows, int64_t D, double eps) {
    rt_norm_args a = {.x = x, .w = w, .b = b, .y = y, .out_stats = stats, .rows = rows, .D = D, .eps = eps};
    rt_parallel_ranges(rt_layer_norm_fwd_rows, &a, rows, 4 * D, 1);
}

static void rt_layer_norm_bwd_x_rows(const void *args, int64_t r0, int64_t r1) {
    const rt_norm_args *a = args;
    const float *restrict x = a->x, *restrict w = a->w, *restrict stats = a->stats, *restrict dy = a->dy;
    float *restrict dx = a->y;
    const int64_t D = a->D, acc = a->acc;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * D, *dyr = dy + r * D;
        float *dxr = dx + r * D;
        float mu = stats[2 * r], rs = stats[2 * r + 1];
        double sg = 0, sgh = 0; /* sums of g and of g * xh */
        for (int64_t j = 0; j < D; j++) {
            double g = w ? (double)dyr[j] * w[j] : dyr[j];
            sg += g;
            sgh += g * ((xr[j] - mu) * rs);
        }
        float mg = (float)(sg / (double)D), mgh = (float)(sgh / (double)D);
        for (int64_t j = 0; j < D; j++) {
            float g = w ? dyr[j] * w[j] : dyr[j];
            float v = rs * (g - mg - (xr[j] - mu) * rs * mgh);
            dxr[j] = acc ? dxr[j] + v : v;
        }
    }
}

void rt_layer_norm_bwd_x(const float *restrict x, const float *restrict w, const float *restrict stats,
                         const float *restrict dy, float *restrict dx, int64_t rows, int64_t D, int64_t acc) {
    rt_norm_args a = {.x = x, .w = w, .stats = stats, .dy = dy, .y = dx, .rows = rows, .D = D, .acc = acc};
    rt_parallel_ranges(rt_layer_norm_bwd_x_rows, &a, rows, 5 * D, 1);
}

static void rt_layer_norm_bwd_w_cols(const void *args, int64_t j0, int64_t j1) {
    const rt_norm_args *a = args;
    const float *restrict x = a->x, *restrict stats = a->stats, *restrict dy = a->dy;
    float *restrict dw = a->y;
    const int64_t D = a->D;
    if (!a->acc)
        memset(dw + j0, 0, sizeof(float) * (size_t)(j1 - j0));
    for (int64_t r = 0; r < a->rows; r++) {
        const float *xr = x + r * D, *dyr = dy + r * D;
        float mu = stats[2 * r], rs = stats[2 * r + 1];
        for (int64_t j = j0; j < j1; j++)
            dw[j] += dyr[j] * ((xr[j] - mu) * rs);
    }
}

void rt_layer_norm_bwd_w(const float *restrict x, const float *restrict stats, const float *restrict dy,
                         float *restrict dw, int64_t rows, int64_t D, int64_t acc) {
    rt_norm_args a = {.x = x, .stats = stats, .dy = dy, .y = dw, .rows = rows, .D = D, .acc = acc};
    rt_parallel_ranges(rt_layer_norm_bwd_w_cols, &a, D, 2 * rows, RT_NORM_COLS);
}

/* ---------------------------------------------------------------- rope */

/* The angles as Hugging Face's LlamaRotaryEmbedding makes them, every step in
 * f32: inv_freq = 1 / theta^(2i/hd), the angle t * inv_freq rounded to f32,
 * and its cosine and sine rounded to f32 (here computed in double from that
 * f32 angle, so within half an ulp of the exact cosine of the same angle,
 * where PyTorch's f32 cos is within about one). The rounding of the angle is
 * kept on purpose: for large t it moves the angle by up to t * 2^-24 rad,
 * and a checkpoint was trained with it. */
enum { RT_ROPE_CHUNK = 64 }; /* pairs whose cos/sin are made once per position for every head */

static void rt_rope_angles(int64_t t, int64_t i0, int64_t count, int64_t hd, double theta, float *cs, float *sn) {
    for (int64_t j = 0; j < count; j++) {
        float e = (float)(2 * (i0 + j)) / (float)hd;
        float inv_freq = 1.0f / powf((float)theta, e);
        float a = (float)t * inv_freq;
        cs[j] = (float)cos((double)a);
        sn[j] = (float)sin((double)a);
    }
}

/* dst (+)= the rotation of src by sign * angle: sign 1 forward, -1 its inverse (the VJP). */
static void rt_rope_apply(const float *restrict src, float *restrict dst, int64_t heads, int64_t T, int64_t hd,
                          double theta, float sign, int64_t acc) {
    int64_t half = hd / 2;
    float cs[RT_ROPE_CHUNK], sn[RT_ROPE_CHUNK];
    for (int64_t t = 0; t < T; t++)
        for (int64_t i0 = 0; i0 < half; i0 += RT_ROPE_CHUNK) {
            int64_t count = half - i0 < RT_ROPE_CHUNK ? half - i0 : RT_ROPE_CHUNK;
            rt_rope_angles(t, i0, count, hd, theta, cs, sn);
            for (int64_t h = 0; h < heads; h++) {
                const float *x = src + (h * T + t) * hd + i0;
                float *y = dst + (h * T + t) * hd + i0;
                for (int64_t j = 0; j < count; j++) {
                    float lo = x[j], hi = x[j + half], s = sign * sn[j];
                    /* HF's x * cos + rotate_half(x) * sin, rotate_half(x) = (-hi, lo) */
                    float ylo = lo * cs[j] + (-hi) * s, yhi = hi * cs[j] + lo * s;
                    if (acc)
                        y[j] += ylo, y[j + half] += yhi;
                    else
                        y[j] = ylo, y[j + half] = yhi;
                }
            }
        }
}

void rt_rope_fwd(const float *restrict x, float *restrict y, int64_t heads, int64_t T, int64_t hd, double theta) {
    rt_rope_apply(x, y, heads, T, hd, theta, 1.0f, 0);
}

void rt_rope_bwd(const float *restrict dy, float *restrict dx, int64_t heads, int64_t T, int64_t hd, int64_t acc,
                 double theta) {
    rt_rope_apply(dy, dx, heads, T, hd, theta, -1.0f, acc);
}

/* ---------------------------------------------------------------- attention */

static inline double rt_dot(const float *a, const float *b, int64_t n) {
    double sum = 0;
    for (int64_t d = 0; d < n; d++)
        sum += (double)a[d] * b[d];
    return sum;
}

/* Scores of one block: s[r][t] = scale q_{i0+r} . k_{j0+t} for r < rows,
 * t < keys (row stride tile), masked keys (j > i when causal) -inf. */
static void rt_attention_scores(const float *restrict qb, const float *restrict kb, float *restrict s, int64_t rows,
                                int64_t keys, int64_t hd, int64_t tile, int64_t i0, int64_t j0, int64_t causal,
                                float scale) {
    rt_gemm(CblasNoTrans, CblasTrans, rows, keys, hd, qb, hd, kb, hd, 0.0f, s, tile);
    for (int64_t r = 0; r < rows; r++) {
        float *restrict sr = s + r * tile;
        int64_t visible = causal ? i0 + r - j0 + 1 : keys; /* keys j0 .. i0+r */
        if (visible > keys)
            visible = keys;
        for (int64_t t = 0; t < keys; t++)
            sr[t] = t < visible ? sr[t] * scale : -INFINITY;
    }
}

/* The arguments of both attention kernels, for their tasks on the pool */
typedef struct {
    const float *q, *k, *v, *o, *lse_in, *dout;
    float *out, *lse, *dq, *dk, *dv;
    int64_t B, H, Hkv, T, S, hd, causal, tile, acc_q, acc_k, acc_v;
    float scale;
} rt_attention_args;

/* Head h of image b, one block of `tile` query rows at a time: its output
 * rows accumulate P V over the key blocks, rescaled whenever a block raises a
 * row's running maximum m; l is the running sum of exp(score - m). scratch:
 * RT_ATTENTION_FWD_SCRATCH(tile) floats. */
static void rt_attention_fwd_head(const rt_attention_args *a, int64_t b, int64_t h, float *restrict scratch) {
    const int64_t tile = a->tile, hd = a->hd, T = a->T, S = a->S, group = a->H / a->Hkv;
    float *restrict s = scratch, *restrict m = scratch + tile * tile, *restrict l = m + tile;
    int64_t row0 = (b * a->H + h) * T, kv0 = (b * a->Hkv + h / group) * S;
    const float *kh = a->k + kv0 * hd, *vh = a->v + kv0 * hd;
    for (int64_t i0 = 0; i0 < T; i0 += tile) {
        int64_t rows = T - i0 < tile ? T - i0 : tile;
        const float *qb = a->q + (row0 + i0) * hd;
        float *ob = a->out + (row0 + i0) * hd;
        int64_t keys_end = a->causal ? i0 + rows : S; /* top-left aligned: key j <= query i */
        memset(ob, 0, sizeof(float) * (size_t)(rows * hd));
        for (int64_t r = 0; r < rows; r++)
            m[r] = -INFINITY, l[r] = 0.0f;
        for (int64_t j0 = 0; j0 < keys_end; j0 += tile) {
            int64_t keys = keys_end - j0 < tile ? keys_end - j0 : tile;
            rt_attention_scores(qb, kh + j0 * hd, s, rows, keys, hd, tile, i0, j0, a->causal, a->scale);
            for (int64_t r = 0; r < rows; r++) {
                float *restrict sr = s + r * tile;
                float block_max = -INFINITY;
                RT_REDUCE
                for (int64_t t = 0; t < keys; t++)
                    block_max = sr[t] > block_max ? sr[t] : block_max;
                /* key j0 <= i0 <= every row's query: each row sees a key in the first block */
                float m_new = block_max > m[r] ? block_max : m[r];
                float rescale = rt_exp(m[r] - m_new); /* 0 for the first block */
                float sum = 0.0f;
                RT_REDUCE
                for (int64_t t = 0; t < keys; t++) {
                    sr[t] = rt_exp(sr[t] - m_new);
                    sum += sr[t];
                }
                l[r] = l[r] * rescale + sum;
                m[r] = m_new;
                if (rescale != 1.0f)
                    for (int64_t d = 0; d < hd; d++)
                        ob[r * hd + d] *= rescale;
            }
            rt_gemm(CblasNoTrans, CblasNoTrans, rows, hd, keys, s, tile, vh + j0 * hd, hd, 1.0f, ob, hd);
        }
        for (int64_t r = 0; r < rows; r++) {
            float inv = 1.0f / l[r];
            for (int64_t d = 0; d < hd; d++)
                ob[r * hd + d] *= inv;
            if (a->lse)
                a->lse[row0 + i0 + r] = m[r] + logf(l[r]);
        }
    }
}

/* On the pool, a task a (b, h), with its scratch on its stack (the tiles
 * the compiler picks are at most RT_ATTENTION_TILE); its GEMMs then run
 * inside the task. Each head is computed as on one thread. */
static void rt_attention_fwd_task(void *ctx, int64_t t) {
    const rt_attention_args *a = ctx;
    float scratch[RT_ATTENTION_FWD_SCRATCH(RT_ATTENTION_TILE)];
    rt_attention_fwd_head(a, t / a->H, t % a->H, scratch);
}

void rt_attention_fwd(const float *restrict q, const float *restrict k, const float *restrict v, float *restrict o,
                      float *restrict lse, float *restrict scratch, int64_t B, int64_t H, int64_t Hkv, int64_t T,
                      int64_t S, int64_t hd, int64_t causal, int64_t tile, double scale) {
    rt_attention_args a = {.q = q,
                           .k = k,
                           .v = v,
                           .out = o,
                           .lse = lse,
                           .B = B,
                           .H = H,
                           .Hkv = Hkv,
                           .T = T,
                           .S = S,
                           .hd = hd,
                           .causal = causal,
                           .tile = tile,
                           .scale = (float)scale};
    if (tile <= RT_ATTENTION_TILE) {
        rt_parallel(rt_attention_fwd_task, &a, B * H);
        return;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            rt_attention_fwd_head(&a, b, h, scratch);
}

/* The heads of key/value head g of image b: for each key block, the query
 * blocks that see it: P from the scores and lse, then dv += P^T do, dP = do
 * v^T, dS = scale P (dP - D), dq += dS k, dk += dS^T q, each a GEMM adding
 * into the gradient. Everything it writes (dq of those heads, dk and dv of
 * g) no other (b, g) touches. scratch: RT_ATTENTION_BWD_SCRATCH(tile). */
static void rt_attention_bwd_group(const rt_attention_args *a, int64_t b, int64_t g, float *restrict scratch) {
    const int64_t tile = a->tile, hd = a->hd, T = a->T, S = a->S, group = a->H / a->Hkv;
    const float *q = a->q, *k = a->k, *v = a->v, *o = a->o, *lse = a->lse_in, *dout = a->dout;
    float *dq = a->dq, *dk = a->dk, *dv = a->dv;
    const float fscale = a->scale;
    const int ds_wanted = dq || dk;
    float *restrict p = scratch, *restrict dp = scratch + tile * tile, *restrict D = dp + tile * tile;
    const int64_t kv0 = (b * a->Hkv + g) * S;
    const size_t q_head = sizeof(float) * (size_t)(T * hd), kv_head = sizeof(float) * (size_t)(S * hd);
    if (dq && !a->acc_q)
        memset(dq + (b * a->H + g * group) * T * hd, 0, q_head * (size_t)group);
    if (dk && !a->acc_k)
        memset(dk + kv0 * hd, 0, kv_head);
    if (dv && !a->acc_v)
        memset(dv + kv0 * hd, 0, kv_head);
    for (int64_t h = g * group; h < (g + 1) * group; h++) {
        int64_t row0 = (b * a->H + h) * T;
        for (int64_t j0 = 0; j0 < S; j0 += tile) {
            int64_t keys = S - j0 < tile ? S - j0 : tile;
            int64_t kv = (kv0 + j0) * hd;
            /* causal: query blocks wholly before key j0 see none of this block */
            for (int64_t i0 = a->causal ? j0 / tile * tile : 0; i0 < T; i0 += tile) {
                int64_t rows = T - i0 < tile ? T - i0 : tile, row = row0 + i0;
                const float *qb = q + row * hd, *dob = dout + row * hd;
                rt_attention_scores(qb, k + kv, p, rows, keys, hd, tile, i0, j0, a->causal, fscale);
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t t = 0; t < keys; t++)
                        p[r * tile + t] = rt_exp(p[r * tile + t] - lse[row + r]); /* masked: exp(-inf) = 0 */
                if (dv)
                    rt_gemm(CblasTrans, CblasNoTrans, keys, hd, rows, p, tile, dob, hd, 1.0f, dv + kv, hd);
                if (!ds_wanted)
                    continue;
                for (int64_t r = 0; r < rows; r++)
                    D[r] = (float)rt_dot(dob + r * hd, o + (row + r) * hd, hd);
                rt_gemm(CblasNoTrans, CblasTrans, rows, keys, hd, dob, hd, v + kv, hd, 0.0f, dp, tile);
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t t = 0; t < keys; t++)
                        dp[r * tile + t] = fscale * p[r * tile + t] * (dp[r * tile + t] - D[r]);
                if (dq)
                    rt_gemm(CblasNoTrans, CblasNoTrans, rows, hd, keys, dp, tile, k + kv, hd, 1.0f, dq + row * hd, hd);
                if (dk)
                    rt_gemm(CblasTrans, CblasNoTrans, keys, hd, rows, dp, tile, qb, hd, 1.0f, dk + kv, hd);
            }
        }
    }
}

static void rt_attention_bwd_task(void *ctx, int64_t t) {
    const rt_attention_args *a = ctx;
    float scratch[RT_ATTENTION_BWD_SCRATCH(RT_ATTENTION_TILE)];
    rt_attention_bwd_group(a, t / a->Hkv, t % a->Hkv, scratch);
}

/* No restrict on the gradients: they may be one buffer (see rt.h). On the
 * pool by (image, key/value head), as the forward. */
void rt_attention_bwd(const float *restrict q, const float *restrict k, const float *restrict v,
                      const float *restrict o, const float *restrict lse, const float *restrict dout, float *dq,
                      float *dk, float *dv, float *restrict scratch, int64_t B, int64_t H, int64_t Hkv, int64_t T,
                      int64_t S, int64_t hd, int64_t causal, int64_t acc_q, int64_t acc_k, int64_t acc_v, int64_t tile,
                      double scale) {
    rt_attention_args a = {.q = q,
                           .k = k,
                           .v = v,
                           .o = o,
                           .lse_in = lse,
                           .dout = dout,
                           .dq = dq,
                           .dk = dk,
                           .dv = dv,
                           .B = B,
                           .H = H,
                           .Hkv = Hkv,
                           .T = T,
                           .S = S,
                           .hd = hd,
                           .causal = causal,
                           .tile = tile,
                           .acc_q = acc_q,
                           .acc_k = acc_k,
                           .acc_v = acc_v,
                           .scale = (float)scale};
    if (tile <= RT_ATTENTION_TILE) {
        rt_parallel(rt_attention_bwd_task, &a, B * Hkv);
        return;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t g = 0; g < Hkv; g++)
            rt_attention_bwd_group(&a, b, g, scratch);
}

/* ---------------------------------------------------------------- softmax */

/* defined with the reductions of the CNN kernels below */
static inline double rt_dsum(const float *restrict x, int64_t n);
static inline double rt_ddot_strided(const float *restrict a, const float *restrict b, int64_t n, int64_t sb);

/* The row's max is subtracted first, so no exponent exceeds 0 (no overflow)
 * and the largest term is 1 (the sum is at least 1, no division by 0). A
 * -inf input gives 0; a row holding NaN or +inf, or only -inf, is NaN. */
void rt_softmax_fwd(const float *restrict x, float *restrict y, int64_t rows, int64_t D) {
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict xr = x + r * D;
        float *restrict yr = y + r * D;
        float mx = -INFINITY;
        for (int64_t j = 0; j < D; j++)
            mx = xr[j] > mx || xr[j] != xr[j] ? xr[j] : mx;
        double sum = 0.0;
        RT_REDUCE
        for (int64_t j = 0; j < D; j++) {
            yr[j] = rt_exp(xr[j] - mx);
            sum += (double)yr[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < D; j++)
            yr[j] *= inv;
    }
}

void rt_softmax_bwd(const float *restrict y, const float *restrict dy, float *restrict dx, int64_t rows, int64_t D,
                    int64_t acc) {
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict yr = y + r * D, *restrict gr = dy + r * D;
        float *restrict dr = dx + r * D;
        const float dot = (float)rt_ddot_strided(gr, yr, D, 1);
        if (acc) {
            for (int64_t j = 0; j < D; j++)
                dr[j] += yr[j] * (gr[j] - dot);
        } else {
            for (int64_t j = 0; j < D; j++)
                dr[j] = yr[j] * (gr[j] - dot);
        }
    }
}

/* ---------------------------------------------------------------- permute */

void rt_permute(const float *restrict x, float *restrict y, int64_t n0, int64_t n1, int64_t n2, int64_t n3, int64_t n4,
                int64_t n5, int64_t s0, int64_t s1, int64_t s2, int64_t s3, int64_t s4, int64_t s5, int64_t acc) {
    int64_t o = 0;
    for (int64_t i0 = 0; i0 < n0; i0++)
        for (int64_t i1 = 0; i1 < n1; i1++)
            for (int64_t i2 = 0; i2 < n2; i2++)
                for (int64_t i3 = 0; i3 < n3; i3++)
                    for (int64_t i4 = 0; i4 < n4; i4++, o += n5) {
                        const float *restrict xr = x + i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3 + i4 * s4;
                        float *restrict yr = y + o;
                        if (acc) {
                            for (int64_t j = 0; j < n5; j++)
                                yr[j] += xr[j * s5];
                        } else {
                            for (int64_t j = 0; j < n5; j++)
                                yr[j] = xr[j * s5];
                        }
                    }
}

/* ---------------------------------------------------------------- slice */

void rt_slice_fwd(const float *restrict x, float *restrict y, int64_t outer, int64_t D, int64_t inner, int64_t start,
                  int64_t len, int64_t acc) {
    int64_t run = len * inner; /* the slice of one outer index is contiguous */
    for (int64_t o = 0; o < outer; o++) {
        const float *src = x + (o * D + start) * inner;
        float *dst = y + o * run;
        if (acc)
            for (int64_t i = 0; i < run; i++)
                dst[i] += src[i];
        else
            memcpy(dst, src, sizeof(float) * (size_t)run);
    }
}

void rt_slice_bwd(const float *restrict dy, float *restrict dx, int64_t outer, int64_t D, int64_t inner, int64_t start,
                  int64_t len, int64_t acc) {
    int64_t run = len * inner;
    for (int64_t o = 0; o < outer; o++) {
        float *row = dx + o * D * inner, *dst = row + start * inner;
        const float *src = dy + o * run;
        if (acc) {
            for (int64_t i = 0; i < run; i++)
                dst[i] += src[i];
        } else {
            memset(row, 0, sizeof(float) * (size_t)(start * inner));
            memcpy(dst, src, sizeof(float) * (size_t)run);
            memset(dst + run, 0, sizeof(float) * (size_t)((D - start - len) * inner));
        }
    }
}

/* ---------------------------------------------------------------- concat */

void rt_concat_fwd(const float *x0, const float *x1, const float *x2, const float *x3, const float *x4, const float *x5,
                   const float *x6, const float *x7, float *restrict y, int64_t outer, int64_t inner, int64_t d0,
                   int64_t d1, int64_t d2, int64_t d3, int64_t d4, int64_t d5, int64_t d6, int64_t d7) {
    const float *x[8] = {x0, x1, x2, x3, x4, x5, x6, x7};
    const int64_t d[8] = {d0, d1, d2, d3, d4, d5, d6, d7};
    /* per outer index, each part's run of d_k * inner floats is contiguous in x_k and in y */
    for (int64_t o = 0; o < outer; o++)
        for (int k = 0; k < 8; k++) {
            int64_t run = d[k] * inner;
            if (run > 0) {
                memcpy(y, x[k] + o * run, sizeof(float) * (size_t)run);
                y += run;
            }
        }
}

/* ---------------------------------------------------------------- add, mul */

static inline void rt_add_body(const float *a, const float *b, float *y, int64_t outer, int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            y[o * inner + i] = a[o * inner + i] + b[i];
}

static void rt_add_serial(const float *a, const float *b, float *y, int64_t outer, int64_t inner) {
    if (y == a && y != b)
        rt_add_body(y, b, y, outer, inner);
    else if (y == b && y != a && outer == 1)
        rt_add_body(y, a, y, 1, inner); /* a + b == b + a exactly */
    else
        rt_add_body(a, b, y, outer, inner);
}

static inline void rt_mul_body(const float *a, const float *b, float *y, int64_t outer, int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            y[o * inner + i] = a[o * inner + i] * b[i];
}

static void rt_mul_serial(const float *a, const float *b, float *y, int64_t outer, int64_t inner) {
    if (y == a && y != b)
        rt_mul_body(y, b, y, outer, inner);
    else if (y == b && y != a && outer == 1)
        rt_mul_body(y, a, y, 1, inner); /* a * b == b * a exactly */
    else
        rt_mul_body(a, b, y, outer, inner);
}

/* y[o, i] = a[o, i] op b[i], for ranges of rows o, or of elements i when
 * there is one row */
typedef struct {
    const float *a, *b;
    float *y;
    int64_t outer, inner, mul;
} rt_binary_args;

static void rt_binary_range(const void *args, int64_t lo, int64_t hi) {
    const rt_binary_args *p = args;
    void (*op)(const float *, const float *, float *, int64_t, int64_t) = p->mul ? rt_mul_serial : rt_add_serial;
    if (p->outer == 1)
        op(p->a + lo, p->b + lo, p->y + lo, 1, hi - lo);
    else
        op(p->a + lo * p->inner, p->b, p->y + lo * p->inner, hi - lo, p->inner);
}

static void rt_binary(const float *a, const float *b, float *y, int64_t outer, int64_t inner, int64_t mul) {
    rt_binary_args p = {a, b, y, outer, inner, mul};
    if (outer == 1)
        rt_parallel_ranges(rt_binary_range, &p, inner, 3, 1);
    else
        rt_parallel_ranges(rt_binary_range, &p, outer, 2 * inner, 1);
}

void rt_add_fwd(const float *a, const float *b, float *y, int64_t outer, int64_t inner) {
    rt_binary(a, b, y, outer, inner, 0);
}

void rt_mul_fwd(const float *a, const float *b, float *y, int64_t outer, int64_t inner) {
    rt_binary(a, b, y, outer, inner, 1);
}

/* ---------------------------------------------------------------- scale */

RT_ELEMENTWISE void rt_scale_body(const float *x, float *y, int64_t n, int64_t acc, float c) {
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            y[i] += c * x[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] = c * x[i];
    }
}

void rt_scale(const float *x, float *y, int64_t n, int64_t acc, float c) {
    if (x == y)
        rt_scale_body(y, y, n, acc, c);
    else
        rt_scale_body(x, y, n, acc, c);
}

/* ---------------------------------------------------------------- broadcasting */

enum { RT_BCAST_RANK = 6 };

/* The strides of an operand of y's dims n[] with size 1 along the dims of rep. */
static inline void rt_rep_strides(const int64_t *n, int64_t rep, int64_t *st) {
    int64_t t = 1;
    for (int k = RT_BCAST_RANK - 1; k >= 0; k--) {
        st[k] = (rep >> k) & 1 ? 0 : t;
        t *= (rep >> k) & 1 ? 1 : n[k];
    }
}

/* y = a op b over the five outer dims, the innermost as a row; each row reads
 * a and b at element j before writing y[j], so y may be an operand that is
 * not repeated (its stride along the row is 1, its row offset y's). */
static inline void rt_bcast_body(const float *a, const float *b, float *y, const int64_t *n, int64_t a_rep,
                                 int64_t b_rep, int mul) {
    int64_t sa[RT_BCAST_RANK], sb[RT_BCAST_RANK];
    rt_rep_strides(n, a_rep, sa);
    rt_rep_strides(n, b_rep, sb);
    const int64_t row = n[5], ra = sa[5], rb = sb[5];
    int64_t o = 0;
    for (int64_t i0 = 0; i0 < n[0]; i0++)
        for (int64_t i1 = 0; i1 < n[1]; i1++)
            for (int64_t i2 = 0; i2 < n[2]; i2++)
                for (int64_t i3 = 0; i3 < n[3]; i3++)
                    for (int64_t i4 = 0; i4 < n[4]; i4++, o += row) {
                        const float *ar = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3] + i4 * sa[4];
                        const float *br = b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3] + i4 * sb[4];
                        float *yr = y + o;
                        if (mul)
                            for (int64_t j = 0; j < row; j++)
                                yr[j] = ar[j * ra] * br[j * rb];
                        else
                            for (int64_t j = 0; j < row; j++)
                                yr[j] = ar[j * ra] + br[j * rb];
                    }
}

void rt_add_bcast_fwd(const float *a, const float *b, float *y, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                      int64_t n4, int64_t n5, int64_t a_rep, int64_t b_rep) {
    const int64_t n[RT_BCAST_RANK] = {n0, n1, n2, n3, n4, n5};
    rt_bcast_body(a, b, y, n, a_rep, b_rep, 0);
}

void rt_mul_bcast_fwd(const float *a, const float *b, float *y, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                      int64_t n4, int64_t n5, int64_t a_rep, int64_t b_rep) {
    const int64_t n[RT_BCAST_RANK] = {n0, n1, n2, n3, n4, n5};
    rt_bcast_body(a, b, y, n, a_rep, b_rep, 1);
}

void rt_bcast_reduce(const float *restrict dy, const float *restrict other, float *restrict dx, int64_t n0, int64_t n1,
                     int64_t n2, int64_t n3, int64_t n4, int64_t n5, int64_t dx_rep, int64_t other_rep, int64_t acc) {
    const int64_t n[RT_BCAST_RANK] = {n0, n1, n2, n3, n4, n5};
    int64_t sd[RT_BCAST_RANK], so[RT_BCAST_RANK];
    rt_rep_strides(n, dx_rep, sd);
    rt_rep_strides(n, other_rep, so);
    /* Where dx repeats, several rows of dy add into one row of dx: start
     * from zero and add every row. Otherwise each element is written once. */
    const int adds = acc || dx_rep != 0;
    if (!acc && dx_rep != 0) {
        int64_t count = 1;
        for (int k = 0; k < RT_BCAST_RANK; k++)
            count *= (dx_rep >> k) & 1 ? 1 : n[k];
        memset(dx, 0, (size_t)count * sizeof(float));
    }
    const int64_t row = n[5], ro = so[5];
    int64_t o = 0;
    for (int64_t i0 = 0; i0 < n[0]; i0++)
        for (int64_t i1 = 0; i1 < n[1]; i1++)
            for (int64_t i2 = 0; i2 < n[2]; i2++)
                for (int64_t i3 = 0; i3 < n[3]; i3++)
                    for (int64_t i4 = 0; i4 < n[4]; i4++, o += row) {
                        const float *restrict g = dy + o;
                        float *restrict d = dx + i0 * sd[0] + i1 * sd[1] + i2 * sd[2] + i3 * sd[3] + i4 * sd[4];
                        const float *restrict f =
                            other ? other + i0 * so[0] + i1 * so[1] + i2 * so[2] + i3 * so[3] + i4 * so[4] : NULL;
                        if (sd[5] == 0) { /* the row sums into one element */
                            d[0] += (float)(f ? rt_ddot_strided(g, f, row, ro) : rt_dsum(g, row));
                        } else if (adds) {
                            for (int64_t j = 0; j < row; j++)
                                d[j] += f ? g[j] * f[j * ro] : g[j];
                        } else {
                            for (int64_t j = 0; j < row; j++)
                                d[j] = f ? g[j] * f[j * ro] : g[j];
                        }
                    }
}

/* ---------------------------------------------------------------- embedding */

int32_t rt_embedding_fwd(const int32_t *restrict ids, const float *restrict w, float *restrict y, int64_t n,
                         int64_t num, int64_t dim) {
    /* Ids are checked first so that a bad batch writes nothing and no row
     * outside w is ever read. */
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= num)
            return RT_ERR_INDEX;
    for (int64_t i = 0; i < n; i++)
        memcpy(y + i * dim, w + (int64_t)ids[i] * dim, (size_t)dim * sizeof(float));
    return RT_OK;
}

void rt_embedding_bwd(const int32_t *restrict ids, const float *restrict dy, float *restrict dw, int64_t n, int64_t num,
                      int64_t dim, int64_t acc) {
    if (!acc)
        memset(dw, 0, (size_t)(num * dim) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        float *row = dw + (int64_t)ids[i] * dim;
        const float *g = dy + i * dim;
        for (int64_t j = 0; j < dim; j++)
            row[j] += g[j];
    }
}

/* ---------------------------------------------------------------- losses */

/* The rows a mean-reduced cross-entropy averages over: those whose label is
 * not `ignore`; -1 when another label is outside [0, C). */
static int64_t rt_ce_count(const int32_t *labels, int64_t M, int64_t C, int64_t ignore) {
    int64_t count = 0;
    for (int64_t i = 0; i < M; i++) {
        if (labels[i] == ignore)
            continue;
        if (labels[i] < 0 || labels[i] >= C)
            return -1;
        count++;
    }
    return count;
}

int32_t rt_cross_entropy_fwd(const float *restrict logits, const int32_t *restrict labels, float *restrict probs,
                             float *restrict loss, int64_t M, int64_t C, int64_t ignore) {
    /* Labels are checked first so that a bad batch writes nothing. */
    int64_t count = rt_ce_count(labels, M, C, ignore);
    if (count < 0)
        return RT_ERR_LABEL;
    double total = 0.0;
    for (int64_t i = 0; i < M; i++) {
        const float *row = logits + i * C;
        float mx = row[0];
        for (int64_t j = 1; j < C; j++)
            mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        RT_REDUCE
        for (int64_t j = 0; j < C; j++)
            sum += rt_exp(row[j] - mx);
        if (labels[i] != ignore)
            total += (double)(mx + logf(sum) - row[labels[i]]);
        if (probs) {
            float inv = 1.0f / sum;
            for (int64_t j = 0; j < C; j++)
                probs[i * C + j] = rt_exp(row[j] - mx) * inv;
        }
    }
    /* every row ignored: 0 (PyTorch gives 0/0 = NaN), so that a batch of
     * padding alone leaves training unharmed */
    *loss = count > 0 ? (float)(total / (double)count) : 0.0f;
    return RT_OK;
}

void rt_cross_entropy_bwd(const float *restrict probs, const int32_t *restrict labels, const float *restrict dloss,
                          float *restrict dlogits, int64_t M, int64_t C, int64_t ignore, int64_t acc) {
    int64_t count = rt_ce_count(labels, M, C, ignore);
    float s = count > 0 ? *dloss / (float)count : 0.0f;
    for (int64_t i = 0; i < M; i++) {
        const float *p = probs + i * C;
        float *d = dlogits + i * C;
        float si = labels[i] == ignore ? 0.0f : s;
        if (acc) {
            for (int64_t j = 0; j < C; j++)
                d[j] += p[j] * si;
        } else {
            for (int64_t j = 0; j < C; j++)
                d[j] = p[j] * si;
        }
        if (labels[i] != ignore)
            d[labels[i]] -= s;
    }
}

/* linear_cross_entropy: rows of h are taken `rows` at a time (R of them, the
 * last chunk shorter), the vocabulary `cols` entries at a time (Vc); the
 * tile t[R, Vc] = h[r0.., :] w[v0.., :]^T lives in scratch, followed by three
 * floats per row of the chunk: running max, running sum of exp(t - max) and
 * the logit of the label. */
int32_t rt_linear_ce_fwd(const float *restrict h, const float *restrict w, const int32_t *restrict labels,
                         float *restrict lse, float *restrict loss, float *restrict scratch, int64_t N, int64_t d,
                         int64_t V, int64_t ignore, int64_t rows, int64_t cols) {
    int64_t count = rt_ce_count(labels, N, V, ignore);
    if (count < 0)
        return RT_ERR_LABEL;
    int64_t rc = N < rows ? N : rows, vc = V < cols ? V : cols;
    float *tile = scratch, *mx = scratch + rc * vc, *sum = mx + rc, *picked = sum + rc;
    double total = 0.0;
    for (int64_t r0 = 0; r0 < N; r0 += rc) {
        int64_t R = N - r0 < rc ? N - r0 : rc;
        for (int64_t i = 0; i < R; i++)
            mx[i] = -INFINITY, sum[i] = 0.0f, picked[i] = 0.0f;
        for (int64_t v0 = 0; v0 < V; v0 += vc) {
            int64_t C = V - v0 < vc ? V - v0 : vc;
            rt_gemm(CblasNoTrans, CblasTrans, R, C, d, h + r0 * d, d, w + v0 * d, d, 0.0f, tile, C);
            for (int64_t i = 0; i < R; i++) {
                const float *t = tile + i * C;
                float m = t[0];
                RT_REDUCE
                for (int64_t j = 1; j < C; j++)
                    m = t[j] > m ? t[j] : m;
                if (m > mx[i]) { /* rescale what was summed against the old max */
                    sum[i] *= rt_exp(mx[i] - m);
                    mx[i] = m;
                }
                float s = 0.0f;
                RT_REDUCE
                for (int64_t j = 0; j < C; j++)
                    s += rt_exp(t[j] - mx[i]);
                sum[i] += s;
                int64_t label = labels[r0 + i];
                if (label >= v0 && label < v0 + C)
                    picked[i] = t[label - v0];
            }
        }
        for (int64_t i = 0; i < R; i++) {
            float l = mx[i] + logf(sum[i]);
            if (lse)
                lse[r0 + i] = l;
            if (labels[r0 + i] != ignore)
                total += (double)(l - picked[i]);
        }
    }
    *loss = count > 0 ? (float)(total / (double)count) : 0.0f; /* as rt_cross_entropy_fwd */
    return RT_OK;
}

void rt_linear_ce_bwd(const float *restrict h, const float *restrict w, const int32_t *restrict labels,
                      const float *restrict lse, const float *restrict dloss, float *restrict dh, float *restrict dw,
                      float *restrict scratch, int64_t N, int64_t d, int64_t V, int64_t ignore, int64_t rows,
                      int64_t cols, int64_t acc_h, int64_t acc_w) {
    int64_t count = rt_ce_count(labels, N, V, ignore);
    float s = count > 0 ? *dloss / (float)count : 0.0f;
    if (dh && !acc_h)
        memset(dh, 0, (size_t)(N * d) * sizeof(float));
    if (dw && !acc_w)
        memset(dw, 0, (size_t)(V * d) * sizeof(float));
    int64_t rc = N < rows ? N : rows, vc = V < cols ? V : cols;
    float *g = scratch;
    for (int64_t r0 = 0; r0 < N; r0 += rc) {
        int64_t R = N - r0 < rc ? N - r0 : rc;
        for (int64_t v0 = 0; v0 < V; v0 += vc) {
            int64_t C = V - v0 < vc ? V - v0 : vc;
            rt_gemm(CblasNoTrans, CblasTrans, R, C, d, h + r0 * d, d, w + v0 * d, d, 0.0f, g, C);
            for (int64_t i = 0; i < R; i++) {
                float *t = g + i * C;
                int64_t label = labels[r0 + i];
                if (label == ignore) {
                    memset(t, 0, (size_t)C * sizeof(float));
                    continue;
                }
                float l = lse[r0 + i];
                for (int64_t j = 0; j < C; j++)
                    t[j] = rt_exp(t[j] - l) * s;
                if (label >= v0 && label < v0 + C)
                    t[label - v0] -= s;
            }
            /* one recomputed tile serves both gradients */
            if (dh) /* dh[R, d] += g[R, C] w[C, d] */
                rt_gemm(CblasNoTrans, CblasNoTrans, R, d, C, g, C, w + v0 * d, d, 1.0f, dh + r0 * d, d);
            if (dw) /* dw[C, d] += g[R, C]^T h[R, d] */
                rt_gemm(CblasTrans, CblasNoTrans, C, d, R, g, C, h + r0 * d, d, 1.0f, dw + v0 * d, d);
        }
    }
}

void rt_mse_fwd(const float *restrict pred, const float *restrict target, float *restrict diff, float *restrict loss,
                int64_t n) {
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float d = pred[i] - target[i];
        if (diff)
            diff[i] = d;
        total += (double)d * (double)d;
    }
    *loss = n > 0 ? (float)(total / (double)n) : 0.0f;
}

void rt_mse_bwd(const float *restrict diff, const float *restrict dloss, float *restrict dx, int64_t n, int64_t sign,
                int64_t acc) {
    float s = n > 0 ? (float)sign * 2.0f * *dloss / (float)n : 0.0f;
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            dx[i] += s * diff[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            dx[i] = s * diff[i];
    }
}

/* ---- optimizers */

void rt_opt_step_begin(int64_t *step) { *step += 1; }

/* The arguments of the updates, for their ranges of elements */
typedef struct {
    float *p, *m, *v; /* m: SGD's momentum buffer, or Adam's first moment */
    const float *g;
    const int64_t *step;
    const rt_hparams *hp;
} rt_update_args;

static void rt_sgd_range(const void *args, int64_t lo, int64_t hi) {
    const rt_update_args *a = args;
    float *p = a->p, *buf = a->m;
    const float *g = a->g;
    const rt_hparams *hp = a->hp;
    const float lr = hp->lr, wd = hp->weight_decay, mu = hp->momentum, damp = 1.0f - hp->dampening;
    if (mu == 0.0f) {
        for (int64_t i = lo; i < hi; i++)
            p[i] -= lr * (g[i] + wd * p[i]);
        return;
    }
    const int first = *a->step <= 1, nesterov = hp->nesterov != 0;
    for (int64_t i = lo; i < hi; i++) {
        float d = g[i] + wd * p[i];
        float b = first ? d : mu * buf[i] + damp * d;
        buf[i] = b;
        p[i] -= lr * (nesterov ? d + mu * b : b);
    }
}

void rt_sgd_update(float *p, const float *g, float *buf, const int64_t *step, const rt_hparams *hp, int64_t n) {
    rt_parallel_ranges(rt_sgd_range, &(rt_update_args){.p = p, .m = buf, .g = g, .step = step, .hp = hp}, n, 4, 1);
}

static void rt_adamw_range(const void *args, int64_t lo, int64_t hi) {
    const rt_update_args *a = args;
    float *p = a->p, *m = a->m, *v = a->v;
    const float *g = a->g;
    const rt_hparams *hp = a->hp;
    const float lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    const double t = (double)(*a->step < 1 ? 1 : *a->step);
    const float c1 = (float)(1.0 - pow((double)b1, t)), c2 = (float)(1.0 - pow((double)b2, t));
    const float decay = 1.0f - lr * hp->weight_decay, step_size = lr / c1, root_c2 = sqrtf(c2);
    for (int64_t i = lo; i < hi; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) / root_c2 + eps);
    }
}

void rt_adamw_update(float *p, const float *g, float *m, float *v, const int64_t *step, const rt_hparams *hp,
                     int64_t n) {
    rt_parallel_ranges(rt_adamw_range, &(rt_update_args){.p = p, .m = m, .v = v, .g = g, .step = step, .hp = hp}, n, 7,
                       1);
}

/* ================================================================ CNN kernels
 * NCHW f32. Window geometry: output o of a window op reads tap t at input
 * o*s + t*d - p, so for each tap the valid outputs form one range, computed
 * once (rt_tap_range) instead of a bounds test per element. */

/* ---------------------------------------------------------------- helpers */

static inline double rt_dsum(const float *restrict x, int64_t n) {
    double t = 0.0;
    RT_REDUCE
    for (int64_t i = 0; i < n; i++)
        t += (double)x[i];
    return t;
}

/* sum a[i] b[i*sb] */
static inline double rt_ddot_strided(const float *restrict a, const float *restrict b, int64_t n, int64_t sb) {
    double t = 0.0;
    if (sb == 1) { /* a constant after specialisation: one of the loops remains */
        RT_REDUCE
        for (int64_t i = 0; i < n; i++)
            t += (double)a[i] * (double)b[i];
    } else {
        RT_REDUCE
        for (int64_t i = 0; i < n; i++)
            t += (double)a[i] * (double)b[i * sb];
    }
    return t;
}

/* *s1 += sum (x - shift), *s2 += sum (x - shift)^2 */
static inline void rt_moments(const float *restrict x, int64_t n, double shift, double *s1, double *s2) {
    double t1 = 0.0, t2 = 0.0;
    RT_REDUCE
    for (int64_t i = 0; i < n; i++) {
        double v = (double)x[i] - shift;
        t1 += v;
        t2 += v * v;
    }
    *s1 += t1;
    *s2 += t2;
}

/* *sdy += sum dy, *sdyx += sum dy (x - mean) */
static inline void rt_bn_sums(const float *restrict x, const float *restrict dy, int64_t n, double mean, double *sdy,
                              double *sdyx) {
    double t1 = 0.0, t2 = 0.0;
    RT_REDUCE
    for (int64_t i = 0; i < n; i++) {
        double g = (double)dy[i];
        t1 += g;
        t2 += g * ((double)x[i] - mean);
    }
    *sdy += t1;
    *sdyx += t2;
}

/* y = (x - sub) * mul + add; y may be x (see the top of this file) */
RT_ELEMENTWISE void rt_affine_body(const float *x, float *y, int64_t n, float sub, float mul, float add) {
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] - sub) * mul + add;
}

static inline void rt_affine(const float *x, float *y, int64_t n, float sub, float mul, float add) {
    if (x == y)
        rt_affine_body(y, y, n, sub, mul, add);
    else
        rt_affine_body(x, y, n, sub, mul, add);
}

/* dst (+)= src * scale */
static inline void rt_scale_acc(const float *restrict src, float *restrict dst, int64_t n, float scale, int64_t acc) {
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            dst[i] += src[i] * scale;
    } else {
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i] * scale;
    }
}

/* ---------------------------------------------------------------- conv2d */


/* 1x1, stride 1, no padding: image n, group g of x is already its column matrix. */
static inline int rt_conv_pointwise(int64_t k, int64_t s, int64_t p) { return k == 1 && s == 1 && p == 0; }

/* The channel ranges [c0, c1) of an im2col or col2im on the pool. */
typedef struct {
    const float *src;
    float *dst;
    int64_t ld, Cg, H, W, k, s, p, d, OH, OW, per;
} rt_cols_job;

enum { RT_COLS_GRAIN = 1 << 15 }; /* floats of columns per task, at least */

static int64_t rt_cols_tasks(rt_cols_job *j) {
    int64_t per_channel = j->k * j->k * j->OH * j->OW, threads = rt_pool_threads();
    int64_t tasks = per_channel * j->Cg / RT_COLS_GRAIN;
    tasks = tasks < 1 ? 1 : tasks > 4 * threads ? 4 * threads : tasks;
    tasks = tasks > j->Cg ? j->Cg : tasks;
    j->per = (j->Cg + tasks - 1) / tasks;
    return (j->Cg + j->per - 1) / j->per;
}

static void rt_im2col_channels(const float *restrict x, float *restrict col, int64_t ld, int64_t c0, int64_t c1,
                               int64_t H, int64_t W, int64_t k, int64_t s, int64_t p, int64_t d, int64_t OH,
                               int64_t OW) {
    for (int64_t c = c0; c < c1; c++)
        for (int64_t ky = 0; ky < k; ky++) {
            int64_t offy = ky * d - p, oy0, oy1;
            rt_tap_range(offy, s, H, OH, &oy0, &oy1);
            for (int64_t kx = 0; kx < k; kx++) {
                int64_t offx = kx * d - p, ox0, ox1;
                rt_tap_range(offx, s, W, OW, &ox0, &ox1);
                const int64_t cnt = ox1 - ox0;
                float *restrict row = col + ((c * k + ky) * k + kx) * ld;
                const float *restrict xc = x + c * H * W;
                memset(row, 0, (size_t)(oy0 * OW) * sizeof(float));
                for (int64_t oy = oy0; oy < oy1; oy++) {
                    float *restrict r = row + oy * OW;
                    for (int64_t ox = 0; ox < ox0; ox++)
                        r[ox] = 0.0f;
                    if (cnt > 0) {
                        const float *restrict xr = xc + (oy * s + offy) * W + ox0 * s + offx;
                        if (s == 1) {
                            memcpy(r + ox0, xr, (size_t)cnt * sizeof(float));
                        } else {
                            for (int64_t j = 0; j < cnt; j++)
                                r[ox0 + j] = xr[j * s];
                        }
                    }
                    for (int64_t ox = ox1; ox < OW; ox++)
                        r[ox] = 0.0f;
                }
                memset(row + oy1 * OW, 0, (size_t)((OH - oy1) * OW) * sizeof(float));
            }
        }
}

static void rt_im2col_task(void *ctx, int64_t t) {
    const rt_cols_job *j = ctx;
    int64_t c0 = t * j->per, c1 = c0 + j->per < j->Cg ? c0 + j->per : j->Cg;
    rt_im2col_channels(j->src, j->dst, j->ld, c0, c1, j->H, j->W, j->k, j->s, j->p, j->d, j->OH, j->OW);
}

/* col[Cg*k*k, OH*OW] (rows ld floats apart, ld >= OH*OW): row (c, ky, kx) holds
 * input x[c, oy*s + ky*d - p, ox*s + kx*d - p] for every output (oy, ox), 0
 * where that falls into the padding. On the pool, by channels. */
static void rt_im2col(const float *restrict x, float *restrict col, int64_t ld, int64_t Cg, int64_t H, int64_t W,
                      int64_t k, int64_t s, int64_t p, int64_t d, int64_t OH, int64_t OW) {
    rt_cols_job j = {x, col, ld, Cg, H, W, k, s, p, d, OH, OW, Cg};
    rt_parallel(rt_im2col_task, &j, rt_cols_tasks(&j));
}

static void rt_col2im_channels(const float *restrict col, int64_t ld, float *restrict x, int64_t c0, int64_t c1,
                               int64_t H, int64_t W, int64_t k, int64_t s, int64_t p, int64_t d, int64_t OH,
                               int64_t OW) {
    for (int64_t c = c0; c < c1; c++) {
        float *restrict xc = x + c * H * W;
        for (int64_t ky = 0; ky < k; ky++) {
            int64_t offy = ky * d - p, oy0, oy1;
            rt_tap_range(offy, s, H, OH, &oy0, &oy1);
            for (int64_t kx = 0; kx < k; kx++) {
                int64_t offx = kx * d - p, ox0, ox1;
                rt_tap_range(offx, s, W, OW, &ox0, &ox1);
                const int64_t cnt = ox1 - ox0;
                if (cnt <= 0)
                    continue;
                const float *restrict row = col + ((c * k + ky) * k + kx) * ld + ox0;
                for (int64_t oy = oy0; oy < oy1; oy++) {
                    const float *restrict r = row + oy * OW;
                    float *restrict xr = xc + (oy * s + offy) * W + ox0 * s + offx;
                    for (int64_t j = 0; j < cnt; j++)
                        xr[j * s] += r[j];
                }
            }
        }
    }
}

static void rt_col2im_task(void *ctx, int64_t t) {
    const rt_cols_job *j = ctx;
    int64_t c0 = t * j->per, c1 = c0 + j->per < j->Cg ? c0 + j->per : j->Cg;
    rt_col2im_channels(j->src, j->ld, j->dst, c0, c1, j->H, j->W, j->k, j->s, j->p, j->d, j->OH, j->OW);
}

/* x[Cg,H,W] += the adjoint of rt_im2col applied to col (rows ld floats
 * apart). On the pool, by channels: each writes its own planes, in the same
 * order as on one thread. */
static void rt_col2im_add(const float *restrict col, int64_t ld, float *restrict x, int64_t Cg, int64_t H, int64_t W,
                          int64_t k, int64_t s, int64_t p, int64_t d, int64_t OH, int64_t OW) {
    rt_cols_job j = {col, x, ld, Cg, H, W, k, s, p, d, OH, OW, Cg};
    rt_parallel(rt_col2im_task, &j, rt_cols_tasks(&j));
}

typedef struct {
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw;
    int64_t N, C, H, W, K, k, s, p, d, OH, OW, acc;
    int64_t per; /* units (planes or channels) per task */
} rt_dw_job;

/* Units of work per task: enough tasks for the pool, none under ~32K floats. */
static int64_t rt_dw_tasks(rt_dw_job *j, int64_t units, int64_t floats_per_unit) {
    int64_t threads = rt_pool_threads(), tasks = units * floats_per_unit / RT_COLS_GRAIN;
    tasks = tasks < 1 ? 1 : tasks > 4 * threads ? 4 * threads : tasks;
    tasks = tasks > units ? units : tasks;
    j->per = (units + tasks - 1) / tasks;
    return (units + j->per - 1) / j->per;
}

/* y[n, o] from x[n, o / mult] */
static void rt_dw_fwd_plane(const rt_dw_job *j, int64_t n, int64_t o) {
    const int64_t mult = j->K / j->C, HW = j->H * j->W, OHW = j->OH * j->OW, k = j->k, s = j->s, W = j->W;
    const float *restrict xc = j->x + (n * j->C + o / mult) * HW;
    float *restrict yo = j->y + (n * j->K + o) * OHW;
    const float *restrict wo = j->w + o * k * k;
    const float bias = j->b ? j->b[o] : 0.0f;
    for (int64_t i = 0; i < OHW; i++)
        yo[i] = bias;
    for (int64_t ky = 0; ky < k; ky++) {
        int64_t offy = ky * j->d - j->p, oy0, oy1;
        rt_tap_range(offy, s, j->H, j->OH, &oy0, &oy1);
        for (int64_t kx = 0; kx < k; kx++) {
            int64_t offx = kx * j->d - j->p, ox0, ox1;
            rt_tap_range(offx, s, W, j->OW, &ox0, &ox1);
            const int64_t cnt = ox1 - ox0;
            const float wv = wo[ky * k + kx];
            if (cnt <= 0)
                continue;
            for (int64_t oy = oy0; oy < oy1; oy++) {
                float *restrict yr = yo + oy * j->OW + ox0;
                const float *restrict xr = xc + (oy * s + offy) * W + ox0 * s + offx;
                for (int64_t i = 0; i < cnt; i++)
                    yr[i] += wv * xr[i * s];
            }
        }
    }
}

/* dx[n, c] (+)= the transposed taps of dy[n, o] for the mult outputs o of c */
static void rt_dw_bwd_x_plane(const rt_dw_job *j, int64_t n, int64_t c) {
    const int64_t mult = j->K / j->C, HW = j->H * j->W, OHW = j->OH * j->OW, k = j->k, s = j->s, W = j->W;
    float *restrict xc = j->dx + (n * j->C + c) * HW;
    if (!j->acc)
        memset(xc, 0, (size_t)HW * sizeof(float));
    for (int64_t o = c * mult; o < (c + 1) * mult; o++) {
        const float *restrict yo = j->dy + (n * j->K + o) * OHW;
        const float *restrict wo = j->w + o * k * k;
        for (int64_t ky = 0; ky < k; ky++) {
            int64_t offy = ky * j->d - j->p, oy0, oy1;
            rt_tap_range(offy, s, j->H, j->OH, &oy0, &oy1);
            for (int64_t kx = 0; kx < k; kx++) {
                int64_t offx = kx * j->d - j->p, ox0, ox1;
                rt_tap_range(offx, s, W, j->OW, &ox0, &ox1);
                const int64_t cnt = ox1 - ox0;
                const float wv = wo[ky * k + kx];
                if (cnt <= 0)
                    continue;
                for (int64_t oy = oy0; oy < oy1; oy++) {
                    const float *restrict yr = yo + oy * j->OW + ox0;
                    float *restrict xr = xc + (oy * s + offy) * W + ox0 * s + offx;
                    for (int64_t i = 0; i < cnt; i++)
                        xr[i * s] += wv * yr[i];
                }
            }
        }
    }
}

/* dw[o] (+)= sum over the images of dy[n, o] . the taps of x[n, o / mult] */
static void rt_dw_bwd_w_channel(const rt_dw_job *j, int64_t o) {
    const int64_t mult = j->K / j->C, HW = j->H * j->W, OHW = j->OH * j->OW, k = j->k, s = j->s, W = j->W;
    float *restrict wo = j->dw + o * k * k;
    if (!j->acc)
        memset(wo, 0, (size_t)(k * k) * sizeof(float));
    for (int64_t n = 0; n < j->N; n++) {
        const float *restrict xc = j->x + (n * j->C + o / mult) * HW;
        const float *restrict yo = j->dy + (n * j->K + o) * OHW;
        for (int64_t ky = 0; ky < k; ky++) {
            int64_t offy = ky * j->d - j->p, oy0, oy1;
            rt_tap_range(offy, s, j->H, j->OH, &oy0, &oy1);
            for (int64_t kx = 0; kx < k; kx++) {
                int64_t offx = kx * j->d - j->p, ox0, ox1;
                rt_tap_range(offx, s, W, j->OW, &ox0, &ox1);
                const int64_t cnt = ox1 - ox0;
                if (cnt <= 0)
                    continue;
                double t = 0.0;
                for (int64_t oy = oy0; oy < oy1; oy++)
                    t += rt_ddot_strided(yo + oy * j->OW + ox0, xc + (oy * s + offy) * W + ox0 * s + offx, cnt, s);
                wo[ky * k + kx] += (float)t;
            }
        }
    }
}

static void rt_dw_fwd_task(void *ctx, int64_t t) {
    const rt_dw_job *j = ctx;
    for (int64_t u = t * j->per; u < (t + 1) * j->per && u < j->N * j->K; u++)
        rt_dw_fwd_plane(j, u / j->K, u % j->K);
}

static void rt_dw_bwd_x_task(void *ctx, int64_t t) {
    const rt_dw_job *j = ctx;
    for (int64_t u = t * j->per; u < (t + 1) * j->per && u < j->N * j->C; u++)
        rt_dw_bwd_x_plane(j, u / j->C, u % j->C);
}

static void rt_dw_bwd_w_task(void *ctx, int64_t t) {
    const rt_dw_job *j = ctx;
    for (int64_t o = t * j->per; o < (t + 1) * j->per && o < j->K; o++)
        rt_dw_bwd_w_channel(j, o);
}

/* Depthwise: output channel o reads input channel o / (K/C) through w[o, 0,
 * :, :]; per tap, one multiply-add pass over the valid part of the plane. On
 * the pool: forward by output planes, d x by input planes (each summing its
 * mult outputs in order), d w by channels (each summing the images in order),
 * so every result is computed as on one thread. */
static void rt_conv_dw_fwd(const float *restrict x, const float *restrict w, const float *restrict b, float *restrict y,
                           int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t k, int64_t s, int64_t p,
                           int64_t d, int64_t OH, int64_t OW) {
    rt_dw_job j = {.x = x,
                   .w = w,
                   .b = b,
                   .y = y,
                   .N = N,
                   .C = C,
                   .H = H,
                   .W = W,
                   .K = K,
                   .k = k,
                   .s = s,
                   .p = p,
                   .d = d,
                   .OH = OH,
                   .OW = OW};
    rt_parallel(rt_dw_fwd_task, &j, rt_dw_tasks(&j, N * K, OH * OW * k * k));
}

static void rt_conv_dw_bwd_x(const float *restrict dy, const float *restrict w, float *restrict dx, int64_t N,
                             int64_t C, int64_t H, int64_t W, int64_t K, int64_t k, int64_t s, int64_t p, int64_t d,
                             int64_t OH, int64_t OW, int64_t acc) {
    rt_dw_job j = {.dy = dy,
                   .w = w,
                   .dx = dx,
                   .N = N,
                   .C = C,
                   .H = H,
                   .W = W,
                   .K = K,
                   .k = k,
                   .s = s,
                   .p = p,
                   .d = d,
                   .OH = OH,
                   .OW = OW,
                   .acc = acc};
    rt_parallel(rt_dw_bwd_x_task, &j, rt_dw_tasks(&j, N * C, (K / C) * OH * OW * k * k));
}

static void rt_conv_dw_bwd_w(const float *restrict dy, const float *restrict x, float *restrict dw, int64_t N,
                             int64_t C, int64_t H, int64_t W, int64_t K, int64_t k, int64_t s, int64_t p, int64_t d,
                             int64_t OH, int64_t OW, int64_t acc) {
    rt_dw_job j = {.dy = dy,
                   .x = x,
                   .dw = dw,
                   .N = N,
                   .C = C,
                   .H = H,
                   .W = W,
                   .K = K,
                   .k = k,
                   .s = s,
                   .p = p,
                   .d = d,
                   .OH = OH,
                   .OW = OW,
                   .acc = acc};
    rt_parallel(rt_dw_bwd_w_task, &j, rt_dw_tasks(&j, K, N * OH * OW * k * k));
}

/* images > 1 images per GEMM (rt.h): the scratch holds cols[CKK, m*OHW] for a
 * block of m <= images images side by side, then mat[Kg, m*OHW]: the block's
 * output (forward) or its dy packed the same way (backward). One GEMM per
 * block and group instead of one per image: deep layers have small OH*OW,
 * and GEMMs that narrow run at a fraction of the machine's speed. */
typedef struct {
    int64_t N, C, H, W, K, k, s, p, d, groups, OH, OW; /* as the kernels take them */
    int64_t Cg, Kg, CKK, HW, OHW;                      /* derived */
    int64_t images;                                    /* block size, > 1 */
    float *cols, *mat;                                 /* the scratch, split */
} rt_conv_blocks;

static rt_conv_blocks rt_conv_blocks_of(float *scratch, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                        int64_t k, int64_t s, int64_t p, int64_t d, int64_t groups, int64_t images,
                                        int64_t OH, int64_t OW) {
    const int64_t Cg = C / groups, CKK = Cg * k * k, OHW = OH * OW;
    return (rt_conv_blocks){.N = N,
                            .C = C,
                            .H = H,
                            .W = W,
                            .K = K,
                            .k = k,
                            .s = s,
                            .p = p,
                            .d = d,
                            .groups = groups,
                            .OH = OH,
                            .OW = OW,
                            .Cg = Cg,
                            .Kg = K / groups,
                            .CKK = CKK,
                            .HW = H * W,
                            .OHW = OHW,
                            .images = images,
                            .cols = scratch,
                            .mat = scratch + images * OHW * CKK};
}

/* images in the block that starts at image n0 */
static int64_t rt_conv_block_len(const rt_conv_blocks *c, int64_t n0) {
    return c->N - n0 < c->images ? c->N - n0 : c->images;
}

/* cols[CKK, m*OHW] = the columns of images n0..n0+m-1, group g, side by side */
static void rt_conv_block_im2col(const rt_conv_blocks *c, const float *x, int64_t n0, int64_t m, int64_t g) {
    for (int64_t j = 0; j < m; j++)
        rt_im2col(x + ((n0 + j) * c->C + g * c->Cg) * c->HW, c->cols + j * c->OHW, m * c->OHW, c->Cg, c->H, c->W, c->k,
                  c->s, c->p, c->d, c->OH, c->OW);
}

/* mat[Kg, m*OHW] = dy of images n0..n0+m-1, group g, side by side */
static void rt_conv_block_pack_dy(const rt_conv_blocks *c, const float *dy, int64_t n0, int64_t m, int64_t g) {
    for (int64_t o = 0; o < c->Kg; o++)
        for (int64_t j = 0; j < m; j++)
            memcpy(c->mat + (o * m + j) * c->OHW, dy + ((n0 + j) * c->K + g * c->Kg + o) * c->OHW,
                   (size_t)c->OHW * sizeof(float));
}

static void rt_conv_blocked_fwd(const rt_conv_blocks *c, const float *restrict x, const float *restrict w,
                                const float *restrict b, float *restrict y) {
    const int64_t Kg = c->Kg, CKK = c->CKK, OHW = c->OHW;
    for (int64_t n0 = 0; n0 < c->N; n0 += c->images) {
        const int64_t m = rt_conv_block_len(c, n0), ld = m * OHW;
        for (int64_t g = 0; g < c->groups; g++) {
            rt_conv_block_im2col(c, x, n0, m, g);
            rt_gemm(CblasNoTrans, CblasNoTrans, Kg, ld, CKK, w + g * Kg * CKK, CKK, c->cols, ld, 0.0f, c->mat, ld);
            for (int64_t j = 0; j < m; j++)
                for (int64_t o = 0; o < Kg; o++) {
                    const float *restrict src = c->mat + o * ld + j * OHW;
                    float *restrict yo = y + ((n0 + j) * c->K + g * Kg + o) * OHW;
                    const float bias = b ? b[g * Kg + o] : 0.0f;
                    for (int64_t i = 0; i < OHW; i++)
                        yo[i] = src[i] + bias;
                }
        }
    }
}

static void rt_conv_blocked_bwd_x(const rt_conv_blocks *c, const float *restrict dy, const float *restrict w,
                                  float *restrict dx, int64_t acc) {
    const int64_t Kg = c->Kg, CKK = c->CKK, OHW = c->OHW;
    for (int64_t n0 = 0; n0 < c->N; n0 += c->images) {
        const int64_t m = rt_conv_block_len(c, n0), ld = m * OHW;
        for (int64_t g = 0; g < c->groups; g++) {
            rt_conv_block_pack_dy(c, dy, n0, m, g);
            rt_gemm(CblasTrans, CblasNoTrans, CKK, ld, Kg, w + g * Kg * CKK, CKK, c->mat, ld, 0.0f, c->cols, ld);
            for (int64_t j = 0; j < m; j++) {
                float *dxg = dx + ((n0 + j) * c->C + g * c->Cg) * c->HW;
                if (!acc)
                    memset(dxg, 0, (size_t)(c->Cg * c->HW) * sizeof(float));
                rt_col2im_add(c->cols + j * OHW, ld, dxg, c->Cg, c->H, c->W, c->k, c->s, c->p, c->d, c->OH, c->OW);
            }
        }
    }
}

static void rt_conv_blocked_bwd_w(const rt_conv_blocks *c, const float *restrict dy, const float *restrict x,
                                  float *restrict dw, int64_t acc) {
    const int64_t Kg = c->Kg, CKK = c->CKK;
    for (int64_t n0 = 0; n0 < c->N; n0 += c->images) {
        const int64_t m = rt_conv_block_len(c, n0), ld = m * c->OHW;
        for (int64_t g = 0; g < c->groups; g++) {
            rt_conv_block_im2col(c, x, n0, m, g);
            rt_conv_block_pack_dy(c, dy, n0, m, g);
            /* dw_g[Kg,CKK] (+)= mat[Kg,ld] cols[CKK,ld]^T */
            rt_gemm(CblasNoTrans, CblasTrans, Kg, CKK, ld, c->mat, ld, c->cols, ld, acc || n0 > 0 ? 1.0f : 0.0f,
                    dw + g * Kg * CKK, CKK);
        }
    }
}

/* Implicit GEMM, with frost's GEMM: the packing reads x (or d y) in place
 * through an im2col view and C goes straight into the NCHW output, so a conv
 * is one GEMM per group over every image at once, without the im2col pass,
 * the copies of blocked images or scratch. d x of a stride-1 conv is itself a
 * conv, of d y padded by d(k-1) - p with the weights transposed and rotated
 * (rt_gemm_job.a_flip), written straight into dx instead of through col2im.
 * The packed panels hold what the explicit path's would, in the same order.
 *
 * Where it runs is measured (bench/conv_layers.c, docs/benchmarks.md):
 * stride-1 convs, forward (pointwise ones too: one GEMM over all images
 * beats one per image or block) and d weight (the panels of transposed
 * columns copied or gathered, then transposed in registers:
 * rt_cols_pack_transposed), and
 * d x where its planes are wide enough for the copy path (rt_cols_copyable)
 * and it has enough channels for the GEMM's rows. Strided convs keep the
 * explicit columns: their gathers cost more than im2col's strided copies. */
static int rt_conv_fwd_is_implicit(int64_t s) { return rt_cfg_gemm() == RT_GEMM_FROST && s == 1; }

/* d x's GEMM has one row per input channel of the group: with fewer than a
 * micro-kernel's worth (the stem's 3) most of each tile would be padding,
 * and the explicit columns (C/groups*k*k rows) do better. */
enum { RT_IMPLICIT_DX_MIN_CHANNELS = 16 };

static int rt_conv_bwd_w_is_implicit(int64_t s) { return rt_cfg_gemm() == RT_GEMM_FROST && s == 1; }

static int rt_conv_bwd_x_is_implicit(int64_t Cg, int64_t W, int64_t k, int64_t s, int64_t p, int64_t d) {
    return rt_cfg_gemm() == RT_GEMM_FROST && s == 1 && p <= d * (k - 1) && Cg >= RT_IMPLICIT_DX_MIN_CHANNELS &&
           W >= RT_COPY_MIN_OW;
}

typedef struct {
    float *y;
    const float *b;
    int64_t K, OHW;
} rt_bias_args;

/* planes [lo, hi) of y[N, K, OHW] = their channel's bias */
static void rt_bias_fill_range(const void *args, int64_t lo, int64_t hi) {
    const rt_bias_args *a = args;
    for (int64_t u = lo; u < hi; u++) {
        float *restrict yo = a->y + u * a->OHW;
        const float bias = a->b[u % a->K];
        for (int64_t i = 0; i < a->OHW; i++)
            yo[i] = bias;
    }
}

static void rt_conv_implicit_fwd(const float *x, const float *w, const float *b, float *y, int64_t N, int64_t C,
                                 int64_t H, int64_t W, int64_t K, int64_t k, int64_t s, int64_t p, int64_t d,
                                 int64_t groups, int64_t OH, int64_t OW) {
    const int64_t Cg = C / groups, Kg = K / groups, CKK = Cg * k * k, HW = H * W, OHW = OH * OW;
    if (b)
        rt_parallel_ranges(rt_bias_fill_range, &(rt_bias_args){y, b, K, OHW}, N * K, OHW, 1);
    for (int64_t g = 0; g < groups; g++) {
        rt_im2col_view v = {x + g * Cg * HW, C * HW, H, W, k, s, p, d, OH, OW, OHW};
        rt_gemm_job job = {.m = Kg,
                           .n = N * OHW,
                           .k = CKK,
                           .lda = CKK,
                           .ldc = OHW,
                           .wide = rt_cfg_wide(),
                           .a = w + g * Kg * CKK,
                           .c = y + g * Kg * OHW,
                           .beta = b ? 1.0f : 0.0f,
                           .a_group = CKK,
                           .c_group = OHW,
                           .c_group_stride = K * OHW,
                           .bcols = &v};
        rt_gemm_run(&job);
    }
}

/* dx[c, iy, ix] = sum over o, ky, kx of w[o, c, ky, kx] dy[o, iy + p - ky*d, ix + p - kx*d] */
static void rt_conv_implicit_bwd_x(const float *dy, const float *w, float *dx, int64_t N, int64_t C, int64_t H,
                                   int64_t W, int64_t K, int64_t k, int64_t p, int64_t d, int64_t groups, int64_t OH,
                                   int64_t OW, int64_t acc) {
    const int64_t Cg = C / groups, Kg = K / groups, CKK = Cg * k * k, HW = H * W, OHW = OH * OW;
    for (int64_t g = 0; g < groups; g++) {
        rt_im2col_view v = {dy + g * Kg * OHW, K * OHW, OH, OW, k, 1, d * (k - 1) - p, d, H, W, HW};
        rt_gemm_job job = {.m = Cg,
                           .n = N * HW,
                           .k = Kg * k * k,
                           .ldc = HW,
                           .wide = rt_cfg_wide(),
                           .a = w + g * Kg * CKK,
                           .c = dx + g * Cg * HW,
                           .beta = acc ? 1.0f : 0.0f,
                           .c_group = HW,
                           .c_group_stride = C * HW,
                           .a_flip = k * k,
                           .bcols = &v};
        rt_gemm_run(&job);
    }
}

/* dw_g[Kg, CKK] (+)= dy_g[Kg, N*OHW] cols[CKK, N*OHW]^T */
static void rt_conv_implicit_bwd_w(const float *dy, const float *x, float *dw, int64_t N, int64_t C, int64_t H,
                                   int64_t W, int64_t K, int64_t k, int64_t s, int64_t p, int64_t d, int64_t groups,
                                   int64_t OH, int64_t OW, int64_t acc) {
    const int64_t Cg = C / groups, Kg = K / groups, CKK = Cg * k * k, HW = H * W, OHW = OH * OW;
    for (int64_t g = 0; g < groups; g++) {
        rt_im2col_view v = {x + g * Cg * HW, C * HW, H, W, k, s, p, d, OH, OW, OHW};
        rt_gemm_job job = {.tb = 1,
                           .m = Kg,
                           .n = CKK,
                           .k = N * OHW,
                           .lda = OHW,
                           .ldc = CKK,
                           .wide = rt_cfg_wide(),
                           .a = dy + g * Kg * OHW,
                           .c = dw + g * Kg * CKK,
                           .beta = acc ? 1.0f : 0.0f,
                           .a_group = OHW,
                           .a_group_stride = K * OHW,
                           .c_group = CKK,
                           .bcols = &v};
        rt_gemm_run(&job);
    }
}

void rt_conv2d_fwd(const float *restrict x, const float *restrict w, const float *restrict b, float *restrict y,
                   float *restrict scratch, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t k, int64_t s,
                   int64_t p, int64_t d, int64_t groups, int64_t images) {
    const int64_t OH = rt_out_size(H, k, s, p, d), OW = rt_out_size(W, k, s, p, d);
    if (N <= 0 || K <= 0 || OH <= 0 || OW <= 0)
        return;
    if (rt_conv2d_is_depthwise(C, groups)) {
        rt_conv_dw_fwd(x, w, b, y, N, C, H, W, K, k, s, p, d, OH, OW);
        return;
    }
    if (rt_conv_fwd_is_implicit(s)) {
        rt_conv_implicit_fwd(x, w, b, y, N, C, H, W, K, k, s, p, d, groups, OH, OW);
        return;
    }
    if (images > 1) {
        rt_conv_blocks c = rt_conv_blocks_of(scratch, N, C, H, W, K, k, s, p, d, groups, images, OH, OW);
        rt_conv_blocked_fwd(&c, x, w, b, y);
        return;
    }
    const int64_t Cg = C / groups, Kg = K / groups, CKK = Cg * k * k, HW = H * W, OHW = OH * OW;
    const int pointwise = rt_conv_pointwise(k, s, p);
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < groups; g++) {
            const float *xg = x + (n * C + g * Cg) * HW;
            float *yg = y + (n * K + g * Kg) * OHW;
            const float *cols = xg;
            if (!pointwise) {
                rt_im2col(xg, scratch, OHW, Cg, H, W, k, s, p, d, OH, OW);
                cols = scratch;
            }
            float beta = 0.0f;
            if (b) {
                for (int64_t o = 0; o < Kg; o++) {
                    const float bo = b[g * Kg + o];
                    float *restrict yo = yg + o * OHW;
                    for (int64_t i = 0; i < OHW; i++)
                        yo[i] = bo;
                }
                beta = 1.0f;
            }
            rt_gemm(CblasNoTrans, CblasNoTrans, Kg, OHW, CKK, w + g * Kg * CKK, CKK, cols, OHW, beta, yg, OHW);
        }
}

void rt_conv2d_bwd_x(const float *restrict dy, const float *restrict w, float *restrict dx, float *restrict scratch,
                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t k, int64_t s, int64_t p, int64_t d,
                     int64_t groups, int64_t images, int64_t acc) {
    const int64_t OH = rt_out_size(H, k, s, p, d), OW = rt_out_size(W, k, s, p, d), HW = H * W;
    if (N <= 0)
        return;
    if (K <= 0 || OH <= 0 || OW <= 0) {
        if (!acc)
            memset(dx, 0, (size_t)(N * C * HW) * sizeof(float));
        return;
    }
    if (rt_conv2d_is_depthwise(C, groups)) {
        rt_conv_dw_bwd_x(dy, w, dx, N, C, H, W, K, k, s, p, d, OH, OW, acc);
        return;
    }
    if (rt_conv_bwd_x_is_implicit(C / groups, W, k, s, p, d)) {
        rt_conv_implicit_bwd_x(dy, w, dx, N, C, H, W, K, k, p, d, groups, OH, OW, acc);
        return;
    }
    if (images > 1) {
        rt_conv_blocks c = rt_conv_blocks_of(scratch, N, C, H, W, K, k, s, p, d, groups, images, OH, OW);
        rt_conv_blocked_bwd_x(&c, dy, w, dx, acc);
        return;
    }
    const int64_t Cg = C / groups, Kg = K / groups, CKK = Cg * k * k, OHW = OH * OW;
    const int pointwise = rt_conv_pointwise(k, s, p);
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < groups; g++) {
            float *dxg = dx + (n * C + g * Cg) * HW;
            const float *dyg = dy + (n * K + g * Kg) * OHW;
            const float *wg = w + g * Kg * CKK;
            if (pointwise) { /* dx_g[Cg,HW] (+)= w_g[Kg,Cg]^T dy_g[Kg,HW] */
                rt_gemm(CblasTrans, CblasNoTrans, Cg, HW, Kg, wg, CKK, dyg, OHW, acc ? 1.0f : 0.0f, dxg, HW);
                continue;
            }
            rt_gemm(CblasTrans, CblasNoTrans, CKK, OHW, Kg, wg, CKK, dyg, OHW, 0.0f, scratch, OHW);
            if (!acc)
                memset(dxg, 0, (size_t)(Cg * HW) * sizeof(float));
            rt_col2im_add(scratch, OHW, dxg, Cg, H, W, k, s, p, d, OH, OW);
        }
}

void rt_conv2d_bwd_w(const float *restrict dy, const float *restrict x, float *restrict dw, float *restrict scratch,
                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t k, int64_t s, int64_t p, int64_t d,
                     int64_t groups, int64_t images, int64_t acc) {
    const int64_t OH = rt_out_size(H, k, s, p, d), OW = rt_out_size(W, k, s, p, d);
    const int64_t Cg = C / groups, Kg = K / groups, CKK = Cg * k * k, HW = H * W, OHW = OH * OW;
    if (N <= 0 || OH <= 0 || OW <= 0) {
        if (!acc)
            memset(dw, 0, (size_t)(K * CKK) * sizeof(float));
        return;
    }
    if (rt_conv2d_is_depthwise(C, groups)) {
        rt_conv_dw_bwd_w(dy, x, dw, N, C, H, W, K, k, s, p, d, OH, OW, acc);
        return;
    }
    if (rt_conv_bwd_w_is_implicit(s)) {
        rt_conv_implicit_bwd_w(dy, x, dw, N, C, H, W, K, k, s, p, d, groups, OH, OW, acc);
        return;
    }
    if (images > 1) {
        rt_conv_blocks c = rt_conv_blocks_of(scratch, N, C, H, W, K, k, s, p, d, groups, images, OH, OW);
        rt_conv_blocked_bwd_w(&c, dy, x, dw, acc);
        return;
    }
    const int pointwise = rt_conv_pointwise(k, s, p);
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < groups; g++) {
            const float *xg = x + (n * C + g * Cg) * HW;
            const float *cols = xg;
            if (!pointwise) {
                rt_im2col(xg, scratch, OHW, Cg, H, W, k, s, p, d, OH, OW);
                cols = scratch;
            }
            /* dw_g[Kg,CKK] (+)= dy_g[Kg,OHW] cols[CKK,OHW]^T */
            rt_gemm(CblasNoTrans, CblasTrans, Kg, CKK, OHW, dy + (n * K + g * Kg) * OHW, OHW, cols, OHW,
                    acc || n > 0 ? 1.0f : 0.0f, dw + g * Kg * CKK, CKK);
        }
}

/* ---------------------------------------------------------------- batch norm
 *
 * Every kernel here works channel by channel (the batch statistics, the
 * running ones and the gradients of one channel read only its own planes),
 * so the channels are split across the pool. */

/* The arguments of the per-channel kernels, for their ranges of channels */
typedef struct {
    const float *x, *gamma, *beta, *mean, *var, *stats, *dy; /* mean, var: the running ones */
    float *running_mean, *running_var, *y, *out_stats;       /* y, dx, dgamma or db */
    int64_t N, C, HW, acc;
    float eps, momentum;
} rt_bn_args;

static void rt_sum_channels_range(const void *args, int64_t c0, int64_t c1) {
    const rt_bn_args *a = args;
    const float *restrict dy = a->dy;
    float *restrict db = a->y;
    const int64_t N = a->N, K = a->C, HW = a->HW, acc = a->acc;
    for (int64_t c = c0; c < c1; c++) {
        double t = 0.0;
        for (int64_t n = 0; n < N; n++)
            t += rt_dsum(dy + (n * K + c) * HW, HW);
        db[c] = acc ? db[c] + (float)t : (float)t;
    }
}

void rt_sum_channels(const float *restrict dy, float *restrict db, int64_t N, int64_t K, int64_t HW, int64_t acc) {
    rt_bn_args a = {.dy = dy, .y = db, .N = N, .C = K, .HW = HW, .acc = acc};
    rt_parallel_ranges(rt_sum_channels_range, &a, K, N * HW, 1);
}

/* x may be y */
static void rt_bn_train_fwd_range(const void *args, int64_t c0, int64_t c1) {
    const rt_bn_args *a = args;
    const float *x = a->x, *gamma = a->gamma, *beta = a->beta;
    float *y = a->y, *stats = a->out_stats, *running_mean = a->running_mean, *running_var = a->running_var;
    const int64_t N = a->N, C = a->C, HW = a->HW, m = N * HW;
    const float eps = a->eps, momentum = a->momentum;
    for (int64_t c = c0; c < c1; c++) {
        /* One pass of shifted sums in double: with the shift a sample of the
         * channel, s2/m - (s1/m)^2 does not cancel catastrophically. */
        double mean = 0.0, var = 0.0;
        if (m > 0) {
            const double shift = (double)x[c * HW];
            double s1 = 0.0, s2 = 0.0;
            for (int64_t n = 0; n < N; n++)
                rt_moments(x + (n * C + c) * HW, HW, shift, &s1, &s2);
            const double dm = s1 / (double)m;
            mean = shift + dm;
            var = s2 / (double)m - dm * dm;
            if (var < 0.0)
                var = 0.0;
        }
        const double invstd = 1.0 / sqrt(var + (double)eps);
        const float meanf = (float)mean, scale = (float)(invstd * (double)gamma[c]), bc = beta[c];
        const float unbiased = (float)(m > 1 ? var * (double)m / (double)(m - 1) : var);
        /* Everything this channel needs from x is read: y may now overwrite it. */
        for (int64_t n = 0; n < N; n++)
            rt_affine(x + (n * C + c) * HW, y + (n * C + c) * HW, HW, meanf, scale, bc);
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * meanf;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * unbiased;
        if (stats) {
            stats[c] = meanf;
            stats[C + c] = (float)invstd;
        }
    }
}

void rt_bn_train_fwd(const float *x, const float *gamma, const float *beta, float *running_mean, float *running_var,
                     int64_t *num_batches, float *y, float *stats, int64_t N, int64_t C, int64_t HW, float eps,
                     float momentum) {
    rt_bn_args a = {.x = x,
                    .gamma = gamma,
                    .beta = beta,
                    .running_mean = running_mean,
                    .running_var = running_var,
                    .y = y,
                    .out_stats = stats,
                    .N = N,
                    .C = C,
                    .HW = HW,
                    .eps = eps,
                    .momentum = momentum};
    rt_parallel_ranges(rt_bn_train_fwd_range, &a, C, 2 * N * HW, 1);
    *num_batches += 1;
}

static void rt_bn_train_bwd_x_range(const void *args, int64_t c0, int64_t c1) {
    const rt_bn_args *a = args;
    const float *restrict x = a->x, *restrict gamma = a->gamma, *restrict stats = a->stats, *restrict dy = a->dy;
    float *restrict dx = a->y;
    const int64_t N = a->N, C = a->C, HW = a->HW, acc = a->acc, m = N * HW;
    for (int64_t c = c0; c < c1; c++) {
        const float meanf = stats[c];
        const double inv = (double)stats[C + c];
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t n = 0; n < N; n++)
            rt_bn_sums(x + (n * C + c) * HW, dy + (n * C + c) * HW, HW, (double)meanf, &sdy, &sdyx);
        /* dx = kc dy - kc sdy/m - kc inv^2 sdyx/m (x - mean), kc = inv gamma */
        const double kc = inv * (double)gamma[c];
        const float k = (float)kc, b0 = (float)(-kc * sdy / (double)m),
                    bx = (float)(-kc * inv * inv * sdyx / (double)m);
        for (int64_t n = 0; n < N; n++) {
            const float *restrict xs = x + (n * C + c) * HW;
            const float *restrict ds = dy + (n * C + c) * HW;
            float *restrict dd = dx + (n * C + c) * HW;
            if (acc) {
                for (int64_t i = 0; i < HW; i++)
                    dd[i] += k * ds[i] + bx * (xs[i] - meanf) + b0;
            } else {
                for (int64_t i = 0; i < HW; i++)
                    dd[i] = k * ds[i] + bx * (xs[i] - meanf) + b0;
            }
        }
    }
}

void rt_bn_train_bwd_x(const float *restrict x, const float *restrict gamma, const float *restrict stats,
                       const float *restrict dy, float *restrict dx, int64_t N, int64_t C, int64_t HW, int64_t acc) {
    if (N * HW <= 0)
        return;
    rt_bn_args a = {.x = x, .gamma = gamma, .stats = stats, .dy = dy, .y = dx, .N = N, .C = C, .HW = HW, .acc = acc};
    rt_parallel_ranges(rt_bn_train_bwd_x_range, &a, C, 3 * N * HW, 1);
}

static void rt_bn_train_bwd_gamma_range(const void *args, int64_t c0, int64_t c1) {
    const rt_bn_args *a = args;
    const float *restrict x = a->x, *restrict stats = a->stats, *restrict dy = a->dy;
    float *restrict dgamma = a->y;
    const int64_t N = a->N, C = a->C, HW = a->HW, acc = a->acc;
    for (int64_t c = c0; c < c1; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t n = 0; n < N; n++)
            rt_bn_sums(x + (n * C + c) * HW, dy + (n * C + c) * HW, HW, (double)stats[c], &sdy, &sdyx);
        const float g = (float)((double)stats[C + c] * sdyx);
        dgamma[c] = acc ? dgamma[c] + g : g;
    }
}

void rt_bn_train_bwd_gamma(const float *restrict x, const float *restrict stats, const float *restrict dy,
                           float *restrict dgamma, int64_t N, int64_t C, int64_t HW, int64_t acc) {
    rt_bn_args a = {.x = x, .stats = stats, .dy = dy, .y = dgamma, .N = N, .C = C, .HW = HW, .acc = acc};
    rt_parallel_ranges(rt_bn_train_bwd_gamma_range, &a, C, 2 * N * HW, 1);
}

/* x may be y */
static void rt_bn_eval_fwd_range(const void *args, int64_t c0, int64_t c1) {
    const rt_bn_args *a = args;
    const float *x = a->x, *gamma = a->gamma, *beta = a->beta, *running_mean = a->mean, *running_var = a->var;
    float *y = a->y;
    const int64_t N = a->N, C = a->C, HW = a->HW;
    const float eps = a->eps;
    for (int64_t c = c0; c < c1; c++) {
        const float scale = (float)((double)gamma[c] / sqrt((double)running_var[c] + (double)eps));
        const float mc = running_mean[c], bc = beta[c];
        for (int64_t n = 0; n < N; n++)
            rt_affine(x + (n * C + c) * HW, y + (n * C + c) * HW, HW, mc, scale, bc);
    }
}

void rt_bn_eval_fwd(const float *x, const float *gamma, const float *beta, const float *running_mean,
                    const float *running_var, float *y, int64_t N, int64_t C, int64_t HW, float eps) {
    rt_bn_args a = {.x = x,
                    .gamma = gamma,
                    .beta = beta,
                    .mean = running_mean,
                    .var = running_var,
                    .y = y,
                    .N = N,
                    .C = C,
                    .HW = HW,
                    .eps = eps};
    rt_parallel_ranges(rt_bn_eval_fwd_range, &a, C, 2 * N * HW, 1);
}

static void rt_bn_eval_bwd_x_range(const void *args, int64_t c0, int64_t c1) {
    const rt_bn_args *a = args;
    const float *restrict gamma = a->gamma, *restrict running_var = a->var, *restrict dy = a->dy;
    float *restrict dx = a->y;
    const int64_t N = a->N, C = a->C, HW = a->HW, acc = a->acc;
    const float eps = a->eps;
    for (int64_t c = c0; c < c1; c++) {
        const float scale = (float)((double)gamma[c] / sqrt((double)running_var[c] + (double)eps));
        for (int64_t n = 0; n < N; n++)
            rt_scale_acc(dy + (n * C + c) * HW, dx + (n * C + c) * HW, HW, scale, acc);
    }
}

void rt_bn_eval_bwd_x(const float *restrict gamma, const float *restrict running_var, const float *restrict dy,
                      float *restrict dx, int64_t N, int64_t C, int64_t HW, int64_t acc, float eps) {
    rt_bn_args a = {
        .gamma = gamma, .var = running_var, .dy = dy, .y = dx, .N = N, .C = C, .HW = HW, .acc = acc, .eps = eps};
    rt_parallel_ranges(rt_bn_eval_bwd_x_range, &a, C, 2 * N * HW, 1);
}

static void rt_bn_eval_bwd_gamma_range(const void *args, int64_t c0, int64_t c1) {
    const rt_bn_args *a = args;
    const float *restrict x = a->x, *restrict running_mean = a->mean, *restrict running_var = a->var,
                          *restrict dy = a->dy;
    float *restrict dgamma = a->y;
    const int64_t N = a->N, C = a->C, HW = a->HW, acc = a->acc;
    const float eps = a->eps;
    for (int64_t c = c0; c < c1; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t n = 0; n < N; n++)
            rt_bn_sums(x + (n * C + c) * HW, dy + (n * C + c) * HW, HW, (double)running_mean[c], &sdy, &sdyx);
        const float g = (float)(sdyx / sqrt((double)running_var[c] + (double)eps));
        dgamma[c] = acc ? dgamma[c] + g : g;
    }
}

void rt_bn_eval_bwd_gamma(const float *restrict x, const float *restrict running_mean,
                          const float *restrict running_var, const float *restrict dy, float *restrict dgamma,
                          int64_t N, int64_t C, int64_t HW, int64_t acc, float eps) {
    rt_bn_args a = {.x = x,
                    .mean = running_mean,
                    .var = running_var,
                    .dy = dy,
                    .y = dgamma,
                    .N = N,
                    .C = C,
                    .HW = HW,
                    .acc = acc,
                    .eps = eps};
    rt_parallel_ranges(rt_bn_eval_bwd_gamma_range, &a, C, 2 * N * HW, 1);
}

/* ---------------------------------------------------------------- pooling */

/* The window of output o along one axis starts at input i0 = o*s - p; its
 * taps t in [*t0, *t1) are inside [0, n). */
static inline void rt_window(int64_t i0, int64_t k, int64_t n, int64_t *t0, int64_t *t1) {
    *t0 = i0 < 0 ? -i0 : 0;
    *t1 = n - i0 < k ? n - i0 : k;
}

/* Max-pool update of one window by one tap: v wins over the best so far if
 * larger, or if it is the first NaN (NaN then sticks: NaN > x and x > NaN
 * are false). Taps are visited in row-major order, so ties keep the first. */
static inline int rt_max_wins(float v, float best) { return v > best || (v != v && best == best); }

enum { RT_POOL_CHUNK = 64 };

/* The arguments of the pooling kernels, for their ranges of planes (each
 * plane's outputs read and write only that plane) */
typedef struct {
    const float *x; /* x, or dy */
    const uint8_t *argmax_in;
    float *y; /* y, or dx */
    uint8_t *argmax;
    int64_t H, W, k, s, p, acc;
} rt_pool2d_args;

static void rt_maxpool_fwd_planes(const void *args, int64_t pl0, int64_t pl1) {
    const rt_pool2d_args *a = args;
    const float *restrict x = a->x;
    float *restrict y = a->y;
    uint8_t *restrict argmax = a->argmax;
    const int64_t H = a->H, W = a->W, k = a->k, s = a->s, p = a->p;
    const int64_t OH = rt_out_size(H, k, s, p, 1), OW = rt_out_size(W, k, s, p, 1);
    /* Interior columns [cx0, cx1): the window's taps kx = 0..k-1 are all inside. */
    int64_t cx0, cx1;
    rt_tap_range(-p, s, W - k + 1, OW, &cx0, &cx1);
    for (int64_t pl = pl0; pl < pl1; pl++) {
        const float *restrict xp = x + pl * H * W;
        float *restrict yp = y + pl * OH * OW;
        uint8_t *restrict ap = argmax ? argmax + pl * OH * OW : NULL;
        for (int64_t oy = 0; oy < OH; oy++) {
            int64_t iy0 = oy * s - p, ky0, ky1;
            rt_window(iy0, k, H, &ky0, &ky1);
            float *restrict yr = yp + oy * OW;
            /* Interior columns in chunks, tap by tap: branch-free selects the
             * vectoriser takes across outputs. */
            for (int64_t c0 = cx0; c0 < cx1; c0 += RT_POOL_CHUNK) {
                const int64_t cn = cx1 - c0 < RT_POOL_CHUNK ? cx1 - c0 : RT_POOL_CHUNK;
                float best[RT_POOL_CHUNK];
                uint8_t bi[RT_POOL_CHUNK];
                for (int64_t j = 0; j < cn; j++) {
                    best[j] = -INFINITY;
                    bi[j] = (uint8_t)(ky0 < ky1 ? ky0 * k : 0);
                }
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const float *restrict xr = xp + (iy0 + ky) * W + c0 * s - p;
                    for (int64_t kx = 0; kx < k; kx++) {
                        const uint8_t pos = (uint8_t)(ky * k + kx);
                        for (int64_t j = 0; j < cn; j++) {
                            const float v = xr[j * s + kx];
                            const int win = rt_max_wins(v, best[j]);
                            best[j] = win ? v : best[j];
                            bi[j] = win ? pos : bi[j];
                        }
                    }
                }
                for (int64_t j = 0; j < cn; j++)
                    yr[c0 + j] = best[j];
                if (ap)
                    for (int64_t j = 0; j < cn; j++)
                        ap[oy * OW + c0 + j] = bi[j];
            }
            /* Border columns [0, cx0) and [cx1, OW): windows cut by the padding. */
            for (int64_t part = 0; part < 2; part++) {
                const int64_t lo = part ? cx1 : 0, hi = part ? OW : cx0;
                for (int64_t ox = lo; ox < hi; ox++) {
                    int64_t ix0 = ox * s - p, kx0, kx1;
                    rt_window(ix0, k, W, &kx0, &kx1);
                    float best = -INFINITY;
                    /* the first tap inside the image; 0 for an all-padding
                     * window (impossible when p <= k/2, as PyTorch requires) */
                    int64_t bi = ky0 < ky1 && kx0 < kx1 ? ky0 * k + kx0 : 0;
                    for (int64_t ky = ky0; ky < ky1; ky++) {
                        const int64_t base = (iy0 + ky) * W + ix0;
                        for (int64_t kx = kx0; kx < kx1; kx++) {
                            const float v = xp[base + kx];
                            if (rt_max_wins(v, best)) {
                                best = v;
                                bi = ky * k + kx;
                            }
                        }
                    }
                    yr[ox] = best;
                    if (ap)
                        ap[oy * OW + ox] = (uint8_t)bi;
                }
            }
        }
    }
}

void rt_maxpool_fwd(const float *restrict x, float *restrict y, uint8_t *restrict argmax, int64_t NC, int64_t H,
                    int64_t W, int64_t k, int64_t s, int64_t p) {
    rt_pool2d_args a = {.x = x, .y = y, .argmax = argmax, .H = H, .W = W, .k = k, .s = s, .p = p};
    rt_parallel_ranges(rt_maxpool_fwd_planes, &a, NC, H * W + rt_out_size(H, k, s, p, 1) * rt_out_size(W, k, s, p, 1),
                       1);
}

static void rt_maxpool_bwd_planes(const void *args, int64_t pl0, int64_t pl1) {
    const rt_pool2d_args *a = args;
    const uint8_t *restrict argmax = a->argmax_in;
    const float *restrict dy = a->x;
    float *restrict dx = a->y;
    const int64_t H = a->H, W = a->W, k = a->k, s = a->s, p = a->p;
    const int64_t OH = rt_out_size(H, k, s, p, 1), OW = rt_out_size(W, k, s, p, 1);
    if (!a->acc)
        memset(dx + pl0 * H * W, 0, (size_t)((pl1 - pl0) * H * W) * sizeof(float));
    /* argmax position -> (ky, kx) without a division per element */
    int16_t tky[RT_POOL_WINDOW_MAX], tkx[RT_POOL_WINDOW_MAX];
    const int64_t kk = k * k < RT_POOL_WINDOW_MAX ? k * k : RT_POOL_WINDOW_MAX;
    for (int64_t i = 0; i < kk; i++) {
        tky[i] = (int16_t)(i / k);
        tkx[i] = (int16_t)(i % k);
    }
    for (int64_t i = kk; i < RT_POOL_WINDOW_MAX; i++) /* never produced by rt_maxpool_fwd */
        tky[i] = tkx[i] = 0;
    for (int64_t pl = pl0; pl < pl1; pl++) {
        const uint8_t *restrict ap = argmax + pl * OH * OW;
        const float *restrict dyp = dy + pl * OH * OW;
        float *restrict dxp = dx + pl * H * W;
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                const int pos = ap[oy * OW + ox];
                const int64_t iy = oy * s - p + tky[pos], ix = ox * s - p + tkx[pos];
                if (iy >= 0 && iy < H && ix >= 0 && ix < W) /* false only for all-padding windows */
                    dxp[iy * W + ix] += dyp[oy * OW + ox];
            }
    }
}

void rt_maxpool_bwd(const uint8_t *restrict argmax, const float *restrict dy, float *restrict dx, int64_t NC, int64_t H,
                    int64_t W, int64_t k, int64_t s, int64_t p, int64_t acc) {
    rt_pool2d_args a = {.argmax_in = argmax, .x = dy, .y = dx, .H = H, .W = W, .k = k, .s = s, .p = p, .acc = acc};
    rt_parallel_ranges(rt_maxpool_bwd_planes, &a, NC,
                       H * W + 2 * rt_out_size(H, k, s, p, 1) * rt_out_size(W, k, s, p, 1), 1);
}

void rt_avgpool_fwd(const float *restrict x, float *restrict y, int64_t NC, int64_t H, int64_t W, int64_t k, int64_t s,
                    int64_t p) {
    const int64_t OH = rt_out_size(H, k, s, p, 1), OW = rt_out_size(W, k, s, p, 1);
    const float inv = 1.0f / (float)(k * k);
    for (int64_t pl = 0; pl < NC; pl++) {
        const float *restrict xp = x + pl * H * W;
        float *restrict yp = y + pl * OH * OW;
        for (int64_t oy = 0; oy < OH; oy++) {
            int64_t iy0 = oy * s - p, ky0, ky1;
            rt_window(iy0, k, H, &ky0, &ky1);
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t ix0 = ox * s - p, kx0, kx1;
                rt_window(ix0, k, W, &kx0, &kx1);
                float sum = 0.0f;
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const int64_t base = (iy0 + ky) * W + ix0;
                    for (int64_t kx = kx0; kx < kx1; kx++)
                        sum += xp[base + kx];
                }
                yp[oy * OW + ox] = sum * inv;
            }
        }
    }
}

void rt_avgpool_bwd(const float *restrict dy, float *restrict dx, int64_t NC, int64_t H, int64_t W, int64_t k,
                    int64_t s, int64_t p, int64_t acc) {
    const int64_t OH = rt_out_size(H, k, s, p, 1), OW = rt_out_size(W, k, s, p, 1);
    const float inv = 1.0f / (float)(k * k);
    if (!acc)
        memset(dx, 0, (size_t)(NC * H * W) * sizeof(float));
    for (int64_t pl = 0; pl < NC; pl++) {
        const float *restrict dyp = dy + pl * OH * OW;
        float *restrict dxp = dx + pl * H * W;
        for (int64_t oy = 0; oy < OH; oy++) {
            int64_t iy0 = oy * s - p, ky0, ky1;
            rt_window(iy0, k, H, &ky0, &ky1);
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t ix0 = ox * s - p, kx0, kx1;
                rt_window(ix0, k, W, &kx0, &kx1);
                const float g = dyp[oy * OW + ox] * inv;
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const int64_t base = (iy0 + ky) * W + ix0;
                    for (int64_t kx = kx0; kx < kx1; kx++)
                        dxp[base + kx] += g;
                }
            }
        }
    }
}

void rt_global_avgpool_fwd(const float *restrict x, float *restrict y, int64_t NC, int64_t HW) {
    const double inv = HW > 0 ? 1.0 / (double)HW : 0.0;
    for (int64_t i = 0; i < NC; i++)
        y[i] = (float)(rt_dsum(x + i * HW, HW) * inv);
}

void rt_global_avgpool_bwd(const float *restrict dy, float *restrict dx, int64_t NC, int64_t HW, int64_t acc) {
    const float inv = HW > 0 ? 1.0f / (float)HW : 0.0f;
    for (int64_t i = 0; i < NC; i++) {
        const float g = dy[i] * inv;
        float *restrict d = dx + i * HW;
        if (acc) {
            for (int64_t j = 0; j < HW; j++)
                d[j] += g;
        } else {
            for (int64_t j = 0; j < HW; j++)
                d[j] = g;
        }
    }
}

/* ---------------------------------------------------------------- dropout */

static inline uint64_t rt_dropout_key(int64_t seed) {
    return rt_mix64((uint64_t)seed ^ 0x64726f706f75742eull); /* "dropout." */
}

/* u_i >= p with u_i = q_i * 2^-24 and q_i an integer is q_i >= ceil(p * 2^24)
 * (p * 2^24 is exact in float): an integer test, the same mask. */
static inline uint64_t rt_dropout_threshold(float p) {
    if (!(p > 0.0f))
        return 0;
    if (p >= 1.0f)
        return UINT64_C(1) << 24;
    return (uint64_t)ceilf(p * 16777216.0f);
}

static inline float rt_dropout_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

RT_ELEMENTWISE void rt_dropout_body(const float *x, float *y, int64_t n, uint64_t key, uint64_t thresh, float scale,
                                    int64_t acc) {
    if (acc) {
        for (int64_t i = 0; i < n; i++) {
            const uint64_t q = rt_mix64(key + (uint64_t)i) >> 40;
            y[i] += q >= thresh ? x[i] * scale : 0.0f;
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const uint64_t q = rt_mix64(key + (uint64_t)i) >> 40;
            y[i] = q >= thresh ? x[i] * scale : 0.0f;
        }
    }
}

void rt_dropout_fwd(const float *x, float *y, int64_t *rng_state, int64_t *seed_out, int64_t n, float p) {
    const int64_t seed = *rng_state;
    *rng_state = (int64_t)((uint64_t)seed + 1u);
    if (seed_out)
        *seed_out = seed;
    const uint64_t key = rt_dropout_key(seed), thresh = rt_dropout_threshold(p);
    const float scale = rt_dropout_scale(p);
    if (x == y)
        rt_dropout_body(y, y, n, key, thresh, scale, 0);
    else
        rt_dropout_body(x, y, n, key, thresh, scale, 0);
}

void rt_dropout_bwd(const int64_t *restrict seed, const float *restrict dy, float *restrict dx, int64_t n, int64_t acc,
                    float p) {
    rt_dropout_body(dy, dx, n, rt_dropout_key(*seed), rt_dropout_threshold(p), rt_dropout_scale(p), acc);
}
