/* include/tgraph/graph.h: building lazy task graphs and computing them.
 *
 * Life-cycle:
 *   1. tg_graph_new()          an empty graph over a registry
 *   2. tg_graph_add() /        add delayed calls; an argument is a constant
 *      tg_call() /             value, another node's result, or one element
 *      tg_graph_map()          of another node's list or map result
 *   3. tg_compute()            evaluate some outputs, any number of times
 *   4. tg_graph_free()         release the graph
 *
 * Nothing runs while building. tg_compute() runs only what the requested
 * outputs need (culling), on a backend chosen by name ("sync", "threads",
 * "processes", "tcp"; the CLI's --scheduler takes the same names).
 *
 * Identical pure calls are computed once: nodes calling the same pure
 * function (same name, version and origin) with the same options on
 * identical arguments (equal constants, the same input results; constants
 * of 256 bytes or more, or lists and maps past a few small items, only
 * when they are the same value object) become one task whose result
 * every such node gets, whatever their keys. The task keeps the key of
 * the first of them in the plan's order; events and statistics count it
 * once (tasks_total, tasks_run). Impure calls are never merged, nor pure
 * calls of the results of two impure calls.
 *
 * Nodes only reference nodes that already exist, so a graph is acyclic by
 * construction. Node ids are dense (0, 1, 2, ... in order of creation)
 * and valid until tg_graph_free().
 *
 * Keys: every node has a key, unique in its graph: the one given in
 * tg_node_opts.key, or a generated "FN#ID" (e.g. "add#17"), stable for the
 * same sequence of calls. Errors name tasks by key.
 *
 * Ownership: constant argument values (TG_ARG_VALUE) are TAKEN by the add
 * calls, even when they fail, so constructors can be nested in the call:
 *   tg_call(g, "add", 2, tg_arg_node(x), tg_arg_value(tg_int(1)));
 * Strings (keys, function names) are copied.
 *
 * Errors: calls return TG_OK or a negative code; tg_graph_errmsg() then
 * says what and where. A failed add leaves the graph unchanged.
 *
 * Thread safety: none for building; use a graph from one thread at a
 *   time. tg_compute() runs tasks on worker threads internally and may be
 *   called again after it returns.
 * Fork: do not use a graph in a child of fork().
 */
#ifndef TGRAPH_GRAPH_H
#define TGRAPH_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "tgraph/error.h"
#include "tgraph/registry.h"
#include "tgraph/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_graph tg_graph;       /* opaque */
typedef struct tg_executor tg_executor; /* see executor.h */
typedef struct tg_future tg_future;     /* see executor.h */
/* see cache.h; declared in both headers, once (C99 forbids repeating a
 * typedef) */
#ifndef TG_CACHE_TYPEDEF
#define TG_CACHE_TYPEDEF
typedef struct tg_cache tg_cache;
#endif
typedef uint32_t tg_node;
#define TG_NODE_NONE UINT32_MAX

typedef enum tg_arg_kind {
  TG_ARG_VALUE = 0,  /* a constant value (taken) */
  TG_ARG_NODE = 1,   /* the result of `node` */
  TG_ARG_ITEM = 2,   /* element `index` of node's list result (negative
                        counts from the end) */
  TG_ARG_KEY = 3,    /* the value under `key` in node's map result */
  TG_ARG_FUTURE = 4, /* the result of a future (executor submissions only) */
  TG_ARG_NODES = 5,  /* one list of several nodes' results, in order:
                        made by tg_arg_nodes(); tg_graph_add only */
} tg_arg_kind;

typedef struct tg_arg {
  tg_arg_kind kind;
  tg_node node;
  int64_t index;
  const char *key;   /* copied by the add call */
  tg_value *value;   /* taken by the add call */
  tg_future *future; /* borrowed; the submission takes its own reference */
} tg_arg;

static inline tg_arg tg_arg_value(tg_value *v) {
  tg_arg a = {TG_ARG_VALUE, TG_NODE_NONE, 0, NULL, v, NULL};
  return a;
}
static inline tg_arg tg_arg_node(tg_node n) {
  tg_arg a = {TG_ARG_NODE, n, 0, NULL, NULL, NULL};
  return a;
}
static inline tg_arg tg_arg_item(tg_node n, int64_t index) {
  tg_arg a = {TG_ARG_ITEM, n, index, NULL, NULL, NULL};
  return a;
}
static inline tg_arg tg_arg_key(tg_node n, const char *key) {
  tg_arg a = {TG_ARG_KEY, n, 0, key, NULL, NULL};
  return a;
}
static inline tg_arg tg_arg_future(tg_future *f) {
  tg_arg a = {TG_ARG_FUTURE, TG_NODE_NONE, 0, NULL, NULL, f};
  return a;
}

/* One argument that is the list of the results of nodes[0..n-1] (each
 * may repeat; n may be 0: an empty list), as graph.json's nested refs
 * are: tg_graph_add adds a node of the builtin "tg.build" assembling it
 * (the registry needs tg_registry_add_builtins: else TG_ENOFUNC), with a
 * generated key ("tg.build#ID"). A failed add adds neither. The ids are copied
 * into `value` (a list of ints, taken by the add like a constant; NULL
 * when memory ran out, which the add reports as TG_EINVAL). Only
 * tg_graph_add, tg_graph_add_fn and tg_call accept it. */
tg_arg tg_arg_nodes(const tg_node *nodes, size_t n);

#define TG_NODE_OPTS_V1 1
#define TG_NODE_OPTS_V2 2 /* adds priority */
typedef struct tg_node_opts {
  uint32_t version;  /* TG_NODE_OPTS_V1 or TG_NODE_OPTS_V2 */
  const char *key;   /* NULL: generated "FN#ID"; else unique, non-empty
                        UTF-8, and not of the form NAME#DIGITS, which is
                        reserved for generated keys (TG_EEXIST) */
  int retries;       /* extra attempts after a failure (pure functions
                        only); -1: the compute's default. A lost tcp
                        worker is not a failure of the task: a pure task
                        is sent again with all its attempts, an impure
                        one is not run again (registry.h). A processes
                        worker calls one task at a time, so its death is
                        that task's failed attempt (the others it held go
                        again uncounted) */
  int cache;         /* -1: cache if the function is pure; 0: never;
                        1: always (trust an impure function) */
  double timeout;    /* seconds for one attempt, 0 = none (enforced by
                        backends that can stop a task: processes, tcp;
                        the threads backend flags the task cancelled);
                        passing it fails the attempt with TG_ETIMEDOUT */
  /* ---- version 2 ---- */
  int priority;      /* among ready tasks, higher starts first; default
                        0 (see "Priorities" below) */
} tg_node_opts;

/* Priorities. Among the tasks ready to start (their inputs done), a
 * higher tg_node_opts.priority starts first; equal priorities start in
 * the scheduler's own order (memory-aware: a branch is finished before
 * the next one starts, and a task that frees an input runs first). A task's priority is its node's, plus its
 * submission's for executor submissions (tg_submit_opts; clamped to int),
 * and it is the task's alone: it does not flow to the inputs a task
 * waits for (as in dask and Taskflow), so a low-priority input of an
 * urgent task still waits behind more urgent ready tasks; give the input
 * a priority of its own when that matters. A tg_graph_map node's chunks
 * take its priority; graph.json's "priority" sets it per task.
 *
 * By backend, with one worker the start order is exactly this; with
 * several, each worker takes the most urgent ready task when it looks
 * for one:
 *   sync       one heap of ready tasks;
 *   threads    tasks of computes with priorities wait in one heap shared
 *              by the workers (a lock per task), beside the per-worker
 *              deques of computes without (priority 0);
 *   processes  batches to a worker are formed most urgent first, from the
 *              tasks ready at that moment; a task ready later waits for
 *              the batches already sent (a few milliseconds of work);
 *   tcp        likewise, tasks are sent most urgent first and a worker
 *              starts them in the order they arrive.
 * Priority takes precedence over locality: the processes backend does not
 * keep such tasks for the worker that holds their large inputs. */

/* Create an empty graph over `reg` (borrowed: must outlive the graph). */
int tg_graph_new(tg_registry *reg, tg_graph **out /* OUT */);
void tg_graph_free(tg_graph *g); /* g may be NULL */

/* Add a call of function `fn` (by name, or by handle with _fn). opts may
 * be NULL. On success *out (may be NULL) is the new node. Errors:
 * TG_ENOFUNC (unknown name; the message suggests the closest one),
 * TG_EINVAL (wrong argument count for a function that declares one, an
 * argument naming a node that does not exist, a TG_ARG_FUTURE, a NULL
 * value), TG_EEXIST (duplicate key), TG_ENOMEM. */
int tg_graph_add(tg_graph *g, const char *fn, const tg_arg *args,
                 size_t nargs, const tg_node_opts *opts,
                 tg_node *out /* OUT, may be NULL */);
int tg_graph_add_fn(tg_graph *g, const tg_func *fn, const tg_arg *args,
                    size_t nargs, const tg_node_opts *opts,
                    tg_node *out /* OUT, may be NULL */);

/* Short form: `nargs` tg_arg values follow. Returns the node, or
 * TG_NODE_NONE on error (see tg_graph_errmsg). Any later node that uses
 * TG_NODE_NONE as an argument fails too, so a chain of calls can be
 * checked once at the end. */
tg_node tg_call(tg_graph *g, const char *fn, size_t nargs, ...);

/* Map `fn` over n inputs (each a tg_arg: constants are taken, nodes
 * referenced), giving one node whose result is the list of fn(input_i),
 * in order. `extra` arguments (taken/referenced likewise) follow each
 * input in every call. Inputs are grouped into chunks of `chunksize`
 * calls per task (at most 16777215: larger sizes are cut to that); 0
 * picks a size that gives about 8 tasks per CPU, at most 4096 calls
 * each. */
int tg_graph_map(tg_graph *g, const char *fn, const tg_arg *inputs, size_t n,
                 const tg_arg *extra, size_t nextra, size_t chunksize,
                 const tg_node_opts *opts, tg_node *out /* OUT */);

/* Map `fn` over the list result of node `over`, whose length is known only
 * when it has run: one node whose result is the list of fn(item_i,
 * extra...), in order (an empty list for an empty one). A compute that
 * needs it first computes `over`, then adds the calls as chunk tasks of
 * `chunksize` items (0: picked as by tg_graph_map) over the items, then
 * runs the rest: the calls are tasks like any (run in parallel by the
 * backend, cached per chunk, reported in events and statistics, the
 * events of the two stages each carrying their own `tasks`). A chunk's
 * cache key covers its own items and the extras only, so a changed item
 * recomputes its chunk alone. The chunks exist during the compute only:
 * the graph keeps one node. A result that is not a list fails the
 * compute with TG_ETYPE naming the map's key and the type. `extra` are
 * taken/referenced as by tg_graph_add. Executor submissions cannot hold
 * such a node (the task fails with TG_EINVAL). Errors as tg_graph_map's,
 * and TG_EINVAL for an `over` that does not exist. */
int tg_graph_map_node(tg_graph *g, const char *fn, tg_node over, const tg_arg *extra,
                      size_t nextra, size_t chunksize, const tg_node_opts *opts,
                      tg_node *out /* OUT */);

size_t tg_graph_size(const tg_graph *g);  /* number of nodes */
/* The node with this key, or TG_NODE_NONE. */
tg_node tg_graph_find(const tg_graph *g, const char *key);
/* Write node n's key into buf (NUL-terminated, truncated to size) and
 * return its full length, as snprintf does; -1 if n does not exist. */
int tg_node_key(const tg_graph *g, tg_node n, char *buf, size_t size);
const tg_func *tg_node_func(const tg_graph *g, tg_node n);
/* Last error detail of g: owned by g, valid until the next call on g. */
const char *tg_graph_errmsg(const tg_graph *g);

/* ---- compute ------------------------------------------------------------ */

typedef struct tg_compute_stats {
  size_t tasks_total;   /* tasks the outputs needed (after culling) */
  size_t tasks_run;     /* function calls made (retries included) */
  size_t tasks_cached;  /* tasks served from the cache */
  size_t tasks_failed;  /* tasks that failed after their retries (a task
                           retried and then successful is not counted) */
  size_t tasks_skipped; /* tasks never called: the compute stopped, or
                           (keep_going) an input failed */
  size_t peak_live;     /* most intermediate results alive at once
                           (out of process: those kept on workers too) */
  double wall_seconds;
  tg_node failed_node;  /* first failing node, TG_NODE_NONE if none */
  /* With a cache (see Memoization below): */
  size_t cache_hits;    /* lookups that found a result (== tasks_cached) */
  size_t cache_misses;  /* lookups that found none (or a corrupt entry) */
  size_t cache_stores;  /* results stored (committed before the return) */
  uint64_t cache_bytes_read;    /* stored bytes of the hits */
  uint64_t cache_bytes_written; /* stored bytes of the stores */
  /* ---- filled only when the compute's opts are TG_COMPUTE_OPTS_V4 or
   * later (a caller built before may pass a shorter struct) ---- */
  size_t tasks_cancelled; /* tasks whose call was under way when the
                             compute stopped (another task failed, the
                             deadline passed, tg_cancel_set) and that
                             gave up: stopped, not failed */
  size_t attempts_failed; /* failed calls, retried ones included */
} tg_compute_stats;
/* Every count leaves out the nodes of internal functions
 * (TG_FUNC_INTERNAL, such as the tg.build nodes the graph.json reader
 * adds): they are parts of a task, not tasks. tasks_total ==
 * tasks_cached + tasks_skipped + (tasks that finished, failed or were
 * cancelled). */

/* ---- task events ------------------------------------------------------------
 *
 * With an event callback (tg_compute_opts.on_event, or
 * tg_executor_opts.on_event for every run of an executor) the scheduler
 * reports what happens to each task of a run, on every backend. Each task
 * the run needs gets exactly one closing event: FINISHED, FAILED or
 * CANCELLED (preceded by one STARTED, unless it failed before its call
 * could be made), CACHED, or SKIPPED. Retries happen between STARTED and
 * the closing event. Tasks upstream of a cached result are not part of
 * the run and get no event, nor do nodes of internal functions
 * (TG_FUNC_INTERNAL, such as tg.build): tg_event.tasks does not count
 * them either.
 *
 * Thread safety: the callback is called from worker threads (several at
 *   once) and, for cached tasks, from the thread starting the run: it must
 *   be thread-safe and quick (it delays the task's dependents), and must
 *   not call back into the compute.
 */
typedef enum tg_event_kind {
  TG_EVENT_STARTED = 0,  /* the task's call began */
  TG_EVENT_FINISHED = 1, /* it returned a result */
  TG_EVENT_FAILED = 2,   /* it failed (after its retries) */
  TG_EVENT_CACHED = 3,   /* served from the cache: never called */
  TG_EVENT_SKIPPED = 4,  /* never called: the compute stopped (a failure, a
                            timeout, a shutdown), an input failed
                            (keep_going) or nothing needs it any more */
  /* since 0.3: */
  TG_EVENT_CANCELLED = 5,/* its call was under way when the compute
                            stopped (another task failed, the deadline
                            passed, tg_cancel_set) and gave up
                            (TG_ECANCELED, or its worker was stopped):
                            status TG_ECANCELED, message says how */
} tg_event_kind;

typedef struct tg_event {
  tg_event_kind kind;
  tg_node node;     /* the task's node in the run's graph (tg_compute: the
                       caller's; executor submissions run a copy, whose
                       node ids differ: use the key) */
  const char *key;  /* the node's key; valid during the callback */
  int worker;       /* 0-based worker that runs the calls (STARTED,
                       FINISHED, FAILED); -1 for CACHED and SKIPPED. On
                       tcp, the index of the worker's address in the
                       executor's list; STARTED is reported when the task
                       is sent to it. processes: a retry may run on another
                       worker; STARTED names the first, the closing event
                       the one that made the last call */
  int status;       /* FAILED: the error code; TG_OK otherwise */
  double start;     /* CLOCK_MONOTONIC seconds of this process when the
                       calls began (see "Times" below); == end for
                       CACHED, SKIPPED and a failure before any call */
  double end;       /* when they ended, or when the event happened
                       (STARTED: == start) */
  size_t tasks;     /* tasks in the run: the same in each of its events */
  /* ---- since 0.2: added at the end, so callbacks built before still read
   * the fields above at the same offsets ---- */
  const char *func; /* the task's function name (valid during the
                       callback); NULL for nodes that call none */
  int thread;       /* the worker's thread that made the calls, 0-based,
                       one per concurrent slot of the worker: 0 on sync,
                       threads (a worker is one thread) and processes (a
                       worker is one single-threaded process); on tcp the
                       thread of the worker's pool (tgraph worker
                       --threads). -1 when there was no call (CACHED,
                       SKIPPED, a failure before the call) and for
                       STARTED on tcp (the worker's pool picks the thread
                       when the call begins there) */
  unsigned attempts; /* calls made: 1 + retries; 0 when never called.
                        STARTED: 1 (the first call). processes: a
                        failure after a retry could not be sent counts
                        the calls made before */
  const char *message; /* FAILED, CANCELLED: the failure's message (as in
                          tg_graph_errmsg, without the key), never NULL;
                          NULL for the other kinds. Valid during the
                          callback */
} tg_event;

/* Times. start and end of FINISHED and FAILED are on the calling
 * process's CLOCK_MONOTONIC (tg__now, as clock_gettime gives it), by
 * backend:
 *   sync, threads  measured around the calls, all attempts included;
 *   processes      the last attempt, measured by the worker process (it
 *                  reads the same clock); earlier attempts, perhaps on
 *                  other workers, are counted in attempts only;
 *   tcp            all attempts (the worker retries in place), measured
 *                  by the worker on its clock and placed on ours: the
 *                  worker says when it handled the message carrying the
 *                  task and how long the task waited there; the offset
 *                  between the clocks is bounded above by (handled -
 *                  sent) for each task, and the least such bound of the
 *                  connection is used. Each call therefore lies between
 *                  the task's sending and its result's arrival, is early
 *                  by at most the quickest trip seen on the connection
 *                  from sending a task to the worker handling it
 *                  (microseconds on an idle network), keeps its
 *                  measured duration, and calls of one worker thread
 *                  never overlap. A failure the client decides (a
 *                  timeout it enforces, a lost worker) spans from the
 *                  sending to the event, with thread -1 and attempts 0
 *                  (what ran there is not known).
 * Slices of one (worker, thread) never overlap on any backend. */

/* ev and the strings in it are valid during the call only. */
typedef void (*tg_event_fn)(void *ctx, const tg_event *ev);

/* ---- cancelling a compute ----------------------------------------------------
 *
 * A tg_cancel is a flag that stops the computes watching it
 * (tg_compute_opts.cancel). Raising it makes each of them stop as a
 * failure or a timeout does: no task starts any more, queued ones are
 * skipped, running ones see tg_task_cancelled() (the sh builtin then
 * signals its command, see builtins.h; processes and tcp workers are
 * told), the cache commits the results already handed to it, and the
 * compute returns TG_ECANCELED ("the compute was cancelled") with
 * tg_compute_stats filled in. The thread waiting for a compute looks at
 * the flag every 20 ms, tasks asking tg_task_cancelled() see it at once
 * (on sync, the only way a compute notices it, between and during
 * tasks), and a flag raised before the compute starts stops it before any
 * task runs. The compute then returns once its running tasks have ended:
 * promptly for tasks that heed cancellation.
 *
 * Life-cycle: tg_cancel_new(), give it to any number of computes (one
 * after another or at once), tg_cancel_set() to stop them,
 * tg_cancel_reset() to use it again, tg_cancel_free() when no compute
 * watches it any more.
 *
 * Thread safety: tg_cancel_set() and tg_cancel_is_set() may be called from
 *   any thread and from a signal handler (they are async-signal-safe:
 *   one lock-free atomic operation); the others from one thread, not
 *   while a compute watches the flag.
 */
typedef struct tg_cancel tg_cancel;
/* A new, lowered flag in *out: TG_OK or TG_ENOMEM (*out NULL). */
int tg_cancel_new(tg_cancel **out /* OUT */);
void tg_cancel_free(tg_cancel *c); /* c may be NULL */
/* Raise c (again: no effect). c must not be NULL. */
void tg_cancel_set(tg_cancel *c);
bool tg_cancel_is_set(const tg_cancel *c); /* false for NULL */
void tg_cancel_reset(tg_cancel *c);       /* lower it again */

/* ---- the progress line ------------------------------------------------------
 *
 * With tg_compute_opts.progress set (TG_COMPUTE_OPTS_V3), a compute whose
 * stderr is a terminal (and TERM is not "dumb") draws one line there while
 * it runs, as Dask's ProgressBar does:
 *
 *   [closed/total] running R, cached C, failed F, X tasks/s, ETA Ns
 *
 * total is the run's tasks after cache lookups and culling, fixed for the
 * whole run; closed counts the tasks that finished, failed, were
 * cancelled, were served from the cache or were skipped. Nodes of internal functions
 * (TG_FUNC_INTERNAL, such as the tg.build nodes the graph.json reader
 * adds) are not counted. The line is redrawn in place five times a second
 * from the task events, cut to the terminal's width (shorter forms first:
 * without rate and ETA, then "[closed/total] R running", then
 * "[closed/total]") so that it never wraps, and erased before tg_compute()
 * returns. On anything but a terminal nothing is written. The events
 * still reach on_event (or the executor's callback). Output the tasks
 * write to stderr meanwhile shares the line.
 */

#define TG_COMPUTE_OPTS_V1 1
#define TG_COMPUTE_OPTS_V2 2 /* adds cancel */
#define TG_COMPUTE_OPTS_V3 3 /* adds progress, force, nforce */
#define TG_COMPUTE_OPTS_V4 4 /* adds keep_going, failed; the stats'
                                tasks_cancelled and attempts_failed */
typedef struct tg_compute_opts {
  uint32_t version;       /* TG_COMPUTE_OPTS_V1 to _V4 */
  const char *scheduler;  /* "sync", "threads" (NULL), "processes", "tcp" */
  unsigned workers;       /* 0: one per CPU */
  tg_executor *executor;  /* borrowed; when set, run there (scheduler and
                             workers are then ignored) */
  double timeout;         /* seconds for the whole compute; 0 = none */
  int retries;            /* default extra attempts for pure tasks */
  tg_cache *cache;        /* borrowed; NULL = no memoization */
  tg_compute_stats *stats;/* OUT, may be NULL: filled on return */
  tg_event_fn on_event;   /* NULL: no events; else called per task (see
                             "task events"; replaces the executor's) */
  void *event_ctx;        /* handed to on_event */
  /* ---- version 2 ---- */
  tg_cancel *cancel;      /* borrowed, may be NULL: raising it stops the
                             compute with TG_ECANCELED (see above) */
  /* ---- version 3 ---- */
  bool progress;          /* draw the progress line on stderr when it is a
                             terminal (see "the progress line" above) */
  const tg_node *force;   /* borrowed, may be NULL: nodes to recompute
                             (see "Memoization", forcing); nforce of them */
  size_t nforce;
  /* ---- version 4 ---- */
  bool keep_going;        /* a failed task stops only what depends on it
                             (see "Keep going" below) */
  tg_node *failed;        /* OUT, may be NULL: n entries; per output, the
                             node of the failed task it lacks, or
                             TG_NODE_NONE (see "Keep going") */
} tg_compute_opts;

/* Keep going (tg_compute_opts.keep_going, as make -k): a task that fails
 * (after its retries) does not stop the compute. Its dependents are
 * skipped (TG_EVENT_SKIPPED, counted in tasks_skipped); everything else
 * runs, and with a cache the results of the tasks that succeeded are
 * stored. tg_compute() then returns the first failure's code (TG_ETASK,
 * with tg_graph_errmsg() naming that task), but results[i] holds the
 * result of every output that was computed and is NULL only for the
 * outputs that depend on a failed task; failed[i] (when given) names
 * that task: the one whose failure reached output i first (a map chunk is
 * named by its map node), TG_NODE_NONE for outputs that have a result.
 * A stop of the whole compute (its deadline, tg_cancel_set) still stops
 * everything: the outputs finished before it keep their results, the
 * others are NULL with failed[i] TG_NODE_NONE. Without keep_going, any
 * error leaves every results[i] NULL (see tg_compute) and failed[i] is
 * TG_NODE_NONE: the first failure is tg_compute_stats.failed_node. */

/* Evaluate outputs[0..n-1] and store a new reference to each result in
 * results[i] (the caller unrefs them). opts may be NULL (threads, one
 * worker per CPU). On error every results[i] is NULL, no new task starts,
 * running ones finish (or see tg_task_cancelled()), nothing leaks, and
 * tg_graph_errmsg() names the failing task's key and its message
 * ("task 'parse#3' failed: TG_EINVAL: bad header"); with keep_going the
 * outputs that were computed keep their results (see "Keep going").
 * Errors: TG_ETASK (a task failed after its retries), TG_ETIMEDOUT,
 * TG_ECANCELED, TG_EINVAL, TG_ENOMEM, and the backend's own (TG_EWORKER),
 * TG_ESTATE when called from a task running on opts->executor itself
 * (sync, threads: it would wait for itself; see registry.h).
 *
 * A task that exceeds its own timeout (tg_node_opts.timeout) fails with
 * TG_ETIMEDOUT and a message naming the limit ("timed out after 0.2 s"),
 * on every backend, also when it noticed tg_task_cancelled() and gave up
 * with TG_ECANCELED. Tasks that give up because the compute stopped are
 * cancelled (TG_EVENT_CANCELLED, tasks_cancelled), not failed.
 *
 * Deadline (opts->timeout): the compute returns TG_ETIMEDOUT about when
 * it passes, also when a task ignores tg_task_cancelled(), blocks or
 * loops. Running tasks first get a short grace period to notice the
 * cancellation; then, by backend:
 *   processes  a worker still running (or stopped in) a task of a compute
 *              that ended early (deadline, failed task, cancellation) is
 *              killed with SIGKILL and replaced; its other tasks run
 *              again elsewhere;
 *   tcp        the compute returns and tells the workers to cancel its
 *              tasks (an sh command is then killed); a worker's thread
 *              stuck in a task stays busy until the function returns;
 *   threads    a thread cannot be stopped: the compute returns without
 *              it. That thread keeps running the function until it
 *              returns; its result is discarded (no event is reported,
 *              nothing is stored in the cache). Until then the task
 *              still uses g, the registry and the executor: g cannot
 *              change (adding nodes fails with TG_ESTATE) and
 *              tg_graph_free(g) returns at once and leaves the freeing
 *              to the task's end; tg_executor_free() of the executor in
 *              opts->executor waits for the function to return (a
 *              temporary executor is freed then on a thread of its
 *              own); the registry must outlive it, as it outlives any
 *              executor (so pass an executor when the registry is to
 *              be freed: its tg_executor_free() says when that is
 *              safe). The worker thread is not available to later
 *              computes meanwhile.
 *   sync       tasks run in the calling thread: the deadline is checked
 *              between tasks.
 */
int tg_compute(tg_graph *g, const tg_node *outputs, size_t n,
               const tg_compute_opts *opts, tg_value **results /* OUT */);

/* ---- memoization ----------------------------------------------------------
 *
 * With a cache (tg_compute_opts.cache, or the executor's), results are
 * memoized under Merkle keys: XXH3-128 over the function's identity
 * (name, version, and for a plugin's function the plugin file's content
 * digest) and per argument the constant's canonical hash, or the
 * producing node's key (with the item index or map key of a selector),
 * or for the path argument of a TG_FUNC_FILE_SOURCE function the file's
 * content digest. Keys are known before anything runs.
 *
 * Which nodes: a node is cacheable when tg_node_opts.cache is 1, or -1
 * and its function is pure (TG_FUNC_PURE); 0 opts out. A node depending
 * on an impure node (not opted in), or a file source whose path is not a
 * constant string or whose file cannot be read, is not cacheable.
 *
 * Lookups, top-down: before anything runs, each output is looked up; a
 * hit needs nothing upstream, so none of it runs and no intermediate
 * value is loaded. A miss looks its inputs up in turn. A node is looked
 * up only when its function has entries in the cache (the cache counts
 * them per function name; tg_cache_clear forgets them), or when it has
 * cache = 1, so functions never stored cost no lookup.
 *
 * Stores: a result is stored (on the cache's writer thread, with the
 * function's name and the call's time) when the call took at least the
 * cache's threshold, tg_cache_opts.min_compute_seconds (default 1 ms;
 * negative: every result); nodes with cache = 1 always. A result cheaper
 * than that costs more to store and look up than to recompute. To keep
 * trivial tasks free of clock reads, calls of a function that were timed
 * TG__MEMO_STREAK (16) times in a row under an eighth of the threshold
 * are timed one in 64 only: a rare slow call of such a function is then
 * usually not stored (give such a node cache = 1 to store it always); a
 * sampled slow call is not stored either (most likely it was preempted),
 * but it has the function's calls timed again.
 * tg_compute() waits for the commit of what it stored before returning.
 *
 * Forcing (tg_compute_opts.force, version 3): the forced nodes and every
 * node depending on one of them, directly or not, are neither looked up
 * nor served from the cache: they run, and those that are cacheable have
 * their results stored whatever their time, replacing the entries under
 * their keys. A forced node the outputs do not need changes nothing. A
 * node id out of range is TG_EINVAL.
 *
 * What a run leaves in the cache besides entries, for tg_compute_explain
 * and tg_cache_get_stats: one record per compute, committed by the
 * writer after the compute's stores (never waited for; the records of
 * computes waiting for the writer add up into one): the compute's
 * counts, and why results that ran were not stored. A call under the
 * threshold is noted on its function (the last such call's time), which
 * the dry run gives for that function's tasks never stored; the note is
 * dropped when a compute stores the function's results and leaves none
 * out. A failed store is noted on its node, for at most
 * TG_EXPLAIN_NOTES_MAX nodes per compute, and dropped when a result is
 * stored for the node. Once a function is known to be fast (its calls
 * timed one in 64, above), only its rare timed calls leave a note.
 *
 * A corrupt entry is a miss (and is removed): the task runs again. Cache
 * reads and writes happen in the calling process only (forked workers of
 * the processes backend never touch it). A failing cache never fails a
 * compute: it costs hits or stores.
 */

/* What a dry run says of one task. */
typedef enum tg_explain_state {
  TG_EXPLAIN_CACHED = 0,       /* served from the cache: nothing upstream
                                  of it runs */
  TG_EXPLAIN_RUN = 1,          /* runs: its result is not in the cache */
  TG_EXPLAIN_INPUT_CHANGED = 2,/* runs: a result was stored for this node,
                                  but an input has changed since */
  TG_EXPLAIN_FUNC_CHANGED = 3, /* runs: a result was stored for this node
                                  with another version of its function */
  TG_EXPLAIN_UNCACHEABLE = 4,  /* runs, always: impure, opted out, an
                                  impure input, an unusable file path */
  TG_EXPLAIN_FORCED = 5,       /* runs: forced (tg_compute_opts.force), or
                                  depends on a forced node */
} tg_explain_state;

/* What the cache noted of a task's last call when it ran but its result
 * was not stored (tg_explain_task.note). */
typedef enum tg_explain_note {
  TG_NOTE_NONE = 0,            /* nothing noted (with its current key) */
  TG_NOTE_UNDER_THRESHOLD = 1, /* its function's calls were not stored: the
                                  last took `seconds`, under the store
                                  threshold `threshold` */
  TG_NOTE_FAST_FUNCTION = 2,   /* a call of its function took `seconds`,
                                  but its calls had been fast before: taken
                                  for a preempted call, not stored */
  TG_NOTE_STORE_FAILED = 3,    /* storing its result failed (code): disk
                                  full, quota, file size limit, ... */
  TG_NOTE_UNSTORABLE = 4,      /* its result cannot be stored (code):
                                  encoding it failed, e.g. too big */
} tg_explain_note;

#define TG_EXPLAIN_NOTES_MAX 65536 /* nodes with a failed store noted per
                                      compute, at most */

typedef struct tg_explain_task {
  tg_node node;
  const char *key;        /* the node's key ("add#3", or the user's) */
  const char *function;   /* its function's name */
  tg_explain_state state;
  const char *why;        /* the state in words ("not in the cache",
                             "impure function", "add's calls ran in
                             about 0.3 ms, under the 1 ms store
                             threshold", ...); valid
                             during the call */
  char cache_key[33];     /* its Merkle key in hex (also for tasks that
                             are not cacheable: what it would be) */
  /* Since TG_COMPUTE_OPTS_V3 (read them whatever the opts' version): */
  tg_explain_note note;   /* for a task that would run and whose last
                             call (after its last stored result, with
                             these inputs or others) was noted: why its
                             result was not stored */
  double seconds;         /* note 1, 2: the noted call's time, else -1 */
  double threshold;       /* note 1: the threshold then, else -1 */
  int code;               /* note 3, 4: the failure's TG_* code, else 0 */
} tg_explain_task;

/* Called per task; a non-zero return stops the walk. Pointers in t are
 * valid during the call. */
typedef int (*tg_explain_cb)(void *ctx, const tg_explain_task *t);

/* A dry run: which tasks computing outputs[0..n-1] with opts would run,
 * and why. Nothing runs and no value is loaded (an entry is taken as a
 * hit when present, without reading it). cb is called once per task the
 * outputs need, in the order a sync compute would start them without
 * priorities (inputs first); tasks below a hit are not needed and not
 * reported. Without a cache every task is TG_EXPLAIN_RUN ("no cache"). With opts->force
 * (version 3) the forced nodes and their dependents are
 * TG_EXPLAIN_FORCED. A task that would run and whose last call was noted
 * by the cache (see "Memoization") says why in note, seconds, threshold
 * and code, and in why ("last ran in 0.3 ms, under the 1 ms store
 * threshold"). Returns TG_OK (also
 * when cb stopped the walk), TG_EINVAL or TG_ENOMEM (see
 * tg_graph_errmsg). */
int tg_compute_explain(tg_graph *g, const tg_node *outputs, size_t n,
                       const tg_compute_opts *opts, tg_explain_cb cb,
                       void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_GRAPH_H */
