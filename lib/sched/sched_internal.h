/* lib/sched/sched_internal.h: runs, tasks and worker contexts: the state
 * machine every backend drives.
 *
 * A run is one evaluation of some outputs of a graph. Compiling it
 * (runplan.c) culls the graph to what the outputs need and numbers the tasks
 * in a memory-aware order (order.h: finish a branch before starting the
 * next, run a task at once when it releases an input), so a task's index
 * is its priority (lower runs first) and every task's inputs have lower
 * indices.
 *
 * Life of a task: pending counts its unfinished inputs; when it drops to
 * zero the task is ready and handed to the backend, which runs it with
 * tg__task_exec() (in-process backends) or tg__task_begin() /
 * tg__task_end() (backends that run the function elsewhere). Finishing
 * stores the result, releases each input whose last consumer this was,
 * and decrements the dependents' pending counters; the ones reaching zero
 * are collected in the worker context (w->ready*) for the backend to
 * queue. Every task passes through this exactly once, also when the run
 * has stopped (it is then skipped: no call) or when cancellation dropped
 * it, so that a run always drains and every reference is released.
 *
 * Reference counts on a task's result: `consumers` starts at (number of
 * input edges to other tasks) + (one per output slot naming the task) + 1
 * for the task itself. Each consumer edge, output slot and the task's own
 * completion decrements it once; whoever brings it to zero releases the
 * result. A cancelled output slot that brings a not-yet-started task down
 * to its own reference alone marks it dropped (TG__T_DROPPED).
 *
 * Retirement: r->unretired counts tasks not yet finished plus temporary
 * holds. Workers batch their retirements per run in their tg__wctx and
 * publish them when they switch runs or go idle; the thread that brings it
 * to zero finishes the run (outputs collected, memory released, waiters
 * woken). Nobody touches a run's plan after that.
 *
 * Thread safety: atomics as marked; the rest of a run is written before it
 * starts or by the single thread finishing a task.
 */
#ifndef TG_SCHED_INTERNAL_H
#define TG_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "graph/graph_internal.h"
#include "tgraph/executor.h"

typedef struct tg__run tg__run;
typedef struct tg__backend tg__backend;
typedef struct tg__backend_ops tg__backend_ops;
typedef struct tg__memo tg__memo; /* memo/memo.h */

enum { TG__T_NEW = 0, TG__T_STARTED = 1, TG__T_DROPPED = 2 }; /* state */
/* flags. A CACHED task was served from the cache while compiling: its
 * result is set and it has no input edges; tg__run_start finishes it on
 * the starting thread, so backends never see one. An INTERNAL task calls
 * a TG_FUNC_INTERNAL function (tg.build): part of another task, so it is
 * counted nowhere and reports no events. */
enum { TG__T_OUTPUT = 1, TG__T_FUTURES = 2, TG__T_CACHED = 4, TG__T_INTERNAL = 8 };

typedef struct tg__task {
  tg__run *run;
  struct tg__task *next;       /* intrusive link while queued (ready lists,
                                  injection, overflow): one list at a time */
  tg_value *result;            /* written by the finisher before it
                                  decrements dependents */
  _Atomic uint32_t pending;    /* inputs (tasks and futures) not finished */
  _Atomic uint32_t consumers;  /* see the header comment */
  uint32_t node;               /* node id in the run's graph */
  _Atomic uint8_t state;       /* TG__T_NEW/STARTED/DROPPED */
  uint8_t flags;               /* TG__T_OUTPUT, TG__T_FUTURES */
} tg__task;

typedef struct tg__runplan {
  tg__task *tasks;     /* priority order */
  uint32_t ntasks;
  uint32_t *task_of;   /* graph node -> task index, UINT32_MAX if culled */
  uint32_t *dep_off;   /* ntasks + 1 offsets into deps */
  uint32_t *deps;      /* dependents of each task, ascending, one entry per
                          input edge */
  uint32_t *ready;     /* tasks ready at the start, ascending */
  uint32_t nready;
  uint32_t *out_task;  /* per output slot: its task */
  uint32_t *out_order; /* output slots sorted by task */
  size_t nout;
  uint32_t ncached;    /* tasks served from the cache */
  uint32_t ninternal;  /* INTERNAL tasks */
  bool has_futures;    /* some task has TG_ARG_FUTURE arguments */
  bool has_selects;    /* some task not cached has TG_ARG_ITEM or
                          TG_ARG_KEY arguments */
  int32_t *prio;       /* per task: its priority (its node's plus the
                          submission's), or NULL when every one is 0:
                          the ready queues' first key (tg__task_before) */
} tg__runplan;

/* Compile the plan for outputs[0..nout-1] of g; every task's run is set
 * to r. With a memo, nodes are looked up top-down as they are reached
 * (tg__memo_lookup): a hit becomes a CACHED task and its inputs are not
 * visited. On error returns TG_EINVAL/TG_ENOMEM with a message in err. */
int tg__runplan_compile(const tg_graph *g, const tg_node *outputs, size_t nout,
                        tg__run *r, tg__memo *memo, tg__runplan *p, char *err,
                        size_t errsize);
void tg__runplan_free(tg__runplan *p);
/* Set p->prio from the priorities of g's nodes plus `extra` (a
 * submission's), each sum clamped to int; NULL when all are 0. Replaces
 * an earlier call's. TG_OK or TG_ENOMEM (p unchanged). */
int tg__runplan_prioritize(tg__runplan *p, const tg_graph *g, int extra);
/* Order p->ready by tg__task_before (most urgent first); left in plan
 * order when out of memory. */
void tg__runplan_sort_ready(tg__runplan *p);

/* ---- runs ---------------------------------------------------------------- */

struct tg__run {
  _Atomic uint32_t refs;      /* execution (until finished), the creator,
                                 each future */
  _Atomic uint32_t unretired; /* see the header comment */
  _Atomic int stop;           /* set once: no task starts after it */
  _Atomic int cancel;         /* running tasks should give up (failure,
                                 timeout); not set by a shutdown */
  _Atomic int started;        /* a task function was called */
  _Atomic int abandoned;      /* 1: the compute returned at its deadline
                                 without waiting for tasks that ignore
                                 cancellation (compute.c); 2: the run
                                 finished first */
  _Atomic uint32_t callouts;  /* threads calling out of a run with a
                                 deadline (events, cache stores): see
                                 tg__run_callout_begin */
  _Atomic uint32_t done;      /* 0 -> 1 when finished (a futex word) */
  _Atomic int64_t live;       /* intermediate results alive */
  _Atomic int64_t peak;
  _Atomic size_t ran, failed, skipped; /* counts leave INTERNAL tasks out */
  _Atomic size_t cancelled, cached, attempts_failed;
  bool keep_going;            /* a failure stops only its dependents */
  uint32_t *cause;            /* keep_going, per task: the node of the
                                 failed task it lacks (TG_NODE_NONE); or
                                 NULL */
  tg_node *slot_cause;        /* per output slot, cause[] of its task when
                                 it had no result; or NULL */
  const tg_graph *g;          /* borrowed, or == owned */
  tg_graph *owned;            /* copies made for submissions; NULL */
  tg__runplan plan;
  tg__memo *memo;             /* NULL: no cache */
  tg_event_fn on_event;       /* NULL: no task events (tested once per task
                                 on the hot path) */
  void *event_ctx;
  _Atomic uint8_t *running;   /* per task: its call is under way (set for
                                 runs with a deadline, to name them when
                                 it passes); else NULL */
  double *ev_start;           /* per task: when tg__task_begin sent it, for
                                 events on remote backends; else NULL */
  tg_executor *ex;
  tg__backend *backend;
  uint64_t seq;               /* submission number in the executor */
  int retries;                /* default extra attempts of pure tasks */
  double t0, wall;            /* start time; seconds from start to finish */
  double timeout, deadline;   /* the compute's limit; deadline 0 = none */
  const tg_cancel *token;     /* borrowed, NULL: none (cancel.c) */
  size_t nout;                /* output slots */
  tg_value **out;             /* per output slot: a reference or NULL */
  _Atomic uint8_t *hold_gone; /* per output slot: its hold was released */
  tg_future **futures;        /* per output slot, or NULL (compute) */
  pthread_mutex_t err_mu;     /* guards the first failure below */
  int err_code;               /* TG_OK while nothing failed */
  uint32_t err_node;          /* graph node, TG_NODE_NONE when not a task */
  char err_msg[512];
  tg__run *prev, *next;       /* the executor's active runs (ex->mu) */
};

/* ---- priorities ------------------------------------------------------------
 *
 * Among ready tasks, the higher priority starts first; equal priorities
 * keep the order of submissions (run seq), then the plan's order (index).
 * Every backend's ready queue orders by tg__task_before; runs without
 * priorities (plan.prio NULL) take the backends' fast paths. */
static inline int tg__task_priority(const tg__task *t) {
  const tg__runplan *p = &t->run->plan;
  return p->prio ? p->prio[t - p->tasks] : 0;
}
static inline bool tg__task_before(const tg__task *a, const tg__task *b) {
  int pa = tg__task_priority(a), pb = tg__task_priority(b);
  if (pa != pb) return pa > pb;
  if (a->run != b->run) return a->run->seq < b->run->seq;
  return a < b; /* tasks are stored in plan order */
}
/* Whether t's run has priorities (its tasks take the ordered queues). */
static inline bool tg__task_prioritized(const tg__task *t) {
  return t->run->plan.prio != NULL;
}

/* Create a run of outputs of g (borrowed, or `owned`, which the run then
 * frees). with_futures: one future per output, in r->futures. cache
 * (borrowed, may be NULL) memoizes its tasks (memo/memo.h); lookups happen
 * here. The run holds one reference for its execution and returns one to
 * the caller. On error: message in err (TG_EINVAL, TG_ENOMEM); `owned` is
 * freed. priority is the submission's, added to each task's
 * (tg__runplan_prioritize). */
int tg__run_new(tg_executor *ex, const tg_graph *g, tg_graph *owned,
                const tg_node *outputs, size_t nout, bool with_futures,
                int retries, int priority, tg_cache *cache, const tg_node *force,
                size_t nforce, tg__run **out, char *err, size_t errsize);
/* Report r's task events to fn(ctx, ...) (fn NULL: none). Call before
 * tg__run_start. */
void tg__run_set_events(tg__run *r, tg_event_fn fn, void *ctx);
/* Hand the initial tasks to the backend and wire future arguments. */
void tg__run_start(tg__run *r);
void tg__run_ref(tg__run *r);
void tg__run_unref(tg__run *r);
/* Wait until finished; TG_OK or TG_ETIMEDOUT (timeout < 0: forever). */
int tg__run_wait(tg__run *r, double timeout);
/* Record the first failure (code, node or TG_NODE_NONE, message) and stop:
 * no task starts afterwards; queued ones are skipped; running ones see
 * tg_task_cancelled(). */
void tg__run_stop(tg__run *r, int code, uint32_t node, const char *fmt, ...)
    TG__PRINTF(4, 5);
/* A task's failure: tg__run_stop, or with r->keep_going only the record
 * of the first failure (the run goes on; dependents are skipped). */
void tg__run_fail(tg__run *r, int code, uint32_t node, const char *fmt, ...)
    TG__PRINTF(4, 5);
/* Let r keep going past failed tasks (before tg__run_start); false when
 * out of memory (r is unchanged). */
bool tg__run_keep_going(tg__run *r);
/* The same for a shutdown: queued tasks are skipped with `code`, running
 * ones finish undisturbed (and their outputs still resolve). */
void tg__run_halt(tg__run *r, int code, const char *msg);
/* Publish n retirements; the last one finishes the run. */
void tg__run_retire(tg__run *r, uint32_t n);
/* Release output slot s (cancelled future): drops work only it needed. */
void tg__run_cancel_slot(tg__run *r, size_t slot);
/* For tg_future_cancel: release slot's hold unless its task has started;
 * false when the task started first (it runs; the slot is released but
 * its future still resolves with the result). */
bool tg__run_cancel_slot_unstarted(tg__run *r, size_t slot);
/* Called by task.c when an output task finishes (result may be NULL). */
void tg__run_output_done(tg__run *r, tg__task *t);
/* Account intermediate results becoming alive (+) or released (-). */
void tg__run_live(tg__run *r, int64_t delta);

static inline bool tg__run_stopped(const tg__run *r) {
  return atomic_load_explicit(&r->stop, memory_order_relaxed) != 0;
}
static inline bool tg__run_cancelled(const tg__run *r) {
  return atomic_load_explicit(&r->cancel, memory_order_relaxed) != 0;
}
/* Stop r with TG_ETIMEDOUT if its deadline has passed, or TG_ECANCELED if
 * its flag is raised; true if r is cancelled (timed out, failed or
 * cancelled). */
bool tg__run_expired(tg__run *r);
/* Around every call a run makes into its caller's objects (event
 * callbacks, cache stores): false when the compute has returned without
 * waiting for the run (abandoned), and the call must be skipped. Only a
 * run with a deadline can be abandoned, so only those pay for the count.
 * The caller abandons r with tg__run_abandon. */
static inline bool tg__run_callout_begin(tg__run *r) {
  if (!(r->deadline > 0)) return true;
  atomic_fetch_add(&r->callouts, 1); /* sequentially consistent, as is */
  if (atomic_load(&r->abandoned) != 1) return true; /* the abandoner's store */
  atomic_fetch_sub(&r->callouts, 1);
  return false;
}
static inline void tg__run_callout_end(tg__run *r) {
  if (r->deadline > 0) atomic_fetch_sub(&r->callouts, 1);
}
/* Let the compute return without waiting for r to finish: r holds its
 * graph g (the caller's: r->g may be cleared by a finishing run; freed
 * by whoever lets go last), and calls out to the caller stop (waiting
 * for those under way). False when r finished first (wait for it, it is
 * about to be done). */
bool tg__run_abandon(tg__run *r, tg_graph *g);
/* Whether tg__run_expired has anything to look at: a deadline or a
 * cancellation flag. */
static inline bool tg__run_limited(const tg__run *r) {
  return r->deadline > 0 || r->token != NULL;
}
/* cancel.c: stop r with TG_ECANCELED if its flag is raised; true if so. */
bool tg__run_cancel_requested(tg__run *r);
/* tg__run_wait that also watches r's flag: TG_ECANCELED once it stopped r
 * for it (the run may still be draining), TG_OK, or TG_ETIMEDOUT. */
int tg__run_wait_watched(tg__run *r, double timeout);
/* Key of node n (see tg__graph_key). */
const char *tg__run_key(const tg__run *r, uint32_t node, char *buf,
                        size_t size);
/* A tg_task_log() line: to the executor's log callback or stderr. */
void tg__run_log(const tg__run *r, const char *key, const char *line);

/* ---- executing tasks -------------------------------------------------------- */

/* Per worker thread (or per draining caller): batched counters and the
 * tasks the last finished task made ready. Owned by one thread. */
typedef struct tg__wctx {
  int worker;            /* index reported by tg_task_worker() */
  tg__run *run;          /* run of the batched counts, or NULL */
  uint32_t retired, ran, skipped;
  uint32_t memo_sample;  /* calls until the next sampled timing
                            (memo/memo.h) */
  tg__task *ready_first; /* the most urgent newly ready task, or NULL */
  tg__task *ready_rest;  /* the others, linked, least urgent first */
  tg_value **scratch;    /* argument arrays */
  size_t scratch_cap;
  int thread;            /* STARTED events of tg__task_begin: the worker's
                            thread that will call, -1 not known yet (0
                            after tg__wctx_init) */
  bool defer_started;    /* tg__task_begin reports no STARTED: the backend
                            calls tg__task_started once it has chosen the
                            worker */
  tg__wstates states;    /* per-worker state instances of the tasks run
                            here (registry.h); torn down by
                            tg__wctx_destroy unless the worker's thread
                            did it first */
} tg__wctx;

void tg__wctx_init(tg__wctx *w, int worker);
/* Publish batched counts (may finish a run). Call before idling. */
void tg__wctx_flush(tg__wctx *w);
void tg__wctx_destroy(tg__wctx *w); /* flushes first; tears down states */

/* Run ready task t here (or skip it), finish it and retire it. Newly
 * ready tasks are left in w->ready_first / ready_rest. */
void tg__task_exec(tg__wctx *w, tg__task *t);

/* For backends running functions elsewhere: claim ready task t and gather
 * its argument values (borrowed; valid until tg__task_end). Returns true
 * when the function must be called with *args and *nargs; false when the task
 * was skipped or failed here, and is already finished. */
bool tg__task_begin(tg__wctx *w, tg__task *t, tg_value *const **args,
                    size_t *nargs);
/* What a backend running functions elsewhere knows of a task's calls,
 * for the task's closing event (tg_event) and the cache's timing. */
typedef struct tg__call_report {
  double start, end; /* the last call's span, on this process's monotonic
                        clock (tg__now); start < 0: not measured (the
                        event then spans from tg__task_begin to now) */
  double seconds;    /* the call's measured duration, for the cache's
                        timing; < 0: unknown */
  int worker;        /* the worker that made the calls */
  int thread;        /* its thread (0-based slot) that made them; -1: none */
  unsigned attempts; /* calls made, retries included; 0: none */
  const char *message; /* emit's own: the failure's message */
} tg__call_report;

/* Report the STARTED event of a task begun with tg__task_begin (with
 * w->defer_started) on `worker`. Call once per task. */
void tg__task_started(tg__wctx *w, tg__task *t, int worker);

/* Finish a task begun with tg__task_begin: rc and result (taken) of the
 * call; msg (may be NULL) says why it failed. No call is reported: the
 * closing event names no thread and counts no attempt. */
void tg__task_end(tg__wctx *w, tg__task *t, int rc, tg_value *result,
                  const char *msg);
/* The same with what the backend measured of the calls (rep borrowed;
 * rep->worker replaces w->worker in the event, rep->message is ignored). */
void tg__task_end_report(tg__wctx *w, tg__task *t, int rc, tg_value *result,
                         const char *msg, const tg__call_report *rep);

/* ---- executor ------------------------------------------------------------------- */

struct tg_executor {
  tg_registry *reg;       /* borrowed */
  const tg__backend_ops *ops;
  tg__backend *backend;
  unsigned workers;
  tg_log_fn log;
  void *log_ctx;
  tg_event_fn on_event;   /* every run's task events, or NULL */
  void *event_ctx;
  tg_cache *cache;        /* borrowed */
  pthread_mutex_t mu;     /* guards runs, nactive, seq */
  pthread_cond_t idle;    /* signalled when nactive drops to 0 */
  tg__run *runs;          /* active (unfinished) runs */
  size_t nactive;
  uint64_t seq;
  char errmsg[512];
};

/* tg_executor_new, with the reason for a failure in err (may be NULL). */
/* The task the calling thread is running in-process (task.c), or NULL: a
 * tg_compute on that task's own executor would wait for itself. */
extern _Thread_local tg_task_ctx *tg__tls_task;
/* The run whose task ctx is (the scheduler's task host), or NULL when ctx
 * belongs to another host (a worker's). */
tg__run *tg__task_host_run(const tg_task_ctx *ctx);
/* Fill ctx for a call of fn for node of run r made outside the scheduler's
 * own attempt loop (a backend building an internal task in place), with
 * the run as its host. */
void tg__task_ctx_for_run(tg_task_ctx *ctx, tg__run *r, const tg_func *fn, uint32_t node,
                          int worker, int attempt);

/* ---- tg_compute (compute.c, stages.c) ------------------------------------ */

/* One run of outputs on ex, waited for (compute.c); *abandoned: it
 * returned while a task still runs (graph.h). */
int tg__compute_run(tg_executor *ex, tg_graph *g, const tg_node *outputs, size_t n,
                    const tg_compute_opts *opts, tg_value **results, bool *abandoned);
/* The same for a graph with maps over node results: runs in stages, the
 * lists first, expanding the maps between them (stages.c). */
int tg__compute_stages(tg_executor *ex, tg_graph *g, const tg_node *outputs, size_t n,
                       const tg_compute_opts *opts, tg_value **results, bool *abandoned);

struct tg__keyset;
/* tg_executor_new; keys (may be NULL): the tcp backend's keys in memory
 * (wire/proto.h's tg__keyset; opts->keys_dir then NULL). */
int tg__executor_create(tg_registry *reg, const tg_executor_opts *opts,
                        const struct tg__keyset *keys, tg_executor **out, tg_error *err);
/* Link r into ex's active runs / unlink it (when finished). */
void tg__executor_add_run(tg_executor *ex, tg__run *r);
void tg__executor_remove_run(tg_executor *ex, tg__run *r);

/* ---- futures -------------------------------------------------------------------- */

/* A new pending future for output slot `slot` of r (takes a run ref). */
tg_future *tg__future_new(tg__run *r, size_t slot);
/* Resolve f once: code TG_OK with result (a new reference is taken), or a
 * failure with msg. Later calls do nothing. Runs the callbacks. */
void tg__future_resolve(tg_future *f, int code, tg_value *result,
                        const char *msg);
/* Remove the callback (cb, ctx) registered on f if it has not been
 * dispatched: true when removed (it will never run), false when it ran
 * or is running. */
bool tg__future_off_done(tg_future *f, tg_future_cb cb, void *ctx);
/* Whether f is done; its code and result (borrowed) when it is. */
bool tg__future_outcome(const tg_future *f, int *code, tg_value **result,
                        const char **msg);
/* Futures as a graph's external inputs (TG_ARG_FUTURE arguments of
 * executor calls, graph_internal.h): ref and free of the handles. */
extern const tg__extern_ops tg__future_inputs;

#endif /* TG_SCHED_INTERNAL_H */
