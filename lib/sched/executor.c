/* lib/sched/executor.c: the executor: a backend with its workers, the
 * runs active on it, and the submission calls that create runs and hand
 * out futures. */
#include <stdio.h>
#include <time.h>
#include <string.h>

#include "backend.h"
#include "sched_internal.h"
#include "util/thread.h"

static int ex_fail(tg_executor *ex, int code, const char *fmt, ...)
    TG__PRINTF(3, 4);
static int ex_fail(tg_executor *ex, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&ex->mu);
  vsnprintf(ex->errmsg, sizeof ex->errmsg, fmt, ap);
  pthread_mutex_unlock(&ex->mu);
  va_end(ap);
  return code;
}

/* tg_executor_new with the reason for a failure in err (may be NULL). */
int tg__executor_create(tg_registry *reg, const tg_executor_opts *opts,
                        const struct tg__keyset *keys, tg_executor **out, tg_error *err) {
  if (!out) return tg__error_set(err, TG_EINVAL, "tg_executor_new: out is NULL");
  *out = NULL;
  if (!reg) return tg__error_set(err, TG_EINVAL, "tg_executor_new: no registry");
  if (opts && opts->version != TG_EXECUTOR_OPTS_V1 && opts->version != TG_EXECUTOR_OPTS_V2)
    return tg__error_set(err, TG_EINVAL, "tg_executor_opts.version is %u, expected %d or %d",
                         opts->version, TG_EXECUTOR_OPTS_V1, TG_EXECUTOR_OPTS_V2);
  const char *name = opts ? opts->backend : NULL;
  const tg__backend_ops *ops = tg__backend_find(name);
  if (!ops)
    return tg__error_set(err, TG_EINVAL, "unknown backend '%s' (known: %s)", name,
                         tg__backend_names());
  tg_executor *ex = tg__calloc(1, sizeof *ex);
  if (!ex) return tg__error_set(err, TG_ENOMEM, "out of memory");
  ex->reg = reg;
  ex->ops = ops;
  ex->workers = opts && opts->workers ? opts->workers : tg__ncpus();
  if (ops->caps & TG__CAP_ONE_WORKER) ex->workers = 1;
  ex->log = opts ? opts->log : NULL;
  ex->log_ctx = opts ? opts->log_ctx : NULL;
  ex->on_event = opts ? opts->on_event : NULL;
  ex->event_ctx = opts ? opts->event_ctx : NULL;
  ex->cache = opts ? opts->cache : NULL;
  pthread_mutex_init(&ex->mu, NULL);
  pthread_condattr_t ca; /* waits with a timeout use the monotonic clock */
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ex->idle, &ca);
  pthread_condattr_destroy(&ca);
  tg__backend_cfg cfg = {TG__BACKEND_OPS_V1, ex->workers, ex, opts, keys};
  int rc = ops->create(&cfg, &ex->backend, err);
  if (rc) {
    pthread_mutex_destroy(&ex->mu);
    pthread_cond_destroy(&ex->idle);
    tg__free(ex);
    return rc;
  }
  *out = ex;
  return TG_OK;
}

int tg_executor_new(tg_registry *reg, const tg_executor_opts *opts,
                    tg_executor **out, tg_error *err) {
  return tg__executor_create(reg, opts, NULL, out, err);
}

void tg_executor_free(tg_executor *ex) {
  if (!ex) return;
  pthread_mutex_lock(&ex->mu);
  for (tg__run *r = ex->runs; r; r = r->next)
    tg__run_halt(r, TG_ECANCELED, "the executor was shut down");
  while (ex->nactive) pthread_cond_wait(&ex->idle, &ex->mu);
  pthread_mutex_unlock(&ex->mu);
  ex->ops->destroy(ex->backend);
  pthread_cond_destroy(&ex->idle);
  pthread_mutex_destroy(&ex->mu);
  tg__free(ex);
}

int tg_executor_wait_all(tg_executor *ex, double timeout) {
  if (!ex) return TG_EINVAL;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (timeout > 1e9) timeout = 1e9;
  if (timeout > 0) {
    double t = (double)ts.tv_nsec * 1e-9 + timeout;
    ts.tv_sec += (time_t)t;
    ts.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  }
  int rc = TG_OK;
  pthread_mutex_lock(&ex->mu);
  while (ex->nactive && rc == TG_OK) {
    if (timeout < 0) pthread_cond_wait(&ex->idle, &ex->mu);
    else if (timeout == 0 ||
             (pthread_cond_timedwait(&ex->idle, &ex->mu, &ts) != 0 && ex->nactive))
      rc = TG_ETIMEDOUT;
  }
  pthread_mutex_unlock(&ex->mu);
  return rc;
}

void tg__executor_add_run(tg_executor *ex, tg__run *r) {
  pthread_mutex_lock(&ex->mu);
  r->seq = ex->seq++;
  r->prev = NULL;
  r->next = ex->runs;
  if (ex->runs) ex->runs->prev = r;
  ex->runs = r;
  ex->nactive++;
  pthread_mutex_unlock(&ex->mu);
}

void tg__executor_remove_run(tg_executor *ex, tg__run *r) {
  pthread_mutex_lock(&ex->mu);
  if (r->prev) r->prev->next = r->next;
  else ex->runs = r->next;
  if (r->next) r->next->prev = r->prev;
  if (--ex->nactive == 0) pthread_cond_broadcast(&ex->idle);
  pthread_mutex_unlock(&ex->mu);
}

const char *tg_executor_backend(const tg_executor *ex) {
  return ex ? ex->ops->name : NULL;
}
unsigned tg_executor_workers(const tg_executor *ex) { return ex ? ex->workers : 0; }
const char *tg_executor_errmsg(const tg_executor *ex) {
  /* Copied under the lock that writers hold, into this thread's buffer,
   * so a failure on another thread cannot tear the text being read. */
  static _Thread_local char copy[sizeof ex->errmsg];
  if (!ex) return "";
  tg_executor *mex = (tg_executor *)ex; /* the lock is not part of the value */
  pthread_mutex_lock(&mex->mu);
  memcpy(copy, ex->errmsg, sizeof copy);
  pthread_mutex_unlock(&mex->mu);
  return copy;
}

/* Start run r and hand its futures to the caller. */
static void launch(tg__run *r, size_t n, tg_future **out) {
  for (size_t s = 0; s < n; s++) out[s] = tg_future_ref(r->futures[s]);
  tg__run_start(r);
  tg__run_unref(r);
}

/* Copy what nodes[] need out of g: the copy's nodes are in priority
 * order; outs[] gets the outputs' ids in the copy. */
static int copy_needed(tg_executor *ex, const tg_graph *g, const tg_node *nodes,
                       size_t n, tg_graph **copy, tg_node *outs) {
  tg__runplan p;
  char msg[256];
  int rc = tg__runplan_compile(g, nodes, n, NULL, NULL, &p, msg, sizeof msg);
  if (rc) return ex_fail(ex, rc, "%s", msg);
  uint32_t *order = tg__malloc((p.ntasks ? p.ntasks : 1) * sizeof *order);
  if (!order) {
    tg__runplan_free(&p);
    return ex_fail(ex, TG_ENOMEM, "out of memory copying the graph");
  }
  for (uint32_t i = 0; i < p.ntasks; i++) order[i] = p.tasks[i].node;
  for (size_t s = 0; s < n; s++) outs[s] = p.task_of[nodes[s]];
  rc = tg__graph_extract(g, order, p.ntasks, p.task_of, copy);
  tg__free(order);
  tg__runplan_free(&p);
  return rc ? ex_fail(ex, rc, "out of memory copying the graph") : TG_OK;
}

int tg_executor_submit_opts(tg_executor *ex, tg_graph *g, const tg_node *nodes,
                            size_t n, const tg_submit_opts *opts, tg_future **out) {
  if (!ex) return TG_EINVAL;
  if (!g || !nodes || !out || n == 0)
    return ex_fail(ex, TG_EINVAL, "tg_executor_submit: missing graph, nodes or out");
  for (size_t s = 0; s < n; s++) out[s] = NULL;
  if (opts && opts->version != TG_SUBMIT_OPTS_V1)
    return ex_fail(ex, TG_EINVAL, "tg_submit_opts.version is %u, expected %d",
                   opts->version, TG_SUBMIT_OPTS_V1);
  int priority = opts ? opts->priority : 0;
  tg_node stack[16];
  tg_node *outs = n <= 16 ? stack : tg__malloc(n * sizeof *outs);
  if (!outs) return ex_fail(ex, TG_ENOMEM, "out of memory");
  tg_graph *copy = NULL;
  tg__run *r = NULL;
  char msg[256];
  int rc = copy_needed(ex, g, nodes, n, &copy, outs);
  if (rc == TG_OK) {
    rc = tg__run_new(ex, copy, copy, outs, n, true, 0, priority, ex->cache, NULL, 0, &r,
                     msg, sizeof msg);
    if (rc) ex_fail(ex, rc, "%s", msg);
    else launch(r, n, out);
  }
  if (outs != stack) tg__free(outs);
  return rc;
}

int tg_executor_submit_many(tg_executor *ex, tg_graph *g, const tg_node *nodes,
                            size_t n, tg_future **out) {
  return tg_executor_submit_opts(ex, g, nodes, n, NULL, out);
}

int tg_executor_submit(tg_executor *ex, tg_graph *g, tg_node node,
                       tg_future **out) {
  return tg_executor_submit_many(ex, g, &node, 1, out);
}

int tg_executor_call(tg_executor *ex, const char *fn, const tg_arg *args,
                     size_t nargs, tg_future **out) {
  int rc = TG_EINVAL;
  const char *why = "tg_executor_call: missing executor, function or out";
  tg_graph *g = NULL;
  const tg_func *f = NULL;
  if (out) *out = NULL;
  if (!ex || !fn || !out || (nargs && !args)) goto fail;
  why = "tg_executor_call takes constants and futures, not node arguments";
  for (size_t i = 0; i < nargs; i++)
    if (tg__arg_is_node(args[i].kind)) goto fail;
  f = tg_registry_find(ex->reg, fn);
  if (!f) {
    const char *s = tg_registry_suggest(ex->reg, fn);
    if (args) tg__graph_drop_values(args, nargs);
    return ex_fail(ex, TG_ENOFUNC, "no function named '%s'%s%s%s", fn,
                   s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
  }
  if ((rc = tg_graph_new(ex->reg, &g))) {
    why = "out of memory";
    goto fail;
  }
  tg_node node;
  /* the futures among args are the graph's external inputs */
  if ((rc = tg__graph_add(g, f, args, nargs, NULL, TG__NK_CALL, 0, &tg__future_inputs,
                          &node))) {
    ex_fail(ex, rc, "%s", g->errmsg);
    tg_graph_free(g);
    return rc;
  }
  tg__run *r;
  char msg[256];
  if ((rc = tg__run_new(ex, g, g, &node, 1, true, 0, 0, ex->cache, NULL, 0, &r, msg,
                        sizeof msg)))
    return ex_fail(ex, rc, "%s", msg);
  launch(r, 1, out);
  return TG_OK;
fail:
  if (args) tg__graph_drop_values(args, nargs);
  return ex ? ex_fail(ex, rc, "%s", why) : rc;
}
