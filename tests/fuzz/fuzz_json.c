/* fuzz_json.c: libFuzzer harness for the support library's JSON pull parser:
 * a whole document through sj_skip, then the same bytes read as an object of
 * strings mapped to unsigned integers, lists or anything (the shapes the
 * safetensors header uses). */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>

static void read_object(const char *s, size_t n) {
    sj_parser p;
    sj_init(&p, s, n);
    if (sj_expect(&p, '{', "'{'") < 0 || sj_accept(&p, '}'))
        return;
    do {
        char *key = NULL;
        size_t len;
        if (sj_string(&p, &key, &len) < 0)
            return;
        free(key);
        if (sj_expect(&p, ':', "':'") < 0)
            return;
        int64_t v;
        int c = sj_peek(&p);
        if (c >= '0' && c <= '9') {
            if (sj_uint(&p, &v) < 0)
                return;
        } else if (sj_accept(&p, '[')) {
            if (!sj_accept(&p, ']')) {
                do {
                    if (sj_uint(&p, &v) < 0)
                        return;
                } while (sj_accept(&p, ','));
                if (sj_expect(&p, ']', "']'") < 0)
                    return;
            }
        } else if (sj_skip(&p) < 0) {
            return;
        }
    } while (sj_accept(&p, ','));
    if (sj_expect(&p, '}', "'}'") == 0)
        sj_end(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sj_parser p;
    sj_init(&p, (const char *)data, size);
    if (sj_skip(&p) == 0)
        sj_end(&p);
    read_object((const char *)data, size);
    return 0;
}
