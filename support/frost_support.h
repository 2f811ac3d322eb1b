/* frost_support.h: checkpoints and data sets for drivers of frost-generated models.
 *
 * A small C library (libfrost_support.a, needs only libc and zlib) that user
 * drivers link beside the object file `frost compile` generates:
 *
 *   - checkpoints: save the params block to a safetensors file and load one,
 *     PyTorch's included, by name through the model's parameter table
 *     (P_params[] of the generated header), with name, dtype and shape checks
 *     and optional skipping of some tensors (fine-tuning with a new head);
 *   - LoRA adapters: saved and loaded alone under PEFT's names, and merged
 *     into the weights of a model compiled without them;
 *   - data: a reader of IDX files (MNIST, Fashion-MNIST; plain or gzip), a
 *     conversion to float images and int32 labels, and a deterministic
 *     shuffled batch iterator;
 *   - text: plain files read into one byte buffer, and deterministic random
 *     windows of it as a byte-level language model's ids and labels.
 *
 * Every function that can fail returns 0 on success and a negative
 * FROST_ERR_* code otherwise, and fills the caller's frost_error (which may be
 * NULL) with a message naming the file and the problem. Full reference and
 * examples: docs/support.md.
 *
 *   cc driver.c mlp.o -lfrost_support -lz -lopenblas -lm
 */
#ifndef FROST_SUPPORT_H
#define FROST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- parameter table
 *
 * The entry type of every generated header's P_params[] (P_param_info is a
 * typedef of it). The same guarded definition is in each generated header, so
 * this header and any number of model headers can be included in any order. */
#ifndef FROST_PARAM_INFO_DEFINED
#define FROST_PARAM_INFO_DEFINED
#define FROST_DTYPE_F32 0
#define FROST_DTYPE_I32 1
#define FROST_DTYPE_U8 2
#define FROST_DTYPE_I64 4
#define FROST_MAX_RANK 6
typedef struct frost_param_info {
    const char *name;
    int64_t offset;
    int64_t grad_offset;
    int32_t rank;
    int64_t shape[6];
    int32_t dtype;
    int32_t trainable;
    int32_t is_buffer;
    int32_t persistent;
} frost_param_info;
#endif

/* The entry type of every generated header's P_adapters[] (P_NUM_ADAPTERS
 * entries): one per LoRA layer. weight, lora_A, lora_B are indices into the
 * same model's P_params[]; the layer computes W x + b + scale B(A(dropout(x)))
 * with A [r, in], B [out, r] and W [out, in], or [in, out] when in_out.
 * Guarded like frost_param_info. */
#ifndef FROST_ADAPTER_INFO_DEFINED
#define FROST_ADAPTER_INFO_DEFINED
typedef struct frost_adapter_info {
    const char *layer;
    int32_t weight, lora_A, lora_B;
    int32_t r;
    double alpha, scale, dropout;
    int32_t in_out, rslora;
} frost_adapter_info;
#endif

/* ---------------------------------------------------------------- errors */

/* Return codes (0 is success). */
#define FROST_ERR_ARG (-1)       /* invalid argument: NULL pointer, bad table entry, duplicate names */
#define FROST_ERR_IO (-2)        /* cannot open, read, write or rename (file missing, permissions, disk full) */
#define FROST_ERR_NOMEM (-3)     /* out of memory */
#define FROST_ERR_TRUNCATED (-4) /* the file ends before its header or its data does */
#define FROST_ERR_FORMAT \
    (-5) /* not a valid file: absurd header length, malformed JSON, bad fields, bad IDX magic or dims */
#define FROST_ERR_OFFSETS (-6)     /* safetensors data_offsets reversed, overlapping or not matching dtype x shape */
#define FROST_ERR_DTYPE (-7)       /* a tensor's dtype differs from the table's (nothing is converted) */
#define FROST_ERR_SHAPE (-8)       /* a tensor's shape differs from the table's */
#define FROST_ERR_MISSING (-9)     /* table entries absent from the file */
#define FROST_ERR_UNEXPECTED (-10) /* file tensors absent from the table */

#define FROST_ERROR_MSG 512
typedef struct {
    int code;                  /* the value the function returned */
    char msg[FROST_ERROR_MSG]; /* "'ckpt.safetensors': shape mismatch: ..."; on success "" or a summary */
} frost_error;

/* A short constant description of a code ("shape mismatch"), "ok" for 0. */
const char *frost_strerror(int code);

/* ---------------------------------------------------------------- checkpoints
 *
 * Files are safetensors: an 8-byte little-endian header length N, N bytes of
 * JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 * "__metadata__": {...}}, then the raw little-endian data. Only table entries
 * with `persistent` set are saved or loaded. Supported dtypes: F32, I32, U8,
 * I64 (the FROST_DTYPE_* codes); other dtypes in a file (F16, BF16, F64, ...)
 * are an error when the tensor is to be loaded, never converted. */

/* Write the persistent entries of table[0..n) from `params` to `path`, in
 * table order, with metadata {"format": "pt"}. Writes a temporary file in the
 * same directory and renames it over `path`, so an existing checkpoint is
 * replaced only by a complete new one. */
int frost_ckpt_save(const char *path, const void *params, const frost_param_info *table, int n, frost_error *err);

typedef struct {
    /* NULL-terminated glob patterns, or NULL: when given, only the entries
     * whose name matches one are saved (e.g. frost_lora_patterns). */
    const char *const *only;
    /* NULL-terminated glob patterns, or NULL: entries whose name matches one
     * are not saved. */
    const char *const *skip;
    /* NULL or "": names as in the table. Otherwise written before every
     * name (FROST_PEFT_PREFIX: PEFT's "base_model.model."). */
    const char *prefix;
} frost_save_options;

/* frost_ckpt_save with options (opt may be NULL: the same as frost_ckpt_save).
 * Saving nothing (no entry selected) is an error, FROST_ERR_ARG. */
int frost_ckpt_save_ex(const char *path, const void *params, const frost_param_info *table, int n,
                       const frost_save_options *opt, frost_error *err);

typedef struct {
    /* NULL-terminated list of glob patterns ('*' any run of characters, '?'
     * one character; e.g. "fc.*", "layer4.?.conv1.weight"). Table entries
     * and file tensors whose name matches one are neither loaded nor
     * required: the table entries keep the values they have in params. */
    const char *const *skip;
    /* The default (zero) is strict: every persistent table entry must be in
     * the file, and every file tensor in the table. */
    int allow_missing;    /* table entries absent from the file keep their values */
    int allow_unexpected; /* file tensors absent from the table are ignored */
    /* NULL or "": names match as they are. Otherwise the file's names lack
     * this prefix of the table's: a table entry whose name starts with it
     * (e.g. "transformer.", table "transformer.wte.weight") is looked up in
     * the file without it ("wte.weight"); other entries under their full
     * names. Two entries that would look up one file name are an error
     * (FROST_ERR_ARG). Skip patterns match either form of a name. */
    const char *prefix;
    /* NULL or "": file names as they are. Otherwise the file's names may carry
     * this prefix, which the table's lack (PEFT's "base_model.model."): it is
     * removed from every file name that starts with it before matching. A file
     * with both "P" + x and x is an error (FROST_ERR_FORMAT). */
    const char *file_prefix;
    /* NULL-terminated glob patterns, or NULL: when given, only table entries
     * and file tensors whose name matches one are loaded or required; the
     * others are left alone (frost_lora_patterns: the adapters alone). */
    const char *const *only;
} frost_load_options;

/* Read the tensors of `path` into `params` at their table offsets, matching
 * by name. opt may be NULL (strict, nothing skipped). A file that has no
 * LoRA adapter tensors at all (no name matching frost_lora_patterns) is a base
 * model's checkpoint: the table's adapter tensors it lacks are not an error
 * but keep their values (a fresh adapter, B zero, leaves the base model's
 * function) and err->msg counts them as absent. A file with some adapter
 * tensors must have all of the table's, and so must any file loaded with
 * `only` patterns. The whole file is
 * validated and every name, dtype and shape checked before any byte of params
 * is written: on error params is unchanged (except after a read error in the
 * middle of the copy, FROST_ERR_IO). On success err->msg summarises what was
 * loaded and what was skipped or missing. */
int frost_ckpt_load(const char *path, void *params, const frost_param_info *table, int n, const frost_load_options *opt,
                    frost_error *err);

/* ---------------------------------------------------------------- LoRA adapters
 *
 * A LoRA object (a model compiled with a configuration that has `lora` items)
 * has, for each adapted layer L, the params L.lora_A.weight and L.lora_B.weight,
 * PEFT's names. Its header's P_adapters[] says how each is applied. */

/* {"*.lora_A.weight", "*.lora_B.weight", NULL}: the adapter tensors. */
extern const char *const frost_lora_patterns[];
/* The prefix PEFT's adapter_model.safetensors puts before the model's names. */
#define FROST_PEFT_PREFIX "base_model.model."

/* Save the adapter tensors of table[0..n) alone, named as PEFT's
 * adapter_model.safetensors names them ("base_model.model." + the table's
 * name). FROST_ERR_ARG if the table has no adapter tensors. */
int frost_lora_save(const char *path, const void *params, const frost_param_info *table, int n, frost_error *err);

/* Load an adapter file (PEFT's names, or frost's without the prefix) into the
 * adapter tensors of table[0..n); every other entry is left alone. Strict:
 * every adapter of the table must be in the file (FROST_ERR_MISSING names
 * those that are not: a layer the file has no adapter for), every file tensor
 * must be an adapter of the table (FROST_ERR_UNEXPECTED), and shapes must
 * agree (FROST_ERR_SHAPE names the tensor: a different rank r). */
int frost_lora_load(const char *path, void *params, const frost_param_info *table, int n, frost_error *err);

/* Merge the adapters into the base weights of another object: fill every
 * persistent entry of dst (a model compiled without the `lora` items, e.g.
 * its `all` or `none` configuration) from the src entry of the same name and
 * shape, the adapted weights as W + scale B A (B A transposed when in_out),
 * so that dst computes what src does with no adapter cost. src is the LoRA
 * object's params, src_table its P_params, adapters its P_adapters. Strict:
 * every persistent dst entry must be in src (FROST_ERR_MISSING), every
 * persistent src entry other than the adapters in dst (FROST_ERR_UNEXPECTED),
 * with the same dtype and shape, and every adapter's tensors f32 with the
 * shapes its r and layout say (FROST_ERR_SHAPE); all is checked before dst
 * is written. dst and src must not overlap. Sums are formed in double. */
int frost_lora_merge(void *dst, const frost_param_info *dst_table, int dst_n, const void *src,
                     const frost_param_info *src_table, int src_n, const frost_adapter_info *adapters, int nadapters,
                     frost_error *err);

/* ---------------------------------------------------------------- IDX files
 *
 * The format of MNIST and Fashion-MNIST: a big-endian magic 0x000008DD
 * (0x08: unsigned bytes, DD: number of dimensions; 0x00000803 images,
 * 0x00000801 labels), DD big-endian uint32 dimensions, then the data. Read
 * from a gzip file or a plain one (detected from the content). */

#define FROST_IDX_MAX_DIMS 8
typedef struct {
    int32_t ndims;
    int64_t dims[FROST_IDX_MAX_DIMS];
    int64_t size;  /* bytes of data: the product of the dims */
    uint8_t *data; /* malloc'ed; frost_idx_free releases it */
} frost_idx;

/* Read an unsigned-byte IDX file with 1..FROST_IDX_MAX_DIMS dimensions.
 * The data must be exactly as long as the dims say. On error *out is zeroed. */
int frost_idx_load(const char *path, frost_idx *out, frost_error *err);
void frost_idx_free(frost_idx *idx);

/* ---------------------------------------------------------------- data sets */

#define FROST_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist" /* Debian's dataset-fashion-mnist */
#define FROST_FASHION_MNIST_MEAN 0.2860f                            /* of the 60000 training pixels, scaled to [0,1] */
#define FROST_FASHION_MNIST_STD 0.3530f

typedef struct {
    int64_t count; /* examples */
    int64_t rows, cols;
    int64_t features; /* rows * cols: floats per example */
    int32_t classes;  /* largest label + 1 */
    float *images;    /* count * features, example-major */
    int32_t *labels;  /* count */
} frost_dataset;

/* Load an images file (3 dims: count, rows, cols, none 0) and a labels file
 * (1 dim: count) of the same count. Pixels become (p / 255 - mean) / std: mean 0,
 * std 1 gives [0, 1]. */
int frost_dataset_load(const char *images_path, const char *labels_path, float mean, float std, frost_dataset *ds,
                       frost_error *err);

/* The same for the usual file names in a directory: split "train" or "t10k"
 * reads DIR/SPLIT-images-idx3-ubyte.gz and DIR/SPLIT-labels-idx1-ubyte.gz, or
 * the files without .gz when those do not exist. */
int frost_dataset_load_mnist(const char *dir, const char *split, float mean, float std, frost_dataset *ds,
                             frost_error *err);
void frost_dataset_free(frost_dataset *ds);

/* ---------------------------------------------------------------- batches
 *
 * Fixed-size batches in a shuffled order. Epoch e visits the examples in the
 * order of a Fisher-Yates shuffle that depends only on (seed, e):
 *
 *   state = seed ^ (e * 0x9E3779B97F4A7C15)
 *   next() = SplitMix64: state += 0x9E3779B97F4A7C15; z = state;
 *            z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9; z = (z ^ z >> 27) * 0x94D049BB133111EB;
 *            return z ^ z >> 31
 *   perm = 0, 1, ..., count-1
 *   for i = count-1 down to 1:
 *       j = below(i + 1)        (draw x = next() until x < 2^64 - 2^64 mod (i+1); j = x mod (i+1))
 *       swap perm[i], perm[j]
 *
 * With FROST_BATCH_SEQUENTIAL the order is 0, 1, ..., count-1 every epoch.
 * The last partial batch (count not a multiple of the batch size) is dropped
 * by default: an epoch has floor(count / batch) batches and the examples at
 * the end of that epoch's order are not seen in it. With FROST_BATCH_WRAP it
 * is completed from the start of the same epoch's order: ceil(count / batch)
 * batches, the last one holding some examples twice. */

#define FROST_BATCH_DROP 0       /* drop the last partial batch (default) */
#define FROST_BATCH_WRAP 1       /* complete it from the start of the epoch's order */
#define FROST_BATCH_SEQUENTIAL 2 /* do not shuffle (evaluation); combine with | */

typedef struct {
    const frost_dataset *ds;
    int64_t batch;
    uint64_t seed;
    int flags;
    int64_t epoch; /* current epoch, from 0 */
    int64_t pos;   /* examples of this epoch's order already handed out */
    int64_t *perm; /* this epoch's order */
} frost_batcher;

/* The data set must outlive the batcher. batch >= 1 (with FROST_BATCH_DROP
 * also <= ds->count), and batch * features floats fit in 2^63 bytes. */
int frost_batcher_init(frost_batcher *b, const frost_dataset *ds, int64_t batch, uint64_t seed, int flags,
                       frost_error *err);

/* Fill x (batch * features floats) and labels (batch int32, may be NULL) with
 * the next batch and return how many of its examples are new in this epoch:
 * `batch`, or fewer for the wrapped last batch (the rest are repeats). At the
 * end of an epoch return 0 without touching the buffers and move to the next
 * epoch (newly shuffled): the following call returns its first batch. */
int64_t frost_batcher_next(frost_batcher *b, float *x, int32_t *labels);

/* Jump to the start of an epoch (e.g. when resuming training). */
void frost_batcher_seek(frost_batcher *b, int64_t epoch);
void frost_batcher_free(frost_batcher *b);

/* ---------------------------------------------------------------- text
 *
 * Byte-level language modelling: every byte is a token (vocabulary 256), so
 * text needs no tokenizer, only reading. */

typedef struct {
    int64_t size;  /* bytes */
    uint8_t *data; /* malloc'ed, size bytes and a 0 after them; frost_text_free releases it */
} frost_text;

/* Read the files paths[0..n) whole, in that order, into one buffer: each
 * file's bytes directly follow the previous file's, nothing added between
 * them (an empty file adds nothing). Files are read as they are (no gzip, no
 * conversion). Errors: FROST_ERR_IO naming the first file that cannot be
 * opened or read ("cannot open 'DIR/x': No such file or directory", "'DIR':
 * not a regular file"), FROST_ERR_ARG for n < 1 or a NULL path,
 * FROST_ERR_NOMEM. On error *out is zeroed. */
int frost_text_load(const char *const *paths, int n, frost_text *out, frost_error *err);
void frost_text_free(frost_text *t);

/* One training batch of `batch` random windows of len + 1 consecutive bytes
 * of text[0..size): row b starts at s_b, uniform in [0, size - len), and gets
 * ids[b * len + t] = text[s_b + t] and labels[b * len + t] = text[s_b + t + 1]
 * (the next byte) for t in [0, len). The starts depend only on (seed, step):
 *
 *   state = seed ^ (step * 0x9E3779B97F4A7C15)
 *   s_b = below(size - len) for b = 0, 1, ..., batch-1
 *
 * with the SplitMix64 next() and below() of the batches above. Needs
 * size > len, batch >= 1 and len >= 1 (FROST_ERR_ARG otherwise). */
int frost_text_windows(const uint8_t *text, int64_t size, int64_t batch, int64_t len, uint64_t seed, int64_t step,
                       int32_t *ids, int32_t *labels, frost_error *err);

#ifdef __cplusplus
}
#endif

#endif /* FROST_SUPPORT_H */
