/* tests/bench/bench_scale.c: the tcp backend with many workers, and the
 * cost of losing one, printed as a markdown table (medians of 3).
 *
 *   bench_scale [--quick]
 *
 *   S1  1,000,000 tiny tasks (1,000 sums of 1,000 inc(i), and their sum:
 *       1,001,001 tasks) dispatched by one driver to 64 loopback workers
 *       (forked processes, one thread each): tasks per second, beside the
 *       same graph on 2 workers measured in the same run. Target: at least
 *       100,000/s.
 *   S2  a worker killed (SIGKILL) mid-run: 4 workers, 200 tasks of 50 ms
 *       (pure: the lost ones run again elsewhere), heartbeat 1 s; the
 *       run's extra time against the same run without the kill, beside
 *       one heartbeat plus the time of the tasks it had in flight (its
 *       thread's one running task and one queued: 2 x 50 ms).
 * --quick shrinks both for a smoke test. Every run checks its answer; the
 * exit status is 1 when one is wrong.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "workloads.h"

#define MAXW 64

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* nap(ms, i): i after ms milliseconds. */
static int fn_nap(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx;
  (void)n;
  int64_t ms = tg_value_int(a[0]);
  nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
  *out = tg_int(tg_value_int(a[1]));
  return *out ? TG_OK : TG_ENOMEM;
}

static tg_registry *make_reg(void) {
  tg_registry *r = bench_registry();
  tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = "nap", .fn_version = "1",
                   .fn = fn_nap, .flags = TG_FUNC_PURE, .nargs = 2};
  if (r && tg_registry_add(r, &d, NULL) != TG_OK) {
    tg_registry_free(r);
    return NULL;
  }
  return r;
}

/* ---- workers ------------------------------------------------------------------ */

static volatile sig_atomic_t child_stop;
static void child_term(int s) { (void)s, child_stop = 1; }
static void child_ready(void *ctx, const char *ep) { dprintf(*(int *)ctx, "%s\n", ep); }

/* Fork n one-thread workers (before any executor exists: a child must not
 * inherit a running one); their addresses in eps. */
static int start_workers(int n, pid_t *pids, char (*eps)[128]) {
  int fds[MAXW];
  for (int i = 0; i < n; i++) {
    int p[2];
    if (pipe(p) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      signal(SIGTERM, child_term);
      tg_registry *reg = make_reg();
      tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                          .nthreads = 1, .stop = &child_stop, .on_ready = child_ready,
                          .ctx = &p[1]};
      int rc = reg ? tg_worker_serve(reg, &o, NULL) : TG_ENOMEM;
      tg_registry_free(reg);
      _exit(rc ? 1 : 0);
    }
    close(p[1]);
    pids[i] = pid;
    fds[i] = p[0];
  }
  int ok = 0;
  for (int i = 0; i < n; i++) {
    size_t k = 0;
    while (k + 1 < 128 && read(fds[i], eps[i] + k, 1) == 1 && eps[i][k] != '\n') k++;
    eps[i][k] = '\0';
    close(fds[i]);
    if (strncmp(eps[i], "tcp://", 6) != 0) ok = -1;
  }
  return ok;
}

static void stop_workers(int n, pid_t *pids) {
  for (int i = 0; i < n; i++)
    if (pids[i] > 0) kill(pids[i], SIGTERM);
  for (int i = 0; i < n; i++)
    if (pids[i] > 0) waitpid(pids[i], NULL, 0);
}

static tg_executor *connect_all(tg_registry *reg, int n, char (*eps)[128], double heartbeat) {
  const char *addr[MAXW];
  for (int i = 0; i < n; i++) addr[i] = eps[i];
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                         .nconnect = (size_t)n, .heartbeat = heartbeat};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  if (tg_executor_new(reg, &eo, &ex, &err) != TG_OK) {
    fprintf(stderr, "bench_scale: %s\n", err.msg);
    return NULL;
  }
  tg_remote_stats st = {0};
  for (int i = 0; i < 6000 && st.workers_ready < (unsigned)n; i++) {
    tg_remote_stats_get(ex, &st);
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  }
  return ex;
}

static int compute(tg_graph *g, tg_node out, tg_executor *ex, tg_value **res) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  return tg_compute(g, &out, 1, &o, res);
}

/* ---- S1 ------------------------------------------------------------------------- */

/* groups sums of per inc(i), and their sum: tasks per second on ex. */
static double s1_once(tg_registry *reg, tg_executor *ex, int groups, int per) {
  tg_graph *g = NULL;
  if (tg_graph_new(reg, &g) != TG_OK) return 0;
  tg_arg *xs = calloc((size_t)per, sizeof *xs), *sums = calloc((size_t)groups, sizeof *sums);
  int64_t want = 0;
  for (int k = 0; k < groups; k++) {
    for (int i = 0; i < per; i++) {
      int64_t v = (int64_t)k * per + i;
      xs[i] = tg_arg_node(tg_call(g, "inc", 1, tg_arg_value(tg_int(v))));
      want += v + 1;
    }
    tg_node s;
    tg_graph_add(g, "sum", xs, (size_t)per, NULL, &s);
    sums[k] = tg_arg_node(s);
  }
  tg_node top;
  tg_graph_add(g, "sum", sums, (size_t)groups, NULL, &top);
  tg_value *r = NULL;
  double t0 = now();
  int rc = compute(g, top, ex, &r);
  double secs = now() - t0;
  bench_check(rc == TG_OK && r && tg_value_int(r) == want, "S1 sum");
  tg_value_unref(r);
  tg_graph_free(g);
  free(xs);
  free(sums);
  return (double)((int64_t)groups * per + groups + 1) / secs;
}

static double s1(tg_registry *reg, int nw, int groups, int per) {
  pid_t pids[MAXW] = {0};
  char eps[MAXW][128];
  double r[3] = {0};
  if (start_workers(nw, pids, eps) == 0) {
    tg_executor *ex = connect_all(reg, nw, eps, 0);
    for (int i = 0; ex && i < 3; i++) r[i] = s1_once(reg, ex, groups, per);
    tg_executor_free(ex);
  } else {
    bench_check(false, "S1 workers did not start");
  }
  stop_workers(nw, pids);
  return bench_median(r, 3);
}

/* ---- S2 ------------------------------------------------------------------------- */

/* ntasks naps of ms on 4 workers; kill one after `kill_at` s (< 0: none):
 * the run's seconds. */
static double s2_once(tg_registry *reg, int ntasks, int ms, double kill_at) {
  enum { NW = 4 };
  pid_t pids[NW] = {0};
  char eps[NW][128];
  double secs = 0;
  if (start_workers(NW, pids, eps) != 0) {
    bench_check(false, "S2 workers did not start");
    stop_workers(NW, pids);
    return 0;
  }
  tg_executor *ex = connect_all(reg, NW, eps, 1.0);
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_arg *xs = calloc((size_t)ntasks, sizeof *xs);
  int64_t want = 0;
  for (int i = 0; i < ntasks; i++) {
    xs[i] = tg_arg_node(tg_call(g, "nap", 2, tg_arg_value(tg_int(ms)), tg_arg_value(tg_int(i))));
    want += i;
  }
  tg_node top;
  tg_graph_add(g, "sum", xs, (size_t)ntasks, NULL, &top);
  pid_t killer = 0;
  if (kill_at >= 0) { /* a child kills the worker on time */
    killer = fork();
    if (killer == 0) {
      nanosleep(&(struct timespec){(time_t)kill_at, (long)((kill_at - (time_t)kill_at) * 1e9)},
                NULL);
      kill(pids[1], SIGKILL);
      _exit(0);
    }
  }
  tg_value *r = NULL;
  double t0 = now();
  int rc = compute(g, top, ex, &r);
  secs = now() - t0;
  bench_check(rc == TG_OK && r && tg_value_int(r) == want, "S2 sum");
  if (killer > 0) waitpid(killer, NULL, 0);
  tg_remote_stats st = {0};
  tg_remote_stats_get(ex, &st);
  bench_check(kill_at < 0 || st.workers_lost == 1, "S2: one worker lost");
  tg_value_unref(r);
  tg_graph_free(g);
  free(xs);
  tg_executor_free(ex);
  stop_workers(NW, pids);
  return secs;
}

int main(int argc, char **argv) {
  bench_set_name("bench_scale");
  bool q = argc > 1 && strcmp(argv[1], "--quick") == 0;
  tg_registry *reg = make_reg();
  if (!reg) return 1;
  int groups = q ? 20 : 1000, per = q ? 500 : 1000;
  double r64 = s1(reg, q ? 8 : 64, groups, per);
  double r2 = s1(reg, 2, groups, per);
  int ntasks = q ? 40 : 200, ms = 50;
  double base[3], killed[3];
  for (int i = 0; i < 3; i++) {
    base[i] = s2_once(reg, ntasks, ms, -1);
    killed[i] = s2_once(reg, ntasks, ms, base[i] / 2);
  }
  double b = bench_median(base, 3), k = bench_median(killed, 3);
  printf("| benchmark | figure |\n|---|---|\n");
  printf("| S1: %d tiny tasks, %d workers | %.0f tasks/s |\n", groups * per + groups + 1,
         q ? 8 : 64, r64);
  printf("| S1: the same, 2 workers | %.0f tasks/s |\n", r2);
  printf("| S2: %d x %d ms on 4 workers, no kill | %.3f s |\n", ntasks, ms, b);
  printf("| S2: the same, one worker killed mid-run | %.3f s (extra %.3f s) |\n", k, k - b);
  printf("| S2: one heartbeat + its in-flight tasks (2 x %d ms) | %.3f s |\n", ms,
         1.0 + 2 * ms / 1000.0);
  tg_registry_free(reg);
  return bench_failed;
}
