/* json.c: see json.h. RFC 8259 grammar; strings are byte strings (UTF-8 is
 * not validated, raw control characters are rejected). */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sj_init(sj_parser *p, const char *s, size_t n) {
    memset(p, 0, sizeof *p);
    p->s = s;
    p->n = n;
}

int sj_error(sj_parser *p, const char *what) {
    if (!p->failed) {
        p->failed = 1;
        p->err_at = p->i;
        snprintf(p->err, sizeof p->err, "%s", what);
    }
    return -1;
}

static void sj_ws(sj_parser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->i++;
    }
}

int sj_peek(sj_parser *p) {
    if (p->failed)
        return -1;
    sj_ws(p);
    return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

int sj_accept(sj_parser *p, char c) {
    if (sj_peek(p) == (unsigned char)c) {
        p->i++;
        return 1;
    }
    return 0;
}

int sj_expect(sj_parser *p, char c, const char *what) {
    if (p->failed)
        return -1;
    if (sj_accept(p, c))
        return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "expected %s", what);
    return sj_error(p, p->i >= p->n ? "unexpected end of header" : msg);
}

static int sj_hex4(sj_parser *p, unsigned *v) {
    *v = 0;
    if (p->n - p->i < 4)
        return sj_error(p, "unexpected end of header in a \\u escape");
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return sj_error(p, "bad \\u escape (expected 4 hex digits)");
        *v = *v << 4 | d;
        p->i++;
    }
    return 0;
}

/* Scan (and, when out != NULL, decode) a string; p->i is at the quote. */
static int sj_scan_string(sj_parser *p, char *out, size_t *len) {
    size_t n = 0;
    p->i++; /* opening quote */
    for (;;) {
        if (p->i >= p->n)
            return sj_error(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20)
            return sj_error(p, "control character in a string");
        if (c != '\\') {
            if (out)
                out[n] = (char)c;
            n++;
            p->i++;
            continue;
        }
        p->i++;
        if (p->i >= p->n)
            return sj_error(p, "unterminated string");
        char e = p->s[p->i++];
        char simple = e == '"'    ? '"'
                      : e == '\\' ? '\\'
                      : e == '/'  ? '/'
                      : e == 'b'  ? '\b'
                      : e == 'f'  ? '\f'
                      : e == 'n'  ? '\n'
                      : e == 'r'  ? '\r'
                      : e == 't'  ? '\t'
                                  : 0;
        if (simple) {
            if (out)
                out[n] = simple;
            n++;
            continue;
        }
        if (e != 'u') {
            p->i -= 2; /* at the backslash */
            return sj_error(p, "bad escape in a string");
        }
        unsigned cp;
        if (sj_hex4(p, &cp))
            return -1;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return sj_error(p, "lone low surrogate in a \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                return sj_error(p, "high surrogate not followed by a low one");
            p->i += 2;
            if (sj_hex4(p, &lo))
                return -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return sj_error(p, "high surrogate not followed by a low one");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        unsigned char u[4];
        size_t k;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp;
            k = 1;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xC0 | cp >> 6);
            u[1] = (unsigned char)(0x80 | (cp & 0x3F));
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xE0 | cp >> 12);
            u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp & 0x3F));
            k = 3;
        } else {
            u[0] = (unsigned char)(0xF0 | cp >> 18);
            u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            u[3] = (unsigned char)(0x80 | (cp & 0x3F));
            k = 4;
        }
        if (out)
            memcpy(out + n, u, k);
        n += k;
    }
    if (out)
        out[n] = 0;
    if (len)
        *len = n;
    return 0;
}

int sj_string(sj_parser *p, char **out, size_t *len) {
    *out = NULL;
    if (sj_peek(p) != '"')
        return sj_error(p, p->i >= p->n ? "unexpected end of header" : "expected a string");
    size_t start = p->i, n;
    if (sj_scan_string(p, NULL, &n))
        return -1;
    /* Decoding never makes a string longer than its source. */
    char *buf = malloc(p->i - start + 1);
    if (!buf)
        return sj_error(p, "out of memory");
    p->i = start;
    if (sj_scan_string(p, buf, &n)) {
        free(buf);
        return -1;
    }
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

static int sj_isdigit(int c) { return c >= '0' && c <= '9'; }

int sj_uint(sj_parser *p, int64_t *v) {
    *v = 0;
    int c = sj_peek(p);
    if (!sj_isdigit(c))
        return sj_error(p, c < 0 ? "unexpected end of header" : "expected a non-negative integer");
    if (c == '0' && p->i + 1 < p->n && sj_isdigit((unsigned char)p->s[p->i + 1]))
        return sj_error(p, "leading zero in a number");
    int64_t x = 0;
    while (p->i < p->n && sj_isdigit((unsigned char)p->s[p->i])) {
        int d = p->s[p->i] - '0';
        if (x > (INT64_MAX - d) / 10)
            return sj_error(p, "integer too large");
        x = x * 10 + d;
        p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
        return sj_error(p, "expected a non-negative integer");
    *v = x;
    return 0;
}

static int sj_number(sj_parser *p) {
    size_t i = p->i;
    if (i < p->n && p->s[i] == '-')
        i++;
    if (i >= p->n || !sj_isdigit((unsigned char)p->s[i]))
        return sj_error(p, "bad number");
    if (p->s[i] == '0')
        i++;
    else
        while (i < p->n && sj_isdigit((unsigned char)p->s[i]))
            i++;
    if (i < p->n && p->s[i] == '.') {
        i++;
        if (i >= p->n || !sj_isdigit((unsigned char)p->s[i]))
            return sj_error(p, "bad number");
        while (i < p->n && sj_isdigit((unsigned char)p->s[i]))
            i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (i >= p->n || !sj_isdigit((unsigned char)p->s[i]))
            return sj_error(p, "bad number");
        while (i < p->n && sj_isdigit((unsigned char)p->s[i]))
            i++;
    }
    p->i = i;
    return 0;
}

static int sj_literal(sj_parser *p, const char *word) {
    size_t k = strlen(word);
    if (p->n - p->i < k || memcmp(p->s + p->i, word, k))
        return sj_error(p, "expected a value");
    p->i += k;
    return 0;
}

/* An object key and its colon. */
static int sj_key(sj_parser *p) {
    if (sj_peek(p) != '"')
        return sj_error(p, p->i >= p->n ? "unexpected end of header" : "expected a string key");
    if (sj_scan_string(p, NULL, NULL))
        return -1;
    return sj_expect(p, ':', "':' after a key");
}

int sj_skip(sj_parser *p) {
    char stack[SJ_MAX_DEPTH];
    int depth = 0;
    for (;;) {
        /* A value. */
        int c = sj_peek(p);
        if (c < 0)
            return sj_error(p, "unexpected end of header");
        if (c == '{' || c == '[') {
            if (depth == SJ_MAX_DEPTH)
                return sj_error(p, "values nested too deeply");
            p->i++;
            stack[depth++] = (char)c;
            if (sj_accept(p, c == '{' ? '}' : ']')) {
                depth--;
            } else {
                if (c == '{' && sj_key(p))
                    return -1;
                continue;
            }
        } else if (c == '"') {
            if (sj_scan_string(p, NULL, NULL))
                return -1;
        } else if (c == '-' || sj_isdigit(c)) {
            if (sj_number(p))
                return -1;
        } else if (sj_literal(p, c == 't' ? "true" : c == 'f' ? "false" : "null")) {
            return -1;
        }
        /* After a value: close containers or go on with the next element. */
        for (;;) {
            if (!depth)
                return 0;
            char open = stack[depth - 1];
            if (sj_accept(p, ',')) {
                if (open == '{' && sj_key(p))
                    return -1;
                break;
            }
            if (sj_accept(p, open == '{' ? '}' : ']')) {
                depth--;
                continue;
            }
            return sj_error(p, sj_peek(p) < 0 ? "unexpected end of header"
                               : open == '{'  ? "expected ',' or '}'"
                                              : "expected ',' or ']'");
        }
    }
}

int sj_end(sj_parser *p) {
    if (sj_peek(p) >= 0)
        return sj_error(p, "unexpected data after the JSON object");
    return p->failed ? -1 : 0;
}
