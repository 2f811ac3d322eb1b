/* gpt2_hf.c: run examples/gpt2.frost on Hugging Face-layout weights, loaded
 * by name, for the fixture test (tests/examples/gpt2_hf.sh) and the gradient
 * comparison with PyTorch (bench/torch_gradcheck_gpt2.py).
 *
 *   frost compile examples/gpt2.frost -D ... --config CFG -o gpt2.o --header gpt2.h
 *   cc -std=c11 -include gpt2.h -Isupport bench/gpt2_hf.c gpt2.o libfrost_support.a -lz -lopenblas -lm
 *
 *   gpt2_hf WEIGHTS INPUTS [--prefix P] [--skip PATTERN]... [--expect-loss X [--rtol R]] [--grads OUT]
 *           [--expect-grads REF [--grad-rtol R]]
 *
 * WEIGHTS: a safetensors file with the model's tensors, loaded with
 * frost_ckpt_load (strict, except for --skip patterns; --prefix: the file's
 * names lack this prefix of the model's, e.g. "transformer." for a
 * GPT2Model file). INPUTS: a safetensors file with the inputs by name (ids,
 * pos, labels), loaded the same way through a table built from
 * gpt2_input_table[]. Runs gpt2_forward and, with --grads, gpt2_backward,
 * and writes the gradient of every trainable parameter, under the
 * parameter's name, to OUT (frost_ckpt_save of a table whose offsets are the
 * grad_offsets). Prints the load summary and "loss %.9g". With --expect-loss,
 * exits 1 unless |loss - X| <= R |X| (R defaults to 1e-5). With
 * --expect-grads, runs backward, loads REF (a file of gradients by parameter
 * name, exactly the trainable ones) through the same table and exits 1
 * unless every tensor's max|g - g_ref| <= R max|g_ref| (R defaults to 1e-4).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frost_support.h"

#ifndef GPT2_FROST_H
#error "compile with -include gpt2.h (frost compile examples/gpt2.frost --header gpt2.h)"
#endif

#define MAX_SKIP 16

static void *alloc_block(long long bytes) {
    size_t n = bytes > 0 ? (size_t)bytes : GPT2_ALIGN;
    void *p = aligned_alloc(GPT2_ALIGN, (n + GPT2_ALIGN - 1) / GPT2_ALIGN * GPT2_ALIGN);
    if (!p) {
        fprintf(stderr, "gpt2_hf: out of memory\n");
        exit(1);
    }
    memset(p, 0, n);
    return p;
}

static int64_t elements(int rank, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < rank; d++)
        n *= shape[d];
    return n;
}

int main(int argc, char **argv) {
    const char *weights = NULL, *inputs = NULL, *grads_out = NULL, *prefix = NULL, *grads_ref = NULL;
    const char *skip[MAX_SKIP + 1] = {0};
    int nskip = 0, have_expect = 0;
    double expect = 0, rtol = 1e-5, grad_rtol = 1e-4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--prefix") && more)
            prefix = argv[++i];
        else if (!strcmp(a, "--skip") && more && nskip < MAX_SKIP)
            skip[nskip++] = argv[++i];
        else if (!strcmp(a, "--expect-loss") && more)
            expect = strtod(argv[++i], NULL), have_expect = 1;
        else if (!strcmp(a, "--rtol") && more)
            rtol = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--grads") && more)
            grads_out = argv[++i];
        else if (!strcmp(a, "--expect-grads") && more)
            grads_ref = argv[++i];
        else if (!strcmp(a, "--grad-rtol") && more)
            grad_rtol = strtod(argv[++i], NULL);
        else if (a[0] != '-' && !weights)
            weights = a;
        else if (a[0] != '-' && !inputs)
            inputs = a;
        else {
            fprintf(stderr, "usage: gpt2_hf WEIGHTS INPUTS [--prefix P] [--skip PATTERN]... "
                            "[--expect-loss X [--rtol R]] [--grads OUT] [--expect-grads REF [--grad-rtol R]]\n");
            return 2;
        }
    }
    if (!weights || !inputs) {
        fprintf(stderr, "gpt2_hf: WEIGHTS and INPUTS are required\n");
        return 2;
    }

    char *params = alloc_block(GPT2_PARAMS_BYTES);
    char *grads = alloc_block(GPT2_GRADS_BYTES);
    void *arena = alloc_block(GPT2_TRAIN_ARENA_BYTES);
    char *in_data = NULL, *ref = NULL;
    int status = 1;
    frost_error err;
    /* NaN everywhere first: whatever the file fails to set shows in the loss. */
    for (int k = 0; k < GPT2_NUM_PARAMS; k++) {
        const frost_param_info *p = &gpt2_params[k];
        if (p->dtype == FROST_DTYPE_F32)
            for (int64_t i = 0; i < elements(p->rank, p->shape); i++)
                ((float *)(params + p->offset))[i] = NAN;
    }
    frost_load_options opt = {.skip = skip, .prefix = prefix};
    if (frost_ckpt_load(weights, params, gpt2_params, GPT2_NUM_PARAMS, &opt, &err)) {
        fprintf(stderr, "gpt2_hf: %s\n", err.msg);
        goto done;
    }
    printf("%s\n", err.msg);

    /* The inputs, by name, through a parameter table of their own. */
    frost_param_info in_table[GPT2_NUM_INPUTS];
    int64_t in_bytes = 0;
    for (int k = 0; k < GPT2_NUM_INPUTS; k++) {
        const gpt2_input_info *x = &gpt2_input_table[k];
        in_table[k] = (frost_param_info){.name = x->name,
                                         .offset = in_bytes,
                                         .grad_offset = -1,
                                         .rank = x->rank,
                                         .dtype = x->dtype == 1 ? FROST_DTYPE_I32 : FROST_DTYPE_F32,
                                         .persistent = 1};
        memcpy(in_table[k].shape, x->shape, sizeof x->shape);
        in_bytes += (elements(x->rank, x->shape) * 4 + 63) / 64 * 64;
    }
    in_data = alloc_block(in_bytes);
    if (frost_ckpt_load(inputs, in_data, in_table, GPT2_NUM_INPUTS, NULL, &err)) {
        fprintf(stderr, "gpt2_hf: %s\n", err.msg);
        goto done;
    }
    gpt2_inputs in = {(const int32_t *)(in_data + in_table[0].offset), (const int32_t *)(in_data + in_table[1].offset),
                      (const int32_t *)(in_data + in_table[2].offset)};
    /* The struct above assumes the input order ids, pos, labels. */
    if (GPT2_NUM_INPUTS != 3 || strcmp(gpt2_input_table[0].name, "ids") || strcmp(gpt2_input_table[1].name, "pos") ||
        strcmp(gpt2_input_table[2].name, "labels")) {
        fprintf(stderr, "gpt2_hf: the model's inputs are not ids, pos, labels\n");
        goto done;
    }

    float loss = NAN;
    gpt2_outputs out = {&loss};
    int rc = gpt2_forward(params, &in, &out, arena);
    if (rc) {
        fprintf(stderr, "gpt2_hf: gpt2_forward returned %d\n", rc);
        goto done;
    }
    printf("loss %.9g\n", loss);
    if (grads_out || grads_ref) {
        if ((rc = gpt2_backward(params, grads, arena))) {
            fprintf(stderr, "gpt2_hf: gpt2_backward returned %d\n", rc);
            goto done;
        }
        /* The gradients as a table of their own: names and shapes of the
         * trainable parameters, offsets into the grads block. */
        frost_param_info g_table[GPT2_NUM_PARAMS];
        int ng = 0;
        for (int k = 0; k < GPT2_NUM_PARAMS; k++)
            if (gpt2_params[k].trainable) {
                g_table[ng] = gpt2_params[k];
                g_table[ng].offset = gpt2_params[k].grad_offset;
                g_table[ng].persistent = 1;
                ng++;
            }
        if (grads_out && frost_ckpt_save(grads_out, grads, g_table, ng, &err)) {
            fprintf(stderr, "gpt2_hf: %s\n", err.msg);
            goto done;
        }
        if (grads_out)
            printf("wrote %d gradients to %s\n", ng, grads_out);
        if (grads_ref) {
            ref = alloc_block(GPT2_GRADS_BYTES);
            if (frost_ckpt_load(grads_ref, ref, g_table, ng, NULL, &err)) {
                fprintf(stderr, "gpt2_hf: %s\n", err.msg);
                goto done;
            }
            double worst = 0;
            int worst_k = -1, nbad = 0;
            for (int k = 0; k < ng; k++) {
                const float *g = (const float *)(grads + g_table[k].offset);
                const float *r = (const float *)(ref + g_table[k].offset);
                double diff = 0, scale = 0;
                for (int64_t i = 0; i < elements(g_table[k].rank, g_table[k].shape); i++) {
                    double d = fabs((double)g[i] - r[i]);
                    diff = d > diff || d != d ? d : diff; /* a NaN is the worst */
                    scale = fabs(r[i]) > scale ? fabs(r[i]) : scale;
                }
                double rel = diff / (scale > 1e-30 ? scale : 1e-30);
                if (!(rel <= grad_rtol)) {
                    fprintf(stderr, "gpt2_hf: gradient of '%s': max|g - g_ref| / max|g_ref| = %.3g\n", g_table[k].name,
                            rel);
                    nbad++;
                }
                if (worst_k < 0 || !(rel <= worst))
                    worst = rel, worst_k = k;
            }
            printf("%d gradients against '%s': worst relative error %.3g (%s; tolerance %.3g)\n", ng, grads_ref, worst,
                   worst_k >= 0 ? g_table[worst_k].name : "-", grad_rtol);
            if (nbad)
                goto done;
        }
    }
    if (have_expect) {
        double rel = fabs(loss - expect) / fabs(expect);
        printf("expected %.9g: relative error %.3g (tolerance %.3g)\n", expect, rel, rtol);
        if (!(rel <= rtol)) {
            fprintf(stderr, "gpt2_hf: loss %.9g differs from the expected %.9g by %.3g relative\n", loss, expect, rel);
            goto done;
        }
    }
    status = 0;
done:
    free(params);
    free(grads);
    free(arena);
    free(in_data);
    free(ref);
    return status;
}
