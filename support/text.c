/* text.c: plain text files as one byte buffer, and random windows of it as
 * the ids and next-byte labels of a byte-level language model. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC */
#endif
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEXT_CHUNK ((int64_t)1 << 16) /* growth step when a file is longer than fstat said */

/* Append the whole of `path` to buf[*size..), growing *cap as needed. */
static int text_append(const char *path, uint8_t **buf, int64_t *size, int64_t *cap, frost_error *err) {
    char qpath[256];
    fs_quote(qpath, sizeof qpath, path, 200);
    struct stat st;
    int fd = fs_open_regular(path, qpath, &st, err);
    if (fd < 0)
        return fd;
    /* The size fstat gives is a hint only (the file may change while it is
     * read): read until end of file, growing the buffer when it is full. */
    int64_t want = *size + (int64_t)st.st_size + 1;
    for (;;) {
        if (*cap < want) {
            int64_t ncap = *cap ? *cap : TEXT_CHUNK;
            while (ncap < want)
                ncap *= 2;
            uint8_t *nb = realloc(*buf, (size_t)ncap);
            if (!nb) {
                close(fd);
                return fs_fail(err, FROST_ERR_NOMEM, "'%s': out of memory", qpath);
            }
            *buf = nb;
            *cap = ncap;
        }
        size_t room = (size_t)(*cap - *size - 1); /* one byte stays free for the final 0 */
        ssize_t got = room ? read(fd, *buf + *size, room > (1u << 30) ? 1u << 30 : room) : 0;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return fs_fail(err, FROST_ERR_IO, "'%s': read error: %s", qpath, strerror(e));
        }
        if (got == 0 && room)
            break;
        *size += got;
        want = *size + TEXT_CHUNK;
    }
    close(fd);
    return 0;
}

int frost_text_load(const char *const *paths, int n, frost_text *out, frost_error *err) {
    if (!out)
        return fs_fail(err, FROST_ERR_ARG, "frost_text_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!paths || n < 1)
        return fs_fail(err, FROST_ERR_ARG, "frost_text_load: no files (n = %d)", n);
    for (int k = 0; k < n; k++)
        if (!paths[k])
            return fs_fail(err, FROST_ERR_ARG, "frost_text_load: path %d is NULL", k);
    uint8_t *buf = NULL;
    int64_t size = 0, cap = 0;
    for (int k = 0; k < n; k++) {
        int rc = text_append(paths[k], &buf, &size, &cap, err);
        if (rc) {
            free(buf);
            return rc;
        }
    }
    if (!buf && !(buf = malloc(1)))
        return fs_fail(err, FROST_ERR_NOMEM, "frost_text_load: out of memory");
    buf[size] = 0;
    out->data = buf;
    out->size = size;
    char q[256];
    fs_quote(q, sizeof q, paths[0], 200);
    if (n == 1)
        return fs_ok(err, "'%s': %lld bytes", q, (long long)size);
    return fs_ok(err, "%d files ('%s', ...): %lld bytes", n, q, (long long)size);
}

void frost_text_free(frost_text *t) {
    if (!t)
        return;
    free(t->data);
    t->data = NULL;
    t->size = 0;
}

/* SplitMix64 and rejection sampling, as the batcher's shuffle (idx.c) and
 * documented in frost_support.h. */
int frost_text_windows(const uint8_t *text, int64_t size, int64_t batch, int64_t len, uint64_t seed, int64_t step,
                       int32_t *ids, int32_t *labels, frost_error *err) {
    if (!text || !ids || !labels)
        return fs_fail(err, FROST_ERR_ARG, "frost_text_windows: text, ids or labels is NULL");
    if (batch < 1 || len < 1)
        return fs_fail(err, FROST_ERR_ARG, "frost_text_windows: batch %lld and length %lld must be at least 1",
                       (long long)batch, (long long)len);
    if (size <= len)
        return fs_fail(err, FROST_ERR_ARG,
                       "frost_text_windows: a text of %lld bytes is too short for windows of %lld + 1 bytes",
                       (long long)size, (long long)len);
    uint64_t state = seed ^ ((uint64_t)step * FS_GOLDEN);
    for (int64_t b = 0; b < batch; b++) {
        int64_t start = (int64_t)fs_below(&state, (uint64_t)(size - len));
        const uint8_t *w = text + start;
        for (int64_t t = 0; t < len; t++) {
            ids[b * len + t] = w[t];
            labels[b * len + t] = w[t + 1];
        }
    }
    return fs_ok(err, "%s", "");
}
