/* lora.c: LoRA adapters of a frost model: adapter files as PEFT names them,
 * and the merge of adapters into the base weights of another object.
 *
 * The adapter tensors are table entries named <layer>.lora_A.weight [r, in] and
 * <layer>.lora_B.weight [out, r]; the generated header's P_adapters[] says for
 * each layer where its weight and adapters are in P_params[] and how the update
 * is laid out. Everything here goes through those two tables, so it works for
 * any model. */
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LORA_NAME_MAX 120 /* characters of a name shown in a message */

int frost_lora_save(const char *path, const void *params, const frost_param_info *table, int n, frost_error *err) {
    int adapters = 0;
    for (int i = 0; table && i < n; i++)
        adapters += table[i].persistent && table[i].name && fs_is_adapter_name(table[i].name);
    if (!adapters && table && n >= 0 && path && *path) { /* else frost_ckpt_save_ex reports the bad argument */
        char qpath[256];
        fs_quote(qpath, sizeof qpath, path, 200);
        return fs_fail(err, FROST_ERR_ARG,
                       "'%s': the table has no adapter tensors (*.lora_A.weight, *.lora_B.weight): not a LoRA object",
                       qpath);
    }
    frost_save_options opt = {.only = frost_lora_patterns, .prefix = FROST_PEFT_PREFIX};
    return frost_ckpt_save_ex(path, params, table, n, &opt, err);
}

int frost_lora_load(const char *path, void *params, const frost_param_info *table, int n, frost_error *err) {
    frost_load_options opt = {.only = frost_lora_patterns, .file_prefix = FROST_PEFT_PREFIX};
    return frost_ckpt_load(path, params, table, n, &opt, err);
}

/* ---------------------------------------------------------------- merge */

/* Bytes of an entry that check_entries accepted. */
static size_t entry_bytes(const frost_param_info *t) {
    return (size_t)fs_tensor_bytes(t->rank, t->shape, fs_dtype_bytes(t->dtype));
}

static void dims_str(char *buf, size_t size, const frost_param_info *t) { fs_shape_str(buf, size, t->rank, t->shape); }

/* Check the entries of a table that the merge reads or writes; *extent gets the
 * end of the last (bytes of params it spans). */
static int check_entries(const char *what, const frost_param_info *table, int n, int64_t *extent, frost_error *err) {
    *extent = 0;
    for (int i = 0; i < n; i++) {
        const frost_param_info *t = &table[i];
        int64_t bytes = -1;
        if (t->name && *t->name && t->rank >= 0 && t->rank <= FROST_MAX_RANK && t->offset >= 0 &&
            fs_dtype_bytes(t->dtype))
            bytes = fs_tensor_bytes(t->rank, t->shape, fs_dtype_bytes(t->dtype));
        if (bytes < 0 || t->offset > INT64_MAX - bytes)
            return fs_fail(err, FROST_ERR_ARG, "frost_lora_merge: %s table entry %d is malformed", what, i);
        int64_t end = t->offset + bytes;
        if (end > *extent)
            *extent = end;
    }
    return 0;
}

static int find_entry(const frost_param_info *table, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (table[i].persistent && !strcmp(table[i].name, name))
            return i;
    return -1;
}

static int same_shape(const frost_param_info *a, const frost_param_info *b) {
    return a->rank == b->rank && !memcmp(a->shape, b->shape, sizeof *a->shape * (size_t)a->rank);
}

/* The shape adapter ad expects of its tensor `which` (0 weight, 1 A, 2 B). */
static void adapter_shape(const frost_adapter_info *ad, const frost_param_info *w, int which, frost_param_info *want) {
    int64_t in = ad->in_out ? w->shape[0] : w->shape[1], out = ad->in_out ? w->shape[1] : w->shape[0];
    memset(want, 0, sizeof *want);
    want->rank = 2;
    want->dtype = FROST_DTYPE_F32;
    if (which == 1)
        want->shape[0] = ad->r, want->shape[1] = in;
    else if (which == 2)
        want->shape[0] = out, want->shape[1] = ad->r;
    else
        *want = *w;
}

static int check_adapter(const frost_adapter_info *ad, int k, const frost_param_info *src_table, int src_n,
                         frost_error *err) {
    char ql[LORA_NAME_MAX + 8], qt[LORA_NAME_MAX + 8], have[160], want_s[160], wshape[160];
    fs_quote(ql, sizeof ql, ad->layer ? ad->layer : "", LORA_NAME_MAX);
    int idx[3] = {ad->weight, ad->lora_A, ad->lora_B};
    for (int j = 0; j < 3; j++)
        if (idx[j] < 0 || idx[j] >= src_n || !src_table[idx[j]].persistent)
            return fs_fail(err, FROST_ERR_ARG, "frost_lora_merge: adapter %d ('%s') names table entry %d, %s", k, ql,
                           idx[j], idx[j] < 0 || idx[j] >= src_n ? "outside the table" : "which is not persistent");
    if (ad->r <= 0)
        return fs_fail(err, FROST_ERR_ARG, "frost_lora_merge: adapter %d ('%s') has rank r = %d", k, ql, (int)ad->r);
    const frost_param_info *w = &src_table[ad->weight];
    for (int j = 0; j < 3; j++) {
        const frost_param_info *t = &src_table[idx[j]];
        frost_param_info want;
        adapter_shape(ad, w, j, &want);
        int ok = t->dtype == FROST_DTYPE_F32 && t->rank == 2 && (j == 0 || same_shape(t, &want));
        if (ok)
            continue;
        fs_quote(qt, sizeof qt, t->name, LORA_NAME_MAX);
        dims_str(have, sizeof have, t);
        if (j == 0)
            return fs_fail(err, FROST_ERR_SHAPE,
                           "frost_lora_merge: the weight '%s' of adapter '%s' is %s%s, not a matrix", qt, ql,
                           t->dtype == FROST_DTYPE_F32 ? "" : "not f32 ", have);
        dims_str(want_s, sizeof want_s, &want);
        dims_str(wshape, sizeof wshape, w);
        return fs_fail(err, FROST_ERR_SHAPE,
                       "frost_lora_merge: '%s' is %s%s; adapter '%s' (r = %d, weight %s%s) wants %s", qt,
                       t->dtype == FROST_DTYPE_F32 ? "" : "not f32, ", have, ql, (int)ad->r, wshape,
                       ad->in_out ? " stored [in, out]" : "", want_s);
    }
    return 0;
}

/* dst W [out, in] (or [in, out]) += scale B A, the sums in double. */
static void add_update(float *w, const float *a, const float *b, const frost_adapter_info *ad, int64_t out,
                       int64_t in) {
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            double sum = 0;
            for (int64_t k = 0; k < ad->r; k++)
                sum += (double)b[o * ad->r + k] * (double)a[k * in + i];
            float *at = ad->in_out ? &w[i * out + o] : &w[o * in + i];
            *at = (float)((double)*at + ad->scale * sum);
        }
}

int frost_lora_merge(void *dst, const frost_param_info *dst_table, int dst_n, const void *src,
                     const frost_param_info *src_table, int src_n, const frost_adapter_info *adapters, int nadapters,
                     frost_error *err) {
    if (dst_n < 0 || src_n < 0 || nadapters < 0 || (dst_n && (!dst || !dst_table)) || (src_n && (!src || !src_table)) ||
        (nadapters && !adapters))
        return fs_fail(err, FROST_ERR_ARG, "frost_lora_merge: a NULL block or table, or a negative count");
    int64_t dst_extent, src_extent;
    int rc = check_entries("the destination", dst_table, dst_n, &dst_extent, err);
    if (rc || (rc = check_entries("the source", src_table, src_n, &src_extent, err)))
        return rc;
    const char *d0 = dst, *s0 = src;
    if (dst_extent && src_extent && d0 < s0 + src_extent && s0 < d0 + dst_extent)
        return fs_fail(err, FROST_ERR_ARG, "frost_lora_merge: the destination and source blocks overlap");
    for (int k = 0; k < nadapters; k++)
        if ((rc = check_adapter(&adapters[k], k, src_table, src_n, err)))
            return rc;

    /* Names: every dst entry in src, every src entry but the adapters in dst. */
    char q[LORA_NAME_MAX + 8], have[160], want[160];
    fs_msg m;
    int missing = 0;
    for (int i = 0; i < dst_n; i++) {
        if (!dst_table[i].persistent || find_entry(src_table, src_n, dst_table[i].name) >= 0)
            continue;
        if (!missing++) {
            fs_msg_init(&m);
            fs_msg_add(&m, "frost_lora_merge: tensors of the destination missing from the source:");
        }
        fs_quote(q, sizeof q, dst_table[i].name, LORA_NAME_MAX);
        fs_msg_item(&m, "%s '%s'", missing > 1 ? "," : "", q);
    }
    if (missing)
        return fs_fail(err, FROST_ERR_MISSING, "%s", fs_msg_end(&m));
    int unexpected = 0;
    for (int i = 0; i < src_n; i++) {
        if (!src_table[i].persistent || find_entry(dst_table, dst_n, src_table[i].name) >= 0)
            continue;
        int is_adapter = 0;
        for (int k = 0; k < nadapters && !is_adapter; k++)
            is_adapter = adapters[k].lora_A == i || adapters[k].lora_B == i;
        if (is_adapter)
            continue;
        if (!unexpected++) {
            fs_msg_init(&m);
            fs_msg_add(&m, "frost_lora_merge: tensors of the source not in the destination:");
        }
        fs_quote(q, sizeof q, src_table[i].name, LORA_NAME_MAX);
        fs_msg_item(&m, "%s '%s'", unexpected > 1 ? "," : "", q);
    }
    if (unexpected)
        return fs_fail(err, FROST_ERR_UNEXPECTED, "%s", fs_msg_end(&m));
    for (int i = 0; i < dst_n; i++) {
        const frost_param_info *d = &dst_table[i];
        if (!d->persistent)
            continue;
        const frost_param_info *s = &src_table[find_entry(src_table, src_n, d->name)];
        if (s->dtype == d->dtype && same_shape(s, d))
            continue;
        fs_quote(q, sizeof q, d->name, LORA_NAME_MAX);
        dims_str(have, sizeof have, s);
        dims_str(want, sizeof want, d);
        return fs_fail(err, s->dtype == d->dtype ? FROST_ERR_SHAPE : FROST_ERR_DTYPE,
                       "frost_lora_merge: '%s' is %s (dtype %d) in the source, %s (dtype %d) in the destination", q,
                       have, (int)s->dtype, want, (int)d->dtype);
    }
    for (int k = 0; k < nadapters; k++) /* an adapter's A or B that dst also has would be copied, then stale */
        for (int j = 0; j < 2; j++) {
            const frost_param_info *t = &src_table[j ? adapters[k].lora_B : adapters[k].lora_A];
            if (find_entry(dst_table, dst_n, t->name) >= 0) {
                fs_quote(q, sizeof q, t->name, LORA_NAME_MAX);
                return fs_fail(err, FROST_ERR_UNEXPECTED,
                               "frost_lora_merge: the destination has the adapter tensor '%s': it is a LoRA object too",
                               q);
            }
        }

    /* Copy, then add each update to its weight. */
    for (int i = 0; i < dst_n; i++) {
        const frost_param_info *d = &dst_table[i];
        if (!d->persistent)
            continue;
        const frost_param_info *s = &src_table[find_entry(src_table, src_n, d->name)];
        memcpy((char *)dst + d->offset, (const char *)src + s->offset, entry_bytes(d));
    }
    for (int k = 0; k < nadapters; k++) {
        const frost_adapter_info *ad = &adapters[k];
        const frost_param_info *w = &src_table[ad->weight];
        const frost_param_info *dw = &dst_table[find_entry(dst_table, dst_n, w->name)];
        int64_t out = ad->in_out ? w->shape[1] : w->shape[0], in = ad->in_out ? w->shape[0] : w->shape[1];
        add_update((float *)((char *)dst + dw->offset),
                   (const float *)((const char *)src + src_table[ad->lora_A].offset),
                   (const float *)((const char *)src + src_table[ad->lora_B].offset), ad, out, in);
    }
    int copied = 0;
    for (int i = 0; i < dst_n; i++)
        copied += dst_table[i].persistent != 0;
    return fs_ok(err, "merged %d adapter%s into a copy of %d tensors", nadapters, nadapters == 1 ? "" : "s", copied);
}
