/* lib/graph/chash.c: the digests of a graph's large constants.
 *
 * Large constants (arrays, strings and bytes of at least CHASH_MIN bytes,
 * lists, maps) are hashed once per graph: their digests stay in the graph
 * (g->chash, by argument index), since arguments never change once added.
 * Node keys (lib/memo/keyer.c) read constants' digests through here.
 */
#include "graph_internal.h"

#define CHASH_MIN 4096 /* bytes from which a constant's digest is kept */

typedef struct chash_slot {
  uint32_t arg1; /* argument index + 1; 0 = empty */
  tg_digest d;
} chash_slot;

struct tg__chash {
  chash_slot *s;
  size_t cap, n; /* cap a power of two */
};

void tg__graph_chash_free(tg_graph *g) {
  if (!g->chash) return;
  tg__free(g->chash->s);
  tg__free(g->chash);
  g->chash = NULL;
}

size_t tg__graph_chash_count(const tg_graph *g) { return g->chash ? g->chash->n : 0; }

static bool worth_keeping(const tg_value *v) {
  size_t len = 0;
  switch (tg_value_type(v)) {
    case TG_NDARRAY: return tg_ndarray_nbytes(v) >= CHASH_MIN;
    case TG_STR: tg_str_data(v, &len); return len >= CHASH_MIN;
    case TG_BYTES: tg_bytes_data(v, &len); return len >= CHASH_MIN;
    case TG_LIST:
    case TG_MAP: return true;
    default: return false;
  }
}

static size_t chash_find(const struct tg__chash *h, uint32_t arg) {
  size_t mask = h->cap - 1;
  size_t i = (arg * UINT32_C(2654435761)) & mask;
  while (h->s[i].arg1 && h->s[i].arg1 != arg + 1) i = (i + 1) & mask;
  return i;
}

/* Keep d for argument `arg` (out of memory: not kept). */
static void chash_put(tg_graph *g, uint32_t arg, tg_digest d) {
  struct tg__chash *h = g->chash;
  if (!h && !(h = g->chash = tg__calloc(1, sizeof *h))) return;
  if ((h->n + 1) * 2 > h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 16;
    chash_slot *old = h->s, *s = tg__calloc(cap, sizeof *s);
    if (!s) return;
    size_t oldcap = h->cap;
    h->s = s, h->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
      if (old[i].arg1) h->s[chash_find(h, old[i].arg1 - 1)] = old[i];
    tg__free(old);
  }
  size_t i = chash_find(h, arg);
  if (!h->s[i].arg1) h->n++;
  h->s[i] = (chash_slot){arg + 1, d};
}

void tg__graph_chash_drop_from(tg_graph *g, size_t from) {
  struct tg__chash *h = g->chash;
  if (!h || !h->n) return;
  chash_slot *old = h->s;
  size_t oldcap = h->cap;
  if (!(h->s = tg__calloc(oldcap, sizeof *h->s))) { /* forget them all */
    h->s = old;
    tg__graph_chash_free(g);
    return;
  }
  h->n = 0;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].arg1 && old[i].arg1 - 1 < from) {
      h->s[chash_find(h, old[i].arg1 - 1)] = old[i];
      h->n++;
    }
  tg__free(old);
}

/* The graph is written only through its digest cache, which is no part
 * of its meaning (hence the cast). */
tg_digest tg__graph_const_digest(const tg_graph *g, uint32_t arg) {
  const tg_value *v = g->args[arg].u.value;
  if (!worth_keeping(v)) return tg_value_hash(v);
  const struct tg__chash *h = g->chash;
  if (h && h->cap) {
    size_t i = chash_find(h, arg);
    if (h->s[i].arg1) return h->s[i].d;
  }
  tg_digest d = tg_value_hash(v);
  chash_put((tg_graph *)g, arg, d);
  return d;
}
