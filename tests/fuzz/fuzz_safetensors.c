/* fuzz_safetensors.c: libFuzzer harness for frost_ckpt_load: the safetensors
 * header (length, JSON, dtypes, shapes, offsets) and the data read, against
 * a small fixed parameter table with a LoRA adapter. The first byte picks
 * the load options (skip, allow_missing, allow_unexpected, prefix,
 * file_prefix, only: bits 0 to 5). */
#include "fuzz_common.h"
#include "frost_support.h"

#include <string.h>

static const frost_param_info table[] = {
    {.name = "fc.weight",
     .offset = 0,
     .grad_offset = -1,
     .rank = 2,
     .shape = {2, 3},
     .dtype = FROST_DTYPE_F32,
     .persistent = 1},
    {.name = "fc.bias",
     .offset = 64,
     .grad_offset = -1,
     .rank = 1,
     .shape = {3},
     .dtype = FROST_DTYPE_F32,
     .persistent = 1},
    {.name = "bn.num_batches_tracked",
     .offset = 128,
     .grad_offset = -1,
     .rank = 0,
     .dtype = FROST_DTYPE_I64,
     .persistent = 1},
    {.name = "ids",
     .offset = 192,
     .grad_offset = -1,
     .rank = 1,
     .shape = {4},
     .dtype = FROST_DTYPE_I32,
     .persistent = 1},
    {.name = "mask",
     .offset = 256,
     .grad_offset = -1,
     .rank = 1,
     .shape = {5},
     .dtype = FROST_DTYPE_U8,
     .persistent = 1},
    {.name = "fc.lora_A.weight",
     .offset = 320,
     .grad_offset = -1,
     .rank = 2,
     .shape = {1, 3},
     .dtype = FROST_DTYPE_F32,
     .persistent = 1},
    {.name = "fc.lora_B.weight",
     .offset = 384,
     .grad_offset = -1,
     .rank = 2,
     .shape = {2, 1},
     .dtype = FROST_DTYPE_F32,
     .persistent = 1},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static fuzz_file file;
    static _Alignas(64) unsigned char params[448];
    unsigned mode = size ? data[0] : 0;
    if (size)
        data++, size--;
    fuzz_file_set(&file, "ckpt", data, size);
    static const char *const skip[] = {"fc.*", NULL};
    frost_load_options opt = {.skip = (mode & 1) ? skip : NULL,
                              .allow_missing = (mode >> 1) & 1,
                              .allow_unexpected = (mode >> 2) & 1,
                              .prefix = (mode >> 3) & 1 ? "fc." : NULL,
                              .file_prefix = (mode >> 4) & 1 ? FROST_PEFT_PREFIX : NULL,
                              .only = (mode >> 5) & 1 ? frost_lora_patterns : NULL};
    frost_error err;
    memset(params, 0, sizeof params);
    frost_ckpt_load(file.path, params, table, (int)(sizeof table / sizeof *table), &opt, &err);
    return 0;
}
