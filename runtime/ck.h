/* ck.h: checked int64 arithmetic for sizes.
 *
 * Every product or sum of dimensions, element counts or byte counts that a
 * user's model, an IDX header or a checkpoint can make arbitrarily large goes
 * through these, in the compiler (ir/, passes/), in the size formulas that the
 * compiler shares with the kernels (rt.h, so also in the runtime bitcode) and
 * in the support library. Each returns true when the exact result does not
 * fit in int64_t, like the builtins they wrap; *r is then meaningless.
 */
#ifndef FROST_CK_H
#define FROST_CK_H

#include <stdbool.h>
#include <stdint.h>

static inline bool ck_add(int64_t a, int64_t b, int64_t *r) { return __builtin_add_overflow(a, b, r); }
static inline bool ck_sub(int64_t a, int64_t b, int64_t *r) { return __builtin_sub_overflow(a, b, r); }
static inline bool ck_mul(int64_t a, int64_t b, int64_t *r) { return __builtin_mul_overflow(a, b, r); }

/* x >= 0 rounded up to a multiple of align, a power of two. */
static inline bool ck_align(int64_t x, int64_t align, int64_t *r) {
    if (ck_add(x, align - 1, r))
        return true;
    *r &= ~(align - 1);
    return false;
}

#endif
