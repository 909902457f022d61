/* lib/sched/memo.c: a run's memoization in a tg_cache: lookups while the
 * plan is compiled, stores after timed calls (policy in memo.h). A cache
 * that fails (I/O, a child of fork()) only costs hits: every failure
 * here is a miss or a result not stored, never a failed compute. */
#include <string.h>

#include "memo.h"

tg__memo *tg__memo_new(const tg_graph *g, tg_cache *cache, bool probe) {
  size_t nfns = tg_registry_count(g->reg);
  /* one allocation: a compute that stores nothing allocates no more */
  tg__memo *m = tg__calloc(1, sizeof *m + (nfns ? nfns : 1) * sizeof *m->fns);
  if (!m) return NULL;
  m->cache = cache;
  m->min_seconds = tg__cache_min_seconds(cache);
  m->probe = probe;
  m->nfns = nfns;
  m->fns = (tg__memo_fn *)(m + 1);
  pthread_mutex_init(&m->mu, NULL);
  tg__keyer_init(&m->keyer, g, cache);
  tg__cache_funcs_refresh(cache);
  return m;
}

void tg__memo_free(tg__memo *m) {
  if (!m) return;
  tg__keyer_free(&m->keyer);
  pthread_mutex_destroy(&m->mu);
  tg__cache_tally_unref(m->tally);
  tg__free(m->t0);
  tg__free(m);
}

bool tg__memo_remote_timing(tg__memo *m, uint32_t ntasks) {
  m->t0 = tg__calloc(ntasks ? ntasks : 1, sizeof *m->t0);
  return m->t0 != NULL;
}

/* The key of node n when it can serve the cache. For a store (tally
 * set), also the run's tally, made by the first store. */
static bool usable_key(tg__memo *m, uint32_t n, tg_digest *key, tg__cache_tally **tally) {
  int why = 0;
  pthread_mutex_lock(&m->mu);
  int rc = tg__keyer_get(&m->keyer, n, key, &why);
  if (tally && !m->tally) m->tally = tg__cache_tally_new();
  if (tally) *tally = m->tally;
  pthread_mutex_unlock(&m->mu);
  return rc == TG_OK && why == TG__WHY_OK && (!tally || *tally);
}

/* Whether f's results may be in the cache (decided once per run). */
static bool worth_lookup(tg__memo *m, const tg_func *f) {
  if (!TG_ALWAYS(f->index < m->nfns)) return false;
  tg__memo_fn *s = &m->fns[f->index];
  if (!s->lookup) s->lookup = tg__cache_fn_has(m->cache, f->name) ? 1 : 2;
  return s->lookup == 1;
}

bool tg__memo_lookup(tg__memo *m, const tg_graph *g, uint32_t n, tg_value **out) {
  const tg__gnode *nd = &g->nodes[n];
  tg_digest key;
  *out = NULL;
  if (!tg__memo_cacheable(nd) || (nd->cache != 1 && !worth_lookup(m, nd->fn)) ||
      !usable_key(m, n, &key, NULL))
    return false;
  uint64_t size = 0;
  bool hit = m->probe ? tg_cache_contains(m->cache, key)
                      : tg__cache_get_sized(m->cache, key, out, &size) == TG_OK;
  atomic_fetch_add_explicit(hit ? &m->hits : &m->misses, 1, memory_order_relaxed);
  if (hit) atomic_fetch_add_explicit(&m->bytes_read, size, memory_order_relaxed);
  return hit;
}

/* Learn how fast f is: the streak of timed calls well under the
 * threshold (memo.h), written only while it changes. Returns whether f
 * was known to be fast before this call. */
static bool learn(tg__memo *m, const tg_func *f, double seconds) {
  if (m->min_seconds <= 0 || !TG_ALWAYS(f->index < m->nfns)) return false;
  _Atomic uint32_t *fast = &m->fns[f->index].fast;
  uint32_t now = atomic_load_explicit(fast, memory_order_relaxed);
  if (seconds < m->min_seconds / 8) {
    if (now < TG__MEMO_STREAK) atomic_fetch_add_explicit(fast, 1, memory_order_relaxed);
  } else if (now) {
    atomic_store_explicit(fast, 0, memory_order_relaxed);
  }
  return now >= TG__MEMO_STREAK;
}

void tg__memo_done(tg__memo *m, const tg__run *r, uint32_t node, tg_value *v,
                   double seconds) {
  const tg__gnode *nd = &r->g->nodes[node];
  const tg_func *f = nd->fn;
  tg_digest key;
  tg__cache_tally *tally = NULL;
  bool was_fast = learn(m, f, seconds);
  bool always = nd->cache == 1 || m->min_seconds < 0;
  /* One slow call of a function known to be fast is most likely a
   * preempted one: it only ends the streak (the next slow call is
   * stored). Storing it would make every later compute look the
   * function's nodes up. */
  if (m->probe || (!always && (seconds < m->min_seconds || was_fast)) ||
      !usable_key(m, node, &key, &tally))
    return;
  char kb[TG__NAME_MAX + 32];
  const char *nkey = tg__graph_key(r->g, node, kb, sizeof kb);
  tg__cache_putx x = {f->name,   seconds, true, tg__lineage_id(f->name, nkey),
                      tg__func_identity(f), tally};
  if (tg__cache_put_ex(m->cache, key, v, &x) == TG_OK)
    atomic_fetch_add_explicit(&m->stores, 1, memory_order_relaxed);
}
