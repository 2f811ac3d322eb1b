/* diag.c: user-facing diagnostics in the style of gcc/clang:
 *
 *   model.frost:3:12: error: unknown op 'lineer'
 *       3 | fc1 = lineer(x, 512)
 *         |       ^
 *
 * Columns count characters (UTF-8 code points) from 1; a tab counts as one and
 * is copied into the caret line so the caret lines up whatever the tab width.
 * A line that is not valid text (NUL, control bytes, bad UTF-8) is not echoed.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

void diag_init(diag_ctx *d, const char *file, const char *src, size_t len, FILE *out) {
    d->file = file;
    d->src = src;
    d->src_len = len;
    d->out = out ? out : stderr;
    d->errors = d->warnings = 0;
    d->error_limit = DIAG_ERROR_LIMIT;
    d->stopped = false;
}

size_t diag_utf8_len(const unsigned char *s, size_t n) {
    if (s[0] < 0x80)
        return 1;
    size_t len;
    unsigned min, cp;
    if ((s[0] & 0xe0) == 0xc0)
        len = 2, min = 0x80, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, min = 0x800, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    /* overlong forms, past U+10FFFF, UTF-16 surrogates */
    return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : len;
}

/* Printable text: no control bytes but tab, valid UTF-8. */
static bool line_is_text(const char *s, size_t n) {
    for (size_t k = 0; k < n;) {
        unsigned char c = (unsigned char)s[k];
        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
            return false;
        size_t len = diag_utf8_len((const unsigned char *)s + k, n - k);
        if (!len)
            return false;
        k += len;
    }
    return true;
}

static void print_source_line(const diag_ctx *d, src_loc at, FILE *out) {
    if (!d->src || at.line <= 0)
        return;
    const char *s = d->src, *end = d->src + d->src_len;
    for (int line = 1; line < at.line; line++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl)
            return;
        s = nl + 1;
    }
    const char *eol = memchr(s, '\n', (size_t)(end - s));
    if (!eol)
        eol = end;
    size_t n = (size_t)(eol - s);
    if (n > 0 && s[n - 1] == '\r')
        n--;
    bool blank = true;
    for (size_t k = 0; k < n; k++)
        blank &= s[k] == ' ' || s[k] == '\t';
    if (blank || !line_is_text(s, n))
        return;
    char num[24];
    int w = snprintf(num, sizeof num, "%d", at.line);
    if (w < 5)
        w = 5;
    fprintf(out, "%*d | %.*s\n", w, at.line, (int)n, s);
    fprintf(out, "%*s | ", w, "");
    /* one pad per character before the column, tabs kept as tabs */
    int col = 1;
    for (size_t k = 0; k < n && col < at.col; col++) {
        fputc(s[k] == '\t' ? '\t' : ' ', out);
        size_t len = diag_utf8_len((const unsigned char *)s + k, n - k);
        k += len ? len : 1;
    }
    for (; col < at.col; col++) /* a column just past the end of the line */
        fputc(' ', out);
    fputs("^\n", out);
}

static void emit(diag_ctx *d, const char *kind, src_loc at, const char *fmt, va_list ap) {
    if (!d->out)
        d->out = stderr;
    /* The diagnostic is put together in memory and written in one go: stderr
     * is unbuffered, and a caret under column 100,000 would otherwise cost
     * 100,000 writes. Without memory for that, it is written piecemeal. */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    FILE *out = mem ? mem : d->out;
    const char *file = d->file ? d->file : "frost";
    if (at.line > 0)
        fprintf(out, "%s:%d:%d: %s: ", file, at.line, at.col, kind);
    else
        fprintf(out, "%s: %s: ", file, kind);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    print_source_line(d, at, out);
    if (mem) {
        fclose(mem);
        if (text)
            fwrite(text, 1, len, d->out);
        free(text);
    }
}

static void emitf(diag_ctx *d, const char *kind, src_loc at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit(d, kind, at, fmt, ap);
    va_end(ap);
}

/* Past the error limit (as clang's -ferror-limit) one last error says so and
 * everything after it is dropped: the first errors tell what is wrong, the
 * rest of a flood (a line of garbage, a file of typos) would only cost time
 * and output. Callers see d->stopped and stop early. */
void diag_verror(diag_ctx *d, const char *kind, src_loc at, const char *fmt, va_list ap) {
    bool error = strcmp(kind, "error") == 0;
    d->errors += error;
    if (d->stopped)
        return;
    if (error && d->error_limit > 0 && d->errors > d->error_limit) {
        d->stopped = true;
        emitf(d, "error", at, "too many errors emitted, stopping now");
        return;
    }
    d->warnings += strcmp(kind, "warning") == 0;
    emit(d, kind, at, fmt, ap);
}

void diag_error(diag_ctx *d, src_loc at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, "error", at, fmt, ap);
    va_end(ap);
}

void diag_warning(diag_ctx *d, src_loc at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, "warning", at, fmt, ap);
    va_end(ap);
}

void diag_note(diag_ctx *d, src_loc at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, "note", at, fmt, ap);
    va_end(ap);
}

_Noreturn void ir_panic(const char *file, int line, const char *what) {
    fflush(stdout);
    fprintf(stderr, "%s:%d: internal error in frost: %s\n", file, line, what);
    abort();
}

/* Only the diagonals within max of the main one can hold distances up to
 * max, so a small max makes a candidate cost O(length), not O(length^2): an
 * undefined name is ranked against 100,000 others in no time. */
int diag_edit_distance(const char *a, const char *b, int max) {
    size_t la = strlen(a), lb = strlen(b), band = max > 0 ? (size_t)max : 0;
    int over = (int)band + 1; /* what any distance beyond max reads as */
    if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) > band)
        return over;
    int rows[2][66]; /* rows i-1 and i of the table, capped at over (also outside the band) */
    for (size_t j = 0; j <= lb + 1; j++)
        rows[0][j] = rows[1][j] = j <= band ? (int)j : over;
    int *prev = rows[0], *cur = rows[1];
    for (size_t i = 1; i <= la; i++) {
        size_t lo = i > band ? i - band : 1, hi = i + band < lb ? i + band : lb;
        cur[0] = i <= band ? (int)i : over;
        cur[lo - 1] = lo == 1 ? cur[0] : over;
        int best = cur[0];
        for (size_t j = lo; j <= hi; j++) {
            int d = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < d)
                d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            cur[j] = d < over ? d : over;
            best = cur[j] < best ? cur[j] : best;
        }
        cur[hi + 1] = over;
        if (best >= over)
            return over;
        int *t = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *diag_suggest(pool *p, const char *name, const char *const *cands, int n) {
    enum { NEAR = 2 };
    const char *best = NULL;
    int bestd = NEAR + 1;
    for (int k = 0; k < n; k++) {
        int dist = diag_edit_distance(name, cands[k], NEAR);
        size_t longer = strlen(name) > strlen(cands[k]) ? strlen(name) : strlen(cands[k]);
        if (dist < bestd && (size_t)dist < longer) {
            best = cands[k];
            bestd = dist;
        }
    }
    return best ? pool_printf(p, "; did you mean '%s'?", best) : "";
}
