/* target_names.h: codegen/llvm_target.cpp's C interface. The target must
 * have been initialised (LLVMInitializeNativeTarget). */
#ifndef FROST_TARGET_NAMES_H
#define FROST_TARGET_NAMES_H

#ifdef __cplusplus
extern "C" {
#endif
/* 1 when the triple's target knows the CPU name, 0 when not, -1 when the
 * triple names no registered target. */
int cg_target_knows_cpu(const char *triple, const char *cpu);
/* 1 when the subtarget (cpu, features: "" for the CPU's own) has the feature
 * ("avx512f"), 0 when not, -1 when the triple is unknown. */
int cg_target_has_feature(const char *triple, const char *cpu, const char *features, const char *feature);
/* Call each(name, ctx) for every CPU name the triple's target knows; returns
 * how many, or -1 when there is no such target. */
int cg_target_cpus(const char *triple, void (*each)(const char *name, void *ctx), void *ctx);
#ifdef __cplusplus
}
#endif

#endif
