/* include/tgraph/registry.h: named task functions and the context a task
 * runs with.
 *
 * Life-cycle:
 *   1. tg_registry_new()        create an empty registry
 *   2. tg_registry_add() /      register functions (name, version, purity,
 *      tg_register()            arity); later issues add builtins/plugins
 *   3. build graphs and executors over it (they borrow it)
 *   4. tg_registry_free()       after every graph and executor using it
 *
 * A task function receives its context and its argument values (borrowed:
 * valid for the duration of the call) and returns TG_OK with *out set to a
 * new reference, or a negative code, ideally after tg_task_fail() to say
 * what went wrong. A function must not keep the argument pointers after
 * returning unless it takes references.
 *
 * Pure functions (TG_FUNC_PURE) are deterministic and side-effect free:
 * their results may be cached and they may be run again after a failure
 * (retries) or on another worker. An impure task is called once per
 * compute: when the worker process or machine it was sent to is lost
 * (it may have run, or may still run there), it fails with TG_EWORKER
 * ("worker ADDR was lost while running impure task 'KEY' (WHY); it was
 * not run again because it is not pure"; on processes, which knows the
 * task a worker process died in: "worker N (pid P) was killed by signal 9
 * (Killed) while running impure task 'KEY'; it was not run again because
 * it is not pure") rather than run again.
 *
 * A task may compute a graph of its own (tg_compute) on an executor it
 * creates, on any backend (in a processes worker too, which then forks
 * workers of its own). A tg_compute on the executor running the task
 * fails at once with TG_ESTATE on sync and threads: it would wait for the
 * workers it occupies.
 *
 * Thread safety: registering is not thread-safe; once graphs are built the
 *   registry is read-only and any number of threads may look functions up.
 *   Task functions are called concurrently from several worker threads.
 * Fork: a registry is usable in a child of fork() (the processes backend
 *   relies on this: workers call functions by name).
 */
#ifndef TGRAPH_REGISTRY_H
#define TGRAPH_REGISTRY_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "tgraph/error.h"
#include "tgraph/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_registry tg_registry; /* opaque */
typedef struct tg_func tg_func;         /* opaque; lives as long as the registry */
typedef struct tg_task_ctx tg_task_ctx; /* opaque; valid during one call */

/* args: nargs borrowed values. On success set *out to a new reference. */
typedef int (*tg_task_fn)(tg_task_ctx *ctx, tg_value *const *args,
                          size_t nargs, tg_value **out /* OUT */);

enum {
  TG_FUNC_PURE = 1, /* deterministic, no side effects: cacheable, re-runnable */
  TG_FUNC_FILE_SOURCE = 2, /* reads a file: argument 0 is its path (str);
                              cache keys use the file's content digest
                              (tg_cache_file_hash) instead of the path
                              string, so editing the file invalidates the
                              results. A path computed by another node
                              makes the call uncacheable. */
  TG_FUNC_INTERNAL = 4, /* a helper node of a task rather than a task (the
                           graph.json reader's tg.build): left out of the
                           progress line's counts (tg_compute_opts.progress);
                           tg_compute_stats still counts it */
};

/* ---- per-worker state --------------------------------------------------
 *
 * What a function needs set up once per worker rather than once per call
 * (a vocabulary, a model, a database connection), as Python's
 * Pool(initializer=) or a Dask worker plugin gives. A program or plugin
 * declares a named state with tg_registry_add_state() and names it in
 * the definitions of the functions that use it (tg_func_def.state); any
 * number of functions may share one state.
 *
 * Life-cycle, on every worker separately:
 *   1. the first task there whose function names the state runs
 *      init(user, &state, err) before the function is called (the init's
 *      time counts in that task's time and timeout)
 *   2. every task there whose function names it gets the same pointer
 *      from tg_task_state()
 *   3. teardown(user, state) runs when the worker ends normally, on the
 *      worker's own thread, in reverse order of the inits
 *
 * A worker is: for "sync" the executor (its tasks run in the thread that
 * submits them; teardown in tg_executor_free); for "threads" each pool
 * thread (teardown in tg_executor_free, on that thread); for "processes"
 * each worker process (teardown when the pool shuts down, i.e. in
 * tg_executor_free, which waits about one second for the workers to
 * exit); for "tcp" each task thread of a `tgraph worker` or
 * tg_worker_serve() (teardown when the worker stops). A task the
 * driver of "processes" or "tcp" runs itself (rare: out of memory) uses
 * the driver's own state, torn down in tg_executor_free.
 * A worker that dies, is killed (a timeout, a crash, SIGKILL after the
 * shutdown grace) or loses its parent runs no teardown: state that must
 * always be cleaned up needs cleanup outside the process too.
 *
 * An init failure (a negative return) is remembered by that worker: init
 * is not called there again, and every task there whose function needs
 * the state fails with the init's code and the message
 *   state 'NAME' failed to initialize on this worker: <init's message>
 * while tasks of other functions run as usual. A retried attempt of such
 * a task (pure functions) fails the same way on the same worker; on
 * "processes" and "tcp" it may land on a worker whose init succeeds.
 * A new executor (or a restarted worker) tries again.
 *
 * Thread safety: init and teardown run on the worker's thread; inits of
 * one state run concurrently on different workers, so `user` must be
 * safe to share (read-only, or guarded by the program). A state pointer
 * is used only by the tasks of its worker, one at a time on "threads",
 * "processes" and "sync"; on "tcp" one per task thread likewise.
 * Fork: state made before a fork is NOT inherited as initialized: each
 * worker process (and each process that creates an executor) runs its
 * own init. Only the registry's declaration crosses the fork.
 */
#define TG_STATE_DEF_V1 1
typedef struct tg_state_def {
  uint32_t version;  /* TG_STATE_DEF_V1 */
  const char *name;  /* unique among the registry's states, same rules as
                        function names; copied */
  /* Make the state: set *state (NULL is allowed) and return TG_OK, or
   * return a negative code, ideally after writing why into err->msg
   * (err is never NULL and starts cleared). */
  int (*init)(void *user, void **state /* OUT */, tg_error *err);
  /* Release what init made; may be NULL. Not called after a failed init. */
  void (*teardown)(void *user, void *state);
  void *user;        /* handed to init and teardown; borrowed: must outlive
                        every executor and worker using the registry */
} tg_state_def;

/* Declare a state. TG_EEXIST when the name is taken, TG_EINVAL for a
 * missing init or a bad name. On error the registry is unchanged.
 * Declare it before the functions naming it. */
int tg_registry_add_state(tg_registry *reg, const tg_state_def *def);

#define TG_FUNC_DEF_V1 1
#define TG_FUNC_DEF_V2 2 /* adds ignore_args, code_id and state */
typedef struct tg_func_def {
  uint32_t version;       /* TG_FUNC_DEF_V1 or TG_FUNC_DEF_V2 */
  const char *name;       /* unique in the registry, e.g. "wordcount.count";
                             copied */
  const char *fn_version; /* part of the function's identity and of cache
                             keys: change it when results change; copied;
                             NULL = "0" */
  tg_task_fn fn;
  unsigned flags;         /* TG_FUNC_* */
  int nargs;              /* exact argument count, or -1 for any */
  void *user;             /* handed to the function via tg_task_user() */
  const char *doc;        /* one line of help; copied; may be NULL */
  /* ---- read only when version >= TG_FUNC_DEF_V2 ---- */
  uint64_t ignore_args;   /* bit i set: argument i does not affect the
                             result (a verbosity flag, a thread count) and
                             is left out of cache keys, so calls differing
                             only there share one entry. With nargs >= 0
                             every bit must name an argument (i < nargs);
                             with nargs = -1 bit i names argument i of any
                             call that has one, and arguments from 64 on
                             always count. TG_IGNORE_ARG(i) builds a bit. */
  const char *code_id;    /* identity of the function's code, e.g. a digest
                             of its source from `tgraph code-id` (see
                             TG_CODE_ID below); joins cache keys, so editing
                             the code invalidates its results. For a plugin
                             it replaces the plugin file's digest: a rebuild
                             with other flags keeps the results. NULL = none:
                             a compiled-in function is known by name and
                             fn_version alone (manual versioning), a plugin
                             function by those and its file's digest.
                             1..255 printable ASCII bytes, no spaces;
                             copied */
  const char *state;      /* name of a state declared with
                             tg_registry_add_state() that this function's
                             tasks get from tg_task_state(); NULL: none */
} tg_func_def;

/* The ignore_args bit of argument i (0 <= i < 64). */
#define TG_IGNORE_ARG(i) ((uint64_t)1 << (i))

/* TG_CODE_ID: a build passes the code id of a source file as this macro,
 * a string literal: `cc $(tgraph code-id --cflag f.c) -c f.c`, or
 * `tgraph code-id --header OUT f.c` writing a header that defines it (for
 * `cc -include OUT`, or a meson custom_target). TG_CODE_ID_OR_NULL is it
 * where defined, else NULL, so one source builds with or without it. */
#ifdef TG_CODE_ID
#define TG_CODE_ID_OR_NULL TG_CODE_ID
#else
#define TG_CODE_ID_OR_NULL NULL
#endif

/* Create an empty registry. On error *out is NULL. */
int tg_registry_new(tg_registry **out /* OUT */);
/* Free the registry and its functions; reg may be NULL. */
void tg_registry_free(tg_registry *reg);

/* Register a function. TG_EEXIST when the name is taken, TG_EINVAL for a
 * missing name or fn, a name that is empty, longer than 255 bytes or not
 * printable ASCII/UTF-8, an unknown def->version, an ignore_args bit at or
 * beyond nargs, or a code_id that is empty, longer than 255 bytes or not
 * printable ASCII without spaces; TG_ENOTFOUND for a state not declared
 * yet. On success *out (may be NULL) is the handle. On error the registry
 * is unchanged and tg_registry_errmsg() says what is wrong. */
int tg_registry_add(tg_registry *reg, const tg_func_def *def,
                    const tg_func **out /* OUT, may be NULL */);

/* Why the last failing tg_registry_add() failed, naming the function
 * ("function 'f': ignore_args names argument 3 but it takes 2"); "" when
 * none failed. Valid until the next tg_registry_add(). */
const char *tg_registry_errmsg(const tg_registry *reg);

/* Short form: version "0", any number of arguments. */
int tg_register(tg_registry *reg, const char *name, tg_task_fn fn,
                unsigned flags);

/* Look a function up by name; NULL when absent. O(1) on average. */
const tg_func *tg_registry_find(const tg_registry *reg, const char *name);
/* Number of functions, and the i-th in registration order. */
size_t tg_registry_count(const tg_registry *reg);
const tg_func *tg_registry_at(const tg_registry *reg, size_t i);
/* The registered name closest to `name` (edit distance), for "did you
 * mean" messages; NULL when the registry is empty. */
const char *tg_registry_suggest(const tg_registry *reg, const char *name);

const char *tg_func_name(const tg_func *f);
const char *tg_func_version(const tg_func *f);
unsigned tg_func_flags(const tg_func *f);
int tg_func_nargs(const tg_func *f);
const char *tg_func_doc(const tg_func *f);   /* "" when none */
uint64_t tg_func_ignore_args(const tg_func *f); /* 0 when none */
const char *tg_func_code_id(const tg_func *f);  /* NULL when none */
/* Name of the state f's tasks get (tg_func_def.state); NULL when none. */
const char *tg_func_state(const tg_func *f);

/* ---- inside a task ----------------------------------------------------
 *
 * Every call below takes the context its task was called with; each also
 * accepts ctx NULL (code shared by tasks and plain callers) and then
 * answers: tg_task_fail returns its code (TG_ETASK for a code >= 0) and
 * records nothing, tg_task_cancelled false, tg_task_key "", tg_task_user,
 * tg_task_state NULL, tg_task_worker and tg_task_attempt 0;
 * tg_task_progress and tg_task_log do nothing (no line on stderr).
 * The answers are the same on every backend: in a forked worker process
 * or a `tgraph worker` a task sees its own key, attempt, worker index
 * (there: the worker process's slot, the worker thread's index), its
 * compute's cancellation, and its log lines reach the executor's log
 * callback in the calling process. */

/* Record why the task failed and return `code`, so a task can end with
 *   return tg_task_fail(ctx, TG_EINVAL, "expected an int, got %s", ...); */
int tg_task_fail(tg_task_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* True once the compute was cancelled, failed elsewhere or timed out: a
 * long task should check it and return TG_ECANCELED. */
bool tg_task_cancelled(const tg_task_ctx *ctx);
/* Report progress of this task, 0.0 .. 1.0 (shown by progress displays). */
void tg_task_progress(tg_task_ctx *ctx, double fraction);
/* Log a line attributed to this task (to the executor's log callback,
 * stderr by default). */
void tg_task_log(tg_task_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The function's `user` pointer from its definition. */
void *tg_task_user(const tg_task_ctx *ctx);
/* The key of the node being run (borrowed, valid during the call). */
const char *tg_task_key(const tg_task_ctx *ctx);
/* Index of the worker running the task (0-based). */
int tg_task_worker(const tg_task_ctx *ctx);
/* Which attempt this is: 0 first, 1 first retry, ... */
int tg_task_attempt(const tg_task_ctx *ctx);
/* This worker's instance of the function's state (tg_func_def.state),
 * initialized before the task was called; NULL when the function names
 * no state (or its init made NULL). Owned by the worker: valid until the
 * worker ends; never free it. */
void *tg_task_state(const tg_task_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_REGISTRY_H */
