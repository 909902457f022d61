/* lib/sched/backend.h: the internal interface every backend implements
 * (sync, threads, processes, tcp), as a versioned table of operations.
 *
 * A backend receives ready tasks and must finish each exactly once:
 *   - in-process backends call tg__task_exec(w, t) on one of their
 *     threads, with a tg__wctx of that thread. Finishing runs the
 *     completion logic right there (dependents' counters, releases), and
 *     the tasks it made ready are left in w->ready_first / w->ready_rest
 *     for the backend to queue: no lock or round trip per task;
 *   - backends that run functions elsewhere call tg__task_begin() to get
 *     the argument values, ship the call, and when the result comes back
 *     (on any thread of theirs) call tg__task_end(), then queue the tasks
 *     it made ready as above.
 * Each of their threads publishes its batched counts with
 * tg__wctx_flush() before it idles or blocks.
 *
 * Version 1 operations:
 *   create   start a backend with cfg->workers workers. On error fill err
 *            and return a negative code.
 *   submit   take n ready tasks (the array is borrowed; tasks are sorted
 *            most urgent first, and may belong to different runs). Called
 *            from any thread, including the backend's own workers (from
 *            future callbacks) and from inside tg__task_exec. Must not
 *            fail: a backend that cannot queue a task runs it in the
 *            calling thread.
 *   destroy  called when no run is active: stop the workers and free.
 *   caps     what the scheduler may assume of the backend (TG__CAP_*): the
 *            scheduler tests these, never which backend it runs.
 *
 * Thread safety: submit is called concurrently from any thread; create
 * and destroy by the executor's owner.
 */
#ifndef TG_SCHED_BACKEND_H
#define TG_SCHED_BACKEND_H

#include "sched/sched_internal.h"

#define TG__BACKEND_OPS_V1 1

/* Capabilities (tg__backend_ops.caps). */
enum {
  /* Calls run in this process through tg__task_exec, which times them;
   * without it, calls run elsewhere (tg__task_begin/end) and the run keeps
   * per-task start times to time them. */
  TG__CAP_IN_PROCESS = 1u << 0,
  /* One task at a time, whatever number of workers is asked for: the
   * executor reports one worker. */
  TG__CAP_ONE_WORKER = 1u << 1,
  /* Calls run on the backend's own threads in this process and cannot
   * be stopped: a compute at its deadline may return without them after
   * a grace period, leaving them to finish (tg__run_abandon). */
  TG__CAP_LEAVE_AT_DEADLINE = 1u << 2,
};

typedef struct tg__backend_cfg {
  uint32_t version;   /* TG__BACKEND_OPS_V1 */
  unsigned workers;   /* >= 1 */
  tg_executor *ex;    /* the owner */
  const tg_executor_opts *opts; /* the executor's options (may be NULL),
                                   for backend settings; borrowed during
                                   create only */
  const struct tg__keyset *keys; /* a run's keys in memory for the tcp
                                    backend instead of opts->keys_dir (NULL:
                                    none); borrowed during create only */
} tg__backend_cfg;

struct tg__backend_ops {
  int version;        /* TG__BACKEND_OPS_V1 */
  const char *name;   /* "sync", "threads", ... */
  unsigned caps;      /* TG__CAP_* */
  /* ---- version 1 ---- */
  int (*create)(const tg__backend_cfg *cfg, tg__backend **out, tg_error *err);
  void (*submit)(tg__backend *b, tg__task *const *tasks, size_t n);
  void (*destroy)(tg__backend *b);
};

/* Every backend's state starts with this. */
struct tg__backend {
  const tg__backend_ops *ops;
  unsigned workers;
};

static inline void tg__backend_submit(tg__backend *b, tg__task *const *tasks,
                                      size_t n) {
  b->ops->submit(b, tasks, n);
}

/* The list of backends, the one place that names them, is theirs
 * (backends/backends.c): */
/* The backend named `name` (NULL means "threads"), or NULL when unknown. */
const tg__backend_ops *tg__backend_find(const char *name);
/* "sync, threads, ...": the known names, for error messages. */
const char *tg__backend_names(void);

#endif /* TG_SCHED_BACKEND_H */
