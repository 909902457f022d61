/* tests/bench/bench_graph.c: overhead and scaling of task graphs on each
 * backend, printed as a markdown table beside this machine's own
 * baselines (an indirect call, a mutex+condvar handoff between two threads
 * and a spinning one), all measured in the same run.
 *
 *   bench_graph [--quick] [--backend NAME[:WORKERS]]...
 *
 * Backends sync and threads:2 always run; --backend adds more (processes;
 * tcp needs workers to connect to: bench_tcp measures it). --quick
 * shrinks every workload for a smoke test. Every workload checks its
 * result; the exit status is 1 when one is wrong.
 *
 * Workloads (W1, W3, W4 and WA are bench_tcp's too: workloads.c; times
 * include building the graph; executors are started beforehand, so pool
 * start-up is not counted):
 *   W1  10,000 independent inc(i) tasks and a sum of all    us per task
 *   W2  a chain of 2,000 dependent inc tasks                 us per task
 *   W3  4,096 leaves returning their index, summed pairwise  us per task
 *   W4  8 Monte-Carlo pi tasks of 5,000,000 samples each     speedup over
 *       sync, median of alternating sync/backend pairs
 *   W8  a 1,000,000-node wide map-reduce (990,000 leaves, sums of 100),
 *       run in a fresh child process: wall seconds, peak RSS, and bytes of
 *       graph + scheduler state per node (RSS growth / nodes)
 *   WA  a 200 MiB f64 array passed to a task that returns it: GB/s (array
 *       bytes / seconds, median), beside this machine's memcpy GB/s between
 *       two buffers already in memory
 *
 * For the processes backend, the bytes each workload moved through the
 * worker sockets and through shared memory follow the table.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "offload/traffic.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "../test_funcs.h"
#include "workloads.h"

#define MAX_BACKENDS 8

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

typedef struct backend {
  char name[32];
  unsigned workers;
  tg_executor *ex;
} backend;

typedef struct sizes {
  int reps;          /* repetitions per figure (median) */
  int pairs;         /* W4 sync/backend pairs */
  int w1_tasks, w2_len, w3_leaves, w4_tasks;
  int64_t w4_samples;
  int w8_leaves;     /* leaves; sums of 100 on top */
  long calls, handoffs, spins; /* baseline loop counts */
  int64_t wa_elems;  /* f64 elements of the WA array */
} sizes;

static const sizes full = {7, 11, 10000, 2000, 4096, 8, 5000000, 990000,
                           100000000, 20000, 1000000, 25 << 20};
static const sizes quick = {3, 2, 1000, 200, 256, 8, 50000, 19800,
                            10000000, 2000, 100000, 1 << 20};

/* ---- baselines ------------------------------------------------------------ */

static int __attribute__((noinline)) plus_one(int x) { return x + 1; }
static int (*volatile call_target)(int) = plus_one;

/* ns per call through a function pointer the compiler cannot see through. */
static double base_indirect_call(long n) {
  int (*f)(int) = call_target;
  volatile int sink = 0;
  int x = 0;
  double t0 = tgt_now();
  for (long i = 0; i < n; i++) {
    x = f(x);
    f = call_target;
  }
  sink = x;
  (void)sink;
  return (tgt_now() - t0) * 1e9 / (double)n;
}

typedef struct pingpong {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long turn; /* odd: the responder's move */
  long n;
  atomic_long spin;
} pingpong;

static void *condvar_responder(void *arg) {
  pingpong *p = arg;
  pthread_mutex_lock(&p->mu);
  for (long i = 0; i < p->n; i++) {
    while (p->turn % 2 == 0) pthread_cond_wait(&p->cv, &p->mu);
    p->turn++;
    pthread_cond_signal(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* us per round trip: hand a token to another thread and get it back. */
static double base_condvar_handoff(long n) {
  pingpong p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, n, 0};
  pthread_t th;
  pthread_create(&th, NULL, condvar_responder, &p);
  double t0 = tgt_now();
  pthread_mutex_lock(&p.mu);
  for (long i = 0; i < n; i++) {
    p.turn++;
    pthread_cond_signal(&p.cv);
    while (p.turn % 2 == 1) pthread_cond_wait(&p.cv, &p.mu);
  }
  pthread_mutex_unlock(&p.mu);
  double dt = tgt_now() - t0;
  pthread_join(th, NULL);
  return dt * 1e6 / (double)n;
}

static void *spin_responder(void *arg) {
  pingpong *p = arg;
  for (long i = 0; i < p->n; i++) {
    while (atomic_load_explicit(&p->spin, memory_order_acquire) != 2 * i + 1)
      CPU_RELAX();
    atomic_store_explicit(&p->spin, 2 * i + 2, memory_order_release);
  }
  return NULL;
}

/* ns per round trip with both threads spinning on one atomic. */
static double base_spin_handoff(long n) {
  pingpong p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, n, 0};
  pthread_t th;
  pthread_create(&th, NULL, spin_responder, &p);
  double t0 = tgt_now();
  for (long i = 0; i < n; i++) {
    atomic_store_explicit(&p.spin, 2 * i + 1, memory_order_release);
    while (atomic_load_explicit(&p.spin, memory_order_acquire) != 2 * i + 2)
      CPU_RELAX();
  }
  double dt = tgt_now() - t0;
  pthread_join(th, NULL);
  return dt * 1e9 / (double)n;
}

/* ---- workloads (the others are shared: workloads.h) ------------------------ */

/* ---- WA: a large array through a task -------------------------------------------- */


/* Seconds of a memcpy between two buffers of `bytes` already in memory. */
static double memcpy_secs(char *dst, const char *src, size_t bytes) {
  double t0 = tgt_now();
  memcpy(dst, src, bytes);
  double dt = tgt_now() - t0;
  bench_check(dst[bytes / 3] == src[bytes / 3], "memcpy baseline");
  return dt;
}

/* WA on b, each repetition beside a memcpy of the same bytes (alternating,
 * so both see the same machine load). */
static void row_array(const backend *b, tg_registry *reg, tg_value *a, int reps) {
  size_t bytes = tg_ndarray_nbytes(a);
  char *src = malloc(bytes), *dst = malloc(bytes);
  memset(src, 1, bytes);
  memset(dst, 2, bytes);
  double v[64], c[64];
  bench_wa(reg, b->ex, a); /* warm-up: workers' and parent's segment pools */
  for (int i = 0; i < reps; i++) {
    c[i] = memcpy_secs(dst, src, bytes);
    v[i] = bench_wa(reg, b->ex, a);
  }
  free(src);
  free(dst);
  double s = bench_median(v, reps), gbs = (double)bytes / s * 1e-9;
  double copy_gbs = (double)bytes / bench_median(c, reps) * 1e-9;
  printf("| WA %.0f MiB f64 array in and out | %s:%u | %.2f GB/s (%.1f ms), %.0f%% of "
         "memcpy (%.2f GB/s) | - | - | - |\n",
         (double)bytes / 1048576.0, b->name, b->workers, gbs, s * 1e3, 100 * gbs / copy_gbs,
         copy_gbs);
}

/* ---- traffic of the processes backend ---------------------------------------------- */

typedef struct traffic {
  char what[64];
  const backend *b;
  tg__offload_traffic d; /* counters over the workload */
} traffic;

static traffic traffics[64];
static int ntraffic;

static void traffic_start(const backend *b, tg__offload_traffic *st) {
  memset(st, 0, sizeof *st);
  tg__offload_traffic_get(b->ex, st);
}

static void traffic_end(const backend *b, const char *what, const tg__offload_traffic *st) {
  tg__offload_traffic now;
  if (tg__offload_traffic_get(b->ex, &now) != TG_OK || ntraffic == 64) return;
  traffic *t = &traffics[ntraffic++];
  snprintf(t->what, sizeof t->what, "%s", what);
  t->b = b;
  t->d.sock_out = now.sock_out - st->sock_out;
  t->d.sock_in = now.sock_in - st->sock_in;
  t->d.shm_copied = now.shm_copied - st->shm_copied;
  t->d.shm_passed = now.shm_passed - st->shm_passed;
  t->d.fds_passed = now.fds_passed - st->fds_passed;
  t->d.values_moved = now.values_moved - st->values_moved;
  t->d.batches = now.batches - st->batches;
  t->d.tasks = now.tasks - st->tasks;
}

static void print_traffic(void) {
  if (!ntraffic) return;
  printf("\nTraffic of the processes backend per workload (all repetitions): "
         "bytes through the worker sockets, bytes that crossed as shared memory "
         "(of which copied into it by the parent), segment fds passed, results "
         "sent on from one worker to another, tasks per "
         "batch.\n\n| workload | backend | socket out / in | shared memory "
         "(copied) | fds | moved | tasks/batch |\n|---|---|---|---|---|---|---|\n");
  for (int i = 0; i < ntraffic; i++) {
    const traffic *t = &traffics[i];
    printf("| %s | %s:%u | %.2f / %.2f MB | %.1f MB (%.1f MB) | %llu | %llu | %.1f |\n",
           t->what, t->b->name, t->b->workers, (double)t->d.sock_out / 1e6,
           (double)t->d.sock_in / 1e6, (double)t->d.shm_passed / 1e6,
           (double)t->d.shm_copied / 1e6, (unsigned long long)t->d.fds_passed,
           (unsigned long long)t->d.values_moved,
           t->d.batches ? (double)t->d.tasks / (double)t->d.batches : 0.0);
  }
}

/* ---- W8 in a child process ------------------------------------------------------ */

static long rss_now_kb(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Child side: build and compute the map-reduce, print
 * "wall_s base_kb peak_kb nodes" on stdout. */
static int w8_child(const char *name, unsigned workers, int leaves) {
  tg_registry *reg = bench_registry();
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = name, .workers = workers};
  tg_executor *ex = NULL;
  if (!reg || tg_executor_new(reg, &eo, &ex, NULL) != TG_OK) return 2;
  long base = rss_now_kb();
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  int n = leaves;
  tg_node *lv = malloc((size_t)n * sizeof *lv);
  tg_arg *args = malloc(100 * sizeof *args);
  for (int i = 0; i < n; i++)
    lv[i] = tg_call(g, "inc", 1, tg_arg_value(tg_int(i)));
  while (n > 1) {
    int m = 0;
    for (int i = 0; i < n; i += 100) {
      int k = n - i < 100 ? n - i : 100;
      for (int j = 0; j < k; j++) args[j] = tg_arg_node(lv[i + j]);
      tg_graph_add(g, "sum", args, (size_t)k, NULL, &lv[m++]);
    }
    n = m;
  }
  int64_t r = bench_run_int(g, lv[0], ex);
  double dt = tgt_now() - t0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  size_t nodes = tg_graph_size(g);
  bench_check(r == (int64_t)leaves * (leaves + 1) / 2, "W8 map-reduce");
  printf("%.6f %ld %ld %zu\n", dt, base, ru.ru_maxrss, nodes);
  tg_graph_free(g);
  tg_executor_free(ex);
  tg_registry_free(reg);
  free(lv);
  free(args);
  return bench_failed;
}

typedef struct w8_result {
  double wall, peak_mb, bytes_per_node;
  size_t nodes;
} w8_result;

/* Parent side: one W8 run in a fresh process (so its RSS is its own).
 * Linux carries the forking process's RSS high-water mark across exec, so
 * the peak is only the child's own while it exceeds this (small) process;
 * the full-size run is far above it. */
static int w8_run(const char *self, backend *b, int leaves, w8_result *out) {
  int fd[2];
  if (pipe(fd) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    char w[16], l[16];
    snprintf(w, sizeof w, "%u", b->workers);
    snprintf(l, sizeof l, "%d", leaves);
    execl(self, self, "--w8-child", b->name, w, l, (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  FILE *f = fdopen(fd[0], "r");
  double wall = 0;
  long base = 0, peak = 0;
  size_t nodes = 0;
  int got = fscanf(f, "%lf %ld %ld %zu", &wall, &base, &peak, &nodes);
  fclose(f);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != 4 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  out->wall = wall;
  out->peak_mb = (double)peak / 1024.0;
  out->bytes_per_node = (double)(peak - base) * 1024.0 / (double)nodes;
  out->nodes = nodes;
  return 0;
}

/* ---- driver ---------------------------------------------------------------------- */

typedef struct baselines {
  double call_ns, condvar_us, spin_ns;
} baselines;

static void row_per_task(const char *w, const backend *b, double us,
                         const baselines *bl) {
  printf("| %s | %s:%u | %.3f us/task | %.0fx | %.3fx | %.2fx |\n", w,
         b->name, b->workers, us, us * 1e3 / bl->call_ns, us / bl->condvar_us,
         us * 1e3 / bl->spin_ns);
}

static int parse_backend(const char *arg, backend *b) {
  const char *colon = strchr(arg, ':');
  size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
  if (len == 0 || len >= sizeof b->name) return -1;
  memcpy(b->name, arg, len);
  b->name[len] = '\0';
  b->workers = colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 2;
  b->ex = NULL;
  return 0;
}

static baselines measure_baselines(const sizes *sz) {
  double c[64], h[64], s[64];
  for (int i = 0; i < sz->reps; i++) {
    c[i] = base_indirect_call(sz->calls);
    h[i] = base_condvar_handoff(sz->handoffs);
    s[i] = base_spin_handoff(sz->spins);
  }
  baselines bl = {bench_median(c, sz->reps), bench_median(h, sz->reps),
                  bench_median(s, sz->reps)};
  return bl;
}

int main(int argc, char **argv) {
  bench_set_name("bench_graph");
  if (argc == 5 && strcmp(argv[1], "--w8-child") == 0)
    return w8_child(argv[2], (unsigned)atoi(argv[3]), atoi(argv[4]));
  const sizes *sz = &full;
  backend bs[MAX_BACKENDS] = {{"sync", 1, NULL}, {"threads", 2, NULL}};
  int nb = 2;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      sz = &quick;
    } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc &&
               nb < MAX_BACKENDS && parse_backend(argv[++i], &bs[nb]) == 0) {
      nb++;
    } else {
      fprintf(stderr, "usage: %s [--quick] [--backend NAME[:WORKERS]]...\n",
              argv[0]);
      return 2;
    }
  }
  tg_registry *reg = bench_registry();
  if (!reg) return 1;
  for (int i = 0; i < nb; i++) {
    tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = bs[i].name,
                           .workers = bs[i].workers};
    int rc = tg_executor_new(reg, &eo, &bs[i].ex, NULL);
    if (rc != TG_OK) {
      fprintf(stderr, "bench_graph: backend %s: %s\n", bs[i].name,
              tg_err_name(rc));
      return 1;
    }
  }

  baselines bl = measure_baselines(sz);
  printf("## tgraph graph benchmark%s\n\n", sz == &quick ? " (quick)" : "");
  printf("Baselines (median of %d): indirect call %.2f ns, mutex+condvar "
         "round-trip handoff %.2f us, spinning round-trip handoff %.0f ns.\n\n",
         sz->reps, bl.call_ns, bl.condvar_us, bl.spin_ns);
  printf("| workload | backend | median | / indirect call | / condvar "
         "handoff | / spin handoff |\n");
  printf("|---|---|---|---|---|---|\n");
  fflush(stdout);

  char w[64];
  tg__offload_traffic st;
  for (int i = 0; i < nb; i++) {
    snprintf(w, sizeof w, "W1 %d independent + sum", sz->w1_tasks);
    traffic_start(&bs[i], &st);
    row_per_task(w, &bs[i],
                 bench_median_of(sz->reps, bench_w1, reg, bs[i].ex, sz->w1_tasks), &bl);
    traffic_end(&bs[i], w, &st);
  }
  for (int i = 0; i < nb; i++) {
    snprintf(w, sizeof w, "W2 chain of %d", sz->w2_len);
    traffic_start(&bs[i], &st);
    row_per_task(w, &bs[i], bench_median_of(sz->reps, bench_w2, reg, bs[i].ex, sz->w2_len), &bl);
    traffic_end(&bs[i], w, &st);
  }
  for (int i = 0; i < nb; i++) {
    snprintf(w, sizeof w, "W3 tree of %d leaves", sz->w3_leaves);
    traffic_start(&bs[i], &st);
    row_per_task(w, &bs[i],
                 bench_median_of(sz->reps, bench_w3, reg, bs[i].ex, sz->w3_leaves), &bl);
    traffic_end(&bs[i], w, &st);
  }
  fflush(stdout);

  /* W4: alternate sync and the backend so both see the same machine load. */
  for (int i = 1; i < nb; i++) {
    double sp[64], ts[64], tb[64], raw[64];
    for (int p = 0; p < sz->pairs; p++) {
      raw[p] = bench_raw_w4(sz->w4_tasks, sz->w4_samples);
      ts[p] = bench_w4(reg, bs[0].ex, sz->w4_tasks, sz->w4_samples);
      tb[p] = bench_w4(reg, bs[i].ex, sz->w4_tasks, sz->w4_samples);
      sp[p] = ts[p] / tb[p];
    }
    printf("| W4 %d x pi(%lld samples) | %s:%u | %.2fx speedup over sync "
           "(%.0f ms vs %.0f ms); two plain pthreads on the same work: "
           "%.2fx | - | - | - |\n",
           sz->w4_tasks, (long long)sz->w4_samples, bs[i].name, bs[i].workers,
           bench_median(sp, sz->pairs), bench_median(tb, sz->pairs) * 1e3,
           bench_median(ts, sz->pairs) * 1e3, bench_median(raw, sz->pairs));
    fflush(stdout);
  }

  {
    tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &sz->wa_elems);
    double *d = tg_ndarray_data_mut(a);
    for (int64_t i = 0; i < sz->wa_elems; i++) d[i] = (double)i * 0.5;
    for (int i = 0; i < nb; i++) {
      traffic_start(&bs[i], &st);
      row_array(&bs[i], reg, a, sz->reps);
      snprintf(w, sizeof w, "WA %.0f MiB array", (double)tg_ndarray_nbytes(a) / 1048576.0);
      traffic_end(&bs[i], w, &st);
      fflush(stdout);
    }
    tg_value_unref(a);
  }

  const char *self = "/proc/self/exe";
  for (int i = 0; i < nb; i++) {
    double wall[64], mb[64], bpn[64];
    int reps = 0;
    w8_result res = {0, 0, 0, 0};
    for (int r = 0; r < sz->reps; r++) {
      if (w8_run(self, &bs[i], sz->w8_leaves, &res) != 0) {
        fprintf(stderr, "bench_graph: W8 on %s failed\n", bs[i].name);
        bench_failed = 1;
        break;
      }
      wall[reps] = res.wall;
      mb[reps] = res.peak_mb;
      bpn[reps++] = res.bytes_per_node;
    }
    if (!reps) continue;
    printf("| W8 map-reduce of %zu nodes | %s:%u | %.3f s, peak RSS %.1f MB, "
           "%.0f B/node | - | - | - |\n",
           res.nodes, bs[i].name, bs[i].workers, bench_median(wall, reps),
           bench_median(mb, reps), bench_median(bpn, reps));
    fflush(stdout);
  }

  print_traffic();
  for (int i = 0; i < nb; i++) tg_executor_free(bs[i].ex);
  tg_registry_free(reg);
  return bench_failed;
}
