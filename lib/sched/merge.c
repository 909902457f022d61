/* lib/sched/merge.c: identical pure calls of one plan merged into one
 * task (see merge.h for what counts as identical, and why). */
#include <string.h>

#include "merge.h"
#include "value/value_internal.h" /* immediates, the type tag */

#define SMALL_BYTES 256 /* strings, bytes and arrays compared by value */
#define SMALL_ITEMS 64  /* budget of list and map items compared by value */

static inline uint64_t mix(uint64_t h, uint64_t x) {
  h = (h ^ x) * UINT64_C(0x9E3779B97F4A7C15);
  return h ^ (h >> 29);
}

/* Whether v is small enough to be hashed and compared by value; spends
 * *budget on list and map items. A property of the value alone, so two
 * equal values are both small or both not. */
static bool small(const tg_value *v, int *budget) {
  size_t len = 0, n;
  if (--*budget < 0) return false;
  switch (tg_value_type(v)) {
    case TG_STR: tg_str_data(v, &len); return len < SMALL_BYTES;
    case TG_BYTES: tg_bytes_data(v, &len); return len < SMALL_BYTES;
    case TG_NDARRAY: return tg_ndarray_nbytes(v) < SMALL_BYTES;
    case TG_LIST:
      n = tg_list_len(v);
      for (size_t i = 0; i < n; i++)
        if (!small(tg_list_get(v, i), budget)) return false;
      return true;
    case TG_MAP:
      n = tg_map_len(v);
      for (size_t i = 0; i < n; i++) {
        size_t kl = 0;
        tg_map_key_at(v, i, &kl);
        if (kl >= SMALL_BYTES || !small(tg_map_value_at(v, i), budget)) return false;
      }
      return true;
    default: return true;
  }
}

/* A hash of constant v consistent with const_same. Scalars inline (the
 * common case, and cheap); large values by identity. */
static inline uint64_t const_hash(const tg_value *v) {
  /* Small ints are immediates: one int, one pointer, never boxed. */
  if (tg__is_imm(v)) return (uint64_t)(uintptr_t)v;
  tg_type t = (tg_type)v->type;
  uint64_t bits = 0;
  switch (t) {
    case TG_NULL: break;
    case TG_BOOL: bits = tg_value_bool(v); break;
    case TG_INT: bits = (uint64_t)tg_value_int(v); break;
    case TG_FLOAT: {
      double d = tg_value_float(v);
      if (d != d) d = __builtin_nan(""); /* every NaN is one (tg_value_equal) */
      memcpy(&bits, &d, sizeof bits);
      break;
    }
    default: {
      int budget = SMALL_ITEMS;
      bits = small(v, &budget) ? tg_value_hash(v).lo : (uint64_t)(uintptr_t)v;
    }
  }
  return mix((uint64_t)t + 1, bits);
}

static bool const_same(const tg_value *a, const tg_value *b) {
  if (a == b) return true;
  int ba = SMALL_ITEMS, bb = SMALL_ITEMS;
  return small(a, &ba) && small(b, &bb) && tg_value_equal(a, b);
}

static uint64_t str_hash(const char *s) {
  uint64_t h = 0;
  while (*s) h = mix(h, (unsigned char)*s++);
  return h;
}

static inline uint64_t node_hash(const tg_graph *g, const tg__gnode *nd, const uint32_t *task_of) {
  /* The options rarely differ: same_call compares them; the hash takes
   * the function and the argument count only. */
  uint64_t h = mix((uint64_t)(uintptr_t)nd->fn, (uint64_t)nd->nargs << 8 | nd->kind);
  const tg__garg *a = tg__node_args(g, nd);
  for (uint32_t j = 0; j < nd->nargs; j++) {
    switch (a[j].kind) {
      case TG_ARG_VALUE: h = mix(h, const_hash(a[j].u.value)); break;
      case TG_ARG_FUTURE: h = mix(h, (uint64_t)(uintptr_t)a[j].u.future); break;
      case TG_ARG_ITEM: h = mix(h, (uint64_t)a[j].u.index); /* fall through */
      case TG_ARG_NODE: h = mix(h, task_of[a[j].node] | (uint64_t)a[j].kind << 32); break;
      case TG_ARG_KEY:
        h = mix(h, task_of[a[j].node] | (uint64_t)a[j].kind << 32);
        h = mix(h, str_hash(g->keys + a[j].u.key));
        break;
    }
  }
  return h;
}

static bool same_call(const tg_graph *g, const tg__gnode *x, const tg__gnode *y,
                      const uint32_t *task_of) {
  if (x->fn != y->fn || x->nargs != y->nargs || x->kind != y->kind || x->aux != y->aux ||
      x->retries != y->retries || x->cache != y->cache || x->timeout != y->timeout)
    return false;
  const tg__garg *a = tg__node_args(g, x), *b = tg__node_args(g, y);
  for (uint32_t j = 0; j < x->nargs; j++) {
    if (a[j].kind != b[j].kind) return false;
    switch (a[j].kind) {
      case TG_ARG_VALUE:
        if (!const_same(a[j].u.value, b[j].u.value)) return false;
        break;
      case TG_ARG_FUTURE:
        if (a[j].u.future != b[j].u.future) return false;
        break;
      default:
        if (task_of[a[j].node] != task_of[b[j].node]) return false;
        if (a[j].kind == TG_ARG_ITEM && a[j].u.index != b[j].u.index) return false;
        if (a[j].kind == TG_ARG_KEY && strcmp(g->keys + a[j].u.key, g->keys + b[j].u.key))
          return false;
    }
  }
  return true;
}

void tg__merge_free(tg__merge *m) {
  tg__free(m->slot);
  tg__merge_init(m);
}

/* A slot holds the task index + 1 (low half; 0: empty) and the high half
 * of its hash, from which its home slot is taken: a probe reads the slot
 * alone (one cache miss per probe in a table too large for the caches),
 * and growing needs nothing else. */
static inline size_t home_of(uint64_t h, size_t mask) { return (size_t)(h >> 32) & mask; }
static inline uint64_t slot_of(uint64_t h, uint32_t task) {
  return (h >> 32) << 32 | ((uint64_t)task + 1);
}

/* A table of cap slots (a power of two) holding m's tasks. The table
 * stops at 2^32 slots (their halves hold the home slot). */
static bool resize(tg__merge *m, size_t cap) {
  if (cap > ((size_t)1 << 32)) return false;
  uint64_t *s = tg__calloc(cap, sizeof *s);
  if (!s) return false;
  for (size_t i = 0; i < m->cap; i++) { /* rehash from the slots' halves */
    if (!m->slot[i]) continue;
    size_t k = home_of(m->slot[i], cap - 1);
    while (s[k]) k = (k + 1) & (cap - 1);
    s[k] = m->slot[i];
  }
  tg__free(m->slot);
  m->slot = s;
  m->cap = cap;
  return true;
}

int tg__merge_reserve(tg__merge *m, size_t n) {
  size_t cap = 512;
  while (cap < 2 * n) cap *= 2;
  return cap <= m->cap || resize(m, cap) ? TG_OK : TG_ENOMEM;
}

/* Whether nd's hash depends on constants alone (no input tasks). */
static bool consts_only(const tg_graph *g, const tg__gnode *nd) {
  const tg__garg *a = tg__node_args(g, nd);
  for (uint32_t j = 0; j < nd->nargs; j++)
    if (a[j].kind != TG_ARG_VALUE) return false;
  return true;
}

void tg__merge_prefetch(const tg__merge *m, const tg_graph *g, uint32_t node) {
  const tg__gnode *nd = &g->nodes[node];
  if (!m->cap || !nd->fn || !(nd->fn->flags & TG_FUNC_PURE) || nd->nargs > 4 || !consts_only(g, nd))
    return;
  __builtin_prefetch(&m->slot[home_of(node_hash(g, nd, NULL), m->cap - 1)]);
}

int tg__merge_place(tg__merge *m, const tg_graph *g, uint32_t node,
                    const uint32_t *task_of, const uint32_t *order,
                    uint32_t next, uint32_t *same) {
  *same = UINT32_MAX;
  const tg__gnode *nd = &g->nodes[node];
  if (!(nd->fn->flags & TG_FUNC_PURE)) return TG_OK; /* impure calls may differ */
  if ((m->n + 1) * 2 > m->cap && !resize(m, m->cap ? 2 * m->cap : 512)) return TG_ENOMEM;
  uint64_t h = node_hash(g, nd, task_of), tag = h >> 32 << 32;
  size_t mask = m->cap - 1, i = home_of(h, mask);
  for (; m->slot[i]; i = (i + 1) & mask) {
    if ((m->slot[i] >> 32 << 32) != tag) continue;
    uint32_t t = (uint32_t)m->slot[i] - 1;
    if (same_call(g, nd, &g->nodes[order[t]], task_of)) {
      *same = t;
      return TG_OK;
    }
  }
  m->slot[i] = slot_of(h, next);
  m->n++;
  return TG_OK;
}
