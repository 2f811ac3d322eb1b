/* conv_layers.c: GFLOP/s of each distinct convolution of resnet18_cifar
 * (batch 32) as frost's runtime runs it — im2col, the GEMM, col2im, on the
 * pool — with frost's SGEMM and with OpenBLAS's, forward, d x and d weight,
 * and against the machine's peak. The runtime is compiled natively for this
 * CPU, as frost compile would target it:
 *
 *   clang -O3 -march=native -Iruntime bench/conv_layers.c runtime/rt.c runtime/rt_native.c \
 *       -lopenblas -lm -lpthread -o build/bench/conv_layers
 *   OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=2 build/bench/conv_layers [THREADS [PEAK]]
 *
 * THREADS (default 2) for the pool and, through the environment, OpenBLAS;
 * PEAK the machine's FP32 GFLOP/s on that many threads (bench/peak_flops.c)
 * adds a column of fractions of it. Each conv takes blocks of images up to
 * 512 GEMM columns, as the compiler does when the arena has room at that
 * step (ir/ops.c CONV_GEMM_COLUMNS). Each cell is the best of five
 * alternating rounds over the whole batch: this kind of machine drifts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt.h"

void rt_native_set_gemm(int64_t gemm, int64_t wide);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *filled(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(i % 13) * 0.01f - 0.06f;
    return p;
}

typedef struct {
    const char *name;
    int64_t C, H, K, k, s, p, count; /* count: how many of the net's convs have this shape */
} layer;

static const layer layers[] = {
    {"stem", 3, 32, 64, 3, 1, 1, 1},
    {"layer1", 64, 32, 64, 3, 1, 1, 4},
    {"layer2.0", 64, 32, 128, 3, 2, 1, 1},
    {"layer2", 128, 16, 128, 3, 1, 1, 3},
    {"layer2 shortcut", 64, 32, 128, 1, 2, 0, 1},
    {"layer3.0", 128, 16, 256, 3, 2, 1, 1},
    {"layer3", 256, 8, 256, 3, 1, 1, 3},
    {"layer3 shortcut", 128, 16, 256, 1, 2, 0, 1},
    {"layer4.0", 256, 8, 512, 3, 2, 1, 1},
    {"layer4", 512, 4, 512, 3, 1, 1, 3},
    {"layer4 shortcut", 256, 8, 512, 1, 2, 0, 1},
};

enum { N = 32, COLUMNS = 512, ROUNDS = 5 };

/* seconds of one pass over the batch: op 0 forward, 1 d x, 2 d weight */
static double run(const layer *l, int op, int64_t images, float *x, float *w, float *y, float *scratch) {
    double t0 = now();
    if (op == 0)
        rt_conv2d_fwd(x, w, NULL, y, scratch, N, l->C, l->H, l->H, l->K, l->k, l->s, l->p, 1, 1, images);
    else if (op == 1)
        rt_conv2d_bwd_x(y, w, x, scratch, N, l->C, l->H, l->H, l->K, l->k, l->s, l->p, 1, 1, images, 0);
    else
        rt_conv2d_bwd_w(y, x, w, scratch, N, l->C, l->H, l->H, l->K, l->k, l->s, l->p, 1, 1, images, 0);
    return now() - t0;
}

int main(int argc, char **argv) {
    int64_t threads = argc > 1 ? atol(argv[1]) : 2;
    double peak = argc > 2 ? atof(argv[2]) : 0.0;
    threads = rt_pool_start(threads);
    int wide = __builtin_cpu_supports("avx512f");
    printf("resnet18_cifar's convolutions, batch %d, %lld threads, frost's %s micro-kernel; GFLOP/s (frost / "
           "OpenBLAS)%s\n\n",
           N, (long long)threads, wide ? "512-bit" : "256-bit", peak > 0 ? " and frost's fraction of the peak" : "");
    printf("| conv | C -> K, side, k/s | images per GEMM | forward | d x | d weight |%s\n",
           peak > 0 ? " frost / peak (fwd, dx, dw) |" : "");
    printf("|---|---|---:|---|---|---|%s\n", peak > 0 ? "---|" : "");
    double total_flop = 0.0, total_frost = 0.0, total_blas = 0.0;
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        const layer *l = &layers[i];
        int64_t OH = rt_out_size(l->H, l->k, l->s, l->p, 1), OHW = OH * OH;
        int64_t images = COLUMNS / OHW > 1 ? COLUMNS / OHW : 1;
        images = images > N ? N : images;
        int64_t sf = images > 1
                         ? images * rt_conv2d_blocked_scratch_floats(l->C, l->H, l->H, l->K, l->k, l->s, l->p, 1, 1)
                         : rt_conv2d_scratch_floats(l->C, l->H, l->H, l->k, l->s, l->p, 1, 1);
        float *x = filled(N * l->C * l->H * l->H), *w = filled(l->K * l->C * l->k * l->k), *y = filled(N * l->K * OHW),
              *scratch = filled(sf);
        double flop = 2.0 * N * l->K * OHW * l->C * l->k * l->k, best[2][3];
        for (int g = 0; g < 2; g++)
            for (int op = 0; op < 3; op++)
                best[g][op] = 1e300;
        for (int r = 0; r < ROUNDS; r++)
            for (int op = 0; op < 3; op++)
                for (int g = 0; g < 2; g++) {
                    rt_native_set_gemm(g == 0 ? RT_GEMM_FROST : RT_GEMM_OPENBLAS, wide);
                    double t = run(l, op, images, x, w, y, scratch);
                    best[g][op] = t < best[g][op] ? t : best[g][op];
                }
        printf("| %s | %lld -> %lld, %lld, %lldx%lld/%lld | %lld |", l->name, (long long)l->C, (long long)l->K,
               (long long)l->H, (long long)l->k, (long long)l->k, (long long)l->s, (long long)images);
        for (int op = 0; op < 3; op++)
            printf(" %.0f / %.0f |", flop / best[0][op] / 1e9, flop / best[1][op] / 1e9);
        if (peak > 0)
            printf(" %.2f, %.2f, %.2f |", flop / best[0][0] / 1e9 / peak, flop / best[0][1] / 1e9 / peak,
                   flop / best[0][2] / 1e9 / peak);
        printf("\n");
        /* the stem's d x is not part of a training step (the images need no gradient) */
        for (int op = 0; op < 3; op++) {
            if (i == 0 && op == 1)
                continue;
            total_flop += flop * (double)l->count;
            total_frost += best[0][op] * (double)l->count;
            total_blas += best[1][op] * (double)l->count;
        }
        free(x), free(w), free(y), free(scratch);
    }
    printf(
        "\nevery conv of a training step: %.1f GFLOP, frost %.0f ms (%.0f GFLOP/s), OpenBLAS %.0f ms (%.0f GFLOP/s)\n",
        total_flop / 1e9, total_frost * 1e3, total_flop / total_frost / 1e9, total_blas * 1e3,
        total_flop / total_blas / 1e9);
    rt_pool_stop();
    return 0;
}
