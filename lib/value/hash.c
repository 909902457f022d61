/* lib/value/hash.c: the canonical XXH3-128 hash of values (byte stream
 * documented at tg_value_hash in value.h) and the streaming hasher that
 * feeds it. */
#include <stdio.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "hash_internal.h"

/* Type tags of the canonical byte stream. Part of every stored key: never
 * renumber. */
enum {
  TAG_NULL = 0x00,
  TAG_FALSE = 0x01,
  TAG_TRUE = 0x02,
  TAG_INT = 0x03,
  TAG_FLOAT = 0x04,
  TAG_STR = 0x05,
  TAG_BYTES = 0x06,
  TAG_ARRAY = 0x08,
  TAG_LIST = 0x09,
  TAG_MAP = 0x0B,
};

#define CANONICAL_NAN UINT64_C(0x7ff8000000000000)
/* Once streaming, writes at least this long bypass the buffer: copying
 * them would cost more than an extra XXH3 update call. */
#define DIRECT_MIN 256
/* Maps up to this many entries sort their key order on the stack. */
#define MAP_STACK_MAX 32

/* ---- streaming hasher ---------------------------------------------------- */

void tg__hasher_init(tg__hasher *h) {
  h->state = NULL;
  h->n = 0;
}

/* Switch from buffering to XXH3 streaming: the input no longer fits. The
 * digest cannot report failure, so running out of memory here is fatal
 * (it takes a few hundred bytes). */
static XXH3_state_t *start_stream(tg__hasher *h) {
  XXH3_state_t *st = tg__aligned_alloc(64, sizeof *st);
  if (!st) {
    fputs("tgraph: out of memory starting a hash stream\n", stderr);
    abort();
  }
  XXH3_INITSTATE(st);
  XXH3_128bits_reset(st);
  h->state = st;
  return st;
}

/* The input outgrew the buffer: flush it into the stream, then stream
 * large writes in place and buffer small ones. */
static __attribute__((noinline)) void update_spill(tg__hasher *h,
                                                   const void *data,
                                                   size_t len) {
  XXH3_state_t *st = h->state ? h->state : start_stream(h);
  if (h->n) XXH3_128bits_update(st, h->buf, h->n);
  h->n = 0;
  if (len >= DIRECT_MIN) {
    XXH3_128bits_update(st, data, len); /* in place, no copy */
  } else {
    memcpy(h->buf, data, len);
    h->n = len;
  }
}

static inline void update(tg__hasher *h, const void *data, size_t len) {
  if (TG__LIKELY(len <= TG__HASHER_BUF - h->n)) {
    if (len) memcpy(h->buf + h->n, data, len);
    h->n += len;
  } else {
    update_spill(h, data, len);
  }
}

void tg__hasher_update(tg__hasher *h, const void *data, size_t len) {
  update(h, data, len);
}

tg_digest tg__hasher_final(tg__hasher *h) {
  XXH128_hash_t r;
  if (!h->state) {
    r = XXH3_128bits(h->buf, h->n);
  } else {
    XXH3_state_t *st = h->state;
    if (h->n) XXH3_128bits_update(st, h->buf, h->n);
    r = XXH3_128bits_digest(st);
    tg__free(st);
    h->state = NULL;
  }
  h->n = 0;
  return (tg_digest){.lo = r.low64, .hi = r.high64};
}

/* ---- canonical byte stream ----------------------------------------------- */

static inline void put_u8(tg__hasher *h, uint8_t b) {
  if (TG__LIKELY(h->n < TG__HASHER_BUF))
    h->buf[h->n++] = b;
  else
    update_spill(h, &b, 1);
}

/* A tag byte and a little-endian u64 (the host is little-endian, checked
 * in internal.h), the shape of most items in the stream. */
static inline void put_tag_u64(tg__hasher *h, uint8_t tag, uint64_t x) {
  if (TG__LIKELY(TG__HASHER_BUF - h->n >= 9)) {
    h->buf[h->n] = tag;
    memcpy(h->buf + h->n + 1, &x, 8);
    h->n += 9;
  } else {
    unsigned char b[9];
    b[0] = tag;
    memcpy(b + 1, &x, 8);
    update_spill(h, b, 9);
  }
}

static inline void put_u64(tg__hasher *h, uint64_t x) {
  update(h, &x, 8);
}

static void hash_value(tg__hasher *h, const tg_value *v);

static void hash_float(tg__hasher *h, double d) {
  uint64_t bits;
  memcpy(&bits, &d, 8);
  if (d != d) bits = CANONICAL_NAN; /* every NaN payload hashes alike */
  put_tag_u64(h, TAG_FLOAT, bits);
}

static void hash_array(tg__hasher *h, const tg__array *a) {
  put_u8(h, TAG_ARRAY);
  put_u8(h, a->dtype);
  put_u8(h, a->ndim);
  for (unsigned i = 0; i < a->ndim; i++) put_u64(h, (uint64_t)a->shape[i]);
  update(h, a->data, a->nbytes);
}

/* Entry order of the stream: key bytes compared with memcmp over the
 * common prefix, the shorter key first when one is a prefix of the other.
 * Keys of one map are distinct, so this is a strict total order. */
static int key_cmp(const tg__map *m, uint32_t a, uint32_t b) {
  const tg__map_entry *ea = &m->entries[a], *eb = &m->entries[b];
  uint32_t n = ea->key_len < eb->key_len ? ea->key_len : eb->key_len;
  int c = n ? memcmp(m->keys + ea->key_off, m->keys + eb->key_off, n) : 0;
  if (c) return c;
  return (ea->key_len > eb->key_len) - (ea->key_len < eb->key_len);
}

/* An entry to sort: its key's first 8 bytes, big-endian, zero-padded, so
 * that most comparisons are one integer compare. Different prefixes order
 * keys as key_cmp does (padding sorts a proper prefix first); equal ones
 * need the full compare. */
typedef struct sort_item {
  uint64_t prefix;
  uint32_t idx;
} sort_item;

static int item_cmp(const tg__map *m, const sort_item *a, const sort_item *b) {
  if (a->prefix != b->prefix) return a->prefix < b->prefix ? -1 : 1;
  return key_cmp(m, a->idx, b->idx);
}

static int item_cmp_qsort(const void *a, const void *b, void *m) {
  return item_cmp(m, a, b);
}

static void sort_entries(const tg__map *m, sort_item *it, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const tg__map_entry *e = &m->entries[i];
    const unsigned char *k = (const unsigned char *)m->keys + e->key_off;
    uint64_t p = 0;
    for (uint32_t j = 0; j < 8; j++) p = (p << 8) | (j < e->key_len ? k[j] : 0);
    it[i] = (sort_item){.prefix = p, .idx = (uint32_t)i};
  }
  if (n > MAP_STACK_MAX) {
    qsort_r(it, n, sizeof *it, item_cmp_qsort, (void *)m);
    return;
  }
  for (size_t i = 1; i < n; i++) { /* insertion sort: small n */
    sort_item x = it[i];
    size_t j = i;
    for (; j > 0 && item_cmp(m, &it[j - 1], &x) > 0; j--) it[j] = it[j - 1];
    it[j] = x;
  }
}

static void hash_entry(tg__hasher *h, const tg__map *m, uint32_t i) {
  const tg__map_entry *e = &m->entries[i];
  put_u64(h, e->key_len);
  update(h, m->keys + e->key_off, e->key_len);
  hash_value(h, e->val);
}

/* Without memory to sort, emit entries in order by repeatedly finding the
 * least key above the previous one: quadratic, but correct. */
static void hash_entries_unsorted(tg__hasher *h, const tg__map *m) {
  uint32_t prev = 0;
  for (size_t k = 0; k < m->len; k++) {
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < (uint32_t)m->len; i++) {
      if (k && key_cmp(m, i, prev) <= 0) continue;
      if (best == UINT32_MAX || key_cmp(m, i, best) < 0) best = i;
    }
    hash_entry(h, m, best);
    prev = best;
  }
}

/* Kept out of hash_value so that only the map levels of a deep recursion
 * carry the sort array (MAP_STACK_MAX * 16 bytes of stack each). */
static __attribute__((noinline)) void hash_map(tg__hasher *h, const tg__map *m) {
  sort_item stack_items[MAP_STACK_MAX];
  sort_item *it = stack_items;
  size_t n = m->len;
  put_tag_u64(h, TAG_MAP, n);
  if (n > MAP_STACK_MAX && !(it = tg__malloc(n * sizeof *it))) {
    hash_entries_unsorted(h, m);
    return;
  }
  sort_entries(m, it, n);
  for (size_t k = 0; k < n; k++) hash_entry(h, m, it[k].idx);
  if (it != stack_items) tg__free(it);
}

static void hash_value(tg__hasher *h, const tg_value *v) {
  if (tg__is_imm(v)) {
    put_tag_u64(h, TAG_INT, (uint64_t)tg__imm_get(v));
    return;
  }
  switch ((tg_type)v->type) {
    case TG_NULL:
      put_u8(h, TAG_NULL);
      break;
    case TG_BOOL:
      put_u8(h, tg_value_bool(v) ? TAG_TRUE : TAG_FALSE);
      break;
    case TG_INT:
      put_tag_u64(h, TAG_INT, (uint64_t)((const tg__int *)v)->i);
      break;
    case TG_FLOAT:
      hash_float(h, ((const tg__float *)v)->d);
      break;
    case TG_STR:
    case TG_BYTES: {
      const tg__blob *b = (const tg__blob *)v;
      put_tag_u64(h, v->type == TG_STR ? TAG_STR : TAG_BYTES, b->len);
      update(h, b->data, b->len);
      break;
    }
    case TG_NDARRAY:
      hash_array(h, (const tg__array *)v);
      break;
    case TG_LIST: {
      const tg__list *l = (const tg__list *)v;
      put_tag_u64(h, TAG_LIST, l->len);
      for (size_t i = 0; i < l->len; i++) hash_value(h, l->items[i]);
      break;
    }
    case TG_MAP:
      hash_map(h, (const tg__map *)v);
      break;
  }
}

void tg__hasher_value(tg__hasher *h, const tg_value *v) {
  assert(v != NULL);
  hash_value(h, v);
}

tg_digest tg_value_hash(const tg_value *v) {
  assert(v != NULL);
  if (tg__is_imm(v)) { /* the most common key part: no 1 KB buffer */
    unsigned char b[9];
    uint64_t x = (uint64_t)tg__imm_get(v);
    b[0] = TAG_INT;
    memcpy(b + 1, &x, 8);
    XXH128_hash_t r = XXH3_128bits(b, sizeof b);
    return (tg_digest){.lo = r.low64, .hi = r.high64};
  }
  tg__hasher h;
  tg__hasher_init(&h);
  hash_value(&h, v);
  return tg__hasher_final(&h);
}
