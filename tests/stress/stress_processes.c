/* tests/stress/stress_processes.c: the processes backend under concurrent
 * use: threads submitting futures at once (chains of small tasks, large
 * arrays made and passed on in shared memory, tasks that crash once and
 * are retried, cancellations, callbacks submitting more), results dropped
 * on other threads than the IO thread, counters read meanwhile; then pools
 * created and freed in a loop. Every result is checked (check.h). No
 * Criterion, so it runs under ThreadSanitizer.
 *
 *   stress_processes [SCALE]      SCALE multiplies the rounds (default 1)
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "offload/traffic.h"
#include "check.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "../test_funcs.h"

#define THREADS 4

static atomic_int *crashed; /* shared with workers: crash_once calls */
static tg_registry *reg;

/* f64 array of args[0] elements, element i = i + args[1]. */
static int f_ramp(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  int64_t len = tg_value_int(a[0]);
  tg_value *v = tg_ndarray_new(TG_DT_F64, 1, &len);
  if (!v) return TG_ENOMEM;
  double *d = tg_ndarray_data_mut(v);
  for (int64_t i = 0; i < len; i++) d[i] = (double)(i + tg_value_int(a[1]));
  *o = v;
  return TG_OK;
}

/* Sum of an f64 array, as an int. */
static int f_total(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  const double *d = tg_ndarray_data(a[0]);
  double s = 0;
  for (size_t i = 0; i < tg_ndarray_size(a[0]); i++) s += d[i];
  *o = tg_int((int64_t)s);
  return TG_OK;
}

/* Kills its worker on the first attempt, then returns args[0]. */
static int f_crash_once(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)n;
  if (tg_task_attempt(c) == 0) {
    atomic_fetch_add(crashed, 1);
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
  }
  *o = tg_value_ref(a[0]);
  return TG_OK;
}

static tg_registry *registry(void) {
  tg_registry *reg = tgt_registry_new();
  struct { const char *name; tg_task_fn fn; int nargs; } defs[] = {
      {"ramp", f_ramp, 2}, {"total", f_total, 1}, {"crash_once", f_crash_once, 1}};
  for (size_t i = 0; reg && i < 3; i++) {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = defs[i].name,
                     .fn_version = "1", .fn = defs[i].fn,
                     .flags = TG_FUNC_PURE, .nargs = defs[i].nargs};
    if (tg_registry_add(reg, &d, NULL) != TG_OK) return NULL;
  }
  return reg;
}

typedef struct job {
  tg_executor *ex;
  tg_registry *reg;
  int id, rounds;
  atomic_int *followups; /* callbacks' submissions still running */
} job;

/* On done: submit a call of inc on the result (a future argument). */
static void follow(tg_future *f, void *ctx) {
  job *j = ctx;
  tg_future *next = NULL;
  tg_arg a = tg_arg_future(f);
  if (!CHECK_MSG(tg_executor_call(j->ex, "inc", &a, 1, &next) == TG_OK,
                 "callback submission: %s", tg_executor_errmsg(j->ex)))
    return;
  tg_future_free(next); /* the executor keeps it until done */
  atomic_fetch_sub(j->followups, 1);
}

static void one_round(job *j, int r) {
  tg_graph *g = NULL;
  tg_graph_new(j->reg, &g);
  int64_t len = 20000 + 1000 * j->id; /* 160 KB and more: shared memory */
  tg_node arr = tg_call(g, "ramp", 2, tg_arg_value(tg_int(len)), tg_arg_value(tg_int(r)));
  tg_node tot = tg_call(g, "total", 1, tg_arg_node(arr));
  tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(r)));
  for (int i = 0; i < 50; i++) x = tg_call(g, "inc", 1, tg_arg_node(x));
  tg_node_opts o = {TG_NODE_OPTS_V1, NULL, 2, -1, 0, 0};
  tg_node c = TG_NODE_NONE;
  tg_graph_add(g, "crash_once", (tg_arg[]){tg_arg_value(tg_int(7))}, 1, r % 5 ? NULL : &o, &c);
  tg_node slow = tg_call(g, "sleep_ms", 1, tg_arg_value(tg_int(200)));
  tg_node outs[3] = {arr, tot, x};
  tg_future *f[5];
  if (!CHECK_MSG(tg_executor_submit_many(j->ex, g, outs, 3, f) == TG_OK &&
                     tg_executor_submit(j->ex, g, c, &f[3]) == TG_OK && /* its own run */
                     tg_executor_submit(j->ex, g, slow, &f[4]) == TG_OK,
                 "submit: %s", tg_executor_errmsg(j->ex))) {
    tg_graph_free(g);
    return;
  }
  tg_graph_free(g); /* the runs have their own copies */
  tg_future_cancel(f[4]);
  atomic_fetch_add(j->followups, 1);
  tg_future_on_done(f[2], follow, j);
  tg_value *v[4] = {NULL, NULL, NULL, NULL};
  for (int i = 0; i < 4; i++) {
    int rc = tg_future_result(f[i], 60, &v[i]);
    bool crash_fails = i == 3 && r % 5 != 0; /* no retries: fails */
    CHECK_MSG(rc == (crash_fails ? TG_ETASK : TG_OK), "output %d of round %d: %s", i, r,
              tg_future_errmsg(f[i]));
  }
  double want = (double)len * (double)(len - 1) / 2 + (double)len * r;
  if (v[0]) {
    CHECK_EQ_INT(tg_ndarray_size(v[0]), len);
    CHECK(((const double *)tg_ndarray_data(v[0]))[7] == 7 + r);
  }
  if (v[1]) CHECK_EQ_INT(tg_value_int(v[1]), (int64_t)want);
  if (v[2]) CHECK_EQ_INT(tg_value_int(v[2]), r + 51);
  if (v[3]) CHECK_EQ_INT(tg_value_int(v[3]), 7);
  for (int i = 0; i < 4; i++) tg_value_unref(v[i]); /* releases off the IO thread */
  for (int i = 0; i < 5; i++) tg_future_free(f[i]);
  tg__offload_traffic st;
  CHECK(tg__offload_traffic_get(j->ex, &st) == TG_OK);
}

static void *submitter(void *arg) {
  job *j = arg;
  for (int r = 0; r < j->rounds; r++) one_round(j, r);
  return NULL;
}

static tg_executor *pool(void) {
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "processes", .workers = 2};
  tg_executor *ex = NULL;
  tg_error err;
  CHECK_MSG(tg_executor_new(reg, &eo, &ex, &err) == TG_OK, "pool: %s", err.msg);
  return ex;
}

/* Threads submitting at once to one pool. */
static void concurrent_use(void) {
  tg_executor *ex = pool();
  if (!ex) return;
  atomic_int followups = 0;
  job jobs[THREADS];
  pthread_t th[THREADS];
  int before = atomic_load(crashed);
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (job){ex, reg, i, 6 * chk.scale, &followups};
    pthread_create(&th[i], NULL, submitter, &jobs[i]);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 5000 && atomic_load(&followups); i++) usleep(1000);
  CHECK_EQ_INT(atomic_load(&followups), 0);
  CHECK_EQ_INT(atomic_load(crashed) - before, THREADS * 6 * chk.scale);
  tg_executor_free(ex);
}

/* Pools come and go (forks, reaping, output threads). */
static void pools_come_and_go(void) {
  for (int i = 0; i < 3 * chk.scale; i++) tg_executor_free(pool());
}

int main(int argc, char **argv) {
  chk_init(argc, argv);
  crashed = mmap(NULL, sizeof *crashed, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  reg = registry();
  if (!reg || crashed == MAP_FAILED) return 2;
  CHK_RUN(concurrent_use);
  CHK_RUN(pools_come_and_go);
  tg_registry_free(reg);
  return chk_finish("stress_processes");
}
