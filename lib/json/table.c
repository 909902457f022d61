/* lib/json/table.c: the task-key hash table of the graph.json reader:
 * open addressing over XXH3-64 of the key. A slot keeps the key's hash
 * and length, so a probe reads the key's bytes only when both agree and
 * growing never reads keys at all. */
#include <string.h>
#include <xxhash.h>

#include "json/gj_internal.h"

static inline bool same(gj_slot e, uint64_t h, const char *key, size_t len) {
  return e.hash == h && e.keylen == len && memcmp(e.key, key, len) == 0;
}

uint32_t tg__gj_find(const gj_doc *d, const char *key, size_t len) {
  if (d->table == NULL) return UINT32_MAX;
  uint64_t h = XXH3_64bits(key, len);
  for (size_t s = (size_t)h & d->table_mask;; s = (s + 1) & d->table_mask) {
    gj_slot e = d->table[s];
    if (e.index == 0) return UINT32_MAX;
    if (same(e, h, key, len)) return e.index - 1;
  }
}

static int grow(gj_doc *d) {
  size_t cap = d->table ? (d->table_mask + 1) * 2 : 1024;
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
    gj_slot e = d->table[s];
    if (e.index == 0) {
      d->table[s] = (gj_slot){k->key, i + 1, (uint32_t)k->keylen, h};
      return UINT32_MAX;
    }
    if (same(e, h, k->key, k->keylen)) return e.index - 1;
  }
}
