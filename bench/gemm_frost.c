/* gemm_frost.c: frost's SGEMM (runtime/rt.c, rt_sgemm) against OpenBLAS's
 * cblas_sgemm on one shape, in GFLOP/s. The runtime is compiled natively for
 * this CPU, as frost compile would target it:
 *
 *   clang -O3 -march=native -Iruntime bench/gemm_frost.c runtime/rt.c runtime/rt_native.c \
 *       -lopenblas -lm -lpthread -o build/bench/gemm_frost
 *   OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=2 build/bench/gemm_frost M N K TA TB [THREADS [WIDE]]
 *
 * C[M,N] = op(A) op(B), op transposing when TA / TB is 1; THREADS (default
 * 1) for both, WIDE (default 1) picks the 512-bit micro-kernel. Best of five
 * alternating rounds of about 1 GFLOP each. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rt.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: gemm_frost M N K TA TB [THREADS [WIDE]]\n");
        return 2;
    }
    int64_t m = atol(argv[1]), n = atol(argv[2]), k = atol(argv[3]), ta = atol(argv[4]), tb = atol(argv[5]);
    int64_t threads = argc > 6 ? atol(argv[6]) : 1, wide = argc > 7 ? atol(argv[7]) : 1;
    rt_pool_start(threads);
    float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n)),
          *c = malloc(sizeof(float) * (size_t)(m * n));
    if (!a || !b || !c)
        return 1;
    for (int64_t i = 0; i < m * k; i++)
        a[i] = (float)(i % 7) - 3.0f;
    for (int64_t i = 0; i < k * n; i++)
        b[i] = (float)(i % 5) - 2.0f;
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    int reps = (int)(1e9 / (2.0 * (double)(m * n * k))) + 1;
    rt_sgemm(ta, tb, m, n, k, a, lda, b, ldb, 0.0f, c, n, wide);
    /* the two alternate, five rounds of about 1 GFLOP each; the best round
     * of each counts (this machine's neighbours come and go) */
    double best_frost = 1e300, best_blas = 1e300;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (int r = 0; r < reps; r++)
            rt_sgemm(ta, tb, m, n, k, a, lda, b, ldb, 0.0f, c, n, wide);
        double t1 = now();
        for (int r = 0; r < reps; r++)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m,
                        (blasint)n, (blasint)k, 1.0f, a, (blasint)lda, b, (blasint)ldb, 0.0f, c, (blasint)n);
        double t2 = now();
        best_frost = t1 - t0 < best_frost ? t1 - t0 : best_frost;
        best_blas = t2 - t1 < best_blas ? t2 - t1 : best_blas;
    }
    double flop = 2.0 * (double)(m * n * k) * reps;
    printf("%lld x %lld x %lld, ta %lld tb %lld, %lld threads: frost %.1f GFLOP/s, OpenBLAS %.1f GFLOP/s\n",
           (long long)m, (long long)n, (long long)k, (long long)ta, (long long)tb, (long long)threads,
           flop / best_frost / 1e9, flop / best_blas / 1e9);
    free(a);
    free(b);
    free(c);
    return 0;
}
