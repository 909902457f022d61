/* tests/stress/stress_tcp.c: the tcp backend and its workers under
 * concurrent use, all in one process so that ThreadSanitizer sees both
 * ends: two workers serve this program's registry from threads
 * (tg_worker_serve), and tcp executors connected to both of them get
 *   1. graphs from three threads at once: small tasks, 5 MiB arrays made
 *      on workers and streamed back, a 5 MiB constant streamed to them,
 *      tg_task_log lines counted exactly at the executor's log callback;
 *   2. futures from three threads at once (calls, futures as arguments,
 *      on-done callbacks), cancelled racing their start by two threads
 *      whose answers must agree with whether the function ran;
 *   3. executors freed with work in flight, each followed by a new one
 *      whose run must come out right;
 *   4. the workers stopped and joined.
 * Every result is checked exactly (check.h). No Criterion, so it runs
 * under ThreadSanitizer.
 *
 *   stress_tcp [SCALE]      SCALE multiplies the rounds (default 1, sized
 *                           for a TSan debug build on two cores)
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test_funcs.h"
#include "offload/traffic.h"
#include "check.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"

#define NWORKERS 2
#define USERS 3
#define BIG_N ((int64_t)(5 << 20) / 8) /* 5 MiB of f64: above the streaming size */
#define LOGS_PER 8                     /* logline tasks per round */
#define CANCEL_PER 24                  /* marks per cancelling round */
#define MARKS 8192
#define LOG_IDS 8192

#define V(x) tg_arg_value(x)
#define N(x) tg_arg_node(x)

static tg_registry *reg;

/* ---- functions served by the workers (besides test_funcs.h) ---------------- */

static atomic_int ran[MARKS]; /* mark(id) calls per id, made on the workers */

/* A ramp: n f64 elements base, base + 1, ... (exact integers). */
static tg_value *ramp_value(int64_t n, int64_t base) {
  tg_value *v = tg_ndarray_new(TG_DT_F64, 1, &n);
  double *d = v ? tg_ndarray_data_mut(v) : NULL;
  for (int64_t i = 0; d && i < n; i++) d[i] = (double)(base + i);
  return v;
}

/* The sum of that ramp (exact below 2^53). */
static double ramp_sum(int64_t n, int64_t base) {
  return (double)n * (double)base + (double)n * (double)(n - 1) / 2;
}

static bool is_f64(const tg_value *v) {
  return tg_value_type(v) == TG_NDARRAY && tg_ndarray_dtype(v) == TG_DT_F64 &&
         tg_ndarray_ndim(v) == 1;
}

/* ramp(n, base) */
static int fn_ramp(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  int rc;
  if ((rc = tgt_want_int(ctx, a, 0)) || (rc = tgt_want_int(ctx, a, 1))) return rc;
  return tgt_result(ramp_value(tg_value_int(a[0]), tg_value_int(a[1])), out);
}

/* fadd(array, k): a new array, every element plus k. */
static int fn_fadd(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  int rc = tgt_want_int(ctx, a, 1);
  if (rc) return rc;
  if (!is_f64(a[0])) return tg_task_fail(ctx, TG_ETYPE, "fadd: expected an f64 array");
  int64_t len = (int64_t)tg_ndarray_size(a[0]);
  tg_value *v = tg_ndarray_new(TG_DT_F64, 1, &len);
  if (!v) return TG_ENOMEM;
  const double *s = tg_ndarray_data(a[0]);
  double *d = tg_ndarray_data_mut(v), k = (double)tg_value_int(a[1]);
  for (int64_t i = 0; i < len; i++) d[i] = s[i] + k;
  *out = v;
  return TG_OK;
}

/* fsum(array): the sum of its elements (float). */
static int fn_fsum(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (!is_f64(a[0])) return tg_task_fail(ctx, TG_ETYPE, "fsum: expected an f64 array");
  const double *d = tg_ndarray_data(a[0]);
  double s = 0;
  for (size_t i = 0; i < tg_ndarray_size(a[0]); i++) s += d[i];
  return tgt_result(tg_float(s), out);
}

/* fcheck(array, base): how many elements equal base + i (int). */
static int fn_fcheck(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  int rc = tgt_want_int(ctx, a, 1);
  if (rc) return rc;
  if (!is_f64(a[0])) return tg_task_fail(ctx, TG_ETYPE, "fcheck: expected an f64 array");
  const double *d = tg_ndarray_data(a[0]);
  int64_t base = tg_value_int(a[1]), same = 0;
  for (size_t i = 0; i < tg_ndarray_size(a[0]); i++)
    same += d[i] == (double)(base + (int64_t)i);
  return tgt_result(tg_int(same), out);
}

/* mark(id, spins): records that call `id` ran (id >= 0), spins a little
 * so that starts and cancellations overlap, returns id. */
static int fn_mark(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  int rc;
  if ((rc = tgt_want_int(ctx, a, 0)) || (rc = tgt_want_int(ctx, a, 1))) return rc;
  int64_t id = tg_value_int(a[0]);
  if (id >= 0 && id < MARKS) atomic_fetch_add(&ran[id], 1);
  volatile int64_t x = 0;
  for (int64_t i = 0; i < tg_value_int(a[1]); i++) x += i;
  return tgt_result(tg_int(id), out);
}

static tg_registry *registry(void) {
  tg_registry *r = tgt_registry_new();
  static const struct {
    const char *name;
    tg_task_fn fn;
    int nargs;
    unsigned flags;
  } defs[] = {
      {"ramp", fn_ramp, 2, TG_FUNC_PURE},     {"fadd", fn_fadd, 2, TG_FUNC_PURE},
      {"fsum", fn_fsum, 1, TG_FUNC_PURE},     {"fcheck", fn_fcheck, 2, TG_FUNC_PURE},
      {"mark", fn_mark, 2, 0}};
  for (size_t i = 0; r && i < sizeof defs / sizeof defs[0]; i++) {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = defs[i].name,
                     .fn_version = "1", .fn = defs[i].fn,
                     .flags = defs[i].flags,
                     .nargs = defs[i].nargs};
    if (tg_registry_add(r, &d, NULL) != TG_OK) {
      tg_registry_free(r);
      return NULL;
    }
  }
  return r;
}

/* ---- workers in threads of this process ------------------------------------- */

typedef struct worker {
  pthread_t th;
  volatile sig_atomic_t stop;
  char ep[128];
  atomic_int ready;
  int rc;
  tg_error err;
} worker;

static worker workers[NWORKERS];

/* The worker thread's own stop flag, set by SIGUSR1 sent to that thread:
 * the flag is a volatile sig_atomic_t, made for a signal handler; written
 * from another thread it would be a data race (TSan reports one). */
static _Thread_local volatile sig_atomic_t *own_stop;

static void on_stop_signal(int sig) {
  (void)sig;
  if (own_stop) *own_stop = 1;
}

static void on_ready(void *ctx, const char *ep) {
  worker *w = ctx;
  snprintf(w->ep, sizeof w->ep, "%s", ep);
  atomic_store(&w->ready, 1);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  own_stop = &w->stop;
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:0",
                      .nthreads = 2, .stop = &w->stop, .on_ready = on_ready, .ctx = w};
  tg_error_clear(&w->err);
  w->rc = tg_worker_serve(reg, &o, &w->err);
  atomic_store(&w->ready, 1); /* also when it failed before being ready */
  return NULL;
}

static bool start_workers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  for (int i = 0; i < NWORKERS; i++)
    if (!CHECK(pthread_create(&workers[i].th, NULL, worker_main, &workers[i]) == 0))
      abort(); /* nothing to stop or join */
  bool ok = true;
  for (int i = 0; i < NWORKERS; i++) {
    while (!atomic_load(&workers[i].ready)) tgt_sleep_ms(1);
    ok &= CHECK_MSG(strncmp(workers[i].ep, "tcp://127.0.0.1:", 16) == 0,
                    "worker %d: %s (%s)", i, workers[i].ep, workers[i].err.msg);
  }
  return ok;
}

/* ---- the executor's log -------------------------------------------------------- */

typedef struct log_sink {
  atomic_int seen[LOG_IDS]; /* lines per logged value */
  atomic_long lines, bad;
} log_sink;

static log_sink sink;

static void on_log(void *ctx, const char *key, const char *line) {
  log_sink *s = ctx;
  long long v = -1;
  atomic_fetch_add(&s->lines, 1);
  if (strncmp(key, "logline#", 8) == 0 && sscanf(line, "value %lld", &v) == 1 && v >= 0 &&
      v < LOG_IDS)
    atomic_fetch_add(&s->seen[v], 1);
  else
    atomic_fetch_add(&s->bad, 1);
}

static void sink_reset(void) {
  for (int i = 0; i < LOG_IDS; i++) atomic_store(&sink.seen[i], 0);
  atomic_store(&sink.lines, 0);
  atomic_store(&sink.bad, 0);
}

static tg_executor *executor(void) {
  const char *addr[NWORKERS];
  for (int i = 0; i < NWORKERS; i++) addr[i] = workers[i].ep;
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                        .nconnect = NWORKERS, .log = on_log, .log_ctx = &sink};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  CHECK_MSG(tg_executor_new(reg, &o, &ex, &err) == TG_OK && ex, "tcp executor: %s", err.msg);
  return ex;
}

/* ---- checks on values --------------------------------------------------------- */

static void check_ramp(const tg_value *v, int64_t n, int64_t base, const char *what) {
  if (!CHECK_MSG(v && is_f64(v) && (int64_t)tg_ndarray_size(v) == n,
                 "%s: not an f64 array of %lld elements", what, (long long)n))
    return;
  const double *d = tg_ndarray_data(v);
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < n; i++)
    if (d[i] != (double)(base + i) && bad++ == 0) first = i;
  CHECK_MSG(bad == 0, "%s: %lld elements differ, the first at %lld (%g, not %lld)", what,
            (long long)bad, (long long)first, first >= 0 ? d[first] : 0.0,
            (long long)(base + first));
}

static void check_int(const tg_value *v, int64_t want, const char *what) {
  CHECK_MSG(v && tg_value_type(v) == TG_INT && tg_value_int(v) == want,
            "%s: expected %lld, got %lld", what, (long long)want,
            v && tg_value_type(v) == TG_INT ? (long long)tg_value_int(v) : -1LL);
}

static void check_float(const tg_value *v, double want, const char *what) {
  CHECK_MSG(v && tg_value_type(v) == TG_FLOAT && tg_value_float(v) == want,
            "%s: expected %.17g, got %.17g", what, want,
            v && tg_value_type(v) == TG_FLOAT ? tg_value_float(v) : -1.0);
}

/* ---- 1. graphs from several threads ------------------------------------------------ */

enum { O_ARR, O_ASUM, O_CSAME, O_CSUM, O_CHAIN, O_FAN, O_LOGS, O_TREE, NOUT };

typedef struct round_graph {
  tg_node outs[NOUT];
  int64_t base_a, base_c, chain_from, log_sum;
  int log_first;
} round_graph;

/* One round's graph: arrays made on workers (ramp -> fadd, streamed back
 * and summed), a 5 MiB constant (streamed to the workers, checked and
 * summed there), a chain and a fan of small tasks, logline tasks, a tree
 * of 128 leaves (its subtrees and the chain run on the workers' pool
 * threads, a task following its inputs there). */
static round_graph build_round(tg_graph *g, int64_t base, int log_first) {
  round_graph rg = {.base_a = base, .base_c = base + 3, .chain_from = base,
                    .log_first = log_first};
  tg_node a = tg_call(g, "ramp", 2, V(tg_int(BIG_N)), V(tg_int(rg.base_a)));
  rg.outs[O_ARR] = tg_call(g, "fadd", 2, N(a), V(tg_int(1)));
  rg.outs[O_ASUM] = tg_call(g, "fsum", 1, N(rg.outs[O_ARR]));
  tg_node c = tg_call(g, "identity", 1, V(ramp_value(BIG_N, rg.base_c)));
  rg.outs[O_CSAME] = tg_call(g, "fcheck", 2, N(c), V(tg_int(rg.base_c)));
  rg.outs[O_CSUM] = tg_call(g, "fsum", 1, N(c));
  tg_node x = tg_call(g, "inc", 1, V(tg_int(rg.chain_from)));
  for (int i = 1; i < 30; i++) x = tg_call(g, "inc", 1, N(x));
  rg.outs[O_CHAIN] = x;
  tg_arg fan[20];
  for (int i = 0; i < 20; i++) fan[i] = N(tg_call(g, "inc", 1, V(tg_int(i))));
  tg_node packed;
  tg_graph_add(g, "pack", fan, 20, NULL, &packed);
  rg.outs[O_FAN] = tg_call(g, "sum", 1, N(packed));
  tg_arg logs[LOGS_PER];
  for (int i = 0; i < LOGS_PER; i++) {
    logs[i] = N(tg_call(g, "logline", 1, V(tg_int(log_first + i))));
    rg.log_sum += log_first + i;
  }
  tg_graph_add(g, "sum_args", logs, LOGS_PER, NULL, &rg.outs[O_LOGS]);
  tg_node lv[128];
  for (int i = 0; i < 128; i++) lv[i] = tg_call(g, "inc", 1, V(tg_int(i)));
  for (int m = 128; m > 1; m /= 2)
    for (int i = 0; i < m / 2; i++) lv[i] = tg_call(g, "add", 2, N(lv[2 * i]), N(lv[2 * i + 1]));
  rg.outs[O_TREE] = lv[0];
  return rg;
}

/* Check a round's results; its log lines came before its results. */
static void check_round(const round_graph *rg, tg_value *const *res, const char *who) {
  char what[128];
  snprintf(what, sizeof what, "%s: fadd(ramp)", who);
  check_ramp(res[O_ARR], BIG_N, rg->base_a + 1, what);
  snprintf(what, sizeof what, "%s: fsum(fadd(ramp))", who);
  check_float(res[O_ASUM], ramp_sum(BIG_N, rg->base_a + 1), what);
  snprintf(what, sizeof what, "%s: fcheck(constant)", who);
  check_int(res[O_CSAME], BIG_N, what);
  snprintf(what, sizeof what, "%s: fsum(constant)", who);
  check_float(res[O_CSUM], ramp_sum(BIG_N, rg->base_c), what);
  snprintf(what, sizeof what, "%s: chain", who);
  check_int(res[O_CHAIN], rg->chain_from + 30, what);
  snprintf(what, sizeof what, "%s: fan", who);
  check_int(res[O_FAN], 210, what);
  snprintf(what, sizeof what, "%s: tree", who);
  check_int(res[O_TREE], 128 * 129 / 2, what);
  snprintf(what, sizeof what, "%s: logline sum", who);
  check_int(res[O_LOGS], rg->log_sum, what);
  for (int i = 0; i < LOGS_PER; i++)
    CHECK_EQ_INT_AT(atomic_load(&sink.seen[rg->log_first + i]), 1, "%s: log line %d", who,
                    rg->log_first + i);
}

/* Run one round on ex: a compute, or (odd rounds) futures of one
 * submission read in reverse order. */
static void run_round(tg_executor *ex, int64_t base, int log_first, bool futures,
                      const char *who) {
  tg_graph *g = NULL;
  if (!CHECK(tg_graph_new(reg, &g) == TG_OK)) return;
  round_graph rg = build_round(g, base, log_first);
  tg_value *res[NOUT] = {0};
  if (!futures) {
    tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
    int rc = tg_compute(g, rg.outs, NOUT, &o, res);
    CHECK_MSG(rc == TG_OK, "%s: compute: %s: %s", who, tg_err_name(rc), tg_graph_errmsg(g));
  } else {
    tg_future *fs[NOUT] = {0};
    int rc = tg_executor_submit_many(ex, g, rg.outs, NOUT, fs);
    CHECK_MSG(rc == TG_OK, "%s: submit: %s", who, tg_executor_errmsg(ex));
    for (int i = NOUT - 1; rc == TG_OK && i >= 0; i--) {
      int frc = tg_future_result(fs[i], 120, &res[i]);
      CHECK_MSG(frc == TG_OK, "%s: output %d: %s", who, i, tg_future_errmsg(fs[i]));
    }
    for (int i = 0; i < NOUT; i++) tg_future_free(fs[i]);
  }
  tg_graph_free(g);
  check_round(&rg, res, who);
  for (int i = 0; i < NOUT; i++) tg_value_unref(res[i]); /* off the I/O thread */
}

typedef struct user {
  tg_executor *ex;
  int t, rounds;
} user;

static void *graph_user(void *arg) {
  user *u = arg;
  for (int r = 0; r < u->rounds; r++) {
    char who[64];
    snprintf(who, sizeof who, "thread %d round %d", u->t, r);
    int id = u->t * u->rounds + r;
    run_round(u->ex, 1000 * (int64_t)id + 1, id * LOGS_PER, r % 2 == 1, who);
  }
  return NULL;
}

static void concurrent_graphs(void) {
  int rounds = 4 * chk.scale;
  if (USERS * rounds * LOGS_PER > LOG_IDS) rounds = LOG_IDS / (USERS * LOGS_PER);
  sink_reset();
  tg_executor *ex = executor();
  if (!ex) return;
  pthread_t th[USERS];
  user u[USERS];
  for (int t = 0; t < USERS; t++) {
    u[t] = (user){ex, t, rounds};
    CHECK_EQ_INT(pthread_create(&th[t], NULL, graph_user, &u[t]), 0);
  }
  for (int t = 0; t < USERS; t++) pthread_join(th[t], NULL);
  tg_remote_stats st;
  tg__offload_traffic tr;
  CHECK_EQ_INT(tg_remote_stats_get(ex, &st), TG_OK);
  CHECK_EQ_INT(tg__offload_traffic_get(ex, &tr), TG_OK);
  tg_executor_free(ex);
  long want = (long)USERS * rounds * LOGS_PER;
  CHECK_EQ_INT(atomic_load(&sink.lines), want);
  CHECK_EQ_INT(atomic_load(&sink.bad), 0);
  /* Every round sent a 5 MiB constant and got two 5 MiB arrays back:
   * over the connections, or (the workers are on this host, of this
   * user) carried in shared memory, where only descriptors cross. */
  uint64_t big = (uint64_t)(USERS * rounds) * (uint64_t)BIG_N * 8;
  CHECK_MSG(st.bytes_sent + st.bytes_received + tr.large_shm >= 2 * big,
            "bytes sent: %llu, received: %llu, in shared memory: %llu",
            (unsigned long long)st.bytes_sent, (unsigned long long)st.bytes_received,
            (unsigned long long)tr.large_shm);
  CHECK_EQ_INT(st.workers_lost, 0);
  fprintf(stderr, "     %d rounds x %d threads; %.0f MB sent, %.0f MB received, %llu moved\n",
          rounds, USERS, (double)st.bytes_sent / 1e6, (double)st.bytes_received / 1e6,
          (unsigned long long)st.values_moved);
}

/* ---- 2. futures, callbacks and cancellation ------------------------------------------ */

typedef struct fround {
  int base;                 /* ids base .. base + CANCEL_PER - 1 */
  _Atomic(tg_future *) fs[CANCEL_PER];
  atomic_int answer[2][CANCEL_PER]; /* per canceller: 1 cancelled, 0 not */
  uint64_t seed;
} fround;

typedef struct canceller {
  fround *fr;
  int k; /* 0 or 1 */
} canceller;

/* Fewer than `at` marks of the round have started and some are pending. */
static bool before_progress(const fround *fr, int at) {
  int started = 0;
  bool pending = false;
  for (int i = 0; i < CANCEL_PER; i++) {
    started += atomic_load(&ran[fr->base + i]) > 0;
    pending |= !tg_future_done(atomic_load(&fr->fs[i])); /* NULL: not out yet */
  }
  return started < at && pending;
}

/* Cancel every mark of the round in a random order, each once a random
 * share of the round has started: some before their start, some after,
 * some as it happens, whatever the speed of the workers. */
static void *cancel_round(void *arg) {
  canceller *c = arg;
  fround *fr = c->fr;
  uint64_t seed = fr->seed + (uint64_t)c->k;
  int order[CANCEL_PER], at[CANCEL_PER];
  for (int i = 0; i < CANCEL_PER; i++) order[i] = i;
  for (int i = CANCEL_PER - 1; i > 0; i--) {
    int j = (int)tgt_below(&seed, (uint64_t)i + 1), x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
  for (int i = 0; i < CANCEL_PER; i++) { /* ascending progress points */
    int x = (int)tgt_below(&seed, CANCEL_PER + 1), j = i;
    for (; j > 0 && at[j - 1] > x; j--) at[j] = at[j - 1];
    at[j] = x;
  }
  for (int i = 0; i < CANCEL_PER; i++) {
    tg_future *f;
    while (!(f = atomic_load(&fr->fs[order[i]])) || before_progress(fr, at[i])) sched_yield();
    bool cancelled = tg_future_cancel(f);
    atomic_store(&fr->answer[c->k][order[i]], cancelled ? 1 : 0);
  }
  return NULL;
}

/* On-done callbacks, per mark id: they may run after a waiter has seen
 * the future done, so they are counted once the executor is freed. */
static atomic_int done_cb[MARKS];
static _Atomic(tg_future *) done_for[MARKS]; /* compared only */
static atomic_int wrong_cb;

static void count_done(tg_future *f, void *ctx) {
  intptr_t id = (intptr_t)ctx;
  if (!tg_future_done(f) || atomic_load(&done_for[id]) != f) atomic_fetch_add(&wrong_cb, 1);
  atomic_fetch_add(&done_cb[id], 1);
}

static tg_future *call(tg_executor *ex, const char *fn, tg_arg *args, size_t nargs) {
  tg_future *f = NULL;
  int rc = tg_executor_call(ex, fn, args, nargs, &f);
  CHECK_MSG(rc == TG_OK && f, "call %s: %s: %s", fn, tg_err_name(rc), tg_executor_errmsg(ex));
  return f;
}

/* The future's int result, or INT64_MIN with *rc the failure. */
static int64_t result_int(tg_future *f, int *rc) {
  tg_value *v = NULL;
  *rc = f ? tg_future_result(f, 120, &v) : TG_EINVAL;
  int64_t r = *rc == TG_OK && tg_value_type(v) == TG_INT ? tg_value_int(v) : INT64_MIN;
  tg_value_unref(v);
  return r;
}

/* A mark's future against the cancellers' answers: cancelled, and its
 * dependent failed for it; or not, and both hold the mark's id. */
static int check_mark(fround *fr, int i, tg_future *dep) {
  int id = fr->base + i, a0 = atomic_load(&fr->answer[0][i]);
  tg_future *f = atomic_load(&fr->fs[i]);
  CHECK_MSG(a0 == atomic_load(&fr->answer[1][i]), "mark %d: cancel answered %d and %d", id,
            a0, atomic_load(&fr->answer[1][i]));
  int frc, drc;
  int64_t v = result_int(f, &frc), dv = result_int(dep, &drc);
  if (!a0) {
    CHECK_EQ_INT_AT(frc, TG_OK, "mark %d", id);
    CHECK_EQ_INT_AT(v, id, "mark %d", id);
    CHECK_EQ_INT_AT(dv, id, "dependent of mark %d", id);
    CHECK(!tg_future_cancelled(f));
    return 0;
  }
  CHECK_EQ_INT_AT(frc, TG_ECANCELED, "mark %d", id);
  CHECK(tg_future_cancelled(f));
  CHECK_EQ_STR(tg_future_errmsg(f), "cancelled");
  CHECK_EQ_INT_AT(drc, TG_ETASK, "dependent of mark %d", id);
  CHECK_EQ_STR(tg_future_errmsg(dep), "task 'identity#0' failed: TG_ECANCELED: argument 0: "
                                      "its future failed: cancelled");
  return 1;
}

typedef struct fuser {
  tg_executor *ex;
  int t, rounds;
  uint8_t *answers; /* [rounds * CANCEL_PER]: what the cancellers said */
  int cancelled;
} fuser;

/* One round: marks and their dependents (futures as arguments) with
 * callbacks, two cancellers racing their starts; a 5 MiB array made by a
 * call and summed by a call taking its future; a logline call. */
static void futures_round(fuser *u, int r) {
  fround *fr = calloc(1, sizeof *fr);
  int id0 = (u->t * u->rounds + r) * CANCEL_PER;
  fr->base = id0;
  fr->seed = 77 + (uint64_t)id0;
  tg_future *dep[CANCEL_PER];
  tg_future *arr = call(u->ex, "ramp", (tg_arg[]){V(tg_int(BIG_N)), V(tg_int(id0))}, 2);
  tg_future *asum = call(u->ex, "fsum", (tg_arg[]){tg_arg_future(arr)}, 1);
  tg_future *log = call(u->ex, "logline", (tg_arg[]){V(tg_int(id0))}, 1);
  pthread_t th[2];
  canceller c[2] = {{fr, 0}, {fr, 1}};
  for (int i = 0; i < CANCEL_PER; i++) {
    tg_future *f = call(u->ex, "mark", (tg_arg[]){V(tg_int(id0 + i)), V(tg_int(20000))}, 2);
    dep[i] = call(u->ex, "identity", (tg_arg[]){tg_arg_future(f)}, 1);
    atomic_store(&fr->fs[i], f);
    atomic_store(&done_for[id0 + i], f);
    CHECK_EQ_INT(tg_future_on_done(f, count_done, (void *)(intptr_t)(id0 + i)), TG_OK);
    if (i == CANCEL_PER / 2) /* the cancellers start with half submitted */
      for (int k = 0; k < 2; k++)
        CHECK_EQ_INT(pthread_create(&th[k], NULL, cancel_round, &c[k]), 0);
  }
  for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
  for (int i = 0; i < CANCEL_PER; i++) {
    int a = check_mark(fr, i, dep[i]);
    u->answers[r * CANCEL_PER + i] = (uint8_t)a;
    u->cancelled += a;
    tg_future_free(dep[i]);
  }
  tg_value *v = NULL;
  CHECK_MSG(tg_future_result(arr, 120, &v) == TG_OK, "ramp call: %s", tg_future_errmsg(arr));
  check_ramp(v, BIG_N, id0, "ramp call");
  tg_value_unref(v);
  v = NULL;
  CHECK_MSG(tg_future_result(asum, 120, &v) == TG_OK, "fsum call: %s", tg_future_errmsg(asum));
  check_float(v, ramp_sum(BIG_N, id0), "fsum of the ramp's future");
  tg_value_unref(v);
  int rc;
  CHECK_EQ_INT(result_int(log, &rc), id0);
  CHECK_EQ_INT_AT(atomic_load(&sink.seen[id0]), 1, "log line of call %d", id0);
  for (int i = 0; i < CANCEL_PER; i++) tg_future_free(atomic_load(&fr->fs[i]));
  tg_future_free(arr);
  tg_future_free(asum);
  tg_future_free(log);
  free(fr);
}

static void *futures_user(void *arg) {
  fuser *u = arg;
  for (int r = 0; r < u->rounds; r++) futures_round(u, r);
  return NULL;
}

static void futures_and_cancels(void) {
  int rounds = 5 * chk.scale;
  if (USERS * rounds * CANCEL_PER > MARKS) rounds = MARKS / (USERS * CANCEL_PER);
  for (int i = 0; i < MARKS; i++) atomic_store(&ran[i], 0), atomic_store(&done_cb[i], 0);
  atomic_store(&wrong_cb, 0);
  sink_reset();
  tg_executor *ex = executor();
  if (!ex) return;
  pthread_t th[USERS];
  fuser u[USERS];
  for (int t = 0; t < USERS; t++) {
    u[t] = (fuser){ex, t, rounds, calloc((size_t)(rounds * CANCEL_PER), 1), 0};
    CHECK_EQ_INT(pthread_create(&th[t], NULL, futures_user, &u[t]), 0);
  }
  for (int t = 0; t < USERS; t++) pthread_join(th[t], NULL);
  /* Freeing waits for every run, so each mark has run for good or not. */
  tg_executor_free(ex);
  int n = USERS * rounds * CANCEL_PER, cancelled = 0;
  for (int t = 0; t < USERS; t++) {
    for (int k = 0; k < rounds * CANCEL_PER; k++) {
      int id = t * rounds * CANCEL_PER + k, a = u[t].answers[k];
      CHECK_EQ_INT_AT(atomic_load(&ran[id]), a ? 0 : 1, "mark %d (cancel said %d)", id, a);
      CHECK_EQ_INT_AT(atomic_load(&done_cb[id]), 1, "callbacks of mark %d", id);
    }
    cancelled += u[t].cancelled;
    free(u[t].answers);
  }
  CHECK_EQ_INT(atomic_load(&wrong_cb), 0);
  CHECK_EQ_INT(atomic_load(&sink.lines), USERS * rounds);
  CHECK_EQ_INT(atomic_load(&sink.bad), 0);
  fprintf(stderr, "     %d of %d marks cancelled\n", cancelled, n);
  /* Both outcomes must have happened, or the race was not exercised. */
  CHECK_MSG(cancelled > 0 && cancelled < n, "%d of %d cancelled", cancelled, n);
}

/* ---- 3. executors freed with work in flight ------------------------------------------- */

enum { FLIGHT = 40 };

typedef struct flight {
  int rep;
  int64_t base;                      /* of the graph's ramp */
  tg_future *gf[2], *fs[FLIGHT];     /* the graph's outputs, the calls */
  int ok, cancelled;                 /* outcomes over every rep */
} flight;

/* Submit a mix: a graph of 5 MiB arrays, sleeps, log lines, marks. */
static void submit_mix(tg_executor *ex, flight *fl) {
  tg_graph *g = NULL;
  if (!CHECK(tg_graph_new(reg, &g) == TG_OK)) return;
  tg_node a = tg_call(g, "ramp", 2, V(tg_int(BIG_N)), V(tg_int(fl->base)));
  tg_node outs[2] = {tg_call(g, "fadd", 2, N(a), V(tg_int(5))), TG_NODE_NONE};
  outs[1] = tg_call(g, "fsum", 1, N(outs[0]));
  CHECK_EQ_INT(tg_executor_submit_many(ex, g, outs, 2, fl->gf), TG_OK);
  tg_graph_free(g);
  for (int i = 0; i < FLIGHT; i++) {
    if (i % 4 == 0)
      fl->fs[i] = call(ex, "sleep_ms", (tg_arg[]){V(tg_int(20))}, 1);
    else if (i % 4 == 1)
      fl->fs[i] = call(ex, "logline", (tg_arg[]){V(tg_int(LOG_IDS - 1 - i))}, 1);
    else /* negative ids: not recorded, as these may still run later */
      fl->fs[i] = call(ex, "mark", (tg_arg[]){V(tg_int(-1 - i)), V(tg_int(50000))}, 2);
  }
}

/* Once the executor is freed: each future has its right result or was
 * cancelled. */
static void check_landed(flight *fl) {
  for (int k = 0; k < 2; k++) {
    tg_value *v = NULL;
    int rc = fl->gf[k] ? tg_future_result(fl->gf[k], 0, &v) : TG_EINVAL;
    if (rc == TG_OK && k == 0) check_ramp(v, BIG_N, fl->base + 5, "fadd(ramp), freed ex");
    if (rc == TG_OK && k == 1) check_float(v, ramp_sum(BIG_N, fl->base + 5), "fsum, freed ex");
    if (rc != TG_OK)
      CHECK_EQ_INT_AT(rc, TG_ECANCELED, "rep %d output %d: %s", fl->rep, k,
                      tg_future_errmsg(fl->gf[k]));
    *(rc == TG_OK ? &fl->ok : &fl->cancelled) += 1;
    tg_value_unref(v);
    tg_future_free(fl->gf[k]);
  }
  for (int i = 0; i < FLIGHT; i++) {
    int rc;
    CHECK(tg_future_done(fl->fs[i]));
    int64_t v = result_int(fl->fs[i], &rc);
    int64_t want = i % 4 == 0 ? 20 : i % 4 == 1 ? LOG_IDS - 1 - i : -1 - i;
    if (rc == TG_OK) CHECK_EQ_INT_AT(v, want, "rep %d call %d", fl->rep, i);
    else CHECK_EQ_INT_AT(rc, TG_ECANCELED, "rep %d call %d: %s", fl->rep, i,
                         tg_future_errmsg(fl->fs[i]));
    *(rc == TG_OK ? &fl->ok : &fl->cancelled) += 1;
    tg_future_free(fl->fs[i]);
  }
}

/* Submit the mix, free the executor after `delay_ms`, check what landed;
 * then a new executor on the same workers must get a round right. */
static void free_in_flight_once(flight *fl, int delay_ms) {
  tg_executor *ex = executor();
  if (!ex) return;
  submit_mix(ex, fl);
  if (delay_ms) tgt_sleep_ms(delay_ms);
  tg_executor_free(ex);
  check_landed(fl);
  if (!(ex = executor())) return;
  char who[64];
  snprintf(who, sizeof who, "new executor after rep %d", fl->rep);
  sink_reset();
  run_round(ex, 5000000 + 1000 * (int64_t)fl->rep, 0, fl->rep % 2 == 1, who);
  tg_executor_free(ex);
}

static void free_in_flight(void) {
  static const int delays[] = {0, 3, 15, 40};
  flight fl = {0};
  for (int rep = 0; rep < 8 * chk.scale; rep++) {
    fl.rep = rep;
    fl.base = 100 * rep;
    free_in_flight_once(&fl, delays[rep % 4]);
  }
  fprintf(stderr, "     %d futures finished, %d cancelled by the free\n", fl.ok,
          fl.cancelled);
}

/* ---- 4. stopping the workers ------------------------------------------------------------ */

static void stop_workers(void) {
  for (int i = 0; i < NWORKERS; i++) CHECK_EQ_INT(pthread_kill(workers[i].th, SIGUSR1), 0);
  for (int i = 0; i < NWORKERS; i++) {
    pthread_join(workers[i].th, NULL);
    CHECK_MSG(workers[i].rc == TG_OK, "worker %d: %s: %s", i, tg_err_name(workers[i].rc),
              workers[i].err.msg);
  }
}

int main(int argc, char **argv) {
  chk_init(argc, argv);
  reg = registry();
  if (!CHECK(reg != NULL)) return chk_finish("stress_tcp");
  if (start_workers()) {
    CHK_RUN(concurrent_graphs);
    CHK_RUN(futures_and_cancels);
    CHK_RUN(free_in_flight);
  }
  CHK_RUN(stop_workers);
  tg_registry_free(reg);
  return chk_finish("stress_tcp");
}
