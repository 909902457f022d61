/* tests/test_faults.c: the fault policy of the out-of-process backends,
 * against worker processes the test forks (tg_worker_serve on a free
 * loopback port) and kills with SIGKILL:
 *   - an impure task whose worker is lost after the task was sent to it
 *     is not run again: the compute fails naming the task and the worker;
 *   - a pure task in the same place is sent again and the compute
 *     succeeds with the right value;
 *   - an impure task's result kept on a worker that is lost is not
 *     computed again;
 *   - a task that itself computes (nested executors) works on every
 *     backend, or fails at once; never hangs (each test has a timeout);
 *   - deadlines: a task's timeout (the worker's own check, the client's
 *     watch, and the kill hook a local transport sets) and the compute's,
 *     with exact messages.
 * The processes_*_killed_worker / processes_impure_task_killing_* tests
 * describe the engine in which forked workers run the same dispatcher as
 * tcp (its messages); the processes backend of before fails them. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sched/sched_internal.h"   /* an executor's backend */
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "test_funcs.h"
#include "test_proc.h"

#define V(x) tg_arg_value(x)
#define N(x) tg_arg_node(x)

static char dir[64];          /* this test's scratch directory */
static tg_registry *reg;      /* the test's functions (also in workers) */

/* ---- files the tasks and the test share ----------------------------------- */

static void path_of(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", dir, name);
}

static void append_line(const char *path, const char *line) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return;
  ssize_t w = write(fd, line, strlen(line));
  (void)w;
  close(fd);
}

/* Lines in file `name` of the test's directory (0 when absent); the first
 * line's number in *first when asked. */
static int lines_of(const char *name, long *first) {
  char p[256], buf[4096];
  path_of(p, sizeof p, name);
  FILE *f = fopen(p, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  int k = 0;
  for (size_t i = 0; i < n; i++) k += buf[i] == '\n';
  if (first) *first = strtol(buf, NULL, 10);
  return k;
}

/* Wait (an event, not a delay) until file `name` has at least k lines:
 * false after 30 s. */
static bool wait_lines(const char *name, int k) {
  for (int i = 0; i < 30000; i++) {
    if (lines_of(name, NULL) >= k) return true;
    tgt_sleep_ms(1);
  }
  return false;
}

static void touch(const char *name) {
  char p[256];
  path_of(p, sizeof p, name);
  append_line(p, "");
}

/* ---- the test's functions -------------------------------------------------- */

/* hold(path): appends this process's pid to path.started, waits until
 * `path` exists (or the task is cancelled), returns 7. Registered pure
 * ("hold_pure") and impure ("hold"). */
static int fn_hold(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (tg_value_type(a[0]) != TG_STR) return tg_task_fail(ctx, TG_ETYPE, "hold(path)");
  const char *path = tg_str_data(a[0], NULL);
  char p[300], line[32];
  snprintf(p, sizeof p, "%s.started", path);
  snprintf(line, sizeof line, "%d\n", (int)getpid());
  append_line(p, line);
  while (access(path, F_OK) != 0) {
    if (tg_task_cancelled(ctx)) return tg_task_fail(ctx, TG_ECANCELED, "hold: cancelled");
    tgt_sleep_ms(1);
  }
  *out = tg_int(7);
  return *out ? TG_OK : TG_ENOMEM;
}

/* mark(path, x): impure; appends a line to path, returns x. */
static int fn_mark(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (tg_value_type(a[0]) != TG_STR) return tg_task_fail(ctx, TG_ETYPE, "mark(path, x)");
  append_line(tg_str_data(a[0], NULL), "x\n");
  *out = tg_value_ref(a[1]);
  return TG_OK;
}

/* after(path, x): pure; hold(path), then x + 1 (x an int). */
static int fn_after(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  tg_value *seven = NULL;
  int rc = fn_hold(ctx, a, n, &seven);
  if (rc) return rc;
  tg_value_unref(seven);
  *out = tg_int(tg_value_int(a[1]) + 1);
  return *out ? TG_OK : TG_ENOMEM;
}

/* nap(ms): impure; sleeps ms milliseconds, deaf to cancellation, returns
 * ms. */
static int fn_nap(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (tg_value_type(a[0]) != TG_INT) return tg_task_fail(ctx, TG_ETYPE, "nap(ms)");
  tgt_sleep_ms(tg_value_int(a[0]));
  *out = tg_int(tg_value_int(a[0]));
  return *out ? TG_OK : TG_ENOMEM;
}

/* crash(path): appends this process's pid to path, then kills its own
 * process (SIGKILL). Registered impure ("crash") and pure
 * ("crash_pure"). */
static int fn_crash(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  (void)out;
  if (tg_value_type(a[0]) != TG_STR) return tg_task_fail(ctx, TG_ETYPE, "crash(path)");
  char line[32];
  snprintf(line, sizeof line, "%d\n", (int)getpid());
  append_line(tg_str_data(a[0], NULL), line);
  raise(SIGKILL);
  return TG_EINVAL;
}

/* nested(backend, n): a new executor on `backend` with 2 workers computes
 * sum_args(inc(0), ..., inc(n - 1)) = n * (n + 1) / 2; its failure is
 * this task's. */
static int fn_nested(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  const char *backend = tg_str_data(a[0], NULL);
  int64_t k = tg_value_int(a[1]);
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend, .workers = 2};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_executor_new(reg, &o, &ex, &err);
  if (rc) return tg_task_fail(ctx, rc, "%s", err.msg);
  tg_graph *g = NULL;
  rc = tg_graph_new(reg, &g);
  tg_arg args[64];
  for (int64_t i = 0; rc == TG_OK && i < k && i < 64; i++)
    args[i] = N(tg_call(g, "inc", 1, V(tg_int(i))));
  tg_node s = TG_NODE_NONE;
  if (rc == TG_OK) rc = tg_graph_add(g, "sum_args", args, (size_t)k, NULL, &s);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  if (rc == TG_OK) rc = tg_compute(g, &s, 1, &co, out);
  if (rc) rc = tg_task_fail(ctx, rc, "inner compute on %s: %s", backend, tg_graph_errmsg(g));
  tg_graph_free(g);
  tg_executor_free(ex);
  return rc;
}

/* The executor nested_on_outer() computes on: the one running the task,
 * or a copy of it inherited across fork by a worker process. */
static tg_executor *outer_ex;

/* nested_on_outer(n): like nested(), on outer_ex. */
static int fn_nested_on_outer(tg_task_ctx *ctx, tg_value *const *a, size_t n,
                              tg_value **out) {
  (void)n;
  int64_t k = tg_value_int(a[0]);
  tg_graph *g = NULL;
  int rc = tg_graph_new(reg, &g);
  tg_arg args[64];
  for (int64_t i = 0; rc == TG_OK && i < k && i < 64; i++)
    args[i] = N(tg_call(g, "inc", 1, V(tg_int(i))));
  tg_node s = TG_NODE_NONE;
  if (rc == TG_OK) rc = tg_graph_add(g, "sum_args", args, (size_t)k, NULL, &s);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = outer_ex};
  if (rc == TG_OK) rc = tg_compute(g, &s, 1, &co, out);
  if (rc) rc = tg_task_fail(ctx, rc, "%s", tg_graph_errmsg(g));
  tg_graph_free(g);
  return rc;
}

static tg_registry *faults_registry(void) {
  tg_registry *r = tgt_registry_new();
  cr_assert_not_null(r);
  tg_func_def d[] = {
      {TG_FUNC_DEF_V1, "hold", "1", fn_hold, 0, 1, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "hold_pure", "1", fn_hold, TG_FUNC_PURE, 1, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "mark", "1", fn_mark, 0, 2, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "after", "1", fn_after, TG_FUNC_PURE, 2, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "nested", "1", fn_nested, 0, 2, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "nap", "1", fn_nap, 0, 1, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "crash", "1", fn_crash, 0, 1, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "crash_pure", "1", fn_crash, TG_FUNC_PURE, 1, NULL, NULL, 0, NULL,
       NULL},
      {TG_FUNC_DEF_V1, "nested_on_outer", "1", fn_nested_on_outer, 0, 1, NULL, NULL, 0,
       NULL, NULL},
  };
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
    cr_assert_eq(tg_registry_add(r, &d[i], NULL), TG_OK);
  return r;
}

/* ---- worker processes --------------------------------------------------------- */

#define MAXW 6
static pid_t pids[MAXW];
static char eps[MAXW][128];
static int npids;

static void worker_main(int fd) {
  tg_registry *r = faults_registry();
  reg = r; /* nested() builds its graphs over it */
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                      .nthreads = 2, .stop = tproc_stop_on_term(),
                      .on_ready = tproc_say_ready, .ctx = &fd};
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_worker_serve(r, &o, &err);
  if (rc) dprintf(fd, "ERROR %s\n", err.msg);
  _exit(rc ? 1 : 0);
}

/* Fork a worker: its index in pids/eps. */
static int start(void) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
    worker_main(p[1]);
  }
  close(p[1]);
  cr_assert_lt(npids, MAXW);
  int i = npids++;
  pids[i] = pid;
  tproc_read_line(p[0], eps[i], sizeof eps[i], 10);
  close(p[0]);
  cr_assert(strncmp(eps[i], "tcp://", 6) == 0, "worker: %s", eps[i]);
  return i;
}

/* The index of worker pid (-1 when not one of ours). */
static int worker_of(pid_t pid) {
  for (int i = 0; i < npids; i++)
    if (pids[i] == pid) return i;
  return -1;
}

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/tg_faults_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  reg = faults_registry();
}

static void teardown(void) {
  for (int i = 0; i < npids; i++) {
    if (pids[i] <= 0) continue;
    kill(pids[i], SIGKILL);
    waitpid(pids[i], NULL, 0);
  }
  npids = 0;
  tg_registry_free(reg);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

/* A hang fails the test (Criterion's timeout) rather than blocking. */
TestSuite(faults, .init = setup, .fini = teardown, .timeout = 60);

/* A tcp executor on workers w[0..n), all connected. */
static tg_executor *tcp_ex(const int *w, int n, size_t keep_min) {
  const char *addr[MAXW];
  for (int i = 0; i < n; i++) addr[i] = eps[w[i]];
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                        .connect = addr, .nconnect = (size_t)n, .keep_min = keep_min};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s", err.msg);
  tg_remote_stats st = {0};
  for (int i = 0; i < 1000; i++) {
    cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
    if (st.workers_ready == (unsigned)n) break;
    tgt_sleep_ms(10);
  }
  cr_assert_eq(st.workers_ready, (unsigned)n, "the workers did not all connect in 10 s");
  return ex;
}

static tg_executor *local_ex(const char *backend, unsigned workers) {
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend,
                        .workers = workers};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s", err.msg);
  return ex;
}

static int run(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex, tg_value **res) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  return tg_compute(g, outs, n, &o, res);
}

/* A node of fn on a path of the test's directory, under key `key`. */
static tg_node add_hold_retries(tg_graph *g, const char *fn, const char *key,
                                const char *name, int retries) {
  char p[256];
  path_of(p, sizeof p, name);
  tg_node_opts no = {.version = TG_NODE_OPTS_V1, .key = key, .retries = retries, .cache = 0};
  tg_arg a[1] = {V(tg_str_c(p))};
  tg_node n = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, fn, a, 1, &no, &n), TG_OK, "%s", tg_graph_errmsg(g));
  return n;
}

static tg_node add_hold(tg_graph *g, const char *fn, const char *key, const char *name) {
  return add_hold_retries(g, fn, key, name, -1);
}

/* The killer: once the task holding on file `name` started (k lines in
 * name.started), SIGKILL the process it runs in; then, after `release`
 * more lines (0: at once) or 2 s, let every hold on `name` return. */
typedef struct killer {
  const char *name;
  int release_after; /* lines of name.started to wait for after the kill */
  pid_t killed;
} killer;

static void *kill_when_started(void *arg) {
  killer *k = arg;
  char started[128];
  snprintf(started, sizeof started, "%s.started", k->name);
  long pid = 0;
  if (wait_lines(started, 1) && lines_of(started, &pid) >= 1 && pid > 1) {
    k->killed = (pid_t)pid;
    kill(k->killed, SIGKILL);
  }
  if (k->release_after) {
    for (int i = 0; i < 2000 && lines_of(started, NULL) < 1 + k->release_after; i++)
      tgt_sleep_ms(1);
  }
  touch(k->name);
  return NULL;
}

/* Compute out on ex (run) while k kills the worker that starts its hold. */
static int run_killing(tg_graph *g, tg_node *out, tg_executor *ex, tg_value **r, killer *k) {
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, kill_when_started, k), 0);
  int rc = run(g, out, 1, ex, r);
  pthread_join(th, NULL);
  return rc;
}

/* ---- impure tasks are not run again ------------------------------------------- */

Test(faults, tcp_impure_task_of_a_killed_worker_is_not_run_again) {
  int w[2] = {start(), start()};
  tg_executor *ex = tcp_ex(w, 2, 0);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = add_hold(g, "hold", "side_effect", "h");
  killer k = {"h", 1, 0}; /* a second start (there must be none) may return */
  tg_value *r = NULL;
  int rc = run_killing(g, &n, ex, &r, &k);
  int wi = worker_of(k.killed);
  cr_assert_geq(wi, 0, "the task ran in pid %d, not in a worker", (int)k.killed);
  cr_assert_eq(rc, TG_ETASK, "%s", tg_graph_errmsg(g));
  char want[512];
  snprintf(want, sizeof want, "task 'side_effect' failed: TG_EWORKER: worker %s was lost "
           "while running impure task 'side_effect' (disconnected); it was not run again "
           "because it is not pure", eps[wi]);
  cr_expect_str_eq(tg_graph_errmsg(g), want);
  cr_expect_eq(lines_of("h.started", NULL), 1, "the impure task started more than once");
  tg_remote_stats st;
  cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
  cr_expect_eq(st.workers_lost, 1);
  cr_expect_eq(st.tasks_retried, 0);
  /* the other worker goes on: the file exists now, the task returns 7 */
  cr_assert_eq(run(g, &n, 1, ex, &r), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(r), 7);
  tg_value_unref(r);
  tg_graph_free(g);
  tg_executor_free(ex);
}

Test(faults, tcp_pure_task_of_a_killed_worker_is_retried) {
  int w[2] = {start(), start()};
  tg_executor *ex = tcp_ex(w, 2, 0);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = add_hold(g, "hold_pure", "pure_side", "h");
  tg_node out = tg_call(g, "inc", 1, N(n));
  killer k = {"h", 1, 0}; /* released once it started again */
  tg_value *r = NULL;
  int rc = run_killing(g, &out, ex, &r, &k);
  cr_assert_geq(worker_of(k.killed), 0);
  cr_assert_eq(rc, TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(r), 8);
  long first = 0;
  cr_expect_eq(lines_of("h.started", &first), 2, "a pure task runs again after its loss");
  cr_expect_eq(first, k.killed);
  tg_remote_stats st;
  cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
  cr_expect_eq(st.workers_lost, 1);
  cr_expect_eq(st.tasks_retried, 1);
  tg_value_unref(r);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* With keep_going, the impure task lost with its worker fails alone: the
 * other output is computed (on the worker left). */
Test(faults, tcp_impure_task_lost_with_keep_going_fails_alone) {
  int w[2] = {start(), start()};
  tg_executor *ex = tcp_ex(w, 2, 0);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node outs[2] = {add_hold(g, "hold", "side_effect", "h"),
                     tg_call(g, "inc", 1, V(tg_int(41)))};
  killer k = {"h", 1, 0};
  pthread_t th;
  pthread_create(&th, NULL, kill_when_started, &k);
  tg_value *r[2] = {NULL, NULL};
  tg_node failed[2];
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V4, .executor = ex, .keep_going = true,
                       .failed = failed};
  int rc = tg_compute(g, outs, 2, &o, r);
  pthread_join(th, NULL);
  cr_assert_eq(rc, TG_ETASK, "%s", tg_graph_errmsg(g));
  cr_expect_null(r[0]);
  cr_expect_eq(failed[0], outs[0]);
  cr_assert_not_null(r[1]);
  cr_expect_eq(tg_value_int(r[1]), 42);
  cr_expect_eq(failed[1], TG_NODE_NONE);
  cr_expect_eq(lines_of("h.started", NULL), 1);
  cr_expect(strstr(tg_graph_errmsg(g), "it was not run again because it is not pure"), "%s",
            tg_graph_errmsg(g));
  tg_value_unref(r[1]);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* An impure result kept on its worker (keep_min 1: every result stays)
 * is lost with it while a dependent runs there: the dependent, pure, may
 * run again elsewhere, but its input cannot be made again. */
Test(faults, tcp_lost_result_of_an_impure_task_is_not_computed_again) {
  int w[2] = {start(), start()};
  tg_executor *ex = tcp_ex(w, 2, 1);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  char mark[256], hp[256];
  path_of(mark, sizeof mark, "marks");
  path_of(hp, sizeof hp, "h");
  tg_node_opts mo = {.version = TG_NODE_OPTS_V1, .key = "draw", .retries = -1, .cache = 0};
  tg_arg ma[2] = {V(tg_str_c(mark)), V(tg_int(41))};
  tg_node x;
  cr_assert_eq(tg_graph_add(g, "mark", ma, 2, &mo, &x), TG_OK);
  tg_node_opts ao = {.version = TG_NODE_OPTS_V1, .key = "use", .retries = -1, .cache = 0};
  tg_arg aa[2] = {V(tg_str_c(hp)), N(x)};
  tg_node y;
  cr_assert_eq(tg_graph_add(g, "after", aa, 2, &ao, &y), TG_OK);
  killer k = {"h", 1, 0};
  tg_value *r = NULL;
  int rc = run_killing(g, &y, ex, &r, &k);
  int wi = worker_of(k.killed);
  cr_assert_geq(wi, 0);
  cr_assert_eq(rc, TG_EWORKER, "%s", tg_graph_errmsg(g));
  char want[512];
  snprintf(want, sizeof want, "task 'draw': its result was lost with worker %s "
           "(disconnected) and it was not run again because it is not pure", eps[wi]);
  cr_expect_str_eq(tg_graph_errmsg(g), want);
  cr_expect_eq(lines_of("marks", NULL), 1, "the impure task ran more than once");
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* A task's retries (tg_node_opts.retries) are attempts after failures of
 * its own, made by the worker in place: an impure task gets none, and a
 * lost worker does not count as a failed attempt of a pure task. */
Test(faults, tcp_retries_count_failures_not_losses) {
  int w[2] = {start(), start()};
  tg_executor *ex = tcp_ex(w, 2, 0);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  char hp[256];
  path_of(hp, sizeof hp, "h");
  tg_node_opts no = {.version = TG_NODE_OPTS_V1, .key = "side", .retries = 3, .cache = 0};
  tg_arg a[1] = {V(tg_str_c(hp))};
  tg_node n;
  cr_assert_eq(tg_graph_add(g, "hold", a, 1, &no, &n), TG_OK);
  killer k = {"h", 1, 0};
  tg_value *r = NULL;
  int rc = run_killing(g, &n, ex, &r, &k);
  cr_assert_eq(rc, TG_ETASK);
  cr_expect(strstr(tg_graph_errmsg(g), "it was not run again because it is not pure"),
            "%s", tg_graph_errmsg(g));
  cr_expect_eq(lines_of("h.started", NULL), 1);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* A task that kills its own worker: impure, it runs once and the compute
 * fails at once; pure, it is sent again after each of OFL_MAX_LOSSES (3)
 * losses and fails at the next, one worker process each. */
Test(faults, tcp_task_killing_its_worker) {
  int w[5] = {start(), start(), start(), start(), start()};
  tg_executor *ex = tcp_ex(w, 5, 0);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = add_hold(g, "crash", "suicide", "once");
  tg_value *r = NULL;
  cr_assert_eq(run(g, &n, 1, ex, &r), TG_ETASK);
  long pid = 0;
  cr_expect_eq(lines_of("once", &pid), 1, "the impure task ran more than once");
  int wi = worker_of((pid_t)pid);
  cr_assert_geq(wi, 0);
  char want[512];
  snprintf(want, sizeof want, "task 'suicide' failed: TG_EWORKER: worker %s was lost while "
           "running impure task 'suicide' (disconnected); it was not run again because it "
           "is not pure", eps[wi]);
  cr_expect_str_eq(tg_graph_errmsg(g), want);
  tg_node p = add_hold(g, "crash_pure", "crash_pure", "pure");
  cr_assert_eq(run(g, &p, 1, ex, &r), TG_ETASK);
  cr_expect_eq(lines_of("pure", NULL), 4, "sent once and again 3 times");
  cr_expect_str_eq(tg_graph_errmsg(g), "task 'crash_pure' failed: TG_EWORKER: lost its worker "
                   "4 times (last: disconnected)");
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* The same policy on processes (the forked workers run the tcp
 * dispatcher's code): the message names the worker process and how it
 * ended. */
Test(faults, processes_impure_task_of_a_killed_worker_is_not_run_again) {
  tg_executor *ex = local_ex("processes", 2);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = add_hold(g, "hold", "side_effect", "h");
  killer k = {"h", 1, 0};
  tg_value *r = NULL;
  int rc = run_killing(g, &n, ex, &r, &k);
  cr_assert_gt(k.killed, 0);
  cr_assert_eq(rc, TG_ETASK, "%s", tg_graph_errmsg(g));
  const char *m = tg_graph_errmsg(g);
  cr_expect(strncmp(m, "task 'side_effect' failed: TG_EWORKER: worker ", 46) == 0, "%s", m);
  const char *tail = " was killed by signal 9 (Killed) while running impure task 'side_effect'; "
                     "it was not run again because it is not pure";
  cr_expect(strstr(m, tail) && strlen(strstr(m, tail)) == strlen(tail), "%s", m);
  cr_expect_eq(lines_of("h.started", NULL), 1, "the impure task started more than once");
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* The case of the issue this policy answers: an impure task that kills
 * its own worker process ran again on each new worker. */
Test(faults, processes_impure_task_killing_its_worker_runs_once) {
  tg_executor *ex = local_ex("processes", 2);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = add_hold(g, "crash", "suicide", "once");
  tg_value *r = NULL;
  cr_assert_eq(run(g, &n, 1, ex, &r), TG_ETASK);
  const char *m = tg_graph_errmsg(g);
  cr_expect_eq(lines_of("once", NULL), 1, "the impure task ran more than once");
  cr_expect(strstr(m, "task 'suicide' failed: TG_EWORKER: worker ") == m, "%s", m);
  const char *tail = " was killed by signal 9 (Killed) while running impure task 'suicide'; "
                     "it was not run again because it is not pure";
  cr_expect(strstr(m, tail) && strlen(strstr(m, tail)) == strlen(tail), "%s", m);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* On processes the engine knows which task a dead worker was calling (one
 * at a time): its death is that task's failed attempt, so a pure task goes
 * again while it has retries (here one), as a task that failed would. */
Test(faults, processes_pure_task_of_a_killed_worker_is_retried) {
  tg_executor *ex = local_ex("processes", 2);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = add_hold_retries(g, "hold_pure", "pure_side", "h", 1);
  tg_node out = tg_call(g, "inc", 1, N(n));
  killer k = {"h", 1, 0};
  tg_value *r = NULL;
  int rc = run_killing(g, &out, ex, &r, &k);
  cr_assert_eq(rc, TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(r), 8);
  cr_expect_eq(lines_of("h.started", NULL), 2);
  tg_value_unref(r);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* ---- nested compute ------------------------------------------------------------ */

/* nested() on the inner backends from a task on ex: each gives 1 + ... +
 * 10 = 55, or fails at once with a message naming the backend. */
static void nested_on(tg_executor *ex) {
  const char *inner[3] = {"sync", "threads", "processes"};
  for (int i = 0; i < 3; i++) {
    tg_graph *g;
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    tg_node n = tg_call(g, "nested", 2, V(tg_str_c(inner[i])), V(tg_int(10)));
    tg_value *r = NULL;
    double t0 = tgt_now();
    int rc = run(g, &n, 1, ex, &r);
    cr_assert_eq(rc, TG_OK, "%s inside %s: %s", inner[i], tg_executor_backend(ex),
                 tg_graph_errmsg(g));
    cr_expect_eq(tg_value_int(r), 55, "%s inside %s", inner[i], tg_executor_backend(ex));
    cr_expect_lt(tgt_now() - t0, 20.0);
    tg_value_unref(r);
    tg_graph_free(g);
  }
}

Test(faults, nested_compute_in_sync) {
  tg_executor *ex = local_ex("sync", 1);
  nested_on(ex);
  tg_executor_free(ex);
}

Test(faults, nested_compute_in_threads) {
  tg_executor *ex = local_ex("threads", 2);
  nested_on(ex);
  tg_executor_free(ex);
}

Test(faults, nested_compute_in_processes) {
  tg_executor *ex = local_ex("processes", 2);
  nested_on(ex);
  tg_executor_free(ex);
}

Test(faults, nested_compute_in_tcp_workers) {
  int w[1] = {start()};
  tg_executor *ex = tcp_ex(w, 1, 0);
  nested_on(ex);
  tg_executor_free(ex);
}

/* Tasks computing on the executor that runs them, three on two workers:
 * in process (sync, threads) the compute would wait for itself and is
 * refused at once; a processes worker has its own stand-in executor. */
static void nested_on_outer(const char *backend, bool works) {
  outer_ex = local_ex(backend, 2);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node t[3];
  for (int i = 0; i < 3; i++) {
    char key[16];
    snprintf(key, sizeof key, "outer%d", i);
    tg_node_opts no = {.version = TG_NODE_OPTS_V1, .key = key, .retries = -1, .cache = 0};
    tg_arg a[1] = {V(tg_int(10 + i))};
    cr_assert_eq(tg_graph_add(g, "nested_on_outer", a, 1, &no, &t[i]), TG_OK);
  }
  tg_node s = tg_call(g, "sum_args", 3, N(t[0]), N(t[1]), N(t[2]));
  tg_value *r = NULL;
  double t0 = tgt_now();
  int rc = run(g, &s, 1, outer_ex, &r);
  cr_expect_lt(tgt_now() - t0, 20.0);
  if (works) {
    cr_assert_eq(rc, TG_OK, "%s", tg_graph_errmsg(g));
    cr_expect_eq(tg_value_int(r), 55 + 66 + 78);
    tg_value_unref(r);
  } else {
    cr_assert_eq(rc, TG_ETASK, "%s", tg_graph_errmsg(g));
    const char *m = tg_graph_errmsg(g);
    char want[512], k = strlen(m) > 11 ? m[11] : '?'; /* whichever failed first */
    snprintf(want, sizeof want, "task 'outer%c' failed: TG_ESTATE: tg_compute: task 'outer%c' "
             "computes on the executor running it (\"%s\"), which would wait for itself; "
             "compute on an executor of the task's own (tg_executor_new there, or no "
             "executor and opts.scheduler)", k, k, backend);
    cr_expect_str_eq(tg_graph_errmsg(g), want);
  }
  tg_graph_free(g);
  tg_executor_free(outer_ex);
}

Test(faults, nested_compute_on_the_running_sync_executor) { nested_on_outer("sync", false); }
Test(faults, nested_compute_on_the_running_threads_executor) {
  nested_on_outer("threads", false);
}
Test(faults, nested_compute_on_the_running_processes_executor) {
  nested_on_outer("processes", true);
}

/* ---- deadlines ------------------------------------------------------------------- */

/* A task over its timeout fails then (the worker cannot stop its call);
 * the worker stays and serves the next compute. */
Test(faults, tcp_task_timeout) {
  int w[1] = {start()};
  tg_executor *ex = tcp_ex(w, 1, 0);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  char hp[256];
  path_of(hp, sizeof hp, "h");
  tg_node_opts no = {.version = TG_NODE_OPTS_V1, .key = "stuck", .retries = -1,
                     .timeout = 0.2};
  tg_arg a[1] = {V(tg_str_c(hp))};
  tg_node n;
  cr_assert_eq(tg_graph_add(g, "hold", a, 1, &no, &n), TG_OK);
  tg_value *r = NULL;
  double t0 = tgt_now();
  cr_assert_eq(run(g, &n, 1, ex, &r), TG_ETASK);
  cr_expect_lt(tgt_now() - t0, 2.0);
  cr_expect_str_eq(tg_graph_errmsg(g), "task 'stuck' failed: TG_ETIMEDOUT: timed out after "
                   "0.2 s");
  /* deaf to cancellation: the client's own watch fails it, the worker's
   * thread naps on (it cannot be stopped from here) */
  tg_node_opts no2 = {.version = TG_NODE_OPTS_V1, .key = "deaf", .retries = -1,
                      .timeout = 0.2};
  tg_arg a2[1] = {V(tg_int(3000))};
  cr_assert_eq(tg_graph_add(g, "nap", a2, 1, &no2, &n), TG_OK);
  t0 = tgt_now();
  cr_assert_eq(run(g, &n, 1, ex, &r), TG_ETASK);
  cr_expect_lt(tgt_now() - t0, 2.0);
  cr_expect_str_eq(tg_graph_errmsg(g), "task 'deaf' failed: TG_ETIMEDOUT: timed out after "
                   "0.2 s");
  tg_remote_stats st;
  cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
  cr_expect_eq(st.workers_lost, 0, "a remote worker is not killed for a timeout");
  tg_node ok = tg_call(g, "inc", 1, V(tg_int(1)));
  cr_assert_eq(run(g, &ok, 1, ex, &r), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(r), 2);
  tg_value_unref(r);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* The compute's deadline gives up the task running on a worker. */
Test(faults, tcp_compute_deadline) {
  int w[1] = {start()};
  tg_executor *ex = tcp_ex(w, 1, 0);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = add_hold(g, "hold", "forever", "h");
  tg_value *r = NULL;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .timeout = 0.3};
  double t0 = tgt_now();
  cr_assert_eq(tg_compute(g, &n, 1, &o, &r), TG_ETIMEDOUT);
  cr_expect_lt(tgt_now() - t0, 1.5);
  cr_expect_str_eq(tg_graph_errmsg(g), "the compute timed out after 0.3 s: 1 task still "
                   "running (forever)");
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* A compute whose deadline passes gives its running task up; a local
 * worker process still calling it a grace later is killed and replaced
 * (a remote worker can only be told): the next compute on the same
 * one-worker pool runs at once, not after the deaf call's 30 s. */
Test(faults, processes_compute_deadline_replaces_a_stuck_worker) {
  tg_executor *ex = local_ex("processes", 1);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node_opts no = {.version = TG_NODE_OPTS_V1, .key = "deaf", .retries = -1};
  tg_arg a[1] = {V(tg_int(30000))}; /* deaf to cancellation */
  tg_node deaf, quick;
  cr_assert_eq(tg_graph_add(g, "nap", a, 1, &no, &deaf), TG_OK);
  tg_value *r = NULL;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .timeout = 0.3};
  double t0 = tgt_now();
  cr_assert_eq(tg_compute(g, &deaf, 1, &o, &r), TG_ETIMEDOUT);
  cr_expect_lt(tgt_now() - t0, 1.5);
  cr_expect_str_eq(tg_graph_errmsg(g), "the compute timed out after 0.3 s: 1 task still "
                   "running (deaf)");
  tg_arg b[1] = {V(tg_int(1))};
  tg_node_opts nq = {.version = TG_NODE_OPTS_V1, .key = "quick"};
  cr_assert_eq(tg_graph_add(g, "nap", b, 1, &nq, &quick), TG_OK);
  tg_compute_opts o2 = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .timeout = 10};
  t0 = tgt_now();
  cr_assert_eq(tg_compute(g, &quick, 1, &o2, &r), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_lt(tgt_now() - t0, 5.0);
  tg_value_unref(r);
  tg_graph_free(g);
  tg_executor_free(ex);
}
