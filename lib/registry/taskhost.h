/* lib/registry/taskhost.h: the task host, the narrow interface between a
 * running task's context (tg_task_*, lib/registry/context.c) and whatever
 * calls task functions: the scheduler's workers (lib/sched/task.c), the
 * remote worker runtime (lib/worker/pool.c) and the forked
 * processes worker.
 *
 * It sits below the scheduler so that a worker calls a task without
 * building a stand-in run, graph or executor: the context knows its host
 * only through these ops; the host fills the context before the call
 * (tg__task_ctx_init, then the fields it names) and reads the outcome
 * from it after (fail_code, msg).
 *
 * What comes from where:
 *   per host (the ops, on its object `self`): whether the task's compute
 *     was cancelled, the key of a task by the host's id for it, where log
 *     lines go;
 *   per call (fields, not ops: they change with every call, and a field
 *     is a load where an op would be an indirect call): the function, the
 *     host's id of the task, the worker's index, the attempt number, the
 *     attempt's deadline, the worker's per-worker state table (from which
 *     tg__wstates_prepare sets the state before the call) and, when the
 *     host knows it already, the key.
 *
 * Cost: setting a context up is a few stores on the caller's stack (no
 * allocation per task); each tg_task_* call is one indirect call at most.
 *
 * Thread safety: the ops are called on the thread running the task,
 * possibly on several such threads at once for one host: each op must be
 * safe for that. A context belongs to the one thread running its task.
 */
#ifndef TG_REGISTRY_TASKHOST_H
#define TG_REGISTRY_TASKHOST_H

#include "registry/registry_internal.h"

typedef struct tg__task_host_ops {
  /* True once the task's compute is over for it: cancelled, failed
   * elsewhere, or past the compute's deadline (the attempt's own deadline
   * is the context's, checked by tg_task_cancelled itself). NULL: never. */
  bool (*cancelled)(void *self);
  /* The key of task `id` (the id the host gave tg__task_ctx_init), in buf
   * or in memory that outlives the call; never NULL. NULL op: the
   * function's name (unless the host set ctx->key). */
  const char *(*key)(void *self, uint32_t id, char *buf, size_t size);
  /* Deliver one tg_task_log() line (key and line borrowed for the call).
   * NULL op: "[key] line" on stderr. */
  void (*log)(void *self, const char *key, const char *line);
} tg__task_host_ops;

/* A host: its ops (static, shared by every host of its kind) and its
 * object, borrowed for the duration of the call. ops NULL: no host (a
 * function called directly); every op then takes its default. */
typedef struct tg__task_host {
  const tg__task_host_ops *ops;
  void *self;
} tg__task_host;

/* Filled by the host on its stack for every call of a task function (and
 * again for every retry). `msg` is written only by tg_task_fail. */
struct tg_task_ctx {
  const tg_func *fn;
  tg__task_host host;
  uint32_t id;         /* the host's id of the task, passed to ops->key */
  int worker;          /* 0-based worker index (tg_task_worker) */
  int attempt;         /* 0 first, 1 first retry, ... */
  int fail_code;       /* code given to tg_task_fail, 0 when not called */
  double deadline;     /* tg__now() seconds after which the attempt is
                          over; 0 = none. Set by the host after init. */
  double progress;     /* last tg_task_progress() value */
  tg__wstates *states; /* the worker's state instances; NULL
                          outside a worker (direct calls): a function
                          naming a state then fails. Set after init. */
  void *state;         /* tg_task_state(), set by tg__wstates_prepare */
  const char *key;     /* NULL until tg_task_key() formats it; a host that
                          knows the key already sets it after init */
  char keybuf[TG__NAME_MAX + 32];
  char msg[256];       /* tg_task_fail message, valid when fail_code != 0 */
};

/* Reset ctx for one attempt of a call of fn, run by `host` (by value:
 * two pointers) as its task `id` on worker `worker`. */
static inline void tg__task_ctx_init(tg_task_ctx *ctx, const tg_func *fn,
                                     tg__task_host host, uint32_t id,
                                     int worker, int attempt) {
  ctx->fn = fn;
  ctx->host = host;
  ctx->id = id;
  ctx->worker = worker;
  ctx->attempt = attempt;
  ctx->fail_code = 0;
  ctx->deadline = 0;
  ctx->progress = 0;
  ctx->states = NULL; /* hosts with per-worker state set it after this */
  ctx->state = NULL;
  ctx->key = NULL;
  ctx->msg[0] = '\0';
}

#endif /* TG_REGISTRY_TASKHOST_H */
