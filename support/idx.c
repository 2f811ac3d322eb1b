/* idx.c: IDX files (MNIST, Fashion-MNIST), data sets and the batch iterator.
 *
 * Files are read through zlib, which reads gzip and plain files alike. A
 * header that claims more data than there is cannot make us allocate it: the
 * buffer grows as data actually arrives. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC */
#endif
#include "internal.h"

#include "ck.h" /* runtime/ck.h: checked int64 arithmetic, shared with the compiler */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_CHUNK ((int64_t)1 << 24) /* initial allocation and read size */

/* ---------------------------------------------------------------- reading */

typedef struct {
    gzFile gz;
    const char *qpath;
    frost_error *err;
} idx_reader;

/* zlib's message without the "<fd:N>: " it puts in front. */
static const char *gz_message(gzFile gz, int *zerr) {
    const char *m = gzerror(gz, zerr);
    if (m && !strncmp(m, "<fd:", 4)) {
        const char *c = strstr(m, ": ");
        if (c)
            m = c + 2;
    }
    return m && *m ? m : "unknown error";
}

/* Read up to n bytes; *got receives how many. Fails (with the message set)
 * only on a zlib error: a short count is the caller's to judge. */
static int idx_read(idx_reader *r, void *buf, int64_t n, int64_t *got) {
    *got = 0;
    while (*got < n) {
        int64_t want = n - *got;
        unsigned k = want > (1 << 30) ? 1u << 30 : (unsigned)want;
        int m = gzread(r->gz, (char *)buf + *got, k);
        if (m < 0) {
            int zerr;
            const char *zmsg = gz_message(r->gz, &zerr);
            if (zerr == Z_ERRNO)
                return fs_fail(r->err, FROST_ERR_IO, "'%s': read error: %s", r->qpath, strerror(errno));
            return fs_fail(r->err, FROST_ERR_FORMAT, "'%s': corrupt gzip data (zlib: %s)", r->qpath, zmsg);
        }
        if (m == 0)
            break;
        *got += m;
    }
    if (*got < n) {
        /* End of input: a gzip stream cut short says so. */
        int zerr;
        const char *zmsg = gz_message(r->gz, &zerr);
        if (zerr == Z_BUF_ERROR)
            return fs_fail(r->err, FROST_ERR_TRUNCATED, "'%s': truncated gzip stream (zlib: %s)", r->qpath, zmsg);
        if (zerr != Z_OK)
            return fs_fail(r->err, FROST_ERR_FORMAT, "'%s': corrupt gzip data (zlib: %s)", r->qpath, zmsg);
    }
    return 0;
}

static const char *idx_type_name(int t) {
    switch (t) {
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    }
    return NULL;
}

static void dims_str(char *buf, size_t size, int nd, const int64_t *d) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < nd && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

static int idx_load(idx_reader *r, int64_t file_size, int compressed, frost_idx *out) {
    const char *qpath = r->qpath;
    unsigned char h[4 * (1 + FROST_IDX_MAX_DIMS)];
    int64_t got;
    int rc = idx_read(r, h, 4, &got);
    if (rc)
        return rc;
    if (got < 4)
        return fs_fail(r->err, FROST_ERR_TRUNCATED, "'%s': truncated: %lld bytes, fewer than the 4 of the magic number",
                       qpath, (long long)got);
    uint32_t magic = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (h[0] || h[1] || (h[2] != 0x08 && !idx_type_name(h[2])))
        return fs_fail(r->err, FROST_ERR_FORMAT, "'%s': bad magic number 0x%08x: not an IDX file", qpath, magic);
    if (h[2] != 0x08)
        return fs_fail(r->err, FROST_ERR_FORMAT,
                       "'%s': unsupported IDX data type 0x%02x (%s); only 0x08 (unsigned byte) is supported", qpath,
                       h[2], idx_type_name(h[2]));
    int nd = h[3];
    if (nd < 1 || nd > FROST_IDX_MAX_DIMS)
        return fs_fail(r->err, FROST_ERR_FORMAT, "'%s': bad magic number 0x%08x: %d dimensions (1 to %d supported)",
                       qpath, magic, nd, FROST_IDX_MAX_DIMS);
    if ((rc = idx_read(r, h + 4, 4 * nd, &got)))
        return rc;
    if (got < 4 * nd)
        return fs_fail(r->err, FROST_ERR_TRUNCATED, "'%s': truncated: the header has %d dimensions but ends after %lld",
                       qpath, nd, (long long)(got / 4));
    /* The product of the non-zero dims must fit too: a zero dim makes a file
     * without data, but a reader still multiplies the others (the pixels of
     * an image of a file with no images). */
    int64_t dims[FROST_IDX_MAX_DIMS], nonzero = 1;
    bool empty = false;
    for (int i = 0; i < nd; i++) {
        const unsigned char *p = h + 4 + 4 * i;
        dims[i] = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        empty |= dims[i] == 0;
        if (dims[i] && (ck_mul(nonzero, dims[i], &nonzero) || nonzero > INT64_MAX / 2))
            return fs_fail(r->err, FROST_ERR_FORMAT, "'%s': dimensions too large", qpath);
    }
    int64_t size = empty ? 0 : nonzero;
    char ds[160];
    dims_str(ds, sizeof ds, nd, dims);
    int64_t data_start = 4 + 4 * (int64_t)nd;
    if (!compressed && file_size - data_start < size)
        return fs_fail(r->err, FROST_ERR_TRUNCATED,
                       "'%s': truncated: dimensions %s need %lld bytes of data, the file has %lld", qpath, ds,
                       (long long)size, (long long)(file_size - data_start));
    if (!compressed && file_size - data_start > size)
        return fs_fail(r->err, FROST_ERR_FORMAT,
                       "'%s': the file has %lld bytes of data, but dimensions %s need only %lld", qpath,
                       (long long)(file_size - data_start), ds, (long long)size);

    /* Data, growing the buffer as it arrives. */
    int64_t cap = compressed && size > IDX_CHUNK ? IDX_CHUNK : size;
    uint8_t *data = malloc((size_t)(cap ? cap : 1));
    if (!data)
        return fs_fail(r->err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
    int64_t have = 0;
    while (have < size) {
        if (have == cap) {
            int64_t ncap = cap > size / 2 ? size : 2 * cap;
            uint8_t *t = realloc(data, (size_t)ncap);
            if (!t) {
                free(data);
                return fs_fail(r->err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
            }
            data = t;
            cap = ncap;
        }
        if ((rc = idx_read(r, data + have, cap - have, &got))) {
            free(data);
            return rc;
        }
        have += got;
        if (have < cap)
            break; /* end of input */
    }
    if (have < size) {
        free(data);
        return fs_fail(r->err, FROST_ERR_TRUNCATED,
                       "'%s': truncated: dimensions %s need %lld bytes of data, the file has %lld", qpath, ds,
                       (long long)size, (long long)have);
    }
    unsigned char extra;
    if ((rc = idx_read(r, &extra, 1, &got))) {
        free(data);
        return rc;
    }
    if (got) {
        free(data);
        return fs_fail(r->err, FROST_ERR_FORMAT, "'%s': more data than dimensions %s need (%lld bytes)", qpath, ds,
                       (long long)size);
    }
    out->ndims = nd;
    memcpy(out->dims, dims, sizeof *dims * (size_t)nd);
    out->size = size;
    out->data = data;
    return 0;
}

int frost_idx_load(const char *path, frost_idx *out, frost_error *err) {
    if (!out)
        return fs_fail(err, FROST_ERR_ARG, "frost_idx_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path || !*path)
        return fs_fail(err, FROST_ERR_ARG, "frost_idx_load: no path");
    char qpath[256];
    fs_quote(qpath, sizeof qpath, path, 200);
    struct stat st;
    int fd = fs_open_regular(path, qpath, &st, err);
    if (fd < 0)
        return fd;
    unsigned char sig[2] = {0, 0};
    ssize_t k = pread(fd, sig, 2, 0);
    int compressed = k == 2 && sig[0] == 0x1f && sig[1] == 0x8b;
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return fs_fail(err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
    }
    gzbuffer(gz, 1 << 17);
    idx_reader r = {gz, qpath, err};
    int rc = idx_load(&r, (int64_t)st.st_size, compressed, out);
    gzclose(gz);
    if (rc)
        return rc;
    char ds[160];
    dims_str(ds, sizeof ds, out->ndims, out->dims);
    return fs_ok(err, "'%s': %s unsigned bytes", qpath, ds);
}

void frost_idx_free(frost_idx *idx) {
    if (!idx)
        return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* ---------------------------------------------------------------- data sets */

int frost_dataset_load(const char *images_path, const char *labels_path, float mean, float std, frost_dataset *ds,
                       frost_error *err) {
    if (!ds)
        return fs_fail(err, FROST_ERR_ARG, "frost_dataset_load: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (!(std > 0.0f) || !isfinite(std) || !isfinite(mean))
        return fs_fail(err, FROST_ERR_ARG, "frost_dataset_load: std must be positive and finite, mean finite");
    frost_idx im, lb;
    int rc = frost_idx_load(images_path, &im, err);
    if (rc)
        return rc;
    char qi[256], ql[256];
    fs_quote(qi, sizeof qi, images_path, 200);
    if (im.ndims != 3 || !im.dims[0] || !im.dims[1] || !im.dims[2]) {
        if (im.ndims != 3)
            rc = fs_fail(err, FROST_ERR_FORMAT, "'%s': not an images file: %d dimensions, want 3 (magic 0x00000803)",
                         qi, (int)im.ndims);
        else if (!im.dims[0])
            rc = fs_fail(err, FROST_ERR_FORMAT, "'%s': no images (the header says 0 of %lld x %lld pixels)", qi,
                         (long long)im.dims[1], (long long)im.dims[2]);
        else
            rc = fs_fail(err, FROST_ERR_FORMAT, "'%s': images of %lld x %lld pixels", qi, (long long)im.dims[1],
                         (long long)im.dims[2]);
        frost_idx_free(&im);
        return rc;
    }
    if ((rc = frost_idx_load(labels_path, &lb, err))) {
        frost_idx_free(&im);
        return rc;
    }
    fs_quote(ql, sizeof ql, labels_path, 200);
    if (lb.ndims != 1 || lb.dims[0] != im.dims[0]) {
        if (lb.ndims != 1)
            rc = fs_fail(err, FROST_ERR_FORMAT, "'%s': not a labels file: %d dimensions, want 1 (magic 0x00000801)", ql,
                         (int)lb.ndims);
        else
            rc = fs_fail(err, FROST_ERR_FORMAT, "'%s' has %lld labels but '%s' has %lld images", ql,
                         (long long)lb.dims[0], qi, (long long)im.dims[0]);
        frost_idx_free(&im);
        frost_idx_free(&lb);
        return rc;
    }
    /* frost_idx_load has checked the dims' product, so features and count
     * fit; the floats are 4 bytes per pixel byte. */
    int64_t count = im.dims[0], features = im.dims[1] * im.dims[2], image_bytes;
    bool too_big = ck_mul(im.size, (int64_t)sizeof *ds->images, &image_bytes);
    ds->images = too_big ? NULL : malloc((size_t)image_bytes);
    ds->labels = malloc(sizeof *ds->labels * (size_t)count);
    if (!ds->images || !ds->labels) {
        frost_idx_free(&im);
        frost_idx_free(&lb);
        frost_dataset_free(ds);
        return fs_fail(err, FROST_ERR_NOMEM, "'%s': out of memory", qi);
    }
    /* The same float for the same byte: a table of the 256 values. */
    float lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = ((float)v / 255.0f - mean) / std;
    for (int64_t i = 0; i < im.size; i++)
        ds->images[i] = lut[im.data[i]];
    int32_t maxl = -1;
    for (int64_t i = 0; i < count; i++) {
        ds->labels[i] = lb.data[i];
        if (ds->labels[i] > maxl)
            maxl = ds->labels[i];
    }
    ds->count = count;
    ds->rows = im.dims[1];
    ds->cols = im.dims[2];
    ds->features = features;
    ds->classes = maxl + 1;
    frost_idx_free(&im);
    frost_idx_free(&lb);
    return fs_ok(err, "%lld examples of %lld x %lld pixels, %d classes", (long long)count, (long long)ds->rows,
                 (long long)ds->cols, (int)ds->classes);
}

/* DIR/SPLIT-KIND-idxD-ubyte.gz, or without .gz when only that exists. */
static char *mnist_path(const char *dir, const char *split, const char *kind) {
    size_t n = strlen(dir) + strlen(split) + strlen(kind) + 32;
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s/%s-%s-ubyte.gz", dir, split, kind);
    if (access(p, F_OK) != 0) {
        p[strlen(p) - 3] = 0;
        if (access(p, F_OK) != 0)
            p[strlen(p)] = '.'; /* neither: report the .gz name */
    }
    return p;
}

int frost_dataset_load_mnist(const char *dir, const char *split, float mean, float std, frost_dataset *ds,
                             frost_error *err) {
    if (ds)
        memset(ds, 0, sizeof *ds);
    if (!dir || !split || !*split || !ds)
        return fs_fail(err, FROST_ERR_ARG, "frost_dataset_load_mnist: NULL or empty argument");
    char *im = mnist_path(dir, split, "images-idx3");
    char *lb = mnist_path(dir, split, "labels-idx1");
    int rc = im && lb ? frost_dataset_load(im, lb, mean, std, ds, err)
                      : fs_fail(err, FROST_ERR_NOMEM, "frost_dataset_load_mnist: out of memory");
    free(im);
    free(lb);
    return rc;
}

void frost_dataset_free(frost_dataset *ds) {
    if (!ds)
        return;
    free(ds->images);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

/* ---------------------------------------------------------------- batches */

static void batcher_order(frost_batcher *b) {
    int64_t n = b->ds->count;
    for (int64_t i = 0; i < n; i++)
        b->perm[i] = i;
    if (b->flags & FROST_BATCH_SEQUENTIAL)
        return;
    uint64_t state = b->seed ^ ((uint64_t)b->epoch * FS_GOLDEN);
    for (int64_t i = n - 1; i >= 1; i--) {
        int64_t j = (int64_t)fs_below(&state, (uint64_t)i + 1);
        int64_t t = b->perm[i];
        b->perm[i] = b->perm[j];
        b->perm[j] = t;
    }
}

int frost_batcher_init(frost_batcher *b, const frost_dataset *ds, int64_t batch, uint64_t seed, int flags,
                       frost_error *err) {
    if (!b)
        return fs_fail(err, FROST_ERR_ARG, "frost_batcher_init: b is NULL");
    memset(b, 0, sizeof *b);
    if (!ds || ds->count <= 0 || !ds->images)
        return fs_fail(err, FROST_ERR_ARG, "frost_batcher_init: empty data set");
    if (flags & ~(FROST_BATCH_WRAP | FROST_BATCH_SEQUENTIAL))
        return fs_fail(err, FROST_ERR_ARG, "frost_batcher_init: unknown flags 0x%x", (unsigned)flags);
    if (batch < 1)
        return fs_fail(err, FROST_ERR_ARG, "frost_batcher_init: batch size %lld", (long long)batch);
    int64_t x_bytes; /* the caller's x, which next() indexes */
    if (ck_mul(batch, ds->features, &x_bytes) || ck_mul(x_bytes, (int64_t)sizeof(float), &x_bytes))
        return fs_fail(err, FROST_ERR_ARG,
                       "frost_batcher_init: batch size %lld is too large: %lld x %lld floats do not fit in 2^63 bytes",
                       (long long)batch, (long long)batch, (long long)ds->features);
    if (!(flags & FROST_BATCH_WRAP) && batch > ds->count)
        return fs_fail(err, FROST_ERR_ARG,
                       "frost_batcher_init: batch size %lld exceeds the %lld examples: every batch would be dropped "
                       "(use FROST_BATCH_WRAP)",
                       (long long)batch, (long long)ds->count);
    b->perm = malloc(sizeof *b->perm * (size_t)ds->count);
    if (!b->perm)
        return fs_fail(err, FROST_ERR_NOMEM, "frost_batcher_init: out of memory");
    b->ds = ds;
    b->batch = batch;
    b->seed = seed;
    b->flags = flags;
    frost_batcher_seek(b, 0);
    return fs_ok(err, NULL);
}

void frost_batcher_seek(frost_batcher *b, int64_t epoch) {
    if (!b || !b->perm)
        return;
    b->epoch = epoch;
    b->pos = 0;
    batcher_order(b);
}

int64_t frost_batcher_next(frost_batcher *b, float *x, int32_t *labels) {
    if (!b || !b->perm)
        return 0;
    const frost_dataset *ds = b->ds;
    int64_t n = ds->count;
    int wrap = (b->flags & FROST_BATCH_WRAP) != 0;
    if (wrap ? b->pos >= n : b->pos + b->batch > n) {
        frost_batcher_seek(b, b->epoch + 1);
        return 0;
    }
    for (int64_t k = 0; k < b->batch; k++) {
        int64_t e = b->perm[(b->pos + k) % n];
        if (x)
            memcpy(x + k * ds->features, ds->images + e * ds->features, sizeof *x * (size_t)ds->features);
        if (labels)
            labels[k] = ds->labels[e];
    }
    int64_t fresh = n - b->pos < b->batch ? n - b->pos : b->batch;
    b->pos += b->batch;
    return fresh;
}

void frost_batcher_free(frost_batcher *b) {
    if (!b)
        return;
    free(b->perm);
    memset(b, 0, sizeof *b);
}
