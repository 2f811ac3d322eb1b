/* fuzz_idx.c: libFuzzer harness for the IDX reader (plain and gzip) and the
 * data-set loader on top of it. The input's first two bytes are the length
 * (big-endian) of the images file that follows; the rest is the labels file. */
#include "fuzz_common.h"
#include "frost_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static fuzz_file images, labels;
    if (size < 2)
        return 0;
    size_t cut = (size_t)data[0] << 8 | data[1];
    data += 2, size -= 2;
    if (cut > size)
        cut = size;
    fuzz_file_set(&images, "images", data, cut);
    fuzz_file_set(&labels, "labels", data + cut, size - cut);
    frost_error err;
    frost_idx idx;
    if (frost_idx_load(images.path, &idx, &err) == 0)
        frost_idx_free(&idx);
    frost_dataset ds;
    if (frost_dataset_load(images.path, labels.path, 0.5f, 0.25f, &ds, &err) == 0)
        frost_dataset_free(&ds);
    return 0;
}
