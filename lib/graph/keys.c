/* lib/graph/keys.c: node keys: the arena of user keys, their hash index,
 * generated "FN#ID" keys (formatted on demand), and lookup by key. */
#include <string.h>

#include "graph_internal.h"
#include "value/value_internal.h" /* tg__map_key_hash */

int tg__graph_reserve_keys(tg_graph *g, size_t more) {
  if (more == 0) return TG_OK;
  if (more > UINT32_MAX - 1 - g->keys_len) return TG_ELIMIT;
  size_t need = g->keys_len + more;
  if (need <= g->keys_cap) return TG_OK;
  size_t c = g->keys_cap ? g->keys_cap : 256;
  while (c < need) c *= 2;
  char *p = tg__realloc(g->keys, c);
  if (!p) return TG_ENOMEM;
  tg__advise_huge(p, c);
  g->keys = p;
  g->keys_cap = c;
  return TG_OK;
}

size_t tg__graph_put_key(tg_graph *g, const char *s, size_t len) {
  size_t off = g->keys_len;
  memcpy(g->keys + off, s, len);
  g->keys[off + len] = '\0';
  g->keys_len += len + 1;
  return off;
}

static const char *user_key(const tg_graph *g, tg_node n) {
  return g->keys + g->nodes[n].key - 1;
}

/* Slot holding s, or the empty slot where it would go. */
static size_t slot_of(const tg_graph *g, const char *s, size_t len) {
  size_t mask = g->kindex_cap - 1;
  for (size_t i = tg__map_key_hash(s, len) & mask;; i = (i + 1) & mask) {
    uint32_t e = g->kindex[i];
    if (e == 0) return i;
    const char *k = user_key(g, e - 1);
    if (strncmp(k, s, len) == 0 && k[len] == '\0') return i;
  }
}

int tg__graph_reserve_index(tg_graph *g, size_t more) {
  if ((g->nkeys + more) * 2 <= g->kindex_cap) return TG_OK;
  size_t c = g->kindex_cap ? g->kindex_cap : 64;
  while ((g->nkeys + more) * 2 > c) c *= 2;
  uint32_t *idx = tg__calloc(c, sizeof *idx);
  if (!idx) return TG_ENOMEM;
  tg__advise_huge(idx, c * sizeof *idx); /* read at random */
  uint32_t *old = g->kindex;
  size_t oldcap = g->kindex_cap;
  g->kindex = idx;
  g->kindex_cap = c;
  for (size_t i = 0; i < oldcap; i++) {
    if (!old[i]) continue;
    const char *k = user_key(g, old[i] - 1);
    g->kindex[slot_of(g, k, strlen(k))] = old[i];
  }
  tg__free(old);
  return TG_OK;
}

void tg__graph_index_key(tg_graph *g, tg_node n) {
  const char *k = user_key(g, n);
  g->kindex[slot_of(g, k, strlen(k))] = n + 1;
  g->nkeys++;
}

#define BATCH 16 /* insertions in flight: their slots are prefetched together */

int tg__graph_index_since(tg_graph *g, size_t from) {
  size_t more = 0;
  for (size_t i = from; i < g->n; i++) more += g->nodes[i].key != 0;
  int rc = tg__graph_reserve_index(g, more);
  if (rc != TG_OK) return rc;
  size_t mask = g->kindex_cap - 1, h[BATCH];
  tg_node id[BATCH];
  for (size_t i = from; i < g->n;) {
    size_t m = 0;
    for (; i < g->n && m < BATCH; i++) {
      if (!g->nodes[i].key) continue;
      const char *k = user_key(g, (tg_node)i);
      h[m] = tg__map_key_hash(k, strlen(k)) & mask;
      id[m++] = (tg_node)i;
      __builtin_prefetch(&g->kindex[h[m - 1]], 1);
    }
    /* The keys are new: the first empty slot is theirs, no key compare.
     * A node added by the plain path meanwhile (a graph.json map node) is
     * indexed already: its id is met on the way and it is left. */
    for (size_t j = 0; j < m; j++) {
      size_t s = h[j];
      while (g->kindex[s] != 0 && g->kindex[s] != id[j] + 1) s = (s + 1) & mask;
      if (g->kindex[s] != 0) continue;
      g->kindex[s] = id[j] + 1;
      g->nkeys++;
    }
  }
  return TG_OK;
}

tg_node tg__graph_find_user(const tg_graph *g, const char *s, size_t len) {
  if (g->nkeys == 0) return TG_NODE_NONE;
  uint32_t e = g->kindex[slot_of(g, s, len)];
  return e ? e - 1 : TG_NODE_NONE;
}

/* Copy len bytes of s to buf at *at, as far as size allows (one byte is
 * kept for the terminator); *at counts every byte, written or not. */
static void put_part(char *buf, size_t size, size_t *at, const char *s, size_t len) {
  if (*at + 1 < size) memcpy(buf + *at, s, len < size - 1 - *at ? len : size - 1 - *at);
  *at += len;
}

int tg__key_generated(char *buf, size_t size, const char *name, size_t name_len,
                      unsigned kind, uint32_t id) {
  static const char *const suffix[] = {"", ".chunk", ".map"};
  static const uint8_t suffix_len[] = {0, 6, 4};
  char digits[16];
  size_t nd_len = 0, at = 0;
  do digits[sizeof digits - 1 - nd_len++] = (char)('0' + id % 10);
  while ((id /= 10) != 0);
  digits[sizeof digits - 1 - nd_len] = '#';
  put_part(buf, size, &at, name, name_len);
  put_part(buf, size, &at, suffix[kind % 3], suffix_len[kind % 3]);
  put_part(buf, size, &at, digits + sizeof digits - 1 - nd_len, nd_len + 1);
  if (size) buf[at < size ? at : size - 1] = '\0';
  return (int)at;
}

static int gen_key(const tg_graph *g, tg_node n, char *buf, size_t size) {
  const tg__gnode *nd = &g->nodes[n];
  return tg__key_generated(buf, size, nd->fn->name, nd->fn->name_len, nd->kind,
                           tg__graph_key_id(g, n));
}

const char *tg__graph_key(const tg_graph *g, tg_node n, char *buf,
                          size_t size) {
  if (g->nodes[n].key) return user_key(g, n);
  gen_key(g, n, buf, size);
  return buf;
}

const char *tg__graph_key_len(const tg_graph *g, tg_node n, char *buf, size_t size,
                              size_t *len) {
  if (g->nodes[n].key) {
    const char *k = user_key(g, n);
    *len = strlen(k);
    return k;
  }
  size_t l = (size_t)gen_key(g, n, buf, size);
  *len = l < size ? l : size - 1;
  return buf;
}

int tg_node_key(const tg_graph *g, tg_node n, char *buf, size_t size) {
  if (!g || n >= g->n) return -1;
  if (!g->nodes[n].key) return gen_key(g, n, buf, buf ? size : 0);
  const char *k = user_key(g, n);
  size_t len = strlen(k);
  if (buf && size) {
    size_t c = len < size ? len : size - 1;
    memcpy(buf, k, c);
    buf[c] = '\0';
  }
  return len > INT32_MAX ? INT32_MAX : (int)len;
}

tg_node tg_graph_find(const tg_graph *g, const char *key) {
  if (!g || !key) return TG_NODE_NONE;
  size_t len = strlen(key);
  tg_node n = tg__graph_find_user(g, key, len);
  if (n != TG_NODE_NONE) return n;
  /* A generated key names its id after the last '#'. */
  const char *h = strrchr(key, '#');
  if (!h || !h[1] || (h[1] == '0' && h[2])) return TG_NODE_NONE;
  unsigned long long id = 0;
  for (const char *p = h + 1; *p; p++) {
    if (*p < '0' || *p > '9' || id > UINT32_MAX) return TG_NODE_NONE;
    id = id * 10 + (unsigned)(*p - '0');
  }
  if (g->orig) { /* copies keep original ids: search */
    for (size_t i = 0; i < g->n; i++)
      if (g->orig[i] == id) { id = i; goto check; }
    return TG_NODE_NONE;
  }
check:
  if (id >= g->n || g->nodes[id].key) return TG_NODE_NONE;
  char buf[TG__NAME_MAX + 32];
  int l = gen_key(g, (tg_node)id, buf, sizeof buf);
  return l >= 0 && (size_t)l == len && memcmp(buf, key, len) == 0 ? (tg_node)id
                                                                 : TG_NODE_NONE;
}
