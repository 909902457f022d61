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
 * Workloads (shared with bench_graph: workloads.c; medians of 7 after a
 * warm-up; times include building the graph; the executor is connected
 * beforehand):
 *   W1  10,000 independent inc(i) tasks and a sum of all    us per task
 *   W3  4,096 leaves returning their index, summed pairwise  us per task
 *       (8,191 tasks)
 *   W4  8 Monte-Carlo pi tasks of 5,000,000 samples each     speedup over
 *       sync, median of 11 alternating sync/tcp pairs, beside the same pi
 *       work on two plain pthreads against one, measured with each pair:
 *       what the two vCPUs give at that moment
 *   WA  a 200 MiB f64 array passed to a task that returns it: GB/s as
 *       array bytes / round-trip seconds (the bytes cross the wire twice),
 *       and each crossing's GB/s against raw loopback TCP moving the same
 *       bytes, measured beside each repetition
 *   WA with CURVE: the same on two more workers started with a fresh key
 *       set (a temporary directory, removed at the end), so every message
 *       is authenticated and encrypted
 * Targets (this 2-core machine): W1 <= 10 us, W3 <= 30 us, W4 >= 1.8x,
 * WA >= 1 GB/s. --quick shrinks every workload for a smoke test. Every
 * workload checks its result; the exit status is 1 when one is wrong.
 */
#include <dirent.h>
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
#include "workloads.h"

typedef struct sizes {
  int reps, pairs, w1_tasks, w3_leaves, w4_tasks;
  int64_t w4_samples, wa_elems;
} sizes;

static const sizes full = {7, 11, 10000, 4096, 8, 5000000, 25 << 20};
static const sizes quick = {3, 2, 1000, 256, 8, 50000, 1 << 20};

/* ---- workers ------------------------------------------------------------------ */

static volatile sig_atomic_t child_stop;
static void child_term(int s) { (void)s, child_stop = 1; }
static void child_ready(void *ctx, const char *ep) { dprintf(*(int *)ctx, "%s\n", ep); }

/* Fork a worker with one thread (CURVE with keys, a key directory; NULL:
 * none); its address in ep. Fork before any executor exists: a child must
 * not inherit a running one. */
static pid_t start_worker(char ep[128], const char *keys) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGTERM, child_term);
    tg_registry *reg = bench_registry();
    char wdir[128];
    snprintf(wdir, sizeof wdir, "%s/worker", keys ? keys : "");
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                        .nthreads = 1, .keys_dir = keys ? wdir : NULL, .stop = &child_stop,
                        .on_ready = child_ready, .ctx = &p[1]};
    int rc = tg_worker_serve(reg, &o, NULL);
    tg_registry_free(reg);
    _exit(rc ? 1 : 0);
  }
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    return -1;
  }
  size_t n = 0;
  while (n + 1 < 128 && read(p[0], ep + n, 1) == 1 && ep[n] != '\n') n++;
  ep[n] = '\0';
  close(p[0]);
  if (strncmp(ep, "tcp://", 6) == 0) return pid;
  kill(pid, SIGKILL); /* it could not serve: reap it now */
  waitpid(pid, NULL, 0);
  return -1;
}

/* Two workers and the executor connected to them. */
typedef struct pool {
  pid_t pids[2];        /* <= 0: not running */
  char ep[2][128];
  const char *keys;     /* key directory, or NULL */
  tg_executor *ex;      /* NULL until pool_connect */
} pool;

static int pool_start(pool *p, const char *keys) {
  p->keys = keys;
  p->ex = NULL;
  for (int i = 0; i < 2; i++) p->pids[i] = start_worker(p->ep[i], keys);
  return p->pids[0] > 0 && p->pids[1] > 0 ? 0 : -1;
}

static int pool_connect(pool *p, tg_registry *reg) {
  const char *addr[2] = {p->ep[0], p->ep[1]};
  char cdir[128];
  snprintf(cdir, sizeof cdir, "%s/client", p->keys ? p->keys : "");
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                         .connect = addr, .nconnect = 2, .keys_dir = p->keys ? cdir : NULL};
  tg_error err;
  tg_error_clear(&err);
  if (tg_executor_new(reg, &eo, &p->ex, &err) == TG_OK) return 0;
  fprintf(stderr, "bench_tcp: %s\n", err.msg);
  return -1;
}

/* Free the executor, then terminate and reap the workers. */
static void pool_stop(pool *p) {
  tg_executor_free(p->ex);
  p->ex = NULL;
  for (int i = 0; i < 2; i++) {
    if (p->pids[i] <= 0) continue;
    kill(p->pids[i], SIGTERM);
    waitpid(p->pids[i], NULL, 0);
    p->pids[i] = 0;
  }
}

/* A fresh key set in a new directory under /tmp (dir: its path), or -1. */
static int keys_make(char dir[64]) {
  snprintf(dir, 64, "/tmp/bench_tcp_keysXXXXXX");
  if (!mkdtemp(dir)) {
    perror("bench_tcp: mkdtemp");
    dir[0] = '\0';
    return -1;
  }
  tg_error err;
  tg_error_clear(&err);
  if (tg_keys_generate(dir, &err) == TG_OK) return 0;
  fprintf(stderr, "bench_tcp: %s\n", err.msg);
  return -1;
}

/* Remove what keys_make made (dir "" does nothing): its files and
 * worker/ and client/ with theirs. */
static void keys_remove(const char *dir) {
  DIR *d = dir[0] ? opendir(dir) : NULL;
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0) continue;
    char sub[300];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    keys_remove(sub);
  }
  closedir(d);
  rmdir(dir);
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
  bench_check(s.bytes == bytes, "loopback baseline");
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
  bench_check(zmq_msg_size(&in) == bytes, "ZeroMQ baseline");
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
  bench_check(p[bytes / 2] == 1, "first-touch baseline");
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
  bench_check(dst[bytes / 3] == 1, "memcpy baseline");
  free(src);
  free(dst);
  return (double)bytes / dt * 1e-9;
}

/* ---- the table ------------------------------------------------------------------- */

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

static void print_baselines(const sizes *sz, size_t wa_bytes) {
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
         (double)wa_bytes / 1048576.0, bench_median(base_tcp, sz->reps),
         bench_median(base_zmq, sz->reps), bench_median(base_touch, sz->reps),
         bench_median(base_copy, sz->reps));
}

/* W4: sync and tcp alternate, each pair beside plain pthreads, so all three
 * see the same machine load. */
static void row_w4(tg_registry *reg, tg_executor *ex, const sizes *sz) {
  double sp[64], ts[64], tb[64], raw[64];
  bench_w4(reg, ex, sz->w4_tasks, sz->w4_samples); /* warm-up */
  for (int i = 0; i < sz->pairs; i++) {
    raw[i] = bench_raw_w4(sz->w4_tasks, sz->w4_samples);
    ts[i] = bench_w4(reg, NULL, sz->w4_tasks, sz->w4_samples);
    tb[i] = bench_w4(reg, ex, sz->w4_tasks, sz->w4_samples);
    sp[i] = ts[i] / tb[i];
  }
  printf("| W4 %d x pi(%lld samples) | %.2fx speedup over sync (%.0f ms vs %.0f ms); "
         "plain pthreads %.2fx | >= 1.8x |\n", sz->w4_tasks, (long long)sz->w4_samples,
         bench_median(sp, sz->pairs), bench_median(tb, sz->pairs) * 1e3,
         bench_median(ts, sz->pairs) * 1e3, bench_median(raw, sz->pairs));
}

/* Median seconds of WA on ex, after a warm-up. */
/* Median seconds of WA on ex, after a warm-up; with raw (not NULL), each
 * repetition beside raw loopback TCP moving the same bytes one way, whose
 * median GB/s goes to *raw (the host's load moves both alike). */
static double wa_median(tg_registry *reg, tg_executor *ex, tg_value *a, int reps,
                        double *raw) {
  double v[64], t[64];
  bench_wa(reg, ex, a);
  for (int i = 0; i < reps; i++) {
    if (raw) t[i] = tcp_gbs(tg_ndarray_nbytes(a));
    v[i] = bench_wa(reg, ex, a);
  }
  if (getenv("BENCH_TCP_REPS")) /* every repetition, to see the spread */
    for (int i = 0; i < reps; i++) fprintf(stderr, "WA rep %d: %.0f ms\n", i, v[i] * 1e3);
  if (raw) *raw = bench_median(t, reps);
  return bench_median(v, reps);
}

/* The table, on the plain pool and then (WA only) on the keyed one. */
static void run_table(tg_registry *reg, pool *plain, pool *keyed, const sizes *sz) {
  tg_executor *ex = plain->ex;
  printf("| workload | tcp, 2 workers x 1 thread | target |\n|---|---|---|\n");
  double us = bench_median_of(sz->reps, bench_w1, reg, ex, sz->w1_tasks);
  printf("| W1 %d independent + sum | %.2f us/task | <= 10 |\n", sz->w1_tasks, us);
  us = bench_median_of(sz->reps, bench_w3, reg, ex, sz->w3_leaves);
  printf("| W3 tree of %d leaves (%d tasks) | %.2f us/task | <= 30 |\n", sz->w3_leaves,
         2 * sz->w3_leaves - 1, us);
  if (getenv("BENCH_TCP_W3_ONLY")) return; /* W1 and W3 only: the quick comparison */
  row_w4(reg, ex, sz);
  int64_t n = sz->wa_elems;
  double wa_bytes = (double)n * 8;
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &n);
  double *d = tg_ndarray_data_mut(a);
  for (int64_t i = 0; i < n; i++) d[i] = (double)i * 0.25;
  double raw = 0, s = wa_median(reg, ex, a, sz->reps, &raw);
  double each = 2.0 * wa_bytes / s * 1e-9; /* GB/s of one crossing */
  printf("| WA %.0f MiB f64 array there and back | %.2f GB/s (%.0f ms); each way %.2f GB/s, "
         "%.0f%% of raw loopback TCP beside it (%.2f GB/s) | >= 1 |\n", wa_bytes / 1048576.0,
         wa_bytes / s * 1e-9, s * 1e3, each, 100 * each / raw, raw);
  fflush(stdout);
  if (pool_connect(keyed, reg) == 0) {
    s = wa_median(reg, keyed->ex, a, sz->reps, NULL);
    printf("| WA with CURVE (encrypted) | %.2f GB/s (%.0f ms) | - |\n",
           wa_bytes / s * 1e-9, s * 1e3);
  } else {
    bench_failed = 1;
  }
  printf("\n");
  report(ex, "all workloads");
  if (keyed->ex) report(keyed->ex, "WA with CURVE");
  tg_value_unref(a);
}

/* Workers are forked first (before any executor or ZeroMQ context), the
 * plain pool connected; the keyed pool is connected only for its row. */
int main(int argc, char **argv) {
  const sizes *sz = argc > 1 && strcmp(argv[1], "--quick") == 0 ? &quick : &full;
  bench_set_name("bench_tcp");
  tg_registry *reg = bench_registry();
  char keys[64] = "";
  pool plain = {{0, 0}, {"", ""}, NULL, NULL}, keyed = plain;
  int ok = reg && keys_make(keys) == 0;
  if (ok && (pool_start(&plain, NULL) != 0 || pool_start(&keyed, keys) != 0)) {
    fprintf(stderr, "bench_tcp: cannot start workers\n");
    ok = 0;
  }
  if (ok && pool_connect(&plain, reg) == 0) {
    if (!getenv("BENCH_TCP_W3_ONLY")) print_baselines(sz, (size_t)sz->wa_elems * 8);
    run_table(reg, &plain, &keyed, sz);
  } else {
    bench_failed = 1;
  }
  pool_stop(&keyed);
  pool_stop(&plain);
  keys_remove(keys);
  tg_registry_free(reg);
  return bench_failed;
}
