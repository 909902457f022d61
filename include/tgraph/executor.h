/* include/tgraph/executor.h: a persistent pool of workers and futures, as
 * concurrent.futures and dask.distributed's client offer them.
 *
 * Life-cycle:
 *   1. tg_executor_new()       start a backend with N workers
 *   2. tg_executor_submit() /  submit graph nodes or function calls; each
 *      tg_executor_call()      gives a future; a future may be an argument
 *                              of a later call (tg_arg_future)
 *   3. tg_future_result() /   wait for results, poll, cancel, get called
 *      tg_future_on_done() /   back, wait for the first or all of several
 *      tg_futures_wait() /     (tg_executor_wait_all: everything), or
 *      tg_as_completed_*()     iterate in completion order
 *   4. tg_future_free()        drop each future handle
 *   5. tg_executor_free()      cancel what is queued, wait for what runs,
 *                              stop the workers
 *
 * Futures are reference counted: the caller owns one handle per future
 * returned; the executor keeps its own until the work is finished.
 *
 * Callbacks (tg_future_on_done) run exactly once: on the worker thread
 * that finished the future, or at once in the registering thread if it is
 * already done. They run in registration order and must not block.
 *
 * Thread safety: every call here is thread-safe: any thread may submit,
 *   wait, cancel or free futures. tg_executor_free() must not race with
 *   other calls on the same executor.
 * Fork: do not use an executor in a child of fork().
 */
#ifndef TGRAPH_EXECUTOR_H
#define TGRAPH_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "tgraph/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called for tg_task_log() lines; `key` is the task's key. */
typedef void (*tg_log_fn)(void *ctx, const char *key, const char *line);

#define TG_EXECUTOR_OPTS_V1 1
#define TG_EXECUTOR_OPTS_V2 2 /* adds join_listen */
typedef struct tg_executor_opts {
  uint32_t version;    /* TG_EXECUTOR_OPTS_V1 or TG_EXECUTOR_OPTS_V2 */
  const char *backend; /* "sync", "threads" (NULL), "processes", "tcp" */
  unsigned workers;    /* 0: one per CPU */
  tg_log_fn log;       /* NULL: lines go to stderr as "[key] line" */
  void *log_ctx;
  tg_cache *cache;     /* borrowed; NULL = no memoization */
  /* tcp backend (see remote.h); zero means the default: */
  const char *const *connect; /* worker addresses, "tcp://HOST:PORT"; copied */
  size_t nconnect;
  const char *keys_dir;   /* the client/ directory of tg_keys_generate;
                             NULL: this user's own key (tgraph/remote.h),
                             which allows loopback workers of this user
                             only */
  double connect_timeout; /* seconds a run waits while no worker is
                             connected before it fails; 0: 30 */
  double heartbeat;       /* seconds of silence after which a worker
                             counts as lost; 0: 10 */
  size_t keep_min;        /* results of at least this many bytes stay on
                             the worker that made them; 0: 4096 */
  tg_event_fn on_event;   /* NULL: none; else called per task of every run
                             (graph.h, "task events"), unless the compute
                             gives its own */
  void *event_ctx;        /* handed to on_event */
  /* ---- version 2 ---- */
  const char *join_listen; /* tcp backend: "tcp://HOST:PORT" where workers
                              started with tg_worker_opts.join (tgraph
                              worker --join) register while runs go
                              (remote.h, "Joining and leaving"); PORT 0 or
                              * picks a free one (tg_remote_join_address).
                              connect may then be empty. HOST other than
                              loopback needs keys_dir. NULL: none */
} tg_executor_opts;

/* Start an executor over `reg` (borrowed: must outlive it). opts may be
 * NULL. On error *out is NULL and err (may be NULL) says why: TG_EINVAL
 * for an unknown backend name (the message lists the known ones), or the
 * backend's own failure to start. */
int tg_executor_new(tg_registry *reg, const tg_executor_opts *opts,
                    tg_executor **out /* OUT */, tg_error *err);
/* Cancel queued work, wait for running tasks, stop workers, free. Futures
 * still held by the caller stay valid (finished or cancelled). ex may be
 * NULL. */
void tg_executor_free(tg_executor *ex);
const char *tg_executor_backend(const tg_executor *ex);
unsigned tg_executor_workers(const tg_executor *ex);
/* Last error detail of calls on ex, from whichever thread failed last:
 * read it right after the failing call. The text is a copy in a buffer of
 * the calling thread, valid until its next call here. */
const char *tg_executor_errmsg(const tg_executor *ex);

/* Submit the evaluation of node `node` of g. The part of g it needs is
 * copied, so g may change or be freed afterwards. On success *out is a new
 * future handle. */
int tg_executor_submit(tg_executor *ex, tg_graph *g, tg_node node,
                       tg_future **out /* OUT */);
/* Submit several nodes as one run (shared inputs are computed once). */
int tg_executor_submit_many(tg_executor *ex, tg_graph *g, const tg_node *nodes,
                            size_t n, tg_future **out /* OUT: n futures */);
/* Options of one submission. */
#define TG_SUBMIT_OPTS_V1 1
typedef struct tg_submit_opts {
  uint32_t version; /* TG_SUBMIT_OPTS_V1 */
  int priority;     /* added to the priority of every task the submission
                       runs (its nodes' tg_node_opts.priority; the sum is
                       clamped to int): among ready tasks of all
                       submissions, higher starts first (graph.h,
                       "Priorities"). Tasks of earlier submissions that
                       this one waits for (tg_arg_future) keep theirs. */
} tg_submit_opts;
/* tg_executor_submit_many with options (opts may be NULL: the defaults).
 * TG_EINVAL for an unknown opts->version. */
int tg_executor_submit_opts(tg_executor *ex, tg_graph *g, const tg_node *nodes,
                            size_t n, const tg_submit_opts *opts,
                            tg_future **out /* OUT: n futures */);
/* Submit one call of `fn`; args are constants (taken) or futures
 * (TG_ARG_FUTURE). Node arguments are TG_EINVAL here. */
int tg_executor_call(tg_executor *ex, const char *fn, const tg_arg *args,
                     size_t nargs, tg_future **out /* OUT */);

/* Wait until everything submitted to ex so far, and anything submitted
 * meanwhile, has finished (futures resolved, computes returned), as
 * concurrent.futures' shutdown(wait=True) without shutting down. At most
 * timeout seconds (< 0: forever; 0: just look). TG_OK, TG_ETIMEDOUT, or
 * TG_EINVAL for a NULL ex. */
int tg_executor_wait_all(tg_executor *ex, double timeout);

/* ---- futures --------------------------------------------------------- */

tg_future *tg_future_ref(tg_future *f);
void tg_future_free(tg_future *f); /* drops a handle; f may be NULL */

bool tg_future_done(const tg_future *f);      /* finished in any way */
/* Not done, and a task of its submission has started. */
bool tg_future_running(const tg_future *f);
bool tg_future_cancelled(const tg_future *f);
/* Cancel, as concurrent.futures does: true when the future will not run
 * (its own task had not started, or it was already cancelled): it is
 * then done and cancelled (TG_ECANCELED). False when its task has
 * started (a running future is not cancelled: it resolves with its
 * result) or it is done. Work that only this future needed is dropped.
 * Once every future of a submission is cancelled, its tasks still
 * running (inputs of the cancelled ones) see tg_task_cancelled() become
 * true, on every backend: threads and sync read the flag directly; the
 * processes and tcp backends tell the worker running such a task, whose
 * tg_task_cancelled() then turns true (within about 0.05 s), and ignore
 * what it returns. A task that ignores it runs to its end. */
bool tg_future_cancel(tg_future *f);

/* Wait until done, at most timeout seconds (< 0: forever). TG_OK or
 * TG_ETIMEDOUT. */
int tg_future_wait(tg_future *f, double timeout);
/* Wait, then: TG_OK with *out a new reference to the result; or the
 * failure (TG_ETASK, TG_ECANCELED, ...; see tg_future_errmsg); or
 * TG_ETIMEDOUT with the future still pending. */
int tg_future_result(tg_future *f, double timeout, tg_value **out /* OUT */);
/* Why the future failed ("task 'x#3' failed: ..."); "" while not failed.
 * Owned by f. */
const char *tg_future_errmsg(const tg_future *f);

typedef void (*tg_future_cb)(tg_future *f, void *ctx);
/* Call cb(f, ctx) once when f is done (see Callbacks above). */
int tg_future_on_done(tg_future *f, tg_future_cb cb, void *ctx);

/* ---- waiting for several futures (concurrent.futures.wait) ----------- */

typedef enum tg_wait_mode {
  TG_FIRST_COMPLETED = 1, /* return when any future is done */
  TG_FIRST_EXCEPTION = 2, /* when any fails (done, not OK and not
                             cancelled); if none fails, when all are done */
  TG_ALL_COMPLETED = 3,   /* when all are done */
} tg_wait_mode;

/* Wait for fs[0..n) as `mode` says, at most timeout seconds (< 0:
 * forever; 0: just look). The futures form a set: a future given twice
 * counts once, under the index of its first occurrence. On return the
 * distinct futures are split by their state at that moment: done_idx
 * gets the indices (into fs, ascending) of the done ones, *ndone their
 * number; notdone_idx and *nnotdone the others. Each index array must
 * hold n entries, or be NULL when not wanted; counts may be NULL.
 * Returns TG_OK also when the timeout passed (as Python returns the two
 * sets: *nnotdone tells); TG_EINVAL for a bad mode, fs NULL with n > 0
 * or a NULL future; TG_ENOMEM (then nothing is written but the counts,
 * 0). Allocates O(n) bytes while it runs, nothing that outlives it.
 * Thread-safe; callbacks it registers are removed before it returns. */
int tg_futures_wait(tg_future *const *fs, size_t n, tg_wait_mode mode,
                    double timeout, size_t *done_idx /* OUT, n or NULL */,
                    size_t *ndone /* OUT */,
                    size_t *notdone_idx /* OUT, n or NULL */,
                    size_t *nnotdone /* OUT */);

/* Iterate over futures in the order they finish; each distinct future is
 * yielded exactly once, also when fs names it twice. Futures already
 * done come first. The iterator borrows the futures: keep them until it
 * is freed. */
typedef struct tg_as_completed tg_as_completed;
int tg_as_completed_new(tg_future *const *fs, size_t n,
                        tg_as_completed **out /* OUT */);
/* The same with a limit on the whole iteration, as CPython's
 * as_completed(fs, timeout): `timeout` seconds from this call (< 0:
 * none; 0: only what is done already). Once it has passed, next yields
 * the futures that finished by then and then TG_ETIMEDOUT. */
int tg_as_completed_new_timed(tg_future *const *fs, size_t n, double timeout,
                              tg_as_completed **out /* OUT */);
/* Next finished future (borrowed) in *out: TG_OK; TG_ENOTFOUND when all
 * were yielded; TG_ETIMEDOUT after `timeout` seconds (< 0: forever), or
 * sooner when the iteration's limit passes (tg_as_completed_new_timed). */
int tg_as_completed_next(tg_as_completed *it, double timeout,
                         tg_future **out /* OUT */);
void tg_as_completed_free(tg_as_completed *it);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_EXECUTOR_H */
