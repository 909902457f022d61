/* tests/test_futures.c: waiting for several futures as concurrent.futures
 * does (tg_futures_wait, tg_as_completed with an overall timeout,
 * tg_executor_wait_all) and cancellation, translated from CPython's
 * test_concurrent_futures (test_wait, test_as_completed, test_future),
 * on the threads, processes and tcp backends, and sync where tasks need
 * not block. */
#include "test_xbackend.h"

static tg_executor *ex;

static tg_future *call(const char *fn, size_t nargs, tg_arg *args) {
  tg_future *f = NULL;
  int rc = tg_executor_call(ex, fn, args, nargs, &f);
  cr_assert_eq(rc, TG_OK, "%s: %s", fn, tg_executor_errmsg(ex));
  return f;
}

/* inc(x), optionally waited for. */
static tg_future *inc(int64_t x, bool wait) {
  tg_arg a = tg_arg_value(tg_int(x));
  tg_future *f = call("inc", 1, &a);
  if (wait) cr_assert_eq(tg_future_wait(f, 60), TG_OK);
  return f;
}

/* A future that failed (waited for), or one failing soon. */
static tg_future *failing(bool wait) {
  tg_future *f = call("fail", 0, NULL);
  if (wait) cr_assert_eq(tg_future_wait(f, 60), TG_OK);
  return f;
}

/* hold(name): runs until tx_release(name) or its cancellation. */
static tg_future *held(const char *name) {
  char p[256];
  tx_path(p, sizeof p, name);
  tg_arg a = tg_arg_value(tg_str_c(p));
  return call("hold", 1, &a);
}

/* A cancelled future: inc(hold(name)) cancelled while its input runs
 * (or waits), so its own task cannot have started on any backend. */
static tg_future *cancelled(const char *name) {
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(tx_reg, &g), TG_OK);
  char p[256];
  tx_path(p, sizeof p, name);
  tg_node a = tg_call(g, "hold", 1, tg_arg_value(tg_str_c(p)));
  tg_node b = tg_call(g, "inc", 1, tg_arg_node(a));
  tg_future *f = NULL;
  cr_assert_eq(tg_executor_submit(ex, g, b, &f), TG_OK);
  tg_graph_free(g);
  cr_assert(tg_future_cancel(f));
  cr_assert(tg_future_done(f) && tg_future_cancelled(f));
  return f;
}

/* tg_futures_wait, checking that the index sets are exactly `done` and
 * `notdone` (ascending index lists ending with -1). */
static void expect_wait(tg_future *const *fs, size_t n, tg_wait_mode mode,
                        double timeout, const int *done, const int *notdone) {
  size_t di[16], ni[16], nd = 99, nn = 99;
  cr_assert_eq(tg_futures_wait(fs, n, mode, timeout, di, &nd, ni, &nn), TG_OK);
  size_t k = 0;
  for (; done[k] >= 0; k++) cr_assert(k < nd && di[k] == (size_t)done[k], "done[%zu]", k);
  cr_assert_eq(nd, k, "%zu done, expected %zu", nd, k);
  for (k = 0; notdone[k] >= 0; k++)
    cr_assert(k < nn && ni[k] == (size_t)notdone[k], "notdone[%zu]", k);
  cr_assert_eq(nn, k, "%zu not done, expected %zu", nn, k);
}

static void free_all(tg_future **fs, size_t n) {
  for (size_t i = 0; i < n; i++) tg_future_free(fs[i]);
}

#define ON(be, name)                                                   \
  Test(futures, name##_##be, .init = tx_setup, .timeout = 180) {       \
    ex = tx_executor(#be);                                             \
    name(#be);                                                         \
    tx_teardown(ex);                                                   \
  }
#define ON_POOLS(name) ON(threads, name) ON(processes, name) ON(tcp, name)
#define ON_ALL(name) ON(sync, name) ON_POOLS(name)

/* ---- wait ------------------------------------------------------------------ */

static void first_completed(const char *be) {
  (void)be;
  tg_future *fs[] = {held("g0"), inc(41, false)};
  expect_wait(fs, 2, TG_FIRST_COMPLETED, -1, (int[]){1, -1}, (int[]){0, -1});
  free_all(fs, 2);
}
ON_POOLS(first_completed)

static void first_completed_some_already_completed(const char *be) {
  (void)be;
  tg_future *fs[] = {cancelled("c0"), inc(1, true), held("g0")};
  expect_wait(fs, 3, TG_FIRST_COMPLETED, -1, (int[]){0, 1, -1}, (int[]){2, -1});
  free_all(fs, 3);
}
ON_POOLS(first_completed_some_already_completed)

static void first_exception(const char *be) {
  (void)be;
  tg_future *fs[] = {inc(1, true), failing(false), held("g0")};
  expect_wait(fs, 3, TG_FIRST_EXCEPTION, -1, (int[]){0, 1, -1}, (int[]){2, -1});
  cr_assert_eq(tg_future_result(fs[1], 0, &(tg_value *){NULL}), TG_ETASK);
  cr_assert(strstr(tg_future_errmsg(fs[1]), "always fails"), "%s", tg_future_errmsg(fs[1]));
  free_all(fs, 3);
}
ON_POOLS(first_exception)

static void first_exception_some_already_complete(const char *be) {
  (void)be;
  tg_future *fs[] = {inc(1, true), held("g0"), cancelled("c0"), failing(false)};
  expect_wait(fs, 4, TG_FIRST_EXCEPTION, -1, (int[]){0, 2, 3, -1}, (int[]){1, -1});
  free_all(fs, 4);
}
ON_POOLS(first_exception_some_already_complete)

/* A cancelled future is no exception: without a failure FIRST_EXCEPTION
 * waits for all (here: until the timeout). */
static void first_exception_cancelled_is_not_one(const char *be) {
  (void)be;
  tg_future *fs[] = {cancelled("c0"), held("g0")};
  double t0 = tgt_now();
  expect_wait(fs, 2, TG_FIRST_EXCEPTION, 0.3, (int[]){0, -1}, (int[]){1, -1});
  cr_assert_geq(tgt_now() - t0, 0.29);
  free_all(fs, 2);
}
ON_POOLS(first_exception_cancelled_is_not_one)

static void first_exception_one_already_failed(const char *be) {
  if (strcmp(be, "sync") == 0) { /* nothing blocks there: both are done */
    tg_future *fs[] = {failing(true), inc(1, false)};
    expect_wait(fs, 2, TG_FIRST_EXCEPTION, -1, (int[]){0, 1, -1}, (int[]){-1});
    free_all(fs, 2);
    return;
  }
  tg_future *fs[] = {failing(true), held("g0")};
  expect_wait(fs, 2, TG_FIRST_EXCEPTION, -1, (int[]){0, -1}, (int[]){1, -1});
  free_all(fs, 2);
}
ON_ALL(first_exception_one_already_failed)

static void all_completed(const char *be) {
  bool sync = strcmp(be, "sync") == 0;
  tg_future *fs[] = {inc(1, true), sync ? inc(7, true) : cancelled("c0"), failing(true),
                     inc(2, false), inc(3, false)};
  expect_wait(fs, 5, TG_ALL_COMPLETED, -1, (int[]){0, 1, 2, 3, 4, -1}, (int[]){-1});
  tg_value *v = NULL;
  cr_assert_eq(tg_future_result(fs[4], 0, &v), TG_OK);
  cr_assert_eq(tg_value_int(v), 4);
  tg_value_unref(v);
  free_all(fs, 5);
}
ON_ALL(all_completed)

static void timeout(const char *be) {
  (void)be;
  tg_future *fs[] = {cancelled("c0"), failing(true), inc(1, true), inc(6, true), held("g0")};
  double t0 = tgt_now();
  expect_wait(fs, 5, TG_ALL_COMPLETED, 0.3, (int[]){0, 1, 2, 3, -1}, (int[]){4, -1});
  cr_assert_geq(tgt_now() - t0, 0.29);
  /* Once the holder is released, the same wait completes. */
  tx_release("g0");
  expect_wait(fs, 5, TG_ALL_COMPLETED, -1, (int[]){0, 1, 2, 3, 4, -1}, (int[]){-1});
  free_all(fs, 5);
}
ON_POOLS(timeout)

/* Zero timeout only looks; a future given twice is one, under its first
 * index; index arrays and counts may be left out. */
static void poll_and_duplicates(const char *be) {
  (void)be;
  tg_future *h = held("g0"), *d = inc(1, true);
  tg_future *fs[] = {h, d, h, d, h};
  double t0 = tgt_now();
  expect_wait(fs, 5, TG_ALL_COMPLETED, 0, (int[]){1, -1}, (int[]){0, -1});
  expect_wait(fs, 5, TG_FIRST_COMPLETED, -1, (int[]){1, -1}, (int[]){0, -1});
  cr_assert_lt(tgt_now() - t0, 30, "a poll does not wait");
  size_t nd = 0, nn = 0;
  cr_assert_eq(tg_futures_wait(fs, 5, TG_ALL_COMPLETED, 0, NULL, &nd, NULL, &nn), TG_OK);
  cr_assert(nd == 1 && nn == 1);
  cr_assert_eq(tg_futures_wait(fs, 5, TG_ALL_COMPLETED, 0, NULL, NULL, NULL, NULL), TG_OK);
  tx_release("g0");
  expect_wait(fs, 5, TG_ALL_COMPLETED, -1, (int[]){0, 1, -1}, (int[]){-1});
  tg_future_free(h);
  tg_future_free(d);
}
ON_POOLS(poll_and_duplicates)

/* Many waits with a timeout on a pending future leave no callback
 * behind (each is taken back): memory stays flat, and the future's own
 * callbacks still run once. */
static void repeated_waits_leave_nothing(const char *be) {
  (void)be;
  tg_future *h = held("g0");
  for (int i = 0; i < 2000; i++) {
    size_t nn = 0;
    cr_assert_eq(tg_futures_wait(&h, 1, TG_ALL_COMPLETED, 1e-6, NULL, NULL, NULL, &nn),
                 TG_OK);
    cr_assert_eq(nn, 1);
  }
  tx_release("g0");
  expect_wait(&h, 1, TG_ALL_COMPLETED, -1, (int[]){0, -1}, (int[]){-1});
  tg_future_free(h);
}
ON(threads, repeated_waits_leave_nothing)

Test(futures, wait_bad_input, .init = tx_setup) {
  ex = tx_executor("threads");
  tg_future *f = inc(1, true);
  tg_future *fs[] = {f, NULL};
  size_t di[2], nd = 7, nn = 7;
  cr_assert_eq(tg_futures_wait(fs, 1, (tg_wait_mode)0, -1, di, &nd, NULL, &nn), TG_EINVAL);
  cr_assert(nd == 0 && nn == 0, "counts are cleared on error");
  cr_assert_eq(tg_futures_wait(fs, 1, (tg_wait_mode)4, -1, di, &nd, NULL, &nn), TG_EINVAL);
  cr_assert_eq(tg_futures_wait(fs, 2, TG_ALL_COMPLETED, -1, di, &nd, NULL, &nn), TG_EINVAL);
  cr_assert_eq(tg_futures_wait(NULL, 1, TG_ALL_COMPLETED, -1, di, &nd, NULL, &nn), TG_EINVAL);
  /* An empty set is all done at once. */
  cr_assert_eq(tg_futures_wait(NULL, 0, TG_ALL_COMPLETED, -1, di, &nd, NULL, &nn), TG_OK);
  cr_assert(nd == 0 && nn == 0);
  tg_as_completed *it = (tg_as_completed *)fs;
  cr_assert_eq(tg_as_completed_new_timed(fs, 2, 1, &it), TG_EINVAL);
  cr_assert_null(it);
  cr_assert_eq(tg_as_completed_new_timed(NULL, 1, 1, &it), TG_EINVAL);
  cr_assert_eq(tg_executor_wait_all(NULL, 0), TG_EINVAL);
  tg_future_free(f);
  tx_teardown(ex);
}

/* ---- as completed ----------------------------------------------------------- */

static void as_completed_duplicates(const char *be) {
  bool sync = strcmp(be, "sync") == 0;
  tg_future *f = sync ? inc(1, false) : held("g0");
  tg_future *fs[] = {f, f, f};
  tg_as_completed *it = NULL;
  cr_assert_eq(tg_as_completed_new(fs, 3, &it), TG_OK);
  tx_release("g0");
  tg_future *got = NULL;
  cr_assert_eq(tg_as_completed_next(it, 60, &got), TG_OK);
  cr_assert_eq(got, f);
  cr_assert_eq(tg_as_completed_next(it, 60, &got), TG_ENOTFOUND);
  cr_assert_null(got);
  tg_as_completed_free(it);
  tg_future_free(f);
}
ON_ALL(as_completed_duplicates)

/* as_completed(fs, timeout=0): what is done comes out, then the timeout. */
static void as_completed_zero_timeout(const char *be) {
  bool sync = strcmp(be, "sync") == 0;
  tg_future *fs[] = {sync ? inc(5, true) : cancelled("c0"), failing(true), inc(1, true),
                     sync ? inc(2, true) : held("g0")};
  tg_as_completed *it = NULL;
  cr_assert_eq(tg_as_completed_new_timed(fs, 4, 0, &it), TG_OK);
  bool seen[4] = {false};
  tg_future *got;
  int rc;
  size_t n = 0;
  while ((rc = tg_as_completed_next(it, -1, &got)) == TG_OK) {
    for (size_t i = 0; i < 4; i++)
      if (fs[i] == got) {
        cr_assert_not(seen[i], "future %zu yielded twice", i);
        seen[i] = true;
      }
    n++;
  }
  cr_assert_eq(rc, sync ? TG_ENOTFOUND : TG_ETIMEDOUT);
  cr_assert_eq(n, sync ? 4 : 3);
  cr_assert(seen[0] && seen[1] && seen[2]);
  tg_as_completed_free(it);
  free_all(fs, 4);
}
ON_ALL(as_completed_zero_timeout)

/* The limit counts from the call, for the whole iteration, whatever each
 * next asks; futures finishing later still come out of later nexts. */
static void as_completed_total_timeout(const char *be) {
  (void)be;
  tg_future *fs[] = {inc(1, true), held("g0")};
  double t0 = tgt_now();
  tg_as_completed *it = NULL;
  cr_assert_eq(tg_as_completed_new_timed(fs, 2, 0.3, &it), TG_OK);
  tg_future *got;
  cr_assert_eq(tg_as_completed_next(it, -1, &got), TG_OK);
  cr_assert_eq(got, fs[0]);
  cr_assert_eq(tg_as_completed_next(it, -1, &got), TG_ETIMEDOUT);
  cr_assert_geq(tgt_now() - t0, 0.29);
  cr_assert_eq(tg_as_completed_next(it, 60, &got), TG_ETIMEDOUT, "the limit has passed");
  tx_release("g0");
  cr_assert_eq(tg_future_wait(fs[1], 60), TG_OK);
  cr_assert_eq(tg_as_completed_next(it, -1, &got), TG_OK);
  cr_assert_eq(got, fs[1]);
  cr_assert_eq(tg_as_completed_next(it, -1, &got), TG_ENOTFOUND);
  tg_as_completed_free(it);
  /* Without the limit, each next keeps its own. */
  tg_future *h = held("g1");
  cr_assert_eq(tg_as_completed_new(&h, 1, &it), TG_OK);
  cr_assert_eq(tg_as_completed_next(it, 0.05, &got), TG_ETIMEDOUT);
  tx_release("g1");
  cr_assert_eq(tg_as_completed_next(it, 60, &got), TG_OK);
  tg_as_completed_free(it);
  tg_future_free(h);
  free_all(fs, 2);
}
ON_POOLS(as_completed_total_timeout)

/* An iterator freed before its futures finish leaves nothing behind. */
static void as_completed_freed_early(const char *be) {
  (void)be;
  tg_future *h = held("g0");
  tg_as_completed *it = NULL;
  cr_assert_eq(tg_as_completed_new(&h, 1, &it), TG_OK);
  tg_as_completed_free(it);
  tx_release("g0");
  cr_assert_eq(tg_future_wait(h, 60), TG_OK);
  tg_future_free(h);
}
ON_POOLS(as_completed_freed_early)

/* ---- cancel -------------------------------------------------------------------- */

/* A running future cannot be cancelled (concurrent.futures); a queued one
 * can, and stays cancelled. */
static void cancel_running_and_queued(const char *be) {
  (void)be;
  tg_future *run = held("g0");
  cr_assert(tx_wait_file("g0.started"));
  cr_assert_not(tg_future_cancel(run));
  cr_assert_not(tg_future_cancelled(run));
  tg_future *q = cancelled("c0");
  cr_assert(tg_future_cancel(q), "cancelling twice is true");
  tg_value *v = NULL;
  cr_assert_eq(tg_future_result(q, 0, &v), TG_ECANCELED);
  tx_release("g0");
  cr_assert_eq(tg_future_result(run, 60, &v), TG_OK);
  cr_assert_eq(tg_value_int(v), 1);
  tg_value_unref(v);
  cr_assert_not(tg_future_cancel(run), "a done future is not cancelled");
  tg_future_free(run);
  tg_future_free(q);
}
ON_POOLS(cancel_running_and_queued)

/* Cancelling every future of a submission cancels its running tasks:
 * they see tg_task_cancelled(), wherever they run. */
static void cancel_reaches_running_tasks(const char *be) {
  (void)be;
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(tx_reg, &g), TG_OK);
  char p[256];
  tx_path(p, sizeof p, "c0");
  tg_node a = tg_call(g, "hold", 1, tg_arg_value(tg_str_c(p)));
  tg_node outs[2] = {tg_call(g, "inc", 1, tg_arg_node(a)),
                     tg_call(g, "add", 2, tg_arg_node(a), tg_arg_value(tg_int(1)))};
  tg_future *f[2];
  cr_assert_eq(tg_executor_submit_many(ex, g, outs, 2, f), TG_OK);
  tg_graph_free(g);
  cr_assert(tx_wait_file("c0.started"));
  cr_assert(tg_future_cancel(f[0]));
  /* One future of it is still wanted: its input runs on undisturbed. */
  cr_assert_eq(tg_executor_wait_all(ex, 0.2), TG_ETIMEDOUT);
  cr_assert_eq(tx_count("c0.cancelled"), 0);
  cr_assert(tg_future_cancel(f[1]));
  cr_assert(tx_wait_file("c0.cancelled"), "the running task never saw the cancel");
  cr_assert_eq(tg_executor_wait_all(ex, 60), TG_OK);
  cr_assert(tg_future_cancelled(f[0]) && tg_future_cancelled(f[1]));
  /* The executor goes on working. */
  tg_future *after = inc(9, false);
  tg_value *v = NULL;
  cr_assert_eq(tg_future_result(after, 60, &v), TG_OK);
  cr_assert_eq(tg_value_int(v), 10);
  tg_value_unref(v);
  tg_future_free(after);
  free_all(f, 2);
}
ON_POOLS(cancel_reaches_running_tasks)

/* ---- wait for everything --------------------------------------------------------- */

static void wait_all(const char *be) {
  bool sync = strcmp(be, "sync") == 0;
  tg_future *fs[] = {sync ? inc(0, false) : held("g0"), inc(1, false), failing(false)};
  if (!sync) {
    double t0 = tgt_now();
    cr_assert_eq(tg_executor_wait_all(ex, 0.2), TG_ETIMEDOUT);
    cr_assert_geq(tgt_now() - t0, 0.19);
    cr_assert_eq(tg_executor_wait_all(ex, 0), TG_ETIMEDOUT);
    cr_assert_not(tg_future_done(fs[0]));
    tx_release("g0");
  }
  cr_assert_eq(tg_executor_wait_all(ex, -1), TG_OK);
  for (size_t i = 0; i < 3; i++) cr_assert(tg_future_done(fs[i]), "future %zu", i);
  cr_assert_eq(tg_executor_wait_all(ex, 0), TG_OK, "nothing left: at once");
  free_all(fs, 3);
}
ON_ALL(wait_all)
