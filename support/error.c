/* error.c: frost_error and message helpers. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC */
#endif
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *frost_strerror(int code) {
    switch (code) {
    case 0: return "ok";
    case FROST_ERR_ARG: return "invalid argument";
    case FROST_ERR_IO: return "I/O error";
    case FROST_ERR_NOMEM: return "out of memory";
    case FROST_ERR_TRUNCATED: return "truncated file";
    case FROST_ERR_FORMAT: return "malformed file";
    case FROST_ERR_OFFSETS: return "bad data offsets";
    case FROST_ERR_DTYPE: return "dtype mismatch";
    case FROST_ERR_SHAPE: return "shape mismatch";
    case FROST_ERR_MISSING: return "missing tensors";
    case FROST_ERR_UNEXPECTED: return "unexpected tensors";
    }
    return "unknown error";
}

static void fs_set(frost_error *err, int code, const char *fmt, va_list ap) {
    if (!err)
        return;
    err->code = code;
    err->msg[0] = 0;
    if (fmt)
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int fs_fail(frost_error *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fs_set(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int fs_ok(frost_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fs_set(err, 0, fmt, ap);
    va_end(ap);
    return 0;
}

void fs_msg_init(fs_msg *m) {
    m->s[0] = 0;
    m->len = 0;
    m->more = 0;
    m->limit = sizeof m->s;
}

void fs_msg_add(fs_msg *m, const char *fmt, ...) {
    if (m->len + 1 >= sizeof m->s)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(m->s + m->len, sizeof m->s - m->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        m->len = m->len + (size_t)k < sizeof m->s ? m->len + (size_t)k : sizeof m->s - 1;
}

/* Room kept free for "(and N more)" and a short tail after the list. */
#define FS_MSG_RESERVE 64

void fs_msg_item(fs_msg *m, const char *fmt, ...) {
    char item[FROST_ERROR_MSG];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    size_t limit = m->limit < sizeof m->s ? m->limit : sizeof m->s;
    if (m->more || m->len + (size_t)k + FS_MSG_RESERVE >= limit) {
        m->more++;
        return;
    }
    memcpy(m->s + m->len, item, (size_t)k + 1);
    m->len += (size_t)k;
}

const char *fs_msg_end(fs_msg *m) {
    if (m->more) {
        fs_msg_add(m, " (and %d more)", m->more);
        m->more = 0;
    }
    return m->s;
}

void fs_quote(char *buf, size_t size, const char *s, size_t max) {
    size_t n = 0, i = 0;
    if (size < 8) {
        if (size)
            buf[0] = 0;
        return;
    }
    for (; s && s[i] && n + 8 < size; i++) {
        if (i == max) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f) {
            buf[n++] = (char)c;
        } else {
            snprintf(buf + n, size - n, "\\x%02x", c);
            n += 4;
        }
    }
    buf[n] = 0;
}

int fs_open_regular(const char *path, const char *qpath, struct stat *st, frost_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fs_fail(err, FROST_ERR_IO, "cannot open '%s': %s", qpath, strerror(errno));
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return fs_fail(err, FROST_ERR_IO, "'%s': cannot stat: %s", qpath, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return fs_fail(err, FROST_ERR_IO, "'%s': not a regular file", qpath);
    }
    return fd;
}
