/* tests/bench/bench_tcp.c: the tcp backend with 2 workers on loopback
 * (forked processes serving this program's functions, 1 thread each),
 * printed as a markdown table beside baselines measured in the same run:
 * raw loopback TCP throughput (a plain socket pair, 1 MiB writes), one
 * ZeroMQ message of the WA size sent one way, the first touch of fresh
 * memory (page faults: ZeroMQ receives every message into a new buffer)
 * and memcpy.
 *
 *   bench_tcp [--quick]
 *
 * Workloads (medians of 7 after a warm-up; times include building the
 * graph; the executor is connected beforehand):
 *   W1  10,000 independent inc(i) tasks and a sum of all    us per task
 *   W3  4,096 leaves returning their index, summed pairwise  us per task
 *       (8,191 tasks)
 *   W4  8 Monte-Carlo pi tasks of 5,000,000 samples each     speedup over
 *       sync, median of 5 alternating sync/tcp pairs
 *   WA  a 200 MiB f64 array passed to a task that returns it: GB/s as
 *       array bytes / round-trip seconds (the bytes cross the wire twice)
 * Targets (this 2-core machine): W1 <= 10 us, W3 <= 30 us, W4 >= 1.8x,
 * WA >= 1 GB/s. Every workload checks its result; the exit status is 1
 * when one is wrong.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "../test_funcs.h"

typedef struct sizes {
  int reps, pairs, w1_tasks, w3_leaves, w4_tasks;
  int64_t w4_samples, wa_elems;
} sizes;

static const sizes full = {7, 5, 10000, 4096, 8, 5000000, 25 << 20};
static const sizes quick = {3, 2, 1000, 256, 8, 50000, 1 << 20};

static int failed;

static void check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "bench_tcp: wrong result: %s\n", what);
    failed = 1;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- task functions (no counters) ------------------------------------------ */

static int b_inc(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  *o = tg_int(tg_value_int(a[0]) + 1);
  return *o ? TG_OK : TG_ENOMEM;
}

static int b_ident(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  *o = tg_value_ref(a[0]);
  return TG_OK;
}

static int b_add(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  *o = tg_int(tg_value_int(a[0]) + tg_value_int(a[1]));
  return *o ? TG_OK : TG_ENOMEM;
}

static int b_sum(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c;
  int64_t s = 0;
  for (size_t i = 0; i < n; i++) s += tg_value_int(a[i]);
  *o = tg_int(s);
  return *o ? TG_OK : TG_ENOMEM;
}

static int b_pi(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  *o = tg_float(tgt_mc_pi((uint64_t)tg_value_int(a[0]), tg_value_int(a[1])));
  return *o ? TG_OK : TG_ENOMEM;
}

static tg_registry *bench_registry(void) {
  tg_registry *reg = NULL;
  if (tg_registry_new(&reg) != TG_OK) return NULL;
  struct { const char *name; tg_task_fn fn; int nargs; } defs[] = {
      {"inc", b_inc, 1}, {"ident", b_ident, 1}, {"add", b_add, 2},
      {"sum", b_sum, -1}, {"mc_pi", b_pi, 2}};
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    tg_func_def d = {TG_FUNC_DEF_V1, defs[i].name, "1", defs[i].fn,
                     TG_FUNC_PURE, defs[i].nargs, NULL, NULL};
    if (tg_registry_add(reg, &d, NULL) != TG_OK) {
      tg_registry_free(reg);
      return NULL;
    }
  }
  return reg;
}

/* ---- workers ------------------------------------------------------------------ */

static volatile sig_atomic_t child_stop;
static void child_term(int s) { (void)s, child_stop = 1; }
static void child_ready(void *ctx, const char *ep) { dprintf(*(int *)ctx, "%s\n", ep); }

/* Fork a worker with one thread; its address in ep. */
static pid_t start_worker(char ep[128]) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGTERM, child_term);
    tg_registry *reg = bench_registry();
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                        .nthreads = 1, .stop = &child_stop, .on_ready = child_ready,
                        .ctx = &p[1]};
    int rc = tg_worker_serve(reg, &o, NULL);
    tg_registry_free(reg);
    _exit(rc ? 1 : 0);
  }
  close(p[1]);
  size_t n = 0;
  while (n + 1 < 128 && read(p[0], ep + n, 1) == 1 && ep[n] != '\n') n++;
  ep[n] = '\0';
  close(p[0]);
  return strncmp(ep, "tcp://", 6) == 0 ? pid : -1;
}

/* ---- workloads ------------------------------------------------------------------ */

static void run_graph(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex,
                      tg_value **res) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .executor = ex};
  if (tg_compute(g, outs, n, &o, res) != TG_OK) {
    fprintf(stderr, "bench_tcp: %s\n", tg_graph_errmsg(g));
    failed = 1;
  }
}

static int64_t compute_int(tg_graph *g, tg_node out, tg_executor *ex) {
  tg_value *v = NULL;
  run_graph(g, &out, 1, ex, &v);
  int64_t r = v ? tg_value_int(v) : INT64_MIN;
  tg_value_unref(v);
  return r;
}

/* us per task of W1: n independent inc(i) and one sum. */
static double w1(tg_registry *reg, tg_executor *ex, int n) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_arg *args = malloc((size_t)n * sizeof *args);
  for (int i = 0; i < n; i++)
    args[i] = tg_arg_node(tg_call(g, "inc", 1, tg_arg_value(tg_int(i))));
  tg_node sum = TG_NODE_NONE;
  tg_graph_add(g, "sum", args, (size_t)n, NULL, &sum);
  int64_t r = compute_int(g, sum, ex);
  double dt = tgt_now() - t0;
  check(r == (int64_t)n * (n + 1) / 2, "W1 sum");
  tg_graph_free(g);
  free(args);
  return dt * 1e6 / (n + 1);
}

/* us per task of W3: n leaves (a power of two) summed pairwise. */
static double w3(tg_registry *reg, tg_executor *ex, int n) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node *lv = malloc((size_t)n * sizeof *lv);
  for (int i = 0; i < n; i++) lv[i] = tg_call(g, "ident", 1, tg_arg_value(tg_int(i)));
  for (int m = n; m > 1; m /= 2)
    for (int i = 0; i < m / 2; i++)
      lv[i] = tg_call(g, "add", 2, tg_arg_node(lv[2 * i]), tg_arg_node(lv[2 * i + 1]));
  int64_t r = compute_int(g, lv[0], ex);
  double dt = tgt_now() - t0;
  check(r == (int64_t)n * (n - 1) / 2, "W3 tree");
  tg_graph_free(g);
  free(lv);
  return dt * 1e6 / (2 * n - 1);
}

/* Seconds for W4: `tasks` Monte-Carlo pi estimates (ex NULL: sync). */
static double w4(tg_registry *reg, tg_executor *ex, int tasks, int64_t samples) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node outs[64];
  tg_value *res[64] = {0};
  for (int i = 0; i < tasks; i++)
    outs[i] = tg_call(g, "mc_pi", 2, tg_arg_value(tg_int(1000 + i)),
                      tg_arg_value(tg_int(samples)));
  run_graph(g, outs, (size_t)tasks, ex, res);
  double dt = tgt_now() - t0;
  for (int i = 0; i < tasks; i++) {
    check(res[i] && tg_value_float(res[i]) == tgt_mc_pi((uint64_t)(1000 + i), samples),
          "W4 pi");
    tg_value_unref(res[i]);
  }
  tg_graph_free(g);
  return dt;
}

/* Seconds for ident(a) there and back (checked). */
static double wa(tg_registry *reg, tg_executor *ex, tg_value *a) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node n = tg_call(g, "ident", 1, tg_arg_value(tg_value_ref(a)));
  tg_value *v = NULL;
  run_graph(g, &n, 1, ex, &v);
  double dt = tgt_now() - t0;
  check(v && tg_ndarray_nbytes(v) == tg_ndarray_nbytes(a), "WA array size");
  if (v) { /* spot checks: a full compare would cost more than the trip */
    const double *x = tg_ndarray_data(a), *y = tg_ndarray_data(v);
    size_t n = tg_ndarray_size(a);
    for (size_t i = 0; i < n; i += n / 97 + 1) check(x[i] == y[i], "WA array data");
    check(x[n - 1] == y[n - 1], "WA array data");
  }
  tg_value_unref(v);
  tg_graph_free(g);
  return dt;
}

/* ---- baselines ---------------------------------------------------------------- */

typedef struct sink {
  int fd;
  size_t bytes;
} sink;

static void *drain(void *arg) {
  sink *s = arg;
  char *buf = malloc(1 << 20);
  size_t got = 0;
  while (got < s->bytes) {
    ssize_t r = read(s->fd, buf, 1 << 20);
    if (r <= 0) break;
    got += (size_t)r;
  }
  free(buf);
  s->bytes = got;
  return NULL;
}

/* GB/s through one loopback TCP connection (1 MiB writes, a reader thread). */
static double tcp_gbs(size_t bytes) {
  int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
      getsockname(l, (struct sockaddr *)&a, &al) || connect(c, (struct sockaddr *)&a, al))
    return 0;
  sink s = {accept(l, NULL, NULL), bytes};
  char *buf = calloc(1, 1 << 20);
  pthread_t th;
  double t0 = tgt_now();
  pthread_create(&th, NULL, drain, &s);
  for (size_t sent = 0; sent < bytes;) {
    ssize_t w = write(c, buf, bytes - sent < (1 << 20) ? bytes - sent : (1 << 20));
    if (w <= 0) break;
    sent += (size_t)w;
  }
  pthread_join(th, NULL);
  double dt = tgt_now() - t0;
  check(s.bytes == bytes, "loopback baseline");
  free(buf);
  close(c);
  close(s.fd);
  close(l);
  return (double)bytes / dt * 1e-9;
}

static void no_free(void *data, void *hint) { (void)data, (void)hint; }

/* GB/s of one ZeroMQ message of `bytes` from a DEALER to a ROUTER over
 * loopback TCP (sent without a copy, received as ZeroMQ does: into a fresh
 * buffer): the floor under one direction of WA. */
static double zmq_gbs(size_t bytes, const char *src) {
  void *ctx = zmq_ctx_new(), *r = zmq_socket(ctx, ZMQ_ROUTER), *d = zmq_socket(ctx, ZMQ_DEALER);
  char ep[128];
  size_t len = sizeof ep;
  int zero = 0;
  zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
  zmq_bind(r, "tcp://127.0.0.1:*");
  zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &len);
  zmq_connect(d, ep);
  zmq_msg_t m, id, in;
  zmq_msg_init_data(&m, (void *)src, bytes, no_free, NULL);
  zmq_msg_init(&id);
  zmq_msg_init(&in);
  double t0 = tgt_now();
  zmq_msg_send(&m, d, 0);
  zmq_msg_recv(&id, r, 0);
  zmq_msg_recv(&in, r, 0);
  double dt = tgt_now() - t0;
  check(zmq_msg_size(&in) == bytes, "ZeroMQ baseline");
  zmq_msg_close(&in);
  zmq_msg_close(&id);
  zmq_close(d);
  zmq_close(r);
  zmq_ctx_term(ctx);
  return (double)bytes / dt * 1e-9;
}

/* GB/s of writing `bytes` of fresh memory (page faults included). */
static double touch_gbs(size_t bytes) {
  double t0 = tgt_now();
  char *p = malloc(bytes);
  memset(p, 1, bytes);
  double dt = tgt_now() - t0;
  check(p[bytes / 2] == 1, "first-touch baseline");
  free(p);
  return (double)bytes / dt * 1e-9;
}

static double memcpy_gbs(size_t bytes) {
  char *src = malloc(bytes), *dst = malloc(bytes);
  memset(src, 1, bytes);
  memset(dst, 2, bytes);
  double t0 = tgt_now();
  memcpy(dst, src, bytes);
  double dt = tgt_now() - t0;
  check(dst[bytes / 3] == 1, "memcpy baseline");
  free(src);
  free(dst);
  return (double)bytes / dt * 1e-9;
}

/* ---- the table ------------------------------------------------------------------- */

static double median_of(int reps, double (*fn)(tg_registry *, tg_executor *, int),
                        tg_registry *reg, tg_executor *ex, int size) {
  double v[64];
  fn(reg, ex, size); /* warm-up */
  for (int i = 0; i < reps; i++) v[i] = fn(reg, ex, size);
  return median(v, reps);
}

static void report(tg_executor *ex, const char *what) {
  tg_remote_stats st;
  tg_remote_stats_get(ex, &st);
  printf("  after %s: %llu tasks in %llu messages, %.1f MB sent, %.1f MB received, "
         "%llu values moved between workers, %llu workers lost, %llu tasks retried\n",
         what, (unsigned long long)st.tasks_sent, (unsigned long long)st.batches_sent,
         (double)st.bytes_sent * 1e-6, (double)st.bytes_received * 1e-6,
         (unsigned long long)st.values_moved, (unsigned long long)st.workers_lost,
         (unsigned long long)st.tasks_retried);
}

int main(int argc, char **argv) {
  const sizes *sz = argc > 1 && strcmp(argv[1], "--quick") == 0 ? &quick : &full;
  tg_registry *reg = bench_registry();
  char ep[2][128];
  pid_t pids[2] = {start_worker(ep[0]), start_worker(ep[1])};
  if (!reg || pids[0] < 0 || pids[1] < 0) {
    fprintf(stderr, "bench_tcp: cannot start workers\n");
    return 1;
  }
  const char *addr[2] = {ep[0], ep[1]};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                         .connect = addr, .nconnect = 2};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  if (tg_executor_new(reg, &eo, &ex, &err) != TG_OK) {
    fprintf(stderr, "bench_tcp: %s\n", err.msg);
    return 1;
  }
  size_t wa_bytes = (size_t)sz->wa_elems * 8;
  double base_tcp[64], base_copy[64], base_zmq[64], base_touch[64];
  char *zsrc = malloc(wa_bytes);
  memset(zsrc, 3, wa_bytes);
  for (int i = 0; i < sz->reps; i++) {
    base_tcp[i] = tcp_gbs(wa_bytes);
    base_copy[i] = memcpy_gbs(wa_bytes);
    base_zmq[i] = zmq_gbs(wa_bytes, zsrc);
    base_touch[i] = touch_gbs(wa_bytes);
  }
  free(zsrc);
  printf("Baselines (median of %d, %.0f MiB): loopback TCP %.2f GB/s (one socket pair, "
         "1 MiB writes into a warm buffer); one ZeroMQ message one way %.2f GB/s; first "
         "touch of fresh memory %.2f GB/s; memcpy %.2f GB/s\n\n", sz->reps,
         (double)wa_bytes / 1048576.0, median(base_tcp, sz->reps), median(base_zmq, sz->reps),
         median(base_touch, sz->reps), median(base_copy, sz->reps));
  printf("| workload | tcp, 2 workers x 1 thread | target |\n|---|---|---|\n");
  double us = median_of(sz->reps, w1, reg, ex, sz->w1_tasks);
  printf("| W1 %d independent + sum | %.2f us/task | <= 10 |\n", sz->w1_tasks, us);
  us = median_of(sz->reps, w3, reg, ex, sz->w3_leaves);
  printf("| W3 tree of %d leaves (%d tasks) | %.2f us/task | <= 30 |\n", sz->w3_leaves,
         2 * sz->w3_leaves - 1, us);
  double sp[64], ts[64], tb[64];
  w4(reg, ex, sz->w4_tasks, sz->w4_samples);
  for (int i = 0; i < sz->pairs; i++) { /* alternate: both see the same load */
    ts[i] = w4(reg, NULL, sz->w4_tasks, sz->w4_samples);
    tb[i] = w4(reg, ex, sz->w4_tasks, sz->w4_samples);
    sp[i] = ts[i] / tb[i];
  }
  printf("| W4 %d x pi(%lld samples) | %.2fx speedup over sync (%.0f ms vs %.0f ms) | "
         ">= 1.8x |\n", sz->w4_tasks, (long long)sz->w4_samples, median(sp, sz->pairs),
         median(tb, sz->pairs) * 1e3, median(ts, sz->pairs) * 1e3);
  int64_t n = sz->wa_elems;
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &n);
  double *d = tg_ndarray_data_mut(a);
  for (int64_t i = 0; i < n; i++) d[i] = (double)i * 0.25;
  double v[64];
  wa(reg, ex, a);
  for (int i = 0; i < sz->reps; i++) v[i] = wa(reg, ex, a);
  double s = median(v, sz->reps);
  printf("| WA %.0f MiB f64 array there and back | %.2f GB/s (%.0f ms; %.2f GB/s counting "
         "both ways) | >= 1 |\n\n", (double)wa_bytes / 1048576.0, (double)wa_bytes / s * 1e-9,
         s * 1e3, 2.0 * (double)wa_bytes / s * 1e-9);
  report(ex, "all workloads");
  tg_value_unref(a);
  tg_executor_free(ex);
  for (int i = 0; i < 2; i++) {
    kill(pids[i], SIGTERM);
    waitpid(pids[i], NULL, 0);
  }
  tg_registry_free(reg);
  return failed;
}
