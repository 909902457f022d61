/* lib/sched/explain.c: tg_compute_explain, the dry run: the plan a
 * compute would make (with cache lookups that only test presence), and
 * for each of its tasks whether it would run and why, from the node's key
 * and the lineage the cache keeps of what was stored for it. */
#include <stdio.h>
#include <string.h>

#include "memo/memo.h"
#include "sched_internal.h"

/* Texts for TG__WHY_* reasons that make a node uncacheable. */
static const char *why_text(int why) {
  switch (why) {
    case TG__WHY_IMPURE: return "impure function";
    case TG__WHY_INPUT: return "depends on a task that cannot be cached";
    case TG__WHY_FILE_PATH: return "reads a file whose path is not a constant string";
    case TG__WHY_FILE_READ: return "reads a file that cannot be read";
    case TG__WHY_EXTERNAL: return "has a future as an argument";
    default: return "not cacheable";
  }
}

/* Milliseconds or seconds, three digits (whole seconds past 1000), for
 * a reason. */
static void fmt_time(double s, char *buf, size_t size) {
  if (s < 1) snprintf(buf, size, "%.3g ms", s * 1e3);
  else if (s < 1000) snprintf(buf, size, "%.3g s", s);
  else snprintf(buf, size, "%.0f s", s);
}

/* Fill e from the note the cache keeps of id (a node's lineage, or with
 * function set its function's note, func its name); false when none. */
static bool noted(tg__memo *m, tg_digest id, bool function, const char *func,
                  tg_explain_task *e, char *buf, size_t size) {
  tg__cache_note n;
  if (tg__cache_note_get(m->cache, id, function, &n) != TG_OK ||
      tg__note_of_function(n.kind) != function)
    return false;
  char t[32], th[32];
  e->note = (tg_explain_note)n.kind;
  fmt_time(n.seconds, t, sizeof t);
  switch (n.kind) {
    case TG_NOTE_UNDER_THRESHOLD:
      e->seconds = n.seconds, e->threshold = n.threshold;
      fmt_time(n.threshold, th, sizeof th);
      snprintf(buf, size, "%s's calls ran in about %s, under the %s store threshold", func,
               t, th);
      break;
    case TG_NOTE_FAST_FUNCTION:
      e->seconds = n.seconds;
      snprintf(buf, size, "%s's calls had been fast, one took %s: taken for a preempted "
               "call, not stored", func, t);
      break;
    case TG_NOTE_STORE_FAILED:
      e->code = n.code;
      snprintf(buf, size, "storing its last result failed: %s", tg_strerror(n.code));
      break;
    default:
      e->code = n.code;
      snprintf(buf, size, "its last result could not be stored: %s", tg_strerror(n.code));
  }
  e->why = buf;
  return true;
}

/* State of a task that is not served from the cache, with e->why (buf
 * holds it when made up). */
static void miss_state(tg__memo *m, uint32_t node, const tg__gnode *nd, tg_digest key,
                       int why, tg_explain_task *e, char *buf, size_t size) {
  e->state = TG_EXPLAIN_RUN;
  if (!m) {
    e->why = "no cache";
    return;
  }
  e->state = TG_EXPLAIN_UNCACHEABLE;
  if (!tg__memo_cacheable(nd)) {
    e->why = nd->cache == 0 ? "opted out (cache = 0)" : "impure function";
    return;
  }
  if (why) {
    e->why = why_text(why);
    return;
  }
  if (tg__memo_forced(m, node)) {
    e->state = TG_EXPLAIN_FORCED;
    e->why = m->forced[node] == 2 ? "forced" : "depends on a forced task";
    return;
  }
  tg_digest last, fnid, lineage = tg__lineage_id(nd->fn->name, e->key);
  e->state = TG_EXPLAIN_RUN;
  if (noted(m, lineage, false, nd->fn->name, e, buf, size)) return;
  if (tg__cache_lineage_get(m->cache, lineage, &last, &fnid) != TG_OK) {
    /* Never stored: its function's calls may have been left out. */
    if (noted(m, tg__func_note_id(nd->fn->name), true, nd->fn->name, e, buf, size)) return;
    e->why = "not in the cache";
  } else if (!tg_digest_equal(fnid, tg__func_identity(nd->fn))) {
    e->state = TG_EXPLAIN_FUNC_CHANGED;
    e->why = "its function changed (version, code id or plugin)";
  } else if (!tg_digest_equal(last, key)) {
    e->state = TG_EXPLAIN_INPUT_CHANGED;
    e->why = "an input changed";
  } else {
    e->why = "not in the cache (its entry was removed)";
  }
}

/* Report every task of plan p in order; stops when cb returns non-zero. */
static int report(const tg_graph *g, const tg__runplan *p, tg__memo *m, tg__keyer *k,
                  tg_explain_cb cb, void *ctx) {
  char kb[TG__NAME_MAX + 32], why[160];
  for (uint32_t i = 0; i < p->ntasks; i++) {
    const tg__task *t = &p->tasks[i];
    const tg__gnode *nd = &g->nodes[t->node];
    tg_explain_task e = {t->node, tg__graph_key(g, t->node, kb, sizeof kb), nd->fn->name,
                         TG_EXPLAIN_CACHED, "in the cache", "", TG_NOTE_NONE, -1, -1, 0};
    tg_digest key;
    int whyc = 0;
    if (m) pthread_mutex_lock(&m->mu);
    int rc = tg__keyer_get(k, t->node, &key, &whyc);
    if (m) pthread_mutex_unlock(&m->mu);
    if (rc) return rc;
    tg_digest_hex(key, e.cache_key);
    if (!(t->flags & TG__T_CACHED)) miss_state(m, t->node, nd, key, whyc, &e, why, sizeof why);
    if (cb(ctx, &e)) break;
  }
  return TG_OK;
}

int tg_compute_explain(tg_graph *g, const tg_node *outputs, size_t n,
                       const tg_compute_opts *opts, tg_explain_cb cb, void *ctx) {
  if (!g) return TG_EINVAL;
  if ((n && !outputs) || !cb)
    return tg__graph_fail(g, TG_EINVAL, "tg_compute_explain: missing outputs or callback");
  if (opts && (opts->version < TG_COMPUTE_OPTS_V1 || opts->version > TG_COMPUTE_OPTS_V4))
    return tg__graph_fail(g, TG_EINVAL, "tg_compute_opts.version is %u, expected %d to %d",
                          opts->version, TG_COMPUTE_OPTS_V1, TG_COMPUTE_OPTS_V4);
  bool v3 = opts && opts->version >= TG_COMPUTE_OPTS_V3;
  if (v3 && opts->nforce && !opts->force)
    return tg__graph_fail(g, TG_EINVAL, "tg_compute_opts.force is NULL with nforce %zu",
                          opts->nforce);
  tg_cache *cache = !opts ? NULL : opts->cache ? opts->cache
                               : opts->executor ? opts->executor->cache : NULL;
  tg__memo *m = cache ? tg__memo_new(g, cache, true) : NULL;
  if (cache && !m) return tg__graph_fail(g, TG_ENOMEM, "out of memory explaining");
  tg__keyer own; /* without a cache, keys are still shown */
  tg__keyer *k = m ? &m->keyer : &own;
  if (!m) tg__keyer_init(&own, g, NULL);
  tg__runplan p;
  char msg[256];
  int rc = m && v3 ? tg__memo_force(m, g, opts->force, opts->nforce, msg, sizeof msg) : TG_OK;
  if (rc) {
    tg__memo_free(m);
    return tg__graph_fail(g, rc, "%s", msg);
  }
  rc = tg__runplan_compile(g, outputs, n, NULL, m, &p, msg, sizeof msg);
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
