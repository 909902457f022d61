/* lib/memo/memo.c: a run's memoization in a tg_cache: lookups while the
 * plan is compiled, stores after timed calls (policy in memo.h). A cache
 * that fails (I/O, a child of fork()) only costs hits: every failure
 * here is a miss or a result not stored, never a failed compute. */
#include <stdio.h>
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
  m->usable = tg__cache_funcs_refresh(cache);
  return m;
}

void tg__memo_free(tg__memo *m) {
  if (!m) return;
  tg__keyer_free(&m->keyer);
  pthread_mutex_destroy(&m->mu);
  tg__cache_tally_unref(m->tally);
  tg__free(m->t0);
  tg__free(m->forced);
  tg__free(m);
}

bool tg__memo_remote_timing(tg__memo *m, uint32_t ntasks) {
  m->t0 = tg__calloc(ntasks ? ntasks : 1, sizeof *m->t0);
  return m->t0 != NULL;
}

int tg__memo_force(tg__memo *m, const tg_graph *g, const tg_node *force, size_t n,
                   char *msg, size_t msize) {
  for (size_t i = 0; i < n; i++)
    if (force[i] >= g->n) {
      snprintf(msg, msize, "tg_compute_opts.force[%zu] is node %u, not a node of the "
               "graph (%zu nodes)", i, (unsigned)force[i], g->n);
      return TG_EINVAL;
    }
  if (!n) return TG_OK;
  if (!(m->forced = tg__calloc(g->n, 1))) {
    snprintf(msg, msize, "out of memory forcing %zu nodes", n);
    return TG_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) m->forced[force[i]] = 2; /* 2: named, 1: a dependent */
  /* A node's inputs come before it (nodes only refer to existing ones),
   * so one pass in id order reaches every dependent. */
  for (size_t id = 0; id < g->n; id++) {
    const tg__gnode *nd = &g->nodes[id];
    const tg__garg *a = tg__node_args(g, nd);
    for (uint32_t j = 0; j < nd->nargs && !m->forced[id]; j++)
      if (tg__arg_is_node(a[j].kind) && TG_ALWAYS(a[j].node < id))
        m->forced[id] = m->forced[a[j].node] != 0;
  }
  return TG_OK;
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
  if (!tg__memo_cacheable(nd) || tg__memo_forced(m, n) ||
      (nd->cache != 1 && !worth_lookup(m, nd->fn)) || !usable_key(m, n, &key, NULL))
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

/* Note that a call of f was not stored, and why: on f, for the run's
 * record (memo.h). The last such call's figures win. */
static void note(tg__memo *m, const tg_func *f, int kind, double seconds) {
  if (!TG_ALWAYS(f->index < m->nfns)) return;
  tg__memo_fn *mf = &m->fns[f->index];
  atomic_store_explicit(&mf->note_seconds, seconds, memory_order_relaxed);
  atomic_store_explicit(&mf->func, f, memory_order_relaxed);
  atomic_store_explicit(&mf->note, (uint8_t)kind, memory_order_relaxed);
}

void tg__memo_done(tg__memo *m, const tg_graph *g, uint32_t node, tg_value *v,
                   double seconds) {
  const tg__gnode *nd = &g->nodes[node];
  const tg_func *f = nd->fn;
  tg_digest key;
  tg__cache_tally *tally = NULL;
  bool was_fast = learn(m, f, seconds);
  bool always = nd->cache == 1 || m->min_seconds < 0 || tg__memo_forced(m, node);
  if (m->probe) return;
  /* One slow call of a function known to be fast is most likely a
   * preempted one: it only ends the streak (the next slow call is
   * stored). Storing it would make every later compute look the
   * function's nodes up. */
  if (!always && (seconds < m->min_seconds || was_fast)) {
    /* A function known to be fast has one call in 64 timed: noting
     * those would cost its hot path and tell little more. */
    if (!was_fast) note(m, f, TG_NOTE_UNDER_THRESHOLD, seconds);
    else if (seconds >= m->min_seconds) note(m, f, TG_NOTE_FAST_FUNCTION, seconds);
    return;
  }
  if (!usable_key(m, node, &key, &tally)) return;
  char kb[TG__NAME_MAX + 32];
  const char *nkey = tg__graph_key(g, node, kb, sizeof kb);
  tg__cache_putx x = {f->name,   seconds, true, tg__lineage_id(f->name, nkey),
                      tg__func_identity(f), tally};
  if (tg__cache_put_ex(m->cache, key, v, &x) == TG_OK) {
    atomic_fetch_add_explicit(&m->stores, 1, memory_order_relaxed);
    if (TG_ALWAYS(f->index < m->nfns)) {
      atomic_store_explicit(&m->fns[f->index].func, f, memory_order_relaxed);
      atomic_store_explicit(&m->fns[f->index].stored, 1, memory_order_relaxed);
    }
  }
}

/* The run's notes: one per function with a call not stored (kind
 * TG_NOTE_NONE: the function's results were stored and none was left
 * out, its old note is dropped), then the failed puts. */
static size_t collect_notes(tg__memo *m, tg__cache_tally *t, tg__cache_note **out) {
  size_t nf = 0, nfailed = 0, n = 0;
  for (size_t i = 0; i < m->nfns; i++)
    nf += atomic_load_explicit(&m->fns[i].func, memory_order_relaxed) != NULL;
  if (t) {
    pthread_mutex_lock(&t->mu);
    nfailed = t->nfailed;
    pthread_mutex_unlock(&t->mu);
  }
  *out = NULL;
  if (!nf && !nfailed) return 0;
  tg__cache_note *all = tg__malloc((nf + nfailed) * sizeof *all);
  if (!all) return 0; /* notes are worth no failure */
  for (size_t i = 0; i < m->nfns && nf; i++) {
    tg__memo_fn *mf = &m->fns[i];
    const tg_func *f = atomic_load_explicit(&mf->func, memory_order_relaxed);
    if (!f) continue;
    int kind = atomic_load_explicit(&mf->note, memory_order_relaxed);
    all[n++] = (tg__cache_note){
        tg__func_note_id(f->name), atomic_load_explicit(&mf->note_seconds, memory_order_relaxed),
        kind == TG_NOTE_UNDER_THRESHOLD ? m->min_seconds : -1, kind, 0};
  }
  /* the writer is done with the run's puts: t->failed is still */
  if (nfailed) memcpy(all + n, t->failed, nfailed * sizeof *all), n += nfailed;
  *out = all;
  return n;
}

void tg__memo_record(tg__memo *m) {
  tg__cache_tally *t = m->tally;
  tg_cache_run_counts counts = {atomic_load(&m->hits), m->computed,
                                t ? atomic_load(&t->stores) : 0,
                                atomic_load(&m->bytes_read), t ? atomic_load(&t->bytes) : 0};
  if (!m->usable) return;
  tg__cache_note *notes;
  size_t n = collect_notes(m, t, &notes);
  if (counts.hits || counts.misses || counts.stores || n)
    tg__cache_record_run(m->cache, &counts, notes, n);
  tg__free(notes);
}
