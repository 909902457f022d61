/* tests/test_processes.c: the processes backend: results equal to sync,
 * tasks that crash, exit, hang past their timeout or get killed from
 * outside, retries after a crash, large arrays through shared memory with
 * no copy, workers' output kept whole, workers dying with their parent;
 * and after every test no child process, fd or shared mapping left.
 *
 * No test sets Criterion's .timeout: its runner leaks a record when two
 * tests with timeouts run at once (a LeakSanitizer report); the suite's
 * own time limit (meson) stands in. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "offload/traffic.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "test_funcs.h"

/* Written by tasks in workers, read by the test: shared memory made
 * before any worker is forked. */
typedef struct pstate {
  atomic_int hang_pid;     /* pid of the worker running hang() */
  atomic_int hang_started;
  atomic_int blocked;      /* block() calls running */
} pstate;

static pstate *S;
static tg_registry *reg;
static tg_graph *g;
static int fds_before;

/* ---- checks ------------------------------------------------------------------------ */

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n - 1; /* the directory's own fd */
}

/* The /proc/self/maps line's path for the mapping holding p ("" if none). */
static bool mapping_of(const void *p, char *path, size_t size) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  bool found = false;
  while (f && !found && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    int off = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2) continue;
    if ((uintptr_t)p >= lo && (uintptr_t)p < hi) {
      snprintf(path, size, "%s", off ? line + off : "");
      found = true;
    }
  }
  if (f) fclose(f);
  return found;
}

static bool in_memfd(const void *p) {
  char path[512] = "";
  return mapping_of(p, path, sizeof path) && strstr(path, "/memfd:tgraph") != NULL;
}

static int memfd_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int n = 0;
  while (f && fgets(line, sizeof line, f)) n += strstr(line, "/memfd:tgraph") != NULL;
  if (f) fclose(f);
  return n;
}

/* Nothing left behind: no child (reaped or running), fd or mapping. */
static void expect_clean(void) {
  errno = 0;
  cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a child process remains");
  cr_assert_eq(errno, ECHILD);
  cr_assert_eq(count_fds(), fds_before, "fds leaked");
  cr_assert_eq(memfd_mappings(), 0, "shared mappings left");
}

/* ---- task functions ----------------------------------------------------------------- */

/* The default action of SIGSEGV, even under a sanitizer that handles it:
 * the test is about a worker killed by a signal. */
static _Noreturn void segfault(void) {
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
  _exit(99);
}

static int f_segv(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)a, (void)n, (void)o;
  segfault();
}

static int f_abort(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)a, (void)n, (void)o;
  abort();
}

static int f_exit3(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)a, (void)n, (void)o;
  _exit(3);
}

static int f_spin(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)a, (void)n, (void)o;
  volatile unsigned long i = 0;
  while (i != ~0ul) i++; /* about forever */
  return TG_OK;
}

/* Attempt 0 hangs (reporting its pid); later attempts return args[0]. */
static int f_hang(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)n;
  if (tg_task_attempt(c) == 0) {
    atomic_store(&S->hang_pid, (int)getpid());
    atomic_store(&S->hang_started, 1);
    for (;;) pause();
  }
  *o = tg_value_ref(a[0]);
  return TG_OK;
}

/* Never returns. */
static int f_block(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)a, (void)n, (void)o;
  atomic_fetch_add(&S->blocked, 1);
  while (1) pause();
  return TG_OK;
}

/* Crashes on attempts below args[0], then returns args[1]. */
static int f_crash_first(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)n;
  if (tg_task_attempt(c) < tg_value_int(a[0])) segfault();
  *o = tg_value_ref(a[1]);
  return TG_OK;
}

/* nap_at(x, k): x, after 600 ms when x == k (at once otherwise). */
static int f_nap_at(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  if (tg_value_int(a[0]) == tg_value_int(a[1])) tgt_sleep_ms(600);
  *o = tg_value_ref(a[0]);
  return TG_OK;
}

/* [whether args[0]'s data is in a shared mapping here, args[0]] */
static int f_probe(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  *o = tg_list_of(2, tg_bool(in_memfd(tg_ndarray_data(a[0]))), tg_value_ref(a[0]));
  return *o ? TG_OK : TG_ENOMEM;
}

/* An f64 array of args[0] elements, element i = i + args[1]. */
static int f_ramp(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  int64_t len = tg_value_int(a[0]);
  double base = (double)tg_value_int(a[1]);
  tg_value *v = tg_ndarray_new(TG_DT_F64, 1, &len);
  if (!v) return TG_ENOMEM;
  double *d = tg_ndarray_data_mut(v);
  for (int64_t i = 0; i < len; i++) d[i] = (double)i + base;
  *o = v;
  return TG_OK;
}

/* args[0] + 1, element-wise, as a new f64 array. */
static int f_plus1(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  int64_t len = (int64_t)tg_ndarray_size(a[0]);
  tg_value *v = tg_ndarray_new(TG_DT_F64, 1, &len);
  if (!v) return TG_ENOMEM;
  const double *s = tg_ndarray_data(a[0]);
  double *d = tg_ndarray_data_mut(v);
  for (int64_t i = 0; i < len; i++) d[i] = s[i] + 1;
  *o = v;
  return TG_OK;
}

/* Prints args[1] lines of args[2] characters, tagged with args[0], to
 * stdout and to stderr. */
static int f_print(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  int64_t id = tg_value_int(a[0]), lines = tg_value_int(a[1]), len = tg_value_int(a[2]);
  char *body = malloc((size_t)len + 1);
  for (int64_t i = 0; i < len; i++) body[i] = (char)('a' + (i + id) % 26);
  body[len] = '\0';
  for (int64_t i = 0; i < lines; i++) {
    printf("W%lld:%lld:%s\n", (long long)id, (long long)i, body);
    fprintf(stderr, "W%lld:%lld:%s\n", (long long)id, (long long)i, body);
  }
  free(body);
  *o = tg_int(id);
  return TG_OK;
}

static void add_fn(const char *name, tg_task_fn fn, int nargs, unsigned flags) {
  cr_assert_eq(tgt_add(reg, name, fn, nargs, flags), TG_OK, "%s", name);
}

static void setup(void) {
  S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(S, MAP_FAILED);
  reg = tgt_registry_new();
  cr_assert_not_null(reg);
  add_fn("segv", f_segv, -1, TG_FUNC_PURE);
  add_fn("abort", f_abort, -1, TG_FUNC_PURE);
  add_fn("exit3", f_exit3, -1, TG_FUNC_PURE);
  add_fn("spin", f_spin, -1, TG_FUNC_PURE);
  add_fn("hang", f_hang, 1, TG_FUNC_PURE);
  add_fn("block", f_block, -1, 0);
  add_fn("crash_first", f_crash_first, 2, TG_FUNC_PURE);
  add_fn("nap_at", f_nap_at, 2, TG_FUNC_PURE);
  add_fn("probe", f_probe, 1, TG_FUNC_PURE);
  add_fn("ramp", f_ramp, 2, TG_FUNC_PURE);
  add_fn("plus1", f_plus1, 1, TG_FUNC_PURE);
  add_fn("print", f_print, 3, 0);
  add_fn("pid", tgt_fn_pid, -1, 0);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  fds_before = count_fds();
}

static void teardown(void) {
  tg_graph_free(g);
  tg_registry_free(reg);
  munmap(S, sizeof *S);
}

static tg_executor *pool(unsigned workers) {
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "processes",
                         .workers = workers};
  tg_executor *ex = NULL;
  tg_error err;
  cr_assert_eq(tg_executor_new(reg, &eo, &ex, &err), TG_OK, "%s", err.msg);
  cr_assert_str_eq(tg_executor_backend(ex), "processes");
  cr_assert_eq(tg_executor_workers(ex), workers);
  return ex;
}

static int compute_on(tg_executor *ex, tg_node out, tg_value **res, tg_compute_stats *st) {
  tg_compute_opts o = tgt_opts(NULL, 0, st);
  o.executor = ex;
  return tg_compute(g, &out, 1, &o, res);
}

static int64_t compute_int_on(tg_executor *ex, tg_node out) {
  tg_value *v = NULL;
  int rc = compute_on(ex, out, &v, NULL);
  cr_assert_eq(rc, TG_OK, "%s", tg_graph_errmsg(g));
  int64_t r = tg_value_int(v);
  tg_value_unref(v);
  return r;
}

static tg_node add_opts(const char *fn, const tg_arg *args, size_t n, const char *key,
                        int retries, double timeout) {
  tg_node_opts o = {TG_NODE_OPTS_V1, key, retries, -1, timeout, 0};
  tg_node id = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, fn, args, n, &o, &id), TG_OK, "%s", tg_graph_errmsg(g));
  return id;
}

/* ---- results equal to sync ---------------------------------------------------------- */

/* A graph of ints, lists, maps, items, keys and a map over 3,000 inputs. */
static tg_node mixed_graph(void) {
  enum { N = 3000 };
  tg_arg *in = malloc(N * sizeof *in);
  for (int i = 0; i < N; i++) in[i] = tg_arg_value(tg_int(i));
  tg_node m = TG_NODE_NONE;
  cr_assert_eq(tg_graph_map(g, "inc", in, N, NULL, 0, 0, NULL, &m), TG_OK);
  free(in);
  tg_node total = tg_call(g, "sum", 1, tg_arg_node(m));
  tg_node last = tg_call(g, "identity", 1, tg_arg_item(m, -1));
  tg_node pm = tg_call(g, "pack_map", 3, tg_arg_node(total), tg_arg_node(last),
                       tg_arg_value(tg_str_c("text")));
  tg_node l = tg_call(g, "pack", 4, tg_arg_node(pm), tg_arg_value(tg_float(2.5)),
                      tg_arg_value(tg_bytes("\0\1\2", 3)), tg_arg_value(tg_null()));
  tg_node r = tg_call(g, "ramp", 2, tg_arg_value(tg_int(20000)), tg_arg_value(tg_int(1)));
  tg_node small = tg_call(g, "ramp", 2, tg_arg_value(tg_int(100)), tg_arg_value(tg_int(2)));
  char *big = malloc(100000); /* large bytes cross in shared memory too */
  for (int i = 0; i < 100000; i++) big[i] = (char)(i * 7);
  tg_node bb = tg_call(g, "identity", 1, tg_arg_value(tg_bytes(big, 100000)));
  free(big);
  tg_node arrs = tg_call(g, "pack", 3, tg_arg_node(r), tg_arg_node(bb), tg_arg_node(r));
  return tg_call(g, "pack", 5, tg_arg_node(l), tg_arg_node(arrs), tg_arg_node(small),
                 tg_arg_key(pm, "k0"), tg_arg_item(arrs, 1));
}

Test(processes, results_equal_sync, .init = setup, .fini = teardown) {
  tg_node out = mixed_graph();
  tg_value *want = NULL;
  tg_compute_opts so = tgt_opts("sync", 1, NULL);
  cr_assert_eq(tg_compute(g, &out, 1, &so, &want), TG_OK, "%s", tg_graph_errmsg(g));
  unsigned counts[] = {1, 2, 8};
  for (size_t c = 0; c < 3; c++) {
    tg_executor *ex = pool(counts[c]);
    for (int rep = 0; rep < 2; rep++) {
      tg_value *got = NULL;
      tg_compute_stats st;
      cr_assert_eq(compute_on(ex, out, &got, &st), TG_OK, "%s", tg_graph_errmsg(g));
      cr_assert(tg_value_equal(got, want), "%u workers", counts[c]);
      cr_assert_eq(st.tasks_run, st.tasks_total);
      tg_value_unref(got);
    }
    tg_executor_free(ex);
  }
  tg_value_unref(want);
  expect_clean();
}

Test(processes, keys_workers_and_logs, .init = setup, .fini = teardown) {
  tg_node_opts o = {TG_NODE_OPTS_V1, "named", -1, -1, 0, 0};
  tg_node named = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "whoami", NULL, 0, &o, &named), TG_OK);
  tg_node gen = tg_call(g, "whoami", 0);
  tg_node wk = tg_call(g, "worker", 0);
  tg_node lg = tg_call(g, "logline", 1, tg_arg_value(tg_int(42)));
  tg_node out = tg_call(g, "pack", 4, tg_arg_node(named), tg_arg_node(gen), tg_arg_node(wk),
                        tg_arg_node(lg));
  tg_executor *ex = pool(1);
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, out, &v, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  char want[64];
  snprintf(want, sizeof want, "whoami#%u", gen);
  cr_assert_str_eq(tg_str_data(tg_list_get(v, 0), NULL), "named");
  cr_assert_str_eq(tg_str_data(tg_list_get(v, 1), NULL), want);
  cr_assert_eq(tg_value_int(tg_list_get(v, 2)), 0);
  cr_assert_eq(tg_value_int(tg_list_get(v, 3)), 42);
  tg_value_unref(v);
  tg_executor_free(ex);
  expect_clean();
}

/* The log lines a callback received (the executor's log option). */
typedef struct log_lines {
  pthread_mutex_t mu;
  int n;
  char key[4][64], line[4][64];
} log_lines;

static void keep_line(void *ctx, const char *key, const char *line) {
  log_lines *l = ctx;
  pthread_mutex_lock(&l->mu);
  if (l->n < 4) {
    snprintf(l->key[l->n], sizeof l->key[0], "%s", key);
    snprintf(l->line[l->n], sizeof l->line[0], "%s", line);
  }
  l->n++;
  pthread_mutex_unlock(&l->mu);
}

/* A worker makes a generated key only when a call asks for it (here
 * tg_task_log, through the task's host): the line carries the key the
 * graph gave the node, the same as a named node's line carries its name. */
Test(processes, log_lines_carry_generated_and_named_keys, .init = setup, .fini = teardown) {
  log_lines l = {.mu = PTHREAD_MUTEX_INITIALIZER};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "processes",
                         .workers = 1, .log = keep_line, .log_ctx = &l};
  tg_executor *ex = NULL;
  tg_error err;
  cr_assert_eq(tg_executor_new(reg, &eo, &ex, &err), TG_OK, "%s", err.msg);
  tg_node gen = tg_call(g, "logline", 1, tg_arg_value(tg_int(7)));
  tg_node_opts o = {TG_NODE_OPTS_V1, "named-line", -1, -1, 0, 0};
  tg_node named = TG_NODE_NONE;
  tg_arg a = tg_arg_value(tg_int(8));
  cr_assert_eq(tg_graph_add(g, "logline", &a, 1, &o, &named), TG_OK, "%s", tg_graph_errmsg(g));
  tg_node out = tg_call(g, "pack", 2, tg_arg_node(gen), tg_arg_node(named));
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, out, &v, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  tg_value_unref(v);
  tg_executor_free(ex); /* every line delivered */
  cr_assert_eq(l.n, 2);
  char want[64];
  snprintf(want, sizeof want, "logline#%u", gen);
  int gi = strcmp(l.line[0], "value 7") == 0 ? 0 : 1;
  cr_assert_str_eq(l.line[gi], "value 7");
  cr_assert_str_eq(l.key[gi], want);
  cr_assert_str_eq(l.line[1 - gi], "value 8");
  cr_assert_str_eq(l.key[1 - gi], "named-line");
  expect_clean();
}

/* ---- crashes ------------------------------------------------------------------------ */

/* Compute a call of fn on a 2-worker pool: the error must say how the
 * worker died; the pool must then still work. */
static void expect_death(const char *fn, const char *how) {
  tg_executor *ex = pool(2);
  tg_node bad = add_opts(fn, NULL, 0, "victim", 0, 0);
  tg_node ok = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node out = tg_call(g, "add", 2, tg_arg_node(bad), tg_arg_node(ok));
  tg_value *v = NULL;
  tg_compute_stats st;
  cr_assert_eq(compute_on(ex, out, &v, &st), TG_ETASK);
  const char *msg = tg_graph_errmsg(g);
  cr_assert(strncmp(msg, "task 'victim' failed: TG_EWORKER: worker ", 41) == 0, "%s", msg);
  char tail[200];
  snprintf(tail, sizeof tail, ") %s while running task 'victim'", how);
  cr_assert(strstr(msg, tail) && strlen(strstr(msg, tail)) == strlen(tail), "%s", msg);
  cr_assert(strstr(msg, "(pid "), "%s", msg);
  cr_assert_eq(st.failed_node, bad);
  cr_assert_eq(compute_int_on(ex, ok), 2, "the pool goes on");
  tg__offload_traffic ps;
  cr_assert_eq(tg__offload_traffic_get(ex, &ps), TG_OK);
  cr_assert_eq(ps.deaths, 1);
  tg_executor_free(ex);
  expect_clean();
}

Test(processes, segfault, .init = setup, .fini = teardown) {
  expect_death("segv", "was killed by signal 11 (Segmentation fault)");
}

Test(processes, abort, .init = setup, .fini = teardown) {
  expect_death("abort", "was killed by signal 6 (Aborted)");
}

Test(processes, exit_3, .init = setup, .fini = teardown) {
  expect_death("exit3", "exited with status 3");
}

/* A crash fails its own run only: the tasks queued behind it in the dead
 * worker run elsewhere. */
Test(processes, crash_spares_other_runs, .init = setup, .fini = teardown) {
  enum { N = 3000 };
  tg_executor *ex = pool(2);
  tg_arg *args = malloc(N * sizeof *args);
  for (int i = 0; i < N; i++) args[i] = tg_arg_node(tg_call(g, "inc", 1, tg_arg_value(tg_int(i))));
  tg_node sum = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "sum_args", args, N, NULL, &sum), TG_OK);
  free(args);
  tg_node bad = add_opts("segv", NULL, 0, "boom", 0, 0);
  tg_future *fs[4];
  cr_assert_eq(tg_executor_submit(ex, g, sum, &fs[0]), TG_OK);
  cr_assert_eq(tg_executor_submit(ex, g, bad, &fs[1]), TG_OK);
  cr_assert_eq(tg_executor_submit(ex, g, sum, &fs[2]), TG_OK);
  cr_assert_eq(tg_executor_submit(ex, g, bad, &fs[3]), TG_OK);
  for (int i = 0; i < 4; i++) {
    tg_value *v = NULL;
    int rc = tg_future_result(fs[i], 20, &v);
    if (i % 2 == 0) {
      cr_assert_eq(rc, TG_OK, "%s", tg_future_errmsg(fs[i]));
      cr_assert_eq(tg_value_int(v), (int64_t)N * (N + 1) / 2);
    } else {
      cr_assert_eq(rc, TG_ETASK);
      cr_assert(strstr(tg_future_errmsg(fs[i]), "was killed by signal 11 (Segmentation fault) "
                                                "while running task 'boom'"),
                "%s", tg_future_errmsg(fs[i]));
    }
    tg_value_unref(v);
    tg_future_free(fs[i]);
  }
  /* A compute returns after the counters of all earlier work are out. */
  tg_node ok = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  cr_assert_eq(compute_int_on(ex, ok), 2, "the pool goes on");
  tg__offload_traffic st;
  cr_assert_eq(tg__offload_traffic_get(ex, &st), TG_OK);
  cr_assert_eq(st.deaths, 2);
  tg_executor_free(ex);
  expect_clean();
}

Test(processes, retry_after_crash, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(2);
  tg_arg a[] = {tg_arg_value(tg_int(2)), tg_arg_value(tg_int(7))};
  tg_node n = add_opts("crash_first", a, 2, NULL, 2, 0);
  tg_value *v = NULL;
  tg_compute_stats st;
  cr_assert_eq(compute_on(ex, n, &v, &st), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_value_int(v), 7);
  cr_assert_eq(st.tasks_run, 3);
  cr_assert_eq(st.tasks_failed, 0); /* two crashed attempts, then a result */
  tg_value_unref(v);
  /* One retry is not enough for three crashes. */
  tg_arg b[] = {tg_arg_value(tg_int(3)), tg_arg_value(tg_int(7))};
  tg_node m = add_opts("crash_first", b, 2, "thrice", 1, 0);
  cr_assert_eq(compute_on(ex, m, &v, &st), TG_ETASK);
  cr_assert(strstr(tg_graph_errmsg(g), "killed by signal 11 (Segmentation fault) while "
                                       "running task 'thrice'"),
            "%s", tg_graph_errmsg(g));
  cr_assert_eq(st.tasks_run, 2);
  tg_executor_free(ex);
  expect_clean();
}

Test(processes, timeout_kills_the_worker, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(2);
  tg_node n = add_opts("spin", NULL, 0, "forever", 0, 0.2);
  double t0 = tgt_now();
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, n, &v, NULL), TG_ETASK);
  double dt = tgt_now() - t0;
  const char *msg = tg_graph_errmsg(g);
  cr_assert(strncmp(msg, "task 'forever' failed: TG_ETIMEDOUT: timed out after "
                         "0.2 s: its worker ",
                    71) == 0,
            "%s", msg);
  cr_assert(strstr(msg, "was killed after"), "%s", msg);
  cr_assert(dt >= 0.2 && dt < 2.0, "%.3f s", dt);
  tg_node ok = tg_call(g, "inc", 1, tg_arg_value(tg_int(5)));
  cr_assert_eq(compute_int_on(ex, ok), 6, "the pool goes on");
  tg_executor_free(ex);
  expect_clean();
}

/* Kill the worker running hang() from outside, mid-run. */
static int kill_hang(tg_executor *ex, tg_node n, tg_value **v) {
  atomic_store(&S->hang_started, 0);
  tg_future *f = NULL;
  cr_assert_eq(tg_executor_submit(ex, g, n, &f), TG_OK);
  for (int i = 0; i < 10000 && !atomic_load(&S->hang_started); i++) tgt_sleep_ms(1);
  cr_assert(atomic_load(&S->hang_started));
  cr_assert_eq(kill(atomic_load(&S->hang_pid), SIGKILL), 0);
  int rc = tg_future_result(f, 20, v);
  if (rc) cr_assert(strstr(tg_future_errmsg(f), "was killed by signal 9 (Killed) while "
                                               "running task 'stuck'"),
                    "%s", tg_future_errmsg(f));
  tg_future_free(f);
  return rc;
}

Test(processes, killed_from_outside, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(2);
  tg_node n = add_opts("hang", (tg_arg[]){tg_arg_value(tg_int(5))}, 1, "stuck", 0, 0);
  tg_value *v = NULL;
  cr_assert_eq(kill_hang(ex, n, &v), TG_ETASK);
  tg_node r = add_opts("hang", (tg_arg[]){tg_arg_value(tg_int(6))}, 1, "retried", 1, 0);
  cr_assert_eq(kill_hang(ex, r, &v), TG_OK);
  cr_assert_eq(tg_value_int(v), 6);
  tg_value_unref(v);
  tg_executor_free(ex);
  expect_clean();
}

/* ---- leaves folded into their sum's record -------------------------------------- */

/* G sums of L leaves fn(a_i, b_i) (a_i = i, b_i = arg(i)) and their total,
 * in g; *leaf: the node of leaf `mark`. */
static tg_node leaf_groups(int G, int L, const char *fn, bool swap, int mark, int64_t arg_at,
                           tg_node *leaf) {
  tg_arg *leaves = malloc((size_t)L * sizeof *leaves), *sums = malloc((size_t)G * sizeof *sums);
  cr_assert(leaves && sums);
  for (int k = 0; k < G; k++) {
    for (int i = 0; i < L; i++) {
      int x = k * L + i;
      int64_t other = x == mark ? arg_at : -1;
      tg_arg a[2] = {tg_arg_value(tg_int(swap ? (other < 0 ? 0 : other) : x)),
                     tg_arg_value(tg_int(swap ? x : other))};
      tg_node n = tg_call(g, fn, 2, a[0], a[1]);
      if (x == mark) *leaf = n;
      leaves[i] = tg_arg_node(n);
    }
    tg_node sk;
    cr_assert_eq(tg_graph_add(g, "sum_args", leaves, (size_t)L, NULL, &sk), TG_OK);
    sums[k] = tg_arg_node(sk);
  }
  tg_node total;
  cr_assert_eq(tg_graph_add(g, "sum_args", sums, (size_t)G, NULL, &total), TG_OK);
  free(leaves);
  free(sums);
  return total;
}

/* A quick leaf folded into its sum's record (it has no record of its own
 * in the parent) whose one call lasts 600 ms: its worker is busy, not
 * calling a task of a cancelled run, and is not killed for it. */
Test(processes, a_long_call_of_a_folded_leaf_keeps_its_worker, .init = setup,
     .fini = teardown) {
  enum { G = 200, L = 40 };
  tg_executor *ex = pool(2);
  tg_node leaf = TG_NODE_NONE;
  tg_node quick = leaf_groups(G, L, "nap_at", false, -1, -1, &leaf);
  int64_t want = (int64_t)G * L * (G * L - 1) / 2;
  cr_assert_eq(compute_int_on(ex, quick), want); /* nap_at measured quick */
  tg_remote_stats a;
  cr_assert_eq(tg_remote_stats_get(ex, &a), TG_OK);
  tg_node slow = leaf_groups(G, L, "nap_at", false, 17 * L + 5, 17 * L + 5, &leaf);
  cr_assert_eq(compute_int_on(ex, slow), want);
  tg_remote_stats z;
  cr_assert_eq(tg_remote_stats_get(ex, &z), TG_OK);
  cr_expect_gt(z.results_kept - a.results_kept, (uint64_t)(G * L) / 2, "not folded");
  cr_expect_eq(z.workers_lost, 0, "a worker was lost");
  tg_executor_free(ex);
  expect_clean();
}

/* A folded leaf that kills its worker: its death is charged to nobody's
 * record, so the leaf goes alone from then on, and its next crash fails
 * the compute naming it (rather than killing workers for ever). */
Test(processes, a_folded_leaf_that_crashes_fails_naming_itself, .init = setup,
     .fini = teardown) {
  enum { G = 200, L = 40 };
  tg_executor *ex = pool(2);
  tg_node leaf = TG_NODE_NONE;
  tg_node quick = leaf_groups(G, L, "crash_first", true, -1, 0, &leaf);
  int64_t want = (int64_t)G * L * (G * L - 1) / 2;
  cr_assert_eq(compute_int_on(ex, quick), want); /* crash_first measured quick */
  tg_node bad = leaf_groups(G, L, "crash_first", true, 23 * L + 7, 1000, &leaf);
  tg_compute_stats st = {0};
  tg_value *v = NULL;
  int rc = compute_on(ex, bad, &v, &st);
  cr_expect_eq(rc, TG_ETASK, "%s", tg_err_name(rc));
  cr_expect_null(v);
  cr_expect_eq(st.failed_node, leaf, "failed: node %u, not the leaf %u", st.failed_node, leaf);
  char key[64], want_key[128];
  cr_assert_gt(tg_node_key(g, leaf, key, sizeof key), 0);
  snprintf(want_key, sizeof want_key, "while running task '%s'", key);
  cr_expect(strstr(tg_graph_errmsg(g), want_key) != NULL, "%s", tg_graph_errmsg(g));
  tg_remote_stats z;
  cr_assert_eq(tg_remote_stats_get(ex, &z), TG_OK);
  cr_expect_eq(z.workers_lost, 2, "%llu workers lost", (unsigned long long)z.workers_lost);
  tg_executor_free(ex);
  expect_clean();
}

/* ---- shared memory ------------------------------------------------------------------ */

Test(processes, big_arrays_cross_without_copy, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(2);
  int64_t len = (int64_t)32 << 20; /* 256 MB of f64 */
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &len);
  double *d = tg_ndarray_data_mut(a);
  for (int64_t i = 0; i < len; i++) d[i] = (double)(i ^ 0x5555);
  tg__offload_traffic before, after;
  cr_assert_eq(tg__offload_traffic_get(ex, &before), TG_OK);
  /* In: the worker sees it in shared memory; out: the same pages come back. */
  tg_node probe = tg_call(g, "probe", 1, tg_arg_value(tg_value_ref(a)));
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, probe, &v, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert(tg_value_bool(tg_list_get(v, 0)), "the worker's copy is not shared memory");
  const tg_value *back = tg_list_get(v, 1);
  cr_assert(in_memfd(tg_ndarray_data(back)));
  cr_assert(tg_value_equal(back, a));
  tg_value_unref(v);
  /* Made in a worker: allocated in shared memory there, not copied. */
  tg_node ramp = tg_call(g, "ramp", 2, tg_arg_value(tg_int(len)), tg_arg_value(tg_int(3)));
  cr_assert_eq(compute_on(ex, ramp, &v, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  const double *r = tg_ndarray_data(v);
  cr_assert(in_memfd(r));
  cr_assert_eq(tg_ndarray_size(v), (size_t)len);
  cr_assert(r[0] == 3 && r[12345] == 12348 && r[len - 1] == (double)(len + 2));
  tg_value_unref(v);
  cr_assert_eq(tg__offload_traffic_get(ex, &after), TG_OK);
  cr_assert_lt(after.sock_out + after.sock_in - before.sock_out - before.sock_in, 4096,
               "array bytes went through a socket");
  cr_assert_eq(after.shm_copied - before.shm_copied, (uint64_t)len * 8, "one copy, in");
  tg_value_unref(a);
  tg_executor_free(ex);
  expect_clean();
}

/* A 64 MiB array there and back: no array byte through a socket; the
 * parent copies it once (going in), the result is the worker's segment
 * mapped here. */
Test(processes, array_of_64_mib_crosses_in_segments, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(2);
  int64_t len = (int64_t)8 << 20; /* 64 MiB of f64 */
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &len);
  double *d = tg_ndarray_data_mut(a);
  for (int64_t i = 0; i < len; i++) d[i] = (double)(i * 3);
  tg__offload_traffic before, after;
  cr_assert_eq(tg__offload_traffic_get(ex, &before), TG_OK);
  tg_node n = tg_call(g, "plus1", 1, tg_arg_value(tg_value_ref(a)));
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, n, &v, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  const double *r = tg_ndarray_data(v);
  cr_assert_eq(tg_ndarray_size(v), (size_t)len);
  cr_assert(r[0] == 1 && r[12345] == 12345 * 3 + 1 && r[len - 1] == (double)((len - 1) * 3 + 1));
  cr_assert(in_memfd(r), "the result is not the worker's segment");
  tg_value_unref(v);
  cr_assert_eq(tg__offload_traffic_get(ex, &after), TG_OK);
  uint64_t bytes = (uint64_t)len * 8;
  cr_assert_lt(after.sock_out + after.sock_in - before.sock_out - before.sock_in, 1 << 20,
               "array bytes went through a socket");
  cr_assert_eq(after.shm_copied - before.shm_copied, bytes, "one copy, in");
  cr_assert_eq(after.shm_passed - before.shm_passed, 2 * bytes, "in and out in segments: %llu",
               (unsigned long long)(after.shm_passed - before.shm_passed));
  cr_assert_eq(after.fds_passed - before.fds_passed, 2);
  tg_value_unref(a);
  tg_executor_free(ex);
  expect_clean();
}

/* A large constant used by many tasks is copied to shared memory once and
 * each worker gets its fd once. */
Test(processes, one_copy_for_many_tasks, .init = setup, .fini = teardown) {
  enum { N = 40 };
  tg_executor *ex = pool(2);
  int64_t len = 1 << 16; /* 512 KB */
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &len);
  double *d = tg_ndarray_data_mut(a);
  for (int64_t i = 0; i < len; i++) d[i] = (double)i / 3;
  tg_arg args[N];
  for (int i = 0; i < N; i++)
    args[i] = tg_arg_node(tg_call(g, "probe", 1, tg_arg_value(tg_value_ref(a))));
  tg_node all = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "pack", args, N, NULL, &all), TG_OK);
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, all, &v, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  for (int i = 0; i < N; i++) {
    const tg_value *r = tg_list_get(v, (size_t)i);
    cr_assert(tg_value_bool(tg_list_get(r, 0)));
    cr_assert(tg_value_equal(tg_list_get(r, 1), a));
    cr_assert(in_memfd(tg_ndarray_data(tg_list_get(r, 1))));
  }
  tg_value_unref(v);
  tg__offload_traffic st;
  cr_assert_eq(tg__offload_traffic_get(ex, &st), TG_OK);
  /* The constant goes to each worker that runs a probe once (one copy,
   * one fd); each result (the same bytes) comes back as a reference to
   * the parent's own segment: no copy, no fd. */
  uint64_t copies = st.shm_copied / ((uint64_t)len * 8);
  cr_assert_eq(st.shm_copied, copies * (uint64_t)len * 8);
  cr_assert(copies == 1 || copies == 2, "copied %llu times", (unsigned long long)copies);
  cr_assert_eq(st.fds_passed, copies, "an fd passed more than once per worker");
  cr_assert_eq(st.shm_passed, (copies + N) * (uint64_t)len * 8);
  cr_assert_lt(st.sock_in + st.sock_out, 65536, "array bytes went through a socket");
  tg_value_unref(a);
  tg_executor_free(ex);
  expect_clean();
}

/* A chain of array tasks stays in the worker that holds the arrays. */
Test(processes, chain_stays_local, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(2);
  int64_t len = 1 << 17; /* 1 MB */
  tg_node x = tg_call(g, "ramp", 2, tg_arg_value(tg_int(len)), tg_arg_value(tg_int(0)));
  for (int i = 0; i < 20; i++) x = tg_call(g, "plus1", 1, tg_arg_node(x));
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, x, &v, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  const double *d = tg_ndarray_data(v);
  cr_assert(d[0] == 20 && d[len - 1] == (double)(len - 1 + 20));
  cr_assert(in_memfd(d));
  tg_value_unref(v);
  tg__offload_traffic st;
  cr_assert_eq(tg__offload_traffic_get(ex, &st), TG_OK);
  tg_remote_stats rs;
  cr_assert_eq(tg_remote_stats_get(ex, &rs), TG_OK);
  cr_assert_eq(rs.results_kept, 20, "a link of the chain came back to the parent");
  cr_assert_eq(st.values_moved, 0, "tasks sent away from their input");
  cr_assert_eq(rs.values_moved, 0);
  cr_assert_eq(st.shm_copied, 0, "an array was copied");
  /* The protocol's own bytes (handshakes, 21 task records and replies)
   * come to ~8 KB; one array is 1 MB. */
  cr_assert_lt(st.sock_in + st.sock_out, 65536, "array bytes went through a socket: %llu",
               (unsigned long long)(st.sock_in + st.sock_out));
  tg_executor_free(ex);
  expect_clean();
}

/* ---- output ------------------------------------------------------------------------- */

typedef struct reader {
  int fd;
  char *buf;
  size_t len, cap;
} reader;

static void *read_all(void *arg) {
  reader *r = arg;
  for (;;) {
    if (r->cap - r->len < 65536) {
      r->cap = r->cap ? r->cap * 2 : 1 << 20;
      r->buf = realloc(r->buf, r->cap);
    }
    ssize_t k = read(r->fd, r->buf + r->len, r->cap - r->len);
    if (k <= 0) break;
    r->len += (size_t)k;
  }
  return NULL;
}

/* Every line of what was read: "W<id>:<seq>:<body>", in order per id. */
static void expect_lines(const reader *rd, int lines, int len) {
  int next[2] = {0, 0};
  char *body = malloc((size_t)len + 1);
  size_t pos = 0;
  while (pos < rd->len) {
    char *nl = memchr(rd->buf + pos, '\n', rd->len - pos);
    cr_assert_not_null(nl, "an unfinished last line");
    *nl = '\0';
    int id, seq, off;
    cr_assert_eq(sscanf(rd->buf + pos, "W%d:%d:%n", &id, &seq, &off), 2, "mangled line");
    cr_assert(id == 0 || id == 1);
    cr_assert_eq(seq, next[id]++, "line %d of worker %d out of order", seq, id);
    for (int i = 0; i < len; i++) body[i] = (char)('a' + (i + id) % 26);
    body[len] = '\0';
    cr_assert_str_eq(rd->buf + pos + off, body, "line %d of %d mangled", seq, id);
    pos = (size_t)(nl - rd->buf) + 1;
  }
  cr_assert_eq(next[0], lines);
  cr_assert_eq(next[1], lines);
  free(body);
}

/* Redirect fd to a pipe read by a thread; the saved fd. */
static int capture(int fd, reader *rd, pthread_t *th) {
  int pfd[2];
  cr_assert_eq(pipe(pfd), 0);
  int saved = dup(fd);
  dup2(pfd[1], fd);
  close(pfd[1]);
  *rd = (reader){pfd[0], NULL, 0, 0};
  pthread_create(th, NULL, read_all, rd);
  return saved;
}

static void uncapture(int fd, int saved, reader *rd, pthread_t th) {
  dup2(saved, fd);
  close(saved);
  pthread_join(th, NULL);
  close(rd->fd);
}

Test(processes, output_lines_stay_whole, .init = setup, .fini = teardown) {
  enum { LINES = 400, LEN = 6000 }; /* lines longer than PIPE_BUF */
  fflush(stdout);
  reader out, err;
  pthread_t to, te;
  int so = capture(1, &out, &to), se = capture(2, &err, &te);
  tg_executor *ex = pool(2);
  tg_node a = tg_call(g, "print", 3, tg_arg_value(tg_int(0)), tg_arg_value(tg_int(LINES)),
                      tg_arg_value(tg_int(LEN)));
  tg_node b = tg_call(g, "print", 3, tg_arg_value(tg_int(1)), tg_arg_value(tg_int(LINES)),
                      tg_arg_value(tg_int(LEN)));
  tg_node sum = tg_call(g, "add", 2, tg_arg_node(a), tg_arg_node(b));
  int64_t r = compute_int_on(ex, sum);
  tg_executor_free(ex); /* the rest of the output is forwarded by then */
  uncapture(1, so, &out, to);
  uncapture(2, se, &err, te);
  cr_assert_eq(r, 1);
  expect_lines(&out, LINES, LEN);
  expect_lines(&err, LINES, LEN);
  free(out.buf);
  free(err.buf);
  expect_clean();
}

/* ---- the parent's death -------------------------------------------------------------- */

/* Pids of this process's children, from every thread's children file. */
static int children(pid_t *out, int max) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    FILE *f = fopen(path, "r");
    int pid;
    while (f && n < max && fscanf(f, "%d", &pid) == 1) out[n++] = pid;
    if (f) fclose(f);
  }
  if (d) closedir(d);
  return n;
}

/* A program that starts a pool, keeps both workers busy (so that only
 * the death signal, not the end of their socket, can end them), tells
 * their pids and waits. */
static _Noreturn void pool_program(int wfd) {
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "processes",
                         .workers = 2};
  tg_executor *ex = NULL;
  if (tg_executor_new(reg, &eo, &ex, NULL) != TG_OK) _exit(2);
  pid_t pids[2];
  if (children(pids, 2) != 2) _exit(3);
  tg_future *f[2];
  for (int i = 0; i < 2; i++)
    if (tg_executor_call(ex, "block", (tg_arg[]){tg_arg_value(tg_int(i))}, 1, &f[i])) _exit(4);
  if (write(wfd, pids, sizeof pids) != (ssize_t)sizeof pids) _exit(5);
  for (;;) pause();
}

Test(processes, workers_die_with_their_parent, .init = setup, .fini = teardown) {
  cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); /* orphans come to us */
  int sigs[] = {SIGKILL, SIGTERM, SIGINT};
  for (int s = 0; s < 3; s++) {
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t c = fork();
    if (c == 0) {
      close(pfd[0]);
      pool_program(pfd[1]);
    }
    close(pfd[1]);
    pid_t w[2];
    cr_assert_eq(read(pfd[0], w, sizeof w), (ssize_t)sizeof w);
    close(pfd[0]);
    for (int i = 0; i < 2; i++)
      cr_assert_neq(getpgid(w[i]), getpgid(c), "a worker shares its parent's process group");
    for (int k = 0; k < 10000 && atomic_load(&S->blocked) < 2 * (s + 1); k++) tgt_sleep_ms(1);
    cr_assert_eq(atomic_load(&S->blocked), 2 * (s + 1), "the workers are not busy");
    cr_assert_eq(kill(c, sigs[s]), 0);
    int st;
    cr_assert_eq(waitpid(c, &st, 0), c);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == sigs[s]);
    for (int i = 0; i < 2; i++) {
      pid_t r = 0;
      for (int k = 0; k < 5000 && r == 0; k++) {
        r = waitpid(w[i], &st, WNOHANG);
        if (r == 0) tgt_sleep_ms(1);
      }
      cr_assert_eq(r, w[i], "worker %d outlived its parent (signal %d)", (int)w[i], sigs[s]);
      cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }
  }
  expect_clean();
}

/* A worker that does not exit when told (stopped here) is killed after a
 * grace period, and reaped. */
Test(processes, shutdown_kills_a_stuck_worker, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(2);
  cr_assert_eq(compute_int_on(ex, tg_call(g, "inc", 1, tg_arg_value(tg_int(1)))), 2);
  pid_t w[2];
  cr_assert_eq(children(w, 2), 2);
  cr_assert_eq(kill(w[0], SIGSTOP), 0);
  double t0 = tgt_now();
  tg_executor_free(ex);
  double dt = tgt_now() - t0;
  cr_assert(dt > 0.5 && dt < 5, "%.3f s", dt);
  expect_clean();
}

/* ---- misc --------------------------------------------------------------------------- */

Test(processes, late_function_fails_clearly, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(1);
  add_fn("late", tgt_fn_pid, 0, 0);
  tg_node n = tg_call(g, "late", 0);
  tg_value *v = NULL;
  /* The workers' verdict on the function stops the run (as on tcp). */
  cr_assert_eq(compute_on(ex, n, &v, NULL), TG_ENOFUNC, "%s", tg_graph_errmsg(g));
  cr_assert_str_eq(tg_graph_errmsg(g),
                   "function 'late' is not in the worker processes' registry (registered "
                   "after the processes pool started)");
  tg_executor_free(ex);
  expect_clean();
}

Test(processes, cancellation_reaches_workers, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(2);
  tg_node slow = tg_call(g, "sleep_ms", 1, tg_arg_value(tg_int(5000)));
  tg_node fail = tg_call(g, "fail", 0);
  tg_node out = tg_call(g, "add", 2, tg_arg_node(slow), tg_arg_node(fail));
  double t0 = tgt_now();
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, out, &v, NULL), TG_ETASK);
  cr_assert_str_eq(tg_graph_errmsg(g), "task 'fail#1' failed: TG_EINVAL: always fails");
  cr_assert_lt(tgt_now() - t0, 2.0, "the sleeping task did not see the cancellation");
  tg_executor_free(ex);
  expect_clean();
}

Test(processes, many_small_tasks, .init = setup, .fini = teardown) {
  enum { N = 20000 };
  tg_executor *ex = pool(2);
  tg_arg *args = malloc(N * sizeof *args);
  for (int i = 0; i < N; i++) args[i] = tg_arg_node(tg_call(g, "inc", 1, tg_arg_value(tg_int(i))));
  tg_node sum = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "sum_args", args, N, NULL, &sum), TG_OK);
  free(args);
  cr_assert_eq(compute_int_on(ex, sum), (int64_t)N * (N + 1) / 2);
  tg__offload_traffic st;
  cr_assert_eq(tg__offload_traffic_get(ex, &st), TG_OK);
  cr_assert_eq(st.tasks, N + 1);
  cr_assert_lt(st.batches, N / 4, "tasks were not batched");
  tg_executor_free(ex);
  expect_clean();
}

/* Write system calls of this process so far (eventfd wake-ups count). */
static long writes_so_far(void) {
  FILE *f = fopen("/proc/self/io", "r");
  cr_assert_not_null(f);
  char line[128];
  long v = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "syscw:", 6) == 0) v = atol(line + 6);
  fclose(f);
  return v;
}

/* A tree of 4,096 leaves, its subtrees quiet on the workers: every reply
 * drops placeholders on the engine's I/O thread, which reaps them at the
 * end of its turn rather than waking itself (two system calls and a turn
 * per reply: about 150 writes for this tree). The compute writes once:
 * the submission's wake-up. */
Test(processes, tree_wakes_the_io_thread_once, .init = setup, .fini = teardown) {
  enum { LEAVES = 4096 };
  tg_executor *ex = pool(2);
  tg_node root = tgt_add_tree(g, "inc", LEAVES);
  cr_assert_eq(compute_int_on(ex, root), (int64_t)LEAVES * (LEAVES + 1) / 2); /* warm */
  long w0 = writes_so_far();
  cr_assert_eq(compute_int_on(ex, root), (int64_t)LEAVES * (LEAVES + 1) / 2);
  long writes = writes_so_far() - w0;
  cr_expect_leq(writes, 2, "%ld writes", writes);
  tg_executor_free(ex);
  expect_clean();
}

/* The same tree: a subtree of 32 leaves goes to a worker ahead of the
 * engine and replies once. The engine sets each leaf it makes ready
 * aside on the subtree's record, unbegun, until the reply: begun, each
 * counted as a result alive here, so a subtree out held back the next
 * ones (one per worker per round trip: about 120 messages for this tree,
 * now 33). */
Test(processes, tree_subtrees_go_in_few_messages, .init = setup, .fini = teardown) {
  enum { LEAVES = 4096 };
  tg_executor *ex = pool(2);
  tg_node root = tgt_add_tree(g, "inc", LEAVES);
  cr_assert_eq(compute_int_on(ex, root), (int64_t)LEAVES * (LEAVES + 1) / 2); /* warm */
  tg_remote_stats a, b;
  cr_assert_eq(tg_remote_stats_get(ex, &a), TG_OK);
  cr_assert_eq(compute_int_on(ex, root), (int64_t)LEAVES * (LEAVES + 1) / 2);
  cr_assert_eq(tg_remote_stats_get(ex, &b), TG_OK);
  cr_expect_eq(b.tasks_sent - a.tasks_sent, 2 * LEAVES - 1);
  uint64_t msgs = b.batches_sent - a.batches_sent;
  cr_expect_leq(msgs, 64, "%llu messages", (unsigned long long)msgs);
  tg_executor_free(ex);
  expect_clean();
}
