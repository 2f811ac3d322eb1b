/* target.c: the target triple and CPU checked before any target machine is
 * made. LLVM warns about an unknown CPU on stderr, once per function, and for
 * x86-64 then aborts ("64-bit code requested on a subtarget that doesn't
 * support it"); frost instead rejects the name up front and names the
 * closest ones the target knows (codegen/llvm_target.cpp asks LLVM). */
#include "cg.h"
#include "target_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

enum { NEAREST = 3 };

typedef struct {
    const char *want;
    char best[NEAREST][64];
    int dist[NEAREST]; /* ascending; 99 where unfilled (names have at most 64 bytes) */
} cpu_search;

static void keep_nearest(const char *name, void *ctx) {
    cpu_search *s = ctx;
    if (strlen(name) >= sizeof s->best[0])
        return;
    int d = diag_edit_distance(s->want, name, 64);
    if (d >= s->dist[NEAREST - 1])
        return;
    int k = NEAREST - 1;
    for (; k > 0 && s->dist[k - 1] > d; k--) {
        s->dist[k] = s->dist[k - 1];
        strcpy(s->best[k], s->best[k - 1]);
    }
    s->dist[k] = d;
    strcpy(s->best[k], name);
}

/* The triple o names, or the host's; LLVMDisposeMessage it. NULL with *err
 * set when no registered target serves it. */
static char *target_triple(const cg_options *o, char **err) {
    LLVMInitializeNativeTarget();
    char *triple = o && o->triple ? LLVMCreateMessage(o->triple) : LLVMGetDefaultTargetTriple();
    LLVMTargetRef target;
    char *terr = NULL;
    if (triple && !LLVMGetTargetFromTriple(triple, &target, &terr))
        return triple;
    *err = cg_strdupf("unknown target triple '%s'%s%s", triple ? triple : "?", terr ? ": " : "", terr ? terr : "");
    LLVMDisposeMessage(terr);
    LLVMDisposeMessage(triple);
    return NULL;
}

bool cg_check_target(const cg_options *o, char **err) {
    *err = NULL;
    char *triple = target_triple(o, err);
    if (!triple)
        return false;
    bool ok = true;
    if (o && o->cpu && *o->cpu) {
        int known = cg_target_knows_cpu(triple, o->cpu);
        if (known != 1) {
            cpu_search s = {.want = o->cpu};
            for (int k = 0; k < NEAREST; k++)
                s.dist[k] = 99;
            cg_target_cpus(triple, keep_nearest, &s);
            char list[NEAREST * (sizeof s.best[0] + 4)] = "";
            for (int k = 0; k < NEAREST && s.dist[k] < 99; k++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", k ? ", " : "", s.best[k]);
            *err = cg_strdupf("unknown CPU '%s' for %s%s%s ('--mcpu help' lists them all)", o->cpu, triple,
                              *list ? "; the closest it knows: " : "", list);
            ok = false;
        }
    }
    LLVMDisposeMessage(triple);
    return ok;
}

static void print_name(const char *name, void *ctx) { fprintf(ctx, "%s\n", name); }

bool cg_list_cpus(const cg_options *o, FILE *out, char **err) {
    *err = NULL;
    char *triple = target_triple(o, err);
    if (!triple)
        return false;
    int n = cg_target_cpus(triple, print_name, out);
    if (n < 0)
        *err = cg_strdupf("cannot list the CPUs of %s", triple);
    LLVMDisposeMessage(triple);
    return n >= 0;
}
