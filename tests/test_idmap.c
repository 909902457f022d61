/* tests/test_idmap.c: the id map of both ends of the worker protocol
 * (lib/util/idmap.h), as a hash map and as a map of keys given in
 * sequence (a connection's records: each key in its own slot), checked
 * against a plain array of what it must hold after every step. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "util/idmap.h"

#define KEYS 20000

/* What m must hold: want[k] for keys 1..KEYS (NULL: absent). */
static void same(const tg__idmap *m, void **want) {
  size_t n = 0;
  for (uint64_t k = 1; k <= KEYS; k++) {
    cr_assert_eq(tg__idmap_get(m, k), want[k], "key %llu", (unsigned long long)k);
    n += want[k] != NULL;
  }
  cr_assert_eq(m->n, n);
  size_t seen = 0; /* iteration finds each exactly once */
  for (size_t i = 0; m->s && i <= m->mask; i++)
    if (m->s[i].key) {
      cr_assert_eq(m->s[i].val, want[m->s[i].key]);
      seen++;
    }
  cr_assert_eq(seen, n);
}

static void *val_of(uint64_t k) { return (void *)(uintptr_t)(k * 16 + 8); }

/* Keys given in order and mostly taken in order, a few left behind for
 * long, as a connection's records go: same contents as the reference,
 * whichever form the map takes meanwhile. */
static void sequence(tg__idmap *m) {
  void **want = calloc(KEYS + 1, sizeof *want);
  uint64_t next = 1, oldest = 1;
  unsigned seed = 7;
  while (next <= KEYS) {
    for (int i = 0; i < 50 && next <= KEYS; i++, next++) {
      cr_assert(tg__idmap_put(m, next, val_of(next)));
      want[next] = val_of(next);
    }
    /* the oldest ones end, but every 97th stays a long while */
    for (; oldest + 30 < next; oldest++) {
      if (oldest % 97 == 0 && next - oldest < 3000) break;
      if (!want[oldest]) continue;
      cr_assert_eq(tg__idmap_del(m, oldest), want[oldest]);
      want[oldest] = NULL;
    }
    /* and a few end out of order */
    seed = seed * 1103515245u + 12345u;
    uint64_t k = oldest + seed % (next - oldest);
    if (want[k]) {
      cr_assert_eq(tg__idmap_del(m, k), want[k]);
      want[k] = NULL;
    }
    cr_assert_null(tg__idmap_del(m, next + 5)); /* absent */
    void **slot = tg__idmap_slot_of(m, next - 1);
    cr_assert(slot == NULL ? want[next - 1] == NULL : *slot == want[next - 1]);
  }
  same(m, want);
  for (uint64_t k = 1; k <= KEYS; k++) /* empty it */
    if (want[k]) {
      cr_assert_eq(tg__idmap_del(m, k), want[k]);
      want[k] = NULL;
    }
  same(m, want);
  free(want);
}

Test(idmap, hash_map_follows_the_reference) {
  tg__idmap m = {0};
  sequence(&m);
  cr_expect_not(m.seq);
  tg__idmap_free(&m);
}

Test(idmap, sequence_map_follows_the_reference) {
  tg__idmap m = tg__idmap_seq();
  sequence(&m);
  cr_expect(m.seq, "empty again: each key in its own slot");
  sequence(&m); /* used again once empty */
  tg__idmap_free(&m);
  cr_expect(m.seq);
}

/* One key left behind while many newer ones pass: the map stops growing
 * its span (it works as a hash map), holds the same, and is a sequence
 * map again once empty. */
Test(idmap, sequence_map_with_one_old_key_stays_small) {
  tg__idmap m = tg__idmap_seq();
  void **want = calloc(KEYS + 1, sizeof *want);
  cr_assert(tg__idmap_put(&m, 1, val_of(1)));
  want[1] = val_of(1);
  for (uint64_t k = 2; k <= KEYS; k++) {
    cr_assert(tg__idmap_put(&m, k, val_of(k)));
    want[k] = val_of(k);
    if (k > 10) {
      cr_assert_eq(tg__idmap_del(&m, k - 8), want[k - 8]);
      want[k - 8] = NULL;
    }
  }
  cr_expect_not(m.seq, "a span of %d keys for 9 of them", KEYS);
  cr_expect_leq(m.mask + 1, 64, "%zu slots for 9 keys", m.mask + 1);
  same(&m, want);
  for (uint64_t k = 1; k <= KEYS; k++)
    if (want[k]) {
      cr_assert_eq(tg__idmap_del(&m, k), want[k]);
      want[k] = NULL;
    }
  cr_expect(m.seq);
  cr_assert(tg__idmap_put(&m, KEYS + 1, val_of(KEYS + 1)));
  cr_expect_eq(tg__idmap_get(&m, KEYS + 1), val_of(KEYS + 1));
  tg__idmap_free(&m);
  free(want);
}
