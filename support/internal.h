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

#endif
