/* lib/sched/future.c: futures (results of submissions: wait, result,
 * cancel, on-done callbacks) and the as-completed iterator. */
#include <limits.h>
#include <string.h>

#include "futex.h"
#include "sched_internal.h"

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

/* ---- as completed ------------------------------------------------------------ */

struct tg_as_completed {
  _Atomic uint32_t refs; /* the caller + each callback not yet run */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  tg_future **q;         /* finished futures in order; head..tail unread */
  size_t head, tail, n;
};

static void ac_unref(tg_as_completed *it) {
  if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) != 1) return;
  pthread_mutex_destroy(&it->mu);
  pthread_cond_destroy(&it->cv);
  tg__free(it->q);
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

int tg_as_completed_new(tg_future *const *fs, size_t n, tg_as_completed **out) {
  if (!out) return TG_EINVAL;
  *out = NULL;
  if (n && !fs) return TG_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!fs[i]) return TG_EINVAL;
  tg_as_completed *it = tg__calloc(1, sizeof *it);
  if (!it || !(it->q = tg__malloc((n ? n : 1) * sizeof *it->q))) {
    tg__free(it);
    return TG_ENOMEM;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&it->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&it->mu, NULL);
  it->n = n;
  atomic_init(&it->refs, (uint32_t)(1 + n));
  for (size_t i = 0; i < n; i++) {
    if (tg_future_on_done(fs[i], ac_done, it) != TG_OK) {
      /* the callbacks registered keep it alive until they ran */
      atomic_fetch_sub_explicit(&it->refs, (uint32_t)(n - i), memory_order_relaxed);
      ac_unref(it);
      return TG_ENOMEM;
    }
  }
  *out = it;
  return TG_OK;
}

int tg_as_completed_next(tg_as_completed *it, double timeout, tg_future **out) {
  if (out) *out = NULL;
  if (!it || !out) return TG_EINVAL;
  struct timespec ts;
  if (timeout >= 0) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_nsec * 1e-9 + timeout;
    ts.tv_sec += (time_t)t;
    ts.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
  }
  int rc = TG_OK;
  pthread_mutex_lock(&it->mu);
  while (it->head == it->tail && rc == TG_OK) {
    if (it->head == it->n) rc = TG_ENOTFOUND;
    else if (timeout < 0) pthread_cond_wait(&it->cv, &it->mu);
    else if (pthread_cond_timedwait(&it->cv, &it->mu, &ts) != 0 && it->head == it->tail)
      rc = TG_ETIMEDOUT;
  }
  if (rc == TG_OK) *out = it->q[it->head++];
  pthread_mutex_unlock(&it->mu);
  return rc;
}

void tg_as_completed_free(tg_as_completed *it) {
  if (it) ac_unref(it);
}
