/* tests/test_flow.c: how data flows on the tcp backend, with two
 * one-thread workers forked by the test (tg_worker_serve on loopback):
 * a result whose dependents all run where it was made never crosses the
 * parent's socket; a chain's parent traffic does not grow with its
 * length (it is sent ahead whole and heard of once); a tree reduction
 * keeps few results alive at once (the plan's memory order holds out of
 * process); a failed link fails the chain with its own message, a
 * retried one is counted; a chain survives the loss of the worker
 * running it; results equal sync's on random DAGs. Every worker is
 * killed and reaped after each test. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "offload/engine.h" /* OFL_SLACK */
#include "tgraph/remote.h"
#include "test_funcs.h"
#include "test_proc.h"

#define NW 2

/* len(list): its length. */
static int fn_len(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (tg_value_type(a[0]) != TG_LIST) return tg_task_fail(ctx, TG_ETYPE, "len(list)");
  *out = tg_int((int64_t)tg_list_len(a[0]));
  return *out ? TG_OK : TG_ENOMEM;
}

static char pid_file[64]; /* where slow_inc writes its process id */

/* slow_inc(x): x + 1 after 2 ms; the first call of a process writes the
 * process id to pid_file (the test learns which worker runs a chain). */
static int fn_slow_inc(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  static bool told;
  if (tg_value_type(a[0]) != TG_INT) return tg_task_fail(ctx, TG_ETYPE, "slow_inc(int)");
  if (!told && pid_file[0]) {
    told = true;
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%s.tmp", pid_file);
    FILE *f = fopen(tmp, "w");
    if (f) {
      fprintf(f, "%d\n", (int)getpid());
      fclose(f);
      rename(tmp, pid_file);
    }
  }
  tgt_sleep_ms(2);
  *out = tg_int(tg_value_int(a[0]) + 1);
  return *out ? TG_OK : TG_ENOMEM;
}

/* slow_sum(...): the sum of its int arguments after 10 ms. */
static int fn_slow_sum(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  int64_t s = 0;
  for (size_t i = 0; i < n; i++) {
    if (tg_value_type(a[i]) != TG_INT) return tg_task_fail(ctx, TG_ETYPE, "slow_sum(int...)");
    s += tg_value_int(a[i]);
  }
  tgt_sleep_ms(10);
  *out = tg_int(s);
  return *out ? TG_OK : TG_ENOMEM;
}

static tg_registry *make_reg(void) {
  tg_registry *r = tgt_registry_new();
  tg_func_def d[] = {
      {TG_FUNC_DEF_V1, "len", "1", fn_len, TG_FUNC_PURE, 1, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "slow_inc", "1", fn_slow_inc, TG_FUNC_PURE, 1, NULL, NULL, 0, NULL,
       NULL},
      {TG_FUNC_DEF_V1, "slow_sum", "1", fn_slow_sum, TG_FUNC_PURE, -1, NULL, NULL, 0, NULL,
       NULL},
  };
  for (size_t i = 0; r && i < sizeof d / sizeof d[0]; i++)
    if (tg_registry_add(r, &d[i], NULL) != TG_OK) {
      tg_registry_free(r);
      r = NULL;
    }
  return r;
}

static pid_t pids[NW];
static char eps[NW][128];
static tg_registry *reg;

static void child(int fd) {
  tg_registry *r = make_reg();
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
  snprintf(pid_file, sizeof pid_file, "/tmp/tg_flow_%d.pid", (int)getpid());
  unlink(pid_file);
  reg = make_reg();
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
  unlink(pid_file);
  tg_registry_free(reg);
}

TestSuite(flow, .init = setup, .fini = teardown, .timeout = 300);

/* An executor on both workers, once both are connected (a run starts as
 * soon as one is, and the tests count where things went). */
static tg_executor *executor_keep(size_t keep_min) {
  const char *addr[NW];
  for (int i = 0; i < NW; i++) addr[i] = eps[i];
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                        .connect = addr, .nconnect = NW, .keep_min = keep_min};
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

static tg_executor *executor(void) { return executor_keep(0); }

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

static void tree_peak(int n) {
  tg_executor *ex = executor();
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node root = tgt_add_tree(g, "identity", n);
  tg_compute_stats st = {0};
  cr_assert_eq(run_int(g, root, ex, &st), (int64_t)n * (n - 1) / 2);
  cr_expect_leq(st.peak_live, 64, "tree of %d leaves: %zu results alive at once", n,
                st.peak_live);
  tg_graph_free(g);
  tg_executor_free(ex);
}

Test(flow, tree_4096_keeps_few_results_alive) { tree_peak(4096); }
Test(flow, tree_65536_keeps_few_results_alive) { tree_peak(65536); }

/* G groups of L leaves inc(i), each group summed by slow_sum, and a sum of
 * the groups' sums: run one task at a time in plan order, G - 1 sums wait
 * for the last while its L leaves are alive (sync's peak_live, SEQ); the
 * bound counts a sum's result beside its inputs (PEAK, one more). Out of
 * process, leaves are held back once PEAK plus OFL_SLACK per worker thread are
 * alive; while a group's sum is out (10 ms on one worker, the other idle,
 * the leaves of the next group held back) the workers would idle, and the
 * bound stretches by half of PEAK: the next leaves run meanwhile, and
 * alive goes no further. */
Test(flow, leaves_run_while_a_sum_is_out) {
  enum { G = 24, L = 200, SEQ = G - 1 + L, PEAK = SEQ + 1, SLACK = OFL_SLACK * NW };
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node sums[G], leaves[L];
  for (int k = 0; k < G; k++) {
    for (int i = 0; i < L; i++)
      leaves[i] = tg_call(g, "inc", 1, tg_arg_value(tg_int(k * L + i)));
    tg_arg args[L];
    for (int i = 0; i < L; i++) args[i] = tg_arg_node(leaves[i]);
    cr_assert_eq(tg_graph_add(g, "slow_sum", args, L, NULL, &sums[k]), TG_OK, "%s",
                 tg_graph_errmsg(g));
  }
  tg_arg args[G];
  for (int k = 0; k < G; k++) args[k] = tg_arg_node(sums[k]);
  tg_node total;
  cr_assert_eq(tg_graph_add(g, "sum_args", args, G, NULL, &total), TG_OK, "%s",
               tg_graph_errmsg(g));
  const int64_t want = (int64_t)G * L * (G * L + 1) / 2;
  tg_compute_stats st = {0};
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  int rc;
  cr_assert_eq(tgt_compute_int(g, total, &o, &rc), want, "%s", tg_graph_errmsg(g));
  cr_assert_eq(st.peak_live, SEQ, "sync: %zu alive at once", st.peak_live);
  tg_executor *ex = executor();
  st = (tg_compute_stats){0};
  cr_assert_eq(run_int(g, total, ex, &st), want);
  cr_expect_eq(st.tasks_run, (size_t)G * L + G + 1);
  cr_expect_gt(st.peak_live, PEAK + SLACK, "%zu alive at once: the bound never stretched",
               st.peak_live);
  cr_expect_leq(st.peak_live, PEAK + PEAK / 2 + SLACK, "%zu alive at once", st.peak_live);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* ---- data stays where it was made -------------------------------------------- */

static tg_remote_stats stats(tg_executor *ex) {
  tg_remote_stats st;
  cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
  return st;
}

/* A chain of n inc calls from 0; the parent's traffic of its compute. */
static tg_remote_stats chain(tg_executor *ex, int n) {
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  for (int i = 1; i < n; i++) x = tg_call(g, "inc", 1, tg_arg_node(x));
  tg_remote_stats a = stats(ex);
  cr_assert_eq(run_int(g, x, ex, NULL), n);
  tg_remote_stats z = stats(ex);
  tg_graph_free(g);
  return (tg_remote_stats){.bytes_received = z.bytes_received - a.bytes_received,
                           .bytes_sent = z.bytes_sent - a.bytes_sent,
                           .tasks_sent = z.tasks_sent - a.tasks_sent,
                           .batches_sent = z.batches_sent - a.batches_sent,
                           .results_kept = z.results_kept - a.results_kept,
                           .values_moved = z.values_moved - a.values_moved};
}

Test(flow, chain_traffic_does_not_grow_with_its_length) {
  tg_executor *ex = executor();
  tg_remote_stats s = chain(ex, 100), l = chain(ex, 10000);
  /* Every link but the last stays where it was made; the parent hears
   * of the chain once, from its last link. */
  cr_expect_eq(s.results_kept, 99);
  cr_expect_eq(l.results_kept, 9999);
  cr_expect_eq(l.bytes_received, s.bytes_received, "chain of 10,000: %llu bytes received, "
               "of 100: %llu", (unsigned long long)l.bytes_received,
               (unsigned long long)s.bytes_received);
  cr_expect_eq(l.values_moved, 0);
  cr_expect_eq(l.tasks_sent, 10000);
  /* Sent in full messages (OFL_BATCH_MAX tasks), not one per link. */
  cr_expect_leq(l.batches_sent, 10000 / 512 + 2, "%llu batches",
                (unsigned long long)l.batches_sent);
  tg_executor_free(ex);
}

/* G sums of L quick inc leaves each and their sum_args, computed twice
 * (the first measures inc: an unmeasured task is not pulled); the
 * parent's traffic of the second. */
static tg_remote_stats groups(tg_executor *ex, int G, int L) {
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg *leaves = malloc((size_t)L * sizeof *leaves), *sums = malloc((size_t)G * sizeof *sums);
  cr_assert(leaves && sums);
  int64_t want = 0;
  for (int k = 0; k < G; k++) {
    for (int i = 0; i < L; i++) {
      leaves[i] = tg_arg_node(tg_call(g, "inc", 1, tg_arg_value(tg_int(k * L + i))));
      want += k * L + i + 1;
    }
    tg_node sk;
    cr_assert_eq(tg_graph_add(g, "sum_args", leaves, (size_t)L, NULL, &sk), TG_OK);
    sums[k] = tg_arg_node(sk);
  }
  tg_node total;
  cr_assert_eq(tg_graph_add(g, "sum_args", sums, (size_t)G, NULL, &total), TG_OK);
  cr_assert_eq(run_int(g, total, ex, NULL), want);
  tg_remote_stats a = stats(ex);
  cr_assert_eq(run_int(g, total, ex, NULL), want);
  tg_remote_stats z = stats(ex);
  free(leaves);
  free(sums);
  tg_graph_free(g);
  return (tg_remote_stats){.bytes_received = z.bytes_received - a.bytes_received,
                           .tasks_sent = z.tasks_sent - a.tasks_sent,
                           .results_kept = z.results_kept - a.results_kept,
                           .values_moved = z.values_moved - a.values_moved};
}

/* A sum's quick inputs go to the worker that makes the first of them,
 * the sum behind them (pulled along with it: only the sum replies; or,
 * while the run has no room for them all, each kept there for it): no
 * leaf's result crosses the parent's socket, and none moves between
 * workers. With at most 63 pulled (before), a sum of 100 had its leaves
 * come back one by one. */
Test(flow, sum_inputs_stay_where_they_were_made) {
  tg_executor *ex = executor();
  enum { G = 400 };
  tg_remote_stats s = groups(ex, G, 40), l = groups(ex, G, 100);
  cr_expect_eq(s.tasks_sent, G * 41 + 1);
  cr_expect_eq(l.tasks_sent, G * 101 + 1);
  cr_expect_eq(s.results_kept, G * 40, "%llu kept", (unsigned long long)s.results_kept);
  cr_expect_eq(l.results_kept, G * 100, "%llu kept", (unsigned long long)l.results_kept);
  cr_expect_eq(s.values_moved, 0);
  cr_expect_eq(l.values_moved, 0);
  tg_executor_free(ex);
}

/* G sums (sum_fn) of L quick leaves fail_first(0, i) (which return i),
 * the leaf `bad` (its index among them all, -1: none) fail_first(1, i)
 * (which fails: "attempt 0 fails"), and their total; *leaf: bad's node. */
static tg_graph *fold_groups(int G, int L, int bad, const char *sum_fn, int64_t *want,
                             tg_node *total, tg_node *leaf) {
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg *leaves = malloc((size_t)L * sizeof *leaves), *sums = malloc((size_t)G * sizeof *sums);
  cr_assert(leaves && sums);
  *want = 0;
  for (int k = 0; k < G; k++) {
    for (int i = 0; i < L; i++) {
      int x = k * L + i;
      tg_node n = tg_call(g, "fail_first", 2, tg_arg_value(tg_int(x == bad)),
                          tg_arg_value(tg_int(x)));
      if (x == bad) *leaf = n;
      leaves[i] = tg_arg_node(n);
      *want += x;
    }
    tg_node sk;
    cr_assert_eq(tg_graph_add(g, sum_fn, leaves, (size_t)L, NULL, &sk), TG_OK);
    sums[k] = tg_arg_node(sk);
  }
  cr_assert_eq(tg_graph_add(g, "sum_args", sums, (size_t)G, NULL, total), TG_OK);
  free(leaves);
  free(sums);
  return g;
}

/* A sum's quick leaves go folded into its record (no record of their own
 * here): one whose call fails there fails the compute with its own
 * message, as the failing task (not the sum, whose input failed). */
Test(flow, a_folded_leaf_fails_with_its_own_message) {
  tg_executor *ex = executor();
  enum { G = 200, L = 40 }; /* a sum pulls at most half the run's sequential peak */
  int64_t want;
  tg_node total, leaf = TG_NODE_NONE;
  tg_graph *g = fold_groups(G, L, -1, "sum_args", &want, &total, &leaf);
  cr_assert_eq(run_int(g, total, ex, NULL), want); /* the leaves measured quick */
  tg_remote_stats a = stats(ex);
  cr_assert_eq(run_int(g, total, ex, NULL), want);
  tg_remote_stats z = stats(ex);
  cr_expect_eq(z.results_kept - a.results_kept, G * L, "%llu kept",
               (unsigned long long)(z.results_kept - a.results_kept));
  tg_graph_free(g);
  g = fold_groups(G, L, 17 * L + 23, "sum_args", &want, &total, &leaf);
  tg_compute_stats st = {0};
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V4, .executor = ex, .stats = &st};
  tg_value *v = NULL;
  int rc = tg_compute(g, &total, 1, &o, &v);
  cr_expect_eq(rc, TG_ETASK, "%s", tg_err_name(rc));
  cr_expect_null(v);
  cr_expect_eq(st.failed_node, leaf, "failed: node %u, not the leaf %u", st.failed_node, leaf);
  char key[64];
  cr_assert_gt(tg_node_key(g, leaf, key, sizeof key), 0);
  char expect[200];
  snprintf(expect, sizeof expect, "task '%s' failed: TG_EIO: attempt 0 fails", key);
  cr_expect_str_eq(tg_graph_errmsg(g), expect);
  cr_expect_eq(st.tasks_failed, 1, "%zu", st.tasks_failed);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* x = pack(0..299), used by sum(x) and len(x), whose results add(...)
 * sums; x is an output too when x_out. The parent's traffic. */
static tg_remote_stats diamond(tg_executor *ex, bool x_out) {
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg items[300];
  for (int i = 0; i < 300; i++) items[i] = tg_arg_value(tg_int(i));
  tg_node x = TG_NODE_NONE, y, z;
  cr_assert_eq(tg_graph_add(g, "pack", items, 300, NULL, &x), TG_OK);
  y = tg_call(g, "sum", 1, tg_arg_node(x));
  z = tg_call(g, "len", 1, tg_arg_node(x));
  tg_node outs[2] = {tg_call(g, "add", 2, tg_arg_node(y), tg_arg_node(z)), x};
  tg_value *res[2] = {NULL, NULL};
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  tg_remote_stats a = stats(ex);
  int rc = tg_compute(g, outs, x_out ? 2 : 1, &o, res);
  cr_assert_eq(rc, TG_OK, "%s: %s", tg_err_name(rc), tg_graph_errmsg(g));
  tg_remote_stats e = stats(ex);
  cr_assert_eq(tg_value_int(res[0]), 299 * 300 / 2 + 300);
  if (x_out) cr_assert_eq(tg_list_len(res[1]), 300);
  tg_value_unref(res[0]);
  tg_value_unref(res[1]);
  tg_graph_free(g);
  return (tg_remote_stats){.bytes_received = e.bytes_received - a.bytes_received,
                           .values_moved = e.values_moved - a.values_moved,
                           .results_kept = e.results_kept - a.results_kept};
}

Test(flow, result_used_by_two_dependents_on_one_worker_stays_there) {
  tg_executor *ex = executor();
  /* 300 ints take 600 bytes at least (a tag and a byte each). */
  tg_remote_stats back = diamond(ex, true), kept = diamond(ex, false);
  cr_expect_geq(back.bytes_received, 600, "x, an output, came back: %llu bytes",
                (unsigned long long)back.bytes_received);
  cr_expect_lt(kept.bytes_received, 600, "x crossed the parent's socket: %llu bytes",
               (unsigned long long)kept.bytes_received);
  cr_expect_eq(kept.values_moved, 0);
  /* x, and y and z: pulled there with add, their one dependent, which
   * runs there too (none of them crosses a socket). */
  cr_expect_eq(kept.results_kept, 3, "%llu results kept",
               (unsigned long long)kept.results_kept);
  tg_executor_free(ex);
}

/* ---- results equal sync's ---------------------------------------------------- */

/* A random DAG of n nodes over inc, add, identity, sum_args and
 * constants, biased to the last few nodes (chains, diamonds, trees);
 * outputs: nout random nodes. */
static void random_dag(tg_graph *g, uint64_t *rng, int n, tg_node *outs, int nout) {
  tg_node *v = malloc((size_t)n * sizeof *v);
  cr_assert_not_null(v);
  for (int i = 0; i < n; i++) {
    int kind = i == 0 ? 0 : (int)tgt_below(rng, 5);
#define PICK() tg_arg_node(v[i - 1 - (int)tgt_below(rng, i < 4 ? (uint64_t)i : 4)])
    if (kind == 0) v[i] = tg_call(g, "identity", 1, tg_arg_value(tg_int((int64_t)tgt_below(rng, 100))));
    else if (kind == 1) v[i] = tg_call(g, "inc", 1, PICK());
    else if (kind == 2) v[i] = tg_call(g, "add", 2, PICK(), PICK());
    else if (kind == 3) v[i] = tg_call(g, "add", 2, PICK(), tg_arg_value(tg_int(i)));
    else {
      tg_arg a[3] = {PICK(), PICK(), PICK()};
      cr_assert_eq(tg_graph_add(g, "sum_args", a, 3, NULL, &v[i]), TG_OK);
    }
#undef PICK
    cr_assert_neq(v[i], TG_NODE_NONE);
  }
  for (int k = 0; k < nout; k++) outs[k] = v[k == 0 ? n - 1 : (int)tgt_below(rng, (uint64_t)n)];
  free(v);
}

static void random_dags(size_t keep_min) {
  tg_executor *ex = executor_keep(keep_min);
  uint64_t rng = 12345;
  for (int round = 0; round < 200; round++) {
    tg_graph *g = NULL;
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    int n = 2 + (int)tgt_below(&rng, 60), nout = 1 + (int)tgt_below(&rng, 3);
    tg_node outs[3];
    random_dag(g, &rng, n, outs, nout);
    tg_value *want[3] = {0}, *got[3] = {0};
    tg_compute_opts so = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync"};
    tg_compute_opts to = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
    cr_assert_eq(tg_compute(g, outs, (size_t)nout, &so, want), TG_OK);
    int rc = tg_compute(g, outs, (size_t)nout, &to, got);
    cr_assert_eq(rc, TG_OK, "round %d: %s: %s", round, tg_err_name(rc), tg_graph_errmsg(g));
    for (int k = 0; k < nout; k++) {
      cr_assert_eq(tg_value_int(got[k]), tg_value_int(want[k]), "round %d, output %d", round, k);
      tg_value_unref(want[k]);
      tg_value_unref(got[k]);
    }
    tg_graph_free(g);
  }
  tg_executor_free(ex);
}

Test(flow, random_dags_match_sync) { random_dags(0); }
/* Every result stays on its worker unless it must come back. */
Test(flow, random_dags_match_sync_all_kept) { random_dags(1); }

/* ---- failures inside a chain --------------------------------------------------- */

/* A chain of 60 links whose 30th is fail(x) (or, flaky, fail_first(2, x)
 * with 2 retries): the compute's code and message, and stats. */
static int broken_chain(tg_executor *ex, bool flaky, int64_t *out, tg_compute_stats *st,
                        char *msg, size_t size) {
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  for (int i = 1; i < 60; i++) {
    if (i != 30) {
      x = tg_call(g, "inc", 1, tg_arg_node(x));
    } else if (!flaky) {
      x = tg_call(g, "fail", 1, tg_arg_node(x));
    } else {
      tg_node_opts no = {TG_NODE_OPTS_V1, NULL, 2, -1, 0, 0};
      tg_arg a[2] = {tg_arg_value(tg_int(2)), tg_arg_node(x)};
      cr_assert_eq(tg_graph_add(g, "fail_first", a, 2, &no, &x), TG_OK);
    }
  }
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V4, .executor = ex, .stats = st};
  tg_value *v = NULL;
  int rc = tg_compute(g, &x, 1, &o, &v);
  *out = v ? tg_value_int(v) : -1;
  tg_value_unref(v);
  snprintf(msg, size, "%s", tg_graph_errmsg(g));
  tg_graph_free(g);
  return rc;
}

Test(flow, a_failed_link_fails_the_chain_and_a_retried_one_does_not) {
  tg_executor *ex = executor();
  int64_t r;
  char msg[300];
  tg_compute_stats st = {0};
  int rc = broken_chain(ex, false, &r, &st, msg, sizeof msg);
  cr_expect_eq(rc, TG_ETASK, "%s", tg_err_name(rc));
  cr_expect_str_eq(msg, "task 'fail#30' failed: TG_EINVAL: always fails");
  cr_expect_eq(st.tasks_failed, 1);
  cr_expect_eq(st.tasks_run, 31, "%zu", st.tasks_run); /* 30 inc, 1 fail */
  /* The links after it ran on the worker (sent ahead) but were not
   * called: their input failed. */
  cr_expect_eq(st.tasks_skipped, 29, "%zu", st.tasks_skipped);
  memset(&st, 0, sizeof st);
  rc = broken_chain(ex, true, &r, &st, msg, sizeof msg);
  cr_expect_eq(rc, TG_OK, "%s: %s", tg_err_name(rc), msg);
  cr_expect_eq(r, 59, "%lld", (long long)r); /* fail_first returns x: one link adds nothing */
  cr_expect_eq(st.tasks_run, 62, "%zu", st.tasks_run); /* 2 retries */
  cr_expect_eq(st.attempts_failed, 2, "%zu", st.attempts_failed);
  tg_executor_free(ex);
}

/* ---- a worker lost under a chain ------------------------------------------------ */

typedef struct bg_compute {
  tg_graph *g;
  tg_node out;
  tg_executor *ex;
  int rc;
  int64_t v;
} bg_compute;

static void *bg_main(void *arg) {
  bg_compute *c = arg;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = c->ex};
  tg_value *v = NULL;
  c->rc = tg_compute(c->g, &c->out, 1, &o, &v);
  c->v = v ? tg_value_int(v) : -1;
  tg_value_unref(v);
  return NULL;
}

Test(flow, a_chain_survives_the_loss_of_its_worker) {
  tg_executor *ex = executor();
  tg_graph *g = NULL;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node x = tg_call(g, "slow_inc", 1, tg_arg_value(tg_int(0)));
  for (int i = 1; i < 200; i++) x = tg_call(g, "slow_inc", 1, tg_arg_node(x));
  bg_compute c = {g, x, ex, -1, -1};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, bg_main, &c), 0);
  /* The chain runs where its first link ran: kill that worker. */
  int victim = -1;
  for (int i = 0; i < 30000 && victim < 0; i++) {
    FILE *f = fopen(pid_file, "r");
    int pid = 0;
    if (f && fscanf(f, "%d", &pid) == 1)
      for (int k = 0; k < NW; k++)
        if (pids[k] == pid) victim = k;
    if (f) fclose(f);
    if (victim < 0) tgt_sleep_ms(1);
  }
  cr_assert_geq(victim, 0, "no worker said it runs the chain");
  tgt_sleep_ms(50); /* some links done there */
  kill(pids[victim], SIGKILL);
  cr_expect_eq(waitpid(pids[victim], NULL, 0), pids[victim]);
  pids[victim] = 0;
  pthread_join(th, NULL);
  cr_expect_eq(c.rc, TG_OK, "%s: %s", tg_err_name(c.rc), tg_graph_errmsg(g));
  cr_expect_eq(c.v, 200);
  tg_remote_stats st = stats(ex);
  cr_expect_eq(st.workers_lost, 1);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* Slow sums of quick leaves folded into their records, two workers: one
 * is killed while some are out. Their leaves go again, on their own or
 * folded again with their sum: the total is right. */
Test(flow, folded_leaves_survive_the_loss_of_their_worker) {
  tg_executor *ex = executor();
  enum { G = 200, L = 20 };
  int64_t want;
  tg_node total, leaf = TG_NODE_NONE;
  tg_graph *g = fold_groups(G, L, -1, "slow_sum", &want, &total, &leaf);
  cr_assert_eq(run_int(g, total, ex, NULL), want); /* the leaves measured quick */
  tg_remote_stats a = stats(ex);
  bg_compute c = {g, total, ex, -1, -1};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, bg_main, &c), 0);
  tgt_sleep_ms(100); /* 2 s of sums over two workers: some done, some out */
  kill(pids[0], SIGKILL);
  cr_expect_eq(waitpid(pids[0], NULL, 0), pids[0]);
  pids[0] = 0;
  pthread_join(th, NULL);
  cr_expect_eq(c.rc, TG_OK, "%s: %s", tg_err_name(c.rc), tg_graph_errmsg(g));
  cr_expect_eq(c.v, want);
  tg_remote_stats z = stats(ex);
  cr_expect_eq(z.workers_lost, 1);
  cr_expect_gt(z.results_kept - a.results_kept, 0, "no leaf went with its sum");
  tg_graph_free(g);
  tg_executor_free(ex);
}
