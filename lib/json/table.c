/* lib/json/table.c: the task-key hash table of the graph.json reader:
 * open addressing over XXH3-64 of the key. A slot keeps the key's hash,
 * its length and, for short keys, the key itself: a lookup then costs one
 * cache line, and growing never reads keys at all. */
#include <string.h>
#include <xxhash.h>

#include "json/gj_internal.h"

static inline bool same(const gj_slot *e, uint64_t h, const char *key,
                        size_t len) {
  if (e->hash != h || e->keylen != len) return false;
  const char *k = len <= GJ_INLINE ? e->key.bytes : e->key.ptr;
  return memcmp(k, key, len) == 0;
}

uint32_t tg__gj_find(const gj_doc *d, const char *key, size_t len) {
  if (d->table == NULL) return UINT32_MAX;
  uint64_t h = XXH3_64bits(key, len);
  for (size_t s = (size_t)h & d->table_mask;; s = (s + 1) & d->table_mask) {
    const gj_slot *e = &d->table[s];
    if (e->index == 0) return UINT32_MAX;
    if (same(e, h, key, len)) return e->index - 1;
  }
}

/* How many tasks the text may hold: the number of "fn" keys. Sizing the
 * table for them at once saves the random writes of growing it. */
static size_t expected_tasks(const gj_doc *d) {
  size_t n = 0;
  for (const char *p = d->text, *end = d->text + d->len;
       (p = memmem(p, (size_t)(end - p), "\"fn\"", 4)) != NULL; p += 4)
    n++;
  return n;
}

static int grow(gj_doc *d) {
  size_t cap = d->table ? (d->table_mask + 1) * 2 : 1024;
  if (d->table == NULL) {
    size_t want = expected_tasks(d);
    while (cap / 2 < want && cap < ((size_t)1 << 32)) cap *= 2;
  }
  gj_slot *t = tg__calloc(cap, sizeof *t), *old = d->table;
  if (t == NULL) return TG_ENOMEM;
  size_t old_cap = old ? d->table_mask + 1 : 0;
  d->table = t;
  d->table_mask = cap - 1;
  for (size_t i = 0; i < old_cap; i++) {
    if (old[i].index == 0) continue;
    size_t s = (size_t)old[i].hash & d->table_mask;
    while (t[s].index != 0) s = (s + 1) & d->table_mask;
    t[s] = old[i];
  }
  tg__free(old);
  return TG_OK;
}

uint32_t tg__gj_insert(gj_doc *d, uint32_t i) {
  /* Keep the load at most one half. */
  if ((d->table == NULL || (size_t)i + 1 > (d->table_mask + 1) / 2) &&
      grow(d) != TG_OK)
    return UINT32_MAX - 1;
  const gj_task *k = &d->tasks[i];
  if (k->keylen > UINT32_MAX) return UINT32_MAX - 1;
  uint64_t h = XXH3_64bits(k->key, k->keylen);
  for (size_t s = (size_t)h & d->table_mask;; s = (s + 1) & d->table_mask) {
    gj_slot *e = &d->table[s];
    if (e->index == 0) {
      e->hash = h;
      e->index = i + 1;
      e->keylen = (uint32_t)k->keylen;
      if (k->keylen <= GJ_INLINE) memcpy(e->key.bytes, k->key, k->keylen);
      else e->key.ptr = k->key;
      return UINT32_MAX;
    }
    if (same(e, h, k->key, k->keylen)) return e->index - 1;
  }
}
