/* test_lex.c: the lexer, plus what it stands on: diagnostics (diag.c) and
 * the pool (pool.c). */
#include "frontend/ast.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pool *p;
    diag_ctx d;
    char *buf;
    size_t len;
    FILE *out;
} fixture;

static void fx_open(fixture *f, const char *src, size_t len) {
    f->p = pool_new();
    f->buf = NULL;
    f->len = 0;
    f->out = open_memstream(&f->buf, &f->len);
    diag_init(&f->d, "t.frost", src, len, f->out);
}

static const char *fx_text(fixture *f) {
    fflush(f->out);
    return f->buf ? f->buf : "";
}

static void fx_close(fixture *f) {
    fclose(f->out);
    free(f->buf);
    pool_free(f->p);
}

static token *lex(fixture *f, const char *src, int *n) {
    fx_open(f, src, strlen(src));
    return lex_tokens(f->p, &f->d, n);
}

#define ck_tok(t, k, txt, l, c)                               \
    do {                                                      \
        ck_assert_int_eq((t).kind, (k));                      \
        ck_assert_int_eq((t).len, (int)strlen(txt));          \
        ck_assert(memcmp((t).text, (txt), strlen(txt)) == 0); \
        ck_assert_int_eq((t).loc.line, (l));                  \
        ck_assert_int_eq((t).loc.col, (c));                   \
    } while (0)

START_TEST(tokens_with_locations) {
    fixture f;
    int n;
    token *t = lex(&f, "model mlp   # a comment\n\n\nfc1 = linear(x, 512)\n", &n);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(n, 13);
    ck_tok(t[0], TK_IDENT, "model", 1, 1);
    ck_tok(t[1], TK_IDENT, "mlp", 1, 7);
    ck_assert_int_eq(t[2].kind, TK_NEWLINE); /* blank lines collapse into one */
    ck_assert_int_eq(t[2].loc.line, 1);
    ck_assert_int_eq(t[2].loc.col, 10); /* just after "mlp", not after the comment */
    ck_tok(t[3], TK_IDENT, "fc1", 4, 1);
    ck_tok(t[4], TK_PUNCT, "=", 4, 5);
    ck_tok(t[5], TK_IDENT, "linear", 4, 7);
    ck_tok(t[6], TK_PUNCT, "(", 4, 13);
    ck_tok(t[7], TK_IDENT, "x", 4, 14);
    ck_tok(t[8], TK_PUNCT, ",", 4, 15);
    ck_tok(t[9], TK_INT, "512", 4, 17);
    ck_assert_int_eq(t[9].ival, 512);
    ck_tok(t[10], TK_PUNCT, ")", 4, 20);
    ck_assert_int_eq(t[11].kind, TK_NEWLINE);
    ck_assert_int_eq(t[12].kind, TK_EOF);
    ck_assert_int_eq(t[12].loc.line, 5);
    ck_assert_int_eq(f.d.errors, 0);
    fx_close(&f);
}
END_TEST

START_TEST(dotted_names_and_patterns) {
    fixture f;
    int n;
    token *t = lex(&f, "layer1.0.conv1 fc2.* *.bias", &n);
    ck_assert_ptr_nonnull(t);
    ck_tok(t[0], TK_IDENT, "layer1.0.conv1", 1, 1);
    ck_tok(t[1], TK_IDENT, "fc2", 1, 16);
    ck_tok(t[2], TK_PUNCT, ".", 1, 19);
    ck_tok(t[3], TK_PUNCT, "*", 1, 20);
    ck_tok(t[4], TK_PUNCT, "*", 1, 22);
    ck_tok(t[5], TK_PUNCT, ".", 1, 23);
    ck_tok(t[6], TK_IDENT, "bias", 1, 24);
    ck_assert_uint_eq(t[5].pos, t[4].pos + 1); /* adjacency, for glob gluing */
    ck_assert_int_eq(t[7].kind, TK_NEWLINE);
    ck_assert_int_eq(t[8].kind, TK_EOF);
    fx_close(&f);
}
END_TEST

START_TEST(numbers) {
    fixture f;
    int n;
    token *t = lex(&f, "0 1e-5 0.25 3E2 7", &n);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t[0].kind, TK_INT);
    ck_assert_int_eq(t[0].ival, 0);
    ck_assert_int_eq(t[1].kind, TK_REAL);
    ck_assert_double_eq_tol(t[1].rval, 1e-5, 1e-12);
    ck_assert_int_eq(t[2].kind, TK_REAL);
    ck_assert_double_eq(t[2].rval, 0.25);
    ck_assert_int_eq(t[3].kind, TK_REAL);
    ck_assert_double_eq(t[3].rval, 300.0);
    ck_assert_int_eq(t[4].kind, TK_INT);
    ck_assert_int_eq(t[4].ival, 7);
    fx_close(&f);
}
END_TEST

START_TEST(keywords) {
    ck_assert(lex_is_keyword("model", 5));
    ck_assert(lex_is_keyword("none", 4));
    ck_assert(lex_is_keyword("def", 3));
    ck_assert(!lex_is_keyword("linear", 6));
    ck_assert(!lex_is_keyword("mode", 4));
    static const char *words[] = {"if", "else", "return", "and", "or", "not"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        ck_assert_msg(lex_is_keyword(words[k], (int)strlen(words[k])), "%s", words[k]);
    /* meaningful only in place: still usable as names */
    ck_assert(!lex_is_keyword("dim", 3));
    ck_assert(!lex_is_keyword("batchnorm", 9));
    ck_assert(!lex_is_keyword("eval", 4));
}
END_TEST

START_TEST(comparison_operators) {
    fixture f;
    int n;
    token *t = lex(&f, "a==b != c<=d>=e<f>g = !h", &n);
    ck_assert_ptr_nonnull(t);
    ck_tok(t[0], TK_IDENT, "a", 1, 1);
    ck_tok(t[1], TK_PUNCT, "==", 1, 2);
    ck_tok(t[2], TK_IDENT, "b", 1, 4);
    ck_tok(t[3], TK_PUNCT, "!=", 1, 6);
    ck_tok(t[5], TK_PUNCT, "<=", 1, 10);
    ck_tok(t[7], TK_PUNCT, ">=", 1, 13);
    ck_tok(t[9], TK_PUNCT, "<", 1, 16);
    ck_tok(t[11], TK_PUNCT, ">", 1, 18);
    ck_tok(t[13], TK_PUNCT, "=", 1, 21);
    ck_tok(t[14], TK_PUNCT, "!", 1, 23);
    ck_tok(t[15], TK_IDENT, "h", 1, 24);
    ck_assert_int_eq(t[16].kind, TK_NEWLINE);
    fx_close(&f);
    /* a name keeps numeric segments: downsample.1 is one token */
    t = lex(&f, "h = downsample.1", &n);
    ck_assert_ptr_nonnull(t);
    ck_tok(t[2], TK_IDENT, "downsample.1", 1, 5);
    fx_close(&f);
}
END_TEST

START_TEST(utf8_comment_is_fine) {
    fixture f;
    int n;
    token *t = lex(&f, "# größe: Größe\nmodel m\n", &n);
    ck_assert_ptr_nonnull(t);
    ck_tok(t[0], TK_IDENT, "model", 2, 1);
    fx_close(&f);
}
END_TEST

START_TEST(nul_byte_is_not_text) {
    fixture f;
    static const char src[] = "model m\ninput x : f32[4]\n ab\0cd\n";
    fx_open(&f, src, sizeof src - 1);
    int n;
    ck_assert_ptr_null(lex_tokens(f.p, &f.d, &n));
    ck_assert_int_eq(f.d.errors, 1);
    /* at the first bad byte, and no echo of the garbage line */
    ck_assert_str_eq(fx_text(&f), "t.frost:3:4: error: file is not text (byte 0x00); expected a UTF-8 model file\n");
    fx_close(&f);
}
END_TEST

START_TEST(invalid_utf8_is_not_text) {
    fixture f;
    static const char src[] = "model m\xff\xfe\n";
    fx_open(&f, src, sizeof src - 1);
    int n;
    ck_assert_ptr_null(lex_tokens(f.p, &f.d, &n));
    ck_assert_str_eq(fx_text(&f), "t.frost:1:8: error: file is not text (byte 0xff); expected a UTF-8 model file\n");
    fx_close(&f);
}
END_TEST

START_TEST(unexpected_character) {
    fixture f;
    int n;
    ck_assert_ptr_null(lex(&f, "model m\nfc1 = linear(x, 16) @ 2\n", &n));
    ck_assert_str_eq(fx_text(&f), "t.frost:2:21: error: unexpected character '@'\n"
                                  "    2 | fc1 = linear(x, 16) @ 2\n"
                                  "      |                     ^\n");
    fx_close(&f);
}
END_TEST

START_TEST(integer_too_large) {
    fixture f;
    int n;
    ck_assert_ptr_null(lex(&f, "const N = 99999999999999999999\n", &n));
    ck_assert_str_eq(fx_text(&f), "t.frost:1:11: error: integer 99999999999999999999 is too large (the limit is "
                                  "9223372036854775807)\n"
                                  "    1 | const N = 99999999999999999999\n"
                                  "      |           ^\n");
    fx_close(&f);
}
END_TEST

START_TEST(invalid_number) {
    fixture f;
    int n;
    ck_assert_ptr_null(lex(&f, "x = 12ab\n", &n));
    ck_assert_int_eq(f.d.errors, 1);
    ck_assert(strstr(fx_text(&f), "t.frost:1:5: error: invalid number '12ab'\n") == fx_text(&f));
    fx_close(&f);
}
END_TEST

/* ---------------------------------------------------------------- diag.c */

START_TEST(diag_caret_format) {
    fixture f;
    const char *src = "model m\nfc1 = lineer(x, 512)\n";
    fx_open(&f, src, strlen(src));
    diag_error(&f.d, (src_loc){2, 7}, "unknown op '%s'", "lineer");
    ck_assert_str_eq(fx_text(&f), "t.frost:2:7: error: unknown op 'lineer'\n"
                                  "    2 | fc1 = lineer(x, 512)\n"
                                  "      |       ^\n");
    ck_assert_int_eq(f.d.errors, 1);
    ck_assert_int_eq(f.d.warnings, 0);
    fx_close(&f);
}
END_TEST

START_TEST(diag_tabs_utf8_and_kinds) {
    fixture f;
    const char *src = "\tfc1 = x  # é\n\xc3\xa9t\xc3\xa9 = y\n";
    fx_open(&f, src, strlen(src));
    diag_warning(&f.d, (src_loc){1, 2}, "w");
    diag_note(&f.d, (src_loc){2, 3}, "n");
    /* tab copied into the caret line; é counts as one column */
    ck_assert_str_eq(fx_text(&f), "t.frost:1:2: warning: w\n"
                                  "    1 | \tfc1 = x  # é\n"
                                  "      | \t^\n"
                                  "t.frost:2:3: note: n\n"
                                  "    2 | été = y\n"
                                  "      |   ^\n");
    ck_assert_int_eq(f.d.errors, 0);
    ck_assert_int_eq(f.d.warnings, 1);
    fx_close(&f);
}
END_TEST

START_TEST(diag_no_location_and_wide_gutter) {
    fixture f;
    char src[200000];
    size_t n = 0;
    for (int k = 1; k <= 123456; k++)
        src[n++] = '\n';
    memcpy(src + n, "x = y", 6);
    fx_open(&f, src, n + 5);
    diag_error(&f.d, (src_loc){0, 0}, "-D %s: no such const in %s", "Q", "t.frost");
    diag_error(&f.d, (src_loc){123457, 5}, "far");
    ck_assert_str_eq(fx_text(&f), "t.frost: error: -D Q: no such const in t.frost\n"
                                  "t.frost:123457:5: error: far\n"
                                  "123457 | x = y\n"
                                  "       |     ^\n");
    ck_assert_int_eq(f.d.errors, 2);
    fx_close(&f);
}
END_TEST

START_TEST(diag_error_limit) {
    fixture f;
    const char *src = "x = y\n";
    fx_open(&f, src, strlen(src));
    ck_assert_int_eq(f.d.error_limit, DIAG_ERROR_LIMIT);
    f.d.error_limit = 2;
    diag_error(&f.d, (src_loc){0, 0}, "one");
    diag_error(&f.d, (src_loc){0, 0}, "two");
    diag_note(&f.d, (src_loc){0, 0}, "a note of the last error shown");
    ck_assert(!f.d.stopped);
    diag_error(&f.d, (src_loc){1, 5}, "three");
    ck_assert(f.d.stopped);
    diag_note(&f.d, (src_loc){0, 0}, "a note of an error not shown");
    diag_warning(&f.d, (src_loc){0, 0}, "w");
    diag_error(&f.d, (src_loc){0, 0}, "four");
    ck_assert_str_eq(fx_text(&f), "t.frost: error: one\n"
                                  "t.frost: error: two\n"
                                  "t.frost: note: a note of the last error shown\n"
                                  "t.frost:1:5: error: too many errors emitted, stopping now\n"
                                  "    1 | x = y\n"
                                  "      |     ^\n");
    ck_assert_int_eq(f.d.errors, 4); /* still counted: callers compare counts */
    ck_assert_int_eq(f.d.warnings, 0);
    fx_close(&f);

    fx_open(&f, src, strlen(src));
    f.d.error_limit = 0; /* no limit */
    for (int k = 0; k < 100; k++)
        diag_error(&f.d, (src_loc){0, 0}, "e");
    ck_assert(!f.d.stopped);
    ck_assert_int_eq(f.d.errors, 100);
    fx_close(&f);
}
END_TEST

/* An unbuffered stream, like stderr, that counts the writes reaching it. */
typedef struct {
    int writes;
    size_t bytes;
} write_count;

static ssize_t count_write(void *cookie, const char *buf, size_t size) {
    (void)buf;
    write_count *c = cookie;
    c->writes++;
    c->bytes += size;
    return (ssize_t)size;
}

START_TEST(diag_one_write_per_message) {
    enum { COL = 5000 };
    static char src[COL + 16];
    memset(src, ' ', COL);
    memcpy(src + COL - 1, "x = y\n", 7);
    write_count c = {0};
    FILE *out = fopencookie(&c, "w", (cookie_io_functions_t){.write = count_write});
    ck_assert_ptr_nonnull(out);
    setvbuf(out, NULL, _IONBF, 0);
    diag_ctx d;
    diag_init(&d, "t.frost", src, strlen(src), out);
    diag_error(&d, (src_loc){1, COL}, "far to the right");
    /* message, source line and caret line: one write, not one per column */
    ck_assert_int_eq(c.writes, 1);
    ck_assert_uint_eq(c.bytes, strlen("t.frost:1:5000: error: far to the right\n") + 2 * (8 + COL) + 6);
    fclose(out);
}
END_TEST

/* ---------------------------------------------------------------- pool.c */

START_TEST(pool_alloc_grow_printf) {
    pool *p = pool_new();
    for (int k = 0; k < 1000; k++) {
        size_t size = (size_t)(k * 37 % 300 + 1);
        unsigned char *m = pool_alloc(p, size);
        ck_assert_uint_eq((uintptr_t)m % 16, 0);
        for (size_t i = 0; i < size; i++)
            ck_assert_int_eq(m[i], 0);
        memset(m, 0xab, size);
    }
    unsigned char *big = pool_alloc(p, 1 << 20);
    ck_assert_int_eq(big[(1 << 20) - 1], 0);
    int *items = NULL, n = 0, cap = 0;
    for (int k = 0; k < 1000; k++)
        *VEC_PUSH(p, items, n, cap) = k * k;
    ck_assert_int_eq(n, 1000);
    ck_assert_int_ge(cap, 1000);
    for (int k = 0; k < 1000; k++)
        ck_assert_int_eq(items[k], k * k);
    ck_assert_str_eq(pool_printf(p, "%s.%d", "fc", 12), "fc.12");
    ck_assert_str_eq(pool_strndup(p, "abcdef", 3), "abc");
    ck_assert_str_eq(pool_strdup(p, ""), "");
    pool_free(p);
}
END_TEST

int main(void) {
    Suite *s = suite_create("lex");
    TCase *tc = tcase_create("lex");
    tcase_add_test(tc, tokens_with_locations);
    tcase_add_test(tc, dotted_names_and_patterns);
    tcase_add_test(tc, numbers);
    tcase_add_test(tc, keywords);
    tcase_add_test(tc, comparison_operators);
    tcase_add_test(tc, utf8_comment_is_fine);
    tcase_add_test(tc, nul_byte_is_not_text);
    tcase_add_test(tc, invalid_utf8_is_not_text);
    tcase_add_test(tc, unexpected_character);
    tcase_add_test(tc, integer_too_large);
    tcase_add_test(tc, invalid_number);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("diag");
    tcase_add_test(td, diag_caret_format);
    tcase_add_test(td, diag_tabs_utf8_and_kinds);
    tcase_add_test(td, diag_no_location_and_wide_gutter);
    tcase_add_test(td, diag_one_write_per_message);
    tcase_add_test(td, diag_error_limit);
    suite_add_tcase(s, td);
    TCase *tp = tcase_create("pool");
    tcase_add_test(tp, pool_alloc_grow_printf);
    suite_add_tcase(s, tp);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
