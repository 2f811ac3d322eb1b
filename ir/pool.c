/* pool.c: bump allocation. Everything a compilation allocates lives in one
 * pool and is freed at once with pool_free(); nothing is freed singly. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

#define POOL_CHUNK (64 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} chunk;

struct pool {
    chunk *head; /* current chunk; older ones follow */
};

static chunk *chunk_new(size_t size) {
    chunk *c = malloc(sizeof *c + size);
    if (!c)
        ir_panic(__FILE__, __LINE__, "out of memory");
    c->next = NULL;
    c->used = 0;
    c->size = size;
    return c;
}

pool *pool_new(void) {
    pool *p = malloc(sizeof *p);
    if (!p)
        ir_panic(__FILE__, __LINE__, "out of memory");
    p->head = chunk_new(POOL_CHUNK);
    return p;
}

void pool_free(pool *p) {
    if (!p)
        return;
    for (chunk *c = p->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(p);
}

void *pool_alloc(pool *p, size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (size == 0)
        size = 16;
    chunk *c = p->head;
    if (c->size - c->used < size) {
        if (size > POOL_CHUNK / 4) {
            /* A big block gets a chunk of its own behind the current one, so
             * the current chunk's free space is not wasted. */
            chunk *big = chunk_new(size);
            big->next = c->next;
            c->next = big;
            big->used = size;
            memset(big->data, 0, size);
            return big->data;
        }
        c = chunk_new(POOL_CHUNK);
        c->next = p->head;
        p->head = c;
    }
    void *r = c->data + c->used;
    c->used += size;
    memset(r, 0, size);
    return r;
}

char *pool_strndup(pool *p, const char *s, size_t n) {
    char *r = pool_alloc(p, n + 1);
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

char *pool_strdup(pool *p, const char *s) { return pool_strndup(p, s, strlen(s)); }

char *pool_printf(pool *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    IR_ASSERT(n >= 0);
    char *r = pool_alloc(p, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(r, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return r;
}

/* Backs VEC_PUSH: a new array of twice the capacity holding the n old items.
 * The old array is simply abandoned to the pool. */
void *pool_grow(pool *p, void *items, int n, int *cap, size_t elem_size) {
    int newcap = *cap < 8 ? 8 : *cap * 2;
    IR_ASSERT(newcap > *cap && n <= *cap);
    void *r = pool_alloc(p, (size_t)newcap * elem_size);
    if (n > 0)
        memcpy(r, items, (size_t)n * elem_size);
    *cap = newcap;
    return r;
}
