/* fashion.c: pre-train a convolutional network with batch norm on
 * Fashion-MNIST, save a checkpoint, then fine-tune it under several freeze
 * configurations, each compiled by frost into its own object, and compare
 * their memory and accuracy. Plain C: the generated objects, frost's support
 * library (checkpoints, IDX files), OpenBLAS.
 *
 * Built and run by examples/fashion/run.sh, which compiles examples/cnn_bn.frost
 * once per configuration with a distinct --name and defines FASHION_MODELS.
 *
 *   fashion [--data DIR] [--epochs N] [--finetune-epochs N] [--limit N]
 *           [--lr X] [--finetune-lr X] [--seed N] [--out DIR] [--plain]
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frost_support.h"

#include "fm_all.h"
#include "fm_bitfit.h"
#include "fm_head.h"
#include "fm_norm.h"

/* ------------------------------------------------------------ one compiled model
 * Every object has its own prefix and its own inputs/outputs structs; these
 * wrappers give them one shape so that the training loop is written once. */

typedef struct {
    const char *name;   /* the run's name in the table */
    const char *trains; /* what the configuration trains, in words */
    const char *object; /* the object's prefix */
    int64_t batch, features, classes;
    int64_t params_bytes, grads_bytes, opt_bytes, train_arena_bytes, infer_arena_bytes, residual_bytes;
    const frost_param_info *table;
    int nparams;
    void (*init)(void *params, uint64_t seed);
    float (*train_step)(void *params, void *grads, void *opt, void *arena, const float *x, const int32_t *y,
                        const frost_hparams *hp);
    int (*infer)(const void *params, const float *x, const int32_t *y, float *logits, void *arena);
} model;

#define MODEL(p, P, run_name, what)                                                                             \
    static float p##_step_(void *params, void *grads, void *opt, void *arena, const float *x, const int32_t *y, \
                           const frost_hparams *hp) {                                                           \
        p##_inputs in = {x, y};                                                                                 \
        return p##_train_step(params, grads, opt, &in, NULL, arena, hp);                                        \
    }                                                                                                           \
    static int p##_infer_(const void *params, const float *x, const int32_t *y, float *logits, void *arena) {   \
        p##_inputs in = {x, y};                                                                                 \
        p##_outputs out = {NULL, logits};                                                                       \
        return p##_infer(params, &in, &out, arena);                                                             \
    }                                                                                                           \
    static model p##_describe(void) {                                                                           \
        const int64_t *x_shape = p##_input_table[0].shape;                                                      \
        return (model){run_name,                                                                                \
                       what,                                                                                    \
                       #p,                                                                                      \
                       x_shape[0],                                                                              \
                       x_shape[1] * x_shape[2] * x_shape[3],                                                    \
                       10,                                                                                      \
                       P##_PARAMS_BYTES,                                                                        \
                       P##_GRADS_BYTES,                                                                         \
                       P##_OPT_STATE_BYTES,                                                                     \
                       P##_TRAIN_ARENA_BYTES,                                                                   \
                       P##_INFER_ARENA_BYTES,                                                                   \
                       P##_RESIDUAL_BYTES,                                                                      \
                       p##_params,                                                                              \
                       P##_NUM_PARAMS,                                                                          \
                       p##_init,                                                                                \
                       p##_step_,                                                                               \
                       p##_infer_};                                                                             \
    }

MODEL(fm_all, FM_ALL, "all", "every parameter")
MODEL(fm_head, FM_HEAD, "head", "fc2 (the classifier)")
MODEL(fm_bitfit, FM_BITFIT, "bitfit", "biases + fc2")
MODEL(fm_norm, FM_NORM, "norm", "batch-norm affine + fc2")

/* ------------------------------------------------------------ options */

typedef struct {
    const char *data, *out;
    int epochs, finetune_epochs;
    int64_t limit, finetune_limit;
    float lr, finetune_lr;
    uint64_t seed;
    bool plain;
} options;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("fashion: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void usage(void) {
    fputs("usage: fashion [--data DIR] [--epochs N] [--finetune-epochs N] [--limit N] [--finetune-limit N]\n"
          "               [--lr X] [--finetune-lr X] [--seed N] [--out DIR] [--plain]\n"
          "  --data DIR          Fashion-MNIST IDX files (default " FROST_FASHION_MNIST_DIR ")\n"
          "  --epochs N          pre-training epochs, every parameter trainable (default 1)\n"
          "  --finetune-epochs N epochs of each fine-tuning run (default 1)\n"
          "  --limit N           pre-train on the first N training examples (default: all 60000)\n"
          "  --finetune-limit N  fine-tune on the first N training examples (default 12000)\n"
          "  --lr X              AdamW peak learning rate of pre-training, cosine-decayed to 0 (default 2e-3)\n"
          "  --finetune-lr X     the same for each fine-tuning run (default 2e-3)\n"
          "  --seed N            initialisation and shuffling seed (default 1)\n"
          "  --out DIR           where the checkpoint goes (default .)\n"
          "  --plain             progress as plain lines even on a terminal\n",
          stderr);
    exit(2);
}

static options parse(int argc, char **argv) {
    options o = {.data = FROST_FASHION_MNIST_DIR,
                 .out = ".",
                 .epochs = 1,
                 .finetune_epochs = 1,
                 .finetune_limit = 12000,
                 .lr = 2e-3f,
                 .finetune_lr = 2e-3f,
                 .seed = 1};
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        if (strcmp(a, "--plain") == 0) {
            o.plain = true;
            continue;
        }
        if (!v || a[0] != '-')
            usage();
        k++;
        if (strcmp(a, "--data") == 0) {
            o.data = v;
            continue;
        }
        if (strcmp(a, "--out") == 0) {
            o.out = v;
            continue;
        }
        char *end;
        errno = 0;
        if (strcmp(a, "--epochs") == 0)
            o.epochs = (int)strtol(v, &end, 10);
        else if (strcmp(a, "--finetune-epochs") == 0)
            o.finetune_epochs = (int)strtol(v, &end, 10);
        else if (strcmp(a, "--limit") == 0)
            o.limit = strtoll(v, &end, 10);
        else if (strcmp(a, "--finetune-limit") == 0)
            o.finetune_limit = strtoll(v, &end, 10);
        else if (strcmp(a, "--lr") == 0)
            o.lr = strtof(v, &end);
        else if (strcmp(a, "--finetune-lr") == 0)
            o.finetune_lr = strtof(v, &end);
        else if (strcmp(a, "--seed") == 0)
            o.seed = strtoull(v, &end, 10);
        else
            usage();
        if (errno || *end)
            die("bad value for %s: '%s'", a, v);
    }
    if (o.epochs < 0 || o.finetune_epochs < 0 || o.limit < 0 || o.finetune_limit < 0 || !(o.lr > 0) ||
        !(o.finetune_lr > 0))
        die("epochs, limit and learning rates must not be negative");
    return o;
}

/* ------------------------------------------------------------ helpers */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *block(int64_t bytes) {
    size_t n = (size_t)(bytes > 0 ? bytes : 64);
    n = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, n);
    if (!p)
        die("out of memory (%zu bytes)", n);
    memset(p, 0, n);
    return p;
}

static const char *mib(int64_t bytes) {
    static char buf[8][32];
    static int next;
    char *s = buf[next++ % 8];
    snprintf(s, 32, "%.2f MiB", (double)bytes / (1 << 20));
    return s;
}

static const char *duration(double s) {
    static char buf[4][32];
    static int next;
    char *b = buf[next++ % 4];
    if (s < 60)
        snprintf(b, 32, "%.1fs", s);
    else
        snprintf(b, 32, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    return b;
}

typedef struct {
    const model *m;
    void *params, *grads, *opt, *arena, *infer_arena;
    float *x, *logits;
    int32_t *y;
} run_state;

static run_state run_new(const model *m) {
    run_state r = {.m = m};
    r.params = block(m->params_bytes);
    r.grads = block(m->grads_bytes);
    r.opt = block(m->opt_bytes);
    r.arena = block(m->train_arena_bytes);
    r.infer_arena = block(m->infer_arena_bytes);
    r.x = block(m->batch * m->features * 4);
    r.y = block(m->batch * 4);
    r.logits = block(m->batch * m->classes * 4);
    return r;
}

static void run_free(run_state *r) {
    free(r->params);
    free(r->grads);
    free(r->opt);
    free(r->arena);
    free(r->infer_arena);
    free(r->x);
    free(r->y);
    free(r->logits);
}

/* Accuracy over a whole data set with the inference entry point (batch norm
 * on running statistics, dropout off); the last batch is completed with
 * repeats that are not counted. */
static double accuracy(run_state *r, const frost_dataset *ds) {
    frost_batcher b;
    frost_error err;
    if (frost_batcher_init(&b, ds, r->m->batch, 0, FROST_BATCH_WRAP | FROST_BATCH_SEQUENTIAL, &err))
        die("%s", err.msg);
    int64_t correct = 0, seen = 0, fresh;
    while ((fresh = frost_batcher_next(&b, r->x, r->y)) > 0) {
        if (r->m->infer(r->params, r->x, r->y, r->logits, r->infer_arena) != 0)
            die("%s: inference failed", r->m->object);
        for (int64_t i = 0; i < fresh; i++) {
            const float *row = r->logits + i * r->m->classes;
            int best = 0;
            for (int c = 1; c < r->m->classes; c++)
                if (row[c] > row[best])
                    best = c;
            correct += best == r->y[i];
        }
        seen += fresh;
    }
    frost_batcher_free(&b);
    return seen ? (double)correct / (double)seen : 0;
}

/* Progress of one epoch: a bar with rate and ETA on a terminal, nothing
 * otherwise (the epoch's summary line follows either way). */
static void progress(bool live, const char *name, int epoch, int epochs, int64_t done, int64_t total, double loss,
                     double elapsed) {
    if (!live) {
        printf("  %-7s epoch %d/%d  %3d%%  loss %.4f  %.0f img/s\n", name, epoch, epochs,
               total ? (int)(100 * done / total) : 100, loss, elapsed > 0 ? (double)done / elapsed : 0);
        fflush(stdout);
        return;
    }
    const int width = 24;
    int fill = total ? (int)(width * done / total) : width;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    char bar[32];
    for (int k = 0; k < width; k++)
        bar[k] = k < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stdout, "\r  %-7s epoch %d/%d [%s] %5.1f%%  loss %.4f  %6.0f img/s  ETA %-7s", name, epoch, epochs, bar,
            total ? 100.0 * (double)done / (double)total : 100.0, loss, rate, duration(eta));
    fflush(stdout);
}

typedef struct {
    const model *m;
    double train_acc, test_acc, seconds, loss;
} result;

/* lr * (1 + cos(pi * step / total)) / 2: from lr at step 0 down to 0 at total */
static float cosine_lr(float lr, int64_t step, int64_t total) {
    const double pi = 3.14159265358979323846;
    return (float)(0.5 * lr * (1.0 + cos(pi * (double)step / (double)total)));
}

static result train(run_state *r, const frost_dataset *train_set, const frost_dataset *test_set, int epochs, float lr,
                    uint64_t seed, bool live) {
    const model *m = r->m;
    frost_hparams hp = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-4f};
    frost_batcher b;
    frost_error err;
    if (frost_batcher_init(&b, train_set, m->batch, seed, FROST_BATCH_DROP, &err))
        die("%s", err.msg);
    result res = {.m = m};
    int64_t per_epoch = train_set->count / m->batch * m->batch;
    /* Cosine decay of the learning rate from lr to 0 over the whole run, step
     * by step: the usual recipe for short runs (the last epochs settle
     * instead of bouncing at the full rate). */
    const int64_t total_steps = per_epoch / m->batch * epochs;
    int64_t global_step = 0;
    double t0 = now();
    for (int e = 1; e <= epochs; e++) {
        double te = now(), loss_sum = 0;
        int64_t done = 0, steps = 0;
        while (frost_batcher_next(&b, r->x, r->y) > 0) {
            hp.lr = cosine_lr(lr, global_step++, total_steps);
            float loss = m->train_step(r->params, r->grads, r->opt, r->arena, r->x, r->y, &hp);
            if (!isfinite(loss))
                die("%s: the loss became %g at epoch %d", m->object, loss, e);
            loss_sum += loss;
            steps++;
            done += m->batch;
            /* a terminal gets a live bar; a log gets a line at each quarter */
            int64_t quarter = per_epoch / 4 / m->batch * m->batch;
            if (live ? steps % 8 == 0 || done == per_epoch : quarter > 0 && done % quarter == 0 && done < per_epoch)
                progress(live, m->name, e, epochs, done, per_epoch, loss_sum / (double)steps, now() - te);
        }
        const double train_seconds = now() - te; /* the epoch's steps, without the evaluation below */
        res.loss = steps ? loss_sum / (double)steps : NAN;
        /* Training accuracy on the first 10000 training images (in eval mode,
         * like the test accuracy), to keep the epoch's overhead small. */
        frost_dataset head = *train_set;
        head.count = head.count < 10000 ? head.count : 10000;
        res.train_acc = accuracy(r, &head);
        res.test_acc = accuracy(r, test_set);
        if (live)
            fputs("\r\033[K", stdout);
        printf("  %-7s epoch %d/%d  loss %.4f  train acc %.2f%%  test acc %.2f%%  %s (%.0f img/s)  "
               "memory: params %s, grads %s, optimizer %s, train arena %s\n",
               m->name, e, epochs, res.loss, 100 * res.train_acc, 100 * res.test_acc, duration(train_seconds),
               (double)done / train_seconds, mib(m->params_bytes), mib(m->grads_bytes), mib(m->opt_bytes),
               mib(m->train_arena_bytes));
        fflush(stdout);
    }
    frost_batcher_free(&b);
    res.seconds = now() - t0;
    return res;
}

int main(int argc, char **argv) {
    options o = parse(argc, argv);
    const model all = fm_all_describe(), head = fm_head_describe(), bitfit = fm_bitfit_describe(),
                norm = fm_norm_describe();
    const model *fm_all_model = &all;
    /* every object's kernels on $FROST_NUM_THREADS threads, else every CPU */
    fm_all_set_threads(0);
    fm_head_set_threads(0);
    fm_bitfit_set_threads(0);
    fm_norm_set_threads(0);
    bool live = !o.plain && isatty(STDOUT_FILENO);
    frost_error err;
    frost_dataset train_set, test_set;
    if (frost_dataset_load_mnist(o.data, "train", FROST_FASHION_MNIST_MEAN, FROST_FASHION_MNIST_STD, &train_set,
                                 &err) ||
        frost_dataset_load_mnist(o.data, "t10k", FROST_FASHION_MNIST_MEAN, FROST_FASHION_MNIST_STD, &test_set, &err))
        die("%s\n(Debian: apt-get install dataset-fashion-mnist, or --data DIR)", err.msg);
    frost_dataset finetune_set = train_set;
    if (o.limit > 0 && o.limit < train_set.count)
        train_set.count = o.limit;
    if (o.finetune_limit > 0 && o.finetune_limit < finetune_set.count)
        finetune_set.count = o.finetune_limit;
    printf("Fashion-MNIST: %lld training and %lld test images of %lldx%lld, batch %lld\n\n", (long long)train_set.count,
           (long long)test_set.count, (long long)train_set.rows, (long long)train_set.cols,
           (long long)fm_all_model->batch);

    /* 1. Pre-train with every parameter trainable, save a checkpoint. */
    printf("pre-training (%s), %d epoch%s, AdamW lr %g with cosine decay\n", fm_all_model->trains, o.epochs,
           o.epochs == 1 ? "" : "s", o.lr);
    run_state pre = run_new(fm_all_model);
    fm_all_model->init(pre.params, o.seed);
    result pretrained = train(&pre, &train_set, &test_set, o.epochs, o.lr, o.seed, live);
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/cnn_bn_pretrained.safetensors", o.out);
    if (frost_ckpt_save(ckpt, pre.params, fm_all_model->table, fm_all_model->nparams, &err))
        die("%s", err.msg);
    printf("saved %s\n\n", ckpt);
    run_free(&pre);

    /* 2. Fine-tune from it with a fresh classifier (fc2 skipped on load and
     *    re-initialised), under each freeze configuration. */
    const model *runs[] = {&head, &bitfit, &norm, &all};
    enum { NRUNS = sizeof runs / sizeof runs[0] };
    result results[NRUNS];
    static const char *const skip_head[] = {"fc2.*", NULL};
    const frost_load_options load = {.skip = skip_head};
    for (int k = 0; k < NRUNS; k++) {
        const model *m = runs[k];
        printf("fine-tuning '%s' (trains %s), %d epoch%s of %lld images, AdamW lr %g with cosine decay, "
               "from %s with a new fc2\n",
               m->name, m->trains, o.finetune_epochs, o.finetune_epochs == 1 ? "" : "s", (long long)finetune_set.count,
               o.finetune_lr, ckpt);
        run_state r = run_new(m);
        m->init(r.params, o.seed + 1 + (uint64_t)k);
        if (frost_ckpt_load(ckpt, r.params, m->table, m->nparams, &load, &err))
            die("%s", err.msg);
        results[k] =
            train(&r, &finetune_set, &test_set, o.finetune_epochs, o.finetune_lr, o.seed + 100 + (uint64_t)k, live);
        run_free(&r);
        putchar('\n');
    }

    /* 3. One table: memory (from the generated headers) and accuracy. */
    const model *full = &all;
    int64_t full_total = full->grads_bytes + full->opt_bytes + full->train_arena_bytes;
    printf("pre-trained: test accuracy %.2f%% after %d epoch%s (%s)\n\n", 100 * pretrained.test_acc, o.epochs,
           o.epochs == 1 ? "" : "s", duration(pretrained.seconds));
    printf("| fine-tuning | trains | grads | optimizer | train arena | grads+opt+arena vs all | test acc | time |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < NRUNS; k++) {
        const model *m = results[k].m;
        int64_t total = m->grads_bytes + m->opt_bytes + m->train_arena_bytes;
        printf("| %s | %s | %s | %s | %s | %.2fx | %.2f%% | %s |\n", m->name, m->trains, mib(m->grads_bytes),
               mib(m->opt_bytes), mib(m->train_arena_bytes), (double)total / (double)full_total,
               100 * results[k].test_acc, duration(results[k].seconds));
    }
    printf("\nparams: %s in every configuration (batch %lld)\n", mib(full->params_bytes), (long long)full->batch);
    frost_dataset_free(&train_set);
    frost_dataset_free(&test_set);
    return 0;
}
