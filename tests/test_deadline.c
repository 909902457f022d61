/* tests/test_deadline.c: a compute that ends early (its deadline passes,
 * a task fails, its client is killed) ends at once, even when a task
 * ignores cancellation, and leaves no process running its tasks.
 *
 * On processes: tasks that call pause(), spin, or whose worker is
 * stopped with SIGSTOP; the compute returns TG_ETIMEDOUT a little after
 * its deadline, the worker that ran the task is gone (/proc), and the
 * executor serves the next compute with a replacement. On tcp: an `sh`
 * command on a worker is gone soon after the compute's deadline, and
 * after its client was killed with SIGKILL; the worker still serves. On
 * threads: tg_compute returns at the deadline while the task's thread
 * still runs.
 *
 * Tasks report their process (or their command's) pid through a file,
 * since they run in other processes. Time bounds are upper bounds with
 * wide margins: the machine running the tests may be loaded. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tgraph/builtins.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "test_cli_util.h"
#include "test_funcs.h"
#include "test_proc.h"

#define MARGIN 5.0 /* seconds allowed past a deadline on a loaded machine */

/* ---- task functions ------------------------------------------------------------ */

/* Write this process's pid to path (atomically: a reader never sees a
 * partial number). */
static void write_pid(const char *path) {
  char tmp[512], num[32];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  snprintf(num, sizeof num, "%d\n", (int)getpid());
  fputs(num, f);
  fclose(f);
  rename(tmp, path);
}

/* pause_forever(path): records its pid, then waits for a signal forever,
 * never looking at tg_task_cancelled(). */
static int fn_pause(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)ctx, (void)n, (void)out;
  write_pid(tg_str_data(args[0], NULL));
  for (;;) pause();
  return TG_OK; /* not reached */
}

/* spin(path): records its pid, then burns CPU forever, ignoring
 * cancellation. */
static int fn_spin(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)ctx, (void)n, (void)out;
  write_pid(tg_str_data(args[0], NULL));
  for (volatile unsigned long x = 0;; x++) {
  }
  return TG_OK; /* not reached */
}

/* polite(path): records its pid, then waits until cancelled (so only a
 * stopped process keeps it from ending). */
static int fn_polite(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)n, (void)out;
  write_pid(tg_str_data(args[0], NULL));
  while (!tg_task_cancelled(ctx)) tgt_sleep_ms(5);
  return tg_task_fail(ctx, TG_ECANCELED, "cancelled");
}

/* fail_after(ms): fails after ms milliseconds. */
static int fn_fail_after(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)n, (void)out;
  tgt_sleep_ms((long)tg_value_int(args[0]));
  return tg_task_fail(ctx, TG_EINVAL, "failed on purpose");
}

/* nap(ms): sleeps ms milliseconds without looking at tg_task_cancelled(),
 * then returns ms. */
static int fn_nap(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)ctx, (void)n;
  tgt_sleep_ms((long)tg_value_int(args[0]));
  return tgt_result(tg_int(tg_value_int(args[0])), out);
}

static tg_registry *make_reg(void) {
  tg_registry *r = NULL;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(r), TG_OK);
  struct {
    const char *name;
    tg_task_fn fn;
  } defs[] = {{"pause_forever", fn_pause}, {"spin", fn_spin}, {"polite", fn_polite},
              {"fail_after", fn_fail_after}, {"inc", tgt_fn_inc}, {"both", tgt_fn_add}, {"nap", fn_nap}};
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    int nargs = strcmp(defs[i].name, "both") == 0 ? 2 : 1;
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = defs[i].name,
                     .fn_version = "1", .fn = defs[i].fn,
                     .flags = 0, .nargs = nargs};
    cr_assert_eq(tg_registry_add(r, &d, NULL), TG_OK);
  }
  return r;
}

/* ---- helpers --------------------------------------------------------------------- */

static tg_registry *reg;
static char dir[64];

static void setup(void) {
  reg = make_reg();
  snprintf(dir, sizeof dir, "/tmp/tg_deadline.XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_expect_eq(system(cmd), 0);
  tg_registry_free(reg);
}

static double now(void) { return tgt_now(); }

/* dir/name, in a static buffer per slot. */
static const char *path_of(const char *name) {
  static char buf[4][256];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 256, "%s/%s", dir, name);
  return p;
}

/* The pid written to path, waiting up to `secs` for it; 0 if none. */
static pid_t wait_pid(const char *path, double secs) {
  double end = now() + secs;
  do {
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
      if (fscanf(f, "%d", &pid) != 1) pid = 0;
      fclose(f);
    }
    if (pid > 0) return pid;
    tgt_sleep_ms(10);
  } while (now() < end);
  return 0;
}

/* Whether pid is a live process (not gone, not a zombie). */
static bool running(pid_t pid) {
  char state;
  pid_t ppid;
  return tproc_stat(pid, &state, &ppid) && state != 'Z' && state != 'X';
}

/* Seconds until pid stops running, at most `secs` (then -1). */
static double gone_within(pid_t pid, double secs) {
  double t0 = now();
  while (running(pid)) {
    if (now() - t0 > secs) return -1;
    tgt_sleep_ms(5);
  }
  return now() - t0;
}

static tg_executor *executor(const char *backend, unsigned workers) {
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend,
                        .workers = workers};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s", err.msg);
  return ex;
}

/* Compute node `out` of g on ex with a timeout: rc, seconds in *secs. */
static int compute(tg_graph *g, tg_node out, tg_executor *ex, double timeout,
                   tg_value **res, double *secs) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .timeout = timeout};
  double t0 = now();
  int rc = tg_compute(g, &out, 1, &o, res);
  *secs = now() - t0;
  return rc;
}

/* Compute node `out` of g on ex with a timeout: it fails with code `rc`
 * and a message holding msg, within `bound` seconds; the seconds it took. */
static double ends(tg_graph *g, tg_node out, tg_executor *ex, double timeout, int want,
                   const char *msg, double bound) {
  tg_value *v = NULL;
  double secs;
  int rc = compute(g, out, ex, timeout, &v, &secs);
  cr_assert_eq(rc, want, "%s: %s", tg_err_name(rc), tg_graph_errmsg(g));
  cr_assert_null(v);
  cr_expect(strstr(tg_graph_errmsg(g), msg) != NULL, "%s", tg_graph_errmsg(g));
  cr_expect_leq(secs, bound, "returned after %.2f s", secs);
  return secs;
}

/* ex still computes: inc(41) is 42. */
static void still_serves(tg_executor *ex) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "inc", 1, tg_arg_value(tg_int(41)));
  tg_value *v = NULL;
  double secs;
  cr_assert_eq(compute(g, n, ex, 60, &v, &secs), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_value_int(v), 42);
  tg_value_unref(v);
  tg_graph_free(g);
}

/* fn(dir/name) with a 1.5 s timeout on ex: returns at about the deadline
 * with TG_ETIMEDOUT, and the pid the task recorded is no longer running
 * right after. */
static pid_t times_out(tg_executor *ex, const char *fn, const char *name) {
  still_serves(ex); /* workers up: the task starts well before its deadline */
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, fn, 1, tg_arg_value(tg_str_c(path_of(name))));
  char want[128];
  snprintf(want, sizeof want, "the compute timed out after 1.5 s: 1 task still running (%s",
           fn);
  cr_expect_geq(ends(g, n, ex, 1.5, TG_ETIMEDOUT, want, 1.5 + MARGIN), 1.4, "%s", fn);
  tg_graph_free(g);
  pid_t pid = wait_pid(path_of(name), 0);
  cr_assert_gt(pid, 0, "the task did not record its pid");
  return pid;
}

/* ---- processes ------------------------------------------------------------------- */

TestSuite(deadline, .init = setup, .fini = teardown); /* hangs: the suite timeout */

/* fn(dir/name) times out on one process worker, which is gone within a
 * second; its replacement serves. */
static void processes_case(const char *fn, const char *name) {
  tg_executor *ex = executor("processes", 1);
  pid_t pid = times_out(ex, fn, name);
  cr_expect_geq(gone_within(pid, 1.0), 0, "worker %d still runs the task", (int)pid);
  still_serves(ex);
  tg_executor_free(ex);
}

Test(deadline, processes_pause) { processes_case("pause_forever", "pause"); }
Test(deadline, processes_spin) { processes_case("spin", "spin"); }

/* Stops the worker that records its pid in dir/stopped. */
static void *stopper(void *arg) {
  (void)arg;
  pid_t pid = wait_pid(path_of("stopped"), 30);
  if (pid > 0) kill(pid, SIGSTOP);
  return NULL;
}

Test(deadline, processes_stopped_worker) {
  tg_executor *ex = executor("processes", 1);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, stopper, NULL), 0);
  pid_t pid = times_out(ex, "polite", "stopped");
  pthread_join(th, NULL);
  cr_expect_geq(gone_within(pid, 1.0), 0, "stopped worker %d is still there", (int)pid);
  still_serves(ex);
  tg_executor_free(ex);
}

/* A failure ends the compute without a timeout: the other worker's
 * spinning task does not hold it up, and its worker is replaced. */
Test(deadline, processes_failure_ends_spinning_task) {
  tg_executor *ex = executor("processes", 2);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node s = tg_call(g, "spin", 1, tg_arg_value(tg_str_c(path_of("spin"))));
  tg_node f = tg_call(g, "fail_after", 1, tg_arg_value(tg_int(300)));
  tg_node both = tg_call(g, "both", 2, tg_arg_node(s), tg_arg_node(f));
  ends(g, both, ex, 0, TG_ETASK, "failed on purpose", 0.3 + MARGIN);
  pid_t pid = wait_pid(path_of("spin"), 0);
  cr_assert_gt(pid, 0);
  cr_expect_geq(gone_within(pid, 1.0), 0, "worker %d still spins", (int)pid);
  still_serves(ex);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* ---- tcp ------------------------------------------------------------------------- */

static pid_t worker_pid;
static char worker_ep[128];

/* Fork a worker serving reg (builtins and the functions above) on a free
 * loopback port; its address in worker_ep. */
static void start_worker(void) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  worker_pid = tproc_fork();
  if (worker_pid == 0) {
    close(p[0]);
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                        .nthreads = 2, .on_ready = tproc_say_ready, .ctx = &p[1]};
    _exit(tg_worker_serve(reg, &o, NULL) ? 1 : 0);
  }
  close(p[1]);
  tproc_read_line(p[0], worker_ep, sizeof worker_ep, 20);
  close(p[0]);
  cr_assert(strncmp(worker_ep, "tcp://", 6) == 0, "the worker did not start: '%s'", worker_ep);
}

static void stop_worker(void) {
  cr_expect_eq(waitpid(worker_pid, NULL, WNOHANG), 0, "the worker died");
  kill(worker_pid, SIGKILL);
  waitpid(worker_pid, NULL, 0);
}

static tg_executor *tcp_executor(void) {
  const char *addr[1] = {worker_ep};
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                        .nconnect = 1};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s", err.msg);
  return ex;
}

/* A graph of one sh task that records the pid of its command (a `sleep
 * 300`, which exec keeps) in dir/name. */
static tg_graph *sh_sleep(const char *name, tg_node *out) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "echo $$ > '%s'; exec sleep 300", path_of(name));
  *out = tg_call(g, "sh", 1, tg_arg_value(tg_str_c(cmd)));
  return g;
}

/* The compute's deadline reaches the worker: the sh command it started
 * is signalled, and the worker serves the next compute. */
Test(deadline, tcp_timeout_signals_sh) {
  start_worker();
  tg_executor *ex = tcp_executor();
  still_serves(ex); /* connected: the command starts well before the deadline */
  tg_node n;
  tg_graph *g = sh_sleep("sh", &n);
  ends(g, n, ex, 2, TG_ETIMEDOUT, "timed out after 2 s", 2 + MARGIN);
  pid_t pid = wait_pid(path_of("sh"), 0);
  cr_assert_gt(pid, 0, "the command did not record its pid");
  double gone = gone_within(pid, 3.0);
  cr_expect_geq(gone, 0, "the command %d outlived the compute by 3 s", (int)pid);
  still_serves(ex);
  tg_graph_free(g);
  tg_executor_free(ex);
  stop_worker();
}

/* A client killed with SIGKILL while its sh command runs on a worker: the
 * worker sees the connection close and cancels the client's tasks, so
 * the command is signalled within about a second; the worker serves the
 * next client. */
Test(deadline, tcp_killed_client_cancels_its_tasks) {
  start_worker();
  pid_t client = tproc_fork();
  if (client == 0) {
    tg_executor *ex = tcp_executor();
    tg_node n;
    tg_graph *g = sh_sleep("sh", &n);
    tg_value *v = NULL;
    double secs;
    compute(g, n, ex, 0, &v, &secs);
    _exit(3); /* not reached: the test kills it first */
  }
  pid_t pid = wait_pid(path_of("sh"), 30);
  cr_assert_gt(pid, 0, "the command did not start");
  cr_assert(running(pid));
  kill(client, SIGKILL);
  cr_assert_eq(waitpid(client, NULL, 0), client);
  double gone = gone_within(pid, 10.0);
  cr_expect_geq(gone, 0, "the command %d outlived its killed client by 10 s", (int)pid);
  cr_expect_leq(gone, 3.0, "the command outlived its killed client by %.2f s", gone);
  tg_executor *ex = tcp_executor();
  still_serves(ex);
  tg_executor_free(ex);
  stop_worker();
}

/* A task that ignores cancellation on a worker: the client still returns
 * at the deadline (the worker's thread stays busy until the function
 * returns: its other thread serves on). */
Test(deadline, tcp_pause_returns_at_deadline) {
  start_worker();
  tg_executor *ex = tcp_executor();
  pid_t pid = times_out(ex, "pause_forever", "pause");
  cr_expect_eq(pid, worker_pid, "the task ran in %d, not in the worker", (int)pid);
  still_serves(ex);
  tg_executor_free(ex);
  stop_worker();
}

/* ---- the tgraph program ------------------------------------------------------------ */

/* Ppid of pid (0 if unknown). */
static pid_t parent_of(pid_t pid) {
  char state;
  pid_t ppid;
  return tproc_stat(pid, &state, &ppid) ? ppid : 0;
}

/* The process that ran sh's command: its parent, past the guard that
 * leads the command's process group (lib/builtins/guard.h). */
static pid_t runner_of(pid_t sh) {
  pid_t p = parent_of(sh);
  char path[64], argv0[64] = "";
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)p);
  FILE *f = fopen(path, "r");
  if (f) {
    size_t n = fread(argv0, 1, sizeof argv0 - 1, f);
    argv0[n] = '\0';
    fclose(f);
  }
  return strcmp(argv0, "tgraph-sh-guard") == 0 ? parent_of(p) : p;
}

/* The text of file path ("" when there is none), in a static buffer. */
static const char *slurp(const char *path) { return tcli_read_text(path, false); }

/* A graph file at path whose one sh task records its pid in dir/sh (the
 * command's, which exec keeps) and sleeps 300 s. */
static void write_sleep_graph(const char *path) {
  char text[600];
  snprintf(text, sizeof text, "{\"tgraph\": 1, \"tasks\": {\"p1\": {\"fn\": \"sh\", \"args\": "
           "[\"echo $$ > %s; exec sleep 300\"]}}, \"outputs\": [\"p1\"]}\n", path_of("sh"));
  tcli_write_file(path, text);
}

/* `tgraph run --timeout 3` on processes whose only worker was stopped
 * with SIGSTOP while its sh command ran: the run ends at about 3 s with
 * exit status 1 and says it timed out; the worker is gone. */
Test(deadline, cli_processes_stopped_worker_times_out) {
  const char *bin = tcli_bin();
  char gpath[256], epath[256];
  snprintf(gpath, sizeof gpath, "%s", path_of("graph.json"));
  snprintf(epath, sizeof epath, "%s", path_of("stderr"));
  write_sleep_graph(gpath);
  double t0 = now();
  pid_t run = tproc_fork();
  if (run == 0) {
    freopen(epath, "w", stderr);
    freopen("/dev/null", "w", stdout);
    execl(bin, bin, "run", gpath, "--scheduler", "processes", "--workers", "1", "--timeout",
          "3", "--no-cache", (char *)NULL);
    _exit(127);
  }
  pid_t sh = wait_pid(path_of("sh"), 30);
  cr_assert_gt(sh, 0, "the command did not start: %s", slurp(epath));
  pid_t worker = runner_of(sh);
  cr_assert_gt(worker, 1);
  cr_assert_eq(kill(worker, SIGSTOP), 0);
  int st = 0;
  cr_assert_eq(waitpid(run, &st, 0), run);
  double secs = now() - t0;
  kill(sh, SIGKILL); /* the stopped worker could not kill its command */
  cr_assert(WIFEXITED(st), "tgraph did not exit normally (status %d)", st);
  cr_expect_eq(WEXITSTATUS(st), 1, "exit status %d: %s", WEXITSTATUS(st), slurp(epath));
  cr_expect(strstr(slurp(epath), "error: the compute timed out after 3 s") != NULL, "%s",
            slurp(epath));
  cr_expect_leq(secs, 3 + MARGIN, "tgraph ran %.2f s", secs);
  cr_expect(!running(worker), "the stopped worker %d is still there", (int)worker);
}

/* Start `tgraph worker` on a free loopback port; its address in ep. */
static pid_t cli_worker(const char *bin, char *ep, size_t size) {
  char *const args[] = {(char *)bin, "worker", "--listen", "tcp://127.0.0.1:*", "--nthreads",
                        "2", NULL};
  return tcli_worker(bin, args, ep, size);
}

/* tgraph run of graph on tcp worker ep, in the background (stderr to
 * dir/stderr). */
static pid_t cli_run_tcp(const char *bin, const char *graph, const char *ep) {
  pid_t pid = tproc_fork();
  if (pid == 0) {
    freopen(path_of("stderr"), "w", stderr);
    freopen("/dev/null", "w", stdout);
    execl(bin, bin, "run", graph, "--scheduler", "tcp", "--connect", ep, "--no-cache",
          (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* `tgraph run` killed with SIGKILL while its sh command runs on a
 * `tgraph worker`: the command is gone about a second later, and the
 * worker serves the next run. */
Test(deadline, cli_killed_run_stops_its_command_on_worker) {
  const char *bin = tcli_bin();
  char ep[160], g1[256], g2[256];
  pid_t worker = cli_worker(bin, ep, sizeof ep);
  snprintf(g1, sizeof g1, "%s", path_of("sleep.json"));
  snprintf(g2, sizeof g2, "%s", path_of("echo.json"));
  write_sleep_graph(g1);
  tcli_write_file(g2, "{\"tgraph\": 1, \"tasks\": {\"e\": {\"fn\": \"sh\", \"args\": "
                      "[\"echo served\"]}}, \"outputs\": [\"e\"]}\n");
  pid_t run = cli_run_tcp(bin, g1, ep);
  pid_t sh = wait_pid(path_of("sh"), 30);
  cr_assert_gt(sh, 0, "the command did not start: %s", slurp(path_of("stderr")));
  cr_assert_eq(runner_of(sh), worker, "the command is not the worker's");
  kill(run, SIGKILL);
  cr_assert_eq(waitpid(run, NULL, 0), run);
  double gone = gone_within(sh, 10.0);
  if (gone < 0) kill(sh, SIGKILL);
  cr_expect_geq(gone, 0, "the command %d outlived its killed run by 10 s", (int)sh);
  cr_expect_leq(gone, 3.0, "the command outlived its killed run by %.2f s", gone);
  run = cli_run_tcp(bin, g2, ep);
  int st = 0;
  cr_assert_eq(waitpid(run, &st, 0), run);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the next run failed (%d): %s", st,
            slurp(path_of("stderr")));
  kill(worker, SIGTERM);
  cr_assert_eq(waitpid(worker, &st, 0), worker);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tgraph worker ended with %d", st);
}

/* ---- threads --------------------------------------------------------------------- */

/* A thread cannot be stopped: tg_compute returns at the deadline while
 * the task still runs (in a temporary executor, freed once it returns).
 * The graph cannot change meanwhile, and tg_graph_free does not wait. */
Test(deadline, threads_pause_returns_at_deadline) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "pause_forever", 1, tg_arg_value(tg_str_c(path_of("pause"))));
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads", .workers = 2,
                       .timeout = 1.5};
  tg_value *v = NULL;
  double t0 = now();
  int rc = tg_compute(g, &n, 1, &o, &v);
  double secs = now() - t0;
  cr_assert_eq(rc, TG_ETIMEDOUT, "%s: %s", tg_err_name(rc), tg_graph_errmsg(g));
  cr_assert_null(v);
  cr_expect(strstr(tg_graph_errmsg(g), "timed out after 1.5 s") != NULL, "%s",
            tg_graph_errmsg(g));
  cr_expect_geq(secs, 1.4);
  cr_expect_leq(secs, 1.5 + MARGIN, "returned after %.2f s", secs);
  cr_assert_eq(wait_pid(path_of("pause"), 0), getpid(), "the task did not run here");
  tg_node m = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  cr_expect_eq(m, TG_NODE_NONE);
  cr_expect(strstr(tg_graph_errmsg(g), "cannot change while a task of a compute that "
                                        "timed out still runs") != NULL,
            "%s", tg_graph_errmsg(g));
  t0 = now();
  tg_graph_free(g); /* the stuck task keeps it until it returns */
  cr_expect_leq(now() - t0, 1.0);
}

static atomic_int nevents;
static void count_event(void *ctx, const tg_event *ev) {
  (void)ctx, (void)ev;
  atomic_fetch_add(&nevents, 1);
}

/* A task that returns after the compute did: its result is discarded,
 * no event reaches the caller any more, the graph is freed by the run
 * once the task is done, and the executor serves on and frees cleanly. */
Test(deadline, threads_late_task_is_discarded) {
  tg_executor *ex = executor("threads", 2);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "nap", 1, tg_arg_value(tg_int(4000)));
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .timeout = 1,
                       .on_event = count_event};
  tg_value *v = NULL;
  double t0 = now();
  int rc = tg_compute(g, &n, 1, &o, &v);
  double secs = now() - t0;
  cr_assert_eq(rc, TG_ETIMEDOUT, "%s: %s", tg_err_name(rc), tg_graph_errmsg(g));
  cr_expect_leq(secs, 3.0, "returned after %.2f s, not at the deadline", secs);
  int seen = atomic_load(&nevents);
  cr_expect_eq(seen, 1, "events before returning: %d (STARTED)", seen);
  tg_graph_free(g);
  if (secs < 4.5) tgt_sleep_ms((long)((4.5 - secs) * 1000)); /* the task returns */
  cr_expect_eq(atomic_load(&nevents), seen, "an event came after tg_compute returned");
  still_serves(ex);
  tg_executor_free(ex);
}
