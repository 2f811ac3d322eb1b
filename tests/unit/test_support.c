/* test_support.c: libfrost_support: safetensors checkpoints, IDX files, data
 * sets and batches.
 *
 * Checkpoints: bit-exact round trips over every dtype; every error class with
 * its message; skipping, partial and lenient loading; a file written from a
 * PyTorch state_dict (tests/fixtures/make_torch_safetensors.py); a driver
 * that includes a generated header beside frost_support.h (both orders) and
 * saves and loads a real model's params. IDX: small files written here,
 * plain and gzip, well-formed and broken; Debian's Fashion-MNIST when it is
 * installed. Batches: determinism, the documented shuffle, both policies for
 * the last partial batch. Text: files read into one buffer, missing ones
 * named; windows of ids and next-byte labels at the documented starts.
 */
#include "frost_support.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../fixtures/torch_mlp_bn_expected.h"

#define F32 FROST_DTYPE_F32
#define I32 FROST_DTYPE_I32
#define U8 FROST_DTYPE_U8
#define I64 FROST_DTYPE_I64

/* ---------------------------------------------------------------- helpers */

static char tmpdir[512];

static void setup(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/frost-support-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* A path in the test's directory (a few rotating buffers). */
static const char *tpath(const char *name) {
    static char buf[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    b[len] = 0;
    *n = (size_t)len;
    return b;
}

/* A safetensors file: length, the JSON as given, then `data`. */
static void write_st(const char *path, const char *json, const void *data, size_t n) {
    size_t hl = strlen(json);
    unsigned char *b = malloc(8 + hl + n + 1);
    for (int k = 0; k < 8; k++)
        b[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(b + 8, json, hl);
    if (n)
        memcpy(b + 8 + hl, data, n);
    write_bytes(path, b, 8 + hl + n);
    free(b);
}

#define EXPECT_ERR(rc, e, want, text)                                                                   \
    do {                                                                                                \
        ck_assert_msg((rc) == (want), "rc %d, want %d (%s): %s", (rc), (want), #want, (e).msg);         \
        ck_assert_int_eq((e).code, (want));                                                             \
        ck_assert_msg(strstr((e).msg, (text)) != NULL, "message \"%s\" lacks \"%s\"", (e).msg, (text)); \
    } while (0)

static void fill_random(void *p, size_t n, unsigned seed) {
    unsigned char *b = p;
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        b[i] = (unsigned char)(s >> 24);
    }
}

static int all_bytes(const void *p, size_t n, unsigned char v) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return 0;
    return 1;
}

static int count_tmp_files(void) {
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- round trip */

/* Every dtype, a scalar, an empty tensor, a non-persistent entry and a name
 * that needs escaping. */
static const frost_param_info RT[] = {
    {"enc.weight", 0, 0, 2, {3, 5}, F32, 1, 0, 1},
    {"enc.bias", 64, 60, 1, {5}, F32, 1, 0, 1},
    {"bn.num_batches_tracked", 128, -1, 0, {0}, I64, 0, 1, 1},
    {"idx", 192, -1, 1, {7}, I32, 0, 1, 1},
    {"mask", 256, -1, 2, {3, 3}, U8, 0, 1, 1},
    {"rng", 320, -1, 1, {2}, I64, 0, 1, 0},
    {"empty", 384, -1, 2, {0, 4}, F32, 1, 0, 1},
    {"head.w\"q\\\x01", 384, -1, 1, {4}, F32, 1, 0, 1},
};
#define RT_N ((int)(sizeof RT / sizeof *RT))
#define RT_BYTES 448

/* Bytes of each entry. */
static size_t rt_bytes(const frost_param_info *t) {
    size_t n = t->dtype == U8 ? 1 : t->dtype == I64 ? 8 : 4;
    for (int d = 0; d < t->rank; d++)
        n *= (size_t)t->shape[d];
    return n;
}

START_TEST(test_round_trip) {
    _Alignas(64) unsigned char a[RT_BYTES], b[RT_BYTES];
    fill_random(a, sizeof a, 1);
    /* Special floats: -0, a NaN with payload, a denormal, infinity. */
    const uint32_t special[] = {0x80000000u, 0x7fc12345u, 0x00000001u, 0x7f800000u};
    memcpy(a, special, sizeof special);
    frost_error e;
    const char *path = tpath("rt.safetensors");
    ck_assert_int_eq(frost_ckpt_save(path, a, RT, RT_N, &e), 0);
    ck_assert_int_eq(e.code, 0);
    ck_assert_msg(strstr(e.msg, "saved 7 tensors (141 bytes of data)"), "%s", e.msg);
    ck_assert_int_eq(count_tmp_files(), 0);

    /* The layout: 8-byte length, 8-aligned JSON, data in table order. */
    size_t n;
    unsigned char *f = read_bytes(path, &n);
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--)
        hl = hl << 8 | f[k];
    ck_assert_uint_eq(hl % 8, 0);
    ck_assert_uint_eq(n, 8 + hl + 141);
    char *h = (char *)f + 8;
    h[hl] = 0;
    ck_assert_msg(!strncmp(h,
                           "{\"__metadata__\":{\"format\":\"pt\"},\"enc.weight\":{\"dtype\":\"F32\",\"shape\":[3,5],"
                           "\"data_offsets\":[0,60]},\"enc.bias\":",
                           100),
                  "%s", h);
    ck_assert_ptr_nonnull(
        strstr(h, "\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[80,88]}"));
    ck_assert_ptr_nonnull(strstr(h, "\"idx\":{\"dtype\":\"I32\",\"shape\":[7],\"data_offsets\":[88,116]}"));
    ck_assert_ptr_nonnull(strstr(h, "\"mask\":{\"dtype\":\"U8\",\"shape\":[3,3],\"data_offsets\":[116,125]}"));
    ck_assert_ptr_nonnull(strstr(h, "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[125,125]}"));
    ck_assert_ptr_nonnull(
        strstr(h, "\"head.w\\\"q\\\\\\u0001\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[125,141]}"));
    ck_assert_ptr_null(strstr(h, "rng"));
    ck_assert_int_eq(memcmp(f + 8 + hl, a, 60), 0); /* little-endian host: the bytes as they are */
    free(f);

    /* Load into a block of sentinels: persistent entries bit-exact, the rest untouched. */
    memset(b, 0xAB, sizeof b);
    ck_assert_int_eq(frost_ckpt_load(path, b, RT, RT_N, NULL, &e), 0);
    ck_assert_int_eq(e.code, 0);
    ck_assert_msg(strstr(e.msg, "loaded 7 tensors from '"), "%s", e.msg);
    size_t covered = 0;
    for (int i = 0; i < RT_N; i++) {
        size_t k = rt_bytes(&RT[i]);
        if (RT[i].persistent)
            ck_assert_msg(!memcmp(a + RT[i].offset, b + RT[i].offset, k), "%s differs", RT[i].name);
        else
            ck_assert(all_bytes(b + RT[i].offset, k, 0xAB));
        covered += k;
    }
    ck_assert_uint_eq(covered, 157);
    ck_assert(all_bytes(b + 60, 4, 0xAB)); /* padding between entries */

    /* Saving again replaces the file, through a temporary. */
    fill_random(a, sizeof a, 2);
    ck_assert_int_eq(frost_ckpt_save(path, a, RT, RT_N, &e), 0);
    ck_assert_int_eq(frost_ckpt_load(path, b, RT, RT_N, NULL, &e), 0);
    ck_assert_int_eq(memcmp(a, b, 60), 0);
    ck_assert_int_eq(count_tmp_files(), 0);

    /* err may be NULL. */
    ck_assert_int_eq(frost_ckpt_load(path, b, RT, RT_N, NULL, NULL), 0);
    ck_assert_int_eq(frost_ckpt_load(tpath("nope"), b, RT, RT_N, NULL, NULL), FROST_ERR_IO);

    /* An empty table: a valid file with only metadata. */
    ck_assert_int_eq(frost_ckpt_save(tpath("empty.safetensors"), NULL, NULL, 0, &e), 0);
    ck_assert_int_eq(frost_ckpt_load(tpath("empty.safetensors"), NULL, NULL, 0, NULL, &e), 0);
    ck_assert_msg(strstr(e.msg, "loaded 0 tensors"), "%s", e.msg);
}
END_TEST

START_TEST(test_save_errors) {
    unsigned char a[RT_BYTES] = {0};
    frost_error e;
    int rc = frost_ckpt_save(tpath("no/such/dir/x.safetensors"), a, RT, RT_N, &e);
    EXPECT_ERR(rc, e, FROST_ERR_IO, "cannot create a temporary file next to it: No such file or directory");
    ck_assert_ptr_nonnull(strstr(e.msg, "no/such/dir/x.safetensors"));

    frost_param_info t[2] = {
        {"w", 0, -1, 1, {4}, F32, 1, 0, 1},
        {"w", 16, -1, 1, {4}, F32, 1, 0, 1},
    };
    rc = frost_ckpt_save(tpath("x"), a, t, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "table entries 0 and 1 are both named 'w'");
    t[1].persistent = 0; /* a non-persistent duplicate is not in the file: fine */
    ck_assert_int_eq(frost_ckpt_save(tpath("x"), a, t, 2, &e), 0);
    t[1].persistent = 1;
    t[1].name = "v";
    t[1].dtype = 3; /* bit-packed: not a checkpoint dtype */
    rc = frost_ckpt_save(tpath("x"), a, t, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "table entry 1 ('v') has an unsupported dtype code");
    t[1].dtype = F32;
    t[1].rank = 7;
    rc = frost_ckpt_save(tpath("x"), a, t, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "table entry 1 ('v') has a bad rank");
    t[1].rank = 1;
    t[1].shape[0] = -1;
    rc = frost_ckpt_save(tpath("x"), a, t, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "table entry 1 ('v') has a bad shape");
    t[1].shape[0] = 4;
    t[1].name = NULL;
    rc = frost_ckpt_save(tpath("x"), a, t, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "table entry 1 ('') has no name");
    t[1].name = "v";
    rc = frost_ckpt_save(tpath("x"), NULL, t, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "params is NULL");
    rc = frost_ckpt_load(tpath("x"), a, t, -1, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "negative table size -1");
    ck_assert_int_eq(count_tmp_files(), 0);
}
END_TEST

/* ---------------------------------------------------------------- load errors */

/* w f32[2, 3] at 0, b f32[3] at 32. */
static const frost_param_info T2[] = {
    {"w", 0, -1, 2, {2, 3}, F32, 1, 0, 1},
    {"b", 32, -1, 1, {3}, F32, 1, 0, 1},
};
#define T2_BYTES 48
#define T2_W "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
#define T2_B "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}"

typedef struct {
    const char *json;
    size_t data; /* bytes of data after the header */
    int code;
    const char *msg;
} bad_case;

static const bad_case bad_cases[] = {
    /* JSON */
    {"", 36, FROST_ERR_FORMAT, "header length 0 is too small for a JSON object"},
    {"[" T2_W "]", 36, FROST_ERR_FORMAT, "malformed JSON header at byte 0: expected '{' at the start of the header"},
    {"{\"w\" {}}", 36, FROST_ERR_FORMAT, "malformed JSON header at byte 5: expected ':' after a key"},
    {"{" T2_W "," T2_B ",}", 36, FROST_ERR_FORMAT, "malformed JSON header at byte 112: expected a string"},
    {"{" T2_W " " T2_B "}", 36, FROST_ERR_FORMAT, "malformed JSON header at byte 57: expected ',' or '}'"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]", 36, FROST_ERR_FORMAT,
     "malformed JSON header at byte 55: unexpected end of header"},
    {"{\"w", 36, FROST_ERR_FORMAT, "malformed JSON header at byte 3: unterminated string"},
    {"{\"w\\q\":{}}", 36, FROST_ERR_FORMAT, "malformed JSON header at byte 3: bad escape in a string"},
    {"{\"w\\ud800x\":{}}", 36, FROST_ERR_FORMAT, "high surrogate not followed by a low one"},
    {"{\"w\\udc00\":{}}", 36, FROST_ERR_FORMAT, "lone low surrogate in a \\u escape"},
    {"{\"w\\u12G4\":{}}", 36, FROST_ERR_FORMAT, "bad \\u escape (expected 4 hex digits)"},
    {"{\"w\tx\":{}}", 36, FROST_ERR_FORMAT, "malformed JSON header at byte 3: control character in a string"},
    {"{" T2_W "," T2_B "} x", 36, FROST_ERR_FORMAT, "unexpected data after the JSON object"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24],\"x\":[1,{\"a\":tru]}}}", 36, FROST_ERR_FORMAT,
     "malformed JSON header at byte 68: expected a value"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[02,3],\"data_offsets\":[0,24]}}", 36, FROST_ERR_FORMAT,
     "leading zero in a number"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,99999999999999999999]}}", 36, FROST_ERR_FORMAT,
     "integer too large"},
    {"{\"\\u0000\":{}}", 36, FROST_ERR_FORMAT, "a tensor name contains \\u0000"},
    /* Schema */
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3]}}", 36, FROST_ERR_FORMAT, "tensor 'w' has no \"data_offsets\""},
    {"{\"w\":{\"shape\":[2,3],\"data_offsets\":[0,24]}}", 36, FROST_ERR_FORMAT, "tensor 'w' has no \"dtype\""},
    {"{\"w\":{\"dtype\":32,\"shape\":[2,3],\"data_offsets\":[0,24]}}", 36, FROST_ERR_FORMAT,
     "tensor 'w': \"dtype\" is not a string"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,24]}}", 36, FROST_ERR_FORMAT,
     "tensor 'w': \"shape\" is not an array of non-negative integers"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3.0],\"data_offsets\":[0,24]}}", 36, FROST_ERR_FORMAT,
     "expected a non-negative integer"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":6,\"data_offsets\":[0,24]}}", 36, FROST_ERR_FORMAT,
     "tensor 'w': \"shape\" is not an array of non-negative integers"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24,36]}}", 36, FROST_ERR_FORMAT,
     "tensor 'w': \"data_offsets\" is not an array of two non-negative integers"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24]}}", 36, FROST_ERR_FORMAT,
     "tensor 'w': \"data_offsets\" is not an array of two non-negative integers"},
    {"{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 36, FROST_ERR_FORMAT,
     "tensor 'w': \"dtype\" given twice"},
    {"{\"w\":[]}", 36, FROST_ERR_FORMAT, "malformed JSON header at byte 5: expected '{' (a tensor entry)"},
    {"{\"__metadata__\":{\"format\":1}," T2_W "," T2_B "}", 36, FROST_ERR_FORMAT,
     "\"__metadata__\" is not an object of strings"},
    {"{" T2_W "," T2_B "," T2_B "}", 36, FROST_ERR_FORMAT, "tensor 'b' appears twice in the header"},
    /* Offsets */
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,0]}," T2_B "}", 36, FROST_ERR_OFFSETS,
     "tensor 'w': data_offsets [24, 0] are reversed"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}," T2_B "}", 36, FROST_ERR_OFFSETS,
     "tensor 'w': data_offsets [0, 20] hold 20 bytes, but F32 [2, 3] needs 24"},
    {"{\"w\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,24]}," T2_B "}", 36, FROST_ERR_OFFSETS,
     "tensor 'w': data_offsets [0, 24] hold 24 bytes, but F64 [2, 3] needs 48"},
    {"{" T2_W ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[20,32]}}", 36, FROST_ERR_OFFSETS,
     "tensors 'w' [0, 24] and 'b' [20, 32] overlap"},
    {"{" T2_W ",\"b\":{\"dtype\":\"F32\",\"shape\":[3000000000,3000000000,3000000000],\"data_offsets\":[24,36]}}", 36,
     FROST_ERR_FORMAT, "tensor 'b': shape [3000000000, 3000000000, 3000000000] is too large"},
    /* Truncated data */
    {"{" T2_W "," T2_B "}", 30, FROST_ERR_TRUNCATED,
     "truncated data: tensor 'b' ends at byte 36 of the data, but the file has only 30 bytes of data"},
    {"{" T2_W ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[9000000000000,9000000000012]}}", 36,
     FROST_ERR_TRUNCATED, "tensor 'b' ends at byte 9000000000012 of the data, but the file has only 36"},
    /* Dtypes: nothing is converted */
    {"{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}," T2_B "}", 36, FROST_ERR_DTYPE,
     "dtype mismatch: 'w' is BF16 in the file, the model wants F32"},
    {"{\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"I32\",\"shape\":[3],"
     "\"data_offsets\":[12,24]}}",
     36, FROST_ERR_DTYPE, "dtype mismatch: 'w' is F16 in the file, the model wants F32; 'b' is I32 in the file"},
    {"{\"w\":{\"dtype\":\"F4\",\"shape\":[2,3],\"data_offsets\":[0,3]}," T2_B "}", 36, FROST_ERR_DTYPE,
     "'w' is F4 in the file, the model wants F32"},
    /* Shapes */
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}," T2_B "}", 36, FROST_ERR_SHAPE,
     "shape mismatch: 'w' is [3, 2] in the file, the model wants [2, 3]"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]},\"b\":{\"dtype\":\"F32\",\"shape\":[],"
     "\"data_offsets\":[24,28]}}",
     36, FROST_ERR_SHAPE, "'w' is [6] in the file, the model wants [2, 3]; 'b' is [] in the file, the model wants [3]"},
    /* Names */
    {"{" T2_W "}", 36, FROST_ERR_MISSING, "1 tensor missing from the file: 'b'"},
    {"{\"__metadata__\":{}}", 0, FROST_ERR_MISSING, "2 tensors missing from the file: 'w', 'b'"},
    {"{" T2_W "," T2_B ",\"x\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[36,37]}}", 37, FROST_ERR_UNEXPECTED,
     "1 tensor in the file not in the model: 'x'"},
    {"{" T2_W
     ",\"x\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[36,37]},\"y\\u00e9\":{\"dtype\":\"U8\",\"shape\":[],"
     "\"data_offsets\":[37,38]}}",
     38, FROST_ERR_MISSING,
     "1 tensor missing from the file: 'b'; 2 tensors in the file not in the model: 'x', 'y\xc3\xa9'"},
};

START_TEST(test_load_errors) {
    unsigned char data[64];
    fill_random(data, sizeof data, 3);
    _Alignas(64) unsigned char params[T2_BYTES];
    frost_error e;
    for (size_t k = 0; k < sizeof bad_cases / sizeof *bad_cases; k++) {
        const bad_case *c = &bad_cases[k];
        const char *path = tpath("bad.safetensors");
        write_st(path, c->json, data, c->data);
        memset(params, 0x5A, sizeof params);
        memset(&e, 0, sizeof e);
        int rc = frost_ckpt_load(path, params, T2, 2, NULL, &e);
        ck_assert_msg(rc == c->code && e.code == c->code, "case %zu: rc %d, want %d: %s", k, rc, c->code, e.msg);
        ck_assert_msg(strstr(e.msg, c->msg) != NULL, "case %zu: message \"%s\" lacks \"%s\"", k, e.msg, c->msg);
        ck_assert_msg(!strncmp(e.msg, "'", 1) && strstr(e.msg, "bad.safetensors': "), "case %zu: %s", k, e.msg);
        ck_assert_msg(all_bytes(params, sizeof params, 0x5A), "case %zu: params written", k);
        ck_assert_uint_lt(strlen(e.msg), sizeof e.msg);
    }
    /* The same files are fine with the right header. */
    write_st(tpath("good.safetensors"), "{" T2_W "," T2_B "}", data, 36);
    ck_assert_int_eq(frost_ckpt_load(tpath("good.safetensors"), params, T2, 2, NULL, &e), 0);
    ck_assert_int_eq(memcmp(params, data, 24), 0);
    ck_assert_int_eq(memcmp(params + 32, data + 24, 12), 0);
    /* Whitespace, unknown fields, gaps and trailing data are accepted. */
    write_st(
        tpath("good.safetensors"),
        " {\n \"b\" : {\"shape\": [ 3 ], \"data_offsets\": [40, 52], \"x\": {\"y\": [true, false, null, -1.5e3]},"
        " \"dtype\": \"F32\"},\n \"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]} } \t\r\n",
        data, 60);
    ck_assert_int_eq(frost_ckpt_load(tpath("good.safetensors"), params, T2, 2, NULL, &e), 0);
    ck_assert_int_eq(memcmp(params + 32, data + 40, 12), 0);
}
END_TEST

START_TEST(test_load_file_errors) {
    _Alignas(64) unsigned char params[T2_BYTES];
    memset(params, 0x5A, sizeof params);
    frost_error e;
    int rc = frost_ckpt_load(tpath("missing.safetensors"), params, T2, 2, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_IO, "cannot open '");
    ck_assert_ptr_nonnull(strstr(e.msg, "missing.safetensors': No such file or directory"));

    rc = frost_ckpt_load(tmpdir, params, T2, 2, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_IO, "not a regular file");

    write_bytes(tpath("short"), "\x10\0\0\0\0", 5);
    rc = frost_ckpt_load(tpath("short"), params, T2, 2, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_TRUNCATED,
               "truncated header: the file has 5 bytes, fewer than the 8 of the header length");

    write_bytes(tpath("zero"), "", 0);
    rc = frost_ckpt_load(tpath("zero"), params, T2, 2, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_TRUNCATED, "the file has 0 bytes");

    /* An absurd header length (e.g. a file in another format). */
    write_bytes(tpath("absurd"), "PK\3\4\24\0\0\0\10\0junkjunk", 18);
    rc = frost_ckpt_load(tpath("absurd"), params, T2, 2, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_FORMAT, "header length 85966670672 is absurd (limit 100000000)");

    /* A plausible length, more than the file holds. */
    write_bytes(tpath("cut"), "\x64\0\0\0\0\0\0\0{\"w\":{\"dty", 18);
    rc = frost_ckpt_load(tpath("cut"), params, T2, 2, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_TRUNCATED, "truncated header: the header length is 100 bytes, but only 10 follow");
    ck_assert(all_bytes(params, sizeof params, 0x5A));

    /* A valid file cut anywhere fails cleanly. */
    unsigned char src[T2_BYTES];
    fill_random(src, sizeof src, 9);
    ck_assert_int_eq(frost_ckpt_save(tpath("full"), src, T2, 2, &e), 0);
    size_t n;
    unsigned char *full = read_bytes(tpath("full"), &n);
    for (size_t cut = 0; cut < n; cut++) {
        write_bytes(tpath("part"), full, cut);
        rc = frost_ckpt_load(tpath("part"), params, T2, 2, NULL, &e);
        ck_assert_msg(rc == FROST_ERR_TRUNCATED || rc == FROST_ERR_FORMAT, "cut %zu: %d %s", cut, rc, e.msg);
        ck_assert(all_bytes(params, sizeof params, 0x5A));
    }
    free(full);

    /* Deep nesting in an ignored field: bounded, no recursion. */
    char *deep = malloc(300000);
    strcpy(deep, "{\"w\":{\"x\":");
    size_t k = strlen(deep);
    for (int i = 0; i < 100000; i++)
        deep[k++] = '[';
    strcpy(deep + k, "]}}");
    write_st(tpath("deep"), deep, NULL, 0);
    rc = frost_ckpt_load(tpath("deep"), params, T2, 2, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_FORMAT, "malformed JSON header at byte 74: values nested too deeply");
    free(deep);
}
END_TEST

START_TEST(test_message_truncation) {
    /* 200 missing tensors: the message names what fits and counts the rest. */
    enum { N = 200 };
    static frost_param_info t[N];
    static char names[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "layer%d.conv.weight", i);
        t[i] = (frost_param_info){names[i], 4 * i, -1, 1, {1}, F32, 1, 0, 1};
    }
    static unsigned char params[4 * N];
    write_st(tpath("few.safetensors"), "{}", NULL, 0);
    frost_error e;
    int rc = frost_ckpt_load(tpath("few.safetensors"), params, t, N, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING,
               "200 tensors missing from the file: 'layer0.conv.weight', 'layer1.conv.weight'");
    ck_assert_msg(strstr(e.msg, " more)"), "%s", e.msg);
    ck_assert_uint_lt(strlen(e.msg), FROST_ERROR_MSG);
    const char *more = strstr(e.msg, "(and ");
    int listed = 0;
    for (const char *p = e.msg; (p = strstr(p, "conv.weight'")); p++)
        listed++;
    ck_assert_int_eq(listed + atoi(more + 5), N);

    /* Missing and unexpected tensors, both many (a file of other names, as
     * with a wrong load prefix): each list names some and counts the rest. */
    static frost_param_info other[N];
    static char other_names[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(other_names[i], sizeof other_names[i], "block%d.proj.weight", i);
        other[i] = (frost_param_info){other_names[i], 4 * i, -1, 1, {1}, F32, 1, 0, 1};
    }
    ck_assert_int_eq(frost_ckpt_save(tpath("other.safetensors"), params, other, N, &e), 0);
    rc = frost_ckpt_load(tpath("other.safetensors"), params, t, N, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING, "200 tensors missing from the file: 'layer0.conv.weight'");
    const char *second = strstr(e.msg, "; 200 tensors in the file not in the model: 'block");
    ck_assert_msg(second != NULL, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, " more); 200 tensors in the file") != NULL, "%s", e.msg);
    ck_assert_msg(strlen(e.msg) > 6 && !strcmp(e.msg + strlen(e.msg) - 6, " more)"), "%s", e.msg);
    ck_assert_uint_lt(strlen(e.msg), FROST_ERROR_MSG);
}
END_TEST

/* ---------------------------------------------------------------- partial loading */

/* A backbone and a head; the fine-tuning model has a head of another size. */
static const frost_param_info PRE[] = {
    {"body.weight", 0, 0, 2, {4, 8}, F32, 1, 0, 1},
    {"body.bias", 128, 128, 1, {4}, F32, 1, 0, 1},
    {"fc.weight", 192, 144, 2, {10, 4}, F32, 1, 0, 1},
    {"fc.bias", 384, 304, 1, {10}, F32, 1, 0, 1},
};
static const frost_param_info FT[] = {
    {"body.weight", 0, -1, 2, {4, 8}, F32, 0, 0, 1}, {"body.bias", 128, -1, 1, {4}, F32, 0, 0, 1},
    {"fc.weight", 192, 0, 2, {3, 4}, F32, 1, 0, 1},  {"fc.bias", 256, 48, 1, {3}, F32, 1, 0, 1},
    {"dropout.rng", 320, -1, 1, {2}, I64, 0, 1, 0},
};

START_TEST(test_skip_and_partial) {
    _Alignas(64) unsigned char pre[448], ft[384];
    fill_random(pre, sizeof pre, 4);
    frost_error e;
    const char *path = tpath("pre.safetensors");
    ck_assert_int_eq(frost_ckpt_save(path, pre, PRE, 4, &e), 0);

    /* Strict: the head does not fit. */
    memset(ft, 0x33, sizeof ft);
    int rc = frost_ckpt_load(path, ft, FT, 5, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_SHAPE,
               "shape mismatch: 'fc.weight' is [10, 4] in the file, the model wants [3, 4]; 'fc.bias' is [10] in "
               "the file, the model wants [3]");
    ck_assert(all_bytes(ft, sizeof ft, 0x33));

    /* Skip the head: the body is loaded, the head keeps its values. */
    const char *skip[] = {"fc.*", NULL};
    frost_load_options o = {.skip = skip};
    ck_assert_int_eq(frost_ckpt_load(path, ft, FT, 5, &o, &e), 0);
    ck_assert_msg(strstr(e.msg, "loaded 2 tensors from '") && strstr(e.msg, "'; 2 skipped"), "%s", e.msg);
    ck_assert_int_eq(memcmp(ft, pre, 144), 0);
    ck_assert(all_bytes(ft + 144, sizeof ft - 144, 0x33));

    /* Patterns: '?' is one character, '*' any run; an exact name matches only itself. */
    const char *skip2[] = {"fc.?eight", "f*s", NULL};
    o.skip = skip2;
    memset(ft, 0x33, sizeof ft);
    ck_assert_int_eq(frost_ckpt_load(path, ft, FT, 5, &o, &e), 0);
    const char *skip3[] = {"fc.weigh", "fc.bias", NULL};
    o.skip = skip3;
    rc = frost_ckpt_load(path, ft, FT, 5, &o, &e);
    EXPECT_ERR(rc, e, FROST_ERR_SHAPE, "'fc.weight' is [10, 4] in the file");
    ck_assert_ptr_null(strstr(e.msg, "fc.bias"));

    /* A checkpoint of the body only: missing head tensors, allowed or not. */
    ck_assert_int_eq(frost_ckpt_save(tpath("body"), pre, PRE, 2, &e), 0);
    rc = frost_ckpt_load(tpath("body"), ft, FT, 5, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING, "2 tensors missing from the file: 'fc.weight', 'fc.bias'");
    frost_load_options lenient = {.allow_missing = 1};
    memset(ft, 0x33, sizeof ft);
    ck_assert_int_eq(frost_ckpt_load(tpath("body"), ft, FT, 5, &lenient, &e), 0);
    ck_assert_msg(strstr(e.msg, "loaded 2 tensors") &&
                      strstr(e.msg, "missing, left as they were: 'fc.weight', 'fc.bias'"),
                  "%s", e.msg);
    ck_assert_int_eq(memcmp(ft, pre, 144), 0);
    ck_assert(all_bytes(ft + 144, sizeof ft - 144, 0x33));

    /* Loading into the body alone: the head tensors are unexpected. */
    rc = frost_ckpt_load(path, ft, FT, 2, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_UNEXPECTED, "2 tensors in the file not in the model: 'fc.bias', 'fc.weight'");
    lenient = (frost_load_options){.allow_unexpected = 1};
    ck_assert_int_eq(frost_ckpt_load(path, ft, FT, 2, &lenient, &e), 0);
    ck_assert_msg(strstr(e.msg, "; 2 unexpected ignored"), "%s", e.msg);

    /* Skipping applies to file tensors too: a skipped extra tensor is not unexpected. */
    o.skip = skip;
    ck_assert_int_eq(frost_ckpt_load(path, ft, FT, 2, &o, &e), 0);

    /* A non-persistent entry is neither saved nor loaded, even when a file has it. */
    frost_param_info withrng[5];
    memcpy(withrng, FT, sizeof withrng);
    withrng[4].persistent = 1; /* an old checkpoint that has the counter */
    fill_random(ft, sizeof ft, 5);
    ck_assert_int_eq(frost_ckpt_save(tpath("rng"), ft, withrng, 5, &e), 0);
    unsigned char ft2[384];
    memset(ft2, 0x44, sizeof ft2);
    ck_assert_int_eq(frost_ckpt_load(tpath("rng"), ft2, FT, 5, NULL, &e), 0);
    ck_assert_msg(strstr(e.msg, "loaded 4 tensors"), "%s", e.msg);
    ck_assert_int_eq(memcmp(ft2, ft, 144), 0);
    ck_assert_int_eq(memcmp(ft2 + 192, ft + 192, 48), 0);
    ck_assert_int_eq(memcmp(ft2 + 256, ft + 256, 12), 0);
    ck_assert(all_bytes(ft2 + 320, 16, 0x44));
    ck_assert_int_eq(frost_ckpt_save(tpath("norng"), ft, FT, 5, &e), 0);
    ck_assert_msg(strstr(e.msg, "saved 4 tensors"), "%s", e.msg);
}
END_TEST

/* ---------------------------------------------------------------- name prefix */

/* A model whose names carry a module prefix, as Hugging Face's
 * GPT2LMHeadModel ("transformer.wte.weight"), and an entry outside it. The
 * same tensors under the file names of GPT2Model ("wte.weight"). */
static const frost_param_info HF[] = {
    {"transformer.wte.weight", 0, -1, 2, {4, 3}, F32, 1, 0, 1},
    {"transformer.h.0.attn.c_attn.weight", 64, -1, 2, {3, 2}, F32, 1, 0, 1},
    {"transformer.ln_f.bias", 128, -1, 1, {3}, F32, 1, 0, 1},
    {"score.weight", 192, -1, 2, {2, 3}, F32, 1, 0, 1},
};
static const frost_param_info HF_BARE[] = {
    {"wte.weight", 0, -1, 2, {4, 3}, F32, 1, 0, 1},
    {"h.0.attn.c_attn.weight", 64, -1, 2, {3, 2}, F32, 1, 0, 1},
    {"ln_f.bias", 128, -1, 1, {3}, F32, 1, 0, 1},
    {"score.weight", 192, -1, 2, {2, 3}, F32, 1, 0, 1},
    /* non-parameter buffers of older checkpoints */
    {"h.0.attn.bias", 256, -1, 4, {1, 1, 2, 2}, U8, 0, 1, 1},
    {"h.0.attn.masked_bias", 320, -1, 0, {0}, F32, 0, 1, 1},
};

/* The bytes of HF's four entries in a params block. */
static int same_hf(const unsigned char *a, const unsigned char *b) {
    return !memcmp(a, b, 48) && !memcmp(a + 64, b + 64, 24) && !memcmp(a + 128, b + 128, 12) &&
           !memcmp(a + 192, b + 192, 24);
}

START_TEST(test_prefix) {
    _Alignas(64) unsigned char src[384], dst[384];
    fill_random(src, sizeof src, 7);
    frost_error e;
    const char *full = tpath("full.safetensors"), *bare = tpath("bare.safetensors"), *old = tpath("old.safetensors");
    ck_assert_int_eq(frost_ckpt_save(full, src, HF, 4, &e), 0);
    ck_assert_int_eq(frost_ckpt_save(bare, src, HF_BARE, 4, &e), 0);
    ck_assert_int_eq(frost_ckpt_save(old, src, HF_BARE, 6, &e), 0);

    /* Names as they are; "" is no prefix. */
    frost_load_options o = {.prefix = ""};
    memset(dst, 0x33, sizeof dst);
    ck_assert_msg(frost_ckpt_load(full, dst, HF, 4, &o, &e) == 0, "%s", e.msg);
    ck_assert(same_hf(dst, src));
    ck_assert_ptr_null(strstr(e.msg, "prefix"));

    /* The file lacks the prefix: entries under it load without it, the
     * others (score.weight) under their own names. */
    o.prefix = "transformer.";
    memset(dst, 0x33, sizeof dst);
    ck_assert_msg(frost_ckpt_load(bare, dst, HF, 4, &o, &e) == 0, "%s", e.msg);
    ck_assert(same_hf(dst, src));
    ck_assert_msg(strstr(e.msg, "loaded 4 tensors from '") &&
                      strstr(e.msg, "' (names without the prefix 'transformer.')"),
                  "%s", e.msg);

    /* Without the prefix option that file does not fit. */
    memset(dst, 0x33, sizeof dst);
    int rc = frost_ckpt_load(bare, dst, HF, 4, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING,
               "3 tensors missing from the file: 'transformer.wte.weight', 'transformer.h.0.attn.c_attn.weight', "
               "'transformer.ln_f.bias'; 3 tensors in the file not in the model: 'h.0.attn.c_attn.weight', "
               "'ln_f.bias', 'wte.weight'");
    ck_assert(all_bytes(dst, sizeof dst, 0x33));

    /* A prefix the file's names do have, or a wrong one: an error naming the
     * names looked for, and params untouched. */
    rc = frost_ckpt_load(full, dst, HF, 4, &o, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING,
               "3 tensors missing from the file (looked up without the prefix 'transformer.'): 'wte.weight', "
               "'h.0.attn.c_attn.weight', 'ln_f.bias'; 3 tensors in the file not in the model: "
               "'transformer.h.0.attn.c_attn.weight', 'transformer.ln_f.bias', 'transformer.wte.weight'");
    ck_assert(all_bytes(dst, sizeof dst, 0x33));
    o.prefix = "model.";
    rc = frost_ckpt_load(bare, dst, HF, 4, &o, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING,
               "3 tensors missing from the file (looked up without the prefix 'model.'): 'transformer.wte.weight', "
               "'transformer.h.0.attn.c_attn.weight', 'transformer.ln_f.bias'");
    ck_assert(all_bytes(dst, sizeof dst, 0x33));
    o.prefix = "transformer"; /* no dot: ".wte.weight" */
    rc = frost_ckpt_load(bare, dst, HF, 4, &o, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING, "(looked up without the prefix 'transformer'): '.wte.weight'");

    /* Skip patterns with a prefix: buffers the model does not have, matched
     * in the file's form or the table's. */
    o.prefix = "transformer.";
    rc = frost_ckpt_load(old, dst, HF, 4, &o, &e);
    EXPECT_ERR(rc, e, FROST_ERR_UNEXPECTED,
               "2 tensors in the file not in the model: 'h.0.attn.bias', 'h.0.attn.masked_bias'");
    const char *skip_buffers[] = {"*.attn.bias", "transformer.h.?.attn.masked_bias", NULL};
    o.skip = skip_buffers;
    memset(dst, 0x33, sizeof dst);
    ck_assert_msg(frost_ckpt_load(old, dst, HF, 4, &o, &e) == 0, "%s", e.msg);
    ck_assert(same_hf(dst, src));
    ck_assert_msg(strstr(e.msg, "loaded 4 tensors") && !strstr(e.msg, "skipped"), "%s", e.msg);
    /* ... and table entries, by either name; a '*' may span the prefix's end. */
    const char *skip_entries[] = {"wte.*", "transformer.ln_f.bias", "*.attn.*", NULL};
    o.skip = skip_entries;
    memset(dst, 0x33, sizeof dst);
    ck_assert_msg(frost_ckpt_load(old, dst, HF, 4, &o, &e) == 0, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "loaded 1 tensor from '") && strstr(e.msg, "; 3 skipped"), "%s", e.msg);
    ck_assert(all_bytes(dst, 192, 0x33));
    ck_assert_int_eq(memcmp(dst + 192, src + 192, 24), 0);
    const char *skip_span[] = {"transf*wte.weight", "*.attn.*", NULL};
    o.skip = skip_span;
    memset(dst, 0x33, sizeof dst);
    ck_assert_msg(frost_ckpt_load(old, dst, HF, 4, &o, &e) == 0, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "loaded 2 tensors") && strstr(e.msg, "; 2 skipped"), "%s", e.msg);
    ck_assert(all_bytes(dst, 48, 0x33));

    /* A buffer in a dtype frost does not have (transformers' bool causal
     * mask), skipped: it is never read. */
    static const frost_param_info lnf[] = {{"transformer.ln_f.bias", 0, -1, 1, {3}, F32, 1, 0, 1}};
    float bias[3] = {1.5f, -2.0f, 0.25f};
    unsigned char data[16];
    memcpy(data, bias, 12);
    memset(data + 12, 1, 4);
    write_st(tpath("bool.safetensors"),
             "{\"ln_f.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
             "\"h.0.attn.bias\":{\"dtype\":\"BOOL\",\"shape\":[1,1,2,2],\"data_offsets\":[12,16]}}",
             data, sizeof data);
    o.skip = skip_buffers;
    memset(dst, 0, sizeof dst);
    ck_assert_msg(frost_ckpt_load(tpath("bool.safetensors"), dst, lnf, 1, &o, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(memcmp(dst, bias, 12), 0);

    /* Two entries that would load one file tensor. */
    static const frost_param_info twice[] = {
        {"transformer.ln_f.bias", 0, -1, 1, {3}, F32, 1, 0, 1},
        {"ln_f.bias", 64, -1, 1, {3}, F32, 1, 0, 1},
    };
    o = (frost_load_options){.prefix = "transformer."};
    rc = frost_ckpt_load(bare, dst, twice, 2, &o, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG,
               "with the prefix 'transformer.', table entries 'transformer.ln_f.bias' and 'ln_f.bias' would both "
               "load the file's 'ln_f.bias'");
    o.prefix = NULL; /* no prefix, no clash: strictness as usual */
    o.allow_unexpected = 1;
    ck_assert_msg(frost_ckpt_load(bare, dst, twice + 1, 1, &o, &e) == 0, "%s", e.msg);
}
END_TEST

/* ---------------------------------------------------------------- PyTorch */

START_TEST(test_torch_fixture) {
    /* The fixture's tensors in frost's order (not the file's), 64-aligned. */
    frost_param_info t[TORCH_FIXTURE_COUNT];
    int64_t off = 0;
    for (int i = 0; i < TORCH_FIXTURE_COUNT; i++) {
        const torch_fixture_tensor *x = &torch_fixture[i];
        t[i] = (frost_param_info){x->name, off, -1, x->rank, {x->shape[0], x->shape[1]}, x->dtype, 1, 0, 1};
        off += (x->count * (x->dtype == I64 ? 8 : 4) + 63) / 64 * 64;
    }
    ck_assert_int_eq(t[6].dtype, I64);
    ck_assert_int_eq(t[6].rank, 0);
    ck_assert_str_eq(t[6].name, "bn.num_batches_tracked");
    unsigned char *params = aligned_alloc(64, (size_t)off);
    memset(params, 0, (size_t)off);
    const char *path = FROST_SOURCE_ROOT "/tests/fixtures/torch_mlp_bn.safetensors";
    frost_error e;
    ck_assert_msg(frost_ckpt_load(path, params, t, TORCH_FIXTURE_COUNT, NULL, &e) == 0, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "loaded 9 tensors"), "%s", e.msg);
    for (int i = 0; i < TORCH_FIXTURE_COUNT; i++) {
        const torch_fixture_tensor *x = &torch_fixture[i];
        if (x->dtype == I64) {
            int64_t v;
            memcpy(&v, params + t[i].offset, 8);
            ck_assert_int_eq(v, x->i64[0]);
            ck_assert_int_eq(v, 3);
        } else {
            for (int k = 0; k < x->count; k++) {
                float v;
                memcpy(&v, params + t[i].offset + 4 * k, 4);
                ck_assert_msg(memcmp(&v, &x->f32[k], 4) == 0, "%s[%d]: %a, want %a", x->name, k, v, x->f32[k]);
            }
        }
    }
    /* Running variance near 1, as three steps of momentum 0.1 from 1 leave it. */
    const float *rv = (const float *)(params + t[5].offset);
    ck_assert_str_eq(t[5].name, "bn.running_var");
    for (int k = 0; k < 4; k++)
        ck_assert(rv[k] > 0.5f && rv[k] < 1.5f);

    /* Saved by frost and loaded again: the same values. */
    unsigned char *again = aligned_alloc(64, (size_t)off);
    ck_assert_int_eq(frost_ckpt_save(tpath("resaved.safetensors"), params, t, TORCH_FIXTURE_COUNT, &e), 0);
    ck_assert_int_eq(frost_ckpt_load(tpath("resaved.safetensors"), again, t, TORCH_FIXTURE_COUNT, NULL, &e), 0);
    for (int i = 0; i < TORCH_FIXTURE_COUNT; i++)
        ck_assert_int_eq(memcmp(again + t[i].offset, params + t[i].offset,
                                (size_t)torch_fixture[i].count * (t[i].dtype == I64 ? 8 : 4)),
                         0);

    /* The counter as i32: refused, not converted. */
    t[6].dtype = I32;
    int rc = frost_ckpt_load(path, params, t, TORCH_FIXTURE_COUNT, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_DTYPE,
               "dtype mismatch: 'bn.num_batches_tracked' is I64 in the file, the model wants I32");
    t[6].dtype = I64;

    /* examples/mlp.frost's head differs (10 classes, 512 hidden): load only bn.* and fc1.bias. */
    t[0].shape[0] = 512;
    t[0].shape[1] = 784;
    const char *skip[] = {"fc?.weight", "fc2.*", NULL};
    frost_load_options o = {.skip = skip};
    ck_assert_msg(frost_ckpt_load(path, params, t, TORCH_FIXTURE_COUNT, &o, &e) == 0, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "loaded 6 tensors") && strstr(e.msg, "3 skipped"), "%s", e.msg);
    free(params);
    free(again);
}
END_TEST

/* ---------------------------------------------------------------- LoRA adapters */

/* A LoRA object with two adapted layers: a ([3, 4] weight, bias) and b, a
 * GPT-2-style in_out weight [in 3, out 5] with rsLoRA; a dropout RNG buffer. */
static const frost_param_info LT[] = {
    {"a.weight", 0, -1, 2, {3, 4}, F32, 0, 0, 1},           {"a.bias", 64, -1, 1, {3}, F32, 0, 0, 1},
    {"a.lora_A.weight", 128, 0, 2, {2, 4}, F32, 1, 0, 1},   {"a.lora_B.weight", 192, 64, 2, {3, 2}, F32, 1, 0, 1},
    {"b.weight", 256, -1, 2, {3, 5}, F32, 0, 0, 1},         {"b.lora_A.weight", 320, 128, 2, {2, 3}, F32, 1, 0, 1},
    {"b.lora_B.weight", 384, 192, 2, {5, 2}, F32, 1, 0, 1}, {"b.lora_dropout.rng_state", 448, -1, 0, {0}, I64, 0, 1, 0},
};
static const frost_adapter_info LT_ADAPTERS[] = {
    {"a", 0, 2, 3, 2, 4.0, 2.0, 0.0, 0, 0},
    {"b", 4, 5, 6, 2, 2.0, 1.4142135623730951, 0.1, 1, 1},
};
/* The same model without adapters. */
static const frost_param_info BT[] = {
    {"a.weight", 0, 0, 2, {3, 4}, F32, 1, 0, 1},
    {"a.bias", 64, 64, 1, {3}, F32, 1, 0, 1},
    {"b.weight", 128, 128, 2, {3, 5}, F32, 1, 0, 1},
};
/* Layer a adapted alone; layer a at rank 1. */
static const frost_param_info LT_A[] = {
    {"a.weight", 0, -1, 2, {3, 4}, F32, 0, 0, 1},         {"a.bias", 64, -1, 1, {3}, F32, 0, 0, 1},
    {"a.lora_A.weight", 128, 0, 2, {2, 4}, F32, 1, 0, 1}, {"a.lora_B.weight", 192, 64, 2, {3, 2}, F32, 1, 0, 1},
    {"b.weight", 256, -1, 2, {3, 5}, F32, 0, 0, 1},
};
static const frost_param_info LT_R1[] = {
    {"a.weight", 0, -1, 2, {3, 4}, F32, 0, 0, 1},           {"a.bias", 64, -1, 1, {3}, F32, 0, 0, 1},
    {"a.lora_A.weight", 128, 0, 2, {1, 4}, F32, 1, 0, 1},   {"a.lora_B.weight", 192, 64, 2, {3, 1}, F32, 1, 0, 1},
    {"b.weight", 256, -1, 2, {3, 5}, F32, 0, 0, 1},         {"b.lora_A.weight", 320, 128, 2, {2, 3}, F32, 1, 0, 1},
    {"b.lora_B.weight", 384, 192, 2, {5, 2}, F32, 1, 0, 1},
};

/* The adapter bytes of two LT blocks agree. */
static int same_adapters(const unsigned char *x, const unsigned char *y) {
    return !memcmp(x + 128, y + 128, 32) && !memcmp(x + 192, y + 192, 24) && !memcmp(x + 320, y + 320, 24) &&
           !memcmp(x + 384, y + 384, 40);
}

static void fill_floats(void *p, size_t bytes, unsigned seed) {
    float *f = p;
    srand(seed);
    for (size_t i = 0; i < bytes / 4; i++)
        f[i] = (float)rand() / (float)RAND_MAX - 0.5f;
}

START_TEST(test_lora_files) {
    _Alignas(64) unsigned char lo[512], back[512], base[192];
    fill_floats(lo, sizeof lo, 11);
    frost_error e;

    /* Saved alone, under PEFT's names; loaded back with or without the prefix. */
    char path[600]; /* kept: tpath's buffers rotate */
    snprintf(path, sizeof path, "%s", tpath("adapter_model.safetensors"));
    ck_assert_msg(frost_lora_save(path, lo, LT, 8, &e) == 0, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "saved 4 tensors"), "%s", e.msg);
    size_t n;
    char *file = (char *)read_bytes(path, &n);
    ck_assert_ptr_nonnull(strstr(file + 8, "\"base_model.model.a.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[2,4]"));
    ck_assert_ptr_nonnull(strstr(file + 8, "\"base_model.model.b.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[5,2]"));
    ck_assert_ptr_null(strstr(file + 8, "a.weight"));
    ck_assert_ptr_null(strstr(file + 8, "rng_state"));
    free(file);
    memset(back, 0x5a, sizeof back);
    ck_assert_msg(frost_lora_load(path, back, LT, 8, &e) == 0, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "loaded 4 tensors") && strstr(e.msg, "the file's prefix 'base_model.model.' removed"),
                  "%s", e.msg);
    ck_assert(same_adapters(back, lo));
    ck_assert(all_bytes(back, 128, 0x5a)); /* the base is left alone */
    ck_assert(all_bytes(back + 256, 64, 0x5a));
    const char *only[] = {"*.lora_?.weight", NULL};
    frost_save_options bare = {.only = only};
    ck_assert_msg(frost_ckpt_save_ex(tpath("bare"), lo, LT, 8, &bare, &e) == 0, "%s", e.msg);
    memset(back, 0x5a, sizeof back);
    ck_assert_msg(frost_lora_load(tpath("bare"), back, LT, 8, &e) == 0, "%s", e.msg);
    ck_assert(same_adapters(back, lo));

    /* A base checkpoint into the LoRA object: the base loads, the adapters are absent, not an error. */
    fill_floats(base, sizeof base, 12);
    ck_assert_msg(frost_ckpt_save(tpath("base"), base, BT, 3, &e) == 0, "%s", e.msg);
    memcpy(back, lo, sizeof back);
    ck_assert_msg(frost_ckpt_load(tpath("base"), back, LT, 8, NULL, &e) == 0, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "loaded 3 tensors") &&
                      strstr(e.msg, "4 adapter tensors absent (a base checkpoint), left as they were"),
                  "%s", e.msg);
    ck_assert(!memcmp(back, base, 48) && !memcmp(back + 64, base + 64, 12));
    ck_assert_int_eq(memcmp(back + 256, base + 128, 60), 0);
    ck_assert(same_adapters(back, lo));
    /* ... but an adapter file must have them all, and the adapter loader wants adapters. */
    int rc = frost_lora_load(tpath("base"), back, LT, 8, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING, "4 tensors missing from the file: 'a.lora_A.weight', 'a.lora_B.weight'");
    rc = frost_lora_save(tpath("none"), base, BT, 3, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "the table has no adapter tensors");
    ck_assert_int_eq(access(tpath("none"), F_OK), -1);

    /* A layer without its adapter in the file, a file adapter for a layer the model lacks, another rank. */
    ck_assert_msg(frost_lora_save(tpath("only_a"), lo, LT_A, 5, &e) == 0, "%s", e.msg);
    rc = frost_lora_load(tpath("only_a"), back, LT, 8, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING, "2 tensors missing from the file: 'b.lora_A.weight', 'b.lora_B.weight'");
    rc = frost_ckpt_load(tpath("only_a"), back, LT, 8, NULL, &e); /* some adapters: not a base checkpoint */
    EXPECT_ERR(rc, e, FROST_ERR_MISSING, "'b.lora_A.weight'");
    rc = frost_lora_load(path, back, LT_A, 5, &e);
    EXPECT_ERR(rc, e, FROST_ERR_UNEXPECTED,
               "2 tensors in the file not in the model: 'b.lora_A.weight', 'b.lora_B.weight'");
    memcpy(back, lo, sizeof back);
    rc = frost_lora_load(path, back, LT_R1, 7, &e);
    EXPECT_ERR(rc, e, FROST_ERR_SHAPE,
               "shape mismatch: 'a.lora_A.weight' is [2, 4] in the file, the model wants [1, 4]; 'a.lora_B.weight' is "
               "[3, 2] in the file, the model wants [3, 1]");
    ck_assert_int_eq(memcmp(back, lo, sizeof back), 0);

    /* One tensor under both names. */
    float two[2] = {1, 2};
    write_st(tpath("twice"),
             "{\"base_model.model.a.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"a.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             two, sizeof two);
    rc = frost_lora_load(tpath("twice"), back, LT, 8, &e);
    EXPECT_ERR(
        rc, e, FROST_ERR_FORMAT,
        "tensor 'a.lora_A.weight' appears twice in the header (with the prefix 'base_model.model.' and without)");

    /* Selecting nothing to save is an error; skip and only combine. */
    const char *nothing[] = {"x.*", NULL};
    frost_save_options none = {.only = nothing};
    rc = frost_ckpt_save_ex(tpath("empty"), lo, LT, 8, &none, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "no table entry is selected: nothing to save");
    const char *skip_b[] = {"b.*", NULL};
    frost_save_options some = {.only = only, .skip = skip_b, .prefix = "m."};
    ck_assert_msg(frost_ckpt_save_ex(tpath("some"), lo, LT, 8, &some, &e) == 0, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "saved 2 tensors"), "%s", e.msg);
    file = (char *)read_bytes(tpath("some"), &n);
    ck_assert_ptr_nonnull(strstr(file + 8, "\"m.a.lora_B.weight\""));
    free(file);
}
END_TEST

START_TEST(test_lora_merge) {
    _Alignas(64) unsigned char lo[512], merged[192];
    fill_floats(lo, sizeof lo, 21);
    frost_error e;
    memset(merged, 0x77, sizeof merged);
    ck_assert_msg(frost_lora_merge(merged, BT, 3, lo, LT, 8, LT_ADAPTERS, 2, &e) == 0, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "merged 2 adapters into a copy of 3 tensors"), "%s", e.msg);
    const float *w = (const float *)lo, *a = (const float *)(lo + 128), *b = (const float *)(lo + 192);
    const float *m = (const float *)merged;
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < 4; i++) {
            double want = w[o * 4 + i] + 2.0 * (b[o * 2] * (double)a[i] + b[o * 2 + 1] * (double)a[4 + i]);
            ck_assert_msg(fabs(m[o * 4 + i] - want) < 1e-6, "a.weight[%d][%d] = %g, want %g", o, i, m[o * 4 + i], want);
        }
    ck_assert_int_eq(memcmp(merged + 64, lo + 64, 12), 0);
    /* b: W [in 3, out 5] += scale (B [5, 2] A [2, 3])^T */
    w = (const float *)(lo + 256), a = (const float *)(lo + 320), b = (const float *)(lo + 384);
    m = (const float *)(merged + 128);
    for (int i = 0; i < 3; i++)
        for (int o = 0; o < 5; o++) {
            double want =
                w[i * 5 + o] + 1.4142135623730951 * (b[o * 2] * (double)a[i] + b[o * 2 + 1] * (double)a[3 + i]);
            ck_assert_msg(fabs(m[i * 5 + o] - want) < 1e-6, "b.weight[%d][%d] = %g, want %g", i, o, m[i * 5 + o], want);
        }

    /* Mismatches, each named; dst untouched. */
    memset(merged, 0x77, sizeof merged);
    frost_adapter_info bad[2];
    memcpy(bad, LT_ADAPTERS, sizeof bad);
    bad[0].r = 3;
    int rc = frost_lora_merge(merged, BT, 3, lo, LT, 8, bad, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_SHAPE, "'a.lora_A.weight' is [2, 4]; adapter 'a' (r = 3, weight [3, 4]) wants [3, 4]");
    memcpy(bad, LT_ADAPTERS, sizeof bad);
    bad[1].in_out = 0;
    rc = frost_lora_merge(merged, BT, 3, lo, LT, 8, bad, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_SHAPE, "'b.lora_A.weight' is [2, 3]; adapter 'b' (r = 2, weight [3, 5]) wants [2, 5]");
    bad[1].lora_B = 9;
    rc = frost_lora_merge(merged, BT, 3, lo, LT, 8, bad, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "adapter 1 ('b') names table entry 9, outside the table");
    rc = frost_lora_merge(merged, LT_A, 5, lo, LT, 8, LT_ADAPTERS, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_UNEXPECTED, "the destination has the adapter tensor 'a.lora_A.weight'");
    rc = frost_lora_merge(merged, BT, 3, lo, LT, 8, LT_ADAPTERS, 1, &e); /* b's adapter not merged: its tensors stray */
    EXPECT_ERR(rc, e, FROST_ERR_UNEXPECTED,
               "tensors of the source not in the destination: 'b.lora_A.weight', 'b.lora_B.weight'");
    frost_param_info wider[4];
    memcpy(wider, BT, sizeof BT);
    wider[3] = (frost_param_info){"c.weight", 160, -1, 1, {4}, F32, 0, 0, 1};
    rc = frost_lora_merge(merged, wider, 4, lo, LT, 8, LT_ADAPTERS, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_MISSING, "tensors of the destination missing from the source: 'c.weight'");
    wider[2].shape[1] = 4;
    rc = frost_lora_merge(merged, wider, 3, lo, LT, 8, LT_ADAPTERS, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_SHAPE,
               "'b.weight' is [3, 5] (dtype 0) in the source, [3, 4] (dtype 0) in the destination");
    ck_assert(all_bytes(merged, sizeof merged, 0x77));
    rc = frost_lora_merge(lo + 64, BT, 3, lo, LT, 8, LT_ADAPTERS, 2, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "the destination and source blocks overlap");
}
END_TEST

/* ---------------------------------------------------------------- generated headers */

static void run(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

START_TEST(test_generated_header) {
    /* A real model's table through the library, the headers in both orders. */
    run("'%s' compile '%s/examples/mlp.frost' -o '%s/mlp.o' --header '%s/mlp.h' 2>&1", FROST_EXE, FROST_SOURCE_ROOT,
        tmpdir, tmpdir);
    write_text(tpath("other.c"), "#include \"mlp.h\"\n#include \"frost_support.h\"\n"
                                 "const frost_param_info *other_table(void) { return &mlp_params[0]; }\n"
                                 "int other_dtype(void) { return mlp_params[0].dtype == FROST_DTYPE_F32; }\n");
    write_text(
        tpath("driver.c"),
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
        "#include \"frost_support.h\"\n#include \"mlp.h\"\n"
        "const frost_param_info *other_table(void);\nint other_dtype(void);\n"
        "int main(int argc, char **argv) {\n"
        "    (void)argc;\n"
        "    frost_error e;\n"
        "    const mlp_param_info *t = mlp_params;\n"
        "    const frost_param_info *o = other_table();\n"
        "    if (strcmp(o->name, t[0].name) || o->offset != t[0].offset || !other_dtype() || !t[0].persistent)\n"
        "        return 2;\n"
        "    char *a = aligned_alloc(MLP_ALIGN, MLP_PARAMS_BYTES), *b = aligned_alloc(MLP_ALIGN, MLP_PARAMS_BYTES);\n"
        "    memset(a, 0, MLP_PARAMS_BYTES);\n"
        "    memset(b, 0, MLP_PARAMS_BYTES);\n"
        "    mlp_init(a, 42);\n"
        "    if (frost_ckpt_save(argv[1], a, mlp_params, MLP_NUM_PARAMS, &e)) { puts(e.msg); return 3; }\n"
        "    if (frost_ckpt_load(argv[1], b, mlp_params, MLP_NUM_PARAMS, NULL, &e)) { puts(e.msg); return 4; }\n"
        "    puts(e.msg);\n"
        "    if (memcmp(a, b, MLP_PARAMS_BYTES)) return 5;\n"
        "    free(a); free(b);\n"
        "    return 0;\n"
        "}\n");
    /* A library built with sanitizers (b_sanitize) needs their runtimes. */
    const char *lib = FROST_BUILD_ROOT "/support/libfrost_support.a";
    run("cd '%s' && san= && if nm '%s' | grep -q __asan_; then san=\"$san -fsanitize=address\"; fi && "
        "if nm '%s' | grep -q __ubsan_; then san=\"$san -fsanitize=undefined\"; fi && "
        "cc -std=c11 -Wall -Wextra -Werror -pedantic $san -I. -I'%s/support' driver.c other.c mlp.o '%s' "
        "-lz -lopenblas -lm -o driver 2>&1",
        tmpdir, lib, lib, FROST_SOURCE_ROOT, lib);
    run("cd '%s' && ./driver mlp.safetensors > out.txt", tmpdir);
    size_t n;
    char *out = (char *)read_bytes(tpath("out.txt"), &n);
    ck_assert_msg(strstr(out, "loaded 4 tensors from 'mlp.safetensors'"), "%s", out);
    free(out);
    /* A model with batch norm (an i64 counter) and dropout (a non-persistent
     * i64 RNG state): the counter is saved and restored, the RNG state is
     * neither saved nor overwritten. */
    write_text(tpath("tinybn.frost"), "model tinybn\n"
                                      "input x     : f32[4, 2, 3, 3]\n"
                                      "input label : i32[4]\n"
                                      "conv = conv2d(x, 3, 3, padding=1, bias=false)\n"
                                      "bn   = batchnorm2d(conv)\n"
                                      "h    = relu(bn)\n"
                                      "flat = flatten(h)\n"
                                      "drop = dropout(flat, p=0.5)\n"
                                      "fc   = linear(drop, 5)\n"
                                      "loss = cross_entropy(fc, label)\n"
                                      "output loss\n");
    run("cd '%s' && '%s' compile tinybn.frost -o tinybn.o --header tinybn.h 2>&1", tmpdir, FROST_EXE);
    write_text(
        tpath("bn.c"),
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
        "#include \"tinybn.h\"\n#include \"frost_support.h\"\n"
        "static const frost_param_info *find(const char *name) {\n"
        "    for (int i = 0; i < TINYBN_NUM_PARAMS; i++)\n"
        "        if (!strcmp(tinybn_params[i].name, name)) return &tinybn_params[i];\n"
        "    exit(10);\n"
        "}\n"
        "int main(void) {\n"
        "    frost_error e;\n"
        "    const frost_param_info *nbt = find(\"bn.num_batches_tracked\"), *rng = find(\"drop.rng_state\");\n"
        "    if (nbt->dtype != FROST_DTYPE_I64 || nbt->rank != 0 || !nbt->persistent || !nbt->is_buffer) return 2;\n"
        "    if (rng->dtype != FROST_DTYPE_I64 || rng->persistent) return 3;\n"
        "    char *a = aligned_alloc(TINYBN_ALIGN, TINYBN_PARAMS_BYTES), *b = aligned_alloc(TINYBN_ALIGN, "
        "TINYBN_PARAMS_BYTES);\n"
        "    void *arena = aligned_alloc(TINYBN_ALIGN, TINYBN_TRAIN_ARENA_BYTES);\n"
        "    memset(a, 0, TINYBN_PARAMS_BYTES);\n"
        "    tinybn_init(a, 7);\n"
        "    float x[72]; int32_t label[4] = {0, 1, 2, 3}; float loss;\n"
        "    for (int i = 0; i < 72; i++) x[i] = (float)(i % 11) / 11.0f;\n"
        "    tinybn_inputs in = {x, label}; tinybn_outputs out = {&loss};\n"
        "    for (int k = 0; k < 3; k++) if (tinybn_forward(a, &in, &out, arena)) return 4;\n"
        "    int64_t n, r = 777;\n"
        "    memcpy(&n, a + nbt->offset, 8);\n"
        "    if (n != 3) return 5;\n"
        "    if (frost_ckpt_save(\"bn.safetensors\", a, tinybn_params, TINYBN_NUM_PARAMS, &e)) { puts(e.msg); return "
        "6; }\n"
        "    memset(b, 0, TINYBN_PARAMS_BYTES);\n"
        "    memcpy(b + rng->offset, &r, 8);\n"
        "    if (frost_ckpt_load(\"bn.safetensors\", b, tinybn_params, TINYBN_NUM_PARAMS, NULL, &e)) { puts(e.msg); "
        "return 7; }\n"
        "    puts(e.msg);\n"
        "    memcpy(&r, b + rng->offset, 8);\n"
        "    memcpy(&n, b + nbt->offset, 8);\n"
        "    if (r != 777 || n != 3) return 8;\n"
        "    memcpy(b + rng->offset, a + rng->offset, 8);\n"
        "    if (memcmp(a, b, TINYBN_PARAMS_BYTES)) return 9;\n"
        "    free(a); free(b); free(arena);\n"
        "    return 0;\n"
        "}\n");
    run("cd '%s' && san= && if nm '%s' | grep -q __asan_; then san=\"$san -fsanitize=address\"; fi && "
        "if nm '%s' | grep -q __ubsan_; then san=\"$san -fsanitize=undefined\"; fi && "
        "cc -std=c11 -Wall -Wextra -Werror -pedantic $san -I. -I'%s/support' bn.c tinybn.o '%s' "
        "-lz -lopenblas -lm -o bn 2>&1",
        tmpdir, lib, lib, FROST_SOURCE_ROOT, lib);
    run("cd '%s' && ./bn > bn.txt", tmpdir);
    out = (char *)read_bytes(tpath("bn.txt"), &n);
    ck_assert_msg(strstr(out, "loaded 8 tensors from 'bn.safetensors'"), "%s", out);
    free(out);
    out = (char *)read_bytes(tpath("bn.safetensors"), &n);
    ck_assert_ptr_nonnull(strstr(out + 8, "\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[]"));
    ck_assert_ptr_null(strstr(out + 8, "rng_state"));
    free(out);

    /* And as C++. */
    if (system("command -v c++ > /dev/null 2>&1") == 0)
        run("cd '%s' && c++ -x c++ -std=c++11 -Wall -Wextra -Werror -I. -I'%s/support' -fsyntax-only other.c 2>&1",
            tmpdir, FROST_SOURCE_ROOT);
}
END_TEST

/* ---------------------------------------------------------------- IDX */

/* An IDX file: magic, dims, then `data` (n bytes), plain or gzip. */
static void write_idx(const char *path, uint32_t magic, const uint32_t *dims, int nd, const void *data, size_t n,
                      int gz) {
    unsigned char h[4 + 4 * 8];
    for (int k = 0; k < 4; k++)
        h[k] = (unsigned char)(magic >> (24 - 8 * k));
    for (int i = 0; i < nd; i++)
        for (int k = 0; k < 4; k++)
            h[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
    if (!gz) {
        unsigned char *b = malloc(4 + 4 * (size_t)nd + n + 1);
        memcpy(b, h, 4 + 4 * (size_t)nd);
        if (n)
            memcpy(b + 4 + 4 * nd, data, n);
        write_bytes(path, b, 4 + 4 * (size_t)nd + n);
        free(b);
        return;
    }
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, h, 4 + 4 * (unsigned)nd), 4 + 4 * nd);
    if (n)
        ck_assert_int_eq(gzwrite(f, data, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

static const uint32_t IM_DIMS[] = {5, 3, 2};
static const uint32_t LB_DIMS[] = {5};
static unsigned char im_data[30], lb_data[5] = {3, 0, 7, 1, 3};

static void make_pair(const char *images, const char *labels, int gz) {
    for (int i = 0; i < 30; i++)
        im_data[i] = (unsigned char)(i * 37 % 256);
    im_data[0] = 0;
    im_data[1] = 255;
    write_idx(images, 0x803, IM_DIMS, 3, im_data, 30, gz);
    write_idx(labels, 0x801, LB_DIMS, 1, lb_data, 5, gz);
}

START_TEST(test_idx_load) {
    frost_error e;
    for (int gz = 0; gz <= 1; gz++) {
        const char *im = tpath(gz ? "im.gz" : "im"), *lb = tpath(gz ? "lb.gz" : "lb");
        make_pair(im, lb, gz);
        frost_idx x;
        ck_assert_msg(frost_idx_load(im, &x, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(x.ndims, 3);
        ck_assert_int_eq(x.dims[0], 5);
        ck_assert_int_eq(x.dims[1], 3);
        ck_assert_int_eq(x.dims[2], 2);
        ck_assert_int_eq(x.size, 30);
        ck_assert_int_eq(memcmp(x.data, im_data, 30), 0);
        ck_assert_msg(strstr(e.msg, "[5, 3, 2] unsigned bytes"), "%s", e.msg);
        frost_idx_free(&x);
        ck_assert_ptr_null(x.data);
        frost_idx_free(&x); /* twice is fine */

        frost_dataset ds;
        ck_assert_msg(frost_dataset_load(im, lb, 0.0f, 1.0f, &ds, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(ds.count, 5);
        ck_assert_int_eq(ds.rows, 3);
        ck_assert_int_eq(ds.cols, 2);
        ck_assert_int_eq(ds.features, 6);
        ck_assert_int_eq(ds.classes, 8);
        ck_assert(ds.images[0] == 0.0f && ds.images[1] == 1.0f);
        for (int i = 0; i < 30; i++)
            ck_assert(ds.images[i] == (float)im_data[i] / 255.0f);
        for (int i = 0; i < 5; i++)
            ck_assert_int_eq(ds.labels[i], lb_data[i]);
        frost_dataset_free(&ds);

        ck_assert_int_eq(frost_dataset_load(im, lb, 0.5f, 0.25f, &ds, &e), 0);
        ck_assert(ds.images[0] == -2.0f && ds.images[1] == 2.0f);
        ck_assert(fabsf(ds.images[7] - ((float)im_data[7] / 255.0f - 0.5f) / 0.25f) < 1e-6f);
        frost_dataset_free(&ds);
    }

    /* The usual names in a directory; plain files when there is no .gz. */
    ck_assert_int_eq(mkdir(tpath("mn"), 0777), 0);
    make_pair(tpath("mn/train-images-idx3-ubyte.gz"), tpath("mn/train-labels-idx1-ubyte.gz"), 1);
    make_pair(tpath("mn/t10k-images-idx3-ubyte"), tpath("mn/t10k-labels-idx1-ubyte"), 0);
    frost_dataset ds;
    ck_assert_msg(frost_dataset_load_mnist(tpath("mn"), "train", 0, 1, &ds, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(ds.count, 5);
    frost_dataset_free(&ds);
    ck_assert_msg(frost_dataset_load_mnist(tpath("mn"), "t10k", 0, 1, &ds, &e) == 0, "%s", e.msg);
    frost_dataset_free(&ds);
    int rc = frost_dataset_load_mnist(tpath("mn"), "val", 0, 1, &ds, &e);
    EXPECT_ERR(rc, e, FROST_ERR_IO, "mn/val-images-idx3-ubyte.gz': No such file or directory");
    rc = frost_dataset_load(tpath("im"), tpath("lb"), 0, 0, &ds, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "std must be positive");
}
END_TEST

START_TEST(test_idx_errors) {
    frost_error e;
    frost_idx x;
    unsigned char d[64];
    fill_random(d, sizeof d, 6);
    int rc;
#define IDX_ERR(path, code, text)          \
    do {                                   \
        memset(&x, 0x11, sizeof x);        \
        rc = frost_idx_load(path, &x, &e); \
        EXPECT_ERR(rc, e, code, text);     \
        ck_assert_ptr_null(x.data);        \
        ck_assert_int_eq(x.ndims, 0);      \
    } while (0)

    IDX_ERR(tpath("none.gz"), FROST_ERR_IO, "none.gz': No such file or directory");
    IDX_ERR(tmpdir, FROST_ERR_IO, "not a regular file");

    for (int gz = 0; gz <= 1; gz++) {
        const char *p = tpath(gz ? "x.gz" : "x");
        write_idx(p, 0x12345678, IM_DIMS, 3, d, 30, gz);
        IDX_ERR(p, FROST_ERR_FORMAT, "bad magic number 0x12345678: not an IDX file");
        write_idx(p, 0x00000d03, IM_DIMS, 3, d, 30, gz);
        IDX_ERR(p, FROST_ERR_FORMAT,
                "unsupported IDX data type 0x0d (float32); only 0x08 (unsigned byte) is supported");
        write_idx(p, 0x00000800, IM_DIMS, 0, d, 30, gz);
        IDX_ERR(p, FROST_ERR_FORMAT, "bad magic number 0x00000800: 0 dimensions (1 to 8 supported)");
        write_idx(p, 0x00000809, IM_DIMS, 0, d, 0, gz);
        IDX_ERR(p, FROST_ERR_FORMAT, "9 dimensions");
        write_idx(p, 0x803, IM_DIMS, 2, NULL, 0, gz); /* three dims announced, two written */
        IDX_ERR(p, FROST_ERR_TRUNCATED, "truncated: the header has 3 dimensions but ends after 2");
        write_idx(p, 0x803, IM_DIMS, 3, d, 20, gz);
        IDX_ERR(p, FROST_ERR_TRUNCATED, "truncated: dimensions [5, 3, 2] need 30 bytes of data, the file has 20");
        write_idx(p, 0x803, IM_DIMS, 3, d, 31, gz);
        IDX_ERR(p, FROST_ERR_FORMAT,
                gz ? "more data than dimensions [5, 3, 2] need (30 bytes)"
                   : "the file has 31 bytes of data, but dimensions [5, 3, 2] need only 30");
        write_bytes(p, "\0\0", 2);
        IDX_ERR(p, FROST_ERR_TRUNCATED, "truncated: 2 bytes, fewer than the 4 of the magic number");
    }
    /* A header claiming 60000 28x28 images over a few bytes: no huge allocation, just truncated. */
    const uint32_t big[] = {60000, 28, 28};
    write_idx(tpath("big.gz"), 0x803, big, 3, d, 64, 1);
    IDX_ERR(tpath("big.gz"), FROST_ERR_TRUNCATED,
            "dimensions [60000, 28, 28] need 47040000 bytes of data, the file has 64");
    const uint32_t huge[] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
    write_idx(tpath("huge"), 0x803, huge, 3, d, 64, 0);
    IDX_ERR(tpath("huge"), FROST_ERR_FORMAT, "dimensions too large");
    /* A zero dimension makes no data, but the others still may not overflow:
     * 0 x (2^32-1) x (2^32-1) images would have (2^32-1)^2 pixels each. */
    const uint32_t zero_huge[] = {0, 0xffffffffu, 0xffffffffu};
    write_idx(tpath("zero_huge"), 0x803, zero_huge, 3, NULL, 0, 0);
    IDX_ERR(tpath("zero_huge"), FROST_ERR_FORMAT, "dimensions too large");

    /* gzip: garbage after a valid gzip signature, a stream cut short. */
    unsigned char garbage[64] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3};
    for (int i = 10; i < 64; i++)
        garbage[i] = (unsigned char)(i * 73);
    write_bytes(tpath("garbage.gz"), garbage, sizeof garbage);
    IDX_ERR(tpath("garbage.gz"), FROST_ERR_FORMAT, "corrupt gzip data (zlib: ");
    unsigned char *big_data = malloc(47040);
    fill_random(big_data, 47040, 7);
    const uint32_t dims60[] = {60, 28, 28};
    write_idx(tpath("ok.gz"), 0x803, dims60, 3, big_data, 47040, 1);
    size_t n;
    unsigned char *gzb = read_bytes(tpath("ok.gz"), &n);
    write_bytes(tpath("cut.gz"), gzb, n / 2);
    IDX_ERR(tpath("cut.gz"), FROST_ERR_TRUNCATED, "truncated gzip stream (zlib: unexpected end of file)");
    write_bytes(tpath("cut.gz"), gzb, n - 4); /* only the trailer's length is missing */
    IDX_ERR(tpath("cut.gz"), FROST_ERR_TRUNCATED, "truncated gzip stream");
    gzb[n / 2] ^= 0x55; /* corrupt in the middle: zlib notices (bad code or CRC) */
    write_bytes(tpath("flip.gz"), gzb, n);
    memset(&x, 0, sizeof x);
    rc = frost_idx_load(tpath("flip.gz"), &x, &e);
    ck_assert_msg(rc == FROST_ERR_FORMAT && strstr(e.msg, "corrupt gzip data (zlib: "), "%d %s", rc, e.msg);
    ck_assert_int_eq(frost_idx_load(tpath("ok.gz"), &x, &e), 0);
    ck_assert_int_eq(memcmp(x.data, big_data, 47040), 0);
    frost_idx_free(&x);
    free(gzb);
    free(big_data);

    /* Data sets: the wrong kind of file, counts that disagree. */
    make_pair(tpath("im"), tpath("lb"), 0);
    frost_dataset ds;
    rc = frost_dataset_load(tpath("lb"), tpath("lb"), 0, 1, &ds, &e);
    EXPECT_ERR(rc, e, FROST_ERR_FORMAT, "lb': not an images file: 1 dimensions, want 3 (magic 0x00000803)");
    rc = frost_dataset_load(tpath("im"), tpath("im"), 0, 1, &ds, &e);
    EXPECT_ERR(rc, e, FROST_ERR_FORMAT, "im': not a labels file: 3 dimensions, want 1 (magic 0x00000801)");
    const uint32_t four[] = {4};
    write_idx(tpath("lb4"), 0x801, four, 1, lb_data, 4, 0);
    rc = frost_dataset_load(tpath("im"), tpath("lb4"), 0, 1, &ds, &e);
    EXPECT_ERR(rc, e, FROST_ERR_FORMAT, "lb4' has 4 labels but '");
    ck_assert_ptr_nonnull(strstr(e.msg, "im' has 5 images"));
    ck_assert_ptr_null(ds.images);
    rc = frost_dataset_load(tpath("im"), tpath("nolabels"), 0, 1, &ds, &e);
    EXPECT_ERR(rc, e, FROST_ERR_IO, "nolabels': No such file or directory");
    /* No examples: valid IDX files, but not a data set. */
    const uint32_t no_images[] = {0, 28, 28}, no_labels[] = {0};
    write_idx(tpath("im0"), 0x803, no_images, 3, NULL, 0, 0);
    write_idx(tpath("lb0"), 0x801, no_labels, 1, NULL, 0, 0);
    rc = frost_dataset_load(tpath("im0"), tpath("lb0"), 0, 1, &ds, &e);
    EXPECT_ERR(rc, e, FROST_ERR_FORMAT, "im0': no images (the header says 0 of 28 x 28 pixels)");
    ck_assert_ptr_null(ds.images);
    ck_assert_int_eq(ds.count, 0);
#undef IDX_ERR
}
END_TEST

/* ---------------------------------------------------------------- batches */

/* The shuffle as docs and frost_support.h describe it, written again here. */
static uint64_t ref_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ z >> 27) * 0x94D049BB133111EBull;
    return z ^ z >> 31;
}

static void ref_perm(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch) {
    uint64_t s = seed ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull);
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i >= 1; i--) {
        uint64_t bound = (uint64_t)i + 1, x;
        uint64_t limit = UINT64_MAX - (UINT64_MAX % bound + 1) % bound; /* 2^64 - 2^64 mod bound, minus 1 */
        do
            x = ref_next(&s);
        while (x > limit);
        int64_t j = (int64_t)(x % bound), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* A data set whose example i has every feature equal to i and label i % 7. */
static void make_ds(frost_dataset *ds, int64_t n, int64_t f) {
    memset(ds, 0, sizeof *ds);
    ds->count = n;
    ds->rows = 1;
    ds->cols = f;
    ds->features = f;
    ds->classes = 7;
    ds->images = malloc(sizeof(float) * (size_t)(n * f));
    ds->labels = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < f; k++)
            ds->images[i * f + k] = (float)i;
        ds->labels[i] = (int32_t)(i % 7);
    }
}

START_TEST(test_batches) {
    enum { N = 103, B = 10, F = 3 };
    frost_dataset ds;
    make_ds(&ds, N, F);
    float x[B * F];
    int32_t y[B];
    int64_t perm[N];
    frost_batcher b;
    frost_error e;

    /* Drop: 10 batches of 10 per epoch, in the documented order; 3 left out. */
    ck_assert_int_eq(frost_batcher_init(&b, &ds, B, 42, FROST_BATCH_DROP, &e), 0);
    for (int64_t epoch = 0; epoch < 3; epoch++) {
        ref_perm(perm, N, 42, epoch);
        int seen[N] = {0};
        for (int k = 0; k < N / B; k++) {
            ck_assert_int_eq(frost_batcher_next(&b, x, y), B);
            for (int i = 0; i < B; i++) {
                int64_t ex = (int64_t)x[i * F];
                ck_assert_int_eq(ex, perm[k * B + i]);
                ck_assert(x[i * F + F - 1] == (float)ex);
                ck_assert_int_eq(y[i], ex % 7);
                ck_assert_int_eq(seen[ex]++, 0);
            }
        }
        ck_assert_int_eq(b.epoch, epoch);
        x[0] = -1;
        ck_assert_int_eq(frost_batcher_next(&b, x, y), 0); /* end of the epoch, buffers untouched */
        ck_assert(x[0] == -1);
        ck_assert_int_eq(b.epoch, epoch + 1);
    }
    /* Not the identity, and epochs differ. */
    int64_t p0[N], p1[N];
    ref_perm(p0, N, 42, 0);
    ref_perm(p1, N, 42, 1);
    int same01 = 1, ident = 1;
    for (int i = 0; i < N; i++) {
        same01 &= p0[i] == p1[i];
        ident &= p0[i] == i;
    }
    ck_assert(!same01 && !ident);

    /* Same seed, same stream; seek reproduces an epoch. */
    frost_batcher c;
    ck_assert_int_eq(frost_batcher_init(&c, &ds, B, 42, 0, &e), 0);
    frost_batcher_seek(&c, 2);
    frost_batcher_seek(&b, 2);
    float x2[B * F];
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(frost_batcher_next(&b, x, NULL), B);
        ck_assert_int_eq(frost_batcher_next(&c, x2, NULL), B);
        ck_assert_int_eq(memcmp(x, x2, sizeof x), 0);
    }
    frost_batcher_free(&c);
    ck_assert_int_eq(frost_batcher_init(&c, &ds, B, 43, 0, &e), 0);
    frost_batcher_seek(&b, 0);
    ck_assert_int_eq(frost_batcher_next(&b, x, NULL), B);
    ck_assert_int_eq(frost_batcher_next(&c, x2, NULL), B);
    ck_assert_int_ne(memcmp(x, x2, sizeof x), 0);
    frost_batcher_free(&c);
    frost_batcher_free(&b);
    frost_batcher_free(&b);

    /* Wrap: 11 batches; the last has 3 new examples then the epoch's first 7. */
    ck_assert_int_eq(frost_batcher_init(&b, &ds, B, 7, FROST_BATCH_WRAP, &e), 0);
    ref_perm(perm, N, 7, 0);
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(frost_batcher_next(&b, x, y), B);
    ck_assert_int_eq(frost_batcher_next(&b, x, y), 3);
    for (int i = 0; i < B; i++)
        ck_assert_int_eq((int64_t)x[i * F], perm[(100 + i) % N]);
    ck_assert_int_eq(frost_batcher_next(&b, x, y), 0);
    frost_batcher_free(&b);

    /* Sequential, wrapping, batch larger than the data set. */
    ck_assert_int_eq(frost_batcher_init(&b, &ds, 250, 0, FROST_BATCH_WRAP | FROST_BATCH_SEQUENTIAL, &e), 0);
    float *xl = malloc(sizeof(float) * 250 * F);
    int32_t yl[250];
    ck_assert_int_eq(frost_batcher_next(&b, xl, yl), N);
    for (int i = 0; i < 250; i++)
        ck_assert(xl[i * F] == (float)(i % N));
    ck_assert_int_eq(frost_batcher_next(&b, xl, yl), 0);
    ck_assert_int_eq(frost_batcher_next(&b, xl, yl), N);
    free(xl);
    frost_batcher_free(&b);

    /* Errors. */
    int rc = frost_batcher_init(&b, &ds, 0, 1, 0, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "batch size 0");
    rc = frost_batcher_init(&b, &ds, N + 1, 1, 0, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "batch size 104 exceeds the 103 examples");
    rc = frost_batcher_init(&b, &ds, 1, 1, 8, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "unknown flags 0x8");
    /* x of batch * features floats must be addressable: 2^62 x 3 floats is not */
    rc = frost_batcher_init(&b, &ds, (int64_t)1 << 62, 1, FROST_BATCH_WRAP, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "batch size 4611686018427387904 is too large: 4611686018427387904 x 3 floats");
    ck_assert_int_eq(frost_batcher_next(&b, x, y), 0); /* a failed init leaves a harmless batcher */
    frost_batcher_free(&b);
    frost_dataset_free(&ds);
    rc = frost_batcher_init(&b, &ds, 1, 1, 0, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "empty data set");
}
END_TEST

/* ---------------------------------------------------------------- Fashion-MNIST */

START_TEST(test_fashion_mnist) {
    const char *dir = FROST_FASHION_MNIST_DIR;
    char probe[512];
    snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", dir);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "test_fashion_mnist: %s absent (apt-get install dataset-fashion-mnist), skipped\n", probe);
        return;
    }
    frost_dataset tr, te;
    frost_error e;
    ck_assert_msg(frost_dataset_load_mnist(dir, "train", 0.0f, 1.0f, &tr, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(e.msg, "60000 examples of 28 x 28 pixels, 10 classes");
    ck_assert_int_eq(tr.count, 60000);
    ck_assert_int_eq(tr.features, 784);
    ck_assert_int_eq(tr.classes, 10);
    ck_assert_int_eq(tr.labels[0], 9); /* an ankle boot */
    /* (No ck_assert in the long loops: each one is a write to Check's pipe.) */
    int counts[10] = {0}, bad = 0;
    for (int64_t i = 0; i < tr.count; i++) {
        if (tr.labels[i] >= 0 && tr.labels[i] <= 9)
            counts[tr.labels[i]]++;
        else
            bad++;
    }
    ck_assert_int_eq(bad, 0);
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(counts[c], 6000);
    double sum0 = 0, sum = 0, sq = 0;
    for (int k = 0; k < 784; k++)
        sum0 += tr.images[k] * 255.0f;
    ck_assert(fabs(sum0 - 76247.0) < 1e-6);
    for (int64_t i = 0; i < tr.count * tr.features; i++) {
        bad += !(tr.images[i] >= 0.0f && tr.images[i] <= 1.0f);
        sum += tr.images[i];
        sq += (double)tr.images[i] * tr.images[i];
    }
    ck_assert_int_eq(bad, 0);
    double n = (double)(tr.count * tr.features), mean = sum / n, std = sqrt(sq / n - mean * mean);
    ck_assert_msg(fabs(mean - FROST_FASHION_MNIST_MEAN) < 5e-5 && fabs(std - FROST_FASHION_MNIST_STD) < 5e-5,
                  "mean %f std %f", mean, std);
    frost_dataset_free(&tr);

    ck_assert_msg(frost_dataset_load_mnist(dir, "t10k", FROST_FASHION_MNIST_MEAN, FROST_FASHION_MNIST_STD, &te, &e) ==
                      0,
                  "%s", e.msg);
    ck_assert_int_eq(te.count, 10000);
    ck_assert_int_eq(te.labels[0], 9);
    ck_assert_int_eq(te.labels[1], 2);
    ck_assert(fabsf(te.images[0] - (0.0f - FROST_FASHION_MNIST_MEAN) / FROST_FASHION_MNIST_STD) < 1e-6f);
    /* Evaluation batches of 128: 79, the last with 16 new examples. */
    frost_batcher b;
    ck_assert_int_eq(frost_batcher_init(&b, &te, 128, 0, FROST_BATCH_WRAP | FROST_BATCH_SEQUENTIAL, &e), 0);
    static float x[128 * 784];
    int32_t y[128];
    int64_t total = 0, batches = 0, got;
    while ((got = frost_batcher_next(&b, x, y)) > 0) {
        total += got;
        batches++;
    }
    ck_assert_int_eq(batches, 79);
    ck_assert_int_eq(total, 10000);
    frost_batcher_free(&b);
    frost_dataset_free(&te);

    frost_idx raw;
    char path[512];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    ck_assert_int_eq(frost_idx_load(path, &raw, &e), 0);
    ck_assert_int_eq(raw.ndims, 1);
    ck_assert_int_eq(raw.dims[0], 60000);
    frost_idx_free(&raw);
}
END_TEST

/* ---------------------------------------------------------------- text */

/* Files concatenated in order, nothing between them; an empty file adds
 * nothing; bytes kept as they are (NUL, 0xFF, CR); a 0 after the data. */
START_TEST(test_text_load) {
    write_bytes(tpath("a.txt"), "first\n%\n", 8);
    write_bytes(tpath("empty"), "", 0);
    const unsigned char odd[] = {'x', 0, 0xFF, '\r', '\n'};
    write_bytes(tpath("b"), odd, sizeof odd);
    const char *paths[] = {tpath("a.txt"), tpath("empty"), tpath("b")};
    frost_text t;
    frost_error e;
    ck_assert_int_eq(frost_text_load(paths, 3, &t, &e), 0);
    ck_assert_int_eq(e.code, 0);
    ck_assert_msg(strstr(e.msg, "3 files") && strstr(e.msg, "13 bytes"), "%s", e.msg);
    ck_assert_int_eq(t.size, 13);
    ck_assert_int_eq(memcmp(t.data, "first\n%\n", 8), 0);
    ck_assert_int_eq(memcmp(t.data + 8, odd, sizeof odd), 0);
    ck_assert_int_eq(t.data[13], 0);
    frost_text_free(&t);
    ck_assert_ptr_null(t.data);
    ck_assert_int_eq(t.size, 0);
    frost_text_free(&t); /* twice is harmless */

    /* A file longer than one growth step, alone. */
    enum { BIG = 200000 };
    unsigned char *big = malloc(BIG);
    fill_random(big, BIG, 3);
    write_bytes(tpath("big"), big, BIG);
    const char *one[] = {tpath("big")};
    ck_assert_int_eq(frost_text_load(one, 1, &t, &e), 0);
    ck_assert_int_eq(t.size, BIG);
    ck_assert_int_eq(memcmp(t.data, big, BIG), 0);
    ck_assert_msg(strstr(e.msg, "200000 bytes"), "%s", e.msg);
    frost_text_free(&t);
    free(big);

    /* Only empty files: an empty text, still a valid buffer. */
    const char *none[] = {tpath("empty")};
    ck_assert_int_eq(frost_text_load(none, 1, &t, &e), 0);
    ck_assert_int_eq(t.size, 0);
    ck_assert_ptr_nonnull(t.data);
    ck_assert_int_eq(t.data[0], 0);
    frost_text_free(&t);

    /* A missing file is named, even after good ones, and *out is zeroed. */
    const char *missing[] = {tpath("a.txt"), tpath("no-such-file")};
    t.size = 99;
    int rc = frost_text_load(missing, 2, &t, &e);
    EXPECT_ERR(rc, e, FROST_ERR_IO, "cannot open '");
    ck_assert_msg(strstr(e.msg, "/no-such-file': No such file or directory"), "%s", e.msg);
    ck_assert_int_eq(t.size, 0);
    ck_assert_ptr_null(t.data);
    /* A directory is not a text file. */
    const char *dir[] = {tmpdir};
    rc = frost_text_load(dir, 1, &t, &e);
    EXPECT_ERR(rc, e, FROST_ERR_IO, "': not a regular file");
    /* Arguments. */
    rc = frost_text_load(paths, 0, &t, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "no files (n = 0)");
    rc = frost_text_load(NULL, 1, &t, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "no files");
    const char *with_null[] = {tpath("a.txt"), NULL};
    rc = frost_text_load(with_null, 2, &t, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "path 1 is NULL");
    rc = frost_text_load(paths, 1, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "out is NULL");
    ck_assert_int_eq(frost_text_load(missing, 2, &t, NULL), FROST_ERR_IO); /* err may be NULL */
}
END_TEST

/* Windows: the documented starts (an independent SplitMix64 and rejection),
 * labels one byte after ids, deterministic in (seed, step), every start
 * reachable and none past size - len - 1. */
START_TEST(test_text_windows) {
    enum { SIZE = 50, B = 7, LEN = 5 };
    uint8_t text[SIZE];
    for (int i = 0; i < SIZE; i++)
        text[i] = (uint8_t)(3 * i + 1); /* byte i tells its position */
    int32_t ids[B * LEN], labels[B * LEN], ids2[B * LEN], labels2[B * LEN];
    frost_error e;
    int hit[SIZE] = {0};
    for (int64_t step = 0; step < 200; step++) {
        ck_assert_int_eq(frost_text_windows(text, SIZE, B, LEN, 11, step, ids, labels, &e), 0);
        uint64_t s = 11 ^ ((uint64_t)step * 0x9E3779B97F4A7C15ull);
        for (int b = 0; b < B; b++) {
            uint64_t bound = SIZE - LEN, x, limit = UINT64_MAX - (UINT64_MAX % bound + 1) % bound;
            do
                x = ref_next(&s);
            while (x > limit);
            int64_t start = (int64_t)(x % bound);
            hit[start]++;
            for (int t = 0; t < LEN; t++) {
                ck_assert_int_eq(ids[b * LEN + t], text[start + t]);
                ck_assert_int_eq(labels[b * LEN + t], text[start + t + 1]);
            }
        }
    }
    for (int i = 0; i < SIZE; i++)
        ck_assert_msg(i < SIZE - LEN ? hit[i] > 0 : hit[i] == 0, "start %d drawn %d times", i, hit[i]);

    /* The same (seed, step) again gives the same batch, whatever came before;
     * another step or seed another one. */
    ck_assert_int_eq(frost_text_windows(text, SIZE, B, LEN, 11, 3, ids, labels, &e), 0);
    ck_assert_int_eq(frost_text_windows(text, SIZE, B, LEN, 11, 9, ids2, labels2, &e), 0);
    ck_assert_int_ne(memcmp(ids, ids2, sizeof ids), 0);
    ck_assert_int_eq(frost_text_windows(text, SIZE, B, LEN, 11, 3, ids2, labels2, &e), 0);
    ck_assert_int_eq(memcmp(ids, ids2, sizeof ids), 0);
    ck_assert_int_eq(memcmp(labels, labels2, sizeof labels), 0);
    ck_assert_int_eq(frost_text_windows(text, SIZE, B, LEN, 12, 3, ids2, labels2, &e), 0);
    ck_assert_int_ne(memcmp(ids, ids2, sizeof ids), 0);

    /* Bytes above 127 stay non-negative ids. */
    uint8_t high[3] = {0xFF, 0x80, 0xC3};
    ck_assert_int_eq(frost_text_windows(high, 3, 1, 2, 0, 0, ids, labels, &e), 0);
    ck_assert_int_eq(ids[0], 0xFF);
    ck_assert_int_eq(ids[1], 0x80);
    ck_assert_int_eq(labels[1], 0xC3);

    /* The shortest text: len + 1 bytes, one possible window. */
    ck_assert_int_eq(frost_text_windows(text, LEN + 1, B, LEN, 5, 1, ids, labels, &e), 0);
    for (int b = 0; b < B; b++)
        ck_assert_int_eq(labels[b * LEN + LEN - 1], text[LEN]);
    int rc = frost_text_windows(text, LEN, B, LEN, 5, 1, ids, labels, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "a text of 5 bytes is too short for windows of 5 + 1 bytes");
    rc = frost_text_windows(text, SIZE, 0, LEN, 5, 1, ids, labels, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "batch 0 and length 5 must be at least 1");
    rc = frost_text_windows(text, SIZE, B, 0, 5, 1, ids, labels, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "must be at least 1");
    rc = frost_text_windows(NULL, SIZE, B, LEN, 5, 1, ids, labels, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "is NULL");
    rc = frost_text_windows(text, SIZE, B, LEN, 5, 1, ids, NULL, &e);
    EXPECT_ERR(rc, e, FROST_ERR_ARG, "is NULL");
}
END_TEST

START_TEST(test_strerror) {
    ck_assert_str_eq(frost_strerror(0), "ok");
    ck_assert_str_eq(frost_strerror(FROST_ERR_SHAPE), "shape mismatch");
    ck_assert_str_eq(frost_strerror(FROST_ERR_MISSING), "missing tensors");
    ck_assert_str_eq(frost_strerror(-99), "unknown error");
    for (int c = FROST_ERR_UNEXPECTED; c <= FROST_ERR_ARG; c++)
        ck_assert_str_ne(frost_strerror(c), "unknown error");
}
END_TEST

int main(void) {
    Suite *s = suite_create("support");
    TCase *ck = tcase_create("checkpoint");
    tcase_add_checked_fixture(ck, setup, teardown);
    tcase_add_test(ck, test_round_trip);
    tcase_add_test(ck, test_save_errors);
    tcase_add_test(ck, test_load_errors);
    tcase_add_test(ck, test_load_file_errors);
    tcase_add_test(ck, test_message_truncation);
    tcase_add_test(ck, test_skip_and_partial);
    tcase_add_test(ck, test_prefix);
    tcase_add_test(ck, test_torch_fixture);
    tcase_add_test(ck, test_lora_files);
    tcase_add_test(ck, test_lora_merge);
    tcase_add_test(ck, test_strerror);
    suite_add_tcase(s, ck);
    TCase *gen = tcase_create("generated");
    tcase_add_checked_fixture(gen, setup, teardown);
    tcase_set_timeout(gen, 120);
    tcase_add_test(gen, test_generated_header);
    suite_add_tcase(s, gen);
    TCase *data = tcase_create("data");
    tcase_add_checked_fixture(data, setup, teardown);
    tcase_set_timeout(data, 120);
    tcase_add_test(data, test_idx_load);
    tcase_add_test(data, test_idx_errors);
    tcase_add_test(data, test_batches);
    tcase_add_test(data, test_fashion_mnist);
    tcase_add_test(data, test_text_load);
    tcase_add_test(data, test_text_windows);
    suite_add_tcase(s, data);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
