/* include/tgraph/observe.h: watching every call of a registry's task
 * functions (start and end, worker, key), for progress displays and
 * traces.
 *
 * tg_registry_observe() routes every function registered so far through
 * a wrapper that reports each call to an observer; graphs already built
 * over the registry see the change. tg_observation_end() undoes it. While
 * observed, functions behave exactly as before (tg_task_user() and the
 * rest of the task context included).
 *
 * Only calls made in this process are seen: the sync and threads
 * backends. Results served from a cache are not calls.
 *
 * Thread safety: the observer is called from every worker thread at once
 *   and must be thread-safe and quick. Observing and ending must not run
 *   while a compute over the registry is running.
 */
#ifndef TGRAPH_OBSERVE_H
#define TGRAPH_OBSERVE_H

#include "tgraph/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tg_call_phase {
  TG_CALL_START = 0, /* the function is about to be called */
  TG_CALL_END = 1,   /* it returned */
} tg_call_phase;

typedef struct tg_call_event {
  tg_call_phase phase;
  const char *key; /* the task's key; valid during the callback */
  const char *fn;  /* the function's name */
  int worker;      /* 0-based worker index */
  int attempt;     /* 0 first, 1 first retry, ... */
  int status;      /* TG_CALL_END: what the function returned */
  double time;     /* CLOCK_MONOTONIC, seconds */
} tg_call_event;

typedef void (*tg_call_observer)(void *ctx, const tg_call_event *ev);

typedef struct tg_observation tg_observation; /* opaque */

/* Report every call of every function now in reg to obs(ctx, ...). On
 * success *out is the handle that ends it. */
int tg_registry_observe(tg_registry *reg, tg_call_observer obs, void *ctx,
                        tg_observation **out /* OUT */);
/* Restore the functions and free o (o may be NULL). */
void tg_observation_end(tg_observation *o);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_OBSERVE_H */
