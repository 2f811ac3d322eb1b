/* peak_flops.c: the FP32 peak of this machine, measured: fused multiply-adds
 * on the widest vector units (AVX-512 and AVX2+FMA, when the CPU has them),
 * on one core and on every core at once. The reference for the GFLOP/s that
 * docs/benchmarks.md reports for frost's steps.
 *
 *   cc -O2 -pthread bench/peak_flops.c -o peak_flops && ./peak_flops [SECONDS]
 *
 * Each thread runs independent chains of a = a * b + c on full vectors (16
 * with AVX-512, 12 with AVX2: enough to hide the FMA latency on two FMA
 * ports, few enough to stay in registers), in blocks of 2^20
 * iterations until SECONDS (default 1) have passed; a flop count of 2 per
 * lane per FMA. The chains' results are summed and printed, so nothing is
 * optimised away. Threads: 1, then every online CPU. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CHAINS 16  /* AVX-512: of 32 vector registers */
#define CHAINS8 12 /* AVX2: of 16, b and c need two */
#define BLOCK (1 << 20)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));

/* One block of FMAs on LANES-wide vectors of type V, CHAINS_ chains, for the
 * target TARGET; returns the flops done. */
#define DEFINE_BLOCK(NAME, V, LANES, CHAINS_, TARGET)                           \
    __attribute__((target(TARGET), noinline)) static double NAME(float *sink) { \
        V a[CHAINS_], b = {0}, c = {0};                                         \
        for (int k = 0; k < LANES; k++)                                         \
            b[k] = 0.999999f, c[k] = 1e-7f;                                     \
        for (int i = 0; i < CHAINS_; i++)                                       \
            for (int k = 0; k < LANES; k++)                                     \
                a[i][k] = (float)(i + k);                                       \
        for (int it = 0; it < BLOCK; it++)                                      \
            _Pragma("GCC unroll 16") /* every chain its own register */         \
                for (int i = 0; i < CHAINS_; i++) a[i] = a[i] * b + c;          \
        float s = 0;                                                            \
        for (int i = 0; i < CHAINS_; i++)                                       \
            for (int k = 0; k < LANES; k++)                                     \
                s += a[i][k];                                                   \
        *sink += s;                                                             \
        return 2.0 * LANES * CHAINS_ * (double)BLOCK;                           \
    }

DEFINE_BLOCK(block512, v16, 16, CHAINS, "avx512f")
DEFINE_BLOCK(block256, v8, 8, CHAINS8, "avx2,fma")

typedef struct {
    double (*block)(float *);
    double seconds, flops, elapsed;
    float sink;
    pthread_barrier_t *start;
} job;

static void *run(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->start);
    double t0 = now(), t;
    do
        j->flops += j->block(&j->sink);
    while ((t = now()) - t0 < j->seconds);
    j->elapsed = t - t0;
    return NULL;
}

/* GFLOP/s of `threads` threads running `block` at once (their sum). */
static double measure(double (*block)(float *), int threads, double seconds) {
    job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){.block = block, .seconds = seconds, .start = &start};
        pthread_create(&tid[i], NULL, run, &jobs[i]);
    }
    double total = 0, sink = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        total += jobs[i].flops / jobs[i].elapsed;
        sink += jobs[i].sink;
    }
    pthread_barrier_destroy(&start);
    free(jobs);
    free(tid);
    if (sink == 12345.0) /* never: keeps the sums alive */
        puts("");
    return total / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (!(seconds > 0)) {
        fprintf(stderr, "usage: peak_flops [SECONDS > 0]\n");
        return 2;
    }
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    __builtin_cpu_init();
    printf("FP32 FMA peak, %d online CPU%s, %.1f s per measurement\n\n", cpus, cpus == 1 ? "" : "s", seconds);
    printf("| unit | 1 thread GFLOP/s | %d threads GFLOP/s |\n|---|---:|---:|\n", cpus);
    if (__builtin_cpu_supports("avx512f"))
        printf("| AVX-512 (16 lanes) | %.1f | %.1f |\n", measure(block512, 1, seconds),
               measure(block512, cpus, seconds));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        printf("| AVX2 + FMA (8 lanes) | %.1f | %.1f |\n", measure(block256, 1, seconds),
               measure(block256, cpus, seconds));
    return 0;
}
