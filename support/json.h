/* json.h: a small bounded JSON pull parser (internal to the support library).
 *
 * No recursion: sj_skip walks nested values with a fixed-size stack
 * (SJ_MAX_DEPTH), so hostile input cannot exhaust the C stack. Errors record
 * the byte position and what was expected; after one, every call fails. */
#ifndef FROST_SUPPORT_JSON_H
#define FROST_SUPPORT_JSON_H

#include <stddef.h>
#include <stdint.h>

#define SJ_MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t n, i;
    int failed;
    size_t err_at;
    char err[128];
} sj_parser;

void sj_init(sj_parser *p, const char *s, size_t n);
/* Record an error at the current position; returns -1. */
int sj_error(sj_parser *p, const char *what);
/* Next non-whitespace character without consuming it; -1 at the end. */
int sj_peek(sj_parser *p);
/* Consume character c (after whitespace) or fail with "expected <what>". */
int sj_expect(sj_parser *p, char c, const char *what);
/* Consume c if it is next (after whitespace); 1 if it was. */
int sj_accept(sj_parser *p, char c);
/* A string, decoded (escapes, \u with surrogate pairs to UTF-8), in a
 * malloc'ed NUL-terminated buffer; *len excludes the NUL (the string may
 * contain \u0000, so compare *len with strlen to detect it). */
int sj_string(sj_parser *p, char **out, size_t *len);
/* A non-negative integer (no sign, fraction or exponent) <= INT64_MAX. */
int sj_uint(sj_parser *p, int64_t *v);
/* Any value, validated and discarded. */
int sj_skip(sj_parser *p);
/* Only whitespace remains. */
int sj_end(sj_parser *p);

#endif
