/* lex.c: model file -> tokens.
 *
 * Newlines end statements; parse.c lets a call or a list continue on the
 * next line after '(', '[' or ','. '#' starts a comment to the end of the line.
 * Punctuation is one character, except the comparisons == != <= >=. A name may have
 * dotted segments (layer1.0.conv1), so that nested names read like PyTorch's.
 * Every token records its line and column (columns count characters from 1)
 * and its byte span, which parse.c uses to glue glob patterns like fc2.* back
 * together from adjacent tokens.
 */
#include "ast.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *keywords[] = {"model",  "const",  "input", "output", "config", "default", "train",
                                 "freeze", "grad",   "none",  "true",   "false",  "def",     "if",
                                 "else",   "return", "and",   "or",     "not"};

bool lex_is_keyword(const char *s, int len) {
    for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
        if ((int)strlen(keywords[k]) == len && memcmp(keywords[k], s, (size_t)len) == 0)
            return true;
    return false;
}

bool lex_equal(const token *t, const char *s) {
    return (int)strlen(s) == t->len && memcmp(t->text, s, (size_t)t->len) == 0;
}

/* A model file is UTF-8 text without NUL or other control bytes (tab, CR,
 * LF and FF aside). Binary input gets one clear error at its first bad byte
 * instead of a flood of "unexpected character". */
static bool check_text(diag_ctx *d) {
    const unsigned char *s = (const unsigned char *)d->src;
    src_loc at = {1, 1};
    for (size_t k = 0; k < d->src_len;) {
        unsigned char c = s[k];
        size_t len = diag_utf8_len(s + k, d->src_len - k);
        if (!len || (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f) {
            diag_error(d, at, "file is not text (byte 0x%02x); expected a UTF-8 model file", c);
            return false;
        }
        if (c == '\n')
            at.line++, at.col = 1;
        else
            at.col++;
        k += len;
    }
    return true;
}

static bool is_ident_start(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_ident_char(int c) { return is_ident_start(c) || is_digit(c); }

/* A statement's end sits just after its last token, where "expected ..."
 * should point (not after a trailing comment). Tokens are ASCII, so the
 * column advances by the byte length. */
static void push_newline(pool *p, token **toks, int *n, int *cap) {
    token last = (*toks)[*n - 1];
    token *t = VEC_PUSH(p, *toks, *n, *cap);
    *t = (token){
        TK_NEWLINE, last.text + last.len, 0, last.pos + (size_t)last.len, {last.loc.line, last.loc.col + last.len}, 0,
        0};
}

token *lex_tokens(pool *p, diag_ctx *d, int *ntok) {
    IR_ASSERT(d->src);
    int errors = d->errors;
    if (!check_text(d))
        return NULL;
    token *toks = NULL;
    int n = 0, cap = 0;
    const char *src = d->src, *end = d->src + d->src_len;
    const char *s = src;
    /* Columns count characters, not bytes; they are counted on from the last
     * token of the line (col_from, at column col), so that a long line costs
     * its length once and not once per token. */
    const char *col_from = src;
    int line = 1, col = 1;
    while (s < end && !d->stopped) {
        if (*s == '\n') {
            if (n > 0 && toks[n - 1].kind != TK_NEWLINE)
                push_newline(p, &toks, &n, &cap);
            s++;
            line++;
            col_from = s;
            col = 1;
            continue;
        }
        if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\f') {
            s++;
            continue;
        }
        if (*s == '#') {
            while (s < end && *s != '\n')
                s++;
            continue;
        }
        for (; col_from < s; col_from++)
            col += ((unsigned char)*col_from & 0xc0) != 0x80;
        src_loc loc = {line, col};
        token *t = VEC_PUSH(p, toks, n, cap);
        *t = (token){.text = s, .pos = (size_t)(s - src), .loc = loc};
        const char *start = s;
        if (is_ident_start((unsigned char)*s)) {
            t->kind = TK_IDENT;
            while (s < end && is_ident_char((unsigned char)*s))
                s++;
            while (s + 1 < end && *s == '.' && is_ident_char((unsigned char)s[1])) {
                s++;
                while (s < end && is_ident_char((unsigned char)*s))
                    s++;
            }
            if (s - start > MAX_NAME)
                diag_error(d, loc, "name is %td characters long; a name has at most %d", s - start, MAX_NAME);
        } else if (is_digit((unsigned char)*s)) {
            while (s < end && is_digit((unsigned char)*s))
                s++;
            bool real = false;
            if (s + 1 < end && *s == '.' && is_digit((unsigned char)s[1])) {
                real = true;
                for (s++; s < end && is_digit((unsigned char)*s); s++)
                    ;
            }
            if (s < end && (*s == 'e' || *s == 'E')) {
                const char *q = s + 1;
                if (q < end && (*q == '+' || *q == '-'))
                    q++;
                if (q < end && is_digit((unsigned char)*q)) {
                    real = true;
                    for (s = q; s < end && is_digit((unsigned char)*s); s++)
                        ;
                }
            }
            char *text = pool_strndup(p, start, (size_t)(s - start));
            if (s < end && is_ident_start((unsigned char)*s)) {
                const char *q = s;
                while (q < end && is_ident_char((unsigned char)*q))
                    q++;
                diag_error(d, loc, "invalid number '%.*s'", (int)(q - start), start);
                s = q;
            } else if (real) {
                t->kind = TK_REAL;
                t->rval = strtod(text, NULL);
            } else {
                t->kind = TK_INT;
                errno = 0;
                long long v = strtoll(text, NULL, 10);
                if (errno == ERANGE)
                    diag_error(d, loc, "integer %s is too large (the limit is %lld)", text, (long long)INT64_MAX);
                t->ival = v;
            }
        } else if (strchr("()[]{},=:;+-*/%.?!^<>", *s)) {
            t->kind = TK_PUNCT;
            /* comparisons: == != <= >= are one token */
            s += s + 1 < end && s[1] == '=' && strchr("=!<>", *s) ? 2 : 1;
        } else {
            size_t len = diag_utf8_len((const unsigned char *)s, (size_t)(end - s));
            if ((unsigned char)*s < 0x80)
                diag_error(d, loc, "unexpected character '%c'", *s);
            else
                diag_error(d, loc, "unexpected character '%.*s'", (int)len, s);
            n--;
            s += len ? len : 1;
            continue;
        }
        t->len = (int)(s - start);
    }
    if (n > 0 && toks[n - 1].kind != TK_NEWLINE)
        push_newline(p, &toks, &n, &cap);
    /* EOF sits after the last character, where "expected ..." should point */
    for (; col_from < end; col_from++)
        col += ((unsigned char)*col_from & 0xc0) != 0x80;
    token *t = VEC_PUSH(p, toks, n, cap);
    *t = (token){TK_EOF, end, 0, (size_t)(end - src), {line, col}, 0, 0};
    *ntok = n;
    return d->errors > errors ? NULL : toks;
}
