/* fuzz_model.c: libFuzzer harness for everything a model file reaches short
 * of LLVM: lexer, parser, elaboration, configuration, lowering, liveness,
 * planning, widening and validation, then the header and the plan view
 * (text with --steps, and the SVG picture).
 * Diagnostics go to /dev/null; a crash, a sanitizer report, a hang
 * (-timeout) or an ir_panic (abort) is a finding. The first byte picks the
 * configuration: the file's default, all, or none. */
#include "ir.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!sink && !(sink = fopen("/dev/null", "w")))
        abort();
    frost_select sel = {0};
    if (size > 0 && data[0] < 0x20 && data[0] != '\n' && data[0] != '\t') {
        static const char *const configs[] = {NULL, "all", "none"};
        sel.config = configs[data[0] % 3];
        data++, size--;
    }
    char *src = malloc(size + 1);
    if (!src)
        return 0;
    memcpy(src, data, size);
    src[size] = '\0';
    pool *p = pool_new();
    diag_ctx d;
    diag_init(&d, "fuzz.frost", src, size, sink);
    ir_module *m = frost_build(p, &d, NULL, 0, &sel);
    if (m) {
        cg_options o = {.opt_level = 0};
        cg_emit_header(m, &o, sink);
        view_options steps = {.steps = true};
        view_plan(m, FMT_TEXT, &steps, sink);
        view_plan(m, FMT_SVG, NULL, sink);
    }
    pool_free(p);
    free(src);
    return 0;
}
