/* step_time.c: wall-clock time of one training step (forward + backward) and
 * of one inference call of a frost-generated object, for bench/train_step.sh.
 *
 *   cc -O2 -include P.h -DFROST_PREFIX=p -DFROST_PREFIX_UPPER=P step_time.c P.o -lopenblas -lm
 *   ./step_time [SECONDS]      prints: train_ms infer_ms steps
 *
 * f32 inputs get uniform(-1, 1) values, i32 inputs labels i % 10. After two
 * warm-up steps it repeats the step until SECONDS (default 3) have passed and
 * reports the median. Compile with -D_POSIX_C_SOURCE=200809L (clock_gettime). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define LC(s) CAT(FROST_PREFIX, s)
#define UC(s) CAT(FROST_PREFIX_UPPER, s)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *block(int64_t bytes) {
    size_t n = (size_t)(bytes > 0 ? bytes : 64);
    n = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, n);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memset(p, 0, n);
    return p;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    double budget = argc > 1 ? atof(argv[1]) : 3.0;
    LC(_set_threads)(0); /* $FROST_NUM_THREADS (train_step.sh sets it), else every CPU */
    void *params = block(UC(_PARAMS_BYTES)), *grads = block(UC(_GRADS_BYTES));
    void *arena = block(UC(_TRAIN_ARENA_BYTES)), *infer_arena = block(UC(_INFER_ARENA_BYTES));
    LC(_init)(params, 1);
    void *ptrs[UC(_NUM_INPUTS)];
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < UC(_NUM_INPUTS); i++) {
        const LC(_input_info) *in = &LC(_input_table)[i];
        int64_t n = 1;
        for (int k = 0; k < in->rank; k++)
            n *= in->shape[k];
        ptrs[i] = block(4 * n);
        for (int64_t k = 0; k < n; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            if (in->dtype == 0)
                ((float *)ptrs[i])[k] = (float)((double)(s >> 11) * 0x1.0p-52 - 1.0);
            else
                ((int32_t *)ptrs[i])[k] = (int32_t)(k % 10);
        }
    }
    LC(_inputs) in;
    memcpy(&in, ptrs, sizeof in);
    float loss;
    LC(_outputs) out;
    memset(&out, 0, sizeof out);
    memcpy(&out, &(float *){&loss}, sizeof(float *));

    enum { MAXRUNS = 10000 };
    static double train[MAXRUNS], infer[MAXRUNS];
    int nt = 0, ni = 0;
    for (int w = 0; w < 2; w++)
        if (LC(_forward)(params, &in, &out, arena) || LC(_backward)(params, grads, arena)) {
            fprintf(stderr, "forward/backward failed\n");
            return 1;
        }
    double start = now();
    while (nt < MAXRUNS && (now() - start < budget || nt < 3)) {
        double t = now();
        LC(_forward)(params, &in, &out, arena);
        LC(_backward)(params, grads, arena);
        train[nt++] = now() - t;
    }
    start = now();
    while (ni < MAXRUNS && (now() - start < budget / 2 || ni < 3)) {
        double t = now();
        LC(_infer)(params, &in, &out, infer_arena);
        infer[ni++] = now() - t;
    }
    printf("%.3f %.3f %d\n", 1e3 * median(train, nt), 1e3 * median(infer, ni), nt);
    return 0;
}
