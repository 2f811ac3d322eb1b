/* textgen.c: pre-train a small GPT on Debian's fortune files, byte by byte,
 * save a checkpoint, then fine-tune it on one held-out fortune file under
 * several freeze configurations, each compiled by frost into its own object,
 * and compare their memory, validation loss and time. Plain C: the generated
 * objects, frost's support library (checkpoints, text), OpenBLAS.
 *
 * Built and run by examples/textgen/run.sh, which compiles
 * examples/textgen/gpt_small.frost twice per configuration, a training
 * object (prefix tg_NAME) and an inference-only one of batch 1 for sampling
 * (tg_NAME_sample), and writes textgen_models.h: the headers' includes and
 * TEXTGEN_MODELS(X), one X(prefix, PREFIX, sample_prefix, SAMPLE_PREFIX,
 * "name", "what it trains") per configuration. Adding a configuration
 * (a LoRA one, say) is a line of run.sh; nothing here names one, except that
 * pre-training uses the configuration called "all".
 *
 *   textgen [--data-dir DIR] [--hold-out NAME] [--steps N] [--finetune-steps N]
 *           [--lr X] [--finetune-lr X] [--seed N] [--out DIR] [--plain] ...
 *   (textgen --help lists every option)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frost_support.h"

#include "textgen_models.h"

#define FORTUNES_DIR "/usr/share/games/fortunes" /* Debian's fortunes, fortunes-min */
#define IGNORE_LABEL (-100)                      /* linear_cross_entropy's ignore_index */

/* ------------------------------------------------------------ one compiled model
 * Every object has its own prefix and its own inputs/outputs structs; these
 * wrappers give them one shape so that training, evaluation and sampling are
 * written once. */

typedef struct {
    const char *name;   /* the configuration's name in the table */
    const char *trains; /* what it trains, in words */
    const char *object; /* the training object's prefix */
    int64_t batch, len; /* the training object's ids: [batch, len] */
    int64_t params_bytes, grads_bytes, opt_bytes, train_arena_bytes, infer_arena_bytes;
    const frost_param_info *table;
    int nparams;
    const frost_adapter_info *adapters; /* LoRA layers (none outside lora_* configurations) */
    int nadapters;
    void (*init)(void *params, uint64_t seed);
    float (*train_step)(void *params, void *grads, void *opt, void *arena, const int32_t *ids, const int32_t *pos,
                        const int32_t *labels, const frost_hparams *hp);
    int (*infer)(const void *params, const int32_t *ids, const int32_t *pos, const int32_t *labels, float *loss,
                 void *arena);
    /* the inference-only object of batch 1 that sampling runs */
    int64_t sample_params_bytes, sample_arena_bytes;
    const frost_param_info *sample_table;
    int sample_nparams;
    int (*sample_infer)(const void *params, const int32_t *ids, const int32_t *pos, const int32_t *labels, float *ln_f,
                        void *arena);
} model;

#define MODEL(p, P, s, S, run_name, what)                                                                             \
    static float p##_step_(void *params, void *grads, void *opt, void *arena, const int32_t *ids, const int32_t *pos, \
                           const int32_t *labels, const frost_hparams *hp) {                                          \
        p##_inputs in = {ids, pos, labels};                                                                           \
        return p##_train_step(params, grads, opt, &in, NULL, arena, hp);                                              \
    }                                                                                                                 \
    static int p##_infer_(const void *params, const int32_t *ids, const int32_t *pos, const int32_t *labels,          \
                          float *loss, void *arena) {                                                                 \
        p##_inputs in = {ids, pos, labels};                                                                           \
        p##_outputs out = {loss, NULL};                                                                               \
        return p##_infer(params, &in, &out, arena);                                                                   \
    }                                                                                                                 \
    static int s##_infer_(const void *params, const int32_t *ids, const int32_t *pos, const int32_t *labels,          \
                          float *ln_f, void *arena) {                                                                 \
        s##_inputs in = {ids, pos, labels};                                                                           \
        s##_outputs out = {NULL, ln_f};                                                                               \
        return s##_infer(params, &in, &out, arena);                                                                   \
    }                                                                                                                 \
    static model p##_describe(void) {                                                                                 \
        return (model){.name = run_name,                                                                              \
                       .trains = what,                                                                                \
                       .object = #p,                                                                                  \
                       .batch = p##_input_table[0].shape[0],                                                          \
                       .len = p##_input_table[0].shape[1],                                                            \
                       .params_bytes = P##_PARAMS_BYTES,                                                              \
                       .grads_bytes = P##_GRADS_BYTES,                                                                \
                       .opt_bytes = P##_OPT_STATE_BYTES,                                                              \
                       .train_arena_bytes = P##_TRAIN_ARENA_BYTES,                                                    \
                       .infer_arena_bytes = P##_INFER_ARENA_BYTES,                                                    \
                       .table = p##_params,                                                                           \
                       .nparams = P##_NUM_PARAMS,                                                                     \
                       .adapters = p##_adapters,                                                                      \
                       .nadapters = P##_NUM_ADAPTERS,                                                                 \
                       .init = p##_init,                                                                              \
                       .train_step = p##_step_,                                                                       \
                       .infer = p##_infer_,                                                                           \
                       .sample_params_bytes = S##_PARAMS_BYTES,                                                       \
                       .sample_arena_bytes = S##_INFER_ARENA_BYTES,                                                   \
                       .sample_table = s##_params,                                                                    \
                       .sample_nparams = S##_NUM_PARAMS,                                                              \
                       .sample_infer = s##_infer_};                                                                   \
    }

TEXTGEN_MODELS(MODEL)

#define DESCRIBE(p, P, s, S, run_name, what) p##_describe(),
#define COUNT(p, P, s, S, run_name, what) +1
#define SET_THREADS(p, P, s, S, run_name, what) (void)p##_set_threads(0), (void)s##_set_threads(0),
enum { NMODELS = 0 TEXTGEN_MODELS(COUNT) };

/* ------------------------------------------------------------ options */

typedef struct {
    const char *data_dir, *hold_out, *out, *prompt;
    int64_t steps, finetune_steps, sample_bytes, samples, top_k;
    double val_fraction;
    float lr, finetune_lr, temperature;
    uint64_t seed;
    bool plain;
} options;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("textgen: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void usage(FILE *f, int status) {
    fputs("usage: textgen [--data-dir DIR] [--hold-out NAME] [--steps N] [--finetune-steps N] [--lr X]\n"
          "               [--finetune-lr X] [--val-fraction X] [--seed N] [--out DIR] [--plain]\n"
          "               [--samples N] [--sample-bytes N] [--temperature X] [--top-k N] [--prompt TEXT]\n"
          "  --data-dir DIR      the fortune files (default " FORTUNES_DIR ", Debian's fortunes);\n"
          "                      every regular file not named *.dat or *.u8 is text\n"
          "  --hold-out NAME     the fine-tuning file; pre-training reads all the others (default startrek)\n"
          "  --steps N           pre-training steps, every parameter trainable (default 300)\n"
          "  --finetune-steps N  steps of each fine-tuning run (default 50)\n"
          "  --lr X              AdamW peak learning rate of pre-training: linear warm-up over the first\n"
          "                      5% of the steps, cosine decay to 0 (default 3e-3)\n"
          "  --finetune-lr X     the same for each fine-tuning run (default 3e-3)\n"
          "  --val-fraction X    the end of the held-out file kept for validation (default 0.2)\n"
          "  --seed N            initialisation, batches and sampling seed (default 1)\n"
          "  --out DIR           where the checkpoint goes (default .)\n"
          "  --plain             progress as plain lines even on a terminal\n"
          "  --samples N         texts sampled before and after each fine-tuning run (default 2; 0: none)\n"
          "  --sample-bytes N    bytes of each (default 160)\n"
          "  --temperature X     sampling temperature; 0 takes the likeliest byte (default 0.8)\n"
          "  --top-k N           sample among the N likeliest bytes; 0: all 256 (default 40)\n"
          "  --prompt TEXT       what each sample starts from (default \"%\\n\", a fortune's start)\n"
          "  --help              this text\n",
          f);
    exit(status);
}

static options parse(int argc, char **argv) {
    options o = {.data_dir = FORTUNES_DIR,
                 .hold_out = "startrek",
                 .out = ".",
                 .prompt = "%\n",
                 .steps = 300,
                 .finetune_steps = 50,
                 .sample_bytes = 160,
                 .samples = 2,
                 .top_k = 40,
                 .val_fraction = 0.2,
                 .lr = 3e-3f,
                 .finetune_lr = 3e-3f,
                 .temperature = 0.8f,
                 .seed = 1};
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            usage(stdout, 0);
        if (strcmp(a, "--plain") == 0) {
            o.plain = true;
            continue;
        }
        const char *const string_opts[] = {"--data-dir", "--hold-out", "--out", "--prompt"};
        const char **string_dst[] = {&o.data_dir, &o.hold_out, &o.out, &o.prompt};
        int is_string = -1;
        for (int s = 0; s < 4; s++)
            if (strcmp(a, string_opts[s]) == 0)
                is_string = s;
        const char *const int_opts[] = {"--steps",   "--finetune-steps", "--sample-bytes",
                                        "--samples", "--top-k",          "--seed"};
        int64_t *int_dst[] = {&o.steps, &o.finetune_steps, &o.sample_bytes, &o.samples, &o.top_k, NULL};
        int is_int = -1;
        for (int s = 0; s < 6; s++)
            if (strcmp(a, int_opts[s]) == 0)
                is_int = s;
        const char *const float_opts[] = {"--lr", "--finetune-lr", "--temperature", "--val-fraction"};
        int is_float = -1;
        for (int s = 0; s < 4; s++)
            if (strcmp(a, float_opts[s]) == 0)
                is_float = s;
        if (is_string < 0 && is_int < 0 && is_float < 0) {
            fprintf(stderr, "textgen: unknown option '%s'\n", a);
            usage(stderr, 2);
        }
        if (!v) {
            fprintf(stderr, "textgen: %s needs a value\n", a);
            usage(stderr, 2);
        }
        k++;
        if (is_string >= 0) {
            *string_dst[is_string] = v;
            continue;
        }
        char *end;
        errno = 0;
        if (is_int == 5)
            o.seed = strtoull(v, &end, 10);
        else if (is_int >= 0)
            *int_dst[is_int] = strtoll(v, &end, 10);
        else {
            double x = strtod(v, &end);
            if (is_float == 0)
                o.lr = (float)x;
            else if (is_float == 1)
                o.finetune_lr = (float)x;
            else if (is_float == 2)
                o.temperature = (float)x;
            else
                o.val_fraction = x;
        }
        if (errno || *end || !*v) {
            fprintf(stderr, "textgen: bad value for %s: '%s'\n", a, v);
            usage(stderr, 2);
        }
    }
    const char *bad = o.steps < 0                           ? "--steps must not be negative"
                      : o.finetune_steps < 0                ? "--finetune-steps must not be negative"
                      : o.samples < 0 || o.sample_bytes < 0 ? "--samples and --sample-bytes must not be negative"
                      : o.top_k < 0                         ? "--top-k must not be negative"
                      : !(o.lr > 0) || !(o.finetune_lr > 0) ? "learning rates must be positive"
                      : !(o.temperature >= 0)               ? "--temperature must not be negative"
                      : !(o.val_fraction > 0 && o.val_fraction < 1) ? "--val-fraction must be in (0, 1)"
                      : !*o.prompt                                  ? "--prompt must not be empty"
                      : strchr(o.hold_out, '/') || !*o.hold_out     ? "--hold-out is a file name in --data-dir"
                                                                    : NULL;
    if (bad) {
        fprintf(stderr, "textgen: %s\n", bad);
        usage(stderr, 2);
    }
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

static int64_t numel(const frost_param_info *p) {
    int64_t n = 1;
    for (int d = 0; d < p->rank; d++)
        n *= p->shape[d];
    return n;
}

static int64_t elem_bytes(const frost_param_info *p) {
    return p->dtype == FROST_DTYPE_U8 ? 1 : p->dtype == FROST_DTYPE_I64 ? 8 : 4;
}

static int64_t trainable_scalars(const model *m) {
    int64_t n = 0;
    for (int k = 0; k < m->nparams; k++)
        if (m->table[k].trainable)
            n += numel(&m->table[k]);
    return n;
}

static const frost_param_info *find_param(const frost_param_info *table, int n, const char *name) {
    for (int k = 0; k < n; k++)
        if (strcmp(table[k].name, name) == 0)
            return &table[k];
    return NULL;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* ------------------------------------------------------------ data */

/* The fortune files of `dir`, sorted by name: regular files (symbolic links
 * followed) not named *.dat (strfile's index) or *.u8 (links to the same
 * text), nor hidden. */
static char **fortune_files(const char *dir, int *count) {
    DIR *d = opendir(dir);
    if (!d)
        die("cannot open the fortune directory '%s': %s\n(Debian: apt-get install fortunes, or --data-dir DIR)", dir,
            strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || ends_with(e->d_name, ".dat") || ends_with(e->d_name, ".u8"))
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path)
            die("out of memory");
        snprintf(path, len, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, sizeof *names * (size_t)cap);
            if (!names)
                die("out of memory");
        }
        names[n++] = path;
    }
    closedir(d);
    if (n)
        qsort(names, (size_t)n, sizeof *names, by_name);
    *count = n;
    return names;
}

typedef struct {
    const uint8_t *data;
    int64_t size;
} span;

/* ------------------------------------------------------------ one run's memory */

typedef struct {
    const model *m;
    void *params, *grads, *opt, *arena, *infer_arena, *sample_params, *sample_arena;
    int32_t *ids, *labels, *pos;
} run_state;

static run_state run_new(const model *m) {
    run_state r = {.m = m};
    r.params = block(m->params_bytes);
    r.grads = block(m->grads_bytes);
    r.opt = block(m->opt_bytes); /* zeroed: what the first AdamW update needs */
    r.arena = block(m->train_arena_bytes);
    r.infer_arena = block(m->infer_arena_bytes);
    r.sample_params = block(m->sample_params_bytes);
    r.sample_arena = block(m->sample_arena_bytes);
    r.ids = block(m->batch * m->len * 4);
    r.labels = block(m->batch * m->len * 4);
    r.pos = block(m->len * 4);
    for (int64_t t = 0; t < m->len; t++)
        r.pos[t] = (int32_t)t;
    return r;
}

static void run_free(run_state *r) {
    void *blocks[] = {r->params,        r->grads,        r->opt, r->arena,  r->infer_arena,
                      r->sample_params, r->sample_arena, r->ids, r->labels, r->pos};
    for (size_t k = 0; k < sizeof blocks / sizeof *blocks; k++)
        free(blocks[k]);
}

/* Validation loss in nats per byte: every window of len + 1 bytes at
 * multiples of len (each byte but the first is predicted once), in batches;
 * the last batch is completed with rows whose labels are all ignored, and
 * each batch's mean is weighted by the labels it counts. */
static double validation_loss(run_state *r, span text) {
    const model *m = r->m;
    const int64_t windows = (text.size - 1) / m->len;
    double sum = 0;
    int64_t counted = 0;
    for (int64_t w0 = 0; w0 < windows; w0 += m->batch) {
        int64_t rows = windows - w0 < m->batch ? windows - w0 : m->batch;
        for (int64_t b = 0; b < m->batch; b++)
            for (int64_t t = 0; t < m->len; t++) {
                int64_t at = (w0 + b) * m->len + t;
                r->ids[b * m->len + t] = b < rows ? text.data[at] : 0;
                r->labels[b * m->len + t] = b < rows ? text.data[at + 1] : IGNORE_LABEL;
            }
        float loss;
        if (m->infer(r->params, r->ids, r->pos, r->labels, &loss, r->infer_arena) != 0)
            die("%s: inference failed", m->object);
        sum += (double)loss * (double)(rows * m->len);
        counted += rows * m->len;
    }
    return counted ? sum / (double)counted : NAN;
}

/* ------------------------------------------------------------ sampling */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state) { return (double)(splitmix64(state) >> 11) * 0x1.0p-53; }

/* Copy the trained parameters into the sampling object's block, by name (the
 * two objects' layouts need not agree). */
static void copy_to_sampler(run_state *r) {
    const model *m = r->m;
    for (int k = 0; k < m->sample_nparams; k++) {
        const frost_param_info *dst = &m->sample_table[k], *src = find_param(m->table, m->nparams, dst->name);
        if (!src || numel(src) != numel(dst) || src->dtype != dst->dtype)
            die("%s: the sampling object's '%s' has no match in the training object", m->object, dst->name);
        memcpy((char *)r->sample_params + dst->offset, (const char *)r->params + src->offset,
               (size_t)(numel(dst) * elem_bytes(dst)));
    }
}

/* Print `samples` texts of `bytes` bytes after the prompt. Each byte is drawn
 * from softmax(logits / temperature) over the top_k likeliest bytes, where
 * the logits are the tied head, wte . ln_f, at the last position of a rerun
 * of the model over (at most) the last len bytes. */
static void sample_text(run_state *r, const options *o, uint64_t seed, const char *title) {
    if (o->samples == 0 || o->sample_bytes == 0)
        return;
    const model *m = r->m;
    copy_to_sampler(r);
    const frost_param_info *wte = find_param(m->sample_table, m->sample_nparams, "transformer.wte.weight");
    if (!wte || wte->rank != 2 || wte->shape[0] != 256)
        die("%s: no tied byte embedding 'transformer.wte.weight' [256, D] to sample with", m->object);
    const int64_t width = wte->shape[1], len = m->len;
    const float *emb = (const float *)((const char *)r->sample_params + wte->offset);
    int32_t *ids = block(len * 4), *labels = block(len * 4);
    float *ln_f = block(len * width * 4);
    const int64_t prompt_len = (int64_t)strlen(o->prompt), total = prompt_len + o->sample_bytes;
    uint8_t *text = malloc((size_t)total + 1);
    if (!text)
        die("out of memory");
    uint64_t state = seed;
    printf("  %s (temperature %g, top-k %lld):\n", title, o->temperature, (long long)o->top_k);
    for (int64_t s = 0; s < o->samples; s++) {
        memcpy(text, o->prompt, (size_t)prompt_len);
        for (int64_t n = prompt_len; n < total; n++) {
            int64_t from = n > len ? n - len : 0, w = n - from;
            for (int64_t t = 0; t < len; t++) {
                ids[t] = t < w ? text[from + t] : 0; /* positions past w do not reach w - 1 (causal) */
                labels[t] = 0;
            }
            if (m->sample_infer(r->sample_params, ids, r->pos, labels, ln_f, r->sample_arena) != 0)
                die("%s: sampling inference failed", m->object);
            const float *h = ln_f + (w - 1) * width;
            double logit[256], best = -INFINITY;
            int order[256];
            for (int v = 0; v < 256; v++) {
                double z = 0;
                for (int64_t i = 0; i < width; i++)
                    z += (double)emb[v * width + i] * h[i];
                logit[v] = z;
                order[v] = v;
                if (z > best)
                    best = z;
            }
            int next = 0;
            if (o->temperature == 0) {
                for (int v = 1; v < 256; v++)
                    if (logit[v] > logit[next])
                        next = v;
            } else {
                /* the top_k likeliest first (a partial selection sort: k is small) */
                int k = o->top_k > 0 && o->top_k < 256 ? (int)o->top_k : 256;
                for (int i = 0; i < k && k < 256; i++)
                    for (int j = i + 1; j < 256; j++)
                        if (logit[order[j]] > logit[order[i]]) {
                            int t = order[i];
                            order[i] = order[j];
                            order[j] = t;
                        }
                double p[256], z = 0;
                for (int i = 0; i < k; i++)
                    z += p[i] = exp((logit[order[i]] - best) / o->temperature);
                double u = uniform01(&state) * z;
                next = order[k - 1];
                for (int i = 0; i < k; i++)
                    if ((u -= p[i]) < 0) {
                        next = order[i];
                        break;
                    }
            }
            text[n] = (uint8_t)next;
        }
        /* Print as lines, indented; tabs as spaces, other control bytes and
         * bytes above 126 as '?' so that a terminal stays sane. */
        fputs("    | ", stdout);
        for (int64_t n = 0; n < total; n++) {
            int c = text[n];
            if (c == '\n')
                fputs(n + 1 < total ? "\n    | " : "", stdout);
            else
                putchar(c == '\t' ? ' ' : c >= 32 && c < 127 ? c : '?');
        }
        putchar('\n');
        if (s + 1 < o->samples)
            puts("    |");
    }
    fflush(stdout);
    free(text);
    free(ids);
    free(labels);
    free(ln_f);
}

/* ------------------------------------------------------------ training */

/* Progress: a bar with tokens/s and ETA on a terminal; a plain line at each
 * quarter otherwise. */
static void progress(bool live, const char *name, int64_t step, int64_t steps, int64_t tokens, double loss,
                     double elapsed) {
    double rate = elapsed > 0 ? (double)tokens / elapsed : 0;
    double eta = step > 0 ? elapsed * (double)(steps - step) / (double)step : 0;
    if (!live) {
        printf("  %-10s step %lld/%lld  loss %.4f  %.0f tokens/s  ETA %s\n", name, (long long)step, (long long)steps,
               loss, rate, duration(eta));
        fflush(stdout);
        return;
    }
    const int width = 24;
    int fill = steps ? (int)(width * step / steps) : width;
    char bar[32];
    for (int k = 0; k < width; k++)
        bar[k] = k < fill ? '#' : '.';
    bar[width] = 0;
    printf("\r  %-10s [%s] step %lld/%lld  loss %.4f  %6.0f tokens/s  ETA %-7s", name, bar, (long long)step,
           (long long)steps, loss, rate, duration(eta));
    fflush(stdout);
}

/* Linear warm-up over the first 5% of the steps (at least one), then cosine
 * decay to 0: short runs settle instead of bouncing at the full rate. */
static float scheduled_lr(float lr, int64_t step, int64_t total) {
    const double pi = 3.14159265358979323846;
    int64_t warm = total / 20 > 1 ? total / 20 : 1;
    if (step < warm)
        return lr * (float)(step + 1) / (float)warm;
    return (float)(0.5 * lr * (1.0 + cos(pi * (double)(step - warm) / (double)(total - warm))));
}

typedef struct {
    const model *m;
    double loss, val_before, val_after, seconds;
    double val_merged; /* LoRA: the adapters merged into the `all` object's weights; NAN otherwise */
} result;

/* `steps` AdamW steps on random windows of `text`; returns the mean loss of
 * the last tenth of the steps (at least one). */
static double train(run_state *r, span text, int64_t steps, float lr, uint64_t seed, bool live, double *seconds) {
    const model *m = r->m;
    frost_hparams hp = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.01f};
    frost_error err;
    const int64_t tail = steps / 10 > 1 ? steps / 10 : 1, quarter = steps / 4 > 0 ? steps / 4 : 1;
    double tail_sum = 0, since_sum = 0, t0 = now();
    int64_t since = 0;
    for (int64_t step = 0; step < steps; step++) {
        if (frost_text_windows(text.data, text.size, m->batch, m->len, seed, step, r->ids, r->labels, &err))
            die("%s", err.msg);
        hp.lr = scheduled_lr(lr, step, steps);
        float loss = m->train_step(r->params, r->grads, r->opt, r->arena, r->ids, r->pos, r->labels, &hp);
        if (!isfinite(loss))
            die("%s: the loss became %g at step %lld", m->object, loss, (long long)step + 1);
        if (step >= steps - tail)
            tail_sum += loss;
        since_sum += loss;
        since++;
        int64_t done = step + 1;
        if (live ? done % 4 == 0 || done == steps : done % quarter == 0 && done < steps) {
            progress(live, m->name, done, steps, done * m->batch * m->len, since_sum / (double)since, now() - t0);
            since_sum = 0;
            since = 0;
        }
    }
    if (live)
        fputs("\r\033[K", stdout);
    *seconds = now() - t0;
    return steps ? tail_sum / (double)tail : NAN;
}

/* A LoRA run's end: save its adapters alone as PEFT names them, then merge
 * them into the base weights of the `all` object (W + scale B A), which has no
 * adapters, and validate that: the same model at no adapter cost. Returns its
 * validation loss. */
static double save_and_merge(run_state *r, const model *base, const options *o, span val) {
    const model *m = r->m;
    frost_error err;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_adapter_model.safetensors", o->out, m->name);
    if (frost_lora_save(path, r->params, m->table, m->nparams, &err))
        die("%s", err.msg);
    printf("  %-10s %s\n", "", err.msg);
    /* Only the base object's params and inference arena are new: the batch
     * buffers are r's (the same model file, so the same batch and length). */
    if (base->batch != m->batch || base->len != m->len)
        die("%s and %s were compiled with different batch shapes", base->object, m->object);
    run_state merged = *r;
    merged.m = base;
    merged.params = block(base->params_bytes);
    merged.infer_arena = block(base->infer_arena_bytes);
    if (frost_lora_merge(merged.params, base->table, base->nparams, r->params, m->table, m->nparams, m->adapters,
                         m->nadapters, &err))
        die("%s", err.msg);
    double loss = validation_loss(&merged, val);
    printf("  %-10s adapters merged into the weights of the '%s' object (%s): validation %.4f nats/byte\n", "",
           base->name, err.msg, loss);
    free(merged.params);
    free(merged.infer_arena);
    return loss;
}

static void report(const model *m, int64_t steps, double loss, double val, double seconds) {
    printf("  %-10s %lld steps  loss %.4f  validation %.4f nats/byte  %s (%.0f tokens/s)\n"
           "  %-10s memory: params %s, grads %s, optimizer %s, train arena %s\n",
           m->name, (long long)steps, loss, val, duration(seconds),
           seconds > 0 ? (double)(steps * m->batch * m->len) / seconds : 0, "", mib(m->params_bytes),
           mib(m->grads_bytes), mib(m->opt_bytes), mib(m->train_arena_bytes));
    fflush(stdout);
}

int main(int argc, char **argv) {
    options o = parse(argc, argv);
    const model models[NMODELS] = {TEXTGEN_MODELS(DESCRIBE)};
    /* every object's kernels on $FROST_NUM_THREADS threads, else every CPU */
    TEXTGEN_MODELS(SET_THREADS)(void) 0;
    const model *pre_model = NULL;
    for (int k = 0; k < NMODELS; k++)
        if (strcmp(models[k].name, "all") == 0)
            pre_model = &models[k];
    if (!pre_model)
        die("no configuration named 'all' among the compiled objects: pre-training needs one");
    bool live = !o.plain && isatty(STDOUT_FILENO);
    frost_error err;

    /* 1. The data: every fortune file but the held-out one for pre-training,
     *    the held-out one for fine-tuning (its end for validation). */
    int nfiles;
    char **files = fortune_files(o.data_dir, &nfiles);
    int held = -1;
    for (int k = 0; k < nfiles; k++)
        if (strcmp(strrchr(files[k], '/') + 1, o.hold_out) == 0)
            held = k;
    if (nfiles == 0)
        die("no fortune files in '%s' (text files not named *.dat or *.u8)\n"
            "(Debian: apt-get install fortunes, or --data-dir DIR)",
            o.data_dir);
    if (held < 0)
        die("'%s/%s': no such fortune file (the held-out file; --hold-out NAME chooses another)", o.data_dir,
            o.hold_out);
    if (nfiles < 2)
        die("'%s' has no fortune file besides the held-out '%s' to pre-train on", o.data_dir, o.hold_out);
    const char **pre_paths = malloc(sizeof *pre_paths * (size_t)nfiles);
    int npre = 0;
    for (int k = 0; k < nfiles; k++)
        if (k != held)
            pre_paths[npre++] = files[k];
    frost_text pre_text, ft_text;
    if (frost_text_load(pre_paths, npre, &pre_text, &err))
        die("%s", err.msg);
    const char *held_path = files[held];
    if (frost_text_load(&held_path, 1, &ft_text, &err))
        die("%s", err.msg);

    /* Pre-training validation: every 128th block of 2 KiB (9 blocks, 18 KB of
     * the fortunes' 2.5 MB), so that it is taken from across the corpus,
     * whose files differ in style, not from its last file; the rest, blocks
     * joined, trains. */
    const int64_t chunk = 2048, every = 128, len = pre_model->len;
    uint8_t *pre_train_buf = malloc((size_t)pre_text.size + 1), *pre_val_buf = malloc((size_t)pre_text.size + 1);
    if (!pre_train_buf || !pre_val_buf)
        die("out of memory");
    span pre_train = {pre_train_buf, 0}, pre_val = {pre_val_buf, 0};
    for (int64_t at = 0, c = 0; at < pre_text.size; at += chunk, c++) {
        int64_t n = pre_text.size - at < chunk ? pre_text.size - at : chunk;
        span *to = c % every == every - 1 ? &pre_val : &pre_train;
        memcpy((uint8_t *)to->data + to->size, pre_text.data + at, (size_t)n);
        to->size += n;
    }
    int64_t ft_val_size = (int64_t)(o.val_fraction * (double)ft_text.size);
    span ft_train = {ft_text.data, ft_text.size - ft_val_size},
         ft_val = {ft_text.data + ft_text.size - ft_val_size, ft_val_size};
    if (pre_train.size <= len || ft_train.size <= len)
        die("too little text to train on: %lld bytes for pre-training, %lld for fine-tuning (windows of %lld + 1)",
            (long long)pre_train.size, (long long)ft_train.size, (long long)len);
    if (pre_val.size <= len || ft_val.size <= len)
        die("too little text to validate on: %lld bytes of the pre-training text, %lld of '%s' (windows of %lld + 1)",
            (long long)pre_val.size, (long long)ft_val.size, held_path, (long long)len);
    printf("fortunes in %s: pre-training on %d files, %lld bytes (%lld more for validation);\n"
           "fine-tuning on '%s', %lld bytes (the last %lld for validation)\n"
           "byte-level tokens (vocabulary 256), batch %lld x %lld bytes, %d configurations\n\n",
           o.data_dir, npre, (long long)pre_train.size, (long long)pre_val.size, o.hold_out, (long long)ft_train.size,
           (long long)ft_val.size, (long long)pre_model->batch, (long long)len, NMODELS);

    /* 2. Pre-train with every parameter trainable, save a checkpoint. */
    printf("pre-training (%s, %lld parameters), %lld steps, AdamW lr %g with warm-up and cosine decay\n",
           pre_model->trains, (long long)trainable_scalars(pre_model), (long long)o.steps, o.lr);
    run_state pre = run_new(pre_model);
    pre_model->init(pre.params, o.seed);
    double pre_seconds, pre_loss = train(&pre, pre_train, o.steps, o.lr, o.seed, live, &pre_seconds);
    double pre_val_loss = validation_loss(&pre, pre_val);
    report(pre_model, o.steps, pre_loss, pre_val_loss, pre_seconds);
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/gpt_small_pretrained.safetensors", o.out);
    if (frost_ckpt_save(ckpt, pre.params, pre_model->table, pre_model->nparams, &err))
        die("%s", err.msg);
    printf("saved %s\n\n", ckpt);
    sample_text(&pre, &o, o.seed, "pre-trained, before fine-tuning");
    putchar('\n');
    run_free(&pre);

    /* 3. Fine-tune from the checkpoint on the held-out file, under each
     *    configuration (its own object: only what it trains has gradients,
     *    optimizer state and residuals). Every run starts from the same
     *    weights and sees the same batches. */
    result *results = calloc(NMODELS, sizeof *results);
    for (int k = 0; k < NMODELS; k++) {
        const model *m = &models[k];
        printf("fine-tuning '%s' (trains %s: %lld parameters), %lld steps, AdamW lr %g, from %s\n", m->name, m->trains,
               (long long)trainable_scalars(m), (long long)o.finetune_steps, o.finetune_lr, ckpt);
        run_state r = run_new(m);
        m->init(r.params, o.seed);
        /* The pre-trained checkpoint has no LoRA adapters: those of a LoRA
         * configuration keep P_init's values (A random, B zero, so the model
         * starts as the checkpoint; the loader reports them absent),
         * everything else must be in the file. */
        if (frost_ckpt_load(ckpt, r.params, m->table, m->nparams, NULL, &err))
            die("%s", err.msg);
        if (m->nadapters)
            printf("  %s\n", err.msg);
        results[k].m = m;
        results[k].val_merged = NAN;
        results[k].val_before = validation_loss(&r, ft_val);
        results[k].loss = train(&r, ft_train, o.finetune_steps, o.finetune_lr, o.seed + 1, live, &results[k].seconds);
        results[k].val_after = validation_loss(&r, ft_val);
        report(m, o.finetune_steps, results[k].loss, results[k].val_after, results[k].seconds);
        printf("  %-10s validation before %.4f, after %.4f nats/byte\n", "", results[k].val_before,
               results[k].val_after);
        if (m->nadapters)
            results[k].val_merged = save_and_merge(&r, pre_model, &o, ft_val);
        sample_text(&r, &o, o.seed + 1 + (uint64_t)k, "after fine-tuning");
        run_free(&r);
        putchar('\n');
    }

    /* 4. One table: memory (from the generated headers), validation loss
     *    before and after fine-tuning, time. */
    const int64_t full_total = pre_model->grads_bytes + pre_model->opt_bytes + pre_model->train_arena_bytes;
    printf("pre-trained: loss %.4f, validation %.4f nats/byte on the pre-training text after %lld steps (%s)\n\n",
           pre_loss, pre_val_loss, (long long)o.steps, duration(pre_seconds));
    printf("fine-tuning on '%s' (%lld steps); validation loss in nats per byte on its last %lld bytes\n\n", o.hold_out,
           (long long)o.finetune_steps, (long long)ft_val.size);
    printf("| configuration | trains | trainable params | grads | optimizer | train arena | grads+opt+arena vs all "
           "| val before | val after | merged | time |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < NMODELS; k++) {
        const model *m = results[k].m;
        int64_t total = m->grads_bytes + m->opt_bytes + m->train_arena_bytes;
        char merged[32] = "-";
        if (!isnan(results[k].val_merged))
            snprintf(merged, sizeof merged, "%.4f", results[k].val_merged);
        printf("| %s | %s | %lld | %s | %s | %s | %.2fx | %.4f | %.4f | %s | %s |\n", m->name, m->trains,
               (long long)trainable_scalars(m), mib(m->grads_bytes), mib(m->opt_bytes), mib(m->train_arena_bytes),
               (double)total / (double)full_total, results[k].val_before, results[k].val_after, merged,
               duration(results[k].seconds));
    }
    printf("\nmerged: a LoRA run's validation loss with its adapters merged into the base weights (W + scale B A)\n"
           "and run by the '%s' object, which has no adapters\n",
           pre_model->name);
    printf("\nparams: %s in every configuration (batch %lld x %lld bytes)\n", mib(pre_model->params_bytes),
           (long long)pre_model->batch, (long long)len);
    free(results);
    free(pre_train_buf);
    free(pre_val_buf);
    free(pre_paths);
    for (int k = 0; k < nfiles; k++)
        free(files[k]);
    free(files);
    frost_text_free(&pre_text);
    frost_text_free(&ft_text);
    return 0;
}
