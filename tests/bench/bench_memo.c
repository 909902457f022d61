/* tests/bench/bench_memo.c: memoized computes end to end through
 * tg_compute, beside baselines measured in the same run (raw XXH3-128 of
 * the array arguments, a bare tg_cache_get hit, the same workloads
 * without a cache). Prints a markdown table of medians; exits 1 when a
 * result is wrong.
 *
 *   bench_memo [--quick]
 *
 * Workloads (executors started beforehand; graphs built inside the timing
 * unless said otherwise):
 *   W5 cold   1,000 calls of a pure function sleeping 10 ms on distinct
 *             inputs, one compute of 1,000 outputs on threads:50 (the
 *             sleeps overlap), fresh inputs each repetition: ms per call
 *   W5 hit    the same 1,000 outputs computed again, all served from the
 *             cache: the second compute alone, divided by 1,000 (target
 *             <= 5 us per hit)
 *   hit 1 MB / 100 MB   a fresh graph holding one call whose argument is a
 *             1 MB (100 MB) constant array, computed when its result is
 *             cached: build + key (hashing the array) + lookup + result
 *             (targets <= 100 us, <= 10 ms)
 *   W9        a 10,000-node pipeline (5,000 incs summed pairwise, level by
 *             level) built and computed when fully cached (target
 *             <= 20 ms), beside its uncached run
 *   W1        10,000 independent inc(i) and their sum, as bench_graph's W1:
 *             without a cache, with the default policy (nothing worth
 *             storing, no function with entries: no lookup), and storing
 *             every result (the cache cleared before each repetition,
 *             untimed; the timed compute includes its final commit);
 *             overhead target <= 5% with the default policy
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "workloads.h"
#include "tgraph/cache.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"

#define MAXREPS 15
#define W1_REPS 41 /* W1 is short and noisy: many pairs */

typedef struct sizes {
  int reps;
  int w5_calls, w5_sleep_ms;
  size_t big_mb;
  int w9_leaves, w1_tasks;
} sizes;

static const sizes full = {7, 1000, 10, 100, 5000, 10000};
static const sizes quick = {3, 50, 1, 1, 500, 1000};
static int failed;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "bench_memo: wrong: %s\n", what);
    failed = 1;
  }
}

/* ---- task functions --------------------------------------------------------- */

static int sleep_ms_value;

static int f_sleep(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  struct timespec ts = {0, (long)sleep_ms_value * 1000000L};
  nanosleep(&ts, NULL);
  *o = tg_int(tg_value_int(a[0]) * 2);
  return TG_OK;
}

static int f_inc(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  *o = tg_int(tg_value_int(a[0]) + 1);
  return TG_OK;
}

static int f_sum(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c;
  int64_t s = 0;
  for (size_t i = 0; i < n; i++) s += tg_value_int(a[i]);
  *o = tg_int(s);
  return TG_OK;
}

static int f_nbytes(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  *o = tg_int((int64_t)tg_ndarray_nbytes(a[0]));
  return TG_OK;
}

static tg_registry *registry(void) {
  tg_registry *reg;
  if (tg_registry_new(&reg)) return NULL;
  tg_register(reg, "slow", f_sleep, TG_FUNC_PURE);
  tg_register(reg, "inc", f_inc, TG_FUNC_PURE);
  tg_register(reg, "sum", f_sum, TG_FUNC_PURE);
  tg_register(reg, "nbytes", f_nbytes, TG_FUNC_PURE);
  return reg;
}

/* ---- helpers ------------------------------------------------------------------ */

static char root[64];
static int ncaches;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static tg_cache *new_cache(double min_seconds) {
  char path[128];
  snprintf(path, sizeof path, "%s/c%d", root, ncaches++);
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .min_compute_seconds = min_seconds};
  tg_cache *c = NULL;
  tg_error err;
  if (tg_cache_open(path, &o, &c, &err)) {
    fprintf(stderr, "bench_memo: %s\n", err.msg);
    exit(2);
  }
  return c;
}

static tg_executor *executor(tg_registry *reg, const char *name, unsigned workers) {
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = name, .workers = workers};
  tg_executor *ex = NULL;
  if (tg_executor_new(reg, &eo, &ex, NULL)) exit(2);
  return ex;
}

/* Compute outputs on ex with cache c; results go to res (may be NULL:
 * released). stats may be NULL. */
static int run(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex, tg_cache *c,
               tg_value **res, tg_compute_stats *st) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .cache = c, .stats = st};
  tg_value *local[1];
  tg_value **r = res ? res : n == 1 ? local : malloc(n * sizeof *r);
  int rc = tg_compute(g, outs, n, &o, r);
  if (rc) fprintf(stderr, "bench_memo: %s\n", tg_graph_errmsg(g));
  if (!res) {
    for (size_t i = 0; i < n && !rc; i++) tg_value_unref(r[i]);
    if (r != local) free(r);
  }
  return rc;
}

/* The table. */
static void row(const char *figure, const char *backend, double value, const char *unit,
                const char *target, const char *baseline) {
  printf("| %-44s | %-10s | %12.3f | %-8s | %-8s | %s |\n", figure, backend, value, unit,
         target, baseline);
}

/* ---- W5 --------------------------------------------------------------------------- */

static tg_graph *w5_graph(tg_registry *reg, int n, int base, tg_node *outs) {
  tg_graph *g;
  tg_graph_new(reg, &g);
  for (int i = 0; i < n; i++) outs[i] = tg_call(g, "slow", 1, tg_arg_value(tg_int(base + i)));
  return g;
}

static void w5(tg_registry *reg, const sizes *sz, tg_executor *pool, tg_executor *sync,
               tg_executor *thr) {
  tg_cache *c = new_cache(0); /* the default policy: 10 ms calls are stored */
  int n = sz->w5_calls;
  tg_node *outs = malloc((size_t)n * sizeof *outs);
  tg_value **res = malloc((size_t)n * sizeof *res);
  double cold[MAXREPS], hit_sync[MAXREPS], hit_thr[MAXREPS];
  for (int r = 0; r < sz->reps; r++) {
    int base = r * n * 10;
    tg_graph *g = w5_graph(reg, n, base, outs);
    tg_compute_stats st;
    double t0 = now();
    run(g, outs, (size_t)n, pool, c, NULL, &st);
    cold[r] = (now() - t0) * 1e3 / n;
    check(st.tasks_run == (size_t)n && st.cache_stores == (size_t)n, "W5 cold stores");
    for (int k = 0; k < 2; k++) { /* hits: the second compute alone */
      t0 = now();
      run(g, outs, (size_t)n, k ? thr : sync, c, res, &st);
      (k ? hit_thr : hit_sync)[r] = (now() - t0) * 1e6 / n;
      check(st.tasks_run == 0 && st.cache_hits == (size_t)n, "W5 all hits");
      for (int i = 0; i < n; i++) {
        check(tg_value_int(res[i]) == 2 * (int64_t)(base + i), "W5 value");
        tg_value_unref(res[i]);
      }
    }
    tg_graph_free(g);
  }
  /* baseline: bare tg_cache_get hits of a small int */
  double get[MAXREPS];
  tg_value *one = tg_int(1);
  tg_cache_put(c, (tg_digest){1, 2}, one, NULL);
  tg_value_unref(one);
  tg_cache_flush(c);
  for (int r = 0; r < sz->reps; r++) {
    double t0 = now();
    for (int i = 0; i < n; i++) {
      tg_value *v = NULL;
      check(tg_cache_get(c, (tg_digest){1, 2}, &v) == TG_OK, "bare get");
      tg_value_unref(v);
    }
    get[r] = (now() - t0) * 1e6 / n;
  }
  char base_txt[96];
  snprintf(base_txt, sizeof base_txt, "bare tg_cache_get hit: %.2f us",
           bench_median(get, sz->reps));
  char cold_txt[96];
  snprintf(cold_txt, sizeof cold_txt, "the sleeps alone, 50 at a time: %.3f ms per call",
           sz->w5_sleep_ms / 50.0);
  row("W5 cold: first run, per call", "threads:50", bench_median(cold, sz->reps), "ms",
      "", cold_txt);
  row("W5 hit: second run / calls", "sync", bench_median(hit_sync, sz->reps), "us", "<= 5",
      base_txt);
  row("W5 hit: second run / calls", "threads:2", bench_median(hit_thr, sz->reps), "us", "<= 5",
      "");
  free(outs);
  free(res);
  tg_cache_close(c);
}

/* ---- hits with a large constant argument ------------------------------------------ */

static void big_hit(tg_registry *reg, size_t mb, tg_executor *sync, int reps,
                    const char *target) {
  tg_cache *c = new_cache(TG_CACHE_STORE_ALL);
  size_t bytes = mb << 20;
  int64_t shape[1] = {(int64_t)(bytes / 8)};
  tg_value *arr = tg_ndarray_new(TG_DT_F64, 1, shape);
  unsigned char *d = tg_ndarray_data_mut(arr);
  for (size_t i = 0; i < bytes; i++) d[i] = (unsigned char)(i * 7 + 3);
  double t[MAXREPS], raw[MAXREPS], vh[MAXREPS];
  tg_node out;
  for (int r = -1; r < reps; r++) { /* r = -1 stores the result */
    double t0 = now();
    tg_graph *g;
    tg_graph_new(reg, &g);
    out = tg_call(g, "nbytes", 1, tg_arg_value(tg_value_ref(arr)));
    tg_value *v = NULL;
    tg_compute_stats st;
    run(g, &out, 1, sync, c, &v, &st);
    double dt = now() - t0;
    check(tg_value_int(v) == (int64_t)bytes, "array hit value");
    check(r < 0 ? st.cache_stores == 1 : st.cache_hits == 1 && st.tasks_run == 0,
          "array hit");
    tg_value_unref(v);
    tg_graph_free(g);
    if (r < 0) continue;
    t[r] = dt;
    t0 = now();
    XXH128_hash_t h = XXH3_128bits(d, bytes);
    raw[r] = now() - t0;
    t0 = now();
    tg_digest vd = tg_value_hash(arr);
    vh[r] = now() - t0;
    check(h.low64 != 0 || vd.lo != 1, "hash");
  }
  char fig[64], base[128];
  double rm = bench_median(raw, reps);
  snprintf(fig, sizeof fig, "hit, %zu MB constant array argument", mb);
  snprintf(base, sizeof base, "raw XXH3-128 %.3f ms (%.1f GB/s), tg_value_hash %.3f ms",
           rm * 1e3, (double)bytes / rm / 1e9, bench_median(vh, reps) * 1e3);
  bool small = mb < 10;
  row(fig, "sync", bench_median(t, reps) * (small ? 1e6 : 1e3), small ? "us" : "ms", target, base);
  tg_value_unref(arr);
  tg_cache_close(c);
}

/* ---- W9 ------------------------------------------------------------------------------ */

static tg_graph *w9_graph(tg_registry *reg, int leaves, tg_node *out) {
  tg_graph *g;
  tg_graph_new(reg, &g);
  tg_node *lv = malloc((size_t)leaves * sizeof *lv);
  for (int i = 0; i < leaves; i++) lv[i] = tg_call(g, "inc", 1, tg_arg_value(tg_int(i)));
  for (int n = leaves; n > 1;) {
    int m = 0;
    for (int i = 0; i < n; i += 2)
      lv[m++] = i + 1 < n ? tg_call(g, "sum", 2, tg_arg_node(lv[i]), tg_arg_node(lv[i + 1]))
                          : lv[i];
    n = m;
  }
  *out = lv[0];
  free(lv);
  return g;
}

static void w9(tg_registry *reg, const sizes *sz, tg_executor *sync, tg_executor *thr) {
  tg_cache *c = new_cache(TG_CACHE_STORE_ALL);
  int64_t want = (int64_t)sz->w9_leaves * (sz->w9_leaves + 1) / 2;
  tg_node out;
  size_t nodes = 0;
  double cached[2][MAXREPS], plain[2][MAXREPS], first = 0;
  for (int k = 0; k < 2; k++) {
    tg_executor *ex = k ? thr : sync;
    for (int r = -1; r < sz->reps; r++) { /* r = -1 fills the cache */
      for (int withc = 0; withc < 2; withc++) {
        if (r < 0 && !withc) continue;
        double t0 = now();
        tg_graph *g = w9_graph(reg, sz->w9_leaves, &out);
        tg_value *v = NULL;
        tg_compute_stats st;
        run(g, &out, 1, ex, withc ? c : NULL, &v, &st);
        double dt = now() - t0;
        nodes = tg_graph_size(g);
        check(tg_value_int(v) == want, "W9 value");
        if (r >= 0 && withc) check(st.tasks_run == 0 && st.cache_hits == 1, "W9 cached");
        tg_value_unref(v);
        tg_graph_free(g);
        if (r < 0) {
          if (k == 0) first = dt;
          continue;
        }
        (withc ? cached : plain)[k][r] = dt * 1e3;
      }
    }
  }
  char fig[64], base[128];
  snprintf(fig, sizeof fig, "W9 %zu-node pipeline, fully cached re-run", nodes);
  for (int k = 0; k < 2; k++) {
    snprintf(base, sizeof base, "uncached: %.2f ms%s", bench_median(plain[k], sz->reps),
             k ? "" : "");
    if (k == 0) {
      size_t l = strlen(base);
      snprintf(base + l, sizeof base - l, "; first run storing all: %.1f ms", first * 1e3);
    }
    row(fig, k ? "threads:2" : "sync", bench_median(cached[k], sz->reps), "ms", "<= 20", base);
  }
  tg_cache_close(c);
}

/* ---- W1 ------------------------------------------------------------------------------ */

/* us per task of W1 (build included), checked. */
static double w1_once(tg_registry *reg, int n, tg_executor *ex, tg_cache *c,
                      tg_compute_stats *st) {
  double t0 = now();
  tg_graph *g;
  tg_graph_new(reg, &g);
  tg_node sum = bench_w1_graph(g, n);
  tg_value *v = NULL;
  run(g, &sum, 1, ex, c, &v, st);
  double dt = now() - t0;
  check(tg_value_int(v) == (int64_t)n * (n + 1) / 2, "W1 sum");
  tg_value_unref(v);
  tg_graph_free(g);
  return dt * 1e6 / (n + 1);
}

static void w1(tg_registry *reg, const sizes *sz, tg_executor *sync, tg_executor *thr) {
  tg_cache *def = new_cache(0), *all = new_cache(TG_CACHE_STORE_ALL);
  int reps = W1_REPS;
  for (int k = 0; k < 2; k++) {
    tg_executor *ex = k ? thr : sync;
    double off[W1_REPS], dflt[W1_REPS], store[W1_REPS], rerun[W1_REPS];
    tg_compute_stats st;
    for (int r = 0; r < 3; r++) w1_once(reg, sz->w1_tasks, ex, NULL, NULL); /* warm up */
    /* off and on alternate in ABBA order, so drift and noise hit both */
    for (int r = 0; r < reps; r++) {
      for (int j = 0; j < 2; j++) {
        bool on = (j ^ r) & 1;
        double t = w1_once(reg, sz->w1_tasks, ex, on ? def : NULL, &st);
        (on ? dflt : off)[r] = t;
        check(!on || (st.cache_stores == 0 && st.cache_hits + st.cache_misses == 0),
              "W1 default policy: no lookups, no stores");
      }
    }
    for (int r = 0; r < sz->reps; r++) {
      tg_cache_clear(all);
      store[r] = w1_once(reg, sz->w1_tasks, ex, all, &st);
      check(st.cache_stores == (size_t)sz->w1_tasks + 1, "W1 store all");
      rerun[r] = w1_once(reg, sz->w1_tasks, ex, all, &st);
      check(st.tasks_run == 0, "W1 re-run cached");
    }
    double ratio[W1_REPS]; /* per pair: on / off, measured side by side */
    for (int r = 0; r < reps; r++) ratio[r] = dflt[r] / off[r];
    double over = (bench_median(ratio, reps) - 1) * 100;
    double mo = bench_median(off, reps), md = bench_median(dflt, reps),
           ms = bench_median(store, sz->reps),
           mr = bench_median(rerun, sz->reps);
    const char *b = k ? "threads:2" : "sync";
    char base[96];
    snprintf(base, sizeof base, "no cache: %.3f us/task", mo);
    row("W1 cache on, default policy", b, md, "us/task", "", base);
    snprintf(base, sizeof base, "median of %d on/off pair ratios; medians' ratio %+.1f%%",
             reps, (md / mo - 1) * 100);
    row("W1 default policy: overhead", b, over, "%", "<= 5", base);
    snprintf(base, sizeof base, "overhead %+.0f%% over no cache (cold cache)",
             (ms / mo - 1) * 100);
    row("W1 cache on, store every result", b, ms, "us/task", "", base);
    row("W1 store every result, re-run (all cached)", b, mr, "us/task", "", "");
  }
  tg_cache_close(def);
  tg_cache_close(all);
}

int main(int argc, char **argv) {
  const sizes *sz = argc > 1 && strcmp(argv[1], "--quick") == 0 ? &quick : &full;
  sleep_ms_value = sz->w5_sleep_ms;
  strcpy(root, "/tmp/tgbenchmemo.XXXXXX");
  if (!mkdtemp(root)) return 2;
  tg_registry *reg = registry();
  if (!reg) return 2;
  tg_executor *sync = executor(reg, "sync", 1), *thr = executor(reg, "threads", 2),
              *pool = executor(reg, "threads", 50);
  printf("## tgraph memoization benchmark\n\n");
  printf("Medians of %d repetitions (W1 with and without a cache: %d pairs). Targets "
         "from the cache issue.\n\n", sz->reps, W1_REPS);
  printf("| %-44s | %-10s | %12s | %-8s | %-8s | %s |\n", "figure", "backend", "median",
         "unit", "target", "baseline (same run)");
  printf("|---|---|---|---|---|---|\n");
  w5(reg, sz, pool, sync, thr);
  big_hit(reg, 1, sync, sz->reps, "<= 100");
  if (sz->big_mb > 1) big_hit(reg, sz->big_mb, sync, sz->reps, "<= 10");
  w9(reg, sz, sync, thr);
  w1(reg, sz, sync, thr);
  tg_executor_free(pool);
  tg_executor_free(thr);
  tg_executor_free(sync);
  tg_registry_free(reg);
  nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return failed;
}
