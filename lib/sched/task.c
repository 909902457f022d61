/* lib/sched/task.c: running one task: claiming it, gathering its
 * arguments (resolving item and key arguments), calling the function with
 * retries, and finishing it (releases, dependents, retirement). The hot
 * path of every backend. */
#include <stdio.h>
#include <string.h>

#include "graph/call.h"
#include "memo/memo.h"
#include "registry/taskhost.h"
#include "sched_internal.h"

void tg__wctx_init(tg__wctx *w, int worker) {
  memset(w, 0, sizeof *w);
  w->worker = worker;
  w->memo_sample = TG__MEMO_SAMPLE;
}

void tg__wctx_flush(tg__wctx *w) {
  tg__run *r = w->run;
  if (!r) return;
  if (w->ran) atomic_fetch_add_explicit(&r->ran, w->ran, memory_order_relaxed);
  if (w->skipped)
    atomic_fetch_add_explicit(&r->skipped, w->skipped, memory_order_relaxed);
  uint32_t n = w->retired;
  w->run = NULL;
  w->retired = w->ran = w->skipped = 0;
  if (n) tg__run_retire(r, n);
}

void tg__wctx_destroy(tg__wctx *w) {
  tg__wctx_flush(w);
  tg__wstates_teardown(&w->states);
  tg__free(w->scratch);
  w->scratch = NULL;
  w->scratch_cap = 0;
}

/* ---- finishing ------------------------------------------------------------ */

/* A task made ready: the first (most urgent) is kept apart, the others are
 * linked least urgent first, which is the order to push them on a LIFO. */
static inline void ready_add(tg__wctx *w, tg__task *t) {
  if (!w->ready_first) {
    w->ready_first = t;
  } else {
    t->next = w->ready_rest;
    w->ready_rest = t;
  }
}

/* Drop one consumer reference of input i; release its result if last. */
static inline int64_t release_input(tg__task *i) {
  if (atomic_fetch_sub_explicit(&i->consumers, 1, memory_order_acq_rel) != 1)
    return 0;
  tg_value *v = i->result;
  i->result = NULL;
  tg_value_unref(v);
  return v && !(i->flags & TG__T_OUTPUT) ? -1 : 0;
}

/* Store res (taken; NULL when skipped or failed) and finish t. */
static void finish(tg__wctx *w, tg__task *t, tg_value *res, bool release) {
  tg__run *r = t->run;
  const tg__runplan *p = &r->plan;
  int64_t dlive = 0;
  t->result = res;
  if (release) {
    const tg_graph *g = r->g;
    const tg__gnode *nd = &g->nodes[t->node];
    const tg__garg *a = tg__node_args(g, nd);
    for (uint32_t j = 0; j < nd->nargs; j++)
      if (tg__arg_is_node(a[j].kind))
        dlive += release_input(&p->tasks[p->task_of[a[j].node]]);
  }
  /* Outputs are handed over while t's own reference keeps the result:
   * a cancelled output slot may drop the last other one meanwhile. */
  if (t->flags & TG__T_OUTPUT) tg__run_output_done(r, t);
  if (atomic_fetch_sub_explicit(&t->consumers, 1, memory_order_acq_rel) == 1) {
    t->result = NULL; /* nobody wants it (dropped while running) */
    tg_value_unref(res);
  } else if (res && !(t->flags & TG__T_OUTPUT)) {
    dlive++;
  }
  if (dlive) tg__run_live(r, dlive);
  uint32_t ti = (uint32_t)(t - p->tasks);
  for (uint32_t k = p->dep_off[ti], e = p->dep_off[ti + 1]; k < e; k++) {
    tg__task *d = &p->tasks[p->deps[k]];
    if (atomic_fetch_sub_explicit(&d->pending, 1, memory_order_acq_rel) == 1)
      ready_add(w, d);
  }
  w->retired++; /* last: nothing of r is touched after a flush */
}

/* ---- events ---------------------------------------------------------------- */

/* Report an event of t to the run's callback (set: callers test it).
 * Kept out of line: the hot path only tests whether a callback is set.
 * x (NULL: no call) says which thread made the calls, how many, and why
 * the task failed. */
static __attribute__((cold, noinline)) void emit(const tg__run *r, const tg__task *t,
                                                 tg_event_kind kind, int worker, int status,
                                                 double start, double end,
                                                 const tg__call_report *x) {
  tg__run *mr = (tg__run *)r; /* the count is not part of the run's value */
  if (t->flags & TG__T_INTERNAL) return;  /* part of a task: no events */
  if (!tg__run_callout_begin(mr)) return; /* the compute returned */
  char kb[TG__NAME_MAX + 32];
  const tg_func *fn = r->g->nodes[t->node].fn;
  tg_event ev = {.kind = kind, .node = t->node,
                 .key = tg__run_key(r, t->node, kb, sizeof kb), .worker = worker,
                 .status = status, .start = start, .end = end,
                 .tasks = r->plan.ntasks - r->plan.ninternal,
                 .func = fn ? tg_func_name(fn) : NULL,
                 .thread = x ? x->thread : -1, .attempts = x ? x->attempts : 0,
                 .message = x && (kind == TG_EVENT_FAILED || kind == TG_EVENT_CANCELLED)
                                ? x->message
                                : NULL};
  r->on_event(r->event_ctx, &ev);
  tg__run_callout_end(mr);
}

/* An event without a call: at one instant. */
static void emit_now(const tg__run *r, const tg__task *t, tg_event_kind kind, int worker,
                     int status, const tg__call_report *x) {
  double now = tg__now();
  emit(r, t, kind, worker, status, now, now, x);
}

/* ---- failing --------------------------------------------------------------- */

/* The node a failure is reported on: a map's chunk is named by the map
 * node assembling it (the node the user knows), when that is computed. */
static uint32_t reported_node(const tg__run *r, const tg__task *t) {
  const tg__runplan *p = &r->plan;
  if (r->g->nodes[t->node].kind != TG__NK_CHUNK) return t->node;
  uint32_t ti = (uint32_t)(t - p->tasks);
  for (uint32_t k = p->dep_off[ti]; k < p->dep_off[ti + 1]; k++) {
    uint32_t n = p->tasks[p->deps[k]].node;
    if (r->g->nodes[n].kind == TG__NK_CONCAT) return n;
  }
  return t->node;
}

/* t failed for good (after its retries): counted, recorded as the
 * compute's failure when it is the first, and named as the cause of the
 * outputs that lack it (keep_going). */
static void fail_task(tg__run *r, const tg__task *t, int code, const char *msg) {
  char kb[TG__NAME_MAX + 32];
  uint32_t node = reported_node(r, t);
  const char *key = tg__run_key(r, node, kb, sizeof kb);
  if (!(t->flags & TG__T_INTERNAL)) atomic_fetch_add_explicit(&r->failed, 1, memory_order_relaxed);
  if (r->cause) r->cause[t - r->plan.tasks] = node;
  tg__run_fail(r, TG_ETASK, node, "task '%s' failed: %s: %s", key,
               tg_err_name(code), msg && *msg ? msg : tg_strerror(code));
}

/* Whether a call that failed with code gave up because the compute
 * stopped (another task failed, the deadline, the cancel flag): then the
 * task is cancelled, not failed. */
static bool gave_up(const tg__run *r, int code) {
  return code == TG_ECANCELED && tg__run_cancelled(r);
}

static void cancel_task(tg__run *r, const tg__task *t) {
  if (!(t->flags & TG__T_INTERNAL))
    atomic_fetch_add_explicit(&r->cancelled, 1, memory_order_relaxed);
}

/* ---- arguments --------------------------------------------------------------- */

static bool reserve_scratch(tg__wctx *w, size_t n) {
  if (n <= w->scratch_cap) return true;
  size_t c = w->scratch_cap ? w->scratch_cap : 64;
  while (c < n) c *= 2;
  tg_value **s = tg__realloc(w->scratch, c * sizeof *s);
  if (!s) return false;
  w->scratch = s;
  w->scratch_cap = c;
  return true;
}

/* Element of an item/key argument; on error writes msg, returns NULL. */
static tg_value *getitem(const tg__run *r, const tg__garg *a, tg_value *v,
                         size_t j, int *code, char *msg, size_t msize) {
  char kb[TG__NAME_MAX + 32];
  const char *src = tg__run_key(r, a->node, kb, sizeof kb);
  if (a->kind == TG_ARG_ITEM) {
    if (tg_value_type(v) != TG_LIST) {
      *code = TG_ETYPE;
      snprintf(msg, msize, "argument %zu: item %lld of '%s', which is a %s, not a list",
               j, (long long)a->u.index, src, tg_type_name(tg_value_type(v)));
      return NULL;
    }
    size_t len = tg_list_len(v);
    int64_t i = a->u.index < 0 ? a->u.index + (int64_t)len : a->u.index;
    if (i < 0 || (uint64_t)i >= len) {
      *code = TG_ERANGE;
      snprintf(msg, msize, "argument %zu: index %lld out of range for the list of %zu from '%s'",
               j, (long long)a->u.index, len, src);
      return NULL;
    }
    return tg_list_get(v, (size_t)i);
  }
  const char *key = r->g->keys + a->u.key;
  if (tg_value_type(v) != TG_MAP) {
    *code = TG_ETYPE;
    snprintf(msg, msize, "argument %zu: key '%s' of '%s', which is a %s, not a map", j,
             key, src, tg_type_name(tg_value_type(v)));
    return NULL;
  }
  tg_value *x = tg_map_get_c(v, key);
  if (!x) {
    *code = TG_ENOTFOUND;
    snprintf(msg, msize, "argument %zu: key '%s' not found in the map from '%s'", j, key, src);
  }
  return x;
}

/* Fill w->scratch with t's argument values (borrowed). TG_OK, a failure
 * (code + msg), or 1 when an input is missing because the run stopped or
 * (keep_going) its producer failed: t then takes the producer's cause. */
static int gather(tg__wctx *w, const tg__run *r, const tg__task *t, const tg__gnode *nd,
                  char *msg, size_t msize) {
  const tg__runplan *p = &r->plan;
  const tg__garg *a = tg__node_args(r->g, nd);
  if (!reserve_scratch(w, nd->nargs)) {
    snprintf(msg, msize, "out of memory gathering %u arguments", nd->nargs);
    return TG_ENOMEM;
  }
  for (uint32_t j = 0; j < nd->nargs; j++) {
    tg_value *v;
    int code = TG_OK;
    switch (a[j].kind) {
      case TG_ARG_VALUE: v = a[j].u.value; break;
      case TG_ARG_FUTURE: {
        const char *fm;
        tg__future_outcome(a[j].u.future, &code, &v, &fm);
        if (code) {
          snprintf(msg, msize, "argument %u: its future failed: %s", j, fm);
          return code;
        }
        break;
      }
      default:
        v = p->tasks[p->task_of[a[j].node]].result;
        if (!v) { /* its producer was skipped (the run stopped) or failed */
          if (r->cause) r->cause[t - p->tasks] = r->cause[p->task_of[a[j].node]];
          return 1;
        }
        if (a[j].kind != TG_ARG_NODE) {
          v = getitem(r, &a[j], v, j, &code, msg, msize);
          if (!v) return code;
        }
    }
    w->scratch[j] = v;
  }
  return TG_OK;
}

/* ---- the run as its tasks' host ---------------------------------------------- */

/* A task's compute is over for it once its run is cancelled (another
 * task failed, tg_executor_cancel) or past its deadline or cancel flag,
 * which tg__run_expired checks (and stops the run for). */
static bool run_cancelled(void *self) {
  tg__run *r = self;
  return tg__run_cancelled(r) || (tg__run_limited(r) && tg__run_expired(r));
}

static const char *run_key(void *self, uint32_t node, char *buf, size_t size) {
  return tg__run_key(self, node, buf, size);
}

static void run_log(void *self, const char *key, const char *line) {
  tg__run_log(self, key, line);
}

/* Every run hosts its tasks the same way: the host's object is the run,
 * a task's id its node. */
static const tg__task_host_ops run_host = {
    .cancelled = run_cancelled, .key = run_key, .log = run_log};

static int attempts_of(const tg__run *r, const tg__gnode *nd) {
  if (nd->kind == TG__NK_CONCAT) return 1;
  if (!(nd->fn->flags & TG_FUNC_PURE)) return 1;
  return 1 + (nd->retries >= 0 ? nd->retries : r->retries);
}

/* What an observed call tells its closing event: the calls made and the
 * failure's message. */
typedef struct outcome {
  unsigned attempts;
  char msg[256];
} outcome;

/* The message a failure is reported with (as fail_task words it). */
static void outcome_failed(outcome *oc, int code, const char *msg) {
  if (oc) snprintf(oc->msg, sizeof oc->msg, "%s", msg && *msg ? msg : tg_strerror(code));
}

/* Call t's function with retries; its result, or NULL with *code the
 * failure (recorded) or 1 (an input is missing: the run stopped). With
 * events (oc set), STARTED is reported before the first attempt, at
 * *start, and oc gets the calls made and the failure's message. */
static tg_value *call_attempts(tg__wctx *w, tg__run *r, tg__task *t, outcome *oc,
                               double *start, int *code) {
  const tg__gnode *nd = &r->g->nodes[t->node];
  tg_task_ctx ctx;
  int rc = gather(w, r, t, nd, ctx.msg, sizeof ctx.msg);
  if (rc) {
    if (rc != 1) {
      fail_task(r, t, rc, ctx.msg);
      outcome_failed(oc, rc, ctx.msg);
    } else { /* an input failed (keep_going) */
      w->skipped += !(t->flags & TG__T_INTERNAL);
    }
    *code = rc;
    return NULL;
  }
  if (!atomic_load_explicit(&r->started, memory_order_relaxed))
    atomic_store_explicit(&r->started, 1, memory_order_relaxed);
  if (TG__UNLIKELY(oc != NULL)) {
    static const tg__call_report first = {.thread = 0, .attempts = 1};
    *start = tg__now();
    emit(r, t, TG_EVENT_STARTED, w->worker, TG_OK, *start, *start, &first);
  }
  bool timed = r->memo && tg__memo_timed(r->memo, &w->memo_sample, t->node, nd);
  for (int at = 0, n = attempts_of(r, nd);; at++) {
    tg__task_ctx_init(&ctx, nd->fn, (tg__task_host){&run_host, r}, t->node, w->worker, at);
    ctx.states = &w->states;
    double t0 = timed || nd->timeout > 0 ? tg__now() : 0;
    if (nd->timeout > 0) ctx.deadline = t0 + nd->timeout;
    tg_value *out = NULL;
    tg_task_ctx *caller = tg__tls_task;
    tg__tls_task = &ctx;
    rc = tg__node_call_once(&ctx, nd, w->scratch, &out);
    tg__tls_task = caller;
    w->ran += !(t->flags & TG__T_INTERNAL);
    if (oc) oc->attempts++;
    double t1 = timed || ctx.deadline > 0 ? tg__now() : 0;
    if (rc == TG_OK && !out) rc = tg_task_fail(&ctx, TG_EINVAL, "returned no value");
    if (ctx.deadline > 0) rc = tg__node_check_deadline(&ctx, nd, rc, t1);
    if (rc == TG_OK) {
      if (timed && tg__run_callout_begin(r)) {
        tg__memo_done(r->memo, r->g, t->node, out, t1 - t0);
        tg__run_callout_end(r);
      }
      return out;
    }
    tg_value_unref(out);
    if (rc > 0) rc = tg_task_fail(&ctx, TG_ETASK, "returned status %d", rc);
    if (!(t->flags & TG__T_INTERNAL))
      atomic_fetch_add_explicit(&r->attempts_failed, 1, memory_order_relaxed);
    if (at + 1 >= n || tg__run_stopped(r)) {
      if (gave_up(r, rc)) cancel_task(r, t);
      else fail_task(r, t, rc, ctx.fail_code ? ctx.msg : NULL);
      outcome_failed(oc, rc, ctx.fail_code ? ctx.msg : NULL);
      *code = rc;
      return NULL;
    }
  }
}

/* call_attempts, marked as under way for a run with a deadline (which
 * names such tasks when it passes). */
static tg_value *call(tg__wctx *w, tg__run *r, tg__task *t, outcome *oc, double *start,
                      int *code) {
  if (TG__LIKELY(!r->running)) return call_attempts(w, r, t, oc, start, code);
  _Atomic uint8_t *mark = &r->running[t - r->plan.tasks];
  atomic_store_explicit(mark, 1, memory_order_relaxed);
  tg_value *res = call_attempts(w, r, t, oc, start, code);
  atomic_store_explicit(mark, 0, memory_order_relaxed);
  return res;
}

/* ---- entry points --------------------------------------------------------------- */

static inline void switch_run(tg__wctx *w, tg__run *r) {
  if (w->run != r) {
    tg__wctx_flush(w);
    w->run = r;
  }
}

/* Claim t: false when it was dropped (finished here as skipped). */
static inline bool claim(tg__wctx *w, tg__task *t) {
  uint8_t st = TG__T_NEW;
  if (atomic_compare_exchange_strong_explicit(&t->state, &st, TG__T_STARTED,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
    return true;
  w->skipped += !(t->flags & TG__T_INTERNAL);
  tg_value *hit = t->flags & TG__T_CACHED ? t->result : NULL; /* not needed now */
  if (t->run->on_event) emit_now(t->run, t, TG_EVENT_SKIPPED, -1, TG_OK, NULL);
  finish(w, t, NULL, false); /* the drop released its inputs already */
  tg_value_unref(hit);
  return false;
}

/* Finish claimed task t with the value the cache gave it (no inputs). */
static void finish_cached(tg__wctx *w, tg__task *t) {
  tg_value *res = t->result;
  t->result = NULL;
  if (!(t->flags & TG__T_INTERNAL))
    atomic_fetch_add_explicit(&t->run->cached, 1, memory_order_relaxed);
  if (t->run->on_event) emit_now(t->run, t, TG_EVENT_CACHED, -1, TG_OK, NULL);
  finish(w, t, res, false);
}

_Thread_local tg_task_ctx *tg__tls_task;

void tg__task_ctx_for_run(tg_task_ctx *ctx, tg__run *r, const tg_func *fn, uint32_t node,
                          int worker, int attempt) {
  tg__task_ctx_init(ctx, fn, (tg__task_host){&run_host, r}, node, worker, attempt);
}

tg__run *tg__task_host_run(const tg_task_ctx *ctx) {
  return ctx->host.ops == &run_host ? ctx->host.self : NULL;
}

/* tg__task_exec of a run with events: the call and its closing event. */
static __attribute__((noinline)) void exec_observed(tg__wctx *w, tg__run *r, tg__task *t) {
  tg_value *res = NULL;
  int code = 1;
  double start = 0;
  outcome oc = {0, ""};
  if (tg__run_stopped(r) || (tg__run_limited(r) && tg__run_expired(r)))
    w->skipped += !(t->flags & TG__T_INTERNAL);
  else
    res = call(w, r, t, &oc, &start, &code);
  double end = tg__now();
  /* In process, a worker is one thread: its slot 0. */
  tg__call_report x = {.thread = oc.attempts ? 0 : -1, .attempts = oc.attempts,
                       .message = oc.msg};
  if (res) emit(r, t, TG_EVENT_FINISHED, w->worker, TG_OK, start, end, &x);
  else if (code == 1) emit(r, t, TG_EVENT_SKIPPED, -1, TG_OK, end, end, NULL);
  else emit(r, t, gave_up(r, code) ? TG_EVENT_CANCELLED : TG_EVENT_FAILED, w->worker, code,
            start > 0 ? start : end, end, &x);
  finish(w, t, res, true);
}

void tg__task_exec(tg__wctx *w, tg__task *t) {
  tg__run *r = t->run;
  switch_run(w, r);
  if (!claim(w, t)) return;
  if (TG__UNLIKELY(t->flags & TG__T_CACHED)) {
    finish_cached(w, t);
    return;
  }
  if (TG__UNLIKELY(r->on_event != NULL)) {
    exec_observed(w, r, t);
    return;
  }
  tg_value *res = NULL;
  double start;
  int code;
  if (tg__run_stopped(r) || (tg__run_limited(r) && tg__run_expired(r)))
    w->skipped += !(t->flags & TG__T_INTERNAL);
  else
    res = call(w, r, t, NULL, &start, &code);
  finish(w, t, res, true);
}

bool tg__task_begin(tg__wctx *w, tg__task *t, tg_value *const **args,
                    size_t *nargs) {
  tg__run *r = t->run;
  switch_run(w, r);
  if (!claim(w, t)) return false;
  if (t->flags & TG__T_CACHED) {
    finish_cached(w, t);
    return false;
  }
  const tg__gnode *nd = &r->g->nodes[t->node];
  char msg[256];
  int rc = tg__run_stopped(r) ? 1 : gather(w, r, t, nd, msg, sizeof msg);
  if (rc == TG_OK) {
    atomic_store_explicit(&r->started, 1, memory_order_relaxed);
    if (r->memo && r->memo->t0 && tg__memo_timed(r->memo, &w->memo_sample, t->node, nd))
      r->memo->t0[t - r->plan.tasks] = tg__now();
    if (TG__UNLIKELY(r->on_event != NULL) && !w->defer_started)
      tg__task_started(w, t, w->worker);
    if (r->running) atomic_store_explicit(&r->running[t - r->plan.tasks], 1, memory_order_relaxed);
    *args = w->scratch;
    *nargs = nd->nargs;
    return true;
  }
  if (rc == 1) w->skipped += !(t->flags & TG__T_INTERNAL);
  else fail_task(r, t, rc, msg);
  if (r->on_event) {
    tg__call_report x = {.thread = -1, .message = msg};
    emit_now(r, t, rc == 1 ? TG_EVENT_SKIPPED : TG_EVENT_FAILED, rc == 1 ? -1 : w->worker,
             rc == 1 ? TG_OK : rc, &x);
  }
  finish(w, t, NULL, true);
  return false;
}

void tg__task_started(tg__wctx *w, tg__task *t, int worker) {
  tg__run *r = t->run;
  if (!r->on_event) return;
  double now = tg__now();
  if (r->ev_start) r->ev_start[t - r->plan.tasks] = now;
  tg__call_report x = {.thread = w->thread, .attempts = 1};
  emit(r, t, TG_EVENT_STARTED, worker, TG_OK, now, now, &x);
}

/* The closing event of a task begun with tg__task_begin: over the span
 * the backend measured, else from when it was sent until now. */
static void end_event(tg__wctx *w, tg__run *r, tg__task *t, int status, const char *msg,
                      const tg__call_report *rep) {
  double end = tg__now(), start = end;
  if (rep && rep->start >= 0) {
    start = rep->start;
    end = rep->end;
  } else if (r->ev_start && r->ev_start[t - r->plan.tasks] > 0) {
    start = r->ev_start[t - r->plan.tasks];
  }
  tg__call_report x = {.thread = -1};
  if (rep) x = *rep;
  char m[256];
  snprintf(m, sizeof m, "%s", msg && *msg ? msg : tg_strerror(status));
  x.message = m;
  tg_event_kind kind = status == TG_OK       ? TG_EVENT_FINISHED
                      : gave_up(r, status) ? TG_EVENT_CANCELLED
                                           : TG_EVENT_FAILED;
  emit(r, t, kind, rep ? rep->worker : w->worker, status, start, end, &x);
}

void tg__task_end_report(tg__wctx *w, tg__task *t, int rc, tg_value *result,
                         const char *msg, const tg__call_report *rep) {
  tg__run *r = t->run;
  double seconds = rep ? rep->seconds : -1;
  switch_run(w, r);
  bool user = !(t->flags & TG__T_INTERNAL);
  w->ran += user;
  /* The backend counted the failed attempts it retried; this is the last. */
  if (user && !(rc == TG_OK && result))
    atomic_fetch_add_explicit(&r->attempts_failed, 1, memory_order_relaxed);
  if (r->running) atomic_store_explicit(&r->running[t - r->plan.tasks], 0, memory_order_relaxed);
  if (rc == TG_OK && result) {
    double *t0 = r->memo && r->memo->t0 ? &r->memo->t0[t - r->plan.tasks] : NULL;
    if (t0 && *t0 > 0) /* timed: tg__memo_timed said so at the begin */
      tg__memo_done(r->memo, r->g, t->node, result,
                    seconds >= 0 ? seconds : tg__now() - *t0);
    if (TG__UNLIKELY(r->on_event != NULL)) end_event(w, r, t, TG_OK, NULL, rep);
    finish(w, t, result, true);
    return;
  }
  tg_value_unref(result);
  int code = rc < 0 ? rc : TG_ETASK;
  if (gave_up(r, code)) cancel_task(r, t);
  else fail_task(r, t, code, msg);
  if (r->on_event) end_event(w, r, t, code, msg, rep);
  finish(w, t, NULL, true);
}

void tg__task_end(tg__wctx *w, tg__task *t, int rc, tg_value *result,
                  const char *msg) {
  tg__task_end_report(w, t, rc, result, msg, NULL);
}
