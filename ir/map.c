/* map.c: string -> int hash map for the name tables of the frontend and the
 * graph (values by name, a scope's symbols, defs, configs), so that looking a
 * name up costs the same in a 10-line model and in a 100,000-line one.
 *
 * Open addressing with linear probing over a power-of-two table that is kept
 * at most half full; each slot keeps the key's hash so that a probe compares
 * strings only on a full hash match. Keys are not copied: they must outlive
 * the map, which holds for the pool strings it is used with. The table lives
 * in the pool; growing abandons the old one, like pool_grow.
 */
#include "ir.h"

#include <string.h>

struct map_slot {
    const char *key; /* NULL: empty */
    uint64_t hash;
    int value;
};

/* FNV-1a, 64 bit */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t k = 0; k < n; k++) {
        h ^= (unsigned char)s[k];
        h *= 0x100000001b3u;
    }
    return h;
}

/* The slot holding s[0..n) or the empty slot where it would go. */
static map_slot *probe(const str_map *m, const char *s, size_t n, uint64_t h) {
    size_t mask = (size_t)m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        map_slot *slot = &m->slots[i];
        if (!slot->key || (slot->hash == h && strncmp(slot->key, s, n) == 0 && slot->key[n] == '\0'))
            return slot;
    }
}

int map_findn(const str_map *m, const char *s, size_t n) {
    if (m->n == 0)
        return -1;
    const map_slot *slot = probe(m, s, n, hash_bytes(s, n));
    return slot->key ? slot->value : -1;
}

int map_find(const str_map *m, const char *key) { return map_findn(m, key, strlen(key)); }

str_map map_copy(pool *p, const str_map *m) {
    str_map c = *m;
    if (m->slots) {
        c.slots = pool_alloc(p, sizeof *c.slots * (size_t)m->cap);
        memcpy(c.slots, m->slots, sizeof *c.slots * (size_t)m->cap);
    }
    return c;
}

bool map_put(pool *p, str_map *m, const char *key, int value) {
    size_t n = strlen(key);
    uint64_t h = hash_bytes(key, n);
    if (2 * (m->n + 1) > m->cap) {
        str_map grown = {.cap = m->cap ? 2 * m->cap : 16, .n = m->n};
        IR_ASSERT(grown.cap > m->cap);
        grown.slots = pool_alloc(p, sizeof *grown.slots * (size_t)grown.cap);
        size_t mask = (size_t)grown.cap - 1;
        for (int k = 0; k < m->cap; k++) {
            if (!m->slots[k].key)
                continue;
            size_t i = (size_t)m->slots[k].hash & mask;
            while (grown.slots[i].key) /* keys are distinct: the first free slot */
                i = (i + 1) & mask;
            grown.slots[i] = m->slots[k];
        }
        *m = grown;
    }
    map_slot *slot = probe(m, key, n, h);
    if (slot->key)
        return false;
    *slot = (map_slot){key, h, value};
    m->n++;
    return true;
}
