/* lib/util/idmap.c: the open-addressing map of util/idmap.h. */
#include "util/idmap.h"

#include "internal.h"

static inline size_t slot_of(uint64_t key, size_t mask) {
  key ^= key >> 33; /* a murmur3 finaliser spreads sequential ids */
  key *= UINT64_C(0xff51afd7ed558ccd);
  key ^= key >> 33;
  return (size_t)key & mask;
}

void tg__idmap_free(tg__idmap *m) {
  tg__free(m->s);
  m->s = NULL;
  m->mask = 0;
  m->n = 0;
}

void *tg__idmap_get(const tg__idmap *m, uint64_t key) {
  if (!m->s) return NULL;
  for (size_t i = slot_of(key, m->mask);; i = (i + 1) & m->mask) {
    if (m->s[i].key == key) return m->s[i].val;
    if (m->s[i].key == 0) return NULL;
  }
}

void **tg__idmap_slot_of(tg__idmap *m, uint64_t key) {
  if (!m->s) return NULL;
  for (size_t i = slot_of(key, m->mask);; i = (i + 1) & m->mask) {
    if (m->s[i].key == key) return &m->s[i].val;
    if (m->s[i].key == 0) return NULL;
  }
}

static bool rehash(tg__idmap *m, size_t slots) {
  tg__idmap_slot *s = tg__calloc(slots, sizeof *s);
  if (!s) return false;
  for (size_t i = 0; m->s && i <= m->mask; i++) {
    if (!m->s[i].key) continue;
    size_t j = slot_of(m->s[i].key, slots - 1);
    while (s[j].key) j = (j + 1) & (slots - 1);
    s[j] = m->s[i];
  }
  tg__free(m->s);
  m->s = s;
  m->mask = slots - 1;
  return true;
}

bool tg__idmap_put(tg__idmap *m, uint64_t key, void *val) {
  /* Up to three quarters full. Half full took fewer instructions per
   * lookup on the run's I/O thread but ran slower (twice the memory for
   * the maps of records in flight: more cache misses; W1, W2 and W3 on
   * processes:2 all 5-30% slower side by side). */
  if ((!m->s || (m->n + 1) * 4 > (m->mask + 1) * 3) &&
      !rehash(m, m->s ? (m->mask + 1) * 2 : 16))
    return false;
  size_t i = slot_of(key, m->mask);
  while (m->s[i].key && m->s[i].key != key) i = (i + 1) & m->mask;
  if (!m->s[i].key) m->n++;
  m->s[i].key = key;
  m->s[i].val = val;
  return true;
}

void *tg__idmap_del(tg__idmap *m, uint64_t key) {
  if (!m->s) return NULL;
  size_t i = slot_of(key, m->mask);
  while (m->s[i].key != key) {
    if (!m->s[i].key) return NULL;
    i = (i + 1) & m->mask;
  }
  void *val = m->s[i].val;
  m->n--;
  /* Backward shift: move later entries of the cluster into the hole when
   * their home slot does not lie between the hole and them. */
  for (size_t j = (i + 1) & m->mask; m->s[j].key; j = (j + 1) & m->mask) {
    size_t home = slot_of(m->s[j].key, m->mask);
    if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
      m->s[i] = m->s[j];
      i = j;
    }
  }
  m->s[i].key = 0;
  m->s[i].val = NULL;
  return val;
}
