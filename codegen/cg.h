/* cg.h: what codegen/cg.c and codegen/header.c share (the public entry points
 * are in ir.h). */
#ifndef FROST_CG_H
#define FROST_CG_H

#include <stddef.h>

#include "ir.h"

/* runtime/rt.c as LLVM bitcode, generated at build time by tools/embed.c. */
extern const unsigned char frost_rt_bitcode[];
extern const size_t frost_rt_bitcode_len;

#define CG_MAX_PREFIX 128
/* The symbol prefix: o->prefix, else the model name, made a C identifier
 * (characters outside [A-Za-z0-9_] become '_', a leading digit gets "m_"). */
void cg_prefix(const ir_module *m, const cg_options *o, char buf[CG_MAX_PREFIX]);
/* printf into a malloc'd string (NULL when out of memory): error messages. */
char *cg_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
