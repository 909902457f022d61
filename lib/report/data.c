/* lib/report/data.c: the run's data as the JSON object the page renders
 * (tg__report_json), built as a tg_value and written by the library's
 * JSON writer.
 *
 * The object (times are integer microseconds since the earliest start
 * of a task, or since the report was created before any event; task
 * columns are parallel lists, index = task):
 *   {"format": 1, "title": S, "ended": B, "now": US,
 *    "status": "ok" | "failed" | "cancelled" | "timed out" | "error" |
 *              "running", "error": S | null, "error_code": S | null,
 *    "scheduler": S | null, "workers": N, "wall": US,
 *    "stats": {"tasks": N, "run": N, "cached": N, "failed": N,
 *              "skipped": N, "cancelled": N, "cache_hits": N, "cache_misses": N,
 *              "cache_bytes_read": N, "cache_bytes_written": N,
 *              "peak_live": N} | null,
 *    "outputs": [TASK...], "funcs": [S...],
 *    "tasks": {"key": [S], "func": [FUNC or -1],
 *              "state": [S: "" (no event), "running", "ran", "failed",
 *                        "cached", "skipped", "cancelled"],
 *              "worker": [N], "thread": [N], "start": [US], "end": [US],
 *              "attempts": [N], "ndeps": [N], "deps": [TASK...] (the
 *              inputs of each task in turn, ndeps[i] of them)},
 *    "messages": [[TASK, S]...]}
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "report/report_internal.h"
#include "sched/sched_internal.h"

/* A tg_value builder that remembers the first failure, so the object is
 * put together without a check per field. */
typedef struct vb {
  bool oom;
} vb;

static tg_value *chk(vb *b, tg_value *v) {
  if (v == NULL) b->oom = true;
  return v;
}

static void put(vb *b, tg_value *map, const char *key, tg_value *v) {
  if (v == NULL || map == NULL) {
    b->oom = true;
    if (v) tg_value_unref(v);
    return;
  }
  if (tg_map_put_c(map, key, v) != TG_OK) b->oom = true;
}

static void item(vb *b, tg_value *list, size_t i, tg_value *v) {
  if (v == NULL || list == NULL) {
    b->oom = true;
    if (v) tg_value_unref(v);
    return;
  }
  if (tg_list_init_item(list, i, v) != TG_OK) b->oom = true;
}

static tg_value *str_or_null(vb *b, const char *s) {
  return s ? chk(b, tg_str_c(s)) : tg_null();
}

/* Time zero of the data: the earliest start of a task. */
static double origin(const tg_report *r) {
  double o = INFINITY;
  for (size_t i = 0; i < r->ntasks; i++)
    if (r->tasks[i].state != TG__RS_NONE && r->tasks[i].start < o) o = r->tasks[i].start;
  return isfinite(o) ? o : r->t0;
}

/* Seconds of the monotonic clock as microseconds since time zero. */
static int64_t us(double zero, double t) {
  double d = (t - zero) * 1e6;
  if (!isfinite(d)) return 0;
  return (int64_t)llround(d);
}

static const char *const state_names[] = {"", "running", "ran", "failed",
                                          "cached", "skipped", "cancelled"};

static const char *status_name(const tg_report *r) {
  if (!r->ended) return "running";
  switch (r->run.status) {
    case TG_OK: return "ok";
    case TG_ETASK: return "failed";
    case TG_ECANCELED: return "cancelled";
    case TG_ETIMEDOUT: return "timed out";
    default: return "error";
  }
}

static tg_value *stats_value(vb *b, const tg_report *r) {
  if (!r->has_stats) return tg_null();
  const tg_compute_stats *s = &r->stats;
  tg_value *m = chk(b, tg_map_new(10));
  put(b, m, "tasks", tg_int((int64_t)s->tasks_total));
  put(b, m, "run", tg_int((int64_t)s->tasks_run));
  put(b, m, "cached", tg_int((int64_t)s->tasks_cached));
  put(b, m, "failed", tg_int((int64_t)s->tasks_failed));
  put(b, m, "skipped", tg_int((int64_t)s->tasks_skipped));
  put(b, m, "cancelled", tg_int((int64_t)s->tasks_cancelled));
  put(b, m, "cache_hits", tg_int((int64_t)s->cache_hits));
  put(b, m, "cache_misses", tg_int((int64_t)s->cache_misses));
  put(b, m, "cache_bytes_read", tg_int((int64_t)s->cache_bytes_read));
  put(b, m, "cache_bytes_written", tg_int((int64_t)s->cache_bytes_written));
  put(b, m, "peak_live", tg_int((int64_t)s->peak_live));
  return m;
}

/* A growing list of function names: the report's (events'), then those
 * only the graph names. */
typedef struct names {
  const char **v;
  size_t n, cap;
} names;

/* The index in fns of task i's function, adding the graph node's when
 * no event named one; -1 for none. */
static int64_t func_of(vb *b, const tg_report *r, size_t i, names *fns) {
  const tg__rtask *t = &r->tasks[i];
  if (t->func) return t->func - 1;
  const tg_func *f = i < r->nnodes ? tg_node_func(r->g, (tg_node)i) : NULL;
  if (f == NULL) return -1;
  const char *name = tg_func_name(f);
  for (size_t k = 0; k < fns->n; k++)
    if (fns->v[k] == name || strcmp(fns->v[k], name) == 0) return (int64_t)k;
  if (fns->n == fns->cap) {
    size_t cap = fns->cap * 2 + 8;
    const char **q = tg__realloc(fns->v, cap * sizeof *q);
    if (q == NULL) {
      b->oom = true;
      return -1;
    }
    fns->v = q;
    fns->cap = cap;
  }
  fns->v[fns->n] = name;
  return (int64_t)fns->n++;
}

/* Column lists of the tasks, and in *funcs_out the function names: the
 * events' and then those only the graph names. */
static tg_value *tasks_value(vb *b, tg_report *r, double zero,
                            tg_value **funcs_out) {
  size_t n = r->ntasks;
  static const char *const cols[] = {"key", "func", "state", "worker", "thread",
                                     "start", "end", "attempts", "ndeps"};
  enum { C_KEY, C_FUNC, C_STATE, C_WORKER, C_THREAD, C_START, C_END,
         C_ATTEMPTS, C_NDEPS, NCOLS };
  tg_value *col[NCOLS];
  for (int c = 0; c < NCOLS; c++) col[c] = chk(b, tg_list_alloc(n));
  names fns = {NULL, 0, 0};
  if (r->nfuncs) {
    fns.v = tg__malloc(r->nfuncs * sizeof *fns.v);
    if (fns.v == NULL) b->oom = true;
    else memcpy(fns.v, r->funcs, r->nfuncs * sizeof *fns.v);
    fns.n = fns.cap = r->nfuncs;
  }
  size_t ndeps_total = 0;
  for (size_t i = 0; i < n && !b->oom; i++) {
    const tg__rtask *t = &r->tasks[i];
    char buf[256];
    const char *key = t->key ? r->keys + t->key - 1
                             : tg__graph_key(r->g, (tg_node)i, buf, sizeof buf);
    int64_t f = func_of(b, r, i, &fns);
    uint32_t nd = 0;
    if (i < r->nnodes) {
      const tg__gnode *gn = &r->g->nodes[i];
      const tg__garg *a = tg__node_args(r->g, gn);
      for (uint32_t k = 0; k < gn->nargs; k++) nd += tg__arg_is_node(a[k].kind);
    }
    ndeps_total += nd;
    bool called = t->state == TG__RS_RAN || t->state == TG__RS_FAILED ||
                  t->state == TG__RS_RUNNING;
    item(b, col[C_KEY], i, tg_str_c(key));
    item(b, col[C_FUNC], i, tg_int(f));
    item(b, col[C_STATE], i, tg_str_c(state_names[t->state]));
    item(b, col[C_WORKER], i, tg_int(t->worker));
    item(b, col[C_THREAD], i, tg_int(t->thread));
    item(b, col[C_START], i, tg_int(t->state ? us(zero, t->start) : 0));
    item(b, col[C_END], i, tg_int(t->state == TG__RS_RUNNING ? -1
                                  : t->state ? us(zero, t->end) : 0));
    item(b, col[C_ATTEMPTS], i, tg_int(called && t->attempts == 0 ? 1 : t->attempts));
    item(b, col[C_NDEPS], i, tg_int(nd));
  }
  tg_value *deps = chk(b, tg_list_alloc(ndeps_total));
  size_t d = 0;
  for (size_t i = 0; i < r->nnodes && !b->oom; i++) {
    const tg__gnode *gn = &r->g->nodes[i];
    const tg__garg *a = tg__node_args(r->g, gn);
    for (uint32_t k = 0; k < gn->nargs; k++)
      if (tg__arg_is_node(a[k].kind)) item(b, deps, d++, tg_int(a[k].node));
  }
  tg_value *m = chk(b, tg_map_new(NCOLS + 1));
  for (int c = 0; c < NCOLS; c++) put(b, m, cols[c], col[c]);
  put(b, m, "deps", deps);
  tg_value *fl = chk(b, tg_list_alloc(fns.n));
  for (size_t k = 0; k < fns.n && !b->oom; k++) item(b, fl, k, tg_str_c(fns.v[k]));
  tg__free(fns.v);
  *funcs_out = fl;
  return m;
}

static tg_value *messages_value(vb *b, const tg_report *r) {
  tg_value *l = chk(b, tg_list_alloc(r->nmsgs));
  size_t k = 0;
  for (size_t i = 0; i < r->ntasks && !b->oom; i++)
    if (r->tasks[i].msg && k < r->nmsgs)
      item(b, l, k++, tg_list_of(2, tg_int((int64_t)i),
                                 tg_str_c(r->msgs[r->tasks[i].msg - 1])));
  /* A message replaced in place leaves no gap; a list shorter than
   * allocated would be invalid, so fill what is left with nulls. */
  for (; k < r->nmsgs; k++) item(b, l, k, tg_null());
  return l;
}

static tg_value *outputs_value(vb *b, const tg_report *r) {
  tg_value *l = chk(b, tg_list_alloc(r->noutputs));
  for (size_t i = 0; i < r->noutputs; i++) item(b, l, i, tg_int(r->outputs[i]));
  return l;
}

/* The whole object (of a snapshot). */
static tg_value *report_value(vb *b, tg_report *r) {
  double now = tg__now(), zero = origin(r);
  tg_value *m = chk(b, tg_map_new(20));
  put(b, m, "format", tg_int(1));
  put(b, m, "title", chk(b, tg_str_c(r->run.title ? r->run.title : "tgraph run")));
  put(b, m, "ended", tg_bool(r->ended));
  put(b, m, "now", tg_int(us(zero, now)));
  put(b, m, "status", tg_str_c(status_name(r)));
  put(b, m, "error", str_or_null(b, r->ended && r->run.status != TG_OK ? r->run.error : NULL));
  put(b, m, "error_code", r->ended && r->run.status != TG_OK
                              ? tg_str_c(tg_err_name(r->run.status)) : tg_null());
  put(b, m, "scheduler", str_or_null(b, r->run.scheduler));
  unsigned workers = r->run.workers ? r->run.workers : (unsigned)(r->max_worker + 1);
  put(b, m, "workers", tg_int(workers));
  double wall = r->has_stats ? r->stats.wall_seconds : now - zero;
  put(b, m, "wall", tg_int((int64_t)llround(wall * 1e6)));
  put(b, m, "run_tasks", tg_int((int64_t)r->run_tasks));
  put(b, m, "stats", stats_value(b, r));
  put(b, m, "outputs", outputs_value(b, r));
  tg_value *funcs = NULL;
  tg_value *tasks = tasks_value(b, r, zero, &funcs);
  put(b, m, "funcs", funcs);
  put(b, m, "tasks", tasks);
  put(b, m, "messages", messages_value(b, r));
  return m;
}

/* ---- a snapshot, so events wait only for a copy ---------------------------- */

static void *dup_bytes(const void *p, size_t n, bool *oom) {
  void *c = tg__malloc(n ? n : 1);
  if (c == NULL) *oom = true;
  else if (n) memcpy(c, p, n);
  return c;
}

static char *dup_str(const char *s, bool *oom) {
  return s ? dup_bytes(s, strlen(s) + 1, oom) : NULL;
}

static void snapshot_free(tg_report *c) {
  for (size_t i = 0; c->msgs && i < c->nmsgs; i++) tg__free(c->msgs[i]);
  tg__free(c->msgs);
  tg__free(c->tasks);
  tg__free(c->keys);
  tg__free((void *)c->funcs);
  tg__free((char *)c->run.title);
  tg__free((char *)c->run.scheduler);
  tg__free((char *)c->run.error);
}

/* A copy of r's state in *c (under mu): what events change (tasks, keys,
 * the function and message tables, the run's facts), so that building
 * the JSON, which takes a while for a big run, does not hold up the
 * workers reporting events. Function names are shared: they live as
 * long as r. c->mu is never used. */
static bool snapshot(tg_report *r, tg_report *c) {
  bool oom = false;
  *c = *r;
  c->tasks = dup_bytes(r->tasks, r->ntasks * sizeof *r->tasks, &oom);
  c->keys = dup_bytes(r->keys, r->keys_len, &oom);
  c->funcs = dup_bytes(r->funcs, r->nfuncs * sizeof *r->funcs, &oom);
  c->msgs = tg__calloc(r->nmsgs + 1, sizeof *c->msgs);
  if (c->msgs == NULL) oom = true;
  for (size_t i = 0; c->msgs && i < r->nmsgs; i++) c->msgs[i] = dup_str(r->msgs[i], &oom);
  c->run.title = dup_str(r->run.title, &oom);
  c->run.scheduler = dup_str(r->run.scheduler, &oom);
  c->run.error = dup_str(r->run.error, &oom);
  return !oom;
}

int tg__report_json(tg_report *r, char **out, size_t *len) {
  if (r == NULL || out == NULL) return TG_EINVAL;
  *out = NULL;
  tg_report copy;
  pthread_mutex_lock(&r->mu);
  bool ok = snapshot(r, &copy);
  pthread_mutex_unlock(&r->mu);
  vb b = {!ok};
  tg_value *v = ok ? report_value(&b, &copy) : NULL;
  snapshot_free(&copy);
  int rc = TG_ENOMEM;
  if (!b.oom && v != NULL) rc = tg_value_to_json(v, 0, out, len, NULL);
  if (v) tg_value_unref(v);
  return rc;
}
