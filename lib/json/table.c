/* lib/json/table.c: the task-key hash table of the graph.json reader:
 * open addressing over XXH3-64 of the key. A slot keeps bits of the
 * key's hash with its length and, for short keys, the key itself, so a
 * lookup of a short key costs one cache line; lookups go in batches
 * whose slots are prefetched together, which is what makes a million of
 * them fast. */
#include <string.h>
#include <xxhash.h>

#include "json/gj_internal.h"

/* A slot's tag: the hash's top 28 bits, and the key's length in the
 * low 4 bits' place (15 for keys too long to keep in the slot), so equal
 * tags mean equal lengths for the keys kept in it. */
static inline uint32_t tag_of(uint64_t h, size_t len) {
  uint32_t code = len <= GJ_INLINE ? (uint32_t)len : 15u;
  return ((uint32_t)(h >> 32) & 0x0FFFFFFFu) | code << 28;
}

static inline bool same(const gj_doc *d, const gj_slot *e, uint32_t tag,
                        const char *key, size_t len) {
  if (e->tag != tag) return false;
  if (len <= GJ_INLINE) return memcmp(e->bytes, key, len) == 0;
  const gj_task *t = &d->tasks[e->index - 1];
  return t->keylen == len && memcmp(t->key, key, len) == 0;
}

uint32_t tg__gj_find(const gj_doc *d, const char *key, size_t len) {
  if (d->table == NULL) return UINT32_MAX;
  uint64_t h = XXH3_64bits(key, len);
  uint32_t tag = tag_of(h, len);
  for (size_t s = (size_t)h & d->table_mask;; s = (s + 1) & d->table_mask) {
    const gj_slot *e = &d->table[s];
    if (e->index == 0) return UINT32_MAX;
    if (same(d, e, tag, key, len)) return e->index - 1;
  }
}

/* A table with at least twice as many slots as tasks. */
static int alloc_table(gj_doc *d) {
  size_t cap = 16;
  while (cap / 2 < d->ntasks && cap < ((size_t)1 << 32)) cap *= 2;
  d->table = tg__calloc(cap, sizeof *d->table);
  if (d->table == NULL) return TG_ENOMEM;
  tg__advise_huge(d->table, cap * sizeof *d->table); /* read at random */
  d->table_mask = cap - 1;
  return TG_OK;
}

/* Insert task i under hash h; the index of an earlier task with the same
 * key, or UINT32_MAX when inserted. */
static uint32_t insert(gj_doc *d, uint32_t i, uint64_t h) {
  const gj_task *k = &d->tasks[i];
  uint32_t tag = tag_of(h, k->keylen);
  for (size_t s = (size_t)h & d->table_mask;; s = (s + 1) & d->table_mask) {
    gj_slot *e = &d->table[s];
    if (e->index == 0) {
      e->tag = tag;
      e->index = i + 1;
      if (k->keylen <= GJ_INLINE) memcpy(e->bytes, k->key, k->keylen);
      return UINT32_MAX;
    }
    if (same(d, e, tag, k->key, k->keylen)) return e->index - 1;
  }
}

#define BATCH 16 /* lookups in flight: their slots are prefetched together */

int tg__gj_index(gj_doc *d) {
  if (alloc_table(d) != TG_OK)
    return tg__gj_fail(d, 0, TG_ENOMEM, "out of memory");
  uint64_t h[BATCH];
  for (size_t base = 0; base < d->ntasks; base += BATCH) {
    size_t n = d->ntasks - base < BATCH ? d->ntasks - base : BATCH;
    for (size_t j = 0; j < n; j++) {
      const gj_task *t = &d->tasks[base + j];
      /* Could a tg.build node's name "KEY/args[I]" be taken? */
      if (!d->slash_keys && memchr(t->key, '/', t->keylen) != NULL)
        d->slash_keys = true;
      h[j] = XXH3_64bits(t->key, t->keylen);
      __builtin_prefetch(&d->table[h[j] & d->table_mask], 1);
    }
    for (size_t j = 0; j < n; j++) {
      uint32_t prev = insert(d, (uint32_t)(base + j), h[j]);
      if (prev == UINT32_MAX) continue;
      const gj_task *t = &d->tasks[base + j];
      unsigned line, col;
      tg__gj_position(d->text, d->tasks[prev].off, &line, &col);
      return tg__gj_fail(d, t->off, TG_EFORMAT,
                         "duplicate task key '%s' (first at line %u)", t->key,
                         line);
    }
  }
  return TG_OK;
}

void tg__gj_find_many(const gj_doc *d, gj_arg *const *refs, size_t n,
                      uint32_t *out) {
  uint64_t h[BATCH];
  for (size_t base = 0; base < n; base += BATCH) {
    size_t m = n - base < BATCH ? n - base : BATCH;
    for (size_t j = 0; j < m; j++) {
      const gj_arg *a = refs[base + j];
      h[j] = XXH3_64bits(a->u.ref.key, a->keylen);
      __builtin_prefetch(&d->table[h[j] & d->table_mask]);
    }
    for (size_t j = 0; j < m; j++) {
      const gj_arg *a = refs[base + j];
      uint32_t r = UINT32_MAX;
      for (size_t s = (size_t)h[j] & d->table_mask;; s = (s + 1) & d->table_mask) {
        const gj_slot *e = &d->table[s];
        if (e->index == 0) break;
        if (same(d, e, tag_of(h[j], a->keylen), a->u.ref.key, a->keylen)) {
          r = e->index - 1;
          break;
        }
      }
      out[base + j] = r;
    }
  }
}
