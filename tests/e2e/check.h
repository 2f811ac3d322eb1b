/* check.h: the pass/fail counting shared by the C drivers that link
 * generated objects (gradcheck.c, poison.c, optim.c, tests/examples/smoke.c).
 * Each failed check prints "FAIL: ..." on stdout; drivers end with
 * "N passed, M failed" and exit 1 when M > 0. */
#ifndef FROST_TEST_CHECK_H
#define FROST_TEST_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int npassed, nfailed;

/* Counts one failure and prints it as "FAIL: ...". */
static void vfail(const char *fmt, va_list ap) {
    nfailed++;
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
}

static bool check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool check(bool ok, const char *fmt, ...) {
    if (ok) {
        npassed++;
        return true;
    }
    va_list ap;
    va_start(ap, fmt);
    vfail(fmt, ap);
    va_end(ap);
    return false;
}

/* A zeroed block of `bytes` (at least 1) and `spare` more, rounded up to and
 * aligned to `align`; running out of memory ends the driver as a failure. */
static inline unsigned char *check_block(int64_t bytes, size_t spare, size_t align) {
    size_t n = ((bytes > 0 ? (size_t)bytes : 1) + spare + align - 1) / align * align;
    unsigned char *p = aligned_alloc(align, n);
    if (!p) {
        printf("FAIL: out of memory\n%d passed, %d failed\n", npassed, nfailed + 1);
        exit(1);
    }
    memset(p, 0, n);
    return p;
}

#endif
