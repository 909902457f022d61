/* lib/util/idmap.c: the open-addressing map of util/idmap.h. */
#include "util/idmap.h"

#include "internal.h"

/* A sequence map's span of live keys may take this many times the slots
 * its keys would fill at three quarters, before it becomes a hash map. */
#define SEQ_SPAN_MAX 8

static inline size_t slot_of(uint64_t key, size_t mask) {
  key ^= key >> 33; /* a murmur3 finaliser spreads sequential ids */
  key *= UINT64_C(0xff51afd7ed558ccd);
  key ^= key >> 33;
  return (size_t)key & mask;
}

static inline size_t home_of(const tg__idmap *m, uint64_t key, size_t mask) {
  return m->seq ? (size_t)key & mask : slot_of(key, mask);
}

void tg__idmap_free(tg__idmap *m) {
  tg__free(m->s);
  m->s = NULL;
  m->mask = 0;
  m->n = 0;
  m->seq = m->seq_asked;
}

void *tg__idmap_get(const tg__idmap *m, uint64_t key) {
  if (!m->s) return NULL;
  if (m->seq) {
    const tg__idmap_slot *e = &m->s[key & m->mask];
    return e->key == key ? e->val : NULL;
  }
  for (size_t i = slot_of(key, m->mask);; i = (i + 1) & m->mask) {
    if (m->s[i].key == key) return m->s[i].val;
    if (m->s[i].key == 0) return NULL;
  }
}

void **tg__idmap_slot_of(tg__idmap *m, uint64_t key) {
  if (!m->s) return NULL;
  if (m->seq) {
    tg__idmap_slot *e = &m->s[key & m->mask];
    return e->key == key ? &e->val : NULL;
  }
  for (size_t i = slot_of(key, m->mask);; i = (i + 1) & m->mask) {
    if (m->s[i].key == key) return &m->s[i].val;
    if (m->s[i].key == 0) return NULL;
  }
}

/* Move every key into `slots` slots. A sequence map whose keys would
 * share a slot there is left as it was: false with *clash set. */
static bool rehash(tg__idmap *m, size_t slots, bool *clash) {
  tg__idmap_slot *s = tg__calloc(slots, sizeof *s);
  if (!s) return false;
  for (size_t i = 0; m->s && i <= m->mask; i++) {
    if (!m->s[i].key) continue;
    size_t j = home_of(m, m->s[i].key, slots - 1);
    if (m->seq && s[j].key) {
      tg__free(s);
      *clash = true;
      return false;
    }
    while (s[j].key) j = (j + 1) & (slots - 1);
    s[j] = m->s[i];
  }
  tg__free(m->s);
  m->s = s;
  m->mask = slots - 1;
  return true;
}

/* Room for key in sequence map m, which has none (its slot holds another
 * key, or m has no slots): slots doubled until its live keys and key each
 * have their own, or m made a hash map when that takes more than
 * SEQ_SPAN_MAX times the slots its keys need. False out of memory. */
static bool seq_room(tg__idmap *m, uint64_t key) {
  size_t need = 16;
  while (need * 3 < (m->n + 1) * 4) need *= 2;
  for (size_t slots = m->s ? (m->mask + 1) * 2 : 16; slots <= need * SEQ_SPAN_MAX; slots *= 2) {
    bool clash = false;
    if (!rehash(m, slots, &clash)) {
      if (!clash) return false;
      continue;
    }
    const tg__idmap_slot *e = &m->s[key & m->mask];
    if (!e->key || e->key == key) return true;
  }
  bool clash = false; /* a hash map until it is empty again */
  m->seq = false;
  if (rehash(m, need, &clash)) return true;
  m->seq = true;
  return false;
}

bool tg__idmap_put(tg__idmap *m, uint64_t key, void *val) {
  if (m->seq) {
    tg__idmap_slot *e = m->s ? &m->s[key & m->mask] : NULL;
    if ((!e || (e->key && e->key != key)) && !seq_room(m, key)) return false;
    if (m->seq) {
      e = &m->s[key & m->mask];
      if (!e->key) m->n++;
      e->key = key;
      e->val = val;
      return true;
    }
  }
  /* Up to three quarters full. Half full took fewer instructions per
   * lookup on the run's I/O thread but ran slower (twice the memory for
   * the maps of records in flight: more cache misses; W1, W2 and W3 on
   * processes:2 all 5-30% slower side by side). */
  bool clash = false;
  if ((!m->s || (m->n + 1) * 4 > (m->mask + 1) * 3) &&
      !rehash(m, m->s ? (m->mask + 1) * 2 : 16, &clash))
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
  if (m->seq) {
    tg__idmap_slot *e = &m->s[key & m->mask];
    if (e->key != key) return NULL;
    void *val = e->val;
    e->key = 0;
    e->val = NULL;
    m->n--;
    return val;
  }
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
    size_t home = slot_of(m->s[j].key, m->mask); /* not seq: a hash map */
    if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
      m->s[i] = m->s[j];
      i = j;
    }
  }
  m->s[i].key = 0;
  m->s[i].val = NULL;
  if (m->n == 0 && m->seq_asked) m->seq = true; /* empty: every key at home */
  return val;
}
