/* fuzz_common.h: the support library reads files by path; the harnesses hand
 * it their input through an in-memory file (memfd) named /proc/self/fd/N. */
#ifndef FROST_FUZZ_COMMON_H
#define FROST_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    int fd;
    char path[32];
} fuzz_file;

/* Make f hold exactly data[0..size); abort on failure (not a finding). */
static inline void fuzz_file_set(fuzz_file *f, const char *name, const uint8_t *data, size_t size) {
    if (f->fd <= 0) {
        f->fd = memfd_create(name, 0);
        if (f->fd < 0)
            abort();
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    }
    if (ftruncate(f->fd, 0) != 0 || pwrite(f->fd, data, size, 0) != (ssize_t)size)
        abort();
}

#endif
