/* rt_native.c: the target constants (rt.h) for librt, the native build the
 * unit tests call kernels in. Generated modules get theirs from codegen. Tests
 * pick the GEMM with rt_native_set_gemm; the default is OpenBLAS, the
 * reference frost's GEMM is compared with. */
#include "rt.h"

static int64_t native_gemm = RT_GEMM_OPENBLAS, native_wide = 0;

int64_t rt_cfg_gemm(void) { return native_gemm; }
int64_t rt_cfg_wide(void) { return native_wide; }

void rt_native_set_gemm(int64_t gemm, int64_t wide) {
    native_gemm = gemm;
    native_wide = wide;
}
