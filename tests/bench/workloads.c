/* tests/bench/workloads.c: the benchmark support both bench_graph and
 * bench_tcp link: checks, medians, task functions and the timed W1, W3,
 * W4 and WA workloads (see workloads.h). */
#include "workloads.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test_funcs.h"

int bench_failed;
static const char *prog = "bench";

void bench_set_name(const char *name) { prog = name; }

void bench_check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "%s: wrong result: %s\n", prog, what);
    bench_failed = 1;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- task functions (no counters: measure the engine, not the test) ---- */

static int b_inc(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c;
  (void)n;
  *o = tg_int(tg_value_int(a[0]) + 1);
  return *o ? TG_OK : TG_ENOMEM;
}

static int b_ident(tg_task_ctx *c, tg_value *const *a, size_t n,
                   tg_value **o) {
  (void)c;
  (void)n;
  *o = tg_value_ref(a[0]);
  return TG_OK;
}

static int b_add(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c;
  (void)n;
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
  (void)c;
  (void)n;
  *o = tg_float(tgt_mc_pi((uint64_t)tg_value_int(a[0]), tg_value_int(a[1])));
  return *o ? TG_OK : TG_ENOMEM;
}

tg_registry *bench_registry(void) {
  tg_registry *reg = NULL;
  if (tg_registry_new(&reg) != TG_OK) return NULL;
  struct { const char *name; tg_task_fn fn; int nargs; } defs[] = {
      {"inc", b_inc, 1}, {"ident", b_ident, 1}, {"add", b_add, 2},
      {"sum", b_sum, -1}, {"mc_pi", b_pi, 2}};
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = defs[i].name,
                     .fn_version = "1", .fn = defs[i].fn,
                     .flags = TG_FUNC_PURE, .nargs = defs[i].nargs};
    if (tg_registry_add(reg, &d, NULL) != TG_OK) {
      tg_registry_free(reg);
      return NULL;
    }
  }
  return reg;
}

/* ---- running a graph ------------------------------------------------------ */

void bench_run(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex,
               tg_value **res) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync",
                       .executor = ex};
  int rc = tg_compute(g, outs, n, &o, res);
  if (rc != TG_OK) {
    fprintf(stderr, "%s: %s: %s: %s\n", prog, ex ? tg_executor_backend(ex) : "sync",
            tg_err_name(rc), tg_graph_errmsg(g));
    bench_failed = 1;
  }
}

int64_t bench_run_int(tg_graph *g, tg_node out, tg_executor *ex) {
  tg_value *v = NULL;
  bench_run(g, &out, 1, ex, &v);
  int64_t r = v ? tg_value_int(v) : INT64_MIN;
  tg_value_unref(v);
  return r;
}

double bench_median_of(int reps, bench_workload fn, tg_registry *reg,
                       tg_executor *ex, int size) {
  double v[64];
  fn(reg, ex, size); /* warm-up */
  for (int i = 0; i < reps; i++) v[i] = fn(reg, ex, size);
  return bench_median(v, reps);
}

/* ---- workloads -------------------------------------------------------------- */

tg_node bench_w1_graph(tg_graph *g, int n) {
  tg_arg *args = malloc((size_t)n * sizeof *args);
  for (int i = 0; i < n; i++)
    args[i] = tg_arg_node(tg_call(g, "inc", 1, tg_arg_value(tg_int(i))));
  tg_node sum = TG_NODE_NONE;
  tg_graph_add(g, "sum", args, (size_t)n, NULL, &sum);
  free(args);
  return sum;
}

double bench_w1(tg_registry *reg, tg_executor *ex, int n) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  int64_t r = bench_run_int(g, bench_w1_graph(g, n), ex);
  double dt = tgt_now() - t0;
  bench_check(r == (int64_t)n * (n + 1) / 2, "W1 sum");
  tg_graph_free(g);
  return dt * 1e6 / (n + 1);
}

double bench_w2(tg_registry *reg, tg_executor *ex, int n) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  for (int i = 1; i < n; i++) x = tg_call(g, "inc", 1, tg_arg_node(x));
  int64_t r = bench_run_int(g, x, ex);
  double dt = tgt_now() - t0;
  bench_check(r == n, "W2 chain");
  tg_graph_free(g);
  return dt * 1e6 / n;
}

double bench_w3(tg_registry *reg, tg_executor *ex, int n) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node *lv = malloc((size_t)n * sizeof *lv);
  for (int i = 0; i < n; i++)
    lv[i] = tg_call(g, "ident", 1, tg_arg_value(tg_int(i)));
  for (int m = n; m > 1; m /= 2)
    for (int i = 0; i < m / 2; i++)
      lv[i] = tg_call(g, "add", 2, tg_arg_node(lv[2 * i]),
                      tg_arg_node(lv[2 * i + 1]));
  int64_t r = bench_run_int(g, lv[0], ex);
  double dt = tgt_now() - t0;
  bench_check(r == (int64_t)n * (n - 1) / 2, "W3 tree");
  tg_graph_free(g);
  free(lv);
  return dt * 1e6 / (2 * n - 1);
}

double bench_w4(tg_registry *reg, tg_executor *ex, int tasks, int64_t samples) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node outs[64];
  tg_value *res[64] = {0};
  for (int i = 0; i < tasks; i++)
    outs[i] = tg_call(g, "mc_pi", 2, tg_arg_value(tg_int(1000 + i)),
                      tg_arg_value(tg_int(samples)));
  bench_run(g, outs, (size_t)tasks, ex, res);
  double dt = tgt_now() - t0;
  for (int i = 0; i < tasks; i++) {
    bench_check(res[i] && tg_value_float(res[i]) ==
                              tgt_mc_pi((uint64_t)(1000 + i), samples),
                "W4 pi");
    tg_value_unref(res[i]);
  }
  tg_graph_free(g);
  return dt;
}

/* One thread's share of bench_raw_w4: pi tasks first..first+count-1. */
typedef struct raw_half {
  int first, count;
  int64_t samples;
  volatile double sink; /* keeps the work from being optimized away */
} raw_half;

static void *raw_pi(void *arg) {
  raw_half *h = arg;
  for (int i = h->first; i < h->first + h->count; i++)
    h->sink += tgt_mc_pi((uint64_t)(1000 + i), h->samples);
  return NULL;
}

double bench_raw_w4(int tasks, int64_t samples) {
  raw_half all = {0, tasks, samples, 0};
  double t0 = tgt_now();
  raw_pi(&all);
  double t1 = tgt_now();
  raw_half a = {0, tasks / 2, samples, 0};
  raw_half b = {tasks / 2, tasks - tasks / 2, samples, 0};
  pthread_t th;
  pthread_create(&th, NULL, raw_pi, &b);
  raw_pi(&a);
  pthread_join(th, NULL);
  double t2 = tgt_now();
  return (t1 - t0) / (t2 - t1);
}

double bench_wa(tg_registry *reg, tg_executor *ex, tg_value *a) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node n = tg_call(g, "ident", 1, tg_arg_value(tg_value_ref(a)));
  tg_value *v = NULL;
  bench_run(g, &n, 1, ex, &v);
  double dt = tgt_now() - t0;
  bench_check(v && tg_ndarray_nbytes(v) == tg_ndarray_nbytes(a), "WA array size");
  if (v) { /* spot checks: a full compare would cost more than the trip */
    const double *x = tg_ndarray_data(a), *y = tg_ndarray_data(v);
    size_t len = tg_ndarray_size(a);
    for (size_t i = 0; i < len; i += len / 97 + 1)
      bench_check(x[i] == y[i], "WA array data");
    bench_check(x[len - 1] == y[len - 1], "WA array data");
  }
  tg_value_unref(v);
  tg_graph_free(g);
  return dt;
}
