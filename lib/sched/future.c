/* lib/sched/future.c: futures (results of submissions: wait, result,
 * cancel, on-done callbacks) and the as-completed iterator. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"
#include "util/futex.h"

typedef struct cb_entry {
  tg_future_cb cb;
  void *ctx;
} cb_entry;

struct tg_future {
  _Atomic uint32_t refs;
  _Atomic uint32_t state; /* 0 pending, 1 done (a futex word) */
  pthread_mutex_t mu;     /* guards the fields below and the transition */
  bool cb_done;           /* callbacks dispatched: new ones run at once */
  bool cancelled;
  int code;               /* outcome, once done */
  tg_value *result;       /* a reference when code == TG_OK */
  char *msg;              /* failure message; NULL when none */
  cb_entry *cbs;          /* pending callbacks, in registration order */
  size_t ncb, cbcap;
  tg__run *run;           /* a reference; its output slot: */
  size_t slot;
};

tg_future *tg__future_new(tg__run *r, size_t slot) {
  tg_future *f = tg__calloc(1, sizeof *f);
  if (!f) return NULL;
  atomic_init(&f->refs, 1);
  atomic_init(&f->state, 0);
  pthread_mutex_init(&f->mu, NULL);
  f->run = r;
  f->slot = slot;
  tg__run_ref(r);
  return f;
}

tg_future *tg_future_ref(tg_future *f) {
  if (f) atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

void tg_future_free(tg_future *f) {
  if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
    return;
  tg_value_unref(f->result);
  tg__free(f->msg);
  tg__free(f->cbs);
  pthread_mutex_destroy(&f->mu);
  tg__run_unref(f->run);
  tg__free(f);
}

static void *input_ref(void *h) { return tg_future_ref(h); }
static void input_unref(void *h) { tg_future_free(h); }
const tg__extern_ops tg__future_inputs = {input_ref, input_unref};

/* Run the callbacks, including ones added meanwhile, in order. Entered
 * with f->mu held after the transition to done; returns with it released. */
static void dispatch(tg_future *f) {
  for (;;) {
    cb_entry *cbs = f->cbs;
    size_t n = f->ncb;
    if (n == 0) {
      f->cb_done = true;
      pthread_mutex_unlock(&f->mu);
      return;
    }
    f->cbs = NULL;
    f->ncb = f->cbcap = 0;
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++) cbs[i].cb(f, cbs[i].ctx);
    tg__free(cbs);
    pthread_mutex_lock(&f->mu);
  }
}

/* With f->mu held and f pending: record the outcome and mark it done. */
static void settle(tg_future *f, int code, tg_value *result, const char *msg) {
  f->code = code;
  if (code == TG_OK) {
    f->result = tg_value_ref(result);
  } else {
    const char *m = msg && *msg ? msg : tg_strerror(code);
    size_t len = strlen(m);
    f->msg = tg__malloc(len + 1);
    if (f->msg) memcpy(f->msg, m, len + 1);
    f->cancelled = code == TG_ECANCELED;
  }
  atomic_store_explicit(&f->state, 1, memory_order_release);
  tg__futex_wake(&f->state, INT_MAX);
}

void tg__future_resolve(tg_future *f, int code, tg_value *result,
                        const char *msg) {
  pthread_mutex_lock(&f->mu);
  if (atomic_load_explicit(&f->state, memory_order_relaxed)) {
    pthread_mutex_unlock(&f->mu);
    return;
  }
  settle(f, code, result, msg);
  dispatch(f);
}

bool tg__future_outcome(const tg_future *f, int *code, tg_value **result,
                        const char **msg) {
  if (!atomic_load_explicit(&f->state, memory_order_acquire)) return false;
  *code = f->code;
  *result = f->result;
  *msg = f->msg ? f->msg : tg_strerror(f->code);
  return true;
}

bool tg_future_done(const tg_future *f) {
  return f && atomic_load_explicit(&f->state, memory_order_acquire);
}

bool tg_future_cancelled(const tg_future *f) {
  return tg_future_done(f) && f->cancelled;
}

bool tg_future_running(const tg_future *f) {
  return f && !tg_future_done(f) &&
         atomic_load_explicit(&f->run->started, memory_order_relaxed);
}

/* Once every future of a submission is cancelled, nothing it computes is
 * wanted: stop its run, so that its tasks still running see
 * tg_task_cancelled() (out-of-process backends forward that to the
 * workers running them). While some future of it may still get a result
 * (its task had started when its cancel came), the run goes on. The
 * caller holds the run's plan. */
static void stop_if_all_cancelled(tg__run *r) {
  for (size_t s = 0; s < r->nout; s++)
    if (!tg_future_cancelled(r->futures[s])) return;
  tg__run_stop(r, TG_ECANCELED, TG_NODE_NONE, "cancelled");
}

bool tg_future_cancel(tg_future *f) {
  if (!f) return false;
  pthread_mutex_lock(&f->mu);
  if (atomic_load_explicit(&f->state, memory_order_relaxed)) {
    bool c = f->cancelled;
    pthread_mutex_unlock(&f->mu);
    return c;
  }
  /* Pending, so its output task has not finished and the run's plan is
   * alive; the hold keeps it so while the work is dropped. */
  tg__run *r = f->run;
  atomic_fetch_add_explicit(&r->unretired, 1, memory_order_relaxed);
  /* Dropping the task and deciding are one step: a worker that claims it
   * meanwhile wins, and the future then resolves with its result. */
  if (!tg__run_cancel_slot_unstarted(r, f->slot)) {
    pthread_mutex_unlock(&f->mu);
    tg__run_retire(r, 1);
    return false;
  }
  settle(f, TG_ECANCELED, NULL, "cancelled");
  dispatch(f);
  stop_if_all_cancelled(r);
  tg__run_retire(r, 1);
  return true;
}

int tg_future_wait(tg_future *f, double timeout) {
  if (!f) return TG_EINVAL;
  double deadline = timeout >= 0 ? tg__now() + timeout : 0;
  while (!atomic_load_explicit(&f->state, memory_order_acquire)) {
    double left = -1;
    if (timeout >= 0 && (left = deadline - tg__now()) <= 0) return TG_ETIMEDOUT;
    tg__futex_wait(&f->state, 0, left);
  }
  return TG_OK;
}

int tg_future_result(tg_future *f, double timeout, tg_value **out) {
  if (out) *out = NULL;
  if (!f || !out) return TG_EINVAL;
  int rc = tg_future_wait(f, timeout);
  if (rc) return rc;
  if (f->code) return f->code;
  *out = tg_value_ref(f->result);
  return TG_OK;
}

const char *tg_future_errmsg(const tg_future *f) {
  if (!tg_future_done(f) || f->code == TG_OK) return "";
  return f->msg ? f->msg : tg_strerror(f->code);
}

int tg_future_on_done(tg_future *f, tg_future_cb cb, void *ctx) {
  if (!f || !cb) return TG_EINVAL;
  pthread_mutex_lock(&f->mu);
  if (f->cb_done) {
    pthread_mutex_unlock(&f->mu);
    cb(f, ctx);
    return TG_OK;
  }
  if (f->ncb == f->cbcap) {
    size_t c = f->cbcap ? f->cbcap * 2 : 4;
    cb_entry *p = tg__realloc(f->cbs, c * sizeof *p);
    if (!p) {
      pthread_mutex_unlock(&f->mu);
      return TG_ENOMEM;
    }
    f->cbs = p;
    f->cbcap = c;
  }
  f->cbs[f->ncb++] = (cb_entry){cb, ctx};
  pthread_mutex_unlock(&f->mu);
  return TG_OK;
}

bool tg__future_off_done(tg_future *f, tg_future_cb cb, void *ctx) {
  bool found = false;
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < f->ncb && !found; i++) {
    if (f->cbs[i].cb != cb || f->cbs[i].ctx != ctx) continue;
    memmove(&f->cbs[i], &f->cbs[i + 1], (f->ncb - i - 1) * sizeof *f->cbs);
    f->ncb--;
    found = true;
  }
  pthread_mutex_unlock(&f->mu);
  return found;
}

/* Whether f finished by failing, not by being cancelled (what Python
 * calls raising an exception). */
static bool raised(const tg_future *f) {
  return tg_future_done(f) && f->code != TG_OK && !f->cancelled;
}

/* ---- distinct futures ---------------------------------------------------------- */

typedef struct fpos {
  const tg_future *f;
  size_t i;
} fpos;

static int by_future(const void *a, const void *b) {
  const fpos *x = a, *y = b;
  if (x->f != y->f) return (uintptr_t)x->f < (uintptr_t)y->f ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Check fs[0..n) and set first[i] for the first occurrence of each
 * distinct future (a set, as Python's wait and as_completed take). */
static int distinct(tg_future *const *fs, size_t n, bool *first) {
  if (n && !fs) return TG_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!fs[i]) return TG_EINVAL;
  fpos *p = tg__malloc((n ? n : 1) * sizeof *p);
  if (!p) return TG_ENOMEM;
  for (size_t i = 0; i < n; i++) p[i] = (fpos){fs[i], i};
  qsort(p, n, sizeof *p, by_future);
  for (size_t i = 0; i < n; i++) first[p[i].i] = i == 0 || p[i].f != p[i - 1].f;
  tg__free(p);
  return TG_OK;
}

/* An absolute CLOCK_MONOTONIC time `secs` from now. */
static struct timespec abs_after(double secs) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (secs > 1e9) secs = 1e9;
  double t = (double)ts.tv_nsec * 1e-9 + secs;
  ts.tv_sec += (time_t)t;
  ts.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  return ts;
}

static void monotonic_cond(pthread_cond_t *cv) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
}

/* ---- wait ------------------------------------------------------------------------ */

/* Shared by a waiting thread and the callbacks it registered. */
typedef struct waiter {
  _Atomic uint32_t refs; /* the waiting thread + each callback not yet run */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t done, raised;   /* futures finished since registration; failed */
} waiter;

static void waiter_unref(waiter *w) {
  if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1) return;
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  tg__free(w);
}

static void waiter_done(tg_future *f, void *ctx) {
  waiter *w = ctx;
  pthread_mutex_lock(&w->mu);
  w->done++;
  w->raised += raised(f);
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  waiter_unref(w);
}

/* Whether the wait is over with `done` of `n` pending futures finished,
 * `nraised` of them by failing. */
static bool satisfied(tg_wait_mode mode, size_t done, size_t nraised, size_t n) {
  if (done == n) return true;
  if (mode == TG_FIRST_COMPLETED) return done > 0;
  return mode == TG_FIRST_EXCEPTION && nraised > 0;
}

/* Register on every distinct future (the done ones count at once, so one
 * finishing meanwhile is not missed) and wait until satisfied or the
 * deadline. */
static int wait_pending(tg_future *const *fs, size_t n, const bool *first,
                        tg_wait_mode mode, double timeout) {
  waiter *w = tg__calloc(1, sizeof *w);
  if (!w) return TG_ENOMEM;
  pthread_mutex_init(&w->mu, NULL);
  monotonic_cond(&w->cv);
  atomic_init(&w->refs, 1);
  size_t reg = 0;
  int rc = TG_OK;
  for (size_t i = 0; i < n && rc == TG_OK; i++) {
    if (!first[i]) continue;
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    if ((rc = tg_future_on_done(fs[i], waiter_done, w)) == TG_OK) reg++;
    else atomic_fetch_sub_explicit(&w->refs, 1, memory_order_relaxed);
  }
  struct timespec ts = abs_after(timeout >= 0 ? timeout : 0);
  pthread_mutex_lock(&w->mu);
  while (rc == TG_OK && !satisfied(mode, w->done, w->raised, reg)) {
    if (timeout < 0) pthread_cond_wait(&w->cv, &w->mu);
    else if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&w->mu);
  for (size_t i = 0; i < n; i++) /* callbacks that did not run never will */
    if (first[i] && tg__future_off_done(fs[i], waiter_done, w)) waiter_unref(w);
  waiter_unref(w);
  return rc;
}

int tg_futures_wait(tg_future *const *fs, size_t n, tg_wait_mode mode, double timeout,
                    size_t *done_idx, size_t *ndone, size_t *notdone_idx,
                    size_t *nnotdone) {
  if (ndone) *ndone = 0;
  if (nnotdone) *nnotdone = 0;
  if (mode != TG_FIRST_COMPLETED && mode != TG_FIRST_EXCEPTION && mode != TG_ALL_COMPLETED)
    return TG_EINVAL;
  bool stack[64], *first = n <= 64 ? stack : tg__malloc(n * sizeof *first);
  if (!first) return TG_ENOMEM;
  int rc = distinct(fs, n, first);
  size_t nd = 0, nu = 0, nr = 0;
  for (size_t i = 0; rc == TG_OK && i < n; i++) {
    if (!first[i]) continue;
    nu++;
    if (tg_future_done(fs[i])) nd++, nr += raised(fs[i]);
  }
  /* Python looks at what is done first: FIRST_EXCEPTION with a failure
   * among the done ones (or everything done) returns at once. */
  if (rc == TG_OK && timeout != 0 && !satisfied(mode, nd, nr, nu))
    rc = wait_pending(fs, n, first, mode, timeout);
  size_t kd = 0, kn = 0; /* the state now: done ones may have joined */
  for (size_t i = 0; rc == TG_OK && i < n; i++) {
    if (!first[i]) continue;
    if (tg_future_done(fs[i])) {
      if (done_idx) done_idx[kd] = i;
      kd++;
    } else {
      if (notdone_idx) notdone_idx[kn] = i;
      kn++;
    }
  }
  if (ndone) *ndone = kd;
  if (nnotdone) *nnotdone = kn;
  if (first != stack) tg__free(first);
  return rc;
}

/* ---- as completed ------------------------------------------------------------ */

struct tg_as_completed {
  _Atomic uint32_t refs; /* the caller + each callback not yet run */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  tg_future **q;         /* finished futures in order; head..tail unread */
  size_t head, tail, n;  /* n: distinct futures */
  tg_future **fs;        /* the distinct futures (borrowed), to take back
                            callbacks not run when freed early */
  double deadline;       /* of the whole iteration (tg__now); 0: none */
};

static void ac_unref(tg_as_completed *it) {
  if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) != 1) return;
  pthread_mutex_destroy(&it->mu);
  pthread_cond_destroy(&it->cv);
  tg__free(it->q);
  tg__free(it->fs);
  tg__free(it);
}

static void ac_done(tg_future *f, void *ctx) {
  tg_as_completed *it = ctx;
  pthread_mutex_lock(&it->mu);
  it->q[it->tail++] = f;
  pthread_cond_signal(&it->cv);
  pthread_mutex_unlock(&it->mu);
  ac_unref(it);
}

int tg_as_completed_new_timed(tg_future *const *fs, size_t n, double timeout,
                              tg_as_completed **out) {
  if (!out) return TG_EINVAL;
  *out = NULL;
  double start = tg__now();
  bool stack[64], *first = n <= 64 ? stack : tg__malloc(n * sizeof *first);
  if (!first) return TG_ENOMEM;
  int rc = distinct(fs, n, first);
  tg_as_completed *it = rc ? NULL : tg__calloc(1, sizeof *it);
  if (!rc && (!it || !(it->q = tg__malloc((n ? n : 1) * sizeof *it->q)) ||
              !(it->fs = tg__malloc((n ? n : 1) * sizeof *it->fs)))) {
    if (it) tg__free(it->q);
    tg__free(it);
    rc = TG_ENOMEM;
  }
  if (rc) {
    if (first != stack) tg__free(first);
    return rc;
  }
  for (size_t i = 0; i < n; i++)
    if (first[i]) it->fs[it->n++] = fs[i];
  if (first != stack) tg__free(first);
  monotonic_cond(&it->cv);
  pthread_mutex_init(&it->mu, NULL);
  it->deadline = timeout >= 0 ? start + timeout : 0;
  if (timeout >= 0 && !(it->deadline > 0)) it->deadline = 1e-9; /* start is never 0 */
  atomic_init(&it->refs, (uint32_t)(1 + it->n));
  for (size_t i = 0; i < it->n; i++) {
    if (tg_future_on_done(it->fs[i], ac_done, it) != TG_OK) {
      /* the callbacks registered keep it alive until they ran */
      atomic_fetch_sub_explicit(&it->refs, (uint32_t)(it->n - i), memory_order_relaxed);
      it->n = i;
      tg_as_completed_free(it);
      return TG_ENOMEM;
    }
  }
  *out = it;
  return TG_OK;
}

int tg_as_completed_new(tg_future *const *fs, size_t n, tg_as_completed **out) {
  return tg_as_completed_new_timed(fs, n, -1, out);
}

/* Whether one of it's futures is done but not yet in its queue (it->mu
 * held): its callback is under way and will queue it. */
static bool done_unqueued(const tg_as_completed *it) {
  size_t done = 0;
  for (size_t i = 0; i < it->n; i++) done += tg_future_done(it->fs[i]);
  return done > it->tail;
}

int tg_as_completed_next(tg_as_completed *it, double timeout, tg_future **out) {
  if (out) *out = NULL;
  if (!it || !out) return TG_EINVAL;
  /* The nearer of this call's limit and the iteration's deadline. */
  double left = timeout;
  if (it->deadline > 0) {
    double total = it->deadline - tg__now();
    if (total < 0) total = 0;
    if (left < 0 || total < left) left = total;
  }
  struct timespec ts = abs_after(left >= 0 ? left : 0);
  int rc = TG_OK;
  pthread_mutex_lock(&it->mu);
  while (it->head == it->tail && rc == TG_OK) {
    if (it->head == it->n) rc = TG_ENOTFOUND;
    else if (left < 0) pthread_cond_wait(&it->cv, &it->mu);
    else if (pthread_cond_timedwait(&it->cv, &it->mu, &ts) != 0 && it->head == it->tail) {
      /* Time is up, but a future already done is not late: a waiter of
       * it can wake before its callbacks (this queue's) have run. */
      if (done_unqueued(it)) pthread_cond_wait(&it->cv, &it->mu);
      else rc = TG_ETIMEDOUT;
    }
  }
  if (rc == TG_OK) *out = it->q[it->head++];
  pthread_mutex_unlock(&it->mu);
  return rc;
}

void tg_as_completed_free(tg_as_completed *it) {
  if (!it) return;
  for (size_t i = 0; i < it->n; i++) /* callbacks not run never will */
    if (tg__future_off_done(it->fs[i], ac_done, it)) ac_unref(it);
  ac_unref(it);
}
