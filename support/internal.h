/* internal.h: helpers shared by the support library's sources (not installed). */
#ifndef FROST_SUPPORT_INTERNAL_H
#define FROST_SUPPORT_INTERNAL_H

#include "frost_support.h"

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
#define FS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define FS_PRINTF(f, a)
#endif

/* Set err (if any) to code and the formatted message; return code. */
int fs_fail(frost_error *err, int code, const char *fmt, ...) FS_PRINTF(3, 4);
/* Set err (if any) to success with an optional message; return 0. */
int fs_ok(frost_error *err, const char *fmt, ...) FS_PRINTF(2, 3);

/* A message assembled from a head and a list of items: items that do not fit
 * are counted and reported as "(and N more)" at the end. */
typedef struct {
    char s[FROST_ERROR_MSG];
    size_t len;
    int more;
    size_t limit; /* items stop before this length (sizeof s after fs_msg_init): room for a second list */
} fs_msg;
void fs_msg_init(fs_msg *m);
void fs_msg_add(fs_msg *m, const char *fmt, ...) FS_PRINTF(2, 3);  /* always (truncated if needed) */
void fs_msg_item(fs_msg *m, const char *fmt, ...) FS_PRINTF(2, 3); /* whole, or counted as "more" */
const char *fs_msg_end(fs_msg *m);

/* A name quoted for a message: control characters as \xNN, other bytes as they are,
 * cut at `max` characters with "...". */
void fs_quote(char *buf, size_t size, const char *s, size_t max);

/* Shared by the checkpoint and LoRA functions (ckpt.c). */
int fs_dtype_bytes(int32_t dtype); /* bytes of a FROST_DTYPE_* element; 0 for an unknown code */
/* Product of dims times esize, or -1 on overflow or a negative dim. */
int64_t fs_tensor_bytes(int rank, const int64_t *dims, int esize);
void fs_shape_str(char *buf, size_t size, int rank, const int64_t *dims); /* "[2, 3]" */
int fs_is_adapter_name(const char *name);                                 /* matches frost_lora_patterns */

/* Open `path` (quoted as qpath in messages) for reading and fstat it into *st:
 * the descriptor, or a negative FROST_ERR_IO with err filled in when it cannot
 * be opened or stat'ed or is not a regular file. */
struct stat;
int fs_open_regular(const char *path, const char *qpath, struct stat *st, frost_error *err);

/* The generator of the documented batch and window orders (frost_support.h):
 * SplitMix64, and a uniform draw in [0, bound) by rejection (no modulo bias). */
#define FS_GOLDEN 0x9E3779B97F4A7C15ull

static inline uint64_t fs_splitmix64(uint64_t *state) {
    uint64_t z = (*state += FS_GOLDEN);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t fs_below(uint64_t *state, uint64_t bound) {
    uint64_t rem = (0 - bound) % bound; /* 2^64 mod bound */
    for (;;) {
        uint64_t x = fs_splitmix64(state);
        if (rem == 0 || x < 0 - rem)
            return x % bound;
    }
}

#endif
