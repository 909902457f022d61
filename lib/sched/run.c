/* lib/sched/run.c: the life of a run: creation from a graph's outputs,
 * start, failure and stop, outputs, cancellation of output slots, and the
 * finish that releases everything and wakes the waiters. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "memo/memo.h"
#include "sched_internal.h"
#include "util/futex.h"

static void run_free(tg__run *r) {
  tg__runplan_free(&r->plan);
  tg__memo_free(r->memo);
  tg__free(r->ev_start);
  tg__free(r->cause);
  tg__free(r->slot_cause);
  tg__free((void *)r->running);
  tg_graph_free(r->owned);
  for (size_t s = 0; r->out && s < r->nout; s++) tg_value_unref(r->out[s]);
  for (size_t s = 0; r->futures && s < r->nout; s++) tg_future_free(r->futures[s]);
  tg__free(r->out);
  tg__free(r->hold_gone);
  tg__free(r->futures);
  pthread_mutex_destroy(&r->err_mu);
  tg__free(r);
}

void tg__run_ref(tg__run *r) {
  atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void tg__run_unref(tg__run *r) {
  if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
    run_free(r);
}

/* Backends calling functions in this process time them in task.c; the
 * others need per-task start times (tg__task_begin/end). */
static bool remote_backend(const tg_executor *ex) {
  return !(ex->ops->caps & TG__CAP_IN_PROCESS);
}

int tg__run_new(tg_executor *ex, const tg_graph *g, tg_graph *owned,
                const tg_node *outputs, size_t nout, bool with_futures,
                int retries, int priority, tg_cache *cache, const tg_node *force,
                size_t nforce, tg__run **out, char *err, size_t errsize) {
  tg__run *r = tg__calloc(1, sizeof *r);
  if (!r) {
    tg_graph_free(owned);
    snprintf(err, errsize, "out of memory creating a run");
    return TG_ENOMEM;
  }
  pthread_mutex_init(&r->err_mu, NULL);
  r->g = g;
  r->owned = owned;
  r->ex = ex;
  r->backend = ex->backend;
  r->retries = retries;
  r->nout = nout;
  r->err_node = TG_NODE_NONE;
  atomic_init(&r->refs, 2); /* execution + the caller */
  if (cache) r->memo = tg__memo_new(g, cache, false); /* NULL: no caching */
  int rc = r->memo ? tg__memo_force(r->memo, g, force, nforce, err, errsize) : TG_OK;
  if (!rc) rc = tg__runplan_compile(g, outputs, nout, r, r->memo, &r->plan, err, errsize);
  if (!rc && (rc = tg__runplan_prioritize(&r->plan, g, priority)))
    snprintf(err, errsize, "out of memory for the priorities of %u tasks", r->plan.ntasks);
  if (rc) goto fail;
  if (r->memo && remote_backend(ex)) tg__memo_remote_timing(r->memo, r->plan.ntasks);
  tg__run_set_events(r, ex->on_event, ex->event_ctx);
  rc = TG_ENOMEM;
  r->out = tg__calloc(nout ? nout : 1, sizeof *r->out);
  r->hold_gone = tg__calloc(nout ? nout : 1, sizeof *r->hold_gone);
  if (!r->out || !r->hold_gone) goto nomem;
  if (with_futures) {
    r->futures = tg__calloc(nout ? nout : 1, sizeof *r->futures);
    if (!r->futures) goto nomem;
    for (size_t s = 0; s < nout; s++)
      if (!(r->futures[s] = tg__future_new(r, s))) goto nomem;
  }
  /* every task retires once; +1 held by tg__run_start until it is done */
  atomic_init(&r->unretired, r->plan.ntasks + 1);
  *out = r;
  return TG_OK;
nomem:
  snprintf(err, errsize, "out of memory creating a run of %u tasks", r->plan.ntasks);
fail:
  {
    size_t made = 0; /* each future made holds a run reference */
    while (r->futures && made < nout && r->futures[made]) made++;
    atomic_store(&r->refs, (uint32_t)(1 + made));
    for (size_t s = 0; s < made; s++) {
      tg_future *f = r->futures[s];
      r->futures[s] = NULL;
      tg_future_free(f);
    }
  }
  tg__run_unref(r);
  return rc;
}

void tg__run_set_events(tg__run *r, tg_event_fn fn, void *ctx) {
  r->on_event = fn;
  r->event_ctx = ctx;
  /* out of memory: remote tasks without a measured duration start and
   * end at their end */
  if (fn && remote_backend(r->ex) && !r->ev_start)
    r->ev_start = tg__calloc(r->plan.ntasks ? r->plan.ntasks : 1, sizeof *r->ev_start);
}

/* A future argument finished: one input fewer for its task. */
static void future_dep_done(tg_future *f, void *ctx) {
  (void)f;
  tg__task *t = ctx;
  if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) == 1)
    tg__backend_submit(t->run->backend, &t, 1);
}

static void wire_futures(tg__run *r) {
  const tg__runplan *p = &r->plan;
  for (uint32_t i = 0; i < p->ntasks; i++) {
    tg__task *t = &p->tasks[i];
    if (!(t->flags & TG__T_FUTURES)) continue;
    const tg__gnode *nd = &r->g->nodes[t->node];
    const tg__garg *a = tg__node_args(r->g, nd);
    for (uint32_t j = 0; j < nd->nargs; j++) {
      if (a[j].kind != TG_ARG_FUTURE) continue;
      if (tg_future_on_done(a[j].u.future, future_dep_done, t) != TG_OK) {
        tg__run_stop(r, TG_ENOMEM, TG_NODE_NONE, "out of memory waiting on a future");
        future_dep_done(a[j].u.future, t); /* the task will be skipped */
      }
    }
  }
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Finish the cache hits (all initially ready: they have no inputs) here,
 * on the starting thread, so backends never see them, and put the tasks
 * they make ready among the initial ones. */
static void finish_hits(tg__run *r) {
  tg__runplan *p = &r->plan;
  tg__wctx w;
  uint32_t keep = 0, nmade = 0;
  uint32_t room = p->ntasks - p->nready; /* tasks not ready yet */
  uint32_t *made = tg__malloc((room ? room : 1) * sizeof *made);
  tg__wctx_init(&w, 0);
  for (uint32_t i = 0; i < p->nready; i++) {
    tg__task *t = &p->tasks[p->ready[i]];
    if (!(t->flags & TG__T_CACHED)) {
      p->ready[keep++] = p->ready[i];
      continue;
    }
    tg__task_exec(&w, t);
    for (tg__task *x = w.ready_first, *next; x; x = next) {
      next = x == w.ready_first ? w.ready_rest : x->next;
      if (made) made[nmade++] = (uint32_t)(x - p->tasks);
      else tg__backend_submit(r->backend, &x, 1); /* out of memory: at once */
    }
    w.ready_first = w.ready_rest = NULL;
  }
  tg__wctx_destroy(&w); /* retires them; the start's hold keeps r running */
  memcpy(p->ready + keep, made ? made : p->ready, nmade * sizeof *made);
  p->nready = keep + nmade;
  qsort(p->ready, p->nready, sizeof *p->ready, cmp_u32); /* plan order */
  tg__free(made);
}

void tg__run_start(tg__run *r) {
  const tg__runplan *p = &r->plan;
  tg__executor_add_run(r->ex, r);
  r->t0 = tg__now();
  if (r->timeout > 0) r->deadline = r->t0 + r->timeout;
  if (r->timeout > 0 && p->ntasks) /* NULL when out of memory: no names */
    r->running = tg__calloc(p->ntasks, sizeof *r->running);
  if (p->ncached) finish_hits(r);
  tg__runplan_sort_ready(&r->plan); /* most urgent first */
  tg__task *local[256];
  tg__task **ready = p->nready <= 256 ? local : tg__malloc(p->nready * sizeof *ready);
  size_t step = ready ? p->nready : 256; /* out of memory: in pieces */
  if (!ready) ready = local;
  for (uint32_t i = 0; i < p->nready; i += (uint32_t)step) {
    size_t n = p->nready - i < step ? p->nready - i : step;
    for (size_t k = 0; k < n; k++) ready[k] = &p->tasks[p->ready[i + k]];
    tg__backend_submit(r->backend, ready, n);
  }
  if (ready != local) tg__free(ready);
  if (p->has_futures) wire_futures(r);
  tg__run_retire(r, 1);
}

int tg__run_wait(tg__run *r, double timeout) {
  double deadline = timeout >= 0 ? tg__now() + timeout : 0;
  while (!atomic_load_explicit(&r->done, memory_order_acquire)) {
    double left = -1;
    if (timeout >= 0 && (left = deadline - tg__now()) <= 0) return TG_ETIMEDOUT;
    tg__futex_wait(&r->done, 0, left);
  }
  return TG_OK;
}

/* The first error is the compute's; `stop` also ends the run (no new
 * task starts), which a keep-going failure does not. */
static void record(tg__run *r, int code, uint32_t node, bool stop, const char *fmt,
                   va_list ap) {
  pthread_mutex_lock(&r->err_mu);
  if (r->err_code == TG_OK) {
    r->err_code = code;
    r->err_node = node;
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
  }
  pthread_mutex_unlock(&r->err_mu);
  if (stop) atomic_store_explicit(&r->stop, 1, memory_order_release);
}

void tg__run_stop(tg__run *r, int code, uint32_t node, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  record(r, code, node, true, fmt, ap);
  va_end(ap);
  atomic_store_explicit(&r->cancel, 1, memory_order_release);
}

void tg__run_fail(tg__run *r, int code, uint32_t node, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  record(r, code, node, !r->keep_going, fmt, ap);
  va_end(ap);
  if (!r->keep_going) atomic_store_explicit(&r->cancel, 1, memory_order_release);
}

bool tg__run_keep_going(tg__run *r) {
  uint32_t n = r->plan.ntasks;
  uint32_t *cause = tg__malloc((n ? n : 1) * sizeof *cause);
  tg_node *slot = tg__malloc((r->nout ? r->nout : 1) * sizeof *slot);
  if (!cause || !slot) {
    tg__free(cause);
    tg__free(slot);
    return false;
  }
  for (uint32_t i = 0; i < n; i++) cause[i] = TG_NODE_NONE;
  for (size_t s = 0; s < r->nout; s++) slot[s] = TG_NODE_NONE;
  r->cause = cause;
  r->slot_cause = slot;
  r->keep_going = true;
  return true;
}

static void halt(tg__run *r, int code, const char *fmt, ...) TG__PRINTF(3, 4);
static void halt(tg__run *r, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  record(r, code, TG_NODE_NONE, true, fmt, ap);
  va_end(ap);
}

void tg__run_halt(tg__run *r, int code, const char *msg) { halt(r, code, "%s", msg); }

/* ": 2 tasks still running (p1, p2)" for the tasks marked under way
 * (a few named), or "" when none; r is held. */
static void names(const tg__run *r, char *buf, size_t size) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < r->plan.ntasks; i++)
    n += atomic_load_explicit(&r->running[i], memory_order_relaxed) != 0;
  if (n == 0) return;
  size_t len = (size_t)snprintf(buf, size, ": %u task%s still running (", n, n == 1 ? "" : "s");
  uint32_t named = 0;
  for (uint32_t i = 0; i < r->plan.ntasks && named < 3 && len < size; i++) {
    if (!atomic_load_explicit(&r->running[i], memory_order_relaxed)) continue;
    char kb[TG__NAME_MAX + 32];
    const char *key = tg__run_key(r, r->plan.tasks[i].node, kb, sizeof kb);
    len += (size_t)snprintf(buf + len, size - len, "%s%s", named++ ? ", " : "", key);
  }
  if (len < size) snprintf(buf + len, size - len, "%s)", n > named ? ", ..." : "");
}

/* names() of r, or "" when not known. */
static void still_running(tg__run *r, char *buf, size_t size) {
  buf[0] = '\0';
  if (!r->running) return;
  /* A temporary hold keeps the plan while it is read (the caller of
   * tg_compute is not one of the run's tasks); none if it is finishing. */
  uint32_t u = atomic_load(&r->unretired);
  do {
    if (u == 0) return;
  } while (!atomic_compare_exchange_weak(&r->unretired, &u, u + 1));
  names(r, buf, size);
  tg__run_retire(r, 1);
}

bool tg__run_expired(tg__run *r) {
  if (tg__run_cancelled(r) || tg__run_cancel_requested(r)) return true;
  if (r->deadline <= 0 || tg__now() <= r->deadline) return false;
  char tasks[200];
  still_running(r, tasks, sizeof tasks);
  tg__run_stop(r, TG_ETIMEDOUT, TG_NODE_NONE, "the compute timed out after %g s%s",
               r->timeout, tasks);
  return true;
}

void tg__run_live(tg__run *r, int64_t delta) {
  int64_t now = atomic_fetch_add_explicit(&r->live, delta, memory_order_relaxed) + delta;
  if (delta <= 0) return;
  int64_t peak = atomic_load_explicit(&r->peak, memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak_explicit(
                           &r->peak, &peak, now, memory_order_relaxed,
                           memory_order_relaxed)) {
  }
}

/* The slots naming task ti: out_order[*lo .. *hi). */
static void slots_of(const tg__runplan *p, uint32_t ti, size_t *lo, size_t *hi) {
  size_t a = 0, b = p->nout;
  while (a < b) {
    size_t m = a + (b - a) / 2;
    if (p->out_task[p->out_order[m]] < ti) a = m + 1;
    else b = m;
  }
  *lo = a;
  while (a < p->nout && p->out_task[p->out_order[a]] == ti) a++;
  *hi = a;
}

void tg__run_output_done(tg__run *r, tg__task *t) {
  const tg__runplan *p = &r->plan;
  size_t lo, hi;
  slots_of(p, (uint32_t)(t - p->tasks), &lo, &hi);
  int code = TG_ECANCELED;
  char msg[sizeof r->err_msg] = "cancelled";
  if (!t->result) {
    pthread_mutex_lock(&r->err_mu);
    if (r->err_code) {
      code = r->err_code;
      memcpy(msg, r->err_msg, sizeof msg);
    }
    pthread_mutex_unlock(&r->err_mu);
  }
  for (size_t k = lo; k < hi; k++) {
    size_t s = p->out_order[k];
    if (t->result) r->out[s] = tg_value_ref(t->result);
    else if (r->slot_cause) r->slot_cause[s] = r->cause[t - p->tasks];
    if (r->futures) tg__future_resolve(r->futures[s], t->result ? TG_OK : code,
                                       t->result, msg);
  }
}

/* Outcome of releasing one reference of a task. */
enum { KEPT, DROPPED, LOST_TO_START };

/* One reference of task ti released: dropped when only the task's own is
 * left and it had not started; LOST_TO_START when a worker claimed it
 * first (it runs and releases its result itself). */
static int release_one(tg__run *r, uint32_t ti) {
  tg__task *t = &r->plan.tasks[ti];
  uint32_t c = atomic_fetch_sub_explicit(&t->consumers, 1, memory_order_acq_rel) - 1;
  if (c == 0) { /* finished, and this was the last reference */
    tg_value *v = t->result;
    t->result = NULL;
    if (v && !(t->flags & TG__T_OUTPUT)) tg__run_live(r, -1);
    tg_value_unref(v);
    return KEPT;
  }
  if (c != 1) return KEPT;
  uint8_t st = TG__T_NEW; /* only its own reference is left */
  if (atomic_compare_exchange_strong_explicit(&t->state, &st, TG__T_DROPPED,
                                              memory_order_acq_rel, memory_order_acquire))
    return DROPPED;
  return st == TG__T_STARTED ? LOST_TO_START : KEPT;
}

/* Release ti's reference and everything a drop leaves unneeded. Returns
 * release_one's outcome for ti itself. */
static int release_edge(tg__run *r, uint32_t ti) {
  uint32_t *st = NULL;
  size_t n = 0, cap = 0;
  uint32_t x = ti;
  int first = -1;
  for (;;) {
    int o = release_one(r, x);
    if (first < 0) first = o;
    if (o == DROPPED) { /* its inputs lose a consumer */
      const tg__gnode *nd = &r->g->nodes[r->plan.tasks[x].node];
      const tg__garg *a = tg__node_args(r->g, nd);
      uint32_t nargs = r->plan.tasks[x].flags & TG__T_CACHED ? 0 : nd->nargs;
      for (uint32_t j = 0; j < nargs; j++) {
        if (!tg__arg_is_node(a[j].kind)) continue;
        uint32_t in = r->plan.task_of[a[j].node];
        if (n == cap) {
          size_t c = cap ? cap * 2 : 64;
          uint32_t *p = tg__realloc(st, c * sizeof *p);
          if (!p) { /* out of memory: recurse instead */
            release_edge(r, in);
            continue;
          }
          st = p;
          cap = c;
        }
        st[n++] = in;
      }
    }
    if (n == 0) break;
    x = st[--n];
  }
  tg__free(st);
  return first;
}


void tg__run_cancel_slot(tg__run *r, size_t slot) {
  if (!atomic_exchange_explicit(&r->hold_gone[slot], 1, memory_order_acq_rel))
    release_edge(r, r->plan.out_task[slot]);
}

bool tg__run_cancel_slot_unstarted(tg__run *r, size_t slot) {
  const tg__task *t = &r->plan.tasks[r->plan.out_task[slot]];
  if (atomic_load_explicit(&t->state, memory_order_acquire) == TG__T_STARTED)
    return false;
  if (atomic_exchange_explicit(&r->hold_gone[slot], 1, memory_order_acq_rel))
    return true;
  return release_edge(r, r->plan.out_task[slot]) != LOST_TO_START;
}

bool tg__run_abandon(tg__run *r, tg_graph *g) {
  atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
  int st = 0;
  if (!atomic_compare_exchange_strong(&r->abandoned, &st, 1)) {
    atomic_fetch_sub_explicit(&g->refs, 1, memory_order_relaxed); /* the caller's is left */
    return false;
  }
  while (atomic_load(&r->callouts)) /* short: an event or a cache store */
    nanosleep(&(struct timespec){0, 100000}, NULL);
  return true;
}

/* Every task retired: release what is left, wake waiters, unlink. */
static void run_finish(tg__run *r) {
  /* After this, a compute that has not returned yet waits for r. */
  tg_graph *held = atomic_exchange(&r->abandoned, 2) == 1 ? (tg_graph *)r->g : NULL;
  for (size_t s = 0; s < r->nout; s++) tg__run_cancel_slot(r, s);
  r->wall = tg__now() - r->t0;
  for (size_t s = 0; r->futures && s < r->nout; s++) {
    tg__future_resolve(r->futures[s], TG_ECANCELED, NULL, "cancelled");
    tg_future_free(r->futures[s]);
  }
  tg__free(r->futures);
  r->futures = NULL;
#ifndef NDEBUG
  for (uint32_t i = 0; i < r->plan.ntasks; i++) assert(!r->plan.tasks[i].result);
#endif
  tg__runplan_free(&r->plan);
  tg_graph_free(r->owned);
  r->owned = NULL;
  r->g = NULL;
  tg_graph_free(held); /* the abandoning compute's hold */
  atomic_store_explicit(&r->done, 1, memory_order_release);
  tg__futex_wake(&r->done, INT_MAX);
  tg__executor_remove_run(r->ex, r);
  tg__run_unref(r);
}

void tg__run_retire(tg__run *r, uint32_t n) {
  if (atomic_fetch_sub_explicit(&r->unretired, n, memory_order_acq_rel) == n)
    run_finish(r);
}

const char *tg__run_key(const tg__run *r, uint32_t node, char *buf,
                        size_t size) {
  return tg__graph_key(r->g, node, buf, size);
}

void tg__run_log(const tg__run *r, const char *key, const char *line) {
  if (r->ex && r->ex->log)
    r->ex->log(r->ex->log_ctx, key, line);
  else
    fprintf(stderr, "[%s] %s\n", key, line);
}
