/* tests/test_sched.c: how computes are scheduled: failures and the work
 * they stop, retries, timeouts and cancellation, execution order, stats,
 * and the number of intermediate values kept alive. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tgraph/graph.h"
#include "tgraph/registry.h"
#include "test_funcs.h"

static tg_registry *reg;
static tg_graph *g;

static void setup(void) {
  reg = tgt_registry_new();
  cr_assert_not_null(reg);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
}

static void teardown(void) {
  tg_graph_free(g);
  tg_registry_free(reg);
}

static tg_node keyed(const char *fn, const char *key, tg_arg *args,
                     size_t nargs, int retries) {
  tg_node_opts o = {TG_NODE_OPTS_V1, key, retries, -1, 0, 0};
  tg_node n = TG_NODE_NONE;
  int rc = tg_graph_add(g, fn, args, nargs, &o, &n);
  cr_assert_eq(rc, TG_OK, "%s: %s", tg_err_name(rc), tg_graph_errmsg(g));
  return n;
}

/* ---- failures ------------------------------------------------------------ */

Test(sched, error_message_names_task_exactly, .init = setup, .fini = teardown) {
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node bad = keyed("fail", "bad", (tg_arg[]){tg_arg_node(a)}, 1, -1);
  tg_node out = tg_call(g, "add", 2, tg_arg_node(a), tg_arg_node(bad));
  const char *backends[] = {"sync", "threads"};
  for (int b = 0; b < 2; b++) {
    tg_value *v = tg_int(3);
    tg_compute_stats st;
    tg_compute_opts o = tgt_opts(backends[b], 2, &st);
    cr_assert_eq(tg_compute(g, &out, 1, &o, &v), TG_ETASK, "%s", backends[b]);
    cr_assert_null(v);
    cr_assert_str_eq(tg_graph_errmsg(g),
                     "task 'bad' failed: TG_EINVAL: always fails");
    cr_assert_eq(st.failed_node, bad);
    cr_assert_eq(st.tasks_failed, 1);
    cr_assert_eq(st.tasks_total, 3);
    cr_assert_eq(st.tasks_run, 2);
    cr_assert_eq(st.tasks_skipped, 1);
  }
  tg_node gen = tg_call(g, "fail", 0);
  tg_value *v = NULL;
  tg_compute_opts o = tgt_opts("sync", 1, NULL);
  cr_assert_eq(tg_compute(g, &gen, 1, &o, &v), TG_ETASK);
  cr_assert_str_eq(tg_graph_errmsg(g),
                   "task 'fail#3' failed: TG_EINVAL: always fails");
  /* The graph still computes what does not depend on the failure. */
  int rc;
  cr_assert_eq(tgt_compute_int(g, a, &o, &rc), 2, "%s", tg_graph_errmsg(g));
}

Test(sched, failure_fails_every_output, .init = setup, .fini = teardown) {
  tg_node ok = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node bad = tg_call(g, "fail", 0);
  tg_node outs[3] = {ok, bad, ok};
  for (int b = 0; b < 2; b++) {
    tg_value *res[3] = {tg_int(1), tg_int(2), tg_int(3)};
    tg_compute_opts o = tgt_opts(b ? "threads" : "sync", 2, NULL);
    cr_assert_eq(tg_compute(g, outs, 3, &o, res), TG_ETASK);
    for (int i = 0; i < 3; i++) cr_assert_null(res[i], "results[%d]", i);
  }
}

/* On sync the order is fixed: once the failing task ran, none of the
 * independent tasks still queued may start. */
Test(sched, failure_stops_queued_work_sync, .init = setup, .fini = teardown) {
  enum { N = 200 };
  tg_arg args[N + 1];
  tg_node bad = TG_NODE_NONE;
  for (int i = 0; i < N; i++) {
    tg_node c = tg_call(g, "counted", 1, tg_arg_value(tg_int(i)));
    args[i] = tg_arg_node(tg_call(g, "inc", 1, tg_arg_node(c)));
    if (i == N / 2) bad = tg_call(g, "fail", 0);
  }
  args[N] = tg_arg_node(bad);
  tg_node out = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "sum_args", args, N + 1, NULL, &out), TG_OK);
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  tg_value *v = NULL;
  cr_assert_eq(tg_compute(g, &out, 1, &o, &v), TG_ETASK);
  cr_assert_eq(tgt_calls(TGT_FAIL), 1);
  cr_assert_eq(atomic_load(&tgt.after_fail), 0,
               "%ld tasks started after the failure",
               atomic_load(&tgt.after_fail));
  cr_assert_eq(st.tasks_total, 2 * N + 2);
  cr_assert_eq(st.tasks_failed, 1);
  size_t ran = (size_t)(tgt_calls(TGT_COUNTED) + tgt_calls(TGT_INC) + 1);
  cr_assert_eq(st.tasks_run, ran);
  cr_assert_eq(st.tasks_run + st.tasks_skipped, st.tasks_total);
  cr_assert_eq(st.failed_node, bad);
  char key[32];
  tg_node_key(g, bad, key, sizeof key);
  cr_assert_str_eq(key, "fail#202");
}

/* On threads, once the failure is known no new task starts. The failing
 * task is ready at once; 400 independent 5 ms tasks wait for one other
 * task. A few may start while the failing worker reports the failure (a
 * preempted worker can delay that by a time slice); most never run. */
Test(sched, failure_stops_queued_work_threads, .init = setup,
     .fini = teardown) {
  enum { N = 400 };
  tg_node go = tg_call(g, "identity", 1, tg_arg_value(tg_int(5)));
  tg_arg *args = malloc((N + 1) * sizeof *args);
  args[0] = tg_arg_node(tg_call(g, "fail", 0));
  for (int i = 1; i <= N; i++)
    args[i] = tg_arg_node(tg_call(g, "sleep_ms", 1, tg_arg_node(go)));
  tg_node out = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "pack", args, N + 1, NULL, &out), TG_OK);
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts("threads", 2, &st);
  o.version = TG_COMPUTE_OPTS_V4; /* for tasks_cancelled */
  tg_value *v = NULL;
  cr_assert_eq(tg_compute(g, &out, 1, &o, &v), TG_ETASK);
  cr_assert_leq(atomic_load(&tgt.after_fail), 6,
                "%ld tasks started after the failure",
                atomic_load(&tgt.after_fail));
  cr_assert_eq(st.tasks_total, N + 3);
  /* A sleep that started before the failure and saw the cancellation is
   * cancelled, not failed. */
  cr_assert_eq(st.tasks_failed, 1);
  cr_assert_eq(st.tasks_cancelled, (size_t)atomic_load(&tgt.sleep_cancelled));
  /* at most one sleep per worker can be in flight when the stop is known */
  cr_assert_leq(atomic_load(&tgt.sleep_cancelled), 2);
  cr_assert_eq(st.tasks_run + st.tasks_skipped, st.tasks_total);
  cr_assert_lt(tgt_calls(TGT_SLEEP), N / 2);
  cr_assert_eq(st.tasks_run, (size_t)(tgt_calls(TGT_SLEEP) +
                                      tgt_calls(TGT_IDENTITY) + 1));
  free(args);
}

Test(sched, retries_pure_tasks, .init = setup, .fini = teardown) {
  tg_node ok = keyed("fail_first", "ff2",
                     (tg_arg[]){tg_arg_value(tg_int(2)),
                                tg_arg_value(tg_int(7))},
                     2, 2);
  tg_node short_ = keyed("fail_first", "ff1",
                         (tg_arg[]){tg_arg_value(tg_int(2)),
                                    tg_arg_value(tg_int(8))},
                         2, 1);
  tg_node dflt = keyed("fail_first", "ffd",
                       (tg_arg[]){tg_arg_value(tg_int(3)),
                                  tg_arg_value(tg_int(9))},
                       2, -1);
  for (int b = 0; b < 2; b++) {
    const char *be = b ? "threads" : "sync";
    tg_compute_stats st;
    tg_compute_opts o = tgt_opts(be, 2, &st);
    int rc;
    cr_assert_eq(tgt_compute_int(g, ok, &o, &rc), 7, "%s: %s", be,
                 tg_graph_errmsg(g));
    cr_assert_eq(st.tasks_total, 1);
    cr_assert_eq(st.tasks_run, 3);
    cr_assert_eq(st.tasks_failed, 0); /* retried, then successful */
    cr_assert_eq(st.failed_node, TG_NODE_NONE);

    cr_assert_eq(tgt_compute_int(g, short_, &o, &rc), INT64_MIN);
    cr_assert_eq(rc, TG_ETASK);
    cr_assert_str_eq(tg_graph_errmsg(g),
                     "task 'ff1' failed: TG_EIO: attempt 1 fails");
    cr_assert_eq(st.tasks_run, 2);
    cr_assert_eq(st.tasks_failed, 1); /* one task, after its retry */

    /* -1 takes the compute's default. */
    cr_assert_eq(tgt_compute_int(g, dflt, &o, &rc), INT64_MIN);
    cr_assert_eq(st.tasks_run, 1);
    o.retries = 3;
    cr_assert_eq(tgt_compute_int(g, dflt, &o, &rc), 9, "%s",
                 tg_graph_errmsg(g));
    cr_assert_eq(st.tasks_run, 4);
    cr_assert_eq(st.tasks_failed, 0); /* three failed attempts, then a result */
  }
}

Test(sched, impure_tasks_are_not_retried, .init = setup, .fini = teardown) {
  /* sleep_ms is impure; a str argument makes it fail. */
  tg_node n = keyed("sleep_ms", "sl", (tg_arg[]){tg_arg_value(tg_str_c("x"))},
                    1, 5);
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  o.retries = 5;
  int rc;
  tgt_compute_int(g, n, &o, &rc);
  cr_assert_eq(rc, TG_ETASK);
  cr_assert_eq(tgt_calls(TGT_SLEEP), 1);
  cr_assert_eq(st.tasks_run, 1);
  cr_assert_eq(st.tasks_failed, 1);
  cr_assert_str_eq(tg_graph_errmsg(g),
                   "task 'sl' failed: TG_ETYPE: argument 0: expected int, "
                   "got str");
}

/* ---- timeouts and cancellation -------------------------------------------- */

static void check_timeout(const char *backend) {
  tg_node s = tg_call(g, "sleep_ms", 1, tg_arg_value(tg_int(20000)));
  tg_node out = tg_call(g, "inc", 1, tg_arg_node(s));
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts(backend, 2, &st);
  o.timeout = 0.2;
  tg_value *v = tg_int(1);
  double t0 = tgt_now();
  int rc = tg_compute(g, &out, 1, &o, &v);
  double dt = tgt_now() - t0;
  cr_assert_eq(rc, TG_ETIMEDOUT, "%s: %s", backend, tg_err_name(rc));
  cr_assert_null(v);
  cr_assert_geq(dt, 0.19, "%s: returned after %.3f s", backend, dt);
  cr_assert_lt(dt, 2.0, "%s: returned after %.3f s", backend, dt);
  cr_assert_eq(atomic_load(&tgt.sleep_cancelled), 1,
               "%s: the running task saw tg_task_cancelled()", backend);
  cr_assert_eq(tgt_calls(TGT_INC), 0);
}

Test(sched, timeout_threads, .init = setup, .fini = teardown) {
  check_timeout("threads");
}

Test(sched, timeout_sync, .init = setup, .fini = teardown) {
  check_timeout("sync");
}

Test(sched, timeout_not_reached, .init = setup, .fini = teardown) {
  tg_node s = tg_call(g, "sleep_ms", 1, tg_arg_value(tg_int(20)));
  tg_compute_opts o = tgt_opts("threads", 2, NULL);
  o.timeout = 5.0;
  int rc;
  cr_assert_eq(tgt_compute_int(g, s, &o, &rc), 20, "%s", tg_graph_errmsg(g));
}

/* Opens gate 0 once sleep_ms has started, so the failure happens while a
 * long task runs. */
static void *open_when_sleeping(void *arg) {
  (void)arg;
  for (int i = 0; i < 10000 && tgt_calls(TGT_SLEEP) == 0; i++) tgt_sleep_ms(1);
  tgt_sleep_ms(5);
  tgt_gate_open(0);
  return NULL;
}

Test(sched, failure_cancels_running_tasks, .init = setup, .fini = teardown) {
  tg_node s = tg_call(g, "sleep_ms", 1, tg_arg_value(tg_int(20000)));
  tg_node gt = tg_call(g, "gate", 1, tg_arg_value(tg_int(0)));
  tg_node bad = keyed("fail", "bad", (tg_arg[]){tg_arg_node(gt)}, 1, -1);
  tg_node out = tg_call(g, "pack", 2, tg_arg_node(s), tg_arg_node(bad));
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, open_when_sleeping, NULL), 0);
  tg_compute_opts o = tgt_opts("threads", 2, NULL);
  tg_value *v = NULL;
  double t0 = tgt_now();
  int rc = tg_compute(g, &out, 1, &o, &v);
  double dt = tgt_now() - t0;
  pthread_join(th, NULL);
  cr_assert_eq(rc, TG_ETASK, "%s", tg_err_name(rc));
  cr_assert_lt(dt, 3.0, "returned after %.3f s", dt);
  cr_assert_str_eq(tg_graph_errmsg(g),
                   "task 'bad' failed: TG_EINVAL: always fails");
  cr_assert_eq(atomic_load(&tgt.sleep_cancelled), 1);
}

/* ---- order ---------------------------------------------------------------- */

/* Two chains of seq() joined at the end: depth-first order finishes one
 * branch before starting the other, and sync repeats the same order. */
Test(sched, sync_order_depth_first_and_fixed, .init = setup,
     .fini = teardown) {
  enum { L = 5 };
  tg_node a[L], b[L];
  a[0] = tg_call(g, "seq", 0);
  b[0] = tg_call(g, "seq", 0);
  for (int i = 1; i < L; i++) {
    a[i] = tg_call(g, "seq", 1, tg_arg_node(a[i - 1]));
    b[i] = tg_call(g, "seq", 1, tg_arg_node(b[i - 1]));
  }
  tg_arg args[2 * L];
  for (int i = 0; i < L; i++) {
    args[i] = tg_arg_node(a[i]);
    args[L + i] = tg_arg_node(b[i]);
  }
  tg_node out = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "pack", args, 2 * L, NULL, &out), TG_OK);
  tg_compute_opts o = tgt_opts("sync", 1, NULL);
  tg_value *first = NULL, *second = NULL;
  cr_assert_eq(tg_compute(g, &out, 1, &o, &first), TG_OK);
  atomic_store(&tgt.seq, 0);
  cr_assert_eq(tg_compute(g, &out, 1, &o, &second), TG_OK);
  cr_assert(tg_value_equal(first, second), "sync order changed");
  int64_t a0 = tg_value_int(tg_list_get(first, 0));
  int64_t b0 = tg_value_int(tg_list_get(first, L));
  cr_assert(a0 == 0 || b0 == 0);
  for (int i = 1; i < L; i++) {
    cr_assert_eq(tg_value_int(tg_list_get(first, i)), a0 + i,
                 "chain a not run as one branch");
    cr_assert_eq(tg_value_int(tg_list_get(first, L + i)), b0 + i,
                 "chain b not run as one branch");
  }
  tg_value_unref(first);
  tg_value_unref(second);
}

/* ---- memory ---------------------------------------------------------------- */

/* 100,000 leaves, summed pairwise: 199,999 tasks. */
static tg_node leaf_tree(size_t n) {
  tg_node *level = malloc(n * sizeof *level);
  for (size_t i = 0; i < n; i++)
    level[i] = tg_call(g, "leaf", 1, tg_arg_value(tg_int((int64_t)i)));
  while (n > 1) {
    size_t m = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
      level[m++] = tg_call(g, "combine", 2, tg_arg_node(level[i]),
                           tg_arg_node(level[i + 1]));
    if (n % 2) level[m++] = level[n - 1];
    n = m;
  }
  tg_node root = level[0];
  free(level);
  cr_assert_neq(root, TG_NODE_NONE, "%s", tg_graph_errmsg(g));
  return root;
}

static void check_peak(const char *backend, unsigned workers, size_t bound) {
  const size_t n = 100000;
  tg_node root = leaf_tree(n);
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts(backend, workers, &st);
  atomic_store(&tgt.peak, 0);
  tg_value *v = NULL;
  int rc = tg_compute(g, &root, 1, &o, &v);
  cr_assert_eq(rc, TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tgt_array_first(v), (int64_t)(n * (n - 1) / 2));
  cr_assert_eq(st.tasks_total, 2 * n - 1);
  cr_assert_eq(st.tasks_run, 2 * n - 1);
  cr_assert_leq(st.peak_live, bound, "%s/%u: peak_live %zu", backend, workers,
                st.peak_live);
  cr_assert_geq(st.peak_live, 2);
  long peak = atomic_load(&tgt.peak);
  cr_assert_leq(peak, (long)bound, "%s/%u: %ld values alive at once", backend,
                workers, peak);
  cr_assert_eq(atomic_load(&tgt.live), 1, "only the result is alive");
  tg_value_unref(v);
  cr_assert_eq(atomic_load(&tgt.live), 0);
}

/* The tree has 17 levels. A depth-first order keeps about one pending
 * value per level on the branch each worker is in (measured: 18 on sync,
 * 34 on two workers, 62 on four), so 16 per worker cannot hold; allow 24
 * per worker. A breadth-first order would keep tens of thousands. */
Test(sched, peak_live_map_reduce_threads2, .init = setup, .fini = teardown,
     .timeout = 60) {
  check_peak("threads", 2, 24 * 2);
}

Test(sched, peak_live_map_reduce_threads4, .init = setup, .fini = teardown,
     .timeout = 60) {
  check_peak("threads", 4, 24 * 4);
}

Test(sched, peak_live_map_reduce_sync, .init = setup, .fini = teardown,
     .timeout = 60) {
  check_peak("sync", 1, 24);
}

/* Outputs stay alive; other intermediates go as soon as consumed. */
Test(sched, intermediates_released, .init = setup, .fini = teardown) {
  tg_node a = tg_call(g, "leaf", 1, tg_arg_value(tg_int(1)));
  tg_node b = tg_call(g, "leaf", 1, tg_arg_value(tg_int(2)));
  tg_node c = tg_call(g, "combine", 2, tg_arg_node(a), tg_arg_node(b));
  tg_node d = tg_call(g, "combine", 2, tg_arg_node(c), tg_arg_node(c));
  tg_node outs[2] = {d, a};
  tg_value *res[2];
  tg_compute_opts o = tgt_opts("threads", 2, NULL);
  cr_assert_eq(tg_compute(g, outs, 2, &o, res), TG_OK);
  cr_assert_eq(tgt_array_first(res[0]), 6);
  cr_assert_eq(tgt_array_first(res[1]), 1);
  cr_assert_eq(atomic_load(&tgt.live), 2);
  tg_value_unref(res[0]);
  tg_value_unref(res[1]);
  cr_assert_eq(atomic_load(&tgt.live), 0);
}

/* Leaves of a failed compute are all released too. */
Test(sched, failure_releases_everything, .init = setup, .fini = teardown) {
  tg_arg args[101];
  for (int i = 0; i < 100; i++)
    args[i] = tg_arg_node(tg_call(g, "leaf", 1, tg_arg_value(tg_int(i))));
  args[100] = tg_arg_node(tg_call(g, "fail", 0));
  tg_node out = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "pack", args, 101, NULL, &out), TG_OK);
  for (int b = 0; b < 2; b++) {
    tg_value *v = NULL;
    tg_compute_opts o = tgt_opts(b ? "threads" : "sync", 2, NULL);
    cr_assert_eq(tg_compute(g, &out, 1, &o, &v), TG_ETASK);
    cr_assert_eq(atomic_load(&tgt.live), 0);
  }
}

/* ---- stats ------------------------------------------------------------------ */

Test(sched, stats_without_failure_are_exact, .init = setup, .fini = teardown) {
  /* 10 independent incs into a sum, plus 5 unrelated nodes (culled). */
  tg_arg args[10];
  for (int i = 0; i < 10; i++)
    args[i] = tg_arg_node(tg_call(g, "inc", 1, tg_arg_value(tg_int(i))));
  tg_node total = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "sum_args", args, 10, NULL, &total), TG_OK);
  for (int i = 0; i < 5; i++) tg_call(g, "counted", 1, tg_arg_node(total));
  for (int b = 0; b < 3; b++) {
    unsigned w = b == 2 ? 8 : 2;
    tg_compute_stats st;
    memset(&st, 0x5a, sizeof st);
    tg_compute_opts o = tgt_opts(b ? "threads" : "sync", w, &st);
    int rc;
    cr_assert_eq(tgt_compute_int(g, total, &o, &rc), 55);
    cr_assert_eq(st.tasks_total, 11);
    cr_assert_eq(st.tasks_run, 11);
    cr_assert_eq(st.tasks_cached, 0);
    cr_assert_eq(st.tasks_failed, 0);
    cr_assert_eq(st.tasks_skipped, 0);
    cr_assert_eq(st.failed_node, TG_NODE_NONE);
    cr_assert_geq(st.peak_live, 1);
    cr_assert_leq(st.peak_live, 11);
    cr_assert_gt(st.wall_seconds, 0.0);
    cr_assert_lt(st.wall_seconds, 5.0);
  }
  cr_assert_eq(tgt_calls(TGT_COUNTED), 0);
}

/* Workers are numbered 0..workers-1. */
Test(sched, worker_index_in_range, .init = setup, .fini = teardown) {
  enum { N = 64 };
  tg_arg args[N];
  for (int i = 0; i < N; i++)
    args[i] = tg_arg_node(tg_call(g, "worker", 0));
  tg_node out = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "pack", args, N, NULL, &out), TG_OK);
  tg_value *v = NULL;
  tg_compute_opts o = tgt_opts("threads", 3, NULL);
  cr_assert_eq(tg_compute(g, &out, 1, &o, &v), TG_OK);
  for (int i = 0; i < N; i++) {
    int64_t w = tg_value_int(tg_list_get(v, (size_t)i));
    cr_assert(w >= 0 && w < 3, "worker %lld", (long long)w);
  }
  tg_value_unref(v);
  o = tgt_opts("sync", 1, NULL);
  cr_assert_eq(tg_compute(g, &out, 1, &o, &v), TG_OK);
  for (int i = 0; i < N; i++)
    cr_assert_eq(tg_value_int(tg_list_get(v, (size_t)i)), 0);
  tg_value_unref(v);
}
