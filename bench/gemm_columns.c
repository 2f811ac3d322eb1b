/* gemm_columns.c: OpenBLAS sgemm throughput for the GEMMs of ResNet-18's 3x3
 * convolutions (stages 1-4 of resnet18_cifar at batch 32), one image per GEMM
 * against blocks of images: the measurement behind CONV_GEMM_COLUMNS
 * (ir/ops.c) and scratch widening (docs/planner.md).
 *
 *   cc -O2 bench/gemm_columns.c -lopenblas -o gemm_columns && ./gemm_columns
 *   OPENBLAS_CORETYPE=SkylakeX ./gemm_columns      (OpenBLAS's AVX-512 kernels)
 *
 * For each stage (K output channels, CKK = C*3*3 column rows, OHW output
 * positions per image) and block size b, the three GEMMs of a conv step over
 * 32 images in 32/b calls of b*OHW columns: forward y = w cols, bwd_x
 * cols = w^T dy, bwd_w dw += dy cols^T. Best of 3, in GFLOP/s. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *filled(long n) {
    float *p = malloc((size_t)n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (long i = 0; i < n; i++)
        p[i] = (float)(i % 7) * 0.1f;
    return p;
}

int main(void) {
    static const int stages[][3] = {{64, 576, 1024}, {128, 1152, 256}, {256, 2304, 64}, {512, 4608, 16}};
    const int images = 32;
    printf("| K | CKK | OH*OW | images per GEMM | columns | fwd GFLOP/s | bwd_x GFLOP/s | bwd_w GFLOP/s |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int st = 0; st < 4; st++) {
        const int K = stages[st][0], CKK = stages[st][1], OHW = stages[st][2];
        float *w = filled((long)K * CKK), *cols = filled((long)CKK * OHW * images);
        float *y = filled((long)K * OHW * images), *dw = filled((long)K * CKK);
        for (int b = 1; b <= images; b *= 2) {
            const int n = b * OHW;
            if (b > 1 && n > 2048)
                break;
            double best[3] = {1e30, 1e30, 1e30};
            for (int rep = 0; rep < 3; rep++) {
                double t[4];
                t[0] = now();
                for (int i = 0; i < images; i += b)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, n, CKK, 1, w, CKK, cols, n, 0, y, n);
                t[1] = now();
                for (int i = 0; i < images; i += b)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, n, K, 1, w, CKK, y, n, 0, cols, n);
                t[2] = now();
                for (int i = 0; i < images; i += b)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, CKK, n, 1, y, n, cols, n, 1, dw, CKK);
                t[3] = now();
                for (int k = 0; k < 3; k++)
                    if (t[k + 1] - t[k] < best[k])
                        best[k] = t[k + 1] - t[k];
            }
            const double gflop = 2.0 * K * CKK * OHW * images / 1e9;
            printf("| %d | %d | %d | %d | %d | %.0f | %.0f | %.0f |\n", K, CKK, OHW, b, n, gflop / best[0],
                   gflop / best[1], gflop / best[2]);
        }
        free(w), free(cols), free(y), free(dw);
    }
    return 0;
}
