/* ckpt.c: safetensors checkpoints of a params block, through the model's
 * parameter table.
 *
 * Load validates the whole file (header length, JSON, every entry's dtype,
 * shape and data_offsets, the file's length) and every name, dtype and shape
 * against the table before it writes a byte of params. Save writes a
 * temporary file next to the target and renames it. Data is little-endian on
 * disk; big-endian hosts swap. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* fseeko, fsync, O_CLOEXEC */
#endif
#include "internal.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000 /* the limit of the reference implementation */
#define ST_MAX_RANK 32          /* of tensors in a file; the table's is FROST_MAX_RANK */
#define ST_NAME_MAX 120         /* characters of a name shown in a message */

/* ---------------------------------------------------------------- dtypes */

typedef struct {
    const char *name;
    int bytes;
    int frost; /* FROST_DTYPE_* or -1: known to safetensors but not loadable */
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F32", 4, FROST_DTYPE_F32},
    {"I32", 4, FROST_DTYPE_I32},
    {"U8", 1, FROST_DTYPE_U8},
    {"I64", 8, FROST_DTYPE_I64},
    {"BOOL", 1, -1},
    {"I8", 1, -1},
    {"F8_E5M2", 1, -1},
    {"F8_E4M3", 1, -1},
    {"I16", 2, -1},
    {"U16", 2, -1},
    {"F16", 2, -1},
    {"BF16", 2, -1},
    {"U32", 4, -1},
    {"F64", 8, -1},
    {"U64", 8, -1},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof *st_dtypes))

static int st_dtype_of_frost(int32_t dt) {
    for (int k = 0; k < ST_NDTYPES; k++)
        if (st_dtypes[k].frost >= 0 && st_dtypes[k].frost == dt)
            return k;
    return -1;
}

int fs_dtype_bytes(int32_t dtype) {
    int k = st_dtype_of_frost(dtype);
    return k < 0 ? 0 : st_dtypes[k].bytes;
}

static int st_dtype_of_name(const char *s) {
    for (int k = 0; k < ST_NDTYPES; k++)
        if (!strcmp(st_dtypes[k].name, s))
            return k;
    return -1;
}

static int host_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_bytes(void *buf, size_t bytes, int esize) {
    unsigned char *p = buf;
    if (esize < 2)
        return;
    for (size_t i = 0; i + (size_t)esize <= bytes; i += (size_t)esize)
        for (int a = 0, z = esize - 1; a < z; a++, z--) {
            unsigned char t = p[i + a];
            p[i + a] = p[i + z];
            p[i + z] = t;
        }
}

/* ---------------------------------------------------------------- helpers */

/* '*' matches any run of characters, '?' one character, against the string
 * `a` followed by `b` (two pieces, so that a load prefix and a file name are
 * matched without joining them). Linear backtracking: no recursion. */
static int glob_match2(const char *pat, const char *a, const char *b) {
    const char *star = NULL, *resume = NULL, *s = a;
    int in_b = 0, resume_in_b = 0;
    for (;;) {
        if (!*s && !in_b) { /* the end of a: go on in b */
            s = b;
            in_b = 1;
            continue;
        }
        if (!*s)
            break;
        if (*pat == '*') {
            star = pat++;
            resume = s;
            resume_in_b = in_b;
        } else if (*pat && (*pat == '?' || *pat == *s)) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
            in_b = resume_in_b;
            if (!*s && !in_b) { /* resumed at the end of a: resume in b from now on */
                s = resume = b;
                in_b = resume_in_b = 1;
            }
        } else {
            return 0;
        }
    }
    while (*pat == '*')
        pat++;
    return !*pat;
}

const char *const frost_lora_patterns[] = {"*.lora_A.weight", "*.lora_B.weight", NULL};

/* Whether a pattern of the NULL-terminated list matches `a` followed by `b`. */
static int any_match2(const char *const *pats, const char *a, const char *b) {
    for (const char *const *p = pats; p && *p; p++)
        if (glob_match2(*p, a, b))
            return 1;
    return 0;
}

int fs_is_adapter_name(const char *name) { return any_match2(frost_lora_patterns, name, ""); }

static const char *load_prefix(const frost_load_options *opt) {
    return opt && opt->prefix && *opt->prefix ? opt->prefix : NULL;
}

/* The name a table entry has in the file: without opt->prefix when it starts
 * with it (and has more after it), else its own. */
static const char *file_name_of(const frost_load_options *opt, const char *name) {
    const char *pre = load_prefix(opt);
    size_t k = pre ? strlen(pre) : 0;
    return k && !strncmp(name, pre, k) && name[k] ? name + k : name;
}

/* Whether the patterns match name or fname (two forms of one name: a table
 * entry's, and with a prefix the file's, given as pre + fname when name is NULL). */
static int matches_either(const char *const *pats, const char *name, const char *pre, const char *fname) {
    return any_match2(pats, fname, "") || (name ? any_match2(pats, name, "") : pre && any_match2(pats, pre, fname));
}

/* A table entry is skipped when a skip pattern matches its name or its file
 * name, or `only` patterns match neither. */
static int entry_skipped(const frost_load_options *opt, const char *name) {
    if (!opt)
        return 0;
    const char *fname = file_name_of(opt, name);
    return matches_either(opt->skip, name, NULL, fname) || (opt->only && !matches_either(opt->only, name, NULL, fname));
}

/* A file tensor likewise, its table form being the prefix followed by its name. */
static int file_skipped(const frost_load_options *opt, const char *fname) {
    if (!opt)
        return 0;
    const char *pre = load_prefix(opt);
    return matches_either(opt->skip, NULL, pre, fname) || (opt->only && !matches_either(opt->only, NULL, pre, fname));
}

void fs_shape_str(char *buf, size_t size, int rank, const int64_t *dims) {
    size_t n = 0;
    buf[0] = 0;
    n += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

int64_t fs_tensor_bytes(int rank, const int64_t *dims, int esize) {
    int64_t n = esize;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return -1;
        if (dims[i] && n > INT64_MAX / dims[i])
            return -1;
        n *= dims[i];
    }
    return n;
}

/* ---------------------------------------------------------------- the table */

typedef struct {
    const frost_param_info *t;
    int i; /* table index */
} tab_ref;

static int cmp_tab_ref(const void *a, const void *b) {
    return strcmp(((const tab_ref *)a)->t->name, ((const tab_ref *)b)->t->name);
}

/* Check every persistent entry and sort them by name into *refs (caller
 * frees); *nrefs gets their count. */
static int check_table(const char *qpath, const void *params, const frost_param_info *table, int n, tab_ref **refs,
                       int *nrefs, frost_error *err) {
    *refs = NULL;
    *nrefs = 0;
    if (n < 0)
        return fs_fail(err, FROST_ERR_ARG, "'%s': negative table size %d", qpath, n);
    if (n > 0 && (!table || !params))
        return fs_fail(err, FROST_ERR_ARG, "'%s': %s is NULL", qpath, !table ? "the table" : "params");
    tab_ref *r = malloc(sizeof *r * (n > 0 ? (size_t)n : 1));
    if (!r)
        return fs_fail(err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const frost_param_info *t = &table[i];
        if (!t->persistent)
            continue;
        char q[ST_NAME_MAX + 8];
        fs_quote(q, sizeof q, t->name, ST_NAME_MAX);
        const char *why = !t->name || !*t->name                       ? "has no name"
                          : st_dtype_of_frost(t->dtype) < 0           ? "has an unsupported dtype code"
                          : t->rank < 0 || t->rank > FROST_MAX_RANK   ? "has a bad rank"
                          : t->offset < 0                             ? "has a negative offset"
                          : fs_tensor_bytes(t->rank, t->shape, 1) < 0 ? "has a bad shape"
                                                                      : NULL;
        if (why) {
            free(r);
            return fs_fail(err, FROST_ERR_ARG, "'%s': table entry %d ('%s') %s", qpath, i, q, why);
        }
        r[k].t = t;
        r[k].i = i;
        k++;
    }
    if (k > 1)
        qsort(r, (size_t)k, sizeof *r, cmp_tab_ref);
    for (int j = 1; j < k; j++)
        if (!strcmp(r[j - 1].t->name, r[j].t->name)) {
            char q[ST_NAME_MAX + 8];
            fs_quote(q, sizeof q, r[j].t->name, ST_NAME_MAX);
            int a = r[j - 1].i < r[j].i ? r[j - 1].i : r[j].i, b = r[j - 1].i ^ r[j].i ^ a;
            free(r);
            return fs_fail(err, FROST_ERR_ARG, "'%s': table entries %d and %d are both named '%s'", qpath, a, b, q);
        }
    *refs = r;
    *nrefs = k;
    return 0;
}

/* ---------------------------------------------------------------- save */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string of the characters of a followed by those of b. */
static void sb_json_prefixed(sbuf *b, const char *a, const char *s) {
    sb_put(b, "\"", 1);
    for (int part = 0; part < 2; part++, a = s)
        for (const char *c = a; *c; c++) {
            unsigned char u = (unsigned char)*c;
            char esc[8];
            if (u == '"' || u == '\\') {
                esc[0] = '\\';
                esc[1] = (char)u;
                sb_put(b, esc, 2);
            } else if (u < 0x20 || u == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", u);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, c, 1);
            }
        }
    sb_put(b, "\"", 1);
}

static int write_all(FILE *f, const void *data, size_t n, int esize) {
    if (host_little_endian() || esize < 2)
        return fwrite(data, 1, n, f) == n ? 0 : -1;
    unsigned char chunk[1 << 16];
    const unsigned char *p = data;
    while (n) {
        size_t k = n < sizeof chunk ? n : sizeof chunk;
        memcpy(chunk, p, k);
        swap_bytes(chunk, k, esize);
        if (fwrite(chunk, 1, k, f) != k)
            return -1;
        p += k;
        n -= k;
    }
    return 0;
}

/* Whether save options select table entry t. */
static int save_selected(const frost_save_options *opt, const frost_param_info *t) {
    if (!t->persistent)
        return 0;
    if (!opt)
        return 1;
    return !any_match2(opt->skip, t->name, "") && (!opt->only || any_match2(opt->only, t->name, ""));
}

int frost_ckpt_save(const char *path, const void *params, const frost_param_info *table, int n, frost_error *err) {
    return frost_ckpt_save_ex(path, params, table, n, NULL, err);
}

int frost_ckpt_save_ex(const char *path, const void *params, const frost_param_info *table, int n,
                       const frost_save_options *opt, frost_error *err) {
    if (!path || !*path)
        return fs_fail(err, FROST_ERR_ARG, "frost_ckpt_save: no path");
    char qpath[256];
    fs_quote(qpath, sizeof qpath, path, 200);
    tab_ref *refs;
    int nrefs;
    int rc = check_table(qpath, params, table, n, &refs, &nrefs, err);
    if (rc)
        return rc;
    free(refs);
    const char *prefix = opt && opt->prefix ? opt->prefix : "";
    nrefs = 0;
    for (int i = 0; i < n; i++)
        nrefs += save_selected(opt, &table[i]);
    if (!nrefs && opt && (opt->only || opt->skip))
        return fs_fail(err, FROST_ERR_ARG, "'%s': no table entry is selected: nothing to save", qpath);

    /* Header, tensors in table order, data packed back to back. */
    sbuf h = {0};
    sb_str(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        const frost_param_info *t = &table[i];
        if (!save_selected(opt, t))
            continue;
        const st_dtype *d = &st_dtypes[st_dtype_of_frost(t->dtype)];
        int64_t bytes = fs_tensor_bytes(t->rank, t->shape, d->bytes);
        if (bytes < 0 || at > INT64_MAX - bytes) {
            free(h.s);
            return fs_fail(err, FROST_ERR_ARG, "'%s': table entry %d is too large", qpath, i);
        }
        char num[64];
        sb_str(&h, ",");
        sb_json_prefixed(&h, prefix, t->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, d->name);
        sb_str(&h, "\",\"shape\":[");
        for (int k = 0; k < t->rank; k++) {
            snprintf(num, sizeof num, "%s%lld", k ? "," : "", (long long)t->shape[k]);
            sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%lld,%lld]}", (long long)at, (long long)(at + bytes));
        sb_str(&h, num);
        at += bytes;
    }
    sb_str(&h, "}");
    while (!h.oom && h.len % 8) /* data starts 8-aligned, as the reference writer does */
        sb_str(&h, " ");
    if (h.oom) {
        free(h.s);
        return fs_fail(err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
    }
    if (h.len > ST_MAX_HEADER) {
        free(h.s);
        return fs_fail(err, FROST_ERR_ARG, "'%s': header of %zu bytes exceeds the format's limit", qpath, h.len);
    }

    /* A temporary in the same directory, then rename. */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 48);
    if (!tmp) {
        free(h.s);
        return fs_fail(err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
    }
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, plen + 48, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;
        free(h.s);
        free(tmp);
        return fs_fail(err, FROST_ERR_IO, "'%s': cannot create a temporary file next to it: %s", qpath, strerror(e));
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(h.s);
        free(tmp);
        return fs_fail(err, FROST_ERR_IO, "'%s': cannot write: %s", qpath, strerror(e));
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)h.len >> (8 * k));
    int bad = fwrite(len8, 1, 8, f) != 8 || fwrite(h.s, 1, h.len, f) != h.len;
    for (int i = 0; i < n && !bad; i++) {
        const frost_param_info *t = &table[i];
        if (!save_selected(opt, t))
            continue;
        const st_dtype *d = &st_dtypes[st_dtype_of_frost(t->dtype)];
        int64_t bytes = fs_tensor_bytes(t->rank, t->shape, d->bytes);
        bad = write_all(f, (const char *)params + t->offset, (size_t)bytes, d->bytes) != 0;
    }
    int e = errno;
    if (!bad) {
        bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
        e = errno;
    }
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    free(h.s);
    if (bad) {
        unlink(tmp);
        free(tmp);
        return fs_fail(err, FROST_ERR_IO, "'%s': write failed: %s", qpath, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        free(tmp);
        return fs_fail(err, FROST_ERR_IO, "'%s': cannot rename the temporary file over it: %s", qpath, strerror(e));
    }
    free(tmp);
    return fs_ok(err, "saved %d tensors (%lld bytes of data) to '%s'", nrefs, (long long)at, qpath);
}

/* ---------------------------------------------------------------- load: parse */

typedef struct {
    char *name;
    int dtype; /* index into st_dtypes, or -1 for a dtype unknown to this reader */
    char dtype_name[16];
    int rank;
    int64_t shape[ST_MAX_RANK];
    int64_t begin, end;
    int used;
} st_tensor;

typedef struct {
    st_tensor *t;
    int n, cap;
} st_list;

static void st_free(st_list *l) {
    for (int i = 0; i < l->n; i++)
        free(l->t[i].name);
    free(l->t);
}

/* A tensor entry: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}. */
static int st_parse_entry(sj_parser *p, st_tensor *t, const char *qpath, frost_error *err) {
    char q[ST_NAME_MAX + 8];
    fs_quote(q, sizeof q, t->name, ST_NAME_MAX);
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    if (sj_expect(p, '{', "'{' (a tensor entry)"))
        return -1;
    if (!sj_accept(p, '}')) {
        do {
            char *key;
            size_t klen;
            if (sj_string(p, &key, &klen) || sj_expect(p, ':', "':' after a key")) {
                free(key);
                return -1;
            }
            if (!strcmp(key, "dtype")) {
                char *s;
                size_t slen;
                free(key);
                if (have_dtype++)
                    return fs_fail(err, FROST_ERR_FORMAT, "'%s': tensor '%s': \"dtype\" given twice", qpath, q);
                if (sj_peek(p) >= 0 && sj_peek(p) != '"')
                    return fs_fail(err, FROST_ERR_FORMAT, "'%s': tensor '%s': \"dtype\" is not a string", qpath, q);
                if (sj_string(p, &s, &slen))
                    return -1;
                t->dtype = st_dtype_of_name(s);
                fs_quote(t->dtype_name, sizeof t->dtype_name, s, 7);
                free(s);
            } else if (!strcmp(key, "shape") || !strcmp(key, "data_offsets")) {
                int is_shape = key[0] == 's';
                free(key);
                if (is_shape ? have_shape++ : have_offsets++)
                    return fs_fail(err, FROST_ERR_FORMAT, "'%s': tensor '%s': \"%s\" given twice", qpath, q,
                                   is_shape ? "shape" : "data_offsets");
                int64_t v[ST_MAX_RANK];
                int k = 0;
                if (sj_peek(p) < 0)
                    return sj_error(p, "unexpected end of header");
                if (sj_peek(p) != '[')
                    goto not_ints;
                p->i++;
                if (!sj_accept(p, ']')) {
                    do {
                        if (k == (is_shape ? ST_MAX_RANK : 2)) {
                            if (is_shape)
                                return fs_fail(err, FROST_ERR_FORMAT, "'%s': tensor '%s': more than %d dimensions",
                                               qpath, q, ST_MAX_RANK);
                            goto not_ints;
                        }
                        int c = sj_peek(p);
                        if (c < 0)
                            return sj_error(p, "unexpected end of header");
                        if (c < '0' || c > '9')
                            goto not_ints;
                        if (sj_uint(p, &v[k++]))
                            return -1;
                    } while (sj_accept(p, ','));
                    if (sj_expect(p, ']', "',' or ']'"))
                        return -1;
                }
                if (is_shape) {
                    t->rank = k;
                    memcpy(t->shape, v, sizeof *v * (size_t)k);
                } else {
                    if (k != 2)
                        goto not_ints;
                    t->begin = v[0];
                    t->end = v[1];
                }
                continue;
            not_ints:
                return fs_fail(err, FROST_ERR_FORMAT,
                               is_shape ? "'%s': tensor '%s': \"shape\" is not an array of non-negative integers"
                                        : "'%s': tensor '%s': \"data_offsets\" is not an array of two "
                                          "non-negative integers",
                               qpath, q);
            } else {
                free(key); /* unknown fields are ignored */
                if (sj_skip(p))
                    return -1;
            }
        } while (sj_accept(p, ','));
        if (sj_expect(p, '}', "',' or '}'"))
            return -1;
    }
    const char *none = !have_dtype ? "dtype" : !have_shape ? "shape" : !have_offsets ? "data_offsets" : NULL;
    if (none)
        return fs_fail(err, FROST_ERR_FORMAT, "'%s': tensor '%s' has no \"%s\"", qpath, q, none);
    return 0;
}

/* "__metadata__": an object of strings. */
static int st_parse_metadata(sj_parser *p, const char *qpath, frost_error *err) {
    if (sj_peek(p) != '{')
        return fs_fail(err, FROST_ERR_FORMAT, "'%s': \"__metadata__\" is not an object of strings", qpath);
    p->i++;
    if (sj_accept(p, '}'))
        return 0;
    do {
        char *s = NULL;
        size_t len;
        if (sj_string(p, &s, &len) || sj_expect(p, ':', "':' after a key")) {
            free(s);
            return -1;
        }
        free(s);
        if (sj_peek(p) != '"' && sj_peek(p) >= 0)
            return fs_fail(err, FROST_ERR_FORMAT, "'%s': \"__metadata__\" is not an object of strings", qpath);
        if (sj_string(p, &s, &len))
            return -1;
        free(s);
    } while (sj_accept(p, ','));
    return sj_expect(p, '}', "',' or '}'");
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int st_parse_header(const char *hdr, size_t len, st_list *l, const char *qpath, frost_error *err) {
    sj_parser p;
    sj_init(&p, hdr, len);
    int rc = 0;
    if (sj_expect(&p, '{', "'{' at the start of the header"))
        goto json;
    if (!sj_accept(&p, '}')) {
        do {
            char *name = NULL;
            size_t nlen;
            if (sj_string(&p, &name, &nlen) || sj_expect(&p, ':', "':' after a key")) {
                free(name);
                goto json;
            }
            if (nlen != strlen(name)) {
                free(name);
                return fs_fail(err, FROST_ERR_FORMAT, "'%s': a tensor name contains \\u0000", qpath);
            }
            if (!strcmp(name, "__metadata__")) {
                free(name);
                rc = st_parse_metadata(&p, qpath, err);
                if (rc)
                    goto check;
                continue;
            }
            if (l->n == l->cap) {
                int cap = l->cap ? 2 * l->cap : 16;
                st_tensor *t = realloc(l->t, sizeof *t * (size_t)cap);
                if (!t) {
                    free(name);
                    return fs_fail(err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
                }
                l->t = t;
                l->cap = cap;
            }
            st_tensor *t = &l->t[l->n++];
            memset(t, 0, sizeof *t);
            t->name = name;
            rc = st_parse_entry(&p, t, qpath, err);
            if (rc)
                goto check;
        } while (sj_accept(&p, ','));
        if (sj_expect(&p, '}', "',' or '}'"))
            goto json;
    }
    if (sj_end(&p))
        goto json;
    return 0;
check:
    if (!p.failed)
        return rc; /* a schema error, already reported */
json:
    return fs_fail(err, FROST_ERR_FORMAT, "'%s': malformed JSON header at byte %zu: %s", qpath, p.err_at, p.err);
}

typedef struct {
    int64_t begin, end;
    int i;
} st_span;

static int cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->i - y->i;
}

/* Offsets against dtype x shape, each other and the data section's size. */
static int st_check_offsets(st_list *l, int64_t data_bytes, const char *qpath, frost_error *err) {
    char q[ST_NAME_MAX + 8], q2[ST_NAME_MAX + 8], sh[160];
    int64_t max_end = 0;
    int at_max = -1;
    for (int i = 0; i < l->n; i++) {
        st_tensor *t = &l->t[i];
        fs_quote(q, sizeof q, t->name, ST_NAME_MAX);
        if (t->begin > t->end)
            return fs_fail(err, FROST_ERR_OFFSETS, "'%s': tensor '%s': data_offsets [%lld, %lld] are reversed", qpath,
                           q, (long long)t->begin, (long long)t->end);
        if (t->dtype >= 0) {
            int64_t want = fs_tensor_bytes(t->rank, t->shape, st_dtypes[t->dtype].bytes);
            fs_shape_str(sh, sizeof sh, t->rank, t->shape);
            if (want < 0)
                return fs_fail(err, FROST_ERR_FORMAT, "'%s': tensor '%s': shape %s is too large", qpath, q, sh);
            if (t->end - t->begin != want)
                return fs_fail(err, FROST_ERR_OFFSETS,
                               "'%s': tensor '%s': data_offsets [%lld, %lld] hold %lld bytes, but %s %s needs %lld",
                               qpath, q, (long long)t->begin, (long long)t->end, (long long)(t->end - t->begin),
                               st_dtypes[t->dtype].name, sh, (long long)want);
        }
        if (t->end > max_end) {
            max_end = t->end;
            at_max = i;
        }
    }
    st_span *s = malloc(sizeof *s * (l->n > 0 ? (size_t)l->n : 1));
    if (!s)
        return fs_fail(err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
    int k = 0;
    for (int i = 0; i < l->n; i++)
        if (l->t[i].end > l->t[i].begin)
            s[k++] = (st_span){l->t[i].begin, l->t[i].end, i};
    if (k > 1)
        qsort(s, (size_t)k, sizeof *s, cmp_span);
    for (int j = 1; j < k; j++)
        if (s[j].begin < s[j - 1].end) {
            const st_tensor *a = &l->t[s[j - 1].i], *b = &l->t[s[j].i];
            fs_quote(q, sizeof q, a->name, ST_NAME_MAX / 2);
            fs_quote(q2, sizeof q2, b->name, ST_NAME_MAX / 2);
            free(s);
            return fs_fail(err, FROST_ERR_OFFSETS, "'%s': tensors '%s' [%lld, %lld] and '%s' [%lld, %lld] overlap",
                           qpath, q, (long long)a->begin, (long long)a->end, q2, (long long)b->begin,
                           (long long)b->end);
        }
    free(s);
    if (max_end > data_bytes) {
        fs_quote(q, sizeof q, l->t[at_max].name, ST_NAME_MAX);
        return fs_fail(err, FROST_ERR_TRUNCATED,
                       "'%s': truncated data: tensor '%s' ends at byte %lld of the data, but the file has only "
                       "%lld bytes of data",
                       qpath, q, (long long)max_end, (long long)data_bytes);
    }
    return 0;
}

/* ---------------------------------------------------------------- load */

static st_tensor *st_find(st_list *l, const char *name) {
    st_tensor key;
    key.name = (char *)name;
    return l->n > 0 ? bsearch(&key, l->t, (size_t)l->n, sizeof *l->t, cmp_tensor_name) : NULL;
}

/* The table entry that file tensor `fname` belongs to (through opt->prefix). */
static const frost_param_info *table_find(const frost_param_info *table, int n, const frost_load_options *opt,
                                          const char *fname) {
    for (int i = 0; i < n; i++)
        if (table[i].name && !strcmp(file_name_of(opt, table[i].name), fname))
            return &table[i];
    return NULL;
}

/* With a prefix, an entry "P" + x and an entry x would both load file tensor x. */
static int check_prefix_collisions(const char *qpath, const frost_param_info *table, int n,
                                   const frost_load_options *opt, frost_error *err) {
    const char *pre = load_prefix(opt);
    if (!pre)
        return 0;
    for (int i = 0; i < n; i++) {
        const char *fname = table[i].persistent ? file_name_of(opt, table[i].name) : NULL;
        if (!fname || fname == table[i].name)
            continue;
        for (int j = 0; j < n; j++)
            if (table[j].persistent && !strcmp(table[j].name, fname)) {
                char a[ST_NAME_MAX + 8], b[ST_NAME_MAX + 8], pq[ST_NAME_MAX + 8];
                fs_quote(a, sizeof a, table[i].name, ST_NAME_MAX / 2);
                fs_quote(b, sizeof b, table[j].name, ST_NAME_MAX / 2);
                fs_quote(pq, sizeof pq, pre, ST_NAME_MAX / 2);
                return fs_fail(err, FROST_ERR_ARG,
                               "'%s': with the prefix '%s', table entries '%s' and '%s' would both load the file's "
                               "'%s'",
                               qpath, pq, a, b, b);
            }
    }
    return 0;
}

static int read_exact(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n ? 0 : -1; }

static int ckpt_load(FILE *f, const char *qpath, void *params, const frost_param_info *table, int n,
                     const frost_load_options *opt, st_list *l, frost_error *err) {
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        return fs_fail(err, FROST_ERR_IO, "'%s': cannot stat: %s", qpath, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fs_fail(err, FROST_ERR_IO, "'%s': not a regular file", qpath);
    int64_t fsize = (int64_t)st.st_size;
    if (fsize < 8)
        return fs_fail(err, FROST_ERR_TRUNCATED,
                       "'%s': truncated header: the file has %lld bytes, fewer than the 8 of the header length", qpath,
                       (long long)fsize);
    unsigned char len8[8];
    if (read_exact(f, len8, 8))
        return fs_fail(err, FROST_ERR_IO, "'%s': read error", qpath);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = hlen << 8 | len8[k];
    if (hlen > ST_MAX_HEADER)
        return fs_fail(err, FROST_ERR_FORMAT, "'%s': header length %llu is absurd (limit %d): not a safetensors file?",
                       qpath, (unsigned long long)hlen, ST_MAX_HEADER);
    if ((int64_t)hlen > fsize - 8)
        return fs_fail(err, FROST_ERR_TRUNCATED,
                       "'%s': truncated header: the header length is %llu bytes, but only %lld follow", qpath,
                       (unsigned long long)hlen, (long long)(fsize - 8));
    if (hlen < 2)
        return fs_fail(err, FROST_ERR_FORMAT, "'%s': header length %llu is too small for a JSON object", qpath,
                       (unsigned long long)hlen);
    char *hdr = malloc(hlen);
    if (!hdr)
        return fs_fail(err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
    if (read_exact(f, hdr, hlen)) {
        free(hdr);
        return fs_fail(err, FROST_ERR_IO, "'%s': read error", qpath);
    }
    int rc = st_parse_header(hdr, hlen, l, qpath, err);
    free(hdr);
    if (rc)
        return rc;
    const char *fpre = opt && opt->file_prefix && *opt->file_prefix ? opt->file_prefix : NULL;
    for (int i = 0; fpre && i < l->n; i++) { /* matched without the file's own prefix */
        size_t k = strlen(fpre);
        if (!strncmp(l->t[i].name, fpre, k) && l->t[i].name[k])
            memmove(l->t[i].name, l->t[i].name + k, strlen(l->t[i].name + k) + 1);
    }
    if (l->n > 1)
        qsort(l->t, (size_t)l->n, sizeof *l->t, cmp_tensor_name);
    for (int i = 1; i < l->n; i++)
        if (!strcmp(l->t[i - 1].name, l->t[i].name)) {
            char q[ST_NAME_MAX + 8], pq[ST_NAME_MAX + 8];
            fs_quote(q, sizeof q, l->t[i].name, ST_NAME_MAX);
            if (fpre) {
                fs_quote(pq, sizeof pq, fpre, ST_NAME_MAX);
                return fs_fail(err, FROST_ERR_FORMAT,
                               "'%s': tensor '%s' appears twice in the header (with the prefix '%s' and without)",
                               qpath, q, pq);
            }
            return fs_fail(err, FROST_ERR_FORMAT, "'%s': tensor '%s' appears twice in the header", qpath, q);
        }
    /* A file without adapter tensors is a base checkpoint: the table's adapters
     * may be absent. Not so when `only` patterns say what to load. */
    int base_ckpt = !(opt && opt->only);
    for (int i = 0; i < l->n && base_ckpt; i++)
        base_ckpt = !fs_is_adapter_name(l->t[i].name);
    int64_t data_start = 8 + (int64_t)hlen;
    if ((rc = st_check_offsets(l, fsize - data_start, qpath, err)))
        return rc;

    /* Names. */
    fs_msg m;
    char q[ST_NAME_MAX + 8];
    int nmissing = 0, nunexpected = 0, nskip_table = 0, nload = 0, nabsent_adapters = 0;
    for (int i = 0; i < n; i++) {
        const frost_param_info *t = &table[i];
        if (!t->persistent)
            continue;
        if (entry_skipped(opt, t->name)) {
            nskip_table++;
            continue;
        }
        st_tensor *ft = st_find(l, file_name_of(opt, t->name));
        if (ft) {
            ft->used = 1;
            nload++;
        } else if (base_ckpt && fs_is_adapter_name(t->name)) {
            nabsent_adapters++;
        } else {
            nmissing++;
        }
    }
    for (int i = 0; i < l->n; i++) {
        st_tensor *ft = &l->t[i];
        if (ft->used || file_skipped(opt, ft->name))
            continue;
        const frost_param_info *t = table_find(table, n, opt, ft->name);
        if (t && !t->persistent)
            continue; /* state deliberately not checkpointed: left alone */
        nunexpected++;
    }
    int bad_missing = nmissing && !(opt && opt->allow_missing);
    int bad_unexpected = nunexpected && !(opt && opt->allow_unexpected);
    if (bad_missing || bad_unexpected) {
        fs_msg_init(&m);
        fs_msg_add(&m, "'%s': ", qpath);
        if (bad_missing) {
            fs_msg_add(&m, "%d tensor%s missing from the file", nmissing, nmissing == 1 ? "" : "s");
            if (load_prefix(opt)) {
                fs_quote(q, sizeof q, load_prefix(opt), ST_NAME_MAX);
                fs_msg_add(&m, " (looked up without the prefix '%s')", q);
            }
            fs_msg_add(&m, ":");
            if (bad_unexpected) /* leave the list of unexpected tensors room to show some names */
                m.limit = sizeof m.s * 3 / 5;
            int k = 0;
            for (int i = 0; i < n; i++) {
                const frost_param_info *t = &table[i];
                if (!t->persistent || entry_skipped(opt, t->name) || st_find(l, file_name_of(opt, t->name)) ||
                    (base_ckpt && fs_is_adapter_name(t->name)))
                    continue;
                fs_quote(q, sizeof q, file_name_of(opt, t->name), ST_NAME_MAX);
                fs_msg_item(&m, "%s '%s'", k++ ? "," : "", q);
            }
            fs_msg_end(&m);
            m.limit = sizeof m.s;
        }
        if (bad_unexpected) {
            fs_msg_add(&m, "%s%d tensor%s in the file not in the model:", bad_missing ? "; " : "", nunexpected,
                       nunexpected == 1 ? "" : "s");
            int k = 0;
            for (int i = 0; i < l->n; i++) {
                st_tensor *ft = &l->t[i];
                const frost_param_info *t;
                if (ft->used || file_skipped(opt, ft->name) ||
                    ((t = table_find(table, n, opt, ft->name)) && !t->persistent))
                    continue;
                fs_quote(q, sizeof q, ft->name, ST_NAME_MAX);
                fs_msg_item(&m, "%s '%s'", k++ ? "," : "", q);
            }
            fs_msg_end(&m);
        }
        return fs_fail(err, bad_missing ? FROST_ERR_MISSING : FROST_ERR_UNEXPECTED, "%s", m.s);
    }

    /* Dtypes, then shapes: every mismatch named. */
    for (int pass = 0; pass < 2; pass++) {
        int count = 0;
        for (int i = 0; i < n; i++) {
            const frost_param_info *t = &table[i];
            st_tensor *ft;
            if (!t->persistent || entry_skipped(opt, t->name) || !(ft = st_find(l, file_name_of(opt, t->name))))
                continue;
            int bad = pass == 0
                          ? ft->dtype < 0 || st_dtypes[ft->dtype].frost != t->dtype
                          : ft->rank != t->rank || memcmp(ft->shape, t->shape, sizeof *t->shape * (size_t)t->rank) != 0;
            if (!bad)
                continue;
            if (!count++) {
                fs_msg_init(&m);
                fs_msg_add(&m, "'%s': %s mismatch:", qpath, pass == 0 ? "dtype" : "shape");
            }
            fs_quote(q, sizeof q, t->name, ST_NAME_MAX);
            if (pass == 0) {
                fs_msg_item(&m, "%s '%s' is %s in the file, the model wants %s", count > 1 ? ";" : "", q,
                            ft->dtype_name, st_dtypes[st_dtype_of_frost(t->dtype)].name);
            } else {
                char a[160], b[160];
                fs_shape_str(a, sizeof a, ft->rank, ft->shape);
                fs_shape_str(b, sizeof b, t->rank, t->shape);
                fs_msg_item(&m, "%s '%s' is %s in the file, the model wants %s", count > 1 ? ";" : "", q, a, b);
            }
        }
        if (count)
            return fs_fail(err, pass == 0 ? FROST_ERR_DTYPE : FROST_ERR_SHAPE, "%s", fs_msg_end(&m));
    }

    /* Data. */
    for (int i = 0; i < n; i++) {
        const frost_param_info *t = &table[i];
        st_tensor *ft;
        if (!t->persistent || entry_skipped(opt, t->name) || !(ft = st_find(l, file_name_of(opt, t->name))))
            continue;
        size_t bytes = (size_t)(ft->end - ft->begin);
        if (!bytes)
            continue;
        char *dst = (char *)params + t->offset;
        if (fseeko(f, (off_t)(data_start + ft->begin), SEEK_SET) != 0 || read_exact(f, dst, bytes)) {
            fs_quote(q, sizeof q, t->name, ST_NAME_MAX);
            return fs_fail(err, FROST_ERR_IO, "'%s': read error in the data of '%s'%s", qpath, q,
                           feof(f) ? " (the file shrank while being read)" : "");
        }
        if (!host_little_endian())
            swap_bytes(dst, bytes, st_dtypes[ft->dtype].bytes);
    }

    /* Summary. */
    fs_msg_init(&m);
    fs_msg_add(&m, "loaded %d tensor%s from '%s'", nload, nload == 1 ? "" : "s", qpath);
    if (load_prefix(opt)) {
        fs_quote(q, sizeof q, load_prefix(opt), ST_NAME_MAX);
        fs_msg_add(&m, " (names without the prefix '%s')", q);
    }
    if (fpre) {
        fs_quote(q, sizeof q, fpre, ST_NAME_MAX);
        fs_msg_add(&m, " (the file's prefix '%s' removed)", q);
    }
    if (nskip_table)
        fs_msg_add(&m, "; %d skipped", nskip_table);
    if (nmissing) {
        fs_msg_add(&m, "; missing, left as they were:");
        int k = 0;
        for (int i = 0; i < n; i++) {
            const frost_param_info *t = &table[i];
            if (!t->persistent || entry_skipped(opt, t->name) || st_find(l, file_name_of(opt, t->name)) ||
                (base_ckpt && fs_is_adapter_name(t->name)))
                continue;
            fs_quote(q, sizeof q, t->name, ST_NAME_MAX);
            fs_msg_item(&m, "%s '%s'", k++ ? "," : "", q);
        }
        fs_msg_end(&m);
    }
    if (nabsent_adapters)
        fs_msg_add(&m, "; %d adapter tensor%s absent (a base checkpoint), left as they were", nabsent_adapters,
                   nabsent_adapters == 1 ? "" : "s");
    if (nunexpected)
        fs_msg_add(&m, "; %d unexpected ignored", nunexpected);
    return fs_ok(err, "%s", m.s);
}

int frost_ckpt_load(const char *path, void *params, const frost_param_info *table, int n, const frost_load_options *opt,
                    frost_error *err) {
    if (!path || !*path)
        return fs_fail(err, FROST_ERR_ARG, "frost_ckpt_load: no path");
    char qpath[256];
    fs_quote(qpath, sizeof qpath, path, 200);
    tab_ref *refs;
    int nrefs;
    int rc = check_table(qpath, params, table, n, &refs, &nrefs, err);
    if (rc)
        return rc;
    free(refs);
    if ((rc = check_prefix_collisions(qpath, table, n, opt, err)))
        return rc;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fs_fail(err, FROST_ERR_IO, "cannot open '%s': %s", qpath, strerror(errno));
    st_list l = {0};
    rc = ckpt_load(f, qpath, params, table, n, opt, &l, err);
    st_free(&l);
    fclose(f);
    return rc;
}
