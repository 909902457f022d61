/* tests/test_join.c: workers joining a tcp run that is going and leaving
 * it, and runs of more than 64 workers: 255 worker processes joining a
 * run begun with one (every one of the 256 gets tasks, the answer is
 * sync's); a worker told to leave mid-run (no attempt counted as failed,
 * no worker lost, its kept results fetched, it exits 0); registrations
 * refused (a worker with another key set; an address where no worker
 * listens) while the run goes on; 100 worker processes and 65 connected
 * workers, past the old cap of 64; a worker drained with a window
 * (drain_time) going on taking the tasks that end in it, and none with
 * no window; tgraph worker --drain-time on SIGUSR1 and SIGTERM. Every
 * worker is a forked process serving the test's functions; each is
 * killed and reaped after each test. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "test_proc.h"

/* ---- functions --------------------------------------------------------------- */

static void sleep_ms(int ms) {
  nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
}

/* gate(path, i, ms): wait until file path exists (at most 60 s), sleep ms,
 * then [i * i, the worker's pid]. */
static int fn_gate(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx;
  (void)n;
  size_t len;
  const char *s = tg_str_data(a[0], &len);
  char path[256];
  snprintf(path, sizeof path, "%.*s", (int)len, s);
  /* looked at every 50 ms: 256 workers waiting here must leave the CPU
   * to the ones joining */
  for (int t = 0; t < 1200 && access(path, F_OK) != 0; t++) sleep_ms(50);
  sleep_ms((int)tg_value_int(a[2]));
  int64_t i = tg_value_int(a[1]);
  tg_value *items[2] = {tg_int(i * i), tg_int((int64_t)getpid())};
  *out = tg_list_take(2, items);
  return *out ? TG_OK : TG_ENOMEM;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* one clock for every process */
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* stamp(i, ms): sleep ms, then [i * i, the worker's pid, the call's start
 * and end in micro-seconds of CLOCK_MONOTONIC]. */
static int fn_stamp(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx;
  (void)n;
  int64_t t0 = mono_us();
  sleep_ms((int)tg_value_int(a[1]));
  int64_t i = tg_value_int(a[0]);
  tg_value *items[4] = {tg_int(i * i), tg_int((int64_t)getpid()), tg_int(t0), tg_int(mono_us())};
  *out = tg_list_take(4, items);
  return *out ? TG_OK : TG_ENOMEM;
}

/* big(n, v): n f64 values v (kept on its worker: over keep_min). */
static int fn_big(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx;
  (void)n;
  int64_t len = tg_value_int(a[0]);
  tg_value *r = tg_ndarray_new(TG_DT_F64, 1, &len);
  double *d = r ? tg_ndarray_data_mut(r) : NULL;
  for (int64_t i = 0; d && i < len; i++) d[i] = (double)tg_value_int(a[1]);
  *out = r;
  return r ? TG_OK : TG_ENOMEM;
}

/* bsum(arrays...): the sum of every element of every array. */
static int fn_bsum(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx;
  double s = 0;
  for (size_t k = 0; k < n; k++) {
    const double *d = tg_ndarray_data(a[k]);
    for (size_t i = 0; i < tg_ndarray_size(a[k]); i++) s += d[i];
  }
  *out = tg_float(s);
  return *out ? TG_OK : TG_ENOMEM;
}

/* inc(x): x + 1. */
static int fn_inc(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx;
  (void)n;
  *out = tg_int(tg_value_int(a[0]) + 1);
  return *out ? TG_OK : TG_ENOMEM;
}

/* total(xs...): the sum of ints. */
static int fn_total(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx;
  int64_t s = 0;
  for (size_t i = 0; i < n; i++) s += tg_value_int(a[i]);
  *out = tg_int(s);
  return *out ? TG_OK : TG_ENOMEM;
}

static tg_registry *make_reg(void) {
  tg_registry *r = NULL;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  static const struct {
    const char *name;
    tg_task_fn fn;
    int nargs;
  } defs[] = {{"gate", fn_gate, 3}, {"big", fn_big, 2}, {"bsum", fn_bsum, -1},
              {"inc", fn_inc, 1},   {"total", fn_total, -1}, {"stamp", fn_stamp, 2}};
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = defs[i].name, .fn_version = "1",
                     .fn = defs[i].fn, .flags = TG_FUNC_PURE, .nargs = defs[i].nargs};
    cr_assert_eq(tg_registry_add(r, &d, NULL), TG_OK);
  }
  return r;
}

/* ---- worker processes -------------------------------------------------------- */

#define MAXW 300
static pid_t pids[MAXW];
static char eps[MAXW][512];
static int npids;
static tg_registry *reg;
static char tmp[64]; /* the test's directory: gates, keys */

typedef struct wspec {
  const char *join, *advertise, *keys;
  double drain_time; /* tg_worker_opts.drain_time */
} wspec;

static volatile sig_atomic_t drain_flag;
static void on_usr1(int s) {
  (void)s;
  drain_flag = 1;
}

static void child(const wspec *sp, int fd) {
  signal(SIGUSR1, on_usr1);
  tg_registry *r = make_reg();
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V4,
                      .listen = "tcp://127.0.0.1:*",
                      .nthreads = 1,
                      .keys_dir = sp->keys,
                      .stop = tproc_stop_on_term(),
                      .on_ready = tproc_say_ready,
                      .ctx = &fd,
                      .join = sp->join,
                      .advertise = sp->advertise,
                      .drain = &drain_flag,
                      .drain_time = sp->drain_time};
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_worker_serve(r, &o, &err);
  if (rc) dprintf(fd, "ERROR %s\n", err.msg);
  _exit(rc ? 1 : 0);
}

/* Fork a worker (without waiting for it); the read end of its pipe.
 * With *go set, the child first waits for a line on a pipe (its write end
 * in *go): its join address. Workers are forked before the executor
 * starts (a child must not inherit a running executor: remote.h, "Fork"),
 * and are told where to join once the run goes. */
static int fork_worker_go(const wspec *sp, int *go) {
  int p[2], q[2] = {-1, -1};
  cr_assert_eq(pipe(p), 0);
  if (go) cr_assert_eq(pipe(q), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
    wspec s = *sp;
    char join[512];
    if (go) {
      close(q[1]);
      tproc_read_line(q[0], join, sizeof join, 300);
      s.join = join;
    }
    child(&s, p[1]);
  }
  close(p[1]);
  if (go) {
    close(q[0]);
    *go = q[1];
  }
  cr_assert_lt(npids, MAXW);
  pids[npids++] = pid;
  return p[0];
}

static int fork_worker(const wspec *sp) { return fork_worker_go(sp, NULL); }

/* Its first line ("tcp://..." once serving, or "ERROR ..."): in eps[i]. */
static void read_ready(int i, int fd) {
  tproc_read_line(fd, eps[i], sizeof eps[i], 60);
  close(fd);
}

static int start_worker(const wspec *sp) {
  int fd = fork_worker(sp);
  read_ready(npids - 1, fd);
  return npids - 1;
}

static void setup(void) {
  reg = make_reg();
  snprintf(tmp, sizeof tmp, "/tmp/tg-join-XXXXXX");
  cr_assert_not_null(mkdtemp(tmp));
}

static void rm_rf(const char *dir) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_expect_eq(system(cmd), 0);
}

static void teardown(void) {
  for (int i = 0; i < npids; i++) {
    if (pids[i] <= 0) continue;
    kill(pids[i], SIGKILL);
    int st;
    cr_expect_eq(waitpid(pids[i], &st, 0), pids[i]);
  }
  npids = 0;
  cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "a child process is left");
  tg_registry_free(reg);
  rm_rf(tmp);
}

TestSuite(join, .init = setup, .fini = teardown, .timeout = 300);

/* ---- executors ------------------------------------------------------------------ */

typedef struct logbuf {
  pthread_mutex_t mu;
  char text[8192];
} logbuf;

static void log_line(void *ctx, const char *key, const char *line) {
  logbuf *l = ctx;
  pthread_mutex_lock(&l->mu);
  size_t n = strlen(l->text);
  snprintf(l->text + n, sizeof l->text - n, "[%s] %s\n", key, line);
  pthread_mutex_unlock(&l->mu);
}

static bool log_has(logbuf *l, const char *s) {
  pthread_mutex_lock(&l->mu);
  bool r = strstr(l->text, s) != NULL;
  pthread_mutex_unlock(&l->mu);
  return r;
}

static int log_count(logbuf *l, const char *s) {
  pthread_mutex_lock(&l->mu);
  int n = 0;
  for (const char *p = strstr(l->text, s); p; p = strstr(p + 1, s)) n++;
  pthread_mutex_unlock(&l->mu);
  return n;
}

/* A tcp executor over workers w[0..n) that also lets workers join on a
 * free loopback port; its join address in join. */
static tg_executor *join_ex(const int *w, int n, const char *keys, logbuf *log,
                            double connect_timeout, char *join, size_t size) {
  const char **addr = calloc((size_t)n + 1, sizeof *addr);
  for (int i = 0; i < n; i++) addr[i] = eps[w[i]];
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V2, .backend = "tcp", .connect = addr,
                        .nconnect = (size_t)n, .keys_dir = keys,
                        .join_listen = "tcp://127.0.0.1:0",
                        .connect_timeout = connect_timeout,
                        .log = log ? log_line : NULL, .log_ctx = log};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s", err.msg);
  free(addr);
  cr_assert_eq(tg_remote_join_address(ex, join, size), TG_OK);
  cr_assert_eq(strncmp(join, "tcp://127.0.0.1:", 16), 0, "%s", join);
  return ex;
}

static unsigned wait_ready(tg_executor *ex, unsigned want, int secs) {
  tg_remote_stats st = {0};
  for (int i = 0; i < secs * 100; i++) {
    cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
    if (st.workers_ready >= want) break;
    sleep_ms(10);
  }
  return st.workers_ready;
}

static void touch(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT, 0600);
  cr_assert_geq(fd, 0);
  close(fd);
}

/* tg_compute in a thread of its own, while the test acts on workers. */
typedef struct bg {
  pthread_t th;
  tg_graph *g;
  const tg_node *outs;
  size_t n;
  tg_executor *ex;
  tg_value **res;
  tg_compute_stats st;
  int rc;
} bg;

static void *bg_main(void *arg) {
  bg *b = arg;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = b->ex, .stats = &b->st};
  b->rc = tg_compute(b->g, b->outs, b->n, &o, b->res);
  return NULL;
}

static void bg_start(bg *b) { cr_assert_eq(pthread_create(&b->th, NULL, bg_main, b), 0); }

static int bg_join(bg *b) {
  pthread_join(b->th, NULL);
  return b->rc;
}

#define V(x) tg_arg_value(x)
#define N(x) tg_arg_node(x)

/* n gate tasks on the file gate, each sleeping ms: their nodes in out. */
static void gate_tasks(tg_graph *g, const char *gate, int n, int ms, tg_node *out) {
  for (int i = 0; i < n; i++)
    out[i] = tg_call(g, "gate", 3, V(tg_str(gate, strlen(gate))), V(tg_int(i)), V(tg_int(ms)));
}

/* ---- tests ---------------------------------------------------------------------- */

/* A run begun on one worker; 255 more join while its tasks wait at a
 * gate; the gate opens once all 256 are ready: every one ran tasks, and
 * each task's answer is sync's. */
Test(join, workers_256_join_a_run_going) {
  enum { NW = 256, NT = 1024 };
  int w0 = start_worker(&(wspec){0});
  cr_assert_eq(strncmp(eps[w0], "tcp://", 6), 0, "%s", eps[w0]);
  static int fds[NW], go[NW];
  for (int i = 1; i < NW; i++) fds[i] = fork_worker_go(&(wspec){0}, &go[i]);
  char join[256], gate[128];
  tg_executor *ex = join_ex(&w0, 1, NULL, NULL, 60, join, sizeof join);
  snprintf(gate, sizeof gate, "%s/gate", tmp);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  static tg_node nodes[NT];
  gate_tasks(g, gate, NT, 5, nodes);
  tg_value **res = calloc(NT, sizeof *res);
  bg run = {.g = g, .outs = nodes, .n = NT, .ex = ex, .res = res};
  cr_assert_eq(wait_ready(ex, 1, 30), 1);
  bg_start(&run);
  /* In waves of 32: 255 processes starting at once on a small loaded
   * machine would measure its scheduler, not the run. */
  for (int w = 1; w < NW; w += 32) {
    int end = w + 32 < NW ? w + 32 : NW;
    for (int i = w; i < end; i++) {
      cr_assert_eq(dprintf(go[i], "%s\n", join), (int)strlen(join) + 1);
      close(go[i]);
    }
    for (int i = w; i < end; i++) {
      read_ready(i, fds[i]);
      cr_assert_eq(strncmp(eps[i], "tcp://", 6), 0, "worker %d: %s", i, eps[i]);
    }
  }
  cr_assert_eq(wait_ready(ex, NW, 60), NW, "not every joined worker became ready");
  sleep_ms(300); /* the newest have their first tasks */
  touch(gate);
  cr_assert_eq(bg_join(&run), TG_OK, "%s", tg_graph_errmsg(g));
  static pid_t seen[NW];
  int nseen = 0;
  for (int i = 0; i < NT; i++) {
    cr_assert_eq(tg_value_int(tg_list_get(res[i], 0)), (int64_t)i * i);
    pid_t p = (pid_t)tg_value_int(tg_list_get(res[i], 1));
    int k = 0;
    while (k < nseen && seen[k] != p) k++;
    if (k == nseen) seen[nseen++] = p;
    tg_value_unref(res[i]);
  }
  free(res);
  cr_assert_eq(nseen, NW, "tasks ran on %d workers of %d", nseen, NW);
  for (int k = 0; k < nseen; k++) {
    int j = 0;
    while (j < npids && pids[j] != seen[k]) j++;
    cr_assert_lt(j, npids, "pid %d is not one of the workers", (int)seen[k]);
  }
  cr_assert_eq(run.st.attempts_failed, 0);
  tg_executor_free(ex);
  tg_graph_free(g);
}

/* The leaving worker *pid exited 0 (within 5 s), and its leaving cost
 * nothing: no worker lost, no task retried or recomputed, no attempt or
 * task failed; one worker (the other) still ready. */
static void left_cleanly(pid_t *pid, tg_executor *ex, const bg *run) {
  int status = -1;
  for (int i = 0; i < 500 && waitpid(*pid, &status, WNOHANG) == 0; i++) sleep_ms(10);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the leaving worker did not exit 0");
  *pid = 0;
  tg_remote_stats st;
  cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
  cr_assert_eq(st.workers_lost, 0);
  cr_assert_eq(st.tasks_retried, 0);
  cr_assert_eq(st.tasks_recomputed, 0);
  cr_assert_eq(st.workers_ready, 1);
  cr_assert_eq(run->st.attempts_failed, 0);
  cr_assert_eq(run->st.tasks_failed, 0);
}

/* Two workers; one is told to leave (SIGUSR1) while it runs tasks and
 * holds kept results: the answer is sync's, no attempt failed, no worker
 * was lost, nothing was retried or recomputed, and it exits 0 before
 * the run ends. */
Test(join, worker_leaves_mid_run) {
  int w[2] = {start_worker(&(wspec){0}), start_worker(&(wspec){0})};
  char join[256], gate[128];
  tg_executor *ex = join_ex(w, 2, NULL, NULL, 30, join, sizeof join);
  cr_assert_eq(wait_ready(ex, 2, 30), 2);
  snprintf(gate, sizeof gate, "%s/gate", tmp);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  enum { NB = 16, NG = 64 };
  /* kept results (400 KB each) spread over both, summed at the end; and
   * gated tasks the leaving worker is running when told */
  tg_arg bigs[NB + NG];
  for (int i = 0; i < NB; i++)
    bigs[i] = N(tg_call(g, "big", 2, V(tg_int(50000)), V(tg_int(i))));
  tg_node gt[NG];
  gate_tasks(g, gate, NG, 20, gt);
  tg_arg parts[NG];
  for (int i = 0; i < NG; i++) parts[i] = N(tg_call(g, "inc", 1, tg_arg_item(gt[i], 0)));
  tg_node sum, tot;
  cr_assert_eq(tg_graph_add(g, "bsum", bigs, NB, NULL, &sum), TG_OK);
  cr_assert_eq(tg_graph_add(g, "total", parts, NG, NULL, &tot), TG_OK);
  tg_node outs[2] = {sum, tot};
  tg_value *res[2] = {0};
  bg run = {.g = g, .outs = outs, .n = 2, .ex = ex, .res = res};
  bg_start(&run);
  sleep_ms(500); /* the bigs are made, gated tasks wait on both */
  cr_assert_eq(kill(pids[w[1]], SIGUSR1), 0);
  sleep_ms(200);
  touch(gate);
  cr_assert_eq(bg_join(&run), TG_OK, "%s", tg_graph_errmsg(g));
  double want_sum = 0;
  for (int i = 0; i < NB; i++) want_sum += 50000.0 * i;
  int64_t want_tot = 0;
  for (int i = 0; i < NG; i++) want_tot += (int64_t)i * i + 1;
  cr_assert_float_eq(tg_value_float(res[0]), want_sum, 1e-6);
  cr_assert_eq(tg_value_int(res[1]), want_tot);
  tg_value_unref(res[0]);
  tg_value_unref(res[1]);
  left_cleanly(&pids[w[1]], ex, &run);
  tg_executor_free(ex);
  tg_graph_free(g);
}

/* A worker holding another key set is refused (it says why and ends 1;
 * the run logs it); a registration naming an address where no worker
 * listens is given up after connect_timeout (logged); the run finishes
 * on its own worker. */
Test(join, bogus_registrations_refused) {
  char kA[128], kB[128], cA[160], wA[160], wB[160];
  snprintf(kA, sizeof kA, "%s/kA", tmp);
  snprintf(kB, sizeof kB, "%s/kB", tmp);
  cr_assert_eq(tg_keys_generate(kA, NULL), TG_OK);
  cr_assert_eq(tg_keys_generate(kB, NULL), TG_OK);
  snprintf(cA, sizeof cA, "%s/client", kA);
  snprintf(wA, sizeof wA, "%s/worker", kA);
  snprintf(wB, sizeof wB, "%s/worker", kB);
  int w0 = start_worker(&(wspec){.keys = wA});
  int go_bad, go_nowhere;
  int fd_bad = fork_worker_go(&(wspec){.keys = wB}, &go_bad), bad = npids - 1;
  int fd_nowhere = fork_worker_go(&(wspec){.keys = wA, .advertise = "tcp://127.0.0.1:1"},
                                  &go_nowhere), nowhere = npids - 1;
  logbuf log = {PTHREAD_MUTEX_INITIALIZER, ""};
  char join[256], gate[128];
  tg_executor *ex = join_ex(&w0, 1, cA, &log, 1.0, join, sizeof join);
  cr_assert_eq(wait_ready(ex, 1, 30), 1);
  snprintf(gate, sizeof gate, "%s/gate", tmp);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node nodes[8];
  gate_tasks(g, gate, 8, 1, nodes);
  tg_value *res[8] = {0};
  bg run = {.g = g, .outs = nodes, .n = 8, .ex = ex, .res = res};
  bg_start(&run);
  /* another key set: refused on both sides */
  dprintf(go_bad, "%s\n", join);
  close(go_bad);
  read_ready(bad, fd_bad);
  char want[600];
  snprintf(want, sizeof want, "ERROR joining the run at %s: the secure handshake failed: the "
           "run does not take this worker's key (another key set, or another user's run), "
           "or the address is not a run's join address", join);
  cr_assert_str_eq(eps[bad], want);
  int status;
  cr_assert_eq(waitpid(pids[bad], &status, 0), pids[bad]);
  pids[bad] = 0;
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  snprintf(want, sizeof want, "[%s] a joining worker was refused: the secure handshake failed "
           "(it does not hold the workers' key, or does not accept this run's client key)\n",
           join);
  for (int i = 0; i < 300 && !log_has(&log, want); i++) sleep_ms(10);
  cr_assert(log_has(&log, want), "log: %s", log.text);
  /* The refused worker tried again for its second (ZeroMQ reconnects):
   * one line said, not one per attempt. */
  cr_assert_eq(log_count(&log, "a joining worker was refused"), 1, "log: %s", log.text);
  /* the right keys, but an address where no worker listens */
  dprintf(go_nowhere, "%s\n", join);
  close(go_nowhere);
  read_ready(nowhere, fd_nowhere);
  cr_assert_eq(strncmp(eps[nowhere], "tcp://127.0.0.1:", 16), 0, "%s", eps[nowhere]);
  const char *given_up = "[tcp://127.0.0.1:1] joined worker given up: not ready for 1 s (";
  for (int i = 0; i < 500 && !log_has(&log, given_up); i++) sleep_ms(10);
  cr_assert(log_has(&log, given_up), "log: %s", log.text);
  touch(gate);
  cr_assert_eq(bg_join(&run), TG_OK, "%s", tg_graph_errmsg(g));
  for (int i = 0; i < 8; i++) {
    cr_assert_eq(tg_value_int(tg_list_get(res[i], 0)), (int64_t)i * i);
    cr_assert_eq(tg_value_int(tg_list_get(res[i], 1)), (int64_t)pids[w0]);
    tg_value_unref(res[i]);
  }
  tg_executor_free(ex);
  tg_graph_free(g);
}

/* Past the old cap of 64: 100 worker processes; 65 connected workers. */
Test(join, more_than_64_workers) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg xs[200];
  for (int i = 0; i < 200; i++) xs[i] = N(tg_call(g, "inc", 1, V(tg_int(i))));
  tg_node tot;
  cr_assert_eq(tg_graph_add(g, "total", xs, 200, NULL, &tot), TG_OK);
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  tg_executor_opts po = {.version = TG_EXECUTOR_OPTS_V1, .backend = "processes", .workers = 100};
  cr_assert_eq(tg_executor_new(reg, &po, &ex, &err), TG_OK, "%s", err.msg);
  tg_value *r = NULL;
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  cr_assert_eq(tg_compute(g, &tot, 1, &co, &r), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_value_int(r), 200 * 201 / 2);
  tg_value_unref(r);
  tg_executor_free(ex);
  int w[65];
  for (int i = 0; i < 65; i++) {
    w[i] = start_worker(&(wspec){0});
    cr_assert_eq(strncmp(eps[w[i]], "tcp://", 6), 0, "%s", eps[w[i]]);
  }
  char join[256];
  ex = join_ex(w, 65, NULL, NULL, 30, join, sizeof join);
  cr_assert_eq(wait_ready(ex, 65, 60), 65);
  co.executor = ex;
  cr_assert_eq(tg_compute(g, &tot, 1, &co, &r), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_value_int(r), 200 * 201 / 2);
  tg_value_unref(r);
  tg_executor_free(ex);
  tg_graph_free(g);
}

/* ---- the tgraph program ------------------------------------------------------------ */

/* Start argv (the tgraph program) with stdout and stderr to files; its pid. */
static pid_t spawn(char *const argv[], const char *out, const char *err) {
  pid_t pid = tproc_fork();
  if (pid == 0) {
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

/* The first line of file path starting with prefix, after it (waits up
 * to secs for it to appear). */
static bool file_line(const char *path, const char *prefix, char *out, size_t size, int secs) {
  for (int i = 0; i < secs * 100; i++) {
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
      if (strncmp(line, prefix, strlen(prefix)) != 0) continue;
      const char *rest = line + strlen(prefix);
      size_t n = strcspn(rest, "\n");
      if (n >= size) n = size - 1;
      memcpy(out, rest, n);
      out[n] = '\0';
      fclose(f);
      return true;
    }
    if (f) fclose(f);
    sleep_ms(10);
  }
  return false;
}

static char *slurp(const char *path) {
  static char buf[8192];
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  return buf;
}

/* `tgraph run --scheduler=tcp --join-listen` on a graph.json of n shell
 * tasks `sleep SECS; echo i` and their count (the answer is n), waiting for
 * no worker: its pid; the address it said workers join at in join; the
 * output files p[0..7] (p[0], p[1]: the run's stdout and stderr; the
 * rest for the caller's workers). */
static pid_t join_run(const char *bin, int n, const char *secs, char p[8][160], char *join,
                      size_t jsize) {
  char graph[128];
  snprintf(graph, sizeof graph, "%s/g.json", tmp);
  FILE *f = fopen(graph, "w");
  cr_assert_not_null(f);
  fprintf(f, "{\"tgraph\": 1, \"tasks\": {");
  for (int i = 0; i < n; i++)
    fprintf(f, "\"s%d\": {\"fn\": \"sh\", \"args\": [\"sleep %s; echo %d\"]}, ", i, secs, i);
  fprintf(f, "\"n\": {\"fn\": \"len\", \"args\": [[");
  for (int i = 0; i < n; i++) fprintf(f, "%s{\"ref\": \"s%d\"}", i ? ", " : "", i);
  fprintf(f, "]]}}, \"outputs\": [\"n\"]}\n");
  fclose(f);
  for (int i = 0; i < 8; i++) snprintf(p[i], sizeof p[i], "%s/out%d", tmp, i);
  char *run[] = {(char *)bin, "run", graph, "--scheduler=tcp", "--no-cache",
                 "--join-listen", "tcp://127.0.0.1:0", NULL};
  pid_t rp = spawn(run, p[0], p[1]);
  cr_assert(file_line(p[1], "joining workers: ", join, jsize, 30), "%s", slurp(p[1]));
  return rp;
}

/* tgraph run --join-listen with no --connect; two `tgraph worker --join`;
 * SIGTERM makes one leave mid-run: it exits 0, the run prints sync's
 * answer and exits 0. */
Test(join, cli_join_and_leave) {
  const char *bin = getenv("TGRAPH_BIN");
  cr_assert_not_null(bin, "TGRAPH_BIN is not set");
  char p[8][160], join[256];
  pid_t rp = join_run(bin, 40, "0.05", p, join, sizeof join);
  cr_assert_eq(strncmp(join, "tcp://127.0.0.1:", 16), 0, "%s", join);
  char *w1[] = {(char *)bin, "worker", "--join", join, "-j", "1", NULL};
  pid_t a = spawn(w1, p[2], p[3]);
  pid_t b = spawn(w1, p[4], p[5]);
  char ep[256];
  cr_assert(file_line(p[2], "listening on ", ep, sizeof ep, 60), "%s", slurp(p[3]));
  cr_assert(file_line(p[4], "listening on ", ep, sizeof ep, 60), "%s", slurp(p[5]));
  sleep_ms(500); /* both have tasks */
  cr_assert_eq(kill(a, SIGTERM), 0);
  int st;
  cr_assert_eq(waitpid(a, &st, 0), a);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the leaving worker: status %d: %s", st,
            slurp(p[3]));
  cr_assert_eq(waitpid(rp, &st, 0), rp);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run: %s", slurp(p[1]));
  cr_assert_str_eq(slurp(p[0]), "{\"n\":40}\n");
  kill(b, SIGKILL);
  cr_assert_eq(waitpid(b, &st, 0), b);
}

/* Two workers of one thread run 40 tasks of 0.3 s; 2 s in, the second is
 * told to leave with a window of `window` seconds. *late: its tasks that
 * started more than 0.65 s after the signal (it then ran one and had at
 * most one more: has_room's bound for long tasks), so sent after LEAVE;
 * *last_end: the end of its last task, in seconds after the signal. The
 * answer is sync's, no attempt failed, nothing was lost, retried or
 * recomputed, and the leaving worker exits 0 by the run's end. */
static void drain_run(double window, int *late, double *last_end) {
  int w[2] = {start_worker(&(wspec){0}), start_worker(&(wspec){.drain_time = window})};
  char join[256];
  tg_executor *ex = join_ex(w, 2, NULL, NULL, 30, join, sizeof join);
  cr_assert_eq(wait_ready(ex, 2, 30), 2);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  enum { NT = 40 };
  tg_node nodes[NT];
  for (int i = 0; i < NT; i++) nodes[i] = tg_call(g, "stamp", 2, V(tg_int(i)), V(tg_int(300)));
  tg_value *res[NT] = {0};
  bg run = {.g = g, .outs = nodes, .n = NT, .ex = ex, .res = res};
  bg_start(&run);
  sleep_ms(2000); /* both run tasks whose time is known */
  int64_t sig = mono_us();
  cr_assert_eq(kill(pids[w[1]], SIGUSR1), 0);
  cr_assert_eq(bg_join(&run), TG_OK, "%s", tg_graph_errmsg(g));
  int ran = 0;
  *late = 0;
  *last_end = -1e9;
  for (int i = 0; i < NT; i++) {
    cr_assert_eq(tg_value_int(tg_list_get(res[i], 0)), (int64_t)i * i);
    if ((pid_t)tg_value_int(tg_list_get(res[i], 1)) == pids[w[1]]) {
      ran++;
      double start = (double)(tg_value_int(tg_list_get(res[i], 2)) - sig) / 1e6;
      double end = (double)(tg_value_int(tg_list_get(res[i], 3)) - sig) / 1e6;
      *late += start > 0.65;
      if (end > *last_end) *last_end = end;
    }
    tg_value_unref(res[i]);
  }
  cr_assert_gt(ran, 0, "the leaving worker ran nothing before the signal");
  left_cleanly(&pids[w[1]], ex, &run);
  tg_executor_free(ex);
  tg_graph_free(g);
}

/* Drained with a window of 3 s, a worker goes on taking tasks that end
 * in it (2 s of 0.3 s tasks less the margin: 4 or so), and none ends
 * after it. */
Test(join, drain_window_keeps_taking_tasks) {
  int late;
  double last_end;
  drain_run(3.0, &late, &last_end);
  cr_assert_geq(late, 2, "tasks sent to the leaving worker in its window: %d", late);
  cr_assert_lt(last_end, 3.0, "a task of the leaving worker ended %.3f s after the signal",
               last_end);
}

/* Drained with no window (drain_time 0, the default), a worker takes
 * nothing more. */
Test(join, drain_window_0_takes_nothing) {
  int late;
  double last_end;
  drain_run(0, &late, &last_end);
  cr_assert_eq(late, 0, "tasks sent to the leaving worker after the signal: %d", late);
}

/* tgraph worker --drain-time: SIGUSR1 (the batch system's early warning)
 * drains within the window, the worker going on taking tasks; SIGTERM
 * (the end is now) drains at once, taking nothing new. Both exit 0 and
 * the run, finished by a third worker, gives the right answer. */
Test(join, cli_drain_time_usr1_and_term) {
  const char *bin = getenv("TGRAPH_BIN");
  cr_assert_not_null(bin, "TGRAPH_BIN is not set");
  unsetenv("SLURM_JOB_ID"); /* no time left from Slurm: --drain-time holds */
  enum { NT = 60 };
  char p[8][160], join[256];
  pid_t rp = join_run(bin, NT, "0.1", p, join, sizeof join);
  char *w[] = {(char *)bin, "worker", "--join", join, "-j", "1", "--drain-time", "30", "-v", NULL};
  pid_t wu = spawn(w, p[2], p[3]), wt = spawn(w, p[4], p[5]), wc = spawn(w, p[6], p[7]);
  char ep[256];
  for (int i = 2; i <= 6; i += 2)
    cr_assert(file_line(p[i], "listening on ", ep, sizeof ep, 60), "%s", slurp(p[i + 1]));
  sleep_ms(1000); /* all three run tasks whose time is known */
  cr_assert_eq(kill(wu, SIGUSR1), 0);
  cr_assert_eq(kill(wt, SIGTERM), 0);
  int st;
  cr_assert_eq(waitpid(rp, &st, 0), rp);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run: %s", slurp(p[1]));
  cr_assert_str_eq(slurp(p[0]), "{\"n\":60}\n");
  cr_assert_eq(waitpid(wt, &st, 0), wt);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: status %d: %s", st, slurp(p[5]));
  char line[256];
  cr_assert(file_line(p[5], "tgraph worker: leaving: ", line, sizeof line, 1), "%s", slurp(p[5]));
  cr_assert_str_eq(line, "no new tasks; finishing what clients sent");
  cr_assert_eq(waitpid(wu, &st, 0), wu);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGUSR1: status %d: %s", st, slurp(p[3]));
  cr_assert(file_line(p[3], "tgraph worker: leaving: ", line, sizeof line, 1), "%s", slurp(p[3]));
  cr_assert_str_eq(line, "new tasks only for 30.0 s; finishing what clients sent");
  cr_assert(file_line(p[3], "tgraph worker: left: ", line, sizeof line, 1), "%s", slurp(p[3]));
  unsigned long taken = strtoul(line, NULL, 10);
  cr_assert_geq(taken, 1, "SIGUSR1: %s", line);
  kill(wc, SIGKILL);
  cr_assert_eq(waitpid(wc, &st, 0), wc);
}

/* A leaving worker whose only task is done and whose next ready task was
 * never measured (its time unknown: it does not go there) leaves then,
 * not at its window's end (8 s less the margin): the task ends about 1 s
 * after the signal, the worker exits within 3 s of it. A worker joining
 * later runs the rest; the answer is right. */
Test(join, drain_window_leaves_when_nothing_known_fits, .timeout = 120) {
  int w0 = start_worker(&(wspec){.drain_time = 8});
  int go;
  int afd = fork_worker_go(&(wspec){0}, &go);
  char join[256];
  tg_executor *ex = join_ex(&w0, 1, NULL, NULL, 60, join, sizeof join);
  cr_assert_eq(wait_ready(ex, 1, 30), 1);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node s = tg_call(g, "stamp", 2, V(tg_int(7)), V(tg_int(1500)));
  tg_node t = tg_call(g, "inc", 1, tg_arg_item(s, 0));
  tg_value *res[1] = {0};
  bg run = {.g = g, .outs = &t, .n = 1, .ex = ex, .res = res};
  bg_start(&run);
  sleep_ms(500);
  int64_t sig = mono_us();
  cr_assert_eq(kill(pids[w0], SIGUSR1), 0);
  int status = -1;
  pid_t r = 0;
  for (int i = 0; i < 1000 && (r = waitpid(pids[w0], &status, WNOHANG)) == 0; i++) sleep_ms(10);
  double took = (double)(mono_us() - sig) / 1e6;
  cr_assert_eq(r, pids[w0], "the leaving worker has not exited 10 s after the signal");
  pids[w0] = 0;
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the leaving worker did not exit 0");
  cr_assert_lt(took, 3.0, "the idle leaving worker exited %.2f s after the signal", took);
  dprintf(go, "%s\n", join);
  close(go);
  read_ready(npids - 1, afd);
  cr_assert_eq(bg_join(&run), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_value_int(res[0]), 7 * 7 + 1);
  tg_value_unref(res[0]);
  tg_remote_stats st;
  cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
  cr_assert_eq(st.workers_lost, 0);
  cr_assert_eq(st.tasks_retried, 0);
  tg_executor_free(ex);
  tg_graph_free(g);
}
