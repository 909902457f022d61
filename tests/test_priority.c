/* tests/test_priority.c: task priorities (tg_node_opts.priority,
 * tg_submit_opts.priority, graph.json "priority"): among ready tasks the
 * higher priority starts first, on every backend with one worker (sync,
 * threads, processes, tcp with a worker process of one thread); equal
 * priorities keep the plan's order; a task's inputs keep their own
 * priority. The order is read from a log file the tasks append to, so it
 * is the order the calls were made in, wherever they ran. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_cli_util.h"
#include "test_proc.h"
#include "tgraph/executor.h"
#include "tgraph/remote.h"

/* plog(path, label, ...): impure; appends "label\n" to the file path (one
 * write, O_APPEND: whole lines in call order from any process); further
 * arguments are only there to make the call wait for them. */
static int fn_plog(tg_task_ctx *ctx, tg_value *const *args, size_t nargs, tg_value **out) {
  if (nargs < 2) return tg_task_fail(ctx, TG_EINVAL, "plog(path, label, ...)");
  char line[128];
  int n = snprintf(line, sizeof line, "%s\n", tg_str_data(args[1], NULL));
  int fd = open(tg_str_data(args[0], NULL), O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (fd < 0) return tg_task_fail(ctx, -errno, "cannot open the log");
  ssize_t w = write(fd, line, (size_t)n);
  close(fd);
  if (w != n) return tg_task_fail(ctx, TG_EIO, "short write to the log");
  *out = tg_int(0);
  return *out ? TG_OK : TG_ENOMEM;
}

/* hold(path): impure; creates path.started, then waits until path exists
 * (or the task is cancelled, or 60 s pass), and returns no sooner than
 * 10 ms after it started, so a test can keep the only worker busy while
 * it submits more, and the backends learn that hold takes a while. */
static int fn_hold(tg_task_ctx *ctx, tg_value *const *args, size_t nargs, tg_value **out) {
  (void)nargs;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_nsec += 10000000;
  if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
  char started[512];
  snprintf(started, sizeof started, "%s.started", tg_str_data(args[0], NULL));
  int fd = open(started, O_WRONLY | O_CREAT, 0600);
  if (fd >= 0) close(fd);
  struct timespec ms = {0, 1000000};
  for (int i = 0; i < 60000 && access(tg_str_data(args[0], NULL), F_OK) != 0; i++) {
    if (tg_task_cancelled(ctx)) return tg_task_fail(ctx, TG_ECANCELED, "cancelled");
    nanosleep(&ms, NULL);
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) != 0) {
  }
  *out = tg_int(1);
  return *out ? TG_OK : TG_ENOMEM;
}

static tg_registry *suite_registry(void) {
  tg_registry *r;
  if (tg_registry_new(&r) != TG_OK) return NULL;
  tg_func_def defs[] = {
      {TG_FUNC_DEF_V1, "plog", "1", fn_plog, 0, -1, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "hold", "1", fn_hold, 0, 1, NULL, NULL, 0, NULL, NULL},
  };
  for (size_t i = 0; i < 2; i++)
    if (tg_registry_add(r, &defs[i], NULL) != TG_OK) {
      tg_registry_free(r);
      return NULL;
    }
  return r;
}

static tg_registry *reg;
static tg_graph *g;
static char dir[64], logpath[128];
static pid_t worker_pid; /* the tcp worker, 0: none */
static char worker_ep[128];

static void setup(void) {
  reg = suite_registry();
  cr_assert_not_null(reg);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  snprintf(dir, sizeof dir, "/tmp/tg_prio.XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(logpath, sizeof logpath, "%s/log", dir);
}

static void teardown(void) {
  if (worker_pid > 0) {
    kill(worker_pid, SIGKILL);
    cr_expect_eq(waitpid(worker_pid, NULL, 0), worker_pid);
    worker_pid = 0;
  }
  tg_graph_free(g);
  tg_registry_free(reg);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_expect_eq(system(cmd), 0);
}

TestSuite(priority, .init = setup, .fini = teardown, .timeout = 120);

/* Fork a worker serving this suite's functions on loopback with one pool
 * thread; its address in worker_ep. */
static void start_worker(void) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
    tg_registry *r = suite_registry();
    int fd = p[1];
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                        .nthreads = 1, .stop = tproc_stop_on_term(),
                        .on_ready = tproc_say_ready, .ctx = &fd};
    tg_error err;
    tg_error_clear(&err);
    int rc = r ? tg_worker_serve(r, &o, &err) : TG_ENOMEM;
    if (rc) dprintf(fd, "ERROR %s\n", err.msg);
    _exit(rc ? 1 : 0);
  }
  close(p[1]);
  worker_pid = pid;
  tproc_read_line(p[0], worker_ep, sizeof worker_ep, 10);
  close(p[0]);
  cr_assert(strncmp(worker_ep, "tcp://", 6) == 0, "worker: %s", worker_ep);
}

static const char *const backends[] = {"sync", "threads", "processes", "tcp"};

/* An executor of `backend` with one worker (tcp: the forked worker, whose
 * pool has one thread). */
static tg_executor *executor(const char *backend) {
  bool tcp = strcmp(backend, "tcp") == 0;
  if (tcp && worker_pid == 0) start_worker();
  const char *addr[] = {worker_ep};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend,
                         .workers = 1, .connect = tcp ? addr : NULL,
                         .nconnect = tcp ? 1 : 0};
  tg_executor *ex = NULL;
  tg_error err;
  cr_assert_eq(tg_executor_new(reg, &eo, &ex, &err), TG_OK, "%s: %s", backend, err.msg);
  return ex;
}

/* plog(logpath, label[, after]) with priority prio. */
static tg_node plog(const char *label, int prio, tg_node after) {
  tg_arg args[3] = {tg_arg_value(tg_str_c(logpath)), tg_arg_value(tg_str_c(label)),
                    tg_arg_node(after)};
  tg_node_opts o = {.version = TG_NODE_OPTS_V2, .key = label, .retries = -1,
                    .cache = -1, .priority = prio};
  tg_node n;
  cr_assert_eq(tg_graph_add(g, "plog", args, after == TG_NODE_NONE ? 2 : 3, &o, &n),
               TG_OK, "%s", tg_graph_errmsg(g));
  return n;
}

/* The log's lines joined by spaces; the log is then emptied. */
static const char *take_log(void) {
  static char text[4096];
  const char *raw = tcli_read_text(logpath, false);
  snprintf(text, sizeof text, "%.4000s", raw);
  for (char *c = text; *c; c++)
    if (*c == '\n') *c = c[1] ? ' ' : '\0';
  unlink(logpath);
  return text;
}

static void compute_on(const char *backend, const tg_node *outs, size_t n) {
  tg_executor *ex = executor(backend);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  tg_value *res[16] = {NULL};
  cr_assert_eq(tg_compute(g, outs, n, &co, res), TG_OK, "%s: %s", backend,
               tg_graph_errmsg(g));
  for (size_t i = 0; i < n; i++) tg_value_unref(res[i]);
  tg_executor_free(ex);
}

/* Six independent tasks with distinct priorities, listed out of order,
 * made ready together by the one they all wait for. */
Test(priority, released_together_run_by_priority) {
  tg_node gate = plog("G", 0, TG_NODE_NONE);
  static const int prio[] = {3, -2, 7, 0, 5, -9};
  tg_node outs[6];
  for (int i = 0; i < 6; i++) {
    char label[16];
    snprintf(label, sizeof label, "p%d", prio[i]);
    outs[i] = plog(label, prio[i], gate);
  }
  for (size_t b = 0; b < 4; b++) {
    compute_on(backends[b], outs, 6);
    cr_expect_str_eq(take_log(), "G p7 p5 p3 p0 p-2 p-9", "%s", backends[b]);
  }
}

/* The same for tasks ready when the compute starts. */
Test(priority, ready_at_start_run_by_priority) {
  static const int prio[] = {3, -2, 7, 0, 5, -9};
  tg_node outs[6];
  for (int i = 0; i < 6; i++) {
    char label[16];
    snprintf(label, sizeof label, "p%d", prio[i]);
    outs[i] = plog(label, prio[i], TG_NODE_NONE);
  }
  for (size_t b = 0; b < 4; b++) {
    compute_on(backends[b], outs, 6);
    cr_expect_str_eq(take_log(), "p7 p5 p3 p0 p-2 p-9", "%s", backends[b]);
  }
}

/* Equal priorities keep the plan's order: the same on every backend as on
 * sync (which follows the plan exactly), and after the more urgent ones. */
Test(priority, equal_priorities_keep_plan_order) {
  tg_node gate = plog("G", 0, TG_NODE_NONE);
  tg_node a = plog("a", 2, gate), b = plog("b", 2, gate), c = plog("c", 2, gate),
          d = plog("d", 2, gate), e = plog("e", 0, gate);
  tg_node outs[] = {e, c, a, d, b};
  char plan[64];
  compute_on("sync", outs, 5);
  snprintf(plan, sizeof plan, "%s", take_log());
  cr_assert_eq(strlen(plan), strlen("G a b c d e"), "%s", plan);
  cr_expect(strncmp(plan, "G ", 2) == 0 && strcmp(plan + 9, " e") == 0, "%s", plan);
  for (const char *l = "abcd"; *l; l++) cr_expect_not_null(strchr(plan + 2, *l), "%s", plan);
  for (size_t k = 1; k < 4; k++) {
    compute_on(backends[k], outs, 5);
    cr_expect_str_eq(take_log(), plan, "%s", backends[k]);
  }
}

/* A task's priority is its own: H (10) waits for L (-1), which still runs
 * after X (1) and M (0), ready beside it: priority does not flow to the
 * inputs. */
Test(priority, dependencies_keep_their_own_priority) {
  tg_node gate = plog("G", 0, TG_NODE_NONE);
  tg_node l = plog("L", -1, gate);
  tg_node h = plog("H", 10, l);
  tg_node m = plog("M", 0, gate);
  tg_node x = plog("X", 1, gate);
  tg_node outs[] = {h, m, x};
  for (size_t b = 0; b < 4; b++) {
    compute_on(backends[b], outs, 3);
    cr_expect_str_eq(take_log(), "G X M L H", "%s", backends[b]);
  }
}

/* Without priorities, the plan's order: the outputs' order. */
Test(priority, no_priorities_plan_order) {
  tg_node outs[4];
  const char *labels[] = {"w", "x", "y", "z"};
  for (int i = 0; i < 4; i++) outs[i] = plog(labels[i], 0, TG_NODE_NONE);
  for (size_t b = 0; b < 4; b++) {
    compute_on(backends[b], outs, 4);
    const char *got = take_log();
    cr_expect_str_eq(got, "w x y z", "%s: %s", backends[b], got);
  }
}

/* Wait (at most 60 s) until path exists. */
static void wait_for_file(const char *path) {
  struct timespec ms = {0, 1000000};
  for (int i = 0; i < 60000 && access(path, F_OK) != 0; i++) nanosleep(&ms, NULL);
  cr_assert_eq(access(path, F_OK), 0, "%s never appeared", path);
}

static tg_future *submit(tg_executor *ex, tg_node n, const tg_submit_opts *so) {
  tg_future *f = NULL;
  cr_assert_eq(tg_executor_submit_opts(ex, g, &n, 1, so, &f), TG_OK, "%s",
               tg_executor_errmsg(ex));
  return f;
}

/* While the only worker is held, submissions with priorities queue; once
 * it is free they start by priority: the submission's plus the node's
 * (-10 + 5 = -5). Backends that send work ahead to a busy worker
 * (processes, tcp) send a second hold there first (they know hold is
 * slow from a first one), so the submissions all wait in the client. */
Test(priority, submissions_run_by_priority) {
  char gate[160];
  snprintf(gate, sizeof gate, "%s/open", dir);
  tg_arg ha = tg_arg_value(tg_str_c(gate));
  tg_node hold;
  cr_assert_eq(tg_graph_add(g, "hold", &ha, 1, NULL, &hold), TG_OK);
  tg_node sm1 = plog("s-1", 0, TG_NODE_NONE), s0 = plog("s0", 0, TG_NODE_NONE);
  tg_node sm5 = plog("s-5", -10, TG_NODE_NONE), s5 = plog("s5", 0, TG_NODE_NONE);
  char started[200];
  snprintf(started, sizeof started, "%s.started", gate);
  for (size_t b = 1; b < 4; b++) { /* sync runs a submission at once */
    tg_executor *ex = executor(backends[b]);
    tcli_write_file(gate, "");
    tg_future *warm = submit(ex, hold, NULL);
    cr_assert_eq(tg_future_wait(warm, 60), TG_OK);
    tg_future_free(warm);
    unlink(gate);
    unlink(started);
    tg_future *fs[6];
    fs[0] = submit(ex, hold, NULL);
    wait_for_file(started); /* the worker is busy from here */
    fs[5] = submit(ex, hold, NULL); /* sent ahead, or queued */
    tg_submit_opts m1 = {TG_SUBMIT_OPTS_V1, -1}, p5 = {TG_SUBMIT_OPTS_V1, 5};
    fs[1] = submit(ex, sm1, &m1);
    fs[2] = submit(ex, s0, NULL);
    fs[3] = submit(ex, sm5, &p5);
    fs[4] = submit(ex, s5, &p5);
    tcli_write_file(gate, "");
    for (int i = 0; i < 6; i++) {
      tg_value *v = NULL;
      cr_expect_eq(tg_future_result(fs[i], 60, &v), TG_OK, "%s: %s", backends[b],
                   tg_future_errmsg(fs[i]));
      tg_value_unref(v);
      tg_future_free(fs[i]);
    }
    tg_executor_free(ex);
    cr_expect_str_eq(take_log(), "s5 s0 s-1 s-5", "%s", backends[b]);
  }
}

/* tg_graph_map gives its chunks the map's priority. */
Test(priority, map_chunks_take_the_priority) {
  tg_node low = plog("low", -1, TG_NODE_NONE);
  tg_arg ins[2] = {tg_arg_value(tg_str_c(logpath)), tg_arg_value(tg_str_c(logpath))};
  tg_arg extra[1] = {tg_arg_value(tg_str_c("mapped"))};
  tg_node_opts o = {.version = TG_NODE_OPTS_V2, .retries = -1, .cache = -1,
                    .priority = 4};
  tg_node m;
  cr_assert_eq(tg_graph_map(g, "plog", ins, 2, extra, 1, 1, &o, &m), TG_OK, "%s",
               tg_graph_errmsg(g));
  tg_node outs[] = {low, m};
  for (size_t b = 0; b < 4; b++) {
    compute_on(backends[b], outs, 2);
    cr_expect_str_eq(take_log(), "mapped mapped low", "%s", backends[b]);
  }
}

Test(priority, bad_options_are_rejected) {
  tg_arg a[2] = {tg_arg_value(tg_str_c(logpath)), tg_arg_value(tg_str_c("x"))};
  tg_node_opts o = {.version = 3, .retries = -1, .cache = -1, .priority = 1};
  cr_expect_eq(tg_graph_add(g, "plog", a, 2, &o, NULL), TG_EINVAL);
  cr_expect_str_eq(tg_graph_errmsg(g), "tg_node_opts.version is 3, expected 1 or 2");
  cr_expect_eq(tg_graph_size(g), 0);
  /* A version 1 caller's struct has no priority: nothing past timeout is
   * read. */
  tg_node_opts v1 = {.version = TG_NODE_OPTS_V1, .retries = -1, .cache = -1,
                     .priority = 99};
  tg_node n = plog("after", 1, TG_NODE_NONE), k;
  tg_arg b[2] = {tg_arg_value(tg_str_c(logpath)), tg_arg_value(tg_str_c("v1"))};
  cr_assert_eq(tg_graph_add(g, "plog", b, 2, &v1, &k), TG_OK);
  tg_node outs[] = {k, n};
  compute_on("sync", outs, 2);
  cr_expect_str_eq(take_log(), "after v1");
  tg_executor *ex = executor("threads");
  tg_submit_opts so = {.version = 2, .priority = 1};
  tg_future *f = (tg_future *)&so;
  cr_expect_eq(tg_executor_submit_opts(ex, g, &n, 1, &so, &f), TG_EINVAL);
  cr_expect_null(f);
  cr_expect_str_eq(tg_executor_errmsg(ex), "tg_submit_opts.version is 2, expected 1");
  tg_executor_free(ex);
}

/* Priorities at the ends of int's range add up without wrapping. */
Test(priority, extreme_priorities_clamp) {
  tg_node a = plog("min", INT_MIN, TG_NODE_NONE), b = plog("max", INT_MAX, TG_NODE_NONE);
  tg_node c = plog("zero", 0, TG_NODE_NONE);
  tg_executor *ex = executor("sync");
  tg_node outs[] = {a, c, b};
  tg_submit_opts so = {TG_SUBMIT_OPTS_V1, INT_MAX};
  tg_future *fs[3];
  cr_assert_eq(tg_executor_submit_opts(ex, g, outs, 3, &so, fs), TG_OK);
  for (int i = 0; i < 3; i++) {
    cr_expect_eq(tg_future_wait(fs[i], 60), TG_OK);
    tg_future_free(fs[i]);
  }
  /* max and zero clamp to INT_MAX alike: plan order between them */
  cr_expect_str_eq(take_log(), "zero max min");
  tg_executor_free(ex);
}

/* ---- graph.json through the CLI -------------------------------------------------- */

static void write_graph(const char *path, const char *text) { tcli_write_file(path, text); }

Test(priority, graphjson_priority_through_tgraph_run) {
  char gpath[160];
  snprintf(gpath, sizeof gpath, "%s/g.json", dir);
  char text[2048];
  snprintf(text, sizeof text,
           "{\"tgraph\": 1, \"tasks\": {\n"
           " \"gate\": {\"fn\": \"sh\", \"args\": [\"echo G >> %s\"]},\n"
           " \"low\":  {\"fn\": \"sh\", \"args\": [\"echo low >> %s\", {\"ref\": \"gate\"}],"
           " \"priority\": -3},\n"
           " \"mid\":  {\"fn\": \"sh\", \"args\": [\"echo mid >> %s\", {\"ref\": \"gate\"}]},\n"
           " \"high\": {\"fn\": \"sh\", \"args\": [\"echo high >> %s\", [{\"ref\": \"gate\"}]],"
           " \"priority\": 2.0}\n"
           "}, \"outputs\": [\"low\", \"mid\", \"high\"]}\n",
           logpath, logpath, logpath, logpath);
  write_graph(gpath, text);
  static const char *const scheds[][2] = {
      {"--scheduler=sync", "--workers=1"}, {"--scheduler=threads", "--workers=1"},
      {"--scheduler=processes", "--workers=1"}};
  for (size_t s = 0; s < 3; s++) {
    char *args[] = {"tgraph", "run", gpath, (char *)scheds[s][0], (char *)scheds[s][1],
                    NULL};
    tcli_how how = {.timeout = 120};
    tcli_result r = tcli_run(tcli_bin(), &how, args);
    cr_expect_eq(r.status, 0, "%s: %s", scheds[s][0], r.err);
    tcli_result_free(&r);
    cr_expect_str_eq(take_log(), "G high mid low", "%s", scheds[s][0]);
  }
}

/* A bad "priority": the file, line and column of its value, and what is
 * wrong. */
static void bad_priority(const char *value) {
  char gpath[160], text[512], want[512];
  snprintf(gpath, sizeof gpath, "%s/bad.json", dir);
  int col = snprintf(text, sizeof text,
                     "{\"tgraph\": 1,\n \"tasks\": {\"a\": {\"fn\": \"add\", \"args\": [1, 2], "
                     "\"priority\": ") -
            (int)strlen("{\"tgraph\": 1,\n") + 1;
  snprintf(text + strlen(text), sizeof text - strlen(text), "%s}}}\n", value);
  write_graph(gpath, text);
  char *args[] = {"tgraph", "run", gpath, NULL};
  tcli_how how = {.timeout = 60};
  tcli_result r = tcli_run(tcli_bin(), &how, args);
  snprintf(want, sizeof want,
           "%s:2:%d: \"priority\" must be an int from -2147483648 to 2147483647", gpath, col);
  cr_expect_neq(r.status, 0, "%s accepted", value);
  cr_expect(strstr(r.err, want) != NULL, "%s: stderr %s\nwanted %s", value, r.err, want);
  tcli_result_free(&r);
}

Test(priority, graphjson_bad_priority_values) {
  bad_priority("\"high\"");
  bad_priority("1.5");
  bad_priority("2147483648");
  bad_priority("-2147483649");
  bad_priority("true");
  bad_priority("null");
}
