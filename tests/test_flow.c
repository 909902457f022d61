/* tests/test_flow.c: how data flows on the tcp backend, with two
 * one-thread workers forked by the test (tg_worker_serve on loopback):
 * a result whose dependents all run where it was made never crosses the
 * parent's socket; a chain's parent traffic does not grow with its
 * length; a tree reduction keeps few results alive at once (the plan's
 * memory order holds out of process); results equal sync's on random
 * DAGs. Every worker is killed and reaped after each test. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "test_funcs.h"
#include "test_proc.h"

#define NW 2

static pid_t pids[NW];
static char eps[NW][128];
static tg_registry *reg;

static void child(int fd) {
  tg_registry *r = tgt_registry_new();
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                      .nthreads = 1, .stop = tproc_stop_on_term(),
                      .on_ready = tproc_say_ready, .ctx = &fd};
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_worker_serve(r, &o, &err);
  if (rc) dprintf(fd, "ERROR %s\n", err.msg);
  _exit(rc ? 1 : 0);
}

static void start_workers(void) {
  for (int i = 0; i < NW; i++) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pids[i] = tproc_fork();
    if (pids[i] == 0) {
      close(p[0]);
      child(p[1]);
    }
    close(p[1]);
    tproc_read_line(p[0], eps[i], sizeof eps[i], 30);
    close(p[0]);
    cr_assert_eq(strncmp(eps[i], "tcp://", 6), 0, "worker %d: %s", i, eps[i]);
  }
}

static void setup(void) {
  reg = tgt_registry_new();
  cr_assert_not_null(reg);
  start_workers();
}

static void teardown(void) {
  for (int i = 0; i < NW; i++) {
    if (pids[i] <= 0) continue;
    kill(pids[i], SIGKILL);
    int st;
    cr_expect_eq(waitpid(pids[i], &st, 0), pids[i]);
    pids[i] = 0;
  }
  cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "a child process is left");
  tg_registry_free(reg);
}

TestSuite(flow, .init = setup, .fini = teardown, .timeout = 300);

/* An executor on both workers, once both are connected (a run starts as
 * soon as one is, and the tests count where things went). */
static tg_executor *executor(void) {
  const char *addr[NW];
  for (int i = 0; i < NW; i++) addr[i] = eps[i];
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                        .connect = addr, .nconnect = NW};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s", err.msg);
  tg_remote_stats st = {0};
  for (int i = 0; i < 30000; i++) {
    cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
    if (st.workers_ready == NW) break;
    tgt_sleep_ms(1);
  }
  cr_assert_eq(st.workers_ready, NW, "the workers did not connect");
  return ex;
}

/* Compute out on ex; its int result (fails the test otherwise). */
static int64_t run_int(tg_graph *g, tg_node out, tg_executor *ex, tg_compute_stats *st) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .stats = st};
  tg_value *v = NULL;
  int rc = tg_compute(g, &out, 1, &o, &v);
  cr_assert_eq(rc, TG_OK, "%s: %s", tg_err_name(rc), tg_graph_errmsg(g));
  cr_assert_eq(tg_value_type(v), TG_INT);
  int64_t x = tg_value_int(v);
  tg_value_unref(v);
  return x;
}

/* A binary tree reduction of n leaves identity(i); its root. */
static tg_node tree(tg_graph *g, int n) {
  tg_node *lv = malloc((size_t)n * sizeof *lv);
  cr_assert_not_null(lv);
  for (int i = 0; i < n; i++) lv[i] = tg_call(g, "identity", 1, tg_arg_value(tg_int(i)));
  for (int m = n; m > 1; m /= 2)
    for (int i = 0; i < m / 2; i++)
      lv[i] = tg_call(g, "add", 2, tg_arg_node(lv[2 * i]), tg_arg_node(lv[2 * i + 1]));
  tg_node root = lv[0];
  free(lv);
  return root;
}

static void tree_peak(int n) {
  tg_executor *ex = executor();
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node root = tree(g, n);
  tg_compute_stats st = {0};
  cr_assert_eq(run_int(g, root, ex, &st), (int64_t)n * (n - 1) / 2);
  fprintf(stderr, "tree %d: peak live %zu\n", n, st.peak_live);
  cr_expect_leq(st.peak_live, 64, "tree of %d leaves: %zu results alive at once", n,
                st.peak_live);
  tg_graph_free(g);
  tg_executor_free(ex);
}

Test(flow, tree_4096_keeps_few_results_alive) { tree_peak(4096); }
Test(flow, tree_65536_keeps_few_results_alive) { tree_peak(65536); }
