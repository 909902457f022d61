/* lib/sched/cancel.c: tg_cancel, the flag that stops computes from another
 * thread or a signal handler, and how a run watches it.
 *
 * Raising the flag is one store to a lock-free atomic, which is all a
 * signal handler may do. Nobody is woken: the thread waiting for a
 * watched run looks at the flag every POLL seconds, and tasks asking
 * tg_task_cancelled() look at it too (the sync backend runs them on that
 * very thread). Whoever sees it first stops the run through the same path
 * a failure or a timeout takes (tg__run_stop), so every backend's way of
 * ending a stopped run applies. */
#include <stdatomic.h>

#include "sched_internal.h"

#define POLL 0.02 /* seconds between looks at the flag while waiting */

struct tg_cancel {
  atomic_int raised;
};

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "tg_cancel_set must be async-signal-safe: atomic_int lock-free");

int tg_cancel_new(tg_cancel **out) {
  if (!out) return TG_EINVAL;
  *out = tg__calloc(1, sizeof **out);
  if (!*out) return TG_ENOMEM;
  atomic_init(&(*out)->raised, 0);
  return TG_OK;
}

void tg_cancel_free(tg_cancel *c) { tg__free(c); }

void tg_cancel_set(tg_cancel *c) {
  atomic_store_explicit(&c->raised, 1, memory_order_release);
}

bool tg_cancel_is_set(const tg_cancel *c) {
  return c && atomic_load_explicit(&((tg_cancel *)c)->raised, memory_order_acquire);
}

void tg_cancel_reset(tg_cancel *c) {
  if (c) atomic_store_explicit(&c->raised, 0, memory_order_release);
}

bool tg__run_cancel_requested(tg__run *r) {
  if (!tg_cancel_is_set(r->token)) return false;
  tg__run_stop(r, TG_ECANCELED, TG_NODE_NONE, "the compute was cancelled");
  return true;
}

int tg__run_wait_watched(tg__run *r, double timeout) {
  if (!r->token) return tg__run_wait(r, timeout);
  double deadline = timeout >= 0 ? tg__now() + timeout : 0;
  for (;;) {
    if (atomic_load_explicit(&r->done, memory_order_acquire)) return TG_OK;
    if (tg__run_cancel_requested(r)) return TG_ECANCELED;
    double slice = POLL;
    if (timeout >= 0) {
      double left = deadline - tg__now();
      if (left <= 0) return TG_ETIMEDOUT;
      if (left < slice) slice = left;
    }
    if (tg__run_wait(r, slice) == TG_OK) return TG_OK;
  }
}
