/* lib/sched/explain.c: tg_compute_explain, the dry run: the plan a
 * compute would make (with cache lookups that only test presence), and
 * for each of its tasks whether it would run and why, from the node's key
 * and the lineage the cache keeps of what was stored for it. */
#include <stdio.h>
#include <string.h>

#include "memo.h"

/* Texts for TG__WHY_* reasons that make a node uncacheable. */
static const char *why_text(int why) {
  switch (why) {
    case TG__WHY_IMPURE: return "impure function";
    case TG__WHY_INPUT: return "depends on a task that cannot be cached";
    case TG__WHY_FILE_PATH: return "reads a file whose path is not a constant string";
    case TG__WHY_FILE_READ: return "reads a file that cannot be read";
    case TG__WHY_FUTURE: return "has a future as an argument";
    default: return "not cacheable";
  }
}

/* State of a task that is not served from the cache. */
static tg_explain_state miss_state(tg__memo *m, const tg__gnode *nd, const char *nkey,
                                   tg_digest key, int why, const char **text) {
  if (!m) return *text = "no cache", TG_EXPLAIN_RUN;
  if (!tg__memo_cacheable(nd)) {
    *text = nd->cache == 0 ? "opted out (cache = 0)" : "impure function";
    return TG_EXPLAIN_UNCACHEABLE;
  }
  if (why) return *text = why_text(why), TG_EXPLAIN_UNCACHEABLE;
  tg_digest last, fnid;
  if (tg__cache_lineage_get(m->cache, tg__lineage_id(nd->fn->name, nkey), &last,
                            &fnid) != TG_OK)
    return *text = "not in the cache", TG_EXPLAIN_RUN;
  if (!tg_digest_equal(fnid, tg__func_identity(nd->fn)))
    return *text = "its function changed (version or plugin)", TG_EXPLAIN_FUNC_CHANGED;
  if (!tg_digest_equal(last, key))
    return *text = "an input changed", TG_EXPLAIN_INPUT_CHANGED;
  return *text = "not in the cache (its entry was removed)", TG_EXPLAIN_RUN;
}

/* Report every task of plan p in order; stops when cb returns non-zero. */
static int report(const tg_graph *g, const tg__runplan *p, tg__memo *m, tg__keyer *k,
                  tg_explain_cb cb, void *ctx) {
  char kb[TG__NAME_MAX + 32];
  for (uint32_t i = 0; i < p->ntasks; i++) {
    const tg__task *t = &p->tasks[i];
    const tg__gnode *nd = &g->nodes[t->node];
    tg_explain_task e = {t->node, tg__graph_key(g, t->node, kb, sizeof kb), nd->fn->name,
                         TG_EXPLAIN_CACHED, "in the cache", ""};
    tg_digest key;
    int why = 0;
    if (m) pthread_mutex_lock(&m->mu);
    int rc = tg__keyer_get(k, t->node, &key, &why);
    if (m) pthread_mutex_unlock(&m->mu);
    if (rc) return rc;
    tg_digest_hex(key, e.cache_key);
    if (!(t->flags & TG__T_CACHED)) e.state = miss_state(m, nd, e.key, key, why, &e.why);
    if (cb(ctx, &e)) break;
  }
  return TG_OK;
}

int tg_compute_explain(tg_graph *g, const tg_node *outputs, size_t n,
                       const tg_compute_opts *opts, tg_explain_cb cb, void *ctx) {
  if (!g) return TG_EINVAL;
  if ((n && !outputs) || !cb)
    return tg__graph_fail(g, TG_EINVAL, "tg_compute_explain: missing outputs or callback");
  if (opts && opts->version != TG_COMPUTE_OPTS_V1 && opts->version != TG_COMPUTE_OPTS_V2)
    return tg__graph_fail(g, TG_EINVAL, "tg_compute_opts.version is %u, expected %d or %d",
                          opts->version, TG_COMPUTE_OPTS_V1, TG_COMPUTE_OPTS_V2);
  tg_cache *cache = !opts ? NULL : opts->cache ? opts->cache
                               : opts->executor ? opts->executor->cache : NULL;
  tg__memo *m = cache ? tg__memo_new(g, cache, true) : NULL;
  if (cache && !m) return tg__graph_fail(g, TG_ENOMEM, "out of memory explaining");
  tg__keyer own; /* without a cache, keys are still shown */
  tg__keyer *k = m ? &m->keyer : &own;
  if (!m) tg__keyer_init(&own, g, NULL);
  tg__runplan p;
  char msg[256];
  int rc = tg__runplan_compile(g, outputs, n, NULL, m, &p, msg, sizeof msg);
  if (rc == TG_OK) {
    rc = report(g, &p, m, k, cb, ctx);
    if (rc) tg__graph_fail(g, rc, "out of memory computing keys");
    tg__runplan_free(&p);
  } else {
    tg__graph_fail(g, rc, "%s", msg);
  }
  if (!m) tg__keyer_free(&own);
  tg__memo_free(m);
  return rc;
}
