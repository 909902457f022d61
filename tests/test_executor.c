/* tests/test_executor.c: executors and futures: submit and call, futures
 * as arguments, callbacks, cancellation, waiting with timeouts,
 * as-completed iteration, logging and concurrent use. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "test_funcs.h"

static tg_registry *reg;
static tg_executor *ex;

static tg_executor *new_executor(const char *backend, unsigned workers) {
  tg_executor_opts o;
  memset(&o, 0, sizeof o);
  o.version = TG_EXECUTOR_OPTS_V1;
  o.backend = backend;
  o.workers = workers;
  tg_executor *e = NULL;
  int rc = tg_executor_new(reg, &o, &e, NULL);
  cr_assert_eq(rc, TG_OK, "%s/%u: %s", backend, workers, tg_err_name(rc));
  cr_assert_not_null(e);
  return e;
}

static void setup(void) {
  reg = tgt_registry_new();
  cr_assert_not_null(reg);
  ex = new_executor("threads", 2);
}

static void teardown(void) {
  tg_executor_free(ex);
  tg_registry_free(reg);
}

/* Submit fn(args) on ex; fails the test if the submission fails. */
static tg_future *call(tg_executor *e, const char *fn, size_t nargs,
                       tg_arg *args) {
  tg_future *f = NULL;
  int rc = tg_executor_call(e, fn, args, nargs, &f);
  cr_assert_eq(rc, TG_OK, "call %s: %s: %s", fn, tg_err_name(rc),
               tg_executor_errmsg(e));
  cr_assert_not_null(f);
  return f;
}

static tg_future *call1(const char *fn, tg_value *arg) {
  tg_arg a = tg_arg_value(arg);
  return call(ex, fn, 1, &a);
}

static int64_t result_int(tg_future *f) {
  tg_value *v = NULL;
  int rc = tg_future_result(f, 10.0, &v);
  cr_assert_eq(rc, TG_OK, "%s: %s", tg_err_name(rc), tg_future_errmsg(f));
  cr_assert_eq(tg_value_type(v), TG_INT);
  int64_t r = tg_value_int(v);
  tg_value_unref(v);
  return r;
}

/* ---- executors ------------------------------------------------------------ */

Test(executor, new_and_free) {
  reg = tgt_registry_new();
  tg_executor *e = NULL;
  cr_assert_eq(tg_executor_new(reg, NULL, &e, NULL), TG_OK);
  cr_assert_str_eq(tg_executor_backend(e), "threads");
  cr_assert_geq(tg_executor_workers(e), 1);
  tg_executor_free(e);
  e = new_executor("sync", 0);
  cr_assert_str_eq(tg_executor_backend(e), "sync");
  cr_assert_eq(tg_executor_workers(e), 1);
  tg_executor_free(e);
  e = new_executor("sync", 4); /* one worker, whatever is asked */
  cr_assert_eq(tg_executor_workers(e), 1);
  tg_executor_free(e);
  e = new_executor("threads", 3);
  cr_assert_eq(tg_executor_workers(e), 3);
  tg_executor_free(e);
  tg_executor_free(NULL);

  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "nosuch", .workers = 1};
  e = (tg_executor *)&o;
  cr_assert_eq(tg_executor_new(reg, &o, &e, NULL), TG_EINVAL);
  cr_assert_null(e);
  tg_registry_free(reg);
}

Test(executor, call_and_submit, .init = setup, .fini = teardown) {
  tg_future *f = call1("inc", tg_int(41));
  cr_assert_eq(result_int(f), 42);
  cr_assert(tg_future_done(f));
  cr_assert_not(tg_future_cancelled(f));
  cr_assert_not(tg_future_running(f));
  cr_assert_str_eq(tg_future_errmsg(f), "");
  /* A result can be read any number of times. */
  cr_assert_eq(result_int(f), 42);
  tg_future_free(f);

  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node b = tg_call(g, "add", 2, tg_arg_node(a), tg_arg_node(a));
  cr_assert_eq(tg_executor_submit(ex, g, b, &f), TG_OK);
  /* The graph may be freed once submitted. */
  tg_graph_free(g);
  cr_assert_eq(result_int(f), 4);
  tg_future_free(f);
}

Test(executor, submit_many_shares_inputs, .init = setup, .fini = teardown) {
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node nodes[3] = {
      tg_call(g, "add", 2, tg_arg_node(a), tg_arg_value(tg_int(10))),
      tg_call(g, "add", 2, tg_arg_node(a), tg_arg_value(tg_int(20))),
      a,
  };
  tg_call(g, "counted", 1, tg_arg_node(a)); /* not needed */
  tg_future *fs[3] = {NULL, NULL, NULL};
  cr_assert_eq(tg_executor_submit_many(ex, g, nodes, 3, fs), TG_OK);
  tg_graph_free(g);
  cr_assert_eq(result_int(fs[0]), 12);
  cr_assert_eq(result_int(fs[1]), 22);
  cr_assert_eq(result_int(fs[2]), 2);
  cr_assert_eq(tgt_calls(TGT_INC), 1);
  cr_assert_eq(tgt_calls(TGT_COUNTED), 0);
  for (int i = 0; i < 3; i++) tg_future_free(fs[i]);
}

Test(executor, submit_errors, .init = setup, .fini = teardown) {
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_future *f = NULL;
  cr_assert_eq(tg_executor_submit(ex, g, 0, &f), TG_EINVAL);
  cr_assert_null(f);
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  /* Node arguments are invalid in calls. */
  tg_arg na = tg_arg_node(a);
  cr_assert_eq(tg_executor_call(ex, "inc", &na, 1, &f), TG_EINVAL);
  cr_assert_null(f);
  tg_arg c = tg_arg_value(tg_int(1));
  cr_assert_eq(tg_executor_call(ex, "ic", &c, 1, &f), TG_ENOFUNC);
  cr_assert_null(f);
  cr_assert_not_null(strstr(tg_executor_errmsg(ex), "did you mean 'inc'"),
                     "errmsg: %s", tg_executor_errmsg(ex));
  c = tg_arg_value(tg_int(1));
  cr_assert_eq(tg_executor_call(ex, "add", &c, 1, &f), TG_EINVAL);
  cr_assert_null(f);
  tg_graph_free(g);
  cr_assert_eq(tgt_calls(TGT_INC), 0);
}

/* ---- futures as arguments ------------------------------------------------- */

Test(executor, future_as_argument, .init = setup, .fini = teardown) {
  tg_future *g0 = call1("gate", tg_int(0));
  tg_arg args[2] = {tg_arg_future(g0), tg_arg_value(tg_int(10))};
  tg_future *sum = call(ex, "add", 2, args);
  tg_arg a2 = tg_arg_future(sum);
  tg_future *inc = call(ex, "inc", 1, &a2);
  /* The handles may go before the work is done. */
  tg_future_free(g0);
  tg_future_free(sum);
  cr_assert_not(tg_future_done(inc));
  tgt_gate_open(0);
  cr_assert_eq(result_int(inc), 11);
  tg_future_free(inc);
}

Test(executor, argument_future_failure_fails_dependent, .init = setup,
     .fini = teardown) {
  tg_future *bad = call(ex, "fail", 0, NULL);
  tg_arg a = tg_arg_future(bad);
  tg_future *dep = call(ex, "inc", 1, &a);
  tg_value *v = tg_int(3);
  int rc = tg_future_result(dep, 10.0, &v);
  cr_assert_neq(rc, TG_OK);
  cr_assert_neq(rc, TG_ETIMEDOUT);
  cr_assert_null(v);
  cr_assert_eq(tg_future_result(bad, 10.0, &v), TG_ETASK);
  cr_assert_null(v);
  cr_assert_not_null(strstr(tg_future_errmsg(bad),
                            "failed: TG_EINVAL: always fails"),
                     "errmsg: %s", tg_future_errmsg(bad));
  cr_assert_eq(strncmp(tg_future_errmsg(bad), "task '", 6), 0);
  cr_assert_eq(tgt_calls(TGT_INC), 0);
  tg_future_free(dep);
  tg_future_free(bad);
}

/* ---- callbacks ------------------------------------------------------------- */

typedef struct cb_log {
  pthread_mutex_t mu;
  int order[16];
  int n;
  pthread_t thread[16];
  int not_done;   /* callbacks that saw their future not done */
} cb_log;

typedef struct cb_arg {
  cb_log *log;
  int id;
} cb_arg;

static void record_cb(tg_future *f, void *ctx) {
  cb_arg *a = ctx;
  bool done = tg_future_done(f);
  pthread_mutex_lock(&a->log->mu);
  a->log->not_done += !done;
  a->log->thread[a->log->n] = pthread_self();
  a->log->order[a->log->n++] = a->id;
  pthread_mutex_unlock(&a->log->mu);
}

static int log_count(cb_log *log) {
  pthread_mutex_lock(&log->mu);
  int n = log->n;
  pthread_mutex_unlock(&log->mu);
  return n;
}

Test(executor, callbacks_in_order_exactly_once, .init = setup,
     .fini = teardown) {
  cb_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  cb_arg args[5] = {{&log, 0}, {&log, 1}, {&log, 2}, {&log, 3}, {&log, 4}};
  tg_future *f = call1("gate", tg_int(0));
  for (int i = 0; i < 3; i++)
    cr_assert_eq(tg_future_on_done(f, record_cb, &args[i]), TG_OK);
  cr_assert_eq(log_count(&log), 0);
  tgt_gate_open(0);
  cr_assert_eq(result_int(f), 0);
  /* They may still be running on the worker when the result is ready. */
  for (int i = 0; i < 5000 && log_count(&log) < 3; i++) tgt_sleep_ms(1);
  tgt_sleep_ms(20);
  cr_assert_eq(log_count(&log), 3);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(log.order[i], i);
    cr_assert_not(pthread_equal(log.thread[i], pthread_self()));
  }
  /* Registered after completion: at once, in this thread. */
  cr_assert_eq(tg_future_on_done(f, record_cb, &args[3]), TG_OK);
  cr_assert_eq(log_count(&log), 4);
  cr_assert_eq(log.order[3], 3);
  cr_assert(pthread_equal(log.thread[3], pthread_self()));
  cr_assert_eq(tg_future_on_done(f, record_cb, &args[4]), TG_OK);
  cr_assert_eq(log_count(&log), 5);
  cr_assert_eq(log.order[4], 4);
  tg_future_free(f);
  cr_assert_eq(log_count(&log), 5);
  cr_assert_eq(log.not_done, 0);
}

Test(executor, callbacks_on_failed_and_cancelled, .init = setup,
     .fini = teardown) {
  tg_executor_free(ex);
  ex = new_executor("threads", 1);
  cb_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  cb_arg args[2] = {{&log, 0}, {&log, 1}};
  tg_future *busy = call1("gate", tg_int(0));
  cr_assert(tgt_gate_wait_started(0));
  tg_future *queued = call1("inc", tg_int(1));
  tg_future *bad = call(ex, "fail", 0, NULL);
  cr_assert_eq(tg_future_on_done(queued, record_cb, &args[0]), TG_OK);
  cr_assert_eq(tg_future_on_done(bad, record_cb, &args[1]), TG_OK);
  cr_assert(tg_future_cancel(queued));
  tgt_gate_open(0);
  cr_assert_eq(tg_future_wait(bad, 10.0), TG_OK);
  for (int i = 0; i < 5000 && log_count(&log) < 2; i++) tgt_sleep_ms(1);
  cr_assert_eq(log_count(&log), 2);
  cr_assert_eq(log.order[0], 0, "the cancelled future calls back first");
  cr_assert_eq(log.order[1], 1);
  tg_future_free(busy);
  tg_future_free(queued);
  tg_future_free(bad);
}

/* Many futures finishing concurrently, each with a callback. */
static void count_cb(tg_future *f, void *ctx) {
  (void)f;
  atomic_fetch_add((atomic_int *)ctx, 1);
}

Test(executor, callbacks_many_concurrent, .init = setup, .fini = teardown) {
  enum { N = 500 };
  static atomic_int hits[N];
  tg_future *fs[N];
  for (int i = 0; i < N; i++) {
    fs[i] = call1("inc", tg_int(i));
    cr_assert_eq(tg_future_on_done(fs[i], count_cb, &hits[i]), TG_OK);
  }
  for (int i = 0; i < N; i++) cr_assert_eq(result_int(fs[i]), i + 1);
  for (int i = 0; i < 5000; i++) {
    int all = 1;
    for (int j = 0; j < N && all; j++) all = atomic_load(&hits[j]) != 0;
    if (all) break;
    tgt_sleep_ms(1);
  }
  tgt_sleep_ms(20);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(atomic_load(&hits[i]), 1, "future %d", i);
    tg_future_free(fs[i]);
  }
}

/* ---- cancellation ---------------------------------------------------------- */

Test(executor, cancel_queued_never_runs, .init = setup, .fini = teardown) {
  tg_executor_free(ex);
  ex = new_executor("threads", 1);
  tg_future *busy = call1("gate", tg_int(0));
  cr_assert(tgt_gate_wait_started(0));
  tg_future *q = call1("counted", tg_int(5));
  tg_arg a = tg_arg_future(q);
  tg_future *dep = call(ex, "inc", 1, &a);
  cr_assert_not(tg_future_running(q));
  cr_assert(tg_future_cancel(q));
  cr_assert(tg_future_cancelled(q));
  cr_assert(tg_future_done(q));
  cr_assert(tg_future_cancel(q), "cancelling again is still true");
  tg_value *v = tg_int(1);
  cr_assert_eq(tg_future_result(q, 1.0, &v), TG_ECANCELED);
  cr_assert_null(v);
  tgt_gate_open(0);
  cr_assert_eq(result_int(busy), 0);
  /* What depended on it cannot succeed. */
  int rc = tg_future_result(dep, 10.0, &v);
  cr_assert_neq(rc, TG_OK);
  cr_assert_neq(rc, TG_ETIMEDOUT);
  tg_executor_free(ex);
  ex = NULL;
  cr_assert_eq(tgt_calls(TGT_COUNTED), 0);
  cr_assert_eq(tgt_calls(TGT_INC), 0);
  tg_future_free(busy);
  tg_future_free(q);
  tg_future_free(dep);
}

Test(executor, cancel_running_or_done_is_false, .init = setup,
     .fini = teardown) {
  tg_future *f = call1("gate", tg_int(0));
  cr_assert(tgt_gate_wait_started(0));
  for (int i = 0; i < 1000 && !tg_future_running(f); i++) tgt_sleep_ms(1);
  cr_assert(tg_future_running(f));
  cr_assert_not(tg_future_done(f));
  cr_assert_not(tg_future_cancel(f));
  cr_assert_not(tg_future_cancelled(f));
  tgt_gate_open(0);
  cr_assert_eq(result_int(f), 0);
  cr_assert_not(tg_future_cancel(f));
  cr_assert_not(tg_future_cancelled(f));
  tg_future_free(f);
}

/* Cancelling one of two futures sharing an input keeps the input for the
 * other. */
Test(executor, cancel_keeps_shared_work, .init = setup, .fini = teardown) {
  tg_executor_free(ex);
  ex = new_executor("threads", 1);
  tg_future *busy = call1("gate", tg_int(0));
  cr_assert(tgt_gate_wait_started(0));
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node nodes[2] = {
      tg_call(g, "add", 2, tg_arg_node(a), tg_arg_value(tg_int(1))),
      tg_call(g, "counted", 1, tg_arg_node(a)),
  };
  tg_future *fs[2];
  cr_assert_eq(tg_executor_submit_many(ex, g, nodes, 2, fs), TG_OK);
  tg_graph_free(g);
  cr_assert(tg_future_cancel(fs[1]));
  tgt_gate_open(0);
  cr_assert_eq(result_int(fs[0]), 3);
  cr_assert_eq(tg_future_wait(busy, 10.0), TG_OK);
  tg_executor_free(ex);
  ex = NULL;
  cr_assert_eq(tgt_calls(TGT_COUNTED), 0);
  cr_assert_eq(tgt_calls(TGT_INC), 1);
  tg_future_free(busy);
  tg_future_free(fs[0]);
  tg_future_free(fs[1]);
}

static void *open_gate_later(void *arg) {
  tgt_sleep_ms(50);
  tgt_gate_open((int)(intptr_t)arg);
  return NULL;
}

Test(executor, free_cancels_queued_and_waits_running, .init = setup,
     .fini = teardown) {
  tg_executor_free(ex);
  ex = new_executor("threads", 1);
  tg_future *busy = call1("gate", tg_int(0));
  cr_assert(tgt_gate_wait_started(0));
  tg_future *q = call1("counted", tg_int(1));
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, open_gate_later, (void *)0), 0);
  tg_executor_free(ex);
  ex = NULL;
  pthread_join(th, NULL);
  cr_assert(tg_future_done(busy));
  cr_assert(tg_future_done(q));
  cr_assert(tg_future_cancelled(q));
  cr_assert_eq(result_int(busy), 0);
  tg_value *v = NULL;
  cr_assert_eq(tg_future_result(q, 0.0, &v), TG_ECANCELED);
  cr_assert_eq(tgt_calls(TGT_COUNTED), 0);
  tg_future_free(busy);
  tg_future_free(q);
}

/* ---- waiting ------------------------------------------------------------------ */

Test(executor, result_timeout_on_pending, .init = setup, .fini = teardown) {
  tg_future *f = call1("gate", tg_int(0));
  tg_value *v = tg_int(9);
  double t0 = tgt_now();
  cr_assert_eq(tg_future_result(f, 0.05, &v), TG_ETIMEDOUT);
  double dt = tgt_now() - t0;
  cr_assert_null(v);
  cr_assert_geq(dt, 0.045);
  cr_assert_lt(dt, 1.0);
  cr_assert_eq(tg_future_wait(f, 0.01), TG_ETIMEDOUT);
  cr_assert_eq(tg_future_wait(f, 0.0), TG_ETIMEDOUT);
  cr_assert_not(tg_future_done(f));
  cr_assert_str_eq(tg_future_errmsg(f), "");
  tgt_gate_open(0);
  cr_assert_eq(tg_future_wait(f, -1.0), TG_OK);
  cr_assert(tg_future_done(f));
  cr_assert_eq(tg_future_result(f, 0.0, &v), TG_OK);
  cr_assert_eq(tg_value_int(v), 0);
  tg_value_unref(v);
  tg_future_free(f);
}

Test(executor, future_refcount, .init = setup, .fini = teardown) {
  tg_future *f = call1("inc", tg_int(1));
  tg_future *f2 = tg_future_ref(f);
  cr_assert_eq(f2, f);
  tg_future_free(f);
  cr_assert_eq(result_int(f2), 2);
  tg_future_free(f2);
  tg_future_free(NULL);
}

/* ---- as completed --------------------------------------------------------------- */

Test(executor, as_completed_follows_completion, .init = setup,
     .fini = teardown) {
  tg_executor_free(ex);
  ex = new_executor("threads", 3);
  tg_future *fs[3];
  for (int i = 0; i < 3; i++) fs[i] = call1("gate", tg_int(i));
  for (int i = 0; i < 3; i++) cr_assert(tgt_gate_wait_started(i));
  tg_as_completed *it = NULL;
  cr_assert_eq(tg_as_completed_new(fs, 3, &it), TG_OK);
  tg_future *next = (tg_future *)fs;
  cr_assert_eq(tg_as_completed_next(it, 0.02, &next), TG_ETIMEDOUT);
  const int order[3] = {2, 0, 1};
  for (int k = 0; k < 3; k++) {
    tgt_gate_open(order[k]);
    cr_assert_eq(tg_as_completed_next(it, 10.0, &next), TG_OK);
    cr_assert_eq(next, fs[order[k]], "step %d", k);
  }
  cr_assert_eq(tg_as_completed_next(it, 0.0, &next), TG_ENOTFOUND);
  cr_assert_eq(tg_as_completed_next(it, -1.0, &next), TG_ENOTFOUND);
  tg_as_completed_free(it);
  for (int i = 0; i < 3; i++) tg_future_free(fs[i]);
}

Test(executor, as_completed_each_exactly_once, .init = setup,
     .fini = teardown) {
  enum { N = 200 };
  tg_future *fs[N];
  for (int i = 0; i < N; i++) {
    if (i % 3 == 0)
      fs[i] = call(ex, "fail", 0, NULL);
    else
      fs[i] = call1(i % 3 == 1 ? "inc" : "sleep_ms", tg_int(i % 5));
  }
  /* Some finish before the iterator exists, some after. */
  cr_assert_eq(tg_future_wait(fs[0], 10.0), TG_OK);
  tg_as_completed *it = NULL;
  cr_assert_eq(tg_as_completed_new(fs, N, &it), TG_OK);
  int seen[N] = {0};
  tg_future *f = NULL;
  for (int k = 0; k < N; k++) {
    cr_assert_eq(tg_as_completed_next(it, 10.0, &f), TG_OK, "step %d", k);
    cr_assert(tg_future_done(f));
    int idx = -1;
    for (int i = 0; i < N; i++)
      if (fs[i] == f) idx = i;
    cr_assert_geq(idx, 0);
    seen[idx]++;
  }
  cr_assert_eq(tg_as_completed_next(it, 0.0, &f), TG_ENOTFOUND);
  for (int i = 0; i < N; i++) cr_assert_eq(seen[i], 1, "future %d", i);
  tg_as_completed_free(it);
  for (int i = 0; i < N; i++) tg_future_free(fs[i]);
  tg_as_completed_free(NULL);
}

/* ---- logging and concurrency --------------------------------------------------- */

typedef struct log_sink {
  pthread_mutex_t mu;
  char key[64];
  char line[64];
  int n;
} log_sink;

static void sink_fn(void *ctx, const char *key, const char *line) {
  log_sink *s = ctx;
  pthread_mutex_lock(&s->mu);
  snprintf(s->key, sizeof s->key, "%s", key);
  snprintf(s->line, sizeof s->line, "%s", line);
  s->n++;
  pthread_mutex_unlock(&s->mu);
}

Test(executor, task_log_goes_to_callback) {
  reg = tgt_registry_new();
  log_sink sink = {.mu = PTHREAD_MUTEX_INITIALIZER};
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "threads", .workers = 2,
                        .log = sink_fn, .log_ctx = &sink};
  tg_executor *e = NULL;
  cr_assert_eq(tg_executor_new(reg, &o, &e, NULL), TG_OK);
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node_opts no = {TG_NODE_OPTS_V1, "talker", -1, -1, 0, 0};
  tg_node n = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "logline",
                            (tg_arg[]){tg_arg_value(tg_int(7))}, 1, &no, &n),
               TG_OK);
  tg_future *f = NULL;
  cr_assert_eq(tg_executor_submit(e, g, n, &f), TG_OK);
  cr_assert_eq(tg_future_wait(f, 10.0), TG_OK);
  cr_assert_eq(sink.n, 1);
  cr_assert_str_eq(sink.key, "talker");
  cr_assert_str_eq(sink.line, "value 7");
  /* tg_compute on this executor logs there too. */
  tg_compute_opts co = tgt_opts(NULL, 0, NULL);
  co.executor = e;
  tg_value *v = NULL;
  cr_assert_eq(tg_compute(g, &n, 1, &co, &v), TG_OK);
  cr_assert_eq(tg_value_int(v), 7);
  cr_assert_eq(sink.n, 2);
  tg_value_unref(v);
  tg_future_free(f);
  tg_graph_free(g);
  tg_executor_free(e);
  tg_registry_free(reg);
}

typedef struct submitter {
  int base;
  int bad;
} submitter;

static void *submit_loop(void *arg) {
  submitter *s = arg;
  enum { N = 200 };
  tg_future *fs[N];
  for (int i = 0; i < N; i++) {
    tg_arg a[2] = {tg_arg_value(tg_int(s->base)), tg_arg_value(tg_int(i))};
    if (tg_executor_call(ex, "add", a, 2, &fs[i]) != TG_OK) {
      s->bad++;
      fs[i] = NULL;
    }
  }
  for (int i = 0; i < N; i++) {
    tg_value *v = NULL;
    if (!fs[i] || tg_future_result(fs[i], 10.0, &v) != TG_OK ||
        tg_value_int(v) != s->base + i)
      s->bad++;
    tg_value_unref(v);
    tg_future_free(fs[i]);
  }
  return NULL;
}

Test(executor, concurrent_submitters, .init = setup, .fini = teardown) {
  enum { T = 4 };
  pthread_t th[T];
  submitter s[T];
  for (int t = 0; t < T; t++) {
    s[t].base = 1000 * t;
    s[t].bad = 0;
    cr_assert_eq(pthread_create(&th[t], NULL, submit_loop, &s[t]), 0);
  }
  for (int t = 0; t < T; t++) {
    pthread_join(th[t], NULL);
    cr_assert_eq(s[t].bad, 0, "submitter %d", t);
  }
  cr_assert_eq(tgt_calls(TGT_ADD), T * 200);
}

/* The sync executor runs futures too (in some caller thread). */
Test(executor, sync_backend_futures) {
  reg = tgt_registry_new();
  ex = new_executor("sync", 1);
  tg_future *a = call1("inc", tg_int(1));
  tg_arg args[2] = {tg_arg_future(a), tg_arg_future(a)};
  tg_future *b = call(ex, "add", 2, args);
  cr_assert_eq(result_int(b), 4);
  cr_assert_eq(result_int(a), 2);
  cr_assert_eq(tgt_calls(TGT_INC), 1);
  tg_future *bad = call(ex, "fail", 0, NULL);
  tg_value *v = NULL;
  cr_assert_eq(tg_future_result(bad, 1.0, &v), TG_ETASK);
  tg_future_free(a);
  tg_future_free(b);
  tg_future_free(bad);
  tg_executor_free(ex);
  tg_registry_free(reg);
}
